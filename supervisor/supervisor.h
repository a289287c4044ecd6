/* The supervisor: stacks of services read from a stack file (docs/stack-file.md).
 * This is the module's public header; the model behind struct hutch_stack is
 * private to supervisor/ (supervisor/stack.h). */
#pragma once
#include <stddef.h>

#include "common/err.h"

struct hutch_stack;

/* Read the stack file at path (INI, docs/stack-file.md) with its .env and env
 * files into a validated model, before anything is started. Every problem found
 * is reported, one per line as "FILE:LINE: KEY: what is wrong" (a compiler's
 * way), in one err; nothing is returned then. Interpolation reads the process's
 * environment. Warnings (an unset variable read as "") are kept in the model:
 * hutch_stack_warnings. */
int hutch_stack_load(const char *path, struct hutch_stack **out, struct hutch_err **err);
void hutch_stack_free(struct hutch_stack *stack);

const char *hutch_stack_name(const struct hutch_stack *stack);
/* Warnings found while loading, each "FILE:LINE: KEY: text"; *n gets the count. */
const char *const *hutch_stack_warnings(const struct hutch_stack *stack, size_t *n);
