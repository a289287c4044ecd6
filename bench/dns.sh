#!/usr/bin/env bash
# DNS benchmark (issue 10): queries per second and latency with dnsperf against hutch's DNS
# server (`hutch internal dns`), dnsmasq and aardvark-dns (podman's) serving the same names,
# side by side in interleaved rounds, everything on loopback: the servers listen on
# 127.0.7.1-3, dnsperf queries from 127.0.7.50, and only names the servers own are asked,
# so no query is ever forwarded (hutch and aardvark-dns get a dead loopback address as their
# upstream, dnsmasq none at all). See bench/README.md, "DNS benchmark".
#
# Exit status: 0 when every server ran; 1 when one failed (the others are still measured
# and reported); 2 on bad setup (dnsperf or the binary missing).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
WORK=${BENCH_WORK:-$REPO/build/bench}/dns
HUTCH_SRC=${HUTCH:-$REPO/build/hutch}
ROUNDS=${BENCH_DNS_ROUNDS:-3}
SECONDS_PER_RUN=${BENCH_DNS_SECONDS:-10}
CLIENTS=${BENCH_DNS_CLIENTS:-4}     # dnsperf -c
OUTSTANDING=${BENCH_DNS_OUTSTANDING:-200} # dnsperf -q
PORT=${BENCH_DNS_PORT:-5390}
AARDVARK=${AARDVARK:-/usr/lib/podman/aardvark-dns}
read -ra SKIP <<<"${BENCH_SKIP:-}"

NET=127.0.7
declare -A ADDR=([hutch]=$NET.1 [dnsmasq]=$NET.2 [aardvark]=$NET.3)
CLIENT=$NET.50
DEAD_UPSTREAM=$NET.99 # nothing listens there: a forward would get ICMP unreachable
TOOLS=(hutch dnsmasq aardvark)
declare -A PID=()

log() { printf 'bench/dns: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 2
}
skipped() { [[ " ${SKIP[*]} " == *" $1 "* || " ${SKIP[*]} " == *" dns "* ]]; }

[[ $ROUNDS =~ ^[1-9][0-9]*$ && $SECONDS_PER_RUN =~ ^[1-9][0-9]*$ ]] ||
	die "BENCH_DNS_ROUNDS and BENCH_DNS_SECONDS must be positive integers"
command -v dnsperf >/dev/null || die "dnsperf not found; run 'make bench-deps'"
command -v dig >/dev/null || die "dig not found (bind9-dnsutils); run 'make deps'"
[[ -x $HUTCH_SRC ]] || die "no hutch binary at $HUTCH_SRC; run 'make build/hutch'"

stop_servers() {
	local t
	for t in "${!PID[@]}"; do
		kill "${PID[$t]}" 2>/dev/null || true
		wait "${PID[$t]}" 2>/dev/null || true
		unset "PID[$t]"
	done
}
trap stop_servers EXIT
trap 'stop_servers; exit 130' INT TERM

rm -rf "$WORK"
mkdir -p "$WORK/aardvark" "$WORK/logs"
install -m 0755 "$HUTCH_SRC" "$WORK/hutch"

# --- the names: a stack "shop" of 4 services, 2-3 replicas each, as podman-compose and
# hutch name them (container name, SERVICE, SERVICE.STACK); the queries ask each of them.
SERVICES=(web api db cache)
declare -A REPLICAS=([web]=3 [api]=3 [db]=2 [cache]=2)
hosts_json=()
: >"$WORK/dnsmasq.hosts"
: >"$WORK/aardvark/shop"
echo "${ADDR[aardvark]} $DEAD_UPSTREAM" >"$WORK/aardvark/shop"
: >"$WORK/queries.txt"
n=2
for s in "${SERVICES[@]}"; do
	for ((r = 1; r <= REPLICAS[$s]; r++)); do
		ip=10.89.1.$n
		n=$((n + 1))
		hosts_json+=("{\"names\": [\"shop-$s-$r\", \"$s\", \"$s.shop\"], \"addresses\": [\"$ip\"]}")
		echo "$ip shop-$s-$r $s $s.shop" >>"$WORK/dnsmasq.hosts"
		printf 'c%064d %s  shop-%s-%s,%s,%s.shop\n' "$n" "$ip" "$s" "$r" "$s" "$s" \
			>>"$WORK/aardvark/shop"
		echo "shop-$s-$r A" >>"$WORK/queries.txt"
	done
	echo "$s A" >>"$WORK/queries.txt"
	echo "$s.shop A" >>"$WORK/queries.txt"
done
{
	printf '{"networks": [{"name": "shop", "subnets": ["10.89.1.0/24", "%s.0/24"],' "$NET"
	printf ' "domains": ["shop"], "hosts": [\n'
	(
		IFS=,
		echo "${hosts_json[*]}"
	)
	printf ']}]}\n'
} >"$WORK/records.json"

# --- the servers
start_hutch() {
	"$WORK/hutch" internal dns --listen "${ADDR[hutch]}:$PORT" --records "$WORK/records.json" \
		--upstream "$DEAD_UPSTREAM" 2>"$WORK/logs/hutch.log" &
	PID[hutch]=$!
}
start_dnsmasq() {
	# -k: foreground; no resolv.conf, no /etc/hosts, no upstream: local names only;
	# local=/shop/: unknown names under shop are NXDOMAIN here, as with the others
	dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --addn-hosts="$WORK/dnsmasq.hosts" \
		--local=/shop/ --listen-address="${ADDR[dnsmasq]}" --bind-interfaces --port="$PORT" \
		--local-ttl=0 --pid-file= --user="$(id -un)" --group="$(id -gn)" \
		2>"$WORK/logs/dnsmasq.log" &
	PID[dnsmasq]=$!
}
start_aardvark() {
	# the first line of its network file: the address it listens on, then the upstream
	# `run` forks into the background (as netavark wants it) and writes its pid
	# into the config dir: that is the process to measure and stop
	local i
	rm -f "$WORK/aardvark/aardvark.pid"
	"$AARDVARK" --config "$WORK/aardvark" -p "$PORT" run >"$WORK/logs/aardvark.log" 2>&1 &
	PID[aardvark]=$!
	for i in $(seq 50); do
		if [[ -s $WORK/aardvark/aardvark.pid ]]; then
			PID[aardvark]=$(<"$WORK/aardvark/aardvark.pid")
			return 0
		fi
		sleep 0.1
	done
}

# Each server must answer web.shop with its 3 replicas before it is measured.
check_answers() {
	local t=$1 got i
	for i in $(seq 50); do
		got=$(dig +short +tries=1 +time=1 -b "$CLIENT" -p "$PORT" "@${ADDR[$t]}" web.shop A \
			2>/dev/null | sort | tr '\n' ' ') || true
		[[ $got == "10.89.1.2 10.89.1.3 10.89.1.4 " ]] && return 0
		sleep 0.1
	done
	log "$t: web.shop answered '$got', expected the 3 web replicas; see $WORK/logs/$t.log"
	return 1
}

declare -A STATUS=()
status=0
for t in "${TOOLS[@]}"; do
	if skipped "$t"; then
		STATUS[$t]=skipped
		continue
	fi
	if [[ $t == dnsmasq ]] && ! command -v dnsmasq >/dev/null; then
		STATUS[$t]="FAILED: dnsmasq not found (make bench-deps)"
		status=1
		continue
	fi
	if [[ $t == aardvark && ! -x $AARDVARK ]]; then
		STATUS[$t]="FAILED: $AARDVARK not found (make bench-deps)"
		status=1
		continue
	fi
	"start_$t"
	if check_answers "$t"; then
		STATUS[$t]=ok
	else
		STATUS[$t]="FAILED: wrong or no answer"
		status=1
		kill "${PID[$t]}" 2>/dev/null || true
		unset "PID[$t]"
	fi
done

# --- interleaved rounds: each server in turn, ROUNDS times
: >"$WORK/runs.tsv"
for ((round = 1; round <= ROUNDS; round++)); do
	for t in "${TOOLS[@]}"; do
		[[ ${STATUS[$t]} == ok ]] || continue
		out=$WORK/logs/dnsperf-$t-$round.txt
		dnsperf -s "${ADDR[$t]}" -p "$PORT" -a "$CLIENT" -d "$WORK/queries.txt" \
			-l "$SECONDS_PER_RUN" -c "$CLIENTS" -q "$OUTSTANDING" >"$out" 2>&1 || true
		qps=$(awk '/Queries per second/ {print $4}' "$out")
		lat=$(awk '/Average Latency/ {print $4}' "$out")
		lost=$(awk '/Queries lost/ {print $3}' "$out")
		noerr=$(grep -c 'NOERROR' "$out" || true)
		if [[ -z $qps || $noerr == 0 ]]; then
			STATUS[$t]="FAILED: dnsperf gave no rate (see $out)"
			status=1
			continue
		fi
		printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$round" "$qps" "$lat" "$lost" >>"$WORK/runs.tsv"
		log "round $round $t: $(printf '%.0f' "$qps") qps, avg latency ${lat}s, lost $lost"
	done
done

# peak memory of each server over the whole run
declare -A RSS=()
for t in "${!PID[@]}"; do
	RSS[$t]=$(awk '/VmHWM/ {print $2}' "/proc/${PID[$t]}/status" 2>/dev/null || echo "")
done
stop_servers

# --- report: the median round per server, the spread, the goals
{
	echo "# DNS benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
	echo
	echo "dnsperf -c $CLIENTS -q $OUTSTANDING, $SECONDS_PER_RUN s per run, $ROUNDS interleaved rounds;"
	echo "$(wc -l <"$WORK/queries.txt") names (A) of a 4-service stack with replicas, all local."
	echo
	echo "| server | median qps | min-max qps | avg latency (median run) | peak RSS | status |"
	echo "|---|---:|---:|---:|---:|---|"
	for t in "${TOOLS[@]}"; do
		read -r med min max lat < <(awk -F'\t' -v t="$t" '$1 == t {print $3, $4}' \
			"$WORK/runs.tsv" | sort -n | awk '{q[NR]=$1; l[NR]=$2} END {
				if (NR == 0) { print "- - - -"; exit }
				m = int((NR + 1) / 2); printf "%.0f %.0f %.0f %.3f\n", q[m], q[1], q[NR], l[m] * 1000 }')
		rss=${RSS[$t]:-}
		printf '| %s | %s | %s-%s | %s ms | %s | %s |\n' "$t" "$med" "$min" "$max" "$lat" \
			"${rss:+$((rss / 1024)) MiB}" "${STATUS[$t]}"
		echo "$t $med" >>"$WORK/medians.txt"
	done
	h=$(awk '$1 == "hutch" {print $2}' "$WORK/medians.txt")
	d=$(awk '$1 == "dnsmasq" {print $2}' "$WORK/medians.txt")
	a=$(awk '$1 == "aardvark" {print $2}' "$WORK/medians.txt")
	echo
	if [[ $h =~ ^[0-9]+$ && $d =~ ^[0-9]+$ ]]; then
		awk -v h="$h" -v d="$d" 'BEGIN { printf "- goal: at least dnsmasq'"'"'s rate: hutch/dnsmasq = %.2f: %s\n", h / d, (h >= d ? "met" : "NOT met") }'
	fi
	if [[ $h =~ ^[0-9]+$ && $a =~ ^[0-9]+$ ]]; then
		awk -v h="$h" -v a="$a" 'BEGIN { printf "- goal: 2x aardvark-dns: hutch/aardvark = %.2f: %s\n", h / a, (h >= 2 * a ? "met" : "NOT met") }'
	fi
	# the codec alone: why hutch has its own (docs/dns.md)
	if [[ -f /usr/include/ldns/ldns.h ]] &&
		gcc -std=gnu17 -O2 -Wall -Wextra -Werror -Wno-unused-parameter -I"$REPO" \
			-o "$WORK/dns_codec" "$BENCH_DIR/dns_codec.c" "$REPO/net/dns_wire.c" -lldns -ldl \
			2>"$WORK/logs/dns_codec-build.log"; then
		echo
		echo "One local answer (read a query with EDNS0, build 3 A + OPT, write it), codec alone:"
		echo
		echo "| codec | time per answer | heap allocations per answer |"
		echo "|---|---:|---:|"
		"$WORK/dns_codec" 1000000 | awk -F'\t' '{ sub(/ ns\/answer/, "", $2); sub(/ allocations\/answer/, "", $3); printf "| %s | %s ns | %s |\n", $1, $2, $3 }'
	fi
} >"$WORK/results.md"
cat "$WORK/results.md"
exit $status
