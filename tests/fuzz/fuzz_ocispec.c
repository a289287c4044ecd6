/* An OCI bundle's config.json (runtime/ocispec.c), which hutch-oci reads
 * from whatever engine calls it, and exec's --process file. What comes out
 * must keep the reader's promises: the spec is an OCI one with an absolute
 * root.path and absolute mount destinations and commands, it survives the
 * runtime's own spec JSON both ways, and validation never crashes on it. */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "runtime/runtime.h"
#include "runtime/runtime_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hutch_oci_config *cfg = NULL;
	struct hutch_err *err = NULL;
	if (hutch_oci_config_parse((const char *)data, size, "/bundle", &cfg, &err) == 0) {
		struct hutch_spec *s = cfg->spec;
		if (err || !s->oci || !s->root.path || s->root.path[0] != '/' ||
		    !s->process.n_args || !s->process.cwd || s->process.cwd[0] != '/')
			abort();
		for (size_t i = 0; i < s->n_mounts; i++)
			if (s->mounts[i].destination[0] != '/' || !s->mounts[i].type ||
			    !s->mounts[i].source)
				abort();
		oci_spec_set_id(s, "fuzz");
		char *json = hutch_spec_to_json(s);
		struct hutch_spec *back = NULL;
		if (hutch_spec_from_json(json, strlen(json), &back, &err) < 0)
			abort();
		char *again = hutch_spec_to_json(back);
		if (strcmp(json, again))
			abort();
		free(json);
		free(again);
		hutch_spec_free(back);
		hutch_spec_validate(s, &err);
		hutch_err_free(&err);
		hutch_oci_config_free(cfg);
	} else if (!err || !err->msg || cfg) {
		abort();
	}
	hutch_err_free(&err);
	struct hutch_process p;
	if (hutch_oci_process_parse((const char *)data, size, &p, &err) == 0) {
		if (err || !p.n_args || !p.cwd)
			abort();
		hutch_process_clear(&p);
	}
	hutch_err_free(&err);
	return 0;
}
