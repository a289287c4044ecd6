/* /etc/hostname, /etc/hosts and /etc/resolv.conf for a container, as Docker makes
 * them, bind-mounted over the image's files (mounts.c), so the image never
 * changes and a read-only root still gets them.
 *
 * hosts: localhost lines for 127.0.0.1 and ::1, the spec's extra hosts, and the
 * container's hostname (on the loopback addresses unless an extra host names it:
 * net/ adds the container's own address that way). With the host's network, the
 * host's /etc/hosts instead of the localhost lines.
 * resolv.conf: the spec's servers, search domains and options; what the spec
 * leaves empty comes from the host's resolv.conf, whose loopback nameservers are
 * dropped unless the container shares the host's network (they would be the
 * container's own loopback). Docker's fallback to public servers when none are
 * left is not copied: nothing may leave the machine unasked.
 *
 * Where they live: Docker writes them into the container's directory on disk.
 * Here that is three inode creations (and three unlinks) per run on the data
 * root, over a millisecond on a slow disk; instead the container's process
 * writes them into a small tmpfs of its own (gone with its mount namespace),
 * and an image that lacks them gets its mount points from a shared lowest
 * overlay layer of empty files, not from files created in its rw layer. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common/util.h"
#include "runtime/runtime_internal.h"

const char *const etc_file_names[ETC_FILES] = {"hostname", "hosts", "resolv.conf"};
const char *const etc_file_paths[ETC_FILES] = {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"};

bool etc_file_wanted(const struct hutch_spec *spec, enum etc_file f)
{
	for (size_t i = 0; i < spec->n_mounts; i++) {
		const struct hutch_mount *m = &spec->mounts[i];
		if (path_same(m->destination, etc_file_paths[f]))
			return false;
		/* A file made in a bound host directory would change the host's. */
		if (!strcmp(m->type, "bind") && path_below(etc_file_paths[f], m->destination))
			return false;
	}
	return true;
}

char *etc_hostname_content(const struct hutch_spec *spec)
{
	return xasprintf("%s\n", spec->hostname ? spec->hostname : "");
}

/* ---- hosts ------------------------------------------------------------------ */

/* Does some line of a hosts file give name (case-insensitively)? */
static bool hosts_text_names(const char *text, const char *name)
{
	if (!text)
		return false;
	for (const char *line = text; *line;) {
		const char *end = strchrnul(line, '\n');
		const char *hash = memchr(line, '#', (size_t)(end - line));
		const char *stop = hash ? hash : end;
		/* the first word is the address; the others are names */
		const char *p = line;
		for (int word = 0; p < stop; word++) {
			while (p < stop && (*p == ' ' || *p == '\t' || *p == '\r'))
				p++;
			const char *w = p;
			while (p < stop && *p != ' ' && *p != '\t' && *p != '\r')
				p++;
			size_t wl = (size_t)(p - w);
			if (word > 0 && wl && wl == strlen(name) && !strncasecmp(w, name, wl))
				return true;
		}
		line = *end ? end + 1 : end;
	}
	return false;
}

static const char default_hosts[] = "127.0.0.1\tlocalhost\n"
				    "::1\tlocalhost ip6-localhost ip6-loopback\n"
				    "fe00::0\tip6-localnet\n"
				    "ff00::0\tip6-mcastprefix\n"
				    "ff02::1\tip6-allnodes\n"
				    "ff02::2\tip6-allrouters\n";

char *etc_hosts_content(const struct hutch_spec *spec, const char *host_hosts)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return xstrdup(default_hosts);
	bool host_net = !spec_has_ns(spec, HUTCH_NS_NETWORK);
	if (host_net && host_hosts) {
		size_t n = strlen(host_hosts);
		fputs(host_hosts, f);
		if (n && host_hosts[n - 1] != '\n')
			fputc('\n', f);
	} else {
		fputs(default_hosts, f);
	}
	bool named = false;
	for (size_t i = 0; i < spec->n_extra_hosts; i++) {
		const struct hutch_host_entry *h = &spec->extra_hosts[i];
		fprintf(f, "%s\t%s\n", h->address, h->hostname);
		named |= spec->hostname && !strcasecmp(h->hostname, spec->hostname);
	}
	if (spec->hostname && *spec->hostname && !named &&
	    !(host_net && hosts_text_names(host_hosts, spec->hostname)))
		fprintf(f, "127.0.0.1\t%s\n::1\t%s\n", spec->hostname, spec->hostname);
	fclose(f);
	return buf;
}

/* ---- resolv.conf ------------------------------------------------------------- */

struct strv {
	char **v;
	size_t n;
};

static void strv_add(struct strv *s, const char *w, size_t len)
{
	s->v = xrealloc(s->v, (s->n + 1) * sizeof(char *));
	s->v[s->n] = xcalloc(len + 1, 1);
	memcpy(s->v[s->n++], w, len);
}

static void strv_clear(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	*s = (struct strv){0};
}

struct resolv {
	struct strv servers, search, options;
};

/* Enough for any real file; a hostile one cannot make us build huge lists. */
#define RESOLV_MAX_WORDS 64

/* The keywords that matter to a container; other lines (sortlist, comments) go. */
static void resolv_parse(const char *text, struct resolv *r)
{
	*r = (struct resolv){0};
	if (!text)
		return;
	for (const char *line = text; *line;) {
		const char *end = strchrnul(line, '\n');
		const char *words[RESOLV_MAX_WORDS + 1];
		size_t lens[RESOLV_MAX_WORDS + 1], n = 0;
		for (const char *p = line; p < end && n <= RESOLV_MAX_WORDS;) {
			while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
				p++;
			if (p == end || *p == '#' || *p == ';')
				break;
			words[n] = p;
			while (p < end && *p != ' ' && *p != '\t' && *p != '\r')
				p++;
			lens[n] = (size_t)(p - words[n]);
			n++;
		}
		line = *end ? end + 1 : end;
		if (n < 2)
			continue;
		if (lens[0] == 10 && !strncmp(words[0], "nameserver", 10)) {
			if (lens[1] <= 64 && r->servers.n < RESOLV_MAX_WORDS) {
				char addr[65];
				memcpy(addr, words[1], lens[1]);
				addr[lens[1]] = '\0';
				if (hutch_ip_valid(addr))
					strv_add(&r->servers, addr, lens[1]);
			}
		} else if ((lens[0] == 6 && !strncmp(words[0], "search", 6)) ||
			   (lens[0] == 6 && !strncmp(words[0], "domain", 6))) {
			/* the last search or domain line wins, as in glibc */
			strv_clear(&r->search);
			size_t last = words[0][0] == 'd' ? 2 : n;
			for (size_t i = 1; i < last && i < n; i++)
				strv_add(&r->search, words[i], lens[i]);
		} else if (lens[0] == 7 && !strncmp(words[0], "options", 7)) {
			for (size_t i = 1; i < n && r->options.n < RESOLV_MAX_WORDS; i++)
				strv_add(&r->options, words[i], lens[i]);
		}
	}
}

static void resolv_free(struct resolv *r)
{
	strv_clear(&r->servers);
	strv_clear(&r->search);
	strv_clear(&r->options);
}

static bool ip_is_loopback(const char *s)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, s, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	char addr[65];
	snprintf(addr, sizeof(addr), "%s", s);
	addr[strcspn(addr, "%")] = '\0';
	if (inet_pton(AF_INET6, addr, &a6) != 1)
		return false;
	return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
}

char *etc_resolv_conf_content(const struct hutch_spec *spec, const char *host_resolv)
{
	bool host_net = !spec_has_ns(spec, HUTCH_NS_NETWORK);
	bool overridden = spec->dns.n_servers || spec->dns.n_search || spec->dns.n_options;
	if (host_net && !overridden) {
		const char *t = host_resolv ? host_resolv : "";
		size_t n = strlen(t);
		return n && t[n - 1] != '\n' ? xasprintf("%s\n", t) : xstrdup(t);
	}
	struct resolv host;
	resolv_parse(host_resolv, &host);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f) {
		resolv_free(&host);
		return xstrdup("");
	}
	if (spec->dns.n_servers) {
		for (size_t i = 0; i < spec->dns.n_servers; i++)
			fprintf(f, "nameserver %s\n", spec->dns.servers[i]);
	} else {
		for (size_t i = 0; i < host.servers.n; i++)
			if (host_net || !ip_is_loopback(host.servers.v[i]))
				fprintf(f, "nameserver %s\n", host.servers.v[i]);
	}
	char *const *search = spec->dns.n_search ? spec->dns.search : host.search.v;
	size_t n_search = spec->dns.n_search ? spec->dns.n_search : host.search.n;
	bool started = false;
	for (size_t i = 0; i < n_search; i++) {
		if (!strcmp(search[i], "."))
			continue; /* --dns-search . : no search domains */
		fprintf(f, "%s%s", started ? " " : "search ", search[i]);
		started = true;
	}
	if (started)
		fputc('\n', f);
	char *const *opts = spec->dns.n_options ? spec->dns.options : host.options.v;
	size_t n_opts = spec->dns.n_options ? spec->dns.n_options : host.options.n;
	for (size_t i = 0; i < n_opts; i++)
		fprintf(f, "%s%s%s", i ? " " : "options ", opts[i], i + 1 == n_opts ? "\n" : "");
	fclose(f);
	resolv_free(&host);
	return buf;
}

/* ---- preparing --------------------------------------------------------------- */

/* With systemd-resolved the host's file names only its stub on 127.0.0.53; the
 * servers behind it are in /run/systemd/resolve/resolv.conf (as Docker does). */
static char *host_resolv_for(const struct hutch_spec *spec)
{
	char *text = NULL;
	if (read_file_at(AT_FDCWD, "/etc/resolv.conf", &text, NULL, NULL) < 0)
		return NULL;
	if (!spec_has_ns(spec, HUTCH_NS_NETWORK) || spec->dns.n_servers ||
	    !strstr(text, "127.0.0.53"))
		return text;
	struct resolv r;
	resolv_parse(text, &r);
	bool only_stub = r.servers.n > 0;
	for (size_t i = 0; i < r.servers.n; i++)
		only_stub &= ip_is_loopback(r.servers.v[i]);
	resolv_free(&r);
	char *upstream = NULL;
	if (only_stub && read_file_at(AT_FDCWD, "/run/systemd/resolve/resolv.conf", &upstream, NULL,
				      NULL) == 0) {
		free(text);
		return upstream;
	}
	return text;
}

/* RUN/cache/etc-base/etc/{hostname,hosts,resolv.conf}, empty, and the empty
 * RUN/cache/etc-stage: made once (staged and renamed: racing starts agree). */
static int ensure_cache_dirs(const char *cache, struct hutch_err **err)
{
	_cleanup_close_ int dfd = open(cache, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return hutch_fail_sys(err, "open %s", cache);
	if (faccessat(dfd, "etc-base/etc/resolv.conf", F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
	    faccessat(dfd, "etc-stage", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (mkdirat(dfd, "etc-stage", 0755) < 0 && errno != EEXIST)
		return hutch_fail_sys(err, "create %s/etc-stage", cache);
	if (faccessat(dfd, "etc-base/etc/resolv.conf", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	_cleanup_free_ char *tmpl = xasprintf("%s/etc-base.tmp.XXXXXX", cache);
	if (!mkdtemp(tmpl))
		return hutch_fail_sys(err, "create %s", tmpl);
	_cleanup_free_ char *etc = xasprintf("%s/etc", tmpl);
	int r = mkdir(etc, 0755);
	for (int f = 0; r == 0 && f < ETC_FILES; f++) {
		_cleanup_free_ char *p = xasprintf("%s/%s", etc, etc_file_names[f]);
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		r = fd < 0 ? -1 : fchmod(fd, 0644);
		if (fd >= 0)
			close(fd);
	}
	_cleanup_free_ char *final = xasprintf("%s/etc-base", cache);
	if (r == 0 && rename(tmpl, final) == 0)
		return 0;
	int e = errno;
	remove_tree_at(AT_FDCWD, tmpl, NULL);
	/* another start made it first */
	if (r == 0 && (e == EEXIST || e == ENOTEMPTY))
		return 0;
	return hutch_fail(err, e, "create %s", final);
}

int etc_files_prepare(const struct hutch_runtime *rt, const struct hutch_spec *spec,
		      struct etc_files *out, struct hutch_err **err)
{
	*out = (struct etc_files){0};
	bool any = false;
	for (int f = 0; f < ETC_FILES; f++) {
		if (!etc_file_wanted(spec, (enum etc_file)f))
			continue;
		any = true;
		_cleanup_free_ char *host = NULL;
		if (f == ETC_HOSTNAME) {
			out->content[f] = etc_hostname_content(spec);
		} else if (f == ETC_HOSTS) {
			if (!spec_has_ns(spec, HUTCH_NS_NETWORK))
				read_file_at(AT_FDCWD, "/etc/hosts", &host, NULL, NULL);
			out->content[f] = etc_hosts_content(spec, host);
		} else {
			host = host_resolv_for(spec);
			out->content[f] = etc_resolv_conf_content(spec, host);
		}
	}
	if (!any)
		return 0;
	_cleanup_free_ char *cache = xasprintf("%s/cache", rt->run_root);
	if (ensure_cache_dirs(cache, err) < 0) {
		etc_files_free(out);
		return hutch_err_wrap(err, "prepare the container's /etc files");
	}
	out->base_layer = xasprintf("%s/etc-base", cache);
	out->stage_dir = xasprintf("%s/etc-stage", cache);
	return 0;
}

void etc_files_free(struct etc_files *e)
{
	for (int f = 0; f < ETC_FILES; f++)
		free(e->content[f]);
	free(e->base_layer);
	free(e->stage_dir);
	*e = (struct etc_files){0};
}
