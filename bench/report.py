#!/usr/bin/python3
"""Summarise a bench/run.sh run: print the table, write results.json and results.md.

usage: report.py WORK_DIR

Reads WORK_DIR/data/: status.tsv (tool, ok|FAILED, reason), env.tsv (key, value),
hf-*.json (hyperfine --export-json), rss.tsv (tool, peak RSS KiB per run) and
cgroup-leftovers.txt. Exit status 1 when any tool failed, else 0; with
BENCH_ENFORCE_GOALS=1 also 1 when a goal is not met.
"""
import json
import os
import statistics
import sys

TOOLS = ["hutch", "crun", "runc", "bwrap", "unshare", "podman"]
LABELS = {
    "hutch": "hutch run --rm",
    "crun": "crun run",
    "runc": "runc run",
    "bwrap": "bwrap --unshare-all",
    "unshare": "unshare -mpnui -f (floor)",
    "podman": "podman run --rm",
}
# Medians measured earlier on these machines (DESIGN.md, "Reference facts").
REFERENCE_MS = {"crun": 6.3, "runc": 16.8, "bwrap": 3.4, "unshare": 2.1, "podman": 192.0}


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
    goals = [
        goal("hutch time <= crun time (aim 0.7x)", r, None if r is None else r <= 1.0,
             "n/a" if r is None else f"hutch/crun = {r:.2f}x{spread}"
             + ("; aim 0.7x met" if r <= 0.7 else "; aim 0.7x not met")),
    ]
    hm, cm = h["peak_rss_kib"], c["peak_rss_kib"]
    goals.append(goal("hutch peak RSS <= crun peak RSS", ratio(hm, cm),
                      None if hm is None or cm is None else hm <= cm,
                      "n/a" if hm is None or cm is None else f"{hm} KiB vs {cm} KiB"))
    r = ratio(p["median_ms"], hutch_ms)
    goals.append(goal("hutch >= 30x faster than podman", r, None if r is None else r >= 30,
                      "n/a" if r is None else f"podman/hutch = {r:.1f}x"))

    floor = rss.get("floor", [])
    results = {
        "env": env,
        "tools": tools,
        "rss_floor_kib": int(statistics.median(floor)) if floor else None,
        "goals": goals,
        "hutch_to_crun_per_round": round_ratios,
        "cgroup_leftovers_removed": leftovers,
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
    print()
    print("\n".join(out))
    print()
    for n in notes:
        print(n)
    print("× hutch / × crun: the tool's median divided by hutch's / crun's (above 1 = slower).")
    print(f"peak RSS: median over runs of the largest single-process peak RSS in the tool's "
          f"process tree; the method's floor (/bin/true) is {results['rss_floor_kib']} KiB.")
    busy = busy_note(env)
    if busy:
        print("warning: " + busy)
    for g in goals:
        mark = {True: "met", False: "NOT met", None: "n/a"}[g["met"]]
        print(f"goal: {g['goal']}: {mark} ({g['shown']})")
    if leftovers:
        print("cgroups left behind by the tools and removed: " + ", ".join(leftovers))
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
    if busy:
        md.append(f"- **warning: {busy}**")
    md.append("")
    md.append("## Goals")
    md.append("")
    for g in goals:
        mark = {True: "met", False: "**NOT met**", None: "n/a"}[g["met"]]
        md.append(f"- {g['goal']}: {mark} ({g['shown']})")
    md.append("")
    md.append("## Commands")
    md.append("")
    for t in tools:
        md.append(f"- {t['tool']}: `{t['command']}`")
    md.append("")
    md.append("## Versions")
    md.append("")
    for k, v in sorted(env.items()):
        if k.endswith("_version"):
            md.append(f"- {v}")
    md.append("")
    with open(os.path.join(work, "results.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md))

    if failures:
        return 1
    if os.environ.get("BENCH_ENFORCE_GOALS") == "1" and any(g["met"] is False for g in goals):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
