/* runtime/user.c: the /etc/passwd and /etc/group parsers behind --user. The
 * files come from the image, so anything may be in them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "runtime/runtime_internal.h"

static const char passwd[] = "root:x:0:0:root:/root:/bin/bash\n"
			     "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
			     "\n"
			     "# a comment line\n"
			     "#hidden:x:7:7::/hidden:/bin/sh\n"
			     "short:x:9\n"
			     "sixfields:x:8:8::/six\n"
			     "bad:x:abc:10::/bad:/bin/sh\n"
			     "badgid:x:11:zz::/badgid:/bin/sh\n"
			     "neg:x:-5:10::/neg:/bin/sh\n"
			     "emptyuid:x::10::/e:/bin/sh\n"
			     "spaced:x: 12:12::/s:/bin/sh\n"
			     "big:x:4294967296:100::/big:/bin/sh\n"
			     "max:x:4294967295:100::/max:/bin/sh\n"
			     "bigg:x:200:99999999999999999999::/bigg:/bin/sh\n"
			     "alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n"
			     "nohome:x:1001:1001:::/bin/sh\n"
			     "bob:x:1002:100::/home/bob:/bin/sh"; /* no trailing newline */

static void expect_user(const char *content, const char *who, uid_t want_uid, gid_t want_gid,
			const char *want_home)
{
	uid_t uid = 12345;
	gid_t gid = 12345;
	char *home = NULL;
	if (passwd_lookup(content, who, &uid, &gid, &home) != 0)
		fail_msg("passwd_lookup(\"%s\") found nothing", who);
	assert_int_equal(uid, want_uid);
	assert_int_equal(gid, want_gid);
	assert_non_null(home);
	assert_string_equal(home, want_home);
	free(home);
	/* home is optional */
	assert_int_equal(passwd_lookup(content, who, &uid, &gid, NULL), 0);
}

static void expect_no_user(const char *content, const char *who)
{
	uid_t uid = 12345;
	gid_t gid = 12345;
	char *home = NULL;
	if (passwd_lookup(content, who, &uid, &gid, &home) == 0)
		fail_msg("passwd_lookup(\"%s\") matched uid %u gid %u home '%s'", who, uid, gid,
			 home ? home : "(null)");
	assert_int_equal(uid, 12345);
	assert_int_equal(gid, 12345);
	assert_null(home);
}

static void test_passwd_by_name_and_id(void **state)
{
	expect_user(passwd, "root", 0, 0, "/root");
	expect_user(passwd, "0", 0, 0, "/root");
	expect_user(passwd, "daemon", 1, 1, "/usr/sbin");
	expect_user(passwd, "1", 1, 1, "/usr/sbin");
	expect_user(passwd, "alice", 1000, 1000, "/home/alice");
	expect_user(passwd, "1000", 1000, 1000, "/home/alice");
	expect_user(passwd, "nohome", 1001, 1001, "");
	/* the last line has no newline */
	expect_user(passwd, "bob", 1002, 100, "/home/bob");
	expect_user(passwd, "1002", 1002, 100, "/home/bob");
	/* names are exact, not prefixes */
	expect_no_user(passwd, "ali");
	expect_no_user(passwd, "alicex");
	expect_no_user(passwd, "Alice");
	expect_no_user(passwd, "nobody");
	expect_no_user(passwd, "4242");
	expect_no_user(passwd, "100"); /* a gid, not a uid */
}

static void test_passwd_skips_bad_lines(void **state)
{
	/* comments */
	expect_no_user(passwd, "#hidden");
	expect_no_user(passwd, "7");
	/* too few fields */
	expect_no_user(passwd, "short");
	expect_no_user(passwd, "9");
	expect_no_user(passwd, "sixfields");
	expect_no_user(passwd, "8");
	/* ids that are not decimal numbers */
	expect_no_user(passwd, "bad");
	expect_no_user(passwd, "badgid");
	expect_no_user(passwd, "11");
	expect_no_user(passwd, "neg");
	expect_no_user(passwd, "-5");
	expect_no_user(passwd, "emptyuid");
	expect_no_user(passwd, "spaced");
	expect_no_user(passwd, "12");
	/* ids beyond 32 bits (and (uid_t)-1) are rejected, not truncated */
	expect_no_user(passwd, "big");
	expect_no_user(passwd, "4294967296");
	expect_no_user(passwd, "max");
	expect_no_user(passwd, "4294967295");
	expect_no_user(passwd, "bigg");
	expect_no_user(passwd, "200");
	expect_no_user(passwd, "18446744073709551616");
	/* a numeric lookup must not be taken as a name either */
	expect_no_user(passwd, " 0");
	expect_no_user(passwd, "0 ");
	expect_no_user(passwd, "+0");
}

/* 2^32 must not wrap to uid 0: a line before root with uid 4294967296 is not root. */
static void test_passwd_no_wrap_to_root(void **state)
{
	static const char content[] = "evil:x:4294967296:4294967296::/evil:/bin/sh\n"
				      "evil2:x:18446744073709551616:0::/evil2:/bin/sh\n"
				      "root:x:0:0:root:/root:/bin/sh\n";
	expect_user(content, "0", 0, 0, "/root");
	expect_no_user(content, "evil");
	expect_no_user(content, "evil2");
	static const char only_evil[] = "evil:x:4294967296:0::/evil:/bin/sh\n";
	expect_no_user(only_evil, "0");
}

static void test_passwd_empty_and_odd(void **state)
{
	expect_no_user("", "root");
	expect_no_user("", "0");
	expect_no_user("\n\n\n", "root");
	expect_no_user(":::::::\n", "0");
	expect_no_user("::::::\n", "");
	/* leading blank lines, no trailing newline */
	expect_user("\n\nroot:x:0:0::/r:/bin/sh", "root", 0, 0, "/r");
	/* the first match wins */
	expect_user("a:x:5:5::/first:/bin/sh\na:x:6:6::/second:/bin/sh\n", "a", 5, 5, "/first");
	/* extra fields beyond seven are tolerated */
	expect_user("x:x:3:4:g:/h:/bin/sh:extra\n", "x", 3, 4, "/h");
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* Lines longer than the parser's buffer must not crash it nor hide the lines after. */
static void test_passwd_huge_lines(void **state)
{
	static const size_t sizes[] = {1000, 1017, 1018, 1019, 1020,
				       1023, 1024, 1025, 4096, 100000};
	for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {
		char *gecos = repeat('G', sizes[k]);
		char *colons = repeat(':', sizes[k]);
		char *noisy = repeat('n', sizes[k]);
		char *content = xasprintf("huge:x:5:5:%s:/home/huge:/bin/sh\n"
					  "%s\n"
					  "%s\n"
					  "after:x:6:6::/after:/bin/sh\n"
					  "%s",
					  gecos, colons, noisy, noisy);
		/* no assertion on "huge" itself: just no crash either way */
		uid_t u;
		gid_t g;
		char *home = NULL;
		if (passwd_lookup(content, "huge", &u, &g, &home) == 0) {
			assert_int_equal(u, 5);
			assert_string_equal(home, "/home/huge");
		}
		free(home);
		expect_user(content, "after", 6, 6, "/after");
		expect_user(content, "6", 6, 6, "/after");
		expect_no_user(content, "7");
		/* a huge name lookup */
		expect_no_user(content, noisy);
		/* a huge line whose head looks like a valid record: the tail is not a new line */
		char *tail = xasprintf("x:x:1:1:%s:root:x:0:0::/pwned:/bin/sh\n", gecos);
		expect_no_user(tail, "root");
		free(tail);
		free(content);
		free(gecos);
		free(colons);
		free(noisy);
	}
}

/* ---- groups --------------------------------------------------------------- */

static const char group[] = "root:x:0:\n"
			    "wheel:x:10:root,alice\n"
			    "# comment\n"
			    "users:x:100:alice,bob\n"
			    "short:x\n"
			    "bad:x:zz:alice\n"
			    "neg:x:-1:alice\n"
			    "alice:x:1000:\n"
			    "docker:x:999:bob,alice2,alice\n"
			    "big:x:4294967296:alice\n"
			    "nogid:x::alice\n"
			    "twice:x:50:alice,alice\n"
			    "audio:x:29:alice"; /* no trailing newline */

static void expect_group(const char *content, const char *who, gid_t want)
{
	gid_t gid = 12345;
	if (group_lookup(content, who, &gid) != 0)
		fail_msg("group_lookup(\"%s\") found nothing", who);
	assert_int_equal(gid, want);
}

static void expect_no_group(const char *content, const char *who)
{
	gid_t gid = 12345;
	if (group_lookup(content, who, &gid) == 0)
		fail_msg("group_lookup(\"%s\") matched gid %u", who, gid);
	assert_int_equal(gid, 12345);
}

static void test_group_lookup(void **state)
{
	expect_group(group, "root", 0);
	expect_group(group, "0", 0);
	expect_group(group, "wheel", 10);
	expect_group(group, "10", 10);
	expect_group(group, "users", 100);
	expect_group(group, "docker", 999);
	expect_group(group, "999", 999);
	expect_group(group, "audio", 29); /* last line, no newline */
	expect_group(group, "29", 29);
	expect_no_group(group, "nope");
	expect_no_group(group, "4242");
	expect_no_group(group, "# comment");
	expect_no_group(group, "short");
	expect_no_group(group, "bad");
	expect_no_group(group, "neg");
	expect_no_group(group, "big");
	expect_no_group(group, "4294967296");
	expect_no_group(group, "nogid");
	expect_no_group(group, "whee");
	expect_no_group("", "root");
	expect_no_group("\n", "0");
	/* a commented-out group is not a group */
	expect_no_group("#admins:x:11:alice\n", "#admins");
	expect_no_group("#admins:x:11:alice\n", "11");
	/* three fields are enough for a lookup */
	expect_group("tiny:x:7", "tiny", 7);
	/* 2^32 does not wrap to 0 */
	expect_no_group("evil:x:4294967296:\n", "0");
}

static void test_group_members(void **state)
{
	/* wheel, users, docker, twice, audio; not the primary (alice, 1000) nor the
	 * lines with bad or out-of-range gids */
	gid_t *g = NULL;
	size_t n = group_members(group, "alice", 1000, &g);
	assert_int_equal(n, 5);
	assert_non_null(g);
	assert_int_equal(g[0], 10);
	assert_int_equal(g[1], 100);
	assert_int_equal(g[2], 999);
	assert_int_equal(g[3], 50); /* listed twice in one group: counted once */
	assert_int_equal(g[4], 29); /* the last line, without a newline */
	free(g);
}

/* Supplementary groups: every group whose member list names the user, in file
 * order, without the primary group, without bad lines. */
static void test_group_members_exact(void **state)
{
	static const char content[] = "root:x:0:\n"
				      "wheel:x:10:root,alice\n"
				      "users:x:100:alice,bob\n"
				      "bad:x:zz:alice\n"
				      "short:x:12\n"
				      "big:x:4294967296:alice\n"
				      "docker:x:999:bob,alice2,alice\n"
				      "audio:x:29:alice";
	gid_t *g = NULL;
	size_t n = group_members(content, "alice", 1000, &g);
	assert_int_equal(n, 4);
	assert_int_equal(g[0], 10);
	assert_int_equal(g[1], 100);
	assert_int_equal(g[2], 999);
	assert_int_equal(g[3], 29);
	free(g);
	/* the primary group is left out */
	n = group_members(content, "alice", 100, &g);
	assert_int_equal(n, 3);
	assert_int_equal(g[0], 10);
	assert_int_equal(g[1], 999);
	assert_int_equal(g[2], 29);
	free(g);
	n = group_members(content, "bob", 100, &g);
	assert_int_equal(n, 1);
	assert_int_equal(g[0], 999);
	free(g);
	/* exact member names */
	n = group_members(content, "alice2", 0, &g);
	assert_int_equal(n, 1);
	assert_int_equal(g[0], 999);
	free(g);
	g = (gid_t *)&n; /* must be overwritten */
	n = group_members(content, "ali", 0, &g);
	assert_int_equal(n, 0);
	free(g);
	n = group_members(content, "root", 0, &g);
	assert_int_equal(n, 1);
	assert_int_equal(g[0], 10);
	free(g);
	/* nothing */
	g = (gid_t *)&n;
	n = group_members("", "alice", 0, &g);
	assert_int_equal(n, 0);
	free(g);
}

/* glibc's nss_files ignores lines starting with '#': a commented-out group
 * grants nothing. */
static void test_group_members_skips_comments(void **state)
{
	static const char content[] = "#admins:x:11:alice\n"
				      "# 12 is for later:x:12:alice\n"
				      "users:x:100:alice\n";
	gid_t *g = NULL;
	size_t n = group_members(content, "alice", 1000, &g);
	gid_t wrong = 100;
	for (size_t i = 0; i < n; i++)
		if (g[i] != 100)
			wrong = g[i];
	free(g);
	if (wrong != 100)
		fail_msg("group_members gave gid %u from a commented-out line", wrong);
	assert_int_equal(n, 1);
}

static void test_group_huge_lines(void **state)
{
	static const size_t sizes[] = {1023, 1024, 4090, 4095, 4096, 4097, 100000};
	for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {
		char *members = repeat('m', sizes[k]);
		char *content = xasprintf("huge:x:500:%s,alice\n"
					  "%s\n"
					  "after:x:501:alice\n"
					  "%s",
					  members, members, members);
		expect_group(content, "after", 501);
		expect_group(content, "501", 501);
		expect_no_group(content, members);
		gid_t *g = NULL;
		size_t n = group_members(content, "alice", 0, &g);
		bool after = false;
		for (size_t i = 0; i < n; i++) {
			after |= g[i] == 501;
			assert_true(g[i] == 500 || g[i] == 501);
		}
		assert_true(after);
		free(g);
		/* the truncated tail of a huge line is not a line of its own */
		char *tail = xasprintf("x:x:1:%s:wheel:x:10:alice\n", members);
		expect_no_group(tail, "wheel");
		n = group_members(tail, "alice", 0, &g);
		for (size_t i = 0; i < n; i++)
			assert_int_not_equal(g[i], 10);
		free(g);
		free(tail);
		free(content);
		free(members);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_passwd_by_name_and_id),
	    cmocka_unit_test(test_passwd_skips_bad_lines),
	    cmocka_unit_test(test_passwd_no_wrap_to_root),
	    cmocka_unit_test(test_passwd_empty_and_odd),
	    cmocka_unit_test(test_passwd_huge_lines),
	    cmocka_unit_test(test_group_lookup),
	    cmocka_unit_test(test_group_members),
	    cmocka_unit_test(test_group_members_exact),
	    cmocka_unit_test(test_group_members_skips_comments),
	    cmocka_unit_test(test_group_huge_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
