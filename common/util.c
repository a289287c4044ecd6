#include "common/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <time.h>

char *xasprintf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

char *xstrdup(const char *s)
{
	char *r = strdup(s ? s : "");
	if (!r)
		abort();
	return r;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		abort();
	return p;
}

void *xrealloc(void *p, size_t size)
{
	void *r = realloc(p, size ? size : 1);
	if (!r)
		abort();
	return r;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int write_file_at(int dirfd, const char *path, const char *content, struct hutch_err **err)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_WRONLY | O_CLOEXEC | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return hutch_fail_sys(err, "open %s", path);
	if (write_all(fd, content, strlen(content)) < 0)
		return hutch_fail_sys(err, "write '%s' to %s", content, path);
	return 0;
}

int read_file_at(int dirfd, const char *path, char **out, size_t *len, struct hutch_err **err)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return hutch_fail_sys(err, "open %s", path);
	size_t cap = 4096, used = 0;
	_cleanup_free_ char *buf = xcalloc(1, cap);
	for (;;) {
		if (used + 1 >= cap) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		ssize_t n = read(fd, buf + used, cap - used - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return hutch_fail_sys(err, "read %s", path);
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	buf[used] = '\0';
	if (len)
		*len = used;
	*out = steal_ptr(buf);
	return 0;
}

int read_file_at_most(int dirfd, const char *path, size_t max, int flags, char **out, size_t *len,
		      struct hutch_err **err)
{
	char limit[32];
	format_size((int64_t)max, limit, sizeof(limit));
	/* a FIFO that only a regular file may be is not waited on */
	_cleanup_close_ int fd = openat(dirfd, path,
					O_RDONLY | O_CLOEXEC | O_NOCTTY |
					    (flags & READ_REGULAR ? O_NONBLOCK : 0));
	if (fd < 0)
		return hutch_fail_sys(err, "%s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return hutch_fail_sys(err, "%s", path);
	if (S_ISDIR(st.st_mode))
		return hutch_fail(err, 0, "%s: is a directory, not a file", path);
	if ((flags & READ_REGULAR) && !S_ISREG(st.st_mode))
		return hutch_fail(err, 0, "%s: not a regular file", path);
	/* said before reading a byte of it */
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max)
		return hutch_fail(err, 0, "%s: larger than %s, the most hutch reads of such a file",
				  path, limit);
	size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, used = 0;
	if (cap > max + 1)
		cap = max + 1;
	_cleanup_free_ char *buf = xcalloc(1, cap + 1);
	for (;;) {
		if (used == cap) {
			/* one byte past max is how "larger" is told from "exactly max" */
			if (used > max)
				return hutch_fail(
				    err, 0, "%s: larger than %s, the most hutch reads of such a file",
				    path, limit);
			cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			buf = xrealloc(buf, cap + 1);
		}
		ssize_t n = read(fd, buf + used, cap - used);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return hutch_fail_sys(err, "%s: read", path);
		}
		if (n == 0)
			break;
		if (flags & READ_TEXT) {
			const char *nul = memchr(buf + used, '\0', (size_t)n);
			if (nul)
				return hutch_fail(err, 0,
						  "%s: has a NUL byte (at byte %zu): expected a text file",
						  path, (size_t)(nul - buf));
		}
		used += (size_t)n;
	}
	if (used > max)
		return hutch_fail(err, 0, "%s: larger than %s, the most hutch reads of such a file",
				  path, limit);
	buf[used] = '\0';
	if (len)
		*len = used;
	*out = steal_ptr(buf);
	return 0;
}

static int replace_file(int dirfd, const char *path, const void *buf, size_t len, bool sync,
			struct hutch_err **err);

int write_file_atomic(int dirfd, const char *path, const void *buf, size_t len,
		      struct hutch_err **err)
{
	return replace_file(dirfd, path, buf, len, true, err);
}

int write_file_replace(int dirfd, const char *path, const void *buf, size_t len,
		       struct hutch_err **err)
{
	return replace_file(dirfd, path, buf, len, false, err);
}

static int replace_file(int dirfd, const char *path, const void *buf, size_t len, bool sync,
			struct hutch_err **err)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", path, getpid());
	_cleanup_close_ int fd =
		openat(dirfd, tmp, O_WRONLY | O_CLOEXEC | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return hutch_fail_sys(err, "create %s", tmp);
	if (write_all(fd, buf, len) < 0 || (sync && fsync(fd) < 0)) {
		int e = errno;
		unlinkat(dirfd, tmp, 0);
		return hutch_fail(err, e, "write %s", tmp);
	}
	if (renameat(dirfd, tmp, dirfd, path) < 0) {
		int e = errno;
		unlinkat(dirfd, tmp, 0);
		return hutch_fail(err, e, "rename %s to %s", tmp, path);
	}
	return 0;
}

int mkdir_p_at(int dirfd, const char *path, mode_t mode, struct hutch_err **err)
{
	/* most often the path or all its parents are there: one call */
	if (mkdirat(dirfd, path, mode) == 0)
		return 0;
	if (errno == EEXIST) {
		struct stat st;
		if (fstatat(dirfd, path, &st, 0) < 0 || !S_ISDIR(st.st_mode))
			return hutch_fail(err, ENOTDIR, "mkdir %s", path);
		return 0;
	}
	if (errno != ENOENT)
		return hutch_fail_sys(err, "mkdir %s", path);
	_cleanup_free_ char *p = xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdirat(dirfd, p, mode) < 0 && errno != EEXIST)
			return hutch_fail_sys(err, "mkdir %s", p);
		*s = '/';
	}
	if (mkdirat(dirfd, p, mode) < 0) {
		struct stat st;
		if (errno != EEXIST)
			return hutch_fail_sys(err, "mkdir %s", p);
		if (fstatat(dirfd, p, &st, 0) < 0 || !S_ISDIR(st.st_mode))
			return hutch_fail(err, ENOTDIR, "mkdir %s", p);
	}
	return 0;
}

static int remove_dir_contents(int dfd, dev_t dev, struct hutch_err **err)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return hutch_fail_sys(err, "opendir");
	}
	int ret = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (st.st_dev != dev) {
				ret = hutch_fail(err, EBUSY, "refusing to cross mount point at %s",
						 de->d_name);
				break;
			}
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0 && errno == EACCES) {
				/* overlayfs leaves d--------- work dirs behind */
				fchmodat(dirfd(d), de->d_name, 0700, 0);
				sub = openat(dirfd(d), de->d_name,
					     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			}
			if (sub < 0) {
				ret = hutch_fail_sys(err, "open %s", de->d_name);
				break;
			}
			/* a 0555 directory (like /usr/bin in many images) must be writable
			 * for its entries to go, also for a user without CAP_DAC_OVERRIDE */
			fchmod(sub, 0700);
			if (remove_dir_contents(sub, dev, err) < 0) {
				ret = -1;
				break;
			}
			if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0) {
				ret = hutch_fail_sys(err, "rmdir %s", de->d_name);
				break;
			}
		} else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
			ret = hutch_fail_sys(err, "unlink %s", de->d_name);
			break;
		}
	}
	closedir(d);
	return ret;
}

int remove_tree_at(int dirfd, const char *name, struct hutch_err **err)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : hutch_fail_sys(err, "stat %s", name);
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
			return hutch_fail_sys(err, "unlink %s", name);
		return 0;
	}
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return hutch_fail_sys(err, "open %s", name);
	fchmod(fd, 0700);
	if (remove_dir_contents(fd, st.st_dev, err) < 0)
		return hutch_err_wrap(err, "remove %s", name);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return hutch_fail_sys(err, "rmdir %s", name);
	return 0;
}

int random_hex_id(char buf[65], struct hutch_err **err)
{
	unsigned char raw[32];
	if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
		return hutch_fail_sys(err, "getrandom");
	for (size_t i = 0; i < sizeof(raw); i++)
		sprintf(buf + 2 * i, "%02x", raw[i]);
	buf[64] = '\0';
	return 0;
}

int signal_from_name(const char *s)
{
	if (!strncasecmp(s, "SIG", 3))
		s += 3;
	char *end;
	errno = 0;
	long n = strtol(s, &end, 10);
	if (*s && !*end)
		return !errno && n > 0 && n < NSIG ? (int)n : -1;
	for (int i = 1; i < NSIG; i++) {
		const char *abbrev = sigabbrev_np(i);
		if (abbrev && !strcasecmp(abbrev, s))
			return i;
	}
	return -1;
}

char *path_clean(const char *abs)
{
	size_t n = strlen(abs);
	char *out = xcalloc(n + 2, 1);
	size_t len = 0;
	for (const char *p = abs; *p;) {
		while (*p == '/')
			p++;
		size_t c = strcspn(p, "/");
		if (c == 0 || (c == 1 && p[0] == '.')) {
			/* nothing */
		} else if (c == 2 && p[0] == '.' && p[1] == '.') {
			while (len > 0 && out[len - 1] != '/')
				len--;
			if (len > 0)
				len--; /* its '/' */
		} else {
			out[len++] = '/';
			memcpy(out + len, p, c);
			len += c;
		}
		p += c;
	}
	if (len == 0)
		out[len++] = '/';
	out[len] = '\0';
	return out;
}

int parse_size(const char *s, int64_t *out)
{
	if (!s || !*s || !isdigit((unsigned char)*s))
		return -1;
	/* Docker's syntax: digits, an optional fraction, a unit. strtod alone would
	 * also take hex, exponents and "inf". */
	size_t nd = strspn(s, "0123456789");
	if (s[nd] == '.' && isdigit((unsigned char)s[nd + 1]))
		nd += 1 + strspn(s + nd + 1, "0123456789");
	errno = 0;
	char *end = NULL;
	double v = strtod(s, &end);
	if (errno || end != s + nd || v < 0)
		return -1;
	int64_t mul = 1;
	if (*end) {
		switch (tolower((unsigned char)*end)) {
		case 'b': mul = 1; break;
		case 'k': mul = 1LL << 10; break;
		case 'm': mul = 1LL << 20; break;
		case 'g': mul = 1LL << 30; break;
		case 't': mul = 1LL << 40; break;
		default: return -1;
		}
		end++;
		/* accept "64m", "64mb", "64MiB" */
		if (*end && mul > 1 && tolower((unsigned char)*end) == 'i')
			end++;
		if (*end && mul > 1 && tolower((unsigned char)*end) == 'b')
			end++;
		if (*end)
			return -1;
	}
	double r = v * (double)mul;
	if (r >= 9223372036854775808.0) /* 2^63: INT64_MAX is not exact as a double */
		return -1;
	*out = (int64_t)r;
	return 0;
}

int parse_duration(const char *s, int64_t *ns)
{
	static const struct {
		const char *name;
		int64_t ns;
	} units[] = {
	    /* longest first where one unit is a prefix of another (ms before m) */
	    {"ns", 1},
	    {"us", 1000},
	    {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
	    {"\xce\xbcs", 1000}, /* U+03BC greek small letter mu */
	    {"ms", 1000000},
	    {"s", 1000000000LL},
	    {"m", 60 * 1000000000LL},
	    {"h", 3600 * 1000000000LL},
	};
	if (!s || !*s)
		return -1;
	if (!strcmp(s, "0")) {
		*ns = 0;
		return 0;
	}
	int64_t total = 0;
	const char *p = s;
	while (*p) {
		uint64_t whole = 0;
		bool digits = false;
		for (; isdigit((unsigned char)*p); p++) {
			if (whole > (UINT64_MAX - 9) / 10)
				return -1;
			whole = whole * 10 + (uint64_t)(*p - '0');
			digits = true;
		}
		/* the fraction as digits over a power of ten; digits past 18 cannot
		 * change a value counted in nanoseconds */
		uint64_t frac = 0, scale = 1;
		if (*p == '.') {
			for (p++; isdigit((unsigned char)*p); p++) {
				if (scale < 1000000000000000000ULL) {
					frac = frac * 10 + (uint64_t)(*p - '0');
					scale *= 10;
				}
				digits = true;
			}
		}
		if (!digits)
			return -1;
		int64_t unit = 0;
		for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
			size_t n = strlen(units[i].name);
			if (!strncmp(p, units[i].name, n)) {
				unit = units[i].ns;
				p += n;
				break;
			}
		}
		if (!unit || whole > (uint64_t)INT64_MAX / (uint64_t)unit)
			return -1;
		int64_t v = (int64_t)whole * unit;
		/* frac/scale < 1, so this is below one unit: no overflow in the product
		 * as long double, and the sum is checked below */
		v += (int64_t)((long double)frac * (long double)unit / (long double)scale);
		if (v < 0 || total > INT64_MAX - v)
			return -1;
		total += v;
	}
	*ns = total;
	return 0;
}

void format_size(int64_t bytes, char *buf, size_t len)
{
	static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)bytes;
	size_t u = 0;
	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (v == (int64_t)v)
		snprintf(buf, len, "%" PRId64 " %s", (int64_t)v, units[u]);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

bool is_hex_string(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[len] == '\0';
}

bool running_rootless(void)
{
	if (geteuid() != 0)
		return true;
	_cleanup_free_ char *map = NULL;
	size_t len;
	/* the initial namespace maps every id to itself */
	unsigned long in, out, count;
	return read_file_at(AT_FDCWD, "/proc/self/uid_map", &map, &len, NULL) == 0 &&
	       !(sscanf(map, "%lu %lu %lu", &in, &out, &count) == 3 && in == 0 && out == 0 &&
		 count == 4294967295UL);
}

void hutch_trace(const char *phase)
{
	static int enabled = -1;
	static struct timespec t0;
	if (enabled < 0) {
		const char *e = getenv("HUTCH_TRACE");
		enabled = e && *e && strcmp(e, "0");
		clock_gettime(CLOCK_MONOTONIC, &t0);
	}
	if (!enabled)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double ms = (double)(now.tv_sec - t0.tv_sec) * 1e3 + (double)(now.tv_nsec - t0.tv_nsec) / 1e6;
	char buf[128];
	int n = snprintf(buf, sizeof(buf), "hutch-trace: %7.3f %d %s\n", ms, getpid(), phase);
	write_all(2, buf, (size_t)n);
}

char *printable(const char *s, size_t len)
{
	const size_t shown_max = 200;
	char *out = xcalloc(1, shown_max * 4 + 4);
	char *o = out;
	for (size_t i = 0; i < len && i < shown_max; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || c == '\\' || c == '\'')
			o += sprintf(o, "\\x%02x", c);
		else
			*o++ = (char)c;
	}
	if (len > shown_max)
		strcpy(o, "...");
	return out;
}

int openat2_retry(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
	struct open_how how = {.flags = flags | O_CLOEXEC, .resolve = resolve};
	for (int tries = 0;; tries++) {
		int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
		if (fd >= 0 || (errno != EAGAIN && errno != EINTR) || tries >= 64)
			return fd;
	}
}

void pdeathsig_arm(int parent_pidfd)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (parent_pidfd < 0)
		return;
	struct pollfd pf = {.fd = parent_pidfd, .events = POLLIN};
	if (poll(&pf, 1, 0) != 0)
		_exit(128 + SIGKILL);
}

static int cmp_fd(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

void close_fds_except(int *keep, size_t n)
{
	if (n > 0)
		qsort(keep, n, sizeof(int), cmp_fd);
	unsigned from = 3;
	for (size_t i = 0; i < n; i++) {
		if (keep[i] < (int)from)
			continue;
		if ((unsigned)keep[i] > from)
			syscall(SYS_close_range, from, (unsigned)keep[i] - 1, 0);
		from = (unsigned)keep[i] + 1;
	}
	syscall(SYS_close_range, from, ~0U, 0);
}

int pidfd_open_or_fail(pid_t pid, bool gone_ok, struct hutch_err **err)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd >= 0)
		return fd;
	int e = errno;
	if (e == ENOSYS)
		hutch_fail(err, 0,
			   "pidfd_open is not available: hutch needs Linux 5.3 or later (or, under "
			   "a seccomp filter, one that allows pidfd_open)");
	else if (e != ESRCH || !gone_ok)
		hutch_fail(err, e, "pidfd_open of process %d", pid);
	errno = e;
	return -1;
}
