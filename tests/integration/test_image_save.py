"""hutch image save: stored images as an OCI image layout tar or a `docker save`
archive, with their configs and layers as stored (same image id, same diff_ids),
read back by hutch's own import, by skopeo and by podman load.

Root and rootless alike (tests/rootless/run.sh -k image_save): rootless, the
layers' files belong to subordinate ids and are read in a user namespace.
"""
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

import pytest

ROOTLESS = os.geteuid() != 0


@pytest.fixture
def app(hutch, tmp):
    """A built image of three layers on bb: a RUN that writes and deletes (a
    whiteout), a COPY with an owner and mode, and a WORKDIR."""
    ctx = tmp / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text(
        "FROM bb\n"
        "RUN echo made > /made && rm /etc/group\n"
        "COPY --chown=1000:1000 --chmod=640 data.txt /srv/data.txt\n"
        "WORKDIR /srv\n"
        'CMD ["cat", "/made"]\n')
    (ctx / "data.txt").write_text("some data\n" * 1000)
    hutch("build", "-t", "save-app", ctx, timeout=120)
    yield "save-app"
    hutch("image", "rm", "save-app", check=False)


def inspect(hutch, ref, root=None):
    return json.loads(hutch("image", "inspect", ref).stdout)[0]


def other_root(state, tmp):
    """hutch on a store of its own (a second machine, as far as images go)."""
    root = tmp / "other-root"

    def run(*args, check=True, timeout=60):
        cp = subprocess.run([state.bin, "--root", str(root), *map(str, args)],
                            capture_output=True, text=True, timeout=timeout)
        if check and cp.returncode:
            raise AssertionError(f"{args}: exit {cp.returncode}\n{cp.stdout}\n{cp.stderr}")
        return cp
    return run


def members(path):
    with tarfile.open(path) as t:
        return {m.name: (t.extractfile(m).read() if m.isfile() else None)
                for m in t.getmembers()}


def test_oci_archive_layout_and_round_trip(hutch, state, tmp, app):
    img = inspect(hutch, app)
    out = tmp / "app.tar"
    hutch("image", "save", "-o", out, app)
    files = members(out)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    [desc] = index["manifests"]
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == \
        "docker.io/library/save-app:latest"
    manifest = files["blobs/sha256/" + desc["digest"][7:]]
    assert hashlib.sha256(manifest).hexdigest() == desc["digest"][7:]
    manifest = json.loads(manifest)
    # the config as stored: its digest is the image id
    config = files["blobs/sha256/" + manifest["config"]["digest"][7:]]
    assert hashlib.sha256(config).hexdigest() == img["id"][7:]
    # each layer an uncompressed tar whose sha256 is its diff_id
    assert [l["digest"] for l in manifest["layers"]] == img["diff_ids"]
    for l in manifest["layers"]:
        blob = files["blobs/sha256/" + l["digest"][7:]]
        assert l["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
        assert len(blob) == l["size"]
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == l["digest"]

    # hutch's own import, on another store: the same image, and it runs
    other = other_root(state, tmp)
    cp = other("image", "import", out)
    assert cp.stdout.strip() == img["id"]
    assert other("run", "--rm", app).stdout == "made\n"
    res = other("run", "--rm", app, "sh", "-c",
                "test -e /etc/group && echo still; pwd; stat -c '%u:%g %a' data.txt").stdout
    assert res == "/srv\n1000:1000 640\n"
    # layers stored by an import (not a build) are given back the same way
    again = tmp / "again.tar"
    other("image", "save", "-o", again, app)
    assert members(again) == files
    other("image", "rm", app)

    # the same bytes to stdout
    cp = subprocess.run([state.bin, "--root", str(state.root), "image", "save", app],
                        capture_output=True, timeout=60)
    assert cp.returncode == 0 and cp.stdout == out.read_bytes()


def test_docker_archive_round_trip(hutch, state, tmp, app):
    img = inspect(hutch, app)
    out = tmp / "app-docker.tar"
    hutch("image", "save", "--format", "docker", "-o", out, app, "bb")
    files = members(out)
    manifest = json.loads(files["manifest.json"])
    assert len(manifest) == 2
    entry = next(e for e in manifest if e["RepoTags"] == ["save-app:latest"])
    config = files[entry["Config"]]
    assert hashlib.sha256(config).hexdigest() == img["id"][7:]
    assert ["sha256:" + hashlib.sha256(files[p]).hexdigest() for p in entry["Layers"]] == \
        img["diff_ids"]
    repos = json.loads(files["repositories"])
    assert set(repos) == {"save-app", "bb"} and "latest" in repos["save-app"]
    # bb's layer is app's first one: written once
    assert sum(1 for n in files if n.endswith("/layer.tar")) == len(img["diff_ids"])
    other = other_root(state, tmp)
    cp = other("image", "import", "--ref", "save-app:latest", out)
    assert cp.stdout.strip() == img["id"]
    assert other("run", "--rm", app).stdout == "made\n"


def test_skopeo_reads_both_forms(hutch, tmp, app):
    assert shutil.which("skopeo"), "skopeo missing: `make deps` installs it"
    img = inspect(hutch, app)
    oci, docker = tmp / "a.tar", tmp / "d.tar"
    hutch("image", "save", "-o", oci, app)
    hutch("image", "save", "--format", "docker", "-o", docker, app)
    for ref in (f"oci-archive:{oci}", f"docker-archive:{docker}"):
        cp = subprocess.run(["skopeo", "inspect", ref], capture_output=True, text=True,
                            timeout=60)
        assert cp.returncode == 0, cp.stderr
        assert json.loads(cp.stdout)["Layers"] == img["diff_ids"]
        cp = subprocess.run(["skopeo", "inspect", "--config", "--raw", ref],
                            capture_output=True, timeout=60)
        assert cp.returncode == 0, cp.stderr
        assert "sha256:" + hashlib.sha256(cp.stdout).hexdigest() == img["id"]
    # skopeo copies it (reading every blob, checking every digest)
    cp = subprocess.run(["skopeo", "copy", f"oci-archive:{oci}", f"oci:{tmp / 'copy'}:x"],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr


def test_podman_loads_both_forms(hutch, tmp, app, monkeypatch):
    assert shutil.which("podman"), "podman missing: `make deps` installs it"
    img = inspect(hutch, app)
    # rootless podman wants a run root of at most 50 characters
    short = tempfile.mkdtemp(prefix="hs-", dir="/tmp")
    podman = ["podman", "--root", str(tmp / "p"), "--runroot", f"{short}/run",
              "--storage-driver", "vfs"]
    if ROOTLESS:  # podman's own rootless mode: its runtime dir in the test's
        os.mkdir(f"{short}/xdg", 0o700)
        monkeypatch.setenv("XDG_RUNTIME_DIR", f"{short}/xdg")
    try:
        for fmt in ("oci", "docker"):
            out = tmp / f"{fmt}.tar"
            hutch("image", "save", "--format", fmt, "-o", out, app)
            cp = subprocess.run(podman + ["load", "-i", str(out)], capture_output=True,
                                text=True, timeout=120)
            assert cp.returncode == 0, cp.stderr
            assert "save-app:latest" in cp.stdout
            cp = subprocess.run(podman + ["image", "inspect", "save-app"], capture_output=True,
                                text=True, timeout=60)
            pi = json.loads(cp.stdout)[0]
            assert "sha256:" + pi["Id"] == img["id"]
            assert pi["RootFS"]["Layers"] == img["diff_ids"]
            subprocess.run(podman + ["rmi", "-a", "-f"], capture_output=True, timeout=60)
    finally:
        # its files belong to subordinate ids when rootless: removed by podman
        subprocess.run(podman + ["unshare", "rm", "-rf", str(tmp / "p"), f"{short}/run"]
                       if ROOTLESS else podman + ["system", "reset", "-f"],
                       capture_output=True, timeout=60)
        # rootless podman leaves a pause process holding its namespaces: ours goes
        try:
            os.kill(int(open(f"{short}/xdg/libpod/tmp/pause.pid").read()), 9)
        except (OSError, ValueError):
            pass
        shutil.rmtree(short, ignore_errors=True)


def test_bad_input_leaves_nothing(hutch, state, tmp, app):
    out = tmp / "x.tar"
    cp = hutch("image", "save", "-o", out, "no-such-image", check=False)
    assert cp.returncode != 0 and "no-such-image" in cp.stderr
    cp = hutch("image", "save", "-o", tmp / "missing" / "x.tar", app, check=False)
    assert cp.returncode != 0 and "missing/x.tar" in cp.stderr
    cp = hutch("image", "save", "-o", tmp, app, check=False)
    assert cp.returncode != 0 and "is a directory" in cp.stderr
    cp = hutch("image", "save", "--format", "zip", "-o", out, app, check=False)
    assert cp.returncode != 0 and "'zip'" in cp.stderr
    # one unknown image among good ones: nothing written
    cp = hutch("image", "save", "-o", out, app, "no-such-image", check=False)
    assert cp.returncode != 0
    assert sorted(os.listdir(tmp)) == ["ctx"]


def test_changed_layer_is_refused_and_old_file_kept(state, tmp):
    """A layer whose files no longer give its diff_id is not saved as if it did;
    the file already at -o stays as it was, and no temp file is left."""
    other = other_root(state, tmp)
    other("image", "import", state.bb_tar, "bb")
    ctx = tmp / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text("FROM bb\nCOPY f /f\n")
    (ctx / "f").write_text("original\n")
    other("build", "-t", "tampered", ctx, timeout=120)
    out = tmp / "out" / "t.tar"
    out.parent.mkdir()
    out.write_text("previous content")
    top = json.loads(other("image", "inspect", "tampered").stdout)[0]["layers"][-1]
    layer_file = tmp / "other-root" / "images" / "layers" / top[7:] / "f"
    layer_file.write_text("changed!!\n")
    cp = other("image", "save", "-o", out, "tampered", check=False)
    assert cp.returncode != 0
    assert "digest" in cp.stderr and top[7:19] in cp.stderr, cp.stderr
    assert out.read_text() == "previous content"
    assert os.listdir(out.parent) == ["t.tar"]
