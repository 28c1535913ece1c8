/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include "base/error.h"
#include "base/hash.h"
#include "crypto/keys.h"
#include "format/cursor.h"
#include "stage/stage.h"
#include "stream/ack.h"

/* The stream's cipher; AES-256-GCM when its records are not encrypted. */
static const struct vms_stage *ack_cipher(const struct vms_preamble *pre)
{
	return vms_stage_find_id(VMS_STAGE_CIPHER,
				 pre->cipher ? pre->cipher : VMS_CIPHER_AES_256_GCM);
}

int vms_ack_build(const struct vms_ack_keys *k, const struct vms_ack *a,
		  const struct vms_ack_dev *devs, uint8_t **frame, size_t *len)
{
	size_t body = vms_ack_body_len(a->ndev, strlen(a->text));
	size_t flen = VMS_ACK_FRAME_HDR + body + vms_ack_trailer(k->keyed);
	uint8_t *f = malloc(flen);
	int err = 0;

	if (!f)
		return vms_fail(VMS_ENOMEM, "out of memory for the acknowledgement");
	vms_ack_frame_hdr(f, (uint32_t)body);
	vms_ack_encode_body(a, devs, f + VMS_ACK_FRAME_HDR);
	if (k->keyed)
		err = vms_ack_crypt(ack_cipher(k->pre), k->pre->salt, k->ikm_s2c, k->pre->stream_id,
				    k->pre->sum, f, body, true);
	else
		vms_put_u64(f + VMS_ACK_FRAME_HDR + body, vms_xxh3(f, VMS_ACK_FRAME_HDR + body));
	if (err) {
		free(f);
		return err;
	}
	*frame = f;
	*len = flen;
	return 0;
}

int vms_ack_header(const uint8_t hdr[VMS_ACK_FRAME_HDR], uint32_t max_body, uint32_t *body_len)
{
	if ((uint32_t)vms_get_u64(hdr) != VMS_ACK_MAGIC)
		return vms_fail(VMS_EPROTO, "receiver sent something that is not an acknowledgement");
	*body_len = (uint32_t)(vms_get_u64(hdr) >> 32);
	if (*body_len > max_body)
		return vms_fail(VMS_EPROTO, "acknowledgement too long (%u bytes; at most %u expected)",
				*body_len, max_body);
	return 0;
}

int vms_ack_open(const struct vms_ack_keys *k, uint8_t *frame, uint32_t body_len,
		 struct vms_ack *a)
{
	const char *why;
	int err;

	if (k->keyed) {
		if (vms_ack_crypt(ack_cipher(k->pre), k->pre->salt, k->ikm_s2c, k->pre->stream_id,
				  k->pre->sum, frame, body_len, false))
			return vms_fail(VMS_EAUTH, "acknowledgement failed authentication");
	} else if (vms_xxh3(frame, VMS_ACK_FRAME_HDR + body_len) !=
		   vms_get_u64(frame + VMS_ACK_FRAME_HDR + body_len)) {
		return vms_fail(VMS_EPROTO, "acknowledgement checksum mismatch");
	}
	err = vms_ack_decode_body(a, frame + VMS_ACK_FRAME_HDR, body_len, &why);
	return err ? vms_fail(err, "acknowledgement: %s", why) : 0;
}
