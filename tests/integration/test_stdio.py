"""stdio of `run` and `exec` without -t: the container never gets a file of the
caller's that it could reopen through /proc/PID/fd (a log appended to, a terminal):
those are relayed through pipes; a pipe or a socket is passed as it is. Order
(2>&1), separation, EOF, large output, exit codes and signals as before."""
import hashlib
import os
import select
import signal
import subprocess
import time

from conftest import wait_for


def run_with(state, args, stdin=subprocess.DEVNULL, stdout=None, stderr=None, timeout=30):
    """hutch ARGS with the given files as its fds 0-2; the CompletedProcess."""
    cmd = [state.bin, "--root", str(state.root), *[str(a) for a in args]]
    return subprocess.run(cmd, stdin=stdin, stdout=stdout if stdout is not None else
                          subprocess.PIPE, stderr=stderr if stderr is not None else
                          subprocess.PIPE, timeout=timeout)


# ------------------------------------------------------------ files of the caller's


def test_run_cannot_truncate_a_file_appended_to(state, tmp):
    log = tmp / "log"
    log.write_bytes(b"earlier line\n")
    with open(log, "ab") as f:
        cp = run_with(state, ["run", "--rm", "bb", "sh", "-c",
                              "printf X > /proc/self/fd/1; printf Y"], stdout=f)
    assert cp.returncode == 0, cp.stderr
    # the write through /proc went into the container's own pipe, relayed as output
    assert log.read_bytes() == b"earlier line\nXY"


def test_run_cannot_read_a_file_appended_to(state, tmp):
    log = tmp / "log"
    log.write_bytes(b"host secret\n")
    with open(log, "ab") as f:
        # Reopened for reading, stdout is the container's own (empty) pipe: nothing
        # comes, and timeout ends the wait. (fd 5: busybox runs head in the shell's
        # process, with >&2 applied to its fd 1.)
        cp = run_with(state, ["run", "--rm", "bb", "sh", "-c",
                              "exec 5>&1; readlink /proc/self/fd/5 >&2; "
                              "timeout 1 head -c 64 /proc/self/fd/5 >&2; true"], stdout=f)
    assert b"secret" not in cp.stderr, cp.stderr
    assert cp.stderr.startswith(b"pipe:["), cp.stderr
    assert log.read_bytes() == b"host secret\n"


def test_exec_cannot_truncate_or_read_a_file_appended_to(state, tmp, ctr, hutch):
    cid = ctr.run("bb", "sleep", "1000")
    log = tmp / "log"
    log.write_bytes(b"host secret\n")
    with open(log, "ab") as f:
        cp = run_with(state, ["exec", cid, "sh", "-c",
                              "exec 5>&2; timeout 1 head -c 64 /proc/self/fd/5 > /tmp/got 2>/dev/null; "
                              "printf X > /proc/self/fd/1; printf Y >&2"],
                      stdout=f, stderr=f)
    assert cp.returncode == 0
    assert log.read_bytes() == b"host secret\nXY"
    assert hutch("exec", cid, "cat", "/tmp/got").stdout == ""


def test_stdin_file_read_fully_but_not_writable(state, tmp):
    data = b"".join(b"line %06d\n" % i for i in range(60000))  # 720 kB
    src = tmp / "input"
    src.write_bytes(data)
    with open(src, "rb") as f:
        cp = run_with(state, ["run", "--rm", "-i", "bb", "sh", "-c",
                              "cat; printf OVERWRITTEN > /proc/self/fd/0; echo rc=$? >&2"],
                      stdin=f)
    assert cp.returncode == 0, cp.stderr
    assert hashlib.sha256(cp.stdout).digest() == hashlib.sha256(data).digest()
    assert src.read_bytes() == data


def test_stdin_eof_from_a_pipe_and_a_file(state, tmp, hutch):
    assert hutch("run", "-i", "--rm", "bb", "cat", input="hi\n").stdout == "hi\n"
    src = tmp / "in"
    src.write_bytes(b"a\nb\n")
    with open(src, "rb") as f:
        cp = run_with(state, ["run", "-i", "--rm", "bb", "wc", "-l"], stdin=f, timeout=10)
    assert cp.stdout.strip() == b"2"


def test_terminal_as_stdin_with_i_relayed_until_eof(spawn):
    """-i without -t, the caller's terminal as stdin and stdout: a typed line
    reaches the container, ^D ends its stdin, the terminal is not the
    container's (a pipe) and is left as it was."""
    import termios
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    p = spawn("run", "--rm", "-i", "bb", "sh", "-c", "readlink /proc/self/fd/0; cat; echo end",
              stdin=slave, stdout=slave)
    got = b""
    try:
        def read_until(marker):
            nonlocal got
            deadline = time.monotonic() + 10
            while marker not in got:
                left = deadline - time.monotonic()
                assert left > 0, f"waited for {marker!r}, got {got!r}"
                r, _, _ = select.select([master], [], [], left)
                if r:
                    got += os.read(master, 4096)
        read_until(b"pipe:[")
        os.write(master, b"typed line\n")
        read_until(b"typed line\r\ntyped line\r\n")  # the echo, then cat's copy
        os.write(master, b"\x04")
        read_until(b"end\r\n")
        assert p.wait(timeout=10) == 0
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_exec_leaves_no_host_fd_behind(state, ctr, hutch):
    """A terminal given to exec as stdout: after exec returns, a process it left
    in the container neither holds it nor writes to it."""
    cid = ctr.run("bb", "sleep", "1000")
    master, slave = os.openpty()
    try:
        t0 = time.monotonic()
        cp = run_with(state, ["exec", cid, "sh", "-c",
                              "(sleep 4; echo LATE; echo LATE >&2) & echo $! > /tmp/bg; "
                              "echo started"],
                      stdout=slave, stderr=slave, timeout=10)
        assert cp.returncode == 0
        # as docker exec: it returns when its command exits, not when the
        # background process lets go of the output
        assert time.monotonic() - t0 < 3.5
        os.close(slave)
        slave = -1
        got = b""
        deadline = time.monotonic() + 5
        # the output arrives, then EIO: nobody holds the pty's slave any more
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"the pty's slave is still open after exec returned: {got!r}"
            r, _, _ = select.select([master], [], [], left)
            if not r:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
        assert b"started" in got and b"LATE" not in got, got
        bg = hutch("exec", cid, "cat", "/tmp/bg").stdout.strip()
        links = hutch("exec", cid, "sh", "-c",
                      f"for f in /proc/{bg}/fd/*; do echo $f $(readlink $f); done").stdout
        for line in links.splitlines():
            fd, target = line.split(" ", 1)
            assert target.startswith(("pipe:", "/dev/null")), links
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


# ------------------------------------------------------------ order and separation


LOOP = ("i=0; while [ $i -lt 300 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done")
INTERLEAVED = "".join(f"out{i}\nerr{i}\n" for i in range(300)).encode()


def test_2_to_1_keeps_the_order(state, tmp):
    log = tmp / "log"
    with open(log, "wb") as f:
        cp = run_with(state, ["run", "--rm", "bb", "sh", "-c", LOOP], stdout=f, stderr=f)
    assert cp.returncode == 0
    assert log.read_bytes() == INTERLEAVED


def test_both_appending_to_one_file_keeps_the_order(state, tmp, ctr):
    """>>log 2>>log: two open files, one log; exec as well as run."""
    cid = ctr.run("bb", "sleep", "1000")
    for args in (["run", "--rm", "bb"], ["exec", cid]):
        log = tmp / "log"
        log.write_bytes(b"first\n")
        with open(log, "ab") as out, open(log, "ab") as err:
            cp = run_with(state, [*args, "sh", "-c", LOOP], stdout=out, stderr=err)
        assert cp.returncode == 0
        assert log.read_bytes() == b"first\n" + INTERLEAVED, args


def test_stdout_and_stderr_files_stay_apart(state, tmp):
    with open(tmp / "out", "wb") as o, open(tmp / "err", "ab") as e:
        cp = run_with(state, ["run", "--rm", "bb", "sh", "-c", LOOP], stdout=o, stderr=e)
    assert cp.returncode == 0
    assert (tmp / "out").read_bytes() == "".join(f"out{i}\n" for i in range(300)).encode()
    assert (tmp / "err").read_bytes() == "".join(f"err{i}\n" for i in range(300)).encode()


def test_a_pipe_is_passed_as_it_is(state):
    r, w = os.pipe()
    try:
        cmd = [state.bin, "--root", str(state.root), "run", "--rm", "bb",
               "readlink", "/proc/self/fd/1"]
        p = subprocess.Popen(cmd, stdout=w, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL)
        os.close(w)
        w = -1
        out = b""
        while chunk := os.read(r, 4096):
            out += chunk
        assert p.wait(timeout=10) == 0
        assert out.decode().strip() == f"pipe:[{os.fstat(r).st_ino}]"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_head_closing_the_pipe_ends_the_container(state):
    """`hutch run ... | head -1`: the container's writes fail (busybox's yes says
    so and exits 1), hutch returns at once."""
    cmd = [state.bin, "--root", str(state.root), "run", "--rm", "bb", "yes"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    assert p.stdout.readline() == b"y\n"
    p.stdout.close()
    p.wait(timeout=10)
    assert p.returncode == 1
    assert b"Broken pipe" in p.stderr.read()


# ------------------------------------------------------------ volume, exits, signals


def test_large_output_to_files_complete(state, tmp):
    """8 MB through splice (a new file) and through read/write (O_APPEND)."""
    size = 8 * 1024 * 1024
    want = (b"0123456789abcdef\n" * (size // 17 + 1))[:size]
    script = f"yes 0123456789abcdef | head -c {size}; yes err | head -c {size} >&2"
    with open(tmp / "out", "wb") as o, open(tmp / "err", "ab") as e:
        cp = run_with(state, ["run", "--rm", "bb", "sh", "-c", script], stdout=o, stderr=e,
                      timeout=60)
    assert cp.returncode == 0
    got = (tmp / "out").read_bytes()
    assert len(got) == size and hashlib.sha256(got).digest() == hashlib.sha256(want).digest()
    err = (tmp / "err").read_bytes()
    assert err == (b"err\n" * (size // 4))


def test_large_output_to_a_terminal_complete(state, tmp, ctr):
    """A terminal as stdout (no -t): relayed in steps, nothing lost, exec returns."""
    cid = ctr.run("bb", "sleep", "1000")
    size = 2 * 1024 * 1024
    master, slave = os.openpty()
    import tty
    tty.setraw(slave)  # no \n -> \r\n translation
    cmd = [state.bin, "--root", str(state.root), "exec", cid, "sh", "-c",
           f"yes 0123456789abcdef | head -c {size}"]
    p = subprocess.Popen(cmd, stdout=slave, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    os.close(slave)
    got = bytearray()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 1)
            if not r:
                if p.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
    finally:
        os.close(master)
    assert p.wait(timeout=10) == 0
    want = (b"0123456789abcdef\n" * (size // 17 + 1))[:size]
    assert len(got) == size and bytes(got) == want


def test_run_returns_when_pid1_exits(state, tmp):
    """A background process holding the relayed stdout dies with pid 1 (its pid
    namespace goes): run returns at once, with everything pid 1 wrote."""
    t0 = time.monotonic()
    with open(tmp / "out", "wb") as o:
        cp = run_with(state, ["run", "--rm", "bb", "sh", "-c", "sleep 100 & echo bye"],
                      stdout=o, stderr=o)
    assert cp.returncode == 0
    assert time.monotonic() - t0 < 10
    assert (tmp / "out").read_bytes() == b"bye\n"


def test_exit_code_and_signal_with_relayed_output(state, tmp, spawn):
    with open(tmp / "out", "wb") as o:
        cp = run_with(state, ["run", "--rm", "bb", "sh", "-c", "echo bye; exit 7"], stdout=o)
    assert cp.returncode == 7
    assert (tmp / "out").read_bytes() == b"bye\n"
    (tmp / "mnt").mkdir(mode=0o777)
    with open(tmp / "log", "wb") as o:
        p = spawn("run", "--rm", "-v", f"{tmp / 'mnt'}:/out", "bb", "sh", "-c",
                  "trap 'echo got-term; exit 9' TERM; echo up; touch /out/ready; "
                  "sleep 100 & wait", stdout=o)
        wait_for(lambda: (tmp / "mnt" / "ready").exists(), what="container ready")
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=10)
    assert p.returncode == 9
    assert (tmp / "log").read_bytes() == b"up\ngot-term\n"
