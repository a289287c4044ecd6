"""Containers started again: `start`, `restart` and `wait`. The same container
(id, name, rw layer and the files in it) runs again from the spec it was made
with (DATA/containers/ID/spec.json), with a new pid and a new cgroup; its record
counts the restarts. Every container made here is removed at teardown by the
`ctr` fixture, so the leak check after each test also covers restarted ones."""
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from conftest import cgroup_controllers, proc_state, wait_for

ROOTLESS = os.geteuid() != 0

# pid 1 of a pid namespace ignores SIGTERM unless it handles it: these exit on it
LOOP = "trap 'exit 0' TERM; while :; do sleep 0.05; done"


def running(ctr, ref):
    return wait_for(lambda: (i := ctr.inspect(ref))["status"] == "running" and i,
                    what=f"{ref} running")


def spec_path(state, cid):
    return state.root / "containers" / cid / "spec.json"


def lines_of(hutch, ref, path, n):
    """The lines of path in the container, once it has n of them (the command
    may not have written its line yet when the start returns)."""
    def lines():
        got = hutch("exec", ref, "cat", path, check=False).stdout.splitlines()
        return got if len(got) >= n else None
    return wait_for(lines, what=f"{n} lines in {path} of {ref}")


def test_stop_then_start_is_the_same_container(hutch, ctr):
    cid = ctr.run("bb", "sh", "-c", f"echo run >> /kept; {LOOP}", name="again")
    first = running(ctr, "again")
    assert lines_of(hutch, "again", "/kept", 1) == ["run"]
    hutch("stop", "again")
    assert ctr.inspect("again")["status"] == "exited"
    assert proc_state(first["pid"]) in (None, "Z", "X")

    out = hutch("start", "again")
    assert out.stdout == "again\n"  # as docker prints it
    second = running(ctr, "again")
    assert second["id"] == cid and second["name"] == "again"
    assert second["pid"] != first["pid"]
    assert second["restart_count"] == 1 and first["restart_count"] == 0
    assert second["created"] == first["created"]
    assert second["started"] > first["started"]
    # the rw layer is kept: the file of the first run, and the line of the second
    assert lines_of(hutch, "again", "/kept", 2) == ["run", "run"]
    # started by id too
    hutch("stop", "-t", "0", cid[:12])
    assert hutch("start", cid[:12]).stdout == cid[:12] + "\n"
    assert running(ctr, cid)["restart_count"] == 2


def test_restart_of_a_running_container(hutch, ctr):
    ctr.run("bb", "sh", "-c", f"echo up; echo run >> /kept; {LOOP}", name="rs")
    first = running(ctr, "rs")
    # a second apart: ps must show the uptime of the new start, not the first
    time.sleep(1.1)
    assert hutch("restart", "-t", "5", "rs").stdout == "rs\n"
    second = running(ctr, "rs")
    assert second["pid"] != first["pid"]
    assert second["restart_count"] == 1
    assert second["started"] - second["created"] > 1_000_000_000
    # stopped by its stop signal (the trap exits 0), not killed
    assert second["exit_code"] == 0
    row = [l for l in hutch("ps").stdout.splitlines() if l.endswith(" rs")]
    assert len(row) == 1 and "Up Less than a second" in row[0], row
    assert lines_of(hutch, "rs", "/kept", 2) == ["run", "run"]
    # the log goes on: both runs' output
    wait_for(lambda: hutch("logs", "rs").stdout == "up\nup\n", what="both runs in the log")


def test_restart_of_an_exited_container_starts_it(hutch, ctr):
    ctr.run("bb", "sh", "-c", "echo ran >> /kept", name="rx")
    ctr.wait_exited("rx")
    assert hutch("restart", "rx").stdout == "rx\n"
    wait_for(lambda: ctr.inspect("rx")["restart_count"] == 1 and ctr.status("rx") == "exited",
             what="the second run to end")
    assert hutch("logs", "rx").stdout == ""
    hutch("start", "rx")
    assert hutch("wait", "rx").stdout == "0\n"
    cp = hutch("run", "--rm", "bb", "true")  # the store still works as usual
    assert cp.returncode == 0


def test_only_containers_that_can_start_again_keep_a_spec(hutch, ctr, state):
    kept = ctr.run("bb", "sh", "-c", LOOP)
    gone = ctr.run("--rm", "bb", "sh", "-c", LOOP)
    running(ctr, kept)
    running(ctr, gone)
    assert spec_path(state, kept).is_file()
    assert not spec_path(state, gone).exists()  # --rm: it never starts again


def test_start_of_a_running_container_leaves_it_alone(hutch, ctr):
    """As Docker (moby#4916): starting what runs is no error, and changes nothing."""
    ctr.run("bb", "sh", "-c", LOOP, name="busy")
    before = running(ctr, "busy")
    cp = hutch("start", "busy")
    assert cp.returncode == 0 and cp.stdout == "busy\n" and cp.stderr == ""
    after = ctr.inspect("busy")
    assert after["pid"] == before["pid"] and after["restart_count"] == 0
    assert after["started"] == before["started"]


def test_concurrent_starts_start_it_once(hutch, ctr):
    ctr.run("bb", "sh", "-c", LOOP, name="race")
    running(ctr, "race")
    hutch("stop", "race")
    results = []

    def start():
        results.append(hutch("start", "race", check=False))

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    info = running(ctr, "race")
    assert info["restart_count"] == 1
    # one monitor, one container: the others saw it starting or running
    time.sleep(0.2)
    assert ctr.inspect("race")["pid"] == info["pid"]


def test_wait_prints_exit_codes(hutch, ctr, spawn):
    ctr.run("bb", "sh", "-c", "sleep 0.5; exit 7", name="w7")
    ctr.run("bb", "sh", "-c", "exit 3", name="w3")
    ctr.wait_exited("w3")
    t0 = time.monotonic()
    cp = hutch("wait", "w7", "w3")
    assert cp.stdout == "7\n3\n" and cp.returncode == 0
    # an exited one is answered at once
    t1 = time.monotonic()
    assert hutch("wait", "w3").stdout == "3\n"
    assert time.monotonic() - t1 < 2
    assert t1 - t0 < 10
    # a missing container: said, exit 1, the others still answered (as docker wait)
    cp = hutch("wait", "w3", "nosuch", "w7", check=False)
    assert cp.returncode == 1
    assert cp.stdout == "3\n7\n"
    assert "no such container: 'nosuch'" in cp.stderr
    # waiting on a running one blocks until it ends, even across the wait's start
    ctr.run("bb", "sh", "-c", f"{LOOP}", name="wl")
    running(ctr, "wl")
    waiter = spawn("wait", "wl")
    time.sleep(0.3)
    assert waiter.poll() is None
    hutch("kill", "-s", "TERM", "wl")
    out, err = waiter.communicate(timeout=10)
    assert waiter.returncode == 0 and out == b"0\n", err


def test_cgroup_of_each_run(hutch, ctr):
    ctr.run("bb", "sh", "-c", LOOP, name="cg")
    first = running(ctr, "cg")
    if not first.get("cgroup"):
        # rootless without a delegated cgroup v2 subtree: none, said at run
        assert ROOTLESS
        hutch("restart", "-t", "0", "cg")
        assert "cgroup" not in running(ctr, "cg")
        return
    path = Path(first["cgroup"])
    ino = path.stat().st_ino
    assert str(first["pid"]) in (path / "cgroup.procs").read_text().split()
    hutch("stop", "-t", "0", "cg")
    assert not path.exists()  # the first run's cgroup went with it
    assert "cgroup" not in ctr.inspect("cg")
    hutch("start", "cg")
    second = running(ctr, "cg")
    assert second["cgroup"] == first["cgroup"]
    assert path.stat().st_ino != ino  # a new one
    assert str(second["pid"]) in (path / "cgroup.procs").read_text().split()


def test_settings_are_the_same_on_the_second_run(hutch, ctr, tmp):
    data = tmp / "data"
    data.mkdir()
    data.chmod(0o777)
    report = ("n=$(ls /data | wc -l); "
              "{ id -u; id -g; id -G; hostname; pwd; echo \"$FOO\"; "
              "cat /sys/fs/cgroup/memory.max 2>/dev/null || echo none; "
              "grep -E 'CapEff|NoNewPrivs|Seccomp:' /proc/self/status; "
              "ulimit -n; grep ' /data ' /proc/self/mountinfo | cut -d' ' -f5,6; echo end; } "
              f"> /data/run$n; {LOOP}")
    ctr.run("-v", f"{data}:/data", "-e", "FOO=bar baz", "-u", "1000:1000", "--hostname",
            "h1", "-w", "/tmp", "--memory", "64m", "--ulimit", "nofile=512:512", "bb",
            "sh", "-c", report, name="same")
    wait_for(lambda: (data / "run0").exists() and "end\n" in (data / "run0").read_text(),
             what="the first run's report")
    hutch("restart", "-t", "5", "same")
    wait_for(lambda: (data / "run1").exists() and "end\n" in (data / "run1").read_text(),
             what="the second run's report")
    first, second = (data / "run0").read_text(), (data / "run1").read_text()
    assert first == second
    lines = first.splitlines()
    assert lines[0:2] == ["1000", "1000"]
    assert lines[3:6] == ["h1", "/tmp", "bar baz"]
    if "memory" in cgroup_controllers() and not ROOTLESS:
        assert lines[6] == str(64 << 20)
    assert "512" in lines
    assert "/data rw,relatime" in first or "/data rw," in first


def test_rm_f_of_a_restarted_container_leaves_nothing(hutch, ctr, state):
    cid = ctr.run("bb", "sh", "-c", f"echo x > /f; {LOOP}", name="gone")
    running(ctr, "gone")
    hutch("restart", "-t", "0", "gone")
    running(ctr, "gone")
    hutch("rm", "-f", "gone")
    assert not (state.root / "containers" / cid).exists()
    # no_leaks checks mounts, cgroups and the containers dir after the test


def test_damaged_spec_refused_and_rm_still_works(hutch, ctr, state):
    cid = ctr.run("bb", "true", name="dmg")
    ctr.wait_exited("dmg")
    spec = spec_path(state, cid)
    text = spec.read_text()
    assert '"version": 1' in text and cid in text
    spec.write_text(text[: len(text) // 2])
    cp = hutch("start", "dmg", check=False)
    assert cp.returncode == 1
    assert f"its spec {spec} is damaged: not valid JSON" in cp.stderr
    assert "remove it ('hutch rm dmg')" in cp.stderr
    assert ctr.status("dmg") == "exited" and ctr.inspect("dmg")["restart_count"] == 0
    # a value of the wrong kind is named by its key
    spec.write_text(text.replace('"readonly": false', '"readonly": "no"'))
    cp = hutch("start", "dmg", check=False)
    assert "root.readonly: true or false expected, not a string" in cp.stderr
    # no spec at all
    spec.unlink()
    cp = hutch("start", "dmg", check=False)
    assert cp.returncode == 1 and f"cannot read its spec {spec}" in cp.stderr
    hutch("rm", "dmg")
    assert not (state.root / "containers" / cid).exists()


def test_foreground_container_starts_again_detached(hutch, ctr):
    cp = hutch("run", "--name", "fg", "bb", "sh", "-c", "echo run >> /f; cat /f")
    ctr.keep("fg")
    assert cp.stdout == "run\n"
    assert not ctr.inspect("fg")["detached"]
    hutch("start", "fg")
    assert hutch("wait", "fg").stdout == "0\n"
    info = ctr.inspect("fg")
    assert info["detached"] and info["restart_count"] == 1
    assert hutch("logs", "fg").stdout == "run\nrun\n"


def test_start_fails_cleanly_when_the_command_is_gone(hutch, ctr, state):
    # the first run deletes the command the container runs (sh) from its rw
    # layer: starting again cannot exec it (127, as Docker records it)
    cid = ctr.run("bb", "sh", "-c", "rm /bin/sh", name="selfdel")
    ctr.wait_exited("selfdel")
    cp = hutch("start", "selfdel", check=False)
    assert cp.returncode == 1  # as docker start's
    assert cp.stderr == 'hutch: container selfdel: exec "sh": executable file not found in $PATH\n'
    info = ctr.inspect("selfdel")
    assert info["status"] == "exited" and info["exit_code"] == 127
    assert info["restart_count"] == 1
    # nothing of the failed start stays: no cgroup, no mount (no_leaks), the
    # container itself still there for rm
    assert "cgroup" not in info
    assert (state.root / "containers" / cid / "upper").is_dir()


def test_start_after_its_image_was_removed(hutch, ctr, image_from):
    img = image_from("gonebase")
    ctr.run(img, "true", name="orphaned")
    ctr.wait_exited("orphaned")
    hutch("image", "rm", img)  # allowed: its only container has exited
    cp = hutch("start", "orphaned", check=False)
    assert cp.returncode == 1
    assert ("container orphaned cannot start again: its image gonebase:latest" in cp.stderr
            and "was removed from the store" in cp.stderr), cp.stderr
    assert ctr.status("orphaned") == "exited"


def test_start_refuses_attach(hutch, ctr):
    ctr.run("bb", "true", name="att")
    ctr.wait_exited("att")
    for flag in ("-a", "--attach", "-i"):
        cp = hutch("start", flag, "att", check=False)
        assert cp.returncode == 125
        assert f"{flag} is not supported" in cp.stderr and "hutch logs -f" in cp.stderr
    assert ctr.inspect("att")["restart_count"] == 0
    cp = hutch("restart", "-t", "soon", "att", check=False)
    assert cp.returncode == 125 and "restart: invalid -t 'soon'" in cp.stderr
    cp = hutch("start", check=False)
    assert cp.returncode == 125


def test_monitor_of_a_restarted_container_killed(hutch, ctr):
    """The monitor of a container started again is SIGKILLed: the container dies
    with it (parent-death signal), the next look records it as killed (137), and
    since it is no new container it stays, with its files, to be started again."""
    ctr.run("bb", "sh", "-c", f"echo run >> /kept; {LOOP}", name="mk")
    lines_of(hutch, "mk", "/kept", 1)
    hutch("restart", "-t", "0", "mk")
    info = running(ctr, "mk")
    lines_of(hutch, "mk", "/kept", 2)  # the second run has written its line
    os.kill(info["monitor_pid"], signal.SIGKILL)
    wait_for(lambda: proc_state(info["pid"]) in (None, "Z", "X"), what="the container to die")
    after = ctr.inspect("mk")
    assert after["status"] == "exited" and after["exit_code"] == 137
    assert after["restart_count"] == 1
    hutch("start", "mk")
    assert lines_of(hutch, "mk", "/kept", 3) == ["run", "run", "run"]
    assert running(ctr, "mk")["restart_count"] == 2


def test_owner_of_a_start_again_died_while_starting(hutch, ctr, state):
    """A record left "created" by a start again whose monitor died before the
    container ran (what strace's SIGKILL at a host-side step leaves): the
    container ran before, so the repair keeps it, exited, instead of removing it
    as it removes a new container that never ran."""
    cid = ctr.run("bb", "sh", "-c", "echo run >> /kept", name="half")
    ctr.wait_exited("half")
    dead = subprocess.Popen(["true"])
    dead.wait()
    rec = state.root / "containers" / cid / "state.json"
    doc = json.loads(rec.read_text())
    doc.update(status="created", restart_count=1, monitor_pid=dead.pid, monitor_start=1,
               pid=0, pid_start=0)
    rec.write_text(json.dumps(doc))
    after = ctr.inspect("half")
    assert after["status"] == "exited" and after["exit_code"] == 137
    assert (state.root / "containers" / cid / "upper" / "kept").exists()
    hutch("start", "half")
    assert hutch("wait", "half").stdout == "0\n"
    assert ctr.inspect("half")["restart_count"] == 2
    assert hutch("exec", "half", "true", check=False).returncode == 125  # exited again


def test_devices_are_the_same_on_the_second_run(hutch, ctr, tmp):
    """--device and the device cgroup rules come back from spec.json: the node is
    there again, and what the rules refuse (writing a device granted read-only,
    opening one the container made) is refused again."""
    out = tmp / "out"
    out.mkdir()
    out.chmod(0o777)
    # rootless: no device cgroup to make a node read-only (refused at run), a bind
    perms = "r" if not ROOTLESS else "rw"
    probe = ("n=$(ls /out | wc -l); "
             "{ (exec 3</dev/xfuse) && echo read; (exec 3>/dev/xfuse) && echo written; "
             "rm -f /tmp/f; mknod /tmp/f c 10 229 && (exec 3<>/tmp/f) && echo opened; "
             f"echo end; }} > /out/run$n 2>&1; {LOOP}")
    ctr.run("-v", f"{out}:/out", "--device", f"/dev/fuse:/dev/xfuse:{perms}", "bb", "sh",
            "-c", probe, name="devs")
    wait_for(lambda: (out / "run0").exists() and "end\n" in (out / "run0").read_text(),
             what="the first run's probe")
    hutch("restart", "-t", "5", "devs")
    wait_for(lambda: (out / "run1").exists() and "end\n" in (out / "run1").read_text(),
             what="the second run's probe")
    first, second = (out / "run0").read_text(), (out / "run1").read_text()
    assert first == second
    assert "read" in first.split(), first
    if not ROOTLESS:
        assert "written" not in first and "Operation not permitted" in first, first
        assert "opened" not in first, first
    else:
        assert "written" in first.split(), first
