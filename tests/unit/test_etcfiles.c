/* runtime/etcfiles.c: the container's /etc/hostname, /etc/hosts and
 * /etc/resolv.conf, and when the user's own mounts win. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "runtime/etcfiles_internal.h"

static const char localhost_lines[] = "127.0.0.1\tlocalhost\n"
				      "::1\tlocalhost ip6-localhost ip6-loopback\n"
				      "fe00::0\tip6-localnet\n"
				      "ff00::0\tip6-mcastprefix\n"
				      "ff02::1\tip6-allnodes\n"
				      "ff02::2\tip6-allrouters\n";

/* The container's network: its own (only loopback), the host's, or one joined. */
enum net { NET_NONE, NET_HOST, NET_PATH };

static struct hutch_spec *spec_with(const char *hostname, enum net net)
{
	struct hutch_spec *s = hutch_spec_new();
	s->hostname = hostname ? xstrdup(hostname) : NULL;
	if (net == NET_HOST)
		hutch_spec_share_namespace(s, HUTCH_NS_NETWORK);
	else if (net == NET_PATH)
		hutch_spec_set_namespace(s, HUTCH_NS_NETWORK, "/run/netns/test");
	return s;
}

static void expect_text(char *got, const char *want)
{
	if (strcmp(got, want))
		fail_msg("got:\n%s\nwant:\n%s", got, want);
	free(got);
}

/* ---- hostname, hosts ---------------------------------------------------------- */

static void test_hostname(void **state)
{
	struct hutch_spec *s = spec_with("box", NET_NONE);
	expect_text(etc_hostname_content(s), "box\n");
	hutch_spec_free(s);
}

static void test_hosts_private_network(void **state)
{
	struct hutch_spec *s = spec_with("0123456789ab", NET_NONE);
	char *want = xasprintf("%s127.0.0.1\t0123456789ab\n::1\t0123456789ab\n", localhost_lines);
	/* the host's file does not matter without the host's network */
	expect_text(etc_hosts_content(s, "10.9.9.9 hostonly\n"), want);
	free(want);
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_spec_add_host(s, "db", "10.0.0.5", &err), 0);
	assert_int_equal(hutch_spec_add_host(s, "v6", "fd00::5", &err), 0);
	want =
	    xasprintf("%s10.0.0.5\tdb\nfd00::5\tv6\n127.0.0.1\t0123456789ab\n::1\t0123456789ab\n",
		      localhost_lines);
	expect_text(etc_hosts_content(s, NULL), want);
	free(want);
	/* an extra host for the hostname itself (net/ gives the container's address
	 * that way) replaces the loopback lines for it */
	assert_int_equal(hutch_spec_add_host(s, "0123456789AB", "10.88.0.2", &err), 0);
	want = xasprintf("%s10.0.0.5\tdb\nfd00::5\tv6\n10.88.0.2\t0123456789AB\n", localhost_lines);
	expect_text(etc_hosts_content(s, NULL), want);
	free(want);
	hutch_spec_free(s);

	/* no hostname: only the localhost lines */
	s = spec_with(NULL, NET_PATH);
	expect_text(etc_hosts_content(s, NULL), localhost_lines);
	hutch_spec_free(s);
}

static void test_hosts_host_network(void **state)
{
	struct hutch_spec *s = spec_with("box", NET_HOST);
	/* the host's file, its last line completed, then the container's name */
	expect_text(etc_hosts_content(s, "127.0.0.1 localhost\n10.1.1.1 nas"),
		    "127.0.0.1 localhost\n10.1.1.1 nas\n127.0.0.1\tbox\n::1\tbox\n");
	/* a name the host's file already has is not added again (comments do not count) */
	expect_text(etc_hosts_content(s, "127.0.1.1\tfoo BOX # box\n"),
		    "127.0.1.1\tfoo BOX # box\n");
	expect_text(etc_hosts_content(s, "# 10.0.0.1 box\n10.0.0.2 boxes\n"),
		    "# 10.0.0.1 box\n10.0.0.2 boxes\n127.0.0.1\tbox\n::1\tbox\n");
	/* an address is not a name */
	expect_text(etc_hosts_content(s, "box other\n"), "box other\n127.0.0.1\tbox\n::1\tbox\n");
	/* no host file: the defaults */
	char *want = xasprintf("%s127.0.0.1\tbox\n::1\tbox\n", localhost_lines);
	expect_text(etc_hosts_content(s, NULL), want);
	free(want);
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_spec_add_host(s, "extra", "192.0.2.1", &err), 0);
	expect_text(etc_hosts_content(s, "127.0.0.1 localhost\n"),
		    "127.0.0.1 localhost\n192.0.2.1\textra\n127.0.0.1\tbox\n::1\tbox\n");
	hutch_spec_free(s);
}

/* ---- resolv.conf ---------------------------------------------------------------- */

static const char host_resolv[] = "# from DHCP\n"
				  "nameserver 127.0.0.53\n"
				  "nameserver 10.0.0.1\n"
				  "nameserver ::1\n"
				  "  nameserver\tfe80::1%eth0  # link-local\n"
				  "nameserver 127.1.2.3\n"
				  "nameserver not-an-ip\n"
				  "nameserver ::ffff:127.0.0.1\n"
				  "search a.example b.example\n"
				  "domain c.example\n"
				  "options ndots:2\n"
				  "options edns0 timeout:1\n"
				  "sortlist 10.0.0.0/255.0.0.0\n"
				  "; a comment\n"
				  "nameserver\n";

static void test_resolv_private_network(void **state)
{
	struct hutch_spec *s = spec_with("box", NET_NONE);
	/* loopback servers would be the container's own loopback: dropped */
	expect_text(etc_resolv_conf_content(s, host_resolv), "nameserver 10.0.0.1\n"
							     "nameserver fe80::1%eth0\n"
							     "search c.example\n"
							     "options ndots:2 edns0 timeout:1\n");
	/* only loopback servers: none left (no public fallback) */
	expect_text(etc_resolv_conf_content(s, "nameserver 127.0.0.53\nsearch lan\n"),
		    "search lan\n");
	expect_text(etc_resolv_conf_content(s, NULL), "");
	expect_text(etc_resolv_conf_content(s, ""), "");
	/* CRLF and tabs */
	expect_text(etc_resolv_conf_content(s, "nameserver\t192.0.2.53\r\nsearch x.example\r\n"),
		    "nameserver 192.0.2.53\nsearch x.example\n");
	hutch_spec_free(s);
}

static void test_resolv_host_network(void **state)
{
	struct hutch_spec *s = spec_with("box", NET_HOST);
	/* as it is, loopback servers and all */
	expect_text(etc_resolv_conf_content(s, host_resolv), host_resolv);
	expect_text(etc_resolv_conf_content(s, "nameserver 127.0.0.53"), "nameserver 127.0.0.53\n");
	expect_text(etc_resolv_conf_content(s, NULL), "");
	/* with an override, rebuilt: the host's servers kept unfiltered */
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_spec_add_dns_search(s, "override.example", &err), 0);
	expect_text(etc_resolv_conf_content(s, host_resolv), "nameserver 127.0.0.53\n"
							     "nameserver 10.0.0.1\n"
							     "nameserver ::1\n"
							     "nameserver fe80::1%eth0\n"
							     "nameserver 127.1.2.3\n"
							     "nameserver ::ffff:127.0.0.1\n"
							     "search override.example\n"
							     "options ndots:2 edns0 timeout:1\n");
	hutch_spec_free(s);
}

static void test_resolv_overrides(void **state)
{
	struct hutch_err *err = NULL;
	/* each of servers, search and options replaces the host's own, alone */
	struct hutch_spec *s = spec_with("box", NET_NONE);
	assert_int_equal(hutch_spec_add_dns_server(s, "192.0.2.53", &err), 0);
	assert_int_equal(hutch_spec_add_dns_server(s, "127.0.0.1", &err), 0);
	expect_text(etc_resolv_conf_content(s, host_resolv),
		    "nameserver 192.0.2.53\n"
		    "nameserver 127.0.0.1\n" /* asked for: kept */
		    "search c.example\n"
		    "options ndots:2 edns0 timeout:1\n");
	assert_int_equal(hutch_spec_add_dns_option(s, "attempts:3", &err), 0);
	expect_text(etc_resolv_conf_content(s, host_resolv), "nameserver 192.0.2.53\n"
							     "nameserver 127.0.0.1\n"
							     "search c.example\n"
							     "options attempts:3\n");
	hutch_spec_free(s);

	s = spec_with("box", NET_PATH);
	assert_int_equal(hutch_spec_add_dns_search(s, "one.example", &err), 0);
	assert_int_equal(hutch_spec_add_dns_search(s, "two.example", &err), 0);
	expect_text(etc_resolv_conf_content(s, "nameserver 10.0.0.1\nsearch lan\n"),
		    "nameserver 10.0.0.1\nsearch one.example two.example\n");
	hutch_spec_free(s);

	/* --dns-search . : no search domains at all */
	s = spec_with("box", NET_NONE);
	assert_int_equal(hutch_spec_add_dns_search(s, ".", &err), 0);
	expect_text(etc_resolv_conf_content(s, "nameserver 10.0.0.1\nsearch lan\n"),
		    "nameserver 10.0.0.1\n");
	hutch_spec_free(s);
	assert_null(err);
}

/* A hostile or broken host file cannot make huge lists or inject lines. */
static void test_resolv_bounds(void **state)
{
	struct hutch_spec *s = spec_with("box", NET_NONE);
	char *text = xstrdup("");
	for (int i = 0; i < 200; i++) {
		char *n = xasprintf("%snameserver 10.0.%d.%d\n", text, i / 250, i % 250);
		free(text);
		text = n;
	}
	char *many = xstrdup("options");
	for (int i = 0; i < 500; i++) {
		char *n = xasprintf("%s o%d", many, i);
		free(many);
		many = n;
	}
	char *all = xasprintf("%s%s\nsearch %s\n", text, many, "x.example");
	char *out = etc_resolv_conf_content(s, all);
	size_t servers = 0, opts = 0;
	for (char *p = out; (p = strstr(p, "nameserver ")); p++)
		servers++;
	char *o = strstr(out, "options ");
	assert_non_null(o);
	for (char *p = o; *p && *p != '\n'; p++)
		opts += *p == ' ';
	assert_int_equal(servers, 64);
	assert_true(opts <= 64);
	assert_non_null(strstr(out, "search x.example\n"));
	free(out);
	free(all);
	free(many);
	free(text);
	hutch_spec_free(s);
}

/* ---- which files --------------------------------------------------------------- */

static void expect_wanted(struct hutch_spec *s, bool hostname, bool hosts, bool resolv)
{
	assert_int_equal(etc_file_wanted(s, ETC_HOSTNAME), hostname);
	assert_int_equal(etc_file_wanted(s, ETC_HOSTS), hosts);
	assert_int_equal(etc_file_wanted(s, ETC_RESOLV_CONF), resolv);
	hutch_spec_free(s);
}

static void test_wanted(void **state)
{
	assert_string_equal(etc_file_paths[ETC_HOSTS], "/etc/hosts");
	assert_string_equal(etc_file_names[ETC_RESOLV_CONF], "resolv.conf");
	expect_wanted(spec_with("box", NET_NONE), true, true, true);
	/* the user's own file wins */
	struct hutch_spec *s = spec_with("box", NET_NONE);
	hutch_spec_add_mount(s, "bind", "/srv/hosts", "/etc/hosts", "rbind,ro");
	expect_wanted(s, true, false, true);
	s = spec_with("box", NET_NONE);
	hutch_spec_add_mount(s, "tmpfs", "tmpfs", "/etc/resolv.conf/", NULL);
	expect_wanted(s, true, true, false);
	/* a bound host directory over /etc: nothing is written into it */
	s = spec_with("box", NET_NONE);
	hutch_spec_add_mount(s, "bind", "/srv/etc", "/etc/", "rbind");
	expect_wanted(s, false, false, false);
	/* a tmpfs over /etc is the container's own: the files go in it */
	s = spec_with("box", NET_NONE);
	hutch_spec_add_mount(s, "tmpfs", "tmpfs", "/etc", NULL);
	expect_wanted(s, true, true, true);
	/* similar names are other paths */
	s = spec_with("box", NET_NONE);
	hutch_spec_add_mount(s, "bind", "/srv", "/etcx", "rbind");
	hutch_spec_add_mount(s, "bind", "/srv", "/etc/hosts.d", "rbind");
	hutch_spec_add_mount(s, "bind", "/srv", "/etc/host", "rbind");
	expect_wanted(s, true, true, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hostname),
	    cmocka_unit_test(test_hosts_private_network),
	    cmocka_unit_test(test_hosts_host_network),
	    cmocka_unit_test(test_resolv_private_network),
	    cmocka_unit_test(test_resolv_host_network),
	    cmocka_unit_test(test_resolv_overrides),
	    cmocka_unit_test(test_resolv_bounds),
	    cmocka_unit_test(test_wanted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
