/* Small helpers shared by every module: cleanup attributes, file I/O, paths. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/err.h"

static inline void cleanup_freep(void *p) { free(*(void **)p); }
static inline void cleanup_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
static inline void cleanup_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
static inline void cleanup_errp(struct hutch_err **e) { hutch_err_free(e); }
#define _cleanup_free_ __attribute__((cleanup(cleanup_freep)))
#define _cleanup_close_ __attribute__((cleanup(cleanup_closep)))
#define _cleanup_fclose_ __attribute__((cleanup(cleanup_fclosep)))
#define _cleanup_err_ __attribute__((cleanup(cleanup_errp)))

/* Hand an owned pointer/fd out of a cleanup variable. */
#define steal_ptr(p)                                                                               \
	({                                                                                         \
		__typeof__(p) _t = (p);                                                            \
		(p) = NULL;                                                                        \
		_t;                                                                                \
	})
#define steal_fd(fd)                                                                               \
	({                                                                                         \
		int _t = (fd);                                                                     \
		(fd) = -1;                                                                         \
		_t;                                                                                \
	})

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xstrdup(const char *s);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);

/* Write all of buf; retries on EINTR and short writes. */
int write_all(int fd, const void *buf, size_t len);
/* Write a small file at dirfd/path (e.g. cgroup knobs). */
int write_file_at(int dirfd, const char *path, const char *content, struct hutch_err **err);
/* Read a whole file (NUL-terminated); *len gets the size without the NUL. */
int read_file_at(int dirfd, const char *path, char **out, size_t *len, struct hutch_err **err);
/* Read a file someone else gives hutch (an env file, an auth file, a stack
 * file): at most max bytes, NUL-terminated. Larger is refused ("PATH: larger
 * than 1 MiB ...") before a regular file is read, and as soon as the limit is
 * passed for anything else (a pipe, /dev/zero); with READ_TEXT a NUL byte is
 * refused at once, with READ_REGULAR anything but a regular file. Messages
 * start with the path. A FIFO with no writer blocks, as in Docker and cat. */
enum { READ_TEXT = 1, READ_REGULAR = 2 };
int read_file_at_most(int dirfd, const char *path, size_t max, int flags, char **out, size_t *len,
		      struct hutch_err **err);
/* Atomically replace dirfd/path: write a temp file, fsync, rename. */
int write_file_atomic(int dirfd, const char *path, const void *buf, size_t len,
		      struct hutch_err **err);
/* The same without fsync: readers never see a torn file, but a crash may lose
 * the update (for records that are repaired anyway, like container state). */
int write_file_replace(int dirfd, const char *path, const void *buf, size_t len,
		       struct hutch_err **err);
/* mkdir -p below dirfd (path is relative or absolute when dirfd is AT_FDCWD). */
int mkdir_p_at(int dirfd, const char *path, mode_t mode, struct hutch_err **err);
/* openat2(2) with `resolve` (RESOLVE_* flags) and O_CLOEXEC added to flags. The
 * kernel answers EAGAIN for RESOLVE_IN_ROOT/BENEATH when a rename or mount
 * anywhere on the system races a ".." step; that is retried a bounded number of
 * times, as is EINTR. Returns the fd, or -1 with errno set. */
int openat2_retry(int dirfd, const char *path, uint64_t flags, uint64_t resolve);
/* Die (SIGKILL) when the parent dies. Call it again after every credential
 * change (setresuid, a new user namespace): the kernel clears the setting then.
 * parent_pidfd (a pidfd of the parent, or -1): if the parent died before the
 * setting took, exit now as the signal would have made us. */
void pdeathsig_arm(int parent_pidfd);
/* pidfd_open(2) (a pidfd is always close-on-exec): the fd, or -1 with errno
 * and err. ENOSYS (a kernel before 5.3, or a seccomp filter hutch runs under)
 * is said as such, not as "Function not implemented". gone_ok: a process
 * that is gone (ESRCH) fills no err, for callers that say what that means. */
int pidfd_open_or_fail(pid_t pid, bool gone_ok, struct hutch_err **err);
/* Close every fd from 3 up except the n in keep (negative ones and 0-2 are
 * ignored; duplicates are fine). keep is sorted in place. */
void close_fds_except(int *keep, size_t n);
/* rm -rf dirfd/name: never crosses mount points, never follows symlinks. */
int remove_tree_at(int dirfd, const char *name, struct hutch_err **err);

/* 64 lowercase hex chars of random id (buf must hold 65). */
int random_hex_id(char buf[65], struct hutch_err **err);
/* Parse "64m", "1g", "512k", "1048576" (binary units, as Docker does). */
int parse_size(const char *s, int64_t *out);
/* A signal as people write it: "TERM", "SIGTERM", "sigterm", "15" -> 15; -1 if
 * unknown (also for 0 and numbers past the last signal). */
int signal_from_name(const char *s);
/* An absolute path written shortest, by its text alone (Go's filepath.Clean,
 * which runc gives its bundle): no "//", "." or trailing "/", and ".." taking
 * the component before it (at "/" it stays "/"). Symlinks are not looked at. */
char *path_clean(const char *abs);
/* A duration in Go's (and compose's) syntax into nanoseconds: a sequence of
 * decimal numbers, each with an optional fraction and a unit (ns, us, µs, ms,
 * s, m, h), like "500ms", "1m30s", "1.5h"; a bare "0" is zero. No sign: a
 * negative timeout or interval means nothing. -1 on bad syntax or overflow. */
int parse_duration(const char *s, int64_t *ns);
/* Human size in binary units, e.g. "64 MiB". */
void format_size(int64_t bytes, char *buf, size_t len);
bool is_hex_string(const char *s, size_t len);
/* Without root's powers: not uid 0, or uid 0 of a user namespace that is not
 * the initial one (a rootless hutch in its rootless network's, net/rootless.c). */
bool running_rootless(void);
/* A copy of foreign text (a tar entry name, say) safe to print in a message:
 * control characters, quotes and backslashes escaped, cut at 200 bytes. */
char *printable(const char *s, size_t len);

/* HUTCH_TRACE=1: print "hutch-trace: <ms since start> <phase>" to stderr at the
 * phases of a run; for finding where start-up time goes. */
void hutch_trace(const char *phase);
