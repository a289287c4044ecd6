/* Private to images/: the tar a build step's layer is written as (layer_build.c),
 * which store.c unpacks and keeps. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "images/images.h"

/* Write adds as one tar to fd (ending with the two zero blocks). parents: the
 * layer dirs below (lowest first), for the attributes of the directories
 * leading to a destination. */
int layer_tar_write(int fd, const struct hutch_layer_add *adds, size_t n, char *const *parents,
		    size_t n_parents, struct hutch_err **err);
/* Fill one ustar header block (name and link of at most 100 bytes; ids and
 * times too big for their field are written as 0, for pax records to say;
 * a size of 8 GiB or more in base-256). */
void tar_header_block(char h[512], const char *name, char type, mode_t mode, uint32_t uid,
		      uint32_t gid, uint64_t size, int64_t mtime, const char *link, unsigned major,
		      unsigned minor);
