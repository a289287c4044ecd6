/* common/strbuf: the growable string interpolation, the Containerfile reader and
 * the stack writer build their text in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/strbuf.h"
#include "common/util.h"

static void test_empty_steal_is_empty_string(void **state)
{
	(void)state;
	struct strbuf b = {0};
	char *s = strbuf_steal(&b);
	assert_string_equal(s, "");
	free(s);
	assert_null(b.s);
	strbuf_fini(&b); /* nothing to free: fine */
	/* adding nothing still gives a NUL-terminated text */
	strbuf_add(&b, "", 0);
	assert_non_null(b.s);
	assert_string_equal(b.s, "");
	strbuf_fini(&b);
	assert_null(b.s);
	assert_int_equal(b.len, 0);
}

static void test_pieces_in_order(void **state)
{
	(void)state;
	struct strbuf b = {0};
	strbuf_adds(&b, "a=");
	strbuf_add(&b, "123456", 3);
	strbuf_addc(&b, ';');
	strbuf_addf(&b, "%s-%d", "x", 42);
	assert_string_equal(b.s, "a=123;x-42");
	assert_int_equal(b.len, strlen("a=123;x-42"));
	char *s = strbuf_steal(&b);
	assert_string_equal(s, "a=123;x-42");
	assert_null(b.s);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	free(s);
}

/* Many small appends and a formatted piece past the stack buffer of addf. */
static void test_grows(void **state)
{
	(void)state;
	struct strbuf b = {0};
	for (int i = 0; i < 100000; i++)
		strbuf_addc(&b, (char)('a' + i % 26));
	assert_int_equal(b.len, 100000);
	assert_int_equal(strlen(b.s), 100000);
	assert_true(b.cap > b.len);
	for (int i = 0; i < 100000; i++)
		assert_int_equal(b.s[i], 'a' + i % 26);
	char big[5000];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	strbuf_addf(&b, "[%s]", big);
	assert_int_equal(b.len, 100000 + 5001);
	assert_int_equal(b.s[100000], '[');
	assert_int_equal(b.s[100000 + 4999], 'z');
	assert_int_equal(b.s[100000 + 5000], ']');
	assert_int_equal(b.s[b.len], '\0');
	strbuf_fini(&b);
}

/* Bytes with NULs inside are kept: len counts them. */
static void test_binary(void **state)
{
	(void)state;
	struct strbuf b = {0};
	strbuf_add(&b, "a\0b", 3);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.s, "a\0b", 4);
	strbuf_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty_steal_is_empty_string),
	    cmocka_unit_test(test_pieces_in_order),
	    cmocka_unit_test(test_grows),
	    cmocka_unit_test(test_binary),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
