# hutch: `make` builds build/hutch; `make check` installs deps and runs every suite.
CC ?= gcc
PYTHON ?= /usr/bin/python3
CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Werror -Wno-unused-parameter
BASE_CFLAGS := -std=gnu17 -D_GNU_SOURCE -I. -I/usr/include/libnl3 $(WARN) -fno-strict-aliasing
LIBS := -lseccomp -lcap -ljson-c -lz -lzstd -liniparser -lyaml -lnl-route-3 -lnl-3
# build/hutch links these statically (Debian's -dev packages ship the .a files) and
# only libc dynamically: five fewer shared objects to map and relocate at every
# start, ~0.2 ms of each `hutch run`. libcurl stays dlopen'ed (images/registry.c).
HUTCH_LIBS := -Wl,-Bstatic $(LIBS) -Wl,-Bdynamic
LDFLAGS ?=
LDFLAGS += -Wl,--as-needed -Wl,-O1

LIB_SRCS := $(wildcard common/*.c runtime/*.c images/*.c builder/*.c supervisor/*.c net/*.c)
CLI_SRCS := $(wildcard cli/*.c)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)

OBJ := build/obj
ASAN_OBJ := build/asan
LIB_OBJS := $(LIB_SRCS:%.c=$(OBJ)/%.o) $(OBJ)/dmz_blob.o $(OBJ)/keeper_blob.o
CLI_OBJS := $(CLI_SRCS:%.c=$(OBJ)/%.o)
ASAN_LIB_OBJS := $(LIB_SRCS:%.c=$(ASAN_OBJ)/%.o) $(OBJ)/dmz_blob.o $(OBJ)/keeper_blob.o
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/unit/%)
UNIT_ASAN_BINS := $(UNIT_SRCS:tests/unit/%.c=build/unit-asan/%)

DEB_DEPS := build-essential pkg-config libseccomp-dev libcap-dev libjson-c-dev zlib1g-dev \
	libzstd-dev libnl-3-dev libnl-route-3-dev libiniparser-dev libyaml-dev libcmocka-dev \
	python3 python3-pytest busybox-static uidmap iproute2 procps util-linux zstd gzip tar \
	passwd qemu-system-x86 linux-image-amd64 cpio xz-utils strace gdb gcc libc6-dev gcc-multilib \
	libcurl4 libcurl4-openssl-dev docker-registry skopeo umoci apache2-utils openssl \
	python3-cryptography clang libclang-rt-dev bind9-dnsutils \
	libnftables-dev nftables passt systemd \
	podman runc containerd
# dnsmasq-base: the binary alone (the dnsmasq package starts a system-wide server)
BENCH_DEPS := hyperfine slirp4netns crun runc bubblewrap podman umoci skopeo docker-registry curl \
	dnsperf dnsmasq-base aardvark-dns libldns-dev podman-compose strace iperf3 buildah

.PHONY: all clean deps bench-deps check test unit unit-asan integration integration-rootless \
	check-vm demo bench fuzz fuzz-smoke format

all: build/hutch build/hutch-oci

build/hutch: $(LIB_OBJS) $(CLI_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(HUTCH_LIBS)

# the OCI runtime command line (cli/oci.c): hutch reads its own name
build/hutch-oci: build/hutch
	ln -sf hutch $@

$(OBJ)/%.o: %.c $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -c -o $@ $<

$(ASAN_OBJ)/%.o: %.c $(wildcard */*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -O1 -g $(SAN) -c -o $@ $<

# hutch-dmz: the tiny static program a container's command is exec'd through
# (runtime/dmz/dmz.c), and hutch-keeper: what a detached container's monitor
# execs once the container runs (runtime/keeper/keeper.c); both embedded in
# hutch as bytes (hutch_dmz[], hutch_keeper[]).
NOLIBC_CFLAGS := -I. -static -nostdlib -nostartfiles -fno-stack-protector -fno-builtin \
	-fno-asynchronous-unwind-tables -fno-pie -no-pie -Os -Wall -Wextra -Werror \
	-Wl,--build-id=none -s
build/dmz: runtime/dmz/dmz.c runtime/nolibc.h
	@mkdir -p build
	$(CC) $(NOLIBC_CFLAGS) -o $@ $<
build/keeper: runtime/keeper/keeper.c runtime/nolibc.h
	@mkdir -p build
	$(CC) $(NOLIBC_CFLAGS) -o $@ $<
build/%_blob.c: build/%
	{ echo '/* generated from build/$* */'; \
	  echo 'const unsigned char hutch_$*[] = {'; \
	  od -An -v -tx1 $< | sed -e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo '};'; echo 'const unsigned long hutch_$*_len = sizeof(hutch_$*);'; } > $@
$(OBJ)/%_blob.o: build/%_blob.c
	@mkdir -p $(dir $@)
	$(CC) -c -o $@ $<

build/libhutch.a: $(LIB_OBJS)
	ar rcs $@ $^
build/libhutch-asan.a: $(ASAN_LIB_OBJS)
	ar rcs $@ $^

build/unit/%: tests/unit/%.c build/libhutch.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) -o $@ $< build/libhutch.a -lcmocka $(LIBS)
build/unit-asan/%: tests/unit/%.c build/libhutch-asan.a
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -O1 -g $(SAN) -o $@ $< build/libhutch-asan.a -lcmocka $(LIBS)

# Installs what building and testing need (Debian, as root). apt-get update first:
# a fresh machine has no package lists.
deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_DEPS)

bench-deps: deps
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BENCH_DEPS)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

unit-asan: $(UNIT_ASAN_BINS)
	@set -e; for t in $(UNIT_ASAN_BINS); do echo "== $$t (asan+ubsan)"; $$t; done

integration: build/hutch build/hutch-oci
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# The integration suite again, as an unprivileged test user (rootless mode).
integration-rootless: build/hutch build/hutch-oci
	tests/rootless/run.sh

# cgroup v2 enforcement in a VM (Debian's kernel under qemu, TCG).
check-vm: build/hutch
	tests/vm/run.sh

# Every suite, without installing anything.
test: unit unit-asan integration integration-rootless check-vm fuzz-smoke

# What README.md promises: from a fresh Debian machine, as root.
check: deps
	$(MAKE) -k test

demo: deps build/hutch
	./demo/demo.sh

bench: bench-deps build/hutch
	rc=0; ./bench/run.sh || rc=$$?; ./bench/dns.sh || rc=$$?; ./bench/stack.sh || rc=$$?; \
		./bench/compose.sh || rc=$$?; ./bench/net.sh || rc=$$?; ./bench/oci.sh || rc=$$?; \
		./bench/build.sh || rc=$$?; exit $$rc

fuzz:
	$(MAKE) -C tests/fuzz

# Every fuzz target built with clang (libFuzzer) and run briefly over its seed
# corpus, so that a target that stops building or a known crash cannot slip in.
FUZZ_SMOKE_SECONDS ?= 8
fuzz-smoke:
	$(MAKE) -C tests/fuzz smoke SMOKE_SECONDS=$(FUZZ_SMOKE_SECONDS)

# make install: what a packager expects. PREFIX (default /usr/local) and DESTDIR
# are honoured; the paths written into the units and the init script are the
# final ones (without DESTDIR). Installs hutch, the boot-time `stack restore`
# units (supervisor/dist/: a systemd system unit, a user unit for rootless
# stacks, an init script for hosts without systemd) and the docs. It enables
# nothing: as with Debian packages, enabling a boot service is the admin's or the
# package's postinst's decision (systemctl enable hutch-restore.service,
# systemctl --user enable hutch-restore.service, update-rc.d hutch-restore defaults),
# and a DESTDIR staging install must not touch the running system.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
DOCDIR ?= $(PREFIX)/share/doc/hutch
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
SYSTEMD_USER_UNIT_DIR ?= $(PREFIX)/lib/systemd/user
INIT_DIR ?= $(SYSCONFDIR)/init.d
INSTALL ?= install
# Other names of the binary (hutch reads its own name), installed as symlinks
# to hutch in BINDIR.
BIN_LINKS := hutch-oci
DIST_SUBST = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
	-e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g'
DOCS := README.md $(wildcard docs/*.md)

.PHONY: install install-bin install-dist install-docs uninstall

install: install-bin install-dist install-docs

install-bin: build/hutch
	$(INSTALL) -d $(DESTDIR)$(BINDIR)
	$(INSTALL) -m 0755 build/hutch $(DESTDIR)$(BINDIR)/hutch
	for l in $(BIN_LINKS); do ln -sf hutch $(DESTDIR)$(BINDIR)/$$l; done

# The units and the init script with their final paths filled in, written
# straight to their place (no file in build/: a packager's install may run as a
# user who cannot write there).
install-dist:
	$(INSTALL) -d $(DESTDIR)$(SYSTEMD_UNIT_DIR) $(DESTDIR)$(SYSTEMD_USER_UNIT_DIR) \
		$(DESTDIR)$(INIT_DIR)
	$(DIST_SUBST) supervisor/dist/hutch-restore.service.in \
		> $(DESTDIR)$(SYSTEMD_UNIT_DIR)/hutch-restore.service
	$(DIST_SUBST) supervisor/dist/hutch-restore.user.service.in \
		> $(DESTDIR)$(SYSTEMD_USER_UNIT_DIR)/hutch-restore.service
	$(DIST_SUBST) supervisor/dist/hutch-restore.init.in > $(DESTDIR)$(INIT_DIR)/hutch-restore
	chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/hutch-restore.service \
		$(DESTDIR)$(SYSTEMD_USER_UNIT_DIR)/hutch-restore.service
	chmod 0755 $(DESTDIR)$(INIT_DIR)/hutch-restore

install-docs:
	$(INSTALL) -d $(DESTDIR)$(DOCDIR)
	$(INSTALL) -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/

# Removes what install put there (disable the units first: systemctl disable ...).
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/hutch $(addprefix $(DESTDIR)$(BINDIR)/,$(BIN_LINKS)) \
		$(DESTDIR)$(SYSTEMD_UNIT_DIR)/hutch-restore.service \
		$(DESTDIR)$(SYSTEMD_USER_UNIT_DIR)/hutch-restore.service \
		$(DESTDIR)$(INIT_DIR)/hutch-restore \
		$(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS)))
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true

format:
	clang-format -i $(LIB_SRCS) $(CLI_SRCS) $(wildcard */*.h)

clean:
	rm -rf build
