/* runtime/mounts.c: OCI mount options -> mount_setattr()/fsmount() attributes and
 * fsconfig() data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "common/util.h"
#include "runtime/runtime_internal.h"

/* A mount from a type and a NULL-terminated option list (not owned). */
#define MNT(type_, dest_, ...)                                                                     \
	((struct hutch_mount){.type = (char *)(type_),                                             \
			      .source = (char *)"src",                                             \
			      .destination = (char *)(dest_),                                      \
			      .options = (char *[]){__VA_ARGS__, NULL},                            \
			      .n_options = ARRAY_SIZE(((const char *[]){__VA_ARGS__}))})

static struct mount_opts parse_ok(struct hutch_mount m)
{
	struct mount_opts o;
	memset(&o, 0xaa, sizeof(o));
	struct hutch_err *err = NULL;
	if (mount_opts_parse(&m, &o, &err) != 0)
		fail_msg("mount_opts_parse failed: %s", err ? err->msg : "(no message)");
	assert_null(err);
	return o;
}

/* The kernel's rule for mount_setattr()/fsmount(): atime values are an enum, so
 * setting one requires clearing the whole MOUNT_ATTR__ATIME field. */
static void check_atime_rule(const struct mount_opts *o)
{
	if (o->attr_clr & MOUNT_ATTR__ATIME)
		assert_int_equal(o->attr_clr & MOUNT_ATTR__ATIME, MOUNT_ATTR__ATIME);
	else
		assert_int_equal(o->attr_set & MOUNT_ATTR__ATIME, 0);
	/* nothing is both set and cleared (outside the atime field) */
	assert_int_equal(o->attr_set & o->attr_clr & ~(uint64_t)MOUNT_ATTR__ATIME, 0);
}

static void test_flags(void **state)
{
	struct mount_opts o = parse_ok(MNT("tmpfs", "/t", "nosuid", "nodev", "noexec"));
	assert_int_equal(o.attr_set, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	assert_int_equal(o.attr_clr, 0);
	assert_false(o.bind);
	assert_false(o.recursive);
	assert_false(o.readonly);
	assert_null(o.data);
	check_atime_rule(&o);
	mount_opts_free(&o);

	o = parse_ok(MNT("tmpfs", "/t", "ro"));
	assert_int_equal(o.attr_set, MOUNT_ATTR_RDONLY);
	assert_int_equal(o.attr_clr, 0);
	assert_true(o.readonly);
	mount_opts_free(&o);

	o = parse_ok(MNT("tmpfs", "/t", "rw"));
	assert_int_equal(o.attr_set, 0);
	assert_int_equal(o.attr_clr, MOUNT_ATTR_RDONLY);
	assert_false(o.readonly);
	mount_opts_free(&o);
}

/* Later options override earlier ones. */
static void test_toggling(void **state)
{
	struct mount_opts o = parse_ok(MNT("bind", "/d", "ro", "rw"));
	assert_int_equal(o.attr_set & MOUNT_ATTR_RDONLY, 0);
	assert_int_equal(o.attr_clr & MOUNT_ATTR_RDONLY, MOUNT_ATTR_RDONLY);
	assert_false(o.readonly);
	mount_opts_free(&o);

	o = parse_ok(MNT("bind", "/d", "rw", "ro"));
	assert_int_equal(o.attr_set & MOUNT_ATTR_RDONLY, MOUNT_ATTR_RDONLY);
	assert_int_equal(o.attr_clr & MOUNT_ATTR_RDONLY, 0);
	assert_true(o.readonly);
	mount_opts_free(&o);

	o = parse_ok(MNT("bind", "/d", "nosuid", "suid", "nodev", "dev", "noexec", "exec"));
	assert_int_equal(o.attr_set, 0);
	assert_int_equal(o.attr_clr, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	mount_opts_free(&o);

	o = parse_ok(MNT("bind", "/d", "suid", "nosuid", "exec", "noexec", "dev", "nodev"));
	assert_int_equal(o.attr_set, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	assert_int_equal(o.attr_clr, 0);
	check_atime_rule(&o);
	mount_opts_free(&o);

	/* ro does not disturb the other flags */
	o = parse_ok(MNT("bind", "/d", "nosuid", "ro", "nodev"));
	assert_int_equal(o.attr_set, MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV);
	assert_true(o.readonly);
	mount_opts_free(&o);
}

static void test_atime(void **state)
{
	struct mount_opts o = parse_ok(MNT("tmpfs", "/t", "noatime"));
	assert_int_equal(o.attr_set, MOUNT_ATTR_NOATIME);
	assert_int_equal(o.attr_clr, MOUNT_ATTR__ATIME);
	check_atime_rule(&o);
	mount_opts_free(&o);

	o = parse_ok(MNT("tmpfs", "/t", "strictatime"));
	assert_int_equal(o.attr_set, MOUNT_ATTR_STRICTATIME);
	assert_int_equal(o.attr_clr, MOUNT_ATTR__ATIME);
	mount_opts_free(&o);

	o = parse_ok(MNT("tmpfs", "/t", "relatime"));
	assert_int_equal(o.attr_set, MOUNT_ATTR_RELATIME);
	assert_int_equal(o.attr_clr, MOUNT_ATTR__ATIME);
	mount_opts_free(&o);

	/* the last atime option wins; the enum is never a mix */
	o = parse_ok(MNT("tmpfs", "/t", "strictatime", "noatime"));
	assert_int_equal(o.attr_set & MOUNT_ATTR__ATIME, MOUNT_ATTR_NOATIME);
	check_atime_rule(&o);
	mount_opts_free(&o);
	o = parse_ok(MNT("tmpfs", "/t", "noatime", "relatime"));
	assert_int_equal(o.attr_set & MOUNT_ATTR__ATIME, MOUNT_ATTR_RELATIME);
	check_atime_rule(&o);
	mount_opts_free(&o);
	o = parse_ok(MNT("tmpfs", "/t", "noatime", "nosuid", "strictatime", "ro"));
	assert_int_equal(o.attr_set,
			 MOUNT_ATTR_STRICTATIME | MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY);
	check_atime_rule(&o);
	mount_opts_free(&o);

	/* nodiratime is a flag of its own, outside the atime field */
	o = parse_ok(MNT("tmpfs", "/t", "nodiratime"));
	assert_int_equal(o.attr_set, MOUNT_ATTR_NODIRATIME);
	assert_int_equal(o.attr_clr, 0);
	check_atime_rule(&o);
	mount_opts_free(&o);
}

static void test_bind(void **state)
{
	/* type bind: recursive unless said otherwise (Docker's -v) */
	struct mount_opts o = parse_ok(MNT("bind", "/d", "ro"));
	assert_true(o.bind);
	assert_true(o.recursive);
	assert_true(o.readonly);
	mount_opts_free(&o);

	o = parse_ok(MNT("bind", "/d", "bind"));
	assert_true(o.bind);
	assert_false(o.recursive);
	mount_opts_free(&o);

	o = parse_ok(MNT("bind", "/d", "rbind"));
	assert_true(o.bind);
	assert_true(o.recursive);
	mount_opts_free(&o);

	/* OCI style: type "none" with a bind option */
	o = parse_ok(MNT("none", "/d", "rbind", "ro"));
	assert_true(o.bind);
	assert_true(o.recursive);
	assert_true(o.readonly);
	assert_null(o.data);
	mount_opts_free(&o);

	o = parse_ok(MNT("none", "/d", "bind", "nosuid"));
	assert_true(o.bind);
	assert_false(o.recursive);
	assert_int_equal(o.attr_set, MOUNT_ATTR_NOSUID);
	mount_opts_free(&o);

	/* no options at all */
	struct hutch_mount m = {
	    .type = (char *)"bind", .source = (char *)"/s", .destination = (char *)"/d"};
	o = parse_ok(m);
	assert_true(o.bind);
	assert_true(o.recursive);
	assert_int_equal(o.attr_set, 0);
	assert_int_equal(o.attr_clr, 0);
	assert_null(o.data);
	mount_opts_free(&o);
}

/* Propagation options are parsed (the last one wins); z/Z and defaults are
 * accepted and change nothing. */
static void test_propagation(void **state)
{
	static const struct {
		const char *name;
		uint64_t type;
		bool recursive;
	} cases[] = {
	    {"private", MS_PRIVATE, false},	   {"rprivate", MS_PRIVATE, true},
	    {"slave", MS_SLAVE, false},		   {"rslave", MS_SLAVE, true},
	    {"shared", MS_SHARED, false},	   {"rshared", MS_SHARED, true},
	    {"unbindable", MS_UNBINDABLE, false}, {"runbindable", MS_UNBINDABLE, true},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct mount_opts o = parse_ok(MNT("bind", "/d", "rbind", (char *)cases[i].name));
		if (o.propagation != cases[i].type || o.propagation_recursive != cases[i].recursive)
			fail_msg("%s: propagation %#llx recursive %d", cases[i].name,
				 (unsigned long long)o.propagation, o.propagation_recursive);
		assert_true(o.bind);
		assert_int_equal(o.attr_set, 0);
		assert_int_equal(o.attr_clr, 0);
		assert_null(o.data);
		mount_opts_free(&o);
	}
	struct mount_opts o = parse_ok(MNT("bind", "/d", "rprivate", "private", "rslave", "slave",
					   "rshared", "shared", "defaults", "z", "Z"));
	assert_int_equal(o.propagation, MS_SHARED);
	assert_false(o.propagation_recursive);
	assert_int_equal(o.attr_set, 0);
	assert_null(o.data);
	mount_opts_free(&o);

	/* none given: 0 (a bind is then made private) */
	o = parse_ok(MNT("bind", "/d", "rbind", "ro"));
	assert_int_equal(o.propagation, 0);
	mount_opts_free(&o);

	/* on a filesystem mount too, and never passed on to fsconfig */
	o = parse_ok(MNT("tmpfs", "/t", "rprivate", "size=1m", "shared"));
	assert_string_equal(o.data, "size=1m");
	assert_int_equal(o.propagation, MS_SHARED);
	mount_opts_free(&o);
}

static void test_fs_data(void **state)
{
	struct mount_opts o = parse_ok(MNT("tmpfs", "/t", "size=64m", "mode=1777"));
	assert_string_equal(o.data, "size=64m,mode=1777");
	assert_false(o.bind);
	assert_int_equal(o.attr_set, 0);
	mount_opts_free(&o);
	assert_null(o.data);

	o = parse_ok(MNT("devpts", "/dev/pts", "nosuid", "noexec", "newinstance", "ptmxmode=0666",
			 "mode=0620", "gid=5"));
	assert_string_equal(o.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
	assert_int_equal(o.attr_set, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
	mount_opts_free(&o);

	/* flags interleaved with data keep the data in order */
	o = parse_ok(MNT("tmpfs", "/t", "mode=755", "nosuid", "size=65536k", "ro", "nr_inodes=1k"));
	assert_string_equal(o.data, "mode=755,size=65536k,nr_inodes=1k");
	assert_int_equal(o.attr_set, MOUNT_ATTR_NOSUID | MOUNT_ATTR_RDONLY);
	assert_true(o.readonly);
	mount_opts_free(&o);

	/* one option */
	o = parse_ok(MNT("mqueue", "/dev/mqueue", "newinstance"));
	assert_string_equal(o.data, "newinstance");
	mount_opts_free(&o);

	/* many and long: the buffer grows correctly */
	char *opts[200];
	char *want = xstrdup("");
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
		opts[i] = xasprintf("option%zu=%0100zu", i, i);
		char *n = xasprintf("%s%s%s", want, i ? "," : "", opts[i]);
		free(want);
		want = n;
	}
	struct hutch_mount m = {.type = (char *)"tmpfs",
				.source = (char *)"tmpfs",
				.destination = (char *)"/t",
				.options = opts,
				.n_options = ARRAY_SIZE(opts)};
	o = parse_ok(m);
	assert_string_equal(o.data, want);
	mount_opts_free(&o);
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
		free(opts[i]);
	free(want);

	mount_opts_free(&o); /* twice is harmless */
}

static void expect_bind_error(struct hutch_mount m, const char *opt)
{
	struct mount_opts o;
	struct hutch_err *err = NULL;
	int r = mount_opts_parse(&m, &o, &err);
	if (r == 0) {
		mount_opts_free(&o);
		fail_msg("bind mount on %s with option '%s' accepted", m.destination, opt);
	}
	assert_int_equal(r, -1);
	assert_non_null(err);
	if (!strstr(err->msg, opt))
		fail_msg("error '%s' does not name the option '%s'", err->msg, opt);
	if (!strstr(err->msg, m.destination))
		fail_msg("error '%s' does not name the destination '%s'", err->msg, m.destination);
	assert_int_equal(err->errno_, EINVAL);
	assert_null(o.data); /* nothing leaked (ASan checks the rest) */
	hutch_err_free(&err);
}

static void test_bind_unknown_option(void **state)
{
	expect_bind_error(MNT("bind", "/data", "ro", "size=64m"), "size=64m");
	expect_bind_error(MNT("bind", "/data", "bogus"), "bogus");
	expect_bind_error(MNT("none", "/srv/x", "rbind", "mode=1777"), "mode=1777");
	expect_bind_error(MNT("bind", "/data", "nosuid", "uid=1000", "ro"), "uid=1000");
}

/* Whether "rbind" comes before or after it, an fs option on a bind mount has
 * nowhere to go and must be refused, not silently dropped. */
static void test_bind_unknown_option_before_bind(void **state)
{
	expect_bind_error(MNT("none", "/srv/x", "mode=1777", "rbind"), "mode=1777");
	expect_bind_error(MNT("none", "/srv/y", "size=1m", "ro", "bind"), "size=1m");
}

/* Every default mount of a fresh spec parses, and means what Docker means. */
static void test_spec_defaults_parse(void **state)
{
	struct hutch_spec *s = hutch_spec_new();
	for (size_t i = 0; i < s->n_mounts; i++) {
		struct mount_opts o = parse_ok(s->mounts[i]);
		assert_false(o.bind);
		check_atime_rule(&o);
		const char *d = s->mounts[i].destination;
		assert_true(o.attr_set & MOUNT_ATTR_NOSUID);
		if (!strcmp(d, "/dev")) {
			assert_string_equal(o.data, "mode=755,size=65536k");
			assert_int_equal(o.attr_set & MOUNT_ATTR__ATIME, MOUNT_ATTR_STRICTATIME);
		} else if (!strcmp(d, "/sys") || !strcmp(d, "/sys/fs/cgroup")) {
			assert_true(o.readonly);
			assert_true(o.attr_set & MOUNT_ATTR_RDONLY);
			assert_null(o.data);
		} else if (!strcmp(d, "/dev/shm")) {
			assert_string_equal(o.data, "mode=1777,size=65536k");
			assert_true(o.attr_set & MOUNT_ATTR_NOEXEC);
		} else if (!strcmp(d, "/dev/pts")) {
			assert_string_equal(o.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
		} else if (!strcmp(d, "/proc")) {
			assert_null(o.data);
			assert_int_equal(o.attr_set,
					 MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NODEV);
		}
		mount_opts_free(&o);
	}
	hutch_spec_free(s);
}

static struct hutch_spec *prepare_spec(void)
{
	struct hutch_spec *s = hutch_spec_new();
	s->root.layers = xcalloc(3, sizeof(char *));
	s->root.layers[0] = xstrdup("/layers/low");
	s->root.layers[1] = xstrdup("/layers/a:b,c");
	s->root.n_layers = 2;
	return s;
}

/* The parent parses every mount once; the child only reads the result. */
static void test_prepare(void **state)
{
	struct hutch_spec *s = prepare_spec();
	hutch_spec_add_mount(s, "bind", "/srv", "/data", "ro,rprivate");
	hutch_spec_add_mount(s, "tmpfs", "tmpfs", "/tmp", "size=1m,noexec");
	struct etc_files etc = {.base_layer = (char *)"/run/cache/etc-base"};
	struct mount_ctx ctx = {.spec = s, .upper = "/c/upper", .work = "/c/work", .etc = &etc};
	struct hutch_err *err = NULL;
	assert_int_equal(mounts_prepare(&ctx, &err), 0);
	assert_null(err);
	for (size_t i = 0; i < s->n_mounts; i++) {
		assert_int_equal(ctx.bind_fds[i], -1);
		assert_int_equal(ctx.own_mnt_ids[i], 0);
		struct mount_opts want = parse_ok(s->mounts[i]);
		const struct mount_opts *got = &ctx.opts[i];
		assert_int_equal(got->attr_set, want.attr_set);
		assert_int_equal(got->bind, want.bind);
		if (want.data)
			assert_string_equal(got->data, want.data);
		else
			assert_null(got->data);
		mount_opts_free(&want);
	}
	assert_true(ctx.opts[7].bind && ctx.opts[7].readonly);
	assert_string_equal(ctx.opts[8].data, "size=1m");
	/* the overlay's options for old kernels: top layer first, escaped, /etc base last */
	assert_string_equal(ctx.overlay_legacy_opts,
			    "lowerdir=/layers/a\\:b\\,c:/layers/low:/run/cache/etc-base,"
			    "upperdir=/c/upper,workdir=/c/work");
	assert_int_equal(ctx.n_host_devs, 0);
	mounts_release(&ctx);
	assert_null(ctx.opts);
	assert_null(ctx.bind_fds);
	mounts_release(&ctx); /* twice is harmless */
	hutch_spec_free(s);
}

static void test_prepare_refuses_bad_options(void **state)
{
	struct hutch_spec *s = prepare_spec();
	hutch_spec_add_mount(s, "bind", "/srv", "/data", "ro,size=1m");
	struct mount_ctx ctx = {.spec = s, .upper = "/u", .work = "/w"};
	struct hutch_err *err = NULL;
	assert_int_equal(mounts_prepare(&ctx, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "unknown option 'size=1m' for bind mount on /data"));
	assert_null(ctx.opts); /* nothing left to release (ASan checks the rest) */
	hutch_err_free(&err);
	hutch_spec_free(s);
}

/* Rootless with the host's network, /sys is the host's, bound; in a user
 * namespace without gid 5, devpts goes without gid=5. */
static void test_prepare_rootless(void **state)
{
	struct hutch_spec *s = prepare_spec();
	hutch_spec_share_namespace(s, HUTCH_NS_NETWORK);
	hutch_spec_set_namespace(s, HUTCH_NS_USER, NULL);
	s->gid_map = xcalloc(1, sizeof(*s->gid_map));
	s->gid_map[0] = (struct hutch_id_map){0, 1000, 1};
	s->n_gid_map = 1;
	struct mount_ctx ctx = {.spec = s, .upper = "/u", .work = "/w", .rootless = true};
	struct hutch_err *err = NULL;
	assert_int_equal(mounts_prepare(&ctx, &err), 0);
	for (size_t i = 0; i < s->n_mounts; i++) {
		const char *d = s->mounts[i].destination;
		if (!strcmp(d, "/sys")) {
			assert_true(ctx.opts[i].bind && ctx.opts[i].recursive &&
				    ctx.opts[i].readonly);
			assert_null(ctx.opts[i].data);
		} else if (!strcmp(d, "/dev/pts")) {
			assert_string_equal(ctx.opts[i].data,
					    "newinstance,ptmxmode=0666,mode=0620");
		}
	}
	assert_string_equal(
	    ctx.overlay_legacy_opts,
	    "lowerdir=/layers/a\\:b\\,c:/layers/low,upperdir=/u,workdir=/w,userxattr");
	mounts_release(&ctx);
	hutch_spec_free(s);
}

/* --privileged: the host's nodes are listed by the parent, by their real path. */
static void test_prepare_lists_host_devices(void **state)
{
	struct hutch_spec *s = prepare_spec();
	hutch_spec_set_privileged(s);
	struct mount_ctx ctx = {.spec = s, .upper = "/u", .work = "/w"};
	struct hutch_err *err = NULL;
	assert_int_equal(mounts_prepare(&ctx, &err), 0);
	bool null = false;
	for (size_t i = 0; i < ctx.n_host_devs; i++) {
		const struct host_dev *d = &ctx.host_devs[i];
		assert_true(!strncmp(d->path, "/dev/", 5));
		assert_true(S_ISCHR(d->mode) || S_ISBLK(d->mode));
		/* runc's list leaves out /dev/pts, /dev/shm, /dev/mqueue and the console */
		assert_null(strstr(d->path, "/dev/pts/"));
		assert_null(strstr(d->path, "/dev/shm/"));
		assert_string_not_equal(d->path, "/dev/console");
		if (!strcmp(d->path, "/dev/null")) {
			null = true;
			assert_int_equal(d->rdev, makedev(1, 3));
		}
	}
	assert_true(null);
	mounts_release(&ctx);
	hutch_spec_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_flags),
	    cmocka_unit_test(test_toggling),
	    cmocka_unit_test(test_atime),
	    cmocka_unit_test(test_bind),
	    cmocka_unit_test(test_propagation),
	    cmocka_unit_test(test_fs_data),
	    cmocka_unit_test(test_bind_unknown_option),
	    cmocka_unit_test(test_bind_unknown_option_before_bind),
	    cmocka_unit_test(test_spec_defaults_parse),
	    cmocka_unit_test(test_prepare),
	    cmocka_unit_test(test_prepare_refuses_bad_options),
	    cmocka_unit_test(test_prepare_rootless),
	    cmocka_unit_test(test_prepare_lists_host_devices),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
