"""Bad input: one clear message naming the value, a non-zero exit, nothing left behind
(the autouse leak check in conftest.py runs after each of these)."""
import os
import resource
import stat
import subprocess
import time

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
    ("exec-directory", ["bb", "/bin"], 126, 'exec "/bin": Is a directory'),
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
    ("workdir-dotdot", ["-w", "/a/../b", "bb", "true"], 125, "'..' is not allowed"),
    ("cpus-hex", ["--cpus", "0x1", "bb", "true"], 125, "'0x1'"),
    ("cpus-exponent", ["--cpus", "1e0", "bb", "true"], 125, "'1e0'"),
    ("pids-too-big", ["--pids-limit", "99999999999999999999", "bb", "true"], 125, "too big"),
    ("stop-signal-number", ["--stop-signal", "99", "bb", "true"], 125, "a number from 1 to"),
    ("user-empty-name", ["--user", ":0", "bb", "true"], 125, "the user is missing"),
    ("tmpfs-size-too-big", ["--tmpfs", "/tmp:size=99999999999999999999", "bb", "true"], 125,
     "too big"),
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
    # The run root holds only the shared cache, the said-once note markers and
    # the empty stacks/ parent (other tests may have made those): no
    # per-container state.
    left = set(os.listdir(state.root / "run")) - {"cache"}
    # stacks/, networks/, dns/, netns/ (made by the stack and network tests) may
    # stay as the empty parents they are
    for parent in ("stacks", "networks", "dns", "netns"):
        if parent in left and not os.listdir(state.root / "run" / parent):
            left.discard(parent)
    assert {n for n in left if not n.endswith("-note-given")} == set(), left



def one_clear_line(cp, code):
    """Exit code, nothing on stdout, one line on stderr starting with 'hutch: '."""
    assert cp.returncode == code, cp.stderr
    assert cp.stdout == ""
    assert cp.stderr.startswith("hutch: ") and cp.stderr.count("\n") == 1, cp.stderr
    return cp.stderr


def test_bind_file_over_directory_says_so(hutch):
    msg = one_clear_line(hutch("run", "--rm", "-v", "/etc/hostname:/bin", "bb", "true",
                               check=False), 125)
    assert "the file /etc/hostname on /bin" in msg, msg
    assert "/bin in the container is a directory" in msg, msg
    assert "like /bin/hostname" in msg, msg
    assert "Invalid argument" not in msg and "attach" not in msg, msg


def test_bind_directory_over_file_says_so(hutch, tmp):
    msg = one_clear_line(hutch("run", "--rm", "-v", f"{tmp}:/etc/passwd", "bb", "true",
                               check=False), 125)
    assert f"the directory {tmp} on /etc/passwd" in msg, msg
    assert "/etc/passwd in the container is a file" in msg, msg
    assert "resolve" not in msg and "Not a directory" not in msg, msg
    # below a file: the part of the path that is a file is named
    msg = one_clear_line(hutch("run", "--rm", "-v", f"{tmp}:/etc/passwd/x", "bb", "true",
                               check=False), 125)
    assert "/etc/passwd in the container is a file, not a directory" in msg, msg


def test_workdir_that_is_a_file_names_the_flag(hutch):
    for wd in ("/etc/passwd", "/etc/passwd/sub"):
        msg = one_clear_line(hutch("run", "--rm", "-w", wd, "bb", "true", check=False), 125)
        assert f"working directory {wd} (--workdir, or the image's WorkingDir)" in msg, msg
        assert "/etc/passwd in the container is a file, not a directory" in msg, msg
        assert "resolve" not in msg, msg


def test_tmpfs_unknown_option_gives_the_kernels_reason_cleanly(hutch):
    msg = one_clear_line(hutch("run", "--rm", "--tmpfs", "/tmp:bogus", "bb", "true",
                               check=False), 125)
    assert "mount tmpfs on /tmp: option 'bogus' refused: Unknown parameter 'bogus'" in msg, msg
    assert "(e " not in msg and "e tmpfs" not in msg and "Invalid argument" not in msg, msg
    msg = one_clear_line(hutch("run", "--rm", "--tmpfs", "/tmp:mode=xyz", "bb", "true",
                               check=False), 125)
    assert "option 'mode=xyz' refused: Bad value for 'mode'" in msg, msg


def can_raise_hard_limits():
    with open("/proc/self/status") as f:
        eff = int(next(l for l in f if l.startswith("CapEff:")).split()[1], 16)
    return os.geteuid() == 0 and bool(eff & (1 << 24))  # CAP_SYS_RESOURCE


def test_ulimit_above_the_hard_limit_is_refused_by_name_before_setup(hutch):
    with open("/proc/sys/fs/nr_open") as f:
        nr_open = int(f.read())
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < nr_open:
        cp = hutch("run", "--rm", "--ulimit", f"nofile={hard + 1}", "bb", "sh", "-c",
                   "ulimit -Hn", check=False)
        if can_raise_hard_limits():
            assert cp.returncode == 0 and cp.stdout == f"{hard + 1}\n", cp.stderr
        else:
            msg = one_clear_line(cp, 125)
            assert f"--ulimit: invalid ulimit 'nofile={hard + 1}'" in msg, msg
            assert f"the hard limit of nofile here is {hard}" in msg, msg
            assert f"use at most nofile={hard}" in msg, msg
    # more than the kernel allows anyone
    msg = one_clear_line(hutch("run", "--rm", "--ulimit", f"nofile={nr_open + 1}", "bb", "true",
                               check=False), 125)
    assert f"--ulimit: invalid ulimit 'nofile={nr_open + 1}'" in msg, msg
    assert "limit 7" not in msg and "resource limit" not in msg, msg
    msg = one_clear_line(hutch("run", "--rm", "--ulimit", "bogus=1", "bb", "true", check=False),
                         125)
    assert "unknown limit 'bogus' (known: as, core" in msg, msg


def test_empty_command_is_not_found_like_docker(hutch):
    msg = one_clear_line(hutch("run", "--rm", "bb", "", check=False), 127)
    assert 'exec "": executable file not found' in msg, msg
    assert "no command given" not in msg, msg
    msg = one_clear_line(hutch("run", "--rm", "--entrypoint", "", "bb", check=False), 125)
    assert "--entrypoint '' drops the image's Entrypoint and Cmd" in msg, msg


def test_memory_values_say_what_is_wrong(hutch):
    msg = one_clear_line(hutch("run", "--rm", "--memory", "99999999999999999999", "bb", "true",
                               check=False), 125)
    assert "'99999999999999999999': too big" in msg and "at least" not in msg, msg
    msg = one_clear_line(hutch("run", "--rm", "--memory", "1k", "bb", "true", check=False), 125)
    assert "'1k': too small, the least is 6m" in msg, msg
    msg = one_clear_line(hutch("run", "--rm", "--memory", "64q", "bb", "true", check=False), 125)
    assert "'64q': expected a size" in msg, msg
    msg = one_clear_line(hutch("run", "--rm", "--memory-swap", "1g", "bb", "true", check=False),
                         125)
    assert "--memory-swap '1g': a memory+swap limit (1 GiB) needs a memory limit" in msg, msg
    msg = one_clear_line(hutch("run", "--rm", "--memory", "64m", "--memory-swap", "32m", "bb",
                               "true", check=False), 125)
    assert "--memory-swap '32m': the memory+swap limit (32 MiB) is below the memory limit (64 MiB)" in msg, msg


def test_hostname_is_passed_whole_and_validated(hutch):
    ok = ".".join(["a" * 20, "b" * 20, "c" * 22])  # 64 characters
    assert hutch("run", "--rm", "--hostname", ok, "bb", "hostname").stdout == ok + "\n"
    long = "h" * 70  # used to be cut to 64 silently
    msg = one_clear_line(hutch("run", "--rm", "--hostname", long, "bb", "hostname",
                               check=False), 125)
    assert f"--hostname: invalid hostname '{long}': it is longer than 64 characters" in msg, msg
    for bad, why in (("bad_host", "'_' is not allowed"), ("-lead", "a label starts with '-'"),
                     ("trail-", "a label ends with '-'"), ("a..b", "a label between dots is empty"),
                     ("a" * 64, "a label is longer than 63"), ("", "it is empty")):
        msg = one_clear_line(hutch("run", "--rm", "--hostname", bad, "bb", "true",
                                   check=False), 125)
        assert f"--hostname: invalid hostname '{bad}': {why}" in msg, msg


def test_env_file_with_a_nul_byte(hutch, tmp):
    f = tmp / "bin.env"
    f.write_bytes(b"A=1\nB\x00C=2\n")
    msg = one_clear_line(hutch("run", "--rm", "--env-file", f, "bb", "true", check=False), 125)
    assert f"--env-file {f}: has a NUL byte" in msg, msg


def test_image_import_messages(hutch, tmp):
    msg = one_clear_line(hutch("image", "import", "/nonexistent-qq.tar", "x", check=False), 125)
    assert "image import: '/nonexistent-qq.tar' does not exist: give a rootfs" in msg, msg
    one = tmp / "one.tar"
    one.write_bytes(b"x")
    msg = one_clear_line(hutch("image", "import", one, "x", check=False), 125)
    assert "1 byte, less than one tar header" in msg, msg


def _host_dev_dir_with_a_node():
    """A directory of the host's /dev (not one --privileged leaves out) with a device node."""
    for name in sorted(os.listdir("/dev")):
        d = os.path.join("/dev", name)
        if name in ("pts", "shm", "fd", "mqueue") or os.path.islink(d) or not os.path.isdir(d):
            continue
        try:
            entries = os.listdir(d)
        except OSError:
            continue
        for e in entries:
            mode = os.lstat(os.path.join(d, e)).st_mode
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                return name
    raise AssertionError("no directory with a device node in the host's /dev")


def test_privileged_device_errors_name_the_real_path(hutch, tmp):
    # --privileged copies the host's nodes; where the container's /dev has a file
    # in place of one of their directories, the message names that directory
    name = _host_dev_dir_with_a_node()
    (tmp / "afile").write_text("")
    msg = one_clear_line(hutch("run", "--rm", "--privileged", "-v", f"{tmp}/afile:/dev/{name}",
                               "bb", "true", check=False), 125)
    assert f"create /dev/{name}: Not a directory" in msg, msg
    assert "..." not in msg, msg


# ------------------------------------------------------------ files read from the user


def test_env_file_from_dev_zero_fails_at_once(hutch):
    # used to read /dev/zero without end (3.4 GB after 6 s)
    t0 = time.monotonic()
    msg = one_clear_line(hutch("run", "--rm", "--env-file", "/dev/zero", "bb", "true",
                               check=False, timeout=10), 125)
    assert time.monotonic() - t0 < 5
    assert "--env-file /dev/zero: has a NUL byte (at byte 0)" in msg, msg


def test_env_file_over_the_size_cap_is_refused(hutch, tmp):
    big = tmp / "big.env"
    line = b"K=" + b"v" * 1000 + b"\n"
    with open(big, "wb") as f:
        for _ in range(1100):  # 1.1 MB: over the 1 MiB cap
            f.write(line)
    msg = one_clear_line(hutch("run", "--rm", "--env-file", big, "bb", "true", check=False), 125)
    assert f"--env-file {big}: larger than 1 MiB" in msg, msg
    # a file of exactly the cap is read (comments, then one variable)
    head = b"A=ok\n"
    comment = b"#" + b"c" * 1022 + b"\n"
    body = comment * (((1 << 20) - len(head)) // len(comment))
    pad = (1 << 20) - len(head) - len(body)
    big.write_bytes(head + body + b"#" * (pad - 1) + b"\n")
    assert big.stat().st_size == 1 << 20
    assert hutch("run", "--rm", "--env-file", big, "bb", "sh", "-c", "echo $A").stdout == "ok\n"


def test_env_file_from_an_endless_pipe_stops_at_the_cap(hutch):
    # a pipe (as `--env-file <(cmd)` gives) is read as Docker reads it, but never
    # more than the cap: here a writer that never stops
    writer = subprocess.Popen(["sh", "-c", "yes A=1"], stdout=subprocess.PIPE)
    try:
        fd = writer.stdout.fileno()
        msg = one_clear_line(hutch("run", "--rm", "--env-file", f"/dev/fd/{fd}", "bb", "true",
                                   check=False, pass_fds=(fd,), timeout=10), 125)
        assert f"--env-file /dev/fd/{fd}: larger than 1 MiB" in msg, msg
    finally:
        writer.kill()
        writer.wait()


def test_env_file_from_a_pipe_works(hutch):
    r, w = os.pipe()
    os.write(w, b"A=from-pipe\n# comment\n\nB=2\n")
    os.close(w)
    try:
        cp = hutch("run", "--rm", "--env-file", f"/dev/fd/{r}", "bb", "sh", "-c", "echo $A $B",
                   pass_fds=(r,))
    finally:
        os.close(r)
    assert cp.stdout == "from-pipe 2\n"


def test_env_file_bad_line_is_named(hutch, tmp):
    f = tmp / "bad.env"
    f.write_text("A=1\n\n=oops\n")
    msg = one_clear_line(hutch("run", "--rm", "--env-file", f, "bb", "true", check=False), 125)
    assert f"--env-file {f}: line 3: invalid environment variable '=oops'" in msg, msg
    msg = one_clear_line(hutch("run", "--rm", "--env-file", tmp, "bb", "true", check=False), 125)
    assert f"--env-file {tmp}: is a directory" in msg, msg


def test_auth_file_is_read_at_most_1_mib_and_only_from_a_regular_file(hutch, tmp):
    # read before any request: no registry is needed to see it refused
    big = tmp / "auth.json"
    big.write_bytes(b" " * ((1 << 20) + 1))
    fifo = tmp / "fifo.json"
    os.mkfifo(fifo)  # nobody writes to it: never waited on
    for path, why in ((big, "larger than 1 MiB"), (fifo, "not a regular file"),
                      ("/dev/zero", "not a regular file")):
        t0 = time.monotonic()
        msg = one_clear_line(hutch("pull", "--authfile", path, "127.0.0.1:1/x:1", check=False,
                                   timeout=10), 125)
        assert time.monotonic() - t0 < 5
        assert f"auth file: {path}: {why}" in msg, msg
