/* SPDX-License-Identifier: MIT */
#ifndef VMS_STAGE_H
#define VMS_STAGE_H

#include <stdbool.h>
#include "vmstream.h"

extern const struct vms_stage vms_stage_zero;
extern const struct vms_stage vms_stage_zstd;
extern const struct vms_stage vms_stage_aes_gcm;
extern const struct vms_stage vms_stage_chacha;

/* Freeze the registry (first writer/reader open); afterwards it is read-only. */
void vms_stage_freeze(void);

/* Parse "none" | "auto" | "NAME" | "NAME:LEVEL" against the registry, by the
 * rules of vms_compress_check() (spec.c); its messages begin "compression ".
 * *stage = NULL for none; *adaptive set for auto (stage = zstd). */
int vms_compress_parse(const char *spec, const struct vms_stage **stage, int *level,
		       bool *adaptive);

/* Is the whole buffer zero? (fast path used by the zero filter) */
bool vms_all_zero(const void *p, size_t n);

#endif
