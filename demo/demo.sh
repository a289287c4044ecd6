#!/bin/bash
# `make demo`: build a busybox image, import it, and show what a hutch container
# is. Everything lives under build/demo (--root), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
HUTCH=$(realpath "${HUTCH:-build/hutch}")
ROOT=$(mktemp -d "${TMPDIR:-/tmp}/hutch-demo.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT
h() { "$HUTCH" --root "$ROOT/state" "$@"; }
step() { printf '\n\033[1m$ hutch %s\033[0m\n' "$*"; }

tests/lib/make-busybox-rootfs.sh "$ROOT/rootfs" "$ROOT/busybox.tar.gz"
mkdir -p "$ROOT/data" && echo "hello from the host" >"$ROOT/data/greeting.txt"

step image import busybox.tar.gz bb
h image import "$ROOT/busybox.tar.gz" bb
step image ls
h image ls

step run --rm bb echo hello from a container
h run --rm bb echo hello from a container

step run --rm bb sh -c 'hostname; echo pid \$\$; ps; grep Cap /proc/self/status'
h run --rm bb sh -c 'hostname; echo "pid $$"; ps; grep -E "CapEff|NoNewPrivs|Seccomp:" /proc/self/status'

step "run --rm -e A=1 -v ./data:/data:ro --tmpfs /tmp -w /data --user 1000:1000 --hostname box --read-only --cap-drop NET_RAW --network none bb sh -c 'id; ls /data; ...'"
(cd "$ROOT" && h run --rm -e A=1 -v ./data:/data:ro --tmpfs /tmp -w /data --user 1000:1000 \
	--hostname box --read-only --cap-drop NET_RAW --network none bb \
	sh -c 'id; hostname; cat /data/greeting.txt; echo "A=$A"; touch /x || true; touch /data/y || true; touch /tmp/ok && echo "/tmp is writable"; ip link 2>/dev/null | grep -c "^[0-9]" | sed "s/^/interfaces: /"')

step "run --rm bb sh -c 'echo scribble > /etc/motd'   # then look again"
h run --rm bb sh -c 'echo scribble > /etc/motd; cat /etc/motd'
h run --rm bb sh -c 'cat /etc/motd 2>/dev/null || echo "/etc/motd: gone (writes never change the image)"'

step "run --rm bb sh -c 'exit 42'"
set +e
h run --rm bb sh -c 'exit 42'
echo "exit code: $?"
step "run --rm bb no-such-command"
h run --rm bb no-such-command
echo "exit code: $?"
set -e
step "run -d --name web bb sh -c 'i=0; while :; do i=\$((i+1)); echo \"tick \$i\"; sleep 0.2; done'   # detached, under a small monitor"
h run -d --name web bb sh -c 'i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.2; done' >/dev/null
sleep 0.7
step ps
h ps
step "exec web sh -c 'echo \"inside \$(hostname): \$(ps | wc -l) lines of ps\"'"
h exec web sh -c 'echo "inside $(hostname): $(ps | wc -l) lines of ps"'
step "logs --tail 2 web"
h logs --tail 2 web
step "stop -t 1 web && rm web"
h stop -t 1 web
h rm web
h ps -a

# ---- a stack: dependencies, a healthcheck, a one-shot job, a crash loop
mkdir -p "$ROOT/shop"
cat >"$ROOT/shop/hutch.ini" <<'INI'
[stack]
name = shop

; a "database": healthy once it has made its data file
[service.db]
image = bb
command = "sh -c 'sleep 0.3; touch /tmp/up; echo db: accepting connections; exec sleep 1000'"
health_cmd = test -f /tmp/up
health_interval = 1s
health_start_interval = 100ms
health_start_period = 10s

; a one-shot job that needs the database healthy
[service.migrate]
image = bb
command = sh -c 'echo migrate: schema up to date'
depends_on = db:healthy

; the app starts once the migration completed
[service.api]
image = bb
command = "sh -c 'echo api: serving; exec sleep 1000'"
depends_on = db:healthy migrate:completed
replicas = 2

; a service that crashes: restarted with Docker's backoff (100 ms, 200 ms, ...)
[service.flaky]
image = bb
command = "sh -c 'echo flaky: crashing; exit 3'"
restart = on-failure:5
INI
step "up -d --wait   # in a directory with this hutch.ini:"
sed 's/^/    /' "$ROOT/shop/hutch.ini"
(cd "$ROOT/shop" && h up -d --wait)
sleep 1
step "stack ps"
(cd "$ROOT/shop" && h stack ps)
step "stack logs --tail 1"
(cd "$ROOT/shop" && h stack logs --tail 1)
step "ps   # a service's containers are ordinary containers"
h ps
step "down -t 1"
(cd "$ROOT/shop" && h down -t 1)
h ps -a

# ---- a stack's own network: services by name, a port published on the host
mkdir -p "$ROOT/site"
cat >"$ROOT/site/hutch.ini" <<'INI'
[stack]
name = site

; a web server, published on the host's port 18080
[service.web]
image = bb
command = "sh -c 'echo hello from $$(hostname), the web service > /www/index.html; exec httpd -f -p 80 -h /www'"
tmpfs = /www
init = true
ports = 18080:80
aliases = www

; a client that reaches it by name, through the stack's DNS server
[service.client]
image = bb
command = sleep 1000
init = true
INI
step "up -d --wait   # in a directory with this hutch.ini:"
sed 's/^/    /' "$ROOT/site/hutch.ini"
(cd "$ROOT/site" && h up -d --wait)
step "network ls   # the stack's own network (a bridge), its DNS server on the gateway"
h network ls
step "exec site-client-1 sh -c 'cat /etc/resolv.conf; nslookup web; wget -qO- http://web/; wget -qO- http://web.site/'"
h exec site-client-1 sh -c 'cat /etc/resolv.conf; nslookup web | grep -A1 "^Name"; wget -qO- http://web/; wget -qO- http://web.site/'
printf '\n\033[1m$ busybox wget -qO- http://127.0.0.1:18080/   # on the host\033[0m\n'
for _ in 1 2 3 4 5 6 7 8 9 10; do busybox wget -qO- http://127.0.0.1:18080/ 2>/dev/null && break; sleep 0.2; done
step "down -t 1   # the network goes with the stack"
(cd "$ROOT/site" && h down -t 1)
h network ls

printf '\nDemo done. Try: %s --root %s run --rm -it bb sh\n' "$HUTCH" "<dir>"
