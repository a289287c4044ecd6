/* hutch run: docker-like flags -> a container spec -> the runtime. */
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

#include "cli/cli.h"
#include "common/idmap.h"
#include "common/util.h"
#include "images/images.h"
#include "runtime/runtime.h"

struct run_opts {
	bool rm, interactive, tty, read_only, init, privileged;
	bool no_new_privs_set, no_new_privs, seccomp_unconfined;
	const char *name, *hostname, *workdir, *user, *entrypoint, *network;
	const char *memory, *memory_swap, *cpus, *pids_limit, *stop_signal;
	const char **env, **volumes, **tmpfs, **cap_add, **cap_drop, **ulimits, **env_files;
	size_t n_env, n_volumes, n_tmpfs, n_cap_add, n_cap_drop, n_ulimits, n_env_files;
	const char **dns, **dns_search, **dns_options, **add_hosts, **devices;
	size_t n_dns, n_dns_search, n_dns_options, n_add_hosts, n_devices;
	bool entrypoint_set, detach;
};

static void run_usage(FILE *out)
{
	fputs("Usage: hutch run [OPTIONS] IMAGE [COMMAND [ARG...]]\n"
	      "\n"
	      "  -d, --detach           run in the background and print the container id\n"
	      "  --rm                   remove the container when it exits\n"
	      "  -i, --interactive      keep stdin open\n"
	      "  -t, --tty              allocate a pseudo-terminal\n"
	      "  -e, --env K=V|K        set an environment variable (K alone: from here)\n"
	      "      --env-file FILE    read K=V lines from FILE\n"
	      "  -v, --volume SRC:DST[:ro|rw]  bind mount (SRC absolute or ./relative)\n"
	      "      --tmpfs DST[:OPTS] mount a tmpfs (default nosuid,nodev,noexec)\n"
	      "  -w, --workdir DIR      working directory inside the container\n"
	      "  -u, --user U[:G]       user name or uid, group name or gid\n"
	      "  -h, --hostname NAME    container hostname (default: short id)\n"
	      "      --name NAME        container name\n"
	      "      --entrypoint CMD   override the image's entrypoint\n"
	      "      --read-only        mount the root filesystem read-only\n"
	      "  -m, --memory SIZE      memory limit (e.g. 64m, 1g)\n"
	      "      --memory-swap SIZE memory+swap limit (-1: unlimited swap)\n"
	      "      --cpus N           CPU limit (e.g. 0.5)\n"
	      "      --pids-limit N     maximum number of processes\n"
	      "      --ulimit NAME=SOFT[:HARD]  e.g. nofile=1024:2048\n"
	      "      --cap-add CAP      add a capability (or ALL)\n"
	      "      --cap-drop CAP     drop a capability (or ALL)\n"
	      "      --network MODE     none (default: loopback only) or host\n"
	      "      --dns IP           a nameserver for /etc/resolv.conf\n"
	      "      --dns-search DOMAIN  a search domain for /etc/resolv.conf ('.': none)\n"
	      "      --dns-option OPT   a resolv.conf option (e.g. ndots:2)\n"
	      "      --add-host HOST:IP a line for /etc/hosts\n"
	      "      --init             run a tiny init as pid 1 (reaps zombies, forwards signals)\n"
	      "      --device HOST[:DEST][:PERMS]  a host device node (PERMS: of rwm)\n"
	      "      --privileged       all capabilities and host devices, no seccomp or masks\n"
	      "      --security-opt OPT seccomp=unconfined, no-new-privileges[=true|false]\n"
	      "      --stop-signal SIG  signal that stops the container (default SIGTERM)\n",
	      out);
}

static void push(const char ***v, size_t *n, const char *s)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(char *));
	(*v)[(*n)++] = s;
}

/* Option table: long name, short letter, whether it takes a value. */
enum opt_id {
	O_RM, O_I, O_T, O_E, O_ENVFILE, O_V, O_TMPFS, O_W, O_U, O_H, O_NAME, O_ENTRY, O_RO, O_MEM,
	O_SWAP, O_CPUS, O_PIDS, O_ULIMIT, O_CAPADD, O_CAPDROP, O_NET, O_INIT, O_PRIV, O_SECOPT,
	O_STOPSIG, O_HELP, O_DETACH, O_DNS, O_DNS_SEARCH, O_DNS_OPTION, O_ADD_HOST, O_DEVICE,
};
static const struct cli_opt options[] = {
	{"rm", 0, false, O_RM},
	{"interactive", 'i', false, O_I},
	{"tty", 't', false, O_T},
	{"env", 'e', true, O_E},
	{"env-file", 0, true, O_ENVFILE},
	{"volume", 'v', true, O_V},
	{"tmpfs", 0, true, O_TMPFS},
	{"workdir", 'w', true, O_W},
	{"user", 'u', true, O_U},
	{"hostname", 'h', true, O_H},
	{"name", 0, true, O_NAME},
	{"entrypoint", 0, true, O_ENTRY},
	{"read-only", 0, false, O_RO},
	{"memory", 'm', true, O_MEM},
	{"memory-swap", 0, true, O_SWAP},
	{"cpus", 0, true, O_CPUS},
	{"pids-limit", 0, true, O_PIDS},
	{"ulimit", 0, true, O_ULIMIT},
	{"cap-add", 0, true, O_CAPADD},
	{"cap-drop", 0, true, O_CAPDROP},
	{"network", 0, true, O_NET},
	{"net", 0, true, O_NET},
	{"init", 0, false, O_INIT},
	{"privileged", 0, false, O_PRIV},
	{"security-opt", 0, true, O_SECOPT},
	{"stop-signal", 0, true, O_STOPSIG},
	{"help", 0, false, O_HELP},
	{"detach", 'd', false, O_DETACH},
	{"dns", 0, true, O_DNS},
	{"dns-search", 0, true, O_DNS_SEARCH},
	{"dns-option", 0, true, O_DNS_OPTION},
	{"dns-opt", 0, true, O_DNS_OPTION},
	{"add-host", 0, true, O_ADD_HOST},
	{"device", 0, true, O_DEVICE},
};

static int set_option(struct run_opts *o, enum opt_id id, const char *v)
{
	switch (id) {
	case O_RM: o->rm = true; break;
	case O_I: o->interactive = true; break;
	case O_T: o->tty = true; break;
	case O_E: push(&o->env, &o->n_env, v); break;
	case O_ENVFILE: push(&o->env_files, &o->n_env_files, v); break;
	case O_V: push(&o->volumes, &o->n_volumes, v); break;
	case O_TMPFS: push(&o->tmpfs, &o->n_tmpfs, v); break;
	case O_W: o->workdir = v; break;
	case O_U: o->user = v; break;
	case O_H: o->hostname = v; break;
	case O_NAME: o->name = v; break;
	case O_ENTRY: o->entrypoint = v; o->entrypoint_set = true; break;
	case O_RO: o->read_only = true; break;
	case O_MEM: o->memory = v; break;
	case O_SWAP: o->memory_swap = v; break;
	case O_CPUS: o->cpus = v; break;
	case O_PIDS: o->pids_limit = v; break;
	case O_ULIMIT: push(&o->ulimits, &o->n_ulimits, v); break;
	case O_CAPADD: push(&o->cap_add, &o->n_cap_add, v); break;
	case O_CAPDROP: push(&o->cap_drop, &o->n_cap_drop, v); break;
	case O_NET: o->network = v; break;
	case O_INIT: o->init = true; break;
	case O_PRIV: o->privileged = true; break;
	case O_SECOPT:
		if (!strcmp(v, "seccomp=unconfined") || !strcmp(v, "seccomp:unconfined")) {
			o->seccomp_unconfined = true;
		} else if (!strcmp(v, "no-new-privileges") ||
			   !strcmp(v, "no-new-privileges=true") ||
			   !strcmp(v, "no-new-privileges:true")) {
			o->no_new_privs_set = o->no_new_privs = true;
		} else if (!strcmp(v, "no-new-privileges=false") ||
			   !strcmp(v, "no-new-privileges:false")) {
			o->no_new_privs_set = true;
			o->no_new_privs = false;
		} else {
			fprintf(stderr,
				"hutch: unsupported --security-opt '%s' (supported: "
				"seccomp=unconfined, no-new-privileges[=true|false])\n",
				v);
			return -1;
		}
		break;
	case O_STOPSIG: o->stop_signal = v; break;
	case O_HELP: run_usage(stdout); exit(0);
	case O_DETACH: o->detach = true; break;
	case O_DNS: push(&o->dns, &o->n_dns, v); break;
	case O_DNS_SEARCH: push(&o->dns_search, &o->n_dns_search, v); break;
	case O_DNS_OPTION: push(&o->dns_options, &o->n_dns_options, v); break;
	case O_ADD_HOST: push(&o->add_hosts, &o->n_add_hosts, v); break;
	case O_DEVICE: push(&o->devices, &o->n_devices, v); break;
	}
	return 0;
}

static int set_run_option(void *o, int id, const char *v)
{
	return set_option(o, (enum opt_id)id, v);
}

/* Returns the index of the image argument, or -1. */
static int parse_run_args(struct run_opts *o, int argc, char **argv)
{
	/* the command's options are not ours: options end at the image */
	int i = cli_parse_opts("run", "", options, ARRAY_SIZE(options), false, argc, argv,
			       set_run_option, o);
	/* -1: no image; -2: --help; -3: a bad option, already said */
	return i >= argc ? -1 : i == -2 ? -2 : i < 0 ? -3 : i;
}

static int fail(struct hutch_err **err, const char *fmt, const char *value)
{
	return hutch_fail(err, 0, fmt, value);
}

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

static int parse_size_flag(const char *flag, const char *v, int64_t *out, struct hutch_err **err)
{
	if (parse_size(v, out) == 0)
		return 0;
	return hutch_fail(err, 0, "invalid %s '%s': %s", flag, v, size_problem(v));
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

/* The runtime's rule (hutch_hostname_problem), said with the flag's name. */
static int check_hostname(const char *h, struct hutch_err **err)
{
	char buf[HUTCH_REASON_MAX];
	const char *why = hutch_hostname_problem(h, buf);
	if (!why)
		return 0;
	_cleanup_free_ char *shown = printable(h, strlen(h));
	return hutch_fail(err, 0,
			  "invalid --hostname '%s': %s (a hostname is labels of letters, digits "
			  "and '-' joined by '.', at most 64 characters)",
			  shown, why);
}

static int add_env(struct hutch_spec *spec, const char *e, struct hutch_err **err)
{
	if (!*e || *e == '=')
		return fail(err, "invalid environment variable '%s': expected KEY=VALUE", e);
	if (strchr(e, '=')) {
		hutch_spec_set_env(spec, e);
		return 0;
	}
	const char *v = getenv(e);
	if (v) {
		_cleanup_free_ char *kv = xasprintf("%s=%s", e, v);
		hutch_spec_set_env(spec, kv);
	}
	return 0;
}

static int add_env_file(struct hutch_spec *spec, const char *path, struct hutch_err **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (read_file_at(AT_FDCWD, path, &text, &len, err) < 0)
		return hutch_err_wrap(err, "--env-file");
	if (memchr(text, '\0', len))
		return fail(
		    err, "--env-file %s: has a NUL byte: expected a text file of KEY=VALUE lines",
		    path);
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		while (*line == ' ' || *line == '\t')
			line++;
		size_t l = strlen(line);
		if (l && line[l - 1] == '\r')
			line[--l] = '\0';
		if (!*line || *line == '#')
			continue;
		if (add_env(spec, line, err) < 0)
			return hutch_err_wrap(err, "--env-file %s", path);
	}
	return 0;
}

static int add_volume(struct hutch_spec *spec, const char *arg, struct hutch_err **err)
{
	_cleanup_free_ char *copy = xstrdup(arg);
	char *src = copy, *dst = strchr(copy, ':'), *mode = NULL;
	if (!dst)
		return fail(err, "invalid volume '%s': expected SRC:DST[:ro|rw]", arg);
	*dst++ = '\0';
	mode = strchr(dst, ':');
	if (mode)
		*mode++ = '\0';
	if (!*src || !*dst)
		return fail(err, "invalid volume '%s': expected SRC:DST[:ro|rw]", arg);
	if (src[0] != '/' && src[0] != '.' && src[0] != '~')
		return fail(err,
			    "invalid volume '%s': named volumes are not supported; give an absolute "
			    "path or ./relative path as the source",
			    arg);
	if (dst[0] != '/')
		return fail(err, "invalid volume '%s': the destination must be an absolute path",
			    arg);
	char resolved[PATH_MAX];
	if (!realpath(src, resolved))
		return errno == ENOENT
			   ? hutch_fail(err, 0, "invalid volume '%s': the source %s does not exist",
					arg, src)
			   : hutch_fail(err, errno, "invalid volume '%s': the source %s", arg, src);
	_cleanup_free_ char *opts = xstrdup("rbind");
	if (mode && *mode) {
		_cleanup_free_ char *m = xstrdup(mode);
		char *save = NULL;
		for (char *o = strtok_r(m, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
			static const char *const ok[] = {"ro",	   "rw",     "z",	"Z",
							 "private", "rprivate", "slave", "rslave",
							 "shared",  "rshared",  "nosuid", "nodev",
							 "noexec"};
			bool good = false;
			for (size_t k = 0; k < ARRAY_SIZE(ok); k++)
				good |= !strcmp(o, ok[k]);
			if (!good)
				return hutch_fail(err, 0, "invalid volume '%s': unknown option '%s'",
						  arg, o);
			char *n = xasprintf("%s,%s", opts, o);
			free(opts);
			opts = n;
		}
	}
	return hutch_spec_add_mount(spec, "bind", resolved, dst, opts);
}

static int add_tmpfs(struct hutch_spec *spec, const char *arg, struct hutch_err **err)
{
	_cleanup_free_ char *copy = xstrdup(arg);
	char *opts = strchr(copy, ':');
	if (opts)
		*opts++ = '\0';
	if (copy[0] != '/')
		return fail(err, "invalid --tmpfs '%s': the destination must be an absolute path",
			    arg);
	_cleanup_free_ char *all = xasprintf("nosuid,nodev,noexec%s%s", opts && *opts ? "," : "",
					      opts ? opts : "");
	if (opts) {
		/* validate sizes early so the error names the value */
		_cleanup_free_ char *o2 = xstrdup(opts);
		char *save = NULL;
		for (char *o = strtok_r(o2, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
			int64_t sz;
			if (!strncmp(o, "size=", 5) && parse_size(o + 5, &sz) < 0)
				return hutch_fail(err, 0, "invalid --tmpfs '%s': size '%s': %s",
						  arg, o + 5, size_problem(o + 5));
		}
	}
	return hutch_spec_add_mount(spec, "tmpfs", "tmpfs", copy, all);
}

static bool parse_u64(const char *s, uint64_t *out)
{
	if (!strcmp(s, "-1") || !strcmp(s, "unlimited")) {
		*out = RLIM_INFINITY;
		return true;
	}
	char *end;
	errno = 0;
	if (!*s || *s == '-')
		return false;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

static int add_ulimit(struct hutch_spec *spec, const char *arg, bool rootless,
		      struct hutch_err **err)
{
	_cleanup_free_ char *copy = xstrdup(arg);
	char *val = strchr(copy, '=');
	if (!val)
		return fail(err, "invalid --ulimit '%s': expected NAME=SOFT[:HARD]", arg);
	*val++ = '\0';
	int res = hutch_rlimit_from_name(copy);
	if (res < 0) {
		_cleanup_free_ char *known = hutch_rlimit_known_names();
		return hutch_fail(err, 0, "invalid --ulimit '%s': unknown limit '%s' (known: %s)",
				  arg, copy, known);
	}
	char *hard = strchr(val, ':');
	if (hard)
		*hard++ = '\0';
	uint64_t soft, h;
	if (!parse_u64(val, &soft) || !parse_u64(hard ? hard : val, &h) || soft > h)
		return fail(err, "invalid --ulimit '%s': expected numbers with SOFT <= HARD", arg);
	/* The runtime refuses it again before it starts anything; here the
	 * message can name the flag as it was given. A rootless container has a
	 * user namespace of its own. */
	struct hutch_rlimit rl = {res, soft, h, true};
	if (hutch_rlimit_check(&rl, rootless, rootless, err) < 0)
		return hutch_err_wrap(err, "invalid --ulimit '%s'", arg);
	for (size_t i = 0; i < spec->process.n_rlimits; i++)
		if (spec->process.rlimits[i].resource == res) {
			spec->process.rlimits[i] = rl;
			return 0;
		}
	spec->process.rlimits = xrealloc(spec->process.rlimits,
					 (spec->process.n_rlimits + 1) * sizeof(struct hutch_rlimit));
	spec->process.rlimits[spec->process.n_rlimits++] = rl;
	return 0;
}

/* --cap-drop and --cap-add, in that order as in Docker, on the bounding,
 * effective and permitted sets ("ALL": every capability hutch has). */
static int apply_caps(struct hutch_spec *spec, const struct run_opts *o, struct hutch_err **err)
{
	uint64_t caps = spec->process.caps.bounding;
	for (size_t i = 0; i < o->n_cap_drop; i++) {
		if (!strcasecmp(o->cap_drop[i], "ALL")) {
			caps = 0;
			continue;
		}
		int c = hutch_cap_from_name(o->cap_drop[i]);
		if (c < 0)
			return fail(err, "unknown capability '%s' in --cap-drop", o->cap_drop[i]);
		caps &= ~(1ULL << c);
	}
	for (size_t i = 0; i < o->n_cap_add; i++) {
		if (!strcasecmp(o->cap_add[i], "ALL")) {
			caps = ~0ULL;
			continue;
		}
		int c = hutch_cap_from_name(o->cap_add[i]);
		if (c < 0)
			return fail(err, "unknown capability '%s' in --cap-add", o->cap_add[i]);
		caps |= 1ULL << c;
	}
	hutch_spec_set_caps(spec, caps);
	return 0;
}


/* --add-host HOST:IP (or HOST=IP; an IPv6 address may be in brackets). */
static int add_host(struct hutch_spec *spec, const char *arg, struct hutch_err **err)
{
	size_t n = strcspn(arg, ":=");
	if (!arg[n])
		return fail(err, "invalid --add-host '%s': expected HOST:IP", arg);
	_cleanup_free_ char *name = strndup(arg, n);
	_cleanup_free_ char *ip = xstrdup(arg + n + 1);
	size_t l = strlen(ip);
	if (l >= 2 && ip[0] == '[' && ip[l - 1] == ']') {
		memmove(ip, ip + 1, l - 2);
		ip[l - 2] = '\0';
	}
	if (!strcmp(ip, "host-gateway"))
		return fail(err,
			    "invalid --add-host '%s': host-gateway needs a container network; "
			    "give the address",
			    arg);
	if (!name || hutch_spec_add_host(spec, name, ip, err) < 0)
		return hutch_err_wrap(err, "--add-host '%s'", arg);
	return 0;
}

static int apply_dns_and_hosts(struct hutch_spec *spec, const struct run_opts *o,
			       struct hutch_err **err)
{
	for (size_t i = 0; i < o->n_dns; i++)
		if (hutch_spec_add_dns_server(spec, o->dns[i], err) < 0)
			return hutch_err_wrap(err, "--dns");
	for (size_t i = 0; i < o->n_dns_search; i++)
		if (hutch_spec_add_dns_search(spec, o->dns_search[i], err) < 0)
			return hutch_err_wrap(err, "--dns-search");
	for (size_t i = 0; i < o->n_dns_options; i++)
		if (hutch_spec_add_dns_option(spec, o->dns_options[i], err) < 0)
			return hutch_err_wrap(err, "--dns-option");
	for (size_t i = 0; i < o->n_add_hosts; i++)
		if (add_host(spec, o->add_hosts[i], err) < 0)
			return -1;
	return 0;
}

static void set_strv(char ***dst, size_t *n, char *const *src, size_t count)
{
	for (size_t i = 0; i < *n; i++)
		free((*dst)[i]);
	free(*dst);
	*dst = xcalloc(count + 1, sizeof(char *));
	for (size_t i = 0; i < count; i++)
		(*dst)[i] = xstrdup(src[i]);
	*n = count;
}

/* The single-id note is said once per user: a marker in the run root (which
 * is the user's own, and goes away on reboot with $XDG_RUNTIME_DIR). */
static bool first_single_id_run(const struct cli_ctx *ctx)
{
	if (mkdir_p_at(AT_FDCWD, ctx->run_root, 0700, NULL) < 0)
		return true;
	_cleanup_free_ char *marker = xasprintf("%s/single-id-note-given", ctx->run_root);
	int fd = open(marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno != EEXIST;
	close(fd);
	return true;
}

static int build_spec(struct cli_ctx *ctx, const struct run_opts *o, const struct hutch_image *img,
		      int cmd_argc, char **cmd_argv, struct hutch_spec *spec,
		      struct hutch_err **err)
{
	char id[65];
	if (random_hex_id(id, err) < 0)
		return -1;
	spec->id = xstrdup(id);
	spec->image = xstrdup(img->name);
	spec->image_id = xstrdup(img->id);
	spec->auto_remove = o->rm;
	spec->detached = o->detach;
	/* One leading '/' is dropped, as Docker does. hutch_spec_validate checks
	 * names against Docker's rule: a bad one reaches it as given, so that its
	 * message shows what was typed. */
	if (o->name)
		spec->name = xstrdup(
		    o->name[0] == '/' && hutch_name_valid(o->name + 1) ? o->name + 1 : o->name);
	if (o->hostname && check_hostname(o->hostname, err) < 0)
		return -1;
	spec->hostname = o->hostname ? xstrdup(o->hostname) : strndup(id, 12);
	set_strv(&spec->root.layers, &spec->root.n_layers, img->layer_dirs, img->n_layers);

	/* The process: the image's config, then flags. */
	for (size_t i = 0; i < img->n_env; i++)
		hutch_spec_set_env(spec, img->env[i]);
	_cleanup_free_ char *hn = xasprintf("HOSTNAME=%s", spec->hostname);
	hutch_spec_set_env(spec, hn);
	if (o->tty)
		hutch_spec_set_env(spec, "TERM=xterm");
	for (size_t i = 0; i < o->n_env_files; i++)
		if (add_env_file(spec, o->env_files[i], err) < 0)
			return -1;
	for (size_t i = 0; i < o->n_env; i++)
		if (add_env(spec, o->env[i], err) < 0)
			return -1;

	/* argv = entrypoint + (command given here, or the image's Cmd unless
	 * --entrypoint was given, which resets it as in Docker) */
	char **argv = NULL;
	size_t argc = 0;
	if (o->entrypoint_set) {
		if (*o->entrypoint) {
			argv = xrealloc(argv, (argc + 1) * sizeof(char *));
			argv[argc++] = (char *)o->entrypoint;
		}
	} else {
		for (size_t i = 0; i < img->n_entrypoint; i++) {
			argv = xrealloc(argv, (argc + 1) * sizeof(char *));
			argv[argc++] = img->entrypoint[i];
		}
	}
	if (cmd_argc > 0) {
		for (int i = 0; i < cmd_argc; i++) {
			argv = xrealloc(argv, (argc + 1) * sizeof(char *));
			argv[argc++] = cmd_argv[i];
		}
	} else if (!o->entrypoint_set) {
		for (size_t i = 0; i < img->n_cmd; i++) {
			argv = xrealloc(argv, (argc + 1) * sizeof(char *));
			argv[argc++] = img->cmd[i];
		}
	}
	set_strv(&spec->process.args, &spec->process.n_args, argv, argc);
	free(argv);
	if (argc == 0 && o->entrypoint_set)
		return hutch_fail(
		    err, 0,
		    "no command: --entrypoint '' drops the image's Entrypoint and Cmd, "
		    "so give a command after the image");
	if (argc == 0)
		return fail(err,
			    "no command given and image '%s' has no Cmd or Entrypoint: give one "
			    "after the image",
			    img->name);
	if (!*spec->process.args[0]) {
		/* as Docker: an empty name is a command that is not found */
		hutch_fail(err, 0,
			   "exec \"\": executable file not found in $PATH (the command is an empty "
			   "string)");
		(*err)->exit_code = 127;
		return -1;
	}

	free(spec->process.cwd);
	spec->process.cwd = xstrdup(o->workdir ? o->workdir : img->workdir ? img->workdir : "/");
	const char *cwd = spec->process.cwd, *cwd_from = o->workdir ? "--workdir"
								    : "the image's "
								      "WorkingDir";
	if (cwd[0] != '/')
		return hutch_fail(err, 0, "invalid %s '%s': must be an absolute path", cwd_from,
				  cwd);
	for (const char *c = cwd; (c = strstr(c, "/..")); c += 3)
		if (c[3] == '/' || !c[3])
			return hutch_fail(err, 0,
					  "invalid %s '%s': '..' is not allowed, give the path "
					  "without it",
					  cwd_from, cwd);
	if (o->user && o->user[0] == ':')
		return fail(err,
			    "invalid --user '%s': the user is missing before ':' (USER[:GROUP])",
			    o->user);
	spec->process.user = o->user ? xstrdup(o->user) : img->user ? xstrdup(img->user) : NULL;
	spec->process.terminal = o->tty;
	spec->process.interactive = o->interactive;
	spec->process.init = o->init;
	spec->root.readonly = o->read_only;
	const char *stop = o->stop_signal ? o->stop_signal : img->stop_signal;
	if (stop) {
		int sig = cli_parse_signal(stop);
		if (sig < 0)
			return hutch_fail(err, 0,
					  "invalid stop signal '%s'%s: give a name like SIGTERM or "
					  "TERM, or a number from 1 to %d",
					  stop, o->stop_signal ? "" : " in the image's config",
					  NSIG - 1);
		spec->process.stop_signal = sig;
	}

	/* Resources */
	if (o->memory) {
		if (parse_size_flag("--memory", o->memory, &spec->resources.memory_max, err) < 0)
			return -1;
		if (spec->resources.memory_max < 6 * 1024 * 1024)
			return fail(err, "invalid --memory '%s': too small, the least is 6m",
				    o->memory);
	}
	if (o->memory_swap) {
		if (!strcmp(o->memory_swap, "-1")) {
			spec->resources.memory_swap_max = -1;
		} else {
			if (parse_size_flag("--memory-swap", o->memory_swap,
					    &spec->resources.memory_swap_max, err) < 0)
				return -1;
			if (!o->memory)
				return fail(err,
					    "--memory-swap '%s' needs --memory: it limits memory "
					    "plus swap, so give --memory too (or --memory-swap -1 "
					    "for unlimited swap)",
					    o->memory_swap);
			if (spec->resources.memory_swap_max < spec->resources.memory_max)
				return hutch_fail(err, 0,
						  "invalid --memory-swap '%s': it limits memory "
						  "plus swap, so it must be at least --memory '%s'",
						  o->memory_swap, o->memory);
		}
	}
	if (o->cpus) {
		char *end;
		errno = 0;
		double cpus = strtod(o->cpus, &end);
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		if (!is_decimal(o->cpus) || errno || *end || !(cpus > 0))
			return fail(err, "invalid --cpus '%s': expected a number like 0.5 or 2",
				    o->cpus);
		if (ncpu > 0 && cpus > (double)ncpu)
			return hutch_fail(err, 0, "invalid --cpus '%s': this machine has %ld CPUs",
					  o->cpus, ncpu);
		spec->resources.cpu_period_us = 100000;
		spec->resources.cpu_quota_us = (int64_t)(cpus * 100000 + 0.5);
		if (spec->resources.cpu_quota_us < 1000)
			return fail(err, "invalid --cpus '%s': the minimum is 0.01", o->cpus);
	}
	if (o->pids_limit) {
		char *end;
		errno = 0;
		long long p = strtoll(o->pids_limit, &end, 10);
		if (errno == ERANGE && p > 0)
			return fail(err, "invalid --pids-limit '%s': too big (use -1 for no limit)",
				    o->pids_limit);
		if (errno || *end || end == o->pids_limit || p == 0 || p < -1)
			return fail(err, "invalid --pids-limit '%s': expected a positive number or -1",
				    o->pids_limit);
		spec->resources.pids_max = p > 0 ? p : 0;
	}
	for (size_t i = 0; i < o->n_ulimits; i++)
		if (add_ulimit(spec, o->ulimits[i], ctx->rootless, err) < 0)
			return -1;

	/* Security */
	if (apply_caps(spec, o, err) < 0)
		return -1;
	/* --privileged turns no_new_privs off, as in Docker; an explicit
	 * --security-opt no-new-privileges still wins. */
	if (o->privileged)
		hutch_spec_set_privileged(spec);
	if (o->no_new_privs_set)
		spec->process.no_new_privileges = o->no_new_privs;
	if (o->seccomp_unconfined)
		spec->seccomp = HUTCH_SECCOMP_UNCONFINED;
	for (size_t i = 0; i < o->n_devices; i++)
		if (hutch_spec_add_device(spec, o->devices[i], err) < 0)
			return -1;

	/* Network */
	const char *net = o->network ? o->network : "none";
	if (!strcmp(net, "none"))
		hutch_spec_set_namespace(spec, HUTCH_NS_NETWORK, NULL);
	else if (!strcmp(net, "host"))
		hutch_spec_share_namespace(spec, HUTCH_NS_NETWORK);
	else
		return fail(err,
			    "network mode '%s' is not available: use --network none (loopback "
			    "only) or --network host",
			    net);
	if (apply_dns_and_hosts(spec, o, err) < 0)
		return -1;

	/* Mounts: volumes and tmpfs after the defaults (they may replace them). */
	for (size_t i = 0; i < o->n_volumes; i++)
		if (add_volume(spec, o->volumes[i], err) < 0)
			return -1;
	for (size_t i = 0; i < o->n_tmpfs; i++)
		if (add_tmpfs(spec, o->tmpfs[i], err) < 0)
			return -1;

	/* Rootless: ourselves as root inside, plus our subordinate ranges. */
	if (ctx->rootless) {
		struct id_mapping m;
		id_mapping_for_self(&m);
		if (!m.subordinate && !ctx->quiet && first_single_id_run(ctx))
			fprintf(stderr,
				"hutch: note: no subordinate ids for uid %u in /etc/subuid and "
				"/etc/subgid (or no newuidmap/newgidmap): only your own uid is mapped "
				"(to root): files the image gives to other owners are root's in the "
				"container, and --user other than root fails. To map more, add "
				"ranges for your user to /etc/subuid and /etc/subgid (usermod "
				"--add-subuids, --add-subgids). (Said once.)\n",
				(unsigned)getuid());
		hutch_spec_set_namespace(spec, HUTCH_NS_USER, NULL);
		spec->uid_map = xcalloc(m.n_uid, sizeof(*spec->uid_map));
		spec->gid_map = xcalloc(m.n_gid, sizeof(*spec->gid_map));
		for (size_t i = 0; i < m.n_uid; i++)
			spec->uid_map[i] = (struct hutch_id_map){m.uid[i].inside, m.uid[i].outside,
								 m.uid[i].count};
		for (size_t i = 0; i < m.n_gid; i++)
			spec->gid_map[i] = (struct hutch_id_map){m.gid[i].inside, m.gid[i].outside,
								 m.gid[i].count};
		spec->n_uid_map = m.n_uid;
		spec->n_gid_map = m.n_gid;
	}
	return 0;
}

static void free_opts(struct run_opts *o)
{
	free(o->env);
	free(o->volumes);
	free(o->tmpfs);
	free(o->cap_add);
	free(o->cap_drop);
	free(o->ulimits);
	free(o->env_files);
	free(o->dns);
	free(o->dns_search);
	free(o->dns_options);
	free(o->add_hosts);
	free(o->devices);
}

int cmd_run(struct cli_ctx *ctx, int argc, char **argv)
{
	struct run_opts o = {0};
	int img_idx = parse_run_args(&o, argc, argv);
	if (img_idx < 0) {
		if (img_idx == -1)
			fprintf(stderr, "hutch: run: no image given (usage: hutch run [OPTIONS] IMAGE "
					"[COMMAND [ARG...]])\n");
		free_opts(&o);
		return 125;
	}
	_cleanup_err_ struct hutch_err *err = NULL;
	struct hutch_store *store = NULL;
	struct hutch_image *img = NULL;
	struct hutch_spec *spec = NULL;
	struct hutch_runtime rt = {0};
	struct hutch_container *c = NULL;
	int rc = 125;

	if (o.tty && !o.detach && !isatty(STDIN_FILENO) && !isatty(STDOUT_FILENO) && !ctx->quiet)
		fprintf(stderr, "hutch: warning: -t given but neither stdin nor stdout is a "
				"terminal\n");
	if (hutch_store_open(ctx->data_root, ctx->rootless, HUTCH_STORE_READ, &store, &err) < 0 ||
	    hutch_image_get(store, argv[img_idx], &img, &err) < 0)
		goto out;
	hutch_trace("image resolved");
	spec = hutch_spec_new();
	if (build_spec(ctx, &o, img, argc - img_idx - 1, argv + img_idx + 1, spec, &err) < 0 ||
	    hutch_runtime_init(&rt, ctx->data_root, ctx->run_root, &err) < 0)
		goto out;
	rt.quiet = ctx->quiet;
	rt.rootless = ctx->rootless;
	if (o.detach) {
		if (hutch_container_run_detached(&rt, spec, img->layer_fds, img->n_layers, &err) < 0)
			goto out;
		printf("%s\n", spec->id);
		rc = 0;
		goto out;
	}
	struct hutch_io io = {.stdin_fd = 0, .stdout_fd = 1, .stderr_fd = 2};
	hutch_block_forwarded_signals();
	if (hutch_container_start(&rt, spec, &io, &c, &err) < 0)
		goto out;
	struct hutch_exit st;
	if (hutch_container_attach_wait(c, o.interactive ? io.stdin_fd : -1, &st, &err) < 0)
		goto out;
	rc = st.code;
	if (st.oom_killed) {
		char lim[32];
		format_size(st.memory_limit, lim, sizeof(lim));
		fprintf(stderr, "hutch: container %.12s killed: out of memory (limit %s)\n",
			spec->id, lim);
	}
out:
	if (err)
		rc = cli_report(ctx, err);
	if (c) {
		hutch_err_free(&err);
		if (hutch_container_destroy(c, &err) < 0) {
			hutch_err_print(ctx->prog, err);
			if (rc == 0)
				rc = 125;
		}
	}
	hutch_trace("destroyed");
	hutch_runtime_fini(&rt);
	hutch_spec_free(spec);
	hutch_image_free(img);
	hutch_store_close(store);
	free_opts(&o);
	return rc;
}
