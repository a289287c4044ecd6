#!/bin/sh
# Stage 2 of the test VM: pid 1 on a tmpfs root with a pure cgroup v2 hierarchy.
# Runs the enforcement checks against hutch and prints, on the serial console,
#   VMTEST PASS name | VMTEST FAIL name: detail | VMTEST SUMMARY N passed, M failed
# then powers the VM off. tests/vm/run.sh reads those lines.
# shellcheck disable=SC2016 # the container scripts are single-quoted on purpose
# No `set -e`: every failure is reported as a VMTEST line and the VM always ends.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
umask 022

P=0
F=0
pass() {
	echo "VMTEST PASS $1"
	P=$((P + 1))
}
fail() {
	echo "VMTEST FAIL $1: $2"
	F=$((F + 1))
}
# One line of a file, for messages (newlines become ' | ').
oneline() { tr '\n' '|' <"$1" | sed 's/|$//; s/|/ | /g' | cut -c1-400; }
finish() {
	if [ "$F" -gt 0 ]; then
		echo "--- dmesg (last 40 lines) ---"
		dmesg | tail -n 40
		echo "--- end of dmesg ---"
	fi
	read -r end_s _ </proc/uptime
	echo "vm: tests ran for $(awk -v a="$boot_s" -v b="$end_s" 'BEGIN {printf "%.1f", b - a}') s"
	echo "VMTEST SUMMARY $P passed, $F failed"
	sync
	poweroff -f
	exit 0 # should poweroff fail: pid 1 exiting panics, and qemu -no-reboot stops
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
[ -c /dev/null ] || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# Kernel messages (the OOM killer's report) would cut into our lines on the
# console; they stay readable with dmesg.
dmesg -n 1
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
mkdir -p /run /tmp /var/lib/hutch /var/lib/hutch-test
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /var/lib/hutch
mount -t tmpfs -o mode=0755 tmpfs /var/lib/hutch-test
hostname hutch-vm

read -r boot_s _ </proc/uptime
echo # the firmware leaves escape sequences at the start of the first line
echo "vm: booted in $boot_s s; kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"

# ---------------------------------------------------------------- setup checks

# 63677270: CGROUP2_SUPER_MAGIC, what hutch looks for first on /sys/fs/cgroup.
if [ "$(stat -f -c %t /sys/fs/cgroup)" = 63677270 ] && ! awk '$3 == "cgroup" {f = 1} END {exit !f}' /proc/mounts; then
	pass pure-cgroup-v2
else
	fail pure-cgroup-v2 "/sys/fs/cgroup has f_type 0x$(stat -f -c %t /sys/fs/cgroup) (want 0x63677270); v1 mounts: $(awk '$3 == "cgroup"' /proc/mounts | wc -l)"
fi

ctrls=$(cat /sys/fs/cgroup/cgroup.controllers)
missing=""
for c in memory cpu pids; do
	case " $ctrls " in *" $c "*) ;; *) missing="$missing $c" ;; esac
done
if [ -z "$missing" ]; then
	pass "root-controllers ($ctrls)"
else
	fail root-controllers "missing:$missing (cgroup.controllers: '$ctrls')"
fi

modfail=""
while read -r mod; do
	[ -n "$mod" ] || continue
	insmod "/lib/modules/$mod" 2>/tmp/insmod.err || modfail="$modfail $mod ($(oneline /tmp/insmod.err))"
done </vm/modules
if [ -z "$modfail" ] && grep -qw overlay /proc/filesystems; then
	pass load-overlay-module
else
	fail load-overlay-module "insmod failed:${modfail:- none}; overlay in /proc/filesystems: $(grep -cw overlay /proc/filesystems)"
fi

ht() { hutch --root /var/lib/hutch-test "$@"; }
if ht image import /bb.tar bb >/tmp/import.out 2>&1; then
	pass image-import
else
	fail image-import "$(oneline /tmp/import.out)"
	finish
fi

# ---------------------------------------------------------------- helpers

# hrun NAME HUTCH-RUN-ARGS...: `hutch run --rm ARGS`, with a time limit.
# Sets RC; stdout in /tmp/NAME.out, stderr in /tmp/NAME.err. Then checks that
# the run left no container cgroup and no overlay mount behind.
hrun() {
	name=$1
	shift
	read -r t0 _ </proc/uptime
	timeout 120 hutch --root /var/lib/hutch-test run --rm "$@" >"/tmp/$name.out" 2>"/tmp/$name.err"
	RC=$?
	read -r t1 _ </proc/uptime
	echo "vm: run $name: exit $RC in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s"
	check_clean "$name"
}

check_clean() {
	left=""
	for d in /sys/fs/cgroup/hutch/*; do
		[ -d "$d" ] && left="$left ${d##*/}"
	done
	ovl=$(awk '$3 == "overlay" || index($2, "/var/lib/hutch-test/") == 1 {print $2}' /proc/mounts | tr '\n' ' ')
	state=""
	for d in /var/lib/hutch-test/containers/*; do
		[ -e "$d" ] && state="$state $d"
	done
	if [ -z "$left" ] && [ -z "$ovl" ] && [ -z "$state" ]; then
		pass "no-leftovers-after-$1"
	else
		fail "no-leftovers-after-$1" "cgroups left under /sys/fs/cgroup/hutch:${left:- none}; overlay or state-root mounts: ${ovl:-none}; container state dirs:${state:- none}"
	fi
}

# no_warning NAME: fail if hutch's stderr for run NAME has a warning.
no_warning() {
	if grep -qi warning "/tmp/$1.err"; then
		fail "$1-no-warning" "$(oneline "/tmp/$1.err")"
	else
		pass "$1-no-warning"
	fi
}

# field FILE KEY: the value after "KEY" or "KEY=" in FILE (cpu.stat style lines).
field() { awk -v k="$2" '$1 == k {print $2; exit} index($0, k "=") == 1 {print substr($0, length(k) + 2); exit}' "$1"; }


# ---------------------------------------------------------------- plain run

hrun plain bb sh -c 'echo hello from $(hostname); cat /proc/self/cgroup'
if [ "$RC" = 0 ] && grep -q '^hello from' /tmp/plain.out && [ ! -s /tmp/plain.err ]; then
	pass plain-run-no-output-on-stderr
else
	fail plain-run-no-output-on-stderr "rc=$RC stdout='$(oneline /tmp/plain.out)' stderr='$(oneline /tmp/plain.err)'"
fi
# The container is in its own cgroup namespace: it sees itself at the root.
if grep -qx '0::/' /tmp/plain.out; then
	pass plain-run-cgroup-namespace
else
	fail plain-run-cgroup-namespace "/proc/self/cgroup inside: '$(oneline /tmp/plain.out)'"
fi

# ---------------------------------------------------------------- devices

# The device program on the container's cgroup: a node it makes (mknod is
# allowed) for the kernel log cannot be opened for writing (which needs no
# CAP_SYSLOG), /dev/null can; nothing is said.
hrun devices bb sh -c 'mknod /tmp/k c 1 11 && echo made; echo "<3>hutch-vm" >/tmp/k && echo written; echo x >/dev/null && echo null-ok'
if [ "$RC" = 0 ] && [ "$(cat /tmp/devices.out)" = "$(printf 'made\nnull-ok')" ] &&
	[ "$(cat /tmp/devices.err)" = "sh: can't create /tmp/k: Operation not permitted" ]; then
	pass device-program-denies-a-mknod-node
else
	fail device-program-denies-a-mknod-node "rc=$RC stdout='$(oneline /tmp/devices.out)' stderr='$(oneline /tmp/devices.err)'"
fi

# ---------------------------------------------------------------- memory

# As Docker: --memory alone lets the container swap out as much as its memory
# limit (--memory-swap, memory + swap, defaults to twice --memory).
hrun memfiles --memory 32m bb sh -c 'cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory.swap.max'
if [ "$RC" = 0 ] && [ "$(sed -n 1p /tmp/memfiles.out)" = 33554432 ] && [ "$(sed -n 2p /tmp/memfiles.out)" = 33554432 ]; then
	pass memory-max-and-swap-max-inside
else
	fail memory-max-and-swap-max-inside "rc=$RC memory.max, memory.swap.max read '$(oneline /tmp/memfiles.out)' (want 33554432, 33554432); stderr '$(oneline /tmp/memfiles.err)'"
fi
no_warning memfiles
# --memory-swap: equal to --memory, no swap; larger, the difference; -1, unlimited.
for sw in 32m:0 48m:16777216 -1:max; do
	hrun "swap${sw%%:*}" --memory 32m --memory-swap "${sw%%:*}" bb cat /sys/fs/cgroup/memory.swap.max
	got=$(cat "/tmp/swap${sw%%:*}.out")
	if [ "$RC" = 0 ] && [ "$got" = "${sw#*:}" ]; then
		pass "memory-swap-${sw%%:*}-gives-swap-max-${sw#*:}"
	else
		fail "memory-swap-${sw%%:*}-gives-swap-max-${sw#*:}" "rc=$RC memory.swap.max '$got' stderr '$(oneline "/tmp/swap${sw%%:*}.err")'"
	fi
done

# The allocation: awk builds a 64 MiB string, anonymous memory it must hold
# (there is no swap), so at a 32 MiB limit the kernel's OOM killer has to act.
# ~3 s under TCG; moving 64 MiB through a pipe (head | tail, a shell variable)
# takes 15-30 s there.
ALLOC='awk "BEGIN { s = sprintf(\"%67108864s\", \"\"); print length(s) }"'
# Control: the same allocation fits in 256m (memory.peak shows it was held), so
# the kill below is the limit's doing.
hrun memok --memory 256m bb sh -c "$ALLOC; cat /sys/fs/cgroup/memory.peak"
got=$(sed -n 1p /tmp/memok.out)
peak=$(sed -n 2p /tmp/memok.out)
if [ "$RC" = 0 ] && [ "$got" = 67108864 ] && [ "${peak:-0}" -ge 67108864 ] 2>/dev/null; then
	pass "memory-64mib-fits-in-256m (memory.peak $peak)"
else
	fail memory-64mib-fits-in-256m "rc=$RC stdout='$(oneline /tmp/memok.out)' (want 67108864 and a memory.peak >= that) stderr='$(oneline /tmp/memok.err)'"
fi

# awk is the container's pid 1 here (exec), as a real workload's main process.
hrun oom --memory 32m bb sh -c "exec $ALLOC"
if [ "$RC" = 137 ]; then
	pass memory-oom-exit-137
else
	fail memory-oom-exit-137 "rc=$RC (want 137) stdout='$(oneline /tmp/oom.out)' stderr='$(oneline /tmp/oom.err)'"
fi
if grep -Eq '^hutch: container [0-9a-f]{12} killed: out of memory \(limit 32 MiB\)$' /tmp/oom.err; then
	pass memory-oom-reported
else
	fail memory-oom-reported "stderr '$(oneline /tmp/oom.err)' (want 'hutch: container <id12> killed: out of memory (limit 32 MiB)')"
fi
# The kernel's own record: the OOM killer acted inside this container's cgroup
# (the cgroup itself is gone by now, so its memory.events cannot be read).
id12=$(sed -n 's/^hutch: container \([0-9a-f]\{12\}\) killed: out of memory.*/\1/p' /tmp/oom.err)
if [ -n "$id12" ] && dmesg | grep -q "oom_memcg=/hutch/$id12[0-9a-f]*," && [ ! -s /tmp/oom.out ]; then
	pass "memory-oom-kill-by-the-kernel-in-the-container-cgroup"
else
	fail memory-oom-kill-by-the-kernel-in-the-container-cgroup "no 'oom_memcg=/hutch/${id12:-<id>}' in dmesg; the container printed '$(oneline /tmp/oom.out)'"
fi

# ---------------------------------------------------------------- pids

# A subshell forks `sleep` 40 times and records how many forks succeeded; after
# that only shell builtins run (a fork would fail while the sleeps exist).
PIDS='read max </sys/fs/cgroup/pids.max
( i=0; while [ $i -lt 40 ]; do sleep 100 & i=$((i + 1)); echo $i >/tmp/started; done ) 2>/tmp/forkerr
started=0; [ -f /tmp/started ] && read started </tmp/started
read current </sys/fs/cgroup/pids.current
procs=0; for p in /proc/[0-9]*; do procs=$((procs + 1)); done
events=0; while read k v; do [ "$k" = max ] && events=$v; done </sys/fs/cgroup/pids.events
forkerr=; [ -s /tmp/forkerr ] && read -r forkerr </tmp/forkerr
kill -9 -1 2>/dev/null
echo "max=$max"; echo "started=$started"; echo "current=$current"; echo "procs=$procs"; echo "events=$events"; echo "forkerr=$forkerr"'
hrun pids --pids-limit 20 bb sh -c "$PIDS"
max=$(field /tmp/pids.out max)
started=$(field /tmp/pids.out started)
current=$(field /tmp/pids.out current)
procs=$(field /tmp/pids.out procs)
events=$(field /tmp/pids.out events)
forkerr=$(field /tmp/pids.out forkerr)
detail="rc=$RC max=$max started=$started current=$current procs=$procs events=$events forkerr='$forkerr' stderr='$(oneline /tmp/pids.err)'"
if [ "$max" = 20 ]; then pass pids-max-inside; else fail pids-max-inside "$detail"; fi
# pid 1 and the subshell count too: at most 18 sleeps can start.
if [ "${started:-99}" -ge 10 ] 2>/dev/null && [ "$started" -le 18 ] && [ "${current:-99}" -le 20 ] &&
	[ "${procs:-99}" -le 20 ] && [ "${events:-0}" -gt 0 ] && [ -n "$forkerr" ]; then
	pass "pids-fork-loop-stops-at-20 (started $started of 40, pids.current $current, events max $events)"
else
	fail pids-fork-loop-stops-at-20 "$detail"
fi
no_warning pids

# ---------------------------------------------------------------- cpu

# A busy loop for 2 s at a 0.2 CPU quota. The container reports the CPU time its
# cgroup used (cpu.stat usage_usec) and the wall time (/proc/uptime) over that
# span, read with shell builtins only, and its throttling counters.
CPU='read -r up0 _ </proc/uptime
while read -r k v; do [ "$k" = usage_usec ] && use0=$v; done </sys/fs/cgroup/cpu.stat
(while :; do :; done) & p=$!
sleep 2; kill $p; wait $p 2>/dev/null
read -r up1 _ </proc/uptime
while read -r k v; do [ "$k" = usage_usec ] && use1=$v; done </sys/fs/cgroup/cpu.stat
read cmax </sys/fs/cgroup/cpu.max; echo "cpu.max=$cmax"
echo "uptime0=$up0"; echo "uptime1=$up1"; echo "usage0=$use0"; echo "usage1=$use1"
cat /sys/fs/cgroup/cpu.stat'
hrun cpu --cpus 0.2 bb sh -c "$CPU"
cmax=$(field /tmp/cpu.out cpu.max)
thr=$(field /tmp/cpu.out nr_throttled)
thr_us=$(field /tmp/cpu.out throttled_usec)
# CPU share over the loop's span: usage / wall time.
share=$(awk -v u0="$(field /tmp/cpu.out usage0)" -v u1="$(field /tmp/cpu.out usage1)" \
	-v t0="$(field /tmp/cpu.out uptime0)" -v t1="$(field /tmp/cpu.out uptime1)" \
	'BEGIN { if (t1 > t0 && u1 > u0) printf "%.2f", (u1 - u0) / 1e6 / (t1 - t0); else print "?" }')
detail="rc=$RC cpu.max='$cmax' nr_throttled=$thr throttled_usec=$thr_us share=$share container said '$(oneline /tmp/cpu.out)' stderr='$(oneline /tmp/cpu.err)'"
if [ "$cmax" = "20000 100000" ]; then pass cpu-max-inside; else fail cpu-max-inside "$detail"; fi
if [ "${thr:-0}" -gt 0 ] && [ "${thr_us:-0}" -gt 0 ]; then
	pass "cpu-throttled (nr_throttled $thr, throttled_usec $thr_us)"
else
	fail cpu-throttled "$detail"
fi
# Unlimited, the busy loop alone would take a whole CPU (share ~1.0).
if [ "$share" != "?" ] && awk -v s="$share" 'BEGIN {exit !(s <= 0.3)}'; then
	pass "cpu-share-capped (used $share CPU over the busy loop)"
else
	fail cpu-share-capped "$detail"
fi
no_warning cpu

# ---------------------------------------------------------------- multi-layer image

if ht image import /ml3 ml3 >/tmp/ml3-import.out 2>&1; then
	pass multi-layer-import
	hrun ml3 ml3 sh -c 'cat /marker; ls -A /home/app; test -e /var/tmp && echo var-tmp-still-there; true'
	if [ "$RC" = 0 ] && [ "$(cat /tmp/ml3.out)" = "$(printf 'layer 2\nnew')" ]; then
		pass multi-layer-whiteout-and-opaque-dir
	else
		fail multi-layer-whiteout-and-opaque-dir "rc=$RC stdout='$(oneline /tmp/ml3.out)' stderr='$(oneline /tmp/ml3.err)'"
	fi
else
	fail multi-layer-import "$(oneline /tmp/ml3-import.out)"
fi

# ---------------------------------------------------------------- concurrent starts

# Starts racing the removal of the shared hutch/ parent by the last container to
# exit: every run must still get its own cgroup with the memory limit set.
for i in 1 2 3 4 5 6 7 8; do
	( timeout 120 hutch --root /var/lib/hutch-test run --rm --memory 48m bb \
		cat /sys/fs/cgroup/memory.max >"/tmp/par$i.out" 2>"/tmp/par$i.err"; echo $? >"/tmp/par$i.rc" ) &
done
wait
bad=""
for i in 1 2 3 4 5 6 7 8; do
	if [ "$(cat /tmp/par$i.rc)" != 0 ] || [ "$(cat /tmp/par$i.out)" != 50331648 ] || [ -s /tmp/par$i.err ]; then
		bad="$bad [run $i: rc=$(cat /tmp/par$i.rc) out='$(oneline /tmp/par$i.out)' err='$(oneline /tmp/par$i.err)']"
	fi
done
if [ -z "$bad" ]; then pass concurrent-runs-each-limited; else fail concurrent-runs-each-limited "$bad"; fi
check_clean concurrent

# ---------------------------------------------------------------- detached with limits

# jfield FILE KEY: a number or string field of `hutch inspect` output.
jfield() { sed -n "s/^ *\"$2\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$1" | head -n 1; }

# wait_gone PID: up to ~10 s for a process to end (or become a zombie).
wait_gone() {
	i=0
	while [ $i -lt 100 ]; do
		st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
		[ -z "$st" ] || [ "$st" = Z ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

id=$(ht run -d --name lim --memory 48m --pids-limit 30 bb sleep 1000 2>/tmp/lim.err)
ht inspect lim >/tmp/lim.json 2>&1
cg=$(jfield /tmp/lim.json cgroup)
mem=$(cat "$cg/memory.max" 2>/dev/null)
pmax=$(cat "$cg/pids.max" 2>/dev/null)
if [ -n "$id" ] && [ "$cg" = "/sys/fs/cgroup/hutch/$id" ] && [ "$mem" = 50331648 ] && [ "$pmax" = 30 ] && [ ! -s /tmp/lim.err ]; then
	pass "detached-limits-applied"
else
	fail detached-limits-applied "id='$id' cgroup='$cg' memory.max='$mem' pids.max='$pmax' stderr='$(oneline /tmp/lim.err)'"
fi
read -r t0 _ </proc/uptime
ht stop -t 1 lim >/dev/null 2>/tmp/lim-stop.err
read -r t1 _ </proc/uptime
ht inspect lim >/tmp/lim.json 2>&1
if [ "$(jfield /tmp/lim.json status)" = exited ] && [ "$(jfield /tmp/lim.json exit_code)" = 137 ] && [ ! -e "$cg" ]; then
	pass "detached-stop-kills-and-removes-the-cgroup ($(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s)"
else
	fail detached-stop-kills-and-removes-the-cgroup "status='$(jfield /tmp/lim.json status)' exit=$(jfield /tmp/lim.json exit_code) cgroup left: $([ -e "$cg" ] && echo yes || echo no) stderr='$(oneline /tmp/lim-stop.err)'"
fi
ht rm lim >/dev/null 2>&1
check_clean detached

# ---------------------------------------------------------------- monitor SIGKILLed

# The container dies with its monitor; the next command records it as killed
# and removes its cgroup, and the shared hutch/ parent with it (the last one).
id=$(ht run -d --memory 32m -u nobody bb sleep 1000 2>/dev/null)
ht inspect "$id" >/tmp/mk.json 2>&1
mon=$(jfield /tmp/mk.json monitor_pid)
pid=$(jfield /tmp/mk.json pid)
cg=$(jfield /tmp/mk.json cgroup)
kill -9 "$mon" 2>/dev/null
if [ -n "$pid" ] && wait_gone "$pid"; then
	pass "monitor-killed-the-non-root-container-dies"
else
	fail monitor-killed-the-non-root-container-dies "monitor $mon, container pid '$pid' still runs: $(cat "/proc/$pid/status" 2>/dev/null | head -n 3 | tr '\n' ' ')"
	kill -9 "$pid" 2>/dev/null
fi
ht ps -a >/tmp/mk-ps.out 2>&1
if grep -q "Exited (137)" /tmp/mk-ps.out && [ -n "$cg" ] && [ ! -e "$cg" ] && [ ! -e /sys/fs/cgroup/hutch ]; then
	pass monitor-killed-next-command-removes-cgroup-and-parent
else
	fail monitor-killed-next-command-removes-cgroup-and-parent "ps: '$(oneline /tmp/mk-ps.out)' cgroup '$cg' left: $([ -e "$cg" ] && echo yes || echo no); hutch/ parent left: $([ -e /sys/fs/cgroup/hutch ] && echo yes || echo no)"
fi
ht rm "$id" >/dev/null 2>&1
check_clean monitor-killed

# ---------------------------------------------------------------- hutch-oci: linux.resources

# A bundle whose linux.resources asks for each controller's files: the values
# read back inside the container, and enforced there: cpuset (the CPUs it may
# run on), hugetlb (a 2 MiB hugepage allocates, a second one is refused), io.max
# (direct reads from a RAM disk at 1 MiB/s: brd serves buffered reads without a
# bio, which blk-throttle never sees), unified's pids.max; then an update.
mkdir -p /oci/b/rootfs/bin /oci/b/rootfs/proc /oci/b/rootfs/sys /oci/b/rootfs/dev /oci/b/rootfs/huge
cp /bin/busybox /oci/b/rootfs/bin/
for a in sh cat echo dd fallocate grep cut awk sleep; do ln -s busybox "/oci/b/rootfs/bin/$a"; done
[ -b /dev/ram0 ] || mknod /dev/ram0 b 1 0
mkdir -p /dev/hugepages
mount -t hugetlbfs none /dev/hugepages
echo 4 >/proc/sys/vm/nr_hugepages
# the container's script, one JSON string (no quotes or backslashes in it)
OCISCRIPT='cd /sys/fs/cgroup; for f in cpuset.cpus io.max io.weight hugetlb.2MB.max hugetlb.2MB.rsvd.max memory.low pids.max cpu.idle cpu.max.burst; do echo "$f=$(cat $f)"; done; echo "cpus_allowed=$(grep Cpus_allowed_list /proc/self/status | cut -f2)"; fallocate -l 2097152 /huge/one && echo one_page=fits; if fallocate -l 4194304 /huge/two 2>/dev/null; then echo two_pages=fit; else echo two_pages=refused; fi; read -r t0 _ </proc/uptime; dd if=/dev/ram0 of=/dev/null bs=65536 count=32 iflag=direct 2>/dev/null; read -r t1 _ </proc/uptime; echo "read_2mib_s=$(awk -v a=$t0 -v b=$t1 "BEGIN {print b - a}")"; echo done=1; exec sleep 1000'
OCISCRIPT=$(printf '%s' "$OCISCRIPT" | sed 's/"/\\"/g')
cat >/oci/b/config.json <<EOF
{"ociVersion": "1.0.2",
 "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", "$OCISCRIPT"], "env": ["PATH=/bin"], "cwd": "/"},
 "root": {"path": "rootfs"},
 "mounts": [
  {"destination": "/proc", "type": "proc", "source": "proc"},
  {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
  {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
  {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]},
  {"destination": "/huge", "type": "bind", "source": "/dev/hugepages", "options": ["rbind", "rw"]}],
 "linux": {
  "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "cgroup"}, {"type": "ipc"}, {"type": "uts"}],
  "cgroupsPath": "/ocivm/c1",
  "devices": [{"path": "/dev/ram0", "type": "b", "major": 1, "minor": 0, "fileMode": 432}],
  "resources": {
   "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "b", "major": 1, "minor": 0, "access": "rw"}],
   "memory": {"reservation": 8388608},
   "cpu": {"cpus": "1", "mems": "0", "quota": 50000, "period": 100000, "burst": 10000, "idle": 1},
   "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 1, "minor": 0, "rate": 1048576}]},
   "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
   "unified": {"pids.max": "20"}}}}
EOF
hoci() { timeout 60 hutch-oci --root /run/hutch-oci "$@"; }
hoci create --bundle /oci/b c1 >/tmp/oci.out 2>/tmp/oci.err </dev/null
RC=$?
hoci start c1 >>/tmp/oci.err 2>&1
i=0
while [ $i -lt 300 ] && ! grep -q '^done=1' /tmp/oci.out; do
	sleep 0.1
	i=$((i + 1))
done
detail="rc=$RC container said '$(oneline /tmp/oci.out)' stderr='$(oneline /tmp/oci.err)'"
cgc=/sys/fs/cgroup/ocivm/c1
if [ "$RC" = 0 ] && [ "$(field /tmp/oci.out cpuset.cpus)" = 1 ] &&
	[ "$(field /tmp/oci.out io.max)" = "1:0 rbps=1048576 wbps=max riops=max wiops=max" ] &&
	[ "$(field /tmp/oci.out io.weight)" = "default 4950" ] && [ "$(field /tmp/oci.out hugetlb.2MB.max)" = 2097152 ] &&
	[ "$(field /tmp/oci.out hugetlb.2MB.rsvd.max)" = 2097152 ] && [ "$(field /tmp/oci.out memory.low)" = 8388608 ] &&
	[ "$(field /tmp/oci.out pids.max)" = 20 ] && [ "$(field /tmp/oci.out cpu.idle)" = 1 ] &&
	[ "$(field /tmp/oci.out cpu.max.burst)" = 10000 ] && [ ! -s /tmp/oci.err ]; then
	pass oci-resources-files-inside
else
	fail oci-resources-files-inside "$detail"
fi
if [ "$(field /tmp/oci.out cpus_allowed)" = 1 ]; then pass oci-cpuset-cpus-enforced; else fail oci-cpuset-cpus-enforced "$detail"; fi
if [ "$(field /tmp/oci.out one_page)" = fits ] && [ "$(field /tmp/oci.out two_pages)" = refused ]; then
	pass oci-hugetlb-limit-enforced
else
	fail oci-hugetlb-limit-enforced "$detail"
fi
secs=$(field /tmp/oci.out read_2mib_s)
if [ -n "$secs" ] && awk -v s="$secs" 'BEGIN {exit !(s >= 1.2)}'; then
	pass "oci-io-max-enforced (2 MiB read in $secs s at 1 MiB/s)"
else
	fail oci-io-max-enforced "$detail"
fi
printf '%s' '{"unified": {"pids.max": "7"}, "memory": {"reservation": 0},
	"blockIO": {"throttleReadBpsDevice": [{"major": 1, "minor": 0, "rate": 0}]}}' |
	hoci update --resources - c1 >/tmp/oci-up.err 2>&1
RC=$?
if [ "$RC" = 0 ] && [ "$(cat $cgc/pids.max)" = 7 ] && [ -z "$(cat $cgc/io.max)" ] && [ "$(cat $cgc/memory.low)" = 0 ]; then
	pass oci-update-resources
else
	fail oci-update-resources "rc=$RC pids.max='$(cat $cgc/pids.max)' io.max='$(cat $cgc/io.max)' memory.low='$(cat $cgc/memory.low)' stderr='$(oneline /tmp/oci-up.err)'"
fi
# checkBeforeUpdate: a memory limit not above what the container uses is refused
echo '{"memory": {"limit": 4096, "checkBeforeUpdate": true}}' >/tmp/oci-mem.json
hoci update --resources /tmp/oci-mem.json c1 >/tmp/oci-up.err 2>&1
RC=$?
if [ "$RC" != 0 ] && grep -q 'linux.resources.memory.limit: 4096 is not above the [0-9]* bytes' /tmp/oci-up.err &&
	[ "$(cat $cgc/memory.max)" = max ]; then
	pass oci-update-check-before-update
else
	fail oci-update-check-before-update "rc=$RC memory.max='$(cat $cgc/memory.max)' stderr='$(oneline /tmp/oci-up.err)'"
fi
hoci delete --force c1 >/dev/null 2>&1
rm -f /dev/hugepages/one /dev/hugepages/two
rmdir /sys/fs/cgroup/ocivm 2>/dev/null
if [ ! -e $cgc ]; then pass oci-delete-removes-the-cgroup; else fail oci-delete-removes-the-cgroup "$cgc left"; fi

# ---------------------------------------------------------------- rootless, delegated subtree

# A user with a cgroup subtree delegated the way systemd does it for
# user@UID.service: the directory and its cgroup.procs, cgroup.subtree_control
# and cgroup.threads chowned to the user. Its shell lives in a leaf below it;
# rootless hutch puts its containers beside that leaf.
echo "rl:x:1000:1000:rl:/home/rl:/bin/sh" >>/etc/passwd
echo "rl:x:1000:" >>/etc/group
mkdir -p /home/rl/run
chown -R 1000:1000 /home/rl
chmod 700 /home/rl/run
echo "+memory +pids +cpu" >/sys/fs/cgroup/cgroup.subtree_control
mkdir /sys/fs/cgroup/rl
chown 1000:1000 /sys/fs/cgroup/rl /sys/fs/cgroup/rl/cgroup.procs \
	/sys/fs/cgroup/rl/cgroup.subtree_control /sys/fs/cgroup/rl/cgroup.threads
# as_rl CMD...: run CMD as the user, in its leaf rl/shell.
as_rl() {
	sh -c 'echo $$ >/sys/fs/cgroup/rl/shell/cgroup.procs && exec "$@"' as_rl \
		/usr/bin/setpriv --reuid 1000 --regid 1000 --clear-groups \
		env HOME=/home/rl XDG_RUNTIME_DIR=/home/rl/run PATH="$PATH" "$@"
}
if ! /usr/bin/setpriv --reuid 1000 --regid 1000 --clear-groups mkdir /sys/fs/cgroup/rl/shell 2>/tmp/rl-mkdir.err; then
	fail rootless-makes-its-leaf "$(oneline /tmp/rl-mkdir.err); $(ls -ld /sys/fs/cgroup/rl)"
fi
as_rl hutch image import /bb.tar bb >/tmp/rl-import.out 2>&1 || fail rootless-import "$(oneline /tmp/rl-import.out)"
# rlrun NAME ARGS...: rootless `hutch run --rm ARGS`; RC, /tmp/NAME.out, /tmp/NAME.err.
rlrun() {
	name=$1
	shift
	timeout 120 sh -c 'echo $$ >/sys/fs/cgroup/rl/shell/cgroup.procs && exec "$@"' rlrun \
		/usr/bin/setpriv --reuid 1000 --regid 1000 --clear-groups \
		env HOME=/home/rl XDG_RUNTIME_DIR=/home/rl/run PATH="$PATH" \
		hutch run --rm "$@" >"/tmp/$name.out" 2>"/tmp/$name.err"
	RC=$?
}
rlrun rlmem --memory 32m --pids-limit 20 bb sh -c 'cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; id -u; cat /proc/self/uid_map'
if [ "$RC" = 0 ] && [ "$(sed -n 1p /tmp/rlmem.out)" = 33554432 ] && [ "$(sed -n 2p /tmp/rlmem.out)" = 20 ] &&
	[ "$(sed -n 3p /tmp/rlmem.out)" = 0 ] && sed -n 4p /tmp/rlmem.out | grep -Eq '^ *0 +1000 +1$' && ! grep -qi warning /tmp/rlmem.err; then
	pass rootless-delegated-limits-set
else
	fail rootless-delegated-limits-set "rc=$RC stdout='$(oneline /tmp/rlmem.out)' stderr='$(oneline /tmp/rlmem.err)'"
fi
rlrun rloom --memory 32m bb sh -c "exec $ALLOC"
if [ "$RC" = 137 ] && grep -q 'killed: out of memory (limit 32 MiB)' /tmp/rloom.err; then
	pass rootless-delegated-memory-oom-kill
else
	fail rootless-delegated-memory-oom-kill "rc=$RC (want 137) stdout='$(oneline /tmp/rloom.out)' stderr='$(oneline /tmp/rloom.err)'"
fi
rlrun rlpids --pids-limit 20 bb sh -c "$PIDS"
started=$(field /tmp/rlpids.out started)
if [ "$(field /tmp/rlpids.out max)" = 20 ] && [ "${started:-99}" -le 18 ] 2>/dev/null && [ -n "$(field /tmp/rlpids.out forkerr)" ]; then
	pass "rootless-delegated-pids-limit (started $started of 40)"
else
	fail rootless-delegated-pids-limit "rc=$RC stdout='$(oneline /tmp/rlpids.out)' stderr='$(oneline /tmp/rlpids.err)'"
fi
left=$(ls -d /sys/fs/cgroup/rl/hutch /home/rl/.local/share/hutch/containers/* 2>/dev/null | tr '\n' ' ')
if [ -z "$left" ]; then
	pass rootless-delegated-nothing-left
else
	fail rootless-delegated-nothing-left "left: $left"
fi

# ---------------------------------------------------------------- masked and read-only paths

# Docker's masked and read-only paths, on a kernel that has them (the development
# host's lacks /proc/kcore and /proc/sysrq-trigger). Inside, a masked file is the
# container's /dev/null (char 1:3, reads empty), a masked directory an empty
# read-only tmpfs; a read-only path is a read-only mount that refuses writes.
MASKED="/proc/asound /proc/acpi /proc/interrupts /proc/kcore /proc/keys /proc/latency_stats /proc/timer_list /proc/timer_stats /proc/sched_debug /proc/scsi /sys/firmware /sys/devices/virtual/powercap"
READONLY="/proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger"
present=""
for p in $MASKED; do [ -e "$p" ] && present="$present $p"; done
for p in /proc/kcore /proc/sysrq-trigger /proc/timer_list /sys/firmware; do
	if [ -e "$p" ]; then pass "vm-kernel-has-$p"; else fail "vm-kernel-has-$p" "missing in the VM"; fi
done
MASKCHECK='for p in "$@"; do
	if [ -d "$p" ]; then
		if touch "$p/hutch-probe" 2>/dev/null; then w=writable; else w=ro; fi
		echo "$p dir entries=$(ls -A "$p" | wc -l) $w"
	elif [ -e "$p" ]; then
		echo "$p file $(stat -c %t:%T "$p") bytes=$(cat "$p" 2>/dev/null | wc -c)"
	else
		echo "$p missing"
	fi
done'
# shellcheck disable=SC2086 # one argument per path
hrun masked bb sh -c "$MASKCHECK" sh $present
bad=""
for p in $present; do
	if [ -d "$p" ]; then want="$p dir entries=0 ro"; else want="$p file 1:3 bytes=0"; fi
	grep -qxF "$want" /tmp/masked.out || bad="$bad [$p: want '$want', got '$(grep "^$p " /tmp/masked.out)']"
done
if [ "$RC" = 0 ] && [ -z "$bad" ]; then
	pass "masked-paths-masked ($(echo "$present" | wc -w) of them)"
else
	fail masked-paths-masked "rc=$RC$bad stderr '$(oneline /tmp/masked.err)'"
fi
# ...and on the host they are not empty (so the mask is what hid them)
if [ "$(head -c 64 /proc/timer_list | wc -c)" = 64 ] && [ "$(stat -c %s /proc/kcore)" -gt 0 ] && [ -n "$(ls -A /sys/firmware)" ]; then
	pass masked-paths-have-content-outside
else
	fail masked-paths-have-content-outside "timer_list $(head -c 64 /proc/timer_list | wc -c) bytes, kcore size $(stat -c %s /proc/kcore), /sys/firmware: '$(ls -A /sys/firmware | tr '\n' ' ')'"
fi

# A directory: touch it; a file: write to it ("h" to sysrq-trigger only prints
# the help to the kernel log, should it ever get through).
ROCHECK='for p in "$@"; do
	if [ -d "$p" ]; then touch "$p" 2>/tmp/e; else (echo h >"$p") 2>/tmp/e; fi
	opts=$(awk -v m="$p" "\$5 == m {print \$6}" /proc/self/mountinfo)
	echo "$p opts=$opts err=$(cat /tmp/e)"
done
echo h >/proc/sys/kernel/hostname 2>/tmp/e; echo "sysctl err=$(cat /tmp/e)"'
rpresent=""
for p in $READONLY; do [ -e "$p" ] && rpresent="$rpresent $p"; done
# shellcheck disable=SC2086
hrun readonly bb sh -c "$ROCHECK" sh $rpresent
bad=""
for p in $rpresent sysctl; do
	line=$(grep "^$p " /tmp/readonly.out)
	case "$p" in sysctl) ;; *) case "$line" in *" opts=ro,"* | *" opts=ro "*) ;; *) bad="$bad [$p not mounted ro: '$line']" ;; esac ;; esac
	case "$line" in *"Read-only file system"*) ;; *) bad="$bad [$p writable: '$line']" ;; esac
done
if [ "$RC" = 0 ] && [ -z "$bad" ]; then
	pass "read-only-paths-read-only ($(echo "$rpresent" | wc -w) of them)"
else
	fail read-only-paths-read-only "rc=$RC$bad stderr '$(oneline /tmp/readonly.err)'"
fi
# --privileged: none of it (a look only: reading all of /proc/kcore never ends)
hrun masked-priv --privileged bb sh -c 'stat -c "%n %t:%T %s" /proc/kcore; echo "/sys/firmware entries=$(ls -A /sys/firmware | wc -l)"; head -c 64 /proc/timer_list | wc -c; awk "\$5 ~ /^\/proc\// {print \$5}" /proc/self/mountinfo'
if [ "$RC" = 0 ] && [ "$(sed -n 1p /tmp/masked-priv.out)" = "/proc/kcore 0:0 $(stat -c %s /proc/kcore)" ] &&
	grep -q '^/sys/firmware entries=[1-9]' /tmp/masked-priv.out && [ "$(sed -n 3p /tmp/masked-priv.out)" = 64 ] &&
	[ "$(wc -l </tmp/masked-priv.out)" = 3 ]; then
	pass privileged-nothing-masked
else
	fail privileged-nothing-masked "rc=$RC '$(oneline /tmp/masked-priv.out)' stderr '$(oneline /tmp/masked-priv.err)'"
fi

# ---------------------------------------------------------------- /etc files

# On this kernel the overlay is mounted through mount(2) (no "lowerdir+"), with
# the shared layer of empty /etc files at the bottom; the image never had hosts.
hrun etcfiles -h vmbox --add-host db:10.0.0.5 bb sh -c 'cat /etc/hostname; grep -c "^127.0.0.1	vmbox$" /etc/hosts; grep "	db$" /etc/hosts; hostname -i'
if [ "$RC" = 0 ] && [ "$(cat /tmp/etcfiles.out)" = "$(printf 'vmbox\n1\n10.0.0.5\tdb\n127.0.0.1')" ]; then
	pass etc-files-on-the-legacy-overlay-mount
else
	fail etc-files-on-the-legacy-overlay-mount "rc=$RC '$(oneline /tmp/etcfiles.out)' stderr '$(oneline /tmp/etcfiles.err)'"
fi

# The shared parent goes with the last container: nothing of hutch's is left.
if [ -e /sys/fs/cgroup/hutch ]; then
	fail no-hutch-cgroup-left "/sys/fs/cgroup/hutch still exists after every container ended"
else
	pass no-hutch-cgroup-left
fi

finish
