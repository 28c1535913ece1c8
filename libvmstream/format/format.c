/* SPDX-License-Identifier: MIT */
#include <string.h>
#include "format/cursor.h"
#include "format/format.h"
#include "base/hash.h"

#define WHY(s) (*why = (s))

static bool codec_name_ok(const uint8_t *s, size_t n)
{
	if (n < 1 || n > VMS_CODEC_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

static uint8_t *put_param(uint8_t *q, uint16_t type, const void *v, uint16_t len)
{
	vms_put_u16(q, type);
	vms_put_u16(q + 2, len);
	memcpy(q + 4, v, len);
	return q + 4 + len;
}

int vms_preamble_encode(struct vms_preamble *p, uint8_t *buf, size_t cap, size_t *len,
			const char **why)
{
	uint8_t *q = buf + VMS_PREAMBLE_FIXED;
	size_t need = VMS_PREAMBLE_MIN;
	size_t creator_len = strlen(p->creator);

	for (unsigned i = 0; i < p->ncodecs; i++)
		need += 4 + 1 + strlen(p->codecs[i].name);
	if (p->has_salt)
		need += 4 + VMS_SALT_LEN;
	if (p->size_hint != UINT64_MAX)
		need += 4 + 8;
	if (creator_len)
		need += 4 + creator_len;
	if (need > VMS_PREAMBLE_MAX || need > cap || p->ncodecs > VMS_MAX_CODECS ||
	    creator_len > VMS_CREATOR_MAX)
		return WHY("preamble parameters too large"), VMS_EINVAL;

	memcpy(buf, VMS_MAGIC, VMS_MAGIC_LEN);
	vms_put_u16(buf + 8, p->major);
	vms_put_u16(buf + 10, p->minor);
	vms_put_u32(buf + 12, (uint32_t)need);
	memcpy(buf + 16, p->stream_id, 16);
	vms_put_u32(buf + 32, p->flags);
	vms_put_u32(buf + 36, p->chunk_cap);
	buf[40] = p->cipher;
	buf[41] = p->key_source;
	vms_put_u16(buf + 42, p->lanes);
	vms_put_u32(buf + 44, 0);
	for (unsigned i = 0; i < p->ncodecs; i++) {
		uint8_t v[1 + VMS_CODEC_NAME_MAX];
		size_t n = strlen(p->codecs[i].name);

		if (!codec_name_ok((const uint8_t *)p->codecs[i].name, n) || p->codecs[i].id == 0 ||
		    p->codecs[i].id == 255)
			return WHY("bad codec declaration"), VMS_EINVAL;
		v[0] = p->codecs[i].id;
		memcpy(v + 1, p->codecs[i].name, n);
		q = put_param(q, VMS_PARAM_CODEC, v, (uint16_t)(1 + n));
	}
	if (p->has_salt)
		q = put_param(q, VMS_PARAM_SALT, p->salt, VMS_SALT_LEN);
	if (p->size_hint != UINT64_MAX) {
		uint8_t v[8];

		vms_put_u64(v, p->size_hint);
		q = put_param(q, VMS_PARAM_SIZE_HINT, v, 8);
	}
	if (creator_len)
		q = put_param(q, VMS_PARAM_CREATOR, p->creator, (uint16_t)creator_len);
	p->len = (uint32_t)need;
	p->sum = vms_xxh3(buf, need - 8);
	vms_put_u64(q, p->sum);
	*len = need;
	return 0;
}

int vms_preamble_peek(const uint8_t *buf, size_t n, uint32_t *len, const char **why)
{
	struct vms_cur c = vms_cur_init(buf, n);
	const uint8_t *magic;
	uint16_t major, minor;

	if (!vms_cur_ptr(&c, VMS_MAGIC_LEN, &magic))
		return WHY("stream shorter than the magic"), VMS_ETRUNCATED;
	if (memcmp(magic, VMS_MAGIC, VMS_MAGIC_LEN) != 0)
		return WHY("bad magic"), VMS_EMAGIC;
	if (!vms_cur_u16(&c, &major) || !vms_cur_u16(&c, &minor) || !vms_cur_u32(&c, len))
		return WHY("stream shorter than the preamble"), VMS_ETRUNCATED;
	if (major != VMS_FORMAT_MAJOR)
		return WHY("unsupported major version"), VMS_EVERSION;
	if (*len < VMS_PREAMBLE_MIN || *len > VMS_PREAMBLE_MAX)
		return WHY("preamble_len out of range"), VMS_EPREAMBLE;
	return 0;
}

static int decode_params(struct vms_preamble *p, struct vms_cur *c, const char **why)
{
	bool seen_hint = false, seen_creator = false;
	uint8_t seen_ignorable[VMS_PARAM_IGNORABLE / 8] = { 0 }; /* bitmap of unknown ones */

	while (vms_cur_left(c) > 0) {
		uint16_t type, len;
		const uint8_t *v;

		if (!vms_cur_u16(c, &type) || !vms_cur_u16(c, &len) || !vms_cur_ptr(c, len, &v))
			return WHY("parameter entry overruns the preamble"), VMS_EPREAMBLE;
		switch (type) {
		case VMS_PARAM_CODEC: {
			struct vms_codec_decl *d;

			if (len < 2 || !codec_name_ok(v + 1, (size_t)len - 1))
				return WHY("bad codec name"), VMS_EPREAMBLE;
			if (v[0] == 0 || v[0] == 255)
				return WHY("codec id 0 or 255 declared"), VMS_EPREAMBLE;
			if (p->ncodecs >= VMS_MAX_CODECS)
				return WHY("too many codecs declared"), VMS_EPREAMBLE;
			for (unsigned i = 0; i < p->ncodecs; i++) {
				if (p->codecs[i].id == v[0] ||
				    (strlen(p->codecs[i].name) == (size_t)len - 1 &&
				     memcmp(p->codecs[i].name, v + 1, (size_t)len - 1) == 0))
					return WHY("codec declared twice"), VMS_EPREAMBLE;
			}
			d = &p->codecs[p->ncodecs++];
			d->id = v[0];
			memcpy(d->name, v + 1, (size_t)len - 1);
			d->name[len - 1] = '\0';
			break;
		}
		case VMS_PARAM_SALT:
			if (p->has_salt)
				return WHY("salt declared twice"), VMS_EPREAMBLE;
			if (len != VMS_SALT_LEN)
				return WHY("salt length is not 32"), VMS_EPREAMBLE;
			memcpy(p->salt, v, VMS_SALT_LEN);
			p->has_salt = true;
			break;
		case VMS_PARAM_SIZE_HINT:
			if (seen_hint)
				return WHY("size hint declared twice"), VMS_EPREAMBLE;
			if (len != 8)
				return WHY("size hint length is not 8"), VMS_EPREAMBLE;
			p->size_hint = vms_get_u64(v);
			seen_hint = true;
			break;
		case VMS_PARAM_CREATOR: {
			size_t n = len < VMS_CREATOR_MAX ? len : VMS_CREATOR_MAX;

			if (seen_creator)
				return WHY("creator declared twice"), VMS_EPREAMBLE;
			memcpy(p->creator, v, n);
			p->creator[n] = '\0';
			seen_creator = true;
			break;
		}
		default: {
			unsigned bit = type & (VMS_PARAM_IGNORABLE - 1);

			if (!(type & VMS_PARAM_IGNORABLE))
				return WHY("unknown critical parameter"), VMS_EPREAMBLE;
			if (seen_ignorable[bit / 8] & (1u << (bit % 8)))
				return WHY("parameter declared twice"), VMS_EPREAMBLE;
			seen_ignorable[bit / 8] |= (uint8_t)(1u << (bit % 8));
			break;
		}
		}
	}
	return 0;
}

int vms_preamble_decode(struct vms_preamble *p, const uint8_t *buf, size_t n,
			uint32_t max_chunk, const char **why)
{
	struct vms_cur c;
	uint32_t len, reserved;
	int err;

	memset(p, 0, sizeof(*p));
	p->size_hint = UINT64_MAX;
	err = vms_preamble_peek(buf, n, &len, why);
	if (err)
		return err;
	if (len > n)
		return WHY("stream shorter than preamble_len"), VMS_ETRUNCATED;
	p->len = len;
	p->sum = vms_get_u64(buf + len - 8);
	if (vms_xxh3(buf, len - 8) != p->sum)
		return WHY("preamble checksum mismatch"), VMS_EPREAMBLE;

	/* Trusted from here on only in the sense that the checksum matched: every
	 * field is still range-checked. */
	c = vms_cur_init(buf + 8, len - 8 - 8);
	if (!(vms_cur_u16(&c, &p->major) && vms_cur_u16(&c, &p->minor) && vms_cur_u32(&c, &len) &&
	      vms_cur_bytes(&c, p->stream_id, 16) && vms_cur_u32(&c, &p->flags) &&
	      vms_cur_u32(&c, &p->chunk_cap) && vms_cur_u8(&c, &p->cipher) &&
	      vms_cur_u8(&c, &p->key_source) && vms_cur_u16(&c, &p->lanes) &&
	      vms_cur_u32(&c, &reserved)))
		return WHY("preamble shorter than its fixed part"), VMS_EPREAMBLE;
	if (p->flags & ~VMS_PFLAG_ENCRYPTED)
		return WHY("reserved preamble flag set"), VMS_EFLAGS;
	if (reserved != 0)
		return WHY("reserved preamble field not zero"), VMS_ERESERVED;
	if (p->chunk_cap < VMS_CHUNK_MIN || p->chunk_cap > VMS_CHUNK_MAX)
		return WHY("chunk_cap out of range"), VMS_ELENGTH;
	if (p->chunk_cap > max_chunk)
		return WHY("chunk_cap above this reader's limit"), VMS_ELENGTH;
	if (p->cipher > VMS_CIPHER_CHACHA20_POLY1305)
		return WHY("unknown cipher id"), VMS_EPREAMBLE;
	if (p->key_source > VMS_KEYSRC_SESSION)
		return WHY("unknown key source"), VMS_EPREAMBLE;
	if ((p->cipher != 0) != (p->key_source != 0))
		return WHY("cipher and key source inconsistent"), VMS_EPREAMBLE;
	if ((p->cipher != 0) != ((p->flags & VMS_PFLAG_ENCRYPTED) != 0))
		return WHY("ENCRYPTED flag inconsistent with cipher"), VMS_EPREAMBLE;
	if (p->lanes < 1 || p->lanes > VMS_LANES_MAX)
		return WHY("lane count out of range"), VMS_EPREAMBLE;
	err = decode_params(p, &c, why);
	if (err)
		return err;
	if (p->has_salt != (p->key_source != 0))
		return WHY(p->has_salt ? "salt present without a key source"
				       : "encrypted stream without salt"), VMS_EPREAMBLE;
	return 0;
}

const struct vms_codec_decl *vms_preamble_codec(const struct vms_preamble *p, uint8_t id)
{
	for (unsigned i = 0; i < p->ncodecs; i++)
		if (p->codecs[i].id == id)
			return &p->codecs[i];
	return NULL;
}

void vms_hdr_encode(const struct vms_rec_hdr *h, uint8_t out[VMS_HDR_LEN])
{
	out[0] = h->type;
	out[1] = h->flags;
	out[2] = h->codec;
	out[3] = 0;
	vms_put_u32(out + 4, h->device);
	vms_put_u64(out + 8, h->seq);
	vms_put_u64(out + 16, h->offset);
	vms_put_u32(out + 24, h->raw_len);
	vms_put_u32(out + 28, h->wire_len);
	vms_put_u16(out + 32, h->lane);
	vms_put_u16(out + 34, h->epoch);
	vms_put_u32(out + 36, 0);
	vms_put_u64(out + 40, h->payload_sum);
	vms_put_u64(out + 48, vms_xxh3(out, 48));
}

int vms_hdr_decode(struct vms_rec_hdr *h, const uint8_t in[VMS_HDR_LEN], const char **why)
{
	struct vms_cur c = vms_cur_init(in, VMS_HDR_LEN);
	uint8_t res8;
	uint32_t res32;
	uint64_t sum;

	if (vms_get_u64(in + 48) != vms_xxh3(in, 48))
		return WHY("header checksum mismatch"), VMS_EHDRSUM;
	if (!(vms_cur_u8(&c, &h->type) && vms_cur_u8(&c, &h->flags) && vms_cur_u8(&c, &h->codec) &&
	      vms_cur_u8(&c, &res8) && vms_cur_u32(&c, &h->device) && vms_cur_u64(&c, &h->seq) &&
	      vms_cur_u64(&c, &h->offset) && vms_cur_u32(&c, &h->raw_len) &&
	      vms_cur_u32(&c, &h->wire_len) && vms_cur_u16(&c, &h->lane) &&
	      vms_cur_u16(&c, &h->epoch) && vms_cur_u32(&c, &res32) &&
	      vms_cur_u64(&c, &h->payload_sum) && vms_cur_u64(&c, &sum)))
		return WHY("record header too short"), VMS_ETRUNCATED;
	if (res8 != 0 || res32 != 0)
		return WHY("reserved header field not zero"), VMS_ERESERVED;
	if (h->flags & ~VMS_RFLAG_ENCRYPTED)
		return WHY("reserved record flag set"), VMS_EFLAGS;
	return 0;
}

bool vms_rec_is_known(uint32_t type)
{
	return type >= VMS_REC_DEVICE_BEGIN && type <= VMS_REC_ABORT;
}

bool vms_rec_is_control(uint8_t type)
{
	return type != VMS_REC_DATA && type != VMS_REC_ZERO;
}

int vms_hdr_check(const struct vms_rec_hdr *h, const struct vms_preamble *p, uint32_t *body_len,
		  const char **why)
{
	bool enc = (h->flags & VMS_RFLAG_ENCRYPTED) != 0;
	uint32_t body = h->wire_len;

	if (enc) {
		if (h->wire_len < VMS_AEAD_OVERHEAD)
			return WHY("encrypted payload shorter than its overhead"), VMS_ELENGTH;
		body = h->wire_len - VMS_AEAD_OVERHEAD;
	}
	switch (h->type) {
	case VMS_REC_DATA:
		if (h->raw_len == 0 || h->raw_len > p->chunk_cap)
			return WHY("DATA raw_len out of range"), VMS_ELENGTH;
		if (h->codec == 0 ? body != h->raw_len : (body == 0 || body >= h->raw_len))
			return WHY("DATA wire_len inconsistent with raw_len and codec"), VMS_ELENGTH;
		break;
	case VMS_REC_ZERO:
		if (h->raw_len == 0 || h->raw_len > p->chunk_cap)
			return WHY("ZERO raw_len out of range"), VMS_ELENGTH;
		if (body != 0)
			return WHY("ZERO record with a payload"), VMS_ELENGTH;
		break;
	default:
		if (h->raw_len > VMS_CTRL_MAX)
			return WHY("control record longer than 4096"), VMS_ELENGTH;
		if (body != h->raw_len)
			return WHY("control record wire_len inconsistent with raw_len"), VMS_ELENGTH;
		break;
	}
	/* FORMAT.md record rules 10 (lengths), 11, 12 (codec), in that order */
	if (enc && h->payload_sum != 0)
		return WHY("payload_sum must be 0 in an encrypted record"), VMS_ERESERVED;
	if (h->codec != 0) {
		if (h->type != VMS_REC_DATA)
			return WHY("codec set on a non-DATA record"), VMS_ECODEC;
		if (!vms_preamble_codec(p, h->codec))
			return WHY("codec id not declared in the preamble"), VMS_ECODEC;
	}
	*body_len = body;
	return 0;
}

size_t vms_begin_encode(const struct vms_begin_body *b, uint8_t *out)
{
	vms_put_u32(out, b->kind);
	vms_put_u32(out + 4, 0);
	vms_put_u64(out + 8, b->size_hint);
	vms_put_u16(out + 16, b->name_len);
	memcpy(out + 18, b->name, b->name_len);
	return 18u + b->name_len;
}

int vms_begin_decode(struct vms_begin_body *b, const uint8_t *in, size_t n, const char **why)
{
	struct vms_cur c = vms_cur_init(in, n);
	uint32_t reserved;
	const uint8_t *name;

	if (!vms_cur_u32(&c, &b->kind) || !vms_cur_u32(&c, &reserved) ||
	    !vms_cur_u64(&c, &b->size_hint) || !vms_cur_u16(&c, &b->name_len))
		return WHY("DEVICE_BEGIN payload too short"), VMS_ELENGTH;
	if (reserved != 0)
		return WHY("DEVICE_BEGIN reserved field not zero"), VMS_ERESERVED;
	if (b->name_len < 1 || b->name_len > VMS_NAME_MAX || !vms_cur_ptr(&c, b->name_len, &name) ||
	    vms_cur_left(&c) != 0)
		return WHY("DEVICE_BEGIN name length inconsistent"), VMS_ELENGTH;
	if (memchr(name, 0, b->name_len))
		return WHY("DEVICE_BEGIN name contains NUL"), VMS_EDEVICE;
	memcpy(b->name, name, b->name_len);
	b->name[b->name_len] = '\0';
	return 0;
}

size_t vms_u64pair_encode(uint64_t a, uint64_t b, uint8_t *out)
{
	vms_put_u64(out, a);
	vms_put_u64(out + 8, b);
	return 16;
}

size_t vms_phase_encode(uint32_t phase, uint32_t round, uint8_t *out)
{
	vms_put_u32(out, phase);
	vms_put_u32(out + 4, round);
	return 8;
}

size_t vms_eos_encode(uint64_t records, uint64_t raw_bytes, uint32_t devices, uint8_t *out)
{
	vms_put_u64(out, records);
	vms_put_u64(out + 8, raw_bytes);
	vms_put_u32(out + 16, devices);
	vms_put_u32(out + 20, 0);
	return 24;
}

int vms_fixed_decode(const uint8_t *in, size_t n, size_t want, const char **why)
{
	(void)in;
	if (n != want)
		return WHY("control payload has the wrong length"), VMS_ELENGTH;
	return 0;
}

int vms_eos_decode(const uint8_t *in, size_t n, uint64_t *records, uint64_t *raw_bytes,
		   uint32_t *devices, const char **why)
{
	struct vms_cur c = vms_cur_init(in, n);
	uint32_t reserved;

	if (n != 24)
		return WHY("EOS payload has the wrong length"), VMS_ELENGTH;
	if (!(vms_cur_u64(&c, records) && vms_cur_u64(&c, raw_bytes) && vms_cur_u32(&c, devices) &&
	      vms_cur_u32(&c, &reserved)))
		return WHY("EOS payload too short"), VMS_ELENGTH;
	if (reserved != 0)
		return WHY("EOS reserved field not zero"), VMS_ERESERVED;
	return 0;
}

size_t vms_abort_encode(int32_t code, const char *text, uint8_t *out)
{
	size_t n = text ? strlen(text) : 0;

	if (n > VMS_ABORT_TEXT_MAX)
		n = VMS_ABORT_TEXT_MAX;
	vms_put_u32(out, (uint32_t)code);
	vms_put_u16(out + 4, (uint16_t)n);
	if (n)
		memcpy(out + 6, text, n);
	return 6 + n;
}

int vms_abort_decode(const uint8_t *in, size_t n, int32_t *code, char *text, size_t text_cap,
		     const char **why)
{
	struct vms_cur c = vms_cur_init(in, n);
	uint32_t ucode;
	uint16_t len;
	const uint8_t *t;

	if (!vms_cur_u32(&c, &ucode) || !vms_cur_u16(&c, &len) || len > VMS_ABORT_TEXT_MAX ||
	    !vms_cur_ptr(&c, len, &t) || vms_cur_left(&c) != 0)
		return WHY("ABORT payload length inconsistent"), VMS_ELENGTH;
	*code = (int32_t)ucode;
	if (len >= text_cap)
		len = (uint16_t)(text_cap - 1);
	memcpy(text, t, len);
	text[len] = '\0';
	return 0;
}
