"""Helpers for the stack tests: a stack file in a scratch dir, the CLI verbs run
against it, and what a test reads back (stack ps, stack ls, stack events, the
files its services write).

Each Stack gets a unique name (containers are STACK-SERVICE-N) and a host dir
mounted in every service at /t: services write markers and /proc/uptime stamps
there (CLOCK_BOOTTIME, the same clock inside a container and on the host, in
1/100 s), and their scripts live there, so no shell text needs INI quoting.
`Stacks.cleanup` brings every stack down (`down -t 0 --volumes`) before the leak
check runs."""
import json
import os
import random
import socket
import signal
import subprocess
import threading
import time
from pathlib import Path

from conftest import proc_state, wait_for

ROOTLESS = os.geteuid() != 0


def uptime():
    """The host's CLOCK_BOOTTIME in seconds: what /proc/uptime says in a container."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def alive(pid):
    """Running (a zombie counts as dead: this machine's pid 1 does not reap)."""
    return proc_state(pid) not in (None, "Z", "X")


def processes_naming(text):
    """Live processes whose command line mentions text (a stack's name: its
    supervisor, or anything else hutch left running for it)."""
    out = []
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
        except OSError:
            continue
        if text in cmd and alive(int(d)):
            out.append((int(d), cmd.strip()))
    return out


def field(row, *names, default=None):
    """The first of names present in row (a JSON object), case-insensitively and
    with '_' and '-' ignored, also one level down (a nested object's key); the
    CLI's JSON spelling is theirs to choose, the test checks the value."""
    def norm(s):
        return s.lower().replace("_", "").replace("-", "")

    flat = {}
    for k, v in row.items():
        flat.setdefault(norm(k), v)
    for k, v in row.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                flat.setdefault(norm(k) + norm(k2), v2)
                flat.setdefault(norm(k2), v2)
    for n in names:
        if norm(n) in flat:
            return flat[norm(n)]
    return default


def json_lines(text):
    """JSON lines, or one JSON array, as a list of objects."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    return [json.loads(l) for l in text.splitlines() if l.strip()]


class Stack:
    def __init__(self, state, base, name):
        self.state = state
        self.name = name
        self.dir = Path(base)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.t = self.dir / "t"
        self.t.mkdir(mode=0o777, exist_ok=True)
        self.t.chmod(0o777)
        self.file = self.dir / "hutch.ini"
        self.supervisors_seen = set()

    # ---- the stack file and what services run

    def mount(self):
        """The volumes value that gives a service the shared dir at /t."""
        return f"{self.t}:/t"

    def script(self, name, body):
        """Write /t/NAME.sh and return the command that runs it."""
        p = self.t / f"{name}.sh"
        p.write_text("set -u\n" + body.strip() + "\n")
        p.chmod(0o755)
        return f"sh /t/{name}.sh"

    def write(self, services, raw=False):
        """services: the text of the [service.*] sections; a [stack] name is put
        first unless raw (then services is the whole file)."""
        text = services if raw else f"[stack]\nname = {self.name}\n\n{services.strip()}\n"
        self.file.write_text(text)
        return self.file

    def exists(self, rel):
        return (self.t / rel).exists()

    def lines(self, rel):
        try:
            return (self.t / rel).read_text().splitlines()
        except FileNotFoundError:
            return []

    def stamps(self, rel):
        """The /proc/uptime stamps a service appended to /t/REL (first number of each line)."""
        return [float(l.split()[0]) for l in self.lines(rel) if l.strip()]

    def touch(self, rel):
        (self.t / rel).write_text("")

    # ---- the CLI

    def argv(self, *args):
        args = [str(a) for a in args]
        if args[0] == "stack":
            return ["stack", args[1], "-f", str(self.file), *args[2:]]
        if args[0] == "with":
            return ["with", "-f", str(self.file), *args[1:]]
        return [args[0], "-f", str(self.file), *args[1:]]

    def hutch(self, *args, check=True, timeout=60, **kw):
        kw.setdefault("cwd", self.dir)
        return self.state.run(*self.argv(*args), check=check, timeout=timeout, **kw)

    def popen(self, *args, **kw):
        cmd = [self.state.bin, "--root", str(self.state.root), *self.argv(*args)]
        kw.setdefault("cwd", self.dir)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("text", True)
        return subprocess.Popen(cmd, **kw)

    def up(self, *extra, check=True, timeout=60, wait=True):
        args = ["up", "-d"] + (["--wait"] if wait else []) + list(extra)
        cp = self.hutch(*args, check=check, timeout=timeout)
        e = self.ls()
        if e and isinstance(e.get("supervisor"), int) and e["supervisor"] > 1:
            self.supervisors_seen.add(e["supervisor"])
        return cp

    def down(self, *extra, check=True, timeout=60):
        return self.hutch("down", *extra, check=check, timeout=timeout)

    def ps(self):
        return json_lines(self.hutch("stack", "ps", "--format", "json").stdout)

    def rows(self, service):
        return [r for r in self.ps() if r.get("service") == service]

    def row(self, service):
        rows = self.rows(service)
        assert len(rows) == 1, f"stack ps rows of {service}: {rows}"
        return rows[0]

    def ls(self):
        """This stack's `stack ls --format json` entry, or None."""
        out = json_lines(self.state.run("stack", "ls", "--format", "json").stdout)
        for e in out:
            if e.get("name") == self.name:
                return e
        return None

    def supervisor_pid(self):
        e = self.ls()
        assert e is not None, f"stack {self.name} not in stack ls"
        pid = e.get("supervisor")
        assert isinstance(pid, int) and pid > 1, f"no supervisor pid in {e}"
        self.supervisors_seen.add(pid)
        return pid

    def run_dir(self):
        """RUN/stacks/NAME: the control socket and the supervisor's pid file."""
        return self.state.root / "run" / "stacks" / self.name

    def data_dir(self):
        """DATA/stacks/NAME: the stack's record, replicas' records, volumes, log."""
        return self.state.root / "stacks" / self.name

    def socket_path(self):
        return self.run_dir() / "control.sock"

    def containers(self, all=True):
        """`hutch ps [-a] --format json` rows of this stack's containers."""
        out = json_lines(self.state.run("ps", *(["-a"] if all else []), "--format",
                                        "json").stdout)
        pre = self.name + "-"
        return [r for r in out if str(field(r, "Names", "name")).startswith(pre)]

    def container_names(self):
        return sorted(str(field(r, "Names", "name")) for r in self.containers())

    def leftovers(self):
        """What is left of the stack: containers (any state), a stack ls entry
        other than "down", its run dir, its replicas' records and a live
        supervisor. (Named volumes stay in DATA/stacks/NAME until down --volumes;
        mounts and cgroups are conftest.no_leaks's.)"""
        found = [f"container {n}" for n in self.container_names()]
        e = self.ls()
        if e is not None and e.get("status") != "down":
            found.append(f"stack ls entry {e}")
        if self.run_dir().exists():
            found.append(f"run dir {self.run_dir()}: {os.listdir(self.run_dir())}")
        if (self.data_dir() / "replicas").exists():
            found.append(f"replica records {os.listdir(self.data_dir() / 'replicas')}")
        for pid in self.supervisors_seen:
            if alive(pid):
                found.append(f"supervisor {pid}")
        found += [f"process {pid}: {cmd}" for pid, cmd in processes_naming(self.name)]
        return found


class Stacks:
    """Factory of stacks for one test; every one is brought down at teardown."""

    def __init__(self, state, tmp):
        self.state = state
        self.tmp = Path(tmp)
        self.made = []

    def __call__(self, services=None, name=None, raw=False):
        name = name or f"st{random.randrange(16**6):06x}"
        s = Stack(self.state, self.tmp / name, name)
        if services is not None:
            s.write(services(s) if callable(services) else services, raw=raw)
        self.made.append(s)
        return s

    def cleanup(self):
        """down -t 0 --volumes each stack. A down that hangs is an error of the
        test, but the stack still goes (its supervisor, started by this test,
        SIGKILLed by pid, then down without one), so that later tests start clean."""
        hung = []
        for s in self.made:
            if not s.file.exists():
                continue
            try:
                s.hutch("down", "-t", "0", "--volumes", check=False, timeout=30)
            except AssertionError as e:
                hung.append(f"{s.name}: {e}")
                for pid in s.supervisors_seen | {p for p, _ in processes_naming(str(s.file))}:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                s.hutch("down", "-t", "0", "--volumes", check=False, timeout=30)
        assert not hung, f"down -t 0 hung: {hung}"


class Events:
    """`hutch stack events --format json` running in the background: each line
    parsed and kept with the host's CLOCK_BOOTTIME at its arrival. (It subscribes
    some time after it starts: for events that must not be missed, use
    Control.subscribe, which returns once subscribed.)"""

    def __init__(self, stack):
        self.stack = stack
        self.proc = stack.popen("stack", "events", "--format", "json")
        self.items = []  # (arrival, event)
        self.raw = []
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.proc.stdout:
            now = uptime()
            with self.lock:
                self.raw.append(line)
                try:
                    self.items.append((now, json.loads(line)))
                except ValueError:
                    pass

    def events(self):
        with self.lock:
            return [e for _, e in self.items]

    def wait(self, pred, timeout=10, what="an event"):
        return wait_for(lambda: [e for e in self.events() if pred(e)], timeout=timeout,
                        what=f"{what} in stack events (got {self.events()})")

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.t.join(timeout=5)
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        return err


def ev_time(e):
    """An event's time in seconds (its "time" is CLOCK_REALTIME in ns)."""
    return e["time"] / 1e9


def last_exit_code(row):
    le = row.get("last_exit") or {}
    return le.get("code")


class Control:
    """A client of the stack's control socket (docs/api.md): JSON lines both ways,
    with nothing but the standard library."""

    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.f = self.sock.makefile("rwb")

    def send(self, obj):
        self.f.write(json.dumps(obj).encode() + b"\n")
        self.f.flush()

    def recv(self):
        line = self.f.readline()
        assert line, "the control socket was closed"
        return json.loads(line)

    def call(self, obj):
        self.send(obj)
        return self.recv()

    def subscribe(self):
        """Ask for events; returns once the supervisor said ok (from then on
        every event reaches this client)."""
        r = self.call({"cmd": "subscribe"})
        assert r.get("ok") is True, r
        return self

    def events_until(self, pred, timeout=10, n=1):
        """Events read until n of them satisfied pred (the last included); fails
        after timeout."""
        got = []
        hits = 0
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for an event; got {got}")
            self.sock.settimeout(left)
            try:
                e = self.recv()
            except socket.timeout:
                continue
            got.append(e)
            if pred(e):
                hits += 1
                if hits == n:
                    return got

    def close(self):
        try:
            self.f.close()
        finally:
            self.sock.close()


class Lines:
    """A background command's stdout, line by line, as it comes."""

    def __init__(self, proc):
        self.proc = proc
        self.lines = []
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def text(self):
        with self.lock:
            return "\n".join(self.lines)

    def close(self, sig=signal.SIGINT):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.t.join(timeout=5)
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        return err
