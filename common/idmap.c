#include "common/idmap.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common/util.h"

extern char **environ;

size_t subid_parse(const char *text, const char *user, uid_t uid, struct id_range *out, size_t max)
{
	size_t n = 0;
	char uidstr[16];
	snprintf(uidstr, sizeof(uidstr), "%u", (unsigned)uid);
	const char *p = text;
	while (*p && n < max) {
		const char *nl = strchrnul(p, '\n');
		char line[512];
		size_t len = (size_t)(nl - p);
		if (len < sizeof(line)) {
			memcpy(line, p, len);
			line[len] = '\0';
			char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
			if (c1 && c2 && line[0] != '#') {
				*c1 = *c2 = '\0';
				char *e1, *e2;
				unsigned long start = strtoul(c1 + 1, &e1, 10);
				unsigned long count = strtoul(c2 + 1, &e2, 10);
				bool ours = (user && !strcmp(line, user)) || !strcmp(line, uidstr);
				if (ours && !*e1 && !*e2 && count > 0 && start <= UINT32_MAX &&
				    count <= UINT32_MAX - start && c1[1] && c2[1])
					out[n++] = (struct id_range){0, (uint32_t)start,
								     (uint32_t)count};
			}
		}
		p = *nl ? nl + 1 : nl;
	}
	return n;
}

static size_t ranges_for(const char *file, const char *user, uid_t self, struct id_range *out,
			 size_t max)
{
	out[0] = (struct id_range){0, self, 1};
	_cleanup_free_ char *text = NULL;
	if (read_file_at(AT_FDCWD, file, &text, NULL, NULL) < 0)
		return 1;
	struct id_range sub[7];
	size_t n = subid_parse(text, user, self, sub, max - 1 < 7 ? max - 1 : 7);
	uint32_t next = 1;
	for (size_t i = 0; i < n; i++) {
		out[1 + i] = (struct id_range){next, sub[i].outside, sub[i].count};
		next += sub[i].count;
	}
	return 1 + n;
}

void id_mapping_for_self(struct id_mapping *m)
{
	*m = (struct id_mapping){0};
	uid_t uid = getuid();
	gid_t gid = getgid();
	struct passwd *pw = getpwuid(uid);
	const char *name = pw ? pw->pw_name : NULL;
	m->n_uid = ranges_for("/etc/subuid", name, uid, m->uid, 8);
	m->n_gid = ranges_for("/etc/subgid", name, gid, m->gid, 8);
	/* newuidmap and newgidmap must both be usable for subordinate ranges */
	m->subordinate = m->n_uid > 1 && m->n_gid > 1 && access("/usr/bin/newuidmap", X_OK) == 0 &&
			 access("/usr/bin/newgidmap", X_OK) == 0;
	if (!m->subordinate)
		m->n_uid = m->n_gid = 1;
}

static int run_helper(const char *helper, pid_t pid, const struct id_range *r, size_t n,
		      struct hutch_err **err)
{
	char *argv[2 + 3 * 8 + 1];
	char bufs[1 + 3 * 8][16];
	size_t k = 0;
	argv[k++] = (char *)helper;
	snprintf(bufs[0], 16, "%d", pid);
	argv[k++] = bufs[0];
	for (size_t i = 0; i < n; i++) {
		snprintf(bufs[1 + 3 * i], 16, "%u", r[i].inside);
		snprintf(bufs[2 + 3 * i], 16, "%u", r[i].outside);
		snprintf(bufs[3 + 3 * i], 16, "%u", r[i].count);
		argv[k++] = bufs[1 + 3 * i];
		argv[k++] = bufs[2 + 3 * i];
		argv[k++] = bufs[3 + 3 * i];
	}
	argv[k] = NULL;
	pid_t child;
	int rc = posix_spawnp(&child, helper, NULL, NULL, argv, environ);
	if (rc != 0)
		return hutch_fail(err, rc, "run %s (install the uidmap package)", helper);
	int status;
	if (waitpid(child, &status, 0) < 0)
		return hutch_fail_sys(err, "wait for %s", helper);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return hutch_fail(err, 0, "%s failed to map the ids of process %d", helper, pid);
	return 0;
}

static int write_map(pid_t pid, const char *file, const struct id_range *r, size_t n,
		     struct hutch_err **err)
{
	char path[64], buf[512];
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%u %u %u\n", r[i].inside,
					r[i].outside, r[i].count);
	snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
	return write_file_at(AT_FDCWD, path, buf, err);
}

int id_mapping_apply(const struct id_mapping *m, pid_t pid, struct hutch_err **err)
{
	bool helpers = getuid() != 0 && m->subordinate;
	if (helpers) {
		if (run_helper("newuidmap", pid, m->uid, m->n_uid, err) < 0 ||
		    run_helper("newgidmap", pid, m->gid, m->n_gid, err) < 0)
			return -1;
		return 0;
	}
	if (write_map(pid, "uid_map", m->uid, m->n_uid, err) < 0)
		return -1;
	if (getuid() != 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/setgroups", pid);
		if (write_file_at(AT_FDCWD, path, "deny", err) < 0)
			return -1;
	}
	return write_map(pid, "gid_map", m->gid, m->n_gid, err);
}

struct userns_report {
	int ok;
	int errno_;
	char msg[1024];
};

int userns_run(const struct id_mapping *m, int (*fn)(void *arg, struct hutch_err **err),
	       void *arg, struct hutch_err **err)
{
	int go[2], rep[2];
	if (pipe2(go, O_CLOEXEC) < 0)
		return hutch_fail_sys(err, "pipe");
	if (pipe2(rep, O_CLOEXEC) < 0) {
		close(go[0]);
		close(go[1]);
		return hutch_fail_sys(err, "pipe");
	}
	fflush(NULL);
	/* whoever asked may be killed: this helper must not outlive it, also after
	 * entering the namespace (which clears the parent-death signal) */
	_cleanup_close_ int parent = (int)syscall(SYS_pidfd_open, getpid(), 0);
	pid_t pid = fork();
	if (pid < 0) {
		close(go[0]);
		close(go[1]);
		close(rep[0]);
		close(rep[1]);
		return hutch_fail_sys(err, "fork");
	}
	if (pid == 0) {
		pdeathsig_arm(parent);
		close(go[1]);
		close(rep[0]);
		struct userns_report r = {0};
		struct hutch_err *e = NULL;
		char c;
		if (unshare(CLONE_NEWUSER) < 0) {
			hutch_fail_sys(&e, "create a user namespace");
		} else {
			/* tell the parent we are in the namespace, then wait for the maps */
			if (write(rep[1], "u", 1) != 1 || read(go[0], &c, 1) != 1)
				_exit(1);
			if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
				hutch_fail_sys(&e, "become root in the user namespace");
			} else {
				pdeathsig_arm(parent);
				if (fn(arg, &e) == 0)
					r.ok = 1;
			}
		}
		if (!r.ok) {
			r.errno_ = e ? e->errno_ : 0;
			snprintf(r.msg, sizeof(r.msg), "%s", e && e->msg ? e->msg : "failed");
		}
		(void)!write(rep[1], &r, sizeof(r));
		_exit(r.ok ? 0 : 1);
	}
	close(go[0]);
	close(rep[1]);
	int ret = -1;
	char c;
	struct userns_report r = {0};
	if (read(rep[0], &c, 1) != 1) {
		/* the child failed before entering the namespace: its report follows */
		goto collect;
	}
	if (id_mapping_apply(m, pid, err) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto out;
	}
	if (write(go[1], "g", 1) != 1) {
		hutch_fail_sys(err, "release the user namespace helper");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto out;
	}
collect:;
	size_t got = 0;
	while (got < sizeof(r)) {
		ssize_t n = read(rep[0], (char *)&r + got, sizeof(r) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	waitpid(pid, NULL, 0);
	if (got == sizeof(r) && r.ok) {
		ret = 0;
	} else if (got == sizeof(r)) {
		r.msg[sizeof(r.msg) - 1] = '\0';
		hutch_fail(err, r.errno_, "%s", r.msg);
	} else {
		hutch_fail(err, 0, "the user namespace helper died");
	}
out:
	close(go[1]);
	close(rep[0]);
	return ret;
}

static int remove_cb(void *arg, struct hutch_err **err)
{
	return remove_tree_at(AT_FDCWD, arg, err);
}

int remove_tree_as_owner(const char *path, struct hutch_err **err)
{
	if (getuid() == 0)
		return remove_tree_at(AT_FDCWD, path, err);
	struct id_mapping m;
	id_mapping_for_self(&m);
	if (!m.subordinate)
		return remove_tree_at(AT_FDCWD, path, err);
	/* Quick path: most trees hold nothing we cannot remove ourselves. */
	struct hutch_err *first = NULL;
	if (remove_tree_at(AT_FDCWD, path, &first) == 0)
		return 0;
	hutch_err_free(&first);
	return userns_run(&m, remove_cb, (void *)path, err);
}
