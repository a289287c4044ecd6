/* Private to runtime/: the last steps before a container process execs, shared
 * by the container's pid 1 (`run`) and by `exec`. */
#pragma once
#include <sys/ioctl.h>

#include "runtime/runtime_internal.h"
#include "runtime/seccomp_internal.h"

struct proc_ctx {
	const struct hutch_process *proc;
	const struct hutch_io *io;
	bool userns;
	struct seccomp_prog *seccomp; /* NULL: no filter */
	int report_fd; /* CLOEXEC write end: EOF at exec means success */
	int pty_sock; /* where the pty master goes (terminal only) */
	int dmz_fd; /* sealed memfd of hutch-dmz: the command is exec'd through it */
	int parent_pidfd; /* pidfd of the parent whose death must kill us, -1 if none */
	bool have_winsize;
	struct winsize winsize;
};

/* Report an error to the parent and exit with code (125/126/127). */
__attribute__((noreturn)) void proc_fail(const struct proc_ctx *p, int code, struct hutch_err *err);
/* In the final root (after pivot_root or setns): resolve the user, enter the
 * working directory, set up stdio or the pty, limits, privileges, no_new_privs,
 * close fds, seccomp, (--init: fork under a reaper) and exec. */
__attribute__((noreturn)) void proc_setup_and_exec(struct proc_ctx *p);
/* Parent side: 0 when the child exec'd (EOF), -1 with its message otherwise. */
int proc_read_report(int fd, struct hutch_err **err);
int proc_send_fd(int sock, int fd);
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
