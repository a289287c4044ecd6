#!/usr/bin/env bash
# hutch benchmarks: `run --rm IMAGE /bin/true` on a busybox rootfs, hutch against crun,
# runc, bubblewrap, bare unshare (the floor) and podman. Time with hyperfine, peak RSS with
# bench/reap.c, table and results in build/bench/. hutch is timed in two layouts side by
# side: `hutch` as it runs by default (its data on the disk, its run root on a tmpfs, as
# /run is on most hosts) and `hutch-disk` with all its state on the disk (--root DIR). Then the lifecycle benchmark
# (bench/cycle.sh): one `run -d` + `stop` + `rm` cycle of `sleep 1000` against crun, runc
# and podman, and the memory of the process supervising each detached container (hutch's
# monitor, podman's conmon). Then the image benchmark (bench/images.sh): importing a
# ~500 MB three-layer image against tar -x of its layers, umoci unpack and podman load, and
# a pull from a local registry against skopeo. See bench/README.md.
#
# Runs as root. All timing and RSS runs happen inside one private mount namespace in which
# cgroup2 is mounted at /sys/fs/cgroup (the host has a hybrid v1 + v2 layout that crun
# refuses); the host's own mounts and v1 hierarchies are never touched.
#
# Exit status: 0 when every tool ran; 1 when any tool (hutch included) failed, after still
# benchmarking and reporting the others; 2 on bad setup (not root, missing hyperfine...);
# 130 when interrupted (Ctrl-C), after deleting containers and cgroups.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
export BENCH_WORK=${BENCH_WORK:-$REPO/build/bench}
WORK=$BENCH_WORK
# The binary under test (HUTCH) is copied to bin/hutch in the work directory at the start
# and run from there: build/hutch is shared, and a rebuild during the run would otherwise
# change what is measured half-way. The inner phase gets HUTCH_SRC from the outer one.
export HUTCH_SRC=${HUTCH_SRC:-${HUTCH:-$REPO/build/hutch}}
HUTCH=$WORK/bin/hutch
RUNS=${BENCH_RUNS:-200}   # per tool, over all rounds
ROUNDS=${BENCH_ROUNDS:-10}
WARMUP=${BENCH_WARMUP:-3}  # per tool and round
PODMAN_RUNS=${BENCH_PODMAN_RUNS:-30}
PODMAN_WARMUP=${BENCH_PODMAN_WARMUP:-3}
RSS_RUNS=${BENCH_RSS_RUNS:-5}
CYCLE_RUNS=${BENCH_CYCLE_RUNS:-100} # per tool, over all rounds (hutch, crun, runc)
CYCLE_WARMUP=${BENCH_CYCLE_WARMUP:-2}
PODMAN_CYCLE_RUNS=${BENCH_PODMAN_CYCLE_RUNS:-15}
PODMAN_CYCLE_WARMUP=${BENCH_PODMAN_CYCLE_WARMUP:-2}
MONITOR_CONTAINERS=${BENCH_MONITOR_CONTAINERS:-10}
HYPERFINE_TIMEOUT=${BENCH_TIMEOUT:-1800}
# The churned-disk variant: CHURN_RUNS untimed runs of each tool first (hundreds of
# containers made and removed, as a day of test suites does to the store's disk), then the
# same rounds again. 0 skips it.
CHURN_RUNS=${BENCH_CHURN_RUNS:-300}
read -ra SKIP <<<"${BENCH_SKIP:-}" # tools not to run, e.g. BENCH_SKIP=podman
PYTHON=${PYTHON:-/usr/bin/python3}

ROOTFS=$WORK/rootfs
PODMAN_ROOTFS=$WORK/rootfs-podman # podman writes etc/hosts etc. into its rootfs
TARBALL=$WORK/rootfs.tar
# hutch's two layouts: HUTCH_ROOT's run root (HUTCH_ROOT/run) gets a tmpfs in the private
# mount namespace, like /run/hutch by default; HUTCH_DISK_ROOT's stays on the disk.
HUTCH_ROOT=$WORK/hutch-root
HUTCH_DISK_ROOT=$WORK/hutch-root-disk
STATE=$WORK/state
PODMAN_DIR=$WORK/podman
LOGS=$WORK/logs
DATA=$WORK/data
REAP=$WORK/reap
MARKER=etc/hutch-bench-rootfs
CRUN_ID=hutch-bench-crun
RUNC_ID=hutch-bench-runc
# The lifecycle benchmark reuses one name per tool: every cycle removes its container.
CYCLE_NAME=hutch-bench-cycle
MONITOR_PREFIX=hutch-bench-mon-

MAIN_TOOLS=(hutch hutch-disk crun runc bwrap unshare)
ALL_TOOLS=("${MAIN_TOOLS[@]}" podman)
CYCLE_TOOLS=(hutch crun runc podman) # the lifecycle benchmark (status keys cycle:TOOL)
MONITOR_TOOLS=(hutch podman)         # tools with a supervisor process (status keys monitor:TOOL)

# The exact command lines timed. hyperfine -N splits them on whitespace, and so do we
# (read -ra) when running them directly: paths must not contain whitespace (checked below).
PODMAN_GLOBAL="--root $PODMAN_DIR/root --runroot $PODMAN_DIR/run --tmpdir $PODMAN_DIR/tmp"
PODMAN_GLOBAL+=" --cgroup-manager cgroupfs --events-backend none"
PODMAN_OPTS="--network none --runtime runc --pids-limit -1"
PODMAN_OPTS+=" --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
PODMAN_RUN="--rm $PODMAN_OPTS"
declare -A CMD=(
	[hutch]="$HUTCH --root $HUTCH_ROOT run --rm bb /bin/true"
	[hutch-disk]="$HUTCH --root $HUTCH_DISK_ROOT run --rm bb /bin/true"
	[crun]="crun --root $STATE/crun run --bundle $WORK/bundle-crun $CRUN_ID"
	[runc]="runc --root $STATE/runc run --bundle $WORK/bundle-runc $RUNC_ID"
	[bwrap]="bwrap --unshare-all --ro-bind $ROOTFS / --proc /proc --dev /dev /bin/true"
	[unshare]="unshare -mpnui -f /bin/true"
	[podman]="podman $PODMAN_GLOBAL run $PODMAN_RUN --rootfs $PODMAN_ROOTFS /bin/true"
)
# The lifecycle benchmark: one full cycle of a detached `sleep 1000` per timed run, run by
# hyperfine through /bin/sh (it subtracts the shell's own startup). Each tool's stderr goes
# to logs/cycle-TOOL.log, so that the reason for a failing step is kept.
H="$HUTCH --root $HUTCH_ROOT"
CR="crun --root $STATE/crun"
RC="runc --root $STATE/runc"
P="podman $PODMAN_GLOBAL"
CMD[cycle:hutch]="{ $H run -d --name $CYCLE_NAME bb sleep 1000 && $H stop -t 0 $CYCLE_NAME"
CMD[cycle:hutch]+=" && $H rm $CYCLE_NAME; } </dev/null >/dev/null 2>>$LOGS/cycle-hutch.log"
for rt in crun runc; do
	if [[ $rt == crun ]]; then R=$CR; else R=$RC; fi
	CMD[cycle:$rt]="{ $R create --bundle $WORK/bundle-$rt-sleep $CYCLE_NAME-$rt"
	CMD[cycle:$rt]+=" && $R start $CYCLE_NAME-$rt && $R kill $CYCLE_NAME-$rt KILL"
	CMD[cycle:$rt]+=" && $R delete -f $CYCLE_NAME-$rt; } </dev/null >/dev/null 2>>$LOGS/cycle-$rt.log"
done
CMD[cycle:podman]="{ $P run -d --name $CYCLE_NAME $PODMAN_OPTS --rootfs $PODMAN_ROOTFS sleep 1000"
CMD[cycle:podman]+=" && $P stop -t 0 $CYCLE_NAME && $P rm $CYCLE_NAME; }"
CMD[cycle:podman]+=" </dev/null >/dev/null 2>>$LOGS/cycle-podman.log"
unset H CR RC P R rt
HF_SHELL=none # hyperfine --shell: none (-N) for the /bin/true benchmark, /bin/sh for cycles
# The image benchmark (bench/images.sh): its rows' commands in CMD, their --prepare
# commands in PREP, status keys img:INPUT:TOOL and pull:INPUT:TOOL.
# shellcheck source=bench/images.sh
source "$BENCH_DIR/images.sh"
img_define

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 2
}

# status.tsv: one line per tool: "tool<TAB>ok<TAB>", "tool<TAB>FAILED<TAB>reason" or
# "tool<TAB>skipped<TAB>BENCH_SKIP".
set_status() {
	local tool=$1 state=$2 reason=${3:-}
	local tmp=$DATA/status.tsv.tmp
	{
		grep -v -P "^\Q$tool\E\t" "$DATA/status.tsv" 2>/dev/null || true
		printf '%s\t%s\t%s\n' "$tool" "$state" "$reason"
	} >"$tmp"
	mv "$tmp" "$DATA/status.tsv"
	if [[ $state != ok ]]; then
		log "$tool: $state: $reason"
	fi
}

# Every status.tsv key: the /bin/true benchmark's tools, then the lifecycle benchmark's.
status_keys() {
	local t
	printf '%s\n' "${ALL_TOOLS[@]}"
	for t in "${CYCLE_TOOLS[@]}"; do printf 'cycle:%s\n' "$t"; done
	for t in "${MONITOR_TOOLS[@]}"; do printf 'monitor:%s\n' "$t"; done
	printf '%s\n' "${IMG_KEYS[@]}"
}

tool_ok() { grep -q -P "^\Q$1\E\tok\t" "$DATA/status.tsv" 2>/dev/null; }
tool_skipped() { grep -q -P "^\Q$1\E\tskipped\t" "$DATA/status.tsv" 2>/dev/null; }

last_line() { tail -n 1 "$1" 2>/dev/null | tr -d '\r' | cut -c1-200; }

# --- outer: runs in the host's mount namespace, only builds files under $WORK -------------

build_reaper() {
	if ! gcc -std=gnu17 -O2 -Wall -Wextra -Werror -static -o "$REAP" "$BENCH_DIR/reap.c" \
		2>"$LOGS/reap-build.log"; then
		log "static link of bench/reap.c failed; linking dynamically (RSS floor is higher)"
		gcc -std=gnu17 -O2 -Wall -Wextra -Werror -o "$REAP" "$BENCH_DIR/reap.c"
	fi
}

build_rootfs() {
	local applet
	mkdir -p "$ROOTFS"/{bin,etc,dev,proc,sys,tmp,run,root,var/tmp}
	chmod 1777 "$ROOTFS/tmp" "$ROOTFS/var/tmp"
	chmod 0700 "$ROOTFS/root"
	install -m 0755 /bin/busybox "$ROOTFS/bin/busybox"
	while read -r applet; do
		[[ -n $applet && $applet != busybox ]] || continue
		ln -s busybox "$ROOTFS/bin/$applet"
	done < <(/bin/busybox --list)
	printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
		'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$ROOTFS/etc/passwd"
	printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$ROOTFS/etc/group"
	# Proves a command ran inside this rootfs (the host has no such file).
	echo 'hutch benchmark rootfs' >"$ROOTFS/$MARKER"
	(cd "$ROOTFS" && tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 \
		-cf "$TARBALL" -- *)
	cp -a "$ROOTFS" "$PODMAN_ROOTFS"
}

make_bundles() {
	local rt
	for rt in crun runc; do
		mkdir -p "$WORK/bundle-$rt" "$STATE/$rt"
		mkdir -p "$WORK/bundle-$rt-sleep"
		if command -v "$rt" >/dev/null; then
			"$rt" spec --bundle "$WORK/bundle-$rt"
			"$PYTHON" "$BENCH_DIR/bundle.py" "$WORK/bundle-$rt/config.json" "$ROOTFS"
			# the lifecycle benchmark's container: the same, running `sleep 1000`
			"$rt" spec --bundle "$WORK/bundle-$rt-sleep"
			"$PYTHON" "$BENCH_DIR/bundle.py" "$WORK/bundle-$rt-sleep/config.json" "$ROOTFS" \
				sleep 1000
		fi
	done
}

# The host's cgroup2 mount, to check afterwards that nothing was left behind in it.
host_cgroup2() {
	if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
		echo /sys/fs/cgroup
	elif [[ -d /sys/fs/cgroup/unified && $(stat -fc %T /sys/fs/cgroup/unified) == cgroup2fs ]]; then
		echo /sys/fs/cgroup/unified
	fi
}

# Removes an empty cgroup tree, deepest first; keeps (and reports) any part still in use.
remove_cgroup_tree() {
	local dir procs
	while read -r dir; do
		# cgroupfs files have size 0: read it; a cgroup may vanish meanwhile (not $(<file):
		# in bash 5.2 its failure ends a `set -e` script)
		procs=$(cat "$dir/cgroup.procs" 2>/dev/null) || continue
		if [[ -n $procs ]]; then
			log "warning: cgroup $dir still has processes; leaving it"
		else
			rmdir "$dir" || log "warning: cannot remove cgroup $dir"
		fi
	done < <(find "$1" -depth -type d)
}

# Cgroups that appeared during the run were made by the tools under test. A parent that a
# tool keeps on purpose (podman's libpod_parent with its conmon child, hutch's hutch/) is
# removed when new and empty; any other new cgroup is a leak: reported, and removed when it
# is in a new tree (inside a tree that existed before, another user may be creating it).
clean_cgroup_leftovers() {
	local cg2=$1 rel top
	[[ -n $cg2 && -f $DATA/cgroup2-before.txt && -z ${CGROUPS_CLEANED:-} ]] || return 0
	CGROUPS_CLEANED=1
	: >"$DATA/cgroup-leftovers.txt"
	while read -r rel; do
		[[ -n $rel ]] || continue
		echo "$rel" >>"$DATA/cgroup-leftovers.txt"
		case $rel in
		libpod_parent | libpod_parent/conmon | hutch) ;;
		hutch/*)
			# hutch/ is shared by every hutch on the machine (other users' tests too)
			log "warning: cgroup $cg2/$rel appeared during the run and is still there: left behind by the benchmark's hutch, or a container of another hutch running on this machine"
			;;
		*) log "warning: cgroup $cg2/$rel was left behind by a tool under test" ;;
		esac
	done < <(list_cgroups "$cg2" | LC_ALL=C comm -13 "$DATA/cgroup2-before.txt" -)
	while read -r top; do
		[[ -z $top ]] || remove_cgroup_tree "$cg2/$top"
	done < <(list_cgroups "$cg2" | grep -v / | LC_ALL=C comm -13 "$DATA/cgroup2-before.txt" -)
}

# Other hutch instances on the machine remove their cgroups meanwhile: a directory gone
# between readdir and stat is not an error.
list_cgroups() {
	(cd "$1" && { find . -mindepth 1 -type d -printf '%P\n' 2>/dev/null || true; } | LC_ALL=C sort)
}

record_env() {
	local v layout
	{
		printf 'date\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		printf 'kernel\t%s\n' "$(uname -r)"
		printf 'cpus\t%s\n' "$(nproc)"
		printf 'loadavg_start\t%s\n' "$(cut -d' ' -f1 /proc/loadavg)"
		printf 'cpu_model\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
		printf 'hutch_commit\t%s\n' "$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
		if [[ -f $HUTCH ]]; then
			printf 'hutch_binary\t%s copied at the start to %s, sha256 %s\n' "$HUTCH_SRC" "$HUTCH" \
				"$(sha256sum "$HUTCH" | cut -d' ' -f1)"
		fi
		layout=$(stat -fc %T /sys/fs/cgroup)
		if [[ -d /sys/fs/cgroup/unified ]]; then
			layout+=" with cgroup2 at /sys/fs/cgroup/unified (hybrid)"
		fi
		printf 'host_cgroup_layout\t%s\n' "$layout"
		for v in hyperfine crun runc bwrap podman; do
			if command -v "$v" >/dev/null; then
				printf '%s_version\t%s\n' "$v" "$("$v" --version 2>&1 | head -n 1)"
			fi
		done
		printf 'rounds\t%s\n' "$ROUNDS"
		printf 'runs\t%s\nwarmup\t%s\npodman_runs\t%s\npodman_warmup\t%s\nrss_runs\t%s\n' \
			"$RUNS" "$WARMUP" "$PODMAN_RUNS" "$PODMAN_WARMUP" "$RSS_RUNS"
		for v in "${ALL_TOOLS[@]}"; do
			printf 'cmd_%s\t%s\n' "$v" "${CMD[$v]}"
		done
		printf 'cycle_runs\t%s\ncycle_warmup\t%s\npodman_cycle_runs\t%s\npodman_cycle_warmup\t%s\n' \
			"$CYCLE_RUNS" "$CYCLE_WARMUP" "$PODMAN_CYCLE_RUNS" "$PODMAN_CYCLE_WARMUP"
		printf 'monitor_containers\t%s\n' "$MONITOR_CONTAINERS"
		printf 'churn_runs\t%s\n' "$CHURN_RUNS"
		for v in "${CYCLE_TOOLS[@]}"; do
			printf 'cmd_cycle_%s\t%s\n' "$v" "${CMD[cycle:$v]}"
		done
	} >"$DATA/env.tsv"
}

outer() {
	local tool key rc host_mntns
	[[ $(id -u) == 0 ]] || die "run as root (the runtimes under test need it): sudo $0"
	[[ $RUNS =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ && $WARMUP =~ ^[0-9]+$ ]] ||
		die "BENCH_RUNS and BENCH_ROUNDS must be positive integers, BENCH_WARMUP an integer"
	[[ $CHURN_RUNS =~ ^[0-9]+$ ]] || die "BENCH_CHURN_RUNS must be an integer (0: no churned rounds)"
	[[ $CYCLE_RUNS =~ ^[1-9][0-9]*$ && $PODMAN_CYCLE_RUNS =~ ^[1-9][0-9]*$ &&
		$MONITOR_CONTAINERS =~ ^[1-9][0-9]*$ && $CYCLE_WARMUP =~ ^[0-9]+$ &&
		$PODMAN_CYCLE_WARMUP =~ ^[0-9]+$ ]] ||
		die "BENCH_CYCLE_RUNS, BENCH_PODMAN_CYCLE_RUNS and BENCH_MONITOR_CONTAINERS must be positive integers, the *_WARMUP ones integers"
	[[ $WORK != *[[:space:]]* && $HUTCH_SRC != *[[:space:]]* ]] ||
		die "BENCH_WORK and HUTCH must not contain whitespace: '$WORK' '$HUTCH_SRC'"
	for tool in hyperfine gcc unshare tar flock timeout "$PYTHON"; do
		command -v "$tool" >/dev/null || die "$tool not found; run 'make bench-deps'"
	done
	if ! /bin/busybox --list >/dev/null 2>&1; then
		die "/bin/busybox (busybox-static) not found; run 'make bench-deps'"
	fi

	mkdir -p "$WORK"
	exec 9>"$WORK/.lock"
	flock -n 9 || die "another bench/run.sh is using $WORK (BENCH_WORK); wait for it to finish"

	# Only what this script made, never $WORK itself (BENCH_WORK may point anywhere).
	rm -rf "$ROOTFS" "$PODMAN_ROOTFS" "$TARBALL" "$HUTCH_ROOT" "$HUTCH_DISK_ROOT" "$STATE" "$PODMAN_DIR" \
		"$LOGS" "$DATA" "$WORK/bundle-crun" "$WORK/bundle-runc" "$REAP" \
		"$WORK/bundle-crun-sleep" "$WORK/bundle-runc-sleep" "${WORK:?}/bin" \
		"$WORK/results.json" "$WORK/results.md"
	mkdir -p "$WORK" "$LOGS" "$DATA" "$STATE" "$PODMAN_DIR"/{root,run,tmp} "$WORK/bin"
	if [[ -f $HUTCH_SRC ]]; then
		install -m 0755 "$HUTCH_SRC" "$HUTCH"
	fi
	: >"$DATA/status.tsv"
	# A tool's name skips all its parts; `cycle` skips the whole lifecycle benchmark.
	for tool in "${SKIP[@]}"; do
		if [[ $tool == cycle ]]; then
			for key in $(status_keys); do
				if [[ $key == cycle:* || $key == monitor:* ]]; then
					set_status "$key" skipped "BENCH_SKIP"
				fi
			done
			continue
		fi
		if [[ $tool == images || $tool == pull ]]; then
			for key in "${IMG_KEYS[@]}"; do
				if [[ $tool == images || $key == pull:* ]]; then
					set_status "$key" skipped "BENCH_SKIP"
				fi
			done
			continue
		fi
		[[ ( -v "CMD[$tool]" && $tool != *:* ) || " ${IMG_SKIP_NAMES[*]} " == *" $tool "* ]] ||
			die "BENCH_SKIP: unknown tool '$tool' (known: ${ALL_TOOLS[*]} cycle ${IMG_SKIP_NAMES[*]})"
		for key in $(status_keys); do
			if [[ $key == "$tool" || $key == *":$tool" ]]; then
				set_status "$key" skipped "BENCH_SKIP"
			fi
		done
	done

	log "building the busybox rootfs, its tarball and OCI bundles in $WORK"
	build_reaper
	build_rootfs
	make_bundles
	record_env
	images_record_env
	images_outer

	CG2=$(host_cgroup2)
	if [[ -n $CG2 ]]; then
		# Left by an earlier run that was killed: the cgroups the peers make, by name.
		for tool in libpod_parent "$CRUN_ID" "$RUNC_ID"; do
			if [[ -d $CG2/$tool ]]; then remove_cgroup_tree "$CG2/$tool"; fi
		done
		trap 'clean_cgroup_leftovers "$CG2"' EXIT
		trap 'exit 130' INT TERM
		list_cgroups "$CG2" >"$DATA/cgroup2-before.txt"
	fi

	# Everything that runs a container happens in a private mount namespace, under a
	# subreaper (orphans such as podman's conmon are reaped there, not left to PID 1).
	host_mntns=$(readlink /proc/self/ns/mnt)
	rc=0
	HUTCH_BENCH_HOST_MNTNS=$host_mntns unshare --mount --propagation private -- \
		"$REAP" -t 30 -o "$DATA/inner-maxrss.txt" -- bash "$BENCH_DIR/run.sh" __inner || rc=$?
	if [[ $rc == 130 ]]; then
		clean_cgroup_leftovers "$CG2"
		log "interrupted; no report"
		exit 130
	elif [[ $rc != 0 ]]; then
		log "the benchmark phase exited with status $rc (see above)"
	fi

	clean_cgroup_leftovers "$CG2"
	printf 'loadavg_end\t%s\n' "$(cut -d' ' -f1 /proc/loadavg)" >>"$DATA/env.tsv"

	for tool in $(status_keys); do
		grep -q -P "^\Q$tool\E\t" "$DATA/status.tsv" ||
			set_status "$tool" FAILED "not benchmarked: the benchmark phase stopped early (exit $rc)"
	done

	rc=0
	"$PYTHON" "$BENCH_DIR/report.py" "$WORK" || rc=$?
	if [[ -s $DATA/churn.txt ]]; then
		{ printf '\n'; cat "$DATA/churn.txt"; } | tee -a "$WORK/results.md"
	fi
	exit "$rc"
}

# --- inner: runs in a private mount namespace, as a child of the subreaper ----------------

on_interrupt() {
	if [[ -n ${HYPERFINE_PID:-} ]]; then
		kill -TERM "$HYPERFINE_PID" 2>/dev/null || true
		wait "$HYPERFINE_PID" 2>/dev/null || true
	fi
	log "interrupted"
	exit 130
}

inner_cleanup() {
	local rt id ids root
	for rt in crun runc; do
		command -v "$rt" >/dev/null || continue
		# every container in the benchmark's own state root: /bin/true's, the cycle's
		ids=$("$rt" --root "$STATE/$rt" list -q 2>/dev/null || true)
		for id in $ids $CRUN_ID $RUNC_ID; do
			timeout -k 5 30 "$rt" --root "$STATE/$rt" delete -f "$id" >/dev/null 2>&1 || true
		done
	done
	if command -v podman >/dev/null; then
		# shellcheck disable=SC2086 # PODMAN_GLOBAL is a list of flags
		timeout -k 5 120 podman $PODMAN_GLOBAL rm --all --force --time 0 >/dev/null 2>&1 || true
	fi
	for root in "$HUTCH_ROOT" "$HUTCH_DISK_ROOT"; do
		[[ -x $HUTCH && -d $root/containers ]] || continue
		ids=$(timeout -k 5 30 "$HUTCH" --root "$root" ps -a -q 2>/dev/null || true)
		if [[ -n $ids ]]; then
			# shellcheck disable=SC2086 # a list of ids
			timeout -k 5 60 "$HUTCH" --root "$root" rm -f $ids >/dev/null 2>&1 || true
		fi
	done
	images_cleanup
	sweep_orphans
}

setup_cgroup2() {
	local fstype
	fstype=$(stat -fc %T /sys/fs/cgroup)
	if [[ $fstype == cgroup2fs ]]; then
		printf 'cgroup_setup\tcgroup2 already at /sys/fs/cgroup (unified host)\n' >>"$DATA/env.tsv"
		return
	fi
	# Hybrid host: crun refuses it, and runc and podman would create their cgroups in the
	# v1 hierarchies the machine's own service uses. Show every process of the benchmark a
	# unified layout instead. This is a mount in our private namespace only; it hides the
	# v1 mounts from the benchmark without touching them.
	mount -t cgroup2 cgroup2 /sys/fs/cgroup
	printf 'cgroup_setup\t%s\n' "cgroup2 mounted at /sys/fs/cgroup in the benchmark's private mount namespace (host: $fstype with v1 hierarchies); no v1 hierarchy is visible to or touched by any tool" >>"$DATA/env.tsv"
}

# hutch's default layout: its data on the disk, its run root (/run/hutch) on a tmpfs, as /run
# is on most hosts (not on these machines, where /run is on the root disk). HUTCH_ROOT's run
# root gets one here, in the private mount namespace only: the host never sees it, and it
# goes with the namespace. The image import and the containers' links stay on the disk.
setup_run_tmpfs() {
	mkdir -p "$HUTCH_ROOT/run"
	mount -t tmpfs -o mode=0700,nosuid,nodev tmpfs "$HUTCH_ROOT/run"
	printf 'hutch_run_root\t%s\n' "hutch: a tmpfs mounted on $HUTCH_ROOT/run in the benchmark's private mount namespace (its default /run/hutch is on a tmpfs on most hosts); hutch-disk: $HUTCH_DISK_ROOT/run on the disk of $WORK" >>"$DATA/env.tsv"
}

# Runs one tool's command once; records ok or FAILED with the reason.
smoke_test() {
	local tool=$1 rc=0 argv
	read -ra argv <<<"${CMD[$tool]}"
	if ! command -v "${argv[0]}" >/dev/null; then
		set_status "$tool" FAILED "${argv[0]} not installed (make bench-deps)"
		return
	fi
	timeout --foreground -k 5 60 "${argv[@]}" </dev/null >"$LOGS/$tool-smoke.log" 2>&1 || rc=$?
	if [[ $rc != 0 ]]; then
		set_status "$tool" FAILED "exit $rc running /bin/true: $(last_line "$LOGS/$tool-smoke.log") (log: $LOGS/$tool-smoke.log)"
		return
	fi
	set_status "$tool" ok
}

# Imports the image into one of hutch's roots and checks `run --rm` there.
#   check_hutch TOOL ROOT   (hutch with HUTCH_ROOT, hutch-disk with HUTCH_DISK_ROOT)
check_hutch() {
	local tool=$1 root=$2 rc=0
	if [[ ! -x $HUTCH ]]; then
		tool_skipped "$tool" || set_status "$tool" FAILED "$HUTCH_SRC does not exist (make build/hutch)"
		return
	fi
	timeout --foreground -k 5 120 "$HUTCH" --root "$root" image import "$TARBALL" bb \
		</dev/null >"$LOGS/$tool-import.log" 2>&1 || rc=$?
	if [[ $rc != 0 ]]; then
		tool_skipped "$tool" ||
			set_status "$tool" FAILED "image import exit $rc: $(last_line "$LOGS/$tool-import.log") (log: $LOGS/$tool-import.log)"
		return
	fi
	# the lifecycle benchmark needs HUTCH_ROOT's image, not a working `run --rm`
	if [[ $tool == hutch ]]; then HUTCH_IMPORTED=1; fi
	if tool_skipped "$tool"; then return 0; fi
	smoke_test "$tool"
	tool_ok "$tool" || return 0
	# A runtime that exits 0 without running anything would win every benchmark: check
	# that the command really runs in the image and that its exit code comes back.
	rc=0
	timeout --foreground -k 5 60 "$HUTCH" --root "$root" run --rm bb /bin/sh -c "test -f /$MARKER && exit 7" \
		</dev/null >"$LOGS/$tool-check.log" 2>&1 || rc=$?
	if [[ $rc != 7 ]]; then
		set_status "$tool" FAILED "'run --rm bb /bin/sh -c \"test -f /$MARKER && exit 7\"' exited $rc, expected 7 (log: $LOGS/$tool-check.log)"
		return
	fi
	record_layout "$tool" "$root"
}

# Where a foreground `run --rm` keeps its container dir under ROOT, seen while one runs:
# a link from ROOT/containers/ID to a dir in the run root when that is in memory, else a dir
# on the disk. To env.tsv (layout_TOOL), which the report shows: what each row measured.
record_layout() {
	local tool=$1 root=$2 pid entry layout='' i
	"$HUTCH" --root "$root" run --rm bb sleep 1 </dev/null >>"$LOGS/$tool-check.log" 2>&1 &
	pid=$!
	for ((i = 0; i < 300 && ${#layout} == 0; i++)); do
		for entry in "$root"/containers/*; do
			if [[ -L $entry ]]; then
				layout="a link to $(readlink "$entry" || true) ($(stat -fLc %T "$entry" 2>/dev/null || true))"
			elif [[ -d $entry ]]; then
				layout="a dir on the disk ($(stat -fc %T "$entry" 2>/dev/null || true))"
			fi
		done
		[[ -n $layout ]] || sleep 0.01
	done
	wait "$pid" || log "$tool: the layout check's run failed (log: $LOGS/$tool-check.log)"
	printf 'layout_%s\t%s\n' "$tool" "${layout:-not seen}" >>"$DATA/env.tsv"
	if [[ $tool == hutch && $layout != *'(tmpfs)' ]]; then
		log "warning: hutch's container dir was ${layout:-not seen}, not in its tmpfs run root: its row does not measure the default layout"
	fi
}

# hyperfine over the given tools; JSON to $DATA/hf-NAME.json, output also to
# $LOGS/hyperfine-NAME.log (to tell which tool made it stop).
run_hyperfine() {
	local name=$1 warmup=$2 runs=$3 tool
	shift 3
	local args=(--shell="$HF_SHELL" --warmup "$warmup" --runs "$runs"
		--export-json "$DATA/hf-$name.json") prepare=0
	for tool in "$@"; do
		if [[ -n ${PREP[$tool]:-} ]]; then prepare=1; fi
	done
	# hyperfine takes one --prepare for all commands or one per command, in their order
	for tool in "$@"; do
		if [[ $prepare == 1 ]]; then args+=(--prepare "${PREP[$tool]:-true}"); fi
	done
	for tool in "$@"; do
		args+=(-n "$tool" "${CMD[$tool]}")
	done
	# In the background so that `wait` returns when Ctrl-C or kill comes (see on_interrupt):
	# hyperfine itself ignores SIGINT and would go on timing.
	local rc=0
	timeout --foreground -k 10 "$HYPERFINE_TIMEOUT" hyperfine "${args[@]}" \
		> >(tee "$LOGS/hyperfine-$name.log") 2>&1 &
	HYPERFINE_PID=$!
	wait "$HYPERFINE_PID" || rc=$?
	HYPERFINE_PID=
	wait # for tee (bash >= 5.1 waits for the last process substitution too)
	return "$rc"
}

# hyperfine stops at the first failing run and writes no JSON. Mark the tool it was timing
# as FAILED (a runtime that fails now and then is a bug to report, not noise) and time the
# round again without it, so the others keep their numbers.
run_round() {
	local name=$1 warmup=$2 runs=$3 failed reason t rc errlog
	shift 3
	local order=("$@") rest
	while [[ ${#order[@]} -gt 0 ]]; do
		rc=0
		run_hyperfine "$name" "$warmup" "$runs" "${order[@]}" || rc=$?
		[[ $rc != 0 ]] || return 0
		rm -f "$DATA/hf-$name.json"
		if [[ $rc -ge 128 ]]; then
			log "hyperfine was interrupted (status $rc); stopping"
			exit 130
		fi
		failed=$(grep -oP '^Benchmark \d+: \K\S+' "$LOGS/hyperfine-$name.log" | tail -n 1 || true)
		if [[ $rc == 124 ]]; then
			reason="no result after ${HYPERFINE_TIMEOUT}s (BENCH_TIMEOUT): hung"
		else
			reason=$(grep -oP 'non-zero exit code: \d+' "$LOGS/hyperfine-$name.log" | tail -n 1 || true)
		fi
		rest=()
		for t in "${order[@]}"; do
			[[ $t == "$failed" ]] || rest+=("$t")
		done
		if [[ -z $failed || ${#rest[@]} == "${#order[@]}" ]]; then
			for t in "${order[@]}"; do
				set_status "$t" FAILED "hyperfine failed in $name (log: $LOGS/hyperfine-$name.log)"
			done
			return 1
		fi
		# the lifecycle commands keep their stderr: the failing step says why
		errlog=$LOGS/${failed//:/-}.log
		if [[ ($failed == cycle:* || $failed == img:* || $failed == pull:*) && -s $errlog ]]; then
			reason="${reason:-failure}, last stderr line: '$(last_line "$errlog")' ($errlog)"
		fi
		set_status "$failed" FAILED "${reason:-failure} in a timing run of $name after passing the single-run check (log: $LOGS/hyperfine-$name.log)"
		cp "$LOGS/hyperfine-$name.log" "$LOGS/hyperfine-$name-$failed-failed.log"
		order=("${rest[@]}")
		if [[ ${#order[@]} -gt 0 ]]; then
			log "timing $name again without $failed: ${order[*]}"
		fi
	done
}

# The machine's speed drifts over seconds (a VM with steal time): if hyperfine ran all of
# one tool's runs and then all of the next's, a slow patch would land on one tool only.
# So the runs are split into ROUNDS hyperfine invocations, each timing every tool side by
# side, in an order rotated each round; report.py pools the runs of all rounds.
#   time_rounds PREFIX WARMUP TOTAL_RUNS TOOL...   (hyperfine files hf-PREFIX-rN.json)
time_rounds() {
	local prefix=$1 warmup=$2 total=$3 tool ok=() order round per_round i n
	shift 3
	for tool in "$@"; do
		if tool_ok "$tool"; then ok+=("$tool"); fi
	done
	n=${#ok[@]}
	[[ $n -gt 0 ]] || return 0
	per_round=$(((total + ROUNDS - 1) / ROUNDS))
	log "timing ${ok[*]} side by side: $ROUNDS round(s) of $warmup warmup + $per_round runs each"
	for ((round = 1; round <= ROUNDS; round++)); do
		order=()
		for ((i = 0; i < n; i++)); do
			tool=${ok[(i + round - 1) % n]}
			if tool_ok "$tool"; then order+=("$tool"); fi
		done
		[[ ${#order[@]} -gt 0 ]] || return 0
		log "round $round/$ROUNDS: ${order[*]}"
		run_round "$prefix-r$round" "$warmup" "$per_round" "${order[@]}" || true
	done
}

time_main() { time_rounds main "$WARMUP" "$RUNS" "${MAIN_TOOLS[@]}"; }

# The churned-disk variant of the main benchmark, for hutch in both layouts and crun (the
# runtimes that make and remove a container's directories per run): a burst of CHURN_RUNS
# runs of each, rotated, then the same interleaved rounds. Its hyperfine files go to
# $DATA/hf-churn/, which report.py does not pool with the quiet rounds; churn_report
# summarises them.
time_churned() {
	local tool i argv ok=()
	[[ $CHURN_RUNS -gt 0 ]] || return 0
	for tool in hutch hutch-disk crun; do
		if tool_ok "$tool"; then ok+=("$tool"); fi
	done
	[[ ${#ok[@]} -gt 0 ]] || return 0
	mkdir -p "$DATA/hf-churn" "$LOGS/hyperfine-churn"
	log "churning the disk: $CHURN_RUNS untimed runs of each of ${ok[*]}"
	for ((i = 0; i < CHURN_RUNS; i++)); do
		for tool in "${ok[@]}"; do
			read -ra argv <<<"${CMD[$tool]}"
			"${argv[@]}" </dev/null >/dev/null 2>>"$LOGS/$tool-churn.log" || true
		done
	done
	time_rounds churn/hf "$WARMUP" "$RUNS" "${ok[@]}"
	churn_report
}

# Pooled medians over the churned rounds, and hutch/crun and hutch-disk/crun over all runs
# and per round, to churn.txt.
churn_report() {
	"$PYTHON" - "$DATA/hf-churn" >"$DATA/churn.txt" <<'PY' || log "churn report failed"
import json, os, statistics, sys
d = sys.argv[1]
order = ["hutch", "hutch-disk", "crun"]
what = {"hutch": "the default layout: data on the disk, run root on a tmpfs",
        "hutch-disk": "all state on the disk"}
pooled, rounds = {}, []
for name in sorted(os.listdir(d), key=lambda n: int(n[4:-5]) if n[4:-5].isdigit() else 0):
    res = {r["command"]: r for r in json.load(open(os.path.join(d, name)))["results"]}
    for tool, r in res.items():
        pooled.setdefault(tool, []).extend(r["times"])
    rounds.append({tool: r["median"] for tool, r in res.items()})
print("Churned disk: the same rounds after %s untimed runs of each tool" % os.environ.get("CHURN_RUNS", "?"))
for tool in sorted(pooled, key=lambda t: order.index(t) if t in order else len(order)):
    print("%-10s median %7.2f ms  runs %d%s" % (tool, statistics.median(pooled[tool]) * 1e3,
          len(pooled[tool]), "  (%s)" % what[tool] if tool in what else ""))
for a, b in (("hutch", "crun"), ("hutch-disk", "crun"), ("hutch", "hutch-disk")):
    if a in pooled and b in pooled:
        m = statistics.median(pooled[a]) / statistics.median(pooled[b])
        per = [r[a] / r[b] for r in rounds if a in r and b in r and r[b] > 0]
        print("%s/%s = %.2fx (per round %s)" % (a, b, m, " ".join("%.2f" % x for x in per)))
PY
	cat "$DATA/churn.txt" >&2
}

time_podman() {
	tool_ok podman || return 0
	log "timing podman: $PODMAN_WARMUP warmup + $PODMAN_RUNS runs"
	run_round podman "$PODMAN_WARMUP" "$PODMAN_RUNS" podman || true
}

measure_rss() {
	local tool i argv kib
	: >"$DATA/rss.tsv"
	# The method's own floor: the host's /bin/true under the same helper.
	for ((i = 0; i < RSS_RUNS; i++)); do
		"$REAP" -o "$DATA/rss.one" -- /bin/true
		printf 'floor\t%s\n' "$(<"$DATA/rss.one")" >>"$DATA/rss.tsv"
	done
	for tool in "${ALL_TOOLS[@]}"; do
		tool_ok "$tool" || continue
		read -ra argv <<<"${CMD[$tool]}"
		for ((i = 0; i < RSS_RUNS; i++)); do
			if ! timeout --foreground -k 5 120 "$REAP" -o "$DATA/rss.one" -- "${argv[@]}" \
				</dev/null >/dev/null 2>>"$LOGS/$tool-rss.log"; then
				log "$tool: a peak-RSS run failed (log: $LOGS/$tool-rss.log)"
				continue
			fi
			kib=$(<"$DATA/rss.one")
			printf '%s\t%s\n' "$tool" "$kib" >>"$DATA/rss.tsv"
		done
	done
	rm -f "$DATA/rss.one"
}

inner() {
	local tool
	[[ -n ${HUTCH_BENCH_HOST_MNTNS:-} ]] || die "__inner is internal to bench/run.sh"
	[[ $(readlink /proc/self/ns/mnt) != "$HUTCH_BENCH_HOST_MNTNS" ]] ||
		die "refusing to mount: not in a private mount namespace"
	setup_cgroup2
	setup_run_tmpfs
	trap inner_cleanup EXIT
	trap on_interrupt INT TERM
	inner_cleanup # a previous run killed half-way may have left a container behind

	for tool in "${ALL_TOOLS[@]}"; do
		if [[ $tool == hutch ]]; then
			# also imports the image, which the lifecycle benchmark needs even when the
			# /bin/true benchmark of hutch is skipped
			if ! tool_skipped hutch || ! tool_skipped cycle:hutch ||
				! tool_skipped monitor:hutch; then
				check_hutch hutch "$HUTCH_ROOT"
			fi
		elif [[ $tool == hutch-disk ]]; then
			tool_skipped hutch-disk || check_hutch hutch-disk "$HUTCH_DISK_ROOT"
		elif ! tool_skipped "$tool"; then
			smoke_test "$tool"
		fi
	done
	time_main
	CHURN_RUNS=$CHURN_RUNS time_churned
	time_podman
	log "measuring peak RSS: $RSS_RUNS runs each"
	measure_rss

	# The lifecycle benchmark (bench/cycle.sh).
	for tool in "${CYCLE_TOOLS[@]}"; do
		tool_skipped "cycle:$tool" || check_cycle "$tool"
	done
	HF_SHELL=/bin/sh time_rounds cycle "$CYCLE_WARMUP" "$CYCLE_RUNS" cycle:hutch cycle:crun cycle:runc
	if tool_ok cycle:podman; then
		log "timing the podman cycle: $PODMAN_CYCLE_WARMUP warmup + $PODMAN_CYCLE_RUNS runs"
		HF_SHELL=/bin/sh run_round cycle-podman "$PODMAN_CYCLE_WARMUP" "$PODMAN_CYCLE_RUNS" \
			cycle:podman || true
	fi
	for tool in "${MONITOR_TOOLS[@]}"; do
		tool_skipped "monitor:$tool" || measure_monitor "$tool"
	done

	# The image benchmark (bench/images.sh).
	images_inner
}

if [[ ${1:-} == __inner ]]; then
	# shellcheck source=bench/cycle.sh
	source "$BENCH_DIR/cycle.sh"
	inner
else
	outer "$@"
fi
