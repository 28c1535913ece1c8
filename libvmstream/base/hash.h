/* SPDX-License-Identifier: MIT */
/* XXH3-64 (seed 0) through libxxhash's run-time CPU dispatch (SSE2/AVX2/AVX-512),
 * so one binary gets the vector path the machine has. */
#ifndef VMS_HASH_H
#define VMS_HASH_H

#include <stddef.h>
#include <stdint.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>
#include <xxh_x86dispatch.h>

static inline uint64_t vms_xxh3(const void *p, size_t n)
{
	return XXH3_64bits_dispatch(p, n);
}

/* Streaming digest for a device's whole byte stream. */
struct vms_digest {
	XXH3_state_t st;
};

static inline void vms_digest_init(struct vms_digest *d)
{
	XXH3_64bits_reset(&d->st);
}

static inline void vms_digest_update(struct vms_digest *d, const void *p, size_t n)
{
	XXH3_64bits_update_dispatch(&d->st, p, n);
}

static inline uint64_t vms_digest_final(const struct vms_digest *d)
{
	return XXH3_64bits_digest(&d->st);
}

/* One pass for two hashes: feeds p[0..n) to the device digest d and to the
 * record hash rec (both XXH3-64 streaming states, equal to the one-shot
 * hash), slice by slice, so each slice is read from memory once and hashed
 * twice while it sits in L1. */
#define VMS_HASH_SLICE (16u << 10)
static inline void vms_hash2_update(struct vms_digest *d, XXH3_state_t *rec, const void *p,
				    size_t n)
{
	const unsigned char *b = p;

	while (n > 0) {
		size_t k = n < VMS_HASH_SLICE ? n : VMS_HASH_SLICE;

		XXH3_64bits_update_dispatch(rec, b, k);
		XXH3_64bits_update_dispatch(&d->st, b, k);
		b += k;
		n -= k;
	}
}

/* The one-shot XXH3-64 of p[0..n), feeding the same bytes to d in one pass. */
static inline uint64_t vms_xxh3_and_digest(struct vms_digest *d, const void *p, size_t n)
{
	XXH3_state_t rec;

	XXH3_64bits_reset(&rec);
	vms_hash2_update(d, &rec, p, n);
	return XXH3_64bits_digest(&rec);
}

/* Feed n zero bytes (ZERO records count as zero bytes in the device digest). */
void vms_digest_zeros(struct vms_digest *d, uint64_t n);

#endif
