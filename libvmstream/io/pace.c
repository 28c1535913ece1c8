/* SPDX-License-Identifier: MIT */
#include "io/pace.h"

uint64_t vms_pace_delay(struct vms_pace *p, uint64_t now, uint64_t bytes)
{
	uint64_t due, over;

	if (!p->rate)
		return 0;
	if (!p->t0_ns)
		p->t0_ns = now;
	/* the time at which bytes + `bytes` may have been sent, with one
	 * burst allowed ahead */
	over = p->bytes + bytes > p->burst ? p->bytes + bytes - p->burst : 0;
	due = p->t0_ns + (uint64_t)((double)over * 1e9 / (double)p->rate);
	return due > now ? due - now : 0;
}
