#!/usr/bin/python3
"""Turn the config.json written by `crun spec` / `runc spec` into the benchmark's bundle.

usage: bundle.py CONFIG_JSON ROOTFS [ARG...]   (ARGs default to /bin/true)

Changes, and why:
- process.args = ARGs, process.terminal = false: no pty, output goes where hyperfine says.
- root = {path: ROOTFS (absolute), readonly: true}: the shared busybox rootfs, never written.
- linux.resources removed: the default spec only carries a device deny-all rule. On cgroup v2
  that rule is an eBPF program, and crun raises RLIMIT_MEMLOCK to infinity before loading
  it, which fails here (the machine withholds CAP_SYS_RESOURCE), so crun cannot run with it.
  runc gets the same config so that the two OCI runtimes do the same work.
Everything else (namespaces, mounts, masked and read-only paths, capabilities, rlimits,
no_new_privileges) stays at each runtime's own default.
"""
import json
import os
import sys


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    path, rootfs = sys.argv[1], os.path.abspath(sys.argv[2])
    args = sys.argv[3:] or ["/bin/true"]
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    config["process"]["args"] = args
    config["process"]["terminal"] = False
    config.pop("consoleSize", None)
    config["process"].pop("consoleSize", None)
    config["root"] = {"path": rootfs, "readonly": True}
    config.get("linux", {}).pop("resources", None)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
