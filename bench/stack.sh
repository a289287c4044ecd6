#!/usr/bin/env bash
# Stack benchmarks (issue 9): `hutch up -d --wait` then `down` of 50 trivial services against
# podman-compose and against the floor (50 x `hutch run -d`, one after the other and eight at
# a time); the memory that stays with a stack of 50 (supervisor + whatever stays with each
# container, PSS) against podman's (conmon per container + aardvark-dns); restart latency (a
# crash to the new process running, against the backoff); idle cost (supervisor syscalls and
# wakeups with 50 services and no health checks, CPU with 50 tcp probes at 1 s).
# See bench/README.md, "Stack benchmark".
#
# As root: everything that starts a container runs in one private mount and network
# namespace (cgroup2 mounted over /sys/fs/cgroup there, as bench/run.sh does; podman's
# bridge, veths, firewall rules and aardvark-dns exist only in that network namespace), under
# the subreaper bench/reap.c. As another user: hutch rootless only (podman-compose skipped),
# under the same subreaper, without the namespaces.
#
# Exit status: 0 when every tool ran; 1 when one failed (the others are still measured and
# reported); 2 on bad setup; 130 when interrupted (after taking every stack down).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
export WORK=${BENCH_WORK:-$REPO/build/bench}/stack
export HUTCH_SRC=${HUTCH_SRC:-${HUTCH:-$REPO/build/hutch}}
HUTCH=$WORK/bin/hutch # a copy: a rebuild of build/hutch during the run changes nothing
BASELINE=$WORK/bin/hutch-baseline
ROUNDS=${BENCH_STACK_ROUNDS:-5}
SERVICES=${BENCH_STACK_SERVICES:-50}
PODMAN_ROUNDS=${BENCH_STACK_PODMAN_ROUNDS:-1} # podman-compose sleeps 1 s per service
RESTARTS=${BENCH_STACK_RESTARTS:-6}           # crashes per restart round (backoff 0.1-3.2 s)
RESTART_ROUNDS=${BENCH_STACK_RESTART_ROUNDS:-3}
IDLE_SECONDS=${BENCH_STACK_IDLE_SECONDS:-10}
CPU_SECONDS=${BENCH_STACK_CPU_SECONDS:-30}
read -ra PHASES <<<"${BENCH_STACK_PHASES:-updown restart idle cpu}"
# another hutch binary (an older build, say) timed in the restart rounds too, its rounds
# interleaved with this one's: before/after figures from the same minutes of a noisy machine
BASELINE_SRC=${BENCH_STACK_BASELINE:-}
PARALLEL=8 # the floor's "eight at a time"
read -ra SKIP <<<"${BENCH_SKIP:-}"
PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHON

HROOT=$WORK/hutch-root
PODMAN_DIR=$WORK/podman
LOGS=$WORK/logs
DATA=$WORK/data
REAP=$WORK/reap
STACKS=$WORK/stacks
PODMAN_WRAP=$WORK/bin/podman
PODMAN_RUN_ARGS="--runtime runc --pids-limit -1 --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
H=("$HUTCH" --root "$HROOT")

log() { printf 'bench/stack: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 2
}
phase() { [[ " ${PHASES[*]} " == *" $1 "* ]]; }
skipped() { [[ " ${SKIP[*]} " == *" $1 "* || " ${SKIP[*]} " == *" stack "* ]]; }
now() { echo "${EPOCHREALTIME/./}"; } # microseconds, no fork
last_line() { tail -n 1 "$1" 2>/dev/null | tr -d '\r' | cut -c1-200; }

# status.tsv: "key<TAB>ok|FAILED|skipped<TAB>reason"
set_status() {
	printf '%s\t%s\t%s\n' "$1" "$2" "${3:-}" >>"$DATA/status.tsv"
	[[ $2 == ok ]] || log "$1: $2: ${3:-}"
}
failed() { grep -q -P "^\Q$1\E\tFAILED\t" "$DATA/status.tsv" 2>/dev/null; }

# --- outer: builds files under $WORK, then runs the inner phase --------------------------

build_rootfs() {
	local rootfs=$WORK/rootfs applet
	mkdir -p "$rootfs"/{bin,etc,dev,proc,sys,tmp,run,root,io,var/tmp}
	chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
	install -m 0755 /bin/busybox "$rootfs/bin/busybox"
	while read -r applet; do
		[[ -n $applet && $applet != busybox ]] || continue
		ln -s busybox "$rootfs/bin/$applet"
	done < <(/bin/busybox --list)
	printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
	printf '%s\n' 'root:x:0:' >"$rootfs/etc/group"
	(cd "$rootfs" && tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 \
		-cf "$WORK/rootfs.tar" -- *)
}

# The stacks: hb (SERVICES x `sleep 1000`, no check), hc (the same with busybox httpd and a
# tcp probe every second), rl (one service that crashes when told to, restart = always).
write_stacks() {
	local i name
	mkdir -p "$STACKS"/{hb,hc,rl/io,pc}
	{
		printf '[stack]\nname = hb\n'
		for ((i = 1; i <= SERVICES; i++)); do
			printf '\n[service.s%02d]\nimage = bb\ncommand = sleep 1000\n' "$i"
		done
	} >"$STACKS/hb/hutch.ini"
	{
		printf '[stack]\nname = hc\n'
		for ((i = 1; i <= SERVICES; i++)); do
			printf '\n[service.s%02d]\nimage = bb\ncommand = httpd -f -p 8080 -h /tmp\n' "$i"
			printf 'health_tcp = 8080\nhealth_interval = 1s\n'
		done
	} >"$STACKS/hc/hutch.ini"
	# The service says it runs (a line into the fifo io/ready), then waits for a line on
	# io/go and exits 1: the crash comes when the benchmark says, to the microsecond.
	cat >"$STACKS/rl/hutch.ini" <<-'EOF'
		[stack]
		name = rl

		[service.crash]
		image = bb
		command = "sh -c 'echo up > /io/ready; read x < /io/go; exit 1'"
		volumes = ./io:/io
		restart = always
	EOF
	mkfifo "$STACKS/rl/io/ready" "$STACKS/rl/io/go"
	chmod 0777 "$STACKS/rl/io"
	{
		echo 'services:'
		for ((i = 1; i <= SERVICES; i++)); do
			name=$(printf 's%02d' "$i")
			printf '  %s:\n    image: localhost/bb\n    command: sleep 1000\n' "$name"
		done
	} >"$STACKS/pc/docker-compose.yml"
}

write_podman_wrap() {
	# podman-compose runs "PODMAN SUBCOMMAND ARGS": a wrapper puts podman's global flags
	# first (its own store, network config and no systemd), --podman-run-args the rest.
	cat >"$PODMAN_WRAP" <<-EOF
		#!/bin/sh
		exec podman --root $PODMAN_DIR/root --runroot $PODMAN_DIR/run --tmpdir $PODMAN_DIR/tmp \\
			--network-config-dir $PODMAN_DIR/networks --cgroup-manager cgroupfs \\
			--events-backend none "\$@"
	EOF
	chmod 0755 "$PODMAN_WRAP"
}

host_cgroup2() {
	if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
		echo /sys/fs/cgroup
	elif [[ -d /sys/fs/cgroup/unified && $(stat -fc %T /sys/fs/cgroup/unified) == cgroup2fs ]]; then
		echo /sys/fs/cgroup/unified
	fi
}
list_cgroups() { (cd "$1" && find . -mindepth 1 -type d -printf '%P\n' | LC_ALL=C sort); }

# New cgroups: podman's libpod_parent tree is removed when new and empty; hutch/ is shared
# with every hutch on the machine: new hutch/ID cgroups are reported, never removed.
check_cgroups() {
	local cg2=$1 rel
	[[ -n $cg2 && -f $DATA/cgroup2-before.txt && -z ${CGROUPS_CHECKED:-} ]] || return 0
	CGROUPS_CHECKED=1
	while read -r rel; do
		case $rel in
		libpod_parent | libpod_parent/*) ;;
		hutch) ;;
		hutch/*) log "note: cgroup $cg2/$rel appeared during the run: left by the benchmark's hutch, or a container of another hutch on this machine" ;;
		*) log "warning: cgroup $cg2/$rel appeared during the run and is still there" ;;
		esac
	done < <(list_cgroups "$cg2" | LC_ALL=C comm -13 "$DATA/cgroup2-before.txt" -)
	if [[ -d $cg2/libpod_parent ]] && ! grep -qx libpod_parent "$DATA/cgroup2-before.txt"; then
		find "$cg2/libpod_parent" -depth -type d -exec rmdir {} + 2>/dev/null ||
			log "warning: $cg2/libpod_parent still has processes; left"
	fi
}

outer() {
	local rc=0 v cg2=
	[[ $ROUNDS =~ ^[1-9][0-9]*$ && $SERVICES =~ ^[1-9][0-9]*$ && $PODMAN_ROUNDS =~ ^[0-9]+$ &&
		$RESTARTS =~ ^[1-9][0-9]*$ && $RESTART_ROUNDS =~ ^[0-9]+$ &&
		$IDLE_SECONDS =~ ^[1-9][0-9]*$ && $CPU_SECONDS =~ ^[1-9][0-9]*$ ]] ||
		die "BENCH_STACK_* knobs must be integers (ROUNDS, SERVICES, the SECONDS ones positive)"
	((SERVICES <= 99)) || die "BENCH_STACK_SERVICES: at most 99"
	[[ -x $HUTCH_SRC ]] || die "no hutch binary at $HUTCH_SRC; run 'make build/hutch'"
	for v in gcc tar mkfifo flock timeout "$PYTHON"; do
		command -v "$v" >/dev/null || die "$v not found; run 'make bench-deps'"
	done
	/bin/busybox --list >/dev/null 2>&1 || die "/bin/busybox (busybox-static) not found"
	mkdir -p "$WORK"
	exec 9>"$WORK/.lock"
	flock -n 9 || die "another bench/stack.sh is using $WORK; wait for it to finish"
	rm -rf "${WORK:?}"/{bin,rootfs,rootfs.tar,hutch-root,podman,logs,data,stacks,reap,results.md,results.json}
	mkdir -p "$WORK/bin" "$LOGS" "$DATA" "$PODMAN_DIR"/{root,run,tmp,networks}
	install -m 0755 "$HUTCH_SRC" "$HUTCH"
	if [[ -n $BASELINE_SRC ]]; then
		[[ -x $BASELINE_SRC ]] || die "BENCH_STACK_BASELINE: no binary at $BASELINE_SRC"
		install -m 0755 "$BASELINE_SRC" "$BASELINE"
	fi
	: >"$DATA/status.tsv"
	if [[ $(id -u) != 0 ]]; then
		set_status podman-compose skipped "not root: podman-compose is benchmarked rootful only"
	elif skipped podman-compose || skipped podman; then
		set_status podman-compose skipped "BENCH_SKIP"
	elif ! command -v podman-compose >/dev/null || ! command -v podman >/dev/null; then
		set_status podman-compose FAILED "podman-compose or podman not installed (make bench-deps)"
	fi
	if ! gcc -std=gnu17 -O2 -Wall -Wextra -Werror -static -o "$REAP" "$BENCH_DIR/reap.c" \
		2>"$LOGS/reap-build.log"; then
		gcc -std=gnu17 -O2 -Wall -Wextra -Werror -o "$REAP" "$BENCH_DIR/reap.c"
	fi
	log "building the busybox rootfs and the stack files in $WORK"
	build_rootfs
	write_stacks
	write_podman_wrap
	{
		printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		printf 'user\t%s\n' "$(id -un) ($(id -u))"
		printf 'kernel\t%s\ncpus\t%s\n' "$(uname -r)" "$(nproc)"
		printf 'loadavg_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
		printf 'hutch_commit\t%s\n' "$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
		printf 'hutch_binary\t%s copied to %s, sha256 %s\n' "$HUTCH_SRC" "$HUTCH" \
			"$(sha256sum "$HUTCH" | cut -d' ' -f1)"
		if command -v podman-compose >/dev/null; then
			printf 'podman_compose\t%s\n' "$(dpkg-query -W -f '${Version}' podman-compose 2>/dev/null || echo '?')"
			printf 'podman\t%s\n' "$(podman --version 2>/dev/null | head -n1)"
		fi
		printf 'services\t%s\nrounds\t%s\npodman_rounds\t%s\n' "$SERVICES" "$ROUNDS" "$PODMAN_ROUNDS"
		printf 'phases\t%s\n' "${PHASES[*]}"
		[[ -z $BASELINE_SRC ]] || printf 'baseline_binary\t%s copied to %s, sha256 %s\n' \
			"$BASELINE_SRC" "$BASELINE" "$(sha256sum "$BASELINE" | cut -d' ' -f1)"
	} >"$DATA/env.tsv"

	if [[ $(id -u) == 0 ]]; then
		cg2=$(host_cgroup2)
		[[ -z $cg2 ]] || list_cgroups "$cg2" >"$DATA/cgroup2-before.txt"
		trap 'check_cgroups "$cg2"' EXIT
		trap 'exit 130' INT TERM
		HUTCH_BENCH_HOST_MNTNS=$(readlink /proc/self/ns/mnt) \
			unshare --mount --net --propagation private -- \
			"$REAP" -t 30 -o "$DATA/inner-maxrss.txt" -- bash "$BENCH_DIR/stack.sh" __inner || rc=$?
		check_cgroups "$cg2"
	else
		trap 'exit 130' INT TERM
		"$REAP" -t 30 -o "$DATA/inner-maxrss.txt" -- bash "$BENCH_DIR/stack.sh" __inner || rc=$?
	fi
	printf 'loadavg_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$DATA/env.tsv"
	if [[ $rc == 130 ]]; then
		log "interrupted; no report"
		exit 130
	fi
	[[ $rc == 0 ]] || log "the benchmark phase exited with status $rc"
	report || rc=1
	grep -q -P '\tFAILED\t' "$DATA/status.tsv" && exit 1
	exit 0
}

# --- inner: in the private namespaces (root), under the subreaper --------------------------

# Every stack down, every container removed, the peers' too; then whatever still runs
# under the subreaper (cycle.sh's sweep) is killed and listed.
inner_cleanup() {
	local s ids
	trap - EXIT INT TERM
	[[ -z ${BG_PID:-} ]] || kill "$BG_PID" 2>/dev/null || true
	for s in hb hc rl; do
		if [[ -d $HROOT/run ]]; then
			timeout -k 5 60 "${H[@]}" down -f "$STACKS/$s/hutch.ini" -t 0 >/dev/null 2>&1 || true
		fi
	done
	if [[ -d $HROOT ]]; then
		ids=$(timeout -k 5 30 "${H[@]}" ps -a -q 2>/dev/null || true)
		# shellcheck disable=SC2086 # a list of ids
		[[ -z $ids ]] || timeout -k 5 60 "${H[@]}" rm -f $ids >/dev/null 2>&1 || true
	fi
	if [[ $(id -u) == 0 && -d $PODMAN_DIR/root ]] && command -v podman >/dev/null; then
		timeout -k 5 120 "$PODMAN_WRAP" rm --all --force --time 0 >/dev/null 2>&1 || true
	fi
	sweep_orphans
}

setup_namespaces() {
	[[ $(id -u) == 0 ]] || return 0
	[[ -n ${HUTCH_BENCH_HOST_MNTNS:-} && $(readlink /proc/self/ns/mnt) != "$HUTCH_BENCH_HOST_MNTNS" ]] ||
		die "refusing to mount: not in a private mount namespace"
	if [[ $(stat -fc %T /sys/fs/cgroup) != cgroup2fs ]]; then
		mount -t cgroup2 cgroup2 /sys/fs/cgroup # hides the v1 hierarchies, in here only
	fi
	# netavark keeps aardvark-dns's config in /run/containers/networks (fixed for root):
	# a tmpfs there, in this mount namespace only, keeps the host's /run untouched
	if [[ -d /run/containers ]]; then
		mount -t tmpfs -o mode=0700 tmpfs /run/containers
	else
		mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/containers
	fi
	ip link set lo up
}

# Processes that stay with the stacks: every descendant of the subreaper in the subreaper's
# pid namespace (not a container's process), but for this script and its children.
# Prints one line per process: pid comm VmRSS Pss USS (KiB) utime+stime cutime+cstime (ticks)
stack_procs() {
	"$PYTHON" - "$PPID" "$$" <<-'EOF'
		import os, sys
		reaper, me = sys.argv[1], sys.argv[2]
		def ns(p):
		    try: return os.readlink(f"/proc/{p}/ns/pid")
		    except OSError: return None
		parent, kids = {}, {}
		for p in os.listdir("/proc"):
		    if not p.isdigit(): continue
		    try:
		        st = open(f"/proc/{p}/stat").read()
		    except OSError: continue
		    f = st[st.rindex(")") + 2:].split()
		    if f[0] in "ZX": continue
		    parent[p] = f[1]
		    kids.setdefault(f[1], []).append(p)
		want, todo, rns = [], list(kids.get(reaper, [])), ns(reaper)
		while todo:
		    p = todo.pop()
		    if p == me: continue  # this script's own subtree
		    todo += kids.get(p, [])
		    if ns(p) == rns: want.append(p)
		for p in sorted(want, key=int):
		    try:
		        st = open(f"/proc/{p}/stat").read()
		        f = st[st.rindex(")") + 2:].split()
		        comm = st[st.index("(") + 1:st.rindex(")")].replace(" ", "_")
		        rss = [l.split()[1] for l in open(f"/proc/{p}/status") if l.startswith("VmRSS:")]
		        pss = uss = 0
		        for l in open(f"/proc/{p}/smaps_rollup"):
		            k = l.split()
		            if k[0] == "Pss:": pss = int(k[1])
		            if k[0] in ("Private_Clean:", "Private_Dirty:"): uss += int(k[1])
		    except (OSError, ValueError, IndexError): continue
		    print(p, comm, rss[0] if rss else 0, pss, uss, int(f[11]) + int(f[12]), int(f[13]) + int(f[14]))
	EOF
}

# mem TOOL ROUND: the stack's processes into data/mem-TOOL-rROUND.tsv
measure_mem() { stack_procs >"$DATA/mem-$1-r$2.tsv"; }

running_hutch() {
	"${H[@]}" stack ps -f "$1" --format json 2>/dev/null |
		"$PYTHON" -c 'import json, sys; print(sum(json.loads(l)["state"] == "running" for l in sys.stdin if l.strip()))'
}

# times.tsv: "metric<TAB>tool<TAB>round<TAB>seconds"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$((${5} - ${4}))e-6" >>"$DATA/times.tsv"; }

round_hutch() {
	local r=$1 t0 t1 t2 n f=$STACKS/hb/hutch.ini
	failed hutch && return 0
	t0=$(now)
	if ! (cd "$STACKS/hb" && "${H[@]}" up -d --wait --wait-timeout 120) >>"$LOGS/hutch.log" 2>&1; then
		set_status hutch FAILED "up --wait exited non-zero in round $r: $(last_line "$LOGS/hutch.log")"
		return 0
	fi
	t1=$(now)
	n=$(running_hutch "$f")
	if [[ $n != "$SERVICES" ]]; then
		set_status hutch FAILED "after up --wait, $n of $SERVICES services run (round $r)"
	fi
	measure_mem hutch "$r"
	t2=$(now)
	if ! "${H[@]}" down -f "$f" -t 0 >>"$LOGS/hutch.log" 2>&1; then
		set_status hutch FAILED "down exited non-zero in round $r: $(last_line "$LOGS/hutch.log")"
		return 0
	fi
	record up hutch "$r" "$t0" "$t1"
	record down hutch "$r" "$t2" "$(now)"
	n=$("${H[@]}" ps -a -q | wc -l)
	[[ $n == 0 ]] || set_status hutch FAILED "$n containers left after down (round $r)"
}

# The floor: SERVICES x `hutch run -d` (JOBS at a time), then `rm -f` of all of them.
round_floor() {
	local r=$1 jobs=$2 tool=floor-$2 t0 t1 n ids
	failed "$tool" && return 0
	t0=$(now)
	if ! seq -f 'hb-f%02g' 1 "$SERVICES" |
		xargs -P "$jobs" -I{} "${H[@]}" run -d --name {} bb sleep 1000 >/dev/null 2>>"$LOGS/$tool.log"; then
		set_status "$tool" FAILED "a run -d failed in round $r: $(last_line "$LOGS/$tool.log")"
	fi
	t1=$(now)
	n=$("${H[@]}" ps -q | wc -l)
	[[ $n == "$SERVICES" ]] || set_status "$tool" FAILED "$n of $SERVICES containers run (round $r)"
	record up "$tool" "$r" "$t0" "$t1"
	[[ $jobs != 1 ]] || measure_mem floor "$r"
	ids=$("${H[@]}" ps -a -q)
	t0=$(now)
	# shellcheck disable=SC2086 # a list of ids
	"${H[@]}" rm -f $ids >/dev/null 2>>"$LOGS/$tool.log" || set_status "$tool" FAILED "rm -f failed"
	record down "$tool" "$r" "$t0" "$(now)"
}

PC=(podman-compose --podman-path "$PODMAN_WRAP" -p pc -f "$STACKS/pc/docker-compose.yml")
round_podman() {
	local r=$1 t0 t1 t2 n
	failed podman-compose && return 0
	t0=$(now)
	if ! "${PC[@]}" --podman-run-args "$PODMAN_RUN_ARGS" up -d >>"$LOGS/podman-compose.log" 2>&1; then
		set_status podman-compose FAILED "up -d exited non-zero: $(last_line "$LOGS/podman-compose.log")"
		return 0
	fi
	t1=$(now)
	n=$("$PODMAN_WRAP" ps -q --filter status=running | wc -l)
	if [[ $n != "$SERVICES" ]]; then
		set_status podman-compose FAILED "after up -d, $n of $SERVICES containers run (log: $LOGS/podman-compose.log)"
	fi
	measure_mem podman-compose "$r"
	t2=$(now)
	"${PC[@]}" down -t 0 >>"$LOGS/podman-compose.log" 2>&1 ||
		set_status podman-compose FAILED "down exited non-zero: $(last_line "$LOGS/podman-compose.log")"
	record up podman-compose "$r" "$t0" "$t1"
	record down podman-compose "$r" "$t2" "$(now)"
}

check_podman() {
	grep -q -P '^podman-compose\t' "$DATA/status.tsv" && return 0
	if ! "$PODMAN_WRAP" import "$WORK/rootfs.tar" localhost/bb >"$LOGS/podman-import.log" 2>&1; then
		set_status podman-compose FAILED "podman import: $(last_line "$LOGS/podman-import.log")"
	fi
}

# Restart latency: the service crashes when told to (a line into io/go); the time from that
# line to the new process's line on io/ready, against the backoff (docs/supervisor-states.md).
# restart_round ROUND [TOOL BINARY]: TOOL "hutch" (default) or "baseline"
restart_round() {
	local r=$1 tool=${2:-hutch} f=$STACKS/rl/hutch.ini rc=0
	local H=("${3:-$HUTCH}" --root "$HROOT")
	failed restart && return 0
	if ! (cd "$STACKS/rl" && "${H[@]}" up -d) >>"$LOGS/restart.log" 2>&1; then
		set_status restart FAILED "up -d: $(last_line "$LOGS/restart.log")"
		return 0
	fi
	EVENTS_OUT=$DATA/restart-events-$tool-r$r.jsonl TOOL=$tool \
		"$PYTHON" - "$STACKS/rl/io" "$RESTARTS" "$r" "$f" "${H[@]}" >>"$DATA/restart.tsv" \
		2>>"$LOGS/restart.log" <<-'EOF' || rc=$?
		import json, os, select, subprocess, sys, threading, time
		io, n, rnd, f, hutch = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
		# held open read-write: neither side's open() blocks, a line is never lost
		ready = os.open(io + "/ready", os.O_RDWR)
		go = os.open(io + "/go", os.O_RDWR)
		def wait_ready(limit):
		    if not select.select([ready], [], [], limit)[0]:
		        sys.exit(f"no start within {limit} s")
		    t = time.time_ns()
		    os.read(ready, 4096)
		    return t
		wait_ready(60)
		# the supervisor's own account (exited, restarting with its delay, started), to
		# split the latency; its times are the same clock (CLOCK_REALTIME, ns)
		ev = subprocess.Popen(hutch + ["stack", "events", "-f", f, "--format", "json"],
		                      stdout=subprocess.PIPE, text=True)
		events = []
		def read_events():
		    for line in ev.stdout:
		        try: events.append(json.loads(line))
		        except ValueError: pass
		threading.Thread(target=read_events, daemon=True).start()
		spans = []
		for i in range(1, n + 1):
		    time.sleep(0.3)  # well under the 10 s after which the backoff resets
		    t0 = time.time_ns()
		    os.write(go, b"x\n")
		    spans.append((i, t0, wait_ready(200)))
		time.sleep(0.2)
		ev.terminate()
		ev.wait()
		with open(os.environ["EVENTS_OUT"], "w") as out:
		    out.writelines(json.dumps(e) + "\n" for e in events)
		ms = lambda a, b: "" if a is None or b is None else f"{(b - a) / 1e6:.3f}"
		for i, t0, t1 in spans:
		    got = {e.get("event"): e for e in events if t0 <= e.get("time", 0) <= t1}
		    ex = got.get("exited", {}).get("time")
		    delay = got.get("restarting", {}).get("delay_ms", "")
		    start = ms(ex + delay * 1000000, t1) if ex and delay != "" else ""
		    print(f"{rnd}\t{i}\t{(t1 - t0) / 1e6:.3f}\t{delay}\t{ms(t0, ex)}\t{start}\t{os.environ['TOOL']}")
	EOF
	[[ $rc == 0 ]] || set_status restart FAILED "$tool round $r: $(last_line "$LOGS/restart.log")"
	"${H[@]}" down -f "$f" -t 0 >>"$LOGS/restart.log" 2>&1 || set_status restart FAILED "down failed"
}

sup_pid() {
	"${H[@]}" stack ls --format json | "$PYTHON" -c '
import json, sys
for l in sys.stdin:
    d = json.loads(l)
    if d["name"] == sys.argv[1]: print(d["supervisor"])' "$1"
}

# ctxsw PID...: voluntary + involuntary context switches of all of them
ctxsw() {
	local p s=0 v
	for p in "$@"; do
		v=$(awk '/ctxt_switches/ {s += $2} END {print s + 0}' "/proc/$p/status" 2>/dev/null || echo 0)
		s=$((s + v))
	done
	echo "$s"
}

# strace_count PID SECONDS OUT: strace -c of PID (and its threads and new children) for
# SECONDS; status 1 when strace could not attach (its stderr in OUT.err). No syscall at all
# leaves OUT empty.
strace_count() {
	command -v strace >/dev/null || { echo "strace not installed" >"$3.err"; return 1; }
	timeout -s INT "$2" strace -c -f -q -o "$3" -p "$1" 2>"$3.err" || true
	! grep -q -i 'attach\|not permitted\|No such process' "$3.err"
}
# the calls column of strace -c's total line (the errors column may be empty)
strace_total() { awk '$NF == "total" {print $4 + 0; found = 1} END {if (!found) print 0}' "$1"; }

# Idle: the hb stack up, no checks: the supervisor's syscalls over IDLE_SECONDS (strace -c
# -f), then the wakeups (context switches) of the supervisor and of the other processes of
# the stack over as long, and the memory again once settled.
measure_idle() {
	local f=$STACKS/hb/hutch.ini sup others a b
	failed hutch && return 0
	(cd "$STACKS/hb" && "${H[@]}" up -d --wait --wait-timeout 120) >>"$LOGS/idle.log" 2>&1 || {
		set_status idle FAILED "up --wait: $(last_line "$LOGS/idle.log")"
		return 0
	}
	sup=$(sup_pid hb)
	sleep 2
	measure_mem idle 1
	mapfile -t others < <(awk -v s="$sup" '$1 != s {print $1}' "$DATA/mem-idle-r1.tsv")
	a=$(ctxsw "$sup")
	b=$(ctxsw "${others[@]}")
	sleep "$IDLE_SECONDS"
	printf 'ctxsw_supervisor\t%s\nctxsw_others\t%s\nothers\t%s\nseconds\t%s\n' \
		"$(($(ctxsw "$sup") - a))" "$(($(ctxsw "${others[@]}") - b))" "${#others[@]}" \
		"$IDLE_SECONDS" >"$DATA/idle.tsv"
	if strace_count "$sup" "$IDLE_SECONDS" "$DATA/idle-strace.txt"; then
		printf 'strace_calls\t%s\n' "$(strace_total "$DATA/idle-strace.txt")" >>"$DATA/idle.tsv"
	else
		set_status idle FAILED "strace could not attach to the supervisor: $(last_line "$DATA/idle-strace.txt.err")"
	fi
	"${H[@]}" down -f "$f" -t 0 >>"$LOGS/idle.log" 2>&1 || set_status idle FAILED "down failed"
}

# CPU with SERVICES tcp probes at 1 s: utime+stime (and the children's) of the supervisor
# and the rest of the stack over CPU_SECONDS, once every service is healthy.
measure_cpu() {
	local f=$STACKS/hc/hutch.ini t0 t1
	failed hutch && return 0
	(cd "$STACKS/hc" && "${H[@]}" up -d --wait --wait-timeout 120) >>"$LOGS/cpu.log" 2>&1 || {
		set_status cpu FAILED "up --wait: $(last_line "$LOGS/cpu.log")"
		"${H[@]}" down -f "$f" -t 0 >>"$LOGS/cpu.log" 2>&1 || true
		return 0
	}
	printf 'supervisor\t%s\n' "$(sup_pid hc)" >"$DATA/cpu.tsv"
	sleep 2
	t0=$(now)
	stack_procs >"$DATA/cpu-before.tsv"
	sleep "$CPU_SECONDS"
	stack_procs >"$DATA/cpu-after.tsv"
	t1=$(now)
	printf 'seconds\t%s\n' "$((t1 - t0))e-6" >>"$DATA/cpu.tsv"
	# which syscalls the probes cost, after the CPU measurement (strace slows its target)
	strace_count "$(sup_pid hc)" 5 "$DATA/cpu-strace.txt" || true
	"${H[@]}" stack ps -f "$f" --format json >"$DATA/cpu-ps.json" 2>>"$LOGS/cpu.log" || true
	"${H[@]}" down -f "$f" -t 0 >>"$LOGS/cpu.log" 2>&1 || set_status cpu FAILED "down failed"
}

# up/down of SERVICES, side by side with the floor and podman-compose; memory after up
updown() {
	local r order t
	# A warm-up round, not recorded: the first start of a stack pays for page cache.
	log "warm-up: one up --wait and down of $SERVICES services"
	(cd "$STACKS/hb" && "${H[@]}" up -d --wait --wait-timeout 120) >"$LOGS/warmup.log" 2>&1 || true
	"${H[@]}" down -f "$STACKS/hb/hutch.ini" -t 0 >>"$LOGS/warmup.log" 2>&1 || true

	# Side by side: each round times every row, the order rotated.
	local rows=(hutch floor-1 "floor-$PARALLEL")
	for ((r = 1; r <= ROUNDS; r++)); do
		order=()
		for ((t = 0; t < ${#rows[@]}; t++)); do order+=("${rows[(t + r - 1) % ${#rows[@]}]}"); done
		log "round $r/$ROUNDS: ${order[*]}"
		for t in "${order[@]}"; do
			case $t in
			hutch) round_hutch "$r" ;;
			floor-*) round_floor "$r" "${t#floor-}" ;;
			podman-compose) round_podman "$r" ;;
			esac
		done
	done
	# podman-compose after hutch's rounds, in the same run: each of its rounds takes over a
	# minute, and the cleanup processes conmon leaves slowed the row timed after it 2-3x.
	for ((r = 1; r <= PODMAN_ROUNDS; r++)); do
		grep -q -P '^podman-compose\t(FAILED|skipped)' "$DATA/status.tsv" && break
		log "podman-compose round $r/$PODMAN_ROUNDS (about 90 s: it sleeps 1 s per service)"
		round_podman "$r"
	done
	((PODMAN_ROUNDS == 0)) || sleep 5 # what conmon started on the containers' exit, to end
	if ! grep -q -P '^podman-compose\t' "$DATA/status.tsv"; then
		if ((PODMAN_ROUNDS > 0)); then
			set_status podman-compose ok
		else
			set_status podman-compose skipped "BENCH_STACK_PODMAN_ROUNDS=0"
		fi
	fi
	for t in hutch floor-1 "floor-$PARALLEL"; do
		failed "$t" || set_status "$t" ok
	done

}

inner() {
	local r t
	# shellcheck source=bench/cycle.sh
	source "$BENCH_DIR/cycle.sh" # running, comm_of, sweep_orphans
	setup_namespaces
	trap inner_cleanup EXIT
	trap 'log interrupted; exit 130' INT TERM
	"${H[@]}" image import "$WORK/rootfs.tar" bb >"$LOGS/hutch-import.log" 2>&1 ||
		die "hutch image import: $(last_line "$LOGS/hutch-import.log")"
	[[ $(id -u) == 0 ]] && check_podman
	if phase updown; then
		updown
	else
		set_status hutch skipped "BENCH_STACK_PHASES"
		grep -q -P '^podman-compose\t' "$DATA/status.tsv" ||
			set_status podman-compose skipped "BENCH_STACK_PHASES"
	fi
	: >"$DATA/restart.tsv"
	if phase restart; then
		log "restart latency: $RESTART_ROUNDS round(s) of $RESTARTS crashes${BASELINE_SRC:+, each with the baseline too (interleaved)}"
		for ((r = 1; r <= RESTART_ROUNDS; r++)); do
			if [[ -z $BASELINE_SRC ]]; then
				restart_round "$r"
			elif ((r % 2)); then
				restart_round "$r" hutch "$HUTCH"
				restart_round "$r" baseline "$BASELINE"
			else
				restart_round "$r" baseline "$BASELINE"
				restart_round "$r" hutch "$HUTCH"
			fi
		done
		failed restart || set_status restart ok
	fi
	if phase idle; then
		log "idle: $SERVICES services without checks, ${IDLE_SECONDS} s of wakeups, ${IDLE_SECONDS} s of strace"
		measure_idle
		failed idle || set_status idle ok
	fi
	if phase cpu; then
		log "cpu: $SERVICES tcp probes at 1 s, ${CPU_SECONDS} s"
		measure_cpu
		failed cpu || set_status cpu ok
	fi
}

# --- report -------------------------------------------------------------------------------

report() {
	"$PYTHON" - "$WORK" "$SERVICES" "$PARALLEL" <<-'EOF'
		import glob, json, os, statistics as st, sys
		work, n, par = sys.argv[1], int(sys.argv[2]), sys.argv[3]
		data = work + "/data"
		env = dict(l.rstrip("\n").split("\t", 1) for l in open(data + "/env.tsv"))
		status = {}
		for l in open(data + "/status.tsv"):
		    k, s, why = (l.rstrip("\n").split("\t") + [""])[:3]
		    status[k] = (s, why)
		times = {}
		for l in open(data + "/times.tsv") if os.path.exists(data + "/times.tsv") else []:
		    m, tool, r, s = l.split("\t")
		    times.setdefault((m, tool), {})[int(r)] = float(s)
		out, res = [], {"env": env, "status": status}
		p = out.append
		p(f"# Stack benchmark: {env['date']}, {env['cpus']} CPUs, load {env['loadavg_start']} at the start, {env.get('loadavg_end', '?')} at the end")
		p("")
		p(f"{n} services of busybox `sleep 1000`; hutch as {env['user']}: {env['hutch_binary']}")
		p("")
		rows = [("hutch", f"hutch up -d --wait / down -t 0"),
		        ("floor-1", f"floor: {n} x hutch run -d, one after the other / rm -f of all"),
		        (f"floor-{par}", f"floor: {n} x hutch run -d, {par} at a time / rm -f of all"),
		        ("podman-compose", f"podman-compose {env.get('podman_compose', '')} up -d / down -t 0")]
		def med(m, t):
		    v = times.get((m, t))
		    return st.median(v.values()) if v else None
		p("| row | up: median s | min-max | down: median s | min-max | rounds | up / hutch's | status |")
		p("|---|---:|---:|---:|---:|---:|---:|---|")
		hu = med("up", "hutch")
		res["timing"] = {}
		for t, label in rows:
		    u, d = times.get(("up", t), {}), times.get(("down", t), {})
		    s = status.get(t, ("?", ""))
		    if not u:
		        p(f"| {label} | - | - | - | - | 0 | - | {s[0]} {s[1]} |")
		        continue
		    mu, md = st.median(u.values()), st.median(d.values()) if d else float("nan")
		    ratio = f"{mu / hu:.2f}" if hu else "-"
		    p(f"| {label} | {mu:.3f} | {min(u.values()):.3f}-{max(u.values()):.3f} | {md:.3f} | "
		      f"{min(d.values()):.3f}-{max(d.values()):.3f} | {len(u)} | {ratio} | {s[0]} {s[1]} |")
		    res["timing"][t] = {"up": u, "down": d}
		# ratios per round: drift
		p("")
		for t in [r[0] for r in rows[1:]]:
		    rs = [times[("up", t)][r] / times[("up", "hutch")][r]
		          for r in times.get(("up", t), {}) if r in times.get(("up", "hutch"), {})]
		    if rs:
		        p(f"- up, {t} / hutch per round: {', '.join(f'{x:.2f}' for x in rs)}")
		if ("up", "podman-compose") in times:
		    pu = med("up", "podman-compose")
		    p(f"- podman-compose up -d without its 1 s sleep per service: {pu - n:.2f} s ({(pu - n) / hu:.1f}x hutch)")
		for m in ("up", "down"):
		    v = times.get((m, "hutch"), {})
		    if v:
		        p(f"- hutch {m} per round: {', '.join(f'{v[r]:.3f}' for r in sorted(v))} s (drift max/min {max(v.values()) / min(v.values()):.2f})")
		goals = []
		if hu is not None:
		    goals.append((f"up --wait of {n} under 0.5 s", hu < 0.5, f"{hu:.3f} s"))
		    hd = med("down", "hutch")
		    goals.append((f"down of {n} under 0.5 s", hd < 0.5, f"{hd:.3f} s"))
		# memory
		p("")
		p("## Memory that stays with the stack (KiB; median round; every process of the stack outside the containers)")
		p("")
		p("| row | processes | RSS | PSS | USS | PSS per container |")
		p("|---|---|---:|---:|---:|---:|")
		res["memory"] = {}
		for tool in ("hutch", "idle", "floor", "podman-compose"):
		    rounds = []
		    for f in sorted(glob.glob(f"{data}/mem-{tool}-r*.tsv")):
		        procs = [l.split() for l in open(f) if l.strip()]
		        if procs: rounds.append(procs)
		    if not rounds: continue
		    rounds.sort(key=lambda ps: sum(int(x[3]) for x in ps))
		    ps = rounds[(len(rounds) - 1) // 2]
		    comm = {}
		    for x in ps: comm[x[1]] = comm.get(x[1], 0) + 1
		    rss, pss, uss = (sum(int(x[i]) for x in ps) for i in (2, 3, 4))
		    label = {"hutch": "hutch stack, after up --wait", "idle": "hutch stack, idle 2 s later",
		             "floor": f"{n} x hutch run -d", "podman-compose": "podman-compose, after up -d"}[tool]
		    p(f"| {label} | {', '.join(f'{k} x{c}' for k, c in comm.items())} | {rss} | {pss} | {uss} | {pss / n:.0f} |")
		    res["memory"][tool] = {"processes": comm, "rss": rss, "pss": pss, "uss": uss,
		                           "pss_rounds": [sum(int(x[3]) for x in r) for r in rounds]}
		if "hutch" in res["memory"]:
		    hp = res["memory"]["hutch"]["pss"]
		    goals.append(("stack memory under 4 MiB PSS", hp < 4096, f"{hp / 1024:.1f} MiB"))
		    if "podman-compose" in res["memory"]:
		        p(f"- hutch / podman PSS: {hp / res['memory']['podman-compose']['pss']:.2f}")
		# restart latency
		rl = [l.rstrip("\n").split("\t") for l in open(data + "/restart.tsv")] if os.path.exists(data + "/restart.tsv") else []
		tools = []
		for x in rl:
		    t = x[6] if len(x) > 6 and x[6] else "hutch"
		    if t not in tools: tools.append(t)
		res["restart"] = rl
		for tool in tools:
		    v_all = [x for x in rl if (x[6] if len(x) > 6 and x[6] else "hutch") == tool]
		    label = "this binary" if tool == "hutch" else f"the baseline ({env.get('baseline_binary', '?')})"
		    p("")
		    p(f"## Restart latency (ms), {label}: a crash to the new process's first line, against the backoff")
		    p("")
		    p("Split by the supervisor's events (median): exit seen = the crash to its `exited` event;")
		    p("start = from `exited` + the backoff (its `restarting` event's delay_ms) to the new process's first line.")
		    p("")
		    p("| restart | backoff | latency median | min-max | over the backoff | exit seen | start |")
		    p("|---:|---:|---:|---:|---:|---:|---:|")
		    overs = []
		    def mcol(v, j):
		        x = [float(r[j]) for r in v if len(r) > j and r[j] != ""]
		        return f"{st.median(x):.1f}" if x else "-"
		    def backoff(x, i):
		        return float(x[3]) if len(x) > 3 and x[3] != "" else min(100 * 2 ** (i - 1), 60000)
		    for i in sorted({int(x[1]) for x in v_all}):
		        v = [x for x in v_all if int(x[1]) == i]
		        lat = [float(x[2]) for x in v]
		        b = backoff(v[0], i)
		        overs += [x - b for x in lat]
		        p(f"| {i} | {b:.0f} | {st.median(lat):.1f} | {min(lat):.1f}-{max(lat):.1f} | {st.median(lat) - b:+.1f} | "
		          f"{mcol(v, 4)} | {mcol(v, 5)} |")
		    p("")
		    p(f"- over the backoff, all {len(overs)} restarts: median {st.median(overs):+.1f} ms, max {max(overs):+.1f}; "
		      f"exit seen median {mcol(v_all, 4)} ms, start median {mcol(v_all, 5)} ms")
		    rounds = sorted({x[0] for x in v_all}, key=int)
		    p("- median over the backoff per round: " + ", ".join(
		        f"r{r} {st.median([float(x[2]) - backoff(x, int(x[1])) for x in v_all if x[0] == r]):+.1f}" for r in rounds))
		    if tool == "hutch":
		        goals.append(("restart within 10 ms of the backoff (median)", abs(st.median(overs)) <= 10,
		                      f"median {st.median(overs):+.1f} ms, max {max(overs):+.1f} ms"))
		# idle
		if os.path.exists(data + "/idle.tsv"):
		    idle = dict(l.rstrip("\n").split("\t") for l in open(data + "/idle.tsv"))
		    s = float(idle["seconds"])
		    p("")
		    p(f"## Idle, {n} services without checks")
		    p("")
		    if "strace_calls" in idle:
		        p(f"- supervisor syscalls: {idle['strace_calls']} in {s:.0f} s (strace -c -f -p)")
		        goals.append(("idle supervisor: 0 syscalls/s", int(idle["strace_calls"]) == 0,
		                      f"{int(idle['strace_calls']) / s:.1f}/s"))
		    p(f"- supervisor context switches: {idle['ctxsw_supervisor']} in {s:.0f} s")
		    p(f"- the other {idle['others']} processes of the stack: {idle['ctxsw_others']} context switches in {s:.0f} s")
		    res["idle"] = idle
		if os.path.exists(data + "/cpu-after.tsv"):
		    cpu = dict(l.rstrip("\n").split("\t") for l in open(data + "/cpu.tsv"))
		    s, sup = float(cpu["seconds"]), cpu["supervisor"]
		    b = {x.split()[0]: x.split() for x in open(data + "/cpu-before.tsv")}
		    a = {x.split()[0]: x.split() for x in open(data + "/cpu-after.tsv")}
		    tick = os.sysconf("SC_CLK_TCK")
		    def d(pids, i):
		        return sum(int(a[q][i]) - int(b[q][i]) for q in pids if q in b) / tick
		    others = [q for q in a if q != sup]
		    sv, sc, ov = d([sup], 5), d([sup], 6), d(others, 5) + d(others, 6)
		    healthy = sum('"healthy"' in l for l in open(data + "/cpu-ps.json")) if os.path.exists(data + "/cpu-ps.json") else "?"
		    p("")
		    p(f"## CPU with {n} tcp probes every 1 s, over {s:.1f} s ({healthy} of {n} healthy at the end)")
		    p("")
		    p(f"- supervisor: {sv:.2f} s CPU ({100 * sv / s:.2f}% of a CPU), its reaped children {sc:.2f} s; "
		      f"{1e6 * (sv + sc) / (n * s):.0f} us per probe")
		    p(f"- the other processes of the stack: {ov:.2f} s")
		    res["cpu"] = {"seconds": s, "supervisor": sv, "children": sc, "others": ov}
		    if os.path.exists(data + "/cpu-strace.txt"):
		        calls = []
		        for l in open(data + "/cpu-strace.txt"):
		            f = l.split()
		            if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
		                calls.append((int(f[3]), f[-1]))
		        calls.sort(reverse=True)
		        if calls:
		            p(f"- the supervisor's syscalls under strace -f over 5 s (after the measurement): "
		              f"{sum(c for c, _ in calls)}, most: {', '.join(f'{k} {c}' for c, k in calls[:6])}")
		p("")
		p("## Goals")
		p("")
		for g, ok, v in goals:
		    p(f"- {g}: {v}: {'met' if ok else 'NOT met'}")
		res["goals"] = [{"goal": g, "met": ok, "value": v} for g, ok, v in goals]
		p("")
		p("The machine is shared (2 vCPUs, other jobs): compare the ratios within one run; see the rounds for the drift.")
		text = "\n".join(out) + "\n"
		open(work + "/results.md", "w").write(text)
		json.dump(res, open(work + "/results.json", "w"), indent=1, default=str)
		print(text)
	EOF
}

# As root, `bench/stack.sh --rootless`: the same benchmark as an unprivileged user (USER,
# default hutchtest, with subordinate ids: tests/rootless/run.sh makes it), from a copy in a
# directory of its own; the results are copied to build/bench/stack-rootless/.
rootless() {
	local user=${HUTCH_TEST_USER:-hutchtest} dir v envs="" rc=0
	[[ $(id -u) == 0 ]] || die "--rootless: run as root (it switches to the test user)"
	id "$user" >/dev/null 2>&1 || die "no user $user: tests/rootless/run.sh creates it"
	[[ -x $HUTCH_SRC ]] || die "no hutch binary at $HUTCH_SRC; run 'make build/hutch'"
	dir=$(mktemp -d /tmp/hutch-bench-stack.XXXXXX)
	trap 'rm -rf "$dir"' EXIT
	install -d -m 0755 "$dir/repo/bench" "$dir/repo/build"
	cp "$BENCH_DIR"/{stack.sh,cycle.sh,reap.c} "$dir/repo/bench/"
	cp "$HUTCH_SRC" "$dir/repo/build/hutch"
	install -d -m 0700 "$dir/xdg" "$dir/tmp" "$dir/work"
	chown -R "$user:" "$dir"
	chmod 0711 "$dir"
	for v in $(compgen -v BENCH_); do
		[[ $v == BENCH_WORK ]] || envs+=" $v=$(printf '%q' "${!v}")"
	done
	su "$user" -s /bin/bash -c "cd '$dir/repo' && export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
		XDG_RUNTIME_DIR='$dir/xdg' TMPDIR='$dir/tmp' BENCH_WORK='$dir/work' $envs &&
		exec bench/stack.sh" || rc=$?
	rm -rf "${WORK:?}-rootless"
	cp -a "$dir/work/stack" "$WORK-rootless" 2>/dev/null &&
		log "rootless results in $WORK-rootless"
	exit "$rc"
}

if [[ ${1:-} == __inner ]]; then
	inner
elif [[ ${1:-} == --rootless ]]; then
	rootless
else
	outer "$@"
fi
