"""hutch-oci's linux.netDevices: an interface of the runtime's network namespace moved into
the container's own at create, renamed where asked, with its addresses and up state; the
field's names checked by path; a namespace joined by path, and rootless, refused.
Every link is made in the suite's own network namespace (conftest), never the host's."""
import json
import os
import socket
import stat
import subprocess

import pytest

from conftest import wait_for
from ociutil import ROOTLESS, oci  # noqa: F401


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def link_exists(name):
    return ip("link", "show", "dev", name, check=False).returncode == 0


def rootless_refused(oci, cid):
    """Rootless, what the root tests do is refused, saying why, whatever the device."""
    b = oci.bundle(edit=with_devices({"lo": {"name": "x0"}}))
    cp = oci.create(cid, b, check=False)
    assert cp.returncode != 0, cp.stderr
    assert "linux.netDevices: hutch-oci runs rootless here" in cp.stderr, cp.stderr
    assert "an unprivileged user does not have" in cp.stderr, cp.stderr
    assert not (oci.root / cid).exists()


@pytest.fixture
def veth():
    """A veth pair in the suite's network namespace: (moved end, end that stays), both
    up, 10.77.N.2/24 and fd77::2/64 on the first, 10.77.N.1/24 on the second.
    Rootless (no namespace of the suite's own to make links in): None."""
    if ROOTLESS:
        yield None
        return
    n = os.getpid() % 250
    a, b = f"ndm{os.getpid()}", f"nds{os.getpid()}"
    ip("link", "add", a, "type", "veth", "peer", "name", b)
    ip("addr", "add", f"10.77.{n}.2/24", "dev", a)
    ip("addr", "add", "fd77::2/64", "dev", a, "nodad")
    ip("addr", "add", f"10.77.{n}.1/24", "dev", b)
    ip("link", "set", a, "up")
    ip("link", "set", b, "up")
    yield a, b, f"10.77.{n}"
    for name in (a, b):
        ip("link", "del", name, check=False)


def with_devices(devices, namespaces=None):
    def edit(c):
        c["linux"]["netDevices"] = devices
        if namespaces is not None:
            c["linux"]["namespaces"] = namespaces(c["linux"]["namespaces"])
    return edit


def test_device_moved_renamed_with_its_addresses(oci, veth, tmp):
    if ROOTLESS:
        return rootless_refused(oci, "nd1")
    moved, stays, net = veth
    b = oci.bundle(args=("sleep", "60"),
                   edit=with_devices({moved: {"name": "eth7"}}))
    cp = oci.create("nd1", b)
    assert cp.returncode == 0, cp.stderr
    # gone from here as soon as create is done, before start
    assert not link_exists(moved)
    oci.run("start", "nd1")
    cp = oci.run("exec", "nd1", "sh", "-c",
                 "ls /sys/class/net; cat /sys/class/net/eth7/operstate; ip -o addr show eth7")
    names = cp.stdout.split()
    assert "eth7" in names and moved not in names, cp.stdout
    assert "up" in cp.stdout.splitlines(), cp.stdout
    assert f"inet {net}.2/24" in cp.stdout and "inet6 fd77::2/64" in cp.stdout, cp.stdout
    # the other end stayed here: the pair still carries packets, both ways
    ping = subprocess.run([str(oci.bb / "bin" / "busybox"), "ping", "-c", "1", "-W", "2",
                           f"{net}.2"], capture_output=True, text=True)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    with socket.socket() as srv:
        srv.bind((f"{net}.1", 0))
        srv.listen(1)
        srv.settimeout(10)
        port = srv.getsockname()[1]
        client = subprocess.Popen([oci.bin, "--root", oci.root, "exec", "nd1", "sh", "-c",
                                   f"echo across | nc {net}.1 {port}"])
        try:
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(10)
                assert conn.makefile().readline() == "across\n"
            assert client.wait(timeout=10) == 0
        finally:
            client.kill()
            client.wait()
    oci.run("delete", "--force", "nd1")
    # a veth goes with the container's namespace, and its peer with it
    wait_for(lambda: not link_exists(stays), what=f"{stays} gone with the namespace")
    assert not link_exists(moved) and not link_exists("eth7")


@pytest.mark.parametrize("userns", [False, True])
def test_device_keeps_its_name_without_one(oci, veth, userns):
    """Also into a network namespace that a user namespace of the container's owns."""
    if ROOTLESS:
        return rootless_refused(oci, "nd2")
    moved, _, net = veth

    def edit(c):
        with_devices({moved: {}})(c)
        if userns:
            c["linux"]["namespaces"].append({"type": "user"})
            maps = [{"containerID": 0, "hostID": 200000, "size": 65536}]
            c["linux"]["uidMappings"] = c["linux"]["gidMappings"] = maps
    b = oci.bundle(args=("sh", "-c", f"ip -o -4 addr show {moved}"), edit=edit)
    opened = []
    if userns:
        # the rootfs owned by the ids it maps to, its path open to them, as an
        # engine has it
        for d, dirs, files in os.walk(b / "rootfs"):
            for n in [d] + [os.path.join(d, f) for f in dirs + files]:
                st = os.lstat(n)
                os.lchown(n, 200000 + st.st_uid, 200000 + st.st_gid)
        for d in (oci.tmp, *oci.tmp.parents):
            mode = os.stat(d).st_mode
            if not mode & stat.S_IXOTH:
                os.chmod(d, mode | stat.S_IXOTH)
                opened.append((d, mode))
    out = oci.tmp / "out"
    try:
        cp = oci.run_to_files("run", "--bundle", b, "nd2", out=out, check=False)
    finally:
        for d, mode in opened:
            os.chmod(d, mode)
    assert cp.returncode == 0, cp.stderr
    assert f"inet {net}.2/24" in out.read_text()


def test_device_there_for_sysctls_and_prestart(oci, veth, tmp):
    """Moved as soon as the namespace exists, as runc does: linux.sysctl can set the
    device's own net.* files, and a prestart hook (CNI's place) finds it in there."""
    if ROOTLESS:
        return rootless_refused(oci, "nd7")
    moved = veth[0]
    hook = tmp / "prestart.py"
    hook.write_text("#!/usr/bin/python3\nimport json, os, sys\n"
                    "pid = json.load(sys.stdin)['pid']\n"
                    "with open(os.environ['OUT'], 'w') as f:\n"
                    "    f.write(open(f'/proc/{pid}/net/dev').read())\n")
    hook.chmod(0o755)

    def edit(c):
        with_devices({moved: {"name": "eth8"}})(c)
        c["linux"]["sysctl"] = {"net.ipv4.conf.eth8.forwarding": "1"}
        c["hooks"] = {"prestart": [{"path": str(hook), "env": [f"OUT={tmp}/seen"]}]}
    b = oci.bundle(args=("cat", "/proc/sys/net/ipv4/conf/eth8/forwarding"), edit=edit)
    out = tmp / "out"
    cp = oci.run_to_files("run", "--bundle", b, "nd7", out=out, check=False)
    assert cp.returncode == 0, cp.stderr
    assert out.read_text() == "1\n"
    assert "eth8:" in (tmp / "seen").read_text()


@pytest.mark.parametrize("devices,needle", [
    ({"": {}}, "linux.netDevices.: '' is not a network interface name"),
    ({"a" * 16: {}}, f"linux.netDevices.{'a' * 16}: "),
    ({"x": {"name": "a/b"}}, "linux.netDevices.x.name: 'a/b' is not"),
    ({"x": {"name": "a b"}}, "linux.netDevices.x.name: 'a b' is not"),
    ({"x": {"name": ".."}}, "linux.netDevices.x.name: '..' is not"),
    ({"x": {"name": "."}}, "linux.netDevices.x.name: '.' is not"),
    ({"x": {"name": ""}}, "linux.netDevices.x.name: '' is not"),
    ({"x": {"name": "e0"}, "y": {"name": "e0"}},
     "linux.netDevices.y: the name 'e0' in the container is linux.netDevices.x's too"),
    ({"x": {}, "y": {"name": "x"}}, "linux.netDevices.y: the name 'x'"),
    ({"x": {"name": 3}}, "linux.netDevices.x.name"),
    ({"x": []}, "linux.netDevices.x"),
])
def test_bad_names_refused_by_path(oci, devices, needle):
    b = oci.bundle(edit=with_devices(devices))
    cp = oci.create("nd3", b, check=False)
    assert cp.returncode != 0 and needle in cp.stderr, cp.stderr
    assert not (oci.root / "nd3").exists()


@pytest.mark.parametrize("case", ["missing", "joined", "no-netns"])
def test_refused_at_create(oci, veth, case):
    if ROOTLESS:
        return rootless_refused(oci, "nd4")
    moved = veth[0]
    if case == "missing":
        edit = with_devices({"ndnothere0": {}})
        needle = "linux.netDevices.ndnothere0: no network interface ndnothere0"
    elif case == "joined":
        path = f"/proc/{os.getpid()}/ns/net"
        edit = with_devices({moved: {}}, lambda ns: [
            n for n in ns if n["type"] != "network"] + [{"type": "network", "path": path}])
        needle = f"linux.netDevices: the network namespace is joined by path ({path})"
    else:
        edit = with_devices({moved: {}}, lambda ns: [n for n in ns if n["type"] != "network"])
        needle = "linux.netDevices needs a network namespace of the container's own"
    b = oci.bundle(edit=edit)
    cp = oci.create("nd4", b, check=False)
    assert cp.returncode != 0 and needle in cp.stderr, cp.stderr
    assert not (oci.root / "nd4").exists()
    # nothing was moved: the device is still here, with its address
    assert link_exists(moved) and "10.77." in ip("-o", "addr", "show", moved).stdout


def test_failed_move_fails_create_and_leaves_nothing(oci, veth):
    """A device that cannot go into the container (lo stays in its namespace: the kernel
    refuses it) fails create with the field's name; no container is left."""
    if ROOTLESS:
        return rootless_refused(oci, "nd5")
    b = oci.bundle(args=("sleep", "60"), edit=with_devices({"lo": {"name": "lo2"}}))
    cp = oci.create("nd5", b, check=False)
    assert cp.returncode != 0 and "linux.netDevices.lo: move lo into" in cp.stderr, cp.stderr
    assert not (oci.root / "nd5").exists()
    assert link_exists("lo")


def test_features_say_enabled(oci):
    feats = json.loads(oci.run("features").stdout)
    assert feats["linux"]["netDevices"] == {"enabled": True}
