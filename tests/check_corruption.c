/* SPDX-License-Identifier: MIT */
/*
 * The corruption matrix. One small multi-record stream (two devices, phases,
 * several 4 KiB DATA records, about 16 KB) is damaged in every way below, and
 * the reader must fail with exactly the expected code, having delivered the
 * records before the damaged one and nothing from it or after it.
 *
 * Expected code of a single flipped bit at stream offset `off` (the rule
 * expect_flip() implements; FORMAT.md section 4):
 *   [0, 8)    magic                 -> VMS_EMAGIC
 *   [8, 10)   version_major         -> VMS_EVERSION (1 with a bit flipped is never 1)
 *   [10, 12)  version_minor         -> VMS_EPREAMBLE (preamble_sum no longer matches)
 *   [12, 16)  preamble_len = v      -> VMS_EPREAMBLE if v < 56 or v > 4096;
 *                                      VMS_ETRUNCATED if v > stream length;
 *                                      else VMS_EPREAMBLE (checksum over the wrong span)
 *   [16, P)   rest of the preamble  -> VMS_EPREAMBLE (preamble_sum)
 *   header of record k (56 bytes)   -> VMS_EHDRSUM
 *   payload of record k             -> VMS_EPAYLOADSUM (DATA and control alike)
 * For record errors the message names "record k at byte <header offset>", and
 * exactly records 0..k-1 were delivered; for preamble errors nothing was.
 *
 * Structural damage (records swapped, replayed, dropped, moved, totals
 * falsified) is done with the stream editor of testutil.h, recomputing
 * header_sum / payload_sum so that only the intended rule can fire.
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static const uint8_t fixed_id[16] = "corruption-test";

/* ---- the subject stream ---------------------------------------------------- */

struct subject {
	uint8_t *b;           /* stream bytes */
	size_t n;
	size_t pre_len;
	struct tu_ed ed;      /* its records (positions, headers) */
	uint8_t *dev[2];      /* what each device holds */
	size_t dev_len[2];
};

static struct subject S;

static void w_ok(int rc)
{
	if (rc)
		tu_die("writer: %s (%s)", vms_errname(rc), vms_last_error());
}

/* BEGIN ram, BEGIN nic, PHASE 1/1, ram 6000 B, nic 3000 B, PHASE 1/2,
 * ram 5000 B, PHASE 2/0, nic 1500 B, END nic, PHASE 3/0, END ram, EOS. */
static void subject_build(void)
{
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc dd = VMS_DEVICE_DESC_INIT;
	struct vms_writer *w;
	uint32_t ram, nic;
	int fd = tu_memfd_new();

	memset(&S, 0, sizeof(S));
	S.dev_len[0] = 6000 + 5000;
	S.dev_len[1] = 3000 + 1500;
	for (int i = 0; i < 2; i++) {
		S.dev[i] = tu_xmalloc(S.dev_len[i]);
		tu_fill(S.dev[i], S.dev_len[i], 0xc0 + (uint64_t)i);
	}
	o.chunk_size = 4096;
	o.stream_id = fixed_id;
	o.creator = "corruption-matrix";
	o.size_hint = 15500;
	w_ok(vms_writer_open_fd(&w, fd, &o));
	dd.name = "ram";
	dd.kind = VMS_DEVKIND_VMM;
	w_ok(vms_writer_begin_device(w, &dd, &ram));
	dd.name = "nic";
	dd.kind = VMS_DEVKIND_VFIO;
	w_ok(vms_writer_begin_device(w, &dd, &nic));
	w_ok(vms_writer_phase(w, VMS_PHASE_PRECOPY, 1));
	w_ok(vms_writer_write(w, ram, S.dev[0], 6000));
	w_ok(vms_writer_write(w, nic, S.dev[1], 3000));
	w_ok(vms_writer_phase(w, VMS_PHASE_PRECOPY, 2));
	w_ok(vms_writer_write(w, ram, S.dev[0] + 6000, 5000));
	w_ok(vms_writer_phase(w, VMS_PHASE_SWITCHOVER, 0));
	w_ok(vms_writer_write(w, nic, S.dev[1] + 3000, 1500));
	w_ok(vms_writer_end_device(w, nic));
	w_ok(vms_writer_phase(w, VMS_PHASE_STOPCOPY, 0));
	w_ok(vms_writer_end_device(w, ram));
	w_ok(vms_writer_finish(w));
	vms_writer_free(w);
	S.b = tu_memfd_get(fd, &S.n);
	close(fd);
	if (tu_ed_parse(&S.ed, S.b, S.n) != 0)
		tu_die("subject stream does not frame");
	S.pre_len = S.ed.pre_len;
}

static void subject_free(void)
{
	tu_ed_free(&S.ed);
	free(S.b);
	free(S.dev[0]);
	free(S.dev[1]);
	memset(&S, 0, sizeof(S));
}

/* Index of the record holding stream offset off (off >= pre_len). */
static size_t rec_at(size_t off)
{
	for (size_t k = 0; k < S.ed.n; k++)
		if (off < S.ed.r[k].pos + VMS_HDR_LEN + S.ed.r[k].pl_len)
			return k;
	tu_die("offset %zu beyond the stream", off);
}

/* Bytes of device d carried by DATA records 0..k-1 of the original. */
static size_t dev_bytes_before(uint32_t d, size_t k)
{
	size_t n = 0;

	for (size_t i = 0; i < k; i++)
		if (S.ed.r[i].h.type == VMS_REC_DATA && S.ed.r[i].h.device == d)
			n += S.ed.r[i].h.raw_len;
	return n;
}

/* ---- checking one damaged stream ------------------------------------------ */

static int run_fd = -1;

static void run(const uint8_t *b, size_t n, struct tu_run *r)
{
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;

	if (run_fd < 0)
		run_fd = tu_memfd_new();
	tu_memfd_set(run_fd, b, n);
	tu_run_fd(run_fd, &o, r);
}

/* The reader failed with `code` at original record k (k = SIZE_MAX: at the
 * preamble), after delivering exactly records 0..k-1 and their bytes. */
static void expect_fail_at(const uint8_t *b, size_t n, int code, size_t k, const char *what)
{
	struct tu_run r;
	size_t want_ev = k == SIZE_MAX ? 0 : k;

	run(b, n, &r);
	ck_assert_msg(r.err == code, "%s: got %s (%d), want %s (%d): %s", what, vms_errname(r.err),
		      r.err, vms_errname(code), code, r.msg);
	ck_assert_msg(r.again == code, "%s: error not sticky (%d then %d)", what, r.err, r.again);
	ck_assert_msg(r.nev == want_ev, "%s: %zu events delivered, want %zu", what, r.nev, want_ev);
	for (size_t i = 0; i < r.nev; i++) {
		ck_assert_msg(r.ev[i].seq == i && r.ev[i].type == S.ed.r[i].h.type &&
				      r.ev[i].stream_pos == S.ed.r[i].pos,
			      "%s: event %zu is not original record %zu", what, i, i);
	}
	for (uint32_t d = 0; d < 2; d++) {
		size_t have = r.dev[d].n, want = k == SIZE_MAX ? 0 : dev_bytes_before(d, k);

		ck_assert_msg(have == want, "%s: device %u got %zu bytes, want %zu", what, d, have,
			      want);
		if (have)
			ck_assert_msg(memcmp(r.dev[d].p, S.dev[d], have) == 0,
				      "%s: device %u bytes differ from the original", what, d);
	}
	if (k == SIZE_MAX) {
		ck_assert_msg(strstr(r.msg, "preamble at byte 0") != NULL, "%s: message \"%s\"", what,
			      r.msg);
	} else if (k < S.ed.n) {
		char where[96];

		snprintf(where, sizeof(where), "record %zu at byte %zu", k, S.ed.r[k].pos);
		ck_assert_msg(strstr(r.msg, where) != NULL, "%s: message \"%s\" lacks \"%s\"", what,
			      r.msg, where);
	}
	tu_run_free(&r);
}

/* The rule of the file comment. Sets *k to the failing record (SIZE_MAX for
 * the preamble). */
static int expect_flip(size_t off, int bit, size_t *k)
{
	*k = SIZE_MAX;
	if (off < 8)
		return VMS_EMAGIC;
	if (off < 10)
		return VMS_EVERSION;
	if (off < 12)
		return VMS_EPREAMBLE;
	if (off < 16) {
		uint32_t v = tu_le32(S.b + 12) ^ (uint32_t)(1u << (8 * (off - 12) + (size_t)bit));

		if (v < 56 || v > 4096)
			return VMS_EPREAMBLE;
		return v > S.n ? VMS_ETRUNCATED : VMS_EPREAMBLE;
	}
	if (off < S.pre_len)
		return VMS_EPREAMBLE;
	*k = rec_at(off);
	return off < S.ed.r[*k].pos + VMS_HDR_LEN ? VMS_EHDRSUM : VMS_EPAYLOADSUM;
}

static void check_flip(size_t off, int bit)
{
	uint8_t *b = tu_memdup(S.b, S.n);
	char what[96];
	size_t k;
	int code = expect_flip(off, bit, &k);

	b[off] ^= (uint8_t)(1u << bit);
	snprintf(what, sizeof(what), "bit %d of byte %zu", bit, off);
	expect_fail_at(b, S.n, code, k, what);
	free(b);
}

/* ---- tests ------------------------------------------------------------------- */

START_TEST(subject_is_valid)
{
	struct tu_run r;
	static const uint8_t types[] = {
		VMS_REC_DEVICE_BEGIN, VMS_REC_DEVICE_BEGIN, VMS_REC_PHASE, VMS_REC_DATA,
		VMS_REC_DATA,         VMS_REC_DATA,         VMS_REC_PHASE, VMS_REC_DATA,
		VMS_REC_DATA,         VMS_REC_PHASE,        VMS_REC_DATA,  VMS_REC_DEVICE_END,
		VMS_REC_PHASE,        VMS_REC_DEVICE_END,   VMS_REC_EOS,
	};

	/* the matrix is only meaningful on the stream the comment describes */
	ck_assert_uint_ge(S.n, 10000);
	ck_assert_uint_le(S.n, 20000);
	ck_assert_uint_eq(S.ed.n, sizeof(types));
	for (size_t i = 0; i < S.ed.n; i++)
		ck_assert_uint_eq(S.ed.r[i].h.type, types[i]);
	ck_assert_uint_gt(S.pre_len, 56); /* has parameters */
	run(S.b, S.n, &r);
	ck_assert_int_eq(r.err, 0);
	ck_assert_uint_eq(r.nev, S.ed.n);
	for (uint32_t d = 0; d < 2; d++) {
		ck_assert_uint_eq(r.dev[d].n, S.dev_len[d]);
		ck_assert_mem_eq(r.dev[d].p, S.dev[d], S.dev_len[d]);
	}
	tu_run_free(&r);
}
END_TEST

/* One bit of every byte; the bit varies with the offset. */
START_TEST(flip_every_byte)
{
	for (size_t off = 0; off < S.n; off++)
		check_flip(off, (int)(off % 8));
}
END_TEST

/* All 8 bits of every byte of the preamble and the first record header. */
START_TEST(flip_all_bits_head)
{
	for (size_t off = 0; off < S.pre_len + VMS_HDR_LEN; off++)
		for (int bit = 0; bit < 8; bit++)
			check_flip(off, bit);
}
END_TEST

/* All 8 bits of the first payload byte and the last byte of each record. */
START_TEST(flip_all_bits_record_edges)
{
	for (size_t k = 0; k < S.ed.n; k++) {
		size_t first = S.ed.r[k].pos + VMS_HDR_LEN;
		size_t last = first + S.ed.r[k].pl_len - 1;

		for (int bit = 0; bit < 8; bit++) {
			check_flip(S.ed.r[k].pos, bit);
			check_flip(first - 1, bit);
			check_flip(first, bit);
			check_flip(last, bit);
		}
	}
}
END_TEST

/* preamble_len pointing past the end of a short stream: VMS_ETRUNCATED. */
START_TEST(preamble_len_beyond_stream)
{
	uint8_t *b = tu_memdup(S.b, S.n);

	vms_put_u32(b + 12, 4000);
	expect_fail_at(b, 3000, VMS_ETRUNCATED, SIZE_MAX, "preamble_len 4000, 3000 bytes");
	expect_fail_at(b, 3999, VMS_ETRUNCATED, SIZE_MAX, "preamble_len 4000, 3999 bytes");
	vms_put_u32(b + 12, 4097);
	expect_fail_at(b, 3000, VMS_EPREAMBLE, SIZE_MAX, "preamble_len 4097, 3000 bytes");
	free(b);
}
END_TEST

/* Every truncation length: VMS_ETRUNCATED, with the complete records before
 * the cut delivered. */
START_TEST(truncate_every_length)
{
	for (size_t len = 0; len < S.n; len++) {
		char what[96];
		size_t k;

		snprintf(what, sizeof(what), "cut at %zu", len);
		if (len < S.pre_len) {
			expect_fail_at(S.b, len, VMS_ETRUNCATED, SIZE_MAX, what);
			continue;
		}
		/* first record not wholly inside [0, len) */
		for (k = 0; k < S.ed.n; k++)
			if (S.ed.r[k].pos + VMS_HDR_LEN + S.ed.r[k].pl_len > len)
				break;
		expect_fail_at(S.b, len, VMS_ETRUNCATED, k, what);
	}
}
END_TEST

START_TEST(trailing_bytes)
{
	static const uint8_t extra[] = { 0x00, 0xff, 0x8a };
	uint8_t *b = tu_xmalloc(2 * S.n);
	char where[96];

	memcpy(b, S.b, S.n);
	snprintf(where, sizeof(where), "record %zu at byte %zu", S.ed.n, S.n);
	for (size_t i = 0; i < sizeof(extra); i++) {
		struct tu_run r;

		b[S.n] = extra[i];
		run(b, S.n + 1, &r);
		ck_assert_int_eq(r.err, VMS_ETRAILING);
		ck_assert_int_eq(r.again, VMS_ETRAILING);
		ck_assert_msg(strstr(r.msg, where) != NULL, "message \"%s\"", r.msg);
		/* every byte arrived; only the end is refused */
		ck_assert_uint_eq(r.dev[0].n, S.dev_len[0]);
		ck_assert_uint_eq(r.dev[1].n, S.dev_len[1]);
		ck_assert_uint_ge(r.nev, S.ed.n - 1);
		tu_run_free(&r);
	}
	/* a whole second stream appended */
	memcpy(b + S.n, S.b, S.n);
	{
		struct tu_run r;

		run(b, 2 * S.n, &r);
		ck_assert_int_eq(r.err, VMS_ETRAILING);
		tu_run_free(&r);
	}
	free(b);
}
END_TEST

/* ---- structural damage ---------------------------------------------------- */

static void ed_copy(struct tu_ed *e)
{
	if (tu_ed_parse(e, S.b, S.n) != 0)
		tu_die("parse");
}

/* Serialise e and expect `code` at original record k. */
static void expect_ed(struct tu_ed *e, int code, size_t k, const char *what)
{
	size_t n;
	uint8_t *b = tu_ed_build(e, &n);

	expect_fail_at(b, n, code, k, what);
	free(b);
}

START_TEST(records_swapped)
{
	for (size_t k = 0; k + 1 < S.ed.n; k++) {
		struct tu_ed e;
		struct tu_rec tmp;
		char what[96];

		ed_copy(&e);
		tmp = e.r[k];
		e.r[k] = e.r[k + 1];
		e.r[k + 1] = tmp;
		snprintf(what, sizeof(what), "records %zu and %zu swapped", k, k + 1);
		expect_ed(&e, VMS_ESEQ, k, what);
		tu_ed_free(&e);
	}
}
END_TEST

/* Record k replayed right after itself. */
START_TEST(record_duplicated)
{
	for (size_t k = 0; k < S.ed.n; k++) {
		struct tu_ed e;
		char what[96];

		ed_copy(&e);
		tu_ed_insert(&e, k + 1, &e.r[k].h, e.r[k].pl, e.r[k].pl_len);
		snprintf(what, sizeof(what), "record %zu replayed", k);
		if (k + 1 == S.ed.n) {
			/* a replayed EOS is a byte after EOS */
			size_t n;
			uint8_t *b = tu_ed_build(&e, &n);
			struct tu_run r;

			run(b, n, &r);
			ck_assert_int_eq(r.err, VMS_ETRAILING);
			tu_run_free(&r);
			free(b);
		} else {
			expect_ed(&e, VMS_ESEQ, k + 1, what);
		}
		tu_ed_free(&e);
	}
}
END_TEST

START_TEST(record_dropped)
{
	for (size_t k = 0; k < S.ed.n; k++) {
		struct tu_ed e;
		char what[96];

		ed_copy(&e);
		tu_ed_remove(&e, k);
		snprintf(what, sizeof(what), "record %zu dropped", k);
		/* without the EOS the stream just ends */
		expect_ed(&e, k + 1 == S.ed.n ? VMS_ETRUNCATED : VMS_ESEQ, k, what);
		tu_ed_free(&e);
	}
}
END_TEST

/* A record dropped and the rest re-numbered to close the gap: the next rule
 * that sees the difference fires (device order, offsets, totals). `at` is the
 * original index of the record that fails; it sits at at - 1 after the drop. */
START_TEST(record_dropped_renumbered)
{
	for (size_t k = 0; k + 1 < S.ed.n; k++) {
		const struct vms_rec_hdr *gone = &S.ed.r[k].h;
		size_t at = S.ed.n - 1; /* default: only the EOS notices */
		int code = VMS_EEOS;
		struct tu_ed e;
		struct tu_run r;
		uint8_t *b;
		size_t n;

		if (gone->type == VMS_REC_DEVICE_BEGIN || gone->type == VMS_REC_DATA) {
			for (at = k + 1; at < S.ed.n; at++) {
				const struct vms_rec_hdr *h = &S.ed.r[at].h;

				if (gone->type == VMS_REC_DEVICE_BEGIN &&
				    (h->type == VMS_REC_DEVICE_BEGIN || h->device == gone->device)) {
					code = VMS_EDEVICE; /* index not next / device not begun */
					break;
				}
				if (gone->type == VMS_REC_DATA && h->device == gone->device) {
					code = h->type == VMS_REC_DATA ? VMS_EOFFSET : VMS_EDIGEST;
					break;
				}
			}
		}
		ed_copy(&e);
		tu_ed_remove(&e, k);
		tu_ed_renumber(&e);
		b = tu_ed_build(&e, &n);
		run(b, n, &r);
		ck_assert_msg(r.err == code, "record %zu dropped, renumbered: got %s, want %s (%s)", k,
			      vms_errname(r.err), vms_errname(code), r.msg);
		ck_assert_uint_eq(r.nev, at - 1);
		tu_run_free(&r);
		free(b);
		tu_ed_free(&e);
	}
}
END_TEST

/* A DATA record claiming another offset (header re-checksummed). */
START_TEST(data_wrong_offset)
{
	static const int64_t delta[] = { 1, -1, 4096, -4096, 1ll << 40 };

	for (size_t k = 0; k < S.ed.n; k++) {
		if (S.ed.r[k].h.type != VMS_REC_DATA)
			continue;
		for (size_t i = 0; i < sizeof(delta) / sizeof(delta[0]); i++) {
			struct tu_ed e;
			char what[96];

			if (delta[i] < 0 && S.ed.r[k].h.offset < (uint64_t)-delta[i])
				continue;
			ed_copy(&e);
			e.r[k].h.offset += (uint64_t)delta[i];
			snprintf(what, sizeof(what), "DATA %zu offset %+lld", k, (long long)delta[i]);
			expect_ed(&e, VMS_EOFFSET, k, what);
			tu_ed_free(&e);
		}
	}
}
END_TEST

/* A DATA record moved to where another one of its device belongs. */
START_TEST(data_moved)
{
	/* records 3 (ram @0) and 7 (ram @6000): exchange their payloads and
	 * offsets, keeping seq: seq 3 then claims ram @6000 */
	struct tu_ed e;

	ed_copy(&e);
	ck_assert_uint_eq(e.r[3].h.offset, 0);
	ck_assert_uint_eq(e.r[7].h.offset, 6000);
	ck_assert_uint_eq(e.r[3].h.device, e.r[7].h.device);
	{
		struct tu_rec tmp = e.r[3];
		uint64_t s3 = e.r[3].h.seq, s7 = e.r[7].h.seq;

		e.r[3] = e.r[7];
		e.r[7] = tmp;
		e.r[3].h.seq = s3;
		e.r[7].h.seq = s7;
	}
	expect_ed(&e, VMS_EOFFSET, 3, "DATA records 3 and 7 exchanged");
	tu_ed_free(&e);
}
END_TEST

START_TEST(device_end_wrong)
{
	for (size_t k = 0; k < S.ed.n; k++) {
		if (S.ed.r[k].h.type != VMS_REC_DEVICE_END)
			continue;
		for (int field = 0; field < 2; field++) {
			for (int bit = 0; bit < 64; bit += 9) {
				struct tu_ed e;
				char what[96];

				ed_copy(&e);
				vms_put_u64(e.r[k].pl + 8 * field,
					    vms_get_u64(e.r[k].pl + 8 * field) ^ (1ull << bit));
				tu_ed_fix_sum(&e, k);
				snprintf(what, sizeof(what), "DEVICE_END %zu %s bit %d", k,
					 field ? "digest" : "total", bit);
				expect_ed(&e, VMS_EDIGEST, k, what);
				tu_ed_free(&e);
			}
		}
	}
}
END_TEST

START_TEST(eos_wrong)
{
	size_t k = S.ed.n - 1;
	static const struct {
		size_t off, width;
		uint64_t x;
		int code;
	} cases[] = {
		{ 0, 8, 1, VMS_EEOS },         /* records */
		{ 0, 8, 1ull << 63, VMS_EEOS },
		{ 8, 8, 1, VMS_EEOS },         /* raw_bytes */
		{ 8, 8, 1ull << 20, VMS_EEOS },
		{ 16, 4, 1, VMS_EEOS },        /* devices */
		{ 16, 4, 3, VMS_EEOS },
		{ 20, 4, 1, VMS_ERESERVED },   /* reserved */
		{ 20, 4, 0x80000000u, VMS_ERESERVED },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tu_ed e;
		char what[96];

		ed_copy(&e);
		if (cases[i].width == 8)
			vms_put_u64(e.r[k].pl + cases[i].off,
				    vms_get_u64(e.r[k].pl + cases[i].off) ^ cases[i].x);
		else
			vms_put_u32(e.r[k].pl + cases[i].off,
				    tu_le32(e.r[k].pl + cases[i].off) ^ (uint32_t)cases[i].x);
		tu_ed_fix_sum(&e, k);
		snprintf(what, sizeof(what), "EOS case %zu", i);
		expect_ed(&e, cases[i].code, k, what);
		tu_ed_free(&e);
	}
	/* an EOS body of 23 or 25 bytes */
	for (uint32_t len = 23; len <= 25; len += 2) {
		struct tu_ed e;

		ed_copy(&e);
		e.r[k].pl = tu_xrealloc(e.r[k].pl, 25);
		e.r[k].pl[24] = 0;
		e.r[k].pl_len = len;
		e.r[k].h.raw_len = len;
		tu_ed_fix_sum(&e, k);
		expect_ed(&e, VMS_ELENGTH, k, "EOS body length");
		tu_ed_free(&e);
	}
}
END_TEST

START_TEST(eos_missing)
{
	struct tu_ed e;

	ed_copy(&e);
	tu_ed_remove(&e, S.ed.n - 1);
	expect_ed(&e, VMS_ETRUNCATED, S.ed.n - 1, "EOS missing");
	tu_ed_free(&e);
}
END_TEST

/* An EOS while devices are still open, and the stream ends there. */
START_TEST(eos_early)
{
	for (size_t k = 2; k + 1 < S.ed.n; k += 3) {
		struct tu_ed e;
		struct vms_rec_hdr h = { .type = VMS_REC_EOS, .device = VMS_DEVICE_NONE,
					 .raw_len = 24 };
		uint8_t body[24] = { 0 };

		ed_copy(&e);
		tu_ed_insert(&e, k, &h, body, sizeof(body));
		while (e.n > k + 1)
			tu_ed_remove(&e, k + 1);
		tu_ed_renumber(&e);
		tu_ed_fix_eos(&e); /* totals right, but devices not ended */
		expect_ed(&e, VMS_EEOS, k, "EOS before the devices ended");
		tu_ed_free(&e);
	}
}
END_TEST

/* FORMAT.md 4.2 checks an EOS record's payload (rule 18) and totals (21)
 * before looking for bytes after it (22): with both wrong, the first rule
 * wins. (libvmstream checks for trailing bytes as soon as it has read the
 * EOS record, before verifying it.) */
START_TEST(eos_rules_before_trailing)
{
	size_t k = S.ed.n - 1;

	for (int c = 0; c < 2; c++) {
		struct tu_ed e;
		uint8_t *b;
		size_t n;

		ed_copy(&e);
		e.r[k].pl[8] ^= 1; /* raw_bytes */
		if (c == 0)
			tu_ed_fix_sum(&e, k); /* totals wrong, sum right */
		b = tu_ed_build(&e, &n);
		b = tu_xrealloc(b, n + 1);
		b[n] = 0;
		expect_fail_at(b, n + 1, c == 0 ? VMS_EEOS : VMS_EPAYLOADSUM, k,
			       c == 0 ? "EOS totals wrong, a byte follows"
				      : "EOS sum wrong, a byte follows");
		free(b);
		tu_ed_free(&e);
	}
}
END_TEST

static void insert_unknown(struct tu_ed *e, size_t at, uint8_t type, const void *pl, uint32_t len)
{
	struct vms_rec_hdr h = { .type = type, .device = VMS_DEVICE_NONE, .raw_len = len };

	tu_ed_insert(e, at, &h, pl, len);
	tu_ed_fix_sum(e, at);
	tu_ed_renumber(e);
	tu_ed_fix_eos(e);
}

START_TEST(unknown_critical_type)
{
	static const uint8_t types[] = { 0x00, 0x08, 0x10, 0x42, 0x7f };

	for (size_t i = 0; i < sizeof(types); i++) {
		for (size_t at = 0; at < S.ed.n; at += 4) {
			struct tu_ed e;
			char what[96];

			ed_copy(&e);
			insert_unknown(&e, at, types[i], "future", 6);
			snprintf(what, sizeof(what), "type 0x%02x at %zu", types[i], at);
			expect_ed(&e, VMS_ERECTYPE, at, what);
			tu_ed_free(&e);
		}
	}
}
END_TEST

/* Unknown ignorable records are verified, skipped, and counted. */
START_TEST(unknown_ignorable_type)
{
	static const uint8_t types[] = { 0x80, 0x88, 0xc7, 0xff };

	for (size_t i = 0; i < sizeof(types); i++) {
		for (size_t at = 0; at < S.ed.n; at += 3) {
			struct tu_ed e;
			struct tu_run r;
			uint8_t *b;
			size_t n;
			char pl[100];

			memset(pl, (int)types[i], sizeof(pl));
			ed_copy(&e);
			insert_unknown(&e, at, types[i], pl, (uint32_t)(i * 33)); /* 0..99 bytes */
			b = tu_ed_build(&e, &n);
			run(b, n, &r);
			ck_assert_msg(r.err == 0, "type 0x%02x at %zu: %s", types[i], at, r.msg);
			ck_assert_uint_eq(r.nev, S.ed.n);
			for (size_t j = 0; j < r.nev; j++) {
				ck_assert_uint_eq(r.ev[j].type, S.ed.r[j].h.type);
				ck_assert_uint_eq(r.ev[j].seq, j < at ? j : j + 1);
			}
			ck_assert_uint_eq(r.ev[r.nev - 1].a, S.ed.n); /* EOS records */
			ck_assert_mem_eq(r.dev[0].p, S.dev[0], S.dev_len[0]);
			ck_assert_mem_eq(r.dev[1].p, S.dev[1], S.dev_len[1]);
			ck_assert_uint_eq(r.st.wire_bytes, n);
			tu_run_free(&r);
			free(b);

			/* ... verified: a bad payload_sum is still an error */
			e.r[at].pl_len ? (void)(e.r[at].pl[0] ^= 1) : (void)(e.r[at].h.payload_sum ^= 1);
			expect_ed(&e, VMS_EPAYLOADSUM, at, "ignorable record with a bad sum");
			tu_ed_free(&e);
		}
	}
	/* ... and its lengths are checked like a control record's */
	{
		static uint8_t big[4097];
		struct tu_ed e;

		ed_copy(&e);
		insert_unknown(&e, 1, 0x90, big, sizeof(big));
		expect_ed(&e, VMS_ELENGTH, 1, "ignorable record of 4097 bytes");
		tu_ed_free(&e);
	}
}
END_TEST

/* A header (correct header_sum) announcing 0xFFFFFFF0 payload bytes, and the
 * stream ends right there: the length rule fires before any read, so the
 * answer is VMS_ELENGTH, never VMS_ETRUNCATED. */
START_TEST(huge_wire_len)
{
	static const struct {
		uint8_t type;
		uint32_t raw_len;
	} cases[] = {
		{ VMS_REC_DATA, 100 },          { VMS_REC_DATA, 0xfffffff0u },
		{ VMS_REC_ZERO, 100 },          { VMS_REC_PHASE, 8 },
		{ VMS_REC_DEVICE_END, 0xfffffff0u }, { 0x90, 0xfffffff0u },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t k = 3; k < S.ed.n; k += 4) {
			const struct tu_rec *at = &S.ed.r[k];
			struct vms_rec_hdr h = at->h;
			size_t n = at->pos + VMS_HDR_LEN;
			uint8_t *b = tu_xmalloc(n);
			char what[96];

			memcpy(b, S.b, at->pos);
			h.type = cases[i].type;
			h.raw_len = cases[i].raw_len;
			h.wire_len = 0xfffffff0u;
			if (h.type != VMS_REC_DATA && h.type != VMS_REC_ZERO) {
				h.device = VMS_DEVICE_NONE;
				h.offset = 0;
			}
			vms_hdr_encode(&h, b + at->pos);
			snprintf(what, sizeof(what), "case %zu at record %zu", i, k);
			expect_fail_at(b, n, VMS_ELENGTH, k, what);

			/* The same through a non-blocking pipe whose writer stays
			 * open: any attempt to read the payload would find no data
			 * (EAGAIN: VMS_EIO) instead of the verdict. */
			if (k == 3) {
				struct vms_reader_opts o = VMS_READER_OPTS_INIT;
				struct tu_run r;
				int p[2];

				ck_assert_int_eq(pipe(p), 0);
				ck_assert_int_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
				ck_assert_uint_lt(n, 65536); /* fits in the pipe */
				ck_assert_int_eq(write(p[1], b, n), (ssize_t)n);
				tu_run_fd(p[0], &o, &r);
				ck_assert_msg(r.err == VMS_ELENGTH, "%s via pipe: %s", what, r.msg);
				ck_assert_uint_eq(r.nev, k);
				tu_run_free(&r);
				close(p[0]);
				close(p[1]);
			}
			free(b);
		}
	}
}
END_TEST

/* Header fields changed and re-checksummed: each rule of FORMAT.md 4
 * "Records" 3-10 (and the ZERO sum of 13) with its own code. */
enum hop {
	H_RES3, H_RES36, H_FLAG1, H_ENC, H_LANE, H_EPOCH, H_DATA_BIG, H_CTL_BIG, H_CTL_CODEC,
	H_DATA_CODEC, H_DEV_UNKNOWN, H_BEGIN_ORDER, H_PHASE_DEV, H_CTL_OFFSET, H_ZERO_SUM,
};

START_TEST(header_rules)
{
	static const struct {
		enum hop op;
		const char *what;
		size_t k; /* record changed (and failing) */
		int code;
	} cases[] = {
		{ H_RES3, "reserved byte 3", 3, VMS_ERESERVED },
		{ H_RES36, "reserved bytes 36..39", 4, VMS_ERESERVED },
		{ H_FLAG1, "flag bit 1", 5, VMS_EFLAGS },
		{ H_ENC, "ENCRYPTED in a plain stream", 3, VMS_EFLAGS },
		{ H_LANE, "lane 1 of 1", 6, VMS_EEPOCH },
		{ H_EPOCH, "epoch 1 unencrypted", 7, VMS_EEPOCH },
		{ H_DATA_BIG, "DATA raw_len above chunk_cap", 7, VMS_ELENGTH },
		{ H_CTL_BIG, "control raw_len 4097", 2, VMS_ELENGTH },
		{ H_CTL_CODEC, "codec on a control record", 2, VMS_ECODEC },
		{ H_DATA_CODEC, "undeclared codec on DATA", 4, VMS_ECODEC },
		{ H_DEV_UNKNOWN, "DATA for a device not begun", 4, VMS_EDEVICE },
		{ H_BEGIN_ORDER, "DEVICE_BEGIN out of order", 1, VMS_EDEVICE },
		{ H_PHASE_DEV, "PHASE naming a device", 6, VMS_EDEVICE },
		{ H_CTL_OFFSET, "control record with an offset", 6, VMS_EOFFSET },
		{ H_ZERO_SUM, "ZERO with a payload_sum", 3, VMS_EPAYLOADSUM },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tu_ed e;
		struct tu_rec *r;
		size_t n, k = cases[i].k;
		uint8_t *b;

		ed_copy(&e);
		r = &e.r[k];
		switch (cases[i].op) {
		case H_RES3:
		case H_RES36:
			break; /* patched after encoding */
		case H_FLAG1: r->h.flags = 0x02; break;
		case H_ENC: r->h.flags = 0x01; break;
		case H_LANE: r->h.lane = 1; break;
		case H_EPOCH: r->h.epoch = 1; break;
		case H_DATA_BIG:
		case H_CTL_BIG:
			r->pl = tu_xrealloc(r->pl, 4097);
			memset(r->pl + r->pl_len, 0x33, 4097 - r->pl_len);
			r->pl_len = r->h.raw_len = 4097;
			tu_ed_fix_sum(&e, k);
			break;
		case H_CTL_CODEC: r->h.codec = 64; break;
		case H_DATA_CODEC:
			r->h.codec = 64;
			r->pl_len = r->h.raw_len - 1;
			break;
		case H_DEV_UNKNOWN: r->h.device = 2; break;
		case H_BEGIN_ORDER: r->h.device = 0; break;
		case H_PHASE_DEV: r->h.device = 0; break;
		case H_CTL_OFFSET: r->h.offset = 8; break;
		case H_ZERO_SUM:
			r->h.type = VMS_REC_ZERO;
			r->pl_len = 0;
			r->h.payload_sum = 1;
			break;
		}
		b = tu_ed_build(&e, &n);
		if (cases[i].op == H_RES3) {
			b[e.r[k].pos + 3] = 1;
			tu_hdr_resum(b + e.r[k].pos);
		} else if (cases[i].op == H_RES36) {
			b[e.r[k].pos + 38] = 0x10;
			tu_hdr_resum(b + e.r[k].pos);
		}
		expect_fail_at(b, n, cases[i].code, k, cases[i].what);
		free(b);
		tu_ed_free(&e);
	}
}
END_TEST

/* DATA for a device after its (correct) DEVICE_END. */
START_TEST(data_after_end)
{
	struct tu_ed e;
	struct tu_run r;
	struct tu_rec tmp;
	uint8_t *b;
	size_t n;

	/* original 10 = DATA nic @3000 (1500), 11 = END nic: put the END first
	 * and make it match the 3000 bytes nic has had by then */
	ed_copy(&e);
	ck_assert_uint_eq(e.r[10].h.type, VMS_REC_DATA);
	ck_assert_uint_eq(e.r[11].h.type, VMS_REC_DEVICE_END);
	tmp = e.r[10];
	e.r[10] = e.r[11];
	e.r[11] = tmp;
	tu_ed_renumber(&e);
	vms_put_u64(e.r[10].pl, 3000);
	vms_put_u64(e.r[10].pl + 8, tu_xxh3(S.dev[1], 3000));
	tu_ed_fix_sum(&e, 10);
	b = tu_ed_build(&e, &n);
	run(b, n, &r);
	ck_assert_int_eq(r.err, VMS_EDEVICE);
	ck_assert_uint_eq(r.nev, 11);
	ck_assert_uint_eq(r.ev[10].type, VMS_REC_DEVICE_END);
	ck_assert_uint_eq(r.ev[10].a, 3000);
	ck_assert_uint_eq(r.dev[1].n, 3000);
	ck_assert_ptr_nonnull(strstr(r.msg, "record 11 at byte"));
	tu_run_free(&r);
	free(b);
	tu_ed_free(&e);
}
END_TEST

/* Control payloads with bad fields (payload_sum recomputed). */
START_TEST(control_payload_rules)
{
	struct tu_ed e;

	/* DEVICE_BEGIN: NUL in the name, reserved field, inconsistent name_len */
	ed_copy(&e);
	e.r[1].pl[19] = 0;
	tu_ed_fix_sum(&e, 1);
	expect_ed(&e, VMS_EDEVICE, 1, "NUL in a device name");
	tu_ed_free(&e);
	ed_copy(&e);
	e.r[1].pl[5] = 1;
	tu_ed_fix_sum(&e, 1);
	expect_ed(&e, VMS_ERESERVED, 1, "DEVICE_BEGIN reserved");
	tu_ed_free(&e);
	ed_copy(&e);
	e.r[1].pl[16] = 2;
	tu_ed_fix_sum(&e, 1);
	expect_ed(&e, VMS_ELENGTH, 1, "DEVICE_BEGIN name_len");
	tu_ed_free(&e);
	/* PHASE and DEVICE_END of the wrong length */
	ed_copy(&e);
	e.r[2].pl_len = e.r[2].h.raw_len = 7;
	tu_ed_fix_sum(&e, 2);
	expect_ed(&e, VMS_ELENGTH, 2, "PHASE of 7 bytes");
	tu_ed_free(&e);
	ed_copy(&e);
	e.r[11].pl_len = e.r[11].h.raw_len = 8;
	tu_ed_fix_sum(&e, 11);
	expect_ed(&e, VMS_ELENGTH, 11, "DEVICE_END of 8 bytes");
	tu_ed_free(&e);
}
END_TEST

/* A preamble that declares a codec no reader has: refused at the preamble
 * (FORMAT.md 2.1), before any record. */
START_TEST(unknown_codec_declared)
{
	static const char v[] = "\x40x-no-such-codec";
	struct tu_ed e;

	ed_copy(&e);
	tu_ed_add_param(&e, VMS_PARAM_CODEC, v, (uint16_t)(sizeof(v) - 1));
	expect_ed(&e, VMS_ECODEC, SIZE_MAX, "undeclared codec name");
	tu_ed_free(&e);
}
END_TEST

static Suite *corruption_suite(void)
{
	Suite *s = suite_create("corruption");
	TCase *tc;

	tc = tcase_create("bytes");
	tcase_add_unchecked_fixture(tc, subject_build, subject_free);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, subject_is_valid);
	tcase_add_test(tc, flip_every_byte);
	tcase_add_test(tc, flip_all_bits_head);
	tcase_add_test(tc, flip_all_bits_record_edges);
	tcase_add_test(tc, preamble_len_beyond_stream);
	tcase_add_test(tc, truncate_every_length);
	tcase_add_test(tc, trailing_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("structure");
	tcase_add_unchecked_fixture(tc, subject_build, subject_free);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, records_swapped);
	tcase_add_test(tc, record_duplicated);
	tcase_add_test(tc, record_dropped);
	tcase_add_test(tc, record_dropped_renumbered);
	tcase_add_test(tc, data_wrong_offset);
	tcase_add_test(tc, data_moved);
	tcase_add_test(tc, device_end_wrong);
	tcase_add_test(tc, eos_wrong);
	tcase_add_test(tc, eos_missing);
	tcase_add_test(tc, eos_early);
	tcase_add_test(tc, eos_rules_before_trailing);
	tcase_add_test(tc, unknown_critical_type);
	tcase_add_test(tc, unknown_ignorable_type);
	tcase_add_test(tc, huge_wire_len);
	tcase_add_test(tc, header_rules);
	tcase_add_test(tc, data_after_end);
	tcase_add_test(tc, control_payload_rules);
	tcase_add_test(tc, unknown_codec_declared);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_require_memfd();
	sr = srunner_create(corruption_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
