/* The stack file reader: INI (iniparser) into the validated model of stack.h.
 *
 * iniparser gives values but no line numbers, folds keys and section names to
 * lower case, keeps the last of a duplicated key silently, and drops text
 * silently in three cases (after a closing quote, after a ';' or '#' inside a
 * value, a last line ending in '\'). So the same bytes are also read by a line
 * scan that follows iniparser 4.1's grammar (continuation lines included): it
 * maps section and key to their line, finds duplicates, keeps the names' case,
 * and turns each silent loss into an error with its line. The values used are
 * iniparser's, and each is checked against the scan's reading of its line:
 * where they would differ the file is refused, so a line number never points
 * at the wrong text. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <iniparser/iniparser.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "common/util.h"
#include "images/images.h"
#include "net/net.h"
#include "runtime/runtime.h"
#include "supervisor/stack.h"

/* iniparser 4.1 reads a (continued) line into 1024 bytes and refuses the whole
 * file past that; below it with room to spare, so the scan refuses first and
 * says where. */
#define INI_LINE_MAX 1000

/* ---- diagnostics ---------------------------------------------------------- */

void stack_diag_add(struct stack_diag *d, int sort_line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *text = NULL;
	if (vasprintf(&text, fmt, ap) < 0)
		abort();
	va_end(ap);
	d->items = xrealloc(d->items, (d->n + 1) * sizeof(*d->items));
	d->items[d->n] = (struct stack_diag_item){sort_line, d->n, text};
	d->n++;
}

void stack_diag_warn(struct stack_diag *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *text = NULL;
	if (vasprintf(&text, fmt, ap) < 0)
		abort();
	va_end(ap);
	d->warnings = xrealloc(d->warnings, (d->n_warnings + 1) * sizeof(*d->warnings));
	d->warnings[d->n_warnings++] = text;
}

static int diag_cmp(const void *a, const void *b)
{
	const struct stack_diag_item *x = a, *y = b;
	if (x->sort_line != y->sort_line)
		return x->sort_line < y->sort_line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int stack_diag_fail(struct stack_diag *d, const char *file, struct hutch_err **err)
{
	if (d->n == 0)
		return hutch_fail(err, 0, "%s: invalid stack file", file);
	qsort(d->items, d->n, sizeof(*d->items), diag_cmp);
	if (d->n == 1)
		return hutch_fail(err, 0, "%s", d->items[0].text);
	size_t shown = d->n < STACK_ERRORS_MAX ? d->n : STACK_ERRORS_MAX;
	size_t len = strlen(file) + 64;
	for (size_t i = 0; i < shown; i++)
		len += strlen(d->items[i].text) + 1;
	char *msg = xcalloc(1, len);
	char *p = msg + sprintf(msg, "%s: %zu errors:", file, d->n);
	for (size_t i = 0; i < shown; i++)
		p += sprintf(p, "\n%s", d->items[i].text);
	if (shown < d->n)
		sprintf(p, "\n... and %zu more", d->n - shown);
	hutch_fail(err, 0, "%s", msg);
	free(msg);
	return -1;
}

void stack_diag_free(struct stack_diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->items[i].text);
	free(d->items);
	strv_free(d->warnings, d->n_warnings);
	*d = (struct stack_diag){0};
}

/* ---- the model ------------------------------------------------------------ */

static void service_free(struct stack_service *s)
{
	free(s->name);
	free(s->image);
	free(s->build.context);
	free(s->build.dockerfile);
	free(s->build.target);
	strv_free(s->build.args, s->build.n_args);
	strv_free(s->command, s->n_command);
	strv_free(s->entrypoint, s->n_entrypoint);
	strv_free(s->env, s->n_env);
	strv_free(s->health.cmd, s->health.n_cmd);
	free(s->health.http_host);
	free(s->health.http_path);
	for (size_t i = 0; i < s->n_deps; i++)
		free(s->deps[i].service);
	free(s->deps);
	for (size_t i = 0; i < s->n_options; i++) {
		free(s->options[i].text);
		free(s->options[i].file);
		strv_free(s->options[i].words, s->options[i].n_words);
	}
	free(s->options);
}

void hutch_stack_free(struct hutch_stack *stack)
{
	if (!stack)
		return;
	for (size_t i = 0; i < stack->n_services; i++)
		service_free(&stack->services[i]);
	free(stack->services);
	free(stack->order);
	for (size_t i = 0; i < stack->n_networks; i++) {
		free(stack->networks[i].name);
		free(stack->networks[i].subnet);
		free(stack->networks[i].subnet6);
	}
	free(stack->networks);
	free(stack->subnet);
	strv_free(stack->dns_upstream, stack->n_dns_upstream);
	for (size_t i = 0; i < stack->n_volumes; i++)
		free(stack->volumes[i].name);
	free(stack->volumes);
	free(stack->file);
	free(stack->dir);
	free(stack->name);
	strv_free(stack->warnings, stack->n_warnings);
	free(stack);
}

const struct hutch_stack_build *hutch_stack_service_build(const struct hutch_stack *stack,
							  size_t i_in_order,
							  struct hutch_stack_build *out)
{
	const struct stack_service *svc = &stack->services[stack->order[i_in_order]];
	if (!svc->build.context)
		return NULL;
	*out = (struct hutch_stack_build){
	    svc->name,	       svc->image,	svc->build.context, svc->build.dockerfile,
	    svc->build.target, svc->build.args, svc->build.n_args};
	return out;
}

const char *hutch_stack_name(const struct hutch_stack *stack)
{
	return stack->name;
}

const char *const *hutch_stack_warnings(const struct hutch_stack *stack, size_t *n)
{
	*n = stack->n_warnings;
	return (const char *const *)stack->warnings;
}

const struct stack_option *stack_service_option(const struct stack_service *svc, const char *key)
{
	for (size_t i = 0; i < svc->n_options; i++)
		if (!strcmp(svc->options[i].key, key))
			return &svc->options[i];
	return NULL;
}

/* ---- reading a file with a cap -------------------------------------------- */

/* A regular file, read to at most max bytes, and a clear refusal past that.
 * Not common's read_file_at_most: names written in a stack file (env_file)
 * are foreign text and are shown escaped here, and a FIFO given as a stack or
 * env file is refused at once (O_NONBLOCK) instead of blocking `up`. */
int stack_read_file(const char *path, const char *shown, size_t max, const char *what, char **out,
		    size_t *len, struct hutch_err **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return hutch_fail_sys(err, "cannot open %s", shown);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return hutch_fail_sys(err, "cannot stat %s", shown);
	if (!S_ISREG(st.st_mode))
		return hutch_fail(err, 0, "%s is not a regular file", shown);
	_cleanup_free_ char *buf = xcalloc(1, max + 2);
	size_t used = 0;
	for (;;) {
		ssize_t n = read(fd, buf + used, max + 1 - used);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return hutch_fail_sys(err, "cannot read %s", shown);
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > max)
			return hutch_fail(err, 0, "%s is larger than %zu KiB: that is not a %s",
					  shown, max >> 10, what);
	}
	buf[used] = '\0';
	*out = steal_ptr(buf);
	*len = used;
	return 0;
}

/* ---- the line scan -------------------------------------------------------- */

struct scan_section {
	char *name;  /* as written, stripped */
	char *lower; /* as iniparser keys it */
	int line;
	size_t canonical; /* the first section of the same lower name */
};

struct scan_entry {
	size_t section; /* canonical */
	char *key;	/* as written */
	char *lower;
	char *value; /* the scan's reading, to check iniparser's against */
	int line;
	bool comment_cut;		       /* a ';' or '#' after a blank ended the value */
	const struct scan_entry *first, *last; /* of the same key in its section */
};

struct scan {
	const char *file;
	size_t *by_section; /* entry indices by section, then file order */
	struct scan_section *sections;
	size_t n_sections;
	struct scan_entry *entries;
	size_t n_entries;
};

static void scan_free(struct scan *s)
{
	for (size_t i = 0; i < s->n_sections; i++) {
		free(s->sections[i].name);
		free(s->sections[i].lower);
	}
	for (size_t i = 0; i < s->n_entries; i++) {
		free(s->entries[i].key);
		free(s->entries[i].lower);
		free(s->entries[i].value);
	}
	free(s->sections);
	free(s->entries);
	free(s->by_section);
}

static const struct scan *sort_scan;

static int by_section_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	const struct scan_entry *ex = &sort_scan->entries[x], *ey = &sort_scan->entries[y];
	if (ex->section != ey->section)
		return ex->section < ey->section ? -1 : 1;
	return x < y ? -1 : x > y;
}

static int by_key_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	const struct scan_entry *ex = &sort_scan->entries[x], *ey = &sort_scan->entries[y];
	if (ex->section != ey->section)
		return ex->section < ey->section ? -1 : 1;
	int c = strcmp(ex->lower, ey->lower);
	if (c)
		return c;
	return x < y ? -1 : x > y;
}

/* Group the entries by section and find each key's first and last line, in
 * n log n: a file of many keys must not take a quadratic time to refuse. */
static void scan_index(struct scan *s)
{
	size_t n = s->n_entries;
	size_t *idx = xcalloc(n, sizeof(*idx));
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	sort_scan = s;
	qsort(idx, n, sizeof(*idx), by_key_cmp);
	for (size_t i = 0; i < n;) {
		const struct scan_entry *head = &s->entries[idx[i]];
		size_t j = i + 1;
		while (j < n && s->entries[idx[j]].section == head->section &&
		       !strcmp(s->entries[idx[j]].lower, head->lower))
			j++;
		for (size_t k = i; k < j; k++) {
			s->entries[idx[k]].first = &s->entries[idx[i]];
			s->entries[idx[k]].last = &s->entries[idx[j - 1]];
		}
		i = j;
	}
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	qsort(idx, n, sizeof(*idx), by_section_cmp);
	sort_scan = NULL;
	s->by_section = idx;
}

static char *strip_dup(const char *s, size_t len)
{
	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	return xasprintf("%.*s", (int)len, s);
}

static char *lower_dup(const char *s)
{
	char *r = xstrdup(s);
	for (char *p = r; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return r;
}

/* One logical line (continuations joined), as iniparser_line reads it. */
static void scan_line(struct scan *s, struct stack_diag *d, const char *line, int lineno,
		      ssize_t *current)
{
	size_t len = strlen(line);
	while (len > 0 && isspace((unsigned char)*line)) {
		line++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)line[len - 1]))
		len--;
	if (len == 0 || line[0] == '#' || line[0] == ';')
		return;
	_cleanup_free_ char *shown = printable(line, len);
	if (line[0] == '[') {
		if (line[len - 1] != ']') {
			stack_diag_add(d, lineno,
				       "%s:%d: '%s': a section header is [NAME] alone on its line "
				       "(no comment after it)",
				       s->file, lineno, shown);
			*current = -2; /* its keys are no one's: said once, here */
			return;
		}
		_cleanup_free_ char *name = strip_dup(line + 1, len - 2);
		/* iniparser keys a value as "section:key": a ':' in either could
		 * make two of them one */
		if (!*name || strpbrk(name, "]:")) {
			stack_diag_add(d, lineno, "%s:%d: '%s': %s", s->file, lineno, shown,
				       *name ? "a section name cannot hold ']' or ':'"
					     : "a section needs a name: [stack] or [service.NAME]");
			*current = -2;
			return;
		}
		struct scan_section sec = {steal_ptr(name), NULL, lineno, s->n_sections};
		sec.lower = lower_dup(sec.name);
		for (size_t i = 0; i < s->n_sections; i++) {
			if (strcmp(s->sections[i].lower, sec.lower))
				continue;
			sec.canonical = s->sections[i].canonical;
			_cleanup_free_ char *a = printable(sec.name, strlen(sec.name));
			if (!strcmp(s->sections[i].name, sec.name))
				stack_diag_add(d, lineno,
					       "%s:%d: [%s]: this section is already at line %d: "
					       "keep a section's keys together",
					       s->file, lineno, a, s->sections[i].line);
			else
				stack_diag_add(d, lineno,
					       "%s:%d: [%s]: the same section as [%s] at line %d "
					       "(section names are not case-sensitive): rename one",
					       s->file, lineno, a, s->sections[i].name,
					       s->sections[i].line);
			break;
		}
		s->sections = xrealloc(s->sections, (s->n_sections + 1) * sizeof(*s->sections));
		s->sections[s->n_sections] = sec;
		*current = (ssize_t)sec.canonical;
		s->n_sections++;
		return;
	}
	const char *eq = memchr(line, '=', len);
	if (!eq || eq == line) {
		stack_diag_add(
		    d, lineno,
		    "%s:%d: '%s': expected KEY = VALUE, a [section] or a comment (; or #)", s->file,
		    lineno, shown);
		return;
	}
	const char *end = line + len;
	_cleanup_free_ char *key = strip_dup(line, (size_t)(eq - line));
	_cleanup_free_ char *key_shown = printable(key, strlen(key));
	if (strchr(key, ':')) {
		stack_diag_add(d, lineno, "%s:%d: %s: a key cannot hold ':'", s->file, lineno,
			       key_shown);
		return;
	}
	const char *v = eq + 1;
	while (v < end && isspace((unsigned char)*v))
		v++;
	char *value = NULL;
	bool cut = false;
	if (v < end && (*v == '"' || *v == '\'') && v + 1 < end && v[1] != *v) {
		/* quoted: iniparser takes what is up to the next quote */
		const char *close = memchr(v + 1, *v, (size_t)(end - v - 1));
		if (!close) {
			stack_diag_add(d, lineno,
				       "%s:%d: %s: the value's opening quote (%c) is not closed on "
				       "its line",
				       s->file, lineno, key_shown, *v);
			return;
		}
		const char *after = close + 1;
		while (after < end && isspace((unsigned char)*after))
			after++;
		if (after < end && *after != ';' && *after != '#') {
			stack_diag_add(
			    d, lineno,
			    "%s:%d: %s: text after the closing quote (%c) would be dropped: "
			    "quote the whole value or none of it",
			    s->file, lineno, key_shown, *v);
			return;
		}
		value = xasprintf("%.*s", (int)(close - v - 1), v + 1);
	} else if (v < end && *v != ';' && *v != '#') {
		const char *stop = v;
		while (stop < end && *stop != ';' && *stop != '#')
			stop++;
		if (stop < end) {
			if (!isspace((unsigned char)stop[-1])) {
				stack_diag_add(
				    d, lineno,
				    "%s:%d: %s: a '%c' inside a value starts a comment and "
				    "the rest would be dropped: put the whole value in "
				    "quotes (\"...\" or '...')",
				    s->file, lineno, key_shown, *stop);
				return;
			}
			cut = true;
		}
		value = strip_dup(v, (size_t)(stop - v));
		if (!strcmp(value, "\"\"") || !strcmp(value, "''"))
			value[0] = '\0';
	} else {
		value = xstrdup("");
		cut = v < end;
	}
	if (*current < 0) {
		if (*current == -1)
			stack_diag_add(d, lineno,
				       "%s:%d: %s: a key before any section: put it under [stack] "
				       "or a [service.NAME]",
				       s->file, lineno, key_shown);
		free(value);
		return;
	}
	struct scan_entry e = {
	    (size_t)*current, steal_ptr(key), NULL, value, lineno, cut, NULL, NULL};
	e.lower = lower_dup(e.key);
	s->entries = xrealloc(s->entries, (s->n_entries + 1) * sizeof(*s->entries));
	s->entries[s->n_entries++] = e;
}

/* Physical lines into logical ones as iniparser 4.1's iniparser_load does:
 * trailing blanks go, a line ending in '\' goes on with the next (whose
 * leading blanks stay), a lone first-line character or empty line is skipped.
 * A line too long for it or a NUL byte ends the scan with an error. */
static void scan_text(struct scan *s, struct stack_diag *d, const char *text, size_t len)
{
	char acc[INI_LINE_MAX + 2];
	size_t acc_len = 0;
	int lineno = 0, start = 0;
	ssize_t current = -1;
	const char *end = text + len;
	for (const char *p = text; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		size_t n = (size_t)(eol - p);
		lineno++;
		if (acc_len == 0)
			start = lineno;
		if (memchr(p, '\0', n)) {
			stack_diag_add(d, lineno, "%s:%d: a NUL byte: this is not a text file",
				       s->file, lineno);
			return;
		}
		if (acc_len + n + 1 > INI_LINE_MAX) {
			stack_diag_add(
			    d, start,
			    "%s:%d: the line is longer than %d bytes, the most the INI "
			    "reader takes: move long lists to an env_file, or shorten it",
			    s->file, start, INI_LINE_MAX);
			return;
		}
		const char *next = nl ? nl + 1 : end;
		/* iniparser skips a line of one byte or less, newline counted,
		 * unless it goes on from the one before */
		if (acc_len == 0 && n + (nl != NULL) <= 1) {
			p = next;
			continue;
		}
		memcpy(acc + acc_len, p, n);
		acc_len += n;
		while (acc_len > 0 && isspace((unsigned char)acc[acc_len - 1]))
			acc_len--;
		p = next;
		if (acc_len > 0 && acc[acc_len - 1] == '\\') {
			acc_len--;
			if (p >= end) {
				stack_diag_add(
				    d, start,
				    "%s:%d: the last line ends with '\\', a continuation "
				    "of nothing: remove the '\\'",
				    s->file, lineno);
				return;
			}
			continue;
		}
		acc[acc_len] = '\0';
		scan_line(s, d, acc, start, &current);
		acc_len = 0;
	}
}

/* ---- iniparser ------------------------------------------------------------ */

static int ini_quiet(const char *fmt, ...)
{
	return 0;
}

/* The same bytes the scan read, through iniparser: from a memfd, so the file
 * is read once and both see one text. */
static dictionary *ini_load_text(const char *text, size_t len, struct hutch_err **err)
{
	_cleanup_close_ int fd = memfd_create("hutch-stack", MFD_CLOEXEC);
	if (fd < 0) {
		hutch_fail_sys(err, "memfd_create");
		return NULL;
	}
	if (write_all(fd, text, len) < 0) {
		hutch_fail_sys(err, "write to a memfd");
		return NULL;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	/* iniparser prints its own errors to stderr; the scan has said better
	 * ones, with the line, before this is reached */
	iniparser_set_error_callback(ini_quiet);
	dictionary *dict = iniparser_load(path);
	if (!dict)
		hutch_fail(err, errno, "the INI reader (iniparser) could not read '%s'", path);
	return dict;
}

/* ---- keys ----------------------------------------------------------------- */

enum key_kind {
	KEY_IMAGE,
	KEY_COMMAND,
	KEY_ENTRYPOINT,
	KEY_ENV,
	KEY_ENV_FILE,
	KEY_HEALTH_CMD,
	KEY_HEALTH_INTERVAL,
	KEY_HEALTH_TIMEOUT,
	KEY_HEALTH_START_PERIOD,
	KEY_HEALTH_START_INTERVAL,
	KEY_HEALTH_RETRIES,
	KEY_HEALTH_TCP,
	KEY_HEALTH_HTTP,
	KEY_RESTART,
	KEY_STOP_GRACE,
	KEY_DEPENDS_ON,
	KEY_REPLICAS,
	KEY_NOTIFY,
	KEY_BUILD,
	KEY_OPTION,
};

static const struct service_key {
	const char *name;
	enum key_kind kind;
	enum stack_option_kind opt;
} service_keys[] = {
    {"image", KEY_IMAGE, 0},
    {"command", KEY_COMMAND, 0},
    {"entrypoint", KEY_ENTRYPOINT, 0},
    {"env", KEY_ENV, 0},
    {"env_file", KEY_ENV_FILE, 0},
    {"health_cmd", KEY_HEALTH_CMD, 0},
    {"health_interval", KEY_HEALTH_INTERVAL, 0},
    {"health_timeout", KEY_HEALTH_TIMEOUT, 0},
    {"health_start_period", KEY_HEALTH_START_PERIOD, 0},
    {"health_start_interval", KEY_HEALTH_START_INTERVAL, 0},
    {"health_retries", KEY_HEALTH_RETRIES, 0},
    {"health_tcp", KEY_HEALTH_TCP, 0},
    {"health_http", KEY_HEALTH_HTTP, 0},
    {"restart", KEY_RESTART, 0},
    {"stop_grace_period", KEY_STOP_GRACE, 0},
    {"depends_on", KEY_DEPENDS_ON, 0},
    {"replicas", KEY_REPLICAS, 0},
    {"notify", KEY_NOTIFY, 0},
    {"build", KEY_BUILD, 0},
    {"build_args", KEY_BUILD, 0},
    {"dockerfile", KEY_BUILD, 0},
    {"target", KEY_BUILD, 0},
    /* container options: the runtime's setters check them */
    {"volumes", KEY_OPTION, STACK_OPT_LIST},
    {"tmpfs", KEY_OPTION, STACK_OPT_LIST},
    {"user", KEY_OPTION, STACK_OPT_TEXT},
    {"memory", KEY_OPTION, STACK_OPT_TEXT},
    {"memory_swap", KEY_OPTION, STACK_OPT_TEXT},
    {"cpus", KEY_OPTION, STACK_OPT_TEXT},
    {"pids", KEY_OPTION, STACK_OPT_TEXT},
    {"stop_signal", KEY_OPTION, STACK_OPT_TEXT},
    {"read_only", KEY_OPTION, STACK_OPT_FLAG},
    {"cap_add", KEY_OPTION, STACK_OPT_LIST},
    {"cap_drop", KEY_OPTION, STACK_OPT_LIST},
    {"hostname", KEY_OPTION, STACK_OPT_TEXT},
    {"workdir", KEY_OPTION, STACK_OPT_TEXT},
    {"ulimits", KEY_OPTION, STACK_OPT_LIST},
    {"dns", KEY_OPTION, STACK_OPT_LIST},
    {"dns_search", KEY_OPTION, STACK_OPT_LIST},
    {"dns_option", KEY_OPTION, STACK_OPT_LIST},
    {"add_host", KEY_OPTION, STACK_OPT_LIST},
    {"privileged", KEY_OPTION, STACK_OPT_FLAG},
    {"init", KEY_OPTION, STACK_OPT_FLAG},
    {"security_opt", KEY_OPTION, STACK_OPT_LIST},
    {"network", KEY_OPTION, STACK_OPT_TEXT},
    {"device", KEY_OPTION, STACK_OPT_LIST},
    /* kept, with their syntax checked, for the network module */
    {"ports", KEY_OPTION, STACK_OPT_LIST},
    {"expose", KEY_OPTION, STACK_OPT_LIST},
    {"networks", KEY_OPTION, STACK_OPT_LIST},
    {"aliases", KEY_OPTION, STACK_OPT_LIST},
    {"labels", KEY_OPTION, STACK_OPT_LIST},
    {"container_name", KEY_OPTION, STACK_OPT_TEXT},
};

static const char *const stack_keys[] = {"name", "subnet", "dns_upstream"};
static const char *const network_keys[] = {"internal", "subnet", "ipv6", "subnet6"};

/* Levenshtein distance, case-insensitive, for "did you mean". */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return SIZE_MAX;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost =
			    tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
			size_t best = diag + cost;
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* The nearest of names, or NULL when none is near enough to be meant. */
static const char *nearest(const char *word, const char *const *names, size_t n)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX, len = strlen(word);
	size_t limit = len / 3 > 2 ? len / 3 : 2;
	if (len < 3) /* any name is near a one- or two-letter word */
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t d = distance(word, names[i]);
		/* a name cut short ("depends" for depends_on) is meant too */
		if (len >= 4 && !strncasecmp(names[i], word, len))
			d = 1;
		if (d < best_d) {
			best_d = d;
			best = names[i];
		}
	}
	return best_d <= limit ? best : NULL;
}

const char *stack_nearest(const char *word, const char *const *names, size_t n)
{
	return nearest(word, names, n);
}

static const char *nearest_service_key(const char *word)
{
	const char *names[ARRAY_SIZE(service_keys)];
	for (size_t i = 0; i < ARRAY_SIZE(service_keys); i++)
		names[i] = service_keys[i].name;
	return nearest(word, names, ARRAY_SIZE(names));
}

static bool name_ok(const char *s)
{
	if (!isalnum((unsigned char)s[0]) || strlen(s) > STACK_NAME_MAX)
		return false;
	for (const char *p = s + 1; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("_.-", *p))
			return false;
	return true;
}

/* ---- values --------------------------------------------------------------- */

struct loader {
	struct hutch_stack *stack;
	struct stack_diag diag;
	struct stack_env env;
	const char *file;
	bool scan_failed; /* iniparser's values may be another line's then */
	bool compose;	  /* stack_build for a compose file: its words in advice */
};

#define ERR(ld, line, ...) stack_diag_add(&(ld)->diag, (line), __VA_ARGS__)

static bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return true;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* Decimal digits only, no sign or blanks, within [min, max]. */
static bool parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 9)
		return false;
	unsigned long v = strtoul(s, NULL, 10);
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool words_of(struct loader *ld, const struct scan_entry *e, const char *value,
		     char ***words, size_t *n)
{
	const char *why = NULL;
	if (shell_words(value, words, n, &why) == 0)
		return true;
	ERR(ld, e->line, "%s:%d: %s: %s%s", ld->file, e->line, e->key, why,
	    e->comment_cut ? " (a ';' or '#' after a blank starts a comment: put the whole "
			     "value in quotes to keep it)"
			   : "");
	return false;
}

static void duration_of(struct loader *ld, const struct scan_entry *e, const char *value,
			int64_t min_ns, int64_t *out)
{
	_cleanup_free_ char *shown = printable(value, strlen(value));
	int64_t ns = 0;
	if (parse_duration(value, &ns) < 0) {
		ERR(ld, e->line,
		    "%s:%d: %s: '%s' is not a duration: write a number and a unit (ms, s, m, h), "
		    "like 500ms, 5s, 1m30s or 2h",
		    ld->file, e->line, e->key, shown);
		return;
	}
	if (ns < min_ns) {
		ERR(ld, e->line, "%s:%d: %s: '%s' is too short: at least 1ms", ld->file, e->line,
		    e->key, shown);
		return;
	}
	*out = ns;
}

static void restart_of(struct loader *ld, const struct scan_entry *e, const char *value,
		       struct stack_service *svc)
{
	_cleanup_free_ char *shown = printable(value, strlen(value));
	unsigned long n = 0;
	if (!strcmp(value, "no"))
		svc->restart = STACK_RESTART_NO;
	else if (!strcmp(value, "always"))
		svc->restart = STACK_RESTART_ALWAYS;
	else if (!strcmp(value, "unless-stopped"))
		svc->restart = STACK_RESTART_UNLESS_STOPPED;
	else if (!strcmp(value, "on-failure"))
		svc->restart = STACK_RESTART_ON_FAILURE;
	else if (!strncmp(value, "on-failure:", 11)) {
		if (!parse_uint(value + 11, 0, 1000000, &n)) {
			ERR(ld, e->line,
			    "%s:%d: restart: '%s': after on-failure: comes the most restarts, a "
			    "number from 0 (no limit) to 1000000",
			    ld->file, e->line, shown);
			return;
		}
		svc->restart = STACK_RESTART_ON_FAILURE;
		svc->restart_max = (unsigned)n;
	} else {
		ERR(ld, e->line,
		    "%s:%d: restart: '%s' is not a restart policy: use no, always, on-failure, "
		    "on-failure:N or unless-stopped",
		    ld->file, e->line, shown);
	}
}

/* http://[HOST]:PORT[/PATH]: HOST empty (the container's loopback),
 * localhost, an IPv4 address or an [IPv6] one. */
static void http_of(struct loader *ld, const struct scan_entry *e, const char *value,
		    struct stack_health *h)
{
	_cleanup_free_ char *shown = printable(value, strlen(value));
	const char *form = "write http://[HOST]:PORT/PATH, like http://:8080/healthz";
	if (!strncasecmp(value, "https://", 8)) {
		ERR(ld, e->line,
		    "%s:%d: health_http: '%s': https is not supported (hutch probes with plain "
		    "http from inside the container): %s",
		    ld->file, e->line, shown, form);
		return;
	}
	if (strncasecmp(value, "http://", 7)) {
		ERR(ld, e->line, "%s:%d: health_http: '%s' is not an http URL: %s", ld->file,
		    e->line, shown, form);
		return;
	}
	const char *auth = value + 7;
	size_t auth_len = strcspn(auth, "/?#");
	const char *path = auth + auth_len;
	_cleanup_free_ char *host = NULL;
	const char *port_text = NULL;
	_cleanup_free_ char *authority = xasprintf("%.*s", (int)auth_len, auth);
	char buf[16];
	if (authority[0] == '[') {
		char *close = strchr(authority, ']');
		if (close) {
			host = xasprintf("%.*s", (int)(close - authority - 1), authority + 1);
			if (close[1] == ':')
				port_text = close + 2;
		}
		if (!host || inet_pton(AF_INET6, host, buf) != 1) {
			ERR(ld, e->line,
			    "%s:%d: health_http: '%s': the host is not an IPv6 address", ld->file,
			    e->line, shown);
			return;
		}
	} else {
		char *colon = strrchr(authority, ':');
		if (colon) {
			host = xasprintf("%.*s", (int)(colon - authority), authority);
			port_text = colon + 1;
		}
		if (host && *host && strcmp(host, "localhost") &&
		    inet_pton(AF_INET, host, buf) != 1) {
			ERR(ld, e->line,
			    "%s:%d: health_http: '%s': the host is probed from inside the "
			    "container, with no DNS: leave it out, or give localhost or an IP "
			    "address",
			    ld->file, e->line, shown);
			return;
		}
	}
	unsigned long port = 0;
	if (!port_text || !parse_uint(port_text, 1, 65535, &port)) {
		ERR(ld, e->line, "%s:%d: health_http: '%s': the port is missing or not 1-65535: %s",
		    ld->file, e->line, shown, form);
		return;
	}
	if (*path == '#') {
		path = "";
	}
	for (const char *c = path; *c; c++) {
		if ((unsigned char)*c <= ' ' || *c == 0x7f || *c == '#') {
			ERR(ld, e->line,
			    "%s:%d: health_http: '%s': the path has a blank, a control character "
			    "or a '#': percent-encode it",
			    ld->file, e->line, shown);
			return;
		}
	}
	free(h->http_host);
	free(h->http_path);
	h->http_host = xstrdup(host && *host ? host : "127.0.0.1");
	h->http_path = *path == '/' ? xstrdup(path) : xasprintf("/%s", path);
	h->port = (uint16_t)port;
}

static void env_of(struct loader *ld, const struct scan_entry *e, const char *value, char ***vars,
		   size_t *n_vars)
{
	char **words = NULL;
	size_t n = 0;
	if (!words_of(ld, e, value, &words, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		char *eq = strchr(words[i], '=');
		if (eq == words[i]) {
			_cleanup_free_ char *shown = printable(words[i], strlen(words[i]));
			ERR(ld, e->line,
			    "%s:%d: env: '%s': expected NAME=VALUE (or NAME alone, "
			    "for the variable's value here)",
			    ld->file, e->line, shown);
			continue;
		}
		char *var = NULL;
		if (eq) {
			var = xstrdup(words[i]);
		} else {
			/* NAME alone: the value from the environment, as compose */
			const char *v = stack_env_get(&ld->env, words[i]);
			if (!v)
				continue;
			var = xasprintf("%s=%s", words[i], v);
		}
		*vars = xrealloc(*vars, (*n_vars + 1) * sizeof(**vars));
		(*vars)[(*n_vars)++] = var;
	}
	strv_free(words, n);
}

static char *join_dir(const char *dir, const char *path)
{
	if (path[0] == '/' || !strcmp(dir, "."))
		return xstrdup(path);
	return xasprintf("%s/%s", dir, path);
}

static void env_file_of(struct loader *ld, const struct scan_entry *e, const char *value,
			char ***vars, size_t *n_vars)
{
	char **words = NULL;
	size_t n = 0;
	if (!words_of(ld, e, value, &words, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *path = join_dir(ld->stack->dir, words[i]);
		/* the name is the file's text: escaped wherever it is shown */
		_cleanup_free_ char *shown = printable(path, strlen(path));
		_cleanup_free_ char *text = NULL;
		size_t len = 0;
		_cleanup_err_ struct hutch_err *err = NULL;
		if (stack_read_file(path, shown, STACK_ENV_FILE_MAX, "stack or env file", &text,
				    &len, &err) < 0) {
			ERR(ld, e->line, "%s:%d: env_file: %s%s%s", ld->file, e->line, err->msg,
			    err->errno_ ? ": " : "", err->errno_ ? strerror(err->errno_) : "");
			continue;
		}
		stack_parse_env_file(text, len, shown, e->line, &ld->diag, vars, n_vars);
	}
	strv_free(words, n);
}

static void depends_of(struct loader *ld, const struct scan_entry *e, const char *value,
		       struct stack_service *svc)
{
	char **words = NULL;
	size_t n = 0;
	if (!words_of(ld, e, value, &words, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *shown = printable(words[i], strlen(words[i]));
		char *colon = strchr(words[i], ':');
		enum stack_dep_condition cond = STACK_DEP_STARTED;
		/* NAME[:CONDITION][:restart]: compose's restart: true, restart
		 * this one when NAME restarts */
		bool restart = false;
		size_t wlen = strlen(words[i]);
		if (colon && wlen > 8 && !strcmp(words[i] + wlen - 8, ":restart")) {
			restart = true;
			words[i][wlen - 8] = '\0';
			if (colon == words[i] + wlen - 8)
				colon = NULL;
		}
		if (colon) {
			*colon = '\0';
			if (!strcmp(colon + 1, "started"))
				cond = STACK_DEP_STARTED;
			else if (!strcmp(colon + 1, "healthy"))
				cond = STACK_DEP_HEALTHY;
			else if (!strcmp(colon + 1, "completed"))
				cond = STACK_DEP_COMPLETED;
			else {
				ERR(ld, e->line,
				    "%s:%d: depends_on: '%s': the condition after ':' is started "
				    "(the default), healthy or completed",
				    ld->file, e->line, shown);
				continue;
			}
		}
		bool dup = false;
		for (size_t k = 0; k < svc->n_deps; k++)
			dup |= !strcmp(svc->deps[k].service, words[i]);
		if (dup) {
			ERR(ld, e->line, "%s:%d: depends_on: '%s' is listed twice", ld->file,
			    e->line, shown);
			continue;
		}
		svc->deps = xrealloc(svc->deps, (svc->n_deps + 1) * sizeof(*svc->deps));
		svc->deps[svc->n_deps++] =
		    (struct stack_dep){xstrdup(words[i]), 0, cond, e->line, restart};
	}
	strv_free(words, n);
}

static size_t env_name_len(const char *var)
{
	return strcspn(var, "=");
}

static char **merge_vars;

static int env_name_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	const char *vx = merge_vars[x], *vy = merge_vars[y];
	size_t lx = env_name_len(vx), ly = env_name_len(vy);
	int c = memcmp(vx, vy, lx < ly ? lx : ly);
	if (c || lx != ly)
		return c ? c : (lx < ly ? -1 : 1);
	return x < y ? -1 : x > y;
}

/* env: the env_file ones, then env's; one per name, the last value at the
 * first one's place (sorted by name, not compared pairwise: env files can be
 * long). Takes vars. */
static void env_merge(struct stack_service *svc, char **vars, size_t n)
{
	size_t *idx = xcalloc(n, sizeof(*idx));
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	merge_vars = vars;
	qsort(idx, n, sizeof(*idx), env_name_cmp);
	merge_vars = NULL;
	/* in each run of one name: the first's place gets the last's text */
	char **slot = xcalloc(n, sizeof(*slot));
	for (size_t i = 0; i < n;) {
		size_t j = i + 1, len = env_name_len(vars[idx[i]]);
		while (j < n && env_name_len(vars[idx[j]]) == len &&
		       !memcmp(vars[idx[j]], vars[idx[i]], len))
			j++;
		slot[idx[i]] = vars[idx[j - 1]];
		for (size_t k = i; k < j - 1; k++)
			free(vars[idx[k]]);
		i = j;
	}
	svc->env = xcalloc(n, sizeof(*svc->env));
	svc->n_env = 0;
	for (size_t i = 0; i < n; i++)
		if (slot[i])
			svc->env[svc->n_env++] = slot[i];
	free(slot);
	free(idx);
	free(vars);
}

/* ---- options kept for the network module: their syntax -------------------- */

static bool port_range(const char *s, size_t len, bool allow_empty)
{
	if (len == 0)
		return allow_empty;
	const char *dash = memchr(s, '-', len);
	size_t a_len = dash ? (size_t)(dash - s) : len;
	char a[8], b[8];
	if (a_len == 0 || a_len > 5 || (dash && (len - a_len - 1 == 0 || len - a_len - 1 > 5)))
		return false;
	memcpy(a, s, a_len);
	a[a_len] = '\0';
	unsigned long lo = 0, hi = 0;
	if (!parse_uint(a, 1, 65535, &lo))
		return false;
	if (!dash)
		return true;
	memcpy(b, dash + 1, len - a_len - 1);
	b[len - a_len - 1] = '\0';
	return parse_uint(b, 1, 65535, &hi) && hi >= lo;
}

const char *stack_port_syntax(const char *s, bool expose)
{
	const char *slash = strchr(s, '/');
	if (slash && strcmp(slash + 1, "tcp") && strcmp(slash + 1, "udp") &&
	    strcmp(slash + 1, "sctp"))
		return "the protocol after '/' is tcp, udp or sctp";
	size_t len = slash ? (size_t)(slash - s) : strlen(s);
	const char *cport = s;
	if (!expose) {
		/* the container port is after the last ':'; the host's before it,
		 * and an address before that ([v6] in brackets) */
		const char *last = NULL;
		for (const char *c = s; c < s + len; c++)
			if (*c == ':')
				last = c;
		if (last) {
			cport = last + 1;
			const char *hs = s;
			if (s[0] == '[') {
				const char *close = memchr(s, ']', len);
				char buf[16], addr[64];
				if (!close || close[1] != ':' ||
				    close - s - 1 >= (ssize_t)sizeof(addr))
					return "an IPv6 address is written in brackets, "
					       "[::1]:8080:80";
				memcpy(addr, s + 1, (size_t)(close - s - 1));
				addr[close - s - 1] = '\0';
				if (inet_pton(AF_INET6, addr, buf) != 1)
					return "the address is not an IP address";
				hs = close + 2;
			} else {
				const char *first = memchr(s, ':', len);
				if (first != last) {
					char buf[16], addr[64];
					if (first - s >= (ssize_t)sizeof(addr))
						return "the address is not an IP address";
					memcpy(addr, s, (size_t)(first - s));
					addr[first - s] = '\0';
					if (inet_pton(AF_INET, addr, buf) != 1 &&
					    inet_pton(AF_INET6, addr, buf) != 1)
						return "the address is not an IP address";
					hs = first + 1;
				}
			}
			if (hs > last || !port_range(hs, (size_t)(last - hs), true))
				return "the host port is not a port (1-65535) or a range of them";
		}
	}
	if (!port_range(cport, (size_t)(s + len - cport), false))
		return "the container port is not a port (1-65535) or a range of them";
	return NULL;
}

/* What the runtime does not check yet, since the network module is not there
 * to take it: the syntax, so a mistake is said at its line now. */
static bool option_syntax(struct loader *ld, const struct scan_entry *e, struct stack_option *o)
{
	for (size_t i = 0; i < o->n_words; i++) {
		const char *w = o->words[i], *why = NULL;
		if (!strcmp(o->key, "ports") || !strcmp(o->key, "expose")) {
			why = stack_port_syntax(w, !strcmp(o->key, "expose"));
		} else if (!strcmp(o->key, "networks")) {
			/* NAME or NAME:ALIAS,ALIAS... */
			_cleanup_free_ char *name = xstrdup(w);
			char *colon = strchr(name, ':');
			if (colon)
				*colon = '\0';
			if (!name_ok(name))
				why =
				    "a network name is up to 63 letters, digits, '_', '.' or '-', "
				    "starting with a letter or digit";
			for (char *a = colon ? colon + 1 : NULL; a && !why;) {
				char *comma = strchr(a, ',');
				if (comma)
					*comma = '\0';
				if (!name_ok(a))
					why = "an alias is a DNS name: up to 63 letters, digits, "
					      "'_', "
					      "'.' or '-'";
				a = comma ? comma + 1 : NULL;
			}
		} else if (!strcmp(o->key, "aliases")) {
			if (!name_ok(w))
				why =
				    "an alias is a DNS name: up to 63 letters, digits, '_', '.' or "
				    "'-', starting with a letter or digit";
		} else if (!strcmp(o->key, "labels")) {
			const char *eq = strchr(w, '=');
			if (!eq || eq == w)
				why = "expected NAME=VALUE";
		}
		if (why) {
			_cleanup_free_ char *shown = printable(w, strlen(w));
			ERR(ld, e->line, "%s:%d: %s: '%s': %s", ld->file, e->line, e->key, shown,
			    why);
			return false;
		}
	}
	if (!strcmp(o->key, "container_name") && !hutch_name_valid(o->text)) {
		_cleanup_free_ char *shown = printable(o->text, strlen(o->text));
		ERR(ld, e->line, "%s:%d: %s: '%s' is not a valid container name", ld->file, e->line,
		    e->key, shown);
		return false;
	}
	return true;
}

/* ---- sections ------------------------------------------------------------- */

/* A subnet for a network: IPv4 CIDR, host bits zero, /8 to /30 (a /31 has no
 * address for a container beside the gateway). */
static bool subnet_of(struct loader *ld, const struct scan_entry *e, const char *value, char **out)
{
	struct hutch_cidr c;
	_cleanup_err_ struct hutch_err *err = NULL;
	_cleanup_free_ char *shown = printable(value, strlen(value));
	if (hutch_cidr_parse(value, &c, &err) < 0 || c.prefix < 8 || c.prefix > 30) {
		ERR(ld, e->line,
		    "%s:%d: %s: '%s' is not a subnet hutch can use: give an IPv4 network "
		    "from /8 to /30 with its host bits zero, like 10.89.7.0/24",
		    ld->file, e->line, e->key, shown);
		return false;
	}
	free(*out);
	*out = xstrdup(value);
	return true;
}

/* dns_upstream: IP or IP:PORT words, at most 3 (net/dns.c uses 3). */
static void load_dns_upstream(struct loader *ld, const struct scan_entry *e, const char *value)
{
	char **words = NULL;
	size_t n = 0;
	if (!words_of(ld, e, value, &words, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *addr = xstrdup(words[i]);
		char *colon = strchr(addr, ':');
		unsigned long port = 53;
		if (colon)
			*colon = '\0';
		struct in_addr a;
		if (inet_pton(AF_INET, addr, &a) != 1 ||
		    (colon && !parse_uint(colon + 1, 1, 65535, &port))) {
			_cleanup_free_ char *shown = printable(words[i], strlen(words[i]));
			ERR(ld, e->line,
			    "%s:%d: dns_upstream: '%s' is not a resolver's address: give IP or "
			    "IP:PORT (IPv4), like 192.168.1.1 or 10.0.0.2:5353",
			    ld->file, e->line, shown);
			strv_free(words, n);
			return;
		}
	}
	if (n > 3) {
		ERR(ld, e->line, "%s:%d: dns_upstream: %zu resolvers: at most 3 are used, give 3",
		    ld->file, e->line, n);
		strv_free(words, n);
		return;
	}
	strv_free(ld->stack->dns_upstream, ld->stack->n_dns_upstream);
	ld->stack->dns_upstream = words;
	ld->stack->n_dns_upstream = n;
}

static void load_stack_section(struct loader *ld, const struct scan_entry *e, const char *value)
{
	if (!strcmp(e->key, "subnet") && !ld->compose) {
		if (subnet_of(ld, e, value, &ld->stack->subnet))
			ld->stack->subnet_line = e->line;
		return;
	}
	if (!strcmp(e->key, "dns_upstream") && !ld->compose) {
		load_dns_upstream(ld, e, value);
		return;
	}
	if (strcmp(e->key, "name")) {
		_cleanup_free_ char *shown = printable(e->key, strlen(e->key));
		bool of_service = false;
		for (size_t i = 0; i < ARRAY_SIZE(service_keys); i++)
			of_service |= !strcmp(e->key, service_keys[i].name);
		const char *near = nearest(e->key, stack_keys, ARRAY_SIZE(stack_keys));
		if (of_service)
			ERR(ld, e->line,
			    "%s:%d: %s: this key belongs in a [service.NAME] section, not in "
			    "[stack]",
			    ld->file, e->line, shown);
		else
			ERR(ld, e->line, "%s:%d: %s: unknown key in [stack]%s%s%s", ld->file,
			    e->line, shown,
			    near ? " (did you mean '" : " (it has name, subnet and dns_upstream)",
			    near ? near : "", near ? "'?)" : "");
		return;
	}
	_cleanup_free_ char *shown = printable(value, strlen(value));
	if (!name_ok(value)) {
		ERR(ld, e->line,
		    "%s:%d: name: '%s' is not a stack name: use up to %d letters, digits, '_', "
		    "'.' or '-', starting with a letter or digit",
		    ld->file, e->line, shown, STACK_NAME_MAX);
		return;
	}
	free(ld->stack->name);
	ld->stack->name = xstrdup(value);
}

/* env_file's variables come first and env's override them, whichever key
 * comes first in the file (as compose). */
struct env_lists {
	char **file, **env;
	size_t n_file, n_env;
};

struct health_keys {
	const struct scan_entry *check[3]; /* health_cmd, health_tcp, health_http */
	const struct scan_entry *timing;   /* the first timing key */
	bool image_seen;		   /* an image key, maybe with a value that failed */
	bool build_seen;		   /* the same for build */
	const struct scan_entry *build_more; /* build_args, dockerfile or target */
};

/* build = CONTEXT and what goes with it (docs/build.md): a path relative to
 * the stack file's directory; dockerfile relative to the context. */
static void build_of(struct loader *ld, const struct scan_entry *e, const char *value,
		     struct stack_build *b, struct health_keys *hk)
{
	if (!strcmp(e->key, "build")) {
		hk->build_seen = true;
		b->line = e->line;
		free(b->context);
		b->context = NULL;
		if (!*value)
			ERR(ld, e->line,
			    "%s:%d: build: empty: give the build context (a directory)", ld->file,
			    e->line);
		else
			b->context = join_dir(ld->stack->dir, value);
		return;
	}
	hk->build_more = hk->build_more ? hk->build_more : e;
	if (!strcmp(e->key, "build_args")) {
		char **w = NULL;
		size_t n = 0;
		if (!words_of(ld, e, value, &w, &n))
			return;
		for (size_t i = 0; i < n; i++)
			if (*w[i] == '=') {
				_cleanup_free_ char *shown = printable(w[i], strlen(w[i]));
				ERR(ld, e->line,
				    "%s:%d: build_args: '%s': expected NAME=VALUE (or NAME alone, "
				    "from the environment)",
				    ld->file, e->line, shown);
			}
		strv_free(b->args, b->n_args);
		b->args = w;
		b->n_args = n;
		return;
	}
	char **slot = !strcmp(e->key, "target") ? &b->target : &b->dockerfile;
	free(*slot);
	*slot = *value ? xstrdup(value) : NULL;
}

/* env.2, env.3, ...: more of env's variables, for a list longer than an INI
 * line holds (hutch stack config writes them so), read as if added to env. */
static bool env_more_key(const char *key)
{
	if (strncmp(key, "env.", 4) || !key[4] || key[4] == '0' || strlen(key + 4) > 3)
		return false;
	for (const char *p = key + 4; *p; p++)
		if (!isdigit((unsigned char)*p))
			return false;
	return strcmp(key + 4, "1") != 0;
}

static void load_service_key(struct loader *ld, struct stack_service *svc,
			     const struct scan_entry *e, const char *value, struct health_keys *hk,
			     struct env_lists *vars)
{
	const struct service_key *k = NULL;
	const char *name = env_more_key(e->key) ? "env" : e->key;
	for (size_t i = 0; i < ARRAY_SIZE(service_keys) && !k; i++)
		if (!strcmp(name, service_keys[i].name))
			k = &service_keys[i];
	_cleanup_free_ char *key_shown = printable(e->key, strlen(e->key));
	if (!k) {
		const char *near = nearest_service_key(e->key);
		if (!strcmp(e->key, "name"))
			ERR(ld, e->line,
			    "%s:%d: name: a service's name is in its section header, "
			    "[service.NAME]",
			    ld->file, e->line);
		else if (near)
			ERR(ld, e->line, "%s:%d: %s: unknown key (did you mean '%s'?)", ld->file,
			    e->line, key_shown, near);
		else
			ERR(ld, e->line,
			    "%s:%d: %s: unknown key (docs/stack-file.md lists a service's keys)",
			    ld->file, e->line, key_shown);
		return;
	}
	_cleanup_free_ char *shown = printable(value, strlen(value));
	unsigned long n = 0;
	struct stack_health *h = &svc->health;
	switch (k->kind) {
	case KEY_IMAGE: {
		hk->image_seen = true;
		free(svc->image);
		svc->image = xstrdup(value);
		/* the images module's own check and message, as `hutch run IMAGE`
		 * gets; an empty one is said at the section ("no image") */
		_cleanup_free_ char *norm = NULL;
		_cleanup_err_ struct hutch_err *ref_err = NULL;
		if (*value && hutch_image_ref_normalize(value, &norm, &ref_err) < 0)
			ERR(ld, e->line, "%s:%d: image: %s", ld->file, e->line, ref_err->msg);
		break;
	}
	case KEY_COMMAND:
		if (!words_of(ld, e, value, &svc->command, &svc->n_command))
			break;
		if (svc->n_command == 0) {
			strv_free(svc->command, 0);
			svc->command = NULL;
			ERR(ld, e->line,
			    "%s:%d: command: empty: leave the key out to run the image's Cmd",
			    ld->file, e->line);
		}
		break;
	case KEY_ENTRYPOINT:
		svc->has_entrypoint = words_of(ld, e, value, &svc->entrypoint, &svc->n_entrypoint);
		break;
	case KEY_ENV:
		env_of(ld, e, value, &vars->env, &vars->n_env);
		break;
	case KEY_ENV_FILE:
		env_file_of(ld, e, value, &vars->file, &vars->n_file);
		break;
	case KEY_HEALTH_CMD:
		hk->check[0] = e;
		if (!words_of(ld, e, value, &h->cmd, &h->n_cmd))
			break;
		if (h->n_cmd == 0)
			ERR(ld, e->line, "%s:%d: health_cmd: empty: give the command to run",
			    ld->file, e->line);
		break;
	case KEY_HEALTH_TCP:
		hk->check[1] = e;
		if (!parse_uint(value, 1, 65535, &n))
			ERR(ld, e->line, "%s:%d: health_tcp: '%s' is not a port: use 1 to 65535",
			    ld->file, e->line, shown);
		h->port = (uint16_t)n;
		break;
	case KEY_HEALTH_HTTP:
		hk->check[2] = e;
		http_of(ld, e, value, h);
		break;
	case KEY_HEALTH_INTERVAL:
		hk->timing = hk->timing ? hk->timing : e;
		duration_of(ld, e, value, 1000000, &h->interval_ns);
		break;
	case KEY_HEALTH_TIMEOUT:
		hk->timing = hk->timing ? hk->timing : e;
		duration_of(ld, e, value, 1000000, &h->timeout_ns);
		break;
	case KEY_HEALTH_START_PERIOD:
		hk->timing = hk->timing ? hk->timing : e;
		duration_of(ld, e, value, 0, &h->start_period_ns);
		break;
	case KEY_HEALTH_START_INTERVAL:
		hk->timing = hk->timing ? hk->timing : e;
		duration_of(ld, e, value, 1000000, &h->start_interval_ns);
		break;
	case KEY_HEALTH_RETRIES:
		hk->timing = hk->timing ? hk->timing : e;
		if (!parse_uint(value, 1, 1000000, &n))
			ERR(ld, e->line,
			    "%s:%d: health_retries: '%s' is not a number from 1 to 1000000",
			    ld->file, e->line, shown);
		else
			h->retries = (unsigned)n;
		break;
	case KEY_RESTART:
		restart_of(ld, e, value, svc);
		break;
	case KEY_STOP_GRACE:
		duration_of(ld, e, value, 0, &svc->stop_grace_ns);
		break;
	case KEY_DEPENDS_ON:
		depends_of(ld, e, value, svc);
		break;
	case KEY_REPLICAS:
		if (!parse_uint(value, 1, STACK_REPLICAS_MAX, &n))
			ERR(ld, e->line, "%s:%d: replicas: '%s' is not a number from 1 to %d",
			    ld->file, e->line, shown, STACK_REPLICAS_MAX);
		else
			svc->replicas = (unsigned)n;
		break;
	case KEY_BUILD:
		build_of(ld, e, value, &svc->build, hk);
		break;
	case KEY_NOTIFY:
		if (!parse_bool(value, &svc->notify))
			ERR(ld, e->line, "%s:%d: notify: '%s' is not a boolean: use true or false",
			    ld->file, e->line, shown);
		break;
	case KEY_OPTION: {
		struct stack_option o = {k->name, k->opt, xstrdup(value), NULL,
					 0,	  false,  e->line,	  NULL};
		bool ok = true;
		if (k->opt == STACK_OPT_LIST)
			ok = words_of(ld, e, value, &o.words, &o.n_words);
		if (ok)
			ok = option_syntax(ld, e, &o);
		if (k->opt == STACK_OPT_FLAG && !parse_bool(value, &o.flag)) {
			ERR(ld, e->line, "%s:%d: %s: '%s' is not a boolean: use true or false",
			    ld->file, e->line, k->name, shown);
			ok = false;
		}
		if (!ok) {
			free(o.text);
			strv_free(o.words, o.n_words);
			break;
		}
		svc->options = xrealloc(svc->options, (svc->n_options + 1) * sizeof(*svc->options));
		svc->options[svc->n_options++] = o;
		break;
	}
	}
}

static void finish_service(struct loader *ld, struct stack_service *svc, struct health_keys *hk)
{
	if (((!svc->image && !hk->image_seen) || (svc->image && !*svc->image)) && !hk->build_seen)
		ERR(ld, svc->line, "%s:%d: [service.%s]: no image: add %s", ld->file, svc->line,
		    svc->name,
		    ld->compose ? "image: NAME (like image: busybox), or build: DIR"
				: "image = NAME (like image = busybox), or build = DIR");
	if (hk->build_more && !hk->build_seen)
		ERR(ld, hk->build_more->line,
		    "%s:%d: %s: goes with build = CONTEXT, which %s lacks", ld->file,
		    hk->build_more->line, hk->build_more->key, svc->name);
	size_t n_checks = 0;
	for (int i = 0; i < 3; i++) {
		if (!hk->check[i])
			continue;
		n_checks++;
		svc->health.kind = (enum stack_health_kind)(STACK_HEALTH_CMD + i);
		svc->health.line = hk->check[i]->line;
	}
	if (n_checks > 1) {
		/* report it at the later of the keys, naming the earlier ones */
		const struct scan_entry *last = NULL;
		for (int i = 0; i < 3; i++)
			if (hk->check[i] && (!last || hk->check[i]->line > last->line))
				last = hk->check[i];
		ERR(ld, last->line,
		    "%s:%d: %s: a service has one health check: health_cmd, health_tcp or "
		    "health_http, not %zu of them",
		    ld->file, last->line, last->key, n_checks);
	}
	if (n_checks == 0) {
		svc->health.kind = STACK_HEALTH_NONE;
		if (hk->timing)
			ERR(ld, hk->timing->line,
			    "%s:%d: %s: no health check to time: add health_cmd, health_tcp or "
			    "health_http",
			    ld->file, hk->timing->line, hk->timing->key);
	}
}

/* A default name from the stack file's directory, as compose makes a project
 * name: lower case, letters, digits, '_', '.', '-', starting with a letter or
 * digit. */
static char *name_from_dir(const char *dir)
{
	_cleanup_free_ char *real = realpath(dir, NULL);
	const char *base = real ? strrchr(real, '/') : NULL;
	base = base ? base + 1 : dir;
	char *name = xcalloc(1, strlen(base) + 1), *o = name;
	for (const char *p = base; *p && o - name < STACK_NAME_MAX; p++) {
		char c = (char)tolower((unsigned char)*p);
		if (isalnum((unsigned char)c) || (o > name && strchr("_.-", c)))
			*o++ = c;
	}
	return name;
}

static void check_section_name(struct loader *ld, const struct scan_section *sec, bool *is_stack,
			       bool *is_service, bool *is_network)
{
	*is_stack = !strcmp(sec->name, "stack");
	*is_service = !strncmp(sec->name, "service.", 8);
	*is_network = !strncmp(sec->name, "network.", 8);
	if (*is_stack)
		return;
	_cleanup_free_ char *shown = printable(sec->name, strlen(sec->name));
	if (*is_network) {
		if (!name_ok(sec->name + 8)) {
			*is_network = false;
			ERR(ld, sec->line,
			    "%s:%d: [%s]: '%s' is not a network name: use up to %d letters, "
			    "digits, '_', '.' or '-', starting with a letter or digit",
			    ld->file, sec->line, shown, shown + 8, STACK_NAME_MAX);
		}
		return;
	}
	if (*is_service) {
		const char *svc = sec->name + 8;
		if (!name_ok(svc)) {
			*is_service = false;
			ERR(ld, sec->line,
			    "%s:%d: [%s]: '%s' is not a service name: use up to %d letters, "
			    "digits, '_', '.' or '-', starting with a letter or digit",
			    ld->file, sec->line, shown, shown + 8, STACK_NAME_MAX);
		}
		return;
	}
	const char *dot = strchr(sec->name, '.');
	_cleanup_free_ char *head =
	    xasprintf("%.*s", (int)(dot ? dot - sec->name : (ssize_t)strlen(sec->name)), sec->name);
	_cleanup_free_ char *tail = dot ? printable(dot + 1, strlen(dot + 1)) : NULL;
	if (!strcmp(head, "service") || distance(head, "service") <= 2 ||
	    !strcasecmp(head, "services"))
		ERR(ld, sec->line,
		    "%s:%d: [%s]: unknown section (a service's is [service.NAME]%s%s%s)", ld->file,
		    sec->line, shown, tail && *tail ? ": did you mean [service." : "",
		    tail && *tail ? tail : "", tail && *tail ? "]?" : "");
	else if (distance(sec->name, "stack") <= 2)
		ERR(ld, sec->line, "%s:%d: [%s]: unknown section (did you mean [stack]?)", ld->file,
		    sec->line, shown);
	else
		ERR(ld, sec->line,
		    "%s:%d: [%s]: unknown section: a stack file has [stack], "
		    "[service.NAME] and [network.NAME] sections",
		    ld->file, sec->line, shown);
}

static bool key_known(bool is_stack, bool is_network, const char *key)
{
	if (is_stack)
		for (size_t i = 0; i < ARRAY_SIZE(stack_keys); i++)
			if (!strcmp(key, stack_keys[i]))
				return true;
	if (is_network)
		for (size_t i = 0; i < ARRAY_SIZE(network_keys); i++)
			if (!strcmp(key, network_keys[i]))
				return true;
	if (is_stack || is_network)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(service_keys); i++)
		if (!strcmp(key, service_keys[i].name))
			return true;
	return env_more_key(key);
}

/* A service with the defaults of every key. */
static struct stack_service *new_service(struct hutch_stack *stack, const char *name, int line)
{
	stack->services =
	    xrealloc(stack->services, (stack->n_services + 1) * sizeof(*stack->services));
	struct stack_service *svc = &stack->services[stack->n_services++];
	*svc = (struct stack_service){0};
	svc->name = xstrdup(name);
	svc->line = line;
	svc->replicas = 1;
	svc->restart = STACK_RESTART_NO;
	svc->stop_grace_ns = 10 * 1000000000LL;
	svc->health = (struct stack_health){
	    .interval_ns = 30 * 1000000000LL,
	    .timeout_ns = 30 * 1000000000LL,
	    .start_interval_ns = 5 * 1000000000LL,
	    .retries = 3,
	};
	return svc;
}

/* env_file's, then env's, into svc->env; then what a service must have. */
static void end_service(struct loader *ld, struct stack_service *svc, struct health_keys *hk,
			struct env_lists *vars)
{
	vars->file = xrealloc(vars->file, (vars->n_file + vars->n_env) * sizeof(*vars->file));
	if (vars->n_env)
		memcpy(vars->file + vars->n_file, vars->env, vars->n_env * sizeof(*vars->env));
	free(vars->env);
	env_merge(svc, vars->file, vars->n_file + vars->n_env);
	finish_service(ld, svc, hk);
}

static struct stack_network *new_network(struct hutch_stack *stack, const char *name, int line)
{
	stack->networks =
	    xrealloc(stack->networks, (stack->n_networks + 1) * sizeof(*stack->networks));
	struct stack_network *n = &stack->networks[stack->n_networks++];
	*n = (struct stack_network){.name = xstrdup(name), .line = line};
	return n;
}

static void load_network_key(struct loader *ld, struct stack_network *net,
			     const struct scan_entry *e, const char *value)
{
	_cleanup_free_ char *shown = printable(value, strlen(value));
	if (!strcmp(e->key, "internal")) {
		if (!parse_bool(value, &net->internal))
			ERR(ld, e->line,
			    "%s:%d: internal: '%s' is not a boolean: use true or false", ld->file,
			    e->line, shown);
	} else if (!strcmp(e->key, "subnet")) {
		if (subnet_of(ld, e, value, &net->subnet))
			net->subnet_line = e->line;
	} else if (!strcmp(e->key, "ipv6")) {
		if (!parse_bool(value, &net->ipv6))
			ERR(ld, e->line, "%s:%d: ipv6: '%s' is not a boolean: use true or false",
			    ld->file, e->line, shown);
	} else if (!strcmp(e->key, "subnet6")) { /* implies ipv6 */
		struct hutch_cidr6 c;
		_cleanup_err_ struct hutch_err *err = NULL;
		if (hutch_cidr6_parse(value, &c, &err) < 0 || c.prefix > 120)
			ERR(ld, e->line,
			    "%s:%d: subnet6: '%s' is not an IPv6 subnet hutch can use: give one "
			    "of /120 or more addresses with its host bits zero, like "
			    "fd42:1:2:3::/64",
			    ld->file, e->line, shown);
		else {
			free(net->subnet6);
			net->subnet6 = xstrdup(value);
			net->ipv6 = true;
		}
	} else {
		_cleanup_free_ char *key = printable(e->key, strlen(e->key));
		const char *near = nearest(e->key, network_keys, ARRAY_SIZE(network_keys));
		ERR(ld, e->line, "%s:%d: %s: unknown key in [network.%s]%s%s%s", ld->file, e->line,
		    key, net->name,
		    near ? " (did you mean '" : " (it has internal, subnet, ipv6 and subnet6)",
		    near ? near : "", near ? "'?)" : "");
	}
}

static void load_sections(struct loader *ld, const struct scan *scan, dictionary *dict)
{
	struct hutch_stack *stack = ld->stack;
	for (size_t si = 0; si < scan->n_sections; si++) {
		const struct scan_section *sec = &scan->sections[si];
		if (sec->canonical != si)
			continue; /* reported by the scan; its keys are the first one's */
		bool is_stack, is_service, is_network;
		check_section_name(ld, sec, &is_stack, &is_service, &is_network);
		if (!is_stack && !is_service && !is_network)
			continue;
		struct stack_service *svc = NULL;
		struct stack_network *net = NULL;
		if (is_service) {
			svc = new_service(stack, sec->name + 8, sec->line);
		}
		if (is_network)
			net = new_network(stack, sec->name + 8, sec->line);
		struct health_keys hk = {0};
		struct env_lists vars = {0};
		/* the section's entries: a run of by_section from its first */
		size_t lo = 0, hi = scan->n_entries;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (scan->entries[scan->by_section[mid]].section < si)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (size_t ri = lo; ri < scan->n_entries; ri++) {
			const struct scan_entry *e = &scan->entries[scan->by_section[ri]];
			if (e->section != si)
				break;
			bool dup = e->first != e;
			if (dup) {
				_cleanup_free_ char *shown = printable(e->key, strlen(e->key));
				ERR(ld, e->line,
				    "%s:%d: %s: set twice in [%s], here and at line %d (the INI "
				    "reader would keep the last silently): keep one",
				    ld->file, e->line, shown, sec->name, e->first->line);
			}
			bool known = key_known(is_stack, is_network, e->key);
			if (dup || !known) {
				/* an unknown key is said before anything about its value */
				if (!known && is_stack)
					load_stack_section(ld, e, "");
				else if (!known && is_network)
					load_network_key(ld, net, e, "");
				else if (!known)
					load_service_key(ld, svc, e, "", &hk, &vars);
				continue;
			}
			/* iniparser keeps the last of a key given twice (an error
			 * reported above): check its value against that line */
			const struct scan_entry *last = e->last;
			_cleanup_free_ char *full = xasprintf("%s:%s", sec->lower, e->lower);
			const char *raw = iniparser_getstring(dict, full, NULL);
			if ((!raw || strcmp(raw, last->value)) && ld->scan_failed) {
				/* iniparser read a line the scan refused into this
				 * key; the file fails: go on with what this line says */
				raw = e->value;
			} else if (!raw || strcmp(raw, last->value)) {
				_cleanup_free_ char *a =
				    printable(raw ? raw : "", raw ? strlen(raw) : 0);
				_cleanup_free_ char *b = printable(e->value, strlen(e->value));
				_cleanup_free_ char *k = printable(e->key, strlen(e->key));
				ERR(ld, e->line,
				    "%s:%d: %s: the INI reader read '%s' where the line says '%s': "
				    "write the value more plainly (and report this)",
				    ld->file, e->line, k, a, b);
				continue;
			}
			if (last != e)
				raw = e->value; /* the file fails; say what is on this line */
			char *value = NULL, *why = NULL, **unset = NULL;
			size_t n_unset = 0;
			if (stack_interpolate(&ld->env, raw, &value, &why, &unset, &n_unset) < 0) {
				ERR(ld, e->line, "%s:%d: %s: %s", ld->file, e->line, e->key, why);
				free(why);
				strv_free(unset, n_unset);
				/* the key is there: no second error for its absence */
				hk.image_seen |= !strcmp(e->key, "image");
				hk.build_seen |= !strcmp(e->key, "build");
				if (!strcmp(e->key, "health_cmd"))
					hk.check[0] = e;
				if (!strcmp(e->key, "health_tcp"))
					hk.check[1] = e;
				if (!strcmp(e->key, "health_http"))
					hk.check[2] = e;
				continue;
			}
			for (size_t u = 0; u < n_unset; u++)
				stack_diag_warn(&ld->diag,
						"%s:%d: %s: variable %s is not set: read as an "
						"empty string",
						ld->file, e->line, e->key, unset[u]);
			strv_free(unset, n_unset);
			if (is_stack)
				load_stack_section(ld, e, value);
			else if (is_network)
				load_network_key(ld, net, e, value);
			else
				load_service_key(ld, svc, e, value, &hk, &vars);
			free(value);
		}
		if (svc)
			end_service(ld, svc, &hk, &vars);
	}
}

static void check_deps(struct loader *ld)
{
	struct hutch_stack *stack = ld->stack;
	const char **names = xcalloc(stack->n_services, sizeof(*names));
	for (size_t i = 0; i < stack->n_services; i++)
		names[i] = stack->services[i].name;
	for (size_t i = 0; i < stack->n_services; i++) {
		struct stack_service *svc = &stack->services[i];
		for (size_t d = 0; d < svc->n_deps; d++) {
			struct stack_dep *dep = &svc->deps[d];
			ssize_t idx = stack_service_index(stack, dep->service);
			_cleanup_free_ char *shown = printable(dep->service, strlen(dep->service));
			if (idx < 0) {
				const char *near = nearest(dep->service, names, stack->n_services);
				ERR(ld, dep->line,
				    "%s:%d: depends_on: no service '%s' in this file%s%s%s",
				    ld->file, dep->line, shown, near ? " (did you mean '" : "",
				    near ? near : "", near ? "'?)" : "");
				dep->index = SIZE_MAX; /* graph.c passes it by */
				continue;
			}
			dep->index = (size_t)idx;
			const struct stack_service *target = &stack->services[idx];
			if (dep->condition == STACK_DEP_HEALTHY &&
			    target->health.kind == STACK_HEALTH_NONE && !target->notify &&
			    idx != (ssize_t)i)
				ERR(ld, dep->line,
				    "%s:%d: depends_on: '%s:healthy', but %s has no health check: "
				    "give it %s",
				    ld->file, dep->line, shown, shown,
				    ld->compose ? "a healthcheck: with a test"
						: "health_cmd, health_tcp, health_http or notify = "
						  "true");
		}
	}
	free(names);
}

/* The networks services name are declared, and a service on none or the host's
 * network has no other. */
static void check_networks(struct loader *ld)
{
	struct hutch_stack *stack = ld->stack;
	const char **names = xcalloc(stack->n_networks + 2, sizeof(*names));
	size_t n_names = 0;
	names[n_names++] = "default";
	for (size_t i = 0; i < stack->n_networks; i++) {
		const struct stack_network *net = &stack->networks[i];
		names[n_names++] = net->name;
		if (!strcmp(net->name, "default") && net->subnet && stack->subnet)
			ERR(ld, net->subnet_line,
			    "%s:%d: subnet: the default network's subnet is also given in [stack] "
			    "at line %d: keep one",
			    ld->file, net->subnet_line, stack->subnet_line);
	}
	for (size_t i = 0; i < stack->n_services; i++) {
		const struct stack_service *svc = &stack->services[i];
		const struct stack_option *mode = stack_service_option(svc, "network");
		const char *m = mode && mode->text ? mode->text : "";
		bool own = !strcmp(m, "none") || !strcmp(m, "host");
		const char *keys[] = {"networks", "aliases", "ports"};
		for (size_t k = 0; own && k < ARRAY_SIZE(keys); k++) {
			const struct stack_option *o = stack_service_option(svc, keys[k]);
			if (!o || !o->n_words || (!strcmp(m, "host") && !strcmp(keys[k], "ports")))
				continue;
			ERR(ld, o->line,
			    "%s:%d: %s: service %s has network = %s (line %d), so it is on no "
			    "network of the stack: remove one of the two",
			    o->file ? o->file : ld->file, o->line, keys[k], svc->name, m,
			    mode->line);
		}
		const struct stack_option *o = stack_service_option(svc, "networks");
		for (size_t w = 0; o && !own && w < o->n_words; w++) {
			_cleanup_free_ char *name = xstrdup(o->words[w]);
			char *colon = strchr(name, ':');
			if (colon)
				*colon = '\0';
			bool found = false;
			for (size_t k = 0; k < n_names && !found; k++)
				found = !strcmp(names[k], name);
			if (found)
				continue;
			_cleanup_free_ char *shown = printable(name, strlen(name));
			const char *near = nearest(name, names, n_names);
			ERR(ld, o->line,
			    "%s:%d: networks: service %s: no network '%s' in this file%s%s%s: "
			    "declare it as a [network.%s] section",
			    o->file ? o->file : ld->file, o->line, svc->name, shown,
			    near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "",
			    shown);
		}
	}
	free(names);
}

/* What holds across services: container names, dependencies, the order. */
static int finish_stack(struct loader *ld)
{
	struct hutch_stack *stack = ld->stack;
	/* a built image without image = is named STACK-SERVICE, as compose does */
	for (size_t i = 0; i < stack->n_services && *stack->name; i++) {
		struct stack_service *svc = &stack->services[i];
		if (!svc->build.context || svc->image)
			continue;
		svc->image = xasprintf("%s-%s", stack->name, svc->name);
		for (char *p = svc->image; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		_cleanup_free_ char *norm = NULL;
		if (hutch_image_ref_normalize(svc->image, &norm, NULL) < 0)
			ERR(ld, svc->build.line,
			    "%s:%d: build: '%s' (the stack's and the service's names) is not a "
			    "valid image name: give the image a name with %s",
			    ld->file, svc->build.line, svc->image,
			    ld->compose ? "image:" : "image =");
	}
	check_networks(ld);
	for (size_t i = 0; i < stack->n_services; i++) {
		const struct stack_service *svc = &stack->services[i];
		const struct stack_option *cn = stack_service_option(svc, "container_name");
		if (cn && svc->replicas > 1)
			stack_diag_add(&ld->diag, cn->line,
				       "%s:%d: container_name: service %s has %u replicas, which "
				       "cannot share one container name: drop container_name or "
				       "the replicas",
				       ld->file, cn->line, svc->name, svc->replicas);
	}
	if (*stack->name) {
		for (size_t i = 0; i < stack->n_services; i++) {
			const struct stack_service *svc = &stack->services[i];
			_cleanup_free_ char *cname =
			    xasprintf("%s-%s-%u", stack->name, svc->name, svc->replicas);
			if (!hutch_name_valid(cname))
				stack_diag_add(&ld->diag, svc->line,
					       "%s:%d: [service.%s]: its containers' name '%s' is "
					       "not a valid container name",
					       ld->file, svc->line, svc->name, cname);
		}
	}
	check_deps(ld);
	if (stack_graph_order(stack, &ld->diag) < 0 || ld->diag.n > 0)
		return -1;
	return 0;
}

void stack_build(struct hutch_stack *stack, const char *msg_file, const struct stack_env *env,
		 const struct stack_key *name, const struct stack_service_in *svcs, size_t n,
		 struct stack_diag *diag)
{
	struct loader ld = {
	    .stack = stack, .file = msg_file, .env = *env, .diag = *diag, .compose = true};
	/* graph.c names the stack's file: the same as the others here */
	char *file = stack->file;
	stack->file = (char *)msg_file;
	if (name) {
		struct scan_entry e = {.key = (char *)"name", .line = name->line};
		load_stack_section(&ld, &e, name->value);
	}
	if (!stack->name)
		stack->name = name_from_dir(stack->dir);
	for (size_t i = 0; i < n; i++) {
		if (!name_ok(svcs[i].name)) {
			_cleanup_free_ char *shown = printable(svcs[i].name, strlen(svcs[i].name));
			ERR(&ld, svcs[i].line,
			    "%s:%d: [service.%s]: '%s' is not a service name: use up to %d "
			    "letters, "
			    "digits, '_', '.' or '-', starting with a letter or digit",
			    msg_file, svcs[i].line, shown, shown, STACK_NAME_MAX);
		}
		struct stack_service *svc = new_service(stack, svcs[i].name, svcs[i].line);
		struct scan_entry *es = xcalloc(svcs[i].n_keys + 1, sizeof(*es));
		struct health_keys hk = {0};
		struct env_lists vars = {0};
		for (size_t k = 0; k < svcs[i].n_keys; k++) {
			es[k].key = (char *)svcs[i].keys[k].key;
			es[k].line = svcs[i].keys[k].line;
			load_service_key(&ld, svc, &es[k], svcs[i].keys[k].value, &hk, &vars);
		}
		end_service(&ld, svc, &hk, &vars);
		free(es);
	}
	if (*stack->name)
		finish_stack(&ld);
	else
		stack_graph_order(stack, &ld.diag);
	stack->file = file;
	*diag = ld.diag;
}

int stack_ini_disagreements(const char *text, size_t len)
{
	struct scan scan = {.file = "-"};
	struct stack_diag diag = {0};
	scan_text(&scan, &diag, text, len);
	scan_index(&scan);
	int result = -1;
	if (diag.n == 0) {
		dictionary *dict = ini_load_text(text, len, NULL);
		result = dict ? 0 : 1;
		size_t distinct = 0;
		for (size_t i = 0; dict && i < scan.n_entries; i++) {
			const struct scan_entry *e = &scan.entries[i];
			if (e->last != e)
				continue;
			distinct++;
			char *full = xasprintf("%s:%s", scan.sections[e->section].lower, e->lower);
			const char *raw = iniparser_getstring(dict, full, NULL);
			result += !raw || strcmp(raw, e->value);
			free(full);
		}
		for (size_t i = 0; dict && i < scan.n_sections; i++)
			distinct += scan.sections[i].canonical == i;
		/* nothing iniparser holds that the scan did not see */
		if (dict && (size_t)dict->n != distinct)
			result++;
		if (dict)
			iniparser_freedict(dict);
	}
	stack_diag_free(&diag);
	scan_free(&scan);
	return result;
}

/* .env beside the file: variables for interpolation, not for services. */
static void read_dotenv(struct loader *ld)
{
	_cleanup_free_ char *path = join_dir(ld->stack->dir, ".env");
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	_cleanup_err_ struct hutch_err *err = NULL;
	if (stack_read_file(path, path, STACK_ENV_FILE_MAX, "stack or env file", &text, &len,
			    &err) == 0)
		stack_parse_env_file(text, len, path, 0, &ld->diag, &ld->env.dotenv,
				     &ld->env.n_dotenv);
	else if (err->errno_ != ENOENT)
		stack_diag_add(&ld->diag, 0, "%s%s%s", err->msg, err->errno_ ? ": " : "",
			       err->errno_ ? strerror(err->errno_) : "");
}

static int load(const char *path, char **envp, const char *text, size_t len,
		struct hutch_stack **out, struct hutch_err **err)
{
	struct hutch_stack *stack = xcalloc(1, sizeof(*stack));
	stack->file = xstrdup(path);
	const char *slash = strrchr(path, '/');
	stack->dir =
	    slash ? xasprintf("%.*s", (int)(slash == path ? 1 : slash - path), path) : xstrdup(".");
	struct loader ld = {.stack = stack, .file = stack->file};
	ld.env.envp = envp;
	struct scan scan = {.file = stack->file};
	dictionary *dict = NULL;

	/* Past a line the scan refused the rest is still read, as a compiler goes
	 * on after an error, so that one run lists what is wrong in the file. */
	scan_text(&scan, &ld.diag, text, len);
	scan_index(&scan);
	ld.scan_failed = ld.diag.n > 0;
	dict = ini_load_text(text, len, ld.scan_failed ? NULL : err);
	if (!dict && ld.scan_failed)
		goto fail;
	if (!dict)
		goto fail_err;

	read_dotenv(&ld);
	load_sections(&ld, &scan, dict);
	if (!stack->name) {
		stack->name = name_from_dir(stack->dir);
		if (!*stack->name) {
			_cleanup_free_ char *real = realpath(stack->dir, NULL);
			stack_diag_add(
			    &ld.diag, 0,
			    "%s: no stack name: the directory's name ('%s') has no letter "
			    "or digit to make one of: set name = NAME in [stack]",
			    stack->file, real ? real : stack->dir);
		}
	}
	if (stack->n_services == 0 && ld.diag.n == 0)
		stack_diag_add(&ld.diag, 0,
			       "%s: no services: add a [service.NAME] section with an image",
			       stack->file);
	if (finish_stack(&ld) < 0)
		goto fail;

	stack->warnings = steal_ptr(ld.diag.warnings);
	stack->n_warnings = ld.diag.n_warnings;
	ld.diag.n_warnings = 0;
	stack_diag_free(&ld.diag);
	strv_free(ld.env.dotenv, ld.env.n_dotenv);
	scan_free(&scan);
	iniparser_freedict(dict);
	*out = stack;
	return 0;
fail:
	stack_diag_fail(&ld.diag, stack->file, err);
fail_err:
	stack_diag_free(&ld.diag);
	strv_free(ld.env.dotenv, ld.env.n_dotenv);
	scan_free(&scan);
	if (dict)
		iniparser_freedict(dict);
	hutch_stack_free(stack);
	return -1;
}

int stack_load_env(const char *path, char **envp, struct hutch_stack **out, struct hutch_err **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	*out = NULL;
	if (stack_read_file(path, path, STACK_FILE_MAX, "stack or env file", &text, &len, err) < 0)
		return -1;
	return load(path, envp, text, len, out, err);
}

int hutch_stack_load(const char *path, struct hutch_stack **out, struct hutch_err **err)
{
	/* a compose file (.yaml, .yml) alone, with the defaults of its options:
	 * the same loader as hutch_stack_load_files */
	return hutch_stack_load_files(&path, 1, NULL, out, err);
}
