/* One replica's lifecycle: the table of state x event and its handlers. Pure
 * logic (time comes in, actions go out); see service_internal.h for the
 * contract with the event loop and docs/supervisor-states.md for the rules;
 * service_report.c has what is said about replicas (ps, errors, readiness). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/service_internal.h"

static void push(struct svc_actions *out, enum svc_action_kind kind, enum svc_timer timer,
		 enum svc_emit emit, int64_t at)
{
	/* Every handler's worst case is counted in the tests; more is a bug. */
	assert(out->n < SVC_MAX_ACTIONS);
	out->a[out->n++] =
	    (struct svc_action){.kind = kind, .timer = timer, .emit = emit, .at = at};
}

static void act(struct svc_actions *out, enum svc_action_kind kind)
{
	push(out, kind, SVC_TIMER_NONE, 0, 0);
}

static void emit(struct svc_actions *out, enum svc_emit e, int64_t at)
{
	push(out, SVC_ACT_EMIT, SVC_TIMER_NONE, e, at);
}

static void arm(struct svc_replica *r, struct svc_actions *out, enum svc_timer t, int64_t at)
{
	r->timer = t;
	r->timer_at = at;
	push(out, SVC_ACT_ARM_TIMER, t, 0, at);
}

static void cancel_timer(struct svc_replica *r, struct svc_actions *out)
{
	if (r->timer == SVC_TIMER_NONE)
		return;
	r->timer = SVC_TIMER_NONE;
	act(out, SVC_ACT_CANCEL_TIMER);
}

static void set_health(struct svc_replica *r, struct svc_actions *out, enum svc_health h)
{
	if (r->health == h)
		return;
	r->health = h;
	emit(out, SVC_EMIT_HEALTH, 0);
}

static bool has_check(const struct svc_config *c)
{
	return c->has_probe || c->notify;
}

/* Docker: start_interval applies while the status is still "starting" and the
 * start period has not ended; interval otherwise. Probes never overlap: the
 * next one is timed from the end of the last. */
static int64_t next_probe_at(const struct svc_replica *r, int64_t now)
{
	const struct svc_config *c = r->cfg;
	if (r->health == SVC_HEALTH_STARTING && c->health_start_period > 0 &&
	    now - r->started < c->health_start_period && c->health_start_interval > 0)
		return now + c->health_start_interval;
	return now + c->health_interval;
}

/* `stack start` or `stack restart`: wanted up again, and the policy counts
 * begin anew, as after `docker start`. */
static void user_wants_up(struct svc_replica *r)
{
	r->restarts = 0;
	r->backoff = 0;
	r->want_up = true;
	r->stopped_by_user = false;
}

static void record_exit(struct svc_replica *r, const struct svc_exit *e, int64_t now,
			struct svc_actions *out)
{
	r->last_exit = *e;
	r->has_exited = true;
	/* An exit seen late (by a supervisor that adopted the container after
	 * it had died) is timed when it happened, for the backoff's rules. */
	r->exited = e->at > 0 && e->at <= now ? e->at : now;
	r->probing = false;
	r->grace_override = -1; /* a stop's own grace ends with the exit */
	act(out, SVC_ACT_RECORD_EXIT);
	emit(out, SVC_EMIT_EXITED, 0);
}

static void spawn(struct svc_replica *r, struct svc_actions *out)
{
	r->state = SVC_STARTING;
	act(out, SVC_ACT_SPAWN);
}

static void begin_stop(struct svc_replica *r, int64_t now, struct svc_actions *out)
{
	int64_t grace = r->grace_override >= 0 ? r->grace_override : r->cfg->stop_grace;
	r->state = SVC_STOPPING;
	r->killed = false;
	act(out, SVC_ACT_STOP_SIGNAL);
	emit(out, SVC_EMIT_STOPPING, 0);
	if (grace > 0) {
		arm(r, out, SVC_TIMER_GRACE, now + grace);
		return;
	}
	/* `down -t 0`: the stop signal, then SIGKILL at once, as docker stop -t 0 */
	cancel_timer(r, out);
	r->killed = true;
	act(out, SVC_ACT_KILL);
	emit(out, SVC_EMIT_KILLING, 0);
}

typedef enum svc_outcome (*handler)(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				    struct svc_actions *out);

/* A stale event: a timer cancelled after it fired but before the loop read
 * it, a probe or READY=1 of a process that is gone, a command with nothing to
 * do (start of a running service). */
static enum svc_outcome ignore(struct svc_replica *r, const struct svc_event *ev, int64_t now,
			       struct svc_actions *out)
{
	return SVC_IGNORED;
}

/* The loop broke the contract: START_OK without a SPAWN, EXIT of a process
 * that was never started, ADOPT of a replica already supervised. */
static enum svc_outcome invalid(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				struct svc_actions *out)
{
	return SVC_INVALID;
}

static enum svc_outcome deps_ok(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				struct svc_actions *out)
{
	spawn(r, out);
	return SVC_DONE;
}

static enum svc_outcome deps_failed(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				    struct svc_actions *out)
{
	r->state = SVC_FAILED;
	r->blocked = true;
	snprintf(r->why, sizeof(r->why), "%s", ev->reason ? ev->reason : "a dependency failed");
	emit(out, SVC_EMIT_NOT_STARTED, 0);
	return SVC_DONE;
}

static enum svc_outcome start_ok(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				 struct svc_actions *out)
{
	r->runs++;
	r->started = now;
	r->killed = false;
	r->probing = false;
	r->failing_streak = 0;
	r->health = has_check(r->cfg) ? SVC_HEALTH_STARTING : SVC_HEALTH_NONE;
	r->state = SVC_RUNNING;
	emit(out, SVC_EMIT_STARTED, 0);
	/* stopped (or the stack brought down) while it started, or restarted:
	 * stopped now; a restart (want_up) spawns again after the exit */
	if (!r->want_up || r->restart_after_start) {
		r->restart_after_start = false;
		begin_stop(r, now, out);
		return SVC_DONE;
	}
	if (r->cfg->has_probe)
		arm(r, out, SVC_TIMER_HEALTH, next_probe_at(r, now));
	return SVC_DONE;
}

/* No restart: what fails before the process runs (image missing, bad user,
 * no such command) fails the same way the next time; the runtime's message is
 * shown at once, not a crash loop. */
static enum svc_outcome start_failed(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				     struct svc_actions *out)
{
	r->restart_after_start = false;
	r->state = SVC_FAILED;
	r->blocked = false;
	snprintf(r->why, sizeof(r->why), "%s failed to start: %s", r->name,
		 ev->reason ? ev->reason : "unknown error");
	emit(out, SVC_EMIT_START_FAILED, 0);
	return SVC_DONE;
}

static enum svc_outcome running_exit(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				     struct svc_actions *out)
{
	record_exit(r, &ev->exit, now, out);
	if (!svc_should_restart(r, &ev->exit)) {
		cancel_timer(r, out);
		r->state = SVC_EXITED;
		return SVC_DONE;
	}
	r->backoff = svc_next_backoff(r->backoff, r->exited - r->started);
	r->restarts++;
	r->state = SVC_BACKOFF;
	/* from the exit: a deadline already past fires at once */
	arm(r, out, SVC_TIMER_BACKOFF, r->exited + r->backoff);
	emit(out, SVC_EMIT_RESTARTING, r->backoff);
	return SVC_DONE;
}

static enum svc_outcome stopping_exit(struct svc_replica *r, const struct svc_event *ev,
				      int64_t now, struct svc_actions *out)
{
	record_exit(r, &ev->exit, now, out);
	cancel_timer(r, out);
	r->grace_override = -1;
	if (r->want_up) { /* a user's restart (or start while it stopped): at once */
		emit(out, SVC_EMIT_RESTARTING, 0);
		spawn(r, out);
		return SVC_DONE;
	}
	r->state = SVC_STOPPED;
	emit(out, SVC_EMIT_STOPPED, 0);
	return SVC_DONE;
}

static enum svc_outcome health_timer(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				     struct svc_actions *out)
{
	if (r->timer != SVC_TIMER_HEALTH)
		return SVC_IGNORED;
	r->timer = SVC_TIMER_NONE;
	r->probing = true;
	push(out, SVC_ACT_PROBE, SVC_TIMER_NONE, 0, r->cfg->health_timeout);
	return SVC_DONE;
}

/* The probe's output as docker inspect keeps it: cut to 4 KiB with "..."
 * after, and for a timeout Docker's sentence before it. NULL when there is
 * none (or no memory: a lost output is no reason to fail). */
static char *kept_output(const struct svc_replica *r, const struct svc_probe_result *p)
{
	const char *out = p->output ? p->output : "";
	size_t n = strnlen(out, SVC_PROBE_OUTPUT_MAX + 1);
	const char *cut = "";
	if (n > SVC_PROBE_OUTPUT_MAX) {
		n = SVC_PROBE_OUTPUT_MAX;
		cut = "...";
	}
	char prefix[96] = "";
	if (p->status == SVC_PROBE_TIMEOUT) {
		char d[48];
		svc_go_duration(r->cfg->health_timeout, d, sizeof(d));
		snprintf(prefix, sizeof(prefix), "Health check exceeded timeout (%s)%s", d,
			 n ? ": " : "");
	}
	if (!n && !prefix[0])
		return NULL;
	size_t size = strlen(prefix) + n + strlen(cut) + 1;
	char *kept = malloc(size);
	if (kept)
		snprintf(kept, size, "%s%.*s%s", prefix, (int)n, out, cut);
	return kept;
}

static void keep_probe(struct svc_replica *r, const struct svc_probe_result *p)
{
	unsigned slot = (r->log_first + r->log_len) % SVC_PROBE_LOG;
	if (r->log_len == SVC_PROBE_LOG) { /* full: the oldest goes */
		slot = r->log_first;
		r->log_first = (r->log_first + 1) % SVC_PROBE_LOG;
	} else {
		r->log_len++;
	}
	struct svc_probe_log *l = &r->log[slot];
	free(l->output);
	l->output = kept_output(r, p);
	l->start = p->start;
	l->end = p->end;
	l->exit_code = p->status == SVC_PROBE_TIMEOUT ? -1 : p->exit_code;
}

/* Docker's handleProbeResult: a success resets the failing streak and makes it
 * healthy (within the start period too); a failure (or timeout) counts unless
 * the replica has never been healthy and the probe began within the start
 * period; `retries` failures in a row make it unhealthy. */
static enum svc_outcome probe_result(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				     struct svc_actions *out)
{
	const struct svc_config *c = r->cfg;
	if (!r->probing)
		return SVC_IGNORED;
	r->probing = false;
	keep_probe(r, &ev->probe);
	if (ev->probe.status == SVC_PROBE_OK) {
		r->failing_streak = 0;
		set_health(r, out, SVC_HEALTH_HEALTHY);
	} else if (r->health != SVC_HEALTH_STARTING ||
		   ev->probe.start - r->started >= c->health_start_period) {
		r->failing_streak++;
		if (r->failing_streak >= (c->health_retries ? c->health_retries : 3))
			set_health(r, out, SVC_HEALTH_UNHEALTHY);
	}
	arm(r, out, SVC_TIMER_HEALTH, next_probe_at(r, now));
	return SVC_DONE;
}

/* READY=1 (notify = true) makes it healthy as systemd's Type=notify makes a
 * unit active; probes, if any, go on and may still make it unhealthy. */
static enum svc_outcome ready(struct svc_replica *r, const struct svc_event *ev, int64_t now,
			      struct svc_actions *out)
{
	if (!r->cfg->notify || r->health == SVC_HEALTH_HEALTHY)
		return SVC_IGNORED;
	r->failing_streak = 0;
	set_health(r, out, SVC_HEALTH_HEALTHY);
	return SVC_DONE;
}

/* A stop's own grace (`down -t`, `stop -t`, `restart -t`: ev->grace >= 0)
 * instead of stop_grace_period, until the exit: kept for a stop still to come
 * (a start under way), and shortening a stop under way if it is shorter. */
static void take_grace(struct svc_replica *r, const struct svc_event *ev, int64_t now,
		       struct svc_actions *out)
{
	if (ev->grace < 0)
		return;
	r->grace_override = ev->grace;
	/* `down -t 0` while a `stack stop` waits out a 30 s grace: the shorter wins */
	if (r->state == SVC_STOPPING && r->timer == SVC_TIMER_GRACE &&
	    now + ev->grace < r->timer_at) {
		if (ev->grace > 0) {
			arm(r, out, SVC_TIMER_GRACE, now + ev->grace);
		} else {
			cancel_timer(r, out);
			r->killed = true;
			act(out, SVC_ACT_KILL);
			emit(out, SVC_EMIT_KILLING, 0);
		}
	}
}

static enum svc_outcome run_stop(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				 struct svc_actions *out)
{
	r->want_up = false;
	r->stopped_by_user = true;
	take_grace(r, ev, now, out);
	begin_stop(r, now, out);
	return SVC_DONE;
}

static enum svc_outcome run_down(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				 struct svc_actions *out)
{
	r->want_up = false;
	r->grace_override = ev->grace;
	begin_stop(r, now, out);
	return SVC_DONE;
}

static enum svc_outcome run_restart(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				    struct svc_actions *out)
{
	user_wants_up(r);
	take_grace(r, ev, now, out);
	begin_stop(r, now, out);
	return SVC_DONE;
}

static enum svc_outcome grace_timer(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				    struct svc_actions *out)
{
	if (r->timer != SVC_TIMER_GRACE)
		return SVC_IGNORED;
	r->timer = SVC_TIMER_NONE;
	r->killed = true;
	act(out, SVC_ACT_KILL);
	emit(out, SVC_EMIT_KILLING, 0);
	return SVC_DONE;
}

/* STARTING and STOPPING: nothing to signal (yet, or again); remembered for
 * when the start or the exit comes. */
static enum svc_outcome later_stop(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				   struct svc_actions *out)
{
	r->want_up = false;
	r->stopped_by_user = true;
	take_grace(r, ev, now, out);
	return SVC_DONE;
}

static enum svc_outcome later_down(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				   struct svc_actions *out)
{
	r->want_up = false;
	take_grace(r, ev, now, out);
	return SVC_DONE;
}

static enum svc_outcome later_up(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				 struct svc_actions *out)
{
	user_wants_up(r);
	take_grace(r, ev, now, out);
	return SVC_DONE;
}

/* STARTING: the restart happens once the start is done (start_ok). */
static enum svc_outcome later_restart(struct svc_replica *r, const struct svc_event *ev,
				      int64_t now, struct svc_actions *out)
{
	user_wants_up(r);
	take_grace(r, ev, now, out);
	r->restart_after_start = true;
	return SVC_DONE;
}

static enum svc_outcome backoff_timer(struct svc_replica *r, const struct svc_event *ev,
				      int64_t now, struct svc_actions *out)
{
	if (r->timer != SVC_TIMER_BACKOFF)
		return SVC_IGNORED;
	r->timer = SVC_TIMER_NONE;
	spawn(r, out);
	return SVC_DONE;
}

/* `stack start` of a crash-looping service: no point waiting out the backoff. */
static enum svc_outcome start_now(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				  struct svc_actions *out)
{
	user_wants_up(r);
	cancel_timer(r, out);
	spawn(r, out);
	return SVC_DONE;
}

/* WAITING or BACKOFF: no process, so stopped at once. */
static enum svc_outcome stop_idle(struct svc_replica *r, const struct svc_event *ev, int64_t now,
				  struct svc_actions *out)
{
	r->want_up = false;
	r->stopped_by_user = ev->kind == SVC_EV_USER_STOP;
	cancel_timer(r, out);
	r->state = SVC_STOPPED;
	emit(out, SVC_EMIT_STOPPED, 0);
	return SVC_DONE;
}

/* EXITED, FAILED, STOPPED: started again from the top, its dependencies
 * checked again (they may have failed or been stopped meanwhile). */
static enum svc_outcome rewait(struct svc_replica *r, const struct svc_event *ev, int64_t now,
			       struct svc_actions *out)
{
	user_wants_up(r);
	r->blocked = false;
	r->why[0] = '\0';
	r->state = SVC_WAITING;
	act(out, SVC_ACT_CHECK_DEPS);
	return SVC_DONE;
}

/* A new supervisor found this replica's container running: supervised from
 * here with what its record kept (restarts, backoff, health). The loop feeds
 * EXIT right after when the container exited while nobody watched. */
static enum svc_outcome adopt(struct svc_replica *r, const struct svc_event *ev, int64_t now,
			      struct svc_actions *out)
{
	r->runs++;
	r->started = ev->adopt.started;
	r->restarts = ev->adopt.restarts;
	r->backoff = ev->adopt.backoff;
	r->health = SVC_HEALTH_NONE;
	if (has_check(r->cfg))
		r->health =
		    ev->adopt.health != SVC_HEALTH_NONE ? ev->adopt.health : SVC_HEALTH_STARTING;
	r->state = SVC_RUNNING;
	emit(out, SVC_EMIT_ADOPTED, 0);
	if (ev->adopt.stopped_by_user) { /* the dead supervisor was stopping it */
		r->want_up = false;
		r->stopped_by_user = true;
		begin_stop(r, now, out);
		return SVC_DONE;
	}
	if (r->cfg->has_probe)
		arm(r, out, SVC_TIMER_HEALTH, next_probe_at(r, now));
	return SVC_DONE;
}

/* Every pair is written out (X: invalid, I: ignored); a NULL cell would be a
 * bug, which a test catches. */
#define X invalid
#define I ignore
/* The columns follow enum svc_event_kind: a new event must be added to every row. */
_Static_assert(SVC_NEVENTS == 15 && SVC_EV_ADOPT == 14, "the table's columns are the events");
_Static_assert(SVC_NSTATES == 8, "the table's rows are the states");
// clang-format off
static const handler table[SVC_NSTATES][SVC_NEVENTS] = {
/*                 DEPS_OK  DEPS_FAILED  START_OK  START_FAILED  EXIT           PROBE_RESULT  READY
 *                 BACKOFF_TIMER  GRACE_TIMER  HEALTH_TIMER  USER_STOP   USER_START  USER_RESTART  STACK_DOWN  ADOPT */
[SVC_WAITING]  = { deps_ok, deps_failed, X,        X,            X,             I,            I,
                   I,             I,           I,            stop_idle,  I,          I,            stop_idle,  adopt },
[SVC_STARTING] = { I,       I,           start_ok, start_failed, X,             I,            I,
                   I,             I,           I,            later_stop, later_up,   later_restart, later_down, X },
[SVC_RUNNING]  = { I,       I,           X,        X,            running_exit,  probe_result, ready,
                   I,             I,           health_timer, run_stop,   I,          run_restart,  run_down,   X },
[SVC_STOPPING] = { I,       I,           X,        X,            stopping_exit, I,            I,
                   I,             grace_timer, I,            later_stop, later_up,   later_up,     later_down, X },
[SVC_BACKOFF]  = { I,       I,           X,        X,            X,             I,            I,
                   backoff_timer, I,           I,            stop_idle,  start_now,  start_now,    stop_idle,  X },
[SVC_EXITED]   = { I,       I,           X,        X,            X,             I,            I,
                   I,             I,           I,            I,          rewait,     rewait,       I,          X },
[SVC_FAILED]   = { I,       I,           X,        X,            X,             I,            I,
                   I,             I,           I,            I,          rewait,     rewait,       I,          X },
[SVC_STOPPED]  = { I,       I,           X,        X,            X,             I,            I,
                   I,             I,           I,            I,          rewait,     rewait,       I,          X },
};
// clang-format on
#undef X
#undef I

bool svc_table_complete(void)
{
	for (int s = 0; s < SVC_NSTATES; s++)
		for (int e = 0; e < SVC_NEVENTS; e++)
			if (!table[s][e])
				return false;
	return true;
}

enum svc_outcome svc_step(struct svc_replica *r, const struct svc_event *ev, int64_t now,
			  struct svc_actions *out)
{
	out->n = 0;
	if ((unsigned)r->state >= SVC_NSTATES || (unsigned)ev->kind >= SVC_NEVENTS)
		return SVC_INVALID;
	enum svc_state was = r->state;
	enum svc_health health_was = r->health;
	enum svc_outcome res = table[r->state][ev->kind](r, ev, now, out);
	/* Dependents and `up --wait` are re-checked on every change they can see. */
	if (res == SVC_DONE && (r->state != was || r->health != health_was))
		act(out, SVC_ACT_NOTIFY_DEPENDENTS);
	return res;
}

void svc_init(struct svc_replica *r, const struct svc_config *cfg, const char *name)
{
	*r = (struct svc_replica){
	    .cfg = cfg,
	    .name = name,
	    .state = SVC_WAITING,
	    .want_up = true,
	    .grace_override = -1,
	};
}

void svc_fini(struct svc_replica *r)
{
	for (unsigned i = 0; i < SVC_PROBE_LOG; i++) {
		free(r->log[i].output);
		r->log[i].output = NULL;
	}
}

const struct svc_probe_log *svc_probe_at(const struct svc_replica *r, unsigned i)
{
	if (i >= r->log_len)
		return NULL;
	return &r->log[(r->log_first + i) % SVC_PROBE_LOG];
}

bool svc_exit_failed(const struct svc_exit *e)
{
	return e->code != 0 || e->signal || e->oom;
}

/* moby's RestartManager.ShouldRestart, with hutch's rule that a stop by the
 * user or by `down` is never undone by the policy (want_up). */
bool svc_should_restart(const struct svc_replica *r, const struct svc_exit *e)
{
	const struct svc_config *c = r->cfg;
	if (!r->want_up)
		return false;
	switch (c->restart) {
	case SVC_RESTART_ALWAYS:
		return true;
	case SVC_RESTART_UNLESS_STOPPED:
		return !r->stopped_by_user;
	case SVC_RESTART_ON_FAILURE:
		return svc_exit_failed(e) && (c->max_retries == 0 || r->restarts < c->max_retries);
	case SVC_RESTART_NO:
		break;
	}
	return false;
}

int64_t svc_next_backoff(int64_t prev, int64_t ran)
{
	if (ran >= SVC_BACKOFF_RESET || prev <= 0)
		return SVC_BACKOFF_FIRST;
	return prev >= SVC_BACKOFF_MAX / 2 ? SVC_BACKOFF_MAX : prev * 2;
}

bool svc_comes_back_after_reboot(const struct svc_config *cfg, bool stopped_by_user)
{
	return cfg->restart != SVC_RESTART_NO && !stopped_by_user;
}
