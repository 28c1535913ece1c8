/* SPDX-License-Identifier: MIT */
#ifndef VMS_INTERNAL_H
#define VMS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vmstream.h"
#include "base/abi.h"

/* Copy stats out to a caller's struct of any (older or newer) size. */
static inline int vms_stats_copy_out(struct vms_stats *dst, const struct vms_stats *src)
{
	return vms_struct_out(dst, src, sizeof(*src), sizeof(uint32_t), "stats");
}

/* Tests only: rotate the key epoch after `bytes` sealed bytes instead of
 * FORMAT.md's 2^34, so rotation can be exercised on small streams. */
void vms_writer_set_epoch_limit(struct vms_writer *w, uint64_t bytes);

/* Where a stream goes to or comes from: one fd (file, pipe, stdin/stdout)
 * or the lanes of an authenticated network session. */
struct vms_transport {
	unsigned nlanes;
	int fds[VMS_LANES_MAX];
	bool own_fds;              /* close them on free */
	bool session;              /* network session: ACK, half-close */
	bool keyed;                /* session keys below are valid */
	bool allow_plaintext;      /* receiver accepts unencrypted records */
	uint8_t salt[VMS_SALT_LEN];/* session salt (sender's choice, in HELLO) */
	uint8_t ikm_c2s[VMS_LANES_MAX][VMS_KEY_LEN];
	uint8_t ikm_s2c[VMS_LANES_MAX][VMS_KEY_LEN];
	uint32_t engine;           /* enum vms_io_kind */
	int idle_timeout_ms;       /* -1 = none */
	uint64_t rate_limit;
	char peer[256];
};

void vms_transport_init_fd(struct vms_transport *t, int fd);
void vms_transport_release(struct vms_transport *t); /* wipe keys, close owned fds */

/* Take in options (stream/options.c): size field, defaults, every bound. */
int vms_writer_opts_take(struct vms_writer_opts *o, const struct vms_writer_opts *in);
int vms_reader_opts_take(struct vms_reader_opts *o, const struct vms_reader_opts *in);
/* Buffer slots of `slot` bytes within a memory budget (0 = the default,
 * grown to min_slots); at most `want`. VMS_EINVAL naming the budget needed. */
int vms_budget_slots(uint64_t memory, size_t slot, unsigned min_slots, unsigned want,
		     const char *what, unsigned *nslots);

int vms_writer_open_transport(struct vms_writer **out, struct vms_transport *t,
			      const struct vms_writer_opts *opts);
int vms_reader_open_transport(struct vms_reader **out, struct vms_transport *t,
			      const struct vms_reader_opts *opts);

/* Destination: a device's load result for the acknowledgement (0 or a
 * negative enum vms_err), by stream device index. */
int vms_reader_set_device_result(struct vms_reader *r, uint32_t device, int32_t result);

#endif
