"""The image store: import (tar, gzip, zstd, directory), ls, rm, bad input."""
import json
import os
import random

import pytest

from conftest import make_rootfs, tar_dir, wait_for


def _names(hutch):
    return [i["name"] for i in json.loads(hutch("image", "ls", "--format", "json").stdout)]


def _unique(tmp, tag):
    marker = f"{tag}-{random.randrange(1 << 40)}"
    return make_rootfs(tmp / f"rootfs-{tag}", marker=marker), marker


@pytest.mark.parametrize("ext", [".tar", ".tar.gz", ".tar.zst"])
def test_import_tarball(hutch, state, tmp, ext):
    rootfs, marker = _unique(tmp, "imp")
    tarball = tar_dir(rootfs, tmp / f"img{ext}")
    layers_before = state.layers()
    cp = hutch("image", "import", tarball, "imp-test")
    assert cp.stdout.startswith("sha256:") and len(cp.stdout.strip()) == 7 + 64
    try:
        assert len(state.layers() - layers_before) == 1
        assert "imp-test:latest" in _names(hutch)
        assert hutch("run", "--rm", "imp-test", "cat", "/marker").stdout == marker + "\n"
        assert hutch("run", "--rm", "imp-test:latest", "sh", "-c", "echo ok").stdout == "ok\n"
    finally:
        hutch("image", "rm", "imp-test")
    assert state.layers() == layers_before


def test_import_name_from_file_name(hutch, tmp):
    rootfs, marker = _unique(tmp, "nm")
    tarball = tar_dir(rootfs, tmp / "MyRootfs.tar.gz")
    hutch("image", "import", tarball)
    try:
        assert "myrootfs:latest" in _names(hutch)
    finally:
        hutch("image", "rm", "myrootfs")


def test_import_directory(hutch, state, tmp):
    rootfs, marker = _unique(tmp, "dir")
    os.symlink("busybox", rootfs / "bin" / "readlink")
    (rootfs / "etc" / "secret").write_text("s\n")
    os.chmod(rootfs / "etc" / "secret", 0o600)
    hutch("image", "import", rootfs, "dir-test:v1")
    try:
        assert "dir-test:v1" in _names(hutch)
        out = hutch("run", "--rm", "dir-test:v1", "sh", "-c",
                    "cat /marker; readlink /bin/readlink; ls -l /etc/secret").stdout
        lines = out.splitlines()
        assert lines[0] == marker
        assert lines[1] == "busybox"
        assert lines[2].startswith("-rw-------")
        # the source directory is untouched by the import
        assert (rootfs / "marker").read_text() == marker + "\n"
    finally:
        hutch("image", "rm", "dir-test:v1")


def test_image_ls_table_and_json(hutch, state):
    out = hutch("image", "ls").stdout.splitlines()
    assert out[0].split()[:3] == ["NAME", "IMAGE", "ID"]
    assert any(l.split()[0] == "bb:latest" for l in out[1:])
    data = json.loads(hutch("image", "ls", "--format", "json").stdout)
    bb = [i for i in data if i["name"] == "bb:latest"]
    assert len(bb) == 1
    assert bb[0]["id"].startswith("sha256:") and len(bb[0]["id"]) == 71
    assert bb[0]["size"] > os.path.getsize("/bin/busybox") * 0.9
    assert isinstance(bb[0]["created"], int)
    assert (state.root / "images" / "configs" / (bb[0]["id"][7:] + ".json")).exists()
    q = hutch("image", "ls", "-q").stdout.split()
    assert bb[0]["id"][7:19] in q
    assert hutch("images").stdout.splitlines()[0].startswith("NAME")


def test_image_rm_removes_layer(hutch, state, tmp):
    rootfs, _ = _unique(tmp, "rm")
    tarball = tar_dir(rootfs, tmp / "rm.tar")
    before = state.layers()
    hutch("image", "import", tarball, "rm-test")
    new = state.layers() - before
    assert len(new) == 1
    cp = hutch("image", "rm", "rm-test")
    assert "rm-test" in cp.stdout
    assert "rm-test:latest" not in _names(hutch)
    assert state.layers() == before
    assert not (state.root / "images" / "layers" / new.pop()).exists()
    cp = hutch("run", "--rm", "rm-test", "true", check=False)
    assert cp.returncode == 125 and "rm-test" in cp.stderr


def test_image_rm_keeps_shared_layer(hutch, state, tmp):
    rootfs, marker = _unique(tmp, "shared")
    tarball = tar_dir(rootfs, tmp / "shared.tar")
    before = state.layers()
    hutch("image", "import", tarball, "share-one")
    hutch("image", "import", tarball, "share-two")
    new = state.layers() - before
    assert len(new) == 1, "the same content is stored once"
    layer = state.root / "images" / "layers" / new.pop()
    hutch("image", "rm", "share-one")
    assert layer.is_dir()
    assert "share-two:latest" in _names(hutch) and "share-one:latest" not in _names(hutch)
    assert hutch("run", "--rm", "share-two", "cat", "/marker").stdout == marker + "\n"
    hutch("image", "rm", "share-two")
    assert not layer.exists()
    assert state.layers() == before


def test_bb_layer_shared_with_gzip_of_same_content(hutch, state, tmp):
    # The layer is keyed by its uncompressed content: the .tar.gz of bb is bb's layer.
    gz = tmp / "bb.tar.gz"
    os.system(f"gzip -c '{state.bb_tar}' > '{gz}'")
    before = state.layers()
    hutch("image", "import", gz, "bb-gz")
    try:
        assert state.layers() == before
    finally:
        hutch("image", "rm", "bb-gz")
    assert state.bb_layer.is_dir()
    assert hutch("run", "--rm", "bb", "true").returncode == 0


@pytest.mark.parametrize("kind", ["random", "empty", "text", "truncated", "text-gz"])
def test_import_garbage_fails_cleanly(hutch, state, tmp, kind):
    f = tmp / f"bad-{kind}.tar"
    if kind == "random":
        f.write_bytes(os.urandom(64 * 1024))
    elif kind == "empty":
        f.write_bytes(b"")
    elif kind == "text":
        f.write_text("this is not a tarball\n" * 100)
    elif kind == "truncated":
        data = state.bb_tar.read_bytes()
        f.write_bytes(data[: len(data) // 2 + 77])
    else:
        f = tmp / "bad.tar.gz"
        f.write_text("hello\n")
    names_before = _names(hutch)
    layers_before = state.layers()
    configs_before = set(os.listdir(state.root / "images" / "configs"))
    cp = hutch("image", "import", f, "garbage", check=False)
    assert cp.returncode != 0
    assert str(f) in cp.stderr
    assert cp.stderr.count("\n") == 1, cp.stderr  # one clear message
    assert os.listdir(state.root / "images" / "tmp") == []
    assert state.layers() == layers_before
    assert set(os.listdir(state.root / "images" / "configs")) == configs_before
    assert _names(hutch) == names_before


def test_import_missing_source(hutch, tmp):
    cp = hutch("image", "import", tmp / "nope.tar", "x", check=False)
    assert cp.returncode != 0
    assert str(tmp / "nope.tar") in cp.stderr


def test_image_rm_unknown(hutch):
    cp = hutch("image", "rm", "no-such-image-qq", check=False)
    assert cp.returncode != 0
    assert "no-such-image-qq" in cp.stderr


def test_image_rm_in_use(hutch, spawn, tmp, state, image_from):
    img = image_from("busy")
    (tmp / "out").mkdir()
    p = spawn("run", "--rm", "-v", f"{tmp}/out:/out", img, "sh", "-c",
              "touch /out/ready; while [ ! -e /out/stop ]; do usleep 10000; done")
    wait_for(lambda: (tmp / "out" / "ready").exists(), what="container running")
    cp = hutch("image", "rm", img, check=False)
    assert cp.returncode != 0
    assert "in use" in cp.stderr and img in cp.stderr
    assert f"{img}:latest" in _names(hutch)
    (tmp / "out" / "stop").write_text("")
    p.communicate(timeout=10)
    assert p.returncode == 0
    before = state.layers()
    hutch("image", "rm", img)
    assert f"{img}:latest" not in _names(hutch)
    assert len(before - state.layers()) == 1


def test_store_survives_abandoned_staging(hutch, state):
    junk = state.root / "images" / "tmp" / "import-abandoned"
    junk.mkdir()
    (junk / "file").write_text("half written")
    hutch("image", "ls")
    assert not junk.exists(), "opening the store removes abandoned staging entries"
