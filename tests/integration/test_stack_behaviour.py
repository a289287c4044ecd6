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
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import wait_for
from stackutil import (ROOTLESS, Control, Events, Lines, Stacks, alive, ev_time,
                       last_exit_code, processes_naming)


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


SLEEP = "exec sleep 1000"  # in a script: pid 1 without a handler, `down -t 0` kills it
SLEEPER = "sleep 1000"  # the same as a command


def state_of(s, service):
    return s.row(service).get("state")


def health_of(s, service):
    return s.row(service).get("health")


def restarts_of(s, service):
    return s.row(service).get("restarts")


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
    assert s.container_names() == [f"{s.name}-a-1", f"{s.name}-b-1"]
    # the supervisor's own record of the starts agrees
    sa, sb = s.row("a")["started"], s.row("b")["started"]
    assert sa <= sb, (s.row("a"), s.row("b"))
    s.down("-t", "0")
    assert_gone(s)


def test_healthy_dependency_is_probed_healthy_before_dependent_starts(stacks):
    s = stacks()
    # a becomes ready 0.5 s after its start; its probe leaves /t/a.ok when it passes.
    # b records, as its first act, whether a had been seen healthy by then.
    s.write(svc(s, "a", s.script("a", f"sleep 0.5\ntouch /t/a.ready\n{SLEEP}"),
                health_cmd=s.script("probe", "test -e /t/a.ready && touch /t/a.ok"),
                health_interval="100ms", health_start_period="20s",
                health_start_interval="100ms") +
            svc(s, "b", s.script("b", "if test -e /t/a.ok; then echo after > /t/b; "
                                      f"else echo early > /t/b; fi\n{SLEEP}"),
                depends_on="a:healthy"))
    t0 = time.monotonic()
    s.up()
    assert time.monotonic() - t0 >= 0.5
    got = wait_for(lambda: s.lines("b"), what="b's first act")
    assert got == ["after"], f"b started before a was healthy: {got}"
    assert health_of(s, "a") == "healthy"


def test_completed_dependency_ran_to_exit_0_before_dependent_starts(stacks):
    s = stacks()
    s.write(svc(s, "job", s.script("job", "sleep 0.3\necho done > /t/job.done\nexit 0")) +
            svc(s, "app", s.script("app", "cat /t/job.done > /t/app 2>/dev/null || "
                                          f"echo early > /t/app\n{SLEEP}"),
                depends_on="job:completed"))
    s.up()  # a one-shot job that exited 0 counts as up
    got = wait_for(lambda: s.lines("app"), what="app's first act")
    assert got == ["done"], f"app started before job completed: {got}"
    assert state_of(s, "job") == "exited", s.ps()
    assert last_exit_code(s.row("job")) == 0, s.row("job")


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
        assert r.get("pid") == 0, r
    # the dependents have no container that ever ran
    ran = s.container_names()
    assert all("-api-" not in n and "-web-" not in n for n in ran), ran


def test_missing_image_fails_with_runtime_message_and_dependents_do_not_start(stacks):
    s = stacks()
    s.write(svc(s, "db", SLEEPER, image="nosuch-image:1") +
            svc(s, "api", s.script("api", f"touch /t/api\n{SLEEP}"), depends_on="db") +
            svc(s, "other", s.script("other", f"touch /t/other\n{SLEEP}")))
    cp = s.up(check=False)
    assert cp.returncode != 0, cp
    assert "image 'nosuch-image:1' not found" in cp.stderr, cp.stderr
    assert not s.exists("api")
    if s.ls() is not None and s.ls().get("status") == "up":
        # found when starting it: db failed, its dependent never started
        assert "image 'nosuch-image:1' not found" in json.dumps(s.row("db")), s.row("db")
        assert state_of(s, "api") == "failed" and s.row("api")["pid"] == 0, s.row("api")
    else:
        # found before anything started: nothing did
        assert s.container_names() == [] and not s.exists("other")
    # the message names the service, or (docs/cli.md: "the line of the key, or of
    # the [service.NAME] header for the image") the line of [service.db]
    assert re.search(r"\bdb\b", cp.stderr) or "hutch.ini:4: image" in cp.stderr, cp.stderr


def test_service_that_cannot_start_fails_with_runtime_message_and_dependents_wait(stacks):
    """A start that fails in the runtime (no such command): the service is failed
    with the runtime's words, not retried, its dependents are not started, the
    others run."""
    s = stacks()
    s.write(svc(s, "db", "no-such-program-xyz", restart="always") +
            svc(s, "api", s.script("api", f"touch /t/api\n{SLEEP}"), depends_on="db") +
            svc(s, "other", s.script("other", f"touch /t/other\n{SLEEP}")))
    cp = s.up(check=False)
    assert cp.returncode != 0, cp
    assert "db" in cp.stderr and "no-such-program-xyz" in cp.stderr, cp.stderr
    r = s.row("db")
    assert r["state"] == "failed" and r["restarts"] == 0, r
    assert "no-such-program-xyz" in r.get("why", ""), r
    a = s.row("api")
    assert a["state"] == "failed" and a["pid"] == 0 and "db" in a.get("why", ""), a
    assert not s.exists("api")
    wait_for(lambda: s.exists("other"), what="other to run")
    assert state_of(s, "other") == "running"


# ------------------------------------------------------------------ restart policies


def test_restart_no_leaves_the_service_exited(stacks):
    s = stacks()
    s.write(svc(s, "once", s.script("once", f"{stamp('starts')}\nexit 5"), restart="no") +
            svc(s, "keep", SLEEPER))
    s.up(wait=False)
    wait_state(s, "once", "exited")
    r = s.row("once")
    assert restarts_of(s, "once") == 0, r
    assert last_exit_code(r) == 5, r
    assert len(s.stamps("starts")) == 1


def test_restart_always_restarts_after_exit_0(stacks):
    s = stacks()
    s.write(svc(s, "loop", s.script("loop", f"{stamp('starts')}\nexit 0"), restart="always"))
    s.up(wait=False)
    wait_for(lambda: len(s.stamps("starts")) >= 4, timeout=10, what="4 runs")
    wait_for(lambda: restarts_of(s, "loop") >= 3, what="restarts >= 3 in stack ps")


def test_on_failure_n_restarts_exactly_n_times_then_exited(stacks):
    s = stacks()
    s.write(svc(s, "crash", s.script("crash", f"{stamp('starts')}\nexit 4"),
                restart="on-failure:3") +
            svc(s, "ok", s.script("ok", f"{stamp('ok')}\nexit 0"), restart="on-failure"))
    s.up(wait=False)
    wait_state(s, "crash", "exited", timeout=10)  # 0.1 + 0.2 + 0.4 s of backoff
    r = s.row("crash")
    assert restarts_of(s, "crash") == 3, r
    assert last_exit_code(r) == 4, r
    assert len(s.stamps("starts")) == 4, s.lines("starts")
    # an exit 0 is not a failure: on-failure leaves it exited after one run
    wait_state(s, "ok", "exited")
    assert len(s.stamps("ok")) == 1 and restarts_of(s, "ok") == 0
    # and nothing runs again: the next delay (800 ms) passes with no new start
    time.sleep(1.2)
    assert len(s.stamps("starts")) == 4 and len(s.stamps("ok")) == 1


def test_unless_stopped_stays_down_after_stack_stop_and_starts_again(stacks):
    s = stacks()
    s.write(svc(s, "web", s.script("web", f"{stamp('starts')}\n{SLEEP}"),
                restart="unless-stopped", stop_grace_period="0s") +
            svc(s, "other", SLEEPER))
    s.up()
    wait_for(lambda: len(s.stamps("starts")) == 1, what="web's first run")
    pid = s.row("web")["pid"]
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
    # the first run waits for /t/go, so that the test has subscribed to the events
    # before the first crash; every later run crashes at once
    s.write(svc(s, "crash", s.script("crash", f"{stamp('starts')}\n"
                                              "while ! test -e /t/go; do sleep 0.02; done\n"
                                              "exit 1"),
                restart="on-failure:5"))
    s.up()
    sub = Control(s.socket_path()).subscribe()
    try:
        s.touch("go")
        got = sub.events_until(lambda e: e.get("event") == "exited", n=6, timeout=15)
    finally:
        sub.close()
    wait_state(s, "crash", "exited")
    want = [100, 200, 400, 800, 1600]
    delays = [e["delay_ms"] for e in got if e.get("event") == "restarting"]
    assert delays == want, f"restart delays {delays}, Docker's are {want}"
    assert [e["restarts"] for e in got if e.get("event") == "restarting"] == [1, 2, 3, 4, 5]
    # measured: from each exit to the next start, the delay and no more than a
    # container's start (generous: 2 shared cores). The delay runs from the exit
    # itself, and an exited event is stamped when the supervisor got to it: a
    # loaded machine makes the gap look shorter by that much (10%, 20 ms at least).
    exits = [ev_time(e) for e in got if e.get("event") == "exited"]
    starts = [ev_time(e) for e in got if e.get("event") == "started"]
    assert len(exits) == 6 and len(starts) == 5, got
    gaps = [round((b - a) * 1000) for a, b in zip(exits, starts)]
    for g, w in zip(gaps, want):
        assert w - max(20, w // 10) <= g <= w + 300, \
            f"exit -> start gaps {gaps} ms, want {want} ms"
    # and as the service saw it: its starts, 10 ms /proc/uptime steps
    st = s.stamps("starts")
    assert len(st) == 6, st
    sgaps = [b - a for a, b in zip(st[1:], st[2:])]
    for g, w in zip(sgaps, want[1:]):
        assert w / 1000 - 0.02 <= g <= w / 1000 + 0.4, f"start -> start gaps {sgaps}"


def test_crash_loop_shown_in_stack_ps_with_restarts_and_last_exit(stacks):
    s = stacks()
    s.write(svc(s, "loop", s.script("loop", f"{stamp('starts')}\nexit 2"), restart="always") +
            svc(s, "fine", SLEEPER))
    s.up(wait=False)
    wait_for(lambda: restarts_of(s, "loop") >= 3, what="3 restarts")
    r = s.row("loop")
    assert last_exit_code(r) == 2 and "2" in r["last_exit"]["text"], r
    table = s.hutch("stack", "ps").stdout
    line = [l for l in table.splitlines() if f"{s.name}-loop-1" in l]
    assert line and re.search(r"Restarting \(2\)", line[0]), table
    assert re.search(r"\b[3-9]\b", line[0].split("Restarting")[0]), f"restarts: {line[0]}"


def test_up_wait_on_a_crash_loop_times_out_saying_how_it_last_exited(stacks):
    s = stacks()
    # never healthy: up --wait waits for it through its restarts; after 4.5 s it is
    # in its 3.2 s backoff (0.1 + 0.2 + 0.4 + 0.8 + 1.6 = 3.1 s of delays before,
    # plus five starts), far from either end of it
    s.write(svc(s, "loop", s.script("loop", "exit 2"), restart="always",
                health_cmd="true", health_interval="1h", health_start_interval="1h") +
            svc(s, "fine", SLEEPER))
    t0 = time.monotonic()
    cp = s.up("--wait-timeout", "4.5", check=False)
    assert cp.returncode != 0 and time.monotonic() - t0 >= 4.4, cp
    assert "loop" in cp.stderr and "restarting" in cp.stderr and \
        "exited with code 2" in cp.stderr, cp.stderr


# ------------------------------------------------------------------ health checks


def test_health_cmd_becomes_healthy_when_a_file_appears(stacks):
    s = stacks()
    s.write(svc(s, "web", SLEEPER, health_cmd="test -e /t/ready", health_interval="100ms"))
    s.up(wait=False)
    wait_state(s, "web", "running")
    # before the file: starting, or unhealthy after 3 failed probes; never healthy
    assert health_of(s, "web") in ("starting", "unhealthy"), s.row("web")
    s.touch("ready")
    wait_health(s, "web", "healthy", timeout=5)
    assert "(healthy)" in s.hutch("stack", "ps").stdout


def test_container_ps_shows_a_stack_services_health(stacks, state):
    """A service's container is an ordinary one: `hutch ps` shows its health as
    `docker ps` shows a compose service's ("Up 2 seconds (healthy)")."""
    s = stacks()
    s.write(svc(s, "web", SLEEPER, health_cmd="true", health_interval="100ms"))
    s.up()
    assert health_of(s, "web") == "healthy"
    line = [l for l in state.run("ps").stdout.splitlines() if f"{s.name}-web-1" in l]
    assert line and "(healthy)" in line[0], line


def health_sequence(events):
    """The health of each health_status event, in order."""
    return [e["health"] for e in events if e.get("event") == "health_status"]


def test_health_flaps_healthy_unhealthy_healthy(stacks):
    s = stacks()
    s.write(svc(s, "flap", SLEEPER, health_cmd=s.script("p", "echo probe-says-hi\ntest -e /t/ok"),
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
        ev.wait(lambda e: e.get("health") == "unhealthy", what="an unhealthy event")
        wait_for(lambda: health_sequence(ev.events())[-1:] == ["healthy"], timeout=5,
                 what="the last health event to be healthy")
        seq = health_sequence(ev.events())
        assert seq == ["unhealthy", "healthy"], seq
        bad = [e for e in ev.events() if e.get("health") == "unhealthy"]
        assert "probe-says-hi" in bad[0].get("output", ""), bad
    finally:
        ev.close()


def test_health_start_period_and_start_interval(stacks):
    s = stacks()
    # interval 1h: only the start interval (100 ms) can find it healthy in time;
    # retries 1: any failure counted would make it unhealthy at once
    s.write(svc(s, "slow", SLEEPER,
                health_cmd=s.script("p", f"{stamp('probes')}\ntest -e /t/ok"),
                health_interval="1h", health_retries="1", health_start_period="30s",
                health_start_interval="100ms"))
    s.up(wait=False)
    wait_for(lambda: len(s.stamps("probes")) >= 5, timeout=5, what="5 probes")
    assert health_of(s, "slow") == "starting", s.row("slow")
    p = s.stamps("probes")
    # 100 ms apart plus a probe's exec (loose on a loaded machine: 1h is the other)
    assert all(0.05 <= b - a <= 2 for a, b in zip(p, p[1:])), p
    s.touch("ok")
    wait_health(s, "slow", "healthy", timeout=3)


def test_health_start_interval_ignored_after_start_period(stacks):
    """Without a start period, health_interval alone times the probes."""
    s = stacks()
    s.write(svc(s, "plain", SLEEPER, health_cmd=s.script("p", f"{stamp('probes')}\ntrue"),
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
            svc(s, "closed", SLEEPER, health_tcp="7001", health_interval="100ms",
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
    cp = s.up(check=False)
    # up --wait fails naming the unhealthy service and what its probe got
    assert cp.returncode != 0 and "bad" in cp.stderr, cp.stderr
    wait_health(s, "web", "healthy", timeout=5)
    assert health_of(s, "bad") == "unhealthy"
    assert "404" in s.row("bad")["last_probe"]["output"], s.row("bad")
    assert "404" in cp.stderr, f"up --wait should say what the probe got: {cp.stderr!r}"


def test_up_wait_fails_naming_service_and_health_output_on_timeout(stacks):
    s = stacks()
    s.write(svc(s, "never", SLEEPER, health_cmd=s.script("p", "echo db-not-ready-42\nexit 1"),
                health_interval="100ms", health_start_period="1h",
                health_start_interval="100ms") +
            svc(s, "fine", SLEEPER))
    t0 = time.monotonic()
    cp = s.up("--wait-timeout", "1", check=False)
    took = time.monotonic() - t0
    assert cp.returncode != 0, cp
    assert 1.0 <= took < 10, took
    assert "never" in cp.stderr and "db-not-ready-42" in cp.stderr, cp.stderr
    assert "fine" not in cp.stderr.replace("never", ""), cp.stderr


def test_up_wait_fails_at_once_when_unhealthy(stacks):
    s = stacks()
    s.write(svc(s, "sick", SLEEPER, health_cmd=s.script("p", "echo disk-full >&2\nexit 1"),
                health_interval="100ms", health_retries="2"))
    t0 = time.monotonic()
    cp = s.up("--wait-timeout", "60", check=False)
    assert cp.returncode != 0 and time.monotonic() - t0 < 10, cp
    assert "sick" in cp.stderr and "disk-full" in cp.stderr, cp.stderr


# ------------------------------------------------------------------ hutch with


def with_stack(s):
    s.write(svc(s, "db", s.script("db", "trap 'exit 0' TERM\ntouch /t/db.up\n"
                                        "while :; do sleep 0.05; done"),
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
    assert cp.returncode == 124 and time.monotonic() - t0 < 20, cp  # as timeout(1)
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
        assert p.returncode == 128 + sig, (p.returncode, err)
        wait_for(lambda: not alive(cmd_pid), timeout=5, what="CMD gone")
        assert_gone(s)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_with_returns_128_plus_signal_of_a_killed_cmd(stacks):
    s = stacks()
    with_stack(s)
    cp = s.hutch("with", "--", "sh", "-c", "kill -KILL $$", check=False)
    assert cp.returncode == 128 + 9, cp
    assert_gone(s)


def test_with_does_not_run_cmd_when_the_stack_cannot_come_up(stacks):
    s = stacks()
    s.write(svc(s, "migrate", s.script("m", "exit 3")) +
            svc(s, "api", SLEEPER, depends_on="migrate:completed"))
    cp = s.hutch("with", "--", "touch", str(s.t / "cmd-ran"), check=False)
    assert cp.returncode != 0 and not s.exists("cmd-ran"), cp
    assert "migrate" in cp.stderr and "3" in cp.stderr, cp.stderr
    assert_gone(s)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_with_interrupted_while_the_stack_comes_up(stacks, sig):
    s = stacks()
    s.write(svc(s, "slow", s.script("slow", f"touch /t/slow.up\n{SLEEP}"),
                health_cmd="false", health_interval="100ms", health_start_period="1h",
                health_start_interval="100ms", stop_grace_period="100ms"))
    p = s.popen("with", "--", "touch", str(s.t / "cmd-ran"))
    try:
        wait_for(lambda: s.exists("slow.up"), timeout=20, what="the stack to start")
        p.send_signal(sig)
        out, err = p.communicate(timeout=20)
        assert p.returncode == 128 + sig, (p.returncode, err)
        assert not s.exists("cmd-ran")
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
    pid = s.row("stubborn")["pid"]
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


def test_down_of_a_crash_loop_at_any_moment_returns(stacks):
    """down -t 0 lands at moments spread over a crash loop's first second (a
    start, an exit, a backoff): each one returns, and leaves nothing."""
    s = stacks()
    s.write(svc(s, "loop", "sh -c 'exit 2'", restart="always") + svc(s, "fine", SLEEPER))
    for k in range(20):
        s.up(wait=False)
        time.sleep(k * 0.03)  # where the down lands, not a wait for readiness
        t0 = time.monotonic()
        try:
            s.down("-t", "0", timeout=15)
        except AssertionError as e:
            raise AssertionError(f"down -t 0 hung {k * 0.03:.3f}s into a crash loop "
                                 f"(stack ps: {s.hutch('stack', 'ps', check=False).stdout}): "
                                 f"{e}") from None
        assert time.monotonic() - t0 < 5
        assert_gone(s)


# ------------------------------------------------------------------ SIGKILL of the supervisor


def test_supervisor_sigkill_services_run_on_and_are_adopted(stacks):
    s = stacks()
    s.write(svc(s, "db", s.script("db", f"{stamp('db')}\n"
                                        "while ! test -e /t/crash; do sleep 0.05; done\n"
                                        "rm /t/crash\nexit 1"), restart="on-failure") +
            svc(s, "api", s.script("api", f"{stamp('api')}\n{SLEEP}"), depends_on="db"))
    s.up()
    wait_for(lambda: s.stamps("db") and s.stamps("api"), what="both services' first act")
    sup = s.supervisor_pid()
    before = {r["service"]: (r["container"], r["id"], r["pid"]) for r in s.ps()}
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not alive(sup), timeout=5, what="the supervisor to die")
    for svcname, (_, _, pid) in before.items():
        assert alive(pid), f"{svcname} died with its supervisor"
    # stack ps adopts them: the same containers, no duplicate, a new supervisor
    after = {r["service"]: (r["container"], r["id"], r["pid"]) for r in s.ps()}
    assert after == before, (before, after)
    assert s.container_names() == [f"{s.name}-api-1", f"{s.name}-db-1"]
    new = s.supervisor_pid()
    assert new != sup and alive(new)
    assert len(s.stamps("db")) == 1 and len(s.stamps("api")) == 1
    # the restart policy still holds for the adopted service
    s.touch("crash")
    wait_for(lambda: len(s.stamps("db")) == 2, timeout=5, what="db restarted after adoption")
    wait_state(s, "db", "running")
    assert restarts_of(s, "db") == 1
    assert s.container_names() == [f"{s.name}-api-1", f"{s.name}-db-1"]
    assert s.row("db")["id"] == before["db"][1], "db's container was replaced, not restarted"
    s.down("-t", "0")
    wait_for(lambda: not alive(new), timeout=5, what="the new supervisor gone")
    for _, _, pid in before.values():
        assert not alive(pid)
    assert_gone(s)


def test_supervisor_sigkill_then_down_adopts_and_leaves_nothing(stacks):
    s = stacks()
    s.write(svc(s, "a", SLEEPER) + svc(s, "b", SLEEPER, depends_on="a"))
    s.up()
    sup = s.supervisor_pid()
    pids = [r["pid"] for r in s.ps()]
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
    wait_for(lambda: s.stamps("a"), what="a's first act")
    sup = s.supervisor_pid()
    first = s.row("a")
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not alive(sup), timeout=5, what="the supervisor to die")
    s.up()
    again = s.row("a")
    assert (again["id"], again["pid"]) == (first["id"], first["pid"]), (first, again)
    assert alive(first["pid"]) and len(s.stamps("a")) == 1, "up started a second a"
    assert len(s.containers()) == 1


def test_supervisor_sigkill_during_a_crash_loop_keeps_its_restart_count(stacks):
    s = stacks()
    s.write(svc(s, "loop", s.script("loop", f"{stamp('starts')}\nexit 1"),
                restart="on-failure:30"))
    s.up(wait=False)
    wait_for(lambda: restarts_of(s, "loop") >= 3, timeout=10, what="3 restarts")
    sup = s.supervisor_pid()
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not alive(sup), timeout=5, what="the supervisor to die")
    n = len(s.stamps("starts"))
    # adopted by stack ps: the count goes on from where it was, not from 0
    r = s.row("loop")
    assert r["restarts"] >= n - 1, (r, n)
    wait_for(lambda: len(s.stamps("starts")) > n, timeout=10, what="a restart after adoption")
    assert s.row("loop")["restarts"] >= n, s.row("loop")
    assert s.container_names() == [f"{s.name}-loop-1"]


def test_service_exiting_while_no_supervisor_runs_is_restarted_on_adoption(stacks):
    s = stacks()
    s.write(svc(s, "db", s.script("db", f"{stamp('db')}\n"
                                        "while ! test -e /t/crash; do sleep 0.05; done\n"
                                        "rm /t/crash\nexit 3"), restart="on-failure"))
    s.up()
    wait_for(lambda: s.stamps("db"), what="db's first act")
    sup = s.supervisor_pid()
    pid = s.row("db")["pid"]
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not alive(sup), timeout=5, what="the supervisor to die")
    s.touch("crash")
    wait_for(lambda: not alive(pid), timeout=5, what="db to exit with no supervisor")
    # the next command adopts the stack: the exit is seen and the policy applies
    s.ps()
    wait_for(lambda: len(s.stamps("db")) == 2, timeout=10, what="db restarted on adoption")
    wait_state(s, "db", "running")
    r = s.row("db")
    assert r["restarts"] == 1 and last_exit_code(r) == 3, r
    assert s.container_names() == [f"{s.name}-db-1"]


def test_supervisor_sigkill_while_a_dependent_waits(stacks):
    s = stacks()
    s.write(svc(s, "a", s.script("a", f"{stamp('a')}\n{SLEEP}"), health_cmd="test -e /t/go",
                health_interval="100ms", health_start_period="1h",
                health_start_interval="100ms") +
            svc(s, "b", s.script("b", f"{stamp('b')}\n{SLEEP}"), depends_on="a:healthy"))
    s.up(wait=False)
    wait_for(lambda: s.stamps("a"), what="a to run")
    assert state_of(s, "b") == "waiting"
    sup = s.supervisor_pid()
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not alive(sup), timeout=5, what="the supervisor to die")
    s.touch("go")
    s.up()  # adopts a, finds it healthy, starts b: once
    wait_for(lambda: s.stamps("b"), what="b to run")
    assert len(s.stamps("a")) == 1 and len(s.stamps("b")) == 1
    assert s.container_names() == [f"{s.name}-a-1", f"{s.name}-b-1"]


def test_supervisor_sigkill_during_a_stop_the_stop_goes_on(stacks):
    s = stacks()
    body = "trap 'touch /t/got.TERM' TERM\ntouch /t/up\nwhile :; do sleep 0.02; done"
    s.write(svc(s, "w", s.script("w", body), restart="always", stop_grace_period="1s"))
    s.up()
    wait_for(lambda: s.exists("up"), what="trap set")
    pid = s.row("w")["pid"]
    sup = s.supervisor_pid()
    s.hutch("stack", "stop", "w")
    wait_for(lambda: s.exists("got.TERM"), what="the stop signal")
    os.kill(sup, signal.SIGKILL)
    wait_for(lambda: not alive(sup), timeout=5, what="the supervisor to die")
    s.ps()  # adopt
    wait_for(lambda: not alive(pid), timeout=5, what="w killed after its grace period")
    wait_state(s, "w", "stopped")
    time.sleep(0.3)  # a restart (always) would come after 100 ms
    assert state_of(s, "w") == "stopped", s.row("w")


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


def test_every_error_of_a_file_is_listed_by_line(stacks):
    """As docs/stack-file.md's example: all problems at once, each FILE:LINE: KEY."""
    s = stacks()
    s.write("[service.db]\nimage = bb\n\n[service.web]\nimag = app:1\ndepends_on = dbb\n"
            "health_cmd = true\nhealth_interval = 5x\n", raw=True)
    cp = s.hutch("up", "-d", check=False)
    assert cp.returncode != 0
    lines = [l for l in cp.stderr.splitlines() if re.match(r"\S*hutch\.ini:\d+:", l)]
    got = [(int(re.match(r"\S*hutch\.ini:(\d+):", l).group(1)), l) for l in lines]
    assert [n for n, _ in got] == [4, 5, 6, 8], cp.stderr
    assert "no image" in got[0][1] and "imag" in got[1][1] and "dbb" in got[2][1] and \
        "'5x'" in got[3][1], cp.stderr
    assert "4 errors" in cp.stderr, cp.stderr


def test_required_variable_unset_is_an_error_before_anything_starts(stacks, state):
    s = stacks()
    s.write(svc(s, "a", s.script("a", f"touch /t/a\n{SLEEP}")) +
            "[service.b]\nimage = ${REGISTRY:?set REGISTRY first}\n")
    env = {k: v for k, v in os.environ.items() if k != "REGISTRY"}
    cp = s.hutch("up", "-d", "--wait", check=False, env=env)
    assert cp.returncode != 0 and "REGISTRY" in cp.stderr, cp.stderr
    assert re.search(r"hutch\.ini:\d+: image:", cp.stderr), cp.stderr
    assert not s.exists("a") and s.container_names() == []


# ------------------------------------------------------------------ volumes


def test_named_volume_persists_across_down_up_and_goes_with_down_volumes(stacks):
    s = stacks()
    s.write(svc(s, "db", s.script("db", "echo run >> /data/runs\ncp /data/runs /t/runs.tmp\n"
                                        f"mv /t/runs.tmp /t/runs\n{SLEEP}"),
                volumes="data:/data"))

    def runs_after_up():
        (s.t / "runs").unlink(missing_ok=True)
        s.up()
        return wait_for(lambda: s.lines("runs"), what="db to copy its volume's file")

    assert runs_after_up() == ["run"]
    s.down("-t", "0")
    assert_gone(s)
    assert runs_after_up() == ["run", "run"], "the volume did not survive down/up"
    s.down("-t", "0", "--volumes")
    assert_gone(s)
    assert runs_after_up() == ["run"], "down --volumes left the volume's data"
    s.down("-t", "0", "--volumes")
    assert_gone(s)
    assert not (s.data_dir() / "volumes").exists()


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


def test_stack_ls_shows_name_file_supervisor_and_counts(stacks):
    s = stacks()
    s.write(svc(s, "a", SLEEPER) + svc(s, "b", SLEEPER, replicas="2") +
            svc(s, "job", s.script("job", "exit 0")))
    s.up()
    wait_state(s, "job", "exited")  # up --wait may have seen it running: as good
    e = s.ls()
    assert e["file"] == str(s.file) and e["status"] == "up", e
    assert alive(e["supervisor"])
    assert (e["running"], e["replicas"]) == (3, 4), e
    table = s.state.run("stack", "ls").stdout
    line = [l for l in table.splitlines() if l.startswith(s.name + " ")]
    assert line and "3/4" in line[0] and str(e["supervisor"]) in line[0], table
    s.down("-t", "0")
    assert_gone(s)


# ------------------------------------------------------------------ control API


def test_control_api_status_stop_start_and_events(stacks):
    """docs/api.md: JSON lines over RUN/stacks/NAME/control.sock, driven with the
    standard library only."""
    s = stacks()
    s.write(svc(s, "web", s.script("web", f"{stamp('starts')}\n{SLEEP}"),
                stop_grace_period="0s") + svc(s, "db", SLEEPER))
    s.up()
    wait_for(lambda: s.stamps("starts"), what="web's first act")
    path = s.socket_path()
    assert path.is_socket(), path
    c = Control(path)
    sub = Control(path).subscribe()
    try:
        st = c.call({"cmd": "status"})
        assert st["ok"] is True and st["stack"] == s.name, st
        assert st["pid"] == s.supervisor_pid()
        reps = {r["service"]: r for r in st["replicas"]}
        assert sorted(reps) == ["db", "web"], st
        assert reps["web"]["state"] == "running" and reps["web"]["container"] == f"{s.name}-web-1"
        r = c.call({"cmd": "stop", "services": ["web"]})
        assert r.get("ok") is True, r
        got = sub.events_until(lambda e: e.get("service") == "web" and
                               e.get("event") == "stopped")
        assert any(e.get("event") == "exited" for e in got), got
        wait_state(s, "web", "stopped")
        r = c.call({"cmd": "start", "services": ["web"]})
        assert r.get("ok") is True, r
        sub.events_until(lambda e: e.get("service") == "web" and e.get("event") == "started")
        wait_state(s, "web", "running")
        wait_for(lambda: len(s.stamps("starts")) == 2, what="a second run after start")
        assert c.call({"cmd": "ready"}) == {"ok": True, "verdict": "ready"}
        r = c.call({"cmd": "restart", "services": ["web"]})
        assert r.get("ok") is True, r
        got = sub.events_until(lambda e: e.get("service") == "web" and
                               e.get("event") == "started")
        assert [e["event"] for e in got if e.get("service") == "web"][0] == "stopping", got
        wait_for(lambda: len(s.stamps("starts")) == 3, what="a third run after restart")
        assert s.row("web")["restarts"] == 0
        r = c.call({"cmd": "stop", "services": ["nosuch"]})
        assert r.get("ok") is False and "nosuch" in r.get("error", ""), r
        r = c.call({"cmd": "frobnicate"})
        assert r.get("ok") is False and "frobnicate" in r.get("error", ""), r
        # the connection is still usable after errors
        assert c.call({"cmd": "status"})["ok"] is True
    finally:
        c.close()
        sub.close()


def test_control_api_down(stacks):
    s = stacks()
    s.write(svc(s, "a", SLEEPER) + svc(s, "b", SLEEPER, depends_on="a"))
    s.up()
    sup = s.supervisor_pid()
    pids = [r["pid"] for r in s.ps()]
    c = Control(s.socket_path())
    try:
        r = c.call({"cmd": "down", "timeout": 0})
        assert r == {"ok": True}, r
    finally:
        c.close()
    wait_for(lambda: not alive(sup), timeout=5, what="the supervisor to exit after down")
    assert not any(alive(p) for p in pids)
    assert_gone(s)


# ------------------------------------------------------------------ replicas, notify, logs


def test_replicas_are_containers_of_their_own_and_dependents_wait_for_all(stacks):
    s = stacks()
    s.write(svc(s, "web", SLEEPER, replicas="2", health_cmd="true", health_interval="100ms") +
            svc(s, "edge", SLEEPER, depends_on="web:healthy"))
    s.up()
    rows = s.rows("web")
    assert sorted(r["container"] for r in rows) == [f"{s.name}-web-1", f"{s.name}-web-2"]
    assert all(r["state"] == "running" and r["health"] == "healthy" for r in rows), rows
    assert len({r["pid"] for r in rows}) == 2
    edge = s.row("edge")["started"]
    assert all(r["started"] <= edge for r in rows), (rows, edge)
    assert s.container_names() == sorted([f"{s.name}-edge-1", f"{s.name}-web-1",
                                          f"{s.name}-web-2"])


NOTIFY_C = r"""
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(int argc, char **argv)
{
	const char *path = getenv("NOTIFY_SOCKET");
	const char *msg = argc > 1 ? argv[1] : "READY=1";
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (!path || strlen(path) >= sizeof(a.sun_path))
		return 2;
	strcpy(a.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	return sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&a, sizeof(a)) < 0;
}
"""


def test_notify_ready_makes_a_service_healthy(stacks):
    s = stacks()
    src = s.dir / "notify.c"
    src.write_text(NOTIFY_C)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(s.t / "notify"), str(src)], check=True,
                   capture_output=True)
    s.write(svc(s, "db", s.script("db", "echo \"$NOTIFY_SOCKET\" > /t/ns\n"
                                        "while ! test -e /t/go; do sleep 0.02; done\n"
                                        f"/t/notify READY=1 || touch /t/notify-failed\n{SLEEP}"),
                notify="true") +
            svc(s, "api", s.script("api", f"touch /t/api\n{SLEEP}"), depends_on="db:healthy"))
    s.up(wait=False)
    wait_for(lambda: s.lines("ns"), what="db to start")
    assert s.lines("ns")[0].strip(), "no NOTIFY_SOCKET in db's environment"
    # the container may run before the supervisor has heard its start answered
    wait_for(lambda: health_of(s, "db") == "starting", timeout=5, what="db starting")
    assert not s.exists("api")
    s.touch("go")
    wait_health(s, "db", "healthy", timeout=5)
    assert not s.exists("notify-failed")
    wait_for(lambda: s.exists("api"), what="api to start once db is ready")


def test_stack_logs_by_service(stacks):
    s = stacks()
    s.write(svc(s, "a", s.script("a", f"echo hello-from-a\necho oops-a >&2\n{SLEEP}")) +
            svc(s, "b", s.script("b", f"echo hello-from-b\n{SLEEP}")))
    s.up()
    wait_for(lambda: "hello-from-b" in s.hutch("stack", "logs").stdout, what="b's line")
    out = wait_for(lambda: (lambda cp: "hello-from-a" in cp.stdout + cp.stderr and
                            "oops-a" in cp.stdout + cp.stderr and cp)(s.hutch("stack", "logs")),
                   what="a's lines")
    text = out.stdout + out.stderr
    assert re.search(r"^a\s*\| hello-from-a$", text, re.M), text
    assert re.search(r"^b\s*\| hello-from-b$", text, re.M), text
    only_b = s.hutch("stack", "logs", "b")
    assert "hello-from-b" in only_b.stdout and "hello-from-a" not in only_b.stdout + only_b.stderr
    # and the container's own log, by its name
    assert "hello-from-a" in s.state.run("logs", f"{s.name}-a-1").stdout


def crash_on_demand(s):
    """A service that prints run-N (N: its run, counted in /t) and exits 1 when
    /t/crash appears, restarted on failure."""
    return svc(s, "r", s.script("r", "n=$(( $(cat /t/n 2>/dev/null || echo 0) + 1 ))\n"
                                     "echo $n > /t/n\necho run-$n\n"
                                     "while ! test -e /t/crash; do sleep 0.02; done\n"
                                     "rm -f /t/crash\nexit 1"), restart="on-failure")


def crash_twice(s):
    for k in (2, 3):
        s.touch("crash")
        wait_for(lambda: s.lines("n") == [str(k)] and s.row("r")["state"] == "running",
                 what=f"run {k}")


def test_stack_logs_keep_the_output_of_every_run(stacks):
    """As `docker logs` of a restarted container: a crash's output is what the
    user came to read, so a restart must not throw the earlier runs' lines away."""
    s = stacks()
    s.write(crash_on_demand(s))
    s.up()
    wait_for(lambda: s.lines("n") == ["1"], what="run 1")
    crash_twice(s)
    want = ["run-1", "run-2", "run-3"]
    got = wait_for(lambda: (lambda o: o if "run-3" in o else None)(
        s.hutch("stack", "logs").stdout), what="run-3 in stack logs")
    runs = re.findall(r"run-\d", got)
    assert runs == want, f"stack logs after two restarts: {got!r}"


def test_stack_logs_follow_sees_a_restarted_service(stacks):
    s = stacks()
    s.write(crash_on_demand(s))
    s.up()
    wait_for(lambda: s.lines("n") == ["1"], what="run 1")
    f = Lines(s.popen("stack", "logs", "--follow"))
    try:
        wait_for(lambda: "run-1" in f.text(), what="run-1 followed")
        crash_twice(s)
        try:
            wait_for(lambda: "run-3" in f.text(), timeout=5, what="run-3 followed")
        except AssertionError as e:
            raise AssertionError(f"{e}; --follow printed {f.text()!r}") from None
    finally:
        err = f.close()
    runs = re.findall(r"^r\s*\| (run-\d)$", f.text(), re.M)
    assert runs == ["run-1", "run-2", "run-3"], (f.text(), err)


def test_up_in_the_foreground_prints_logs_and_ctrl_c_takes_the_stack_down(stacks):
    s = stacks()
    s.write(svc(s, "a", s.script("a", "echo hello-a\ntrap 'exit 0' TERM\n"
                                      "while :; do sleep 0.05; done")) +
            svc(s, "b", s.script("b", "echo hello-b\ntrap 'exit 0' TERM\n"
                                      "while :; do sleep 0.05; done"), depends_on="a"))
    f = Lines(s.popen("up"))
    try:
        wait_for(lambda: "hello-a" in f.text() and "hello-b" in f.text(), timeout=20,
                 what="both services' output")
        sup = s.supervisor_pid()
        f.proc.send_signal(signal.SIGINT)
        f.proc.wait(timeout=20)
    finally:
        err = f.close()
    assert f.proc.returncode == 0, (f.proc.returncode, err)
    assert re.search(r"^a\s*\| hello-a$", f.text(), re.M), f.text()
    assert re.search(r"^b\s*\| hello-b$", f.text(), re.M), f.text()
    wait_for(lambda: not alive(sup), timeout=5, what="the supervisor gone")
    assert_gone(s)


def test_up_named_services_starts_them_and_what_they_need(stacks):
    s = stacks()
    s.write(svc(s, "db", SLEEPER) + svc(s, "api", SLEEPER, depends_on="db") +
            svc(s, "other", SLEEPER))
    s.up("api")
    assert sorted(r["service"] for r in s.ps() if r["state"] == "running") == ["api", "db"]
    assert s.container_names() == [f"{s.name}-api-1", f"{s.name}-db-1"]


def test_interpolation_from_env_and_dotenv_and_env_files(stacks, state):
    s = stacks()
    (s.dir / ".env").write_text("GREETING=from-dotenv\nTAG=latest\n")
    (s.dir / "app.env").write_text("FROM_FILE=file-value\nOVERRIDDEN=file\n")
    s.write(svc(s, "app", s.script("app", "env | sort > /t/env\n" + SLEEP),
                image="bb:${TAG}",
                env='GREETING2=${GREETING} "SPACED=a b" OVERRIDDEN=env HOST_ONLY '
                    'DOLLAR=$$HOME DEFAULTED=${NOPE:-dflt}',
                env_file="app.env"))
    env = dict(os.environ, HOST_ONLY="from-host", GREETING="from-environment")
    env.pop("NOPE", None)
    s.hutch("up", "-d", "--wait", env=env)
    lines = wait_for(lambda: s.lines("env"), what="app's environment")
    got = dict(l.split("=", 1) for l in lines if "=" in l)
    assert got["GREETING2"] == "from-environment"  # the environment wins over .env
    assert got["SPACED"] == "a b" and got["HOST_ONLY"] == "from-host"
    assert got["FROM_FILE"] == "file-value" and got["OVERRIDDEN"] == "env"
    assert got["DOLLAR"] == "$HOME" and got["DEFAULTED"] == "dflt"


def test_stack_exec_and_container_name(stacks, state):
    s = stacks()
    s.write(svc(s, "db", SLEEPER, hostname="dbhost"))
    s.up()
    cp = s.hutch("stack", "exec", "db", "hostname")
    assert cp.stdout.strip() == "dbhost"
    cp = state.run("exec", f"{s.name}-db-1", "sh", "-c", "exit 7", check=False)
    assert cp.returncode == 7


# ------------------------------------------------------------------ up again, restore


def test_up_on_a_running_stack_recreates_only_what_changed(stacks):
    s = stacks()
    quick = {"stop_grace_period": "100ms"}  # sleep as pid 1 ignores SIGTERM
    # gone leaves the file: it is stopped with the default grace (its own left with
    # the file), so it stops at its SIGTERM
    gone = s.script("gone", "trap 'exit 0' TERM\nwhile :; do sleep 0.05; done")
    s.write(svc(s, "keep", SLEEPER, **quick) + svc(s, "gone", gone) +
            svc(s, "change", "sleep 1000", **quick))
    s.up()
    before = {r["service"]: r for r in s.ps()}
    s.write(svc(s, "keep", SLEEPER, **quick) + svc(s, "change", "sleep 1001", **quick))
    cp = s.up()
    after = {r["service"]: r for r in s.ps()}
    assert sorted(after) == ["change", "keep"], after
    assert (after["keep"]["id"], after["keep"]["pid"]) == \
        (before["keep"]["id"], before["keep"]["pid"]), "keep was recreated"
    assert after["change"]["pid"] != before["change"]["pid"] and \
        not alive(before["change"]["pid"])
    assert not alive(before["gone"]["pid"])
    assert s.container_names() == [f"{s.name}-change-1", f"{s.name}-keep-1"]
    args = json.loads(s.state.run("inspect", f"{s.name}-change-1").stdout)[0]["process"]["args"]
    assert args == ["sleep", "1001"], args
    assert "change" in cp.stderr, cp.stderr


def kill_for_reboot(s):
    """What a reboot does to a stack: every process of it gone at once (supervisor,
    monitors, containers: all started by this test, killed by pid), the run root
    emptied (a tmpfs), the containers' cgroups gone."""
    procs = [pid for pid, _ in processes_naming(str(s.file))]
    rows = s.ps()
    procs += [r["pid"] for r in rows if r["pid"]]
    cgroups = [json.loads(s.state.run("inspect", r["container"]).stdout)[0].get("cgroup")
               for r in rows]
    procs.append(s.supervisor_pid())
    # rootless: the rootless network namespace's holder and pasta go too
    for f in ("holder", "pasta"):
        try:
            procs.append(int((s.state.root / "run" / "rootless-netns" / f).read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
    for pid in set(procs):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not any(alive(p) for p in procs), timeout=5, what="every process gone")
    def procs_of(cg):
        try:
            return Path(cg, "cgroup.procs").read_text().strip()
        except FileNotFoundError:  # a finish that ran before the kill removed it
            return ""
    for cg in cgroups:
        if cg and os.path.isdir(cg):
            wait_for(lambda: not procs_of(cg), timeout=5, what=f"{cg} empty")
            try:
                os.rmdir(cg)
            except FileNotFoundError:
                pass
    run = s.state.root / "run"
    # the containers' network namespaces, bind-mounted there (rootful), go with it too
    netns = run / "netns"
    for n in os.listdir(netns) if netns.is_dir() else []:
        subprocess.run(["umount", "-l", str(netns / n)], check=False)
    for n in os.listdir(run):  # the run dir is a tmpfs: a reboot empties it
        if (run / n).is_dir() and not (run / n).is_symlink():
            shutil.rmtree(run / n, ignore_errors=True)
        else:
            (run / n).unlink(missing_ok=True)
    return procs


def test_restore_after_a_reboot_brings_back_what_was_up(stacks):
    s = stacks()
    s.write(svc(s, "always", s.script("always", f"{stamp('always')}\n{SLEEP}"),
                restart="always") +
            svc(s, "once", s.script("once", f"{stamp('once')}\n{SLEEP}"), restart="no") +
            svc(s, "held", s.script("held", f"{stamp('held')}\n{SLEEP}"),
                restart="unless-stopped", stop_grace_period="100ms") +
            svc(s, "dep", s.script("dep", f"{stamp('dep')}\n{SLEEP}"), restart="on-failure",
                depends_on="always"))
    s.up()
    wait_for(lambda: all(s.stamps(n) for n in ("always", "once", "held", "dep")),
             what="every service's first act")
    s.hutch("stack", "stop", "held")
    wait_state(s, "held", "stopped")
    kill_for_reboot(s)
    assert s.ls()["status"] != "up"
    s.state.run("stack", "restore")
    wait_for(lambda: len(s.stamps("always")) == 2 and len(s.stamps("dep")) == 2, timeout=10,
             what="always and dep back")
    wait_state(s, "always", "running")
    wait_state(s, "dep", "running")
    assert state_of(s, "once") != "running" and len(s.stamps("once")) == 1, s.row("once")
    assert state_of(s, "held") == "stopped" and len(s.stamps("held")) == 1, s.row("held")
    assert s.ls()["status"] == "up"
    # a second restore finds the stack up and starts nothing
    s.state.run("stack", "restore")
    assert len(s.stamps("always")) == 2
    s.down("-t", "0")
    assert_gone(s)
