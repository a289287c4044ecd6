"""The basics of `hutch run`: output, and Docker's exit code conventions."""
import os
import signal

from conftest import cgroup_controllers, children_of, wait_for


def test_echo_hello(hutch):
    cp = hutch("run", "--rm", "bb", "echo", "hello")
    assert cp.stdout == "hello\n"
    assert cp.stderr == ""


def test_exit_code_propagated(hutch):
    for code in (0, 1, 3, 42, 255):
        cp = hutch("run", "--rm", "bb", "sh", "-c", f"exit {code}", check=False)
        assert cp.returncode == code, cp.stderr


def test_runtime_error_is_125(hutch):
    cp = hutch("run", "--rm", "no-such-image-zz", "true", check=False)
    assert cp.returncode == 125
    assert "no-such-image-zz" in cp.stderr


def test_not_executable_is_126(hutch):
    cp = hutch("run", "--rm", "bb", "/etc/passwd", check=False)
    assert cp.returncode == 126, cp.stderr
    assert "/etc/passwd" in cp.stderr
    cp = hutch("run", "--rm", "bb", "/etc", check=False)
    assert cp.returncode == 126, cp.stderr


def test_command_not_found_is_127(hutch):
    cp = hutch("run", "--rm", "bb", "no-such-command-zz", check=False)
    assert cp.returncode == 127
    assert "no-such-command-zz" in cp.stderr
    cp = hutch("run", "--rm", "bb", "/bin/no-such-command-zz", check=False)
    assert cp.returncode == 127
    assert "/bin/no-such-command-zz" in cp.stderr


def test_killed_by_signal_inside_is_128_plus_n(hutch):
    # Under --init the shell is pid 2, so it can kill itself.
    cp = hutch("run", "--rm", "--init", "bb", "sh", "-c", "kill -KILL $$", check=False)
    assert cp.returncode == 128 + signal.SIGKILL, cp.stderr
    cp = hutch("run", "--rm", "--init", "bb", "sh", "-c", "kill -USR1 $$", check=False)
    assert cp.returncode == 128 + signal.SIGUSR1, cp.stderr


def test_pid1_killed_from_host_is_137(spawn, tmp):
    p = spawn("run", "--rm", "-v", f"{tmp}:/out", "bb", "sh", "-c",
              "touch /out/ready; exec sleep 100")
    wait_for(lambda: (tmp / "ready").exists(), what="container ready")
    kids = wait_for(lambda: [c for c in children_of(p.pid)], what="container pid 1")
    assert len(kids) == 1
    os.kill(kids[0], signal.SIGKILL)
    p.communicate(timeout=10)
    assert p.returncode == 137


def test_version(hutch):
    cp = hutch("version")
    assert cp.stdout.startswith("hutch version ")


# ------------------------------------------------------------------ resource limits
# On this hybrid host the cgroup v2 hierarchy has no memory/cpu/pids controller: the
# limits must be named in one warning and the container must still run. Where the
# controller exists (the VM suite, a pure v2 host) the same tests check enforcement.

FLAG_FOR = {"memory": "--memory", "cpu": "--cpus", "pids": "--pids-limit"}


def _warnings(stderr):
    return [l for l in stderr.splitlines() if "warning" in l.lower()]


def test_limits_applied_or_warned_once(hutch):
    have = cgroup_controllers()
    cp = hutch("run", "--rm", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "64", "bb",
               "sh", "-c", "echo ran; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max "
               "/sys/fs/cgroup/pids.max 2>/dev/null; true")
    assert cp.returncode == 0
    assert cp.stdout.startswith("ran\n")
    missing = [FLAG_FOR[c] for c in ("memory", "cpu", "pids") if c not in have]
    warnings = _warnings(cp.stderr)
    if missing:
        assert len(warnings) == 1, cp.stderr
        for flag in missing:
            assert flag in warnings[0], cp.stderr
        for c, flag in FLAG_FOR.items():
            if c in have:
                assert flag not in warnings[0]
        assert "enforced" in warnings[0]
    else:
        assert warnings == [], cp.stderr
    values = cp.stdout.splitlines()[1:]
    if "memory" in have:
        assert "67108864" in values
    if "cpu" in have:
        assert "50000 100000" in values
    if "pids" in have:
        assert "64" in values


def test_no_warning_without_limits(hutch):
    cp = hutch("run", "--rm", "bb", "true")
    assert cp.stderr == ""


def test_quiet_suppresses_limit_warning(hutch):
    cp = hutch("-q", "run", "--rm", "--memory", "64m", "bb", "echo", "ok")
    assert cp.stdout == "ok\n"
    assert _warnings(cp.stderr) == []


def test_oom_kill_reported_or_warned(hutch):
    # dd allocates its 64 MiB buffer and touches it while reading.
    cp = hutch("run", "--rm", "--memory", "32m", "bb", "dd", "if=/dev/zero", "of=/dev/null",
               "bs=64M", "count=1", check=False)
    if "memory" in cgroup_controllers():
        assert cp.returncode == 137, cp.stderr
        assert "killed: out of memory (limit 32 MiB)" in cp.stderr
    else:
        assert cp.returncode == 0, cp.stderr
        warnings = _warnings(cp.stderr)
        assert len(warnings) == 1 and "--memory" in warnings[0], cp.stderr
        assert "out of memory" not in cp.stderr


def test_pids_limit_enforced_or_warned(hutch):
    script = "i=0; while [ $i -lt 40 ]; do sleep 5 & i=$((i+1)); done; echo started; kill $(jobs -p) 2>/dev/null; true"
    cp = hutch("run", "--rm", "--pids-limit", "10", "bb", "sh", "-c", script, check=False)
    if "pids" in cgroup_controllers():
        assert "started" in cp.stdout
        assert "can't fork" in cp.stderr or "Resource temporarily unavailable" in cp.stderr
    else:
        assert "started" in cp.stdout
        assert "--pids-limit" in cp.stderr
