#!/usr/bin/python3
"""Build the image benchmark's inputs: a ~500 MB, three-layer image made from local files.

usage: mkimage.py CACHE_DIR ROOTFS      prints the directory holding the inputs

The inputs are cached in CACHE_DIR/KEY, where KEY is RECIPE_VERSION plus a hash of
everything they are made from (the recipe version, each source file's path, type, mode,
size, mtime and link target; the busybox rootfs without its mtimes). A rerun with the same
key reuses them; other keys' directories are removed. Everything is deterministic: entries
in sorted order, owner 0:0, one fixed mtime, `gzip -n`, fixed JSON; the same sources give
the same digests.

Layers (paths inside the image are the host's):
  1  the busybox rootfs (ROOTFS) + /usr/lib/python3, /usr/lib/python3.11, /usr/share/perl,
     /usr/share/vim, /usr/share/cmake-3.25
  2  /usr/share/locale, /usr/share/doc
  3  /usr/lib/postgresql, /usr/share/i18n, /usr/share/mime, /usr/share/zoneinfo, a changed
     /etc/passwd, and whiteouts of layer-1 files: every 40th file of /usr/lib/python3
     (`.wh.NAME`), the directory /usr/share/vim/vim90/doc (`.wh.doc`), and an opaque
     /usr/share/cmake-3.25/Help (`.wh..wh..opq` plus one new file)
Each layer also holds /etc/hutch-bench-layerN, a marker that checks look for.

Written to CACHE_DIR/KEY/:
  layerN.tar, layerN.tar.gz (gzip -n -6), layerN.tar.zst (zstd -3)
  oci-gzip/, oci-zstd/       OCI image layouts, tag "1" (blobs hard-linked from blobs/)
  oci-gzip-l1/               layer 1 alone as a one-layer image, tag "1"
  docker-archive.tar         `skopeo copy oci:oci-gzip:1 docker-archive:...:bench/big:1`
  info.json                  entries and bytes per layer, digests, the key, the sources
"""
import concurrent.futures
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile

# Bump when anything below changes what is built.
RECIPE_VERSION = "big3-v1"
MTIME = 1704067200  # 2024-01-01T00:00:00Z, for every entry
CREATED = "2024-01-01T00:00:00Z"
LAYER_SOURCES = {
    1: ["usr/lib/python3", "usr/lib/python3.11", "usr/share/perl", "usr/share/vim",
        "usr/share/cmake-3.25"],
    2: ["usr/share/locale", "usr/share/doc"],
    3: ["usr/lib/postgresql", "usr/share/i18n", "usr/share/mime", "usr/share/zoneinfo"],
}
WHITEOUT_EVERY = 40  # every Nth regular file under usr/lib/python3 is deleted in layer 3
WHITEOUT_DIR = "usr/share/vim/vim90/doc"
OPAQUE_DIR = "usr/share/cmake-3.25/Help"
HOST = "/"

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
            "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}
EXT = {"gzip": "tar.gz", "zstd": "tar.zst"}


def walk(base, top):
    """Every entry under base/top (top included), as paths relative to base, sorted."""
    out = [top]
    for dirpath, dirnames, filenames in os.walk(os.path.join(base, top)):
        rel = os.path.relpath(dirpath, base)
        for name in dirnames + filenames:
            out.append(os.path.join(rel, name))
    return sorted(out)


def parents(path):
    parts = path.split("/")[:-1]
    return ["/".join(parts[:i + 1]) for i in range(len(parts))]


def layer_entries(rootfs):
    """{layer: [(source_base or None, path) ...]}: None = made up here (see synthetic())."""
    layers = {}
    rootfs_paths = walk(rootfs, ".")[1:]
    rootfs_paths = sorted(os.path.normpath(p) for p in rootfs_paths)
    for n, tops in LAYER_SOURCES.items():
        entries = {}
        for top in tops:
            for p in parents(top):
                entries.setdefault(p, HOST)
            for p in walk(HOST, top):
                entries[p] = HOST
        if n == 1:
            for p in rootfs_paths:
                entries[p] = rootfs
        entries.setdefault("etc", rootfs)
        entries[f"etc/hutch-bench-layer{n}"] = None
        if n == 3:
            entries["etc/passwd"] = None
            for p in whiteouts(layers[1]):
                for d in parents(p):
                    entries.setdefault(d, HOST)
                entries[p] = None
            entries[f"{OPAQUE_DIR}/README.hutch-bench"] = None
        layers[n] = sorted(((base, p) for p, base in entries.items()), key=lambda e: e[1])
    return layers


def whiteouts(layer1):
    files = [p for base, p in layer1
             if base == HOST and p.startswith("usr/lib/python3/")
             and stat.S_ISREG(os.lstat(os.path.join(base, p)).st_mode)]
    out = []
    for p in files[WHITEOUT_EVERY - 1::WHITEOUT_EVERY]:
        d, name = os.path.split(p)
        out.append(f"{d}/.wh.{name}")
    d, name = os.path.split(WHITEOUT_DIR)
    out.append(f"{d}/.wh.{name}")
    out.append(f"{OPAQUE_DIR}/.wh..wh..opq")
    return out


def synthetic(path, n):
    """Content of the entries made up here."""
    if path.startswith("etc/hutch-bench-layer"):
        return f"hutch image benchmark, layer {n}\n".encode()
    if path == "etc/passwd":
        return (b"root:x:0:0:root:/root:/bin/sh\n"
                b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
                b"bench:x:1000:1000:bench:/home/bench:/bin/sh\n")
    if path.endswith("README.hutch-bench"):
        return b"the opaque directory's only file\n"
    return b""  # whiteouts


def fingerprint(layers, rootfs):
    h = hashlib.sha256(RECIPE_VERSION.encode() + b"\n")
    for n, entries in layers.items():
        for base, p in entries:
            if base is None:
                h.update(f"{n} synthetic {p}\n".encode())
                continue
            st = os.lstat(os.path.join(base, p))
            link = os.readlink(os.path.join(base, p)) if stat.S_ISLNK(st.st_mode) else ""
            mtime = st.st_mtime_ns if base == HOST else 0
            h.update(f"{n} {base == HOST} {p} {st.st_mode:o} {st.st_size} {mtime} {link}\n".encode())
            if base != HOST and stat.S_ISREG(st.st_mode):
                with open(os.path.join(base, p), "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:16]


def write_layer(path, n, entries):
    """An uncompressed layer tar; returns (entries, bytes of file content)."""
    count = size = 0
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for base, p in entries:
            if base is None:
                data = synthetic(p, n)
                ti = tarfile.TarInfo(p)
                ti.size, ti.mode = len(data), 0o644
                fobj = io.BytesIO(data)
            else:
                src = os.path.join(base, p)
                ti = tar.gettarinfo(src, arcname=p)
                fobj = open(src, "rb") if ti.isreg() else None
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            ti.mtime = MTIME
            try:
                tar.addfile(ti, fobj)
            finally:
                if fobj is not None:
                    fobj.close()
            count += 1
            size += ti.size if ti.isreg() else 0
    return count, size


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def compress(src, kind):
    dst = f"{src[:-4]}.{EXT[kind]}"
    argv = ["gzip", "-n", "-6", "-c"] if kind == "gzip" else ["zstd", "-3", "-q", "-c"]
    with open(src, "rb") as fin, open(dst + ".tmp", "wb") as fout:
        subprocess.run(argv, stdin=fin, stdout=fout, check=True)
    os.rename(dst + ".tmp", dst)
    return dst


def put_blob(out, data=None, path=None):
    """Store a blob in out/blobs/sha256/; returns (digest, size)."""
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    if path is None:
        digest = hashlib.sha256(data).hexdigest()
        dst = os.path.join(out, "blobs", "sha256", digest)
        with open(dst, "wb") as f:
            f.write(data)
        return digest, len(data)
    digest = sha256_file(path)
    dst = os.path.join(out, "blobs", "sha256", digest)
    if not os.path.exists(dst):
        os.link(path, dst)
    return digest, os.path.getsize(path)


def dumps(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def write_layout(out, name, layers, diff_ids, kind):
    """An OCI image layout out/name with the given layers (layerN.tar.* paths), tag "1"."""
    lay = os.path.join(out, name)
    os.makedirs(lay)
    config = {
        "architecture": "amd64", "os": "linux", "created": CREATED,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + d for d in diff_ids]},
        "history": [{"created": CREATED, "created_by": f"hutch bench layer {i + 1}"}
                    for i in range(len(layers))],
    }
    cdig, csize = put_blob(lay, data=dumps(config))
    descs = []
    for path in layers:
        dig, size = put_blob(lay, path=path)
        descs.append({"mediaType": MT_LAYER[kind], "digest": "sha256:" + dig, "size": size})
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                "config": {"mediaType": MT_CONFIG, "digest": "sha256:" + cdig, "size": csize},
                "layers": descs}
    mdig, msize = put_blob(lay, data=dumps(manifest))
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": MT_MANIFEST, "digest": "sha256:" + mdig, "size": msize,
                            "annotations": {"org.opencontainers.image.ref.name": "1"}}]}
    with open(os.path.join(lay, "index.json"), "wb") as f:
        f.write(dumps(index))
    with open(os.path.join(lay, "oci-layout"), "wb") as f:
        f.write(dumps({"imageLayoutVersion": "1.0.0"}))
    return "sha256:" + mdig


def build(out, layers, key):
    os.makedirs(out)
    info = {"key": key, "recipe": RECIPE_VERSION, "sources": LAYER_SOURCES, "layers": []}
    tars = {}
    for n, entries in layers.items():
        tars[n] = os.path.join(out, f"layer{n}.tar")
        count, size = write_layer(tars[n], n, entries)
        info["layers"].append({"layer": n, "entries": count, "file_bytes": size,
                               "tar_bytes": os.path.getsize(tars[n]),
                               "whiteouts": sum(1 for _, p in entries
                                                if os.path.basename(p).startswith(".wh."))})
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        jobs = {(n, kind): pool.submit(compress, tars[n], kind)
                for n in tars for kind in ("gzip", "zstd")}
        diff_ids = {n: pool.submit(sha256_file, tars[n]) for n in tars}
        comp = {k: j.result() for k, j in jobs.items()}
        diff_ids = {n: j.result() for n, j in diff_ids.items()}
    for li in info["layers"]:
        n = li["layer"]
        li["diff_id"] = "sha256:" + diff_ids[n]
        for kind in ("gzip", "zstd"):
            li[f"{kind}_bytes"] = os.path.getsize(comp[(n, kind)])
    order = sorted(tars)
    for kind in ("gzip", "zstd"):
        info[f"manifest_{kind}"] = write_layout(out, f"oci-{kind}", [comp[(n, kind)] for n in order],
                                                [diff_ids[n] for n in order], kind)
    info["manifest_gzip_l1"] = write_layout(out, "oci-gzip-l1", [comp[(1, "gzip")]],
                                            [diff_ids[1]], "gzip")
    # The docker-archive for `podman load`: skopeo's own writer (layers uncompressed, as
    # `docker save` writes them).
    subprocess.run(["skopeo", "copy", "-q", f"oci:{out}/oci-gzip:1",
                    f"docker-archive:{out}/docker-archive.tar:bench/big:1"],
                   check=True, stdout=subprocess.DEVNULL)
    info["docker_archive_bytes"] = os.path.getsize(f"{out}/docker-archive.tar")
    info["entries"] = sum(li["entries"] for li in info["layers"])
    info["file_bytes"] = sum(li["file_bytes"] for li in info["layers"])
    info["tar_bytes"] = sum(li["tar_bytes"] for li in info["layers"])
    for kind in ("gzip", "zstd"):
        info[f"{kind}_bytes"] = sum(li[f"{kind}_bytes"] for li in info["layers"])
    with open(os.path.join(out, "info.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
        f.write("\n")


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    cache, rootfs = sys.argv[1], sys.argv[2]
    for tops in LAYER_SOURCES.values():
        for top in tops:
            if not os.path.isdir(os.path.join(HOST, top)):
                print(f"mkimage: /{top} is missing: the image is made from it "
                      f"(bench/mkimage.py, LAYER_SOURCES)", file=sys.stderr)
                return 1
    layers = layer_entries(rootfs)
    key = f"{RECIPE_VERSION}-{fingerprint(layers, rootfs)}"
    out = os.path.join(cache, key)
    os.makedirs(cache, exist_ok=True)
    for old in os.listdir(cache):
        path = os.path.join(cache, old)
        # other versions' inputs; not the "current" symlink that bench/images.sh keeps
        if old != key and os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
    if not os.path.exists(os.path.join(out, "info.json")):
        if os.path.exists(out):  # left half-built by an interrupted run
            shutil.rmtree(out)
        print(f"mkimage: building the image inputs in {out} (cached for later runs)",
              file=sys.stderr)
        build(out, layers, key)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
