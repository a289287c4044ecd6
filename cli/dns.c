/* `hutch internal dns`: the DNS server of net/ run on its own, in a minimal event loop
 * (tests, and standalone networks' per-network server). Internal: not in --help. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "net/net.h"

#define DNS_USAGE                                                                                  \
	"Usage: hutch internal dns --listen IP:PORT [--listen ...] --records FILE.json\n"          \
	"                          [--upstream IP[:PORT]]... [--upstream-loopback]\n"              \
	"                          [--resolv-conf FILE] [--budget-ms N]\n"                         \
	"Serves the names of FILE.json (docs/dns.md) and forwards the rest. SIGHUP rereads\n"      \
	"FILE.json; SIGTERM and SIGINT stop it.\n"

enum { OPT_LISTEN, OPT_RECORDS, OPT_UPSTREAM, OPT_LOOPBACK, OPT_RESOLV, OPT_BUDGET };
static const struct cli_opt dns_opts[] = {
    {"listen", 0, true, OPT_LISTEN},	  {"records", 0, true, OPT_RECORDS},
    {"upstream", 0, true, OPT_UPSTREAM},  {"upstream-loopback", 0, false, OPT_LOOPBACK},
    {"resolv-conf", 0, true, OPT_RESOLV}, {"budget-ms", 0, true, OPT_BUDGET},
};

struct dns_args {
	const char *listen[16], *upstreams[16];
	size_t n_listen, n_upstreams;
	const char *records, *resolv_conf;
	bool loopback;
	int64_t budget_ns;
};

static int dns_set(void *arg, int id, const char *v)
{
	struct dns_args *a = arg;
	switch (id) {
	case OPT_LISTEN:
	case OPT_UPSTREAM: {
		const char **list = id == OPT_LISTEN ? a->listen : a->upstreams;
		size_t *n = id == OPT_LISTEN ? &a->n_listen : &a->n_upstreams;
		if (*n >= 16) {
			fprintf(stderr, "hutch: internal dns: more than 16 %s\n", cli_opt_given());
			return -1;
		}
		list[(*n)++] = v;
		break;
	}
	case OPT_RECORDS:
		a->records = v;
		break;
	case OPT_LOOPBACK:
		a->loopback = true;
		break;
	case OPT_RESOLV:
		a->resolv_conf = v;
		break;
	case OPT_BUDGET: {
		char *end;
		errno = 0;
		long long ms = strtoll(v, &end, 10);
		if (!*v || *end || errno || ms <= 0 || ms > 60000) {
			fprintf(stderr, "hutch: internal dns: --budget-ms '%s' is not 1 to 60000\n",
				v);
			return -1;
		}
		a->budget_ns = ms * 1000000LL;
		break;
	}
	}
	return 0;
}

static void epoll_watch(void *ctx, int fd, uint32_t events)
{
	int ep = *(int *)ctx;
	struct epoll_event ev = {.events = events, .data.fd = fd};
	if (!events) {
		epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
		return;
	}
	if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) < 0 && errno == ENOENT)
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int dns_loop(struct cli_ctx *ctx, struct dns_args *a)
{
	_cleanup_err_ struct hutch_err *err = NULL;
	_cleanup_close_ int ep = epoll_create1(EPOLL_CLOEXEC);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	_cleanup_close_ int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (ep < 0 || sfd < 0) {
		hutch_fail_sys(&err, "internal dns: cannot set up the event loop");
		return cli_report(ctx, err);
	}
	struct hutch_dns_records *records = NULL;
	if (hutch_dns_records_load(a->records, &records, &err) < 0)
		return cli_report(ctx, err);
	struct hutch_dns_config cfg = {
	    .listen = a->listen,
	    .n_listen = a->n_listen,
	    .upstreams = a->upstreams,
	    .n_upstreams = a->n_upstreams,
	    .resolv_conf = a->resolv_conf,
	    .upstream_loopback_ok = a->loopback,
	    .upstream_budget_ns = a->budget_ns,
	    .watch = epoll_watch,
	    .watch_ctx = &ep,
	};
	struct hutch_dns *dns = hutch_dns_new(&cfg, records, &err);
	if (!dns)
		return cli_report(ctx, err);
	struct epoll_event sev = {.events = EPOLLIN, .data.fd = sfd};
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sev);
	/* one line per listener, then the upstreams: tests and the supervisor wait for it */
	for (size_t i = 0; i < a->n_listen; i++)
		fprintf(stderr, "hutch: dns: listening on %s (port %d, udp and tcp)\n",
			a->listen[i], hutch_dns_port(dns, i));
	for (size_t i = 0; i < hutch_dns_upstream_count(dns); i++)
		fprintf(stderr, "hutch: dns: upstream %s\n", hutch_dns_upstream(dns, i));
	if (!hutch_dns_upstream_count(dns) && !ctx->quiet)
		fprintf(stderr, "hutch: dns: warning: no upstream resolver: names that are not "
				"local get SERVFAIL\n");
	fprintf(stderr, "hutch: dns: ready\n");
	int rc = 0;
	for (bool running = true; running;) {
		int64_t next = hutch_dns_next_timeout_ns(dns), timeout_ms = -1;
		if (next >= 0) {
			int64_t left = next - hutch_dns_now_ns();
			timeout_ms = left <= 0 ? 0 : (left + 999999) / 1000000;
		}
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, (int)timeout_ms);
		if (n < 0 && errno != EINTR) {
			hutch_fail_sys(&err, "internal dns: epoll_wait");
			rc = cli_report(ctx, err);
			break;
		}
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd != sfd) {
				hutch_dns_on_event(dns, evs[i].data.fd, evs[i].events);
				continue;
			}
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo != SIGHUP) {
					running = false;
					continue;
				}
				struct hutch_dns_records *fresh = NULL;
				if (hutch_dns_records_load(a->records, &fresh, &err) < 0) {
					/* the old names stay: a half-written file breaks nothing */
					hutch_err_wrap(&err,
						       "dns: keeping the names served so far");
					hutch_err_print(ctx->prog, err);
					hutch_err_free(&err);
					continue;
				}
				hutch_dns_set_records(dns, fresh);
				fprintf(stderr, "hutch: dns: reloaded %s\n", a->records);
			}
		}
		hutch_dns_on_timeout(dns, hutch_dns_now_ns());
	}
	hutch_dns_free(dns);
	return rc;
}

int cmd_internal_dns(struct cli_ctx *ctx, int argc, char **argv)
{
	struct dns_args a = {0};
	int i = cli_parse_opts("internal dns", DNS_USAGE, dns_opts, ARRAY_SIZE(dns_opts), true,
			       argc, argv, dns_set, &a);
	if (i < 0)
		return i == -2 ? 0 : 125;
	if (i < argc) {
		fprintf(stderr, "hutch: internal dns: unexpected argument '%s'\n%s", argv[i],
			DNS_USAGE);
		return 125;
	}
	if (!a.n_listen || !a.records) {
		fprintf(stderr, "hutch: internal dns: --listen and --records are required\n%s",
			DNS_USAGE);
		return 125;
	}
	return dns_loop(ctx, &a);
}
