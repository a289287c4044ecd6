#!/bin/bash
# cgroup v2 VM suite: boots Debian's kernel under qemu (TCG) with an initramfs
# holding build/hutch, busybox, overlay.ko and a busybox image, on a pure cgroup
# v2 hierarchy, and checks that --memory, --pids-limit and --cpus are enforced,
# for detached containers too, that a SIGKILLed monitor leaves no cgroup once
# the next command looks, and that rootless hutch in a delegated subtree (set up
# as systemd does) enforces its limits, and that hutch-oci's linux.resources (cpuset,
# hugetlb, io.max on a RAM disk, unified, update) are written and enforced
# (tests/vm/stage2.sh runs inside the VM). Prints every VMTEST line and
# "vm: N passed, M failed"; exits 0 only if the VM finished with no failure.
#
# Environment: HUTCH_BIN (default build/hutch), VM_TIMEOUT (seconds, default 300),
# VM_KEEP=1 keeps the work dir under build/vm/, VM_KERNEL_VERSION picks a kernel,
# VM_STAGE2=FILE runs another script in the VM instead of tests/vm/stage2.sh.
# Needs root (apt-get, mknod) and qemu-system-x86_64; /dev/kvm hangs on these
# machines, so the VM always runs under TCG.
set -Eeuo pipefail
trap 'echo "vm: run.sh failed at line $LINENO: $BASH_COMMAND" >&2; echo "vm: 0 passed, 1 failed"' ERR

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
hutch=${HUTCH_BIN:-$repo/build/hutch}
timeout_s=${VM_TIMEOUT:-300}
vmdir=$repo/build/vm

say() { echo "vm: $*"; }
die() {
	say "$*" >&2
	echo "vm: 0 passed, 1 failed"
	exit 1
}

apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	say "installing $*"
	if ! apt-get install -y -qq --no-install-recommends "$@" >"$vmdir/apt.log" 2>&1; then
		apt-get update -qq >>"$vmdir/apt.log" 2>&1 || true
		apt-get install -y -qq --no-install-recommends "$@" >>"$vmdir/apt.log" 2>&1 ||
			{ tail -n 20 "$vmdir/apt.log" >&2; die "apt-get install $* failed"; }
	fi
}

# The newest /boot/vmlinuz-VER whose /lib/modules/VER has overlay.ko*. The host's
# own kernel may have no modules on disk; Debian's linux-image-amd64 has them.
find_kernel() {
	local k ver
	for k in $(find /boot -maxdepth 1 -name 'vmlinuz-*' 2>/dev/null | sort -rV); do
		ver=${k#/boot/vmlinuz-}
		[ -n "${VM_KERNEL_VERSION:-}" ] && [ "$ver" != "$VM_KERNEL_VERSION" ] && continue
		[ -f "/lib/modules/$ver/modules.dep" ] || continue
		if [ -n "$(find "/lib/modules/$ver/kernel" -name 'overlay.ko*' -print -quit 2>/dev/null)" ]; then
			echo "$ver"
			return 0
		fi
	done
	return 1
}

[ "$(id -u)" = 0 ] || die "the VM suite needs root (apt-get, device nodes for the initramfs)"
mkdir -p "$vmdir"

# ---------------------------------------------------------------- packages
pkgs=()
command -v qemu-system-x86_64 >/dev/null || pkgs+=(qemu-system-x86)
command -v cpio >/dev/null || pkgs+=(cpio)
# The image and the initramfs need a static busybox (Debian's busybox-static).
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || pkgs+=(busybox-static)
command -v xz >/dev/null || pkgs+=(xz-utils)
command -v zstd >/dev/null || pkgs+=(zstd)
find_kernel >/dev/null || pkgs+=(linux-image-amd64)
[ ${#pkgs[@]} -eq 0 ] || apt_install "${pkgs[@]}"
kver=$(find_kernel) || die "no kernel in /boot with modules (overlay.ko) in /lib/modules; apt-get install linux-image-amd64"
kernel=/boot/vmlinuz-$kver
moddir=/lib/modules/$kver
busybox=/bin/busybox
! ldd "$busybox" >/dev/null 2>&1 || die "$busybox is not static: apt-get install busybox-static"

if [ ! -x "$hutch" ]; then
	[ -z "${HUTCH_BIN:-}" ] || die "HUTCH_BIN=$hutch is not executable"
	say "building build/hutch"
	make -C "$repo" build/hutch >/dev/null
fi

# ---------------------------------------------------------------- initramfs
ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { printf '%d.%d' $(($1 / 1000)) $(($1 % 1000 / 100)); }
start=$(ms)
work=$(mktemp -d "$vmdir/run.XXXXXX")
# shellcheck disable=SC2317 # called by the trap
cleanup() { [ "${VM_KEEP:-}" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT
root=$work/root
log=$work/console.log
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,dev,proc,sys,etc,root,tmp,vm,newroot}

# copy_bin SRC DEST: an executable plus every shared library it needs, each at
# the path the dynamic loader will look for it.
copy_bin() {
	local src=$1 dest=$2 lib
	install -D -m 0755 "$src" "$root$dest"
	{ ldd "$src" 2>/dev/null || true; } | awk '/=> \// {print $3} /^\t\// {print $1}' | while read -r lib; do
		[ -e "$root$lib" ] && continue
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
}

copy_bin "$busybox" /bin/busybox
"$busybox" --list-full | while read -r applet; do
	[ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
copy_bin "$hutch" /usr/bin/hutch
ln -s hutch "$root/usr/bin/hutch-oci" # the OCI runtime: hutch reads its own name
# to run hutch as an unprivileged user (the rootless checks; stage2.sh calls it by
# its full path: the busybox shell prefers its own applet of that name)
copy_bin "$(command -v setpriv)" /usr/bin/setpriv

# overlay and the modules it depends on, in load order (dependencies first),
# decompressed: busybox insmod may not read .ko.xz/.ko.zst.
declare -A seen=()
load_order=()
add_module() {
	local m=$1 d
	[ -n "${seen[$m]:-}" ] && return 0
	seen[$m]=1
	for d in $(awk -v m="$m:" '$1 == m {for (i = 2; i <= NF; i++) print $i}' "$moddir/modules.dep"); do
		add_module "$d"
	done
	load_order+=("$m")
}
# what stage2.sh needs beyond the kernel's built-ins (brd: a RAM disk for io.max)
vm_modules="overlay brd"
for name in $vm_modules; do
	m=$(awk -F: -v n="${name//-/_}" '{f = $1; sub(/.*\//, "", f); sub(/\.ko(\.[a-z]+)?$/, "", f); gsub(/-/, "_", f); if (f == n) {print $1; exit}}' "$moddir/modules.dep")
	[ -n "$m" ] || die "module $name not in $moddir/modules.dep"
	add_module "$m"
done
: >"$root/vm/modules"
for m in "${load_order[@]}"; do
	out=$kver/${m%.xz}
	out=${out%.zst}
	out=${out%.gz}
	mkdir -p "$root/lib/modules/$(dirname "$out")"
	case $m in
	*.xz) xz -dc "$moddir/$m" >"$root/lib/modules/$out" ;;
	*.zst) zstd -qdc "$moddir/$m" >"$root/lib/modules/$out" ;;
	*.gz) gzip -dc "$moddir/$m" >"$root/lib/modules/$out" ;;
	*) cp "$moddir/$m" "$root/lib/modules/$out" ;;
	esac
	echo "$out" >>"$root/vm/modules"
done

sh "$repo/tests/lib/make-busybox-rootfs.sh" "$work/bbroot" "$root/bb.tar"
rm -rf "$work/bbroot"
# A three-layer OCI image: on this kernel (no "lowerdir+") its layer list is
# longer than fsconfig takes, so hutch must fall back to mount(2).
python3 "$repo/tests/lib/make-oci-layout.py" "$root/bb.tar" "$root/ml3"

install -m 0755 "$here/init.sh" "$root/init"
install -m 0755 "${VM_STAGE2:-$here/stage2.sh}" "$root/vm/stage2.sh"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
mknod -m 0600 "$root/dev/console" c 5 1
mknod -m 0666 "$root/dev/null" c 1 3

initrd=$work/initramfs.cpio
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner 0:0 --quiet) >"$initrd"
built=$(ms)
say "kernel $kver, initramfs $(($(stat -c %s "$initrd") / 1024)) KiB built in $(secs $((built - start))) s"

# ---------------------------------------------------------------- boot
: >"$log"
qemu_rc=0
timeout -k 10 "$timeout_s" qemu-system-x86_64 \
	-accel tcg -m 1024 -smp 2 \
	-nographic -monitor none -serial "file:$log" -nic none -no-reboot \
	-kernel "$kernel" -initrd "$initrd" \
	-append "console=ttyS0 quiet panic=-1 cgroup_no_v1=all" \
	</dev/null >"$work/qemu.out" 2>&1 || qemu_rc=$?
elapsed=$(secs $(($(ms) - built)))

# ---------------------------------------------------------------- results
# Plain text: no carriage returns, no terminal escapes from the firmware.
sed -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[A-Za-z]//g' "$work/console.log" >"$vmdir/console.log"
log=$vmdir/console.log
grep -E '^(vm: |VMTEST )' "$log" | grep -v '^VMTEST SUMMARY' || true
passed=$(grep -c '^VMTEST PASS ' "$log" || true)
failed=$(grep -c '^VMTEST FAIL ' "$log" || true)
summary=$(grep -m1 '^VMTEST SUMMARY ' "$log" || true)
problem=""
if [ -z "$summary" ]; then
	if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
		problem="the VM did not finish within ${timeout_s} s (VM_TIMEOUT)"
	elif grep -q 'Kernel panic' "$log"; then
		problem="the VM kernel panicked"
	else
		problem="the VM stopped (qemu exit $qemu_rc) before the tests finished"
	fi
elif [ "$summary" != "VMTEST SUMMARY $passed passed, $failed failed" ]; then
	problem="the VM's summary '$summary' does not match its $passed PASS and $failed FAIL lines"
fi
if [ -n "$problem" ] || [ "$failed" -gt 0 ]; then
	if [ -s "$work/qemu.out" ]; then
		echo "--- qemu output ---"
		tail -n 20 "$work/qemu.out"
	fi
	echo "--- console log, last 60 lines (all of it: $log) ---"
	tail -n 60 "$log"
	echo "--- end of console log ---"
fi
say "VM ran for ${elapsed} s"
if [ -n "$problem" ]; then
	say "FAIL: $problem"
	failed=$((failed + 1))
fi
echo "vm: $passed passed, $failed failed"
if [ "$failed" -eq 0 ]; then
	exit 0
fi
exit 1
