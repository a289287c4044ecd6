"""What an image's config sets, honoured as Docker does: Entrypoint and Cmd (and
their overrides), WorkingDir, User, Env (and the order flags merge into it),
StopSignal (used by `hutch stop`); fields hutch has no use for (ExposedPorts,
Labels, Volumes, Healthcheck) are ignored. Images are OCI layouts built by
tests/lib/make-oci-layout.py over the busybox rootfs."""
import json
import random
import re
import signal
import subprocess
import pytest

from conftest import REPO, wait_for

MAKE_LAYOUT = REPO / "tests" / "lib" / "make-oci-layout.py"


@pytest.fixture
def oci_image(state, hutch, tmp):
    """oci_image(config) -> the name of an imported image whose config has these
    keys (over Env PATH=... and Cmd ["/bin/sh"]); removed after the test."""
    made = []

    def make(config):
        name = f"cfg-{random.randrange(1 << 30)}"
        out = tmp / name
        subprocess.run(["/usr/bin/python3", str(MAKE_LAYOUT), "--config", json.dumps(config),
                        str(state.bb_tar), str(out)], check=True)
        hutch("image", "import", out, name)
        made.append(name)
        return name

    yield make
    for n in made:
        hutch("image", "rm", n, check=False)


def run(hutch, *args, **kw):
    return hutch("run", "--rm", *args, **kw)


# ------------------------------------------------------------------ entrypoint and cmd


def test_entrypoint_plus_cmd(hutch, oci_image):
    img = oci_image({"Entrypoint": ["/bin/echo", "ep"], "Cmd": ["c1", "c 2"]})
    assert run(hutch, img).stdout == "ep c1 c 2\n"
    # a command replaces the Cmd, the Entrypoint stays
    assert run(hutch, img, "x", "y").stdout == "ep x y\n"


def test_entrypoint_override_drops_the_cmd(hutch, oci_image):
    img = oci_image({"Entrypoint": ["/bin/echo", "ep"], "Cmd": ["c1"]})
    assert run(hutch, "--entrypoint", "/bin/echo", img).stdout == "\n"
    assert run(hutch, "--entrypoint", "/bin/echo", img, "a", "b").stdout == "a b\n"
    assert run(hutch, "--entrypoint=printf", img, "%s-%s\\n", "p", "q").stdout == "p-q\n"


def test_entrypoint_reset(hutch, oci_image):
    img = oci_image({"Entrypoint": ["/bin/false"], "Cmd": ["c1"]})
    # --entrypoint "": no entrypoint and no Cmd: the command must be given
    cp = run(hutch, "--entrypoint", "", img, check=False)
    assert cp.returncode == 125
    assert "no command: --entrypoint '' drops the image's Entrypoint and Cmd" in cp.stderr
    assert run(hutch, "--entrypoint", "", img, "echo", "hi").stdout == "hi\n"
    assert run(hutch, "--entrypoint=", img, "sh", "-c", "echo $0", "zero").stdout == "zero\n"


def test_cmd_only_and_entrypoint_only(hutch, oci_image):
    img = oci_image({"Cmd": ["echo", "from-cmd"]})
    assert run(hutch, img).stdout == "from-cmd\n"
    assert run(hutch, img, "echo", "given").stdout == "given\n"
    img = oci_image({"Entrypoint": ["echo", "only-ep"], "Cmd": None})
    assert run(hutch, img).stdout == "only-ep\n"
    assert run(hutch, img, "more").stdout == "only-ep more\n"


def test_no_cmd_and_no_entrypoint(hutch, oci_image):
    img = oci_image({"Cmd": None})
    cp = run(hutch, img, check=False)
    assert cp.returncode == 125
    assert "no command given and image" in cp.stderr
    assert "has no Cmd or Entrypoint: give one after the image" in cp.stderr
    assert run(hutch, img, "true").returncode == 0


# ------------------------------------------------------------------ workdir, user


def test_working_dir(hutch, oci_image):
    img = oci_image({"WorkingDir": "/srv/work/dir"})
    # created if missing, as Docker does
    assert run(hutch, img, "pwd").stdout == "/srv/work/dir\n"
    assert run(hutch, "-w", "/tmp", img, "pwd").stdout == "/tmp\n"
    img = oci_image({"WorkingDir": "/home/app"})
    assert run(hutch, img, "sh", "-c", "pwd; ls -A").stdout == "/home/app\nnew\n"


def test_user_by_name(hutch, oci_image):
    img = oci_image({"User": "app"})
    out = run(hutch, img, "id").stdout
    assert out.startswith("uid=1000(app) gid=1000(app)"), out
    # its groups from the image's /etc/group, and $HOME from its passwd line
    assert "10(wheel)" in out and "100(users)" in out, out
    assert run(hutch, img, "sh", "-c", "echo $HOME").stdout == "/home/app\n"
    # --user wins
    assert run(hutch, "--user", "root", img, "id", "-u").stdout == "0\n"


def test_user_by_uid_and_gid(hutch, oci_image):
    img = oci_image({"User": "1000:100"})
    assert run(hutch, img, "sh", "-c", "id -u; id -g").stdout == "1000\n100\n"
    img = oci_image({"User": "nobody:nogroup"})
    assert run(hutch, img, "sh", "-c", "id -u; id -g").stdout == "65534\n65534\n"
    img = oci_image({"User": "nosuchuser"})
    cp = run(hutch, img, "true", check=False)
    assert cp.returncode == 125 and "nosuchuser" in cp.stderr


# ------------------------------------------------------------------ env


def test_env_merge_order(hutch, oci_image, tmp):
    img = oci_image({"Env": ["PATH=/usr/bin:/bin:/usr/sbin:/sbin", "A=img", "B=img", "C=img",
                             "EMPTY="]})
    (tmp / "env").write_text("B=file\nC=file\n")
    out = run(hutch, "--env-file", tmp / "env", "-e", "C=flag", "-e", "D=flag", img,
              "env").stdout
    env = dict(l.split("=", 1) for l in out.splitlines())
    # the image's, then --env-file, then -e: later wins
    assert (env["A"], env["B"], env["C"], env["D"]) == ("img", "file", "flag", "flag")
    assert env["EMPTY"] == ""
    # the image's PATH replaces hutch's default; HOSTNAME and HOME are added
    assert env["PATH"] == "/usr/bin:/bin:/usr/sbin:/sbin"
    assert re.fullmatch(r"[0-9a-f]{12}", env["HOSTNAME"])
    assert env["HOME"] == "/root"
    out = run(hutch, "-e", "PATH=/bin", "-e", "A", img, "env", env={"A": "host", "PATH":
                                                                      "/usr/bin:/bin"}).stdout
    env = dict(l.split("=", 1) for l in out.splitlines())
    assert env["PATH"] == "/bin" and env["A"] == "host"


# ------------------------------------------------------------------ stop signal


def test_stop_signal_from_the_image(hutch, oci_image, ctr, tmp):
    img = oci_image({"StopSignal": "SIGUSR1"})
    cid = ctr.run("-v", f"{tmp}:/out", img, "sh", "-c",
                  "trap 'exit 42' USR1; touch /out/ready; sleep 100 & wait")
    assert ctr.inspect(cid)["process"]["stop_signal"] == signal.SIGUSR1
    wait_for(lambda: (tmp / "ready").exists(), what="the container's trap")
    hutch("stop", "-t", "20", cid)
    st = ctr.inspect(cid)
    assert st["status"] == "exited"
    assert st["exit_code"] == 42  # its trap ran: not SIGTERM (143), not SIGKILL (137)


def test_stop_signal_flag_beats_the_image(hutch, oci_image, ctr, tmp):
    img = oci_image({"StopSignal": "SIGUSR1"})
    cid = ctr.run("--stop-signal", "HUP", "-v", f"{tmp}:/out", img, "sh", "-c",
                  "trap 'exit 41' USR1; trap 'exit 43' HUP; touch /out/ready; "
                  "sleep 100 & wait")
    wait_for(lambda: (tmp / "ready").exists(), what="the container's trap")
    hutch("stop", "-t", "20", cid)
    assert ctr.inspect(cid)["exit_code"] == 43


def test_stop_signal_by_number_and_bad_one(hutch, oci_image):
    img = oci_image({"StopSignal": "10"})
    assert run(hutch, img, "true").returncode == 0
    img = oci_image({"StopSignal": "SIGBOGUS"})
    cp = run(hutch, img, "true", check=False)
    assert cp.returncode == 125
    assert "SIGBOGUS" in cp.stderr


# ------------------------------------------------------------------ ignored fields


def test_fields_without_meaning_here_are_ignored(hutch, oci_image, state):
    img = oci_image({"ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                     "Labels": {"org.example.team": "infra", "empty": ""},
                     "Volumes": {"/data": {}},
                     "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000},
                     "OnBuild": ["RUN false"], "ArgsEscaped": True, "Shell": ["/bin/sh", "-c"],
                     "Cmd": ["echo", "ran"]})
    assert run(hutch, img).stdout == "ran\n"
    # nothing is made of them: no /data volume, no extra mounts
    out = run(hutch, img, "sh", "-c", "test -e /data && echo data; cut -d' ' -f5 "
                                      "/proc/self/mountinfo").stdout
    assert "data" not in out.split()
    # and they are kept in the image's record as the image has them
    conf = json.loads(hutch("image", "inspect", img).stdout)[0]["config"]
    assert conf["Labels"] == {"org.example.team": "infra", "empty": ""}
    assert conf["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}


# ------------------------------------------------------------------ bad configs and messages


def _layout(state, tmp, config, name="bad"):
    out = tmp / name
    subprocess.run(["/usr/bin/python3", str(MAKE_LAYOUT), "--config", json.dumps(config),
                    str(state.bb_tar), str(out)], check=True)
    return out


@pytest.mark.parametrize("config,needle", [
    ({"Cmd": {"a": 1}}, 'image config: config: "Cmd" must be an array, not object'),
    ({"Env": "A=1"}, 'image config: config: "Env" must be an array, not string'),
    ({"Entrypoint": 7}, 'image config: config: "Entrypoint" must be an array, not int'),
    ({"WorkingDir": ["/w"]}, 'image config: config: "WorkingDir" must be a string, not array'),
    ({"Entrypoint": ["/bin/sh\u0000-c"]},
     "image config: config: Entrypoint[0] contains a NUL character"),
    ({"Env": ["A=1\u0000B=2"]}, "image config: config: Env[0] contains a NUL character"),
])
def test_config_with_wrong_types_or_a_nul_refused_at_import(hutch, state, tmp, config, needle):
    """Docker reads these fields as typed values: a Cmd that is an object or an
    Env that is a string would import and then run as "no Cmd" or with no env,
    and a NUL would cut a string short without a word. Refused at import,
    naming the field and the type found; nothing stored."""
    src = _layout(state, tmp, config)
    cp = hutch("image", "import", src, "badcfg", check=False)
    assert cp.returncode == 125, cp.stdout
    assert needle in cp.stderr, cp.stderr
    assert len(cp.stderr.splitlines()) == 1, cp.stderr
    assert "badcfg:latest" not in hutch("image", "ls").stdout


def test_cmd_and_entrypoint_as_one_string(hutch, oci_image):
    # Docker's strslice: a string is a one-element array
    img = oci_image({"Entrypoint": "/bin/echo", "Cmd": "one string"})
    assert run(hutch, img).stdout == "one string\n"


def test_bad_working_dir_of_the_image_said_plainly(hutch, oci_image):
    img = oci_image({"WorkingDir": "rel/dir"})
    cp = run(hutch, img, "true", check=False)
    assert cp.returncode == 125
    assert "the image's WorkingDir: invalid working directory 'rel/dir': must be an absolute path" \
        in cp.stderr, cp.stderr
    assert "invalid the" not in cp.stderr
    img = oci_image({"WorkingDir": "/a/../b"})
    cp = run(hutch, img, "true", check=False)
    assert "the image's WorkingDir: invalid working directory '/a/../b': '..' is not allowed" \
        in cp.stderr, cp.stderr
    # the image's text is shown escaped
    img = oci_image({"WorkingDir": "x\u001b[31m\n"})
    cp = run(hutch, img, "true", check=False, text=False)
    assert cp.returncode == 125
    assert b"the image's WorkingDir: invalid working directory 'x\\x1b[31m\\x0a'" in cp.stderr, cp.stderr
    assert b"\x1b" not in cp.stderr and cp.stderr.count(b"\n") == 1


@pytest.mark.parametrize("wd,link", [("/proc/self/cwd", "/proc/self/cwd"),
                                     ("/proc/self/cwd/sub", "/proc/self/cwd"),
                                     ("/proc/1/root", "/proc/1/root")])
def test_workdir_at_a_proc_magic_link_says_why(hutch, oci_image, wd, link):
    """A /proc magic link leads to whatever a process has open (outside the
    container, possibly): refused, saying so, not as a bare 'Too many levels of
    symbolic links' -- from -w and from the image's WorkingDir alike."""
    for args in (("-w", wd, "bb"), (oci_image({"WorkingDir": wd}),)):
        cp = run(hutch, *args, "pwd", check=False)
        assert cp.returncode == 125, cp.stdout
        assert f"{link} in the container is a /proc magic link" in cp.stderr, cp.stderr
        assert "hutch never follows one" in cp.stderr
        assert "Too many levels" not in cp.stderr


def test_image_text_in_messages_and_ps_is_escaped(hutch, oci_image, ctr):
    """An image's User and Cmd reach messages and `ps`: never as raw escape
    sequences or line breaks on the admin's terminal."""
    img = oci_image({"User": "\u001b[31mevil\nuser"})
    cp = run(hutch, img, "true", check=False, text=False)
    assert cp.returncode == 125
    assert b"\\x1b[31mevil\\x0auser" in cp.stderr, cp.stderr
    assert b"\x1b" not in cp.stderr and cp.stderr.count(b"\n") == 1, cp.stderr
    img = oci_image({"Cmd": ["sh", "-c", "\u001b]0;x\u0007\u001b[31m\nsleep 100"]})
    ctr.run("-d", img)
    out = hutch("ps", text=False).stdout
    assert b"\x1b" not in out and b"\x07" not in out, out
    assert b"\\x1b]0;x\\x07" in out, out
    assert out.count(b"\n") == 2, out  # the header and one row
