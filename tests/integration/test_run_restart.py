"""`hutch run -d --restart POLICY --health-cmd CMD ...`: a single container watched
by the stack supervisor (a one-service stack under the hood, DATA/stacks/NAME),
as docker run's flags do: restart policies with Docker's backoff, health checks
shown by `ps` and `inspect`, `stop` keeping it down, `rm -f` leaving nothing.
Every container is `rm -f`-ed at teardown by the `ctr` fixture; the leak check
covers containers, and each test checks that no supervisor or stack dir stays."""
import json
import os
import time

import pytest

from conftest import wait_for
from stackutil import alive, processes_naming

# pid 1 of a pid namespace ignores SIGTERM unless it handles it: this exits on it
LOOP = "trap 'exit 0' TERM; while :; do sleep 0.05; done"


def inspect(hutch, ref):
    return json.loads(hutch("inspect", ref).stdout)[0]


def ps_status(hutch, name):
    """The STATUS cell of name's row in `ps -a` (the table's columns are as wide
    as their widest cell: cut at the header's positions)."""
    lines = hutch("ps", "-a").stdout.splitlines()
    head = lines[0]
    start, end = head.index("STATUS"), head.index("NAMES")
    for l in lines[1:]:
        if l[end:].strip() == name:
            return l[start:end].strip()
    return None


def supervisor_pid(state, name):
    p = state.root / "run" / "stacks" / name / "supervisor.pid"
    return int(p.read_text().split()[0])


def gone(state, hutch, name, pid):
    """After `rm -f NAME`: no container, no supervisor, no stack dirs."""
    assert hutch("inspect", name, check=False).returncode != 0
    wait_for(lambda: not alive(pid), what=f"supervisor {pid} of {name} to exit")
    assert not (state.root / "stacks" / name).exists()
    assert not (state.root / "run" / "stacks" / name).exists()
    assert not [p for p in processes_naming(str(state.root / "stacks" / name))]


def test_on_failure_restarts_exactly_n_times(state, hutch, ctr):
    cid = ctr.run("--restart", "on-failure:2", "bb", "sh", "-c", "echo ran; exit 3",
                  name="onfail")
    assert len(cid) == 64 and all(c in "0123456789abcdef" for c in cid)
    pid = supervisor_pid(state, "onfail")
    wait_for(lambda: inspect(hutch, "onfail")["restart_count"] == 2 and
             inspect(hutch, "onfail")["status"] == "exited", timeout=10,
             what="two restarts, then exited")
    # the backoff after the second restart would be 400 ms: nothing comes
    time.sleep(1.0)
    i = inspect(hutch, "onfail")
    assert (i["status"], i["restart_count"], i["exit_code"]) == ("exited", 2, 3)
    assert i["id"] == cid and i["supervisor"]["restarts"] == 2
    assert ps_status(hutch, "onfail").startswith("Exited (3)")
    # the same container ran three times: its log has the three runs
    assert hutch("logs", "onfail").stdout.count("ran") == 3
    hutch("rm", "onfail")  # exited: no -f needed
    gone(state, hutch, "onfail", pid)


def test_always_restarts_a_crash_with_backoff_and_stop_keeps_it_down(state, hutch, ctr):
    ctr.run("--restart", "always", "bb", "sh", "-c", "sleep 0.1; exit 1", name="crashy")
    # "Restarting (1) ..." while it waits out its backoff
    wait_for(lambda: (ps_status(hutch, "crashy") or "").startswith("Restarting (1)"),
             timeout=10, what="ps showing Restarting (1)")
    t0 = time.monotonic()
    n0 = inspect(hutch, "crashy")["restart_count"]
    time.sleep(2.0)
    n1 = inspect(hutch, "crashy")["restart_count"]
    # delays of 100 ms doubling (each run lasts 0.1 s): a few restarts in 2 s,
    # not the ~20 a restart without backoff would make
    assert 1 <= n1 - n0 <= 5, (n0, n1, time.monotonic() - t0)
    out = hutch("stop", "crashy")
    assert out.stdout == "crashy\n"
    assert inspect(hutch, "crashy")["status"] == "exited"
    n2 = inspect(hutch, "crashy")["restart_count"]
    time.sleep(2.0)
    i = inspect(hutch, "crashy")
    assert i["status"] == "exited" and i["restart_count"] == n2
    assert i["supervisor"]["state"] == "stopped"
    assert ps_status(hutch, "crashy").startswith("Exited (")
    # start: up again under its policy
    hutch("start", "crashy")
    wait_for(lambda: inspect(hutch, "crashy")["restart_count"] > n2, timeout=10,
             what="crashy started again")


def test_stop_and_restart_honour_t_through_the_supervisor(state, hutch, ctr, spawn):
    """`stop -t` and `restart -t` of a supervised container give that grace before
    SIGKILL, as docker's: `sleep` as pid 1 ignores SIGTERM, so the grace is what
    the stop takes (10 s without -t)."""
    ctr.run("--restart", "always", "bb", "sleep", "1000", name="deaf")
    wait_for(lambda: inspect(hutch, "deaf").get("supervisor", {}).get("state") == "running",
             what="deaf up")
    t0 = time.monotonic()
    hutch("stop", "-t", "1", "deaf", timeout=20)
    took = time.monotonic() - t0
    assert 0.9 <= took < 6, f"stop -t 1 took {took:.2f} s"
    i = inspect(hutch, "deaf")
    assert (i["status"], i["exit_code"]) == ("exited", 137)
    assert i["supervisor"]["state"] == "stopped"
    hutch("start", "deaf")
    # running as the supervisor sees it (a restart while it starts is only remembered)
    wait_for(lambda: inspect(hutch, "deaf")["supervisor"]["state"] == "running",
             what="deaf up again")
    pid = inspect(hutch, "deaf")["pid"]
    t0 = time.monotonic()
    hutch("restart", "-t", "0", "deaf", timeout=20)
    wait_for(lambda: inspect(hutch, "deaf")["status"] == "running" and
             inspect(hutch, "deaf")["pid"] != pid, timeout=10, what="deaf restarted")
    took = time.monotonic() - t0
    assert took < 5, f"restart -t 0 took {took:.2f} s"
    i = inspect(hutch, "deaf")
    assert i["exit_code"] == 137 and i["supervisor"]["restarts"] == 0
    # the grace was that stop's only: a stop -t 0 now is immediate again, and the
    # next stop without -t waits the container's own grace (10 s: not waited for
    # here, the stop is seen under way after 1 s)
    proc = spawn("stop", "deaf")
    time.sleep(1.5)
    assert proc.poll() is None, "stop without -t did not wait the 10 s grace"
    assert inspect(hutch, "deaf")["supervisor"]["state"] == "stopping"
    hutch("stop", "-t", "0", "deaf", timeout=20)
    proc.wait(20)
    assert inspect(hutch, "deaf")["status"] == "exited"


def test_stop_of_a_running_always_container(state, hutch, ctr):
    ctr.run("--restart", "always", "bb", "sh", "-c", LOOP, name="steady")
    wait_for(lambda: ps_status(hutch, "steady").startswith("Up"), what="steady up")
    # kill is a crash: the policy brings it back
    hutch("kill", "steady")
    wait_for(lambda: inspect(hutch, "steady")["restart_count"] == 1 and
             ps_status(hutch, "steady").startswith("Up"), timeout=10,
             what="steady restarted after kill")
    # a running supervised container is not removed without -f
    cp = hutch("rm", "steady", check=False)
    assert cp.returncode == 1 and inspect(hutch, "steady")["status"] == "running"
    hutch("stop", "steady")
    time.sleep(1.0)
    assert inspect(hutch, "steady")["status"] == "exited"
    assert ps_status(hutch, "steady").startswith("Exited (0)")
    hutch("restart", "steady")
    wait_for(lambda: ps_status(hutch, "steady").startswith("Up"), what="steady up again")


def test_health_cmd_healthy_then_unhealthy(state, hutch, ctr):
    ctr.run("--health-cmd", "test -f /ok && echo \"fine; #ok \\$1\"", "--health-interval",
            "200ms", "--health-retries", "2", "bb", "sh", "-c", f"touch /ok; {LOOP}",
            name="checked")
    wait_for(lambda: ps_status(hutch, "checked").endswith("(healthy)"), timeout=10,
             what="ps showing (healthy)")
    h = inspect(hutch, "checked")["health"]
    assert h["status"] == "healthy" and h["failing_streak"] == 0
    assert h["log"] and h["log"][-1]["exit_code"] == 0
    # the command as given to /bin/sh -c, quotes, ; # and $ included
    assert h["log"][-1]["output"].strip() == "fine; #ok $1"
    hutch("exec", "checked", "rm", "/ok")
    wait_for(lambda: ps_status(hutch, "checked").endswith("(unhealthy)"), timeout=10,
             what="ps showing (unhealthy)")
    h = inspect(hutch, "checked")["health"]
    assert h["status"] == "unhealthy" and h["failing_streak"] >= 2
    assert 1 <= len(h["log"]) <= 5 and h["log"][-1]["exit_code"] != 0


def test_health_cmd_with_single_quotes(state, hutch, ctr):
    ctr.run("--health-cmd", "echo 'a;b  #c' $0", "--health-interval", "100ms", "bb", "sh",
            "-c", LOOP, name="quoted")
    wait_for(lambda: ps_status(hutch, "quoted").endswith("(healthy)"), timeout=10,
             what="ps showing (healthy)")
    out = inspect(hutch, "quoted")["health"]["log"][-1]["output"]
    assert out.strip() == "a;b  #c /bin/sh", out


def test_wait_returns_the_exit_code(state, hutch, ctr):
    ctr.run("--restart", "on-failure", "bb", "sh", "-c", "sleep 0.2; exit 0", name="job")
    out = hutch("wait", "job", timeout=20)
    assert out.stdout == "0\n"
    time.sleep(0.5)
    i = inspect(hutch, "job")
    assert (i["status"], i["restart_count"]) == ("exited", 0)  # exit 0: no restart


def test_rm_f_leaves_nothing_and_generated_names(state, hutch, ctr):
    cid = ctr.run("--restart", "unless-stopped", "bb", "sh", "-c", LOOP)
    name = inspect(hutch, cid)["name"]
    assert name == f"run-{cid[:12]}"
    pid = supervisor_pid(state, name)
    assert alive(pid)
    assert ps_status(hutch, name).startswith("Up")
    assert hutch("rm", "-f", cid).stdout == f"{cid}\n"
    gone(state, hutch, name, pid)
    # the name is free again
    ctr.run("--restart", "always", "bb", "sh", "-c", LOOP, name=name)
    pid = supervisor_pid(state, name)
    hutch("rm", "-f", name)
    gone(state, hutch, name, pid)


@pytest.mark.parametrize("args,named", [
    (["--restart", "sometimes"], "'sometimes'"),
    (["--restart", "on-failure:x"], "'on-failure:x'"),
    (["--health-cmd", "true", "--health-interval", "5"], "--health-interval '5'"),
    (["--health-cmd", "true", "--health-timeout", "-1s"], "--health-timeout '-1s'"),
    (["--health-cmd", "true", "--health-start-period", "soon"], "'soon'"),
    (["--health-cmd", "true", "--health-retries", "0"], "--health-retries '0'"),
])
def test_bad_values_are_refused_with_the_value(state, hutch, args, named):
    cp = hutch("run", "-d", "--name", "bad", *args, "bb", "true", check=False)
    assert cp.returncode == 125 and cp.stdout == ""
    assert named in cp.stderr, cp.stderr
    assert hutch("inspect", "bad", check=False).returncode != 0
    assert not (state.root / "stacks" / "bad").exists()


@pytest.mark.parametrize("args,said", [
    (["--restart", "always"], "needs -d"),
    (["-d", "--rm", "--restart", "always"], "--rm"),
    (["-d", "--health-interval", "1s"], "need --health-cmd"),
    (["-d", "--restart", "always", "-p", "8080:80"], "--network none or host"),
])
def test_combinations_refused(state, hutch, args, said):
    cp = hutch("run", "--name", "bad", *args, "bb", "true", check=False)
    assert cp.returncode == 125 and said in cp.stderr, cp.stderr
    assert hutch("inspect", "bad", check=False).returncode != 0
    assert not (state.root / "stacks" / "bad").exists()


def test_name_of_a_stack_or_container_taken(state, hutch, ctr):
    ctr.run("bb", "sh", "-c", LOOP, name="taken")
    cp = hutch("run", "-d", "--name", "taken", "--restart", "always", "bb", "true",
               check=False)
    assert cp.returncode == 125 and "'taken' is in use" in cp.stderr, cp.stderr
    assert not (state.root / "stacks" / "taken").exists()


def test_without_the_flags_run_d_is_unchanged(state, hutch, ctr):
    ctr.run("--restart", "no", "bb", "sh", "-c", LOOP, name="plain")
    i = inspect(hutch, "plain")
    assert not any(k.startswith("hutch.") for k in i["labels"])
    assert "health" not in i and "supervisor" not in i
    assert not (state.root / "stacks" / "plain").exists()
    hutch("stop", "plain")
    assert inspect(hutch, "plain")["status"] == "exited"


def test_a_killed_supervisor_is_replaced_by_stack_restore(state, hutch, ctr):
    ctr.run("--restart", "always", "bb", "sh", "-c", "sleep 0.3; exit 2", name="orphan")
    pid = supervisor_pid(state, "orphan")
    os.kill(pid, 9)  # our supervisor, by its pid
    wait_for(lambda: not alive(pid), what="the supervisor killed")
    wait_for(lambda: inspect(hutch, "orphan")["status"] == "exited", what="orphan exited")
    n = inspect(hutch, "orphan")["restart_count"]
    time.sleep(0.5)
    assert inspect(hutch, "orphan")["restart_count"] == n  # nobody restarts it
    assert "stack orphan restored" in hutch("stack", "restore").stderr
    wait_for(lambda: inspect(hutch, "orphan")["restart_count"] > n, timeout=10,
             what="orphan restarted by the new supervisor")
    new = supervisor_pid(state, "orphan")
    assert new != pid and alive(new)
    hutch("rm", "-f", "orphan")
    gone(state, hutch, "orphan", new)


def test_up_of_a_stack_of_the_same_name_is_refused(state, hutch, ctr, tmp):
    ctr.run("--restart", "always", "bb", "sh", "-c", LOOP, name="clash")
    f = tmp / "hutch.ini"
    f.write_text("[stack]\nname = clash\n\n[service.web]\nimage = bb\ncommand = sleep 60\n")
    cp = hutch("up", "-d", "-f", f, check=False)
    assert cp.returncode == 1 and "'clash' is taken by container clash" in cp.stderr, cp.stderr
    assert inspect(hutch, "clash")["status"] == "running"
    assert ps_status(hutch, "clash").startswith("Up")
