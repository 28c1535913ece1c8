/* SPDX-License-Identifier: MIT */
/*
 * The acknowledgement frame (FORMAT.md 9.4) as both sides handle it: the
 * receiver builds and seals it, the sender checks, opens and decodes it.
 * The body codec is format/ack.c; sealing is crypto/keys.c; this is the one
 * place that knows the frame around them.
 */
#ifndef VMS_STREAM_ACK_H
#define VMS_STREAM_ACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "format/ack.h"
#include "format/format.h"

/* What seals an acknowledgement: the stream (its cipher, salt, id and
 * preamble checksum) and the lane-0 receiver-to-sender key material; keyed
 * false for an unauthenticated session (XXH3 trailer). */
struct vms_ack_keys {
	bool keyed;
	const struct vms_preamble *pre;
	const uint8_t *ikm_s2c;
};

/* Bytes after the body: AEAD tag or XXH3. */
static inline size_t vms_ack_trailer(bool keyed)
{
	return keyed ? VMS_AEAD_TAG : 8;
}

/* Receiver: a malloc'ed frame of *len bytes for status/text and, when
 * status is 0, ndev device entries. */
int vms_ack_build(const struct vms_ack_keys *k, const struct vms_ack *a,
		  const struct vms_ack_dev *devs, uint8_t **frame, size_t *len);

/* Sender: the frame header in hdr (8 bytes) announces body_len; at most
 * max_body is acceptable (a refusal, or an entry per device begun).
 * VMS_EPROTO naming why. */
int vms_ack_header(const uint8_t hdr[VMS_ACK_FRAME_HDR], uint32_t max_body, uint32_t *body_len);
/* Sender: authenticate (or checksum) the whole frame in place and decode
 * its body into a. VMS_EAUTH / VMS_EPROTO / the body decoder's code. */
int vms_ack_open(const struct vms_ack_keys *k, uint8_t *frame, uint32_t body_len,
		 struct vms_ack *a);

#endif
