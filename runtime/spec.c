/* The container spec: Docker's defaults, and the small helpers the CLI and the
 * supervisor use to fill it in. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "common/util.h"
#include "runtime/runtime.h"

/* Docker's defaults for /proc and /sys: hide what leaks host state, freeze what
 * could change the host. */
static const char *const default_masked_paths[] = {
	"/proc/asound",	    "/proc/acpi",	    "/proc/interrupts",
	"/proc/kcore",	    "/proc/keys",	    "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
	"/proc/scsi",	    "/sys/firmware",	    "/sys/devices/virtual/powercap",
};
static const char *const default_readonly_paths[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static const struct {
	const char *type, *source, *destination, *options;
} default_mounts[] = {
	{"proc", "proc", "/proc", "nosuid,noexec,nodev"},
	{"tmpfs", "tmpfs", "/dev", "nosuid,strictatime,mode=755,size=65536k"},
	{"devpts", "devpts", "/dev/pts", "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"},
	{"sysfs", "sysfs", "/sys", "nosuid,noexec,nodev,ro"},
	{"cgroup2", "cgroup", "/sys/fs/cgroup", "nosuid,noexec,nodev,relatime,ro"},
	{"mqueue", "mqueue", "/dev/mqueue", "nosuid,noexec,nodev"},
	{"tmpfs", "shm", "/dev/shm", "nosuid,noexec,nodev,mode=1777,size=65536k"},
};

static char **strv_from(const char *const *src, size_t n)
{
	char **v = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		v[i] = xstrdup(src[i]);
	return v;
}

static void strv_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

struct hutch_spec *hutch_spec_new(void)
{
	struct hutch_spec *s = xcalloc(1, sizeof(*s));
	s->process.caps = HUTCH_DEFAULT_CAPS;
	s->process.no_new_privileges = true;
	s->process.stop_signal = SIGTERM;
	s->process.cwd = xstrdup("/");
	hutch_spec_set_env(s, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	for (size_t i = 0; i < ARRAY_SIZE(default_mounts); i++)
		hutch_spec_add_mount(s, default_mounts[i].type, default_mounts[i].source,
				     default_mounts[i].destination, default_mounts[i].options);
	s->masked_paths = strv_from(default_masked_paths, ARRAY_SIZE(default_masked_paths));
	s->n_masked_paths = ARRAY_SIZE(default_masked_paths);
	s->readonly_paths = strv_from(default_readonly_paths, ARRAY_SIZE(default_readonly_paths));
	s->n_readonly_paths = ARRAY_SIZE(default_readonly_paths);
	/* Like containerd: a sane soft limit for select()-era programs; the hard limit
	 * is clamped to the host's at start so we never ask for more than we have. */
	s->process.rlimits = xcalloc(1, sizeof(struct hutch_rlimit));
	s->process.rlimits[0] = (struct hutch_rlimit){RLIMIT_NOFILE, 1024, 1048576, false};
	s->process.n_rlimits = 1;
	return s;
}

void hutch_spec_free(struct hutch_spec *s)
{
	if (!s)
		return;
	free(s->id);
	free(s->name);
	free(s->image);
	free(s->image_id);
	free(s->hostname);
	strv_free(s->process.args, s->process.n_args);
	strv_free(s->process.env, s->process.n_env);
	free(s->process.cwd);
	free(s->process.user);
	free(s->process.rlimits);
	strv_free(s->root.layers, s->root.n_layers);
	for (size_t i = 0; i < s->n_mounts; i++) {
		free(s->mounts[i].destination);
		free(s->mounts[i].type);
		free(s->mounts[i].source);
		strv_free(s->mounts[i].options, s->mounts[i].n_options);
	}
	free(s->mounts);
	strv_free(s->masked_paths, s->n_masked_paths);
	strv_free(s->readonly_paths, s->n_readonly_paths);
	free(s->net_path);
	strv_free(s->dns.servers, s->dns.n_servers);
	strv_free(s->dns.search, s->dns.n_search);
	strv_free(s->dns.options, s->dns.n_options);
	for (size_t i = 0; i < s->n_extra_hosts; i++) {
		free(s->extra_hosts[i].hostname);
		free(s->extra_hosts[i].address);
	}
	free(s->extra_hosts);
	free(s->uid_map);
	free(s->gid_map);
	free(s);
}

int hutch_spec_add_mount(struct hutch_spec *s, const char *type, const char *source,
			 const char *destination, const char *options_csv)
{
	/* A later mount on the same destination replaces an earlier one (a user's
	 * --tmpfs /dev/shm overrides the default). */
	struct hutch_mount *m = NULL;
	for (size_t i = 0; i < s->n_mounts; i++) {
		if (!strcmp(s->mounts[i].destination, destination)) {
			m = &s->mounts[i];
			free(m->type);
			free(m->source);
			free(m->destination);
			strv_free(m->options, m->n_options);
			break;
		}
	}
	if (!m) {
		s->mounts = xrealloc(s->mounts, (s->n_mounts + 1) * sizeof(*s->mounts));
		m = &s->mounts[s->n_mounts++];
	}
	memset(m, 0, sizeof(*m));
	m->type = xstrdup(type);
	m->source = xstrdup(source);
	m->destination = xstrdup(destination);
	if (options_csv && *options_csv) {
		_cleanup_free_ char *copy = xstrdup(options_csv);
		char *save = NULL;
		for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
			m->options = xrealloc(m->options, (m->n_options + 2) * sizeof(char *));
			m->options[m->n_options++] = xstrdup(o);
			m->options[m->n_options] = NULL;
		}
	}
	return 0;
}

void hutch_spec_set_env(struct hutch_spec *s, const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t klen = eq ? (size_t)(eq - kv) : strlen(kv);
	for (size_t i = 0; i < s->process.n_env; i++) {
		if (!strncmp(s->process.env[i], kv, klen) && s->process.env[i][klen] == '=') {
			free(s->process.env[i]);
			s->process.env[i] = xstrdup(kv);
			return;
		}
	}
	s->process.env = xrealloc(s->process.env, (s->process.n_env + 2) * sizeof(char *));
	s->process.env[s->process.n_env++] = xstrdup(kv);
	s->process.env[s->process.n_env] = NULL;
}

const char *hutch_spec_get_env(const struct hutch_spec *s, const char *key)
{
	size_t klen = strlen(key);
	for (size_t i = 0; i < s->process.n_env; i++)
		if (!strncmp(s->process.env[i], key, klen) && s->process.env[i][klen] == '=')
			return s->process.env[i] + klen + 1;
	return NULL;
}

/* ---- DNS and /etc/hosts ---------------------------------------------------- */

bool hutch_ip_valid(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];
	if (!s || !*s || strlen(s) > 64)
		return false;
	if (inet_pton(AF_INET, s, buf) == 1)
		return true;
	/* fe80::1%eth0: a link-local address names its interface */
	char addr[65];
	snprintf(addr, sizeof(addr), "%s", s);
	char *zone = strchr(addr, '%');
	if (zone) {
		*zone++ = '\0';
		if (!*zone || strlen(zone) >= 16)
			return false;
		for (const char *z = zone; *z; z++)
			if (!((*z >= 'a' && *z <= 'z') || (*z >= 'A' && *z <= 'Z') ||
			      (*z >= '0' && *z <= '9') || *z == '-' || *z == '_' || *z == '.'))
				return false;
	}
	return inet_pton(AF_INET6, addr, buf) == 1;
}

bool hutch_hostname_valid(const char *s)
{
	if (!s || !*s || strlen(s) > 253)
		return false;
	size_t label = 0;
	for (const char *p = s;; p++) {
		if (*p == '.' || *p == '\0') {
			/* no empty label, none longer than 63, none starting or ending in '-' */
			if (label == 0 || label > 63 || p[-1] == '-' || p[-(ptrdiff_t)label] == '-')
				return false;
			if (*p == '\0')
				return true;
			label = 0;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return false;
		label++;
	}
}

/* resolv.conf options are single words ("ndots:2", "edns0", "timeout:1"). */
static bool dns_option_valid(const char *s)
{
	if (!s || !*s || strlen(s) > 64)
		return false;
	for (const char *p = s; *p; p++)
		if (*p <= ' ' || *p > '~' || *p == '#' || *p == ';')
			return false;
	return true;
}

static void strv_push(char ***v, size_t *n, const char *s)
{
	*v = xrealloc(*v, (*n + 2) * sizeof(char *));
	(*v)[(*n)++] = xstrdup(s);
	(*v)[*n] = NULL;
}

int hutch_spec_add_dns_server(struct hutch_spec *s, const char *address, struct hutch_err **err)
{
	if (!hutch_ip_valid(address))
		return hutch_fail(err, 0,
				  "invalid DNS server '%s': expected an IPv4 or IPv6 address",
				  address ? address : "");
	strv_push(&s->dns.servers, &s->dns.n_servers, address);
	return 0;
}

int hutch_spec_add_dns_search(struct hutch_spec *s, const char *domain, struct hutch_err **err)
{
	if (!domain || (strcmp(domain, ".") && !hutch_hostname_valid(domain)))
		return hutch_fail(err, 0,
				  "invalid DNS search domain '%s': expected a domain name like "
				  "example.com (or '.' for none)",
				  domain ? domain : "");
	strv_push(&s->dns.search, &s->dns.n_search, domain);
	return 0;
}

int hutch_spec_add_dns_option(struct hutch_spec *s, const char *option, struct hutch_err **err)
{
	if (!dns_option_valid(option))
		return hutch_fail(err, 0,
				  "invalid DNS option '%s': expected one resolv.conf option like "
				  "ndots:2 or edns0",
				  option ? option : "");
	strv_push(&s->dns.options, &s->dns.n_options, option);
	return 0;
}

int hutch_spec_add_host(struct hutch_spec *s, const char *hostname, const char *address,
			struct hutch_err **err)
{
	if (!hutch_hostname_valid(hostname))
		return hutch_fail(err, 0,
				  "invalid host name '%s' for /etc/hosts: expected letters, "
				  "digits, '-', '_' and dots",
				  hostname ? hostname : "");
	if (!hutch_ip_valid(address))
		return hutch_fail(err, 0,
				  "invalid address '%s' for host '%s' in /etc/hosts: expected an "
				  "IPv4 or IPv6 address",
				  address ? address : "", hostname);
	s->extra_hosts = xrealloc(s->extra_hosts, (s->n_extra_hosts + 1) * sizeof(*s->extra_hosts));
	s->extra_hosts[s->n_extra_hosts++] =
		(struct hutch_host_entry){xstrdup(hostname), xstrdup(address)};
	return 0;
}

/* ---- privileged ------------------------------------------------------------- */

void hutch_spec_set_privileged(struct hutch_spec *s)
{
	s->privileged = true;
	/* "all" is cut down to what hutch itself has when the process starts */
	s->process.caps = ~0ULL;
	s->process.no_new_privileges = false;
	s->seccomp = HUTCH_SECCOMP_UNCONFINED;
	strv_free(s->masked_paths, s->n_masked_paths);
	strv_free(s->readonly_paths, s->n_readonly_paths);
	s->masked_paths = s->readonly_paths = NULL;
	s->n_masked_paths = s->n_readonly_paths = 0;
	/* /sys and /sys/fs/cgroup (the sysfs and cgroup2 mounts) without "ro"; a
	 * bind of the user's stays as it is. */
	for (size_t i = 0; i < s->n_mounts; i++) {
		struct hutch_mount *m = &s->mounts[i];
		if (strcmp(m->type, "sysfs") && strcmp(m->type, "cgroup2"))
			continue;
		size_t kept = 0;
		for (size_t k = 0; k < m->n_options; k++) {
			if (!strcmp(m->options[k], "ro"))
				free(m->options[k]);
			else
				m->options[kept++] = m->options[k];
		}
		m->n_options = kept;
		if (m->options)
			m->options[kept] = NULL;
	}
}

static const char *const cap_names[] = {
	"CHOWN",	   "DAC_OVERRIDE",	"DAC_READ_SEARCH", "FOWNER",
	"FSETID",	   "KILL",		"SETGID",	   "SETUID",
	"SETPCAP",	   "LINUX_IMMUTABLE",	"NET_BIND_SERVICE", "NET_BROADCAST",
	"NET_ADMIN",	   "NET_RAW",		"IPC_LOCK",	   "IPC_OWNER",
	"SYS_MODULE",	   "SYS_RAWIO",		"SYS_CHROOT",	   "SYS_PTRACE",
	"SYS_PACCT",	   "SYS_ADMIN",		"SYS_BOOT",	   "SYS_NICE",
	"SYS_RESOURCE",	   "SYS_TIME",		"SYS_TTY_CONFIG",  "MKNOD",
	"LEASE",	   "AUDIT_WRITE",	"AUDIT_CONTROL",   "SETFCAP",
	"MAC_OVERRIDE",	   "MAC_ADMIN",		"SYSLOG",	   "WAKE_ALARM",
	"BLOCK_SUSPEND",   "AUDIT_READ",	"PERFMON",	   "BPF",
	"CHECKPOINT_RESTORE",
};

int hutch_cap_from_name(const char *name)
{
	if (!strncasecmp(name, "CAP_", 4))
		name += 4;
	for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
		if (!strcasecmp(name, cap_names[i]))
			return (int)i;
	return -1;
}

static bool path_is_clean_absolute(const char *p)
{
	if (!p || p[0] != '/')
		return false;
	for (const char *s = p; *s; s++)
		if (s[0] == '/' && s[1] == '.' && s[2] == '.' && (s[3] == '/' || s[3] == '\0'))
			return false;
	return true;
}

/* Is path strictly below dir (both clean and absolute)? */
static bool path_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	while (n > 0 && dir[n - 1] == '/')
		n--;
	return !strncmp(path, dir, n) && path[n] == '/' && path[n + 1] != '\0';
}

static bool mount_has_option(const struct hutch_mount *m, const char *opt)
{
	for (size_t i = 0; i < m->n_options; i++)
		if (!strcmp(m->options[i], opt))
			return true;
	return false;
}

static int validate_dns_and_hosts(const struct hutch_spec *s, struct hutch_err **err)
{
	for (size_t i = 0; i < s->dns.n_servers; i++)
		if (!hutch_ip_valid(s->dns.servers[i]))
			return hutch_fail(err, 0, "invalid DNS server '%s'", s->dns.servers[i]);
	for (size_t i = 0; i < s->dns.n_search; i++)
		if (strcmp(s->dns.search[i], ".") && !hutch_hostname_valid(s->dns.search[i]))
			return hutch_fail(err, 0, "invalid DNS search domain '%s'",
					  s->dns.search[i]);
	for (size_t i = 0; i < s->dns.n_options; i++)
		if (!dns_option_valid(s->dns.options[i]))
			return hutch_fail(err, 0, "invalid DNS option '%s'", s->dns.options[i]);
	for (size_t i = 0; i < s->n_extra_hosts; i++) {
		const struct hutch_host_entry *h = &s->extra_hosts[i];
		if (!hutch_hostname_valid(h->hostname))
			return hutch_fail(err, 0, "invalid host name '%s' for /etc/hosts",
					  h->hostname ? h->hostname : "");
		if (!hutch_ip_valid(h->address))
			return hutch_fail(err, 0,
					  "invalid address '%s' for host '%s' in /etc/hosts",
					  h->address ? h->address : "", h->hostname);
	}
	return 0;
}

int hutch_spec_validate(const struct hutch_spec *s, struct hutch_err **err)
{
	if (!s->id || strlen(s->id) != 64 || !is_hex_string(s->id, 64))
		return hutch_fail(err, 0, "invalid container id '%s'", s->id ? s->id : "");
	if (s->process.n_args == 0 || !s->process.args[0] || !*s->process.args[0])
		return hutch_fail(err, 0,
				  "no command given and the image has no Cmd or Entrypoint");
	if (!path_is_clean_absolute(s->process.cwd))
		return hutch_fail(err, 0, "working directory '%s' must be an absolute path",
				  s->process.cwd);
	if (s->root.n_layers == 0)
		return hutch_fail(err, 0, "the container has no root filesystem layers");
	for (size_t i = 0; i < s->n_mounts; i++) {
		const struct hutch_mount *m = &s->mounts[i];
		if (!path_is_clean_absolute(m->destination))
			return hutch_fail(err, 0,
					  "mount destination '%s' must be an absolute path "
					  "without '..'",
					  m->destination);
		if (!strcmp(m->destination, "/"))
			return hutch_fail(err, 0, "cannot mount over the container's root '/'");
	}
	/* A mount made below a shared bind propagates to the host and stays there
	 * after the container is gone. */
	for (size_t i = 0; i < s->n_mounts; i++) {
		const struct hutch_mount *shared = &s->mounts[i];
		if (!mount_has_option(shared, "shared") && !mount_has_option(shared, "rshared"))
			continue;
		for (size_t k = 0; k < s->n_mounts; k++)
			if (path_below(s->mounts[k].destination, shared->destination))
				return hutch_fail(err, 0,
						  "mount on %s is inside the shared bind mount on "
						  "%s: it would appear on the host and stay there "
						  "(use rslave, or mount it elsewhere)",
						  s->mounts[k].destination, shared->destination);
	}
	if (s->hostname && strlen(s->hostname) > 64)
		return hutch_fail(err, 0, "hostname '%s' is longer than 64 characters",
				  s->hostname);
	if (s->net_mode == HUTCH_NET_PATH && (!s->net_path || !*s->net_path))
		return hutch_fail(err, 0, "network namespace path missing");
	return validate_dns_and_hosts(s, err);
}
