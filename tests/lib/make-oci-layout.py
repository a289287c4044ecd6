#!/usr/bin/env python3
"""Write a three-layer OCI image layout for tests: the rootfs tarball given,
then a layer that deletes /var/tmp (a whiteout) and adds /marker, then one
that replaces /home/app (an opaque directory) with a single file "new".
Usage: make-oci-layout.py [--config JSON] ROOTFS_TAR OUT_DIR [REF_NAME]
--config: keys merged into the image config's "config" (Entrypoint, Cmd, Env,
WorkingDir, User, StopSignal, ExposedPorts, Labels, ...)."""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile


def blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def tar_of(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main():
    args = sys.argv[1:]
    extra = {}
    if len(args) >= 2 and args[0] == "--config":
        extra = json.loads(args[1])
        args = args[2:]
    rootfs, out = args[0], args[1]
    ref = args[2] if len(args) > 2 else "1"
    with open(rootfs, "rb") as f:
        base = f.read()
    layers = [base,
              tar_of([("var/.wh.tmp", b""), ("marker", b"layer 2\n")]),
              tar_of([("home/app/.wh..wh..opq", b""), ("home/app/new", b"new\n")])]
    descs, diff_ids = [], []
    for raw in layers:
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        digest, size = blob(out, gzip.compress(raw, 6, mtime=0))
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      "digest": digest, "size": size})
    image_config = {"Env": ["PATH=/usr/bin:/bin:/usr/sbin:/sbin"], "Cmd": ["/bin/sh"]}
    image_config.update(extra)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": image_config,
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    cdigest, csize = blob(out, config)
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": cdigest, "size": csize},
                           "layers": descs}).encode()
    mdigest, msize = blob(out, manifest)
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2,
                   "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                  "digest": mdigest, "size": msize,
                                  "annotations": {"org.opencontainers.image.ref.name": ref}}]}, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


if __name__ == "__main__":
    main()
