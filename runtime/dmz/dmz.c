/* hutch-dmz: the last step into a container. hutch execs this tiny static
 * program from a sealed memfd, and it execs the container's command. While the
 * command is being exec'd, /proc/self/exe is therefore this sealed copy and
 * never hutch's binary on the host, which a "#!/proc/self/exe" script could
 * otherwise run inside the container and then overwrite (CVE-2019-5736).
 *
 *   argv: MODE PATH ARG0 ARG...   MODE "exec": execve(PATH, ARG0..., envp)
 *                                 MODE "init": stay as pid 1, run PATH as a
 *                                 child, forward signals, reap zombies, exit
 *                                 with the child's status.
 * No libc: it is embedded in hutch and must not depend on the container's. */
#include "runtime/nolibc.h"
#include <linux/wait.h>

#define SIG_SETMASK 2
#define SIGCHLD 17
#define SIGKILL 9
#define SIGSTOP 19
#define ENOENT 2
#define ENOTDIR 20
#define EINTR 4
#define CLONE_SIGCHLD SIGCHLD

struct siginfo_min {
	int si_signo, si_errno, si_code, pad;
	int pid, uid, status;
	char rest[100];
};

static unsigned long slen(const char *s)
{
	unsigned long n = 0;
	while (s[n])
		n++;
	return n;
}

static void say(const char *a, const char *b, const char *c)
{
	sys3(__NR_write, 2, a, slen(a));
	sys3(__NR_write, 2, b, slen(b));
	sys3(__NR_write, 2, c, slen(c));
}

static __attribute__((noreturn)) void die(int code)
{
	for (;;)
		sys1(__NR_exit_group, code);
}

static __attribute__((noreturn)) void do_exec(char *path, char **argv, char **envp)
{
	s64 r = sys3(__NR_execve, path, argv, envp);
	say("hutch: exec \"", path, r == -ENOENT || r == -ENOTDIR ? "\": no such file\n"
								     : "\": cannot execute\n");
	die(r == -ENOENT || r == -ENOTDIR ? 127 : 126);
}

/* pid 1 under --init: the command is a child; every signal we can catch goes
 * to it; orphans are reaped; our status is the command's. */
static __attribute__((noreturn)) void do_init(char *path, char **argv, char **envp)
{
	unsigned long all = ~0UL, none = 0;
	sys2(__NR_prctl, 15 /* PR_SET_NAME */, "hutch-init");
	sys4(__NR_rt_sigprocmask, SIG_SETMASK, &all, 0, 8);
	s64 child = sys6(__NR_clone, CLONE_SIGCHLD, 0, 0, 0, 0, 0);
	if (child < 0)
		die(125);
	if (child == 0) {
		sys4(__NR_rt_sigprocmask, SIG_SETMASK, &none, 0, 8);
		do_exec(path, argv, envp);
	}
	for (;;) {
		struct siginfo_min si;
		s64 sig = sys4(__NR_rt_sigtimedwait, &all, &si, 0, 8);
		if (sig < 0)
			continue;
		if (sig != SIGCHLD) {
			sys2(__NR_kill, child, sig);
			continue;
		}
		for (;;) {
			int status = 0;
			s64 pid = sys4(__NR_wait4, -1, &status, WNOHANG, 0);
			if (pid <= 0)
				break;
			if (pid == child) {
				if ((status & 0x7f) == 0)
					die((status >> 8) & 0xff);
				die(128 + (status & 0x7f));
			}
		}
	}
}

__attribute__((noreturn, used)) void dmz_main(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	if (argc < 3)
		die(125);
	if (argv[0][0] == 'i')
		do_init(argv[1], argv + 2, envp);
	do_exec(argv[1], argv + 2, envp);
}

#if defined(__x86_64__)
__asm__(".text\n.global _start\n_start:\n xor %rbp,%rbp\n mov %rsp,%rdi\n and $-16,%rsp\n call dmz_main\n");
#elif defined(__aarch64__)
__asm__(".text\n.global _start\n_start:\n mov x29, #0\n mov x0, sp\n bl dmz_main\n");
#endif
