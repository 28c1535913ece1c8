/* SPDX-License-Identifier: MIT */
/* Allocation, page size and CPU count: the base layer's system facts. */
#ifndef VMS_BASE_ALLOC_H
#define VMS_BASE_ALLOC_H

#include <stddef.h>

/* Buffers for the hot path: allocated once, touched once so that no page
 * fault happens while data flows (DESIGN.md "I/O and performance"). */
void *vms_alloc_prefault(size_t len);
void vms_free_prefault(void *p, size_t len);
size_t vms_page_round(size_t n);
/* VMS_THREADS_AUTO: one worker per online CPU (at most VMS_THREADS_MAX). */
unsigned vms_online_cpus(void);

#endif
