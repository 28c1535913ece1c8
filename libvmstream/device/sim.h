/* SPDX-License-Identifier: MIT */
/*
 * Simulated device (sim.c): its spec and its self-describing image format.
 *
 * A sim device's state is `size` bytes of content generated from (profile,
 * seed), in 4 KiB blocks; each pre-copy round "dirties" a run of blocks
 * (the block's version goes up, so its bytes change). What the device emits
 * is a sequence of segments, all little-endian:
 *
 *   header (64 bytes)
 *     0  magic "VMSSIMG1"
 *     8  u16 version (2), u16 type (1 FULL, 2 DELTA), u32 profile
 *    16  u64 size       device size = length of a FULL segment
 *    24  u64 seed
 *    32  u64 gen        pre-copy rounds applied to the content
 *    40  u64 dirty      bytes dirtied per round
 *    48  u64 payload    payload length in bytes
 *    56  u64 XXH3-64 of header bytes 0..55
 *   payload
 *     FULL:  the content, size - 72 bytes
 *     DELTA: for each dirtied block: u64 block index, then the block's bytes
 *   trailer: u64 XXH3-64 of the payload
 *
 * PRE_COPY emits FULL(gen) first (the "initial bytes"), then a DELTA per
 * round (and, with fault=reinit, FULL(gen) again as new initial data);
 * STOP_COPY emits FULL(current gen) and ends. A loading device checks
 * each header, regenerates every block it receives and compares it byte for
 * byte, checks both checksums, and at RESUMING -> STOP accepts the load only
 * if the stream ended right after a FULL segment.
 */
#ifndef VMS_DEVICE_SIM_H
#define VMS_DEVICE_SIM_H

#include <stdbool.h>
#include <stdint.h>

#define VMS_SIM_MAGIC "VMSSIMG1"
/* 2: random blocks come from a pool (sim.c fill_random); 1 generated them
 * word by word. A version-1 image is refused as such. */
#define VMS_SIM_VERSION 2u
#define VMS_SIM_HDR 64u
#define VMS_SIM_TRAILER 8u
#define VMS_SIM_OVERHEAD (VMS_SIM_HDR + VMS_SIM_TRAILER)
#define VMS_SIM_BLOCK 4096u
#define VMS_SIM_SIZE_MAX (64ull << 30)
#define VMS_SIM_SEG_FULL 1u
#define VMS_SIM_SEG_DELTA 2u

enum vms_sim_profile {
	VMS_SIM_RANDOM = 0,
	VMS_SIM_ZEROS = 1,
	VMS_SIM_SPARSE = 2,
	VMS_SIM_TEXT = 3,
	VMS_SIM_MIXED = 4,
};

enum vms_sim_fault {
	VMS_SIM_FAULT_NONE = 0,
	VMS_SIM_FAULT_READ = 1,   /* the fault_at-th read call fails (sticky) */
	VMS_SIM_FAULT_RESUME = 2, /* RESUMING -> STOP rejects even a good image */
	VMS_SIM_FAULT_SLOW = 3,   /* reads paced to `slow` bytes per second */
	VMS_SIM_FAULT_REINIT = 4, /* the fault_at-th precopy info call stages the
				     full image again and reports it as new
				     initial data (VMS_PRECOPY_REINIT) */
};

struct vms_sim_conf {
	uint64_t size;       /* bytes of a full image, >= VMS_SIM_OVERHEAD */
	uint64_t dirty;      /* bytes dirtied per pre-copy round */
	uint64_t seed;
	uint64_t slow;       /* read pacing in bytes/s, 0 = none */
	uint64_t fault_at;   /* fault=read: which read call fails; fault=reinit:
				which precopy info call reports REINIT (1 = first) */
	uint32_t profile;    /* enum vms_sim_profile */
	uint32_t fault;      /* enum vms_sim_fault */
	bool precopy;        /* advertise PRE_COPY */
	bool p2p;            /* advertise P2P */
};

/* Defaults: size=1M, profile=mixed, dirty=0, seed=1, precopy=1, p2p=1, no
 * fault. Keys: size, profile, dirty, seed, precopy, p2p, fault, fault_at,
 * slow. Sizes take K/M/G/T binary suffixes. Strict: unknown or repeated
 * keys, bad numbers and out-of-range values are VMS_EINVAL with a message. */
int vms_sim_parse(const char *spec, struct vms_sim_conf *conf);

/* Parse "123", "4K", "64M", "1G" (binary suffixes). 0 or VMS_EINVAL. */
int vms_sim_parse_size(const char *s, uint64_t *out);

#endif
