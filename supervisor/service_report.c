/* What the supervisor says about replicas: whether a service's dependencies
 * let it start, whether a stack is up for `up --wait`, and the words `ps`,
 * events and errors use. Pure, as service.c. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "supervisor/service_internal.h"

/* v / unit with its fraction, trailing zeros dropped: "1.5" */
static void with_fraction(char *buf, size_t len, int64_t v, int64_t unit, const char *suffix)
{
	char frac[24] = "";
	int64_t rest = v % unit;
	size_t n = 0;
	for (int64_t digit = unit / 10; rest && digit && n + 2 < sizeof(frac); digit /= 10) {
		if (!n)
			frac[n++] = '.';
		frac[n++] = (char)('0' + rest / digit);
		rest %= digit;
	}
	frac[n] = '\0';
	snprintf(buf, len, "%lld%s%s", (long long)(v / unit), frac, suffix);
}

/* Go's time.Duration format, as docker inspect words a probe's timeout:
 * "500ms", "1.5s", "30s", "1m30s", "1h0m0s". */
void svc_go_duration(int64_t ns, char *buf, size_t len)
{
	if (ns <= 0) {
		snprintf(buf, len, "0s");
	} else if (ns < 1000) {
		snprintf(buf, len, "%lldns", (long long)ns);
	} else if (ns < SVC_MS) {
		with_fraction(buf, len, ns, 1000, "µs");
	} else if (ns < SVC_S) {
		with_fraction(buf, len, ns, SVC_MS, "ms");
	} else {
		long long h = ns / (3600 * SVC_S), m = ns / (60 * SVC_S) % 60;
		char secs[32];
		with_fraction(secs, sizeof(secs), ns % (60 * SVC_S), SVC_S, "s");
		if (h)
			snprintf(buf, len, "%lldh%lldm%s", h, m, secs);
		else if (m)
			snprintf(buf, len, "%lldm%s", m, secs);
		else
			snprintf(buf, len, "%s", secs);
	}
}

void svc_describe_exit(const char *name, const struct svc_exit *e, char *buf, size_t len)
{
	const char *sep = name ? " " : "";
	const char *was = name ? "was " : "";
	name = name ? name : "";
	if (e->oom) {
		snprintf(buf, len, "%s%s%skilled for lack of memory (OOM)", name, sep, was);
	} else if (e->signal) {
		const char *abbrev = sigabbrev_np(e->signal);
		if (abbrev)
			snprintf(buf, len, "%s%s%skilled by SIG%s", name, sep, was, abbrev);
		else
			snprintf(buf, len, "%s%s%skilled by signal %d", name, sep, was, e->signal);
	} else {
		snprintf(buf, len, "%s%sexited with code %d", name, sep, e->code);
	}
}

void svc_human_duration(int64_t ns, char *buf, size_t len)
{
	long long secs = ns / SVC_S, mins = secs / 60;
	long long hours = (ns + 30 * 60 * SVC_S) / (3600 * SVC_S); /* rounded, as go-units */
	if (secs < 1)
		snprintf(buf, len, "Less than a second");
	else if (secs == 1)
		snprintf(buf, len, "1 second");
	else if (secs < 60)
		snprintf(buf, len, "%lld seconds", secs);
	else if (mins == 1)
		snprintf(buf, len, "About a minute");
	else if (mins < 60)
		snprintf(buf, len, "%lld minutes", mins);
	else if (hours == 1)
		snprintf(buf, len, "About an hour");
	else if (hours < 48)
		snprintf(buf, len, "%lld hours", hours);
	else if (hours < 24 * 7 * 2)
		snprintf(buf, len, "%lld days", hours / 24);
	else if (hours < 24 * 30 * 2)
		snprintf(buf, len, "%lld weeks", hours / 24 / 7);
	else if (hours < 24 * 365 * 2)
		snprintf(buf, len, "%lld months", hours / 24 / 30);
	else
		snprintf(buf, len, "%lld years", hours / 24 / 365);
}

void svc_status(const struct svc_replica *r, int64_t now, char *buf, size_t len)
{
	char ago[32];
	int code = r->last_exit.signal ? 128 + r->last_exit.signal : r->last_exit.code;
	switch (r->state) {
	case SVC_RUNNING: {
		static const char *const suffix[] = {"", " (health: starting)", " (healthy)",
						     " (unhealthy)"};
		svc_human_duration(now - r->started, ago, sizeof(ago));
		snprintf(buf, len, "Up %s%s", ago, suffix[r->health]);
		return;
	}
	case SVC_BACKOFF:
		svc_human_duration(now - r->exited, ago, sizeof(ago));
		snprintf(buf, len, "Restarting (%d) %s ago", code, ago);
		return;
	case SVC_EXITED:
	case SVC_STOPPED:
		if (r->has_exited) {
			svc_human_duration(now - r->exited, ago, sizeof(ago));
			snprintf(buf, len, "Exited (%d) %s ago", code, ago);
			return;
		}
		snprintf(buf, len, "Stopped"); /* before it ever ran */
		return;
	case SVC_FAILED:
		snprintf(buf, len, r->blocked ? "Not started" : "Failed to start");
		return;
	case SVC_WAITING:
		snprintf(buf, len, "Waiting");
		return;
	case SVC_STARTING:
		snprintf(buf, len, "Starting");
		return;
	case SVC_STOPPING:
		snprintf(buf, len, "Stopping");
		return;
	case SVC_NSTATES:
		break;
	}
	snprintf(buf, len, "?");
}

const char *svc_state_name(enum svc_state s)
{
	static const char *const names[SVC_NSTATES] = {
	    "waiting", "starting", "running", "stopping", "backoff", "exited", "failed", "stopped",
	};
	return (unsigned)s < SVC_NSTATES ? names[s] : "?";
}

const char *svc_event_name(enum svc_event_kind k)
{
	static const char *const names[SVC_NEVENTS] = {
	    "deps-ok",	    "deps-failed", "start-ok",	    "start-failed", "exit",
	    "probe-result", "ready",	   "backoff-timer", "grace-timer",  "health-timer",
	    "user-stop",    "user-start",  "user-restart",  "stack-down",   "adopt",
	};
	return (unsigned)k < SVC_NEVENTS ? names[k] : "?";
}

const char *svc_health_name(enum svc_health h)
{
	static const char *const names[] = {"none", "starting", "healthy", "unhealthy"};
	return (unsigned)h < 4 ? names[h] : "?";
}

/* A probe's output is the service's text: one line, bounded, no control bytes. */
static void last_output(const struct svc_replica *r, char *buf, size_t len)
{
	buf[0] = '\0';
	const struct svc_probe_log *l = r->log_len ? svc_probe_at(r, r->log_len - 1) : NULL;
	if (!l || !l->output || len < 2)
		return;
	size_t n = 0;
	const char *s = l->output;
	while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
		s++;
	for (; *s && *s != '\n' && n + 1 < len && n < 200; s++)
		buf[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
	buf[n] = '\0';
}

static enum svc_verdict unhealthy(const struct svc_replica *r, char *why, size_t len)
{
	char out[256];
	last_output(r, out, sizeof(out));
	if (out[0])
		snprintf(why, len, "%s is unhealthy: %s", r->name, out);
	else
		snprintf(why, len, "%s is unhealthy", r->name);
	return SVC_FAIL;
}

static enum svc_verdict exited(const struct svc_replica *r, char *why, size_t len)
{
	svc_describe_exit(r->name, &r->last_exit, why, len);
	return SVC_FAIL;
}

static enum svc_verdict restarting(const struct svc_replica *r, const char *what, char *why,
				   size_t len)
{
	char e[128];
	svc_describe_exit(NULL, &r->last_exit, e, sizeof(e));
	snprintf(why, len, "waiting for %s to %s: it is restarting (%u), last %s", r->name, what,
		 r->restarts, e);
	return SVC_WAIT;
}

static enum svc_verdict wait_for(const struct svc_replica *r, const char *what, char *why,
				 size_t len)
{
	snprintf(why, len, "waiting for %s to %s", r->name, what);
	return SVC_WAIT;
}

static enum svc_verdict dep_one(const struct svc_dep *d, char *why, size_t len)
{
	const struct svc_replica *r = d->r;
	if (r->state == SVC_FAILED) {
		snprintf(why, len, "%s", r->why);
		return SVC_FAIL;
	}
	switch (d->cond) {
	case SVC_DEP_STARTED:
		/* compose's service_started: it was started; what it does after is
		 * for `healthy` or `completed` to say */
		if (r->state == SVC_RUNNING || r->state == SVC_STOPPING ||
		    r->state == SVC_BACKOFF || r->state == SVC_EXITED)
			return SVC_GO;
		return wait_for(r, "start", why, len);
	case SVC_DEP_HEALTHY:
		if (r->state == SVC_RUNNING) {
			if (r->health == SVC_HEALTH_NONE || r->health == SVC_HEALTH_HEALTHY)
				return SVC_GO;
			if (r->health == SVC_HEALTH_UNHEALTHY)
				return unhealthy(r, why, len);
		}
		if (r->state == SVC_EXITED)
			return exited(r, why, len);
		if (r->state == SVC_BACKOFF)
			return restarting(r, "be healthy", why, len);
		return wait_for(r, "be healthy", why, len);
	case SVC_DEP_COMPLETED:
		if (r->state == SVC_EXITED)
			return svc_exit_failed(&r->last_exit) ? exited(r, why, len) : SVC_GO;
		if (r->state == SVC_BACKOFF)
			return restarting(r, "complete", why, len);
		return wait_for(r, "complete", why, len);
	}
	return wait_for(r, "start", why, len);
}

/* The first failure, else the first wait, else go (GO < WAIT < FAIL). */
static void combine(enum svc_verdict v, const char *one, enum svc_verdict *best, char *why,
		    size_t len)
{
	if (v <= *best)
		return;
	*best = v;
	snprintf(why, len, "%s", one);
}

enum svc_verdict svc_deps_check(const struct svc_dep *deps, size_t n, char *why, size_t len)
{
	enum svc_verdict best = SVC_GO;
	char one[640];
	if (len)
		why[0] = '\0';
	for (size_t i = 0; i < n && best != SVC_FAIL; i++) {
		one[0] = '\0';
		combine(dep_one(&deps[i], one, sizeof(one)), one, &best, why, len);
	}
	return best;
}

static enum svc_verdict ready_one(const struct svc_replica *r, char *why, size_t len)
{
	switch (r->state) {
	case SVC_RUNNING:
		if (r->health == SVC_HEALTH_NONE || r->health == SVC_HEALTH_HEALTHY)
			return SVC_GO;
		if (r->health == SVC_HEALTH_UNHEALTHY)
			return unhealthy(r, why, len);
		return wait_for(r, "be healthy", why, len);
	case SVC_EXITED:
		return svc_exit_failed(&r->last_exit) ? exited(r, why, len) : SVC_GO;
	case SVC_FAILED:
		if (r->blocked)
			snprintf(why, len, "%s was not started: %s", r->name, r->why);
		else
			snprintf(why, len, "%s", r->why);
		return SVC_FAIL;
	case SVC_BACKOFF:
		return restarting(r, "run", why, len);
	case SVC_STOPPING:
		if (r->want_up)
			return wait_for(r, "restart", why, len);
		snprintf(why, len, "%s is being stopped", r->name);
		return SVC_FAIL;
	case SVC_STOPPED:
		snprintf(why, len, "%s was stopped", r->name);
		return SVC_FAIL;
	case SVC_WAITING:
		return wait_for(r, "start (its dependencies are not ready)", why, len);
	case SVC_STARTING:
	case SVC_NSTATES:
		break;
	}
	return wait_for(r, "start", why, len);
}

enum svc_verdict svc_stack_ready(const struct svc_replica *const *rs, size_t n, char *why,
				 size_t len)
{
	enum svc_verdict best = SVC_GO;
	char one[640];
	if (len)
		why[0] = '\0';
	for (size_t i = 0; i < n && best != SVC_FAIL; i++) {
		one[0] = '\0';
		combine(ready_one(rs[i], one, sizeof(one)), one, &best, why, len);
	}
	return best;
}
