/* What comes back from a registry besides blobs: header lines (status lines,
 * Content-Range, Location for redirects: whose origin decides whether
 * Authorization follows), error bodies and token-server answers. Input: lines
 * fed one by one to the header readers, then the whole input as a body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "images/registry_internal.h"

static void one_line(const char *line, size_t len)
{
	char *l = malloc(len ? len : 1);
	if (!l)
		abort();
	memcpy(l, line, len);
	int st = http_status_line(l, len);
	if (st != -1 && (st < 100 || st > 999))
		abort();
	const char *name, *value;
	size_t nl, vl;
	if (http_header_split(l, len, &name, &nl, &value, &vl)) {
		if (nl == 0 || name < l || name + nl > l + len || value < l || value + vl > l + len)
			abort();
		int64_t s, e, t;
		if (http_content_range(value, vl, &s, &e, &t) &&
		    (s < 0 || e < s || (t >= 0 && e >= t) || t < -1))
			abort();
		/* a Location value as an URL: NUL-terminated copy */
		char *url = strndup(value, vl);
		if (url) {
			struct url_origin o;
			if (url_origin_parse(url, &o)) {
				if (!o.host[0] || o.port == 0 || o.port > 65535)
					abort();
				for (const char *p = o.host; *p; p++)
					if (*p >= 'A' && *p <= 'Z')
						abort();
				if (!url_same_origin(url, url))
					abort();
			}
			(void)url_same_origin("https://registry.example:443/v2/", url);
			free(url);
		}
	}
	free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i == size || s[i] == '\n') {
			one_line(s + start, i - start + (i < size));
			start = i + 1;
		}
	}
	char *body = malloc(size ? size : 1);
	if (!body)
		return 0;
	memcpy(body, data, size);
	char *msg = registry_error_text(body, size);
	if (msg) {
		for (const char *p = msg; *p; p++)
			if ((unsigned char)*p < 0x20)
				abort();
		free(msg);
	}
	char *token = NULL;
	int expires = -1;
	struct hutch_err *err = NULL;
	if (registry_token_parse(body, size, &token, &expires, &err) == 0) {
		for (const char *p = token; *p; p++)
			if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
				abort();
		if (expires < 0)
			abort();
		free(token);
	} else if (!err || token) {
		abort();
	}
	hutch_err_free(&err);
	free(body);
	return 0;
}
