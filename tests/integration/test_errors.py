"""Bad input: one clear message naming the value, a non-zero exit, nothing left behind
(the autouse leak check in conftest.py runs after each of these)."""
import os

import pytest

CASES = [
    # (id, run args before the command, expected exit, text the message must contain)
    ("unknown-image", ["no-such-image-xyz", "true"], 125, "no-such-image-xyz"),
    ("bad-image-ref", ["Bad Image!", "true"], 125, "Bad Image!"),
    ("memory-unit", ["--memory", "64q", "bb", "true"], 125, "64q"),
    ("memory-too-small", ["--memory", "1k", "bb", "true"], 125, "1k"),
    ("memory-swap", ["--memory", "64m", "--memory-swap", "32m", "bb", "true"], 125, "32m"),
    ("cpus-word", ["--cpus", "abc", "bb", "true"], 125, "abc"),
    ("cpus-zero", ["--cpus", "0", "bb", "true"], 125, "'0'"),
    ("cpus-too-many", ["--cpus", "4096", "bb", "true"], 125, "4096"),
    ("pids-zero", ["--pids-limit", "0", "bb", "true"], 125, "'0'"),
    ("pids-word", ["--pids-limit", "many", "bb", "true"], 125, "many"),
    ("ulimit-value", ["--ulimit", "nofile=abc", "bb", "true"], 125, "nofile=abc"),
    ("ulimit-name", ["--ulimit", "bogus=1", "bb", "true"], 125, "bogus"),
    ("ulimit-soft-gt-hard", ["--ulimit", "nofile=200:100", "bb", "true"], 125,
     "nofile=200:100"),
    ("bind-source-missing", ["-v", "/nonexistent-src-qq:/data", "bb", "true"], 125,
     "/nonexistent-src-qq"),
    ("bind-named-volume", ["-v", "myvol:/data", "bb", "true"], 125, "myvol"),
    ("bind-relative-dest", ["-v", "/tmp:data", "bb", "true"], 125, "/tmp:data"),
    ("bind-bad-mode", ["-v", "/tmp:/data:rx", "bb", "true"], 125, "rx"),
    ("bind-file-over-dir", ["-v", "/etc/hostname:/bin", "bb", "true"], 125, "/bin"),
    ("tmpfs-relative", ["--tmpfs", "tmp", "bb", "true"], 125, "tmp"),
    ("tmpfs-size", ["--tmpfs", "/tmp:size=lots", "bb", "true"], 125, "lots"),
    ("workdir-relative", ["-w", "rel/dir", "bb", "true"], 125, "rel/dir"),
    ("workdir-is-file", ["-w", "/etc/passwd", "bb", "true"], 125, "/etc/passwd"),
    ("command-missing", ["bb", "no-such-cmd-qq"], 127, "no-such-cmd-qq"),
    ("command-missing-abs", ["bb", "/usr/bin/no-such-cmd-qq"], 127, "/usr/bin/no-such-cmd-qq"),
    ("not-executable", ["bb", "/etc/group"], 126, "/etc/group"),
    ("unknown-flag", ["--bogus-flag", "bb", "true"], 125, "--bogus-flag"),
    ("unknown-short-flag", ["-Z", "bb", "true"], 125, "-Z"),
    ("flag-missing-value", ["--memory"], 125, "--memory"),
    ("bad-network", ["--network", "bridge0", "bb", "true"], 125, "bridge0"),
    ("bad-cap", ["--cap-add", "NOT_A_CAP", "bb", "true"], 125, "NOT_A_CAP"),
    ("bad-cap-drop", ["--cap-drop", "ALSO_NOT", "bb", "true"], 125, "ALSO_NOT"),
    ("bad-security-opt", ["--security-opt", "apparmor=x", "bb", "true"], 125, "apparmor=x"),
    ("bad-stop-signal", ["--stop-signal", "SIGNOPE", "bb", "true"], 125, "SIGNOPE"),
    ("unknown-user", ["--user", "ghost", "bb", "true"], 125, "ghost"),
    ("env-empty-key", ["-e", "=x", "bb", "true"], 125, "=x"),
    ("no-image", [], 125, "image"),
]


@pytest.mark.parametrize("args,code,text", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_run_input(hutch, args, code, text):
    cp = hutch("run", "--rm", *args, check=False)
    assert cp.returncode == code, cp.stderr
    assert text in cp.stderr, cp.stderr
    assert cp.stdout == ""
    assert cp.stderr.startswith("hutch: "), cp.stderr


def test_env_file_missing(hutch, tmp):
    cp = hutch("run", "--rm", "--env-file", tmp / "missing.env", "bb", "true", check=False)
    assert cp.returncode == 125
    assert str(tmp / "missing.env") in cp.stderr


def test_bad_global_option_and_verb(hutch):
    cp = hutch("--frobnicate", "run", "bb", check=False)
    assert cp.returncode == 125 and "--frobnicate" in cp.stderr
    cp = hutch("explode", check=False)
    assert cp.returncode == 125 and "explode" in cp.stderr
    cp = hutch("image", "paint", check=False)
    assert cp.returncode == 125 and "paint" in cp.stderr


def test_many_failed_runs_leave_nothing(hutch, state):
    # Failures at different stages, repeated: the leak check after this test and the
    # explicit one here must both find nothing.
    for _ in range(5):
        for args in (["-v", "/etc/hostname:/bin", "bb", "true"],
                     ["-w", "/etc/passwd", "bb", "true"],
                     ["bb", "no-such-cmd-qq"],
                     ["--user", "ghost", "bb", "true"]):
            assert hutch("run", "--rm", *args, check=False).returncode != 0
    assert os.listdir(state.root / "containers") == []
    # The run root holds only the shared cache: no per-container state.
    assert set(os.listdir(state.root / "run")) <= {"cache"}
