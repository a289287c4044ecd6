/* YAML for compose files: libyaml's events into a tree of our own, with each
 * node's file, line and column, anchors and aliases (bounded: an alias counts
 * the nodes it stands for, so a "billion laughs" file is refused at once, not
 * expanded), merge keys (<<: *defaults, or a list of them), and the compose
 * spec's rules for merging override files. */
#include <string.h>
#include <yaml.h>

#include "common/util.h"
#include "supervisor/compose.h"

struct ynode *ynode_new(struct yarena *a, enum ynode_kind kind, const char *file, int line, int col)
{
	struct ynode *n = xcalloc(1, sizeof(*n));
	n->kind = kind;
	n->file = file;
	n->line = line;
	n->col = col;
	n->weight = 1;
	a->nodes = xrealloc(a->nodes, (a->n + 1) * sizeof(*a->nodes));
	a->nodes[a->n++] = n;
	return n;
}

void yarena_free(struct yarena *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->nodes[i]->text);
		free(a->nodes[i]->tag);
		free(a->nodes[i]->anchor); /* of a node an error left unfinished */
		free(a->nodes[i]->kids);
		free(a->nodes[i]);
	}
	free(a->nodes);
	*a = (struct yarena){0};
}

static void add_kid(struct ynode *p, struct ynode *k)
{
	p->kids = xrealloc(p->kids, (p->n + 1) * sizeof(*p->kids));
	p->kids[p->n++] = k;
	p->weight += k->weight;
}

const struct ynode *ymap_get(const struct ynode *map, const char *key)
{
	if (!map || map->kind != Y_MAP)
		return NULL;
	for (size_t i = 0; i + 1 < map->n; i += 2)
		if (map->kids[i]->kind == Y_SCALAR && !strcmp(map->kids[i]->text, key))
			return map->kids[i + 1];
	return NULL;
}

static bool is_null_text(const char *s)
{
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

struct anchor {
	char *name;
	struct ynode *node;
};

struct builder {
	struct yarena *arena;
	const char *file;
	struct ynode *stack[YAML_DEPTH_MAX + 1];
	size_t depth;
	struct anchor *anchors;
	size_t n_anchors;
	size_t expanded; /* nodes, aliases counted as what they stand for */
	struct ynode *root;
	int docs;
};

static struct ynode *find_anchor(struct builder *b, const char *name)
{
	/* the latest of a name: YAML lets an anchor be defined again */
	for (size_t i = b->n_anchors; i > 0; i--)
		if (!strcmp(b->anchors[i - 1].name, name))
			return b->anchors[i - 1].node;
	return NULL;
}

static void set_anchor(struct builder *b, const unsigned char *name, struct ynode *n)
{
	if (!name)
		return;
	b->anchors = xrealloc(b->anchors, (b->n_anchors + 1) * sizeof(*b->anchors));
	b->anchors[b->n_anchors++] = (struct anchor){xstrdup((const char *)name), n};
}

/* A map's keys are plain text, each once; "<<" merges the maps it names. */
/* Keys sorted by text, then by place: n log n, so a mapping of many keys (an
 * environment of thousands) is checked without a quadratic time. */
static struct ynode **sort_keys;

static int key_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	int c = strcmp(sort_keys[x]->text, sort_keys[y]->text);
	if (c)
		return c;
	return x < y ? -1 : x > y;
}

/* For pairs (key, value) in kids: keep[i] for the first pair of each key. */
static void first_of_each(struct ynode **kids, size_t n_pairs, bool *keep, size_t *dup_of)
{
	size_t *idx = xcalloc(n_pairs + 1, sizeof(*idx));
	for (size_t i = 0; i < n_pairs; i++)
		idx[i] = 2 * i;
	sort_keys = kids;
	qsort(idx, n_pairs, sizeof(*idx), key_cmp);
	sort_keys = NULL;
	size_t run_first = 0;
	for (size_t i = 0; i < n_pairs; i++) {
		bool first = i == 0 || strcmp(kids[idx[i]]->text, kids[idx[i - 1]]->text);
		if (first)
			run_first = idx[i] / 2;
		keep[idx[i] / 2] = first;
		if (dup_of)
			dup_of[idx[i] / 2] = run_first;
	}
	free(idx);
}

/* A map's keys are plain text, each once; "<<" merges the maps it names. */
static int finish_map(struct builder *b, struct ynode *m, char **why, struct ynode **at)
{
	bool merges = false;
	size_t pairs = m->n / 2;
	for (size_t i = 0; i + 1 < m->n; i += 2) {
		struct ynode *k = m->kids[i];
		if (k->kind != Y_SCALAR && k->kind != Y_NULL) {
			*at = k;
			*why = xstrdup("a key is a plain text here, not a list or a mapping");
			return -1;
		}
		merges |= k->kind == Y_SCALAR && k->plain && !strcmp(k->text, "<<");
	}
	bool *keep = xcalloc(pairs + 1, sizeof(*keep));
	size_t *dup_of = xcalloc(pairs + 1, sizeof(*dup_of));
	first_of_each(m->kids, pairs, keep, dup_of);
	for (size_t i = 0; i < pairs; i++) {
		struct ynode *k = m->kids[2 * i];
		if (keep[i] || (k->plain && !strcmp(k->text, "<<")))
			continue;
		*at = k;
		_cleanup_free_ char *shown = printable(k->text, strlen(k->text));
		*why = xasprintf("'%s' is given twice in this mapping (first at line %d): keep one",
				 shown, m->kids[2 * dup_of[i]]->line);
		free(keep);
		free(dup_of);
		return -1;
	}
	free(keep);
	free(dup_of);
	if (!merges)
		return 0;
	/* the map's own keys, then those of each merged map, the first of a key
	 * winning (YAML's merge key: the map's own, then the merged in order) */
	struct ynode **kids = m->kids;
	size_t n = m->n;
	struct ynode **all = NULL;
	size_t n_all = 0;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i + 1 < n; i += 2) {
			bool is_merge = kids[i]->plain && !strcmp(kids[i]->text, "<<");
			if (pass == 0 && !is_merge) {
				all = xrealloc(all, (n_all + 2) * sizeof(*all));
				all[n_all++] = kids[i];
				all[n_all++] = kids[i + 1];
			}
			if (pass == 0 || !is_merge)
				continue;
			struct ynode *v = kids[i + 1];
			struct ynode *one[1] = {v};
			struct ynode **srcs = v->kind == Y_SEQ ? v->kids : one;
			size_t n_srcs = v->kind == Y_SEQ ? v->n : 1;
			for (size_t s = 0; s < n_srcs; s++) {
				if (srcs[s]->kind != Y_MAP) {
					*at = srcs[s];
					*why =
					    xstrdup("a merge key (<<) takes a mapping or a list of "
						    "mappings, like <<: *defaults");
					free(all);
					return -1;
				}
				all = xrealloc(all, (n_all + srcs[s]->n) * sizeof(*all));
				memcpy(all + n_all, srcs[s]->kids, srcs[s]->n * sizeof(*all));
				n_all += srcs[s]->n;
			}
		}
	keep = xcalloc(n_all / 2 + 1, sizeof(*keep));
	first_of_each(all, n_all / 2, keep, NULL);
	m->kids = NULL;
	m->n = 0;
	m->weight = 1;
	for (size_t i = 0; i < n_all / 2; i++)
		if (keep[i]) {
			add_kid(m, all[2 * i]);
			add_kid(m, all[2 * i + 1]);
		}
	free(keep);
	free(all);
	free(kids);
	return 0;
}

static int fail_at(struct yaml_error *e, const char *file, int line, int col, char *why)
{
	e->file = file;
	e->line = line;
	e->col = col;
	e->msg = why;
	return -1;
}

static int add_node(struct builder *b, struct ynode *n, struct yaml_error *e)
{
	if (b->depth == 0) {
		if (b->root)
			return fail_at(e, b->file, n->line, n->col,
				       xstrdup("more than one document: a compose file is one"));
		b->root = n;
		return 0;
	}
	add_kid(b->stack[b->depth - 1], n);
	return 0;
}

int yaml_read(struct yarena *arena, const char *file, const char *text, size_t len,
	      struct ynode **root, struct yaml_error *e)
{
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser))
		abort();
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	struct builder b = {.arena = arena, .file = file};
	int rc = -1;
	*root = NULL;
	*e = (struct yaml_error){0};
	for (;;) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&parser, &ev)) {
			fail_at(e, file, (int)parser.problem_mark.line + 1,
				(int)parser.problem_mark.column + 1,
				xasprintf("not YAML: %s%s%s", parser.problem ? parser.problem : "",
					  parser.context ? " " : "",
					  parser.context ? parser.context : ""));
			break;
		}
		int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
		bool done = ev.type == YAML_STREAM_END_EVENT;
		int r = 0;
		if (++b.expanded > YAML_NODES_MAX)
			r = fail_at(e, file, line, col,
				    xasprintf("more than %d YAML nodes: that is not a compose file",
					      YAML_NODES_MAX));
		switch (r ? YAML_NO_EVENT : ev.type) {
		case YAML_DOCUMENT_START_EVENT:
			if (++b.docs > 1)
				r = fail_at(e, file, line, col,
					    xstrdup("more than one document (---): a compose file "
						    "is one"));
			break;
		case YAML_SCALAR_EVENT: {
			const char *t = (const char *)ev.data.scalar.value;
			bool plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
			struct ynode *n = ynode_new(
			    arena,
			    plain && !ev.data.scalar.tag && is_null_text(t) ? Y_NULL : Y_SCALAR,
			    file, line, col);
			n->text = xstrdup(t);
			n->len = ev.data.scalar.length;
			n->plain = plain;
			if (ev.data.scalar.tag)
				n->tag = xstrdup((const char *)ev.data.scalar.tag);
			if (strlen(t) != n->len)
				r = fail_at(e, file, line, col,
					    xstrdup("a NUL character in a value"));
			else {
				set_anchor(&b, ev.data.scalar.anchor, n);
				r = add_node(&b, n, e);
			}
			break;
		}
		case YAML_ALIAS_EVENT: {
			struct ynode *n = find_anchor(&b, (const char *)ev.data.alias.anchor);
			if (!n) {
				_cleanup_free_ char *shown =
				    printable((const char *)ev.data.alias.anchor,
					      strlen((const char *)ev.data.alias.anchor));
				r = fail_at(
				    e, file, line, col,
				    xasprintf("*%s: no anchor &%s before it", shown, shown));
				break;
			}
			b.expanded += n->weight;
			if (b.expanded > YAML_NODES_MAX) {
				r = fail_at(e, file, line, col,
					    xasprintf("aliases here expand to more than %d nodes: "
						      "refused (a \"billion laughs\" file)",
						      YAML_NODES_MAX));
				break;
			}
			r = add_node(&b, n, e);
			break;
		}
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT: {
			if (b.depth >= YAML_DEPTH_MAX) {
				r = fail_at(e, file, line, col,
					    xasprintf("nested more than %d deep", YAML_DEPTH_MAX));
				break;
			}
			bool map = ev.type == YAML_MAPPING_START_EVENT;
			struct ynode *n = ynode_new(arena, map ? Y_MAP : Y_SEQ, file, line, col);
			const yaml_char_t *tag =
			    map ? ev.data.mapping_start.tag : ev.data.sequence_start.tag;
			if (tag)
				n->tag = xstrdup((const char *)tag);
			/* kept to register at its end: an alias inside its own
			 * anchor is refused as unknown, so the tree has no cycle */
			const yaml_char_t *anchor =
			    map ? ev.data.mapping_start.anchor : ev.data.sequence_start.anchor;
			n->anchor = anchor ? xstrdup((const char *)anchor) : NULL;
			b.stack[b.depth++] = n;
			break;
		}
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT: {
			struct ynode *n = b.stack[--b.depth];
			if (n->kind == Y_MAP) {
				char *why = NULL;
				struct ynode *at = NULL;
				if (finish_map(&b, n, &why, &at) < 0) {
					r = fail_at(e, file, at->line, at->col, why);
					break;
				}
			}
			if (n->anchor) {
				set_anchor(&b, (const unsigned char *)n->anchor, n);
				free(n->anchor);
				n->anchor = NULL;
			}
			r = add_node(&b, n, e);
			break;
		}
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (r < 0)
			break;
		if (done) {
			rc = 0;
			break;
		}
	}
	for (size_t i = 0; i < b.n_anchors; i++)
		free(b.anchors[i].name);
	free(b.anchors);
	yaml_parser_delete(&parser);
	if (rc == 0)
		*root = b.root;
	return rc;
}

/* ---- merging override files (the compose spec's merge rules) --------------- */

static const char *const appended[] = {
    "ports",	"expose",	"dns",	 "dns_search", "dns_opt",  "cap_add",
    "cap_drop", "security_opt", "tmpfs", "env_file",   "profiles", "extra_hosts",
};
/* lists that are mappings in another spelling: merged by their key */
static const char *const keyed[] = {"environment", "labels", "depends_on", "networks"};

static bool in(const char *s, const char *const *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s, set[i]))
			return true;
	return false;
}

static bool has_tag(const struct ynode *n, const char *tag)
{
	/* !reset and !override are local tags: libyaml gives them as written */
	return n->tag && !strcmp(n->tag, tag);
}

/* "K=V" items (or K alone) as a mapping: environment and labels; depends_on
 * and networks as a mapping of names to null. */
static struct ynode *as_map(struct yarena *a, struct ynode *seq)
{
	struct ynode *m = ynode_new(a, Y_MAP, seq->file, seq->line, seq->col);
	for (size_t i = 0; i < seq->n; i++) {
		struct ynode *it = seq->kids[i];
		if (it->kind != Y_SCALAR)
			return NULL;
		const char *eq = strchr(it->text, '=');
		struct ynode *k = ynode_new(a, Y_SCALAR, it->file, it->line, it->col);
		k->text =
		    eq ? xasprintf("%.*s", (int)(eq - it->text), it->text) : xstrdup(it->text);
		k->plain = true;
		struct ynode *v = ynode_new(a, eq ? Y_SCALAR : Y_NULL, it->file, it->line, it->col);
		v->text = xstrdup(eq ? eq + 1 : "");
		v->plain = it->plain;
		add_kid(m, k);
		add_kid(m, v);
	}
	return m;
}

/* The container path of a volume: a long form's target, or the short form's
 * second field (its only one for an anonymous volume). */
static const char *volume_target(const struct ynode *v, char *buf, size_t size)
{
	if (v->kind == Y_MAP) {
		const struct ynode *t = ymap_get(v, "target");
		return t && t->kind == Y_SCALAR ? t->text : NULL;
	}
	if (v->kind != Y_SCALAR)
		return NULL;
	const char *c = strchr(v->text, ':');
	if (!c)
		return v->text;
	const char *end = strchr(c + 1, ':');
	size_t n = end ? (size_t)(end - c - 1) : strlen(c + 1);
	if (n >= size)
		return NULL;
	memcpy(buf, c + 1, n);
	buf[n] = '\0';
	return buf;
}

/* A mapping's key positions sorted by text (its keys are each there once). */
static size_t *sorted_keys(const struct ynode *m)
{
	size_t n = m->n / 2;
	size_t *idx = xcalloc(n + 1, sizeof(*idx));
	for (size_t i = 0; i < n; i++)
		idx[i] = 2 * i;
	sort_keys = m->kids;
	qsort(idx, n, sizeof(*idx), key_cmp);
	sort_keys = NULL;
	return idx;
}

static const struct ynode *find_key(const struct ynode *m, const size_t *idx, const char *key)
{
	size_t lo = 0, hi = m->n / 2;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->kids[idx[mid]]->text, key);
		if (c == 0)
			return m->kids[idx[mid] + 1];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

struct ynode *yaml_merge(struct yarena *a, struct ynode *base, struct ynode *over, int depth,
			 const char *key, bool in_service)
{
	if (has_tag(over, "!override"))
		return over;
	if (!base)
		return over;
	if (in_service && depth == 3 && in(key, keyed, ARRAY_SIZE(keyed))) {
		if (base->kind == Y_SEQ && over->kind == Y_MAP)
			base = as_map(a, base) ?: base;
		if (over->kind == Y_SEQ && base->kind == Y_MAP)
			over = as_map(a, over) ?: over;
	}
	if (base->kind == Y_MAP && over->kind == Y_MAP) {
		/* each side's keys looked up in the other through a sorted index:
		 * two files of many keys merge in n log n */
		size_t *bi = sorted_keys(base), *oi = sorted_keys(over);
		struct ynode *m = ynode_new(a, Y_MAP, over->file, over->line, over->col);
		for (size_t i = 0; i + 1 < base->n; i += 2) {
			const char *k = base->kids[i]->text;
			const struct ynode *o = find_key(over, oi, k);
			if (o && has_tag(o, "!reset"))
				continue;
			add_kid(m, base->kids[i]);
			add_kid(
			    m, o ? yaml_merge(a, base->kids[i + 1], (struct ynode *)o, depth + 1, k,
					      in_service || (depth == 0 && !strcmp(k, "services")))
				 : base->kids[i + 1]);
		}
		for (size_t i = 0; i + 1 < over->n; i += 2)
			if (!find_key(base, bi, over->kids[i]->text) &&
			    !has_tag(over->kids[i + 1], "!reset")) {
				add_kid(m, over->kids[i]);
				add_kid(m, over->kids[i + 1]);
			}
		free(bi);
		free(oi);
		return m;
	}
	if (base->kind == Y_SEQ && over->kind == Y_SEQ && in_service && depth == 3 &&
	    (in(key, appended, ARRAY_SIZE(appended)) || !strcmp(key, "volumes"))) {
		/* the base's items in their order, a volume replaced by the
		 * override's of the same target; then the override's new ones */
		struct ynode *s = ynode_new(a, Y_SEQ, over->file, over->line, over->col);
		bool by_target = !strcmp(key, "volumes");
		bool *used = xcalloc(over->n + 1, sizeof(*used));
		char b1[4096], b2[4096];
		for (size_t i = 0; i < base->n; i++) {
			struct ynode *item = base->kids[i];
			for (size_t j = 0; j < over->n; j++) {
				bool match;
				if (by_target) {
					const char *t1 =
					    volume_target(base->kids[i], b1, sizeof(b1));
					const char *t2 =
					    volume_target(over->kids[j], b2, sizeof(b2));
					match = t1 && t2 && !strcmp(t1, t2);
				} else {
					match = base->kids[i]->kind == Y_SCALAR &&
						over->kids[j]->kind == Y_SCALAR &&
						!strcmp(base->kids[i]->text, over->kids[j]->text);
				}
				if (match && !used[j]) {
					item = over->kids[j];
					used[j] = true;
					break;
				}
			}
			add_kid(s, item);
		}
		for (size_t j = 0; j < over->n; j++)
			if (!used[j])
				add_kid(s, over->kids[j]);
		free(used);
		return s;
	}
	return over; /* scalars, and lists such as command: replaced */
}
