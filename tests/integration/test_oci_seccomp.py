"""hutch-oci's linux.seccomp: every action of the runtime spec, errnoRet and
defaultErrnoRet, the argument comparisons, architectures, flags, and SCMP_ACT_NOTIFY
with a listener (a seccomp agent at listenerPath that gets the container process
state and the listener's fd, and answers the container's syscalls), each in a real
bundle, as root and rootless."""
import ctypes
import errno
import fcntl
import json
import os
import re
import select
import socket
import threading

import pytest

from conftest import wait_for
from ociutil import oci  # noqa: F401

SIGSYS = 31


def seccomp(c, **profile):
    c["linux"]["seccomp"] = profile


def run(oci, args, profile, cid="s", nnp=True, check=False):
    def edit(c):
        c["process"]["noNewPrivileges"] = nnp
        c["linux"]["seccomp"] = profile
    b = oci.bundle(cid, args=args, edit=edit)
    oci.made.append(cid)
    return oci.run("run", "--bundle", b, cid, check=check)


def allow_but(action, names, **extra):
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [dict({"names": names, "action": action}, **extra)]}


# ---- the actions ----------------------------------------------------------------------

@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD",
                                    "SCMP_ACT_KILL_PROCESS"])
def test_kill_actions_end_the_process_with_sigsys(oci, action):
    cp = run(oci, ("mkdir", "/tmp/k"), allow_but(action, ["mkdir", "mkdirat"]))
    assert cp.returncode == 128 + SIGSYS, (cp.returncode, cp.stderr)
    cp = run(oci, ("sh", "-c", "mkdir /tmp/k && echo made"),
             allow_but(action, ["reboot"]), cid="s2", check=True)
    assert cp.stdout == "made\n"


def test_trap_sends_sigsys_the_process_can_catch(oci):
    # the shell's own chdir (cd is a builtin) is trapped: the call fails (ENOSYS)
    # and the shell's SIGSYS handler runs
    script = "trap 'echo trapped' SYS; cd /tmp || echo cd-failed; echo done"
    cp = run(oci, ("sh", "-c", script), allow_but("SCMP_ACT_TRAP", ["chdir"]), check=True)
    assert "trapped" in cp.stdout and "cd-failed" in cp.stdout, cp.stdout


def test_errno_with_and_without_errnoret(oci):
    script = "mkdir /tmp/e 2>&1; rmdir /tmp 2>&1; echo end"
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EXDEV},
        {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}]}  # EPERM
    cp = run(oci, ("sh", "-c", script), profile, check=True)
    assert os.strerror(errno.EXDEV) in cp.stdout, cp.stdout
    assert os.strerror(errno.EPERM) in cp.stdout, cp.stdout


def syscall_names():
    names = set()
    for line in open("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"):
        m = re.match(r"#define __NR_(\w+) ", line)
        if m:
            names.add(m.group(1))
    return sorted(names)


def test_default_errno_ret(oci):
    """defaultAction ERRNO with defaultErrnoRet: every syscall not listed fails with it."""
    allowed = [n for n in syscall_names() if n not in ("mkdir", "mkdirat")]
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EXDEV,
               "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}
    cp = run(oci, ("sh", "-c", "mkdir /tmp/d 2>&1; echo end"), profile, check=True)
    assert os.strerror(errno.EXDEV) in cp.stdout and "end" in cp.stdout, cp.stdout


def test_trace_without_a_tracer_is_enosys(oci):
    # the kernel: a TRACE with no tracer attached fails the call with ENOSYS;
    # errnoRet is the tracer's message, allowed with TRACE
    cp = run(oci, ("sh", "-c", "mkdir /tmp/t 2>&1; echo end"),
             allow_but("SCMP_ACT_TRACE", ["mkdir", "mkdirat"], errnoRet=7), check=True)
    assert os.strerror(errno.ENOSYS) in cp.stdout, cp.stdout


def test_log_allows_the_call(oci):
    script = "mkdir /tmp/l && test -d /tmp/l && echo made; grep Seccomp: /proc/self/status"
    cp = run(oci, ("sh", "-c", script), allow_but("SCMP_ACT_LOG", ["mkdir", "mkdirat"]),
             check=True)
    assert "made" in cp.stdout and "Seccomp:\t2" in cp.stdout, cp.stdout


# ---- arguments ------------------------------------------------------------------------

# kill(pid, sig) refused (EPERM) when its signal compares so: for 0, CONT (18), WINCH (28)
@pytest.mark.parametrize("op,value,value_two,refused", [
    ("SCMP_CMP_EQ", 18, None, {"CONT"}),
    ("SCMP_CMP_NE", 18, None, {"0", "WINCH"}),
    ("SCMP_CMP_LT", 18, None, {"0"}),
    ("SCMP_CMP_LE", 18, None, {"0", "CONT"}),
    ("SCMP_CMP_GE", 18, None, {"CONT", "WINCH"}),
    ("SCMP_CMP_GT", 18, None, {"WINCH"}),
    # (sig & 0x18) == 0x18: 28 (0x1c) only; 18 is 0x12
    ("SCMP_CMP_MASKED_EQ", 0x18, 0x18, {"WINCH"}),
])
def test_argument_comparisons(oci, op, value, value_two, refused):
    arg = {"index": 1, "value": value, "op": op}
    if value_two is not None:
        arg["valueTwo"] = value_two
    script = "for s in 0 CONT WINCH; do kill -$s $$ 2>/dev/null && echo $s:ok || echo $s:no; done"
    cp = run(oci, ("sh", "-c", script), allow_but("SCMP_ACT_ERRNO", ["kill"], args=[arg]),
             check=True)
    got = {line.split(":")[0] for line in cp.stdout.split() if line.endswith(":no")}
    assert got == refused, cp.stdout


def test_conditions_on_one_argument_are_each_a_rule(oci):
    # two conditions on the same argument: either refuses (runc's meaning); on two
    # arguments: both must hold
    script = "for s in 0 CONT WINCH; do kill -$s $$ 2>/dev/null && echo $s:ok || echo $s:no; done"
    args = [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 28, "op": "SCMP_CMP_EQ"}]
    cp = run(oci, ("sh", "-c", script), allow_but("SCMP_ACT_ERRNO", ["kill"], args=args),
             check=True)
    assert "0:no" in cp.stdout and "WINCH:no" in cp.stdout and "CONT:ok" in cp.stdout
    args = [{"index": 0, "value": 0, "op": "SCMP_CMP_NE"},
            {"index": 1, "value": 28, "op": "SCMP_CMP_EQ"}]
    cp = run(oci, ("sh", "-c", script), allow_but("SCMP_ACT_ERRNO", ["kill"], args=args),
             cid="s2", check=True)
    assert "0:ok" in cp.stdout and "WINCH:no" in cp.stdout and "CONT:ok" in cp.stdout


# ---- architectures and flags ----------------------------------------------------------

def test_architectures(oci):
    feats = json.loads(oci.run("features").stdout)["linux"]["seccomp"]
    assert "SCMP_ARCH_X86_64" in feats["archs"] and "SCMP_ARCH_X86" in feats["archs"]
    profile = allow_but("SCMP_ACT_ERRNO", ["mkdir", "mkdirat"], errnoRet=errno.EXDEV)
    profile["architectures"] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                                "SCMP_ARCH_AARCH64"]
    cp = run(oci, ("sh", "-c", "mkdir /tmp/a 2>&1"), profile)
    assert os.strerror(errno.EXDEV) in cp.stdout, cp.stdout
    # an architecture this libseccomp does not know is left out, with a warning
    newer = [a for a in ("SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_SH",
                         "SCMP_ARCH_SHEB") if a not in feats["archs"]]
    profile["architectures"] = ["SCMP_ARCH_X86_64"] + newer
    cp = run(oci, ("sh", "-c", "mkdir /tmp/a 2>&1"), profile, cid="s1")
    assert os.strerror(errno.EXDEV) in cp.stdout, cp.stdout
    for a in newer:
        assert a in cp.stderr and "left out" in cp.stderr, cp.stderr
    # a name that is no architecture is refused by name
    profile["architectures"] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_PDP11"]
    cp = run(oci, ("true",), profile, cid="s2")
    assert cp.returncode != 0 and "SCMP_ARCH_PDP11" in cp.stderr, cp.stderr
    assert not (oci.root / "s2").exists()


@pytest.mark.parametrize("flags", [
    ["SECCOMP_FILTER_FLAG_TSYNC"], ["SECCOMP_FILTER_FLAG_LOG"],
    ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
    ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
])
def test_flags_are_applied(oci, flags):
    feats = json.loads(oci.run("features").stdout)["linux"]["seccomp"]
    assert set(flags) <= set(feats["supportedFlags"]) <= set(feats["knownFlags"])
    profile = allow_but("SCMP_ACT_ERRNO", ["mkdir", "mkdirat"], errnoRet=errno.EXDEV)
    profile["flags"] = flags
    cp = run(oci, ("sh", "-c", "mkdir /tmp/f 2>&1; grep Seccomp: /proc/self/status"), profile)
    assert cp.returncode == 0, cp.stderr
    assert os.strerror(errno.EXDEV) in cp.stdout and "Seccomp:\t2" in cp.stdout, cp.stdout
    assert "not applied" not in cp.stderr


@pytest.mark.parametrize("profile,needle", [
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]},
     "SECCOMP_FILTER_FLAG_FAST"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}, "default action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, "linux.seccomp.defaultAction"),
    (allow_but("SCMP_ACT_KILL", ["mkdir"], errnoRet=1), "linux.seccomp.syscalls[0].action"),
    (allow_but("SCMP_ACT_ERRNO", ["mkdir"], errnoRet=5000), "5000"),
    (allow_but("SCMP_ACT_NOTIFY", ["mkdir"]), "listenerPath"),
    (dict(allow_but("SCMP_ACT_NOTIFY", ["sendmsg"]), listenerPath="/x"), "sendmsg"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}, "listenerMetadata"),
    (allow_but("SCMP_ACT_MAYBE", ["mkdir"]), "SCMP_ACT_MAYBE"),
    (allow_but("SCMP_ACT_ERRNO", ["kill"], args=[{"index": 1, "value": 0, "op": "SCMP_CMP_XX"}]),
     "SCMP_CMP_XX"),
])
def test_refused_profiles(oci, profile, needle):
    cp = run(oci, ("true",), profile)
    assert cp.returncode != 0 and needle in cp.stderr, cp.stderr
    assert not (oci.root / "s").exists()


def test_listener_path_without_notify_is_ignored(oci):
    profile = allow_but("SCMP_ACT_ERRNO", ["mkdir", "mkdirat"])
    profile["listenerPath"] = "/nonexistent/agent.sock"
    cp = run(oci, ("true",), profile)
    assert cp.returncode == 0, cp.stderr


# ---- SCMP_ACT_NOTIFY and its listener -------------------------------------------------

# linux/seccomp.h: struct seccomp_notif (80 bytes), struct seccomp_notif_resp (24)
class SeccompData(ctypes.Structure):
    _fields_ = [("nr", ctypes.c_int), ("arch", ctypes.c_uint32),
                ("instruction_pointer", ctypes.c_uint64), ("args", ctypes.c_uint64 * 6)]


class Notif(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("data", SeccompData)]


class NotifResp(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("val", ctypes.c_int64), ("error", ctypes.c_int32),
                ("flags", ctypes.c_uint32)]


def _iowr(nr, size):
    return (3 << 30) | (size << 16) | (ord("!") << 8) | nr


NOTIF_RECV = _iowr(0, ctypes.sizeof(Notif))
NOTIF_SEND = _iowr(1, ctypes.sizeof(NotifResp))
NR = {"getppid": 110, "mkdir": 83, "mkdirat": 258}


class Agent:
    """A seccomp agent at path: for each connection, the container process state and
    the listener's fd; it answers getppid with 4242 and mkdir/mkdirat with EXDEV,
    until the filter's last process is gone."""

    def __init__(self, path):
        self.path = str(path)
        self.states = []
        self.answered = []
        self.errors = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(4)
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            r, _, _ = select.select([self.sock], [], [], 0.1)
            if not r:
                continue
            conn, _ = self.sock.accept()
            try:
                data, fds = b"", []
                while True:
                    msg, got, _, _ = socket.recv_fds(conn, 65536, 4)
                    fds += got
                    if not msg:
                        break
                    data += msg
                conn.close()
                self.states.append((json.loads(data), len(fds)))
                threading.Thread(target=self._answer, args=(fds[0],), daemon=True).start()
            except Exception as e:  # shown by the test
                self.errors.append(repr(e))

    def _answer(self, fd):
        try:
            p = select.poll()
            p.register(fd, select.POLLIN)
            while not self.stop:
                ev = p.poll(100)
                if not ev:
                    continue
                if ev[0][1] & select.POLLHUP:
                    break
                req = bytearray(ctypes.sizeof(Notif))
                try:
                    fcntl.ioctl(fd, NOTIF_RECV, req, True)
                except OSError as e:
                    if e.errno == errno.ENOENT:  # the process went meanwhile
                        continue
                    raise
                n = Notif.from_buffer(req)
                resp = NotifResp(id=n.id)
                if n.data.nr == NR["getppid"]:
                    resp.val = 4242
                else:
                    resp.error = -errno.EXDEV
                self.answered.append(n.data.nr)
                try:
                    fcntl.ioctl(fd, NOTIF_SEND, bytearray(resp), True)
                except OSError as e:
                    if e.errno != errno.ENOENT:
                        raise
        except Exception as e:
            self.errors.append(repr(e))
        finally:
            os.close(fd)

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def agent(tmp):
    a = Agent(tmp / "agent.sock")
    yield a
    a.close()


def notify_profile(agent, **extra):
    return dict({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": agent.path,
                 "listenerMetadata": "hutch-test",
                 "syscalls": [{"names": ["getppid", "mkdir", "mkdirat"],
                               "action": "SCMP_ACT_NOTIFY"}]}, **extra)


SCRIPT = "echo ppid=$PPID; mkdir /tmp/n 2>&1; test -d /tmp/n && echo made; echo end"


@pytest.mark.parametrize("nnp", [True, False], ids=["no_new_privs", "without_no_new_privs"])
def test_notify_run_gets_the_listeners_answers(oci, agent, nnp):
    """run: the filter is loaded before exec, its fd reaches the agent with the
    container process state before the command runs, and the agent's answers are
    what the container's syscalls return."""
    cp = run(oci, ("sh", "-c", SCRIPT), notify_profile(agent), nnp=nnp)
    assert cp.returncode == 0, cp.stderr
    assert not agent.errors, agent.errors
    assert "ppid=4242" in cp.stdout, cp.stdout
    assert os.strerror(errno.EXDEV) in cp.stdout and "made" not in cp.stdout, cp.stdout
    assert len(agent.states) == 1
    st, n_fds = agent.states[0]
    assert n_fds == 1 and st["fds"] == ["seccompFd"]
    assert st["ociVersion"].startswith("1.") and st["metadata"] == "hutch-test"
    assert st["state"]["id"] == "s" and st["state"]["status"] == "creating"
    assert st["pid"] == st["state"]["pid"] and st["pid"] > 1
    assert st["state"]["bundle"] == str(oci.tmp / "s")


@pytest.mark.parametrize("nnp", [True, False], ids=["no_new_privs", "without_no_new_privs"])
def test_notify_create_start_and_exec(oci, agent, tmp, nnp):
    """create/start: the listener has its fd before the command runs (with
    no_new_privs the filter is loaded after start, and start hands it over);
    exec's process gets a filter and a listener of its own."""
    def edit(c):
        c["process"]["noNewPrivileges"] = nnp
        c["annotations"] = {"k": "v"}
        seccomp(c, **notify_profile(agent, flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                                                  "SECCOMP_FILTER_FLAG_TSYNC"]))
    b = oci.bundle("n1", args=("sh", "-c", SCRIPT + "; sleep 30"), edit=edit)
    out = tmp / "out"
    oci.create("n1", b, out=out)
    created = oci.state("n1")
    oci.run("start", "n1")
    wait_for(lambda: os.strerror(errno.EXDEV) in out.read_text(), what="mkdir's answer")
    text = out.read_text()
    assert "ppid=4242" in text and "made" not in text, text
    assert not agent.errors, agent.errors
    st, _ = agent.states[0]
    assert st["state"]["status"] == ("created" if nnp else "creating")
    assert st["pid"] == created["pid"] and st["state"]["annotations"] == {"k": "v"}
    cp = oci.run("exec", "n1", "sh", "-c", "echo ppid=$PPID; mkdir /tmp/x", check=False)
    assert cp.returncode != 0 and "ppid=4242" in cp.stdout, cp.stdout
    assert os.strerror(errno.EXDEV) in cp.stderr, cp.stderr
    assert len(agent.states) == 2
    st, _ = agent.states[1]
    assert st["state"]["status"] == "running" and st["state"]["pid"] == created["pid"]
    assert st["pid"] != created["pid"] and st["metadata"] == "hutch-test"
    oci.run("kill", "n1", "KILL")


def test_notify_without_an_agent_fails_the_create(oci, tmp):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp / "nobody.sock"),
               "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}
    cp = run(oci, ("sh", "-c", "echo ran"), profile, nnp=False)
    assert cp.returncode != 0 and "linux.seccomp.listenerPath" in cp.stderr, cp.stderr
    assert "nobody.sock" in cp.stderr and "ran" not in cp.stdout
    assert not (oci.root / "s").exists()


def test_notify_without_an_agent_fails_the_start(oci, tmp):
    """With no_new_privs the filter is loaded after start: start is what fails, and
    the command never runs."""
    def edit(c):
        c["process"]["noNewPrivileges"] = True
        seccomp(c, defaultAction="SCMP_ACT_ALLOW", listenerPath=str(tmp / "nobody.sock"),
                syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}])
    b = oci.bundle("n2", args=("sh", "-c", "echo ran"), edit=edit)
    out = tmp / "out"
    oci.create("n2", b, out=out)
    cp = oci.run("start", "n2", check=False)
    assert cp.returncode != 0 and "linux.seccomp.listenerPath" in cp.stderr, cp.stderr
    oci.wait_status("n2", "stopped")
    assert "ran" not in out.read_text()
