/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the pure format layer (libvmstream/format): the bounds-checked
 * cursor, preamble encode/decode with every rejection rule of FORMAT.md
 * section 4 "Preamble", record header encode/decode/check, control payload
 * decoders, and the error code table (values are ABI: pinned here).
 *
 * Preambles are built by hand (pb_*), not with vms_preamble_encode, so the
 * decoder is checked against FORMAT.md rather than against the encoder.
 */
#define _GNU_SOURCE
#include <check.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "format/cursor.h"
#include "format/format.h"

/* ---- cursor --------------------------------------------------------------- */

static const uint8_t seq16[16] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
				   0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10 };

START_TEST(cursor_init_left)
{
	struct vms_cur c = vms_cur_init(seq16, sizeof(seq16));
	struct vms_cur z = vms_cur_init(seq16, 0);
	uint8_t b;

	ck_assert_uint_eq(vms_cur_left(&c), 16);
	ck_assert_ptr_eq(c.pos, seq16);
	ck_assert_uint_eq(vms_cur_left(&z), 0);
	ck_assert(!vms_cur_u8(&z, &b));
	ck_assert_ptr_eq(z.pos, seq16);
}
END_TEST

/* Each fixed-width read: succeeds with exactly its width left (and leaves 0),
 * fails with one byte less and does not move; little-endian values. */
START_TEST(cursor_exact_bounds)
{
	for (size_t w = 1; w <= 8; w *= 2) {
		struct vms_cur c = vms_cur_init(seq16, w);
		struct vms_cur s = vms_cur_init(seq16, w - 1);
		uint8_t v8 = 0;
		uint16_t v16 = 0;
		uint32_t v32 = 0;
		uint64_t v64 = 0;
		bool ok = false, bad = true;

		switch (w) {
		case 1:
			ok = vms_cur_u8(&c, &v8);
			bad = vms_cur_u8(&s, &v8);
			ck_assert_uint_eq(v8, 0x01);
			break;
		case 2:
			ok = vms_cur_u16(&c, &v16);
			bad = vms_cur_u16(&s, &v16);
			ck_assert_uint_eq(v16, 0x0201);
			break;
		case 4:
			ok = vms_cur_u32(&c, &v32);
			bad = vms_cur_u32(&s, &v32);
			ck_assert_uint_eq(v32, 0x04030201u);
			break;
		case 8:
			ok = vms_cur_u64(&c, &v64);
			bad = vms_cur_u64(&s, &v64);
			ck_assert_uint_eq(v64, 0x0807060504030201ull);
			break;
		}
		ck_assert_msg(ok, "read of %zu bytes with %zu left failed", w, w);
		ck_assert_uint_eq(vms_cur_left(&c), 0);
		ck_assert_msg(!bad, "read of %zu bytes with %zu left succeeded", w, w - 1);
		ck_assert_ptr_eq(s.pos, seq16);
		ck_assert_uint_eq(vms_cur_left(&s), w - 1);
	}
}
END_TEST

/* A failed read never changes the output either (value kept). */
START_TEST(cursor_failure_keeps_output)
{
	struct vms_cur c = vms_cur_init(seq16, 7);
	uint64_t v64 = 0x1111111111111111ull;
	uint32_t v32 = 0x22222222u;
	uint8_t buf[8];

	ck_assert(!vms_cur_u64(&c, &v64)); /* u64 = two u32 reads: 4 then 3 */
	ck_assert_uint_eq(v64, 0x1111111111111111ull);
	ck_assert_ptr_eq(c.pos, seq16);
	ck_assert_uint_eq(vms_cur_left(&c), 7);
	memset(buf, 0xee, sizeof(buf));
	ck_assert(!vms_cur_bytes(&c, buf, 8));
	for (size_t i = 0; i < sizeof(buf); i++)
		ck_assert_uint_eq(buf[i], 0xee);
	ck_assert_ptr_eq(c.pos, seq16);
	ck_assert(vms_cur_u32(&c, &v32));
	ck_assert(!vms_cur_u32(&c, &v32)); /* 3 left */
	ck_assert_uint_eq(v32, 0x04030201u);
	ck_assert_uint_eq(vms_cur_left(&c), 3);
}
END_TEST

START_TEST(cursor_bytes_and_ptr)
{
	for (size_t n = 0; n <= 16; n++) {
		struct vms_cur c = vms_cur_init(seq16, n);
		struct vms_cur d = vms_cur_init(seq16, n);
		const uint8_t *p = NULL;
		uint8_t out[17];

		/* exactly n: ok; n + 1: fails, no movement */
		ck_assert(!vms_cur_bytes(&c, out, n + 1));
		ck_assert_ptr_eq(c.pos, seq16);
		ck_assert(vms_cur_bytes(&c, out, n));
		ck_assert_uint_eq(vms_cur_left(&c), 0);
		if (n)
			ck_assert_mem_eq(out, seq16, n);
		ck_assert(!vms_cur_ptr(&d, n + 1, &p));
		ck_assert_ptr_null(p);
		ck_assert_ptr_eq(d.pos, seq16);
		ck_assert(vms_cur_ptr(&d, n, &p));
		ck_assert_ptr_eq(p, seq16);
		ck_assert_ptr_eq(d.pos, seq16 + n);
	}
}
END_TEST

/* Huge lengths must not wrap pointer arithmetic (n > end - pos). */
START_TEST(cursor_huge_lengths)
{
	struct vms_cur c = vms_cur_init(seq16, 16);
	const uint8_t *p = NULL;

	ck_assert(vms_cur_u8(&c, &(uint8_t){ 0 }));
	ck_assert(!vms_cur_ptr(&c, SIZE_MAX, &p));
	ck_assert(!vms_cur_ptr(&c, SIZE_MAX - 14, &p));
	ck_assert(!vms_cur_ptr(&c, (size_t)PTRDIFF_MAX + 1, &p));
	ck_assert(!vms_cur_ptr(&c, 16, &p));
	ck_assert_ptr_eq(c.pos, seq16 + 1);
	ck_assert(vms_cur_ptr(&c, 15, &p));
	ck_assert_uint_eq(vms_cur_left(&c), 0);
}
END_TEST

START_TEST(put_get_le)
{
	uint8_t b[8];

	vms_put_u16(b, 0xa1b2);
	ck_assert_uint_eq(b[0], 0xb2);
	ck_assert_uint_eq(b[1], 0xa1);
	vms_put_u32(b, 0xa1b2c3d4u);
	ck_assert_mem_eq(b, "\xd4\xc3\xb2\xa1", 4);
	vms_put_u64(b, 0x0102030405060708ull);
	ck_assert_mem_eq(b, "\x08\x07\x06\x05\x04\x03\x02\x01", 8);
	ck_assert_uint_eq(vms_get_u64(b), 0x0102030405060708ull);
}
END_TEST

/* ---- preamble: a hand builder --------------------------------------------- */

struct pb {
	uint8_t b[VMS_PREAMBLE_MAX + 64];
	size_t n; /* bytes so far (fixed part + parameters) */
};

/* The 48 fixed bytes of a valid unencrypted preamble (FORMAT.md section 2). */
static void pb_init(struct pb *p)
{
	memset(p, 0, sizeof(*p));
	memcpy(p->b, "\x8a\x56\x4d\x53\x0d\x0a\x1a\x0a", 8);
	vms_put_u16(p->b + 8, 1);
	vms_put_u16(p->b + 10, 0);
	for (int i = 0; i < 16; i++)
		p->b[16 + i] = (uint8_t)(0xa0 + i);
	vms_put_u32(p->b + 32, 0);
	vms_put_u32(p->b + 36, 4096);
	p->b[40] = 0;
	p->b[41] = 0;
	vms_put_u16(p->b + 42, 1);
	vms_put_u32(p->b + 44, 0);
	p->n = 48;
}

static void pb_raw(struct pb *p, const void *v, size_t len)
{
	memcpy(p->b + p->n, v, len);
	p->n += len;
}

static void pb_param(struct pb *p, uint16_t type, const void *v, uint16_t len)
{
	vms_put_u16(p->b + p->n, type);
	vms_put_u16(p->b + p->n + 2, len);
	memcpy(p->b + p->n + 4, v, len);
	p->n += 4u + len;
}

/* Set preamble_len and the checksum; returns the total length. */
static size_t pb_finish(struct pb *p)
{
	vms_put_u32(p->b + 12, (uint32_t)(p->n + 8));
	vms_put_u64(p->b + p->n, tu_xxh3(p->b, p->n));
	return p->n + 8;
}

static int pb_decode_max(struct pb *p, uint32_t max_chunk, struct vms_preamble *out)
{
	const char *why = NULL;
	size_t n = p->n + 8;
	int rc = vms_preamble_decode(out, p->b, n, max_chunk, &why);

	if (rc)
		ck_assert_msg(why && *why, "error %d without a reason", rc);
	return rc;
}

static int pb_decode(struct pb *p)
{
	struct vms_preamble pre;

	return pb_decode_max(p, VMS_CHUNK_MAX, &pre);
}

/* Finish, decode, expect `code`. */
#define PB_EXPECT(p, code)                                                              \
	do {                                                                            \
		pb_finish(p);                                                           \
		ck_assert_int_eq(pb_decode(p), (code));                                 \
	} while (0)

static void set_salt(struct pb *p)
{
	uint8_t salt[32];

	memset(salt, 0x5a, sizeof(salt));
	pb_param(p, VMS_PARAM_SALT, salt, sizeof(salt));
}

START_TEST(pre_minimal_ok)
{
	struct vms_preamble pre;
	struct pb p;

	pb_init(&p);
	ck_assert_uint_eq(pb_finish(&p), 56);
	ck_assert_int_eq(pb_decode_max(&p, VMS_CHUNK_MAX, &pre), 0);
	ck_assert_uint_eq(pre.major, 1);
	ck_assert_uint_eq(pre.minor, 0);
	ck_assert_uint_eq(pre.len, 56);
	ck_assert_uint_eq(pre.chunk_cap, 4096);
	ck_assert_uint_eq(pre.lanes, 1);
	ck_assert_uint_eq(pre.cipher, 0);
	ck_assert_uint_eq(pre.flags, 0);
	ck_assert(!pre.has_salt);
	ck_assert_uint_eq(pre.ncodecs, 0);
	ck_assert_uint_eq(pre.size_hint, UINT64_MAX);
	ck_assert_str_eq(pre.creator, "");
	ck_assert_uint_eq(pre.sum, tu_xxh3(p.b, 48));
	for (int i = 0; i < 16; i++)
		ck_assert_uint_eq(pre.stream_id[i], 0xa0 + i);
}
END_TEST

START_TEST(pre_magic)
{
	for (int i = 0; i < 8; i++) {
		for (int bit = 0; bit < 8; bit++) {
			struct pb p;

			pb_init(&p);
			p.b[i] ^= (uint8_t)(1u << bit);
			PB_EXPECT(&p, VMS_EMAGIC);
		}
	}
}
END_TEST

START_TEST(pre_version)
{
	static const uint16_t bad[] = { 0, 2, 3, 0x100, 0xffff };
	static const uint16_t minors[] = { 1, 7, 0xffff };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct pb p;

		pb_init(&p);
		vms_put_u16(p.b + 8, bad[i]);
		PB_EXPECT(&p, VMS_EVERSION);
	}
	/* any minor of major 1 is accepted */
	for (size_t i = 0; i < sizeof(minors) / sizeof(minors[0]); i++) {
		struct vms_preamble pre;
		struct pb p;

		pb_init(&p);
		vms_put_u16(p.b + 10, minors[i]);
		pb_finish(&p);
		ck_assert_int_eq(pb_decode_max(&p, VMS_CHUNK_MAX, &pre), 0);
		ck_assert_uint_eq(pre.minor, minors[i]);
	}
}
END_TEST

/* preamble_len outside [56, 4096]: VMS_EPREAMBLE (even when the buffer is
 * long enough); 56 and 4096 exactly: accepted. */
START_TEST(pre_len_bounds)
{
	static const uint32_t bad[] = { 0, 1, 16, 48, 55, 4097, 8192, 0x7fffffffu, 0xffffffffu };
	struct vms_preamble pre;
	const char *why;
	struct pb p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t big[8192];

		pb_init(&p);
		pb_finish(&p);
		memset(big, 0, sizeof(big));
		memcpy(big, p.b, 56);
		vms_put_u32(big + 12, bad[i]);
		ck_assert_int_eq(vms_preamble_decode(&pre, big, sizeof(big), VMS_CHUNK_MAX, &why),
				 VMS_EPREAMBLE);
	}
	/* 4096: one ignorable parameter pads the area to 4096 - 56 bytes */
	{
		static uint8_t pad[4096 - 56 - 4];

		pb_init(&p);
		pb_param(&p, 0x8fff, pad, sizeof(pad));
		ck_assert_uint_eq(pb_finish(&p), 4096);
		ck_assert_int_eq(pb_decode_max(&p, VMS_CHUNK_MAX, &pre), 0);
		ck_assert_uint_eq(pre.len, 4096);
	}
	/* 4097 with a correct checksum over 4089 bytes: still out of range */
	{
		static uint8_t pad[4096 - 56 - 4 + 1];

		pb_init(&p);
		pb_param(&p, 0x8fff, pad, sizeof(pad));
		ck_assert_uint_eq(pb_finish(&p), 4097);
		ck_assert_int_eq(pb_decode(&p), VMS_EPREAMBLE);
	}
}
END_TEST

/* Shorter than 16 bytes, than 56, or than preamble_len: VMS_ETRUNCATED,
 * once magic, version and the length field itself are sound. */
START_TEST(pre_truncated)
{
	struct vms_preamble pre;
	const char *why;
	struct pb p;
	size_t n;

	pb_init(&p);
	pb_param(&p, VMS_PARAM_SIZE_HINT, "\x01\0\0\0\0\0\0\0", 8);
	n = pb_finish(&p);
	for (size_t k = 0; k < n; k++)
		ck_assert_int_eq(vms_preamble_decode(&pre, p.b, k, VMS_CHUNK_MAX, &why),
				 VMS_ETRUNCATED);
	ck_assert_int_eq(vms_preamble_decode(&pre, p.b, n, VMS_CHUNK_MAX, &why), 0);
	ck_assert_uint_eq(pre.size_hint, 1);
	/* peek sees only the first 16 bytes */
	{
		uint32_t len = 0;

		for (size_t k = 0; k < 16; k++)
			ck_assert_int_eq(vms_preamble_peek(p.b, k, &len, &why), VMS_ETRUNCATED);
		ck_assert_int_eq(vms_preamble_peek(p.b, 16, &len, &why), 0);
		ck_assert_uint_eq(len, n);
	}
}
END_TEST

START_TEST(pre_checksum)
{
	struct pb p;
	size_t n;

	pb_init(&p);
	pb_param(&p, VMS_PARAM_CREATOR, "abc", 3);
	n = pb_finish(&p);
	/* any bit of any byte after the length field, checksum included */
	for (size_t i = 16; i < n; i++) {
		for (int bit = 0; bit < 8; bit++) {
			struct vms_preamble pre;
			const char *why;

			p.b[i] ^= (uint8_t)(1u << bit);
			ck_assert_int_eq(vms_preamble_decode(&pre, p.b, n, VMS_CHUNK_MAX, &why),
					 VMS_EPREAMBLE);
			p.b[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* minor version bytes too (covered by the checksum, any value is fine) */
	p.b[10] ^= 1;
	ck_assert_int_eq(pb_decode(&p), VMS_EPREAMBLE);
}
END_TEST

START_TEST(pre_flags)
{
	for (int bit = 1; bit < 32; bit++) {
		struct pb p;

		pb_init(&p);
		vms_put_u32(p.b + 32, 1u << bit);
		PB_EXPECT(&p, VMS_EFLAGS);
	}
	{
		/* flags are checked before the reserved field */
		struct pb p;

		pb_init(&p);
		vms_put_u32(p.b + 32, 0x80000000u);
		vms_put_u32(p.b + 44, 1);
		PB_EXPECT(&p, VMS_EFLAGS);
	}
	{
		/* ENCRYPTED without a cipher: inconsistent, not reserved */
		struct pb p;

		pb_init(&p);
		vms_put_u32(p.b + 32, VMS_PFLAG_ENCRYPTED);
		PB_EXPECT(&p, VMS_EPREAMBLE);
	}
}
END_TEST

START_TEST(pre_reserved)
{
	for (int i = 0; i < 4; i++) {
		struct pb p;

		pb_init(&p);
		p.b[44 + i] = 0x01;
		PB_EXPECT(&p, VMS_ERESERVED);
		pb_init(&p);
		p.b[44 + i] = 0x80;
		PB_EXPECT(&p, VMS_ERESERVED);
	}
}
END_TEST

START_TEST(pre_chunk_cap)
{
	static const uint32_t bad[] = { 0, 1, 4095, (16u << 20) + 1, 32u << 20, 0xffffffffu };
	static const uint32_t good[] = { 4096, 4097, 1u << 20, 16u << 20 };
	struct vms_preamble pre;
	struct pb p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pb_init(&p);
		vms_put_u32(p.b + 36, bad[i]);
		PB_EXPECT(&p, VMS_ELENGTH);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		pb_init(&p);
		vms_put_u32(p.b + 36, good[i]);
		pb_finish(&p);
		ck_assert_int_eq(pb_decode_max(&p, VMS_CHUNK_MAX, &pre), 0);
		ck_assert_uint_eq(pre.chunk_cap, good[i]);
	}
	/* the reader's own maximum */
	pb_init(&p);
	vms_put_u32(p.b + 36, 65536);
	pb_finish(&p);
	ck_assert_int_eq(pb_decode_max(&p, 65536, &pre), 0);
	ck_assert_int_eq(pb_decode_max(&p, 65535, &pre), VMS_ELENGTH);
	ck_assert_int_eq(pb_decode_max(&p, 4096, &pre), VMS_ELENGTH);
}
END_TEST

/* cipher / key_source / ENCRYPTED / lanes / salt consistency. */
START_TEST(pre_cipher_consistency)
{
	struct vms_preamble pre;
	struct pb p;

	/* a consistent encrypted preamble decodes */
	for (uint8_t cipher = 1; cipher <= 2; cipher++) {
		for (uint8_t ks = 1; ks <= 2; ks++) {
			pb_init(&p);
			vms_put_u32(p.b + 32, VMS_PFLAG_ENCRYPTED);
			p.b[40] = cipher;
			p.b[41] = ks;
			set_salt(&p);
			pb_finish(&p);
			ck_assert_int_eq(pb_decode_max(&p, VMS_CHUNK_MAX, &pre), 0);
			ck_assert_uint_eq(pre.cipher, cipher);
			ck_assert_uint_eq(pre.key_source, ks);
			ck_assert(pre.has_salt);
			ck_assert_uint_eq(pre.salt[0], 0x5a);
		}
	}
	/* unknown cipher / key source */
	for (unsigned v = 3; v <= 255; v += 84) {
		pb_init(&p);
		vms_put_u32(p.b + 32, VMS_PFLAG_ENCRYPTED);
		p.b[40] = (uint8_t)v;
		p.b[41] = 1;
		set_salt(&p);
		PB_EXPECT(&p, VMS_EPREAMBLE);
		pb_init(&p);
		vms_put_u32(p.b + 32, VMS_PFLAG_ENCRYPTED);
		p.b[40] = 1;
		p.b[41] = (uint8_t)v;
		set_salt(&p);
		PB_EXPECT(&p, VMS_EPREAMBLE);
	}
	/* cipher without key source, key source without cipher */
	pb_init(&p);
	vms_put_u32(p.b + 32, VMS_PFLAG_ENCRYPTED);
	p.b[40] = 1;
	set_salt(&p);
	PB_EXPECT(&p, VMS_EPREAMBLE);
	pb_init(&p);
	p.b[41] = 1;
	set_salt(&p);
	PB_EXPECT(&p, VMS_EPREAMBLE);
	/* cipher without the ENCRYPTED flag */
	pb_init(&p);
	p.b[40] = 2;
	p.b[41] = 1;
	set_salt(&p);
	PB_EXPECT(&p, VMS_EPREAMBLE);
	/* encrypted without salt; salt without encryption */
	pb_init(&p);
	vms_put_u32(p.b + 32, VMS_PFLAG_ENCRYPTED);
	p.b[40] = 1;
	p.b[41] = 1;
	PB_EXPECT(&p, VMS_EPREAMBLE);
	pb_init(&p);
	set_salt(&p);
	PB_EXPECT(&p, VMS_EPREAMBLE);
	/* salt of the wrong length; salt twice */
	pb_init(&p);
	vms_put_u32(p.b + 32, VMS_PFLAG_ENCRYPTED);
	p.b[40] = 1;
	p.b[41] = 1;
	pb_param(&p, VMS_PARAM_SALT, "0123456789012345678901234567890", 31);
	PB_EXPECT(&p, VMS_EPREAMBLE);
	pb_init(&p);
	vms_put_u32(p.b + 32, VMS_PFLAG_ENCRYPTED);
	p.b[40] = 1;
	p.b[41] = 1;
	set_salt(&p);
	set_salt(&p);
	PB_EXPECT(&p, VMS_EPREAMBLE);
}
END_TEST

START_TEST(pre_lanes)
{
	static const uint16_t bad[] = { 0, 65, 1000, 0xffff };
	struct vms_preamble pre;
	struct pb p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pb_init(&p);
		vms_put_u16(p.b + 42, bad[i]);
		PB_EXPECT(&p, VMS_EPREAMBLE);
	}
	for (uint16_t l = 1; l <= 64; l = (uint16_t)(l * 2)) {
		pb_init(&p);
		vms_put_u16(p.b + 42, l);
		pb_finish(&p);
		ck_assert_int_eq(pb_decode_max(&p, VMS_CHUNK_MAX, &pre), 0);
		ck_assert_uint_eq(pre.lanes, l);
	}
}
END_TEST

/* Entries must fill the parameter area exactly. */
START_TEST(pre_param_overrun)
{
	struct pb p;

	for (size_t extra = 1; extra <= 3; extra++) {
		/* a partial type/len field */
		pb_init(&p);
		pb_param(&p, 0x8fff, "ab", 2);
		pb_raw(&p, "\xff\x8f\x00", extra);
		PB_EXPECT(&p, VMS_EPREAMBLE);
	}
	/* len runs past the area by 1 .. many bytes */
	for (uint16_t over = 1; over <= 9; over = (uint16_t)(over + 4)) {
		pb_init(&p);
		vms_put_u16(p.b + 48, 0x8fff);
		vms_put_u16(p.b + 50, (uint16_t)(4 + over));
		memcpy(p.b + 52, "wxyz", 4);
		p.n = 56;
		PB_EXPECT(&p, VMS_EPREAMBLE);
	}
	pb_init(&p);
	vms_put_u16(p.b + 48, 0x8fff);
	vms_put_u16(p.b + 50, 0xffff);
	p.n = 52;
	PB_EXPECT(&p, VMS_EPREAMBLE);
	/* exactly filling: fine */
	pb_init(&p);
	vms_put_u16(p.b + 48, 0x8fff);
	vms_put_u16(p.b + 50, 4);
	memcpy(p.b + 52, "wxyz", 4);
	p.n = 56;
	PB_EXPECT(&p, 0);
	/* a zero-length ignorable entry: fine */
	pb_init(&p);
	pb_param(&p, 0x8fff, "", 0);
	PB_EXPECT(&p, 0);
}
END_TEST

START_TEST(pre_param_unknown)
{
	static const uint16_t critical[] = { 0x0000, 0x0003, 0x0100, 0x7fff };
	static const uint16_t ignorable[] = { 0x8000, 0x8003, 0x8123, 0xffff };
	struct vms_preamble pre;
	struct pb p;

	for (size_t i = 0; i < sizeof(critical) / sizeof(critical[0]); i++) {
		pb_init(&p);
		pb_param(&p, critical[i], "v", 1);
		PB_EXPECT(&p, VMS_EPREAMBLE);
	}
	for (size_t i = 0; i < sizeof(ignorable) / sizeof(ignorable[0]); i++) {
		pb_init(&p);
		pb_param(&p, ignorable[i], "value", 5);
		pb_param(&p, VMS_PARAM_SIZE_HINT, "\x2a\0\0\0\0\0\0\0", 8);
		pb_finish(&p);
		ck_assert_int_eq(pb_decode_max(&p, VMS_CHUNK_MAX, &pre), 0);
		ck_assert_uint_eq(pre.size_hint, 42);
	}
}
END_TEST

START_TEST(pre_param_known_values)
{
	struct vms_preamble pre;
	struct pb p;

	pb_init(&p);
	pb_param(&p, VMS_PARAM_CREATOR, "vmstream 9.9", 12);
	pb_param(&p, VMS_PARAM_SIZE_HINT, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	pb_param(&p, VMS_PARAM_CODEC, "\x01zstd", 5);
	pb_param(&p, VMS_PARAM_CODEC, "\x40my-codec.v2_x", 14);
	pb_finish(&p);
	ck_assert_int_eq(pb_decode_max(&p, VMS_CHUNK_MAX, &pre), 0);
	ck_assert_str_eq(pre.creator, "vmstream 9.9");
	ck_assert_uint_eq(pre.size_hint, 0x0807060504030201ull);
	ck_assert_uint_eq(pre.ncodecs, 2);
	ck_assert_uint_eq(pre.codecs[0].id, 1);
	ck_assert_str_eq(pre.codecs[0].name, "zstd");
	ck_assert_uint_eq(pre.codecs[1].id, 64);
	ck_assert_str_eq(pre.codecs[1].name, "my-codec.v2_x");
	ck_assert_ptr_eq(vms_preamble_codec(&pre, 64), &pre.codecs[1]);
	ck_assert_ptr_null(vms_preamble_codec(&pre, 2));
	ck_assert_ptr_null(vms_preamble_codec(&pre, 0));
	/* SIZE_HINT must be 8 bytes */
	pb_init(&p);
	pb_param(&p, VMS_PARAM_SIZE_HINT, "\x01\0\0\0\0\0\0", 7);
	PB_EXPECT(&p, VMS_EPREAMBLE);
	pb_init(&p);
	pb_param(&p, VMS_PARAM_SIZE_HINT, "\x01\0\0\0\0\0\0\0\0", 9);
	PB_EXPECT(&p, VMS_EPREAMBLE);
}
END_TEST

/* "A type other than CODEC appearing twice is an error" (FORMAT.md 2.1). */
START_TEST(pre_param_duplicates)
{
	struct pb p;

	pb_init(&p);
	pb_param(&p, VMS_PARAM_SIZE_HINT, "\x01\0\0\0\0\0\0\0", 8);
	pb_param(&p, VMS_PARAM_SIZE_HINT, "\x01\0\0\0\0\0\0\0", 8);
	PB_EXPECT(&p, VMS_EPREAMBLE);
	pb_init(&p);
	pb_param(&p, VMS_PARAM_CREATOR, "a", 1);
	pb_param(&p, VMS_PARAM_CREATOR, "b", 1);
	PB_EXPECT(&p, VMS_EPREAMBLE);
	/* CODEC: two distinct ids and names are fine; a repeated id or name is not */
	pb_init(&p);
	pb_param(&p, VMS_PARAM_CODEC, "\x40" "aa", 3);
	pb_param(&p, VMS_PARAM_CODEC, "\x41" "bb", 3);
	PB_EXPECT(&p, 0);
	pb_init(&p);
	pb_param(&p, VMS_PARAM_CODEC, "\x40" "aa", 3);
	pb_param(&p, VMS_PARAM_CODEC, "\x40" "bb", 3);
	PB_EXPECT(&p, VMS_EPREAMBLE);
	pb_init(&p);
	pb_param(&p, VMS_PARAM_CODEC, "\x40" "aa", 3);
	pb_param(&p, VMS_PARAM_CODEC, "\x41" "aa", 3);
	PB_EXPECT(&p, VMS_EPREAMBLE);
}
END_TEST

/* The rule covers unknown ignorable types too: only CODEC may repeat.
 * libvmstream skips every unknown ignorable entry without remembering it,
 * so a repeated one is accepted (format.c decode_params, default case). */
START_TEST(pre_param_duplicate_ignorable)
{
	struct pb p;

	pb_init(&p);
	pb_param(&p, 0x8123, "x", 1);
	pb_param(&p, 0x8123, "y", 1);
	PB_EXPECT(&p, VMS_EPREAMBLE);
}
END_TEST

START_TEST(pre_codec_names)
{
	static const char *const bad[] = {
		"",        /* empty name */
		"Zstd",    /* upper case */
		"zs td",   /* space */
		"zs/td",   /* slash */
		"zs\xc3\xa9", /* non-ASCII */
		"zs+td", "a:b",
		"abcdefghijklmnopqrstuvwxyz0123456", /* 33 bytes */
	};
	static const char *const good[] = {
		"a", "zstd", "lz4-1.9", "my_codec", "0", "._-",
		"abcdefghijklmnopqrstuvwxyz012345", /* 32 bytes */
	};
	struct vms_preamble pre;
	struct pb p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t v[64];
		size_t n = strlen(bad[i]);

		v[0] = 64;
		memcpy(v + 1, bad[i], n);
		pb_init(&p);
		pb_param(&p, VMS_PARAM_CODEC, v, (uint16_t)(n + 1));
		pb_finish(&p);
		ck_assert_msg(pb_decode(&p) == VMS_EPREAMBLE, "codec name \"%s\" accepted", bad[i]);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint8_t v[64];
		size_t n = strlen(good[i]);

		v[0] = 200;
		memcpy(v + 1, good[i], n);
		pb_init(&p);
		pb_param(&p, VMS_PARAM_CODEC, v, (uint16_t)(n + 1));
		pb_finish(&p);
		ck_assert_int_eq(pb_decode_max(&p, VMS_CHUNK_MAX, &pre), 0);
		ck_assert_str_eq(pre.codecs[0].name, good[i]);
	}
	/* NUL inside the name */
	pb_init(&p);
	pb_param(&p, VMS_PARAM_CODEC, "\x40z\0a", 4);
	PB_EXPECT(&p, VMS_EPREAMBLE);
	/* ids 0 and 255 cannot be declared; 1 and 254 can */
	pb_init(&p);
	pb_param(&p, VMS_PARAM_CODEC, "\x00zstd", 5);
	PB_EXPECT(&p, VMS_EPREAMBLE);
	pb_init(&p);
	pb_param(&p, VMS_PARAM_CODEC, "\xffzstd", 5);
	PB_EXPECT(&p, VMS_EPREAMBLE);
	pb_init(&p);
	pb_param(&p, VMS_PARAM_CODEC, "\xfezstd", 5);
	PB_EXPECT(&p, 0);
	/* a CODEC entry of length 0 (no id) */
	pb_init(&p);
	pb_param(&p, VMS_PARAM_CODEC, "", 0);
	PB_EXPECT(&p, VMS_EPREAMBLE);
}
END_TEST

/* Encoder: output decodes to the same fields, matches the hand layout, and
 * the checksum is XXH3 of [0, len - 8). */
START_TEST(pre_encode_roundtrip)
{
	struct vms_preamble in, out;
	uint8_t buf[VMS_PREAMBLE_MAX];
	const char *why;
	size_t len = 0;
	struct pb p;

	memset(&in, 0, sizeof(in));
	in.major = 1;
	in.minor = 0;
	for (int i = 0; i < 16; i++)
		in.stream_id[i] = (uint8_t)(0xa0 + i);
	in.chunk_cap = 4096;
	in.lanes = 1;
	in.size_hint = 5;
	snprintf(in.creator, sizeof(in.creator), "abc");
	ck_assert_int_eq(vms_preamble_encode(&in, buf, sizeof(buf), &len, &why), 0);
	ck_assert_uint_eq(len, 56 + 12 + 7);
	ck_assert_uint_eq(in.len, len);
	ck_assert_uint_eq(in.sum, tu_xxh3(buf, len - 8));
	ck_assert_uint_eq(vms_get_u64(buf + len - 8), in.sum);
	pb_init(&p);
	pb_param(&p, VMS_PARAM_SIZE_HINT, "\x05\0\0\0\0\0\0\0", 8);
	pb_param(&p, VMS_PARAM_CREATOR, "abc", 3);
	ck_assert_uint_eq(pb_finish(&p), len);
	ck_assert_mem_eq(buf, p.b, len);
	ck_assert_int_eq(vms_preamble_decode(&out, buf, len, VMS_CHUNK_MAX, &why), 0);
	ck_assert_uint_eq(out.size_hint, 5);
	ck_assert_str_eq(out.creator, "abc");
	ck_assert_uint_eq(out.sum, in.sum);

	/* encoder refuses what a decoder would refuse */
	in.ncodecs = 1;
	in.codecs[0].id = 64;
	snprintf(in.codecs[0].name, sizeof(in.codecs[0].name), "Bad");
	ck_assert_int_eq(vms_preamble_encode(&in, buf, sizeof(buf), &len, &why), VMS_EINVAL);
	snprintf(in.codecs[0].name, sizeof(in.codecs[0].name), "good");
	in.codecs[0].id = 0;
	ck_assert_int_eq(vms_preamble_encode(&in, buf, sizeof(buf), &len, &why), VMS_EINVAL);
	in.codecs[0].id = 255;
	ck_assert_int_eq(vms_preamble_encode(&in, buf, sizeof(buf), &len, &why), VMS_EINVAL);
	in.codecs[0].id = 64;
	ck_assert_int_eq(vms_preamble_encode(&in, buf, sizeof(buf), &len, &why), 0);
	/* too small an output buffer */
	ck_assert_int_eq(vms_preamble_encode(&in, buf, 60, &len, &why), VMS_EINVAL);
}
END_TEST

/* ---- record header -------------------------------------------------------- */

static struct vms_rec_hdr sample_hdr(void)
{
	struct vms_rec_hdr h = {
		.type = VMS_REC_DATA,
		.flags = 0,
		.codec = 0,
		.device = 0x04030201u,
		.seq = 0x0c0b0a0908070605ull,
		.offset = 0x14131211100f0e0dull,
		.raw_len = 0x18171615u,
		.wire_len = 0x1c1b1a19u,
		.lane = 0x1e1d,
		.epoch = 0x201f,
		.payload_sum = 0x2c2b2a2928272625ull,
	};

	return h;
}

START_TEST(hdr_layout)
{
	struct vms_rec_hdr h = sample_hdr();
	uint8_t b[VMS_HDR_LEN];
	static const uint8_t want[48] = {
		0x02, 0x00, 0x00, 0x00,                         /* type flags codec reserved */
		0x01, 0x02, 0x03, 0x04,                         /* device */
		0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, /* seq */
		0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, /* offset */
		0x15, 0x16, 0x17, 0x18,                         /* raw_len */
		0x19, 0x1a, 0x1b, 0x1c,                         /* wire_len */
		0x1d, 0x1e, 0x1f, 0x20,                         /* lane epoch */
		0x00, 0x00, 0x00, 0x00,                         /* reserved */
		0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, /* payload_sum */
	};

	memset(b, 0xee, sizeof(b));
	vms_hdr_encode(&h, b);
	ck_assert_mem_eq(b, want, 48);
	ck_assert_uint_eq(vms_get_u64(b + 48), tu_xxh3(want, 48));
}
END_TEST

START_TEST(hdr_roundtrip)
{
	struct vms_rec_hdr h = sample_hdr(), d;
	uint8_t b[VMS_HDR_LEN];
	const char *why;

	for (int f = 0; f <= 1; f++) {
		h.flags = (uint8_t)f;
		h.codec = (uint8_t)(f ? 200 : 0);
		vms_hdr_encode(&h, b);
		memset(&d, 0xcc, sizeof(d));
		ck_assert_int_eq(vms_hdr_decode(&d, b, &why), 0);
		ck_assert_uint_eq(d.type, h.type);
		ck_assert_uint_eq(d.flags, h.flags);
		ck_assert_uint_eq(d.codec, h.codec);
		ck_assert_uint_eq(d.device, h.device);
		ck_assert_uint_eq(d.seq, h.seq);
		ck_assert_uint_eq(d.offset, h.offset);
		ck_assert_uint_eq(d.raw_len, h.raw_len);
		ck_assert_uint_eq(d.wire_len, h.wire_len);
		ck_assert_uint_eq(d.lane, h.lane);
		ck_assert_uint_eq(d.epoch, h.epoch);
		ck_assert_uint_eq(d.payload_sum, h.payload_sum);
	}
}
END_TEST

/* Every bit of every header byte is covered by header_sum. */
START_TEST(hdr_sum_every_bit)
{
	struct vms_rec_hdr h = sample_hdr(), d;
	uint8_t b[VMS_HDR_LEN];
	const char *why;

	vms_hdr_encode(&h, b);
	for (size_t i = 0; i < VMS_HDR_LEN; i++) {
		for (int bit = 0; bit < 8; bit++) {
			b[i] ^= (uint8_t)(1u << bit);
			ck_assert_int_eq(vms_hdr_decode(&d, b, &why), VMS_EHDRSUM);
			b[i] ^= (uint8_t)(1u << bit);
		}
	}
	ck_assert_int_eq(vms_hdr_decode(&d, b, &why), 0);
}
END_TEST

START_TEST(hdr_reserved_and_flags)
{
	struct vms_rec_hdr h = sample_hdr(), d;
	static const size_t reserved[] = { 3, 36, 37, 38, 39 };
	uint8_t b[VMS_HDR_LEN];
	const char *why;

	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		for (int bit = 0; bit < 8; bit++) {
			vms_hdr_encode(&h, b);
			b[reserved[i]] = (uint8_t)(1u << bit);
			tu_hdr_resum(b);
			ck_assert_int_eq(vms_hdr_decode(&d, b, &why), VMS_ERESERVED);
		}
	}
	for (int bit = 1; bit < 8; bit++) {
		h.flags = (uint8_t)(1u << bit);
		vms_hdr_encode(&h, b);
		ck_assert_int_eq(vms_hdr_decode(&d, b, &why), VMS_EFLAGS);
		h.flags = (uint8_t)(1u << bit | 1u);
		vms_hdr_encode(&h, b);
		ck_assert_int_eq(vms_hdr_decode(&d, b, &why), VMS_EFLAGS);
	}
	/* reserved before flags */
	h.flags = 0x80;
	vms_hdr_encode(&h, b);
	b[3] = 1;
	tu_hdr_resum(b);
	ck_assert_int_eq(vms_hdr_decode(&d, b, &why), VMS_ERESERVED);
	/* the encoder never writes reserved bytes */
	h = sample_hdr();
	vms_hdr_encode(&h, b);
	ck_assert_uint_eq(b[3], 0);
	ck_assert_uint_eq(tu_le32(b + 36), 0);
}
END_TEST

/* A preamble struct for vms_hdr_check: chunk_cap 65536, codec 64 declared. */
static struct vms_preamble check_pre(void)
{
	struct vms_preamble p;

	memset(&p, 0, sizeof(p));
	p.major = 1;
	p.chunk_cap = 65536;
	p.lanes = 1;
	p.ncodecs = 1;
	p.codecs[0].id = 64;
	snprintf(p.codecs[0].name, sizeof(p.codecs[0].name), "x");
	return p;
}

static int hcheck(uint8_t type, uint8_t flags, uint8_t codec, uint32_t raw, uint32_t wire,
		  uint64_t sum, uint32_t *body)
{
	struct vms_preamble p = check_pre();
	struct vms_rec_hdr h = { .type = type, .flags = flags, .codec = codec, .raw_len = raw,
				 .wire_len = wire, .payload_sum = sum };
	const char *why = NULL;
	uint32_t dummy;
	int rc = vms_hdr_check(&h, &p, body ? body : &dummy, &why);

	if (rc)
		ck_assert_msg(why && *why, "vms_hdr_check error %d without a reason", rc);
	return rc;
}

START_TEST(hdr_check_data)
{
	uint32_t body = 0;

	ck_assert_int_eq(hcheck(VMS_REC_DATA, 0, 0, 1, 1, 0, &body), 0);
	ck_assert_uint_eq(body, 1);
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 0, 0, 65536, 65536, 0, &body), 0);
	ck_assert_uint_eq(body, 65536);
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 0, 0, 0, 0, 0, NULL), VMS_ELENGTH);
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 0, 0, 65537, 65537, 0, NULL), VMS_ELENGTH);
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 0, 0, 0xffffffffu, 0xffffffffu, 0, NULL), VMS_ELENGTH);
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 0, 0, 100, 99, 0, NULL), VMS_ELENGTH);
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 0, 0, 100, 101, 0, NULL), VMS_ELENGTH);
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 0, 0, 100, 0xfffffff0u, 0, NULL), VMS_ELENGTH);
	/* compressed: 0 < body < raw_len */
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 0, 64, 100, 99, 0, &body), 0);
	ck_assert_uint_eq(body, 99);
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 0, 64, 100, 1, 0, NULL), 0);
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 0, 64, 100, 100, 0, NULL), VMS_ELENGTH);
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 0, 64, 100, 0, 0, NULL), VMS_ELENGTH);
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 0, 64, 100, 200, 0, NULL), VMS_ELENGTH);
	/* codec not declared (lengths fine) */
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 0, 65, 100, 50, 0, NULL), VMS_ECODEC);
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 0, 1, 100, 50, 0, NULL), VMS_ECODEC);
	/* lengths are checked before the codec */
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 0, 65, 100, 100, 0, NULL), VMS_ELENGTH);
	/* encrypted: wire = body + 24, payload_sum 0 */
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 1, 0, 100, 124, 0, &body), 0);
	ck_assert_uint_eq(body, 100);
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 1, 0, 100, 123, 0, NULL), VMS_ELENGTH);
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 1, 0, 100, 23, 0, NULL), VMS_ELENGTH);
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 1, 0, 100, 124, 1, NULL), VMS_ERESERVED);
	ck_assert_int_eq(hcheck(VMS_REC_DATA, 1, 64, 100, 24 + 40, 0, &body), 0);
	ck_assert_uint_eq(body, 40);
}
END_TEST

START_TEST(hdr_check_zero)
{
	uint32_t body = 99;

	ck_assert_int_eq(hcheck(VMS_REC_ZERO, 0, 0, 1, 0, 0, &body), 0);
	ck_assert_uint_eq(body, 0);
	ck_assert_int_eq(hcheck(VMS_REC_ZERO, 0, 0, 65536, 0, 0, NULL), 0);
	ck_assert_int_eq(hcheck(VMS_REC_ZERO, 0, 0, 0, 0, 0, NULL), VMS_ELENGTH);
	ck_assert_int_eq(hcheck(VMS_REC_ZERO, 0, 0, 65537, 0, 0, NULL), VMS_ELENGTH);
	ck_assert_int_eq(hcheck(VMS_REC_ZERO, 0, 0, 100, 1, 0, NULL), VMS_ELENGTH);
	ck_assert_int_eq(hcheck(VMS_REC_ZERO, 0, 0, 100, 100, 0, NULL), VMS_ELENGTH);
	ck_assert_int_eq(hcheck(VMS_REC_ZERO, 0, 64, 100, 0, 0, NULL), VMS_ECODEC);
	ck_assert_int_eq(hcheck(VMS_REC_ZERO, 1, 0, 100, 24, 0, &body), 0);
	ck_assert_uint_eq(body, 0);
	ck_assert_int_eq(hcheck(VMS_REC_ZERO, 1, 0, 100, 25, 0, NULL), VMS_ELENGTH);
}
END_TEST

/* Control records (every other type, known or not): body == raw_len <= 4096,
 * codec 0. */
START_TEST(hdr_check_control)
{
	static const uint8_t types[] = { VMS_REC_DEVICE_BEGIN, VMS_REC_PHASE, VMS_REC_DEVICE_END,
					 VMS_REC_EOS, VMS_REC_ABORT, 0x80, 0x90, 0xff };

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		uint8_t t = types[i];
		uint32_t body = 99;

		ck_assert_int_eq(hcheck(t, 0, 0, 0, 0, 0, &body), 0);
		ck_assert_uint_eq(body, 0);
		ck_assert_int_eq(hcheck(t, 0, 0, 4096, 4096, 0, &body), 0);
		ck_assert_uint_eq(body, 4096);
		ck_assert_int_eq(hcheck(t, 0, 0, 4097, 4097, 0, NULL), VMS_ELENGTH);
		ck_assert_int_eq(hcheck(t, 0, 0, 0xffffffffu, 0xffffffffu, 0, NULL), VMS_ELENGTH);
		ck_assert_int_eq(hcheck(t, 0, 0, 16, 17, 0, NULL), VMS_ELENGTH);
		ck_assert_int_eq(hcheck(t, 0, 0, 16, 15, 0, NULL), VMS_ELENGTH);
		ck_assert_int_eq(hcheck(t, 0, 64, 16, 16, 0, NULL), VMS_ECODEC);
		ck_assert_int_eq(hcheck(t, 1, 0, 16, 40, 0, &body), 0);
		ck_assert_uint_eq(body, 16);
		ck_assert_int_eq(hcheck(t, 1, 0, 16, 16, 0, NULL), VMS_ELENGTH);
	}
	ck_assert(vms_rec_is_control(VMS_REC_EOS));
	ck_assert(vms_rec_is_control(0x90));
	ck_assert(!vms_rec_is_control(VMS_REC_DATA));
	ck_assert(!vms_rec_is_control(VMS_REC_ZERO));
	for (uint32_t t = 0; t < 256; t++)
		ck_assert_int_eq(vms_rec_is_known(t), t >= 1 && t <= 7);
}
END_TEST

/* ---- control payloads ------------------------------------------------------ */

static size_t begin_body(uint8_t *out, uint32_t kind, uint32_t reserved, uint64_t hint,
			 uint16_t name_len, const void *name, size_t name_bytes)
{
	vms_put_u32(out, kind);
	vms_put_u32(out + 4, reserved);
	vms_put_u64(out + 8, hint);
	vms_put_u16(out + 16, name_len);
	memcpy(out + 18, name, name_bytes);
	return 18 + name_bytes;
}

START_TEST(ctl_device_begin)
{
	struct vms_begin_body b;
	uint8_t buf[18 + 300];
	char name[300];
	const char *why;
	size_t n;

	n = begin_body(buf, 7, 0, 12345, 4, "dev0", 4);
	ck_assert_int_eq(vms_begin_decode(&b, buf, n, &why), 0);
	ck_assert_uint_eq(b.kind, 7);
	ck_assert_uint_eq(b.size_hint, 12345);
	ck_assert_uint_eq(b.name_len, 4);
	ck_assert_str_eq(b.name, "dev0");
	/* encoder writes the same bytes */
	{
		uint8_t enc[18 + 4];

		ck_assert_uint_eq(vms_begin_encode(&b, enc), 22);
		ck_assert_mem_eq(enc, buf, 22);
	}
	/* every prefix is too short */
	for (size_t k = 0; k < n; k++)
		ck_assert_int_eq(vms_begin_decode(&b, buf, k, &why), VMS_ELENGTH);
	/* one byte too many */
	buf[n] = 'x';
	ck_assert_int_eq(vms_begin_decode(&b, buf, n + 1, &why), VMS_ELENGTH);
	/* name length 0, 256 */
	n = begin_body(buf, 0, 0, 0, 0, "", 0);
	ck_assert_int_eq(vms_begin_decode(&b, buf, n, &why), VMS_ELENGTH);
	memset(name, 'n', sizeof(name));
	n = begin_body(buf, 0, 0, 0, 256, name, 256);
	ck_assert_int_eq(vms_begin_decode(&b, buf, n, &why), VMS_ELENGTH);
	n = begin_body(buf, 0, 0, 0, 255, name, 255);
	ck_assert_int_eq(vms_begin_decode(&b, buf, n, &why), 0);
	ck_assert_uint_eq(strlen(b.name), 255);
	/* name_len says more than the body holds */
	n = begin_body(buf, 0, 0, 0, 5, "dev0", 4);
	ck_assert_int_eq(vms_begin_decode(&b, buf, n, &why), VMS_ELENGTH);
	/* reserved */
	n = begin_body(buf, 0, 1, 0, 4, "dev0", 4);
	ck_assert_int_eq(vms_begin_decode(&b, buf, n, &why), VMS_ERESERVED);
	n = begin_body(buf, 0, 0x80000000u, 0, 4, "dev0", 4);
	ck_assert_int_eq(vms_begin_decode(&b, buf, n, &why), VMS_ERESERVED);
	/* NUL byte in the name, anywhere */
	for (size_t at = 0; at < 4; at++) {
		char nm[4] = { 'd', 'e', 'v', '0' };

		nm[at] = '\0';
		n = begin_body(buf, 0, 0, 0, 4, nm, 4);
		ck_assert_int_eq(vms_begin_decode(&b, buf, n, &why), VMS_EDEVICE);
	}
}
END_TEST

START_TEST(ctl_eos)
{
	uint8_t buf[32];
	uint64_t records = 0, raw = 0;
	uint32_t devices = 0;
	const char *why;

	ck_assert_uint_eq(vms_eos_encode(0x0102030405060708ull, 77, 3, buf), 24);
	ck_assert_mem_eq(buf, "\x08\x07\x06\x05\x04\x03\x02\x01" "\x4d\0\0\0\0\0\0\0" "\x03\0\0\0" "\0\0\0\0",
			 24);
	ck_assert_int_eq(vms_eos_decode(buf, 24, &records, &raw, &devices, &why), 0);
	ck_assert_uint_eq(records, 0x0102030405060708ull);
	ck_assert_uint_eq(raw, 77);
	ck_assert_uint_eq(devices, 3);
	ck_assert_int_eq(vms_eos_decode(buf, 23, &records, &raw, &devices, &why), VMS_ELENGTH);
	ck_assert_int_eq(vms_eos_decode(buf, 25, &records, &raw, &devices, &why), VMS_ELENGTH);
	ck_assert_int_eq(vms_eos_decode(buf, 0, &records, &raw, &devices, &why), VMS_ELENGTH);
	for (int i = 20; i < 24; i++) {
		buf[i] = 1;
		ck_assert_int_eq(vms_eos_decode(buf, 24, &records, &raw, &devices, &why), VMS_ERESERVED);
		buf[i] = 0;
	}
}
END_TEST

START_TEST(ctl_abort)
{
	uint8_t buf[6 + 1100];
	char text[VMS_ABORT_TEXT_MAX + 1], big[1100];
	int32_t code = 0;
	const char *why;
	size_t n;

	n = vms_abort_encode(VMS_EDEVIO, "gone", buf);
	ck_assert_uint_eq(n, 10);
	ck_assert_mem_eq(buf, "\xe8\xff\xff\xff\x04\x00gone", 10);
	ck_assert_int_eq(vms_abort_decode(buf, n, &code, text, sizeof(text), &why), 0);
	ck_assert_int_eq(code, VMS_EDEVIO);
	ck_assert_str_eq(text, "gone");
	/* NULL and empty text */
	n = vms_abort_encode(VMS_EIO, NULL, buf);
	ck_assert_uint_eq(n, 6);
	ck_assert_int_eq(vms_abort_decode(buf, n, &code, text, sizeof(text), &why), 0);
	ck_assert_str_eq(text, "");
	/* short, long */
	n = vms_abort_encode(VMS_EIO, "gone", buf);
	for (size_t k = 0; k < n; k++)
		ck_assert_int_eq(vms_abort_decode(buf, k, &code, text, sizeof(text), &why), VMS_ELENGTH);
	ck_assert_int_eq(vms_abort_decode(buf, n + 1, &code, text, sizeof(text), &why), VMS_ELENGTH);
	/* text up to 1024 bytes; the encoder cuts longer text */
	memset(big, 't', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	n = vms_abort_encode(INT32_MIN, big, buf);
	ck_assert_uint_eq(n, 6 + 1024);
	ck_assert_int_eq(vms_abort_decode(buf, n, &code, text, sizeof(text), &why), 0);
	ck_assert_int_eq(code, INT32_MIN);
	ck_assert_uint_eq(strlen(text), 1024);
	/* text_len 1025 is invalid even when the bytes are there */
	vms_put_u16(buf + 4, 1025);
	buf[6 + 1024] = 't';
	ck_assert_int_eq(vms_abort_decode(buf, 6 + 1025, &code, text, sizeof(text), &why), VMS_ELENGTH);
	/* a small text buffer truncates, NUL-terminated */
	n = vms_abort_encode(1, "abcdef", buf);
	ck_assert_int_eq(vms_abort_decode(buf, n, &code, text, 4, &why), 0);
	ck_assert_str_eq(text, "abc");
	ck_assert_int_eq(code, 1);
}
END_TEST

START_TEST(ctl_fixed)
{
	uint8_t buf[16];
	const char *why;

	ck_assert_uint_eq(vms_phase_encode(3, 0x01020304u, buf), 8);
	ck_assert_mem_eq(buf, "\x03\0\0\0\x04\x03\x02\x01", 8);
	ck_assert_uint_eq(vms_u64pair_encode(1, 0x0102030405060708ull, buf), 16);
	ck_assert_mem_eq(buf, "\x01\0\0\0\0\0\0\0\x08\x07\x06\x05\x04\x03\x02\x01", 16);
	ck_assert_int_eq(vms_fixed_decode(buf, 8, 8, &why), 0);
	ck_assert_int_eq(vms_fixed_decode(buf, 7, 8, &why), VMS_ELENGTH);
	ck_assert_int_eq(vms_fixed_decode(buf, 9, 8, &why), VMS_ELENGTH);
	ck_assert_int_eq(vms_fixed_decode(buf, 16, 16, &why), 0);
	ck_assert_int_eq(vms_fixed_decode(buf, 0, 16, &why), VMS_ELENGTH);
}
END_TEST

/* ---- errors ------------------------------------------------------------------ */

static const struct {
	int code;
	int value;
	const char *name;
} errs[] = {
	{ VMS_OK, 0, "VMS_OK" },
	{ VMS_ENOMEM, -1, "VMS_ENOMEM" },
	{ VMS_EINVAL, -2, "VMS_EINVAL" },
	{ VMS_EIO, -3, "VMS_EIO" },
	{ VMS_ETRUNCATED, -4, "VMS_ETRUNCATED" },
	{ VMS_EMAGIC, -5, "VMS_EMAGIC" },
	{ VMS_EVERSION, -6, "VMS_EVERSION" },
	{ VMS_EPREAMBLE, -7, "VMS_EPREAMBLE" },
	{ VMS_EHDRSUM, -8, "VMS_EHDRSUM" },
	{ VMS_EPAYLOADSUM, -9, "VMS_EPAYLOADSUM" },
	{ VMS_ELENGTH, -10, "VMS_ELENGTH" },
	{ VMS_ESEQ, -11, "VMS_ESEQ" },
	{ VMS_EOFFSET, -12, "VMS_EOFFSET" },
	{ VMS_ERECTYPE, -13, "VMS_ERECTYPE" },
	{ VMS_EDEVICE, -14, "VMS_EDEVICE" },
	{ VMS_EDIGEST, -15, "VMS_EDIGEST" },
	{ VMS_EEOS, -16, "VMS_EEOS" },
	{ VMS_ETRAILING, -17, "VMS_ETRAILING" },
	{ VMS_ECODEC, -18, "VMS_ECODEC" },
	{ VMS_EDECOMPRESS, -19, "VMS_EDECOMPRESS" },
	{ VMS_EAUTH, -20, "VMS_EAUTH" },
	{ VMS_EKEY, -21, "VMS_EKEY" },
	{ VMS_EPEERABORT, -22, "VMS_EPEERABORT" },
	{ VMS_ETIMEOUT, -23, "VMS_ETIMEOUT" },
	{ VMS_EDEVIO, -24, "VMS_EDEVIO" },
	{ VMS_EFLAGS, -25, "VMS_EFLAGS" },
	{ VMS_EEXIST, -26, "VMS_EEXIST" },
	{ VMS_ESTATE, -27, "VMS_ESTATE" },
	{ VMS_EUNSUPPORTED, -28, "VMS_EUNSUPPORTED" },
	{ VMS_ECANCELED, -29, "VMS_ECANCELED" },
	{ VMS_EPROTO, -30, "VMS_EPROTO" },
	{ VMS_ENET, -31, "VMS_ENET" },
	{ VMS_ETLS, -32, "VMS_ETLS" },
	{ VMS_EEPOCH, -33, "VMS_EEPOCH" },
	{ VMS_ERESERVED, -34, "VMS_ERESERVED" },
	{ VMS_ESINK, -35, "VMS_ESINK" },
	{ VMS_ENODATA, -36, "VMS_ENODATA" },
	{ VMS_EPHASE, -37, "VMS_EPHASE" },
};
#define NERRS (sizeof(errs) / sizeof(errs[0]))

START_TEST(err_values_pinned)
{
	for (size_t i = 0; i < NERRS; i++)
		ck_assert_msg(errs[i].code == errs[i].value, "%s is %d, must stay %d", errs[i].name,
			      errs[i].code, errs[i].value);
}
END_TEST

START_TEST(err_names_and_texts)
{
	for (size_t i = 0; i < NERRS; i++) {
		const char *name = vms_errname(errs[i].code);
		const char *text = vms_strerror(errs[i].code);

		ck_assert_ptr_nonnull(name);
		ck_assert_str_eq(name, errs[i].name);
		ck_assert_ptr_nonnull(text);
		ck_assert_uint_gt(strlen(text), 0);
		ck_assert_str_ne(text, "unknown error");
		for (size_t k = 0; k < i; k++) {
			ck_assert_str_ne(name, vms_errname(errs[k].code));
			ck_assert_str_ne(text, vms_strerror(errs[k].code));
		}
	}
}
END_TEST

/* Codes outside the table, including ones arriving in an ABORT record from
 * the wire (any int32): "unknown error" / NULL, never undefined behaviour.
 * INT_MIN trips error.c lookup(): `(size_t)-code` negates INT_MIN. */
START_TEST(err_unknown_codes)
{
	static const int unknown[] = { 1, 2, 100, INT_MAX, -38, -39, -1000, INT_MIN + 1, INT_MIN };

	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		ck_assert_str_eq(vms_strerror(unknown[i]), "unknown error");
		ck_assert_ptr_null(vms_errname(unknown[i]));
	}
}
END_TEST

START_TEST(rec_type_names)
{
	static const char *const names[] = { NULL, "DEVICE_BEGIN", "DATA", "ZERO", "PHASE",
					     "DEVICE_END", "EOS", "ABORT" };

	for (uint32_t t = 0; t < 8; t++) {
		if (names[t])
			ck_assert_str_eq(vms_rec_type_name(t), names[t]);
		else
			ck_assert_ptr_null(vms_rec_type_name(t));
	}
	ck_assert_ptr_null(vms_rec_type_name(8));
	ck_assert_ptr_null(vms_rec_type_name(0x82));
	ck_assert_ptr_null(vms_rec_type_name(UINT32_MAX));
	ck_assert_uint_eq(VMS_REC_DEVICE_BEGIN, 1);
	ck_assert_uint_eq(VMS_REC_DATA, 2);
	ck_assert_uint_eq(VMS_REC_ZERO, 3);
	ck_assert_uint_eq(VMS_REC_PHASE, 4);
	ck_assert_uint_eq(VMS_REC_DEVICE_END, 5);
	ck_assert_uint_eq(VMS_REC_EOS, 6);
	ck_assert_uint_eq(VMS_REC_ABORT, 7);
	ck_assert_uint_eq(VMS_REC_IGNORABLE, 0x80);
}
END_TEST

/* Format constants of FORMAT.md. */
START_TEST(format_constants)
{
	ck_assert_mem_eq(VMS_MAGIC, "\x8a\x56\x4d\x53\x0d\x0a\x1a\x0a", 8);
	ck_assert_uint_eq(VMS_HDR_LEN, 56);
	ck_assert_uint_eq(VMS_PREAMBLE_MIN, 56);
	ck_assert_uint_eq(VMS_PREAMBLE_MAX, 4096);
	ck_assert_uint_eq(VMS_CHUNK_MIN, 4096);
	ck_assert_uint_eq(VMS_CHUNK_MAX, 16777216);
	ck_assert_uint_eq(VMS_NAME_MAX, 255);
	ck_assert_uint_eq(VMS_DEVICE_NONE, 0xffffffffu);
	ck_assert_uint_eq(VMS_FORMAT_MAJOR, 1);
	ck_assert_uint_eq(VMS_AEAD_OVERHEAD, 24);
	ck_assert_uint_eq(tu_xxh3("", 0), 0x2d06800538d394c2ull);
	ck_assert_uint_eq(tu_xxh3("vmstream", 8), 0x823964198109694dull);
}
END_TEST

static Suite *format_suite(void)
{
	Suite *s = suite_create("format");
	TCase *tc;

	tc = tcase_create("cursor");
	tcase_add_test(tc, cursor_init_left);
	tcase_add_test(tc, cursor_exact_bounds);
	tcase_add_test(tc, cursor_failure_keeps_output);
	tcase_add_test(tc, cursor_bytes_and_ptr);
	tcase_add_test(tc, cursor_huge_lengths);
	tcase_add_test(tc, put_get_le);
	suite_add_tcase(s, tc);

	tc = tcase_create("preamble");
	tcase_add_test(tc, pre_minimal_ok);
	tcase_add_test(tc, pre_magic);
	tcase_add_test(tc, pre_version);
	tcase_add_test(tc, pre_len_bounds);
	tcase_add_test(tc, pre_truncated);
	tcase_add_test(tc, pre_checksum);
	tcase_add_test(tc, pre_flags);
	tcase_add_test(tc, pre_reserved);
	tcase_add_test(tc, pre_chunk_cap);
	tcase_add_test(tc, pre_cipher_consistency);
	tcase_add_test(tc, pre_lanes);
	tcase_add_test(tc, pre_param_overrun);
	tcase_add_test(tc, pre_param_unknown);
	tcase_add_test(tc, pre_param_known_values);
	tcase_add_test(tc, pre_param_duplicates);
	tcase_add_test(tc, pre_param_duplicate_ignorable);
	tcase_add_test(tc, pre_codec_names);
	tcase_add_test(tc, pre_encode_roundtrip);
	suite_add_tcase(s, tc);

	tc = tcase_create("header");
	tcase_add_test(tc, hdr_layout);
	tcase_add_test(tc, hdr_roundtrip);
	tcase_add_test(tc, hdr_sum_every_bit);
	tcase_add_test(tc, hdr_reserved_and_flags);
	tcase_add_test(tc, hdr_check_data);
	tcase_add_test(tc, hdr_check_zero);
	tcase_add_test(tc, hdr_check_control);
	suite_add_tcase(s, tc);

	tc = tcase_create("control");
	tcase_add_test(tc, ctl_device_begin);
	tcase_add_test(tc, ctl_eos);
	tcase_add_test(tc, ctl_abort);
	tcase_add_test(tc, ctl_fixed);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_test(tc, err_values_pinned);
	tcase_add_test(tc, err_names_and_texts);
	tcase_add_test(tc, err_unknown_codes);
	tcase_add_test(tc, rec_type_names);
	tcase_add_test(tc, format_constants);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(format_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
