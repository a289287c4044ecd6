"""The non-blocking exec (hutch_exec_start, hutch_exec_pidfd, hutch_exec_kill,
hutch_exec_reap), as a supervisor's healthcheck drives it, through the hidden
`hutch internal exec-poll`: output through a pipe, the pidfd in a poll loop,
SIGKILL after a timeout."""
import time

from conftest import wait_for


def wait_log(hutch, ref, text, timeout=10):
    wait_for(lambda: text in hutch("logs", ref).stdout, timeout=timeout, what=f"{text!r} in log")


def test_output_and_exit_code(hutch, ctr):
    cid = ctr.run("bb", "sleep", "1000")
    cp = hutch("internal", "exec-poll", cid, "sh", "-c", "echo out; echo err >&2; exit 4")
    assert cp.stdout == "out\nerr\nexit 4 signal 0\n"


def test_runs_in_the_container_as_exec_does(hutch, ctr):
    cid = ctr.run("--hostname", "probe-host", "bb", "sleep", "1000")
    cp = hutch("internal", "exec-poll", cid, "sh", "-c",
               "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo")
    host, pid1, status = cp.stdout.splitlines()
    assert host == "probe-host"
    assert pid1.strip() == "sleep 1000"
    assert status == "exit 0 signal 0"


def test_timeout_kills_the_command(hutch, ctr):
    cid = ctr.run("bb", "sleep", "1000")
    t0 = time.monotonic()
    cp = hutch("internal", "exec-poll", "--timeout-ms", "300", cid, "sh", "-c",
               "echo started; exec sleep 77")
    assert time.monotonic() - t0 < 5
    assert cp.stdout == "started\nexit 137 signal 9\n"
    # the command went with it: nothing of it is left in the container
    wait_for(lambda: "sleep 77" not in hutch("exec", cid, "ps", "-o", "args").stdout,
             what="the timed-out command to go")


def test_background_child_holding_the_pipe_does_not_block(hutch, ctr):
    cid = ctr.run("bb", "sleep", "1000")
    t0 = time.monotonic()
    cp = hutch("internal", "exec-poll", cid, "sh", "-c", "sleep 30 & echo quick")
    assert time.monotonic() - t0 < 10
    assert cp.stdout == "quick\nexit 0 signal 0\n"


def test_errors_are_exec_errors(hutch, ctr):
    cid = ctr.run("bb", "sh", "-c", "echo up; exec sleep 1000")
    wait_log(hutch, cid, "up")
    cp = hutch("internal", "exec-poll", cid, "nosuch", check=False)
    assert cp.returncode == 127
    assert 'exec "nosuch": executable file not found in $PATH' in cp.stderr
    hutch("kill", cid)
    ctr.wait_exited(cid)
    cp = hutch("internal", "exec-poll", cid, "true", check=False)
    assert cp.returncode == 125
    assert f"container {cid[:12]} is not running" in cp.stderr
