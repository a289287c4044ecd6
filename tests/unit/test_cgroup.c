/* runtime/cgroup.c: what memory.swap.max gets, as Docker's --memory-swap means it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "runtime/runtime_internal.h"

#define MiB (1024 * 1024LL)

static int64_t swap_for(int64_t memory, int64_t memory_swap)
{
	struct hutch_resources r = {.memory_max = memory, .memory_swap_max = memory_swap};
	return cgroup_swap_max(&r);
}

static void test_swap_max(void **state)
{
	/* --memory alone: as much swap as memory (memory-swap = 2 x memory) */
	assert_int_equal(swap_for(64 * MiB, 0), 64 * MiB);
	assert_int_equal(swap_for(6 * MiB, 0), 6 * MiB);
	/* --memory-swap equal to --memory: no swap */
	assert_int_equal(swap_for(64 * MiB, 64 * MiB), 0);
	/* --memory-swap is memory + swap */
	assert_int_equal(swap_for(32 * MiB, 48 * MiB), 16 * MiB);
	assert_int_equal(swap_for(1024 * MiB, 3072 * MiB), 2048 * MiB);
	/* below --memory (the CLI refuses it): no swap rather than a negative one */
	assert_int_equal(swap_for(64 * MiB, 32 * MiB), 0);
	/* -1: unlimited, memory.swap.max keeps the kernel's "max" */
	assert_int_equal(swap_for(64 * MiB, -1), -1);
	/* no memory limit: swap is left alone */
	assert_int_equal(swap_for(0, 0), -1);
	assert_int_equal(swap_for(0, -1), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_swap_max),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
