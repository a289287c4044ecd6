/* One replica's lifecycle as an explicit table of state x event, as s6-supervise
 * has: the event loop feeds events (with the monotonic time), svc_step() changes
 * the replica and returns the actions the loop must carry out. No syscalls here,
 * so that every transition is unit-tested (tests/unit/test_fsm.c); the rules are
 * written for users and for the loop's author in docs/supervisor-states.md. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SVC_MS ((int64_t)1000000)
#define SVC_S  (1000 * SVC_MS)

/* Docker's restart backoff (moby restartmanager): 100 ms, doubled at each
 * restart, capped at 1 min, back to 100 ms when the last run lasted 10 s. */
#define SVC_BACKOFF_FIRST (100 * SVC_MS)
#define SVC_BACKOFF_MAX	  (60 * SVC_S)
#define SVC_BACKOFF_RESET (10 * SVC_S)
/* As docker inspect: the last 5 probes, each output cut to 4 KiB (and "..."). */
#define SVC_PROBE_LOG	     5
#define SVC_PROBE_OUTPUT_MAX 4096

enum svc_restart {
	SVC_RESTART_NO,
	SVC_RESTART_ALWAYS,
	SVC_RESTART_ON_FAILURE, /* with max_retries, 0 = no limit */
	SVC_RESTART_UNLESS_STOPPED,
};

/* What the state machine needs of a service's settings (the stack model maps
 * its keys to this). Durations are in ns, already defaulted and checked by the
 * reader: compose's defaults are interval 30s, timeout 30s, retries 3, start
 * period 0, start interval 5s, stop grace 10s. */
struct svc_config {
	enum svc_restart restart;
	unsigned max_retries;
	bool has_probe; /* health_cmd, health_tcp or health_http */
	bool notify;	/* READY=1 on $NOTIFY_SOCKET makes it healthy */
	int64_t health_interval;
	int64_t health_timeout;
	int64_t health_start_period;
	int64_t health_start_interval;
	unsigned health_retries; /* failures in a row to become unhealthy (0: 3, as Docker) */
	int64_t stop_grace;	 /* stop signal, then SIGKILL after this */
};

enum svc_state {
	SVC_WAITING,  /* for its dependencies' conditions */
	SVC_STARTING, /* spawn asked for, start ok/failed not yet known */
	SVC_RUNNING,  /* a process runs; health is a sub-state */
	SVC_STOPPING, /* stop signal sent, grace timer armed (or SIGKILL sent) */
	SVC_BACKOFF,  /* exited, restart timer armed ("Restarting") */
	SVC_EXITED,   /* ran and exited, the restart policy says no more */
	SVC_FAILED,   /* never ran: start failed or a dependency failed */
	SVC_STOPPED,  /* stopped by `stack stop` or `down` */
	SVC_NSTATES
};

/* A replica has one timer at most: each state that waits uses one kind
 * (BACKOFF in BACKOFF, GRACE in STOPPING, HEALTH in RUNNING). */
enum svc_timer { SVC_TIMER_NONE, SVC_TIMER_BACKOFF, SVC_TIMER_GRACE, SVC_TIMER_HEALTH };

enum svc_health {
	SVC_HEALTH_NONE, /* no probe and no notify */
	SVC_HEALTH_STARTING,
	SVC_HEALTH_HEALTHY,
	SVC_HEALTH_UNHEALTHY,
};

enum svc_event_kind {
	SVC_EV_DEPS_OK,
	SVC_EV_DEPS_FAILED, /* .reason: the root cause, e.g. "migrate exited with code 3" */
	SVC_EV_START_OK,
	SVC_EV_START_FAILED, /* .reason: the runtime's message */
	SVC_EV_EXIT,	     /* .exit */
	SVC_EV_PROBE_RESULT, /* .probe */
	SVC_EV_READY,	     /* READY=1 on the notify socket */
	SVC_EV_BACKOFF_TIMER,
	SVC_EV_GRACE_TIMER,
	SVC_EV_HEALTH_TIMER,
	SVC_EV_USER_STOP,
	SVC_EV_USER_START,
	SVC_EV_USER_RESTART,
	SVC_EV_STACK_DOWN, /* .grace: `down -t`, or -1 for the service's own (USER_STOP and
			    * USER_RESTART too: `stop -t`) */
	SVC_EV_ADOPT,	   /* .adopt: its container found running by a new supervisor */
	SVC_NEVENTS
};

struct svc_exit {
	int code;   /* exit status when it exited */
	int signal; /* or the signal that killed it (0: none) */
	bool oom;   /* killed by the OOM killer (the cgroup's oom_kill count rose) */
	int64_t at; /* monotonic ns of the exit when it was seen late; 0: now */
};

enum svc_probe_status { SVC_PROBE_OK, SVC_PROBE_FAIL, SVC_PROBE_TIMEOUT };

struct svc_probe_result {
	enum svc_probe_status status;
	int exit_code;	    /* health_cmd's; -1 for a timeout, as docker inspect */
	const char *output; /* may be NULL; cut to SVC_PROBE_OUTPUT_MAX when kept */
	int64_t start, end; /* monotonic ns */
};

/* What a new supervisor knows of a container it adopts, from its record.
 * restarts and backoff are the values written at its SPAWN, so that feeding
 * its exit again (ADOPT, then EXIT with .at) gives the same restart, at the
 * same time, as the supervisor that died would have made. */
struct svc_adopt {
	int64_t started; /* monotonic ns of its start (for uptime and the backoff reset) */
	unsigned restarts;
	int64_t backoff;
	enum svc_health health; /* last known; NONE: unknown (starting again if checked) */
	bool stopped_by_user;	/* `stack stop` had been asked: the stop goes on */
};

struct svc_event {
	enum svc_event_kind kind;
	const char *reason;
	struct svc_exit exit;
	struct svc_probe_result probe;
	int64_t grace;
	struct svc_adopt adopt;
};

/* A kept probe, as docker inspect's State.Health.Log. */
struct svc_probe_log {
	int64_t start, end;
	int exit_code;
	char *output; /* owned, NULL when there was none */
};

struct svc_replica {
	const struct svc_config *cfg;
	const char *name; /* for messages: "migrate", "api-2" (not owned) */
	enum svc_state state;
	enum svc_health health;
	/* s6's "want up": false after `stack stop` or `down`; true again with
	 * start/restart. In STOPPING it says whether to spawn again after the exit. */
	bool want_up;
	/* a restart asked while it started: stopped (and started again) once the
	 * start is done, as docker restarts a container that is starting */
	bool restart_after_start;
	bool stopped_by_user; /* persisted: `stack restore` leaves it down */
	bool killed;	      /* SIGKILL sent in STOPPING */
	bool probing;	      /* a probe runs; its result comes as PROBE_RESULT */
	bool blocked;	      /* FAILED because of a dependency (why: its root cause) */
	enum svc_timer timer; /* the armed one, so a stale expiry is told apart */
	int64_t timer_at;
	int64_t grace_override; /* `down -t`, `stop -t` until the exit; -1: stop_grace */
	unsigned runs;		/* processes started since svc_init */
	unsigned restarts; /* by the policy since the last user start (docker's RestartCount) */
	unsigned failing_streak;
	int64_t backoff; /* the last restart delay; 0: none yet */
	int64_t started, exited;
	struct svc_exit last_exit;
	bool has_exited;
	struct svc_probe_log log[SVC_PROBE_LOG]; /* ring, oldest at log_first */
	unsigned log_first, log_len;
	char why[512]; /* FAILED: the reason, naming the service at fault */
};

enum svc_action_kind {
	SVC_ACT_SPAWN,	     /* start a container (its record keeps restarts and backoff as
			      * they are now); answer START_OK or START_FAILED */
	SVC_ACT_STOP_SIGNAL, /* send the service's stop signal */
	SVC_ACT_KILL,	     /* send SIGKILL */
	SVC_ACT_ARM_TIMER,   /* .timer at .at, replacing the replica's timer */
	SVC_ACT_CANCEL_TIMER,
	SVC_ACT_PROBE,		   /* run the health probe, give up after .at ns */
	SVC_ACT_EMIT,		   /* .emit for `stack events` and the logs */
	SVC_ACT_RECORD_EXIT,	   /* write last_exit and exited to the container's record */
	SVC_ACT_CHECK_DEPS,	   /* evaluate svc_deps_check, answer DEPS_OK/DEPS_FAILED */
	SVC_ACT_NOTIFY_DEPENDENTS, /* state or health changed: re-check dependents, readiness */
};

enum svc_emit {
	SVC_EMIT_STARTED,
	SVC_EMIT_START_FAILED,
	SVC_EMIT_NOT_STARTED, /* a dependency failed */
	SVC_EMIT_EXITED,
	SVC_EMIT_RESTARTING, /* .at: the delay */
	SVC_EMIT_HEALTH,     /* the replica's new health */
	SVC_EMIT_STOPPING,
	SVC_EMIT_KILLING, /* grace period over: SIGKILL */
	SVC_EMIT_STOPPED,
	SVC_EMIT_ADOPTED,
};

struct svc_action {
	enum svc_action_kind kind;
	enum svc_timer timer;
	enum svc_emit emit;
	int64_t at;
};

#define SVC_MAX_ACTIONS 8
struct svc_actions {
	size_t n;
	struct svc_action a[SVC_MAX_ACTIONS];
};

enum svc_outcome {
	SVC_DONE,    /* the table's transition was taken (it may have no actions) */
	SVC_IGNORED, /* explicitly nothing to do: a stale timer, a late probe ... */
	SVC_INVALID, /* the loop broke the contract (e.g. EXIT before START_OK): a bug */
};

/* ---- service.c: the lifecycle ---------------------------------------------- */
void svc_init(struct svc_replica *r, const struct svc_config *cfg, const char *name);
void svc_fini(struct svc_replica *r);
/* Feed one event at monotonic time now. out is reset, then filled. */
enum svc_outcome svc_step(struct svc_replica *r, const struct svc_event *ev, int64_t now,
			  struct svc_actions *out);
/* Every cell of the table is filled (a test checks it). */
bool svc_table_complete(void);

/* Should a replica that exited (as e) be restarted by its policy? (want_up and
 * the on-failure count included.) */
bool svc_should_restart(const struct svc_replica *r, const struct svc_exit *e);
/* The delay before the next restart, Docker's sequence: prev the last delay
 * (0: none), ran how long the process that just exited ran. */
int64_t svc_next_backoff(int64_t prev, int64_t ran);
/* Does `stack restore` start again a replica that was up (waiting, starting,
 * running or in backoff) when the machine went down? */
bool svc_comes_back_after_reboot(const struct svc_config *cfg, bool stopped_by_user);
bool svc_exit_failed(const struct svc_exit *e);
/* The kept probes, oldest first (i < log_len). */
const struct svc_probe_log *svc_probe_at(const struct svc_replica *r, unsigned i);

/* ---- service_report.c: what is said about replicas --------------------------- */
/* "migrate exited with code 3", "migrate was killed by SIGKILL", ...; without a
 * name: "exited with code 3", "killed by SIGKILL". */
void svc_describe_exit(const char *name, const struct svc_exit *e, char *buf, size_t len);
/* What `ps` and `stack ps` show, as Docker's: "Up 5 minutes (healthy)",
 * "Restarting (3) 2 seconds ago" (3 is the last exit code, a signal's as
 * 128+n), "Exited (0) About a minute ago". */
void svc_status(const struct svc_replica *r, int64_t now, char *buf, size_t len);
/* Go's Duration format: "500ms", "1.5s", "1m30s" (Docker's messages use it) */
void svc_go_duration(int64_t ns, char *buf, size_t len);
/* Docker's HumanDuration: "Less than a second", "5 minutes", "About an hour" */
void svc_human_duration(int64_t ns, char *buf, size_t len);
const char *svc_state_name(enum svc_state s);
const char *svc_event_name(enum svc_event_kind k);
const char *svc_health_name(enum svc_health h);

enum svc_dep_condition { SVC_DEP_STARTED, SVC_DEP_HEALTHY, SVC_DEP_COMPLETED };
struct svc_dep {
	const struct svc_replica *r; /* one entry per replica of the dependency */
	enum svc_dep_condition cond;
};
enum svc_verdict { SVC_GO, SVC_WAIT, SVC_FAIL };
/* May a service with these dependencies start? FAIL (why: the root cause, naming
 * the service at fault) beats WAIT (why: what it waits for) beats GO. */
enum svc_verdict svc_deps_check(const struct svc_dep *deps, size_t n, char *why, size_t len);
/* `up --wait`: is the stack up (every replica healthy with a check, running
 * without one, completed ones exited 0)? why as for svc_deps_check. */
enum svc_verdict svc_stack_ready(const struct svc_replica *const *rs, size_t n, char *why,
				 size_t len);
