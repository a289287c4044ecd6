/* net/ipam.c and net/ports.c: which /24 a network gets around the host's routes,
 * addresses handed out, released and kept for a key, and -p as Docker reads it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/util.h"
#include "net/net.h"

static struct hutch_cidr cidr(const char *s)
{
	struct hutch_cidr c;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_cidr_parse(s, &c, &err), 0);
	return c;
}

static char *fmt(uint32_t addr)
{
	static char buf[4][16];
	static int k;
	char *b = buf[k++ % 4];
	hutch_ipv4_format(addr, b);
	return b;
}

static void assert_err_contains(struct hutch_err **err, const char *what)
{
	assert_non_null(*err);
	if (!strstr((*err)->msg, what))
		fail_msg("'%s' not in '%s'", what, (*err)->msg);
	hutch_err_free(err);
}

/* ---- CIDR ---------------------------------------------------------------------- */

static void test_cidr_parse(void **st)
{
	struct hutch_cidr c = cidr("10.89.3.0/24");
	char b[19];
	hutch_cidr_format(&c, b);
	assert_string_equal(b, "10.89.3.0/24");
	assert_int_equal(c.prefix, 24);
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_cidr_parse("10.89.3.1/24", &c, &err), -1);
	assert_err_contains(&err, "did you mean 10.89.3.0/24");
	assert_int_equal(hutch_cidr_parse("10.89.3.0", &c, &err), -1);
	assert_err_contains(&err, "'10.89.3.0'");
	assert_int_equal(hutch_cidr_parse("10.89.3.0/33", &c, &err), -1);
	assert_err_contains(&err, "0-32");
	assert_int_equal(hutch_cidr_parse("fd00::/64", &c, &err), -1);
	assert_err_contains(&err, "IPv6");
	assert_int_equal(hutch_cidr_parse("10.89.3.0/x", &c, &err), -1);
	assert_err_contains(&err, "10.89.3.0/x");
}

static void test_overlap(void **st)
{
	struct hutch_cidr a = cidr("10.89.0.0/24"), b = cidr("10.89.0.128/25"),
			  c = cidr("10.89.1.0/24"), d = cidr("10.0.0.0/8");
	assert_true(hutch_cidr_overlap(&a, &b));
	assert_true(hutch_cidr_overlap(&b, &a));
	assert_false(hutch_cidr_overlap(&a, &c));
	assert_true(hutch_cidr_overlap(&a, &d));
}

/* ---- subnet choice ---------------------------------------------------------------- */

static void test_choose_first_free(void **st)
{
	struct hutch_cidr out;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_ipam_choose_subnet(NULL, 0, &out, &err), 0);
	char b[19];
	hutch_cidr_format(&out, b);
	assert_string_equal(b, "10.89.0.0/24");
}

static void test_choose_around_routes(void **st)
{
	/* a default route clashes with nothing; a host /23 takes two /24s; a /32
	 * route one; another network its own */
	struct hutch_cidr taken[] = {cidr("0.0.0.0/0"), cidr("10.89.0.0/23"), cidr("10.89.2.7/32"),
				     cidr("10.89.3.0/24"), cidr("192.168.1.0/24")};
	struct hutch_cidr out;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_ipam_choose_subnet(taken, ARRAY_SIZE(taken), &out, &err), 0);
	char b[19];
	hutch_cidr_format(&out, b);
	assert_string_equal(b, "10.89.4.0/24");
}

static void test_choose_none_left(void **st)
{
	struct hutch_cidr taken[] = {cidr("10.0.0.0/8")};
	struct hutch_cidr out;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_ipam_choose_subnet(taken, 1, &out, &err), -1);
	assert_err_contains(&err, "--subnet");
}

/* ---- allocation ------------------------------------------------------------------ */

static void test_allocate_release(void **st)
{
	struct hutch_ipam_pool pool = {.subnet = cidr("10.89.7.0/24")};
	struct hutch_err *err = NULL;
	uint32_t a, b, c;
	assert_string_equal(fmt(hutch_ipam_gateway(&pool.subnet)), "10.89.7.1");
	assert_int_equal(hutch_ipam_allocate(&pool, NULL, "c1", &a, &err), 0);
	assert_int_equal(hutch_ipam_allocate(&pool, NULL, "c2", &b, &err), 0);
	assert_string_equal(fmt(a), "10.89.7.2");
	assert_string_equal(fmt(b), "10.89.7.3");
	assert_int_equal(hutch_ipam_release(&pool, "c1"), 1);
	assert_int_equal(pool.n, 1);
	/* released without a key: free again */
	assert_int_equal(hutch_ipam_allocate(&pool, NULL, "c3", &c, &err), 0);
	assert_string_equal(fmt(c), "10.89.7.2");
	assert_int_equal(hutch_ipam_release(&pool, "nobody"), 0);
	hutch_ipam_pool_clear(&pool);
}

static void test_stable_keys(void **st)
{
	struct hutch_ipam_pool pool = {.subnet = cidr("10.89.8.0/24")};
	struct hutch_err *err = NULL;
	uint32_t web1, web1_again, db, other;
	assert_int_equal(hutch_ipam_allocate(&pool, "s-web-1", "c1", &web1, &err), 0);
	assert_int_equal(hutch_ipam_allocate(&pool, "s-db-1", "c2", &db, &err), 0);
	assert_int_not_equal(web1, db);
	/* a second owner cannot take a held key */
	assert_int_equal(hutch_ipam_allocate(&pool, "s-web-1", "c9", &other, &err), -1);
	assert_err_contains(&err, "s-web-1");
	/* released: the key's address stays reserved ... */
	assert_int_equal(hutch_ipam_release(&pool, "c1"), 1);
	for (int i = 0; i < 20; i++) {
		char owner[16];
		snprintf(owner, sizeof(owner), "x%d", i);
		assert_int_equal(hutch_ipam_allocate(&pool, NULL, owner, &other, &err), 0);
		assert_int_not_equal(other, web1);
	}
	/* ... and comes back for the key's next owner (a restart) */
	assert_int_equal(hutch_ipam_allocate(&pool, "s-web-1", "c4", &web1_again, &err), 0);
	assert_int_equal(web1_again, web1);
	hutch_ipam_pool_clear(&pool);
	/* a new pool gives a key the same address (derived from the key) */
	struct hutch_ipam_pool fresh = {.subnet = cidr("10.89.8.0/24")};
	uint32_t again;
	assert_int_equal(hutch_ipam_allocate(&fresh, "s-web-1", "c5", &again, &err), 0);
	assert_int_equal(again, web1);
	hutch_ipam_pool_clear(&fresh);
}

static void test_pool_full(void **st)
{
	/* a /29: .2-.6 usable */
	struct hutch_ipam_pool pool = {.subnet = cidr("10.89.9.0/29")};
	struct hutch_err *err = NULL;
	uint32_t a;
	assert_int_equal(hutch_ipam_allocate(&pool, "k", "c0", &a, &err), 0);
	hutch_ipam_release(&pool, "c0");
	for (int i = 1; i <= 4; i++) {
		char owner[16];
		snprintf(owner, sizeof(owner), "c%d", i);
		assert_int_equal(hutch_ipam_allocate(&pool, NULL, owner, &a, &err), 0);
	}
	/* full but for k's reservation: taken over rather than refused */
	assert_int_equal(hutch_ipam_allocate(&pool, NULL, "c5", &a, &err), 0);
	assert_int_equal(hutch_ipam_allocate(&pool, NULL, "c6", &a, &err), -1);
	assert_err_contains(&err, "10.89.9.0/29");
	for (size_t i = 0; i < pool.n; i++)
		assert_true(pool.entries[i].addr >= 0x0a590902 &&
			    pool.entries[i].addr <= 0x0a590906);
	hutch_ipam_pool_clear(&pool);
	struct hutch_ipam_pool tiny = {.subnet = cidr("10.89.9.0/31")};
	assert_int_equal(hutch_ipam_allocate(&tiny, NULL, "c", &a, &err), -1);
	assert_err_contains(&err, "no room");
}

/* ---- -p -------------------------------------------------------------------------- */

static struct hutch_port_map port(const char *s)
{
	struct hutch_port_map p;
	struct hutch_err *err = NULL;
	if (hutch_port_parse(s, &p, &err) < 0)
		fail_msg("%s: %s", s, err->msg);
	return p;
}

static void port_is(const char *in, const char *out)
{
	struct hutch_port_map p = port(in);
	char b[HUTCH_PORT_FORMAT_LEN];
	hutch_port_format(&p, b);
	assert_string_equal(b, out);
}

static void test_port_forms(void **st)
{
	port_is("8080:80", "8080:80/tcp");
	port_is("8080:80/udp", "8080:80/udp");
	port_is("127.0.0.1:8080:80", "127.0.0.1:8080:80/tcp");
	port_is("8000-8002:9000-9002/tcp", "8000-8002:9000-9002/tcp");
	port_is("80", "0:80/tcp"); /* any free host port */
	port_is("127.0.0.1::53/udp", "127.0.0.1:0:53/udp");
	struct hutch_port_map p = port("10.0.0.5:1-2:3-4");
	assert_int_equal(p.count, 2);
	assert_int_equal(p.host_port, 1);
	assert_int_equal(p.container_port, 3);
	assert_int_equal(p.host_ip, 0x0a000005);
	/* IPv6 host addresses, in brackets */
	port_is("[::]:8080:80", "[::]:8080:80/tcp");
	port_is("[fd00:1::5]:53:53/udp", "[fd00:1::5]:53:53/udp");
	port_is("[::]::80", "[::]:0:80/tcp");
	port_is("[2001:db8::1]:8000-8001:80-81", "[2001:db8::1]:8000-8001:80-81/tcp");
	p = port("[fd00::7]:1:2");
	assert_true(p.ipv6);
	assert_int_equal(p.host_ip, 0);
	assert_int_equal(p.host_ip6[0], 0xfd);
	assert_int_equal(p.host_ip6[15], 7);
	assert_false(port("[::]:1:2").host_ip6[15]);
	assert_false(port("1:2").ipv6);
}

static void port_bad(const char *in, const char *why)
{
	struct hutch_port_map p;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_port_parse(in, &p, &err), -1);
	if (!strstr(err->msg, in))
		fail_msg("the message does not name '%s': %s", in, err->msg);
	assert_err_contains(&err, why);
}

static void test_port_errors(void **st)
{
	port_bad("8080:80/sctp", "tcp or udp");
	port_bad("8080:0", "container port '0'");
	port_bad("8080:65536", "container port '65536'");
	port_bad("x:80", "host port 'x'");
	port_bad("8080:", "container port ''");
	port_bad("8000-8001:80", "host range 8000-8001 has 2 ports, the container range 1");
	port_bad("80-81", "host range of the same size");
	port_bad("9-8:80", "host port '9-8'");
	port_bad("1.2.3:8080:80", "'1.2.3' is no IPv4 address");
	port_bad("::1:8080:80", "in brackets");
	port_bad("[::1]:8080:80", "IPv6 has no route_localnet");
	port_bad("[::1]:8080:80", "publish on [::]");
	port_bad("[fd00::1:8080:80", "in brackets and followed by ':'");
	port_bad("[fd00::1]8080:80", "in brackets and followed by ':'");
	port_bad("[10.0.0.1]:8080:80", "'10.0.0.1' is no IPv6 address");
	port_bad("[fd00::1]:80", "HOST:CONTAINER or :CONTAINER");
	port_bad("[::]:1.2.3.4:8080:80", "in brackets");
	port_bad(":8080:80", "empty host address");
	port_bad("8080:80-", "container port '80-'");
	port_bad("8080:1-2-3", "container port '1-2-3'");
	port_bad("8080:000080", "container port '000080'");
}

/* ---- IPv6 ---------------------------------------------------------------------- */

static void test_ipv6(void **st)
{
	struct hutch_cidr6 c, d;
	struct hutch_err *err = NULL;
	char b[HUTCH_CIDR6_LEN];
	assert_int_equal(hutch_cidr6_parse("fd42:1:2:3::/64", &c, &err), 0);
	hutch_cidr6_format(&c, b);
	assert_string_equal(b, "fd42:1:2:3::/64");
	assert_int_equal(hutch_cidr6_parse("fd42::1/64", &c, &err), -1);
	assert_err_contains(&err, "host bits");
	assert_int_equal(hutch_cidr6_parse("10.0.0.0/8", &c, &err), -1);
	assert_err_contains(&err, "no IPv6 address");
	assert_int_equal(hutch_cidr6_parse("fd00::/129", &c, &err), -1);
	assert_err_contains(&err, "0-128");
	/* a ULA /64 from the id: the same for the same id, apart for another */
	assert_int_equal(hutch_ipam_choose_subnet6("abc", NULL, 0, &c, &err), 0);
	assert_int_equal(c.prefix, 64);
	assert_int_equal(c.addr[0], 0xfd);
	assert_int_equal(c.addr[6] | c.addr[7], 0);
	assert_int_equal(hutch_ipam_choose_subnet6("abc", NULL, 0, &d, &err), 0);
	assert_memory_equal(c.addr, d.addr, 16);
	assert_int_equal(hutch_ipam_choose_subnet6("abd", NULL, 0, &d, &err), 0);
	assert_memory_not_equal(c.addr, d.addr, 16);
	/* one that clashes with a route is passed over; a default route is no clash */
	struct hutch_cidr6 taken[2] = {c, {.prefix = 0}};
	taken[0].prefix = 48;
	assert_int_equal(hutch_ipam_choose_subnet6("abc", taken, 2, &d, &err), 0);
	assert_false(hutch_cidr6_overlap(&d, &taken[0]));
	/* a container's IPv6 address: its IPv4 address's offset */
	struct hutch_cidr s4 = cidr("10.89.3.0/24");
	char a6[46];
	assert_int_equal(hutch_cidr6_parse("fd42:1:2:3::/64", &c, &err), 0);
	hutch_ipam_addr6(&c, &s4, s4.addr + 7, a6);
	assert_string_equal(a6, "fd42:1:2:3::7");
	hutch_ipam_addr6(&c, &s4, hutch_ipam_gateway(&s4), a6);
	assert_string_equal(a6, "fd42:1:2:3::1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cidr_parse),
	    cmocka_unit_test(test_overlap),
	    cmocka_unit_test(test_choose_first_free),
	    cmocka_unit_test(test_choose_around_routes),
	    cmocka_unit_test(test_choose_none_left),
	    cmocka_unit_test(test_allocate_release),
	    cmocka_unit_test(test_stable_keys),
	    cmocka_unit_test(test_pool_full),
	    cmocka_unit_test(test_port_forms),
	    cmocka_unit_test(test_port_errors),
	    cmocka_unit_test(test_ipv6),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
