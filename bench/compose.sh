#!/usr/bin/env bash
# Compose benchmarks (issue 11), see bench/README.md, "Compose benchmark":
# 1. `hutch stack config` of a 200-service compose file (anchors, merge keys, interpolation,
#    environment maps, health checks, depends_on with conditions), as INI and as JSON: goal
#    under 20 ms (median). Against `docker compose config` when docker has its compose
#    plugin, else `podman-compose --dry-run up -d` (podman-compose 1.0.3 has no `config`:
#    dry-run reads, merges and resolves the file the same way and prints the podman
#    commands, starting nothing). Each round runs every tool, one after the other.
# 2. `hutch up -d --wait` then `down -t 0` of 50 services from compose.yaml against the same
#    stack from the hutch.ini that `hutch stack config` writes of it, in interleaved rounds
#    (the order flips each round): goal within 5%. As root in a private mount and network
#    namespace (anything a stack's network makes stays there); as another user, rootless.
#
# Knobs: BENCH_COMPOSE_ROUNDS (10), BENCH_COMPOSE_RUNS (hutch runs per round and format, 20),
# BENCH_COMPOSE_UP_ROUNDS (12), BENCH_WORK (build/bench). Exit: 0, 1 when a tool failed,
# 2 on bad setup.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
export WORK=${BENCH_WORK:-$REPO/build/bench}/compose
HUTCH_SRC=${HUTCH_SRC:-${HUTCH:-$REPO/build/hutch}}
export HUTCH=$WORK/bin/hutch # a copy: a rebuild during the run changes nothing
export ROUNDS=${BENCH_COMPOSE_ROUNDS:-10}
export RUNS=${BENCH_COMPOSE_RUNS:-20}
export UP_ROUNDS=${BENCH_COMPOSE_UP_ROUNDS:-12}
PYTHON=${PYTHON:-/usr/bin/python3}

log() { printf 'bench/compose: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 2
}

[[ $ROUNDS =~ ^[1-9][0-9]*$ && $RUNS =~ ^[1-9][0-9]*$ && $UP_ROUNDS =~ ^[1-9][0-9]*$ ]] ||
	die "BENCH_COMPOSE_ROUNDS, _RUNS and _UP_ROUNDS are positive integers"
[[ -x $HUTCH_SRC ]] || die "no hutch binary at $HUTCH_SRC; run 'make build/hutch'"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
mkdir -p "$WORK"
exec 9>"$WORK/.lock"
flock -n 9 || die "another bench/compose.sh is using $WORK"
if [[ -d $WORK/root ]]; then # a run that was killed: its stacks go first
	for f in "$WORK"/stacks/*/{compose.yaml,hutch.ini}; do
		[[ -f $f ]] && "$HUTCH" --root "$WORK/root" down -f "$f" -t 0 >/dev/null 2>&1 || true
	done
fi
rm -rf "${WORK:?}"/{bin,root,stacks,results.md}
mkdir -p "$WORK/bin" "$WORK/stacks"
install -m 0755 "$HUTCH_SRC" "$HUTCH"

log "busybox image"
sh "$REPO/tests/lib/make-busybox-rootfs.sh" "$WORK/rootfs" "$WORK/rootfs.tar" >/dev/null
"$HUTCH" --root "$WORK/root" image import "$WORK/rootfs.tar" bb >/dev/null

# The peer for `stack config`.
export PEER=none
if docker compose version >/dev/null 2>&1; then
	PEER=docker
elif command -v podman-compose >/dev/null; then
	PEER=podman-compose
fi

driver() {
	"$PYTHON" - <<-'EOF'
		import json, os, statistics, subprocess, sys, time

		work, hutch = os.environ["WORK"], os.environ["HUTCH"]
		rounds, runs, up_rounds = (int(os.environ[k]) for k in ("ROUNDS", "RUNS", "UP_ROUNDS"))
		peer = os.environ["PEER"]
		H = [hutch, "--root", f"{work}/root"]
		env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
		env["TAG"] = "latest"
		failed = []

		def write(path, text):
		    os.makedirs(os.path.dirname(path), exist_ok=True)
		    with open(path, "w") as f:
		        f.write(text)

		# 200 services as people write them: shared defaults by anchor and merge key,
		# interpolation, an environment map, a health check, dependencies with conditions.
		def compose_file(n, image, long_form):
		    out = ["name: big",
		           "x-defaults: &defaults",
		           "  image: " + image,
		           "  restart: unless-stopped",
		           "  stop_grace_period: 5s",
		           "  environment: &env",
		           "    TZ: UTC",
		           "    LOG_LEVEL: ${LOG_LEVEL:-info}",
		           "services:"]
		    for i in range(n):
		        out += [f"  s{i:03d}:", "    <<: *defaults", "    command: [sleep, '1000']"]
		        if long_form:
		            out += ["    environment:",
		                    "      <<: *env",
		                    f"      SERVICE: s{i:03d}",
		                    f"      PEERS: s{(i + 1) % n:03d},s{(i + 2) % n:03d}",
		                    "    labels:",
		                    f"      com.example.index: '{i}'",
		                    "    healthcheck:",
		                    "      test: [CMD, 'true']",
		                    "      interval: 1s",
		                    "      start_interval: 100ms",
		                    "    tmpfs: [/run]",
		                    "    ulimits: {nofile: {soft: 1024, hard: 2048}}"]
		            if i % 10:  # groups of ten wait for their first one
		                out += ["    depends_on:",
		                        f"      s{i - i % 10:03d}: {{condition: service_healthy}}"]
		        elif i % 10:
		            out += ["    depends_on:", f"      s{i - i % 10:03d}: {{condition: service_started}}"]
		    return "\n".join(out) + "\n"

		def run(cmd, cwd, check=True, timeout=180):
		    t = time.perf_counter()
		    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, timeout=timeout,
		                       stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
		    dt = time.perf_counter() - t
		    if check and p.returncode:
		        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()[-300:]}")
		    return dt, p

		def log(msg):
		    print(f"bench/compose: {msg}", file=sys.stderr, flush=True)

		def ms(v):
		    return f"{v * 1000:.2f} ms"

		report = []
		# ---- 1. stack config of 200 services -------------------------------------------
		big = f"{work}/stacks/big"
		write(f"{big}/compose.yaml", compose_file(200, "bb:${TAG}", True))
		_, p = run(H + ["stack", "config"], big)
		nlines = len(p.stdout.splitlines())
		floor, ini, js, other = [], [], [], []
		peer_cmd = {"docker": ["docker", "compose", "config"],
		            "podman-compose": ["podman-compose", "--dry-run", "up", "-d"]}.get(peer)
		log(f"stack config: {rounds} rounds")
		for r in range(rounds):
		    for _ in range(runs):
		        floor.append(run(["/bin/true"], big)[0])
		        ini.append(run(H + ["stack", "config"], big)[0])
		        js.append(run(H + ["stack", "config", "--format", "json"], big)[0])
		    if peer_cmd:
		        try:
		            other.append(run(peer_cmd, big)[0])
		        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
		            failed.append(f"{peer}: {e}")
		            peer_cmd = None
		med = statistics.median
		goal = "met" if med(ini) < 0.020 and med(js) < 0.020 else "not met"
		report += ["## `hutch stack config`, a 200-service compose file", "",
		           f"{rounds} rounds of {runs} runs per format (the peer once a round); "
		           f"the file: {os.path.getsize(big + '/compose.yaml')} bytes, "
		           f"its hutch.ini {nlines} lines. Times are wall clock from the driver's "
		           "fork to the exit; `/bin/true` the same way is the floor.", "",
		           "| command | median | min | max |", "|---|---:|---:|---:|",
		           f"| `/bin/true` (the floor) | {ms(med(floor))} | {ms(min(floor))} | {ms(max(floor))} |",
		           f"| `hutch stack config` (INI) | {ms(med(ini))} | {ms(min(ini))} | {ms(max(ini))} |",
		           f"| `hutch stack config --format json` | {ms(med(js))} | {ms(min(js))} | {ms(max(js))} |"]
		if other:
		    report.append(f"| `{' '.join(peer_cmd or [peer])}` | {ms(med(other))} | "
		                  f"{ms(min(other))} | {ms(max(other))} |")
		    report += ["", f"hutch (INI) is {med(other) / med(ini):.1f}x faster than {peer}."]
		else:
		    report += ["", "No peer: neither `docker compose` nor podman-compose is installed."
		               if peer == "none" else f"The peer failed: {failed[-1]}"]
		report += ["", f"Goal, under 20 ms (median, both formats): {goal}.", ""]

		# ---- 2. up --wait: compose.yaml against its hutch.ini --------------------------
		n = 50
		cdir, idir = f"{work}/stacks/compose", f"{work}/stacks/ini"
		write(f"{cdir}/compose.yaml", compose_file(n, "bb", False).replace("name: big", "name: viacompose"))
		_, p = run(H + ["stack", "config", "-p", "viaini"], cdir)
		write(f"{idir}/hutch.ini", p.stdout)
		stacks = {"compose": (cdir, "compose.yaml"), "ini": (idir, "hutch.ini")}
		times = {"compose": [], "ini": []}
		downs = {"compose": [], "ini": []}
		rows = []
		log(f"up --wait: {up_rounds} rounds")
		try:
		    for r in range(up_rounds):
		        order = ["compose", "ini"] if r % 2 == 0 else ["ini", "compose"]
		        for k in order:
		            d, f = stacks[k]
		            dt, _ = run(H + ["up", "-f", f, "-d", "--wait", "--wait-timeout", "120"], d)
		            _, p = run(H + ["stack", "ps", "-f", f, "--format", "json"], d)
		            up = sum(1 for l in p.stdout.splitlines() if json.loads(l).get("state") == "running")
		            if up != n:
		                raise RuntimeError(f"{k}: {up} of {n} replicas running after up --wait")
		            times[k].append(dt)
		            downs[k].append(run(H + ["down", "-f", f, "-t", "0"], d)[0])
		        rows.append(f"| {r + 1} | {' then '.join(order)} | {times['compose'][-1]:.3f} s | "
		                    f"{times['ini'][-1]:.3f} s | {times['compose'][-1] / times['ini'][-1]:.3f} |")
		except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as e:
		    failed.append(f"up: {e}")
		    for d, f in stacks.values():
		        subprocess.run(H + ["down", "-f", f, "-t", "0"], cwd=d, env=env,
		                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
		report += [f"## `up -d --wait` of {n} services: compose.yaml against its hutch.ini", "",
		           "The hutch.ini is `hutch stack config` of the compose.yaml; each round brings "
		           "both up and down (`down -t 0`), in the order shown.", "",
		           "| round | order | compose.yaml | hutch.ini | ratio |", "|---:|---|---:|---:|---:|"]
		report += rows
		if times["ini"] and len(times["compose"]) == len(times["ini"]):
		    # each round's pair ran back to back: the median of their ratios is the figure
		    # least moved by the machine's drift (disk churn, other load)
		    pairs = sorted(c / i for c, i in zip(times["compose"], times["ini"]))
		    ratio = med(pairs)
		    # the one step that differs: reading the file (the CLI and the supervisor each
		    # read it once)
		    rc, ri = [], []
		    for _ in range(runs):
		        rc.append(run(H + ["stack", "config", "-q", "-f", "compose.yaml"], cdir)[0])
		        ri.append(run(H + ["stack", "config", "-q", "-f", "hutch.ini"], idir)[0])
		    report += ["", f"Median `up --wait`: compose.yaml {med(times['compose']):.3f} s, hutch.ini "
		               f"{med(times['ini']):.3f} s; the median of the rounds' ratios "
		               f"{ratio:.3f}x (rounds {pairs[0]:.2f}-{pairs[-1]:.2f}); `down -t 0` "
		               f"{med(downs['compose']):.3f} s against {med(downs['ini']):.3f} s. "
		               f"Reading the file alone (`stack config -q`, {runs} runs each): "
		               f"compose.yaml {ms(med(rc))}, hutch.ini {ms(med(ri))}. "
		               f"Goal, within 5% (the median of the ratios): "
		               f"{'met' if ratio <= 1.05 else 'not met'}."]
		for f in failed:
		    report.append(f"\nFAILED: {f}")
		write(f"{work}/results.md", "\n".join(report) + "\n")
		print("\n".join(report))
		sys.exit(1 if failed else 0)
	EOF
}

rc=0
if [[ $(id -u) == 0 ]]; then
	# a private mount and network namespace: what the stacks' networks make stays there
	export -f driver
	export PYTHON
	unshare --mount --net --propagation private -- bash -c 'ip link set lo up; driver' || rc=$?
else
	driver || rc=$?
fi
log "results in $WORK/results.md"
exit "$rc"
