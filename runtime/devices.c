/* The device cgroup: which device nodes a container may make (mknod) and open,
 * as a cgroup v2 eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) attached to the
 * container's cgroup before its first process is cloned into it. The kernel
 * runs it at every mknod and open of a device node by a process in the cgroup
 * (`exec` too: it is cloned into the same cgroup), whatever mount the node is
 * on and whatever capabilities the process has.
 *
 * The program is generated from the OCI rule list as crun and runc do: the
 * rules from the last to the first, each a test that returns its verdict when
 * it matches, then "deny". One difference: a deny rule matches a request that
 * asks for any access it names (as the kernel's cgroup v1 device controller
 * has it), not only for a subset, so "deny c 1:3 w" refuses an open for
 * reading and writing. It is loaded with bpf(2) directly (no libbpf), and
 * without raising RLIMIT_MEMLOCK: since Linux 5.11 BPF memory is charged to
 * the memory cgroup instead.
 *
 * Where no program can be attached (no cgroup v2 for the container, bpf
 * refused), the container gets the same protection another way: every mount
 * nodev (its own /dev nodes then binds of the host's, which are not) and no
 * CAP_MKNOD (container.c, mounts.c). */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime/runtime_internal.h"

#define INSN(c, d, s, o, i)                                                                        \
	((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define LDX_W(dst, src, off)	INSN(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
#define ALU32_IMM(op, dst, imm) INSN(BPF_ALU | (op) | BPF_K, dst, 0, 0, imm)
#define ALU64_IMM(op, dst, imm) INSN(BPF_ALU64 | (op) | BPF_K, dst, 0, 0, imm)
#define ALU32_REG(op, dst, src) INSN(BPF_ALU | (op) | BPF_X, dst, src, 0, 0)
#define ALU64_REG(op, dst, src) INSN(BPF_ALU64 | (op) | BPF_X, dst, src, 0, 0)
#define JMP_IMM(op, dst, imm)	INSN(BPF_JMP | (op) | BPF_K, dst, 0, 0, imm)
#define JMP_REG(op, dst, src)	INSN(BPF_JMP | (op) | BPF_X, dst, src, 0, 0)
#define JMP32_IMM(op, dst, imm) INSN(BPF_JMP32 | (op) | BPF_K, dst, 0, 0, imm)
#define EXIT_INSN()		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* Registers after the preamble. Only scratch registers are ever compared:
 * the verifier then learns nothing about the request on the way from one
 * rule to the next, and walks each instruction about once (a chain of tests
 * on the request's own registers made it walk the program three times over,
 * which was most of the cost of loading it). */
enum { R_CTX = 1, R_TYPE = 2, R_ACCESS = 3, R_MAJOR = 4, R_MINOR = 5, R_KEY = 6 };
enum { R_TMP = 1, R_TMP2 = 7 };

/* The kernel's device numbers have 12 bits of major and 20 of minor: with
 * the type (1 block, 2 char) they make one 34-bit key, minor << 14 | major
 * << 2 | type, which a rule matches under a mask. */
#define KEY_TYPE  0x3ULL
#define KEY_MAJOR (0xfffULL << 2)
#define KEY_MINOR (0xfffffULL << 14)

static bool fits_imm(uint64_t v)
{
	return v <= INT32_MAX;
}

static int access_bits(const char *access)
{
	int bits = 0;
	for (const char *p = access; *p; p++)
		bits |= *p == 'r'   ? BPF_DEVCG_ACC_READ
			: *p == 'w' ? BPF_DEVCG_ACC_WRITE
			: *p == 'm' ? BPF_DEVCG_ACC_MKNOD
				    : 0;
	return bits;
}

#define ALL_ACCESS (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)

/* Matches every request: nothing before it in the list can matter. */
static bool matches_all(const struct hutch_device_rule *r)
{
	return r->type == 'a' && r->major < 0 && r->minor < 0 &&
	       access_bits(r->access) == ALL_ACCESS;
}

bool devices_allow_all(const struct hutch_device_rule *rules, size_t n)
{
	for (size_t i = n; i-- > 0;) {
		if (!rules[i].allow)
			return false;
		if (matches_all(&rules[i]))
			return true;
	}
	return false;
}

/* A rule whose numbers no device has can match nothing. */
static bool impossible(const struct hutch_device_rule *r)
{
	return r->major > 0xfff || r->minor > 0xfffff;
}

bool devices_allowed(const struct hutch_device_rule *rules, size_t n, char type, uint32_t major,
		     uint32_t minor, const char *access)
{
	int want = access_bits(access);
	for (size_t i = n; i-- > 0;) {
		const struct hutch_device_rule *r = &rules[i];
		int have = access_bits(r->access);
		if (!impossible(r) && (r->type == 'a' || r->type == type) &&
		    (r->major < 0 || r->major == major) && (r->minor < 0 || r->minor == minor) &&
		    (r->allow ? !(want & ~have) : (want & have)))
			return r->allow;
	}
	return false;
}

struct prog {
	struct bpf_insn *p;
	size_t k;
};

static void emit(struct prog *g, struct bpf_insn i)
{
	g->p[g->k++] = i;
}

static void emit_ld_imm64(struct prog *g, int dst, uint64_t v)
{
	emit(g, INSN(BPF_LD | BPF_IMM | BPF_DW, dst, 0, 0, (int32_t)(uint32_t)v));
	emit(g, INSN(0, 0, 0, 0, (int32_t)(uint32_t)(v >> 32)));
}

size_t devices_program(const struct hutch_device_rule *rules, size_t n, struct bpf_insn **out)
{
	/* a preamble of 13, at most 10 per rule, two verdicts */
	struct prog g = {.p = xcalloc(13 + 10 * n + 4, sizeof(struct bpf_insn))};
	/* the jumps to a verdict, patched once the verdicts' places are known */
	size_t *to_verdict = xcalloc(n + 1, sizeof(size_t));
	size_t n_jumps = 0;
	emit(&g, LDX_W(R_TYPE, R_CTX, offsetof(struct bpf_cgroup_dev_ctx, access_type)));
	emit(&g, LDX_W(R_MAJOR, R_CTX, offsetof(struct bpf_cgroup_dev_ctx, major)));
	emit(&g, LDX_W(R_MINOR, R_CTX, offsetof(struct bpf_cgroup_dev_ctx, minor)));
	emit(&g, ALU32_REG(BPF_MOV, R_ACCESS, R_TYPE));
	emit(&g, ALU32_IMM(BPF_RSH, R_ACCESS, 16));
	emit(&g, ALU32_IMM(BPF_AND, R_TYPE, KEY_TYPE));
	emit(&g, ALU32_IMM(BPF_AND, R_MAJOR, 0xfff));
	emit(&g, ALU32_IMM(BPF_AND, R_MINOR, 0xfffff));
	emit(&g, ALU64_REG(BPF_MOV, R_KEY, R_MINOR));
	emit(&g, ALU64_IMM(BPF_LSH, R_KEY, 14));
	emit(&g, ALU64_IMM(BPF_LSH, R_MAJOR, 2));
	emit(&g, ALU64_REG(BPF_OR, R_KEY, R_MAJOR));
	emit(&g, ALU64_REG(BPF_OR, R_KEY, R_TYPE));
	int verdict = 0;	      /* what no rule matches */
	int jump_verdict[2] = {0, 0}; /* verdicts some rule jumps to */
	for (size_t i = n; i-- > 0;) {
		const struct hutch_device_rule *r = &rules[i];
		if (matches_all(r)) {
			verdict = r->allow;
			break;
		}
		if (impossible(r))
			continue;
		int access = access_bits(r->access);
		size_t skip = SIZE_MAX; /* the access test's jump past the rule */
		if (access != ALL_ACCESS) {
			/* an allow rule matches a request that asks for nothing it lacks,
			 * a deny rule one that asks for anything it names */
			emit(&g, ALU32_REG(BPF_MOV, R_TMP, R_ACCESS));
			emit(&g,
			     ALU32_IMM(BPF_AND, R_TMP, r->allow ? ~access & ALL_ACCESS : access));
			skip = g.k;
			emit(&g, JMP32_IMM(r->allow ? BPF_JNE : BPF_JEQ, R_TMP, 0));
		}
		uint64_t mask = (r->type != 'a' ? KEY_TYPE : 0) | (r->major >= 0 ? KEY_MAJOR : 0) |
				(r->minor >= 0 ? KEY_MINOR : 0);
		uint64_t value = (r->type == 'b'   ? BPF_DEVCG_DEV_BLOCK
				  : r->type == 'c' ? BPF_DEVCG_DEV_CHAR
						   : 0) |
				 (r->major >= 0 ? (uint64_t)r->major << 2 : 0) |
				 (r->minor >= 0 ? (uint64_t)r->minor << 14 : 0);
		int key = R_KEY;
		if (mask == 0) {
			emit(&g, INSN(BPF_JMP | BPF_JA, 0, 0, 0, 0));
		} else {
			if (mask != (KEY_TYPE | KEY_MAJOR | KEY_MINOR)) {
				key = R_TMP;
				emit(&g, ALU64_REG(BPF_MOV, R_TMP, R_KEY));
				if (fits_imm(mask)) {
					emit(&g, ALU64_IMM(BPF_AND, R_TMP, (int32_t)mask));
				} else {
					emit_ld_imm64(&g, R_TMP2, mask);
					emit(&g, ALU64_REG(BPF_AND, R_TMP, R_TMP2));
				}
			}
			if (fits_imm(value)) {
				emit(&g, JMP_IMM(BPF_JEQ, key, (int32_t)value));
			} else {
				emit_ld_imm64(&g, R_TMP2, value);
				emit(&g, JMP_REG(BPF_JEQ, key, R_TMP2));
			}
		}
		to_verdict[n_jumps++] = (g.k - 1) | (size_t)r->allow << 63;
		jump_verdict[r->allow] = 1;
		if (skip != SIZE_MAX)
			g.p[skip].off = (int16_t)(g.k - skip - 1);
	}
	/* no rule matched: the default, then the other verdict if jumped to */
	size_t at[2];
	at[verdict] = g.k;
	emit(&g, ALU64_IMM(BPF_MOV, 0, verdict));
	emit(&g, EXIT_INSN());
	if (jump_verdict[!verdict]) {
		at[!verdict] = g.k;
		emit(&g, ALU64_IMM(BPF_MOV, 0, !verdict));
		emit(&g, EXIT_INSN());
	}
	for (size_t j = 0; j < n_jumps; j++) {
		size_t from = to_verdict[j] & ~((size_t)1 << 63);
		g.p[from].off = (int16_t)(at[to_verdict[j] >> 63] - from - 1);
	}
	free(to_verdict);
	*out = g.p;
	return g.k;
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

/* Load the program and attach it to the cgroup; -errno and what failed. */
static int load_and_attach(const struct hutch_spec *spec, int cgfd, const char **what)
{
	_cleanup_free_ struct bpf_insn *insns = NULL;
	size_t n = devices_program(spec->resources.devices, spec->resources.n_devices, &insns);
	union bpf_attr attr = {0};
	attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	attr.expected_attach_type = BPF_CGROUP_DEVICE;
	attr.insns = (uint64_t)(uintptr_t)insns;
	attr.insn_cnt = (uint32_t)n;
	attr.license = (uint64_t)(uintptr_t) "GPL";
	snprintf(attr.prog_name, sizeof(attr.prog_name), "hutch_devices");
	*what = "load";
	_cleanup_close_ int prog = (int)sys_bpf(BPF_PROG_LOAD, &attr);
	if (prog < 0)
		return -errno;
	hutch_trace("devices: program loaded");
	memset(&attr, 0, sizeof(attr));
	attr.target_fd = (uint32_t)cgfd;
	attr.attach_bpf_fd = (uint32_t)prog;
	attr.attach_type = BPF_CGROUP_DEVICE;
	/* a program in a cgroup below (a nested runtime's) can only deny more:
	 * the kernel allows an access only if every program on the way allows it */
	attr.attach_flags = BPF_F_ALLOW_MULTI;
	*what = "attach";
	if (sys_bpf(BPF_PROG_ATTACH, &attr) < 0)
		return -errno;
	/* the cgroup holds the program now, until it is removed */
	return 0;
}

/* Said once per user: a marker in the run root, as the single-id note. */
static void say_fallback(const struct hutch_runtime *rt, const char *why)
{
	if (!rt->log && rt->quiet)
		return;
	_cleanup_free_ char *marker = xasprintf("%s/device-cgroup-note-given", rt->run_root);
	int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST)
		return;
	if (fd >= 0)
		close(fd);
	hutch_runtime_log(rt, HUTCH_LOG_NOTE,
			  "no device cgroup for containers here (%s): instead their mounts are "
			  "nodev and they have no CAP_MKNOD, so they can open no device nodes but "
			  "their own /dev/null, zero, full, random, urandom, tty and ptys (and "
			  "--device ones). (Said once.)",
			  why);
}

/* Without a program, a node bound in opens for reading and writing both:
 * one the rules allow less is refused rather than given more. */
static int check_fallback(const struct hutch_spec *spec, const char *why, struct hutch_err **err)
{
	const struct hutch_resources *res = &spec->resources;
	for (size_t i = 0; i < spec->n_devices; i++) {
		const struct hutch_device *d = &spec->devices[i];
		if (!devices_allowed(res->devices, res->n_devices, d->type, (uint32_t)d->major,
				     (uint32_t)d->minor, "rw"))
			return hutch_fail(err, 0,
					  "device %s may not be both read and written, and that "
					  "cannot be enforced here (no device cgroup: %s): give it "
					  "with rw access, or leave it out",
					  d->path, why);
	}
	return 0;
}

int devices_plan(const struct hutch_runtime *rt, const struct hutch_spec *spec,
		 const struct cgroup *cg, struct hutch_err **err)
{
	if (devices_allow_all(spec->resources.devices, spec->resources.n_devices))
		return DEVICES_FREE;
	/* In a user namespace of an unprivileged user, the kernel wants
	 * CAP_MKNOD in the initial one for mknod of a device, and opens no node
	 * on a filesystem mounted in the namespace (the overlay, tmpfs): the
	 * container can open only nodes its user could open on the host anyway,
	 * through binds of the host's. (Nor may that user load the program.) */
	if (rt->rootless)
		return check_fallback(spec, "an unprivileged user cannot attach one", err) < 0
			   ? -1
			   : DEVICES_FREE;
	if (cg->dirfd < 0) {
		const char *why = "no cgroup v2 hierarchy is mounted";
		if (check_fallback(spec, why, err) < 0)
			return -1;
		say_fallback(rt, why);
		return DEVICES_NODEV;
	}
	return DEVICES_PROGRAM;
}

int devices_attach_program(const struct hutch_runtime *rt, const struct hutch_spec *spec,
			   const struct cgroup *cg, struct hutch_err **err)
{
	const char *what = "";
	int r = load_and_attach(spec, cg->dirfd, &what);
	if (r == 0) {
		hutch_trace("devices: program attached");
		return 0;
	}
	char why[160];
	snprintf(why, sizeof(why), "the kernel refused to %s its eBPF program: %s", what,
		 strerror(-r));
	if (check_fallback(spec, why, err) < 0)
		return -1;
	say_fallback(rt, why);
	return 1;
}

int devices_attach(const struct hutch_runtime *rt, const struct hutch_spec *spec,
		   const struct cgroup *cg, struct hutch_err **err)
{
	int plan = devices_plan(rt, spec, cg, err);
	if (plan != DEVICES_PROGRAM)
		return plan == DEVICES_NODEV ? 1 : plan;
	return devices_attach_program(rt, spec, cg, err);
}
