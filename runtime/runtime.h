/* hutch runtime: one container, straight from the kernel.
 *
 * The container spec follows the OCI runtime spec's model (process, root, mounts,
 * namespaces, resources, capabilities, seccomp, id mappings) so that config.json
 * bundles can be loaded into it later. The runtime never calls back into its
 * callers: cli/ and supervisor/ build a spec, start it, and watch the pidfd. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

struct hutch_id_map {
	uint32_t container_id, host_id, size;
};

struct hutch_mount {
	char *destination; /* absolute path inside the container */
	char *type; /* "bind", "tmpfs", "proc", ... */
	char *source;
	char **options; /* OCI-style: "ro", "nosuid", "rbind", "size=64m", "mode=1777" ... */
	size_t n_options;
	/* an id-mapped bind (OCI mounts[].uidMappings, gidMappings): a file of
	 * the source owned by container_id shows as owned by host_id (written
	 * as a user namespace's map, as runc and crun do); none: not id-mapped,
	 * or with the "idmap" option the container's own maps */
	struct hutch_id_map *uid_map, *gid_map;
	size_t n_uid_map, n_gid_map;
};

struct hutch_rlimit {
	int resource; /* RLIMIT_* */
	uint64_t soft, hard;
	bool explicit_; /* set by the user: an error if it cannot be applied */
};
/* Resource limit names as --ulimit and Docker spell them ("nofile") <-> RLIMIT_*. */
int hutch_rlimit_from_name(const char *name); /* -1 if unknown */
const char *hutch_rlimit_name(int resource);  /* "limit N" style fallback: NULL */
/* "as, core, cpu, ...": every name, for messages (caller frees). */
char *hutch_rlimit_known_names(void);
/* What setrlimit will not allow the container's process, refused before anything
 * is set up (hutch_container_start checks every explicit limit): soft above
 * hard, a hard limit above hutch's own unless hutch may raise it (root with
 * CAP_SYS_RESOURCE, outside a user namespace), nofile above fs.nr_open. The
 * message names the limit and what is allowed. */
int hutch_rlimit_check(const struct hutch_rlimit *rl, bool rootless, bool userns,
		       struct hutch_err **err);

enum hutch_seccomp_mode { HUTCH_SECCOMP_DEFAULT = 0, HUTCH_SECCOMP_UNCONFINED };

/* One more /etc/hosts line: `address hostname`. */
struct hutch_host_entry {
	char *hostname;
	char *address; /* an IPv4 or IPv6 literal */
};

/* linux.namespaces of the OCI runtime spec: a type in the spec's list gets a
 * namespace of its own, a new one or (path) the one at that path; a type not in
 * the list is shared with whoever starts the container. hutch runs what it can
 * keep safe and clean up, and hutch_spec_validate refuses the rest by name:
 * mount, pid, uts, ipc and cgroup are always new; network may be new (only
 * loopback, up), joined by path (net/ prepares it) or shared (--network host);
 * user may be new (with uid_map and gid_map) or shared. */
enum hutch_ns_type {
	HUTCH_NS_MOUNT = 0,
	HUTCH_NS_PID,
	HUTCH_NS_NETWORK,
	HUTCH_NS_IPC,
	HUTCH_NS_UTS,
	HUTCH_NS_USER,
	HUTCH_NS_CGROUP,
	HUTCH_NS_TIME, /* OCI bundles only (linux.timeOffsets) */
	HUTCH_NS_TYPES
};

struct hutch_namespace {
	enum hutch_ns_type type;
	char *path; /* NULL: a new namespace */
};

/* The OCI names: "mount", "pid", "network", "ipc", "uts", "user", "cgroup", "time". */
const char *hutch_ns_type_name(enum hutch_ns_type t);
int hutch_ns_type_from_name(const char *name); /* -1 if unknown */

/* process.capabilities of the OCI runtime spec, as bit masks (1 << CAP_*).
 * The kernel's rules for execve apply to them as to any process: a process
 * running as uid 0 ends up with the bounding set (and the inheritable one),
 * another uid with the ambient set only. */
struct hutch_caps {
	uint64_t bounding, effective, permitted, inheritable, ambient;
};

/* What runs: for the container's pid 1, and for `exec`. */
struct hutch_process {
	char **args; /* argv; args[0] looked up in PATH inside the container */
	size_t n_args;
	char **env; /* "K=V" */
	size_t n_env;
	char *cwd; /* absolute; "/" when empty */
	char *user; /* "uid[:gid]" or "name[:group]", resolved inside the container */
	bool terminal; /* allocate a pty inside the container */
	bool interactive; /* keep stdin open (else /dev/null) */
	bool init; /* run a tiny reaper as pid 1 */
	bool no_new_privileges;
	struct hutch_caps caps;
	struct hutch_rlimit *rlimits;
	size_t n_rlimits;
	int stop_signal;
};

/* One rule of linux.resources.devices in the OCI runtime spec: the device
 * cgroup's. A request (open for read and/or write, or mknod) matches a rule
 * when type, major and minor match and, for an allow rule, every access it
 * asks for is in the rule's (for a deny rule: any); the last rule that
 * matches decides, and a request no rule matches is denied. */
struct hutch_device_rule {
	bool allow;
	char type;	      /* 'a' (any), 'b' (block) or 'c' (char) */
	int64_t major, minor; /* -1: any */
	char access[4];	      /* a non-empty subset of "rwm", NUL-terminated */
};

/* One cgroup v2 file an OCI bundle's linux.resources sets beyond memory, cpu
 * quota and pids (blockIO, hugepageLimits, rdma, unified, memory.reservation,
 * cpu.cpus, ...), as the parser made it: written one line at a time, in the
 * order of the list (unified last: it overrides, as with crun). */
struct hutch_cgroup_write {
	char *field; /* "linux.resources.blockIO.weight": what messages name */
	char *file;  /* "io.bfq.weight", in the container's cgroup */
	char *value; /* lines of text */
	/* where file does not exist, this file and value instead (io.weight and
	 * the weight converted to its range, for a host without bfq) */
	char *alt_file, *alt_value;
	bool optional; /* a file that does not exist is skipped (hugetlb.*.rsvd.max) */
	/* unified's files: a controller the cgroup lacks is an error, not a warning */
	bool strict;
};

/* One node of linux.devices: made in the container's filesystem (mknod as
 * root; rootless, and where the device cgroup is missing, a bind of the
 * host's node at host_path). */
struct hutch_device {
	char *path; /* absolute, in the container */
	char type;  /* 'b' or 'c' */
	int64_t major, minor;
	uint32_t file_mode; /* permission bits */
	uint32_t uid, gid;
	char *host_path; /* the host's node it stands for */
};

struct hutch_spec {
	char *id; /* 64 hex */
	char *name; /* optional, unique name */
	char *image; /* image reference, informational */
	char *hostname;

	struct hutch_process process;

	struct {
		char **layers; /* read-only layer dirs, lowest first */
		size_t n_layers;
		bool readonly;
		/* an OCI bundle's root.path: a directory bound as it is (with no
		 * layers, no overlay and no rw layer of hutch's) */
		char *path;
	} root;

	struct hutch_mount *mounts;
	size_t n_mounts;
	char **masked_paths;
	size_t n_masked_paths;
	char **readonly_paths;
	size_t n_readonly_paths;

	struct hutch_device *devices; /* nodes to make (--device) */
	size_t n_devices;

	struct hutch_namespace *namespaces; /* each type at most once */
	size_t n_namespaces;
	/* Every container gets its own /etc/hostname, /etc/hosts and /etc/resolv.conf,
	 * bind-mounted over the image's, except where a mount of the spec covers them.
	 * An empty list takes the host's (resolv.conf: with the host's network as it is,
	 * else without loopback nameservers); extra hosts come after the localhost
	 * lines, and one naming the hostname replaces its loopback lines. */
	struct {
		char **servers; /* IP literals */
		size_t n_servers;
		char **search; /* domains; "." alone means none */
		size_t n_search;
		char **options; /* "ndots:2", "edns0", ... */
		size_t n_options;
	} dns;
	struct hutch_host_entry *extra_hosts;
	size_t n_extra_hosts;
	struct hutch_id_map *uid_map, *gid_map;
	size_t n_uid_map, n_gid_map;

	struct hutch_resources {
		/* linux.resources.devices: who may mknod, read and write which
		 * device nodes (a cgroup v2 device program); hutch_spec_new fills in
		 * Docker's defaults */
		struct hutch_device_rule *devices;
		size_t n_devices;
		int64_t memory_max; /* bytes, 0 = unlimited */
		/* memory + swap in bytes, as Docker's --memory-swap: 0 = unset (twice
		 * memory_max: as much swap as memory), -1 = unlimited swap */
		int64_t memory_swap_max;
		int64_t cpu_quota_us, cpu_period_us; /* 0 = unlimited */
		int64_t pids_max; /* 0 = unlimited */
		/* cgroup v2 cpu.weight (1-10000), a share against the container's
		 * siblings, not a limit (OCI's cpu.shares); 0 = the kernel's 100 */
		int64_t cpu_weight;
		/* the rest of OCI's linux.resources, file by file (hutch run sets none) */
		struct hutch_cgroup_write *writes;
		size_t n_writes;
		/* update: refuse a memory limit below the current usage */
		bool check_before_update;
	} resources;

	enum hutch_seccomp_mode seccomp;
	/* An OCI bundle's spec (ocispec.c): exactly what its config.json says and
	 * nothing of hutch's own (no /etc files, no defaults); namespaces may be
	 * shared or joined as validate.c allows, and the hostname may be unset. */
	bool oci;
	bool privileged;
	bool auto_remove; /* --rm: remove rw layer and state when it exits */
	/* the rw layer (overlay upper and work dirs) on a tmpfs private to the
	 * container's mount namespace, gone with it: nothing made or removed on
	 * the disk for it (run --rm; not the builder, which reads the upper) */
	bool rw_tmpfs;
	int64_t rw_tmpfs_size; /* its size= in bytes; 0: tmpfs's default, half the RAM */
	bool detached; /* output goes to the container's log, not to a terminal */
	char *image_id;
	/* "K=V" labels, kept in the record (inspect, ps --format json): a stack's
	 * supervisor finds its containers by them (hutch.stack, hutch.service ...). */
	char **labels;
	size_t n_labels;

	/* What the option setters (options.c) keep so that settings given in any
	 * order merge as Docker merges them; process.args and process.caps hold
	 * the result. */
	struct hutch_spec_given {
		char **image_entrypoint, **image_cmd; /* hutch_spec_apply_image */
		size_t n_image_entrypoint, n_image_cmd;
		char **entrypoint, **command; /* hutch_spec_set_entrypoint, _set_command */
		size_t n_entrypoint, n_command;
		bool entrypoint_set, command_set;
		uint64_t caps_added, caps_dropped; /* ~0: ALL */
	} given;
};

/* What the runtime has to say that is no error: a limit it cannot enforce here,
 * a cgroup it leaves alone, a note said once. */
enum hutch_log_level { HUTCH_LOG_NOTE, HUTCH_LOG_WARNING };
typedef void hutch_log_fn(enum hutch_log_level level, const char *msg, void *data);

/* Where the runtime keeps container state (rw layers, state files). */
struct hutch_runtime {
	char *data_root; /* containers' rw layers: DATA/containers/ID */
	char *run_root; /* state: RUN/containers/ID */
	bool rootless;
	bool quiet; /* no warnings or notes on stderr (when log is NULL) */
	/* Every warning and note goes here (a supervisor puts them in its log);
	 * NULL: "hutch: warning: MSG" or "hutch: note: MSG" on stderr, unless quiet.
	 * Called in the process that hit it, which may be a detached container's
	 * monitor while it starts the container. */
	hutch_log_fn *log;
	void *log_data;
	/* Rootless networks (net/rootless.c): the container's user namespace is made
	 * a child of the user namespace at this path (the rootless network
	 * namespace's owner, which maps the user's own and subordinate ids), so that
	 * a process in that one has the capabilities over the bridge's namespace and
	 * the container's at once. hutch enters it for the clone (for good: no
	 * process can go back to a parent user namespace) and writes the id maps
	 * itself, translated into it. NULL: a child of the caller's. */
	const char *userns_parent;
	/* Called in the process that made the container, once its process exists
	 * (its own namespaces, its id maps written) and before any of it runs: wire
	 * its network namespace through pid (hutch_net_wire). */
	int (*on_created)(void *data, const char *id, pid_t pid, struct hutch_err **err);
	void *on_created_data;
	/* A detached container's keeper writes its exit ("CODE SIGNAL TIME_NS\n",
	 * as DATA/containers/ID/exit) to this pipe as soon as it has reaped it,
	 * before it execs `hutch internal finish`: a supervisor learns of the
	 * exit without waiting for the record. 0: none (fd 0 is never one). */
	int exit_notify_fd;
};
/* Say msg through rt->log (or on stderr, as above). */
void hutch_runtime_log(const struct hutch_runtime *rt, enum hutch_log_level level,
		       const char *fmt, ...) __attribute__((format(printf, 3, 4)));

struct hutch_exit {
	int code; /* exit code, or 128+signal */
	int signal; /* 0 unless killed by a signal */
	bool oom_killed;
	int64_t memory_limit;
};

/* A started container. */
struct hutch_container;

/* spec.c: the default spec (Docker's defaults: caps, masked paths, /dev, /proc...). */
struct hutch_spec *hutch_spec_new(void);
void hutch_spec_free(struct hutch_spec *spec);
int hutch_spec_add_mount(struct hutch_spec *spec, const char *type, const char *source,
			 const char *destination, const char *options_csv);
void hutch_spec_set_env(struct hutch_spec *spec, const char *kv); /* replaces same key */
/* A "K=V" label (replaces one of the same key). */
void hutch_spec_set_label(struct hutch_spec *spec, const char *kv);
/* The value of label key in a list of "K=V", NULL if absent. */
const char *hutch_label_get(char *const *labels, size_t n, const char *key);
/* The container's own namespace of type t, NULL when it shares the caller's. */
const struct hutch_namespace *hutch_spec_namespace(const struct hutch_spec *spec,
						   enum hutch_ns_type t);
/* Give the container a namespace of type t of its own: a new one (path NULL)
 * or the one at path; replaces what the spec had for t. */
void hutch_spec_set_namespace(struct hutch_spec *spec, enum hutch_ns_type t, const char *path);
/* Let the container share the caller's namespace of type t. */
void hutch_spec_share_namespace(struct hutch_spec *spec, enum hutch_ns_type t);
/* Every capability set but ambient and inheritable to mask (--cap-add and
 * --cap-drop work on these three, as in Docker). */
void hutch_spec_set_caps(struct hutch_spec *spec, uint64_t mask);
const char *hutch_spec_get_env(const struct hutch_spec *spec, const char *key);
/* DNS settings and /etc/hosts entries, validated: the message names the value. */
int hutch_spec_add_dns_server(struct hutch_spec *spec, const char *address,
			      struct hutch_err **err);
int hutch_spec_add_dns_search(struct hutch_spec *spec, const char *domain,
			      struct hutch_err **err);
int hutch_spec_add_dns_option(struct hutch_spec *spec, const char *option,
			      struct hutch_err **err);
int hutch_spec_add_host(struct hutch_spec *spec, const char *hostname, const char *address,
			struct hutch_err **err);
/* An IPv4 or IPv6 literal (IPv6 may carry a %zone); a DNS name as /etc/hosts
 * entries and search domains take it: dot-separated labels of letters, digits,
 * '-' and '_' (at most 253 characters). Not the container's own hostname: see
 * hutch_hostname_problem. */
bool hutch_ip_valid(const char *s);
bool hutch_hostname_valid(const char *s);
/* The container's own hostname, the one rule for every caller (the CLI's
 * --hostname, specs built by the supervisor, hutch_spec_validate): RFC 1123
 * labels of 1-63 letters, digits and '-' (none at either end of a label) joined
 * by '.', at most 64 characters (sethostname's limit). NULL when valid; else
 * why not, in words ("a label starts with '-'"), possibly written into buf. */
#define HUTCH_REASON_MAX 64
const char *hutch_hostname_problem(const char *name, char buf[HUTCH_REASON_MAX]);
/* Docker's --device HOST[:CONTAINER][:PERMS]: the host's device node HOST
 * (a symlink to one is followed) made at CONTAINER (default: HOST) with the
 * host's mode and owner, and a rule that allows PERMS ("rwm" by default, a
 * subset of it) on it. The message names the value and what is wrong. */
int hutch_spec_add_device(struct hutch_spec *spec, const char *arg, struct hutch_err **err);
/* Append a device cgroup rule (access: a non-empty subset of "rwm"); later
 * rules win. hutch_spec_validate checks what a caller filled in directly. */
void hutch_spec_add_device_rule(struct hutch_spec *spec, bool allow, char type, int64_t major,
				int64_t minor, const char *access);
/* Docker's --privileged: every capability hutch has, no seccomp, no_new_privs off,
 * no masked or read-only paths, /sys and /sys/fs/cgroup writable, the host's
 * device nodes in /dev and every device allowed. */
void hutch_spec_set_privileged(struct hutch_spec *spec);
/* Capability names ("NET_RAW", "CAP_NET_RAW") to bit numbers; -1 if unknown. */
int hutch_cap_from_name(const char *name);
/* Bit number to the OCI name ("CAP_NET_RAW"); NULL if hutch does not know it. */
const char *hutch_cap_name(int cap);
/* Validate the whole spec before anything is created; the message names the bad value. */
int hutch_spec_validate(const struct hutch_spec *spec, struct hutch_err **err);

/* specjson.c: the whole spec as JSON, as DATA/containers/ID/spec.json keeps it
 * for starting the container again (every field; a field added to the spec
 * gets a line in specjson.c's tables). Reading checks every key and value
 * (unknown and missing keys refused) and names the bad one; it does not
 * validate the spec as a whole (hutch_spec_validate does, at the start). */
char *hutch_spec_to_json(const struct hutch_spec *spec);
int hutch_spec_from_json(const char *text, size_t len, struct hutch_spec **out,
			 struct hutch_err **err);
/* The spec a container was made from; the message names the file when it is
 * missing or damaged. */
struct hutch_runtime;
int hutch_spec_load(const struct hutch_runtime *rt, const char *id, struct hutch_spec **out,
		    struct hutch_err **err);

/* ---- options: settings as users write them (options.c) --------------------------
 * One setter per option of `hutch run` and per key of a stack file, taking the
 * text the user wrote, so that a flag and the key of the same meaning are one
 * code path with one validation. A message names the value ("invalid memory
 * limit '12q': ..."), never a flag: the caller adds where it came from (the
 * CLI "--memory", a stack file its file:line and key). Rules between options
 * (memory+swap against memory, CPUs against the machine) are checked by
 * hutch_spec_validate, for every caller.
 * Apply the image first; each option then replaces what the image gave. */

/* An image's config as the runtime needs it (the caller fills it from images/,
 * which runtime/ does not know). Fields an option of the caller replaces may be
 * left NULL: their image value is then neither used nor checked. */
struct hutch_image_config {
	const char *name, *id; /* informational: spec->image, spec->image_id */
	char *const *layers; /* read-only layer dirs, lowest first */
	size_t n_layers;
	char *const *env; /* "K=V" */
	size_t n_env;
	char *const *entrypoint, *const *cmd;
	size_t n_entrypoint, n_cmd;
	const char *workdir, *user, *stop_signal;
};
/* The image's layers, Env, Entrypoint and Cmd, WorkingDir, User, StopSignal;
 * a bad value is named as the image's ("the image's WorkingDir: ..."). */
int hutch_spec_apply_image(struct hutch_spec *spec, const struct hutch_image_config *img,
			   struct hutch_err **err);
/* argv is entrypoint + command, as in Docker: an entrypoint given here
 * replaces the image's and drops its Cmd (n 0: none at all); a command given
 * here replaces the Cmd. */
void hutch_spec_set_entrypoint(struct hutch_spec *spec, char *const *argv, size_t n);
void hutch_spec_set_command(struct hutch_spec *spec, char *const *argv, size_t n);
/* A container name; one leading '/' is dropped, as Docker does (checked by
 * hutch_spec_validate, whose message shows the name as given). */
void hutch_spec_set_name(struct hutch_spec *spec, const char *name);
/* The hostname (hutch_hostname_problem's rule) and HOSTNAME in the env. */
int hutch_spec_set_hostname(struct hutch_spec *spec, const char *name, struct hutch_err **err);
/* "K=V", or "K" alone: K from the caller's environment (nothing if unset). */
int hutch_spec_add_env(struct hutch_spec *spec, const char *kv, struct hutch_err **err);
/* K=V lines of a file (blank lines and '#' comments skipped; at most
 * HUTCH_ENV_FILE_MAX bytes, no NUL). A relative path is taken from base_dir
 * (NULL: the current directory). Messages start with the path. */
#define HUTCH_ENV_FILE_MAX (1 << 20)
int hutch_spec_add_env_file(struct hutch_spec *spec, const char *path, const char *base_dir,
			    struct hutch_err **err);
/* "SRC:DST[:OPTS]": a bind of an existing SRC, absolute or relative ("./data",
 * "../x") to base_dir (NULL: the current directory; `run` gives that, a stack
 * its file's directory). Named volumes are not this call's (refused). */
int hutch_spec_add_volume(struct hutch_spec *spec, const char *arg, const char *base_dir,
			  struct hutch_err **err);
/* "DST[:OPTS]": a tmpfs, nosuid,nodev,noexec unless OPTS say otherwise. */
int hutch_spec_add_tmpfs(struct hutch_spec *spec, const char *arg, struct hutch_err **err);
/* Absolute, without "..". */
int hutch_spec_set_workdir(struct hutch_spec *spec, const char *dir, struct hutch_err **err);
/* "USER[:GROUP]", names or ids, resolved inside the container when it starts. */
int hutch_spec_set_user(struct hutch_spec *spec, const char *user, struct hutch_err **err);
/* "SIGTERM", "TERM", "15". */
int hutch_spec_set_stop_signal(struct hutch_spec *spec, const char *sig, struct hutch_err **err);
/* "64m", "1g" (at least 6m). */
int hutch_spec_set_memory(struct hutch_spec *spec, const char *size, struct hutch_err **err);
/* --rw-layer: "tmpfs", "tmpfs:SIZE" (rw_tmpfs, with its size) or "disk". */
int hutch_spec_set_rw_layer(struct hutch_spec *spec, const char *where, struct hutch_err **err);
/* Memory plus swap: a size, or "-1" for unlimited swap. */
int hutch_spec_set_memory_swap(struct hutch_spec *spec, const char *size,
			       struct hutch_err **err);
/* A number of CPUs: "0.5", "2" (at least 0.01). */
int hutch_spec_set_cpus(struct hutch_spec *spec, const char *cpus, struct hutch_err **err);
/* A positive number, or "-1" for no limit. */
int hutch_spec_set_pids_limit(struct hutch_spec *spec, const char *n, struct hutch_err **err);
/* "NAME=SOFT[:HARD]" ("nofile=1024:2048", "unlimited" or "-1"); refused if
 * setrlimit would refuse it here (hutch_rlimit_check). */
int hutch_spec_add_ulimit(struct hutch_spec *spec, const char *arg, struct hutch_err **err);
/* A capability ("NET_RAW", "CAP_SYS_ADMIN", "ALL"). As in `hutch run`, every
 * drop applies before every add, whatever the order they are given in. */
int hutch_spec_cap_add(struct hutch_spec *spec, const char *cap, struct hutch_err **err);
int hutch_spec_cap_drop(struct hutch_spec *spec, const char *cap, struct hutch_err **err);
/* "none" (a network namespace of its own with loopback) or "host". */
int hutch_spec_set_network(struct hutch_spec *spec, const char *mode, struct hutch_err **err);
/* "HOST:IP" or "HOST=IP" (an IPv6 address may be in brackets): an /etc/hosts line. */
int hutch_spec_add_host_entry(struct hutch_spec *spec, const char *arg, struct hutch_err **err);
/* The rules between limits, whichever order they were set in (memory+swap at
 * least memory, and only with it), and the machine's (no more CPUs than it
 * has): part of hutch_spec_validate, and for a caller that wants to say which
 * of its options broke them before anything else. */
int hutch_spec_check_resources(const struct hutch_resources *r, struct hutch_err **err);
/* What this runtime adds to every spec it runs: rootless, a user namespace
 * mapping the caller to root and its subordinate ids (a note is said once per
 * user, through hutch_runtime_log, when there are none). */
int hutch_spec_for_runtime(const struct hutch_runtime *rt, struct hutch_spec *spec,
			   struct hutch_err **err);

/* Standard streams for the container (stdin is its own /dev/null when
 * !interactive). Without a terminal, a pipe, a socket or /dev/null is handed to
 * the container as it is; any other fd (a file, a terminal: what the container
 * could reopen through /proc/PID/fd) is relayed through a pipe of its own by
 * hutch_container_attach_wait, which the caller must then run. These fds stay
 * the caller's: hutch never closes them or changes their flags. With a
 * terminal, the pty is relayed to stdin_fd and stdout_fd. */
struct hutch_io {
	int stdin_fd, stdout_fd, stderr_fd;
	bool detach_keys; /* reserved */
};

int hutch_runtime_init(struct hutch_runtime *rt, const char *data_root, const char *run_root,
		       struct hutch_err **err);
void hutch_runtime_fini(struct hutch_runtime *rt);

/* Create the container (cgroup, rw layer, namespaces, mounts) and exec its process.
 * Returns once the process has exec'd (or failed to). On failure nothing is left. */
int hutch_container_start(struct hutch_runtime *rt, const struct hutch_spec *spec,
			  const struct hutch_io *io, struct hutch_container **out,
			  struct hutch_err **err);
int hutch_container_pidfd(const struct hutch_container *c);
pid_t hutch_container_pid(const struct hutch_container *c);
const char *hutch_container_id(const struct hutch_container *c);
/* Send a signal to the container's pid 1. */
int hutch_container_kill(struct hutch_container *c, int sig, struct hutch_err **err);
/* Block the signals attach_wait forwards, before starting the container: a
 * signal that arrives before the wait is queued for the container instead of
 * killing hutch (the container's process unblocks everything before exec). */
void hutch_block_forwarded_signals(void);
/* Foreground: forward signals until the process exits and relay its stdio: with
 * a pty, stdin_fd (-1: none, as without -i) to the pty until it ends, then EOF
 * to the container's reader, and the pty to stdout; without, the pipes of the
 * fds hutch_container_start chose to relay (see struct hutch_io). Returns when
 * the process has exited and what it wrote is written out. */
int hutch_container_attach_wait(struct hutch_container *c, int stdin_fd,
				struct hutch_exit *status, struct hutch_err **err);
/* Collect an exited process (after its pidfd polled readable). */
int hutch_container_reap(struct hutch_container *c, struct hutch_exit *status,
			 struct hutch_err **err);
/* Remove cgroup, rw layer and state; frees c. Safe to call after a failed reap. */
int hutch_container_destroy(struct hutch_container *c, struct hutch_err **err);

/* ---- lifecycle: state of containers that outlive the command that made them --- */

enum hutch_status { HUTCH_CREATED = 0, HUTCH_RUNNING, HUTCH_EXITED };

/* DATA/containers/ID/state.json: what `ps`, `exec`, `stop`, `logs`, `rm` and
 * `inspect` need, written atomically by whoever owns the container. */
struct hutch_state {
	char id[65];
	char *name;
	char *image, *image_id;
	char *command; /* args joined by spaces, for display */
	int64_t created_ns, started_ns, finished_ns;
	enum hutch_status status;
	pid_t pid;
	uint64_t pid_start; /* /proc/PID/stat starttime: guards against pid reuse */
	pid_t monitor_pid;
	uint64_t monitor_start;
	int exit_code;	   /* of the last run, kept while it runs again */
	int restart_count; /* times it was started again (start, restart, a supervisor) */
	bool oom_killed;
	bool auto_remove, detached;
	char *cgroup; /* path of its cgroup, if any */
	char *hostname;
	/* the process settings that `exec` reuses */
	struct hutch_process process;
	bool seccomp; /* default profile applied */
	/* the types of namespace it has of its own: bit (1 << HUTCH_NS_*) */
	unsigned namespaces;
	char **labels; /* "K=V", from the spec */
	size_t n_labels;
};

struct hutch_state_list {
	struct hutch_state **items;
	size_t n;
};

/* Load one container by full id, unique id prefix or name. Stale records (a
 * monitor that died) are reconciled on the way: the container is killed if it
 * still runs, its cgroup removed, and it is marked exited (or removed, --rm).
 * Returns 0, -1, or HUTCH_STATE_NOT_FOUND when nothing matches ref. */
#define HUTCH_STATE_NOT_FOUND (-2)
int hutch_state_find(struct hutch_runtime *rt, const char *ref, struct hutch_state **out,
		     struct hutch_err **err);
int hutch_state_list(struct hutch_runtime *rt, struct hutch_state_list *out,
		     struct hutch_err **err);
void hutch_state_free(struct hutch_state *s);
void hutch_state_list_free(struct hutch_state_list *l);
/* The state as JSON text (for inspect and ps --format json); caller frees. */
char *hutch_state_to_json(const struct hutch_state *s, bool pretty);
const char *hutch_status_name(enum hutch_status st);
/* A container name as Docker allows it: [a-zA-Z0-9][a-zA-Z0-9_.-]+ */
bool hutch_name_valid(const char *name);

/* Detached: fork a monitor that starts the container, collects its output into
 * its log and its exit status, and cleans up when it ends. Returns once the
 * container runs (or failed to start: then nothing is left). The monitor keeps
 * hold_fds open for the container's lifetime (the image's layer locks) and
 * closes every other fd it inherited. */
int hutch_container_run_detached(struct hutch_runtime *rt, const struct hutch_spec *spec,
				 const int *hold_fds, size_t n_hold_fds, struct hutch_err **err);

/* Start an exited container again, detached under a monitor as
 * hutch_container_run_detached does, from the spec it was made from
 * (spec.json): the same id, name and rw layer (its files kept), a new cgroup,
 * and the record updated (running, the new pid and start time, restart_count
 * one more; the last exit code and finish time stay until the next exit). A
 * container that ran in the foreground starts detached, as `docker start`
 * does. hold_fds: the image's layer dirs, held (shared flock) by the caller,
 * as for run_detached; each of the spec's layers must be among them (the image
 * may have been removed since the container was made: that is said). Returns
 * HUTCH_ALREADY_RUNNING (err filled) when it runs or is starting, -1 on other
 * errors (a failed start is recorded as an exit with its code: 125, 126, 127). */
#define HUTCH_ALREADY_RUNNING (-3)

/* A detached container's log is rotated past this size: container.log becomes
 * container.log.1 (replacing the one before) and a new container.log begins. */
#define HUTCH_LOG_MAX_SIZE (10LL * 1024 * 1024)

/* What a detached container's monitor does once the container has exited and
 * its keeper has written DATA/containers/ID/exit: record the exit (code, OOM
 * kill from the cgroup, time), remove the cgroup, and with --rm the container.
 * Only the record's owner (the monitor's own process) may. */
int hutch_container_finish(struct hutch_runtime *rt, const char *id, struct hutch_err **err);
int hutch_container_start_existing(struct hutch_runtime *rt, const struct hutch_state *s,
				   const int *hold_fds, size_t n_hold_fds, struct hutch_err **err);

/* Send sig to the container's pid 1 (identity checked). */
int hutch_state_signal(struct hutch_runtime *rt, const struct hutch_state *s, int sig,
		       struct hutch_err **err);
/* Stop signal, then SIGKILL after timeout_s; returns when the monitor has
 * recorded the exit. */
int hutch_state_stop(struct hutch_runtime *rt, const struct hutch_state *s, int timeout_s,
		     struct hutch_err **err);
/* Remove an exited container (force: kill it first). */
int hutch_state_remove(struct hutch_runtime *rt, const struct hutch_state *s, bool force,
		       struct hutch_err **err);
/* Wait (up to timeout_ms, -1 forever) until the container has exited and its
 * monitor recorded it. 0 if so, 1 on timeout. */
int hutch_state_wait_exited(struct hutch_runtime *rt, const struct hutch_state *s, int timeout_ms,
			    struct hutch_err **err);

/* Run a process in a running container's namespaces and cgroup, with the
 * container's security settings; returns its exit status. */
struct hutch_exec_opts {
	char **args;
	size_t n_args;
	char **env; /* added to the container's */
	size_t n_env;
	const char *user, *cwd;
	bool terminal, interactive;
};
int hutch_exec(struct hutch_runtime *rt, const struct hutch_state *s,
	       const struct hutch_exec_opts *o, const struct hutch_io *io, struct hutch_exit *st,
	       struct hutch_err **err);

/* The same, without blocking (a healthcheck in an event loop): returns once the
 * command has been exec'd in the container (or why not, as hutch_exec says),
 * with a handle whose pidfd (hutch_exec_pidfd) polls readable when it has
 * exited; then hutch_exec_reap collects its status and frees the handle. Give
 * io pipes, sockets or /dev/null and no terminal: anything else is relayed,
 * and hutch_exec_reap then blocks until the command is done (as hutch_exec).
 * hutch_exec_kill signals it (a timeout); hutch_exec_free kills, reaps and
 * frees a handle that is not to be reaped. The caller's SIGCHLD is not
 * needed: it is reaped through the pidfd. */
struct hutch_exec;
int hutch_exec_start(struct hutch_runtime *rt, const struct hutch_state *s,
		     const struct hutch_exec_opts *o, const struct hutch_io *io,
		     struct hutch_exec **out, struct hutch_err **err);
int hutch_exec_pidfd(const struct hutch_exec *h);
pid_t hutch_exec_pid(const struct hutch_exec *h);
int hutch_exec_kill(struct hutch_exec *h, int sig, struct hutch_err **err);
int hutch_exec_reap(struct hutch_exec *h, struct hutch_exit *st, struct hutch_err **err);
void hutch_exec_free(struct hutch_exec *h);

/* The container's log (CRI format lines): DATA/containers/ID/container.log */
char *hutch_state_log_path(const struct hutch_runtime *rt, const struct hutch_state *s);

/* Docker's 14 default capabilities (CapEff 00000000a80425fb): the bounding,
 * effective and permitted sets of a default spec; inheritable and ambient are
 * empty (CVE-2022-24769). */
#define HUTCH_DEFAULT_CAPS 0x00000000a80425fbULL

/* ---- OCI bundles: config.json (ocispec.c) and the OCI lifecycle (oci.c) ------ */

enum hutch_oci_hook_kind {
	HUTCH_HOOK_PRESTART = 0,
	HUTCH_HOOK_CREATE_RUNTIME,
	HUTCH_HOOK_CREATE_CONTAINER,
	HUTCH_HOOK_START_CONTAINER,
	HUTCH_HOOK_POSTSTART,
	HUTCH_HOOK_POSTSTOP,
	HUTCH_HOOK_KINDS
};
struct hutch_oci_hook {
	char *path; /* absolute, in the runtime's namespace */
	char **args, **env;
	size_t n_args, n_env;
	int timeout_s; /* 0: none */
};
/* "K" and "V" side by side, in the file's order. */
struct hutch_kv {
	char *key, *value;
};

/* linux.seccomp: libseccomp's values (SCMP_ACT_*, SCMP_ARCH_*, SCMP_CMP_*). */
struct hutch_oci_seccomp_arg {
	unsigned index;
	uint64_t value, value_two;
	int op;
};
struct hutch_oci_syscall {
	char **names;
	size_t n_names;
	uint32_t action;
	struct hutch_oci_seccomp_arg *args;
	size_t n_args;
};
struct hutch_oci_seccomp {
	uint32_t default_action;
	uint32_t *arches;
	size_t n_arches;
	struct hutch_oci_syscall *syscalls;
	size_t n_syscalls;
	uint32_t flags; /* SECCOMP_FILTER_FLAG_* as seccomp(2) takes them */
	bool notify;	/* a rule's action is SCMP_ACT_NOTIFY */
	/* where the listener's fd goes (the spec's container process state) */
	char *listener_path, *listener_metadata;
};
/* The "seccomp" object of `features` (runc's form): the actions, operators
 * and architectures hutch takes, the flags it knows and those the running
 * kernel supports. */
char *hutch_oci_seccomp_features(void);

/* What the container's process gets set before its exec (process.scheduler,
 * ioPriority, execCPUAffinity; linux.personality, memoryPolicy), checked by
 * the parser against what the kernel takes. CPU and node sets are bit masks
 * (bit n of word n / 64): at most 1024 of each. */
#define HUTCH_OCI_MAX_CPUS 1024
struct hutch_oci_proc_attrs {
	bool has_sched;
	uint32_t sched_policy; /* SCHED_* */
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_flags;				      /* SCHED_FLAG_* */
	uint64_t sched_runtime, sched_deadline, sched_period; /* ns */
	bool has_ioprio;
	int ioprio_class, ioprio_level; /* IOPRIO_CLASS_*, 0-7 */
	/* execCPUAffinity: initial as the process starts, final just before its
	 * exec (given initial alone: every CPU of its cgroup again) */
	bool has_cpus_initial, has_cpus_final;
	uint64_t cpus_initial[HUTCH_OCI_MAX_CPUS / 64], cpus_final[HUTCH_OCI_MAX_CPUS / 64];
	bool has_personality;
	unsigned long personality; /* PER_LINUX or PER_LINUX32, with its flags */
	bool has_mempolicy;
	int mempolicy_mode;	  /* MPOL_* */
	unsigned mempolicy_flags; /* MPOL_F_* of the mode argument */
	uint64_t mempolicy_nodes[HUTCH_OCI_MAX_CPUS / 64];
};

/* linux.netDevices: an interface of the runtime's network namespace that
 * create moves into the container's own. */
struct hutch_oci_net_device {
	char *host_name; /* in the runtime's namespace */
	char *name;	 /* in the container's: host_name when not given */
};

/* What a bundle's config.json says that struct hutch_spec does not hold. */
struct hutch_oci_config {
	struct hutch_spec *spec; /* spec->oci set; spec->id: sha256 of the OCI id */
	char *oci_version;
	struct hutch_kv *annotations, *sysctl;
	size_t n_annotations, n_sysctl;
	struct hutch_oci_hook *hooks[HUTCH_HOOK_KINDS];
	size_t n_hooks[HUTCH_HOOK_KINDS];
	bool has_oom_score_adj;
	int oom_score_adj;
	int umask; /* -1: not given */
	uint32_t uid, gid; /* process.user */
	uint32_t *additional_gids;
	size_t n_additional_gids;
	char *domainname;
	char *cgroups_path;
	/* linux.rootfsPropagation shared, rshared, unbindable or runbindable:
	 * MS_SHARED or MS_UNBINDABLE, given to the container's root once it is
	 * "/" (0: private, as every mount of hutch's) */
	unsigned long root_propagation;
	bool root_propagation_recursive;
	struct hutch_oci_seccomp *seccomp; /* NULL: none */
	struct hutch_oci_net_device *net_devices;
	size_t n_net_devices;
	unsigned short console_height, console_width; /* 0: not given */
	struct hutch_oci_proc_attrs attrs;
	/* linux.timeOffsets for the container's new time namespace */
	bool has_time_offsets;
	int64_t monotonic_secs, boottime_secs;
	uint32_t monotonic_nsecs, boottime_nsecs;
	/* what is accepted but not applied, one sentence each */
	char **warnings;
	size_t n_warnings;
};

/* config.json (text, len bytes) of the bundle at bundle_dir (absolute; a
 * relative root.path is taken from it) into *out. Every field Linux uses is
 * read and checked with a message naming it ("linux.resources.memory.limit:
 * ..."); what hutch cannot do safely or at all is refused by name; unknown
 * fields are ignored, as the runtime spec asks, with a warning. */
int hutch_oci_config_parse(const char *text, size_t len, const char *bundle_dir,
			   struct hutch_oci_config **out, struct hutch_err **err);
void hutch_oci_config_free(struct hutch_oci_config *c);
/* An OCI process object (config.json's "process", or exec --process FILE)
 * into proc (args, env, cwd, user "uid:gid", terminal, capabilities, rlimits,
 * noNewPrivileges); the extras (umask, groups) into cfg when it is given. */
int hutch_oci_process_parse(const char *text, size_t len, struct hutch_process *proc,
			    struct hutch_err **err);
/* The same, with what exec sets of the process beyond it (scheduler,
 * ioPriority, execCPUAffinity) into attrs. */
int hutch_oci_exec_process_parse(const char *text, size_t len, struct hutch_process *proc,
				 struct hutch_oci_proc_attrs *attrs, struct hutch_err **err);
void hutch_process_clear(struct hutch_process *proc);
/* update --resources: linux.resources into out (all of it but devices), where
 * -1 (memory_max, cpu_quota_us, pids_max) means not given and 0 no limit; the
 * other fields as writes. The caller frees out with hutch_resources_clear;
 * what is ignored (kernel memory, network classes) is said in *warnings (when
 * not NULL: the caller frees each and the list). */
int hutch_oci_resources_parse(const char *text, size_t len, struct hutch_resources *out,
			      char ***warnings, size_t *n_warnings, struct hutch_err **err);
/* Free what r holds (device rules, cgroup writes) and zero it. */
void hutch_resources_clear(struct hutch_resources *r);
/* The default config.json of `spec` (runc's, with a busybox-friendly "sh"). */
char *hutch_oci_default_config(bool rootless, uid_t uid, gid_t gid);

/* The OCI lifecycle. Each container has a directory STATE_ROOT/ID (0700):
 * state.json (what `state` reports, and the pid's start time against pid
 * reuse), config.json as it was at create (its hooks), and, between create
 * and start, start.sock: the container's process waits on it before exec. */
struct hutch_oci_create_opts {
	const char *id;		    /* the OCI id, any printable text without '/' */
	const char *bundle;	    /* absolute */
	const char *state_root;	    /* absolute */
	const char *console_socket; /* terminal: where the pty master goes */
	const char *pid_file;	    /* NULL: none */
	int preserve_fds;	    /* fds 3 .. 3+N-1 passed to the container */
	bool wait_start;	    /* create: wait for start (run: exec at once) */
	bool no_pivot;		    /* accepted: hutch always pivots */
	bool systemd_cgroup; /* --systemd-cgroup: cgroupsPath is "slice:prefix:name" */
	/* linux.netDevices: move ifname from the runtime's network namespace
	 * into the one at netns ("/proc/PID/ns/net") as newname, its addresses
	 * and up state kept. runtime/ has no rtnetlink of its own (net/ does,
	 * and runtime/ never calls net/): the caller gives it. */
	int (*move_net_device)(const char *ifname, const char *newname, const char *netns,
			       struct hutch_err **err);
};
/* Not root, or root of a user namespace only (as under rootless podman). */
bool hutch_oci_rootless(void);
int hutch_oci_create(struct hutch_runtime *rt, struct hutch_oci_config *cfg,
		     const struct hutch_oci_create_opts *o, pid_t *pid, struct hutch_err **err);

enum hutch_oci_status { HUTCH_OCI_CREATED, HUTCH_OCI_RUNNING, HUTCH_OCI_PAUSED, HUTCH_OCI_STOPPED };
struct hutch_oci_state {
	char *id, *bundle, *rootfs, *cgroup, *created, *owner;
	pid_t pid;
	uint64_t pid_start;
	struct hutch_kv *annotations;
	size_t n_annotations;
	enum hutch_oci_status status; /* as of the load */
	unsigned namespaces;	      /* its own: bit (1 << HUTCH_NS_*) */
	bool cgroup_at; /* cgroup is the engine's cgroupsPath, not hutch/<sha> */
};
/* HUTCH_STATE_NOT_FOUND when there is no container id. */
int hutch_oci_state_load(const char *state_root, const char *id, struct hutch_oci_state **out,
			 struct hutch_err **err);
void hutch_oci_state_free(struct hutch_oci_state *s);
const char *hutch_oci_status_name(enum hutch_oci_status st);
/* The runtime spec's state JSON (ociVersion, id, status, pid, bundle,
 * annotations) and runc's extras (rootfs, created, owner). */
char *hutch_oci_state_json(const struct hutch_oci_state *s, bool pretty);
/* Every container under state_root (ids, sorted; caller frees each). */
int hutch_oci_list(const char *state_root, char ***ids, size_t *n, struct hutch_err **err);

/* warn: what failed of the poststart hooks (the container runs on). */
int hutch_oci_start(const char *state_root, const char *id, struct hutch_err **err,
		    struct hutch_err **warn);
/* all: every process in the container's cgroup. */
int hutch_oci_kill(const char *state_root, const char *id, int sig, bool all,
		   struct hutch_err **err);
/* Created or stopped (force: any) -> gone: processes killed, cgroup removed,
 * poststop hooks run (warn: what failed of them), its directory removed. */
int hutch_oci_delete(const char *state_root, const char *id, bool force, struct hutch_err **err,
		     struct hutch_err **warn);
/* The pids in the container's cgroup (or its pid alone without one). */
int hutch_oci_pids(const struct hutch_oci_state *s, pid_t **pids, size_t *n,
		   struct hutch_err **err);
/* exec: proc in the running container's namespaces and cgroup. The
 * process (a middle one outside that forwards signals and passes on the
 * command's exit status) runs with the caller's stdio, or with a terminal
 * sent to console_socket. detach: returns once the command runs, and the
 * process outlives the caller; else returns its exit status in *status. */
struct hutch_oci_exec_opts {
	const char *pid_file, *console_socket;
	int preserve_fds;
	bool detach;
	/* the process file's scheduler, ioPriority, execCPUAffinity; NULL: none */
	const struct hutch_oci_proc_attrs *attrs;
};
int hutch_oci_exec(const char *state_root, const char *id, const struct hutch_process *proc,
		   const struct hutch_oci_exec_opts *o, int *status, struct hutch_err **err);
/* Set the limits hutch_oci_resources_parse gave in the container's cgroup;
 * one whose controller the cgroup lacks is refused by name. */
int hutch_oci_update(const char *state_root, const char *id, const struct hutch_resources *r,
		     struct hutch_err **err);
/* cgroup.freeze of the container's cgroup. */
int hutch_oci_freeze(const char *state_root, const char *id, bool frozen, struct hutch_err **err);
