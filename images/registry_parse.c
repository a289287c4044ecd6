/* The registry client's readers of foreign text: image references, WWW-Authenticate
 * challenges, auth.json, HTTP response headers, error and token bodies. No I/O
 * here, so each is unit-tested and fuzzed on its own (tests/fuzz/fuzz_www_authenticate.c,
 * fuzz_registry_response.c, fuzz_auth_json.c). */
#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "images/layer_internal.h"
#include "images/registry_internal.h"

/* ---- image references ----------------------------------------------------- */

#define REF_NAME_MAX 255
#define TAG_MAX	     128

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
static bool is_alnum(char c)
{
	return isalnum((unsigned char)c) != 0;
}

/* One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static bool valid_path_component(const char *s, size_t len)
{
	if (len == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
		return false;
	for (size_t i = 1; i < len; i++) {
		char c = s[i];
		if (is_lower_alnum(c))
			continue;
		if (c == '.') {
			if (!is_lower_alnum(s[i + 1]))
				return false;
		} else if (c == '_') {
			if (s[i + 1] == '_')
				i++;
			if (!is_lower_alnum(s[i + 1]))
				return false;
		} else if (c == '-') {
			while (s[i + 1] == '-')
				i++;
			if (!is_lower_alnum(s[i + 1]))
				return false;
		} else {
			return false;
		}
	}
	return true;
}

static bool valid_repo_path(const char *s)
{
	for (;;) {
		const char *slash = strchr(s, '/');
		size_t len = slash ? (size_t)(slash - s) : strlen(s);
		if (!valid_path_component(s, len))
			return false;
		if (!slash)
			return true;
		s = slash + 1;
	}
}

/* [\w][\w.-]{0,127} */
static bool valid_tag(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > TAG_MAX || !(is_alnum(s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!(is_alnum(s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '-'))
			return false;
	return true;
}

static bool valid_port(const char *s, size_t len)
{
	if (len == 0 || len > 5)
		return false;
	unsigned v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

/* host[:port]: DNS labels separated by dots, or an IPv6 literal in brackets. */
static bool valid_domain(const char *s)
{
	size_t len = strlen(s);
	const char *host_end;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close == s + 1)
			return false;
		for (const char *p = s + 1; p < close; p++)
			if (!(isxdigit((unsigned char)*p) || *p == ':' || *p == '.'))
				return false;
		host_end = close + 1;
	} else {
		host_end = strchr(s, ':');
		if (!host_end)
			host_end = s + len;
		const char *label = s;
		for (const char *p = s;; p++) {
			if (p == host_end || *p == '.') {
				size_t ll = (size_t)(p - label);
				if (ll == 0 || ll > 63 || label[0] == '-' || label[ll - 1] == '-')
					return false;
				if (p == host_end)
					break;
				label = p + 1;
			} else if (!(is_alnum(*p) || *p == '-')) {
				return false;
			}
		}
	}
	if (*host_end == '\0')
		return true;
	return *host_end == ':' && valid_port(host_end + 1, strlen(host_end + 1));
}

void registry_ref_free(struct registry_ref *r)
{
	if (!r)
		return;
	free(r->domain);
	free(r->api_host);
	free(r->repo);
	free(r->tag);
	free(r->name);
	memset(r, 0, sizeof(*r));
}

int registry_ref_parse(const char *s, struct registry_ref *out, struct hutch_err **err)
{
	memset(out, 0, sizeof(*out));
	_cleanup_free_ char *shown = printable(s, strlen(s));
	size_t len = strlen(s);
	if (len == 0 || len > REF_NAME_MAX + 1 + TAG_MAX + 72)
		return hutch_fail(err, 0, "invalid image reference '%s': empty or too long", shown);
	_cleanup_free_ char *copy = xstrdup(s);
	char *at = strchr(copy, '@');
	if (at) {
		*at = '\0';
		if (!digest_is_valid(at + 1, false))
			return hutch_fail(err, 0,
					  "invalid image reference '%s': the digest must be "
					  "sha256: and 64 lowercase hex digits",
					  shown);
		snprintf(out->digest, sizeof(out->digest), "%s", at + 1);
	}
	/* A tag is a ':' after the last '/' ("host:5000/app" has none). */
	char *last_slash = strrchr(copy, '/');
	char *colon = strchr(last_slash ? last_slash : copy, ':');
	if (colon) {
		*colon = '\0';
		if (!valid_tag(colon + 1)) {
			hutch_fail(err, 0,
				   "invalid image reference '%s': bad tag (letters, digits, '_', "
				   "'.' and '-', at most 128, not starting with '.' or '-')",
				   shown);
			goto fail;
		}
		out->tag = xstrdup(colon + 1);
	} else if (!out->digest[0]) {
		out->tag = xstrdup("latest");
	}
	char *first_slash = strchr(copy, '/');
	const char *path = copy;
	bool has_domain = false;
	if (first_slash) {
		*first_slash = '\0';
		bool upper = false;
		for (const char *p = copy; *p; p++)
			upper |= (*p >= 'A' && *p <= 'Z');
		has_domain = strpbrk(copy, ".:") || !strcmp(copy, "localhost") || upper;
		if (!has_domain)
			*first_slash = '/';
		else
			path = first_slash + 1;
	}
	if (has_domain) {
		if (!valid_domain(copy)) {
			_cleanup_free_ char *host = printable(copy, strlen(copy));
			hutch_fail(err, 0, "invalid image reference '%s': bad registry host '%s'",
				   shown, host);
			goto fail;
		}
		/* kept as written: an upper-case first component is what makes it a
		 * host, so lowercasing it would turn it into a Docker Hub namespace */
		out->domain = xstrdup(copy);
		if (!strcasecmp(out->domain, "index.docker.io") ||
		    !strcasecmp(out->domain, "registry-1.docker.io") ||
		    !strcasecmp(out->domain, "docker.io")) {
			free(out->domain);
			out->domain = xstrdup("docker.io");
		}
	} else {
		out->domain = xstrdup("docker.io");
	}
	if (!strcmp(out->domain, "docker.io") && !strchr(path, '/'))
		out->repo = xasprintf("library/%s", path);
	else
		out->repo = xstrdup(path);
	if (!valid_repo_path(out->repo)) {
		_cleanup_free_ char *repo = printable(out->repo, strlen(out->repo));
		hutch_fail(err, 0,
			   "invalid image reference '%s': the repository '%s' must be lowercase "
			   "letters and digits separated by '/', '.', '_', '__' or '-'",
			   shown, repo);
		goto fail;
	}
	out->api_host =
	    xstrdup(!strcmp(out->domain, "docker.io") ? "registry-1.docker.io" : out->domain);
	if (strlen(out->domain) + 1 + strlen(out->repo) > REF_NAME_MAX) {
		hutch_fail(err, 0, "invalid image reference '%s': name longer than %d", shown,
			   REF_NAME_MAX);
		goto fail;
	}
	if (out->tag)
		out->name = xasprintf("%s/%s:%s", out->domain, out->repo, out->tag);
	else
		out->name = xasprintf("%s/%s@%s", out->domain, out->repo, out->digest);
	return 0;
fail:
	registry_ref_free(out);
	return -1;
}

bool registry_host_is_loopback(const char *host_port)
{
	char host[256];
	const char *end;
	if (host_port[0] == '[') {
		end = strchr(host_port, ']');
		if (!end)
			return false;
		snprintf(host, sizeof(host), "%.*s", (int)(end - host_port - 1), host_port + 1);
		return !strcmp(host, "::1");
	}
	end = strchr(host_port, ':');
	size_t hl = end ? (size_t)(end - host_port) : strlen(host_port);
	if (hl >= sizeof(host))
		return false;
	memcpy(host, host_port, hl);
	host[hl] = '\0';
	if (!strcasecmp(host, "localhost"))
		return true;
	/* 127.0.0.0/8 as four decimal octets */
	unsigned a, b, c, d;
	char tail;
	return sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 &&
	       c < 256 && d < 256 && !strchr(host, '+') && !strchr(host, '-') && !strchr(host, ' ');
}

/* ---- WWW-Authenticate -------------------------------------------------------- */

#define WWW_AUTH_MAX_CHALLENGES 16
#define WWW_AUTH_MAX_PARAMS	32

/* RFC 7230 tchar */
static bool is_tchar(char c)
{
	return is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

struct cursor {
	const char *p, *end;
};

static void skip_ows(struct cursor *c)
{
	while (c->p < c->end && is_ows(*c->p))
		c->p++;
}

static size_t read_token(struct cursor *c)
{
	const char *s = c->p;
	while (c->p < c->end && is_tchar(*c->p))
		c->p++;
	return (size_t)(c->p - s);
}

/* A quoted-string starting at '"'; NULL if unterminated (cursor then at end). */
static char *read_quoted(struct cursor *c)
{
	c->p++; /* opening quote */
	const char *q = c->p;
	while (q < c->end && *q != '"')
		q += (*q == '\\' && q + 1 < c->end) ? 2 : 1;
	if (q >= c->end) {
		c->p = c->end;
		return NULL;
	}
	size_t n = 0;
	char *out = xcalloc(1, (size_t)(q - c->p) + 1);
	while (c->p < c->end) {
		char ch = *c->p++;
		if (ch == '"')
			return out;
		if (ch == '\\' && c->p < c->end)
			ch = *c->p++;
		if (ch == '\0' || ch == '\r' || ch == '\n')
			continue;
		out[n++] = ch;
	}
	free(out);
	return NULL;
}

/* Skip to just after the next top-level comma (quoted commas do not count). */
static void skip_to_comma(struct cursor *c)
{
	while (c->p < c->end && *c->p != ',') {
		if (*c->p == '"') {
			free(read_quoted(c));
			continue;
		}
		c->p++;
	}
	if (c->p < c->end)
		c->p++;
}

/* token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=", alone
 * up to the end or a comma (credentials of schemes such as Negotiate): skipped. */
static void skip_token68(struct cursor *c)
{
	const char *p = c->p;
	while (p < c->end && is_ows(*p))
		p++;
	const char *start = p;
	while (p < c->end && (is_alnum(*p) || (*p && strchr("-._~+/", *p))))
		p++;
	if (p == start)
		return;
	while (p < c->end && *p == '=')
		p++;
	while (p < c->end && is_ows(*p))
		p++;
	if (p == c->end || *p == ',')
		c->p = p;
}

static void skip_list_separators(struct cursor *c)
{
	while (c->p < c->end && (is_ows(*c->p) || *c->p == ','))
		c->p++;
}

static char *lower_dup(const char *s, size_t len)
{
	char *o = xcalloc(1, len + 1);
	for (size_t i = 0; i < len; i++)
		o[i] = (char)tolower((unsigned char)s[i]);
	return o;
}

static void challenge_add_param(struct www_auth_challenge *ch, char *name, char *value)
{
	if (ch->n_params >= WWW_AUTH_MAX_PARAMS) {
		free(name);
		free(value);
		return;
	}
	ch->params = xrealloc(ch->params, (ch->n_params + 1) * sizeof(*ch->params));
	ch->params[ch->n_params++] = (struct www_auth_param){.name = name, .value = value};
}

size_t www_auth_parse(const char *value, size_t len, struct www_auth_challenge **out)
{
	struct cursor c = {value, value + len};
	struct www_auth_challenge *list = NULL;
	size_t n = 0;
	*out = NULL;
	skip_list_separators(&c);
	while (c.p < c.end) {
		const char *scheme = c.p;
		size_t sl = read_token(&c);
		if (sl == 0) {
			skip_to_comma(&c);
			skip_list_separators(&c);
			continue;
		}
		struct www_auth_challenge ch = {.scheme = lower_dup(scheme, sl)};
		skip_token68(&c);
		/* auth-params (or a token68) until the next challenge's scheme */
		for (;;) {
			skip_ows(&c);
			if (c.p >= c.end)
				break;
			if (*c.p == ',') {
				skip_list_separators(&c);
				if (c.p >= c.end)
					break;
			}
			const char *before = c.p;
			const char *name = c.p;
			size_t nl = read_token(&c);
			if (nl == 0) {
				skip_to_comma(&c);
				continue;
			}
			skip_ows(&c);
			if (c.p >= c.end || *c.p != '=') {
				/* a token not followed by '=': the next challenge's scheme */
				c.p = before;
				break;
			}
			c.p++;
			skip_ows(&c);
			char *v = NULL;
			if (c.p < c.end && *c.p == '"') {
				v = read_quoted(&c);
			} else if (c.p < c.end && *c.p == '=') {
				/* token68 ("abc==") */
				while (c.p < c.end && *c.p == '=')
					c.p++;
				skip_to_comma(&c);
				continue;
			} else {
				const char *vs = c.p;
				size_t vl = read_token(&c);
				v = xasprintf("%.*s", (int)vl, vs);
			}
			if (!v) /* unterminated quote: drop the param */
				break;
			challenge_add_param(&ch, lower_dup(name, nl), v);
			skip_ows(&c);
			if (c.p < c.end && *c.p != ',')
				skip_to_comma(&c); /* junk after a value */
		}
		if (n < WWW_AUTH_MAX_CHALLENGES) {
			list = xrealloc(list, (n + 1) * sizeof(*list));
			list[n++] = ch;
		} else {
			free(ch.scheme);
			for (size_t i = 0; i < ch.n_params; i++) {
				free(ch.params[i].name);
				free(ch.params[i].value);
			}
			free(ch.params);
		}
		skip_list_separators(&c);
	}
	*out = list;
	return n;
}

void www_auth_free(struct www_auth_challenge *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(c[i].scheme);
		for (size_t j = 0; j < c[i].n_params; j++) {
			free(c[i].params[j].name);
			free(c[i].params[j].value);
		}
		free(c[i].params);
	}
	if (n)
		free(c);
}

const char *www_auth_param(const struct www_auth_challenge *c, const char *name)
{
	for (size_t i = 0; i < c->n_params; i++)
		if (!strcasecmp(c->params[i].name, name))
			return c->params[i].value;
	return NULL;
}

const struct www_auth_challenge *www_auth_find(const struct www_auth_challenge *c, size_t n,
					       const char *scheme)
{
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(c[i].scheme, scheme))
			return &c[i];
	return NULL;
}

/* ---- base64 ------------------------------------------------------------------ */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *in, size_t len)
{
	const unsigned char *s = in;
	char *out = xcalloc(1, (len + 2) / 3 * 4 + 1), *o = out;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < len)
			v |= s[i + 2];
		*o++ = b64_alphabet[(v >> 18) & 63];
		*o++ = b64_alphabet[(v >> 12) & 63];
		*o++ = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
		*o++ = i + 2 < len ? b64_alphabet[v & 63] : '=';
	}
	return out;
}

static int b64_value(char c)
{
	const char *p = c ? strchr(b64_alphabet, c) : NULL;
	return p ? (int)(p - b64_alphabet) : -1;
}

ssize_t base64_decode(const char *in, size_t len, unsigned char *out)
{
	while (len > 0 && in[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return -1;
	size_t o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = b64_value(in[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	out[o] = '\0';
	return (ssize_t)o;
}

/* ---- auth.json ---------------------------------------------------------------- */

/* An auths key reduced to "host[:port][/namespace...]": a scheme and, with a
 * scheme, the path are dropped (legacy "https://index.docker.io/v1/"); Docker
 * Hub's aliases become docker.io. */
static char *auth_key_normalize(const char *key)
{
	const char *k = key;
	bool had_scheme = false;
	if (!strncasecmp(k, "https://", 8)) {
		k += 8;
		had_scheme = true;
	} else if (!strncasecmp(k, "http://", 7)) {
		k += 7;
		had_scheme = true;
	}
	size_t len = had_scheme ? strcspn(k, "/") : strlen(k);
	while (len > 0 && k[len - 1] == '/')
		len--;
	char *out = xasprintf("%.*s", (int)len, k);
	size_t hl = strcspn(out, "/");
	for (size_t i = 0; i < hl; i++)
		out[i] = (char)tolower((unsigned char)out[i]);
	static const char *const hub[] = {"index.docker.io", "registry-1.docker.io"};
	for (size_t i = 0; i < ARRAY_SIZE(hub); i++) {
		size_t l = strlen(hub[i]);
		if (hl == l && !strncmp(out, hub[i], l)) {
			char *n = xasprintf("docker.io%s", out + hl);
			free(out);
			return n;
		}
	}
	return out;
}

/* Length of the match of key against "domain/repo": the key is the domain, or
 * the domain and a leading part of the repository ending at a '/'. 0: none. */
static size_t auth_key_match(const char *key, const char *domain, const char *repo)
{
	size_t dl = strlen(domain);
	if (strncasecmp(key, domain, dl) != 0)
		return 0;
	if (key[dl] == '\0')
		return dl;
	if (key[dl] != '/')
		return 0;
	const char *ns = key + dl + 1;
	size_t nl = strlen(ns);
	if (nl == 0 || strncmp(repo, ns, nl) != 0 || (repo[nl] != '\0' && repo[nl] != '/'))
		return 0;
	return dl + 1 + nl;
}

/* A whole JSON document: nothing but whitespace may follow it. */
static struct json_object *parse_json(const char *body, size_t len)
{
	if (len > INT_MAX)
		return NULL;
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o = json_tokener_parse_ex(tok, body, (int)len);
	bool ok = json_tokener_get_error(tok) == json_tokener_success;
	for (size_t i = ok ? json_tokener_get_parse_end(tok) : len; i < len; i++)
		if (!strchr(" \t\r\n", body[i]) || body[i] == '\0')
			ok = false;
	json_tokener_free(tok);
	if (!ok) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static const char *json_member_string(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int auth_json_lookup(const char *json, size_t len, const char *domain, const char *repo,
		     char **user_pass, struct hutch_err **err)
{
	*user_pass = NULL;
	if (len > INT_MAX)
		return hutch_fail(err, 0, "too large");
	struct json_object *root = parse_json(json, len);
	if (!root || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return hutch_fail(err, 0, "not a JSON object");
	}
	struct json_object *auths;
	if (!json_object_object_get_ex(root, "auths", &auths) ||
	    json_object_is_type(auths, json_type_null)) {
		json_object_put(root);
		return 0;
	}
	if (!json_object_is_type(auths, json_type_object)) {
		json_object_put(root);
		return hutch_fail(err, 0, "\"auths\" is not an object");
	}
	struct json_object *best = NULL;
	size_t best_len = 0;
	_cleanup_free_ char *best_key = NULL;
	json_object_object_foreach(auths, key, entry)
	{
		_cleanup_free_ char *norm = auth_key_normalize(key);
		size_t m = auth_key_match(norm, domain, repo);
		if (m > best_len) {
			best_len = m;
			best = entry;
			free(best_key);
			best_key = printable(key, strlen(key));
		}
	}
	int ret = 0;
	if (!best)
		goto out;
	if (!json_object_is_type(best, json_type_object)) {
		ret = hutch_fail(err, 0, "the entry \"%s\" is not an object", best_key);
		goto out;
	}
	const char *auth = json_member_string(best, "auth");
	if (auth && *auth) {
		size_t al = strlen(auth);
		_cleanup_free_ unsigned char *dec = xcalloc(1, al / 4 * 3 + 4);
		ssize_t dl = base64_decode(auth, al, dec);
		if (dl < 0 || memchr(dec, '\0', (size_t)dl) || !memchr(dec, ':', (size_t)dl)) {
			ret = hutch_fail(
			    err, 0, "the entry \"%s\": \"auth\" is not base64 of user:password",
			    best_key);
			goto out;
		}
		*user_pass = (char *)steal_ptr(dec);
		ret = 1;
		goto out;
	}
	const char *user = json_member_string(best, "username");
	const char *pass = json_member_string(best, "password");
	if (user && pass && *user) {
		*user_pass = xasprintf("%s:%s", user, pass);
		ret = 1;
	}
	/* an entry with neither (say, only "identitytoken") gives no credentials */
out:
	json_object_put(root);
	return ret;
}

/* ---- HTTP responses -------------------------------------------------------- */

bool http_header_split(const char *line, size_t len, const char **name, size_t *name_len,
		       const char **value, size_t *value_len)
{
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	const char *colon = memchr(line, ':', len);
	if (!colon || colon == line)
		return false;
	for (const char *p = line; p < colon; p++)
		if (!is_tchar(*p))
			return false;
	*name = line;
	*name_len = (size_t)(colon - line);
	const char *v = colon + 1, *end = line + len;
	while (v < end && is_ows(*v))
		v++;
	while (end > v && is_ows(end[-1]))
		end--;
	*value = v;
	*value_len = (size_t)(end - v);
	return true;
}

int http_status_line(const char *line, size_t len)
{
	if (len < 12 || strncmp(line, "HTTP/", 5) != 0)
		return -1;
	const char *sp = memchr(line, ' ', len);
	if (!sp || (size_t)(line + len - sp) < 4)
		return -1;
	int code = 0;
	for (int i = 1; i <= 3; i++) {
		if (sp[i] < '0' || sp[i] > '9')
			return -1;
		code = code * 10 + (sp[i] - '0');
	}
	if ((size_t)(sp + 4 - line) < len && sp[4] != ' ' && sp[4] != '\r' && sp[4] != '\n')
		return -1;
	return code >= 100 ? code : -1;
}

/* A non-negative decimal of at most 18 digits (no overflow); advances *p. */
static bool read_int64(const char **p, const char *end, int64_t *out)
{
	int64_t v = 0;
	int digits = 0;
	while (*p < end && **p >= '0' && **p <= '9') {
		if (++digits > 18)
			return false;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	*out = v;
	return digits > 0;
}

bool http_content_range(const char *v, size_t len, int64_t *start, int64_t *end, int64_t *total)
{
	const char *p = v, *e = v + len;
	if (len < 6 || strncasecmp(p, "bytes", 5) != 0)
		return false;
	p += 5;
	if (p >= e || !is_ows(*p))
		return false;
	while (p < e && is_ows(*p))
		p++;
	if (!read_int64(&p, e, start) || p >= e || *p++ != '-' || !read_int64(&p, e, end) ||
	    p >= e || *p++ != '/')
		return false;
	if (p < e && *p == '*') {
		p++;
		*total = -1;
	} else if (!read_int64(&p, e, total)) {
		return false;
	}
	if (p != e || *end < *start || (*total >= 0 && *end >= *total))
		return false;
	return true;
}

bool url_origin_parse(const char *url, struct url_origin *o)
{
	memset(o, 0, sizeof(*o));
	const char *rest;
	if (!strncasecmp(url, "https://", 8)) {
		strcpy(o->scheme, "https");
		o->port = 443;
		rest = url + 8;
	} else if (!strncasecmp(url, "http://", 7)) {
		strcpy(o->scheme, "http");
		o->port = 80;
		rest = url + 7;
	} else {
		return false;
	}
	size_t al = strcspn(rest, "/?#");
	/* userinfo: whatever is before the last '@' of the authority */
	const char *auth = rest;
	for (const char *p = rest; p < rest + al; p++)
		if (*p == '@')
			auth = p + 1;
	size_t hl;
	const char *port = NULL;
	const char *aend = rest + al;
	if (*auth == '[') {
		const char *close = memchr(auth, ']', (size_t)(aend - auth));
		if (!close)
			return false;
		hl = (size_t)(close + 1 - auth);
		if (close + 1 < aend) {
			if (close[1] != ':')
				return false;
			port = close + 2;
		}
	} else {
		const char *colon = memchr(auth, ':', (size_t)(aend - auth));
		hl = colon ? (size_t)(colon - auth) : (size_t)(aend - auth);
		if (colon)
			port = colon + 1;
	}
	if (hl == 0 || hl >= sizeof(o->host))
		return false;
	for (size_t i = 0; i < hl; i++) {
		char c = auth[i];
		if ((unsigned char)c <= ' ' || c == '\\' || c == '%')
			return false;
		o->host[i] = (char)tolower((unsigned char)c);
	}
	if (port && port < aend) {
		if (!valid_port(port, (size_t)(aend - port)))
			return false;
		o->port = (unsigned)atoi(port);
	} else if (port) {
		return false; /* "host:" with no digits */
	}
	return true;
}

bool url_same_origin(const char *a, const char *b)
{
	struct url_origin oa, ob;
	return url_origin_parse(a, &oa) && url_origin_parse(b, &ob) &&
	       !strcmp(oa.scheme, ob.scheme) && !strcmp(oa.host, ob.host) && oa.port == ob.port;
}

/* ---- bodies ------------------------------------------------------------------ */

char *registry_error_text(const char *body, size_t len)
{
	struct json_object *root = parse_json(body, len), *errors;
	if (!root || !json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "errors", &errors) ||
	    !json_object_is_type(errors, json_type_array)) {
		json_object_put(root);
		return NULL;
	}
	char *out = NULL;
	size_t n = json_object_array_length(errors);
	for (size_t i = 0; i < n && i < 4; i++) {
		struct json_object *e = json_object_array_get_idx(errors, i);
		if (!json_object_is_type(e, json_type_object))
			continue;
		const char *code = json_member_string(e, "code");
		const char *msg = json_member_string(e, "message");
		if (!code && !msg)
			continue;
		_cleanup_free_ char *pc = code ? printable(code, strlen(code)) : NULL;
		_cleanup_free_ char *pm = msg ? printable(msg, strlen(msg)) : NULL;
		char *item = pc && pm ? xasprintf("%s: %s", pc, pm) : xstrdup(pc ? pc : pm);
		char *joined = out ? xasprintf("%s; %s", out, item) : steal_ptr(item);
		free(item);
		free(out);
		out = joined;
	}
	json_object_put(root);
	return out;
}

int registry_token_parse(const char *body, size_t len, char **token, int *expires_in,
			 struct hutch_err **err)
{
	*token = NULL;
	*expires_in = 0;
	struct json_object *root = parse_json(body, len);
	if (!root || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return hutch_fail(err, 0, "the token server's answer is not a JSON object");
	}
	const char *t = json_member_string(root, "token");
	if (!t || !*t)
		t = json_member_string(root, "access_token");
	if (!t || !*t) {
		json_object_put(root);
		return hutch_fail(err, 0, "the token server's answer has no \"token\"");
	}
	size_t tl = strlen(t);
	for (size_t i = 0; i < tl; i++)
		if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f) {
			json_object_put(root);
			return hutch_fail(err, 0,
					  "the token server's token has a character not allowed "
					  "in an HTTP header");
		}
	if (tl > 64 * 1024) {
		json_object_put(root);
		return hutch_fail(err, 0, "the token server's token is longer than 64 KiB");
	}
	struct json_object *exp;
	if (json_object_object_get_ex(root, "expires_in", &exp) &&
	    json_object_is_type(exp, json_type_int)) {
		int64_t v = json_object_get_int64(exp);
		*expires_in = v > 0 && v < INT_MAX ? (int)v : 0;
	}
	*token = xstrdup(t);
	json_object_put(root);
	return 0;
}

char *url_query_escape(const char *s)
{
	size_t len = strlen(s);
	char *out = xcalloc(1, len * 3 + 1), *o = out;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (is_alnum((char)c) || c == '-' || c == '.' || c == '_' || c == '~')
			*o++ = (char)c;
		else
			o += sprintf(o, "%%%02X", c);
	}
	return out;
}
