/* The dependency graph of a stack: start order, cycles, what a start needs. */
#include <string.h>

#include "common/util.h"
#include "supervisor/stack.h"

ssize_t stack_service_index(const struct hutch_stack *stack, const char *name)
{
	for (size_t i = 0; i < stack->n_services; i++)
		if (!strcmp(stack->services[i].name, name))
			return (ssize_t)i;
	return -1;
}

enum { WHITE, GRAY, BLACK };

struct frame {
	size_t service, next_dep;
};

static void report_cycle(const struct hutch_stack *stack, struct stack_diag *diag,
			 const struct frame *frames, size_t depth, size_t from,
			 const struct stack_dep *closing)
{
	/* frames[from..depth) is the path from the service the edge goes back to */
	size_t len = 0;
	for (size_t i = from; i < depth; i++)
		len += strlen(stack->services[frames[i].service].name) + 4;
	len += strlen(closing->service) + 1;
	char *text = xcalloc(1, len);
	for (size_t i = from; i < depth; i++) {
		strcat(text, stack->services[frames[i].service].name);
		strcat(text, " -> ");
	}
	strcat(text, closing->service);
	stack_diag_add(diag, closing->line,
		       "%s:%d: depends_on: a dependency cycle: %s (no service can start first)",
		       stack->file, closing->line, text);
	free(text);
}

int stack_graph_order(struct hutch_stack *stack, struct stack_diag *diag)
{
	size_t n = stack->n_services, n_order = 0, cycles = 0;
	unsigned char *color = xcalloc(n, 1);
	size_t *pos = xcalloc(n, sizeof(*pos)); /* a gray service's frame */
	struct frame *frames = xcalloc(n, sizeof(*frames));
	size_t *order = xcalloc(n, sizeof(*order));
	/* Depth first from each service in the file's order; a service is
	 * appended once all it depends on is, so the order is a start order and
	 * stable for a given file. Iterative: a chain of thousands of services
	 * must not run the C stack out. */
	for (size_t root = 0; root < n; root++) {
		if (color[root] != WHITE)
			continue;
		size_t depth = 0;
		frames[depth++] = (struct frame){root, 0};
		color[root] = GRAY;
		pos[root] = 0;
		while (depth > 0) {
			struct frame *top = &frames[depth - 1];
			const struct stack_service *svc = &stack->services[top->service];
			if (top->next_dep < svc->n_deps) {
				const struct stack_dep *dep = &svc->deps[top->next_dep++];
				size_t u = dep->index;
				if (u >= n) /* an unknown service, reported already */
					continue;
				if (color[u] == WHITE) {
					color[u] = GRAY;
					pos[u] = depth;
					frames[depth++] = (struct frame){u, 0};
				} else if (color[u] == GRAY && cycles++ < STACK_ERRORS_MAX) {
					report_cycle(stack, diag, frames, depth, pos[u], dep);
				}
				continue;
			}
			color[top->service] = BLACK;
			order[n_order++] = top->service;
			depth--;
		}
	}
	free(color);
	free(pos);
	free(frames);
	if (cycles) {
		free(order);
		return -1;
	}
	free(stack->order);
	stack->order = order;
	return 0;
}

int stack_graph_needed(const struct hutch_stack *stack, const char *const *names, size_t n_names,
		       size_t **out, size_t *n, struct hutch_err **err)
{
	size_t count = stack->n_services;
	_cleanup_free_ bool *need = xcalloc(count, sizeof(*need));
	_cleanup_free_ size_t *todo = xcalloc(count, sizeof(*todo));
	size_t n_todo = 0;
	for (size_t i = 0; i < n_names; i++) {
		ssize_t idx = stack_service_index(stack, names[i]);
		if (idx < 0) {
			_cleanup_free_ char *shown = printable(names[i], strlen(names[i]));
			return hutch_fail(err, 0, "stack %s has no service '%s' (see %s)",
					  stack->name, shown, stack->file);
		}
		if (!need[idx]) {
			need[idx] = true;
			todo[n_todo++] = (size_t)idx;
		}
	}
	while (n_todo > 0) {
		const struct stack_service *svc = &stack->services[todo[--n_todo]];
		for (size_t d = 0; d < svc->n_deps; d++) {
			size_t u = svc->deps[d].index;
			if (!need[u]) {
				need[u] = true;
				todo[n_todo++] = u;
			}
		}
	}
	size_t *result = xcalloc(count, sizeof(*result)), k = 0;
	for (size_t i = 0; i < count; i++)
		if (need[stack->order[i]])
			result[k++] = stack->order[i];
	*out = result;
	*n = k;
	return 0;
}
