"""Importing images made by other tools: OCI image layouts (a directory, or a
tar of one, plain or compressed) and `docker save` archives, end to end with
the real binary.

The test image is built with umoci on busybox: a first layer with a rootfs
(umoci unpack/repack), a second where umoci deletes files (its whiteouts), and
a third added verbatim with an opaque directory, ownership and modes. skopeo
turns it into a docker archive and an OCI archive. Each form is imported and
run: whiteouts must have taken effect, the opaque dir must show only the new
content, owners and modes must survive, and the same layers must be stored once.
"""
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

@pytest.fixture(autouse=True)
def _tools():
    missing = [t for t in ("umoci", "skopeo") if not shutil.which(t)]
    assert not missing, f"{', '.join(missing)} missing: `make deps` installs them"

ROOTLESS = os.geteuid() != 0
CHECK = ("cat /file; test -e /gone && echo GONE-STILL-THERE; "
         "echo dir: $(ls -A /dir); ls /dir/sub 2>/dev/null && echo SUB-STILL-THERE; "
         "cat /dir/new; cat /keep; stat -c '%u:%g %a' /owned; stat -c '%a' /suid; "
         "echo $MARKER")
EXPECTED = ["hello from layer one", "dir: new", "new content", "kept", "1234:5678 640", "4755",
            "oci-import-marker"]


def _run(*cmd, **kw):
    cp = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if cp.returncode != 0:
        raise AssertionError(f"{cmd}: exit {cp.returncode}\n{cp.stdout}\n{cp.stderr}")
    return cp


def _sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def _third_layer(path):
    """Verbatim: an opaque dir with new content, and explicit owners and modes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        def add(name, data=None, mode=0o644, uid=0, gid=0, kind=tarfile.REGTYPE):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = kind, mode, uid, gid, 1700000000
            if data is not None:
                ti.size = len(data)
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
        add("dir", mode=0o755, kind=tarfile.DIRTYPE)
        add("dir/.wh..wh..opq", b"")
        add("dir/new", b"new content\n")
        add("owned", b"owned\n", mode=0o640, uid=1234, gid=5678)
        add("suid", b"#!/bin/sh\n", mode=0o4755)
    path.write_bytes(buf.getvalue())


def _add_multiplatform(layout):
    """index.json gains "multi": an index of the v3 image as linux/amd64 and a
    copy of it marked arm64, as a multi-arch image would list them."""
    index = json.loads((layout / "index.json").read_text())
    by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m
              for m in index["manifests"]}
    entries = []
    for tag, plat in (("v3", {"os": "linux", "architecture": "amd64"}),
                      ("arm", {"os": "linux", "architecture": "arm64", "variant": "v8"})):
        m = by_tag[tag]
        entries.append({"mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"],
                        "platform": plat})
    inner = json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": entries}).encode()
    d = _sha256(inner)
    (layout / "blobs" / "sha256" / d[7:]).write_bytes(inner)
    index["manifests"].append({
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": len(inner),
        "annotations": {"org.opencontainers.image.ref.name": "multi"}})
    (layout / "index.json").write_text(json.dumps(index))


class Built:
    pass


@pytest.fixture(scope="module")
def built(state):
    """The umoci layout L (tags base, v2, v3, arm, multi) and skopeo's archives of v3."""
    b = Built()
    work = state.base / "oci-import"
    work.mkdir()
    L, bundle = work / "layout", work / "bundle"
    rootless = ["--rootless"] if ROOTLESS else []
    _run("umoci", "init", "--layout", L)
    _run("umoci", "new", "--image", f"{L}:base")
    _run("umoci", "unpack", *rootless, "--image", f"{L}:base", bundle)
    rootfs = bundle / "rootfs"
    shutil.copytree(state.bb_rootfs, rootfs, symlinks=True, dirs_exist_ok=True)
    (rootfs / "file").write_text("hello from layer one\n")
    (rootfs / "gone").write_text("doomed\n")
    (rootfs / "keep").write_text("kept\n")
    (rootfs / "dir" / "sub").mkdir(parents=True)
    (rootfs / "dir" / "old1").write_text("old\n")
    (rootfs / "dir" / "sub" / "old2").write_text("old\n")
    _run("umoci", "repack", "--image", f"{L}:base", bundle)
    shutil.rmtree(bundle)
    # umoci's own whiteouts: a deleted file
    _run("umoci", "unpack", *rootless, "--image", f"{L}:base", bundle)
    (bundle / "rootfs" / "gone").unlink()
    _run("umoci", "repack", "--image", f"{L}:v2", bundle)
    shutil.rmtree(bundle)
    layer3 = work / "layer3.tar"
    _third_layer(layer3)
    _run("umoci", "raw", "add-layer", "--image", f"{L}:v2", "--tag", "v3", layer3)
    _run("umoci", "config", "--image", f"{L}:v3", "--config.env", "MARKER=oci-import-marker",
         "--config.cmd", "/bin/sh")
    _run("umoci", "config", "--image", f"{L}:v3", "--tag", "arm", "--architecture", "arm64")
    _add_multiplatform(L)
    b.layout = L
    b.docker = work / "docker.tar"
    _run("skopeo", "copy", f"oci:{L}:v3", f"docker-archive:{b.docker}:oci-test:1.0")
    b.oci_tar = work / "oci.tar"
    _run("skopeo", "copy", f"oci:{L}:v3", f"oci-archive:{b.oci_tar}:example.com/oci-test:v3")
    b.oci_gz = work / "oci.tar.gz"
    _run("sh", "-c", f"gzip -c '{b.oci_tar}' > '{b.oci_gz}'")
    b.docker_zst = work / "docker.tar.zst"
    _run("zstd", "-q", "-o", b.docker_zst, b.docker)
    yield b


# The names skopeo's archives carry (the store adds them next to a NAME given).
ARCHIVE_NAMES = ("oci-test:1.0", "example.com/oci-test:v3")


def _rm(hutch, *names):
    for n in names + ARCHIVE_NAMES:
        hutch("image", "rm", n, check=False)


def _names(hutch):
    return {i["name"] for i in json.loads(hutch("image", "ls", "--format", "json").stdout)}


def _check_container(hutch, name):
    out = hutch("run", "--rm", name, "sh", "-c", CHECK).stdout.splitlines()
    assert out == EXPECTED, out


@pytest.mark.parametrize("form", ["layout", "oci_tar", "oci_gz", "docker", "docker_zst"])
def test_import_and_run(hutch, state, built, form):
    src = {"layout": built.layout, "oci_tar": built.oci_tar, "oci_gz": built.oci_gz,
           "docker": built.docker, "docker_zst": built.docker_zst}[form]
    args = ["--ref", "v3"] if form == "layout" else []
    name = f"oci-{form.replace('_', '-')}:t"
    cp = hutch("image", "import", *args, src, name)
    assert cp.stdout.startswith("sha256:")
    try:
        assert name in _names(hutch)
        _check_container(hutch, name)
        info = json.loads(hutch("image", "inspect", name).stdout)[0]
        assert info["architecture"] == "amd64"
        assert len(info["diff_ids"]) == 3
    finally:
        _rm(hutch, name)
    # no temp file of a decompressed archive is left behind
    tmpdir = os.environ.get("TMPDIR", "/tmp")
    assert not [n for n in os.listdir(tmpdir) if n.startswith("hutch-archive-")
                and os.stat(os.path.join(tmpdir, n)).st_uid == os.geteuid()]


def test_layers_shared_between_imports(hutch, state, built):
    before = state.layers()
    id1 = hutch("image", "import", "--ref", "v3", built.layout, "share-a").stdout.strip()
    try:
        new = state.layers() - before
        assert len(new) == 3, new
        # the docker archive holds the same layers uncompressed: same diff_ids,
        # same ChainIDs, nothing unpacked again; and the same config: same id
        id2 = hutch("image", "import", built.docker, "share-b").stdout.strip()
        assert id2 == id1
        assert state.layers() - before == new
        # and once more from the same source
        hutch("image", "import", "--ref", "v3", built.layout, "share-c")
        assert state.layers() - before == new
        # the base image (one layer, the same first layer) shares it too
        hutch("image", "import", "--ref", "base", built.layout, "share-base")
        assert state.layers() - before == new
        _check_container(hutch, "share-b")
    finally:
        _rm(hutch, "share-a", "share-b", "share-c", "share-base")
    assert state.layers() == before


def test_names_from_the_archive(hutch, built):
    # docker archive: its RepoTags (skopeo writes docker.io/library/oci-test:1.0)
    hutch("image", "import", built.docker)
    try:
        assert "oci-test:1.0" in _names(hutch)
    finally:
        _rm(hutch)
    # an OCI archive whose ref.name is a full name
    hutch("image", "import", built.oci_tar)
    try:
        assert "example.com/oci-test:v3" in _names(hutch)
    finally:
        _rm(hutch)
    # a bare tag (as skopeo's oci:DIR:TAG and umoci write): the layout's own
    # name is the repository, and the output says so
    cp = hutch("image", "import", "--ref", "v3", built.layout)
    try:
        assert "layout:v3" in _names(hutch)
        assert "names its image only 'v3': stored as 'layout:v3'" in cp.stderr, cp.stderr
        assert hutch("run", "--rm", "layout:v3", "true").returncode == 0
    finally:
        hutch("image", "rm", "layout:v3", check=False)


def test_layout_with_several_images_needs_a_ref(hutch, built):
    cp = hutch("image", "import", built.layout, "which", check=False)
    assert cp.returncode != 0
    for tag in ("base", "v2", "v3", "multi"):
        assert tag in cp.stderr, cp.stderr
    assert "pick one with --ref" in cp.stderr, cp.stderr
    # skopeo's and umoci's DIR:TAG is not a path: the message says how
    cp = hutch("image", "import", f"{built.layout}:v2", "which", check=False)
    assert cp.returncode == 125
    assert f"image import --ref v2 {built.layout}" in cp.stderr, cp.stderr
    cp = hutch("image", "import", "--ref", "v9", built.layout, "which", check=False)
    assert cp.returncode != 0 and "no image named 'v9'" in cp.stderr
    assert "which:latest" not in _names(hutch)
    # v2: umoci's whiteout of /gone, but no opaque dir yet
    hutch("image", "import", "--ref", "v2", built.layout, "oci-v2")
    try:
        out = hutch("run", "--rm", "oci-v2", "sh", "-c",
                    "test -e /gone || echo gone-ok; ls -A /dir").stdout.split()
        assert out == ["gone-ok", "old1", "sub"]
    finally:
        hutch("image", "rm", "oci-v2")


def test_platform_selection(hutch, built):
    hutch("image", "import", "--ref", "multi", built.layout, "oci-multi")
    try:
        info = json.loads(hutch("image", "inspect", "oci-multi").stdout)[0]
        assert info["architecture"] == "amd64"
        _check_container(hutch, "oci-multi")
    finally:
        hutch("image", "rm", "oci-multi")
    hutch("image", "import", "--platform", "linux/arm64", "--ref", "multi", built.layout,
          "oci-multi-arm")
    try:
        info = json.loads(hutch("image", "inspect", "oci-multi-arm").stdout)[0]
        assert info["architecture"] == "arm64"
    finally:
        hutch("image", "rm", "oci-multi-arm")
    cp = hutch("image", "import", "--platform", "linux/s390x", "--ref", "multi", built.layout,
               "oci-multi-s390x", check=False)
    assert cp.returncode != 0
    assert "linux/amd64, linux/arm64" in cp.stderr and "--platform" in cp.stderr


def _copy_layout(built, tmp):
    dst = tmp / "layout"
    shutil.copytree(built.layout, dst, symlinks=True)
    index = json.loads((dst / "index.json").read_text())
    man = next(m for m in index["manifests"]
               if m["annotations"]["org.opencontainers.image.ref.name"] == "v3")
    manifest = json.loads((dst / "blobs" / "sha256" / man["digest"][7:]).read_bytes())
    return dst, manifest


def test_tampered_layer_refused(hutch, state, built, tmp):
    before = state.layers()
    # a compressed blob of the same size with other bytes: caught by the blob
    # digest (or the decompressor, if it notices first)
    layout, manifest = _copy_layout(built, tmp)
    blob = layout / "blobs" / "sha256" / manifest["layers"][-1]["digest"][7:]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x55
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    cp = hutch("image", "import", "--ref", "v3", layout, "tampered", check=False)
    assert cp.returncode != 0
    assert "digest" in cp.stderr or "corrupt" in cp.stderr, cp.stderr
    # a docker archive's layers are plain tars without blob digests: a changed
    # file content keeps the tar valid, and the diff_id catches it
    data = bytearray(built.docker.read_bytes())
    at = data.find(b"new content\n")
    assert at > 0
    data[at:at + 3] = b"NEW"
    bad = tmp / "bad-docker.tar"
    bad.write_bytes(bytes(data))
    cp = hutch("image", "import", bad, "tampered", check=False)
    assert cp.returncode != 0
    assert "digest" in cp.stderr and "config" in cp.stderr, cp.stderr
    names = _names(hutch)
    assert "tampered:latest" not in names and "oci-test:1.0" not in names
    # nothing is committed unless everything verified
    assert state.layers() == before


def test_blob_symlink_out_of_layout_refused(hutch, built, tmp):
    layout, manifest = _copy_layout(built, tmp)
    blob = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
    outside = tmp / "outside"
    shutil.copy(blob, outside)  # even the right bytes are not taken from outside
    blob.unlink()
    os.symlink(outside, blob)
    cp = hutch("image", "import", "--ref", "v3", layout, "escape", check=False)
    assert cp.returncode != 0
    assert "outside the layout" in cp.stderr, cp.stderr
    assert "escape:latest" not in _names(hutch)


def test_missing_blob_named(hutch, built, tmp):
    layout, manifest = _copy_layout(built, tmp)
    d = manifest["layers"][1]["digest"]
    (layout / "blobs" / "sha256" / d[7:]).unlink()
    cp = hutch("image", "import", "--ref", "v3", layout, "missing", check=False)
    assert cp.returncode != 0
    assert d in cp.stderr and "missing" in cp.stderr, cp.stderr


def test_import_name_with_a_digest_refused(hutch, built):
    digest = "sha256:" + "1" * 64
    cp = hutch("image", "import", built.oci_tar, f"oci-dg@{digest}", check=False)
    assert cp.returncode == 125 and f"oci-dg@{digest}" in cp.stderr, cp.stderr
    assert not [n for n in _names(hutch) if n.startswith("oci-dg")]


def test_unpacked_archives_are_not_taken_for_a_rootfs(hutch, state, built, tmp):
    # `docker save | tar x -C DIR`: the directory is the archive, imported as
    # such (not as a rootfs of manifest.json and layer dirs)
    d = tmp / "docker-dir"
    d.mkdir()
    _run("tar", "-xf", built.docker, "-C", d)
    hutch("image", "import", d, "from-docker-dir")
    try:
        assert "from-docker-dir:latest" in _names(hutch)
        _check_container(hutch, "from-docker-dir")
    finally:
        _rm(hutch, "from-docker-dir")
    # its layers moved into a dir of their own and symlinked from where
    # manifest.json names them: still the archive (its manifest.json says so),
    # the symlinks followed inside it, not a rootfs of the archive's files
    d2 = tmp / "docker-dir-linked"
    shutil.copytree(d, d2, symlinks=True)
    (d2 / "layers").mkdir()
    for layer in json.loads((d2 / "manifest.json").read_text())[0]["Layers"]:
        (d2 / layer).rename(d2 / "layers" / Path(layer).name)
        os.symlink(f"layers/{Path(layer).name}", d2 / layer)
    hutch("image", "import", d2, "from-docker-dir-linked")
    try:
        _check_container(hutch, "from-docker-dir-linked")
        env = hutch("run", "--rm", "from-docker-dir-linked", "env").stdout
        assert "MARKER=oci-import-marker" in env, env
    finally:
        _rm(hutch, "from-docker-dir-linked")
    # a layout that lost its oci-layout file is refused saying so
    layout, _ = _copy_layout(built, tmp)
    (layout / "oci-layout").unlink()
    layers = state.layers()
    cp = hutch("image", "import", "--ref", "v3", layout, "no-oci-layout", check=False)
    assert cp.returncode == 125
    assert f"import '{layout}': not an OCI image layout: 'oci-layout' is missing" in cp.stderr, \
        cp.stderr
    assert "no-oci-layout:latest" not in _names(hutch)
    assert state.layers() == layers
