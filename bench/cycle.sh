# shellcheck shell=bash
# The lifecycle benchmark, sourced by bench/run.sh in its inner phase (the private mount
# namespace, under the subreaper). Uses run.sh's globals (HUTCH, HUTCH_ROOT, STATE, WORK,
# DATA, LOGS, PODMAN_GLOBAL, PODMAN_OPTS, CYCLE_NAME, MONITOR_PREFIX, MONITOR_CONTAINERS...)
# and its helpers (set_status, tool_ok, last_line, log). See bench/README.md.
#
#   check_cycle TOOL      one checked cycle: the container runs `sleep 1000` in the
#                         benchmark's rootfs, is gone after stop/kill, its state after rm
#   measure_monitor TOOL  MONITOR_CONTAINERS detached containers at once: the memory of
#                         each one's supervisor (hutch's monitor, podman's conmon)
#   sweep_orphans         kills (and records) what is still running under the subreaper
#
# Data written: data/container-parent.tsv (tool, parent of the container process, its
# pid, "supervisor" if it is the tool's supervisor), data/monitor.tsv (tool, container, supervisor pid, VmRSS, Rss, Pss, USS in KiB),
# data/leftover-processes.txt.

# Is PID alive and not a zombie? (exited children of the subreaper are zombies until reaped)
running() {
	local st
	# not $(<file): in bash 5.2 its failure exits a `set -e` shell despite the ||
	read -r st 2>/dev/null <"/proc/$1/stat" || return 1
	st=${st##*) } # after "PID (COMM) ": the state letter first
	[[ -n $st && ${st:0:1} != [ZX] ]]
}

ppid_of() {
	local st
	read -r st 2>/dev/null <"/proc/$1/stat" || return 1
	st=${st##*) }
	read -r _ st _ <<<"$st"
	echo "$st"
}

comm_of() { cat "/proc/$1/comm" 2>/dev/null || echo '?'; }
cmdline_of() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | sed 's/ $//'; }

# wait_gone PID SECONDS: until PID no longer runs; status 1 if it still does.
wait_gone() {
	local pid=$1 deadline=$((SECONDS + $2))
	while running "$pid"; do
		[[ $SECONDS -lt $deadline ]] || return 1
		sleep 0.05
	done
}

# Prints "VmRSS Rss Pss USS" of PID in KiB: VmRSS from status, the rest from
# smaps_rollup (USS = Private_Clean + Private_Dirty: what the process alone costs).
mem_kib() {
	local vmrss rest
	vmrss=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null)
	rest=$(awk '/^Rss:/ {r = $2} /^Pss:/ {p = $2} /^Private_(Clean|Dirty):/ {u += $2}
		END {if (r != "") print r, p, u}' "/proc/$1/smaps_rollup" 2>/dev/null)
	[[ -n $vmrss && -n $rest ]] || return 1
	echo "$vmrss $rest"
}

# json_fields KEY... < JSON: the keys of an object (or of the first object of a list).
json_fields() {
	"$PYTHON" -c 'import json, sys
d = json.load(sys.stdin)
d = d[0] if isinstance(d, list) and d else d
print(" ".join(str(d.get(k, "")) if isinstance(d, dict) else "" for k in sys.argv[1:]))' "$@"
}

# The container process must be `sleep 1000`, running in the benchmark's rootfs (a runtime
# that did not really start it would win the benchmark). Prints a reason on failure.
container_problem() {
	local pid=$1 cmd
	if [[ ! $pid =~ ^[1-9][0-9]*$ ]] || ! running "$pid"; then
		echo "the container process (pid '$pid') is not running"
		return
	fi
	cmd=$(cmdline_of "$pid")
	if [[ $cmd != "sleep 1000" ]]; then
		echo "the container process $pid runs '$cmd', expected 'sleep 1000'"
	elif [[ ! -e /proc/$pid/root/$MARKER ]]; then
		echo "the container process $pid does not run in the benchmark's rootfs (no /$MARKER)"
	fi
}

# record_parent TOOL CONTAINER_PID [SUPERVISOR_PID]: who the container process's parent is
# (tool, parent's comm, its pid, "supervisor" when it is the given supervisor).
record_parent() {
	local tool=$1 pid=$2 parent
	parent=$(ppid_of "$pid") || return 0
	printf '%s\t%s\t%s\t%s\n' "$tool" "$(comm_of "$parent")" "$parent" \
		"$([[ $parent == "${3:-}" ]] && echo supervisor)" >>"$DATA/container-parent.tsv"
}

check_cycle() {
	local tool=$1 key=cycle:$1 log=$LOGS/cycle-$1-check.log problem=''
	: >"$log"
	case $tool in
	hutch)
		if [[ ! -x $HUTCH ]]; then
			problem="$HUTCH_SRC does not exist (make build/hutch)"
		elif [[ -z ${HUTCH_IMPORTED:-} ]]; then
			problem="no image: 'hutch image import' failed (log: $LOGS/hutch-import.log)"
		else
			problem=$(check_cycle_hutch "$log") || true
		fi
		;;
	crun | runc)
		if ! command -v "$tool" >/dev/null; then
			problem="$tool not installed (make bench-deps)"
		else
			problem=$(check_cycle_oci "$tool" "$log") || true
		fi
		;;
	podman)
		if ! command -v podman >/dev/null; then
			problem="podman not installed (make bench-deps)"
		else
			problem=$(check_cycle_podman "$log") || true
		fi
		;;
	esac
	if [[ -n $problem ]]; then
		set_status "$key" FAILED "cycle check: $problem (log: $log)"
	else
		set_status "$key" ok
	fi
}

# Each check_cycle_* prints what went wrong (nothing when all is well). Outputs of the
# tools go to files, not through $(...): a process that keeps the pipe (say, a monitor
# that inherited the CLI's stdout) would hang the benchmark instead of failing it.

check_cycle_hutch() {
	local log=$1 h=("$HUTCH" --root "$HUTCH_ROOT") rc=0 id status mpid cpid cgroup problem
	local out=$DATA/cycle-hutch.out
	timeout --foreground -k 5 60 "${h[@]}" run -d --name "$CYCLE_NAME" bb sleep 1000 \
		</dev/null >"$out" 2>>"$log" || rc=$?
	if [[ $rc != 0 ]]; then
		echo "'run -d --name $CYCLE_NAME bb sleep 1000' exited $rc: $(last_line "$log")"
		return
	fi
	id=$(head -c 200 "$out" | tr -d '\n')
	if [[ ! $id =~ ^[0-9a-f]{64}$ ]]; then
		echo "'run -d' printed '$id', expected the container's 64-hex id"
		return
	fi
	if ! timeout --foreground -k 5 30 "${h[@]}" inspect "$CYCLE_NAME" </dev/null >"$out" 2>>"$log"; then
		echo "'inspect $CYCLE_NAME' failed right after 'run -d': $(last_line "$log")"
		return
	fi
	read -r status mpid cpid cgroup < <(json_fields status monitor_pid pid cgroup <"$out" 2>>"$log")
	if [[ $status != running ]]; then
		echo "inspect says status '$status' right after 'run -d', expected running"
		return
	fi
	problem=$(container_problem "$cpid")
	if [[ -n $problem ]]; then
		echo "after 'run -d': $problem"
		return
	fi
	# the monitor is hutch while it starts the container, then the tiny keeper
	if ! running "$mpid" || [[ $(comm_of "$mpid") != hutch && $(comm_of "$mpid") != hutch-keeper ]]; then
		echo "inspect's monitor_pid '$mpid' is not a running hutch process ($(comm_of "$mpid"))"
		return
	fi
	record_parent hutch "$cpid" "$mpid"
	rc=0
	timeout --foreground -k 5 60 "${h[@]}" stop -t 0 "$CYCLE_NAME" </dev/null >>"$log" 2>&1 || rc=$?
	if [[ $rc != 0 ]]; then
		echo "'stop -t 0 $CYCLE_NAME' exited $rc: $(last_line "$log")"
		return
	fi
	# `stop` waits for the container and for the monitor to record its exit.
	if running "$cpid"; then
		echo "the container process $cpid still runs after 'stop -t 0' returned"
		return
	fi
	if running "$mpid"; then
		echo "the monitor $mpid still runs after 'stop -t 0' returned"
		return
	fi
	if ! timeout --foreground -k 5 30 "${h[@]}" inspect "$CYCLE_NAME" </dev/null >"$out" 2>>"$log"; then
		echo "'inspect $CYCLE_NAME' failed after 'stop': $(last_line "$log")"
		return
	fi
	read -r status < <(json_fields status <"$out" 2>>"$log")
	if [[ $status != exited ]]; then
		echo "inspect says status '$status' after 'stop -t 0', expected exited"
		return
	fi
	rc=0
	timeout --foreground -k 5 60 "${h[@]}" rm "$CYCLE_NAME" </dev/null >>"$log" 2>&1 || rc=$?
	if [[ $rc != 0 ]]; then
		echo "'rm $CYCLE_NAME' exited $rc: $(last_line "$log")"
		return
	fi
	if timeout --foreground -k 5 30 "${h[@]}" inspect "$CYCLE_NAME" </dev/null >/dev/null 2>&1; then
		echo "'inspect $CYCLE_NAME' still finds the container after 'rm'"
		return
	fi
	if [[ -n $cgroup && -d $cgroup ]]; then
		echo "the container's cgroup $cgroup is still there after 'rm'"
		return
	fi
	if [[ -e $HUTCH_ROOT/run/containers/$id || -e $HUTCH_ROOT/containers/$id ]]; then
		echo "state of container $id is left under $HUTCH_ROOT after 'rm'"
	fi
}

check_cycle_oci() {
	local rt=$1 log=$2 id=$CYCLE_NAME-$1 out=$DATA/cycle-$1.out status pid problem
	local s=("$rt" --root "$STATE/$rt")
	if ! timeout --foreground -k 5 60 "${s[@]}" create --bundle "$WORK/bundle-$rt-sleep" "$id" \
		</dev/null >/dev/null 2>>"$log"; then
		echo "create failed: $(last_line "$log")"
		return
	fi
	if ! timeout --foreground -k 5 60 "${s[@]}" start "$id" </dev/null >/dev/null 2>>"$log"; then
		echo "start failed: $(last_line "$log")"
		return
	fi
	if ! timeout --foreground -k 5 30 "${s[@]}" state "$id" </dev/null >"$out" 2>>"$log"; then
		echo "state failed after start: $(last_line "$log")"
		return
	fi
	read -r status pid < <(json_fields status pid <"$out" 2>>"$log")
	if [[ $status != running ]]; then
		echo "state says '$status' after start, expected running"
		return
	fi
	problem=$(container_problem "$pid")
	if [[ -n $problem ]]; then
		echo "after start: $problem"
		return
	fi
	record_parent "$rt" "$pid"
	if ! timeout --foreground -k 5 30 "${s[@]}" kill "$id" KILL </dev/null >/dev/null 2>>"$log" ||
		! timeout --foreground -k 5 60 "${s[@]}" delete -f "$id" </dev/null >/dev/null 2>>"$log"; then
		echo "kill or delete -f failed: $(last_line "$log")"
		return
	fi
	if ! wait_gone "$pid" 5; then
		echo "the container process $pid still runs 5 s after 'delete -f'"
		return
	fi
	if "${s[@]}" state "$id" </dev/null >/dev/null 2>&1; then
		echo "'state $id' still finds the container after 'delete -f'"
	fi
}

check_cycle_podman() {
	local log=$1 out=$DATA/cycle-podman.out rc=0 id status pid conmon problem
	local p
	read -ra p <<<"podman $PODMAN_GLOBAL"
	local opts
	read -ra opts <<<"$PODMAN_OPTS"
	timeout --foreground -k 5 120 "${p[@]}" run -d --name "$CYCLE_NAME" "${opts[@]}" \
		--rootfs "$PODMAN_ROOTFS" sleep 1000 </dev/null >"$out" 2>>"$log" || rc=$?
	if [[ $rc != 0 ]]; then
		echo "'run -d' exited $rc: $(last_line "$log")"
		return
	fi
	id=$(tail -n 1 "$out")
	if ! timeout --foreground -k 5 60 "${p[@]}" inspect --format \
		'{{.State.Status}} {{.State.Pid}} {{.State.ConmonPid}}' "$CYCLE_NAME" \
		</dev/null >"$out" 2>>"$log"; then
		echo "inspect failed after 'run -d': $(last_line "$log")"
		return
	fi
	read -r status pid conmon <"$out"
	if [[ $status != running ]]; then
		echo "inspect says '$status' after 'run -d', expected running"
		return
	fi
	problem=$(container_problem "$pid")
	if [[ -n $problem ]]; then
		echo "after 'run -d': $problem"
		return
	fi
	conmon=$(find_conmon "$id" "$conmon" "$pid")
	if [[ -z $conmon ]]; then
		echo "no conmon process found for container $id"
		return
	fi
	record_parent podman "$pid" "$conmon"
	if ! timeout --foreground -k 5 120 "${p[@]}" stop -t 0 "$CYCLE_NAME" </dev/null >/dev/null 2>>"$log" ||
		! timeout --foreground -k 5 120 "${p[@]}" rm "$CYCLE_NAME" </dev/null >/dev/null 2>>"$log"; then
		echo "stop or rm failed: $(last_line "$log")"
		return
	fi
	if ! wait_gone "$pid" 5; then
		echo "the container process $pid still runs 5 s after 'stop' and 'rm'"
	elif ! wait_gone "$conmon" 5; then
		echo "conmon $conmon still runs 5 s after 'stop' and 'rm'"
	fi
}

# find_conmon ID [PID_FROM_INSPECT] [CONTAINER_PID]: the conmon supervising container ID,
# checked by its arguments (-c ID / --cid ID); else searched for in /proc; else the
# container's parent if that is a conmon.
find_conmon() {
	local id=$1 pid
	is_conmon_of() {
		[[ $1 =~ ^[1-9][0-9]*$ && $(comm_of "$1") == conmon ]] || return 1
		local args
		args=" $(cmdline_of "$1") "
		[[ $args == *" -c $id "* || $args == *" --cid $id "* || $args == *" --cid=$id "* ]]
	}
	if [[ -n ${2:-} ]] && is_conmon_of "$2"; then
		echo "$2"
		return
	fi
	for pid in /proc/[0-9]*; do
		pid=${pid#/proc/}
		if is_conmon_of "$pid"; then
			echo "$pid"
			return
		fi
	done
	if [[ -n ${3:-} ]] && pid=$(ppid_of "$3") && [[ $(comm_of "$pid") == conmon ]]; then
		echo "$pid"
	fi
	return 0
}

# MONITOR_CONTAINERS detached `sleep 1000` containers at once; then the memory of each
# one's supervisor; then remove them all and check that the supervisors are gone.
measure_monitor() {
	local tool=$1 key=monitor:$1 log=$LOGS/monitor-$1.log out=$DATA/monitor-$1.out
	local i name names=() problem='' sup cpid status id vals rc pids=()
	local h=("$HUTCH" --root "$HUTCH_ROOT") p opts
	read -ra p <<<"podman $PODMAN_GLOBAL"
	read -ra opts <<<"$PODMAN_OPTS"
	: >"$log"
	if [[ $tool == hutch && -z ${HUTCH_IMPORTED:-} ]]; then
		set_status "$key" FAILED "no image: hutch's image import failed or hutch is missing"
		return
	elif [[ $tool == podman ]] && ! command -v podman >/dev/null; then
		set_status "$key" FAILED "podman not installed (make bench-deps)"
		return
	fi
	log "$tool: starting $MONITOR_CONTAINERS detached containers to measure their supervisors"
	for ((i = 1; i <= MONITOR_CONTAINERS; i++)); do
		name=$MONITOR_PREFIX$i
		names+=("$name")
		rc=0
		if [[ $tool == hutch ]]; then
			timeout --foreground -k 5 60 "${h[@]}" run -d --name "$name" bb sleep 1000 \
				</dev/null >/dev/null 2>>"$log" || rc=$?
		else
			timeout --foreground -k 5 120 "${p[@]}" run -d --name "$name" "${opts[@]}" \
				--rootfs "$PODMAN_ROOTFS" sleep 1000 </dev/null >/dev/null 2>>"$log" || rc=$?
		fi
		if [[ $rc != 0 ]]; then
			problem="'run -d' of container $i of $MONITOR_CONTAINERS exited $rc: $(last_line "$log")"
			break
		fi
	done
	for name in "${names[@]}"; do
		[[ -z $problem ]] || break
		if [[ $tool == hutch ]]; then
			if ! timeout --foreground -k 5 30 "${h[@]}" inspect "$name" </dev/null >"$out" 2>>"$log"; then
				problem="'inspect $name' failed: $(last_line "$log")"
				break
			fi
			read -r status sup cpid < <(json_fields status monitor_pid pid <"$out" 2>>"$log") || true
			if ! running "$sup" ||
				[[ $(comm_of "$sup") != hutch && $(comm_of "$sup") != hutch-keeper ]]; then
				problem="$name: monitor_pid '$sup' is not a running hutch process"
				break
			fi
		else
			if ! timeout --foreground -k 5 60 "${p[@]}" inspect --format \
				'{{.State.Status}} {{.State.Pid}} {{.State.ConmonPid}} {{.Id}}' "$name" \
				</dev/null >"$out" 2>>"$log"; then
				problem="'inspect $name' failed: $(last_line "$log")"
				break
			fi
			read -r status cpid sup id <"$out" || true
			sup=$(find_conmon "$id" "$sup" "$cpid")
			if [[ -z $sup ]]; then
				problem="$name: no conmon process found"
				break
			fi
		fi
		if [[ $status != running ]] || ! running "$cpid"; then
			problem="$name: status '$status', container process '$cpid' not running"
			break
		fi
		pids+=("$sup" "$cpid")
		if ! vals=$(mem_kib "$sup"); then
			problem="$name: cannot read the memory of its supervisor $sup"
			break
		fi
		printf '%s\t%s\t%s\t%s\n' "$tool" "$name" "$sup" "${vals// /$'\t'}" >>"$DATA/monitor.tsv"
	done

	# Remove them all (also after a failure), and check that nothing of them is left.
	rc=0
	if [[ $tool == hutch ]]; then
		timeout --foreground -k 5 120 "${h[@]}" rm -f "${names[@]}" </dev/null >/dev/null 2>>"$log" || rc=$?
	else
		timeout --foreground -k 5 300 "${p[@]}" rm -f -t 0 "${names[@]}" </dev/null >/dev/null 2>>"$log" || rc=$?
	fi
	if [[ -z $problem && $rc != 0 ]]; then
		problem="'rm -f' of the $MONITOR_CONTAINERS containers exited $rc: $(last_line "$log")"
	fi
	for sup in "${pids[@]}"; do
		# hutch's rm -f waits for container and monitor; podman's conmon takes a moment
		if ! wait_gone "$sup" "$([[ $tool == hutch ]] && echo 0 || echo 5)"; then
			[[ -n $problem ]] ||
				problem="process $sup ($(comm_of "$sup")) still runs after 'rm -f' returned"
		fi
	done
	if [[ -n $problem ]]; then
		set_status "$key" FAILED "$problem (log: $log)"
	else
		set_status "$key" ok
	fi
}

# Kills what still runs under the subreaper (our parent) besides this shell, after the
# tools' own cleanup: containers, monitors or conmons that survived their removal. They are
# listed in data/leftover-processes.txt and reported; exiting ones get a few seconds first.
sweep_orphans() {
	local reaper=$PPID pid st left tries=0 kills=0
	[[ $(comm_of "$reaper") == reap ]] || return 0
	while :; do
		left=()
		for st in /proc/[0-9]*/stat; do
			pid=${st#/proc/}
			pid=${pid%/stat}
			[[ $pid != "$$" ]] || continue
			[[ $(ppid_of "$pid" 2>/dev/null) == "$reaper" ]] && running "$pid" && left+=("$pid")
		done
		[[ ${#left[@]} -gt 0 ]] || return 0
		if ((tries++ < 50)); then # up to 5 s: podman's cleanup processes finish on their own
			sleep 0.1
			continue
		fi
		if ((kills++ >= 3)); then
			log "warning: cannot kill processes ${left[*]}; leaving them"
			return 0
		fi
		for pid in "${left[@]}"; do
			printf '%s\t%s\t%s\n' "$pid" "$(comm_of "$pid")" "$(cmdline_of "$pid" | cut -c1-300)" \
				>>"$DATA/leftover-processes.txt"
			log "warning: process $pid ($(comm_of "$pid")) outlived the benchmark's cleanup; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		done
		tries=45 # give what the kills reparented (a monitor's container) a moment, too
	done
}
