/* runtime/ocispec.c: linux.netDevices, the interface names the kernel takes
 * and the field read into the config, refused by its path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "runtime/runtime_internal.h"

static void interface_names(void **state)
{
	const char *good[] = {"eth0", "a", "veth-1.2_x", "abcdefghijklmno", "lo", "é"};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		if (!oci_ifname_valid(good[i]))
			fail_msg("'%s' refused", good[i]);
	const char *bad[] = {"",       ".", "..", "abcdefghijklmnop", "a/b", "a b", "a\tb", "a\nb",
			     "eth0:1", " ", "/"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (oci_ifname_valid(bad[i]))
			fail_msg("'%s' taken", bad[i]);
}

#define CFG(DEVICES)                                                                               \
	"{\"ociVersion\": \"1.2.0\", \"root\": {\"path\": \"rootfs\"}, \"process\": {\"args\": "   \
	"[\"sh\"], \"cwd\": \"/\"}, \"linux\": {\"netDevices\": " DEVICES "}}"

static void devices_read(void **state)
{
	const char *text = CFG("{\"eth0\": {\"name\": \"in0\"}, \"veth9\": {}, \"x\": null}");
	struct hutch_oci_config *c = NULL;
	struct hutch_err *err = NULL;
	if (hutch_oci_config_parse(text, strlen(text), "/b", &c, &err) < 0)
		fail_msg("refused: %s", err->msg);
	/* an entry that is null is as if absent, as any other field */
	assert_int_equal(c->n_net_devices, 2);
	assert_string_equal(c->net_devices[0].host_name, "eth0");
	assert_string_equal(c->net_devices[0].name, "in0");
	assert_string_equal(c->net_devices[1].host_name, "veth9");
	assert_string_equal(c->net_devices[1].name, "veth9");
	hutch_oci_config_free(c);
}

static void refused(const char *text, const char *needle)
{
	struct hutch_oci_config *c = NULL;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_oci_config_parse(text, strlen(text), "/b", &c, &err), -1);
	assert_null(c);
	if (!strstr(err->msg, needle))
		fail_msg("'%s' does not name '%s'", err->msg, needle);
	hutch_err_free(&err);
}

static void devices_refused_by_path(void **state)
{
	refused(CFG("[]"), "linux.netDevices");
	refused(CFG("{\"eth0\": \"in0\"}"), "linux.netDevices.eth0");
	refused(CFG("{\"a/b\": {}}"), "linux.netDevices.a/b: 'a/b' is not a network interface");
	refused(CFG("{\"eth0\": {\"name\": \"..\"}}"), "linux.netDevices.eth0.name: '..'");
	refused(CFG("{\"eth0\": {\"name\": \"abcdefghijklmnop\"}}"),
		"linux.netDevices.eth0.name: 'abcdefghijklmnop'");
	refused(CFG("{\"eth0\": {\"name\": 1}}"), "linux.netDevices.eth0.name");
	refused(CFG("{\"a\": {\"name\": \"n\"}, \"b\": {\"name\": \"n\"}}"),
		"linux.netDevices.b: the name 'n' in the container is linux.netDevices.a's too");
	refused(CFG("{\"a\": {}, \"b\": {\"name\": \"a\"}}"), "linux.netDevices.b: the name 'a'");
	/* foreign text is shown escaped */
	refused(CFG("{\"a\\u001b/b\": {}}"), "'a\\x1b/b' is not a network interface name");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(interface_names),
	    cmocka_unit_test(devices_read),
	    cmocka_unit_test(devices_refused_by_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
