/* For fuzz_stackfile, fuzz_compose and tests/unit/test_stack_out.c: a model that loaded, written
 * out as a hutch.ini (`hutch stack config`) and loaded again, is the same model (their JSON
 * documents equal, less what a hutch.ini has no key for: compose's declared networks and
 * volumes). The writer may refuse only what no INI line can hold, and says so. */
#pragma once
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "supervisor/stack.h"
#include "supervisor/supervisor.h"

static inline struct json_object *roundtrip_json(const struct hutch_stack *s)
{
	char *text = NULL;
	struct hutch_err *err = NULL;
	if (hutch_stack_write(s, HUTCH_STACK_JSON, &text, NULL, NULL, &err) < 0)
		abort();
	struct json_object *j = json_tokener_parse(text);
	free(text);
	if (!j)
		abort();
	json_object_object_del(j, "networks");
	json_object_object_del(j, "volumes");
	return j;
}

static inline void roundtrip_check(const struct hutch_stack *a, const char *ini_path, char **envp)
{
	char *text = NULL;
	struct hutch_err *err = NULL;
	if (hutch_stack_write(a, HUTCH_STACK_INI, &text, NULL, NULL, &err) < 0) {
		if (text || !err ||
		    (!strstr(err->msg, "an INI line holds") &&
		     !strstr(err->msg, "it holds a line break") &&
		     !strstr(err->msg, "both kinds of quote")))
			abort();
		hutch_err_free(&err);
		return;
	}
	FILE *f = fopen(ini_path, "w");
	if (!f || fputs(text, f) == EOF || fclose(f) != 0)
		abort();
	struct hutch_stack *b = NULL;
	if (stack_load_env(ini_path, envp, &b, &err) < 0) {
		fprintf(stderr, "the INI written does not load: %s\n%s\n", err->msg, text);
		abort();
	}
	struct json_object *ja = roundtrip_json(a), *jb = roundtrip_json(b);
	if (!json_object_equal(ja, jb)) {
		fprintf(stderr, "not the same model after the INI:\n%s\n%s\n%s\n",
			json_object_to_json_string(ja), json_object_to_json_string(jb), text);
		abort();
	}
	json_object_put(ja);
	json_object_put(jb);
	hutch_stack_free(b);
	free(text);
	unlink(ini_path);
}
