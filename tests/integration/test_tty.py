"""-it: a pty inside the container, window size, resize, exit code, Ctrl-C."""
import fcntl
import os
import re
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

    def __init__(self, state, args, rows=24, cols=80):
        self.master, slave = os.openpty()
        set_winsize(slave, rows, cols)
        cmd = [state.bin, "--root", str(state.root), "run", "--rm", "-it", *args]

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

    def start(*args, rows=24, cols=80):
        t = Term(state, args or ("bb", "sh"), rows, cols)
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
