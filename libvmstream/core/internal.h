/* SPDX-License-Identifier: MIT */
#ifndef VMS_INTERNAL_H
#define VMS_INTERNAL_H

#include <stddef.h>

/* Buffers for the hot path: allocated once, touched once so that no page
 * fault happens while data flows (FORMAT-independent; see DESIGN.md). */
void *vms_alloc_prefault(size_t len);
void vms_free_prefault(void *p, size_t len);

#include <stdint.h>

struct vms_writer;
/* Tests only: rotate the key epoch after `bytes` sealed bytes instead of
 * FORMAT.md's 2^34, so rotation can be exercised on small streams. */
void vms_writer_set_epoch_limit(struct vms_writer *w, uint64_t bytes);

#endif
