/* supervisor/service.c and service_report.c: one replica's lifecycle (docs/supervisor-states.md).
 * Read as the spec: the whole table of state x event, then the restart policy
 * with Docker's exact backoff, compose's health rules, dependency conditions
 * and `up --wait` readiness. Times are monotonic ns, made up by the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>

#include "common/util.h"
#include "supervisor/service_internal.h"

#define MS SVC_MS
#define S  SVC_S
/* An arbitrary monotonic clock reading to start from. */
#define T0 (1000 * S)

/* compose's defaults, and a check (probe and notify) so that every health
 * transition has something to do. */
static struct svc_config defaults(void)
{
	return (struct svc_config){
	    .restart = SVC_RESTART_ON_FAILURE,
	    .has_probe = true,
	    .notify = true,
	    .health_interval = 30 * S,
	    .health_timeout = 30 * S,
	    .health_start_period = 0,
	    .health_start_interval = 5 * S,
	    .health_retries = 3,
	    .stop_grace = 10 * S,
	};
}

static struct svc_actions acts_out;

static const char *emit_name(enum svc_emit e)
{
	static const char *const names[] = {"started",	  "start_failed", "not_started", "exited",
					    "restarting", "health",	  "stopping",	 "killing",
					    "stopped",	  "adopted"};
	return names[e];
}

static const char *timer_name(enum svc_timer t)
{
	static const char *const names[] = {"none", "backoff", "grace", "health"};
	return names[t];
}

static void fmt_duration(char *buf, size_t len, int64_t ns)
{
	if (ns % S == 0)
		snprintf(buf, len, "%llds", (long long)(ns / S));
	else if (ns % MS == 0)
		snprintf(buf, len, "%lldms", (long long)(ns / MS));
	else
		snprintf(buf, len, "%lldns", (long long)ns);
}

/* The actions of the last step, as the tables below spell them: timers are
 * relative to the step's time ("ARM(backoff,+100ms)"). */
static const char *actions_text(int64_t now)
{
	static char buf[512];
	buf[0] = '\0';
	for (size_t i = 0; i < acts_out.n; i++) {
		const struct svc_action *a = &acts_out.a[i];
		char one[64], d[32];
		switch (a->kind) {
		case SVC_ACT_SPAWN:
			snprintf(one, sizeof(one), "SPAWN");
			break;
		case SVC_ACT_STOP_SIGNAL:
			snprintf(one, sizeof(one), "STOP_SIGNAL");
			break;
		case SVC_ACT_KILL:
			snprintf(one, sizeof(one), "KILL");
			break;
		case SVC_ACT_ARM_TIMER:
			fmt_duration(d, sizeof(d), a->at - now);
			snprintf(one, sizeof(one), "ARM(%s,+%s)", timer_name(a->timer), d);
			break;
		case SVC_ACT_CANCEL_TIMER:
			snprintf(one, sizeof(one), "CANCEL");
			break;
		case SVC_ACT_PROBE:
			fmt_duration(d, sizeof(d), a->at);
			snprintf(one, sizeof(one), "PROBE(%s)", d);
			break;
		case SVC_ACT_EMIT:
			if (a->emit == SVC_EMIT_RESTARTING) {
				fmt_duration(d, sizeof(d), a->at);
				snprintf(one, sizeof(one), "EMIT(restarting,%s)", d);
			} else {
				snprintf(one, sizeof(one), "EMIT(%s)", emit_name(a->emit));
			}
			break;
		case SVC_ACT_RECORD_EXIT:
			snprintf(one, sizeof(one), "RECORD_EXIT");
			break;
		case SVC_ACT_CHECK_DEPS:
			snprintf(one, sizeof(one), "CHECK_DEPS");
			break;
		case SVC_ACT_NOTIFY_DEPENDENTS:
			snprintf(one, sizeof(one), "NOTIFY");
			break;
		}
		if (i)
			strcat(buf, " ");
		strcat(buf, one);
	}
	return buf;
}

static struct svc_event ev(enum svc_event_kind kind)
{
	struct svc_event e = {.kind = kind, .grace = -1};
	if (kind == SVC_EV_DEPS_FAILED)
		e.reason = "migrate exited with code 3";
	if (kind == SVC_EV_START_FAILED)
		e.reason = "image app:1 not found";
	if (kind == SVC_EV_EXIT)
		e.exit.code = 1;
	if (kind == SVC_EV_ADOPT)
		e.adopt.started = T0;
	return e;
}

static struct svc_event ev_exit(int code, int sig, bool oom)
{
	struct svc_event e = ev(SVC_EV_EXIT);
	e.exit = (struct svc_exit){.code = code, .signal = sig, .oom = oom};
	return e;
}

static struct svc_event ev_probe(enum svc_probe_status st, int64_t start, int64_t end,
				 const char *output)
{
	struct svc_event e = ev(SVC_EV_PROBE_RESULT);
	e.probe = (struct svc_probe_result){.status = st,
					    .exit_code = st == SVC_PROBE_OK ? 0 : 1,
					    .output = output,
					    .start = start,
					    .end = end};
	return e;
}

static struct svc_event ev_down(int64_t grace)
{
	struct svc_event e = ev(SVC_EV_STACK_DOWN);
	e.grace = grace;
	return e;
}

static enum svc_outcome step(struct svc_replica *r, struct svc_event e, int64_t now)
{
	return svc_step(r, &e, now, &acts_out);
}

/* step, and check the outcome, the next state and the actions. */
static void expect(struct svc_replica *r, struct svc_event e, int64_t now, enum svc_state to,
		   const char *actions)
{
	enum svc_outcome res = step(r, e, now);
	assert_int_equal(res, SVC_DONE);
	assert_string_equal(svc_state_name(r->state), svc_state_name(to));
	assert_string_equal(actions_text(now), actions);
}

/* ---- the table ------------------------------------------------------------ */

/* The states the table test starts from, each reached by real events at T0
 * (a few variants where a cell has a precondition worth showing). */
enum setup {
	WAITING,
	STARTING,
	RUNNING,	  /* health "starting", the health timer armed for T0+30s */
	STOPPING,	  /* by `stack stop`, the grace timer armed for T0+10s */
	BACKOFF,	  /* exited with code 1, the backoff timer armed for T0+100ms */
	EXITED,		  /* exited with code 0 (on-failure: done) */
	FAILED,		  /* start failed */
	STOPPED,	  /* `stack stop` while waiting */
	RUNNING_PROBING,  /* RUNNING with the probe running */
	STARTING_STOPPED, /* `stack stop` came while it started */
	STOPPING_RESTART, /* by `stack restart` */
};

static const char *const setup_names[] = {
    "waiting", "starting", "running",	       "stopping",	    "backoff",		 "exited",
    "failed",  "stopped",  "running(probing)", "starting(stopped)", "stopping(restart)",
};

static void reach(struct svc_replica *r, enum setup s)
{
	switch (s) {
	case WAITING:
		return;
	case STARTING:
		assert_int_equal(step(r, ev(SVC_EV_DEPS_OK), T0), SVC_DONE);
		return;
	case RUNNING:
		reach(r, STARTING);
		assert_int_equal(step(r, ev(SVC_EV_START_OK), T0), SVC_DONE);
		return;
	case STOPPING:
		reach(r, RUNNING);
		assert_int_equal(step(r, ev(SVC_EV_USER_STOP), T0), SVC_DONE);
		return;
	case BACKOFF:
		reach(r, RUNNING);
		assert_int_equal(step(r, ev_exit(1, 0, false), T0), SVC_DONE);
		return;
	case EXITED:
		reach(r, RUNNING);
		assert_int_equal(step(r, ev_exit(0, 0, false), T0), SVC_DONE);
		return;
	case FAILED:
		reach(r, STARTING);
		assert_int_equal(step(r, ev(SVC_EV_START_FAILED), T0), SVC_DONE);
		return;
	case STOPPED:
		assert_int_equal(step(r, ev(SVC_EV_USER_STOP), T0), SVC_DONE);
		return;
	case RUNNING_PROBING:
		reach(r, RUNNING);
		assert_int_equal(step(r, ev(SVC_EV_HEALTH_TIMER), T0), SVC_DONE);
		return;
	case STARTING_STOPPED:
		reach(r, STARTING);
		assert_int_equal(step(r, ev(SVC_EV_USER_STOP), T0), SVC_DONE);
		return;
	case STOPPING_RESTART:
		reach(r, RUNNING);
		assert_int_equal(step(r, ev(SVC_EV_USER_RESTART), T0), SVC_DONE);
		return;
	}
}

struct cell {
	enum setup from;
	enum svc_event_kind event;
	enum svc_outcome outcome;
	enum svc_state to;
	const char *actions;
};

/* what is ignored or refused leaves the replica as it was */
#define UNCHANGED SVC_NSTATES
// clang-format off
#define DONE(f, e, t, a) {f, SVC_EV_##e, SVC_DONE, SVC_##t, a}
#define IGNORED(f, e)    {f, SVC_EV_##e, SVC_IGNORED, UNCHANGED, ""}
#define INVALID(f, e)    {f, SVC_EV_##e, SVC_INVALID, UNCHANGED, ""}

/* Each event comes one second after the setup (T0 + 1 s); timers in the
 * actions are relative to it. EXIT is "code 1", PROBE_RESULT a success,
 * STACK_DOWN without -t. */
static const struct cell cells[] = {
	DONE(WAITING, DEPS_OK, STARTING, "SPAWN NOTIFY"),
	DONE(WAITING, DEPS_FAILED, FAILED, "EMIT(not_started) NOTIFY"),
	INVALID(WAITING, START_OK),
	INVALID(WAITING, START_FAILED),
	INVALID(WAITING, EXIT),
	IGNORED(WAITING, PROBE_RESULT),
	IGNORED(WAITING, READY),
	IGNORED(WAITING, BACKOFF_TIMER),
	IGNORED(WAITING, GRACE_TIMER),
	IGNORED(WAITING, HEALTH_TIMER),
	DONE(WAITING, USER_STOP, STOPPED, "EMIT(stopped) NOTIFY"),
	IGNORED(WAITING, USER_START),
	IGNORED(WAITING, USER_RESTART),
	DONE(WAITING, STACK_DOWN, STOPPED, "EMIT(stopped) NOTIFY"),
	DONE(WAITING, ADOPT, RUNNING, "EMIT(adopted) ARM(health,+30s) NOTIFY"),

	IGNORED(STARTING, DEPS_OK),
	IGNORED(STARTING, DEPS_FAILED),
	DONE(STARTING, START_OK, RUNNING, "EMIT(started) ARM(health,+30s) NOTIFY"),
	DONE(STARTING, START_FAILED, FAILED, "EMIT(start_failed) NOTIFY"),
	INVALID(STARTING, EXIT),
	IGNORED(STARTING, PROBE_RESULT),
	IGNORED(STARTING, READY),
	IGNORED(STARTING, BACKOFF_TIMER),
	IGNORED(STARTING, GRACE_TIMER),
	IGNORED(STARTING, HEALTH_TIMER),
	DONE(STARTING, USER_STOP, STARTING, ""),	/* remembered for START_OK */
	DONE(STARTING, USER_START, STARTING, ""),
	DONE(STARTING, USER_RESTART, STARTING, ""),
	DONE(STARTING, STACK_DOWN, STARTING, ""),
	INVALID(STARTING, ADOPT),
	DONE(STARTING_STOPPED, START_OK, STOPPING,
	     "EMIT(started) STOP_SIGNAL EMIT(stopping) ARM(grace,+10s) NOTIFY"),

	IGNORED(RUNNING, DEPS_OK),
	IGNORED(RUNNING, DEPS_FAILED),
	INVALID(RUNNING, START_OK),
	INVALID(RUNNING, START_FAILED),
	DONE(RUNNING, EXIT, BACKOFF,
	     "RECORD_EXIT EMIT(exited) ARM(backoff,+100ms) EMIT(restarting,100ms) NOTIFY"),
	IGNORED(RUNNING, PROBE_RESULT),		/* no probe runs: stale */
	DONE(RUNNING, READY, RUNNING, "EMIT(health) NOTIFY"),
	IGNORED(RUNNING, BACKOFF_TIMER),
	IGNORED(RUNNING, GRACE_TIMER),
	DONE(RUNNING, HEALTH_TIMER, RUNNING, "PROBE(30s)"),
	DONE(RUNNING, USER_STOP, STOPPING, "STOP_SIGNAL EMIT(stopping) ARM(grace,+10s) NOTIFY"),
	IGNORED(RUNNING, USER_START),
	DONE(RUNNING, USER_RESTART, STOPPING, "STOP_SIGNAL EMIT(stopping) ARM(grace,+10s) NOTIFY"),
	DONE(RUNNING, STACK_DOWN, STOPPING, "STOP_SIGNAL EMIT(stopping) ARM(grace,+10s) NOTIFY"),
	INVALID(RUNNING, ADOPT),
	DONE(RUNNING_PROBING, PROBE_RESULT, RUNNING, "EMIT(health) ARM(health,+30s) NOTIFY"),
	IGNORED(RUNNING_PROBING, HEALTH_TIMER),	/* the timer is not armed while probing */

	IGNORED(STOPPING, DEPS_OK),
	IGNORED(STOPPING, DEPS_FAILED),
	INVALID(STOPPING, START_OK),
	INVALID(STOPPING, START_FAILED),
	DONE(STOPPING, EXIT, STOPPED, "RECORD_EXIT EMIT(exited) CANCEL EMIT(stopped) NOTIFY"),
	IGNORED(STOPPING, PROBE_RESULT),
	IGNORED(STOPPING, READY),
	IGNORED(STOPPING, BACKOFF_TIMER),
	DONE(STOPPING, GRACE_TIMER, STOPPING, "KILL EMIT(killing)"),
	IGNORED(STOPPING, HEALTH_TIMER),
	DONE(STOPPING, USER_STOP, STOPPING, ""),
	DONE(STOPPING, USER_START, STOPPING, ""),	/* started again after the exit */
	DONE(STOPPING, USER_RESTART, STOPPING, ""),
	DONE(STOPPING, STACK_DOWN, STOPPING, ""),
	INVALID(STOPPING, ADOPT),
	DONE(STOPPING_RESTART, EXIT, STARTING,
	     "RECORD_EXIT EMIT(exited) CANCEL EMIT(restarting,0s) SPAWN NOTIFY"),

	IGNORED(BACKOFF, DEPS_OK),
	IGNORED(BACKOFF, DEPS_FAILED),
	INVALID(BACKOFF, START_OK),
	INVALID(BACKOFF, START_FAILED),
	INVALID(BACKOFF, EXIT),
	IGNORED(BACKOFF, PROBE_RESULT),
	IGNORED(BACKOFF, READY),
	DONE(BACKOFF, BACKOFF_TIMER, STARTING, "SPAWN NOTIFY"),
	IGNORED(BACKOFF, GRACE_TIMER),
	IGNORED(BACKOFF, HEALTH_TIMER),
	DONE(BACKOFF, USER_STOP, STOPPED, "CANCEL EMIT(stopped) NOTIFY"),
	DONE(BACKOFF, USER_START, STARTING, "CANCEL SPAWN NOTIFY"),
	DONE(BACKOFF, USER_RESTART, STARTING, "CANCEL SPAWN NOTIFY"),
	DONE(BACKOFF, STACK_DOWN, STOPPED, "CANCEL EMIT(stopped) NOTIFY"),
	INVALID(BACKOFF, ADOPT),

#define DONE_FOR_GOOD(st)							\
	IGNORED(st, DEPS_OK),							\
	IGNORED(st, DEPS_FAILED),						\
	INVALID(st, START_OK),							\
	INVALID(st, START_FAILED),						\
	INVALID(st, EXIT),							\
	IGNORED(st, PROBE_RESULT),						\
	IGNORED(st, READY),							\
	IGNORED(st, BACKOFF_TIMER),						\
	IGNORED(st, GRACE_TIMER),						\
	IGNORED(st, HEALTH_TIMER),						\
	IGNORED(st, USER_STOP),							\
	DONE(st, USER_START, WAITING, "CHECK_DEPS NOTIFY"),			\
	DONE(st, USER_RESTART, WAITING, "CHECK_DEPS NOTIFY"),			\
	IGNORED(st, STACK_DOWN),						\
	INVALID(st, ADOPT)
	DONE_FOR_GOOD(EXITED),
	DONE_FOR_GOOD(FAILED),
	DONE_FOR_GOOD(STOPPED),
};
// clang-format on

static bool same(const struct svc_replica *a, const struct svc_replica *b)
{
	return a->state == b->state && a->health == b->health && a->want_up == b->want_up &&
	       a->stopped_by_user == b->stopped_by_user && a->killed == b->killed &&
	       a->probing == b->probing && a->blocked == b->blocked && a->timer == b->timer &&
	       a->timer_at == b->timer_at && a->grace_override == b->grace_override &&
	       a->runs == b->runs && a->restarts == b->restarts &&
	       a->failing_streak == b->failing_streak && a->backoff == b->backoff &&
	       a->started == b->started && a->exited == b->exited &&
	       a->has_exited == b->has_exited && a->log_len == b->log_len &&
	       !strcmp(a->why, b->why);
}

static void test_table_has_every_cell(void **state)
{
	assert_true(svc_table_complete());
}

static void test_every_state_event_pair(void **state)
{
	const struct svc_config cfg = defaults();
	unsigned seen[SVC_NSTATES][SVC_NEVENTS] = {0};
	for (size_t i = 0; i < ARRAY_SIZE(cells); i++) {
		const struct cell *c = &cells[i];
		struct svc_replica r, before;
		svc_init(&r, &cfg, "api");
		reach(&r, c->from);
		if (c->from < RUNNING_PROBING)
			seen[r.state][c->event]++;
		before = r;
		int64_t now = T0 + S;
		enum svc_outcome res = step(&r, ev(c->event), now);
		const char *got = actions_text(now);
		enum svc_state to = c->to == UNCHANGED ? before.state : c->to;
		if (res != c->outcome || r.state != to || strcmp(got, c->actions))
			fail_msg("%s x %s: got outcome %d, state %s, actions \"%s\"; want %d, %s, "
				 "\"%s\"",
				 setup_names[c->from], svc_event_name(c->event), res,
				 svc_state_name(r.state), got, c->outcome, svc_state_name(to),
				 c->actions);
		if (res != SVC_DONE && !same(&r, &before))
			fail_msg("%s x %s changed the replica", setup_names[c->from],
				 svc_event_name(c->event));
		svc_fini(&r);
	}
	for (int s = 0; s < SVC_NSTATES; s++)
		for (int e = 0; e < SVC_NEVENTS; e++)
			if (seen[s][e] != 1)
				fail_msg("%s x %s is in the table %u times", svc_state_name(s),
					 svc_event_name(e), seen[s][e]);
}

/* ---- restart policy and Docker's backoff --------------------------------- */

/* Crash the running replica at now; return the backoff delay armed (0: none). */
static int64_t crash(struct svc_replica *r, int64_t now, int code)
{
	assert_int_equal(step(r, ev_exit(code, 0, false), now), SVC_DONE);
	for (size_t i = 0; i < acts_out.n; i++)
		if (acts_out.a[i].kind == SVC_ACT_ARM_TIMER)
			return acts_out.a[i].at - now;
	return 0;
}

/* From BACKOFF: the timer fires at its time, the container starts. */
static int64_t respawn(struct svc_replica *r)
{
	int64_t at = r->timer_at;
	expect(r, ev(SVC_EV_BACKOFF_TIMER), at, SVC_STARTING, "SPAWN NOTIFY");
	assert_int_equal(step(r, ev(SVC_EV_START_OK), at), SVC_DONE);
	assert_int_equal(r->state, SVC_RUNNING);
	return at;
}

static void test_backoff_sequence_is_dockers(void **state)
{
	struct svc_config cfg = defaults();
	cfg.restart = SVC_RESTART_ALWAYS;
	cfg.has_probe = cfg.notify = false;
	static const int64_t want[] = {100 * MS,   200 * MS,   400 * MS,  800 * MS,
				       1600 * MS,  3200 * MS,  6400 * MS, 12800 * MS,
				       25600 * MS, 51200 * MS, 60 * S,	  60 * S};
	struct svc_replica r;
	svc_init(&r, &cfg, "crashy");
	reach(&r, RUNNING);
	int64_t now = T0;
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		now += 50 * MS; /* it crashes 50 ms after each start */
		assert_int_equal(crash(&r, now, 1), want[i]);
		assert_int_equal(r.state, SVC_BACKOFF);
		assert_int_equal(r.restarts, i + 1);
		now = respawn(&r);
	}
	svc_fini(&r);
}

static void test_backoff_resets_after_a_run_of_10s(void **state)
{
	struct svc_config cfg = defaults();
	cfg.restart = SVC_RESTART_ALWAYS;
	cfg.has_probe = cfg.notify = false;
	struct svc_replica r;
	svc_init(&r, &cfg, "web");
	reach(&r, RUNNING);
	int64_t now = T0;
	assert_int_equal(crash(&r, now + 1 * S, 1), 100 * MS);
	now = respawn(&r);
	assert_int_equal(crash(&r, now + 1 * S, 1), 200 * MS);
	now = respawn(&r);
	assert_int_equal(crash(&r, now + 1 * S, 1), 400 * MS);
	now = respawn(&r);
	/* 9.999 s is not enough */
	assert_int_equal(crash(&r, now + 10 * S - 1 * MS, 1), 800 * MS);
	now = respawn(&r);
	/* 10 s up: the next delay is the first again (the restart count is not reset) */
	assert_int_equal(crash(&r, now + 10 * S, 0), 100 * MS);
	assert_int_equal(r.restarts, 5);
	svc_fini(&r);

	assert_int_equal(svc_next_backoff(0, 0), 100 * MS);
	assert_int_equal(svc_next_backoff(51200 * MS, 0), 60 * S);
	assert_int_equal(svc_next_backoff(60 * S, 0), 60 * S);
	assert_int_equal(svc_next_backoff(60 * S, 10 * S), 100 * MS);
}

static void test_policy_no_never_restarts(void **state)
{
	struct svc_config cfg = defaults();
	cfg.restart = SVC_RESTART_NO;
	struct svc_replica r;
	svc_init(&r, &cfg, "job");
	reach(&r, RUNNING);
	expect(&r, ev_exit(1, 0, false), T0 + S, SVC_EXITED,
	       "RECORD_EXIT EMIT(exited) CANCEL NOTIFY");
	assert_int_equal(r.restarts, 0);
	assert_int_equal(r.last_exit.code, 1);
	svc_fini(&r);
}

static void test_always_restarts_after_success_too(void **state)
{
	struct svc_config cfg = defaults();
	cfg.restart = SVC_RESTART_ALWAYS;
	struct svc_replica r;
	svc_init(&r, &cfg, "web");
	reach(&r, RUNNING);
	assert_int_equal(crash(&r, T0 + S, 0), 100 * MS);
	assert_int_equal(r.state, SVC_BACKOFF);
	svc_fini(&r);
}

static void test_on_failure_limit(void **state)
{
	struct svc_config cfg = defaults();
	cfg.restart = SVC_RESTART_ON_FAILURE;
	cfg.max_retries = 3;
	cfg.has_probe = cfg.notify = false;
	struct svc_replica r;
	svc_init(&r, &cfg, "migrate");
	reach(&r, RUNNING);
	int64_t now = T0;
	/* on-failure:3 is three restarts, four runs; a long run does not give
	 * the retries back (as Docker's RestartCount) */
	assert_int_equal(crash(&r, now + 1 * S, 2), 100 * MS);
	now = respawn(&r);
	assert_int_equal(crash(&r, now + 30 * S, 2), 100 * MS);
	now = respawn(&r);
	assert_int_equal(crash(&r, now + 1 * S, 2), 200 * MS);
	now = respawn(&r);
	expect(&r, ev_exit(3, 0, false), now + S, SVC_EXITED, "RECORD_EXIT EMIT(exited) NOTIFY");
	assert_int_equal(r.restarts, 3);

	/* a user's start gives it three more */
	expect(&r, ev(SVC_EV_USER_START), now + 2 * S, SVC_WAITING, "CHECK_DEPS NOTIFY");
	assert_int_equal(r.restarts, 0);
	assert_int_equal(r.backoff, 0);
	reach(&r, RUNNING);
	assert_int_equal(crash(&r, T0 + 1 * S, 2), 100 * MS);
	svc_fini(&r);
}

static void test_on_failure_success_is_done(void **state)
{
	struct svc_config cfg = defaults();
	cfg.restart = SVC_RESTART_ON_FAILURE; /* no limit */
	struct svc_replica r;
	svc_init(&r, &cfg, "migrate");
	reach(&r, RUNNING);
	assert_int_equal(crash(&r, T0 + S, 1), 100 * MS);
	respawn(&r);
	assert_int_equal(crash(&r, T0 + 2 * S, 0), 0);
	assert_int_equal(r.state, SVC_EXITED);
	/* killed by a signal or the OOM killer is a failure */
	struct svc_exit sig = {.signal = SIGSEGV}, oom = {.code = 137, .oom = true},
			ok = {.code = 0};
	assert_true(svc_exit_failed(&sig));
	assert_true(svc_exit_failed(&oom));
	assert_false(svc_exit_failed(&ok));
	svc_fini(&r);
}

/* `stack stop` is never undone by a policy, whatever it is; after a reboot,
 * `stack restore` leaves it down too. `down` stops for good as well. */
static void test_user_stop_and_down_never_restart(void **state)
{
	static const enum svc_restart policies[] = {SVC_RESTART_ALWAYS, SVC_RESTART_UNLESS_STOPPED,
						    SVC_RESTART_ON_FAILURE};
	for (size_t i = 0; i < ARRAY_SIZE(policies); i++) {
		struct svc_config cfg = defaults();
		cfg.restart = policies[i];
		struct svc_replica r;
		svc_init(&r, &cfg, "web");
		reach(&r, RUNNING);
		expect(&r, ev(SVC_EV_USER_STOP), T0 + S, SVC_STOPPING,
		       "STOP_SIGNAL EMIT(stopping) ARM(grace,+10s) NOTIFY");
		/* SIGTERM kills it: a failure, yet no restart */
		expect(&r, ev_exit(143, SIGTERM, false), T0 + 2 * S, SVC_STOPPED,
		       "RECORD_EXIT EMIT(exited) CANCEL EMIT(stopped) NOTIFY");
		assert_true(r.stopped_by_user);
		assert_false(svc_comes_back_after_reboot(&cfg, r.stopped_by_user));
		svc_fini(&r);

		svc_init(&r, &cfg, "web");
		reach(&r, RUNNING);
		expect(&r, ev(SVC_EV_STACK_DOWN), T0 + S, SVC_STOPPING,
		       "STOP_SIGNAL EMIT(stopping) ARM(grace,+10s) NOTIFY");
		expect(&r, ev_exit(1, 0, false), T0 + 2 * S, SVC_STOPPED,
		       "RECORD_EXIT EMIT(exited) CANCEL EMIT(stopped) NOTIFY");
		assert_false(r.stopped_by_user);
		svc_fini(&r);
	}
	/* a crash of a service nobody stopped: back after a reboot unless restart = no */
	struct svc_config cfg = defaults();
	cfg.restart = SVC_RESTART_UNLESS_STOPPED;
	assert_true(svc_comes_back_after_reboot(&cfg, false));
	cfg.restart = SVC_RESTART_NO;
	assert_false(svc_comes_back_after_reboot(&cfg, false));
}

static void test_stop_waits_the_grace_period_then_kills(void **state)
{
	const struct svc_config cfg = defaults();
	struct svc_replica r;
	svc_init(&r, &cfg, "db");
	reach(&r, STOPPING);
	assert_int_equal(r.timer_at, T0 + 10 * S);
	expect(&r, ev(SVC_EV_GRACE_TIMER), T0 + 10 * S, SVC_STOPPING, "KILL EMIT(killing)");
	assert_true(r.killed);
	/* a second expiry (stale) does nothing */
	assert_int_equal(step(&r, ev(SVC_EV_GRACE_TIMER), T0 + 10 * S), SVC_IGNORED);
	expect(&r, ev_exit(137, SIGKILL, false), T0 + 10 * S + MS, SVC_STOPPED,
	       "RECORD_EXIT EMIT(exited) EMIT(stopped) NOTIFY");
	svc_fini(&r);
}

static void test_down_t(void **state)
{
	const struct svc_config cfg = defaults();
	struct svc_replica r;
	/* down -t 0: the stop signal and SIGKILL at once */
	svc_init(&r, &cfg, "db");
	reach(&r, RUNNING);
	expect(&r, ev_down(0), T0 + S, SVC_STOPPING,
	       "STOP_SIGNAL EMIT(stopping) CANCEL KILL EMIT(killing) NOTIFY");
	svc_fini(&r);
	/* down -t 2 while `stack stop` waits out 10 s: the shorter wins */
	svc_init(&r, &cfg, "db");
	reach(&r, STOPPING);
	expect(&r, ev_down(2 * S), T0 + S, SVC_STOPPING, "ARM(grace,+2s)");
	expect(&r, ev_down(30 * S), T0 + S, SVC_STOPPING, "");
	expect(&r, ev_down(0), T0 + 2 * S, SVC_STOPPING, "CANCEL KILL EMIT(killing)");
	svc_fini(&r);
	/* down -t 5 while it starts: used when the start completes */
	svc_init(&r, &cfg, "db");
	reach(&r, STARTING);
	expect(&r, ev_down(5 * S), T0, SVC_STARTING, "");
	expect(&r, ev(SVC_EV_START_OK), T0 + S, SVC_STOPPING,
	       "EMIT(started) STOP_SIGNAL EMIT(stopping) ARM(grace,+5s) NOTIFY");
	svc_fini(&r);
}

static struct svc_event ev_grace(enum svc_event_kind kind, int64_t grace)
{
	struct svc_event e = ev(kind);
	e.grace = grace;
	return e;
}

/* `hutch stop -t` / `restart -t` of a supervised container: that stop's grace */
static void test_stop_t_and_restart_t(void **state)
{
	const struct svc_config cfg = defaults();
	struct svc_replica r;
	/* stop -t 1: SIGKILL 1 s after the stop signal, not 10 */
	svc_init(&r, &cfg, "db");
	reach(&r, RUNNING);
	expect(&r, ev_grace(SVC_EV_USER_STOP, S), T0 + S, SVC_STOPPING,
	       "STOP_SIGNAL EMIT(stopping) ARM(grace,+1s) NOTIFY");
	/* a second stop -t 0 while it waits: SIGKILL now */
	expect(&r, ev_grace(SVC_EV_USER_STOP, 0), T0 + S + MS, SVC_STOPPING,
	       "CANCEL KILL EMIT(killing)");
	expect(&r, ev_exit(137, SIGKILL, false), T0 + 2 * S, SVC_STOPPED,
	       "RECORD_EXIT EMIT(exited) EMIT(stopped) NOTIFY");
	assert_int_equal(r.grace_override, -1);
	/* the next stop without -t waits the service's own grace again */
	expect(&r, ev(SVC_EV_USER_START), T0 + 3 * S, SVC_WAITING, "CHECK_DEPS NOTIFY");
	expect(&r, ev(SVC_EV_DEPS_OK), T0 + 3 * S, SVC_STARTING, "SPAWN NOTIFY");
	expect(&r, ev(SVC_EV_START_OK), T0 + 3 * S, SVC_RUNNING,
	       "EMIT(started) ARM(health,+30s) NOTIFY");
	expect(&r, ev(SVC_EV_USER_STOP), T0 + 4 * S, SVC_STOPPING,
	       "STOP_SIGNAL EMIT(stopping) ARM(grace,+10s) NOTIFY");
	svc_fini(&r);
	/* restart -t 0: SIGKILL at once, started again after the exit */
	svc_init(&r, &cfg, "db");
	reach(&r, RUNNING);
	expect(&r, ev_grace(SVC_EV_USER_RESTART, 0), T0 + S, SVC_STOPPING,
	       "STOP_SIGNAL EMIT(stopping) CANCEL KILL EMIT(killing) NOTIFY");
	expect(&r, ev_exit(137, SIGKILL, false), T0 + 2 * S, SVC_STARTING,
	       "RECORD_EXIT EMIT(exited) EMIT(restarting,0s) SPAWN NOTIFY");
	svc_fini(&r);
	/* stop -t 2 while it starts: used when the start completes */
	svc_init(&r, &cfg, "db");
	reach(&r, STARTING);
	expect(&r, ev_grace(SVC_EV_USER_STOP, 2 * S), T0, SVC_STARTING, "");
	expect(&r, ev(SVC_EV_START_OK), T0 + S, SVC_STOPPING,
	       "EMIT(started) STOP_SIGNAL EMIT(stopping) ARM(grace,+2s) NOTIFY");
	svc_fini(&r);
}

static void test_user_restart(void **state)
{
	struct svc_config cfg = defaults();
	cfg.has_probe = cfg.notify = false;
	struct svc_replica r;
	svc_init(&r, &cfg, "web");
	reach(&r, RUNNING);
	assert_int_equal(crash(&r, T0 + S, 1), 100 * MS);
	respawn(&r);
	assert_int_equal(r.restarts, 1);
	/* stop, then spawn at once after the exit; counts start over */
	expect(&r, ev(SVC_EV_USER_RESTART), T0 + 5 * S, SVC_STOPPING,
	       "STOP_SIGNAL EMIT(stopping) ARM(grace,+10s) NOTIFY");
	assert_int_equal(r.restarts, 0);
	expect(&r, ev_exit(143, SIGTERM, false), T0 + 6 * S, SVC_STARTING,
	       "RECORD_EXIT EMIT(exited) CANCEL EMIT(restarting,0s) SPAWN NOTIFY");
	/* a restart of a crash-looping service does not wait out the backoff */
	assert_int_equal(step(&r, ev(SVC_EV_START_OK), T0 + 6 * S), SVC_DONE);
	crash(&r, T0 + 7 * S, 1);
	expect(&r, ev(SVC_EV_USER_RESTART), T0 + 7 * S, SVC_STARTING, "CANCEL SPAWN NOTIFY");
	/* stop then start while it stops: it comes back after the exit */
	assert_int_equal(step(&r, ev(SVC_EV_START_OK), T0 + 7 * S), SVC_DONE);
	assert_int_equal(step(&r, ev(SVC_EV_USER_STOP), T0 + 7 * S), SVC_DONE);
	expect(&r, ev(SVC_EV_USER_START), T0 + 8 * S, SVC_STOPPING, "");
	expect(&r, ev_exit(0, 0, false), T0 + 9 * S, SVC_STARTING,
	       "RECORD_EXIT EMIT(exited) CANCEL EMIT(restarting,0s) SPAWN NOTIFY");
	assert_false(r.stopped_by_user);
	svc_fini(&r);
	/* a restart while it starts: stopped once started, then spawned again */
	svc_init(&r, &cfg, "web");
	reach(&r, STARTING);
	expect(&r, ev(SVC_EV_USER_RESTART), T0, SVC_STARTING, "");
	expect(&r, ev(SVC_EV_START_OK), T0 + S, SVC_STOPPING,
	       "EMIT(started) STOP_SIGNAL EMIT(stopping) ARM(grace,+10s) NOTIFY");
	expect(&r, ev_exit(143, SIGTERM, false), T0 + 2 * S, SVC_STARTING,
	       "RECORD_EXIT EMIT(exited) CANCEL EMIT(restarting,0s) SPAWN NOTIFY");
	expect(&r, ev(SVC_EV_START_OK), T0 + 3 * S, SVC_RUNNING, "EMIT(started) NOTIFY");
	svc_fini(&r);
	/* ... unless a stop came after it: the stop wins */
	svc_init(&r, &cfg, "web");
	reach(&r, STARTING);
	expect(&r, ev(SVC_EV_USER_RESTART), T0, SVC_STARTING, "");
	expect(&r, ev(SVC_EV_USER_STOP), T0, SVC_STARTING, "");
	expect(&r, ev(SVC_EV_START_OK), T0 + S, SVC_STOPPING,
	       "EMIT(started) STOP_SIGNAL EMIT(stopping) ARM(grace,+10s) NOTIFY");
	expect(&r, ev_exit(143, SIGTERM, false), T0 + 2 * S, SVC_STOPPED,
	       "RECORD_EXIT EMIT(exited) CANCEL EMIT(stopped) NOTIFY");
	assert_false(r.restart_after_start);
	svc_fini(&r);
}

/* ---- health ---------------------------------------------------------------- */

/* The probe is due: check it is at `due`, run it from there, report at +d. */
static int64_t probe(struct svc_replica *r, int64_t due, enum svc_probe_status st,
		     const char *output)
{
	assert_int_equal(r->timer, SVC_TIMER_HEALTH);
	assert_int_equal(r->timer_at, due);
	expect(r, ev(SVC_EV_HEALTH_TIMER), due, SVC_RUNNING, "PROBE(30s)");
	int64_t end = due + 10 * MS;
	assert_int_equal(step(r, ev_probe(st, due, end, output), end), SVC_DONE);
	return end;
}

static void test_health_start_period_and_start_interval(void **state)
{
	struct svc_config cfg = defaults();
	cfg.notify = false;
	cfg.health_start_period = 20 * S;
	cfg.health_start_interval = 5 * S;
	struct svc_replica r;
	svc_init(&r, &cfg, "db");
	reach(&r, RUNNING);
	assert_int_equal(r.health, SVC_HEALTH_STARTING);
	/* within the start period: probes every start_interval, failures do not count */
	int64_t t = T0;
	for (int i = 0; i < 3; i++) {
		t = probe(&r, t + 5 * S, SVC_PROBE_FAIL, "no");
		assert_int_equal(r.failing_streak, 0);
		assert_int_equal(r.health, SVC_HEALTH_STARTING);
	}
	t = probe(&r, t + 5 * S, SVC_PROBE_FAIL, "no"); /* began at T0+20.03s: counts */
	assert_int_equal(r.failing_streak, 1);
	/* after it, interval */
	t = probe(&r, t + 30 * S, SVC_PROBE_FAIL, "no");
	assert_int_equal(r.failing_streak, 2);
	t = probe(&r, t + 30 * S, SVC_PROBE_FAIL, "no");
	assert_int_equal(r.health, SVC_HEALTH_UNHEALTHY);
	assert_string_equal(actions_text(t), "EMIT(health) ARM(health,+30s) NOTIFY");
	svc_fini(&r);
}

static void test_health_success_in_start_period(void **state)
{
	struct svc_config cfg = defaults();
	cfg.notify = false;
	cfg.health_start_period = 60 * S;
	cfg.health_start_interval = 1 * S;
	struct svc_replica r;
	svc_init(&r, &cfg, "db");
	reach(&r, RUNNING);
	int64_t t = probe(&r, T0 + S, SVC_PROBE_FAIL, "starting");
	t = probe(&r, t + S, SVC_PROBE_OK, "accepting connections");
	assert_int_equal(r.health, SVC_HEALTH_HEALTHY);
	assert_string_equal(actions_text(t), "EMIT(health) ARM(health,+30s) NOTIFY");
	/* healthy once: failures count from now on, start period or not */
	t = probe(&r, t + 30 * S, SVC_PROBE_FAIL, "no");
	assert_int_equal(r.failing_streak, 1);
	assert_int_equal(r.health, SVC_HEALTH_HEALTHY);
	svc_fini(&r);
}

static void test_health_flapping(void **state)
{
	struct svc_config cfg = defaults();
	cfg.notify = false;
	cfg.health_interval = 1 * S;
	struct svc_replica r;
	svc_init(&r, &cfg, "api");
	reach(&r, RUNNING);
	/* no start period: the first failure counts */
	int64_t t = probe(&r, T0 + S, SVC_PROBE_FAIL, "503");
	assert_int_equal(r.failing_streak, 1);
	t = probe(&r, t + S, SVC_PROBE_OK, "200");
	assert_int_equal(r.health, SVC_HEALTH_HEALTHY);
	/* two failures and a success: the streak starts over */
	t = probe(&r, t + S, SVC_PROBE_FAIL, "503");
	t = probe(&r, t + S, SVC_PROBE_FAIL, "503");
	t = probe(&r, t + S, SVC_PROBE_OK, "200");
	assert_string_equal(actions_text(t), "ARM(health,+1s)"); /* no change, no event */
	assert_int_equal(r.failing_streak, 0);
	/* three in a row: unhealthy; one success: healthy again */
	t = probe(&r, t + S, SVC_PROBE_FAIL, "503");
	t = probe(&r, t + S, SVC_PROBE_TIMEOUT, NULL);
	assert_int_equal(r.health, SVC_HEALTH_HEALTHY);
	t = probe(&r, t + S, SVC_PROBE_FAIL, "503");
	assert_int_equal(r.health, SVC_HEALTH_UNHEALTHY);
	assert_string_equal(actions_text(t), "EMIT(health) ARM(health,+1s) NOTIFY");
	/* unhealthy is shown, not acted on: no restart (as Docker) */
	t = probe(&r, t + S, SVC_PROBE_OK, "200");
	assert_int_equal(r.health, SVC_HEALTH_HEALTHY);
	assert_string_equal(actions_text(t), "EMIT(health) ARM(health,+1s) NOTIFY");
	svc_fini(&r);
}

static void test_health_log_keeps_the_last_five(void **state)
{
	struct svc_config cfg = defaults();
	cfg.notify = false;
	cfg.health_timeout = 3 * S;
	cfg.health_interval = 1 * S;
	struct svc_replica r;
	svc_init(&r, &cfg, "api");
	reach(&r, RUNNING);
	int64_t t = T0;
	char out[32];
	for (int i = 0; i < 7; i++) {
		snprintf(out, sizeof(out), "probe %d", i);
		expect(&r, ev(SVC_EV_HEALTH_TIMER), r.timer_at, SVC_RUNNING, "PROBE(3s)");
		t = r.timer_at + 10 * MS;
		struct svc_event e = ev_probe(SVC_PROBE_FAIL, r.timer_at, t, out);
		e.probe.exit_code = i;
		assert_int_equal(step(&r, e, t), SVC_DONE);
	}
	assert_int_equal(r.log_len, 5);
	for (unsigned i = 0; i < 5; i++) {
		snprintf(out, sizeof(out), "probe %u", i + 2);
		assert_string_equal(svc_probe_at(&r, i)->output, out);
		assert_int_equal(svc_probe_at(&r, i)->exit_code, i + 2);
	}
	assert_null(svc_probe_at(&r, 5));
	/* a timeout is kept as docker inspect shows it */
	expect(&r, ev(SVC_EV_HEALTH_TIMER), r.timer_at, SVC_RUNNING, "PROBE(3s)");
	assert_int_equal(step(&r, ev_probe(SVC_PROBE_TIMEOUT, t, t + 3 * S, NULL), t + 3 * S),
			 SVC_DONE);
	assert_string_equal(svc_probe_at(&r, 4)->output, "Health check exceeded timeout (3s)");
	assert_int_equal(svc_probe_at(&r, 4)->exit_code, -1);
	/* output is cut to 4 KiB, and says so */
	char *big = malloc(10000);
	memset(big, 'x', 9999);
	big[9999] = '\0';
	expect(&r, ev(SVC_EV_HEALTH_TIMER), r.timer_at, SVC_RUNNING, "PROBE(3s)");
	assert_int_equal(step(&r, ev_probe(SVC_PROBE_OK, t, t, big), t), SVC_DONE);
	const char *kept = svc_probe_at(&r, 4)->output;
	assert_int_equal(strlen(kept), SVC_PROBE_OUTPUT_MAX + 3);
	assert_string_equal(kept + SVC_PROBE_OUTPUT_MAX - 1, "x...");
	/* a timeout with some output keeps both */
	expect(&r, ev(SVC_EV_HEALTH_TIMER), r.timer_at, SVC_RUNNING, "PROBE(3s)");
	assert_int_equal(
	    step(&r, ev_probe(SVC_PROBE_TIMEOUT, t, t + 3 * S, "waiting for lock"), t + 3 * S),
	    SVC_DONE);
	assert_string_equal(svc_probe_at(&r, 4)->output,
			    "Health check exceeded timeout (3s): waiting for lock");
	/* no output at all: none kept */
	expect(&r, ev(SVC_EV_HEALTH_TIMER), r.timer_at, SVC_RUNNING, "PROBE(3s)");
	assert_int_equal(step(&r, ev_probe(SVC_PROBE_OK, t, t, ""), t), SVC_DONE);
	assert_null(svc_probe_at(&r, 4)->output);
	free(big);
	svc_fini(&r);
}

static void test_health_retries(void **state)
{
	struct svc_config cfg = defaults();
	cfg.notify = false;
	cfg.health_retries = 1;
	struct svc_replica r;
	svc_init(&r, &cfg, "api");
	reach(&r, RUNNING);
	probe(&r, T0 + 30 * S, SVC_PROBE_FAIL, "down");
	assert_int_equal(r.health, SVC_HEALTH_UNHEALTHY);
	svc_fini(&r);
	/* 0 is Docker's default, 3 */
	cfg.health_retries = 0;
	svc_init(&r, &cfg, "api");
	reach(&r, RUNNING);
	int64_t t = probe(&r, T0 + 30 * S, SVC_PROBE_FAIL, "down");
	t = probe(&r, t + 30 * S, SVC_PROBE_FAIL, "down");
	assert_int_equal(r.health, SVC_HEALTH_STARTING);
	probe(&r, t + 30 * S, SVC_PROBE_FAIL, "down");
	assert_int_equal(r.health, SVC_HEALTH_UNHEALTHY);
	svc_fini(&r);
}

static void test_probes_end_with_the_process(void **state)
{
	struct svc_config cfg = defaults();
	cfg.notify = false;
	cfg.restart = SVC_RESTART_ALWAYS;
	struct svc_replica r;
	svc_init(&r, &cfg, "api");
	reach(&r, RUNNING_PROBING);
	crash(&r, T0 + S, 1);
	assert_false(r.probing);
	/* the probe of the dead container reports late: ignored, nothing armed */
	assert_int_equal(step(&r, ev_probe(SVC_PROBE_OK, T0, T0 + 2 * S, "ok"), T0 + 2 * S),
			 SVC_IGNORED);
	respawn(&r);
	/* and not taken for the new process's either */
	assert_int_equal(step(&r, ev_probe(SVC_PROBE_OK, T0, T0 + 2 * S, "ok"), T0 + 2 * S),
			 SVC_IGNORED);
	assert_int_equal(r.health, SVC_HEALTH_STARTING);
	svc_fini(&r);
}

static void test_notify(void **state)
{
	struct svc_config cfg = defaults();
	cfg.has_probe = false; /* notify = true alone */
	struct svc_replica r;
	svc_init(&r, &cfg, "api");
	reach(&r, STARTING);
	/* no probe: nothing armed */
	expect(&r, ev(SVC_EV_START_OK), T0, SVC_RUNNING, "EMIT(started) NOTIFY");
	assert_int_equal(r.health, SVC_HEALTH_STARTING);
	expect(&r, ev(SVC_EV_READY), T0 + S, SVC_RUNNING, "EMIT(health) NOTIFY");
	assert_int_equal(r.health, SVC_HEALTH_HEALTHY);
	assert_int_equal(step(&r, ev(SVC_EV_READY), T0 + 2 * S), SVC_IGNORED);
	svc_fini(&r);

	/* READY=1 from a service that was not asked for it is ignored */
	cfg.notify = false;
	svc_init(&r, &cfg, "api");
	reach(&r, RUNNING);
	assert_int_equal(r.health, SVC_HEALTH_NONE);
	assert_int_equal(step(&r, ev(SVC_EV_READY), T0 + S), SVC_IGNORED);
	svc_fini(&r);
}

static void test_adoption_keeps_the_policy_state(void **state)
{
	struct svc_config cfg = defaults();
	cfg.notify = false;
	cfg.restart = SVC_RESTART_ON_FAILURE;
	cfg.max_retries = 3;
	struct svc_replica r;
	svc_init(&r, &cfg, "worker");
	struct svc_event e = ev(SVC_EV_ADOPT);
	e.adopt = (struct svc_adopt){
	    .started = T0, .restarts = 2, .backoff = 400 * MS, .health = SVC_HEALTH_HEALTHY};
	expect(&r, e, T0 + 3 * S, SVC_RUNNING, "EMIT(adopted) ARM(health,+30s) NOTIFY");
	assert_int_equal(r.health, SVC_HEALTH_HEALTHY);
	/* it crashes 5 s after its start: the sequence goes on where it was */
	assert_int_equal(crash(&r, T0 + 5 * S, 1), 800 * MS);
	assert_int_equal(r.restarts, 3);
	respawn(&r);
	/* the limit counted the restarts before the new supervisor */
	expect(&r, ev_exit(1, 0, false), T0 + 7 * S, SVC_EXITED,
	       "RECORD_EXIT EMIT(exited) CANCEL NOTIFY");
	svc_fini(&r);
}

/* A container that died while no supervisor watched: the exit comes with its
 * time, and the backoff counts from then. */
static void test_exit_seen_late(void **state)
{
	struct svc_config cfg = defaults();
	cfg.notify = cfg.has_probe = false;
	cfg.restart = SVC_RESTART_ALWAYS;
	struct svc_replica r;
	svc_init(&r, &cfg, "worker");
	struct svc_event e = ev(SVC_EV_ADOPT);
	e.adopt = (struct svc_adopt){.started = T0, .restarts = 1, .backoff = 200 * MS};
	expect(&r, e, T0 + 40 * S, SVC_RUNNING, "EMIT(adopted) NOTIFY");
	/* it ran 2 s, not 40: no reset; the restart is due already */
	e = ev_exit(1, 0, false);
	e.exit.at = T0 + 2 * S;
	assert_int_equal(step(&r, e, T0 + 40 * S), SVC_DONE);
	assert_int_equal(r.exited, T0 + 2 * S);
	assert_int_equal(r.backoff, 400 * MS);
	assert_int_equal(r.timer_at, T0 + 2 * S + 400 * MS);
	/* a time after now (clock confusion) is taken as now */
	respawn(&r);
	e.exit.at = T0 + 100 * S;
	assert_int_equal(step(&r, e, T0 + 50 * S), SVC_DONE);
	assert_int_equal(r.exited, T0 + 50 * S);
	svc_fini(&r);
}

/* A supervisor killed while the service was in backoff: the next one adopts
 * the (dead) container from its record and reaches the same decision. */
static void test_adoption_replays_the_same_restart(void **state)
{
	struct svc_config cfg = defaults();
	cfg.notify = cfg.has_probe = false;
	cfg.restart = SVC_RESTART_ALWAYS;
	struct svc_replica first, second;
	svc_init(&first, &cfg, "worker");
	reach(&first, RUNNING);
	crash(&first, T0 + 1 * S, 1);
	int64_t t1 = respawn(&first);
	/* what the SPAWN wrote to the record */
	struct svc_adopt record = {
	    .started = t1, .restarts = first.restarts, .backoff = first.backoff};
	crash(&first, t1 + 2 * S, 1);
	assert_int_equal(first.state, SVC_BACKOFF);

	svc_init(&second, &cfg, "worker");
	struct svc_event e = ev(SVC_EV_ADOPT);
	e.adopt = record;
	assert_int_equal(step(&second, e, t1 + 30 * S), SVC_DONE);
	e = ev_exit(1, 0, false);
	e.exit.at = t1 + 2 * S;
	assert_int_equal(step(&second, e, t1 + 30 * S), SVC_DONE);
	assert_int_equal(second.state, SVC_BACKOFF);
	assert_int_equal(second.restarts, first.restarts);
	assert_int_equal(second.backoff, first.backoff);
	assert_int_equal(second.timer_at, first.timer_at);
	svc_fini(&first);
	svc_fini(&second);
}

/* Killed while `stack stop` waited for the process: the stop goes on. */
static void test_adoption_of_a_stopping_replica(void **state)
{
	const struct svc_config cfg = defaults();
	struct svc_replica r;
	svc_init(&r, &cfg, "db");
	struct svc_event e = ev(SVC_EV_ADOPT);
	e.adopt.stopped_by_user = true;
	expect(&r, e, T0 + S, SVC_STOPPING,
	       "EMIT(adopted) STOP_SIGNAL EMIT(stopping) ARM(grace,+10s) NOTIFY");
	expect(&r, ev_exit(143, SIGTERM, false), T0 + 2 * S, SVC_STOPPED,
	       "RECORD_EXIT EMIT(exited) CANCEL EMIT(stopped) NOTIFY");
	assert_true(r.stopped_by_user);
	svc_fini(&r);
}

/* ---- messages ------------------------------------------------------------- */

static void test_status_text(void **state)
{
	struct svc_config cfg = defaults();
	cfg.notify = false;
	struct svc_replica r;
	char buf[64];
	svc_init(&r, &cfg, "db");
	svc_status(&r, T0, buf, sizeof(buf));
	assert_string_equal(buf, "Waiting");
	reach(&r, STARTING);
	svc_status(&r, T0, buf, sizeof(buf));
	assert_string_equal(buf, "Starting");
	assert_int_equal(step(&r, ev(SVC_EV_START_OK), T0), SVC_DONE);
	svc_status(&r, T0 + 300 * MS, buf, sizeof(buf));
	assert_string_equal(buf, "Up Less than a second (health: starting)");
	probe(&r, T0 + 30 * S, SVC_PROBE_OK, "ok");
	svc_status(&r, T0 + 5 * 60 * S, buf, sizeof(buf));
	assert_string_equal(buf, "Up 5 minutes (healthy)");
	/* "Restarting (3)": 3 is the exit code, as in docker ps; stack ps shows
	 * the restart count beside it */
	assert_int_equal(crash(&r, T0 + 6 * 60 * S, 3), 100 * MS);
	svc_status(&r, T0 + 6 * 60 * S + 2 * S, buf, sizeof(buf));
	assert_string_equal(buf, "Restarting (3) 2 seconds ago");
	respawn(&r);
	expect(&r, ev(SVC_EV_USER_STOP), T0 + 7 * 60 * S, SVC_STOPPING,
	       "STOP_SIGNAL EMIT(stopping) ARM(grace,+10s) NOTIFY");
	svc_status(&r, T0 + 7 * 60 * S, buf, sizeof(buf));
	assert_string_equal(buf, "Stopping");
	step(&r, ev_exit(0, SIGTERM, false), T0 + 7 * 60 * S);
	svc_status(&r, T0 + 8 * 60 * S + 30 * S, buf, sizeof(buf));
	assert_string_equal(buf, "Exited (143) About a minute ago");
	svc_fini(&r);

	svc_init(&r, &cfg, "db");
	reach(&r, FAILED);
	svc_status(&r, T0, buf, sizeof(buf));
	assert_string_equal(buf, "Failed to start");
	svc_fini(&r);
	svc_init(&r, &cfg, "db");
	step(&r, ev(SVC_EV_DEPS_FAILED), T0);
	svc_status(&r, T0, buf, sizeof(buf));
	assert_string_equal(buf, "Not started");
	svc_fini(&r);
	svc_init(&r, &cfg, "db");
	reach(&r, STOPPED);
	svc_status(&r, T0, buf, sizeof(buf));
	assert_string_equal(buf, "Stopped");
	svc_fini(&r);
}

static void test_go_duration(void **state)
{
	static const struct {
		int64_t ns;
		const char *text;
	} cases[] = {
	    {0, "0s"},
	    {500, "500ns"},
	    {1500, "1.5µs"},
	    {500 * MS, "500ms"},
	    {1500 * MS + 500000, "1.5005s"},
	    {1500 * MS, "1.5s"},
	    {30 * S, "30s"},
	    {60 * S, "1m0s"},
	    {90 * S, "1m30s"},
	    {3600 * S, "1h0m0s"},
	    {3725 * S + 250 * MS, "1h2m5.25s"},
	};
	char buf[32];
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		svc_go_duration(cases[i].ns, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].text);
	}
}

static void test_human_duration(void **state)
{
	static const struct {
		int64_t ns;
		const char *text;
	} cases[] = {
	    {0, "Less than a second"},
	    {999 * MS, "Less than a second"},
	    {1 * S, "1 second"},
	    {59 * S, "59 seconds"},
	    {60 * S, "About a minute"},
	    {119 * S, "About a minute"},
	    {120 * S, "2 minutes"},
	    {59 * 60 * S, "59 minutes"},
	    {60 * 60 * S, "About an hour"},
	    {89 * 60 * S, "About an hour"},
	    {90 * 60 * S, "2 hours"},
	    {47 * 3600 * S, "47 hours"},
	    {48 * 3600 * S, "2 days"},
	    {13 * 24 * 3600 * S, "13 days"},
	    {14 * 24 * 3600 * S, "2 weeks"},
	    {60 * 24 * 3600 * S, "2 months"},
	    {730 * 24 * 3600 * S, "2 years"},
	};
	char buf[32];
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		svc_human_duration(cases[i].ns, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].text);
	}
}

static void test_describe_exit(void **state)
{
	char buf[128];
	svc_describe_exit("migrate", &(struct svc_exit){.code = 3}, buf, sizeof(buf));
	assert_string_equal(buf, "migrate exited with code 3");
	svc_describe_exit("migrate", &(struct svc_exit){.code = 137, .signal = SIGKILL}, buf,
			  sizeof(buf));
	assert_string_equal(buf, "migrate was killed by SIGKILL");
	svc_describe_exit("migrate",
			  &(struct svc_exit){.code = 137, .signal = SIGKILL, .oom = true}, buf,
			  sizeof(buf));
	assert_string_equal(buf, "migrate was killed for lack of memory (OOM)");
	svc_describe_exit(NULL, &(struct svc_exit){.signal = SIGSEGV}, buf, sizeof(buf));
	assert_string_equal(buf, "killed by SIGSEGV");
}

/* ---- dependency conditions ------------------------------------------------- */

static enum svc_verdict dep(const struct svc_replica *r, enum svc_dep_condition c, char *why)
{
	struct svc_dep d = {.r = r, .cond = c};
	return svc_deps_check(&d, 1, why, 256);
}

static void test_dep_started(void **state)
{
	struct svc_config cfg = defaults();
	struct svc_replica r;
	char why[256];
	svc_init(&r, &cfg, "cache");
	assert_int_equal(dep(&r, SVC_DEP_STARTED, why), SVC_WAIT);
	assert_string_equal(why, "waiting for cache to start");
	reach(&r, STARTING);
	assert_int_equal(dep(&r, SVC_DEP_STARTED, why), SVC_WAIT);
	/* running, whatever its health */
	assert_int_equal(step(&r, ev(SVC_EV_START_OK), T0), SVC_DONE);
	assert_int_equal(dep(&r, SVC_DEP_STARTED, why), SVC_GO);
	assert_string_equal(why, "");
	svc_fini(&r);
	/* one that cannot start fails its dependents with the runtime's message */
	svc_init(&r, &cfg, "cache");
	reach(&r, FAILED);
	assert_int_equal(dep(&r, SVC_DEP_STARTED, why), SVC_FAIL);
	assert_string_equal(why, "cache failed to start: image app:1 not found");
	svc_fini(&r);
}

static void test_dep_healthy(void **state)
{
	struct svc_config cfg = defaults();
	cfg.notify = false;
	struct svc_replica r;
	char why[256];
	svc_init(&r, &cfg, "db");
	reach(&r, RUNNING);
	assert_int_equal(dep(&r, SVC_DEP_HEALTHY, why), SVC_WAIT);
	assert_string_equal(why, "waiting for db to be healthy");
	probe(&r, T0 + 30 * S, SVC_PROBE_OK, "ok");
	assert_int_equal(dep(&r, SVC_DEP_HEALTHY, why), SVC_GO);
	svc_fini(&r);

	/* unhealthy fails its dependents (as compose), with the probe's output */
	cfg.health_retries = 1;
	svc_init(&r, &cfg, "db");
	reach(&r, RUNNING);
	probe(&r, T0 + 30 * S, SVC_PROBE_FAIL, "\n  no response\x1b[31m\nsecond line");
	assert_int_equal(dep(&r, SVC_DEP_HEALTHY, why), SVC_FAIL);
	assert_string_equal(why, "db is unhealthy: no response?[31m");
	svc_fini(&r);

	/* without a check, running is healthy */
	cfg.has_probe = false;
	svc_init(&r, &cfg, "db");
	reach(&r, RUNNING);
	assert_int_equal(dep(&r, SVC_DEP_HEALTHY, why), SVC_GO);
	/* crash-looping: waits, and says why */
	cfg.restart = SVC_RESTART_ALWAYS;
	crash(&r, T0 + S, 1);
	assert_int_equal(dep(&r, SVC_DEP_HEALTHY, why), SVC_WAIT);
	assert_string_equal(why,
			    "waiting for db to be healthy: it is restarting (1), last exited with "
			    "code 1");
	svc_fini(&r);

	/* exited for good: it will never be healthy */
	cfg.restart = SVC_RESTART_NO;
	svc_init(&r, &cfg, "db");
	reach(&r, RUNNING);
	crash(&r, T0 + S, 0);
	assert_int_equal(dep(&r, SVC_DEP_HEALTHY, why), SVC_FAIL);
	assert_string_equal(why, "db exited with code 0");
	svc_fini(&r);
}

static void test_dep_completed(void **state)
{
	struct svc_config cfg = defaults();
	cfg.restart = SVC_RESTART_ON_FAILURE;
	cfg.max_retries = 1;
	cfg.has_probe = cfg.notify = false;
	struct svc_replica r;
	char why[256];
	svc_init(&r, &cfg, "migrate");
	reach(&r, RUNNING);
	assert_int_equal(dep(&r, SVC_DEP_COMPLETED, why), SVC_WAIT);
	assert_string_equal(why, "waiting for migrate to complete");
	/* a failure with a retry left: not yet a verdict */
	crash(&r, T0 + S, 3);
	assert_int_equal(dep(&r, SVC_DEP_COMPLETED, why), SVC_WAIT);
	respawn(&r);
	crash(&r, T0 + 2 * S, 3);
	assert_int_equal(r.state, SVC_EXITED);
	assert_int_equal(dep(&r, SVC_DEP_COMPLETED, why), SVC_FAIL);
	assert_string_equal(why, "migrate exited with code 3");
	svc_fini(&r);

	svc_init(&r, &cfg, "migrate");
	reach(&r, EXITED);
	assert_int_equal(dep(&r, SVC_DEP_COMPLETED, why), SVC_GO);
	svc_fini(&r);

	svc_init(&r, &cfg, "migrate");
	reach(&r, RUNNING);
	cfg.max_retries = 0;
	cfg.restart = SVC_RESTART_NO;
	assert_int_equal(step(&r, ev_exit(137, SIGKILL, true), T0 + S), SVC_DONE);
	assert_int_equal(dep(&r, SVC_DEP_COMPLETED, why), SVC_FAIL);
	assert_string_equal(why, "migrate was killed for lack of memory (OOM)");
	svc_fini(&r);
}

/* A failure goes down the chain with its root cause: api waits for migrate,
 * web for api. */
static void test_dep_failure_cascades(void **state)
{
	struct svc_config cfg = defaults();
	cfg.restart = SVC_RESTART_NO;
	cfg.has_probe = cfg.notify = false;
	struct svc_replica migrate, api, web;
	char why[256];
	svc_init(&migrate, &cfg, "migrate");
	svc_init(&api, &cfg, "api");
	svc_init(&web, &cfg, "web");
	reach(&migrate, RUNNING);
	crash(&migrate, T0 + S, 3);
	assert_int_equal(dep(&migrate, SVC_DEP_COMPLETED, why), SVC_FAIL);
	struct svc_event e = ev(SVC_EV_DEPS_FAILED);
	e.reason = why;
	expect(&api, e, T0 + S, SVC_FAILED, "EMIT(not_started) NOTIFY");
	assert_int_equal(dep(&api, SVC_DEP_STARTED, why), SVC_FAIL);
	assert_string_equal(why, "migrate exited with code 3");
	e.reason = why;
	expect(&web, e, T0 + S, SVC_FAILED, "EMIT(not_started) NOTIFY");
	const struct svc_replica *stack[] = {&migrate, &api, &web};
	assert_int_equal(svc_stack_ready(stack + 2, 1, why, sizeof(why)), SVC_FAIL);
	assert_string_equal(why, "web was not started: migrate exited with code 3");
	/* `stack start web` tries again from the top */
	expect(&web, ev(SVC_EV_USER_START), T0 + 2 * S, SVC_WAITING, "CHECK_DEPS NOTIFY");
	assert_string_equal(web.why, "");
	svc_fini(&migrate);
	svc_fini(&api);
	svc_fini(&web);
}

/* Every replica of every dependency; a failure anywhere beats a wait. */
static void test_deps_combined(void **state)
{
	struct svc_config cfg = defaults();
	cfg.has_probe = cfg.notify = false;
	struct svc_replica db, api1, api2, job;
	char why[256];
	svc_init(&db, &cfg, "db");
	svc_init(&api1, &cfg, "api-1");
	svc_init(&api2, &cfg, "api-2");
	svc_init(&job, &cfg, "job");
	const struct svc_dep deps[] = {
	    {&db, SVC_DEP_HEALTHY},
	    {&api1, SVC_DEP_STARTED},
	    {&api2, SVC_DEP_STARTED},
	    {&job, SVC_DEP_COMPLETED},
	};
	assert_int_equal(svc_deps_check(deps, 0, why, sizeof(why)), SVC_GO);
	reach(&db, RUNNING);
	reach(&api1, RUNNING);
	assert_int_equal(svc_deps_check(deps, 4, why, sizeof(why)), SVC_WAIT);
	assert_string_equal(why, "waiting for api-2 to start");
	reach(&api2, RUNNING);
	assert_int_equal(svc_deps_check(deps, 4, why, sizeof(why)), SVC_WAIT);
	assert_string_equal(why, "waiting for job to complete");
	reach(&job, FAILED);
	assert_int_equal(svc_deps_check(deps, 4, why, sizeof(why)), SVC_FAIL);
	assert_string_equal(why, "job failed to start: image app:1 not found");
	svc_fini(&job);
	svc_init(&job, &cfg, "job");
	reach(&job, EXITED);
	assert_int_equal(svc_deps_check(deps, 4, why, sizeof(why)), SVC_GO);
	/* a long message is cut, never overflowed */
	char small[8];
	svc_fini(&job);
	svc_init(&job, &cfg, "job");
	assert_int_equal(svc_deps_check(deps, 4, small, sizeof(small)), SVC_WAIT);
	assert_string_equal(small, "waiting");
	svc_fini(&db);
	svc_fini(&api1);
	svc_fini(&api2);
	svc_fini(&job);
}

/* ---- up --wait ------------------------------------------------------------- */

static void test_stack_ready(void **state)
{
	struct svc_config checked = defaults(), plain = defaults(), once = defaults();
	checked.notify = false;
	plain.has_probe = plain.notify = false;
	once.has_probe = once.notify = false;
	once.restart = SVC_RESTART_NO;
	struct svc_replica db, web, migrate;
	char why[256];
	svc_init(&db, &checked, "db");
	svc_init(&web, &plain, "web");
	svc_init(&migrate, &once, "migrate");
	const struct svc_replica *stack[] = {&db, &web, &migrate};
	assert_int_equal(svc_stack_ready(stack, 3, why, sizeof(why)), SVC_WAIT);
	assert_string_equal(why, "waiting for db to start (its dependencies are not ready)");
	reach(&db, RUNNING);
	reach(&web, RUNNING);
	reach(&migrate, RUNNING);
	assert_int_equal(svc_stack_ready(stack, 3, why, sizeof(why)), SVC_WAIT);
	assert_string_equal(why, "waiting for db to be healthy");
	probe(&db, T0 + 30 * S, SVC_PROBE_OK, "ok");
	/* a one-shot job that still runs counts as running, and when done as done */
	assert_int_equal(svc_stack_ready(stack, 3, why, sizeof(why)), SVC_GO);
	crash(&migrate, T0 + 31 * S, 0);
	assert_int_equal(svc_stack_ready(stack, 3, why, sizeof(why)), SVC_GO);
	assert_string_equal(why, "");
	/* crash-looping: still waiting, and the timeout message will say why */
	plain.restart = SVC_RESTART_ALWAYS;
	crash(&web, T0 + 32 * S, 2);
	assert_int_equal(svc_stack_ready(stack, 3, why, sizeof(why)), SVC_WAIT);
	assert_string_equal(why, "waiting for web to run: it is restarting (1), last exited with "
				 "code 2");
	respawn(&web);
	assert_int_equal(svc_stack_ready(stack, 3, why, sizeof(why)), SVC_GO);
	/* a failed one-shot job fails the wait, naming it */
	expect(&migrate, ev(SVC_EV_USER_RESTART), T0 + 40 * S, SVC_WAITING, "CHECK_DEPS NOTIFY");
	reach(&migrate, RUNNING);
	crash(&migrate, T0 + 41 * S, 3);
	assert_int_equal(svc_stack_ready(stack, 3, why, sizeof(why)), SVC_FAIL);
	assert_string_equal(why, "migrate exited with code 3");
	svc_fini(&migrate);
	/* unhealthy fails it, with the probe's output */
	checked.health_retries = 1;
	probe(&db, T0 + 60 * S + 10 * MS, SVC_PROBE_FAIL, "connection refused");
	assert_int_equal(svc_stack_ready(stack, 2, why, sizeof(why)), SVC_FAIL);
	assert_string_equal(why, "db is unhealthy: connection refused");
	/* stopped meanwhile */
	expect(&web, ev(SVC_EV_USER_STOP), T0 + 70 * S, SVC_STOPPING,
	       "STOP_SIGNAL EMIT(stopping) ARM(grace,+10s) NOTIFY");
	assert_int_equal(svc_stack_ready(stack + 1, 1, why, sizeof(why)), SVC_FAIL);
	assert_string_equal(why, "web is being stopped");
	svc_fini(&db);
	svc_fini(&web);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_has_every_cell),
	    cmocka_unit_test(test_every_state_event_pair),
	    cmocka_unit_test(test_backoff_sequence_is_dockers),
	    cmocka_unit_test(test_backoff_resets_after_a_run_of_10s),
	    cmocka_unit_test(test_policy_no_never_restarts),
	    cmocka_unit_test(test_always_restarts_after_success_too),
	    cmocka_unit_test(test_on_failure_limit),
	    cmocka_unit_test(test_on_failure_success_is_done),
	    cmocka_unit_test(test_user_stop_and_down_never_restart),
	    cmocka_unit_test(test_stop_waits_the_grace_period_then_kills),
	    cmocka_unit_test(test_stop_t_and_restart_t),
	    cmocka_unit_test(test_down_t),
	    cmocka_unit_test(test_user_restart),
	    cmocka_unit_test(test_health_start_period_and_start_interval),
	    cmocka_unit_test(test_health_success_in_start_period),
	    cmocka_unit_test(test_health_flapping),
	    cmocka_unit_test(test_health_log_keeps_the_last_five),
	    cmocka_unit_test(test_health_retries),
	    cmocka_unit_test(test_probes_end_with_the_process),
	    cmocka_unit_test(test_notify),
	    cmocka_unit_test(test_adoption_keeps_the_policy_state),
	    cmocka_unit_test(test_exit_seen_late),
	    cmocka_unit_test(test_adoption_replays_the_same_restart),
	    cmocka_unit_test(test_adoption_of_a_stopping_replica),
	    cmocka_unit_test(test_status_text),
	    cmocka_unit_test(test_human_duration),
	    cmocka_unit_test(test_go_duration),
	    cmocka_unit_test(test_describe_exit),
	    cmocka_unit_test(test_dep_started),
	    cmocka_unit_test(test_dep_healthy),
	    cmocka_unit_test(test_dep_completed),
	    cmocka_unit_test(test_dep_failure_cascades),
	    cmocka_unit_test(test_deps_combined),
	    cmocka_unit_test(test_stack_ready),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
