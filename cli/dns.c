/* `hutch internal dns`: the DNS server of net/ run on its own, in a minimal event loop:
 * for tests (--listen, --records), and as a standalone network's server (--network),
 * a process started with the network's first container (cli_network_dns_ensure) and
 * gone with its last, as podman runs aardvark-dns. Internal: not in --help. */
#include <errno.h>
#include <fcntl.h>
#include <linux/securebits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "net/net.h"

#define DNS_USAGE                                                                                  \
	"Usage: hutch internal dns --listen IP:PORT [--listen ...] --records FILE.json\n"          \
	"                          [--upstream IP[:PORT]]... [--upstream-loopback]\n"              \
	"                          [--resolv-conf FILE] [--budget-ms N]\n"                         \
	"       hutch internal dns --network NAME --data-root DIR --run-root DIR [--ready-fd N]\n" \
	"                          [--listen-fds UDP,TCP --netns-id ID]\n"                         \
	"Serves the names of FILE.json (docs/dns.md) and forwards the rest. SIGHUP rereads\n"      \
	"FILE.json; SIGTERM and SIGINT stop it. With --network: the server of a standalone\n"      \
	"network, on its gateway, serving its containers, until it has none.\n"

enum {
	OPT_LISTEN,
	OPT_RECORDS,
	OPT_UPSTREAM,
	OPT_LOOPBACK,
	OPT_RESOLV,
	OPT_BUDGET,
	OPT_NETWORK,
	OPT_DATA_ROOT,
	OPT_RUN_ROOT,
	OPT_READY_FD,
	OPT_LISTEN_FDS,
	OPT_NETNS_ID
};
static const struct cli_opt dns_opts[] = {
    {"listen", 0, true, OPT_LISTEN},	     {"records", 0, true, OPT_RECORDS},
    {"upstream", 0, true, OPT_UPSTREAM},     {"upstream-loopback", 0, false, OPT_LOOPBACK},
    {"resolv-conf", 0, true, OPT_RESOLV},    {"budget-ms", 0, true, OPT_BUDGET},
    {"network", 0, true, OPT_NETWORK},	     {"data-root", 0, true, OPT_DATA_ROOT},
    {"run-root", 0, true, OPT_RUN_ROOT},     {"ready-fd", 0, true, OPT_READY_FD},
    {"listen-fds", 0, true, OPT_LISTEN_FDS}, {"netns-id", 0, true, OPT_NETNS_ID},
};

struct dns_args {
	const char *listen[16], *upstreams[16];
	size_t n_listen, n_upstreams;
	const char *records, *resolv_conf;
	bool loopback;
	int64_t budget_ns;
	const char *network, *data_root, *run_root;
	int ready_fd;
	/* rootless: the UDP and TCP sockets bound in the rootless network
	 * namespace by the starter (-1: none), and that namespace's id */
	int listen_fds[2];
	uint64_t netns_id;
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
	case OPT_NETWORK:
		a->network = v;
		break;
	case OPT_DATA_ROOT:
		a->data_root = v;
		break;
	case OPT_RUN_ROOT:
		a->run_root = v;
		break;
	case OPT_READY_FD: {
		char *end;
		long fd = strtol(v, &end, 10);
		if (!*v || *end || fd < 3 || fd > 1024) {
			fprintf(stderr, "hutch: internal dns: --ready-fd '%s' is not an fd\n", v);
			return -1;
		}
		a->ready_fd = (int)fd;
		break;
	}
	case OPT_LISTEN_FDS: {
		int u, t, n = 0;
		if (sscanf(v, "%d,%d%n", &u, &t, &n) != 2 || v[n] || u < 3 || t < 3 || u > 1024 ||
		    t > 1024) {
			fprintf(stderr, "hutch: internal dns: --listen-fds '%s' is not UDP,TCP\n",
				v);
			return -1;
		}
		a->listen_fds[0] = u;
		a->listen_fds[1] = t;
		break;
	}
	case OPT_NETNS_ID: {
		char *end;
		errno = 0;
		unsigned long long id = strtoull(v, &end, 10);
		if (!*v || *end || errno || !id) {
			fprintf(stderr, "hutch: internal dns: --netns-id '%s' is not an id\n", v);
			return -1;
		}
		a->netns_id = id;
		break;
	}
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

/* ---- a standalone network's server (--network) ---------------------------------- */

/* Where a network's server says it runs: RUN/dns/NAME.pid, write-locked (an
 * open file description lock) by the server for its whole life, with its pid in
 * it. The lock is what counts: a server that crashed left the file unlocked. */
static char *dns_pid_path(const char *run_root, const char *network)
{
	return xasprintf("%s/dns/%s.pid", run_root, network);
}

static char *dns_log_path(const char *run_root, const char *network)
{
	return xasprintf("%s/dns/%s.log", run_root, network);
}

/* The pid of the running server of network, 0 if none runs; *ns_id (if
 * asked): the rootless network namespace its sockets are in (0: rootful). */
static int dns_holder_ns(const char *run_root, const char *network, uint64_t *ns_id)
{
	if (ns_id)
		*ns_id = 0;
	_cleanup_free_ char *path = dns_pid_path(run_root, network);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	/* F_OFD_GETLK only asks: a probe that took the lock, even for a moment,
	 * could make a starting server believe another one runs */
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	if (fcntl(fd, F_OFD_GETLK, &fl) < 0 || fl.l_type == F_UNLCK)
		return 0;
	char buf[48] = "";
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	int pid = 0;
	unsigned long long ns = 0;
	if (n > 0 && sscanf(buf, "%d %llu", &pid, &ns) == 2 && ns_id)
		*ns_id = ns;
	return pid > 0 ? pid : -1; /* locked, pid not written yet: it is starting */
}

static int dns_holder(const char *run_root, const char *network)
{
	return dns_holder_ns(run_root, network, NULL);
}

int cli_network_dns_pid(const struct cli_ctx *ctx, const char *network)
{
	return dns_holder(ctx->run_root, network);
}

void cli_network_dns_forget(const struct cli_ctx *ctx, const char *network)
{
	if (dns_holder(ctx->run_root, network))
		return;
	_cleanup_free_ char *pid = dns_pid_path(ctx->run_root, network);
	_cleanup_free_ char *log = dns_log_path(ctx->run_root, network);
	unlink(pid);
	unlink(log);
}

/* Labels of [A-Za-z0-9_-], 1-63 each, at most 253 in all: what the names table
 * takes (a container name with other characters is served by its id only). */
static bool dns_name_ok(const char *s)
{
	size_t n = strlen(s), label = 0;
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_') ||
		    ++label > 63)
			return false;
	}
	return label > 0;
}

#define DNS_LOCAL_DOMAIN "dns.hutch"

/* The names table of a network: each container answers to its name, its
 * aliases and its short id, each also under dns.hutch (PTR: the first). */
static struct hutch_dns_records *network_records(const struct hutch_net_info *info,
						 struct hutch_err **err)
{
	struct hutch_dns_records *r = hutch_dns_records_new();
	int net = hutch_dns_records_add_network(r, info->name, err);
	if (net < 0 || hutch_dns_records_add_subnet(r, net, info->subnet, err) < 0 ||
	    hutch_dns_records_add_domain(r, net, DNS_LOCAL_DOMAIN, err) < 0 ||
	    (info->ipv6 && hutch_dns_records_add_subnet(r, net, info->subnet6, err) < 0))
		goto fail;
	for (size_t i = 0; i < info->n_members; i++) {
		const struct hutch_net_member *m = &info->members[i];
		const char **names = xcalloc(2 * (m->n_aliases + 2), sizeof(char *));
		char **owned = xcalloc(m->n_aliases + 2, sizeof(char *));
		size_t n = 0, n_owned = 0;
		char id[13];
		snprintf(id, sizeof(id), "%.12s", m->container);
		if (m->name && dns_name_ok(m->name))
			names[n++] = m->name;
		for (size_t k = 0; k < m->n_aliases; k++)
			if (dns_name_ok(m->aliases[k]))
				names[n++] = m->aliases[k];
		names[n++] = id;
		for (size_t k = 0, plain = n; k < plain; k++) {
			char *q = xasprintf("%s." DNS_LOCAL_DOMAIN, names[k]);
			if (dns_name_ok(q))
				names[n++] = owned[n_owned++] = q;
			else
				free(q);
		}
		const char *addrs[] = {m->address, m->address6}; /* AAAA too, dual stack */
		int ar =
		    hutch_dns_records_add_host(r, net, names, n, addrs, info->ipv6 ? 2 : 1, err);
		for (size_t k = 0; k < n_owned; k++)
			free(owned[k]);
		free(owned);
		free(names);
		if (ar < 0)
			goto fail;
	}
	return r;
fail:
	hutch_dns_records_free(r);
	return NULL;
}

/* Tell the process that started this one how it went ("OK" or the message),
 * once: it waits for that before it goes on. */
static void ready_say(int *fd, const char *msg)
{
	if (*fd < 0)
		return;
	(void)!write(*fd, msg, strlen(msg));
	(void)!write(*fd, "\n", 1);
	close(*fd);
	*fd = -1;
}

/* Bound to port 53, the server needs no privilege any more: every capability
 * goes (bounding set too, and root's exec rules locked off) and no exec could
 * gain one. It reads the network's file and takes the networks' lock as root's
 * uid, the owner of both. */
static int drop_privileges(bool rootless, struct hutch_err **err)
{
	/* rootless: it never had a capability of the host's (its sockets were
	 * bound by the starter); no exec may gain one either */
	if (rootless)
		goto nnp;
	int last = CAP_LAST_CAP;
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	if (f) {
		if (fscanf(f, "%d", &last) != 1)
			last = CAP_LAST_CAP;
		fclose(f);
	}
	for (int c = 0; c <= last; c++)
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			return hutch_fail_sys(err, "drop capability %d from the bounding set", c);
	if (prctl(PR_SET_SECUREBITS,
		  SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
		      SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED,
		  0, 0, 0) < 0)
		return hutch_fail_sys(err, "set the securebits");
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	cap_t none = cap_init();
	int r = none ? cap_set_proc(none) : -1;
	if (none)
		cap_free(none);
	if (r < 0)
		return hutch_fail_sys(err, "drop the capabilities");
nnp:
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return hutch_fail_sys(err, "set no_new_privs");
	return 0;
}

/* The pages of code and read-only data the start needed (option parsing, JSON,
 * libc's loader...) are given back: each read-only mapping of a file that holds
 * no page of its own (no copy-on-write: not relro) is dropped from this
 * process, and what answering queries uses comes back as minor faults from the
 * page cache. The server's resident set is then what it serves with. */
static void shed_startup_pages(void)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	if (!f)
		return;
	char line[512];
	unsigned long start = 0, end = 0;
	bool candidate = false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;
		char perms[8], path[256] = "";
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255s", &a, &b, perms, path) >= 3 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			start = a;
			end = b;
			/* a file's read-only pages, shared with the page cache */
			candidate =
			    perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p' && path[0] == '/';
			continue;
		}
		unsigned long anon;
		if (candidate && sscanf(line, "Anonymous: %lu kB", &anon) == 1) {
			if (anon == 0) {
				/* page by page from now on: the kernel's fault-around
				 * would map 16 pages for each one the loop touches */
				madvise((void *)start, end - start, MADV_RANDOM);
				madvise((void *)start, end - start, MADV_DONTNEED);
			}
			candidate = false;
		}
	}
	fclose(f);
}

struct netwatch {
	struct hutch_net_ctx nctx;
	const char *network;
	char *pid_path;
	int pid_fd;  /* write-locked while this server runs */
	int inotify; /* the network's directory: network.json replaced */
	/* rootless: the rootless network namespace its sockets are in; when
	 * the last container took it, a new one has none of this server's */
	uint64_t netns_id;
};

/* Still something to serve: containers, and (rootless) in the namespace
 * its sockets are bound in. */
static bool netwatch_serves(struct netwatch *w, const struct hutch_net_info *info)
{
	return info->n_members && (!w->netns_id || hutch_net_rootless_id(&w->nctx) == w->netns_id);
}

/* The network's file changed: its names again, or the end when it has no
 * container any more. The end is decided under the networks' lock, so that an
 * attach either comes before it (and this server stays) or after it (and finds
 * no server, and starts one). Returns 1 to go on, 0 to stop. */
static void netwatch_names(struct hutch_dns *dns, const struct hutch_net_info *info,
			   const char *prog)
{
	_cleanup_err_ struct hutch_err *err = NULL;
	struct hutch_dns_records *rec = network_records(info, &err);
	if (!rec) {
		hutch_err_wrap(&err, "dns: keeping the names served so far");
		hutch_err_print(prog, err);
		return;
	}
	hutch_dns_set_records(dns, rec);
}

static int netwatch_reload(struct netwatch *w, struct hutch_dns *dns, const char *prog)
{
	_cleanup_err_ struct hutch_err *err = NULL;
	struct hutch_net_info info;
	int r = hutch_network_peek(&w->nctx, w->network, &info, &err);
	if (r == 0 && netwatch_serves(w, &info)) {
		netwatch_names(dns, &info, prog);
		hutch_net_info_free(&info);
		return 1;
	}
	if (r == 0)
		hutch_net_info_free(&info);
	hutch_err_free(&err);
	_cleanup_close_ int lock = -1;
	if (hutch_net_lock(&w->nctx, &lock, &err) < 0) {
		hutch_err_print(prog, err);
		return 1;
	}
	r = hutch_network_peek(&w->nctx, w->network, &info, NULL);
	if (r == 0 && netwatch_serves(w, &info)) {
		netwatch_names(dns, &info, prog);
		hutch_net_info_free(&info);
		return 1;
	}
	if (r == 0)
		hutch_net_info_free(&info);
	/* gone under the lock: the next attach starts a new server */
	unlink(w->pid_path);
	close(w->pid_fd);
	w->pid_fd = -1;
	return 0;
}

static void epoll_add(int ep, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int dns_loop(struct cli_ctx *ctx, struct dns_args *a, struct netwatch *w,
		    struct hutch_dns_records *records)
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
	/* a TCP client gone before its answer is written must not take the server */
	signal(SIGPIPE, SIG_IGN);
	if (ep < 0 || sfd < 0) {
		hutch_dns_records_free(records);
		hutch_fail_sys(&err, "internal dns: cannot set up the event loop");
		return cli_report(ctx, err);
	}
	if (!records && hutch_dns_records_load(a->records, &records, &err) < 0)
		return cli_report(ctx, err);
	struct hutch_dns_config cfg = {
	    .listen = a->listen,
	    .n_listen = a->n_listen,
	    .upstreams = a->upstreams,
	    .n_upstreams = a->n_upstreams,
	    .resolv_conf = a->resolv_conf,
	    .upstream_loopback_ok = a->loopback,
	    .upstream_budget_ns = a->budget_ns,
	    .listen_fds = a->listen_fds[0] >= 0 ? a->listen_fds : NULL,
	    .watch = epoll_watch,
	    .watch_ctx = &ep,
	};
	struct hutch_dns *dns = hutch_dns_new(&cfg, records, &err);
	if (!dns)
		return cli_report(ctx, err);
	epoll_add(ep, sfd);
	if (w) {
		epoll_add(ep, w->inotify);
		if (drop_privileges(w->netns_id != 0, &err) < 0) {
			hutch_dns_free(dns);
			return cli_report(ctx, err);
		}
	}
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
	ready_say(&a->ready_fd, "OK");
	if (w)
		shed_startup_pages();
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
			if (w && evs[i].data.fd == w->inotify) {
				char buf[4096]
				    __attribute__((aligned(__alignof__(struct inotify_event))));
				bool changed = false;
				ssize_t len;
				while ((len = read(w->inotify, buf, sizeof(buf))) > 0)
					for (char *p = buf; p < buf + len;) {
						struct inotify_event *e = (struct inotify_event *)p;
						changed |=
						    (e->len && !strcmp(e->name, "network.json")) ||
						    (e->mask &
						     (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED));
						p += sizeof(*e) + e->len;
					}
				if (changed && !netwatch_reload(w, dns, ctx->prog))
					running = false;
				continue;
			}
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
				if (w) { /* the network's file again */
					if (!netwatch_reload(w, dns, ctx->prog))
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

/* --network: the server of a standalone network. One per network (the pid
 * file's lock, taken under the networks' lock), on its gateway, port 53. */
static int dns_network(struct cli_ctx *ctx, struct dns_args *a)
{
	prctl(PR_SET_NAME, "hutch-dns", 0, 0, 0);
	_cleanup_err_ struct hutch_err *err = NULL;
	struct netwatch w = {.nctx = {.data_root = a->data_root,
				      .run_root = a->run_root,
				      .rootless = a->netns_id != 0},
			     .network = a->network,
			     .netns_id = a->netns_id,
			     .pid_path = dns_pid_path(a->run_root, a->network),
			     .pid_fd = -1,
			     .inotify = -1};
	_cleanup_free_ char *dir = xasprintf("%s/dns", a->run_root);
	_cleanup_free_ char *netdir = hutch_network_record_dir(&w.nctx, a->network);
	_cleanup_close_ int lock = -1;
	struct hutch_net_info info = {0};
	struct hutch_dns_records *records = NULL;
	char listen[32];
	int rc = 125;
	if (mkdir_p_at(AT_FDCWD, dir, 0700, &err) < 0 || hutch_net_lock(&w.nctx, &lock, &err) < 0)
		goto out;
	w.pid_fd = open(w.pid_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (w.pid_fd < 0) {
		hutch_fail_sys(&err, "open %s", w.pid_path);
		goto out;
	}
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	if (fcntl(w.pid_fd, F_OFD_SETLK, &fl) < 0) {
		/* another one serves the network: what the caller wanted */
		close(w.pid_fd);
		w.pid_fd = -1;
		rc = 0;
		goto out;
	}
	int r = hutch_network_peek(&w.nctx, a->network, &info, &err);
	if (r < 0 || !netwatch_serves(&w, &info)) {
		/* nobody left to serve (the last container went before we started) */
		unlink(w.pid_path);
		rc = r < 0 && r != HUTCH_NET_NOT_FOUND ? 125 : 0;
		if (rc == 0)
			hutch_err_free(&err);
		goto out;
	}
	char pid[48];
	int n = snprintf(pid, sizeof(pid), "%d %llu\n", getpid(), (unsigned long long)a->netns_id);
	if (ftruncate(w.pid_fd, 0) < 0 || pwrite(w.pid_fd, pid, (size_t)n, 0) != n) {
		hutch_fail_sys(&err, "write %s", w.pid_path);
		goto out;
	}
	/* what the last one wrote is of no use now (stderr is the log, O_APPEND) */
	(void)!ftruncate(STDERR_FILENO, 0);
	w.inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w.inotify < 0 || mkdir_p_at(AT_FDCWD, netdir, 0700, NULL) < 0 ||
	    inotify_add_watch(w.inotify, netdir,
			      IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
		hutch_fail_sys(&err, "watch %s", netdir);
		goto out;
	}
	records = network_records(&info, &err);
	if (!records)
		goto out;
	snprintf(listen, sizeof(listen), "%s:53", info.gateway);
	a->listen[0] = listen;
	a->n_listen = 1;
	/* dual stack: on the IPv6 gateway too (rootful: a rootless server is
	 * given one pair of sockets, the IPv4 gateway's) */
	char listen6[64];
	if (info.ipv6 && a->listen_fds[0] < 0) {
		snprintf(listen6, sizeof(listen6), "[%s]:53", info.gateway6);
		a->listen[a->n_listen++] = listen6;
	}
	/* an internal network has no way out, not even through its DNS server (names
	 * as a tunnel): what is not its containers' gets SERVFAIL at once */
	if (info.internal)
		a->resolv_conf = "/dev/null";
	for (size_t i = 0; i < info.n_dns_servers && i < 16 && !info.internal; i++)
		a->upstreams[a->n_upstreams++] = info.dns_servers[i];
	/* rootless, it forwards from the host's network namespace (it only
	 * serves from the rootless one), where a resolver on the host's
	 * loopback (systemd-resolved's 127.0.0.53) answers, as a rootless
	 * stack's supervisor does */
	a->loopback = a->netns_id != 0;
	close(lock);
	lock = -1;
	rc = dns_loop(ctx, a, &w, steal_ptr(records));
	if (w.pid_fd >= 0) { /* stopped by a signal: the pid file goes too */
		unlink(w.pid_path);
		close(w.pid_fd);
		w.pid_fd = -1;
	}
out:
	if (err) {
		ready_say(&a->ready_fd, err->msg ? err->msg : "cannot start");
		rc = cli_report(ctx, err);
		err = NULL;
		if (w.pid_fd >= 0)
			unlink(w.pid_path);
	}
	ready_say(&a->ready_fd, "OK");
	hutch_dns_records_free(records);
	hutch_net_info_free(&info);
	if (w.pid_fd >= 0)
		close(w.pid_fd);
	if (w.inotify >= 0)
		close(w.inotify);
	free(w.pid_path);
	return rc;
}

/* Start the DNS server of a standalone network unless one runs: the attaching
 * hutch calls it once the container is on the network. It waits until the
 * server answers (or said why it cannot), so that the container's first lookup
 * finds it. A server that does not start is a warning, not a failed run. */
/* Rootless: a server whose sockets are in a rootless network namespace that
 * is gone (the last container took it, and this attach made a new one before
 * the server saw it) serves nobody: it is stopped (our own process, by the pid
 * its locked file gives) and waited for, so that a new one can start. */
static void dns_stop_stale(struct cli_ctx *ctx, const struct hutch_net_ctx *nctx,
			   const char *network)
{
	uint64_t ns = 0;
	int pid = dns_holder_ns(ctx->run_root, network, &ns);
	if (pid <= 0 || !ns || ns == hutch_net_rootless_id(nctx))
		return;
	hutch_trace("dns: its server is in a namespace gone: stopping it");
	kill(pid, SIGTERM);
	kill(pid, SIGCONT); /* a stopped one too */
	for (int i = 0; i < 200 && dns_holder(ctx->run_root, network) > 0; i++)
		usleep(10000);
}

void cli_network_dns_ensure(struct cli_ctx *ctx, const char *network)
{
	struct hutch_net_ctx nctx = {
	    .data_root = ctx->data_root, .run_root = ctx->run_root, .rootless = ctx->rootless};
	if (ctx->rootless)
		dns_stop_stale(ctx, &nctx, network);
	if (dns_holder(ctx->run_root, network))
		return;
	/* a stack's network: its supervisor serves the names, in its own loop */
	struct hutch_net_info info;
	char listen[32] = "";
	if (hutch_network_peek(&nctx, network, &info, NULL) == 0) {
		bool owned = info.owner != NULL;
		snprintf(listen, sizeof(listen), "%s:53", info.gateway);
		hutch_net_info_free(&info);
		if (owned)
			return;
	}
	hutch_trace("dns: starting its server");
	_cleanup_free_ char *dir = xasprintf("%s/dns", ctx->run_root);
	_cleanup_free_ char *log = dns_log_path(ctx->run_root, network);
	_cleanup_free_ char *shown = cli_shown(network);
	_cleanup_err_ struct hutch_err *err = NULL;
	int ready[2], socks[2] = {-1, -1};
	uint64_t ns_id = 0;
	if (mkdir_p_at(AT_FDCWD, dir, 0700, &err) < 0)
		goto warn;
	/* rootless: its port 53 on the gateway, bound in the rootless network
	 * namespace by a helper that enters it (this process cannot: that
	 * would be for good), given to the server as inherited fds */
	if (ctx->rootless) {
		const char *addrs[] = {listen};
		if (!listen[0]) {
			hutch_fail(&err, 0, "the network is gone");
			goto warn;
		}
		if (hutch_net_rootless_dns_sockets(&nctx, addrs, 1, socks, &ns_id, &err) < 0) {
			/* port taken: by a server another attach started meanwhile? */
			if (dns_holder(ctx->run_root, network))
				return;
			goto warn;
		}
		hutch_trace("dns: its sockets bound in the rootless namespace");
	}
	if (pipe2(ready, O_CLOEXEC) < 0) {
		hutch_fail_sys(&err, "pipe");
		for (int i = 0; i < 2; i++)
			if (socks[i] >= 0)
				close(socks[i]);
		goto warn;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		/* twice: the server is nobody's child (its exit leaves no zombie in
		 * a long `hutch run`), in a session of its own */
		setsid();
		if (fork() != 0)
			_exit(0);
		int devnull = open("/dev/null", O_RDWR);
		int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (devnull < 0 || logfd < 0 || chdir("/") < 0)
			_exit(125);
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(logfd, 2);
		int fd = dup(ready[1]); /* without O_CLOEXEC: it crosses the exec */
		int udp = socks[0] >= 0 ? dup(socks[0]) : -1,
		    tcp = socks[1] >= 0 ? dup(socks[1]) : -1;
		int keep[] = {fd, udp, tcp};
		close_fds_except(keep, udp >= 0 ? 3 : 1);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		char fdtext[16];
		snprintf(fdtext, sizeof(fdtext), "%d", fd);
		char fdstext[32], nstext[24];
		snprintf(fdstext, sizeof(fdstext), "%d,%d", udp, tcp);
		snprintf(nstext, sizeof(nstext), "%llu", (unsigned long long)ns_id);
		const char *args[] = {"hutch",	     "internal",    "dns",	    "--network",
				      network,	     "--data-root", ctx->data_root, "--run-root",
				      ctx->run_root, "--ready-fd",  fdtext,	    "--listen-fds",
				      fdstext,	     "--netns-id",  nstext,	    NULL};
		if (udp < 0)
			args[11] = NULL;
		execv("/proc/self/exe", (char **)args);
		_exit(127);
	}
	close(ready[1]);
	for (int i = 0; i < 2; i++)
		if (socks[i] >= 0)
			close(socks[i]);
	if (pid < 0) {
		close(ready[0]);
		hutch_fail_sys(&err, "fork");
		goto warn;
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	char buf[512];
	size_t got = 0;
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left =
		    5000 - ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
		struct pollfd p = {.fd = ready[0], .events = POLLIN};
		int k = left > 0 ? poll(&p, 1, (int)left) : 0;
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		ssize_t r = read(ready[0], buf + got, sizeof(buf) - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		if (got == sizeof(buf) - 1 || memchr(buf, '\n', got))
			break;
	}
	close(ready[0]);
	buf[got] = '\0';
	hutch_trace("dns: its server is ready");
	if (!strncmp(buf, "OK\n", 3))
		return;
	buf[strcspn(buf, "\n")] = '\0';
	hutch_fail(&err, 0, "%s", got ? buf : "it exited or did not answer in 5 s");
warn:
	if (!ctx->quiet) {
		_cleanup_free_ char *msg = cli_shown(err && err->msg ? err->msg : "?");
		fprintf(stderr,
			"hutch: warning: network %s: its DNS server did not start (%s): names of "
			"other containers will not resolve (log: %s)\n",
			shown, msg, log);
	}
}

int cmd_internal_dns(struct cli_ctx *ctx, int argc, char **argv)
{
	struct dns_args a = {.ready_fd = -1, .listen_fds = {-1, -1}};
	int i = cli_parse_opts("internal dns", DNS_USAGE, dns_opts, ARRAY_SIZE(dns_opts), true,
			       argc, argv, dns_set, &a);
	if (i < 0)
		return i == -2 ? 0 : 125;
	if (i < argc) {
		fprintf(stderr, "hutch: internal dns: unexpected argument '%s'\n%s", argv[i],
			DNS_USAGE);
		return 125;
	}
	if (!a.network && (a.listen_fds[0] >= 0 || a.netns_id)) {
		fprintf(stderr,
			"hutch: internal dns: --listen-fds and --netns-id are for --network\n%s",
			DNS_USAGE);
		return 125;
	}
	if (a.network) {
		if (!a.data_root || !a.run_root || a.n_listen || a.records) {
			fprintf(stderr,
				"hutch: internal dns: --network takes --data-root and --run-root, "
				"not --listen or --records\n%s",
				DNS_USAGE);
			return 125;
		}
		if ((a.listen_fds[0] >= 0) != (a.netns_id != 0)) {
			fprintf(stderr,
				"hutch: internal dns: --listen-fds and --netns-id go together\n%s",
				DNS_USAGE);
			return 125;
		}
		return dns_network(ctx, &a);
	}
	if (!a.n_listen || !a.records) {
		fprintf(stderr, "hutch: internal dns: --listen and --records are required\n%s",
			DNS_USAGE);
		return 125;
	}
	return dns_loop(ctx, &a, NULL, NULL);
}
