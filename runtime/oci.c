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
#include <net/if.h>
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
	/* the state the hooks get, but its pid and status (hook_state_text) */
	struct json_object *hook_state;
	/* in the child: the state for createContainer (creating) and for
	 * startContainer (created), its own pid in the runtime's pid namespace */
	char *creating_text, *created_text;
	/* the child stops where the runtime acts for it, until it has: once its
	 * namespaces exist, for linux.netDevices; its mounts made and before
	 * pivot_root, for prestart and createRuntime ({-1, -1}: neither) */
	int hook_sync[2];
	bool runtime_hooks; /* prestart or createRuntime hooks */
	const struct hutch_oci_create_opts *o;
	struct hutch_err *hook_err; /* the runtime's step that failed */
};

/* The state JSON a hook gets: the status as runc gives it at that point
 * (creating while the container is set up, created once it waits for start)
 * and the container's pid in the runtime's pid namespace, as state gives it. */
static char *hook_state_text(struct json_object *st, pid_t pid, const char *status)
{
	json_object_object_add(st, "pid", json_object_new_int64(pid));
	json_object_object_add(st, "status", json_object_new_string(status));
	return xstrdup(json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
}

static int run_hook(const struct hutch_oci_hook *h, const char *kind, const char *state_json,
		    struct hutch_err **err);
static const char *const hook_keys[HUTCH_HOOK_KINDS] = {
    "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"};

/* In the container's process: the hooks of kind, one after the other; the
 * first that fails fails the container's start (its create or start). */
static void child_hooks(struct proc_ctx *pc, struct oci_child_args *a,
			enum hutch_oci_hook_kind kind)
{
	const struct hutch_oci_config *cfg = a->cfg;
	struct hutch_err *err = NULL;
	const char *state =
	    kind == HUTCH_HOOK_CREATE_CONTAINER ? a->creating_text : a->created_text;
	for (size_t i = 0; i < cfg->n_hooks[kind]; i++)
		if (run_hook(&cfg->hooks[kind][i], hook_keys[kind], state, &err) < 0)
			proc_fail(pc, 125, err);
}

/* In the container's process: let the runtime do what (run_runtime_steps),
 * and go on once it says so. One that failed: the runtime kills us. */
static void wait_runtime(struct proc_ctx *pc, struct oci_child_args *a, const char *what)
{
	char go = 0;
	ssize_t n;
	if (write(a->hook_sync[1], "w", 1) == 1)
		while ((n = read(a->hook_sync[1], &go, 1)) < 0 && errno == EINTR)
			;
	if (go != 'g') {
		struct hutch_err *err = NULL;
		hutch_fail(&err, 0, "the runtime did not %s", what);
		proc_fail(pc, 125, err);
	}
}

/* The runtime's side: 1 once the child waits at its next sync point; 0 when
 * it failed before (it closed its end: its report says why). */
static bool child_waits(struct oci_child_args *a)
{
	char ready;
	ssize_t n;
	while ((n = read(a->hook_sync[0], &ready, 1)) < 0 && errno == EINTR)
		;
	return n == 1;
}

/* linux.netDevices into the child's new network namespace, from the
 * runtime's: a process in the container cannot reach the host's devices. */
static int move_net_devices(struct oci_child_args *a, pid_t pid)
{
	char netns[64];
	snprintf(netns, sizeof(netns), "/proc/%d/ns/net", (int)pid);
	for (size_t i = 0; i < a->cfg->n_net_devices; i++) {
		const struct hutch_oci_net_device *d = &a->cfg->net_devices[i];
		if (a->o->move_net_device(d->host_name, d->name, netns, &a->hook_err) < 0) {
			_cleanup_free_ char *shown = printable(d->host_name, strlen(d->host_name));
			return hutch_err_wrap(&a->hook_err, "linux.netDevices.%s", shown);
		}
	}
	return 0;
}

/* proc_spawn's running callback, in the runtime's namespaces: once the
 * child waits with its namespaces made, linux.netDevices moved in; once it
 * waits with its mounts made, prestart then createRuntime. The first step
 * that fails kills the child (its create fails with that error, in
 * a->hook_err). */
static void run_runtime_steps(pid_t pid, void *arg)
{
	struct oci_child_args *a = arg;
	if (a->hook_sync[0] < 0)
		return;
	close(a->hook_sync[1]);
	a->hook_sync[1] = -1;
	if (a->cfg->n_net_devices) {
		if (!child_waits(a))
			return;
		if (move_net_devices(a, pid) < 0 || write(a->hook_sync[0], "g", 1) != 1) {
			kill(pid, SIGKILL);
			return;
		}
	}
	if (!a->runtime_hooks || !child_waits(a))
		return;
	_cleanup_free_ char *json = hook_state_text(a->hook_state, pid, "creating");
	for (int k = HUTCH_HOOK_PRESTART; k <= HUTCH_HOOK_CREATE_RUNTIME; k++)
		for (size_t i = 0; i < a->cfg->n_hooks[k]; i++)
			if (run_hook(&a->cfg->hooks[k][i], hook_keys[k], json, &a->hook_err) < 0) {
				kill(pid, SIGKILL);
				return;
			}
	if (write(a->hook_sync[0], "g", 1) != 1)
		kill(pid, SIGKILL);
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

/* linux.netDevices can be done here: as root, into a network namespace the
 * container gets of its own (runc's rules), with devices that exist. */
static int check_net_devices(const struct hutch_runtime *rt, const struct hutch_oci_config *cfg,
			     const struct hutch_oci_create_opts *o, struct hutch_err **err)
{
	if (!cfg->n_net_devices)
		return 0;
	if (rt->rootless)
		return hutch_fail(err, EPERM,
				  "linux.netDevices: hutch-oci runs rootless here, and moving an "
				  "interface of the host into a container needs CAP_NET_ADMIN "
				  "over the host's network namespace, which an unprivileged "
				  "user does not have: run it as root, or leave netDevices out");
	if (!o->move_net_device)
		return hutch_fail(err, ENOTSUP, "linux.netDevices: not supported by this caller");
	const struct hutch_namespace *net = hutch_spec_namespace(cfg->spec, HUTCH_NS_NETWORK);
	if (!net)
		return hutch_fail(err, 0,
				  "linux.netDevices needs a network namespace of the container's "
				  "own (without one its devices would stay the host's): add "
				  "{\"type\": \"network\"} to linux.namespaces");
	if (net->path) {
		_cleanup_free_ char *p = printable(net->path, strlen(net->path));
		return hutch_fail(err, 0,
				  "linux.netDevices: the network namespace is joined by path "
				  "(%s): hutch moves devices only into a new one of the "
				  "container's own, not into one that others share",
				  p);
	}
	for (size_t i = 0; i < cfg->n_net_devices; i++) {
		const char *name = cfg->net_devices[i].host_name;
		if (!if_nametoindex(name)) {
			_cleanup_free_ char *shown = printable(name, strlen(name));
			return hutch_fail(err, ENODEV,
					  "linux.netDevices.%s: no network interface %s in the "
					  "runtime's network namespace",
					  shown, shown);
		}
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
	if (a->hook_sync[0] >= 0)
		close(a->hook_sync[0]); /* the runtime's end */
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
	/* becoming its user namespace's root cleared the parent-death signal */
	pdeathsig_arm(pc->parent_pidfd);
	const struct hutch_namespace *net = hutch_spec_namespace(spec, HUTCH_NS_NETWORK);
	if (net && !net->path && net_loopback_up(&err) < 0)
		proc_fail(pc, 125, err);
	/* before the sysctls: net.ipv4.conf.NAME.* may be for a device moved in */
	if (cfg->n_net_devices)
		wait_runtime(pc, a, "move linux.netDevices in");
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
		a->creating_text = hook_state_text(a->hook_state, atoi(self), "creating");
		a->created_text = hook_state_text(a->hook_state, atoi(self), "created");
	}
	int rootfd = -1;
	if (mounts_setup_rootfs(&a->mctx, &rootfd, &err) < 0 ||
	    mounts_setup_container(&a->mctx, rootfd, &err) < 0)
		proc_fail(pc, 125, err);
	/* The runtime spec's order, runc's: prestart and createRuntime (the
	 * runtime's), then createContainer (in the container's namespaces, the
	 * hook's path the runtime's), all with the mounts made and before
	 * pivot_root */
	if (a->runtime_hooks)
		wait_runtime(pc, a, "run the prestart hooks");
	child_hooks(pc, a, HUTCH_HOOK_CREATE_CONTAINER);
	if (mounts_pivot_root(rootfd, spec->root.readonly, &err) < 0 ||
	    mounts_root_propagation(cfg->root_propagation, cfg->root_propagation_recursive, &err) <
		0)
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

/* e into *err: taken as it is, or its message after the one there ("; "). */
static void join_err(struct hutch_err **err, struct hutch_err *e)
{
	if (!err || !*err) {
		if (err)
			*err = e;
		else
			hutch_err_free(&e);
		return;
	}
	struct hutch_err *a = *err;
	_cleanup_free_ char *first =
	    a->errno_ ? xasprintf("%s: %s", a->msg, strerror(a->errno_)) : xstrdup(a->msg);
	char *msg = e->errno_ ? xasprintf("%s; %s: %s", first, e->msg, strerror(e->errno_))
			      : xasprintf("%s; %s", first, e->msg);
	free(a->msg);
	a->msg = msg;
	a->errno_ = 0;
	hutch_err_free(&e);
}

/* Run the hooks of kind kept in the container's state.json: all of them, the
 * spec's rule for poststart and poststop (a failure is a warning, and the
 * remaining hooks run as if it had succeeded); each failure is said in *err. */
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
		for (size_t i = 0; i < json_object_array_length(list); i++) {
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
			struct hutch_err *e = NULL;
			if (run_hook(&h, hook_keys[kind], state_json, &e) < 0) {
				ret = -1;
				join_err(err, e);
			}
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
	_cleanup_free_ char *rootfs = cfg->spec->root.path[0] == '/'
					  ? path_clean(cfg->spec->root.path)
					  : xstrdup(cfg->spec->root.path);
	json_object_object_add(j, "rootfs", json_object_new_string(rootfs));
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

/* A connection to the unix socket at path (what: for the message). */
static int connect_unix(const char *path, const char *what, struct hutch_err **err)
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
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		hutch_fail_sys(err, "connect to %s %s", what, path);
		if (s >= 0)
			close(s);
		return -1;
	}
	return s;
}

static int send_console(const char *path, int master, struct hutch_err **err)
{
	_cleanup_close_ int s = connect_unix(path, "the console socket", err);
	if (s < 0)
		return -1;
	if (proc_send_fd(s, master) < 0)
		return hutch_fail_sys(err, "send the terminal to the console socket %s", path);
	return 0;
}

/* The state JSON of a container being created (status, pid as given). */
static struct json_object *new_state(const struct hutch_oci_config *cfg,
				     const struct hutch_oci_create_opts *o, const char *status)
{
	struct json_object *j = json_object_new_object();
	json_object_object_add(j, "ociVersion", json_object_new_string(OCI_VERSION));
	json_object_object_add(j, "id", json_object_new_string(o->id));
	json_object_object_add(j, "status", json_object_new_string(status));
	json_object_object_add(j, "bundle", json_object_new_string(o->bundle));
	struct json_object *ann = json_object_new_object();
	for (size_t i = 0; i < cfg->n_annotations; i++)
		json_object_object_add(ann, cfg->annotations[i].key,
				       json_object_new_string(cfg->annotations[i].value));
	json_object_object_add(j, "annotations", ann);
	return j;
}

/* Where a seccomp listener's fd goes (linux.seccomp.listenerPath), and the
 * container's state it goes with: given (start, exec), or made for create. */
struct listener_target {
	const char *path, *metadata;
	const char *state_json;
	const struct hutch_oci_config *cfg;
	const struct hutch_oci_create_opts *o;
};

static int to_listener(int seccomp_fd, pid_t pid, void *arg, struct hutch_err **err)
{
	struct listener_target *l = arg;
	_cleanup_free_ char *made = NULL;
	if (!l->state_json) {
		struct json_object *j = new_state(l->cfg, l->o, "creating");
		json_object_object_add(j, "pid", json_object_new_int64(pid));
		made = xstrdup(json_object_to_json_string_ext(
		    j, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	}
	_cleanup_close_ int s = connect_unix(l->path, "the seccomp listener", err);
	if (s < 0 || seccomp_listener_send(s, OCI_VERSION, l->metadata, made ? made : l->state_json,
					   pid, seccomp_fd, err) < 0)
		return hutch_err_wrap(err, "linux.seccomp.listenerPath");
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
	    check_net_devices(rt, cfg, o, err) < 0 ||
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
	struct oci_child_args a = {.cfg = cfg, .rt = rt, .hook_sync = {-1, -1}};
	bool prepared = false;
	struct spawn_out so = {.pid = -1, .pidfd = -1, .pty_master = -1};
	struct seccomp_prog filter = {0};
	if (cfg->seccomp && (seccomp_compile_oci(cfg->seccomp, &filter, err) < 0 ||
			     seccomp_oci_save(dir, cfg->seccomp, &filter, err) < 0))
		goto out;
	struct listener_target lt = {.path = cfg->seccomp ? cfg->seccomp->listener_path : NULL,
				     .metadata =
					 cfg->seccomp ? cfg->seccomp->listener_metadata : NULL,
				     .cfg = cfg,
				     .o = o};

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
	a.runtime_hooks =
	    cfg->n_hooks[HUTCH_HOOK_PRESTART] || cfg->n_hooks[HUTCH_HOOK_CREATE_RUNTIME];
	a.o = o;
	if ((a.runtime_hooks || cfg->n_net_devices) &&
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, a.hook_sync) < 0) {
		hutch_fail_sys(err, "create the prestart hooks' socket");
		goto out;
	}
	if (a.runtime_hooks || cfg->n_hooks[HUTCH_HOOK_CREATE_CONTAINER] ||
	    cfg->n_hooks[HUTCH_HOOK_START_CONTAINER]) {
		a.hook_state = new_state(cfg, o, "creating");
	}
	bool own_cgroupns = spec_has_ns(spec, HUTCH_NS_CGROUP);
	/* a user namespace of its own, root's too, makes no device nodes (mknod
	 * is not allowed there): it binds the host's, as rootless */
	a.mctx = (struct mount_ctx){.spec = spec,
				    .rootfs = spec->root.path,
				    .rootless = rt->rootless || spec_has_ns(spec, HUTCH_NS_USER),
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
	    .running = a.hook_sync[0] >= 0 ? run_runtime_steps : NULL,
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
		    .console = spec->process.terminal,
		    .listener = filter.notify ? to_listener : NULL,
		    .listener_arg = &lt,
		    .attrs = &cfg->attrs},
	};
	int spawned = proc_spawn(&req, &so, err);
	if (a.hook_err) {
		/* the container's process was killed for it (its report pipe
		 * closed as at an exec): the hook's failure is the reason */
		if (err) {
			hutch_err_free(err);
			*err = steal_ptr(a.hook_err);
		}
		if (spawned == 0)
			goto kill;
	}
	if (spawned < 0)
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
	hutch_err_free(&a.hook_err);
	for (int i = 0; i < 2; i++)
		if (a.hook_sync[i] >= 0)
			close(a.hook_sync[i]);
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
	/* a filter loaded after start hands its listener to us */
	struct seccomp_prog filter;
	bool have = false;
	_cleanup_free_ char *lpath = NULL, *lmeta = NULL, *state = NULL;
	if (seccomp_oci_load(dir, &filter, &have, &lpath, &lmeta, err) < 0)
		return -1;
	bool notify = have && filter.notify;
	seccomp_prog_free(&filter);
	if (notify && hutch_oci_state_load(state_root, id, &s, err) == 0) {
		state = hutch_oci_state_json(s, false);
		hutch_oci_state_free(s);
	} else if (notify) {
		return -1;
	}
	struct listener_target lt = {.path = lpath, .metadata = lmeta, .state_json = state};
	int one = 1;
	_cleanup_close_ int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || (notify && setsockopt(c, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) ||
	    connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return hutch_fail_sys(err,
				      "container '%s' cannot be started (is it started "
				      "already?)",
				      id);
	_cleanup_free_ char *sock = xasprintf("%s/start.sock", dir);
	unlink(sock);
	if (proc_read_report_listen(c, true, "the container's process died as it was started",
				    notify ? to_listener : NULL, &lt, err) < 0)
		return -1;
	/* poststart: a failure is said, and the container runs on (the spec's rule) */
	if (hutch_oci_state_load(state_root, id, &s, NULL) == 0) {
		/* running, with its pid, as the spec gives poststart hooks, even
		 * when a short command is over already */
		s->status = HUTCH_OCI_RUNNING;
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
	if (s->cgroup)
		cgroup_enable_for(s->cgroup, r);
	if (r->check_before_update && r->memory_max > 0 && s->cgroup) {
		/* the runtime spec's checkBeforeUpdate: no limit below what is in use */
		_cleanup_free_ char *cur_file = xasprintf("%s/memory.current", s->cgroup);
		_cleanup_free_ char *cur = NULL;
		if (read_file_at(AT_FDCWD, cur_file, &cur, NULL, NULL) == 0 &&
		    r->memory_max <= strtoll(cur, NULL, 10))
			ret = hutch_fail(err, 0,
					 "linux.resources.memory.limit: %lld is not above the %lld "
					 "bytes container '%s' uses now (checkBeforeUpdate)",
					 (long long)r->memory_max, strtoll(cur, NULL, 10), id);
	}
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
	if (ret == 0 && r->n_writes) {
		_cleanup_close_ int dfd =
		    s->cgroup ? open(s->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		if (dfd < 0)
			ret =
			    hutch_fail(err, 0,
				       "%s cannot be set here: container '%s' has no cgroup of its "
				       "own",
				       r->writes[0].field, id);
		else
			ret = cgroup_apply_writes(dfd, r->writes, r->n_writes, NULL, err);
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
	/* the runtime spec: deleting a container that is not stopped (created
	 * too, as crun has it; runc deletes a created one) is an error that
	 * changes nothing */
	if (s->status != HUTCH_OCI_STOPPED && !force) {
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
	char *lpath = NULL, *lmeta = NULL, *state = NULL;
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
	int loaded = seccomp_oci_load(dir, &filter, &have_filter, &lpath, &lmeta, err);
	free(dir);
	if (loaded < 0)
		goto out;
	state = hutch_oci_state_json(s, false);
	struct listener_target lt = {.path = lpath, .metadata = lmeta, .state_json = state};
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
		    .listener = have_filter && filter.notify ? to_listener : NULL,
		    .listener_arg = &lt,
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
	free(lpath);
	free(lmeta);
	free(state);
	if (so.pidfd >= 0)
		close(so.pidfd);
	if (so.pty_master >= 0)
		close(so.pty_master);
	hutch_oci_state_free(s);
	return ret;
}
