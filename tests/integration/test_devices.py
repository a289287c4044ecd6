"""Device nodes: a container opens only the devices Docker allows, whether it makes
the node itself (mknod), finds it in an image layer or runs it through `exec`;
--device grants one, --privileged all.

Rootful, the host's disk is a loop device over a file of the test's holding
HOST-SECRET (detached after): a default container may make a node for it but not
read or write it, through a cgroup v2 device program; where none can be attached
(no cgroup v2 hierarchy: the test unmounts it in a mount namespace of its own), the
container's mounts are nodev and it has no CAP_MKNOD. Rootless, the kernel refuses
mknod in the user namespace and image layers bring no device nodes: the same
commands are checked to fail, and --device binds nodes the user may open."""
import os
import re
import shutil
import stat
import subprocess
import tarfile

import pytest

from conftest import cgroup_v2_mount, tar_dir

ROOT = os.geteuid() == 0
SECRET = b"HOST-SECRET"
CAP_MKNOD = 27
EPERM = "Operation not permitted"


class Loop:
    def __init__(self, path, backing):
        self.path = path
        self.backing = backing
        st = os.stat(path)
        self.major, self.minor = os.major(st.st_rdev), os.minor(st.st_rdev)

    def host_read(self, n=64):
        """What the host reads through the device (its page cache: a write through
        any node of it would show here) and in the file behind it."""
        with open(self.path, "rb") as f:
            dev = f.read(n)
        return dev, self.backing.read_bytes()[:n]


@pytest.fixture
def loop(tmp):
    """Root: a loop device over a 1 MiB file starting with HOST-SECRET, detached
    after (and checked to be gone). Rootless: None (only root attaches loops)."""
    if not ROOT:
        yield None
        return
    backing = tmp / "secret.img"
    backing.write_bytes(SECRET + b"-" + b"\0" * (1 << 20))
    path = subprocess.run(["losetup", "-f", "--show", str(backing)], check=True,
                          capture_output=True, text=True).stdout.strip()
    try:
        yield Loop(path, backing)
    finally:
        subprocess.run(["losetup", "-d", path], check=True)
        left = subprocess.run(["losetup", "-j", str(backing)], capture_output=True,
                              text=True).stdout
        assert left == "", left


def majmin(loop):
    """The loop device's numbers; rootless, those of /dev/loop0 (no node exists)."""
    return (loop.major, loop.minor) if loop else (7, 0)


def cap_eff(text):
    return int(re.search(r"^CapEff:\s+([0-9a-f]+)", text, re.M).group(1), 16)


# ------------------------------------------------------------------ mknod


def test_mknod_of_a_host_disk_neither_reads_nor_writes_it(hutch, loop):
    ma, mi = majmin(loop)
    cp = hutch("run", "--rm", "bb", "sh", "-c",
               f"mknod /tmp/x b {ma} {mi} && echo made; head -c 11 /tmp/x; "
               "printf pwned | dd of=/tmp/x conv=notrunc 2>&1; echo pwned > /tmp/x",
               check=False)
    assert SECRET.decode() not in cp.stdout
    if ROOT:
        # making a node opens nothing (access m): allowed; reading and writing not
        assert "made" in cp.stdout, cp.stderr
        assert f"head: /tmp/x: {EPERM}" in cp.stderr, cp.stderr
        assert f"dd: can't open '/tmp/x': {EPERM}" in cp.stdout, cp.stdout
        dev, backing = loop.host_read()
        assert dev.startswith(SECRET + b"-") and backing.startswith(SECRET + b"-"), \
            (dev, backing)
    else:
        # the kernel wants CAP_MKNOD in the initial user namespace
        assert "made" not in cp.stdout
        assert f"mknod: /tmp/x: {EPERM}" in cp.stderr, cp.stderr


def test_kmsg_cannot_be_opened_for_writing(hutch):
    marker = f"hutch-devices-test-{os.getpid()}"
    cp = hutch("run", "--rm", "bb", "sh", "-c",
               f"mknod /tmp/k c 1 11 && echo made && echo '<3>{marker}' > /tmp/k && "
               "echo written", check=False)
    assert "written" not in cp.stdout
    if ROOT:
        assert "made" in cp.stdout
        assert f"/tmp/k: {EPERM}" in cp.stderr, cp.stderr
        log = subprocess.run(["dmesg"], capture_output=True, text=True).stdout
        assert marker not in log
    else:
        assert f"mknod: /tmp/k: {EPERM}" in cp.stderr, cp.stderr


@pytest.fixture
def node_image(state, hutch, tmp, loop):
    """An image whose layer ships /blk (a block node for the loop device; rootless
    for 7:0) and /kmsg (c 1:11), both mode 0666; removed after."""
    ma, mi = majmin(loop)
    d = tmp / "rootfs-nodes"
    shutil.copytree(state.bb_rootfs, d, symlinks=True)
    tarball = tar_dir(d, tmp / "nodes.tar")
    with tarfile.open(tarball, "a") as t:
        for name, kind, major, minor in (("blk", tarfile.BLKTYPE, ma, mi),
                                         ("kmsg", tarfile.CHRTYPE, 1, 11)):
            ti = tarfile.TarInfo(name)
            ti.type, ti.devmajor, ti.devminor, ti.mode = kind, major, minor, 0o666
            t.addfile(ti)
    name = f"nodes-{os.getpid()}"
    hutch("image", "import", tarball, name)
    yield name
    hutch("image", "rm", name, check=False)


def test_a_node_in_an_image_layer_cannot_be_opened(hutch, node_image):
    for extra in ((), ("--cap-drop", "MKNOD")):
        cp = hutch("run", "--rm", *extra, node_image, "sh", "-c",
                   "ls -l /blk /kmsg; head -c 11 /blk; test -e /kmsg && echo '<3>x' > /kmsg "
                   "&& echo written",
                   check=False)
        assert SECRET.decode() not in cp.stdout
        assert "written" not in cp.stdout
        if ROOT:
            assert re.search(r"^b.* /blk$", cp.stdout, re.M), cp.stdout
            assert f"head: /blk: {EPERM}" in cp.stderr, cp.stderr
            assert f"/kmsg: {EPERM}" in cp.stderr, cp.stderr
        else:
            # device nodes in a layer are skipped when a user without privileges
            # imports it: they are not there at all
            assert "/blk: No such file or directory" in cp.stderr, cp.stderr
            assert "/kmsg: No such file or directory" in cp.stderr, cp.stderr


# ------------------------------------------------------------------ what stays allowed


def test_the_devices_docker_allows_still_work(hutch):
    cp = hutch("run", "--rm", "bb", "sh", "-c",
               "echo x > /dev/null && cat /dev/null && echo null-ok; "
               "head -c 5 /dev/zero | wc -c; head -c 5 /dev/random | wc -c; "
               "head -c 5 /dev/urandom | wc -c; "
               "echo x > /dev/full; echo full=$?; "
               "echo > /dev/tty; echo > /dev/ptmx && echo ptmx-ok; ls /dev/pts",
               check=False)
    assert cp.stdout.split() == ["null-ok", "5", "5", "5", "full=1", "ptmx-ok", "ptmx"], \
        (cp.stdout, cp.stderr)
    assert "No space left on device" in cp.stderr, cp.stderr
    # no controlling terminal: the kernel's ENXIO, not the device cgroup's EPERM
    assert "/dev/tty: No such device or address" in cp.stderr, cp.stderr
    assert EPERM not in cp.stderr, cp.stderr
    # a pty of the container's own devpts, and its /dev/tty
    cp = hutch("run", "--rm", "-t", "bb", "sh", "-c",
               "tty; echo hi > $(tty) && echo > /dev/tty && echo pts-ok", check=False)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.split() == ["/dev/pts/0", "hi", "pts-ok"], cp.stdout


def test_mknod_itself_is_allowed_as_root(hutch):
    cp = hutch("run", "--rm", "bb", "sh", "-c",
               "mknod /tmp/b b 8 0 && mknod /tmp/c c 10 232 && mknod /tmp/p p && "
               "ls -l /tmp | cut -c1 | sort | tr -d '\\n'", check=False)
    if ROOT:
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout == "bcpt", cp.stdout  # "t" from ls's "total" line
    else:
        assert f"mknod: /tmp/b: {EPERM}" in cp.stderr, cp.stderr


# ------------------------------------------------------------------ --device, --privileged


def test_device_read_only(hutch, loop):
    if ROOT:
        cp = hutch("run", "--rm", "--device", f"{loop.path}:/dev/xda:r", "bb", "sh", "-c",
                   "stat -c '%F %t:%T' /dev/xda; head -c 11 /dev/xda; echo; "
                   "echo pwned > /dev/xda && echo written", check=False)
        lines = cp.stdout.splitlines()
        assert lines[0] == f"block special file {loop.major:x}:{loop.minor:x}", cp.stdout
        assert lines[1] == SECRET.decode(), (cp.stdout, cp.stderr)
        assert "written" not in cp.stdout
        assert f"/dev/xda: {EPERM}" in cp.stderr, cp.stderr
        assert loop.host_read()[0].startswith(SECRET + b"-")
        # rwm by default, at its own path by default
        cp = hutch("run", "--rm", "--device", loop.path, "bb", "sh", "-c",
                   f"printf SECRET-HOST | dd of={loop.path} conv=notrunc,fsync 2>/dev/null "
                   f"&& head -c 11 {loop.path}", check=False)
        assert cp.stdout == "SECRET-HOST", cp.stderr
        assert loop.host_read()[0].startswith(b"SECRET-HOST-")
    else:
        # nodes the user may open (/dev/fuse is 0666 here, and no default one),
        # bound from the host: no mknod in a user namespace
        cp = hutch("run", "--rm", "--device", "/dev/fuse:/dev/xfuse", "--device",
                   "/dev/zero:/dev/more/xzero:rw", "bb", "sh", "-c",
                   "exec 3<>/dev/xfuse && echo opened && head -c 3 /dev/more/xzero | wc -c "
                   "&& stat -c '%t:%T' /dev/xfuse /dev/more/xzero", check=False)
        assert cp.stdout.split() == ["opened", "3", "a:e5", "1:5"], (cp.stdout, cp.stderr)
        # read-only cannot be enforced without a device cgroup: refused, not ignored
        cp = hutch("run", "--rm", "--device", "/dev/fuse:/dev/xfuse:r", "bb", "true",
                   check=False)
        assert cp.returncode == 125
        assert "device /dev/xfuse may not be both read and written" in cp.stderr, cp.stderr
    # not without --device
    cp = hutch("run", "--rm", "bb", "sh", "-c", "mknod /tmp/f c 10 229; exec 3<>/tmp/f",
               check=False)
    assert f"/tmp/f: {EPERM}" in cp.stderr, cp.stderr


def test_device_bad_values_are_named(hutch):
    for arg, says in (("/dev/null:/dev/x:rwx", "PERMS must be letters of 'rwm'"),
                      ("/etc/passwd", "the host's path is not a device node"),
                      ("/no/such/dev", "the host's device cannot be found"),
                      ("/dev/null:dev/x", "the path in the container must be absolute")):
        cp = hutch("run", "--rm", "--device", arg, "bb", "true", check=False)
        assert cp.returncode == 125, (arg, cp.stderr)
        assert cp.stderr.count("\n") == 1, cp.stderr
        assert f"invalid device '{arg}': {says}" in cp.stderr, cp.stderr


def test_privileged_opens_every_device(hutch, loop):
    if ROOT:
        cp = hutch("run", "--rm", "--privileged", "bb", "head", "-c", "11", loop.path,
                   check=False)
        assert cp.stdout == SECRET.decode(), cp.stderr
    else:
        # the host's nodes, bound: the kernel decides as for the user on the host
        # (loop-control is root's and group disk's), no device cgroup says EPERM
        cp = hutch("run", "--rm", "--privileged", "bb", "sh", "-c",
                   "head -c 3 /dev/zero | wc -c; cat /dev/loop-control", check=False)
        assert cp.stdout.split() == ["3"], cp.stdout
        assert "'/dev/loop-control': Permission denied" in cp.stderr, cp.stderr


def test_exec_is_refused_the_same(hutch, ctr, loop):
    ma, mi = majmin(loop)
    cid = ctr.run("bb", "sleep", "1000")
    cp = hutch("exec", cid, "sh", "-c",
               f"mknod /tmp/x b {ma} {mi} && echo made; head -c 11 /tmp/x; "
               "mknod /tmp/k c 1 11 && echo '<3>x' > /tmp/k && echo written; "
               "echo > /dev/null && echo null-ok", check=False)
    assert SECRET.decode() not in cp.stdout
    assert "written" not in cp.stdout
    assert "null-ok" in cp.stdout
    if ROOT:
        assert "made" in cp.stdout
        assert f"head: /tmp/x: {EPERM}" in cp.stderr, cp.stderr
    else:
        assert f"mknod: /tmp/x: {EPERM}" in cp.stderr, cp.stderr


# ------------------------------------------------------------------ no device cgroup


def _without_cgroup_v2(state, script):
    """Run script (sh) with $H = hutch --root STATE in a mount namespace of its own
    where the cgroup v2 hierarchy is unmounted (hutch then has no cgroup to attach
    a device program to). Nothing of the host's mounts changes."""
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         f"umount -l {cgroup_v2_mount()} && {script}"],
        env={**os.environ, "H": f"{state.bin} --root {state.root}"},
        capture_output=True, text=True, timeout=60)


NOTE = "hutch: note: no device cgroup for containers here (no cgroup v2 hierarchy is mounted)"


@pytest.fixture
def note_marker(state):
    """The note's said-once marker: none before the test, none left after (the run
    root holds only the cache otherwise)."""
    marker = state.root / "run" / "device-cgroup-note-given"
    marker.unlink(missing_ok=True)
    yield marker
    marker.unlink(missing_ok=True)


def test_without_a_device_cgroup_mounts_are_nodev_and_mknod_is_gone(state, hutch, tmp, loop,
                                                                   node_image, note_marker):
    if not ROOT:
        # rootless there is never a program (an unprivileged user may not load
        # one) and nothing to make up for: mknod and device nodes on the user
        # namespace's own mounts are refused by the kernel; CAP_MKNOD (Docker's
        # default set) is kept, and nothing is said
        cp = hutch("run", "--rm", "bb", "sh", "-c",
                   "grep CapEff /proc/self/status; mknod /tmp/x c 1 3", check=False)
        assert cap_eff(cp.stdout) & (1 << CAP_MKNOD)
        assert "note" not in cp.stderr
        assert f"mknod: /tmp/x: {EPERM}" in cp.stderr, cp.stderr
        return
    (tmp / "body.sh").write_text(
        f"grep CapEff /proc/self/status; mknod /tmp/x b {loop.major} {loop.minor}\n"
        "echo x > /dev/null && echo null-ok; head -c 3 /dev/urandom | wc -c\n"
        "awk '$5 == \"/\" || $5 == \"/dev\" || $5 == \"/dev/shm\" || $5 == \"/t\" "
        "{print $5, $6}' "
        "/proc/self/mountinfo\n")
    cp = _without_cgroup_v2(state, (
        f"$H run --rm -v {tmp}:/t:ro bb sh /t/body.sh; echo ==; "
        f"$H run --rm {node_image} sh -c 'head -c 11 /blk'; echo ==; "
        f"$H run --rm --device {loop.path}:/dev/xda bb head -c 11 /dev/xda; echo ==; "
        f"$H run --rm --device {loop.path}:/dev/xda:r bb true; echo rc=$?"))
    out = cp.stdout.split("==\n")
    assert len(out) == 4, (cp.stdout, cp.stderr)
    # said once, for the first run only
    assert cp.stderr.count(NOTE) == 1 and cp.stderr.startswith(NOTE), cp.stderr
    lines = out[0].splitlines()
    assert not cap_eff(lines[0]) & (1 << CAP_MKNOD), lines[0]
    assert f"mknod: /tmp/x: {EPERM}" in cp.stderr, cp.stderr
    assert lines[1:3] == ["null-ok", "3"], out[0]
    for line in lines[3:]:
        assert "nodev" in line.split()[1].split(","), out[0]
    assert len(lines) == 7, out[0]  # the root, /dev, /dev/shm and the bind on /t
    # the image's node is on a nodev overlay
    assert SECRET.decode() not in out[1]
    assert "head: /blk: Permission denied" in cp.stderr, cp.stderr
    # --device still grants one (a bind of the host's node), but what cannot be
    # enforced without a program (read-only) is refused
    assert out[2] == SECRET.decode(), (cp.stdout, cp.stderr)
    assert out[3] == "rc=125\n", cp.stdout
    assert "device /dev/xda may not be both read and written, and that cannot be " \
           "enforced here" in cp.stderr, cp.stderr


def _deny_bpf():
    """preexec_fn: a seccomp filter on hutch itself under which bpf(2) fails with
    EPERM, as a kernel that will not load its device program (no_new_privs is set
    for it, which the containers then inherit)."""
    import ctypes
    import struct
    nr_bpf = 321  # x86_64
    prog = b"".join(struct.pack("HBBI", *insn) for insn in [
        (0x20, 0, 0, 0),                  # ld [0]: the syscall number
        (0x15, 0, 1, nr_bpf),             # jeq bpf
        (0x06, 0, 0, 0x00050000 | 1),     # ret ERRNO(EPERM)
        (0x06, 0, 0, 0x7fff0000),         # ret ALLOW
    ])
    buf = ctypes.create_string_buffer(prog)

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = Fprog(4, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) or \
            libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0):
        raise OSError(ctypes.get_errno(), "seccomp")


def test_a_device_program_the_kernel_refuses_falls_back_to_nodev(state, tmp, loop,
                                                                 note_marker):
    """The program is loaded while the container builds its root; when the kernel
    refuses it, the container starts again as without a device cgroup (nodev, no
    CAP_MKNOD), said once, and nothing of the first try is left. (Rootless loads
    none: the same run says nothing.)"""
    if not ROOT:
        # (newuidmap, setuid, works neither under no_new_privs nor traced: strace of
        # hutch alone shows that it makes no bpf(2) call)
        cp = subprocess.run(["strace", "-e", "trace=bpf", "-o", str(tmp / "bpf.trace"),
                             state.bin, "--root", state.root, "run", "--rm", "bb", "true"],
                            capture_output=True, text=True, timeout=60)
        assert cp.returncode == 0 and "note" not in cp.stderr, cp.stderr
        calls = [l for l in (tmp / "bpf.trace").read_text().splitlines() if "bpf(" in l]
        assert calls == [], calls
        return
    (tmp / "body.sh").write_text(
        f"grep CapEff /proc/self/status; mknod /tmp/x b {loop.major} {loop.minor}; "
        "echo x > /dev/null && echo null-ok; "
        "awk '$5 == \"/\" {print $6}' /proc/self/mountinfo\n")
    cmd = [state.bin, "--root", state.root, "run", "--rm", "-v", f"{tmp}:/t:ro", "bb",
           "sh", "/t/body.sh"]
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                        preexec_fn=_deny_bpf)
    assert cp.returncode == 0, cp.stderr
    assert ("no device cgroup for containers here (the kernel refused to load its eBPF "
            f"program: {EPERM})") in cp.stderr, cp.stderr
    lines = cp.stdout.splitlines()
    assert not cap_eff(lines[0]) & (1 << CAP_MKNOD), lines[0]
    assert f"mknod: /tmp/x: {EPERM}" in cp.stderr, cp.stderr
    assert lines[1] == "null-ok", cp.stdout
    assert "nodev" in lines[2].split(","), cp.stdout
    assert not list((state.root / "containers").iterdir())


def test_without_a_device_cgroup_exec_has_no_mknod(state, hutch, ctr, loop, note_marker):
    if not ROOT:
        # rootless (see above): exec has the container's capabilities, and the
        # kernel refuses its mknod
        cid = ctr.run("bb", "sleep", "1000")
        cp = hutch("exec", cid, "sh", "-c", "grep CapEff /proc/self/status; mknod /tmp/x c 1 3",
                   check=False)
        assert cap_eff(cp.stdout) & (1 << CAP_MKNOD)
        assert f"mknod: /tmp/x: {EPERM}" in cp.stderr, cp.stderr
        return
    cp = _without_cgroup_v2(state, (
        "id=$($H run -d bb sleep 1000) && "
        f"$H exec $id sh -c 'grep CapEff /proc/self/status; mknod /tmp/x b {loop.major} "
        f"{loop.minor}'; $H rm -f $id >/dev/null"))
    assert not cap_eff(cp.stdout) & (1 << CAP_MKNOD), cp.stdout
    assert f"mknod: /tmp/x: {EPERM}" in cp.stderr, cp.stderr
