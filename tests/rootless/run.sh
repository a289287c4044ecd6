#!/bin/bash
# Run the whole integration suite (tests/integration) a second time, as an
# unprivileged user: hutch then runs rootless (user namespace, subordinate ids
# through newuidmap/newgidmap, state under $XDG_RUNTIME_DIR). Run as root; it
# creates the test user if needed.
#
# Usage: tests/rootless/run.sh [PYTEST ARGS...]   (e.g. -k lifecycle, -x)
# Env:   HUTCH_TEST_USER (default hutchtest), HUTCH_BIN (default REPO/build/hutch)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
USER_NAME=${HUTCH_TEST_USER:-hutchtest}
BIN=${HUTCH_BIN:-$REPO/build/hutch}
SUB_COUNT=65536

die() { echo "tests/rootless/run.sh: $*" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || die "run me as root (I create the test user and switch to it)"
[ -x "$BIN" ] || die "no hutch binary at $BIN: run 'make build/hutch' first"
command -v newuidmap >/dev/null && command -v newgidmap >/dev/null ||
	die "newuidmap/newgidmap not found (apt-get install uidmap)"

# --- the test user and its subordinate id ranges
if ! id "$USER_NAME" >/dev/null 2>&1; then
	useradd -m -s /bin/bash "$USER_NAME"
fi
# Give the user a range of SUB_COUNT ids in FILE unless it has one that big;
# a new range starts after every range already given out (and at 100000 at least).
ensure_subids() {
	local file=$1 start
	touch "$file"
	if awk -F: -v u="$USER_NAME" -v n="$SUB_COUNT" \
		'$1 == u && $3 >= n { found = 1 } END { exit !found }' "$file"; then
		return 0
	fi
	start=$(awk -F: 'BEGIN { m = 100000 } NF == 3 && $2 + $3 > m { m = $2 + $3 } END { print m }' "$file")
	echo "$USER_NAME:$start:$SUB_COUNT" >>"$file"
}
ensure_subids /etc/subuid
ensure_subids /etc/subgid

# --- a fresh, user-owned place for everything the run reads and writes: the
# tests and the binary are copied there, so no directory of the host (the
# clone may live under /root) needs its permissions changed
WORK=$(mktemp -d /tmp/hutch-rootless.XXXXXX)
# rootless podman (the OCI tests run it as the test user) leaves a pause process
# holding its namespaces, recorded under the run's XDG_RUNTIME_DIR: it is ours, it goes
cleanup() {
	local pid
	pid=$(cat "$WORK/xdg-runtime/libpod/tmp/pause.pid" 2>/dev/null) || pid=
	if [[ $pid =~ ^[0-9]+$ ]] && [[ $(stat -c %U "/proc/$pid" 2>/dev/null) == "$USER_NAME" ]]; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
install -d -m 0755 "$WORK/repo" "$WORK/repo/build"
cp -a "$REPO/tests" "$WORK/repo/"
# what test_install.py's `make install` reads (the binary is the copied one)
install -d -m 0755 "$WORK/repo/supervisor"
cp -a "$REPO/Makefile" "$REPO/README.md" "$REPO/docs" "$WORK/repo/"
cp -a "$REPO/supervisor/dist" "$WORK/repo/supervisor/"
rm -rf "$WORK/repo/tests/fuzz"
cp "$BIN" "$WORK/repo/build/hutch"
chown -R "$USER_NAME:" "$WORK"
chmod 0711 "$WORK"
install -d -o "$USER_NAME" -m 0700 "$WORK/xdg-runtime" "$WORK/tmp" "$WORK/pytest" \
	"$WORK/data"
BIN=$WORK/repo/build/hutch
su "$USER_NAME" -s /bin/sh -c "test -x '$BIN' && test -r '$WORK/repo/tests/integration/conftest.py'" ||
	die "user $USER_NAME cannot read the copied tests or run $BIN"

args=""
for a in "$@"; do
	args+=" $(printf '%q' "$a")"
done

echo "rootless suite: as $USER_NAME ($(id -u "$USER_NAME")), $(grep "^$USER_NAME:" /etc/subuid)"
start=$(date +%s)
rc=0
su "$USER_NAME" -s /bin/bash -c "
	cd '$WORK/repo' &&
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		XDG_RUNTIME_DIR='$WORK/xdg-runtime' XDG_DATA_HOME='$WORK/data' TMPDIR='$WORK/tmp' \
		PYTHONDONTWRITEBYTECODE=1 HUTCH_BIN='$BIN' &&
	exec /usr/bin/python3 -m pytest -q -p no:cacheprovider --basetemp='$WORK/pytest' \
		tests/integration$args" || rc=$?
echo "rootless suite: exit $rc after $(($(date +%s) - start)) s"
exit $rc
