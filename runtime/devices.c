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
#define LDX_W(dst, src, off) INSN(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
#define MOV32_REG(dst, src)  INSN(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
#define AND32_IMM(dst, imm)  INSN(BPF_ALU | BPF_AND | BPF_K, dst, 0, 0, imm)
#define RSH32_IMM(dst, imm)  INSN(BPF_ALU | BPF_RSH | BPF_K, dst, 0, 0, imm)
/* 32-bit compares (BPF_JMP32, Linux 5.1+): majors and minors are u32 */
#define JNE32_IMM(dst, imm, off) INSN(BPF_JMP32 | BPF_JNE | BPF_K, dst, 0, off, imm)
#define JEQ32_IMM(dst, imm, off) INSN(BPF_JMP32 | BPF_JEQ | BPF_K, dst, 0, off, imm)
#define MOV64_IMM(dst, imm)	 INSN(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
#define EXIT_INSN()		 INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* Registers after the preamble: the fields of struct bpf_cgroup_dev_ctx. */
enum { R_CTX = 1, R_TYPE = 2, R_ACCESS = 3, R_MAJOR = 4, R_MINOR = 5, R_TMP = 1 };

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

bool devices_allowed(const struct hutch_device_rule *rules, size_t n, char type, uint32_t major,
		     uint32_t minor, const char *access)
{
	int want = access_bits(access);
	for (size_t i = n; i-- > 0;) {
		const struct hutch_device_rule *r = &rules[i];
		int have = access_bits(r->access);
		if ((r->type == 'a' || r->type == type) && (r->major < 0 || r->major == major) &&
		    (r->minor < 0 || r->minor == minor) &&
		    (r->allow ? !(want & ~have) : (want & have)))
			return r->allow;
	}
	return false;
}

size_t devices_program(const struct hutch_device_rule *rules, size_t n, struct bpf_insn **out)
{
	/* a preamble of 6, at most 8 per rule, the final verdict */
	struct bpf_insn *p = xcalloc(6 + 8 * n + 2, sizeof(*p));
	size_t k = 0;
	p[k++] = LDX_W(R_TYPE, R_CTX, offsetof(struct bpf_cgroup_dev_ctx, access_type));
	p[k++] = MOV32_REG(R_ACCESS, R_TYPE);
	p[k++] = RSH32_IMM(R_ACCESS, 16);
	p[k++] = AND32_IMM(R_TYPE, 0xffff);
	p[k++] = LDX_W(R_MAJOR, R_CTX, offsetof(struct bpf_cgroup_dev_ctx, major));
	p[k++] = LDX_W(R_MINOR, R_CTX, offsetof(struct bpf_cgroup_dev_ctx, minor));
	int verdict = 0; /* what no rule matches */
	for (size_t i = n; i-- > 0;) {
		const struct hutch_device_rule *r = &rules[i];
		if (matches_all(r)) {
			verdict = r->allow;
			break;
		}
		int access = access_bits(r->access);
		/* the tests of the rule, each a jump past the rest of it */
		int len = (r->type != 'a') + (access != ALL_ACCESS ? 3 : 0) + (r->major >= 0) +
			  (r->minor >= 0) + 2;
		int at = 0;
		if (r->type != 'a') {
			int t = r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
			p[k++] = JNE32_IMM(R_TYPE, t, len - ++at);
		}
		if (access != ALL_ACCESS) {
			/* an allow rule matches a request that asks for nothing it lacks,
			 * a deny rule one that asks for anything it names */
			p[k++] = MOV32_REG(R_TMP, R_ACCESS);
			p[k++] = AND32_IMM(R_TMP, r->allow ? ~access & ALL_ACCESS : access);
			at += 2;
			p[k++] = r->allow ? JNE32_IMM(R_TMP, 0, len - ++at)
					  : JEQ32_IMM(R_TMP, 0, len - ++at);
		}
		if (r->major >= 0)
			p[k++] = JNE32_IMM(R_MAJOR, (int32_t)(uint32_t)r->major, len - ++at);
		if (r->minor >= 0)
			p[k++] = JNE32_IMM(R_MINOR, (int32_t)(uint32_t)r->minor, len - ++at);
		p[k++] = MOV64_IMM(0, r->allow);
		p[k++] = EXIT_INSN();
	}
	p[k++] = MOV64_IMM(0, verdict);
	p[k++] = EXIT_INSN();
	*out = p;
	return k;
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
	if (rt->quiet)
		return;
	_cleanup_free_ char *marker = xasprintf("%s/device-cgroup-note-given", rt->run_root);
	int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST)
		return;
	if (fd >= 0)
		close(fd);
	fprintf(stderr,
		"hutch: note: no device cgroup for containers here (%s): instead their mounts "
		"are nodev and they have no CAP_MKNOD, so they can open no device nodes but "
		"their own /dev/null, zero, full, random, urandom, tty and ptys (and "
		"--device ones). (Said once.)\n",
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

int devices_attach(const struct hutch_runtime *rt, const struct hutch_spec *spec,
		   const struct cgroup *cg, struct hutch_err **err)
{
	if (devices_allow_all(spec->resources.devices, spec->resources.n_devices))
		return 0;
	/* In a user namespace of an unprivileged user, the kernel wants
	 * CAP_MKNOD in the initial one for mknod of a device, and opens no node
	 * on a filesystem mounted in the namespace (the overlay, tmpfs): the
	 * container can open only nodes its user could open on the host anyway,
	 * through binds of the host's. (Nor may that user load the program.) */
	if (rt->rootless)
		return check_fallback(spec, "an unprivileged user cannot attach one", err);
	if (cg->dirfd < 0) {
		const char *why = "no cgroup v2 hierarchy is mounted";
		if (check_fallback(spec, why, err) < 0)
			return -1;
		say_fallback(rt, why);
		return 1;
	}
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
