"""Helpers for the hutch-oci tests: a link named hutch-oci to the binary under test,
bundles made from the busybox rootfs and `hutch-oci spec` (rootless: a user namespace
mapping the caller to root), edited per test, and the runtime's verbs run against them.
A test file takes the `oci` fixture with `from ociutil import oci  # noqa: F401`."""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import wait_for

ROOTLESS = os.geteuid() != 0


@pytest.fixture
def oci(state, tmp):
    o = Oci(state, tmp)
    yield o
    o.cleanup()


class Oci:
    def __init__(self, state, tmp):
        # hutch reads its name: a link named hutch-oci to the binary under test
        # (build/hutch-oci is one; HUTCH_BIN may be elsewhere)
        (tmp / "bin").mkdir()
        os.symlink(os.path.abspath(state.bin), tmp / "bin" / "hutch-oci")
        self.bin = str(tmp / "bin" / "hutch-oci")
        self.root = tmp / "oci-state"
        self.tmp = tmp
        self.bb = state.bb_rootfs
        self.made = []

    def run(self, *args, check=True, timeout=30, glob=(), **kw):
        cmd = [self.bin, "--root", str(self.root), *glob, *[str(a) for a in args]]
        kw.setdefault("capture_output", True)
        cp = subprocess.run(cmd, text=True, timeout=timeout, **kw)
        if check and cp.returncode != 0:
            raise AssertionError(f"exit {cp.returncode}: {cmd}\n{cp.stdout}\n{cp.stderr}")
        return cp

    def bundle(self, name="b", args=("true",), edit=None):
        b = self.tmp / name
        b.mkdir()
        shutil.copytree(self.bb, b / "rootfs", symlinks=True)
        spec = ["spec", "--bundle", b] + (["--rootless"] if ROOTLESS else [])
        self.run(*spec)
        cfg = json.loads((b / "config.json").read_text())
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = list(args)
        cfg["root"]["readonly"] = False
        if edit:
            edit(cfg)
        (b / "config.json").write_text(json.dumps(cfg))
        return b

    def run_to_files(self, *args, out=None, **kw):
        """A command whose stdio the container keeps (create, run, exec --detach): to
        files, since a pipe would stay open as long as the container runs."""
        err = self.tmp / f"stderr-{len(self.made)}-{time.monotonic_ns()}"
        with open(out or os.devnull, "w") as o, open(err, "w") as e:
            cp = self.run(*args, stdout=o, stderr=e, capture_output=False, **kw)
        cp.stderr = err.read_text()
        return cp

    def create(self, cid, bundle, out=None, **kw):
        self.made.append(cid)
        return self.run_to_files("create", "--bundle", bundle, cid, out=out, **kw)

    def state(self, cid):
        return json.loads(self.run("state", cid).stdout)

    def wait_status(self, cid, status):
        return wait_for(lambda: self.state(cid)["status"] == status, timeout=10,
                        what=f"{cid} {status}")

    def cleanup(self):
        for cid in self.made:
            self.run("delete", "--force", cid, check=False)


def read_until(fd, done, timeout=10):
    """What fd (a pty's master) gives until done(data) holds, it ends or timeout
    seconds have passed; fd is closed after."""
    data = b""
    deadline = time.monotonic() + timeout
    while not done(data) and time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    os.close(fd)
    return data
