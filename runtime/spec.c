/* The container spec: Docker's defaults, and the small helpers the CLI and the
 * supervisor use to fill it in. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "common/util.h"
#include "runtime/runtime_internal.h"

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

/* The device cgroup rules Docker and crun give every container: nothing but
 * mknod of any node (a node made is no node opened), the kernel's harmless
 * character devices, the controlling terminal, the console and the
 * container's own ptys. */
static const struct hutch_device_rule default_device_rules[] = {
    {false, 'a', -1, -1, "rwm"}, {true, 'c', -1, -1, "m"}, {true, 'b', -1, -1, "m"},
    {true, 'c', 1, 3, "rwm"},	 {true, 'c', 1, 5, "rwm"}, {true, 'c', 1, 7, "rwm"},
    {true, 'c', 1, 8, "rwm"},	 {true, 'c', 1, 9, "rwm"}, {true, 'c', 5, 0, "rwm"},
    {true, 'c', 5, 1, "rwm"},	 {true, 'c', 5, 2, "rwm"}, {true, 'c', 136, -1, "rwm"},
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
	hutch_spec_set_caps(s, HUTCH_DEFAULT_CAPS);
	/* Docker's: every type but user (rootless adds it), network with only loopback */
	static const enum hutch_ns_type own[] = {HUTCH_NS_MOUNT, HUTCH_NS_PID, HUTCH_NS_NETWORK,
						 HUTCH_NS_IPC,	 HUTCH_NS_UTS, HUTCH_NS_CGROUP};
	for (size_t i = 0; i < ARRAY_SIZE(own); i++)
		hutch_spec_set_namespace(s, own[i], NULL);
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
	s->resources.devices = xcalloc(1, sizeof(default_device_rules));
	memcpy(s->resources.devices, default_device_rules, sizeof(default_device_rules));
	s->resources.n_devices = ARRAY_SIZE(default_device_rules);
	return s;
}

void hutch_resources_clear(struct hutch_resources *r)
{
	free(r->devices);
	for (size_t i = 0; i < r->n_writes; i++) {
		struct hutch_cgroup_write *w = &r->writes[i];
		free(w->field);
		free(w->file);
		free(w->value);
		free(w->alt_file);
		free(w->alt_value);
	}
	free(r->writes);
	*r = (struct hutch_resources){0};
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
	strv_free(s->labels, s->n_labels);
	strv_free(s->process.args, s->process.n_args);
	strv_free(s->process.env, s->process.n_env);
	free(s->process.cwd);
	free(s->process.user);
	free(s->process.rlimits);
	strv_free(s->root.layers, s->root.n_layers);
	free(s->root.path);
	for (size_t i = 0; i < s->n_mounts; i++) {
		free(s->mounts[i].destination);
		free(s->mounts[i].type);
		free(s->mounts[i].source);
		free(s->mounts[i].uid_map);
		free(s->mounts[i].gid_map);
		strv_free(s->mounts[i].options, s->mounts[i].n_options);
	}
	free(s->mounts);
	strv_free(s->masked_paths, s->n_masked_paths);
	strv_free(s->readonly_paths, s->n_readonly_paths);
	for (size_t i = 0; i < s->n_namespaces; i++)
		free(s->namespaces[i].path);
	free(s->namespaces);
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
	hutch_resources_clear(&s->resources);
	for (size_t i = 0; i < s->n_devices; i++) {
		free(s->devices[i].path);
		free(s->devices[i].host_path);
	}
	free(s->devices);
	strv_free(s->given.image_entrypoint, s->given.n_image_entrypoint);
	strv_free(s->given.image_cmd, s->given.n_image_cmd);
	strv_free(s->given.entrypoint, s->given.n_entrypoint);
	strv_free(s->given.command, s->given.n_command);
	free(s);
}

/* ---- namespaces and capabilities -------------------------------------------- */

static const struct {
	const char *name;
	int flag;
} ns_types[HUTCH_NS_TYPES] = {
    [HUTCH_NS_MOUNT] = {"mount", CLONE_NEWNS},	     [HUTCH_NS_PID] = {"pid", CLONE_NEWPID},
    [HUTCH_NS_NETWORK] = {"network", CLONE_NEWNET},  [HUTCH_NS_IPC] = {"ipc", CLONE_NEWIPC},
    [HUTCH_NS_UTS] = {"uts", CLONE_NEWUTS},	     [HUTCH_NS_USER] = {"user", CLONE_NEWUSER},
    [HUTCH_NS_CGROUP] = {"cgroup", CLONE_NEWCGROUP}, [HUTCH_NS_TIME] = {"time", CLONE_NEWTIME},
};

const char *hutch_ns_type_name(enum hutch_ns_type t)
{
	return (unsigned)t < HUTCH_NS_TYPES ? ns_types[t].name : "unknown";
}

int hutch_ns_type_from_name(const char *name)
{
	for (int t = 0; t < HUTCH_NS_TYPES; t++)
		if (!strcmp(name, ns_types[t].name))
			return t;
	return -1;
}

int ns_clone_flag(enum hutch_ns_type t)
{
	return (unsigned)t < HUTCH_NS_TYPES ? ns_types[t].flag : 0;
}

int ns_clone_flags(unsigned mask)
{
	int flags = 0;
	for (int t = 0; t < HUTCH_NS_TYPES; t++)
		if (mask & (1u << t))
			flags |= ns_types[t].flag;
	return flags;
}

const struct hutch_namespace *hutch_spec_namespace(const struct hutch_spec *s, enum hutch_ns_type t)
{
	for (size_t i = 0; i < s->n_namespaces; i++)
		if (s->namespaces[i].type == t)
			return &s->namespaces[i];
	return NULL;
}

unsigned spec_ns_mask(const struct hutch_spec *s)
{
	unsigned mask = 0;
	for (size_t i = 0; i < s->n_namespaces; i++)
		if ((unsigned)s->namespaces[i].type < HUTCH_NS_TYPES)
			mask |= 1u << s->namespaces[i].type;
	return mask;
}

void hutch_spec_share_namespace(struct hutch_spec *s, enum hutch_ns_type t)
{
	size_t kept = 0;
	for (size_t i = 0; i < s->n_namespaces; i++) {
		if (s->namespaces[i].type == t)
			free(s->namespaces[i].path);
		else
			s->namespaces[kept++] = s->namespaces[i];
	}
	s->n_namespaces = kept;
}

void hutch_spec_set_namespace(struct hutch_spec *s, enum hutch_ns_type t, const char *path)
{
	hutch_spec_share_namespace(s, t);
	s->namespaces = xrealloc(s->namespaces, (s->n_namespaces + 1) * sizeof(*s->namespaces));
	s->namespaces[s->n_namespaces++] =
	    (struct hutch_namespace){.type = t, .path = path ? xstrdup(path) : NULL};
}

void hutch_spec_set_caps(struct hutch_spec *s, uint64_t mask)
{
	s->process.caps.bounding = s->process.caps.effective = s->process.caps.permitted = mask;
}

static bool is_default_mount(const struct hutch_mount *m)
{
	for (size_t i = 0; i < ARRAY_SIZE(default_mounts); i++)
		if (!strcmp(m->type, default_mounts[i].type) &&
		    !strcmp(m->source, default_mounts[i].source) &&
		    !strcmp(m->destination, default_mounts[i].destination))
			return true;
	return false;
}

static void free_mount(struct hutch_mount *m)
{
	free(m->type);
	free(m->source);
	free(m->destination);
	free(m->uid_map);
	free(m->gid_map);
	strv_free(m->options, m->n_options);
}

/* As in Docker: a bind on /dev is the container's /dev as it is, so the default
 * mounts below it (devpts, shm, mqueue) go; they would need mount points made in
 * the bind's source, on the host. */
static void drop_default_mounts_below_dev(struct hutch_spec *s)
{
	size_t kept = 0;
	for (size_t i = 0; i < s->n_mounts; i++) {
		struct hutch_mount *m = &s->mounts[i];
		if (path_below(m->destination, "/dev") && is_default_mount(m))
			free_mount(m);
		else
			s->mounts[kept++] = *m;
	}
	s->n_mounts = kept;
}

int hutch_spec_add_mount(struct hutch_spec *s, const char *type, const char *source,
			 const char *destination, const char *options_csv)
{
	if (!strcmp(type, "bind") && path_same(destination, "/dev"))
		drop_default_mounts_below_dev(s);
	/* A later mount on the same destination replaces an earlier one (a user's
	 * --tmpfs /dev/shm overrides the default). */
	struct hutch_mount *m = NULL;
	for (size_t i = 0; i < s->n_mounts; i++) {
		if (!strcmp(s->mounts[i].destination, destination)) {
			m = &s->mounts[i];
			free_mount(m);
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

void hutch_spec_set_label(struct hutch_spec *s, const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t klen = eq ? (size_t)(eq - kv) : strlen(kv);
	for (size_t i = 0; i < s->n_labels; i++) {
		if (!strncmp(s->labels[i], kv, klen) && s->labels[i][klen] == '=') {
			free(s->labels[i]);
			s->labels[i] = eq ? xstrdup(kv) : xasprintf("%s=", kv);
			return;
		}
	}
	s->labels = xrealloc(s->labels, (s->n_labels + 2) * sizeof(char *));
	s->labels[s->n_labels++] = eq ? xstrdup(kv) : xasprintf("%s=", kv);
	s->labels[s->n_labels] = NULL;
}

const char *hutch_label_get(char *const *labels, size_t n, const char *key)
{
	size_t klen = strlen(key);
	for (size_t i = 0; i < n; i++)
		if (!strncmp(labels[i], key, klen) && labels[i][klen] == '=')
			return labels[i] + klen + 1;
	return NULL;
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

/* Why s is not a DNS name of dot-separated labels of 1-63 letters, digits, '-'
 * (and '_' when underscore), no '-' at either end of a label, at most max
 * characters; NULL if it is one. */
static const char *dns_name_problem(const char *s, size_t max, bool underscore,
				    char buf[HUTCH_REASON_MAX])
{
	size_t len = s ? strlen(s) : 0, label = 0;
	if (len == 0)
		return "it is empty";
	if (len > max) {
		snprintf(buf, HUTCH_REASON_MAX, "it is longer than %zu characters", max);
		return buf;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0)
				return "a label between dots is empty";
			if (s[i - 1] == '-')
				return "a label ends with '-'";
			label = 0;
			continue;
		}
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || (underscore && c == '_');
		if (!ok) {
			if (c < 0x20 || c == 0x7f || c == '\\' || c == '\'')
				snprintf(buf, HUTCH_REASON_MAX, "'\\x%02x' is not allowed", c);
			else
				snprintf(buf, HUTCH_REASON_MAX, "'%c' is not allowed", c);
			return buf;
		}
		if (c == '-' && label == 0)
			return "a label starts with '-'";
		if (++label > 63)
			return "a label is longer than 63 characters";
	}
	if (label == 0)
		return "it ends with '.'";
	if (s[len - 1] == '-')
		return "a label ends with '-'";
	return NULL;
}

bool hutch_hostname_valid(const char *s)
{
	char buf[HUTCH_REASON_MAX];
	return dns_name_problem(s, 253, true, buf) == NULL;
}

const char *hutch_hostname_problem(const char *name, char buf[HUTCH_REASON_MAX])
{
	/* sethostname takes at most 64 bytes; '_' is not in RFC 1123 */
	return dns_name_problem(name, 64, false, buf);
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

/* One check per kind of value, with its message, for the hutch_spec_add_*
 * helpers and for hutch_spec_validate (fields a caller filled in directly). */
int spec_check_dns_server(const char *address, struct hutch_err **err)
{
	if (!hutch_ip_valid(address))
		return hutch_fail(err, 0,
				  "invalid DNS server '%s': expected an IPv4 or IPv6 address",
				  address ? address : "");
	return 0;
}

int spec_check_dns_search(const char *domain, struct hutch_err **err)
{
	if (!domain || (strcmp(domain, ".") && !hutch_hostname_valid(domain)))
		return hutch_fail(err, 0,
				  "invalid DNS search domain '%s': expected a domain name like "
				  "example.com (or '.' for none)",
				  domain ? domain : "");
	return 0;
}

int spec_check_dns_option(const char *option, struct hutch_err **err)
{
	if (!dns_option_valid(option))
		return hutch_fail(err, 0,
				  "invalid DNS option '%s': expected one resolv.conf option like "
				  "ndots:2 or edns0",
				  option ? option : "");
	return 0;
}

int spec_check_host_entry(const char *hostname, const char *address, struct hutch_err **err)
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
	return 0;
}

static void strv_push(char ***v, size_t *n, const char *s)
{
	*v = xrealloc(*v, (*n + 2) * sizeof(char *));
	(*v)[(*n)++] = xstrdup(s);
	(*v)[*n] = NULL;
}

int hutch_spec_add_dns_server(struct hutch_spec *s, const char *address, struct hutch_err **err)
{
	if (spec_check_dns_server(address, err) < 0)
		return -1;
	strv_push(&s->dns.servers, &s->dns.n_servers, address);
	return 0;
}

int hutch_spec_add_dns_search(struct hutch_spec *s, const char *domain, struct hutch_err **err)
{
	if (spec_check_dns_search(domain, err) < 0)
		return -1;
	strv_push(&s->dns.search, &s->dns.n_search, domain);
	return 0;
}

int hutch_spec_add_dns_option(struct hutch_spec *s, const char *option, struct hutch_err **err)
{
	if (spec_check_dns_option(option, err) < 0)
		return -1;
	strv_push(&s->dns.options, &s->dns.n_options, option);
	return 0;
}

int hutch_spec_add_host(struct hutch_spec *s, const char *hostname, const char *address,
			struct hutch_err **err)
{
	if (spec_check_host_entry(hostname, address, err) < 0)
		return -1;
	s->extra_hosts = xrealloc(s->extra_hosts, (s->n_extra_hosts + 1) * sizeof(*s->extra_hosts));
	s->extra_hosts[s->n_extra_hosts++] =
		(struct hutch_host_entry){xstrdup(hostname), xstrdup(address)};
	return 0;
}

/* ---- devices ---------------------------------------------------------------- */

void hutch_spec_add_device_rule(struct hutch_spec *s, bool allow, char type, int64_t major,
				int64_t minor, const char *access)
{
	struct hutch_resources *r = &s->resources;
	r->devices = xrealloc(r->devices, (r->n_devices + 1) * sizeof(*r->devices));
	struct hutch_device_rule *rule = &r->devices[r->n_devices++];
	*rule = (struct hutch_device_rule){
	    .allow = allow, .type = type, .major = major, .minor = minor};
	snprintf(rule->access, sizeof(rule->access), "%s", access ? access : "");
}

bool spec_device_access_valid(const char *access)
{
	size_t n = access ? strlen(access) : 0;
	if (n == 0 || n > 3)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("rwm", access[i]) || strchr(access + i + 1, access[i]))
			return false;
	return true;
}

static int device_fail(struct hutch_err **err, int e, const char *arg, const char *why)
{
	_cleanup_free_ char *shown = printable(arg, strlen(arg));
	return hutch_fail(err, e,
			  "invalid device '%s': %s (give HOST[:CONTAINER][:PERMS], like "
			  "/dev/sdc:/dev/xvdc:rw)",
			  shown, why);
}

int hutch_spec_add_device(struct hutch_spec *s, const char *arg, struct hutch_err **err)
{
	/* Docker's syntax: HOST, HOST:CONTAINER, HOST:PERMS, HOST:CONTAINER:PERMS */
	_cleanup_free_ char *copy = xstrdup(arg);
	char *part[4] = {0};
	size_t n = 0;
	for (char *p = copy, *colon; n < 4; p = colon + 1) {
		part[n++] = p;
		colon = strchr(p, ':');
		if (!colon)
			break;
		*colon = '\0';
	}
	if (n == 4)
		return device_fail(err, 0, arg, "it has more than two ':'");
	const char *host = part[0], *path = host, *perms = "rwm";
	if (n == 2 && spec_device_access_valid(part[1]))
		perms = part[1];
	else if (n >= 2)
		path = part[1];
	if (n == 3)
		perms = part[2];
	if (host[0] != '/')
		return device_fail(err, 0, arg, "the host's device must be an absolute path");
	if (path[0] != '/' || !strcmp(path, "/") || strstr(path, "/../") ||
	    (strlen(path) >= 3 && !strcmp(path + strlen(path) - 3, "/..")))
		return device_fail(err, 0, arg,
				   "the path in the container must be absolute, not '/', and "
				   "without '..'");
	if (!spec_device_access_valid(perms))
		return device_fail(err, 0, arg,
				   "PERMS must be letters of 'rwm', each at most once");
	struct stat st;
	if (stat(host, &st) < 0)
		return device_fail(err, errno, arg, "the host's device cannot be found");
	if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
		return device_fail(err, 0, arg, "the host's path is not a device node");
	char type = S_ISCHR(st.st_mode) ? 'c' : 'b';
	/* the same path again: the last one counts */
	struct hutch_device *d = NULL;
	for (size_t i = 0; i < s->n_devices && !d; i++)
		if (path_same(s->devices[i].path, path)) {
			d = &s->devices[i];
			free(d->path);
			free(d->host_path);
		}
	if (!d) {
		s->devices = xrealloc(s->devices, (s->n_devices + 1) * sizeof(*s->devices));
		d = &s->devices[s->n_devices++];
	}
	*d = (struct hutch_device){.path = xstrdup(path),
				   .type = type,
				   .major = major(st.st_rdev),
				   .minor = minor(st.st_rdev),
				   .file_mode = st.st_mode & 07777,
				   .uid = st.st_uid,
				   .gid = st.st_gid,
				   .host_path = xstrdup(host)};
	hutch_spec_add_device_rule(s, true, type, d->major, d->minor, perms);
	return 0;
}

/* ---- privileged ------------------------------------------------------------- */

void hutch_spec_set_privileged(struct hutch_spec *s)
{
	s->privileged = true;
	/* every device, as Docker: one rule that allows all (no program at all) */
	s->resources.n_devices = 0;
	hutch_spec_add_device_rule(s, true, 'a', -1, -1, "rwm");
	/* "all" is cut down to what hutch itself has when the process starts */
	hutch_spec_set_caps(s, ~0ULL);
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

/* Indexed by capability number, as <linux/capability.h> numbers them. */
static const char *const cap_names[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH",
	"CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
	"CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG",
	"CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON",
	"CAP_BPF", "CAP_CHECKPOINT_RESTORE",
};

const char *hutch_cap_name(int cap)
{
	return cap >= 0 && (size_t)cap < ARRAY_SIZE(cap_names) ? cap_names[cap] : NULL;
}

int hutch_cap_from_name(const char *name)
{
	bool prefixed = !strncasecmp(name, "CAP_", 4);
	for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
		if (!strcasecmp(name, cap_names[i] + (prefixed ? 0 : 4)))
			return (int)i;
	return -1;
}

/* Paths as spec destinations are written: trailing slashes do not count. */
static size_t path_len(const char *p)
{
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		n--;
	return n;
}

bool path_same(const char *a, const char *b)
{
	size_t la = path_len(a), lb = path_len(b);
	return la == lb && !strncmp(a, b, la);
}

bool path_below(const char *path, const char *dir)
{
	size_t n = path_len(dir);
	if (n == 1 && dir[0] == '/')
		n = 0; /* everything else is below "/" */
	return !strncmp(path, dir, n) && path[n] == '/' && path[n + 1] != '\0';
}
