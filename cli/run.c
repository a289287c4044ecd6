/* hutch run: docker-like flags -> a container spec -> the runtime. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/stack_src.h"
#include "common/util.h"
#include "images/images.h"
#include "net/net.h"
#include "runtime/runtime.h"
#include "supervisor/supervisor.h"

struct run_opts {
	bool rm, interactive, tty, read_only, init, privileged;
	bool no_new_privs_set, no_new_privs, seccomp_unconfined;
	const char *name, *hostname, *workdir, *user, *entrypoint, *network, *rw_layer;
	const char *memory, *memory_swap, *cpus, *pids_limit, *stop_signal;
	const char **env, **volumes, **tmpfs, **cap_add, **cap_drop, **ulimits, **env_files;
	size_t n_env, n_volumes, n_tmpfs, n_cap_add, n_cap_drop, n_ulimits, n_env_files;
	const char **dns, **dns_search, **dns_options, **add_hosts, **devices;
	size_t n_dns, n_dns_search, n_dns_options, n_add_hosts, n_devices;
	const char **publish, **aliases, **more_networks; /* --network after the first */
	size_t n_publish, n_aliases, n_more_networks;
	bool entrypoint_set, detach;
	/* supervision, as docker run's: a one-service stack under the hood */
	const char *restart, *health_cmd, *health_interval, *health_timeout, *health_retries,
	    *health_start_period, *health_start_interval;
	bool no_healthcheck;
};

static void run_usage(FILE *out)
{
	fputs("Usage: hutch run [OPTIONS] IMAGE [COMMAND [ARG...]]\n"
	      "\n"
	      "  -d, --detach           run in the background and print the container id\n"
	      "  --rm                   remove the container when it exits\n"
	      "      --rw-layer WHERE   --rm's rw layer: tmpfs (default), tmpfs:SIZE or disk\n"
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
	      "      --network NET      none (default: loopback only), host, or a network of\n"
	      "                         `hutch network create` (bridge: the default one)\n"
	      "                         (repeatable: eth0, eth1 ... one per network)\n"
	      "      --network-alias A  another name for the container on its network\n"
	      "  -p, --publish [IP:][HOST:]CONTAINER[/tcp|/udp]  publish a port (ranges N-M;\n"
	      "                         without --network: on the default network)\n"
	      "      --dns IP           a nameserver for /etc/resolv.conf\n"
	      "      --dns-search DOMAIN  a search domain for /etc/resolv.conf ('.': none)\n"
	      "      --dns-option OPT   a resolv.conf option (e.g. ndots:2)\n"
	      "      --add-host HOST:IP a line for /etc/hosts\n"
	      "      --init             run a tiny init as pid 1 (reaps zombies, forwards signals)\n"
	      "      --device HOST[:DEST][:PERMS]  a host device node (PERMS: of rwm)\n"
	      "      --privileged       all capabilities and host devices, no seccomp or masks\n"
	      "      --security-opt OPT seccomp=unconfined, no-new-privileges[=true|false]\n"
	      "      --stop-signal SIG  signal that stops the container (default SIGTERM)\n"
	      "      --restart POLICY   no, always, on-failure[:N], unless-stopped (needs -d)\n"
	      "      --health-cmd CMD   a health check, run with /bin/sh -c in the container\n"
	      "      --health-interval D  time between checks (default 30s)\n"
	      "      --health-timeout D   how long a check may take (default 30s)\n"
	      "      --health-retries N   failures in a row that make it unhealthy (default 3)\n"
	      "      --health-start-period D    failures in this time do not count (default 0s)\n"
	      "      --health-start-interval D  time between checks in the start period (5s)\n"
	      "      --no-healthcheck   no health check\n",
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
	O_PUBLISH, O_NET_ALIAS, O_RESTART, O_HCMD, O_HINTERVAL, O_HTIMEOUT, O_HRETRIES,
	O_HSTART_PERIOD, O_HSTART_INTERVAL, O_NO_HEALTH, O_RW_LAYER,
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
	{"publish", 'p', true, O_PUBLISH},
	{"network-alias", 0, true, O_NET_ALIAS},
	{"net-alias", 0, true, O_NET_ALIAS},
	{"restart", 0, true, O_RESTART},
	{"health-cmd", 0, true, O_HCMD},
	{"health-interval", 0, true, O_HINTERVAL},
	{"health-timeout", 0, true, O_HTIMEOUT},
	{"health-retries", 0, true, O_HRETRIES},
	{"health-start-period", 0, true, O_HSTART_PERIOD},
	{"health-start-interval", 0, true, O_HSTART_INTERVAL},
	{"no-healthcheck", 0, false, O_NO_HEALTH},
	{"rw-layer", 0, true, O_RW_LAYER},
};

/* --restart's value, as the stack file's restart key takes it. */
static bool restart_valid(const char *v)
{
	if (!strcmp(v, "no") || !strcmp(v, "always") || !strcmp(v, "unless-stopped") ||
	    !strcmp(v, "on-failure"))
		return true;
	if (strncmp(v, "on-failure:", 11) || !v[11] || strlen(v + 11) > 7)
		return false;
	for (const char *c = v + 11; *c; c++)
		if (*c < '0' || *c > '9')
			return false;
	return atol(v + 11) <= 1000000;
}

/* A --health-* duration: Go's syntax ("500ms", "1m30s"); min_ns the least. */
static int duration_opt(const char *flag, const char *v, int64_t min_ns)
{
	int64_t ns;
	if (parse_duration(v, &ns) < 0 || ns < min_ns) {
		_cleanup_free_ char *shown = cli_shown(v);
		fprintf(stderr,
			"hutch: run: invalid %s '%s': a duration such as 30s, 500ms or 1m30s%s "
			"expected\n",
			flag, shown, min_ns ? " (at least 1ms)" : "");
		return -1;
	}
	return 0;
}

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
	case O_NET:
		if (o->network)
			push(&o->more_networks, &o->n_more_networks, v);
		else
			o->network = v;
		break;
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
	case O_PUBLISH: push(&o->publish, &o->n_publish, v); break;
	case O_NET_ALIAS: push(&o->aliases, &o->n_aliases, v); break;
	case O_RESTART:
		if (!restart_valid(v)) {
			_cleanup_free_ char *shown = cli_shown(v);
			fprintf(stderr,
				"hutch: run: invalid --restart '%s': use no, always, on-failure, "
				"on-failure:N (N from 0, no limit, to 1000000) or unless-stopped\n",
				shown);
			return -1;
		}
		o->restart = v;
		break;
	case O_HCMD:
		if (!*v || strchr(v, '\n') || strlen(v) > 800 ||
		    (strchr(v, '\'') && strchr(v, '"'))) {
			_cleanup_free_ char *shown = cli_shown(v);
			fprintf(stderr,
				"hutch: run: --health-cmd '%s' cannot be used: give a command of "
				"one line, at most 800 bytes, without both ' and \" in it (put "
				"a longer check in a script in the image)\n",
				shown);
			return -1;
		}
		o->health_cmd = v;
		break;
	case O_HINTERVAL:
		o->health_interval = v;
		return duration_opt("--health-interval", v, 1000000);
	case O_HTIMEOUT:
		o->health_timeout = v;
		return duration_opt("--health-timeout", v, 1000000);
	case O_HSTART_PERIOD:
		o->health_start_period = v;
		return duration_opt("--health-start-period", v, 0);
	case O_HSTART_INTERVAL:
		o->health_start_interval = v;
		return duration_opt("--health-start-interval", v, 1000000);
	case O_HRETRIES: {
		char *end;
		long n = strtol(v, &end, 10);
		if (!*v || *end || n < 1 || n > 1000000) {
			_cleanup_free_ char *shown = cli_shown(v);
			fprintf(stderr,
				"hutch: run: invalid --health-retries '%s': a number from 1 to "
				"1000000 expected\n",
				shown);
			return -1;
		}
		o->health_retries = v;
		break;
	}
	case O_NO_HEALTH: o->no_healthcheck = true; break;
	case O_RW_LAYER: o->rw_layer = v; break;
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

/* Each flag through the runtime's setter of the same meaning (the one a stack
 * file's key uses); its message names the value, and here the flag is added. */
static int each(struct hutch_spec *spec, const char *flag, const char *const *values, size_t n,
		int (*set)(struct hutch_spec *, const char *, struct hutch_err **),
		struct hutch_err **err)
{
	for (size_t i = 0; i < n; i++)
		if (set(spec, values[i], err) < 0)
			return flag ? hutch_err_wrap(err, "%s", flag) : -1;
	return 0;
}

static int one(struct hutch_spec *spec, const char *flag, const char *value,
	       int (*set)(struct hutch_spec *, const char *, struct hutch_err **),
	       struct hutch_err **err)
{
	return value ? each(spec, flag, &value, 1, set, err) : 0;
}

static int add_volume_here(struct hutch_spec *spec, const char *arg, struct hutch_err **err)
{
	return hutch_spec_add_volume(spec, arg, NULL, err);
}

static int add_env_file_here(struct hutch_spec *spec, const char *path, struct hutch_err **err)
{
	if (hutch_spec_add_env_file(spec, path, NULL, err) < 0) {
		cli_err_prefix(err, "--env-file "); /* the message starts with the path */
		return -1;
	}
	return 0;
}

static int add_dns_server(struct hutch_spec *spec, const char *v, struct hutch_err **err)
{
	return hutch_spec_add_dns_server(spec, v, err);
}

static int add_dns_search(struct hutch_spec *spec, const char *v, struct hutch_err **err)
{
	return hutch_spec_add_dns_search(spec, v, err);
}

static int add_dns_option(struct hutch_spec *spec, const char *v, struct hutch_err **err)
{
	return hutch_spec_add_dns_option(spec, v, err);
}

/* The bridge network the container goes on (net/), NULL for none or host. */
static const char *bridge_name(const char *network)
{
	if (!strcmp(network, "none") || !strcmp(network, "host"))
		return NULL;
	return !strcmp(network, "bridge") ? HUTCH_NET_DEFAULT : network;
}

static const char *bridge_network(const struct run_opts *o)
{
	if (!o->network)
		return o->n_publish ? HUTCH_NET_DEFAULT : NULL;
	return bridge_name(o->network);
}

/* -p and --network-alias against --network, before anything is made. */
static int check_network_opts(const struct cli_ctx *ctx, const struct run_opts *o,
			      struct hutch_port_map **ports, struct hutch_err **err)
{
	*ports = xcalloc(o->n_publish + 1, sizeof(**ports));
	for (size_t i = 0; i < o->n_publish; i++)
		if (hutch_port_parse(o->publish[i], &(*ports)[i], err) < 0)
			return hutch_err_wrap(err, "--publish");
	const char *net = bridge_network(o);
	for (size_t i = 0; i < o->n_more_networks; i++)
		if (!net || !bridge_name(o->more_networks[i]))
			return hutch_fail(err, 0,
					  "--network %s cannot be combined with another --network: give "
					  "bridge networks only",
					  net ? o->more_networks[i] : o->network);
	if (!net && o->n_publish)
		return hutch_fail(err, 0,
				  "--publish needs a bridge network: --network %s %s", o->network,
				  !strcmp(o->network, "host")
				      ? "shares the host's ports already (drop -p)"
				      : "has no way in (drop --network none)");
	if (!net && o->n_aliases)
		return hutch_fail(err, 0, "--network-alias needs a bridge network (--network NAME)");
	for (size_t i = 0; i < o->n_aliases; i++)
		if (!hutch_hostname_valid(o->aliases[i])) {
			_cleanup_free_ char *shown = cli_shown(o->aliases[i]);
			return hutch_fail(err, 0, "--network-alias: invalid name '%s'", shown);
		}
	return 0;
}

/* Rootless: the user namespace the container's is made under (the rootless
 * network's, net/rootless.c), and its network wired once its process exists. */
static char rootless_userns[64];

static int wire_network(void *data, const char *id, pid_t pid, struct hutch_err **err)
{
	return hutch_net_wire(data, id, pid, err);
}

/* Put the container on its network: a namespace net/ made and wired, the
 * spec joins it by path; resolv.conf and hosts to match. */
static int attach_network(struct cli_ctx *ctx, const struct hutch_net_ctx *nctx,
			  const struct run_opts *o, const struct hutch_port_map *ports,
			  struct hutch_spec *spec, bool *attached, struct hutch_err **err)
{
	struct hutch_net_attach_req req = {
	    .network = bridge_network(o),
	    .container = spec->id,
	    .name = spec->name,
	    .aliases = o->aliases,
	    .n_aliases = o->n_aliases,
	    .ports = ports,
	    .n_ports = o->n_publish,
	};
	struct hutch_net_attachment at;
	if (hutch_net_attach(nctx, &req, &at, err) < 0)
		return -1; /* nothing of it is left */
	/* its network goes when it exits: `start` says so (cli/ctr.c) */
	_cleanup_free_ char *label = xasprintf("hutch.network=%s", req.network);
	hutch_spec_set_label(spec, label);
	*attached = true;
	free(at.ports);
	/* more networks: eth1, eth2 ... in the same namespace; ports and the
	 * default route are the first one's */
	for (size_t i = 0; i < o->n_more_networks; i++) {
		struct hutch_net_attach_req more = req;
		more.network = bridge_name(o->more_networks[i]);
		more.ports = NULL;
		more.n_ports = 0;
		struct hutch_net_attachment other;
		if (hutch_net_attach(nctx, &more, &other, err) < 0)
			return -1;
		free(other.ports);
	}
	if (at.userns[0]) /* rootless: a namespace of its own, wired later */
		snprintf(rootless_userns, sizeof(rootless_userns), "%s", at.userns);
	else
		hutch_spec_set_namespace(spec, HUTCH_NS_NETWORK, at.netns);
	/* each network's DNS server, started with its first container; it goes
	 * by itself with the last one (rootless: its sockets are bound in the
	 * rootless network namespace now, while this process is still outside
	 * its user namespace, which the clone below enters for good) */
	cli_network_dns_ensure(ctx, req.network);
	for (size_t i = 0; i < o->n_more_networks; i++)
		cli_network_dns_ensure(ctx, bridge_name(o->more_networks[i]));
	if (!o->n_dns && hutch_spec_add_dns_server(spec, at.dns, err) < 0)
		return -1;
	if (hutch_spec_add_host(spec, spec->hostname, at.address, err) < 0)
		return -1;
	for (size_t i = 0; i < o->n_aliases; i++)
		if (hutch_spec_add_host(spec, o->aliases[i], at.address, err) < 0)
			return -1;
	return 0;
}

/* A detached container's attachments follow its keeper's life (it detaches
 * them in `hutch internal finish`), not this process's. A failure costs the gc
 * a scan of /proc, no more: it is not reported. */
static void hand_network_to_keeper(struct hutch_runtime *rt, const struct hutch_net_ctx *nctx,
				   const char *id)
{
	struct hutch_state *s = NULL;
	if (hutch_state_find(rt, id, &s, NULL) == 0 && s->monitor_pid > 0)
		hutch_net_set_attacher(nctx, id, s->monitor_pid, s->monitor_start, NULL);
	hutch_state_free(s);
}

/* ---- supervised containers: `run -d --restart ... --health-cmd ...` ----------
 * Such a container is a one-service stack under the hood, so that the stack
 * supervisor (restart policy with its backoff, health checks, `ps` status) is
 * the one that watches it: run writes the stack file DATA/stacks/NAME/hutch.ini
 * (service "run", the container's settings staying the container's own), makes
 * the container as without these flags, labelled as that stack's replica with
 * the config hash the supervisor expects, and starts a supervisor that adopts
 * it. A restart starts the same container again; `stack restore` and a
 * supervisor's adoption after a SIGKILL work as for any stack. */
#define RUN_SERVICE "run"

static bool supervised(const struct run_opts *o)
{
	return (o->restart && strcmp(o->restart, "no")) || o->health_cmd || o->health_interval ||
	       o->health_timeout || o->health_retries || o->health_start_period ||
	       o->health_start_interval;
}

static int check_supervised(const struct run_opts *o, struct hutch_err **err)
{
	const char *flag = o->restart && strcmp(o->restart, "no") ? "--restart"
			   : o->health_cmd			  ? "--health-cmd"
								  : "--health-*";
	if (!o->detach)
		return hutch_fail(
		    err, 0,
		    "%s needs -d: a supervisor watches the container in the "
		    "background (run it with -d, then 'hutch wait' or 'hutch logs -f')",
		    flag);
	if (o->rm)
		return hutch_fail(
		    err, 0,
		    "conflicting options: %s and --rm (a supervised container is kept "
		    "to be started again; 'hutch rm -f' removes it)",
		    flag);
	if (!o->health_cmd && (o->health_interval || o->health_timeout || o->health_retries ||
			       o->health_start_period || o->health_start_interval))
		return hutch_fail(err, 0, "the --health-* options need --health-cmd CMD");
	if (o->health_cmd && o->no_healthcheck)
		return hutch_fail(err, 0, "conflicting options: --no-healthcheck and --health-cmd");
	if (bridge_network(o))
		return hutch_fail(
		    err, 0,
		    "%s with a bridge network (--network %s, -p): not supported yet "
		    "(a restarted container would come back without its network): use "
		    "--network none or host",
		    flag, o->network ? o->network : "bridge");
	return 0;
}

/* --health-cmd CMD as the stack file's health_cmd: the words /bin/sh -c CMD,
 * as docker's CMD-SHELL, quoted for the INI reader (a value in quotes is taken
 * as it is, then interpolated: $ as $$, then split into words). */
static char *health_cmd_value(const char *cmd)
{
	bool single_outside = strchr(cmd, '\'') == NULL;
	size_t len = strlen(cmd);
	char *out = xcalloc(1, len * 5 + 32), *w = out;
	w +=
	    sprintf(w, "%s/bin/sh -c %s", single_outside ? "'" : "\"", single_outside ? "\"" : "'");
	for (const char *c = cmd; *c; c++) {
		if (*c == '$')
			*w++ = '$';
		if (single_outside && (*c == '"' || *c == '\\' || *c == '`')) {
			*w++ = '\\';
		} else if (!single_outside && *c == '\'') {
			w += sprintf(w, "'\\''");
			continue;
		}
		*w++ = *c;
	}
	sprintf(w, "%s%s", single_outside ? "\"" : "'", single_outside ? "'" : "\"");
	return out;
}

static char *stack_ini(const struct run_opts *o, const char *name, const char *image_id)
{
	char *ini = xasprintf("; made by hutch run: the supervisor of container %s reads it\n"
			      "[stack]\nname = %s\n\n[service." RUN_SERVICE "]\nimage = sha256:%s\n"
			      "restart = %s\n"
			      /* the container's network is its own (none or host): the
			       * stack's supervisor puts it on no network of the stack */
			      "network = %s\n",
			      name, name, image_id, o->restart ? o->restart : "no",
			      o->network && !strcmp(o->network, "host") ? "host" : "none");
	const struct {
		const char *key, *value;
	} keys[] = {
	    {"health_interval", o->health_interval},
	    {"health_timeout", o->health_timeout},
	    {"health_retries", o->health_retries},
	    {"health_start_period", o->health_start_period},
	    {"health_start_interval", o->health_start_interval},
	    {"stop_signal", o->stop_signal},
	};
	if (o->health_cmd) {
		_cleanup_free_ char *v = health_cmd_value(o->health_cmd);
		char *more = xasprintf("%shealth_cmd = %s\n", ini, v);
		free(ini);
		ini = more;
	}
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (keys[i].value) {
			char *more = xasprintf("%s%s = %s\n", ini, keys[i].key, keys[i].value);
			free(ini);
			ini = more;
		}
	return ini;
}

/* Name the container (a generated name when --name was not given), write its
 * stack file and label the spec as the stack's replica. *dir: the stack's
 * directory, made here (removed by the caller on failure). */
static int prepare_supervised(struct cli_ctx *ctx, struct hutch_runtime *rt,
			      const struct run_opts *o, const struct hutch_image *img,
			      struct hutch_spec *spec, char **dir, struct hutch_stack **stack,
			      struct hutch_err **err)
{
	if (!spec->name) {
		_cleanup_free_ char *gen = xasprintf("run-%.12s", spec->id);
		hutch_spec_set_name(spec, gen);
	}
	const char *name = spec->name;
	if (strlen(name) > 63)
		return hutch_fail(err, 0,
				  "--name '%s': a supervised container's name is at most 63 "
				  "characters (it names its stack too)",
				  name);
	struct hutch_state *other = NULL;
	if (hutch_state_find(rt, name, &other, NULL) == 0) {
		hutch_fail(err, 0,
			   "the name '%s' is in use by container %.12s: remove it ('hutch rm -f "
			   "%s') or give another --name",
			   name, other->id, name);
		hutch_state_free(other);
		return -1;
	}
	_cleanup_free_ char *path = xasprintf("%s/stacks/%s", ctx->data_root, name);
	if (access(path, F_OK) == 0)
		return hutch_fail(
		    err, 0,
		    "a stack named '%s' exists ('hutch stack ls'): give the container "
		    "another --name",
		    name);
	if (mkdir_p_at(AT_FDCWD, path, 0700, err) < 0)
		return -1;
	*dir = xstrdup(path);
	_cleanup_free_ char *file = xasprintf("%s/hutch.ini", path);
	_cleanup_free_ char *ini = stack_ini(o, name, img->id);
	if (write_file_at(AT_FDCWD, file, ini, err) < 0 || hutch_stack_load(file, stack, err) < 0)
		return -1;
	char hash[17];
	if (hutch_stack_service_hash(*stack, RUN_SERVICE, img->id, hash) < 0)
		return hutch_fail(err, 0, "%s: no service " RUN_SERVICE, file);
	_cleanup_free_ char *l1 = xasprintf("hutch.stack=%s", name);
	_cleanup_free_ char *l4 = xasprintf("hutch.config-hash=%s", hash);
	hutch_spec_set_label(spec, l1);
	hutch_spec_set_label(spec, "hutch.service=" RUN_SERVICE);
	hutch_spec_set_label(spec, "hutch.replica=1");
	hutch_spec_set_label(spec, l4);
	/* `hutch stop`, `rm`, `restart` go through its supervisor (cli/ctr.c) */
	hutch_spec_set_label(spec, "hutch.supervised=run");
	return 0;
}

/* The container is made and runs: start its supervisor, which adopts it. On
 * failure the container and the stack's directory go. */
static int start_supervisor(struct cli_ctx *ctx, struct hutch_runtime *rt,
			    struct hutch_stack *stack, const char *dir, const char *id)
{
	_cleanup_free_ char *file = xasprintf("%s/hutch.ini", dir);
	char *files[] = {file};
	struct hutch_stack_src src = {.files = files, .n_files = 1};
	if (cli_stack_spawn(ctx, "run", stack, &src, NULL, 0, true) == 0)
		return 0;
	struct hutch_state *st = NULL;
	if (hutch_state_find(rt, id, &st, NULL) == 0) {
		hutch_state_remove(rt, st, true, NULL);
		hutch_state_free(st);
	}
	remove_tree_at(AT_FDCWD, dir, NULL);
	return -1;
}

/* Where --rm's rw layer lives: --rw-layer, else HUTCH_RW_LAYER (a default for
 * --rm runs, e.g. a CI job's that writes gigabytes), else a tmpfs private to the
 * container unless -m is given: a tmpfs's pages count as the container's
 * memory, and a test that writes more than its limit would be killed where
 * Docker (files on the disk) lets it write. */
static int rw_layer(const struct run_opts *o, struct hutch_spec *spec, struct hutch_err **err)
{
	spec->rw_tmpfs = o->rm && !o->memory;
	const char *flag = "--rw-layer", *where = o->rw_layer;
	if (!where && o->rm && (where = getenv("HUTCH_RW_LAYER")) && *where)
		flag = "HUTCH_RW_LAYER";
	else if (!o->rw_layer)
		return 0;
	if (one(spec, flag, where, hutch_spec_set_rw_layer, err) < 0)
		return -1;
	if (spec->rw_tmpfs && !o->rm)
		return hutch_fail(err, 0,
				  "--rw-layer %s needs --rm: a container kept after it exits keeps "
				  "its files on the disk",
				  where);
	return 0;
}

static int build_spec(const struct hutch_runtime *rt, const struct run_opts *o, const struct hutch_image *img, int cmd_argc,
		      char **cmd_argv, struct hutch_spec *spec, struct hutch_err **err)
{
	char id[65];
	if (random_hex_id(id, err) < 0)
		return -1;
	spec->id = xstrdup(id);
	spec->auto_remove = o->rm;
	spec->detached = o->detach;
	if (o->name)
		hutch_spec_set_name(spec, o->name);

	/* The image's config first; what a flag replaces is not taken from it (nor
	 * checked). */
	struct hutch_image_config cfg = {
	    .name = img->name,
	    .id = img->id,
	    .layers = img->layer_dirs,
	    .n_layers = img->n_layers,
	    .env = img->env,
	    .n_env = img->n_env,
	    .entrypoint = img->entrypoint,
	    .n_entrypoint = img->n_entrypoint,
	    .cmd = img->cmd,
	    .n_cmd = img->n_cmd,
	    .workdir = o->workdir ? NULL : img->workdir,
	    .user = o->user ? NULL : img->user,
	    .stop_signal = o->stop_signal ? NULL : img->stop_signal,
	};
	if (hutch_spec_apply_image(spec, &cfg, err) < 0)
		return -1;
	_cleanup_free_ char *short_id = strndup(id, 12);
	if (one(spec, "--hostname", o->hostname ? o->hostname : short_id, hutch_spec_set_hostname,
		err) < 0)
		return -1;
	if (o->tty)
		hutch_spec_set_env(spec, "TERM=xterm");
	if (each(spec, NULL, o->env_files, o->n_env_files, add_env_file_here, err) < 0 ||
	    each(spec, NULL, o->env, o->n_env, hutch_spec_add_env, err) < 0)
		return -1;

	/* argv: entrypoint + (the command given here, or the image's Cmd unless
	 * --entrypoint was given, which resets it as in Docker) */
	if (o->entrypoint_set) {
		char *ep[] = {(char *)o->entrypoint};
		hutch_spec_set_entrypoint(spec, ep, *o->entrypoint ? 1 : 0);
	}
	if (cmd_argc > 0)
		hutch_spec_set_command(spec, cmd_argv, (size_t)cmd_argc);
	if (spec->process.n_args == 0 && o->entrypoint_set)
		return hutch_fail(
		    err, 0,
		    "no command: --entrypoint '' drops the image's Entrypoint and Cmd, "
		    "so give a command after the image");
	if (spec->process.n_args == 0)
		return hutch_fail(err, 0,
				  "no command given and image '%s' has no Cmd or Entrypoint: give "
				  "one after the image",
				  img->name);
	if (!*spec->process.args[0]) {
		/* as Docker: an empty name is a command that is not found */
		hutch_fail(err, 0,
			   "exec \"\": executable file not found in $PATH (the command is an empty "
			   "string)");
		(*err)->exit_code = 127;
		return -1;
	}

	if (one(spec, "--workdir", o->workdir, hutch_spec_set_workdir, err) < 0 ||
	    one(spec, "--user", o->user, hutch_spec_set_user, err) < 0 ||
	    one(spec, "--stop-signal", o->stop_signal, hutch_spec_set_stop_signal, err) < 0)
		return -1;
	spec->process.terminal = o->tty;
	spec->process.interactive = o->interactive;
	spec->process.init = o->init;
	spec->root.readonly = o->read_only;

	/* Resources (the rules between them: hutch_spec_validate) */
	if (one(spec, "--memory", o->memory, hutch_spec_set_memory, err) < 0 ||
	    one(spec, "--memory-swap", o->memory_swap, hutch_spec_set_memory_swap, err) < 0 ||
	    one(spec, "--cpus", o->cpus, hutch_spec_set_cpus, err) < 0 ||
	    one(spec, "--pids-limit", o->pids_limit, hutch_spec_set_pids_limit, err) < 0 ||
	    each(spec, "--ulimit", o->ulimits, o->n_ulimits, hutch_spec_add_ulimit, err) < 0)
		return -1;
	if (hutch_spec_check_resources(&spec->resources, err) < 0)
		return o->memory_swap ? hutch_err_wrap(err, "--memory-swap '%s'", o->memory_swap) : -1;
	if (rw_layer(o, spec, err) < 0)
		return -1;

	/* Security. --privileged turns no_new_privs off, as in Docker; an explicit
	 * --security-opt no-new-privileges still wins. */
	if (each(spec, "--cap-drop", o->cap_drop, o->n_cap_drop, hutch_spec_cap_drop, err) < 0 ||
	    each(spec, "--cap-add", o->cap_add, o->n_cap_add, hutch_spec_cap_add, err) < 0)
		return -1;
	if (o->privileged)
		hutch_spec_set_privileged(spec);
	if (o->no_new_privs_set)
		spec->process.no_new_privileges = o->no_new_privs;
	if (o->seccomp_unconfined)
		spec->seccomp = HUTCH_SECCOMP_UNCONFINED;
	if (each(spec, "--device", o->devices, o->n_devices, hutch_spec_add_device, err) < 0)
		return -1;

	/* Network */
	if (one(spec, "--network", bridge_network(o) ? NULL : o->network, hutch_spec_set_network,
		err) < 0 ||
	    each(spec, "--dns", o->dns, o->n_dns, add_dns_server, err) < 0 ||
	    each(spec, "--dns-search", o->dns_search, o->n_dns_search, add_dns_search, err) < 0 ||
	    each(spec, "--dns-option", o->dns_options, o->n_dns_options, add_dns_option, err) <
		0 ||
	    each(spec, "--add-host", o->add_hosts, o->n_add_hosts, hutch_spec_add_host_entry,
		 err) < 0)
		return -1;

	/* Mounts: volumes and tmpfs after the defaults (they may replace them). */
	if (each(spec, NULL, o->volumes, o->n_volumes, add_volume_here, err) < 0 ||
	    each(spec, "--tmpfs", o->tmpfs, o->n_tmpfs, hutch_spec_add_tmpfs, err) < 0)
		return -1;
	return hutch_spec_for_runtime(rt, spec, err);
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
	free(o->publish);
	free(o->aliases);
	free(o->more_networks);
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
	_cleanup_free_ struct hutch_port_map *ports = NULL;
	struct hutch_net_ctx nctx = {
	    .data_root = ctx->data_root, .run_root = ctx->run_root, .rootless = ctx->rootless};
	bool attached = false;

	_cleanup_free_ char *sup_dir = NULL;
	struct hutch_stack *stack = NULL;
	if (supervised(&o) && check_supervised(&o, &err) < 0)
		goto out;
	if (o.tty && !o.detach && !isatty(STDIN_FILENO) && !isatty(STDOUT_FILENO) && !ctx->quiet)
		fprintf(stderr, "hutch: warning: -t given but neither stdin nor stdout is a "
				"terminal\n");
	if (check_network_opts(ctx, &o, &ports, &err) < 0)
		goto out;
	if (hutch_store_open(ctx->data_root, ctx->rootless, HUTCH_STORE_READ, &store, &err) < 0 ||
	    hutch_image_get(store, argv[img_idx], &img, &err) < 0)
		goto out;
	hutch_trace("image resolved");
	if (hutch_runtime_init(&rt, ctx->data_root, ctx->run_root, &err) < 0)
		goto out;
	rt.quiet = ctx->quiet;
	rt.rootless = ctx->rootless;
	spec = hutch_spec_new();
	if (build_spec(&rt, &o, img, argc - img_idx - 1, argv + img_idx + 1, spec, &err) < 0)
		goto out;
	if (bridge_network(&o)) {
		if (attach_network(ctx, &nctx, &o, ports, spec, &attached, &err) < 0)
			goto out;
		if (rootless_userns[0]) {
			rt.userns_parent = rootless_userns;
			rt.on_created = wire_network;
			rt.on_created_data = &nctx;
		}
		hutch_trace("network attached");
	}
	if (supervised(&o) &&
	    prepare_supervised(ctx, &rt, &o, img, spec, &sup_dir, &stack, &err) < 0)
		goto out;
	if (o.detach) {
		if (hutch_container_run_detached(&rt, spec, img->layer_fds, img->n_layers, &err) < 0)
			goto out;
		if (stack) {
			int sr = start_supervisor(ctx, &rt, stack, sup_dir, spec->id);
			free(steal_ptr(sup_dir)); /* kept, or removed with the container */
			if (sr < 0) {
				rc = 125;
				goto out;
			}
		}
		/* the network is taken down by `hutch internal finish`, which its
		 * keeper execs once it has exited (cli/internal.c): the keeper is
		 * the attachment's owner from now on, so that the gc of every later
		 * attach sees it alive with one look at /proc/PID/stat */
		if (attached && !ctx->rootless) /* (rootless: gc runs inside its namespace) */
			hand_network_to_keeper(&rt, &nctx, spec->id);
		attached = false;
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
	if (attached) {
		hutch_err_free(&err);
		if (hutch_net_detach(&nctx, spec->id, &err) < 0) {
			hutch_err_print(ctx->prog, err);
			if (rc == 0)
				rc = 125;
		}
		hutch_trace("network detached");
	}
	if (sup_dir)
		remove_tree_at(AT_FDCWD, sup_dir, NULL);
	hutch_stack_free(stack);
	hutch_runtime_fini(&rt);
	hutch_spec_free(spec);
	hutch_image_free(img);
	hutch_store_close(store);
	free_opts(&o);
	return rc;
}
