"""Hostile images against the image store: every image here is built by hand
(OCI image layouts: blobs/sha256/<hex>, index.json, oci-layout, manifest and
config JSON; `docker save` archives), so each one can lie in exactly one way.

What is proved, per attack:
- layer entries whose names climb out (`..`, absolute names, `..` or absolute
  hardlink targets, CVE-2021-29136's symlink for `/.`, whiteouts with escaping
  names) are refused with a message naming the entry;
- symlinks that aim out of the layer (absolute, or with `..`) are followed
  inside it, as Docker and containerd do: what goes through them lands in the
  layer's own copy of the target (checked entry by entry), or is refused when
  the layer has no such directory; never outside;
- digests: malformed digest strings are refused before they become paths
  (CVE-2024-3727); blobs are checked against the manifest, uncompressed layers
  against the config's diff_ids; truncated blobs are refused; a decompression
  bomb (a file bigger than the disk can take) is refused at its header, quickly
  and without writing, while a layer of zeros that fits is imported;
- for every refusal: a non-zero exit, nothing written outside the store (a
  sentinel dir next to the store and a /tmp dir the layer aims at stay as they
  were), no new layer dir or config in ROOT/images/{layers,configs}, nothing in
  ROOT/images/tmp, and `image ls` unchanged;
- crash safety: an import of a multi-layer image SIGKILLed at several moments
  leaves a store that the next command cleans and that imports the image again;
- concurrency: overlapping imports at once both succeed and share layers; an
  `image rm` during an import does not break it;
- prune: frees what nothing uses, never a layer of a running container, and
  the same image imports again afterwards.

Runs as root (rootful store) and as an unprivileged user (tests/rootless/run.sh,
rootless store) alike. Processes a killed import leaves behind are killed by pid
at teardown.
"""
import gzip
import hashlib
import io
import json
import os
import platform
import secrets
import shutil
import signal
import stat
import subprocess
import tarfile
import threading
import time
import types
from pathlib import Path

import pytest

from conftest import descendants, tree_snapshot, wait_for

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {None: "application/vnd.oci.image.layer.v1.tar",
            "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
            "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MTIME = 1700000000


def sha256(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def host_arch():
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386"}.get(m, m)


# ---------------------------------------------------------------- tar entries
# Each helper returns (TarInfo, data or None); tar_bytes() writes them verbatim:
# tarfile writes a name as it is given, so "..", "/" and "/." reach hutch intact.


def F(name, data=b"", mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.size, ti.mtime = tarfile.REGTYPE, mode, len(data), MTIME
    return ti, data


def D(name, mode=0o755):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, MTIME
    return ti, None


def S(name, target):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.SYMTYPE, target, 0o777, MTIME
    return ti, None


def H(name, target):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.LNKTYPE, target, 0o644, MTIME
    return ti, None


def tar_bytes(*entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for ti, data in entries:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def tar_members(*entries):
    """Entries as tar bytes without the end-of-archive blocks (to be continued)."""
    out = b""
    for ti, data in entries:
        out += ti.tobuf(format=tarfile.PAX_FORMAT)
        if data:
            out += data + b"\0" * ((-len(data)) % 512)
    return out


def zstd_compress(data, level=3):
    return subprocess.run(["zstd", "-q", "-c", f"-{level}"], input=data, capture_output=True,
                          check=True).stdout


class Layer:
    """A layer as an image carries it. Every descriptor field can be made to lie:
    digest (the manifest's), size, diff_id (the config's), and the name the blob
    is stored under (`store_as`, default: the true digest of the blob)."""

    def __init__(self, tar=None, comp=None, blob=None, diff_id=None):
        self.tar = tar
        self.comp = comp
        if blob is None:
            blob = (gzip.compress(tar, compresslevel=6, mtime=0) if comp == "gzip" else
                    zstd_compress(tar) if comp == "zstd" else tar)
        self.blob = blob  # bytes, or a Path to a (big) file
        self.blob_digest = self._digest_of_blob()
        self.digest = self.blob_digest
        self.size = self.blob.stat().st_size if isinstance(blob, Path) else len(blob)
        self.diff_id = diff_id or (sha256(tar) if tar is not None else None)
        self.media_type = MT_LAYER[comp]
        self.store_as = self.blob_digest

    def _digest_of_blob(self):
        if not isinstance(self.blob, Path):
            return sha256(self.blob)
        h = hashlib.sha256()
        with open(self.blob, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return "sha256:" + h.hexdigest()

    def write_to(self, path):
        if isinstance(self.blob, Path):
            shutil.copyfile(self.blob, path)
        else:
            path.write_bytes(self.blob)

    def descriptor(self):
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def image_config(diff_ids, cmd=("/bin/sh",), env=(PATH_ENV,)):
    return {"created": "2024-01-01T00:00:00Z", "architecture": host_arch(), "os": "linux",
            "config": {"Env": list(env), "Cmd": list(cmd)},
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
            "history": [{"created_by": "hand-written by test_hostile_images.py"}]}


def write_layout(dest, layers, *, ref="hostile:1", config=None, config_edit=None,
                 manifest_edit=None, index_edit=None, extra_blobs=()):
    """An OCI image layout at dest. The edit hooks change the parsed config,
    manifest or index before they are serialised (and before the manifest and
    index refer to their digests). Returns a dict of what was written."""
    dest = Path(dest)
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (dest / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def put(data):
        d = sha256(data)
        (blobs / d[7:]).write_bytes(data)
        return d

    for layer in layers:
        if layer.store_as:
            layer.write_to(blobs / layer.store_as[7:])
    for data in extra_blobs:
        put(data)
    cfg = config if config is not None else image_config([l.diff_id for l in layers])
    if config_edit:
        config_edit(cfg)
    cfg_bytes = json.dumps(cfg).encode()
    cfg_digest = put(cfg_bytes)
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                "config": {"mediaType": MT_CONFIG, "digest": cfg_digest, "size": len(cfg_bytes)},
                "layers": [l.descriptor() for l in layers]}
    if manifest_edit:
        manifest_edit(manifest)
    man_bytes = json.dumps(manifest).encode()
    man_digest = put(man_bytes)
    index = {"schemaVersion": 2, "mediaType": MT_INDEX,
             "manifests": [{"mediaType": MT_MANIFEST, "digest": man_digest,
                            "size": len(man_bytes),
                            "annotations": {"org.opencontainers.image.ref.name": ref}}]}
    if index_edit:
        index_edit(index)
    (dest / "index.json").write_text(json.dumps(index))
    return {"dir": dest, "config": cfg_digest, "config_bytes": cfg_bytes,
            "manifest": man_digest, "manifest_bytes": man_bytes}


def tar_tree(src, dest):
    """A tar of the directory src (an OCI layout) with clean relative names."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as t:
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            for n in sorted(dirnames) + sorted(filenames):
                p = Path(dirpath) / n
                t.add(p, arcname=str(p.relative_to(src)), recursive=False)
    return dest


def write_docker_archive(dest, layers, *, repo_tag="hostile:1", config_name=None,
                         layer_names=None, config=None, extra=()):
    """A legacy `docker save` archive: <id>/layer.tar, <config id>.json,
    manifest.json. Names in manifest.json can be made to lie."""
    cfg = config if config is not None else image_config([l.diff_id for l in layers])
    cfg_bytes = json.dumps(cfg).encode()
    cfg_file = sha256(cfg_bytes)[7:] + ".json"
    members = [(cfg_file, cfg_bytes)]
    names = []
    for i, layer in enumerate(layers):
        lid = hashlib.sha256(f"layer-{i}".encode() + layer.blob).hexdigest()
        members.append((f"{lid}/layer.tar", layer.blob))
        names.append(f"{lid}/layer.tar")
    manifest = [{"Config": config_name or cfg_file, "RepoTags": [repo_tag],
                 "Layers": layer_names or names}]
    members.append(("manifest.json", json.dumps(manifest).encode()))
    entries = [F(n, data) for n, data in members] + list(extra)
    Path(dest).write_bytes(tar_bytes(*entries))
    return dest


# ---------------------------------------------------------------- store checks


def _images(state):
    return state.root / "images"


def _ls_json(hutch):
    return json.loads(hutch("image", "ls", "--format", "json").stdout)


def _names(hutch):
    return sorted(i["name"] for i in _ls_json(hutch))


def _inspect(hutch, ref):
    return json.loads(hutch("image", "inspect", ref).stdout)[0]


def store_snapshot(state, hutch):
    im = _images(state)
    return {"layers": sorted(os.listdir(im / "layers")),
            "configs": sorted(os.listdir(im / "configs")),
            "ls": _ls_json(hutch),
            "images top": sorted(n for n in os.listdir(im) if n not in ("store.lock",)),
            "root top": sorted(os.listdir(state.root))}


def staging(state):
    d = _images(state) / "tmp"
    return sorted(os.listdir(d)) if d.exists() else []


class Guard:
    """What a hostile layer aims at: `outside` (a dir in /tmp), `sentinel` (a dir
    right next to the store, in ROOT), and /etc/hutch-escape. Each of the two
    dirs holds a victim file and a subdir; all must be exactly as they were."""

    ETC = Path("/etc/hutch-escape")

    def __init__(self, state):
        tag = secrets.token_hex(4)
        self.outside = Path(f"/tmp/hutch-hostile-{tag}")
        self.sentinel = state.root / f"sentinel-{tag}"
        for d in (self.outside, self.sentinel):
            (d / "sub").mkdir(parents=True)
            (d / "victim").write_text("victim\n")
        self.etc_existed = self.ETC.exists()
        self.before = self._snap()

    # From a layer being unpacked in ROOT/images/tmp/<staging>/layer, four ".."
    # reach ROOT; twelve reach / from anywhere here.
    @property
    def up_to_root(self):
        return "../../../../" + self.sentinel.name

    @property
    def up_to_slash(self):
        return "../" * 12 + str(self.outside).lstrip("/")

    def _snap(self):
        out = {}
        for d in (self.outside, self.sentinel):
            snap = tree_snapshot(d)
            snap["."] = (os.lstat(d).st_mode, os.lstat(d).st_mtime_ns)
            out[str(d)] = snap
            out[str(d) + " victim"] = ((d / "victim").read_text(), os.stat(d / "victim").st_nlink,
                                       os.listxattr(d) if hasattr(os, "listxattr") else None)
        return out

    def check(self):
        assert self._snap() == self.before, "a hostile layer changed something outside the store"
        if not self.etc_existed:
            assert not self.ETC.exists(), f"{self.ETC} was created"

    def remove(self):
        shutil.rmtree(self.outside, ignore_errors=True)
        shutil.rmtree(self.sentinel, ignore_errors=True)


@pytest.fixture
def guard(state):
    g = Guard(state)
    yield g
    g.remove()


def assert_refused(hutch, state, guard, src, *needles, name="hostile-img", args=(),
                   timeout=60):
    """Import src, expect a refusal whose message holds every needle, and that
    the store and the outside are as they were."""
    before = store_snapshot(state, hutch)
    cp = hutch("image", "import", *args, src, name, check=False, timeout=timeout)
    if cp.returncode == 0:
        hutch("image", "rm", name, check=False)
        guard.check()
        raise AssertionError(f"hostile image was accepted (and contained):\n{cp.stdout}"
                             f"{cp.stderr}")
    msg = cp.stderr
    for n in needles:
        assert n in msg, f"message does not name {n!r}:\n{msg}"
    assert "hutch" in msg and msg.strip(), msg
    guard.check()
    # staging is removed by the failing command itself (the leak check polls too)
    wait_for(lambda: staging(state) == [], timeout=5, what="empty ROOT/images/tmp")
    after = store_snapshot(state, hutch)
    assert after == before
    assert f"{name}:latest" not in _names(hutch)
    return msg


# ================================================================ layer entries


def _layout_with(tmp, *entries, comp="gzip", fmt=tarfile.PAX_FORMAT):
    layer = Layer(tar_bytes(*entries, fmt=fmt), comp=comp)
    return write_layout(tmp / "layout", [layer])["dir"]


def _escape_cases(g):
    """name -> (entries, needles): entries hutch refuses, as Docker does. Names
    that climb out or are absolute, hardlink targets that do, a symlink in place
    of the layer root, whiteouts for no name; and a path through a symlink whose
    target the layer does not have (Docker, following it in a chroot, fails too)."""
    up, root = g.up_to_slash, g.up_to_root
    return {
        "dotdot": ([F("../escape", b"x")], ["'../escape'", "'..'"]),
        "dotdot-to-sentinel": ([F(root + "/pwned", b"x")], [f"'{root}/pwned'"]),
        "dotdot-to-outside": ([F(up + "/pwned", b"x")], ["/pwned'"]),
        "inner-dotdot": ([D("a/"), F("a/../../escape", b"x")], ["'a/../../escape'"]),
        "absolute": ([F("/etc/hutch-escape", b"x")], ["'/etc/hutch-escape'"]),
        "absolute-outside": ([F(str(g.outside / "pwned"), b"x")], [f"'{g.outside}/pwned'"]),
        "symlink-abs-dir-not-in-layer-then-file": (
            [S("evil", str(g.outside)), F("evil/pwned", b"x")],
            ["'evil/pwned'", "symlink", "not in the layer"]),
        "symlink-to-sentinel-not-in-layer-then-file": (
            [S("evil", root), F("evil/pwned", b"x")], ["'evil/pwned'", "not in the layer"]),
        "symlink-dir-not-in-layer-then-dir": ([S("evil", str(g.outside)), D("evil/sub/newdir/")],
                                              ["evil/sub/newdir", "not in the layer"]),
        "hardlink-through-symlink-not-in-layer": (
            [S("evil", str(g.outside)), H("h", "evil/victim")], ["'evil/victim'", "not exist"]),
        "symlink-named-slash-dot": ([S("/.", str(g.outside))], ["'/.'", "CVE-2021-29136"]),
        "symlink-named-dot": ([S(".", str(g.outside))], ["'.'", "CVE-2021-29136"]),
        "symlink-named-dot-slash": ([S("./", "/")], ["CVE-2021-29136"]),
        "symlink-slash-dot-then-file": ([S("/.", str(g.outside)), F("pwned", b"x")],
                                        ["'/.'", "CVE-2021-29136"]),
        "file-named-root": ([F("/", b"x")], ["layer root"]),
        "hardlink-dotdot": ([H("h", "../../etc/passwd")], ["'../../etc/passwd'"]),
        "hardlink-dotdot-to-victim": ([H("h", up + "/victim")], [up + "/victim"]),
        "hardlink-absolute-target": ([H("h", str(g.outside / "victim"))], ["'h'", "absolute"]),
        "whiteout-dotdot": ([F(".wh...", b"")], ["'.wh...'", "whiteout"]),
        "whiteout-dot": ([F(".wh..", b"")], ["'.wh..'", "whiteout"]),
        "whiteout-empty": ([F(".wh.", b"")], ["'.wh.'", "whiteout"]),
        "whiteout-up": ([F("../.wh.x", b"")], ["'../.wh.x'"]),
        "pax-path-dotdot": ([_pax_named("innocent", "../pax-escape", b"x")],
                            ["'../pax-escape'"]),
        "pax-linkpath-dotdot": ([_pax_linked("h", "innocent", "../../etc/passwd")],
                                ["'../../etc/passwd'"]),
        "gnu-longname-dotdot": ([F("a" * 120 + "/../../../" + root + "/pwned", b"x")],
                                ["/pwned'"]),
    }


def _mirror(g):
    """The guarded dirs as the layer itself has them (tmp/hutch-hostile-X/ with
    victim and sub/, and sentinel-X/ with victim): where a symlink aiming at
    them leads once it is resolved inside the layer."""
    out_rel = str(g.outside).lstrip("/")
    return [D("tmp/"), D(out_rel + "/"), D(out_rel + "/sub/"),
            F(out_rel + "/victim", b"inside victim\n"), D(g.sentinel.name + "/"),
            F(g.sentinel.name + "/victim", b"inside sentinel victim\n")]


def _contained_cases(g):
    """name -> (entries, expected): a symlink (absolute, or with ".." enough to
    climb out) is followed inside the layer, as Docker and containerd do, so the
    entry lands in the layer's own copy of what it aimed at. expected maps a path
    in the layer to ("file", data) | ("dir",) | ("symlink", target) | ("fifo",) |
    ("same-as", path) | ("whiteout",) | ("opaque",)."""
    out_rel, root = str(g.outside).lstrip("/"), g.up_to_root
    return {
        "symlink-root-then-file": ([S("evil", "/"), F("evil/etc/hutch-escape", b"x")],
                                   {"etc/hutch-escape": ("file", b"x")}),
        "symlink-abs-dir-then-file": ([S("evil", str(g.outside)), F("evil/pwned", b"x")],
                                      {out_rel + "/pwned": ("file", b"x")}),
        "symlink-relative-up-then-file": (
            [S("evil", "../../../../../../../../../../" + out_rel), F("evil/pwned", b"x")],
            {out_rel + "/pwned": ("file", b"x")}),
        "symlink-to-sentinel-then-file": ([S("evil", root), F("evil/pwned", b"x")],
                                          {g.sentinel.name + "/pwned": ("file", b"x")}),
        "symlink-chain-then-file": (
            [D("d/"), S("d/one", ".."), S("two", "d/one/.."), F("two/pwned", b"x")],
            {"pwned": ("file", b"x")}),
        "symlink-dir-then-dir": ([S("evil", str(g.outside)), D("evil/sub/newdir/")],
                                 {out_rel + "/sub/newdir": ("dir",)}),
        "dir-replaced-by-symlink-then-file": (
            [D("d/"), S("d", str(g.outside)), F("d/pwned", b"x")],
            {out_rel + "/pwned": ("file", b"x"), "d": ("symlink", str(g.outside))}),
        "symlink-placed-through-symlink": ([S("evil", str(g.outside)), S("evil/s", "/")],
                                           {out_rel + "/s": ("symlink", "/")}),
        "hardlink-placed-through-symlink": ([S("evil", str(g.outside)),
                                             H("evil/h", "etc/passwd")],
                                            {out_rel + "/h": ("same-as", "etc/passwd")}),
        "fifo-placed-through-symlink": ([S("evil", str(g.outside)), _fifo("evil/fifo")],
                                        {out_rel + "/fifo": ("fifo",)}),
        "hardlink-through-symlinked-dir": ([S("evil", str(g.outside)), H("h", "evil/victim")],
                                           {"h": ("same-as", out_rel + "/victim")}),
        "hardlink-through-relative-symlink": (
            [S("evil", root), H("h", "evil/victim")],
            {"h": ("same-as", g.sentinel.name + "/victim")}),
        "whiteout-through-symlink": ([S("evil", str(g.outside)), F("evil/.wh.victim", b"")],
                                     {out_rel + "/victim": ("whiteout",)}),
        "opaque-through-symlink": ([S("evil", str(g.outside)), F("evil/.wh..wh..opq", b"")],
                                   {out_rel: ("opaque",)}),
    }


def _check_landed(layer_dir, expected):
    for rel, want in expected.items():
        p = layer_dir / rel
        st = os.lstat(p)
        kind = want[0]
        if kind == "file":
            assert stat.S_ISREG(st.st_mode) and p.read_bytes() == want[1], rel
        elif kind == "dir":
            assert stat.S_ISDIR(st.st_mode), rel
        elif kind == "symlink":
            assert stat.S_ISLNK(st.st_mode) and os.readlink(p) == want[1], rel
        elif kind == "fifo":
            assert stat.S_ISFIFO(st.st_mode), rel
        elif kind == "same-as":
            other = os.lstat(layer_dir / want[1])
            assert (st.st_ino, st.st_dev) == (other.st_ino, other.st_dev), rel
        elif kind == "whiteout":
            assert (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0) or \
                "user.overlay.whiteout" in os.listxattr(p), rel
        elif kind == "opaque":
            names = os.listxattr(p)
            assert "trusted.overlay.opaque" in names or "user.overlay.opaque" in names, rel


def _fifo(name):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.FIFOTYPE, 0o644, MTIME
    return ti, None


def _pax_linked(name, ustar_target, pax_target):
    ti, _ = H(name, ustar_target)
    ti.pax_headers = {"linkpath": pax_target}
    return ti, None


def _pax_named(ustar_name, pax_path, data):
    ti, data = F(ustar_name, data)
    ti.pax_headers = {"path": pax_path}
    return ti, data


_PLACEHOLDER = types.SimpleNamespace(up_to_slash="", up_to_root="", outside=Path("/x"),
                                     sentinel=Path("/s"))
ESCAPE_CASES = list(_escape_cases(_PLACEHOLDER))
CONTAINED_CASES = list(_contained_cases(_PLACEHOLDER))


def test_payloads_aim_at_the_guarded_dirs(state, guard):
    """The payloads are real: followed naively from where a layer is unpacked,
    they land in the guarded dirs (so an untouched guard means hutch stopped them)."""
    layer = state.root / "images" / "tmp" / "layer-XXXXXX" / "layer"
    assert Path(os.path.normpath(layer / guard.up_to_root)) == guard.sentinel
    assert Path(os.path.normpath(layer / guard.up_to_slash)) == guard.outside
    guard.check()


@pytest.mark.parametrize("case", ESCAPE_CASES)
def test_escaping_layer_entry_refused(hutch, state, tmp, guard, case):
    entries, needles = _escape_cases(guard)[case]
    fmt = tarfile.GNU_FORMAT if case.startswith("gnu") else tarfile.PAX_FORMAT
    # a base the entries can refer to, as a real layer would have
    layout = _layout_with(tmp, D("etc/"), F("etc/passwd", b"root:x:0:0::/:/bin/sh\n"),
                          *entries, fmt=fmt)
    assert_refused(hutch, state, guard, layout, *needles)


@pytest.mark.parametrize("case", CONTAINED_CASES)
def test_symlinks_in_a_layer_resolve_inside_it(hutch, state, tmp, guard, case):
    """What Docker and containerd accept is accepted, and stays in the layer:
    nothing outside changes, and each entry lands where the symlink leads
    when the layer dir is taken as "/"."""
    entries, expected = _contained_cases(guard)[case]
    layer = Layer(tar_bytes(D("etc/"), F("etc/passwd", b"root:x:0:0::/:/bin/sh\n"),
                            *_mirror(guard), *entries), comp="gzip")
    layout = write_layout(tmp / "layout", [layer])["dir"]
    hutch("image", "import", layout, "contained")
    try:
        guard.check()
        _check_landed(_images(state) / "layers" / layer.diff_id[7:], expected)
        assert staging(state) == []
    finally:
        hutch("image", "rm", "contained")
    guard.check()


def test_usr_lib64_symlink_then_files_through_it(hutch, state, tmp):
    """The common real case: usr/lib64 -> /usr/lib (absolute), then files in
    usr/lib64/: they land in the layer's usr/lib, and run in a container."""
    layers = [Layer(state.bb_tar.read_bytes()),
              Layer(tar_bytes(D("usr/"), D("usr/lib/"), S("usr/lib64", "/usr/lib"),
                              F("usr/lib64/libfoo.so.1", b"foo\n"), D("usr/lib64/sub/"),
                              F("usr/lib64/sub/bar", b"bar\n")), comp="gzip")]
    layout = write_layout(tmp / "layout", layers)["dir"]
    hutch("image", "import", layout, "lib64")
    try:
        top = _images(state) / "layers" / _chain_ids([l.diff_id for l in layers])[1]
        assert (top / "usr/lib/libfoo.so.1").read_text() == "foo\n"
        assert os.readlink(top / "usr/lib64") == "/usr/lib"
        out = hutch("run", "--rm", "lib64", "cat", "/usr/lib64/libfoo.so.1",
                    "/usr/lib/sub/bar").stdout
        assert out == "foo\nbar\n"
    finally:
        hutch("image", "rm", "lib64")


@pytest.mark.parametrize("form", ["oci-tar", "docker-archive", "rootfs-tarball"])
def test_escaping_entries_refused_in_every_import_form(hutch, state, tmp, guard, form):
    """The same unpacker for every source: an OCI tar, a docker archive and a
    plain rootfs tarball."""
    entries = [S("evil", str(guard.outside)), F("evil/pwned", b"x")]
    layer = Layer(tar_bytes(*entries), comp=None if form == "docker-archive" else "gzip")
    if form == "oci-tar":
        src = tar_tree(write_layout(tmp / "layout", [layer])["dir"], tmp / "oci.tar")
    elif form == "docker-archive":
        src = write_docker_archive(tmp / "docker.tar", [layer])
    else:
        src = tmp / "rootfs.tar.gz"
        src.write_bytes(layer.blob)
    assert_refused(hutch, state, guard, src, "'evil/pwned'", "not in the layer")


def test_hostile_layer_leaves_no_good_layer_of_the_same_image_behind(hutch, state, tmp, guard):
    """Layer 1 is fine (and small: verified first), layer 2 escapes at its end.
    The import fails as a whole: layer 1 must not stay in the store either."""
    good = Layer(tar_bytes(F("good", secrets.token_bytes(64))), comp="gzip")
    bad = Layer(tar_bytes(F("filler", os.urandom(8 << 20)), S("evil", str(guard.outside)),
                          F("evil/pwned", b"x")), comp="gzip")
    layout = write_layout(tmp / "layout", [good, bad])["dir"]
    assert_refused(hutch, state, guard, layout, "'evil/pwned'", "layer 2")
    assert not (_images(state) / "layers" / good.diff_id[7:]).exists()


def test_symlink_then_same_name_entries_stay_inside(hutch, state, tmp, guard):
    """A later entry at the path of a symlink replaces the symlink (tar's rule):
    a file, a directory and a hardlink made there must not go through it, and
    a hardlink to a symlink links the symlink, not its target."""
    victim = guard.outside / "victim"
    base_tar = state.bb_tar.read_bytes()
    top = tar_bytes(S("s", str(victim)), F("s", b"replaced\n"),
                    S("dir", str(guard.outside)), D("dir/"), F("dir/inside", b"in\n"),
                    S("link-to-abs", str(victim)), H("hard", "link-to-abs"),
                    S("up", guard.up_to_root + "/victim"), H("hard2", "up"))
    layers = [Layer(base_tar), Layer(top, comp="gzip")]
    layout = write_layout(tmp / "layout", layers)["dir"]
    hutch("image", "import", layout, "contained")
    try:
        guard.check()
        out = hutch("run", "--rm", "contained", "sh", "-c",
                    "cat /s; cat /dir/inside; test -L /dir && echo DIR-IS-LINK; "
                    "readlink /hard; readlink /hard2").stdout
        assert out.splitlines() == ["replaced", "in", str(victim),
                                    guard.up_to_root + "/victim"]
        guard.check()
    finally:
        hutch("image", "rm", "contained")


def test_device_nodes_in_a_layer_cannot_reach_host_devices(hutch, state, tmp):
    """A layer may carry device nodes (rootful; rootless skips them), but one
    for the host's disk or /dev/mem must not be usable in the container."""
    disk = os.stat("/").st_dev
    extra = []
    for name, kind, major, minor in (("disk", tarfile.BLKTYPE, os.major(disk), os.minor(disk)),
                                     ("mem", tarfile.CHRTYPE, 1, 1)):
        ti = tarfile.TarInfo(name)
        ti.type, ti.devmajor, ti.devminor, ti.mode, ti.mtime = kind, major, minor, 0o666, MTIME
        extra.append((ti, None))
    layers = [Layer(state.bb_tar.read_bytes()), Layer(tar_bytes(*extra), comp="gzip")]
    layout = write_layout(tmp / "layout", layers)["dir"]
    hutch("image", "import", layout, "devnodes")
    try:
        out = hutch("run", "--rm", "devnodes", "sh", "-c",
                    "for d in /disk /mem; do if head -c 16 $d >/dev/null 2>&1; then "
                    "echo READ $d; else echo blocked $d; fi; done").stdout
        assert out.split("\n")[:2] == ["blocked /disk", "blocked /mem"], out
    finally:
        hutch("image", "rm", "devnodes")


def test_symlink_loop_refused(hutch, state, tmp, guard):
    layout = _layout_with(tmp, S("a", "b"), S("b", "a"), F("a/x", b"x"))
    assert_refused(hutch, state, guard, layout, "'a/x'")


# ================================================================ digests

BAD_DIGESTS = {
    "traversal": "sha256:../../../../planted",
    "traversal-64": "sha256:" + "../" * 21 + "p",
    "uppercase": None,  # the real digest in upper case, filled in per test
    "short": None,  # 63 hex digits
    "long": None,  # 65 hex digits
    "suffix-traversal": None,  # 64 hex + "/../../planted"
    "md5": "md5:d41d8cd98f00b204e9800998ecf8427e",
    "sha512": "sha512:" + "ab" * 64,
    "no-algorithm": None,  # bare 64 hex
    "empty": "",
    "nul": None,  # 64 hex with a NUL in the middle (JSON \u0000)
}


def _bad_digest(kind, real):
    hexd = real[7:]
    return {"uppercase": "sha256:" + hexd.upper(), "short": "sha256:" + hexd[:63],
            "long": "sha256:" + hexd + "0", "suffix-traversal": real + "/../../planted",
            "no-algorithm": hexd, "nul": "sha256:" + hexd[:32] + "\0" + hexd[33:]
            }.get(kind, BAD_DIGESTS[kind])


def _needle_for(kind, bad):
    if kind == "md5":
        return "'md5'"
    if kind == "sha512":
        return "'sha512'"
    if kind == "empty":
        return "digest ''"
    if kind == "nul":
        return "NUL"
    return bad


def _assert_digest_refusal(msg):
    assert "invalid digest" in msg or "not supported" in msg or "NUL" in msg, msg


def _plant(layout, layer):
    """What a traversal digest would reach if it were used as a path: a valid
    blob of the right size, so only validation can refuse it."""
    for rel in ("planted", "blobs/planted", "../planted"):
        p = (layout / rel).resolve()
        if p.parent.exists():
            layer.write_to(p)


@pytest.mark.parametrize("kind", list(BAD_DIGESTS))
def test_bad_layer_digest_refused_before_use(hutch, state, tmp, guard, kind):
    layer = Layer(tar_bytes(F("file", b"content\n")), comp="gzip")
    bad = _bad_digest(kind, layer.digest)
    layer.digest = bad
    layout = write_layout(tmp / "layout", [layer])["dir"]
    _plant(layout, layer)
    _assert_digest_refusal(assert_refused(hutch, state, guard, layout, _needle_for(kind, bad)))


@pytest.mark.parametrize("kind", list(BAD_DIGESTS))
def test_bad_config_digest_refused_before_use(hutch, state, tmp, guard, kind):
    layer = Layer(tar_bytes(F("file", b"content\n")), comp="gzip")
    info = {}

    def edit(m):
        bad = _bad_digest(kind, m["config"]["digest"])
        info["bad"] = bad
        m["config"]["digest"] = bad

    layout = write_layout(tmp / "layout", [layer], manifest_edit=edit)
    (layout["dir"] / "planted").write_bytes(layout["config_bytes"])
    _assert_digest_refusal(
        assert_refused(hutch, state, guard, layout["dir"], _needle_for(kind, info["bad"])))


@pytest.mark.parametrize("kind", ["traversal", "uppercase", "md5", "short"])
def test_bad_manifest_digest_in_index_refused(hutch, state, tmp, guard, kind):
    layer = Layer(tar_bytes(F("file", b"content\n")), comp="gzip")
    info = {}

    def edit(ix):
        bad = _bad_digest(kind, ix["manifests"][0]["digest"])
        info["bad"] = bad
        ix["manifests"][0]["digest"] = bad

    layout = write_layout(tmp / "layout", [layer], index_edit=edit)
    (layout["dir"] / "planted").write_bytes(layout["manifest_bytes"])
    assert_refused(hutch, state, guard, layout["dir"], _needle_for(kind, info["bad"]))


@pytest.mark.parametrize("kind", ["traversal", "uppercase", "md5", "short"])
def test_bad_diff_id_refused(hutch, state, tmp, guard, kind):
    layer = Layer(tar_bytes(F("file", b"content\n")), comp="gzip")
    bad = _bad_digest(kind, layer.diff_id)
    layer.diff_id = bad
    layout = write_layout(tmp / "layout", [layer])["dir"]
    assert_refused(hutch, state, guard, layout, _needle_for(kind, bad))


@pytest.mark.parametrize("where", ["config", "layer", "traversal-layer", "absolute-config"])
def test_docker_archive_unclean_paths_refused(hutch, state, tmp, guard, where):
    layer = Layer(tar_bytes(F("file", b"content\n")))
    kw = {}
    bad = {"config": "../../../../" + guard.sentinel.name + "/victim",
           "layer": "x/../../layer.tar", "traversal-layer": "../" * 12 + "etc/passwd",
           "absolute-config": "/etc/passwd"}[where]
    if "config" in where:
        kw["config_name"] = bad
    else:
        kw["layer_names"] = [bad]
    src = write_docker_archive(tmp / "docker.tar", [layer], **kw)
    assert_refused(hutch, state, guard, src, bad, "not a clean path")


def test_docker_archive_member_symlink_out_refused(hutch, state, tmp, guard):
    """A layer.tar member that is a symlink to a host file is not followed."""
    layer = Layer(tar_bytes(F("file", b"content\n")))
    src = tmp / "docker.tar"
    write_docker_archive(src, [layer], layer_names=["evil/layer.tar"],
                         extra=[S("evil/layer.tar", str(guard.outside / "victim"))])
    assert_refused(hutch, state, guard, src, "evil/layer.tar", "symlink")


@pytest.mark.parametrize("form", ["dir", "tar"])
def test_blob_not_matching_manifest_digest_refused(hutch, state, tmp, guard, form):
    # gzip level 0 (stored blocks): a blob's size depends only on the data's size
    def stored(tar):
        return Layer(tar, comp="gzip", blob=gzip.compress(tar, compresslevel=0, mtime=0))

    good = stored(tar_bytes(F("file", b"good content\n")))
    evil = stored(tar_bytes(F("file", b"EVIL content\n")))
    assert evil.size == good.size
    # the manifest and config describe `good`; the blob file holds `evil`
    good.blob = evil.blob
    layout = write_layout(tmp / "layout", [good])["dir"]
    src = layout if form == "dir" else tar_tree(layout, tmp / "oci.tar")
    assert_refused(hutch, state, guard, src, good.digest, evil.blob_digest)


def test_uncompressed_digest_not_matching_diff_id_refused(hutch, state, tmp, guard):
    layer = Layer(tar_bytes(F("file", b"actual\n")), comp="gzip")
    claimed = sha256(tar_bytes(F("file", b"claimed\n")))
    layer.diff_id = claimed
    layout = write_layout(tmp / "layout", [layer])["dir"]
    assert_refused(hutch, state, guard, layout, claimed, sha256(layer.tar))


def test_docker_archive_diff_id_mismatch_refused(hutch, state, tmp, guard):
    layer = Layer(tar_bytes(F("file", b"actual\n")))
    claimed = sha256(b"something else")
    layer.diff_id = claimed
    src = write_docker_archive(tmp / "docker.tar", [layer])
    assert_refused(hutch, state, guard, src, claimed)


def test_config_blob_not_matching_its_digest_refused(hutch, state, tmp, guard):
    layer = Layer(tar_bytes(F("file", b"content\n")), comp="gzip")
    layout = write_layout(tmp / "layout", [layer])
    cfg_file = layout["dir"] / "blobs" / "sha256" / layout["config"][7:]
    data = bytearray(cfg_file.read_bytes())
    data[data.index(b"/bin/sh")] = ord("X")  # same size, other bytes
    cfg_file.write_bytes(bytes(data))
    assert_refused(hutch, state, guard, layout["dir"], layout["config"])


@pytest.mark.parametrize("n_diff", [1, 3])
def test_layer_count_not_matching_diff_ids_refused(hutch, state, tmp, guard, n_diff):
    layers = [Layer(tar_bytes(F(f"f{i}", b"x")), comp="gzip") for i in range(2)]
    diff_ids = [l.diff_id for l in layers] + [sha256(b"extra")]
    layout = write_layout(tmp / "layout", layers,
                          config=image_config(diff_ids[:n_diff]))["dir"]
    assert_refused(hutch, state, guard, layout, "2 layers", f"{n_diff} diff_ids")


def test_truncated_gzip_blob_refused(hutch, state, tmp, guard):
    data = os.urandom(256 * 1024)
    full = Layer(tar_bytes(F("big", data)), comp="gzip")
    layer = Layer(blob=full.blob[: len(full.blob) // 2], comp="gzip", diff_id=full.diff_id)
    layout = write_layout(tmp / "layout", [layer])["dir"]
    assert_refused(hutch, state, guard, layout, "truncated", "gzip")


def test_truncated_zstd_blob_refused(hutch, state, tmp, guard):
    full = Layer(tar_bytes(F("big", os.urandom(256 * 1024))), comp="zstd")
    layer = Layer(blob=full.blob[: len(full.blob) // 2], comp="zstd", diff_id=full.diff_id)
    layout = write_layout(tmp / "layout", [layer])["dir"]
    assert_refused(hutch, state, guard, layout, "truncated", "zstd")


def test_truncated_tar_refused(hutch, state, tmp, guard):
    """A plain tar cut in the middle of a file's data: the digests are those of
    the cut bytes (so only the truncation is wrong)."""
    tar = tar_bytes(F("first", b"1\n"), F("cut-here", os.urandom(100_000)))
    cut = tar[: 512 * 3 + 40_000]
    layer = Layer(cut)
    layout = write_layout(tmp / "layout", [layer])["dir"]
    assert_refused(hutch, state, guard, layout, "'cut-here'", "truncated")


def test_truncated_tar_inside_gzip_refused(hutch, state, tmp, guard):
    tar = tar_bytes(F("first", b"1\n"), F("cut-here", os.urandom(100_000)))
    layer = Layer(tar[: 512 * 3 + 40_000], comp="gzip")
    layout = write_layout(tmp / "layout", [layer])["dir"]
    assert_refused(hutch, state, guard, layout, "'cut-here'", "truncated")


def test_descriptor_size_lies_refused(hutch, state, tmp, guard):
    layer = Layer(tar_bytes(F("file", b"content\n")), comp="gzip")
    layer.size += 1
    layout = write_layout(tmp / "layout", [layer])["dir"]
    assert_refused(hutch, state, guard, layout, layer.digest)


def test_huge_config_size_refused_without_reading(hutch, state, tmp, guard):
    layer = Layer(tar_bytes(F("file", b"content\n")), comp="gzip")

    def edit(m):
        m["config"]["size"] = 1 << 40

    layout = write_layout(tmp / "layout", [layer], manifest_edit=edit)
    assert_refused(hutch, state, guard, layout["dir"], layout["config"])


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-symlink", "directory"])
def test_blob_that_is_not_a_regular_file_refused(hutch, state, tmp, guard, kind):
    layer = Layer(tar_bytes(F("file", b"content\n")), comp="gzip")
    layout = write_layout(tmp / "layout", [layer])["dir"]
    blob = layout / "blobs" / "sha256" / layer.digest[7:]
    blob.unlink()
    if kind == "fifo":
        os.mkfifo(blob)
    elif kind == "directory":
        blob.mkdir()
    else:
        os.symlink("/dev/zero", blob)
    assert_refused(hutch, state, guard, layout, layer.digest[7:], timeout=20)


def test_index_pointing_to_missing_blob_refused(hutch, state, tmp, guard):
    layer = Layer(tar_bytes(F("file", b"content\n")), comp="gzip")
    missing = sha256(b"not in the layout")

    def edit(ix):
        ix["manifests"][0]["digest"] = missing

    layout = write_layout(tmp / "layout", [layer], index_edit=edit)["dir"]
    assert_refused(hutch, state, guard, layout, missing, "missing")


def test_manifest_pointing_to_missing_layer_blob_refused(hutch, state, tmp, guard):
    layer = Layer(tar_bytes(F("file", b"content\n")), comp="gzip")
    layer.store_as = None
    layout = write_layout(tmp / "layout", [layer])["dir"]
    assert_refused(hutch, state, guard, layout, layer.digest, "missing")


def test_deeply_nested_indexes_refused(hutch, state, tmp, guard):
    """Content addressing makes a true loop impossible (an index cannot hold its
    own digest), so a "loop" is an endless chain: 64 indexes, each naming the
    next. It must stop at a depth limit with a clear message, not recurse."""
    layer = Layer(tar_bytes(F("file", b"content\n")), comp="gzip")
    layout = write_layout(tmp / "layout", [layer])
    blobs = layout["dir"] / "blobs" / "sha256"
    desc = {"mediaType": MT_MANIFEST, "digest": layout["manifest"],
            "size": len(layout["manifest_bytes"])}
    for i in range(64):
        ix = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [desc],
                         "annotations": {"level": str(i)}}).encode()
        d = sha256(ix)
        (blobs / d[7:]).write_bytes(ix)
        desc = {"mediaType": MT_INDEX, "digest": d, "size": len(ix)}
    desc["annotations"] = {"org.opencontainers.image.ref.name": "hostile:1"}
    (layout["dir"] / "index.json").write_text(json.dumps(
        {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [desc]}))
    start = time.monotonic()
    assert_refused(hutch, state, guard, layout["dir"], "nested", timeout=20)
    assert time.monotonic() - start < 10


def test_index_naming_itself_refused(hutch, state, tmp, guard):
    """A loop of indexes is only possible by lying about a digest: a blob stored
    under digest D that is an index naming D. Refused (its content does not hash
    to D), and quickly, not after following it round."""
    layer = Layer(tar_bytes(F("file", b"content\n")), comp="gzip")
    layout = write_layout(tmp / "layout", [layer])
    blobs = layout["dir"] / "blobs" / "sha256"
    d = sha256(b"the name the loop claims")
    loop = json.dumps({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [
        {"mediaType": MT_INDEX, "digest": d, "size": 0}]}).encode()
    for _ in range(3):  # make the size in it its own size
        loop = loop.replace(b'"size": %d' % json.loads(loop)["manifests"][0]["size"],
                            b'"size": %d' % len(loop))
    (blobs / d[7:]).write_bytes(loop)
    top = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [
        {"mediaType": MT_INDEX, "digest": d, "size": len(loop),
         "annotations": {"org.opencontainers.image.ref.name": "hostile:1"}}]}
    (layout["dir"] / "index.json").write_text(json.dumps(top))
    start = time.monotonic()
    assert_refused(hutch, state, guard, layout["dir"], d, "digest", timeout=20)
    assert time.monotonic() - start < 10


# ================================================================ decompression bombs
# hutch, like containerd, sets no ratio limit: a real layer may hold gigabytes
# of zeros (a disk image, a preallocated file), which gzip packs ~1000:1 and
# zstd far better. What it refuses is what cannot fit: a file larger than the
# free space of the store's filesystem is refused at its tar header, before
# any of its data is decompressed or written.

BOMB_SIZE = 1 << 50  # 1 PiB: more than any disk this runs on
ZEROS = 64 << 20


def _tar_header(name, size):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = size, 0o644, MTIME
    return ti.tobuf(format=tarfile.GNU_FORMAT)  # base-256 size field


@pytest.fixture(scope="module")
def bombs(state):
    """gzip and zstd blobs of a tar whose one file claims BOMB_SIZE bytes,
    followed by 1 GiB of zeros (concatenated members and frames of one
    compressed 64 MiB run: both formats define that as one stream)."""
    out = state.base / "bombs"
    out.mkdir(exist_ok=True)
    header = _tar_header("bomb", BOMB_SIZE)
    zeros = b"\0" * ZEROS
    for name, comp, run in (("bomb.gz", lambda b: gzip.compress(b, 9, mtime=0),
                             gzip.compress(zeros, compresslevel=9, mtime=0)),
                            ("bomb.zst", lambda b: zstd_compress(b, 19),
                             zstd_compress(zeros, level=19))):
        with open(out / name, "wb") as f:
            f.write(comp(header))
            for _ in range(16):
                f.write(run)
    return {"gzip": out / "bomb.gz", "zstd": out / "bomb.zst",
            "diff_id": sha256(header + b"claimed")}


class DiskWatch:
    """Peak bytes allocated under some dirs (st_blocks), and in the files a
    process has open (an unnamed temp file is in no dir), polled in a thread."""

    def __init__(self, *dirs, pid=None):
        self.dirs, self.pid, self.peak, self._stop = dirs, pid, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _usage(self):
        total, seen = 0, set()
        for d in self.dirs:
            for dirpath, _, files in os.walk(d):
                for f in files:
                    try:
                        st = os.lstat(os.path.join(dirpath, f))
                    except OSError:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
        if self.pid:
            fds = f"/proc/{self.pid}/fd"
            try:
                names = os.listdir(fds)
            except OSError:
                names = []
            for n in names:
                try:
                    st = os.stat(os.path.join(fds, n))
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._usage())
            time.sleep(0.02)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()


def _du(path):
    return int(subprocess.run(["du", "-s", "-B1", str(path)], capture_output=True, text=True,
                              check=True).stdout.split()[0])


@pytest.mark.parametrize("comp", ["gzip", "zstd"])
@pytest.mark.parametrize("form", ["oci-layer", "rootfs-tarball"])
def test_decompression_bomb_refused_quickly(hutch, state, tmp, guard, bombs, comp, form):
    blob = bombs[comp]
    assert blob.stat().st_size < 4 << 20
    if form == "oci-layer":
        layer = Layer(blob=blob, comp=comp, diff_id=bombs["diff_id"])
        src = write_layout(tmp / "layout", [layer])["dir"]
    else:
        src = tmp / ("bomb.tar.gz" if comp == "gzip" else "bomb.tar.zst")
        shutil.copyfile(blob, src)
    du_before = _du(_images(state))
    start = time.monotonic()
    with DiskWatch(_images(state) / "tmp") as watch:
        msg = assert_refused(hutch, state, guard, src, "'bomb'", "decompression bomb",
                             "free some space", timeout=60)
    elapsed = time.monotonic() - start
    assert elapsed < 5, f"a bomb took {elapsed:.1f}s to refuse"
    assert watch.peak < 16 << 20, f"a bomb wrote {watch.peak >> 20} MiB before it was refused"
    assert _du(_images(state)) < du_before + (16 << 20)
    assert "1024 TiB" in msg, msg


def _zero_file_layer(tmp, comp, size):
    """A layer with one file of `size` zeros, compressed by concatenating one
    compressed 64 MiB run (as the bombs are): a ratio no real-data layer has."""
    header = _tar_header("zeros", size)
    tail = b"\0" * (1024 + (-size) % 512)
    zeros = b"\0" * ZEROS
    diff = hashlib.sha256(header)
    if comp == "gzip":
        c, run = (lambda b: gzip.compress(b, 9, mtime=0)), gzip.compress(zeros, 9, mtime=0)
    else:
        c, run = (lambda b: zstd_compress(b, 19)), zstd_compress(zeros, 19)
    path = tmp / f"zeros.{comp}"
    with open(path, "wb") as f:
        f.write(c(header))
        for _ in range(size // ZEROS):
            f.write(run)
            diff.update(zeros)
        f.write(c(tail))
        diff.update(tail)
    return Layer(blob=path, comp=comp, diff_id="sha256:" + diff.hexdigest())


@pytest.mark.parametrize("comp", ["gzip", "zstd"])
def test_layer_of_zeros_that_fits_is_no_bomb(hutch, state, tmp, comp):
    """256 MiB of zeros, over 1000:1 (a ratio limit would refuse it): it fits,
    so it is a layer like any other."""
    layer = _zero_file_layer(tmp, comp, 4 * ZEROS)
    assert layer.size < (4 * ZEROS) // 1000
    layout = write_layout(tmp / "layout", [Layer(state.bb_tar.read_bytes()), layer])["dir"]
    hutch("image", "import", layout, "zeros", timeout=120)
    try:
        out = hutch("run", "--rm", "zeros", "sh", "-c", "wc -c < /zeros").stdout
        assert out.strip() == str(4 * ZEROS)
    finally:
        hutch("image", "rm", "zeros")


def test_compressed_archive_bomb_refused(hutch, state, tmp, guard, bombs, spawn):
    """A gzip'd OCI layout tar is decompressed (into an unnamed temp file on
    the store's filesystem) before it is read: a member claiming more than
    fits is refused at its header, and nothing is left anywhere."""
    header = tarfile.TarInfo("oci-layout")
    lay = json.dumps({"imageLayoutVersion": "1.0.0"}).encode()
    header.size, header.mtime = len(lay), MTIME
    first = header.tobuf(format=tarfile.GNU_FORMAT) + lay + b"\0" * ((-len(lay)) % 512)
    src = tmp / "layout.tar.gz"
    gz_zeros = gzip.compress(b"\0" * ZEROS, 9, mtime=0)
    with open(src, "wb") as f:
        f.write(gzip.compress(first + _tar_header("blobs/sha256/" + "0" * 64, BOMB_SIZE), 9,
                              mtime=0))
        for _ in range(32):
            f.write(gz_zeros)
    tmpdir = tmp / "tmpdir"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir))
    start = time.monotonic()
    p = spawn("image", "import", src, "hostile-img", env=env)
    with DiskWatch(tmpdir, _images(state) / "tmp", pid=p.pid) as watch:
        out, err = p.communicate(timeout=60)
    elapsed = time.monotonic() - start
    assert p.returncode != 0
    assert b"does not fit" in err and b"decompression bomb" in err, err
    assert elapsed < 5
    assert watch.peak < 16 << 20, f"{watch.peak >> 20} MiB written for a bomb"
    assert os.listdir(tmpdir) == [], "a temp file is left in TMPDIR"
    assert staging(state) == []
    guard.check()


# ================================================================ crash safety

BIG = 64 << 20  # bytes of data per big layer: about half a second of unpacking each


def _big_layer(i, tag, dest):
    """A layer with dir-<i>/ (200 small files), /big-<i> (BIG bytes: one random
    MiB repeated) and, in layer 3, /marker. The gzip blob is written to dest as
    concatenated members (one stream, by gzip's definition), so the random MiB
    is compressed once: cheap to build, as slow to unpack as any data."""
    block = os.urandom(1 << 20)
    head_entries = [D(f"dir-{i}/")] + [F(f"dir-{i}/f{k}", f"{tag} {i} {k}\n".encode())
                                       for k in range(200)]
    big = tarfile.TarInfo(f"big-{i}")
    big.size, big.mode, big.mtime = BIG, 0o644, MTIME
    head = tar_members(*head_entries) + big.tobuf(format=tarfile.PAX_FORMAT)
    tail = b"\0" * ((-BIG) % 512)
    if i == 3:
        tail += tar_bytes(F("marker", f"{tag}\n".encode()))
    else:
        tail += b"\0" * 1024
    diff, data_sha = hashlib.sha256(head), hashlib.sha256()
    gz_block = gzip.compress(block, compresslevel=1, mtime=0)
    with open(dest, "wb") as f:
        f.write(gzip.compress(head, mtime=0))
        for _ in range(BIG >> 20):
            f.write(gz_block)
            diff.update(block)
            data_sha.update(block)
        diff.update(tail)
        f.write(gzip.compress(tail, mtime=0))
    layer = Layer(blob=Path(dest), comp="gzip", diff_id="sha256:" + diff.hexdigest())
    return layer, data_sha.hexdigest()


def _chain_ids(diff_ids):
    chains = [diff_ids[0][7:]]
    for d in diff_ids[1:]:
        chains.append(hashlib.sha256(f"sha256:{chains[-1]} {d}".encode()).hexdigest())
    return chains


class BigImage:
    pass


@pytest.fixture(scope="module")
def big_image(state):
    """bb's layer (already stored) and three big new layers, as an OCI layout."""
    b = BigImage()
    b.tag = "crash-" + secrets.token_hex(4)
    base = Layer(state.bb_tar.read_bytes())
    layers, b.big_sha = [base], {}
    work = state.base / "big-blobs"
    work.mkdir(exist_ok=True)
    for i in (1, 2, 3):
        layer, digest = _big_layer(i, b.tag, work / f"layer-{i}.gz")
        layers.append(layer)
        b.big_sha[i] = digest
    b.layout = write_layout(state.base / "big-layout", layers, ref="crash:1")
    b.dir = b.layout["dir"]
    b.config_id = b.layout["config"][7:]
    b.chains = _chain_ids([l.diff_id for l in layers])
    b.layers = layers
    return b


def _orphans_of(root):
    """hutch processes still working on ROOT (e.g. unpack workers of a killed import)."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(root).encode() in cmd and b"import" in cmd and cmd and cmd[0].endswith(b"hutch"):
            out.append(int(p))
    return out


def _kill_pids(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def orphan_reaper(state):
    """Whatever a killed import left running is killed (by pid) at teardown."""
    yield
    _kill_pids(_orphans_of(state.root))
    wait_for(lambda: not _orphans_of(state.root), timeout=10, what="import workers to exit")
    state.run("image", "ls")  # the store cleans what they left


def _file_sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _check_store_consistent(hutch, state, big_image):
    """After a crash: ls works, the image is either whole and named or absent,
    and every layer dir that exists is complete."""
    names = _names(hutch)
    layers_dir = _images(state) / "layers"
    for i, chain in enumerate(big_image.chains[1:], start=1):
        d = layers_dir / chain
        if d.exists():
            assert _file_sha(d / f"big-{i}") == big_image.big_sha[i], \
                f"layer {i} is stored incomplete after a crash"
            assert len(os.listdir(d / f"dir-{i}")) == 200
    if "crash:1" in names or "crash-img:latest" in names:
        out = hutch("run", "--rm", "crash-img", "cat", "/marker").stdout
        assert out == big_image.tag + "\n"
    return names


def _remove_crash_image(hutch, state, big_image):
    for n in ("crash-img", "crash:1"):
        hutch("image", "rm", n, check=False)
    hutch("image", "prune")
    for chain in big_image.chains[1:]:
        assert not (_images(state) / "layers" / chain).exists()
    assert not (_images(state) / "configs" / (big_image.config_id + ".json")).exists()


def _start_import(spawn, big_image, src=None, env=None):
    return spawn("image", "import", src or big_image.dir, "crash-img", env=env)


@pytest.fixture(scope="module")
def big_image_targz(state, big_image):
    """The big image's layout as a gzip'd tar: imported, it is first
    decompressed (into an unnamed temp file) and then unpacked."""
    plain = tar_tree(big_image.dir, state.base / "big-layout.tar")
    subprocess.run(["gzip", "-1", "-f", str(plain)], check=True)
    return state.base / "big-layout.tar.gz"


CRASH_CASES = [("layout", m) for m in ("0.05s", "0.2s", "0.5s", "1s", "first-layer-committed",
                                       "config-written")] + \
    [("oci-tar-gz", m) for m in ("0.05s", "0.3s", "0.8s", "first-layer-committed")]


@pytest.mark.parametrize("form,moment", CRASH_CASES)
def test_import_killed_at_any_moment(hutch, state, spawn, tmp, big_image, orphan_reaper, form,
                                     moment, request):
    _remove_crash_image(hutch, state, big_image)
    bb_before = tree_snapshot(state.bb_layer)
    src, env, tmpdir = None, None, tmp / "tmpdir"
    tmpdir.mkdir()
    if form == "oci-tar-gz":
        src = request.getfixturevalue("big_image_targz")
        env = dict(os.environ, TMPDIR=str(tmpdir))
    p = _start_import(spawn, big_image, src, env)
    layers_dir = _images(state) / "layers"
    cfg = _images(state) / "configs" / (big_image.config_id + ".json")
    if moment.endswith("s"):
        time.sleep(float(moment[:-1]))
    elif moment == "first-layer-committed":
        wait_for(lambda: any((layers_dir / c).exists() for c in big_image.chains[1:])
                 or p.poll() is not None, timeout=60, interval=0.0005, what="a layer rename")
    else:
        wait_for(lambda: cfg.exists() or p.poll() is not None, timeout=60, interval=0.0005,
                 what="the config file")
    workers = descendants(p.pid)
    running = p.poll() is None
    p.send_signal(signal.SIGKILL)
    p.wait()
    # Workers die with the import (the kernel needs a moment to tear them down:
    # more than 0.2 s on a loaded 2-core machine running the whole suite).
    deadline = time.monotonic() + 2.0
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.005)
    survivors = [w for w in workers if _alive(w)]
    # The next command cleans the staging.
    ls = hutch("image", "ls", check=False)
    staging_left = staging(state)
    assert ls.returncode == 0, ls.stderr
    # let survivors finish, so that the rest is about the store itself
    wait_for(lambda: not _orphans_of(state.root), timeout=60, what="orphaned workers")
    names = _check_store_consistent(hutch, state, big_image)
    assert staging(state) == [], f"staging left after the workers ended: {staging(state)}"
    assert tree_snapshot(state.bb_layer) == bb_before, "a killed import changed bb's layer"
    assert hutch("run", "--rm", "bb", "true").returncode == 0
    # nothing of a decompressed archive is left, in $TMPDIR or in the store
    assert os.listdir(tmpdir) == [], f"left in TMPDIR: {os.listdir(tmpdir)}"
    # and the same import works
    hutch("image", "import", src or big_image.dir, "crash-img", timeout=120)
    assert hutch("run", "--rm", "crash-img", "cat", "/marker").stdout == big_image.tag + "\n"
    _remove_crash_image(hutch, state, big_image)
    # An import's workers must die with it: else they go on unpacking into
    # staging dirs that stay locked, which the next command cannot clean.
    assert not survivors, (
        f"killed at {moment} ({'while running' if running else 'after it ended'}): unpack "
        f"workers {survivors} of the SIGKILLed import kept running; the next command left "
        f"staging {staging_left} (names after: {names})")
    assert staging_left == [], f"the next command left staging {staging_left}"


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_rootfs_tarball_import_killed(hutch, state, spawn, tmp, big_image, orphan_reaper):
    """The same for a plain rootfs tarball (one layer, unpacked by the import
    itself, or by its user-namespace child when rootless)."""
    tarball = tmp / "big-rootfs.tar.gz"
    shutil.copyfile(big_image.layers[1].blob, tarball)
    chain = big_image.layers[1].diff_id[7:]
    layers_before = set(os.listdir(_images(state) / "layers"))
    p = spawn("image", "import", tarball, "crash-rootfs")
    wait_for(lambda: any((_images(state) / "tmp" / n / "layer" / "big-1").exists()
                         for n in staging(state)) or p.poll() is not None,
             timeout=30, interval=0.001, what="unpacking to start")
    workers = descendants(p.pid)
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.monotonic() + 0.2
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.005)
    survivors = [w for w in workers if _alive(w)]
    hutch("image", "ls")
    staging_left = staging(state)
    wait_for(lambda: not _orphans_of(state.root), timeout=60, what="orphaned workers")
    hutch("image", "ls")
    assert staging(state) == []
    assert "crash-rootfs:latest" not in _names(hutch) or \
        _file_sha(_images(state) / "layers" / chain / "big-1") == big_image.big_sha[1]
    hutch("image", "import", tarball, "crash-rootfs", timeout=120)
    assert _file_sha(_images(state) / "layers" / chain / "big-1") == big_image.big_sha[1]
    hutch("image", "rm", "crash-rootfs")
    assert set(os.listdir(_images(state) / "layers")) == layers_before
    assert not survivors, f"processes {survivors} of the SIGKILLed import kept running"
    assert staging_left == [], f"the next command left staging {staging_left}"


def test_import_killed_then_prune_removes_unnamed_leftovers(hutch, state, spawn, big_image,
                                                            orphan_reaper):
    """Killed between the config and the name: what was committed belongs to no
    name, and prune removes exactly that."""
    _remove_crash_image(hutch, state, big_image)
    p = _start_import(spawn, big_image)
    cfg = _images(state) / "configs" / (big_image.config_id + ".json")
    wait_for(lambda: cfg.exists() or p.poll() is not None, timeout=60, interval=0.0002,
             what="the config file")
    p.send_signal(signal.SIGKILL)
    p.wait()
    wait_for(lambda: not _orphans_of(state.root), timeout=60, what="orphaned workers")
    _check_store_consistent(hutch, state, big_image)
    if "crash-img:latest" not in _names(hutch):
        hutch("image", "prune")
        for chain in big_image.chains[1:]:
            assert not (_images(state) / "layers" / chain).exists()
        assert not cfg.exists()
    assert state.bb_layer.is_dir()
    assert hutch("run", "--rm", "bb", "true").returncode == 0
    _remove_crash_image(hutch, state, big_image)


# ================================================================ concurrency


def _shared_base_images(state, tmp, tag, size=20 << 20):
    """Two layouts, A and B, that share a big new base layer (bb + base-data)."""
    base_tar = state.bb_tar.read_bytes()
    bb = Layer(base_tar)
    block = os.urandom(1 << 20)
    data = block * (size >> 20)
    base = Layer(tar_bytes(F("base-marker", f"{tag}\n".encode()), F("base-data", data)),
                 comp="gzip")
    out = {}
    for which in ("a", "b"):
        top = Layer(tar_bytes(F("marker", f"{tag}-{which}\n".encode()),
                              F(f"top-{which}", os.urandom(4 << 20))), comp="gzip")
        out[which] = write_layout(tmp / f"layout-{which}", [bb, base, top],
                                  ref=f"{tag}-{which}:1")["dir"]
    out["base_chain"] = _chain_ids([bb.diff_id, base.diff_id])[1]
    out["data_sha"] = hashlib.sha256(data).hexdigest()
    return out


def _check_base(state, imgs):
    d = _images(state) / "layers" / imgs["base_chain"]
    with open(d / "base-data", "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == imgs["data_sha"]


def test_concurrent_imports_sharing_a_base_layer(hutch, state, tmp, spawn):
    tag = "conc-" + secrets.token_hex(3)
    imgs = _shared_base_images(state, tmp, tag)
    before = set(os.listdir(_images(state) / "layers"))
    pa = spawn("image", "import", imgs["a"], f"{tag}-a")
    pb = spawn("image", "import", imgs["b"], f"{tag}-b")
    outs = [p.communicate(timeout=120) for p in (pa, pb)]
    try:
        assert pa.returncode == 0 and pb.returncode == 0, outs
        new = set(os.listdir(_images(state) / "layers")) - before
        dirs = [n for n in new if "." not in n]  # not .size, .split
        assert len(dirs) == 3, f"expected base + two tops, got {dirs}"
        assert imgs["base_chain"] in dirs
        _check_base(state, imgs)
        for w in ("a", "b"):
            assert hutch("run", "--rm", f"{tag}-{w}", "cat", "/marker", "/base-marker"
                         ).stdout == f"{tag}-{w}\n{tag}\n"
        assert staging(state) == []
    finally:
        for w in ("a", "b"):
            hutch("image", "rm", f"{tag}-{w}", check=False)
    assert set(os.listdir(_images(state) / "layers")) == before


def test_concurrent_imports_of_the_same_image(hutch, state, tmp, spawn):
    tag = "same-" + secrets.token_hex(3)
    imgs = _shared_base_images(state, tmp, tag)
    before = set(os.listdir(_images(state) / "layers"))
    procs = [spawn("image", "import", imgs["a"], f"{tag}-{k}") for k in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    try:
        assert all(p.returncode == 0 for p in procs), outs
        ids = {o[0].strip() for o in outs}
        assert len(ids) == 1, f"one image, one id: {ids}"
        new = {n for n in set(os.listdir(_images(state) / "layers")) - before
               if "." not in n}  # not .size, .split
        assert len(new) == 2
        _check_base(state, imgs)
        for k in range(3):
            assert hutch("run", "--rm", f"{tag}-{k}", "cat", "/marker").stdout == f"{tag}-a\n"
        assert staging(state) == []
    finally:
        for k in range(3):
            hutch("image", "rm", f"{tag}-{k}", check=False)
    assert set(os.listdir(_images(state) / "layers")) == before


def test_store_opens_never_remove_a_live_imports_staging(hutch, state, tmp, spawn):
    """Every command opening the store removes abandoned staging dirs; one that
    an import has just made (and not yet locked) is not abandoned. Many small
    imports race many `image ls`: every import must succeed."""
    tag = "stage-" + secrets.token_hex(3)
    bb = Layer(state.bb_tar.read_bytes())
    layouts = []
    for k in range(4):
        top = Layer(tar_bytes(F("marker", f"{tag}-{k}\n".encode())), comp="gzip")
        layouts.append(write_layout(tmp / f"layout-{k}", [bb, top], ref=f"{tag}-{k}:1")["dir"])
    rootfs = tmp / "rootfs.tar"
    rootfs.write_bytes(tar_bytes(F("marker", f"{tag}-rootfs\n".encode())))
    failures = []
    try:
        for rnd in range(15):
            procs = [spawn("image", "import", layouts[k], f"{tag}-{k}") for k in range(4)]
            procs.append(spawn("image", "import", rootfs, f"{tag}-rootfs"))
            procs += [spawn("image", "ls") for _ in range(6)]
            for p in procs:
                out, err = p.communicate(timeout=60)
                if p.returncode != 0:
                    failures.append((rnd, p.args[3:], err.decode().strip()))
            if failures:
                break
            for k in range(4):
                hutch("image", "rm", f"{tag}-{k}")
            hutch("image", "rm", f"{tag}-rootfs")
        assert not failures, f"imports failed while other commands opened the store: {failures}"
    finally:
        for k in range(4):
            hutch("image", "rm", f"{tag}-{k}", check=False)
        hutch("image", "rm", f"{tag}-rootfs", check=False)


def test_concurrent_imports_share_the_unpacking_of_a_common_layer(hutch, state, tmp, spawn):
    """Two imports at once that both need the same new layer: it is unpacked
    once (the second waits for it or takes it), not once per import. Seen from
    outside: at most one staging dir ever holds that layer's first entry."""
    tag = "share-" + secrets.token_hex(3)
    imgs = _shared_base_images(state, tmp, tag, size=60 << 20)
    tmpdir = _images(state) / "tmp"
    seen, stop = set(), threading.Event()

    def watch():
        while not stop.is_set():
            try:
                for n in os.listdir(tmpdir):
                    if os.path.exists(tmpdir / n / "layer" / "base-marker"):
                        seen.add(n)
            except OSError:
                pass
            time.sleep(0.002)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    pa = spawn("image", "import", imgs["a"], f"{tag}-a")
    pb = spawn("image", "import", imgs["b"], f"{tag}-b")
    outs = [p.communicate(timeout=120) for p in (pa, pb)]
    stop.set()
    t.join()
    try:
        assert pa.returncode == 0 and pb.returncode == 0, outs
        assert len(seen) <= 1, (
            f"the shared base layer was unpacked {len(seen)} times at once ({sorted(seen)}): "
            "overlapping imports do not share work")
    finally:
        for w in ("a", "b"):
            hutch("image", "rm", f"{tag}-{w}", check=False)


def _waiting_for_flock(path):
    """Whether a process is blocked in flock() on the file at path (/proc/locks
    lists waiters with "->")."""
    ino = os.stat(path).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        f = line.split()
        if "->" in f and "FLOCK" in f and f[-3].endswith(f":{ino}"):
            return True
    return False


def test_prune_removing_a_lock_file_does_not_let_two_imports_unpack_one_layer(
        hutch, state, tmp, spawn):
    """Prune deletes the lock files of layers that nobody holds: it locks one
    (LOCK_NB), unlinks it, closes it. An import A that opened that lock file
    just before, and locks it just after, must not end up holding a lock that
    nobody else sees, while an import B makes a new lock file and unpacks the
    same layer. The test does prune's part itself, at the worst moment: it
    holds the lock file, so A blocks in flock on it; it unlinks it; B starts;
    once B is unpacking, the test lets go. The layer must be unpacked once."""
    import fcntl
    tag = "lockrace-" + secrets.token_hex(3)
    bb = Layer(state.bb_tar.read_bytes())
    new = Layer(tar_bytes(F("marker", f"{tag}\n".encode()),
                          F("data", os.urandom(1 << 20) * 200)), comp="gzip")
    layout = write_layout(tmp / "layout", [bb, new], ref=f"{tag}:1")["dir"]
    chain = _chain_ids([bb.diff_id, new.diff_id])[1]
    lock = _images(state) / "locks" / chain
    tmpdir = _images(state) / "tmp"
    seen, stop = set(), threading.Event()

    def watch():
        while not stop.is_set():
            try:
                for n in os.listdir(tmpdir):
                    if os.path.exists(tmpdir / n / "layer" / "marker"):
                        seen.add(n)
            except OSError:
                pass
            time.sleep(0.002)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    lock.parent.mkdir(exist_ok=True)
    held = open(lock, "w")
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        a = spawn("image", "import", layout, f"{tag}-a")
        wait_for(lambda: _waiting_for_flock(lock) or a.poll() is not None, timeout=30,
                 interval=0.005, what="import A to wait for the layer's lock")
        assert a.poll() is None, a.communicate()
        os.unlink(lock)  # what prune does to a lock file it could take
        b = spawn("image", "import", layout, f"{tag}-b")
        wait_for(lambda: seen or b.poll() is not None, timeout=30, interval=0.002,
                 what="import B to unpack the layer")
    finally:
        held.close()
    outs = [p.communicate(timeout=120) for p in (a, b)]
    stop.set()
    t.join()
    try:
        assert a.returncode == 0 and b.returncode == 0, outs
        assert len(seen) <= 1, (
            f"the layer was unpacked {len(seen)} times ({sorted(seen)}): import A went on "
            "under a lock file that prune had removed")
        assert hutch("run", "--rm", f"{tag}-a", "cat", "/marker").stdout == f"{tag}\n"
    finally:
        for w in ("a", "b"):
            hutch("image", "rm", f"{tag}-{w}", check=False)


def test_image_rm_during_import_of_an_overlapping_image(hutch, state, tmp, spawn):
    """A is stored (bb + base + a). B (bb + base + b, b big) is being imported,
    and reuses the stored base. `image rm A` meanwhile must not leave B naming a
    base layer that is gone."""
    tag = "rmrace-" + secrets.token_hex(3)
    imgs = _shared_base_images(state, tmp, tag)
    # make B's own layer big, so that the rm lands while B unpacks it
    big = Layer(tar_bytes(F("marker", f"{tag}-b\n".encode()),
                          F("top-b", os.urandom(1 << 20) * 48)), comp="gzip")
    bb = Layer(state.bb_tar.read_bytes())
    base_layout = json.loads((imgs["a"] / "blobs" / "sha256" / json.loads(
        (imgs["a"] / "index.json").read_text())["manifests"][0]["digest"][7:]).read_text())
    base_desc = base_layout["layers"][1]
    base = Layer(blob=(imgs["a"] / "blobs" / "sha256" / base_desc["digest"][7:]).read_bytes(),
                 comp="gzip")
    base_cfg = json.loads((imgs["a"] / "blobs" / "sha256" /
                           base_layout["config"]["digest"][7:]).read_text())
    base.diff_id = base_cfg["rootfs"]["diff_ids"][1]
    layout_b = write_layout(tmp / "layout-b2", [bb, base, big], ref=f"{tag}-b:1")["dir"]
    before = set(os.listdir(_images(state) / "layers"))
    hutch("image", "import", imgs["a"], f"{tag}-a")
    try:
        pb = spawn("image", "import", layout_b, f"{tag}-b")
        tmpdir = _images(state) / "tmp"
        wait_for(lambda: any((tmpdir / n / "layer" / "marker").exists()
                             for n in os.listdir(tmpdir)) or pb.poll() is not None,
                 timeout=60, interval=0.001, what="B's unpacking to start")
        assert pb.poll() is None, "B finished before the race could be set up"
        rm = hutch("image", "rm", f"{tag}-a", check=False)
        out, err = pb.communicate(timeout=120)
        assert pb.returncode == 0, err
        if rm.returncode == 0:
            assert f"{tag}-a:latest" not in _names(hutch)
        else:
            assert f"{tag}-a" in rm.stderr
        cp = hutch("run", "--rm", f"{tag}-b", "cat", "/marker", "/base-marker", check=False)
        assert cp.returncode == 0 and cp.stdout == f"{tag}-b\n{tag}\n", (
            f"B is broken after `image rm A` ran during its import (rm: exit "
            f"{rm.returncode} {rm.stderr.strip()!r}):\n{cp.stderr}")
        _check_base(state, imgs)
    finally:
        for w in ("a", "b"):
            hutch("image", "rm", f"{tag}-{w}", check=False)
        hutch("image", "prune")
    assert set(os.listdir(_images(state) / "layers")) == before


# ================================================================ prune


def _untag(hutch, *names):
    """Take names away from their images by pointing them at bb."""
    for n in names:
        hutch("image", "tag", "bb", n)


def _cleanup_names(hutch, *names):
    for n in names:
        hutch("image", "rm", n, check=False)
    hutch("image", "prune")


def test_prune_never_frees_a_running_containers_layers(hutch, state, tmp, ctr):
    """A (bb + base + a) runs in a container; C (one unrelated layer) is unused.
    Both lose their names. Prune frees C, keeps every layer of A while the
    container runs, frees A after; both then import again into fresh dirs."""
    tag = "prune-" + secrets.token_hex(3)
    imgs = _shared_base_images(state, tmp, tag, size=4 << 20)
    c_layer = Layer(tar_bytes(F("only-c", f"{tag}-c\n".encode())), comp="gzip")
    imgs["c"] = write_layout(tmp / "layout-c", [c_layer], ref=f"{tag}-c:1")["dir"]
    layers_dir, configs_dir = _images(state) / "layers", _images(state) / "configs"
    before = set(os.listdir(layers_dir))
    names = [f"{tag}-a", f"{tag}-c"]
    cid = None
    try:
        ids = {w: hutch("image", "import", imgs[w], f"{tag}-{w}").stdout.strip()[7:]
               for w in ("a", "c")}
        chains = {w: _inspect(hutch, f"{tag}-{w}")["layers"] for w in ("a", "c")}
        cid = ctr.run(f"{tag}-a", "sleep", "100")
        _untag(hutch, *names)
        hutch("image", "prune")
        assert not (layers_dir / chains["c"][0][7:]).exists(), "prune kept an unused layer"
        assert not (configs_dir / f"{ids['c']}.json").exists()
        for c in chains["a"]:
            assert (layers_dir / c[7:]).is_dir(), f"prune removed layer {c} of a running container"
        assert hutch("exec", cid, "cat", "/marker", "/base-marker").stdout == \
            f"{tag}-a\n{tag}\n"
        assert state.bb_layer.is_dir()
        # once the container is gone, prune takes A too (but never bb's layer)
        hutch("rm", "-f", cid)
        cid = None
        hutch("image", "prune")
        for c in chains["a"]:
            if c[7:] not in before:
                assert not (layers_dir / c[7:]).exists()
        assert not (configs_dir / f"{ids['a']}.json").exists()
        assert state.bb_layer.is_dir()
        assert staging(state) == []
        # and the same images import again (fresh dirs, right after the removal)
        for w in ("a", "c"):
            hutch("image", "import", imgs[w], f"{tag}-{w}")
        assert hutch("run", "--rm", f"{tag}-a", "cat", "/marker").stdout == f"{tag}-a\n"
        assert (layers_dir / chains["c"][0][7:] / "only-c").read_text() == f"{tag}-c\n"
    finally:
        if cid:
            hutch("rm", "-f", cid, check=False)
        _cleanup_names(hutch, *names)
    assert set(os.listdir(layers_dir)) == before
    assert hutch("run", "--rm", "bb", "true").returncode == 0


def test_prune_frees_an_unnamed_images_own_layers_while_its_base_is_in_use(hutch, state,
                                                                          tmp, ctr):
    """A and B share a base; a container runs A; B loses its name. B's own top
    layer and its config are used by nothing: prune frees them, and keeps the
    base (held by the container through A)."""
    tag = "prune2-" + secrets.token_hex(3)
    imgs = _shared_base_images(state, tmp, tag, size=4 << 20)
    layers_dir, configs_dir = _images(state) / "layers", _images(state) / "configs"
    before = set(os.listdir(layers_dir))
    names = [f"{tag}-a", f"{tag}-b"]
    cid = None
    try:
        ids = {w: hutch("image", "import", imgs[w], f"{tag}-{w}").stdout.strip()[7:]
               for w in ("a", "b")}
        chains = {w: _inspect(hutch, f"{tag}-{w}")["layers"] for w in ("a", "b")}
        cid = ctr.run(f"{tag}-a", "sleep", "100")
        _untag(hutch, f"{tag}-b")
        hutch("image", "prune")
        for c in chains["a"]:
            assert (layers_dir / c[7:]).is_dir(), f"prune removed layer {c} of a running container"
        assert (layers_dir / imgs["base_chain"]).is_dir()
        b_top = chains["b"][-1][7:]
        assert not (layers_dir / b_top).exists() and \
            not (configs_dir / f"{ids['b']}.json").exists(), (
            "prune kept unnamed image B and its own top layer, which nothing uses, because a "
            "container holds B's shared base layer")
        assert hutch("exec", cid, "cat", "/marker").stdout == f"{tag}-a\n"
    finally:
        if cid:
            hutch("rm", "-f", cid, check=False)
        _cleanup_names(hutch, *names)
    assert set(os.listdir(layers_dir)) == before


# ================================================================ names and messages
# An image's own text (its ref.name annotation, RepoTags) reaches the admin's
# terminal only escaped: a name that is not valid is refused, naming it escaped,
# and never stored.

_BAD_NAMES = [
    ("evil\x1b[31m:1\nX", b"'evil\\x1b[31m:1\\x0aX'"),
    ("../../x:1", b"'../../x:1'"),
    ("x/\x1b]0;pwned\x07y:1", b"'x/\\x1b]0;pwned\\x07y:1'"),
]


@pytest.mark.parametrize("form", ["oci", "docker"])
@pytest.mark.parametrize("bad,shown", _BAD_NAMES, ids=["esc-newline", "dotdot", "osc-bel"])
def test_invalid_name_an_image_gives_itself_refused_escaped(hutch, state, tmp, form, bad, shown):
    layer = Layer(tar_bytes(F("file", b"x\n")), comp="gzip")
    if form == "oci":
        src = write_layout(tmp / "layout", [layer], ref=bad)["dir"]
    else:
        src = write_docker_archive(tmp / "docker.tar", [layer], repo_tag=bad)
    before = store_snapshot(state, hutch)
    cp = hutch("image", "import", src, check=False, text=False)
    assert cp.returncode == 125, cp.stdout
    assert b"gives its image an invalid name" in cp.stderr, cp.stderr
    assert shown in cp.stderr, cp.stderr
    assert b"\x1b" not in cp.stderr + cp.stdout and cp.stderr.count(b"\n") == 1, cp.stderr
    assert b"no name" not in cp.stderr
    assert store_snapshot(state, hutch) == before
    # named by the caller, it imports; the bad name is nowhere
    hutch("image", "import", src, "named-by-caller")
    try:
        for args in (("image", "ls"), ("image", "ls", "--format", "json"),
                     ("image", "inspect", "named-by-caller")):
            out = hutch(*args, text=False)
            assert b"\x1b" not in out.stdout + out.stderr, args
            assert bad.encode() not in out.stdout, args
        assert [n for n in _names(hutch) if "named-by-caller" in n] == ["named-by-caller:latest"]
    finally:
        hutch("image", "rm", "named-by-caller")


def test_bare_tag_with_an_escape_sequence_shown_escaped(hutch, state, tmp):
    layer = Layer(tar_bytes(F("file", b"x\n")), comp="gzip")
    src = write_layout(tmp / "layout", [layer], ref="\x1b[31mred")["dir"]
    cp = hutch("image", "import", src, check=False, text=False)
    assert cp.returncode == 125
    assert b"names its image only '\\x1b[31mred'" in cp.stderr, cp.stderr
    assert b"'layout:\\x1b[31mred' is not a valid name" in cp.stderr, cp.stderr
    assert b"\x1b" not in cp.stderr and cp.stderr.count(b"\n") == 1, cp.stderr


def _corrupt_stored_gzip(tar):
    """gzip level 0 (stored blocks) with bytes flipped in the first tar header:
    it inflates into garbage that only the CRC at the end gives away."""
    blob = bytearray(gzip.compress(tar, compresslevel=0, mtime=0))
    for i in range(100, 120):
        blob[i] ^= 0x55
    return bytes(blob)


@pytest.mark.parametrize("form", ["layout", "rootfs", "layout.tar.gz"])
def test_corrupt_gzip_said_as_corrupt_gzip(hutch, state, tmp, guard, form):
    """Not as the tar reader's view of the garbage ("layer entry '': header at
    byte N has an unreadable checksum"): the gzip data is corrupt, and where."""
    tar = tar_bytes(F("big", os.urandom(128 * 1024)), F("small", b"x\n"))
    if form == "layout":
        layer = Layer(tar, comp="gzip", blob=_corrupt_stored_gzip(tar))
        src = write_layout(tmp / "layout", [layer])["dir"]
    elif form == "rootfs":
        src = tmp / "rootfs.tar.gz"
        src.write_bytes(_corrupt_stored_gzip(tar))
    else:
        layout = write_layout(tmp / "layout", [Layer(tar, comp="gzip")])["dir"]
        src = tmp / "layout.tar.gz"
        src.write_bytes(_corrupt_stored_gzip(tar_tree(layout, tmp / "layout.tar").read_bytes()))
    msg = assert_refused(hutch, state, guard, src, "gzip data is corrupt near compressed byte ",
                         "CRC-32")
    assert "header" not in msg and "layer entry" not in msg, msg


@pytest.mark.parametrize("form", ["layout", "docker"])
def test_empty_layer_blob_said_empty(hutch, state, tmp, guard, form):
    real = Layer(tar_bytes(F("file", b"content\n")), comp="gzip")
    empty = Layer(blob=b"", comp="gzip", diff_id=real.diff_id)
    if form == "layout":
        src = write_layout(tmp / "layout", [empty])["dir"]
    else:
        src = write_docker_archive(tmp / "docker.tar", [empty])
    msg = assert_refused(hutch, state, guard, src, "the layer's blob is empty (0 bytes)",
                         real.diff_id)
    assert "uncompressed digest is" not in msg


def test_garbage_after_the_zstd_magic_said_corrupt(hutch, state, tmp, guard):
    # the frame header that follows asks for a dictionary: zstd says "Dictionary
    # mismatch", which alone would send one looking for a dictionary
    blob = bytes([0x28, 0xb5, 0x2f, 0xfd, 0x03, 0x7a, 0x11, 0x93, 0x5e]) + bytes(range(256)) * 4
    layer = Layer(blob=blob, comp="zstd", diff_id=sha256(b"whatever"))
    layout = write_layout(tmp / "layout", [layer])["dir"]
    assert_refused(hutch, state, guard, layout,
                   "zstd data is corrupt near compressed byte 0: not a valid frame header")


def test_unpacked_docker_archive_with_a_layer_symlinked_out_refused(hutch, state, tmp, guard):
    """`docker save | tar x` with its layer a symlink at the top pointing at a host
    file: a docker archive (its manifest.json says so), whose layer leads out of
    it, refused -- never imported as a rootfs of the archive's own files."""
    layer = Layer(tar_bytes(F("file", b"content\n")))
    archive = write_docker_archive(tmp / "docker.tar", [layer], layer_names=["layer.tar"],
                                   extra=[S("layer.tar", str(guard.outside / "victim"))])
    d = tmp / "docker-dir"
    d.mkdir()
    with tarfile.open(archive) as t:
        t.extractall(d, filter="tar") if hasattr(tarfile, "data_filter") else t.extractall(d)
    assert (d / "layer.tar").is_symlink()
    assert_refused(hutch, state, guard, d, "'layer.tar' leads outside the layout directory")
