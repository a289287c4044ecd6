/* hutch_spec_validate: the whole spec, before anything is created, with one
 * check (and one message) per kind of value, whoever built the spec (the CLI or
 * the supervisor). Apart from spec.c so that spec.c stays free of the lifecycle
 * code (state.c's name rule), which the /etc files fuzz target does not link. */
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime/runtime_internal.h"

static bool path_is_clean_absolute(const char *p)
{
	if (!p || p[0] != '/')
		return false;
	for (const char *s = p; *s; s++)
		if (s[0] == '/' && s[1] == '.' && s[2] == '.' && (s[3] == '/' || s[3] == '\0'))
			return false;
	return true;
}

static bool mount_has_option(const struct hutch_mount *m, const char *opt)
{
	for (size_t i = 0; i < m->n_options; i++)
		if (!strcmp(m->options[i], opt))
			return true;
	return false;
}

static bool mount_is_shared(const struct hutch_mount *m)
{
	return mount_has_option(m, "shared") || mount_has_option(m, "rshared");
}

static bool mount_is_bind(const struct hutch_mount *m)
{
	return !strcmp(m->type, "bind") || mount_has_option(m, "bind") ||
	       mount_has_option(m, "rbind");
}

static int validate_dns_and_hosts(const struct hutch_spec *s, struct hutch_err **err)
{
	for (size_t i = 0; i < s->dns.n_servers; i++)
		if (spec_check_dns_server(s->dns.servers[i], err) < 0)
			return -1;
	for (size_t i = 0; i < s->dns.n_search; i++)
		if (spec_check_dns_search(s->dns.search[i], err) < 0)
			return -1;
	for (size_t i = 0; i < s->dns.n_options; i++)
		if (spec_check_dns_option(s->dns.options[i], err) < 0)
			return -1;
	for (size_t i = 0; i < s->n_extra_hosts; i++)
		if (spec_check_host_entry(s->extra_hosts[i].hostname, s->extra_hosts[i].address,
					  err) < 0)
			return -1;
	return 0;
}

/* A mount the runtime makes on path (what it is), on or below the shared bind. */
static int refuse_runtime_mount(const struct hutch_mount *shared, const char *path,
				const char *what, struct hutch_err **err)
{
	if (!path_same(path, shared->destination) && !path_below(path, shared->destination))
		return 0;
	return hutch_fail(err, 0,
			  "the shared bind mount of %s on %s would take hutch's mount on %s (%s) "
			  "to the host, where it would stay: use rslave, or bind it elsewhere",
			  shared->source, shared->destination, path, what);
}

/* A mount made on or below a shared bind propagates to the bind's source on
 * the host and stays there after the container is gone: the user's own mounts
 * (strictly below: one on the same destination replaces the bind), and those
 * the runtime adds itself, which may cover the bind itself too. */
static int refuse_mounts_in_shared_binds(const struct hutch_spec *s, struct hutch_err **err)
{
	for (size_t i = 0; i < s->n_mounts; i++) {
		const struct hutch_mount *shared = &s->mounts[i];
		if (!mount_is_shared(shared))
			continue;
		for (size_t k = 0; k < s->n_mounts; k++)
			if (path_below(s->mounts[k].destination, shared->destination))
				return hutch_fail(err, 0,
						  "mount on %s is inside the shared bind mount on "
						  "%s: it would appear on the host and stay there "
						  "(use rslave, or mount it elsewhere)",
						  s->mounts[k].destination, shared->destination);
		/* a shared tmpfs has no peer on the host: only binds leak */
		if (!mount_is_bind(shared))
			continue;
		for (size_t k = 0; k < s->n_masked_paths; k++)
			if (refuse_runtime_mount(shared, s->masked_paths[k], "a masked path", err) <
			    0)
				return -1;
		for (size_t k = 0; k < s->n_readonly_paths; k++)
			if (refuse_runtime_mount(shared, s->readonly_paths[k], "a read-only path",
						 err) < 0)
				return -1;
		/* rootless, the nodes are binds of the host's; rootful, mknod would
		 * also write on the host */
		if (refuse_runtime_mount(shared, "/dev/null", "its /dev nodes", err) < 0)
			return -1;
		/* The /etc files are never made below a bind (etc_file_wanted), and
		 * never through a symlink into one (mounts.c, etc_target). */
	}
	return 0;
}

/* The OCI namespace list, against what the runtime can run (see runtime.h). */
static int validate_namespaces(const struct hutch_spec *s, struct hutch_err **err)
{
	unsigned seen = 0;
	for (size_t i = 0; i < s->n_namespaces; i++) {
		const struct hutch_namespace *ns = &s->namespaces[i];
		if ((unsigned)ns->type >= HUTCH_NS_TYPES)
			return hutch_fail(err, 0, "unknown namespace type %d", (int)ns->type);
		const char *name = hutch_ns_type_name(ns->type);
		if (seen & (1u << ns->type))
			return hutch_fail(err, 0, "the %s namespace is listed twice", name);
		seen |= 1u << ns->type;
		if (ns->type == HUTCH_NS_TIME && !s->oci)
			return hutch_fail(err, 0, "a time namespace is for OCI bundles only");
		if (!ns->path)
			continue;
		/* an OCI bundle may join any (a pod's, podman's --userns ns:PATH); the
		 * child does (oci.c), but pid before the clone: a pid namespace takes
		 * only new processes */
		if (!s->oci && ns->type != HUTCH_NS_NETWORK)
			return hutch_fail(err, 0,
					  "joining an existing %s namespace (%s) is not supported: "
					  "only a network namespace can be joined by path",
					  name, ns->path);
		if (!*ns->path || ns->path[0] != '/')
			return hutch_fail(err, 0,
					  "%s%s namespace path '%s' must be an absolute path",
					  s->oci ? "linux.namespaces: " : "", name, ns->path);
	}
	static const enum hutch_ns_type always[] = {HUTCH_NS_MOUNT, HUTCH_NS_PID, HUTCH_NS_UTS,
						    HUTCH_NS_IPC, HUTCH_NS_CGROUP};
	/* An OCI bundle may share the caller's ipc, uts and cgroup namespaces
	 * (podman --ipc host, --uts host; no cgroup namespace on cgroup v1
	 * hosts) and its pid namespace (--pid host): none lets the container
	 * change the host's mounts, and the hostname is refused without a uts
	 * namespace of its own (below). */
	for (size_t i = 0; i < ARRAY_SIZE(always); i++)
		if (!(seen & (1u << always[i])) && (!s->oci || always[i] == HUTCH_NS_MOUNT))
			return hutch_fail(err, 0,
					  "a container without its own %s namespace is not "
					  "supported: hutch gives every container a new one",
					  hutch_ns_type_name(always[i]));
	const struct hutch_namespace *user = hutch_spec_namespace(s, HUTCH_NS_USER);
	/* as runc: a joined user namespace has its mappings already */
	if (user && user->path && (s->n_uid_map || s->n_gid_map))
		return hutch_fail(
		    err, 0,
		    "%suid and gid mappings are given with a user namespace joined by "
		    "path (%s): that namespace's own are used, leave them out",
		    s->oci ? "linux.uidMappings, gidMappings: " : "", user->path);
	if (user && !user->path && !s->n_uid_map)
		return hutch_fail(err, 0, "a new user namespace needs a uid mapping (uid_map)");
	if (!(seen & (1u << HUTCH_NS_USER)) && (s->n_uid_map || s->n_gid_map))
		return hutch_fail(err, 0,
				  "uid and gid mappings are given but the container has no user "
				  "namespace of its own");
	return 0;
}

/* linux.resources.devices and linux.devices: what the device program and
 * mknod take (majors and minors are u32 for both). */
static int validate_devices(const struct hutch_spec *s, struct hutch_err **err)
{
	for (size_t i = 0; i < s->resources.n_devices; i++) {
		const struct hutch_device_rule *r = &s->resources.devices[i];
		if (r->type != 'a' && r->type != 'b' && r->type != 'c')
			return hutch_fail(err, 0,
					  "device rule %zu: type '%c' is not 'a', 'b' or 'c'",
					  i + 1, r->type > ' ' && r->type < 0x7f ? r->type : '?');
		if (r->major < -1 || r->major > UINT32_MAX || r->minor < -1 ||
		    r->minor > UINT32_MAX)
			return hutch_fail(err, 0,
					  "device rule %zu: major %lld and minor %lld must be from "
					  "0 to %u, or -1 for any",
					  i + 1, (long long)r->major, (long long)r->minor,
					  UINT32_MAX);
		if (!spec_device_access_valid(r->access))
			return hutch_fail(
			    err, 0,
			    "device rule %zu: access '%.3s' is not made of the letters "
			    "'rwm', each at most once",
			    i + 1, r->access);
	}
	for (size_t i = 0; i < s->n_devices; i++) {
		const struct hutch_device *d = &s->devices[i];
		if (!path_is_clean_absolute(d->path) || !strcmp(d->path, "/"))
			return hutch_fail(err, 0,
					  "device path '%s' must be an absolute path without '..'",
					  d->path ? d->path : "");
		if ((d->type != 'b' && d->type != 'c') || d->major < 0 || d->major > UINT32_MAX ||
		    d->minor < 0 || d->minor > UINT32_MAX)
			return hutch_fail(err, 0,
					  "device %s: not a block or char device with a "
					  "major and minor from 0 to 4294967295",
					  d->path);
	}
	return 0;
}

/* The first capability in mask, by name, for messages. */
static const char *first_cap(uint64_t mask)
{
	for (int c = 0; c < 64; c++)
		if (mask & (1ULL << c))
			return hutch_cap_name(c) ? hutch_cap_name(c) : "an unknown capability";
	return "";
}

/* What capset and PR_CAP_AMBIENT_RAISE would refuse, said before anything starts. */
static int validate_caps(const struct hutch_caps *c, struct hutch_err **err)
{
	uint64_t bad = c->effective & ~c->permitted;
	if (bad)
		return hutch_fail(err, 0,
				  "capability %s is in the effective set but not in the permitted "
				  "set",
				  first_cap(bad));
	bad = c->ambient & ~(c->permitted & c->inheritable);
	if (bad)
		return hutch_fail(err, 0,
				  "capability %s is in the ambient set but not in both the "
				  "permitted and the inheritable set",
				  first_cap(bad));
	return 0;
}

int hutch_spec_check_resources(const struct hutch_resources *r, struct hutch_err **err)
{
	char mem[32], swap[32];
	format_size(r->memory_max, mem, sizeof(mem));
	format_size(r->memory_swap_max, swap, sizeof(swap));
	if (r->memory_max < 0 || r->pids_max < 0 || r->cpu_quota_us < 0 || r->cpu_period_us < 0 ||
	    r->memory_swap_max < -1)
		return hutch_fail(err, 0, "a resource limit is negative");
	if (r->memory_swap_max > 0 && !r->memory_max)
		return hutch_fail(err, 0,
				  "a memory+swap limit (%s) needs a memory limit: it limits memory "
				  "plus swap, so give the memory limit too (or set memory+swap to -1 "
				  "for unlimited swap)",
				  swap);
	if (r->memory_swap_max > 0 && r->memory_swap_max < r->memory_max)
		return hutch_fail(err, 0,
				  "the memory+swap limit (%s) is below the memory limit (%s): it "
				  "limits memory plus swap, so it must be at least the memory limit",
				  swap, mem);
	if (r->cpu_quota_us && !r->cpu_period_us)
		return hutch_fail(err, 0, "a CPU quota needs a CPU period");
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (r->cpu_quota_us && ncpu > 0 && r->cpu_quota_us > ncpu * r->cpu_period_us)
		return hutch_fail(err, 0, "a limit of %g CPUs is more than this machine has (%ld)",
				  (double)r->cpu_quota_us / (double)r->cpu_period_us, ncpu);
	return 0;
}

int hutch_spec_validate(const struct hutch_spec *s, struct hutch_err **err)
{
	if (!s->id || strlen(s->id) != 64 || !is_hex_string(s->id, 64))
		return hutch_fail(err, 0, "invalid container id '%s'", s->id ? s->id : "");
	if (s->name && !hutch_name_valid(s->name))
		return hutch_fail(err, 0,
				  "invalid container name '%s': use 2 or more letters, digits, "
				  "'_', '.' or '-', starting with a letter or digit (like web-1)",
				  s->name);
	if (s->process.n_args == 0 || !s->process.args[0] || !*s->process.args[0])
		return hutch_fail(err, 0,
				  "no command given and the image has no Cmd or Entrypoint");
	if (!path_is_clean_absolute(s->process.cwd))
		return hutch_fail(err, 0, "working directory '%s' must be an absolute path",
				  s->process.cwd ? s->process.cwd : "");
	if (s->root.n_layers == 0 && !s->root.path)
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
	if (refuse_mounts_in_shared_binds(s, err) < 0)
		return -1;
	if (s->oci && s->hostname && !(spec_ns_mask(s) & (1u << HUTCH_NS_UTS)))
		return hutch_fail(err, 0,
				  "a hostname is given but the container has no uts namespace of its "
				  "own: setting it would set the host's");
	if (!s->hostname && !s->oci)
		return hutch_fail(err, 0, "the spec has no hostname (set it, e.g. to the first "
					  "12 characters of the id, as hutch run does)");
	char why[HUTCH_REASON_MAX];
	const char *problem = s->hostname ? hutch_hostname_problem(s->hostname, why) : NULL;
	if (problem) {
		_cleanup_free_ char *shown = printable(s->hostname, strlen(s->hostname));
		return hutch_fail(err, 0,
				  "invalid hostname '%s': %s (a hostname is labels of letters, "
				  "digits and '-' joined by '.', at most 64 characters)",
				  shown, problem);
	}
	if (validate_namespaces(s, err) < 0 || validate_caps(&s->process.caps, err) < 0 ||
	    hutch_spec_check_resources(&s->resources, err) < 0 ||
	    validate_devices(s, err) < 0)
		return -1;
	return validate_dns_and_hosts(s, err);
}
