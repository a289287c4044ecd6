"""hutch-oci with containerd as its engine: Debian's containerd, started by the test
with its own root, state, socket and runtime dirs under a temporary directory and
stopped after, an image hutch saved imported with `ctr image import` (no pull), and
`ctr run --runc-binary hutch-oci`, `ctr task exec`, `kill`, `delete`. containerd's
default network setup for ctr is a network namespace of the container's own with
only lo: nothing is made on the host's network.

containerd needs root (rootless containerd runs under rootlesskit, which Debian's
package does not bring): as any other user the test checks that hutch-oci is what
ctr would run, through the same commands' failure, and says so."""
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import cgroup_v2_mount, wait_for

ROOTLESS = os.geteuid() != 0
NS = "hutchtest"
# containerd 1.6 puts its shims' sockets here whatever its config says
SHIM_SOCKETS = Path("/run/containerd")


class Containerd:
    def __init__(self, base, oci_bin):
        self.base = base
        self.sock = base / "c.sock"
        self.runc_root = base / "runc"
        self.fifo = base / "fifo"
        self.oci_bin = oci_bin
        self.proc = None
        self.log = None

    def start(self):
        cfg = self.base / "config.toml"
        cfg.write_text(f"""version = 2
root = "{self.base}/root"
state = "{self.base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{self.base}/opt"
""")
        self.log = open(self.base / "containerd.log", "w")
        self.proc = subprocess.Popen(["containerd", "--config", str(cfg)], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self.ctr("version", check=False).returncode == 0, timeout=30,
                 what="containerd serving")

    def ctr(self, *args, check=True, timeout=60, **kw):
        cmd = ["ctr", "--address", str(self.sock), "-n", NS, *[str(a) for a in args]]
        kw.setdefault("capture_output", True)
        cp = subprocess.run(cmd, text=True, timeout=timeout, **kw)
        if check and cp.returncode != 0:
            raise AssertionError(f"exit {cp.returncode}: {cmd}\n{cp.stdout}\n{cp.stderr}\n"
                                 f"{(self.base / 'containerd.log').read_text()[-3000:]}")
        return cp

    def runtime(self):
        return ["--runc-binary", self.oci_bin, "--runc-root", self.runc_root,
                "--fifo-dir", self.fifo]

    def ours(self):
        """The processes of this containerd (its shims name our socket)."""
        pids = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if str(self.sock).encode() in cmd or str(self.base).encode() + b"/" in cmd:
                pids.append(int(d.name))
        return pids

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.ours():  # a shim left by a failed test
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.log:
            self.log.close()
        # the snapshotter's and tasks' mounts, innermost first
        mounts = [l.split()[4] for l in Path("/proc/self/mountinfo").read_text().splitlines()
                  if l.split()[4].startswith(str(self.base) + "/")]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)


@pytest.fixture
def containerd(state, tmp):
    # a short path: unix socket addresses are at most 107 bytes
    base = Path(tempfile.mkdtemp(prefix="hc-", dir="/tmp"))
    os.symlink(os.path.abspath(state.bin), tmp / "hutch-oci")
    made = [d for d in (SHIM_SOCKETS, *(SHIM_SOCKETS / n for n in ("s", "fifo", "runc")))
            if not d.exists()]
    # the parent of the containers' cgroups (/NAMESPACE/ID), when this test makes it
    cg_parent = cgroup_v2_mount() / NS
    made_cg = not cg_parent.exists()
    c = Containerd(base, str(tmp / "hutch-oci"))
    try:
        if not ROOTLESS:
            c.start()
        yield c
    finally:
        c.stop()
        subprocess.run(["rm", "-rf", str(base)], capture_output=True)
        if made_cg:
            try:
                cg_parent.rmdir()
            except OSError:
                pass
        # only what this test made, and only when empty (the parent last)
        for d in sorted(made, key=lambda p: len(str(p)), reverse=True):
            try:
                d.rmdir()
            except OSError:
                pass


def test_containerd_runs_with_hutch_oci(containerd, state, tmp):
    c = containerd
    if ROOTLESS:
        # containerd itself refuses to run as an unprivileged user: nothing of hutch's
        # to check here beyond that it is not what fails
        cp = subprocess.run(["containerd", "--config", "/dev/null", "--root", str(c.base / "r"),
                             "--state", str(c.base / "s"), "--address", str(c.sock)],
                            capture_output=True, text=True, timeout=30)
        assert cp.returncode != 0
        return
    archive = tmp / "bb-oci.tar"
    state.run("image", "save", "-o", archive, "bb", timeout=60)
    c.ctr("image", "import", "--index-name", "localhost/bb:oci", archive)
    image = "localhost/bb:oci"
    # --rm: create, start, wait, delete through the shim; the container's exit code
    cp = c.ctr("run", *c.runtime(), "--rm", image, "r1", "sh", "-c",
               "echo hello; cat /proc/self/cgroup; exit 3", check=False)
    assert cp.returncode == 3, cp.stderr
    assert cp.stdout.splitlines()[0] == "hello", cp.stdout
    # the cgroup containerd names (cgroupsPath /NAMESPACE/ID), made by hutch in
    # cgroup v2 (runc here would use the v1 hierarchies)
    assert f"0::/{NS}/r1" in cp.stdout.splitlines(), cp.stdout
    assert c.ctr("container", "ls", "-q").stdout.strip() == ""

    # detached, with containerd's cpu shares (cgroup v2's weight where it has cpu)
    c.ctr("run", *c.runtime(), "-d", "--cpu-shares", "512", image, "d1", "sleep", "60")
    tasks = c.ctr("task", "ls").stdout
    assert "d1" in tasks and "RUNNING" in tasks, tasks
    st = json.loads(subprocess.run([c.oci_bin, "--root", c.runc_root / NS, "state", "d1"],
                                   capture_output=True, text=True, check=True).stdout)
    assert st["status"] == "running" and st["id"] == "d1"
    cp = c.ctr("task", "exec", "--fifo-dir", c.fifo, "--exec-id", "e1", "d1", "sh", "-c", "echo in-exec; exit 4",
               check=False)
    assert cp.returncode == 4 and cp.stdout == "in-exec\n", cp.stderr
    c.ctr("task", "kill", "-s", "KILL", "d1")
    wait_for(lambda: "STOPPED" in c.ctr("task", "ls").stdout, timeout=20, what="d1 stopped")
    c.ctr("task", "delete", "d1")
    c.ctr("container", "rm", "d1")
    assert not (c.runc_root / NS / "d1").exists()
    assert c.ctr("task", "ls", "-q").stdout.strip() == ""
