"""hutch-oci: hooks at the runtime spec's times (prestart and createRuntime before
the container's pivot_root), id-mapped mounts, tmpcopyup and recursive mount
attributes, against bundles made here (ociutil) and podman. Root and rootless."""
import json
import os
import shutil
import subprocess
import tempfile

from conftest import tar_dir, wait_for
from ociutil import ROOTLESS, oci  # noqa: F401  (the fixture)
from test_oci import _podman, _podman_cgroup_parent_made, _podman_reset


def _script(path, body, shebang="#!/bin/sh"):
    path.write_text(f"{shebang}\n{body}\n")
    path.chmod(0o755)
    return str(path)


# ---- hooks --------------------------------------------------------------------------

def test_hooks_get_the_state_on_stdin(oci, tmp):
    hook = _script(tmp / "hook.sh", 'cat > "$OUT/$1.json"\necho "$HOOKENV" > "$OUT/$1.env"')
    env = [f"OUT={tmp}", "HOOKENV=from-config"]
    hooks = {k: [{"path": hook, "args": ["hook.sh", k], "env": env, "timeout": 10}]
             for k in ("prestart", "createRuntime", "poststart", "poststop")}
    b = oci.bundle(args=("sleep", "60"), edit=lambda c: c.update(hooks=hooks))
    oci.create("h1", b)
    pid = oci.state("h1")["pid"]
    for k in ("prestart", "createRuntime"):
        st = json.loads((tmp / f"{k}.json").read_text())
        # as runc gives it: the container is still being made
        assert st["id"] == "h1" and st["status"] == "creating" and st["pid"] == pid
        assert st["bundle"] == str(b)
        assert (tmp / f"{k}.env").read_text() == "from-config\n"
    assert not (tmp / "poststart.json").exists()
    oci.run("start", "h1")
    assert json.loads((tmp / "poststart.json").read_text())["status"] == "running"
    oci.run("kill", "h1", "KILL")
    oci.wait_status("h1", "stopped")
    assert not (tmp / "poststop.json").exists()
    oci.run("delete", "h1")
    assert json.loads((tmp / "poststop.json").read_text())["status"] == "stopped"


PRESTART = """
import json, os, sys
st = json.load(sys.stdin)
pid, out, rootfs = st["pid"], os.environ["OUT"], os.environ["ROOTFS"]
# the container's mount points as they are now, seen from the runtime
with open(f"/proc/{pid}/mountinfo") as f:
    points = [line.split()[4] for line in f]
with open(f"{out}/prestart.points", "w") as f:
    f.write("\\n".join(points))
# a file on the container's own tmpfs, reachable only through its mount namespace
with open(f"/proc/{pid}/root{rootfs}/scratch/from-prestart", "w") as f:
    f.write("written by prestart")
"""


def test_prestart_runs_after_the_mounts_and_before_pivot_root(oci, tmp):
    """The spec's time: the container's namespaces and mounts exist, its root is
    not pivoted yet; the hook writes into the container's own tmpfs through
    /proc/PID/root, and the container's command finds the file."""
    hook = _script(tmp / "prestart.py", PRESTART, shebang="#!/usr/bin/python3")
    rootfs = str(tmp / "b" / "rootfs")  # oci.bundle's

    def edit(c):
        c["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                            "options": ["nosuid", "nodev", "mode=1777"]})
        c["hooks"] = {"prestart": [{"path": hook, "env": [f"OUT={tmp}", f"ROOTFS={rootfs}"],
                                    "timeout": 10}]}
    b = oci.bundle(args=("sh", "-c", "cat /scratch/from-prestart > /seen; exec sleep 60"),
                   edit=edit)
    oci.create("pre1", b)
    points = (tmp / "prestart.points").read_text().split("\n")
    # before pivot_root: the root is a mount at the bundle's path, its tmpfs below it
    assert rootfs in points and f"{rootfs}/scratch" in points, points
    pid = oci.state("pre1")["pid"]
    with open(f"/proc/{pid}/mountinfo") as f:
        after = [line.split()[4] for line in f]
    # and once create returned it is: the same tree at /
    assert rootfs not in after and "/scratch" in after, after
    assert not (b / "rootfs" / "scratch").joinpath("from-prestart").exists()
    oci.run("start", "pre1")
    wait_for(lambda: (b / "rootfs" / "seen").exists() and (b / "rootfs" / "seen").read_text(),
             what="the command reading the hook's file")
    assert (b / "rootfs" / "seen").read_text() == "written by prestart"


def test_hooks_run_in_the_spec_order(oci, tmp):
    log = tmp / "log"
    log.mkdir()
    log.chmod(0o777)
    host = _script(tmp / "rec.sh", f'echo "$1" >> {log}/order')
    hooks = {k: [{"path": host, "args": ["rec.sh", k], "timeout": 10}]
             for k in ("prestart", "createRuntime", "createContainer", "poststart",
                       "poststop")}
    # startContainer runs in the container: its path and the log's are the container's
    hooks["startContainer"] = [{"path": "/bin/sh",
                                "args": ["sh", "-c", "echo startContainer >> /log/order"]}]

    def edit(c):
        c["hooks"] = hooks
        c["mounts"].append({"destination": "/log", "type": "bind", "source": str(log),
                            "options": ["rbind", "rw"]})
    b = oci.bundle(args=("sleep", "60"), edit=edit)
    oci.create("o1", b)
    order = log / "order"
    assert order.read_text().split() == ["prestart", "createRuntime", "createContainer"]
    oci.run("start", "o1")
    assert order.read_text().split() == ["prestart", "createRuntime", "createContainer",
                                         "startContainer", "poststart"]
    oci.run("kill", "o1", "KILL")
    oci.wait_status("o1", "stopped")
    oci.run("delete", "o1")
    assert order.read_text().split()[-1] == "poststop"
def test_create_and_start_container_hooks_run_in_the_container(oci, tmp):
    """createContainer: in the container's namespaces before pivot_root (its path
    is the runtime's); startContainer: once started, before the command, its path
    the container's."""
    hook = tmp / "cc.sh"
    hook.write_text('#!/bin/sh\ncat > "$OUT/cc.json"\nreadlink /proc/self/ns/mnt > "$OUT/cc.mnt"\n')
    hook.chmod(0o755)
    b = oci.bundle(args=("sh", "-c", "cat /sc.json > /seen.json; exec sleep 60"), edit=lambda c: c.update(
        hooks={"createContainer": [{"path": str(hook), "env": [f"OUT={tmp}"], "timeout": 10}],
               "startContainer": [{"path": "/sc.sh", "args": ["sc.sh", "x"]}]},
        annotations={"k": "v"}))
    sc = b / "rootfs" / "sc.sh"
    sc.write_text('#!/bin/sh\ncat > /sc.json\necho "$1" > /sc.arg\n')
    sc.chmod(0o755)
    oci.create("hc1", b)
    st = json.loads((tmp / "cc.json").read_text())
    pid = oci.state("hc1")["pid"]
    # runc's: creating while it is made, created (startContainer) once it waits
    assert st["id"] == "hc1" and st["status"] == "creating" and st["pid"] == pid
    assert st["bundle"] == str(b) and st["annotations"] == {"k": "v"}
    # the container's mount namespace, not the runtime's
    assert (tmp / "cc.mnt").read_text().strip() == os.readlink(f"/proc/{pid}/ns/mnt")
    assert (tmp / "cc.mnt").read_text().strip() != os.readlink("/proc/self/ns/mnt")
    assert not (b / "rootfs" / "sc.json").exists()
    oci.run("start", "hc1")
    wait_for(lambda: (b / "rootfs" / "seen.json").exists() and
             (b / "rootfs" / "seen.json").read_text(), what="the command after the hook")
    st = json.loads((b / "rootfs" / "seen.json").read_text())
    assert st["id"] == "hc1" and st["pid"] == pid and st["status"] == "created"
    assert (b / "rootfs" / "sc.arg").read_text() == "x\n"
    # one that fails fails the start, and the container does not run its command
    b2 = oci.bundle("b2", args=("sh", "-c", "touch /ran; sleep 60"), edit=lambda c: c.update(
        hooks={"startContainer": [{"path": "/bin/false"}]}))
    oci.create("hc2", b2)
    cp = oci.run("start", "hc2", check=False)
    assert cp.returncode != 0 and "hooks.startContainer /bin/false failed" in cp.stderr, cp.stderr
    assert not (b2 / "rootfs" / "ran").exists()
    b3 = oci.bundle("b3", edit=lambda c: c.update(
        hooks={"createContainer": [{"path": "/bin/false"}]}))
    cp = oci.create("hc3", b3, check=False)
    assert cp.returncode != 0 and "hooks.createContainer /bin/false failed" in cp.stderr
    assert not (oci.root / "hc3").exists()


def test_failing_or_slow_prestart_hook_fails_create(oci, tmp):
    """Nothing is left: no state dir, no cgroup, no container process (the
    no_leaks fixture checks mounts and cgroups)."""
    for name, kind, body, needle in (
            ("fail", "prestart", "exit 3", "exit code 3"),
            ("slow", "prestart", "exec sleep 30", "timed out after 1 s"),
            ("rtfail", "createRuntime", "exit 4", "exit code 4")):
        hook = tmp / f"{name}.sh"
        hook.write_text(f"#!/bin/sh\ncat > {tmp}/{name}.state\n{body}\n")
        hook.chmod(0o755)
        b = oci.bundle(name, edit=lambda c: c.update(
            hooks={kind: [{"path": str(hook), "timeout": 1}]}))
        cp = oci.create(name, b, check=False)
        assert cp.returncode != 0 and needle in cp.stderr, cp.stderr
        assert f"hooks.{kind}" in cp.stderr
        assert not (oci.root / name).exists()
        # the container's process, waiting before its pivot_root, is gone too
        pid = json.loads((tmp / f"{name}.state").read_text())["pid"]
        assert not os.path.exists(f"/proc/{pid}"), pid
        cp = oci.run("delete", name, check=False)
        assert cp.returncode != 0 and "does not exist" in cp.stderr, cp.stderr




# ---- id-mapped mounts -----------------------------------------------------------------

USERNS_BASE = 100000  # rootful: the container's root is this uid of the host


def _searchable(path):
    """The container's root (a uid of the host's without rights) mounts the
    bundle's rootfs and binds from inside its user namespace, as runc's init
    does: it must be able to reach them. The test's own dirs get o+x."""
    for p in [path, *path.parents]:
        if not str(p).startswith("/tmp/hutch-it-"):
            break
        os.chmod(p, os.stat(p).st_mode | 0o001)


def _userns(c):
    """Rootful: a user namespace mapping the container's 0-65535 to 100000-165535
    (rootless bundles have one already: the caller as root)."""
    if ROOTLESS:
        return
    c["linux"]["namespaces"].append({"type": "user"})
    for k in ("uidMappings", "gidMappings"):
        c["linux"][k] = [{"containerID": 0, "hostID": USERNS_BASE, "size": 65536}]


def _bind(dest, src, options=("rbind", "rw"), uid=None, gid=None):
    m = {"destination": dest, "type": "bind", "source": str(src), "options": list(options)}
    if uid is not None:
        m["uidMappings"] = uid
    if gid is not None:
        m["gidMappings"] = gid
    return m


def _run(oci, cid, b):
    oci.made.append(cid)
    return oci.run("run", "--bundle", b, cid, check=False)


def test_id_mapped_bind_shows_the_mapped_owner(oci, tmp):
    if ROOTLESS:
        return _id_mapped_bind_refused_rootless(oci, tmp)
    _searchable(tmp)
    # a host directory of uid/gid 1000, shown to the container as its root's
    src = tmp / "src1000"
    src.mkdir()
    (src / "f").write_text("x")
    for p in (src, src / "f"):
        os.chown(p, 1000, 1000)
    # one of the host's root, id-mapped with the container's own maps ("idmap")
    src0 = tmp / "src0"
    src0.mkdir()
    (src0 / "g").write_text("y")
    plain = tmp / "plain"
    plain.mkdir()
    one = [{"containerID": 1000, "hostID": USERNS_BASE, "size": 1}]
    script = ("stat -c %u:%g /data/f /own/g /plain; touch /data/new /own/new; "
              "stat -c %u:%g /data/new /own/new")

    def edit(c):
        _userns(c)
        c["mounts"] += [_bind("/data", src, uid=one, gid=one),
                        _bind("/own", src0, options=("bind", "rw", "idmap")),
                        _bind("/plain", plain)]
    b = oci.bundle(args=("sh", "-c", script), edit=edit)
    for d in ("data", "own", "plain"):  # the rootfs is not the container root's
        (b / "rootfs" / d).mkdir()
    cp = _run(oci, "idm1", b)
    assert cp.returncode == 0, cp.stderr
    # the files of 1000 and of 0 are the container's root's; an unmapped bind's nobody's
    assert cp.stdout.split() == ["0:0", "0:0", "65534:65534", "0:0", "0:0"], cp.stdout
    # what the container's root makes lands with the id each map gives it on disk
    st = os.stat(src / "new")
    assert (st.st_uid, st.st_gid) == (1000, 1000)
    st = os.stat(src0 / "new")
    assert (st.st_uid, st.st_gid) == (0, 0)


def _id_mapped_bind_refused_rootless(oci, tmp):
    """Rootless, the kernel lets no one but the host's root id-map a host
    filesystem: refused, saying so, and nothing is left."""
    src = tmp / "src"
    src.mkdir()
    me = [{"containerID": 0, "hostID": os.getuid(), "size": 1}]
    mine = [{"containerID": 0, "hostID": os.getgid(), "size": 1}]
    b = oci.bundle(edit=lambda c: c["mounts"].append(_bind("/data", src, uid=me, gid=mine)))
    cp = oci.create("idr", b, check=False)
    assert cp.returncode != 0 and "rootless, the kernel lets only root" in cp.stderr, cp.stderr
    assert "/data" in cp.stderr
    assert not (oci.root / "idr").exists()


def test_id_mapped_mounts_are_checked(oci, tmp):
    src = tmp / "src"
    src.mkdir()
    one = [{"containerID": 0, "hostID": USERNS_BASE, "size": 1}]
    cases = [
        ({"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]},
         "must be a bind mount"),
        (_bind("/d", src, uid=one), "give uidMappings and gidMappings together"),
        (_bind("/d", src, uid=one * 9, gid=one), "hutch takes at most 8"),
    ]
    if not ROOTLESS:  # rootless bundles always have a user namespace
        cases.append((_bind("/d", src, options=("rbind", "idmap")), "needs a user namespace"))
    for i, (mount, needle) in enumerate(cases):
        b = oci.bundle(f"b{i}", edit=lambda c: c["mounts"].append(mount))
        cp = oci.create(f"chk{i}", b, check=False)
        assert cp.returncode != 0 and needle in cp.stderr, (needle, cp.stderr)
        assert not (oci.root / f"chk{i}").exists()


# ---- tmpcopyup -------------------------------------------------------------------------

def _seed(d):
    """What a tmpcopyup tmpfs must start with: a file with its mode (and, rootful,
    an owner of its own), a directory, a symlink, a fifo."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "seed").write_text("seeded\n")
    (d / "seed").chmod(0o604)
    (d / "sub").mkdir()
    (d / "sub" / "deep").write_text("deep\n")
    (d / "sub").chmod(0o750)
    os.symlink("seed", d / "link")
    os.mkfifo(d / "fifo", 0o600)
    if not ROOTLESS:
        os.chown(d / "seed", 1000, 1001)
        os.lchown(d / "link", 1002, 1003)


SHOW = ("cd {d} && cat seed sub/deep && readlink link && "
        "stat -c '%n %a %u:%g %F' seed sub sub/deep fifo && stat -c '%n %u:%g' link && "
        "touch new && echo written")


def test_tmpcopyup_starts_with_what_the_rootfs_had(oci, tmp):
    def edit(c):
        c["root"]["readonly"] = True
        c["mounts"].append({"destination": "/var/tmp", "type": "tmpfs", "source": "tmpfs",
                            "options": ["rw", "nosuid", "nodev", "mode=1777", "tmpcopyup"]})
    b = oci.bundle(args=("sh", "-c", SHOW.format(d="/var/tmp")), edit=edit)
    _seed(b / "rootfs" / "var" / "tmp")
    cp = _run(oci, "tcu", b)
    assert cp.returncode == 0, cp.stderr
    own = "0:0" if ROOTLESS else "1000:1001"
    root = "0:0"
    assert cp.stdout.split("\n") == [
        "seeded", "deep", "seed",
        f"seed 604 {own} regular file", f"sub 750 {root} directory",
        f"sub/deep 644 {root} regular file", f"fifo 600 {root} fifo",
        f"link {root if ROOTLESS else '1002:1003'}", "written", ""], cp.stdout
    # a copy: the rootfs itself is untouched
    assert not (b / "rootfs" / "var" / "tmp" / "new").exists()


def test_tmpcopyup_only_for_a_tmpfs(oci, tmp):
    b = oci.bundle(edit=lambda c: c["mounts"].append(
        {"destination": "/x", "type": "bind", "source": str(tmp), "options": ["rbind",
                                                                          "tmpcopyup"]}))
    cp = oci.create("tcb", b, check=False)
    assert cp.returncode != 0 and "tmpcopyup is for a tmpfs, not bind" in cp.stderr, cp.stderr


def test_podman_read_only_tmpfs_keeps_the_image_files(oci, state, tmp):
    """podman --read-only mounts tmpfs on /tmp, /var/tmp and /run with tmpcopyup:
    what the image has there is in them, as with crun."""
    img = tmp / "img"
    shutil.copytree(state.bb_rootfs, img, symlinks=True)
    _seed(img / "var" / "tmp")
    tarball = tar_dir(img, tmp / "img.tar")
    base = tempfile.mkdtemp(prefix="hp-", dir="/tmp")
    pod = _podman(base) + ["--runtime", oci.bin]
    made_cg = _podman_cgroup_parent_made()
    try:
        subprocess.run(_podman(base) + ["import", tarball, "localhost/seeded:1"], check=True,
                       capture_output=True, timeout=120)
        cp = subprocess.run(pod + ["run", "--rm", "--read-only", "--network", "none",
                                   "--ulimit", "nofile=1024:1024", "--ulimit",
                                   "nproc=1024:1024", "localhost/seeded:1", "sh", "-c",
                                   SHOW.format(d="/var/tmp") + "; touch /x || echo ro"],
                            capture_output=True, text=True, timeout=120)
        assert cp.returncode == 0, cp.stderr
        own, root = ("0:0", "0:0") if ROOTLESS else ("1000:1001", "0:0")
        assert cp.stdout.split("\n") == [
            "seeded", "deep", "seed",
            f"seed 604 {own} regular file", f"sub 750 {root} directory",
            f"sub/deep 644 {root} regular file", f"fifo 600 {root} fifo",
            f"link {root if ROOTLESS else '1002:1003'}", "written", "ro", ""], cp.stdout
    finally:
        subprocess.run(pod + ["rm", "-f", "--all"], capture_output=True, timeout=60)
        _podman_reset(base, made_cg)


# ---- root propagation and recursive mount attributes ------------------------------------

def _optional_fields(mountinfo, point):
    """The optional fields (shared:N, master:N) of the mount at point."""
    for line in mountinfo.splitlines():
        f = line.split()
        if f[4] == point:
            return f[6:f.index("-")]
    raise AssertionError(f"no mount at {point}:\n{mountinfo}")


def test_rootfs_propagation_shared_is_the_containers_own(oci, tmp):
    """shared: the container's root is shared once it is / (for its own mount
    namespaces and binds), a peer group of its own: nothing reaches the host."""
    seen = {}
    for prop in ("rprivate", "shared", "rshared"):
        b = oci.bundle(f"b-{prop}", args=("cat", "/proc/self/mountinfo"),
                       edit=lambda c: c["linux"].update(rootfsPropagation=prop))
        cp = _run(oci, f"rp-{prop}", b)
        assert cp.returncode == 0, cp.stderr
        seen[prop] = (_optional_fields(cp.stdout, "/"), _optional_fields(cp.stdout, "/proc"))
    assert seen["rprivate"] == ([], [])
    assert [f[:7] for f in seen["shared"][0]] == ["shared:"] and seen["shared"][1] == []
    assert [f[:7] for f in seen["rshared"][0]] == ["shared:"]
    assert [f[:7] for f in seen["rshared"][1]] == ["shared:"]
    # a peer group of the container's own: no mount of the host's is in it
    with open("/proc/self/mountinfo") as f:
        host = f.read()
    assert seen["rshared"][0][0] not in host.split()
    assert str(tmp) not in host
    b = oci.bundle("bad", edit=lambda c: c["linux"].update(rootfsPropagation="bogus"))
    cp = oci.create("rp-bad", b, check=False)
    assert cp.returncode != 0 and "linux.rootfsPropagation 'bogus'" in cp.stderr, cp.stderr


def test_recursive_mount_attributes(oci, tmp):
    """runc's rro, rnosuid, rnodev, rnoexec, ratime forms on an rbind with a
    mount below it: the whole tree gets them."""
    src = tmp / "src"
    (src / "below").mkdir(parents=True)
    script = "grep -E ' /(data|data/below) ' /proc/self/mountinfo; touch /data/x || echo ro"

    def edit(c):
        c["mounts"] += [
            _bind("/data", src, options=("rbind", "rro", "rnosuid", "rnodev", "rnoexec")),
            # (an atime option on a bind is the host mount's, locked rootless)
            {"destination": "/data/below", "type": "tmpfs", "source": "tmpfs",
             "options": ["rro", "rnosuid", "rnodev", "rnoexec", "rnoatime"]}]
    b = oci.bundle(args=("sh", "-c", script), edit=edit)
    cp = _run(oci, "rattr", b)
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.strip().split("\n")
    assert lines[-1] == "ro" and len(lines) == 3, cp.stdout
    for line in lines[:2]:
        opts = line.split()[5].split(",")
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(opts), line
    assert "noatime" in lines[1].split()[5].split(","), lines[1]


def test_features_mount_options_are_all_taken(oci, tmp):
    """Every option `features` lists is one config.json may give: all of them on
    one tmpfs (the bind-only ones on a bind), and the container runs."""
    feats = json.loads(oci.run("features").stdout)
    assert {"idmap", "ridmap", "tmpcopyup", "rro", "rnosuid", "rnodev", "rnoexec",
            "ratime"} <= set(feats["mountOptions"])
    assert feats["linux"]["mountExtensions"] == {"idmap": {"enabled": True}}
    assert feats["hooks"] == ["prestart", "createRuntime", "createContainer",
                              "startContainer", "poststart", "poststop"]
    bind_only = {"bind", "rbind", "idmap", "ridmap"}
    fs_opts = [o for o in feats["mountOptions"] if o not in bind_only]
    src = tmp / "src"
    src.mkdir()

    def edit(c):
        c["mounts"] += [{"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                         "options": fs_opts + ["rw", "private"]},
                        _bind("/b", src, options=("rbind", "rw", "nosuid", "ro"))]
    b = oci.bundle(args=("sh", "-c", "touch /t/x && echo ok"), edit=edit)
    cp = _run(oci, "feat", b)
    assert cp.returncode == 0 and cp.stdout == "ok\n", cp.stderr
