/* hutch-keeper: what stays of a detached container's monitor while the
 * container runs. The monitor (a forked hutch) starts the container with all
 * of hutch's code, then execs this tiny static program from a sealed memfd, so
 * that a running container costs a few pages instead of a whole hutch. It is
 * the container's parent (it reaps it), holds its output pipes or pty master,
 * the image's layer locks and the container's directory, and does only this:
 *
 *  - copies the output to DATA/containers/ID/container.log in the CRI format
 *    ("TIMESTAMP STREAM F|P TEXT", P for a partial line), one write per record;
 *  - rotates the log by size: past MAX bytes container.log becomes
 *    container.log.1 (the one before is dropped) and a new one is begun;
 *  - when the container has exited and its output is drained, writes
 *    DATA/containers/ID/exit ("CODE SIGNAL TIME_NS\n", atomically), the same
 *    line to NOTIFYFD if it has one (a supervisor's pipe), and execs
 *    hutch again (from an O_PATH fd of its binary kept from before the switch)
 *    to record the exit and clean up (`hutch internal finish`).
 *
 *   argv: hutch-keeper PIDFD OUTFD ERRFD DIRFD EXEFD LOGMAX STDINFD NOTIFYFD NSFD -- HUTCH-ARGV...
 *   (NSFD: the container's mount namespace, let go once the exit is said:
 *   its teardown comes after the word, not before the exit can be seen)
 *   (an fd of -1: none; OUTFD is the pty master with -t, logged as stdout)
 * No libc, as hutch-dmz: it is embedded in hutch and costs no shared object. */
#include "runtime/nolibc.h"

#define EINTR	       4
#define EAGAIN	       11
#define O_WRONLY       01
#define O_CREAT	       0100
#define O_TRUNC	       01000
#define O_APPEND       02000
#define O_CLOEXEC      02000000
#define F_GETFL	       3
#define F_SETFL	       4
#define O_NONBLOCK     04000
#define SEEK_END       2
#define POLLIN	       1
#define P_PIDFD	       3
#define WEXITED	       4
#define CLD_EXITED     1
#define AT_EMPTY_PATH  0x1000
#define CLOCK_REALTIME 0

struct pollfd_ {
	int fd;
	short events, revents;
};
struct iovec_ {
	const void *base;
	unsigned long len;
};
struct timespec_ {
	s64 sec, nsec;
};
struct siginfo_min {
	int si_signo, si_errno, si_code, pad;
	int pid, uid, status;
	char rest[100];
};

/* gcc may call these for struct copies and zeroing even with -fno-builtin */
void *memset(void *d, int c, unsigned long n);
void *memset(void *d, int c, unsigned long n)
{
	for (unsigned char *p = d; n--;)
		*p++ = (unsigned char)c;
	return d;
}
void *memcpy(void *d, const void *s, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n)
{
	unsigned char *o = d;
	for (const unsigned char *i = s; n--;)
		*o++ = *i++;
	return d;
}

static int dirfd = -1, logfd = -1;
static s64 log_size, log_max;

static __attribute__((noreturn)) void die(int code)
{
	for (;;)
		sys1(__NR_exit_group, code);
}

static long num(const char *s)
{
	long v = 0, sign = 1;
	if (*s == '-') {
		sign = -1;
		s++;
	}
	while (*s >= '0' && *s <= '9')
		v = v * 10 + (*s++ - '0');
	return v * sign;
}

/* digits of v, right-aligned in w places with leading zeros; returns the end */
static char *put_num(char *p, unsigned long v, int w)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n < w)
		tmp[n++] = '0';
	while (n)
		*p++ = tmp[--n];
	return p;
}

/* RFC 3339 in UTC with nanoseconds, from days since the epoch
 * (the civil-from-days algorithm: Howard Hinnant's). */
static char *put_time(char *p, const struct timespec_ *ts)
{
	s64 days = ts->sec / 86400, secs = ts->sec % 86400;
	s64 z = days + 719468;
	s64 era = z / 146097;
	s64 doe = z - era * 146097;
	s64 yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	s64 y = yoe + era * 400;
	s64 doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	s64 mp = (5 * doy + 2) / 153;
	s64 d = doy - (153 * mp + 2) / 5 + 1;
	s64 m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	p = put_num(p, (unsigned long)y, 4);
	*p++ = '-';
	p = put_num(p, (unsigned long)m, 2);
	*p++ = '-';
	p = put_num(p, (unsigned long)d, 2);
	*p++ = 'T';
	p = put_num(p, (unsigned long)(secs / 3600), 2);
	*p++ = ':';
	p = put_num(p, (unsigned long)(secs / 60 % 60), 2);
	*p++ = ':';
	p = put_num(p, (unsigned long)(secs % 60), 2);
	*p++ = '.';
	p = put_num(p, (unsigned long)ts->nsec, 9);
	*p++ = 'Z';
	return p;
}

static void log_open(void)
{
	/* not O_CLOEXEC: see the end of keeper_main */
	logfd = (int)sys4(__NR_openat, dirfd, "container.log", O_WRONLY | O_CREAT | O_APPEND, 0600);
	log_size = logfd >= 0 ? sys3(__NR_lseek, logfd, 0, SEEK_END) : 0;
	if (log_size < 0)
		log_size = 0;
}

/* container.log -> container.log.1 (replacing the older one), and a new log.
 * The old one is closed last: a `logs -f` that sees it closed finds the new
 * one already there (and one that finds none knows the container ended). */
static void log_rotate(void)
{
	int old = logfd;
	sys5(__NR_renameat2, dirfd, "container.log", dirfd, "container.log.1", 0);
	log_open();
	if (old >= 0)
		sys1(__NR_close, old);
}

static void log_record(const char *stream, const char *text, unsigned long len, int full)
{
	struct timespec_ ts;
	sys2(__NR_clock_gettime, CLOCK_REALTIME, &ts);
	char head[64];
	char *p = put_time(head, &ts);
	*p++ = ' ';
	for (const char *s = stream; *s;)
		*p++ = *s++;
	*p++ = ' ';
	*p++ = full ? 'F' : 'P';
	*p++ = ' ';
	unsigned long hlen = (unsigned long)(p - head);
	s64 total = (s64)(hlen + len + 1);
	if (log_max > 0 && log_size > 0 && log_size + total > log_max)
		log_rotate();
	if (logfd < 0)
		return;
	struct iovec_ iov[3] = {{head, hlen}, {text, len}, {"\n", 1}};
	/* one writev per record: readers never see half a record */
	s64 n = sys3(__NR_writev, logfd, iov, 3);
	if (n > 0)
		log_size += n;
}

/* complete lines as F records, a tail as P */
static void log_chunk(const char *stream, const char *buf, unsigned long len)
{
	while (len > 0) {
		unsigned long line = 0;
		while (line < len && buf[line] != '\n')
			line++;
		int nl = line < len;
		log_record(stream, buf, line, nl);
		if (!nl)
			break;
		buf += line + 1;
		len -= line + 1;
	}
}

/* 1: read something or nothing yet; 0: the end (EOF, EIO from a pty) */
static int drain(int fd, const char *stream)
{
	char buf[16384];
	s64 n = sys3(__NR_read, fd, buf, sizeof(buf));
	if (n == -EAGAIN || n == -EINTR)
		return 1;
	if (n <= 0)
		return 0;
	log_chunk(stream, buf, (unsigned long)n);
	return 1;
}

__attribute__((noreturn, used)) void keeper_main(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	if (argc < 12 || argv[10][0] != '-' || argv[10][1] != '-')
		die(125);
	int pidfd = (int)num(argv[1]);
	int fds[2] = {(int)num(argv[2]), (int)num(argv[3])};
	const char *names[2] = {"stdout", "stderr"};
	dirfd = (int)num(argv[4]);
	int exefd = (int)num(argv[5]);
	log_max = num(argv[6]);
	int stdin_hold = (int)num(argv[7]);
	int notify = (int)num(argv[8]);
	int nsfd = (int)num(argv[9]);
	/* its name in ps, not the memfd's */
	sys2(__NR_prctl, 15 /* PR_SET_NAME */, "hutch-keeper");
	log_open();

	for (int k = 0; k < 2; k++)
		if (fds[k] >= 0)
			sys3(__NR_fcntl, fds[k], F_SETFL,
			     sys2(__NR_fcntl, fds[k], F_GETFL) | O_NONBLOCK);
	for (;;) {
		struct pollfd_ p[3] = {
		    {pidfd, POLLIN, 0}, {fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
		s64 n = sys5(__NR_ppoll, p, 3, 0, 0, 8);
		if (n == -EINTR)
			continue;
		if (n < 0 || p[0].revents)
			break;
		for (int k = 0; k < 2; k++)
			if (p[k + 1].revents && !drain(fds[k], names[k])) {
				sys1(__NR_close, fds[k]);
				fds[k] = -1; /* poll ignores a negative fd */
			}
	}
	/* What the container wrote before it exited is still in the pipes: read
	 * until empty (EAGAIN) or the end. */
	for (int k = 0; k < 2; k++) {
		while (fds[k] >= 0) {
			char buf[16384];
			s64 n = sys3(__NR_read, fds[k], buf, sizeof(buf));
			if (n == -EINTR)
				continue;
			if (n <= 0)
				break;
			log_chunk(names[k], buf, (unsigned long)n);
		}
		if (fds[k] >= 0)
			sys1(__NR_close, fds[k]);
	}

	struct siginfo_min si;
	si.si_code = 0;
	si.status = 0;
	s64 r;
	do
		r = sys5(__NR_waitid, P_PIDFD, pidfd, &si, WEXITED, 0);
	while (r == -EINTR);
	long code = 125, sig = 0;
	if (r == 0 && si.si_code == CLD_EXITED) {
		code = si.status;
	} else if (r == 0) {
		sig = si.status;
		code = 128 + sig;
	}
	struct timespec_ ts;
	sys2(__NR_clock_gettime, CLOCK_REALTIME, &ts);
	char line[64], *p = line;
	p = put_num(p, (unsigned long)code, 1);
	*p++ = ' ';
	p = put_num(p, (unsigned long)sig, 1);
	*p++ = ' ';
	p = put_num(p, (unsigned long)ts.sec, 1);
	p = put_num(p, (unsigned long)ts.nsec, 9);
	*p++ = '\n';
	int fd = (int)sys4(__NR_openat, dirfd, "exit.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			   0600);
	if (fd >= 0) {
		sys3(__NR_write, fd, line, p - line);
		sys1(__NR_close, fd);
		sys5(__NR_renameat2, dirfd, "exit.tmp", dirfd, "exit", 0);
	}
	/* The supervisor restarts from this line, while finish still records
	 * the exit; it waits for this process's end before it starts the
	 * container again. */
	if (notify >= 0) {
		sys3(__NR_write, notify, line, p - line);
		sys1(__NR_close, notify);
	}
	if (nsfd >= 0)
		sys1(__NR_close, nsfd);
	/* The log stays open through the exec: `hutch logs -f` ends when it is
	 * closed, which is then when `hutch internal finish` exits, with the
	 * exit recorded. */
	sys1(__NR_close, pidfd);
	sys1(__NR_close, dirfd);
	if (stdin_hold >= 0)
		sys1(__NR_close, stdin_hold);
	sys6(__NR_execveat, exefd, (s64) "", (s64)(argv + 11), (s64)envp, AT_EMPTY_PATH, 0);
	die(125);
}

#if defined(__x86_64__)
__asm__(".text\n.global _start\n_start:\n xor %rbp,%rbp\n mov %rsp,%rdi\n and $-16,%rsp\n call "
	"keeper_main\n");
#elif defined(__aarch64__)
__asm__(".text\n.global _start\n_start:\n mov x29, #0\n mov x0, sp\n bl keeper_main\n");
#endif
