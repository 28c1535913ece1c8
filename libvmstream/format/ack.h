/* SPDX-License-Identifier: MIT */
/* The receiver's acknowledgement (FORMAT.md section 9.4): pure encode/decode. */
#ifndef VMS_ACK_H
#define VMS_ACK_H

#include <stddef.h>
#include <stdint.h>
#include "base/limits.h"

#define VMS_ACK_MAGIC 0x41534d56u /* "VMSA" */

struct vms_ack_dev {
	uint64_t bytes;
	uint64_t digest;
	int32_t result;
};

struct vms_ack {
	int32_t status;
	uint64_t records;
	uint64_t raw_bytes;
	uint32_t ndev;
	char text[VMS_ACK_TEXT_MAX + 1];
	const uint8_t *entries; /* decode: ndev raw entries inside the body */
};

size_t vms_ack_body_len(uint32_t ndev, size_t text_len);
/* Encode the body; devs may be NULL when ndev == 0. */
size_t vms_ack_encode_body(const struct vms_ack *a, const struct vms_ack_dev *devs, uint8_t *out);
int vms_ack_decode_body(struct vms_ack *a, const uint8_t *in, size_t n, const char **why);
void vms_ack_entry(const struct vms_ack *a, uint32_t i, struct vms_ack_dev *d);
void vms_ack_frame_hdr(uint8_t out[VMS_ACK_FRAME_HDR], uint32_t body_len);

#endif
