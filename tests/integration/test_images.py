"""The image store: import (tar, gzip, zstd, directory), ls, rm, bad input."""
import json
import os
import random
import time

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


def _host_arch():
    import platform
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386"}.get(m, m)


def test_rootfs_import_has_the_hosts_platform(hutch, state, tmp):
    rootfs, _ = _unique(tmp, "arch")
    hutch("image", "import", tar_dir(rootfs, tmp / "arch.tar"), "arch-test")
    try:
        info = json.loads(hutch("image", "inspect", "arch-test").stdout)[0]
        assert (info["os"], info["architecture"]) == ("linux", _host_arch())
    finally:
        hutch("image", "rm", "arch-test")
    if _host_arch() == "amd64":
        # a host that says it is i686 (setarch: uname's machine), for a label
        # that is not amd64 by chance
        import subprocess
        tarball = tar_dir(rootfs, tmp / "arch32.tar")
        subprocess.run(["setarch", "i686", state.bin, "--root", str(state.root), "image",
                        "import", str(tarball), "arch-test32"], check=True, capture_output=True)
        try:
            info = json.loads(hutch("image", "inspect", "arch-test32").stdout)[0]
            assert info["architecture"] == "386", info
        finally:
            hutch("image", "rm", "arch-test32")


def test_short_names_are_one_name(hutch, state, tmp):
    """As in Docker: busybox == busybox:latest == library/busybox ==
    docker.io/library/busybox:latest, for import, run, tag, inspect and rm; the
    store keeps the full name, `image ls` shows the familiar one."""
    rootfs, marker = _unique(tmp, "short")
    tarball = tar_dir(rootfs, tmp / "short.tar")
    cp = hutch("image", "import", tarball, "hutch-short")
    iid = cp.stdout.strip()
    try:
        refs = json.loads((state.root / "images" / "refs.json").read_text())
        assert refs.get("docker.io/library/hutch-short:latest") == iid[7:]
        assert "hutch-short:latest" in _names(hutch)
        for ref in ("hutch-short", "hutch-short:latest", "library/hutch-short",
                    "docker.io/library/hutch-short", "docker.io/library/hutch-short:latest",
                    "index.docker.io/library/hutch-short:latest"):
            assert hutch("run", "--rm", ref, "cat", "/marker").stdout == marker + "\n", ref
            info = json.loads(hutch("image", "inspect", ref).stdout)[0]
            assert info["id"] == iid and "hutch-short:latest" in info["names"]
        # importing under the full name replaces the same name, not a second one
        iid = hutch("image", "import", tarball,
                    "docker.io/library/hutch-short:latest").stdout.strip()
        assert _names(hutch).count("hutch-short:latest") == 1
        hutch("image", "prune")  # the first import's config, now unnamed
        hutch("image", "tag", "library/hutch-short", "docker.io/team/short:2")
        assert "team/short:2" in _names(hutch)
        assert hutch("run", "--rm", "team/short:2", "cat", "/marker").stdout == marker + "\n"
        cp = hutch("image", "rm", "docker.io/team/short:2")
        assert cp.stdout == "Untagged: team/short:2\n", cp.stdout
        cp = hutch("image", "rm", "hutch-short:latest", check=False)
        assert cp.returncode == 0, cp.stderr
        assert cp.stdout == f"Untagged: hutch-short:latest\nDeleted: {iid}\n", cp.stdout
        assert "hutch-short:latest" not in _names(hutch)
        assert "not found" in hutch("run", "--rm", "hutch-short", "true", check=False).stderr
    finally:
        for n in ("hutch-short", "team/short:2"):
            hutch("image", "rm", n, check=False)


def test_store_of_an_older_hutch_keeps_its_names(state, tmp):
    """refs.json written before names were normalised ("bb:latest"): still found."""
    import subprocess
    root = tmp / "store"

    def h(*args, check=True):
        cp = subprocess.run([state.bin, "--root", str(root), *map(str, args)],
                            capture_output=True, text=True, timeout=30)
        assert not check or cp.returncode == 0, cp.stderr
        return cp

    iid = h("image", "import", state.bb_tar, "old").stdout.strip()[7:]
    refs = root / "images" / "refs.json"
    refs.write_text(json.dumps({"old:latest": iid, "team/x:1": iid}))
    assert sorted(i["name"] for i in json.loads(h("image", "ls", "--format", "json").stdout)) \
        == ["old:latest", "team/x:1"]
    assert h("run", "--rm", "old", "true").returncode == 0
    h("image", "rm", "team/x:1")
    assert json.loads(refs.read_text()) == {"docker.io/library/old:latest": iid}
    h("image", "rm", "old")
    h("image", "prune")


def test_image_without_created_shows_no_date(hutch, tmp):
    from test_hostile_images import Layer, image_config, write_layout
    cfg = image_config([])
    del cfg["created"]
    layer = Layer(open(tmp.parent.parent / "bb.tar", "rb").read())
    cfg["rootfs"]["diff_ids"] = [layer.diff_id]
    layout = write_layout(tmp / "layout", [layer], config=cfg)["dir"]
    hutch("image", "import", layout, "no-created")
    try:
        row = [l for l in hutch("image", "ls").stdout.splitlines()
               if l.startswith("no-created:latest")][0]
        assert "1970" not in row and row.split()[2] == "-", row
        entry = [i for i in json.loads(hutch("image", "ls", "--format", "json").stdout)
                 if i["name"] == "no-created:latest"][0]
        assert entry["created"] is None
    finally:
        hutch("image", "rm", "no-created")


def test_image_rm_says_untagged_and_deleted(hutch, tmp):
    rootfs, _ = _unique(tmp, "rmout")
    iid = hutch("image", "import", tar_dir(rootfs, tmp / "r.tar"), "rm-out:1").stdout.strip()
    hutch("image", "tag", "rm-out:1", "rm-out:2")
    assert hutch("image", "rm", "rm-out:1").stdout == "Untagged: rm-out:1\n"
    assert hutch("image", "rm", "rm-out:2").stdout == f"Untagged: rm-out:2\nDeleted: {iid}\n"


def _plant(path, text="x", age=0):
    path.write_text(text)
    if age:
        t = time.time() - age
        os.utime(path, (t, t))


def test_leftovers_of_killed_writers_are_cleaned(hutch, state, tmp):
    """Temp files of write_file_atomic (NAME.tmp.PID) and a size file without
    its layer, as a writer killed mid-way leaves them: the next command cleans
    them, unless the writer could still be at work (its lock is held)."""
    import fcntl
    im = state.root / "images"
    hexid = "ab" * 32
    planted = [im / "refs.json.tmp.4194300", im / "configs" / f"{hexid}.json.tmp.4194301",
               im / "layers" / f"{hexid}.size.tmp.4194302", im / "layers" / f"{hexid}.size"]
    for p in planted:
        _plant(p, "{}")
    bb_size = state.bb_layer.parent / (state.bb_layer.name + ".size")
    assert bb_size.exists()
    hutch("image", "ls")
    left = [str(p) for p in planted if p.exists()]
    assert not left, f"not cleaned: {left}"
    assert bb_size.exists() and state.bb_layer.is_dir()
    # a layer's files while an import holds that layer's lock: kept
    (im / "locks").mkdir(exist_ok=True)
    with open(im / "locks" / hexid, "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        _plant(planted[2], "1")
        hutch("image", "ls")
        assert planted[2].exists()
    hutch("image", "ls")
    assert not planted[2].exists()
    # nothing at all while a writer holds the store lock
    with open(im / "store.lock", "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        _plant(planted[0])
        hutch("image", "ls")
        assert planted[0].exists()
    hutch("image", "ls")
    assert not planted[0].exists()


def test_layer_size_measured_when_its_size_file_is_missing(hutch, state):
    bb_size = state.bb_layer.parent / (state.bb_layer.name + ".size")
    want = int(bb_size.read_text())
    bb_size.unlink()
    got = [i for i in json.loads(hutch("image", "ls", "--format", "json").stdout)
           if i["name"] == "bb:latest"][0]["size"]
    assert got == want
    assert int(bb_size.read_text()) == want


def test_image_rm_racing_a_run_never_deletes_its_layers(state, hutch, image_from, tmp, spawn):
    """`image rm` checks that no container holds the layers and then removes
    them; a `hutch run` starting in between must not get a root whose lower
    layers are deleted under it. strace slows rm's renames (the refs.json
    update, then the layers) by a second each, so the run lands in that window:
    it either never starts (the layer is gone) or starts and sees its files."""
    import subprocess
    img = image_from("rmrace")
    rm = subprocess.Popen(["strace", "-f", "-b", "execve", "-qq", "-o", "/dev/null",
                           "-e", "trace=rename,renameat,renameat2",
                           "-e", "inject=rename,renameat,renameat2:delay_enter=1000000",
                           state.bin, "--root", str(state.root), "image", "rm", img],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # rm is in its first delayed rename once refs.json's temp file exists
        wait_for(lambda: any(n.startswith("refs.json.tmp.")
                             for n in os.listdir(state.root / "images")) or rm.poll() is not None,
                 timeout=10, interval=0.002, what="rm to update refs.json")
        run = spawn("run", "--rm", img, "sh", "-c", "echo started; sleep 3; cat /unique")
        out, err = run.communicate(timeout=30)
        rm_out, rm_err = rm.communicate(timeout=30)
    finally:
        if rm.poll() is None:
            rm.kill()
            rm.communicate()
    assert rm.returncode == 0, rm_err
    out, err = out.decode(), err.decode()
    if "started" in out:
        assert run.returncode == 0 and out.startswith("started\nrmrace "), (
            f"the container started, then lost its files to `image rm`: {out!r} {err!r}")
    else:
        assert run.returncode != 0 and "rmrace" in err, err
        assert "removed from the store just now" in err or "not found" in err, err


# Every image verb reads its options as the other verbs do: --help prints its
# usage and does nothing else; an unknown option is refused before anything is
# done (a prune or a removal must never run on a typo or a request for help).
@pytest.mark.parametrize("verb", [["image", "import"], ["image", "ls"], ["images"],
                                  ["image", "rm"], ["rmi"], ["image", "tag"],
                                  ["image", "inspect"], ["image", "prune"], ["pull"]])
def test_image_verbs_help_does_nothing(hutch, state, tmp, verb):
    rootfs, _ = _unique(tmp, "help")
    hutch("image", "import", rootfs, "help-test")
    try:
        # an unnamed image that a prune would remove
        hutch("image", "import", rootfs, "help-test")
        before = (sorted(os.listdir(state.root / "images" / "configs")), state.layers(),
                  _names(hutch))
        cp = hutch(*verb, "--help", "help-test")
        assert cp.stdout.startswith("Usage: hutch "), cp.stdout
        assert cp.stderr == "", cp.stderr
        after = (sorted(os.listdir(state.root / "images" / "configs")), state.layers(),
                 _names(hutch))
        assert after == before
    finally:
        hutch("image", "rm", "help-test")
        hutch("image", "prune")


@pytest.mark.parametrize("args", [["image", "rm", "-f", "opt-test"],
                                  ["image", "rm", "opt-test", "--force"],
                                  ["image", "prune", "-a"],
                                  ["image", "prune", "extra"],
                                  ["image", "tag", "-x", "opt-test", "opt2"],
                                  ["image", "ls", "--format", "{{.ID}}"],
                                  ["image", "inspect", "--size", "opt-test"]])
def test_image_verbs_refuse_unknown_options_before_acting(hutch, tmp, args):
    rootfs, _ = _unique(tmp, "opt")
    hutch("image", "import", rootfs, "opt-test")
    try:
        cp = hutch(*args, check=False)
        assert cp.returncode == 125
        assert cp.stdout == "", cp.stdout
        bad = "{{.ID}}" if "{{.ID}}" in args else next(
            a for a in args[2:] if a.startswith("-") or a == "extra")
        assert f"'{bad}'" in cp.stderr, cp.stderr
        assert "opt-test:latest" in _names(hutch)
        assert "opt2:latest" not in _names(hutch)
    finally:
        hutch("image", "rm", "opt-test")


def test_image_options_after_operands_and_in_every_form(hutch):
    a = json.loads(hutch("image", "ls", "--format", "json").stdout)
    assert json.loads(hutch("image", "ls", "--format=json").stdout) == a
    assert json.loads(hutch("images", "--format", "json").stdout) == a
    table = hutch("image", "ls", "--format", "table").stdout
    assert table == hutch("image", "ls").stdout
    assert hutch("image", "ls", "--quiet").stdout == hutch("image", "ls", "-q").stdout


def test_image_inspect_of_a_missing_image_still_prints_json(hutch):
    # as docker: the images found, as a JSON array, and an error for each missing one
    cp = hutch("image", "inspect", "bb", "no-such-image-qq", check=False)
    assert cp.returncode == 125
    out = json.loads(cp.stdout)
    assert len(out) == 1 and "bb:latest" in out[0]["names"]
    assert "no-such-image-qq" in cp.stderr, cp.stderr
    cp = hutch("image", "inspect", "no-such-image-qq", "bb", check=False)
    assert cp.returncode == 125
    assert [i["names"] for i in json.loads(cp.stdout)] == [out[0]["names"]]
    cp = hutch("image", "inspect", "no-such-image-qq", check=False)
    assert cp.returncode == 125 and json.loads(cp.stdout) == []


def test_names_given_to_an_image_cannot_carry_a_digest(hutch, tmp):
    # as docker ("refusing to create a tag with a digest reference"): a digest
    # in a name is the registry's manifest digest, which a tag or an import
    # cannot make true
    digest = "sha256:" + "0" * 64
    rootfs, _ = _unique(tmp, "dg")
    tarball = tar_dir(rootfs, tmp / "dg.tar")
    for args in (["image", "tag", "bb", f"bb-dg@{digest}"],
                 ["image", "tag", "bb", f"bb-dg:1@{digest}"],
                 ["image", "import", tarball, f"dg@{digest}"],
                 ["image", "import", rootfs, f"dg@{digest}"]):
        cp = hutch(*args, check=False)
        assert cp.returncode == 125, args
        assert f"@{digest}" in cp.stderr and "digest" in cp.stderr, cp.stderr
    assert not [n for n in _names(hutch) if "@" in n]


def test_import_name_from_the_path_says_when_it_cannot(hutch, state, tmp):
    rootfs, marker = _unique(tmp, "here")
    # "." is the directory's own name
    hutch("image", "import", ".", cwd=rootfs)
    try:
        assert hutch("run", "--rm", "rootfs-here", "cat", "/marker").stdout == marker + "\n"
    finally:
        hutch("image", "rm", "rootfs-here")
    # a file name that makes no image name: the message says where the name
    # came from and how to give one, and nothing is stored
    layers = state.layers()
    tarball = tar_dir(rootfs, tmp / "My Image.tar")
    cp = hutch("image", "import", tarball, check=False)
    assert cp.returncode == 125
    assert ("'my image' (from the file name) is not a valid image name: give one "
            f"(hutch image import '{tarball}' NAME)") in cp.stderr, cp.stderr
    assert state.layers() == layers


def test_image_rm_by_id(hutch, state, tmp):
    # as docker: by id, an image with one name loses it and goes; one with
    # several names is refused, naming them
    rootfs, _ = _unique(tmp, "rmid")
    layers = state.layers()
    iid = hutch("image", "import", rootfs, "rm-id:1").stdout.strip()
    hutch("image", "tag", "rm-id:1", "rm-id:2")
    cp = hutch("image", "rm", iid[7:19], check=False)
    assert cp.returncode == 125
    assert "rm-id:1" in cp.stderr and "rm-id:2" in cp.stderr, cp.stderr
    assert {"rm-id:1", "rm-id:2"} <= set(_names(hutch))
    hutch("image", "rm", "rm-id:2")
    assert hutch("image", "rm", iid[7:19]).stdout == f"Untagged: rm-id:1\nDeleted: {iid}\n"
    assert "rm-id:1" not in _names(hutch)
    assert state.layers() == layers
