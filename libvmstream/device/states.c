/* SPDX-License-Identifier: MIT */
/*
 * The VFIO v2 migration state machine, as a pure function.
 *
 * vms_mig_next_state() reimplements vfio_mig_get_next_state() of Linux
 * drivers/vfio/vfio_main.c (PRE_COPY arcs since Linux 6.2, commit
 * 4db52602a607 "vfio: Extend the device migration protocol with PRE_COPY";
 * table unchanged in mainline, read at torvalds/linux 037dd1308c6d). The
 * kernel drivers call it to split a combination transition into single arcs;
 * we call it for the same reason, so that a backend is only ever asked for a
 * single arc and the path is the one the kernel itself would take.
 */
#include "device/device.h"

#define ST_ERROR VMS_DEV_ERROR
#define ST_STOP VMS_DEV_STOP
#define ST_RUNNING VMS_DEV_RUNNING
#define ST_STOP_COPY VMS_DEV_STOP_COPY
#define ST_RESUMING VMS_DEV_RESUMING
#define ST_RUNNING_P2P VMS_DEV_RUNNING_P2P
#define ST_PRE_COPY VMS_DEV_PRE_COPY
#define ST_PRE_COPY_P2P VMS_DEV_PRE_COPY_P2P

/*
 * next[cur][target]: the first step from cur towards target when every
 * optional state is supported. Shortest paths; saving-group states
 * (PRE_COPY, PRE_COPY_P2P, STOP_COPY) are never interior steps of a path
 * that does not stay inside the group; STOP_COPY -> PRE_COPY(_P2P) is not an
 * arc (ERROR).
 */
static const uint8_t next_tab[VMS_DEV_NSTATES][VMS_DEV_NSTATES] = {
	[ST_STOP] = {
		[ST_STOP] = ST_STOP,
		[ST_RUNNING] = ST_RUNNING_P2P,
		[ST_PRE_COPY] = ST_RUNNING_P2P,
		[ST_PRE_COPY_P2P] = ST_RUNNING_P2P,
		[ST_STOP_COPY] = ST_STOP_COPY,
		[ST_RESUMING] = ST_RESUMING,
		[ST_RUNNING_P2P] = ST_RUNNING_P2P,
		[ST_ERROR] = ST_ERROR,
	},
	[ST_RUNNING] = {
		[ST_STOP] = ST_RUNNING_P2P,
		[ST_RUNNING] = ST_RUNNING,
		[ST_PRE_COPY] = ST_PRE_COPY,
		[ST_PRE_COPY_P2P] = ST_RUNNING_P2P,
		[ST_STOP_COPY] = ST_RUNNING_P2P,
		[ST_RESUMING] = ST_RUNNING_P2P,
		[ST_RUNNING_P2P] = ST_RUNNING_P2P,
		[ST_ERROR] = ST_ERROR,
	},
	[ST_PRE_COPY] = {
		[ST_STOP] = ST_RUNNING,
		[ST_RUNNING] = ST_RUNNING,
		[ST_PRE_COPY] = ST_PRE_COPY,
		[ST_PRE_COPY_P2P] = ST_PRE_COPY_P2P,
		[ST_STOP_COPY] = ST_PRE_COPY_P2P,
		[ST_RESUMING] = ST_RUNNING,
		[ST_RUNNING_P2P] = ST_RUNNING,
		[ST_ERROR] = ST_ERROR,
	},
	[ST_PRE_COPY_P2P] = {
		[ST_STOP] = ST_RUNNING_P2P,
		[ST_RUNNING] = ST_RUNNING_P2P,
		[ST_PRE_COPY] = ST_PRE_COPY,
		[ST_PRE_COPY_P2P] = ST_PRE_COPY_P2P,
		[ST_STOP_COPY] = ST_STOP_COPY,
		[ST_RESUMING] = ST_RUNNING_P2P,
		[ST_RUNNING_P2P] = ST_RUNNING_P2P,
		[ST_ERROR] = ST_ERROR,
	},
	[ST_STOP_COPY] = {
		[ST_STOP] = ST_STOP,
		[ST_RUNNING] = ST_STOP,
		[ST_PRE_COPY] = ST_ERROR,
		[ST_PRE_COPY_P2P] = ST_ERROR,
		[ST_STOP_COPY] = ST_STOP_COPY,
		[ST_RESUMING] = ST_STOP,
		[ST_RUNNING_P2P] = ST_STOP,
		[ST_ERROR] = ST_ERROR,
	},
	[ST_RESUMING] = {
		[ST_STOP] = ST_STOP,
		[ST_RUNNING] = ST_STOP,
		[ST_PRE_COPY] = ST_STOP,
		[ST_PRE_COPY_P2P] = ST_STOP,
		[ST_STOP_COPY] = ST_STOP,
		[ST_RESUMING] = ST_RESUMING,
		[ST_RUNNING_P2P] = ST_STOP,
		[ST_ERROR] = ST_ERROR,
	},
	[ST_RUNNING_P2P] = {
		[ST_STOP] = ST_STOP,
		[ST_RUNNING] = ST_RUNNING,
		[ST_PRE_COPY] = ST_RUNNING,
		[ST_PRE_COPY_P2P] = ST_PRE_COPY_P2P,
		[ST_STOP_COPY] = ST_STOP,
		[ST_RESUMING] = ST_STOP,
		[ST_RUNNING_P2P] = ST_RUNNING_P2P,
		[ST_ERROR] = ST_ERROR,
	},
	[ST_ERROR] = {
		[ST_STOP] = ST_ERROR,
		[ST_RUNNING] = ST_ERROR,
		[ST_PRE_COPY] = ST_ERROR,
		[ST_PRE_COPY_P2P] = ST_ERROR,
		[ST_STOP_COPY] = ST_ERROR,
		[ST_RESUMING] = ST_ERROR,
		[ST_RUNNING_P2P] = ST_ERROR,
		[ST_ERROR] = ST_ERROR,
	},
};

/* Capability bits a state needs. ERROR needs every bit: never a step. */
static const uint32_t state_needs[VMS_DEV_NSTATES] = {
	[ST_STOP] = VMS_DEVCAP_STOP_COPY,
	[ST_RUNNING] = VMS_DEVCAP_STOP_COPY,
	[ST_PRE_COPY] = VMS_DEVCAP_STOP_COPY | VMS_DEVCAP_PRE_COPY,
	[ST_PRE_COPY_P2P] = VMS_DEVCAP_STOP_COPY | VMS_DEVCAP_P2P | VMS_DEVCAP_PRE_COPY,
	[ST_STOP_COPY] = VMS_DEVCAP_STOP_COPY,
	[ST_RESUMING] = VMS_DEVCAP_STOP_COPY,
	[ST_RUNNING_P2P] = VMS_DEVCAP_STOP_COPY | VMS_DEVCAP_P2P,
	[ST_ERROR] = ~0u,
};

static int supported(uint32_t caps, uint32_t s)
{
	return (state_needs[s] & caps) == state_needs[s];
}

uint32_t vms_mig_next_state(uint32_t caps, uint32_t cur, uint32_t target)
{
	uint32_t next;

	if (cur >= VMS_DEV_NSTATES || target >= VMS_DEV_NSTATES)
		return VMS_DEV_ERROR;
	if (cur == VMS_DEV_ERROR || target == VMS_DEV_ERROR)
		return VMS_DEV_ERROR;
	if (!supported(caps, cur) || !supported(caps, target))
		return VMS_DEV_ERROR;

	/*
	 * Arcs through unsupported optional states are skipped over: the device
	 * sees the arc from cur to the next state it supports. The kernel's loop
	 * tests only "supported"; since ERROR needs all bits it would never
	 * leave ERROR (STOP_COPY -> PRE_COPY), so stop there explicitly. Every
	 * other chain ends within VMS_DEV_NSTATES steps (paths are shortest).
	 */
	next = next_tab[cur][target];
	for (unsigned i = 0; next != VMS_DEV_ERROR && !supported(caps, next); i++) {
		if (i >= VMS_DEV_NSTATES)
			return VMS_DEV_ERROR;
		next = next_tab[next][target];
	}
	return next;
}

const char *vms_dev_state_name(uint32_t state)
{
	static const char *const names[VMS_DEV_NSTATES] = {
		[ST_ERROR] = "ERROR",
		[ST_STOP] = "STOP",
		[ST_RUNNING] = "RUNNING",
		[ST_STOP_COPY] = "STOP_COPY",
		[ST_RESUMING] = "RESUMING",
		[ST_RUNNING_P2P] = "RUNNING_P2P",
		[ST_PRE_COPY] = "PRE_COPY",
		[ST_PRE_COPY_P2P] = "PRE_COPY_P2P",
	};

	return state < VMS_DEV_NSTATES ? names[state] : NULL;
}
