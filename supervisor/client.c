/* What the CLI needs of a stack besides its supervisor: the full check before
 * anything starts, the control socket's client side, the stack list, and a
 * down that works without a supervisor (after a SIGKILL of it). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "images/images.h"
#include "supervisor/sup_internal.h"

int hutch_stack_check(const struct hutch_stack *stack, const char *data_root, const char *run_root,
		      bool rootless, struct hutch_err **err)
{
	struct hutch_runtime rt = {0};
	struct hutch_store *store = NULL;
	int rc = -1;
	if (hutch_runtime_init(&rt, data_root, run_root, err) < 0)
		return -1;
	rt.rootless = rootless;
	rt.quiet = true;
	if (hutch_store_open(data_root, rootless, HUTCH_STORE_READ, &store, err) < 0)
		goto out;
	struct sup_build_ctx b = {.rt = &rt, .data_root = data_root, .stack = stack};
	rc = sup_check_stack(&b, store, err);
out:
	if (store)
		hutch_store_close(store);
	hutch_runtime_fini(&rt);
	return rc;
}

pid_t hutch_stack_supervisor(const char *data_root, const char *run_root, const char *name)
{
	struct sup_paths p;
	sup_paths_init(&p, data_root, run_root, name);
	pid_t pid = sup_running(&p);
	sup_paths_fini(&p);
	return pid;
}

int hutch_stack_connect(const char *run_root, const char *name, struct hutch_err **err)
{
	_cleanup_free_ char *path = xasprintf("%s/stacks/%s/control.sock", run_root, name);
	struct sockaddr_un sa;
	_cleanup_close_ int dirfd = -1;
	if (sup_unix_addr(path, &sa, &dirfd, err) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return hutch_fail_sys(err, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		hutch_fail_sys(err, "connect to the supervisor of stack %s (%s)", name, path);
		close(fd);
		return -1;
	}
	return fd;
}

static int64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int hutch_stack_request(int fd, const char *request, int timeout_ms,
			int (*on_line)(const char *line, void *data), void *data,
			struct hutch_err **err)
{
	if (request && (write_all(fd, request, strlen(request)) < 0 || write_all(fd, "\n", 1) < 0))
		return hutch_fail_sys(err, "send a request to the supervisor");
	int64_t deadline = timeout_ms >= 0 ? ms_now() + timeout_ms : -1;
	char *buf = NULL;
	size_t len = 0;
	int rc = 0;
	for (;;) {
		char *nl;
		while ((nl = buf ? memchr(buf, '\n', len) : NULL)) {
			*nl = '\0';
			rc = on_line(buf, data);
			size_t used = (size_t)(nl - buf) + 1;
			memmove(buf, nl + 1, len - used);
			len -= used;
			if (rc)
				goto out;
		}
		int wait = -1;
		if (deadline >= 0) {
			int64_t left = deadline - ms_now();
			if (left <= 0) {
				rc = 1;
				goto out;
			}
			wait = (int)left;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n = poll(&p, 1, wait);
		if (n < 0 && errno == EINTR) {
			rc = 2; /* interrupted: the caller decides */
			goto out;
		}
		if (n == 0)
			continue;
		char chunk[8192];
		ssize_t got = read(fd, chunk, sizeof(chunk));
		if (got < 0 && errno == EINTR) {
			rc = 2;
			goto out;
		}
		if (got <= 0) {
			rc = 0;
			goto out;
		}
		buf = xrealloc(buf, len + (size_t)got + 1);
		memcpy(buf + len, chunk, (size_t)got);
		len += (size_t)got;
	}
out:
	free(buf);
	return rc;
}

char *hutch_stack_log_path(const char *data_root, const char *name)
{
	return xasprintf("%s/stacks/%s/supervisor.log", data_root, name);
}

int hutch_stack_remove_volumes(const char *data_root, const char *name, struct hutch_err **err)
{
	_cleanup_free_ char *dir = xasprintf("%s/stacks/%s/volumes", data_root, name);
	if (access(dir, F_OK) < 0)
		return 0;
	return remove_tree_at(AT_FDCWD, dir, err);
}

/* Service index by name in the stack, or SIZE_MAX. */
static size_t order_pos(const struct hutch_stack *stack, const char *service)
{
	for (size_t k = 0; stack && k < stack->n_services; k++)
		if (!strcmp(stack->services[stack->order[k]].name, service))
			return k;
	return (size_t)-1;
}

struct victim {
	struct hutch_state *st;
	size_t pos;
	int sig;
};

static int by_pos_desc(const void *a, const void *b)
{
	const struct victim *x = a, *y = b;
	/* unknown services (SIZE_MAX) first: nothing in the file depends on them */
	return x->pos < y->pos ? 1 : x->pos > y->pos ? -1 : 0;
}

int hutch_stack_down_offline(const char *data_root, const char *run_root, bool rootless,
			     const struct hutch_stack *stack, const char *name, int grace_s,
			     struct hutch_err **err)
{
	struct hutch_runtime rt = {0};
	if (hutch_runtime_init(&rt, data_root, run_root, err) < 0)
		return -1;
	rt.rootless = rootless;
	rt.quiet = true;
	struct hutch_state_list l = {0};
	int rc = 0;
	if (hutch_state_list(&rt, &l, err) < 0) {
		hutch_runtime_fini(&rt);
		return -1;
	}
	struct victim *v = xcalloc(l.n + 1, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < l.n; i++) {
		const char *svc;
		unsigned idx;
		if (!sup_labels_match(l.items[i]->labels, l.items[i]->n_labels, name, &svc, &idx))
			continue;
		v[n].st = l.items[i];
		v[n].pos = order_pos(stack, svc);
		n++;
	}
	qsort(v, n, sizeof(*v), by_pos_desc);
	/* the same position (replicas, independent services) stop together:
	 * signal a group, then wait for each of it */
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && v[j].pos == v[i].pos)
			j++;
		for (size_t k = i; k < j; k++)
			if (v[k].st->status == HUTCH_RUNNING)
				hutch_state_signal(&rt, v[k].st, v[k].st->process.stop_signal,
						   NULL);
		for (size_t k = i; k < j; k++) {
			struct hutch_err *e = NULL;
			if (v[k].st->status == HUTCH_RUNNING)
				hutch_state_stop(&rt, v[k].st, grace_s < 0 ? 10 : grace_s, NULL);
			if (hutch_state_remove(&rt, v[k].st, true, &e) < 0) {
				fprintf(stderr, "hutch: down: cannot remove %s: %s\n",
					v[k].st->name ? v[k].st->name : v[k].st->id,
					e ? e->msg : "?");
				rc = -1;
			}
			hutch_err_free(&e);
		}
		i = j;
	}
	free(v);
	hutch_state_list_free(&l);
	hutch_runtime_fini(&rt);
	/* the networks a killed supervisor left (its containers are gone now) */
	struct hutch_err *ne = NULL;
	if (sup_net_cleanup_offline(data_root, run_root, name, rootless, &ne) < 0) {
		fprintf(stderr, "hutch: down: %s\n", ne && ne->msg ? ne->msg : "networks");
		rc = -1;
	}
	hutch_err_free(&ne);
	struct sup_paths p;
	sup_paths_init(&p, data_root, run_root, name);
	remove_tree_at(AT_FDCWD, p.run_dir, NULL);
	_cleanup_free_ char *replicas = xasprintf("%s/replicas", p.data_dir);
	remove_tree_at(AT_FDCWD, replicas, NULL);
	_cleanup_free_ char *logs = xasprintf("%s/logs", p.data_dir);
	remove_tree_at(AT_FDCWD, logs, NULL);
	_cleanup_free_ char *info = xasprintf("%s/stack.json", p.data_dir);
	struct hutch_stack_src src;
	bool was_up;
	if (sup_stack_info_read(info, &src, &was_up) == 0) {
		sup_stack_info_write(&p, &src, false);
		hutch_stack_src_fini(&src);
	}
	sup_paths_fini(&p);
	if (rc < 0)
		return hutch_fail(err, 0, "some containers of stack %s could not be removed", name);
	return 0;
}

int hutch_stack_list(const char *data_root, const char *run_root, struct hutch_stack_info **out,
		     size_t *n, struct hutch_err **err)
{
	*out = NULL;
	*n = 0;
	_cleanup_free_ char *dir = xasprintf("%s/stacks", data_root);
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : hutch_fail_sys(err, "open %s", dir);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		_cleanup_free_ char *path = xasprintf("%s/%s/stack.json", dir, e->d_name);
		struct hutch_stack_src src;
		bool up;
		if (sup_stack_info_read(path, &src, &up) < 0)
			continue;
		*out = xrealloc(*out, (*n + 1) * sizeof(**out));
		struct hutch_stack_info *i = &(*out)[(*n)++];
		i->name = xstrdup(e->d_name);
		i->file = xstrdup(src.n_files ? src.files[0] : "");
		i->src = src;
		i->up = up;
		i->supervisor = hutch_stack_supervisor(data_root, run_root, e->d_name);
	}
	closedir(d);
	return 0;
}

void hutch_stack_info_free(struct hutch_stack_info *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].file);
		hutch_stack_src_fini(&v[i].src);
	}
	free(v);
}

size_t hutch_stack_n_services(const struct hutch_stack *stack)
{
	return stack->n_services;
}

const char *hutch_stack_service_name(const struct hutch_stack *stack, size_t i)
{
	return stack->services[stack->order[i]].name;
}

const char *hutch_stack_file(const struct hutch_stack *stack)
{
	return stack->file;
}

unsigned hutch_stack_service_replicas(const struct hutch_stack *stack, const char *service)
{
	ssize_t i = stack_service_index(stack, service);
	if (i < 0)
		return 0;
	return stack->services[i].replicas ? stack->services[i].replicas : 1;
}

static void add_name(char **list, const char *name)
{
	if (*list && strstr(*list, name)) {
		/* one entry per service, however many replicas */
		for (const char *p = *list; (p = strstr(p, name)); p++) {
			size_t n = strlen(name);
			if ((p == *list || p[-1] == ' ') && (p[n] == ',' || !p[n]))
				return;
		}
	}
	char *joined = *list ? xasprintf("%s, %s", *list, name) : xstrdup(name);
	free(*list);
	*list = joined;
}

int hutch_stack_diff(const struct hutch_stack *stack, const char *data_root, const char *run_root,
		     bool rootless, char **changed, char **removed, struct hutch_err **err)
{
	*changed = *removed = NULL;
	struct hutch_runtime rt = {0};
	struct hutch_store *store = NULL;
	struct hutch_state_list l = {0};
	int rc = -1;
	if (hutch_runtime_init(&rt, data_root, run_root, err) < 0)
		return -1;
	rt.rootless = rootless;
	rt.quiet = true;
	if (hutch_store_open(data_root, rootless, HUTCH_STORE_READ, &store, err) < 0 ||
	    hutch_state_list(&rt, &l, err) < 0)
		goto out;
	char(*hashes)[17] = xcalloc(stack->n_services + 1, sizeof(*hashes));
	for (size_t i = 0; i < stack->n_services; i++) {
		struct hutch_image *img = NULL;
		if (hutch_image_get(store, stack->services[i].image, &img, NULL) == 0) {
			sup_config_hash(&stack->services[i], img->id, hashes[i]);
			hutch_image_free(img);
		}
	}
	for (size_t i = 0; i < l.n; i++) {
		const char *svc;
		unsigned idx;
		if (!sup_labels_match(l.items[i]->labels, l.items[i]->n_labels, stack->name, &svc,
				      &idx))
			continue;
		ssize_t k = stack_service_index(stack, svc);
		unsigned replicas =
		    k >= 0 && stack->services[k].replicas ? stack->services[k].replicas : 1;
		if (k < 0 || idx > replicas) {
			add_name(removed, l.items[i]->name ? l.items[i]->name : svc);
			continue;
		}
		const char *h =
		    hutch_label_get(l.items[i]->labels, l.items[i]->n_labels, SUP_LABEL_HASH);
		if (!h || strcmp(h, hashes[k]))
			add_name(changed, svc);
	}
	free(hashes);
	rc = 0;
out:
	hutch_state_list_free(&l);
	if (store)
		hutch_store_close(store);
	hutch_runtime_fini(&rt);
	return rc;
}

void hutch_stack_ps_status(const char *data_root, char *const *labels, size_t n_labels,
			   bool running, int exit_code, int64_t finished_ns, char *status,
			   size_t len)
{
	const char *stack = hutch_label_get(labels, n_labels, SUP_LABEL_STACK);
	const char *svc;
	unsigned idx;
	if (!stack || !sup_labels_match(labels, n_labels, stack, &svc, &idx))
		return;
	struct sup_paths p;
	sup_paths_init(&p, data_root, "", stack);
	struct sup_replica_record rec;
	int rc = sup_record_read(&p, svc, idx, &rec);
	sup_paths_fini(&p);
	if (rc < 0)
		return;
	size_t used = strlen(status);
	if (running && rec.state == SVC_RUNNING) {
		const char *h = rec.health == SVC_HEALTH_HEALTHY     ? " (healthy)"
				: rec.health == SVC_HEALTH_UNHEALTHY ? " (unhealthy)"
				: rec.health == SVC_HEALTH_STARTING  ? " (health: starting)"
								     : "";
		snprintf(status + used, len - used, "%s", h);
	} else if (!running && rec.state == SVC_BACKOFF) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		int64_t ago = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec - finished_ns;
		char when[64];
		svc_human_duration(ago > 0 ? ago : 0, when, sizeof(when));
		snprintf(status, len, "Restarting (%d) %s ago", exit_code, when);
	}
}

int hutch_stack_service_hash(const struct hutch_stack *stack, const char *service,
			     const char *image_id, char out[17])
{
	for (size_t i = 0; i < stack->n_services; i++)
		if (!strcmp(stack->services[i].name, service)) {
			sup_config_hash(&stack->services[i], image_id, out);
			return 0;
		}
	return -1;
}
