/* The stack on disk: RUN/stacks/NAME (control socket, supervisor pid, notify
 * sockets: gone at reboot with the run dir) and DATA/stacks/NAME (what must
 * survive a reboot: the stack file's path, what each replica's restarts and
 * the user's stops were, named volumes, the supervisor's log). */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "supervisor/sup_internal.h"

void sup_paths_init(struct sup_paths *p, const char *data_root, const char *run_root,
		    const char *name)
{
	p->run_dir = xasprintf("%s/stacks/%s", run_root, name);
	p->data_dir = xasprintf("%s/stacks/%s", data_root, name);
	p->sock = xasprintf("%s/control.sock", p->run_dir);
	p->pidfile = xasprintf("%s/supervisor.pid", p->run_dir);
	p->log = xasprintf("%s/supervisor.log", p->data_dir);
}

void sup_paths_fini(struct sup_paths *p)
{
	free(p->run_dir);
	free(p->data_dir);
	free(p->sock);
	free(p->pidfile);
	free(p->log);
	memset(p, 0, sizeof(*p));
}

uint64_t sup_proc_start_time(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	char *text = NULL;
	size_t len;
	if (read_file_at(AT_FDCWD, path, &text, &len, NULL) < 0)
		return 0;
	/* field 22, counted after the last ')' (the name may hold anything) */
	char *p = strrchr(text, ')');
	unsigned long long start = 0;
	if (p) {
		int field = 2;
		for (p++; *p && field < 22; p++)
			if (*p == ' ')
				field++;
		start = strtoull(p, NULL, 10);
	}
	free(text);
	return start;
}

pid_t sup_running(const struct sup_paths *p)
{
	char *text = NULL;
	size_t len;
	if (read_file_at(AT_FDCWD, p->pidfile, &text, &len, NULL) < 0)
		return 0;
	long pid = 0;
	unsigned long long start = 0;
	int n = sscanf(text, "%ld %llu", &pid, &start);
	free(text);
	if (n != 2 || pid <= 0)
		return 0;
	if (sup_proc_start_time((pid_t)pid) != start)
		return 0;
	/* a zombie supervisor (its parent has not reaped it) is gone too */
	char path[64], *st = NULL;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (read_file_at(AT_FDCWD, path, &st, &len, NULL) == 0) {
		char *q = strrchr(st, ')');
		bool zombie = q && q[1] == ' ' && q[2] == 'Z';
		free(st);
		if (zombie)
			return 0;
	}
	return (pid_t)pid;
}

int sup_write_pidfile(const struct sup_paths *p, struct hutch_err **err)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "%d %llu\n", getpid(),
			 (unsigned long long)sup_proc_start_time(getpid()));
	return write_file_atomic(AT_FDCWD, p->pidfile, buf, (size_t)n, err);
}

static char *record_path(const struct sup_paths *p, const char *service, unsigned replica)
{
	return xasprintf("%s/replicas/%s-%u.json", p->data_dir, service, replica);
}

int sup_record_read(const struct sup_paths *p, const char *service, unsigned replica,
		    struct sup_replica_record *out)
{
	memset(out, 0, sizeof(*out));
	_cleanup_free_ char *path = record_path(p, service, replica);
	char *text = NULL;
	size_t len;
	if (read_file_at_most(AT_FDCWD, path, 4096, 0, &text, &len, NULL) < 0)
		return -1;
	struct json_object *o = json_tokener_parse(text);
	free(text);
	if (!o)
		return -1;
	struct json_object *v;
	if (json_object_object_get_ex(o, "restarts", &v))
		out->restarts = (unsigned)json_object_get_int(v);
	if (json_object_object_get_ex(o, "backoff", &v))
		out->backoff = json_object_get_int64(v);
	if (json_object_object_get_ex(o, "stopped_by_user", &v))
		out->stopped_by_user = json_object_get_boolean(v);
	if (json_object_object_get_ex(o, "health", &v))
		out->health = json_object_get_int(v);
	out->state = -1;
	if (json_object_object_get_ex(o, "state", &v))
		out->state = json_object_get_int(v);
	if (out->backoff < 0 || out->backoff > SVC_BACKOFF_MAX)
		out->backoff = 0;
	if (out->health < SVC_HEALTH_NONE || out->health > SVC_HEALTH_UNHEALTHY)
		out->health = SVC_HEALTH_NONE;
	json_object_put(o);
	return 0;
}

void sup_record_write(const struct sup_paths *p, const char *service, unsigned replica,
		      const struct sup_replica_record *r)
{
	_cleanup_free_ char *dir = xasprintf("%s/replicas", p->data_dir);
	mkdir_p_at(AT_FDCWD, dir, 0700, NULL);
	_cleanup_free_ char *path = record_path(p, service, replica);
	_cleanup_free_ char *text =
	    xasprintf("{\"restarts\":%u,\"backoff\":%lld,\"stopped_by_user\":%s,\"health\":%d,"
		      "\"state\":%d}\n",
		      r->restarts, (long long)r->backoff, r->stopped_by_user ? "true" : "false",
		      r->health, r->state);
	write_file_replace(AT_FDCWD, path, text, strlen(text), NULL);
}

static struct json_object *strv_json(char *const *v, size_t n)
{
	struct json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static void json_strv(struct json_object *o, const char *key, char ***v, size_t *n)
{
	struct json_object *a = NULL;
	*v = NULL;
	*n = 0;
	if (!json_object_object_get_ex(o, key, &a) || !json_object_is_type(a, json_type_array))
		return;
	size_t len = json_object_array_length(a);
	*v = xcalloc(len + 1, sizeof(**v));
	for (size_t i = 0; i < len; i++)
		(*v)[(*n)++] = xstrdup(json_object_get_string(json_object_array_get_idx(a, i)));
}

int sup_stack_info_write(const struct sup_paths *p, const struct hutch_stack_src *src, bool up)
{
	mkdir_p_at(AT_FDCWD, p->data_dir, 0700, NULL);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "file",
			       json_object_new_string(src->n_files ? src->files[0] : ""));
	json_object_object_add(o, "files", strv_json(src->files, src->n_files));
	if (src->project_name)
		json_object_object_add(o, "project_name",
				       json_object_new_string(src->project_name));
	json_object_object_add(o, "env_files", strv_json(src->env_files, src->n_env_files));
	json_object_object_add(o, "profiles", strv_json(src->profiles, src->n_profiles));
	json_object_object_add(o, "ignore_unsupported",
			       json_object_new_boolean(src->ignore_unsupported));
	json_object_object_add(o, "up", json_object_new_boolean(up));
	const char *t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							      JSON_C_TO_STRING_NOSLASHESCAPE);
	_cleanup_free_ char *path = xasprintf("%s/stack.json", p->data_dir);
	int rc = write_file_replace(AT_FDCWD, path, t, strlen(t), NULL);
	json_object_put(o);
	return rc;
}

int sup_stack_info_read(const char *path, struct hutch_stack_src *src, bool *up)
{
	memset(src, 0, sizeof(*src));
	*up = false;
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (read_file_at(AT_FDCWD, path, &text, &len, NULL) < 0)
		return -1;
	struct json_object *o = json_tokener_parse(text);
	if (!o)
		return -1;
	struct json_object *f = NULL, *v = NULL;
	json_strv(o, "files", &src->files, &src->n_files);
	if (!src->n_files && json_object_object_get_ex(o, "file", &f)) {
		free(src->files);
		src->files = xcalloc(2, sizeof(*src->files));
		src->files[src->n_files++] = xstrdup(json_object_get_string(f));
	}
	if (json_object_object_get_ex(o, "project_name", &v))
		src->project_name = xstrdup(json_object_get_string(v));
	json_strv(o, "env_files", &src->env_files, &src->n_env_files);
	json_strv(o, "profiles", &src->profiles, &src->n_profiles);
	src->ignore_unsupported =
	    json_object_object_get_ex(o, "ignore_unsupported", &v) && json_object_get_boolean(v);
	*up = json_object_object_get_ex(o, "up", &v) && json_object_get_boolean(v);
	json_object_put(o);
	return 0;
}

void hutch_stack_src_fini(struct hutch_stack_src *src)
{
	strv_free(src->files, src->n_files);
	free(src->project_name);
	strv_free(src->env_files, src->n_env_files);
	strv_free(src->profiles, src->n_profiles);
	memset(src, 0, sizeof(*src));
}

int hutch_stack_load_src(const struct hutch_stack_src *src, struct hutch_stack **out,
			 struct hutch_err **err)
{
	struct hutch_stack_load_opts opts = {
	    .project_name = src->project_name,
	    .env_files = (const char *const *)src->env_files,
	    .n_env_files = src->n_env_files,
	    .profiles = (const char *const *)src->profiles,
	    .n_profiles = src->n_profiles,
	    .ignore_unsupported = src->ignore_unsupported,
	};
	return hutch_stack_load_files((const char *const *)src->files, src->n_files, &opts, out,
				      err);
}

int sup_unix_addr(const char *path, struct sockaddr_un *sa, int *dirfd, struct hutch_err **err)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	*dirfd = -1;
	if (strlen(path) < sizeof(sa->sun_path)) {
		strcpy(sa->sun_path, path);
		return 0;
	}
	/* longer than sun_path (a long stack name under a deep run root): through
	 * the directory's fd, which any path length can be opened as */
	const char *slash = strrchr(path, '/');
	_cleanup_free_ char *dir = slash ? strndup(path, (size_t)(slash - path)) : xstrdup(".");
	*dirfd = open(*dir ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return hutch_fail_sys(err, "open %s", dir);
	int n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", *dirfd,
			 slash ? slash + 1 : path);
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path)) {
		close(*dirfd);
		*dirfd = -1;
		return hutch_fail(err, 0, "socket name too long: %s", path);
	}
	return 0;
}
