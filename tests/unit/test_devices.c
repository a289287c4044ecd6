/* runtime/devices.c: the device cgroup program generated from a rule list.
 * Each program is run through a small interpreter of the instructions the
 * generator emits, on every request of a domain, and its answers compared
 * with the rules' (known cases, then random rule lists against the direct
 * evaluation); the kernel's verifier loads them (as root; EPERM otherwise).
 * And --device's parser and the validation of rules and nodes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime/runtime_internal.h"

static const char valid_id[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/* Run prog on one request; fails the test on an instruction the generator
 * should never emit, a jump backwards or out of the program, a read outside
 * the context, or falling off the end. */
static int run_prog(const struct bpf_insn *prog, size_t n, char type, uint32_t major,
		    uint32_t minor, int access)
{
	struct bpf_cgroup_dev_ctx ctx = {
	    .access_type =
		(uint32_t)(access << 16) | (type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR),
	    .major = major,
	    .minor = minor};
	uint64_t r[11] = {0};
	bool r1_is_ctx = true;
	for (size_t pc = 0; pc < n; pc++) {
		const struct bpf_insn *i = &prog[pc];
		uint64_t imm64 = (uint64_t)(int64_t)i->imm; /* sign-extended, as the kernel */
		uint64_t *dst = &r[i->dst_reg], src = r[i->src_reg];
		assert_true(i->dst_reg <= 10 && i->src_reg <= 10);
		switch (i->code) {
		case BPF_LDX | BPF_MEM | BPF_W:
			assert_true(i->src_reg == 1 && r1_is_ctx);
			assert_true(i->off >= 0 && i->off + 4 <= (int)sizeof(ctx) &&
				    i->off % 4 == 0);
			*dst = *(uint32_t *)((char *)&ctx + i->off);
			break;
		case BPF_LD | BPF_IMM | BPF_DW:
			assert_true(pc + 1 < n && prog[pc + 1].code == 0);
			*dst = (uint32_t)i->imm | (uint64_t)(uint32_t)prog[pc + 1].imm << 32;
			pc++;
			break;
		case BPF_ALU | BPF_MOV | BPF_X:
			*dst = (uint32_t)src;
			break;
		case BPF_ALU | BPF_AND | BPF_K:
			*dst = (uint32_t)*dst & (uint32_t)i->imm;
			break;
		case BPF_ALU | BPF_RSH | BPF_K:
			*dst = (uint32_t)*dst >> i->imm;
			break;
		case BPF_ALU64 | BPF_MOV | BPF_K:
			*dst = imm64;
			break;
		case BPF_ALU64 | BPF_MOV | BPF_X:
			*dst = src;
			break;
		case BPF_ALU64 | BPF_AND | BPF_K:
			*dst &= imm64;
			break;
		case BPF_ALU64 | BPF_AND | BPF_X:
			*dst &= src;
			break;
		case BPF_ALU64 | BPF_OR | BPF_X:
			*dst |= src;
			break;
		case BPF_ALU64 | BPF_LSH | BPF_K:
			*dst <<= i->imm;
			break;
		case BPF_JMP32 | BPF_JNE | BPF_K:
		case BPF_JMP32 | BPF_JEQ | BPF_K:
		case BPF_JMP | BPF_JEQ | BPF_K:
		case BPF_JMP | BPF_JEQ | BPF_X:
		case BPF_JMP | BPF_JA: {
			assert_true(i->off >= 0 && pc + 1 + (size_t)i->off < n);
			bool eq = BPF_CLASS(i->code) == BPF_JMP32
				      ? (uint32_t)*dst == (uint32_t)i->imm
				  : BPF_SRC(i->code) == BPF_X ? *dst == src
							      : *dst == imm64;
			if (BPF_OP(i->code) == BPF_JA || eq == (BPF_OP(i->code) == BPF_JEQ))
				pc += (size_t)i->off;
			break;
		}
		case BPF_JMP | BPF_EXIT:
			assert_true(r[0] == 0 || r[0] == 1);
			return (int)r[0];
		default:
			fail_msg("unexpected instruction 0x%02x at %zu", i->code, pc);
		}
		if (i->dst_reg == 1)
			r1_is_ctx = false;
	}
	fail_msg("the program runs off its end");
	return -1;
}

static const char *const accesses[] = {"r", "w", "m", "rw", "rm", "wm", "rwm"};

static int access_bits(const char *a)
{
	return (strchr(a, 'r') ? BPF_DEVCG_ACC_READ : 0) |
	       (strchr(a, 'w') ? BPF_DEVCG_ACC_WRITE : 0) |
	       (strchr(a, 'm') ? BPF_DEVCG_ACC_MKNOD : 0);
}

static int decide(const struct hutch_device_rule *rules, size_t n, char type, uint32_t major,
		  uint32_t minor, const char *access)
{
	_cleanup_free_ struct bpf_insn *prog = NULL;
	size_t len = devices_program(rules, n, &prog);
	int got = run_prog(prog, len, type, major, minor, access_bits(access));
	/* the program and the direct evaluation agree */
	assert_int_equal(got, devices_allowed(rules, n, type, major, minor, access));
	return got;
}

static void test_default_rules(void **state)
{
	struct hutch_spec *s = hutch_spec_new();
	const struct hutch_device_rule *r = s->resources.devices;
	size_t n = s->resources.n_devices;
	static const struct {
		char type;
		uint32_t major, minor;
		const char *access;
		int allowed;
	} cases[] = {
	    /* the harmless ones, for reading and writing */
	    {'c', 1, 3, "rw", 1},
	    {'c', 1, 5, "r", 1},
	    {'c', 1, 7, "w", 1},
	    {'c', 1, 8, "rw", 1},
	    {'c', 1, 9, "rw", 1},
	    {'c', 5, 0, "rw", 1},
	    {'c', 5, 1, "rw", 1},
	    {'c', 5, 2, "rw", 1},
	    {'c', 136, 0, "rw", 1},
	    {'c', 136, 4095, "r", 1},
	    /* the host's disks, kmsg, mem, kvm, tty1, fuse, loop-control: no */
	    {'b', 7, 0, "r", 0},
	    {'b', 7, 0, "w", 0},
	    {'b', 8, 0, "rw", 0},
	    {'c', 1, 11, "w", 0},
	    {'c', 1, 1, "r", 0},
	    {'c', 10, 232, "rw", 0},
	    {'c', 4, 1, "rw", 0},
	    {'c', 10, 229, "rw", 0},
	    {'c', 10, 237, "rw", 0},
	    {'c', 5, 3, "rw", 0},
	    {'c', 137, 0, "rw", 0},
	    {'b', 1, 3, "rw", 0},
	    /* mknod of anything, since making a node opens nothing */
	    {'b', 7, 0, "m", 1},
	    {'c', 1, 11, "m", 1},
	    {'b', 259, 1, "m", 1},
	    /* but only mknod */
	    {'b', 7, 0, "rm", 0},
	    {'c', 1, 11, "wm", 0},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		assert_int_equal(
		    decide(r, n, cases[i].type, cases[i].major, cases[i].minor, cases[i].access),
		    cases[i].allowed);
	/* small: a preamble, a few instructions per rule */
	_cleanup_free_ struct bpf_insn *prog = NULL;
	assert_true(devices_program(r, n, &prog) <= 50);
	assert_false(devices_allow_all(r, n));
	hutch_spec_free(s);
}

static void test_later_rules_win(void **state)
{
	const struct hutch_device_rule rules[] = {
	    {true, 'a', -1, -1, "rwm"},
	    {false, 'c', 1, 3, "w"},
	    {true, 'c', 1, -1, "w"},
	    {false, 'b', -1, 0, "rwm"},
	};
	/* c 1:3 w denied by rule 2, then allowed again for all of major 1 by rule 3 */
	assert_int_equal(decide(rules, 3, 'c', 1, 3, "w"), 1);
	assert_int_equal(decide(rules, 2, 'c', 1, 3, "w"), 0);
	/* a deny rule refuses a request asking for any access it names */
	assert_int_equal(decide(rules, 2, 'c', 1, 3, "rw"), 0);
	assert_int_equal(decide(rules, 2, 'c', 1, 3, "r"), 1);
	/* an allow rule only one asking for nothing more than it has */
	assert_int_equal(decide(rules + 1, 2, 'c', 1, 3, "rw"), 0);
	assert_int_equal(decide(rules + 1, 2, 'c', 1, 4, "w"), 1);
	/* wildcards: minor 0 of any block major */
	assert_int_equal(decide(rules, 4, 'b', 7, 0, "r"), 0);
	assert_int_equal(decide(rules, 4, 'b', 7, 1, "r"), 1);
	/* everything allowed, nothing denied after it: no program needed */
	assert_true(devices_allow_all(rules, 1));
	assert_false(devices_allow_all(rules, 2));
	const struct hutch_device_rule reopened[] = {
	    {false, 'a', -1, -1, "rwm"}, {true, 'a', -1, -1, "rwm"}, {true, 'c', 1, 3, "r"}};
	assert_true(devices_allow_all(reopened, 3));
	assert_false(devices_allow_all(reopened, 1));
	assert_false(devices_allow_all(NULL, 0));
	/* no rules at all: nothing allowed */
	assert_int_equal(decide(NULL, 0, 'c', 1, 3, "r"), 0);
}

static void test_largest_majors_and_minors(void **state)
{
	/* the kernel's device numbers: majors of 12 bits, minors of 20 (keys
	 * above 31 bits take 64-bit immediates) */
	const struct hutch_device_rule rules[] = {
	    {true, 'c', 4095, 1048575, "r"},
	    {true, 'b', -1, 1048575, "r"},
	    {true, 'c', 4096, 3, "rw"},
	    {true, 'c', 3, 1048576, "rw"},
	};
	assert_int_equal(decide(rules, 1, 'c', 4095, 1048575, "r"), 1);
	assert_int_equal(decide(rules, 1, 'c', 4095, 1048574, "r"), 0);
	assert_int_equal(decide(rules, 1, 'c', 4094, 1048575, "r"), 0);
	assert_int_equal(decide(rules, 1, 'b', 4095, 1048575, "r"), 0);
	assert_int_equal(decide(rules, 2, 'b', 17, 1048575, "r"), 1);
	assert_int_equal(decide(rules, 2, 'b', 17, 1048574, "r"), 0);
	/* numbers no device has match nothing, and are left out */
	_cleanup_free_ struct bpf_insn *p2 = NULL, *p4 = NULL;
	assert_int_equal(devices_program(rules, 4, &p4), devices_program(rules, 2, &p2));
	assert_int_equal(decide(rules, 4, 'c', 0, 3, "r"), 0);
	assert_int_equal(decide(rules, 4, 'c', 3, 0, "r"), 0);
}

static void random_rule(struct hutch_device_rule *r, unsigned *seed)
{
	static const int64_t values[] = {-1, 0, 1, 3, 7, 4095, 1048575, 131072};
	r->allow = rand_r(seed) % 2;
	r->type = "abc"[rand_r(seed) % 3];
	r->major = values[rand_r(seed) % ARRAY_SIZE(values)];
	r->minor = values[rand_r(seed) % ARRAY_SIZE(values)];
	/* the full "rwm" now and then, so that wildcards cut the list */
	const char *a = rand_r(seed) % 4 ? accesses[rand_r(seed) % ARRAY_SIZE(accesses)] : "rwm";
	snprintf(r->access, sizeof(r->access), "%s", a);
}

/* The kernel's verifier takes the program (root; others may not load it). */
static void assert_loads(const struct hutch_device_rule *rules, size_t n)
{
	_cleanup_free_ struct bpf_insn *prog = NULL;
	size_t len = devices_program(rules, n, &prog);
	union bpf_attr attr = {0};
	attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	attr.expected_attach_type = BPF_CGROUP_DEVICE;
	attr.insns = (uint64_t)(uintptr_t)prog;
	attr.insn_cnt = (uint32_t)len;
	attr.license = (uint64_t)(uintptr_t) "GPL";
	int fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	if (geteuid() != 0) {
		assert_int_equal(fd, -1);
		assert_int_equal(errno, EPERM);
		return;
	}
	if (fd >= 0) {
		close(fd);
		return;
	}
	/* again, for the verifier's reasons */
	int e = errno;
	static char log[1 << 16];
	attr.log_buf = (uint64_t)(uintptr_t)log;
	attr.log_size = sizeof(log);
	attr.log_level = 1;
	fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	fail_msg("the kernel refused the program (%s): %s", strerror(e), log);
}

static void test_random_rule_lists(void **state)
{
	unsigned seed = 20261207;
	for (int round = 0; round < 300; round++) {
		struct hutch_device_rule rules[12];
		size_t n = (size_t)(rand_r(&seed) % 13);
		for (size_t i = 0; i < n; i++)
			random_rule(&rules[i], &seed);
		_cleanup_free_ struct bpf_insn *prog = NULL;
		size_t len = devices_program(rules, n, &prog);
		static const uint32_t majors[] = {0, 1, 2, 3, 7, 8, 4095};
		static const uint32_t minors[] = {0, 1, 2, 3, 7, 8, 4095, 131072, 1048575};
		for (const char *t = "bc"; *t; t++)
			for (size_t ma = 0; ma < ARRAY_SIZE(majors); ma++)
				for (size_t mi = 0; mi < ARRAY_SIZE(minors); mi++)
					for (size_t a = 0; a < ARRAY_SIZE(accesses); a++)
						assert_int_equal(
						    run_prog(prog, len, *t, majors[ma], minors[mi],
							     access_bits(accesses[a])),
						    devices_allowed(rules, n, *t, majors[ma],
								    minors[mi], accesses[a]));
		assert_loads(rules, n);
	}
}

static void test_default_program_loads(void **state)
{
	struct hutch_spec *s = hutch_spec_new();
	assert_loads(s->resources.devices, s->resources.n_devices);
	hutch_spec_free(s);
}

static struct hutch_spec *valid_spec(void)
{
	struct hutch_spec *s = hutch_spec_new();
	s->id = xstrdup(valid_id);
	s->hostname = xstrdup("box");
	s->process.args = xcalloc(2, sizeof(char *));
	s->process.args[0] = xstrdup("/bin/true");
	s->process.n_args = 1;
	s->root.layers = xcalloc(2, sizeof(char *));
	s->root.layers[0] = xstrdup("/tmp");
	s->root.n_layers = 1;
	return s;
}

static const struct hutch_device_rule *last_rule(const struct hutch_spec *s)
{
	return &s->resources.devices[s->resources.n_devices - 1];
}

static void test_add_device(void **state)
{
	struct stat st;
	assert_int_equal(stat("/dev/null", &st), 0);
	struct hutch_spec *s = valid_spec();
	size_t rules = s->resources.n_devices;
	struct hutch_err *err = NULL;

	assert_int_equal(hutch_spec_add_device(s, "/dev/null", &err), 0);
	assert_int_equal(s->n_devices, 1);
	assert_string_equal(s->devices[0].path, "/dev/null");
	assert_string_equal(s->devices[0].host_path, "/dev/null");
	assert_int_equal(s->devices[0].type, 'c');
	assert_int_equal(s->devices[0].major, 1);
	assert_int_equal(s->devices[0].minor, 3);
	assert_int_equal(s->devices[0].file_mode, st.st_mode & 07777);
	assert_int_equal(s->resources.n_devices, rules + 1);
	assert_true(last_rule(s)->allow);
	assert_string_equal(last_rule(s)->access, "rwm");

	/* HOST:PERMS, HOST:CONTAINER, HOST:CONTAINER:PERMS */
	assert_int_equal(hutch_spec_add_device(s, "/dev/zero:r", &err), 0);
	assert_string_equal(s->devices[1].path, "/dev/zero");
	assert_string_equal(last_rule(s)->access, "r");
	assert_int_equal(last_rule(s)->minor, 5);
	assert_int_equal(hutch_spec_add_device(s, "/dev/zero:/dev/xz", &err), 0);
	assert_string_equal(s->devices[2].path, "/dev/xz");
	assert_string_equal(last_rule(s)->access, "rwm");
	assert_int_equal(hutch_spec_add_device(s, "/dev/null:/dev/xz:wm", &err), 0);
	/* the same path again replaces the node; the rules add up */
	assert_int_equal(s->n_devices, 3);
	assert_int_equal(s->devices[2].minor, 3);
	assert_string_equal(last_rule(s)->access, "wm");
	assert_int_equal(hutch_spec_validate(s, &err), 0);
	assert_null(err);

	static const struct {
		const char *arg, *says;
	} bad[] = {
	    {"/dev/null:/dev/x:rwx", "PERMS"},
	    {"/dev/null:/dev/x:rr", "PERMS"},
	    {"/dev/null:/dev/x:", "PERMS"},
	    {"/dev/null:/dev/x:r:w", "more than two"},
	    {"dev/null", "absolute"},
	    {"", "absolute"},
	    {"/dev/null:dev/x", "absolute"},
	    {"/dev/null:/", "not '/'"},
	    {"/dev/null:/dev/../etc/x", "'..'"},
	    {"/dev/null:/dev/..", "'..'"},
	    {"/nonexistent-device", "cannot be found"},
	    {"/etc/passwd", "not a device node"},
	    {"/dev", "not a device node"},
	    {"/dev/null:/x\n:r\x1b[31m", "/dev/null:/x\\x0a:r\\x1b[31m"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		size_t before = s->n_devices, before_rules = s->resources.n_devices;
		assert_int_equal(hutch_spec_add_device(s, bad[i].arg, &err), -1);
		assert_non_null(err);
		if (!strstr(err->msg, bad[i].says) || !strstr(err->msg, "invalid device '"))
			fail_msg("'%s': message '%s' lacks '%s'", bad[i].arg, err->msg,
				 bad[i].says);
		hutch_err_free(&err);
		assert_int_equal(s->n_devices, before);
		assert_int_equal(s->resources.n_devices, before_rules);
	}
	hutch_spec_free(s);
}

static void test_privileged_allows_all(void **state)
{
	struct hutch_spec *s = valid_spec();
	struct hutch_err *err = NULL;
	hutch_spec_set_privileged(s);
	assert_true(devices_allow_all(s->resources.devices, s->resources.n_devices));
	/* a --device after it changes nothing */
	assert_int_equal(hutch_spec_add_device(s, "/dev/null:r", &err), 0);
	assert_true(devices_allow_all(s->resources.devices, s->resources.n_devices));
	hutch_spec_free(s);
}

static void test_validate_devices(void **state)
{
	static const struct {
		struct hutch_device_rule rule;
		const char *says;
	} bad[] = {
	    {{true, 'x', 1, 3, "r"}, "type 'x'"},
	    {{true, 'c', -2, 3, "r"}, "major -2"},
	    {{true, 'c', 1, 4294967296LL, "r"}, "minor 4294967296"},
	    {{true, 'c', 1, 3, "rx"}, "access 'rx'"},
	    {{true, 'c', 1, 3, ""}, "access ''"},
	    {{false, 'b', 1, 3, "ww"}, "access 'ww'"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct hutch_spec *s = valid_spec();
		struct hutch_err *err = NULL;
		hutch_spec_add_device_rule(s, bad[i].rule.allow, bad[i].rule.type,
					   bad[i].rule.major, bad[i].rule.minor,
					   bad[i].rule.access);
		assert_int_equal(hutch_spec_validate(s, &err), -1);
		if (!strstr(err->msg, bad[i].says) || !strstr(err->msg, "device rule 13"))
			fail_msg("message '%s' lacks '%s'", err->msg, bad[i].says);
		hutch_err_free(&err);
		hutch_spec_free(s);
	}
	/* nodes filled in directly */
	struct hutch_spec *s = valid_spec();
	struct hutch_err *err = NULL;
	s->devices = xcalloc(1, sizeof(*s->devices));
	s->n_devices = 1;
	s->devices[0] = (struct hutch_device){.path = xstrdup("dev/x"), .type = 'c', .major = 1};
	assert_int_equal(hutch_spec_validate(s, &err), -1);
	assert_non_null(strstr(err->msg, "'dev/x'"));
	hutch_err_free(&err);
	free(s->devices[0].path);
	s->devices[0].path = xstrdup("/dev/x");
	s->devices[0].type = 'p';
	assert_int_equal(hutch_spec_validate(s, &err), -1);
	assert_non_null(strstr(err->msg, "/dev/x"));
	hutch_err_free(&err);
	s->devices[0].type = 'b';
	assert_int_equal(hutch_spec_validate(s, &err), 0);
	hutch_spec_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_rules),
	    cmocka_unit_test(test_later_rules_win),
	    cmocka_unit_test(test_largest_majors_and_minors),
	    cmocka_unit_test(test_random_rule_lists),
	    cmocka_unit_test(test_default_program_loads),
	    cmocka_unit_test(test_add_device),
	    cmocka_unit_test(test_privileged_allows_all),
	    cmocka_unit_test(test_validate_devices),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
