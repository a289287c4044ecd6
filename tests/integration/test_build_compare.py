"""The same Containerfile built by hutch and by podman build gives the same image.

podman gets the suite's busybox image through `hutch image save` + `podman load`,
in a store of the test's own (removed after), and builds with no network
(`--network none`, or in the root suite's own network namespace) and no pull.
Both images are saved as docker archives and compared by what is in them: the
files of the final rootfs (paths, types, modes, owners, contents, symlink
targets; not times) and the config fields the instructions set. Where they
differ by design, docs/build.md says so and the test asserts that difference.
"""
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

import pytest

ROOTLESS = os.geteuid() != 0

# both are in the Makefile's DEB_DEPS (`make deps`)
@pytest.fixture(autouse=True)
def _tools():
    missing = [t for t in ("podman", "runc") if not shutil.which(t)]
    assert not missing, f"{', '.join(missing)} missing: `make deps` installs them"

# Every instruction and form podman 4.3 builds too. Its buildah (1.28) has no
# heredocs: podman gets the same script as one RUN line (HEREDOC_AS_LINE).
CONTAINERFILE = r"""# escape=\
ARG BASE=bb
FROM ${BASE} AS builder
ARG VERSION=1.0
RUN <<EOF
set -e
mkdir -p /out/sub /out/empty
echo "v$VERSION" > /out/version
echo heredoc > /out/sub/h.txt
ln -s h.txt /out/sub/link
ln -s /nowhere /out/dangling
chmod 0750 /out/sub
chmod 4755 /out/version
chown 1000:100 /out/sub/h.txt
EOF

FROM bb
ARG VERSION=1.0
ENV APP_HOME=/srv/app \
    GREETING="hello world"
LABEL org.example.version="$VERSION" org.example.name=cmp "with space"="a b"
WORKDIR $APP_HOME
COPY --from=builder /out/ ./built/
COPY --from=builder /out/version /usr/share/version
COPY --chown=app:users --chmod=0640 conf.txt ./conf/
COPY --chown=1000 dir/ ./dir/
COPY dir/script.sh dir/a.txt /usr/local/bin/
ADD bundle.tar.gz /opt/
ADD plain.txt /opt/plain.txt
RUN echo "$GREETING $VERSION" > run.txt && chown 1000:1000 run.txt \
    && rm /bin/zcat && rm -r /var/tmp && mkdir -p /var/lib/app && ln -s /srv/app/run.txt /run.link \
    && chmod 0700 /root
USER app:app
WORKDIR sub
EXPOSE 8080 53/udp
VOLUME ["/data", "/var/lib/app"]
SHELL ["/bin/sh", "-ec"]
HEALTHCHECK --interval=5s --timeout=2s --start-period=1s --retries=3 CMD test -f /srv/app/run.txt
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hello"]
"""

HEREDOC_AS_LINE = (
    "RUN set -e; mkdir -p /out/sub /out/empty; echo \"v$VERSION\" > /out/version; "
    "echo heredoc > /out/sub/h.txt; ln -s h.txt /out/sub/link; "
    "ln -s /nowhere /out/dangling; chmod 0750 /out/sub; chmod 4755 /out/version; "
    "chown 1000:100 /out/sub/h.txt\n")


def for_podman(text):
    start = text.index("RUN <<EOF\n")
    end = text.index("\nEOF\n", start) + len("\nEOF\n")
    return text[:start] + HEREDOC_AS_LINE + text[end:]


def make_context(ctx):
    ctx.mkdir()
    (ctx / "Containerfile").write_text(CONTAINERFILE)
    (ctx / "Containerfile.podman").write_text(for_podman(CONTAINERFILE))
    (ctx / ".dockerignore").write_text("Containerfile*\ndir/ignored*\n")
    (ctx / "conf.txt").write_text("key=value\n")
    (ctx / "plain.txt").write_text("not an archive\n")
    d = ctx / "dir"
    (d / "sub" / "deeper").mkdir(parents=True)
    (d / "empty").mkdir()
    (d / "a.txt").write_text("a\n")
    (d / "sub" / "b.txt").write_text("b\n")
    (d / "sub" / "deeper" / "c.bin").write_bytes(bytes(range(256)) * 64)
    (d / "script.sh").write_text("#!/bin/sh\necho script\n")
    (d / "ignored.txt").write_text("never copied\n")
    os.chmod(d / "script.sh", 0o755)
    os.chmod(d / "sub", 0o750)
    os.chmod(d / "a.txt", 0o600)
    os.symlink("a.txt", d / "link")
    os.symlink("sub/b.txt", d / "sub-link")
    # a local archive with owners, modes, a symlink, a hard link and a directory
    with tarfile.open(ctx / "bundle.tar.gz", "w:gz") as t:
        def add(name, typ=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, link=""):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.uid, ti.gid, ti.linkname = typ, mode, uid, gid, link
            ti.size = len(data) if typ == tarfile.REGTYPE else 0
            ti.mtime = 1700000000
            t.addfile(ti, io.BytesIO(data) if typ == tarfile.REGTYPE else None)
        add("bundle", tarfile.DIRTYPE, mode=0o750, uid=123, gid=456)
        add("bundle/owned", data=b"owned by 123:456\n", mode=0o640, uid=123, gid=456)
        add("bundle/exec", data=b"#!/bin/sh\n", mode=0o755)
        add("bundle/sym", tarfile.SYMTYPE, link="owned")
        add("bundle/hard", tarfile.LNKTYPE, link="bundle/exec", mode=0o755)  # as tar writes it
        add("bundle/nested/deep.txt", data=b"deep\n")
    return ctx


# ------------------------------------------------------------- reading images


def _layer_tar(data):
    if data[:4] == b"\x28\xb5\x2f\xfd":
        data = subprocess.run(["zstd", "-dc"], input=data, capture_output=True,
                              check=True).stdout
    return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")


def read_docker_archive(path):
    """(files, config) of a `docker save` archive: files maps each path of the
    flattened rootfs to (type, mode, uid, gid, content sha256 or link target)."""
    with tarfile.open(path) as arch:
        manifest = json.load(arch.extractfile("manifest.json"))[0]
        config = json.load(arch.extractfile(manifest["Config"]))
        files = {}
        for lname in manifest["Layers"]:
            with _layer_tar(arch.extractfile(lname).read()) as layer:
                for m in layer.getmembers():
                    name = os.path.normpath("/" + m.name)
                    d, base = os.path.split(name)
                    if base == ".wh..wh..opq":
                        for k in [k for k in files if k.startswith(d.rstrip("/") + "/")]:
                            del files[k]
                        continue
                    if base.startswith(".wh."):
                        gone = os.path.join(d, base[4:])
                        for k in [k for k in files if k == gone or k.startswith(gone + "/")]:
                            del files[k]
                        continue
                    if m.isreg():
                        what = ("file", hashlib.sha256(layer.extractfile(m).read()).hexdigest())
                    elif m.islnk():
                        target = files.get(os.path.normpath("/" + m.linkname))
                        what = ("file", target[4] if target else None)
                    elif m.issym():
                        what = ("symlink", m.linkname)
                    elif m.isdir():
                        what = ("dir", None)
                    else:
                        what = ("other%d" % ord(m.type), f"{m.devmajor}:{m.devminor}")
                    files[name] = (what[0], m.mode & 0o7777, m.uid, m.gid, what[1])
    return files, config


FIELDS = ("Env", "Entrypoint", "Cmd", "WorkingDir", "User", "Labels", "ExposedPorts",
          "Volumes", "StopSignal", "Healthcheck", "Shell")


# ------------------------------------------------------------- podman


@pytest.fixture
def podman(tmp, monkeypatch):
    """podman with a store of this test's own; the store goes afterwards."""
    # rootless podman wants a run root of at most 50 characters
    short = tempfile.mkdtemp(prefix="hb-", dir="/tmp")
    base = ["podman", "--root", str(tmp / "p"), "--runroot", f"{short}/run",
            "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
            "--events-backend", "none"]
    if ROOTLESS:  # podman's own rootless mode: its runtime dir in the test's
        os.mkdir(f"{short}/xdg", 0o700)
        monkeypatch.setenv("XDG_RUNTIME_DIR", f"{short}/xdg")

    def run(*args, timeout=300):
        cp = subprocess.run(base + [str(a) for a in args], capture_output=True, text=True,
                            timeout=timeout)
        assert cp.returncode == 0, f"podman {args}: {cp.stderr}"
        return cp

    yield run
    subprocess.run(base + ["unshare", "rm", "-rf", str(tmp / "p"), f"{short}/run"]
                   if ROOTLESS else base + ["system", "reset", "-f"],
                   capture_output=True, timeout=120)
    try:  # rootless podman leaves a pause process holding its namespaces: ours goes
        os.kill(int(open(f"{short}/xdg/libpod/tmp/pause.pid").read()), 9)
    except (OSError, ValueError):
        pass
    shutil.rmtree(short, ignore_errors=True)


def test_hutch_and_podman_build_the_same_image(hutch, tmp, podman):
    ctx = make_context(tmp / "ctx")
    # the base image for podman is the suite's, saved by hutch
    hutch("image", "save", "--format", "docker", "-o", tmp / "bb.tar", "bb")
    podman("load", "-i", tmp / "bb.tar")

    try:
        hutch("build", "--network", "none", "-t", "cmp-hutch", ctx, timeout=120)
        hutch("image", "save", "--format", "docker", "-o", tmp / "h.tar", "cmp-hutch")
    finally:
        hutch("image", "rm", "cmp-hutch", check=False)
    # runc: crun refuses this machine's hybrid cgroup layout; no pull, no network
    podman("build", "--runtime", "runc", "--isolation", "oci", "--network", "none",
           "--pull=never", "--format", "docker", "-f", ctx / "Containerfile.podman",
           "-t", "cmp-podman", ctx)
    podman("save", "--format", "docker-archive", "-o", tmp / "p.tar", "cmp-podman")

    hfiles, hcfg = read_docker_archive(tmp / "h.tar")
    pfiles, pcfg = read_docker_archive(tmp / "p.tar")

    # -- the files. By design (docs/build.md, "Compared with podman build"):
    # buildah adds /run to the layer of every RUN (its mount point), hutch does
    # not; hutch makes WORKDIR's directory at the WORKDIR (as Docker does),
    # buildah 1.28 only when a later RUN needs it (none does after `WORKDIR sub`)
    assert pfiles.pop("/run") == ("dir", 0o755, 0, 0, None)
    assert "/run" not in hfiles
    assert hfiles.pop("/srv/app/sub") == ("dir", 0o755, 0, 0, None)
    assert "/srv/app/sub" not in pfiles
    diff = {k: (hfiles.get(k), pfiles.get(k)) for k in sorted(set(hfiles) | set(pfiles))
            if hfiles.get(k) != pfiles.get(k)}
    assert diff == {}, "\n".join(f"{k}: hutch {h} podman {p}" for k, (h, p) in diff.items())

    # -- the config
    hc, pc = hcfg["config"], pcfg["config"]
    # by design: buildah labels its images with its version, hutch adds nothing
    assert pc["Labels"].pop("io.buildah.version")
    bad = [f"{f}: hutch {hc.get(f)!r} podman {pc.get(f)!r}" for f in FIELDS
           if hc.get(f) != pc.get(f)]
    assert bad == [], "\n".join(bad)
    assert hc["Labels"] == {"org.example.version": "1.0", "org.example.name": "cmp",
                            "with space": "a b"}
    assert hc["Healthcheck"]["Test"] == ["CMD-SHELL", "test -f /srv/app/run.txt"]


def test_shell_is_kept_in_the_config_and_inherited(hutch, tmp):
    """SHELL is in the image's config (as podman and Docker keep it), so a build
    FROM that image runs its shell forms with it."""
    ctx = tmp / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text('FROM bb\nSHELL ["/bin/sh", "-ec"]\n')
    (tmp / "Containerfile.child").write_text("FROM shell-base\nRUN echo $- > /flags\n")
    try:
        hutch("build", "--network", "none", "-t", "shell-base", ctx, timeout=120)
        info = json.loads(hutch("image", "inspect", "shell-base").stdout)[0]
        assert info["config"]["Shell"] == ["/bin/sh", "-ec"]
        hutch("build", "--network", "none", "-t", "shell-child", "-f",
              tmp / "Containerfile.child", ctx, timeout=120)
        flags = hutch("run", "--rm", "shell-child", "cat", "/flags").stdout
        assert "e" in flags, flags
    finally:
        hutch("image", "rm", "shell-child", check=False)
        hutch("image", "rm", "shell-base", check=False)
