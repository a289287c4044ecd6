"""hutch-oci's linux.resources beyond memory, cpu quota and pids: blockIO,
hugepageLimits, rdma, unified, memory.reservation, cpu.cpus/mems/idle/burst, each
the cgroup v2 file it sets with the exact value expected (read back from the
container's cgroup, and from inside it), or named in the one warning when this
host's cgroup v2 lacks its controller (a hybrid host: only hugetlb here), or
refused by name when cgroup v2 cannot do it at all; `update --resources` the same.
Rootless without a delegated cgroup: the container runs, and the warning names
every field it did not get. tests/vm/stage2.sh checks enforcement on a cgroup v2
with every controller."""
import hashlib
import json
import os
from pathlib import Path

import pytest

from conftest import cgroup_controllers, hutch_cgroup_parent
from ociutil import oci  # noqa: F401  (the fixture)

ROOTLESS = os.geteuid() != 0


def _cgroup_of(cid):
    p = hutch_cgroup_parent() / hashlib.sha256(cid.encode()).hexdigest()
    return p if p.exists() else None


def _host_hugepage_sizes():
    """The spec's names of this host's hugepage sizes: hugepages-2048kB is 2MB."""
    names = []
    for d in sorted(os.listdir("/sys/kernel/mm/hugepages")):
        kib = int(d[len("hugepages-"):-len("kB")])
        names.append(f"{kib // 1048576}GB" if kib % 1048576 == 0 else
                     f"{kib // 1024}MB" if kib % 1024 == 0 else f"{kib}KB")
    return names


def _with_resources(res):
    def edit(c):
        c["linux"]["resources"] = dict(c["linux"].get("resources", {}), **res)
    return edit


# field -> (the cgroup file, what it must read back as)
RESOURCES = {
    "hugepageLimits": [{"pageSize": s, "limit": 2 * 1048576 * (i + 1) if s == "2MB" else 0}
                       for i, s in enumerate(_host_hugepage_sizes())],
    "memory": {"reservation": 8 * 1048576, "kernel": 1048576},
    "cpu": {"cpus": "0", "mems": "0", "idle": 1},
    "blockIO": {"weight": 500},
    "unified": {"cgroup.max.depth": "3", "cgroup.max.descendants": "7"},
    "network": {"classID": 5},
}
EXPECTED = [
    *[("linux.resources.hugepageLimits", f"hugetlb.{h['pageSize']}.max", str(h["limit"]))
      for h in RESOURCES["hugepageLimits"]],
    ("linux.resources.memory.reservation", "memory.low", str(8 * 1048576)),
    ("linux.resources.cpu.cpus", "cpuset.cpus", "0"),
    ("linux.resources.cpu.mems", "cpuset.mems", "0"),
    ("linux.resources.cpu.idle", "cpu.idle", "1"),
    ("linux.resources.blockIO.weight", "io.weight", "default 4950"),
    ("linux.resources.unified.cgroup.max.depth", "cgroup.max.depth", "3"),
    ("linux.resources.unified.cgroup.max.descendants", "cgroup.max.descendants", "7"),
]


def test_resources_written_in_the_container_cgroup(oci, tmp):
    files = " ".join(f for _, f, _ in EXPECTED if f.startswith(("hugetlb", "cgroup.")))
    b = oci.bundle(args=("sh", "-c", f"cd /sys/fs/cgroup && cat {files}; exec sleep 60"),
                   edit=_with_resources(RESOURCES))
    out = tmp / "out"
    cp = oci.create("r1", b, out=out)
    # the deprecated and the v1-only: ignored, each said
    assert "linux.resources.memory.kernel: cgroup v2 has no kernel memory limit" in cp.stderr
    assert "linux.resources.network: cgroup v1's net_cls" in cp.stderr
    cg = _cgroup_of("r1")
    warnings = [l for l in cp.stderr.splitlines() if "not enforced:" in l]
    if cg is None:
        # rootless without a delegated cgroup: every field named once, and it runs
        assert ROOTLESS
        assert len(warnings) == 1, cp.stderr
        for field, _, _ in EXPECTED:
            assert field in warnings[0].split(), (field, warnings[0])
        assert "no delegated cgroup v2 subtree" in warnings[0]
        oci.run("start", "r1")
        return
    have = set((cg / "cgroup.controllers").read_text().split())
    missing = [f for f, file, _ in EXPECTED
               if not file.startswith("cgroup.") and file.split(".")[0] not in have]
    for field, file, value in EXPECTED:
        if field in missing:
            assert not (cg / file).exists()
            continue
        got = (cg / file).read_text().strip()
        if file == "io.weight":  # io.bfq.weight where bfq is the scheduler
            got = (cg / "io.bfq.weight").read_text().strip() if (cg / "io.bfq.weight").exists() \
                else got
            assert got in ("default 4950", "default 500"), got
        else:
            assert got == value, (file, got, value)
    for h in RESOURCES["hugepageLimits"]:  # the reservation limit with it
        rsvd = cg / f"hugetlb.{h['pageSize']}.rsvd.max"
        if "hugetlb" in have and rsvd.exists():
            assert rsvd.read_text().strip() == str(h["limit"])
    if missing:  # said once, each field by name
        assert len(warnings) == 1, cp.stderr
        for field in set(missing):
            assert field in warnings[0].split(), (field, warnings[0])
    else:
        assert not warnings, cp.stderr
    oci.run("start", "r1")
    # the container sees the same values in its own cgroup
    from conftest import wait_for
    seen = [v for f, file, v in EXPECTED
            if file.startswith(("hugetlb", "cgroup.")) and f not in missing]
    wait_for(lambda: out.read_text().split() == seen, what="the values inside")


def test_unified_needs_its_controller(oci, tmp):
    """unified's files are set as given: one whose controller the container's cgroup
    lacks is an error naming the key, not a warning (as crun); none is left."""
    b = oci.bundle(args=("sh", "-c", "cat /sys/fs/cgroup/memory.high 2>/dev/null || echo none"),
                   edit=_with_resources({"unified": {"memory.high": "33554432"}}))
    out = tmp / "out"
    cp = oci.run_to_files("run", "--bundle", b, "u1", out=out, check=False)
    parent = hutch_cgroup_parent()
    root_ctrls = set()
    if parent.parent.joinpath("cgroup.controllers").exists():
        root_ctrls = set(parent.parent.joinpath("cgroup.controllers").read_text().split())
    if ROOTLESS and "no delegated cgroup v2 subtree" in cp.stderr:
        assert cp.returncode == 0, cp.stderr
        assert "not enforced: linux.resources.unified.memory.high" in cp.stderr
        assert out.read_text() == "none\n"
    elif "memory" in root_ctrls:
        assert cp.returncode == 0, cp.stderr
        assert out.read_text() == "33554432\n"
    else:
        assert cp.returncode != 0
        assert ("linux.resources.unified.memory.high cannot be set here: the container's "
                "cgroup has no memory controller") in cp.stderr, cp.stderr
    assert _cgroup_of("u1") is None


BAD = [
    ({"unified": {"../memory.max": "1"}}, "linux.resources.unified: '../memory.max'"),
    ({"unified": {"memory": "1"}}, "linux.resources.unified: 'memory': not CONTROLLER.NAME"),
    # a file that moves processes of the host into the container's cgroup (which
    # delete kills) is not a limit
    ({"unified": {"cgroup.procs": "1"}},
     "linux.resources.unified: 'cgroup.procs': hutch manages the container's processes"),
    ({"unified": {"memory.max": 5}}, "linux.resources.unified.memory.max: a string is expected"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]},
     "linux.resources.hugepageLimits[0].pageSize: '2M' is not a hugepage size"),
    ({"hugepageLimits": [{"limit": 1}]},
     "linux.resources.hugepageLimits[0]: pageSize and limit are required"),
    ({"blockIO": {"weight": 5}}, "linux.resources.blockIO.weight: 5 is out of range"),
    ({"blockIO": {"leafWeight": 500}},
     "linux.resources.blockIO.leafWeight: cgroup v2 has no leaf weight"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}},
     "linux.resources.blockIO.throttleReadBpsDevice[0]: major, minor and rate are required"),
    ({"blockIO": {"weightDevice": [{"major": -1, "minor": 0, "weight": 100}]}},
     "linux.resources.blockIO.weightDevice[0].major: -1 is out of range"),
    ({"cpu": {"cpus": "1-0"}}, "linux.resources.cpu.cpus: '1-0' is not a list"),
    ({"cpu": {"idle": 3}}, "linux.resources.cpu.idle: 3 is out of range"),
    ({"cpu": {"realtimeRuntime": 950000}},
     "linux.resources.cpu.realtimeRuntime: cgroup v2 has no realtime CPU budget"),
    ({"memory": {"swappiness": 60}}, "linux.resources.memory.swappiness: cgroup v2 has no"),
    ({"memory": {"disableOOMKiller": True}},
     "linux.resources.memory.disableOOMKiller: cgroup v2 has no way to disable"),
    ({"memory": {"reservation": "1G"}},
     "linux.resources.memory.reservation: a number is expected"),
    ({"rdma": {"mlx5 1": {"hcaHandles": 1}}}, "linux.resources.rdma: 'mlx5 1' is not an RDMA"),
    ({"rdma": {"mlx5_1": {"hcaObjects": -1}}},
     "linux.resources.rdma.mlx5_1.hcaObjects: -1 is out of range"),
]


@pytest.mark.parametrize("res,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_values_refused_by_name(oci, res, message):
    b = oci.bundle(edit=_with_resources(res))
    cp = oci.create("bad", b, check=False)
    assert cp.returncode != 0
    assert message in cp.stderr, cp.stderr
    assert _cgroup_of("bad") is None


def test_hugepage_size_the_host_lacks(oci):
    b = oci.bundle(edit=_with_resources({"hugepageLimits": [{"pageSize": "4MB", "limit": 1}]}))
    cp = oci.create("h1", b, check=False)
    if cp.returncode == 0:  # no cgroup (rootless), or no hugetlb controller: a warning
        assert "not enforced: linux.resources.hugepageLimits" in cp.stderr, cp.stderr
        return
    sizes = " ".join(sorted(_host_hugepage_sizes(), key=lambda s: (s[-2:] != "KB",
                                                                      s[-2:] != "MB", s)))
    assert ("linux.resources.hugepageLimits[0]: the container's cgroup has no file "
            "hugetlb.4MB.max (this host's hugepage sizes: ") in cp.stderr, cp.stderr
    for s in sizes.split():
        assert s in cp.stderr
    assert _cgroup_of("h1") is None


def test_update_resources(oci, tmp):
    b = oci.bundle(args=("sleep", "60"))
    oci.create("up1", b)
    oci.run("start", "up1")
    cg = _cgroup_of("up1")
    res = tmp / "res.json"
    sizes = _host_hugepage_sizes()
    res.write_text(json.dumps({
        "hugepageLimits": [{"pageSize": sizes[0], "limit": 0}],
        "unified": {"cgroup.max.descendants": "5"}}))
    cp = oci.run("update", "--resources", res, "up1", check=False)
    if cg is None:  # rootless without a cgroup: refused, by name
        assert ROOTLESS
        assert cp.returncode != 0
        assert "has no cgroup of its own" in cp.stderr, cp.stderr
        return
    # made without limits, the cgroup gets the controllers an update needs where
    # the hierarchy offers them (its parents' subtree_control)
    have = cgroup_controllers()
    if "hugetlb" in have:
        assert cp.returncode == 0, cp.stderr
        assert "hugetlb" in (cg / "cgroup.controllers").read_text().split()
        assert (cg / f"hugetlb.{sizes[0]}.max").read_text().strip() == "0"
        assert (cg / "cgroup.max.descendants").read_text().strip() == "5"
    else:
        assert cp.returncode != 0 and "linux.resources.hugepageLimits[0]" in cp.stderr
    # a controller the cgroup lacks: refused by name (an update is asked for, not hoped)
    res.write_text(json.dumps({"blockIO": {"throttleReadBpsDevice": [
        {"major": 1, "minor": 3, "rate": 1048576}]}}))
    cp = oci.run("update", "--resources", res, "up1", check=False)
    if "io" not in have:
        assert cp.returncode != 0
        assert ("linux.resources.blockIO.throttleReadBpsDevice[0] cannot be set here: the "
                "container's cgroup has no io controller") in cp.stderr, cp.stderr
    # the kernel's refusal names the field and the value
    res.write_text(json.dumps({"unified": {"cgroup.max.depth": "deep"}}))
    cp = oci.run("update", "--resources", res, "up1", check=False)
    assert cp.returncode != 0
    assert ("linux.resources.unified.cgroup.max.depth: the kernel refused 'deep' for "
            "cgroup.max.depth") in cp.stderr, cp.stderr
    # ignored fields: said, as at create
    res.write_text(json.dumps({"memory": {"kernel": 1048576}, "network": {"classID": 3}}))
    cp = oci.run("update", "--resources", res, "up1")
    assert "warning: linux.resources.memory.kernel: cgroup v2 has no kernel memory" in cp.stderr
    assert "warning: linux.resources.network: cgroup v1's net_cls" in cp.stderr
    res.write_text(json.dumps({"cpu": {"realtimePeriod": 1000}}))
    cp = oci.run("update", "--resources", res, "up1", check=False)
    assert cp.returncode != 0
    assert "linux.resources.cpu.realtimePeriod: cgroup v2 has no" in cp.stderr, cp.stderr
