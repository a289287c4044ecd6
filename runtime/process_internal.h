/* Private to runtime/: the last steps before a container process execs, shared
 * by the container's pid 1 (`run`) and by `exec`. */
#pragma once
#include <sys/ioctl.h>

#include "runtime/runtime_internal.h"
#include "runtime/seccomp_internal.h"

struct seccomp_prog;
struct proc_ctx;
/* The runtime's side of a seccomp listener (SCMP_ACT_NOTIFY): the fd the
 * process sent and its pid as the runtime sees it (0: not known), for
 * linux.seccomp.listenerPath. */
typedef int proc_listener_fn(int seccomp_fd, pid_t pid, void *arg, struct hutch_err **err);
/* What an OCI container's process does otherwise (all zero: nothing). */
struct proc_oci {
	/* `create`: once ready to exec, report so, let the parent go without
	 * us (no parent-death signal) and wait for a connection on start_sock
	 * (a listening socket; `start` connects); then report to that
	 * connection instead (EOF at exec) */
	bool wait_start;
	int start_sock;
	/* the supplementary groups exactly (process.user.additionalGids) */
	bool groups_given;
	const uint32_t *groups;
	size_t n_groups;
	int preserve_fds; /* fds 3 .. 3+N-1 stay open in the container */
	/* linux.seccomp, compiled (the caller's; loaded as late as hutch's own) */
	const struct seccomp_prog *seccomp;
	/* called once `start` connected, just before the exec (and the seccomp
	 * filter): the startContainer hooks; it may proc_fail */
	void (*on_start)(struct proc_ctx *p, void *arg);
	void *on_start_arg;
	/* terminal: the pty also bound on /dev/console (a default device of the
	 * runtime spec's, as runc binds it) */
	bool console;
	/* a filter with a listener handed to proc_spawn's report channel
	 * (before start, or without wait_start) goes to this */
	proc_listener_fn *listener;
	void *listener_arg;
	/* scheduler, I/O priority, memory policy and personality set before
	 * the privileges are dropped, the final CPU affinity just before the
	 * exec (the initial one: proc_oci_initial_affinity); NULL: none */
	const struct hutch_oci_proc_attrs *attrs;
};

struct proc_ctx {
	const struct hutch_process *proc;
	const struct hutch_io *io;
	bool userns;
	struct seccomp_prog *seccomp; /* NULL: no filter */
	int report_fd;		      /* CLOEXEC write end: EOF at exec means success */
	int pty_sock;		      /* where the pty master goes (terminal only) */
	int dmz_fd;	  /* sealed memfd of hutch-dmz: the command is exec'd through it */
	int parent_pidfd; /* pidfd of the parent whose death must kill us, -1 if none */
	int release_fd;	  /* spawn_req.release: read its go-ahead before the command, or -1 */
	bool have_winsize;
	struct winsize winsize;
	struct proc_oci oci;
};

/* One way to start a container's process, for the container's pid 1
 * (container.c) and for exec (exec.c): the seccomp program prepared, the
 * sealed hutch-dmz memfd, the report pipe (and the pty's socket), clone3 into
 * new namespaces and the cgroup, the child's error report read, the pty master
 * received. The child arms its parent-death signal, waits for the go-ahead if
 * `started` is set, and runs `child` (which ends in proc_setup_and_exec or
 * proc_fail). */
struct spawn_req {
	const struct hutch_runtime *rt;
	const struct hutch_process *proc; /* what proc_setup_and_exec does */
	const struct hutch_io *io; /* the child's stdio (terminal: unused) */
	const struct hutch_io *tty_io; /* terminal: whose window size the pty gets */
	bool userns; /* the process ends up in a user namespace of its own */
	bool seccomp; /* Docker's default filter, for proc->caps.bounding */
	bool default_winsize; /* terminal, no size to copy: 24x80 */
	uint64_t clone_flags; /* CLONE_NEW* */
	/* > 0: the pid namespace to clone into (a helper process sets its
	 * children's to it and clones; pidns_what names it in messages); 0: none
	 * (fd 0 is never one) */
	int pidns_fd;
	const char *pidns_what;
	/* > 0: clone from a process in this user namespace (its new namespaces
	 * are that one's), put in cgroup_fd's cgroup by us before it goes on;
	 * 0: none */
	int clone_userns_fd;
	int cgroup_fd; /* clone3 into it; -1: stay in ours */
	struct proc_oci oci;
	__attribute__((noreturn)) void (*child)(struct proc_ctx *pc, void *arg);
	/* parent, after clone3 and before the child goes on (it waits for this):
	 * e.g. write its id maps */
	int (*started)(pid_t pid, void *arg, struct hutch_err **err);
	/* parent, once the child goes on and before its report is read: work
	 * that would otherwise wait for the exec is done while the child sets up */
	void (*running)(pid_t pid, void *arg);
	/* parent, while the child builds its root (after `running`): what must be
	 * in place before the command runs, e.g. the device program of its
	 * cgroup. The child waits for it at the start of proc_setup_and_exec. */
	int (*release)(pid_t pid, void *arg, struct hutch_err **err);
	void *arg;
};
struct spawn_out {
	pid_t pid;
	int pidfd;
	int pty_master;	 /* terminal only, else -1 */
	int clone_errno; /* clone3 itself failed (err filled): its errno */
};
/* 0 when the command has been exec'd (out filled: the caller owns pidfd and
 * pty_master); -1 with err (and the child reaped) otherwise. */
int proc_spawn(const struct spawn_req *r, struct spawn_out *out, struct hutch_err **err);

/* An OCI process's execCPUAffinity.initial, as it starts (proc_fail on error). */
void proc_oci_initial_affinity(const struct proc_ctx *p);
/* Report an error to the parent and exit with code (125/126/127). */
__attribute__((noreturn)) void proc_fail(const struct proc_ctx *p, int code, struct hutch_err *err);
/* In the final root (after pivot_root or setns): resolve the user, enter the
 * working directory, set up stdio or the pty, limits, privileges, no_new_privs,
 * close fds, seccomp, (--init: fork under a reaper) and exec. */
__attribute__((noreturn)) void proc_setup_and_exec(struct proc_ctx *p);
/* Parent side: 0 when the child exec'd (EOF), -1 with its message otherwise. */
int proc_read_report(int fd, struct hutch_err **err);
/* A report in one write: ret 0 (started) or <0 (failed: code, err). */
void proc_report(int fd, int ret, int code, const struct hutch_err *err);
/* Read one: 0 when it says started (or at EOF, if eof_ok), else its ret with
 * err filled (its message, errno and exit code); died: the message when the
 * writer went without a whole report. */
int proc_read_report_as(int fd, bool eof_ok, const char *died, struct hutch_err **err);
/* The same over a socket, where a seccomp listener's fd may come first: given
 * to listener, and the process let go on (or, if it failed, stopped). */
int proc_read_report_listen(int fd, bool eof_ok, const char *died, proc_listener_fn *listener,
			    void *arg, struct hutch_err **err);
int proc_send_fd(int sock, int fd);
/* buf (up to len bytes of it) with fd by SCM_RIGHTS: sendmsg's answer. */
ssize_t proc_send_with_fd(int sock, const void *buf, size_t len, int fd);
int proc_recv_fd(int sock);
/* Forward signals to child and reap everything; exit with child's status. */
__attribute__((noreturn)) void proc_run_init(pid_t child);
/* A sealed, executable memfd holding hutch-dmz (runtime/dmz/dmz.c). */
int proc_dmz_memfd(struct hutch_err **err);
/* A sealed, executable memfd holding hutch-keeper (runtime/keeper/keeper.c). */
int proc_keeper_memfd(struct hutch_err **err);
/* Host side, before anything is created: hutch_rlimit_check for each limit
 * the spec sets explicitly (defaults are fitted to the host when applied). */
int proc_check_rlimits(const struct hutch_process *proc, bool rootless, bool userns,
		       struct hutch_err **err);
/* /proc/PID/stat field 22 (start time in clock ticks), 0 if gone. */
uint64_t proc_start_time(pid_t pid);
