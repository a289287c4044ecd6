"""The root filesystem, /proc, /sys, /dev, masked and read-only paths, bind and
tmpfs mounts, and mount targets planted as symlinks by an image."""
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import tree_snapshot

# ------------------------------------------------------------------ root


def test_root_is_overlay_over_image_layer(hutch, state):
    out = hutch("run", "--rm", "bb", "cat", "/proc/self/mountinfo").stdout
    root = [l for l in out.splitlines() if l.split()[4] == "/"]
    assert len(root) == 1, out
    fields = root[0].split(" - ")[1].split()
    assert fields[0] == "overlay"
    # "lowerdir+=" where the kernel takes layers one by one (Linux 6.8+)
    assert (f"lowerdir={state.bb_layer}" in fields[2]
            or f"lowerdir+={state.bb_layer}" in fields[2]), fields[2]


def test_writes_never_change_the_image(hutch, state):
    before = tree_snapshot(state.bb_layer)
    passwd = (state.bb_layer / "etc" / "passwd").read_text()
    hutch("run", "--rm", "bb", "sh", "-c",
          "echo scribble > /new-file; echo evil::0:0::/:/bin/sh >> /etc/passwd; "
          "rm /bin/ls; mkdir -p /usr/new/dir; chmod 777 /etc; cat /new-file")
    cp = hutch("run", "--rm", "bb", "sh", "-c",
               "ls /new-file /usr/new 2>&1; grep -c evil /etc/passwd; ls -ld /etc; "
               "test -e /bin/ls && echo ls-here", check=False)
    assert "No such file or directory" in cp.stdout
    assert "\n0\n" in cp.stdout
    assert "drwxr-xr-x" in cp.stdout
    assert "ls-here" in cp.stdout
    assert tree_snapshot(state.bb_layer) == before
    assert (state.bb_layer / "etc" / "passwd").read_text() == passwd


def test_read_only_root(hutch):
    cp = hutch("run", "--rm", "--read-only", "bb", "touch", "/x", check=False)
    assert cp.returncode != 0
    assert "Read-only file system" in cp.stderr
    cp = hutch("run", "--rm", "--read-only", "bb", "sh", "-c",
               "echo x > /etc/passwd", check=False)
    assert cp.returncode != 0 and "Read-only file system" in cp.stderr


def test_read_only_root_with_writable_tmpfs(hutch):
    out = hutch("run", "--rm", "--read-only", "--tmpfs", "/tmp", "bb", "sh", "-c",
                "echo ok > /tmp/f && cat /tmp/f; touch /y 2>&1; true").stdout
    assert out.startswith("ok\n")
    assert "Read-only file system" in out


# ------------------------------------------------------------------ /proc, /sys


def _mount_opts(mountinfo, target):
    for l in mountinfo.splitlines():
        f = l.split()
        if f[4] == target:
            return set(f[5].split(","))
    return None


def test_proc_sys_read_only(hutch):
    cp = hutch("run", "--rm", "bb", "sh", "-c",
               "echo other > /proc/sys/kernel/hostname", check=False)
    assert cp.returncode != 0
    assert "Read-only file system" in cp.stderr
    cp = hutch("run", "--rm", "bb", "touch", "/proc/sys/kernel", check=False)
    assert cp.returncode != 0 and "Read-only file system" in cp.stderr
    mi = hutch("run", "--rm", "bb", "cat", "/proc/self/mountinfo").stdout
    assert "ro" in _mount_opts(mi, "/proc/sys")


def test_sys_read_only(hutch):
    mi = hutch("run", "--rm", "bb", "cat", "/proc/self/mountinfo").stdout
    assert "ro" in _mount_opts(mi, "/sys")
    cp = hutch("run", "--rm", "bb", "touch", "/sys/kernel/new", check=False)
    assert cp.returncode != 0
    assert "Read-only file system" in cp.stderr
    # the container's cgroup view is read-only too
    assert "ro" in _mount_opts(mi, "/sys/fs/cgroup")


def test_readonly_proc_paths(hutch):
    cp = hutch("run", "--rm", "bb", "sh", "-c",
               "echo 1 > /proc/irq/default_smp_affinity", check=False)
    assert cp.returncode != 0 and "Read-only file system" in cp.stderr
    for p in ("/proc/bus", "/proc/irq", "/proc/fs"):
        cp = hutch("run", "--rm", "bb", "touch", p, check=False)
        assert cp.returncode != 0 and "Read-only file system" in cp.stderr, p
    mi = hutch("run", "--rm", "bb", "cat", "/proc/self/mountinfo").stdout
    for p in ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"):
        if os.path.exists(p):
            assert "ro" in _mount_opts(mi, p), p
    if os.path.exists("/proc/sysrq-trigger"):
        cp = hutch("run", "--rm", "bb", "sh", "-c", "echo h > /proc/sysrq-trigger",
                   check=False)
        assert cp.returncode != 0 and "Read-only file system" in cp.stderr
        assert "ro" in _mount_opts(mi, "/proc/sysrq-trigger")


MASKED_FILES = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                "/proc/interrupts", "/proc/latency_stats", "/proc/timer_stats"]
MASKED_DIRS = ["/proc/acpi", "/proc/scsi", "/proc/asound", "/sys/firmware",
               "/sys/devices/virtual/powercap"]


def test_masked_files_read_empty(hutch):
    present = [p for p in MASKED_FILES if os.path.exists(p)]
    assert present, "expected some of Docker's masked /proc files on this kernel"
    script = "; ".join(f"echo {p}=$(cat {p} 2>/dev/null | wc -c)" for p in present)
    out = hutch("run", "--rm", "bb", "sh", "-c", script).stdout
    for p in present:
        assert f"{p}=0\n" in out, out
    # while the host's files are not empty (so the mask did something); an
    # unprivileged user may read only some of them
    readable = [p for p in present if os.access(p, os.R_OK)]
    if os.geteuid() == 0:
        assert "/proc/timer_list" in readable
    assert readable, present
    assert any(open(p).read(100) for p in readable), readable


def test_masked_dirs_empty_and_read_only(hutch):
    present = [p for p in MASKED_DIRS if os.path.exists(p)]
    assert "/sys/firmware" in present
    assert os.listdir("/sys/firmware")  # the host has entries there
    script = "; ".join(f"echo {p}=[$(ls -A {p})]; touch {p}/x 2>&1" for p in present)
    out = hutch("run", "--rm", "bb", "sh", "-c", script, check=False).stdout
    for p in present:
        assert f"{p}=[]\n" in out, out
        assert f"touch: {p}/x: Read-only file system" in out, out


# ------------------------------------------------------------------ /dev


def test_dev_contents(hutch):
    out = hutch("run", "--rm", "bb", "ls", "-A", "/dev").stdout
    assert set(out.split()) == {"null", "zero", "full", "random", "urandom", "tty", "pts",
                                "shm", "mqueue", "fd", "stdin", "stdout", "stderr", "ptmx",
                                "core"}
    links = hutch("run", "--rm", "bb", "sh", "-c",
                  "for l in fd stdin stdout stderr ptmx core; do echo $l=$(readlink /dev/$l); "
                  "done").stdout
    assert links.split() == ["fd=/proc/self/fd", "stdin=/proc/self/fd/0",
                             "stdout=/proc/self/fd/1", "stderr=/proc/self/fd/2",
                             "ptmx=pts/ptmx", "core=/proc/kcore"]


def test_dev_nodes_are_the_right_devices(hutch):
    out = hutch("run", "--rm", "bb", "sh", "-c",
                "for d in null zero full random urandom tty; do "
                "stat -c '%n %F %t:%T %a' /dev/$d; done").stdout
    want = {"/dev/null": "1:3", "/dev/zero": "1:5", "/dev/full": "1:7",
            "/dev/random": "1:8", "/dev/urandom": "1:9", "/dev/tty": "5:0"}
    for line in out.splitlines():
        name, *kind, majmin, mode = line.split()
        assert " ".join(kind) == "character special file", line
        assert majmin == want[name], line
        assert mode == "666", line


def test_dev_null_zero_full(hutch):
    cp = hutch("run", "--rm", "bb", "sh", "-c",
               "echo gone > /dev/null && echo null-ok; head -c 5 /dev/zero | od -An -tx1; "
               "head -c 16 /dev/urandom | wc -c; echo x > /dev/full", check=False)
    assert "null-ok" in cp.stdout
    assert "00 00 00 00 00" in cp.stdout
    assert "\n16\n" in cp.stdout
    assert cp.returncode != 0
    assert "No space left on device" in cp.stderr


def test_dev_pts_shm_mqueue_mounted(hutch):
    mi = hutch("run", "--rm", "bb", "cat", "/proc/self/mountinfo").stdout
    types = {l.split()[4]: l.split(" - ")[1].split()[0] for l in mi.splitlines()}
    assert types["/dev"] == "tmpfs"
    assert types["/dev/pts"] == "devpts"
    assert types["/dev/shm"] == "tmpfs"
    assert types["/dev/mqueue"] == "mqueue"
    assert types["/proc"] == "proc"
    assert types["/sys"] == "sysfs"
    out = hutch("run", "--rm", "bb", "sh", "-c",
                "echo shm > /dev/shm/f && cat /dev/shm/f").stdout
    assert out == "shm\n"


def test_bind_on_dev_is_used_as_it_is(hutch, tmp):
    # As in Docker (runc makes no nodes in a bound /dev, and the default devpts,
    # shm and mqueue go): the directory is the container's /dev, and nothing is
    # created in it on the host, as root (mknod) or rootless (binds of the host's)
    dev = tmp / "dev"
    dev.mkdir()
    (dev / "mine").write_text("user's\n")
    before = tree_snapshot(dev)
    # (-i: without it, stdin is the container's /dev/null, which this one lacks)
    out = hutch("run", "--rm", "-i", "-v", f"{dev}:/dev", "bb", "sh", "-c",
                "ls -A /dev; cat /dev/mine; wc -c < /proc/timer_list; "
                "awk '$5 ~ \"^/dev/\"' /proc/self/mountinfo | wc -l", input="").stdout
    assert out.split() == ["mine", "user's", "0", "0"], out
    assert tree_snapshot(dev) == before
    # --privileged copies the host's nodes into hutch's own /dev only
    hutch("run", "--rm", "-i", "--privileged", "-v", f"{dev}:/dev", "bb", "true", input="")
    assert tree_snapshot(dev) == before
    # a mount of the user's own below it still goes there (and makes its mount point)
    out = hutch("run", "--rm", "-i", "-v", f"{dev}:/dev", "--tmpfs", "/dev/shm", "bb", "sh",
                "-c", "awk '$5 == \"/dev/shm\"' /proc/self/mountinfo | wc -l", input="").stdout
    assert out == "1\n"


def test_tmpfs_on_dev_is_populated(hutch):
    # a tmpfs is the container's own: hutch fills it as its default /dev
    out = hutch("run", "--rm", "--tmpfs", "/dev:dev", "bb", "sh", "-c",
                "ls -A /dev; grep -c ' /dev/pts ' /proc/self/mountinfo").stdout
    assert {"null", "zero", "tty", "ptmx", "pts", "shm", "mqueue"} <= set(out.split()), out
    assert out.split()[-1] == "1", out


# ------------------------------------------------------------------ bind mounts


def test_bind_absolute(hutch, tmp):
    (tmp / "hello.txt").write_text("from host\n")
    out = hutch("run", "--rm", "-v", f"{tmp}:/data", "bb", "sh", "-c",
                "cat /data/hello.txt; echo from container > /data/back.txt").stdout
    assert out == "from host\n"
    assert (tmp / "back.txt").read_text() == "from container\n"


def test_bind_relative_to_cwd(hutch, tmp):
    (tmp / "rel").mkdir()
    (tmp / "rel" / "f").write_text("relative\n")
    out = hutch("run", "--rm", "-v", "./rel:/data", "bb", "cat", "/data/f", cwd=tmp).stdout
    assert out == "relative\n"


def test_bind_read_only(hutch, tmp):
    (tmp / "f").write_text("keep\n")
    cp = hutch("run", "--rm", "-v", f"{tmp}:/data:ro", "bb", "sh", "-c",
               "cat /data/f; echo changed > /data/f", check=False)
    assert cp.stdout == "keep\n"
    assert cp.returncode != 0 and "Read-only file system" in cp.stderr
    cp = hutch("run", "--rm", "-v", f"{tmp}:/data:ro", "bb", "touch", "/data/new", check=False)
    assert cp.returncode != 0 and "Read-only file system" in cp.stderr
    assert (tmp / "f").read_text() == "keep\n"
    assert not (tmp / "new").exists()


def test_bind_single_file(hutch, tmp):
    (tmp / "motd").write_text("single file\n")
    out = hutch("run", "--rm", "-v", f"{tmp}/motd:/etc/motd", "bb", "sh", "-c",
                "cat /etc/motd; ls /etc | grep -c passwd").stdout
    assert out == "single file\n1\n"  # a file bind does not hide the rest of /etc


def test_bind_to_new_nested_dir(hutch, tmp):
    (tmp / "x").write_text("nested\n")
    out = hutch("run", "--rm", "-v", f"{tmp}:/a/b/c", "bb", "cat", "/a/b/c/x").stdout
    assert out == "nested\n"


def test_workdir_in_bind(hutch, tmp):
    (tmp / "here").write_text("")
    out = hutch("run", "--rm", "-v", f"{tmp}:/data", "-w", "/data", "bb", "sh", "-c",
                "pwd; ls").stdout
    assert out == "/data\nhere\n"


# ------------------------------------------------------------------ tmpfs


def test_tmpfs_mount(hutch):
    out = hutch("run", "--rm", "--tmpfs", "/tmp", "bb", "sh", "-c",
                "grep ' /tmp ' /proc/self/mountinfo; echo x > /tmp/y && cat /tmp/y").stdout
    line, data = out.splitlines()
    assert " - tmpfs " in line
    assert "nosuid" in line and "nodev" in line and "noexec" in line
    assert data == "x"


def test_tmpfs_size(hutch):
    cp = hutch("run", "--rm", "--tmpfs", "/tmp:size=1m", "bb", "sh", "-c",
               "dd if=/dev/zero of=/tmp/small bs=1k count=512 && echo small-ok; "
               "dd if=/dev/zero of=/tmp/big bs=1k count=2048", check=False)
    assert "small-ok" in cp.stdout
    assert cp.returncode != 0
    assert "No space left on device" in cp.stderr


def test_tmpfs_noexec_by_default(hutch):
    cp = hutch("run", "--rm", "--tmpfs", "/x", "bb", "sh", "-c",
               "cp /bin/busybox /x/busybox && /x/busybox true", check=False)
    assert cp.returncode == 126
    assert "Permission denied" in cp.stderr


def test_tmpfs_exec_option(hutch):
    out = hutch("run", "--rm", "--tmpfs", "/x:exec", "bb", "sh", "-c",
                "cp /bin/busybox /x/busybox && /x/busybox echo ran-from-tmpfs").stdout
    assert out == "ran-from-tmpfs\n"


# ------------------------------------------------------------------ symlink traps


def test_mount_target_symlink_absolute_stays_in_root(hutch, tmp, image_from):
    # The image has /data -> /etc. A bind on /data must land on the container's own
    # /etc, never the host's (CVE-2021-30465 class).
    def plant(d):
        os.symlink("/etc", d / "data")

    img = image_from("trap-abs", plant)
    src = tmp / "src"
    src.mkdir()
    marker = f"marker-{random.randrange(1 << 30)}"
    (src / marker).write_text("in src\n")
    host_etc_before = sorted(os.listdir("/etc"))
    out = hutch("run", "--rm", "-v", f"{src}:/data", img, "sh", "-c",
                f"cat /etc/{marker}; touch /etc/written; ls /etc").stdout
    assert out.startswith("in src\n")
    assert "passwd" not in out.split()  # /etc inside is now the bind
    assert not os.path.exists(f"/etc/{marker}")
    assert not os.path.exists("/etc/written")
    assert sorted(os.listdir("/etc")) == host_etc_before
    assert (src / "written").exists()


def test_mount_target_symlink_relative_escape_stays_in_root(hutch, tmp, image_from):
    name = f"hutch-outside-{random.randrange(1 << 30)}"
    outside = Path("/tmp") / name
    outside.mkdir()
    try:
        def plant(d):
            (d / "tmp" / name).mkdir()
            os.symlink("../" * 12 + f"tmp/{name}", d / "data")

        img = image_from("trap-rel", plant)
        src = tmp / "src"
        src.mkdir()
        (src / "from-src").write_text("src\n")
        out = hutch("run", "--rm", "-v", f"{src}:/data", img, "sh", "-c",
                    f"ls /tmp/{name}; touch /data/written").stdout
        assert out.split() == ["from-src"]
        assert os.listdir(outside) == []
        assert (src / "written").exists()
    finally:
        shutil.rmtree(outside)


def test_tmpfs_target_symlink_stays_in_root(hutch, tmp, image_from):
    name = f"hutch-outside-{random.randrange(1 << 30)}"
    outside = Path("/tmp") / name
    outside.mkdir()
    (outside / "keep").write_text("host\n")
    try:
        def plant(d):
            (d / "tmp" / name).mkdir()
            os.symlink("../" * 12 + f"tmp/{name}", d / "scratch")

        img = image_from("trap-tmpfs", plant)
        out = hutch("run", "--rm", "--tmpfs", "/scratch", img, "sh", "-c",
                    "ls -A /scratch; echo x > /scratch/new; echo done").stdout
        assert out == "done\n"
        assert sorted(os.listdir(outside)) == ["keep"]
        mi = Path("/proc/self/mountinfo").read_text()
        assert str(outside) not in mi
    finally:
        shutil.rmtree(outside)


# ------------------------------------------------------------------ propagation


def _propagation(path):
    """findmnt's PROPAGATION of the mount holding path: "private", "shared",
    "private,slave", "shared,slave"."""
    return subprocess.run(["findmnt", "-n", "-o", "PROPAGATION", "-T", str(path)],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def shared_tmpfs(tmp):
    """A tmpfs of the test's own, made shared (root only: rootless cannot mount on
    the host); unmounted with everything that propagated into it."""
    d = tmp / "shared"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "hutch-prop-test", str(d)],
                   check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(d)], check=True)
        yield d
    finally:
        subprocess.run(["umount", "-R", "-l", str(d)], check=False)


def test_bind_propagation_with_the_host(hutch, spawn, tmp, request):
    if os.geteuid() != 0:
        # An unprivileged user cannot make a shared mount on the host; what applies
        # to it is what test_bind_propagation_needs_a_shared_source asserts.
        return test_bind_propagation_needs_a_shared_source(hutch, tmp)
    shared = request.getfixturevalue("shared_tmpfs")
    src = shared / "src"
    (src / "sub").mkdir(parents=True)
    out = tmp / "out"
    out.mkdir()
    # one container, the same source bound with each propagation; it waits for the
    # host to mount below the source, then reports what each bind sees and mounts
    # below its rshared and rslave binds
    script = r"""
grep -E ' /(slave|rslave|rprivate|private|default|shared|rshared) ' /proc/self/mountinfo > /out/mi
touch /out/ready
i=0; while [ ! -e /out/go ] && [ $i -lt 1000 ]; do usleep 10000; i=$((i+1)); done
for b in rslave slave rshared shared rprivate private default; do
    echo "$b=$(cat /$b/sub/marker 2>/dev/null)"
done
mkdir -p /rshared/from-rshared /rslave/from-rslave
mount -t tmpfs c1 /rshared/from-rshared && touch /rshared/from-rshared/m1
mount -t tmpfs c2 /rslave/from-rslave && touch /rslave/from-rslave/m2
"""
    binds = []
    for b in ("rslave", "slave", "rshared", "shared", "rprivate", "private"):
        binds += ["-v", f"{src}:/{b}:{b}"]
    p = spawn("run", "--rm", "--cap-add", "SYS_ADMIN", "-v", f"{out}:/out", *binds,
              "-v", f"{src}:/default", "bb", "sh", "-c", script)
    from conftest import wait_for
    wait_for(lambda: (out / "ready").exists(), what="container ready")
    mi = (out / "mi").read_text()
    tags = {l.split()[4]: l.split(" - ")[0].split()[6:] for l in mi.splitlines()}
    assert any(t.startswith("master:") for t in tags["/rslave"]), mi
    assert any(t.startswith("shared:") for t in tags["/rshared"]), mi
    assert tags["/rprivate"] == [] and tags["/default"] == [], mi
    subprocess.run(["mount", "-t", "tmpfs", "hutch-prop-host", str(src / "sub")], check=True)
    try:
        (src / "sub" / "marker").write_text("host")
        (out / "go").touch()
        stdout, stderr = p.communicate(timeout=30)
        assert p.returncode == 0, stderr
        seen = dict(l.split("=", 1) for l in stdout.decode().split())
        assert seen == {"rslave": "host", "slave": "host", "rshared": "host",
                        "shared": "host", "rprivate": "", "private": "", "default": ""}
        # rshared goes both ways: the container's mount is on the host now (and
        # stays there after it: that is what rshared is for); rslave only receives
        assert (src / "from-rshared" / "m1").exists()
        assert not (src / "from-rslave" / "m2").exists()
    finally:
        subprocess.run(["umount", "-R", "-l", str(src / "sub")], check=False)


def test_bind_propagation_needs_a_shared_source(hutch, tmp):
    # As Docker: rslave needs a source on a shared or slave mount, rshared a shared
    # one. No mount is shared on this host unless a test makes one.
    prop = _propagation(tmp)
    for opt in ("rslave", "slave", "rshared", "shared"):
        cp = hutch("run", "--rm", "-v", f"{tmp}:/data:{opt}", "bb", "true", check=False)
        ok = "shared" in prop.split(",") or (opt.endswith("slave") and "slave" in prop)
        if ok:
            assert cp.returncode == 0, (opt, prop, cp.stderr)
            continue
        assert cp.returncode == 125, (opt, prop, cp.stderr)
        assert f"bind mount source '{tmp}'" in cp.stderr, cp.stderr
        assert f"propagation '{opt}'" in cp.stderr and "mount --make-rshared" in cp.stderr
    for opt in ("rprivate", "private"):
        hutch("run", "--rm", "-v", f"{tmp}:/data:{opt}", "bb", "true")


def test_mount_below_a_shared_bind_is_refused(hutch, tmp):
    # it would propagate to the host and outlive the container
    (tmp / "x").mkdir()
    cp = hutch("run", "--rm", "-v", f"{tmp}:/data:rshared", "--tmpfs", "/data/x", "bb",
               "true", check=False)
    assert cp.returncode == 125
    assert "/data/x" in cp.stderr and "shared bind mount on /data" in cp.stderr
    assert not os.listdir(tmp / "x")


def test_runtime_mounts_on_or_below_a_shared_bind_are_refused(hutch, tmp, request):
    # hutch's own mounts (masked and read-only paths, the /dev nodes) made on or
    # below an rshared bind would propagate to its source on the host and stay
    # there: with -v SRC:/sys/firmware:rshared the mask's tmpfs lands on SRC
    base = request.getfixturevalue("shared_tmpfs") if os.geteuid() == 0 else tmp
    src = base / "src"
    src.mkdir()
    (src / "null").write_text("")
    for dest, source, needle in (
            ("/sys/firmware", src, "hutch's mount on /sys/firmware (a masked path)"),
            ("/proc/sys", src, "hutch's mount on /proc/sys (a read-only path)"),
            ("/proc", src, "hutch's mount on /proc/asound (a masked path)"),
            ("/dev/null", src / "null", "hutch's mount on /dev/null (its /dev nodes)")):
        for opt in ("rshared", "shared"):
            cp = hutch("run", "--rm", "-v", f"{source}:{dest}:{opt}", "bb", "true",
                       check=False)
            assert cp.returncode == 125, (dest, opt, cp.stderr)
            assert cp.stderr.count("\n") == 1, cp.stderr
            assert f"the shared bind mount of {source} on {dest} would take {needle}" in \
                cp.stderr, cp.stderr
            assert "to the host, where it would stay: use rslave" in cp.stderr, cp.stderr
    with open("/proc/self/mountinfo") as f:
        assert str(src) not in f.read()
    assert sorted(os.listdir(src)) == ["null"]
    # rslave lets nothing out: allowed where the source may be a slave's
    if os.geteuid() == 0:
        hutch("run", "--rm", "-v", f"{src}:/sys/firmware:rslave", "bb", "true")


def test_rm_container_overlay_is_volatile(hutch, ctr):
    # --rm: the upper dir is deleted after the run, so the overlay skips syncing
    # it at unmount (no writeback of what the container wrote on its way out);
    # a container that is kept gets a normal overlay.
    def root_line(out):
        return next(l for l in out.splitlines() if l.split()[4] == "/")
    rm = hutch("run", "--rm", "bb", "cat", "/proc/self/mountinfo").stdout
    assert "volatile" in root_line(rm).split(" - ")[1]
    cid = ctr.run("bb", "sleep", "100")
    kept = hutch("exec", cid, "cat", "/proc/self/mountinfo").stdout
    assert "volatile" not in root_line(kept)
