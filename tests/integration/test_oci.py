"""hutch-oci: the OCI runtime command line, against bundles made here (a busybox
rootfs and a config.json from `hutch-oci spec`, edited per test) and with podman
as a real engine. Root and rootless (the rootless config: a user namespace that
maps the caller to root)."""
import array
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import wait_for
from ociutil import oci, read_until  # noqa: F401  (oci: the fixture)

ROOTLESS = os.geteuid() != 0


def test_lifecycle_create_start_state_kill_delete(oci, tmp):
    out = tmp / "out"
    b = oci.bundle(args=("sh", "-c", "echo started; exec sleep 60"),
                   edit=lambda c: c.update(annotations={"org.example.k": "v"}))
    oci.create("c1", b, out=out, check=True)
    st = oci.state("c1")
    assert st["ociVersion"].startswith("1.")
    assert st["id"] == "c1" and st["status"] == "created" and st["bundle"] == str(b)
    assert st["annotations"] == {"org.example.k": "v"}
    pid = st["pid"]
    assert pid > 0 and os.path.exists(f"/proc/{pid}")
    # it waits before exec until start
    time.sleep(0.2)
    assert out.read_text() == ""
    assert oci.state("c1")["status"] == "created"
    oci.run("start", "c1")
    wait_for(lambda: out.read_text() == "started\n", what="output after start")
    st = oci.state("c1")
    assert st["status"] == "running" and st["pid"] == pid
    listed = json.loads(oci.run("list", "--format", "json").stdout)
    assert [c["id"] for c in listed] == ["c1"]
    assert pid in json.loads(oci.run("ps", "--format", "json", "c1").stdout)
    # a running container is not deleted without --force
    cp = oci.run("delete", "c1", check=False)
    assert cp.returncode != 0 and "running" in cp.stderr
    oci.run("kill", "c1", "KILL")
    oci.wait_status("c1", "stopped")
    assert oci.state("c1")["pid"] == 0
    cp = oci.run("kill", "c1", "TERM", check=False)
    assert cp.returncode != 0 and "stopped" in cp.stderr
    oci.run("delete", "c1")
    cp = oci.run("state", "c1", check=False)
    assert cp.returncode != 0 and "does not exist" in cp.stderr
    assert not (oci.root / "c1").exists()


def test_kill_before_start_and_delete_created(oci):
    b = oci.bundle(args=("sleep", "60"))
    oci.create("k1", b)
    oci.run("kill", "k1", "KILL")
    oci.wait_status("k1", "stopped")
    cp = oci.run("start", "k1", check=False)
    assert cp.returncode != 0 and "stopped" in cp.stderr
    oci.run("delete", "k1")
    oci.create("k2", b)
    pid = oci.state("k2")["pid"]
    # not stopped: delete refuses it (the runtime spec; crun alike), --force kills it
    cp = oci.run("delete", "k2", check=False)
    assert cp.returncode != 0 and "created" in cp.stderr
    oci.run("delete", "--force", "k2")
    wait_for(lambda: not os.path.exists(f"/proc/{pid}/stat") or
             open(f"/proc/{pid}/stat").read().split(") ")[1][0] in "ZX", what="pid gone")
    assert oci.run("list", "-q").stdout == ""


def test_start_twice_and_duplicate_id(oci):
    b = oci.bundle(args=("sleep", "60"))
    oci.create("d1", b)
    cp = oci.create("d1", b, check=False)
    assert cp.returncode != 0 and "already exists" in cp.stderr
    oci.run("start", "d1")
    cp = oci.run("start", "d1", check=False)
    assert cp.returncode != 0 and "running" in cp.stderr


def test_run_foreground_exit_code_and_start_error(oci):
    b = oci.bundle(args=("sh", "-c", "exit 7"))
    cp = oci.run_to_files("run", "--bundle", b, "r1", check=False)
    assert cp.returncode == 7, cp.stderr
    assert not (oci.root / "r1").exists()
    b2 = oci.bundle("b2", args=("no-such-command",))
    cp = oci.create("r2", b2, check=False)
    assert cp.returncode == 127 and "not found" in cp.stderr
    assert not (oci.root / "r2").exists()


def test_errors_go_to_the_log_as_json(oci, tmp):
    log = tmp / "log.json"
    b = oci.bundle(edit=lambda c: c["linux"].update(intelRdt={"closID": "x"}))
    cp = oci.run("create", "--bundle", b, "e1", check=False,
                 glob=("--log", log, "--log-format", "json"))
    assert cp.returncode != 0
    entries = [json.loads(l) for l in log.read_text().splitlines()]
    assert entries and entries[-1]["level"] == "error"
    assert "linux.intelRdt" in entries[-1]["msg"] and entries[-1]["time"]
    assert not (oci.root / "e1").exists()
    # text too, and what the spec says must be ignored is, with a warning: in the
    # log only, not on the stderr the container inherits (an engine's create hands
    # it the container's own)
    log2 = tmp / "log.txt"
    b2 = oci.bundle("b2", edit=lambda c: c.update(futureThing={"x": 1}))
    cp = oci.run_to_files("run", "--bundle", b2, "e2", glob=("--log", log2, "--log-format", "text"))
    text = log2.read_text()
    assert "futureThing" in text and "level=warning" in text
    assert "futureThing" not in cp.stderr
    cp = oci.run_to_files("run", "--bundle", b2, "e3")
    assert "futureThing" in cp.stderr  # without a log, on stderr


@pytest.mark.parametrize("section,value,needle", [
    ("linux.sysctl", {"kernel.core_pattern": "|/tmp/x"}, "not namespaced"),
    ("linux.intelRdt", {"closID": "x"}, "linux.intelRdt is not supported"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_NOTIFY"}, "SCMP_ACT_NOTIFY"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"},
     "linux.seccomp.listenerMetadata"),
    ("linux.namespaces", [{"type": "pid"}, {"type": "uts"}] +
     ([{"type": "user"}] if ROOTLESS else []), "mount namespace"),
    ("mounts", [{"destination": "../etc", "type": "tmpfs", "source": "tmpfs"}], "mounts[0]"),
    ("process.user", {"uid": -1, "gid": 0}, "process.user.uid"),
])
def test_refused_by_name(oci, section, value, needle):
    def edit(c):
        obj = c
        keys = section.split(".")
        for k in keys[:-1]:
            obj = obj[k]
        obj[keys[-1]] = value
    b = oci.bundle(edit=edit)
    cp = oci.create("x", b, check=False)
    assert cp.returncode != 0 and needle in cp.stderr, cp.stderr
    assert not (oci.root / "x").exists()


def test_config_sections_reach_the_process(oci, tmp):
    script = ("id; umask; hostname; echo $FOO; pwd; ulimit -n; grep CapEff /proc/self/status; "
              "cat /proc/self/oom_score_adj; cat /proc/sys/net/ipv4/ip_default_ttl; "
              "cat /proc/timer_list 2>&1 | wc -c; touch /ro-test 2>&1 || echo readonly-root")

    def edit(c):
        p = c["process"]
        p["user"] = {"uid": 0 if ROOTLESS else 1000, "gid": 0 if ROOTLESS else 100,
                     "umask": 0o27}
        if not ROOTLESS:
            p["user"]["additionalGids"] = [10, 1000]
        p["env"].append("FOO=bar")
        p["cwd"] = "/tmp/work"
        p["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 321}]
        p["capabilities"] = {k: ["CAP_KILL", "CAP_CHOWN"] for k in
                             ("bounding", "effective", "permitted")}
        if not ROOTLESS:
            p["capabilities"]["inheritable"] = ["CAP_KILL", "CAP_CHOWN"]
            p["capabilities"]["ambient"] = ["CAP_KILL", "CAP_CHOWN"]
        p["oomScoreAdj"] = 500
        c["hostname"] = "oci-host"
        c["root"]["readonly"] = True
        c["linux"]["sysctl"] = {"net.ipv4.ip_default_ttl": "42"}
        c["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                            "options": ["mode=1777"]})
    b = oci.bundle(args=("sh", "-c", script), edit=edit)
    out = tmp / "out"
    cp = oci.run_to_files("run", "--bundle", b, "s1", out=out, check=False)
    assert cp.returncode == 0, cp.stderr
    lines = out.read_text().splitlines()
    if ROOTLESS:
        assert lines[0].startswith("uid=0(root) gid=0(root)")
    else:
        assert lines[0] == "uid=1000(app) gid=100(users) groups=10(wheel),1000(app)"
    assert lines[1:6] == ["0027", "oci-host", "bar", "/tmp/work", "321"]
    assert lines[6].split() == ["CapEff:", "0000000000000021"]
    assert lines[7:9] == ["500", "42"]
    assert lines[9] == "0"  # masked
    assert "readonly-root" in lines[-1] or "Read-only" in lines[-1]


def test_exec_in_a_running_container(oci, tmp):
    b = oci.bundle(args=("sleep", "60"))
    oci.create("x1", b)
    oci.run("start", "x1")
    cp = oci.run("exec", "--env", "A=1", "--cwd", "/tmp", "x1", "sh", "-c",
                 "echo $A $(pwd); exit 4", check=False)
    assert cp.returncode == 4 and cp.stdout == "1 /tmp\n", cp.stderr
    proc = tmp / "process.json"
    proc.write_text(json.dumps({"args": ["sh", "-c", "echo from-process-file; sleep 30"],
                                "cwd": "/", "user": {"uid": 0, "gid": 0},
                                "env": ["PATH=/bin"]}))
    pidfile = tmp / "exec.pid"
    oci.run_to_files("exec", "--process", proc, "--detach", "--pid-file", pidfile, "x1")
    pid = int(pidfile.read_text())
    assert os.path.exists(f"/proc/{pid}")
    ps = json.loads(oci.run("ps", "--format", "json", "x1").stdout)
    init = oci.state("x1")["pid"]
    if (oci.root / "x1").exists() and ROOTLESS and ps == [init]:
        pass  # no delegated cgroup for this user: ps knows the container's pid 1 only
    else:
        assert init in ps and len(ps) >= 2, ps
    oci.run("kill", "--all", "x1", "KILL")
    oci.wait_status("x1", "stopped")


def test_console_socket_gets_the_terminal(oci, tmp):
    sock_path = tmp / "console.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock_path))
    srv.listen(1)
    b = oci.bundle(args=("sh", "-c", "tty; echo on-the-pty"),
                   edit=lambda c: c["process"].update(terminal=True))
    oci.made.append("t1")
    cp = oci.run("create", "--bundle", b, "--console-socket", sock_path, "t1")
    conn, _ = srv.accept()
    fds = array.array("i")
    msg, anc, _, _ = conn.recvmsg(16, socket.CMSG_LEN(fds.itemsize))
    fds.frombytes(anc[0][2][:fds.itemsize])
    master = fds[0]
    oci.run("start", "t1")
    data = read_until(master, lambda d: b"on-the-pty" in d)
    conn.close()
    srv.close()
    assert b"/dev/pts/0" in data and b"on-the-pty" in data, data


def _podman_reset(base, made_cg, env=None):
    """What a podman test leaves: podman's store under base (rootless: its files
    are the user namespace's), and the cgroup parents hutch-oci made for it."""
    subprocess.run(_podman(base) + ["system", "reset", "-f"], capture_output=True,
                   timeout=120, env=env)
    if ROOTLESS:  # files of subordinate ids: removed from podman's user namespace
        subprocess.run(["podman", "unshare", "rm", "-rf", base], capture_output=True,
                       timeout=60)
    shutil.rmtree(base, ignore_errors=True)
    if made_cg:
        _remove_made_cgroups(made_cg)


def _podman_for_pods(oci, state):
    """A podman store of its own with the test image imported as localhost/bb:oci, for
    pods: its dir, its environment, podman with hutch-oci as the runtime, and the
    cgroup parents hutch-oci made (for _podman_reset)."""
    base = tempfile.mkdtemp(prefix="hp-", dir="/tmp")
    # the infra container gets podman's default limits too: those this machine allows
    conf = Path(base) / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n')
    env = dict(os.environ, CONTAINERS_CONF=str(conf))
    pod = _podman(base) + ["--runtime", oci.bin]

    def podman(*args, timeout=120):
        return subprocess.run(pod + list(args), capture_output=True, text=True,
                              timeout=timeout, env=env)

    made_cg = _podman_cgroup_parent_made()
    subprocess.run(_podman(base) + ["import", str(state.bb_tar), "localhost/bb:oci"],
                   check=True, capture_output=True, timeout=120, env=env)
    return base, env, podman, made_cg


def _podman(base):
    # its own store, not the host's (podman wants a runroot under 50 characters)
    return ["podman", "--root", f"{base}/storage", "--runroot", f"{base}/run",
            "--cgroup-manager", "cgroupfs", "--events-backend", "none"]


def _podman_cgroup_parent_made():
    """podman's cgroupfs parent in cgroup v2, where hutch-oci makes the containers'
    cgroups podman names: the path to remove after, when this test makes it."""
    from conftest import cgroup_v2_mount
    p = cgroup_v2_mount() / "libpod_parent"
    return None if ROOTLESS or p.exists() else p


def test_podman_runs_with_hutch_oci(oci, state, tmp):
    """podman as the engine (conmon calls create, start, state, exec, kill, delete),
    with no network (its default one would make a bridge on the host)."""
    base = tempfile.mkdtemp(prefix="hp-", dir="/tmp")
    pod = _podman(base) + ["--runtime", oci.bin]
    made_cg = _podman_cgroup_parent_made()
    subprocess.run(_podman(base) + ["import", str(state.bb_tar), "localhost/bb:oci"],
                   check=True, capture_output=True, timeout=120)
    # podman's own default seccomp profile, as hutch-oci compiles it
    common = ["--network", "none",
              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
    try:
        cp = subprocess.run(pod + ["run", "--rm", *common, "localhost/bb:oci", "sh", "-c",
                                   "echo hello; grep Seccomp: /proc/self/status"],
                            capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout.split() == ["hello", "Seccomp:", "2"]
        cp = subprocess.run(pod + ["run", "--rm", *common, "localhost/bb:oci", "sh", "-c",
                                   "exit 3"], capture_output=True, text=True, timeout=120)
        assert cp.returncode == 3
        # --read-only (its tmpfs mounts ask for tmpcopyup) and --cap-drop all
        cp = subprocess.run(pod + ["run", "--rm", "--read-only", "--cap-drop", "all", *common,
                                   "localhost/bb:oci", "sh", "-c",
                                   "touch /x 2>/dev/null || echo read-only; "
                                   "grep CapEff /proc/self/status"],
                            capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout.split() == ["read-only", "CapEff:", "0000000000000000"], cp.stdout
        # -t: the pty through conmon's console socket
        cp = subprocess.run(pod + ["run", "--rm", "-t", *common, "localhost/bb:oci", "tty"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=120)
        assert cp.returncode == 0 and cp.stdout.strip() == "/dev/pts/0", cp.stderr
        cp = subprocess.run(pod + ["run", "-d", "--name", "oci-d", *common,
                                   "localhost/bb:oci", "sleep", "60"],
                            capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stderr
        cp = subprocess.run(pod + ["exec", "oci-d", "sh", "-c", "echo in-exec; exit 5"],
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 5 and cp.stdout == "in-exec\n", cp.stderr
        cp = subprocess.run(pod + ["stop", "-t", "1", "oci-d"], capture_output=True,
                            text=True, timeout=60)
        assert cp.returncode == 0, cp.stderr
        cp = subprocess.run(pod + ["rm", "oci-d"], capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0, cp.stderr
    finally:
        subprocess.run(pod + ["rm", "-f", "--all"], capture_output=True, timeout=60)
        _podman_reset(base, made_cg)


def test_delete_removes_what_a_killed_create_left(oci):
    # a create killed before it wrote its record leaves its directory only
    (oci.root / "half").mkdir(parents=True)
    cp = oci.run("state", "half", check=False)
    assert cp.returncode != 0
    oci.run("delete", "half")
    assert not (oci.root / "half").exists()


def _remove_made_cgroups(top):
    """The parents an engine's cgroupsPath made under the cgroup v2 root, bottom-up
    (rmdir: only empty ones go). Only for a top this test made."""
    for d, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
        try:
            os.rmdir(d)
        except OSError:
            pass


def test_cgroups_path_as_the_engine_gives_it(oci, tmp):
    """linux.cgroupsPath: a path, or with --systemd-cgroup slice:prefix:name, under the
    cgroup v2 root where hutch may make it (rootful); rootless, hutch's own place."""
    from conftest import cgroup_v2_mount
    root = cgroup_v2_mount()
    top = f"hutch-test-{os.getpid()}"
    made = [root / top, root / "hutchtest.slice"]
    made = [m for m in made if not m.exists()]
    try:
        cases = (("p1", f"/{top}/c1", (), f"{top}/c1"),
                 ("p2", f"hutchtest-{os.getpid()}.slice:pfx:c2", ("--systemd-cgroup",),
                  f"hutchtest.slice/hutchtest-{os.getpid()}.slice/pfx-c2.scope"))
        for cid, cgpath, glob, rel in cases:
            b = oci.bundle(cid, args=("sleep", "60"),
                           edit=lambda c, p=cgpath: c["linux"].update(cgroupsPath=p))
            oci.made.append(cid)
            oci.run_to_files("create", "--bundle", b, cid, glob=glob)
            pid = oci.state(cid)["pid"]
            line = [l for l in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                    if l.startswith("0::")][0]
            if ROOTLESS:  # not the root's to make: hutch's own place (or none)
                assert not (root / rel).exists() and "/hutch/" in line or line == "0::/", line
            else:
                assert line == f"0::/{rel}", line
                assert (root / rel).is_dir()
            oci.run("start", cid)
            oci.run("delete", "--force", cid, glob=glob)
            assert not (root / rel).exists()
        if not ROOTLESS:
            # an existing cgroup is not hutch's to use: refused, and left as it was
            (root / top / "taken").mkdir(parents=True, exist_ok=True)
            b = oci.bundle("p3", edit=lambda c: c["linux"].update(cgroupsPath=f"/{top}/taken"))
            cp = oci.create("p3", b, check=False)
            assert cp.returncode != 0 and "exists" in cp.stderr, cp.stderr
            assert (root / top / "taken").is_dir()
            cp = oci.create("p4", b, check=False, glob=("--systemd-cgroup",))
            assert cp.returncode != 0 and "slice:prefix:name" in cp.stderr, cp.stderr
    finally:
        for cid in ("p1", "p2"):
            oci.run("delete", "--force", cid, check=False)
        for m in made:
            _remove_made_cgroups(m)


def _cgroup_of(cid):
    import hashlib
    from conftest import hutch_cgroup_parent
    p = hutch_cgroup_parent() / hashlib.sha256(cid.encode()).hexdigest()
    return p if p.exists() else None


def test_pause_resume_and_update(oci, tmp):
    b = oci.bundle(args=("sleep", "60"))
    oci.create("p1", b)
    oci.run("start", "p1")
    cg = _cgroup_of("p1")
    if cg is None:
        # rootless without a delegated cgroup: nothing to freeze or limit, and said so
        assert ROOTLESS
        cp = oci.run("pause", "p1", check=False)
        assert cp.returncode != 0 and "no cgroup" in cp.stderr
    else:
        oci.run("pause", "p1")
        assert oci.state("p1")["status"] == "paused"
        assert (cg / "cgroup.freeze").read_text().strip() == "1"
        oci.run("resume", "p1")
        assert oci.state("p1")["status"] == "running"
    res = tmp / "res.json"
    res.write_text(json.dumps({"pids": {"limit": 42}}))
    cp = oci.run("update", "--resources", res, "p1", check=False)
    if cg is not None and (cg / "pids.max").exists():
        assert cp.returncode == 0, cp.stderr
        assert (cg / "pids.max").read_text().strip() == "42"
    else:  # this host's cgroup v2 has no pids controller: refused by name
        assert cp.returncode != 0 and "linux.resources.pids.limit" in cp.stderr, cp.stderr
    res.write_text(json.dumps({"devices": []}))
    cp = oci.run("update", "--resources", res, "p1", check=False)
    assert cp.returncode != 0 and "devices" in cp.stderr


def test_seccomp_profile_applies_to_the_process_and_exec(oci, tmp):
    def edit(c):
        c["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat", "no_such_syscall"], "action": "SCMP_ACT_ERRNO",
                 "errnoRet": 38},
                # kill(pid, 0) refused, other signals allowed
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                 "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
            ]}
    script = ("mkdir /tmp/x 2>&1; grep Seccomp: /proc/self/status; "
              "kill -CONT $$ && echo cont-ok; kill -0 $$ 2>&1 || echo zero-refused; "
              "sleep 30")
    b = oci.bundle(args=("sh", "-c", script), edit=edit)
    out = tmp / "out"
    oci.create("sc1", b, out=out)
    oci.run("start", "sc1")
    wait_for(lambda: "zero-refused" in out.read_text(), what="the script's output")
    text = out.read_text()
    assert "Function not implemented" in text and "Seccomp:\t2" in text, text
    assert "cont-ok" in text and "Operation not permitted" in text, text
    cp = oci.run("exec", "sc1", "mkdir", "/tmp/y", check=False)
    assert cp.returncode != 0 and "Function not implemented" in cp.stderr, cp.stderr


def test_preserve_fds_reach_the_container(oci, tmp):
    b = oci.bundle(args=("sh", "-c", "echo via-fd3 >&3; ls /proc/self/fd | wc -l"))
    out, fd3, fd4 = tmp / "out", tmp / "fd3", tmp / "fd4"
    # fd 3 passed on; fd 4 (open in the caller too) is not
    cp = subprocess.run(["sh", "-c", f'exec 3>"{fd3}" 4>"{fd4}"; exec "$@" >"{out}"', "sh",
                         oci.bin, "--root", oci.root, "run", "--preserve-fds", "1",
                         "--bundle", b, "pf"], capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    assert fd3.read_text() == "via-fd3\n"
    # 0, 1, 2, 3 and ls's own directory fd
    assert out.read_text().strip() == "5"


def test_podman_pod_healthcheck_and_memory(oci, state, tmp):
    """podman's pods (a pod's containers join its infra container's ipc, uts and
    network namespaces by path), `podman healthcheck run` (an exec) and --memory,
    all through hutch-oci."""
    base, env, podman, made_cg = _podman_for_pods(oci, state)
    try:
        # the image's own sleep as the infra (pause) container: no pause image to build
        cp = podman("pod", "create", "--name", "p1", "--network", "none",
                    "--infra-image", "localhost/bb:oci", "--infra-command", "sleep 600")
        assert cp.returncode == 0, cp.stderr
        cp = podman("pod", "start", "p1")
        assert cp.returncode == 0, cp.stderr
        infra = podman("pod", "inspect", "p1", "--format", "{{.InfraContainerID}}").stdout.strip()
        ipid = int(podman("inspect", infra, "--format", "{{.State.Pid}}").stdout)
        want = [os.readlink(f"/proc/{ipid}/ns/{n}") for n in ("ipc", "uts", "net", "mnt")]
        cp = podman("run", "--rm", "--pod", "p1", "localhost/bb:oci", "sh", "-c",
                    "hostname; for n in ipc uts net mnt; do readlink /proc/self/ns/$n; done")
        assert cp.returncode == 0, cp.stderr
        got = cp.stdout.split()
        assert got[0] == "p1"  # the pod's hostname, in its uts namespace
        assert got[1:4] == want[:3], (got, want)
        assert got[4] != want[3]  # a mount namespace of its own
        # a healthcheck is an exec in the running container
        cp = podman("run", "-d", "--name", "hc", "--network", "none", "--memory", "64m",
                    "--health-cmd", "test -e /tmp/ok", "--health-interval", "0",
                    "localhost/bb:oci", "sleep", "60")
        assert cp.returncode == 0, cp.stderr
        cid = cp.stdout.strip()
        assert podman("healthcheck", "run", "hc").returncode == 1
        assert podman("exec", "hc", "touch", "/tmp/ok").returncode == 0
        cp = podman("healthcheck", "run", "hc")
        assert cp.returncode == 0, cp.stderr
        assert podman("inspect", "hc", "--format", "{{.State.Health.Status}}").stdout.strip() \
            == "healthy"
        # --memory: the container's cgroup v2 memory.max where cgroup v2 has the
        # memory controller (on a hybrid host it has none: the container runs, unlimited);
        # its cgroup is the one podman names (rootful), or hutch's own (rootless)
        from conftest import cgroup_v2_mount
        pid = int(podman("inspect", "hc", "--format", "{{.State.Pid}}").stdout)
        rel = [l[3:] for l in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
               if l.startswith("0::")][0]
        cg = cgroup_v2_mount() / rel.lstrip("/") if rel != "/" else None
        if not ROOTLESS:
            assert "libpod" in rel or cid in rel, rel
        if cg is not None and (cg / "memory.max").exists():
            assert (cg / "memory.max").read_text().strip() == str(64 << 20)
        else:
            assert podman("inspect", "hc", "--format", "{{.State.Status}}").stdout.strip() \
                == "running"
    finally:
        podman("rm", "-f", "-t", "0", "--all", timeout=60)
        podman("pod", "rm", "-f", "--all", timeout=60)
        _podman_reset(base, made_cg, env=env)
