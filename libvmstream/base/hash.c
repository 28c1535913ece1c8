/* SPDX-License-Identifier: MIT */
#include "base/hash.h"

static const uint8_t zeros[64 * 1024];

void vms_digest_zeros(struct vms_digest *d, uint64_t n)
{
	while (n > 0) {
		size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);

		vms_digest_update(d, zeros, k);
		n -= k;
	}
}
