/* SPDX-License-Identifier: MIT */
/*
 * Deterministic benchmark data. Every 4 KiB page is a pure function of
 * (profile, seed, page index): any byte range can be produced on its own, by
 * any thread, in any order (offset-addressable), and the same call gives the
 * same bytes on every machine and every run. Integer arithmetic only.
 *
 * Profiles (ratios are zstd -1 over 256 MiB with the CLI; see
 * bench/README.md for the measured values):
 *   random  incompressible (wyrand output)
 *   zeros   all zero
 *   sparse  mostly zero pages, some random and some text pages (ratio ~7)
 *   text    text-like words from a skewed vocabulary (highly compressible)
 *   mixed   VM-memory-like page mix: zero pages, text pages, x86-like code,
 *           pointer tables and random pages (ratio ~2)
 *
 * Page kinds are chosen independently per page, so in mixed and sparse data
 * a whole 1 MiB chunk of zero pages practically never happens: zero-chunk
 * elision is exercised by the zeros profile only.
 *
 * Thread-safe (no state); speed is several GB/s a core, see
 * `vmstream-bench gen --profile P --size S --speed`.
 */
#ifndef VMS_BENCH_DATAGEN_H
#define VMS_BENCH_DATAGEN_H

#include <stddef.h>
#include <stdint.h>

enum vms_datagen_profile {
	VMS_DATAGEN_RANDOM = 0,
	VMS_DATAGEN_ZEROS = 1,
	VMS_DATAGEN_SPARSE = 2,
	VMS_DATAGEN_TEXT = 3,
	VMS_DATAGEN_MIXED = 4,
};
#define VMS_DATAGEN_NPROFILES 5

#define VMS_DATAGEN_PAGE 4096u
#define VMS_DATAGEN_SEED_DEFAULT 0x766d73747265616dull /* "vmstream" */

/* "random", "zeros", ... -> enum value, or -1 if unknown. */
int vms_datagen_profile_from_name(const char *name);
/* enum value -> name, or NULL if out of range. */
const char *vms_datagen_profile_name(int profile);
/* One-line description of a profile, or NULL if out of range. */
const char *vms_datagen_profile_desc(int profile);

/* Fill buf with bytes [offset, offset + len) of the (profile, seed) data
 * set. Any alignment and length; whole aligned pages are generated in place,
 * partial pages through a stack buffer. */
void vms_datagen_fill(enum vms_datagen_profile profile, uint64_t seed, uint64_t offset,
		      void *buf, size_t len);

#endif
