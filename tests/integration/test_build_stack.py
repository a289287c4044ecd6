"""Builds beyond `hutch build` itself. Services built from a Containerfile: `build = DIR` in a stack file and
compose's `build:` (a context, or context, dockerfile, args and target).
`hutch up` builds each one from the cache before the stack starts: a changed
input rebuilds from that step and the service is recreated; nothing changed:
one line, the same image; `--build` shows every step; `--no-build` builds
nothing. COPY's progress line; `hutch builder prune` and the cache's size
limit. Root and rootless alike (tests/rootless/run.sh -k build_stack).
"""
import itertools
import json
import os
import re
import time
from pathlib import Path

import pytest

from conftest import wait_for

_count = itertools.count()


class BuildStack:
    def __init__(self, hutch, tmp, files):
        self.hutch = hutch
        self.name = f"bs{os.getpid() % 10000}x{next(_count)}"
        self.dir = Path(tmp) / self.name
        self.out = Path(tmp) / f"{self.name}-out"
        self.out.mkdir()
        os.chmod(self.out, 0o777)
        for fname, text in files.items():
            p = self.dir / fname
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text.replace("@OUT@", str(self.out)).replace("@NAME@", self.name))
        self.images = []

    def run(self, *args, **kw):
        kw.setdefault("timeout", 120)
        return self.hutch(*args, cwd=self.dir, **kw)

    def image_id(self, ref):
        cp = self.hutch("image", "inspect", ref, check=False)
        return json.loads(cp.stdout)[0]["id"] if cp.returncode == 0 else None

    def read(self, name, want=None, timeout=15):
        p = self.out / name
        wait_for(lambda: p.exists() and (want is None or p.read_text() == want),
                 timeout=timeout, what=f"{p} to say {want!r}")
        return p.read_text()

    def teardown(self):
        self.run("down", "-t", "0", check=False, timeout=60)
        for ref in self.images:
            self.hutch("image", "rm", ref, check=False)


@pytest.fixture
def make_stack(hutch, tmp):
    made = []

    def make(files):
        st = BuildStack(hutch, tmp, files)
        made.append(st)
        return st
    yield make
    for st in made:
        st.teardown()


def routine(err, service):
    """The build lines a service's up printed: [(step, 'CACHED' | seconds)]."""
    res, cur = [], None
    for line in err.splitlines():
        if not line.startswith(f"{service} | "):
            continue
        line = line[len(service) + 3:]
        m = re.match(r"STEP \d+/\d+: (.*)", line)
        if m:
            cur = m.group(1)
        m = re.match(r"--> (CACHED|[0-9.]+s)$", line)
        if m and cur:
            res.append((cur, m.group(1)))
            cur = None
    return res


def test_stack_file_build_rebuilds_what_changed(make_stack):
    st = make_stack({
        "hutch.ini": "[stack]\nname = @NAME@\n\n[service.api]\nbuild = ./api\n"
                     "build_args = GREETING=hello\nvolumes = @OUT@:/t\n",
        "api/Containerfile": "FROM bb\nARG GREETING=hi\nRUN echo $GREETING > /greet\n"
                             "COPY msg /msg\n"
                             "CMD [\"sh\", \"-c\", \"cat /greet /msg > /t/out; exec sleep 1000\"]\n",
        "api/msg": "one\n",
    })
    image = f"{st.name}-api"
    st.images.append(image)
    cp = st.run("up", "-d")
    # the build's output is up's, each line after the service's name
    assert f"api | Successfully tagged {image}" in cp.stderr, cp.stderr
    steps = routine(cp.stderr, "api")
    assert [s for s, _ in steps][-1].startswith("CMD"), steps
    assert st.read("out", "hello\none\n") == "hello\none\n"
    first = st.image_id(image)

    # nothing changed: one line, the same image, nothing recreated
    (st.dir / "api" / "msg").touch()
    t0 = time.monotonic()
    cp = st.run("up", "-d")
    assert time.monotonic() - t0 < 10
    assert f"api | image {image} is up to date" in cp.stderr, cp.stderr
    assert "STEP" not in cp.stderr and "nothing changed" in cp.stderr
    assert st.image_id(image) == first

    # a changed file: that step and those after it run again; the service is
    # recreated from the new image
    (st.dir / "api" / "msg").write_text("two\n")
    (st.out / "out").unlink()
    cp = st.run("up", "-d")
    steps = dict(routine(cp.stderr, "api"))
    assert steps["RUN echo $GREETING > /greet"] == "CACHED", cp.stderr
    assert steps["COPY msg /msg"] != "CACHED", cp.stderr
    assert "recreating (settings changed): api" in cp.stderr
    second = st.image_id(image)
    assert second != first
    assert st.read("out", "hello\ntwo\n") == "hello\ntwo\n"

    # --build: every step shown (from the cache); --no-build: none
    cp = st.run("up", "-d", "--build")
    steps = routine(cp.stderr, "api")
    assert len(steps) == 4 and all(r == "CACHED" for _, r in steps), cp.stderr
    assert st.image_id(image) == second
    (st.dir / "api" / "msg").write_text("three\n")
    cp = st.run("up", "-d", "--no-build")
    assert "api |" not in cp.stderr and "nothing changed" in cp.stderr
    assert st.image_id(image) == second
    cp = st.run("up", "-d", "--build", "--no-build", check=False)
    assert cp.returncode != 0 and "give one of them" in cp.stderr


def test_failing_build_starts_nothing(make_stack, hutch):
    st = make_stack({
        "hutch.ini": "[stack]\nname = @NAME@\n\n[service.db]\nimage = bb\n"
                     "command = sleep 1000\n\n[service.api]\nbuild = api\ndepends_on = db\n",
        "api/Containerfile": "FROM bb\nRUN echo compiling; exit 3\n",
    })
    cp = st.run("up", "-d", check=False)
    assert cp.returncode != 0
    assert "api | compiling" in cp.stderr
    assert "returned a non-zero code: 3" in cp.stderr
    assert "building the image of service api failed" in cp.stderr
    ps = hutch("ps", "-a", "--format", "json").stdout
    assert st.name not in ps
    # a context that is not there: said, naming the service
    st2 = make_stack({
        "hutch.ini": "[stack]\nname = @NAME@\n\n[service.web]\nbuild = nowhere\n",
    })
    cp = st2.run("up", "-d", check=False)
    assert cp.returncode != 0
    assert "web | " in cp.stderr and "nowhere" in cp.stderr
    assert "building the image of service web failed" in cp.stderr


def test_compose_build_string_and_mapping(make_stack):
    st = make_stack({
        "compose.yaml": "name: @NAME@\nservices:\n"
                        "  one:\n    build: ./one\n    volumes: ['@OUT@:/t']\n"
                        "  two:\n    image: @NAME@-custom:1\n"
                        "    build:\n      context: two\n      dockerfile: Build.file\n"
                        "      target: final\n"
                        "      args:\n        WHO: compose\n"
                        "    volumes: ['@OUT@:/t']\n"
                        "  three:\n    build:\n      context: two\n"
                        "      dockerfile: Build.file\n      target: final\n      args: [WHO=list]\n"
                        "    volumes: ['@OUT@:/t']\n",
        "one/Containerfile": "FROM bb\nCMD [\"sh\", \"-c\", \"echo one > /t/one; exec sleep 1000\"]\n",
        "two/Build.file": "FROM bb AS base\nARG WHO=nobody\nRUN echo $WHO > /who\n"
                          "FROM bb AS final\nARG WHO=nobody\nCOPY --from=base /who /who\n"
                          "CMD [\"sh\", \"-c\", \"cat /who > /t/$(hostname); exec sleep 1000\"]\n"
                          "FROM bb AS unused\nRUN exit 1\n",
    })
    st.images += [f"{st.name}-one", f"{st.name}-custom:1", f"{st.name}-three"]
    cp = st.run("up", "-d")
    for svc in ("one", "two", "three"):
        assert f"{svc} | Successfully tagged" in cp.stderr, cp.stderr
    assert st.read("one", "one\n") == "one\n"
    assert st.image_id(f"{st.name}-custom:1") is not None
    assert st.image_id(f"{st.name}-three") is not None
    # each container names itself: its hostname is the service's container name
    outs = {}
    wait_for(lambda: len([p for p in st.out.iterdir() if p.name != "one"]) == 2
             and all(p.read_text() for p in st.out.iterdir()), timeout=15,
             what="two and three to write")
    for p in st.out.iterdir():
        outs[p.name] = p.read_text()
    assert sorted(v for k, v in outs.items() if k != "one") == ["compose\n", "list\n"]


def _pty_run(argv, cwd):
    """Run argv on a terminal; (output bytes, seconds it took)."""
    import pty
    t0 = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(cwd)
        os.execv(argv[0], argv)
    out = b""
    while True:
        try:
            d = os.read(fd, 65536)
        except OSError:
            break
        if not d:
            break
        out += d
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, out
    return out, time.monotonic() - t0


def test_copy_progress_line(state, hutch, tmp):
    """COPY of a large context: on a terminal a line updated in place (at most
    10 times a second), in a log one line for the step; both end with what
    was copied."""
    ctx = tmp / "big"
    (ctx / "data").mkdir(parents=True)
    for i in range(3000):
        (ctx / "data" / f"f{i}").write_bytes(os.urandom(16384))
    (ctx / "Containerfile").write_text("FROM bb\nCOPY data /data\nCOPY data/f1 /one\n")
    try:
        cp = hutch("build", "-t", "progress-big", ctx, timeout=120)
        lines = cp.stdout.splitlines()
        assert "copied 46.9 MiB, 3000 files" in lines, cp.stdout
        assert "copied 16 KiB, 1 file" in lines
        assert "\r" not in cp.stdout  # no in-place updates in a log
        out, took = _pty_run([state.bin, "--root", str(state.root), "build", "--no-cache",
                              "-t", "progress-big", str(ctx)], cwd=str(tmp))
        text = out.decode()
        updates = re.findall(r"\r\x1b\[K(?:reading|copying): [^\r]*", text)
        assert len(updates) <= 10 * took + 1, (took, updates)
        for u in updates:
            assert re.search(r"of 46\.9 MiB, \d+ of 3000 files$", u), u
        assert "\r\x1b[Kcopied 46.9 MiB, 3000 files\r\n" in text or \
            "\ncopied 46.9 MiB, 3000 files\r\n" in text, text
        step = re.search(r"COPY data /data\r\n.*?--> ([0-9.]+)s", text, re.S)
        if float(step.group(1)) > 0.5:
            assert updates, text  # a copy that took that long showed its progress
    finally:
        hutch("image", "rm", "progress-big", check=False)


def _own_store(state, tmp):
    """hutch on a store of its own (the cache's contents are then this test's)."""
    root = tmp / "store"

    def run(*args, check=True, env=None, timeout=120):
        import subprocess
        cp = subprocess.run([state.bin, "--root", str(root), *map(str, args)],
                            capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
        if check and cp.returncode:
            raise AssertionError(f"{args}: exit {cp.returncode}\n{cp.stdout}\n{cp.stderr}")
        return cp
    run("image", "import", state.bb_tar, "bb")
    return run, root


def _cache_entries(root):
    d = root / "images" / "build-cache"
    return sorted(os.listdir(d)) if d.exists() else []


def _prune_counts(out):
    m = re.search(r"removed (\d+) cache entries, (\d+) layers and (\d+) unnamed images", out)
    assert m, out
    return tuple(map(int, m.groups()))


def test_builder_prune_least_recently_used_first(state, tmp):
    h, root = _own_store(state, tmp)
    ctx = tmp / "ctx"
    ctx.mkdir()
    (ctx / "a").write_bytes(os.urandom(300 * 1024))
    (ctx / "b").write_bytes(os.urandom(200 * 1024))
    # a builder stage whose layer only the cache keeps, and the image's own
    (ctx / "Containerfile").write_text("FROM bb AS tools\nCOPY a /a\n"
                                       "FROM bb\nCOPY --from=tools /a /from-tools\nCOPY b /b\n")
    h("build", "-t", "pr", ctx)
    layers_before = len(os.listdir(root / "images" / "layers"))
    # plain prune: what no named image uses (the tools stage's layer)
    cp = h("builder", "prune")
    assert _prune_counts(cp.stdout) == (1, 1, 0), cp.stdout
    assert "the cache keeps 0 B beyond the named images" in cp.stdout
    assert h("run", "--rm", "pr", "sh", "-c", "wc -c < /b; wc -c < /from-tools").stdout == \
        "204800\n307200\n"
    out = h("build", "-t", "pr", ctx).stdout
    assert re.search(r"COPY a /a\n(copied .*\n)?--> [0-9.]+s", out), out  # ran again
    assert re.search(r"COPY b /b\n--> CACHED", out), out  # on pr's layers: kept
    # a new b: the old image is left unnamed, its b layer the least recently used
    (ctx / "b").write_bytes(os.urandom(200 * 1024))
    h("build", "-t", "pr", ctx)
    ids = h("image", "ls", "-q").stdout.split()
    # 400 KiB: the tools layer (300 KiB, used by the last build) stays, the old
    # b layer (200 KiB, last used before it) goes, and the unnamed image with it
    cp = h("builder", "prune", "--keep-storage", "400k")
    assert _prune_counts(cp.stdout) == (1, 1, 1), cp.stdout
    assert "the cache keeps 300 KiB" in cp.stdout, cp.stdout
    out = h("build", "-t", "pr", ctx).stdout
    assert re.search(r"COPY a /a\n--> CACHED", out), out
    assert h("image", "ls", "-q").stdout.split() == ids
    # --all: every entry; images and their layers stay, the next build runs all
    cp = h("builder", "prune", "--all")
    assert _cache_entries(root) == []
    assert h("run", "--rm", "pr", "sh", "-c", "wc -c < /b").stdout == "204800\n"
    out = h("build", "-t", "pr", ctx).stdout
    assert "CACHED" not in out, out
    assert len(os.listdir(root / "images" / "layers")) <= layers_before
    # bad input
    for args, msg in ((["--keep-storage", "lots"], "is not a size"),
                      (["--all", "--keep-storage", "1m"], "give one of them"),
                      (["extra"], "unexpected argument")):
        cp = h("builder", "prune", *args, check=False)
        assert cp.returncode == 125 and msg in cp.stderr, cp.stderr
    cp = h("builder", "frob", check=False)
    assert cp.returncode == 125 and "unknown command" in cp.stderr


def test_build_cache_size_limit(state, tmp):
    """HUTCH_BUILD_CACHE_MAX: after each build, what the cache keeps beyond the
    named images is cut to it, least recently used first."""
    h, root = _own_store(state, tmp)
    ctx = tmp / "ctx"
    ctx.mkdir()
    env = {"HUTCH_BUILD_CACHE_MAX": "250k"}
    (ctx / "Containerfile").write_text("FROM bb AS stage\nCOPY s /s\nFROM bb\nCOPY f /f\n")
    (ctx / "f").write_text("final\n")
    layers = root / "images" / "layers"
    for i in range(3):
        (ctx / "s").write_bytes(os.urandom(200 * 1024))  # each build: a new stage layer
        h("build", "-t", "lim", ctx, env=env)
        # only the newest stage layer (200 KiB) fits in 250 KiB
        stage_layers = [d for d in os.listdir(layers) if "." not in d and
                        (layers / d / "s").exists()]
        assert len(stage_layers) == 1, (i, stage_layers)
    # without the variable: the default limit (4 GiB) keeps them all
    for i in range(2):
        (ctx / "s").write_bytes(os.urandom(200 * 1024))
        h("build", "-t", "lim", ctx)
    stage_layers = [d for d in os.listdir(layers) if "." not in d and (layers / d / "s").exists()]
    assert len(stage_layers) == 3
    assert h("run", "--rm", "lim", "cat", "/f").stdout == "final\n"
