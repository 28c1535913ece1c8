/* SPDX-License-Identifier: MIT */
/*
 * Rate limit of a writer's output: a token bucket in wire bytes with one
 * chunk of burst. Pure (the caller passes the clock), unit-tested alone.
 */
#ifndef VMS_IO_PACE_H
#define VMS_IO_PACE_H

#include <stdint.h>

struct vms_pace {
	uint64_t rate;      /* bytes per second; 0 = unlimited */
	uint64_t burst;     /* bytes that may go out at once (a chunk) */
	uint64_t t0_ns;     /* when the first byte was due; 0 = not yet */
	uint64_t bytes;     /* bytes sent so far */
};

/* Nanoseconds to wait at now_ns before `bytes` more may go out (0 = now). */
uint64_t vms_pace_delay(struct vms_pace *p, uint64_t now_ns, uint64_t bytes);

static inline void vms_pace_sent(struct vms_pace *p, uint64_t bytes)
{
	p->bytes += bytes;
}

#endif
