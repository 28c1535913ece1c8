/* SPDX-License-Identifier: MIT */
/*
 * HELLO and REPLY (FORMAT.md section 9): the sender's offer for one lane and
 * the receiver's answer, and the receiver's policy for an offer. Pure
 * encode/decode; untrusted bytes only through the cursor.
 */
#include <stdio.h>
#include <string.h>
#include "base/error.h"
#include "format/cursor.h"
#include "format/format.h"
#include "session/internal.h"
#include "stage/stage.h"

#define HELLO_MAGIC "VMSHELO1"
#define REPLY_MAGIC "VMSREPL1"
#define HELLO_FIXED 48
#define REPLY_FIXED 22

_Static_assert(HELLO_FIXED + VMS_MAX_CODECS * (2 + VMS_CODEC_NAME_MAX) <= VMS_SESSION_MSG_MAX,
	       "the largest HELLO fits a session message");

size_t vms_hello_encode(const struct vms_hello *h, uint8_t *out)
{
	uint8_t *q = out + HELLO_FIXED;

	memcpy(out, HELLO_MAGIC, 8);
	vms_put_u16(out + 8, h->vmin);
	vms_put_u16(out + 10, h->vmax);
	vms_put_u16(out + 12, h->lane);
	vms_put_u16(out + 14, h->lanes);
	memcpy(out + 16, h->session_id, 16);
	vms_put_u32(out + 32, h->chunk_cap);
	out[36] = h->cipher;
	out[37] = 0;
	vms_put_u16(out + 38, (uint16_t)h->ncodecs);
	vms_put_u64(out + 40, h->size_hint);
	for (unsigned i = 0; i < h->ncodecs; i++) {
		size_t n = strlen(h->codecs[i].name);

		*q++ = h->codecs[i].id;
		*q++ = (uint8_t)n;
		memcpy(q, h->codecs[i].name, n);
		q += n;
	}
	return (size_t)(q - out);
}

int vms_hello_decode(struct vms_hello *h, const uint8_t *in, size_t n, const char **why)
{
	struct vms_cur c = vms_cur_init(in, n);
	const uint8_t *magic;
	uint8_t reserved;
	uint16_t ncodecs;

	memset(h, 0, sizeof(*h));
	if (!vms_cur_ptr(&c, 8, &magic) || memcmp(magic, HELLO_MAGIC, 8) != 0)
		return *why = "peer did not send a vmstream HELLO", VMS_EPROTO;
	if (!(vms_cur_u16(&c, &h->vmin) && vms_cur_u16(&c, &h->vmax) && vms_cur_u16(&c, &h->lane) &&
	      vms_cur_u16(&c, &h->lanes) && vms_cur_bytes(&c, h->session_id, 16) &&
	      vms_cur_u32(&c, &h->chunk_cap) && vms_cur_u8(&c, &h->cipher) &&
	      vms_cur_u8(&c, &reserved) && vms_cur_u16(&c, &ncodecs) &&
	      vms_cur_u64(&c, &h->size_hint)))
		return *why = "HELLO too short", VMS_EPROTO;
	if (reserved != 0)
		return *why = "HELLO reserved field not zero", VMS_EPROTO;
	if (ncodecs > VMS_MAX_CODECS)
		return *why = "HELLO lists too many codecs", VMS_EPROTO;
	for (unsigned i = 0; i < ncodecs; i++) {
		uint8_t id, len;
		const uint8_t *name;

		if (!vms_cur_u8(&c, &id) || !vms_cur_u8(&c, &len) || len < 1 ||
		    len > VMS_CODEC_NAME_MAX || !vms_cur_ptr(&c, len, &name))
			return *why = "HELLO codec entry malformed", VMS_EPROTO;
		h->codecs[i].id = id;
		memcpy(h->codecs[i].name, name, len);
		h->codecs[i].name[len] = '\0';
	}
	h->ncodecs = ncodecs;
	if (vms_cur_left(&c) != 0)
		return *why = "HELLO has trailing bytes", VMS_EPROTO;
	return 0;
}

size_t vms_reply_encode(int32_t status, uint32_t max_chunk, const char *text, uint8_t *out)
{
	size_t n = text ? strlen(text) : 0;

	if (n > VMS_SESSION_MSG_MAX - REPLY_FIXED)
		n = VMS_SESSION_MSG_MAX - REPLY_FIXED;
	memcpy(out, REPLY_MAGIC, 8);
	vms_put_u32(out + 8, (uint32_t)status);
	vms_put_u16(out + 12, VMS_FORMAT_MAJOR);
	vms_put_u16(out + 14, 0);
	vms_put_u32(out + 16, max_chunk);
	vms_put_u16(out + 20, (uint16_t)n);
	memcpy(out + REPLY_FIXED, text ? text : "", n);
	return REPLY_FIXED + n;
}

int vms_reply_decode(const uint8_t *in, size_t n, int32_t *status, char *text, size_t cap)
{
	struct vms_cur c = vms_cur_init(in, n);
	const uint8_t *magic, *t;
	uint32_t st, max_chunk;
	uint16_t version, reserved, tl;

	if (!vms_cur_ptr(&c, 8, &magic) || memcmp(magic, REPLY_MAGIC, 8) != 0 ||
	    !(vms_cur_u32(&c, &st) && vms_cur_u16(&c, &version) && vms_cur_u16(&c, &reserved) &&
	      vms_cur_u32(&c, &max_chunk) && vms_cur_u16(&c, &tl)) ||
	    !vms_cur_ptr(&c, tl, &t) || vms_cur_left(&c) != 0)
		return vms_fail(VMS_EPROTO, "receiver sent a malformed REPLY");
	*status = (int32_t)st;
	if (tl >= cap)
		tl = (uint16_t)(cap - 1);
	memcpy(text, t, tl);
	text[tl] = '\0';
	return 0;
}

uint32_t vms_hello_max_chunk(const struct vms_reader_opts *ro)
{
	return ro && ro->max_chunk ? ro->max_chunk : VMS_CHUNK_MAX;
}

int vms_hello_check(const struct vms_listener *l, const struct vms_hello *h,
		    const struct vms_reader_opts *ro, const struct vms_lane_set *s, char *why,
		    size_t cap)
{
	uint32_t max_chunk = vms_hello_max_chunk(ro);

	if (h->vmin > VMS_FORMAT_MAJOR || h->vmax < VMS_FORMAT_MAJOR) {
		snprintf(why, cap, "no common format version (sender %u..%u, receiver %u)", h->vmin,
			 h->vmax, VMS_FORMAT_MAJOR);
		return VMS_EVERSION;
	}
	if (h->lanes < 1 || h->lanes > VMS_LANES_MAX || h->lane >= h->lanes) {
		snprintf(why, cap, "bad lane %u of %u", h->lane, h->lanes);
		return VMS_EPROTO;
	}
	if (h->chunk_cap > max_chunk || h->chunk_cap < VMS_CHUNK_MIN) {
		snprintf(why, cap, "chunk size %u not accepted (receiver allows up to %u)", h->chunk_cap,
			 max_chunk);
		return VMS_ELENGTH;
	}
	for (unsigned i = 0; i < h->ncodecs; i++) {
		const struct vms_stage *st = vms_stage_find(h->codecs[i].name);

		if (!st || st->kind != VMS_STAGE_CODEC) {
			snprintf(why, cap, "codec \"%s\" is not available on the receiver",
				 h->codecs[i].name);
			return VMS_ECODEC;
		}
	}
	if (h->cipher > VMS_CIPHER_CHACHA20_POLY1305) {
		snprintf(why, cap, "unknown cipher %u", h->cipher);
		return VMS_EPROTO;
	}
	if (h->cipher != VMS_CIPHER_NONE && !l->creds) {
		snprintf(why, cap, "encryption needs authentication, and this receiver has none");
		return VMS_EKEY;
	}
	if (h->cipher == VMS_CIPHER_NONE && l->creds && !(l->net.flags & VMS_NET_F_ALLOW_PLAINTEXT)) {
		snprintf(why, cap, "this receiver requires encrypted records");
		return VMS_EPROTO;
	}
	if (s->started) {
		if (memcmp(s->session_id, h->session_id, 16) != 0) {
			snprintf(why, cap, "another session is being received");
			return VMS_EPROTO;
		}
		if (h->lanes != s->lanes || s->seen[h->lane]) {
			snprintf(why, cap, "lane %u of %u does not fit the session", h->lane, h->lanes);
			return VMS_EPROTO;
		}
	}
	return 0;
}
