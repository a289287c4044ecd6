/* User namespace id maps for a container: root writes them itself; an
 * unprivileged user goes through newuidmap/newgidmap for subordinate ranges
 * (common/idmap.c). On a rootless network the container's user namespace is a
 * child of the rootless network's (hutch_runtime.userns_parent), which maps
 * the user's ids already: hutch writes the maps itself, in that one's ids. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/idmap.h"
#include "common/util.h"
#include "runtime/container_internal.h"

int userns_enter_parent(const struct hutch_runtime *rt, struct hutch_err **err)
{
	if (!rt->userns_parent)
		return 0;
	_cleanup_close_ int fd = open(rt->userns_parent, O_RDONLY | O_CLOEXEC);
	struct stat want, cur;
	if (fd < 0 || fstat(fd, &want) < 0)
		return hutch_fail_sys(err, "open the user namespace %s", rt->userns_parent);
	if (stat("/proc/self/ns/user", &cur) == 0 && cur.st_ino == want.st_ino &&
	    cur.st_dev == want.st_dev)
		return 0;
	/* for good: there is no way back to a parent user namespace */
	if (setns(fd, CLONE_NEWUSER) < 0)
		return hutch_fail_sys(err, "enter the user namespace %s", rt->userns_parent);
	return 0;
}

/* Host ids [outside, outside+count) as ids of the user namespace hutch is in
 * (its /proc/self/FILE: "inside outside count" lines). */
static int translate(const char *file, struct id_range *r, struct hutch_err **err)
{
	_cleanup_free_ char *path = xasprintf("/proc/self/%s", file);
	_cleanup_free_ char *text = NULL;
	if (read_file_at(AT_FDCWD, path, &text, NULL, err) < 0)
		return -1;
	for (char *line = text; line && *line;) {
		unsigned long in, out, count;
		if (sscanf(line, "%lu %lu %lu", &in, &out, &count) == 3 && r->outside >= out &&
		    (unsigned long)r->outside + r->count <= out + count) {
			r->outside = (uint32_t)(in + (r->outside - out));
			return 0;
		}
		line = strchr(line, '\n');
		line = line ? line + 1 : NULL;
	}
	return hutch_fail(err, 0,
			  "ids %u-%u are not mapped in the user namespace of the rootless "
			  "network (%s): remove the network's containers and run again",
			  r->outside, r->outside + r->count - 1, file);
}

int userns_write_maps(const struct hutch_runtime *rt, const struct hutch_spec *spec, pid_t pid,
		      struct hutch_err **err)
{
	struct id_mapping m = {0};
	if (spec->n_uid_map > 8 || spec->n_gid_map > 8)
		return hutch_fail(err, 0, "at most 8 id map ranges are supported");
	for (size_t i = 0; i < spec->n_uid_map; i++)
		m.uid[m.n_uid++] = (struct id_range){
		    spec->uid_map[i].container_id, spec->uid_map[i].host_id, spec->uid_map[i].size};
	for (size_t i = 0; i < spec->n_gid_map; i++)
		m.gid[m.n_gid++] = (struct id_range){
		    spec->gid_map[i].container_id, spec->gid_map[i].host_id, spec->gid_map[i].size};
	/* anything but the caller's own id alone takes newuidmap/newgidmap */
	bool own = true;
	for (size_t i = 0; i < m.n_uid; i++)
		own &= m.uid[i].outside == geteuid() && m.uid[i].count == 1;
	for (size_t i = 0; i < m.n_gid; i++)
		own &= m.gid[i].outside == getegid() && m.gid[i].count == 1;
	m.subordinate = rt->rootless && (m.n_uid > 1 || m.n_gid > 1 || !own);
	if (rt->userns_parent) {
		/* root of the parent namespace: the maps are written directly */
		for (size_t i = 0; i < m.n_uid; i++)
			if (translate("uid_map", &m.uid[i], err) < 0)
				return -1;
		for (size_t i = 0; i < m.n_gid; i++)
			if (translate("gid_map", &m.gid[i], err) < 0)
				return -1;
		m.subordinate = false;
	}
	return id_mapping_apply(&m, pid, err);
}
