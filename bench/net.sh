#!/usr/bin/env bash
# Network benchmark (issue 10): what putting a container on a bridge network costs.
#   attach: `hutch run --rm --network NAME bb true` against `--network none`, with another
#           container on NAME (warm: bridge, rules and DNS server there) and alone on it
#           (cold: the bridge, the nft table and the DNS server made and taken down by each
#           run), against podman on its default network (and podman --network none);
#           hyperfine, in interleaved rounds (the machine is shared: ratios, not absolutes).
#   iperf3: TCP throughput between two containers of one network (iperf3 run in their
#           network namespaces: the busybox image has none) against a bare veth pair
#           between two namespaces, the floor; then through a published port from the
#           host side (127.0.0.1:HOST): hutch -p against podman -p, rootful and, as
#           BENCH_NET_USER (hutchtest) in a second namespace, rootless (BENCH_SKIP=rootless
#           leaves that out; BENCH_SKIP=rootful leaves out everything else): there also
#           by the host's non-loopback address (pasta's tap path) and a container's
#           download from a server on the host's address, BENCH_NET_IPERF_ROUNDS (3).
#   dns:    the memory of a network's DNS server process (RSS, PSS, private dirty).
# See bench/README.md, "Network benchmark".
#
# Root only. Everything runs in one private mount and network namespace of its own
# (unshare): the bridges, veths and nft tables of hutch and podman exist only there, and
# podman's cgroups and state are in a cgroup2 and /run mounted in there; hutch's run root
# is a tmpfs there too, as /run/hutch is on a default install.
#
# Exit status: 0 when everything ran; 1 when a part failed (the rest is still reported);
# 2 on bad setup.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
export WORK=${BENCH_WORK:-$REPO/build/bench}/net
export HUTCH_SRC=${HUTCH_SRC:-${HUTCH:-$REPO/build/hutch}}
export ROUNDS=${BENCH_NET_ROUNDS:-5}
export RUNS=${BENCH_NET_RUNS:-10}               # hutch runs per command and round
export PODMAN_RUNS=${BENCH_NET_PODMAN_RUNS:-3}  # podman's, per round
export IPERF_SECONDS=${BENCH_NET_IPERF_SECONDS:-5}
export IPERF_ROUNDS=${BENCH_NET_IPERF_ROUNDS:-3} # rootless published-port rounds
read -ra SKIP <<<"${BENCH_SKIP:-}"
PYTHON=${PYTHON:-/usr/bin/python3}

log() { printf 'bench/net: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 2
}
skipped() { [[ " ${SKIP[*]} " == *" $1 "* || " ${SKIP[*]} " == *" net "* ]]; }

inner() {
	HUTCH=$WORK/bin/hutch
	H="$HUTCH --root $WORK/hutch-root"
	P="podman --root $WORK/podman/root --runroot $WORK/podman/run --tmpdir $WORK/podman/tmp"
	P+=" --network-config-dir $WORK/podman/networks --cgroup-manager cgroupfs"
	P+=" --events-backend none"
	# as bench/run.sh runs podman (its default runtime cannot set these limits here)
	PO="--runtime runc --pids-limit -1 --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
	[[ $(readlink /proc/self/ns/mnt) != "$HOST_MNTNS" ]] || die "not in a private mount namespace"
	[[ $(readlink /proc/self/ns/net) != "$HOST_NETNS" ]] || die "not in a private network namespace"
	if [[ $(stat -fc %T /sys/fs/cgroup) != cgroup2fs ]]; then
		mount -t cgroup2 cgroup2 /sys/fs/cgroup # in here only
	fi
	mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/containers /run/netns
	# hutch's run root on a tmpfs, as its default /run/hutch is
	mkdir -p "$WORK/hutch-root/run" && mount -t tmpfs -o mode=0700 tmpfs "$WORK/hutch-root/run"
	ip link set lo up
	status=0
	: >"$WORK/attach.tsv"

	$H image import "$WORK/rootfs.tar" bb >/dev/null
	$H network create warm >/dev/null
	$H network create cold >/dev/null
	$H run -d --name anchor --network warm bb sleep 100000 >/dev/null
	declare -A CMD=(
		[none]="$H run --rm --network none bb true"
		[warm]="$H run --rm --network warm bb true"
		[cold]="$H run --rm --network cold bb true"
	)
	local tools=(none warm cold)
	if ! skipped podman && command -v podman >/dev/null; then
		CMD[podman - none]="$P run --rm $PO --network none --rootfs $WORK/rootfs-podman /bin/true"
		CMD[podman]="$P run --rm $PO --network bridge --rootfs $WORK/rootfs-podman /bin/true"
		if ${CMD[podman]} && ${CMD[podman - none]}; then
			tools+=("podman - none" podman)
		else
			log "podman failed a first run: left out"
			status=1
		fi
	fi
	local t r runs
	for t in "${tools[@]}"; do # each must do what it says
		${CMD[$t]} || {
			log "$t: the command failed: ${CMD[$t]}"
			exit 1
		}
	done
	for ((r = 1; r <= ROUNDS; r++)); do
		for t in "${tools[@]}"; do
			runs=$RUNS
			[[ $t != podman* ]] || runs=$PODMAN_RUNS
			hyperfine -N -w 1 -r "$runs" --export-json "$WORK/h.json" "${CMD[$t]}" \
				>/dev/null 2>>"$WORK/logs/hyperfine.log"
			"$PYTHON" -c 'import json, sys
for t in json.load(open(sys.argv[1]))["results"][0]["times"]:
    print(f"{sys.argv[2]}\t{sys.argv[3]}\t{t * 1000:.3f}")' "$WORK/h.json" "$t" "$r" \
				>>"$WORK/attach.tsv"
		done
		log "attach round $r of $ROUNDS done"
	done
	# the warm network's DNS server, idle
	local pid
	read -r pid _ <"$WORK/hutch-root/run/dns/warm.pid" # "PID START"
	awk '/^VmRSS:/ {r = $2} END {printf "rss_kib\t%s\n", r}' "/proc/$pid/status" >"$WORK/dns.tsv"
	awk '/^Pss:/ {p = $2} /^Private_Dirty:/ {d = $2} END {printf "pss_kib\t%s\nprivate_dirty_kib\t%s\n", p, d}' \
		"/proc/$pid/smaps_rollup" >>"$WORK/dns.tsv"

	: >"$WORK/iperf.tsv"
	if ! skipped iperf3 && command -v iperf3 >/dev/null; then
		# two containers of the warm network; iperf3 in their namespaces
		$H run -d --name srv --network warm bb sleep 100000 >/dev/null
		local srv_ip spid cpid
		srv_ip=$($H network inspect warm | "$PYTHON" -c 'import json, sys
print([m["address"] for m in json.load(sys.stdin)[0]["members"] if m["name"] == "srv"][0])')
		spid=$($H inspect srv | "$PYTHON" -c 'import json, sys
d = json.load(sys.stdin); d = d[0] if isinstance(d, list) else d; print(d["pid"])')
		cpid=$($H inspect anchor | "$PYTHON" -c 'import json, sys
d = json.load(sys.stdin); d = d[0] if isinstance(d, list) else d; print(d["pid"])')
		# the floor: a bare veth pair between two namespaces of our own
		ip netns add nb-a && ip netns add nb-b
		ip link add nb0 netns nb-a type veth peer name nb1 netns nb-b
		ip -n nb-a addr add 10.99.0.1/24 dev nb0 && ip -n nb-a link set nb0 up
		ip -n nb-b addr add 10.99.0.2/24 dev nb1 && ip -n nb-b link set nb1 up
		ip -n nb-a link set lo up && ip -n nb-b link set lo up
		iperf_pair() { # NAME SERVER_NS CLIENT_NS ADDRESS
			nsenter --net="$2" iperf3 -s -1 -B "$4" >/dev/null 2>&1 &
			local sp=$! gbps
			sleep 0.3
			gbps=$(nsenter --net="$3" iperf3 -c "$4" -t "$IPERF_SECONDS" -J 2>>"$WORK/logs/iperf.log" |
				"$PYTHON" -c 'import json, sys
print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))') || gbps=
			wait "$sp" 2>/dev/null || true
			printf '%s\t%s\n' "$1" "${gbps:-FAILED}" >>"$WORK/iperf.tsv"
		}
		for ((r = 1; r <= 3; r++)); do
			iperf_pair veth /run/netns/nb-a /run/netns/nb-b 10.99.0.1
			iperf_pair hutch "/proc/$spid/ns/net" "/proc/$cpid/ns/net" "$srv_ip"
		done
		ip netns del nb-a
		ip netns del nb-b
		$H rm -f srv >/dev/null
		# a published port: iperf3 -s in the container's namespace, the client on the
		# host side (this benchmark's namespace) reaching it by 127.0.0.1:HOST; hutch -p
		# against podman -p on its default network (netavark)
		local ppid podpid=
		$H run -d --name pub -p 15201:5201 bb sleep 100000 >/dev/null
		ppid=$($H inspect pub | "$PYTHON" -c 'import json, sys
d = json.load(sys.stdin); d = d[0] if isinstance(d, list) else d; print(d["pid"])')
		if command -v podman >/dev/null && ! skipped podman &&
			$P run -d --name pub $PO -p 15202:5201 --rootfs "$WORK/rootfs-podman" \
				/bin/sleep 100000 >/dev/null 2>>"$WORK/logs/podman.log"; then
			podpid=$($P inspect -f '{{.State.Pid}}' pub)
		else
			log "podman -p failed: left out of the published-port throughput"
			status=1
		fi
		iperf_port() { # NAME SERVER_NS HOST_PORT
			nsenter --net="$2" iperf3 -s -1 >/dev/null 2>&1 &
			local sp=$! gbps
			sleep 0.3
			gbps=$(iperf3 -c 127.0.0.1 -p "$3" -t "$IPERF_SECONDS" -J 2>>"$WORK/logs/iperf.log" |
				"$PYTHON" -c 'import json, sys
print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))') || gbps=
			kill "$sp" 2>/dev/null || true
			wait "$sp" 2>/dev/null || true
			printf '%s\t%s\n' "$1" "${gbps:-FAILED}" >>"$WORK/iperf.tsv"
		}
		for ((r = 1; r <= 3; r++)); do
			iperf_port "port hutch" "/proc/$ppid/ns/net" 15201
			[[ -z $podpid ]] || iperf_port "port podman" "/proc/$podpid/ns/net" 15202
		done
		$H rm -f pub >/dev/null
	elif ! skipped iperf3; then
		log "iperf3 not there (make bench-deps): no throughput"
		status=1
	fi
	$H rm -f anchor >/dev/null
	$H network rm warm cold >/dev/null
	if command -v podman >/dev/null; then
		$P rm --all --force --time 0 >/dev/null 2>&1 || true
	fi
	return $status
}

# Rootless published ports: as BENCH_NET_USER (hutchtest) in a private mount and network
# namespace of its own (root made it; the user's pasta, podman's slirp4netns and
# rootlessport listen only there), with a veth pair standing for the host's interface
# (pasta wants a routable one; its peer is in here too, so nothing leaves). hutch -p (pasta)
# against rootless podman -p (4.3: slirp4netns with its rootlessport forwarder; no pasta).
rootless_inner() {
	[[ $(readlink /proc/self/ns/net) != "$HOST_NETNS" ]] || die "not in a private network namespace"
	mount -t cgroup2 cgroup2 /sys/fs/cgroup # in here only: podman's runc wants cgroup2
	ip link set lo up
	ip link add rl0 type veth peer name rl1 && ip link set rl1 up
	ip addr add 10.98.0.1/24 dev rl0 && ip link set rl0 up
	ip route add default via 10.98.0.254
	local r=$WORK/rootless
	su "$BENCH_NET_USER" -s /bin/bash -c "
	set -u
	export PATH=/usr/sbin:/usr/bin:/sbin:/bin XDG_RUNTIME_DIR=$r/xdg XDG_DATA_HOME=$r/data \
		TMPDIR=$r/tmp HOME=$r/home
	H=$WORK/bin/hutch
	P='podman --root $r/podman --runroot $r/xdg/prun --events-backend none --cgroup-manager cgroupfs'
	\$H image import $WORK/rootfs.tar bb >/dev/null
	\$H run -d --name pub -p 15203:5201 bb sleep 100000 >/dev/null || exit 1
	hp=\$(\$H inspect pub | python3 -c 'import json, sys
d = json.load(sys.stdin); d = d[0] if isinstance(d, list) else d; print(d[\"pid\"])')
	pp=
	if \$P run -d --name pub --runtime runc -p 15204:5201 --rootfs $r/rootfs-podman \
		/bin/sleep 100000 >/dev/null 2>>$r/tmp/podman.log; then
		pp=\$(\$P inspect -f '{{.State.Pid}}' pub)
	else
		echo 'bench/net: rootless podman -p failed: left out' >&2
	fi
	one() { # NAME SERVER_PID ADDRESS PORT: iperf3 -s in the container, the client here
		nsenter -U --preserve-credentials -n -t \$2 iperf3 -s -1 >/dev/null 2>&1 &
		sp=\$!
		sleep 0.5
		g=\$(iperf3 -c \$3 -p \$4 -t $IPERF_SECONDS -J 2>>$r/tmp/iperf.log |
			python3 -c 'import json, sys
print(\"%.2f\" % (json.load(sys.stdin)[\"end\"][\"sum_received\"][\"bits_per_second\"] / 1e9))') || g=
		kill \$sp 2>/dev/null; wait \$sp 2>/dev/null
		printf '%s\t%s\n' \"\$1\" \"\${g:-FAILED}\" >>$r/iperf.tsv
	}
	out() { # NAME CONTAINER_PID: the container downloads from a server on the host's address
		iperf3 -s -1 -B 10.98.0.1 -p 15299 >/dev/null 2>&1 &
		sp=\$!
		sleep 0.5
		g=\$(nsenter -U --preserve-credentials -n -t \$2 iperf3 -c 10.98.0.1 -p 15299 -R \
			-t $IPERF_SECONDS -J 2>>$r/tmp/iperf.log | python3 -c 'import json, sys
print(\"%.2f\" % (json.load(sys.stdin)[\"end\"][\"sum_received\"][\"bits_per_second\"] / 1e9))') || g=
		kill \$sp 2>/dev/null; wait \$sp 2>/dev/null
		printf '%s\t%s\n' \"\$1\" \"\${g:-FAILED}\" >>$r/iperf.tsv
	}
	for ((i = 1; i <= $IPERF_ROUNDS; i++)); do
		one 'rootless hutch' \$hp 127.0.0.1 15203
		[[ -z \$pp ]] || one 'rootless podman' \$pp 127.0.0.1 15204
		one 'rootless addr hutch' \$hp 10.98.0.1 15203
		[[ -z \$pp ]] || one 'rootless addr podman' \$pp 10.98.0.1 15204
		out 'rootless out hutch' \$hp
		[[ -z \$pp ]] || out 'rootless out podman' \$pp
	done
	\$H rm -f pub >/dev/null
	[[ -z \$pp ]] || \$P rm -f -t 0 pub >/dev/null 2>&1
	[[ -n \$pp ]]
	"
}

report() {
	"$PYTHON" - "$WORK" <<-'EOF'
		import statistics, sys
		from collections import defaultdict
		work = sys.argv[1]
		t = defaultdict(list)
		per_round = defaultdict(lambda: defaultdict(list))
		import os
		for line in open(f"{work}/attach.tsv") if os.path.exists(f"{work}/attach.tsv") else []:
		    tool, rnd, ms = line.split("\t")
		    t[tool].append(float(ms))
		    per_round[rnd][tool].append(float(ms))
		med = {k: statistics.median(v) for k, v in t.items()}
		def base_of(k):
		    return "podman - none" if k.startswith("podman") else "none"
		def round_ratios(k):
		    # the machine is shared: each round's median against the same round's base
		    return [statistics.median(r[k]) / statistics.median(r[base_of(k)])
		            for r in per_round.values() if r.get(k) and r.get(base_of(k))]
		out = ["## Network benchmark"]
		if med:
		    out += ["", "| command | runs | median ms | vs its --network none: median of the rounds' ratios (range) |",
		            "|---|---|---|---|"]
		for k in ["none", "warm", "cold", "podman - none", "podman"]:
		    if k not in med:
		        continue
		    rr = round_ratios(k)
		    base = med[base_of(k)]
		    out.append(f"| {k} | {len(t[k])} | {med[k]:.1f} | {statistics.median(rr):.2f}x "
		               f"({min(rr):.2f}-{max(rr):.2f}), {med[k] - base:+.1f} ms |")
		if "podman" in med and "warm" in med:
		    out += ["", f"hutch --network (warm) / podman on its default network: "
		            f"{med['warm'] / med['podman']:.3f}x"]
		if os.path.exists(f"{work}/dns.tsv"):
		    dns = dict(l.strip().split("\t") for l in open(f"{work}/dns.tsv"))
		    out += ["", f"DNS server process, idle: RSS {dns['rss_kib']} KiB, PSS {dns['pss_kib']} KiB, "
		            f"private dirty {dns['private_dirty_kib']} KiB"]
		g = defaultdict(list)
		for line in open(f"{work}/iperf.tsv"):
		    k, v = line.strip().split("\t")
		    if v != "FAILED":
		        g[k].append(float(v))
		if g.get("veth") and g.get("hutch"):
		    v, h = statistics.median(g["veth"]), statistics.median(g["hutch"])
		    out += ["", f"iperf3 TCP, median of {len(g['hutch'])}: container to container "
		            f"{h:.1f} Gbit/s, bare veth pair {v:.1f} Gbit/s: {h / v:.2f}x the floor"]
		if g.get("port hutch"):
		    h = statistics.median(g["port hutch"])
		    line = f"iperf3 TCP through a published port (127.0.0.1:HOST), median of {len(g['port hutch'])}: hutch -p {h:.1f} Gbit/s"
		    if g.get("port podman"):
		        p = statistics.median(g["port podman"])
		        line += f", podman -p {p:.1f} Gbit/s: {h / p:.2f}x podman"
		    out += ["", line]
		for key, what, peer in [
		        ("rootless", "rootless, the same: hutch -p (pasta, splice) {h:.1f} Gbit/s", "podman -p (slirp4netns, rootlessport)"),
		        ("rootless addr", "rootless, by the host's own non-loopback address: hutch -p (pasta's tap path, the client's address kept) {h:.1f} Gbit/s", "podman -p (rootlessport)"),
		        ("rootless out", "rootless, the container downloading from a server on the host's address: hutch (pasta) {h:.1f} Gbit/s", "podman (slirp4netns)")]:
		    if g.get(f"{key} hutch"):
		        h = statistics.median(g[f"{key} hutch"])
		        line = what.format(h=h)
		        if g.get(f"{key} podman"):
		            p = statistics.median(g[f"{key} podman"])
		            line += f", {peer} {p:.1f} Gbit/s: {h / p:.2f}x podman"
		        out += ["", line]
		open(f"{work}/results.md", "w").write("\n".join(out) + "\n")
		print("\n".join(out))
	EOF
}

if [[ ${1:-} == __rootless ]]; then
	rootless_inner
	exit
fi
if [[ ${1:-} == __inner ]]; then
	inner
	exit
fi

[[ $(id -u) == 0 ]] || {
	log "not root: the network benchmark is for rootful networks; skipped"
	exit 0
}
skipped net && exit 0
command -v hyperfine >/dev/null || die "hyperfine not found; run 'make bench-deps'"
[[ -x $HUTCH_SRC ]] || die "no hutch binary at $HUTCH_SRC; run 'make build/hutch'"
rm -rf "$WORK"
mkdir -p "$WORK"/{bin,logs,podman/{root,run,tmp,networks}}
install -m 0755 "$HUTCH_SRC" "$WORK/bin/hutch" # a rebuild during the run changes nothing
sh "$REPO/tests/lib/make-busybox-rootfs.sh" "$WORK/rootfs" "$WORK/rootfs.tar" >/dev/null
cp -a "$WORK/rootfs" "$WORK/rootfs-podman"
HOST_MNTNS=$(readlink /proc/self/ns/mnt)
HOST_NETNS=$(readlink /proc/self/ns/net)
export HOST_MNTNS HOST_NETNS
: >"$WORK/iperf.tsv"
if ! skipped rootful; then
	unshare --mount --net --propagation private -- bash "$BENCH_DIR/net.sh" __inner || rc=$?
fi
export BENCH_NET_USER=${BENCH_NET_USER:-hutchtest}
if ! skipped rootless && ! skipped iperf3 && id "$BENCH_NET_USER" >/dev/null 2>&1; then
	R=$WORK/rootless
	chmod 0755 "$WORK" "$WORK/bin" && chmod 0644 "$WORK/rootfs.tar"
	install -d -o "$BENCH_NET_USER" -m 0700 "$R"/{xdg,data,tmp,home,podman}
	chmod 0755 "$R" && touch "$R/iperf.tsv" && chown "$BENCH_NET_USER" "$R/iperf.tsv"
	cp -a "$WORK/rootfs" "$R/rootfs-podman" && chown -R "$BENCH_NET_USER:" "$R/rootfs-podman"
	unshare --mount --net --propagation private -- bash "$BENCH_DIR/net.sh" __rootless || rc=1
	cat "$R/iperf.tsv" >>"$WORK/iperf.tsv"
	# rootless podman leaves a pause process holding its namespaces: ours, it goes
	pause=$(cat "$R/xdg/libpod/tmp/pause.pid" 2>/dev/null) || pause=
	if [[ $pause =~ ^[0-9]+$ ]] && [[ $(stat -c %U "/proc/$pause" 2>/dev/null) == "$BENCH_NET_USER" ]]; then
		kill -KILL "$pause" 2>/dev/null || true
	fi
else
	log "user $BENCH_NET_USER missing: no rootless published-port throughput"
fi
report
exit "${rc:-0}"
