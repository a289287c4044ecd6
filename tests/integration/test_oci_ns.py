"""hutch-oci: linux.namespaces joined by path for every type (a container in
another's pid namespace, a user namespace and a mount namespace made by a helper
process), the time namespace with linux.timeOffsets, and what the container's
process is set before its exec: linux.personality, process.scheduler,
ioPriority, execCPUAffinity and linux.memoryPolicy. Root and rootless (what the
kernel allows an unprivileged user alone is refused, by the field's name)."""
import json
import os
import pwd
import subprocess

import pytest

from conftest import wait_for
from ociutil import oci  # noqa: F401  (the fixture)

ROOTLESS = os.geteuid() != 0


def run_out(oci, tmp, name, args, edit, check=True):
    """Run a bundle in the foreground; its stdout, or the failed command."""
    b = oci.bundle(name, args=args, edit=edit)
    out = tmp / f"{name}.out"
    cp = oci.run_to_files("run", "--bundle", b, name, out=out, check=False)
    if check:
        assert cp.returncode == 0, cp.stderr
    cp.stdout = out.read_text()
    return cp


def let_others_through(path):
    """Search permission for others on path and its parents that are ours (the test
    run's own directories): a container root that is another host id reaches the
    bundle through them."""
    for d in [path, *path.parents]:
        st = os.stat(d)
        if st.st_uid == os.geteuid() and not st.st_mode & 0o001:
            os.chmod(d, st.st_mode | 0o011)


def proc_field(text, key):
    for line in text.splitlines():
        if line.startswith(key):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {key} in {text!r}")


# ---------------------------------------------------------------- process attributes


def test_personality_linux32_and_flags(oci, tmp):
    def edit(c):
        c["linux"]["personality"] = {"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]}
    cp = run_out(oci, tmp, "p1", ("sh", "-c", "uname -m; cat /proc/self/personality"), edit)
    machine, persona = cp.stdout.split()
    assert machine in ("i686", "i386"), cp.stdout
    assert int(persona, 16) == 0x0008 | 0x0040000  # PER_LINUX32 | ADDR_NO_RANDOMIZE
    cp = run_out(oci, tmp, "p2", ("uname", "-m"),
                 lambda c: c["linux"].update(personality={"domain": "LINUX"}))
    assert cp.stdout == "x86_64\n"


@pytest.mark.parametrize("value,needle", [
    ({"domain": "LINUX64"}, "linux.personality.domain: 'LINUX64' is not one of LINUX, LINUX32"),
    ({"flags": []}, "linux.personality.domain is required"),
    ({"domain": "LINUX", "flags": ["NOPE"]}, "linux.personality.flags[0]: 'NOPE'"),
])
def test_personality_refused(oci, value, needle):
    b = oci.bundle(edit=lambda c: c["linux"].update(personality=value))
    cp = oci.create("x", b, check=False)
    assert cp.returncode != 0 and needle in cp.stderr, cp.stderr


SCHED = ("sh", "-c", "cat /proc/self/sched; echo; cat /proc/self/stat")


def sched_of(out):
    """The policy (/proc/self/sched) and nice value (stat field 19) of the command."""
    sched, stat = out.rsplit("\n\n", 1)
    return int(proc_field(sched.split("\n", 2)[2], "policy")), int(stat.rsplit(")", 1)[1].split()[16])


def test_scheduler_idle_and_nice(oci, tmp):
    cp = run_out(oci, tmp, "s1", SCHED,
                 lambda c: c["process"].update(scheduler={"policy": "SCHED_IDLE"}))
    assert sched_of(cp.stdout)[0] == 5  # SCHED_IDLE
    cp = run_out(oci, tmp, "s3", SCHED,
                 lambda c: c["process"].update(scheduler={"policy": "SCHED_OTHER", "nice": 7}))
    assert sched_of(cp.stdout) == (0, 7)


def test_scheduler_that_needs_cap_sys_nice(oci, tmp):
    """A nice value below hutch's: root may, an unprivileged user is refused by name."""
    edit = lambda c: c["process"].update(scheduler={"policy": "SCHED_BATCH", "nice": -5})  # noqa: E731
    cp = run_out(oci, tmp, "s2", SCHED, edit, check=not ROOTLESS)
    if ROOTLESS:
        assert cp.returncode != 0, cp.stdout
        assert "process.scheduler: set policy SCHED_BATCH (nice -5" in cp.stderr, cp.stderr
        assert "CAP_SYS_NICE" in cp.stderr
        return
    assert sched_of(cp.stdout) == (3, -5)  # SCHED_BATCH


@pytest.mark.parametrize("value,needle", [
    ({"nice": 1}, "process.scheduler.policy is required"),
    ({"policy": "SCHED_ISO"}, "process.scheduler.policy: 'SCHED_ISO' is not one of"),
    ({"policy": "SCHED_OTHER", "nice": 20}, "process.scheduler.nice: 20 is out of range"),
    ({"policy": "SCHED_OTHER", "priority": 5}, "process.scheduler.priority: 5 is for SCHED_FIFO"),
    ({"policy": "SCHED_FIFO"}, "process.scheduler.priority: SCHED_FIFO and SCHED_RR take 1 to 99"),
    ({"policy": "SCHED_RR", "priority": 1, "runtime": 5},
     "process.scheduler: runtime, deadline and period are for SCHED_DEADLINE only"),
    ({"policy": "SCHED_DEADLINE", "runtime": 20, "deadline": 10},
     "process.scheduler: SCHED_DEADLINE needs 0 < runtime (20) <= deadline (10)"),
    ({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_X"]}, "process.scheduler.flags[0]: 'SCHED_FLAG_X'"),
])
def test_scheduler_refused(oci, value, needle):
    b = oci.bundle(edit=lambda c: c["process"].update(scheduler=value))
    cp = oci.create("x", b, check=False)
    assert cp.returncode != 0 and needle in cp.stderr, cp.stderr


def test_io_priority(oci, tmp):
    cp = run_out(oci, tmp, "i1", ("ionice",),
                 lambda c: c["process"].update(ioPriority={"class": "IOPRIO_CLASS_IDLE"}))
    assert cp.stdout.strip() == "idle", cp.stdout
    cp = run_out(oci, tmp, "i2", ("ionice",), lambda c: c["process"].update(
        ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 6}))
    assert cp.stdout.strip() == "best-effort: prio 6", cp.stdout
    # the real-time class: root may, an unprivileged user may not
    cp = run_out(oci, tmp, "i3", ("ionice",), lambda c: c["process"].update(
        ioPriority={"class": "IOPRIO_CLASS_RT", "priority": 2}), check=not ROOTLESS)
    if ROOTLESS:
        assert cp.returncode != 0
        assert "process.ioPriority: set IOPRIO_CLASS_RT priority 2" in cp.stderr, cp.stderr
    else:
        assert cp.stdout.strip() == "realtime: prio 2", cp.stdout


@pytest.mark.parametrize("value,needle", [
    ({"priority": 1}, "process.ioPriority.class is required"),
    ({"class": "IOPRIO_CLASS_NONE"}, "process.ioPriority.class: 'IOPRIO_CLASS_NONE' is not one of"),
    ({"class": "IOPRIO_CLASS_BE", "priority": 8}, "process.ioPriority.priority: 8 is out of range"),
])
def test_io_priority_refused(oci, value, needle):
    b = oci.bundle(edit=lambda c: c["process"].update(ioPriority=value))
    cp = oci.create("x", b, check=False)
    assert cp.returncode != 0 and needle in cp.stderr, cp.stderr


def test_exec_cpu_affinity_initial_then_final(oci, tmp):
    """initial: as the process starts (a createContainer hook, forked by it while it
    sets up, inherits it); final: what the command runs with. initial alone: every
    CPU of the cgroup again before the exec, as runc 1.2 does."""
    hook = tmp / "aff.sh"
    hook.write_text('#!/bin/sh\ngrep Cpus_allowed_list /proc/self/status > "$OUT/$1"\n')
    hook.chmod(0o755)
    allowed = proc_field(open("/proc/self/status").read(), "Cpus_allowed_list")
    ncpu = os.cpu_count()

    def edit(final, name):
        def e(c):
            aff = {"initial": "0"}
            if final:
                aff["final"] = final
            c["process"]["execCPUAffinity"] = aff
            c["hooks"] = {"createContainer": [{"path": str(hook), "args": ["aff.sh", name],
                                               "env": [f"OUT={tmp}"]}]}
        return e
    last = str(ncpu - 1)
    cp = run_out(oci, tmp, "a1", ("grep", "Cpus_allowed_list", "/proc/self/status"),
                 edit(last, "h1"))
    assert proc_field(cp.stdout, "Cpus_allowed_list") == last
    assert proc_field((tmp / "h1").read_text(), "Cpus_allowed_list") == "0"
    cp = run_out(oci, tmp, "a2", ("grep", "Cpus_allowed_list", "/proc/self/status"),
                 edit(None, "h2"))
    assert proc_field(cp.stdout, "Cpus_allowed_list") == allowed
    assert proc_field((tmp / "h2").read_text(), "Cpus_allowed_list") == "0"


@pytest.mark.parametrize("value,needle", [
    ({"initial": "0-"}, "process.execCPUAffinity.initial: '0-': it is not a list like 0-3,7"),
    ({"final": "3-1"}, "process.execCPUAffinity.final: '3-1': a range ends below its start"),
    ({"final": "2000"}, "process.execCPUAffinity.final: '2000': a number is 1024 or more"),
    ({"final": "1000"}, "process.execCPUAffinity.final: set it (from CPU 1000)"),
])
def test_exec_cpu_affinity_refused(oci, value, needle):
    b = oci.bundle(edit=lambda c: c["process"].update(execCPUAffinity=value))
    # the final set is applied just before the exec: by start, here by run
    cp = oci.run_to_files("run", "--bundle", b, "x", check=False)
    assert cp.returncode != 0 and needle in cp.stderr, cp.stderr


def test_memory_policy(oci, tmp):
    for name, mode, word in (("m1", "MPOL_BIND", "bind:0"), ("m2", "MPOL_INTERLEAVE", "interleave:0"),
                             ("m3", "MPOL_PREFERRED", "prefer:0")):
        cp = run_out(oci, tmp, name, ("sh", "-c", "cat /proc/self/numa_maps; grep Mems_allowed_list /proc/self/status"),
                     lambda c, m=mode: c["linux"].update(memoryPolicy={"mode": m, "nodes": "0"}))
        assert word in cp.stdout.split(), cp.stdout
    cp = run_out(oci, tmp, "m4", ("cat", "/proc/self/numa_maps"), lambda c: c["linux"].update(
        memoryPolicy={"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}))
    assert "bind=static:0" in cp.stdout.split(), cp.stdout
    cp = run_out(oci, tmp, "m5", ("cat", "/proc/self/numa_maps"), lambda c: c["linux"].update(
        memoryPolicy={"mode": "MPOL_LOCAL"}))
    assert "local" in cp.stdout.split(), cp.stdout


@pytest.mark.parametrize("value,needle", [
    ({"nodes": "0"}, "linux.memoryPolicy.mode is required"),
    ({"mode": "MPOL_FOO", "nodes": "0"}, "linux.memoryPolicy.mode: 'MPOL_FOO' is not one of"),
    ({"mode": "MPOL_DEFAULT", "nodes": "0"}, "linux.memoryPolicy.nodes: MPOL_DEFAULT and MPOL_LOCAL take none"),
    ({"mode": "MPOL_BIND"}, "linux.memoryPolicy.nodes: this mode needs some"),
    ({"mode": "MPOL_BIND", "nodes": "0,x"}, "linux.memoryPolicy.nodes: '0,x'"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]},
     "exclude each other"),
    ({"mode": "MPOL_BIND", "nodes": "63"}, "linux.memoryPolicy: set mode MPOL_BIND"),
])
def test_memory_policy_refused(oci, value, needle):
    b = oci.bundle(edit=lambda c: c["linux"].update(memoryPolicy=value))
    cp = oci.create("x", b, check=False)
    assert cp.returncode != 0 and needle in cp.stderr, cp.stderr


# ---------------------------------------------------------------- namespaces


def ns_of(c, typ, path):
    """The bundle's namespace of typ joined at path (listed if it was not)."""
    nss = [n for n in c["linux"]["namespaces"] if n["type"] != typ]
    c["linux"]["namespaces"] = nss + [{"type": typ, "path": path}]


def test_join_another_containers_pid_namespace(oci, tmp):
    """Its process is made in that pid namespace (set before the clone): it sees the
    other's processes, and the other's pid 1 is its pid 1. Rootless: joining takes
    CAP_SYS_ADMIN in hutch's own user namespace, which an unprivileged user has not
    (rootless podman runs its runtime in the user namespace that owns its pods')."""
    a = oci.bundle("a", args=("sleep", "60"))
    oci.create("pa", a)
    oci.run("start", "pa")
    pid = oci.state("pa")["pid"]
    cp = run_out(oci, tmp, "pb", ("sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$"),
                 lambda c: ns_of(c, "pid", f"/proc/{pid}/ns/pid"), check=not ROOTLESS)
    if ROOTLESS:
        assert cp.returncode != 0
        assert f"linux.namespaces: enter the pid namespace /proc/{pid}/ns/pid (it takes " \
            "CAP_SYS_ADMIN" in cp.stderr and "Operation not permitted" in cp.stderr, cp.stderr
        return
    first, mine = cp.stdout.splitlines()
    assert first.strip() == "sleep 60"
    assert int(mine) > 1
    # exec into the joining one lands in the same pid namespace
    b = oci.bundle("b2", args=("sleep", "60"), edit=lambda c: ns_of(c, "pid", f"/proc/{pid}/ns/pid"))
    oci.create("pb2", b)
    oci.run("start", "pb2")
    pid2 = oci.state("pb2")["pid"]
    assert os.readlink(f"/proc/{pid2}/ns/pid") == os.readlink(f"/proc/{pid}/ns/pid")
    cp = oci.run("exec", "pb2", "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline")
    assert cp.stdout.strip() == "sleep 60"
    # its init gone, a pid namespace takes no new process: said so (the namespace
    # kept by an fd of the test's)
    fd = os.open(f"/proc/{pid}/ns/pid", os.O_RDONLY)
    try:
        oci.run("kill", "pb2", "KILL")
        oci.run("kill", "pa", "KILL")
        oci.wait_status("pa", "stopped")
        b = oci.bundle("b3", edit=lambda c: ns_of(c, "pid", f"/proc/{os.getpid()}/fd/{fd}"))
        cp = oci.create("pb3", b, check=False)
    finally:
        os.close(fd)
    assert cp.returncode != 0
    assert "the pid namespace it joins has no init process any more" in cp.stderr, cp.stderr


@pytest.fixture
def helpers():
    made = []
    yield made
    for p in made:
        p.kill()
        p.wait()


def userns_helper(helpers):
    """A user namespace and a pid namespace it owns, made by another process
    (unshare(1)): 65536 ids from 100000 mapped, written by the test as root
    (rootless: the caller's own id to root). The pid of the process in them."""
    cmd = ["unshare", "--user", "--pid", "--fork"] + (["--map-root-user"] if ROOTLESS else []) + \
        ["sleep", "60"]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    helpers.append(p)
    mine = os.readlink("/proc/self/ns/user")

    def inner():
        try:
            kids = open(f"/proc/{p.pid}/task/{p.pid}/children").read().split()
            if kids and open(f"/proc/{kids[0]}/comm").read() == "sleep\n" and \
                    os.readlink(f"/proc/{kids[0]}/ns/user") != mine:
                return int(kids[0])
        except FileNotFoundError:
            pass
        return None
    pid = wait_for(inner, what="the user namespace helper")
    if not ROOTLESS:
        for f in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{f}", "w") as m:
                m.write("0 100000 65536\n")
    return pid


def test_join_a_user_namespace_made_by_another_process(oci, tmp, helpers):
    """Joined by path (with a pid namespace it owns: /proc is mounted for that one):
    no mappings written, the namespace's own apply. Rootless: entering that pid
    namespace takes CAP_SYS_ADMIN in hutch's own user namespace (refused)."""
    hpid = userns_helper(helpers)
    path = f"/proc/{hpid}/ns/user"
    # the bundle as root made it, for a root that is uid 100000 on the host
    if not ROOTLESS:
        let_others_through(tmp)

    def edit(c):
        ns_of(c, "user", path)
        ns_of(c, "pid", f"/proc/{hpid}/ns/pid")
        c["linux"].pop("uidMappings", None)
        c["linux"].pop("gidMappings", None)
    script = "cat /proc/self/uid_map; id -u; readlink /proc/self/ns/user; tr '\\0' ' ' < /proc/1/cmdline"
    cp = run_out(oci, tmp, "u1", ("sh", "-c", script), edit, check=not ROOTLESS)
    if ROOTLESS:
        assert cp.returncode != 0
        assert f"linux.namespaces: enter the pid namespace /proc/{hpid}/ns/pid (it takes " \
            "CAP_SYS_ADMIN" in cp.stderr and "Operation not permitted" in cp.stderr, cp.stderr
    else:
        lines = cp.stdout.split("\n")
        assert lines[0].split() == ["0", "100000", "65536"], cp.stdout
        assert lines[1:3] == ["0", os.readlink(path)]
        assert lines[3].strip() == "sleep 60"
    # with a pid namespace of its own: made in the joined user namespace (cloned
    # from a process there), /proc mounted for it
    def edit_new_pid(c):
        ns_of(c, "user", path)
        c["linux"].pop("uidMappings", None)
        c["linux"].pop("gidMappings", None)
    cp = run_out(oci, tmp, "u3", ("sh", "-c", script + "; echo; echo $$; cat /proc/self/cgroup"),
                 edit_new_pid)
    lines = cp.stdout.split("\n")
    assert lines[0].split() == (["0", str(os.getuid()), "1"] if ROOTLESS else ["0", "100000", "65536"])
    assert lines[1:3] == ["0", os.readlink(path)]
    assert lines[4] == "1", cp.stdout  # its own pid namespace's init
    assert "0::/" in lines, cp.stdout  # its cgroup namespace's root is its cgroup
    # put in its cgroup by hutch (a host cgroup is not for that namespace's root)
    b = oci.bundle("u4", args=("sleep", "60"), edit=edit_new_pid)
    oci.create("u4", b)
    pid = oci.state("u4")["pid"]
    want = oci.run("ps", "u4").stdout
    assert str(pid) in want.split(), want
    if not ROOTLESS:
        assert "/hutch/" in open(f"/proc/{pid}/cgroup").read()
    # as runc: mappings with a user namespace joined by path are an error
    maps = [{"containerID": 0, "hostID": os.getuid() or 100000, "size": 1}]
    b = oci.bundle("u2", edit=lambda c: (ns_of(c, "user", path), ns_of(c, "pid", "/proc/1/ns/pid"),
                                         c["linux"].update(uidMappings=maps, gidMappings=maps)))
    cp = oci.create("u2", b, check=False)
    assert cp.returncode != 0
    assert "linux.uidMappings, gidMappings: uid and gid mappings are given with a user " \
        f"namespace joined by path ({path})" in cp.stderr, cp.stderr


def test_new_user_namespace_whose_root_is_not_the_callers(oci, tmp):
    """Mappings that give the container's root another host id (100000; rootless
    the user's first subordinate one, one range: through newuidmap too): the
    process becomes that root before it sets up its root filesystem (the ids the
    clone left it are not mapped there)."""
    let_others_through(tmp)

    def first(kind):
        if not ROOTLESS:
            return 100000
        name = pwd.getpwuid(os.getuid()).pw_name
        for line in open(f"/etc/sub{kind}"):
            user, start, count = line.strip().split(":")
            if user == name and int(count) >= 65536:
                return int(start)
        raise AssertionError(f"no 65536 subordinate {kind}s for {name}")
    uid0, gid0 = first("uid"), first("gid")

    def edit(c):
        if not any(n["type"] == "user" for n in c["linux"]["namespaces"]):
            c["linux"]["namespaces"].append({"type": "user"})
        c["linux"].update(uidMappings=[{"containerID": 0, "hostID": uid0, "size": 65536}],
                          gidMappings=[{"containerID": 0, "hostID": gid0, "size": 65536}])
        # written by it before its uid changes (then /proc/self is the host root's)
        c["linux"]["namespaces"].append({"type": "time"})
        c["linux"]["timeOffsets"] = {"boottime": {"secs": 86400}}
        c["process"]["oomScoreAdj"] = 300
    cp = run_out(oci, tmp, "nu1", ("sh", "-c", "cat /proc/self/uid_map; id -u; ls -n /dev/null; "
                                   "cat /proc/self/oom_score_adj /proc/uptime"), edit)
    lines = cp.stdout.split("\n")
    assert lines[0].split() == ["0", str(uid0), "65536"]
    assert lines[1] == "0"
    assert lines[2].startswith("crw-rw-rw-"), cp.stdout
    assert lines[3] == "300"
    assert float(lines[4].split()[0]) > 86400


def test_join_a_mount_namespace(oci, tmp, helpers):
    """The container's root is set up in the mount namespace it joins: a tmpfs
    mounted there alone (not on the host) is what its bind mount finds."""
    d = tmp / "only-there"
    d.mkdir()
    wrap = "unshare --user --map-root-user --mount" if ROOTLESS else "unshare --mount --propagation private"
    ready = tmp / "mnt-ready"
    p = subprocess.Popen(wrap.split() + ["sh", "-c", f"mount -t tmpfs none {d} && echo inside > {d}/f && "
                                         f"touch {ready} && exec sleep 60"], stdin=subprocess.DEVNULL)
    helpers.append(p)
    wait_for(lambda: ready.exists() or p.poll() is not None, what="the mount namespace helper")
    assert p.poll() is None
    assert not (d / "f").exists()  # not on the host

    def edit(c):
        ns_of(c, "mount", f"/proc/{p.pid}/ns/mnt")
        if ROOTLESS:
            # the mount namespace is its user namespace's: joined too, without a
            # pid namespace of the container's own (see above) nor a /proc of it
            ns_of(c, "user", f"/proc/{p.pid}/ns/user")
            c["linux"].pop("uidMappings", None)
            c["linux"].pop("gidMappings", None)
            c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]
            c["mounts"] = [m for m in c["mounts"] if m["destination"] not in ("/proc", "/sys")]
        c["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(d),
                            "options": ["rbind"]})
    cp = run_out(oci, tmp, "mn1", ("cat", "/mnt/f"), edit)
    assert cp.stdout == "inside\n"


def test_time_namespace_with_offsets(oci, tmp):
    """A new time namespace, its offsets written before anything is in it:
    /proc/uptime (boottime) ten days on; exec'd processes are in it too."""
    day = 86400

    def edit(c):
        c["linux"]["namespaces"].append({"type": "time"})
        c["linux"]["timeOffsets"] = {"boottime": {"secs": 10 * day, "nanosecs": 5},
                                     "monotonic": {"secs": 2 * day}}
    host_up = float(open("/proc/uptime").read().split()[0])
    cp = run_out(oci, tmp, "t1", ("sh", "-c", "cat /proc/uptime; readlink /proc/self/ns/time"), edit)
    up, ns = cp.stdout.split("\n")[:2]
    assert 10 * day + host_up - 5 < float(up.split()[0]) < 10 * day + host_up + 60, cp.stdout
    assert ns != os.readlink("/proc/self/ns/time")
    b = oci.bundle("t2", args=("sleep", "60"), edit=edit)
    oci.create("t2", b)
    oci.run("start", "t2")
    pid = oci.state("t2")["pid"]
    cp = oci.run("exec", "t2", "sh", "-c", "readlink /proc/self/ns/time; cat /proc/uptime")
    ns, up = cp.stdout.split("\n")[:2]
    assert ns == os.readlink(f"/proc/{pid}/ns/time")
    assert float(up.split()[0]) > 10 * day
    # a time namespace alone: the host's clocks
    cp = run_out(oci, tmp, "t3", ("cat", "/proc/uptime"),
                 lambda c: c["linux"]["namespaces"].append({"type": "time"}))
    assert float(cp.stdout.split()[0]) < host_up + 60


@pytest.mark.parametrize("edit,needle", [
    (lambda c: c["linux"].update(timeOffsets={"boottime": {"secs": 1}}),
     "linux.timeOffsets: they are for a new time namespace"),
    (lambda c: (c["linux"]["namespaces"].append({"type": "time", "path": "/proc/self/ns/time"}),
                c["linux"].update(timeOffsets={"boottime": {"secs": 1}})),
     "linux.timeOffsets: they are for a new time namespace"),
    (lambda c: (c["linux"]["namespaces"].append({"type": "time"}),
                c["linux"].update(timeOffsets={"monotonic": {"secs": 1, "nanosecs": 10**9}})),
     "linux.timeOffsets.monotonic.nanosecs: 1000000000 is out of range"),
    (lambda c: (c["linux"]["namespaces"].append({"type": "time"}),
                c["linux"].update(timeOffsets={"boottime": {"secs": -10**9}})),
     "linux.timeOffsets: set monotonic 0.000000000, boottime -1000000000.000000000"),
    (lambda c: c["linux"]["namespaces"].append({"type": "time", "path": "relative"}),
     "linux.namespaces: time namespace path 'relative' must be an absolute path"),
    (lambda c: c["linux"]["namespaces"].append({"type": "clock"}),
     "linux.namespaces[", ),
])
def test_namespace_refusals(oci, edit, needle):
    b = oci.bundle(edit=edit)
    cp = oci.run_to_files("run", "--bundle", b, "x", check=False)
    assert cp.returncode != 0 and needle in cp.stderr, cp.stderr


def test_exec_process_gets_its_scheduler_io_priority_and_affinity(oci, tmp):
    """exec --process FILE: that process's own; without one, the container's process's."""
    def edit(c):
        c["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 5}
    b = oci.bundle("e1", args=("sleep", "60"), edit=edit)
    oci.create("e1", b)
    oci.run("start", "e1")
    script = "ionice; grep Cpus_allowed_list /proc/self/status; cat /proc/self/sched"
    proc = tmp / "process.json"
    proc.write_text(json.dumps({
        "args": ["sh", "-c", script], "cwd": "/", "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/bin"], "scheduler": {"policy": "SCHED_IDLE"},
        "ioPriority": {"class": "IOPRIO_CLASS_IDLE"}, "execCPUAffinity": {"final": "0"}}))
    cp = oci.run("exec", "--process", proc, "e1")
    lines = cp.stdout.split("\n")
    assert lines[0] == "idle"
    assert proc_field(lines[1], "Cpus_allowed_list") == "0"
    assert proc_field("\n".join(lines[4:]), "policy") == "5"
    cp = oci.run("exec", "e1", "ionice")
    assert cp.stdout == "best-effort: prio 5\n"
    proc.write_text(json.dumps({"args": ["true"], "cwd": "/", "scheduler": {"nice": 1}}))
    cp = oci.run("exec", "--process", proc, "e1", check=False)
    assert cp.returncode != 0 and "process.scheduler.policy is required" in cp.stderr, cp.stderr


def test_features_list_time_and_memory_policy(oci):
    f = json.loads(oci.run("features").stdout)
    assert "time" in f["linux"]["namespaces"] and "user" in f["linux"]["namespaces"]
    assert "MPOL_BIND" in f["linux"]["memoryPolicy"]["modes"]
    assert "MPOL_F_STATIC_NODES" in f["linux"]["memoryPolicy"]["flags"]


def test_podman_pod_sharing_its_pid_namespace(oci, state):
    """podman's pod with --share pid: its containers join the infra container's pid
    namespace by path, through hutch-oci. Rootless too: rootless podman runs its
    runtime as root of the user namespace that owns the pod's namespaces."""
    from test_oci import _podman_for_pods, _podman_reset
    base, env, podman, made_cg = _podman_for_pods(oci, state)
    try:
        cp = podman("pod", "create", "--name", "pp", "--network", "none", "--share",
                    "pid,ipc,uts", "--infra-image", "localhost/bb:oci",
                    "--infra-command", "sleep 600")
        assert cp.returncode == 0, cp.stderr
        cp = podman("pod", "start", "pp")
        assert cp.returncode == 0, cp.stderr
        infra = podman("pod", "inspect", "pp", "--format", "{{.InfraContainerID}}").stdout.strip()
        ipid = int(podman("inspect", infra, "--format", "{{.State.Pid}}").stdout)
        cp = podman("run", "--rm", "--pod", "pp", "localhost/bb:oci", "sh", "-c",
                    "readlink /proc/self/ns/pid; tr '\\0' ' ' < /proc/1/cmdline")
        assert cp.returncode == 0, cp.stderr
        ns, init = cp.stdout.split("\n", 1)
        assert ns == os.readlink(f"/proc/{ipid}/ns/pid")
        assert init.strip() == "sleep 600"
    finally:
        podman("rm", "-f", "-t", "0", "--all", timeout=60)
        podman("pod", "rm", "-f", "--all", timeout=60)
        _podman_reset(base, made_cg, env=env)
