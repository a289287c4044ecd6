#!/usr/bin/env bash
# Build benchmark (issue 14), see bench/README.md, "Build benchmark": one Containerfile of
# ten steps (several RUN and COPY) on the busybox image over a context of about 3000 files,
# built by hutch and by `podman build` (and `buildah bud` when installed), rounds
# interleaved (the order flips each round). Each round, each tool: a cold build
# (`--no-cache`: every step runs), a fully cached rebuild, and a rebuild after one copied
# file changed (a new content each round, so no tool has it cached). Goal: the cached
# rebuild under 100 ms and well ahead of podman's.
#
# Root only (podman runs rootful, with runc: crun refuses this machine's hybrid cgroup
# layout), in a network namespace of its own; RUN steps have no network (`--network none`)
# and nothing is pulled (the base image goes to podman by `hutch image save` + `podman load`).
# Knobs: BENCH_BUILD_ROUNDS (5), BENCH_BUILD_FILES (3000), BENCH_WORK (build/bench).
# Exit: 0, 1 when a build failed or was not what it should be, 2 on bad setup.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
export WORK=${BENCH_WORK:-$REPO/build/bench}/build
export HUTCH_SRC=${HUTCH_SRC:-${HUTCH:-$REPO/build/hutch}}
export HUTCH=$WORK/bin/hutch # a copy: a rebuild during the run changes nothing
export ROUNDS=${BENCH_BUILD_ROUNDS:-5}
export NFILES=${BENCH_BUILD_FILES:-3000}
PYTHON=${PYTHON:-/usr/bin/python3}

log() { printf 'bench/build: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 2
}

[[ $ROUNDS =~ ^[1-9][0-9]*$ && $NFILES =~ ^[1-9][0-9]*$ ]] ||
	die "BENCH_BUILD_ROUNDS and BENCH_BUILD_FILES are positive integers"
[[ $(id -u) -eq 0 ]] || die "run me as root (podman build runs rootful here)"
[[ -x $HUTCH_SRC ]] || die "no hutch binary at $HUTCH_SRC; run 'make build/hutch'"
command -v podman >/dev/null || die "podman not found (apt-get install podman)"
command -v runc >/dev/null || die "runc not found (apt-get install runc)"

# In a network namespace of our own: whatever a tool sets up stays there.
if [[ ${BENCH_BUILD_NETNS:-} != 1 ]]; then
	export BENCH_BUILD_NETNS=1
	exec unshare --net -- "$0" "$@"
fi
ip link set lo up

mkdir -p "$WORK"
exec 9>"$WORK/.lock"
flock -n 9 || die "another bench/build.sh is using $WORK"
# podman's run root: short, under /tmp (its sockets' paths have a length limit)
export PRUN=/tmp/hutch-bench-build-run
PODMAN=(podman --root "$WORK/podman" --runroot "$PRUN" --storage-driver overlay
	--cgroup-manager cgroupfs --events-backend none)
cleanup() {
	"${PODMAN[@]}" system reset -f >/dev/null 2>&1 || true
	if command -v buildah >/dev/null && [[ -d $WORK/buildah ]]; then
		buildah --root "$WORK/buildah" --runroot /tmp/hutch-bench-buildah-run \
			--storage-driver overlay rmi -a -f >/dev/null 2>&1 || true
	fi
	rm -rf "${WORK:?}/podman" "$PRUN" "${WORK:?}/buildah" /tmp/hutch-bench-buildah-run
	"$HUTCH" --root "$WORK/root" image rm bench-app >/dev/null 2>&1 || true
	"$HUTCH" --root "$WORK/root" builder prune --all >/dev/null 2>&1 || true
	"$HUTCH" --root "$WORK/root" image prune >/dev/null 2>&1 || true
}
[[ -d $WORK/podman || -d $PRUN ]] && cleanup # a run that was killed
trap cleanup EXIT
rm -rf "${WORK:?}"/{bin,root,ctx,results.md}
mkdir -p "$WORK/bin"
install -m 0755 "$HUTCH_SRC" "$HUTCH"

log "busybox image, for hutch and for podman"
sh "$REPO/tests/lib/make-busybox-rootfs.sh" "$WORK/rootfs" "$WORK/rootfs.tar" >/dev/null
"$HUTCH" --root "$WORK/root" image import "$WORK/rootfs.tar" bb >/dev/null
"$HUTCH" --root "$WORK/root" image save --format docker -o "$WORK/bb.tar" bb
"${PODMAN[@]}" load -q -i "$WORK/bb.tar" >/dev/null

export BUILDAH=
command -v buildah >/dev/null && BUILDAH=$(command -v buildah)
export PODMAN_CMD="${PODMAN[*]}"

"$PYTHON" - <<'EOF'
import os, random, re, statistics, subprocess, sys, time

work, hutch = os.environ["WORK"], os.environ["HUTCH"]
rounds, nfiles = int(os.environ["ROUNDS"]), int(os.environ["NFILES"])
podman = os.environ["PODMAN_CMD"].split()
ctx = f"{work}/ctx"

# -- the context: an application as people have them, about NFILES files
rng = random.Random(14)
def write(rel, data):
    p = os.path.join(ctx, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
n_assets = nfiles // 6
n_src = nfiles - n_assets - 3
for i in range(n_src):  # sources: 40 packages of small text files
    body = "".join(f"def f{j}(x):\n    return x * {rng.randrange(1000)} + {j}\n\n"
                   for j in range(rng.randrange(5, 60)))
    write(f"src/pkg{i % 40:02d}/mod{i:04d}.py", f"# module {i}\n" + body)
for i in range(n_assets):  # assets: binary files of 1-64 KiB
    write(f"assets/{i % 10}/asset{i:04d}.bin", rng.randbytes(rng.randrange(1024, 65536)))
write("requirements.txt", "".join(f"dep{i}\n" for i in range(30)))
write("config.ini", "[app]\nport = 8080\n")
write(".dockerignore", "Containerfile\n*.pyc\n")
write("Containerfile", """FROM bb
ARG APP_VERSION=1.0
ENV APP_HOME=/app PATH=/app/bin:/usr/local/bin:/usr/bin:/bin
WORKDIR /app
COPY requirements.txt ./
RUN mkdir -p deps && while read d; do echo "$APP_VERSION" > "deps/$d"; done < requirements.txt
COPY assets/ ./assets/
RUN find assets -type f | wc -l > assets.count && du -s assets > assets.size
COPY src/ ./src/
RUN find src -name '*.py' | sort > manifest && wc -l src/pkg00/*.py > pkg00.lines
COPY config.ini /etc/app/config.ini
USER app
CMD ["cat", "/app/manifest"]
""")
nsteps = 12  # after FROM
changed = "src/pkg07/mod0047.py" if n_src > 47 else "src/pkg00/mod0000.py"
changed_path = os.path.join(ctx, changed)
original = open(changed_path).read()
size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ctx) for f in fs)
count = sum(len(fs) for _, _, fs in os.walk(ctx))

tools = {
    "hutch": lambda *a: [hutch, "--root", f"{work}/root", "build", "--network", "none",
                         "-t", "bench-app", *a, ctx],
    "podman": lambda *a: podman + ["build", "--runtime", "runc", "--isolation", "oci",
                                   "--network", "none", "--pull=never", "-t", "bench-app",
                                   *a, ctx],
}
if os.environ.get("BUILDAH"):
    tools["buildah"] = lambda *a: [os.environ["BUILDAH"], "--root", f"{work}/buildah",
                                   "--runroot", "/tmp/hutch-bench-buildah-run",
                                   "--storage-driver", "overlay", "bud", "--runtime", "runc",
                                   "--isolation", "oci", "--network", "none", "--pull=never",
                                   "--layers", "-t", "bench-app", *a, ctx]
failed = []
if "buildah" in tools:  # its own store, the same base image
    subprocess.run(tools["buildah"]()[:7] + ["pull", "-q", f"docker-archive:{work}/bb.tar"],
                   capture_output=True, check=True)

def build(tool, *args):
    t0 = time.monotonic()
    cp = subprocess.run(tools[tool](*args), capture_output=True, text=True, timeout=900)
    took = time.monotonic() - t0
    if cp.returncode != 0:
        failed.append(f"{tool} {args}: exit {cp.returncode}: {cp.stderr[-2000:]}")
    return took, cp.stdout + cp.stderr

def cached_steps(tool, out):
    if tool == "hutch":
        return len(re.findall(r"^--> CACHED$", out, re.M))
    return len(re.findall(r"^--> Using cache", out, re.M))

def untimed_cleanup(tool):
    # after each round, each tool is left with the base image alone (not timed): old
    # builds' intermediate images made podman's next rebuild miss its cache now and then
    if tool == "hutch":
        for a in (["image", "rm", "bench-app"], ["builder", "prune", "--all"],
                  ["image", "prune"]):
            subprocess.run([hutch, "--root", f"{work}/root", *a], capture_output=True)
    elif tool == "podman":
        subprocess.run(podman + ["image", "prune", "-a", "-f"], capture_output=True)
        subprocess.run(podman + ["load", "-q", "-i", f"{work}/bb.tar"], capture_output=True,
                       check=True)
    else:
        subprocess.run(tools[tool]()[:7] + ["rmi", "-a", "-f"], capture_output=True)
        subprocess.run(tools[tool]()[:7] + ["pull", "-q", f"docker-archive:{work}/bb.tar"],
                       capture_output=True, check=True)

print(f"bench/build: context {count} files, {size / 2**20:.1f} MiB; {nsteps + 1} steps; "
      f"{rounds} rounds of {', '.join(tools)}", file=sys.stderr)
res = {t: {"cold": [], "cached": [], "changed": []} for t in tools}
for r in range(rounds):
    order = list(tools) if r % 2 == 0 else list(tools)[::-1]
    for tool in order:
        with open(changed_path, "w") as f:
            f.write(original)
        cold, out = build(tool, "--no-cache")
        if cached_steps(tool, out):
            failed.append(f"{tool}: the --no-cache build used its cache")
        cached, out = build(tool)
        if cached_steps(tool, out) != nsteps:
            failed.append(f"{tool}: the rebuild was not fully cached "
                          f"({cached_steps(tool, out)} of {nsteps}):\n{out[-3000:]}")
        with open(changed_path, "w") as f:
            f.write(original + f"# round {r}\n")
        ch, out = build(tool)
        # COPY src/ and the four steps after it run again, the 7 before are cached
        if cached_steps(tool, out) != 7:
            failed.append(f"{tool}: after one file changed, {cached_steps(tool, out)} steps "
                          f"were cached, not 7:\n{out[-3000:]}")
        for k, v in (("cold", cold), ("cached", cached), ("changed", ch)):
            res[tool][k].append(v)
        print(f"  round {r + 1} {tool}: cold {cold:.3f} s, cached {cached:.3f} s, "
              f"changed {ch:.3f} s", file=sys.stderr)
        untimed_cleanup(tool)
with open(changed_path, "w") as f:
    f.write(original)

load = open("/proc/loadavg").read().split()[:3]
lines = [f"Context: {count} files, {size / 2**20:.1f} MiB; Containerfile of {nsteps + 1} "
         f"steps; {rounds} rounds, order flipped each round; load {' '.join(load)}.", "",
         "| tool | cold, median (min-max) | fully cached | one file changed |",
         "|---|---:|---:|---:|"]
fmt = lambda v: (f"{statistics.median(v) * 1000:.0f} ms ({min(v) * 1000:.0f}-"
                 f"{max(v) * 1000:.0f})")
for t in tools:
    lines.append(f"| {t} | {fmt(res[t]['cold'])} | {fmt(res[t]['cached'])} | "
                 f"{fmt(res[t]['changed'])} |")
lines += ["", "| other / hutch (median of the rounds' ratios) | cold | fully cached | "
          "one file changed |", "|---|---:|---:|---:|"]
for t in tools:
    if t == "hutch":
        continue
    ratios = [f"{statistics.median(a / b for a, b in zip(res[t][k], res['hutch'][k])):.1f}x"
              for k in ("cold", "cached", "changed")]
    lines.append(f"| {t} | {' | '.join(ratios)} |")
cached = statistics.median(res["hutch"]["cached"])
lines += ["", f"Goal, fully cached rebuild under 100 ms: "
          f"{'met' if cached < 0.1 else 'not met'} ({cached * 1000:.0f} ms)."]
text = "\n".join(lines) + "\n"
open(f"{work}/results.md", "w").write(text)
print(text)
if failed:
    print("bench/build: FAILED:\n" + "\n".join(failed), file=sys.stderr)
    sys.exit(1)
EOF
