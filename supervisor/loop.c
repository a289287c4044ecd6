/* The supervisor: one process per stack, one event loop (epoll over a
 * signalfd, a timerfd per replica, the pidfds of the containers' monitors and
 * of health probes, notify sockets and the control socket). It feeds each
 * replica's state machine (service.c) with events and the monotonic time and
 * carries out the actions it returns. Idle, it makes no wakeups: every timer
 * is armed for a deadline the state machine chose.
 *
 * Services are ordinary detached containers (a monitor process each, started
 * by the runtime), so they outlive a supervisor killed with SIGKILL; a new one
 * finds them by their labels and adopts them. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "images/images.h"
#include "supervisor/sup_internal.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

enum watch_kind {
	W_SIGNAL,
	W_LISTEN,
	W_CLIENT,
	W_TIMER,
	W_PROBE_TIMER,
	W_MONITOR,
	W_PROBE,
	W_PROBE_OUT,
	W_NOTIFY,
	W_STARTER,
	W_NET, /* the stack's DNS server (stacknet.c) */
	W_EXIT,
};

struct watch {
	enum watch_kind kind;
	struct replica *rep;
	struct client *cl;
};

struct service;

struct replica {
	struct service *svc;
	unsigned index;
	char *cname;
	char label[96];
	char id[65];
	bool has_container;
	struct svc_replica r;
	int timer_fd, probe_timer_fd;
	int mon_pidfd;	/* -1: not watched */
	bool mon_child; /* ours to reap */
	int ctr_pidfd;	/* for signals */
	pid_t pid;
	struct sup_probe probe;
	int notify_fd;
	bool down_sent;
	bool
	    recreate; /* its container was made from other settings: the next start makes it anew */
	/* the forked process starting the container (SPAWN is answered when it
	 * exits, so that many containers start at once): its pidfd and the pipe
	 * its error comes through */
	int starter_pidfd, starter_pipe;
	pid_t starter_pid, mon_pid;
	/* the keeper's word of the exit (runtime.h, exit_notify_fd): fed as the
	 * EXIT at once, while its `internal finish` still records it; a SPAWN
	 * before that finish has ended waits for it (spawn_deferred) */
	int exit_fd;
	bool exit_fed, spawn_deferred;
	char *cgroup; /* of the running container: its OOM kills */
	/* its network namespace, for tcp probes made in the loop (root; -1:
	 * none, or the host's network: host_net) */
	int netns_fd;
	bool host_net;
	unsigned namespaces; /* of the running container (hutch_state's) */
	struct watch w_timer, w_probe_timer, w_mon, w_probe, w_probe_out, w_notify, w_starter,
	    w_exit;
};

struct service {
	struct stack_service *ss;
	struct svc_config cfg;
	struct hutch_image *img;
	char hash[17];
	struct replica *reps;
	unsigned n;
	bool active;
	struct svc_dep *deps;
	size_t n_deps;
};

struct sup;

/* A control-socket client (docs/api.md): never written to with a blocking
 * write (conn.c). One that breaks or stops reading is marked dead and freed
 * after the loop's round (reap_clients), never while a list of clients is
 * walked. */
struct client {
	struct sup *s;
	struct sup_conn conn;
	bool subscribed, waiting, down_waiting, handover;
	bool dead, want_out;
	struct watch w;
	struct client *next;
};

struct sup {
	struct hutch_runtime rt;
	const struct hutch_stack_src *src; /* kept in stack.json */
	struct hutch_stack *stack;
	struct hutch_store *store;
	struct sup_paths paths;
	char *notify_dir;
	struct sup_build_ctx bctx;
	struct service *svcs;
	size_t n_svcs;
	int ep, sigfd, lsock;
	int home_netns; /* ours, to come back to after making a probe's socket */
	struct watch w_sig, w_listen, w_net;
	struct sup_net *net; /* the stack's networks and DNS server; NULL: none */
	struct client *clients;
	bool dead_clients;
	bool recheck;
	bool downing;
	int64_t down_grace;
	bool quit, handover;
	bool handover_pending; /* `up` asked for a handover: once no restart is under way */
};

static int64_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t real_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A wall-clock time of a record as monotonic ns (for the state machine). */
static int64_t real_to_mono(int64_t real)
{
	int64_t m = mono_now() - (real_now() - real);
	return m > 0 ? m : 1;
}

static int64_t mono_to_real(int64_t mono)
{
	return real_now() - (mono_now() - mono);
}

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s ", ts);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	fflush(stderr);
}

static void rt_log(enum hutch_log_level level, const char *msg, void *data)
{
	logmsg("%s: %s", level == HUTCH_LOG_WARNING ? "warning" : "note", msg);
}

static void watch_add(struct sup *s, int fd, struct watch *w)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
	epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev);
}

static void watch_del(struct sup *s, int fd)
{
	if (fd >= 0)
		epoll_ctl(s->ep, EPOLL_CTL_DEL, fd, NULL);
}

/* ---- clients ---------------------------------------------------------------- */

/* Dropped: no more reads or writes; freed by reap_clients. */
static void client_drop(struct client *c)
{
	if (c->dead)
		return;
	c->dead = true;
	c->s->dead_clients = true;
	watch_del(c->s, c->conn.fd);
	shutdown(c->conn.fd, SHUT_RDWR);
}

/* EPOLLOUT only while output waits (else every round would wake for it). */
static void client_watch_out(struct client *c)
{
	bool want = sup_conn_pending(&c->conn);
	if (c->dead || want == c->want_out)
		return;
	struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0u), .data.ptr = &c->w};
	epoll_ctl(c->s->ep, EPOLL_CTL_MOD, c->conn.fd, &ev);
	c->want_out = want;
}

static void client_send(struct client *c, const char *line)
{
	if (c->dead)
		return;
	int r = sup_conn_send(&c->conn, line, strlen(line));
	if (r == -2)
		logmsg("dropping a control client (fd %d): it left more than %u bytes of answers "
		       "and events unread",
		       c->conn.fd, SUP_CONN_OUT_MAX);
	if (r < 0)
		client_drop(c);
	else
		client_watch_out(c);
}

static void client_send_json(struct client *c, struct json_object *o)
{
	client_send(c, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
}

static void client_reply_err(struct client *c, const char *msg)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(false));
	json_object_object_add(o, "error", json_object_new_string(msg));
	client_send_json(c, o);
	json_object_put(o);
}

static void client_reply_ok(struct client *c)
{
	client_send(c, "{\"ok\":true}");
}

static void client_close(struct sup *s, struct client *c)
{
	if (!c->dead)
		watch_del(s, c->conn.fd);
	sup_conn_fini(&c->conn);
	for (struct client **p = &s->clients; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	free(c);
}

/* Free the clients dropped in this round of the loop. */
static void reap_clients(struct sup *s)
{
	if (!s->dead_clients)
		return;
	s->dead_clients = false;
	for (struct client *c = s->clients, *next; c; c = next) {
		next = c->next;
		if (c->dead)
			client_close(s, c);
	}
}

/* ---- events ----------------------------------------------------------------- */

static const char *emit_name(enum svc_emit e)
{
	switch (e) {
	case SVC_EMIT_STARTED:
		return "started";
	case SVC_EMIT_START_FAILED:
		return "start_failed";
	case SVC_EMIT_NOT_STARTED:
		return "not_started";
	case SVC_EMIT_EXITED:
		return "exited";
	case SVC_EMIT_RESTARTING:
		return "restarting";
	case SVC_EMIT_HEALTH:
		return "health_status";
	case SVC_EMIT_STOPPING:
		return "stopping";
	case SVC_EMIT_KILLING:
		return "killing";
	case SVC_EMIT_STOPPED:
		return "stopped";
	case SVC_EMIT_ADOPTED:
		return "adopted";
	}
	return "unknown";
}

static struct json_object *exit_json(const struct svc_replica *r)
{
	if (!r->has_exited)
		return NULL;
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "code", json_object_new_int(r->last_exit.code));
	json_object_object_add(o, "signal", json_object_new_int(r->last_exit.signal));
	json_object_object_add(o, "oom", json_object_new_boolean(r->last_exit.oom));
	char why[256];
	svc_describe_exit(NULL, &r->last_exit, why, sizeof(why));
	json_object_object_add(o, "text", json_object_new_string(why));
	return o;
}

static void emit(struct sup *s, struct replica *rep, enum svc_emit e, int64_t at)
{
	struct json_object *o = json_object_new_object();
	/* an exit seen late (from its record) or early (the keeper's word) is
	 * told at its own time, from which its restart's backoff counts */
	int64_t when = e == SVC_EMIT_EXITED && rep->r.has_exited && rep->r.last_exit.at > 0
			   ? mono_to_real(rep->r.last_exit.at)
			   : real_now();
	json_object_object_add(o, "time", json_object_new_int64(when));
	json_object_object_add(o, "event", json_object_new_string(emit_name(e)));
	json_object_object_add(o, "service", json_object_new_string(rep->svc->ss->name));
	json_object_object_add(o, "replica", json_object_new_int((int)rep->index));
	json_object_object_add(o, "container", json_object_new_string(rep->cname));
	json_object_object_add(o, "id", json_object_new_string(rep->id));
	char text[600] = "";
	switch (e) {
	case SVC_EMIT_EXITED:
		json_object_object_add(o, "exit", exit_json(&rep->r));
		svc_describe_exit(rep->label, &rep->r.last_exit, text, sizeof(text));
		break;
	case SVC_EMIT_RESTARTING:
		json_object_object_add(o, "delay_ms", json_object_new_int64(at / SVC_MS));
		json_object_object_add(o, "restarts", json_object_new_int((int)rep->r.restarts));
		snprintf(text, sizeof(text), "%s restarting in %lld ms (restart %u)", rep->label,
			 (long long)(at / SVC_MS), rep->r.restarts);
		break;
	case SVC_EMIT_HEALTH: {
		json_object_object_add(o, "health",
				       json_object_new_string(svc_health_name(rep->r.health)));
		const struct svc_probe_log *last =
		    rep->r.log_len ? svc_probe_at(&rep->r, rep->r.log_len - 1) : NULL;
		if (last && last->output)
			json_object_object_add(o, "output", json_object_new_string(last->output));
		snprintf(text, sizeof(text), "%s is %s", rep->label,
			 svc_health_name(rep->r.health));
		break;
	}
	case SVC_EMIT_START_FAILED:
	case SVC_EMIT_NOT_STARTED:
		json_object_object_add(o, "reason", json_object_new_string(rep->r.why));
		snprintf(text, sizeof(text), "%s", rep->r.why);
		break;
	default:
		snprintf(text, sizeof(text), "%s %s", rep->label, emit_name(e));
		break;
	}
	if (text[0])
		json_object_object_add(o, "message", json_object_new_string(text));
	const char *line = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE);
	logmsg("event %s", line);
	for (struct client *c = s->clients; c; c = c->next)
		if (c->subscribed)
			client_send(c, line);
	json_object_put(o);
}

/* ---- the replica's record --------------------------------------------------- */

static void record(struct sup *s, struct replica *rep)
{
	struct sup_replica_record rec = {
	    .restarts = rep->r.restarts,
	    .backoff = rep->r.backoff,
	    .stopped_by_user = rep->r.stopped_by_user,
	    .health = (int)rep->r.health,
	    .state = (int)rep->r.state,
	};
	sup_record_write(&s->paths, rep->svc->ss->name, rep->index, &rec);
}

/* ---- containers ------------------------------------------------------------- */

static void close_exit_fd(struct sup *s, struct replica *rep)
{
	if (rep->exit_fd >= 0) {
		watch_del(s, rep->exit_fd);
		close(rep->exit_fd);
		rep->exit_fd = -1;
	}
	free(rep->cgroup);
	rep->cgroup = NULL;
}

/* The container's process is gone (or no longer ours to watch): its pidfd,
 * its network namespace. */
static void drop_ctr(struct replica *rep)
{
	if (rep->ctr_pidfd >= 0) {
		close(rep->ctr_pidfd);
		rep->ctr_pidfd = -1;
	}
	if (rep->netns_fd >= 0) {
		close(rep->netns_fd);
		rep->netns_fd = -1;
	}
}

static void unwatch_container(struct sup *s, struct replica *rep)
{
	if (rep->mon_pidfd >= 0) {
		watch_del(s, rep->mon_pidfd);
		if (rep->mon_child)
			waitid((idtype_t)P_PIDFD, (id_t)rep->mon_pidfd, &(siginfo_t){0},
			       WEXITED | WNOHANG);
		close(rep->mon_pidfd);
		rep->mon_pidfd = -1;
	}
	drop_ctr(rep);
	close_exit_fd(s, rep);
	rep->exit_fed = false;
	rep->pid = 0;
}

/* Watch the container's monitor (it records the exit, then exits) and keep a
 * pidfd of the container's process for signals. */
static void watch_container(struct sup *s, struct replica *rep, const struct hutch_state *st,
			    bool child)
{
	rep->pid = st->pid;
	rep->ctr_pidfd = -1;
	if (st->pid > 0 && sup_proc_start_time(st->pid) == st->pid_start)
		rep->ctr_pidfd = pidfd_open_or_fail(st->pid, true, NULL);
	rep->namespaces = st->namespaces;
	rep->host_net = !(st->namespaces & (1u << HUTCH_NS_NETWORK));
	if (rep->netns_fd >= 0)
		close(rep->netns_fd);
	rep->netns_fd = -1;
	if (s->home_netns >= 0 && !rep->host_net && rep->ctr_pidfd >= 0 &&
	    rep->svc->ss->health.kind == STACK_HEALTH_TCP) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/net", st->pid);
		rep->netns_fd = open(path, O_RDONLY | O_CLOEXEC);
		/* the pid is still the container's (its pidfd says it runs) */
		if (rep->netns_fd >= 0 &&
		    syscall(SYS_pidfd_send_signal, rep->ctr_pidfd, 0, NULL, 0) < 0) {
			close(rep->netns_fd);
			rep->netns_fd = -1;
		}
	}
	rep->mon_pidfd = -1;
	if (st->monitor_pid > 0 && sup_proc_start_time(st->monitor_pid) == st->monitor_start)
		rep->mon_pidfd = pidfd_open_or_fail(st->monitor_pid, true, NULL);
	rep->mon_child = child;
	rep->mon_pid = child ? st->monitor_pid : 0;
	rep->exit_fed = false;
	if (rep->mon_pidfd >= 0)
		watch_add(s, rep->mon_pidfd, &rep->w_mon);
	free(rep->cgroup);
	rep->cgroup = st->cgroup ? xstrdup(st->cgroup) : NULL;
	if (rep->exit_fd >= 0 && (rep->mon_pidfd < 0 || rep->ctr_pidfd < 0))
		close_exit_fd(s, rep); /* not ours to trust: the record decides */
	else if (rep->exit_fd >= 0)
		watch_add(s, rep->exit_fd, &rep->w_exit);
}

/* A container made again (a restart) starts a new log: what the old one said
 * is kept in DATA/stacks/NAME/logs/SERVICE-N.log for `stack logs`. */
static void archive_log(struct sup *s, struct replica *rep, const struct hutch_state *st)
{
	_cleanup_free_ char *src = hutch_state_log_path(&s->rt, st);
	_cleanup_free_ char *dir = xasprintf("%s/logs", s->paths.data_dir);
	_cleanup_free_ char *dst = xasprintf("%s/%s-%u.log", dir, rep->svc->ss->name, rep->index);
	_cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0 || mkdir_p_at(AT_FDCWD, dir, 0700, NULL) < 0)
		return;
	_cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	char buf[65536];
	ssize_t n;
	while (out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write_all(out, buf, (size_t)n) < 0)
			break;
}

static void remove_container(struct sup *s, struct replica *rep)
{
	struct hutch_state *st = NULL;
	struct hutch_err *err = NULL;
	if (hutch_state_find(&s->rt, rep->id, &st, &err) == 0) {
		if (!s->downing)
			archive_log(s, rep, st);
		if (hutch_state_remove(&s->rt, st, true, &err) < 0)
			logmsg("%s: cannot remove container %s: %s", rep->label, rep->cname,
			       err ? err->msg : "?");
		hutch_state_free(st);
	}
	hutch_err_free(&err);
	rep->has_container = false;
}

static int notify_socket(struct sup *s, struct replica *rep, struct hutch_err **err)
{
	if (rep->notify_fd >= 0)
		return 0;
	_cleanup_free_ char *path =
	    xasprintf("%s/%s-%u.sock", s->notify_dir, rep->svc->ss->name, rep->index);
	unlink(path);
	struct sockaddr_un sa;
	_cleanup_close_ int dirfd = -1;
	if (sup_unix_addr(path, &sa, &dirfd, err) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		return hutch_fail_sys(err, "notify socket %s", path);
	}
	/* the container's processes may run as any user: anyone in it may say READY */
	chmod(path, 0666);
	rep->notify_fd = fd;
	watch_add(s, fd, &rep->w_notify);
	return 0;
}

/* The starter: a forked child that starts the container (the runtime's
 * detached starts block until it runs) and exits; its error, if any, goes
 * through the pipe. The container's monitor, the starter's child, is then
 * reparented to the supervisor (a subreaper), which reaps it. A replica that
 * has its container already (a restart) starts that same container again:
 * same id, name, rw layer and log, as docker restarts one. */
static __attribute__((noreturn)) void
starter_main(struct sup *s, struct replica *rep, struct hutch_spec *spec, int pipefd, int notify_fd)
{
	struct hutch_err *err = NULL;
	const struct hutch_image *img = rep->svc->img;
	struct hutch_state *st = NULL;
	int rc = -1;
	s->rt.exit_notify_fd = notify_fd;
	if (!spec) {
		rc = hutch_state_find(&s->rt, rep->id, &st, &err);
		if (rc == 0)
			rc = sup_net_attach(s->net, rep->svc->ss, rep->id, rep->cname, NULL, &err);
		if (rc == 0) {
			sup_net_runtime(s->net, &s->rt);
			rc = hutch_container_start_existing(&s->rt, st, img->layer_fds,
							    img->n_layers, &err);
		} else if (rc == HUTCH_STATE_NOT_FOUND) {
			/* removed behind our back: made anew */
			hutch_err_free(&err);
			rc = sup_build_spec(&s->bctx, rep->svc->ss, rep->index, rep->id, img,
					    rep->svc->hash, &spec, &err);
		}
	}
	if (spec)
		rc = sup_net_attach(s->net, rep->svc->ss, rep->id, rep->cname, spec, &err);
	if (spec && rc == 0) {
		sup_net_runtime(s->net, &s->rt);
		rc =
		    hutch_container_run_detached(&s->rt, spec, img->layer_fds, img->n_layers, &err);
	}
	if (rc == 0)
		_exit(0);
	sup_net_release(s->net, rep->id);
	char msg[2048];
	int n = snprintf(msg, sizeof(msg), "%s%s%s", err ? err->msg : "unknown error",
			 err && err->errno_ ? ": " : "",
			 err && err->errno_ ? strerror(err->errno_) : "");
	(void)!write(pipefd, msg, n > 0 && (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
	_exit(1);
}

/* SPAWN: start the replica's container in a starter: the same container again
 * when it has one, else a new one (also when the one it has was made from
 * other settings: removed first). 0: started (answered when the starter
 * exits), -1: failed. */
static int spawn(struct sup *s, struct replica *rep, struct hutch_err **err)
{
	unwatch_container(s, rep);
	/* made from other settings (the file changed): made anew */
	bool again = rep->has_container && !rep->recreate;
	if (rep->has_container && !again)
		remove_container(s, rep);
	rep->recreate = false;
	if (rep->svc->ss->notify && notify_socket(s, rep, err) < 0)
		return -1;
	struct hutch_spec *spec = NULL;
	if (!again && sup_build_spec(&s->bctx, rep->svc->ss, rep->index, rep->id, rep->svc->img,
				     rep->svc->hash, &spec, err) < 0)
		return -1;
	int p[2], x[2] = {-1, -1};
	if (pipe2(p, O_CLOEXEC) < 0) {
		hutch_spec_free(spec);
		return hutch_fail_sys(err, "pipe");
	}
	/* the keeper's word of the exit; without it, the monitor's end says it */
	if (pipe2(x, O_CLOEXEC | O_NONBLOCK) < 0)
		x[0] = x[1] = -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		if (x[0] >= 0) {
			close(x[0]);
			close(x[1]);
		}
		hutch_spec_free(spec);
		return hutch_fail_sys(err, "fork");
	}
	if (pid == 0) {
		close(p[0]);
		if (x[0] >= 0) {
			close(x[0]);
			/* the keeper's write must never block on a full pipe */
			fcntl(x[1], F_SETFL, O_NONBLOCK);
		}
		starter_main(s, rep, spec, p[1], x[1] > 0 ? x[1] : 0);
	}
	close(p[1]);
	if (x[1] >= 0)
		close(x[1]);
	rep->exit_fd = x[0];
	hutch_spec_free(spec);
	rep->has_container = true; /* what it leaves, if anything, goes with it */
	/* restarts and backoff as at this start, for a supervisor that adopts
	 * it; written while the starter works, not before it */
	record(s, rep);
	rep->starter_pipe = p[0];
	rep->starter_pid = pid;
	rep->starter_pidfd = pidfd_open_or_fail(pid, false, NULL);
	if (rep->starter_pidfd < 0) {
		/* cannot watch it: wait for it here */
		waitpid(pid, NULL, 0);
		rep->starter_pidfd = -2;
		return 0;
	}
	watch_add(s, rep->starter_pidfd, &rep->w_starter);
	return 0;
}

static void feed(struct sup *s, struct replica *rep, const struct svc_event *ev);

static bool starters_pending(struct sup *s);
static void reap_strays(struct sup *s);
static void on_monitor(struct sup *s, struct replica *rep);
static void spawn_now(struct sup *s, struct replica *rep);

/* A running replica whose monitor cannot be watched (it ended before we could
 * open it): its exit is in its record; feed it, or nothing would ever end it. */
static void exit_if_unwatched(struct sup *s, struct replica *rep)
{
	if (rep->mon_pidfd >= 0 || (rep->r.state != SVC_RUNNING && rep->r.state != SVC_STOPPING))
		return;
	struct hutch_state *now = NULL;
	if (hutch_state_find(&s->rt, rep->id, &now, NULL) < 0 || now->status != HUTCH_RUNNING)
		on_monitor(s, rep);
	else
		logmsg("%s: cannot watch the monitor of %s (pid %d)", rep->label, rep->cname,
		       now->monitor_pid);
	hutch_state_free(now);
}

/* The starter exited: answer the SPAWN. */
static void on_starter(struct sup *s, struct replica *rep)
{
	siginfo_t si = {0};
	bool watched = rep->starter_pidfd >= 0;
	if (watched) {
		watch_del(s, rep->starter_pidfd);
		waitid((idtype_t)P_PIDFD, (id_t)rep->starter_pidfd, &si, WEXITED);
		close(rep->starter_pidfd);
	}
	rep->starter_pidfd = -1;
	char why[2048];
	ssize_t n = read(rep->starter_pipe, why, sizeof(why) - 1);
	close(rep->starter_pipe);
	rep->starter_pipe = -1;
	why[n > 0 ? n : 0] = '\0';
	struct svc_event ev = {.kind = SVC_EV_START_OK};
	struct hutch_state *st = NULL;
	_cleanup_err_ struct hutch_err *err = NULL;
	if (n > 0 || (watched && (si.si_code != CLD_EXITED || si.si_status != 0))) {
		if (n <= 0)
			snprintf(why, sizeof(why), "the process starting the container died");
		ev.kind = SVC_EV_START_FAILED;
		ev.reason = why;
		rep->has_container = false;
	} else if (hutch_state_find(&s->rt, rep->id, &st, &err) < 0) {
		snprintf(why, sizeof(why), "container %s: %s", rep->cname, err ? err->msg : "?");
		ev.kind = SVC_EV_START_FAILED;
		ev.reason = why;
	} else {
		watch_container(s, rep, st, true);
		hutch_state_free(st);
	}
	if (ev.kind == SVC_EV_START_FAILED) {
		logmsg("%s: cannot start: %s", rep->label, why);
		close_exit_fd(s, rep);
	}
	sup_net_refresh(s->net);
	feed(s, rep, &ev);
	/* a container that ended at once may have no monitor left to watch: its
	 * exit is in its record */
	if (ev.kind == SVC_EV_START_OK && rep->r.state != SVC_STARTING)
		exit_if_unwatched(s, rep);
	if (!starters_pending(s))
		reap_strays(s);
}

static void signal_container(struct sup *s, struct replica *rep, int sig)
{
	if (rep->ctr_pidfd >= 0 &&
	    syscall(SYS_pidfd_send_signal, rep->ctr_pidfd, sig, NULL, 0) == 0)
		return;
	if (rep->ctr_pidfd >= 0 && errno != ESRCH)
		logmsg("%s: cannot send signal %d: %s", rep->label, sig, strerror(errno));
}

static int stop_signal_of(struct sup *s, struct replica *rep)
{
	const struct stack_option *o = stack_service_option(rep->svc->ss, "stop_signal");
	int sig = o ? signal_from_name(o->text) : -1;
	if (sig <= 0 && rep->svc->img && rep->svc->img->stop_signal)
		sig = signal_from_name(rep->svc->img->stop_signal);
	return sig > 0 ? sig : SIGTERM;
}

/* ---- feeding the state machine ---------------------------------------------- */

static void arm(int fd, int64_t at)
{
	struct itimerspec its = {0};
	if (at > 0) {
		its.it_value.tv_sec = at / 1000000000LL;
		its.it_value.tv_nsec = at % 1000000000LL;
	}
	timerfd_settime(fd, at > 0 ? TFD_TIMER_ABSTIME : 0, &its, NULL);
}

static void feed(struct sup *s, struct replica *rep, const struct svc_event *ev);

static void start_probe(struct sup *s, struct replica *rep, int64_t timeout)
{
	struct hutch_err *err = NULL;
	struct hutch_state *st = NULL;
	int64_t now = mono_now();
	rep->probe.start = now;
	const struct stack_health *h = &rep->svc->ss->health;
	if (h->kind == STACK_HEALTH_TCP && s->home_netns >= 0 &&
	    (rep->netns_fd >= 0 || rep->host_net)) {
		/* no child: a socket made in its namespace, connected from here */
		if (sup_probe_tcp_start(h, rep->host_net ? -1 : rep->netns_fd, s->home_netns,
					&rep->probe, &err) == 0) {
			struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = &rep->w_probe};
			epoll_ctl(s->ep, EPOLL_CTL_ADD, rep->probe.sock, &ev);
			arm(rep->probe_timer_fd, now + timeout);
			return;
		}
	} else if (h->kind != STACK_HEALTH_CMD && rep->ctr_pidfd >= 0) {
		/* a child that joins its namespaces: their pid is all it needs */
		struct hutch_state known = {.pid = rep->pid, .namespaces = rep->namespaces};
		if (sup_probe_start(&s->rt, rep->svc->ss, &known, &rep->probe, &err) == 0) {
			watch_add(s, rep->probe.pidfd, &rep->w_probe);
			watch_add(s, rep->probe.out, &rep->w_probe_out);
			arm(rep->probe_timer_fd, now + timeout);
			return;
		}
	} else if (hutch_state_find(&s->rt, rep->id, &st, &err) == 0 &&
		   sup_probe_start(&s->rt, rep->svc->ss, st, &rep->probe, &err) == 0) {
		hutch_state_free(st);
		watch_add(s, rep->probe.pidfd, &rep->w_probe);
		watch_add(s, rep->probe.out, &rep->w_probe_out);
		arm(rep->probe_timer_fd, now + timeout);
		return;
	}
	{
		struct svc_event ev = {.kind = SVC_EV_PROBE_RESULT};
		ev.probe.status = SVC_PROBE_FAIL;
		ev.probe.exit_code = -1;
		ev.probe.output = err ? err->msg : "cannot start the probe";
		ev.probe.start = ev.probe.end = now;
		hutch_state_free(st);
		feed(s, rep, &ev);
		hutch_err_free(&err);
	}
}

/* Stop watching a probe's fds (a child's pidfd and output, or a socket). */
static bool unwatch_probe(struct sup *s, struct replica *rep)
{
	if (rep->probe.pidfd < 0 && rep->probe.sock < 0)
		return false;
	watch_del(s, rep->probe.pidfd);
	watch_del(s, rep->probe.out);
	watch_del(s, rep->probe.sock);
	arm(rep->probe_timer_fd, 0);
	return true;
}

static void end_probe(struct sup *s, struct replica *rep, bool timed_out)
{
	if (!unwatch_probe(s, rep))
		return;
	int code;
	if (timed_out) {
		sup_probe_kill(&rep->probe);
		code = -1;
	} else {
		code = sup_probe_reap(&rep->probe);
	}
	struct svc_event ev = {.kind = SVC_EV_PROBE_RESULT};
	ev.probe.status = timed_out ? SVC_PROBE_TIMEOUT : code == 0 ? SVC_PROBE_OK : SVC_PROBE_FAIL;
	ev.probe.exit_code = code;
	ev.probe.output = rep->probe.buf;
	ev.probe.start = rep->probe.start;
	ev.probe.end = mono_now();
	feed(s, rep, &ev);
}

static void abandon_probe(struct sup *s, struct replica *rep)
{
	if (!unwatch_probe(s, rep))
		return;
	sup_probe_kill(&rep->probe);
}

static void deps_of(struct sup *s, struct replica *rep, struct svc_event *ev, char *why, size_t len)
{
	struct service *svc = rep->svc;
	enum svc_verdict v = svc_deps_check(svc->deps, svc->n_deps, why, len);
	ev->kind = v == SVC_GO ? SVC_EV_DEPS_OK : SVC_EV_DEPS_FAILED;
	ev->reason = why;
	if (v == SVC_WAIT)
		ev->kind = SVC_NEVENTS; /* nothing to feed yet */
}

static void feed(struct sup *s, struct replica *rep, const struct svc_event *ev)
{
	struct svc_actions out;
	int64_t now = mono_now();
	bool was_stopped_by_user = rep->r.stopped_by_user;
	enum svc_health was_health = rep->r.health;
	enum svc_outcome oc = svc_step(&rep->r, ev, now, &out);
	if (oc == SVC_INVALID)
		logmsg("internal error: %s: event %s in state %s", rep->label,
		       svc_event_name(ev->kind), svc_state_name(rep->r.state));
	if (oc != SVC_DONE)
		return;
	struct svc_event answer = {.kind = SVC_NEVENTS};
	bool pending_starter = false, pending_unwatched = false;
	char why[1024] = "";
	_cleanup_err_ struct hutch_err *err = NULL;
	for (size_t i = 0; i < out.n; i++) {
		const struct svc_action *a = &out.a[i];
		switch (a->kind) {
		case SVC_ACT_SPAWN:
			rep->starter_pidfd = -1;
			if (rep->exit_fed && rep->mon_pidfd >= 0) {
				/* the last run's finish still records its exit (a
				 * restart without backoff): started when it is done */
				rep->spawn_deferred = true;
				record(s, rep);
			} else if (spawn(s, rep, &err) < 0) {
				if (err && err->errno_)
					snprintf(why, sizeof(why), "%s: %s", err->msg,
						 strerror(err->errno_));
				else
					snprintf(why, sizeof(why), "%s", err ? err->msg : "?");
				answer.kind = SVC_EV_START_FAILED;
				answer.reason = why;
				logmsg("%s: cannot start: %s", rep->label, why);
				record(s, rep);
			} else if (rep->starter_pidfd == -2) {
				/* started synchronously: answer now */
				rep->starter_pidfd = -1;
				pending_starter = true;
			}
			break;
		case SVC_ACT_STOP_SIGNAL:
			signal_container(s, rep, stop_signal_of(s, rep));
			break;
		case SVC_ACT_KILL:
			signal_container(s, rep, SIGKILL);
			pending_unwatched = true;
			break;
		case SVC_ACT_ARM_TIMER:
			arm(rep->timer_fd, a->at > 0 ? a->at : 1);
			break;
		case SVC_ACT_CANCEL_TIMER:
			arm(rep->timer_fd, 0);
			break;
		case SVC_ACT_PROBE:
			start_probe(s, rep, a->at);
			break;
		case SVC_ACT_EMIT:
			emit(s, rep, a->emit, a->at);
			break;
		case SVC_ACT_RECORD_EXIT:
			record(s, rep);
			break;
		case SVC_ACT_CHECK_DEPS:
			deps_of(s, rep, &answer, why, sizeof(why));
			break;
		case SVC_ACT_NOTIFY_DEPENDENTS:
			s->recheck = true;
			break;
		}
	}
	if (rep->r.stopped_by_user != was_stopped_by_user || rep->r.health != was_health ||
	    ev->kind == SVC_EV_START_OK || ev->kind == SVC_EV_READY)
		record(s, rep);
	if (rep->r.state != SVC_RUNNING)
		abandon_probe(s, rep);
	if (answer.kind != SVC_NEVENTS)
		feed(s, rep, &answer);
	if (pending_starter)
		on_starter(s, rep);
	if (pending_unwatched)
		exit_if_unwatched(s, rep);
}

/* ---- readiness, dependencies and down --------------------------------------- */

static bool terminal(const struct replica *rep)
{
	return rep->r.state == SVC_EXITED || rep->r.state == SVC_FAILED ||
	       rep->r.state == SVC_STOPPED;
}

static enum svc_verdict stack_ready(struct sup *s, char *why, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < s->n_svcs; i++)
		if (s->svcs[i].active)
			n += s->svcs[i].n;
	const struct svc_replica **rs = xcalloc(n + 1, sizeof(*rs));
	n = 0;
	for (size_t i = 0; i < s->n_svcs; i++)
		for (unsigned k = 0; s->svcs[i].active && k < s->svcs[i].n; k++)
			rs[n++] = &s->svcs[i].reps[k].r;
	enum svc_verdict v = svc_stack_ready(rs, n, why, len);
	/* waiting for a replica to become healthy: what its last check said
	 * tells why it is not (a timeout of up --wait shows it) */
	for (size_t i = 0; v == SVC_WAIT && i < n; i++) {
		const struct svc_replica *r = rs[i];
		size_t nl = strlen(r->name);
		if (r->state != SVC_RUNNING || r->health != SVC_HEALTH_STARTING || !r->log_len ||
		    strncmp(why, "waiting for ", 12) || strncmp(why + 12, r->name, nl) ||
		    why[12 + nl] != ' ')
			continue;
		const struct svc_probe_log *last = svc_probe_at(r, r->log_len - 1);
		char out[512];
		snprintf(out, sizeof(out), "%s", last->output ? last->output : "");
		for (char *p = out; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		size_t l = strlen(out);
		while (l && out[l - 1] == ' ')
			out[--l] = '\0';
		size_t used = strlen(why);
		snprintf(why + used, len - used, " (its last health check exited with %d%s%s)",
			 last->exit_code, l ? ": " : "", out);
		break;
	}
	free(rs);
	return v;
}

static bool depends_on(const struct service *a, size_t b_index)
{
	for (size_t d = 0; d < a->ss->n_deps; d++)
		if (a->ss->deps[d].index == b_index)
			return true;
	return false;
}

static void finish_down(struct sup *s);

static void down_progress(struct sup *s)
{
	bool all_done = true;
	/* reverse start order: a service is stopped once everything that
	 * depends on it is down */
	for (size_t k = s->stack->n_services; k-- > 0;) {
		size_t i = s->stack->order[k];
		struct service *svc = &s->svcs[i];
		bool dependents_down = true;
		for (size_t j = 0; j < s->n_svcs; j++) {
			if (!s->svcs[j].active || !depends_on(&s->svcs[j], i))
				continue;
			for (unsigned r = 0; r < s->svcs[j].n; r++)
				if (!terminal(&s->svcs[j].reps[r]))
					dependents_down = false;
		}
		for (unsigned r = 0; svc->active && r < svc->n; r++) {
			struct replica *rep = &svc->reps[r];
			if (dependents_down && !rep->down_sent) {
				rep->down_sent = true;
				struct svc_event ev = {.kind = SVC_EV_STACK_DOWN,
						       .grace = s->down_grace};
				feed(s, rep, &ev);
			}
			/* nor one whose finish still records its exit */
			if (!terminal(rep) || (rep->exit_fed && rep->mon_pidfd >= 0))
				all_done = false;
		}
	}
	if (all_done)
		finish_down(s);
}

static void recheck(struct sup *s)
{
	for (int round = 0; s->recheck && round < 1000; round++) {
		s->recheck = false;
		if (s->downing) {
			down_progress(s);
			continue;
		}
		for (size_t k = 0; k < s->stack->n_services; k++) {
			struct service *svc = &s->svcs[s->stack->order[k]];
			for (unsigned r = 0; svc->active && r < svc->n; r++) {
				struct replica *rep = &svc->reps[r];
				if (rep->r.state != SVC_WAITING)
					continue;
				struct svc_event ev;
				char why[1024];
				deps_of(s, rep, &ev, why, sizeof(why));
				if (ev.kind != SVC_NEVENTS)
					feed(s, rep, &ev);
			}
		}
	}
	char why[1024];
	enum svc_verdict v = SVC_WAIT;
	bool computed = false;
	for (struct client *c = s->clients, *next; c; c = next) {
		next = c->next;
		if (!c->waiting)
			continue;
		if (!computed) {
			v = s->downing ? SVC_FAIL : stack_ready(s, why, sizeof(why));
			if (s->downing)
				snprintf(why, sizeof(why), "the stack is being taken down");
			computed = true;
		}
		if (v == SVC_WAIT)
			continue;
		c->waiting = false;
		if (v == SVC_GO)
			client_send(c, "{\"ok\":true,\"ready\":true}");
		else
			client_reply_err(c, why);
	}
}

/* ---- status ----------------------------------------------------------------- */

static struct json_object *replica_json(struct sup *s, struct replica *rep, int64_t now)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "container", json_object_new_string(rep->cname));
	json_object_object_add(o, "id", json_object_new_string(rep->id));
	json_object_object_add(o, "service", json_object_new_string(rep->svc->ss->name));
	json_object_object_add(o, "replica", json_object_new_int((int)rep->index));
	json_object_object_add(o, "state", json_object_new_string(svc_state_name(rep->r.state)));
	json_object_object_add(o, "health", json_object_new_string(svc_health_name(rep->r.health)));
	json_object_object_add(o, "restarts", json_object_new_int((int)rep->r.restarts));
	json_object_object_add(o, "failing_streak",
			       json_object_new_int((int)rep->r.failing_streak));
	json_object_object_add(o, "last_exit", exit_json(&rep->r));
	bool up = rep->r.state == SVC_RUNNING || rep->r.state == SVC_STOPPING;
	json_object_object_add(o, "pid", json_object_new_int(up ? rep->pid : 0));
	json_object_object_add(o, "uptime_s",
			       json_object_new_double(up && rep->r.started
							  ? (double)(now - rep->r.started) / 1e9
							  : 0));
	if (rep->r.started)
		json_object_object_add(o, "started",
				       json_object_new_int64(mono_to_real(rep->r.started)));
	char status[256];
	svc_status(&rep->r, now, status, sizeof(status));
	json_object_object_add(o, "status", json_object_new_string(status));
	if (rep->r.why[0])
		json_object_object_add(o, "why", json_object_new_string(rep->r.why));
	if (rep->r.log_len) {
		const struct svc_probe_log *last = svc_probe_at(&rep->r, rep->r.log_len - 1);
		struct json_object *p = json_object_new_object();
		json_object_object_add(p, "exit_code", json_object_new_int(last->exit_code));
		json_object_object_add(p, "output",
				       json_object_new_string(last->output ? last->output : ""));
		json_object_object_add(o, "last_probe", p);
		/* the last 5, as docker inspect's State.Health.Log */
		struct json_object *all = json_object_new_array();
		for (unsigned i = 0; i < rep->r.log_len; i++) {
			const struct svc_probe_log *l = svc_probe_at(&rep->r, i);
			struct json_object *e = json_object_new_object();
			json_object_object_add(e, "start",
					       json_object_new_int64(mono_to_real(l->start)));
			json_object_object_add(e, "end",
					       json_object_new_int64(mono_to_real(l->end)));
			json_object_object_add(e, "exit_code", json_object_new_int(l->exit_code));
			json_object_object_add(e, "output",
					       json_object_new_string(l->output ? l->output : ""));
			json_object_array_add(all, e);
		}
		json_object_object_add(o, "probes", all);
	}
	return o;
}

static void reply_status(struct sup *s, struct client *c)
{
	int64_t now = mono_now();
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(true));
	json_object_object_add(o, "stack", json_object_new_string(s->stack->name));
	json_object_object_add(o, "file", json_object_new_string(s->stack->file));
	json_object_object_add(o, "pid", json_object_new_int(getpid()));
	struct json_object *a = json_object_new_array();
	for (size_t k = 0; k < s->stack->n_services; k++) {
		struct service *svc = &s->svcs[s->stack->order[k]];
		for (unsigned r = 0; svc->active && r < svc->n; r++)
			json_object_array_add(a, replica_json(s, &svc->reps[r], now));
	}
	json_object_object_add(o, "replicas", a);
	client_send_json(c, o);
	json_object_put(o);
}

/* ---- requests --------------------------------------------------------------- */

static struct service *find_service(struct sup *s, const char *name)
{
	ssize_t i = stack_service_index(s->stack, name);
	return i < 0 ? NULL : &s->svcs[i];
}

static void handle_request(struct sup *s, struct client *c, const char *line, size_t len)
{
	struct sup_request req;
	char *msg = NULL;
	if (sup_parse_request(line, len, &req, &msg) < 0) {
		client_reply_err(c, msg);
		free(msg);
		return;
	}
	switch (req.cmd) {
	case SUP_CMD_STATUS:
		reply_status(s, c);
		break;
	case SUP_CMD_START:
	case SUP_CMD_STOP:
	case SUP_CMD_RESTART: {
		if (s->downing) {
			client_reply_err(c, "the stack is being taken down");
			break;
		}
		for (size_t i = 0; i < req.n_services; i++)
			if (!find_service(s, req.services[i])) {
				_cleanup_free_ char *shown =
				    printable(req.services[i], strlen(req.services[i]));
				_cleanup_free_ char *m =
				    xasprintf("no service '%s' in stack %s", shown, s->stack->name);
				client_reply_err(c, m);
				goto out;
			}
		enum svc_event_kind k = req.cmd == SUP_CMD_START  ? SVC_EV_USER_START
					: req.cmd == SUP_CMD_STOP ? SVC_EV_USER_STOP
								  : SVC_EV_USER_RESTART;
		for (size_t i = 0; i < req.n_services; i++) {
			struct service *svc = find_service(s, req.services[i]);
			svc->active = true;
			for (unsigned r = 0; r < svc->n; r++) {
				/* stop/restart "timeout": that stop's grace
				 * (`hutch stop -t`), as down's */
				struct svc_event ev = {
				    .kind = k,
				    .grace = k == SVC_EV_USER_START ? -1 : req.timeout_ns};
				feed(s, &svc->reps[r], &ev);
			}
		}
		s->recheck = true;
		client_reply_ok(c);
		break;
	}
	case SUP_CMD_DOWN:
		c->down_waiting = true;
		if (s->handover_pending) { /* a down wins over an `up` still waiting */
			s->handover_pending = s->handover = false;
			for (struct client *o = s->clients; o; o = o->next)
				if (o->handover) {
					o->handover = false;
					client_reply_err(o, "the stack is being taken down");
				}
		}
		if (!s->downing || (req.timeout_ns >= 0 &&
				    (s->down_grace < 0 || req.timeout_ns < s->down_grace))) {
			/* a shorter -t than a down under way shortens it */
			if (s->downing)
				for (size_t i = 0; i < s->n_svcs; i++)
					for (unsigned r = 0; r < s->svcs[i].n; r++)
						s->svcs[i].reps[r].down_sent = false;
			s->downing = true;
			s->down_grace = req.timeout_ns;
		}
		s->recheck = true;
		break;
	case SUP_CMD_SUBSCRIBE:
		c->subscribed = true;
		client_reply_ok(c);
		break;
	case SUP_CMD_WAIT:
		c->waiting = true;
		s->recheck = true;
		break;
	case SUP_CMD_READY: {
		char why[1024];
		enum svc_verdict v = stack_ready(s, why, sizeof(why));
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "ok", json_object_new_boolean(true));
		json_object_object_add(o, "verdict",
				       json_object_new_string(v == SVC_GO     ? "ready"
							      : v == SVC_WAIT ? "waiting"
									      : "failed"));
		if (v != SVC_GO)
			json_object_object_add(o, "why", json_object_new_string(why));
		client_send_json(c, o);
		json_object_put(o);
		break;
	}
	case SUP_CMD_UP:
		/* hand the stack over to a new supervisor (a changed file): leave
		 * every container running, it adopts them */
		if (s->downing) {
			client_reply_err(c, "the stack is being taken down");
			break;
		}
		c->handover = true;
		s->handover = true;
		/* a user's restart under way is carried by no record: the new
		 * supervisor would adopt an exited container and keep it down.
		 * Handed over once it is done (the loop checks). */
		s->handover_pending = true;
		break;
	}
out:
	sup_request_free(&req);
}

static void client_event(struct sup *s, struct client *c, uint32_t events)
{
	if (c->dead)
		return;
	if (events & EPOLLOUT) {
		if (sup_conn_flush(&c->conn) < 0) {
			client_drop(c);
			return;
		}
		client_watch_out(c);
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	int r = sup_conn_fill(&c->conn);
	if (r == -2)
		client_reply_err(c, "request longer than 65536 bytes");
	if (r < 0) {
		client_drop(c);
		return;
	}
	/* every complete line; a partial one waits for the rest */
	char *line;
	size_t len;
	while (!c->dead && sup_conn_line(&c->conn, &line, &len)) {
		handle_request(s, c, line, len);
		sup_conn_consume(&c->conn, len);
	}
}

static void accept_client(struct sup *s)
{
	int fd = accept4(s->lsock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	struct client *c = xcalloc(1, sizeof(*c));
	c->s = s;
	sup_conn_init(&c->conn, fd);
	c->w.kind = W_CLIENT;
	c->w.cl = c;
	c->next = s->clients;
	s->clients = c;
	watch_add(s, fd, &c->w);
}

/* ---- taking the stack down -------------------------------------------------- */

static void finish_down(struct sup *s)
{
	for (size_t i = 0; i < s->n_svcs; i++)
		for (unsigned r = 0; r < s->svcs[i].n; r++) {
			struct replica *rep = &s->svcs[i].reps[r];
			unwatch_container(s, rep);
			abandon_probe(s, rep);
			if (rep->has_container)
				remove_container(s, rep);
		}
	/* containers of this stack not ours (replicas of an earlier file) */
	struct hutch_state_list l = {0};
	if (hutch_state_list(&s->rt, &l, NULL) == 0) {
		for (size_t i = 0; i < l.n; i++) {
			const char *svcname;
			unsigned idx;
			if (sup_labels_match(l.items[i]->labels, l.items[i]->n_labels,
					     s->stack->name, &svcname, &idx))
				hutch_state_remove(&s->rt, l.items[i], true, NULL);
		}
		hutch_state_list_free(&l);
	}
	sup_net_down(s->net);
	_cleanup_free_ char *replicas = xasprintf("%s/replicas", s->paths.data_dir);
	remove_tree_at(AT_FDCWD, replicas, NULL);
	_cleanup_free_ char *logs = xasprintf("%s/logs", s->paths.data_dir);
	remove_tree_at(AT_FDCWD, logs, NULL);
	sup_stack_info_write(&s->paths, s->src, false);
	s->quit = true;
}

/* ---- setup ------------------------------------------------------------------ */

static int listen_control(struct sup *s, struct hutch_err **err)
{
	struct sockaddr_un sa;
	_cleanup_close_ int dirfd = -1;
	if (sup_unix_addr(s->paths.sock, &sa, &dirfd, err) < 0)
		return -1;
	unlink(s->paths.sock);
	s->lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->lsock < 0)
		return hutch_fail_sys(err, "socket");
	mode_t old = umask(0077);
	int rc = bind(s->lsock, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || listen(s->lsock, 64) < 0)
		return hutch_fail_sys(err, "listen on %s", s->paths.sock);
	s->w_listen.kind = W_LISTEN;
	watch_add(s, s->lsock, &s->w_listen);
	return 0;
}

static void config_of(const struct stack_service *ss, struct svc_config *cfg)
{
	static const enum svc_restart map[] = {
	    [STACK_RESTART_NO] = SVC_RESTART_NO,
	    [STACK_RESTART_ALWAYS] = SVC_RESTART_ALWAYS,
	    [STACK_RESTART_ON_FAILURE] = SVC_RESTART_ON_FAILURE,
	    [STACK_RESTART_UNLESS_STOPPED] = SVC_RESTART_UNLESS_STOPPED,
	};
	cfg->restart = map[ss->restart];
	cfg->max_retries = ss->restart_max;
	cfg->has_probe = ss->health.kind != STACK_HEALTH_NONE;
	cfg->notify = ss->notify;
	cfg->health_interval = ss->health.interval_ns;
	cfg->health_timeout = ss->health.timeout_ns;
	cfg->health_start_period = ss->health.start_period_ns;
	cfg->health_start_interval = ss->health.start_interval_ns;
	cfg->health_retries = ss->health.retries;
	cfg->stop_grace = ss->stop_grace_ns;
}

static int setup_services(struct sup *s, char *const *wanted, size_t n_wanted, bool o_adopt_only,
			  struct hutch_err **err)
{
	s->n_svcs = s->stack->n_services;
	s->svcs = xcalloc(s->n_svcs, sizeof(*s->svcs));
	bool *active = xcalloc(s->n_svcs + 1, sizeof(bool));
	if (n_wanted) {
		size_t *idx = NULL, n = 0;
		if (stack_graph_needed(s->stack, (const char *const *)wanted, n_wanted, &idx, &n,
				       err) < 0) {
			free(active);
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			active[idx[i]] = true;
		free(idx);
	} else if (!o_adopt_only) {
		for (size_t i = 0; i < s->n_svcs; i++)
			active[i] = true;
	}
	for (size_t i = 0; i < s->n_svcs; i++) {
		struct service *svc = &s->svcs[i];
		svc->ss = &s->stack->services[i];
		svc->active = active[i];
		config_of(svc->ss, &svc->cfg);
		if (hutch_image_get(s->store, svc->ss->image, &svc->img, err) < 0) {
			free(active);
			return hutch_err_wrap(err, "%s:%d: image", s->stack->file, svc->ss->line);
		}
		sup_config_hash(svc->ss, svc->img->id, svc->hash);
		svc->n = svc->ss->replicas ? svc->ss->replicas : 1;
		svc->reps = xcalloc(svc->n, sizeof(*svc->reps));
		for (unsigned r = 0; r < svc->n; r++) {
			struct replica *rep = &svc->reps[r];
			rep->svc = svc;
			rep->index = r + 1;
			rep->cname = sup_container_name(s->stack->name, svc->ss, r + 1);
			if (svc->n > 1)
				snprintf(rep->label, sizeof(rep->label), "%s-%u", svc->ss->name,
					 r + 1);
			else
				snprintf(rep->label, sizeof(rep->label), "%s", svc->ss->name);
			if (random_hex_id(rep->id, err) < 0) {
				free(active);
				return -1;
			}
			svc_init(&rep->r, &svc->cfg, rep->label);
			rep->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
			rep->probe_timer_fd =
			    timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
			if (rep->timer_fd < 0 || rep->probe_timer_fd < 0) {
				free(active);
				return hutch_fail_sys(err, "timerfd");
			}
			rep->mon_pidfd = rep->ctr_pidfd = rep->notify_fd = -1;
			rep->starter_pidfd = rep->starter_pipe = rep->exit_fd = -1;
			rep->probe.pidfd = rep->probe.out = rep->probe.sock = -1;
			rep->netns_fd = -1;
			rep->w_timer = (struct watch){W_TIMER, rep, NULL};
			rep->w_probe_timer = (struct watch){W_PROBE_TIMER, rep, NULL};
			rep->w_mon = (struct watch){W_MONITOR, rep, NULL};
			rep->w_probe = (struct watch){W_PROBE, rep, NULL};
			rep->w_probe_out = (struct watch){W_PROBE_OUT, rep, NULL};
			rep->w_notify = (struct watch){W_NOTIFY, rep, NULL};
			rep->w_starter = (struct watch){W_STARTER, rep, NULL};
			rep->w_exit = (struct watch){W_EXIT, rep, NULL};
			watch_add(s, rep->timer_fd, &rep->w_timer);
			watch_add(s, rep->probe_timer_fd, &rep->w_probe_timer);
		}
	}
	free(active);
	/* the dependency lists svc_deps_check takes: one entry per replica */
	for (size_t i = 0; i < s->n_svcs; i++) {
		struct service *svc = &s->svcs[i];
		size_t n = 0;
		for (size_t d = 0; d < svc->ss->n_deps; d++)
			n += s->svcs[svc->ss->deps[d].index].n;
		svc->deps = xcalloc(n + 1, sizeof(*svc->deps));
		for (size_t d = 0; d < svc->ss->n_deps; d++) {
			struct service *dep = &s->svcs[svc->ss->deps[d].index];
			enum svc_dep_condition c =
			    svc->ss->deps[d].condition == STACK_DEP_HEALTHY	? SVC_DEP_HEALTHY
			    : svc->ss->deps[d].condition == STACK_DEP_COMPLETED ? SVC_DEP_COMPLETED
										: SVC_DEP_STARTED;
			for (unsigned r = 0; r < dep->n; r++)
				svc->deps[svc->n_deps++] = (struct svc_dep){&dep->reps[r].r, c};
		}
	}
	return 0;
}

/* A container found for a replica: take it over (ADOPT), and replay its exit if
 * it ended while no supervisor watched. A container made from other settings
 * (its config hash differs) is restarted from the new ones. */
static void adopt(struct sup *s, struct replica *rep, struct hutch_state *st)
{
	memcpy(rep->id, st->id, 65);
	/* one made by `hutch run --restart` keeps the name it was given */
	if (st->name && strcmp(st->name, rep->cname)) {
		free(rep->cname);
		rep->cname = xstrdup(st->name);
	}
	rep->has_container = true;
	rep->svc->active = true;
	if (st->status == HUTCH_CREATED) {
		remove_container(s, rep);
		return;
	}
	struct sup_replica_record rec;
	sup_record_read(&s->paths, rep->svc->ss->name, rep->index, &rec);
	struct svc_event ev = {.kind = SVC_EV_ADOPT};
	ev.adopt.started = real_to_mono(st->started_ns);
	ev.adopt.restarts = rec.restarts;
	ev.adopt.backoff = rec.backoff;
	ev.adopt.health = (enum svc_health)rec.health;
	ev.adopt.stopped_by_user = rec.stopped_by_user;
	if (st->status == HUTCH_RUNNING)
		watch_container(s, rep, st, false);
	feed(s, rep, &ev);
	logmsg("%s: adopted container %s (%s)", rep->label, rep->cname,
	       hutch_status_name(st->status));
	if (st->status == HUTCH_RUNNING && rep->mon_pidfd < 0) {
		/* its monitor is gone: the record is repaired on the next read */
		struct hutch_state *fresh = NULL;
		if (hutch_state_find(&s->rt, rep->id, &fresh, NULL) == 0) {
			if (fresh->status == HUTCH_EXITED) {
				struct svc_event ex = {.kind = SVC_EV_EXIT};
				ex.exit.code = fresh->exit_code;
				ex.exit.signal = fresh->exit_code > 128 && fresh->exit_code < 160
						     ? fresh->exit_code - 128
						     : 0;
				ex.exit.oom = fresh->oom_killed;
				ex.exit.at = real_to_mono(fresh->finished_ns);
				feed(s, rep, &ex);
			}
			hutch_state_free(fresh);
		}
		return;
	}
	if (st->status == HUTCH_EXITED) {
		struct svc_event ex = {.kind = SVC_EV_EXIT};
		ex.exit.code = st->exit_code;
		ex.exit.signal =
		    st->exit_code > 128 && st->exit_code < 160 ? st->exit_code - 128 : 0;
		ex.exit.oom = st->oom_killed;
		ex.exit.at = real_to_mono(st->finished_ns);
		feed(s, rep, &ex);
		return;
	}
	const char *hash = hutch_label_get(st->labels, st->n_labels, SUP_LABEL_HASH);
	if (!hash || strcmp(hash, rep->svc->hash)) {
		logmsg("%s: settings changed: recreating %s", rep->label, rep->cname);
		rep->recreate = true;
		struct svc_event r = {.kind = SVC_EV_USER_RESTART, .grace = -1};
		/* a restart resets the counts, as `stack restart` does */
		feed(s, rep, &r);
	}
}

/* Find the stack's containers (by their labels) and adopt them; remove those
 * that no longer belong to a replica of the file. */
static void adopt_all(struct sup *s)
{
	struct hutch_state_list l = {0};
	struct hutch_err *err = NULL;
	if (hutch_state_list(&s->rt, &l, &err) < 0) {
		logmsg("cannot list containers: %s", err ? err->msg : "?");
		hutch_err_free(&err);
		return;
	}
	for (size_t i = 0; i < l.n; i++) {
		struct hutch_state *st = l.items[i];
		const char *svcname;
		unsigned idx;
		if (!sup_labels_match(st->labels, st->n_labels, s->stack->name, &svcname, &idx))
			continue;
		struct service *svc = find_service(s, svcname);
		if (!svc || idx > svc->n) {
			logmsg("removing %s: no longer in the stack file",
			       st->name ? st->name : st->id);
			if (st->status == HUTCH_RUNNING)
				hutch_state_stop(&s->rt, st, 10, NULL);
			hutch_state_remove(&s->rt, st, true, NULL);
			continue;
		}
		adopt(s, &svc->reps[idx - 1], st);
	}
	hutch_state_list_free(&l);
}

/* ---- the loop --------------------------------------------------------------- */

/* The keeper's line "CODE SIGNAL TIME_NS": the exit, fed at once. An exit by
 * SIGKILL waits for the record instead, which says whether the OOM killer
 * did it (finish reads it from the cgroup); so does a line that is not one. */
static void on_exit_word(struct sup *s, struct replica *rep)
{
	char line[96];
	ssize_t n = read(rep->exit_fd, line, sizeof(line) - 1);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	long long code, sig, fin;
	line[n > 0 ? n : 0] = '\0';
	bool ok = n > 0 && sscanf(line, "%lld %lld %lld", &code, &sig, &fin) == 3 &&
		  sig != SIGKILL && (rep->r.state == SVC_RUNNING || rep->r.state == SVC_STOPPING);
	watch_del(s, rep->exit_fd);
	close(rep->exit_fd);
	rep->exit_fd = -1;
	if (!ok)
		return;
	struct svc_event ev = {.kind = SVC_EV_EXIT};
	ev.exit.code = (int)code;
	ev.exit.signal = (int)sig;
	ev.exit.at = real_to_mono(fin);
	if (rep->cgroup) {
		/* as finish reads it: any OOM kill in the container's cgroup */
		_cleanup_free_ char *path = xasprintf("%s/memory.events", rep->cgroup);
		_cleanup_free_ char *text = NULL;
		if (read_file_at(AT_FDCWD, path, &text, NULL, NULL) == 0) {
			const char *k = strstr(text, "oom_kill ");
			ev.exit.oom = k && (k == text || k[-1] == '\n') && atoll(k + 9) > 0;
		}
	}
	drop_ctr(rep);
	rep->exit_fed = true;
	feed(s, rep, &ev);
}

static void on_monitor(struct sup *s, struct replica *rep)
{
	bool child = rep->mon_child;
	if (rep->mon_pidfd >= 0) {
		watch_del(s, rep->mon_pidfd);
		if (child)
			waitid((idtype_t)P_PIDFD, (id_t)rep->mon_pidfd, &(siginfo_t){0},
			       WEXITED | WNOHANG);
		close(rep->mon_pidfd);
	}
	rep->mon_pidfd = -1;
	drop_ctr(rep);
	if (rep->exit_fed) {
		/* its exit was fed from the keeper's word: the record is done now */
		close_exit_fd(s, rep);
		rep->exit_fed = false;
		s->recheck = true; /* a down waits for it */
		if (rep->spawn_deferred) {
			rep->spawn_deferred = false;
			spawn_now(s, rep);
		}
		return;
	}
	close_exit_fd(s, rep);
	struct svc_event ev = {.kind = SVC_EV_EXIT};
	struct hutch_state *st = NULL;
	if (hutch_state_find(&s->rt, rep->id, &st, NULL) == 0) {
		ev.exit.code = st->exit_code;
		ev.exit.signal =
		    st->exit_code > 128 && st->exit_code < 160 ? st->exit_code - 128 : 0;
		ev.exit.oom = st->oom_killed;
		/* the backoff counts from the exit, not from when the record said it */
		if (st->status == HUTCH_EXITED && st->finished_ns > 0)
			ev.exit.at = real_to_mono(st->finished_ns);
		hutch_state_free(st);
	} else {
		ev.exit.code = 137;
		ev.exit.signal = SIGKILL;
		rep->has_container = false;
	}
	if (!s->downing) /* its keeper has taken it off its networks */
		sup_net_refresh(s->net);
	feed(s, rep, &ev);
}

/* A SPAWN that waited for the last run's finish. */
static void spawn_now(struct sup *s, struct replica *rep)
{
	_cleanup_err_ struct hutch_err *err = NULL;
	if (rep->r.state != SVC_STARTING)
		return; /* stopped meanwhile */
	rep->starter_pidfd = -1;
	if (spawn(s, rep, &err) < 0) {
		char why[1024];
		if (err && err->errno_)
			snprintf(why, sizeof(why), "%s: %s", err->msg, strerror(err->errno_));
		else
			snprintf(why, sizeof(why), "%s", err ? err->msg : "?");
		logmsg("%s: cannot start: %s", rep->label, why);
		record(s, rep);
		struct svc_event ev = {.kind = SVC_EV_START_FAILED, .reason = why};
		feed(s, rep, &ev);
	} else if (rep->starter_pidfd == -2) {
		rep->starter_pidfd = -1;
		on_starter(s, rep);
	}
}

static void on_notify(struct sup *s, struct replica *rep)
{
	char buf[4096];
	ssize_t n;
	while ((n = recv(rep->notify_fd, buf, sizeof(buf) - 1, 0)) >= 0) {
		buf[n] = '\0';
		/* newline-separated assignments, as sd_notify sends them */
		for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
			if (!strcmp(line, "READY=1") && rep->r.state == SVC_RUNNING) {
				struct svc_event ev = {.kind = SVC_EV_READY};
				feed(s, rep, &ev);
			}
	}
}

static void on_timer(struct sup *s, struct replica *rep)
{
	uint64_t n;
	(void)!read(rep->timer_fd, &n, sizeof(n));
	enum svc_event_kind k;
	switch (rep->r.timer) {
	case SVC_TIMER_BACKOFF:
		k = SVC_EV_BACKOFF_TIMER;
		break;
	case SVC_TIMER_GRACE:
		k = SVC_EV_GRACE_TIMER;
		break;
	case SVC_TIMER_HEALTH:
		k = SVC_EV_HEALTH_TIMER;
		break;
	default:
		return;
	}
	struct svc_event ev = {.kind = k};
	feed(s, rep, &ev);
}

/* Is pid one of the children we reap through their pidfds? */
static bool tracked_child(struct sup *s, pid_t pid)
{
	for (size_t i = 0; i < s->n_svcs; i++)
		for (unsigned r = 0; r < s->svcs[i].n; r++) {
			struct replica *rep = &s->svcs[i].reps[r];
			if ((rep->mon_pidfd >= 0 && rep->mon_pid == pid) ||
			    (rep->probe.pidfd >= 0 && rep->probe.pid == pid) ||
			    (rep->starter_pidfd >= 0 && rep->starter_pid == pid))
				return true;
		}
	return false;
}

/* A starter's monitor becomes our child before we know its pid (the starter
 * said so through its exit): while any starter is pending, no child is a stray. */
static bool starters_pending(struct sup *s)
{
	for (size_t i = 0; i < s->n_svcs; i++)
		for (unsigned r = 0; r < s->svcs[i].n; r++)
			if (s->svcs[i].reps[r].starter_pipe >= 0)
				return true;
	return false;
}

/* As a subreaper we inherit whatever our children leave behind (a probe's
 * exec helper killed at the timeout, say): reap those, and only those, by pid;
 * the children we watch are reaped by their own handlers. */
static void reap_strays(struct sup *s)
{
	if (starters_pending(s))
		return;
	char path[64], *text = NULL;
	size_t len;
	snprintf(path, sizeof(path), "/proc/self/task/%d/children", getpid());
	if (read_file_at(AT_FDCWD, path, &text, &len, NULL) < 0)
		return;
	for (char *p = text, *end; *p; p = end) {
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid > 0 && !tracked_child(s, (pid_t)pid))
			waitpid((pid_t)pid, NULL, WNOHANG);
	}
	free(text);
}

static void on_signal(struct sup *s)
{
	struct signalfd_siginfo si;
	while (read(s->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			reap_strays(s);
			continue;
		}
		if (si.ssi_signo == SIGTERM && !s->downing) {
			/* What a machine going down sends every process (systemd's
			 * and sysvinit's last SIGTERM): leave, and leave the stack
			 * up, as after SIGKILL but cleanly, so that `hutch stack
			 * restore` brings it back at boot; the services run on until
			 * the shutdown ends them. `hutch down` takes a stack down. */
			logmsg("signal %d: leaving; stack %s stays up", si.ssi_signo,
			       s->stack->name);
			s->handover = true;
			s->quit = true;
			continue;
		}
		if (si.ssi_signo == SIGINT) {
			logmsg("signal %d: taking the stack down", si.ssi_signo);
			if (!s->downing) {
				s->downing = true;
				s->down_grace = -1;
			}
			s->recheck = true;
		}
	}
}

static void dispatch(struct sup *s, struct watch *w, uint32_t events)
{
	struct replica *rep = w->rep;
	switch (w->kind) {
	case W_SIGNAL:
		on_signal(s);
		break;
	case W_LISTEN:
		accept_client(s);
		break;
	case W_CLIENT:
		client_event(s, w->cl, events);
		break;
	case W_TIMER:
		on_timer(s, rep);
		break;
	case W_PROBE_TIMER: {
		uint64_t n;
		(void)!read(rep->probe_timer_fd, &n, sizeof(n));
		end_probe(s, rep, true);
		break;
	}
	case W_MONITOR:
		on_monitor(s, rep);
		break;
	case W_PROBE:
		end_probe(s, rep, false);
		break;
	case W_PROBE_OUT:
		if (!sup_probe_read(&rep->probe))
			watch_del(s, rep->probe.out);
		break;
	case W_NOTIFY:
		on_notify(s, rep);
		break;
	case W_STARTER:
		on_starter(s, rep);
		break;
	case W_NET:
		sup_net_on_ready(s->net);
		break;
	case W_EXIT:
		on_exit_word(s, rep);
		break;
	}
}

/* A restart the user asked for that no record carries yet: stopping to be
 * started again, a start deferred until the last run's finish, or a restart
 * remembered while it starts. */
static bool user_restart_under_way(struct sup *s)
{
	for (size_t i = 0; i < s->n_svcs; i++)
		for (unsigned r = 0; r < s->svcs[i].n; r++) {
			const struct replica *rep = &s->svcs[i].reps[r];
			if ((rep->r.state == SVC_STOPPING && rep->r.want_up) || rep->spawn_deferred ||
			    rep->r.restart_after_start)
				return true;
		}
	return false;
}

int hutch_supervise(const struct hutch_sup_opts *o, struct hutch_err **err)
{
	struct sup S = {.ep = -1, .sigfd = -1, .lsock = -1, .home_netns = -1, .down_grace = -1};
	struct sup *s = &S;
	int rc = -1;
	s->src = o->src;
	if (hutch_stack_load_src(o->src, &s->stack, err) < 0)
		goto out;
	sup_paths_init(&s->paths, o->data_root, o->run_root, s->stack->name);
	if (sup_running(&s->paths) > 0) {
		hutch_fail(err, 0, "stack %s already has a supervisor (pid %d)", s->stack->name,
			   sup_running(&s->paths));
		goto out;
	}
	if (mkdir_p_at(AT_FDCWD, s->paths.run_dir, 0700, err) < 0 ||
	    mkdir_p_at(AT_FDCWD, s->paths.data_dir, 0700, err) < 0)
		goto out;
	s->notify_dir = xasprintf("%s/notify", s->paths.run_dir);
	if (mkdir_p_at(AT_FDCWD, s->notify_dir, 0755, err) < 0)
		goto out;
	if (hutch_runtime_init(&s->rt, o->data_root, o->run_root, err) < 0)
		goto out;
	s->rt.rootless = o->rootless;
	s->rt.log = rt_log;
	/* tcp probes are made from the loop where it may enter a container's
	 * network namespace (root); rootless ones in a child */
	if (!o->rootless)
		s->home_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (hutch_store_open(o->data_root, o->rootless, HUTCH_STORE_READ, &s->store, err) < 0)
		goto out;
	s->bctx = (struct sup_build_ctx){.rt = &s->rt,
					 .data_root = o->data_root,
					 .stack = s->stack,
					 .notify_dir = s->notify_dir};
	/* the containers' monitors are started by starters that exit: they come
	 * back to us, to be reaped through their pidfds */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	s->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	s->w_sig.kind = W_SIGNAL;
	watch_add(s, s->sigfd, &s->w_sig);
	if (setup_services(s, o->services, o->n_services, o->adopt_only, err) < 0 ||
	    sup_net_open(&s->net, s->stack, o->data_root, o->run_root, o->rootless, err) < 0)
		goto out;
	s->w_net.kind = W_NET;
	if (s->net)
		watch_add(s, sup_net_fd(s->net), &s->w_net);
	if (listen_control(s, err) < 0 || sup_write_pidfile(&s->paths, err) < 0)
		goto out;
	sup_stack_info_write(&s->paths, s->src, true);
	logmsg("supervisor of stack %s (file %s) started, pid %d", s->stack->name, s->stack->file,
	       getpid());
	if (o->ready_fd >= 0) {
		(void)!write(o->ready_fd, "OK\n", 3);
		close(o->ready_fd);
	}
	adopt_all(s);
	sup_net_refresh(s->net);
	/* every waiting replica: their dependencies decide (CHECK_DEPS) */
	s->recheck = true;
	recheck(s);
	while (!s->quit) {
		struct epoll_event evs[64];
		int n = epoll_wait(s->ep, evs, 64, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			hutch_fail_sys(err, "epoll_wait");
			goto out;
		}
		for (int i = 0; i < n && !s->quit; i++)
			dispatch(s, evs[i].data.ptr, evs[i].events);
		recheck(s);
		reap_clients(s);
		if (s->handover_pending && !s->downing && !user_restart_under_way(s))
			s->quit = true;
	}
	rc = 0;
	for (size_t i = 0; i < s->n_svcs; i++)
		for (unsigned r = 0; r < s->svcs[i].n; r++) {
			struct replica *rep = &s->svcs[i].reps[r];
			abandon_probe(s, rep);
			/* a container still being started is left to the next
			 * supervisor whole, not half made */
			if (rep->starter_pidfd >= 0) {
				waitid((idtype_t)P_PIDFD, (id_t)rep->starter_pidfd, &(siginfo_t){0},
				       WEXITED);
				close(rep->starter_pidfd);
				close(rep->starter_pipe);
			}
		}
	/* the DNS server's port free for the next supervisor */
	sup_net_close(steal_ptr(s->net));
	if (s->handover) {
		logmsg("handing stack %s over to a new supervisor", s->stack->name);
	} else {
		remove_tree_at(AT_FDCWD, s->notify_dir, NULL);
		logmsg("stack %s is down", s->stack->name);
	}
	unlink(s->paths.sock);
	unlink(s->paths.pidfile);
	if (!s->handover)
		rmdir(s->paths.run_dir);
	/* the answer those who asked for it wait for: written out before we go
	 * (a moment at most; the others get what was written) */
	for (struct client *c = s->clients; c; c = c->next)
		if (c->down_waiting || c->handover) {
			client_reply_ok(c);
			if (!c->dead)
				sup_conn_drain(&c->conn, 1000);
		}
out:
	if (rc < 0 && o->ready_fd >= 0) {
		_cleanup_free_ char *m = err && *err ? xstrdup((*err)->msg) : xstrdup("failed");
		(void)!write(o->ready_fd, m, strlen(m));
		close(o->ready_fd);
	}
	sup_net_close(s->net);
	while (s->clients)
		client_close(s, s->clients);
	for (size_t i = 0; i < s->n_svcs; i++) {
		struct service *svc = &s->svcs[i];
		for (unsigned r = 0; r < svc->n; r++) {
			struct replica *rep = &svc->reps[r];
			if (rep->mon_pidfd >= 0)
				close(rep->mon_pidfd);
			drop_ctr(rep);
			if (rep->notify_fd >= 0)
				close(rep->notify_fd);
			if (rep->exit_fd >= 0)
				close(rep->exit_fd);
			free(rep->cgroup);
			close(rep->timer_fd);
			close(rep->probe_timer_fd);
			svc_fini(&rep->r);
			free(rep->cname);
		}
		free(svc->reps);
		free(svc->deps);
		hutch_image_free(svc->img);
	}
	free(s->svcs);
	if (s->lsock >= 0)
		close(s->lsock);
	if (s->sigfd >= 0)
		close(s->sigfd);
	if (s->home_netns >= 0)
		close(s->home_netns);
	if (s->ep >= 0)
		close(s->ep);
	if (s->store)
		hutch_store_close(s->store);
	hutch_runtime_fini(&s->rt);
	free(s->notify_dir);
	sup_paths_fini(&s->paths);
	hutch_stack_free(s->stack);
	return rc;
}
