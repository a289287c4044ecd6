"""`hutch pull` against registries on loopback that the tests start themselves.

Real registries: Debian's docker-registry (`docker-registry serve CONFIG` on
127.0.0.1:<free port>, storage in a temp dir), seeded with skopeo from OCI layouts
built here by hand (busybox-static rootfs layers): plain http, htpasswd (bcrypt)
with credentials from an auth.json, token auth with a token server written here
(JWTs signed with a throwaway RSA key), and TLS with a self-signed certificate.

A fake registry (http.server) for what a real one will not do on demand: redirect
blob GETs to a second port (Authorization must not follow), serve a blob slowly
(two concurrent pulls share the download), serve wrong bytes (rejected, nothing
stored) and record Range requests (a resumed download).

Nothing here talks to anything but 127.0.0.1.
"""
import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import BUSYBOX_SCRIPT, tar_dir, wait_for

NEEDED = {"docker-registry": "docker-registry", "skopeo": "skopeo", "htpasswd": "apache2-utils",
          "openssl": "openssl"}
_missing = [pkg for tool, pkg in NEEDED.items() if not shutil.which(tool)]
# `make deps` installs these; a missing one is a broken setup, not a reason to skip.
if _missing:
    raise RuntimeError(f"test_pull.py needs {' '.join(_missing)}: "
                       f"apt-get install {' '.join(_missing)} (make deps does)")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
USER, PASSWORD = "hutch", "s3cret-pw"
PULL_TIMEOUT = 90


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- OCI layouts


def layer_from_dir(src, scratch):
    """(gzip bytes, diff_id) of a directory packed as root's (tar_dir)."""
    t = tar_dir(src, Path(scratch) / f"layer-{secrets.token_hex(4)}.tar")
    raw = Path(t).read_bytes()
    os.unlink(t)
    return gzip.compress(raw, mtime=0), sha256(raw)


def layer_from_entries(entries):
    """entries: (name, kind, data) with kind 'file', 'dir'. Root-owned."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            if kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                t.addfile(ti)
            else:
                ti.mode, ti.size = 0o644, len(data)
                t.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0), sha256(raw)


class Layout:
    """An OCI image layout written by hand: blobs, manifests, an index."""

    def __init__(self, path):
        self.path = Path(path)
        (self.path / "blobs" / "sha256").mkdir(parents=True)
        (self.path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.entries = []

    def blob(self, data, media_type):
        d = sha256(data)
        (self.path / "blobs" / "sha256" / d[7:]).write_bytes(data)
        return {"mediaType": media_type, "digest": d, "size": len(data)}

    def read(self, digest):
        return (self.path / "blobs" / "sha256" / digest[7:]).read_bytes()

    def image(self, layers, arch="amd64", cmd=("sh",), marker=""):
        config = {
            "created": "2024-01-01T00:00:00Z", "architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/bin:/usr/bin", f"MARKER={marker}"], "Cmd": list(cmd)},
            "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
            "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
        }
        cdesc = self.blob(json.dumps(config).encode(), OCI_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cdesc,
                    "layers": [self.blob(gz, OCI_LAYER_GZIP) for gz, _ in layers]}
        return self.blob(json.dumps(manifest).encode(), OCI_MANIFEST)

    def index(self, manifests):
        """manifests: [(desc, arch, variant)]"""
        ms = []
        for desc, arch, variant in manifests:
            plat = {"architecture": arch, "os": "linux"}
            if variant:
                plat["variant"] = variant
            ms.append(dict(desc, platform=plat))
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": ms}
        return self.blob(json.dumps(doc).encode(), OCI_INDEX)

    def tag(self, desc, name):
        self.entries.append(dict(desc, annotations={"org.opencontainers.image.ref.name": name}))
        (self.path / "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.entries}))


class Images:
    """What the module's layout holds (digests the tests check against)."""


@pytest.fixture(scope="module")
def images(state):
    base = Path(tempfile.mkdtemp(prefix="hutch-pull-", dir=state.work))
    im = Images()
    im.base = base
    lay = im.layout = Layout(base / "layout")
    rootfs = base / "rootfs"
    subprocess.run(["sh", str(BUSYBOX_SCRIPT), str(rootfs)], check=True, capture_output=True)
    (rootfs / "home" / "app" / "old.txt").write_text("from the base layer\n")
    (rootfs / "etc" / "gone").write_text("deleted by the top layer\n")
    im.base_layer = layer_from_dir(rootfs, base)
    # whiteouts: a deleted file, an opaque dir with new content, and a new file
    im.top_layer = layer_from_entries([
        ("etc/.wh.gone", "file", b""),
        ("home/app/.wh..wh..opq", "file", b""),
        ("home/app/new.txt", "file", b"from the top layer\n"),
        ("marker", "file", b"multi\n"),
    ])
    im.other_top = layer_from_entries([("marker", "file", b"other\n")])
    im.multi = lay.image([im.base_layer, im.top_layer], marker="multi")
    lay.tag(im.multi, "multi")
    im.other = lay.image([im.base_layer, im.other_top], marker="other")
    lay.tag(im.other, "other")
    arm_top = layer_from_entries([("marker", "file", b"arm64\n")])
    amd_top = layer_from_entries([("marker", "file", b"amd64\n")])
    im.amd64 = lay.image([im.base_layer, amd_top], arch="amd64", marker="amd64")
    im.arm64 = lay.image([im.base_layer, arm_top], arch="arm64", marker="arm64")
    im.index = lay.index([(im.amd64, "amd64", None), (im.arm64, "arm64", "v8")])
    lay.tag(im.index, "multiarch")
    im.base_digest = sha256(im.base_layer[0])
    yield im
    shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------- docker-registry


def wait_port(port, proc, timeout=15):
    def up():
        if proc.poll() is not None:
            raise AssertionError(f"registry exited with {proc.returncode}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0
    wait_for(up, timeout=timeout, interval=0.05, what=f"a server on 127.0.0.1:{port}")


class Registry:
    """docker-registry serving `storage` on 127.0.0.1:<free port>."""

    def __init__(self, workdir, storage, auth=None, tls=None):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="reg-", dir=workdir))
        lines = ["version: 0.1", "log:", "  level: warn", "  accesslog:",
                 "    disabled: false", "storage:", "  filesystem:",
                 f"    rootdirectory: {storage}", "  maintenance:", "    uploadpurging:",
                 "      enabled: false", "http:", f"  addr: {self.host}",
                 "  secret: hutch-test-secret"]
        if tls:
            lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
        lines += ["health:", "  storagedriver:", "    enabled: false"]
        if auth:
            lines += ["auth:"] + ["  " + l for l in auth]
        cfg = self.dir / "config.yml"
        cfg.write_text("\n".join(lines) + "\n")
        self.log = open(self.dir / "log", "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_port(self.port, self.proc)
        except BaseException:
            self.stop()
            raise

    def logtext(self):
        self.log.flush()
        return (self.dir / "log").read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def storage(state, images):
    """Registry storage seeded once with skopeo (through a plain registry)."""
    d = Path(tempfile.mkdtemp(prefix="regstore-", dir=state.work))
    reg = Registry(state.work, d)
    try:
        for tag, all_ in (("multi", False), ("other", False), ("multiarch", True)):
            cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
            if all_:
                cmd.append("--all")
            cmd += [f"oci:{images.layout.path}:{tag}", f"docker://{reg.host}/hutch/{tag}:1"]
            cp = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            assert cp.returncode == 0, cp.stderr
    finally:
        reg.stop()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def registry(state, storage):
    reg = Registry(state.work, storage)
    yield reg
    reg.stop()


@pytest.fixture
def env(tmp):
    """An environment with no credentials anywhere (HOME and XDG_RUNTIME_DIR empty)."""
    e = dict(os.environ)
    e.pop("REGISTRY_AUTH_FILE", None)
    home = tmp / "home"
    (home / "run").mkdir(parents=True)
    e["HOME"] = str(home)
    e["XDG_RUNTIME_DIR"] = str(home / "run")
    return e


class Store:
    """hutch with a store of its own (--root in a scratch dir), so that what other
    tests left in the session's store (layers of unnamed images) never makes a
    layer "already stored" here, and nothing pulled here outlives the test."""

    def __init__(self, binary, root):
        self.bin, self.root = binary, Path(root)
        self.procs = []

    def cmd(self, args):
        return [self.bin, "--root", str(self.root), *[str(a) for a in args]]

    def __call__(self, *args, check=True, env=None, timeout=PULL_TIMEOUT):
        try:
            cp = subprocess.run(self.cmd(args), capture_output=True, text=True, env=env,
                                timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"timed out: {args}\nstderr: {e.stderr!r}") from None
        if check and cp.returncode != 0:
            raise AssertionError(f"exit {cp.returncode}: {args}\nstdout: {cp.stdout!r}\n"
                                 f"stderr: {cp.stderr!r}")
        return cp

    def spawn(self, *args):
        p = subprocess.Popen(self.cmd(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def layers(self):
        d = self.root / "images" / "layers"
        return {e.name for e in os.scandir(d) if e.is_dir()} if d.exists() else set()

    def downloads(self):
        d = self.root / "images" / "downloads"
        return sorted(os.listdir(d)) if d.exists() else []

    def names(self):
        return [i["name"] for i in json.loads(self("image", "ls", "--format", "json").stdout)]

    def inspect(self, name):
        out = json.loads(self("image", "inspect", name).stdout)
        return out[0] if isinstance(out, list) else out

    def pull(self, *args, env=None, check=True):
        return self("pull", *args, env=env, check=check)


@pytest.fixture
def hs(state, tmp):
    s = Store(state.bin, tmp / "store")
    yield s
    for p in s.procs:
        if p.poll() is None:
            p.kill()
        p.communicate()
    problems = []
    staging = s.root / "images" / "tmp"
    if staging.exists() and os.listdir(staging):
        problems.append(f"store staging left: {os.listdir(staging)}")
    mounts = [l for l in Path("/proc/self/mountinfo").read_text().splitlines()
              if str(s.root) in l]
    if mounts:
        problems.append(f"mounts left: {mounts}")
    if s.root.exists() and not mounts:
        for n in s.names():
            s("image", "rm", n, check=False)
        s("image", "prune", check=False)
    assert not problems, "; ".join(problems)


def auth_file(path, host, user=USER, password=PASSWORD):
    tok = base64.b64encode(f"{user}:{password}".encode()).decode()
    Path(path).write_text(json.dumps({"auths": {host: {"auth": tok}}}))
    return path


# ---------------------------------------------------------------- plain registry


def test_pull_layers_whiteouts_and_run(hs, registry, images):
    name = f"{registry.host}/hutch/multi:1"
    before = hs.layers()
    cp = hs.pull(name)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", cp.stdout), cp.stdout
    # plain progress lines when stderr is not a terminal
    assert f"layer {images.base_digest[:19]}: downloading" in cp.stderr, cp.stderr
    assert "done" in cp.stderr
    assert name in hs.names()
    assert len(hs.layers() - before) == 2
    # stored, the downloaded blobs are gone (each layer is kept once, unpacked)
    assert hs.downloads() == []
    info = hs.inspect(name)
    assert info["architecture"] == "amd64" and info["os"] == "linux"
    assert len(info["layers"]) == 2
    out = hs("run", "--rm", name, "sh", "-c",
             "cat /marker; test -e /etc/gone && echo gone-still-there; "
             "ls -A /home/app; echo $MARKER").stdout
    assert out.splitlines() == ["multi", "new.txt", "multi"], out

    # again: nothing downloaded, nothing new
    cp = hs.pull(name)
    assert "downloading" not in cp.stderr
    assert "already stored" in cp.stderr
    assert len(hs.layers() - before) == 2

    # a second image on the same base: only its top layer is fetched
    other = f"{registry.host}/hutch/other:1"
    cp = hs.pull(other)
    assert f"layer {images.base_digest[:19]}: already stored" in cp.stderr, cp.stderr
    assert len(hs.layers() - before) == 3
    assert hs("run", "--rm", other, "cat", "/marker").stdout == "other\n"


def test_pull_by_digest(hs, registry, images):
    ref = f"{registry.host}/hutch/multi@{images.multi['digest']}"
    hs.pull(ref)
    assert ref in hs.names()
    assert hs("run", "--rm", ref, "cat", "/marker").stdout == "multi\n"
    # a digest the registry has no manifest for
    bad = f"{registry.host}/hutch/multi@sha256:{'0' * 64}"
    cp = hs.pull(bad, check=False)
    assert cp.returncode != 0
    assert "MANIFEST_UNKNOWN" in cp.stderr or "404" in cp.stderr, cp.stderr


def test_pull_platform_from_index(hs, registry, images):
    name = f"{registry.host}/hutch/multiarch:1"
    hs.pull("--platform", "linux/arm64", name)
    info = hs.inspect(name)
    assert info["architecture"] == "arm64", info
    assert info["id"].endswith(json.loads(images.layout.read(images.arm64["digest"]))
                               ["config"]["digest"][7:])
    if os.uname().machine == "x86_64":
        hs.pull(name)  # the host's platform
        info = hs.inspect(name)
        assert info["architecture"] == "amd64", info
        assert hs("run", "--rm", name, "cat", "/marker").stdout == "amd64\n"
    cp = hs.pull("--platform", "linux/s390x", name, check=False)
    assert cp.returncode != 0
    assert "s390x" in cp.stderr and "arm64" in cp.stderr, cp.stderr


def test_pull_unknown_tag(hs, registry):
    before = hs.layers()
    cp = hs.pull(f"{registry.host}/hutch/multi:nope", check=False)
    assert cp.returncode != 0
    err = cp.stderr
    assert "MANIFEST_UNKNOWN" in err and "404" in err, err
    assert registry.host in err and "hutch/multi" in err and "nope" in err, err
    cp = hs.pull(f"{registry.host}/hutch/absent:1", check=False)
    assert cp.returncode != 0
    assert "NAME_UNKNOWN" in cp.stderr or "MANIFEST_UNKNOWN" in cp.stderr, cp.stderr
    assert hs.layers() == before


def test_pull_bad_references(hs):
    for ref in ("UPPER/../x", "127.0.0.1:5000/App", "127.0.0.1:5000/app@sha256:abc",
                "127.0.0.1:99999/app"):
        cp = hs.pull(ref, check=False)
        assert cp.returncode != 0
        assert "invalid image reference" in cp.stderr, cp.stderr


def test_pull_nothing_listening(hs):
    port = free_port()
    cp = hs.pull(f"127.0.0.1:{port}/app:1", check=False)
    assert cp.returncode != 0
    assert f"127.0.0.1:{port}" in cp.stderr and "connect" in cp.stderr.lower(), cp.stderr


# ---------------------------------------------------------------- htpasswd


@pytest.fixture(scope="module")
def htpasswd_registry(state, storage):
    d = Path(tempfile.mkdtemp(prefix="htpw-", dir=state.work))
    pw = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True,
                        text=True).stdout
    (d / "htpasswd").write_text(pw)
    reg = Registry(state.work, storage,
                   auth=["htpasswd:", "  realm: hutch-test", f"  path: {d / 'htpasswd'}"])
    yield reg
    reg.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_pull_htpasswd(hs, htpasswd_registry, tmp, env):
    reg = htpasswd_registry
    name = f"{reg.host}/hutch/multi:1"
    # no credentials anywhere
    cp = hs.pull(name, env=env, check=False)
    assert cp.returncode != 0
    assert "no credentials" in cp.stderr and reg.host in cp.stderr, cp.stderr
    # wrong password
    bad = auth_file(tmp / "bad.json", reg.host, password="wrong")
    cp = hs.pull("--authfile", bad, name, env=env, check=False)
    assert cp.returncode != 0
    assert "refused" in cp.stderr and str(bad) in cp.stderr, cp.stderr
    # --authfile
    good = auth_file(tmp / "auth.json", reg.host)
    hs.pull("--authfile", good, name, env=env)
    assert hs("run", "--rm", name, "cat", "/marker").stdout == "multi\n"
    hs("image", "rm", name)
    # $REGISTRY_AUTH_FILE, then $XDG_RUNTIME_DIR/containers/auth.json
    hs.pull(name, env=dict(env, REGISTRY_AUTH_FILE=str(good)))
    hs("image", "rm", name)
    (Path(env["XDG_RUNTIME_DIR"]) / "containers").mkdir()
    shutil.copy(good, Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    hs.pull(name, env=env)
    # a missing --authfile is an error, not "no credentials"
    cp = hs.pull("--authfile", tmp / "absent.json", name, env=env, check=False)
    assert cp.returncode != 0 and "absent.json" in cp.stderr, cp.stderr


# ---------------------------------------------------------------- token auth


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """The Bearer flow's token endpoint: checks Basic credentials, signs RS256
    JWTs the registry verifies against `cert` (x5c chain = the cert itself)."""

    def __init__(self, workdir, issuer, service):
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        self.dir = Path(tempfile.mkdtemp(prefix="token-", dir=workdir))
        self.key_path, self.cert = self.dir / "key.pem", self.dir / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=hutch-test-token", "-keyout", str(self.key_path),
                        "-out", str(self.cert)], check=True, capture_output=True)
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                u = urllib.parse.urlparse(self.path)
                q = urllib.parse.parse_qs(u.query)
                authz = self.headers.get("Authorization")
                server.requests.append({"path": u.path, "query": q, "authorization": authz})
                want = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if authz != want:
                    body = b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}'
                    self.send_response(401)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                access = []
                for scope in q.get("scope", []):
                    typ, name, actions = scope.split(":")
                    access.append({"type": typ, "name": name, "actions": actions.split(",")})
                now = int(time.time())
                header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
                claims = {"iss": issuer, "sub": USER, "aud": q.get("service", [""])[0],
                          "exp": now + 300, "nbf": now - 10, "iat": now,
                          "jti": secrets.token_hex(8), "access": access}
                signing = (b64url(json.dumps(header).encode()) + "." +
                           b64url(json.dumps(claims).encode()))
                sig = key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
                tok = signing + "." + b64url(sig)
                body = json.dumps({"token": tok, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def token_registry(state, storage):
    import cryptography  # noqa: F401  (python3-cryptography, from make deps)
    ts = TokenServer(state.work, "hutch-test-issuer", "hutch-registry")
    reg = Registry(state.work, storage, auth=[
        "token:", f"  realm: http://127.0.0.1:{ts.port}/token", "  service: hutch-registry",
        "  issuer: hutch-test-issuer", f"  rootcertbundle: {ts.cert}"])
    reg.tokens = ts
    yield reg
    reg.stop()
    ts.stop()


def test_pull_bearer_token(hs, token_registry, tmp, env):
    reg, ts = token_registry, token_registry.tokens
    name = f"{reg.host}/hutch/multi:1"
    ts.requests.clear()
    cp = hs.pull(name, env=env, check=False)
    assert cp.returncode != 0
    assert "token server" in cp.stderr and "401" in cp.stderr, cp.stderr
    assert "no credentials" in cp.stderr, cp.stderr
    assert ts.requests and ts.requests[0]["authorization"] is None

    ts.requests.clear()
    good = auth_file(tmp / "auth.json", reg.host)
    hs.pull("--authfile", good, name, env=env)
    # one token for the pull's scope, asked for with the credentials
    assert len(ts.requests) == 1, ts.requests
    r = ts.requests[0]
    assert r["query"]["service"] == ["hutch-registry"]
    assert r["query"]["scope"] == ["repository:hutch/multi:pull"]
    assert r["authorization"].startswith("Basic ")
    assert hs("run", "--rm", name, "cat", "/marker").stdout == "multi\n"


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls_registry(state, storage):
    d = Path(tempfile.mkdtemp(prefix="tls-", dir=state.work))
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    reg = Registry(state.work, storage, tls=(cert, key))
    yield reg
    reg.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_pull_tls_self_signed(hs, tls_registry):
    name = f"{tls_registry.host}/hutch/multi:1"
    cp = hs.pull(name, check=False)
    assert cp.returncode != 0
    assert "certificate" in cp.stderr and "--tls-verify=false" in cp.stderr, cp.stderr
    hs.pull("--tls-verify=false", name)
    assert hs("run", "--rm", name, "cat", "/marker").stdout == "multi\n"


# ---------------------------------------------------------------- a fake registry


class FakeRegistry:
    """Serves the module's OCI layout under /v2/<repo>/ for any repo. Options:
    token: Bearer challenge, tokens from its own /token (Basic creds not needed);
    redirect: blob GETs answer 307 to a second server on another port;
    corrupt: blob digests served with one byte changed (same length);
    slow: blob digests served in pieces over about a second;
    any_digest: a manifest descriptor served for every digest asked for;
    oversize: blobs served with 1000 bytes more than they have;
    truncate: blobs whose connection is cut after half of the body.
    Every request is recorded with its headers (and which server saw it)."""

    def __init__(self, layout, token=False, redirect=False, corrupt=(), slow=(),
                 any_digest=None, oversize=(), truncate=()):
        self.layout, self.token, self.redirect = layout, token, redirect
        self.any_digest = any_digest
        self.oversize, self.truncate = set(oversize), set(truncate)
        self.corrupt, self.slow = set(corrupt), set(slow)
        self.requests = []
        self.tokens = set()
        self.lock = threading.Lock()
        self.main = self._serve("registry")
        self.port = self.main.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.storage = self._serve("storage") if redirect else None

    def _serve(self, role):
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                with fake.lock:
                    fake.requests.append({"server": role, "path": self.path,
                                          "headers": dict(self.headers.items())})
                try:
                    (fake.registry_get if role == "registry" else fake.storage_get)(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        return httpd

    def stop(self):
        for s in (self.main, self.storage):
            if s:
                s.shutdown()
                s.server_close()

    def seen(self, server=None, path_part=""):
        return [r for r in self.requests
                if (server is None or r["server"] == server) and path_part in r["path"]]

    @staticmethod
    def reply(h, status, body=b"", headers=()):
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def registry_get(self, h):
        path = urllib.parse.urlparse(h.path).path
        if path == "/token":
            tok = secrets.token_hex(16)
            self.tokens.add(tok)
            self.reply(h, 200, json.dumps({"token": tok}).encode(),
                       [("Content-Type", "application/json")])
            return
        m = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/]+)", path)
        repo = m.group(1) if m else None
        if self.token:
            authz = h.headers.get("Authorization", "")
            if not (authz.startswith("Bearer ") and authz[7:] in self.tokens):
                scope = f',scope="repository:{repo}:pull"' if repo else ""
                chal = (f'Bearer realm="http://{self.host}/token",service="fake"{scope}')
                self.reply(h, 401, b'{"errors":[{"code":"UNAUTHORIZED","message":"token"}]}',
                           [("WWW-Authenticate", chal)])
                return
        if path == "/v2/":
            self.reply(h, 200, b"{}")
            return
        if not m:
            self.reply(h, 404)
            return
        kind, ref = m.group(2), m.group(3)
        if kind == "manifests":
            desc = None
            for e in json.loads((self.layout.path / "index.json").read_text())["manifests"]:
                if e["annotations"]["org.opencontainers.image.ref.name"] == ref or \
                        e["digest"] == ref:
                    desc = e
            if desc is None and ref.startswith("sha256:") and self.any_digest:
                desc = self.any_digest
            if desc is None and ref.startswith("sha256:") and \
                    (self.layout.path / "blobs" / "sha256" / ref[7:]).exists():
                doc = json.loads(self.layout.read(ref))
                desc = {"digest": ref, "mediaType": doc.get("mediaType", OCI_MANIFEST)}
            if desc is None:
                self.reply(h, 404, b'{"errors":[{"code":"MANIFEST_UNKNOWN",'
                                   b'"message":"manifest unknown"}]}')
                return
            body = self.layout.read(desc["digest"])
            self.reply(h, 200, body, [("Content-Type", desc["mediaType"]),
                                      ("Docker-Content-Digest", desc["digest"])])
            return
        if self.redirect:
            self.reply(h, 307, b"", [
                ("Location", f"http://127.0.0.1:{self.storage.server_address[1]}"
                             f"/store/{ref[7:]}?sig=abc")])
            return
        self.send_blob(h, ref)

    def storage_get(self, h):
        m = re.fullmatch(r"/store/([0-9a-f]{64})", urllib.parse.urlparse(h.path).path)
        if not m:
            self.reply(h, 404)
            return
        self.send_blob(h, "sha256:" + m.group(1))

    def send_blob(self, h, digest):
        try:
            data = self.layout.read(digest)
        except FileNotFoundError:
            self.reply(h, 404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}')
            return
        if digest in self.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        if digest in self.oversize:
            data = data + b"x" * 1000
        start = 0
        rng = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range", ""))
        if rng and int(rng.group(1)) < len(data):
            start = int(rng.group(1))
        part = data[start:]
        h.send_response(206 if start else 200)
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.send_header("Content-Length", str(len(part)))
        h.send_header("Content-Type", "application/octet-stream")
        h.end_headers()
        if digest in self.truncate:
            h.wfile.write(part[:len(part) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
        elif digest in self.slow:
            step = max(1, len(part) // 20)
            for i in range(0, len(part), step):
                h.wfile.write(part[i:i + step])
                h.wfile.flush()
                time.sleep(0.05)
        else:
            h.wfile.write(part)


@pytest.fixture
def fake(images):
    made = []

    def make(**kw):
        f = FakeRegistry(images.layout, **kw)
        made.append(f)
        return f

    yield make
    for f in made:
        f.stop()


def test_redirect_gets_no_authorization(hs, fake, images):
    f = fake(token=True, redirect=True)
    name = f"{f.host}/team/multi:multi"
    hs.pull(name)
    assert hs("run", "--rm", name, "cat", "/marker").stdout == "multi\n"
    to_storage = f.seen("storage")
    assert len(to_storage) == 3, to_storage  # the config and two layers
    for r in to_storage:
        assert "Authorization" not in r["headers"], r
    blob_gets = f.seen("registry", "/blobs/")
    assert len(blob_gets) == 3
    for r in blob_gets:
        assert r["headers"]["Authorization"].startswith("Bearer "), r
    # the token was asked for once, for the repository's pull scope
    token_gets = f.seen("registry", "/token")
    assert len(token_gets) == 1, token_gets
    assert "scope=repository%3Ateam%2Fmulti%3Apull" in token_gets[0]["path"]


def test_resume_partial_download(hs, fake, images):
    f = fake()
    name = f"{f.host}/team/multi:multi"
    blob = images.layout.read(images.base_digest)
    dl = hs.root / "images" / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    half = len(blob) // 2
    (dl / (images.base_digest[7:] + ".partial")).write_bytes(blob[:half])
    cp = hs.pull(name)
    assert "resuming" in cp.stderr, cp.stderr
    gets = f.seen("registry", images.base_digest)
    assert len(gets) == 1, gets
    assert gets[0]["headers"].get("Range") == f"bytes={half}-", gets[0]
    assert not (dl / (images.base_digest[7:] + ".partial")).exists()
    assert hs("run", "--rm", name, "cat", "/marker").stdout == "multi\n"


def test_resume_from_garbage_is_rejected_then_redone(hs, fake, images):
    """A partial file whose bytes are wrong: the digest check fails, the partial is
    dropped, and the next pull downloads the blob whole."""
    f = fake()
    name = f"{f.host}/team/multi:multi"
    blob = images.layout.read(images.base_digest)
    dl = hs.root / "images" / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    partial = dl / (images.base_digest[7:] + ".partial")
    partial.write_bytes(b"\0" * (len(blob) // 2))
    before = hs.layers()
    cp = hs.pull(name, check=False)
    assert cp.returncode != 0
    assert "digest" in cp.stderr, cp.stderr
    assert not partial.exists()
    assert hs.layers() == before
    hs.pull(name)


def test_concurrent_pulls_share_the_base_layer(hs, fake, images):
    """Three pulls at once (two images on one base, one of them twice): all
    succeed, every blob goes over the wire once, every layer is stored once."""
    f = fake(slow=[images.base_digest])
    a, b = f"{f.host}/team/multi:multi", f"{f.host}/team/other:other"
    before = hs.layers()
    procs = [hs.spawn("pull", r) for r in (a, b, a)]
    outs = [p.communicate(timeout=PULL_TIMEOUT) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err.decode()
    layer_digests = {sha256(gz) for gz, _ in (images.base_layer, images.top_layer,
                                               images.other_top)}
    gets = [r["path"].rsplit("/", 1)[1] for r in f.seen("registry", "/blobs/")]
    layer_gets = [g for g in gets if g in layer_digests]  # configs go to memory, each pull
    assert sorted(layer_gets) == sorted(layer_digests), gets
    assert any(b"waiting for another pull" in e for _, e in outs), outs
    assert len(hs.layers() - before) == 3
    assert hs("run", "--rm", a, "cat", "/marker").stdout == "multi\n"
    assert hs("run", "--rm", b, "cat", "/marker").stdout == "other\n"


def test_digest_mismatch_leaves_nothing(hs, fake, images):
    top_digest = sha256(images.top_layer[0])
    f = fake(corrupt=[top_digest])
    name = f"{f.host}/team/multi:multi"
    before_layers, before_names = hs.layers(), hs.names()
    before_dl = hs.downloads()
    cp = hs.pull(name, check=False)
    assert cp.returncode != 0
    assert top_digest in cp.stderr and "tampered" in cp.stderr, cp.stderr
    assert hs.layers() == before_layers
    assert hs.names() == before_names
    assert not [n for n in hs.downloads() if n.startswith(top_digest[7:])], hs.downloads()
    assert set(hs.downloads()) <= set(before_dl) | {images.base_digest[7:]}


def test_manifest_digest_mismatch(hs, fake, images):
    """Pulled by digest, the registry answers with other bytes: refused."""
    f = fake(any_digest=images.multi)
    want = sha256(b"something else")
    before = hs.layers()
    cp = hs.pull(f"{f.host}/team/multi@{want}", check=False)
    assert cp.returncode != 0
    assert want in cp.stderr and images.multi["digest"] in cp.stderr, cp.stderr
    assert not f.seen("registry", "/blobs/")
    assert hs.layers() == before


def test_config_corrupt_rejected(hs, fake, images):
    cfg = json.loads(images.layout.read(images.multi["digest"]))["config"]["digest"]
    f = fake(corrupt=[cfg])
    before = hs.layers()
    cp = hs.pull(f"{f.host}/team/multi:multi", check=False)
    assert cp.returncode != 0
    assert cfg in cp.stderr, cp.stderr
    assert hs.layers() == before


def test_more_bytes_than_declared(hs, fake, images):
    f = fake(oversize=[images.base_digest])
    before = hs.layers()
    cp = hs.pull(f"{f.host}/team/multi:multi", check=False)
    assert cp.returncode != 0
    assert "more than the" in cp.stderr and images.base_digest in cp.stderr, cp.stderr
    assert hs.layers() == before
    assert images.base_digest[7:] not in hs.downloads()


def test_cut_connection_then_resume(hs, fake, images):
    """A transfer cut halfway keeps what arrived; the next pull asks for the rest."""
    f = fake(truncate=[images.base_digest])
    name = f"{f.host}/team/multi:multi"
    cp = hs.pull(name, check=False)
    assert cp.returncode != 0
    assert images.base_digest in cp.stderr, cp.stderr
    partial = hs.root / "images" / "downloads" / (images.base_digest[7:] + ".partial")
    size = len(images.layout.read(images.base_digest))
    assert partial.exists() and 0 < partial.stat().st_size < size
    have = partial.stat().st_size
    f.truncate.clear()
    f.requests.clear()
    cp = hs.pull(name)
    gets = f.seen("registry", images.base_digest)
    assert [g["headers"].get("Range") for g in gets] == [f"bytes={have}-"], gets
    assert hs.downloads() == []
    assert hs("run", "--rm", name, "cat", "/marker").stdout == "multi\n"


def test_failed_pull_keeps_finished_downloads_then_the_next_pull_removes_them(hs, fake,
                                                                             images):
    """The base blob downloads whole, the top one is cut off: the pull fails and
    keeps both (the finished one to reuse, the partial to resume). The next pull
    reuses and resumes them, and once the image is stored removes them."""
    top_digest = sha256(images.top_layer[0])
    f = fake(truncate=[top_digest])
    name = f"{f.host}/team/multi:multi"
    cp = hs.pull(name, check=False)
    assert cp.returncode != 0
    assert images.base_digest[7:] in hs.downloads(), hs.downloads()
    assert top_digest[7:] + ".partial" in hs.downloads(), hs.downloads()
    f.truncate.clear()
    f.requests.clear()
    cp = hs.pull(name)
    assert f"layer {images.base_digest[:19]}: downloaded before" in cp.stderr, cp.stderr
    assert not f.seen("registry", images.base_digest)
    assert hs.downloads() == []
    assert hs("run", "--rm", name, "cat", "/marker").stdout == "multi\n"


def test_platform_mismatch_warns(hs, registry, images):
    """A single-platform image for another platform: pulled, with a warning."""
    cp = hs.pull("--platform", "linux/arm64", f"{registry.host}/hutch/multi:1")
    assert "warning" in cp.stderr and "linux/amd64" in cp.stderr and "arm64" in cp.stderr, \
        cp.stderr


def test_killed_pull_resumes(hs, fake, images):
    """SIGKILL in the middle of a download: the next pull continues the partial
    blob (a Range request) and the store is whole."""
    f = fake(slow=[images.base_digest])
    name = f"{f.host}/team/multi:multi"
    partial = hs.root / "images" / "downloads" / (images.base_digest[7:] + ".partial")
    p = hs.spawn("pull", name)
    wait_for(lambda: partial.exists() and partial.stat().st_size > 0, timeout=30,
             what="the download to start")
    p.kill()
    p.communicate()
    have = partial.stat().st_size
    assert 0 < have < len(images.layout.read(images.base_digest))
    f.slow.clear()
    f.requests.clear()
    hs.pull(name)
    gets = f.seen("registry", images.base_digest)
    assert [g["headers"].get("Range") for g in gets] == [f"bytes={have}-"], gets
    assert not partial.exists()
    assert hs.downloads() == []
    assert hs("run", "--rm", name, "cat", "/marker").stdout == "multi\n"


def test_pull_bad_options(hs, registry):
    ref = f"{registry.host}/hutch/multi:1"
    cp = hs.pull("--tls-verify=maybe", ref, check=False)
    assert cp.returncode == 125 and "--tls-verify is true or false, not 'maybe'" in cp.stderr
    cp = hs.pull(ref, "--authfile", check=False)
    assert cp.returncode == 125 and "'--authfile' needs a value" in cp.stderr, cp.stderr
    cp = hs.pull(ref, "extra", check=False)
    assert cp.returncode == 125 and "'extra'" in cp.stderr, cp.stderr
    assert hs.layers() == set() and hs.downloads() == []
    # options after the reference, as every verb takes them
    hs.pull(ref, "--tls-verify=false", "-q")
    assert f"{registry.host}/hutch/multi:1" in hs.names()
