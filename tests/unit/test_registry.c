/* The registry client's pure parts: image references (Docker's normalisation),
 * WWW-Authenticate challenges, auth.json lookups, base64, HTTP header lines,
 * Content-Range, URL origins (whose Authorization goes where) and error/token
 * bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/util.h"
#include "images/registry_internal.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* ---- references ---------------------------------------------------------- */

struct ref_case {
	const char *in;
	const char *domain, *api_host, *repo, *tag, *digest, *name;
};

static void test_ref_valid(void **state)
{
	static const struct ref_case cases[] = {
	    {"busybox", "docker.io", "registry-1.docker.io", "library/busybox", "latest", "",
	     "docker.io/library/busybox:latest"},
	    {"busybox:1.36", "docker.io", "registry-1.docker.io", "library/busybox", "1.36", "",
	     "docker.io/library/busybox:1.36"},
	    {"team/app", "docker.io", "registry-1.docker.io", "team/app", "latest", "",
	     "docker.io/team/app:latest"},
	    {"docker.io/busybox", "docker.io", "registry-1.docker.io", "library/busybox", "latest",
	     "", "docker.io/library/busybox:latest"},
	    {"index.docker.io/library/alpine:3", "docker.io", "registry-1.docker.io",
	     "library/alpine", "3", "", "docker.io/library/alpine:3"},
	    {"127.0.0.1:5000/app", "127.0.0.1:5000", "127.0.0.1:5000", "app", "latest", "",
	     "127.0.0.1:5000/app:latest"},
	    {"127.0.0.1:5000/team/app:1.2", "127.0.0.1:5000", "127.0.0.1:5000", "team/app", "1.2",
	     "", "127.0.0.1:5000/team/app:1.2"},
	    {"localhost/app:v1", "localhost", "localhost", "app", "v1", "", "localhost/app:v1"},
	    {"localhost:5000/a/b/c", "localhost:5000", "localhost:5000", "a/b/c", "latest", "",
	     "localhost:5000/a/b/c:latest"},
	    {"Registry.Example:5000/app", "Registry.Example:5000", "Registry.Example:5000", "app",
	     "latest", "", "Registry.Example:5000/app:latest"},
	    /* upper case makes a host of a component without '.' or ':' (Docker's rule) */
	    {"MyHost/app", "MyHost", "MyHost", "app", "latest", "", "MyHost/app:latest"},
	    {"Docker.IO/busybox", "docker.io", "registry-1.docker.io", "library/busybox", "latest",
	     "", "docker.io/library/busybox:latest"},
	    {"quay.io/a_b/c-d.e__f:T_a.g-1", "quay.io", "quay.io", "a_b/c-d.e__f", "T_a.g-1", "",
	     "quay.io/a_b/c-d.e__f:T_a.g-1"},
	    {"reg.example/app@sha256:" HEX64, "reg.example", "reg.example", "app", NULL,
	     "sha256:" HEX64, "reg.example/app@sha256:" HEX64},
	    {"reg.example/app:1.0@sha256:" HEX64, "reg.example", "reg.example", "app", "1.0",
	     "sha256:" HEX64, "reg.example/app:1.0"},
	    {"[::1]:5000/app", "[::1]:5000", "[::1]:5000", "app", "latest", "",
	     "[::1]:5000/app:latest"},
	    {"a--b/c", "docker.io", "registry-1.docker.io", "a--b/c", "latest", "",
	     "docker.io/a--b/c:latest"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct ref_case *c = &cases[i];
		struct registry_ref r;
		struct hutch_err *err = NULL;
		if (registry_ref_parse(c->in, &r, &err) < 0)
			fail_msg("%s: %s", c->in, err->msg);
		assert_string_equal(r.domain, c->domain);
		assert_string_equal(r.api_host, c->api_host);
		assert_string_equal(r.repo, c->repo);
		if (c->tag)
			assert_string_equal(r.tag, c->tag);
		else
			assert_null(r.tag);
		assert_string_equal(r.digest, c->digest);
		assert_string_equal(r.name, c->name);
		registry_ref_free(&r);
	}
}

static void test_ref_invalid(void **state)
{
	static const char *const bad[] = {
	    "",
	    "UPPER",
	    "docker.io/Library/busybox",
	    "app:",
	    "app:.bad",
	    "app:-bad",
	    "app:has space",
	    "reg.example/app@sha256:abc",
	    "reg.example/app@sha512:" HEX64,
	    "reg.example/app@sha256:" HEX64 "00",
	    "reg.example/app@SHA256:" HEX64,
	    "reg.example//app",
	    "reg.example/app/",
	    "/app",
	    "reg.example/-app",
	    "reg.example/app-",
	    "reg.example/a..b",
	    "reg.example/a___b",
	    "reg.example/../etc",
	    "reg.example:99999/app",
	    "reg.example:/app",
	    "reg.example:5000x/app",
	    "-reg.example/app",
	    "reg_example.com/app",
	    "[::1/app",
	    "[zz]:5000/app",
	    "reg.example/app\n",
	    "reg.example/app:"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct registry_ref r;
		struct hutch_err *err = NULL;
		if (registry_ref_parse(bad[i], &r, &err) == 0)
			fail_msg("accepted '%s' as %s", bad[i], r.name);
		assert_non_null(err);
		assert_non_null(strstr(err->msg, "invalid image reference"));
		hutch_err_free(&err);
		assert_null(r.domain);
	}
}

static void test_loopback(void **state)
{
	assert_true(registry_host_is_loopback("localhost"));
	assert_true(registry_host_is_loopback("localhost:5000"));
	assert_true(registry_host_is_loopback("LOCALHOST:5000"));
	assert_true(registry_host_is_loopback("127.0.0.1:5000"));
	assert_true(registry_host_is_loopback("127.1.2.3"));
	assert_true(registry_host_is_loopback("[::1]:5000"));
	assert_true(registry_host_is_loopback("[::1]"));
	assert_false(registry_host_is_loopback("128.0.0.1:5000"));
	assert_false(registry_host_is_loopback("127.0.0.1.example.com"));
	assert_false(registry_host_is_loopback("localhost.example.com"));
	assert_false(registry_host_is_loopback("127.0.0.256"));
	assert_false(registry_host_is_loopback("[::2]:5000"));
	assert_false(registry_host_is_loopback("registry.example"));
	assert_false(registry_host_is_loopback(""));
}

/* ---- WWW-Authenticate ---------------------------------------------------------- */

static void test_www_auth_bearer(void **state)
{
	const char *v =
	    "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
	    "scope=\"repository:samalba/my-app:pull,push\"";
	struct www_auth_challenge *c;
	size_t n = www_auth_parse(v, strlen(v), &c);
	assert_int_equal(n, 1);
	assert_string_equal(c[0].scheme, "bearer");
	assert_int_equal(c[0].n_params, 3);
	assert_string_equal(www_auth_param(&c[0], "realm"), "https://auth.docker.io/token");
	assert_string_equal(www_auth_param(&c[0], "Service"), "registry.docker.io");
	/* the comma inside the quotes is part of the value */
	assert_string_equal(www_auth_param(&c[0], "scope"), "repository:samalba/my-app:pull,push");
	assert_null(www_auth_param(&c[0], "error"));
	www_auth_free(c, n);
}

static void test_www_auth_forms(void **state)
{
	/* several challenges, odd spacing, token values, escapes, case */
	const char *v = "Basic realm=\"Registry Realm\" , BEARER  realm = \"http://a/t?x=1\" ,"
			"service=svc ,error=\"invalid_token\",  scope=\"a\\\"b\\\\c\"";
	struct www_auth_challenge *c;
	size_t n = www_auth_parse(v, strlen(v), &c);
	assert_int_equal(n, 2);
	assert_string_equal(c[0].scheme, "basic");
	assert_string_equal(www_auth_param(&c[0], "realm"), "Registry Realm");
	assert_string_equal(c[1].scheme, "bearer");
	assert_string_equal(www_auth_param(&c[1], "realm"), "http://a/t?x=1");
	assert_string_equal(www_auth_param(&c[1], "service"), "svc");
	assert_string_equal(www_auth_param(&c[1], "error"), "invalid_token");
	assert_string_equal(www_auth_param(&c[1], "scope"), "a\"b\\c");
	assert_ptr_equal(www_auth_find(c, n, "bearer"), &c[1]);
	assert_ptr_equal(www_auth_find(c, n, "Basic"), &c[0]);
	assert_null(www_auth_find(c, n, "digest"));
	www_auth_free(c, n);

	/* a token68 challenge before a Bearer one; a bare scheme */
	v = "Negotiate abc+/==, Bearer realm=\"r\", Basic";
	n = www_auth_parse(v, strlen(v), &c);
	assert_int_equal(n, 3);
	assert_string_equal(c[0].scheme, "negotiate");
	assert_int_equal(c[0].n_params, 0);
	assert_string_equal(c[1].scheme, "bearer");
	assert_string_equal(www_auth_param(&c[1], "realm"), "r");
	assert_string_equal(c[2].scheme, "basic");
	www_auth_free(c, n);
}

static void test_www_auth_malformed(void **state)
{
	static const char *const odd[] = {
	    "",
	    ",,, ,",
	    "Bearer",
	    "Bearer realm=\"unterminated",
	    "Bearer realm=",
	    "Bearer =x, realm=\"r\"",
	    "Bearer realm=\"a\"junk, service=\"s\"",
	    "\"quoted\" scheme",
	    "Bearer realm=\"a\\",
	    "=,=,=",
	};
	for (size_t i = 0; i < ARRAY_SIZE(odd); i++) {
		struct www_auth_challenge *c;
		size_t n = www_auth_parse(odd[i], strlen(odd[i]), &c);
		for (size_t j = 0; j < n; j++) {
			assert_non_null(c[j].scheme);
			for (size_t k = 0; k < c[j].n_params; k++)
				assert_non_null(c[j].params[k].value);
		}
		www_auth_free(c, n);
	}
	/* junk after a value does not hide the next param */
	const char *v = "Bearer realm=\"a\"junk, service=\"s\"";
	struct www_auth_challenge *c;
	size_t n = www_auth_parse(v, strlen(v), &c);
	assert_int_equal(n, 1);
	assert_string_equal(www_auth_param(&c[0], "realm"), "a");
	assert_string_equal(www_auth_param(&c[0], "service"), "s");
	www_auth_free(c, n);
	/* an unterminated quote drops the param, nothing more */
	v = "Bearer service=\"s\", realm=\"open";
	n = www_auth_parse(v, strlen(v), &c);
	assert_int_equal(n, 1);
	assert_string_equal(www_auth_param(&c[0], "service"), "s");
	assert_null(www_auth_param(&c[0], "realm"));
	www_auth_free(c, n);
	/* limits */
	char *many = xstrdup("");
	for (int i = 0; i < 40; i++) {
		char *next = xasprintf("%sS%d a=b, ", many, i);
		free(many);
		many = next;
	}
	n = www_auth_parse(many, strlen(many), &c);
	assert_int_equal(n, 16);
	www_auth_free(c, n);
	free(many);
}

/* ---- auth.json ------------------------------------------------------------------- */

static int lookup(const char *json, const char *domain, const char *repo, char **up)
{
	struct hutch_err *err = NULL;
	int r = auth_json_lookup(json, strlen(json), domain, repo, up, &err);
	if (r < 0) {
		assert_non_null(err);
		hutch_err_free(&err);
	}
	return r;
}

static void test_auth_json(void **state)
{
	char *up = NULL;
	/* "alice:s3cret" */
	const char *doc = "{\"auths\": {\"127.0.0.1:5000\": {\"auth\": \"YWxpY2U6czNjcmV0\"},"
			  "\"https://index.docker.io/v1/\": {\"auth\": \"aHViOnB3\"},"
			  "\"reg.example/team\": {\"auth\": \"dGVhbTpwdw==\"},"
			  "\"reg.example\": {\"auth\": \"YW55OnB3\"},"
			  "\"http://Legacy.Example:8443/v2/\": {\"auth\": \"bGVnOnB3\"},"
			  "\"plain.example\": {\"username\": \"u\", \"password\": \"p:w\"},"
			  "\"token.example\": {\"identitytoken\": \"xyz\"}}}";
	assert_int_equal(lookup(doc, "127.0.0.1:5000", "app", &up), 1);
	assert_string_equal(up, "alice:s3cret");
	free(up);
	assert_int_equal(lookup(doc, "docker.io", "library/busybox", &up), 1);
	assert_string_equal(up, "hub:pw");
	free(up);
	/* a namespace key wins over the host's, but only on a '/' boundary */
	assert_int_equal(lookup(doc, "reg.example", "team/app", &up), 1);
	assert_string_equal(up, "team:pw");
	free(up);
	assert_int_equal(lookup(doc, "reg.example", "teamx/app", &up), 1);
	assert_string_equal(up, "any:pw");
	free(up);
	assert_int_equal(lookup(doc, "legacy.example:8443", "a", &up), 1);
	assert_string_equal(up, "leg:pw");
	free(up);
	assert_int_equal(lookup(doc, "Legacy.EXAMPLE:8443", "a", &up), 1);
	assert_string_equal(up, "leg:pw");
	free(up);
	assert_int_equal(lookup(doc, "plain.example", "a", &up), 1);
	assert_string_equal(up, "u:p:w");
	free(up);
	assert_int_equal(lookup(doc, "token.example", "a", &up), 0);
	assert_null(up);
	/* a port is part of the host */
	assert_int_equal(lookup(doc, "127.0.0.1:5001", "app", &up), 0);
	assert_int_equal(lookup(doc, "127.0.0.1", "app", &up), 0);
	assert_int_equal(lookup(doc, "127.0.0.1:500", "app", &up), 0);
	assert_int_equal(lookup("{}", "a", "b", &up), 0);
	assert_int_equal(lookup("{\"auths\": null}", "a", "b", &up), 0);
	assert_int_equal(lookup("{\"auths\": {}, \"credsStore\": \"desktop\"}", "a", "b", &up), 0);
}

static void test_auth_json_malformed(void **state)
{
	char *up = NULL;
	assert_int_equal(lookup("", "a", "b", &up), -1);
	assert_int_equal(lookup("[]", "a", "b", &up), -1);
	assert_int_equal(lookup("{\"auths\": []}", "a", "b", &up), -1);
	assert_int_equal(lookup("{\"auths\": {\"a\": 1}}", "a", "b", &up), -1);
	assert_int_equal(lookup("{\"auths\": {\"a\": {\"auth\": \"!!!\"}}}", "a", "b", &up), -1);
	/* base64 of "nocolon" */
	assert_int_equal(
	    lookup("{\"auths\": {\"a\": {\"auth\": \"bm9jb2xvbg==\"}}}", "a", "b", &up), -1);
	/* base64 of "a\0:b" */
	assert_int_equal(lookup("{\"auths\": {\"a\": {\"auth\": \"YQA6Yg==\"}}}", "a", "b", &up),
			 -1);
	assert_int_equal(lookup("{\"auths\": {}} trailing", "a", "b", &up), -1);
	assert_null(up);
}

static void test_base64(void **state)
{
	static const struct {
		const char *plain, *enc;
	} v[] = {{"", ""},
		 {"f", "Zg=="},
		 {"fo", "Zm8="},
		 {"foo", "Zm9v"},
		 {"foob", "Zm9vYg=="},
		 {"fooba", "Zm9vYmE="},
		 {"foobar", "Zm9vYmFy"}};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		char *e = base64_encode(v[i].plain, strlen(v[i].plain));
		assert_string_equal(e, v[i].enc);
		free(e);
		unsigned char out[16];
		assert_int_equal(base64_decode(v[i].enc, strlen(v[i].enc), out),
				 (ssize_t)strlen(v[i].plain));
		assert_string_equal((char *)out, v[i].plain);
	}
	unsigned char out[16];
	assert_int_equal(base64_decode("Zm9vYg", 6, out), 4); /* no padding */
	assert_int_equal(base64_decode("Z", 1, out), -1);
	assert_int_equal(base64_decode("Zm9v\n", 5, out), -1);
	assert_int_equal(base64_decode("Zm=v", 4, out), -1);
}

/* ---- HTTP ---------------------------------------------------------------------- */

static void test_header_lines(void **state)
{
	const char *name, *value;
	size_t nl, vl;
	const char *line = "WWW-Authenticate:   Bearer realm=\"x\"  \r\n";
	assert_true(http_header_split(line, strlen(line), &name, &nl, &value, &vl));
	assert_int_equal(nl, 16);
	assert_memory_equal(name, "WWW-Authenticate", 16);
	assert_int_equal(vl, strlen("Bearer realm=\"x\""));
	assert_memory_equal(value, "Bearer realm=\"x\"", vl);
	line = "Location:\r\n";
	assert_true(http_header_split(line, strlen(line), &name, &nl, &value, &vl));
	assert_int_equal(vl, 0);
	assert_false(http_header_split("\r\n", 2, &name, &nl, &value, &vl));
	assert_false(http_header_split(": x\r\n", 5, &name, &nl, &value, &vl));
	assert_false(http_header_split("Bad Name: x\r\n", 13, &name, &nl, &value, &vl));
	assert_false(http_header_split("HTTP/1.1 200 OK\r\n", 17, &name, &nl, &value, &vl));

	assert_int_equal(http_status_line("HTTP/1.1 206 Partial Content\r\n", 30), 206);
	assert_int_equal(http_status_line("HTTP/2 401 \r\n", 13), 401);
	assert_int_equal(http_status_line("HTTP/1.1 200\r\n", 14), 200);
	assert_int_equal(http_status_line("HTTP/1.1 2000 OK\r\n", 18), -1);
	assert_int_equal(http_status_line("HTTP/1.1 abc OK\r\n", 17), -1);
	assert_int_equal(http_status_line("Content-Type: x\r\n", 17), -1);
}

static void test_content_range(void **state)
{
	int64_t s, e, t;
	const char *v = "bytes 100-199/200";
	assert_true(http_content_range(v, strlen(v), &s, &e, &t));
	assert_int_equal(s, 100);
	assert_int_equal(e, 199);
	assert_int_equal(t, 200);
	v = "bytes 0-0/*";
	assert_true(http_content_range(v, strlen(v), &s, &e, &t));
	assert_int_equal(t, -1);
	static const char *const bad[] = {
	    "bytes 5-4/10", "bytes 0-10/10",
	    "bytes */10",   "bytes 1-2",
	    "items 1-2/3",  "bytes -1-2/3",
	    "bytes 1-2/3x", "bytes 99999999999999999999-1/2",
	    "bytes1-2/3",   "",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_false(http_content_range(bad[i], strlen(bad[i]), &s, &e, &t));
}

static void test_url_origin(void **state)
{
	struct url_origin o;
	assert_true(url_origin_parse("https://Reg.Example/v2/", &o));
	assert_string_equal(o.scheme, "https");
	assert_string_equal(o.host, "reg.example");
	assert_int_equal(o.port, 443);
	assert_true(url_origin_parse("http://127.0.0.1:5000", &o));
	assert_int_equal(o.port, 5000);
	assert_true(url_origin_parse("http://[::1]:8080/x", &o));
	assert_string_equal(o.host, "[::1]");
	assert_int_equal(o.port, 8080);
	assert_true(url_origin_parse("https://user:pw@evil.example:444/x", &o));
	assert_string_equal(o.host, "evil.example");
	assert_int_equal(o.port, 444);
	assert_false(url_origin_parse("file:///etc/passwd", &o));
	assert_false(url_origin_parse("ftp://a/b", &o));
	assert_false(url_origin_parse("//a/b", &o));
	assert_false(url_origin_parse("/v2/x", &o));
	assert_false(url_origin_parse("http://", &o));
	assert_false(url_origin_parse("http://a:/x", &o));
	assert_false(url_origin_parse("http://a:99999/x", &o));
	assert_false(url_origin_parse("http://a b/x", &o));

	/* where Authorization may follow a redirect */
	assert_true(url_same_origin("https://reg.example/v2/a", "https://REG.example:443/blob"));
	assert_true(url_same_origin("http://127.0.0.1:5000/v2/", "http://127.0.0.1:5000/other?x"));
	assert_false(url_same_origin("http://127.0.0.1:5000/v2/", "http://127.0.0.1:5001/v2/"));
	assert_false(url_same_origin("https://reg.example/v2/", "http://reg.example/v2/"));
	assert_false(url_same_origin("https://reg.example/v2/", "https://storage.example/b"));
	assert_false(url_same_origin("https://reg.example/", "https://reg.example.evil.com/"));
	assert_false(url_same_origin("https://reg.example/", "https://reg.example@evil.com/"));
	assert_false(url_same_origin("https://reg.example/", "https://localhost/"));
	assert_false(url_same_origin("https://reg.example/", "file:///reg.example/"));
}

static void test_bodies(void **state)
{
	const char *b = "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest "
			"unknown\",\"detail\":{\"Tag\":\"nope\"}}]}";
	char *t = registry_error_text(b, strlen(b));
	assert_string_equal(t, "MANIFEST_UNKNOWN: manifest unknown");
	free(t);
	b = "{\"errors\":[{\"code\":\"UNAUTHORIZED\"},{\"message\":\"a\\nb\"},3]}";
	t = registry_error_text(b, strlen(b));
	assert_string_equal(t, "UNAUTHORIZED; a\\x0ab");
	free(t);
	assert_null(registry_error_text("<html>", 6));
	assert_null(registry_error_text("{\"errors\":{}}", 13));
	assert_null(registry_error_text("{\"errors\":[]}", 13));

	char *tok;
	int exp;
	struct hutch_err *err = NULL;
	b = "{\"token\":\"abc.def\",\"expires_in\":300}";
	assert_int_equal(registry_token_parse(b, strlen(b), &tok, &exp, &err), 0);
	assert_string_equal(tok, "abc.def");
	assert_int_equal(exp, 300);
	free(tok);
	b = "{\"access_token\":\"xyz\"}";
	assert_int_equal(registry_token_parse(b, strlen(b), &tok, &exp, &err), 0);
	assert_string_equal(tok, "xyz");
	free(tok);
	static const char *const bad[] = {"{}",
					  "[]",
					  "{\"token\":\"a\\r\\nX-Evil: 1\"}",
					  "{\"token\":\"a b\"}",
					  "{\"token\":\"\"}",
					  "nope"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(registry_token_parse(bad[i], strlen(bad[i]), &tok, &exp, &err),
				 -1);
		assert_null(tok);
		hutch_err_free(&err);
	}
	t = url_query_escape("repository:a/b:pull,push x&y=z");
	assert_string_equal(t, "repository%3Aa%2Fb%3Apull%2Cpush%20x%26y%3Dz");
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ref_valid),	   cmocka_unit_test(test_ref_invalid),
	    cmocka_unit_test(test_loopback),	   cmocka_unit_test(test_www_auth_bearer),
	    cmocka_unit_test(test_www_auth_forms), cmocka_unit_test(test_www_auth_malformed),
	    cmocka_unit_test(test_auth_json),	   cmocka_unit_test(test_auth_json_malformed),
	    cmocka_unit_test(test_base64),	   cmocka_unit_test(test_header_lines),
	    cmocka_unit_test(test_content_range),  cmocka_unit_test(test_url_origin),
	    cmocka_unit_test(test_bodies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
