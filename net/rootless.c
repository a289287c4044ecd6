/* The rootless network namespace (docs/network.md, "Rootless"): one per user,
 * where the bridges of a rootless hutch's networks live.
 *
 * A tiny process of hutch's, the holder ("hutch-netns"), makes and holds a user
 * namespace that maps the user's own and subordinate ids (through newuidmap,
 * as a container's) and, owned by it, a network namespace: the bridges, the
 * hosts' ends of the veths, the nftables table and ip_forward are there. pasta
 * (Debian's passt) is attached to it: a tap whose traffic it carries out
 * through sockets of the user's, and the published ports it listens on in the
 * user's namespace, forwarded to the same port in this one with the client's
 * address kept, where the rules DNAT them to the container as rootful.
 *
 * setns(2) wants CAP_SYS_ADMIN in the user namespace that owns the network
 * namespace joined: a container's own user namespace, a sibling of the
 * holder's, could not join one of its network namespaces, and no process
 * would have the capabilities over both ends of a veth. So a container on a
 * rootless network has its user namespace made as a child of the holder's
 * (hutch_runtime.userns_parent) and its own network namespace, which hutch
 * wires from the holder's through its pid before anything of it runs
 * (hutch_net_wire): a process in the holder's namespace has every capability
 * over both. Files: RUN/rootless-netns/{holder,pasta,pasta.pid,pasta.log}. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/idmap.h"
#include "common/util.h"
#include "net/link_internal.h"

#define PASTA "/usr/bin/pasta"
/* the tap's side: link-local, so that it clashes with no subnet of the host's
 * or hutch's and the host's own addresses stay reachable through pasta */
#define TAP_ADDR "169.254.89.2"
#define TAP_GW	 "169.254.89.1"
#define TAP_NAME "pasta0"

static char *rl_dir(const struct hutch_net_ctx *ctx)
{
	return xasprintf("%s/rootless-netns", ctx->run_root);
}

static char *rl_file(const struct hutch_net_ctx *ctx, const char *name)
{
	return xasprintf("%s/rootless-netns/%s", ctx->run_root, name);
}

/* "PID START" in file, and that process still the one (0: none). */
static pid_t read_alive(const struct hutch_net_ctx *ctx, const char *file)
{
	_cleanup_free_ char *p = rl_file(ctx, file), *text = NULL;
	size_t len;
	int pid = 0;
	uint64_t start = 0;
	if (read_file_at(AT_FDCWD, p, &text, &len, NULL) < 0 ||
	    sscanf(text, "%d %" SCNu64, &pid, &start) != 2 || pid <= 0 || !start)
		return 0;
	if (net_proc_start_time(pid) != start)
		return 0;
	/* a zombie waiting for its reaper (which may be slow: pid 1 of a VM) has
	 * no namespaces any more */
	_cleanup_free_ char *stat = NULL;
	char sp[64];
	snprintf(sp, sizeof(sp), "/proc/%d/stat", pid);
	const char *close_paren;
	if (read_file_at(AT_FDCWD, sp, &stat, &len, NULL) < 0 ||
	    !(close_paren = strrchr(stat, ')')) || close_paren[1] != ' ' || close_paren[2] == 'Z')
		return 0;
	return pid;
}

static int write_alive(const struct hutch_net_ctx *ctx, const char *file, pid_t pid,
		       struct hutch_err **err)
{
	_cleanup_free_ char *p = rl_file(ctx, file);
	char text[64];
	snprintf(text, sizeof(text), "%d %" PRIu64 "\n", pid, net_proc_start_time(pid));
	return write_file_replace(AT_FDCWD, p, text, strlen(text), err);
}

/* SIGKILL (neither has anything to save); wait: return once it is gone (its
 * ports and tap free again), which takes the kernel tens of ms to tear its
 * tap down: not waited for when the whole namespace goes. */
static void stop_process(pid_t pid, bool wait)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0)
		return;
	syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
	struct pollfd p = {.fd = pfd, .events = POLLIN};
	if (wait)
		poll(&p, 1, 2000);
	close(pfd);
}

int net_rootless_find(const struct hutch_net_ctx *ctx, struct net_rootless *rl)
{
	*rl = (struct net_rootless){0};
	rl->holder = read_alive(ctx, "holder");
	if (!rl->holder)
		return 0;
	snprintf(rl->userns, sizeof(rl->userns), "/proc/%d/ns/user", rl->holder);
	snprintf(rl->netns, sizeof(rl->netns), "/proc/%d/ns/net", rl->holder);
	rl->pasta = read_alive(ctx, "pasta");
	return 1;
}

void net_rootless_stop(const struct hutch_net_ctx *ctx)
{
	pid_t pasta = read_alive(ctx, "pasta"), holder = read_alive(ctx, "holder");
	if (pasta)
		stop_process(pasta, false);
	hutch_trace("net: pasta stopped");
	if (holder)
		stop_process(holder, false);
	hutch_trace("net: holder stopped");
	_cleanup_free_ char *dir = rl_dir(ctx);
	remove_tree_at(AT_FDCWD, dir, NULL);
	/* what the rules of the namespace left in the run dir: they went with it */
	_cleanup_free_ char *rules = xasprintf("%s/nft-hutch.rules", ctx->run_root);
	_cleanup_free_ char *fwd = xasprintf("%s/ip-forward-by-hutch", ctx->run_root);
	unlink(rules);
	unlink(fwd);
}

static void set_loopback_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {0};
	strcpy(ifr.ifr_name, "lo");
	if (s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	if (s >= 0)
		close(s);
}

/* Frames bridged in the namespace do not go through its ip and ip6 rules
 * (br_netfilter's bridge-nf-call-*, per network namespace, on when the module
 * is loaded): nothing of hutch's needs them there (the isolation, the
 * published ports and the localnet guard are routed traffic, seen at the IP
 * layer anyway), and each frame paid conntrack and the NAT table twice: with
 * them on, a published port from the host's loopback carried ~0.6x as much. */
static void bridge_netfilter_off(void)
{
	static const char *const files[] = {"/proc/sys/net/bridge/bridge-nf-call-iptables",
					    "/proc/sys/net/bridge/bridge-nf-call-ip6tables",
					    "/proc/sys/net/bridge/bridge-nf-call-arptables"};
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		int fd = open(files[i], O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)!write(fd, "0", 1);
			close(fd);
		}
	}
}

/* The holder: its own session (it outlives the hutch that made it), nothing of
 * hutch's open, waiting for SIGTERM. */
static __attribute__((noreturn)) void holder_main(int report, int go)
{
	char c = 0;
	if (unshare(CLONE_NEWUSER) < 0 || write(report, "u", 1) != 1 || read(go, &c, 1) != 1 ||
	    c != 'g' || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0 ||
	    unshare(CLONE_NEWNET) < 0)
		_exit(1);
	set_loopback_up();
	bridge_netfilter_off();
	prctl(PR_SET_NAME, "hutch-netns", 0, 0, 0);
	if (chdir("/") < 0 || write(report, "n", 1) != 1)
		_exit(1);
	int keep[1] = {-1};
	close_fds_except(keep, 0);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < _NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP && s != SIGTERM)
			signal(s, SIG_IGN);
	signal(SIGTERM, SIG_DFL);
	for (;;)
		pause();
}

static int start_holder(const struct hutch_net_ctx *ctx, struct hutch_err **err)
{
	_cleanup_free_ char *dir = rl_dir(ctx);
	int report[2] = {-1, -1}, go[2] = {-1, -1}, pp[2] = {-1, -1};
	if (pipe2(report, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0 || pipe2(pp, O_CLOEXEC) < 0) {
		int fds[] = {report[0], report[1], go[0], go[1], pp[0], pp[1]};
		for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
			if (fds[i] >= 0)
				close(fds[i]);
		return hutch_fail_sys(err, "pipe");
	}
	fflush(NULL);
	pid_t mid = fork();
	if (mid == 0) {
		/* in a session of its own, reparented at once: no test's or shell's
		 * cleanup of hutch's children takes the namespace along */
		setsid();
		int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
		}
		pid_t holder = fork();
		if (holder == 0) {
			close(report[0]);
			close(go[1]);
			close(pp[1]);
			holder_main(report[1], go[0]);
		}
		(void)!write(pp[1], &holder, sizeof(holder));
		_exit(holder < 0);
	}
	close(report[1]);
	close(go[0]);
	close(pp[1]);
	int r = -1;
	pid_t holder = 0;
	char c;
	if (mid < 0) {
		hutch_fail_sys(err, "fork the rootless network's holder");
		goto out;
	}
	waitpid(mid, NULL, 0);
	if (read(pp[0], &holder, sizeof(holder)) != sizeof(holder) || holder <= 0) {
		holder = 0;
		hutch_fail(err, 0, "cannot start the rootless network's holder process");
		goto out;
	}
	if (read(report[0], &c, 1) != 1 || c != 'u') {
		hutch_fail(err, 0, "the rootless network's holder could not make a user namespace");
		goto out;
	}
	struct id_mapping m;
	id_mapping_for_self(&m);
	if (id_mapping_apply(&m, holder, err) < 0) {
		hutch_err_wrap(err, "map the ids of the rootless network's user namespace");
		goto out;
	}
	if (write(go[1], "g", 1) != 1 || read(report[0], &c, 1) != 1 || c != 'n') {
		hutch_fail(err, 0,
			   "the rootless network's holder could not make its network namespace");
		goto out;
	}
	if (mkdir_p_at(AT_FDCWD, dir, 0700, err) < 0 || write_alive(ctx, "holder", holder, err) < 0)
		goto out;
	r = 0;
out:
	if (r < 0 && holder > 0)
		kill(holder, SIGKILL);
	close(report[0]);
	close(go[1]);
	close(pp[0]);
	return r;
}

int net_rootless_ensure(const struct hutch_net_ctx *ctx, struct net_rootless *rl,
			struct hutch_err **err)
{
	if (net_rootless_find(ctx, rl))
		return 0;
	/* a leftover of a crash (a pasta whose holder is gone) goes first */
	net_rootless_stop(ctx);
	if (start_holder(ctx, err) < 0)
		return -1;
	hutch_trace("net: holder started");
	if (!net_rootless_find(ctx, rl))
		return hutch_fail(err, 0, "the rootless network's holder is gone");
	return 0;
}

/* ---- pasta ---------------------------------------------------------------------- */

/* pasta's -t and -u: each published port (range) an option of its own,
 * "-t 8080" or "-t 127.0.0.1/8080-8081" (pasta's ADDR/PORTS: bound on that
 * address of the host only), each forwarded to the same port in the rootless
 * namespace; "-t none" / "-u none" without. Returned as "-t SPEC\n-u SPEC\n"
 * lines (also what pasta.ports holds: a change starts a new pasta). */
static char *ports_spec(const struct hutch_port_map *ports, size_t n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	for (int udp = 0; udp < 2; udp++) {
		bool any = false;
		for (size_t i = 0; i < n; i++) {
			if ((ports[i].proto == HUTCH_PORT_UDP) != udp)
				continue;
			static const uint8_t any6[16];
			char ip[INET6_ADDRSTRLEN] = "";
			if (ports[i].ipv6 && memcmp(ports[i].host_ip6, any6, 16))
				inet_ntop(AF_INET6, ports[i].host_ip6, ip, sizeof(ip));
			else if (ports[i].host_ip)
				hutch_ipv4_format(ports[i].host_ip, ip);
			fprintf(f, "%s %s%s", udp ? "-u" : "-t", ip, *ip ? "/" : "");
			if (ports[i].count > 1)
				fprintf(f, "%u-%u\n", ports[i].host_port,
					ports[i].host_port + ports[i].count - 1);
			else
				fprintf(f, "%u\n", ports[i].host_port);
			any = true;
		}
		if (!any)
			fprintf(f, "%s none\n", udp ? "-u" : "-t");
	}
	fclose(f);
	return buf;
}

static int start_pasta(const struct hutch_net_ctx *ctx, const struct net_rootless *rl,
		       const char *spec, struct hutch_err **err)
{
	if (access(PASTA, X_OK) < 0)
		return hutch_fail_sys(err,
				      "rootless networks need pasta (%s, Debian's passt package; "
				      "slirp4netns is not supported): install passt",
				      PASTA);
	_cleanup_free_ char *pidfile = rl_file(ctx, "pasta.pid");
	_cleanup_free_ char *logfile = rl_file(ctx, "pasta.log");
	unlink(pidfile);
	char holder[16];
	snprintf(holder, sizeof(holder), "%d", rl->holder);
	/* IPv6 as well when the host has it (pasta leaves it out by itself when
	 * the host has no IPv6 route): for networks made with --ipv6 */
	const char *fixed[] = {PASTA,	       "--config-net",
			       "--foreground", "--quiet",
			       "-a",	       TAP_ADDR,
			       "-n",	       "24",
			       "-g",	       TAP_GW,
			       "-a",	       NET_ROOTLESS_TAP6_ADDR,
			       "-g",	       NET_ROOTLESS_TAP6_GW,
			       "-I",	       TAP_NAME,
			       "--no-map-gw", /* no host loopback */
			       "-T",	       "none",
			       "-U",	       "none"};
	size_t nfixed = sizeof(fixed) / sizeof(fixed[0]), nlines = 0;
	for (const char *c = spec; *c; c++)
		nlines += *c == '\n';
	_cleanup_free_ char **argv = xcalloc(nfixed + 2 * nlines + 4, sizeof(char *));
	_cleanup_free_ char *words = xstrdup(spec);
	size_t argc = 0;
	for (size_t i = 0; i < nfixed; i++)
		argv[argc++] = (char *)fixed[i];
	/* "-t SPEC\n" lines: the option, then its value */
	for (char *save = NULL, *line = strtok_r(words, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		line[2] = '\0';
		argv[argc++] = line;
		argv[argc++] = line + 3;
	}
	argv[argc++] = "-P";
	argv[argc++] = pidfile;
	argv[argc++] = holder;
	argv[argc] = NULL;
	int pp[2];
	if (pipe2(pp, O_CLOEXEC) < 0)
		return hutch_fail_sys(err, "pipe");
	fflush(NULL);
	pid_t mid = fork();
	if (mid == 0) {
		setsid();
		pid_t p = fork();
		if (p == 0) {
			int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
			int out = open(logfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
			    dup2(out, 2) < 0)
				_exit(127);
			int keep[1] = {-1};
			close_fds_except(keep, 0);
			/* signals as a fresh process has them: pasta refuses to start
			 * with what a caller (a stack's supervisor) blocks or ignores
			 * ("Couldn't install signal handlers") */
			sigset_t none;
			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
			for (int sig = 1; sig < _NSIG; sig++)
				if (sig != SIGKILL && sig != SIGSTOP)
					signal(sig, SIG_DFL);
			execv(PASTA, argv);
			dprintf(2, "exec %s: %s\n", PASTA, strerror(errno));
			_exit(127);
		}
		(void)!write(pp[1], &p, sizeof(p));
		_exit(p < 0);
	}
	close(pp[1]);
	pid_t pid = -1;
	if (mid < 0 || read(pp[0], &pid, sizeof(pid)) != sizeof(pid) || pid <= 0) {
		close(pp[0]);
		if (mid > 0)
			waitpid(mid, NULL, 0);
		return hutch_fail_sys(err, "start %s", PASTA);
	}
	close(pp[0]);
	waitpid(mid, NULL, 0);
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	/* ready once it wrote its pid file (its tap configured, its ports bound) */
	for (int i = 0; i < 1000; i++) {
		if (access(pidfile, F_OK) == 0) {
			if (pfd >= 0)
				close(pfd);
			return write_alive(ctx, "pasta", pid, err);
		}
		struct pollfd p = {.fd = pfd, .events = POLLIN};
		if (pfd >= 0 && poll(&p, 1, 5) > 0)
			break; /* it exited */
		if (pfd < 0)
			usleep(5000);
	}
	if (pfd >= 0)
		close(pfd);
	stop_process(pid, true);
	_cleanup_free_ char *log = NULL;
	size_t len = 0;
	read_file_at(AT_FDCWD, logfile, &log, &len, NULL);
	while (len && (log[len - 1] == '\n' || log[len - 1] == ' '))
		log[--len] = '\0';
	_cleanup_free_ char *shown = log ? printable(log, len) : NULL;
	_cleanup_free_ char *flat = xstrdup(spec);
	for (char *c = flat; *c; c++)
		if (*c == '\n')
			*c = c[1] ? ',' : '\0';
	return hutch_fail(err, 0, "pasta did not start for the rootless network (ports: %s)%s%s",
			  flat, shown && *shown ? ": " : "", shown ? shown : "");
}

int net_rootless_pasta(const struct hutch_net_ctx *ctx, const struct net_rootless *rl,
		       const struct hutch_port_map *ports, size_t n, struct hutch_err **err)
{
	_cleanup_free_ char *tcp = ports_spec(ports, n);
	_cleanup_free_ char *spec_path = rl_file(ctx, "pasta.ports");
	_cleanup_free_ char *cur = NULL;
	size_t len;
	bool same = read_file_at(AT_FDCWD, spec_path, &cur, &len, NULL) == 0 && !strcmp(cur, tcp);
	if (rl->pasta && same)
		return 0;
	/* pasta cannot change what it forwards while it runs: a new one, with
	 * the new set (connections through the old one are cut) */
	if (rl->pasta)
		stop_process(rl->pasta, true);
	unlink(spec_path);
	if (start_pasta(ctx, rl, tcp, err) < 0)
		return -1;
	hutch_trace("net: pasta started");
	return write_file_replace(AT_FDCWD, spec_path, tcp, strlen(tcp), err);
}

/* ---- running in the namespace ------------------------------------------------- */

/* This process into the namespace (and its user namespace, unless in it). */
static int enter_ns(const struct net_rootless *rl, struct hutch_err **err)
{
	_cleanup_close_ int ufd = open(rl->userns, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int nfd = open(rl->netns, O_RDONLY | O_CLOEXEC);
	struct stat want, cur;
	if (ufd < 0 || nfd < 0)
		return hutch_fail_sys(err, "open the rootless network's namespaces");
	if (fstat(ufd, &want) == 0 && stat("/proc/self/ns/user", &cur) == 0 &&
	    (want.st_ino != cur.st_ino || want.st_dev != cur.st_dev) &&
	    setns(ufd, CLONE_NEWUSER) < 0)
		return hutch_fail_sys(err, "enter the rootless network's user namespace");
	if (setns(nfd, CLONE_NEWNET) < 0)
		return hutch_fail_sys(err, "enter the rootless network's namespace");
	return 0;
}

/* In the namespace's child: the sockets of addr ("IP:PORT" or "[IPv6]:PORT"),
 * IP_FREEBIND (the gateway's address comes and goes with its bridge). */
static int bind_pair(const char *addr, int fds[2], struct hutch_err **err)
{
	char ip[64];
	unsigned port;
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} sa = {.in = {.sin_family = AF_INET}};
	socklen_t len = sizeof(sa.in);
	if (sscanf(addr, "[%63[0-9a-fA-F:]]:%u", ip, &port) == 2 && port <= 65535 &&
	    inet_pton(AF_INET6, ip, &sa.in6.sin6_addr) == 1) {
		sa.in6.sin6_family = AF_INET6;
		sa.in6.sin6_port = htons((uint16_t)port);
		len = sizeof(sa.in6);
	} else if (sscanf(addr, "%63[0-9.]:%u", ip, &port) == 2 && port <= 65535 &&
		   inet_pton(AF_INET, ip, &sa.in.sin_addr) == 1) {
		sa.in.sin_port = htons((uint16_t)port);
	} else {
		return hutch_fail(
		    err, EINVAL, "DNS listen address \"%s\" is not IPv4:PORT or [IPv6]:PORT", addr);
	}
	bool v6 = sa.sa.sa_family == AF_INET6;
	int one = 1;
	for (int i = 0; i < 2; i++) {
		fds[i] = socket(sa.sa.sa_family, (i ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
		if (fds[i] < 0)
			return hutch_fail_sys(err, "DNS: a socket for %s", addr);
		setsockopt(fds[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (v6)
			setsockopt(fds[i], IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		setsockopt(fds[i], v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_FREEBIND : IP_FREEBIND,
			   &one, sizeof(one));
		if (bind(fds[i], &sa.sa, len) < 0 || (i && listen(fds[i], 128) < 0))
			return hutch_fail_sys(err,
					      "DNS: cannot listen on %s (%s) in the rootless "
					      "network namespace",
					      addr, i ? "TCP" : "UDP");
	}
	return 0;
}

int net_rootless_sockets(const struct net_rootless *rl, const char *const *addrs, size_t n,
			 int *fds, struct hutch_err **err)
{
	if (2 * n > 250)
		return hutch_fail(err, 0, "too many DNS listen addresses (%zu)", n);
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return hutch_fail_sys(err, "socketpair");
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		close(sp[0]);
		close(sp[1]);
		return hutch_fail_sys(err, "fork");
	}
	if (pid == 0) {
		/* bound here, passed back over the socket (SCM_RIGHTS): the
		 * caller serves them from outside the namespace */
		close(sp[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		struct hutch_err *e = NULL;
		int *mine = calloc(2 * n + 1, sizeof(int));
		int r = mine ? enter_ns(rl, &e) : -1;
		for (size_t i = 0; r == 0 && i < n; i++)
			r = bind_pair(addrs[i], &mine[2 * i], &e);
		char msg[1024] = "";
		if (r < 0)
			snprintf(msg, sizeof(msg), "%s%s%s", e && e->msg ? e->msg : "failed",
				 e && e->errno_ ? ": " : "",
				 e && e->errno_ ? strerror(e->errno_) : "");
		union {
			char buf[CMSG_SPACE(250 * sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = {.iov_base = msg, .iov_len = strlen(msg) + 1};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		if (r == 0 && n) {
			mh.msg_control = u.buf;
			mh.msg_controllen = CMSG_SPACE(2 * n * sizeof(int));
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(2 * n * sizeof(int));
			memcpy(CMSG_DATA(c), mine, 2 * n * sizeof(int));
		}
		_exit(sendmsg(sp[1], &mh, 0) < 0);
	}
	close(sp[1]);
	char msg[1024] = "";
	union {
		char buf[CMSG_SPACE(250 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = msg, .iov_len = sizeof(msg) - 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	ssize_t got;
	while ((got = recvmsg(sp[0], &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	close(sp[0]);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	size_t n_got = 0;
	for (struct cmsghdr *c = got > 0 ? CMSG_FIRSTHDR(&mh) : NULL; c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			n_got = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds, CMSG_DATA(c), n_got * sizeof(int));
		}
	if (got > 0 && !msg[0] && n_got == 2 * n)
		return 0;
	for (size_t i = 0; i < n_got; i++)
		close(fds[i]);
	return hutch_fail(err, 0, "%s",
			  got > 0 && msg[0] ? msg : "the helper in the rootless network died");
}

struct run_report {
	int r, errno_;
	char msg[2048];
};

int net_rootless_run(const struct net_rootless *rl, int (*fn)(void *arg, struct hutch_err **err),
		     void *arg, struct hutch_err **err)
{
	struct run_report *rep =
	    mmap(NULL, sizeof(*rep), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (rep == MAP_FAILED)
		return hutch_fail_sys(err, "mmap");
	*rep = (struct run_report){.r = -1};
	snprintf(rep->msg, sizeof(rep->msg), "the helper in the rootless network died");
	fflush(NULL);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		munmap(rep, sizeof(*rep));
		return hutch_fail_sys(err, "fork");
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		struct hutch_err *e = NULL;
		int r = -1;
		if (enter_ns(rl, &e) == 0) {
			/* the host's sockets (ports in use) are those of the caller's
			 * namespace, not of this one */
			net_host_pid = parent;
			r = fn(arg, &e);
		}
		rep->r = r;
		rep->errno_ = e ? e->errno_ : 0;
		snprintf(rep->msg, sizeof(rep->msg), "%s", e && e->msg ? e->msg : "");
		_exit(0);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	int r = rep->r;
	if (r < 0)
		hutch_fail(err, rep->errno_, "%s", rep->msg[0] ? rep->msg : "failed");
	munmap(rep, sizeof(*rep));
	return r;
}
