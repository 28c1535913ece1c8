/* SPDX-License-Identifier: MIT */
/*
 * Size-versioned structs across the API: every options struct is taken in,
 * and every output struct copied out, by these two routines (STYLE.md: the
 * first field of such a struct is its size).
 */
#ifndef VMS_BASE_ABI_H
#define VMS_BASE_ABI_H

#include <stddef.h>
#include <stdint.h>

/* Take in a caller's options struct: `dst` (dst_size bytes) holds the
 * defaults; src (NULL = keep them) starts with a u32 size that must be at
 * least min_size (the first release's struct) and at most dst_size (a
 * caller built against a newer header is refused, since its new fields
 * would be ignored silently). VMS_EINVAL naming `what` otherwise. */
int vms_opts_take(void *dst, size_t dst_size, const void *src, size_t min_size,
		  const char *what);

/* Copy an output struct out to a caller's struct whose u32 size field says
 * how much of it the caller knows (min_size .. any: a caller built against
 * an older header gets the prefix it knows, a newer one the rest zeroed).
 * The caller's size field is kept. VMS_EINVAL naming `what` if dst is NULL
 * or its size is below min_size. */
int vms_struct_out(void *dst, const void *src, size_t src_size, size_t min_size,
		   const char *what);

#endif
