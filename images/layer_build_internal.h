/* Private to images/: the tar a build step's layer is written as (layer_build.c),
 * which store.c unpacks and keeps. */
#pragma once
#include <stddef.h>

#include "common/err.h"
#include "images/images.h"

/* Write adds as one tar to fd (ending with the two zero blocks). parents: the
 * layer dirs below (lowest first), for the attributes of the directories
 * leading to a destination. */
int layer_tar_write(int fd, const struct hutch_layer_add *adds, size_t n, char *const *parents,
		    size_t n_parents, struct hutch_err **err);
