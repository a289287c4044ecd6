/* Private to runtime/: the container's /etc/hostname, /etc/hosts and
 * /etc/resolv.conf, as Docker makes them. */
#pragma once
#include <stdbool.h>

#include "runtime/runtime.h"

enum etc_file { ETC_HOSTNAME = 0, ETC_HOSTS, ETC_RESOLV_CONF, ETC_FILES };
/* Their names in the container's state dir, and where they go in the container. */
extern const char *const etc_file_names[ETC_FILES];
extern const char *const etc_file_paths[ETC_FILES];

/* False where a mount of the spec covers the file (the user's own wins: a mount
 * on the same path, or a bind of a directory above it). */
bool etc_file_wanted(const struct hutch_spec *spec, enum etc_file f);

/* The contents (caller frees). host_hosts and host_resolv are the host's files
 * (NULL when missing); they are foreign input (tests/fuzz/fuzz_etcfiles.c). */
char *etc_hostname_content(const struct hutch_spec *spec);
char *etc_hosts_content(const struct hutch_spec *spec, const char *host_hosts);
char *etc_resolv_conf_content(const struct hutch_spec *spec, const char *host_resolv);

/* What the container's process needs to mount them: made by the caller before
 * the clone (so the child only writes memory to a tmpfs). */
struct etc_files {
	char *content[ETC_FILES]; /* NULL: not wanted */
	/* RUN/cache/etc-base: a lowest overlay layer of empty /etc files, so that an
	 * image without them still has something to mount over (no file created in
	 * the container's rw layer on the start path) */
	char *base_layer;
	char *stage_dir; /* RUN/cache/etc-stage: an empty dir, where the container's
			  * tmpfs is attached (in its own mount namespace) while the
			  * files are written and cloned */
};
int etc_files_prepare(const struct hutch_runtime *rt, const struct hutch_spec *spec,
		      struct etc_files *out, struct hutch_err **err);
void etc_files_free(struct etc_files *e);
static inline void etc_files_freep(struct etc_files *e)
{
	etc_files_free(e);
}
#define _cleanup_etc_files_ __attribute__((cleanup(etc_files_freep)))
