/* Creating a container: a cgroup and a rw layer on the host side, then clone3
 * straight into fresh namespaces and the cgroup, and a child that builds the
 * root filesystem, drops privileges and execs the command.
 *
 * The child reports failure through a CLOEXEC pipe: EOF means the exec
 * succeeded, a message means it did not (with Docker's exit codes: 125 for a
 * runtime error, 126 not executable, 127 not found). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>

#include "common/idmap.h"
#include "common/util.h"
#include "runtime/container_internal.h"
#include "runtime/process_internal.h"
#include "runtime/runtime_internal.h"

struct child_args {
	const struct hutch_runtime *rt;
	const struct hutch_spec *spec;
	struct mount_ctx mctx;
	struct hutch_container *c;
	int staged; /* the container dir's fd with the running record staged, or -1 */
	struct hutch_err *stage_err;
	uint64_t pid_start; /* what the staged record says */
	int64_t started_ns;
	bool devices_refused; /* attach_devices: the kernel would not take the program */
};

int net_loopback_up(struct hutch_err **err)
{
	_cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return hutch_fail_sys(err, "socket");
	struct ifreq ifr = {0};
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return hutch_fail_sys(err, "get flags of lo");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return hutch_fail_sys(err, "bring lo up");
	return 0;
}

/* In the new namespaces (and, with a user namespace, once its id maps are
 * written): network, hostname, the root filesystem, then the process's own
 * last steps. */
static __attribute__((noreturn)) void child_main(struct proc_ctx *pc, void *arg)
{
	struct child_args *a = arg;
	const struct hutch_spec *spec = a->spec;
	struct hutch_err *err = NULL;
	int code = 125;

	umask(0022);
	const struct hutch_namespace *net = hutch_spec_namespace(spec, HUTCH_NS_NETWORK);
	if (net && net->path) {
		_cleanup_close_ int nsfd = open(net->path, O_RDONLY | O_CLOEXEC);
		if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
			hutch_fail_sys(&err, "join the network namespace %s", net->path);
			proc_fail(pc, code, err);
		}
	} else if (net && net_loopback_up(&err) < 0) {
		proc_fail(pc, code, err);
	}
	if (sethostname(spec->hostname, strlen(spec->hostname)) < 0) {
		hutch_fail_sys(&err, "set hostname '%s'", spec->hostname);
		proc_fail(pc, code, err);
	}
	int rootfd = -1;
	if (mounts_setup_rootfs(&a->mctx, &rootfd, &err) < 0 ||
	    mounts_setup_container(&a->mctx, rootfd, &err) < 0)
		proc_fail(pc, code, err);
	hutch_trace("child: mounts done");
	if (mounts_pivot_root(rootfd, spec->root.readonly, &err) < 0)
		proc_fail(pc, code, err);
	hutch_trace("child: pivoted");
	close(rootfd);

	proc_setup_and_exec(pc);
}

/* The parent's part before the child goes on: its user namespace's id maps. */
static int child_started(pid_t pid, void *arg, struct hutch_err **err)
{
	struct child_args *a = arg;
	if (spec_has_ns(a->spec, HUTCH_NS_USER) && userns_write_maps(a->rt, a->spec, pid, err) < 0)
		return -1;
	return a->rt->on_created ? a->rt->on_created(a->rt->on_created_data, a->spec->id, pid, err)
				 : 0;
}

/* While the child builds its root: the record that says it runs, written
 * ahead (state_stage) and put in place once its command is exec'd. */
static void stage_running_record(pid_t pid, void *arg)
{
	struct child_args *a = arg;
	struct hutch_state rec = *a->c->state; /* shallow: the record stays as it is */
	a->pid_start = proc_start_time(pid);
	a->started_ns = now_ns();
	rec.status = HUTCH_RUNNING;
	rec.pid = pid;
	rec.pid_start = a->pid_start;
	rec.started_ns = a->started_ns;
	a->staged = state_stage(a->rt, &rec, &a->stage_err);
}

/* While the child builds its root: the device program, in place before the
 * command runs (proc_setup_and_exec waits for it). */
static int attach_devices(pid_t pid, void *arg, struct hutch_err **err)
{
	(void)pid;
	struct child_args *a = arg;
	int r = devices_attach_program(a->rt, a->spec, &a->c->cg, err);
	if (r == 1)
		a->devices_refused = true;
	return r == 0 ? 0 : -1;
}

static char *join_args(char **args, size_t n)
{
	char *out = xstrdup("");
	for (size_t i = 0; i < n; i++) {
		char *next = xasprintf("%s%s%s", out, i ? " " : "", args[i]);
		free(out);
		out = next;
	}
	return out;
}

static struct hutch_state *state_from_spec(const struct hutch_spec *spec)
{
	struct hutch_state *st = xcalloc(1, sizeof(*st));
	memcpy(st->id, spec->id, 65);
	st->name = spec->name ? xstrdup(spec->name) : NULL;
	st->image = spec->image ? xstrdup(spec->image) : NULL;
	st->image_id = spec->image_id ? xstrdup(spec->image_id) : NULL;
	st->command = join_args(spec->process.args, spec->process.n_args);
	st->created_ns = now_ns();
	st->status = HUTCH_CREATED;
	/* the owner: whoever repairs a record must know when it is gone */
	st->monitor_pid = getpid();
	st->monitor_start = proc_start_time(st->monitor_pid);
	st->auto_remove = spec->auto_remove;
	st->detached = spec->detached;
	st->hostname = spec->hostname ? xstrdup(spec->hostname) : NULL;
	st->seccomp = spec->seccomp == HUTCH_SECCOMP_DEFAULT && !spec->privileged;
	st->namespaces = spec_ns_mask(spec);
	st->labels = xcalloc(spec->n_labels + 1, sizeof(char *));
	for (size_t i = 0; i < spec->n_labels; i++)
		st->labels[i] = xstrdup(spec->labels[i]);
	st->n_labels = spec->n_labels;
	st->process.args = xcalloc(spec->process.n_args + 1, sizeof(char *));
	for (size_t i = 0; i < spec->process.n_args; i++)
		st->process.args[i] = xstrdup(spec->process.args[i]);
	st->process.n_args = spec->process.n_args;
	st->process.env = xcalloc(spec->process.n_env + 1, sizeof(char *));
	for (size_t i = 0; i < spec->process.n_env; i++)
		st->process.env[i] = xstrdup(spec->process.env[i]);
	st->process.n_env = spec->process.n_env;
	st->process.cwd = xstrdup(spec->process.cwd);
	st->process.user = spec->process.user ? xstrdup(spec->process.user) : NULL;
	st->process.terminal = spec->process.terminal;
	st->process.no_new_privileges = spec->process.no_new_privileges;
	st->process.caps = spec->process.caps;
	st->process.stop_signal = spec->process.stop_signal;
	return st;
}

/* The overlay is mounted over data_dir itself (in the container's mount
 * namespace only): one directory fewer to create and remove per run. A container
 * started again keeps its upper dir (its files) and work dir. */
static int make_overlay_dirs(const struct hutch_spec *spec, struct hutch_container *c,
			     struct hutch_err **err)
{
	if (spec->rw_tmpfs)
		return 0; /* the child makes them on its tmpfs (mounts_setup_rootfs) */
	static const char *const sub[] = {"upper", "work"};
	for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
		_cleanup_free_ char *p = xasprintf("%s/%s", c->data_dir, sub[i]);
		if (mkdir(p, 0755) < 0 && !(c->again && errno == EEXIST))
			return hutch_fail_sys(err, "create %s", p);
	}
	return 0;
}

/* An existing container started again: under its dir's lock (which removers
 * and repairs take), check that it is still exited and make its record say
 * that we own it now, starting (a start racing ours, or an `rm`, sees that),
 * with the cgroup it will have; only then is c->state set, so that a start
 * refused here never touches the record. The cgroup of the last run is gone
 * unless it could not be removed then: try again now. */
static int claim_container_dirs(struct hutch_runtime *rt, const struct hutch_spec *spec,
				struct hutch_container *c, struct hutch_err **err)
{
	c->data_dir = xasprintf("%s/containers/%s", rt->data_root, spec->id);
	_cleanup_close_ int dfd = open(c->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || flock(dfd, LOCK_EX) < 0)
		return errno == ENOENT
			   ? hutch_fail(err, 0, "container %.12s was removed meanwhile", spec->id)
			   : hutch_fail_sys(err, "lock %s", c->data_dir);
	struct hutch_state *rec = NULL;
	if (state_read(rt, spec->id, &rec) < 0)
		return hutch_fail(err, 0, "container %.12s was removed meanwhile", spec->id);
	if (rec->status != HUTCH_EXITED) {
		if (rec->status == HUTCH_RUNNING)
			hutch_fail(err, 0, "container %.12s is already running", spec->id);
		else
			hutch_fail(err, 0, "container %.12s is already starting (in process %d)",
				   spec->id, rec->monitor_pid);
		hutch_state_free(rec);
		return HUTCH_ALREADY_RUNNING;
	}
	if (state_remove_cgroup(rt, rec, err) < 0) {
		hutch_state_free(rec);
		return hutch_err_wrap(err, "container %.12s: the cgroup of its last run stays",
				      spec->id);
	}
	rec->status = HUTCH_CREATED;
	rec->monitor_pid = getpid();
	rec->monitor_start = proc_start_time(rec->monitor_pid);
	rec->pid = 0;
	rec->pid_start = 0;
	rec->restart_count++;
	rec->detached = true;
	rec->cgroup = c->cg.path ? xstrdup(c->cg.path) : NULL;
	if (state_write(rt, rec, err) < 0) {
		hutch_state_free(rec);
		return -1;
	}
	c->state = rec;
	close(steal_fd(dfd));

	if (cgroup_create(rt, spec, &c->cg, err) < 0)
		return -1;
	if (!c->cg.path) {
		free(c->state->cgroup);
		c->state->cgroup = NULL;
	}
	return make_overlay_dirs(spec, c, err);
}

/* Claim the name, make DATA/containers/ID and write the first record, all under
 * the lock of DATA/containers: names stay unique, and a reader never finds a
 * container dir without a record that is not an orphan (see collect_orphan in
 * state.c). The record names the owner and the cgroup the container will have,
 * so whoever finds it after the owner died (killed while the container starts)
 * removes what it left. The cgroup and the overlay's dirs come after the lock:
 * nobody else knows the id, and the record already says what to remove. */
static int make_container_dirs(struct hutch_runtime *rt, const struct hutch_spec *spec,
			       struct hutch_container *c, struct hutch_err **err)
{
	const char *id = spec->id;
	if (cgroup_plan(rt, spec, &c->cg, err) < 0)
		return -1;
	if (c->again)
		return claim_container_dirs(rt, spec, c, err);
	c->state = state_from_spec(spec);
	c->state->cgroup = c->cg.path ? xstrdup(c->cg.path) : NULL;
	_cleanup_free_ char *parent = xasprintf("%s/containers", rt->data_root);
	_cleanup_close_ int lockfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lockfd < 0 || flock(lockfd, LOCK_EX) < 0)
		return hutch_fail_sys(err, "lock %s", parent);
	char owner[65];
	if (spec->name && state_name_taken(rt, spec->name, owner))
		return hutch_fail(err, 0,
				  "the container name '%s' is already in use by container %.12s: "
				  "remove it or choose another name",
				  spec->name, owner);
	c->data_dir = state_make_dir(rt, id, spec->auto_remove && !spec->detached, err);
	if (!c->data_dir)
		return -1;
	c->created_data = true;
	/* The spec first: a record never lacks what starts it again. A --rm
	 * container never starts again: it needs none (a file less per run). */
	if ((!spec->auto_remove && spec_write(rt, spec, err) < 0) ||
	    state_write(rt, c->state, err) < 0)
		return -1;
	close(steal_fd(lockfd));

	if (cgroup_create(rt, spec, &c->cg, err) < 0)
		return -1;
	if (!c->cg.path) {
		/* none after all (rootless, no writable subtree): the next record says so */
		free(c->state->cgroup);
		c->state->cgroup = NULL;
	}
	return make_overlay_dirs(spec, c, err);
}

int hutch_runtime_init(struct hutch_runtime *rt, const char *data_root, const char *run_root,
		       struct hutch_err **err)
{
	*rt = (struct hutch_runtime){0};
	rt->data_root = xstrdup(data_root);
	rt->run_root = xstrdup(run_root);
	rt->rootless = running_rootless();
	_cleanup_free_ char *d1 = xasprintf("%s/containers", data_root);
	_cleanup_free_ char *d3 = xasprintf("%s/cache", run_root);
	if (mkdir_p_at(AT_FDCWD, d1, 0700, err) < 0 || mkdir_p_at(AT_FDCWD, d3, 0700, err) < 0) {
		hutch_runtime_fini(rt);
		return -1;
	}
	return 0;
}

void hutch_runtime_fini(struct hutch_runtime *rt)
{
	free(rt->data_root);
	free(rt->run_root);
	rt->data_root = rt->run_root = NULL;
}

int hutch_container_start(struct hutch_runtime *rt, const struct hutch_spec *spec,
			  const struct hutch_io *io, struct hutch_container **out,
			  struct hutch_err **err)
{
	return container_start(rt, spec, io, false, out, err);
}

int container_start(struct hutch_runtime *rt, const struct hutch_spec *spec,
		    const struct hutch_io *io, bool again, struct hutch_container **out,
		    struct hutch_err **err)
{
	if (hutch_spec_validate(spec, err) < 0 ||
	    proc_check_rlimits(&spec->process, rt->rootless, spec_has_ns(spec, HUTCH_NS_USER),
			       err) < 0)
		return -1;
	struct hutch_container *c = xcalloc(1, sizeof(*c));
	c->rt = rt;
	c->pidfd = -1;
	c->pty_master = -1;
	c->cg.dirfd = -1;
	c->id = xstrdup(spec->id);
	c->again = again;
	c->terminal = spec->process.terminal;
	c->memory_limit = spec->resources.memory_max;
	_cleanup_free_ char *upper = NULL, *work = NULL, *rootfs = NULL;
	_cleanup_etc_files_ struct etc_files etc = {0};

	/* no fd of the caller's that the container could reopen (io.c) */
	struct hutch_io child_io = *io;
	if (!spec->process.terminal &&
	    io_relay_prepare(io, spec->process.interactive, &child_io, &c->relay, err) < 0)
		goto fail;
	int dirs = make_container_dirs(rt, spec, c, err);
	if (dirs == HUTCH_ALREADY_RUNNING) {
		hutch_container_destroy(c, NULL); /* frees the relay too */
		return HUTCH_ALREADY_RUNNING;
	}
	if (dirs < 0 || etc_files_prepare(rt, spec, &etc, err) < 0)
		goto fail;
	hutch_trace("dirs and cgroup created");
	/* The device program is loaded and attached while the child builds its
	 * root (attach_devices), before its command runs; without one, nodev and
	 * no mknod. */
	int devices = devices_plan(rt, spec, &c->cg, err);
	if (devices < 0)
		goto fail;
	struct hutch_process proc = spec->process;
	bool userns = spec_has_ns(spec, HUTCH_NS_USER);
	upper = xasprintf("%s/upper", c->data_dir);
	work = xasprintf("%s/work", c->data_dir);
	rootfs = xstrdup(c->data_dir);
	struct child_args a = {
	    .rt = rt,
	    .spec = spec,
	    .c = c,
	    .staged = -1,
	    .mctx = {.spec = spec,
		     .rootfs = rootfs,
		     .upper = upper,
		     .work = work,
		     .etc = &etc,
		     .rootless = rt->rootless,
		     .own_cgroup = c->cg.dirfd >= 0,
		     .rw_tmpfs = spec->rw_tmpfs},
	};
	/* new namespaces for the types listed without a path; those with one are
	 * joined by the child (validated: only network) */
	uint64_t flags = 0;
	for (size_t i = 0; i < spec->n_namespaces; i++)
		if (!spec->namespaces[i].path)
			flags |= (uint64_t)ns_clone_flag(spec->namespaces[i].type);
	struct spawn_req req = {
	    .rt = rt,
	    .proc = &proc,
	    .io = &child_io,
	    .tty_io = io,
	    .userns = userns,
	    .seccomp = spec->seccomp == HUTCH_SECCOMP_DEFAULT && !spec->privileged,
	    .default_winsize = spec->detached,
	    .clone_flags = flags,
	    .cgroup_fd = c->cg.dirfd,
	    .child = child_main,
	    .started = userns || rt->on_created ? child_started : NULL,
	    .running = stage_running_record,
	    .arg = &a,
	};
	struct spawn_out so;
	int spawned;
	for (;;) {
		if (devices == DEVICES_NODEV) {
			uint64_t keep = ~(1ULL << CAP_MKNOD);
			proc.caps = (struct hutch_caps){
			    proc.caps.bounding & keep, proc.caps.effective & keep,
			    proc.caps.permitted & keep, proc.caps.inheritable & keep,
			    proc.caps.ambient & keep};
			c->state->process.caps = proc.caps; /* and so for exec */
		}
		a.mctx.nodev = devices == DEVICES_NODEV;
		req.release = devices == DEVICES_PROGRAM ? attach_devices : NULL;
		/* every mount's options parsed once, here: the child only reads them */
		if (mounts_prepare(&a.mctx, err) < 0)
			goto fail;
		spawned = proc_spawn(&req, &so, err);
		mounts_release(&a.mctx); /* the child has its own copy */
		if (spawned < 0 && a.staged >= 0) {
			state_stage_drop(a.staged);
			a.staged = -1;
		}
		if (spawned < 0 && a.devices_refused) {
			/* the kernel would not take the program: start again without */
			a.devices_refused = false;
			hutch_err_free(&a.stage_err);
			devices = DEVICES_NODEV;
			continue;
		}
		break;
	}
	if (spawned < 0) {
		hutch_err_free(&a.stage_err);
		goto fail;
	}
	io_relay_started(c->relay);
	c->pid = so.pid;
	c->pidfd = so.pidfd;
	c->pty_master = so.pty_master;
	c->started = true;
	c->state->status = HUTCH_RUNNING;
	c->state->pid = so.pid;
	c->state->pid_start = a.pid_start;
	c->state->started_ns = a.started_ns;
	int recorded = -1;
	if (a.staged >= 0)
		recorded = state_stage_commit(a.staged, err);
	else if (err && !*err)
		*err = steal_ptr(a.stage_err);
	hutch_err_free(&a.stage_err);
	if (recorded < 0) {
		kill(so.pid, SIGKILL);
		siginfo_t si;
		waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED);
		goto fail;
	}
	*out = c;
	return 0;

fail: {
	int code = err && *err ? (*err)->exit_code : 125;
	if (c->again && c->state) {
		/* as Docker records a failed start: exited, with the start's code */
		c->state->status = HUTCH_EXITED;
		c->state->exit_code = code ? code : 125;
		c->state->finished_ns = now_ns();
	}
	hutch_container_destroy(c, NULL);
	if (err && *err)
		(*err)->exit_code = code ? code : 125;
	return -1;
}
}

int hutch_container_pidfd(const struct hutch_container *c) { return c->pidfd; }
pid_t hutch_container_pid(const struct hutch_container *c) { return c->pid; }
const char *hutch_container_id(const struct hutch_container *c) { return c->id; }

int hutch_container_kill(struct hutch_container *c, int sig, struct hutch_err **err)
{
	if (c->reaped)
		return 0;
	if (syscall(SYS_pidfd_send_signal, c->pidfd, sig, NULL, 0) < 0 && errno != ESRCH)
		return hutch_fail_sys(err, "send signal %d to container %.12s", sig, c->id);
	return 0;
}

int hutch_container_reap(struct hutch_container *c, struct hutch_exit *st, struct hutch_err **err)
{
	siginfo_t si = {0};
	if (waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED) < 0)
		return hutch_fail_sys(err, "wait for container %.12s", c->id);
	c->reaped = true;
	*st = (struct hutch_exit){0};
	if (si.si_code == CLD_EXITED) {
		st->code = si.si_status;
	} else {
		st->signal = si.si_status;
		st->code = 128 + si.si_status;
	}
	st->memory_limit = c->memory_limit;
	st->oom_killed = cgroup_oom_kills(&c->cg) > 0;
	if (c->state) {
		c->state->status = HUTCH_EXITED;
		c->state->exit_code = st->code;
		c->state->oom_killed = st->oom_killed;
		c->state->finished_ns = now_ns();
	}
	hutch_trace("reaped");
	return 0;
}

int hutch_container_destroy(struct hutch_container *c, struct hutch_err **err)
{
	if (!c)
		return 0;
	int ret = 0;
	if (c->pidfd >= 0 && !c->reaped && c->pid > 0) {
		syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0);
		siginfo_t si;
		waitid(P_PIDFD, (id_t)c->pidfd, &si, WEXITED);
	}
	bool cgroup_gone = cgroup_destroy(&c->cg, err) == 0;
	if (!cgroup_gone)
		ret = -1;
	/* A container that ran keeps its record and rw layer (for ps -a, logs,
	 * inspect) unless --rm; one that never started leaves nothing. A cgroup
	 * that could not be removed stays in the record: `rm` tries again. */
	bool keep =
	    c->state && (!cgroup_gone || c->again || (c->started && !c->state->auto_remove));
	if (keep) {
		if (cgroup_gone) {
			free(c->state->cgroup);
			c->state->cgroup = NULL;
		}
		if (c->state->status != HUTCH_EXITED) {
			/* destroyed without a reap: it was killed above */
			c->state->status = HUTCH_EXITED;
			c->state->exit_code = 137;
			c->state->finished_ns = now_ns();
		}
		if (state_write(c->rt, c->state, ret ? NULL : err) < 0)
			ret = -1;
	} else if (c->created_data) {
		/* removers hold the dir's lock: see collect_orphan in state.c */
		_cleanup_close_ int dfd = open(c->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0)
			flock(dfd, LOCK_EX);
		if (state_remove_dir_at(c->data_dir, ret ? NULL : err) < 0)
			ret = -1;
	}
	hutch_state_free(c->state);
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->pty_master >= 0)
		close(c->pty_master);
	io_relay_free(c->relay);
	free(c->data_dir);
	free(c->id);
	free(c);
	return ret;
}

/* ---- OCI namespaces: joined by path, made in a joined user namespace, time ---- */

uint64_t ns_oci_clone_flags(const struct hutch_spec *spec)
{
	const struct hutch_namespace *user = hutch_spec_namespace(spec, HUTCH_NS_USER);
	const struct hutch_namespace *pid = hutch_spec_namespace(spec, HUTCH_NS_PID);
	/* the others made by the child, in that user namespace (ns_oci_enter); a
	 * pid namespace by the clone from a process there (ns_oci_clone_userns) */
	if (user && user->path)
		return pid && !pid->path ? CLONE_NEWPID : 0;
	uint64_t flags = 0;
	for (size_t i = 0; i < spec->n_namespaces; i++)
		if (!spec->namespaces[i].path && spec->namespaces[i].type != HUTCH_NS_TIME)
			flags |= (uint64_t)ns_clone_flag(spec->namespaces[i].type);
	return flags;
}

int ns_oci_clone_userns(const struct hutch_spec *spec, int *fd, struct hutch_err **err)
{
	const struct hutch_namespace *user = hutch_spec_namespace(spec, HUTCH_NS_USER);
	const struct hutch_namespace *pid = hutch_spec_namespace(spec, HUTCH_NS_PID);
	*fd = -1;
	if (!user || !user->path || !pid || pid->path)
		return 0;
	*fd = open(user->path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return hutch_fail_sys(err, "linux.namespaces: open the user namespace %s",
				      user->path);
	return 0;
}

int ns_oci_pid_target(const struct hutch_spec *spec, int *fd, struct hutch_err **err)
{
	const struct hutch_namespace *pid = hutch_spec_namespace(spec, HUTCH_NS_PID);
	*fd = -1;
	if (pid && pid->path) {
		*fd = open(pid->path, O_RDONLY | O_CLOEXEC);
		if (*fd < 0)
			return hutch_fail_sys(err, "linux.namespaces: open the pid namespace %s",
					      pid->path);
	}
	return 0;
}

/* A new time namespace with its offsets: unshared for our children, the
 * offsets written while nothing is in it yet, then entered (setns into a time
 * namespace moves the caller too, unlike unshare). */
static int new_time_ns(const struct hutch_oci_config *cfg, struct hutch_err **err)
{
	if (unshare(CLONE_NEWTIME) < 0)
		return hutch_fail_sys(err, "linux.namespaces: make a time namespace");
	if (cfg->has_time_offsets) {
		char text[128];
		snprintf(text, sizeof(text), "monotonic %lld %u\nboottime %lld %u\n",
			 (long long)cfg->monotonic_secs, cfg->monotonic_nsecs,
			 (long long)cfg->boottime_secs, cfg->boottime_nsecs);
		_cleanup_close_ int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
			return hutch_fail_sys(err,
					      "linux.timeOffsets: set monotonic %lld.%09u, "
					      "boottime %lld.%09u",
					      (long long)cfg->monotonic_secs, cfg->monotonic_nsecs,
					      (long long)cfg->boottime_secs, cfg->boottime_nsecs);
	}
	_cleanup_close_ int fd = open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWTIME) < 0)
		return hutch_fail_sys(err, "linux.namespaces: enter the new time namespace");
	return 0;
}

/* In its user namespace, the process becomes its root (as runc's and crun's
 * do): the clone or setns left it the ids it had, which that namespace may not
 * map, and then it could create no file. Last: a changed uid makes it
 * undumpable, its /proc/self files the host root's (timens_offsets written
 * before). A new one need not map 0; a joined one must. */
static int become_userns_root(const struct hutch_spec *spec, struct hutch_err **err)
{
	const struct hutch_namespace *user = hutch_spec_namespace(spec, HUTCH_NS_USER);
	if (!user)
		return 0;
	int g = setresgid(0, 0, 0), u = g == 0 ? setresuid(0, 0, 0) : 0;
	if (g == 0 && u == 0)
		return 0;
	if (errno == EINVAL && !user->path)
		return 0;
	if (errno == EINVAL)
		return hutch_fail(err, 0,
				  "linux.namespaces: the user namespace %s maps no uid or gid 0 "
				  "for the container's process to become",
				  user->path);
	return hutch_fail_sys(err, "linux.namespaces: become root of the user namespace");
}

int ns_oci_enter(const struct hutch_oci_config *cfg, struct hutch_err **err)
{
	const struct hutch_spec *spec = cfg->spec;
	int fds[HUTCH_NS_TYPES];
	int ret = -1;
	for (int t = 0; t < HUTCH_NS_TYPES; t++)
		fds[t] = -1;
	/* every path opened first: once in another mount namespace, paths are its */
	for (size_t i = 0; i < spec->n_namespaces; i++) {
		const struct hutch_namespace *ns = &spec->namespaces[i];
		if (!ns->path || ns->type == HUTCH_NS_PID) /* pid: before the clone */
			continue;
		fds[ns->type] = open(ns->path, O_RDONLY | O_CLOEXEC);
		if (fds[ns->type] < 0) {
			hutch_fail_sys(err, "linux.namespaces: open the %s namespace %s",
				       hutch_ns_type_name(ns->type), ns->path);
			goto out;
		}
	}
	/* the user namespace first: those it owns are then ours to join and make
	 * (its root we become last: become_userns_root) */
	struct stat want, now;
	bool in_it = fds[HUTCH_NS_USER] >= 0 && fstat(fds[HUTCH_NS_USER], &want) == 0 &&
		     stat("/proc/self/ns/user", &now) == 0 && want.st_ino == now.st_ino &&
		     want.st_dev == now.st_dev; /* cloned there already */
	if (fds[HUTCH_NS_USER] >= 0 && !in_it && setns(fds[HUTCH_NS_USER], CLONE_NEWUSER) < 0) {
		hutch_fail_sys(err, "linux.namespaces: join the user namespace %s",
			       hutch_spec_namespace(spec, HUTCH_NS_USER)->path);
		goto out;
	}
	/* mount last: joining it changes our root */
	static const enum hutch_ns_type order[] = {HUTCH_NS_IPC,    HUTCH_NS_UTS,  HUTCH_NS_NETWORK,
						   HUTCH_NS_CGROUP, HUTCH_NS_TIME, HUTCH_NS_MOUNT};
	for (size_t k = 0; k < ARRAY_SIZE(order); k++) {
		enum hutch_ns_type t = order[k];
		if (fds[t] >= 0 && setns(fds[t], ns_clone_flag(t)) < 0) {
			hutch_fail_sys(err, "linux.namespaces: join the %s namespace %s",
				       hutch_ns_type_name(t), hutch_spec_namespace(spec, t)->path);
			goto out;
		}
	}
	/* in a joined user namespace, the new ones are made here (its own) */
	if (fds[HUTCH_NS_USER] >= 0) {
		int flags = 0;
		for (size_t i = 0; i < spec->n_namespaces; i++) {
			enum hutch_ns_type t = spec->namespaces[i].type;
			if (!spec->namespaces[i].path && t != HUTCH_NS_PID && t != HUTCH_NS_TIME)
				flags |= ns_clone_flag(t);
		}
		if (flags && unshare(flags) < 0) {
			hutch_fail_sys(err, "linux.namespaces: make new namespaces in the user "
					    "namespace joined");
			goto out;
		}
	}
	const struct hutch_namespace *time = hutch_spec_namespace(spec, HUTCH_NS_TIME);
	if (time && !time->path && new_time_ns(cfg, err) < 0)
		goto out;
	if (become_userns_root(spec, err) < 0)
		goto out;
	ret = 0;
out:
	for (int t = 0; t < HUTCH_NS_TYPES; t++)
		if (fds[t] >= 0)
			close(fds[t]);
	return ret;
}
