#!/bin/sh
# Build a minimal busybox rootfs (from Debian's busybox-static) into DIR and, if
# given, pack it as TARBALL (.tar, .tar.gz or .tar.zst by its name).
# Usage: make-busybox-rootfs.sh DIR [TARBALL]
set -eu
dir=$1
tarball=${2:-}
bb=$(command -v busybox || true)
[ -x /bin/busybox ] && bb=/bin/busybox
if [ -z "$bb" ]; then
	echo "make-busybox-rootfs: busybox not found (apt-get install busybox-static)" >&2
	exit 1
fi
rm -rf "$dir"
mkdir -p "$dir"/bin "$dir"/etc "$dir"/tmp "$dir"/root "$dir"/home/app "$dir"/proc \
	"$dir"/sys "$dir"/dev "$dir"/var/tmp "$dir"/usr/bin "$dir"/sbin
cp "$bb" "$dir"/bin/busybox
for applet in $("$bb" --list); do
	[ "$applet" = busybox ] && continue
	ln -sf busybox "$dir/bin/$applet"
done
cat >"$dir"/etc/passwd <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat >"$dir"/etc/group <<'G'
root:x:0:
daemon:x:1:
wheel:x:10:app
app:x:1000:
users:x:100:app
nogroup:x:65534:
G
echo "hutch-test" >"$dir"/etc/hostname
chmod 1777 "$dir"/tmp "$dir"/var/tmp
chown 1000:1000 "$dir"/home/app 2>/dev/null || true
if [ -n "$tarball" ]; then
	case "$tarball" in
	*.tar.gz | *.tgz) tar --numeric-owner -C "$dir" -czf "$tarball" . ;;
	*.tar.zst) tar --numeric-owner -C "$dir" -cf - . | zstd -q -o "$tarball" -f ;;
	*) tar --numeric-owner -C "$dir" -cf "$tarball" . ;;
	esac
fi
