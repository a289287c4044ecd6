# shellcheck shell=bash
# The image benchmark, sourced by bench/run.sh (at the top, in both of its phases). See
# bench/README.md, "Image benchmark".
#
# A ~500 MB, three-layer image made from local files (bench/mkimage.py, cached in
# build/bench/images/) is imported by hutch (OCI layout gzip and zstd, docker archive) and,
# side by side in the same rounds, unpacked by `tar -x` of the same layers one after the
# other (gzip, zstd, uncompressed), `umoci unpack` and `podman load`; one layer alone by
# hutch and `tar -xzf`. Then a pull from Debian's docker-registry on 127.0.0.1: `hutch pull`
# against `skopeo copy` to a directory (which only downloads).
#
# Every timed run writes into a FRESH directory made by hyperfine's --prepare; the last
# run's directory is moved to a trash directory, never deleted, until the whole image
# benchmark is over: this disk is ext4 without a journal, where an inode freed recently is
# not reused and delete-then-unpack cycles slow down sharply (see bench/README.md).
#
# Uses run.sh's globals (WORK, HUTCH, LOGS, DATA, PYTHON, ROOTFS, CMD...) and helpers
# (set_status, tool_ok, tool_skipped, last_line, log, run_round).
#
#   img_define         (top level) the rows' commands (CMD) and --prepare commands (PREP)
#   images_record_env  (outer) commands and versions to env.tsv
#   images_outer       (outer) builds or reuses the inputs, installs missing tools, disk check
#   images_inner       (inner) a checked warm-up run of each row, the rows timed in rounds,
#                      their last results checked, the pull, the unpacked trees deleted
#   images_cleanup     (inner, also on exit) stops the registry

IMAGE_RUNS=${BENCH_IMAGE_RUNS:-5}           # timed runs per row, one per round
IMAGE_PEER_RUNS=${BENCH_IMAGE_PEER_RUNS:-3} # umoci and podman (slow): in the first rounds only
PULL_RUNS=${BENCH_PULL_RUNS:-5}
# Seconds that must have passed since an earlier run deleted its trees before this one's
# image timing starts (see images_inner); the rest is waited for.
IMAGE_SETTLE=${BENCH_IMAGE_SETTLE:-360}
IMG_CACHE=$WORK/images         # bench/mkimage.py's cache: one directory per input version
IMG=$IMG_CACHE/current         # symlink to the current version's directory
IMGRUN=$WORK/imgrun            # the rows' fresh target directories, and the trash
IMG_TRASH=$IMGRUN/trash
REGISTRY_DIR=$WORK/registry    # the registry's config (its storage is cached in $IMG)
IMG_REPO=bench/big             # hutch's image name; the registry's repository (tag 1)
# The registry's port: chosen once by the outer phase, inherited by the inner one.
if [[ -z ${HUTCH_BENCH_REGISTRY_PORT:-} ]]; then
	HUTCH_BENCH_REGISTRY_PORT=${BENCH_REGISTRY_PORT:-$("$PYTHON" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
	export HUTCH_BENCH_REGISTRY_PORT
fi
REGISTRY=127.0.0.1:$HUTCH_BENCH_REGISTRY_PORT
REGISTRY_PID=
REGISTRY_PROBLEM=

# Status keys img:INPUT:TOOL and pull:INPUT:TOOL (the tool last, so that BENCH_SKIP=TOOL
# skips its rows).
IMG_IMPORT_KEYS=(img:gzip:hutch img:zstd:hutch img:docker:hutch img:gzip:tar img:zstd:tar
	img:plain:tar img:gzip:umoci img:docker:podman)
IMG_PEER_KEYS=(img:gzip:umoci img:docker:podman) # timed in the first IMAGE_PEER_RUNS rounds
IMG_L1_KEYS=(img:l1:hutch img:l1:tar)
IMG_PULL_KEYS=(pull:gzip:hutch pull:gzip:skopeo)
IMG_KEYS=("${IMG_IMPORT_KEYS[@]}" "${IMG_L1_KEYS[@]}" "${IMG_PULL_KEYS[@]}")
# shellcheck disable=SC2034 # used by run.sh
IMG_SKIP_NAMES=(images pull tar umoci skopeo) # BENCH_SKIP names besides the runtimes'

# The fresh directory of a row. podman's is short: it refuses a --runroot over 50 characters.
img_target() {
	if [[ $1 == *:podman ]]; then echo "$IMGRUN/pod"; else echo "$IMGRUN/t-${1//:/-}"; fi
}
img_podman_global() {
	echo "--root $1/root --runroot $1/run --tmpdir $1/tmp --cgroup-manager cgroupfs --events-backend none"
}

# The timed commands (run by hyperfine through /bin/sh; stderr to logs/img-*.log or
# logs/pull-*.log) and their --prepare commands: a fresh target directory (the last one
# goes to the trash), then sync, so that no run pays for writing back an earlier one's data.
declare -A PREP=()
declare -A CMD # run.sh's (this keeps its contents)
img_define() {
	local key t i tars mv_old
	for key in "${IMG_KEYS[@]}"; do
		t=$(img_target "$key")
		mv_old="if [ -e $t ]; then mv $t \"\$(mktemp -d $IMG_TRASH/${key//:/-}.XXXXXX)\"/; fi"
		PREP[$key]="$mv_old; mkdir $t && sync"
		case $key in
		img:gzip:hutch) CMD[$key]="$HUTCH --root $t image import $IMG/oci-gzip $IMG_REPO" ;;
		img:zstd:hutch) CMD[$key]="$HUTCH --root $t image import $IMG/oci-zstd $IMG_REPO" ;;
		img:docker:hutch) CMD[$key]="$HUTCH --root $t image import $IMG/docker-archive.tar $IMG_REPO" ;;
		img:gzip:tar | img:zstd:tar | img:plain:tar)
			tars=()
			for i in 1 2 3; do
				case $key in
				img:zstd:*) tars+=("zstd -dcq $IMG/layer$i.tar.zst | tar -xf - -C $t") ;;
				img:plain:*) tars+=("tar -xf $IMG/layer$i.tar -C $t") ;;
				*) tars+=("tar -xzf $IMG/layer$i.tar.gz -C $t") ;;
				esac
			done
			CMD[$key]="${tars[0]} && ${tars[1]} && ${tars[2]}"
			;;
		img:gzip:umoci) CMD[$key]="umoci unpack --image $IMG/oci-gzip:1 $t/bundle" ;;
		img:docker:podman)
			# A fresh store per run as well (podman rmi would free ~28k inodes right before
			# the next rows' runs), initialised in --prepare as a user's store would be.
			PREP[$key]="$mv_old; mkdir -p $t/root $t/run $t/tmp"
			PREP[$key]+=" && podman $(img_podman_global "$t") images -q >/dev/null && sync"
			CMD[$key]="podman $(img_podman_global "$t") load -q -i $IMG/docker-archive.tar"
			;;
		img:l1:hutch) CMD[$key]="$HUTCH --root $t image import $IMG/oci-gzip-l1 $IMG_REPO" ;;
		img:l1:tar) CMD[$key]="tar -xzf $IMG/layer1.tar.gz -C $t" ;;
		pull:gzip:hutch) CMD[$key]="$HUTCH --root $t pull --tls-verify=false $REGISTRY/$IMG_REPO:1" ;;
		pull:gzip:skopeo)
			CMD[$key]="skopeo copy -q --src-tls-verify=false docker://$REGISTRY/$IMG_REPO:1 dir:$t/d"
			;;
		esac
		CMD[$key]="{ ${CMD[$key]}; } </dev/null >/dev/null 2>>$LOGS/${key//:/-}.log"
	done
}

tool_failed() { grep -q -P "^\Q$1\E\tFAILED\t" "$DATA/status.tsv" 2>/dev/null; }

img_all_skipped() {
	local key
	for key in "${IMG_KEYS[@]}"; do
		tool_skipped "$key" || return 1
	done
}

img_fail_all() {
	local key
	for key in "${IMG_KEYS[@]}"; do
		tool_skipped "$key" || set_status "$key" FAILED "$1"
	done
}

# --- outer phase ---------------------------------------------------------------------------

images_record_env() {
	local key v
	{
		printf 'image_runs\t%s\nimage_peer_runs\t%s\npull_runs\t%s\nregistry\t%s\n' \
			"$IMAGE_RUNS" "$IMAGE_PEER_RUNS" "$PULL_RUNS" "$REGISTRY"
		for key in "${IMG_KEYS[@]}"; do
			printf 'cmd_%s\t%s\n' "$key" "${CMD[$key]}"
			printf 'prep_%s\t%s\n' "$key" "${PREP[$key]}"
		done
		for v in umoci skopeo zstd gzip tar; do
			if command -v "$v" >/dev/null; then
				printf '%s_version\t%s\n' "$v" "$("$v" --version 2>&1 | head -n 1)"
			fi
		done
		if command -v docker-registry >/dev/null; then
			printf 'docker-registry_version\t%s\n' "$(docker-registry --version 2>&1 | head -n 1)"
		fi
	} >>"$DATA/env.tsv"
}

images_outer() {
	local out need_kib free_kib runs per_run_kib pkg missing=()
	img_all_skipped && return 0
	[[ $IMAGE_RUNS =~ ^[1-9][0-9]*$ && $IMAGE_PEER_RUNS =~ ^[1-9][0-9]*$ &&
		$PULL_RUNS =~ ^[1-9][0-9]*$ && $IMAGE_SETTLE =~ ^[0-9]+$ ]] ||
		die "BENCH_IMAGE_RUNS, BENCH_IMAGE_PEER_RUNS and BENCH_PULL_RUNS must be positive integers, BENCH_IMAGE_SETTLE an integer"
	for pkg in umoci skopeo docker-registry zstd podman curl; do
		command -v "$pkg" >/dev/null || missing+=("$pkg")
	done
	if [[ ${#missing[@]} -gt 0 ]]; then
		log "installing what the image benchmark needs: ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" >"$LOGS/images-apt.log" 2>&1 ||
			log "apt-get install ${missing[*]} failed (log: $LOGS/images-apt.log)"
	fi
	log "image benchmark: building or reusing its inputs in $IMG_CACHE (bench/mkimage.py)"
	if ! out=$("$PYTHON" "$BENCH_DIR/mkimage.py" "$IMG_CACHE" "$ROOTFS" 2>"$LOGS/images-build.log"); then
		img_fail_all "building the image failed: $(last_line "$LOGS/images-build.log") (log: $LOGS/images-build.log)"
		return 0
	fi
	ln -sfn "$(basename "$out")" "$IMG.tmp" && mv -T "$IMG.tmp" "$IMG"
	cp "$IMG/info.json" "$DATA/images-info.json"
	# Left by an earlier run killed before it emptied its trash: moved aside now (deleting
	# it would free inodes right before the timing), deleted with this run's at the end.
	if [[ -e $IMGRUN ]]; then mv "$IMGRUN" "$WORK/imgrun-stale-$$"; fi
	mkdir -p "$IMG_TRASH" "$REGISTRY_DIR"
	# Nothing is deleted until the end: every run's output stays on disk meanwhile.
	per_run_kib=$("$PYTHON" -c 'import json, sys
i = json.load(open(sys.argv[1]))
print(int((i["file_bytes"] + 4096 * i["entries"]) / 1024))  # a block per entry' "$IMG/info.json")
	# the timed runs and each row's warm-up run
	runs=$(((${#IMG_IMPORT_KEYS[@]} - ${#IMG_PEER_KEYS[@]}) * IMAGE_RUNS +
		${#IMG_PEER_KEYS[@]} * (IMAGE_PEER_RUNS < IMAGE_RUNS ? IMAGE_PEER_RUNS : IMAGE_RUNS) +
		PULL_RUNS + ${#IMG_IMPORT_KEYS[@]} + 1))
	need_kib=$((per_run_kib * runs + per_run_kib * 2 * (IMAGE_RUNS + 1) / 3))
	free_kib=$(df -Pk "$WORK" | awk 'NR == 2 {print $4}')
	printf 'images_disk_needed_kib\t%s\nimages_disk_free_kib\t%s\n' "$need_kib" "$free_kib" >>"$DATA/env.tsv"
	if [[ $free_kib -lt $((need_kib + 5 * 1024 * 1024)) ]]; then
		img_fail_all "not enough free disk: the runs keep about $((need_kib / 1048576)) GiB until the end (each unpacks into a fresh directory) plus 5 GiB to spare, $((free_kib / 1048576)) GiB free in $WORK; lower BENCH_IMAGE_RUNS or free space"
	fi
}

# --- inner phase ---------------------------------------------------------------------------

# What the last run of KEY left in DIR must be right: every layer's marker with its content,
# enough entries, and for hutch the whiteouts as overlayfs whiteouts (0:0 character
# devices). Prints the problem, if any. (A tool that exits 0 and does nothing would win.)
img_verify() {
	local key=$1 dir=$2 layers n got want files
	if [[ $key == pull:*:skopeo ]]; then
		# a `dir:` copy: manifest.json, version, the config and the 3 layers
		files=$(find "$dir/d" -type f 2>/dev/null | wc -l)
		[[ -f $dir/d/manifest.json && $files -ge 6 ]] ||
			echo "skopeo's dir:$dir/d holds $files files, expected manifest.json, version, config and 3 layers"
		return
	fi
	if [[ $key == img:l1:* ]]; then layers=1; else layers=3; fi
	for ((n = 1; n <= layers; n++)); do
		if ! grep -rqs --include="hutch-bench-layer$n" -x "hutch image benchmark, layer $n" "$dir"; then
			echo "no etc/hutch-bench-layer$n with the expected content anywhere under $dir"
			return
		fi
	done
	got=$(find "$dir" | wc -l)
	# merged trees (tar, umoci) hold fewer: shared directories once, whiteouts applied
	want=$("$PYTHON" -c 'import json, sys
i = json.load(open(sys.argv[1]))
print(int(0.85 * (i["layers"][0]["entries"] if sys.argv[2] == "1" else i["entries"])))' \
		"$DATA/images-info.json" "$layers")
	if [[ $got -lt $want ]]; then
		echo "only $got entries under $dir, expected at least $want"
		return
	fi
	if [[ $key == *:hutch && $layers == 3 ]]; then
		got=$(find "$dir" -type c | wc -l)
		want=$("$PYTHON" -c 'import json, sys
print(json.load(open(sys.argv[1]))["layers"][2]["whiteouts"] - 1)  # one is the opaque dir' \
			"$DATA/images-info.json")
		[[ $got -ge $want ]] ||
			echo "$got character devices (overlayfs whiteouts) under $dir, expected $want"
	fi
}

# Before timing, one untimed run of the row, as hyperfine will run it (--prepare, then the
# command): the program is there, works, and its output is right. This is also the
# warm-up: without it the first round ran 1.5-5x slower than the others for every row
# (the first trees written after the other benchmarks' many small deletions).
img_warmup() {
	local key=$1 log=$LOGS/${1//:/-}.log argv0 rc=0 t0 problem
	argv0=${CMD[$key]#\{ }
	argv0=${argv0%% *}
	if ! command -v "$argv0" >/dev/null; then
		set_status "$key" FAILED "$argv0 not installed (make bench-deps)"
		return
	fi
	if ! timeout --foreground -k 5 300 sh -c "${PREP[$key]}" >"$log" 2>&1; then
		set_status "$key" FAILED "its --prepare command failed: $(last_line "$log") (log: $log)"
		return
	fi
	t0=$EPOCHREALTIME
	timeout --foreground -k 5 900 sh -c "${CMD[$key]}" || rc=$?
	printf '%s\t%s\t%s\n' "$key" "$rc" "$("$PYTHON" -c 'import sys
print(f"{float(sys.argv[2]) - float(sys.argv[1]):.3f}")' "$t0" "$EPOCHREALTIME")" \
		>>"$DATA/images-warmup.tsv"
	if [[ $rc != 0 ]]; then
		set_status "$key" FAILED "exit $rc in the warm-up run: $(last_line "$log") (log: $log)"
		return
	fi
	problem=$(img_verify "$key" "$(img_target "$key")")
	if [[ -n $problem ]]; then
		set_status "$key" FAILED "wrong result of the warm-up run: $problem"
		return
	fi
	: >"$log" # from now on: the stderr of the timed runs
	set_status "$key" ok
}

# After timing: the last run's output, still in the row's directory, is right.
img_check_results() {
	local key problem
	for key in "$@"; do
		tool_ok "$key" || continue
		problem=$(img_verify "$key" "$(img_target "$key")")
		if [[ -n $problem ]]; then
			set_status "$key" FAILED "wrong result of the last timed run: $problem"
		fi
	done
}

# Like run.sh's time_rounds, for these rows: one run of every row per round (warm page
# cache: the inputs were read when built or checked), side by side, in an order rotated
# each round; the rows of IMG_PEER_KEYS only in the first PEER rounds.
#   img_rounds PREFIX ROUNDS PEER KEY...    (hyperfine files hf-PREFIX-rN.json)
img_rounds() {
	local prefix=$1 rounds=$2 peer=$3 key ok=() order round i n
	shift 3
	for key in "$@"; do
		if tool_ok "$key"; then ok+=("$key"); fi
	done
	n=${#ok[@]}
	[[ $n -gt 0 ]] || return 0
	log "timing ${ok[*]} side by side: $rounds round(s) of one run each"
	for ((round = 1; round <= rounds; round++)); do
		order=()
		for ((i = 0; i < n; i++)); do
			key=${ok[(i + round - 1) % n]}
			tool_ok "$key" || continue
			if [[ $round -gt $peer && " ${IMG_PEER_KEYS[*]} " == *" $key "* ]]; then continue; fi
			order+=("$key")
		done
		[[ ${#order[@]} -gt 0 ]] || return 0
		log "round $round/$rounds: ${order[*]}"
		HF_SHELL=/bin/sh run_round "$prefix-r$round" 0 1 "${order[@]}" || true
	done
}

# Starts the registry; sets REGISTRY_PROBLEM when it does not answer.
registry_start() {
	local i
	mkdir -p "$REGISTRY_DIR" "$IMG/registry"
	cat >"$REGISTRY_DIR/config.yml" <<-END
		version: 0.1
		log:
		  level: warn
		  accesslog:
		    disabled: true
		storage:
		  filesystem:
		    rootdirectory: $(readlink -f "$IMG")/registry
		  delete:
		    enabled: true
		http:
		  addr: $REGISTRY
	END
	# Not a child of this shell: run.sh's bare `wait` (for tee) would wait for it. The
	# subreaper adopts and reaps it.
	(docker-registry serve "$REGISTRY_DIR/config.yml" </dev/null >"$LOGS/registry.log" 2>&1 &
		echo $! >"$REGISTRY_DIR/pid")
	REGISTRY_PID=$(<"$REGISTRY_DIR/pid")
	for ((i = 0; i < 100; i++)); do
		if curl -fsS -o /dev/null "http://$REGISTRY/v2/" 2>/dev/null; then return 0; fi
		if ! kill -0 "$REGISTRY_PID" 2>/dev/null; then break; fi
		sleep 0.1
	done
	REGISTRY_PROBLEM="docker-registry did not answer on http://$REGISTRY/v2/: $(last_line "$LOGS/registry.log") (log: $LOGS/registry.log)"
	return 1
}

images_cleanup() {
	local i
	if [[ -n $REGISTRY_PID ]]; then
		kill "$REGISTRY_PID" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			# gone, or a zombie until the subreaper reaps it
			[[ $(cut -d' ' -f3 "/proc/$REGISTRY_PID/stat" 2>/dev/null || echo X) == [ZX] ]] && break
			sleep 0.1
		done
		REGISTRY_PID=
	fi
}

img_pull() {
	local key problem="" wanted=0
	for key in "${IMG_PULL_KEYS[@]}"; do
		tool_skipped "$key" || tool_failed "$key" || wanted=1
	done
	[[ $wanted == 1 ]] || return 0
	if ! command -v docker-registry >/dev/null || ! command -v skopeo >/dev/null; then
		problem="docker-registry or skopeo not installed (apt-get install docker-registry skopeo)"
	elif ! registry_start; then
		problem=$REGISTRY_PROBLEM
	else
		log "pushing the gzip image to the registry at $REGISTRY (skopeo copy)"
		if ! skopeo copy -q --dest-tls-verify=false "oci:$IMG/oci-gzip:1" \
			"docker://$REGISTRY/$IMG_REPO:1" >"$LOGS/registry-push.log" 2>&1; then
			problem="skopeo copy to the registry failed: $(last_line "$LOGS/registry-push.log") (log: $LOGS/registry-push.log)"
		fi
	fi
	if [[ -n $problem ]]; then
		for key in "${IMG_PULL_KEYS[@]}"; do
			tool_skipped "$key" || set_status "$key" FAILED "$problem"
		done
		images_cleanup
		return 0
	fi
	for key in "${IMG_PULL_KEYS[@]}"; do
		tool_skipped "$key" || tool_failed "$key" || img_warmup "$key"
	done
	img_rounds pull "$PULL_RUNS" "$PULL_RUNS" "${IMG_PULL_KEYS[@]}"
	img_check_results "${IMG_PULL_KEYS[@]}"
	images_cleanup
}

# Deletes the unpacked trees, several at a time: on this disk (ext4 mounted with
# `discard`) a single `rm -rf` spends most of its time waiting on the device.
img_delete_trash() {
	local start=$SECONDS size dir unit dirs=() units=()
	for dir in "$IMGRUN" "$WORK"/imgrun-stale-*; do
		[[ -d $dir ]] || continue
		dirs+=("$dir")
		# the units deleted in parallel: each row's directory, each run's in the trash
		for unit in "$dir"/* "$dir"/trash/*; do
			if [[ -e $unit && $unit != "$dir/trash" ]]; then units+=("$unit"); fi
		done
	done
	[[ ${#dirs[@]} -gt 0 ]] || return 0
	size=$(du -sch "${dirs[@]}" | tail -n 1 | cut -f1)
	log "image benchmark: deleting the unpacked trees ($size), 8 at a time"
	if [[ ${#units[@]} -gt 0 ]]; then
		printf '%s\0' "${units[@]}" | xargs -0 -n 1 -P 8 rm -rf
	fi
	rm -rf "${dirs[@]}"
	sync
	# when, for the next run's warning (see images_inner)
	date +%s >"$IMG_CACHE/.last-delete"
	printf 'images_trash_delete_s\t%s\n' "$((SECONDS - start))" >>"$DATA/env.tsv"
}

images_inner() {
	local key start=$SECONDS last since
	img_all_skipped && return 0
	# ext4 without a journal skips inodes freed less than 60 s ago (360 s while their inode
	# table block is dirty), and allocating past many of them is slow: right after an
	# earlier run deleted its ~1M inodes, the first rounds ran 1.5-3x slower. Wait until
	# IMAGE_SETTLE seconds have passed since; the report warns when it was less.
	if last=$(cat "$IMG_CACHE/.last-delete" 2>/dev/null) && [[ $last =~ ^[0-9]+$ ]]; then
		since=$(($(date +%s) - last))
		if [[ $since -lt $IMAGE_SETTLE ]]; then
			log "image benchmark: an earlier run deleted its unpacked trees ${since} s ago; waiting $((IMAGE_SETTLE - since)) s until ext4 reuses those inodes (BENCH_IMAGE_SETTLE)"
			sleep "$((IMAGE_SETTLE - since))"
			printf 'images_settle_wait_s\t%s\n' "$((IMAGE_SETTLE - since))" >>"$DATA/env.tsv"
			since=$IMAGE_SETTLE
		fi
		printf 'images_since_last_delete_s\t%s\n' "$since" >>"$DATA/env.tsv"
	fi
	log "image benchmark: one untimed warm-up run of each row, checked"
	for key in "${IMG_IMPORT_KEYS[@]}" "${IMG_L1_KEYS[@]}"; do
		tool_skipped "$key" || tool_failed "$key" || img_warmup "$key"
	done
	img_rounds img "$IMAGE_RUNS" "$IMAGE_PEER_RUNS" "${IMG_IMPORT_KEYS[@]}" "${IMG_L1_KEYS[@]}"
	img_check_results "${IMG_IMPORT_KEYS[@]}" "${IMG_L1_KEYS[@]}"
	img_pull
	img_delete_trash
	printf 'images_inner_s\t%s\n' "$((SECONDS - start))" >>"$DATA/env.tsv"
}
