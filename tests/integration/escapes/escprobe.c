/* escprobe COMMAND [ARG...]: container escape attempts for test_escapes.py. Built
 * static at test time and bind-mounted read-only into containers. Each attempt
 * prints NAME=ok or NAME=ERRNONAME (EPERM, ENOENT...), one per line.
 *
 * `abis` and `syscalls ABI...` make the seccomp probes through each syscall
 * ABI of an x86_64 kernel: x86_64 (`syscall`), i386 (`int $0x80` from this
 * 64-bit process: pointers below 4 GiB) and x32 (`syscall` with bit 30 set).
 * Built with -m32 it is an i386 glibc program, for `libc`: what such a
 * program's own socket() and socketpair() get. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void report(const char *name, long r)
{
	if (r < 0)
		printf("%s=%s\n", name, strerrorname_np(errno));
	else
		printf("%s=ok\n", name);
}

/* Every fd of this process with its target, read while the directory is open:
 * the directory's own fd shows as /proc/<pid>/fd. */
static int list_fds(void)
{
	char cwd[4096];
	printf("pid=%d\n", getpid());
	printf("cwd=%s\n", getcwd(cwd, sizeof(cwd)) ? cwd : strerrorname_np(errno));
	DIR *d = opendir("/proc/self/fd");
	if (!d) {
		printf("opendir=%s\n", strerrorname_np(errno));
		return 1;
	}
	printf("dirfd=%d\n", dirfd(d));
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[300], target[4096];
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		printf("fd %s %s\n", e->d_name, n > 0 ? target : strerrorname_np(errno));
	}
	closedir(d);
	return 0;
}

/* For every pid in /proc: can its exe be opened for reading, for writing? Prints
 * "exe PID DEV:INO|ERRNO" and, with write, "write PID ok|ERRNO" (it appends one
 * byte when it can: a write to a runtime's binary is the CVE-2019-5736 escape). */
static int scan_exes(int do_write)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t self = getpid();
	while (d && (e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0 || pid == self)
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0)
			printf("exe %ld %lu:%lu\n", pid, (unsigned long)st.st_dev,
			       (unsigned long)st.st_ino);
		else
			printf("exe %ld %s\n", pid, strerrorname_np(errno));
		if (fd >= 0)
			close(fd);
		if (do_write) {
			int w = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
			if (w >= 0 && write(w, "x", 1) == 1)
				printf("write %ld ok\n", pid);
			else
				printf("write %ld %s\n", pid, strerrorname_np(errno));
			if (w >= 0)
				close(w);
		}
	}
	if (d)
		closedir(d);
	return 0;
}

#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

/* What an i386 glibc program's libc does: run as "escprobe32 libc". */
static int libc_sockets(void)
{
	const struct {
		const char *name;
		int family, type;
	} tries[] = {{"socket_inet", AF_INET, SOCK_DGRAM},
		     {"socket_unix", AF_UNIX, SOCK_STREAM},
		     {"socket_vsock", AF_VSOCK, SOCK_STREAM}};
	printf("bits=%zu\n", sizeof(void *) * 8);
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		errno = 0;
		int fd = socket(tries[i].family, tries[i].type, 0);
		report(tries[i].name, fd);
		if (fd >= 0)
			close(fd);
	}
	int sv[2];
	int r = socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	report("socketpair", r);
	if (r == 0) {
		/* and the pair carries data (send/recv go through socketcall) */
		char c = 0;
		report("send", send(sv[0], "x", 1, 0) == 1 && recv(sv[1], &c, 1, 0) == 1 && c == 'x'
				   ? 0
				   : -1);
	}
	return 0;
}

#if defined(__x86_64__)
enum abi { ABI_X86_64, ABI_I386, ABI_X32, N_ABIS };
static const char *const abi_names[N_ABIS] = {"x86_64", "i386", "x32"};
#define X32_SYSCALL_BIT 0x40000000L

/* The syscalls probed, with their numbers on x86_64 (also x32's: none of
 * these has an x32 variant) and on i386 (arch/x86/entry/syscalls/). */
enum sc {
	SC_GETPID,
	SC_KEYCTL,
	SC_ADD_KEY,
	SC_REQUEST_KEY,
	SC_BPF,
	SC_MOUNT,
	SC_FSOPEN,
	SC_INIT_MODULE,
	SC_FINIT_MODULE,
	SC_DELETE_MODULE,
	SC_SETTIMEOFDAY,
	SC_CLOCK_SETTIME,
	SC_ADJTIMEX,
	SC_SETHOSTNAME,
	SC_PERF_EVENT_OPEN,
	SC_UNSHARE,
	SC_CLONE3,
	SC_IO_URING_SETUP,
	SC_IO_URING_ENTER,
	SC_IO_URING_REGISTER,
	SC_SOCKET,
	SC_SOCKETPAIR,
	SC_SOCKETCALL,
	N_SC
};
static const long nr_64[N_SC] = {39,  250, 248, 249, 321, 165, 430, 175, 313, 176, 164, 227,
				 159, 170, 298, 272, 435, 425, 426, 427, 41,  53,  -1};
static const long nr_32[N_SC] = {20,  288, 286, 287, 357, 21,  430, 128, 350, 129, 79, 264,
				 124, 74,  336, 310, 435, 425, 426, 427, 359, 360, 102};

/* The raw syscall through abi: the kernel's return, -errno on failure. */
static long abi_call(enum abi abi, enum sc sc, long a, long b, long c, long d, long e)
{
	long ret;
	if (abi == ABI_I386) {
		/* ebp (a 6th argument) is left alone: no probe needs it */
		__asm__ volatile("int $0x80"
				 : "=a"(ret)
				 : "a"(nr_32[sc]), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
				 : "memory", "r8", "r9", "r10", "r11");
		return (int)ret;
	}
	long nr = nr_64[sc] | (abi == ABI_X32 ? X32_SYSCALL_BIT : 0);
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = 0;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "memory", "rcx", "r11");
	return ret;
}

static void report_abi(enum abi abi, const char *name, long r)
{
	if (r < 0 && r > -4096)
		printf("%s.%s=%s\n", abi_names[abi], name, strerrorname_np((int)-r));
	else
		printf("%s.%s=ok\n", abi_names[abi], name);
}

/* Memory every ABI can point at: below 4 GiB. */
static char *low;
static long lowstr(size_t off, const char *s)
{
	strcpy(low + off, s);
	return (long)(low + off);
}

/* Which ABIs the kernel runs: getpid through each, in a child (int $0x80
 * without IA32 emulation is a SIGSEGV). Run outside any filter. */
static int probe_abis(void)
{
	for (int abi = 0; abi < N_ABIS; abi++) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			long r = abi_call(abi, SC_GETPID, 0, 0, 0, 0, 0);
			_exit(r == getpid() ? 0 : r < 0 && r > -4096 ? (int)-r : 255);
		}
		int st = 0;
		waitpid(pid, &st, 0);
		if (WIFSIGNALED(st))
			printf("abi.%s=%s\n", abi_names[abi], sigabbrev_np(WTERMSIG(st)));
		else if (WEXITSTATUS(st) == 0)
			printf("abi.%s=ok\n", abi_names[abi]);
		else
			printf("abi.%s=%s\n", abi_names[abi],
			       WEXITSTATUS(st) == 255 ? "wrong" : strerrorname_np(WEXITSTATUS(st)));
	}
	return 0;
}

/* socketcall(call, {a, b, c, &sv}) through int $0x80. */
static long i386_socketcall(long call, long a, long b, long c)
{
	uint32_t *args = (uint32_t *)(low + 3072);
	args[0] = (uint32_t)a;
	args[1] = (uint32_t)b;
	args[2] = (uint32_t)c;
	args[3] = (uint32_t)(uintptr_t)&args[4];
	long r = abi_call(ABI_I386, SC_SOCKETCALL, call, (long)args, 0, 0, 0);
	if (r >= 0 && call == 8 /* SYS_SOCKETPAIR */) {
		close((int)args[4]);
		close((int)args[5]);
	}
	return r;
}

static void close_ok(long r)
{
	if (r >= 0)
		close((int)r);
}

/* Every seccomp probe of test_escapes.py and test_security.py through abi,
 * each printed as ABI.NAME=RESULT, then the socket and io_uring ones. The
 * arguments are harmless should a call get through. */
static void syscalls_through(enum abi abi, const char *module_file)
{
	const bool is32 = abi == ABI_I386;
	memset(low, 0, 4096);
	report_abi(abi, "getpid", abi_call(abi, SC_GETPID, 0, 0, 0, 0, 0) == getpid() ? 0 : -1);
	report_abi(
	    abi, "keyctl",
	    abi_call(abi, SC_KEYCTL, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0, 0, 0));
	report_abi(abi, "keyctl_join",
		   abi_call(abi, SC_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, lowstr(0, "hutch-probe"),
			    0, 0, 0));
	report_abi(abi, "add_key",
		   abi_call(abi, SC_ADD_KEY, lowstr(16, "user"), lowstr(32, "hutch-probe"),
			    lowstr(48, "x"), 1, KEY_SPEC_PROCESS_KEYRING));
	report_abi(
	    abi, "request_key",
	    abi_call(abi, SC_REQUEST_KEY, lowstr(16, "user"), lowstr(32, "hutch-probe"), 0, 0, 0));
	union bpf_attr *attr = (union bpf_attr *)(low + 512);
	attr->map_type = BPF_MAP_TYPE_ARRAY;
	attr->key_size = 4;
	attr->value_size = 4;
	attr->max_entries = 1;
	long r = abi_call(abi, SC_BPF, BPF_MAP_CREATE, (long)attr, sizeof(*attr), 0, 0);
	report_abi(abi, "bpf", r);
	close_ok(r);
	report_abi(abi, "mount",
		   abi_call(abi, SC_MOUNT, lowstr(64, "none"), lowstr(80, "/mnt"),
			    lowstr(96, "tmpfs"), 0, 0));
	r = abi_call(abi, SC_FSOPEN, lowstr(96, "tmpfs"), 0, 0, 0, 0);
	report_abi(abi, "fsopen", r);
	close_ok(r);
	/* any file will do: the permission check comes before the ELF check */
	int fd = open(module_file, O_RDONLY | O_CLOEXEC);
	report_abi(abi, "finit_module",
		   abi_call(abi, SC_FINIT_MODULE, fd, lowstr(112, ""), 0, 0, 0));
	if (fd >= 0)
		close(fd);
	report_abi(abi, "init_module",
		   abi_call(abi, SC_INIT_MODULE, (long)(low + 1024), 64, lowstr(112, ""), 0, 0));
	report_abi(abi, "delete_module",
		   abi_call(abi, SC_DELETE_MODULE, lowstr(128, "loop"), O_NONBLOCK, 0, 0, 0));
	/* the clock set to what it is; i386's timeval and timespec are 32-bit */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int32_t *t32 = (int32_t *)(low + 2048);
	int64_t *t64 = (int64_t *)(low + 2048);
	if (is32) {
		t32[0] = (int32_t)now.tv_sec;
		t32[1] = (int32_t)(now.tv_nsec / 1000);
	} else {
		t64[0] = now.tv_sec;
		t64[1] = now.tv_nsec / 1000;
	}
	report_abi(abi, "settimeofday", abi_call(abi, SC_SETTIMEOFDAY, (long)t64, 0, 0, 0, 0));
	clock_gettime(CLOCK_REALTIME, &now);
	if (is32) {
		t32[0] = (int32_t)now.tv_sec;
		t32[1] = (int32_t)now.tv_nsec;
	} else {
		t64[0] = now.tv_sec;
		t64[1] = now.tv_nsec;
	}
	report_abi(abi, "clock_settime",
		   abi_call(abi, SC_CLOCK_SETTIME, CLOCK_REALTIME, (long)t64, 0, 0, 0));
	/* modes is the first field in both layouts */
	memset(low + 2048, 0, 512);
	*(uint32_t *)(low + 2048) = ADJ_OFFSET_SINGLESHOT;
	report_abi(abi, "adjtimex", abi_call(abi, SC_ADJTIMEX, (long)(low + 2048), 0, 0, 0, 0));
	report_abi(abi, "sethostname",
		   abi_call(abi, SC_SETHOSTNAME, lowstr(144, "hutch-probe"), 11, 0, 0, 0));
	report_abi(abi, "perf_event_open", abi_call(abi, SC_PERF_EVENT_OPEN, 0, 0, -1, -1, 0));
	report_abi(abi, "unshare_user", abi_call(abi, SC_UNSHARE, CLONE_NEWUSER, 0, 0, 0, 0));
	report_abi(abi, "clone3", abi_call(abi, SC_CLONE3, 0, 0, 0, 0, 0));

	/* io_uring: an instance of one entry; enter and register on no fd */
	memset(low + 2048, 0, 512);
	r = abi_call(abi, SC_IO_URING_SETUP, 1, (long)(low + 2048), 0, 0, 0);
	report_abi(abi, "io_uring_setup", r);
	close_ok(r);
	report_abi(abi, "io_uring_enter", abi_call(abi, SC_IO_URING_ENTER, -1, 0, 0, 0, 0));
	report_abi(abi, "io_uring_register", abi_call(abi, SC_IO_URING_REGISTER, -1, 0, 0, 0, 0));

	/* sockets: only created, never connected */
	const struct {
		const char *name;
		long family, type;
	} sockets[] = {
	    {"socket_inet", AF_INET, SOCK_DGRAM},
	    {"socket_unix", AF_UNIX, SOCK_STREAM},
	    {"socket_vsock", AF_VSOCK, SOCK_STREAM},
	    {"socket_alg", AF_ALG, SOCK_SEQPACKET},
	    /* the kernel reads an int: bits above it are not there for it */
	    {"socket_vsock_hi", 0x100000000L | AF_VSOCK, SOCK_STREAM},
	};
	for (size_t i = 0; i < sizeof(sockets) / sizeof(sockets[0]); i++) {
		if (is32 && sockets[i].family > 0xffffffffL)
			continue; /* i386 registers hold 32 bits */
		r = abi_call(abi, SC_SOCKET, sockets[i].family, sockets[i].type, 0, 0, 0);
		report_abi(abi, sockets[i].name, r);
		close_ok(r);
	}
	int *sv = (int *)(low + 3000);
	r = abi_call(abi, SC_SOCKETPAIR, AF_UNIX, SOCK_STREAM, 0, (long)sv, 0);
	report_abi(abi, "socketpair", r);
	if (r == 0) {
		close(sv[0]);
		close(sv[1]);
	}
	if (is32) {
		/* socketcall(SYS_SOCKET, {family, type, 0}): the family in memory */
		r = i386_socketcall(1, AF_VSOCK, SOCK_STREAM, 0);
		report_abi(abi, "socketcall_vsock", r);
		close_ok(r);
		r = i386_socketcall(1, AF_INET, SOCK_DGRAM, 0);
		report_abi(abi, "socketcall_inet", r);
		close_ok(r);
		report_abi(abi, "socketcall_socketpair",
			   i386_socketcall(8, AF_UNIX, SOCK_STREAM, 0));
	}
}

static int probe_syscalls(int n, char **abis, const char *module_file)
{
	low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1,
		   0);
	if (low == MAP_FAILED) {
		perror("mmap MAP_32BIT");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		int abi = 0;
		while (abi < N_ABIS && strcmp(abis[i], abi_names[abi]))
			abi++;
		if (abi == N_ABIS) {
			fprintf(stderr, "escprobe: unknown ABI '%s' (x86_64, i386, x32)\n",
				abis[i]);
			return 2;
		}
		syscalls_through(abi, module_file);
	}
	return 0;
}
#endif

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: escprobe COMMAND [ARG...]\n");
		return 2;
	}
	const char *cmd = argv[1];
	const char *arg = argc > 2 ? argv[2] : NULL;
	errno = 0;
	if (!strcmp(cmd, "libc"))
		return libc_sockets();
#if defined(__x86_64__)
	if (!strcmp(cmd, "abis"))
		return probe_abis();
	if (!strcmp(cmd, "syscalls"))
		return probe_syscalls(argc - 2, argv + 2, argv[0]);
#endif
	if (!strcmp(cmd, "fds"))
		return list_fds();
	if (!strcmp(cmd, "exescan"))
		return scan_exes(arg && !strcmp(arg, "write"));
	if (!strcmp(cmd, "mount")) {
		report("mount", mount("none", arg, "tmpfs", 0, NULL));
		report("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
		return 0;
	}
	if (!strcmp(cmd, "modules")) {
		/* any file will do: the permission check comes before the ELF check */
		int fd = open(arg, O_RDONLY | O_CLOEXEC);
		report("finit_module", syscall(SYS_finit_module, fd, "", 0));
		static char image[4096];
		ssize_t n = fd >= 0 ? pread(fd, image, sizeof(image), 0) : 0;
		report("init_module", syscall(SYS_init_module, image, n > 0 ? n : 0, ""));
		report("delete_module", syscall(SYS_delete_module, "loop", O_NONBLOCK));
		return 0;
	}
	if (!strcmp(cmd, "bpf")) {
		union bpf_attr attr;
		memset(&attr, 0, sizeof(attr));
		attr.map_type = BPF_MAP_TYPE_ARRAY;
		attr.key_size = 4;
		attr.value_size = 4;
		attr.max_entries = 1;
		report("bpf", syscall(321, BPF_MAP_CREATE, &attr, sizeof(attr)));
		return 0;
	}
	if (!strcmp(cmd, "keyctl")) {
		report("keyctl", syscall(250, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
		report("keyctl_join", syscall(250, KEYCTL_JOIN_SESSION_KEYRING, "hutch-probe"));
		report("add_key", syscall(SYS_add_key, "user", "hutch-probe", "x", 1,
					  KEY_SPEC_PROCESS_KEYRING));
		report("request_key", syscall(SYS_request_key, "user", "hutch-probe", NULL, 0));
		return 0;
	}
	if (!strcmp(cmd, "ptrace")) {
		pid_t pid = (pid_t)atoi(arg);
		long r = ptrace(PTRACE_ATTACH, pid, NULL, NULL);
		int e = errno;
		if (r == 0) {
			waitpid(pid, NULL, __WALL);
			ptrace(PTRACE_DETACH, pid, NULL, NULL);
		}
		errno = e;
		report("ptrace", r);
		return 0;
	}
	if (!strcmp(cmd, "settime")) {
		/* set the clock to what it is: harmless if it were allowed */
		struct timeval tv;
		struct timespec ts;
		gettimeofday(&tv, NULL);
		report("settimeofday", settimeofday(&tv, NULL));
		clock_gettime(CLOCK_REALTIME, &ts);
		report("clock_settime", clock_settime(CLOCK_REALTIME, &ts));
		struct timex tx;
		memset(&tx, 0, sizeof(tx));
		tx.modes = ADJ_OFFSET_SINGLESHOT;
		report("adjtimex", syscall(SYS_adjtimex, &tx));
		return 0;
	}
	if (!strcmp(cmd, "bind")) {
		/* bind a TCP port on 127.0.0.1 (nothing is sent anywhere) */
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(arg))};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		int one = 1;
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		report("bind", s < 0 ? -1 : bind(s, (struct sockaddr *)&a, sizeof(a)));
		return 0;
	}
	if (!strcmp(cmd, "sethostname")) {
		report("sethostname", sethostname(arg, strlen(arg)));
		return 0;
	}
	fprintf(stderr, "escprobe: unknown command '%s'\n", cmd);
	return 2;
}
