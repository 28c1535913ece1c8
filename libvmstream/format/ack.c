/* SPDX-License-Identifier: MIT */
#include <string.h>
#include "format/ack.h"
#include "format/cursor.h"
#include "vmstream.h"

size_t vms_ack_body_len(uint32_t ndev, size_t text_len)
{
	return VMS_ACK_BODY_FIXED + text_len + (size_t)ndev * VMS_ACK_ENTRY;
}

size_t vms_ack_encode_body(const struct vms_ack *a, const struct vms_ack_dev *devs, uint8_t *out)
{
	size_t tl = strlen(a->text);
	uint8_t *q = out;

	if (tl > VMS_ACK_TEXT_MAX)
		tl = VMS_ACK_TEXT_MAX;
	vms_put_u32(q, (uint32_t)a->status);
	vms_put_u32(q + 4, 0);
	vms_put_u64(q + 8, a->records);
	vms_put_u64(q + 16, a->raw_bytes);
	vms_put_u32(q + 24, a->ndev);
	vms_put_u16(q + 28, (uint16_t)tl);
	vms_put_u64(q + 30, 0); /* reserved */
	q += VMS_ACK_BODY_FIXED;
	memcpy(q, a->text, tl);
	q += tl;
	for (uint32_t i = 0; i < a->ndev; i++) {
		vms_put_u64(q, devs[i].bytes);
		vms_put_u64(q + 8, devs[i].digest);
		vms_put_u32(q + 16, (uint32_t)devs[i].result);
		vms_put_u32(q + 20, 0);
		q += VMS_ACK_ENTRY;
	}
	return (size_t)(q - out);
}

int vms_ack_decode_body(struct vms_ack *a, const uint8_t *in, size_t n, const char **why)
{
	struct vms_cur c = vms_cur_init(in, n);
	uint32_t status, res32;
	uint16_t tl;
	uint64_t res64;
	const uint8_t *t;

	memset(a, 0, sizeof(*a));
	if (!(vms_cur_u32(&c, &status) && vms_cur_u32(&c, &res32) && vms_cur_u64(&c, &a->records) &&
	      vms_cur_u64(&c, &a->raw_bytes) && vms_cur_u32(&c, &a->ndev) && vms_cur_u16(&c, &tl) &&
	      vms_cur_u64(&c, &res64)))
		return *why = "acknowledgement too short", VMS_EPROTO;
	if (res32 != 0 || res64 != 0)
		return *why = "acknowledgement reserved field not zero", VMS_EPROTO;
	if (tl > VMS_ACK_TEXT_MAX || !vms_cur_ptr(&c, tl, &t))
		return *why = "acknowledgement text length inconsistent", VMS_EPROTO;
	if (a->ndev > VMS_DEVICES_MAX ||
	    vms_cur_left(&c) != (size_t)a->ndev * VMS_ACK_ENTRY)
		return *why = "acknowledgement device table length inconsistent", VMS_EPROTO;
	a->status = (int32_t)status;
	memcpy(a->text, t, tl);
	a->text[tl] = '\0';
	a->entries = c.pos;
	return 0;
}

void vms_ack_entry(const struct vms_ack *a, uint32_t i, struct vms_ack_dev *d)
{
	const uint8_t *p = a->entries + (size_t)i * VMS_ACK_ENTRY;

	d->bytes = vms_get_u64(p);
	d->digest = vms_get_u64(p + 8);
	d->result = (int32_t)(uint32_t)vms_get_u64(p + 16);
}

void vms_ack_frame_hdr(uint8_t out[VMS_ACK_FRAME_HDR], uint32_t body_len)
{
	vms_put_u32(out, VMS_ACK_MAGIC);
	vms_put_u32(out + 4, body_len);
}
