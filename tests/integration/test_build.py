"""hutch build: Containerfiles into images, step by step, cached by content.

Root and rootless alike (tests/rootless/run.sh -k build): RUN steps are ordinary
hutch containers, and files keep the owners the Containerfile gives them.
"""
import json
import os
import re
import subprocess
import tarfile
import time

import pytest


def write(ctx, files):
    for name, content in files.items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    return ctx


def steps(out):
    """[(step text, 'CACHED' | seconds)] of a build's output."""
    res, cur = [], None
    for line in out.splitlines():
        m = re.match(r"STEP \d+/\d+: (.*)", line)
        if m:
            cur = m.group(1)
            continue
        m = re.match(r"--> (CACHED|[0-9.]+s)$", line)
        if m and cur is not None:
            res.append((cur, m.group(1)))
            cur = None
    return res


@pytest.fixture
def build(hutch, tmp):
    made = []

    def run(ctx, *args, tag=None, check=True):
        tagargs = ["-t", tag] if tag else []
        if tag:
            made.append(tag)
        return hutch("build", *tagargs, *args, ctx, check=check, timeout=120)

    yield run
    for t in made:
        hutch("image", "rm", t, check=False)


def test_build_run_and_cached_rebuild(hutch, tmp, build):
    ctx = write(tmp / "ctx", {
        "Containerfile": "FROM bb\n"
                         "RUN echo hi > /f\n"
                         "COPY a.txt /app/a.txt\n"
                         "ENV GREETING=hello\n"
                         "CMD [\"cat\", \"/f\"]\n",
        "a.txt": "from the context\n",
    })
    cp = build(ctx, tag="bt-basic")
    assert "Successfully tagged bt-basic" in cp.stdout
    assert all(r != "CACHED" for _, r in steps(cp.stdout)), cp.stdout
    # the image runs like any other: its default command, files and env
    assert hutch("run", "--rm", "bt-basic").stdout == "hi\n"
    out = hutch("run", "--rm", "bt-basic", "sh", "-c",
                "cat /app/a.txt; echo $GREETING; stat -c '%u:%g %a' /app/a.txt").stdout
    assert out == "from the context\nhello\n0:0 644\n"
    assert "bt-basic:latest" in hutch("image", "ls").stdout
    # again: every step from the cache, the same image, quickly
    t0 = time.monotonic()
    cp2 = build(ctx, tag="bt-basic")
    took = time.monotonic() - t0
    st = steps(cp2.stdout)
    assert len(st) == 4 and all(r == "CACHED" for _, r in st), cp2.stdout
    assert took < 2.0, f"cached rebuild took {took:.2f}s"
    ids = re.findall(r"Successfully built (\w+)", cp.stdout + cp2.stdout)
    assert ids[0] == ids[1]
    # history: one entry per step, config as the instructions say
    info = json.loads(hutch("image", "inspect", "bt-basic").stdout)[0]
    assert info["config"]["Cmd"] == ["cat", "/f"]
    assert "GREETING=hello" in info["config"]["Env"]
    assert [h["created_by"] for h in info["history"][-4:]] == [
        'RUN ["/bin/sh","-c","echo hi > /f"]', "COPY a.txt /app/a.txt",
        "ENV GREETING=hello", 'CMD ["cat","/f"]']


def test_changed_content_reruns_from_that_copy_only(hutch, tmp, build):
    ctx = write(tmp / "ctx", {
        "Containerfile": "FROM bb\n"
                         "RUN echo first > /first\n"
                         "COPY data.txt /data.txt\n"
                         "RUN cat /data.txt > /copy\n",
        "data.txt": "one\n",
    })
    build(ctx, tag="bt-change")
    # only its time changes: nothing runs again
    os.utime(ctx / "data.txt", (1, 1))
    st = steps(build(ctx, tag="bt-change").stdout)
    assert [r for _, r in st] == ["CACHED"] * 3
    # its content changes: that COPY and what follows run again, not what is before
    (ctx / "data.txt").write_text("two\n")
    st = steps(build(ctx, tag="bt-change").stdout)
    assert st[0][1] == "CACHED" and st[1][1] != "CACHED" and st[2][1] != "CACHED", st
    assert hutch("run", "--rm", "bt-change", "cat", "/copy").stdout == "two\n"
    # --no-cache runs everything
    st = steps(build(ctx, "--no-cache", tag="bt-change").stdout)
    assert all(r != "CACHED" for _, r in st), st


def test_multi_stage_target_and_build_args(hutch, tmp, build):
    ctx = write(tmp / "ctx", {
        "Containerfile": "ARG BASE=bb\n"
                         "FROM ${BASE} AS builder\n"
                         "ARG WHO=world\n"
                         "COPY ctx.txt /ctx.txt\n"
                         "RUN mkdir /out && echo \"hello $WHO\" > /out/greeting\n"
                         "\n"
                         "FROM bb AS final\n"
                         "COPY --from=builder /out/greeting /greeting\n"
                         "CMD [\"cat\", \"/greeting\"]\n"
                         "\n"
                         "FROM final AS broken\n"
                         "RUN exit 3\n",
        "ctx.txt": "c\n",
    })
    build(ctx, "--target", "final", "--build-arg", "WHO=there", tag="bt-multi")
    assert hutch("run", "--rm", "bt-multi").stdout == "hello there\n"
    # the builder stage's files are not in the result
    assert hutch("run", "--rm", "bt-multi", "ls", "/out", check=False).returncode != 0
    # another value for the arg: the RUN that sees it runs again, not the
    # COPY between the ARG and it
    st = steps(build(ctx, "--target", "final", tag="bt-multi").stdout)
    assert [r == "CACHED" for _, r in st[:3]] == [True, True, False], st
    assert hutch("run", "--rm", "bt-multi").stdout == "hello world\n"
    cp = build(ctx, "--target", "nosuch", check=False)
    assert cp.returncode != 0 and "nosuch" in cp.stderr


def test_heredoc_run(hutch, tmp, build):
    ctx = write(tmp / "ctx", {
        "Containerfile": "FROM bb\n"
                         "RUN <<EOF\n"
                         "echo one > /one\n"
                         "echo two > /two\n"
                         "EOF\n"
                         "RUN cat <<'END' > /script.sh\n"
                         "echo $HOME stays literal\n"
                         "END\n"
                         "RUN echo \\\n"
                         "    continued > /cont\n",
    })
    build(ctx, tag="bt-heredoc")
    out = hutch("run", "--rm", "bt-heredoc", "cat", "/one", "/two", "/script.sh",
                "/cont").stdout
    assert out == "one\ntwo\necho $HOME stays literal\ncontinued\n"


def test_dockerignore_honoured(hutch, tmp, build):
    ctx = write(tmp / "ctx", {
        "Containerfile": "FROM bb\nCOPY . /ctx/\n",
        ".dockerignore": "# comment\nsecret.txt\n*.log\n!keep.log\nsub/**/deep\n",
        "secret.txt": "no\n", "a.log": "no\n", "keep.log": "yes\n", "ok.txt": "yes\n",
        "sub/x/deep": "no\n", "sub/x/shallow": "yes\n",
    })
    build(ctx, tag="bt-ignore")
    out = hutch("run", "--rm", "bt-ignore", "find", "/ctx", "-type", "f").stdout.split()
    assert sorted(out) == ["/ctx/.dockerignore", "/ctx/Containerfile", "/ctx/keep.log",
                           "/ctx/ok.txt", "/ctx/sub/x/shallow"]
    # an ignored file changing does not invalidate the COPY
    (ctx / "secret.txt").write_text("changed\n")
    assert [r for _, r in steps(build(ctx, tag="bt-ignore").stdout)] == ["CACHED"]


def test_copy_source_symlinks_stay_in_the_context(hutch, tmp, build):
    """A COPY source is resolved beneath the context: a symlink that points out
    of it (absolute, or by "..") is refused, naming the source; one that stays
    inside is followed."""
    outside = tmp / "outside"
    write(outside, {"secret": "outside the context\n"})
    ctx = write(tmp / "ctx", {"sub/file": "inside\n"})
    (ctx / "host").symlink_to("/etc/hostname")
    (ctx / "up").symlink_to("../outside")
    (ctx / "inner").symlink_to("sub/file")
    for src in ("host", "up/secret", "up/"):
        (ctx / "Containerfile").write_text(f"FROM bb\nCOPY {src} /x\n")
        cp = build(ctx, tag="bt-outside", check=False)
        assert cp.returncode != 0, cp.stdout
        assert f"'{src}' leads outside the build context" in cp.stderr, cp.stderr
    (ctx / "Containerfile").write_text("FROM bb\nCOPY inner /inner\n")
    build(ctx, tag="bt-outside")
    assert hutch("run", "--rm", "bt-outside", "cat", "/inner").stdout == "inside\n"


def test_copy_source_swapped_for_symlink_after_planning(state, hutch, tmp, build):
    """The race the fd path closes: a COPY source is resolved and hashed when the
    step is planned, and the layer is written a moment later. Before, the layer
    writer reopened the resolved path by name, so a directory of the context
    swapped for a symlink to /etc in between was followed out of the context (a
    root build copied /etc/shadow). gdb stops hutch exactly in that window (at
    hutch_layer_build, after planning and hashing, before a byte of the layer is
    read) and makes the swap there, every time: the image must still hold what
    was planned, read through the fds opened beneath the context."""
    token = f"planned-{os.getpid()}-{time.time_ns()}\n"  # no cache hit: the step runs
    ctx = write(tmp / "ctx", {"Containerfile": "FROM bb\nCOPY d /d\n", "d/mine": token})
    script = tmp / "swap.gdb"
    script.write_text(
        "set pagination off\nset confirm off\n"
        "handle SIGCHLD SIGPIPE SIGALRM SIGUSR1 SIGUSR2 SIGTERM nostop noprint pass\n"
        "break hutch_layer_build\ncommands\nsilent\n"
        f"shell mv {ctx}/d {ctx}/d.planned && ln -s /etc {ctx}/d && touch {tmp}/swapped\n"
        "continue\nend\nrun\n")
    cmd = ["gdb", "-q", "-batch", "-x", str(script), "--args", state.bin, "--root",
           str(state.root), "build", "-t", "bt-swap", str(ctx)]
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert (tmp / "swapped").exists(), f"the breakpoint was not reached:\n{cp.stdout}\n{cp.stderr}"
        assert (ctx / "d").is_symlink()
        out = hutch("run", "--rm", "bt-swap", "find", "/d").stdout.split()
        assert sorted(out) == ["/d", "/d/mine"], out
        assert hutch("run", "--rm", "bt-swap", "cat", "/d/mine").stdout == token
    finally:
        hutch("image", "rm", "bt-swap", check=False)


def test_dockerignore_not_bypassed_by_symlink(hutch, tmp, build):
    """A symlink to an ignored file is matched where it leads too."""
    ctx = write(tmp / "ctx", {"secrets/key": "private\n", "pub/ok": "fine\n",
                              ".dockerignore": "secrets\n"})
    (ctx / "innocent").symlink_to("secrets/key")
    (ctx / "via").symlink_to("secrets")
    for src in ("innocent", "via/key", "via/"):
        (ctx / "Containerfile").write_text(f"FROM bb\nCOPY {src} /x\n")
        cp = build(ctx, tag="bt-ignlink", check=False)
        assert cp.returncode != 0, cp.stdout
        assert "which .dockerignore excludes" in cp.stderr, cp.stderr
    # a symlink to a file that is not ignored is followed
    (ctx / "fine").symlink_to("pub/ok")
    (ctx / "Containerfile").write_text("FROM bb\nCOPY fine /fine\n")
    build(ctx, tag="bt-ignlink")
    assert hutch("run", "--rm", "bt-ignlink", "cat", "/fine").stdout == "fine\n"


def test_chown_names_resolve_inside_the_image(hutch, tmp, build):
    """--chown=NAME reads the image's /etc/passwd and /etc/group inside the
    image: a symlink there to a host file (or /dev/zero) never reaches the
    host's file, and the read is bounded."""
    host = tmp / "hostpasswd"  # a host file an image's symlink aims at
    host.write_text("evil:x:4242:4242::/:/bin/sh\n")
    ctx = write(tmp / "ctx", {"f": "f\n", "root/srv/pw": "app:x:1234:1234::/:/bin/sh\n",
                              "root/srv/gr": "appg:x:2345:\n"})
    (ctx / "etc").mkdir()
    (ctx / "etc/passwd").symlink_to(host)
    (ctx / "etc/group").symlink_to("/dev/zero")
    (ctx / "root/etc").mkdir()
    (ctx / "root/etc/passwd").symlink_to("/srv/pw")
    (ctx / "root/etc/group").symlink_to("../srv/gr")
    (ctx / "Containerfile").write_text("FROM bb\nCOPY etc /etc\nCOPY --chown=evil f /f\n")
    cp = build(ctx, tag="bt-chownlink", check=False)
    assert cp.returncode != 0, cp.stdout
    assert "no user 'evil' in the image's /etc/passwd" in cp.stderr, cp.stderr

    def limited():  # before the fix /dev/zero was read until memory ran out
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    (ctx / "Containerfile").write_text("FROM bb\nCOPY etc /etc\nCOPY --chown=0:zero f /f\n")
    cp = hutch("build", "-t", "bt-chownlink", ctx, check=False, timeout=120,
               preexec_fn=limited)
    assert cp.returncode != 0, cp.stdout
    assert "no group 'zero' in the image's /etc/group" in cp.stderr, cp.stderr
    # symlinks that stay in the image (absolute, "..") resolve in it
    (ctx / "Containerfile").write_text("FROM bb\nCOPY root/ /\nCOPY --chown=app:appg f /f\n")
    build(ctx, tag="bt-chownlink")
    out = hutch("run", "--rm", "bt-chownlink", "stat", "-c", "%u:%g", "/f").stdout
    assert out == "1234:2345\n"


def test_copy_owners_modes_and_add_archive(hutch, tmp, build):
    ctx = write(tmp / "ctx", {
        "Containerfile": "FROM bb\n"
                         "COPY --chown=1000:1000 --chmod=0600 f.txt /home/app/f.txt\n"
                         "COPY --chown=app dir /opt/dir\n"
                         "ADD files.tar.gz /unpacked/\n"
                         "ADD plain.txt /plain.txt\n"
                         "COPY plain.txt /tmp\n"
                         "COPY dir /etc/\n"
                         "WORKDIR /tmp/w\n",
        "f.txt": "f\n", "dir/a": "a\n", "plain.txt": "plain\n",
    })
    src = tmp / "arch"
    write(src, {"x/y.txt": "in the archive\n"})
    with tarfile.open(ctx / "files.tar.gz", "w:gz") as t:
        t.add(src / "x", arcname="x")
    build(ctx, tag="bt-owners")
    out = hutch("run", "--rm", "bt-owners", "sh", "-c",
                "stat -c '%u:%g %a %n' /home/app/f.txt /opt/dir/a /tmp /etc /etc/a; "
                "cat /unpacked/x/y.txt /plain.txt /tmp/plain.txt; pwd").stdout
    # a file copied to an existing directory goes into it; a directory copied
    # into one leaves its attributes as the image has them
    assert out.splitlines() == ["1000:1000 600 /home/app/f.txt", "1000:1000 644 /opt/dir/a",
                                "0:0 1777 /tmp", "0:0 755 /etc", "0:0 644 /etc/a",
                                "in the archive", "plain", "plain", "/tmp/w"]


def test_failing_run_names_step_and_line_and_leaves_nothing(hutch, tmp, build, state):
    ctx = write(tmp / "ctx", {
        "Containerfile": "FROM bb\n"
                         "# a comment\n"
                         "RUN echo partial > /partial && exit 7\n",
    })
    layers = state.layers()
    cp = build(ctx, tag="bt-fail", check=False)
    assert cp.returncode != 0
    assert "step 2/2" in cp.stderr and "Containerfile:3" in cp.stderr, cp.stderr
    assert "non-zero code: 7" in cp.stderr
    assert state.layers() == layers
    assert not list((state.root / "containers").iterdir())
    assert not list((state.root / "images" / "tmp").iterdir())
    assert "bt-fail" not in hutch("image", "ls").stdout


@pytest.mark.parametrize("text,line,what", [
    ("FROM bb\nRUN true\nONBUILD RUN true\n", 3, "ONBUILD"),
    ("FROM bb\n\nFROB x\n", 3, "FROB"),
    ("FROM bb\nCOPY --frm=x a /b\n", 2, "--frm"),
    ("FROM bb\nADD http://example.invalid/x /x\n", 2, "URL"),
    ("FROM bb\nCOPY ../outside /x\n", 2, "outside the build context"),
    ("RUN true\n", 1, "before the first FROM"),
    ("FROM bb\nRUN <<EOF\necho never closed\n", 2, "never closed"),
])
def test_refused_with_line(hutch, tmp, build, text, line, what):
    ctx = write(tmp / "ctx", {"Containerfile": text})
    cp = build(ctx, check=False)
    assert cp.returncode == 125
    assert f"Containerfile:{line}" in cp.stderr and what in cp.stderr, cp.stderr


def test_network_none(hutch, tmp, build):
    ctx = write(tmp / "ctx", {
        "Containerfile": "FROM bb\nRUN ls /sys/class/net > /ifaces\n",
    })
    build(ctx, "--network", "none", tag="bt-net")
    assert hutch("run", "--rm", "bt-net", "cat", "/ifaces").stdout == "lo\n"
    cp = build(ctx, "--network", "bridge", check=False)
    assert cp.returncode == 125 and "bridge" in cp.stderr


def test_prune_drops_unused_cache(hutch, tmp, build, state):
    ctx = write(tmp / "ctx", {"Containerfile": "FROM bb\nRUN echo p > /p\n"})
    build(ctx, tag="bt-prune")
    hutch("image", "rm", "bt-prune")
    hutch("image", "prune")
    st = steps(build(ctx, tag="bt-prune").stdout)
    assert st[0][1] != "CACHED"


def test_interrupt_stops_a_run_and_leaves_nothing(hutch, tmp, spawn, state):
    import signal
    ctx = write(tmp / "ctx", {"Containerfile": "FROM bb\nRUN echo started; sleep 30\n"})
    layers = state.layers()
    p = spawn("build", "-t", "bt-int", ctx)
    # the RUN's container exists and its command has started
    deadline = time.monotonic() + 10
    while not list((state.root / "containers").iterdir()):
        assert time.monotonic() < deadline, "the RUN never started"
        time.sleep(0.02)
    time.sleep(0.3)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=10)
    assert time.monotonic() - t0 < 5
    assert p.returncode != 0
    assert b"step 2/2" in err and b"130" in err, err
    assert state.layers() == layers
    assert not list((state.root / "containers").iterdir())
    assert "bt-int" not in hutch("image", "ls").stdout


def test_from_scratch_copy_from_image(hutch, tmp, build):
    ctx = write(tmp / "ctx", {
        "Containerfile": "FROM scratch\n"
                         "COPY --from=bb /bin/busybox /bin/busybox\n"
                         "COPY --from=bb /etc/ /etc/\n"
                         "CMD [\"/bin/busybox\", \"head\", \"-1\", \"/etc/passwd\"]\n",
    })
    build(ctx, tag="bt-scratch")
    assert hutch("run", "--rm", "bt-scratch").stdout == "root:x:0:0:root:/root:/bin/sh\n"
    info = json.loads(hutch("image", "inspect", "bt-scratch").stdout)[0]
    assert len(info["layers"]) == 2
    st = steps(build(ctx, tag="bt-scratch").stdout)
    assert [r for _, r in st] == ["CACHED"] * 3
    # a FROM scratch that makes no layer is refused
    write(ctx, {"Containerfile": "FROM scratch\nCMD [\"x\"]\n"})
    cp = build(ctx, check=False)
    assert cp.returncode == 125 and "no layers" in cp.stderr
