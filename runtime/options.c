/* Settings as users write them, one setter each, for every caller: the CLI's
 * flags and a stack file's keys are the same code path, with the same checks and
 * messages. A message names the value; the caller says where it came from. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/idmap.h"
#include "common/util.h"
#include "runtime/runtime_internal.h"

static void strv_set(char ***dst, size_t *n, char *const *src, size_t count)
{
	for (size_t i = 0; i < *n; i++)
		free((*dst)[i]);
	free(*dst);
	*dst = xcalloc(count + 1, sizeof(char *));
	for (size_t i = 0; i < count; i++)
		(*dst)[i] = xstrdup(src[i]);
	*n = count;
}

/* ---- the image, entrypoint and command ---------------------------------------- */

/* process.args = entrypoint + command, as Docker merges them: an entrypoint
 * given by the user replaces the image's and drops its Cmd; a command given by
 * the user replaces the Cmd. */
static void compose_args(struct hutch_spec *s)
{
	const struct hutch_spec_given *g = &s->given;
	char *const *ep = g->entrypoint_set ? g->entrypoint : g->image_entrypoint;
	size_t n_ep = g->entrypoint_set ? g->n_entrypoint : g->n_image_entrypoint;
	char *const *cmd = g->command_set ? g->command : g->entrypoint_set ? NULL : g->image_cmd;
	size_t n_cmd = g->command_set ? g->n_command : g->entrypoint_set ? 0 : g->n_image_cmd;
	_cleanup_free_ char **argv = xcalloc(n_ep + n_cmd + 1, sizeof(char *));
	for (size_t i = 0; i < n_ep; i++)
		argv[i] = ep[i];
	for (size_t i = 0; i < n_cmd; i++)
		argv[n_ep + i] = cmd[i];
	strv_set(&s->process.args, &s->process.n_args, argv, n_ep + n_cmd);
}

void hutch_spec_set_entrypoint(struct hutch_spec *s, char *const *argv, size_t n)
{
	strv_set(&s->given.entrypoint, &s->given.n_entrypoint, argv, n);
	s->given.entrypoint_set = true;
	compose_args(s);
}

void hutch_spec_set_command(struct hutch_spec *s, char *const *argv, size_t n)
{
	strv_set(&s->given.command, &s->given.n_command, argv, n);
	s->given.command_set = true;
	compose_args(s);
}

int hutch_spec_apply_image(struct hutch_spec *s, const struct hutch_image_config *img,
			   struct hutch_err **err)
{
	if (img->name) {
		free(s->image);
		s->image = xstrdup(img->name);
	}
	if (img->id) {
		free(s->image_id);
		s->image_id = xstrdup(img->id);
	}
	strv_set(&s->root.layers, &s->root.n_layers, img->layers, img->n_layers);
	for (size_t i = 0; i < img->n_env; i++)
		hutch_spec_set_env(s, img->env[i]);
	strv_set(&s->given.image_entrypoint, &s->given.n_image_entrypoint, img->entrypoint,
		 img->n_entrypoint);
	strv_set(&s->given.image_cmd, &s->given.n_image_cmd, img->cmd, img->n_cmd);
	compose_args(s);
	if (img->workdir && *img->workdir && hutch_spec_set_workdir(s, img->workdir, err) < 0)
		return hutch_err_wrap(err, "the image's WorkingDir");
	if (img->user && *img->user && hutch_spec_set_user(s, img->user, err) < 0)
		return hutch_err_wrap(err, "the image's User");
	if (img->stop_signal && *img->stop_signal &&
	    hutch_spec_set_stop_signal(s, img->stop_signal, err) < 0)
		return hutch_err_wrap(err, "the image's StopSignal");
	return 0;
}

/* ---- identity and process ------------------------------------------------------- */

void hutch_spec_set_name(struct hutch_spec *s, const char *name)
{
	free(s->name);
	s->name = xstrdup(name[0] == '/' && hutch_name_valid(name + 1) ? name + 1 : name);
}

int hutch_spec_set_hostname(struct hutch_spec *s, const char *name, struct hutch_err **err)
{
	char buf[HUTCH_REASON_MAX];
	const char *why = hutch_hostname_problem(name, buf);
	if (why) {
		_cleanup_free_ char *shown = printable(name, strlen(name));
		return hutch_fail(err, 0,
				  "invalid hostname '%s': %s (a hostname is labels of letters, "
				  "digits and '-' joined by '.', at most 64 characters)",
				  shown, why);
	}
	free(s->hostname);
	s->hostname = xstrdup(name);
	_cleanup_free_ char *kv = xasprintf("HOSTNAME=%s", name);
	hutch_spec_set_env(s, kv);
	return 0;
}

int hutch_spec_add_env(struct hutch_spec *s, const char *kv, struct hutch_err **err)
{
	if (!*kv || *kv == '=') {
		_cleanup_free_ char *shown = printable(kv, strlen(kv));
		return hutch_fail(err, 0, "invalid environment variable '%s': expected KEY=VALUE",
				  shown);
	}
	if (strchr(kv, '=')) {
		hutch_spec_set_env(s, kv);
		return 0;
	}
	const char *v = getenv(kv);
	if (v) {
		_cleanup_free_ char *joined = xasprintf("%s=%s", kv, v);
		hutch_spec_set_env(s, joined);
	}
	return 0;
}

/* path as given when absolute or without a base, else base/path. */
static char *path_from(const char *base_dir, const char *path)
{
	if (path[0] == '/' || !base_dir || !*base_dir)
		return xstrdup(path);
	return xasprintf("%s/%s", base_dir, path);
}

int hutch_spec_add_env_file(struct hutch_spec *s, const char *path, const char *base_dir,
			    struct hutch_err **err)
{
	/* read from base_dir's fd, so that messages name the path as given */
	_cleanup_close_ int dirfd = -1;
	if (path[0] != '/' && base_dir && *base_dir) {
		dirfd = open(base_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dirfd < 0)
			return hutch_fail_sys(err, "%s: open its directory %s", path, base_dir);
	}
	_cleanup_free_ char *text = NULL;
	if (read_file_at_most(dirfd >= 0 ? dirfd : AT_FDCWD, path, HUTCH_ENV_FILE_MAX, READ_TEXT,
			      &text, NULL, err) < 0)
		return -1;
	unsigned line_no = 0;
	char *next = text;
	while (next) {
		char *line = next;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		line_no++;
		while (*line == ' ' || *line == '\t')
			line++;
		size_t l = strlen(line);
		if (l && line[l - 1] == '\r')
			line[--l] = '\0';
		if (!*line || *line == '#')
			continue;
		if (hutch_spec_add_env(s, line, err) < 0)
			return hutch_err_wrap(err, "%s: line %u", path, line_no);
	}
	return 0;
}

int hutch_spec_set_workdir(struct hutch_spec *s, const char *dir, struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(dir, strlen(dir));
	if (dir[0] != '/')
		return hutch_fail(
		    err, 0, "invalid working directory '%s': must be an absolute path", shown);
	for (const char *c = dir; (c = strstr(c, "/..")); c += 3)
		if (c[3] == '/' || !c[3])
			return hutch_fail(
			    err, 0,
			    "invalid working directory '%s': '..' is not allowed, give "
			    "the path without it",
			    shown);
	free(s->process.cwd);
	s->process.cwd = xstrdup(dir);
	return 0;
}

int hutch_spec_set_user(struct hutch_spec *s, const char *user, struct hutch_err **err)
{
	if (user[0] == ':') {
		_cleanup_free_ char *shown = printable(user, strlen(user));
		return hutch_fail(
		    err, 0, "invalid user '%s': the user is missing before ':' (USER[:GROUP])",
		    shown);
	}
	free(s->process.user);
	s->process.user = *user ? xstrdup(user) : NULL;
	return 0;
}

int hutch_spec_set_stop_signal(struct hutch_spec *s, const char *sig, struct hutch_err **err)
{
	int n = signal_from_name(sig);
	if (n < 0) {
		_cleanup_free_ char *shown = printable(sig, strlen(sig));
		return hutch_fail(
		    err, 0,
		    "invalid stop signal '%s': give a name like SIGTERM or TERM, or a "
		    "number from 1 to %d",
		    shown, NSIG - 1);
	}
	s->process.stop_signal = n;
	return 0;
}

/* ---- resources ------------------------------------------------------------------- */

/* Why parse_size refused v: a typo, or a number that is too big. */
static const char *size_problem(const char *v)
{
	/* digits[.digits] and a unit that parses after a small number: only the
	 * number was wrong */
	size_t nd = strspn(v, "0123456789");
	if (nd > 0 && v[nd] == '.') {
		size_t frac = strspn(v + nd + 1, "0123456789");
		nd = frac ? nd + 1 + frac : 0;
	}
	_cleanup_free_ char *small = xasprintf("1%s", v + nd);
	int64_t ignored;
	if (nd > 0 && parse_size(small, &ignored) == 0)
		return "too big (the largest is 8 EiB)";
	return "expected a size: a number with an optional unit b, k, m, g or t, like 64m or 1g";
}

static int parse_size_of(const char *what, const char *v, int64_t *out, struct hutch_err **err)
{
	if (parse_size(v, out) == 0)
		return 0;
	_cleanup_free_ char *shown = printable(v, strlen(v));
	return hutch_fail(err, 0, "invalid %s '%s': %s", what, shown, size_problem(v));
}

int hutch_spec_set_memory(struct hutch_spec *s, const char *size, struct hutch_err **err)
{
	int64_t v;
	if (parse_size_of("memory limit", size, &v, err) < 0)
		return -1;
	if (v < 6 * 1024 * 1024) {
		_cleanup_free_ char *shown = printable(size, strlen(size));
		return hutch_fail(err, 0, "invalid memory limit '%s': too small, the least is 6m",
				  shown);
	}
	s->resources.memory_max = v;
	return 0;
}

int hutch_spec_set_rw_layer(struct hutch_spec *s, const char *where, struct hutch_err **err)
{
	if (!strcmp(where, "disk")) {
		s->rw_tmpfs = false;
		s->rw_tmpfs_size = 0;
		return 0;
	}
	if (!strcmp(where, "tmpfs")) {
		s->rw_tmpfs = true;
		s->rw_tmpfs_size = 0;
		return 0;
	}
	if (!strncmp(where, "tmpfs:", 6)) {
		int64_t v;
		if (parse_size_of("rw layer size", where + 6, &v, err) < 0)
			return -1;
		/* below a page tmpfs would round up; a layer that small is a typo */
		if (v < 1024 * 1024) {
			_cleanup_free_ char *shown = printable(where, strlen(where));
			return hutch_fail(err, 0, "invalid rw layer '%s': too small, the least is 1m",
					  shown);
		}
		s->rw_tmpfs = true;
		s->rw_tmpfs_size = v;
		return 0;
	}
	_cleanup_free_ char *shown = printable(where, strlen(where));
	return hutch_fail(err, 0, "invalid rw layer '%s': expected tmpfs, tmpfs:SIZE (like tmpfs:2g) or disk",
			  shown);
}

int hutch_spec_set_memory_swap(struct hutch_spec *s, const char *size, struct hutch_err **err)
{
	if (!strcmp(size, "-1")) {
		s->resources.memory_swap_max = -1;
		return 0;
	}
	return parse_size_of("memory+swap limit", size, &s->resources.memory_swap_max, err);
}

/* A decimal number as people write it: digits with an optional fraction (no
 * sign, exponent, hex or "inf", which strtod would take). */
static bool is_decimal(const char *s)
{
	size_t n = strspn(s, "0123456789");
	if (s[n] == '.')
		n += 1 + strspn(s + n + 1, "0123456789");
	return n > 0 && !s[n] && strcmp(s, ".");
}

int hutch_spec_set_cpus(struct hutch_spec *s, const char *cpus, struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(cpus, strlen(cpus));
	char *end;
	errno = 0;
	double v = is_decimal(cpus) ? strtod(cpus, &end) : 0;
	if (!is_decimal(cpus) || errno || *end || !(v > 0))
		return hutch_fail(
		    err, 0, "invalid number of CPUs '%s': expected a number like 0.5 or 2", shown);
	if (v > 1e9 || v * 100000 + 0.5 < 1000)
		return hutch_fail(err, 0, "invalid number of CPUs '%s': %s", shown,
				  v > 1e9 ? "too big" : "the minimum is 0.01");
	/* also a rule of hutch_spec_validate (a spec may come from elsewhere);
	 * here the message can name the value */
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu > 0 && v > (double)ncpu)
		return hutch_fail(err, 0, "invalid number of CPUs '%s': this machine has %ld",
				  shown, ncpu);
	s->resources.cpu_period_us = 100000;
	s->resources.cpu_quota_us = (int64_t)(v * 100000 + 0.5);
	return 0;
}

int hutch_spec_set_pids_limit(struct hutch_spec *s, const char *n, struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(n, strlen(n));
	char *end;
	errno = 0;
	long long p = strtoll(n, &end, 10);
	if (errno == ERANGE && p > 0)
		return hutch_fail(
		    err, 0, "invalid process limit '%s': too big (use -1 for no limit)", shown);
	if (errno || *end || end == n || p == 0 || p < -1)
		return hutch_fail(
		    err, 0, "invalid process limit '%s': expected a positive number or -1", shown);
	s->resources.pids_max = p > 0 ? p : 0;
	return 0;
}

static bool parse_rlim(const char *s, uint64_t *out)
{
	if (!strcmp(s, "-1") || !strcmp(s, "unlimited")) {
		*out = RLIM_INFINITY;
		return true;
	}
	char *end;
	errno = 0;
	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return false;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

int hutch_spec_add_ulimit(struct hutch_spec *s, const char *arg, struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(arg, strlen(arg));
	_cleanup_free_ char *copy = xstrdup(arg);
	char *val = strchr(copy, '=');
	if (!val)
		return hutch_fail(err, 0, "invalid ulimit '%s': expected NAME=SOFT[:HARD]", shown);
	*val++ = '\0';
	int res = hutch_rlimit_from_name(copy);
	if (res < 0) {
		_cleanup_free_ char *known = hutch_rlimit_known_names();
		_cleanup_free_ char *name = printable(copy, strlen(copy));
		return hutch_fail(err, 0, "invalid ulimit '%s': unknown limit '%s' (known: %s)",
				  shown, name, known);
	}
	char *hard = strchr(val, ':');
	if (hard)
		*hard++ = '\0';
	uint64_t soft, h;
	if (!parse_rlim(val, &soft) || !parse_rlim(hard ? hard : val, &h) || soft > h)
		return hutch_fail(err, 0, "invalid ulimit '%s': expected numbers with SOFT <= HARD",
				  shown);
	/* Refused here, with the value, rather than at start: hutch_container_start
	 * checks again with the runtime it runs under. Not root: rootless, and then
	 * in a user namespace of its own. */
	struct hutch_rlimit rl = {res, soft, h, true};
	bool unprivileged = geteuid() != 0;
	if (hutch_rlimit_check(&rl, unprivileged, unprivileged || spec_has_ns(s, HUTCH_NS_USER),
			       err) < 0)
		return hutch_err_wrap(err, "invalid ulimit '%s'", shown);
	for (size_t i = 0; i < s->process.n_rlimits; i++)
		if (s->process.rlimits[i].resource == res) {
			s->process.rlimits[i] = rl;
			return 0;
		}
	s->process.rlimits =
	    xrealloc(s->process.rlimits, (s->process.n_rlimits + 1) * sizeof(struct hutch_rlimit));
	s->process.rlimits[s->process.n_rlimits++] = rl;
	return 0;
}

/* ---- security -------------------------------------------------------------------- */

/* Docker's default set less every drop, plus every add (ALL: ~0), whatever the
 * order they came in; --privileged has every capability and ignores both. */
static void compose_caps(struct hutch_spec *s)
{
	if (s->privileged)
		return;
	hutch_spec_set_caps(s, (HUTCH_DEFAULT_CAPS & ~s->given.caps_dropped) | s->given.caps_added);
}

static int cap_mask(const char *name, uint64_t *mask, struct hutch_err **err)
{
	if (!strcasecmp(name, "ALL")) {
		*mask = ~0ULL;
		return 0;
	}
	int c = hutch_cap_from_name(name);
	if (c < 0) {
		_cleanup_free_ char *shown = printable(name, strlen(name));
		return hutch_fail(err, 0,
				  "unknown capability '%s' (give a name like NET_RAW or "
				  "CAP_SYS_ADMIN, or ALL)",
				  shown);
	}
	*mask = 1ULL << c;
	return 0;
}

int hutch_spec_cap_add(struct hutch_spec *s, const char *cap, struct hutch_err **err)
{
	uint64_t m;
	if (cap_mask(cap, &m, err) < 0)
		return -1;
	s->given.caps_added |= m;
	compose_caps(s);
	return 0;
}

int hutch_spec_cap_drop(struct hutch_spec *s, const char *cap, struct hutch_err **err)
{
	uint64_t m;
	if (cap_mask(cap, &m, err) < 0)
		return -1;
	s->given.caps_dropped |= m;
	compose_caps(s);
	return 0;
}

/* ---- network --------------------------------------------------------------------- */

int hutch_spec_set_network(struct hutch_spec *s, const char *mode, struct hutch_err **err)
{
	if (!strcmp(mode, "none")) {
		hutch_spec_set_namespace(s, HUTCH_NS_NETWORK, NULL);
		return 0;
	}
	if (!strcmp(mode, "host")) {
		hutch_spec_share_namespace(s, HUTCH_NS_NETWORK);
		return 0;
	}
	_cleanup_free_ char *shown = printable(mode, strlen(mode));
	return hutch_fail(
	    err, 0, "network mode '%s' is not available: use none (loopback only) or host", shown);
}

int hutch_spec_add_host_entry(struct hutch_spec *s, const char *arg, struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(arg, strlen(arg));
	size_t n = strcspn(arg, ":=");
	if (!arg[n])
		return hutch_fail(err, 0, "invalid host entry '%s': expected HOST:IP", shown);
	_cleanup_free_ char *name = xasprintf("%.*s", (int)n, arg);
	_cleanup_free_ char *ip = xstrdup(arg + n + 1);
	size_t l = strlen(ip);
	if (l >= 2 && ip[0] == '[' && ip[l - 1] == ']') {
		memmove(ip, ip + 1, l - 2);
		ip[l - 2] = '\0';
	}
	if (!strcmp(ip, "host-gateway"))
		return hutch_fail(
		    err, 0,
		    "invalid host entry '%s': host-gateway needs a container network; "
		    "give the address",
		    shown);
	if (hutch_spec_add_host(s, name, ip, err) < 0)
		return hutch_err_wrap(err, "host entry '%s'", shown);
	return 0;
}

/* ---- mounts ---------------------------------------------------------------------- */

int hutch_spec_add_volume(struct hutch_spec *s, const char *arg, const char *base_dir,
			  struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(arg, strlen(arg));
	_cleanup_free_ char *copy = xstrdup(arg);
	char *src = copy, *dst = strchr(copy, ':'), *mode = NULL;
	if (!dst)
		return hutch_fail(err, 0, "invalid volume '%s': expected SRC:DST[:ro|rw]", shown);
	*dst++ = '\0';
	mode = strchr(dst, ':');
	if (mode)
		*mode++ = '\0';
	if (!*src || !*dst)
		return hutch_fail(err, 0, "invalid volume '%s': expected SRC:DST[:ro|rw]", shown);
	if (src[0] != '/' && src[0] != '.' && src[0] != '~')
		return hutch_fail(err, 0,
				  "invalid volume '%s': named volumes are not supported; give an "
				  "absolute path or ./relative path as the source",
				  shown);
	if (dst[0] != '/')
		return hutch_fail(
		    err, 0, "invalid volume '%s': the destination must be an absolute path", shown);
	_cleanup_free_ char *full = path_from(base_dir, src);
	_cleanup_free_ char *src_shown = printable(src, strlen(src));
	char resolved[PATH_MAX];
	if (!realpath(full, resolved))
		return errno == ENOENT
			   ? hutch_fail(err, 0, "invalid volume '%s': the source %s does not exist",
					shown, src_shown)
			   : hutch_fail(err, errno, "invalid volume '%s': the source %s", shown,
					src_shown);
	_cleanup_free_ char *opts = xstrdup("rbind");
	if (mode && *mode) {
		_cleanup_free_ char *m = xstrdup(mode);
		char *save = NULL;
		for (char *o = strtok_r(m, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
			static const char *const ok[] = {
			    "ro",     "rw",	"z",	   "Z",	     "private", "rprivate", "slave",
			    "rslave", "shared", "rshared", "nosuid", "nodev",	"noexec"};
			bool good = false;
			for (size_t k = 0; k < ARRAY_SIZE(ok); k++)
				good |= !strcmp(o, ok[k]);
			if (!good) {
				_cleanup_free_ char *o_shown = printable(o, strlen(o));
				return hutch_fail(err, 0,
						  "invalid volume '%s': unknown option '%s'", shown,
						  o_shown);
			}
			char *n = xasprintf("%s,%s", opts, o);
			free(opts);
			opts = n;
		}
	}
	return hutch_spec_add_mount(s, "bind", resolved, dst, opts);
}

int hutch_spec_add_tmpfs(struct hutch_spec *s, const char *arg, struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(arg, strlen(arg));
	_cleanup_free_ char *copy = xstrdup(arg);
	char *opts = strchr(copy, ':');
	if (opts)
		*opts++ = '\0';
	if (copy[0] != '/')
		return hutch_fail(
		    err, 0, "invalid tmpfs '%s': the destination must be an absolute path", shown);
	if (opts) {
		/* sizes checked here so that the message names the value; the kernel
		 * judges the rest when it mounts it */
		_cleanup_free_ char *o2 = xstrdup(opts);
		char *save = NULL;
		for (char *o = strtok_r(o2, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
			int64_t sz;
			if (!strncmp(o, "size=", 5) && parse_size(o + 5, &sz) < 0) {
				_cleanup_free_ char *size = printable(o + 5, strlen(o + 5));
				return hutch_fail(err, 0, "invalid tmpfs '%s': size '%s': %s",
						  shown, size, size_problem(o + 5));
			}
		}
	}
	_cleanup_free_ char *all =
	    xasprintf("nosuid,nodev,noexec%s%s", opts && *opts ? "," : "", opts ? opts : "");
	return hutch_spec_add_mount(s, "tmpfs", "tmpfs", copy, all);
}

/* ---- what the runtime adds -------------------------------------------------------- */

/* The single-id note is said once per user: a marker in the run root (which
 * is the user's own, and goes away on reboot with $XDG_RUNTIME_DIR). */
static bool first_single_id_run(const struct hutch_runtime *rt)
{
	if (mkdir_p_at(AT_FDCWD, rt->run_root, 0700, NULL) < 0)
		return true;
	_cleanup_free_ char *marker = xasprintf("%s/single-id-note-given", rt->run_root);
	int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno != EEXIST;
	close(fd);
	return true;
}

int hutch_spec_for_runtime(const struct hutch_runtime *rt, struct hutch_spec *s,
			   struct hutch_err **err)
{
	if (!rt->rootless)
		return 0;
	/* ourselves as root inside, plus our subordinate ranges */
	struct id_mapping m;
	id_mapping_for_self(&m);
	if (!m.subordinate && (rt->log || !rt->quiet) && first_single_id_run(rt))
		hutch_runtime_log(
		    rt, HUTCH_LOG_NOTE,
		    "no subordinate ids for uid %u in /etc/subuid and /etc/subgid (or no "
		    "newuidmap/newgidmap): only your own uid is mapped (to root): files the "
		    "image gives to other owners are root's in the container, and --user other "
		    "than root fails. To map more, add ranges for your user to /etc/subuid and "
		    "/etc/subgid (usermod --add-subuids, --add-subgids). (Said once.)",
		    (unsigned)getuid());
	hutch_spec_set_namespace(s, HUTCH_NS_USER, NULL);
	free(s->uid_map);
	free(s->gid_map);
	s->uid_map = xcalloc(m.n_uid, sizeof(*s->uid_map));
	s->gid_map = xcalloc(m.n_gid, sizeof(*s->gid_map));
	for (size_t i = 0; i < m.n_uid; i++)
		s->uid_map[i] =
		    (struct hutch_id_map){m.uid[i].inside, m.uid[i].outside, m.uid[i].count};
	for (size_t i = 0; i < m.n_gid; i++)
		s->gid_map[i] =
		    (struct hutch_id_map){m.gid[i].inside, m.gid[i].outside, m.gid[i].count};
	s->n_uid_map = m.n_uid;
	s->n_gid_map = m.n_gid;
	(void)err;
	return 0;
}
