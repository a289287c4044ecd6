/* Private to images/registry*.c (and their tests): the parts of the registry
 * client that read text someone else wrote (references, WWW-Authenticate
 * challenges, auth.json files, HTTP response headers, error bodies, token
 * responses) as pure functions, so unit tests and fuzz targets can reach them
 * without libcurl or a store. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

/* ---- image references ----------------------------------------------------- */

struct registry_ref {
	char *domain;	 /* as named, lowercase: "docker.io", "127.0.0.1:5000", "[::1]:5000" */
	char *api_host;	 /* host[:port] contacted: "registry-1.docker.io" for docker.io */
	char *repo;	 /* "library/busybox", "team/app" */
	char *tag;	 /* NULL when only a digest was given */
	char digest[72]; /* "sha256:<64 hex>" or "" */
	char *name;	 /* for the store: "domain/repo:tag", or "domain/repo@sha256:..." */
};

/* Parse "host[:port]/path[:tag][@sha256:...]" the way Docker does: a first
 * component with a '.' or ':', or "localhost", is a registry host; otherwise the
 * image is on docker.io (and a one-component name is under library/). The tag
 * defaults to "latest" when neither tag nor digest is given. */
int registry_ref_parse(const char *s, struct registry_ref *out, struct hutch_err **err);
void registry_ref_free(struct registry_ref *r);
/* Whether host[:port] is this machine: localhost, 127.0.0.0/8, ::1 (Docker's rule:
 * such registries may be spoken to over plain http). */
bool registry_host_is_loopback(const char *host_port);

/* ---- WWW-Authenticate -------------------------------------------------------- */

struct www_auth_param {
	char *name; /* lowercase */
	char *value;
};

struct www_auth_challenge {
	char *scheme; /* lowercase: "bearer", "basic", ... */
	struct www_auth_param *params;
	size_t n_params;
};

/* Parse a WWW-Authenticate value (RFC 7235: one or more challenges, each a scheme
 * and auth-params, values as tokens or quoted strings with commas and escapes
 * inside). Malformed parts are skipped, never fatal; at most 16 challenges of 32
 * params are kept. Returns the number of challenges (*out to be freed). */
size_t www_auth_parse(const char *value, size_t len, struct www_auth_challenge **out);
void www_auth_free(struct www_auth_challenge *c, size_t n);
/* A param's value, or NULL (name compared case-insensitively). */
const char *www_auth_param(const struct www_auth_challenge *c, const char *name);
/* The first challenge of the given scheme ("bearer", "basic"), or NULL. */
const struct www_auth_challenge *www_auth_find(const struct www_auth_challenge *c, size_t n,
					       const char *scheme);

/* ---- credentials: docker-style auth.json ------------------------------------- */

/* Look up credentials for domain (as in registry_ref) and repo in an auth.json
 * document: {"auths": {"host:port": {"auth": base64("user:pass")}}}. Keys may
 * carry a scheme and path ("https://index.docker.io/v1/"), or a repository
 * namespace ("host/team", the longest match wins, as podman does). Returns 1 and
 * *user_pass ("user:pass", to be freed), 0 when there is no entry, -1 and *err
 * when the document or the entry is malformed. */
int auth_json_lookup(const char *json, size_t len, const char *domain, const char *repo,
		     char **user_pass, struct hutch_err **err);

/* Base64 (RFC 4648, standard alphabet; padding optional when decoding). decode
 * returns the decoded length or -1; out needs (len / 4 + 1) * 3 + 1 bytes and
 * is NUL-terminated. */
ssize_t base64_decode(const char *in, size_t len, unsigned char *out);
char *base64_encode(const void *in, size_t len);

/* ---- HTTP responses --------------------------------------------------------- */

/* Split one raw header line ("Name: value\r\n") into trimmed name and value.
 * False for the status line, the blank line ending the headers and anything
 * without a valid field name. */
bool http_header_split(const char *line, size_t len, const char **name, size_t *name_len,
		       const char **value, size_t *value_len);
/* The status code of a status line ("HTTP/1.1 206 Partial Content"), or -1. */
int http_status_line(const char *line, size_t len);
/* "bytes START-END/TOTAL" (TOTAL may be "*": *total = -1). */
bool http_content_range(const char *v, size_t len, int64_t *start, int64_t *end, int64_t *total);

/* scheme, lowercase host and effective port (default 80/443) of an absolute
 * http(s) URL; false for anything else. */
struct url_origin {
	char scheme[8];
	char host[256];
	unsigned port;
};
bool url_origin_parse(const char *url, struct url_origin *o);
/* Whether two absolute URLs have the same scheme, host and port: credentials
 * meant for one are never sent to the other. */
bool url_same_origin(const char *a, const char *b);

/* The message of a registry error body ({"errors": [{"code": "MANIFEST_UNKNOWN",
 * "message": "manifest unknown"}]}), "CODE: message[; ...]", printable, or NULL. */
char *registry_error_text(const char *body, size_t len);
/* A token endpoint's answer: {"token": "..."} or {"access_token": "..."} (and
 * "expires_in"). The token must be printable ASCII without spaces. */
int registry_token_parse(const char *body, size_t len, char **token, int *expires_in,
			 struct hutch_err **err);
/* Percent-encode for a query string (unreserved characters kept). */
char *url_query_escape(const char *s);
