/* The supervisor's private parts: one process per stack, one event loop
 * (loop.c) driving the service state machine (service.c) over detached
 * containers, a control socket (control.c), health probes (probe.c), the
 * stack's files on disk (store.c) and the stack model -> container specs
 * (build.c). Private to supervisor/. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "runtime/runtime.h"
#include "supervisor/service_internal.h"
#include "supervisor/stack.h"
#include "supervisor/supervisor.h"

struct hutch_image;
struct hutch_store;

/* Labels every stack container carries (inspect shows them). */
#define SUP_LABEL_STACK	  "hutch.stack"
#define SUP_LABEL_SERVICE "hutch.service"
#define SUP_LABEL_REPLICA "hutch.replica"
#define SUP_LABEL_HASH	  "hutch.config-hash"

/* Where the notify socket appears inside a container (notify = true). */
#define SUP_NOTIFY_PATH "/run/hutch-notify.sock"

/* ---- build.c: a service's settings -> a container spec ---------------------- */
/* The config hash of a service: what recreating its containers depends on
 * (image id, command, env, options, ...), 16 hex characters. Pure. */
void sup_config_hash(const struct stack_service *svc, const char *image_id, char out[17]);
/* "STACK-SERVICE-N" */
char *sup_container_name(const char *stack, const struct stack_service *svc, unsigned replica);
/* Parse "hutch.replica" etc. back from a container's labels: the replica's
 * service and index, 0 if the labels are not this stack's. Pure. */
int sup_labels_match(char *const *labels, size_t n, const char *stack, const char **service,
		     unsigned *replica);

struct sup_build_ctx {
	const struct hutch_runtime *rt;
	const char *data_root;
	const struct hutch_stack *stack;
	const char *notify_dir; /* RUN/stacks/NAME/notify, for notify = true */
};
/* The spec of replica `replica` of svc, with id and the image given; errors are
 * "FILE:LINE: KEY: message". */
int sup_build_spec(const struct sup_build_ctx *b, const struct stack_service *svc, unsigned replica,
		   const char *id, const struct hutch_image *img, const char *hash,
		   struct hutch_spec **out, struct hutch_err **err);
/* Every service's spec built once and dropped, with every error (one per
 * line), images resolved: what `up` checks before anything starts. */
int sup_check_stack(const struct sup_build_ctx *b, struct hutch_store *store,
		    struct hutch_err **err);

/* ---- control.c: the control protocol (JSON lines, docs/api.md) -------------- */
enum sup_cmd {
	SUP_CMD_STATUS,
	SUP_CMD_START,
	SUP_CMD_STOP,
	SUP_CMD_RESTART,
	SUP_CMD_DOWN,
	SUP_CMD_SUBSCRIBE,
	SUP_CMD_WAIT,  /* answer when the stack is up, or failed */
	SUP_CMD_READY, /* the readiness verdict now */
	SUP_CMD_UP,    /* `hutch up` again: re-read the file, apply changes */
};
#define SUP_REQUEST_MAX	 65536 /* bytes of one request line */
#define SUP_SERVICES_MAX 1024
struct sup_request {
	enum sup_cmd cmd;
	char **services; /* start/stop/restart/up */
	size_t n_services;
	int64_t timeout_ns; /* down: the grace (-1: the services' own) */
};
/* Parse one request line; on error *errmsg (allocated) and -1. Pure. */
int sup_parse_request(const char *line, size_t len, struct sup_request *out, char **errmsg);
void sup_request_free(struct sup_request *r);

/* ---- conn.c: a control connection that never blocks the loop ---------------- */
/* What may wait for a client that does not read (answers and events) before
 * it is dropped. */
#define SUP_CONN_OUT_MAX (4u << 20)
struct sup_conn {
	int fd; /* non-blocking */
	char *in;
	size_t in_len;
	char *out;
	size_t out_len, out_off, out_cap;
};
void sup_conn_init(struct sup_conn *c, int fd);
void sup_conn_fini(struct sup_conn *c); /* closes the fd */
/* Queue line and a newline, and write what the socket takes now. 0: sent or
 * queued; -1: the connection is broken; -2: more than SUP_CONN_OUT_MAX would
 * wait (the client does not read): drop it. */
int sup_conn_send(struct sup_conn *c, const char *line, size_t len);
/* Write what waits, as far as the socket takes it; -1: broken. */
int sup_conn_flush(struct sup_conn *c);
bool sup_conn_pending(const struct sup_conn *c);
/* One read into the input: 0 (read, or nothing yet), -1 end or error, -2 a
 * line longer than SUP_REQUEST_MAX. */
int sup_conn_fill(struct sup_conn *c);
/* The first complete line (without its newline), if any; sup_conn_consume
 * drops it once handled. */
bool sup_conn_line(struct sup_conn *c, char **line, size_t *len);
void sup_conn_consume(struct sup_conn *c, size_t len);
/* Before the supervisor exits: what waits, for at most timeout_ms. */
void sup_conn_drain(struct sup_conn *c, int timeout_ms);

/* ---- store.c: the stack on disk -------------------------------------------- */
struct sup_paths {
	char *run_dir;	/* RUN/stacks/NAME: control.sock, supervisor.pid, notify/ */
	char *data_dir; /* DATA/stacks/NAME: stack.json, replicas/, volumes/, supervisor.log */
	char *sock;
	char *pidfile;
	char *log;
};
void sup_paths_init(struct sup_paths *p, const char *data_root, const char *run_root,
		    const char *name);
void sup_paths_fini(struct sup_paths *p);
/* The supervisor's pid if one runs for this stack (pid and start time match). */
pid_t sup_running(const struct sup_paths *p);
int sup_write_pidfile(const struct sup_paths *p, struct hutch_err **err);
uint64_t sup_proc_start_time(pid_t pid);

/* What a replica's container keeps for a new supervisor (DATA/stacks/NAME/
 * replicas/SERVICE-N.json). */
struct sup_replica_record {
	unsigned restarts;
	int64_t backoff;
	bool stopped_by_user;
	int health; /* enum svc_health */
	int state;  /* enum svc_state, for `hutch ps` ("Restarting (1) ...") */
};
int sup_record_read(const struct sup_paths *p, const char *service, unsigned replica,
		    struct sup_replica_record *out);
void sup_record_write(const struct sup_paths *p, const char *service, unsigned replica,
		      const struct sup_replica_record *r);
/* A unix socket address for path, even one longer than sun_path (then through
 * /proc/self/fd/N/NAME, N an O_PATH fd of its directory: *dirfd, closed by the
 * caller after bind or connect; else -1). */
struct sockaddr_un;
int sup_unix_addr(const char *path, struct sockaddr_un *sa, int *dirfd, struct hutch_err **err);
/* stack.json: the file's path and whether it is up (for ls and restore). */
int sup_stack_info_write(const struct sup_paths *p, const struct hutch_stack_src *src, bool up);
/* stack.json read back (an older one with its "file" only: that one file). */
int sup_stack_info_read(const char *path, struct hutch_stack_src *src, bool *up);

/* ---- probe.c: health probes in forked children, and tcp ones without -------- */
struct sup_probe {
	pid_t pid;
	int pidfd, out; /* -1 when none */
	/* a tcp probe made in the loop (sup_probe_tcp_start): its socket, -1
	 * when none, and the connect's error when it failed at once (-1: under
	 * way) */
	int sock, sock_err;
	uint16_t port;
	char addr[48];
	char buf[SVC_PROBE_OUTPUT_MAX + 1];
	size_t len;
	int64_t start;
};
/* Start the probe of svc against the container (state s); fills p. */
int sup_probe_start(struct hutch_runtime *rt, const struct stack_service *svc,
		    const struct hutch_state *s, struct sup_probe *p, struct hutch_err **err);
/* health_tcp without a child: a socket made in the container's network
 * namespace (netns, entered and left again: home; -1: the host's network) and
 * a non-blocking connect; the loop waits for p->sock to be writable, then
 * sup_probe_reap says how it went. Root only (a rootless supervisor cannot
 * enter a namespace of the container's user namespace). */
int sup_probe_tcp_start(const struct stack_health *h, int netns, int home, struct sup_probe *p,
			struct hutch_err **err);
/* Read what is there from p->out (false at EOF). */
bool sup_probe_read(struct sup_probe *p);
/* Reap it: its exit code (-1 if killed). */
int sup_probe_reap(struct sup_probe *p);
void sup_probe_kill(struct sup_probe *p);

/* ---- loop.c ---------------------------------------------------------------- */
int sup_json_escape_into(char *buf, size_t len, const char *s);

/* ---- stacknet.c: the stack's networks and its DNS server --------------------- */
struct sup_net;
/* Make (or take over) the stack's networks and start its DNS server; *out is
 * NULL when the stack has none (every service on none or host). */
int sup_net_open(struct sup_net **out, const struct hutch_stack *stack, const char *data_root,
		 const char *run_root, bool rootless, struct hutch_err **err);
/* The one fd the loop watches for the DNS server (an epoll of its own), -1
 * without one; sup_net_on_ready when it is readable. */
int sup_net_fd(const struct sup_net *net);
void sup_net_on_ready(struct sup_net *net);
/* A replica started or stopped: the names from the networks' members now. */
void sup_net_refresh(struct sup_net *net);
/* Put a replica's container on its service's networks (key: its name, for a
 * stable address), before it starts; spec (NULL for a container started
 * again) gets the network namespace, its nameserver and /etc/hosts lines. */
int sup_net_attach(const struct sup_net *net, const struct stack_service *ss, const char *id,
		   const char *cname, struct hutch_spec *spec, struct hutch_err **err);
/* Rootless, in the starter after sup_net_attach: rt makes the container
 * under the rootless network's user namespace (this process enters it for
 * good) and wires its network once its process exists. */
void sup_net_runtime(const struct sup_net *net, struct hutch_runtime *rt);
/* Take a container whose start failed off its networks. */
void sup_net_release(const struct sup_net *net, const char *id);
/* The stack is down: its networks go (the DNS server first). */
void sup_net_down(struct sup_net *net);
/* Close the DNS server and free (the networks stay: a handover, a crash). */
void sup_net_close(struct sup_net *net);
/* `down` without a supervisor: the networks the stack's owned. */
int sup_net_cleanup_offline(const char *data_root, const char *run_root, const char *stack,
			    bool rootless, struct hutch_err **err);
