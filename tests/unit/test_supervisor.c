/* The supervisor's pure parts: the control protocol's request parser
 * (docs/api.md), container labels read back, and the config hash that tells
 * `hutch up` which services changed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "supervisor/sup_internal.h"

static int parse(const char *line, struct sup_request *r, char **msg)
{
	return sup_parse_request(line, strlen(line), r, msg);
}

static void test_requests_parse(void **st)
{
	struct sup_request r;
	char *msg = NULL;
	assert_int_equal(parse("{\"cmd\":\"status\"}", &r, &msg), 0);
	assert_int_equal(r.cmd, SUP_CMD_STATUS);
	assert_int_equal(r.n_services, 0);
	assert_true(r.timeout_ns == -1);
	sup_request_free(&r);

	assert_int_equal(
	    parse(" {\"cmd\":\"stop\",\"services\":[\"db\",\"web\"],\"x\":1}\r\n", &r, &msg), 0);
	assert_int_equal(r.cmd, SUP_CMD_STOP);
	assert_int_equal(r.n_services, 2);
	assert_string_equal(r.services[0], "db");
	assert_string_equal(r.services[1], "web");
	sup_request_free(&r);

	assert_int_equal(parse("{\"cmd\":\"down\",\"timeout\":1.5}", &r, &msg), 0);
	assert_int_equal(r.cmd, SUP_CMD_DOWN);
	assert_true(r.timeout_ns == 1500000000LL);
	sup_request_free(&r);
	assert_int_equal(parse("{\"cmd\":\"down\",\"timeout\":0}", &r, &msg), 0);
	assert_true(r.timeout_ns == 0);
	sup_request_free(&r);

	const char *ok[] = {"start", "restart", "subscribe", "wait", "ready", "up"};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		char *line = xasprintf("{\"cmd\":\"%s\",\"services\":[\"a\"]}", ok[i]);
		assert_int_equal(parse(line, &r, &msg), 0);
		sup_request_free(&r);
		free(line);
	}
}

static void expect_error(const char *line, size_t len, const char *want)
{
	if (len == (size_t)-1)
		len = strlen(line);
	struct sup_request r;
	char *msg = NULL;
	assert_int_equal(sup_parse_request(line, len, &r, &msg), -1);
	assert_non_null(msg);
	if (!strstr(msg, want))
		fail_msg("'%s': got '%s', want '%s'", line, msg, want);
	assert_null(r.services);
	free(msg);
}

static void test_requests_refused(void **st)
{
	expect_error("", 0, "not a JSON object");
	expect_error("{", (size_t)-1, "not a JSON object");
	expect_error("[1]", (size_t)-1, "not a JSON object");
	expect_error("\"status\"", (size_t)-1, "not a JSON object");
	expect_error("{} {}", (size_t)-1, "text after the JSON object");
	expect_error("{}", (size_t)-1, "no \"cmd\" string");
	expect_error("{\"cmd\":7}", (size_t)-1, "no \"cmd\" string");
	expect_error("{\"cmd\":\"nope\"}", (size_t)-1,
		     "unknown cmd 'nope' (status, start, stop, restart, down, subscribe, wait, "
		     "ready, up)");
	expect_error("{\"cmd\":\"st\\u0000op\"}", (size_t)-1, "unknown cmd 'st");
	expect_error("{\"cmd\":\"status\"}\0", 17, "NUL byte");
	expect_error("{\"cmd\":\"stop\"}", (size_t)-1, "stop needs \"services\"");
	expect_error("{\"cmd\":\"stop\",\"services\":[]}", (size_t)-1, "stop needs \"services\"");
	expect_error("{\"cmd\":\"stop\",\"services\":\"db\"}", (size_t)-1, "a list of names");
	expect_error("{\"cmd\":\"stop\",\"services\":[\"db\",3]}", (size_t)-1, "a list of names");
	expect_error("{\"cmd\":\"stop\",\"services\":[\"\"]}", (size_t)-1, "a list of names");
	expect_error("{\"cmd\":\"down\",\"timeout\":\"5\"}", (size_t)-1, "number of seconds");
	expect_error("{\"cmd\":\"down\",\"timeout\":-1}", (size_t)-1, "0 to 31536000");
	expect_error("{\"cmd\":\"down\",\"timeout\":1e300}", (size_t)-1, "0 to 31536000");
	char *big = xcalloc(SUP_REQUEST_MAX + 2, 1);
	memset(big, ' ', SUP_REQUEST_MAX + 1);
	expect_error(big, SUP_REQUEST_MAX + 1, "longer than");
	free(big);
}

static void test_labels(void **st)
{
	char *l[] = {"hutch.stack=shop", "hutch.service=db", "hutch.replica=2", "other=x"};
	const char *svc;
	unsigned rep;
	assert_int_equal(sup_labels_match(l, 4, "shop", &svc, &rep), 1);
	assert_string_equal(svc, "db");
	assert_int_equal(rep, 2);
	assert_int_equal(sup_labels_match(l, 4, "shopx", &svc, &rep), 0);
	assert_int_equal(sup_labels_match(l, 4, "sho", &svc, &rep), 0);
	assert_int_equal(sup_labels_match(l, 2, "shop", &svc, &rep), 0);
	const char *bad[] = {"0", "-1", "+1", " 1", "01", "1x", "", "1001", "99999999999999999999"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *r = xasprintf("hutch.replica=%s", bad[i]);
		char *v[] = {"hutch.stack=shop", "hutch.service=db", r};
		if (sup_labels_match(v, 3, "shop", &svc, &rep))
			fail_msg("replica '%s' taken", bad[i]);
		free(r);
	}
	char *empty[] = {"hutch.stack=shop", "hutch.service=", "hutch.replica=1"};
	assert_int_equal(sup_labels_match(empty, 3, "shop", &svc, &rep), 0);
	assert_string_equal(hutch_label_get(l, 4, "other"), "x");
	assert_null(hutch_label_get(l, 4, "hutch"));
	struct stack_service db = {.name = "db"};
	char *name = sup_container_name("shop", &db, 3);
	assert_string_equal(name, "shop-db-3");
	free(name);
	/* container_name wins */
	struct stack_option cn = {.key = "container_name", .kind = STACK_OPT_TEXT, .text = "my-db"};
	db.options = &cn;
	db.n_options = 1;
	name = sup_container_name("shop", &db, 1);
	assert_string_equal(name, "my-db");
	free(name);
}

static void test_config_hash(void **st)
{
	char *cmd[] = {"sleep", "1000"}, *cmd2[] = {"sleep 1000"}, *cmd3[] = {"sleep", "100"};
	char *env[] = {"A=1"}, *env2[] = {"A=2"};
	struct stack_option opt = {.key = "memory", .kind = STACK_OPT_TEXT, .text = "64m"};
	struct stack_service a = {.name = "db",
				  .image = "bb",
				  .command = cmd,
				  .n_command = 2,
				  .env = env,
				  .n_env = 1,
				  .replicas = 1,
				  .options = &opt,
				  .n_options = 1};
	char h1[17], h2[17];
	sup_config_hash(&a, "id1", h1);
	assert_int_equal(strlen(h1), 16);
	sup_config_hash(&a, "id1", h2);
	assert_string_equal(h1, h2);
	/* what does not change a container does not change the hash */
	struct stack_service b = a;
	b.replicas = 5;
	b.line = 99;
	sup_config_hash(&b, "id1", h2);
	assert_string_equal(h1, h2);
	/* what does, does */
	sup_config_hash(&a, "id2", h2);
	assert_string_not_equal(h1, h2);
	b = a;
	b.command = cmd2;
	b.n_command = 1;
	sup_config_hash(&b, "id1", h2);
	assert_string_not_equal(h1, h2);
	b = a;
	b.command = cmd3;
	sup_config_hash(&b, "id1", h2);
	assert_string_not_equal(h1, h2);
	b = a;
	b.env = env2;
	sup_config_hash(&b, "id1", h2);
	assert_string_not_equal(h1, h2);
	b = a;
	b.command = NULL;
	b.n_command = 0;
	sup_config_hash(&b, "id1", h2);
	assert_string_not_equal(h1, h2);
	struct stack_option opt2 = opt;
	opt2.text = "65m";
	b = a;
	b.options = &opt2;
	sup_config_hash(&b, "id1", h2);
	assert_string_not_equal(h1, h2);
	b = a;
	b.restart = STACK_RESTART_ALWAYS;
	sup_config_hash(&b, "id1", h2);
	assert_string_not_equal(h1, h2);
	b = a;
	b.health.kind = STACK_HEALTH_TCP;
	b.health.port = 80;
	sup_config_hash(&b, "id1", h2);
	assert_string_not_equal(h1, h2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_requests_parse),
	    cmocka_unit_test(test_requests_refused),
	    cmocka_unit_test(test_labels),
	    cmocka_unit_test(test_config_hash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
