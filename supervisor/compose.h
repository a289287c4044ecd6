/* Compose files (docs/compose.md): private to supervisor/. compose_yaml.c reads
 * YAML into a tree with places; compose.c turns the tree into the keys of the
 * INI reader (stack.h: stack_build), so both formats share one code path. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

/* Bounds on what a compose file may make the reader do: real ones are a few
 * hundred nodes and a few levels deep. */
#define YAML_NODES_MAX 100000
#define YAML_DEPTH_MAX 64

enum ynode_kind { Y_NULL, Y_SCALAR, Y_SEQ, Y_MAP };

struct ynode {
	enum ynode_kind kind;
	char *text; /* Y_SCALAR, Y_NULL: as written */
	size_t len;
	bool plain;	     /* not quoted: may be a number, a boolean or null */
	char *tag;	     /* !reset, !override */
	char *anchor;	     /* while it is being read */
	struct ynode **kids; /* a list's items; a mapping's keys and values in turn */
	size_t n;
	size_t weight; /* nodes below, aliases counted as what they stand for */
	const char *file;
	int line, col;
};

/* Every node of a load, shared through aliases and merges, freed at once. */
struct yarena {
	struct ynode **nodes;
	size_t n;
};

struct yaml_error {
	const char *file;
	int line, col;
	char *msg; /* allocated */
};

struct ynode *ynode_new(struct yarena *a, enum ynode_kind kind, const char *file, int line,
			int col);
void yarena_free(struct yarena *a);
/* The value of key in a mapping, or NULL. */
const struct ynode *ymap_get(const struct ynode *map, const char *key);
/* One YAML document into *root (NULL for an empty one). -1 with e filled. */
int yaml_read(struct yarena *arena, const char *file, const char *text, size_t len,
	      struct ynode **root, struct yaml_error *e);
/* over merged onto base by the compose spec's rules; call with depth 0, key "",
 * in_service false on the two files' roots. */
struct ynode *yaml_merge(struct yarena *a, struct ynode *base, struct ynode *over, int depth,
			 const char *key, bool in_service);

struct hutch_stack;
struct hutch_stack_load_opts;
struct hutch_err;
/* hutch_stack_load_files for compose files, with the environment given. */
int compose_load_env(const char *const *paths, size_t n, const struct hutch_stack_load_opts *opts,
		     char **envp, struct hutch_stack **out, struct hutch_err **err);
