"""hutch-oci against what the OCI runtime spec requires of a runtime binary
(runtime.md, config.md, config-linux.md), one requirement a test: the lifecycle's
operations and their errors (which must fail and change nothing), the state at each
status, the pid file, the hooks' order and stdin, and what a container's process
sees of its config. Where the spec leaves a behaviour open, hutch does as runc
does, and runc is run on the same bundle to show it. Root and rootless."""
import array
import json
import os
import shutil
import socket
import stat
import subprocess
import time

import pytest

from conftest import wait_for
from ociutil import oci, read_until  # noqa: F401  (oci: the fixture)

ROOTLESS = os.geteuid() != 0


def _refused(cp, needle):
    assert cp.returncode != 0, (cp.stdout, cp.stderr)
    assert needle in cp.stderr, cp.stderr


def _gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] in "ZX"
    except OSError:
        return True


# ---- lifecycle: each operation, and the errors the spec asks for ---------------------


@pytest.mark.parametrize("verb", ["create", "start", "state", "kill", "delete"])
def test_a_verb_without_a_container_id_fails(oci, verb):
    b = oci.bundle()
    cp = oci.run(verb, *(["--bundle", b] if verb == "create" else []), check=False)
    assert cp.returncode != 0 and "id" in cp.stderr, cp.stderr
    assert not oci.root.exists() or os.listdir(oci.root) == []


@pytest.mark.parametrize("verb", ["state", "start", "kill", "delete", "ps"])
def test_a_verb_on_an_unknown_id_fails(oci, verb):
    _refused(oci.run(verb, "no-such-container", check=False), "does not exist")


def test_create_with_an_existing_id_fails_and_changes_nothing(oci):
    b = oci.bundle(args=("sleep", "60"))
    oci.create("dup", b)
    before = oci.state("dup")
    other = oci.bundle("other", args=("true",))
    cp = oci.create("dup", other, check=False)
    _refused(cp, "already exists")
    assert oci.state("dup") == before  # same pid, bundle, created time
    assert not _gone(before["pid"])
    oci.run("start", "dup")
    assert oci.state("dup")["status"] == "running"


def test_start_of_a_container_not_created_fails(oci):
    b = oci.bundle(args=("sleep", "60"))
    oci.create("s1", b)
    oci.run("start", "s1")
    running = oci.state("s1")
    _refused(oci.run("start", "s1", check=False), "running")
    assert oci.state("s1") == running
    oci.run("kill", "s1", "KILL")
    oci.wait_status("s1", "stopped")
    stopped = oci.state("s1")
    _refused(oci.run("start", "s1", check=False), "stopped")
    assert oci.state("s1") == stopped


def test_delete_of_a_created_container_fails_without_force(oci):
    # runtime.md: deleting a container that is not stopped is an error, and has
    # no effect (crun has it so; runc deletes a created one)
    b = oci.bundle(args=("sleep", "60"))
    oci.create("dc", b)
    before = oci.state("dc")
    _refused(oci.run("delete", "dc", check=False), "is created")
    assert oci.state("dc") == before and not _gone(before["pid"])
    oci.run("delete", "--force", "dc")
    wait_for(lambda: _gone(before["pid"]), what="the created process gone")
    assert oci.run("list", "-q").stdout == ""


def test_delete_of_a_running_container_fails_without_force(oci):
    b = oci.bundle(args=("sleep", "60"))
    oci.create("dr", b)
    oci.run("start", "dr")
    before = oci.state("dr")
    _refused(oci.run("delete", "dr", check=False), "is running")
    assert oci.state("dr") == before and not _gone(before["pid"])
    oci.run("kill", "dr", "KILL")
    oci.wait_status("dr", "stopped")
    oci.run("delete", "dr")
    assert not (oci.root / "dr").exists()


def test_kill_of_a_stopped_container_fails_and_changes_nothing(oci):
    b = oci.bundle(args=("true",))
    oci.create("ks", b)
    oci.run("start", "ks")
    oci.wait_status("ks", "stopped")
    before = oci.state("ks")
    for sig in ("KILL", "TERM", "0"):
        _refused(oci.run("kill", "ks", sig, check=False), "stopped")
    assert oci.state("ks") == before
    oci.run("delete", "ks")


def test_kill_sends_the_signal_named_to_the_process(oci):
    # each signal by its name, with and without SIG, and by its number; the
    # process records what it got in its rootfs
    script = ("for s in TERM USR1 USR2 HUP; do trap \"touch /got-$s\" $s; done; "
              "touch /ready; while :; do sleep 1 & wait $!; done")
    b = oci.bundle(args=("sh", "-c", script))
    rootfs = b / "rootfs"
    oci.create("ksig", b)
    oci.run("kill", "ksig", "0")  # 0 signals nothing: is it there (as kill(2), as runc)
    oci.run("start", "ksig")
    wait_for(lambda: (rootfs / "ready").exists(), what="traps set")
    for given, name in (("TERM", "TERM"), ("SIGUSR1", "USR1"), ("usr2", "USR2"), ("1", "HUP")):
        oci.run("kill", "ksig", given)
        wait_for(lambda: (rootfs / f"got-{name}").exists(), what=f"{given} received")
    assert oci.state("ksig")["status"] == "running"
    oci.run("kill", "ksig")  # SIGTERM by default
    _refused(oci.run("kill", "ksig", "NOSUCHSIG", check=False), "unknown signal")
    oci.run("kill", "ksig", "KILL")
    oci.wait_status("ksig", "stopped")


def test_lifecycle_verbs_print_nothing_on_success(oci, tmp):
    # an engine reads stdout of state, list and ps alone; the others say nothing
    b = oci.bundle(args=("sleep", "60"))
    out = tmp / "create.out"
    oci.create("quiet", b, out=out)
    assert out.read_text() == ""
    for verb in (("start", "quiet"), ("kill", "quiet", "KILL")):
        assert oci.run(*verb).stdout == ""
    oci.wait_status("quiet", "stopped")
    assert oci.run("delete", "quiet").stdout == ""


def test_config_changed_after_create_changes_nothing(oci, tmp):
    log = tmp / "hooks"
    sh = shutil.which("sh")

    def hooks(word):
        return {k: [{"path": sh, "args": ["sh", "-c", f"echo {k}-{word} >> {log}"]}]
                for k in ("poststart", "poststop")}
    b = oci.bundle(args=("sh", "-c", "echo first > /ran"),
                   edit=lambda c: c.update(hooks=hooks("old")))
    oci.create("cfg", b)
    cfg = json.loads((b / "config.json").read_text())
    cfg["process"]["args"] = ["sh", "-c", "echo second > /ran"]
    cfg["hooks"] = hooks("new")
    (b / "config.json").write_text(json.dumps(cfg))
    oci.run("start", "cfg")
    oci.wait_status("cfg", "stopped")
    oci.run("delete", "cfg")
    assert (b / "rootfs" / "ran").read_text() == "first\n"
    assert log.read_text().split() == ["poststart-old", "poststop-old"]


# ---- state and the pid file -------------------------------------------------------------


def test_state_at_each_status(oci, tmp):
    b = oci.bundle(args=("true",),
                   edit=lambda c: c.update(annotations={"org.example.empty": "",
                                                        "org.example.k": "v"}))
    # the bundle as the engine gives it: a relative path, from its directory
    oci.made.append("st1")
    cp = oci.run("create", "--bundle", ".", "st1", cwd=b, stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, capture_output=False)
    assert cp.returncode == 0
    keys = {"ociVersion", "id", "status", "pid", "bundle", "annotations"}
    st = oci.state("st1")
    assert keys <= st.keys(), st
    assert st["ociVersion"].startswith("1.") and st["id"] == "st1"
    assert st["status"] == "created" and st["pid"] > 0
    assert st["bundle"] == str(b)  # absolute and written shortest: not ".../b/."
    assert st["annotations"] == {"org.example.empty": "", "org.example.k": "v"}
    pid = st["pid"]
    oci.run("start", "st1")
    wait_for(lambda: _gone(pid) or oci.state("st1")["status"] != "created", what="started")
    st = oci.state("st1")
    assert st["status"] in ("running", "stopped")
    oci.wait_status("st1", "stopped")
    st = oci.state("st1")
    assert keys <= st.keys() and st["pid"] == 0 and st["bundle"] == str(b)
    # state asks, it never changes: the same answer twice
    assert oci.state("st1") == st
    listed = json.loads(oci.run("list", "--format", "json").stdout)
    assert [(c["id"], c["status"]) for c in listed] == [("st1", "stopped")]
    oci.run("delete", "st1")
    _refused(oci.run("state", "st1", check=False), "does not exist")


def test_pid_file_holds_the_pid_and_nothing_else(oci, tmp):
    b = oci.bundle(args=("sleep", "60"))
    oci.made.append("pf")
    # relative to the caller's directory, as runc takes it
    with open(os.devnull, "w") as null:
        cp = oci.run("create", "--bundle", b, "--pid-file", "pid", "pf", cwd=tmp,
                     stdout=null, stderr=null, capture_output=False)
    assert cp.returncode == 0
    text = (tmp / "pid").read_text()
    assert text.isdigit(), repr(text)  # no newline: Go's strconv.Atoi reads it
    assert int(text) == oci.state("pf")["pid"]
    assert [p.name for p in tmp.iterdir() if p.name.startswith("pid")] == ["pid"]


# ---- hooks ---------------------------------------------------------------------------------


def test_hooks_run_in_order_with_the_state_on_stdin(oci, tmp):
    sh = shutil.which("sh")
    log = tmp / "order"

    def hook(name, fail=False):
        cmd = f"cat > {tmp}/{name}.json; echo {name} >> {log}" + ("; exit 1" if fail else "")
        return {"path": sh, "args": ["sh", "-c", cmd], "timeout": 5}

    def edit(c):
        c["annotations"] = {"org.example.hooks": "stdin"}
        # a failing poststart or poststop hook is a warning: the ones after it
        # still run, and so does the lifecycle (runtime.md)
        c["hooks"] = {"prestart": [hook("prestart")],
                      "poststart": [hook("poststart1", fail=True), hook("poststart2")],
                      "poststop": [hook("poststop1", fail=True), hook("poststop2")]}
    # a command done at once: poststart still sees it running, with its pid
    b = oci.bundle(args=("sh", "-c", f"echo main >> /order"), edit=edit)
    cp = oci.create("hk", b)
    pid = oci.state("hk")["pid"]
    cp = oci.run("start", "hk")
    assert "poststart1" in cp.stderr or "hooks.poststart" in cp.stderr, cp.stderr
    oci.wait_status("hk", "stopped")
    cp = oci.run("delete", "hk")
    assert "hooks.poststop" in cp.stderr and "warning" in cp.stderr, cp.stderr
    assert log.read_text().split() == ["prestart", "poststart1", "poststart2", "poststop1",
                                       "poststop2"]
    assert (b / "rootfs" / "order").read_text() == "main\n"
    want = {"prestart": ("creating", pid), "poststart1": ("running", pid),
            "poststart2": ("running", pid), "poststop1": ("stopped", 0),
            "poststop2": ("stopped", 0)}
    for name, (status, p) in want.items():
        st = json.loads((tmp / f"{name}.json").read_text())
        assert st["id"] == "hk" and st["bundle"] == str(b), st
        assert st["status"] == status and st["pid"] == p, (name, st)
        assert st["annotations"] == {"org.example.hooks": "stdin"}


# ---- config.json: what the container's process sees --------------------------------------

PROBE = r"""
echo "cwd=$(pwd)"
echo "env=$OCI_A,$OCI_B"
echo "ids=$(id -u):$(id -g):$(id -G)"
echo "args=$(tr '\0' ' ' < /proc/$$/cmdline)"
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/$$/status | tr -d '\t' | tr ':' '='
echo "hostname=$(hostname)"
echo "nofile=$(ulimit -Sn):$(ulimit -Hn)"
echo "oom=$(cat /proc/self/oom_score_adj)"
echo "umask=$(umask)"
echo "masked_file=$(head -c 16 /proc/timer_list | wc -c)"
echo "masked_dir=$(ls -A /sys/firmware | wc -l)"
touch /proc/sys/oci-probe 2>/dev/null && echo "ro_proc_sys=writable" || echo "ro_proc_sys=ro"
touch /oci-probe && echo "root=writable" || echo "root=ro"
echo "sysctl=$(cat /proc/sys/net/ipv4/ip_default_ttl)"
for m in uid_map gid_map; do echo "$m="$(cat /proc/self/$m); done
for d in null zero full random urandom tty; do
  [ -c /dev/$d ] && echo "dev_$d=c" || echo "dev_$d=missing"
done
[ -c /dev/ptmx ] && echo "dev_ptmx=c" || echo "dev_ptmx=missing"
echo "ptmx_link=$(readlink /dev/ptmx)"
for l in fd stdin stdout stderr; do echo "link_$l=$(readlink /dev/$l)"; done
echo "mydev=$(stat -c '%F %t:%T %a %u:%g' /dev/kmsg)"
awk '{for (i = 1; i <= NF; i++) if ($i == "-") print "mount=" $5 " " $(i+1) " " $(i+2)}' \
  /proc/self/mountinfo
"""


def _probe(oci, tmp, edit=None, args=None, prepare=None):
    def full(c):
        p = c["process"]
        p["cwd"] = "/tmp/probe-cwd"
        p["env"] += ["OCI_A=1", "OCI_B=x=y"]
        p["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 200, "hard": 300}]
        p["oomScoreAdj"] = 600
        p["user"]["umask"] = 0o027
        p["noNewPrivileges"] = False
        c["hostname"] = "conformance"
        c["linux"]["sysctl"] = {"net.ipv4.ip_default_ttl": "33"}
        # one the host has too: in a user namespace (rootless) it is the host's
        # node bound, as runc does
        c["linux"]["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1,
                                  "minor": 11, "fileMode": 0o640, "uid": 0, "gid": 0}]
        c["linux"]["maskedPaths"] = ["/proc/timer_list", "/sys/firmware"]
        c["linux"]["readonlyPaths"] = ["/proc/sys"]
        if edit:
            edit(c)
    b = oci.bundle(args=args or ("sh", "/probe.sh", "an arg", ""), edit=full)
    (b / "rootfs" / "probe.sh").write_text(PROBE)
    if prepare:
        prepare(b)
    out = tmp / "probe.out"
    cp = oci.run_to_files("run", "--bundle", b, "probe", out=out, check=False)
    assert cp.returncode == 0, cp.stderr
    kv = {}
    mounts = []
    for line in out.read_text().splitlines():
        k, _, v = line.partition("=")
        if k == "mount":
            mounts.append(v)
        else:
            kv[k] = v
    return kv, mounts, json.loads((b / "config.json").read_text())


def test_process_cwd_env_args_and_user(oci, tmp):
    def edit(c):
        if not ROOTLESS:
            c["process"]["user"].update(uid=1000, gid=100, additionalGids=[10, 1000])
    kv, _, _ = _probe(oci, tmp, edit)
    assert kv["cwd"] == "/tmp/probe-cwd"  # made where it was missing
    assert kv["env"] == "1,x=y"
    assert kv["args"] == "sh /probe.sh an arg  "  # each arg as given, the empty one too
    uid, gid, groups = kv["ids"].split(":")
    if ROOTLESS:
        assert (uid, gid, groups) == ("0", "0", "0")
    else:
        assert (uid, gid) == ("1000", "100") and set(groups.split()) == {"10", "100", "1000"}


def test_process_capabilities_are_the_five_sets_given(oci, tmp):
    names = {"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_NET_BIND_SERVICE": 10, "CAP_SYS_CHROOT": 18,
             "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29}

    def mask(caps):
        return f"{sum(1 << names[n] for n in caps):016x}"
    sets = {"bounding": list(names), "permitted": list(names)[:5],
            "effective": ["CAP_CHOWN", "CAP_KILL"], "inheritable": ["CAP_KILL", "CAP_MKNOD"],
            "ambient": ["CAP_KILL"]}
    # with no_new_privs, as the exec of a process of uid 0 would otherwise give
    # it every bounding capability (the kernel's rule, runc's process alike)
    kv, _, _ = _probe(oci, tmp, lambda c: c["process"].update(capabilities=sets,
                                                              noNewPrivileges=True))
    assert kv["CapBnd"] == mask(sets["bounding"])
    assert kv["CapPrm"] == mask(sets["permitted"])
    assert kv["CapInh"] == mask(sets["inheritable"])
    assert kv["CapAmb"] == mask(sets["ambient"])
    # and uid 0's exec makes its effective set its permitted one
    assert kv["CapEff"] == mask(sets["permitted"])


@pytest.mark.parametrize("nnp", [False, True])
def test_process_no_new_privileges_as_given(oci, tmp, nnp):
    kv, _, _ = _probe(oci, tmp, lambda c: c["process"].update(noNewPrivileges=nnp))
    assert kv["NoNewPrivs"] == ("1" if nnp else "0")


def test_process_rlimits_oom_score_adj_umask_and_hostname(oci, tmp):
    kv, _, _ = _probe(oci, tmp)
    assert kv["nofile"] == "200:300"
    assert kv["oom"] == "600"
    assert kv["umask"] == "0027"
    assert kv["hostname"] == "conformance"
    assert kv["sysctl"] == "33"


def test_root_writable_masked_and_readonly_paths(oci, tmp):
    kv, _, _ = _probe(oci, tmp)
    assert kv["root"] == "writable"  # root.readonly false: writable
    assert kv["masked_file"] == "0" and kv["masked_dir"] == "0"
    assert kv["ro_proc_sys"] == "ro"


def test_default_devices_symlinks_and_linux_devices(oci, tmp):
    kv, _, _ = _probe(oci, tmp)
    for d in ("null", "zero", "full", "random", "urandom", "tty", "ptmx"):
        assert kv[f"dev_{d}"] == "c", d
    assert kv["ptmx_link"] == "pts/ptmx"
    assert [kv[f"link_{l}"] for l in ("fd", "stdin", "stdout", "stderr")] == \
        ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2"]
    # a device of linux.devices: its type and numbers, and (made, not bound from
    # the host, as root) its mode and owner
    kind, nums, mode, owner = kv["mydev"].split(" ")[-4:]
    assert kv["mydev"].startswith("character special file") and nums == "1:b", kv["mydev"]
    if not ROOTLESS:
        assert (mode, owner) == ("640", "0:0")


def test_terminal_is_also_dev_console(oci, tmp):
    # config-linux.md's default devices: /dev/console is the process's pty
    sock_path = tmp / "console.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock_path))
    srv.listen(1)
    script = "echo console=$(stat -c %t:%T /dev/console) pty=$(stat -L -c %t:%T /proc/self/fd/0)"
    b = oci.bundle(args=("sh", "-c", script), edit=lambda c: c["process"].update(terminal=True))
    oci.made.append("tty")
    oci.run("create", "--bundle", b, "--console-socket", sock_path, "tty",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            capture_output=False)
    conn, _ = srv.accept()
    fds = array.array("i")
    _, anc, _, _ = conn.recvmsg(16, socket.CMSG_LEN(fds.itemsize))
    fds.frombytes(anc[0][2][:fds.itemsize])
    master = fds[0]
    oci.run("start", "tty")
    data = read_until(master, lambda d: b"pty=" in d and d.endswith(b"\n"))
    conn.close()
    srv.close()
    words = dict(w.split("=") for w in data.decode().split())
    assert words["console"] == words["pty"] and words["pty"].startswith("88:"), data


def test_mounts_with_the_type_and_source_given(oci, tmp):
    _, mounts, cfg = _probe(oci, tmp)
    seen = {}
    for m in mounts:
        dest, fstype, source = m.split(" ", 2)
        seen.setdefault(dest, []).append((fstype, source))
    for m in cfg["mounts"]:
        if m["type"] in ("bind", "cgroup") or {"bind", "rbind"} & set(m.get("options", [])):
            continue  # binds show their origin; cgroup is cgroup2 (or none) here
        assert (m["type"], m["source"]) in seen.get(m["destination"], []), (m, seen)
    for dest, fstype in (("/proc", "proc"), ("/dev/pts", "devpts"), ("/dev/shm", "tmpfs"),
                         ("/dev/mqueue", "mqueue")):
        assert fstype in [t for t, _ in seen.get(dest, [])], (dest, seen)


def test_uid_and_gid_mappings(oci, tmp):
    if ROOTLESS:
        kv, _, cfg = _probe(oci, tmp)  # the rootless bundle maps the caller to 0
    else:
        # root's: the container's ids 200000 up on the host, host root unmapped
        # (its process becomes the namespace's root before it makes a file)
        def edit(c):
            c["linux"]["namespaces"].append({"type": "user"})
            for k in ("uidMappings", "gidMappings"):
                c["linux"][k] = [{"containerID": 0, "hostID": 200000, "size": 1000},
                                 {"containerID": 1000, "hostID": 201000, "size": 64536}]

        def own(b):  # the rootfs owned by the ids it maps to, as an engine has it
            for d, dirs, files in os.walk(b / "rootfs"):
                for n in [d] + [os.path.join(d, f) for f in dirs + files]:
                    st = os.lstat(n)
                    os.lchown(n, 200000 + st.st_uid, 200000 + st.st_gid)
        # and its path open to them, as it would be to the engine's own root
        opened = []
        for d in (tmp, *tmp.parents):
            mode = os.stat(d).st_mode
            if not mode & stat.S_IXOTH:
                os.chmod(d, mode | stat.S_IXOTH)
                opened.append((d, mode))
        try:
            kv, _, cfg = _probe(oci, tmp, edit, prepare=own)
        finally:
            for d, mode in opened:
                os.chmod(d, mode)
        assert kv["root"] == "writable" and kv["dev_null"] == "c"
    for k, f in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
        want = " ".join(f"{m['containerID']} {m['hostID']} {m['size']}" for m in cfg["linux"][k])
        assert " ".join(kv[f].split()) == want, (k, kv[f])


def test_namespaces_listed_are_new_and_the_others_shared(oci, tmp):
    def edit(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"]
                                    if n["type"] not in ("ipc", "uts")]
        c.pop("hostname", None)
        c["linux"].pop("sysctl", None)
        # the host's mqueue is not the container's to mount (rootless: not allowed)
        c["mounts"] = [m for m in c["mounts"] if m["type"] != "mqueue"]
    script = "for n in pid net ipc uts mnt; do echo $n=$(readlink /proc/self/ns/$n); done"
    kv, _, _ = _probe(oci, tmp, edit, args=("sh", "-c", script))
    for n in ("pid", "net", "mnt"):
        assert kv[n] != os.readlink(f"/proc/self/ns/{n}"), n
    for n in ("ipc", "uts"):
        assert kv[n] == os.readlink(f"/proc/self/ns/{n}"), n


def test_unknown_property_and_annotation_accepted_and_a_bad_version_refused(oci):
    b = oci.bundle(edit=lambda c: c.update(unknownThing={"x": 1},
                                           annotations={"org.unknown.key": ""}))
    oci.run_to_files("run", "--bundle", b, "u1")
    b2 = oci.bundle("bad", edit=lambda c: c.update(ociVersion="invalid"))
    _refused(oci.create("u2", b2, check=False), "ociVersion")
    assert not (oci.root / "u2").exists()


def _set(path, value):
    def edit(c):
        obj = c
        keys = path.split(".")
        for k in keys[:-1]:
            obj = obj[k]
        if callable(value):
            value(obj, keys[-1])
        else:
            obj[keys[-1]] = value
    return edit


@pytest.mark.parametrize("path,value,needle", [
    ("process.rlimits", [{"type": "RLIMIT_NOSUCH", "soft": 1, "hard": 1}], "RLIMIT_NOSUCH"),
    ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 200, "hard": 100}], "soft limit"),
    ("process.args", [], "process.args"),
    ("process.cwd", "relative", "process.cwd"),
    ("process.oomScoreAdj", 5000, "process.oomScoreAdj"),
    ("linux.namespaces", lambda o, k: o[k].append({"type": "ipc"}), "listed twice"),
    ("linux.namespaces", lambda o, k: o[k].append({"type": "nosuch"}), "nosuch"),
    ("hooks", {"prestart": [{"path": "relative/hook"}]}, "hooks.prestart[0].path"),
])
def test_invalid_values_are_errors_and_create_nothing(oci, path, value, needle):
    # config.md: a value that cannot be applied is an error, not ignored
    b = oci.bundle(edit=_set(path, value))
    _refused(oci.create("bad", b, check=False), needle)
    assert not (oci.root / "bad").exists()


# ---- where the spec is silent: as runc ---------------------------------------------------


class Runc:
    def __init__(self, tmp):
        self.root = tmp / "runc-state"
        self.made = []

    def run(self, *args, **kw):
        kw.setdefault("capture_output", True)
        return subprocess.run(["runc", "--root", str(self.root), *[str(a) for a in args]],
                              text=True, timeout=30, **kw)

    def create(self, cid, bundle):
        self.made.append(cid)
        with open(os.devnull, "w") as null:
            return self.run("create", "--bundle", bundle, cid, stdin=subprocess.DEVNULL,
                            stdout=null, stderr=null, capture_output=False)

    def state(self, cid):
        return json.loads(self.run("state", cid).stdout)

    def cleanup(self):
        for cid in self.made:
            self.run("delete", "--force", cid)


@pytest.fixture
def runc(tmp):
    r = Runc(tmp)
    yield r
    r.cleanup()


def _both(oci, runc, name, args):
    """The same bundle for both: hutch-oci's, copied for runc."""
    b = oci.bundle(name, args=args)
    rb = b.parent / f"{name}-runc"
    shutil.copytree(b, rb, symlinks=True)
    return b, rb


class Hutch:
    """oci with runc's calling convention here: a failure is an exit code."""
    def __init__(self, oci):
        self.oci = oci

    def run(self, *args, **kw):
        return self.oci.run(*args, check=False, **kw)

    def create(self, cid, bundle):
        return self.oci.create(cid, bundle, check=False)

    def state(self, cid):
        return self.oci.state(cid)


def test_exit_codes_of_refused_operations_match_runc(oci, runc):
    b, rb = _both(oci, runc, "ec", ("sleep", "60"))
    codes = {}
    for name, rt, bundle in (("hutch", Hutch(oci), b), ("runc", runc, rb)):
        got = []
        got.append(rt.run("state", "nope").returncode)
        rt.create("c", bundle)
        got.append(rt.create("c", bundle).returncode)
        rt.run("start", "c")
        got.append(rt.run("start", "c").returncode)
        got.append(rt.run("delete", "c").returncode)
        rt.run("kill", "c", "KILL")
        wait_for(lambda: rt.state("c")["status"] == "stopped", what=f"{name} stopped")
        got.append(rt.run("kill", "c", "KILL").returncode)
        got.append(rt.run("start", "c").returncode)
        got.append(rt.run("delete", "c").returncode)
        codes[name] = got
    assert codes["hutch"] == codes["runc"] == [1, 1, 1, 1, 1, 1, 0], codes


def test_kill_of_a_created_container_and_its_stopped_state_match_runc(oci, runc):
    b, rb = _both(oci, runc, "kc", ("sleep", "60"))
    states = {}
    for name, rt, bundle in (("hutch", Hutch(oci), b), ("runc", runc, rb)):
        rt.create("k", bundle)
        assert rt.run("kill", "k", "0").returncode == 0
        assert rt.run("kill", "k", "KILL").returncode == 0
        wait_for(lambda: rt.state("k")["status"] == "stopped", what=f"{name} stopped")
        states[name] = rt.state("k")
        assert rt.run("start", "k").returncode != 0
    h, r = states["hutch"], states["runc"]
    for k in ("id", "status", "pid", "ociVersion"):
        assert (k in h) and (k in r), k
    assert (h["status"], h["pid"]) == (r["status"], r["pid"]) == ("stopped", 0)
    assert h["bundle"] == str(b) and r["bundle"] == str(rb)
    assert h["rootfs"] == str(b / "rootfs") and r["rootfs"] == str(rb / "rootfs")
