"""Stacks as their users rely on them (issue 9: "Stack file", "CLI", "Behaviour"):
start order under each depends_on condition, restart policies and Docker's
backoff, health checks, `hutch with`, `down`, a SIGKILLed supervisor and
adoption, stack file errors, named volumes, 50 services, and the control API
driven from Python's standard library.

Every stack is a few busybox services sharing a host dir mounted at /t
(stackutil.py): they write markers and /proc/uptime stamps there, and the test
polls for them with deadlines. Every stack is brought down at teardown, then the
leak check (conftest.no_leaks) runs. Run as root and rootless
(tests/rootless/run.sh -k stack_behaviour)."""
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import descendants, wait_for
from stackutil import (ROOTLESS, Events, Stacks, alive, ev_kind, ev_service, field,
                       json_lines, uptime)


@pytest.fixture
def stacks(state, tmp):
    """stacks(services_text_or_fn, name=None, raw=False) -> Stack; all brought
    down (`down -t 0 --volumes`) at teardown."""
    s = Stacks(state, tmp)
    yield s
    s.cleanup()


def svc(s, name, cmd=None, **keys):
    """A [service.NAME] section running bb with the shared dir at /t."""
    lines = [f"[service.{name}]", f"image = {keys.pop('image', 'bb')}"]
    vols = keys.pop("volumes", "")
    lines.append(f"volumes = {s.mount()} {vols}".rstrip())
    if cmd:
        lines.append(f"command = {cmd}")
    for k, v in keys.items():
        lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n\n"


def stamp(name):
    """Shell: append the time (CLOCK_BOOTTIME) to /t/NAME."""
    return f"cat /proc/uptime >> /t/{name}"


SLEEP = "exec sleep 1000"  # pid 1 without a handler: `down -t 0` kills it at once


def state_of(s, service):
    return str(field(s.row(service), "state", "status", default="")).lower()


def health_of(s, service):
    return str(field(s.row(service), "health", default="") or "").lower()


def restarts_of(s, service):
    return field(s.row(service), "restarts", "restart_count", "RestartCount")


def wait_state(s, service, want, timeout=10):
    return wait_for(lambda: state_of(s, service) == want, timeout=timeout,
                    what=f"{service} to be {want} (stack ps: {s.ps() if s.ls() else 'no stack'})")


def wait_health(s, service, want, timeout=10):
    return wait_for(lambda: health_of(s, service) == want, timeout=timeout,
                    what=f"{service} health {want}")


def assert_gone(s):
    """Nothing of the stack is left: containers, stack ls entry, paths naming it
    under the state root (its run dir and socket). conftest.no_leaks checks
    mounts and cgroups after the test."""
    left = []

    def gone():
        left[:] = s.leftovers()
        return not left

    try:
        wait_for(gone, timeout=5, what=f"stack {s.name} to be gone")
    except AssertionError:
        raise AssertionError(f"left of stack {s.name}: {left}") from None


# ------------------------------------------------------------------ start order


def test_started_dependency_runs_first_and_up_wait_returns_when_all_run(stacks):
    s = stacks()
    s.write(svc(s, "a", s.script("a", f"{stamp('a')}\n{SLEEP}")) +
            svc(s, "b", s.script("b", f"{stamp('b')}\n{SLEEP}"), depends_on="a"))
    s.up()
    # --wait returned: both run, and each wrote its stamp as its first act
    assert state_of(s, "a") == "running" and state_of(s, "b") == "running", s.ps()
    a, b = wait_for(lambda: s.stamps("a") and s.stamps("b") and
                    (s.stamps("a")[0], s.stamps("b")[0]), what="both stamps")
    assert a <= b, f"b started at {b}, before its dependency a ({a})"
    names = sorted(field(r, "Names", "name") for r in s.containers())
    assert names == [f"{s.name}-a-1", f"{s.name}-b-1"], names
    s.down("-t", "0")
    assert_gone(s)


def test_healthy_dependency_is_probed_healthy_before_dependent_starts(stacks):
    s = stacks()
    # a becomes ready 0.5 s after its start; its probe leaves /t/a.ok when it passes.
    # b records, as its first act, whether a had been seen healthy by then.
    s.write(svc(s, "a", s.script("a", f"sleep 0.5\ntouch /t/a.ready\n{SLEEP}"),
                health_cmd=s.script("probe", "test -e /t/a.ready && touch /t/a.ok"),
                health_interval="100ms") +
            svc(s, "b", s.script("b", "if test -e /t/a.ok; then echo after > /t/b; "
                                      f"else echo early > /t/b; fi\n{SLEEP}"),
                depends_on="a:healthy"))
    t0 = time.monotonic()
    s.up()
    assert time.monotonic() - t0 >= 0.5
    assert s.lines("b") == ["after"], f"b started before a was healthy: {s.lines('b')}"
    assert health_of(s, "a") == "healthy"


def test_completed_dependency_ran_to_exit_0_before_dependent_starts(stacks):
    s = stacks()
    s.write(svc(s, "job", s.script("job", "sleep 0.3\necho done > /t/job.done\nexit 0")) +
            svc(s, "app", s.script("app", "cat /t/job.done > /t/app 2>/dev/null || "
                                          f"echo early > /t/app\n{SLEEP}"),
                depends_on="job:completed"))
    s.up()  # a one-shot job that exited 0 counts as up
    assert s.lines("app") == ["done"], s.lines("app")
    assert state_of(s, "job") == "exited", s.ps()
    assert field(s.row("job"), "exit_code", "last_exit_code", "code") in (0, "0"), s.row("job")


def test_completed_with_failure_fails_dependents_naming_service_and_code(stacks):
    s = stacks()
    s.write(svc(s, "migrate", s.script("m", "exit 3")) +
            svc(s, "api", s.script("api", f"touch /t/api\n{SLEEP}"),
                depends_on="migrate:completed") +
            svc(s, "web", s.script("web", f"touch /t/web\n{SLEEP}"), depends_on="api"))
    cp = s.up(check=False)
    assert cp.returncode != 0, cp
    assert "migrate" in cp.stderr and re.search(r"\b3\b", cp.stderr), cp.stderr
    assert not s.exists("api") and not s.exists("web")
    for dep in ("api", "web"):
        r = s.row(dep)
        text = json.dumps(r)
        assert "migrate" in text and re.search(r"\b3\b", text), \
            f"{dep} in stack ps should say migrate exited with code 3: {r}"
        assert field(r, "pid") in (None, 0), r
    # the dependents have no container that ever ran
    ran = [field(r, "Names", "name") for r in s.containers()]
    assert all("-api-" not in n and "-web-" not in n for n in ran), ran


def test_missing_image_fails_with_runtime_message_and_dependents_do_not_start(stacks):
    s = stacks()
    s.write(svc(s, "db", SLEEP, image="nosuch-image:1") +
            svc(s, "api", s.script("api", f"touch /t/api\n{SLEEP}"), depends_on="db") +
            svc(s, "other", s.script("other", f"touch /t/other\n{SLEEP}")))
    cp = s.up(check=False)
    assert cp.returncode != 0, cp
    assert "db" in cp.stderr and "image 'nosuch-image:1' not found" in cp.stderr, cp.stderr
    assert not s.exists("api")
    assert "image 'nosuch-image:1' not found" in json.dumps(s.row("db")), s.row("db")
    assert state_of(s, "api") in ("failed", "not started"), s.row("api")


# ------------------------------------------------------------------ restart policies


def test_restart_no_leaves_the_service_exited(stacks):
    s = stacks()
    s.write(svc(s, "once", s.script("once", f"{stamp('starts')}\nexit 5"), restart="no") +
            svc(s, "keep", SLEEP))
    s.up(wait=False)
    wait_state(s, "once", "exited")
    r = s.row("once")
    assert restarts_of(s, "once") in (0, None), r
    assert field(r, "exit_code", "last_exit_code", "code") in (5, "5"), r
    assert len(s.stamps("starts")) == 1


def test_restart_always_restarts_after_exit_0(stacks):
    s = stacks()
    s.write(svc(s, "loop", s.script("loop", f"{stamp('starts')}\nexit 0"), restart="always"))
    s.up(wait=False)
    wait_for(lambda: len(s.stamps("starts")) >= 4, timeout=10, what="4 runs")
    wait_for(lambda: (restarts_of(s, "loop") or 0) >= 3, what="restarts >= 3 in stack ps")


def test_on_failure_n_restarts_exactly_n_times_then_exited(stacks):
    s = stacks()
    s.write(svc(s, "crash", s.script("crash", f"{stamp('starts')}\nexit 4"),
                restart="on-failure:3") +
            svc(s, "ok", s.script("ok", f"{stamp('ok')}\nexit 0"), restart="on-failure"))
    s.up(wait=False)
    wait_state(s, "crash", "exited", timeout=10)  # 0.1 + 0.2 + 0.4 s of backoff
    r = s.row("crash")
    assert restarts_of(s, "crash") == 3, r
    assert field(r, "exit_code", "last_exit_code", "code") in (4, "4"), r
    assert len(s.stamps("starts")) == 4, s.lines("starts")
    # an exit 0 is not a failure: on-failure leaves it exited after one run
    wait_state(s, "ok", "exited")
    assert len(s.stamps("ok")) == 1 and restarts_of(s, "ok") in (0, None)
    # and nothing runs again: the next delay (800 ms) passes with no new start
    time.sleep(1.2)
    assert len(s.stamps("starts")) == 4 and len(s.stamps("ok")) == 1


def test_unless_stopped_stays_down_after_stack_stop_and_starts_again(stacks):
    s = stacks()
    s.write(svc(s, "web", s.script("web", f"{stamp('starts')}\n{SLEEP}"),
                restart="unless-stopped", stop_grace_period="0s") +
            svc(s, "other", SLEEP))
    s.up()
    pid = field(s.row("web"), "pid")
    s.hutch("stack", "stop", "web")
    wait_state(s, "web", "stopped")
    assert not alive(pid)
    assert state_of(s, "other") == "running"
    time.sleep(0.5)  # a restart would come after 100 ms
    assert state_of(s, "web") == "stopped" and len(s.stamps("starts")) == 1
    s.hutch("stack", "start", "web")
    wait_state(s, "web", "running")
    wait_for(lambda: len(s.stamps("starts")) == 2, what="a second run after stack start")


def test_backoff_follows_dockers_sequence(stacks):
    s = stacks()
    s.write(svc(s, "crash", s.script("crash", f"{stamp('starts')}\nexit 1"),
                restart="on-failure:5"))
    ev = None
    s.up(wait=False)
    try:
        ev = Events(s)
    except Exception:
        ev = None
    wait_state(s, "crash", "exited", timeout=15)  # 0.1+0.2+0.4+0.8+1.6 s
    starts = s.stamps("starts")
    assert len(starts) == 6, starts
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    want = [0.1, 0.2, 0.4, 0.8, 1.6]
    # each gap is the delay (counted from the exit, which follows the start) plus a
    # container start; /proc/uptime has 10 ms steps
    for g, w in zip(gaps, want):
        assert w - 0.02 <= g <= w + 0.4, f"gaps between starts {gaps}, want about {want}"
    if ev is not None:
        err = ev.close()
        restarting = [e for e in ev.events() if "restart" in ev_kind(e).lower()]
        assert restarting, f"no restart events: {ev.raw} {err}"


def test_crash_loop_shown_in_stack_ps_with_restarts_and_last_exit(stacks):
    s = stacks()
    s.write(svc(s, "loop", s.script("loop", f"{stamp('starts')}\nexit 2"), restart="always") +
            svc(s, "fine", SLEEP))
    cp = s.up("--wait-timeout", "2", check=False)
    assert cp.returncode != 0, cp
    assert "loop" in cp.stderr and re.search(r"\b2\b", cp.stderr), cp.stderr
    wait_for(lambda: (restarts_of(s, "loop") or 0) >= 3, what="3 restarts")
    r = s.row("loop")
    assert field(r, "exit_code", "last_exit_code", "code") in (2, "2"), r
    table = s.hutch("stack", "ps").stdout
    line = [l for l in table.splitlines() if "loop" in l]
    assert line and "Restarting (2)" in line[0], table


# ------------------------------------------------------------------ health checks


def test_health_cmd_becomes_healthy_when_a_file_appears(stacks):
    s = stacks()
    s.write(svc(s, "web", SLEEP, health_cmd="test -e /t/ready", health_interval="100ms"))
    s.up(wait=False)
    wait_state(s, "web", "running")
    wait_for(lambda: s.ps() and health_of(s, "web") == "starting", what="health starting")
    s.touch("ready")
    wait_health(s, "web", "healthy", timeout=5)
    assert "(healthy)" in s.hutch("stack", "ps").stdout
    assert "(healthy)" in s.state.run("ps").stdout  # the container's own ps too


def health_sequence(events):
    """healthy/unhealthy, in order, from the health events."""
    out = []
    for e in events:
        text = json.dumps(e)
        if "health" not in text.lower():
            continue
        if "unhealthy" in text:
            out.append("unhealthy")
        elif "healthy" in text:
            out.append("healthy")
    return out


def test_health_flaps_healthy_unhealthy_healthy(stacks):
    s = stacks()
    s.write(svc(s, "flap", SLEEP, health_cmd=s.script("p", "echo probe-says-hi\ntest -e /t/ok"),
                health_interval="100ms", health_retries="2"))
    s.touch("ok")
    s.up()
    ev = Events(s)
    try:
        wait_health(s, "flap", "healthy")
        (s.t / "ok").unlink()
        wait_health(s, "flap", "unhealthy", timeout=5)
        assert state_of(s, "flap") == "running"  # unhealthy is reported, not restarted
        s.touch("ok")
        wait_health(s, "flap", "healthy", timeout=5)
        ev.wait(lambda e: "unhealthy" in json.dumps(e), what="an unhealthy event")
        wait_for(lambda: health_sequence(ev.events())[-1:] == ["healthy"], timeout=5,
                 what="the last health event to be healthy")
        seq = health_sequence(ev.events())
        i = seq.index("unhealthy")
        assert "healthy" in seq[:i] and "healthy" in seq[i:], seq
    finally:
        ev.close()


def test_health_start_period_and_start_interval(stacks):
    s = stacks()
    # interval 1h: only the start interval (100 ms) can find it healthy in time;
    # retries 1: any failure counted would make it unhealthy at once
    s.write(svc(s, "slow", SLEEP,
                health_cmd=s.script("p", f"{stamp('probes')}\ntest -e /t/ok"),
                health_interval="1h", health_retries="1", health_start_period="30s",
                health_start_interval="100ms"))
    s.up(wait=False)
    wait_for(lambda: len(s.stamps("probes")) >= 5, timeout=5, what="5 probes")
    assert health_of(s, "slow") == "starting", s.row("slow")
    p = s.stamps("probes")
    assert all(0.05 <= b - a <= 0.6 for a, b in zip(p, p[1:])), p
    s.touch("ok")
    wait_health(s, "slow", "healthy", timeout=3)


def test_health_start_interval_ignored_after_start_period(stacks):
    """Without a start period, health_interval alone times the probes."""
    s = stacks()
    s.write(svc(s, "plain", SLEEP, health_cmd=s.script("p", f"{stamp('probes')}\ntrue"),
                health_interval="300ms", health_start_interval="10ms"))
    s.up()
    wait_for(lambda: len(s.stamps("probes")) >= 3, timeout=5, what="3 probes")
    p = s.stamps("probes")
    assert all(b - a >= 0.28 for a, b in zip(p, p[1:])), p


def test_health_tcp(stacks):
    s = stacks()
    s.write(svc(s, "tcp", s.script("tcp", "while ! test -e /t/go; do sleep 0.05; done\n"
                                          "exec nc -ll -p 7000 -e true"),
                health_tcp="7000", health_interval="100ms", health_retries="1000") +
            svc(s, "closed", SLEEP, health_tcp="7001", health_interval="100ms",
                health_retries="1"))
    s.up(wait=False)
    wait_health(s, "closed", "unhealthy", timeout=5)
    assert health_of(s, "tcp") == "starting"
    s.touch("go")
    wait_health(s, "tcp", "healthy", timeout=5)


def test_health_http(stacks):
    s = stacks()
    www = s.t / "www"
    www.mkdir()
    (www / "healthz").write_text("ok\n")
    s.write(svc(s, "web", "httpd -f -p 8080 -h /t/www", health_http="http://:8080/healthz",
                health_interval="100ms") +
            svc(s, "bad", "httpd -f -p 8080 -h /t/www", health_http="http://:8080/missing",
                health_interval="100ms", health_retries="1"))
    s.up(wait=False)
    wait_health(s, "web", "healthy", timeout=5)
    wait_health(s, "bad", "unhealthy", timeout=5)
    cp = s.up(check=False)
    assert cp.returncode != 0 and "bad" in cp.stderr and "404" in cp.stderr, cp.stderr


def test_up_wait_fails_naming_service_and_health_output_on_timeout(stacks):
    s = stacks()
    s.write(svc(s, "never", SLEEP, health_cmd=s.script("p", "echo db-not-ready-42\nexit 1"),
                health_interval="100ms", health_start_period="1h",
                health_start_interval="100ms") +
            svc(s, "fine", SLEEP))
    t0 = time.monotonic()
    cp = s.up("--wait-timeout", "1", check=False)
    took = time.monotonic() - t0
    assert cp.returncode != 0, cp
    assert 1.0 <= took < 10, took
    assert "never" in cp.stderr and "db-not-ready-42" in cp.stderr, cp.stderr
    assert "fine" not in cp.stderr.replace("never", ""), cp.stderr


def test_up_wait_fails_at_once_when_unhealthy(stacks):
    s = stacks()
    s.write(svc(s, "sick", SLEEP, health_cmd=s.script("p", "echo disk-full >&2\nexit 1"),
                health_interval="100ms", health_retries="2"))
    t0 = time.monotonic()
    cp = s.up("--wait-timeout", "60", check=False)
    assert cp.returncode != 0 and time.monotonic() - t0 < 10, cp
    assert "sick" in cp.stderr and "disk-full" in cp.stderr, cp.stderr


# ------------------------------------------------------------------ hutch with


def with_stack(s):
    s.write(svc(s, "db", s.script("db", f"touch /t/db.up\n{SLEEP}"),
                health_cmd="test -e /t/db.up", health_interval="100ms"))


def test_with_returns_cmds_status_and_leaves_nothing(stacks, state):
    s = stacks()
    with_stack(s)
    # CMD runs on the host once db is healthy: it sees what db wrote
    cp = s.hutch("with", "--", "sh", "-c", f"test -e {s.t}/db.up && exit 7", check=False)
    assert cp.returncode == 7, cp
    assert_gone(s)
    cp = s.hutch("with", "--", "true", check=False)
    assert cp.returncode == 0, cp
    assert_gone(s)


def test_with_default_file_in_current_dir(stacks, state):
    s = stacks()
    with_stack(s)
    cp = state.run("with", "--", "sh", "-c", f"test -e {s.t}/db.up", cwd=s.dir, check=False)
    assert cp.returncode == 0, cp
    assert_gone(s)


def test_with_cmd_hanging_past_timeout(stacks):
    s = stacks()
    with_stack(s)
    pidfile = s.t / "cmd.pid"
    t0 = time.monotonic()
    cp = s.hutch("with", "--timeout", "1", "--", "sh", "-c",
                 f"echo $$ > {pidfile}; exec sleep 100", check=False, timeout=30)
    assert cp.returncode != 0 and time.monotonic() - t0 < 20, cp
    assert "timeout" in cp.stderr.lower() or "timed out" in cp.stderr.lower(), cp.stderr
    pid = int(pidfile.read_text())
    wait_for(lambda: not alive(pid), timeout=5, what="CMD killed")
    assert_gone(s)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_with_interrupted(stacks, sig):
    s = stacks()
    with_stack(s)
    pidfile = s.t / "cmd.pid"
    p = s.popen("with", "--", "sh", "-c", f"echo $$ > {pidfile}.tmp; mv {pidfile}.tmp "
                                          f"{pidfile}; exec sleep 100")
    try:
        wait_for(pidfile.exists, timeout=20, what="CMD to run")
        cmd_pid = int(pidfile.read_text())
        assert s.ls() is not None
        p.send_signal(sig)
        out, err = p.communicate(timeout=20)
        assert p.returncode != 0, (p.returncode, err)
        wait_for(lambda: not alive(cmd_pid), timeout=5, what="CMD gone")
        assert_gone(s)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ------------------------------------------------------------------ down


def trapper(s, name, sig="TERM"):
    """A service that stamps /t/NAME.SIG when it gets SIG, then exits."""
    return s.script(name, f"trap '{stamp(name + '.' + sig)}; exit 0' {sig}\n"
                          f"touch /t/{name}.up\n"
                          "while :; do sleep 0.02; done")


def test_down_stops_in_reverse_order(stacks):
    s = stacks()
    s.write(svc(s, "a", trapper(s, "a"), stop_grace_period="5s") +
            svc(s, "b", trapper(s, "b"), depends_on="a", stop_grace_period="5s") +
            svc(s, "c", trapper(s, "c"), depends_on="b", stop_grace_period="5s"))
    s.up()
    wait_for(lambda: all(s.exists(f"{n}.up") for n in "abc"), what="traps set")
    sup = s.supervisor_pid()
    s.down()
    a, b, c = (s.stamps(f"{n}.TERM") for n in "abc")
    assert a and b and c, (a, b, c)
    assert c[0] <= b[0] <= a[0], f"stop times a={a} b={b} c={c}: want c, then b, then a"
    wait_for(lambda: not alive(sup), timeout=5, what="supervisor gone")
    assert_gone(s)


def test_down_sends_stop_signal(stacks):
    s = stacks()
    body = ("trap 'touch /t/got.INT; exit 0' INT\ntrap 'touch /t/got.TERM; exit 0' TERM\n"
            "touch /t/up\nwhile :; do sleep 0.02; done")
    s.write(svc(s, "w", s.script("w", body), stop_signal="SIGINT", stop_grace_period="5s"))
    s.up()
    wait_for(lambda: s.exists("up"), what="traps set")
    t0 = time.monotonic()
    s.down()
    assert s.exists("got.INT") and not s.exists("got.TERM")
    assert time.monotonic() - t0 < 4
    assert_gone(s)


def test_down_kills_after_grace_period(stacks):
    s = stacks()
    body = "trap 'touch /t/got.TERM' TERM\ntouch /t/up\nwhile :; do sleep 0.02; done"
    s.write(svc(s, "stubborn", s.script("w", body), stop_grace_period="1s"))
    s.up()
    wait_for(lambda: s.exists("up"), what="trap set")
    pid = field(s.row("stubborn"), "pid")
    t0 = time.monotonic()
    s.down()
    took = time.monotonic() - t0
    assert s.exists("got.TERM")
    assert 0.9 <= took < 8, f"down took {took:.2f}s with a 1s grace period"
    assert not alive(pid)
    assert_gone(s)
    # -t 0: SIGKILL at once
    s.up()
    t0 = time.monotonic()
    s.down("-t", "0")
    assert time.monotonic() - t0 < 3
    assert_gone(s)


# ------------------------------------------------------------------ SIGKILL of the supervisor


def test_supervisor_sigkill_services_run_on_and_are_adopted(stacks):
    s = stacks()
    s.write(svc(s, "db", s.script("db", f"{stamp('db')}\n"
                                        "while ! test -e /t/crash; do sleep 0.05; done\n"
                                        "rm /t/crash\nexit 1"), restart="on-failure") +
            svc(s, "api", s.script("api", f"{stamp('api')}\n{SLEEP}"), depends_on="db"))
    s.up()
    sup = s.supervisor_pid()
    before = {field(r, "service"): (field(r, "container", "name", "Names"), field(r, "pid"))
              for r in s.ps()}
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not alive(sup), timeout=5, what="the supervisor to die")
    for svcname, (_, pid) in before.items():
        assert alive(pid), f"{svcname} died with its supervisor"
    # stack ps adopts them: the same containers, no duplicate, a new supervisor
    after = {field(r, "service"): (field(r, "container", "name", "Names"), field(r, "pid"))
             for r in s.ps()}
    assert after == before, (before, after)
    names = [field(r, "Names", "name") for r in s.containers()]
    assert sorted(names) == sorted(set(names)) and len(names) == 2, names
    new = s.supervisor_pid()
    assert new != sup and alive(new)
    assert len(s.stamps("db")) == 1 and len(s.stamps("api")) == 1
    # the restart policy still holds for the adopted service
    s.touch("crash")
    wait_for(lambda: len(s.stamps("db")) == 2, timeout=5, what="db restarted after adoption")
    wait_state(s, "db", "running")
    assert restarts_of(s, "db") == 1
    names = [field(r, "Names", "name") for r in s.containers()]
    assert sorted(names) == [f"{s.name}-api-1", f"{s.name}-db-1"], names
    s.down("-t", "0")
    wait_for(lambda: not alive(new), timeout=5, what="the new supervisor gone")
    for _, pid in before.values():
        assert not alive(pid)
    assert_gone(s)


def test_supervisor_sigkill_then_down_adopts_and_leaves_nothing(stacks):
    s = stacks()
    s.write(svc(s, "a", SLEEP) + svc(s, "b", SLEEP, depends_on="a"))
    s.up()
    sup = s.supervisor_pid()
    pids = [field(r, "pid") for r in s.ps()]
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not alive(sup), timeout=5, what="the supervisor to die")
    s.down("-t", "0")
    for pid in pids:
        assert not alive(pid)
    assert_gone(s)


def test_supervisor_sigkill_then_up_adopts_without_duplicates(stacks):
    s = stacks()
    s.write(svc(s, "a", s.script("a", f"{stamp('a')}\n{SLEEP}")))
    s.up()
    sup = s.supervisor_pid()
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not alive(sup), timeout=5, what="the supervisor to die")
    s.up()
    assert len(s.stamps("a")) == 1, "up started a second a"
    assert len(s.containers()) == 1


# ------------------------------------------------------------------ stack file errors

# (name, file text with {T} for the shared dir, line, words the message must have)
ERRORS = [
    ("unknown-section", "[service.ok]\nimage = bb\nvolumes = {T}:/t\ncommand = {OK}\n\n"
     "[services.db]\nimage = bb\n", 6, ["[services.db]", "unknown section"]),
    ("unknown-key", "[service.ok]\nimage = bb\nvolumes = {T}:/t\ncommand = {OK}\n\n"
     "[service.db]\nimag = bb\nimage = bb\n", 7, ["imag", "unknown key"]),
    ("unknown-dependency", "[service.ok]\nimage = bb\nvolumes = {T}:/t\ncommand = {OK}\n\n"
     "[service.db]\nimage = bb\ndepends_on = ok dbb\n", 8, ["depends_on", "dbb"]),
    ("cycle", "[service.ok]\nimage = bb\nvolumes = {T}:/t\ncommand = {OK}\n\n"
     "[service.a]\nimage = bb\ndepends_on = b\n\n[service.b]\nimage = bb\ndepends_on = c\n\n"
     "[service.c]\nimage = bb\ndepends_on = a\n", None, ["cycle", "a", "b", "c", "->"]),
    ("bad-duration", "[service.ok]\nimage = bb\nvolumes = {T}:/t\ncommand = {OK}\n"
     "health_cmd = true\nhealth_interval = 5x\n", 6, ["health_interval", "'5x'", "duration"]),
    ("bad-grace", "[service.ok]\nimage = bb\nvolumes = {T}:/t\ncommand = {OK}\n"
     "stop_grace_period = soon\n", 5, ["stop_grace_period", "soon"]),
    ("bad-size", "[service.ok]\nimage = bb\nvolumes = {T}:/t\ncommand = {OK}\n"
     "memory = 64q\n", 5, ["memory", "64q"]),
    ("bad-signal", "[service.ok]\nimage = bb\nvolumes = {T}:/t\ncommand = {OK}\n"
     "stop_signal = SIGFOO\n", 5, ["stop_signal", "SIGFOO"]),
    ("bad-restart", "[service.ok]\nimage = bb\nvolumes = {T}:/t\ncommand = {OK}\n"
     "restart = sometimes\n", 5, ["restart", "sometimes"]),
    ("bad-on-failure", "[service.ok]\nimage = bb\nvolumes = {T}:/t\ncommand = {OK}\n"
     "restart = on-failure:x\n", 5, ["restart", "on-failure:x"]),
    ("missing-image", "[service.ok]\nimage = bb\nvolumes = {T}:/t\ncommand = {OK}\n\n"
     "[service.noimg]\ncommand = true\n", 6, ["noimg", "image"]),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
@pytest.mark.parametrize("verb", ["up", "with"])
def test_stack_file_errors_name_file_and_line_and_start_nothing(stacks, state, case, verb):
    name, text, line, words = case
    s = stacks()
    ok = s.script("ok", "touch /t/ok-started\nexec sleep 1000")
    s.write(f"[stack]\nname = {s.name}\n" + text.replace("{T}", str(s.t)).replace("{OK}", ok),
            raw=True)
    # the [stack] section is two lines: the case's lines are 2 further down
    if verb == "up":
        cp = s.hutch("up", "-d", "--wait", check=False)
    else:
        cp = s.hutch("with", "--", "touch", str(s.t / "cmd-ran"), check=False)
    assert cp.returncode != 0, cp
    err = cp.stderr
    if line is None:
        assert re.search(r"hutch\.ini:\d+:", err), err
    else:
        assert f"hutch.ini:{line + 2}:" in err, err
    for w in words:
        assert w in err, f"{w!r} not in {err!r}"
    assert not s.exists("ok-started") and not s.exists("cmd-ran")
    assert s.containers() == [] and s.ls() is None
    assert_gone(s)


def test_cycle_message_names_the_cycle(stacks):
    s = stacks()
    s.write("[service.x]\nimage = bb\ndepends_on = y\n\n[service.y]\nimage = bb\n"
            "depends_on = z\n\n[service.z]\nimage = bb\ndepends_on = x\n")
    cp = s.hutch("up", "-d", check=False)
    assert cp.returncode != 0
    m = re.search(r"hutch\.ini:(\d+): depends_on: .*cycle: (\w) -> (\w) -> (\w) -> (\w)",
                  cp.stderr)
    assert m, cp.stderr
    cyc = m.group(2, 3, 4, 5)
    assert cyc[0] == cyc[3] and sorted(cyc[:3]) == ["x", "y", "z"], cyc


# ------------------------------------------------------------------ volumes


def test_named_volume_persists_across_down_up_and_goes_with_down_volumes(stacks):
    s = stacks()
    s.write(svc(s, "db", s.script("db", "echo run >> /data/runs\ncp /data/runs /t/runs\n"
                                        f"{SLEEP}"), volumes="data:/data"))
    s.up()
    assert s.lines("runs") == ["run"]
    s.down("-t", "0")
    s.up()
    assert s.lines("runs") == ["run", "run"], "the volume did not survive down/up"
    s.down("-t", "0", "--volumes")
    assert_gone(s)
    s.up()
    assert s.lines("runs") == ["run"], "down --volumes left the volume's data"
    s.down("-t", "0", "--volumes")
    assert_gone(s)


# ------------------------------------------------------------------ 50 services


def test_fifty_services_up_wait_and_down(stacks):
    s = stacks()
    s.write("".join(svc(s, f"s{i:02d}", "sleep 1000") for i in range(50)))
    t0 = time.monotonic()
    s.up(timeout=120)
    t_up = time.monotonic() - t0
    rows = s.ps()
    assert len(rows) == 50 and all(state_of(s, f"s{i:02d}") == "running" for i in (0, 49))
    assert len(s.containers()) == 50
    t0 = time.monotonic()
    s.down("-t", "0", timeout=120)
    t_down = time.monotonic() - t0
    assert_gone(s)
    print(f"\n50 services ({'rootless' if ROOTLESS else 'root'}): up -d --wait {t_up:.3f}s, "
          f"down -t 0 {t_down:.3f}s")


# ------------------------------------------------------------------ control API


def control_socket(s):
    """The stack's control socket: what stack ls says, else the one socket under
    the state root whose path names the stack."""
    e = s.ls()
    p = field(e, "socket", "control", "control_socket", "api") if e else None
    if p:
        return p
    socks = []
    for dirpath, _, filenames in os.walk(s.state.root):
        for n in filenames:
            full = os.path.join(dirpath, n)
            if s.name in full and Path(full).is_socket():
                socks.append(full)
    assert len(socks) == 1, f"control socket of {s.name}: {socks}"
    return socks[0]


class Control:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.f = self.sock.makefile("rwb")

    def send(self, obj):
        self.f.write(json.dumps(obj).encode() + b"\n")
        self.f.flush()

    def recv(self):
        line = self.f.readline()
        assert line, "the control socket closed"
        return json.loads(line)

    def call(self, obj):
        self.send(obj)
        return self.recv()

    def close(self):
        self.f.close()
        self.sock.close()


def test_control_api_status_stop_start_and_events(stacks):
    s = stacks()
    s.write(svc(s, "web", s.script("web", f"{stamp('starts')}\n{SLEEP}"),
                stop_grace_period="0s") + svc(s, "db", SLEEP))
    s.up()
    path = control_socket(s)
    c = Control(path)
    sub = Control(path)
    try:
        st = c.call({"cmd": "status"})
        text = json.dumps(st)
        assert "web" in text and "db" in text, st
        sub.send({"cmd": "subscribe"})
        r = c.call({"cmd": "stop", "service": "web"})
        assert field(r, "ok", default=True) is not False and "error" not in r, r
        wait_state(s, "web", "stopped")
        r = c.call({"cmd": "start", "service": "web"})
        assert "error" not in r, r
        wait_state(s, "web", "running")
        assert len(s.stamps("starts")) == 2
        got = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            e = sub.recv()
            got.append(e)
            if field(e, "service") == "web" and "start" in ev_kind(e):
                break
        kinds = [ev_kind(e) for e in got if field(e, "service") == "web"]
        assert any("exit" in k or "stop" in k for k in kinds), got
        assert any("start" in k for k in kinds), got
        r = c.call({"cmd": "stop", "service": "nosuch"})
        assert "nosuch" in json.dumps(r) and ("error" in r or field(r, "ok") is False), r
    finally:
        c.close()
        sub.close()
