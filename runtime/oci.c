/* The OCI runtime lifecycle: create (the process set up and waiting before
 * exec), start, state, kill, delete, as the runtime spec describes them.
 *
 * `create` returns while the container's process waits, so that process must
 * outlive it: once ready it reports so, drops its parent-death signal and
 * blocks in accept() on STATE/ID/start.sock; `start` connects, and the exec
 * closes the connection (EOF: started; a report: why not). A process that
 * died leaves a socket nobody accepts on: `start` says so, `delete` cleans up. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/sched.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime/container_internal.h"
#include "runtime/process_internal.h"
#include "runtime/seccomp_internal.h"

#define OCI_VERSION "1.0.2"

struct oci_child_args {
	const struct hutch_oci_config *cfg;
	struct mount_ctx mctx;
	const struct hutch_runtime *rt;
	/* the state the createContainer and startContainer hooks get, but its
	 * pid (the child's own, in the runtime's pid namespace, put in by it) */
	struct json_object *hook_state;
	char *hook_state_text;
};

static int run_hook(const struct hutch_oci_hook *h, const char *kind, const char *state_json,
		    struct hutch_err **err);
/* In the container's process: the hooks of kind, one after the other; the
 * first that fails fails the container's start (its create or start). */
static void child_hooks(struct proc_ctx *pc, struct oci_child_args *a,
			enum hutch_oci_hook_kind kind)
{
	const struct hutch_oci_config *cfg = a->cfg;
	struct hutch_err *err = NULL;
	for (size_t i = 0; i < cfg->n_hooks[kind]; i++)
		if (run_hook(&cfg->hooks[kind][i],
			     kind == HUTCH_HOOK_CREATE_CONTAINER ? "createContainer"
								 : "startContainer",
			     a->hook_state_text, &err) < 0)
			proc_fail(pc, 125, err);
}

static void on_start(struct proc_ctx *pc, void *arg)
{
	child_hooks(pc, arg, HUTCH_HOOK_START_CONTAINER);
}

/* Sysctls that live in a namespace the container has of its own: any other
 * would be written for the whole host (runc's list). */
static int check_sysctl(const struct hutch_oci_config *cfg, struct hutch_err **err)
{
	const struct hutch_spec *s = cfg->spec;
	for (size_t i = 0; i < cfg->n_sysctl; i++) {
		const char *k = cfg->sysctl[i].key;
		static const char *const ipc[] = {
		    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
		    "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"};
		bool is_ipc = !strncmp(k, "fs.mqueue.", 10);
		for (size_t j = 0; j < ARRAY_SIZE(ipc); j++)
			is_ipc |= !strcmp(k, ipc[j]);
		enum hutch_ns_type ns;
		if (is_ipc)
			ns = HUTCH_NS_IPC;
		else if (!strncmp(k, "net.", 4))
			ns = HUTCH_NS_NETWORK;
		else if (!strcmp(k, "kernel.hostname") || !strcmp(k, "kernel.domainname"))
			ns = HUTCH_NS_UTS;
		else
			return hutch_fail(
			    err, 0,
			    "linux.sysctl: %s is not namespaced: setting it would set "
			    "it for the whole host",
			    k);
		if (!spec_has_ns(s, ns))
			return hutch_fail(
			    err, 0,
			    "linux.sysctl: %s needs a %s namespace of the container's "
			    "own (it would set the host's)",
			    k, hutch_ns_type_name(ns));
	}
	return 0;
}

static int write_proc(const char *path, const char *value, struct hutch_err **err)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write_all(fd, value, strlen(value)) < 0)
		return hutch_fail_sys(err, "write '%s' to %s", value, path);
	return 0;
}

/* In the new namespaces: join those given by path, network and names,
 * sysctls, the root filesystem, then the process's own last steps. */
static __attribute__((noreturn)) void oci_child(struct proc_ctx *pc, void *arg)
{
	struct oci_child_args *a = arg;
	const struct hutch_oci_config *cfg = a->cfg;
	const struct hutch_spec *spec = cfg->spec;
	struct hutch_err *err = NULL;
	proc_oci_initial_affinity(pc);
	/* before its user namespace's root is become: then /proc/self is not ours */
	if (cfg->has_oom_score_adj) {
		char v[16];
		snprintf(v, sizeof(v), "%d", cfg->oom_score_adj);
		if (write_proc("/proc/self/oom_score_adj", v, &err) < 0)
			proc_fail(pc, 125, err);
	}
	if (ns_oci_enter(cfg, &err) < 0)
		proc_fail(pc, 125, err);
	const struct hutch_namespace *net = hutch_spec_namespace(spec, HUTCH_NS_NETWORK);
	if (net && !net->path && net_loopback_up(&err) < 0)
		proc_fail(pc, 125, err);
	if (spec->hostname && sethostname(spec->hostname, strlen(spec->hostname)) < 0) {
		hutch_fail_sys(&err, "set the hostname '%s'", spec->hostname);
		proc_fail(pc, 125, err);
	}
	if (cfg->domainname && setdomainname(cfg->domainname, strlen(cfg->domainname)) < 0) {
		hutch_fail_sys(&err, "set the domain name '%s'", cfg->domainname);
		proc_fail(pc, 125, err);
	}
	/* /proc is still the host's mount, but its sys/ files answer for the
	 * namespaces of whoever opens them: ours */
	for (size_t i = 0; i < cfg->n_sysctl; i++) {
		_cleanup_free_ char *path = xasprintf("/proc/sys/%s", cfg->sysctl[i].key);
		for (char *c = path + 10; *c; c++)
			if (*c == '.')
				*c = '/';
		if (write_proc(path, cfg->sysctl[i].value, &err) < 0)
			proc_fail(pc, 125, hutch_err_wrap(&err, "linux.sysctl") < 0 ? err : err);
	}
	if (a->hook_state) {
		/* /proc is still the runtime's: self is our pid there, the one
		 * `state` gives */
		char self[32] = "";
		(void)!readlink("/proc/self", self, sizeof(self) - 1);
		json_object_object_add(a->hook_state, "pid", json_object_new_int64(atoll(self)));
		a->hook_state_text = xstrdup(json_object_to_json_string_ext(
		    a->hook_state, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	int rootfd = -1;
	if (mounts_setup_rootfs(&a->mctx, &rootfd, &err) < 0 ||
	    mounts_setup_container(&a->mctx, rootfd, &err) < 0)
		proc_fail(pc, 125, err);
	/* createContainer: in the container's namespaces, its mounts made, before
	 * pivot_root (the hook's path is the runtime's), as runc runs them */
	child_hooks(pc, a, HUTCH_HOOK_CREATE_CONTAINER);
	if (mounts_pivot_root(rootfd, spec->root.readonly, &err) < 0)
		proc_fail(pc, 125, err);
	close(rootfd);
	umask(cfg->umask >= 0 ? (mode_t)cfg->umask : 0022);
	proc_setup_and_exec(pc);
}

static int child_started(pid_t pid, void *arg, struct hutch_err **err)
{
	struct oci_child_args *a = arg;
	return userns_write_maps(a->rt, a->cfg->spec, pid, err);
}

bool hutch_oci_rootless(void)
{
	if (geteuid() != 0)
		return true;
	/* root of a user namespace (rootless podman runs its runtime in one) has
	 * no more power over the host than the user who made it */
	_cleanup_free_ char *map = NULL;
	if (read_file_at(AT_FDCWD, "/proc/self/uid_map", &map, NULL, NULL) < 0)
		return false;
	unsigned long inside = 1, outside = 1, count = 0;
	return sscanf(map, "%lu %lu %lu", &inside, &outside, &count) != 3 || inside != 0 ||
	       outside != 0 || count != 4294967295UL;
}

static bool id_valid(const char *id)
{
	size_t n = strlen(id);
	if (!n || n > 1024 || !strcmp(id, ".") || !strcmp(id, ".."))
		return false;
	for (const char *c = id; *c; c++)
		if (*c == '/' || (unsigned char)*c < 0x20 || *c == 0x7f)
			return false;
	return true;
}

static char *dir_of(const char *root, const char *id)
{
	return xasprintf("%s/%s", root, id);
}

/* A unix socket's address for a path that may be longer than sun_path: its
 * directory through /proc/self/fd. */
static int sock_addr(const char *dir, const char *name, struct sockaddr_un *sa, int *dirfd,
		     struct hutch_err **err)
{
	*sa = (struct sockaddr_un){.sun_family = AF_UNIX};
	*dirfd = -1;
	size_t dl = strlen(dir), nl = strlen(name);
	if (dl + nl + 2 <= sizeof(sa->sun_path)) {
		memcpy(sa->sun_path, dir, dl);
		sa->sun_path[dl] = '/';
		memcpy(sa->sun_path + dl + 1, name, nl + 1);
		return 0;
	}
	*dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return hutch_fail_sys(err, "open %s", dir);
	if (snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%.64s", *dirfd, name) >=
	    (int)sizeof(sa->sun_path))
		return hutch_fail(err, ENAMETOOLONG, "socket name %s is too long", name);
	return 0;
}

static char *iso_time(int64_t ns)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char buf[64];
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	return xasprintf("%s.%09lldZ", buf, (long long)(ns % 1000000000));
}

static char *user_name(uid_t uid)
{
	struct passwd *pw = getpwuid(uid);
	return pw ? xstrdup(pw->pw_name) : xasprintf("%u", (unsigned)uid);
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* ---- hooks ------------------------------------------------------------------------ */

static struct json_object *strv_json(char **v, size_t n)
{
	struct json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static struct json_object *hooks_json(const struct hutch_oci_hook *h, size_t n)
{
	struct json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "path", json_object_new_string(h[i].path));
		json_object_object_add(o, "args", strv_json(h[i].args, h[i].n_args));
		json_object_object_add(o, "env", strv_json(h[i].env, h[i].n_env));
		json_object_object_add(o, "timeout", json_object_new_int(h[i].timeout_s));
		json_object_array_add(a, o);
	}
	return a;
}

static char **json_strv(struct json_object *a, size_t *n)
{
	*n = a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
	char **v = xcalloc(*n + 1, sizeof(char *));
	for (size_t i = 0; i < *n; i++)
		v[i] = xstrdup(json_object_get_string(json_object_array_get_idx(a, i)) ?: "");
	return v;
}

/* Run one hook: its args and env exactly, the container's state on stdin,
 * killed after its timeout. 0 when it exits 0. */
static int run_hook(const struct hutch_oci_hook *h, const char *kind, const char *state_json,
		    struct hutch_err **err)
{
	int in[2];
	if (pipe2(in, O_CLOEXEC) < 0)
		return hutch_fail_sys(err, "hooks.%s %s: pipe", kind, h->path);
	pid_t pid = fork();
	if (pid < 0) {
		close(in[0]);
		close(in[1]);
		return hutch_fail_sys(err, "hooks.%s %s: fork", kind, h->path);
	}
	if (pid == 0) {
		dup2(in[0], 0);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		char *const fallback[] = {h->path, NULL};
		char *const empty[] = {NULL};
		execve(h->path, h->n_args ? h->args : fallback, h->env ? h->env : empty);
		fprintf(stderr, "hutch-oci: hooks.%s: exec %s: %s\n", kind, h->path,
			strerror(errno));
		_exit(127);
	}
	close(in[0]);
	int pidfd = pidfd_open_or_fail(pid, false, NULL);
	/* the hook may not read it: never block on a full pipe */
	signal(SIGPIPE, SIG_IGN);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	(void)!write(in[1], state_json, strlen(state_json));
	close(in[1]);
	int polled = 1;
	if (pidfd >= 0) {
		struct pollfd pf = {.fd = pidfd, .events = POLLIN};
		polled = poll(&pf, 1, h->timeout_s ? h->timeout_s * 1000 : -1);
		close(pidfd);
	}
	if (polled == 0)
		kill(pid, SIGKILL);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (polled == 0)
		return hutch_fail(err, ETIMEDOUT, "hooks.%s %s: timed out after %d s", kind,
				  h->path, h->timeout_s);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return hutch_fail(err, 0, "hooks.%s %s failed (%s %d)", kind, h->path,
				  WIFEXITED(status) ? "exit code" : "signal",
				  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return 0;
}

static const char *const hook_keys[HUTCH_HOOK_KINDS] = {
    "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"};

/* Run the hooks of kind kept in the container's state.json. */
static int run_saved_hooks(const char *state_root, const char *id, enum hutch_oci_hook_kind kind,
			   const char *state_json, struct hutch_err **err)
{
	_cleanup_free_ char *path = xasprintf("%s/%s/state.json", state_root, id);
	_cleanup_free_ char *text = NULL;
	if (read_file_at(AT_FDCWD, path, &text, NULL, NULL) < 0)
		return 0;
	struct json_object *j = json_tokener_parse(text), *hooks, *list;
	int ret = 0;
	if (j && json_object_object_get_ex(j, "hooks", &hooks) &&
	    json_object_object_get_ex(hooks, hook_keys[kind], &list) &&
	    json_object_is_type(list, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(list) && ret == 0; i++) {
			struct json_object *o = json_object_array_get_idx(list, i), *v;
			struct hutch_oci_hook h = {0};
			h.path = (char *)jstr(o, "path");
			if (!h.path)
				continue;
			json_object_object_get_ex(o, "args", &v);
			h.args = json_strv(v, &h.n_args);
			json_object_object_get_ex(o, "env", &v);
			h.env = json_strv(v, &h.n_env);
			if (json_object_object_get_ex(o, "timeout", &v))
				h.timeout_s = json_object_get_int(v);
			ret = run_hook(&h, hook_keys[kind], state_json, err);
			for (size_t k = 0; k < h.n_args; k++)
				free(h.args[k]);
			for (size_t k = 0; k < h.n_env; k++)
				free(h.env[k]);
			free(h.args);
			free(h.env);
		}
	}
	json_object_put(j);
	return ret;
}

static int write_state(const char *dir, const struct hutch_oci_config *cfg,
		       const struct hutch_oci_create_opts *o, pid_t pid, const char *cgroup,
		       bool cgroup_at, struct hutch_err **err)
{
	struct json_object *j = json_object_new_object();
	json_object_object_add(j, "id", json_object_new_string(o->id));
	json_object_object_add(j, "pid", json_object_new_int64(pid));
	json_object_object_add(j, "pidStart", json_object_new_uint64(proc_start_time(pid)));
	json_object_object_add(j, "bundle", json_object_new_string(o->bundle));
	json_object_object_add(j, "rootfs", json_object_new_string(cfg->spec->root.path));
	_cleanup_free_ char *created = iso_time(now_ns());
	json_object_object_add(j, "created", json_object_new_string(created));
	_cleanup_free_ char *owner = user_name(geteuid());
	json_object_object_add(j, "owner", json_object_new_string(owner));
	json_object_object_add(j, "cgroup", cgroup ? json_object_new_string(cgroup) : NULL);
	/* the engine's cgroupsPath (removed alone) rather than hutch's own */
	json_object_object_add(j, "cgroupAt", json_object_new_boolean(cgroup_at));
	/* the namespaces exec joins: the container's own, new or joined */
	json_object_object_add(j, "namespaces", json_object_new_int(spec_ns_mask(cfg->spec)));
	struct json_object *ann = json_object_new_object();
	for (size_t i = 0; i < cfg->n_annotations; i++)
		json_object_object_add(ann, cfg->annotations[i].key,
				       json_object_new_string(cfg->annotations[i].value));
	json_object_object_add(j, "annotations", ann);
	/* what start and delete run */
	struct json_object *hooks = json_object_new_object();
	for (int k = HUTCH_HOOK_POSTSTART; k <= HUTCH_HOOK_POSTSTOP; k++)
		json_object_object_add(hooks, hook_keys[k],
				       hooks_json(cfg->hooks[k], cfg->n_hooks[k]));
	json_object_object_add(j, "hooks", hooks);
	const char *text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = dfd < 0 ? hutch_fail_sys(err, "open %s", dir)
			: write_file_atomic(dfd, "state.json", text, strlen(text), err);
	json_object_put(j);
	return r;
}

static int write_pid_file(const char *path, pid_t pid, struct hutch_err **err)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp-%d", path, getpid());
	_cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%d", pid);
	if (fd < 0 || write_all(fd, buf, (size_t)n) < 0 || rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return hutch_fail(err, e, "write the pid file %s", path);
	}
	return 0;
}

static int send_console(const char *path, int master, struct hutch_err **err)
{
	struct sockaddr_un sa;
	_cleanup_close_ int dirfd = -1;
	_cleanup_free_ char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	const char *name = path;
	if (slash) {
		*slash = '\0';
		name = slash + 1;
	}
	if (sock_addr(slash ? (*dir ? dir : "/") : ".", name, &sa, &dirfd, err) < 0)
		return -1;
	_cleanup_close_ int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return hutch_fail_sys(err, "connect to the console socket %s", path);
	if (proc_send_fd(s, master) < 0)
		return hutch_fail_sys(err, "send the terminal to the console socket %s", path);
	return 0;
}

static void free_filter(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}

/* linux.seccomp as libseccomp compiles it: exactly the profile (no prefix of
 * hutch's own). A syscall this libseccomp does not know is left out, as runc
 * does; conditions on the same argument go in rules of their own (libseccomp
 * takes one condition per argument in a rule). */
static int compile_seccomp(const struct hutch_oci_seccomp *sc, struct seccomp_prog *out,
			   struct hutch_err **err)
{
	__attribute__((cleanup(free_filter))) scmp_filter_ctx ctx =
	    seccomp_init(sc->default_action);
	if (!ctx)
		return hutch_fail(err, EINVAL, "linux.seccomp: libseccomp refused defaultAction");
	for (size_t i = 0; i < sc->n_arches; i++) {
		int rc = seccomp_arch_add(ctx, sc->arches[i]);
		if (rc < 0 && rc != -EEXIST)
			return hutch_fail(err, -rc, "linux.seccomp.architectures[%zu]", i);
	}
	for (size_t i = 0; i < sc->n_syscalls; i++) {
		const struct hutch_oci_syscall *c = &sc->syscalls[i];
		if (c->action == sc->default_action)
			continue;
		bool same_index = false;
		for (size_t a = 0; a < c->n_args; a++)
			for (size_t b = a + 1; b < c->n_args; b++)
				same_index |= c->args[a].index == c->args[b].index;
		struct scmp_arg_cmp cmps[6];
		for (size_t a = 0; a < c->n_args; a++)
			cmps[a] = (struct scmp_arg_cmp){c->args[a].index, c->args[a].op,
							c->args[a].value, c->args[a].value_two};
		for (size_t k = 0; k < c->n_names; k++) {
			int nr = seccomp_syscall_resolve_name(c->names[k]);
			if (nr == __NR_SCMP_ERROR)
				continue;
			int rc = 0;
			if (!same_index)
				rc = seccomp_rule_add_array(ctx, c->action, nr, (unsigned)c->n_args,
							    cmps);
			for (size_t a = 0; same_index && a < c->n_args && rc >= 0; a++)
				rc = seccomp_rule_add_array(ctx, c->action, nr, 1, &cmps[a]);
			if (rc < 0) {
				_cleanup_free_ char *name =
				    printable(c->names[k], strnlen(c->names[k], 64));
				return hutch_fail(err, -rc,
						  "linux.seccomp.syscalls[%zu]: the rule for %s", i,
						  name);
			}
		}
	}
	return seccomp_export_prog(ctx, out, err);
}

/* The compiled filter, kept for exec (a bundle may change after create). */
static int load_saved_seccomp(const char *dir, struct seccomp_prog *out, bool *have,
			      struct hutch_err **err)
{
	*have = false;
	_cleanup_free_ char *path = xasprintf("%s/seccomp.bpf", dir);
	_cleanup_free_ char *bytes = NULL;
	size_t len = 0;
	if (read_file_at(AT_FDCWD, path, &bytes, &len, NULL) < 0)
		return errno == ENOENT ? 0 : hutch_fail_sys(err, "read %s", path);
	if (!len || len % sizeof(struct sock_filter) || len / sizeof(struct sock_filter) > 4096)
		return hutch_fail(err, 0, "%s is damaged", path);
	out->insns = xcalloc(1, len);
	memcpy(out->insns, bytes, len);
	out->n_insns = (unsigned short)(len / sizeof(struct sock_filter));
	*have = true;
	return 0;
}

/* runc's: the default devices are always allowed, whatever the rules say. */
static void allow_default_devices(struct hutch_spec *spec)
{
	struct hutch_spec *def = hutch_spec_new();
	for (size_t i = 0; i < def->resources.n_devices; i++) {
		const struct hutch_device_rule *r = &def->resources.devices[i];
		if (r->allow)
			hutch_spec_add_device_rule(spec, true, r->type, r->major, r->minor,
						   r->access);
	}
	hutch_spec_free(def);
}

/* linux.cgroupsPath as the engine gives it, under the cgroup v2 root: a path
 * (absolute or not), or with --systemd-cgroup "slice:prefix:name" in systemd's
 * layout (a-b.slice is a.slice/a-b.slice; the container is prefix-name.scope
 * in it), as runc and crun place it. */
static char *engine_cgroup(const char *path, bool systemd, struct hutch_err **err)
{
	if (!systemd)
		return xstrdup(path);
	const char *c1 = strchr(path, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (!c2 || strchr(c2 + 1, ':') || !c2[1]) {
		_cleanup_free_ char *shown = printable(path, strlen(path));
		hutch_fail(err, 0,
			   "linux.cgroupsPath '%s': with --systemd-cgroup give "
			   "slice:prefix:name",
			   shown);
		return NULL;
	}
	_cleanup_free_ char *slice =
	    c1 == path ? xstrdup("system.slice") : xasprintf("%.*s", (int)(c1 - path), path);
	size_t sl = strlen(slice);
	if (sl < 7 || strcmp(slice + sl - 6, ".slice") || strchr(slice, '/')) {
		_cleanup_free_ char *shown = printable(slice, sl);
		hutch_fail(err, 0, "linux.cgroupsPath: '%s' is not a systemd slice (NAME.slice)",
			   shown);
		return NULL;
	}
	char *dir = xstrdup("");
	if (strcmp(slice, "-.slice")) {
		/* each '-' of the name is a level: a-b-c.slice in a-b.slice in a.slice */
		for (const char *d = slice; (d = strchr(d, '-')) && d < slice + sl - 6; d++) {
			char *next = xasprintf("%s%.*s.slice/", dir, (int)(d - slice), slice);
			free(dir);
			dir = next;
		}
		char *next = xasprintf("%s%s/", dir, slice);
		free(dir);
		dir = next;
	}
	const char *name = c2 + 1;
	size_t nl = strlen(name);
	char *rel;
	if (nl > 6 && !strcmp(name + nl - 6, ".slice"))
		rel = xasprintf("%s%s", dir, name);
	else if (c2 == c1 + 1)
		rel = xasprintf("%s%s.scope", dir, name);
	else
		rel = xasprintf("%s%.*s-%s.scope", dir, (int)(c2 - c1 - 1), c1 + 1, name);
	free(dir);
	return rel;
}

int hutch_oci_create(struct hutch_runtime *rt, struct hutch_oci_config *cfg,
		     const struct hutch_oci_create_opts *o, pid_t *pid_out, struct hutch_err **err)
{
	struct hutch_spec *spec = cfg->spec;
	if (!id_valid(o->id)) {
		_cleanup_free_ char *s =
		    printable(o->id, strlen(o->id) > 200 ? 200 : strlen(o->id));
		return hutch_fail(err, 0,
				  "invalid container id '%s': give 1 to 1024 printable characters "
				  "without '/'",
				  s);
	}
	oci_spec_set_id(spec, o->id);
	if (!spec->n_namespaces && !spec->oci)
		return -1;
	if (spec->process.terminal && o->wait_start && !o->console_socket)
		return hutch_fail(err, 0,
				  "process.terminal is true: give --console-socket, where the "
				  "terminal goes");
	if (spec->process.terminal && !o->wait_start && !o->console_socket)
		return hutch_fail(err, 0,
				  "process.terminal is true: hutch-oci run needs --console-socket "
				  "(or set terminal to false)");
	allow_default_devices(spec);
	if (hutch_spec_validate(spec, err) < 0 || check_sysctl(cfg, err) < 0 ||
	    proc_check_rlimits(&spec->process, rt->rootless, spec_has_ns(spec, HUTCH_NS_USER),
			       err) < 0)
		return hutch_err_wrap(err, "config.json");
	struct stat st;
	if (stat(spec->root.path, &st) < 0 || !S_ISDIR(st.st_mode))
		return hutch_fail(err, errno ? errno : ENOTDIR, "root.path %s is not a directory",
				  spec->root.path);

	if (mkdir_p_at(AT_FDCWD, o->state_root, 0700, err) < 0)
		return -1;
	_cleanup_free_ char *dir = dir_of(o->state_root, o->id);
	if (mkdir(dir, 0700) < 0)
		return errno == EEXIST
			   ? hutch_fail(err, EEXIST, "container '%s' already exists", o->id)
			   : hutch_fail_sys(err, "create %s", dir);
	int ret = -1;
	struct cgroup cg = {.dirfd = -1};
	_cleanup_close_ int lsock = -1, sockdir = -1, pidns = -1, clone_userns = -1;
	const char *pidns_what = NULL;
	struct oci_child_args a = {.cfg = cfg, .rt = rt};
	bool prepared = false;
	struct spawn_out so = {.pid = -1, .pidfd = -1, .pty_master = -1};
	struct seccomp_prog filter = {0};
	if (cfg->seccomp) {
		if (compile_seccomp(cfg->seccomp, &filter, err) < 0)
			goto out;
		_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0 ||
		    write_file_atomic(dfd, "seccomp.bpf", filter.insns,
				      filter.n_insns * sizeof(struct sock_filter), err) < 0) {
			if (dfd < 0)
				hutch_fail_sys(err, "open %s", dir);
			goto out;
		}
	}

	/* the engine's cgroupsPath where hutch may make it (rootful, cgroup v2),
	 * else hutch's own <cgroup2>/hutch/<sha256 of the id> */
	int at = 0;
	if (cfg->cgroups_path && *cfg->cgroups_path) {
		_cleanup_free_ char *rel = engine_cgroup(cfg->cgroups_path, o->systemd_cgroup, err);
		if (!rel)
			goto out;
		at = cgroup_create_at(rt, spec, rel, &cg, err);
		if (at < 0) {
			hutch_err_wrap(err, "linux.cgroupsPath");
			goto out;
		}
		/* a create killed before its record: delete finds the cgroup here
		 * (named once it is ours: never one that was there before) */
		_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (at &&
		    (dfd < 0 || write_file_atomic(dfd, "cgroup", rel, strlen(rel), err) < 0)) {
			if (dfd < 0)
				hutch_fail_sys(err, "open %s", dir);
			goto out;
		}
	}
	if (!at && (cgroup_plan(rt, spec, &cg, err) < 0 || cgroup_create(rt, spec, &cg, err) < 0))
		goto out;
	int devices = devices_attach(rt, spec, &cg, err);
	if (devices < 0)
		goto out;
	struct hutch_process proc = spec->process;
	if (devices) {
		uint64_t keep = ~(1ULL << 27 /* CAP_MKNOD */);
		proc.caps.bounding &= keep;
		proc.caps.effective &= keep;
		proc.caps.permitted &= keep;
		proc.caps.inheritable &= keep;
		proc.caps.ambient &= keep;
	}
	if (o->wait_start) {
		struct sockaddr_un sa;
		if (sock_addr(dir, "start.sock", &sa, &sockdir, err) < 0)
			goto out;
		lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lsock < 0 || bind(lsock, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    listen(lsock, 1) < 0) {
			hutch_fail_sys(err, "make %s/start.sock", dir);
			goto out;
		}
	}
	if (cfg->n_hooks[HUTCH_HOOK_CREATE_CONTAINER] || cfg->n_hooks[HUTCH_HOOK_START_CONTAINER]) {
		a.hook_state = json_object_new_object();
		json_object_object_add(a.hook_state, "ociVersion",
				       json_object_new_string(OCI_VERSION));
		json_object_object_add(a.hook_state, "id", json_object_new_string(o->id));
		json_object_object_add(a.hook_state, "status", json_object_new_string("created"));
		json_object_object_add(a.hook_state, "bundle", json_object_new_string(o->bundle));
		struct json_object *ann = json_object_new_object();
		for (size_t i = 0; i < cfg->n_annotations; i++)
			json_object_object_add(ann, cfg->annotations[i].key,
					       json_object_new_string(cfg->annotations[i].value));
		json_object_object_add(a.hook_state, "annotations", ann);
	}
	bool own_cgroupns = spec_has_ns(spec, HUTCH_NS_CGROUP);
	a.mctx = (struct mount_ctx){.spec = spec,
				    .rootfs = spec->root.path,
				    .rootless = rt->rootless,
				    .own_cgroup = cg.dirfd >= 0 && own_cgroupns,
				    /* no mknod in a user namespace: binds of the host's nodes */
				    .nodev = devices > 0 || spec_has_ns(spec, HUTCH_NS_USER)};
	if (mounts_prepare(&a.mctx, err) < 0)
		goto out;
	prepared = true;

	uint64_t flags = ns_oci_clone_flags(spec);
	if (ns_oci_pid_target(spec, &pidns, err) < 0 ||
	    ns_oci_clone_userns(spec, &clone_userns, err) < 0)
		goto out;
	bool userns = spec_has_ns(spec, HUTCH_NS_USER);
	if (pidns >= 0)
		pidns_what = hutch_spec_namespace(spec, HUTCH_NS_PID)->path;
	struct hutch_io io = {0, 1, 2, false};
	struct spawn_req req = {
	    .rt = rt,
	    .proc = &proc,
	    .io = &io,
	    .tty_io = &io,
	    .userns = userns,
	    .seccomp = false,
	    .default_winsize = true,
	    .clone_flags = flags,
	    .pidns_fd = pidns,
	    .pidns_what = pidns_what,
	    .clone_userns_fd = clone_userns > 0 ? clone_userns : 0,
	    .cgroup_fd = cg.dirfd,
	    .child = oci_child,
	    .started =
		userns && !hutch_spec_namespace(spec, HUTCH_NS_USER)->path ? child_started : NULL,
	    .arg = &a,
	    .oci = {.wait_start = o->wait_start,
		    .start_sock = lsock,
		    .groups_given = true,
		    .groups = cfg->additional_gids,
		    .n_groups = cfg->n_additional_gids,
		    .preserve_fds = o->preserve_fds,
		    .seccomp = cfg->seccomp ? &filter : NULL,
		    .on_start = cfg->n_hooks[HUTCH_HOOK_START_CONTAINER] ? on_start : NULL,
		    .on_start_arg = &a,
		    .attrs = &cfg->attrs},
	};
	if (proc_spawn(&req, &so, err) < 0)
		goto out;
	if (cfg->console_height && so.pty_master >= 0) {
		struct winsize ws = {.ws_row = cfg->console_height, .ws_col = cfg->console_width};
		ioctl(so.pty_master, TIOCSWINSZ, &ws);
	}
	if (so.pty_master >= 0 && send_console(o->console_socket, so.pty_master, err) < 0)
		goto kill;
	if (write_state(dir, cfg, o, so.pid, cg.path, cg.at_path, err) < 0 ||
	    (o->pid_file && write_pid_file(o->pid_file, so.pid, err) < 0))
		goto kill;
	/* prestart and createRuntime: in the runtime's namespaces once the
	 * container's exist (its process waits before exec); one that fails
	 * fails the create */
	if (cfg->n_hooks[HUTCH_HOOK_PRESTART] || cfg->n_hooks[HUTCH_HOOK_CREATE_RUNTIME]) {
		struct hutch_oci_state *st = NULL;
		if (hutch_oci_state_load(o->state_root, o->id, &st, err) < 0)
			goto kill;
		_cleanup_free_ char *json = hutch_oci_state_json(st, false);
		hutch_oci_state_free(st);
		for (int k = HUTCH_HOOK_PRESTART; k <= HUTCH_HOOK_CREATE_RUNTIME; k++)
			for (size_t i = 0; i < cfg->n_hooks[k]; i++)
				if (run_hook(&cfg->hooks[k][i], hook_keys[k], json, err) < 0)
					goto kill;
	}
	/* the container's directory is the record of its cgroup now */
	cg.made = false;
	*pid_out = so.pid;
	ret = 0;
	goto out;
kill:
	syscall(SYS_pidfd_send_signal, so.pidfd, SIGKILL, NULL, 0);
	siginfo_t si;
	waitid(P_PIDFD, (id_t)so.pidfd, &si, WEXITED);
out:
	seccomp_prog_free(&filter);
	if (a.hook_state)
		json_object_put(a.hook_state);
	if (prepared)
		mounts_release(&a.mctx);
	if (so.pidfd >= 0)
		close(so.pidfd);
	if (so.pty_master >= 0)
		close(so.pty_master);
	if (ret < 0) {
		cgroup_destroy(&cg, NULL);
		remove_tree_at(AT_FDCWD, dir, NULL);
	} else if (cg.dirfd >= 0) {
		close(cg.dirfd);
		free(cg.path);
	}
	return ret;
}

/* ---- state ------------------------------------------------------------------------ */

void hutch_oci_state_free(struct hutch_oci_state *s)
{
	if (!s)
		return;
	free(s->id);
	free(s->bundle);
	free(s->rootfs);
	free(s->cgroup);
	free(s->created);
	free(s->owner);
	for (size_t i = 0; i < s->n_annotations; i++) {
		free(s->annotations[i].key);
		free(s->annotations[i].value);
	}
	free(s->annotations);
	free(s);
}

const char *hutch_oci_status_name(enum hutch_oci_status st)
{
	static const char *const names[] = {"created", "running", "paused", "stopped"};
	return (unsigned)st < ARRAY_SIZE(names) ? names[st] : "unknown";
}

/* Alive: the same process (start time) and not a zombie waiting for its parent. */
static bool process_alive(pid_t pid, uint64_t start)
{
	if (pid <= 0)
		return false;
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
		return false;
	return proc_start_time(pid) == start;
}

int hutch_oci_state_load(const char *state_root, const char *id, struct hutch_oci_state **out,
			 struct hutch_err **err)
{
	*out = NULL;
	if (!id_valid(id))
		return hutch_fail(err, 0, "container '%s' does not exist", id),
		       HUTCH_STATE_NOT_FOUND;
	_cleanup_free_ char *dir = dir_of(state_root, id);
	_cleanup_free_ char *path = xasprintf("%s/state.json", dir);
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	if (read_file_at(AT_FDCWD, path, &text, &len, NULL) < 0) {
		if (errno == ENOENT) {
			hutch_fail(err, 0, "container '%s' does not exist", id);
			return HUTCH_STATE_NOT_FOUND;
		}
		return hutch_fail_sys(err, "read %s", path);
	}
	struct json_object *j = json_tokener_parse(text);
	struct json_object *v;
	if (!j || !json_object_is_type(j, json_type_object) || !jstr(j, "id") ||
	    strcmp(jstr(j, "id"), id) || !jstr(j, "bundle") ||
	    !json_object_object_get_ex(j, "pid", &v)) {
		json_object_put(j);
		return hutch_fail(err, 0, "%s is damaged: remove the container with delete --force",
				  path);
	}
	struct hutch_oci_state *s = xcalloc(1, sizeof(*s));
	s->id = xstrdup(id);
	s->bundle = xstrdup(jstr(j, "bundle"));
	s->rootfs = xstrdup(jstr(j, "rootfs") ? jstr(j, "rootfs") : "");
	s->created = xstrdup(jstr(j, "created") ? jstr(j, "created") : "");
	s->owner = xstrdup(jstr(j, "owner") ? jstr(j, "owner") : "");
	s->cgroup = jstr(j, "cgroup") ? xstrdup(jstr(j, "cgroup")) : NULL;
	struct json_object *at;
	s->cgroup_at = json_object_object_get_ex(j, "cgroupAt", &at) && json_object_get_boolean(at);
	s->pid = (pid_t)json_object_get_int64(v);
	if (json_object_object_get_ex(j, "namespaces", &v))
		s->namespaces = (unsigned)json_object_get_int(v);
	if (json_object_object_get_ex(j, "pidStart", &v))
		s->pid_start = json_object_get_uint64(v);
	if (json_object_object_get_ex(j, "annotations", &v) &&
	    json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, key, val)
		{
			s->annotations = xrealloc(s->annotations,
						  (s->n_annotations + 1) * sizeof(struct hutch_kv));
			s->annotations[s->n_annotations++] =
			    (struct hutch_kv){xstrdup(key), xstrdup(json_object_get_string(val))};
		}
	}
	json_object_put(j);
	_cleanup_free_ char *sock = xasprintf("%s/start.sock", dir);
	if (!process_alive(s->pid, s->pid_start)) {
		s->status = HUTCH_OCI_STOPPED;
	} else if (access(sock, F_OK) == 0) {
		s->status = HUTCH_OCI_CREATED;
	} else {
		s->status = HUTCH_OCI_RUNNING;
		_cleanup_free_ char *freeze = NULL;
		_cleanup_free_ char *fpath =
		    s->cgroup ? xasprintf("%s/cgroup.freeze", s->cgroup) : NULL;
		if (fpath && read_file_at(AT_FDCWD, fpath, &freeze, NULL, NULL) == 0 &&
		    freeze[0] == '1')
			s->status = HUTCH_OCI_PAUSED;
	}
	*out = s;
	return 0;
}

char *hutch_oci_state_json(const struct hutch_oci_state *s, bool pretty)
{
	struct json_object *j = json_object_new_object();
	json_object_object_add(j, "ociVersion", json_object_new_string(OCI_VERSION));
	json_object_object_add(j, "id", json_object_new_string(s->id));
	json_object_object_add(j, "status",
			       json_object_new_string(hutch_oci_status_name(s->status)));
	json_object_object_add(j, "pid",
			       json_object_new_int64(s->status == HUTCH_OCI_STOPPED ? 0 : s->pid));
	json_object_object_add(j, "bundle", json_object_new_string(s->bundle));
	json_object_object_add(j, "rootfs", json_object_new_string(s->rootfs));
	json_object_object_add(j, "created", json_object_new_string(s->created));
	json_object_object_add(j, "owner", json_object_new_string(s->owner));
	struct json_object *ann = json_object_new_object();
	for (size_t i = 0; i < s->n_annotations; i++)
		json_object_object_add(ann, s->annotations[i].key,
				       json_object_new_string(s->annotations[i].value));
	json_object_object_add(j, "annotations", ann);
	char *text = xstrdup(json_object_to_json_string_ext(
	    j,
	    (pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : JSON_C_TO_STRING_PLAIN) |
		JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(j);
	return text;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int hutch_oci_list(const char *state_root, char ***ids, size_t *n, struct hutch_err **err)
{
	*ids = NULL;
	*n = 0;
	DIR *d = opendir(state_root);
	if (!d)
		return errno == ENOENT ? 0 : hutch_fail_sys(err, "open %s", state_root);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		_cleanup_free_ char *p = xasprintf("%s/%s/state.json", state_root, e->d_name);
		if (access(p, F_OK) < 0)
			continue;
		*ids = xrealloc(*ids, (*n + 1) * sizeof(char *));
		(*ids)[(*n)++] = xstrdup(e->d_name);
	}
	closedir(d);
	if (*n)
		qsort(*ids, *n, sizeof(char *), cmp_str);
	return 0;
}

/* ---- start, kill, delete ------------------------------------------------------------ */

int hutch_oci_start(const char *state_root, const char *id, struct hutch_err **err,
		    struct hutch_err **warn)
{
	struct hutch_oci_state *s = NULL;
	if (hutch_oci_state_load(state_root, id, &s, err) < 0)
		return -1;
	enum hutch_oci_status st = s->status;
	hutch_oci_state_free(s);
	if (st != HUTCH_OCI_CREATED)
		return hutch_fail(err, 0,
				  "container '%s' is %s: only a created container can be "
				  "started",
				  id, hutch_oci_status_name(st));
	_cleanup_free_ char *dir = dir_of(state_root, id);
	struct sockaddr_un sa;
	_cleanup_close_ int dirfd = -1;
	if (sock_addr(dir, "start.sock", &sa, &dirfd, err) < 0)
		return -1;
	_cleanup_close_ int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return hutch_fail_sys(err,
				      "container '%s' cannot be started (is it started "
				      "already?)",
				      id);
	_cleanup_free_ char *sock = xasprintf("%s/start.sock", dir);
	unlink(sock);
	if (proc_read_report_as(c, true, "the container's process died as it was started", err) < 0)
		return -1;
	/* poststart: a failure is said, and the container runs on (the spec's rule) */
	if (hutch_oci_state_load(state_root, id, &s, NULL) == 0) {
		_cleanup_free_ char *json = hutch_oci_state_json(s, false);
		hutch_oci_state_free(s);
		run_saved_hooks(state_root, id, HUTCH_HOOK_POSTSTART, json, warn);
	}
	return 0;
}

int hutch_oci_pids(const struct hutch_oci_state *s, pid_t **pids, size_t *n, struct hutch_err **err)
{
	*pids = NULL;
	*n = 0;
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ char *path = s->cgroup ? xasprintf("%s/cgroup.procs", s->cgroup) : NULL;
	if (!path || read_file_at(AT_FDCWD, path, &text, NULL, NULL) < 0) {
		if (s->status == HUTCH_OCI_STOPPED)
			return 0;
		*pids = xcalloc(1, sizeof(pid_t));
		(*pids)[(*n)++] = s->pid;
		return 0;
	}
	for (char *p = text; *p;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		*pids = xrealloc(*pids, (*n + 1) * sizeof(pid_t));
		(*pids)[(*n)++] = (pid_t)v;
		p = end + (*end == '\n');
	}
	return 0;
}

/* A pidfd of the container's pid 1, checked against pid reuse; -1 if gone. */
static int open_init(const struct hutch_oci_state *s)
{
	int fd = pidfd_open_or_fail(s->pid, true, NULL);
	if (fd >= 0 && !process_alive(s->pid, s->pid_start)) {
		close(fd);
		return -1;
	}
	return fd;
}

int hutch_oci_kill(const char *state_root, const char *id, int sig, bool all,
		   struct hutch_err **err)
{
	struct hutch_oci_state *s = NULL;
	if (hutch_oci_state_load(state_root, id, &s, err) < 0)
		return -1;
	int ret = 0;
	if (s->status == HUTCH_OCI_STOPPED && !all) {
		ret =
		    hutch_fail(err, 0, "container '%s' is stopped: there is nothing to signal", id);
		goto out;
	}
	if (all) {
		pid_t *pids = NULL;
		size_t n = 0;
		if (hutch_oci_pids(s, &pids, &n, err) < 0) {
			ret = -1;
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			if (kill(pids[i], sig) < 0 && errno != ESRCH)
				ret = hutch_fail_sys(err, "send signal %d to process %d", sig,
						     pids[i]);
		free(pids);
		goto out;
	}
	int fd = open_init(s);
	if (fd < 0 || (syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) < 0 && errno != ESRCH))
		ret = fd < 0 ? hutch_fail(err, 0, "container '%s' is stopped", id)
			     : hutch_fail_sys(err, "send signal %d to container '%s'", sig, id);
	if (fd >= 0)
		close(fd);
out:
	hutch_oci_state_free(s);
	return ret;
}

int hutch_oci_update(const char *state_root, const char *id, const struct hutch_resources *r,
		     struct hutch_err **err)
{
	struct hutch_oci_state *s = NULL;
	if (hutch_oci_state_load(state_root, id, &s, err) < 0)
		return -1;
	int ret = 0;
	struct {
		bool given;
		const char *file, *what;
		char value[64];
	} w[4] = {{r->memory_max >= 0, "memory.max", "linux.resources.memory.limit", ""},
		  {r->memory_max > 0 && r->memory_swap_max != 0, "memory.swap.max",
		   "linux.resources.memory.swap", ""},
		  {r->cpu_quota_us >= 0, "cpu.max", "linux.resources.cpu.quota", ""},
		  {r->pids_max >= 0, "pids.max", "linux.resources.pids.limit", ""}};
	snprintf(w[0].value, sizeof(w[0].value), "%lld", (long long)r->memory_max);
	if (!r->memory_max)
		strcpy(w[0].value, "max");
	int64_t swap = cgroup_swap_max(r);
	if (swap >= 0)
		snprintf(w[1].value, sizeof(w[1].value), "%lld", (long long)swap);
	else
		strcpy(w[1].value, "max");
	if (r->cpu_quota_us > 0)
		snprintf(w[2].value, sizeof(w[2].value), "%lld %lld", (long long)r->cpu_quota_us,
			 (long long)(r->cpu_period_us ? r->cpu_period_us : 100000));
	else
		strcpy(w[2].value, "max");
	snprintf(w[3].value, sizeof(w[3].value), "%lld", (long long)r->pids_max);
	if (!r->pids_max)
		strcpy(w[3].value, "max");
	for (size_t i = 0; i < ARRAY_SIZE(w) && ret == 0; i++) {
		if (!w[i].given)
			continue;
		_cleanup_free_ char *path =
		    s->cgroup ? xasprintf("%s/%s", s->cgroup, w[i].file) : NULL;
		if (!path || access(path, F_OK) < 0)
			ret = hutch_fail(err, 0,
					 "%s cannot be set here: container '%s' has %s (no %s in "
					 "its cgroup v2)",
					 w[i].what, id,
					 s->cgroup ? "a cgroup without that controller"
						   : "no cgroup of its own",
					 w[i].file);
		else
			ret = write_file_at(AT_FDCWD, path, w[i].value, err);
	}
	hutch_oci_state_free(s);
	return ret;
}

int hutch_oci_freeze(const char *state_root, const char *id, bool frozen, struct hutch_err **err)
{
	struct hutch_oci_state *s = NULL;
	if (hutch_oci_state_load(state_root, id, &s, err) < 0)
		return -1;
	int ret = 0;
	if (!s->cgroup)
		ret = hutch_fail(err, 0, "container '%s' has no cgroup of its own to freeze", id);
	else if (frozen ? s->status != HUTCH_OCI_RUNNING : s->status != HUTCH_OCI_PAUSED)
		ret = hutch_fail(err, 0, "container '%s' is %s, not %s", id,
				 hutch_oci_status_name(s->status), frozen ? "running" : "paused");
	else {
		_cleanup_free_ char *path = xasprintf("%s/cgroup.freeze", s->cgroup);
		ret = write_file_at(AT_FDCWD, path, frozen ? "1" : "0", err);
	}
	hutch_oci_state_free(s);
	return ret;
}

static int remove_partial(const char *dir, const char *id, struct hutch_err **err)
{
	struct hutch_runtime rt = {.rootless = hutch_oci_rootless()};
	struct hutch_spec spec = {0};
	oci_spec_set_id(&spec, id);
	struct cgroup cg = {.dirfd = -1};
	int r = cgroup_plan(&rt, &spec, &cg, err);
	free(spec.id);
	if (r == 0 && cg.path && access(cg.path, F_OK) == 0) {
		_cleanup_free_ char *kill_file = xasprintf("%s/cgroup.kill", cg.path);
		write_file_at(AT_FDCWD, kill_file, "1", NULL);
		r = cgroup_remove(cg.path, err);
	}
	free(cg.path);
	/* or the engine's cgroupsPath, named by create before it made it */
	_cleanup_free_ char *rel = NULL;
	_cleanup_free_ char *rel_file = xasprintf("%s/cgroup", dir);
	if (r == 0 && !rt.rootless && read_file_at(AT_FDCWD, rel_file, &rel, NULL, NULL) == 0) {
		_cleanup_free_ char *path = cgroup_path_at(rel);
		if (path && access(path, F_OK) == 0) {
			_cleanup_free_ char *kill_file = xasprintf("%s/cgroup.kill", path);
			write_file_at(AT_FDCWD, kill_file, "1", NULL);
			r = cgroup_remove_at(path, err);
		}
	}
	return r < 0 ? -1 : remove_tree_at(AT_FDCWD, dir, err);
}

int hutch_oci_delete(const char *state_root, const char *id, bool force, struct hutch_err **err,
		     struct hutch_err **warn)
{
	struct hutch_oci_state *s = NULL;
	int r = hutch_oci_state_load(state_root, id, &s, err);
	_cleanup_free_ char *dir = dir_of(state_root, id);
	if (r == HUTCH_STATE_NOT_FOUND && id_valid(id) && access(dir, F_OK) == 0) {
		/* a create killed before its record was written: its process died
		 * with it (parent-death signal); its cgroup and directory stay */
		hutch_err_free(err);
		return remove_partial(dir, id, err);
	}
	if (r == HUTCH_STATE_NOT_FOUND)
		return r;
	if (r < 0) {
		/* a damaged record: --force removes what there is */
		if (!force)
			return -1;
		hutch_err_free(err);
		return remove_tree_at(AT_FDCWD, dir, err);
	}
	int ret = 0;
	if ((s->status == HUTCH_OCI_RUNNING || s->status == HUTCH_OCI_PAUSED) && !force) {
		ret = hutch_fail(err, 0,
				 "container '%s' is %s: stop it first (kill), or delete --force",
				 id, hutch_oci_status_name(s->status));
		goto out;
	}
	if (s->status != HUTCH_OCI_STOPPED) {
		int fd = open_init(s);
		if (s->cgroup) {
			_cleanup_free_ char *kpath = xasprintf("%s/cgroup.kill", s->cgroup);
			_cleanup_free_ char *fpath = xasprintf("%s/cgroup.freeze", s->cgroup);
			if (write_file_at(AT_FDCWD, kpath, "1", NULL) < 0) {
				pid_t *pids = NULL;
				size_t n = 0;
				hutch_oci_pids(s, &pids, &n, NULL);
				for (size_t i = 0; i < n; i++)
					kill(pids[i], SIGKILL);
				free(pids);
			}
			write_file_at(AT_FDCWD, fpath, "0", NULL);
		}
		if (fd >= 0) {
			syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0);
			struct pollfd pf = {.fd = fd, .events = POLLIN};
			int polled = poll(&pf, 1, 10000);
			close(fd);
			if (polled == 0) {
				ret = hutch_fail(err, 0,
						 "container '%s' did not die within 10 s of "
						 "SIGKILL",
						 id);
				goto out;
			}
		}
	}
	if (s->cgroup &&
	    (s->cgroup_at ? cgroup_remove_at(s->cgroup, err) : cgroup_remove(s->cgroup, err)) < 0) {
		ret = -1;
		goto out;
	}
	/* poststop: a failure is said, and the container goes all the same */
	s->status = HUTCH_OCI_STOPPED;
	char *json = hutch_oci_state_json(s, false);
	run_saved_hooks(state_root, id, HUTCH_HOOK_POSTSTOP, json, warn);
	free(json);
	ret = remove_tree_at(AT_FDCWD, dir, err);
out:
	hutch_oci_state_free(s);
	return ret;
}

/* ---- exec ---------------------------------------------------------------------------- */

struct oci_exec_child {
	int target; /* pidfd of the container's pid 1 */
	unsigned namespaces;
	bool detach;
};

/* The middle process: into the container's namespaces, a fork into its pid
 * namespace for the command, and this one outside, passing on signals and
 * the exit status (proc_run_init). */
static __attribute__((noreturn)) void oci_exec_child(struct proc_ctx *pc, void *arg)
{
	struct oci_exec_child *x = arg;
	struct hutch_err *e = NULL;
	proc_oci_initial_affinity(pc);
	if (setns(x->target, ns_clone_flags(x->namespaces)) < 0) {
		hutch_fail_sys(&e, "join the container's namespaces");
		proc_fail(pc, 125, e);
	}
	pdeathsig_arm(pc->parent_pidfd);
	close(pc->parent_pidfd);
	pc->parent_pidfd = pidfd_open_or_fail(getpid(), false, &e);
	if (pc->parent_pidfd < 0)
		proc_fail(pc, 125, e);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* --detach: this process outlives exec, which exits as soon as the
	 * command runs (disarmed before: after, the signal could come first) */
	if (x->detach)
		prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	pid_t cmd = fork();
	if (cmd < 0) {
		hutch_fail_sys(&e, "fork into the container");
		proc_fail(pc, 125, e);
	}
	if (cmd == 0) {
		pdeathsig_arm(pc->parent_pidfd);
		proc_setup_and_exec(pc);
	}
	close(pc->report_fd);
	proc_run_init(cmd);
}

int hutch_oci_exec(const char *state_root, const char *id, const struct hutch_process *proc,
		   const struct hutch_oci_exec_opts *o, int *status, struct hutch_err **err)
{
	struct hutch_oci_state *s = NULL;
	if (hutch_oci_state_load(state_root, id, &s, err) < 0)
		return -1;
	int ret = -1;
	_cleanup_close_ int target = -1, cgfd = -1;
	struct spawn_out so = {.pid = -1, .pidfd = -1, .pty_master = -1};
	struct seccomp_prog filter = {0};
	if (s->status != HUTCH_OCI_RUNNING && s->status != HUTCH_OCI_CREATED) {
		hutch_fail(err, 0, "container '%s' is %s: exec needs a running container", id,
			   hutch_oci_status_name(s->status));
		goto out;
	}
	if (proc->terminal && !o->console_socket) {
		hutch_fail(err, 0, "a terminal (--tty) needs --console-socket");
		goto out;
	}
	target = open_init(s);
	if (target < 0) {
		hutch_fail(err, 0, "container '%s' is not running", id);
		goto out;
	}
	if (s->cgroup) {
		cgfd = open(s->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cgfd < 0) {
			hutch_fail_sys(err, "exec refused: open the container's cgroup %s",
				       s->cgroup);
			goto out;
		}
	}
	bool have_filter = false;
	char *dir = dir_of(state_root, id);
	int loaded = load_saved_seccomp(dir, &filter, &have_filter, err);
	free(dir);
	if (loaded < 0)
		goto out;
	struct hutch_runtime rt = {.data_root = (char *)state_root,
				   .run_root = (char *)state_root,
				   .rootless = hutch_oci_rootless()};
	struct hutch_io io = {0, 1, 2, false};
	struct oci_exec_child x = {
	    .target = target, .namespaces = s->namespaces, .detach = o->detach};
	struct spawn_req req = {
	    .rt = &rt,
	    .proc = proc,
	    .io = &io,
	    .tty_io = &io,
	    .userns = s->namespaces & (1u << HUTCH_NS_USER),
	    .default_winsize = true,
	    .cgroup_fd = cgfd,
	    .child = oci_exec_child,
	    .arg = &x,
	    .oci = {.preserve_fds = o->preserve_fds,
		    .seccomp = have_filter ? &filter : NULL,
		    .attrs = o->attrs},
	};
	if (proc_spawn(&req, &so, err) < 0)
		goto out;
	if (so.pty_master >= 0 && send_console(o->console_socket, so.pty_master, err) < 0)
		goto kill;
	if (o->pid_file && write_pid_file(o->pid_file, so.pid, err) < 0)
		goto kill;
	if (o->detach) {
		ret = 0;
		goto out;
	}
	siginfo_t si = {0};
	if (waitid(P_PIDFD, (id_t)so.pidfd, &si, WEXITED) < 0) {
		hutch_fail_sys(err, "wait for the exec'd process");
		goto out;
	}
	*status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
	ret = 0;
	goto out;
kill:
	syscall(SYS_pidfd_send_signal, so.pidfd, SIGKILL, NULL, 0);
	siginfo_t ks;
	waitid(P_PIDFD, (id_t)so.pidfd, &ks, WEXITED);
out:
	seccomp_prog_free(&filter);
	if (so.pidfd >= 0)
		close(so.pidfd);
	if (so.pty_master >= 0)
		close(so.pty_master);
	hutch_oci_state_free(s);
	return ret;
}
