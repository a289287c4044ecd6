"""Regression tests for known container escapes: each test names the CVE or the
class of attack it replays. The probes (tests/integration/escapes/*.c, built once
per session by the `probes` fixture in conftest.py): escprobe and exewriter
static, preload_attack as a shared library for an image whose own dynamic loader
runs it."""
import hashlib
import os
import random
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import wait_for

ROOTLESS = os.geteuid() != 0


# ------------------------------------------------------------------ fixtures


def probe_args(probes):
    return ["-v", f"{probes}:/probe:ro"]


def results(text):
    """NAME=VALUE lines -> dict."""
    return dict(l.split("=", 1) for l in text.splitlines() if "=" in l)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def dev_ino(path):
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def runtime_copy(state, tmp, name="hutch-copy"):
    """A private copy of the hutch binary to attack: if an attack ever succeeds it
    ruins the copy, not build/hutch."""
    dst = tmp / name
    shutil.copy2(state.bin, dst)
    dst.chmod(0o755)
    return dst


def run_with(binary, state, *args, check=True, timeout=30):
    cp = subprocess.run([str(binary), "--root", str(state.root), *[str(a) for a in args]],
                        capture_output=True, text=True, timeout=timeout)
    if check and cp.returncode != 0:
        raise AssertionError(f"exit {cp.returncode}: {args}\n{cp.stdout}\n{cp.stderr}")
    return cp


def mounts_mentioning(text):
    return [l for l in Path("/proc/self/mountinfo").read_text().splitlines() if text in l]


def host_dir(tag):
    """A fresh dir on the host under /tmp with one file in it: the target an escape
    would write to."""
    d = Path("/tmp") / f"hutch-host-{tag}-{random.randrange(1 << 30)}"
    d.mkdir()
    (d / "keep").write_text("host\n")
    return d


# ------------------------------------------------------------------ CVE-2019-5736


def test_cve_2019_5736_init_exe_is_a_sealed_copy(hutch, state):
    """CVE-2019-5736: under --init pid 1 is hutch-dmz, a tiny program exec'd from a
    sealed memfd: its /proc/1/exe is that memfd, never the host's runtime binary,
    and it cannot be written; pid 1 holds no fd but 0, 1 and 2."""
    cp = hutch("run", "--rm", "--init", "bb", "sh", "-c",
               "cat /proc/1/comm; readlink /proc/1/exe; wc -c < /proc/1/exe; "
               "(echo x >> /proc/1/exe) 2>/dev/null && echo write=ok || echo write=denied; "
               "ls /proc/1/fd/ 2>&1 | tr '\\n' ' '; echo", check=False)
    lines = cp.stdout.splitlines()
    assert lines[0] == "hutch-init", cp.stdout
    assert "memfd:hutch-dmz" in lines[1], cp.stdout
    assert int(lines[2]) < 65536 and int(lines[2]) != os.path.getsize(state.bin), cp.stdout
    assert lines[3] == "write=denied", cp.stdout
    assert lines[4].split() in (["0", "1", "2"], []), cp.stdout


@pytest.mark.parametrize("init", [False, True], ids=["plain", "init"])
def test_cve_2019_5736_exec_does_not_expose_the_runtime(hutch, ctr, probes, state, tmp,
                                                        init):
    """CVE-2019-5736: while `hutch exec` runs, no process the exec'd command can see
    has the runtime's binary as its exe (the exec helper stays outside the pid
    namespace and is not dumpable), so there is nothing to open or write; under
    --init, pid 1 (hutch's reaper) is not openable."""
    copy = runtime_copy(state, tmp)
    runtimes = {dev_ino(state.bin), dev_ino(copy)}
    cid = ctr.run(*(["--init"] if init else []), *probe_args(probes), "bb", "sleep", "100")
    cp = run_with(copy, state, "exec", cid, "/probe/escprobe", "exescan", "write")
    seen = re.findall(r"^exe (\d+) (\S+)$", cp.stdout, re.M)
    assert {pid for pid, _ in seen} >= ({"1", "2"} if init else {"1"}), cp.stdout
    for pid, what in seen:
        assert what not in runtimes, f"pid {pid}: exe is the hutch binary\n{cp.stdout}"
    writes = re.findall(r"^write (\d+) (\S+)$", cp.stdout, re.M)
    assert writes and all(w != "ok" for _, w in writes), cp.stdout
    if init:
        # the init's exe is the sealed hutch-dmz memfd: not a runtime, not writable
        assert dict(seen)["1"] not in runtimes
        assert dict(writes)["1"] != "ok"


def test_cve_2019_5736_writes_to_every_exe_leave_the_binary_intact(ctr, probes, state,
                                                                     tmp):
    """CVE-2019-5736: as root in the container, try again and again to append to
    every /proc/*/exe visible, from the processes of a container whose pid 1 is
    the runtime's reaper (--init), and from a command exec'd into a second one,
    while a runtime (a copy of hutch: the monitors, the init, the exec) runs; the
    runtime's binary must not change."""
    copy = runtime_copy(state, tmp)
    before = sha256(copy)
    script = ("i=0; while [ $i -lt 20 ]; do /probe/escprobe exescan write; "
              "for f in /proc/[0-9]*/exe; do echo x >> $f; done 2>/dev/null; "
              "usleep 50000; i=$((i+1)); done; echo finished")
    cp = run_with(copy, state, "run", "-d", "--init", *probe_args(probes), "bb", "sh", "-c",
                  script)
    looping = ctr.keep(cp.stdout.strip())
    cp = run_with(copy, state, "run", "-d", *probe_args(probes), "bb", "sleep", "100")
    target = ctr.keep(cp.stdout.strip())
    for _ in range(5):
        out = run_with(copy, state, "exec", target, "sh", "-c",
                       "/probe/escprobe exescan write; "
                       "for f in /proc/[0-9]*/exe; do echo x >> $f; done 2>/dev/null; true")
        writes = re.findall(r"^write \d+ (\S+)$", out.stdout, re.M)
        assert writes and "ok" not in writes, out.stdout
    ctr.wait_exited(looping, timeout=30)
    logs = run_with(copy, state, "logs", looping).stdout
    assert "finished" in logs
    tries = re.findall(r"^write (\d+) (\S+)$", logs, re.M)
    assert any(pid == "1" for pid, _ in tries), logs  # the init (sealed hutch-dmz) tried too
    assert all(w != "ok" for _, w in tries), logs
    assert sha256(copy) == before


def _exploit_image(image_from, state, probes):
    """An image with the host's dynamic loader and the libraries hutch links with
    (so that hutch's binary can run inside it), /etc/ld.so.preload pointing at the
    attack library, and /evil: a script whose interpreter is /proc/self/exe."""
    ldd = subprocess.run(["ldd", state.bin], capture_output=True, text=True,
                         check=True).stdout
    libs = re.findall(r"(/\S+) \(0x", ldd)
    assert any("ld-linux" in l for l in libs), ldd

    def populate(d):
        for lib in libs:
            dst = d / lib.lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(lib), dst)
        (d / "lib").mkdir(exist_ok=True)
        shutil.copy2(probes / "preload_attack.so", d / "lib" / "preload_attack.so")
        (d / "etc" / "ld.so.preload").write_text("/lib/preload_attack.so\n")
        shutil.copy2(probes / "exewriter", d / "exewriter")
        (d / "evil").write_text("#!/proc/self/exe\n")
        (d / "evil").chmod(0o755)

    return image_from("cve-2019-5736", populate)


def test_cve_2019_5736_exploit_through_exec(hutch, ctr, probes, state, tmp, image_from):
    """CVE-2019-5736, the published exploit replayed against `hutch exec`: the image
    plants /evil with the interpreter #!/proc/self/exe; when the host runs
    `hutch exec C /evil`, the kernel starts the runtime's own binary inside the
    container, where the image's /etc/ld.so.preload runs attacker code in it. That
    code opens /proc/self/exe and, once the runtime has exited, reopens it for
    writing through /proc/self/fd. The container was started by another hutch (as
    after an upgrade of the binary), so no running monitor keeps the attacked
    binary busy. Defences: run from a sealed memfd copy, or a read-only binary."""
    img = _exploit_image(image_from, state, probes)
    out = tmp / "out"
    out.mkdir()
    out.chmod(0o777)
    result = out / "result"
    upgraded = runtime_copy(state, tmp, "hutch-upgraded")
    before = sha256(upgraded)
    cid = ctr.run("-v", f"{out}:/out", img, "sleep", "100")
    cp = run_with(upgraded, state, "exec", cid, "/evil", check=False)
    # The attack reports through /out/result; give its writer time to finish.
    def verdict():
        text = result.read_text() if result.exists() else ""
        if re.search(r"^(wrote|write-failed|open-exe-failed)", text, re.M):
            return text
        return None
    wait_for(lambda: verdict() or not result.exists(), timeout=2, what="the attack to start")
    text = wait_for(verdict, timeout=15, what="the attack's verdict") \
        if result.exists() else ""
    assert sha256(upgraded) == before, \
        f"the container overwrote the runtime binary: {text!r}; exec: {cp.stderr!r}"
    assert "wrote" not in text, text


def test_cve_2019_5736_exploit_through_run_init(ctr, probes, state, tmp, image_from):
    """CVE-2019-5736 against a container's own start: the command is /evil, so the
    runtime binary is re-run as the container's command (pid 2 under --init), with
    the attack library preloaded. The binary must survive."""
    img = _exploit_image(image_from, state, probes)
    out = tmp / "out"
    out.mkdir()
    out.chmod(0o777)
    copy = runtime_copy(state, tmp)
    before = sha256(copy)
    cp = run_with(copy, state, "run", "--init", "--name", "x5736run", "-v", f"{out}:/out",
                  img, "/evil", check=False, timeout=30)
    ctr.keep("x5736run")
    text = (out / "result").read_text() if (out / "result").exists() else ""
    assert sha256(copy) == before, f"{text!r} {cp.stderr!r}"
    assert "wrote" not in text


# ------------------------------------------------------------------ CVE-2024-21626


def _fds(out):
    """escprobe fds output -> (pid, cwd, {fd: target}) without the probe's own dir fd."""
    got = results(out)
    pid = int(got["pid"])
    fds = {int(fd): target for fd, target in re.findall(r"^fd (\d+) (.*)$", out, re.M)}
    own = [fd for fd, t in fds.items() if t == f"/proc/{pid}/fd"]
    assert own == [int(got["dirfd"])], out
    del fds[own[0]]
    return pid, got["cwd"], fds


def _assert_no_host_paths(fds):
    for fd, target in fds.items():
        assert (target == "/dev/null" or target.startswith("pipe:[")
                or target.startswith("socket:[") or target.startswith("/dev/pts/")), \
            f"fd {fd} -> {target}"


@pytest.mark.parametrize("flags", [[], ["--init"], ["-u", "1000"]],
                         ids=["plain", "init", "user"])
def test_cve_2024_21626_only_stdio_in_run(hutch, probes, flags):
    """CVE-2024-21626: a runtime fd (runc leaked a host cgroup dir) reaching the
    container is a way out of its root. /proc/self/fd inside lists only 0 1 2."""
    out = hutch("run", "--rm", *flags, *probe_args(probes), "bb", "/probe/escprobe",
                "fds").stdout
    pid, cwd, fds = _fds(out)
    assert sorted(fds) == [0, 1, 2], out
    _assert_no_host_paths(fds)
    assert cwd == "/"
    assert pid == (2 if "--init" in flags else 1)


@pytest.mark.parametrize("init", [False, True], ids=["plain", "init"])
def test_cve_2024_21626_only_stdio_in_exec(hutch, ctr, probes, init):
    """CVE-2024-21626 through `hutch exec`: its helper holds the container's pidfd
    and cgroup dir fd; none of it may reach the exec'd command."""
    cid = ctr.run(*(["--init"] if init else []), *probe_args(probes), "bb", "sleep", "100")
    if init:  # pid 1 forks the command a moment after run -d returns
        wait_for(lambda: hutch("exec", cid, "cat", "/proc/2/comm", check=False).stdout
                 == "sleep\n", what="the command as pid 2 under --init")
    for flags in ([], ["-u", "app"], ["-w", "/etc"], ["-i"]):
        out = hutch("exec", *flags, cid, "/probe/escprobe", "fds", input="").stdout
        pid, cwd, fds = _fds(out)
        assert sorted(fds) == [0, 1, 2], (flags, out)
        _assert_no_host_paths(fds)
        assert cwd == ("/etc" if "-w" in flags else "/"), (flags, out)
        assert pid > (2 if init else 1)
    # and the shell's own table, read from outside it
    out = hutch("exec", cid, "sh", "-c", "ls /proc/$$/fd; true").stdout
    assert out.split() == ["0", "1", "2"]


def test_cve_2024_21626_workdir_through_proc_self_fd(hutch, ctr):
    """CVE-2024-21626, the attack itself: `-w /proc/self/fd/N` names whatever fd N
    the runtime holds while it sets the working directory. It must never start a
    command with a working directory outside the container."""
    cid = ctr.run("bb", "sleep", "100")
    for n in range(3, 12):
        for args in (["run", "--rm", "-w", f"/proc/self/fd/{n}", "bb"],
                     ["exec", "-w", f"/proc/self/fd/{n}", cid]):
            cp = hutch(*args, "sh", "-c", "pwd; readlink /proc/self/cwd; ls /", check=False)
            if cp.returncode == 0:
                pwd, link = cp.stdout.splitlines()[:2]
                assert pwd.startswith("/") and link.startswith("/"), (args, cp.stdout)
                assert "(unreachable)" not in cp.stdout
                assert "sys" in cp.stdout.split()  # the container's root, not another
            else:
                assert cp.returncode == 125, (args, cp)
                assert f"/proc/self/fd/{n}" in cp.stderr, (args, cp.stderr)
                assert cp.stdout == ""


def test_cve_2024_21626_workdir_verified_inside(hutch, ctr, image_from):
    """CVE-2024-21626: the working directory is checked to be inside the root, also
    when the image makes it a symlink pointing out of the root."""
    outside = host_dir("wd")
    try:
        def plant(d):
            (d / "tmp" / outside.name).mkdir()
            os.symlink("../" * 10 + f"tmp/{outside.name}", d / "wd")

        img = image_from("wd-escape", plant)
        out = hutch("run", "--rm", "-w", "/wd", img, "sh", "-c",
                    "pwd; readlink /proc/self/cwd; touch here; ls").stdout
        # resolved in the root: the container's own /tmp/NAME
        assert out.split("\n")[:3] == [f"/tmp/{outside.name}"] * 2 + ["here"], out
        cid = ctr.run(img, "sleep", "100")
        out = hutch("exec", "-w", "/wd", cid, "sh", "-c",
                    "readlink /proc/self/cwd; touch there").stdout
        assert out == f"/tmp/{outside.name}\n"
        assert sorted(os.listdir(outside)) == ["keep"]
        # pid 1's cwd, from inside
        out = hutch("run", "--rm", "-w", "/tmp", "bb", "readlink", "/proc/1/cwd").stdout
        assert out == "/tmp\n"
    finally:
        shutil.rmtree(outside)


# ------------------------------------------------------------------ CVE-2021-30465


def _planted(image_from, tag, links, mkdirs=()):
    def plant(d):
        for p in mkdirs:
            (d / p.lstrip("/")).mkdir(parents=True, exist_ok=True)
        for path, target in links.items():
            os.symlink(target, d / path.lstrip("/"))
    return image_from(tag, plant)


@pytest.mark.parametrize("kind", ["absolute-dotdot", "relative-dotdot", "chain"])
def test_cve_2021_30465_symlinked_mount_parent_stays_in_root(hutch, tmp, image_from, kind):
    """CVE-2021-30465 class: the image plants a symlink at the parent of a mount
    target (/mnt -> /../../../../tmp/HOSTDIR). The bind on /mnt/x must be resolved
    in the container's root (openat2 RESOLVE_IN_ROOT): it lands in the container's
    own /tmp/HOSTDIR/x, and the host's /tmp/HOSTDIR is left alone."""
    outside = host_dir("mnt")
    name = outside.name
    links = {"absolute-dotdot": {"/mnt": "/../../../../tmp/" + name},
             "relative-dotdot": {"/mnt": "../" * 12 + "tmp/" + name},
             "chain": {"/mnt": "hop", "/hop": "../../../../tmp/" + name}}[kind]
    try:
        img = _planted(image_from, f"mnt-{kind}", links, mkdirs=[f"/tmp/{name}"])
        src = tmp / "src"
        src.mkdir()
        (src / "from-src").write_text("src\n")
        before = sorted(os.listdir(outside))
        out = hutch("run", "--rm", "-v", f"{src}:/mnt/x", img, "sh", "-c",
                    f"ls /mnt/x; ls /tmp/{name}/x; touch /mnt/x/written; "
                    f"grep -c ' /tmp/{name}/x ' /proc/self/mountinfo").stdout
        assert out.split() == ["from-src", "from-src", "1"], out
        assert sorted(os.listdir(outside)) == before == ["keep"]
        assert (src / "written").exists()
        assert mounts_mentioning(name) == []
    finally:
        shutil.rmtree(outside)


def test_cve_2021_30465_dangling_escape_fails_cleanly(hutch, tmp, image_from):
    """CVE-2021-30465 class: the symlink points out of the root at a dir that exists
    only on the host; inside the root it resolves to nothing. The run fails with a
    message naming the mount, and nothing is created or mounted on the host."""
    outside = host_dir("dangling")
    try:
        img = _planted(image_from, "mnt-dangling", {"/mnt": "/../../../../tmp/" + outside.name})
        src = tmp / "src"
        src.mkdir()
        cp = hutch("run", "--rm", "-v", f"{src}:/mnt/x", img, "true", check=False)
        if cp.returncode == 0:
            pass  # created inside the root: fine as long as the host is untouched
        else:
            assert cp.returncode == 125 and "/mnt" in cp.stderr, cp.stderr
        assert sorted(os.listdir(outside)) == ["keep"]
        assert mounts_mentioning(outside.name) == []
    finally:
        shutil.rmtree(outside)


@pytest.mark.parametrize("target", ["/proc/self/root/tmp/{name}", "/proc/self/cwd",
                                    "/proc/1/root/tmp/{name}", "/proc/self/fd/3"])
def test_cve_2021_30465_magic_link_at_mount_target(hutch, tmp, image_from, target):
    """CVE-2021-30465 class with a /proc magic link at the mount target's parent
    (/mnt -> /proc/self/root/...: the runtime's own root, the host's, while it
    mounts). The bind lands inside the container or the run is refused; the host
    never gets the mount."""
    outside = host_dir("magic")
    name = outside.name
    try:
        img = _planted(image_from, "mnt-magic", {"/mnt": target.format(name=name)},
                       mkdirs=[f"/tmp/{name}"])
        src = tmp / "src"
        src.mkdir()
        (src / "from-src").write_text("src\n")
        cp = hutch("run", "--rm", "-v", f"{src}:/mnt/x", img, "sh", "-c",
                   "ls /mnt/x", check=False)
        if cp.returncode == 0:
            assert cp.stdout == "from-src\n"
        else:
            assert cp.returncode == 125, cp
            assert "/mnt" in cp.stderr, cp.stderr
        assert sorted(os.listdir(outside)) == ["keep"]
        assert not (Path("/x") / "from-src").exists()
        assert mounts_mentioning(name) == []
        assert mounts_mentioning(str(src)) == []
    finally:
        shutil.rmtree(outside)


def test_cve_2021_30465_file_bind_through_symlink(hutch, tmp, image_from):
    """CVE-2021-30465 class for a file bind: /etc/conf.d -> /../../tmp/HOSTDIR and
    `-v FILE:/etc/conf.d/app.conf` binds the file inside the root only."""
    outside = host_dir("file")
    try:
        img = _planted(image_from, "file-bind", {"/etc/conf.d": "/../../tmp/" + outside.name},
                       mkdirs=[f"/tmp/{outside.name}"])
        f = tmp / "app.conf"
        f.write_text("setting=1\n")
        out = hutch("run", "--rm", "-v", f"{f}:/etc/conf.d/app.conf:ro", img, "sh", "-c",
                    f"cat /etc/conf.d/app.conf; ls /tmp/{outside.name}").stdout
        assert out == "setting=1\napp.conf\n"
        assert sorted(os.listdir(outside)) == ["keep"]
        assert mounts_mentioning(outside.name) == []
    finally:
        shutil.rmtree(outside)


# ------------------------------------------------------------------ what a container cannot do


def test_cannot_mount(hutch, probes, state):
    """Mounting (the first step of most escapes: a new procfs, sysfs or the host's
    block device) is refused: no CAP_SYS_ADMIN, and seccomp denies mount/fsopen."""
    cp = hutch("run", "--rm", *probe_args(probes), "bb", "sh", "-c",
               "mount -t tmpfs none /mnt; echo rc=$?; /probe/escprobe mount /mnt; "
               "mount -t proc proc /tmp 2>/dev/null; echo proc=$?; "
               "grep -c -e ' /mnt ' -e ' /tmp ' /proc/self/mountinfo", check=False)
    got = results(cp.stdout)
    assert got["rc"] != "0" and got["proc"] != "0"
    assert got["mount"] == "EPERM" and got["fsopen"] == "EPERM"
    assert cp.stdout.endswith("\n0\n")
    assert "permission denied" in cp.stderr.lower()
    assert mounts_mentioning(str(state.root)) == []


def test_cannot_load_kernel_modules(hutch, probes):
    """init_module / finit_module / delete_module are refused (CAP_SYS_MODULE is not
    granted and seccomp denies them); busybox insmod fails too."""
    modules = Path("/proc/modules")
    before = modules.read_text() if modules.exists() else None
    cp = hutch("run", "--rm", *probe_args(probes), "bb", "sh", "-c",
               "/probe/escprobe modules /probe/escprobe; insmod /probe/escprobe; "
               "echo insmod=$?", check=False)
    got = results(cp.stdout)
    assert got["finit_module"] == "EPERM"
    assert got["init_module"] == "EPERM"
    assert got["delete_module"] == "EPERM"
    assert got["insmod"] != "0"
    assert (modules.read_text() if modules.exists() else None) == before


def test_cannot_use_bpf(hutch, probes):
    """bpf(2) (syscall 321 on x86-64) is refused."""
    out = hutch("run", "--rm", *probe_args(probes), "bb", "/probe/escprobe", "bpf").stdout
    assert results(out) == {"bpf": "EPERM"}


def test_cannot_use_keyctl(hutch, probes):
    """keyctl(2) (syscall 250), add_key, request_key are refused: the kernel keyring
    is not namespaced."""
    out = hutch("run", "--rm", *probe_args(probes), "bb", "/probe/escprobe", "keyctl").stdout
    assert results(out) == {"keyctl": "EPERM", "keyctl_join": "EPERM", "add_key": "EPERM",
                            "request_key": "EPERM"}


def test_cannot_ptrace_init_monitor_or_other_containers(hutch, ctr, probes):
    """ptrace: the monitor and another container's processes are not even visible.
    pid 1 under --init is hutch-dmz, a sealed program with the container's own
    credentials (like Docker's tini): tracing it crosses no boundary, so it is
    allowed as in Docker; what matters is that nothing of the host can be traced."""
    out = hutch("run", "--rm", "--init", *probe_args(probes), "bb", "sh", "-c",
                "/probe/escprobe ptrace 1; cat /proc/1/comm; readlink /proc/1/exe").stdout
    assert out.splitlines()[1:] == ["hutch-init", "/memfd:hutch-dmz (deleted)"], out
    other = ctr.run("bb", "sleep", "100")
    other_pid = ctr.inspect(other)["pid"]
    cid = ctr.run(*probe_args(probes), "bb", "sleep", "100")
    mon = ctr.inspect(cid)["monitor_pid"]
    for pid in (mon, other_pid, os.getpid()):
        # a host pid is not a pid in here (the few small ones could be by chance)
        assert pid > 20
        out = hutch("exec", cid, "sh", "-c",
                    f"/probe/escprobe ptrace {pid}; test -e /proc/{pid} && echo seen=yes "
                    f"|| echo seen=no").stdout
        assert results(out) == {"ptrace": "ESRCH", "seen": "no"}, (pid, out)
    pids = hutch("exec", cid, "sh", "-c", "ls /proc | grep -E '^[0-9]+$'").stdout.split()
    assert sorted(int(p) for p in pids)[0] == 1
    assert len(pids) <= 4, pids


# ------------------------------------------------------------------ every syscall ABI

ABIS = ("x86_64", "i386", "x32")

# What each seccomp probe of `escprobe syscalls ABI` must get in a default
# container, through every ABI the kernel runs: the calls the profile refuses
# (EPERM; ENOSYS for clone3 and for i386's socketcall(SYS_SOCKET), whose family
# seccomp cannot read) and, as controls, the calls it allows (ok).
REFUSED = {
    "keyctl": "EPERM", "keyctl_join": "EPERM", "add_key": "EPERM", "request_key": "EPERM",
    "bpf": "EPERM", "mount": "EPERM", "fsopen": "EPERM", "finit_module": "EPERM",
    "init_module": "EPERM", "delete_module": "EPERM", "settimeofday": "EPERM",
    "clock_settime": "EPERM", "adjtimex": "EPERM", "sethostname": "EPERM",
    "perf_event_open": "EPERM", "unshare_user": "EPERM", "clone3": "ENOSYS",
    "io_uring_setup": "EPERM", "io_uring_enter": "EPERM", "io_uring_register": "EPERM",
    "socket_vsock": "EPERM", "socket_alg": "EPERM", "socket_vsock_hi": "EPERM",
    "socketcall_vsock": "ENOSYS", "socketcall_inet": "ENOSYS",
}
ALLOWED = {"getpid": "ok", "socket_inet": "ok", "socket_unix": "ok", "socketpair": "ok",
           "socketcall_socketpair": "ok"}


def kernel_abis(probes):
    """The ABIs this kernel runs, asked outside any filter (getpid through each)."""
    out = subprocess.run([str(probes / "escprobe"), "abis"], capture_output=True, text=True,
                         check=True).stdout
    got = results(out)
    return [abi for abi in ABIS if got[f"abi.{abi}"] == "ok"], got


def expected_through(abi):
    want = {**REFUSED, **ALLOWED}
    if abi != "i386":  # socketcall is i386's
        for k in ("socketcall_vsock", "socketcall_inet", "socketcall_socketpair"):
            del want[k]
    else:  # its registers hold 32 bits: no high bits to try
        del want["socket_vsock_hi"]
    return {f"{abi}.{k}": v for k, v in want.items()}


def test_seccomp_probes_through_every_abi(hutch, probes):
    """Every seccomp probe (keyctl, bpf, mount, modules, clock, hostname,
    perf_event_open, unshare, clone3) plus vsock, AF_ALG and io_uring, through
    each syscall ABI the kernel runs: x86_64, i386 (int $0x80 from a 64-bit
    process) and x32 (bit 30). None gets through: AF_VSOCK is refused as
    socket(2) on every ABI, with bits above the int on 64-bit ones, and as
    i386 socketcall(SYS_SOCKET) (ENOSYS, whatever the family); io_uring is
    EPERM everywhere. Ordinary sockets still work."""
    accepted, host = kernel_abis(probes)
    print(f"kernel ABIs: {host}; exercised: {accepted}")
    assert "x86_64" in accepted and "i386" in accepted, host  # this machine runs both
    out = hutch("run", "--rm", *probe_args(probes), "bb", "/probe/escprobe", "syscalls",
                *accepted).stdout
    got = results(out)
    want = {}
    for abi in accepted:
        want.update(expected_through(abi))
    leaked = sorted(k for k, v in got.items() if v == "ok" and want.get(k) != "ok")
    assert not leaked, f"got through (ABIs exercised: {accepted}): {leaked}"
    assert got == want, f"ABIs exercised: {accepted}"


def test_seccomp_abis_all_open_when_unconfined(hutch, probes):
    """--security-opt seccomp=unconfined, the documented way out, gives the
    kernel's own answers through every ABI: io_uring and i386 socketcall work."""
    accepted, _ = kernel_abis(probes)
    out = hutch("run", "--rm", "--security-opt", "seccomp=unconfined", *probe_args(probes),
                "bb", "/probe/escprobe", "syscalls", *accepted).stdout
    got = results(out)
    knob = Path("/proc/sys/kernel/io_uring_disabled")
    io_uring_on = not knob.exists() or knob.read_text().strip() == "0"
    for abi in accepted:
        if io_uring_on:
            assert got[f"{abi}.io_uring_setup"] == "ok", (abi, out)
        assert got[f"{abi}.socket_inet"] == "ok", (abi, out)
        assert got[f"{abi}.clone3"] == "EINVAL", (abi, out)  # size 0: the kernel's
    assert got["i386.socketcall_inet"] == "ok", out


@pytest.fixture(scope="module")
def escprobe32(probes):
    """escprobe built as an i386 glibc program (gcc -m32 -static, gcc-multilib):
    Debian's i386 glibc makes socket() a socketcall(SYS_SOCKET) with no
    fallback, like every 32-bit x86 glibc and Go program."""
    out = probes / "escprobe32"
    if not out.exists():
        subprocess.run(["gcc", "-m32", "-static", "-O2", "-o", str(out),
                        str(Path(__file__).parent / "escapes" / "escprobe.c")],
                       check=True, capture_output=True)
        out.chmod(0o755)
    return out


def test_i386_glibc_program_gets_enosys_for_socket(hutch, escprobe32):
    """What the default profile means for a real 32-bit glibc program: socket()
    fails with ENOSYS ("Function not implemented", whatever the family: its
    family lies where seccomp cannot read it), socketpair() and send/recv on
    the pair work. Outside hutch, and with seccomp=unconfined, socket() works."""
    host = results(subprocess.run([str(escprobe32), "libc"], capture_output=True, text=True,
                                  check=True).stdout)
    assert host["bits"] == "32" and host["socket_inet"] == "ok", host
    mount = ["-v", f"{escprobe32.parent}:/probe:ro"]
    got = results(hutch("run", "--rm", *mount, "bb", "/probe/escprobe32", "libc").stdout)
    assert got == {"bits": "32", "socket_inet": "ENOSYS", "socket_unix": "ENOSYS",
                   "socket_vsock": "ENOSYS", "socketpair": "ok", "send": "ok"}
    got = results(hutch("run", "--rm", "--security-opt", "seccomp=unconfined", *mount, "bb",
                        "/probe/escprobe32", "libc").stdout)
    assert got["socket_inet"] == "ok" and got["socket_unix"] == "ok", got


def test_cannot_change_host_hostname(hutch):
    """The container has its own UTS namespace: without CAP_SYS_ADMIN sethostname is
    refused; with it, only the container's name changes, never the host's."""
    host = socket.gethostname()
    cp = hutch("run", "--rm", "--hostname", "box", "bb", "sh", "-c",
               "hostname evil-host; hostname", check=False)
    assert "Operation not permitted" in cp.stderr
    assert cp.stdout == "box\n"
    out = hutch("run", "--rm", "--cap-add", "SYS_ADMIN", "--hostname", "box", "bb", "sh", "-c",
                "hostname evil-host && hostname && cat /proc/sys/kernel/hostname").stdout
    assert out == "evil-host\nevil-host\n"
    assert socket.gethostname() == host
    assert Path("/proc/sys/kernel/hostname").read_text().strip() == host


def test_cannot_set_the_clock(hutch, probes):
    """The clock is not namespaced: settimeofday, clock_settime and adjtimex writes
    are refused and the host's time is untouched."""
    t0 = time.time()
    cp = hutch("run", "--rm", *probe_args(probes), "bb", "sh", "-c",
               "date -s 2001-02-03 >/dev/null; date +%Y; /probe/escprobe settime", check=False)
    assert "Operation not permitted" in cp.stderr
    lines = cp.stdout.splitlines()
    assert int(lines[0]) >= 2024
    assert results(cp.stdout) == {"settimeofday": "EPERM", "clock_settime": "EPERM",
                                  "adjtimex": "EPERM"}
    t1 = time.time()
    assert 0 <= t1 - t0 < 30 and time.gmtime(t1).tm_year >= 2024


def test_cannot_see_host_processes(hutch):
    """The pid namespace shows the container's own processes only."""
    out = hutch("run", "--rm", "bb", "sh", "-c",
                "ps -o pid,comm; echo ---; cat /proc/[0-9]*/cmdline | tr '\\0' ' '").stdout
    table, cmdlines = out.split("---\n")
    rows = [l.split() for l in table.splitlines()[1:]]
    assert len(rows) <= 3, table
    assert {r[1] for r in rows} <= {"sh", "ps"}, table
    assert "pytest" not in cmdlines and "hutch" not in cmdlines, cmdlines
