/* The default seccomp profile and its cache. Every filter is loaded in a
 * fork()ed child so that the test process itself stays unfiltered. */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/kcmp.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "runtime/runtime.h"
#include "runtime/seccomp_internal.h"

#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define HI_BIT 0x100000000L /* the kernel reads an int: this is not there */

#define SYSADMIN_CAPS (HUTCH_DEFAULT_CAPS | (1ULL << CAP_SYS_ADMIN))

/* Prepared once (the second prepare, so these come from the cache). */
static char cache_dir[] = "/tmp/hutch-test-seccomp.XXXXXX";
static struct seccomp_prog default_prog, sysadmin_prog, nocaps_prog, ptrace_prog;

/* ---- helpers that run inside the filtered child: no cmocka there ---- */

#define CHILD_CHECK(cond)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			dprintf(2, "%s:%d: check failed: %s (errno %d: %s)\n", __FILE__, __LINE__, \
				#cond, errno, strerror(errno));                                    \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

/* call must fail with errno e. */
#define CHILD_ERRNO(call, e)                                                                       \
	do {                                                                                       \
		errno = 0;                                                                         \
		long r_ = (long)(call);                                                            \
		int got_ = errno;                                                                  \
		if (r_ != -1 || got_ != (e)) {                                                     \
			dprintf(2,                                                                 \
				"%s:%d: %s returned %ld, errno %d (%s); expected errno %d (%s)\n", \
				__FILE__, __LINE__, #call, r_, got_, strerror(got_), (e),          \
				strerror(e));                                                      \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

/* Fork, set no_new_privs, load prog (if any) and run fn; 0 when fn passed. */
static int in_filtered_child(const struct seccomp_prog *prog, int (*fn)(void))
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct hutch_err *err = NULL;
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			_exit(100);
		if (prog && seccomp_load_prepared(prog, NULL, &err) < 0) {
			hutch_err_print("test_seccomp child", err);
			_exit(101);
		}
		_exit(fn());
	}
	int status;
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "child killed by signal %d\n", WTERMSIG(status));
		return 128 + WTERMSIG(status);
	}
	return WEXITSTATUS(status);
}

static bool is_root(void)
{
	return geteuid() == 0;
}

/* ---- child bodies ---- */

static int child_denied_by_default(void)
{
	CHILD_CHECK(syscall(SYS_getpid) > 0);
	CHILD_CHECK(getppid() > 0);
	CHILD_ERRNO(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0), EPERM);
	CHILD_ERRNO(syscall(SYS_add_key, "user", "hutch", "x", 1, 0), EPERM);
	CHILD_ERRNO(syscall(SYS_bpf, 0, NULL, 0), EPERM);
	CHILD_ERRNO(unshare(CLONE_NEWUSER), EPERM);
	CHILD_ERRNO(unshare(CLONE_NEWNS), EPERM);
	CHILD_ERRNO(unshare(CLONE_NEWNET), EPERM);
	CHILD_ERRNO(setns(0, 0), EPERM);
	CHILD_ERRNO(mount(NULL, "/", "hutch-no-such-fs", 0, NULL), EPERM);
	CHILD_ERRNO(umount2("/hutch-no-such-dir", 0), EPERM);
	/* Invalid flags: if seccomp let it through, the kernel says EINVAL. */
	CHILD_ERRNO(syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL), EPERM);
	CHILD_ERRNO(syscall(SYS_reboot, 0, 0, 0, NULL), EPERM);
	CHILD_ERRNO(syscall(SYS_init_module, NULL, 0, ""), EPERM);
	CHILD_ERRNO(syscall(SYS_open_by_handle_at, -1, NULL, 0), EPERM);
	CHILD_ERRNO(syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, 0, 0), EPERM);
	CHILD_ERRNO(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0), EPERM);
	CHILD_ERRNO(syscall(SYS_settimeofday, NULL, NULL), EPERM);
	CHILD_ERRNO(syscall(SYS_swapon, "/hutch-no-such-file", 0), EPERM);
	CHILD_ERRNO(syscall(SYS_sethostname, NULL, 1000), EPERM);
	/* clone3's flags are out of seccomp's reach: ENOSYS so libc uses clone. */
	CHILD_ERRNO(syscall(SYS_clone3, NULL, 0), ENOSYS);
	/* CAP_SYS_CHROOT is a default capability: chroot reaches the kernel. */
	CHILD_ERRNO(chroot("/hutch-no-such-dir"), ENOENT);
	return 0;
}

/* What the kernel answers to these (as root), with or without a filter. */
static int child_kernel_answers(void)
{
	CHILD_CHECK(syscall(SYS_getpid) > 0);
	CHILD_ERRNO(mount(NULL, "/", "hutch-no-such-fs", 0, NULL), ENODEV);
	CHILD_ERRNO(umount2("/hutch-no-such-dir", 0), ENOENT);
	CHILD_ERRNO(syscall(SYS_clone3, NULL, 0), EINVAL);	   /* size 0 */
	CHILD_ERRNO(syscall(SYS_sethostname, NULL, 1000), EINVAL); /* too long */
	CHILD_ERRNO(syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, NULL, 0), EINVAL);
	CHILD_CHECK(unshare(CLONE_NEWUSER) == 0);
	return 0;
}

static int child_allowed_with_sysadmin(void)
{
	if (child_kernel_answers() != 0)
		return 1;
	/* Still denied: no capability opens these. */
	CHILD_ERRNO(syscall(SYS_keyctl, 0, -3, 0), EPERM);
	CHILD_ERRNO(syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL), EPERM);
	return 0;
}

static int child_no_caps(void)
{
	CHILD_CHECK(syscall(SYS_getpid) > 0);
	CHILD_ERRNO(chroot("/hutch-no-such-dir"), EPERM);
	CHILD_ERRNO(syscall(SYS_clone3, NULL, 0), ENOSYS);
	return 0;
}

static int child_ptrace_caps(void)
{
	CHILD_CHECK(syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, 0, 0) == 0);
	CHILD_ERRNO(mount(NULL, "/", "hutch-no-such-fs", 0, NULL), EPERM);
	return 0;
}

static int child_personality(void)
{
	long cur = syscall(SYS_personality, 0xffffffffUL);
	CHILD_CHECK(cur != -1); /* the query */
	CHILD_CHECK(syscall(SYS_personality, 0x0008UL /* PER_LINUX32 */) != -1);
	CHILD_CHECK(syscall(SYS_personality, 0x0000UL /* PER_LINUX */) != -1);
	CHILD_CHECK(syscall(SYS_personality, 0x20000UL /* UNAME26 */) != -1);
	CHILD_CHECK(syscall(SYS_personality, 0x20008UL) != -1);
	CHILD_ERRNO(syscall(SYS_personality, 0x0040000UL /* ADDR_NO_RANDOMIZE */), EPERM);
	CHILD_ERRNO(syscall(SYS_personality, 0x0006UL /* PER_BSD */), EPERM);
	CHILD_ERRNO(syscall(SYS_personality, 0x100000000UL), EPERM);
	return 0;
}

static int child_sockets(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHILD_CHECK(fd >= 0);
	close(fd);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHILD_CHECK(fd >= 0);
	close(fd);
	CHILD_ERRNO(socket(AF_VSOCK, SOCK_STREAM, 0), EPERM);
	CHILD_ERRNO(socket(AF_ALG, SOCK_SEQPACKET, 0), EPERM);
	/* The same families with bits the kernel ignores above the int. */
	CHILD_ERRNO(syscall(SYS_socket, HI_BIT | AF_VSOCK, SOCK_STREAM, 0), EPERM);
	CHILD_ERRNO(syscall(SYS_socket, HI_BIT | AF_ALG, SOCK_SEQPACKET, 0), EPERM);
	CHILD_ERRNO(syscall(SYS_socket, 0xffffffff00000000L | AF_VSOCK, SOCK_STREAM, 0), EPERM);
	int sv[2];
	CHILD_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	close(sv[0]);
	close(sv[1]);
	/* io_uring's operations bypass seccomp: refused as in Docker. */
	CHILD_ERRNO(syscall(SYS_io_uring_setup, 1, NULL), EPERM);
	CHILD_ERRNO(syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0), EPERM);
	CHILD_ERRNO(syscall(SYS_io_uring_register, -1, 0, NULL, 0), EPERM);
	return 0;
}

/* What the kernel answers without a filter: vsock and io_uring are there. */
static int child_sockets_unfiltered(void)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHILD_CHECK(fd >= 0 || errno == EAFNOSUPPORT);
	if (fd >= 0)
		close(fd);
	/* Bad flags: EINVAL from the kernel, after seccomp. */
	struct {
		uint32_t w[30];
	} params = {{0}};
	params.w[2] = 0xffffffffu; /* flags */
	errno = 0;
	CHILD_CHECK(syscall(SYS_io_uring_setup, 1, &params) == -1);
	CHILD_CHECK(errno == EINVAL || errno == EPERM || errno == ENOSYS);
	return 0;
}

static void *thread_fn(void *arg)
{
	return arg;
}

static int child_processes_and_threads(void)
{
	/* glibc's pthread_create tries clone3 first and falls back on ENOSYS. */
	pthread_t t;
	CHILD_CHECK(pthread_create(&t, NULL, thread_fn, (void *)0x1) == 0);
	void *ret = NULL;
	CHILD_CHECK(pthread_join(t, &ret) == 0 && ret == (void *)0x1);
	pid_t pid = fork();
	CHILD_CHECK(pid >= 0);
	if (pid == 0)
		_exit(7);
	int status;
	CHILD_CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		    WEXITSTATUS(status) == 7);
	CHILD_ERRNO(syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, NULL, NULL, NULL, 0), EPERM);
	CHILD_ERRNO(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0), EPERM);
	CHILD_ERRNO(syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, 0), EPERM);
	return 0;
}

#if defined(__x86_64__)
/* A 32-bit syscall from a 64-bit process: seccomp sees AUDIT_ARCH_I386. */
static long int80_5(long nr, long a, long b, long c, long d, long e)
{
	long ret;
	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
			 : "memory", "r8", "r9", "r10", "r11");
	return (int)ret;
}

static long int80(long nr, long a, long b, long c)
{
	return int80_5(nr, a, b, c, 0, 0);
}
#define I386_GETPID	    20
#define I386_SOCKETCALL	    102
#define I386_KEYCTL	    288
#define I386_UNSHARE	    310
#define I386_SOCKET	    359
#define I386_IO_URING_SETUP 425
#define X32_BIT		    0x40000000L
/* what the default filter answers a call it denies through x32: EPERM, or
 * ENOSYS where the kernel runs no x32 and the filter leaves it out */
#define X32_DENIED	    (seccomp_kernel_runs_x32() ? EPERM : ENOSYS)
#define SYS_SOCKET_CALL	    1 /* socketcall's first argument, linux/net.h */
#define SYS_SOCKETPAIR_CALL 8

static int child_i386_probe(void)
{
	return int80(I386_GETPID, 0, 0, 0) == getpid() ? 0 : 1;
}

static long i386_socketcall(long call, uint32_t a, uint32_t b, uint32_t c);

/* Without a filter the kernel takes socketcall(SYS_SOCKET) of any family. */
static int child_compat_unfiltered(void)
{
	CHILD_CHECK(i386_socketcall(SYS_SOCKET_CALL, AF_INET, SOCK_DGRAM, 0) >= 0);
	long r = i386_socketcall(SYS_SOCKET_CALL, AF_VSOCK, SOCK_STREAM, 0);
	CHILD_CHECK(r >= 0 || r == -EAFNOSUPPORT);
	return 0;
}

/* socketcall(call, {a, b, c, sv}) through int 0x80, its memory below 4 GiB;
 * sv: the address of two ints there, for socketpair. */
static long i386_socketcall(long call, uint32_t a, uint32_t b, uint32_t c)
{
	uint32_t *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	if (low == MAP_FAILED)
		return -ENOMEM;
	low[0] = a;
	low[1] = b;
	low[2] = c;
	low[3] = (uint32_t)(uintptr_t)&low[4];
	long r = int80(I386_SOCKETCALL, call, (long)(uintptr_t)low, 0);
	if (r >= 0 && call == SYS_SOCKETPAIR_CALL) {
		close((int)low[4]);
		close((int)low[5]);
	} else if (r >= 0) {
		close((int)r);
	}
	munmap(low, 4096);
	return r;
}

/* Whatever the capabilities. */
static int child_compat_sockets(void)
{
	/* socketcall hides socket()'s family in memory: SYS_SOCKET is ENOSYS
	 * whatever the family (musl then calls socket(2)); its other calls,
	 * socketpair here, are what the table allows. */
	CHILD_CHECK(i386_socketcall(SYS_SOCKET_CALL, AF_VSOCK, SOCK_STREAM, 0) == -ENOSYS);
	CHILD_CHECK(i386_socketcall(SYS_SOCKET_CALL, AF_INET, SOCK_DGRAM, 0) == -ENOSYS);
	CHILD_CHECK(i386_socketcall(SYS_SOCKETPAIR_CALL, AF_UNIX, SOCK_STREAM, 0) == 0);
	/* socket(2) itself: by family. */
	CHILD_CHECK(int80(I386_SOCKET, AF_VSOCK, SOCK_STREAM, 0) == -EPERM);
	CHILD_CHECK(int80(I386_SOCKET, AF_ALG, SOCK_SEQPACKET, 0) == -EPERM);
	long fd = int80(I386_SOCKET, AF_INET, SOCK_DGRAM, 0);
	CHILD_CHECK(fd >= 0);
	close((int)fd);
	CHILD_CHECK(int80(I386_IO_URING_SETUP, 1, 0, 0) == -EPERM);
	errno = 0;
	CHILD_ERRNO(syscall(X32_BIT | SYS_socket, AF_VSOCK, SOCK_STREAM, 0), X32_DENIED);
	CHILD_ERRNO(syscall(X32_BIT | SYS_socket, HI_BIT | AF_VSOCK, SOCK_STREAM, 0), X32_DENIED);
	CHILD_ERRNO(syscall(X32_BIT | SYS_socket, AF_ALG, SOCK_SEQPACKET, 0), X32_DENIED);
	CHILD_ERRNO(syscall(X32_BIT | SYS_io_uring_setup, 1, NULL), X32_DENIED);
	return 0;
}

static int child_compat_abis(void)
{
	CHILD_CHECK(int80(I386_GETPID, 0, 0, 0) == getpid());
	CHILD_CHECK(int80(I386_KEYCTL, 0, -3, 0) == -EPERM);
	CHILD_CHECK(int80(I386_UNSHARE, CLONE_NEWUSER, 0, 0) == -EPERM);
	if (child_compat_sockets() != 0)
		return 1;
	/* x32: in the filter where the kernel runs it, so allowed calls reach
	 * the kernel and denied ones get EPERM, not SIGSYS; where it does not,
	 * the prefix answers every x32 number ENOSYS, as the kernel would. */
	errno = 0;
	long r = syscall(X32_BIT | SYS_getpid);
	CHILD_CHECK(r == getpid() || (r == -1 && errno == ENOSYS));
	CHILD_ERRNO(syscall(X32_BIT | SYS_keyctl, 0, -3, 0), X32_DENIED);
	return 0;
}

/* ---- syscalls newer than the profile: ENOSYS, not EPERM ---- */

enum newcall_rule { ALLOWED, NEEDS_SYS_ADMIN, NOT_IN_TABLE };

/* Syscalls from Linux 6.5 on, with arguments the kernel rejects harmlessly.
 * Their numbers are the same for x86_64, i386 and x32 (common since 424). */
static const struct newcall {
	const char *name;
	long nr;
	enum newcall_rule rule;
	int n_args;
	long args[6];
} newcalls[] = {
    {"cachestat", 451, ALLOWED, 4, {-1}},
    {"fchmodat2", 452, ALLOWED, 4, {AT_FDCWD, 0 /* NULL path */, 0644}},
    {"map_shadow_stack", 453, ALLOWED, 3, {0}},
    {"futex_wake", 454, ALLOWED, 4, {0}},
    {"futex_wait", 455, ALLOWED, 6, {0}},
    {"futex_requeue", 456, ALLOWED, 4, {0}},
    {"statmount", 457, ALLOWED, 4, {0}},
    {"listmount", 458, ALLOWED, 4, {0}},
    {"lsm_get_self_attr", 459, NEEDS_SYS_ADMIN, 4, {0}},
    {"lsm_set_self_attr", 460, NEEDS_SYS_ADMIN, 4, {0}},
    {"lsm_list_modules", 461, NEEDS_SYS_ADMIN, 3, {0}},
    {"mseal", 462, ALLOWED, 3, {0}},
    {"setxattrat", 463, ALLOWED, 6, {-1}},
    {"getxattrat", 464, ALLOWED, 6, {-1}},
    {"listxattrat", 465, ALLOWED, 5, {-1}},
    {"removexattrat", 466, ALLOWED, 4, {-1}},
    {"open_tree_attr", 467, NOT_IN_TABLE, 5, {-1}},
    {"file_getattr", 468, NOT_IN_TABLE, 5, {-1}},
    {"file_setattr", 469, NOT_IN_TABLE, 5, {-1}},
};
#define N_NEWCALLS ARRAY_SIZE(newcalls)

/* What the kernel itself answers (no filter), in shared memory so that a
 * child can record it: 0 for success, else the errno. */
struct kernel_answers {
	int x86_64[N_NEWCALLS];
	int i386[N_NEWCALLS];
};
static struct kernel_answers *kernel_answers;
static bool with_sys_admin; /* the caps of the filter the next child loads */
static bool have_i386;

static long call_x86_64(const struct newcall *c)
{
	const long *a = c->args;
	return syscall(c->nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* i386 passes five arguments in registers here (ebp is the frame pointer):
 * calls with six are left to the x86_64 check. */
static bool i386_callable(const struct newcall *c)
{
	return c->n_args <= 5;
}

static long call_i386(const struct newcall *c)
{
	const long *a = c->args;
	return int80_5(c->nr, a[0], a[1], a[2], a[3], a[4]);
}

static int child_record_kernel_answers(void)
{
	for (size_t i = 0; i < N_NEWCALLS; i++) {
		errno = 0;
		kernel_answers->x86_64[i] = call_x86_64(&newcalls[i]) == -1 ? errno : 0;
		if (have_i386 && i386_callable(&newcalls[i])) {
			long r = call_i386(&newcalls[i]);
			kernel_answers->i386[i] = r < 0 && r > -4096 ? (int)-r : 0;
		}
	}
	return 0;
}

/* The answer through the filter: ENOSYS when the installed libseccomp does
 * not know the name (so the profile cannot allow it) or the table does not
 * name it; EPERM when the table denies it to these capabilities; else the
 * kernel's own answer. */
static int expected_errno(const struct newcall *c, uint32_t scmp_arch, int kernel_answer)
{
	if (c->rule == NOT_IN_TABLE ||
	    seccomp_syscall_resolve_name_arch(scmp_arch, c->name) != c->nr)
		return ENOSYS;
	if (c->rule == NEEDS_SYS_ADMIN && !with_sys_admin)
		return EPERM;
	return kernel_answer;
}

static int check_answer(const char *abi, const struct newcall *c, long r, int got, int want)
{
	int got_errno = (r == -1 || (r < 0 && r > -4096)) ? got : 0;
	if (got_errno == want)
		return 0;
	dprintf(2, "%s %s (%ld): got %s, expected %s\n", abi, c->name, c->nr,
		got_errno ? strerror(got_errno) : "success", want ? strerror(want) : "success");
	return 1;
}

static int child_new_syscalls(void)
{
	int failed = 0;
	for (size_t i = 0; i < N_NEWCALLS; i++) {
		const struct newcall *c = &newcalls[i];
		errno = 0;
		long r = call_x86_64(c);
		failed |=
		    check_answer("x86_64", c, r, errno,
				 expected_errno(c, SCMP_ARCH_X86_64, kernel_answers->x86_64[i]));
		if (have_i386 && i386_callable(c)) {
			r = call_i386(c);
			failed |=
			    check_answer("i386", c, r, (int)-r,
					 expected_errno(c, SCMP_ARCH_X86, kernel_answers->i386[i]));
		}
	}
	/* Far above anything the table names. */
	CHILD_ERRNO(syscall(1000), ENOSYS);
	CHILD_ERRNO(syscall(X32_BIT - 1), ENOSYS);
	/* Denied on purpose, and known: still EPERM. */
	CHILD_ERRNO(syscall(SYS_keyctl, 0, -3, 0), EPERM);
	CHILD_ERRNO(syscall(SYS_add_key, "user", "hutch", "x", 1, 0), EPERM);
	CHILD_CHECK(syscall(SYS_getpid) == getpid());
	if (have_i386) {
		CHILD_CHECK(int80(1000, 0, 0, 0) == -ENOSYS);
		CHILD_CHECK(int80(I386_KEYCTL, 0, -3, 0) == -EPERM);
		CHILD_CHECK(int80(I386_GETPID, 0, 0, 0) == getpid());
	}
	return failed;
}

static int child_without_prefix(void)
{
	CHILD_ERRNO(syscall(1000), EPERM);
	CHILD_ERRNO(syscall(469, -1, 0, 0, 0, 0), EPERM);
	/* x32 left out (a kernel without it): libseccomp alone would kill it */
	if (seccomp_kernel_runs_x32())
		CHILD_ERRNO(syscall(X32_BIT | 500), EPERM);
	if (have_i386)
		CHILD_CHECK(int80(1000, 0, 0, 0) == -EPERM);
	return 0;
}

/* x32 shares AUDIT_ARCH_X86_64 and sets bit 30 of the number; its own
 * variants (readv, ioctl, execve... 512-547) lie above every new syscall, so
 * the prefix gives them an interval of their own. The kernel here may lack
 * the x32 ABI: what reaches it answers ENOSYS then, but never EPERM. */
static int child_x32_new_syscalls(void)
{
	CHILD_ERRNO(syscall(X32_BIT | 1000), ENOSYS); /* above the x32 block */
	CHILD_ERRNO(syscall(X32_BIT | 600), ENOSYS);  /* likewise */
	CHILD_ERRNO(syscall(X32_BIT | 500), ENOSYS);  /* between the common table and 512 */
	CHILD_ERRNO(syscall(X32_BIT | 469), ENOSYS);  /* file_setattr: not in the table */
	CHILD_ERRNO(syscall(X32_BIT | SYS_keyctl, 0, -3, 0), X32_DENIED);
	CHILD_ERRNO(syscall(X32_BIT | SYS_add_key, 0, 0, 0, 0, 0), X32_DENIED);
	/* x32 readv (515), in the block and allowed: the kernel's answer. */
	errno = 0;
	long r = syscall(X32_BIT | 515, -1, NULL, 0);
	CHILD_CHECK(r == -1 && (errno == EBADF || errno == ENOSYS));
	return 0;
}
#endif

#define RET_ENOSYS (SECCOMP_RET_ERRNO | ENOSYS)
#define RET_EPERM  (SECCOMP_RET_ERRNO | EPERM)
#define RET_FILTER 0x7fff0000U /* stands for "on to libseccomp's program" */

/* The prefix for the ABIs of an x86_64 host, as seccomp_build_default
 * orders them (native, then compat); the program starts with it. */
static const uint32_t x86_arches[] = {SCMP_ARCH_X86_64, SCMP_ARCH_X86, SCMP_ARCH_X32};

static unsigned x86_prefix(struct sock_filter out[SECCOMP_ENOSYS_PREFIX_MAX])
{
	int n = seccomp_enosys_prefix(x86_arches, ARRAY_SIZE(x86_arches), out);
	assert_true(n > 0);
	return (unsigned)n;
}

#if defined(__x86_64__)
/* p as libseccomp exported it, the prefix cut off (checking it is there). */
static struct seccomp_prog without_prefix(const struct seccomp_prog *p)
{
	struct sock_filter prefix[SECCOMP_ENOSYS_PREFIX_MAX];
	/* as seccomp_build_default chooses: x32 left out where the kernel lacks it */
	bool x32 = seccomp_kernel_runs_x32();
	int built = seccomp_enosys_prefix_without(x86_arches, ARRAY_SIZE(x86_arches) - !x32,
						  x32 ? 0 : SCMP_ARCH_X32, prefix);
	assert_true(built > 0);
	unsigned n_prefix = (unsigned)built;
	assert_true(n_prefix > 0 && n_prefix < p->n_insns);
	assert_memory_equal(p->insns, prefix, n_prefix * sizeof(*prefix));
	unsigned n = p->n_insns - n_prefix;
	struct seccomp_prog bare = {.insns = xcalloc(n, sizeof(*p->insns)), .n_insns = n};
	memcpy(bare.insns, p->insns + n_prefix, n * sizeof(*p->insns));
	return bare;
}
#endif

/* ---- tests ---- */

static void test_default_denies(void **state)
{
	if (!is_root())
		skip();
	assert_int_equal(in_filtered_child(&default_prog, child_denied_by_default), 0);
}

static void test_sysadmin_allows_mount(void **state)
{
	if (!is_root())
		skip();
	/* Without a filter the same calls give the kernel's own answers. */
	assert_int_equal(in_filtered_child(NULL, child_kernel_answers), 0);
	assert_int_equal(in_filtered_child(&sysadmin_prog, child_allowed_with_sysadmin), 0);
}

static void test_caps_widen_and_narrow(void **state)
{
	if (!is_root())
		skip();
	assert_int_equal(in_filtered_child(&nocaps_prog, child_no_caps), 0);
	assert_int_equal(in_filtered_child(&ptrace_prog, child_ptrace_caps), 0);
}

static void test_personality(void **state)
{
	assert_int_equal(in_filtered_child(&default_prog, child_personality), 0);
}

static void test_sockets(void **state)
{
	assert_int_equal(in_filtered_child(NULL, child_sockets_unfiltered), 0);
	assert_int_equal(in_filtered_child(&default_prog, child_sockets), 0);
	/* No capability opens them. */
	assert_int_equal(in_filtered_child(&sysadmin_prog, child_sockets), 0);
}

static void test_processes_and_threads(void **state)
{
	assert_int_equal(in_filtered_child(&default_prog, child_processes_and_threads), 0);
}

static void test_compat_abis(void **state)
{
#if defined(__x86_64__)
	if (in_filtered_child(NULL, child_i386_probe) != 0)
		skip(); /* kernel without IA32 emulation */
	assert_int_equal(in_filtered_child(NULL, child_compat_unfiltered), 0);
	assert_int_equal(in_filtered_child(&default_prog, child_compat_abis), 0);
	assert_int_equal(in_filtered_child(&sysadmin_prog, child_compat_sockets), 0);
#else
	skip();
#endif
}

static void test_new_syscalls_enosys(void **state)
{
#if defined(__x86_64__)
	have_i386 = in_filtered_child(NULL, child_i386_probe) == 0;
	assert_int_equal(in_filtered_child(NULL, child_record_kernel_answers), 0);
	/* The fixtures come from the cache, so this checks what it stores too. */
	assert_true(default_prog.from_cache && sysadmin_prog.from_cache);
	with_sys_admin = false;
	assert_int_equal(in_filtered_child(&default_prog, child_new_syscalls), 0);
	assert_int_equal(in_filtered_child(&nocaps_prog, child_new_syscalls), 0);
	with_sys_admin = true;
	assert_int_equal(in_filtered_child(&sysadmin_prog, child_new_syscalls), 0);
	/* Without the prefix the same calls were EPERM. */
	struct seccomp_prog bare = without_prefix(&default_prog);
	assert_int_equal(in_filtered_child(&bare, child_without_prefix), 0);
	seccomp_prog_free(&bare);
#else
	skip();
#endif
}

static void test_x32_new_syscalls_enosys(void **state)
{
#if defined(__x86_64__)
	assert_int_equal(in_filtered_child(&default_prog, child_x32_new_syscalls), 0);
#else
	skip();
#endif
}

/* ---- the prefix alone, run by a small classic-BPF interpreter ---- */

/* Runs prog (the instructions seccomp programs here use) on one syscall; a
 * jump or load out of bounds or an unknown instruction fails the test. */
static uint32_t run_bpf_data(const struct sock_filter *prog, unsigned n,
			     const struct seccomp_data *data)
{
	const struct seccomp_data d = *data;
	uint32_t a = 0;
	for (unsigned pc = 0; pc < n; pc++) {
		const struct sock_filter *f = &prog[pc];
		switch (f->code) {
		case BPF_LD | BPF_W | BPF_ABS:
			assert_true(f->k + 4 <= sizeof(d) && f->k % 4 == 0);
			memcpy(&a, (const char *)&d + f->k, 4);
			break;
		case BPF_JMP | BPF_JA:
			pc += f->k;
			break;
		case BPF_JMP | BPF_JEQ | BPF_K:
			pc += a == f->k ? f->jt : f->jf;
			break;
		case BPF_JMP | BPF_JGT | BPF_K:
			pc += a > f->k ? f->jt : f->jf;
			break;
		case BPF_JMP | BPF_JGE | BPF_K:
			pc += a >= f->k ? f->jt : f->jf;
			break;
		case BPF_JMP | BPF_JSET | BPF_K:
			pc += (a & f->k) ? f->jt : f->jf;
			break;
		case BPF_RET | BPF_K:
			return f->k;
		default:
			fail_msg("instruction %u: unexpected code 0x%x", pc, f->code);
		}
	}
	fail_msg("ran off the end of the program");
	return 0;
}

static uint32_t run_bpf(const struct sock_filter *prog, unsigned n, uint32_t arch, uint32_t nr)
{
	struct seccomp_data d = {.nr = (int)nr, .arch = arch};
	return run_bpf_data(prog, n, &d);
}

struct prefix_case {
	uint32_t arch, nr, want;
	uint64_t a0; /* the first argument */
};

/* Build the prefix for arches, put "ret FILTER" after it, run the cases. */
static void check_prefix_without(const uint32_t *arches, size_t n_arches, uint32_t enosys_arch,
				 const struct prefix_case *cases, size_t n_cases)
{
	struct sock_filter prog[SECCOMP_ENOSYS_PREFIX_MAX + 1];
	int n = seccomp_enosys_prefix_without(arches, n_arches, enosys_arch, prog);
	assert_true(n > 0 && n <= SECCOMP_ENOSYS_PREFIX_MAX);
	assert_int_equal(prog[n - 1].code, BPF_RET | BPF_K);
	assert_int_equal(prog[n - 1].k, RET_ENOSYS);
	prog[n] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_FILTER);
	for (size_t i = 0; i < n_cases; i++) {
		struct seccomp_data d = {
		    .nr = (int)cases[i].nr, .arch = cases[i].arch, .args = {cases[i].a0}};
		uint32_t got = run_bpf_data(prog, (unsigned)n + 1, &d);
		if (got != cases[i].want)
			fail_msg("arch 0x%x nr 0x%x a0 0x%llx: got 0x%x, expected 0x%x",
				 cases[i].arch, cases[i].nr, (unsigned long long)cases[i].a0, got,
				 cases[i].want);
	}
	/* Whatever the number (and, for a refusal, the argument), the prefix
	 * refuses or goes on. */
	for (size_t a = 0; a < n_arches; a++)
		for (uint64_t nr = 0; nr <= 0xffffffffULL; nr += 0x10001) {
			uint32_t got = run_bpf(prog, (unsigned)n + 1, arches[a], (uint32_t)nr);
			assert_true(got == RET_FILTER || got == RET_ENOSYS);
			const uint64_t a0s[] = {1, AF_ALG, AF_VSOCK, HI_BIT | AF_VSOCK};
			for (size_t i = 0; i < ARRAY_SIZE(a0s); i++) {
				struct seccomp_data d = {
				    .nr = (int)nr, .arch = arches[a], .args = {a0s[i]}};
				got = run_bpf_data(prog, (unsigned)n + 1, &d);
				assert_true(got == RET_FILTER || got == RET_ENOSYS ||
					    got == RET_EPERM);
			}
		}
}

static void check_prefix(const uint32_t *arches, size_t n_arches, const struct prefix_case *cases,
			 size_t n_cases)
{
	check_prefix_without(arches, n_arches, 0, cases, n_cases);
}

/* The highest number of these names libseccomp resolves for arch. */
static uint32_t max_resolved(uint32_t arch, const char *const *names)
{
	int max = -1;
	for (; *names; names++) {
		int nr = seccomp_syscall_resolve_name_arch(arch, *names);
		if (nr > max)
			max = nr;
	}
	assert_true(max >= 0);
	return (uint32_t)max;
}

static void test_prefix_x86(void **state)
{
	const uint32_t *arches = x86_arches;
	/* Names in the table that every libseccomp hutch builds with knows. */
	const char *const known[] = {"futex_waitv", "set_mempolicy_home_node", "read", NULL};
	const uint32_t x64 = max_resolved(SCMP_ARCH_X86_64, known);
	const uint32_t i386 = max_resolved(SCMP_ARCH_X86, known);
	const uint32_t x32 = max_resolved(SCMP_ARCH_X32, known);
	const uint32_t audit64 = AUDIT_ARCH_X86_64, audit32 = AUDIT_ARCH_I386;
	const uint32_t bit = 0x40000000;
	const struct prefix_case cases[] = {
	    {audit64, 0, RET_FILTER, 0},
	    {audit64, x64, RET_FILTER, 0},
	    {audit64, 1000, RET_ENOSYS, 0},
	    {audit64, bit - 1, RET_ENOSYS, 0},
	    {audit64, 0xffffffff, RET_ENOSYS, 0}, /* -1 */
	    {audit64, 469, RET_ENOSYS, 0},	  /* file_setattr: not in the table */
	    {audit32, 0, RET_FILTER, 0},
	    {audit32, i386, RET_FILTER, 0},
	    {audit32, 1000, RET_ENOSYS, 0},
	    {audit32, bit | 1, RET_ENOSYS, 0},
	    {audit64, bit | 0, RET_FILTER, 0},
	    {audit64, x32, RET_FILTER, 0},
	    {audit64, bit | 469, RET_ENOSYS, 0},
	    {audit64, bit | 511, RET_ENOSYS, 0},
	    {audit64, bit | 512, RET_FILTER, 0}, /* x32 rt_sigaction */
	    {audit64, bit | 547, RET_FILTER, 0}, /* x32 pwritev2 */
	    {audit64, bit | 548, RET_ENOSYS, 0},
	    {audit64, bit | 1000, RET_ENOSYS, 0},
	    /* Other arches are libseccomp's business (a bad arch). */
	    {AUDIT_ARCH_AARCH64, 1000, RET_FILTER, 0},
	    {0, 1000, RET_FILTER, 0},
	    /* socket(2) by the int the kernel reads: AF_ALG, AF_VSOCK refused. */
	    {audit64, 41, RET_EPERM, AF_VSOCK},
	    {audit64, 41, RET_EPERM, AF_ALG},
	    {audit64, 41, RET_EPERM, HI_BIT | AF_VSOCK},
	    {audit64, 41, RET_EPERM, 0xffffffff00000000ULL | AF_ALG},
	    {audit64, 41, RET_FILTER, AF_INET},
	    {audit64, 41, RET_FILTER, AF_ALG + 1},
	    {audit64, 41, RET_FILTER, AF_VSOCK + 1},
	    {audit64, 40, RET_FILTER, AF_VSOCK}, /* sendfile */
	    {audit64, 102, RET_FILTER, 1},	 /* getuid: socketcall is i386's */
	    {audit64, bit | 41, RET_EPERM, AF_VSOCK},
	    {audit64, bit | 41, RET_EPERM, HI_BIT | AF_ALG},
	    {audit64, bit | 41, RET_FILTER, AF_UNIX},
	    {audit32, 359, RET_EPERM, AF_VSOCK},
	    {audit32, 359, RET_EPERM, AF_ALG},
	    {audit32, 359, RET_FILTER, AF_INET},
	    /* socketcall(SYS_SOCKET), whatever the family in memory: ENOSYS;
	     * its other calls go on (connect, socketpair). */
	    {audit32, 102, RET_ENOSYS, 1},
	    {audit32, 102, RET_FILTER, 3},
	    {audit32, 102, RET_FILTER, 8},
	    {audit32, 41, RET_FILTER, AF_VSOCK}, /* i386 dup */
	};
	check_prefix(arches, ARRAY_SIZE(x86_arches), cases, ARRAY_SIZE(cases));
	/* The horizon is the table's, as this libseccomp resolves it:
	 * fchmodat2 is below it exactly when libseccomp knows the name (and
	 * the profile then allows it). */
	struct sock_filter prog[SECCOMP_ENOSYS_PREFIX_MAX + 1];
	unsigned n = x86_prefix(prog);
	prog[n] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_FILTER);
	bool known_fchmodat2 =
	    seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, "fchmodat2") == 452;
	assert_int_equal(run_bpf(prog, n + 1, audit64, 452),
			 known_fchmodat2 ? RET_FILTER : RET_ENOSYS);
	/* x86_64 alone: x32 numbers are libseccomp's to kill. */
	const struct prefix_case only64[] = {{audit64, bit | 1000, RET_FILTER, 0},
					     {audit64, 1000, RET_ENOSYS, 0}};
	check_prefix(arches, 1, only64, ARRAY_SIZE(only64));
	/* x32 left out as the kernel lacks it: every x32 number ENOSYS, as the
	 * kernel would say (no kill, no EPERM), the others as before. */
	const struct prefix_case nox32[] = {
	    {audit64, bit | 0, RET_ENOSYS, 0},
	    {audit64, bit | 39, RET_ENOSYS, 0},
	    {audit64, bit | 512, RET_ENOSYS, 0},
	    {audit64, bit | 1000, RET_ENOSYS, 0},
	    {audit64, bit | 41, RET_ENOSYS, AF_VSOCK},
	    {audit64, 0xffffffff, RET_ENOSYS, 0},
	    {audit64, 0, RET_FILTER, 0},
	    {audit64, x64, RET_FILTER, 0},
	    {audit64, 41, RET_EPERM, AF_VSOCK},
	    {audit64, 1000, RET_ENOSYS, 0},
	    {audit32, 0, RET_FILTER, 0},
	    {audit32, 359, RET_EPERM, AF_VSOCK},
	};
	check_prefix_without(arches, 2, SCMP_ARCH_X32, nox32, ARRAY_SIZE(nox32));
}

static void test_prefix_other_arches(void **state)
{
	const uint32_t arm[] = {SCMP_ARCH_AARCH64, SCMP_ARCH_ARM};
	const struct prefix_case arm_cases[] = {
	    {AUDIT_ARCH_AARCH64, 0, RET_FILTER, 0},
	    {AUDIT_ARCH_AARCH64, 449, RET_FILTER, 0}, /* futex_waitv */
	    {AUDIT_ARCH_AARCH64, 1000, RET_ENOSYS, 0},
	    {AUDIT_ARCH_ARM, 3, RET_FILTER, 0},
	    {AUDIT_ARCH_ARM, 449, RET_FILTER, 0},
	    {AUDIT_ARCH_ARM, 1000, RET_ENOSYS, 0},     /* between the table and ARM's own */
	    {AUDIT_ARCH_ARM, 0x0f0001, RET_FILTER, 0}, /* breakpoint */
	    {AUDIT_ARCH_ARM, 0x0f0005, RET_FILTER, 0}, /* set_tls */
	    {AUDIT_ARCH_ARM, 0x0f0100, RET_ENOSYS, 0},
	    {AUDIT_ARCH_X86_64, 1000, RET_FILTER, 0},
	};
	check_prefix(arm, ARRAY_SIZE(arm), arm_cases, ARRAY_SIZE(arm_cases));
	const struct prefix_case arm_sockets[] = {
	    {AUDIT_ARCH_AARCH64, 198, RET_EPERM, AF_VSOCK},
	    {AUDIT_ARCH_AARCH64, 198, RET_EPERM, HI_BIT | AF_ALG},
	    {AUDIT_ARCH_AARCH64, 198, RET_FILTER, AF_INET},
	    {AUDIT_ARCH_ARM, 281, RET_EPERM, AF_VSOCK},
	    {AUDIT_ARCH_ARM, 281, RET_FILTER, AF_INET},
	};
	check_prefix(arm, ARRAY_SIZE(arm), arm_sockets, ARRAY_SIZE(arm_sockets));
	const uint32_t riscv[] = {SCMP_ARCH_RISCV64};
	const struct prefix_case riscv_cases[] = {
	    {AUDIT_ARCH_RISCV64, 198, RET_EPERM, AF_VSOCK},
	    {AUDIT_ARCH_RISCV64, 259, RET_FILTER, 0}, /* riscv_flush_icache */
	    {AUDIT_ARCH_RISCV64, 449, RET_FILTER, 0},
	    {AUDIT_ARCH_RISCV64, 1000, RET_ENOSYS, 0},
	};
	check_prefix(riscv, 1, riscv_cases, ARRAY_SIZE(riscv_cases));
	const uint32_t ppc[] = {SCMP_ARCH_PPC64LE};
	const struct prefix_case ppc_cases[] = {
	    {AUDIT_ARCH_PPC64LE, 449, RET_FILTER, 0},
	    {AUDIT_ARCH_PPC64LE, 1000, RET_ENOSYS, 0},
	    /* ppc64 has socketcall too, and socket(2) as 326 */
	    {AUDIT_ARCH_PPC64LE, 102, RET_ENOSYS, 1},
	    {AUDIT_ARCH_PPC64LE, 102, RET_FILTER, 3},
	    {AUDIT_ARCH_PPC64LE, 326, RET_EPERM, AF_VSOCK},
	    {AUDIT_ARCH_PPC64LE, 326, RET_FILTER, AF_INET},
	};
	check_prefix(ppc, 1, ppc_cases, ARRAY_SIZE(ppc_cases));
	/* No layout for s390x (unknown numbers arrive as 0 there): none. */
	struct sock_filter prog[SECCOMP_ENOSYS_PREFIX_MAX];
	const uint32_t s390[] = {SCMP_ARCH_S390X, SCMP_ARCH_S390};
	assert_int_equal(seccomp_enosys_prefix(s390, ARRAY_SIZE(s390), prog), 0);
	assert_int_equal(seccomp_enosys_prefix(NULL, 0, prog), 0);
}

static int child_install(void)
{
	struct hutch_err *err = NULL;
	if (seccomp_install_default(HUTCH_DEFAULT_CAPS, cache_dir, &err) < 0) {
		hutch_err_print("install", err);
		return 2;
	}
	CHILD_ERRNO(syscall(SYS_keyctl, 0, -3, 0), EPERM);
	CHILD_CHECK(syscall(SYS_getpid) > 0);
	return 0;
}

static void test_install_default(void **state)
{
	assert_int_equal(in_filtered_child(NULL, child_install), 0);
}

static void test_load_nothing(void **state)
{
	struct hutch_err *err = NULL;
	struct seccomp_prog empty = {0};
	assert_int_equal(seccomp_load_prepared(&empty, NULL, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->errno_, EINVAL);
	hutch_err_free(&err);
}

static void test_rules_and_arches(void **state)
{
	struct hutch_err *err = NULL;
	struct seccomp_prog p;
	assert_int_equal(seccomp_build_default(HUTCH_DEFAULT_CAPS, &p, &err), 0);
	assert_false(p.from_cache);
	assert_true(p.n_rules > 300);
	assert_true(p.n_insns > 0 && p.n_insns <= BPF_MAXINSNS);
#if defined(__x86_64__)
	/* The prefix, then libseccomp's program; built and from the cache. */
	struct seccomp_prog bare = without_prefix(&p);
	seccomp_prog_free(&bare);
	bare = without_prefix(&default_prog);
	seccomp_prog_free(&bare);
#endif
	/* Same input, same program: the cache depends on it. */
	struct seccomp_prog q;
	assert_int_equal(seccomp_build_default(HUTCH_DEFAULT_CAPS, &q, &err), 0);
	assert_int_equal(p.n_insns, q.n_insns);
	assert_memory_equal(p.insns, q.insns, p.n_insns * sizeof(struct sock_filter));
	seccomp_prog_free(&q);
	/* More capabilities, more rules. */
	assert_int_equal(seccomp_build_default(SYSADMIN_CAPS, &q, &err), 0);
	assert_true(q.n_rules > p.n_rules);
	seccomp_prog_free(&q);
	seccomp_prog_free(&p);
}

/* ---- cache ---- */

static char *read_all(const char *path, size_t *len)
{
	char *buf = NULL;
	struct hutch_err *err = NULL;
	if (read_file_at(AT_FDCWD, path, &buf, len, &err) < 0) {
		hutch_err_free(&err);
		return NULL;
	}
	return buf;
}

static void write_bytes(const char *path, const void *buf, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, buf, len), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static char *fresh_dir(const char *name)
{
	char *dir = xasprintf("%s/%s", cache_dir, name);
	struct hutch_err *err = NULL;
	assert_int_equal(remove_tree_at(AT_FDCWD, dir, &err), 0);
	return dir;
}

static void test_cache_hit(void **state)
{
	_cleanup_free_ char *dir = fresh_dir("hit/nested"); /* created on demand */
	struct hutch_err *err = NULL;
	struct seccomp_prog first, second;
	assert_int_equal(seccomp_prepare_default(HUTCH_DEFAULT_CAPS, dir, &first, &err), 0);
	assert_false(first.from_cache);
	_cleanup_free_ char *path = seccomp_cache_path(HUTCH_DEFAULT_CAPS, dir);
	size_t len1 = 0, len2 = 0;
	_cleanup_free_ char *bytes1 = read_all(path, &len1);
	assert_non_null(bytes1);
	assert_int_equal(len1 % sizeof(struct sock_filter), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);

	assert_int_equal(seccomp_prepare_default(HUTCH_DEFAULT_CAPS, dir, &second, &err), 0);
	assert_true(second.from_cache);
	assert_int_equal(second.n_insns, first.n_insns);
	assert_int_equal(second.n_rules, first.n_rules);
	assert_memory_equal(second.insns, first.insns, first.n_insns * sizeof(struct sock_filter));
	_cleanup_free_ char *bytes2 = read_all(path, &len2);
	assert_int_equal(len1, len2);
	assert_memory_equal(bytes1, bytes2, len1);
	seccomp_prog_free(&first);
	seccomp_prog_free(&second);
}

static void test_cache_key(void **state)
{
	_cleanup_free_ char *a = seccomp_cache_path(HUTCH_DEFAULT_CAPS, "/c");
	_cleanup_free_ char *b = seccomp_cache_path(SYSADMIN_CAPS, "/c");
	/* CAP_NET_ADMIN changes nothing in the profile, so not the file either. */
	_cleanup_free_ char *c =
	    seccomp_cache_path(HUTCH_DEFAULT_CAPS | (1ULL << CAP_NET_ADMIN), "/c");
	assert_string_not_equal(a, b);
	assert_string_equal(a, c);
	assert_true(strncmp(a, "/c/default-", 11) == 0);
}

/* The key covers the table itself: any change to a rule, as an upgrade of
 * hutch brings, names another cache file, so the old filter is never served. */
static void test_cache_key_covers_the_table(void **state)
{
	size_t n = 0;
	const struct rule_group *table = seccomp_default_table(&n);
	assert_true(n > 10);
	const uint32_t v = HUTCH_SECCOMP_PROFILE_VERSION;
	const uint64_t caps = HUTCH_DEFAULT_CAPS;
	const uint64_t key = seccomp_table_key(table, n, v, caps);
	_cleanup_free_ char *path = seccomp_cache_path(caps, "/c");
	_cleanup_free_ char *want = xasprintf("/c/default-%016llx.bpf", (unsigned long long)key);
	assert_string_equal(path, want);

	struct rule_group *copy = xcalloc(n, sizeof(*copy));
	memcpy(copy, table, n * sizeof(*copy));
	assert_true(seccomp_table_key(copy, n, v, caps) == key);
	/* The group with socket's AF_VSOCK refusal, and the first group. */
	size_t vsock = n;
	for (size_t i = 0; i < n; i++)
		if (table[i].prefix && !strcmp(table[i].names[0], "socket") &&
		    table[i].args[0].datum_a == AF_VSOCK)
			vsock = i;
	assert_true(vsock < n);
	const char *const fewer[] = {"accept", NULL}, *const renamed[] = {"socketcall", NULL};
	const char *const changes[] = {"an argument", "the action", "prefix",
				       "a condition", "names",	    "a name"};
	for (size_t c = 0; c < ARRAY_SIZE(changes); c++) {
		memcpy(copy, table, n * sizeof(*copy));
		struct rule_group *g = &copy[vsock];
		switch (c) {
		case 0:
			g->args[0].datum_a = AF_VSOCK + 1;
			break;
		case 1:
			g->action = SCMP_ACT_ERRNO(ENOSYS);
			break;
		case 2:
			g->prefix = false;
			break;
		case 3:
			g->unless_caps = 1ULL << CAP_NET_ADMIN;
			break;
		case 4:
			copy[0].names = fewer; /* the big allow list, cut short */
			break;
		case 5:
			g->names = renamed;
			break;
		}
		if (seccomp_table_key(copy, n, v, caps) == key)
			fail_msg("changing %s left the cache key as it was", changes[c]);
	}
	/* A group fewer, and an older version of what the prefix does. */
	assert_true(seccomp_table_key(table, n - 1, v, caps) != key);
	assert_true(seccomp_table_key(table, n, v - 1, caps) != key);
	free(copy);
}

/* The table as this issue left it: no io_uring, no socketcall but what the
 * prefix refuses, and prefix groups with one argument and no conditions. */
static void test_table_io_uring_and_socketcall(void **state)
{
	size_t n = 0;
	const struct rule_group *table = seccomp_default_table(&n);
	const char *const never[] = {"io_uring_setup", "io_uring_enter", "io_uring_register"};
	unsigned socketcall_refusals = 0;
	for (size_t i = 0; i < n; i++) {
		const struct rule_group *g = &table[i];
		for (const char *const *name = g->names; *name; name++) {
			for (size_t k = 0; k < ARRAY_SIZE(never); k++)
				if (!strcmp(*name, never[k]))
					fail_msg("%s is in the table", *name);
			if (!strcmp(*name, "socketcall")) {
				assert_true(g->prefix);
				assert_int_equal(g->action, SCMP_ACT_ERRNO(ENOSYS));
				assert_int_equal(g->args[0].datum_a, 1 /* SYS_SOCKET */);
				socketcall_refusals++;
			}
		}
		if (g->prefix) {
			assert_int_equal(g->n_args, 1);
			assert_true(!g->if_caps && !g->unless_caps && !g->if_arches &&
				    !g->unless_arches);
			assert_int_equal(g->action & SECCOMP_RET_ACTION_FULL, SECCOMP_RET_ERRNO);
		}
	}
	assert_int_equal(socketcall_refusals, 1);
}

/* Each damaged cache file must be ignored, then replaced by a good one. */
static void check_damage_is_repaired(const char *dir, const char *path, const char *good,
				     size_t good_len, const void *bad, size_t bad_len,
				     mode_t bad_mode)
{
	struct hutch_err *err = NULL;
	struct seccomp_prog p;
	write_bytes(path, bad, bad_len, bad_mode);
	assert_int_equal(seccomp_prepare_default(HUTCH_DEFAULT_CAPS, dir, &p, &err), 0);
	assert_false(p.from_cache);
	seccomp_prog_free(&p);
	size_t len = 0;
	_cleanup_free_ char *now = read_all(path, &len);
	assert_int_equal(len, good_len);
	assert_memory_equal(now, good, good_len);
	assert_int_equal(seccomp_prepare_default(HUTCH_DEFAULT_CAPS, dir, &p, &err), 0);
	assert_true(p.from_cache);
	seccomp_prog_free(&p);
}

static void test_cache_corrupt(void **state)
{
	_cleanup_free_ char *dir = fresh_dir("corrupt");
	struct hutch_err *err = NULL;
	struct seccomp_prog p;
	assert_int_equal(seccomp_prepare_default(HUTCH_DEFAULT_CAPS, dir, &p, &err), 0);
	seccomp_prog_free(&p);
	_cleanup_free_ char *path = seccomp_cache_path(HUTCH_DEFAULT_CAPS, dir);
	size_t len = 0;
	_cleanup_free_ char *good = read_all(path, &len);
	assert_non_null(good);
	const size_t insn = sizeof(struct sock_filter);

	check_damage_is_repaired(dir, path, good, len, "", 0, 0644);	     /* empty */
	check_damage_is_repaired(dir, path, good, len, good, 7, 0644);	     /* short */
	check_damage_is_repaired(dir, path, good, len, good, len - 3, 0644); /* not whole insns */
	check_damage_is_repaired(dir, path, good, len, good, len - insn, 0644); /* one insn short */
	check_damage_is_repaired(dir, path, good, len, good, 4 * insn, 0644);	/* header only */
	_cleanup_free_ char *flipped = xcalloc(1, len);
	memcpy(flipped, good, len);
	flipped[len / 2] ^= 0x10; /* same size, one bit off */
	check_damage_is_repaired(dir, path, good, len, flipped, len, 0644);
	_cleanup_free_ char *huge = xcalloc(BPF_MAXINSNS + 8, insn);
	memcpy(huge, good, len);
	check_damage_is_repaired(dir, path, good, len, huge, (BPF_MAXINSNS + 8) * insn, 0644);
	check_damage_is_repaired(dir, path, good, len, good, len, 0666); /* others may write it */

	/* A file of another key (e.g. an older profile) under this name. */
	_cleanup_free_ char *other = seccomp_cache_path(SYSADMIN_CAPS, dir);
	assert_int_equal(seccomp_prepare_default(SYSADMIN_CAPS, dir, &p, &err), 0);
	seccomp_prog_free(&p);
	size_t other_len = 0;
	_cleanup_free_ char *other_bytes = read_all(other, &other_len);
	check_damage_is_repaired(dir, path, good, len, other_bytes, other_len, 0644);

	/* A symlink is not followed. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink(other, path), 0);
	assert_int_equal(seccomp_prepare_default(HUTCH_DEFAULT_CAPS, dir, &p, &err), 0);
	assert_false(p.from_cache);
	seccomp_prog_free(&p);
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode)); /* the rename replaced the link */
}

static void test_cache_unwritable(void **state)
{
	struct hutch_err *err = NULL;
	struct seccomp_prog p;
	/* Not a directory: the cache cannot be written, the filter still comes. */
	assert_int_equal(seccomp_prepare_default(HUTCH_DEFAULT_CAPS, "/dev/null/hutch", &p, &err),
			 0);
	assert_null(err);
	assert_false(p.from_cache);
	assert_true(p.n_insns > 0);
	seccomp_prog_free(&p);
	/* No cache at all. */
	assert_int_equal(seccomp_prepare_default(HUTCH_DEFAULT_CAPS, NULL, &p, &err), 0);
	assert_false(p.from_cache);
	seccomp_prog_free(&p);
	/* No temp files left behind by the writes above and the other tests. */
	_cleanup_free_ char *cmd =
	    xasprintf("find %s -name '*.bpf.*' | grep -q . && exit 1; exit 0", cache_dir);
	assert_int_equal(system(cmd), 0);
}

/* ---- fixtures ---- */

static int prepare_twice(uint64_t caps, struct seccomp_prog *out)
{
	struct hutch_err *err = NULL;
	if (seccomp_prepare_default(caps, cache_dir, out, &err) < 0)
		goto fail;
	seccomp_prog_free(out);
	if (seccomp_prepare_default(caps, cache_dir, out, &err) < 0)
		goto fail;
	return out->from_cache ? 0 : -1;
fail:
	hutch_err_print("test_seccomp setup", err);
	hutch_err_free(&err);
	return -1;
}

static int group_setup(void **state)
{
	if (!mkdtemp(cache_dir))
		return -1;
#if defined(__x86_64__)
	kernel_answers = mmap(NULL, sizeof(*kernel_answers), PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (kernel_answers == MAP_FAILED)
		return -1;
#endif
	if (prepare_twice(HUTCH_DEFAULT_CAPS, &default_prog) < 0 ||
	    prepare_twice(SYSADMIN_CAPS, &sysadmin_prog) < 0 ||
	    prepare_twice(0, &nocaps_prog) < 0 ||
	    prepare_twice(HUTCH_DEFAULT_CAPS | (1ULL << CAP_SYS_PTRACE), &ptrace_prog) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	seccomp_prog_free(&default_prog);
	seccomp_prog_free(&sysadmin_prog);
	seccomp_prog_free(&nocaps_prog);
	seccomp_prog_free(&ptrace_prog);
#if defined(__x86_64__)
	munmap(kernel_answers, sizeof(*kernel_answers));
#endif
	struct hutch_err *err = NULL;
	int rc = remove_tree_at(AT_FDCWD, cache_dir, &err);
	hutch_err_free(&err);
	return rc;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_denies),
	    cmocka_unit_test(test_sysadmin_allows_mount),
	    cmocka_unit_test(test_caps_widen_and_narrow),
	    cmocka_unit_test(test_personality),
	    cmocka_unit_test(test_sockets),
	    cmocka_unit_test(test_processes_and_threads),
	    cmocka_unit_test(test_compat_abis),
	    cmocka_unit_test(test_new_syscalls_enosys),
	    cmocka_unit_test(test_x32_new_syscalls_enosys),
	    cmocka_unit_test(test_prefix_x86),
	    cmocka_unit_test(test_prefix_other_arches),
	    cmocka_unit_test(test_install_default),
	    cmocka_unit_test(test_load_nothing),
	    cmocka_unit_test(test_rules_and_arches),
	    cmocka_unit_test(test_cache_hit),
	    cmocka_unit_test(test_cache_key),
	    cmocka_unit_test(test_cache_key_covers_the_table),
	    cmocka_unit_test(test_table_io_uring_and_socketcall),
	    cmocka_unit_test(test_cache_corrupt),
	    cmocka_unit_test(test_cache_unwritable),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
