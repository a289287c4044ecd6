"""The container's process: stdio, args, entrypoint and cmd, user, env, workdir."""
import hashlib
import os
import re

from conftest import DEFAULT_PATH

# ------------------------------------------------------------------ stdio


def test_stdin_not_passed_without_i(hutch):
    cp = hutch("run", "--rm", "bb", "cat", input="should not arrive\n")
    assert cp.returncode == 0
    assert cp.stdout == ""
    out = hutch("run", "--rm", "bb", "readlink", "/proc/self/fd/0", input="x").stdout
    assert out == "/dev/null\n"


def test_stdin_passed_with_i(hutch):
    cp = hutch("run", "--rm", "-i", "bb", "cat", input="x\ny\n")
    assert cp.stdout == "x\ny\n"
    cp = hutch("run", "--rm", "--interactive", "bb", "wc", "-l", input="1\n2\n3\n")
    assert cp.stdout.strip() == "3"


def test_stdout_and_stderr_separate(hutch):
    cp = hutch("run", "--rm", "bb", "sh", "-c", "echo out; echo err >&2; echo out2")
    assert cp.stdout == "out\nout2\n"
    assert cp.stderr == "err\n"


def test_large_output_intact(hutch):
    cp = hutch("run", "--rm", "bb", "sh", "-c", "yes 0123456789abcdef | head -c 10485760",
               text=False)
    assert len(cp.stdout) == 10 * 1024 * 1024
    expected = (b"0123456789abcdef\n" * (10 * 1024 * 1024 // 17 + 1))[:10 * 1024 * 1024]
    assert cp.stdout == expected


def test_large_binary_roundtrip_through_stdin(hutch):
    data = os.urandom(10 * 1024 * 1024)
    cp = hutch("run", "--rm", "-i", "bb", "cat", input=data, text=False)
    assert hashlib.sha256(cp.stdout).hexdigest() == hashlib.sha256(data).hexdigest()
    cp = hutch("run", "--rm", "-i", "bb", "sha256sum", input=data, text=False)
    assert cp.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_args_preserved(hutch):
    args = ["a b", "c'd", 'e"f', "", "  lead", "tab\there", "$HOME", "*", "ünï"]
    out = hutch("run", "--rm", "bb", "printf", "[%s]\\n", *args).stdout
    assert out.splitlines() == [f"[{a}]" for a in args]


def test_entrypoint_override(hutch):
    assert hutch("run", "--rm", "--entrypoint", "/bin/echo", "bb", "hi", "there").stdout == \
        "hi there\n"
    # --entrypoint without a command drops the image's Cmd
    assert hutch("run", "--rm", "--entrypoint", "pwd", "bb").stdout == "/\n"


def test_image_cmd_default(hutch):
    cp = hutch("run", "--rm", "-i", "bb", input="echo hi\necho $$\n")
    assert cp.stdout == "hi\n1\n"


def test_double_dash_ends_options(hutch):
    out = hutch("run", "--rm", "--", "bb", "echo", "--rm", "-i").stdout
    assert out == "--rm -i\n"


def test_options_after_image_belong_to_the_command(hutch):
    out = hutch("run", "--rm", "bb", "echo", "-e", "A=1").stdout
    assert out == "A=1\n"


# ------------------------------------------------------------------ user


def test_user_uid_gid(hutch):
    out = hutch("run", "--rm", "--user", "1000:1000", "bb", "sh", "-c",
                "id -u; id -g; id -G").stdout
    assert out.split("\n")[:3] == ["1000", "1000", "1000"]


def test_user_numeric_unknown_in_passwd(hutch):
    out = hutch("run", "--rm", "--user", "4242:4343", "bb", "sh", "-c",
                "id -u; id -g; echo $HOME").stdout
    assert out.split() == ["4242", "4343", "/"]


def test_user_by_name_with_groups(hutch):
    out = hutch("run", "--rm", "--user", "app", "bb", "sh", "-c",
                "id -u; id -g; id -G; echo $HOME; whoami").stdout
    uid, gid, groups, home, who = out.splitlines()
    assert uid == "1000" and gid == "1000"
    assert set(groups.split()) == {"1000", "10", "100"}  # app, wheel, users
    assert home == "/home/app"
    assert who == "app"


def test_user_name_and_group_name(hutch):
    out = hutch("run", "--rm", "-u", "app:users", "bb", "sh", "-c", "id -u; id -g").stdout
    assert out.split() == ["1000", "100"]


def test_user_nobody(hutch):
    out = hutch("run", "--rm", "--user", "nobody", "bb", "sh", "-c",
                "id -u; id -g; echo $HOME").stdout
    assert out.split() == ["65534", "65534", "/nonexistent"]


def test_user_root_home(hutch):
    assert hutch("run", "--rm", "bb", "sh", "-c", "echo $HOME").stdout == "/root\n"


def test_unknown_user_fails(hutch):
    cp = hutch("run", "--rm", "--user", "nosuchuser", "bb", "true", check=False)
    assert cp.returncode == 125
    assert "nosuchuser" in cp.stderr
    cp = hutch("run", "--rm", "--user", "app:nosuchgroup", "bb", "true", check=False)
    assert cp.returncode == 125
    assert "nosuchgroup" in cp.stderr


def test_user_cannot_write_root_owned_files(hutch):
    cp = hutch("run", "--rm", "--user", "1000", "bb", "sh", "-c",
               "echo x >> /etc/passwd", check=False)
    assert cp.returncode != 0 and "Permission denied" in cp.stderr


# ------------------------------------------------------------------ env


def _env(text):
    return dict(l.split("=", 1) for l in text.splitlines() if "=" in l)


def test_image_env_path(hutch):
    env = _env(hutch("run", "--rm", "bb", "env").stdout)
    assert env["PATH"] == DEFAULT_PATH
    assert re.fullmatch(r"[0-9a-f]{12}", env["HOSTNAME"])
    assert env["HOME"] == "/root"


def test_host_env_not_leaked(hutch):
    env = _env(hutch("run", "--rm", "bb", "env",
                     env={**os.environ, "HUTCH_SECRET_TEST": "leak"}).stdout)
    assert "HUTCH_SECRET_TEST" not in env
    assert set(env) <= {"PATH", "HOSTNAME", "HOME", "PWD", "SHLVL", "TERM", "container"}


def test_env_flag(hutch):
    out = hutch("run", "--rm", "-e", "A=1", "--env", "B=two words", "-e", "C=", "bb", "sh",
                "-c", 'echo "$A|$B|${C-unset}|${D-unset}"').stdout
    assert out == "1|two words||unset\n"


def test_env_from_host(hutch):
    out = hutch("run", "--rm", "-e", "FROMHOST", "-e", "NOT_SET_ANYWHERE_ZZ", "bb", "sh", "-c",
                'echo "$FROMHOST|${NOT_SET_ANYWHERE_ZZ-unset}"',
                env={**os.environ, "FROMHOST": "host value"}).stdout
    assert out == "host value|unset\n"


def test_env_file(hutch, tmp):
    f = tmp / "vars.env"
    f.write_text("# comment\nX=1\n\n  Y=with spaces\nZ=a=b\r\nFROMHOST\n")
    out = hutch("run", "--rm", "--env-file", f, "bb", "sh", "-c", 'echo "$X|$Y|$Z|$FROMHOST"',
                env={**os.environ, "FROMHOST": "h"}).stdout
    assert out == "1|with spaces|a=b|h\n"


def test_env_flag_overrides_file_and_image(hutch, tmp):
    f = tmp / "vars.env"
    f.write_text("X=file\n")
    out = hutch("run", "--rm", "--env-file", f, "-e", "X=flag", "-e", "PATH=/bin:/custom",
                "bb", "sh", "-c", 'echo "$X|$PATH"').stdout
    assert out == "flag|/bin:/custom\n"


def test_env_path_used_for_lookup(hutch):
    cp = hutch("run", "--rm", "-e", "PATH=/nowhere", "bb", "echo", "x", check=False)
    assert cp.returncode == 127
    assert hutch("run", "--rm", "-e", "PATH=/nowhere", "bb", "/bin/echo", "y").stdout == "y\n"


# ------------------------------------------------------------------ workdir


def test_workdir(hutch):
    assert hutch("run", "--rm", "-w", "/etc", "bb", "pwd").stdout == "/etc\n"
    assert hutch("run", "--rm", "bb", "pwd").stdout == "/\n"


def test_workdir_created_when_missing(hutch):
    out = hutch("run", "--rm", "-w", "/new/deep/dir", "bb", "sh", "-c",
                "pwd; echo $PWD; touch here && ls").stdout
    assert out == "/new/deep/dir\n/new/deep/dir\nhere\n"


def test_workdir_for_non_root_user(hutch):
    out = hutch("run", "--rm", "-u", "app", "-w", "/home/app", "bb", "sh", "-c",
                "pwd; touch mine && stat -c %u mine").stdout
    assert out == "/home/app\n1000\n"
