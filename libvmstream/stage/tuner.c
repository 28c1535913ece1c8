/* SPDX-License-Identifier: MIT */
#include "stage/tuner.h"

int vms_tuner_next(int level, uint64_t span, uint64_t write_ns, uint64_t starve_ns,
		   uint64_t prod_ns)
{
	/* If the output waits for the compressors (starved while the producer
	 * is blocked on full slots), compression is the bottleneck: go faster.
	 * If the output is the bottleneck (busy writing, nothing starving),
	 * spend the idle CPU on a better ratio. */
	if (starve_ns > span / 4 && prod_ns > span / 4) {
		/* never slower than sending raw: past the fastest level, stop
		 * compressing */
		int step = starve_ns > span / 2 ? 3 : 1; /* far from balance: hurry */

		if (level == VMS_TUNER_LEVEL_MIN || level == VMS_TUNER_LEVEL_OFF)
			return VMS_TUNER_LEVEL_OFF;
		if (level > 0 && level - step < 1)
			return -1; /* zstd has no level 0 step: 0 means its default */
		return level - step < VMS_TUNER_LEVEL_MIN ? VMS_TUNER_LEVEL_MIN : level - step;
	}
	if (write_ns > span * 3 / 4 && starve_ns < span / 20) {
		level = level == VMS_TUNER_LEVEL_OFF ? VMS_TUNER_LEVEL_MIN
			: level == -1		     ? 1
						     : level + 1;
		return level > VMS_TUNER_LEVEL_MAX ? VMS_TUNER_LEVEL_MAX : level;
	}
	return level;
}
