/* User namespace id maps for a container: root writes them itself; an
 * unprivileged user goes through newuidmap/newgidmap for subordinate ranges
 * (common/idmap.c). */
#include "common/idmap.h"
#include "common/util.h"
#include "runtime/container_internal.h"

int userns_write_maps(const struct hutch_runtime *rt, const struct hutch_spec *spec, pid_t pid,
		      struct hutch_err **err)
{
	struct id_mapping m = {0};
	if (spec->n_uid_map > 8 || spec->n_gid_map > 8)
		return hutch_fail(err, 0, "at most 8 id map ranges are supported");
	for (size_t i = 0; i < spec->n_uid_map; i++)
		m.uid[m.n_uid++] = (struct id_range){spec->uid_map[i].container_id,
						     spec->uid_map[i].host_id, spec->uid_map[i].size};
	for (size_t i = 0; i < spec->n_gid_map; i++)
		m.gid[m.n_gid++] = (struct id_range){spec->gid_map[i].container_id,
						     spec->gid_map[i].host_id, spec->gid_map[i].size};
	m.subordinate = rt->rootless && (m.n_uid > 1 || m.n_gid > 1);
	return id_mapping_apply(&m, pid, err);
}
