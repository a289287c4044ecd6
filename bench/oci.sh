#!/usr/bin/env bash
# OCI runtime benchmark (issue 12): hutch-oci as the runtime an engine calls, against crun
# and runc, side by side in interleaved rounds (the machine is shared: ratios, not
# absolutes).
#   cycle:  `create` + `start` + `delete --force` of one bundle (a busybox rootfs and the
#           config.json of `runc spec` through bench/bundle.py, as bench/run.sh's), each
#           runtime with a state root of its own;
#   podman: `podman run --rm --network none --rootfs ROOTFS true` with `--runtime` each of
#           them (conmon calls create, start, state and delete).
# See bench/README.md, "OCI runtime benchmark".
#
# Root only. Everything runs in one private mount and network namespace of its own
# (unshare), with cgroup2 mounted at /sys/fs/cgroup in there (crun refuses a hybrid
# host's layout; no v1 hierarchy is visible to or touched by any runtime) and podman's
# state on a tmpfs /run of its own.
#
# Exit status: 0 when everything ran; 1 when a runtime failed (the rest is still
# reported); 2 on bad setup.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
export WORK=${BENCH_WORK:-$REPO/build/bench}/oci
export HUTCH_SRC=${HUTCH_SRC:-${HUTCH:-$REPO/build/hutch}}
export ROUNDS=${BENCH_OCI_ROUNDS:-5}
export RUNS=${BENCH_OCI_RUNS:-20}              # cycles per runtime and round
export PODMAN_RUNS=${BENCH_OCI_PODMAN_RUNS:-5} # podman runs per runtime and round
read -ra SKIP <<<"${BENCH_SKIP:-}"
PYTHON=${PYTHON:-/usr/bin/python3}

log() { printf 'bench/oci: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 2
}
skipped() { [[ " ${SKIP[*]} " == *" $1 "* || " ${SKIP[*]} " == *" oci "* ]]; }

inner() {
	[[ $(readlink /proc/self/ns/mnt) != "$HOST_MNTNS" ]] || die "not in a private mount namespace"
	[[ $(readlink /proc/self/ns/net) != "$HOST_NETNS" ]] || die "not in a private network namespace"
	if [[ $(stat -fc %T /sys/fs/cgroup) != cgroup2fs ]]; then
		mount -t cgroup2 cgroup2 /sys/fs/cgroup # in here only
	fi
	mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/containers
	ip link set lo up
	local status=0
	declare -A BIN=([hutch - oci]="$WORK/bin/hutch-oci" [crun]=crun [runc]=runc)
	local P="podman --root $WORK/podman/root --runroot $WORK/podman/run --tmpdir $WORK/podman/tmp"
	P+=" --cgroup-manager cgroupfs --events-backend none"
	# as bench/run.sh runs podman: limits this machine allows
	local PO="--network none --pids-limit -1 --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
	declare -A CMD=()
	local rts=() r t
	for r in "hutch - oci" crun runc; do
		local bin=${BIN[$r]} name=${r// /} root="$WORK/state/${r// /}"
		command -v "$bin" >/dev/null || {
			log "$r not found (make bench-deps): left out"
			status=1
			continue
		}
		mkdir -p "$root"
		CMD[cycle:$r]="$bin --root $root create --bundle $WORK/bundle c >/dev/null 2>&1 </dev/null && $bin --root $root start c && $bin --root $root delete --force c"
		if ! sh -c "${CMD[cycle:$r]}" 2>"$WORK/logs/$name-first.log"; then
			log "$r failed a first cycle ($(tail -c 300 "$WORK/logs/$name-first.log")): left out"
			"$bin" --root "$root" delete --force c >/dev/null 2>&1 || true
			status=1
			continue
		fi
		rts+=("$r")
		if ! skipped podman && command -v podman >/dev/null; then
			CMD[podman:$r]="$P --runtime $(command -v "$bin") run --rm $PO --rootfs $WORK/rootfs-podman /bin/true"
			if ! sh -c "${CMD[podman:$r]}" >/dev/null 2>"$WORK/logs/podman-$name-first.log"; then
				log "podman --runtime $r failed a first run: left out of the podman part"
				unset "CMD[podman:$r]"
				status=1
			fi
		fi
	done
	: >"$WORK/times.tsv"
	for ((round = 1; round <= ROUNDS; round++)); do
		for r in "${rts[@]}"; do
			for t in cycle podman; do
				[[ -n ${CMD[$t:$r]:-} ]] || continue
				local runs=$RUNS
				[[ $t == cycle ]] || runs=$PODMAN_RUNS
				hyperfine -w 1 -r "$runs" --export-json "$WORK/h.json" "${CMD[$t:$r]}" \
					>/dev/null 2>>"$WORK/logs/hyperfine.log" || {
					log "$t $r failed in round $round"
					status=1
					continue
				}
				"$PYTHON" -c 'import json, sys
for t in json.load(open(sys.argv[1]))["results"][0]["times"]:
    print(f"{sys.argv[2]}\t{sys.argv[3]}\t{sys.argv[4]}\t{t * 1000:.3f}")' \
					"$WORK/h.json" "$t" "$r" "$round" >>"$WORK/times.tsv"
			done
		done
		log "round $round of $ROUNDS done"
	done
	for r in "${rts[@]}"; do
		"${BIN[$r]}" --root "$WORK/state/${r// /}" delete --force c >/dev/null 2>&1 || true
	done
	if command -v podman >/dev/null; then
		$P rm --all --force --time 0 >/dev/null 2>&1 || true
	fi
	return $status
}

report() {
	"$PYTHON" - "$WORK" <<-'EOF'
		import statistics, sys
		from collections import defaultdict
		work = sys.argv[1]
		t = defaultdict(list)
		per_round = defaultdict(lambda: defaultdict(list))
		for line in open(f"{work}/times.tsv"):
		    kind, rt, rnd, ms = line.rstrip("\n").split("\t")
		    t[kind, rt].append(float(ms))
		    per_round[kind, rnd][rt].append(float(ms))
		out = ["## OCI runtime benchmark", ""]
		for kind, title in (("cycle", "create + start + delete --force of a bundle (`true`)"),
		                    ("podman", "`podman --runtime R run --rm --network none --rootfs ... true`")):
		    rts = [r for r in ("hutch - oci", "crun", "runc") if (kind, r) in t]
		    if not rts:
		        continue
		    base = "crun" if "crun" in rts else "runc" if "runc" in rts else None
		    out += [f"### {title}", "",
		            f"| runtime | runs | median ms | vs {base}: median of the rounds' ratios (range) |",
		            "|---|---|---|---|"]
		    for r in rts:
		        med = statistics.median(t[kind, r])
		        rr = [statistics.median(d[r]) / statistics.median(d[base])
		              for (k, _), d in per_round.items() if k == kind and d.get(r) and d.get(base)]
		        ratio = f"{statistics.median(rr):.2f}x ({min(rr):.2f}-{max(rr):.2f})" if rr else "-"
		        out.append(f"| {r.replace(' ', '')} | {len(t[kind, r])} | {med:.1f} | {ratio} |")
		    out.append("")
		open(f"{work}/results.md", "w").write("\n".join(out) + "\n")
		print("\n".join(out))
	EOF
}

if [[ ${1:-} == __inner ]]; then
	inner
	exit
fi

[[ $(id -u) == 0 ]] || {
	log "not root: the OCI runtime benchmark compares rootful runtimes; skipped"
	exit 0
}
skipped oci && exit 0
command -v hyperfine >/dev/null || die "hyperfine not found; run 'make bench-deps'"
[[ -x $HUTCH_SRC ]] || die "no hutch binary at $HUTCH_SRC; run 'make build/hutch'"
rm -rf "$WORK"
mkdir -p "$WORK"/{bin,logs,state,bundle,podman/{root,run,tmp}}
install -m 0755 "$HUTCH_SRC" "$WORK/bin/hutch" # a rebuild during the run changes nothing
ln -s hutch "$WORK/bin/hutch-oci"
sh "$REPO/tests/lib/make-busybox-rootfs.sh" "$WORK/bundle/rootfs" "$WORK/rootfs.tar" >/dev/null
cp -a "$WORK/bundle/rootfs" "$WORK/rootfs-podman"
# runc's default config.json (hutch-oci's own where runc is missing) made into the
# benchmark's bundle as bench/run.sh makes its own (bench/bundle.py: `true`, no terminal,
# the rootfs read-only, no linux.resources, whose device rule crun cannot load here)
if command -v runc >/dev/null; then
	(cd "$WORK/bundle" && runc spec)
else
	"$WORK/bin/hutch-oci" spec --bundle "$WORK/bundle"
fi
"$PYTHON" "$BENCH_DIR/bundle.py" "$WORK/bundle/config.json" "$WORK/bundle/rootfs" /bin/true
HOST_MNTNS=$(readlink /proc/self/ns/mnt)
HOST_NETNS=$(readlink /proc/self/ns/net)
export HOST_MNTNS HOST_NETNS
unshare --mount --net --propagation private -- bash "$BENCH_DIR/oci.sh" __inner || rc=$?
report
exit "${rc:-0}"
