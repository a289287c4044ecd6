/* Pulling from an OCI distribution registry: reference -> manifest (an index
 * picks the platform) -> config -> layer blobs in the store's download dir,
 * reduced to an image plan that store_import_plan verifies and commits.
 *
 * libcurl is dlopen'ed on the first pull, never linked: linked, it brings 28 more
 * shared libraries (TLS, Kerberos, LDAP, ...) into every hutch process; measured
 * here, `hutch version` went from 1.8 ms to 10.3 ms and `hutch run --rm bb true`
 * from 14 ms to 27 ms (medians).
 * Redirects are followed here, not by curl, so that Authorization only ever goes
 * to the registry's own origin. Blob downloads are resumable: a <hex>.partial
 * survives a failed or killed pull and the next one continues it with a Range
 * request; each partial is flock'd by the pull downloading it, so two pulls of
 * images sharing a layer download it once. */
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>

#include "common/sha256.h"
#include "common/util.h"
#include "images/layer_internal.h"
#include "images/manifest_internal.h"
#include "images/registry_internal.h"
#include "images/source_internal.h"

#define MAX_REDIRECTS	  10
#define ERROR_BODY_MAX	  (64 << 10)
#define TOKEN_BODY_MAX	  (1 << 20)
#define AUTH_FILE_MAX	  (1 << 20)
#define DOWNLOAD_ATTEMPTS 5
#define USER_AGENT	  "hutch/0.1"

/* ---- libcurl, loaded on first use --------------------------------------------- */

static struct {
	bool loaded;
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *h, CURLoption opt, ...);
	CURLcode (*easy_perform)(CURL *h);
	CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
	void (*easy_cleanup)(CURL *h);
	void (*easy_reset)(CURL *h);
	const char *(*easy_strerror)(CURLcode c);
	struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
	void (*slist_free_all)(struct curl_slist *l);
} curl;

static int curl_load(struct hutch_err **err)
{
	if (curl.loaded)
		return 0;
	/* The OpenSSL build (libcurl4), else the GnuTLS one (libcurl3-gnutls). */
	static const char *const names[] = {"libcurl.so.4", "libcurl-gnutls.so.4"};
	void *lib = NULL;
	const char *why = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(names) && !lib; i++) {
		lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
		if (!lib && !why)
			why = dlerror();
	}
	if (!lib)
		return hutch_fail(err, 0,
				  "pulling needs libcurl (apt-get install libcurl4): cannot load "
				  "libcurl.so.4: %s",
				  why ? why : "not found");
	struct {
		void **fn;
		const char *name;
	} syms[] = {
	    {(void **)&curl.global_init, "curl_global_init"},
	    {(void **)&curl.easy_init, "curl_easy_init"},
	    {(void **)&curl.easy_setopt, "curl_easy_setopt"},
	    {(void **)&curl.easy_perform, "curl_easy_perform"},
	    {(void **)&curl.easy_getinfo, "curl_easy_getinfo"},
	    {(void **)&curl.easy_cleanup, "curl_easy_cleanup"},
	    {(void **)&curl.easy_reset, "curl_easy_reset"},
	    {(void **)&curl.easy_strerror, "curl_easy_strerror"},
	    {(void **)&curl.slist_append, "curl_slist_append"},
	    {(void **)&curl.slist_free_all, "curl_slist_free_all"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(syms); i++) {
		*syms[i].fn = dlsym(lib, syms[i].name);
		if (!*syms[i].fn) {
			dlclose(lib);
			return hutch_fail(err, 0,
					  "pulling needs libcurl (apt-get install libcurl4): the "
					  "loaded libcurl.so.4 has no %s",
					  syms[i].name);
		}
	}
	if (curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		dlclose(lib);
		return hutch_fail(err, 0, "libcurl failed to initialise");
	}
	curl.loaded = true;
	return 0;
}

/* Typed wrappers: curl_easy_setopt is variadic, so a wrong argument type would be
 * read as garbage; these make every call pass exactly long, pointer or curl_off_t. */
static void opt_long(CURL *h, CURLoption o, long v)
{
	curl.easy_setopt(h, o, v);
}
static void opt_ptr(CURL *h, CURLoption o, const void *v)
{
	curl.easy_setopt(h, o, v);
}

/* ---- progress ------------------------------------------------------------- */

struct progress {
	bool on, tty;
	int bar_width;	/* fitted to the terminal */
	char label[32]; /* "sha256:abcdef012345" */
	int64_t total, done;
	struct timespec last;
};

static double elapsed_since(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

static void progress_say(struct progress *pr, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void progress_say(struct progress *pr, const char *fmt, ...)
{
	if (!pr->on)
		return;
	va_list ap;
	va_start(ap, fmt);
	if (pr->tty)
		fputs("\r\033[K", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	fflush(stderr);
}

static void progress_start(struct progress *pr, const char *digest, int64_t total, int64_t done)
{
	snprintf(pr->label, sizeof(pr->label), "%.19s", digest);
	pr->total = total;
	pr->done = done;
	pr->last = (struct timespec){0};
	if (!pr->on)
		return;
	char sz[32], at[32];
	format_size(total, sz, sizeof(sz));
	if (pr->tty)
		return; /* the bar shows it */
	if (done > 0) {
		format_size(done, at, sizeof(at));
		progress_say(pr, "layer %s: resuming at %s of %s", pr->label, at, sz);
	} else {
		progress_say(pr, "layer %s: downloading %s", pr->label, sz);
	}
}

static void progress_bar(struct progress *pr, bool force)
{
	if (!pr->on || !pr->tty)
		return;
	if (!force && pr->last.tv_sec && elapsed_since(&pr->last) < 0.1)
		return;
	clock_gettime(CLOCK_MONOTONIC, &pr->last);
	enum { WIDTH_MAX = 30 };
	int width = pr->bar_width < 1 || pr->bar_width > WIDTH_MAX ? WIDTH_MAX : pr->bar_width;
	int fill = pr->total > 0 ? (int)(pr->done * width / pr->total) : 0;
	if (fill > width)
		fill = width;
	if (fill < 0)
		fill = 0;
	char bar[WIDTH_MAX + 1], a[32], b[32];
	memset(bar, '=', (size_t)fill);
	memset(bar + fill, ' ', (size_t)(width - fill));
	if (fill > 0 && fill < width)
		bar[fill - 1] = '>';
	bar[width] = '\0';
	format_size(pr->done, a, sizeof(a));
	format_size(pr->total, b, sizeof(b));
	fprintf(stderr, "\r\033[Klayer %s: [%s] %s / %s", pr->label, bar, a, b);
	fflush(stderr);
}

static void progress_done(struct progress *pr, const char *what)
{
	if (!pr->on)
		return;
	if (pr->tty) {
		pr->done = pr->total;
		progress_bar(pr, true);
		fprintf(stderr, " %s\n", what);
		fflush(stderr);
	} else {
		progress_say(pr, "layer %s: %s", pr->label, what);
	}
}

/* A URL for a message: without its query, which for a redirect to storage is
 * often a signature that works as a credential for a while. */
static char *url_shown(const char *url)
{
	return printable(url, strcspn(url, "?#"));
}

/* ---- one HTTP exchange ----------------------------------------------------------- */

/* Where a 2xx body goes when it is a blob: appended to a file and hashed, never
 * beyond the size the manifest declares. */
struct blob_sink {
	int fd;
	struct sha256_ctx sha;
	int64_t written; /* bytes in the file (incl. what a resume started from) */
	int64_t size;	 /* declared by the manifest */
	bool too_big, bad_range;
	int write_errno;
	struct progress *pr;
};

struct response {
	long status;
	bool body_started;
	char *www_auth; /* all WWW-Authenticate values, joined with ", " */
	char *content_type;
	char *docker_digest;
	bool has_range;
	int64_t range_start, range_end, range_total;
	/* a body kept in memory: manifests, configs, tokens, error messages */
	char *body;
	size_t len, max;
	bool overflow;
	struct blob_sink *sink; /* 2xx bodies go here instead, when set */
};

static void response_reset(struct response *r)
{
	free(r->www_auth);
	free(r->content_type);
	free(r->docker_digest);
	free(r->body);
	struct blob_sink *sink = r->sink;
	size_t max = r->max;
	memset(r, 0, sizeof(*r));
	r->sink = sink;
	r->max = max;
}

static void response_free(struct response *r)
{
	r->sink = NULL;
	response_reset(r);
}

static char *dup_header_value(const char *v, size_t len)
{
	return len > 8192 ? NULL : xasprintf("%.*s", (int)len, v);
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *userdata)
{
	struct response *r = userdata;
	size_t len = size * nmemb;
	if (http_status_line(line, len) > 0) {
		/* a new response (after a 100 Continue, say): forget the previous headers */
		free(r->www_auth);
		free(r->content_type);
		free(r->docker_digest);
		r->www_auth = r->content_type = r->docker_digest = NULL;
		r->has_range = false;
		return len;
	}
	const char *name, *value;
	size_t nl, vl;
	if (!http_header_split(line, len, &name, &nl, &value, &vl))
		return len;
#define IS(h) (nl == sizeof(h) - 1 && !strncasecmp(name, h, nl))
	if (IS("WWW-Authenticate")) {
		_cleanup_free_ char *v = dup_header_value(value, vl);
		if (v && (!r->www_auth || strlen(r->www_auth) < 16384)) {
			char *joined =
			    r->www_auth ? xasprintf("%s, %s", r->www_auth, v) : xstrdup(v);
			free(r->www_auth);
			r->www_auth = joined;
		}
	} else if (IS("Content-Type")) {
		free(r->content_type);
		r->content_type = dup_header_value(value, vl);
	} else if (IS("Docker-Content-Digest")) {
		free(r->docker_digest);
		r->docker_digest = dup_header_value(value, vl);
	} else if (IS("Content-Range")) {
		r->has_range =
		    http_content_range(value, vl, &r->range_start, &r->range_end, &r->range_total);
	}
#undef IS
	return len;
}

static size_t sink_write(struct blob_sink *s, struct response *r, const char *data, size_t len)
{
	if (!r->body_started) {
		r->body_started = true;
		if (r->status == 206) {
			if (!r->has_range || r->range_start != s->written ||
			    (r->range_total >= 0 && r->range_total != s->size)) {
				s->bad_range = true;
				return 0;
			}
		} else if (s->written > 0) {
			/* the server sent the whole blob, not the range: start over */
			if (ftruncate(s->fd, 0) < 0 || lseek(s->fd, 0, SEEK_SET) < 0) {
				s->write_errno = errno;
				return 0;
			}
			sha256_init(&s->sha);
			s->written = 0;
		}
	}
	if ((int64_t)len > s->size - s->written) {
		s->too_big = true;
		return 0;
	}
	if (write_all(s->fd, data, len) < 0) {
		s->write_errno = errno;
		return 0;
	}
	sha256_update(&s->sha, data, len);
	s->written += (int64_t)len;
	if (s->pr) {
		s->pr->done = s->written;
		progress_bar(s->pr, false);
	}
	return len;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct response *r = userdata;
	size_t len = size * nmemb;
	if (r->sink && r->status >= 200 && r->status < 300)
		return sink_write(r->sink, r, data, len);
	size_t max = r->status >= 200 && r->status < 300 ? r->max : ERROR_BODY_MAX;
	if (len > max - r->len) {
		if (r->status >= 200 && r->status < 300) {
			r->overflow = true;
			return 0;
		}
		len = max - r->len; /* an error body: keep its beginning */
		if (len == 0)
			return size * nmemb;
	}
	r->body = xrealloc(r->body, r->len + len + 1);
	memcpy(r->body + r->len, data, len);
	r->len += len;
	r->body[r->len] = '\0';
	return size * nmemb;
}

/* curl calls the header callback for every line, the body callback only after
 * the headers: the status is known by then. */
static size_t on_body_first(char *data, size_t size, size_t nmemb, void *userdata);

struct exchange {
	CURL *h;
	struct response *resp;
};

/* ---- the pull -------------------------------------------------------------------- */

enum auth_kind { AUTH_NONE, AUTH_BASIC, AUTH_BEARER };

struct token {
	char *scope;
	char *value;
};

struct puller {
	struct hutch_store *store;
	bool tls_verify;
	struct registry_ref ref;
	CURL *h;
	char errbuf[CURL_ERROR_SIZE];
	CURLcode last_rc;    /* of the last transport error */
	char *base;	     /* "https://host:port", chosen by the ping */
	char *basic;	     /* base64("user:pass") from an auth file, or NULL */
	char *cred_file;     /* where it came from */
	char *cred_searched; /* the files looked in, for messages */
	enum auth_kind auth;
	char *realm, *service; /* the Bearer challenge's */
	char *scope;	       /* the token scope in use */
	struct token *tokens;
	size_t n_tokens;
	struct progress pr;
};

/* Downloads handed out in plans stay flock'd (shared) until the import is done
 * (registry_release_downloads), so `image prune` in another process does not
 * remove them before the import, and a pull deleting what it downloaded does
 * not delete what another pull is about to import. */
static struct held_download {
	int fd;
	char *path;
} * held;
static size_t n_held;

static void hold_fd(int fd, const char *path)
{
	held = xrealloc(held, (n_held + 1) * sizeof(*held));
	held[n_held++] = (struct held_download){.fd = fd, .path = xstrdup(path)};
}

void registry_release_downloads(bool remove)
{
	for (size_t i = 0; i < n_held; i++) {
		/* Our own shared lock is on this very fd, so converting it to an
		 * exclusive one is refused only if another pull holds the file. */
		struct stat a, b;
		if (remove && flock(held[i].fd, LOCK_EX | LOCK_NB) == 0 &&
		    fstat(held[i].fd, &a) == 0 && stat(held[i].path, &b) == 0 &&
		    a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			unlink(held[i].path);
		close(held[i].fd);
		free(held[i].path);
	}
	free(held);
	held = NULL;
	n_held = 0;
}

static void puller_free(struct puller *p)
{
	if (p->h)
		curl.easy_cleanup(p->h);
	registry_ref_free(&p->ref);
	free(p->base);
	free(p->basic);
	free(p->cred_file);
	free(p->cred_searched);
	free(p->realm);
	free(p->service);
	free(p->scope);
	for (size_t i = 0; i < p->n_tokens; i++) {
		free(p->tokens[i].scope);
		free(p->tokens[i].value);
	}
	free(p->tokens);
}

/* "registry H, repository R, tag T" */
static char *what_of(struct puller *p)
{
	if (p->ref.tag)
		return xasprintf("registry %s, repository %s, tag %s", p->ref.domain, p->ref.repo,
				 p->ref.tag);
	return xasprintf("registry %s, repository %s, digest %s", p->ref.domain, p->ref.repo,
			 p->ref.digest);
}

struct request {
	const char *url;
	const char *accept;
	const char *authorization; /* the whole header value, or NULL */
	int64_t range_from;	   /* > 0: ask for the bytes from there */
};

/* One request, no redirects followed, no retries. 0 when an HTTP response came
 * (whatever its status); -1 on a transport error. */
static int perform(struct puller *p, const struct request *rq, struct response *resp,
		   struct hutch_err **err)
{
	response_reset(resp);
	CURL *h = p->h;
	curl.easy_reset(h);
	struct curl_slist *hdrs = NULL;
	_cleanup_free_ char *accept = rq->accept ? xasprintf("Accept: %s", rq->accept) : NULL;
	_cleanup_free_ char *auth =
	    rq->authorization ? xasprintf("Authorization: %s", rq->authorization) : NULL;
	_cleanup_free_ char *range =
	    rq->range_from > 0 ? xasprintf("Range: bytes=%lld-", (long long)rq->range_from) : NULL;
	if (accept)
		hdrs = curl.slist_append(hdrs, accept);
	if (auth)
		hdrs = curl.slist_append(hdrs, auth);
	if (range)
		hdrs = curl.slist_append(hdrs, range);
	opt_ptr(h, CURLOPT_URL, rq->url);
	opt_ptr(h, CURLOPT_PROTOCOLS_STR, "http,https");
	opt_long(h, CURLOPT_FOLLOWLOCATION, 0);
	opt_ptr(h, CURLOPT_USERAGENT, USER_AGENT);
	opt_ptr(h, CURLOPT_HTTPHEADER, hdrs);
	opt_ptr(h, CURLOPT_HEADERFUNCTION, (void *)on_header);
	opt_ptr(h, CURLOPT_HEADERDATA, resp);
	opt_ptr(h, CURLOPT_WRITEFUNCTION, (void *)on_body_first);
	opt_ptr(h, CURLOPT_WRITEDATA, &(struct exchange){h, resp});
	opt_ptr(h, CURLOPT_ERRORBUFFER, p->errbuf);
	opt_long(h, CURLOPT_CONNECTTIMEOUT, 30);
	/* a stalled transfer: under 1 KiB/s for 60 s */
	opt_long(h, CURLOPT_LOW_SPEED_LIMIT, 1024);
	opt_long(h, CURLOPT_LOW_SPEED_TIME, 60);
	opt_long(h, CURLOPT_BUFFERSIZE, 256 << 10);
	opt_long(h, CURLOPT_SSL_VERIFYPEER, p->tls_verify ? 1 : 0);
	opt_long(h, CURLOPT_SSL_VERIFYHOST, p->tls_verify ? 2 : 0);
	p->errbuf[0] = '\0';
	CURLcode rc = curl.easy_perform(h);
	curl.slist_free_all(hdrs);
	long status = 0;
	curl.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	resp->status = status;
	if (rc == CURLE_OK)
		return 0;
	if (rc == CURLE_WRITE_ERROR &&
	    (resp->overflow || (resp->sink && (resp->sink->too_big || resp->sink->bad_range ||
					       resp->sink->write_errno))))
		return 0; /* the caller says which limit was hit */
	p->last_rc = rc;
	_cleanup_free_ char *shown = url_shown(rq->url);
	return hutch_fail(err, 0, "%s: %s", shown,
			  p->errbuf[0] ? p->errbuf : curl.easy_strerror(rc));
}

static size_t on_body_first(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct exchange *x = userdata;
	if (!x->resp->status) {
		long status = 0;
		curl.easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
		x->resp->status = status;
	}
	return on_body(data, size, nmemb, x->resp);
}

static char *status_text(const struct response *r)
{
	_cleanup_free_ char *msg = r->body ? registry_error_text(r->body, r->len) : NULL;
	return msg ? xasprintf("HTTP %ld: %s", r->status, msg) : xasprintf("HTTP %ld", r->status);
}

/* ---- authentication -------------------------------------------------------------- */

static const char *token_cached(struct puller *p, const char *scope)
{
	for (size_t i = 0; i < p->n_tokens; i++)
		if (!strcmp(p->tokens[i].scope, scope))
			return p->tokens[i].value;
	return NULL;
}

static void token_forget(struct puller *p, const char *scope)
{
	for (size_t i = 0; i < p->n_tokens; i++)
		if (!strcmp(p->tokens[i].scope, scope)) {
			free(p->tokens[i].scope);
			free(p->tokens[i].value);
			p->tokens[i] = p->tokens[--p->n_tokens];
			return;
		}
}

static char *default_scope(struct puller *p)
{
	return xasprintf("repository:%s:pull", p->ref.repo);
}

static char *no_credentials_hint(struct puller *p)
{
	if (p->cred_file)
		return xasprintf("the credentials for %s in %s were refused", p->ref.domain,
				 p->cred_file);
	return xasprintf("no credentials for %s in %s (log in with podman/docker, or hutch "
			 "pull --authfile FILE)",
			 p->ref.domain, p->cred_searched ? p->cred_searched : "any auth file");
}

/* A token for scope from the realm, sending the Basic credentials if there are
 * any (the token flow is how a registry checks them). */
static int token_fetch(struct puller *p, const char *scope, struct hutch_err **err)
{
	struct url_origin realm;
	if (!p->realm || !url_origin_parse(p->realm, &realm)) {
		_cleanup_free_ char *shown =
		    p->realm ? printable(p->realm, strlen(p->realm)) : NULL;
		return hutch_fail(err, 0,
				  "the registry's Bearer challenge has no usable realm (%s)",
				  shown ? shown : "none");
	}
	/* Credentials in clear text only where the registry itself is spoken to so,
	 * or on this machine. */
	const char *auth = NULL;
	_cleanup_free_ char *basic = NULL;
	if (p->basic) {
		char hp[300];
		snprintf(hp, sizeof(hp), "%s", realm.host);
		bool clear_ok = !strcmp(realm.scheme, "https") || !strncmp(p->base, "http:", 5) ||
				registry_host_is_loopback(hp);
		if (!clear_ok)
			return hutch_fail(err, 0,
					  "refusing to send the credentials for %s over plain http "
					  "to the token server %s",
					  p->ref.domain, realm.host);
		basic = xasprintf("Basic %s", p->basic);
		auth = basic;
	}
	_cleanup_free_ char *svc = p->service ? url_query_escape(p->service) : NULL;
	_cleanup_free_ char *sc = url_query_escape(scope);
	bool has_query = strchr(p->realm, '?') != NULL;
	_cleanup_free_ char *url =
	    svc ? xasprintf("%s%cservice=%s&scope=%s", p->realm, has_query ? '&' : '?', svc, sc)
		: xasprintf("%s%cscope=%s", p->realm, has_query ? '&' : '?', sc);
	struct response resp = {.max = TOKEN_BODY_MAX};
	struct request rq = {.url = url, .authorization = auth};
	int r = perform(p, &rq, &resp, err);
	if (r < 0) {
		response_free(&resp);
		return hutch_err_wrap(err, "token server");
	}
	if (resp.status != 200) {
		_cleanup_free_ char *st = status_text(&resp);
		_cleanup_free_ char *hint =
		    resp.status == 401 || resp.status == 403 ? no_credentials_hint(p) : NULL;
		response_free(&resp);
		return hutch_fail(err, 0, "token server %s answered %s%s%s", realm.host, st,
				  hint ? ": " : "", hint ? hint : "");
	}
	if (resp.overflow) {
		response_free(&resp);
		return hutch_fail(err, 0, "token server %s: answer larger than 1 MiB", realm.host);
	}
	char *token;
	int expires;
	r = registry_token_parse(resp.body ? resp.body : "", resp.len, &token, &expires, err);
	response_free(&resp);
	if (r < 0)
		return -1;
	token_forget(p, scope);
	p->tokens = xrealloc(p->tokens, (p->n_tokens + 1) * sizeof(*p->tokens));
	p->tokens[p->n_tokens++] = (struct token){xstrdup(scope), token};
	return 0;
}

/* React to a challenge (a 401's WWW-Authenticate): switch to Basic or Bearer.
 * Returns 0 when a retry may succeed. */
static int auth_from_challenge(struct puller *p, const char *www_auth, bool refresh,
			       struct hutch_err **err)
{
	struct www_auth_challenge *ch = NULL;
	size_t n = www_auth ? www_auth_parse(www_auth, strlen(www_auth), &ch) : 0;
	const struct www_auth_challenge *bearer = www_auth_find(ch, n, "bearer");
	const struct www_auth_challenge *basic = www_auth_find(ch, n, "basic");
	int r = 0;
	if (bearer) {
		const char *realm = www_auth_param(bearer, "realm");
		const char *service = www_auth_param(bearer, "service");
		const char *scope = www_auth_param(bearer, "scope");
		free(p->realm);
		free(p->service);
		p->realm = realm ? xstrdup(realm) : NULL;
		p->service = service ? xstrdup(service) : NULL;
		p->auth = AUTH_BEARER;
		/* the scope the registry names for a request (a repository's: a
		 * challenge to /v2/ names none, and then a pull needs its own) */
		free(p->scope);
		p->scope = scope && !strncmp(scope, "repository:", 11) ? xstrdup(scope)
								       : default_scope(p);
		if (refresh || !token_cached(p, p->scope))
			r = token_fetch(p, p->scope, err);
	} else if (basic) {
		if (!p->basic) {
			_cleanup_free_ char *hint = no_credentials_hint(p);
			r = hutch_fail(err, 0, "the registry wants a user and password: %s", hint);
		} else if (p->auth == AUTH_BASIC) {
			_cleanup_free_ char *hint = no_credentials_hint(p);
			r = hutch_fail(err, 0, "%s", hint);
		}
		p->auth = AUTH_BASIC;
	} else {
		_cleanup_free_ char *shown =
		    www_auth ? printable(www_auth, strlen(www_auth)) : xstrdup("none");
		r = hutch_fail(err, 0,
			       "the registry asks for authentication hutch does not speak "
			       "(WWW-Authenticate: %s)",
			       shown);
	}
	www_auth_free(ch, n);
	return r;
}

static char *authorization_for(struct puller *p)
{
	if (p->auth == AUTH_BASIC && p->basic)
		return xasprintf("Basic %s", p->basic);
	if (p->auth == AUTH_BEARER && p->scope) {
		const char *t = token_cached(p, p->scope);
		if (t)
			return xasprintf("Bearer %s", t);
	}
	return NULL;
}

/* Credentials for the registry from the first auth file that has some. */
static int load_credentials(struct puller *p, const char *auth_file, struct hutch_err **err)
{
	char *files[4] = {0};
	size_t n = 0;
	bool explicit = false;
	const char *env = getenv("REGISTRY_AUTH_FILE");
	if (auth_file) {
		files[n++] = xstrdup(auth_file);
		explicit = true;
	} else if (env && *env) {
		files[n++] = xstrdup(env);
		explicit = true;
	} else {
		const char *run = getenv("XDG_RUNTIME_DIR"), *home = getenv("HOME");
		if (run && *run)
			files[n++] = xasprintf("%s/containers/auth.json", run);
		if (home && *home)
			files[n++] = xasprintf("%s/.docker/config.json", home);
	}
	int ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		char *prev = p->cred_searched;
		p->cred_searched = prev ? xasprintf("%s, %s", prev, files[i]) : xstrdup(files[i]);
		free(prev);
		/* at most 1 MiB, a regular file, text: the one reader of files users give */
		_cleanup_free_ char *text = NULL;
		size_t len = 0;
		if (read_file_at_most(AT_FDCWD, files[i], AUTH_FILE_MAX, READ_TEXT | READ_REGULAR,
				      &text, &len, err) < 0) {
			if (!explicit && err && *err && (*err)->errno_ == ENOENT) {
				hutch_err_free(err);
				continue;
			}
			ret = hutch_err_wrap(err, "auth file");
			break;
		}
		char *user_pass = NULL;
		int r = auth_json_lookup(text, len, p->ref.domain, p->ref.repo, &user_pass, err);
		if (r < 0) {
			ret = hutch_err_wrap(err, "auth file %s", files[i]);
			break;
		}
		if (r == 1) {
			p->basic = base64_encode(user_pass, strlen(user_pass));
			explicit_bzero(user_pass, strlen(user_pass));
			free(user_pass);
			p->cred_file = xstrdup(files[i]);
			ret = 1;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	return ret < 0 ? -1 : 0;
}

/* ---- requests to the registry ------------------------------------------------ */

/* GET base + path (or an absolute url), following redirects (at most
 * MAX_REDIRECTS, only to http(s); Authorization only to the registry's own
 * origin) and answering one authentication challenge. resp holds the final
 * response, whatever its status. */
static int registry_get(struct puller *p, const char *path, const char *accept, int64_t range_from,
			struct response *resp, struct hutch_err **err)
{
	_cleanup_free_ char *url = xasprintf("%s%s", p->base, path);
	bool reauthed = false;
	for (int hops = 0;;) {
		bool own = url_same_origin(url, p->base);
		_cleanup_free_ char *authz = own ? authorization_for(p) : NULL;
		struct request rq = {
		    .url = url, .accept = accept, .authorization = authz, .range_from = range_from};
		if (perform(p, &rq, resp, err) < 0)
			return -1;
		long st = resp->status;
		if (st == 301 || st == 302 || st == 303 || st == 307 || st == 308) {
			char *next = NULL;
			curl.easy_getinfo(p->h, CURLINFO_REDIRECT_URL, &next);
			struct url_origin o;
			if (!next || !url_origin_parse(next, &o)) {
				_cleanup_free_ char *shown =
				    next ? printable(next, strlen(next)) : xstrdup("none");
				_cleanup_free_ char *from = url_shown(url);
				return hutch_fail(
				    err, 0, "%s: HTTP %ld redirects to '%s', not an http(s) URL",
				    from, st, shown);
			}
			if (!strcmp(o.scheme, "http") && !strncmp(p->base, "https:", 6) &&
			    p->tls_verify && !registry_host_is_loopback(o.host)) {
				_cleanup_free_ char *from = url_shown(url);
				return hutch_fail(
				    err, 0,
				    "%s: refusing a redirect from https to plain http "
				    "(%s)",
				    from, o.host);
			}
			if (++hops > MAX_REDIRECTS)
				return hutch_fail(err, 0, "%s: more than %d redirects", path,
						  MAX_REDIRECTS);
			free(url);
			url = xstrdup(next);
			continue;
		}
		if (st == 401 && own && !reauthed) {
			reauthed = true;
			_cleanup_free_ char *challenge =
			    resp->www_auth ? xstrdup(resp->www_auth) : NULL;
			if (auth_from_challenge(p, challenge, true, err) < 0)
				return -1;
			continue;
		}
		return 0;
	}
}

static int http_error(struct puller *p, const char *doing, const struct response *resp,
		      struct hutch_err **err)
{
	_cleanup_free_ char *st = status_text(resp);
	_cleanup_free_ char *hint =
	    resp->status == 401 || resp->status == 403 ? no_credentials_hint(p) : NULL;
	return hutch_fail(err, 0, "%s: %s%s%s", doing, st, hint ? " (" : "", hint ? hint : "");
}

static bool tls_failure(CURLcode rc)
{
	return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CONNECT_ERROR ||
	       rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CACERT_BADFILE ||
	       rc == CURLE_SSL_ISSUER_ERROR;
}

/* Which of https and http the registry speaks, and what it wants for
 * authentication (GET /v2/). http only for this machine or --tls-verify=false. */
static int ping(struct puller *p, struct hutch_err **err)
{
	bool insecure_ok = registry_host_is_loopback(p->ref.api_host) || !p->tls_verify;
	static const char *const schemes[] = {"https", "http"};
	_cleanup_err_ struct hutch_err *https_err = NULL;
	CURLcode https_rc = CURLE_OK;
	for (size_t i = 0; i < (insecure_ok ? 2u : 1u); i++) {
		free(p->base);
		p->base = xasprintf("%s://%s", schemes[i], p->ref.api_host);
		_cleanup_free_ char *url = xasprintf("%s/v2/", p->base);
		struct response resp = {.max = ERROR_BODY_MAX};
		struct request rq = {.url = url};
		struct hutch_err *e = NULL;
		if (perform(p, &rq, &resp, &e) < 0) {
			response_free(&resp);
			if (i == 0) {
				https_err = e;
				https_rc = p->last_rc;
				continue;
			}
			if (p->last_rc == https_rc && https_rc == CURLE_COULDNT_CONNECT)
				hutch_fail(err, 0, "%s (https too)", e->msg);
			else
				hutch_fail(err, 0, "%s (and https: %s)", e->msg, https_err->msg);
			hutch_err_free(&e);
			return -1;
		}
		int r = 0;
		if (resp.status == 401) {
			r = auth_from_challenge(p, resp.www_auth, false, err);
		} else if ((resp.status < 200 || resp.status >= 300) && https_err) {
			/* a TLS server answering plain http: the https failure is the news */
			r = hutch_fail(err, 0, "%s%s (over http: HTTP %ld)", https_err->msg,
				       p->tls_verify && tls_failure(https_rc)
					   ? " (for a registry with a self-signed "
					     "certificate: --tls-verify=false)"
					   : "",
				       resp.status);
		} else if (resp.status < 200 || resp.status >= 300) {
			r = hutch_fail(err, 0,
				       "%s answered HTTP %ld: not a registry (the OCI distribution "
				       "API)",
				       url, resp.status);
		}
		response_free(&resp);
		return r;
	}
	hutch_fail(err, 0, "%s%s", https_err->msg,
		   p->tls_verify && tls_failure(https_rc)
		       ? " (for a registry with a self-signed certificate: "
			 "--tls-verify=false)"
		       : "");
	return -1;
}

/* ---- manifests and the config ------------------------------------------------ */


/* GET a manifest by tag or digest; its bytes, media type and computed digest.
 * A digest asked for (or the descriptor's size) must match. */
static int fetch_manifest(struct puller *p, const char *reference, const char *want_digest,
			  int64_t want_size, char **body, size_t *len, char **media_type,
			  char digest[72], struct hutch_err **err)
{
	_cleanup_free_ char *path = xasprintf("/v2/%s/manifests/%s", p->ref.repo, reference);
	struct response resp = {.max = MANIFEST_MAX_LEN};
	int r = registry_get(p, path, MANIFEST_ACCEPT, 0, &resp, err);
	if (r < 0)
		goto out;
	if (resp.status != 200) {
		_cleanup_free_ char *doing = xasprintf("fetching manifest %s", reference);
		r = http_error(p, doing, &resp, err);
		goto out;
	}
	if (resp.overflow) {
		r = hutch_fail(err, 0, "manifest %s is larger than %d MiB", reference,
			       MANIFEST_MAX_LEN >> 20);
		goto out;
	}
	sha256_digest(resp.body ? resp.body : "", resp.len, digest);
	if (want_digest && strcmp(digest, want_digest)) {
		r = hutch_fail(err, 0,
			       "the manifest's bytes hash to %s, not %s as asked: refusing a "
			       "corrupt or tampered manifest",
			       digest, want_digest);
		goto out;
	}
	if (!want_digest && resp.docker_digest && digest_is_valid(resp.docker_digest, false) &&
	    strcmp(resp.docker_digest, digest)) {
		r = hutch_fail(err, 0,
			       "manifest %s: the registry says its digest is %s but its bytes hash "
			       "to %s",
			       reference, resp.docker_digest, digest);
		goto out;
	}
	if (want_size >= 0 && (int64_t)resp.len != want_size) {
		r = hutch_fail(err, 0, "manifest %s is %zu bytes, not %lld as the index says",
			       reference, resp.len, (long long)want_size);
		goto out;
	}
	*body = resp.body ? steal_ptr(resp.body) : xstrdup("");
	*len = resp.len;
	/* the media type without parameters */
	*media_type = NULL;
	if (resp.content_type) {
		size_t l = strcspn(resp.content_type, ";");
		while (l > 0 &&
		       (resp.content_type[l - 1] == ' ' || resp.content_type[l - 1] == '\t'))
			l--;
		*media_type = xasprintf("%.*s", (int)l, resp.content_type);
	}
out:
	response_free(&resp);
	return r;
}

/* The manifest for the platform: the reference's own, or the one its index
 * chooses. top_digest is what the reference resolves to (an index's digest for a
 * multi-platform image: the one `pull NAME@DIGEST` gives again); digest the
 * chosen image manifest's. */
static int resolve_manifest(struct puller *p, const struct image_platform *want,
			    struct image_manifest *m, char **raw, size_t *raw_len,
			    char top_digest[72], char digest[72], bool *from_index,
			    struct hutch_err **err)
{
	*from_index = false;
	const char *reference = p->ref.digest[0] ? p->ref.digest : p->ref.tag;
	_cleanup_free_ char *body = NULL, *mt = NULL;
	size_t len = 0;
	if (fetch_manifest(p, reference, p->ref.digest[0] ? p->ref.digest : NULL, -1, &body, &len,
			   &mt, digest, err) < 0)
		return -1;
	memcpy(top_digest, digest, 72);
	/* A registry answers with a generic type sometimes: then the document decides. */
	const char *declared = mt && strncmp(mt, "application/vnd.", 16) == 0 ? mt : NULL;
	enum manifest_kind kind;
	if (manifest_detect(body, len, declared, &kind, err) < 0)
		return hutch_err_wrap(err, "manifest %s", reference);
	if (kind == MANIFEST_INDEX) {
		struct image_index ix = {0};
		if (image_index_parse(body, len, declared, &ix, err) < 0)
			return hutch_err_wrap(err, "index %s", reference);
		size_t chosen;
		if (image_index_select(&ix, want, &chosen, err) < 0) {
			image_index_free(&ix);
			return hutch_err_wrap(err, "index %s", reference);
		}
		char child[72];
		snprintf(child, sizeof(child), "%s", ix.manifests[chosen].digest);
		int64_t size = ix.manifests[chosen].size;
		_cleanup_free_ char *child_mt_declared =
		    ix.manifests[chosen].media_type ? xstrdup(ix.manifests[chosen].media_type)
						    : NULL;
		image_index_free(&ix);
		free(body);
		free(mt);
		body = mt = NULL;
		if (fetch_manifest(p, child, child, size, &body, &len, &mt, digest, err) < 0)
			return -1;
		declared = child_mt_declared
			       ? child_mt_declared
			       : (mt && !strncmp(mt, "application/vnd.", 16) ? mt : NULL);
		if (manifest_detect(body, len, declared, &kind, err) < 0)
			return hutch_err_wrap(err, "manifest %s", child);
		if (kind != MANIFEST_IMAGE)
			return hutch_fail(err, 0, "manifest %s: an index inside an index", child);
		if (image_manifest_parse(body, len, declared, m, err) < 0)
			return hutch_err_wrap(err, "manifest %s", child);
		*from_index = true;
	} else if (image_manifest_parse(body, len, declared, m, err) < 0) {
		return hutch_err_wrap(err, "manifest %s", reference);
	}
	*raw = steal_ptr(body);
	*raw_len = len;
	return 0;
}

static int fetch_config(struct puller *p, const struct descriptor *d, char **out, size_t *len,
			struct hutch_err **err)
{
	if (d->size > CONFIG_MAX_LEN)
		return hutch_fail(err, 0,
				  "the image config is %lld bytes, more than the %d MiB "
				  "allowed",
				  (long long)d->size, CONFIG_MAX_LEN >> 20);
	_cleanup_free_ char *path = xasprintf("/v2/%s/blobs/%s", p->ref.repo, d->digest);
	struct response resp = {.max = (size_t)d->size};
	int r = registry_get(p, path, NULL, 0, &resp, err);
	if (r < 0)
		goto out;
	if (resp.status != 200) {
		_cleanup_free_ char *doing = xasprintf("fetching the image config %s", d->digest);
		r = http_error(p, doing, &resp, err);
		goto out;
	}
	if (resp.overflow || (int64_t)resp.len != d->size) {
		r = hutch_fail(err, 0, "the image config %s: the registry sent %s bytes, not %lld",
			       d->digest,
			       resp.overflow ? "more than that many" : "a different number of",
			       (long long)d->size);
		goto out;
	}
	char digest[72];
	sha256_digest(resp.body ? resp.body : "", resp.len, digest);
	if (strcmp(digest, d->digest)) {
		r = hutch_fail(err, 0,
			       "the image config's bytes hash to %s, not %s as the manifest says: "
			       "refusing a corrupt or tampered config",
			       digest, d->digest);
		goto out;
	}
	/* checked as an imported one is: wrong types and NULs refused here */
	char(*diff_ids)[72] = NULL;
	size_t n_diff = 0;
	r = image_config_diff_ids(resp.body ? resp.body : "", resp.len, &diff_ids, &n_diff, err);
	free(diff_ids);
	if (r < 0)
		goto out;
	*out = resp.body ? steal_ptr(resp.body) : xstrdup("");
	*len = resp.len;
out:
	response_free(&resp);
	return r;
}

/* A single-platform image for another platform than wanted: said, not refused
 * (as podman does; the image may still run, with binfmt emulation say). */
static void warn_platform(struct puller *p, const struct image_platform *want, const char *config,
			  size_t len)
{
	if (!p->pr.on || len > INT_MAX)
		return;
	struct json_tokener *tok = json_tokener_new();
	struct json_object *cfg = json_tokener_parse_ex(tok, config, (int)len), *v;
	json_tokener_free(tok);
	const char *f[3] = {NULL, NULL, NULL};
	static const char *const keys[] = {"os", "architecture", "variant"};
	for (size_t i = 0; i < 3; i++)
		if (json_object_is_type(cfg, json_type_object) &&
		    json_object_object_get_ex(cfg, keys[i], &v) &&
		    json_object_is_type(v, json_type_string))
			f[i] = json_object_get_string(v);
	struct image_platform have;
	_cleanup_free_ char *spec =
	    f[0] && f[1] ? xasprintf("%s/%s%s%s", f[0], f[1], f[2] && *f[2] ? "/" : "",
				     f[2] && *f[2] ? f[2] : "")
			 : NULL;
	_cleanup_err_ struct hutch_err *e = NULL;
	if (spec && image_platform_parse(spec, &have, &e) == 0 &&
	    image_platform_score(want, &have) == 0) {
		char a[96], b[96];
		image_platform_format(&have, a, sizeof(a));
		image_platform_format(want, b, sizeof(b));
		progress_say(&p->pr, "warning: %s is an image for %s, not %s", p->ref.name, a, b);
	}
	json_object_put(cfg);
}

/* ---- layer blobs ------------------------------------------------------------------ */

/* Hash what fd holds (from its start) into c; its length in *len. */
static int hash_fd(int fd, struct sha256_ctx *c, int64_t *len, struct hutch_err **err)
{
	static char buf[1 << 20];
	*len = 0;
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof(buf), *len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return hutch_fail_sys(err, "read a downloaded blob");
		}
		if (n == 0)
			return 0;
		sha256_update(c, buf, (size_t)n);
		*len += n;
	}
}

/* Finish c; whether it is digest ("sha256:<hex>"). got (if non-NULL) gets the hex. */
static bool hex_matches(struct sha256_ctx *c, const char *digest, char *got)
{
	uint8_t d[SHA256_DIGEST_LEN];
	char hex[SHA256_HEX_LEN + 1];
	sha256_final(c, d);
	sha256_hex(d, hex);
	if (got)
		memcpy(got, hex, sizeof(hex));
	return !strcmp(hex, digest + 7);
}

/* A finished download: its size and digest still right? */
static int verify_finished(int fd, const struct manifest_layer *l, bool *ok, struct hutch_err **err)
{
	struct stat st;
	*ok = false;
	if (fstat(fd, &st) < 0)
		return hutch_fail_sys(err, "stat a downloaded blob");
	if (st.st_size != l->desc.size)
		return 0;
	struct sha256_ctx c;
	int64_t len;
	sha256_init(&c);
	if (hash_fd(fd, &c, &len, err) < 0)
		return -1;
	*ok = len == l->desc.size && hex_matches(&c, l->desc.digest, NULL);
	return 0;
}

static bool same_file(int fd, int dirfd, const char *name)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && fstatat(dirfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Download into the partial file pfd (flock'd by us), resuming from what it holds. */
static int download_into(struct puller *p, int pfd, const struct manifest_layer *l,
			 struct hutch_err **err)
{
	struct blob_sink sink = {.fd = pfd, .size = l->desc.size, .pr = &p->pr};
	sha256_init(&sink.sha);
	int64_t have;
	if (hash_fd(pfd, &sink.sha, &have, err) < 0)
		return -1;
	if (have > l->desc.size) {
		/* more than the blob can be: start over */
		if (ftruncate(pfd, 0) < 0)
			return hutch_fail_sys(err, "truncate a partial download");
		sha256_init(&sink.sha);
		have = 0;
	}
	sink.written = have;
	if (lseek(pfd, have, SEEK_SET) < 0)
		return hutch_fail_sys(err, "seek in a partial download");
	progress_start(&p->pr, l->desc.digest, l->desc.size, have);
	_cleanup_free_ char *path = xasprintf("/v2/%s/blobs/%s", p->ref.repo, l->desc.digest);
	for (int attempt = 0; have < l->desc.size; attempt++) {
		struct response resp = {.max = 0, .sink = &sink};
		int r = registry_get(p, path, NULL, sink.written, &resp, err);
		long st = resp.status;
		if (r == 0 && st != 200 && st != 206 && st != 416) {
			_cleanup_free_ char *doing = xasprintf("fetching layer %s", l->desc.digest);
			http_error(p, doing, &resp, err);
			r = -1;
		}
		response_free(&resp);
		if (r < 0)
			return -1;
		if (sink.too_big)
			return hutch_fail(err, 0,
					  "the registry sent more than the %lld bytes the manifest "
					  "declares",
					  (long long)l->desc.size);
		if (sink.write_errno) {
			errno = sink.write_errno;
			return hutch_fail_sys(err, "write %s/%s.partial",
					      store_download_dir(p->store), l->desc.digest + 7);
		}
		if ((st == 416 || sink.bad_range) && attempt == 0 && sink.written > 0) {
			/* the server cannot continue where we stopped: from the start */
			if (ftruncate(pfd, 0) < 0 || lseek(pfd, 0, SEEK_SET) < 0)
				return hutch_fail_sys(err, "truncate a partial download");
			sha256_init(&sink.sha);
			sink.written = 0;
			sink.bad_range = false;
			continue;
		}
		if (st == 416)
			return hutch_fail(err, 0,
					  "fetching layer %s: HTTP 416 (range not "
					  "satisfiable) for the whole blob",
					  l->desc.digest);
		if (sink.written != l->desc.size)
			return hutch_fail(
			    err, 0,
			    "the download stopped at %lld of %lld bytes (run the pull "
			    "again to resume)",
			    (long long)sink.written, (long long)l->desc.size);
		break;
	}
	char got[SHA256_HEX_LEN + 1];
	if (!hex_matches(&sink.sha, l->desc.digest, got))
		return hutch_fail(err, EBADMSG,
				  "the downloaded bytes hash to sha256:%s, not to the digest the "
				  "manifest gives: refusing a corrupt or tampered layer",
				  got);
	return 0;
}

/* The blob of layer l in the download dir: already there, downloaded by another
 * pull meanwhile, or downloaded now. *path is set; the file is held (flock
 * shared) until the process exits. */
static int fetch_layer(struct puller *p, const struct manifest_layer *l, char **path,
		       struct hutch_err **err)
{
	const char *dir = store_download_dir(p->store);
	_cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return hutch_fail_sys(err, "open %s", dir);
	const char *hex = l->desc.digest + 7; /* validated: 64 hex, safe as a name */
	_cleanup_free_ char *partial = xasprintf("%s.partial", hex);
	bool said_waiting = false;
	int waits = 0;
	for (int attempt = 0; attempt < DOWNLOAD_ATTEMPTS; attempt++) {
		int fd = openat(dirfd, hex, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			bool ok = false;
			if (flock(fd, LOCK_SH) < 0 || verify_finished(fd, l, &ok, err) < 0) {
				close(fd);
				return hutch_err_wrap(err, "%s/%s", dir, hex);
			}
			if (ok && same_file(fd, dirfd, hex)) {
				*path = xasprintf("%s/%s", dir, hex);
				hold_fd(fd, *path);
				progress_say(&p->pr, "layer %.19s: downloaded before",
					     l->desc.digest);
				return 0;
			}
			if (!ok && same_file(fd, dirfd, hex))
				unlinkat(dirfd, hex, 0); /* corrupt: download again */
			close(fd);
			continue;
		}
		if (errno != ENOENT)
			return hutch_fail_sys(err, "open %s/%s", dir, hex);
		_cleanup_close_ int pfd =
		    openat(dirfd, partial, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (pfd < 0)
			return hutch_fail_sys(err, "create %s/%s", dir, partial);
		if (flock(pfd, LOCK_EX | LOCK_NB) < 0) {
			if (!said_waiting) {
				progress_say(&p->pr,
					     "layer %.19s: waiting for another pull "
					     "downloading it",
					     l->desc.digest);
				said_waiting = true;
			}
			/* shared: granted once the other pull has finished (it keeps a
			 * shared lock on the finished file) or given up */
			if (flock(pfd, LOCK_SH) < 0)
				return hutch_fail_sys(err, "lock %s/%s", dir, partial);
			if (++waits > 100000)
				return hutch_fail(err, 0, "%s/%s: its lock keeps changing hands",
						  dir, partial);
			attempt--; /* another pull's progress is not a failed try */
			continue;
		}
		if (!same_file(pfd, dirfd, partial))
			continue; /* finished (renamed) while we opened it */
		if (faccessat(dirfd, hex, F_OK, 0) == 0) {
			/* finished just before we created this partial: ours, and useless */
			unlinkat(dirfd, partial, 0);
			continue;
		}
		if (download_into(p, pfd, l, err) < 0) {
			if (*err && (*err)->errno_ == EBADMSG) {
				(*err)->errno_ = 0;
				unlinkat(dirfd, partial, 0); /* never resume from bad bytes */
			}
			return -1;
		}
		if (renameat(dirfd, partial, dirfd, hex) < 0)
			return hutch_fail_sys(err, "rename %s/%s", dir, partial);
		/* keep it held while the plan points at it (EX -> SH: waiting pulls get it) */
		flock(pfd, LOCK_SH);
		*path = xasprintf("%s/%s", dir, hex);
		hold_fd(steal_fd(pfd), *path);
		progress_done(&p->pr, "done");
		return 0;
	}
	return hutch_fail(err, 0, "%s/%s: gave up after %d tries", dir, hex, DOWNLOAD_ATTEMPTS);
}

/* ---- the whole pull --------------------------------------------------------------- */

static int pull(struct puller *p, const struct pull_opts *o, struct image_plan *plan,
		struct hutch_err **err)
{
	struct image_platform host;
	const struct image_platform *want = o && o->platform ? o->platform : NULL;
	if (!want) {
		image_platform_host(&host);
		want = &host;
	}
	if (load_credentials(p, o ? o->auth_file : NULL, err) < 0)
		return -1;
	p->h = curl.easy_init();
	if (!p->h)
		return hutch_fail(err, ENOMEM, "libcurl: no handle");
	if (ping(p, err) < 0)
		return -1;

	struct image_manifest m = {0};
	char top_digest[72], manifest_digest[72];
	bool from_index;
	if (resolve_manifest(p, want, &m, &plan->manifest, &plan->manifest_len, top_digest,
			     manifest_digest, &from_index, err) < 0)
		return -1;
	/* "what it came from": the name and the digest it resolved to */
	plan->source = p->ref.tag ? xasprintf("%s@%s", p->ref.name, top_digest)
				  : xstrdup(p->ref.name);
	int r = -1;
	char(*chains)[65] = NULL;
	size_t n_chains = 0;
	if (fetch_config(p, &m.config, &plan->config, &plan->config_len, err) < 0)
		goto out;
	snprintf(plan->config_digest, sizeof(plan->config_digest), "%s", m.config.digest);
	if (!from_index)
		warn_platform(p, want, plan->config, plan->config_len);
	if (store_config_chains(plan->config, plan->config_len, &chains, &n_chains, err) < 0) {
		hutch_err_wrap(err, "the image config %s", m.config.digest);
		goto out;
	}
	if (n_chains != m.n_layers) {
		hutch_fail(err, 0, "the manifest lists %zu layers but the image config %zu",
			   m.n_layers, n_chains);
		goto out;
	}
	plan->layers = xcalloc(m.n_layers ? m.n_layers : 1, sizeof(*plan->layers));
	plan->n_layers = m.n_layers;
	for (size_t i = 0; i < m.n_layers; i++) {
		const struct manifest_layer *l = &m.layers[i];
		struct plan_layer *pl = &plan->layers[i];
		snprintf(pl->digest, sizeof(pl->digest), "%s", l->desc.digest);
		pl->media_type = l->desc.media_type ? xstrdup(l->desc.media_type) : NULL;
		pl->size = l->desc.size;
		pl->offset = 0;
		pl->length = -1;
		if (store_has_chain(p->store, chains[i])) {
			snprintf(p->pr.label, sizeof(p->pr.label), "%.19s", l->desc.digest);
			progress_say(&p->pr, "layer %s: already stored", p->pr.label);
			continue;
		}
		for (size_t j = 0; j < i; j++)
			if (plan->layers[j].path && !strcmp(plan->layers[j].digest, pl->digest))
				pl->path = xstrdup(plan->layers[j].path);
		if (!pl->path && fetch_layer(p, l, &pl->path, err) < 0) {
			hutch_err_wrap(err, "layer %zu (%s)", i + 1, l->desc.digest);
			goto out;
		}
	}
	r = 0;
out:
	free(chains);
	image_manifest_free(&m);
	return r;
}

int registry_pull_plan(struct hutch_store *s, const char *ref, const struct pull_opts *o,
		       struct image_plan **out, struct hutch_err **err)
{
	struct puller p = {.store = s, .tls_verify = o ? o->tls_verify : true};
	p.pr.on = o && o->progress;
	p.pr.tty = p.pr.on && isatty(STDERR_FILENO);
	struct winsize ws;
	/* "layer sha256:<12>: [BAR] 123.4 MiB / 123.4 MiB done" on one line */
	int cols =
	    p.pr.tty && ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 80;
	p.pr.bar_width = cols - 1 - 57 < 30 ? cols - 1 - 57 : 30;
	if (p.pr.bar_width < 5)
		p.pr.bar_width = 5;
	if (registry_ref_parse(ref, &p.ref, err) < 0)
		return -1;
	if (curl_load(err) < 0) {
		registry_ref_free(&p.ref);
		return -1;
	}
	struct image_plan *plan = image_plan_new();
	int r = pull(&p, o, plan, err);
	if (r < 0) {
		_cleanup_free_ char *what = what_of(&p);
		hutch_err_wrap(err, "pull %s (%s)", p.ref.name, what);
		image_plan_free(plan);
	} else {
		plan->tags = xcalloc(1, sizeof(char *));
		plan->tags[0] = xstrdup(p.ref.name);
		plan->n_tags = 1;
		*out = plan;
	}
	puller_free(&p);
	return r;
}
