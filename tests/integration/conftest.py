"""Fixtures for hutch's integration tests: the real binary against a throwaway store.

Every call gets `--root STATE` (a session-wide temp dir), so no test ever touches
/var/lib/hutch or /run/hutch. A busybox image "bb" is imported once per session.
After every test an autouse fixture checks that nothing leaked: no mount that
mentions the state root, no container state dir, no staging debris in the image
store and no new cgroup under hutch's cgroup parent.
"""
import os
import random
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BUSYBOX_SCRIPT = REPO / "tests" / "lib" / "make-busybox-rootfs.sh"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _hutch_bin():
    return Path(os.environ.get("HUTCH_BIN") or REPO / "build" / "hutch")


def pytest_sessionstart(session):
    b = _hutch_bin()
    if not b.is_file() or not os.access(b, os.X_OK):
        pytest.exit(
            f"hutch binary not found or not executable at {b}: run `make build/hutch` "
            f"or set HUTCH_BIN", returncode=2)
    # As root the suite tests rootful hutch; as any other user it tests rootless hutch
    # (tests/rootless/run.sh runs it a second time as an unprivileged test user).
    if os.geteuid() == 0:
        _own_network_namespace()


def _own_network_namespace():
    """As root, every stack gets bridge networks (and `run -p` a bridge): the whole
    suite runs in a network namespace of its own (network safety, shared/DESIGN.md),
    with its loopback up. Only the network namespace: the netns files hutch and the
    network tests bind-mount stay in the host's mount namespace."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x40000000) != 0:  # CLONE_NEWNET
        pytest.exit(f"unshare(CLONE_NEWNET): {os.strerror(ctypes.get_errno())}", returncode=2)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # interfaces besides lo, as a host has (--network host tests tell them
    # apart): a veth pair with both ends in this namespace (no dummy module here)
    subprocess.run(["ip", "link", "add", "suite0", "type", "veth", "peer", "name", "suite1"],
                   check=True)


# ---------------------------------------------------------------- helpers


def wait_for(cond, timeout=10.0, interval=0.01, what="condition"):
    """Poll cond() until it returns something truthy; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children_of(p):
            out.append(c)
            todo.append(c)
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def cgroup_v2_mount():
    """Where hutch puts its cgroups: /sys/fs/cgroup on a pure v2 host, else unified."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return Path("/sys/fs/cgroup")
    return Path("/sys/fs/cgroup/unified")


def cgroup_controllers():
    """Controllers the v2 hierarchy hutch uses offers (empty set on none)."""
    try:
        return set((cgroup_v2_mount() / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def hutch_cgroup_parent():
    return cgroup_v2_mount() / "hutch"


def _cgroup_dirs():
    p = hutch_cgroup_parent()
    try:
        return {e.name for e in os.scandir(p) if e.is_dir()}
    except FileNotFoundError:
        return set()


def make_rootfs(dest, marker=None, applets=("sh", "cat", "echo", "ls", "true")):
    """A tiny rootfs: /bin/busybox, a few applet links, and /marker if given."""
    dest = Path(dest)
    (dest / "bin").mkdir(parents=True)
    for d in ("etc", "tmp", "proc", "sys", "dev"):
        (dest / d).mkdir()
    shutil.copy2("/bin/busybox", dest / "bin" / "busybox")
    for a in applets:
        os.symlink("busybox", dest / "bin" / a)
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (dest / "etc" / "group").write_text("root:x:0:\n")
    if marker is not None:
        (dest / "marker").write_text(marker + "\n")
    return dest


# What tests/lib/make-busybox-rootfs.sh chowns, which an unprivileged user cannot do:
# as such a user, tar_dir packs every file as root's (as an image built by root has
# them) except these (paths relative to the rootfs).
UNPRIVILEGED_OWNERS = {"home/app": (1000, 1000)}


def _tar_dir_unprivileged(src, tarball):
    import tarfile

    def owner(ti):
        rel = os.path.normpath(ti.name)
        ti.uid, ti.gid = UNPRIVILEGED_OWNERS.get(rel, (0, 0))
        ti.uname = ti.gname = ""
        return ti

    plain = tarball if tarball.endswith(".tar") else tarball + ".plain"
    with tarfile.open(plain, "w", format=tarfile.GNU_FORMAT) as t:
        for name in sorted(os.listdir(src)):
            t.add(os.path.join(src, name), arcname=name, filter=owner)
    if tarball.endswith(".tar.zst"):
        subprocess.run(["zstd", "-q", "-f", "--rm", "-o", tarball, plain], check=True)
    elif tarball.endswith(".tar.gz"):
        subprocess.run(f"gzip -c '{plain}' > '{tarball}' && rm '{plain}'", shell=True,
                       check=True)
    return tarball


def tar_dir(src, tarball):
    """Pack src as a tarball; compression chosen by the name (.tar, .tar.gz, .tar.zst)."""
    tarball = str(tarball)
    if os.geteuid() != 0:
        return _tar_dir_unprivileged(src, tarball)
    if tarball.endswith(".tar.zst"):
        subprocess.run(f"tar --numeric-owner -C '{src}' -cf - . | zstd -q -f -o '{tarball}'",
                       shell=True, check=True)
    elif tarball.endswith(".tar.gz"):
        subprocess.run(["tar", "--numeric-owner", "-C", str(src), "-czf", tarball, "."],
                       check=True)
    else:
        subprocess.run(["tar", "--numeric-owner", "-C", str(src), "-cf", tarball, "."],
                       check=True)
    return tarball


def tree_snapshot(path):
    """Names, types, modes, sizes, mtimes and link targets of everything under path."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else None
            snap[os.path.relpath(p, path)] = (st.st_mode, st.st_size, st.st_mtime_ns, link)
    return snap


# ---------------------------------------------------------------- session state


class State:
    def __init__(self, base):
        self.base = Path(base)
        self.root = self.base / "root"
        self.work = self.base / "work"
        self.work.mkdir()
        self.bin = str(_hutch_bin())
        self.bb_rootfs = self.base / "bb-rootfs"
        self.bb_tar = self.base / "bb.tar"
        self.bb_layer = None
        self.helpers = None

    def layers(self):
        d = self.root / "images" / "layers"
        return {e.name for e in os.scandir(d) if e.is_dir()} if d.exists() else set()

    def run(self, *args, input=None, check=True, timeout=30, text=True, **kw):
        cmd = [self.bin, "--root", str(self.root), *[str(a) for a in args]]
        try:
            cp = subprocess.run(cmd, input=input, capture_output=True, text=text,
                                timeout=timeout, **kw)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"timed out after {timeout}s: {cmd}\nstdout: {e.stdout!r}\n"
                                 f"stderr: {e.stderr!r}") from None
        if check and cp.returncode != 0:
            raise AssertionError(f"exit {cp.returncode}: {cmd}\nstdout: {cp.stdout!r}\n"
                                 f"stderr: {cp.stderr!r}")
        return cp


@pytest.fixture(scope="session")
def state():
    base = tempfile.mkdtemp(prefix="hutch-it-")
    s = State(base)
    subprocess.run(["sh", str(BUSYBOX_SCRIPT), str(s.bb_rootfs), str(s.bb_tar)], check=True,
                   capture_output=True)
    if os.geteuid() != 0:
        tar_dir(s.bb_rootfs, s.bb_tar)  # with root's ownership, as root would pack it
    before = s.layers()
    s.run("image", "import", s.bb_tar, "bb")
    new = s.layers() - before
    assert len(new) == 1, f"importing bb made layers {new}"
    s.bb_layer = s.root / "images" / "layers" / new.pop()
    yield s
    mounted = [l for l in Path("/proc/self/mountinfo").read_text().splitlines() if base in l]
    if not mounted:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def hutch(state):
    """hutch(*args, input=None, check=True, timeout=30, **subprocess_kwargs)."""
    return state.run


@pytest.fixture
def tmp(state):
    """A fresh scratch dir on the host for one test (removed after)."""
    d = Path(tempfile.mkdtemp(dir=state.work))
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Spawner:
    """Background hutch processes; any still running at teardown are killed by pid."""

    def __init__(self, state):
        self.state = state
        self.procs = []

    def __call__(self, *args, **kw):
        cmd = [self.state.bin, "--root", str(self.state.root), *[str(a) for a in args]]
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(cmd, **kw)
        self.procs.append(p)
        return p

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                # Kill the container's processes first so that hutch itself reaps
                # them and tears the container down; SIGKILL hutch only as a last resort.
                for pid in descendants(p.pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
            try:
                p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def spawn(state):
    sp = Spawner(state)
    yield sp
    sp.cleanup()


@pytest.fixture(scope="session")
def helpers(state):
    """Static C probes (tests/integration/helpers/*.c) built once, to bind-mount :ro."""
    out = state.base / "helpers"
    out.mkdir()
    for src in sorted((HERE / "helpers").glob("*.c")):
        subprocess.run(["gcc", "-static", "-O2", "-o", str(out / src.stem), str(src)],
                       check=True, capture_output=True)
    return out


@pytest.fixture
def image_from(state, hutch, tmp):
    """image_from(name, populate) -> imports a copy of the bb rootfs changed by populate(dir);
    removes the image after the test."""
    made = []

    def make(name, populate=None):
        d = tmp / f"rootfs-{name}"
        shutil.copytree(state.bb_rootfs, d, symlinks=True)
        (d / "unique").write_text(f"{name} {random.random()}\n")
        if populate:
            populate(d)
        tarball = tar_dir(d, tmp / f"{name}.tar")
        hutch("image", "import", tarball, name)
        made.append(name)
        return name

    yield make
    for n in made:
        hutch("image", "rm", n, check=False)


# ---------------------------------------------------------------- leak check


def _foreign(cgdir, root):
    """A populated cgroup none of whose processes is ours: not in a container whose
    overlay lives under our state root, and not descended from a hutch using it.
    (Other hutch users on the machine may run containers while we test.)"""
    try:
        pids = [int(x) for x in (cgdir / "cgroup.procs").read_text().split()]
    except OSError:
        return False
    if not pids:
        return False
    for pid in pids:
        try:
            if root in Path(f"/proc/{pid}/mountinfo").read_text():
                return False
        except OSError:
            pass
        p = pid
        for _ in range(64):
            try:
                cmdline = Path(f"/proc/{p}/cmdline").read_bytes()
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                break
            if root.encode() in cmdline:
                return False
            if ppid <= 1:
                break
            p = ppid
    return True


@pytest.fixture(autouse=True)
def no_leaks(request, state):
    cg_before = _cgroup_dirs()
    parent_before = hutch_cgroup_parent().exists()
    yield
    root = str(state.root)
    problems = []
    # Give hutch processes a test started in the background a moment to finish their
    # teardown (they are waited for by the test or by `spawn`, so this is short).
    def mounts():
        return [l for l in Path("/proc/self/mountinfo").read_text().splitlines() if root in l]

    def container_dirs():
        out = []
        for d in (state.root / "containers",):
            if d.exists():
                out += [str(d / n) for n in os.listdir(d)]
        return out

    def staging():
        d = state.root / "images" / "tmp"
        return [str(d / n) for n in os.listdir(d)] if d.exists() else []

    def cgroups():
        new = _cgroup_dirs() - cg_before
        return sorted(n for n in new if not _foreign(hutch_cgroup_parent() / n, root))

    def parent_cgroup():
        """The shared hutch/ parent goes with the last container: it may stay only if
        it was there before or holds a cgroup that is not ours."""
        p = hutch_cgroup_parent()
        if parent_before or not p.exists():
            return []
        held = _cgroup_dirs()
        if any(_foreign(p / n, root) or n in cg_before for n in held):
            return []
        return [str(p)]

    deadline = time.monotonic() + 2.0
    while True:
        found = {"mounts": mounts(), "container dirs": container_dirs(),
                 "store staging": staging(), "cgroups": cgroups(),
                 "cgroup parent": parent_cgroup()}
        if not any(found.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    for k, v in found.items():
        if v:
            problems.append(f"leaked {k}: {v}")
    assert not problems, "; ".join(problems)


# ---------------------------------------------------------------- detached containers


class Containers:
    """Containers a test leaves behind on purpose (`run -d`, or `run` without --rm):
    each is `hutch rm -f`-ed at teardown, before the leak check runs."""

    def __init__(self, state):
        self.state = state
        self.refs = []

    def run(self, *args, name=None, check=True, **kw):
        """`hutch run -d [--name NAME] ARGS...` -> the 64-hex id it printed."""
        flags = ["--name", name] if name else []
        cp = self.state.run("run", "-d", *flags, *args, check=False, **kw)
        if name:
            self.refs.append(name)
        if cp.returncode == 0:
            cid = cp.stdout.strip()
            self.refs.append(cid)
            return cid
        if check:
            raise AssertionError(f"run -d {list(args)}: exit {cp.returncode}\n"
                                 f"stdout: {cp.stdout!r}\nstderr: {cp.stderr!r}")
        return cp

    def keep(self, ref):
        """Remove ref (a name or id made some other way) at teardown too."""
        self.refs.append(ref)
        return ref

    def inspect(self, ref):
        import json
        return json.loads(self.state.run("inspect", ref).stdout)[0]

    def status(self, ref):
        return self.inspect(ref)["status"]

    def wait_exited(self, ref, timeout=10):
        wait_for(lambda: self.status(ref) == "exited", timeout=timeout,
                 what=f"container {ref} to exit")
        return self.inspect(ref)

    def cleanup(self):
        for ref in reversed(self.refs):
            self.state.run("rm", "-f", ref, check=False)


@pytest.fixture
def ctr(state):
    """ctr.run(*run_args, name=None) -> id of a detached container; all removed after."""
    c = Containers(state)
    yield c
    c.cleanup()


@pytest.fixture(scope="session")
def probes(state):
    """tests/integration/escapes/*.c built once: escprobe and exewriter (static, to
    bind-mount :ro at /probe) and preload_attack.so (for test_escapes.py)."""
    src = HERE / "escapes"
    out = state.base / "escprobes"
    out.mkdir()
    for name in ("escprobe", "exewriter"):
        subprocess.run(["gcc", "-static", "-O2", "-o", str(out / name), str(src / f"{name}.c")],
                       check=True, capture_output=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(out / "preload_attack.so"),
                    str(src / "preload_attack.c")], check=True, capture_output=True)
    for f in out.iterdir():
        f.chmod(0o755)
    return out
