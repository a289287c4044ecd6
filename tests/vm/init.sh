#!/bin/sh
# Stage 1 of the test VM, /init of the initramfs.
# hutch enters a container with pivot_root(2), which fails with EINVAL while the
# root is the initramfs itself (rootfs has no parent mount). So copy everything
# to a tmpfs and switch_root into it; stage2.sh runs the tests from there.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

die() {
	echo "VMTEST FAIL vm-stage1: $*"
	echo "VMTEST SUMMARY 0 passed, 1 failed"
	poweroff -f
	exit 1
}

mkdir -p /newroot
mount -t tmpfs -o mode=0755 tmpfs /newroot || die "mount tmpfs for the new root"
for entry in /* /.[!.]*; do
	case "$entry" in
	/newroot | /init | /dev | /proc | /sys | '/.[!.]*') ;;
	*) cp -a "$entry" /newroot/ || die "copy $entry to the new root" ;;
	esac
done
mkdir -p /newroot/dev /newroot/proc /newroot/sys
mount --move /dev /newroot/dev || die "move /dev"
# shellcheck disable=SC2093 # the line after runs only if exec fails
exec switch_root /newroot /vm/stage2.sh
die "switch_root failed"
