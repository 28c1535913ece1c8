/* SPDX-License-Identifier: MIT */
/*
 * The format test vectors: how each one is built and what a reader must make
 * of it. Shared by gen_vectors.c (writes the committed files) and
 * check_vectors.c (rebuilds every vector and compares it byte for byte with
 * the committed file, then reads the file).
 *
 * Valid vectors come straight out of the library's writer with a fixed
 * stream id and no CREATOR entry, so their bytes depend only on the format.
 * Two (unknown_ignorable, minor_version) need something the writer does not
 * emit and are the writer's output plus a documented edit; zero_record is the
 * writer's output with zero elision (the default; the builder converts the
 * chunk itself if a writer ever stops eliding, so the bytes stay pinned);
 * invalid vectors are a valid stream with one defect patched in, all other
 * checksums recomputed so that the reader meets exactly that defect.
 *
 * The expected decodes (`events`) are written by hand from FORMAT.md, not
 * produced by the reader: digests were computed with `xxhsum -H3`, stream
 * positions by adding up record sizes (preamble 56 + parameters, header 56,
 * DEVICE_BEGIN body 18 + name, PHASE 8, DEVICE_END 16, EOS 24, ABORT 6 + text).
 */
#ifndef VMS_TEST_VECTORS_H
#define VMS_TEST_VECTORS_H

#include "../testutil.h"
#include <xxhash.h>
#include <zstd.h>
#include "stream/internal.h" /* vms_writer_set_epoch_limit */
#include "refcrypto.h"

/* "vmstream vectors": easy to spot in a hex dump. */
static const uint8_t tv_stream_id[16] = { 'v', 'm', 's', 't', 'r', 'e', 'a', 'm',
					   ' ', 'v', 'e', 'c', 't', 'o', 'r', 's' };
/* The key of the encrypted vectors (IKM, key_source 1): 00 01 02 ... 1f.
 * vectors.key holds it as a key file (64 hex digits and a newline). */
static const uint8_t tv_key[32] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};
/* Their SALT: 40 41 ... 5f ("@ABC...XYZ[\]^_"), readable in a dump. */
static const uint8_t tv_salt[32] = {
	0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f,
	0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f,
};
/* The text-like input of the zstd vectors: 9 lines, 461 bytes. */
static const char tv_text[] =
	"vmstream stage vectors: zstd level 1 on text\n"
	"line 1: the quick brown fox jumps over the lazy dog\n"
	"line 2: the quick brown fox jumps over the lazy dog\n"
	"line 3: the quick brown fox jumps over the lazy dog\n"
	"line 4: the quick brown fox jumps over the lazy dog\n"
	"line 5: the quick brown fox jumps over the lazy dog\n"
	"line 6: the quick brown fox jumps over the lazy dog\n"
	"line 7: the quick brown fox jumps over the lazy dog\n"
	"line 8: the quick brown fox jumps over the lazy dog\n";
#define TV_TEXT_LEN (sizeof(tv_text) - 1)

struct tv_vector {
	const char *name;
	const char *what;    /* what the stream contains / what is wrong */
	int code;            /* reader result: 0 = valid, else the exact error */
	const char *where;   /* substring of vms_last_error(), or NULL */
	/* Expected events before the end (or the error), one per line:
	 * "preamble ..." (if the preamble was accepted), then
	 * "SEQ TYPE at=POS fields..." (see tv_format_event). */
	const char *events;
	uint8_t *(*build)(size_t *n);
	bool keyed;          /* the reader is given tv_key (vectors.key) */
	bool uses_zstd;      /* the writer's bytes depend on the libzstd version */
};

/* ---- building blocks ----------------------------------------------------- */

struct tv_w {
	int fd;
	struct vms_writer *w;
};

static inline void tv_check(int rc, const char *what)
{
	if (rc < 0)
		tu_die("%s: %s (%s)", what, vms_errname(rc), vms_last_error());
}

/* A writer with the vectors' fixed inputs; compress NULL = none; an
 * encrypted one uses tv_key and tv_salt. */
static inline void tv_open_with(struct tv_w *t, uint64_t size_hint, const char *creator,
				const char *compress, uint32_t cipher)
{
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;

	o.chunk_size = 4096;
	o.stream_id = tv_stream_id;
	o.creator = creator;
	o.size_hint = size_hint;
	o.compress = compress;
	o.threads = 0;
	if (cipher) {
		o.cipher = cipher;
		o.key = tv_key;
		o.salt = tv_salt;
	}
	t->fd = tu_memfd_new();
	tv_check(vms_writer_open_fd(&t->w, t->fd, &o), "vms_writer_open_fd");
}

static inline void tv_open(struct tv_w *t, uint64_t size_hint, const char *creator)
{
	tv_open_with(t, size_hint, creator, NULL, VMS_CIPHER_NONE);
}

static inline uint32_t tv_dev(struct tv_w *t, const char *name, uint32_t kind, uint64_t hint)
{
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	uint32_t idx = UINT32_MAX;

	d.name = name;
	d.kind = kind;
	d.size_hint = hint;
	tv_check(vms_writer_begin_device(t->w, &d, &idx), "vms_writer_begin_device");
	return idx;
}

static inline void tv_write(struct tv_w *t, uint32_t dev, const void *p, size_t n)
{
	tv_check(vms_writer_write(t->w, dev, p, n), "vms_writer_write");
}

static inline void tv_str(struct tv_w *t, uint32_t dev, const char *s)
{
	tv_write(t, dev, s, strlen(s));
}

static inline uint8_t *tv_done(struct tv_w *t, size_t *n)
{
	uint8_t *p;

	vms_writer_free(t->w);
	p = tu_memfd_get(t->fd, n);
	close(t->fd);
	return p;
}

/* One device "dev0" (blob, size unknown) holding `s`, the stream finished. */
static inline uint8_t *tv_one_dev(const char *s, uint64_t size_hint, const char *creator,
				  size_t *n)
{
	struct tv_w t;
	uint32_t d;

	tv_open(&t, size_hint, creator);
	d = tv_dev(&t, "dev0", VMS_DEVKIND_BLOB, UINT64_MAX);
	tv_str(&t, d, s);
	tv_check(vms_writer_end_device(t.w, d), "vms_writer_end_device");
	tv_check(vms_writer_finish(t.w), "vms_writer_finish");
	return tv_done(&t, n);
}

/* Split a stream into records for editing; frees buf. */
static inline void tv_edit_buf(struct tu_ed *e, uint8_t *buf, size_t n)
{
	if (tu_ed_parse(e, buf, n) != 0)
		tu_die("writer output does not frame");
	free(buf);
}

/* Split the stream build() returns into records for editing. */
static inline void tv_edit(struct tu_ed *e, uint8_t *(*build)(size_t *n))
{
	size_t n;
	uint8_t *buf = build(&n);

	tv_edit_buf(e, buf, n);
}

static inline uint8_t *tv_edited(struct tu_ed *e, size_t *n)
{
	uint8_t *p = tu_ed_build(e, n);

	tu_ed_free(e);
	return p;
}

/* ---- valid vectors ------------------------------------------------------- */

static inline uint8_t *tv_empty(size_t *n)
{
	struct tv_w t;

	tv_open(&t, UINT64_MAX, "");
	tv_check(vms_writer_finish(t.w), "vms_writer_finish");
	return tv_done(&t, n);
}

static inline uint8_t *tv_dev_empty(size_t *n)
{
	return tv_one_dev("", UINT64_MAX, "", n);
}

static inline uint8_t *tv_dev_hello(size_t *n)
{
	return tv_one_dev("hello", UINT64_MAX, "", n);
}

static inline uint8_t *tv_two_dev_phases(size_t *n)
{
	struct tv_w t;
	uint32_t ram, nic;

	tv_open(&t, UINT64_MAX, "");
	ram = tv_dev(&t, "ram", VMS_DEVKIND_VMM, 7);
	nic = tv_dev(&t, "nic", VMS_DEVKIND_VFIO, UINT64_MAX);
	tv_check(vms_writer_phase(t.w, VMS_PHASE_PRECOPY, 1), "phase");
	tv_str(&t, ram, "aaaa");
	tv_str(&t, nic, "bbbbbb"); /* each device keeps its own partial chunk */
	tv_str(&t, ram, "cc");
	/* a phase record sends every partial chunk first, in device order */
	tv_check(vms_writer_phase(t.w, VMS_PHASE_SWITCHOVER, 0), "phase");
	tv_check(vms_writer_phase(t.w, VMS_PHASE_STOPCOPY, 0), "phase");
	tv_str(&t, nic, "dd");
	tv_check(vms_writer_end_device(t.w, nic), "end");
	tv_str(&t, ram, "e");
	tv_check(vms_writer_end_device(t.w, ram), "end");
	tv_check(vms_writer_finish(t.w), "finish");
	return tv_done(&t, n);
}

/* Byte i of the chunk_tail device. */
static inline uint8_t tv_tail_byte(size_t i)
{
	return (uint8_t)(i * 31 + 7);
}

static inline uint8_t *tv_chunk_tail(size_t *n)
{
	uint8_t data[4097];
	struct tv_w t;
	uint32_t d;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = tv_tail_byte(i);
	tv_open(&t, UINT64_MAX, "");
	d = tv_dev(&t, "dev0", VMS_DEVKIND_BLOB, sizeof(data));
	tv_write(&t, d, data, sizeof(data));
	tv_check(vms_writer_end_device(t.w, d), "end");
	tv_check(vms_writer_finish(t.w), "finish");
	return tv_done(&t, n);
}

static inline uint8_t *tv_params(size_t *n)
{
	return tv_one_dev("hello", 5, "vmstream-test-vectors", n);
}

/* dev_hello plus an unknown ignorable parameter 0x8123 "future" and an
 * unknown ignorable record 0x90 "skip me" after DEVICE_BEGIN (seq, EOS
 * count and checksums fixed as a writer that knew them would have). */
static inline uint8_t *tv_unknown_ignorable(size_t *n)
{
	struct vms_rec_hdr h = { .type = 0x90, .device = VMS_DEVICE_NONE, .raw_len = 7 };
	struct tu_ed e;

	tv_edit(&e, tv_dev_hello);
	tu_ed_add_param(&e, 0x8123, "future", 6);
	tu_ed_insert(&e, 1, &h, "skip me", 7);
	tu_ed_fix_sum(&e, 1);
	tu_ed_renumber(&e);
	tu_ed_fix_eos(&e);
	return tv_edited(&e, n);
}

/* dev_hello written by a (hypothetical) 1.7 writer: any minor is accepted. */
static inline uint8_t *tv_minor_version(size_t *n)
{
	struct tu_ed e;

	tv_edit(&e, tv_dev_hello);
	vms_put_u16(e.pre + 10, 7);
	tu_pre_fix(e.pre, e.pre_len);
	return tv_edited(&e, n);
}

/* 4096 zero bytes then "tail"; the all-zero chunk as a ZERO record. */
static inline uint8_t *tv_zero_record(size_t *n)
{
	static const uint8_t zeros[4096];
	struct tv_w t;
	struct tu_ed e;
	uint8_t *buf;
	uint32_t d;

	tv_open(&t, UINT64_MAX, "");
	d = tv_dev(&t, "dev0", VMS_DEVKIND_BLOB, UINT64_MAX);
	tv_write(&t, d, zeros, sizeof(zeros));
	tv_str(&t, d, "tail");
	tv_check(vms_writer_end_device(t.w, d), "end");
	tv_check(vms_writer_finish(t.w), "finish");
	buf = tv_done(&t, n);
	tv_edit_buf(&e, buf, *n);
	/* A writer that elides zero chunks already wrote a ZERO record. */
	if (e.r[1].h.type == VMS_REC_DATA) {
		e.r[1].h.type = VMS_REC_ZERO;
		e.r[1].pl_len = 0;
		tu_ed_fix_sum(&e, 1);
	}
	return tv_edited(&e, n);
}

static inline uint8_t *tv_abort(size_t *n)
{
	struct tv_w t;
	uint32_t d;

	tv_open(&t, UINT64_MAX, "");
	d = tv_dev(&t, "dev0", VMS_DEVKIND_BLOB, UINT64_MAX);
	tv_str(&t, d, "hel"); /* pending, dropped by the abort */
	tv_check(vms_writer_abort(t.w, VMS_EDEVIO, "source device failed"), "abort");
	return tv_done(&t, n);
}

/* ---- valid vectors: compressed and encrypted ------------------------------ */

/* Device "text" (tv_text) with compress, cipher as given. */
static inline uint8_t *tv_text_stream(const char *compress, uint32_t cipher, size_t *n)
{
	struct tv_w t;
	uint32_t d;

	tv_open_with(&t, UINT64_MAX, "", compress, cipher);
	d = tv_dev(&t, "text", VMS_DEVKIND_BLOB, UINT64_MAX);
	tv_write(&t, d, tv_text, TV_TEXT_LEN);
	tv_check(vms_writer_end_device(t.w, d), "end");
	tv_check(vms_writer_finish(t.w), "finish");
	return tv_done(&t, n);
}

/* Device "dev0": 4096 zero bytes (a ZERO record), then "hello"; encrypted.
 * epoch_limit: 0 = the writer's default. */
static inline uint8_t *tv_sealed_stream(uint32_t cipher, bool zeros, uint64_t epoch_limit,
					size_t *n)
{
	static const uint8_t zero[4096];
	struct tv_w t;
	uint32_t d;

	tv_open_with(&t, UINT64_MAX, "", NULL, cipher);
	if (epoch_limit)
		vms_writer_set_epoch_limit(t.w, epoch_limit);
	d = tv_dev(&t, "dev0", VMS_DEVKIND_BLOB, UINT64_MAX);
	if (zeros)
		tv_write(&t, d, zero, sizeof(zero));
	tv_str(&t, d, "hello");
	tv_check(vms_writer_end_device(t.w, d), "end");
	tv_check(vms_writer_finish(t.w), "finish");
	return tv_done(&t, n);
}

static inline uint8_t *tv_zstd1_text(size_t *n)
{
	return tv_text_stream("zstd:1", VMS_CIPHER_NONE, n);
}

static inline uint8_t *tv_aes_gcm(size_t *n)
{
	return tv_sealed_stream(VMS_CIPHER_AES_256_GCM, true, 0, n);
}

static inline uint8_t *tv_chacha20_poly1305(size_t *n)
{
	return tv_sealed_stream(VMS_CIPHER_CHACHA20_POLY1305, true, 0, n);
}

static inline uint8_t *tv_zstd1_aes_gcm(size_t *n)
{
	return tv_text_stream("zstd:1", VMS_CIPHER_AES_256_GCM, n);
}

/* The epoch limit lowered to 32 sealed bytes (test hook): every record
 * after the first starts a new epoch. */
static inline uint8_t *tv_aes_gcm_epochs(size_t *n)
{
	return tv_sealed_stream(VMS_CIPHER_AES_256_GCM, false, 32, n);
}

/* ---- invalid vectors ----------------------------------------------------- */

/* dev_hello with its preamble edited (checksum recomputed). */
static inline uint8_t *tv_pre_patch(size_t *n, size_t off, const void *v, size_t len)
{
	struct tu_ed e;

	tv_edit(&e, tv_dev_hello);
	memcpy(e.pre + off, v, len);
	tu_pre_fix(e.pre, e.pre_len);
	return tv_edited(&e, n);
}

static inline uint8_t *tv_bad_magic(size_t *n)
{
	return tv_pre_patch(n, 0, "\x89", 1);
}

static inline uint8_t *tv_version_2(size_t *n)
{
	return tv_pre_patch(n, 8, "\x02\x00", 2);
}

static inline uint8_t *tv_reserved_flag(size_t *n)
{
	return tv_pre_patch(n, 32, "\x02\x00\x00\x00", 4);
}

static inline uint8_t *tv_reserved_field(size_t *n)
{
	return tv_pre_patch(n, 44, "\x01\x00\x00\x00", 4);
}

static inline uint8_t *tv_chunk_cap_32m(size_t *n)
{
	struct tu_ed e;

	tv_edit(&e, tv_empty);
	vms_put_u32(e.pre + 36, 32u << 20);
	tu_pre_fix(e.pre, e.pre_len);
	return tv_edited(&e, n);
}

static inline uint8_t *tv_trailing_byte(size_t *n)
{
	uint8_t *p = tv_dev_hello(n);

	p = tu_xrealloc(p, *n + 1);
	p[(*n)++] = 0;
	return p;
}

static inline uint8_t *tv_missing_eos(size_t *n)
{
	struct tv_w t;
	uint32_t d;

	tv_open(&t, UINT64_MAX, "");
	d = tv_dev(&t, "dev0", VMS_DEVKIND_BLOB, UINT64_MAX);
	tv_str(&t, d, "hello");
	tv_check(vms_writer_end_device(t.w, d), "end");
	return tv_done(&t, n); /* no vms_writer_finish(): no EOS */
}

static inline uint8_t *tv_truncated_payload(size_t *n)
{
	uint8_t *p = tv_dev_hello(n);

	*n = 134 + 56 + 2; /* inside the DATA payload */
	return p;
}

static inline uint8_t *tv_seq_gap(size_t *n)
{
	struct tu_ed e;

	tv_edit(&e, tv_dev_hello);
	e.r[1].h.seq = 2;
	return tv_edited(&e, n);
}

/* "hello", PHASE, "world": the second DATA says offset 6 instead of 5. */
static inline uint8_t *tv_offset_gap(size_t *n)
{
	struct tv_w t;
	struct tu_ed e;
	uint8_t *buf;
	uint32_t d;

	tv_open(&t, UINT64_MAX, "");
	d = tv_dev(&t, "dev0", VMS_DEVKIND_BLOB, UINT64_MAX);
	tv_str(&t, d, "hello");
	tv_check(vms_writer_phase(t.w, VMS_PHASE_PRECOPY, 1), "phase");
	tv_str(&t, d, "world");
	tv_check(vms_writer_end_device(t.w, d), "end");
	tv_check(vms_writer_finish(t.w), "finish");
	buf = tv_done(&t, n);
	tv_edit_buf(&e, buf, *n);
	e.r[3].h.offset = 6;
	return tv_edited(&e, n);
}

static inline uint8_t *tv_digest_mismatch(size_t *n)
{
	struct tu_ed e;

	tv_edit(&e, tv_dev_hello);
	e.r[2].pl[8] ^= 1; /* low byte of the digest */
	tu_ed_fix_sum(&e, 2);
	return tv_edited(&e, n);
}

static inline uint8_t *tv_eos_totals(size_t *n)
{
	struct tu_ed e;

	tv_edit(&e, tv_dev_hello);
	vms_put_u64(e.r[3].pl + 8, 6); /* raw_bytes 6, not 5 */
	tu_ed_fix_sum(&e, 3);
	return tv_edited(&e, n);
}

/* A record of type 0x08 (bit 7 clear: critical) after DEVICE_BEGIN. */
static inline uint8_t *tv_unknown_critical_type(size_t *n)
{
	struct vms_rec_hdr h = { .type = 0x08, .device = VMS_DEVICE_NONE, .raw_len = 1 };
	struct tu_ed e;

	tv_edit(&e, tv_dev_hello);
	tu_ed_insert(&e, 1, &h, "x", 1);
	tu_ed_fix_sum(&e, 1);
	tu_ed_renumber(&e);
	tu_ed_fix_eos(&e);
	return tv_edited(&e, n);
}

/* DATA with codec 64 (never declared), body 3 bytes < raw_len 5. */
static inline uint8_t *tv_undeclared_codec(size_t *n)
{
	struct tu_ed e;

	tv_edit(&e, tv_dev_hello);
	e.r[1].h.codec = 64;
	e.r[1].pl_len = 3;
	return tv_edited(&e, n);
}

/* The preamble declares codec 64 "x-no-such-codec", which no reader has. */
static inline uint8_t *tv_unknown_codec_name(size_t *n)
{
	static const char v[] = "\x40x-no-such-codec";
	struct tu_ed e;

	tv_edit(&e, tv_dev_hello);
	tu_ed_add_param(&e, 0x0001, v, (uint16_t)(sizeof(v) - 1));
	return tv_edited(&e, n);
}

static inline uint8_t *tv_dup_param(size_t *n)
{
	struct tu_ed e;

	tv_edit(&e, tv_params);
	tu_ed_add_param(&e, 0x8001, "\x05\0\0\0\0\0\0\0", 8); /* second SIZE_HINT */
	return tv_edited(&e, n);
}

static inline uint8_t *tv_record_flag(size_t *n)
{
	struct tu_ed e;

	tv_edit(&e, tv_dev_hello);
	e.r[1].h.flags = 0x02;
	return tv_edited(&e, n);
}

/* One bit of the DATA header's offset field flipped, header_sum kept. */
static inline uint8_t *tv_hdr_sum(size_t *n)
{
	uint8_t *p = tv_dev_hello(n);

	p[134 + 16] ^= 0x10;
	return p;
}

static inline uint8_t *tv_payload_sum(size_t *n)
{
	uint8_t *p = tv_dev_hello(n);

	p[134 + 56 + 4] = 'p'; /* "hellp" */
	return p;
}

static inline uint8_t *tv_device_not_begun(size_t *n)
{
	struct tu_ed e;

	tv_edit(&e, tv_dev_hello);
	e.r[1].h.device = 1;
	return tv_edited(&e, n);
}

/* An encrypted stream (AES-256-GCM, key file, salt 32 x 0x5a) holding only
 * an EOS record; a reader given no key must refuse it at the preamble. */
static inline uint8_t *tv_encrypted_nokey(size_t *n)
{
	struct vms_rec_hdr h = { .type = VMS_REC_EOS, .flags = VMS_RFLAG_ENCRYPTED,
				 .device = VMS_DEVICE_NONE, .raw_len = 24 };
	uint8_t salt[32], ct[48];
	struct tu_ed e;

	memset(salt, 0x5a, sizeof(salt));
	memset(ct, 0xc3, sizeof(ct)); /* stands for ciphertext + tag */
	tv_edit(&e, tv_empty);
	vms_put_u32(e.pre + 32, VMS_PFLAG_ENCRYPTED);
	e.pre[40] = 1; /* cipher AES-256-GCM */
	e.pre[41] = 1; /* key_source: key file */
	tu_ed_add_param(&e, 0x0002, salt, sizeof(salt));
	tu_ed_remove(&e, 0);
	tu_ed_insert(&e, 0, &h, ct, sizeof(ct));
	return tv_edited(&e, n);
}

/* ---- invalid vectors: the order of the preamble rules -------------------- */

/* dev_hello with preamble parameter entries appended (checksum recomputed). */
static inline void tv_hello_ed(struct tu_ed *e)
{
	tv_edit(e, tv_dev_hello);
}

/* Undefined flag bit 1 and the reserved u32 = 1: rule 8 (flags) first. */
static inline uint8_t *tv_flags_and_reserved(size_t *n)
{
	struct tu_ed e;

	tv_hello_ed(&e);
	vms_put_u32(e.pre + 32, 2);
	vms_put_u32(e.pre + 44, 1);
	tu_pre_fix(e.pre, e.pre_len);
	return tv_edited(&e, n);
}

/* chunk_cap 32 MiB and cipher 3: rule 10 (chunk_cap) before 12 (cipher). */
static inline uint8_t *tv_chunk_cap_and_cipher(size_t *n)
{
	struct tu_ed e;

	tv_hello_ed(&e);
	vms_put_u32(e.pre + 36, 32u << 20);
	e.pre[40] = 3;
	tu_pre_fix(e.pre, e.pre_len);
	return tv_edited(&e, n);
}

/* "zstd" declared with id 2: its id is 1 (FORMAT.md 2.1). */
static inline uint8_t *tv_zstd_id_2(size_t *n)
{
	struct tu_ed e;

	tv_hello_ed(&e);
	tu_ed_add_param(&e, 0x0001, "\x02zstd", 5);
	return tv_edited(&e, n);
}

/* lanes 2 in a file: a file is one lane. */
static inline uint8_t *tv_lanes_2_file(size_t *n)
{
	struct tu_ed e;

	tv_hello_ed(&e);
	vms_put_u16(e.pre + 42, 2);
	tu_pre_fix(e.pre, e.pre_len);
	return tv_edited(&e, n);
}

/* SIZE_HINT (known, ignorable) with a 4-byte value. */
static inline uint8_t *tv_size_hint_len(size_t *n)
{
	struct tu_ed e;

	tv_hello_ed(&e);
	tu_ed_add_param(&e, 0x8001, "\x05\0\0\0", 4);
	return tv_edited(&e, n);
}

/* The unknown ignorable type 0x8123 twice. */
static inline uint8_t *tv_dup_ignorable_param(size_t *n)
{
	struct tu_ed e;

	tv_hello_ed(&e);
	tu_ed_add_param(&e, 0x8123, "one", 3);
	tu_ed_add_param(&e, 0x8123, "two", 3);
	return tv_edited(&e, n);
}

/* 17 CODEC entries (ids 64..80, names x-codec-00..16): at most 16. The
 * names are unknown too, but all entries are checked before any name. */
static inline uint8_t *tv_too_many_codecs(size_t *n)
{
	struct tu_ed e;

	tv_hello_ed(&e);
	for (int i = 0; i < 17; i++) {
		char v[24];

		v[0] = (char)(64 + i);
		snprintf(v + 1, sizeof(v) - 1, "x-codec-%02d", i);
		tu_ed_add_param(&e, 0x0001, v, 11);
	}
	return tv_edited(&e, n);
}

/* An unknown codec name, then a SIZE_HINT with a 4-byte value: rule 17
 * (entries) before rule 19 (names). */
static inline uint8_t *tv_param_before_codec_name(size_t *n)
{
	static const char v[] = "\x40x-no-such-codec";
	struct tu_ed e;

	tv_hello_ed(&e);
	tu_ed_add_param(&e, 0x0001, v, (uint16_t)(sizeof(v) - 1));
	tu_ed_add_param(&e, 0x8001, "\x05\0\0\0", 4);
	return tv_edited(&e, n);
}

/* An unknown codec name and lanes 2 in a file: rule 19 before rule 20. */
static inline uint8_t *tv_codec_name_before_lanes(size_t *n)
{
	static const char v[] = "\x40x-no-such-codec";
	struct tu_ed e;

	tv_hello_ed(&e);
	vms_put_u16(e.pre + 42, 2);
	tu_ed_add_param(&e, 0x0001, v, (uint16_t)(sizeof(v) - 1));
	return tv_edited(&e, n);
}

/* encrypted_nokey declaring an unknown codec, read without a key: rule 19
 * before rule 21. */
static inline uint8_t *tv_codec_name_before_key(size_t *n)
{
	static const char v[] = "\x40x-no-such-codec";
	struct tu_ed e;

	tv_edit(&e, tv_encrypted_nokey);
	tu_ed_add_param(&e, 0x0001, v, (uint16_t)(sizeof(v) - 1));
	return tv_edited(&e, n);
}

/* ---- invalid vectors: the record rules ----------------------------------- */

/* dev_hello with an unknown ignorable record (type 0x90) as seq 1, as in
 * unknown_ignorable, with the header fields given; zstd declared when codec
 * is set, payload_sum wrong when bad_sum. */
static inline uint8_t *tv_ignorable_rec(uint32_t device, uint8_t codec, uint64_t offset,
					uint32_t raw_len, const void *pl, uint32_t pl_len,
					bool bad_sum, size_t *n)
{
	struct vms_rec_hdr h = { .type = 0x90, .codec = codec, .device = device,
				 .offset = offset, .raw_len = raw_len };
	struct tu_ed e;

	tv_edit(&e, tv_dev_hello);
	if (codec)
		tu_ed_add_param(&e, 0x0001, "\x01zstd", 5);
	tu_ed_insert(&e, 1, &h, pl, pl_len);
	tu_ed_fix_sum(&e, 1);
	if (bad_sum)
		e.r[1].h.payload_sum ^= 1;
	tu_ed_renumber(&e);
	tu_ed_fix_eos(&e);
	return tv_edited(&e, n);
}

static inline uint8_t *tv_ignorable_device(size_t *n)
{
	return tv_ignorable_rec(0, 0, 0, 7, "skip me", 7, false, n);
}

static inline uint8_t *tv_ignorable_codec(size_t *n)
{
	return tv_ignorable_rec(VMS_DEVICE_NONE, 1, 0, 7, "skip me", 7, false, n);
}

static inline uint8_t *tv_ignorable_offset(size_t *n)
{
	return tv_ignorable_rec(VMS_DEVICE_NONE, 0, 5, 7, "skip me", 7, false, n);
}

static inline uint8_t *tv_ignorable_raw_len(size_t *n)
{
	return tv_ignorable_rec(VMS_DEVICE_NONE, 0, 0, 3, "skip me", 7, false, n);
}

static inline uint8_t *tv_ignorable_too_long(size_t *n)
{
	static uint8_t big[4097];

	memset(big, 'x', sizeof(big));
	return tv_ignorable_rec(VMS_DEVICE_NONE, 0, 0, sizeof(big), big, sizeof(big), false, n);
}

static inline uint8_t *tv_ignorable_payload_sum(size_t *n)
{
	return tv_ignorable_rec(VMS_DEVICE_NONE, 0, 0, 7, "skip me", 7, true, n);
}

/* The DATA record of dev_hello with offset 1 and its payload cut after 2
 * bytes: the header rules come before the payload is read. */
static inline uint8_t *tv_truncated_bad_offset(size_t *n)
{
	struct tu_ed e;
	uint8_t *p;

	tv_edit(&e, tv_dev_hello);
	e.r[1].h.offset = 1;
	p = tv_edited(&e, n);
	*n = 134 + 56 + 2;
	return p;
}

static inline uint8_t *tv_truncated_header(size_t *n)
{
	uint8_t *p = tv_dev_hello(n);

	*n = 134 + 10; /* inside the DATA header */
	return p;
}

/* Reseal record i of an encrypted stream (key tv_key) with plaintext pt
 * (body || sum) under its header as it now is (FORMAT.md section 5, by the
 * reference implementation). */
static inline void tv_reseal(struct tu_ed *e, size_t i, const uint8_t *pt, size_t pt_len)
{
	struct tu_rec *r = &e->r[i];
	struct ref_stream rs;
	uint8_t key[32], nonce[12], hb[VMS_HDR_LEN];

	if (ref_parse_preamble(&rs, e->pre, e->pre_len) != 0)
		tu_die("reseal: preamble");
	r->h.wire_len = (uint32_t)(pt_len + 16);
	vms_hdr_encode(&r->h, hb); /* what tu_ed_build writes: the AAD */
	if (ref_key(&rs, tv_key, r->h.lane, r->h.epoch, key) != 0)
		tu_die("reseal: key");
	ref_nonce(nonce, r->h.lane, r->h.epoch, r->h.seq);
	free(r->pl);
	r->pl_len = (uint32_t)(pt_len + 16);
	r->pl = tu_xmalloc(r->pl_len);
	if (ref_seal(rs.cipher, key, nonce, hb, VMS_HDR_LEN, pt, pt_len, r->pl) != 0)
		tu_die("reseal: seal");
}

/* aes_gcm with every record moved to epoch 1 (resealed under the keys of
 * epoch 1): valid but for the first record, which must have epoch 0. */
static inline uint8_t *tv_first_epoch_1(size_t *n)
{
	struct ref_stream rs;
	struct tu_ed e;

	tv_edit(&e, tv_aes_gcm);
	if (ref_parse_preamble(&rs, e.pre, e.pre_len) != 0)
		tu_die("first_epoch_1: preamble");
	for (size_t i = 0; i < e.n; i++) {
		struct tu_rec *r = &e.r[i];
		uint8_t *pt = tu_xmalloc(r->pl_len);

		if (ref_open_record(&rs, tv_key, r->hb, r->pl, r->pl_len, pt) != 0)
			tu_die("first_epoch_1: record %zu does not open", i);
		r->h.epoch = 1;
		tv_reseal(&e, i, pt, r->pl_len - 16);
		free(pt);
	}
	return tv_edited(&e, n);
}

/* aes_gcm's DATA record with payload_sum 1 and raw_len 6 (body 5): the
 * length rule (10) comes before the sealed-sum rule (11). */
static inline uint8_t *tv_sealed_sum_after_length(size_t *n)
{
	struct tu_ed e;

	tv_edit(&e, tv_aes_gcm);
	e.r[2].h.payload_sum = 1;
	e.r[2].h.raw_len = 6;
	return tv_edited(&e, n);
}

/* abort followed by bytes: nothing after an ABORT record is read. */
static inline uint8_t *tv_abort_then_bytes(size_t *n)
{
	uint8_t *p = tv_abort(n);

	p = tu_xrealloc(p, *n + 4);
	memcpy(p + *n, "junk", 4);
	*n += 4;
	return p;
}

/* offset_gap's stream (hello, PHASE precopy 1, world) with the PHASE
 * record's phase value set to `phase`. */
static inline uint8_t *tv_phase_value(uint32_t phase, size_t *n)
{
	struct tu_ed e;

	tv_edit(&e, tv_offset_gap);
	e.r[3].h.offset = 5; /* undo offset_gap's defect */
	if (e.r[2].h.type != VMS_REC_PHASE)
		tu_die("phase vector: record 2 is not PHASE");
	vms_put_u32(e.r[2].pl, phase);
	tu_ed_fix_sum(&e, 2);
	return tv_edited(&e, n);
}

static inline uint8_t *tv_phase_0(size_t *n)
{
	return tv_phase_value(0, n);
}

static inline uint8_t *tv_phase_4(size_t *n)
{
	return tv_phase_value(4, n);
}

/* ---- zstd bodies ------------------------------------------------------------ */

/* zstd1_text with its DATA body (a zstd frame) replaced by edit(body, len):
 * the result must still decode to the text when `decodes` (libzstd's
 * one-shot decoder, which is lenient where FORMAT.md is not), so the
 * vector has exactly the one defect. Header sum and wire_len are refreshed;
 * payload_sum stays: the decoded bytes are the same. */
static inline uint8_t *tv_zstd_edit(size_t (*edit)(uint8_t *body, size_t len), bool decodes,
				    size_t *n)
{
	struct tu_ed e;
	uint8_t *body, *out;
	size_t len;

	tv_edit(&e, tv_zstd1_text);
	if (e.r[1].h.type != VMS_REC_DATA || e.r[1].h.codec != 1)
		tu_die("zstd vector: record 1 is not a zstd DATA record");
	body = tu_xmalloc(e.r[1].pl_len + 64);
	memcpy(body, e.r[1].pl, e.r[1].pl_len);
	len = edit(body, e.r[1].pl_len);
	out = tu_xmalloc(TV_TEXT_LEN + 64);
	if (decodes && (ZSTD_decompress(out, TV_TEXT_LEN + 64, body, len) != TV_TEXT_LEN ||
			memcmp(out, tv_text, TV_TEXT_LEN) != 0))
		tu_die("zstd vector: the edited frame no longer decodes to the text");
	free(out);
	free(e.r[1].pl);
	e.r[1].pl = body;
	e.r[1].pl_len = (uint32_t)len;
	return tv_edited(&e, n);
}

/* The writer's frame starts 28 b5 2f fd, then the Frame_Header_Descriptor
 * 0x60 (Frame_Content_Size 2 bytes, single segment) and those 2 bytes. */
static inline void tv_zstd_expect_header(const uint8_t *b)
{
	if (memcmp(b, "\x28\xb5\x2f\xfd\x60", 5) != 0)
		tu_die("zstd vector: unexpected frame header");
}

/* RFC 8878 Unused_Bit (bit 4 of the descriptor) set: a decoder ignores it. */
static inline size_t tv_edit_unused_bit(uint8_t *b, size_t len)
{
	tv_zstd_expect_header(b);
	b[4] |= 0x10;
	return len;
}

static inline uint32_t tv_text_xxh64_low(void)
{
	return (uint32_t)XXH64(tv_text, TV_TEXT_LEN, 0);
}

/* Content_Checksum_Flag set and the checksum (low 32 bits of XXH64 of the
 * content, seed 0) appended. */
static inline size_t tv_edit_checksum(uint8_t *b, size_t len)
{
	tv_zstd_expect_header(b);
	b[4] |= 0x04;
	vms_put_u32(b + len, tv_text_xxh64_low());
	return len + 4;
}

static inline size_t tv_edit_bad_checksum(uint8_t *b, size_t len)
{
	tv_zstd_expect_header(b);
	b[4] |= 0x04;
	vms_put_u32(b + len, tv_text_xxh64_low() ^ 1);
	return len + 4;
}

/* No Frame_Content_Size: descriptor 0x00 (no single segment, so a
 * Window_Descriptor, 0x00: a 1 KiB window) instead of 0x60 and its 2 bytes. */
static inline size_t tv_edit_no_content_size(uint8_t *b, size_t len)
{
	tv_zstd_expect_header(b);
	b[4] = 0x00;
	b[5] = 0x00;
	memmove(b + 6, b + 7, len - 7);
	return len - 1;
}

/* A second frame after the first: the empty frame 28 b5 2f fd 20 00 01 00 00
 * (single segment, content size 0, one empty last raw block). */
static inline size_t tv_edit_two_frames(uint8_t *b, size_t len)
{
	tv_zstd_expect_header(b);
	memcpy(b + len, "\x28\xb5\x2f\xfd\x20\x00\x01\x00\x00", 9);
	return len + 9;
}

/* Dictionary_ID_Flag 1 and the dictionary id 7 after the descriptor. */
static inline size_t tv_edit_dictionary_id(uint8_t *b, size_t len)
{
	tv_zstd_expect_header(b);
	b[4] |= 0x01;
	memmove(b + 6, b + 5, len - 5);
	b[5] = 7;
	return len + 1;
}

static inline uint8_t *tv_zstd_unused_bit(size_t *n)
{
	return tv_zstd_edit(tv_edit_unused_bit, true, n);
}

static inline uint8_t *tv_zstd_checksum(size_t *n)
{
	return tv_zstd_edit(tv_edit_checksum, true, n);
}

static inline uint8_t *tv_zstd_bad_checksum(size_t *n)
{
	return tv_zstd_edit(tv_edit_bad_checksum, false, n);
}

static inline uint8_t *tv_zstd_no_content_size(size_t *n)
{
	return tv_zstd_edit(tv_edit_no_content_size, true, n);
}

static inline uint8_t *tv_zstd_two_frames(size_t *n)
{
	return tv_zstd_edit(tv_edit_two_frames, true, n);
}

static inline uint8_t *tv_zstd_dictionary_id(size_t *n)
{
	return tv_zstd_edit(tv_edit_dictionary_id, false, n);
}

/* Device "dev0" of 4096 bytes 'a' whose DATA body is a frame of the legacy
 * zstd format v0.7 (magic 27 b5 2f fd; content size 4096; one RLE block of
 * 'a'; end block), which libzstd still decodes when built with legacy
 * support. Not an RFC 8878 frame. */
static inline uint8_t *tv_zstd_legacy_frame(size_t *n)
{
	static const uint8_t legacy[] = { 0x27, 0xb5, 0x2f, 0xfd, 0x60, 0x00, 0x0f,
					  0x80, 0x10, 0x00, 0x61, 0xc0, 0x00, 0x00 };
	uint8_t data[4096], *buf;
	struct tu_ed e;
	struct tv_w t;
	uint32_t d;

	memset(data, 'a', sizeof(data));
	tv_open_with(&t, UINT64_MAX, "", "zstd:1", VMS_CIPHER_NONE);
	d = tv_dev(&t, "dev0", VMS_DEVKIND_BLOB, UINT64_MAX);
	tv_write(&t, d, data, sizeof(data));
	tv_check(vms_writer_end_device(t.w, d), "end");
	tv_check(vms_writer_finish(t.w), "finish");
	buf = tv_done(&t, n);
	tv_edit_buf(&e, buf, *n);
	if (e.r[1].h.type != VMS_REC_DATA || e.r[1].h.codec != 1)
		tu_die("zstd_legacy_frame: record 1 is not a zstd DATA record");
	free(e.r[1].pl);
	e.r[1].pl = tu_memdup(legacy, sizeof(legacy));
	e.r[1].pl_len = sizeof(legacy);
	return tv_edited(&e, n);
}

/* ---- the table ----------------------------------------------------------- */

#define TV_PRE56 "preamble len=56 version=1.0 chunk_cap=4096 lanes=1 cipher=0 size_hint=none\n"
#define TV_BEGIN0 "0 DEVICE_BEGIN at=56 dev=0 kind=0 size_hint=unknown name=\"dev0\"\n"
#define TV_HELLO_DATA "1 DATA at=134 dev=0 offset=0 len=5 data=68656c6c6f\n"
#define TV_HELLO_END "2 DEVICE_END at=195 dev=0 total=5 digest=0x9555e8555c62dcfd\n"
#define TV_HELLO_EOS "3 EOS at=267 records=3 raw_bytes=5 devices=1\n"

static const struct tv_vector tv_vectors[] = {
	{ "empty", "no devices: preamble and EOS only", 0, NULL,
	  TV_PRE56 "0 EOS at=56 records=0 raw_bytes=0 devices=0\n", tv_empty, false, false },
	{ "dev_empty", "one device \"dev0\" with 0 bytes", 0, NULL,
	  TV_PRE56 TV_BEGIN0
	  "1 DEVICE_END at=134 dev=0 total=0 digest=0x2d06800538d394c2\n"
	  "2 EOS at=206 records=2 raw_bytes=0 devices=1\n",
	  tv_dev_empty, false, false },
	{ "dev_hello", "one device \"dev0\" with the 5 bytes \"hello\"", 0, NULL,
	  TV_PRE56 TV_BEGIN0 TV_HELLO_DATA TV_HELLO_END TV_HELLO_EOS, tv_dev_hello, false, false },
	{ "two_dev_phases",
	  "devices \"ram\" (VMM, hint 7) and \"nic\" (VFIO) written interleaved across "
	  "precopy round 1, switchover and stop-copy; \"nic\" ends first",
	  0, NULL,
	  TV_PRE56
	  "0 DEVICE_BEGIN at=56 dev=0 kind=2 size_hint=7 name=\"ram\"\n"
	  "1 DEVICE_BEGIN at=133 dev=1 kind=1 size_hint=unknown name=\"nic\"\n"
	  "2 PHASE at=210 phase=1 round=1\n"
	  "3 DATA at=274 dev=0 offset=0 len=6 data=616161616363\n"
	  "4 DATA at=336 dev=1 offset=0 len=6 data=626262626262\n"
	  "5 PHASE at=398 phase=2 round=0\n"
	  "6 PHASE at=462 phase=3 round=0\n"
	  "7 DATA at=526 dev=1 offset=6 len=2 data=6464\n"
	  "8 DEVICE_END at=584 dev=1 total=8 digest=0x98ee23519dcf2a24\n"
	  "9 DATA at=656 dev=0 offset=6 len=1 data=65\n"
	  "10 DEVICE_END at=713 dev=0 total=7 digest=0x753c851128254c01\n"
	  "11 EOS at=785 records=11 raw_bytes=15 devices=2\n",
	  tv_two_dev_phases, false, false },
	{ "chunk_tail",
	  "one device of 4097 bytes (byte i = 31*i+7 mod 256): a full 4096-byte chunk and a "
	  "1-byte tail",
	  0, NULL,
	  TV_PRE56
	  "0 DEVICE_BEGIN at=56 dev=0 kind=0 size_hint=4097 name=\"dev0\"\n"
	  "1 DATA at=134 dev=0 offset=0 len=4096 xxh3=0xa3c19f8174cde0bb\n"
	  "2 DATA at=4286 dev=0 offset=4096 len=1 data=07\n"
	  "3 DEVICE_END at=4343 dev=0 total=4097 digest=0xb319759b4671c221\n"
	  "4 EOS at=4415 records=4 raw_bytes=4097 devices=1\n",
	  tv_chunk_tail, false, false },
	{ "params",
	  "dev_hello with SIZE_HINT 5 and CREATOR \"vmstream-test-vectors\" preamble "
	  "parameters",
	  0, NULL,
	  "preamble len=93 version=1.0 chunk_cap=4096 lanes=1 cipher=0 size_hint=5\n"
	  "0 DEVICE_BEGIN at=93 dev=0 kind=0 size_hint=unknown name=\"dev0\"\n"
	  "1 DATA at=171 dev=0 offset=0 len=5 data=68656c6c6f\n"
	  "2 DEVICE_END at=232 dev=0 total=5 digest=0x9555e8555c62dcfd\n"
	  "3 EOS at=304 records=3 raw_bytes=5 devices=1\n",
	  tv_params, false, false },
	{ "unknown_ignorable",
	  "dev_hello plus an unknown ignorable parameter (type 0x8123, \"future\") and an "
	  "unknown ignorable record (type 0x90, payload \"skip me\", seq 1) that the reader "
	  "verifies and skips; it still counts in EOS records",
	  0, NULL,
	  "preamble len=66 version=1.0 chunk_cap=4096 lanes=1 cipher=0 size_hint=none\n"
	  "0 DEVICE_BEGIN at=66 dev=0 kind=0 size_hint=unknown name=\"dev0\"\n"
	  "2 DATA at=207 dev=0 offset=0 len=5 data=68656c6c6f\n"
	  "3 DEVICE_END at=268 dev=0 total=5 digest=0x9555e8555c62dcfd\n"
	  "4 EOS at=340 records=4 raw_bytes=5 devices=1\n",
	  tv_unknown_ignorable, false, false },
	{ "minor_version", "dev_hello with version_minor 7: a 1.0 reader accepts any 1.x", 0,
	  NULL,
	  "preamble len=56 version=1.7 chunk_cap=4096 lanes=1 cipher=0 size_hint=none\n"
	  TV_BEGIN0 TV_HELLO_DATA TV_HELLO_END TV_HELLO_EOS,
	  tv_minor_version, false, false },
	{ "zero_record",
	  "one device: 4096 zero bytes as a ZERO record (no payload, payload_sum 0), then "
	  "DATA \"tail\"; the digest covers the zeros",
	  0, NULL,
	  TV_PRE56 TV_BEGIN0
	  "1 ZERO at=134 dev=0 offset=0 len=4096\n"
	  "2 DATA at=190 dev=0 offset=4096 len=4 data=7461696c\n"
	  "3 DEVICE_END at=250 dev=0 total=4100 digest=0xb0957cc30c89bde3\n"
	  "4 EOS at=322 records=4 raw_bytes=4100 devices=1\n",
	  tv_zero_record, false, false },
	{ "zstd1_text",
	  "device \"text\" (the 461-byte text below) compressed with zstd level 1 "
	  "(`compress = zstd:1`), not encrypted: one DATA record with codec 1, a single zstd "
	  "frame of 122 bytes that decodes to raw_len 461",
	  0, NULL,
	  "preamble len=65 version=1.0 chunk_cap=4096 lanes=1 cipher=0 size_hint=none "
	  "codecs=1:zstd\n"
	  "0 DEVICE_BEGIN at=65 dev=0 kind=0 size_hint=unknown name=\"text\"\n"
	  "1 DATA at=143 dev=0 offset=0 len=461 codec=1 wire_len=122 xxh3=0x94521885ed135bcf\n"
	  "2 DEVICE_END at=321 dev=0 total=461 digest=0x94521885ed135bcf\n"
	  "3 EOS at=393 records=3 raw_bytes=461 devices=1\n",
	  tv_zstd1_text, false, true },
	{ "aes_gcm",
	  "AES-256-GCM with the key and salt below: device \"dev0\" with 4096 zero bytes (an "
	  "encrypted ZERO record: no body, only the sealed sum) then \"hello\"",
	  0, NULL,
	  "preamble len=92 version=1.0 chunk_cap=4096 lanes=1 cipher=1 key_source=1 "
	  "size_hint=none\n"
	  "0 DEVICE_BEGIN at=92 epoch=0 dev=0 kind=0 size_hint=unknown name=\"dev0\"\n"
	  "1 ZERO at=194 epoch=0 dev=0 offset=0 len=4096 wire_len=24\n"
	  "2 DATA at=274 epoch=0 dev=0 offset=4096 len=5 codec=0 wire_len=29 data=68656c6c6f\n"
	  "3 DEVICE_END at=359 epoch=0 dev=0 total=4101 digest=0xd6682bfc77aecd1a\n"
	  "4 EOS at=455 epoch=0 records=4 raw_bytes=4101 devices=1\n",
	  tv_aes_gcm, true, false },
	{ "chacha20_poly1305", "ChaCha20-Poly1305: the same input, key and salt as aes_gcm", 0,
	  NULL,
	  "preamble len=92 version=1.0 chunk_cap=4096 lanes=1 cipher=2 key_source=1 "
	  "size_hint=none\n"
	  "0 DEVICE_BEGIN at=92 epoch=0 dev=0 kind=0 size_hint=unknown name=\"dev0\"\n"
	  "1 ZERO at=194 epoch=0 dev=0 offset=0 len=4096 wire_len=24\n"
	  "2 DATA at=274 epoch=0 dev=0 offset=4096 len=5 codec=0 wire_len=29 data=68656c6c6f\n"
	  "3 DEVICE_END at=359 epoch=0 dev=0 total=4101 digest=0xd6682bfc77aecd1a\n"
	  "4 EOS at=455 epoch=0 records=4 raw_bytes=4101 devices=1\n",
	  tv_chacha20_poly1305, true, false },
	{ "zstd1_aes_gcm",
	  "zstd level 1, then AES-256-GCM, on the input of zstd1_text: the sealed body is the "
	  "zstd frame",
	  0, NULL,
	  "preamble len=101 version=1.0 chunk_cap=4096 lanes=1 cipher=1 key_source=1 "
	  "size_hint=none codecs=1:zstd\n"
	  "0 DEVICE_BEGIN at=101 epoch=0 dev=0 kind=0 size_hint=unknown name=\"text\"\n"
	  "1 DATA at=203 epoch=0 dev=0 offset=0 len=461 codec=1 wire_len=146 "
	  "xxh3=0x94521885ed135bcf\n"
	  "2 DEVICE_END at=405 epoch=0 dev=0 total=461 digest=0x94521885ed135bcf\n"
	  "3 EOS at=501 epoch=0 records=3 raw_bytes=461 devices=1\n",
	  tv_zstd1_aes_gcm, true, true },
	{ "aes_gcm_epochs",
	  "AES-256-GCM with the writer's epoch limit lowered to 32 sealed bytes (test hook "
	  "vms_writer_set_epoch_limit), so the records use epochs 0, 1, 2, 3 (keys of lane 0, "
	  "epochs 0 to 3): device \"dev0\" with \"hello\"",
	  0, NULL,
	  "preamble len=92 version=1.0 chunk_cap=4096 lanes=1 cipher=1 key_source=1 "
	  "size_hint=none\n"
	  "0 DEVICE_BEGIN at=92 epoch=0 dev=0 kind=0 size_hint=unknown name=\"dev0\"\n"
	  "1 DATA at=194 epoch=1 dev=0 offset=0 len=5 codec=0 wire_len=29 data=68656c6c6f\n"
	  "2 DEVICE_END at=279 epoch=2 dev=0 total=5 digest=0x9555e8555c62dcfd\n"
	  "3 EOS at=375 epoch=3 records=3 raw_bytes=5 devices=1\n",
	  tv_aes_gcm_epochs, true, false },
	{ "zstd_unused_bit",
	  "zstd1_text with the Unused_Bit (bit 4 of the zstd frame's Frame_Header_Descriptor) "
	  "set: the frame decodes to the same bytes, so the stream is accepted. A change to a "
	  "compressed body that does not change the decoded bytes is not detected (FORMAT.md 3.3)",
	  0, NULL,
	  "preamble len=65 version=1.0 chunk_cap=4096 lanes=1 cipher=0 size_hint=none "
	  "codecs=1:zstd\n"
	  "0 DEVICE_BEGIN at=65 dev=0 kind=0 size_hint=unknown name=\"text\"\n"
	  "1 DATA at=143 dev=0 offset=0 len=461 codec=1 wire_len=122 xxh3=0x94521885ed135bcf\n"
	  "2 DEVICE_END at=321 dev=0 total=461 digest=0x94521885ed135bcf\n"
	  "3 EOS at=393 records=3 raw_bytes=461 devices=1\n",
	  tv_zstd_unused_bit, false, true },
	{ "zstd_checksum",
	  "zstd1_text whose zstd frame carries the optional Content_Checksum (the low 32 bits of "
	  "XXH64 of the 461 bytes, appended to the frame): correct, so accepted",
	  0, NULL,
	  "preamble len=65 version=1.0 chunk_cap=4096 lanes=1 cipher=0 size_hint=none "
	  "codecs=1:zstd\n"
	  "0 DEVICE_BEGIN at=65 dev=0 kind=0 size_hint=unknown name=\"text\"\n"
	  "1 DATA at=143 dev=0 offset=0 len=461 codec=1 wire_len=126 xxh3=0x94521885ed135bcf\n"
	  "2 DEVICE_END at=325 dev=0 total=461 digest=0x94521885ed135bcf\n"
	  "3 EOS at=397 records=3 raw_bytes=461 devices=1\n",
	  tv_zstd_checksum, false, true },
	{ "abort",
	  "one device begun, then ABORT (code VMS_EDEVIO = -24, \"source device failed\"); "
	  "the reader reports the ABORT event, then fails",
	  VMS_EPEERABORT, "record 1 at byte 134: peer aborted the stream: source device failed",
	  TV_PRE56 TV_BEGIN0 "1 ABORT at=134 code=-24 text=\"source device failed\"\n",
	  tv_abort, false, false },

	{ "bad_magic", "dev_hello with magic byte 0 = 0x89 (preamble_sum recomputed)",
	  VMS_EMAGIC, "preamble at byte 0", "", tv_bad_magic, false, false },
	{ "version_2", "dev_hello with version_major 2", VMS_EVERSION, "preamble at byte 0", "",
	  tv_version_2, false, false },
	{ "reserved_flag", "dev_hello with preamble flags bit 1 set", VMS_EFLAGS,
	  "preamble at byte 0", "", tv_reserved_flag, false, false },
	{ "reserved_field", "dev_hello with the preamble's reserved u32 = 1", VMS_ERESERVED,
	  "preamble at byte 0", "", tv_reserved_field, false, false },
	{ "chunk_cap_32m", "empty with chunk_cap 32 MiB (above the 16 MiB limit)", VMS_ELENGTH,
	  "preamble at byte 0", "", tv_chunk_cap_32m, false, false },
	{ "unknown_codec_name",
	  "dev_hello whose preamble declares codec 64 \"x-no-such-codec\" (never implemented)",
	  VMS_ECODEC, "preamble at byte 0", "", tv_unknown_codec_name, false, false },
	{ "dup_param", "params with a second SIZE_HINT entry", VMS_EPREAMBLE,
	  "preamble at byte 0", "", tv_dup_param, false, false },
	{ "encrypted_nokey",
	  "encrypted preamble (AES-256-GCM, key file, salt 32 x 0x5a) and an encrypted EOS; "
	  "read without a key",
	  VMS_EKEY, "preamble at byte 0", "", tv_encrypted_nokey, false, false },
	{ "flags_and_reserved",
	  "dev_hello with preamble flags bit 1 set and the reserved u32 = 1: preamble rule 8 "
	  "(flags) comes before rule 9 (reserved)",
	  VMS_EFLAGS, "preamble at byte 0", "", tv_flags_and_reserved, false, false },
	{ "chunk_cap_and_cipher",
	  "dev_hello with chunk_cap 32 MiB and cipher 3: rule 10 (chunk_cap) before rule 12 "
	  "(cipher)",
	  VMS_ELENGTH, "preamble at byte 0", "", tv_chunk_cap_and_cipher, false, false },
	{ "zstd_id_2", "dev_hello whose preamble declares codec \"zstd\" with id 2 (its id is 1)",
	  VMS_ECODEC, "preamble at byte 0", "", tv_zstd_id_2, false, false },
	{ "lanes_2_file", "dev_hello with preamble lanes 2, read from a file (a file is one lane)",
	  VMS_EPREAMBLE, "preamble at byte 0", "", tv_lanes_2_file, false, false },
	{ "size_hint_len",
	  "dev_hello with a SIZE_HINT entry of 4 bytes: a known entry is checked although it is "
	  "ignorable",
	  VMS_EPREAMBLE, "preamble at byte 0", "", tv_size_hint_len, false, false },
	{ "dup_ignorable_param",
	  "dev_hello with the unknown ignorable parameter type 0x8123 twice (\"one\", \"two\")",
	  VMS_EPREAMBLE, "preamble at byte 0", "", tv_dup_ignorable_param, false, false },
	{ "too_many_codecs",
	  "dev_hello declaring 17 codecs (ids 64..80, names x-codec-00 .. x-codec-16; at most 16 "
	  "are allowed): every entry is checked (rule 17) before any codec name (rule 19)",
	  VMS_EPREAMBLE, "preamble at byte 0", "", tv_too_many_codecs, false, false },
	{ "param_before_codec_name",
	  "dev_hello declaring codec 64 \"x-no-such-codec\", then a SIZE_HINT entry of 4 bytes: "
	  "rule 17 (entries) before rule 19 (codec names)",
	  VMS_EPREAMBLE, "preamble at byte 0", "", tv_param_before_codec_name, false, false },
	{ "codec_name_before_lanes",
	  "dev_hello with lanes 2 declaring codec 64 \"x-no-such-codec\", read from a file: rule 19 "
	  "(codec names) before rule 20 (lanes of the transport)",
	  VMS_ECODEC, "preamble at byte 0", "", tv_codec_name_before_lanes, false, false },
	{ "codec_name_before_key",
	  "encrypted_nokey declaring codec 64 \"x-no-such-codec\", read without a key: rule 19 "
	  "(codec names) before rule 21 (key)",
	  VMS_ECODEC, "preamble at byte 0", "", tv_codec_name_before_key, false, false },
	{ "key_for_plaintext",
	  "dev_hello (not encrypted) read with a key: a reader given a key expects an encrypted "
	  "stream, so a plaintext one (perhaps stripped of its encryption, sums recomputed) is "
	  "refused",
	  VMS_EKEY, "preamble at byte 0", "", tv_dev_hello, true, false },
	{ "trailing_byte",
	  "dev_hello followed by one 0x00 byte. The error is located after the EOS record (record "
	  "4, the first extra byte), and the EOS record is not delivered: no bytes after it is "
	  "part of verifying it (record rule 22)",
	  VMS_ETRAILING, "record 4 at byte 347",
	  TV_PRE56 TV_BEGIN0 TV_HELLO_DATA TV_HELLO_END, tv_trailing_byte, false, false },
	{ "abort_then_bytes",
	  "abort followed by the 4 bytes \"junk\": a reader reads nothing after an ABORT "
	  "record, so this is the peer's abort, not trailing bytes",
	  VMS_EPEERABORT, "record 1 at byte 134: peer aborted the stream: source device failed",
	  TV_PRE56 TV_BEGIN0 "1 ABORT at=134 code=-24 text=\"source device failed\"\n",
	  tv_abort_then_bytes, false, false },
	{ "missing_eos", "dev_hello without its EOS record", VMS_ETRUNCATED,
	  "record 3 at byte 267", TV_PRE56 TV_BEGIN0 TV_HELLO_DATA TV_HELLO_END,
	  tv_missing_eos, false, false },
	{ "truncated_payload", "dev_hello cut after 2 bytes of the DATA payload",
	  VMS_ETRUNCATED, "record 1 at byte 134", TV_PRE56 TV_BEGIN0, tv_truncated_payload, false,
	  false },
	{ "truncated_header", "dev_hello cut after 10 bytes of the DATA record's header",
	  VMS_ETRUNCATED, "record 1 at byte 134", TV_PRE56 TV_BEGIN0, tv_truncated_header, false,
	  false },
	{ "truncated_bad_offset",
	  "dev_hello whose DATA record says offset 1 and is cut after 2 payload bytes: the "
	  "header rules (offset: rule 14) come before the payload is read (rule 15)",
	  VMS_EOFFSET, "record 1 at byte 134", TV_PRE56 TV_BEGIN0, tv_truncated_bad_offset, false,
	  false },
	{ "seq_gap", "dev_hello with the DATA record's seq 2 instead of 1", VMS_ESEQ,
	  "record 1 at byte 134", TV_PRE56 TV_BEGIN0, tv_seq_gap, false, false },
	{ "offset_gap",
	  "\"hello\", PHASE, \"world\" on one device; the second DATA says offset 6, not 5",
	  VMS_EOFFSET, "record 3 at byte 259",
	  TV_PRE56 TV_BEGIN0 TV_HELLO_DATA "2 PHASE at=195 phase=1 round=1\n",
	  tv_offset_gap, false, false },
	{ "phase_0",
	  "\"hello\", PHASE, \"world\" on one device (offset_gap without its defect) with the "
	  "PHASE record's phase 0: phases are 1, 2 and 3",
	  VMS_EPHASE, "record 2 at byte 195", TV_PRE56 TV_BEGIN0 TV_HELLO_DATA, tv_phase_0, false,
	  false },
	{ "phase_4", "the same stream with phase 4", VMS_EPHASE, "record 2 at byte 195",
	  TV_PRE56 TV_BEGIN0 TV_HELLO_DATA, tv_phase_4, false, false },
	{ "digest_mismatch", "dev_hello with one bit of the DEVICE_END digest flipped",
	  VMS_EDIGEST, "record 2 at byte 195", TV_PRE56 TV_BEGIN0 TV_HELLO_DATA,
	  tv_digest_mismatch, false, false },
	{ "eos_totals", "dev_hello whose EOS says raw_bytes 6", VMS_EEOS,
	  "record 3 at byte 267", TV_PRE56 TV_BEGIN0 TV_HELLO_DATA TV_HELLO_END,
	  tv_eos_totals, false, false },
	{ "unknown_critical_type",
	  "dev_hello with a record of unknown critical type 0x08 as seq 1", VMS_ERECTYPE,
	  "record 1 at byte 134", TV_PRE56 TV_BEGIN0, tv_unknown_critical_type, false, false },
	{ "undeclared_codec",
	  "dev_hello whose DATA record says codec 64 (not declared), body 3 < raw_len 5",
	  VMS_ECODEC, "record 1 at byte 134", TV_PRE56 TV_BEGIN0, tv_undeclared_codec, false,
	  false },
	{ "zstd_bad_checksum",
	  "zstd_checksum with the frame's Content_Checksum off by one bit: the decoded bytes are "
	  "right, but a checksum that is present is verified",
	  VMS_EDECOMPRESS, "record 1 at byte 143",
	  "preamble len=65 version=1.0 chunk_cap=4096 lanes=1 cipher=0 size_hint=none "
	  "codecs=1:zstd\n"
	  "0 DEVICE_BEGIN at=65 dev=0 kind=0 size_hint=unknown name=\"text\"\n",
	  tv_zstd_bad_checksum, false, true },
	{ "zstd_no_content_size",
	  "zstd1_text whose frame has no Frame_Content_Size (descriptor 0x00 and a 1 KiB "
	  "Window_Descriptor instead of 0x60 and the 2-byte size): it still decodes to the text, "
	  "but the content size is required",
	  VMS_EDECOMPRESS, "record 1 at byte 143",
	  "preamble len=65 version=1.0 chunk_cap=4096 lanes=1 cipher=0 size_hint=none "
	  "codecs=1:zstd\n"
	  "0 DEVICE_BEGIN at=65 dev=0 kind=0 size_hint=unknown name=\"text\"\n",
	  tv_zstd_no_content_size, false, true },
	{ "zstd_two_frames",
	  "zstd1_text with an empty zstd frame (28 b5 2f fd 20 00 01 00 00) after its frame: "
	  "decoders that concatenate frames give the same bytes, but a body is one frame",
	  VMS_EDECOMPRESS, "record 1 at byte 143",
	  "preamble len=65 version=1.0 chunk_cap=4096 lanes=1 cipher=0 size_hint=none "
	  "codecs=1:zstd\n"
	  "0 DEVICE_BEGIN at=65 dev=0 kind=0 size_hint=unknown name=\"text\"\n",
	  tv_zstd_two_frames, false, true },
	{ "zstd_dictionary_id",
	  "zstd1_text whose frame names dictionary 7 (Dictionary_ID_Flag 1, one id byte): zstd "
	  "bodies use no dictionary",
	  VMS_EDECOMPRESS, "record 1 at byte 143",
	  "preamble len=65 version=1.0 chunk_cap=4096 lanes=1 cipher=0 size_hint=none "
	  "codecs=1:zstd\n"
	  "0 DEVICE_BEGIN at=65 dev=0 kind=0 size_hint=unknown name=\"text\"\n",
	  tv_zstd_dictionary_id, false, true },
	{ "zstd_legacy_frame",
	  "device \"dev0\" of 4096 bytes 'a' whose zstd DATA body is a 14-byte frame of the "
	  "legacy format v0.7 (magic 27 b5 2f fd, one RLE block), which libzstd built with legacy "
	  "support decodes to the right bytes: not an RFC 8878 frame",
	  VMS_EDECOMPRESS, "record 1 at byte 143",
	  "preamble len=65 version=1.0 chunk_cap=4096 lanes=1 cipher=0 size_hint=none "
	  "codecs=1:zstd\n"
	  "0 DEVICE_BEGIN at=65 dev=0 kind=0 size_hint=unknown name=\"dev0\"\n",
	  tv_zstd_legacy_frame, false, false },
	{ "record_flag", "dev_hello with DATA record flags bit 1 set", VMS_EFLAGS,
	  "record 1 at byte 134", TV_PRE56 TV_BEGIN0, tv_record_flag, false, false },
	{ "hdr_sum", "dev_hello with one bit of the DATA header's offset flipped",
	  VMS_EHDRSUM, "record 1 at byte 134", TV_PRE56 TV_BEGIN0, tv_hdr_sum, false, false },
	{ "payload_sum", "dev_hello whose DATA payload reads \"hellp\"", VMS_EPAYLOADSUM,
	  "record 1 at byte 134", TV_PRE56 TV_BEGIN0, tv_payload_sum, false, false },
	{ "first_epoch_1",
	  "aes_gcm with every record in epoch 1 (each resealed under the key of lane 0, epoch 1): "
	  "the first record must have epoch 0",
	  VMS_EEPOCH, "record 0 at byte 92",
	  "preamble len=92 version=1.0 chunk_cap=4096 lanes=1 cipher=1 key_source=1 "
	  "size_hint=none\n",
	  tv_first_epoch_1, true, false },
	{ "sealed_sum_after_length",
	  "aes_gcm whose DATA record says payload_sum 1 and raw_len 6 (its body has 5 bytes): the "
	  "length rules (rule 10) come before the encrypted payload_sum rule (rule 11)",
	  VMS_ELENGTH, "record 2 at byte 274",
	  "preamble len=92 version=1.0 chunk_cap=4096 lanes=1 cipher=1 key_source=1 "
	  "size_hint=none\n"
	  "0 DEVICE_BEGIN at=92 epoch=0 dev=0 kind=0 size_hint=unknown name=\"dev0\"\n"
	  "1 ZERO at=194 epoch=0 dev=0 offset=0 len=4096 wire_len=24\n",
	  tv_sealed_sum_after_length, true, false },
	{ "ignorable_device",
	  "unknown_ignorable's record 0x90 (\"skip me\") with device 0: an unknown record is a "
	  "stream-level control record, device 0xFFFFFFFF",
	  VMS_EDEVICE, "record 1 at byte 134", TV_PRE56 TV_BEGIN0, tv_ignorable_device, false,
	  false },
	{ "ignorable_codec",
	  "dev_hello declaring zstd (id 1) with an unknown ignorable record (0x90, \"skip me\") "
	  "whose codec is 1: control records have codec 0",
	  VMS_ECODEC, "record 1 at byte 143",
	  "preamble len=65 version=1.0 chunk_cap=4096 lanes=1 cipher=0 size_hint=none "
	  "codecs=1:zstd\n"
	  "0 DEVICE_BEGIN at=65 dev=0 kind=0 size_hint=unknown name=\"dev0\"\n",
	  tv_ignorable_codec, false, false },
	{ "ignorable_offset",
	  "an unknown ignorable record (0x90, \"skip me\") with offset 5: control records have "
	  "offset 0",
	  VMS_EOFFSET, "record 1 at byte 134", TV_PRE56 TV_BEGIN0, tv_ignorable_offset, false,
	  false },
	{ "ignorable_raw_len",
	  "an unknown ignorable record (0x90) with raw_len 3 and a 7-byte payload: a control "
	  "record's body is raw_len bytes",
	  VMS_ELENGTH, "record 1 at byte 134", TV_PRE56 TV_BEGIN0, tv_ignorable_raw_len, false,
	  false },
	{ "ignorable_too_long",
	  "an unknown ignorable record (0x90) of 4097 bytes: a control record's body is at most "
	  "4096 bytes",
	  VMS_ELENGTH, "record 1 at byte 134", TV_PRE56 TV_BEGIN0, tv_ignorable_too_long, false,
	  false },
	{ "ignorable_payload_sum",
	  "an unknown ignorable record (0x90, \"skip me\") whose payload_sum is wrong: it is "
	  "verified before it is skipped",
	  VMS_EPAYLOADSUM, "record 1 at byte 134", TV_PRE56 TV_BEGIN0, tv_ignorable_payload_sum,
	  false, false },
	{ "device_not_begun", "dev_hello whose DATA record names device 1", VMS_EDEVICE,
	  "record 1 at byte 134", TV_PRE56 TV_BEGIN0, tv_device_not_begun, false, false },
};

#define TV_COUNT (sizeof(tv_vectors) / sizeof(tv_vectors[0]))

/* ---- formatting an event the way `events` lists it ----------------------- */

/* key_source is shown for encrypted streams, codecs when some are declared. */
static inline void tv_format_info(char *out, size_t cap, const struct vms_stream_info *i)
{
	char hint[32], ks[32] = "", codecs[200] = "";

	if (i->size_hint == UINT64_MAX)
		snprintf(hint, sizeof(hint), "none");
	else
		snprintf(hint, sizeof(hint), "%llu", (unsigned long long)i->size_hint);
	if (i->cipher)
		snprintf(ks, sizeof(ks), " key_source=%u", i->key_source);
	if (i->codecs && *i->codecs)
		snprintf(codecs, sizeof(codecs), " codecs=%s", i->codecs);
	snprintf(out, cap,
		 "preamble len=%u version=%u.%u chunk_cap=%u lanes=%u cipher=%u%s size_hint=%s%s\n",
		 i->preamble_len, i->version_major, i->version_minor, i->chunk_cap, i->lanes,
		 i->cipher, ks, hint, codecs);
}

/* data_hex: the delivered bytes if at most 16 (else NULL: xxh3 is shown). */
static inline void tv_format_event(char *out, size_t cap, const struct tu_ev *e,
				   const uint8_t *data)
{
	const char *name = vms_rec_type_name(e->type);
	int k = snprintf(out, cap, "%llu %s at=%llu", (unsigned long long)e->seq,
			 name ? name : "?", (unsigned long long)e->stream_pos);
	size_t n = k > 0 ? (size_t)k : 0;
	bool sealed = (e->flags & VMS_RFLAG_ENCRYPTED) != 0;

#define TV_ADD(...)                                                                      \
	do {                                                                             \
		int m_ = snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__);          \
		n += m_ > 0 ? (size_t)m_ : 0;                                            \
	} while (0)
	if (sealed)
		TV_ADD(" epoch=%u", e->epoch);
	switch (e->type) {
	case VMS_REC_DEVICE_BEGIN:
		if (e->b == UINT64_MAX)
			TV_ADD(" dev=%u kind=%llu size_hint=unknown name=\"%s\"", e->device,
			       (unsigned long long)e->a, e->text);
		else
			TV_ADD(" dev=%u kind=%llu size_hint=%llu name=\"%s\"", e->device,
			       (unsigned long long)e->a, (unsigned long long)e->b, e->text);
		break;
	case VMS_REC_DATA:
		TV_ADD(" dev=%u offset=%llu len=%u", e->device, (unsigned long long)e->offset,
		       e->raw_len);
		if (e->codec || sealed)
			TV_ADD(" codec=%u wire_len=%u", e->codec, e->wire_len);
		if (data && e->data_len <= 16) {
			TV_ADD(" data=");
			for (size_t i = 0; i < e->data_len; i++)
				TV_ADD("%02x", data[i]);
		} else {
			TV_ADD(" xxh3=0x%016llx", (unsigned long long)e->data_sum);
		}
		break;
	case VMS_REC_ZERO:
		TV_ADD(" dev=%u offset=%llu len=%u", e->device, (unsigned long long)e->offset,
		       e->raw_len);
		if (sealed)
			TV_ADD(" wire_len=%u", e->wire_len);
		break;
	case VMS_REC_PHASE:
		TV_ADD(" phase=%llu round=%llu", (unsigned long long)e->a, (unsigned long long)e->b);
		break;
	case VMS_REC_DEVICE_END:
		TV_ADD(" dev=%u total=%llu digest=0x%016llx", e->device, (unsigned long long)e->a,
		       (unsigned long long)e->b);
		break;
	case VMS_REC_EOS:
		TV_ADD(" records=%llu raw_bytes=%llu devices=%u", (unsigned long long)e->a,
		       (unsigned long long)e->b, e->c);
		break;
	case VMS_REC_ABORT:
		TV_ADD(" code=%lld text=\"%s\"", (long long)(int64_t)e->a, e->text);
		break;
	default:
		break;
	}
	TV_ADD("\n");
#undef TV_ADD
}

#endif
