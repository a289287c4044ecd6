"""Namespaces: pid (with and without --init), signals, uts, ipc, net, cgroup."""
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import descendants, hutch_cgroup_parent, wait_for


# ------------------------------------------------------------------ pid


def test_command_is_pid1(hutch):
    assert hutch("run", "--rm", "bb", "sh", "-c", "echo $$").stdout == "1\n"


def test_ps_shows_only_container_processes(hutch):
    out = hutch("run", "--rm", "bb", "sh", "-c", "ps -o pid,comm; true").stdout
    rows = [l.split() for l in out.splitlines()[1:]]
    pids = sorted(int(r[0]) for r in rows)
    comms = {r[1] for r in rows}
    assert pids[0] == 1
    assert len(pids) == 2, out  # sh and ps, nothing from the host
    assert comms == {"sh", "ps"}, out


def test_proc_lists_only_container_pids(hutch):
    out = hutch("run", "--rm", "bb", "sh", "-c",
                "ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '").stdout
    pids = [int(x) for x in out.split()]
    assert pids == list(range(1, len(pids) + 1)) and len(pids) <= 5, out
    assert max(pids) < 50, out


def test_init_is_pid1_and_command_pid2(hutch):
    out = hutch("run", "--rm", "--init", "bb", "sh", "-c",
                "echo $$; cat /proc/1/comm; ps -o pid,comm").stdout
    lines = out.splitlines()
    assert lines[0] == "2"
    assert lines[1] == "hutch-init"
    assert lines[-1].split()[1] == "ps"


def test_init_reaps_orphaned_zombies(hutch):
    # Each `sh -c "sleep 0.01 &"` exits at once, orphaning its sleep to pid 1.
    # Then wait (polling, with a deadline) until no sleep is left at all: the init
    # must have reaped them; a zombie would stay listed as state Z.
    script = r"""
for i in 1 2 3 4 5 6 7 8 9 10; do sh -c 'sleep 0.05 &'; done
n=0
while ps -o stat,comm | grep -q 'sleep'; do
    n=$((n+1)); [ $n -gt 150 ] && break; usleep 20000
done
ps -o pid,stat,comm
"""
    out = hutch("run", "--rm", "--init", "bb", "sh", "-c", script).stdout
    assert "sleep" not in out, out
    assert not re.search(r"^\s*\d+\s+Z", out, re.M), out


def _wait_ready(tmp):
    wait_for(lambda: (tmp / "ready").exists(), timeout=10, what="container ready marker")


def test_sigterm_with_init_exits_143_promptly(spawn, tmp):
    p = spawn("run", "--rm", "--init", "-v", f"{tmp}:/out", "bb", "sh", "-c",
              "touch /out/ready; exec sleep 100")
    _wait_ready(tmp)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=10)
    assert p.returncode == 143
    assert time.monotonic() - t0 < 3


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 7), (signal.SIGINT, 8),
                                      (signal.SIGHUP, 9)])
def test_signal_forwarded_to_pid1_trap(spawn, tmp, sig, code):
    name = signal.Signals(sig).name[3:]
    p = spawn("run", "--rm", "-v", f"{tmp}:/out", "bb", "sh", "-c",
              f"trap 'exit {code}' {name}; touch /out/ready; sleep 100 & wait")
    _wait_ready(tmp)
    t0 = time.monotonic()
    p.send_signal(sig)
    out, err = p.communicate(timeout=10)
    assert p.returncode == code, err
    assert time.monotonic() - t0 < 3


def test_sigterm_forwarded_with_init_to_trap(spawn, tmp):
    p = spawn("run", "--rm", "--init", "-v", f"{tmp}:/out", "bb", "sh", "-c",
              "trap 'exit 7' TERM; touch /out/ready; sleep 100 & wait")
    _wait_ready(tmp)
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=10)
    assert p.returncode == 7


# ------------------------------------------------------------------ uts


def test_hostname_flag(hutch):
    out = hutch("run", "--rm", "--hostname", "box", "bb", "sh",
                "-c", "hostname; cat /proc/sys/kernel/hostname; echo $HOSTNAME").stdout
    assert out == "box\nbox\nbox\n"


def test_default_hostname_is_short_id(hutch):
    out = hutch("run", "--rm", "bb", "sh", "-c", "hostname; echo $HOSTNAME").stdout
    h, env = out.split("\n")[:2]
    assert re.fullmatch(r"[0-9a-f]{12}", h), out
    assert env == h
    assert h != os.uname().nodename
    out2 = hutch("run", "--rm", "bb", "hostname").stdout.strip()
    assert out2 != h  # every container gets its own id


# ------------------------------------------------------------------ ipc


def test_ipc_namespace_differs(hutch):
    inside = hutch("run", "--rm", "bb", "readlink", "/proc/self/ns/ipc").stdout.strip()
    assert inside.startswith("ipc:[")
    assert inside != os.readlink("/proc/self/ns/ipc")


def test_all_namespaces_but_user_and_time_differ(hutch):
    kinds = ["mnt", "pid", "uts", "ipc", "net", "cgroup"]
    out = hutch("run", "--rm", "bb", "sh", "-c",
                " ; ".join(f"readlink /proc/self/ns/{k}" for k in kinds)).stdout.split()
    for k, v in zip(kinds, out):
        assert v != os.readlink(f"/proc/self/ns/{k}"), k


# ------------------------------------------------------------------ net


def _iface_names(proc_net_dev):
    return {l.split(":")[0].strip() for l in proc_net_dev.splitlines()[2:] if ":" in l}


def test_net_none_only_loopback_up(hutch):
    out = hutch("run", "--rm", "bb", "cat", "/proc/net/dev").stdout
    assert _iface_names(out) == {"lo"}
    link = hutch("run", "--rm", "--network", "none", "bb", "ip", "link", "show").stdout
    assert re.findall(r"^\d+: (\S+):", link, re.M) == ["lo"]
    assert re.search(r"lo: <[^>]*\bUP\b", link), link
    addr = hutch("run", "--rm", "bb", "ip", "addr", "show", "lo").stdout
    assert "127.0.0.1" in addr


def test_net_none_loopback_works(hutch):
    # httpd binds 127.0.0.1 explicitly; wget polls (with a bound) until it answers.
    script = r"""
mkdir -p /tmp/www && echo served-over-lo > /tmp/www/x
httpd -f -p 127.0.0.1:8080 -h /tmp/www &
i=0
until wget -q -O - http://127.0.0.1:8080/x; do
    i=$((i+1)); [ $i -gt 300 ] && exit 9; usleep 10000
done
netstat -ltn | grep -c '127.0.0.1:8080 .*LISTEN'
kill $!
"""
    cp = hutch("run", "--rm", "bb", "sh", "-c", script, timeout=20)
    assert cp.stdout == "served-over-lo\n1\n"


def test_net_none_cannot_reach_outside(hutch):
    cp = hutch("run", "--rm", "bb", "sh", "-c", "ip route; ip -4 addr show scope global",
               check=False)
    assert cp.returncode == 0
    assert cp.stdout.strip() == ""  # no routes, no addresses beyond lo


def test_net_host_sees_host_interfaces(hutch):
    out = hutch("run", "--rm", "--network", "host", "bb", "cat", "/proc/net/dev").stdout
    host = _iface_names(open("/proc/net/dev").read())
    assert _iface_names(out) == host
    assert len(host) > 1
    ns = hutch("run", "--rm", "--net=host", "bb", "readlink", "/proc/self/ns/net").stdout
    assert ns.strip() == os.readlink("/proc/self/ns/net")


# ------------------------------------------------------------------ cgroup


def test_cgroup_namespace_root(hutch):
    out = hutch("run", "--rm", "bb", "cat", "/proc/self/cgroup").stdout
    assert "0::/" in out.splitlines(), out


def test_container_has_own_cgroup_removed_after(hutch, tmp, spawn, state):
    p = spawn("run", "--rm", "-v", f"{tmp}:/out", "bb", "sh", "-c",
              "hostname > /out/ready.tmp; mv /out/ready.tmp /out/ready; exec sleep 100")
    _wait_ready(tmp)
    short = (tmp / "ready").read_text().strip()
    if os.geteuid() != 0:
        # Rootless with no delegated cgroup v2 subtree (none on this host): no cgroup
        # of its own, the container stays in the user's cgroup, and nothing to remove.
        parent = hutch_cgroup_parent()
        assert not parent.exists() or not [d for d in os.listdir(parent)
                                           if d.startswith(short)]
        from conftest import comm, wait_for
        # "ready" is written just before `exec sleep`: wait for the exec
        wait_for(lambda: [d for d in descendants(p.pid) if comm(d) == "sleep"],
                 what="the container's sleep")
        kids = [d for d in descendants(p.pid) if comm(d) == "sleep"]
        assert len(kids) == 1
        mine = [l for l in open("/proc/self/cgroup") if l.startswith("0::")]
        theirs = [l for l in open(f"/proc/{kids[0]}/cgroup") if l.startswith("0::")]
        assert theirs == mine
        os.kill(kids[0], signal.SIGKILL)
        p.communicate(timeout=10)
        assert p.returncode == 137
        return
    cgs = [d for d in os.listdir(hutch_cgroup_parent()) if d.startswith(short)]
    assert len(cgs) == 1, cgs
    cg = hutch_cgroup_parent() / cgs[0]
    procs = (cg / "cgroup.procs").read_text().split()
    assert procs, "the container's cgroup holds its processes"
    assert set(int(x) for x in procs) <= set(descendants(p.pid))
    # sleep is pid 1 without a handler (SIGTERM would be ignored): SIGKILL it.
    os.kill(int(procs[0]), signal.SIGKILL)
    p.communicate(timeout=10)
    assert not cg.exists()


_CGROUP_VIEW = ("grep ' /sys/fs/cgroup ' /proc/self/mountinfo; echo @@; ls -a /sys/fs/cgroup; "
                "echo @@; while read p; do echo $p; done < /sys/fs/cgroup/cgroup.procs; echo @@")


def _cgroup_view(out):
    mnt, listing, procs, _ = out.split("@@\n")
    fstype = mnt.split(" - ")[1].split()[0]
    return fstype, mnt, listing.split(), procs.split()


def _assert_empty_cgroup_view(fstype, mnt, listing, procs):
    # no cgroup of its own: an empty read-only tmpfs, no host pids, no hutch/
    assert fstype == "tmpfs", mnt
    assert " ro," in mnt or " ro " in mnt, mnt
    assert listing == [".", ".."], listing
    assert procs == [], procs


def test_cgroup_view_shows_only_the_containers_cgroup(hutch):
    """/sys/fs/cgroup shows the container's own cgroup and nothing of the host:
    rootless with no delegated cgroup (none on this host) it has no cgroup of its
    own, and sees an empty read-only tmpfs, not the host's tree (its pids and
    hutch/ with root's container ids)."""
    fstype, mnt, listing, procs = _cgroup_view(
        hutch("run", "--rm", "bb", "sh", "-c", _CGROUP_VIEW).stdout)
    assert "hutch" not in listing
    if os.geteuid() != 0:
        _assert_empty_cgroup_view(fstype, mnt, listing, procs)
        return
    assert fstype == "cgroup2", mnt
    # its own cgroup: only its sh (pid 1; the read is sh's own), no child cgroups
    assert procs == ["1"], procs
    assert [d for d in listing if "." not in d] == [], listing


def test_cgroup_view_without_a_cgroup_v2_on_the_host(state, hutch):
    """Rootful, a container lacks a cgroup of its own only where the host has no
    cgroup v2 hierarchy hutch can find: hidden here by a tmpfs over
    /sys/fs/cgroup in a mount namespace of the test's. Its /sys/fs/cgroup is then
    the empty tmpfs too, not the cgroup hutch runs in."""
    if os.geteuid() != 0:
        # rootless: the same as the test above (the user has no cgroup there)
        fstype, mnt, listing, procs = _cgroup_view(
            hutch("run", "--rm", "bb", "sh", "-c", _CGROUP_VIEW).stdout)
        _assert_empty_cgroup_view(fstype, mnt, listing, procs)
        return
    script = ('mount -t tmpfs -o ro,size=4k none /sys/fs/cgroup && exec "$@"')
    p = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
         str(state.bin), "--root", str(state.root), "run", "--rm", "bb", "sh", "-c",
         _CGROUP_VIEW], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    fstype, mnt, listing, procs = _cgroup_view(p.stdout)
    _assert_empty_cgroup_view(fstype, mnt, listing, procs)
