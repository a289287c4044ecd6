/* runtime/spec.c: Docker's defaults, env and mount helpers, capability names and
 * validation (whose messages must name the offending value). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <signal.h>
#include <sys/capability.h>
#include <sys/resource.h>

#include "common/util.h"
#include "runtime/runtime_internal.h"

static const char valid_id[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static const struct hutch_mount *find_mount(const struct hutch_spec *s, const char *dest)
{
	const struct hutch_mount *found = NULL;
	for (size_t i = 0; i < s->n_mounts; i++) {
		if (!strcmp(s->mounts[i].destination, dest)) {
			assert_null(found); /* destinations are unique */
			found = &s->mounts[i];
		}
	}
	return found;
}

/* The mount's options, joined with ',' (malloc'd). */
static char *joined_options(const struct hutch_mount *m)
{
	char *s = xstrdup("");
	for (size_t i = 0; i < m->n_options; i++) {
		char *n = xasprintf("%s%s%s", s, i ? "," : "", m->options[i]);
		free(s);
		s = n;
	}
	if (m->n_options)
		assert_null(m->options[m->n_options]); /* NULL-terminated */
	return s;
}

static bool strv_contains(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

static void check_mount(const struct hutch_spec *s, const char *dest, const char *type,
			const char *source, const char *options)
{
	const struct hutch_mount *m = find_mount(s, dest);
	if (!m)
		fail_msg("no default mount on %s", dest);
	assert_string_equal(m->type, type);
	assert_string_equal(m->source, source);
	char *o = joined_options(m);
	assert_string_equal(o, options);
	free(o);
}

/* ---- defaults ------------------------------------------------------------- */

static void test_defaults(void **state)
{
	struct hutch_spec *s = hutch_spec_new();
	assert_non_null(s);
	assert_int_equal(HUTCH_DEFAULT_CAPS, 0xa80425fbULL);
	assert_int_equal(s->process.caps.bounding, HUTCH_DEFAULT_CAPS);
	assert_int_equal(s->process.caps.effective, HUTCH_DEFAULT_CAPS);
	assert_int_equal(s->process.caps.permitted, HUTCH_DEFAULT_CAPS);
	assert_int_equal(s->process.caps.inheritable, 0);
	assert_int_equal(s->process.caps.ambient, 0);
	assert_true(s->process.no_new_privileges);
	assert_int_equal(s->process.stop_signal, SIGTERM);
	assert_string_equal(s->process.cwd, "/");
	assert_false(s->process.terminal);
	assert_false(s->privileged);
	assert_int_equal(s->seccomp, HUTCH_SECCOMP_DEFAULT);
	/* Docker's namespaces: all but user (and time, OCI bundles' only), each a new one */
	assert_int_equal(s->n_namespaces, 6);
	for (int t = 0; t < HUTCH_NS_TYPES; t++) {
		const struct hutch_namespace *ns = hutch_spec_namespace(s, t);
		if (t == HUTCH_NS_USER || t == HUTCH_NS_TIME) {
			assert_null(ns);
			continue;
		}
		assert_non_null(ns);
		assert_null(ns->path);
	}
	assert_null(s->id);
	assert_int_equal(s->process.n_args, 0);
	assert_int_equal(s->root.n_layers, 0);

	/* PATH */
	const char *path = hutch_spec_get_env(s, "PATH");
	assert_non_null(path);
	assert_string_equal(path, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	assert_int_equal(s->process.n_env, 1);
	assert_null(s->process.env[s->process.n_env]);

	/* mounts: Docker's (moby oci/defaults.go) */
	check_mount(s, "/proc", "proc", "proc", "nosuid,noexec,nodev");
	check_mount(s, "/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k");
	check_mount(s, "/dev/pts", "devpts", "devpts",
		    "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5");
	check_mount(s, "/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro");
	check_mount(s, "/sys/fs/cgroup", "cgroup2", "cgroup", "nosuid,noexec,nodev,relatime,ro");
	check_mount(s, "/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev");
	check_mount(s, "/dev/shm", "tmpfs", "shm", "nosuid,noexec,nodev,mode=1777,size=65536k");
	assert_int_equal(s->n_mounts, 7);
	/* parents before children, so /dev/pts is not hidden by /dev */
	size_t dev = 0, pts = 0, sys = 0, cg = 0;
	for (size_t i = 0; i < s->n_mounts; i++) {
		if (!strcmp(s->mounts[i].destination, "/dev"))
			dev = i;
		if (!strcmp(s->mounts[i].destination, "/dev/pts"))
			pts = i;
		if (!strcmp(s->mounts[i].destination, "/sys"))
			sys = i;
		if (!strcmp(s->mounts[i].destination, "/sys/fs/cgroup"))
			cg = i;
	}
	assert_true(dev < pts);
	assert_true(sys < cg);

	/* masked and read-only paths */
	static const char *const masked[] = {
	    "/proc/kcore",   "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
	    "/sys/firmware", "/proc/scsi", "/proc/acpi",       "/proc/latency_stats"};
	for (size_t i = 0; i < ARRAY_SIZE(masked); i++)
		if (!strv_contains(s->masked_paths, s->n_masked_paths, masked[i]))
			fail_msg("%s is not masked", masked[i]);
	static const char *const ro[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq",
					 "/proc/bus", "/proc/fs"};
	for (size_t i = 0; i < ARRAY_SIZE(ro); i++)
		if (!strv_contains(s->readonly_paths, s->n_readonly_paths, ro[i]))
			fail_msg("%s is not read-only", ro[i]);
	/* nothing is both masked and read-only, and all are absolute */
	for (size_t i = 0; i < s->n_masked_paths; i++) {
		assert_int_equal(s->masked_paths[i][0], '/');
		assert_false(
		    strv_contains(s->readonly_paths, s->n_readonly_paths, s->masked_paths[i]));
	}

	/* rlimits: NOFILE 1024:1048576, a default (not explicit) */
	assert_int_equal(s->process.n_rlimits, 1);
	assert_int_equal(s->process.rlimits[0].resource, RLIMIT_NOFILE);
	assert_int_equal(s->process.rlimits[0].soft, 1024);
	assert_int_equal(s->process.rlimits[0].hard, 1048576);
	assert_false(s->process.rlimits[0].explicit_);

	hutch_spec_free(s);
	hutch_spec_free(NULL);
}

/* Two specs do not share storage. */
static void test_defaults_independent(void **state)
{
	struct hutch_spec *a = hutch_spec_new(), *b = hutch_spec_new();
	assert_ptr_not_equal(a->mounts, b->mounts);
	assert_ptr_not_equal(a->masked_paths[0], b->masked_paths[0]);
	hutch_spec_set_env(a, "PATH=/only/a");
	assert_string_equal(hutch_spec_get_env(b, "PATH"),
			    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	hutch_spec_free(a);
	hutch_spec_free(b);
}

/* ---- env ------------------------------------------------------------------ */

static void test_env(void **state)
{
	struct hutch_spec *s = hutch_spec_new();
	hutch_spec_set_env(s, "FOO=1");
	hutch_spec_set_env(s, "BAR=two=2");
	assert_int_equal(s->process.n_env, 3);
	assert_string_equal(hutch_spec_get_env(s, "FOO"), "1");
	assert_string_equal(hutch_spec_get_env(s, "BAR"), "two=2");
	/* same key replaces in place */
	hutch_spec_set_env(s, "FOO=replaced");
	assert_int_equal(s->process.n_env, 3);
	assert_string_equal(hutch_spec_get_env(s, "FOO"), "replaced");
	assert_string_equal(s->process.env[1], "FOO=replaced");
	hutch_spec_set_env(s, "PATH=/bin");
	assert_int_equal(s->process.n_env, 3);
	assert_string_equal(s->process.env[0], "PATH=/bin");
	/* a prefix of a key is another key */
	hutch_spec_set_env(s, "FO=short");
	hutch_spec_set_env(s, "FOOD=long");
	assert_int_equal(s->process.n_env, 5);
	assert_string_equal(hutch_spec_get_env(s, "FOO"), "replaced");
	assert_string_equal(hutch_spec_get_env(s, "FO"), "short");
	assert_string_equal(hutch_spec_get_env(s, "FOOD"), "long");
	/* empty value */
	hutch_spec_set_env(s, "EMPTY=");
	assert_string_equal(hutch_spec_get_env(s, "EMPTY"), "");
	/* missing */
	assert_null(hutch_spec_get_env(s, "NOPE"));
	assert_null(hutch_spec_get_env(s, "F"));
	assert_null(s->process.env[s->process.n_env]);
	hutch_spec_free(s);
}

/* ---- mounts --------------------------------------------------------------- */

static void test_add_mount(void **state)
{
	struct hutch_spec *s = hutch_spec_new();
	size_t n = s->n_mounts;
	/* replaces the default /dev/shm, keeping one entry */
	assert_int_equal(
	    hutch_spec_add_mount(s, "tmpfs", "tmpfs", "/dev/shm", "rw,nosuid,size=1g,mode=1777"),
	    0);
	assert_int_equal(s->n_mounts, n);
	check_mount(s, "/dev/shm", "tmpfs", "tmpfs", "rw,nosuid,size=1g,mode=1777");
	const struct hutch_mount *m = find_mount(s, "/dev/shm");
	assert_int_equal(m->n_options, 4);
	assert_string_equal(m->options[2], "size=1g");
	/* a new destination is appended; empty items are dropped */
	assert_int_equal(hutch_spec_add_mount(s, "bind", "/srv/data", "/data", "rbind,,ro,"), 0);
	assert_int_equal(s->n_mounts, n + 1);
	check_mount(s, "/data", "bind", "/srv/data", "rbind,ro");
	assert_string_equal(s->mounts[n].destination, "/data");
	/* no options, NULL or empty */
	assert_int_equal(hutch_spec_add_mount(s, "tmpfs", "tmpfs", "/run", NULL), 0);
	m = find_mount(s, "/run");
	assert_non_null(m);
	assert_int_equal(m->n_options, 0);
	assert_int_equal(hutch_spec_add_mount(s, "tmpfs", "tmpfs", "/tmp", ""), 0);
	assert_int_equal(find_mount(s, "/tmp")->n_options, 0);
	/* replacing one with options by one without clears them */
	assert_int_equal(hutch_spec_add_mount(s, "bind", "/other", "/data", NULL), 0);
	check_mount(s, "/data", "bind", "/other", "");
	assert_int_equal(s->n_mounts, n + 3);
	/* the other defaults are still there */
	check_mount(s, "/proc", "proc", "proc", "nosuid,noexec,nodev");
	hutch_spec_free(s);
}

/* ---- capabilities --------------------------------------------------------- */

static void test_cap_from_name(void **state)
{
	assert_int_equal(hutch_cap_from_name("NET_RAW"), 13);
	assert_int_equal(hutch_cap_from_name("CAP_NET_RAW"), 13);
	assert_int_equal(hutch_cap_from_name("cap_sys_admin"), 21);
	assert_int_equal(hutch_cap_from_name("sys_admin"), 21);
	assert_int_equal(hutch_cap_from_name("CAP_CHOWN"), 0);
	assert_int_equal(hutch_cap_from_name("CHOWN"), 0);
	assert_int_equal(hutch_cap_from_name("BPF"), 39);
	assert_int_equal(hutch_cap_from_name("PERFMON"), 38);
	assert_int_equal(hutch_cap_from_name("CHECKPOINT_RESTORE"), 40);
	assert_int_equal(hutch_cap_from_name("NOT_A_CAP"), -1);
	assert_int_equal(hutch_cap_from_name(""), -1);
	assert_int_equal(hutch_cap_from_name("CAP_"), -1);
	assert_int_equal(hutch_cap_from_name("CAP_CAP_CHOWN"), -1);
	assert_int_equal(hutch_cap_from_name("NET_RAW "), -1);
	assert_int_equal(hutch_cap_from_name("NET"), -1);
	assert_int_equal(hutch_cap_from_name("13"), -1);
}

/* Every capability the headers know, by libcap's name for it. */
static void test_cap_names_match_libcap(void **state)
{
	for (int i = 0; i <= CAP_LAST_CAP; i++) {
		char *name = cap_to_name((cap_value_t)i);
		assert_non_null(name);
		if (!strncmp(name, "cap_", 4)) {
			int got = hutch_cap_from_name(name);
			if (got != i)
				fail_msg("hutch_cap_from_name(\"%s\") = %d, want %d", name, got, i);
		}
		cap_free(name);
	}
}

static void test_docker_default_caps(void **state)
{
	static const char *const docker[] = {
	    "CHOWN",   "DAC_OVERRIDE", "FSETID",	   "FOWNER",
	    "MKNOD",   "NET_RAW",      "SETGID",	   "SETUID",
	    "SETFCAP", "SETPCAP",      "NET_BIND_SERVICE", "SYS_CHROOT",
	    "KILL",    "AUDIT_WRITE",
	};
	assert_int_equal(ARRAY_SIZE(docker), 14);
	uint64_t caps = 0;
	for (size_t i = 0; i < ARRAY_SIZE(docker); i++) {
		int c = hutch_cap_from_name(docker[i]);
		if (c < 0)
			fail_msg("unknown capability %s", docker[i]);
		assert_false(caps & (1ULL << c)); /* no two names share a bit */
		caps |= 1ULL << c;
	}
	assert_int_equal(caps, 0xa80425fbULL);
	assert_int_equal(caps, HUTCH_DEFAULT_CAPS);
	assert_int_equal(__builtin_popcountll(HUTCH_DEFAULT_CAPS), 14);
	/* and via the kernel's constants */
	uint64_t k = (1ULL << CAP_CHOWN) | (1ULL << CAP_DAC_OVERRIDE) | (1ULL << CAP_FSETID) |
		     (1ULL << CAP_FOWNER) | (1ULL << CAP_MKNOD) | (1ULL << CAP_NET_RAW) |
		     (1ULL << CAP_SETGID) | (1ULL << CAP_SETUID) | (1ULL << CAP_SETFCAP) |
		     (1ULL << CAP_SETPCAP) | (1ULL << CAP_NET_BIND_SERVICE) |
		     (1ULL << CAP_SYS_CHROOT) | (1ULL << CAP_KILL) | (1ULL << CAP_AUDIT_WRITE);
	assert_int_equal(k, HUTCH_DEFAULT_CAPS);
	/* what Docker leaves out */
	assert_false(HUTCH_DEFAULT_CAPS & (1ULL << hutch_cap_from_name("SYS_ADMIN")));
	assert_false(HUTCH_DEFAULT_CAPS & (1ULL << hutch_cap_from_name("NET_ADMIN")));
	assert_false(HUTCH_DEFAULT_CAPS & (1ULL << hutch_cap_from_name("SYS_PTRACE")));
}

/* ---- validation ----------------------------------------------------------- */

static struct hutch_spec *valid_spec(void)
{
	struct hutch_spec *s = hutch_spec_new();
	s->id = xstrdup(valid_id);
	s->process.args = xcalloc(3, sizeof(char *));
	s->process.args[0] = xstrdup("/bin/sh");
	s->process.args[1] = xstrdup("-c");
	s->process.n_args = 2;
	s->root.layers = xcalloc(2, sizeof(char *));
	s->root.layers[0] = xstrdup("/var/lib/hutch/images/layers/abc");
	s->root.n_layers = 1;
	s->hostname = xstrdup("web");
	return s;
}

/* Validation fails, and the message contains `needle`. */
static void expect_invalid(struct hutch_spec *s, const char *needle)
{
	struct hutch_err *err = NULL;
	int r = hutch_spec_validate(s, &err);
	if (r == 0)
		fail_msg("spec accepted; expected an error mentioning '%s'", needle);
	assert_int_equal(r, -1);
	assert_non_null(err);
	assert_non_null(err->msg);
	if (!strstr(err->msg, needle))
		fail_msg("error '%s' does not mention '%s'", err->msg, needle);
	hutch_err_free(&err);
	hutch_spec_free(s);
}

static void set_str(char **field, const char *v)
{
	free(*field);
	*field = v ? xstrdup(v) : NULL;
}

static void test_validate_accepts(void **state)
{
	struct hutch_spec *s = valid_spec();
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_spec_validate(s, &err), 0);
	assert_null(err);
	/* no hostname: refused (the container's process would have none to set) */
	set_str(&s->hostname, NULL);
	assert_int_equal(hutch_spec_validate(s, &err), -1);
	assert_non_null(strstr(err->msg, "no hostname"));
	hutch_err_free(&err);
	/* 64-char hostname, a clean nested cwd, extra mounts */
	char h[65];
	memset(h, 'h', 64);
	h[21] = h[42] = '.';
	h[64] = '\0';
	set_str(&s->hostname, h);
	set_str(&s->name, "web-1.prod_x");
	set_str(&s->process.cwd, "/srv/app/..data/.hidden");
	hutch_spec_add_mount(s, "bind", "/src", "/opt/x..y", "rbind,ro");
	hutch_spec_add_mount(s, "tmpfs", "tmpfs", "/tmp", "size=64m");
	assert_int_equal(hutch_spec_validate(s, &err), 0);
	assert_null(err);
	/* a network namespace joined by path, or the caller's */
	hutch_spec_set_namespace(s, HUTCH_NS_NETWORK, "/run/netns/x");
	assert_int_equal(hutch_spec_validate(s, &err), 0);
	hutch_spec_share_namespace(s, HUTCH_NS_NETWORK);
	assert_null(hutch_spec_namespace(s, HUTCH_NS_NETWORK));
	assert_int_equal(hutch_spec_validate(s, &err), 0);
	/* a new user namespace with its mappings */
	hutch_spec_set_namespace(s, HUTCH_NS_USER, NULL);
	s->uid_map = xcalloc(1, sizeof(*s->uid_map));
	s->uid_map[0] = (struct hutch_id_map){0, 1000, 1};
	s->n_uid_map = 1;
	assert_int_equal(hutch_spec_validate(s, &err), 0);
	/* ambient capabilities in permitted and inheritable */
	s->process.caps.inheritable = s->process.caps.ambient = 1ULL << 10;
	assert_int_equal(hutch_spec_validate(s, &err), 0);
	hutch_spec_free(s);
}

static void test_validate_rejects(void **state)
{
	struct hutch_spec *s;

	/* ids */
	s = valid_spec();
	set_str(&s->id, "not-a-hex-id");
	expect_invalid(s, "not-a-hex-id");
	s = valid_spec();
	set_str(&s->id, "0123456789abcdef");
	expect_invalid(s, "0123456789abcdef");
	s = valid_spec();
	set_str(&s->id, "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF");
	expect_invalid(s, "0123456789ABCDEF");
	s = valid_spec();
	char *long_id = xasprintf("%s0", valid_id);
	set_str(&s->id, long_id);
	expect_invalid(s, long_id);
	free(long_id);
	s = valid_spec();
	set_str(&s->id, NULL);
	expect_invalid(s, "container id");

	/* no command */
	s = valid_spec();
	for (size_t i = 0; i < s->process.n_args; i++)
		free(s->process.args[i]);
	s->process.args[0] = s->process.args[1] = NULL;
	s->process.n_args = 0;
	expect_invalid(s, "command");
	s = valid_spec();
	set_str(&s->process.args[0], "");
	expect_invalid(s, "command");

	/* cwd */
	s = valid_spec();
	set_str(&s->process.cwd, "relative/dir");
	expect_invalid(s, "relative/dir");
	s = valid_spec();
	set_str(&s->process.cwd, "/srv/../etc");
	expect_invalid(s, "/srv/../etc");
	s = valid_spec();
	set_str(&s->process.cwd, "/srv/..");
	expect_invalid(s, "/srv/..");
	s = valid_spec();
	set_str(&s->process.cwd, "");
	expect_invalid(s, "working directory");

	/* layers */
	s = valid_spec();
	s->root.n_layers = 0;
	free(s->root.layers[0]);
	s->root.layers[0] = NULL;
	expect_invalid(s, "layers");

	/* mount destinations */
	s = valid_spec();
	hutch_spec_add_mount(s, "tmpfs", "tmpfs", "relative/mnt", NULL);
	expect_invalid(s, "relative/mnt");
	s = valid_spec();
	hutch_spec_add_mount(s, "bind", "/host", "/", "rbind");
	expect_invalid(s, "'/'");
	s = valid_spec();
	hutch_spec_add_mount(s, "bind", "/host", "/data/../../etc", "rbind");
	expect_invalid(s, "/data/../../etc");
	s = valid_spec();
	hutch_spec_add_mount(s, "bind", "/host", "/data/..", "rbind");
	expect_invalid(s, "/data/..");
	s = valid_spec();
	hutch_spec_add_mount(s, "bind", "/host", "", "rbind");
	expect_invalid(s, "mount destination");

	/* hostname: the CLI's rule for every spec, with the reason */
	s = valid_spec();
	char h[66];
	memset(h, 'x', 65);
	h[21] = h[42] = '.';
	h[65] = '\0';
	set_str(&s->hostname, h);
	expect_invalid(s, h);
	static const struct {
		const char *hostname, *why;
	} bad_hostnames[] = {
	    {"bad_host", "invalid hostname 'bad_host': '_' is not allowed"},
	    {"", "invalid hostname '': it is empty"},
	    {"-lead", "a label starts with '-'"},
	    {"a..b", "a label between dots is empty"},
	    {"tab\there", "invalid hostname 'tab\\x09here': '\\x09' is not allowed"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad_hostnames); i++) {
		s = valid_spec();
		set_str(&s->hostname, bad_hostnames[i].hostname);
		expect_invalid(s, bad_hostnames[i].why);
	}

	/* container names: Docker's rule, with the rule in the message */
	static const char *const bad_names[] = {"x",   "-dash", ".dot",	      "_under",
						"a/b", "/lead", "semi;colon", ""};
	for (size_t i = 0; i < ARRAY_SIZE(bad_names); i++) {
		s = valid_spec();
		set_str(&s->name, bad_names[i]);
		char *want =
		    xasprintf("invalid container name '%s': use 2 or more letters, digits, "
			      "'_', '.' or '-', starting with a letter or digit",
			      bad_names[i]);
		expect_invalid(s, want);
		free(want);
	}

	/* namespaces: what the runtime cannot run is refused by name */
	static const struct {
		enum hutch_ns_type type;
		const char *path, *want;
	} joins[] = {
		{HUTCH_NS_NETWORK, "", "network namespace path '' must be an absolute path"},
		{HUTCH_NS_NETWORK, "run/netns/x",
		 "network namespace path 'run/netns/x' must be an absolute path"},
		{HUTCH_NS_IPC, "/proc/1/ns/ipc",
		 "joining an existing ipc namespace (/proc/1/ns/ipc) is not supported"},
		{HUTCH_NS_USER, "/proc/1/ns/user",
		 "joining an existing user namespace (/proc/1/ns/user)"},
	};
	for (size_t i = 0; i < sizeof(joins) / sizeof(joins[0]); i++) {
		s = valid_spec();
		hutch_spec_set_namespace(s, joins[i].type, joins[i].path);
		expect_invalid(s, joins[i].want);
	}
	static const enum hutch_ns_type always[] = {HUTCH_NS_MOUNT, HUTCH_NS_PID, HUTCH_NS_UTS,
						    HUTCH_NS_IPC, HUTCH_NS_CGROUP};
	for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++) {
		s = valid_spec();
		hutch_spec_share_namespace(s, always[i]);
		char *want = xasprintf("a container without its own %s namespace is not "
				       "supported",
				       hutch_ns_type_name(always[i]));
		expect_invalid(s, want);
		free(want);
	}
	s = valid_spec();
	s->namespaces = xrealloc(s->namespaces, (s->n_namespaces + 1) * sizeof(*s->namespaces));
	s->namespaces[s->n_namespaces++] = (struct hutch_namespace){HUTCH_NS_PID, NULL};
	expect_invalid(s, "the pid namespace is listed twice");
	s = valid_spec();
	hutch_spec_set_namespace(s, HUTCH_NS_USER, NULL);
	expect_invalid(s, "a new user namespace needs a uid mapping");
	s = valid_spec();
	s->uid_map = xcalloc(1, sizeof(*s->uid_map));
	s->n_uid_map = 1;
	expect_invalid(s, "no user namespace of its own");

	/* capability sets the kernel would refuse */
	s = valid_spec();
	s->process.caps.effective |= 1ULL << 21;
	s->process.caps.bounding = s->process.caps.permitted = HUTCH_DEFAULT_CAPS;
	expect_invalid(s, "capability CAP_SYS_ADMIN is in the effective set but not in the "
			  "permitted set");
	s = valid_spec();
	s->process.caps.ambient = 1ULL << 13;
	expect_invalid(s, "capability CAP_NET_RAW is in the ambient set but not in both the "
			  "permitted and the inheritable set");
}

static void test_ns_and_cap_names(void **state)
{
	for (int t = 0; t < HUTCH_NS_TYPES; t++)
		assert_int_equal(hutch_ns_type_from_name(hutch_ns_type_name(t)), t);
	assert_string_equal(hutch_ns_type_name(HUTCH_NS_NETWORK), "network");
	assert_string_equal(hutch_ns_type_name(HUTCH_NS_MOUNT), "mount");
	assert_int_equal(hutch_ns_type_from_name("net"), -1);
	assert_int_equal(hutch_ns_type_from_name(""), -1);
	assert_string_equal(hutch_cap_name(0), "CAP_CHOWN");
	assert_string_equal(hutch_cap_name(40), "CAP_CHECKPOINT_RESTORE");
	assert_null(hutch_cap_name(41));
	assert_null(hutch_cap_name(-1));
	for (int c = 0; c <= 40; c++)
		assert_int_equal(hutch_cap_from_name(hutch_cap_name(c)), c);
	assert_int_equal(hutch_cap_from_name("net_raw"), 13);
	assert_int_equal(hutch_cap_from_name("CAP_"), -1);
	/* set_namespace replaces; share removes */
	struct hutch_spec *s = hutch_spec_new();
	hutch_spec_set_namespace(s, HUTCH_NS_NETWORK, "/run/netns/a");
	hutch_spec_set_namespace(s, HUTCH_NS_NETWORK, "/run/netns/b");
	assert_int_equal(s->n_namespaces, 6);
	assert_string_equal(hutch_spec_namespace(s, HUTCH_NS_NETWORK)->path, "/run/netns/b");
	hutch_spec_share_namespace(s, HUTCH_NS_NETWORK);
	hutch_spec_share_namespace(s, HUTCH_NS_NETWORK);
	assert_int_equal(s->n_namespaces, 5);
	hutch_spec_free(s);
}

/* ---- DNS and /etc/hosts ------------------------------------------------------ */

static void test_ip_valid(void **state)
{
	static const char *const good[] = {"1.2.3.4", "127.0.0.1", "0.0.0.0", "::1", "::",
					   "fe80::1%eth0", "2001:db8::53", "::ffff:10.0.0.1",
					   "fe80::1%br-1.2"};
	static const char *const bad[] = {
	    "",		 "1.2.3",    "1.2.3.400", "1.2.3.4.5",	  "a.b.c.d", "::g",  "fe80::1%",
	    "fe80::1%a b", " 1.2.3.4", "1.2.3.4 ",  "01.2.3.4x", "host-gateway", "1.2.3.4%eth0",
	    "[::1]"};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		if (!hutch_ip_valid(good[i]))
			fail_msg("'%s' rejected", good[i]);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (hutch_ip_valid(bad[i]))
			fail_msg("'%s' accepted", bad[i]);
	assert_false(hutch_ip_valid(NULL));
	char longs[100];
	memset(longs, '1', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	assert_false(hutch_ip_valid(longs));
}

static void test_hostname_valid(void **state)
{
	static const char *const good[] = {"db", "web-1", "a.b.c", "my_service", "x", "EXAMPLE.com",
					   "0123", "a-b.c-d"};
	static const char *const bad[] = {"",	"-db", "db-", "a..b",	"a\tb", ".a", "a.", "a b",
					  "a#b", "a:b", "ä",   "a/b", "a.-b.c", "a\nb", "db-.x"};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		if (!hutch_hostname_valid(good[i]))
			fail_msg("'%s' rejected", good[i]);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (hutch_hostname_valid(bad[i]))
			fail_msg("'%s' accepted", bad[i]);
	char label[65];
	memset(label, 'l', 64);
	label[64] = '\0';
	assert_false(hutch_hostname_valid(label));
	label[63] = '\0';
	assert_true(hutch_hostname_valid(label));
	/* 253 characters at most */
	char name[300] = "";
	while (strlen(name) + 4 <= 253)
		strcat(name, "abc.");
	strcat(name, "x");
	assert_true(strlen(name) <= 253);
	assert_true(hutch_hostname_valid(name));
	strcat(name, ".abcd");
	assert_true(strlen(name) > 253);
	assert_false(hutch_hostname_valid(name));
}

/* The call fails with a message naming needle, and the spec is unchanged. */
#define EXPECT_ADD_FAILS(call, needle)                                                             \
	do {                                                                                       \
		struct hutch_err *err_ = NULL;                                                     \
		assert_int_equal((call), -1);                                                      \
		assert_non_null(err_ = err);                                                       \
		if (!strstr(err_->msg, (needle)))                                                  \
			fail_msg("error '%s' does not mention '%s'", err_->msg, (needle));         \
		hutch_err_free(&err);                                                              \
	} while (0)

static void test_dns_and_hosts(void **state)
{
	struct hutch_spec *s = hutch_spec_new();
	struct hutch_err *err = NULL;
	assert_int_equal(s->dns.n_servers + s->dns.n_search + s->dns.n_options, 0);
	assert_int_equal(s->n_extra_hosts, 0);
	assert_int_equal(hutch_spec_add_dns_server(s, "10.0.0.53", &err), 0);
	assert_int_equal(hutch_spec_add_dns_server(s, "fd00::53", &err), 0);
	assert_int_equal(hutch_spec_add_dns_search(s, "example.com", &err), 0);
	assert_int_equal(hutch_spec_add_dns_search(s, ".", &err), 0);
	assert_int_equal(hutch_spec_add_dns_option(s, "ndots:2", &err), 0);
	assert_int_equal(hutch_spec_add_host(s, "db", "10.1.2.3", &err), 0);
	assert_int_equal(hutch_spec_add_host(s, "db6", "fd00::3", &err), 0);
	assert_null(err);
	assert_int_equal(s->dns.n_servers, 2);
	assert_string_equal(s->dns.servers[1], "fd00::53");
	assert_null(s->dns.servers[2]);
	assert_int_equal(s->dns.n_search, 2);
	assert_string_equal(s->dns.search[1], ".");
	assert_int_equal(s->dns.n_options, 1);
	assert_int_equal(s->n_extra_hosts, 2);
	assert_string_equal(s->extra_hosts[1].hostname, "db6");
	assert_string_equal(s->extra_hosts[1].address, "fd00::3");

	EXPECT_ADD_FAILS(hutch_spec_add_dns_server(s, "10.0.0", &err), "'10.0.0'");
	EXPECT_ADD_FAILS(hutch_spec_add_dns_server(s, "dns.example", &err), "'dns.example'");
	EXPECT_ADD_FAILS(hutch_spec_add_dns_search(s, "a b", &err), "'a b'");
	EXPECT_ADD_FAILS(hutch_spec_add_dns_search(s, "..", &err), "'..'");
	EXPECT_ADD_FAILS(hutch_spec_add_dns_option(s, "nd ots", &err), "'nd ots'");
	EXPECT_ADD_FAILS(hutch_spec_add_dns_option(s, "", &err), "DNS option ''");
	EXPECT_ADD_FAILS(hutch_spec_add_dns_option(s, "a#b", &err), "'a#b'");
	EXPECT_ADD_FAILS(hutch_spec_add_host(s, "bad host", "1.2.3.4", &err), "'bad host'");
	EXPECT_ADD_FAILS(hutch_spec_add_host(s, "ok", "1.2.3.999", &err), "'1.2.3.999'");
	EXPECT_ADD_FAILS(hutch_spec_add_host(s, "ok", "host-gateway", &err), "host-gateway");
	assert_int_equal(s->dns.n_servers, 2);
	assert_int_equal(s->dns.n_search, 2);
	assert_int_equal(s->dns.n_options, 1);
	assert_int_equal(s->n_extra_hosts, 2);
	hutch_spec_free(s);
}

static void test_privileged(void **state)
{
	struct hutch_spec *s = hutch_spec_new();
	hutch_spec_set_privileged(s);
	assert_true(s->privileged);
	assert_int_equal(s->process.caps.bounding, ~0ULL);
	assert_int_equal(s->process.caps.effective, ~0ULL);
	assert_int_equal(s->process.caps.permitted, ~0ULL);
	assert_int_equal(s->process.caps.inheritable, 0);
	assert_int_equal(s->process.caps.ambient, 0);
	assert_false(s->process.no_new_privileges);
	assert_int_equal(s->seccomp, HUTCH_SECCOMP_UNCONFINED);
	assert_int_equal(s->n_masked_paths, 0);
	assert_int_equal(s->n_readonly_paths, 0);
	/* /sys and /sys/fs/cgroup writable, their other options kept */
	check_mount(s, "/sys", "sysfs", "sysfs", "nosuid,noexec,nodev");
	check_mount(s, "/sys/fs/cgroup", "cgroup2", "cgroup", "nosuid,noexec,nodev,relatime");
	/* the rest as before */
	check_mount(s, "/proc", "proc", "proc", "nosuid,noexec,nodev");
	check_mount(s, "/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k");
	assert_int_equal(s->n_mounts, 7);
	/* twice is the same */
	hutch_spec_set_privileged(s);
	check_mount(s, "/sys", "sysfs", "sysfs", "nosuid,noexec,nodev");
	hutch_spec_free(s);
}

static void test_validate_dns_and_hosts(void **state)
{
	struct hutch_spec *s;
	/* fields filled directly (by a later module) are checked too */
	s = valid_spec();
	s->dns.servers = xcalloc(2, sizeof(char *));
	s->dns.servers[0] = xstrdup("300.1.1.1");
	s->dns.n_servers = 1;
	expect_invalid(s, "invalid DNS server '300.1.1.1': expected an IPv4 or IPv6 address");
	s = valid_spec();
	s->dns.search = xcalloc(2, sizeof(char *));
	s->dns.search[0] = xstrdup("bad domain");
	s->dns.n_search = 1;
	expect_invalid(s, "invalid DNS search domain 'bad domain': expected a domain name like "
			  "example.com");
	s = valid_spec();
	s->dns.options = xcalloc(2, sizeof(char *));
	s->dns.options[0] = xstrdup("a\nnameserver 6.6.6.6");
	s->dns.n_options = 1;
	expect_invalid(s, "': expected one resolv.conf option like ndots:2");
	s = valid_spec();
	s->extra_hosts = xcalloc(1, sizeof(*s->extra_hosts));
	s->extra_hosts[0] =
	    (struct hutch_host_entry){xstrdup("x\n1.1.1.1 evil"), xstrdup("1.1.1.1")};
	s->n_extra_hosts = 1;
	expect_invalid(s, "for /etc/hosts: expected letters, digits, '-', '_' and dots");
	s = valid_spec();
	s->extra_hosts = xcalloc(1, sizeof(*s->extra_hosts));
	s->extra_hosts[0] = (struct hutch_host_entry){xstrdup("db"), xstrdup("1.1.1")};
	s->n_extra_hosts = 1;
	expect_invalid(s, "invalid address '1.1.1' for host 'db' in /etc/hosts: expected an IPv4 "
			  "or IPv6 address");
}


/* A mount made below a shared bind would propagate to the host and stay there. */
static void test_validate_mounts_below_shared_binds(void **state)
{
	struct hutch_spec *s = valid_spec();
	hutch_spec_add_mount(s, "bind", "/srv", "/data", "rbind,rshared");
	hutch_spec_add_mount(s, "tmpfs", "tmpfs", "/data/tmp", NULL);
	expect_invalid(s, "/data/tmp");
	s = valid_spec();
	hutch_spec_add_mount(s, "bind", "/srv", "/data/", "rbind,shared");
	hutch_spec_add_mount(s, "bind", "/x", "/data/x/y", "rbind");
	expect_invalid(s, "/data/x/y");
	/* but not below rslave, and not beside it */
	s = valid_spec();
	struct hutch_err *err = NULL;
	hutch_spec_add_mount(s, "bind", "/srv", "/data", "rbind,rslave");
	hutch_spec_add_mount(s, "tmpfs", "tmpfs", "/data/tmp", NULL);
	hutch_spec_add_mount(s, "bind", "/srv2", "/data2", "rbind,rshared");
	hutch_spec_add_mount(s, "tmpfs", "tmpfs", "/data2x", NULL);
	assert_int_equal(hutch_spec_validate(s, &err), 0);
	assert_null(err);
	hutch_spec_free(s);
}

/* The container's own hostname: RFC 1123, 64 characters, and the reason. */
static void test_hostname_problem(void **state)
{
	char buf[HUTCH_REASON_MAX];
	static const char *const good[] = {"db",   "web-1", "a.b.c",  "EXAMPLE.com",
					   "0123", "x",	    "a-b.c-d"};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		if (hutch_hostname_problem(good[i], buf))
			fail_msg("'%s' refused: %s", good[i], hutch_hostname_problem(good[i], buf));
	static const struct {
		const char *name, *why;
	} bad[] = {
	    {"", "it is empty"},
	    {"my_service", "'_' is not allowed"},
	    {"a b", "' ' is not allowed"},
	    {"a\nb", "'\\x0a' is not allowed"},
	    {"a'b", "'\\x27' is not allowed"},
	    {"-db", "a label starts with '-'"},
	    {"a.-b", "a label starts with '-'"},
	    {"db-", "a label ends with '-'"},
	    {"db-.x", "a label ends with '-'"},
	    {"a..b", "a label between dots is empty"},
	    {".a", "a label between dots is empty"},
	    {"a.", "it ends with '.'"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		const char *why = hutch_hostname_problem(bad[i].name, buf);
		if (!why || strcmp(why, bad[i].why))
			fail_msg("'%s': '%s', want '%s'", bad[i].name, why ? why : "(accepted)",
				 bad[i].why);
	}
	char name[80];
	memset(name, 'l', 64);
	name[64] = '\0';
	assert_string_equal(hutch_hostname_problem(name, buf),
			    "a label is longer than 63 characters");
	name[63] = '\0';
	assert_null(hutch_hostname_problem(name, buf));
	memset(name, 'a', 65);
	name[20] = name[40] = name[60] = '.';
	name[65] = '\0';
	assert_string_equal(hutch_hostname_problem(name, buf), "it is longer than 64 characters");
	name[64] = '\0';
	assert_null(hutch_hostname_problem(name, buf));
	assert_string_equal(hutch_hostname_problem(NULL, buf), "it is empty");
}

static void test_path_same_and_below(void **state)
{
	assert_true(path_same("/etc/hosts", "/etc/hosts/"));
	assert_true(path_same("/etc//", "/etc"));
	assert_true(path_same("/", "/"));
	assert_false(path_same("/etc", "/etc2"));
	assert_false(path_same("/etc/hosts", "/etc"));
	assert_true(path_below("/etc/hosts", "/etc"));
	assert_true(path_below("/etc/hosts", "/etc/"));
	assert_true(path_below("/etc", "/"));
	assert_false(path_below("/", "/"));
	assert_false(path_below("/etc", "/etc"));
	assert_false(path_below("/etc/", "/etc"));
	assert_false(path_below("/etc2/x", "/etc"));
	assert_false(path_below("/et", "/etc"));
}

/* Mounts hutch makes itself on or below a shared bind would be left on the host. */
static void test_validate_runtime_mounts_in_shared_binds(void **state)
{
	struct hutch_spec *s = valid_spec();
	hutch_spec_add_mount(s, "bind", "/x", "/sys/firmware", "rbind,rshared");
	expect_invalid(s, "the shared bind mount of /x on /sys/firmware would take hutch's mount "
			  "on /sys/firmware (a masked path) to the host, where it would stay");
	s = valid_spec();
	hutch_spec_add_mount(s, "bind", "/x", "/proc/sys/", "rbind,shared");
	expect_invalid(s, "hutch's mount on /proc/sys (a read-only path)");
	s = valid_spec();
	hutch_spec_add_mount(s, "bind", "/x", "/sys/devices", "rbind,rshared");
	expect_invalid(s, "hutch's mount on /sys/devices/virtual/powercap (a masked path)");
	s = valid_spec();
	hutch_spec_add_mount(s, "bind", "/x", "/dev/null", "bind,rshared");
	expect_invalid(s, "hutch's mount on /dev/null (its /dev nodes)");

	struct hutch_err *err = NULL;
	/* rslave sends nothing back; a shared tmpfs has no peer on the host; and
	 * --privileged has no masked or read-only paths */
	s = valid_spec();
	hutch_spec_add_mount(s, "bind", "/x", "/sys/firmware", "rbind,rslave");
	hutch_spec_add_mount(s, "tmpfs", "tmpfs", "/proc/sys", "shared");
	hutch_spec_add_mount(s, "bind", "/y", "/srv", "rbind,rshared");
	assert_int_equal(hutch_spec_validate(s, &err), 0);
	assert_null(err);
	hutch_spec_free(s);
	s = valid_spec();
	hutch_spec_set_privileged(s);
	hutch_spec_add_mount(s, "bind", "/x", "/sys/firmware", "rbind,rshared");
	assert_int_equal(hutch_spec_validate(s, &err), 0);
	assert_null(err);
	hutch_spec_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_defaults_independent),
	    cmocka_unit_test(test_env),
	    cmocka_unit_test(test_add_mount),
	    cmocka_unit_test(test_cap_from_name),
	    cmocka_unit_test(test_cap_names_match_libcap),
	    cmocka_unit_test(test_ns_and_cap_names),
	    cmocka_unit_test(test_docker_default_caps),
	    cmocka_unit_test(test_validate_accepts),
	    cmocka_unit_test(test_validate_rejects),
	    cmocka_unit_test(test_validate_mounts_below_shared_binds),
	    cmocka_unit_test(test_ip_valid),
	    cmocka_unit_test(test_hostname_valid),
	    cmocka_unit_test(test_dns_and_hosts),
	    cmocka_unit_test(test_privileged),
	    cmocka_unit_test(test_validate_dns_and_hosts),
	    cmocka_unit_test(test_hostname_problem),
	    cmocka_unit_test(test_path_same_and_below),
	    cmocka_unit_test(test_validate_runtime_mounts_in_shared_binds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
