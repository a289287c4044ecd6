/* The default seccomp profile and its cache. Every filter is loaded in a
 * fork()ed child so that the test process itself stays unfiltered. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/kcmp.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

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
		if (prog && seccomp_load_prepared(prog, &err) < 0) {
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
static long int80(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(nr), "b"(a), "c"(b), "d"(c)
			 : "memory", "r8", "r9", "r10", "r11");
	return (int)ret;
}
#define I386_GETPID  20
#define I386_KEYCTL  288
#define I386_UNSHARE 310
#define X32_BIT	     0x40000000L

static int child_i386_probe(void)
{
	return int80(I386_GETPID, 0, 0, 0) == getpid() ? 0 : 1;
}

static int child_compat_abis(void)
{
	CHILD_CHECK(int80(I386_GETPID, 0, 0, 0) == getpid());
	CHILD_CHECK(int80(I386_KEYCTL, 0, -3, 0) == -EPERM);
	CHILD_CHECK(int80(I386_UNSHARE, CLONE_NEWUSER, 0, 0) == -EPERM);
	/* x32: in the filter, so allowed calls reach the kernel (which may not
	 * have the x32 ABI: ENOSYS) and denied ones get EPERM, not SIGSYS. */
	errno = 0;
	long r = syscall(X32_BIT | SYS_getpid);
	CHILD_CHECK(r == getpid() || (r == -1 && errno == ENOSYS));
	CHILD_ERRNO(syscall(X32_BIT | SYS_keyctl, 0, -3, 0), EPERM);
	return 0;
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
	assert_int_equal(in_filtered_child(&default_prog, child_sockets), 0);
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
	assert_int_equal(in_filtered_child(&default_prog, child_compat_abis), 0);
#else
	skip();
#endif
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
	assert_int_equal(seccomp_load_prepared(&empty, &err), -1);
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
	    cmocka_unit_test(test_install_default),
	    cmocka_unit_test(test_load_nothing),
	    cmocka_unit_test(test_rules_and_arches),
	    cmocka_unit_test(test_cache_hit),
	    cmocka_unit_test(test_cache_key),
	    cmocka_unit_test(test_cache_corrupt),
	    cmocka_unit_test(test_cache_unwritable),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
