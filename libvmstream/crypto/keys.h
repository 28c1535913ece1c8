/* SPDX-License-Identifier: MIT */
/* Key schedule of FORMAT.md section 5. */
#ifndef VMS_KEYS_H
#define VMS_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vmstream.h"
#include "base/limits.h" /* VMS_EPOCH_BYTES, VMS_EPOCH_RECORDS */

#define VMS_NONCE_LEN 12

struct vms_keysched {
	uint8_t prk[32];
	uint8_t stream_id[16];
	uint64_t preamble_sum;
	uint8_t cipher;
};

/* PRK = HKDF-Extract(SHA-256, salt, ikm). */
int vms_keysched_init(struct vms_keysched *ks, const uint8_t salt[VMS_SALT_LEN],
		      const uint8_t ikm[VMS_KEY_LEN], const uint8_t stream_id[16],
		      uint64_t preamble_sum, uint8_t cipher);
/* key(lane, epoch) = HKDF-Expand(PRK, info, 32). */
int vms_keysched_key(const struct vms_keysched *ks, uint16_t lane, uint16_t epoch,
		     uint8_t key[VMS_KEY_LEN]);
void vms_keysched_wipe(struct vms_keysched *ks);
void vms_nonce(uint8_t nonce[VMS_NONCE_LEN], uint16_t lane, uint16_t epoch, uint64_t seq);

struct vms_stage;

/* A worker's cipher context for one (lane, epoch), re-keyed only when the
 * record it is given has another (rotation is rare: every 2^34 bytes). */
struct vms_lane_key {
	void *ctx;
	uint16_t lane, epoch;
	bool valid;
};

int vms_lane_key_use(struct vms_lane_key *lk, const struct vms_stage *cipher,
		     const struct vms_keysched *ks, uint16_t lane, uint16_t epoch, size_t max_chunk);
void vms_lane_key_free(struct vms_lane_key *lk, const struct vms_stage *cipher);

/* Seal (encrypt = true) or open the acknowledgement frame in place
 * (FORMAT.md 9.4): frame = 8-byte header (the AAD) || body (|| tag). */
int vms_ack_crypt(const struct vms_stage *cipher, const uint8_t salt[VMS_SALT_LEN],
		  const uint8_t ikm[VMS_KEY_LEN], const uint8_t stream_id[16], uint64_t preamble_sum,
		  uint8_t *frame, size_t body_len, bool encrypt);

#endif
