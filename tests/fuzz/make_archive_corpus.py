#!/usr/bin/env python3
"""Seed corpus for fuzz_archive: small image archives as tars, real-looking
(an OCI layout, docker save legacy and Docker 25+) and hostile (links out of
the archive, loops, traversal names, missing and corrupt blobs).

    python3 make_archive_corpus.py corpus/archive
"""
import hashlib
import io
import json
import os
import sys
import tarfile


def digest(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


class Tar:
    def __init__(self):
        self.buf = io.BytesIO()
        self.t = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.USTAR_FORMAT)

    def file(self, name, data):
        if isinstance(data, str):
            data = data.encode()
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        ti.mtime = 0
        self.t.addfile(ti, io.BytesIO(data))

    def link(self, name, target, kind=tarfile.SYMTYPE):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.linkname = target
        self.t.addfile(ti)

    def dir(self, name):
        ti = tarfile.TarInfo(name)
        ti.type = tarfile.DIRTYPE
        ti.mode = 0o755
        self.t.addfile(ti)

    def bytes(self):
        self.t.close()
        return self.buf.getvalue()


def image(tag="1.0", arch="amd64"):
    """Blobs of a one-layer image: {name: bytes}, and the manifest's digest and size."""
    layer = b"layer bytes of " + tag.encode()
    cfg = json.dumps({"architecture": arch, "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": [digest(layer)]}}).encode()
    man = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(cfg), "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest(layer), "size": len(layer)}]}).encode()
    blobs = {digest(b)[7:]: b for b in (layer, cfg, man)}
    return blobs, man, cfg, layer


def oci_tar(entries, blobs, prefix="", extra=None):
    t = Tar()
    if prefix:
        t.dir(prefix)
    t.dir(prefix + "blobs/")
    t.dir(prefix + "blobs/sha256/")
    for h, b in blobs.items():
        t.file(prefix + "blobs/sha256/" + h, b)
    t.file(prefix + "index.json", json.dumps({"schemaVersion": 2, "manifests": entries}))
    t.file(prefix + "oci-layout", '{"imageLayoutVersion":"1.0.0"}')
    for name, data in (extra or {}).items():
        t.file(name, data)
    return t.bytes()


def desc(man, ref=None, platform=None, mt="application/vnd.oci.image.manifest.v1+json"):
    d = {"mediaType": mt, "digest": digest(man), "size": len(man)}
    if ref:
        d["annotations"] = {"org.opencontainers.image.ref.name": ref}
    if platform:
        d["platform"] = platform
    return d


def main(out):
    os.makedirs(out, exist_ok=True)
    files = {}
    blobs, man, cfg, layer = image()
    files["oci_simple.tar"] = oci_tar([desc(man, "1.0")], blobs, prefix="./")
    files["oci_named.tar"] = oci_tar([desc(man, "docker.io/library/app:1")], blobs)

    # multi-platform: an index blob inside
    allb = {}
    plats = []
    for arch in ("amd64", "arm64", "arm"):
        b, m, _, _ = image(arch, arch)
        allb.update(b)
        plats.append(desc(m, platform={"os": "linux", "architecture": arch}))
    inner = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": plats}).encode()
    allb[digest(inner)[7:]] = inner
    files["oci_multiarch.tar"] = oci_tar(
        [desc(inner, "app:1", mt="application/vnd.oci.image.index.v1+json")], allb)

    # docker save, legacy: <id>/layer.tar, one a symlink to the other
    id1, id2 = "1" * 64, "2" * 64
    t = Tar()
    t.dir(id1 + "/")
    t.file(id1 + "/layer.tar", layer)
    t.file(id1 + "/VERSION", "1.0")
    t.file(id1 + "/json", "{}")
    t.dir(id2 + "/")
    t.link(id2 + "/layer.tar", "../" + id1 + "/layer.tar")
    cfg2 = json.dumps({"rootfs": {"type": "layers",
                                  "diff_ids": [digest(layer), digest(layer)]}}).encode()
    t.file(digest(cfg2)[7:] + ".json", cfg2)
    t.file("manifest.json", json.dumps([{"Config": digest(cfg2)[7:] + ".json",
                                         "RepoTags": ["app:1", "docker.io/library/app:latest"],
                                         "Layers": [id1 + "/layer.tar", id2 + "/layer.tar"]}]))
    t.file("repositories", "{}")
    files["docker_legacy.tar"] = t.bytes()

    # Docker 25+: OCI layout plus manifest.json by blob path
    h = {digest(b)[7:]: b for b in (layer, cfg)}
    dm = json.dumps([{"Config": "blobs/sha256/" + digest(cfg)[7:], "RepoTags": ["app:1"],
                      "Layers": ["blobs/sha256/" + digest(layer)[7:]]}])
    files["docker_25.tar"] = oci_tar([desc(man, "1")], blobs, extra={"manifest.json": dm})
    del h

    # hostile
    def docker_with(layer_member_fn, layer_name="x/layer.tar"):
        t = Tar()
        layer_member_fn(t)
        c = json.dumps({"rootfs": {"type": "layers", "diff_ids": [digest(layer)]}})
        t.file("c.json", c)
        t.file("manifest.json", json.dumps([{"Config": "c.json", "RepoTags": ["app:1"],
                                             "Layers": [layer_name]}]))
        return t.bytes()

    files["evil_symlink_out.tar"] = docker_with(lambda t: t.link("x/layer.tar", "../../etc/passwd"))
    files["evil_symlink_abs.tar"] = docker_with(lambda t: t.link("x/layer.tar", "/etc/passwd"))
    files["evil_hardlink_out.tar"] = docker_with(
        lambda t: t.link("x/layer.tar", "../etc/shadow", tarfile.LNKTYPE))
    files["evil_loop.tar"] = docker_with(lambda t: (t.link("x/layer.tar", "../y/layer.tar"),
                                                    t.link("y/layer.tar", "../x/layer.tar")))
    files["evil_dotdot_member.tar"] = docker_with(lambda t: t.file("../x/layer.tar", b"evil"))
    files["evil_manifest_path.tar"] = docker_with(lambda t: t.file("a", b"a"),
                                                  layer_name="../../etc/passwd")
    files["evil_dir_layer.tar"] = docker_with(lambda t: t.dir("x/layer.tar/"))
    files["dup_members.tar"] = docker_with(lambda t: (t.file("./x/layer.tar", b"one"),
                                                      t.file("x//layer.tar", layer)))
    missing = dict(blobs)
    del missing[digest(layer)[7:]]
    files["oci_missing_blob.tar"] = oci_tar([desc(man)], missing)
    corrupt = dict(blobs)
    corrupt[digest(man)[7:]] = man.replace(b"amd64", b"arm64") + b" "
    files["oci_corrupt_manifest.tar"] = oci_tar([desc(man)], corrupt)
    files["oci_two_names.tar"] = oci_tar([desc(man, "a:1"), desc(man, "b:1")], blobs)
    # an index that names itself (its digest can't be its own, so a loop of two)
    files["oci_index_points_to_missing_index.tar"] = oci_tar(
        [desc(b"{}", mt="application/vnd.oci.image.index.v1+json")], blobs)

    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(files)} seeds in {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "corpus/archive")
