/* SPDX-License-Identifier: MIT */
/*
 * The adaptive level of "auto" compression (zstd --adapt's rule), as a pure
 * function of what one measuring window saw: no clock, no locks, so it is
 * unit-tested on its own and the writer only feeds it numbers.
 */
#ifndef VMS_STAGE_TUNER_H
#define VMS_STAGE_TUNER_H

#include <stdint.h>
#include "vmstream.h"

#define VMS_TUNER_LEVEL_MIN (-7)
#define VMS_TUNER_LEVEL_MAX 9
/* Below its lowest level "auto" stores chunks raw (the compressors were the
 * bottleneck even at -7); it leaves that as soon as the output is the limit. */
#define VMS_TUNER_LEVEL_OFF VMS_LEVEL_RAW
#define VMS_TUNER_START (-1)           /* start fast; climb when the output is the limit */
#define VMS_TUNER_WINDOW_NS 20000000ull /* 20 ms */

/* One window of span_ns: the output writing (write_ns), the output waiting
 * for records (starve_ns), the producer waiting for a free slot (prod_ns).
 * Returns the level for the next window. */
int vms_tuner_next(int level, uint64_t span_ns, uint64_t write_ns, uint64_t starve_ns,
		   uint64_t prod_ns);

#endif
