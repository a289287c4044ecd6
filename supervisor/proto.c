/* The control protocol's requests (docs/api.md): one JSON object per line.
 * Pure, so that it is unit-tested and fuzzed (tests/fuzz/fuzz_control.c). */
#include <json-c/json.h>
#include <string.h>

#include "common/util.h"
#include "supervisor/sup_internal.h"

static const struct {
	const char *name;
	enum sup_cmd cmd;
} cmds[] = {
    {"status", SUP_CMD_STATUS},	  {"start", SUP_CMD_START}, {"stop", SUP_CMD_STOP},
    {"restart", SUP_CMD_RESTART}, {"down", SUP_CMD_DOWN},   {"subscribe", SUP_CMD_SUBSCRIBE},
    {"wait", SUP_CMD_WAIT},	  {"ready", SUP_CMD_READY}, {"up", SUP_CMD_UP},
};

void sup_request_free(struct sup_request *r)
{
	strv_free(r->services, r->n_services);
	r->services = NULL;
	r->n_services = 0;
}

static int fail(char **errmsg, struct json_object *o, struct sup_request *r, const char *fmt,
		const char *arg)
{
	*errmsg = xasprintf(fmt, arg);
	json_object_put(o);
	sup_request_free(r);
	return -1;
}

int sup_parse_request(const char *line, size_t len, struct sup_request *out, char **errmsg)
{
	memset(out, 0, sizeof(*out));
	out->timeout_ns = -1;
	*errmsg = NULL;
	if (len > SUP_REQUEST_MAX)
		return fail(errmsg, NULL, out, "request longer than %s bytes", "65536");
	if (memchr(line, '\0', len))
		return fail(errmsg, NULL, out, "request has a NUL byte%s", "");
	struct json_tokener *tok = json_tokener_new_ex(16);
	if (!tok)
		return fail(errmsg, NULL, out, "out of memory%s", "");
	struct json_object *o = json_tokener_parse_ex(tok, line, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t used = (size_t)json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o || jerr != json_tokener_success) {
		json_object_put(o);
		return fail(errmsg, NULL, out, "not a JSON object: %s",
			    json_tokener_error_desc(
				jerr == json_tokener_success ? json_tokener_continue : jerr));
	}
	for (; used < len; used++)
		if (!strchr(" \t\r\n", line[used]))
			return fail(errmsg, o, out, "text after the JSON object%s", "");
	if (!json_object_is_type(o, json_type_object))
		return fail(errmsg, o, out, "not a JSON object%s", "");
	struct json_object *cmd = NULL;
	if (!json_object_object_get_ex(o, "cmd", &cmd) ||
	    !json_object_is_type(cmd, json_type_string))
		return fail(errmsg, o, out, "no \"cmd\" string in the request%s", "");
	const char *name = json_object_get_string(cmd);
	size_t k = 0;
	for (; k < ARRAY_SIZE(cmds); k++)
		if (!strcmp(cmds[k].name, name))
			break;
	if (k == ARRAY_SIZE(cmds)) {
		_cleanup_free_ char *shown = printable(name, strlen(name) > 64 ? 64 : strlen(name));
		return fail(
		    errmsg, o, out,
		    "unknown cmd '%s' (status, start, stop, restart, down, subscribe, wait, "
		    "ready, up)",
		    shown);
	}
	out->cmd = cmds[k].cmd;
	struct json_object *svcs = NULL;
	if (json_object_object_get_ex(o, "services", &svcs)) {
		if (!json_object_is_type(svcs, json_type_array))
			return fail(errmsg, o, out, "\"services\" must be a list of names%s", "");
		size_t n = json_object_array_length(svcs);
		if (n > SUP_SERVICES_MAX)
			return fail(errmsg, o, out, "more than %s services", "1024");
		out->services = xcalloc(n + 1, sizeof(char *));
		for (size_t i = 0; i < n; i++) {
			struct json_object *s = json_object_array_get_idx(svcs, i);
			if (!json_object_is_type(s, json_type_string) ||
			    !*json_object_get_string(s))
				return fail(errmsg, o, out,
					    "\"services\" must be a list of names%s", "");
			out->services[out->n_services++] = xstrdup(json_object_get_string(s));
		}
	}
	bool needs =
	    out->cmd == SUP_CMD_START || out->cmd == SUP_CMD_STOP || out->cmd == SUP_CMD_RESTART;
	if (needs && out->n_services == 0)
		return fail(errmsg, o, out, "%s needs \"services\": a list of service names", name);
	struct json_object *t = NULL;
	if (json_object_object_get_ex(o, "timeout", &t) &&
	    !json_object_is_type(t, json_type_null)) {
		if (!json_object_is_type(t, json_type_int) &&
		    !json_object_is_type(t, json_type_double))
			return fail(errmsg, o, out, "\"timeout\" must be a number of seconds%s",
				    "");
		double secs = json_object_get_double(t);
		if (!(secs >= 0 && secs <= 31536000))
			return fail(errmsg, o, out, "\"timeout\" must be 0 to 31536000 seconds%s",
				    "");
		out->timeout_ns = (int64_t)(secs * 1e9);
	}
	json_object_put(o);
	return 0;
}
