"""Rootless hutch (run by an unprivileged user, as tests/rootless/run.sh does) and,
when the suite runs as root, the rootful counterpart of each property: the user
namespace and its id maps, image and file ownership, /dev, cgroups, capabilities
that hold only inside the user namespace, and where state lives."""
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from conftest import hutch_cgroup_parent

ROOTLESS = os.geteuid() != 0


def subid_range(path):
    """The first subordinate range of the current user in /etc/subuid or subgid."""
    me = pwd.getpwuid(os.getuid()).pw_name
    for line in Path(path).read_text().splitlines():
        f = line.strip().split(":")
        if len(f) == 3 and f[0] in (me, str(os.getuid())):
            return int(f[1]), int(f[2])
    return None


def id_map(text):
    return [tuple(int(x) for x in l.split()) for l in text.splitlines()]


# ------------------------------------------------------------------ user namespace


def test_id_maps(hutch):
    out = hutch("run", "--rm", "bb", "sh", "-c",
                "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map").stdout
    uid_map, gid_map = (id_map(t) for t in out.split("--\n"))
    if not ROOTLESS:
        # no user namespace: the identity map of the initial one
        assert uid_map == gid_map == [(0, 0, 4294967295)]
        return
    sub_u, sub_g = subid_range("/etc/subuid"), subid_range("/etc/subgid")
    assert sub_u and sub_g, "tests/rootless/run.sh gives the test user subordinate ids"
    assert uid_map == [(0, os.getuid(), 1), (1, sub_u[0], sub_u[1])]
    assert gid_map == [(0, os.getgid(), 1), (1, sub_g[0], sub_g[1])]


def test_user_namespace(hutch, ctr):
    cid = ctr.run("bb", "sleep", "100")
    info = ctr.inspect(cid)
    inside = hutch("exec", cid, "readlink", "/proc/self/ns/user").stdout.strip()
    assert ("user" in info["namespaces"]) is ROOTLESS
    assert (inside != os.readlink("/proc/self/ns/user")) is ROOTLESS
    # whoever we are outside, the container's process is root inside it
    assert hutch("exec", cid, "id", "-u").stdout == "0\n"
    host_uid = os.stat(f"/proc/{info['pid']}").st_uid
    assert host_uid == os.getuid()  # root as root; the user itself when rootless


def test_root_inside_is_not_root_outside(hutch, tmp):
    """A root-owned host dir bound read-write: root in a rootless container has
    CAP_DAC_OVERRIDE only over what its user namespace maps, so it cannot write."""
    if ROOTLESS:
        cp = hutch("run", "--rm", "-v", "/etc:/hostetc", "bb", "sh", "-c",
                   "touch /hostetc/hutch-rootless-probe; id -u", check=False)
        assert "Permission denied" in cp.stderr
        assert cp.stdout == "0\n"
        assert not os.path.exists("/etc/hutch-rootless-probe")
        # files of unmapped owners show as nobody
        out = hutch("run", "--rm", "-v", "/etc:/hostetc:ro", "bb", "stat", "-c", "%u",
                    "/hostetc/passwd").stdout
        assert out == "65534\n"
    else:
        d = tmp / "root-owned"
        d.mkdir(mode=0o755)
        out = hutch("run", "--rm", "-v", f"{d}:/data", "bb", "sh", "-c",
                    "touch /data/made && stat -c %u /data/made").stdout
        assert out == "0\n"
        assert os.stat(d / "made").st_uid == 0


# ------------------------------------------------------------------ ownership


def test_image_ownership_kept(hutch, state):
    out = hutch("run", "--rm", "bb", "stat", "-c", "%u:%g %n", "/etc", "/etc/passwd",
                "/home/app", "/bin/busybox").stdout
    assert out.splitlines() == ["0:0 /etc", "0:0 /etc/passwd", "1000:1000 /home/app",
                                "0:0 /bin/busybox"]
    # and on disk, in the layer: as the mapping puts them
    etc, app = os.stat(state.bb_layer / "etc"), os.stat(state.bb_layer / "home" / "app")
    if ROOTLESS:
        sub = subid_range("/etc/subuid")
        assert etc.st_uid == os.getuid()
        assert app.st_uid == sub[0] + 1000 - 1
    else:
        assert (etc.st_uid, app.st_uid) == (0, 1000)


def test_files_made_inside_owned_through_the_map(hutch, tmp):
    d = tmp / "shared"
    d.mkdir()
    d.chmod(0o777)
    hutch("run", "--rm", "-v", f"{d}:/data", "bb", "touch", "/data/by-root")
    hutch("run", "--rm", "-u", "1000", "-v", f"{d}:/data", "bb", "touch", "/data/by-1000")
    root_uid = os.stat(d / "by-root").st_uid
    app_uid = os.stat(d / "by-1000").st_uid
    if ROOTLESS:
        assert root_uid == os.getuid()
        assert app_uid == subid_range("/etc/subuid")[0] + 999
    else:
        assert (root_uid, app_uid) == (0, 1000)


def test_overlay_options(hutch):
    mi = hutch("run", "--rm", "bb", "cat", "/proc/self/mountinfo").stdout
    root = [l for l in mi.splitlines() if l.split()[4] == "/"][0]
    assert " - overlay " in root
    # overlayfs in a user namespace keeps its metadata in user.* xattrs
    assert ("userxattr" in root) is ROOTLESS


# ------------------------------------------------------------------ /dev


def test_dev_nodes(hutch):
    mi = hutch("run", "--rm", "bb", "cat", "/proc/self/mountinfo").stdout
    mounted = {l.split()[4]: l.split(" - ")[1].split()[0] for l in mi.splitlines()}
    nodes = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
             "/dev/tty"]
    if ROOTLESS:
        # mknod is not allowed in a user namespace: the host's nodes are bound
        for n in nodes:
            assert mounted.get(n) == "devtmpfs", (n, mi)
    else:
        for n in nodes:
            assert n not in mounted, n  # made with mknod on the container's /dev tmpfs
    out = hutch("run", "--rm", "bb", "sh", "-c",
                "echo x > /dev/null && head -c 3 /dev/zero | od -An -tx1").stdout
    assert out.split() == ["00", "00", "00"]


# ------------------------------------------------------------------ cgroups


def test_cgroup_limits(hutch, ctr):
    cp = hutch("run", "--rm", "--memory", "64m", "--pids-limit", "50", "bb", "echo", "ran")
    assert cp.stdout == "ran\n"
    cid = ctr.run("bb", "sleep", "100")
    info = ctr.inspect(cid)
    if ROOTLESS:
        assert "no delegated cgroup v2 subtree" in cp.stderr, cp.stderr
        assert "--memory" in cp.stderr and "--pids-limit" in cp.stderr
        assert len(cp.stderr.splitlines()) == 1
        assert not info.get("cgroup")
    else:
        assert "no delegated cgroup v2 subtree" not in cp.stderr
        assert info["cgroup"] == str(hutch_cgroup_parent() / cid)
        procs = Path(info["cgroup"], "cgroup.procs").read_text().split()
        assert str(info["pid"]) in procs


# ------------------------------------------------------------------ capabilities


def test_default_caps_inside_the_user_namespace(hutch):
    out = hutch("run", "--rm", "bb", "grep", "^CapEff", "/proc/self/status").stdout
    assert out.split()[1] == "00000000a80425fb"


def test_cap_add_all(hutch):
    out = hutch("run", "--rm", "--cap-add", "ALL", "bb", "grep", "^Cap[EB]",
                "/proc/self/status").stdout
    got = {l.split(":")[0]: int(l.split()[1], 16) for l in out.splitlines()}
    mine = int(re.search(r"^CapBnd:\s+(\S+)", Path("/proc/self/status").read_text(),
                         re.M).group(1), 16)
    if ROOTLESS:
        # a new user namespace holds every capability (over its own things only)
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
        assert got["CapEff"] == got["CapBnd"] == (1 << (last + 1)) - 1
    else:
        assert got["CapEff"] == got["CapBnd"] == mine


def _free_privileged_port():
    for port in range(1000, 1024):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no free port in 1000-1023 on 127.0.0.1")


def test_host_network_privileges(hutch, probes):
    """--network host shares the host's network namespace, which belongs to the
    initial user namespace: rootless, the container's CAP_NET_BIND_SERVICE and
    CAP_NET_ADMIN do not count there."""
    if ROOTLESS:
        start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
        assert start > 1000, "this host lets anybody bind low ports"
        out = hutch("run", "--rm", "--network", "host", "-v", f"{probes}:/probe:ro", "bb",
                    "/probe/escprobe", "bind", "1000").stdout
        assert out == "bind=EACCES\n"
        cp = hutch("run", "--rm", "--network", "host", "--cap-add", "NET_ADMIN", "bb", "sh",
                   "-c", "ip link add hutchdummy0 type dummy", check=False)
        assert cp.returncode != 0 and "Operation not permitted" in cp.stderr
        assert "hutchdummy0" not in Path("/proc/net/dev").read_text()
        # in its own network namespace (owned by its user namespace) it can
        out = hutch("run", "--rm", "-v", f"{probes}:/probe:ro", "bb", "/probe/escprobe",
                    "bind", "80").stdout
        assert out == "bind=ok\n"
    else:
        port = _free_privileged_port()
        out = hutch("run", "--rm", "--network", "host", "-v", f"{probes}:/probe:ro", "bb",
                    "/probe/escprobe", "bind", str(port)).stdout
        assert out == "bind=ok\n"


# ------------------------------------------------------------------ where state lives


def test_state_paths(state, tmp):
    """Rootless: images under $XDG_DATA_HOME/hutch, runtime state under
    $XDG_RUNTIME_DIR/hutch. Rootful, --root holds everything (and the XDG dirs of
    whoever runs it are never used)."""
    data, run = tmp / "xdg-data", tmp / "xdg-run"
    data.mkdir()
    run.mkdir(mode=0o700)
    env = {**os.environ, "XDG_DATA_HOME": str(data), "XDG_RUNTIME_DIR": str(run)}

    def h(*args, check=True):
        root = [] if ROOTLESS else ["--root", str(tmp / "root")]
        cp = subprocess.run([state.bin, *root, *args], capture_output=True, text=True,
                            env=env, timeout=30)
        assert cp.returncode == 0 or not check, cp
        return cp

    h("image", "import", state.bb_tar, "bb")
    try:
        cid = h("run", "-d", "bb", "sleep", "100").stdout.strip()
        try:
            where = data / "hutch" if ROOTLESS else tmp / "root"
            assert (where / "containers" / cid / "state.json").exists()
            assert json.loads(h("ps", "--format", "json").stdout.splitlines()[0])["id"] == cid
            if ROOTLESS:
                assert (run / "hutch").is_dir()
                assert not (tmp / "root").exists()
            else:
                assert os.listdir(data) == [] and os.listdir(run) == []
        finally:
            h("rm", "-f", cid)
    finally:
        h("image", "rm", "bb")


# ------------------------------------------------------------------ single-id mapping


NOTE = "no subordinate ids for uid"


def test_single_id_mapping_for_a_user_without_subordinate_ids(state):
    """A user with no /etc/subuid and /etc/subgid ranges gets only itself, as root,
    in the container: the note says so once per user, and a --user other than root
    says the id is not mapped and what to do. As root this runs hutch as `nobody`
    (which has no ranges); the rootless suite's user has ranges, and sees neither."""
    if ROOTLESS:
        me = pwd.getpwuid(os.getuid()).pw_name
        assert subid_range("/etc/subuid"), f"{me} has subordinate ids (tests/rootless/run.sh)"
        cmds = [[state.bin, "--root", str(state.root), *a] for a in
                (["run", "--rm", "bb", "true"], ["run", "--rm", "-u", "1000", "bb", "id", "-u"])]
        first, second = (subprocess.run(c, capture_output=True, text=True, timeout=30)
                         for c in cmds)
        assert first.returncode == 0 and NOTE not in first.stderr, first
        assert second.stdout == "1000\n" and NOTE not in second.stderr, second
        return
    nobody = pwd.getpwnam("nobody")
    for f in ("/etc/subuid", "/etc/subgid"):
        text = Path(f).read_text() if os.path.exists(f) else ""
        assert not any(l.split(":")[0] in ("nobody", str(nobody.pw_uid))
                       for l in text.splitlines()), f"nobody has ranges in {f}"
    home = Path(tempfile.mkdtemp(prefix="hutch-single-id-"))
    try:
        home.chmod(0o755)
        shutil.copy(state.bb_tar, home / "bb.tar")
        shutil.copy(state.bin, home / "hutch")
        (home / "run").mkdir(mode=0o700)
        for p in [home, *home.iterdir()]:
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
        env = {"PATH": os.environ["PATH"], "HOME": str(home),
               "XDG_RUNTIME_DIR": str(home / "run"), "XDG_DATA_HOME": str(home / "data")}

        def h(*args):
            return subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}",
                                   f"--regid={nobody.pw_gid}", "--clear-groups",
                                   str(home / "hutch"), *args], capture_output=True,
                                  text=True, env=env, timeout=60, cwd=home)

        cp = h("image", "import", "bb.tar", "bb")
        assert cp.returncode == 0, cp
        cp = h("run", "--rm", "bb", "sh", "-c",
               "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; id -u")
        assert cp.returncode == 0, cp
        uid_map, rest = cp.stdout.split("--\n")
        gid_map, uid = rest.rsplit("\n", 2)[0], rest.splitlines()[-1]
        assert id_map(uid_map) == [(0, nobody.pw_uid, 1)]
        assert id_map(gid_map) == [(0, nobody.pw_gid, 1)]
        assert uid == "0"
        # the note, once per user
        assert cp.stderr.count(NOTE) == 1, cp.stderr
        assert f"{NOTE} {nobody.pw_uid} in /etc/subuid" in cp.stderr
        assert "usermod --add-subuids" in cp.stderr
        assert (home / "run" / "hutch" / "single-id-note-given").exists()
        again = h("run", "--rm", "bb", "true")
        assert again.returncode == 0 and again.stderr == "", again
        # the layer could only be unpacked as the user itself: other owners are root's
        assert h("run", "--rm", "bb", "stat", "-c", "%u", "/home/app").stdout == "0\n"
        # a user other than root: not mapped, and what to do
        for user in ("1000", "app", "nobody"):
            cp = h("run", "--rm", "-u", user, "bb", "true")
            assert cp.returncode == 125, cp
            assert f"user '{user}' (uid " in cp.stderr and "is not mapped in the " \
                "container's user namespace: only 0 is" in cp.stderr, cp.stderr
            assert "/etc/subuid and /etc/subgid" in cp.stderr and "-u 0" in cp.stderr
            assert "Invalid argument" not in cp.stderr
        # and exec -u alike, into a detached container
        cid = h("run", "-d", "bb", "sleep", "100").stdout.strip()
        try:
            cp = h("exec", "-u", "1000", cid, "true")
            assert cp.returncode == 125 and "is not mapped" in cp.stderr, cp
            assert h("exec", cid, "id", "-u").stdout == "0\n"
        finally:
            h("rm", "-f", cid)
        h("image", "rm", "bb")
        assert os.listdir(home / "data" / "hutch" / "containers") == []
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_run_root_in_tmp_must_be_a_private_dir_of_ours():
    """Without XDG_RUNTIME_DIR a rootless hutch keeps its run root (control
    sockets, pid files, caches) in /tmp/hutch-UID: one another user made first
    (0777, or not ours) is refused, never used."""
    from conftest import _hutch_bin
    if ROOTLESS:
        uid, pre = os.getuid(), []
    else:  # as root: a user of its own, nobody
        uid, pre = 65534, ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    run_root = Path(f"/tmp/hutch-{uid}")
    if run_root.exists() or run_root.is_symlink():
        # that user's real run root: leave it alone, it must be private
        st = run_root.lstat()
        assert run_root.is_dir() and st.st_uid == uid and st.st_mode & 0o077 == 0
        return
    home = Path(tempfile.mkdtemp(prefix="hutch-home-"))  # the user must reach it
    os.chmod(home, 0o777)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
    try:
        run_root.mkdir()
        os.chmod(run_root, 0o777)  # as if another user had made it for us
        cp = subprocess.run(pre + [str(_hutch_bin()), "ps"], env=env, capture_output=True,
                            text=True, timeout=30)
        assert cp.returncode == 125, (cp.stdout, cp.stderr)
        assert f"{run_root} is not a private directory of yours" in cp.stderr, cp.stderr
        assert "XDG_RUNTIME_DIR" in cp.stderr
        run_root.rmdir()
        # made by hutch itself: private, and used
        cp = subprocess.run(pre + [str(_hutch_bin()), "ps"], env=env, capture_output=True,
                            text=True, timeout=30)
        assert cp.returncode == 0, cp.stderr
        st = run_root.stat()
        assert st.st_uid == uid and st.st_mode & 0o777 == 0o700
    finally:
        shutil.rmtree(run_root, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
