/* Container state records: DATA/containers/ID/state.json beside the rw layer
 * and the log. Whoever owns the container (its monitor: the `run` process in the
 * foreground, a forked monitor with -d) writes it; everybody else reads it, and
 * repairs it when the owner is gone (a monitor killed with SIGKILL takes its
 * container with it through PDEATHSIG; the next reader marks it exited and
 * removes its cgroup, so `ps` is never stale and nothing leaks). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <linux/magic.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "common/idmap.h"
#include "common/util.h"
#include "runtime/container_internal.h"
#include "runtime/process_internal.h"

const char *hutch_status_name(enum hutch_status st)
{
	switch (st) {
	case HUTCH_CREATED: return "created";
	case HUTCH_RUNNING: return "running";
	case HUTCH_EXITED: return "exited";
	}
	return "unknown";
}

bool hutch_name_valid(const char *name)
{
	if (!name || !isalnum((unsigned char)name[0]) || !name[1])
		return false;
	for (const char *p = name + 1; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("_.-", *p))
			return false;
	return true;
}

static struct json_object *strv_json(char **v, size_t n)
{
	struct json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

/* OCI's process.capabilities: each set as a list of names. */
static const struct {
	const char *key;
	size_t offset;
} cap_sets[] = {
    {"bounding", offsetof(struct hutch_caps, bounding)},
    {"effective", offsetof(struct hutch_caps, effective)},
    {"permitted", offsetof(struct hutch_caps, permitted)},
    {"inheritable", offsetof(struct hutch_caps, inheritable)},
    {"ambient", offsetof(struct hutch_caps, ambient)},
};

static uint64_t *cap_set(struct hutch_caps *c, size_t k)
{
	return (uint64_t *)((char *)c + cap_sets[k].offset);
}

static struct json_object *caps_json(const struct hutch_caps *caps)
{
	struct hutch_caps c = *caps;
	struct json_object *o = json_object_new_object();
	for (size_t k = 0; k < ARRAY_SIZE(cap_sets); k++) {
		struct json_object *a = json_object_new_array();
		for (int i = 0; i < 64; i++)
			if ((*cap_set(&c, k) & (1ULL << i)) && hutch_cap_name(i))
				json_object_array_add(a, json_object_new_string(hutch_cap_name(i)));
		json_object_object_add(o, cap_sets[k].key, a);
	}
	return o;
}

static void add_str(struct json_object *o, const char *k, const char *v)
{
	if (v)
		json_object_object_add(o, k, json_object_new_string(v));
}

char *hutch_state_to_json(const struct hutch_state *s, bool pretty)
{
	struct json_object *o = json_object_new_object();
	add_str(o, "id", s->id);
	add_str(o, "name", s->name);
	add_str(o, "image", s->image);
	add_str(o, "image_id", s->image_id);
	add_str(o, "command", s->command);
	add_str(o, "status", hutch_status_name(s->status));
	json_object_object_add(o, "created", json_object_new_int64(s->created_ns));
	json_object_object_add(o, "started", json_object_new_int64(s->started_ns));
	json_object_object_add(o, "finished", json_object_new_int64(s->finished_ns));
	json_object_object_add(o, "pid", json_object_new_int(s->pid));
	json_object_object_add(o, "pid_start", json_object_new_uint64(s->pid_start));
	json_object_object_add(o, "monitor_pid", json_object_new_int(s->monitor_pid));
	json_object_object_add(o, "monitor_start", json_object_new_uint64(s->monitor_start));
	json_object_object_add(o, "exit_code", json_object_new_int(s->exit_code));
	json_object_object_add(o, "restart_count", json_object_new_int(s->restart_count));
	json_object_object_add(o, "oom_killed", json_object_new_boolean(s->oom_killed));
	json_object_object_add(o, "auto_remove", json_object_new_boolean(s->auto_remove));
	json_object_object_add(o, "detached", json_object_new_boolean(s->detached));
	add_str(o, "cgroup", s->cgroup);
	add_str(o, "hostname", s->hostname);
	json_object_object_add(o, "seccomp", json_object_new_boolean(s->seccomp));
	struct json_object *ns = json_object_new_array();
	for (int t = 0; t < HUTCH_NS_TYPES; t++)
		if (s->namespaces & (1u << t))
			json_object_array_add(ns, json_object_new_string(hutch_ns_type_name(t)));
	json_object_object_add(o, "namespaces", ns);
	struct json_object *labels = json_object_new_object();
	for (size_t i = 0; i < s->n_labels; i++) {
		const char *eq = strchr(s->labels[i], '=');
		_cleanup_free_ char *k =
		    eq ? strndup(s->labels[i], (size_t)(eq - s->labels[i])) : xstrdup(s->labels[i]);
		json_object_object_add(labels, k, json_object_new_string(eq ? eq + 1 : ""));
	}
	json_object_object_add(o, "labels", labels);
	struct json_object *p = json_object_new_object();
	json_object_object_add(p, "args", strv_json(s->process.args, s->process.n_args));
	json_object_object_add(p, "env", strv_json(s->process.env, s->process.n_env));
	add_str(p, "cwd", s->process.cwd);
	add_str(p, "user", s->process.user);
	json_object_object_add(p, "terminal", json_object_new_boolean(s->process.terminal));
	json_object_object_add(p, "no_new_privileges",
			       json_object_new_boolean(s->process.no_new_privileges));
	json_object_object_add(p, "capabilities", caps_json(&s->process.caps));
	json_object_object_add(p, "stop_signal", json_object_new_int(s->process.stop_signal));
	json_object_object_add(o, "process", p);
	char *text = xstrdup(json_object_to_json_string_ext(
		o, pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE
			  : JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return text;
}

static struct json_object *jget(struct json_object *o, const char *k)
{
	struct json_object *v = NULL;
	if (o)
		json_object_object_get_ex(o, k, &v);
	return v;
}

static char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v = jget(o, k);
	return v && json_object_is_type(v, json_type_string) ? xstrdup(json_object_get_string(v))
							      : NULL;
}

static char **jstrv(struct json_object *o, const char *k, size_t *n)
{
	struct json_object *a = jget(o, k);
	*n = 0;
	if (!a || !json_object_is_type(a, json_type_array))
		return xcalloc(1, sizeof(char *));
	size_t len = json_object_array_length(a);
	char **v = xcalloc(len + 1, sizeof(char *));
	for (size_t i = 0; i < len; i++)
		v[(*n)++] = xstrdup(json_object_get_string(json_object_array_get_idx(a, i)));
	return v;
}

/* A JSON list of names as bits (1 << bit_of(name)); unknown names are skipped. */
static uint64_t jnames_mask(struct json_object *a, int (*bit_of)(const char *))
{
	uint64_t mask = 0;
	size_t n = a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
	for (size_t i = 0; i < n; i++) {
		const char *name = json_object_get_string(json_object_array_get_idx(a, i));
		int bit = name ? bit_of(name) : -1;
		if (bit >= 0 && bit < 64)
			mask |= 1ULL << bit;
	}
	return mask;
}

static void caps_parse(struct json_object *o, struct hutch_caps *c)
{
	for (size_t k = 0; k < ARRAY_SIZE(cap_sets); k++)
		*cap_set(c, k) = jnames_mask(jget(o, cap_sets[k].key), hutch_cap_from_name);
}

static int state_parse(const char *text, struct hutch_state *s)
{
	struct json_object *o = json_tokener_parse(text);
	if (!o)
		return -1;
	char *id = jstr(o, "id");
	if (!id || strlen(id) != 64 || !is_hex_string(id, 64)) {
		free(id);
		json_object_put(o);
		return -1;
	}
	memcpy(s->id, id, 65);
	free(id);
	s->name = jstr(o, "name");
	s->image = jstr(o, "image");
	s->image_id = jstr(o, "image_id");
	s->command = jstr(o, "command");
	_cleanup_free_ char *st = jstr(o, "status");
	s->status = st && !strcmp(st, "running")  ? HUTCH_RUNNING
		    : st && !strcmp(st, "exited") ? HUTCH_EXITED
						  : HUTCH_CREATED;
	s->created_ns = json_object_get_int64(jget(o, "created"));
	s->started_ns = json_object_get_int64(jget(o, "started"));
	s->finished_ns = json_object_get_int64(jget(o, "finished"));
	s->pid = json_object_get_int(jget(o, "pid"));
	s->pid_start = json_object_get_uint64(jget(o, "pid_start"));
	s->monitor_pid = json_object_get_int(jget(o, "monitor_pid"));
	s->monitor_start = json_object_get_uint64(jget(o, "monitor_start"));
	s->exit_code = json_object_get_int(jget(o, "exit_code"));
	s->restart_count = json_object_get_int(jget(o, "restart_count"));
	s->oom_killed = json_object_get_boolean(jget(o, "oom_killed"));
	s->auto_remove = json_object_get_boolean(jget(o, "auto_remove"));
	s->detached = json_object_get_boolean(jget(o, "detached"));
	s->cgroup = jstr(o, "cgroup");
	s->hostname = jstr(o, "hostname");
	s->seccomp = json_object_get_boolean(jget(o, "seccomp"));
	s->namespaces = (unsigned)jnames_mask(jget(o, "namespaces"), hutch_ns_type_from_name);
	struct json_object *labels = jget(o, "labels");
	if (labels && json_object_is_type(labels, json_type_object)) {
		s->labels = xcalloc((size_t)json_object_object_length(labels) + 1, sizeof(char *));
		json_object_object_foreach(labels, k, v)
			s->labels[s->n_labels++] = xasprintf("%s=%s", k, json_object_get_string(v));
	}
	struct json_object *p = jget(o, "process");
	s->process.args = jstrv(p, "args", &s->process.n_args);
	s->process.env = jstrv(p, "env", &s->process.n_env);
	s->process.cwd = jstr(p, "cwd");
	if (!s->process.cwd)
		s->process.cwd = xstrdup("/");
	s->process.user = jstr(p, "user");
	s->process.terminal = json_object_get_boolean(jget(p, "terminal"));
	s->process.no_new_privileges = json_object_get_boolean(jget(p, "no_new_privileges"));
	caps_parse(jget(p, "capabilities"), &s->process.caps);
	s->process.stop_signal = json_object_get_int(jget(p, "stop_signal"));
	if (!s->process.stop_signal)
		s->process.stop_signal = SIGTERM;
	json_object_put(o);
	return 0;
}

void hutch_state_free(struct hutch_state *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->image);
	free(s->image_id);
	free(s->command);
	free(s->cgroup);
	free(s->hostname);
	for (size_t i = 0; i < s->n_labels; i++)
		free(s->labels[i]);
	free(s->labels);
	for (size_t i = 0; i < s->process.n_args; i++)
		free(s->process.args[i]);
	free(s->process.args);
	for (size_t i = 0; i < s->process.n_env; i++)
		free(s->process.env[i]);
	free(s->process.env);
	free(s->process.cwd);
	free(s->process.user);
	free(s);
}

void hutch_state_list_free(struct hutch_state_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		hutch_state_free(l->items[i]);
	free(l->items);
	*l = (struct hutch_state_list){0};
}

static char *container_dir(const struct hutch_runtime *rt, const char *id)
{
	return xasprintf("%s/containers/%s", rt->data_root, id);
}

char *hutch_state_log_path(const struct hutch_runtime *rt, const struct hutch_state *s)
{
	return xasprintf("%s/containers/%s/container.log", rt->data_root, s->id);
}

int state_write(const struct hutch_runtime *rt, const struct hutch_state *s,
		struct hutch_err **err)
{
	_cleanup_free_ char *dir = container_dir(rt, s->id);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return hutch_fail_sys(err, "open %s", dir);
	_cleanup_free_ char *text = hutch_state_to_json(s, true);
	/* no fsync: a record lost in a crash is repaired like a stale one */
	return write_file_replace(dfd, "state.json", text, strlen(text), err);
}

#define STAGED_RECORD "state.json.staged"

int state_stage(const struct hutch_runtime *rt, const struct hutch_state *s, struct hutch_err **err)
{
	_cleanup_free_ char *dir = container_dir(rt, s->id);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return hutch_fail_sys(err, "open %s", dir);
	_cleanup_free_ char *text = hutch_state_to_json(s, true);
	_cleanup_close_ int fd =
	    openat(dfd, STAGED_RECORD, O_WRONLY | O_CLOEXEC | O_CREAT | O_TRUNC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return hutch_fail_sys(err, "create %s/" STAGED_RECORD, dir);
	if (write_all(fd, text, strlen(text)) < 0) {
		int e = errno;
		unlinkat(dfd, STAGED_RECORD, 0);
		return hutch_fail(err, e, "write %s/" STAGED_RECORD, dir);
	}
	return steal_fd(dfd);
}

int state_stage_commit(int dfd, struct hutch_err **err)
{
	int ret = 0;
	if (renameat(dfd, STAGED_RECORD, dfd, "state.json") < 0) {
		ret = hutch_fail_sys(err, "rename " STAGED_RECORD " to state.json");
		unlinkat(dfd, STAGED_RECORD, 0);
	}
	close(dfd);
	return ret;
}

void state_stage_drop(int dfd)
{
	unlinkat(dfd, STAGED_RECORD, 0);
	close(dfd);
}

int state_read(const struct hutch_runtime *rt, const char *id, struct hutch_state **out)
{
	_cleanup_free_ char *path = xasprintf("%s/containers/%s/state.json", rt->data_root, id);
	_cleanup_free_ char *text = NULL;
	if (read_file_at(AT_FDCWD, path, &text, NULL, NULL) < 0)
		return -1;
	struct hutch_state *s = xcalloc(1, sizeof(*s));
	if (state_parse(text, s) < 0) {
		hutch_state_free(s);
		return -1;
	}
	*out = s;
	return 0;
}

/* Is the process still the one we started (not a reused pid)? */
static bool same_process(pid_t pid, uint64_t start)
{
	return pid > 0 && start && proc_start_time(pid) == start;
}

/* A zombie is "the same process" but no longer runs anything. */
static bool is_zombie(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	_cleanup_free_ char *t = NULL;
	if (read_file_at(AT_FDCWD, path, &t, NULL, NULL) < 0)
		return true;
	const char *p = strrchr(t, ')');
	return !p || p[2] == 'Z' || p[2] == 'X';
}

int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Remove a container's directory (rw layer, state, log). */
int state_remove_dir(const struct hutch_runtime *rt, const char *id, struct hutch_err **err)
{
	_cleanup_free_ char *dir = container_dir(rt, id);
	return state_remove_dir_at(dir, err);
}

int state_remove_dir_at(const char *dir, struct hutch_err **err)
{
	char target[PATH_MAX];
	ssize_t n = readlink(dir, target, sizeof(target) - 1);
	if (n <= 0)
		return remove_tree_as_owner(dir, err);
	/* the dir under RUN first: a link left alone is an orphan (collect_orphan) */
	target[n] = '\0';
	_cleanup_free_ char *full = NULL;
	if (target[0] != '/') { /* relative to the link's own dir */
		const char *slash = strrchr(dir, '/');
		full = xasprintf("%.*s/%s", slash ? (int)(slash - dir) : 1, slash ? dir : ".", target);
	}
	if (remove_tree_as_owner(full ? full : target, err) < 0)
		return -1;
	if (unlink(dir) < 0 && errno != ENOENT)
		return hutch_fail_sys(err, "remove %s", dir);
	return 0;
}

/* Is path on a filesystem in memory? Asked once per process. */
static bool in_memory(const char *path)
{
	static int known = -1;
	if (known < 0) {
		struct statfs sf;
		known = statfs(path, &sf) == 0 &&
			(sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC);
	}
	return known;
}

char *state_make_dir(const struct hutch_runtime *rt, const char *id, bool in_run,
		     struct hutch_err **err)
{
	char *dir = container_dir(rt, id);
	/* RUN/rm/ + 16 hex digits, and a link short enough to be kept in the
	 * inode (ext4 keeps up to 59 bytes there; a longer one takes a block):
	 * relative to DATA/containers where RUN is under DATA (--root DIR) */
	_cleanup_free_ char *rm = xasprintf("%s/rm", rt->run_root);
	_cleanup_free_ char *target = xasprintf("%s/%.16s", rm, id);
	size_t dl = strlen(rt->data_root);
	_cleanup_free_ char *link = !strncmp(rt->run_root, rt->data_root, dl) && rt->run_root[dl] == '/'
					? xasprintf("../%s/rm/%.16s", rt->run_root + dl + 1, id)
					: xstrdup(target);
	if (in_run && strlen(link) < 60 && in_memory(rt->run_root) &&
	    (mkdir(rm, 0700) == 0 || errno == EEXIST) && mkdir(target, 0700) == 0) {
		if (symlink(link, dir) == 0)
			return dir;
		int e = errno;
		rmdir(target);
		hutch_fail(err, e, "create %s", dir);
		free(dir);
		return NULL;
	}
	if (mkdir(dir, 0700) < 0) {
		hutch_fail_sys(err, "create %s", dir);
		free(dir);
		return NULL;
	}
	return dir;
}

/* Kill whatever still runs in a container's cgroup: a record that never got
 * to "running" knows no pid, and exec'd processes are not pid 1's children. */
static void kill_cgroup(int fd)
{
	if (write_file_at(fd, "cgroup.kill", "1", NULL) == 0)
		return;
	/* before Linux 5.14: one by one */
	_cleanup_free_ char *procs = NULL;
	if (read_file_at(fd, "cgroup.procs", &procs, NULL, NULL) < 0)
		return;
	for (char *p = procs, *end; *p; p = end) {
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		int pfd = pid > 0 ? (int)syscall(SYS_pidfd_open, (pid_t)pid, 0) : -1;
		if (pfd >= 0) {
			syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
			close(pfd);
		}
	}
}

/* Empty and remove the cgroup a record names, if it is the container's own
 * (cgroup_open_record): a record naming any other cgroup is said so and that
 * cgroup left alone. 0 when the record's cgroup is gone (s->cgroup NULL), -1 if
 * it stays. */
int state_remove_cgroup(struct hutch_runtime *rt, struct hutch_state *s, struct hutch_err **err)
{
	if (!s->cgroup)
		return 0;
	_cleanup_err_ struct hutch_err *e = NULL;
	_cleanup_close_ int fd = cgroup_open_record(rt, s->cgroup, s->id, &e);
	if (fd < 0 && errno == EPERM) {
		hutch_runtime_log(rt, HUTCH_LOG_WARNING, "%s: left alone", e->msg);
	} else if (fd < 0 && errno != ENOENT) {
		if (err && !*err)
			*err = steal_ptr(e);
		return -1;
	} else {
		if (fd >= 0)
			kill_cgroup(fd);
		if (cgroup_remove(s->cgroup, err) < 0)
			return -1;
	}
	free(s->cgroup);
	s->cgroup = NULL;
	return 0;
}

/* The owner (a detached container's monitor, or the foreground `run`) of a
 * created or running record is gone. A zombie owner is gone too: it exited. */
static bool owner_gone(const struct hutch_state *s)
{
	return !same_process(s->monitor_pid, s->monitor_start) || is_zombie(s->monitor_pid);
}

/* The owner of a created or running record is gone: finish its work (kill what
 * runs, remove the cgroup; a container that never ran leaves nothing, one that
 * ran is recorded as killed). True if the container is gone altogether. */
static bool reconcile(struct hutch_runtime *rt, struct hutch_state *s)
{
	/* an exited --rm container is still here only if its cgroup could not be
	 * removed (nobody could `rm` it: it is not listed): try again */
	bool retry_rm = s->status == HUTCH_EXITED && s->auto_remove && s->cgroup;
	if ((s->status == HUTCH_EXITED && !retry_rm) || !owner_gone(s))
		return false;
	_cleanup_free_ char *dir = container_dir(rt, s->id);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || flock(dfd, LOCK_EX) < 0)
		return dfd < 0;
	/* re-read under the lock: someone may have finished it meanwhile */
	struct hutch_state *fresh = NULL;
	if (state_read(rt, s->id, &fresh) < 0)
		return true; /* removed meanwhile */
	if (fresh->status != s->status || (retry_rm && !fresh->cgroup)) {
		s->status = fresh->status;
		s->exit_code = fresh->exit_code;
		s->finished_ns = fresh->finished_ns;
		free(s->cgroup);
		s->cgroup = fresh->cgroup;
		fresh->cgroup = NULL;
		hutch_state_free(fresh);
		return false;
	}
	hutch_state_free(fresh);
	if (s->status == HUTCH_RUNNING && same_process(s->pid, s->pid_start)) {
		int pfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
		if (pfd >= 0) {
			syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
			struct pollfd p = {.fd = pfd, .events = POLLIN};
			poll(&p, 1, 5000);
			close(pfd);
		}
	}
	/* A cgroup that could not be removed stays in the record for `rm`. A
	 * container being started again (restart_count > 0) has run before: it
	 * stays, as exited, with its rw layer. */
	state_remove_cgroup(rt, s, NULL);
	bool never_ran = s->status == HUTCH_CREATED && s->restart_count == 0;
	if (!s->cgroup && (never_ran || s->auto_remove) && state_remove_dir(rt, s->id, NULL) == 0)
		return true;
	if (retry_rm)
		return false;
	s->status = HUTCH_EXITED;
	s->exit_code = 137;
	s->finished_ns = now_ns();
	state_write(rt, s, NULL);
	return false;
}

/* DATA/containers/ID without a record: its creator died between mkdir and the
 * first record, or a remover died half way. Creators do both under the lock of
 * DATA/containers and removers hold the container dir's lock, so with both
 * locks taken, no record means nobody owns it. parent_locked: the caller holds
 * the first lock already (a start checking names). */
static void collect_orphan(struct hutch_runtime *rt, const char *id, bool parent_locked)
{
	_cleanup_free_ char *parent = xasprintf("%s/containers", rt->data_root);
	_cleanup_close_ int pfd = -1;
	if (!parent_locked) {
		pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0 || flock(pfd, LOCK_EX) < 0)
			return;
	}
	_cleanup_free_ char *dir = container_dir(rt, id);
	/* a foreground --rm container's dir is a link to one under RUN
	 * (state_make_dir): gone after a reboot, or its remover died half way */
	struct stat st;
	if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode) && stat(dir, &st) < 0 && errno == ENOENT) {
		unlink(dir);
		return;
	}
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || flock(dfd, LOCK_EX | LOCK_NB) < 0)
		return;
	if (faccessat(dfd, "state.json", F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
		state_remove_dir_at(dir, NULL);
}

static int list_states(struct hutch_runtime *rt, struct hutch_state_list *out, bool parent_locked,
		       struct hutch_err **err)
{
	*out = (struct hutch_state_list){0};
	_cleanup_free_ char *dir = xasprintf("%s/containers", rt->data_root);
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : hutch_fail_sys(err, "open %s", dir);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strlen(de->d_name) != 64 || !is_hex_string(de->d_name, 64))
			continue;
		struct hutch_state *s = NULL;
		if (state_read(rt, de->d_name, &s) < 0) {
			/* no record (an unreadable one is left alone) */
			_cleanup_free_ char *rec =
				xasprintf("%s/%s/state.json", dir, de->d_name);
			if (faccessat(AT_FDCWD, rec, F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
			    errno == ENOENT)
				collect_orphan(rt, de->d_name, parent_locked);
			continue;
		}
		if (reconcile(rt, s) || (s->status == HUTCH_EXITED && s->auto_remove)) {
			hutch_state_free(s);
			continue;
		}
		out->items = xrealloc(out->items, (out->n + 1) * sizeof(*out->items));
		out->items[out->n++] = s;
	}
	closedir(d);
	/* newest first, like docker ps */
	for (size_t i = 1; i < out->n; i++)
		for (size_t j = i; j > 0 && out->items[j]->created_ns > out->items[j - 1]->created_ns;
		     j--) {
			struct hutch_state *t = out->items[j];
			out->items[j] = out->items[j - 1];
			out->items[j - 1] = t;
		}
	return 0;
}

int hutch_state_list(struct hutch_runtime *rt, struct hutch_state_list *out,
		     struct hutch_err **err)
{
	return list_states(rt, out, false, err);
}

int hutch_state_find(struct hutch_runtime *rt, const char *ref, struct hutch_state **out,
		     struct hutch_err **err)
{
	/* A full id (what a supervisor holds) is read alone, not with every
	 * record there is: a stack of 50 looked each of them up 50 times. */
	if (strlen(ref) == 64 && is_hex_string(ref, 64)) {
		struct hutch_state *s = NULL;
		if (state_read(rt, ref, &s) == 0) {
			if (!reconcile(rt, s) && !(s->status == HUTCH_EXITED && s->auto_remove)) {
				*out = s;
				return 0;
			}
			hutch_state_free(s);
		}
	}
	struct hutch_state_list l;
	if (hutch_state_list(rt, &l, err) < 0)
		return -1;
	/* Docker's order: a full id, then a name, then a unique id prefix. */
	struct hutch_state *found = NULL;
	size_t prefix_matches = 0, rl = strlen(ref);
	for (size_t i = 0; i < l.n && !found; i++)
		if (!strcmp(l.items[i]->id, ref))
			found = l.items[i];
	for (size_t i = 0; i < l.n && !found; i++)
		if (l.items[i]->name && !strcmp(l.items[i]->name, ref))
			found = l.items[i];
	if (found)
		prefix_matches = 1;
	for (size_t i = 0; i < l.n && !found; i++)
		if (rl >= 1 && !strncmp(l.items[i]->id, ref, rl))
			prefix_matches++;
	if (!found)
		for (size_t i = 0; i < l.n && !found; i++)
			if (rl >= 1 && !strncmp(l.items[i]->id, ref, rl))
				found = l.items[i];
	int ret = 0;
	if (!found) {
		hutch_fail(err, 0, "no such container: '%s' (see 'hutch ps -a')", ref);
		ret = HUTCH_STATE_NOT_FOUND;
	} else if (prefix_matches > 1)
		ret = hutch_fail(err, 0, "container id prefix '%s' is ambiguous: give more of it",
				 ref);
	if (ret == 0) {
		for (size_t i = 0; i < l.n; i++)
			if (l.items[i] == found)
				l.items[i] = NULL;
		*out = found;
	}
	for (size_t i = 0; i < l.n; i++)
		hutch_state_free(l.items[i]);
	free(l.items);
	l.items = NULL;
	return ret;
}

int state_name_taken(struct hutch_runtime *rt, const char *name, char *owner_id)
{
	struct hutch_state_list l;
	if (list_states(rt, &l, true, NULL) < 0)
		return 0;
	int taken = 0;
	for (size_t i = 0; i < l.n && !taken; i++)
		if (l.items[i]->name && !strcmp(l.items[i]->name, name)) {
			taken = 1;
			if (owner_id)
				memcpy(owner_id, l.items[i]->id, 65);
		}
	hutch_state_list_free(&l);
	return taken;
}

int hutch_state_signal(struct hutch_runtime *rt, const struct hutch_state *s, int sig,
		       struct hutch_err **err)
{
	if (s->status != HUTCH_RUNNING || !same_process(s->pid, s->pid_start))
		return hutch_fail(err, 0, "container %.12s is not running", s->id);
	_cleanup_close_ int pfd = pidfd_open_or_fail(s->pid, true, err);
	if (pfd < 0 && errno != ESRCH)
		return -1;
	if (pfd < 0 || !same_process(s->pid, s->pid_start))
		return hutch_fail(err, 0, "container %.12s is not running", s->id);
	if (syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0) < 0)
		return hutch_fail_sys(err, "send signal %d to container %.12s", sig, s->id);
	return 0;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for a process through its pidfd: 0 when it has exited (a zombie has),
 * 1 on timeout (deadline in mono_ms, -1: none). */
static int wait_pid_exit(pid_t pid, uint64_t start, int64_t deadline, struct hutch_err **err)
{
	if (!same_process(pid, start))
		return 0;
	_cleanup_close_ int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0 || !same_process(pid, start))
		return 0;
	for (;;) {
		int wait_ms = deadline < 0 ? -1 : (int)(deadline - mono_ms());
		if (deadline >= 0 && wait_ms < 0)
			wait_ms = 0;
		struct pollfd p = {.fd = pfd, .events = POLLIN};
		int r = poll(&p, 1, wait_ms);
		if (r > 0)
			return 0;
		if (r == 0)
			return 1;
		if (errno != EINTR)
			return hutch_fail_sys(err, "wait for process %d", pid);
	}
}

int hutch_state_wait_exited(struct hutch_runtime *rt, const struct hutch_state *s, int timeout_ms,
			    struct hutch_err **err)
{
	int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	/* The container first, then its monitor, which records the exit and ends. */
	int r = wait_pid_exit(s->pid, s->pid_start, deadline, err);
	if (r == 0)
		r = wait_pid_exit(s->monitor_pid, s->monitor_start, deadline, err);
	if (r != 0)
		return r;
	/* the record is final now (or the monitor died: reconcile) */
	struct hutch_state *cur = NULL;
	if (state_read(rt, s->id, &cur) == 0) {
		reconcile(rt, cur);
		hutch_state_free(cur);
	}
	return 0;
}

int hutch_state_stop(struct hutch_runtime *rt, const struct hutch_state *s, int timeout_s,
		     struct hutch_err **err)
{
	if (s->status != HUTCH_RUNNING)
		return 0;
	if (hutch_state_signal(rt, s, s->process.stop_signal, NULL) == 0) {
		int r = hutch_state_wait_exited(rt, s, timeout_s * 1000, err);
		if (r <= 0)
			return r;
	}
	hutch_state_signal(rt, s, SIGKILL, NULL);
	return hutch_state_wait_exited(rt, s, 10000, err) < 0 ? -1 : 0;
}

int hutch_state_remove(struct hutch_runtime *rt, const struct hutch_state *s, bool force,
		       struct hutch_err **err)
{
	if (s->status == HUTCH_CREATED) {
		/* its owner is alive (listing repaired the others): still starting */
		if (!force)
			return hutch_fail(err, 0,
					  "container %.12s is starting (in process %d): wait for "
					  "it, or use 'rm -f'",
					  s->id, s->monitor_pid);
		_cleanup_close_ int pfd = (int)syscall(SYS_pidfd_open, s->monitor_pid, 0);
		if (pfd >= 0 && same_process(s->monitor_pid, s->monitor_start))
			syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
		if (wait_pid_exit(s->monitor_pid, s->monitor_start, mono_ms() + 10000, err) != 0)
			return hutch_fail(err, 0, "container %.12s did not stop", s->id);
		struct hutch_state *cur = NULL;
		if (state_read(rt, s->id, &cur) < 0)
			return 0;
		bool gone = reconcile(rt, cur);
		hutch_state_free(cur);
		if (gone)
			return 0;
	} else if (s->status == HUTCH_RUNNING) {
		if (!force)
			return hutch_fail(err, 0,
					  "container %.12s is running: stop it first, or use "
					  "'rm -f'",
					  s->id);
		hutch_state_signal(rt, s, SIGKILL, NULL);
		if (hutch_state_wait_exited(rt, s, 10000, err) != 0)
			return hutch_fail(err, 0, "container %.12s did not stop", s->id);
	}
	_cleanup_free_ char *dir = container_dir(rt, s->id);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		flock(dfd, LOCK_EX);
	/* the record as it is now: a repair may have changed it */
	struct hutch_state *cur = NULL;
	if (state_read(rt, s->id, &cur) < 0)
		return 0;
	if (cur->status != HUTCH_EXITED) {
		/* started again (`start`, a supervisor) since it was looked up */
		close(steal_fd(dfd));
		int r = force ? hutch_state_remove(rt, cur, true, err)
			      : hutch_fail(err, 0,
					   "container %.12s was started again meanwhile: stop it "
					   "first, or use 'rm -f'",
					   s->id);
		hutch_state_free(cur);
		return r;
	}
	if (state_remove_cgroup(rt, cur, err) < 0) {
		hutch_state_free(cur);
		return hutch_err_wrap(err, "remove container %.12s", s->id);
	}
	hutch_state_free(cur);
	return state_remove_dir(rt, s->id, err);
}
