/* User namespace id maps. Root writes them directly; an unprivileged user may
 * map only itself directly, and needs the setuid newuidmap/newgidmap helpers
 * (uidmap package) for its subordinate ranges from /etc/subuid and /etc/subgid. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "common/util.h"
#include "runtime/container_internal.h"

extern char **environ;

static char *format_map(const struct hutch_id_map *m, size_t n)
{
	char *buf = xstrdup("");
	for (size_t i = 0; i < n; i++) {
		char *next = xasprintf("%s%u %u %u\n", buf, m[i].container_id, m[i].host_id,
				       m[i].size);
		free(buf);
		buf = next;
	}
	return buf;
}

static int run_map_helper(const char *helper, pid_t pid, const struct hutch_id_map *m, size_t n,
			  struct hutch_err **err)
{
	size_t argc = 2 + 3 * n + 1;
	char **argv = xcalloc(argc, sizeof(char *));
	size_t k = 0;
	argv[k++] = xstrdup(helper);
	argv[k++] = xasprintf("%d", pid);
	for (size_t i = 0; i < n; i++) {
		argv[k++] = xasprintf("%u", m[i].container_id);
		argv[k++] = xasprintf("%u", m[i].host_id);
		argv[k++] = xasprintf("%u", m[i].size);
	}
	pid_t child;
	int r = posix_spawnp(&child, helper, NULL, NULL, argv, environ);
	for (size_t i = 0; i < k; i++)
		free(argv[i]);
	free(argv);
	if (r != 0)
		return hutch_fail(err, r, "run %s (install the uidmap package)", helper);
	int status;
	if (waitpid(child, &status, 0) < 0)
		return hutch_fail_sys(err, "wait for %s", helper);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return hutch_fail(err, 0, "%s failed for the container's user namespace", helper);
	return 0;
}

static bool needs_helper(const struct hutch_id_map *m, size_t n, unsigned self)
{
	return n != 1 || m[0].size != 1 || m[0].host_id != self;
}

int userns_write_maps(const struct hutch_runtime *rt, const struct hutch_spec *spec, pid_t pid,
		      struct hutch_err **err)
{
	char path[64];
	if (rt->rootless && needs_helper(spec->uid_map, spec->n_uid_map, getuid())) {
		if (run_map_helper("newuidmap", pid, spec->uid_map, spec->n_uid_map, err) < 0)
			return -1;
	} else {
		_cleanup_free_ char *m = format_map(spec->uid_map, spec->n_uid_map);
		snprintf(path, sizeof(path), "/proc/%d/uid_map", pid);
		if (write_file_at(AT_FDCWD, path, m, err) < 0)
			return -1;
	}
	if (rt->rootless && needs_helper(spec->gid_map, spec->n_gid_map, getgid()))
		return run_map_helper("newgidmap", pid, spec->gid_map, spec->n_gid_map, err);
	if (rt->rootless) {
		snprintf(path, sizeof(path), "/proc/%d/setgroups", pid);
		if (write_file_at(AT_FDCWD, path, "deny", err) < 0)
			return -1;
	}
	_cleanup_free_ char *m = format_map(spec->gid_map, spec->n_gid_map);
	snprintf(path, sizeof(path), "/proc/%d/gid_map", pid);
	return write_file_at(AT_FDCWD, path, m, err);
}
