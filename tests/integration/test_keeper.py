"""hutch-keeper: what a detached container's monitor becomes once the container runs
(runtime/keeper/keeper.c): a tiny static program that logs, rotates the log, writes
the exit file and execs `hutch internal finish`."""
import datetime
import os
import re
import signal
import time
from pathlib import Path

from conftest import _hutch_bin, wait_for

CRI = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{9})Z (stdout|stderr) ([FP]) (.*)$")
LOG_MAX = 10 * 1024 * 1024


def cdir(state, cid):
    return state.root / "containers" / cid


def wait_log(hutch, ref, text, timeout=10):
    wait_for(lambda: text in hutch("logs", ref).stdout, timeout=timeout, what=f"{text!r} in log")


def test_monitor_is_the_small_keeper(state, hutch, ctr):
    cid = ctr.run("bb", "sh", "-c", "echo up; exec sleep 1000")
    wait_log(hutch, cid, "up")
    info = ctr.inspect(cid)
    mon = info["monitor_pid"]
    # a sealed memfd, not hutch's binary; the container is its child
    assert os.readlink(f"/proc/{mon}/exe").startswith("/memfd:hutch-keeper")
    assert Path(f"/proc/{mon}/cmdline").read_bytes().split(b"\0")[0] == b"hutch-keeper"
    assert Path(f"/proc/{mon}/comm").read_text() == "hutch-keeper\n"
    ppid = Path(f"/proc/{info['pid']}/stat").read_text().rsplit(")", 1)[1].split()[1]
    assert int(ppid) == mon
    pss = int(re.search(r"^Pss:\s+(\d+) kB", Path(f"/proc/{mon}/smaps_rollup").read_text(),
                        re.M).group(1))
    assert pss < 100, f"keeper PSS {pss} KiB"
    # what it holds: the pidfd, the output pipes, the container's dir and log,
    # hutch's binary (O_PATH), the image's layer lock and the container's mount
    # namespace (let go once the exit is said); nothing else of anyone's
    targets = sorted(os.readlink(f"/proc/{mon}/fd/{fd}") for fd in os.listdir(f"/proc/{mon}/fd"))
    assert targets.count("/dev/null") == 3
    assert sum(t.startswith("pipe:") for t in targets) == 2
    assert "anon_inode:[pidfd]" in targets
    assert str(cdir(state, cid)) in targets
    assert str(cdir(state, cid) / "container.log") in targets
    assert str(state.bb_layer) in targets
    assert os.path.realpath(_hutch_bin()) in targets
    assert os.readlink(f"/proc/{info['pid']}/ns/mnt") in targets
    assert len(targets) == 11, targets


def test_exit_file_and_record(state, hutch, ctr):
    cid = ctr.run("bb", "sh", "-c", "exit 3")
    info = ctr.wait_exited(cid)
    assert info["exit_code"] == 3
    code, sig, when = (cdir(state, cid) / "exit").read_text().split()
    assert (int(code), int(sig)) == (3, 0)
    assert abs(int(when) / 1e9 - time.time()) < 60
    assert not (cdir(state, cid) / "exit.tmp").exists()
    assert not info.get("cgroup")  # removed


def test_exit_by_signal_recorded(state, hutch, ctr):
    cid = ctr.run("bb", "sh", "-c", "echo up; exec sleep 1000")
    wait_log(hutch, cid, "up")
    hutch("kill", "-s", "KILL", cid)
    info = ctr.wait_exited(cid)
    assert info["exit_code"] == 137
    code, sig, _ = (cdir(state, cid) / "exit").read_text().split()
    assert (int(code), int(sig)) == (137, signal.SIGKILL)


def test_log_records_are_cri_with_the_time_of_day(state, hutch, ctr):
    before = time.time()
    cid = ctr.run("bb", "sh", "-c", "echo out; echo err >&2; printf partial")
    ctr.wait_exited(cid)
    after = time.time()
    lines = (cdir(state, cid) / "container.log").read_text().splitlines()
    got = []
    for line in lines:
        m = CRI.match(line)
        assert m, line
        t = datetime.datetime(*map(int, m.groups()[:6]), tzinfo=datetime.timezone.utc)
        assert before - 2 <= t.timestamp() + int(m.group(7)) / 1e9 <= after + 2, line
        got.append((m.group(8), m.group(9), m.group(10)))
    assert sorted(got) == sorted([("stdout", "F", "out"), ("stderr", "F", "err"),
                                  ("stdout", "P", "partial")])


def test_log_is_rotated_by_size(state, hutch, ctr):
    # 12 MB of 200-byte lines: one rotation at 10 MiB, nothing lost
    n = 12_000_000 // 201
    cid = ctr.run("bb", "sh", "-c",
                  f"yes $(printf %0200d 7) | head -n {n}; echo last-line")
    ctr.wait_exited(cid, timeout=60)
    d = cdir(state, cid)
    old, cur = d / "container.log.1", d / "container.log"
    assert old.exists()
    assert old.stat().st_size <= LOG_MAX
    assert cur.stat().st_size <= LOG_MAX
    assert not (d / "container.log.2").exists()
    records = [CRI.match(t) for t in old.read_text().splitlines() + cur.read_text().splitlines()]
    assert all(records)
    # a line split across two reads is two records, P then F: put them together
    text = "".join(m.group(10) + ("\n" if m.group(9) == "F" else "") for m in records)
    assert text == ("0" * 199 + "7\n") * n + "last-line\n"
    # `logs` shows the current file
    assert hutch("logs", cid).stdout.endswith("last-line\n")


def test_finish_is_only_for_the_owner(state, hutch, ctr):
    cid = ctr.run("bb", "sh", "-c", "echo up; exec sleep 1000")
    wait_log(hutch, cid, "up")
    run_root = state.root / "run"
    cp = hutch("internal", "finish", str(state.root), str(run_root), cid, check=False)
    assert cp.returncode != 0
    assert "not this process's to finish" in cp.stderr
    assert ctr.status(cid) == "running"
    assert not (cdir(state, cid) / "exit").exists()


def test_logs_follow_goes_on_across_a_rotation(hutch, ctr):
    n = 12_000_000 // 201
    cid = ctr.run("bb", "sh", "-c",
                  f"echo first; sleep 1; yes $(printf %0200d 7) | head -n {n}; echo last-line")
    wait_log(hutch, cid, "first")
    cp = hutch("logs", "-f", cid, timeout=60)
    assert cp.stdout == "first\n" + ("0" * 199 + "7\n") * n + "last-line\n"


def test_logs_follow_ends_with_the_exit_recorded(hutch, ctr):
    """The log stays open until the exit is recorded: `logs -f` ending means `inspect`
    says exited, with the code."""
    for i in range(5):
        cid = ctr.run("bb", "sh", "-c", f"echo up; sleep 0.3; exit {10 + i}")
        wait_log(hutch, cid, "up")
        assert hutch("logs", "-f", cid).stdout == "up\n"
        info = ctr.inspect(cid)
        assert (info["status"], info["exit_code"]) == ("exited", 10 + i)
