"""Container lifecycle: run -d, ps, exec, logs, stop, kill, rm, inspect, and the
record of a container surviving (or being repaired after) the death of the
processes that own it. Every container made here is removed at teardown by the
`ctr` fixture (conftest.py), so the leak check after each test still holds."""
import fcntl
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from conftest import (_cgroup_dirs, comm, descendants, hutch_cgroup_parent, proc_state,
                      wait_for)

ROOTLESS = os.geteuid() != 0
ID_RE = re.compile(r"[0-9a-f]{64}")


# ------------------------------------------------------------------ helpers


def alive(pid):
    """Running (a zombie counts as dead: this machine's pid 1 does not reap)."""
    return proc_state(pid) not in (None, "Z", "X")


def ps_json(hutch, *flags):
    """`ps --format json`: one object per line, as docker prints it."""
    return [json.loads(l) for l in hutch("ps", *flags, "--format", "json").stdout.splitlines()]


def ps_line(hutch, cid, *flags):
    """The `ps` table row of container cid, or None."""
    rows = [l for l in hutch("ps", *flags).stdout.splitlines()[1:] if l.startswith(cid[:12])]
    assert len(rows) <= 1, rows
    return rows[0] if rows else None


def wait_log(hutch, ref, text, timeout=10):
    return wait_for(lambda: text in hutch("logs", ref).stdout, timeout=timeout,
                    what=f"{text!r} in the logs of {ref}")


def cgroup_line(pid):
    """The cgroup v2 line of a host process ("0::/path")."""
    for l in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if l.startswith("0::"):
            return l
    return None


def mounts_mentioning(text):
    return [l for l in Path("/proc/self/mountinfo").read_text().splitlines() if text in l]


def status_fields(text):
    return dict(re.findall(r"^(\w+):\s+(\S+)", text, re.M))


SLEEPER = ("bb", "sleep", "100")


# ------------------------------------------------------------------ run -d, ps


def test_run_detached_prints_id_and_returns_at_once(hutch, ctr):
    t0 = time.monotonic()
    cp = hutch("run", "-d", "--name", "quick", *SLEEPER)
    elapsed = time.monotonic() - t0
    ctr.keep("quick")
    assert ID_RE.fullmatch(cp.stdout.strip()), cp.stdout
    assert cp.stdout.count("\n") == 1
    assert elapsed < 2, f"run -d took {elapsed:.2f}s"
    info = ctr.inspect("quick")
    assert info["id"] == cp.stdout.strip()
    assert info["status"] == "running"
    # the report came with the exec of hutch-dmz, which then execs sleep: on
    # a loaded machine that second exec may still be under way
    assert alive(info["pid"])
    wait_for(lambda: comm(info["pid"]) == "sleep", timeout=5, what="sleep exec'd")


def test_ps_shows_running_container(hutch, ctr):
    cid = ctr.run(*SLEEPER, name="web")
    info = ctr.inspect(cid)
    header = hutch("ps").stdout.splitlines()[0]
    for col in ("CONTAINER ID", "IMAGE", "COMMAND", "PID", "CREATED", "STATUS", "NAMES"):
        assert col in header, header
    row = ps_line(hutch, cid)
    assert row is not None
    assert "bb:latest" in row
    assert "sleep 100" in row
    assert re.search(rf"\s{info['pid']}\s", row), row
    assert "Up " in row
    assert row.split()[-1] == "web"
    assert hutch("ps", "-q").stdout.split() == [cid[:12]]


def test_ps_hides_exited_unless_all(hutch, ctr):
    running = ctr.run(*SLEEPER)
    done = ctr.run("bb", "sh", "-c", "exit 3")
    ctr.wait_exited(done)
    assert ps_line(hutch, done) is None
    assert ps_line(hutch, running) is not None
    row = ps_line(hutch, done, "-a")
    assert row is not None and "Exited (3)" in row, row
    assert sorted(hutch("ps", "-a", "-q").stdout.split()) == sorted([running[:12], done[:12]])


def test_ps_format_json(hutch, ctr):
    running = ctr.run(*SLEEPER, name="js")
    done = ctr.run("bb", "sh", "-c", "exit 5")
    ctr.wait_exited(done)
    now = [c["id"] for c in ps_json(hutch)]
    assert now == [running]
    every = {c["id"]: c for c in ps_json(hutch, "-a")}
    assert set(every) == {running, done}
    r, d = every[running], every[done]
    for c in (r, d):
        for key in ("id", "image", "command", "status", "pid", "created", "exit_code"):
            assert key in c, (key, c)
        assert c["image"] == "bb:latest"
    assert d.get("name") in (None, "")  # no --name: no name (hutch does not invent one)
    assert r["name"] == "js" and r["status"] == "running" and r["pid"] > 0
    assert r["command"] == "sleep 100"
    assert d["status"] == "exited" and d["exit_code"] == 5
    assert [c["id"] for c in ps_json(hutch, "-a")] == [done, running]  # newest first
    assert hutch("ps", "--format=json").stdout.strip() == hutch("ps", "--format",
                                                                "json").stdout.strip()


def test_names_are_unique(hutch, ctr):
    first = ctr.run(*SLEEPER, name="web")
    for args in (["run", "-d", "--name", "web", *SLEEPER],
                 ["run", "--name", "web", "bb", "true"],
                 ["run", "--rm", "--name", "web", "bb", "true"]):
        cp = hutch(*args, check=False)
        assert cp.returncode == 125, cp
        assert "'web'" in cp.stderr and "in use" in cp.stderr, cp.stderr
        assert first[:12] in cp.stderr, cp.stderr
        assert cp.stdout == ""
    assert [c["id"] for c in ps_json(hutch, "-a")] == [first]
    # an exited container keeps its name until it is removed
    hutch("kill", "web")
    ctr.wait_exited("web")
    assert hutch("run", "-d", "--name", "web", *SLEEPER, check=False).returncode == 125
    hutch("rm", "web")
    again = ctr.run(*SLEEPER, name="web")
    assert again != first and ctr.inspect("web")["id"] == again


def test_names_unique_under_concurrent_runs(state, hutch, ctr):
    ctr.keep("same")
    cmd = [state.bin, "--root", str(state.root), "run", "-d", "--name", "same", *SLEEPER]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    results = [(p.wait(timeout=30), *p.communicate()) for p in procs]
    winners = [out.strip() for rc, out, err in results if rc == 0]
    for rc, out, err in results:
        assert rc == 0 or ("'same'" in err and "in use" in err), (rc, err)
    assert len(winners) == 1, results
    for w in winners:
        ctr.keep(w)
    assert [c["id"] for c in ps_json(hutch, "-a")] == winners


def test_id_prefix_matching(hutch, ctr):
    cid = ctr.run(*SLEEPER)
    for ref in (cid, cid[:12], cid[:5]):
        assert ctr.inspect(ref)["id"] == cid, ref
    assert hutch("exec", cid[:12], "echo", "via-prefix").stdout == "via-prefix\n"
    # unknown: not hex, and hex that matches nothing
    cp = hutch("inspect", "zzzz", check=False)
    assert cp.returncode != 0 and "no such container" in cp.stderr and "zzzz" in cp.stderr
    other = "0123456789abcdef".replace(cid[0], "")[0] * 6
    cp = hutch("exec", other, "true", check=False)
    assert cp.returncode != 0 and "no such container" in cp.stderr and other in cp.stderr
    # ambiguous: make containers until two ids share their first digit (at most 17)
    ids = [cid]
    while len({i[0] for i in ids}) == len(ids):
        ids.append(ctr.run("bb", "true"))
    firsts = [i[0] for i in ids]
    shared = next(c for c in firsts if firsts.count(c) > 1)
    for verb in (["inspect"], ["exec"], ["stop"], ["rm", "-f"]):
        cp = hutch(*verb, shared, *(["true"] if verb == ["exec"] else []), check=False)
        assert cp.returncode != 0, verb
        assert "ambiguous" in cp.stderr and f"'{shared}'" in cp.stderr, (verb, cp.stderr)
    # nothing was removed or stopped by the ambiguous refs
    assert ctr.status(cid) == "running"
    assert len(ps_json(hutch, "-a")) == len(ids)


# ------------------------------------------------------------------ exec


NAMESPACES = ["mnt", "pid", "uts", "ipc", "net", "cgroup", "user"]


def test_exec_joins_all_namespaces(hutch, ctr):
    cid = ctr.run("--hostname", "inner", *SLEEPER)
    pid = ctr.inspect(cid)["pid"]
    script = "; ".join(f"echo {n} $(readlink /proc/self/ns/{n}) $(readlink /proc/1/ns/{n})"
                       for n in NAMESPACES)
    out = hutch("exec", cid, "sh", "-c", script).stdout
    rows = {l.split()[0]: l.split()[1:] for l in out.splitlines()}
    assert set(rows) == set(NAMESPACES), out
    for n, (mine, pid1) in rows.items():
        assert mine == pid1, (n, mine, pid1)
        # and it is the container's, seen from the host
        assert mine == os.readlink(f"/proc/{pid}/ns/{n}"), n
    for n in ("mnt", "pid", "uts", "ipc", "net", "cgroup"):
        assert rows[n][0] != os.readlink(f"/proc/self/ns/{n}"), n
    assert (rows["user"][0] != os.readlink("/proc/self/ns/user")) == ROOTLESS
    # it sees the container's processes (and only those) and its hostname
    ps = hutch("exec", cid, "ps", "-o", "pid,comm").stdout.splitlines()[1:]
    procs = {int(l.split()[0]): l.split()[1] for l in ps}
    assert procs[1] == "sleep", ps
    assert set(procs.values()) == {"sleep", "ps"}, ps
    assert hutch("exec", cid, "hostname").stdout == "inner\n"
    assert hutch("exec", cid, "cat", "/proc/sys/kernel/hostname").stdout == "inner\n"


def test_exec_joins_the_cgroup(hutch, ctr, spawn):
    cid = ctr.run(*SLEEPER)
    info = ctr.inspect(cid)
    out = hutch("exec", cid, "sh", "-c", "cat /proc/self/cgroup; echo --; cat /proc/1/cgroup")
    mine, pid1 = out.stdout.split("--\n")
    assert mine == pid1
    # From the host: an exec'd process is in the same cgroup as the container.
    p = spawn("exec", cid, "sleep", "30")
    execd = wait_for(lambda: [d for d in descendants(p.pid) if comm(d) == "sleep"],
                     what="the exec'd sleep")[0]
    assert cgroup_line(execd) == cgroup_line(info["pid"])
    if info.get("cgroup"):
        procs = set(int(x) for x in Path(info["cgroup"], "cgroup.procs").read_text().split())
        assert {info["pid"], execd} <= procs
        assert cgroup_line(execd) != cgroup_line(os.getpid())
    else:
        # no delegated cgroup: the container stays in the user's own cgroup
        assert ROOTLESS
        assert cgroup_line(execd) == cgroup_line(os.getpid())
    os.kill(execd, signal.SIGKILL)
    p.communicate(timeout=10)
    assert p.returncode == 137


def test_exec_exit_codes(hutch, ctr):
    cid = ctr.run(*SLEEPER)
    for code in (0, 1, 42, 255):
        assert hutch("exec", cid, "sh", "-c", f"exit {code}", check=False).returncode == code
    cp = hutch("exec", cid, "no-such-cmd-qq", check=False)
    assert cp.returncode == 127 and "no-such-cmd-qq" in cp.stderr
    cp = hutch("exec", cid, "/etc/passwd", check=False)
    assert cp.returncode == 126 and "/etc/passwd" in cp.stderr
    # killed by a signal inside: 128+n
    cp = hutch("exec", cid, "sh", "-c", "kill -USR1 $$", check=False)
    assert cp.returncode == 128 + signal.SIGUSR1
    assert ctr.status(cid) == "running"


def test_exec_stdio(hutch, ctr):
    cid = ctr.run(*SLEEPER)
    cp = hutch("exec", cid, "sh", "-c", "echo out; echo err >&2")
    assert cp.stdout == "out\n" and cp.stderr == "err\n"
    # stdin only with -i
    assert hutch("exec", cid, "cat", input="not passed\n").stdout == ""
    assert hutch("exec", "-i", cid, "cat", input="passed\n").stdout == "passed\n"


def test_exec_env(hutch, ctr):
    cid = ctr.run("-e", "FROMRUN=run", *SLEEPER)
    env = hutch("exec", "-e", "K=V", "-e", "FROMRUN=exec", "--env", "S=a b", cid, "env").stdout
    got = dict(l.split("=", 1) for l in env.splitlines())
    assert got["K"] == "V" and got["FROMRUN"] == "exec" and got["S"] == "a b"
    assert "PATH" in got and "HOSTNAME" in got
    env = hutch("exec", cid, "env").stdout
    got = dict(l.split("=", 1) for l in env.splitlines())
    assert got["FROMRUN"] == "run" and "K" not in got
    out = hutch("exec", "-e", "FROMHOST", cid, "sh", "-c", "echo $FROMHOST",
                env={**os.environ, "FROMHOST": "host value"}).stdout
    assert out == "host value\n"


@pytest.mark.parametrize("user,uid,gid,name", [("1000", 1000, 1000, "app"),
                                               ("app", 1000, 1000, "app"),
                                               ("1000:100", 1000, 100, "app"),
                                               ("nobody", 65534, 65534, "nobody")])
def test_exec_user(hutch, ctr, user, uid, gid, name):
    cid = ctr.run(*SLEEPER)
    out = hutch("exec", "-u", user, cid, "sh", "-c",
                "id -u; id -g; whoami; grep CapEff /proc/self/status").stdout.split("\n")
    assert out[:3] == [str(uid), str(gid), name]
    assert out[3].split()[1] == "0000000000000000"
    # the container's own user is unchanged
    assert hutch("exec", cid, "id", "-u").stdout == "0\n"
    cp = hutch("exec", "-u", "ghost", cid, "true", check=False)
    assert cp.returncode == 125 and "ghost" in cp.stderr


def test_exec_workdir(hutch, ctr):
    cid = ctr.run("-w", "/etc", *SLEEPER)
    assert hutch("exec", cid, "pwd").stdout == "/etc\n"  # the container's by default
    out = hutch("exec", "-w", "/tmp", cid, "sh", "-c", "pwd; readlink /proc/self/cwd").stdout
    assert out == "/tmp\n/tmp\n"
    cp = hutch("exec", "-w", "/no/such/dir", cid, "pwd", check=False)
    assert cp.returncode == 125 and "/no/such/dir" in cp.stderr
    cp = hutch("exec", "-w", "relative", cid, "pwd", check=False)
    assert cp.returncode == 125 and "relative" in cp.stderr


def _read_until(fd, pattern, timeout=10):
    rx = re.compile(pattern)
    buf = b""
    deadline = time.monotonic() + timeout
    while not rx.search(buf):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {pattern!r}; got {buf!r}")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                raise AssertionError(f"EOF waiting for {pattern!r}; got {buf!r}")
            buf += data
    return buf


def test_exec_it_through_a_pty(state, ctr):
    cid = ctr.run(*SLEEPER)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 99, 0, 0))

    def ctty():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    script = ("tty; stty size; [ -t 0 ] && [ -t 1 ] && echo is-a-tty; echo TERM=$TERM; "
              "read line; echo got=$line; exit 3")
    p = subprocess.Popen([state.bin, "--root", str(state.root), "exec", "-it", cid, "sh",
                          "-c", script], stdin=slave, stdout=slave, stderr=slave,
                         start_new_session=True, preexec_fn=ctty)
    os.close(slave)
    try:
        out = _read_until(master, rb"TERM=\S+\r?\n")
        assert re.search(rb"^/dev/pts/\d+\r$", out, re.M), out
        assert b"33 99\r\n" in out
        assert b"is-a-tty\r\n" in out
        assert b"TERM=xterm\r\n" in out
        os.write(master, b"typed-line\r")
        out = _read_until(master, rb"got=typed-line\r\n")
        assert b"typed-line\r\n" in out  # echoed by the container's pty
        p.wait(timeout=10)
        assert p.returncode == 3
    finally:
        if p.poll() is None:
            for pid in descendants(p.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.kill()
            p.wait()
        os.close(master)
    assert ctr.status(cid) == "running"


def test_exec_into_init_container(hutch, ctr):
    """Under --init, pid 1 is hutch's reaper; exec still joins the container."""
    cid = ctr.run("--init", *SLEEPER)
    # run -d returns once pid 1 is exec'd; it names itself and forks the
    # command a moment later
    wait_for(lambda: hutch("exec", cid, "cat", "/proc/1/comm", "/proc/2/comm",
                           check=False).stdout == "hutch-init\nsleep\n",
             what="hutch-init as pid 1 with its command as pid 2")
    out = hutch("exec", cid, "sh", "-c", "echo $$; ps -o pid,comm").stdout.splitlines()
    assert int(out[0]) > 2
    procs = {int(l.split()[0]): l.split()[1] for l in out[2:]}
    assert procs[1] == "hutch-init" and procs[2] == "sleep", out
    assert hutch("exec", cid, "sh", "-c", "exit 9", check=False).returncode == 9


def test_exec_into_stopped_container_fails_clearly(hutch, ctr):
    cid = ctr.run("bb", "true")
    ctr.wait_exited(cid)
    cp = hutch("exec", cid, "echo", "hi", check=False)
    assert cp.returncode == 125
    assert cp.stdout == ""
    assert "not running" in cp.stderr and cid[:12] in cp.stderr, cp.stderr
    cp = hutch("exec", "-it", cid, "sh", check=False)
    assert cp.returncode == 125 and "not running" in cp.stderr


SECURITY_FLAGS = [
    [],
    ["--cap-drop", "ALL", "--cap-add", "CHOWN"],
    ["--cap-add", "SYS_ADMIN"],
    ["--security-opt", "no-new-privileges=false"],
    ["--security-opt", "seccomp=unconfined"],
    ["-u", "1000"],
]


@pytest.mark.parametrize("flags", SECURITY_FLAGS, ids=lambda f: " ".join(f) or "default")
def test_exec_has_the_security_of_pid1(hutch, ctr, flags):
    cid = ctr.run(*flags, *SLEEPER)
    out = hutch("exec", cid, "sh", "-c",
                "cat /proc/self/status; echo ----; cat /proc/1/status").stdout
    mine, pid1 = (status_fields(t) for t in out.split("----\n"))
    for k in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb", "NoNewPrivs", "Seccomp",
              "Uid", "Gid"):
        assert mine[k] == pid1[k], (k, mine[k], pid1[k])
    assert mine["Seccomp"] == ("0" if "seccomp=unconfined" in flags else "2")
    assert mine["NoNewPrivs"] == ("0" if "no-new-privileges=false" in flags else "1")


def ns_ids(text):
    return dict(l.split(" ", 1) for l in text.strip().split("\n"))


NS_TYPES = ["mnt", "pid", "net", "ipc", "uts", "cgroup", "user"]
NS_PROBE = "for n in " + " ".join(NS_TYPES) + "; do echo $n $(readlink /proc/self/ns/$n); done"


@pytest.mark.parametrize("network", ["none", "host"])
def test_exec_joins_exactly_the_containers_namespaces(hutch, ctr, network):
    """exec enters the namespaces the container has of its own and no others:
    with --network host that is the host's network, as pid 1 has it."""
    cid = ctr.run("--network", network, *SLEEPER)
    pid1 = ns_ids(hutch("exec", cid, "sh", "-c", NS_PROBE.replace("self", "1")).stdout)
    mine = ns_ids(hutch("exec", cid, "sh", "-c", NS_PROBE).stdout)
    host = {n: os.readlink(f"/proc/self/ns/{n}") for n in NS_TYPES}
    assert mine == pid1
    for n in NS_TYPES:
        shared = (n == "net" and network == "host") or (n == "user" and not ROOTLESS)
        assert (mine[n] == host[n]) is shared, n
    info = ctr.inspect(cid)
    assert ("network" in info["namespaces"]) is (network == "none")


# ------------------------------------------------------------------ logs


def test_logs_route_stdout_and_stderr(hutch, ctr, state):
    cid = ctr.run("bb", "sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2")
    ctr.wait_exited(cid)
    cp = hutch("logs", cid)
    assert cp.stdout == "out1\nout2\n"
    assert cp.stderr == "err1\nerr2\n"
    # the file is in the CRI format
    log = (state.root / "containers" / cid / "container.log").read_text()
    for l in log.splitlines():
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) [FP] .*",
                            l), l


def test_logs_partial_line_and_empty_output(hutch, ctr):
    cid = ctr.run("bb", "sh", "-c", "echo full; printf no-newline")
    ctr.wait_exited(cid)
    assert hutch("logs", cid).stdout == "full\nno-newline"
    quiet = ctr.run("bb", "true")
    ctr.wait_exited(quiet)
    cp = hutch("logs", quiet)
    assert cp.stdout == "" and cp.stderr == ""


def test_logs_tail(hutch, ctr):
    cid = ctr.run("bb", "sh", "-c", "seq 1 10")
    ctr.wait_exited(cid)
    assert hutch("logs", "--tail", "3", cid).stdout == "8\n9\n10\n"
    assert hutch("logs", "-n", "1", cid).stdout == "10\n"
    assert hutch("logs", "--tail", "0", cid).stdout == ""
    assert hutch("logs", "--tail", "100", cid).stdout.split() == [str(i) for i in range(1, 11)]
    assert hutch("logs", "--tail", "all", cid).stdout.split() == [str(i) for i in range(1, 11)]
    cp = hutch("logs", "--tail", "x", cid, check=False)
    assert cp.returncode == 125 and "'x'" in cp.stderr


def test_logs_follow(hutch, ctr, spawn):
    cid = ctr.run("bb", "sh", "-c",
                  "echo one; while [ ! -e /tmp/go ]; do usleep 20000; done; echo two; "
                  "while [ ! -e /tmp/end ]; do usleep 20000; done; echo three >&2; echo four")
    wait_log(hutch, cid, "one")
    p = spawn("logs", "-f", cid)
    fd = p.stdout.fileno()
    assert _read_until(fd, rb"one\n") == b"one\n"
    time.sleep(0.2)
    assert p.poll() is None, "logs -f ended while the container runs"
    hutch("exec", cid, "touch", "/tmp/go")
    assert _read_until(fd, rb"two\n") == b"two\n"
    assert p.poll() is None
    hutch("exec", cid, "touch", "/tmp/end")
    t0 = time.monotonic()
    out, err = p.communicate(timeout=10)
    assert time.monotonic() - t0 < 5
    assert p.returncode == 0
    assert out == b"four\n"
    assert err == b"three\n"
    assert ctr.status(cid) == "exited"


def test_logs_follow_when_the_container_exits_while_it_starts(state, ctr):
    """`logs -f` reads the state (running), then watches the log for the monitor
    closing it. If the container exits in between, it must still end. strace
    widens that window deterministically: it delays inotify_add_watch by 0.8 s
    while the container ends after 0.2 s."""
    cid = ctr.run("bb", "sh", "-c", "sleep 0.2; echo late")
    cmd = ["strace", "-qq", "-o", "/dev/null", "-e", "trace=inotify_add_watch",
           "-e", "inject=inotify_add_watch:delay_enter=800000",
           state.bin, "--root", str(state.root), "logs", "-f", cid]
    # its own process group: a timeout kills strace and the hutch it runs
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=8)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise AssertionError("logs -f never ended: the container exited before it "
                             "watched the log") from None
    assert p.returncode == 0, err
    assert out == "late\n"


def test_logs_follow_of_exited_container_returns(hutch, ctr):
    cid = ctr.run("bb", "echo", "done")
    ctr.wait_exited(cid)
    cp = hutch("logs", "-f", cid, timeout=5)
    assert cp.stdout == "done\n"


# ------------------------------------------------------------------ stop, kill


def test_stop_sends_sigterm_to_a_trap(hutch, ctr):
    cid = ctr.run("bb", "sh", "-c", "trap 'echo term; exit 3' TERM; echo ready; "
                  "sleep 100 & wait")
    wait_log(hutch, cid, "ready")
    t0 = time.monotonic()
    cp = hutch("stop", cid)
    elapsed = time.monotonic() - t0
    assert cp.stdout == f"{cid}\n"
    assert elapsed < 3, f"stop took {elapsed:.2f}s"
    info = ctr.inspect(cid)
    assert info["status"] == "exited" and info["exit_code"] == 3
    assert "term" in hutch("logs", cid).stdout
    assert "Exited (3)" in ps_line(hutch, cid, "-a")
    # stopping a stopped container is fine
    assert hutch("stop", cid).returncode == 0


def test_stop_escalates_to_sigkill_after_timeout(hutch, ctr):
    # pid 1 without a handler ignores SIGTERM
    cid = ctr.run(*SLEEPER)
    pid = ctr.inspect(cid)["pid"]
    t0 = time.monotonic()
    hutch("stop", "-t", "1", cid)
    elapsed = time.monotonic() - t0
    assert 1.0 <= elapsed < 5, f"stop -t 1 took {elapsed:.2f}s"
    info = ctr.inspect(cid)
    assert info["status"] == "exited" and info["exit_code"] == 137
    assert not alive(pid)


def test_stop_zero_timeout_kills_at_once(hutch, ctr):
    cid = ctr.run(*SLEEPER)
    t0 = time.monotonic()
    hutch("stop", "--time", "0", cid)
    assert time.monotonic() - t0 < 2
    assert ctr.inspect(cid)["exit_code"] == 137
    cp = hutch("stop", "-t", "soon", cid, check=False)
    assert cp.returncode == 125 and "soon" in cp.stderr


def test_stop_signal_honoured(hutch, ctr):
    cid = ctr.run("--stop-signal", "USR1", "bb", "sh", "-c",
                  "trap 'exit 5' USR1; trap 'exit 9' TERM; echo ready; sleep 100 & wait")
    assert ctr.inspect(cid)["process"]["stop_signal"] == signal.SIGUSR1
    wait_log(hutch, cid, "ready")
    t0 = time.monotonic()
    hutch("stop", cid)
    assert time.monotonic() - t0 < 3
    assert ctr.inspect(cid)["exit_code"] == 5
    cid2 = ctr.run("--stop-signal", "SIGINT", "bb", "sh", "-c",
                   "trap 'exit 6' INT; echo ready; sleep 100 & wait")
    assert ctr.inspect(cid2)["process"]["stop_signal"] == signal.SIGINT
    wait_log(hutch, cid2, "ready")
    hutch("stop", cid2)
    assert ctr.inspect(cid2)["exit_code"] == 6


def test_kill_with_signal_delivers_it(hutch, ctr):
    cid = ctr.run("bb", "sh", "-c",
                  "trap 'echo got-usr1' USR1; trap 'echo got-hup' HUP; echo ready; "
                  "while true; do sleep 100 & wait; done")
    wait_log(hutch, cid, "ready")
    assert hutch("kill", "-s", "USR1", cid).stdout == f"{cid}\n"
    wait_log(hutch, cid, "got-usr1")
    hutch("kill", "--signal", "SIGHUP", cid)
    wait_log(hutch, cid, "got-hup")
    hutch("kill", "-s", "10", cid)
    wait_for(lambda: hutch("logs", cid).stdout.count("got-usr1") == 2, what="second USR1")
    assert ctr.status(cid) == "running"
    cp = hutch("kill", "-s", "NOPE", cid, check=False)
    assert cp.returncode == 125 and "NOPE" in cp.stderr


def test_kill_default_is_sigkill(hutch, ctr):
    cid = ctr.run("bb", "sh", "-c", "trap 'echo term' TERM; sleep 100 & wait")
    pid = ctr.inspect(cid)["pid"]
    t0 = time.monotonic()
    hutch("kill", cid)
    info = ctr.wait_exited(cid, timeout=5)
    assert time.monotonic() - t0 < 3
    assert info["exit_code"] == 137
    assert not alive(pid)
    cp = hutch("kill", cid, check=False)
    assert cp.returncode != 0 and "not running" in cp.stderr


# ------------------------------------------------------------------ rm, inspect


def test_rm_running_refused_and_rm_force(hutch, ctr, state):
    cid = ctr.run(*SLEEPER, name="busy")
    info = ctr.inspect(cid)
    cp = hutch("rm", "busy", check=False)
    assert cp.returncode != 0
    assert "running" in cp.stderr and "rm -f" in cp.stderr and cid[:12] in cp.stderr
    assert ctr.status(cid) == "running" and alive(info["pid"])
    assert (state.root / "containers" / cid).is_dir()
    assert hutch("rm", "-f", "busy").stdout == "busy\n"
    assert not alive(info["pid"])
    assert not (state.root / "containers" / cid).exists()
    assert hutch("ps", "-a", "-q").stdout == ""
    if info.get("cgroup"):
        assert not os.path.exists(info["cgroup"])
    cp = hutch("rm", "busy", check=False)
    assert cp.returncode != 0 and "no such container" in cp.stderr
    # as Docker's (since 20.10) and rm's -f: what is not there is said, but no failure,
    # so that `hutch rm -f web` can clean up whether web exists or not
    cp = hutch("rm", "-f", "busy", check=False)
    assert cp.returncode == 0 and "no such container: 'busy'" in cp.stderr, cp
    assert cp.stdout == ""


def test_rm_exited_and_several(hutch, ctr, state):
    a = ctr.run("bb", "true")
    b = ctr.run("bb", "true")
    ctr.wait_exited(a)
    ctr.wait_exited(b)
    assert hutch("rm", a[:12], b).stdout == f"{a[:12]}\n{b}\n"
    assert os.listdir(state.root / "containers") == []


def test_inspect_json(hutch, ctr):
    cid = ctr.run(*SLEEPER, name="insp")
    data = json.loads(hutch("inspect", "insp").stdout)
    assert isinstance(data, list) and len(data) == 1
    i = data[0]
    assert i["id"] == cid and i["name"] == "insp" and i["status"] == "running"
    assert isinstance(i["pid"], int) and comm(i["pid"]) == "sleep"
    assert i["exit_code"] == 0
    assert i["image"] == "bb:latest"
    assert i["process"]["args"] == ["sleep", "100"]
    assert i["detached"] is True and i["auto_remove"] is False
    # the OCI model: the namespaces it has of its own, the five capability sets
    own = ["mount", "pid", "network", "ipc", "uts", "cgroup"] + (["user"] if ROOTLESS else [])
    assert sorted(i["namespaces"]) == sorted(own)
    docker14 = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE",
                "CAP_SETFCAP"]
    caps = i["process"]["capabilities"]
    for k in ("bounding", "effective", "permitted"):
        assert sorted(caps[k]) == sorted(docker14), k
    assert caps["inheritable"] == caps["ambient"] == []
    hutch("kill", cid)
    i = ctr.wait_exited(cid)
    assert i["exit_code"] == 137 and i["finished"] >= i["started"] >= i["created"] > 0
    other = ctr.run("bb", "true")
    both = json.loads(hutch("inspect", cid, other[:12]).stdout)
    assert [x["id"] for x in both] == [cid, other]
    cp = hutch("inspect", "no-such-ctr", check=False)
    assert cp.returncode != 0 and "no-such-ctr" in cp.stderr


def test_foreground_run_keeps_an_exited_record(hutch, ctr, state):
    ctr.keep("fg")
    cp = hutch("run", "--name", "fg", "bb", "sh", "-c", "echo hi; exit 4", check=False)
    assert cp.returncode == 4 and cp.stdout == "hi\n"
    info = ctr.inspect("fg")
    assert info["status"] == "exited" and info["exit_code"] == 4
    assert info["detached"] is False
    assert ps_line(hutch, info["id"]) is None
    assert "Exited (4)" in ps_line(hutch, info["id"], "-a")
    assert (state.root / "containers" / info["id"]).is_dir()
    cp = hutch("logs", "fg", check=False)
    assert cp.returncode == 1 and "foreground" in cp.stderr
    hutch("rm", "fg")
    assert not (state.root / "containers" / info["id"]).exists()
    assert hutch("ps", "-a", "-q").stdout == ""


def test_rm_flag_leaves_no_record(hutch, state):
    hutch("run", "--rm", "--name", "gone", "bb", "true")
    assert hutch("ps", "-a", "-q").stdout == ""
    assert os.listdir(state.root / "containers") == []


# A foreground --rm container with the run root in memory (/run/hutch is a tmpfs
# on most hosts): its dir lives there, with a link from the data root, so that a
# run writes and frees no block of the disk. The test mounts a tmpfs over the run
# root in a mount namespace of its own.
IN_MEMORY_RUN = r"""
set -u
mkdir -p "$R/run"; mount -t tmpfs -o mode=0700 tmpfs "$R/run" || exit 8
$H run --rm --name inmem bb sh -c 'sleep 30' & fg=$!
i=0; until [ -n "$($H ps -q)" ]; do i=$((i+1)); [ $i -lt 200 ] || exit 9; sleep 0.05; done
id=$(ls "$R/containers")
echo "link=$(readlink "$R/containers/$id")"
echo "ps=$($H ps -q)"
echo "files=$(ls "$R/containers/$id/")"
$H rm -f inmem >/dev/null
wait $fg; echo "rc=$?"
echo "left=$(ls -A "$R/containers" "$R/run/rm" | wc -w)"
$H run --rm bb true; echo "true=$?"
$H run --rm bb sleep 30 & fg=$!
i=0; until [ -n "$($H ps -q)" ]; do i=$((i+1)); [ $i -lt 200 ] || exit 9; sleep 0.05; done
kill -9 $fg; wait $fg
i=0; until [ -z "$($H ps -a -q)" ]; do i=$((i+1)); [ $i -lt 200 ] || exit 9; sleep 0.05; done
echo "killed=$(ls -A "$R/containers" "$R/run/rm" | wc -w)"
ln -s "$R/run/rm/0123456789abcdef" "$R/containers/$(printf 'ab%.0s' $(seq 32))"
echo "dangling=$($H ps -a -q)$(ls -A "$R/containers")"
"""


def _in_memory_rootless(state, tmp):
    """Rootless, the default layout: the data root under $HOME (the disk here), the
    run root under $XDG_RUNTIME_DIR, here a dir of /dev/shm (a tmpfs)."""
    # (as short as /run/user/UID: the link to RUN/hutch/rm/ID16 must fit in an inode)
    home, xdg = tmp / "home", Path(f"/dev/shm/h{os.getpid()}")
    home.mkdir()
    xdg.mkdir(mode=0o700)
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
           "XDG_RUNTIME_DIR": str(xdg)}
    h = [state.bin]
    data = home / "data" / "hutch" / "containers"
    try:
        subprocess.run(h + ["image", "import", str(state.bb_tar), "bb"], env=env, check=True,
                       capture_output=True, timeout=60)
        p = subprocess.Popen(h + ["run", "--rm", "bb", "sleep", "30"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: (data.is_dir() and os.listdir(data)) or p.poll() is not None,
                 what="the container's dir")
        assert p.poll() is None, p.stderr.read()
        (cid,) = os.listdir(data)
        link = os.readlink(data / cid)
        assert link == f"{xdg}/hutch/rm/{cid[:16]}", link
        assert sorted(os.listdir(data / cid)) in (["state.json"],
                                                   ["state.json", "state.json.staged"])
        p.kill()
        p.wait(timeout=10)
        # the container went with its hutch; the next look collects its dir and link
        wait_for(lambda: subprocess.run(h + ["ps", "-a", "-q"], env=env, capture_output=True,
                                        text=True).stdout == "", what="the record's removal")
        assert os.listdir(data) == [] and os.listdir(xdg / "hutch" / "rm") == []
        cp = subprocess.run(h + ["run", "--rm", "bb", "true"], env=env, capture_output=True,
                            text=True, timeout=60)
        assert cp.returncode == 0, cp.stderr
        assert os.listdir(data) == [] and os.listdir(xdg / "hutch" / "rm") == []
    finally:
        subprocess.run(h + ["rm", "-f", *os.listdir(data)] if data.is_dir() and os.listdir(data)
                       else ["true"], env=env, capture_output=True, timeout=60)
        subprocess.run(h + ["image", "rm", "bb"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(xdg, ignore_errors=True)


def test_rm_flag_in_the_foreground_keeps_its_dir_in_memory(state, tmp):
    if ROOTLESS:
        _in_memory_rootless(state, tmp)
        return
    cp = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", IN_MEMORY_RUN],
                        env={**os.environ, "R": str(state.root),
                             "H": f"{state.bin} --root {state.root}"},
                        capture_output=True, text=True, timeout=120)
    out = dict(l.split("=", 1) for l in cp.stdout.splitlines() if "=" in l)
    assert cp.returncode == 0, (cp.stdout, cp.stderr)
    # relative (the run root is under --root's dir): short enough for the inode
    assert re.fullmatch(r"\.\./run/rm/[0-9a-f]{16}", out["link"]), out
    assert out["ps"] and out["files"] == "state.json", out
    # two words: the listings' headers, nothing under them
    assert out["rc"] == "137" and out["left"] == "2", out
    assert out["true"] == "0"
    # its hutch killed: the container went with it, and the next look collects both
    assert out["killed"] == "2", out
    # a link whose dir is gone (a reboot emptied the run root) is collected too
    assert out["dangling"] == "", out
    # the host's mounts never saw the tmpfs
    assert mounts_mentioning(str(state.root / "run")) == []

def test_run_rm_detached_leaves_nothing(hutch, ctr, state):
    cid = ctr.run("--rm", "bb", "sh", "-c", "sleep 0.3")
    info = ctr.inspect(cid)
    assert info["auto_remove"] is True
    wait_for(lambda: not (state.root / "containers" / cid).exists(), what="removal")
    assert hutch("ps", "-a", "-q").stdout == ""
    assert "no such container" in hutch("inspect", cid, check=False).stderr
    if info.get("cgroup"):
        assert not os.path.exists(info["cgroup"])
    assert mounts_mentioning(cid) == []


def test_rm_flag_rw_layer_on_a_tmpfs_of_its_own(hutch, ctr, state):
    # run --rm: the files the container writes live on a tmpfs of its own mount
    # namespace: nothing of them on the disk, nothing mounted on the host
    cid = ctr.run("--rm", "bb", "sh", "-c", "echo kept > /written; exec sleep 100")
    wait_for(lambda: hutch("exec", cid, "cat", "/written", check=False).stdout == "kept\n",
             what="the write")
    # its record and its log (detached), no upper or work dir
    assert sorted(os.listdir(state.root / "containers" / cid)) == ["container.log", "state.json"]
    assert mounts_mentioning(cid) == []
    seen = hutch("exec", cid, "cat", "/proc/self/mountinfo").stdout.splitlines()
    root = [l for l in seen if l.split()[4] == "/"]
    assert len(root) == 1 and " - overlay " in root[0], seen
    assert f"upperdir={state.root}/containers/{cid}/upper" in root[0], root
    # the rw layer's tmpfs is under the overlay, not reachable from inside
    assert not [l for l in seen if "hutch-rw" in l], seen
    hutch("stop", "-t", "0", cid)
    wait_for(lambda: not (state.root / "containers" / cid).exists(), what="removal")
    assert mounts_mentioning(cid) == []


def test_rm_flag_with_a_memory_limit_writes_on_the_disk(hutch, ctr, state):
    # files do not count against -m (as with Docker): the rw layer stays on the disk
    cid = ctr.run("--rm", "-m", "64m", "bb", "sh", "-c", "echo kept > /written; exec sleep 100")
    upper = state.root / "containers" / cid / "upper"
    wait_for(lambda: (upper / "written").exists(), what="the write on the disk")
    assert (upper / "written").read_text() == "kept\n"
    hutch("stop", "-t", "0", cid)
    wait_for(lambda: not (state.root / "containers" / cid).exists(), what="removal")


def test_rw_layer_disk_keeps_an_rm_containers_files_on_the_disk(hutch, ctr, state):
    # --rw-layer disk: for a container that writes more than RAM can hold
    cid = ctr.run("--rm", "--rw-layer", "disk", "bb", "sh", "-c",
                  "echo kept > /written; exec sleep 100")
    upper = state.root / "containers" / cid / "upper"
    wait_for(lambda: (upper / "written").exists(), what="the write on the disk")
    hutch("stop", "-t", "0", cid)
    wait_for(lambda: not (state.root / "containers" / cid).exists(), what="removal")
    assert mounts_mentioning(cid) == []


def test_rw_layer_from_the_environment_is_a_default_for_rm_runs(hutch, state):
    env = dict(os.environ, HUTCH_RW_LAYER="tmpfs:2m")
    # the size is the tmpfs's: a bigger write fails with ENOSPC, said by dd
    cp = hutch("run", "--rm", "bb", "sh", "-c",
               "dd if=/dev/zero of=/big bs=1M count=4 2>&1; echo rc=$?", env=env)
    assert "No space left on device" in cp.stdout and "rc=1" in cp.stdout, cp.stdout
    # a flag wins over it
    cp = hutch("run", "--rm", "--rw-layer", "tmpfs:8m", "bb", "sh", "-c",
               "dd if=/dev/zero of=/big bs=1M count=4 2>/dev/null; echo rc=$?", env=env)
    assert cp.stdout == "rc=0\n"
    # without --rm it is no default: the container keeps its files on the disk
    name = f"rwenv-{os.getpid()}"
    try:
        cp = hutch("run", "--name", name, "bb", "sh", "-c",
                   "head -c 3000000 /dev/zero > /big && echo ok", env=env)
        assert cp.stdout == "ok\n"
    finally:
        hutch("rm", "-f", name, check=False)


def test_rw_layer_tmpfs_with_a_memory_limit_is_the_users_choice(hutch, ctr, state):
    cid = ctr.run("--rm", "-m", "64m", "--rw-layer", "tmpfs", "bb", "sh", "-c",
                  "echo kept > /written; exec sleep 100")
    wait_for(lambda: hutch("exec", cid, "cat", "/written", check=False).stdout == "kept\n",
             what="the write")
    assert not (state.root / "containers" / cid / "upper").exists()
    hutch("stop", "-t", "0", cid)


@pytest.mark.parametrize("value,says", [
    ("bogus", "invalid rw layer 'bogus': expected tmpfs, tmpfs:SIZE"),
    ("tmpfs:12q", "invalid rw layer size '12q'"),
    ("tmpfs:4k", "invalid rw layer 'tmpfs:4k': too small"),
])
def test_rw_layer_bad_values_are_named(hutch, value, says):
    cp = hutch("run", "--rm", "--rw-layer", value, "bb", "true", check=False)
    assert cp.returncode == 125 and says in cp.stderr and "--rw-layer" in cp.stderr, cp.stderr


def test_rw_layer_tmpfs_needs_rm(hutch):
    cp = hutch("run", "--rw-layer", "tmpfs", "bb", "true", check=False)
    assert cp.returncode == 125 and "--rw-layer tmpfs needs --rm" in cp.stderr, cp.stderr


# ------------------------------------------------------------------ owners dying


def test_state_survives_the_cli(hutch, ctr, state):
    cp = subprocess.run([state.bin, "--root", str(state.root), "run", "-d", *SLEEPER],
                        capture_output=True, text=True, timeout=10)
    assert cp.returncode == 0
    cid = ctr.keep(cp.stdout.strip())
    info = ctr.inspect(cid)
    # the monitor is on its own: its own session, and not our child
    mon = info["monitor_pid"]
    assert alive(mon)
    assert os.getsid(mon) == mon
    assert mon not in descendants(os.getpid())
    # a fresh process sees it running, and again later
    for _ in range(2):
        out = subprocess.run([state.bin, "--root", str(state.root), "ps", "--format", "json"],
                             capture_output=True, text=True, timeout=10).stdout
        assert [(c["id"], c["status"]) for c in map(json.loads, out.splitlines())] == \
            [(cid, "running")]
        time.sleep(0.3)
    assert alive(info["pid"])


def test_monitor_killed(hutch, ctr, state):
    cid = ctr.run(*SLEEPER)
    info = ctr.inspect(cid)
    os.kill(info["monitor_pid"], signal.SIGKILL)
    wait_for(lambda: not alive(info["monitor_pid"]), what="the monitor to die")
    # the container dies with it (PDEATHSIG) ...
    wait_for(lambda: not alive(info["pid"]), what="the container to die")
    # ... and the next command repairs the record: no stale "running"
    assert ps_json(hutch) == []
    every = ps_json(hutch, "-a")
    assert [(c["id"], c["status"], c["exit_code"]) for c in every] == [(cid, "exited", 137)]
    assert "Exited (137)" in ps_line(hutch, cid, "-a")
    if ROOTLESS:
        assert not info.get("cgroup")
    else:
        assert info["cgroup"] and not os.path.exists(info["cgroup"])
    assert mounts_mentioning(str(state.root)) == []
    assert mounts_mentioning(cid) == []
    cp = hutch("exec", cid, "true", check=False)
    assert cp.returncode == 125 and "not running" in cp.stderr
    hutch("rm", cid)
    assert not (state.root / "containers" / cid).exists()


def test_monitor_killed_with_rm_flag_leaves_nothing(hutch, ctr, state):
    cid = ctr.run("--rm", *SLEEPER)
    info = ctr.inspect(cid)
    os.kill(info["monitor_pid"], signal.SIGKILL)
    wait_for(lambda: not alive(info["pid"]), what="the container to die")
    assert ps_json(hutch, "-a") == []
    assert not (state.root / "containers" / cid).exists()
    if info.get("cgroup"):
        assert not os.path.exists(info["cgroup"])


def test_container_process_killed(hutch, ctr, state):
    cid = ctr.run(*SLEEPER)
    info = ctr.inspect(cid)
    os.kill(info["pid"], signal.SIGKILL)
    # the monitor records the exit and cleans up, then goes away
    wait_for(lambda: not alive(info["monitor_pid"]), what="the monitor to finish")
    every = ps_json(hutch, "-a")
    assert [(c["id"], c["status"], c["exit_code"]) for c in every] == [(cid, "exited", 137)]
    assert ps_json(hutch) == []
    if ROOTLESS:
        assert not info.get("cgroup")
    else:
        assert not os.path.exists(info["cgroup"])
    assert mounts_mentioning(str(state.root)) == []


# ------------------------------------------------------------------ owners dying, non-root users


def oci_image_with_user(hutch, state, tmp, name, user):
    """Import bb as a one-layer OCI layout whose config sets USER."""
    import gzip
    import hashlib

    out = tmp / f"{name}-oci"
    (out / "blobs" / "sha256").mkdir(parents=True)

    def blob(data):
        d = hashlib.sha256(data).hexdigest()
        (out / "blobs" / "sha256" / d).write_bytes(data)
        return {"digest": "sha256:" + d, "size": len(data)}

    raw = state.bb_tar.read_bytes()
    layer = blob(gzip.compress(raw, 1, mtime=0))
    config = blob(json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"User": user, "Env": ["PATH=/usr/bin:/bin:/usr/sbin:/sbin"]},
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}).encode())
    manifest = blob(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    **layer}]}).encode())
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest}]}))
    (out / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    hutch("image", "import", out, name)
    return name


@pytest.fixture
def user_image(hutch, state, tmp):
    name = oci_image_with_user(hutch, state, tmp, "bb-nobody", "nobody")
    yield name
    hutch("image", "rm", name, check=False)


def host_uid(pid):
    return int(status_fields(Path(f"/proc/{pid}/status").read_text())["Uid"])


@pytest.mark.parametrize("how", ["-u nobody", "image USER"])
def test_monitor_killed_takes_a_non_root_container(hutch, ctr, user_image, how):
    """setresuid clears PR_SET_PDEATHSIG: the container process arms it again after
    changing its credentials, so a non-root container dies with its monitor too."""
    args = ["-u", "nobody", *SLEEPER] if how == "-u nobody" else [user_image, "sleep", "100"]
    cid = ctr.run(*args)
    info = ctr.inspect(cid)
    assert hutch("exec", cid, "id", "-u").stdout == "65534\n"
    assert host_uid(info["pid"]) != os.getuid()  # the credentials did change
    os.kill(info["monitor_pid"], signal.SIGKILL)
    wait_for(lambda: not alive(info["pid"]), timeout=5, what="the container to die")
    assert [(c["id"], c["status"], c["exit_code"]) for c in ps_json(hutch, "-a")] == \
        [(cid, "exited", 137)]


def test_exec_user_dies_with_its_cli(hutch, ctr, spawn):
    """exec -u: the command (non-root) dies when the `hutch exec` that runs it is
    SIGKILLed, and so does the middle process."""
    cid = ctr.run(*SLEEPER)
    p = spawn("exec", "-u", "nobody", cid, "sleep", "300")
    execd = wait_for(lambda: [d for d in descendants(p.pid) if comm(d) == "sleep"],
                     what="the exec'd sleep")[0]
    middle = [d for d in descendants(p.pid) if d != execd]
    assert host_uid(execd) != os.getuid()
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=5)
    wait_for(lambda: not alive(execd) and not any(alive(m) for m in middle), timeout=5,
             what="the exec'd command to die with hutch exec")
    assert ctr.status(cid) == "running"


# ------------------------------------------------------------------ the monitor's own state


def test_monitor_keeps_no_fd_or_cwd_of_the_cli(state, ctr, tmp):
    """The monitor closes what it inherited from the CLI (a pipe on fd 3 would
    keep a reader waiting for the container's lifetime) and leaves its cwd."""
    cmd = (f"'{state.bin}' --root '{state.root}' run -d --name fd3 bb sleep 1000 "
           f"3>&1 >/dev/null | cat")
    ctr.keep("fd3")
    t0 = time.monotonic()
    cp = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=20,
                        cwd=tmp)
    assert cp.returncode == 0, cp
    assert time.monotonic() - t0 < 5, "the pipe on fd 3 was held open"
    info = ctr.inspect("fd3")
    mon = info["monitor_pid"]
    assert os.readlink(f"/proc/{mon}/cwd") == "/"
    fds = {int(n): os.readlink(f"/proc/{mon}/fd/{n}") for n in os.listdir(f"/proc/{mon}/fd")}
    assert all(fds[i] == "/dev/null" for i in (0, 1, 2)), fds
    # what is left is its own: the container's pidfd and output, its log, layer locks
    for n, target in fds.items():
        assert not target.startswith("pipe:") or n > 2, (n, target, fds)
        assert str(tmp) not in target, fds
    assert os.getsid(mon) == mon


def test_run_detached_with_stdout_a_pipe_returns(state, ctr):
    p = subprocess.Popen([state.bin, "--root", str(state.root), "run", "-d", "bb", "sleep",
                          "1000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=5)  # EOF on both pipes: nobody else holds them
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError("run -d with stdout and stderr pipes did not return")
    ctr.keep(out.decode().strip())
    assert p.returncode == 0 and ID_RE.fullmatch(out.decode().strip()), (out, err)


def test_relative_root_with_a_detached_container(state, tmp):
    """The monitor leaves the caller's directory: a relative --root still works."""
    h = [state.bin, "--root", "rel-root"]
    run = lambda *a: subprocess.run([*h, *a], cwd=tmp, capture_output=True, text=True,
                                    timeout=30)
    assert run("image", "import", str(state.bb_tar), "bb").returncode == 0
    cp = run("run", "-d", "bb", "sh", "-c", "echo hi; sleep 100")
    assert cp.returncode == 0, cp
    cid = cp.stdout.strip()
    try:
        wait_for(lambda: run("logs", cid).stdout == "hi\n", what="the log")
        assert run("stop", "-t", "0", cid).returncode == 0
        assert json.loads(run("inspect", cid).stdout)[0]["status"] == "exited"
    finally:
        run("rm", "-f", cid)
        run("image", "rm", "bb")
    assert os.listdir(tmp / "rel-root" / "containers") == []


def test_monitor_holds_the_layer_locks(hutch, ctr, image_from):
    """The only fds the monitor keeps of the CLI's are the image's layer locks: the
    image cannot be removed under a detached container."""
    img = image_from("held")
    cid = ctr.run(img, "sleep", "100")
    cp = hutch("image", "rm", img, check=False)
    assert cp.returncode != 0, cp
    hutch("rm", "-f", cid)
    hutch("image", "rm", img)


def test_monitor_holds_the_layer_locks_when_started_with_fds_0_to_2_closed(
        state, hutch, ctr, image_from):
    """Started with fds 0-2 closed, hutch's first opens (a layer lock among them)
    would get those numbers, and the monitor's dup2 of /dev/null onto 0-2 would
    close them: the image could then be removed under the running container."""
    img = image_from("held-nofds")
    ctr.keep("nofds")
    cp = subprocess.run(["sh", "-c", f"exec '{state.bin}' --root '{state.root}' run -d "
                         f"--name nofds {img} sleep 100 <&- >&- 2>&-"], timeout=20)
    assert cp.returncode == 0, cp
    info = ctr.inspect("nofds")
    assert info["status"] == "running", info
    mon = info["monitor_pid"]
    held = [os.readlink(f"/proc/{mon}/fd/{n}") for n in os.listdir(f"/proc/{mon}/fd")]
    assert any("/images/layers/" in t for t in held), held
    cp = hutch("image", "rm", img, check=False)
    assert cp.returncode != 0 and "in use" in cp.stderr, cp
    hutch("rm", "-f", "nofds")
    hutch("image", "rm", img)


# ------------------------------------------------------------------ owners dying while it starts


def _blocking_start(spawn, tmp, *flags):
    """Start a container whose start blocks: the user lookup opens /etc/passwd, here
    a FIFO nobody writes to. Returns (the hutch process, the fifo)."""
    fifo = tmp / "passwd-fifo"
    os.mkfifo(fifo)
    p = spawn("run", *flags, "-v", f"{fifo}:/etc/passwd", "-u", "app", "bb", "true")
    return p, fifo


def _starting_record(hutch):
    recs = wait_for(lambda: [c for c in ps_json(hutch, "-a") if c["status"] == "created"],
                    what="the record of the starting container")
    assert len(recs) == 1, recs
    return recs[0]


@pytest.mark.parametrize("how", ["detached named", "detached unnamed", "foreground"])
def test_owner_killed_while_the_container_starts(hutch, ctr, spawn, tmp, state, how):
    """The first record names its owner and its cgroup: a monitor (or foreground
    `run`) SIGKILLed while the container starts leaves no "Created" record, no
    claimed name, no cgroup and no rw layer once the next command looks."""
    flags = {"detached named": ["-d", "--name", "starting"], "detached unnamed": ["-d"],
             "foreground": ["--name", "starting"]}[how]
    parent_existed = hutch_cgroup_parent().exists()
    p, fifo = _blocking_start(spawn, tmp, *flags)
    rec = _starting_record(hutch)
    owner = rec["monitor_pid"]
    assert alive(owner)
    if how == "foreground":
        assert owner == p.pid
    else:
        assert owner != p.pid and p.poll() is None  # the CLI waits for the monitor
    if ROOTLESS:
        assert not rec.get("cgroup")
    else:
        assert rec["cgroup"] == str(hutch_cgroup_parent() / rec["id"])
        assert os.path.isdir(rec["cgroup"])
    # a live owner's record is left alone by readers
    for _ in range(3):
        assert [c["id"] for c in ps_json(hutch, "-a")] == [rec["id"]]
    assert (state.root / "containers" / rec["id"]).is_dir()
    os.kill(owner, signal.SIGKILL)
    p.wait(timeout=10)
    if how != "foreground":
        assert p.returncode == 125
        assert "died while starting" in p.stderr.read().decode()
    wait_for(lambda: not alive(owner), what="the owner to die")
    assert ps_json(hutch, "-a") == []
    assert os.listdir(state.root / "containers") == []
    if rec.get("cgroup"):
        assert not os.path.exists(rec["cgroup"])
        if not parent_existed:
            assert not hutch_cgroup_parent().exists() or _cgroup_dirs()
    if "--name" in flags:
        assert hutch("run", "--rm", "--name", "starting", "bb", "true").returncode == 0


def test_rm_of_a_starting_container(hutch, ctr, spawn, tmp, state):
    p, fifo = _blocking_start(spawn, tmp, "-d", "--name", "slow")
    rec = _starting_record(hutch)
    cp = hutch("rm", "slow", check=False)
    assert cp.returncode != 0 and "starting" in cp.stderr and "rm -f" in cp.stderr, cp
    assert alive(rec["monitor_pid"])
    assert hutch("rm", "-f", "slow").stdout == "slow\n"
    assert not alive(rec["monitor_pid"])
    p.wait(timeout=10)
    assert p.returncode == 125
    assert ps_json(hutch, "-a") == []
    if rec.get("cgroup"):
        assert not os.path.exists(rec["cgroup"])


def mkdirat_calls(state, cmd, pattern):
    """cmd's mkdirat calls under strace, and the 1-based numbers of those that
    match pattern (what strace's inject=...:when=N counts)."""
    log = state.work / "mkdirat.strace"
    subprocess.run(["strace", "-qq", "-o", str(log), "-e", "trace=mkdirat", *cmd], check=True,
                   capture_output=True, timeout=30)
    calls = log.read_text().splitlines()
    log.unlink()
    return calls, [i + 1 for i, l in enumerate(calls) if pattern.match(l)]


ID_ARG_RE = re.compile(r'^\w+\([^,]+, "([0-9a-f]{64})"', re.M)


@pytest.mark.parametrize("point", ["writing the first record", "making the cgroup",
                                   "making the rw layer"])
def test_start_killed_on_the_host_side_leaves_nothing(hutch, state, point):
    """`run` SIGKILLed (by strace, at one system call) between claiming the
    container and cloning it: the first record comes before the cgroup, so
    whatever was made is named by a record whose owner is dead, or is a
    container dir without a record; the next command removes it all."""
    base = ["strace", "-qq", "-o"]
    cmd = [state.bin, "--root", str(state.root), "run", "--rm", "bb", "true"]
    if point == "making the cgroup":
        # which mkdirat makes the cgroup (named by the id) depends on the root's depth
        calls, nth = mkdirat_calls(state, cmd, ID_ARG_RE)
        if ROOTLESS:
            assert nth == [], calls  # no delegated cgroup here: nothing to kill it at
            return
        assert len(nth) == 1, calls
        inject = ["-e", "trace=mkdirat", "-e", f"inject=mkdirat:signal=SIGKILL:when={nth[0]}"]
    elif point == "writing the first record":
        inject = ["-e", "trace=renameat", "-e", "inject=renameat:signal=SIGKILL:when=1"]
    else:  # upper/, after the data dir: mkdir(2) is not used by mkdir -p
        inject = ["-e", "trace=mkdir", "-e", "inject=mkdir:signal=SIGKILL:when=2"]
        # a --rm container's rw layer is on a tmpfs the child makes, but for one
        # with a memory limit: on the disk, made here
        cmd[-2:-2] = ["-m", "64m"]
    cp = subprocess.run([*base, "/dev/null", *inject, *cmd], capture_output=True, text=True,
                        timeout=30)
    try:
        assert cp.returncode == -signal.SIGKILL, cp  # strace ends as its tracee did
        left = os.listdir(state.root / "containers")
        assert len(left) == 1, left  # the killed start's dir
        cgroup = hutch_cgroup_parent() / left[0]
        assert cgroup.is_dir() == (point == "making the rw layer" and not ROOTLESS)
    finally:
        listing = hutch("ps", "-a")  # repairs (the leak check after the test looks too)
    assert listing.stdout.splitlines()[1:] == [] and listing.stderr == "", listing
    assert os.listdir(state.root / "containers") == []
    assert not cgroup.exists()


PARENT_MKDIR_RE = re.compile(r'^mkdirat\(\d+, "hutch", ')


@pytest.mark.parametrize("meanwhile", ["the last container ends", "a start fails"])
def test_start_survives_the_shared_cgroup_parent_going(hutch, ctr, state, tmp, meanwhile):
    """The shared hutch/ parent goes with the last container. A start that has
    just made (or found) it is held (strace delays its mkdirat) while the last
    container ends and takes the parent along: the start makes it again. A start
    that fails before it made its cgroup (its name is taken) never removes the
    parent another start is about to use."""
    cmd = [state.bin, "--root", str(state.root), "run", "--rm", "bb", "true"]
    calls, nth = mkdirat_calls(state, cmd, PARENT_MKDIR_RE)
    if ROOTLESS:
        assert nth == [], calls  # no delegated cgroup here: no parent to race for
        return
    assert len(nth) == 1, calls
    if meanwhile == "the last container ends":
        # it ends by itself, when told: its monitor removes the parent, taking no lock
        last = ctr.run("-v", f"{tmp}:/sync", "bb", "sh", "-c",
                       "while [ ! -e /sync/go ]; do sleep 0.01; done")
        last_cgroup = Path(ctr.inspect(last)["cgroup"])
    else:
        ctr.keep("taken")
        hutch("run", "--name", "taken", "bb", "true")  # an exited record: the name is taken
    before = set(os.listdir(state.root / "containers"))
    held = subprocess.Popen(["strace", "-qq", "-o", "/dev/null", "-e", "trace=mkdirat", "-e",
                             f"inject=mkdirat:delay_exit=1500000:when={nth[0]}", *cmd],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # its record is written: it is in cgroup_create, held after the parent's mkdir
        wait_for(lambda: set(os.listdir(state.root / "containers")) - before,
                 what="the held start")
        if meanwhile == "the last container ends":
            (tmp / "go").touch()
            # its monitor removes its cgroup, then the parent if nothing else is in it
            wait_for(lambda: not last_cgroup.exists(), what="the last container's cgroup")
        else:
            cp = hutch("run", "--name", "taken", "bb", "true", check=False)
            assert cp.returncode == 125 and "already in use" in cp.stderr, cp
            assert hutch_cgroup_parent().is_dir()
        out, err = held.communicate(timeout=30)
    finally:
        if held.poll() is None:
            held.kill()
            held.communicate()
    assert held.returncode == 0 and out == "", (out, err)


def test_orphan_container_dir_collected(hutch, state):
    """A container dir with no record (its creator died before writing one):
    nobody owns it, so the next listing removes it."""
    orphan = state.root / "containers" / ("ab" * 32)
    (orphan / "upper" / "etc").mkdir(parents=True)
    (orphan / "work").mkdir()
    (orphan / "upper" / "etc" / "file").write_text("x")
    assert ps_json(hutch, "-a") == []
    assert not orphan.exists()


def test_unreadable_record_left_alone(hutch, state):
    d = state.root / "containers" / ("cd" * 32)
    d.mkdir()
    (d / "state.json").write_text("{not json")
    try:
        assert ps_json(hutch, "-a") == []
        assert (d / "state.json").exists()
    finally:
        (d / "state.json").unlink()
        d.rmdir()


def test_rm_flag_cgroup_that_could_not_go_is_removed_later(hutch, ctr, state):
    """--rm: the record stays (hidden) while its cgroup cannot be removed, and the
    next command kills what is in it and removes everything."""
    cid = ctr.run("--rm", "bb", "sleep", "100")
    info = ctr.inspect(cid)
    if ROOTLESS:
        assert not info.get("cgroup")
        return
    stray = subprocess.Popen(["sleep", "100"])
    try:
        Path(info["cgroup"], "cgroup.procs").write_text(str(stray.pid))
        os.kill(info["pid"], signal.SIGKILL)
        wait_for(lambda: not alive(info["monitor_pid"]), timeout=20, what="the monitor")
        assert (state.root / "containers" / cid).is_dir()  # kept: its cgroup is busy
        assert os.path.isdir(info["cgroup"]) and stray.poll() is None
        assert ps_json(hutch, "-a") == []
        assert not (state.root / "containers" / cid).exists()
        assert not os.path.exists(info["cgroup"])
        assert stray.wait(timeout=5) == -signal.SIGKILL
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()


def test_cgroup_kept_in_the_record_until_it_can_go(hutch, ctr, state):
    """A cgroup that cannot be removed when the container ends (a process the
    runtime does not know is in it) stays in the record, and `rm` removes it."""
    cid = ctr.run("bb", "sleep", "100")
    info = ctr.inspect(cid)
    if ROOTLESS:
        assert not info.get("cgroup")
        return
    stray = subprocess.Popen(["sleep", "100"])
    try:
        Path(info["cgroup"], "cgroup.procs").write_text(str(stray.pid))
        # `stop` waits for the monitor, which waits for the cgroup to empty (5 s)
        # before it gives up: through the monitor's pidfd, not in sleeping slices
        trace = state.work / f"stop-{cid[:12]}.strace"
        subprocess.run(["strace", "-qq", "-f", "-e", "trace=poll,ppoll", "-o", str(trace),
                        state.bin, "--root", str(state.root), "stop", "-t", "0", cid],
                       check=True, capture_output=True, timeout=30)
        polls = trace.read_text().splitlines()
        trace.unlink()
        assert len(polls) <= 4, polls
        info = ctr.inspect(cid)
        assert info["status"] == "exited"
        assert info["cgroup"] and os.path.isdir(info["cgroup"])
        assert stray.poll() is None
        hutch("rm", cid)
        assert not os.path.exists(info["cgroup"])
        assert stray.wait(timeout=5) == -signal.SIGKILL
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()


def _plant_record(state, cid, **fields):
    """A record as a dead owner leaves it (monitor pid 0: gone), with fields."""
    rec = {"id": cid, "status": "running", "image": "bb", "command": "sleep 100",
           "created": time.time_ns(), "pid": 0, "monitor_pid": 0, "monitor_start": 0,
           "process": {"args": ["sleep", "100"], "env": [], "cwd": "/"}, **fields}
    state.run("ps", "-a")  # makes DATA/containers if this is the first test
    d = state.root / "containers" / cid
    d.mkdir()
    (d / "state.json").write_text(json.dumps(rec))
    return d


def _rewrite_record(state, cid, **fields):
    path = state.root / "containers" / cid / "state.json"
    rec = {**json.loads(path.read_text()), **fields}
    tmp = path.with_name("state.json.tmp.test")
    tmp.write_text(json.dumps(rec))
    os.rename(tmp, path)


def test_a_record_naming_another_cgroup_never_touches_it(hutch, state):
    """A record is a file: the cgroup it names is checked before the repair of a
    dead owner's container kills what runs in it or removes it. Root's victim
    is a cgroup this test makes, with a process in it, whose path even ends in
    hutch/<id>; a rootless user cannot make one, so its record names a path of
    the cgroup root that is not a directory."""
    cid = "5e" * 32
    victim, sleeper = None, None
    if ROOTLESS:
        named = str(Path(str(hutch_cgroup_parent().parent), "cgroup.procs"))
    else:
        top = hutch_cgroup_parent().parent / f"hutch-victim-{os.getpid()}"
        victim = top / "hutch" / cid
        victim.mkdir(parents=True)
        sleeper = subprocess.Popen(["sleep", "100"])
        (victim / "cgroup.procs").write_text(str(sleeper.pid))
        named = str(victim)
    d = state.root / "containers" / cid
    try:
        _plant_record(state, cid, cgroup=named)
        cp = hutch("ps", "-a")
        assert f"the record of container {cid[:12]} names the cgroup '{named}', which is " \
               f"not the container's" in cp.stderr, cp.stderr
        assert cp.stderr.endswith(": left alone\n") and cp.stderr.count("\n") == 1, cp.stderr
        info = json.loads(hutch("inspect", cid).stdout)[0]
        assert info["status"] == "exited" and "cgroup" not in info, info
        hutch("rm", cid)
        assert not d.exists()
        if victim:
            assert victim.is_dir() and sleeper.poll() is None
            assert int((victim / "cgroup.procs").read_text()) == sleeper.pid
    finally:
        shutil.rmtree(d, ignore_errors=True)
        if sleeper:
            sleeper.kill()
            sleeper.wait()
            for cg in (victim, victim.parent, victim.parent.parent):
                if cg.exists():
                    wait_for(lambda: (cg / "cgroup.procs").read_text() == "",
                             what=f"{cg} to empty")
                    cg.rmdir()


@pytest.mark.parametrize("where", ["a file's path", "another cgroup"])
def test_exec_refuses_a_cgroup_it_cannot_open_or_that_is_not_the_containers(
        hutch, ctr, state, where):
    """exec starts its command in the container's cgroup (its limits, its
    cgroup.kill) or not at all. A record naming a path that cannot be opened
    (ENOTDIR, as the code once only refused ENOENT) or a cgroup that is not the
    container's would let the command run outside of it."""
    cid = ctr.run(*SLEEPER)
    info = ctr.inspect(cid)
    unified = hutch_cgroup_parent().parent
    named = {"a file's path": f"{unified}/cgroup.procs/hutch/{cid}",
             "another cgroup": str(unified)}[where]
    _rewrite_record(state, cid, cgroup=named)
    cp = hutch("exec", cid, "sh", "-c", "echo ran; touch /ran", check=False)
    assert cp.returncode == 125 and cp.stdout == "", cp
    assert "exec refused: it would run outside the container's cgroup" in cp.stderr, cp.stderr
    assert named in cp.stderr and cp.stderr.count("\n") == 1, cp.stderr
    if where == "a file's path" and ROOTLESS:
        assert cp.stderr.endswith(": Not a directory\n"), cp.stderr
    assert not (state.root / "containers" / cid / "upper" / "ran").exists()
    _rewrite_record(state, cid, cgroup=info.get("cgroup"))
    assert hutch("exec", cid, "echo", "ran").stdout == "ran\n"


@pytest.mark.parametrize("verb,nth", [("run", 1), ("exec", 1), ("exec", 2)])
def test_no_pidfd_open_says_what_kernel_is_needed(state, ctr, verb, nth):
    """A kernel without pidfd_open (before 5.3, or a seccomp filter hiding it;
    strace fakes its ENOSYS here) is named as such: not a bare "pidfd_open:
    Function not implemented", nor, for exec's pidfd of the container, "not
    running"."""
    args = ["run", "--rm", "bb", "true"] if verb == "run" else ["exec", ctr.run(*SLEEPER), "true"]
    cp = subprocess.run(["strace", "-qq", "-o", "/dev/null", "-e", "trace=pidfd_open",
                         "-e", f"inject=pidfd_open:error=ENOSYS:when={nth}",
                         state.bin, "--root", str(state.root), *args],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 125 and cp.stdout == "", cp
    assert cp.stderr == ("hutch: pidfd_open is not available: hutch needs Linux 5.3 or later "
                         "(or, under a seccomp filter, one that allows pidfd_open)\n"), cp.stderr


def test_exec_racing_the_exit_says_not_running(state, ctr):
    """An exec whose container ends while it starts: strace holds its clone3 back
    until the container has exited and its cgroup is gone."""
    cid = ctr.run("bb", "sleep", "0.3")
    cmd = ["strace", "-qq", "-o", "/dev/null", "-e", "trace=clone3",
           "-e", "inject=clone3:delay_enter=1500000",
           state.bin, "--root", str(state.root), "exec", cid, "echo", "hi"]
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert ctr.status(cid) == "exited"
    assert cp.returncode == 125, cp
    assert cp.stdout == ""
    assert cp.stderr == f"hutch: container {cid[:12]} is not running\n", cp.stderr


# ------------------------------------------------------------------ names


@pytest.mark.parametrize("bad", ["", "x", "bad name/../x", "two\nlines", "-dash", ".dot",
                                 "_under", "a/b", "../up", "tab\tname", "ünïcode", "semi;colon",
                                 "//twoslashes"])
def test_invalid_names_refused(hutch, bad):
    for flags in (["-d"], ["--rm"]):
        cp = hutch("run", *flags, "--name", bad, "bb", "true", check=False)
        assert cp.returncode == 125, (bad, cp)
        # named as given, control characters escaped (a message is one line)
        shown = "".join(f"\\x{ord(c):02x}" if ord(c) < 0x20 else c for c in bad)
        assert f"invalid container name '{shown}'" in cp.stderr, cp.stderr
        assert len(cp.stderr.splitlines()) == 1, cp.stderr
        assert "letters, digits" in cp.stderr
        assert cp.stdout == ""
    assert ps_json(hutch, "-a") == []


@pytest.mark.parametrize("good", ["ab", "web-1", "Web_1.prod", "9lives", "a" * 200])
def test_valid_names(hutch, ctr, good):
    cid = ctr.run("bb", "true", name=good)
    assert ctr.inspect(good)["id"] == cid and ctr.inspect(good)["name"] == good


def test_leading_slash_dropped_like_docker(hutch, ctr):
    cid = ctr.run("bb", "true", name="/slashed")
    ctr.keep("slashed")
    assert ctr.inspect("slashed")["id"] == cid
    assert ctr.inspect("slashed")["name"] == "slashed"


def test_a_full_id_wins_over_a_name_like_it(hutch, ctr):
    """Docker's lookup order: a full id, then a name, then an id prefix."""
    first = ctr.run(*SLEEPER)
    second = ctr.run(*SLEEPER, name=first)  # a name that is the other's full id
    assert ctr.inspect(first)["id"] == first
    prefix_name = ctr.run(*SLEEPER, name=second[:12])
    assert ctr.inspect(second[:12])["id"] == prefix_name  # the name, not the prefix


# ------------------------------------------------------------------ -d with -i and -t


def test_run_dit_keeps_a_shell_alive(hutch, ctr, state):
    """`run -dit bb sh`: a pty whose master the monitor holds (the shell never sees
    EOF), its output in the log; `exec -it` into it works."""
    cid = ctr.run("-dit", "bb", "sh")
    wait_log(hutch, cid, "# ")  # the shell's prompt, through the pty, in the log
    time.sleep(0.3)  # a shell that saw EOF would be gone by now
    info = ctr.inspect(cid)
    assert info["status"] == "running" and comm(info["pid"]) == "sh"
    assert info["process"]["terminal"] is True
    out = hutch("exec", cid, "sh", "-c", "ls -l /proc/1/fd/0 /proc/1/fd/1; stty -F /dev/pts/0 size")
    assert re.search(r"/proc/1/fd/0 -> /dev/pts/0", out.stdout), out.stdout
    assert re.search(r"/proc/1/fd/1 -> /dev/pts/0", out.stdout), out.stdout
    assert out.stdout.splitlines()[-1] == "24 80"
    # exec -it into it, through its own pty
    master, slave = os.openpty()

    def ctty():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen([state.bin, "--root", str(state.root), "exec", "-it", cid, "sh", "-c",
                          "tty; echo from-exec; read x; echo got=$x"], stdin=slave,
                         stdout=slave, stderr=slave, start_new_session=True, preexec_fn=ctty)
    os.close(slave)
    try:
        out = _read_until(master, rb"from-exec\r\n")
        assert re.search(rb"^/dev/pts/[1-9]\d*\r$", out, re.M), out
        os.write(master, b"typed\r")
        _read_until(master, rb"got=typed\r\n")
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    assert ctr.status(cid) == "running"
    hutch("stop", "-t", "0", cid)
    assert ctr.inspect(cid)["exit_code"] == 137


def test_run_dt_output_goes_to_the_log(hutch, ctr):
    cid = ctr.run("-dt", "bb", "sh", "-c", "tty; [ -t 0 ] && echo stdin-is-a-tty; echo done")
    ctr.wait_exited(cid)
    out = hutch("logs", cid, text=False).stdout  # as the pty wrote it (so does Docker)
    assert out == b"/dev/pts/0\r\nstdin-is-a-tty\r\ndone\r\n", out
    cp = hutch("run", "-dt", "bb", "true", check=False)  # no "not a terminal" warning
    ctr.keep(cp.stdout.strip())
    assert cp.returncode == 0 and cp.stderr == "", cp


def test_run_dt_shell_stays_alive(hutch, ctr):
    cid = ctr.run("-dt", "bb", "sh")
    wait_log(hutch, cid, "# ")
    time.sleep(0.3)  # a shell that saw EOF would be gone by now
    assert ctr.status(cid) == "running"


def test_run_di_stdin_stays_open(hutch, ctr):
    """-di without a pty: stdin is a pipe the monitor holds open (no EOF); -d alone
    gives /dev/null, which ends `cat` at once."""
    kept = ctr.run("-di", "bb", "sh", "-c", "echo started; cat; echo cat-ended")
    ended = ctr.run("-d", "bb", "sh", "-c", "cat; echo cat-ended")
    ctr.wait_exited(ended)
    assert hutch("logs", ended).stdout == "cat-ended\n"
    wait_log(hutch, kept, "started")
    time.sleep(0.5)
    assert ctr.status(kept) == "running"
    assert "cat-ended" not in hutch("logs", kept).stdout
    assert hutch("exec", kept, "readlink", "/proc/1/fd/0").stdout.startswith("pipe:")


# ------------------------------------------------------------------ one option syntax


def test_every_verb_takes_opt_equals_value(hutch, ctr):
    cid = ctr.run("bb", "sh", "-c", "trap 'echo got-usr1' USR1; echo ready; "
                  "while true; do sleep 100 & wait; done")
    wait_log(hutch, cid, "ready")
    assert hutch("kill", "--signal=USR1", cid).stdout == f"{cid}\n"
    wait_log(hutch, cid, "got-usr1")
    hutch("kill", "-sUSR1", cid)
    wait_for(lambda: hutch("logs", cid).stdout.count("got-usr1") == 2, what="second USR1")
    assert hutch("exec", "--env=B=2", "-eC=3", "--user=1000", "--workdir=/tmp", cid, "sh",
                 "-c", "echo $B $C $(id -u) $(pwd)").stdout == "2 3 1000 /tmp\n"
    assert hutch("exec", "--interactive=true", cid, "cat", input="in\n").stdout == "in\n"
    assert hutch("exec", "--interactive=false", cid, "cat", input="in\n").stdout == ""
    assert hutch("logs", "--tail=1", cid).stdout == "got-usr1\n"
    assert hutch("logs", cid, "--tail", "1").stdout == "got-usr1\n"  # options after it too
    assert [c["id"] for c in ps_json(hutch, "--all")] == [cid]
    t0 = time.monotonic()
    assert hutch("stop", "--time=0", cid).stdout == f"{cid}\n"
    assert time.monotonic() - t0 < 3
    assert hutch("rm", cid, "--force=true").stdout == f"{cid}\n"


@pytest.mark.parametrize("args,message", [
    (["stop", "--time=soon", "x"], "invalid --time 'soon'"),
    (["stop", "--time", "-1", "x"], "invalid --time '-1'"),
    (["stop", "-t", "soon", "x"], "invalid -t 'soon'"),
    (["stop", "--time"], "option '--time' needs a value"),
    (["kill", "--signal=NOPE", "x"], "unknown signal 'NOPE'"),
    (["kill", "--sig", "x"], "unknown option '--sig'"),
    (["rm", "--force=maybe", "x"], "'--force' takes no value"),
    (["rm", "-x", "y"], "unknown option '-x'"),
    (["logs", "--tail=x", "y"], "invalid --tail 'x'"),
    (["logs", "-nx", "y"], "invalid -n 'x'"),
    (["ps", "--format=yaml"], "unknown --format 'yaml'"),
    (["exec", "--workdir=rel", "x", "true"], "invalid --workdir 'rel'"),
    (["exec", "-iw", "rel", "x", "true"], "invalid -w 'rel'"),
    (["exec", "--bogus", "x", "true"], "unknown option '--bogus'"),
    (["run", "--bogus", "bb"], "unknown option '--bogus'"),
    (["run", "--bogus"], "unknown option '--bogus'"),
    (["run", "--name"], "option '--name' needs a value"),
    (["run", "-e"], "option '-e' needs a value"),
    (["run", "-d"], "no image given"),
    (["run", "--name", "web"], "no image given"),
    (["run", "--rm", "-e", "A=1"], "no image given"),
])
def test_option_errors_are_alike(hutch, args, message):
    cp = hutch(*args, check=False)
    assert cp.returncode == 125, cp
    assert cp.stderr.startswith(f"hutch: {args[0]}: ") and message in cp.stderr, cp.stderr
    assert cp.stderr.count("\n") == 1, cp.stderr  # said once, and nothing else
    assert cp.stdout == ""


def test_exec_command_options_are_the_commands(hutch, ctr):
    cid = ctr.run(*SLEEPER)
    assert hutch("exec", cid, "echo", "-e", "--tail=1").stdout == "--tail=1\n"
    assert hutch("exec", "--", cid, "echo", "-n", "x").stdout == "x"


@pytest.mark.parametrize("verb", ["ps", "logs", "stop", "kill", "rm", "inspect", "exec"])
def test_verb_help(hutch, verb):
    cp = hutch(verb, "--help")
    assert cp.stdout.startswith(f"Usage: hutch {verb}"), cp.stdout


# ------------------------------------------------------------------ ps as docker shows it


def _age_record(state, cid, **ago_s):
    """Move a record's times into the past (what ps reads), by whole seconds."""
    path = state.root / "containers" / cid / "state.json"
    rec = json.loads(path.read_text())
    now = time.time_ns()
    for key, secs in ago_s.items():
        rec[key] = now - int(secs * 1e9)
    path.write_text(json.dumps(rec))


def test_ps_columns_fit_their_content(hutch, ctr):
    up = ctr.run(*SLEEPER, name="web")
    long = ctr.run("bb", "sh", "-c", "exit 137; this command is longer than twenty")
    ctr.wait_exited(long)
    lines = hutch("ps", "-a").stdout.splitlines()
    header = lines[0]
    names_at = header.index("NAMES")
    for col in ("IMAGE", "COMMAND", "PID", "CREATED", "STATUS"):
        at = header.index(col)
        for row in lines[1:]:
            assert row[at - 3:at] == "   " and row[at] != " ", (col, row)  # aligned, 3 apart
    rows = {l[:12]: l for l in lines[1:]}
    assert rows[up[:12]][names_at:] == "web"
    assert "Exited (137) " in rows[long[:12]]
    assert '"sleep 100"' in rows[up[:12]]
    assert '"sh -c exit 137; thi\u2026"' in rows[long[:12]]  # cut to 20, as docker does


@pytest.mark.parametrize("secs,text", [(0, "Less than a second"), (1, "1 second"),
                                       (2, "2 seconds"), (59, "59 seconds"),
                                       (60, "About a minute"), (150, "2 minutes"),
                                       (3600, "About an hour"), (3 * 3600, "3 hours"),
                                       (3 * 86400, "3 days"), (20 * 86400, "2 weeks"),
                                       (90 * 86400, "3 months"), (800 * 86400, "2 years")])
def test_ps_durations_read_like_docker(hutch, ctr, state, secs, text):
    cid = ctr.run("bb", "true")
    ctr.wait_exited(cid)
    _age_record(state, cid, created=secs + 0.3, finished=secs + 0.3)
    row = ps_line(hutch, cid, "-a")
    assert f"   {text} ago   " in row, row  # CREATED
    assert f"Exited (0) {text} ago" in row, row
    run = ctr.run(*SLEEPER)
    _age_record(state, run, started=secs + 0.3)
    assert f"Up {text}" in ps_line(hutch, run), ps_line(hutch, run)


def test_ps_json_is_one_object_per_line(hutch, ctr):
    a = ctr.run(*SLEEPER)
    b = ctr.run(*SLEEPER)
    out = hutch("ps", "--format", "json").stdout
    assert out.endswith("}\n") and not out.startswith("[")
    assert [json.loads(l)["id"] for l in out.splitlines()] == [b, a]
    hutch("rm", "-f", a, b)
    assert hutch("ps", "--format", "json").stdout == ""
    assert hutch("ps", "--format", "table").stdout.startswith("CONTAINER ID")
