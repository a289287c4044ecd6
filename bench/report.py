#!/usr/bin/python3
"""Summarise a bench/run.sh run: print the table, write results.json and results.md.

usage: report.py WORK_DIR

Reads WORK_DIR/data/: status.tsv (tool, ok|FAILED, reason; the lifecycle benchmark's
keys are cycle:TOOL and monitor:TOOL), env.tsv (key, value), hf-*.json (hyperfine
--export-json), rss.tsv (tool, peak RSS KiB per run), monitor.tsv (tool, container,
supervisor pid, VmRSS, Rss, Pss, USS KiB), container-parent.tsv, leftover-processes.txt and
cgroup-leftovers.txt; hf-churn/hf-*.json, the churned-disk rounds (issue 13's goal). Exit status 1 when any tool failed in either benchmark, else 0; with
BENCH_ENFORCE_GOALS=1 also 1 when a goal is not met.
"""
import json
import os
import statistics
import sys

TOOLS = ["hutch", "hutch-disk", "crun", "runc", "bwrap", "unshare", "podman"]
# hutch in two layouts (run.sh): `hutch` as by default, its data on the disk and its run root
# on a tmpfs; `hutch-disk` with all its state on the disk (--root DIR on a disk).
LABELS = {
    "hutch": "hutch run --rm",
    "hutch-disk": "hutch run --rm, all state on the disk",
    "crun": "crun run",
    "runc": "runc run",
    "bwrap": "bwrap --unshare-all",
    "unshare": "unshare -mpnui -f (floor)",
    "podman": "podman run --rm",
}
# Medians measured earlier on these machines (DESIGN.md, "Reference facts").
REFERENCE_MS = {"crun": 6.3, "runc": 16.8, "bwrap": 3.4, "unshare": 2.1, "podman": 192.0}

# The lifecycle benchmark: one run -d + stop + rm cycle of `sleep 1000` per timed run.
CYCLE_TOOLS = ["hutch", "crun", "runc", "podman"]
CYCLE_LABELS = {
    "hutch": "hutch run -d / stop -t 0 / rm",
    "crun": "crun create / start / kill / delete -f",
    "runc": "runc create / start / kill / delete -f",
    "podman": "podman run -d / stop -t 0 / rm",
}
# The process that supervises a detached container; crun and runc leave none (the
# container's parent is whoever adopts orphans: here the benchmark's subreaper).
SUPERVISOR = {"hutch": "hutch monitor", "crun": None, "runc": None, "podman": "conmon"}

# The image benchmark (bench/images.sh): groups of rows; the first row of each is hutch's,
# the one "× hutch" divides by.
IMAGE_GROUPS = [
    ("import", "Import of the three-layer image", [
        ("img:gzip:hutch", "hutch image import, OCI layout, gzip"),
        ("img:zstd:hutch", "hutch image import, OCI layout, zstd"),
        ("img:docker:hutch", "hutch image import, docker archive"),
        ("img:gzip:tar", "tar -xzf of the 3 layers in turn"),
        ("img:zstd:tar", "zstd -dc | tar -x of the 3 layers in turn"),
        ("img:plain:tar", "tar -xf of the 3 uncompressed layers in turn"),
        ("img:gzip:umoci", "umoci unpack, OCI layout, gzip"),
        ("img:docker:podman", "podman load, docker archive"),
    ]),
    ("single", "One layer (layer 1 alone)", [
        ("img:l1:hutch", "hutch image import, one-layer OCI layout, gzip"),
        ("img:l1:tar", "tar -xzf of layer 1"),
    ]),
    ("pull", "Pull from docker-registry on 127.0.0.1 (gzip image)", [
        ("pull:gzip:hutch", "hutch pull --tls-verify=false"),
        ("pull:gzip:skopeo", "skopeo copy docker:// dir: (download only)"),
    ]),
]
# (hutch's row, the other row, what is compared): hutch's median / the other's
IMAGE_PAIRS = [
    ("img:gzip:hutch", "img:gzip:tar", "gzip layout vs tar -xzf in turn (the gzip floor)"),
    ("img:zstd:hutch", "img:zstd:tar", "zstd layout vs zstd -dc | tar -x in turn"),
    ("img:docker:hutch", "img:plain:tar", "docker archive vs tar -xf of the uncompressed layers"),
    ("img:l1:hutch", "img:l1:tar", "one layer vs tar -xzf of it"),
    ("img:docker:hutch", "img:docker:podman", "docker archive vs podman load of it"),
    ("img:gzip:hutch", "img:docker:podman", "gzip layout vs podman load of the docker archive"),
    ("img:gzip:hutch", "img:gzip:umoci", "gzip layout vs umoci unpack of it"),
    ("pull:gzip:hutch", "pull:gzip:skopeo", "pull vs skopeo's download only"),
]
# Measured in issue 4 on such an image (514 MB, 25k entries, medians of 5), seconds and
# ratios to sequential tar -xzf.
IMAGE_ISSUE_REF = {"img:gzip:tar": 4.6, "img:zstd:tar": 1.4, "img:plain:tar": 1.1}
IMAGE_ISSUE_RATIO = {"img:docker:podman": 1.56, "img:gzip:umoci": 2.24}


def read_tsv(path):
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    rows.append(line.split("\t"))
    except FileNotFoundError:
        pass
    return rows


def load_timings(data_dir, per_file):
    """Pool each tool's runs over every hyperfine file (the rounds of run.sh); fill
    per_file[file][tool] with that file's median in ms."""
    pooled = {}
    for name in sorted(os.listdir(data_dir)):
        if not (name.startswith("hf-") and name.endswith(".json")):
            continue
        try:
            with open(os.path.join(data_dir, name), encoding="utf-8") as f:
                results = json.load(f)["results"]
        except (OSError, ValueError, KeyError) as e:
            print(f"report: ignoring {name}: {e}", file=sys.stderr)
            continue
        for result in results:
            entry = pooled.setdefault(result["command"],
                                      {"times": [], "round_medians_ms": [], "files": []})
            entry["times"].extend(result.get("times") or [])
            entry["round_medians_ms"].append(result["median"] * 1e3)
            per_file.setdefault(name, {})[result["command"]] = result["median"] * 1e3
            entry["files"].append(name)
    timings = {}
    for tool, entry in pooled.items():
        times = entry["times"]
        if not times:
            continue
        timings[tool] = {
            "hyperfine_files": entry["files"],
            "round_medians_ms": entry["round_medians_ms"],
            "median_ms": statistics.median(times) * 1e3,
            "mean_ms": statistics.fmean(times) * 1e3,
            "stddev_ms": (statistics.stdev(times) if len(times) > 1 else 0.0) * 1e3,
            "min_ms": min(times) * 1e3,
            "max_ms": max(times) * 1e3,
            "runs": len(times),
        }
    return timings


def fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def mean_int(values):
    return int(round(statistics.fmean(values))) if values else None


def cycle_results(data_dir, env, status, timings, per_file):
    """The lifecycle benchmark's rows, and its hutch/crun ratio per round."""
    monitors = {}
    for row in read_tsv(os.path.join(data_dir, "monitor.tsv")):
        if len(row) >= 7:
            monitors.setdefault(row[0], []).append(
                {"container": row[1], "pid": int(row[2]), "vmrss_kib": int(row[3]),
                 "rss_kib": int(row[4]), "pss_kib": int(row[5]), "uss_kib": int(row[6])})
    parents = {}
    for row in read_tsv(os.path.join(data_dir, "container-parent.tsv")):
        if len(row) >= 2:
            parents[row[0]] = row[1] + (" (the supervisor)" if row[3:4] == ["supervisor"] else
                                        " (the subreaper: no supervisor)" if row[1] == "reap" else "")
    rows = []
    for tool in CYCLE_TOOLS:
        key = "cycle:" + tool
        state, reason = status.get(key, ("FAILED", "no status recorded"))
        t = timings.get(key, {}) if state != "skipped" else {}
        if state == "ok" and not t:
            state, reason = "FAILED", "no timing recorded"
        sup = SUPERVISOR[tool]
        if sup:
            mstate, mreason = status.get("monitor:" + tool, ("FAILED", "no status recorded"))
            samples = monitors.get(tool, []) if mstate == "ok" else []
            if mstate == "ok" and not samples:
                mstate, mreason = "FAILED", "no memory sample recorded"
        else:
            # nothing to measure: counted as 0 (n.a. in the table)
            mstate, mreason, samples = "none", None, []
        # A step can complain and still exit 0 (runc: "rmdir ...: device or resource busy").
        try:
            with open(os.path.join(os.path.dirname(data_dir), "logs", f"cycle-{tool}.log"),
                      encoding="utf-8", errors="replace") as f:
                stderr_lines = [l.rstrip("\n") for l in f if l.strip()]
        except FileNotFoundError:
            stderr_lines = []
        rows.append({
            "tool": tool,
            "label": CYCLE_LABELS[tool],
            "timed_stderr_lines": len(stderr_lines),
            "timed_stderr_last": stderr_lines[-1][:300] if stderr_lines else None,
            "status": state,
            "reason": reason or None,
            "command": env.get("cmd_cycle_" + tool),
            "hyperfine_files": t.get("hyperfine_files", []),
            "round_medians_ms": t.get("round_medians_ms", []),
            "median_ms": t.get("median_ms"),
            "mean_ms": t.get("mean_ms"),
            "stddev_ms": t.get("stddev_ms"),
            "min_ms": t.get("min_ms"),
            "max_ms": t.get("max_ms"),
            "runs": t.get("runs"),
            "supervisor": sup or "none",
            "container_parent": parents.get(tool),
            "monitor_status": mstate,
            "monitor_reason": mreason or None,
            "monitor_vmrss_kib": mean_int([m["vmrss_kib"] for m in samples]) if sup else 0,
            "monitor_pss_kib": mean_int([m["pss_kib"] for m in samples]) if sup else 0,
            "monitor_uss_kib": mean_int([m["uss_kib"] for m in samples]) if sup else 0,
            "monitor_samples": samples,
        })
    by_tool = {r["tool"]: r for r in rows}
    for r in rows:
        r["ratio_to_hutch"] = ratio(r["median_ms"], by_tool["hutch"]["median_ms"])
        r["ratio_to_crun"] = ratio(r["median_ms"], by_tool["crun"]["median_ms"])
    round_ratios = [m["cycle:hutch"] / m["cycle:crun"] for _, m in sorted(per_file.items())
                    if "cycle:hutch" in m and "cycle:crun" in m and m["cycle:crun"] > 0]
    return rows, round_ratios


def image_results(data_dir, env, status, timings, per_file):
    """The image benchmark's rows, like-for-like comparisons and goals; None when it did not run."""
    keys = [k for _, _, rows in IMAGE_GROUPS for k, _ in rows]
    if not any(k in status for k in keys):
        return None
    try:
        with open(os.path.join(data_dir, "images-info.json"), encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        info = None
    rows = []
    for group, _, members in IMAGE_GROUPS:
        ref = members[0][0]
        for key, label in members:
            state, reason = status.get(key, ("FAILED", "no status recorded"))
            t = timings.get(key, {}) if state != "skipped" else {}
            if state == "ok" and not t:
                state, reason = "FAILED", "no timing recorded"
            if state != "ok":
                t = {}
            rows.append({
                "key": key, "group": group, "label": label, "status": state,
                "reason": reason or None,
                "command": env.get("cmd_" + key), "prepare": env.get("prep_" + key),
                "hyperfine_files": t.get("hyperfine_files", []),
                "round_medians_s": [m / 1e3 for m in t.get("round_medians_ms", [])],
                "median_s": t["median_ms"] / 1e3 if t else None,
                "mean_s": t["mean_ms"] / 1e3 if t else None,
                "stddev_s": t["stddev_ms"] / 1e3 if t else None,
                "min_s": t["min_ms"] / 1e3 if t else None,
                "runs": t.get("runs"),
                "reference_s": IMAGE_ISSUE_REF.get(key),
                "ratio_ref": ref,
            })
    by_key = {r["key"]: r for r in rows}
    for r in rows:
        r["ratio_to_hutch"] = ratio(r["median_s"], by_key[r["ratio_ref"]]["median_s"])
        del r["ratio_ref"]
        floor = by_key["img:gzip:tar"]["median_s"]
        r["ratio_to_gzip_tar"] = ratio(r["median_s"], floor) if r["group"] == "import" else None

    pairs = []
    for a, b, what in IMAGE_PAIRS:
        per_round = [m[a] / m[b] for _, m in sorted(per_file.items())
                     if a in m and b in m and m[b] > 0]
        pairs.append({"hutch": a, "other": b, "what": what,
                      "ratio": ratio(by_key[a]["median_s"], by_key[b]["median_s"]),
                      "per_round": per_round})

    def pair(a, b):
        return next(p for p in pairs if p["hutch"] == a and p["other"] == b)

    def shown(p):
        if p["ratio"] is None:
            return "n/a"
        spread = (f", per round {min(p['per_round']):.2f}-{max(p['per_round']):.2f}x"
                  if len(p["per_round"]) > 1 else "")
        return (f"{p['hutch']} / {p['other']} = {p['ratio']:.2f}x "
                f"({by_key[p['hutch']]['median_s']:.2f} s vs {by_key[p['other']]['median_s']:.2f} s{spread})")

    goals = []
    p = pair("img:gzip:hutch", "img:gzip:tar")
    goals.append({"goal": "import (gzip) at or below sequential tar -xzf of the same layers",
                  "value": p["ratio"], "met": None if p["ratio"] is None else p["ratio"] <= 1.0,
                  "shown": shown(p)})
    p = pair("img:l1:hutch", "img:l1:tar")
    goals.append({"goal": "a single layer within 1.2x of tar -xzf", "value": p["ratio"],
                  "met": None if p["ratio"] is None else p["ratio"] <= 1.2, "shown": shown(p)})
    p = pair("img:docker:hutch", "img:docker:podman")
    p2 = pair("img:gzip:hutch", "img:docker:podman")
    met = None if p["ratio"] is None else p["ratio"] < 1.0
    extra = f"; gzip layout: {shown(p2)}" if p2["ratio"] is not None else ""
    goals.append({"goal": "ahead of podman load (the same docker archive, same run)",
                  "value": p["ratio"], "met": met, "shown": shown(p) + extra})
    warmup = {row[0]: float(row[2]) for row in read_tsv(os.path.join(data_dir, "images-warmup.tsv"))
              if len(row) >= 3 and row[1] == "0"}
    for r in rows:
        r["warmup_s"] = warmup.get(r["key"])
    return {
        "what": "import of a three-layer image into a fresh directory per run, against tar -x "
                "of the same layers in turn, umoci unpack and podman load; one layer alone; a "
                "pull from a local registry against skopeo's download to a directory",
        "image": info,
        "runs": int(env["image_runs"]) if env.get("image_runs") else None,
        "peer_runs": int(env["image_peer_runs"]) if env.get("image_peer_runs") else None,
        "pull_runs": int(env["pull_runs"]) if env.get("pull_runs") else None,
        "registry": env.get("registry"),
        "trash_delete_s": float(env["images_trash_delete_s"]) if env.get("images_trash_delete_s") else None,
        "since_last_delete_s": (int(env["images_since_last_delete_s"])
                                if env.get("images_since_last_delete_s") else None),
        "settle_wait_s": int(env["images_settle_wait_s"]) if env.get("images_settle_wait_s") else 0,
        "total_s": float(env["images_inner_s"]) if env.get("images_inner_s") else None,
        "tools": rows,
        "comparisons": pairs,
        "goals": goals,
    }


def image_tables(img):
    """The image benchmark's table (lines), notes and explanations."""
    header = ["row", "median s", "mean ± sd s", "min s", "runs", "× hutch", "× tar -xzf", "issue 4"]
    groups = []
    for group, title, _ in IMAGE_GROUPS:
        rows = []
        for r in img["tools"]:
            if r["group"] != group:
                continue
            issue = (f"{r['reference_s']:.1f} s" if r["reference_s"] is not None else
                     f"{IMAGE_ISSUE_RATIO[r['key']]:.2f}x" if r["key"] in IMAGE_ISSUE_RATIO else "-")
            if r["status"] != "ok":
                rows.append([f"{r['label']}: {r['status']}"] + ["-"] * 6 + [issue])
                continue
            rows.append([r["label"], fmt(r["median_s"], ".2f"),
                         f"{r['mean_s']:.2f} ± {r['stddev_s']:.2f}", fmt(r["min_s"], ".2f"),
                         str(r["runs"]), fmt(r["ratio_to_hutch"], ".2f"),
                         fmt(r["ratio_to_gzip_tar"], ".2f"), issue])
        groups.append((title, rows))
    notes = [f"{r['key']}: FAILED: {r['reason']}" for r in img["tools"]
             if r["status"] not in ("ok", "skipped")]
    info = img["image"] or {}
    explain = []
    if info:
        layers = ", ".join(f"{li['file_bytes'] / 1e6:.0f} MB / {li['entries']} entries"
                           for li in info["layers"])
        explain.append(
            f"image: {info['file_bytes'] / 1e6:.0f} MB of files, {info['entries']} entries in 3 layers "
            f"({layers}); gzip {info['gzip_bytes'] / 1e6:.0f} MB, zstd {info['zstd_bytes'] / 1e6:.0f} MB; "
            f"layer 3 has {info['layers'][2]['whiteouts']} whiteouts of layer-1 files (one opaque "
            f"directory); built by bench/mkimage.py, key {info['key']}.")
    explain.append(
        f"each timed run writes into a fresh directory: hyperfine's --prepare moves the last one "
        f"to a trash directory (deleted after all runs) and runs `sync`; one run per row per round, "
        f"rows side by side in a rotated order; {img['runs']} rounds, umoci and podman in the first "
        f"{min(img['peer_runs'] or 0, img['runs'] or 0)}; pull {img['pull_runs']} rounds; before "
        f"them, one untimed warm-up run of each row. The warm-up's and the last timed run's "
        f"output are checked (every layer's marker file, the entry count, hutch's whiteouts).")
    explain.append(
        "× hutch: median / hutch's median in the same group (import: hutch's gzip import); "
        "× tar -xzf: median / sequential tar -xzf's. issue 4: measured there on such an image "
        "(514 MB, 25k entries, medians of 5): seconds, or the ratio to tar -xzf.")
    explain.append(
        "the docker archive (skopeo's docker-archive writer, as `docker save`) holds the layers "
        "uncompressed: podman load and hutch's import of it decompress nothing.")
    explain.append(
        "skopeo copy to dir: only downloads and verifies the blobs; it unpacks nothing, so it is "
        "the floor for the download part of a pull, not a peer of hutch pull.")
    explain.append("hutch commits its store with syncfs(); tar, umoci and podman do not sync.")
    since = img.get("since_last_delete_s")
    if since is not None and since < 360:
        explain.insert(0,
            f"warning: an earlier run deleted its unpacked trees {since} s before this one's "
            f"image timing started: ext4 without a journal skips inodes freed less than 60-360 s "
            f"ago and scanning past them is slow, so every row's time is inflated (BENCH_IMAGE_SETTLE "
            f"was lowered; compare ratios)")
    if img.get("settle_wait_s"):
        explain.append(f"an earlier run had deleted its unpacked trees shortly before: the image "
                       f"benchmark waited {img['settle_wait_s']} s before timing (BENCH_IMAGE_SETTLE).")
    if img.get("trash_delete_s") is not None:
        explain.append(f"deleting the unpacked trees after the runs took {img['trash_delete_s']:.0f} s "
                       f"(not timed); the image part took {img['total_s'] or 0:.0f} s in all"
                       + (", with the wait." if img.get("settle_wait_s") else "."))
    return header, groups, notes, explain


def by_cycle_median(rows, tool):
    return next((r["median_ms"] for r in rows if r["tool"] == tool), None)


def pair_ratio(timings, per_file, a, b):
    """a's pooled median / b's, and the same within each round (hyperfine file)."""
    r = ratio(timings.get(a, {}).get("median_ms"), timings.get(b, {}).get("median_ms"))
    per_round = [m[a] / m[b] for _, m in sorted(per_file.items())
                 if a in m and b in m and m[b] > 0]
    return r, per_round


def shown_ratio(name, r, per_round):
    if r is None:
        return f"{name}: n/a"
    spread = (f", per round {min(per_round):.2f}-{max(per_round):.2f}x"
              if len(per_round) > 1 else "")
    return f"{name} = {r:.2f}x{spread}"


def churn_results(data_dir, env, status):
    """The churned-disk rounds (run.sh's time_churned): each tool's pooled timing and the
    ratios to crun; None when they did not run."""
    d = os.path.join(data_dir, "hf-churn")
    if not os.path.isdir(d):
        return None
    per_file = {}
    timings = {tool: t for tool, t in load_timings(d, per_file).items()
               if status.get(tool, ("",))[0] == "ok"}
    if not timings:
        return None
    ratios = {}
    for a, b in (("hutch", "crun"), ("hutch-disk", "crun"), ("hutch", "hutch-disk")):
        r, per_round = pair_ratio(timings, per_file, a, b)
        ratios[f"{a}/{b}"] = {"ratio": r, "per_round": per_round}
    return {
        "what": "the same interleaved rounds after untimed runs of each tool (a churned disk)",
        "churn_runs": int(env["churn_runs"]) if env.get("churn_runs", "").isdigit() else None,
        "tools": {tool: {k: t[k] for k in ("median_ms", "mean_ms", "stddev_ms", "min_ms", "runs",
                                          "round_medians_ms")}
                  for tool, t in timings.items()},
        "ratios": ratios,
    }


def layout_notes(env, status):
    """What each hutch row measured: where its foreground `run --rm` kept its container dir."""
    notes, warnings = [], []
    for tool, want in (("hutch", True), ("hutch-disk", False)):
        if status.get(tool, ("",))[0] != "ok":
            continue
        seen = env.get("layout_" + tool)
        if seen is None:
            continue
        notes.append(f"{tool}: during a run, its container dir was {seen}")
        in_memory = seen.startswith("a link to") and "(tmpfs)" in seen
        if in_memory != want and want:
            warnings.append(
                f"{tool}'s container dir was not in its run root's tmpfs: its row does not "
                f"measure the default layout (a binary from before that layout, or RUN/rm/ID "
                f"longer than the 59 bytes a link keeps in its inode: a shorter BENCH_WORK helps)")
        elif in_memory != want:
            warnings.append(f"{tool}'s container dir was in memory: its row does not measure "
                            f"all state on the disk")
    return notes, warnings


def busy_note(env):
    """Other work on the machine inflates every absolute time (ratios suffer less)."""
    try:
        cpus = int(env.get("cpus", "0"))
        load = float(env.get("loadavg_start", "0"))
    except ValueError:
        return None
    if cpus and load > 0.5 * cpus:
        return (f"the machine was busy before the benchmark started (load average {load:.2f} "
                f"on {cpus} CPUs): absolute times are inflated; compare ratios")
    return None


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    work = sys.argv[1]
    data_dir = os.path.join(work, "data")
    env = {row[0]: row[1] if len(row) > 1 else "" for row in read_tsv(os.path.join(data_dir, "env.tsv"))}
    status = {}
    for row in read_tsv(os.path.join(data_dir, "status.tsv")):
        status[row[0]] = (row[1], row[2] if len(row) > 2 else "")
    per_file = {}
    timings = load_timings(data_dir, per_file)
    rss = {}
    for row in read_tsv(os.path.join(data_dir, "rss.tsv")):
        rss.setdefault(row[0], []).append(int(row[1]))
    leftovers = [r[0] for r in read_tsv(os.path.join(data_dir, "cgroup-leftovers.txt"))]

    tools = []
    for tool in TOOLS:
        state, reason = status.get(tool, ("FAILED", "no status recorded"))
        t = timings.get(tool, {})
        if state == "skipped":
            t = {}
        elif state == "ok" and not t:
            state, reason = "FAILED", "no timing recorded"
        samples = rss.get(tool, [])
        tools.append({
            "tool": tool,
            "label": LABELS[tool],
            "status": state,
            "reason": reason or None,
            "command": env.get("cmd_" + tool),
            "hyperfine_files": t.get("hyperfine_files", []),
            "round_medians_ms": t.get("round_medians_ms", []),
            "median_ms": t.get("median_ms"),
            "mean_ms": t.get("mean_ms"),
            "stddev_ms": t.get("stddev_ms"),
            "min_ms": t.get("min_ms"),
            "max_ms": t.get("max_ms"),
            "runs": t.get("runs"),
            "peak_rss_kib": int(statistics.median(samples)) if samples else None,
            "peak_rss_kib_samples": samples,
            "reference_median_ms": REFERENCE_MS.get(tool),
        })
    by_tool = {t["tool"]: t for t in tools}
    hutch_ms = by_tool["hutch"]["median_ms"]
    crun_ms = by_tool["crun"]["median_ms"]
    for t in tools:
        t["ratio_to_hutch"] = ratio(t["median_ms"], hutch_ms)
        t["ratio_to_crun"] = ratio(t["median_ms"], crun_ms)

    h, c, p = by_tool["hutch"], by_tool["crun"], by_tool["podman"]

    def goal(name, value, ok, shown):
        return {"goal": name, "value": value, "met": ok, "shown": shown}

    # The same ratio within each round (one hyperfine invocation): how much it moves.
    round_ratios = [m["hutch"] / m["crun"] for _, m in sorted(per_file.items())
                    if "hutch" in m and "crun" in m and m["crun"] > 0]
    r = ratio(hutch_ms, crun_ms)
    spread = (f", per round {min(round_ratios):.2f}-{max(round_ratios):.2f}x"
              if len(round_ratios) > 1 else "")
    disk_r, disk_rounds = pair_ratio(
        {t["tool"]: t for t in tools if t["status"] == "ok"}, per_file, "hutch-disk", "crun")
    disk_shown = "; " + shown_ratio("hutch-disk/crun", disk_r, disk_rounds) if disk_r else ""
    goals = [
        goal("hutch time <= crun time (aim 0.7x)", r, None if r is None else r <= 1.0,
             "n/a" if r is None else f"hutch/crun = {r:.2f}x{spread}"
             + ("; aim 0.7x met" if r <= 0.7 else "; aim 0.7x not met") + disk_shown),
    ]
    # Issue 13: hutch in its default layout at or below 0.7x crun after a churned disk.
    churned = churn_results(data_dir, env, status)
    if churned:
        ch = churned["ratios"]["hutch/crun"]
        chd = churned["ratios"]["hutch-disk/crun"]
        goals.append(goal(
            "issue 13: hutch (default layout) <= 0.7x crun on a churned disk", ch["ratio"],
            None if ch["ratio"] is None else ch["ratio"] <= 0.7,
            shown_ratio("hutch/crun", ch["ratio"], ch["per_round"])
            + ("; " + shown_ratio("hutch-disk/crun", chd["ratio"], chd["per_round"])
               if chd["ratio"] is not None else "")))
    lnotes, lwarnings = layout_notes(env, status)
    hm, cm = h["peak_rss_kib"], c["peak_rss_kib"]
    goals.append(goal("hutch peak RSS <= crun peak RSS", ratio(hm, cm),
                      None if hm is None or cm is None else hm <= cm,
                      "n/a" if hm is None or cm is None else f"{hm} KiB vs {cm} KiB"))
    r = ratio(p["median_ms"], hutch_ms)
    goals.append(goal("hutch >= 30x faster than podman", r, None if r is None else r >= 30,
                      "n/a" if r is None else f"podman/hutch = {r:.1f}x"))

    cycle_rows, cycle_round_ratios = cycle_results(data_dir, env, status, timings, per_file)
    leftover_procs = [" ".join(r) for r in read_tsv(os.path.join(data_dir, "leftover-processes.txt"))]
    images = image_results(data_dir, env, status, timings, per_file)
    floor = rss.get("floor", [])
    results = {
        "env": env,
        "tools": tools,
        "rss_floor_kib": int(statistics.median(floor)) if floor else None,
        "goals": goals,
        "hutch_to_crun_per_round": round_ratios,
        "hutch_disk_to_crun_per_round": disk_rounds,
        "hutch_run_root": env.get("hutch_run_root"),
        "layouts": {t: env.get("layout_" + t) for t in ("hutch", "hutch-disk")},
        "churned": churned,
        "cgroup_leftovers_removed": leftovers,
        "cycle": {
            "what": "one run -d + stop + rm cycle of a detached `sleep 1000` per timed run; "
                    "memory of each detached container's supervisor process",
            "monitor_containers": int(env["monitor_containers"]) if env.get("monitor_containers") else None,
            "tools": cycle_rows,
            "hutch_to_crun_per_round": cycle_round_ratios,
        },
        "images": images,
        "leftover_processes_killed": leftover_procs,
    }
    with open(os.path.join(work, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
        f.write("\n")

    header = ["tool", "median ms", "mean ± sd ms", "min ms", "runs", "× hutch", "× crun",
              "peak RSS KiB", "ref ms"]
    rows = []
    for t in tools:
        if t["status"] != "ok":
            rows.append([t["tool"] + ": " + t["status"], "-", "-", "-", "-", "-", "-", "-",
                         fmt(t["reference_median_ms"], ".1f")])
            continue
        rows.append([
            t["label"],
            fmt(t["median_ms"], ".2f"),
            f"{t['mean_ms']:.2f} ± {t['stddev_ms']:.2f}",
            fmt(t["min_ms"], ".2f"),
            str(t["runs"]),
            fmt(t["ratio_to_hutch"], ".2f"),
            fmt(t["ratio_to_crun"], ".2f"),
            fmt(t["peak_rss_kib"], "d"),
            fmt(t["reference_median_ms"], ".1f"),
        ])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]
    failures = [t for t in tools if t["status"] not in ("ok", "skipped")]
    notes = [f"{t['tool']}: FAILED: {t['reason']}" for t in failures]

    # The lifecycle table.
    nmon = env.get("monitor_containers", "?")
    cheader = ["tool", "median ms", "mean ± sd ms", "min ms", "runs", "× hutch", "× crun",
               "supervisor", "RSS KiB", "Pss KiB", "USS KiB"]
    crows = []
    for r in cycle_rows:
        if r["status"] == "ok":
            timing = [fmt(r["median_ms"], ".1f"), f"{r['mean_ms']:.1f} ± {r['stddev_ms']:.1f}",
                      fmt(r["min_ms"], ".1f"), str(r["runs"]), fmt(r["ratio_to_hutch"], ".2f"),
                      fmt(r["ratio_to_crun"], ".2f")]
        else:
            timing = [r["status"]] + ["-"] * 5
        if r["monitor_status"] == "none":
            memory = ["none", "n.a. (0)", "n.a. (0)", "n.a. (0)"]
        elif r["monitor_status"] == "ok":
            memory = [r["supervisor"], fmt(r["monitor_vmrss_kib"], "d"),
                      fmt(r["monitor_pss_kib"], "d"), fmt(r["monitor_uss_kib"], "d")]
        else:
            memory = [r["supervisor"], r["monitor_status"], "-", "-"]
        label = r["label"]
        if "FAILED" in (r["status"], r["monitor_status"]):
            label += ": FAILED"
        crows.append([label] + timing + memory)
    cwidths = [max(len(x[i]) for x in [cheader] + crows) for i in range(len(cheader))]

    def cline(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, cwidths)))

    cout = [cline(cheader), cline(["-" * w for w in cwidths])] + [cline(x) for x in crows]
    cnotes = []
    for r in cycle_rows:
        if r["status"] not in ("ok", "skipped"):
            cnotes.append(f"{r['tool']} cycle: FAILED: {r['reason']}")
        if r["monitor_status"] not in ("ok", "skipped", "none"):
            cnotes.append(f"{r['tool']} supervisor memory: FAILED: {r['monitor_reason']}")
    cfailures = list(cnotes)
    for r in cycle_rows:
        if r["timed_stderr_lines"] and r["status"] == "ok":
            cnotes.append(f"{r['tool']} cycle: {r['timed_stderr_lines']} line(s) on stderr during "
                          f"the timed cycles, though every cycle exited 0; last: "
                          f"{r['timed_stderr_last']} (logs/cycle-{r['tool']}.log)")
    c_ratio = ratio(by_cycle_median(cycle_rows, "hutch"), by_cycle_median(cycle_rows, "crun"))
    cycle_ratio_note = None
    if c_ratio is not None:
        cycle_ratio_note = f"cycle hutch/crun = {c_ratio:.2f}x" + (
            f", per round {min(cycle_round_ratios):.2f}-{max(cycle_round_ratios):.2f}x"
            if len(cycle_round_ratios) > 1 else "")
    parents = ", ".join(f"{r['tool']}: {r['container_parent']}" for r in cycle_rows
                        if r["container_parent"])
    cexplain = [
        "cycle: one timed run = start a detached `sleep 1000`, stop it, remove it (each tool's "
        "own verbs, see Commands); hyperfine runs it through /bin/sh and subtracts the shell's "
        "startup. hutch, crun and runc side by side in rounds; podman on its own.",
        f"supervisor: the process that stays with each detached container; its memory is "
        f"the mean per container over {nmon} containers running at once: RSS = VmRSS "
        f"(/proc/PID/status), Pss and USS (Private_Clean + Private_Dirty) from "
        f"/proc/PID/smaps_rollup. crun and runc leave no process behind: n.a., counted as 0.",
    ]
    if parents:
        cexplain.append("parent of the container process: " + parents + ".")
    print()
    print("\n".join(out))
    print()
    for n in notes:
        print(n)
    print("× hutch / × crun: the tool's median divided by hutch's / crun's (above 1 = slower).")
    print(f"peak RSS: median over runs of the largest single-process peak RSS in the tool's "
          f"process tree; the method's floor (/bin/true) is {results['rss_floor_kib']} KiB.")
    for n in lnotes:
        print(n)
    for n in lwarnings:
        print("warning: " + n)
    busy = busy_note(env)
    if busy:
        print("warning: " + busy)
    for g in goals:
        mark = {True: "met", False: "NOT met", None: "n/a"}[g["met"]]
        print(f"goal: {g['goal']}: {mark} ({g['shown']})")
    print()
    print("Lifecycle: run -d + stop + rm of `sleep 1000`, and the supervisor's memory per container")
    print()
    print("\n".join(cout))
    print()
    for n in cnotes:
        print(n)
    for n in cexplain:
        print(n)
    if cycle_ratio_note:
        print(cycle_ratio_note)
    ifailures = []
    if images:
        iheader, igroups, inotes, iexplain = image_tables(images)
        ifailures = inotes
        allrows = [iheader] + [r for _, grows in igroups for r in grows]
        iwidths = [max(len(x[i]) for x in allrows) for i in range(len(iheader))]

        def iline(cells):
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, iwidths)))

        print()
        print("Images: import of a three-layer image (fresh directory per run), one layer, pull")
        for title, grows in igroups:
            print()
            print(title)
            print(iline(iheader))
            print(iline(["-" * w for w in iwidths]))
            for r in grows:
                print(iline(r))
        print()
        for n in inotes:
            print(n)
        for p in images["comparisons"]:
            if p["ratio"] is not None:
                print(f"hutch/other: {p['what']}: {p['ratio']:.2f}x" + (
                    f" (per round {min(p['per_round']):.2f}-{max(p['per_round']):.2f}x)"
                    if len(p["per_round"]) > 1 else ""))
        for g in images["goals"]:
            mark = {True: "met", False: "NOT met", None: "n/a"}[g["met"]]
            print(f"goal: {g['goal']}: {mark} ({g['shown']})")
        for n in iexplain:
            print(n)
    own = [c for c in leftovers if not c.startswith("hutch/")]
    shared = [c for c in leftovers if c.startswith("hutch/")]
    if own:
        print("cgroups left behind by the tools and removed: " + ", ".join(own))
    if shared:
        # hutch/ is shared with every hutch on the machine; run.sh does not remove these
        print("cgroups that appeared under hutch/ during the run and were still there at the "
              "end (the benchmark's hutch, or another hutch on this machine): " + ", ".join(shared))
    for p in leftover_procs:
        print("warning: process outlived the benchmark's cleanup and was killed: " + p)
    print(f"results: {os.path.join(work, 'results.json')}, {os.path.join(work, 'results.md')}")

    md = ["# hutch benchmark: `run --rm` of `/bin/true` on a busybox rootfs", ""]
    md.append(f"{env.get('date', '?')}, kernel {env.get('kernel', '?')}, {env.get('cpus', '?')} CPUs "
              f"({env.get('cpu_model', '?')}), hutch {env.get('hutch_commit', '?')}.")
    md.append("")
    md.append("| " + " | ".join(header) + " |")
    md.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for r in rows:
        md.append("| " + " | ".join(r) + " |")
    md.append("")
    for n in notes:
        md.append(f"- **{n}**")
    md.append("- × hutch / × crun: the tool's median divided by hutch's / crun's.")
    md.append("- ref ms: median measured earlier on these machines (DESIGN.md).")
    md.append(f"- peak RSS: median over {env.get('rss_runs', '?')} runs of the largest single-process "
              f"peak RSS in the tool's process tree (bench/reap.c); floor of the method "
              f"(/bin/true): {results['rss_floor_kib']} KiB.")
    md.append(f"- cgroups: {env.get('cgroup_setup', '?')}.")
    if env.get("hutch_run_root"):
        md.append(f"- run roots: {env['hutch_run_root']}.")
    for n in lnotes:
        md.append(f"- {n}.")
    for n in lwarnings:
        md.append(f"- **warning: {n}**")
    if busy:
        md.append(f"- **warning: {busy}**")
    md.append("")
    md.append("## Goals")
    md.append("")
    for g in goals:
        mark = {True: "met", False: "**NOT met**", None: "n/a"}[g["met"]]
        md.append(f"- {g['goal']}: {mark} ({g['shown']})")
    md.append("")
    md.append("## Lifecycle: `run -d` + `stop` + `rm` of `sleep 1000`, supervisor memory")
    md.append("")
    md.append("| " + " | ".join(cheader) + " |")
    md.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(cheader))) + "|")
    for x in crows:
        md.append("| " + " | ".join(x) + " |")
    md.append("")
    for n in cnotes:
        md.append(f"- **{n}**")
    for n in cexplain:
        md.append(f"- {n}")
    if cycle_ratio_note:
        md.append(f"- {cycle_ratio_note}.")
    for p in leftover_procs:
        md.append(f"- **warning: process outlived the benchmark's cleanup and was killed: {p}**")
    md.append("")
    if images:
        md.append("## Images: import of a three-layer image, one layer, pull")
        md.append("")
        for title, grows in igroups:
            md.append(f"**{title}**")
            md.append("")
            md.append("| " + " | ".join(iheader) + " |")
            md.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(iheader))) + "|")
            for x in grows:
                md.append("| " + " | ".join(c.replace("|", "\\|") for c in x) + " |")
            md.append("")
        for n in inotes:
            md.append(f"- **{n}**")
        md.append("")
        md.append("hutch's median / the other's, in this run (and the range over the rounds):")
        md.append("")
        for p in images["comparisons"]:
            if p["ratio"] is not None:
                md.append(f"- {p['what']}: {p['ratio']:.2f}x" + (
                    f" ({min(p['per_round']):.2f}-{max(p['per_round']):.2f}x)"
                    if len(p["per_round"]) > 1 else ""))
        md.append("")
        md.append("Goals (issue 4):")
        md.append("")
        for g in images["goals"]:
            mark = {True: "met", False: "**NOT met**", None: "n/a"}[g["met"]]
            md.append(f"- {g['goal']}: {mark} ({g['shown']})")
        md.append("")
        for n in iexplain:
            md.append(f"- {n}")
        md.append("")
    md.append("## Commands")
    md.append("")
    for t in tools:
        md.append(f"- {t['tool']}: `{t['command']}`")
    for r in cycle_rows:
        md.append(f"- cycle {r['tool']}: `{r['command']}`")
    if images:
        for r in images["tools"]:
            md.append(f"- {r['key']}: `{r['command']}`; --prepare: `{r['prepare']}`")
    md.append("")
    md.append("## Versions")
    md.append("")
    for k, v in sorted(env.items()):
        if k.endswith("_version"):
            md.append(f"- {v}")
    md.append("")
    with open(os.path.join(work, "results.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md))

    if failures or cfailures or ifailures:
        return 1
    all_goals = goals + (images["goals"] if images else [])
    if os.environ.get("BENCH_ENFORCE_GOALS") == "1" and any(g["met"] is False for g in all_goals):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
