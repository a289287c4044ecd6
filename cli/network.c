/* hutch network create | ls | inspect | rm */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/err.h"
#include "common/util.h"
#include "net/net.h"

static void network_usage(FILE *out)
{
	fputs("Usage:\n"
	      "  hutch network create [--subnet CIDR] [--ipv6 [--subnet6 CIDR]] [--internal]\n"
	      "                       [--dns IP[:PORT]]... NAME\n"
	      "  hutch network ls [--format json|table] [-q]\n"
	      "  hutch network inspect [--format json|table] NAME...\n"
	      "  hutch network rm NAME...\n",
	      out);
}

enum { N_SUBNET, N_INTERNAL, N_DNS, N_FORMAT, N_QUIET, N_IPV6, N_SUBNET6 };
static const struct cli_opt net_opts[] = {
    {"subnet", 0, true, N_SUBNET},   {"internal", 0, false, N_INTERNAL}, {"dns", 0, true, N_DNS},
    {"format", 0, true, N_FORMAT},   {"quiet", 'q', false, N_QUIET},	 {"ipv6", 0, false, N_IPV6},
    {"subnet6", 0, true, N_SUBNET6},
};

struct net_args {
	const char *verb;
	const char *subnet, *subnet6;
	bool ipv6;
	const char *dns[4]; /* the network's DNS server's upstreams */
	size_t n_dns;
	bool internal, json, quiet, format_set;
};

static int set_net_opt(void *arg, int id, const char *v)
{
	struct net_args *a = arg;
	bool create = !strcmp(a->verb, "create");
	bool lists = !strcmp(a->verb, "ls") || !strcmp(a->verb, "inspect");
	if (((id == N_SUBNET || id == N_INTERNAL || id == N_DNS || id == N_IPV6 ||
	      id == N_SUBNET6) &&
	     !create) ||
	    (id == N_FORMAT && !lists) || (id == N_QUIET && strcmp(a->verb, "ls"))) {
		fprintf(stderr, "hutch: network %s: unknown option %s\n", a->verb, cli_opt_given());
		return -1;
	}
	switch (id) {
	case N_SUBNET:
		a->subnet = v;
		break;
	case N_INTERNAL:
		a->internal = true;
		break;
	case N_IPV6:
		a->ipv6 = true;
		break;
	case N_SUBNET6: /* implies --ipv6 */
		a->subnet6 = v;
		break;
	case N_DNS:
		if (a->n_dns == 3) {
			fprintf(stderr, "hutch: network create: more than 3 --dns: its DNS server "
					"forwards to at most 3\n");
			return -1;
		}
		a->dns[a->n_dns++] = v;
		break;
	case N_QUIET:
		a->quiet = true;
		break;
	case N_FORMAT:
		if (strcmp(v, "json") && strcmp(v, "table")) {
			_cleanup_free_ char *shown = cli_shown(v);
			fprintf(stderr,
				"hutch: network %s: unknown --format '%s' (json or table)\n",
				a->verb, shown);
			return -1;
		}
		a->json = !strcmp(v, "json");
		a->format_set = true;
		break;
	}
	return 0;
}

static void print_table_row(const struct hutch_net_info *n)
{
	printf("%-12.12s  %-20s  %-18s  %-15s  %-8s  %-10zu  %s\n", n->id, n->name, n->subnet,
	       n->bridge, n->internal ? "yes" : "no", n->n_members, n->owner ? n->owner : "");
}

/* The network's DNS server process, as `inspect` shows it. */
static void dns_state(const struct cli_ctx *ctx, const struct hutch_net_info *n, char *buf,
		      size_t len, int *pid)
{
	*pid = cli_network_dns_pid(ctx, n->name);
	if (n->owner) /* a stack's: in its supervisor */
		snprintf(buf, len, "%s", n->owner_running ? "in its supervisor" : "stopped");
	else if (*pid > 0)
		snprintf(buf, len, "running");
	else if (*pid < 0)
		snprintf(buf, len, "starting");
	else
		/* it runs while the network has containers: one that is not there
		 * then has crashed (the next container on it starts it again) */
		snprintf(buf, len, "%s", n->n_members ? "not running" : "stopped");
}

static void print_inspect_text(const struct cli_ctx *ctx, const struct hutch_net_info *n)
{
	char state[32];
	int pid;
	dns_state(ctx, n, state, sizeof(state), &pid);
	printf("name:      %s\nid:        %s\nbridge:    %s\nsubnet:    %s\ngateway:   %s\n"
	       "dns:       %s (server %s",
	       n->name, n->id, n->bridge, n->subnet, n->gateway, n->dns, state);
	if (pid > 0)
		printf(", pid %d", pid);
	printf(")\n");
	for (size_t i = 0; i < n->n_dns_servers; i++)
		printf("upstream:  %s\n", n->dns_servers[i]);
	if (n->ipv6)
		printf("subnet6:   %s\ngateway6:  %s\n", n->subnet6, n->gateway6);
	printf("internal:  %s\nmembers:\n", n->internal ? "true" : "false");
	for (size_t i = 0; i < n->n_members; i++) {
		const struct hutch_net_member *m = &n->members[i];
		_cleanup_free_ char *nm = m->name ? cli_shown(m->name) : NULL;
		printf("  %.12s  %-15s  %s%s%s\n", m->container, m->address, nm ? nm : "",
		       n->ipv6 ? "  " : "", m->address6);
	}
}

/* net/'s JSON with the DNS server process the CLI runs for the network:
 * "dns_server": {"state": "running", "pid": N}. */
static char *inspect_json(const struct cli_ctx *ctx, const struct hutch_net_info *n)
{
	char *text = hutch_net_info_to_json(n, true);
	struct json_object *o = json_tokener_parse(text);
	if (!o)
		return text;
	free(text);
	char state[32];
	int pid;
	dns_state(ctx, n, state, sizeof(state), &pid);
	struct json_object *d = json_object_new_object();
	json_object_object_add(d, "state", json_object_new_string(state));
	if (pid > 0)
		json_object_object_add(d, "pid", json_object_new_int(pid));
	json_object_object_add(o, "dns_server", d);
	text = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return text;
}

int cmd_network(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
	    !strcmp(argv[0], "help")) {
		network_usage(argc < 1 ? stderr : stdout);
		return argc < 1 ? 125 : 0;
	}
	struct net_args a = {.verb = argv[0]};
	if (strcmp(a.verb, "create") && strcmp(a.verb, "ls") && strcmp(a.verb, "list") &&
	    strcmp(a.verb, "inspect") && strcmp(a.verb, "rm") && strcmp(a.verb, "remove")) {
		_cleanup_free_ char *shown = cli_shown(a.verb);
		fprintf(stderr, "hutch: network: unknown command '%s' (create, ls, inspect, rm)\n",
			shown);
		return 125;
	}
	if (!strcmp(a.verb, "list"))
		a.verb = "ls";
	if (!strcmp(a.verb, "remove"))
		a.verb = "rm";
	_cleanup_free_ char *verb = xasprintf("network %s", a.verb);
	int first = cli_parse_opts(verb, "", net_opts, ARRAY_SIZE(net_opts), true, argc, argv,
				   set_net_opt, &a);
	if (first == -2)
		return 0;
	if (first < 0)
		return 125;
	int n_ops = argc - first;
	struct hutch_net_ctx nctx = {
	    .data_root = ctx->data_root, .run_root = ctx->run_root, .rootless = ctx->rootless};
	_cleanup_err_ struct hutch_err *err = NULL;
	if (!strcmp(a.verb, "create")) {
		if (n_ops != 1) {
			fprintf(stderr, "hutch: network create: give one NAME (network create "
					"[--subnet CIDR] [--internal] NAME)\n");
			return 125;
		}
		struct hutch_net_info info;
		if (hutch_network_create(&nctx, argv[first], a.subnet, a.internal, a.ipv6,
					 a.subnet6, a.dns, a.n_dns, &info, &err) < 0)
			return cli_report(ctx, err);
		printf("%s\n", info.id);
		hutch_net_info_free(&info);
		return 0;
	}
	if (!strcmp(a.verb, "ls")) {
		if (n_ops) {
			_cleanup_free_ char *shown = cli_shown(argv[first]);
			fprintf(stderr, "hutch: network ls: unexpected argument '%s'\n", shown);
			return 125;
		}
		struct hutch_net_info *list;
		size_t n;
		if (hutch_network_list(&nctx, &list, &n, &err) < 0)
			return cli_report(ctx, err);
		if (!a.json && !a.quiet)
			printf("%-12s  %-20s  %-18s  %-15s  %-8s  %-10s  %s\n", "NETWORK ID",
			       "NAME", "SUBNET", "BRIDGE", "INTERNAL", "CONTAINERS", "OWNER");
		for (size_t i = 0; i < n; i++) {
			if (a.quiet) {
				printf("%s\n", list[i].name);
			} else if (a.json) {
				_cleanup_free_ char *j = hutch_net_info_to_json(&list[i], false);
				printf("%s\n", j);
			} else {
				print_table_row(&list[i]);
			}
		}
		hutch_net_info_list_free(list, n);
		return 0;
	}
	if (n_ops < 1) {
		fprintf(stderr, "hutch: network %s: give at least one NAME\n", a.verb);
		return 125;
	}
	int rc = 0;
	bool json = !strcmp(a.verb, "inspect") && (a.json || !a.format_set);
	if (json)
		printf("[");
	for (int i = first; i < argc; i++) {
		hutch_err_free(&err);
		if (!strcmp(a.verb, "rm")) {
			if (hutch_network_remove(&nctx, argv[i], &err) < 0) {
				rc = cli_report(ctx, err);
			} else {
				cli_network_dns_forget(ctx, argv[i]);
				printf("%s\n", argv[i]);
			}
			continue;
		}
		struct hutch_net_info info;
		if (hutch_network_inspect(&nctx, argv[i], &info, &err) < 0) {
			rc = cli_report(ctx, err);
			continue;
		}
		if (json) {
			_cleanup_free_ char *j = inspect_json(ctx, &info);
			printf("%s%s", i > first && rc == 0 ? ",\n" : "\n", j);
		} else {
			print_inspect_text(ctx, &info);
		}
		hutch_net_info_free(&info);
	}
	if (json)
		printf("\n]\n");
	return rc;
}
