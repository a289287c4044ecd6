"""-it: a pty inside the container, window size, resize, exit code, Ctrl-C; and -t
with stdin that is not a terminal (pipes, files, /dev/null): all of it relayed, then EOF."""
import fcntl
import hashlib
import os
import re
import resource
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

from conftest import comm, descendants, wait_for


def set_winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Term:
    """hutch run -it on the slave side of a pty we hold the master of."""

    def __init__(self, state, args, rows=24, cols=80, flags=("-it",)):
        self.master, slave = os.openpty()
        set_winsize(slave, rows, cols)
        cmd = [state.bin, "--root", str(state.root), "run", "--rm", *flags, *args]

        def ctty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, preexec_fn=ctty,
                                     env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                          "TERM": "xterm"})
        os.close(slave)
        self.buf = b""

    def send(self, s):
        os.write(self.master, s.encode() if isinstance(s, str) else s)

    def expect(self, pattern, timeout=10):
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}; got {self.buf!r}")
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    data = os.read(self.master, 4096)
                except OSError:  # EIO: the other side is gone
                    data = b""
                if not data:
                    m = rx.search(self.buf)
                    if m:
                        return m
                    raise AssertionError(f"EOF waiting for {pattern!r}; got {self.buf!r}")
                self.buf += data

    def drain(self):
        while True:
            r, _, _ = select.select([self.master], [], [], 0)
            if not r:
                return
            try:
                if not os.read(self.master, 4096):
                    return
            except OSError:
                return

    def run(self, shell_expr, timeout=10):
        """Run a command and return its output: markers are made by arithmetic so
        that the echoed command line never matches."""
        n = self.counter = getattr(self, "counter", 0) + 1
        self.send(f'echo "<{n}:$(( {n} * 1000 )):"{shell_expr}":{n}>"\r')
        m = self.expect(rf"<{n}:{n * 1000}:(.*?):{n}>", timeout)
        # the next prompt (busybox then asks for the cursor position): the shell reads again
        self.expect(r"[#$] (\x1b\[6n)?$", timeout)
        return m.group(1).decode()

    def wait(self, timeout=10):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            self.drain()
            if time.monotonic() > deadline:
                raise AssertionError("hutch -it did not exit")
            time.sleep(0.01)
        return self.proc.returncode

    def close(self):
        if self.proc.poll() is None:
            for pid in descendants(self.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.close(self.master)


@pytest.fixture
def term(state):
    made = []

    def start(*args, rows=24, cols=80, flags=("-it",)):
        t = Term(state, args or ("bb", "sh"), rows, cols, flags)
        made.append(t)
        return t

    yield start
    for t in made:
        t.close()


def test_tty_is_a_pts(term):
    t = term()
    assert t.run("$(tty)") == "/dev/pts/0"
    assert t.run("$(readlink /proc/self/fd/0)") == "/dev/pts/0"
    assert t.run("$([ -t 0 ] && [ -t 2 ] && echo yes)") == "yes"
    t.send("exit\r")
    assert t.wait() == 0


def test_tty_window_size_at_start(term):
    t = term(rows=37, cols=123)
    assert t.run("$(stty size)") == "37 123"
    t.send("exit\r")
    assert t.wait() == 0


def test_tty_window_change(term):
    t = term(rows=24, cols=80)
    assert t.run("$(stty size)") == "24 80"
    set_winsize(t.master, 50, 132)
    t.proc.send_signal(signal.SIGWINCH)
    # the relay applies the new size asynchronously: poll with a deadline
    deadline = time.monotonic() + 5
    while True:
        size = t.run("$(stty size)")
        if size == "50 132" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert size == "50 132"
    t.send("exit\r")
    assert t.wait() == 0


def test_tty_exit_code(term):
    t = term()
    assert t.run("ready") == "ready"
    t.send("exit 5\r")
    assert t.wait() == 5


def test_tty_ctrl_c_interrupts_foreground_and_shell_survives(term):
    t = term()
    assert t.run("ready") == "ready"
    t.send("sleep 100\r")
    wait_for(lambda: any(comm(p) == "sleep" for p in descendants(t.proc.pid)), timeout=10,
             what="sleep running in the container")
    t0 = time.monotonic()
    t.send(b"\x03")
    assert t.run("alive") == "alive"
    assert time.monotonic() - t0 < 5
    assert not any(comm(p) == "sleep" for p in descendants(t.proc.pid))
    t.send("exit 3\r")
    assert t.wait() == 3


def test_tty_env_term_and_echo(term):
    t = term()
    assert t.run("$TERM") == "xterm"
    # what we type is echoed back by the container's pty (canonical mode)
    t.send("echo typed-text\r")
    t.expect(r"echo typed-text")
    t.expect(r"typed-text\r\n")
    t.send("exit\r")
    assert t.wait() == 0


def test_tty_eof_ends_shell(term):
    t = term()
    assert t.run("ready") == "ready"
    t.send(b"\x04")
    assert t.wait() == 0



# ---------------------------------------------- -t with stdin that is not a terminal

LINES = b"".join(b"%d\n" % i for i in range(1, 200001))  # 200k lines, 1.3 MB


def tty_run(hutch, *args, data=None, stdin=None, timeout=30):
    """hutch run --rm ARGS with data through a pipe (closed after it) or stdin an
    open file; returns (exit code, the lines of output). The pty echoes what it
    receives until the program turns echo off, so what the program itself printed
    is at the end."""
    cp = hutch("-q", "run", "--rm", *args, input=data, stdin=stdin, check=False, text=False,
               timeout=timeout)
    assert cp.stderr == b"", cp.stderr
    return cp.returncode, cp.stdout.split(b"\r\n")


def test_tty_pipe_of_200k_lines_all_arrive_then_eof(hutch):
    code, out = tty_run(hutch, "-it", "bb", "sh", "-c",
                        "tee /tmp/in | wc -l; md5sum < /tmp/in; exit 7", data=LINES)
    assert code == 7
    assert out[-3:] == [b"200000", hashlib.md5(LINES).hexdigest().encode() + b"  -", b""]


def test_tty_partial_last_line_still_ends_input(hutch):
    # The pty echoes a partial last line without a line end: the count is bracketed
    def count(data, what="wc -c"):
        code, out = tty_run(hutch, "-it", "bb", "sh", "-c",
                            f'echo "[$({what})]"; echo done; exit 3', data=data)
        assert code == 3
        assert out[-1] == b"" and out[-2] == b"done", out[-3:]
        return re.search(rb"\[([\d ]+)\]$", out[-3]).group(1).split()

    partial = LINES[:2002]
    assert not partial.endswith(b"\n")
    assert count(partial) == [b"2002"]
    assert count(b"abc") == [b"3"]  # no line end at all
    assert count(b"a\n\n", "wc -lc") == [b"2", b"3"]  # an empty line before the end


def test_tty_regular_file_stdin(hutch, tmp):
    f = tmp / "in.txt"
    f.write_bytes(LINES)
    with open(f, "rb") as fh:
        code, out = tty_run(hutch, "-it", "bb", "sh", "-c", "md5sum; exit 5", stdin=fh)
    assert code == 5
    assert out[-2:] == [hashlib.md5(LINES).hexdigest().encode() + b"  -", b""]
    with open(f, "rb") as fh:
        code, out = tty_run(hutch, "-it", "bb", "cat", stdin=fh)
    # `cat < file` used to hang: cat's copy and the echo interleave, its last line is last
    assert code == 0 and out[-2:] == [b"200000", b""]


def test_tty_dev_null_stdin_is_eof_at_once(hutch):
    t0 = time.monotonic()
    code, out = tty_run(hutch, "-it", "bb", "cat", stdin=subprocess.DEVNULL, timeout=10)
    assert (code, out) == (0, [b""])
    code, out = tty_run(hutch, "-it", "bb", "sh", "-c", "wc -c; exit 2",
                        stdin=subprocess.DEVNULL, timeout=10)
    assert (code, out) == (2, [b"0", b""])
    assert time.monotonic() - t0 < 5


def test_tty_without_i_does_not_read_stdin(hutch, tmp):
    f = tmp / "in.txt"
    f.write_bytes(b"secret\n")
    script = 'read -t 1 x; echo "[$x]"; exit 5'
    with open(f, "rb") as fh:
        code, out = tty_run(hutch, "-t", "bb", "sh", "-c", script, stdin=fh)
        assert fh.tell() == 0  # hutch read nothing of the shared file offset
    assert (code, out) == (5, [b"[]", b""])
    code, out = tty_run(hutch, "-t", "bb", "sh", "-c", script, data=b"secret\n")
    assert (code, out) == (5, [b"[]", b""])


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def test_tty_unread_input_waits_without_spinning(hutch):
    # The container never reads: the pty fills up, hutch waits for room (POLLOUT)
    # with most of the input still in its buffer and the pipe, and the exit code
    # comes back as soon as the container ends.
    cpu = children_cpu()
    t0 = time.monotonic()
    code, _ = tty_run(hutch, "-it", "bb", "sh", "-c", "sleep 1.5; exit 3", data=LINES)
    assert code == 3
    assert time.monotonic() - t0 < 10
    assert children_cpu() - cpu < 0.5


def test_tty_idle_open_stdin_waits_without_spinning(state):
    cpu = children_cpu()
    p = subprocess.Popen([state.bin, "-q", "--root", str(state.root), "run", "--rm", "-it", "bb",
                          "sh", "-c", "sleep 1.5; exit 6"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.wait(timeout=10) == 6
    finally:
        p.stdin.close()
        p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()
    assert children_cpu() - cpu < 0.5


def test_tty_output_reader_gone_hangs_up_the_container(state):
    # `hutch run -t ... | head -c 10`: when nobody reads hutch's output any more,
    # the container's terminal is hung up (as when a terminal closes), instead of
    # hutch dying of SIGPIPE and leaving the container behind or draining it forever.
    p = subprocess.Popen([state.bin, "-q", "--root", str(state.root), "run", "--rm", "-t", "bb",
                          "yes"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        assert p.stdout.read(10) == b"y\r\ny\r\ny\r\ny"
        p.stdout.close()
        code = p.wait(timeout=10)
    finally:
        if p.poll() is None:
            for pid in descendants(p.pid):
                os.kill(pid, signal.SIGKILL)
            p.wait()
        p.stderr.close()
    assert code == 1, code  # yes, pid 1, ignores SIGHUP and fails on its next write


def test_exec_tty_relays_piped_stdin(hutch, ctr):
    cid = ctr.run("bb", "sleep", "100")
    cp = hutch("-q", "exec", "-it", cid, "sh", "-c", "wc -l; exit 4", input=LINES, check=False,
               text=False)
    assert cp.returncode == 4 and cp.stdout.split(b"\r\n")[-2:] == [b"200000", b""]
    cp = hutch("-q", "exec", "-t", cid, "sh", "-c", 'read -t 1 x; echo "[$x]"',
               input=b"secret\n", check=False, text=False)
    assert (cp.returncode, cp.stdout) == (0, b"[]\r\n")


def test_tty_without_i_leaves_the_terminal_alone(term, state, tmp):
    # -t alone: hutch neither reads our terminal nor puts it in raw mode, so ^C
    # typed here is the terminal's SIGINT to hutch, which forwards it.
    ready = tmp / "ready"
    os.chmod(tmp, 0o777)
    t = term("-v", f"{tmp}:/sync", "bb", "sh", "-c",
             "trap 'echo got-int; exit 9' INT; touch /sync/ready; while :; do sleep 0.05; done",
             flags=("-t",))
    wait_for(ready.exists, timeout=10, what="the container to start")
    assert termios.tcgetattr(t.master)[3] & termios.ICANON  # still cooked
    t.send(b"\x03")
    t.expect(r"got-int")
    assert t.wait() == 9


def test_tty_with_i_puts_the_terminal_in_raw_mode_and_back(term, tmp):
    ready = tmp / "ready"
    os.chmod(tmp, 0o777)
    t = term("-v", f"{tmp}:/sync", "bb", "sh", "-c", "touch /sync/ready; read x; exit 4")
    wait_for(ready.exists, timeout=10, what="the container to start")
    assert not termios.tcgetattr(t.master)[3] & termios.ICANON
    t.send("line\r")
    assert t.wait() == 4
    assert termios.tcgetattr(t.master)[3] & termios.ICANON
