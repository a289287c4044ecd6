/* runtime/ocispec.c: an OCI bundle's config.json into the spec model; what
 * is refused is named by its path, what is unknown is a warning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/resource.h>

#include "common/util.h"
#include "runtime/runtime_internal.h"

static struct hutch_oci_config *parse_ok(const char *text)
{
	struct hutch_oci_config *c = NULL;
	struct hutch_err *err = NULL;
	int r = hutch_oci_config_parse(text, strlen(text), "/b", &c, &err);
	if (r < 0)
		fail_msg("refused: %s", err->msg);
	return c;
}

static void refused(const char *text, const char *needle)
{
	struct hutch_oci_config *c = NULL;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_oci_config_parse(text, strlen(text), "/b", &c, &err), -1);
	assert_null(c);
	assert_non_null(err);
	if (!strstr(err->msg, needle))
		fail_msg("'%s' does not name '%s'", err->msg, needle);
	hutch_err_free(&err);
}

#define HEAD "{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"}, "
#define PROC "\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\"}"

static void every_section_is_read(void **state)
{
	struct hutch_oci_config *c = parse_ok(
	    HEAD
	    "\"hostname\": \"h\", \"domainname\": \"d\","
	    "\"process\": {\"terminal\": true, \"consoleSize\": {\"height\": 30, \"width\": 100},"
	    " \"user\": {\"uid\": 1000, \"gid\": 100, \"umask\": 18, \"additionalGids\": [10, 11]},"
	    " \"args\": [\"sh\", \"-c\", \"x\"], \"env\": [\"A=1\"], \"cwd\": \"/w\","
	    " \"capabilities\": {\"bounding\": [\"CAP_KILL\"], \"effective\": [\"CAP_KILL\"],"
	    "  \"permitted\": [\"CAP_KILL\", \"CAP_CHOWN\"]},"
	    " \"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"soft\": 10, \"hard\": 20}],"
	    " \"noNewPrivileges\": true, \"oomScoreAdj\": -5},"
	    "\"mounts\": [{\"destination\": \"/data\", \"source\": \"d\", \"options\": "
	    "[\"rbind\"]},"
	    " {\"destination\": \"/sys/fs/cgroup\", \"type\": \"cgroup\"}],"
	    "\"annotations\": {\"k\": \"v\"},"
	    "\"hooks\": {\"poststop\": [{\"path\": \"/bin/true\", \"timeout\": 3}]},"
	    "\"linux\": {\"namespaces\": [{\"type\": \"mount\"}, {\"type\": \"network\", \"path\": "
	    "\"/run/netns/x\"}],"
	    " \"resources\": {\"memory\": {\"limit\": 67108864, \"swap\": -1}, \"pids\": "
	    "{\"limit\": "
	    "9}, \"cpu\": {\"quota\": 50000, \"period\": 100000},"
	    "  \"devices\": [{\"allow\": false, \"access\": \"rwm\"}]},"
	    " \"sysctl\": {\"net.ipv4.ip_forward\": \"1\"}, \"maskedPaths\": [\"/proc/kcore\"],"
	    " \"readonlyPaths\": [\"/proc/sys\"], \"cgroupsPath\": \"/x/y\"}}");
	struct hutch_spec *s = c->spec;
	assert_true(s->oci);
	assert_string_equal(s->root.path, "/b/rootfs");
	assert_string_equal(s->hostname, "h");
	assert_string_equal(c->domainname, "d");
	assert_true(s->process.terminal);
	assert_int_equal(c->console_height, 30);
	assert_string_equal(s->process.user, "1000:100");
	assert_int_equal(c->umask, 18);
	assert_int_equal(c->n_additional_gids, 2);
	assert_int_equal(c->additional_gids[1], 11);
	assert_int_equal(s->process.n_args, 3);
	assert_string_equal(s->process.cwd, "/w");
	assert_int_equal(s->process.caps.bounding, 1ULL << CAP_KILL);
	assert_int_equal(s->process.caps.permitted, (1ULL << CAP_KILL) | (1ULL << CAP_CHOWN));
	assert_int_equal(s->process.caps.ambient, 0);
	assert_int_equal(s->process.n_rlimits, 1);
	assert_int_equal(s->process.rlimits[0].resource, RLIMIT_NOFILE);
	assert_true(s->process.rlimits[0].explicit_);
	assert_true(s->process.no_new_privileges);
	assert_int_equal(c->oom_score_adj, -5);
	assert_int_equal(s->n_mounts, 2);
	assert_string_equal(s->mounts[0].type, "bind");
	assert_string_equal(s->mounts[0].source, "/b/d");
	assert_string_equal(s->mounts[1].type, "cgroup2");
	assert_string_equal(c->annotations[0].key, "k");
	assert_int_equal(c->n_hooks[HUTCH_HOOK_POSTSTOP], 1);
	assert_int_equal(c->hooks[HUTCH_HOOK_POSTSTOP][0].timeout_s, 3);
	assert_non_null(hutch_spec_namespace(s, HUTCH_NS_MOUNT));
	assert_string_equal(hutch_spec_namespace(s, HUTCH_NS_NETWORK)->path, "/run/netns/x");
	assert_null(hutch_spec_namespace(s, HUTCH_NS_PID));
	assert_int_equal(s->resources.memory_max, 67108864);
	assert_int_equal(s->resources.memory_swap_max, -1);
	assert_int_equal(s->resources.pids_max, 9);
	assert_int_equal(s->resources.cpu_quota_us, 50000);
	assert_int_equal(s->resources.n_devices, 1);
	assert_false(s->resources.devices[0].allow);
	assert_string_equal(c->sysctl[0].key, "net.ipv4.ip_forward");
	assert_string_equal(c->cgroups_path, "/x/y");
	assert_int_equal(c->n_warnings, 0);
	hutch_oci_config_free(c);
}

static void unknown_is_a_warning_known_unsupported_refused(void **state)
{
	struct hutch_oci_config *c =
	    parse_ok(HEAD PROC ", \"later\": 1, \"linux\": {\"alsoLater\": {}}}");
	assert_int_equal(c->n_warnings, 2);
	assert_non_null(strstr(c->warnings[0], "later"));
	assert_non_null(strstr(c->warnings[1], "linux.alsoLater"));
	hutch_oci_config_free(c);
	refused(HEAD PROC ", \"linux\": {\"intelRdt\": {}}}", "linux.intelRdt is not supported");
	refused(HEAD PROC ", \"vm\": {}}", "vm is not supported");
	refused(HEAD PROC ", \"linux\": {\"resources\": {\"blockIO\": {\"leafWeight\": 10}}}}",
		"linux.resources.blockIO.leafWeight: cgroup v2 has no leaf weight");
	refused(HEAD PROC ", \"linux\": {\"resources\": {\"cpu\": {\"cpus\": \"0-\"}}}}",
		"linux.resources.cpu.cpus: '0-' is not a list");
	/* shares are a relative weight: cgroup v2's cpu.weight by runc's formula */
	c = parse_ok(HEAD PROC ", \"linux\": {\"resources\": {\"cpu\": {\"shares\": 1024}}}}");
	assert_int_equal(c->spec->resources.cpu_weight, 39);
	hutch_oci_config_free(c);
	c = parse_ok(HEAD PROC ", \"linux\": {\"resources\": {\"cpu\": {\"shares\": 262144}}}}");
	assert_int_equal(c->spec->resources.cpu_weight, 10000);
	hutch_oci_config_free(c);
	/* id-mapped mounts: both maps, kept with the mount (and its options) */
	c = parse_ok(HEAD PROC
		     ", \"mounts\": [{\"destination\": \"/x\", \"source\": \"/s\", "
		     "\"options\": [\"rbind\", \"ridmap\"], "
		     "\"uidMappings\": [{\"containerID\": 0, \"hostID\": 1000, \"size\": 2}], "
		     "\"gidMappings\": [{\"containerID\": 1, \"hostID\": 2000, \"size\": 3}]}]}");
	const struct hutch_mount *m = &c->spec->mounts[0];
	assert_int_equal(m->n_uid_map, 1);
	assert_int_equal(m->uid_map[0].host_id, 1000);
	assert_int_equal(m->uid_map[0].size, 2);
	assert_int_equal(m->n_gid_map, 1);
	assert_int_equal(m->gid_map[0].container_id, 1);
	assert_string_equal(m->options[1], "ridmap");
	hutch_oci_config_free(c);
	refused(HEAD PROC ", \"mounts\": [{\"destination\": \"/x\", \"uidMappings\": "
			  "[{\"containerID\": 0, \"hostID\": 1, \"size\": 1}]}]}",
		"mounts[0]: give uidMappings and gidMappings together");
	refused(HEAD PROC ", \"mounts\": [{\"destination\": \"/x\", \"uidMappings\": [{}]}]}",
		"mounts[0].uidMappings[0].containerID is required");
}

static void bad_values_named_by_path(void **state)
{
	refused("{\"root\": {\"path\": \"r\"}, " PROC "}", "ociVersion is required");
	refused("{\"ociVersion\": \"2.0\"}", "ociVersion '2.0'");
	refused(HEAD "\"process\": {\"args\": [\"sh\"]}}", "process.cwd is required");
	refused(HEAD "\"process\": {\"args\": [], \"cwd\": \"/\"}}", "process.args");
	refused(HEAD "\"process\": {\"args\": [\"sh\"], \"cwd\": \"rel\"}}", "process.cwd");
	refused(HEAD "\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"user\": {\"uid\": "
		     "4294967296}}}",
		"process.user.uid");
	refused(HEAD "\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"env\": [\"NOEQ\"]}}",
		"process.env[0]");
	refused(HEAD "\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"rlimits\": [{\"type\": "
		     "\"RLIMIT_BOGUS\", \"soft\": 1, \"hard\": 1}]}}",
		"unknown resource limit 'RLIMIT_BOGUS'");
	refused(HEAD PROC ", \"mounts\": [{\"destination\": \"/a/../../etc\"}]}",
		"mounts[0].destination");
	refused(HEAD PROC ", \"linux\": {\"namespaces\": [{\"type\": \"clock\"}]}}",
		"linux.namespaces[0].type: 'clock' is not a namespace hutch knows");
	refused(HEAD PROC ", \"linux\": {\"uidMappings\": [{\"containerID\": 0, \"hostID\": 1}]}}",
		"linux.uidMappings[0].size is required");
	refused(HEAD PROC ", \"linux\": {\"sysctl\": {\"../x\": \"1\"}}}", "not a sysctl name");
	refused(HEAD PROC ", \"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_NOPE\"}}}",
		"linux.seccomp.defaultAction");
	refused(HEAD PROC ", \"hooks\": {\"prestart\": [{\"path\": \"rel\"}]}}",
		"hooks.prestart[0].path");
	refused(HEAD PROC "} trailing", "after its JSON value");
	refused(HEAD PROC ", \"hostname\": 5}", "hostname: a string is expected, not a number");
}

/* linux.seccomp: actions with their data, flags, the listener, and what the
 * spec says must fail. */
static void seccomp_section(void **state)
{
#define SC HEAD PROC ", \"linux\": {\"seccomp\": "
	struct hutch_oci_config *c = parse_ok(
	    SC "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 38,"
	       " \"architectures\": [\"SCMP_ARCH_X86_64\", \"SCMP_ARCH_NATIVE\"],"
	       " \"flags\": [\"SECCOMP_FILTER_FLAG_LOG\", \"SECCOMP_FILTER_FLAG_SPEC_ALLOW\"],"
	       " \"listenerPath\": \"/run/a.sock\", \"listenerMetadata\": \"m\","
	       " \"syscalls\": [{\"names\": [\"getppid\"], \"action\": \"SCMP_ACT_NOTIFY\"},"
	       "  {\"names\": [\"ptrace\"], \"action\": \"SCMP_ACT_TRACE\", \"errnoRet\": 9000},"
	       "  {\"names\": [\"kill\"], \"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 1,"
	       "   \"value\": 24, \"valueTwo\": 8, \"op\": \"SCMP_CMP_MASKED_EQ\"}]}]}}}");
	const struct hutch_oci_seccomp *sc = c->seccomp;
	assert_int_equal(sc->default_action, SCMP_ACT_ERRNO(38));
	assert_int_equal(sc->n_arches, 2);
	assert_int_equal(sc->flags, SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW);
	assert_true(sc->notify);
	assert_string_equal(sc->listener_path, "/run/a.sock");
	assert_string_equal(sc->listener_metadata, "m");
	assert_int_equal(sc->syscalls[0].action, SCMP_ACT_NOTIFY);
	assert_int_equal(sc->syscalls[1].action, SCMP_ACT_TRACE(9000));
	assert_int_equal(sc->syscalls[2].action, SCMP_ACT_ERRNO(EPERM));
	assert_int_equal(sc->syscalls[2].args[0].op, SCMP_CMP_MASKED_EQ);
	assert_int_equal(sc->syscalls[2].args[0].value_two, 8);
	hutch_oci_config_free(c);
	/* listenerPath without NOTIFY: ignored, as the spec says */
	c = parse_ok(SC "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"listenerPath\": \"/x\"}}}");
	assert_false(c->seccomp->notify);
	hutch_oci_config_free(c);

	refused(SC "{\"defaultAction\": \"SCMP_ACT_KILL\", \"defaultErrnoRet\": 1}}}",
		"linux.seccomp.defaultAction: SCMP_ACT_KILL returns no errno");
	refused(SC "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"a\"],"
		   " \"action\": \"SCMP_ACT_LOG\", \"errnoRet\": 1}]}}}",
		"linux.seccomp.syscalls[0].action: SCMP_ACT_LOG returns no errno");
	refused(SC "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": 4096}}}",
		"errnoRet 4096 is not an errno");
	refused(SC "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"flags\": [\"SECCOMP_X\"]}}}",
		"linux.seccomp.flags: 'SECCOMP_X' is not a seccomp filter flag");
	refused(SC "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": [\"x86_64\"]}}}",
		"'x86_64' is not a seccomp architecture");
	refused(SC "{\"defaultAction\": \"SCMP_ACT_NOTIFY\", \"listenerPath\": \"/x\"}}}",
		"cannot be the default action");
	refused(SC "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"a\"],"
		   " \"action\": \"SCMP_ACT_NOTIFY\"}]}}}",
		"SCMP_ACT_NOTIFY needs listenerPath");
	refused(SC
		"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"listenerPath\": \"/x\", \"syscalls\": "
		"[{\"names\": [\"read\", \"sendmsg\"], \"action\": \"SCMP_ACT_NOTIFY\"}]}}}",
		"linux.seccomp.syscalls[0]: SCMP_ACT_NOTIFY cannot be used for sendmsg");
	refused(SC "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"listenerMetadata\": \"m\"}}}",
		"listenerMetadata is given without listenerPath");
	refused(SC "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"listenerPath\": \"\"}}}",
		"linux.seccomp.listenerPath is empty");
#undef SC
}

/* What the process is set before its exec, and the time namespace's offsets. */
static void process_attrs_and_time_offsets(void **state)
{
	struct hutch_oci_config *c = parse_ok(
	    HEAD
	    "\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"scheduler\": "
	    "{\"policy\": \"SCHED_DEADLINE\", \"runtime\": 10, \"deadline\": 20, \"flags\": "
	    "[\"SCHED_FLAG_RECLAIM\", \"SCHED_FLAG_DL_OVERRUN\"]}, \"ioPriority\": {\"class\": "
	    "\"IOPRIO_CLASS_BE\", \"priority\": 3}, \"execCPUAffinity\": {\"initial\": "
	    "\"1,3-5\", \"final\": \"1023\"}}, \"linux\": {\"namespaces\": [{\"type\": "
	    "\"time\"}], \"timeOffsets\": {\"boottime\": {\"secs\": -5, \"nanosecs\": 7}}, "
	    "\"personality\": {\"domain\": \"LINUX32\", \"flags\": [\"UNAME26\"]}, "
	    "\"memoryPolicy\": {\"mode\": \"MPOL_INTERLEAVE\", \"nodes\": \"0-1,64\", "
	    "\"flags\": [\"MPOL_F_STATIC_NODES\"]}}}");
	const struct hutch_oci_proc_attrs *a = &c->attrs;
	assert_true(a->has_sched);
	assert_int_equal(a->sched_policy, 6);
	assert_int_equal(a->sched_flags, 0x06);
	assert_int_equal(a->sched_runtime, 10);
	assert_int_equal(a->sched_deadline, 20);
	assert_true(a->has_ioprio);
	assert_int_equal(a->ioprio_class, 2);
	assert_int_equal(a->ioprio_level, 3);
	assert_true(a->has_cpus_initial && a->has_cpus_final);
	assert_int_equal(a->cpus_initial[0], 0x3a);
	assert_int_equal(a->cpus_final[15], 1ULL << 63);
	assert_int_equal(a->personality, 0x0008 | 0x0020000);
	assert_true(a->has_mempolicy);
	assert_int_equal(a->mempolicy_mode, 3);
	assert_int_equal(a->mempolicy_flags, 1 << 15);
	assert_int_equal(a->mempolicy_nodes[0], 3);
	assert_int_equal(a->mempolicy_nodes[1], 1);
	assert_true(c->has_time_offsets);
	assert_int_equal(c->boottime_secs, -5);
	assert_int_equal(c->boottime_nsecs, 7);
	assert_int_equal(hutch_spec_namespace(c->spec, HUTCH_NS_TIME)->type, HUTCH_NS_TIME);
	hutch_oci_config_free(c);

	uint64_t mask[HUTCH_OCI_MAX_CPUS / 64];
	assert_null(oci_parse_id_list("0", mask));
	assert_int_equal(mask[0], 1);
	static const char *const bad[] = {"",	",",   "1,",   "a",   "1-",
					  "-1", "3-1", "1024", "1 2", "0,,1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!oci_parse_id_list(bad[i], mask))
			fail_msg("'%s' was taken", bad[i]);
	refused(HEAD PROC ", \"linux\": {\"timeOffsets\": {\"boottime\": {\"secs\": 1}}}}",
		"linux.timeOffsets: they are for a new time namespace");
	refused(HEAD PROC ", \"linux\": {\"personality\": {\"domain\": \"LINUX\", \"flags\": "
			  "[\"X\"]}}}",
		"linux.personality.flags[0]: 'X' is not one of UNAME26");
	refused(HEAD "\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"scheduler\": "
		     "{\"policy\": \"SCHED_RR\", \"priority\": 100}}}",
		"process.scheduler.priority: 100 is out of range (0 to 99)");
	refused(HEAD PROC ", \"linux\": {\"memoryPolicy\": {\"mode\": \"MPOL_LOCAL\", "
			  "\"flags\": [\"MPOL_F_STATIC_NODES\"]}}}",
		"linux.memoryPolicy.flags: MPOL_DEFAULT and MPOL_LOCAL take none");
}

static void default_configs_parse(void **state)
{
	for (int rootless = 0; rootless < 2; rootless++) {
		_cleanup_free_ char *text = hutch_oci_default_config(rootless, 1000, 1000);
		struct hutch_oci_config *c = parse_ok(text);
		assert_int_equal(c->n_warnings, 0);
		assert_int_equal(c->spec->n_uid_map, rootless ? 1 : 0);
		assert_true(c->spec->root.readonly);
		oci_spec_set_id(c->spec, "x");
		struct hutch_err *err = NULL;
		if (hutch_spec_validate(c->spec, &err) < 0)
			fail_msg("%s", err->msg);
		hutch_oci_config_free(c);
	}
}

static void process_file_and_resources(void **state)
{
	const char *p = "{\"args\": [\"echo\", \"hi\"], \"cwd\": \"/tmp\", \"user\": {\"uid\": 5, "
			"\"gid\": 6}, \"terminal\": true}";
	struct hutch_process proc;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_oci_process_parse(p, strlen(p), &proc, &err), 0);
	assert_string_equal(proc.user, "5:6");
	assert_true(proc.terminal);
	hutch_process_clear(&proc);
	const char *r = "{\"memory\": {\"limit\": 1048576}, \"pids\": {\"limit\": 0}}";
	struct hutch_resources res;
	assert_int_equal(hutch_oci_resources_parse(r, strlen(r), &res, NULL, NULL, &err), 0);
	assert_int_equal(res.memory_max, 1048576);
	assert_int_equal(res.pids_max, 0);
	assert_int_equal(res.cpu_quota_us, -1);
	r = "{\"devices\": []}";
	assert_int_equal(hutch_oci_resources_parse(r, strlen(r), &res, NULL, NULL, &err), -1);
	hutch_err_free(&err);
}

/* linux.resources beyond memory, cpu quota and pids: the cgroup v2 files they
 * set, in order (unified's last, whatever their place in the file) */
static void resources_as_cgroup_files(void **state)
{
	struct hutch_oci_config *c = parse_ok(
	    HEAD PROC
	    ", \"linux\": {\"resources\": {\"unified\": {\"memory.high\": \"1M\", "
	    "\"io.prio.class\": \"\"}, \"blockIO\": {\"weight\": 500, \"weightDevice\": "
	    "[{\"major\": 8, \"minor\": 0, \"weight\": 10}], \"throttleReadBpsDevice\": "
	    "[{\"major\": 8, \"minor\": 16, \"rate\": 1048576}], "
	    "\"throttleWriteIOPSDevice\": [{\"major\": 8, \"minor\": 16, \"rate\": 0}]}, "
	    "\"hugepageLimits\": [{\"pageSize\": \"2MB\", \"limit\": 4194304}], "
	    "\"memory\": {\"reservation\": 1024, \"kernel\": 1, \"checkBeforeUpdate\": true}, "
	    "\"cpu\": {\"cpus\": \"0-1,3\", \"mems\": \"0\", \"idle\": 1, \"burst\": 500}, "
	    "\"rdma\": {\"mlx5_1\": {\"hcaHandles\": 3}}, \"network\": {\"classID\": 1}}}}");
	static const char *const want[][5] = {
	    {"linux.resources.blockIO.weight", "io.bfq.weight", "500", "io.weight", "4950"},
	    {"linux.resources.blockIO.weightDevice[0]", "io.bfq.weight", "8:0 10", "io.weight",
	     "8:0 1"},
	    {"linux.resources.blockIO.throttleReadBpsDevice[0]", "io.max", "8:16 rbps=1048576"},
	    {"linux.resources.blockIO.throttleWriteIOPSDevice[0]", "io.max", "8:16 wiops=max"},
	    {"linux.resources.hugepageLimits[0]", "hugetlb.2MB.rsvd.max", "4194304"},
	    {"linux.resources.hugepageLimits[0]", "hugetlb.2MB.max", "4194304"},
	    {"linux.resources.memory.reservation", "memory.low", "1024"},
	    {"linux.resources.cpu.cpus", "cpuset.cpus", "0-1,3"},
	    {"linux.resources.cpu.mems", "cpuset.mems", "0"},
	    {"linux.resources.cpu.idle", "cpu.idle", "1"},
	    {"linux.resources.cpu.burst", "cpu.max.burst", "500"},
	    {"linux.resources.rdma.mlx5_1", "rdma.max", "mlx5_1 hca_handle=3"},
	    {"linux.resources.unified.memory.high", "memory.high", "1M"},
	};
	const struct hutch_resources *r = &c->spec->resources;
	assert_int_equal(r->n_writes, ARRAY_SIZE(want));
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		assert_string_equal(r->writes[i].field, want[i][0]);
		assert_string_equal(r->writes[i].file, want[i][1]);
		assert_string_equal(r->writes[i].value, want[i][2]);
		if (want[i][3]) {
			assert_string_equal(r->writes[i].alt_file, want[i][3]);
			assert_string_equal(r->writes[i].alt_value, want[i][4]);
		} else
			assert_null(r->writes[i].alt_file);
		assert_int_equal(r->writes[i].optional, i == 4);
		assert_int_equal(r->writes[i].strict, i == ARRAY_SIZE(want) - 1);
	}
	assert_true(r->check_before_update);
	/* kernel memory and network classes: ignored, each with a warning */
	assert_int_equal(c->n_warnings, 2);
	assert_non_null(strstr(c->warnings[0], "linux.resources.memory.kernel"));
	assert_non_null(strstr(c->warnings[1], "linux.resources.network"));
	hutch_oci_config_free(c);

	refused(HEAD PROC
		", \"linux\": {\"resources\": {\"unified\": {\"../memory.max\": \"1\"}}}}",
		"linux.resources.unified: '../memory.max'");
	refused(HEAD PROC ", \"linux\": {\"resources\": {\"unified\": {\"memory\": \"1\"}}}}",
		"not CONTROLLER.NAME");
	refused(HEAD PROC ", \"linux\": {\"resources\": {\"unified\": {\"memory.max\": 1}}}}",
		"linux.resources.unified.memory.max: a string is expected");
	refused(HEAD PROC ", \"linux\": {\"resources\": {\"hugepageLimits\": [{\"pageSize\": "
			  "\"2mb\", \"limit\": 1}]}}}",
		"linux.resources.hugepageLimits[0].pageSize: '2mb' is not a hugepage size");
	refused(HEAD PROC ", \"linux\": {\"resources\": {\"hugepageLimits\": [{\"pageSize\": "
			  "\"2MB\"}]}}}",
		"linux.resources.hugepageLimits[0]: pageSize and limit are required");
	refused(HEAD PROC ", \"linux\": {\"resources\": {\"blockIO\": {\"weight\": 1001}}}}",
		"linux.resources.blockIO.weight: 1001 is out of range");
	refused(
	    HEAD PROC ", \"linux\": {\"resources\": {\"blockIO\": {\"throttleReadBpsDevice\": "
		      "[{\"major\": 8, \"rate\": 1}]}}}}",
	    "linux.resources.blockIO.throttleReadBpsDevice[0]: major, minor and rate are required");
	refused(HEAD PROC ", \"linux\": {\"resources\": {\"cpu\": {\"idle\": 2}}}}",
		"linux.resources.cpu.idle: 2 is out of range");
	refused(HEAD PROC ", \"linux\": {\"resources\": {\"cpu\": {\"realtimePeriod\": 1}}}}",
		"linux.resources.cpu.realtimePeriod: cgroup v2 has no realtime CPU budget");
	refused(HEAD PROC ", \"linux\": {\"resources\": {\"memory\": {\"swappiness\": 0}}}}",
		"linux.resources.memory.swappiness: cgroup v2 has no swappiness");
	refused(HEAD PROC
		", \"linux\": {\"resources\": {\"memory\": {\"disableOOMKiller\": true}}}}",
		"linux.resources.memory.disableOOMKiller");
	refused(HEAD PROC ", \"linux\": {\"resources\": {\"rdma\": {\"a b\": {}}}}}",
		"linux.resources.rdma: 'a b' is not an RDMA device name");
	/* asking for nothing v1-only is fine */
	c = parse_ok(HEAD PROC ", \"linux\": {\"resources\": {\"memory\": {\"disableOOMKiller\": "
			       "false, \"useHierarchy\": true}, \"cpu\": {\"realtimeRuntime\": 0}, "
			       "\"blockIO\": {\"leafWeight\": 0}}}}");
	assert_int_equal(c->spec->resources.n_writes, 0);
	hutch_oci_config_free(c);

	/* update: the same writes; memory without a limit leaves memory.max */
	const char *u =
	    "{\"memory\": {\"reservation\": 5, \"kernel\": 0}, \"unified\": {\"pids.max\": "
	    "\"7\"}}";
	struct hutch_resources res;
	struct hutch_err *err = NULL;
	char **warnings = NULL;
	size_t n_warnings = 0;
	assert_int_equal(
	    hutch_oci_resources_parse(u, strlen(u), &res, &warnings, &n_warnings, &err), 0);
	assert_int_equal(n_warnings, 1);
	assert_non_null(strstr(warnings[0], "linux.resources.memory.kernel"));
	free(warnings[0]);
	free(warnings);
	assert_int_equal(res.memory_max, -1);
	assert_int_equal(res.n_writes, 2);
	assert_string_equal(res.writes[0].field, "linux.resources.memory.reservation");
	assert_string_equal(res.writes[1].file, "pids.max");
	hutch_resources_clear(&res);
}

/* runc's `spec` lists ambient capabilities without an inheritable set: left out
 * with a warning each, as runc and crun do, not refused */
static void ambient_caps_not_inheritable_left_out(void **state)
{
	struct hutch_oci_config *c = parse_ok(
	    HEAD "\"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"capabilities\": {"
		 "\"bounding\": [\"CAP_KILL\", \"CAP_CHOWN\"], \"permitted\": [\"CAP_KILL\", "
		 "\"CAP_CHOWN\"], \"inheritable\": [\"CAP_CHOWN\"], \"ambient\": [\"CAP_KILL\", "
		 "\"CAP_CHOWN\"]}}}");
	assert_int_equal(c->spec->process.caps.ambient, 1ULL << CAP_CHOWN);
	assert_int_equal(c->n_warnings, 1);
	assert_non_null(strstr(c->warnings[0], "process.capabilities.ambient: CAP_KILL"));
	hutch_oci_config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_section_is_read),
	    cmocka_unit_test(unknown_is_a_warning_known_unsupported_refused),
	    cmocka_unit_test(bad_values_named_by_path),
	    cmocka_unit_test(seccomp_section),
	    cmocka_unit_test(process_attrs_and_time_offsets),
	    cmocka_unit_test(default_configs_parse),
	    cmocka_unit_test(process_file_and_resources),
	    cmocka_unit_test(ambient_caps_not_inheritable_left_out),
	    cmocka_unit_test(resources_as_cgroup_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
