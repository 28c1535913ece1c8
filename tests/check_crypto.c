/* SPDX-License-Identifier: MIT */
/*
 * Encryption: key files, the key schedule against an independent
 * implementation of FORMAT.md section 5 (tests/vectors/refcrypto.h),
 * round trips with both AEADs, tampering (each case asserts the exact code
 * and that no DATA byte of the attacked record or any later one reached the
 * caller), key epochs. The encrypted and compressed test vectors are
 * checked by check_vectors.c with the others (tests/vectors).
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <zstd.h>

#include "testutil.h"
#include "stream/internal.h"
#include "crypto/keys.h"
#include "vectors/vectors.h" /* tv_key, tv_salt, tv_stream_id, refcrypto.h */

#define CHUNK 4096u

static const uint8_t K1[32] = {
	0xc0, 0xff, 0xee, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
	0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
};
static const uint8_t K2[32] = { 0xc0, 0xff, 0xee, 0x01 }; /* differs from K1 */
static const uint8_t SALT1[32] = "salt salt salt salt salt salt 1";
static const uint8_t SALT2[32] = "salt salt salt salt salt salt 2";
static const uint8_t SID_A[16] = "stream A--------";
static const uint8_t SID_B[16] = "stream B--------";

static const uint8_t ciphers[] = { VMS_CIPHER_AES_256_GCM, VMS_CIPHER_CHACHA20_POLY1305 };

/* ---- helpers ---------------------------------------------------------------- */

static void fill_text(uint8_t *p, size_t n, uint64_t seed)
{
	static const char *const words[] = { "secret ", "state ", "migration ", "vfio ", "the ",
					     "region ", "page\n", "dirty ", "bitmap ", "queue " };
	uint64_t x = seed * 2654435761u + 7;

	for (size_t o = 0; o < n;) {
		const char *w;
		size_t k;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		w = words[(x >> 33) % 10];
		k = strlen(w) < n - o ? strlen(w) : n - o;
		memcpy(p + o, w, k);
		o += k;
	}
}

struct wo {
	uint32_t cipher;
	const uint8_t *key;
	const uint8_t *salt;
	const uint8_t *sid;
	const char *compress;
	const char *creator;
	uint32_t threads;
	uint32_t chunk;
	uint64_t epoch_limit;
};

static struct vms_writer *wopen(const struct wo *s, int fd)
{
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	struct vms_writer *w;
	int rc;

	o.chunk_size = s->chunk ? s->chunk : CHUNK;
	o.cipher = s->cipher;
	o.key = s->key;
	o.salt = s->salt;
	o.stream_id = s->sid;
	o.compress = s->compress;
	o.creator = s->creator ? s->creator : "";
	o.threads = s->threads;
	rc = vms_writer_open_fd(&w, fd, &o);
	ck_assert_msg(rc == 0, "writer open: %s", vms_last_error());
	if (s->epoch_limit)
		vms_writer_set_epoch_limit(w, s->epoch_limit);
	return w;
}

static uint8_t *wclose(struct vms_writer *w, int fd, size_t *n)
{
	uint8_t *out;
	int rc = vms_writer_finish(w);

	ck_assert_msg(rc == 0, "finish: %s", vms_last_error());
	vms_writer_free(w);
	out = tu_memfd_get(fd, n);
	close(fd);
	return out;
}

#define HOSTILE_DATA_LEN (3 * CHUNK + 1000)

/* The stream the tampering tests attack, records:
 *   0 DEVICE_BEGIN "d0"   1 DATA 4096   2 PHASE 1/1   3 DATA 4096
 *   4 DATA 4096           5 PHASE 2/0   6 DATA 1000   7 DEVICE_END   8 EOS */
static uint8_t *write_hostile_base(const struct wo *s, const uint8_t *data, size_t *n)
{
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	int fd = tu_memfd_new();
	struct vms_writer *w = wopen(s, fd);

	d.name = "d0";
	ck_assert_int_eq(vms_writer_begin_device(w, &d, NULL), 0);
	ck_assert_int_eq(vms_writer_write(w, 0, data, CHUNK), 0);
	ck_assert_int_eq(vms_writer_phase(w, 1, 1), 0);
	ck_assert_int_eq(vms_writer_write(w, 0, data + CHUNK, 2 * CHUNK), 0);
	ck_assert_int_eq(vms_writer_phase(w, 2, 0), 0);
	ck_assert_int_eq(vms_writer_write(w, 0, data + 3 * CHUNK, 1000), 0);
	ck_assert_int_eq(vms_writer_end_device(w, 0), 0);
	return wclose(w, fd, n);
}

static int read_with(const uint8_t *b, size_t n, const uint8_t *key, uint32_t threads,
		     uint32_t flags, struct tu_run *r)
{
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;
	int fd = tu_memfd_new();
	int rc;

	o.key = key;
	o.threads = threads;
	o.flags = flags;
	tu_memfd_set(fd, b, n);
	rc = tu_run_fd(fd, &o, r);
	close(fd);
	return rc;
}

/* The reader, threads 0 and 2, must fail with exactly `code` after
 * delivering exactly the first k events of the untampered stream `good`,
 * and no byte of device 0 beyond what those events carried. */
static void expect_fail(const char *what, const uint8_t *b, size_t n, const uint8_t *key,
			int code, size_t k, const struct tu_run *good)
{
	size_t bytes = 0;

	ck_assert_uint_le(k, good->nev);
	for (size_t i = 0; i < k; i++)
		if (good->ev[i].type == VMS_REC_DATA || good->ev[i].type == VMS_REC_ZERO)
			bytes += good->ev[i].raw_len;
	for (uint32_t t = 0; t <= 2; t += 2) {
		struct tu_run r;

		read_with(b, n, key, t, 0, &r);
		ck_assert_msg(r.err == code, "%s (reader threads %u): got %s, want %s; %s", what, t,
			      vms_errname(r.err) ? vms_errname(r.err) : "0", vms_errname(code), r.msg);
		ck_assert_msg(r.again == code, "%s: error not sticky", what);
		ck_assert_msg(r.nev == k, "%s (reader threads %u): %zu events delivered, want %zu",
			      what, t, r.nev, k);
		for (size_t i = 0; i < k; i++) {
			ck_assert_uint_eq(r.ev[i].type, good->ev[i].type);
			ck_assert_uint_eq(r.ev[i].seq, good->ev[i].seq);
		}
		ck_assert_msg(r.dev[0].n == bytes, "%s: %zu DATA bytes delivered, want %zu", what,
			      r.dev[0].n, bytes);
		if (bytes)
			ck_assert_mem_eq(r.dev[0].p, good->dev[0].p, bytes);
		tu_run_free(&r);
	}
}

/* Re-seal record i of an edited encrypted stream with plaintext body || sum,
 * exactly as FORMAT.md section 5 says (reference implementation). Header
 * fields come from ed->r[i].h; wire_len follows the body. */
static void reseal(struct tu_ed *ed, size_t i, const uint8_t *ikm, const uint8_t *body,
		   size_t body_len, uint64_t sum)
{
	struct ref_stream rs;
	struct tu_rec *r = &ed->r[i];
	uint8_t key[32], nonce[12], hb[VMS_HDR_LEN];
	uint8_t *pt = tu_xmalloc(body_len + 8);

	ck_assert_int_eq(ref_parse_preamble(&rs, ed->pre, ed->pre_len), 0);
	memcpy(pt, body, body_len);
	vms_put_u64(pt + body_len, sum);
	r->h.wire_len = (uint32_t)(body_len + 24);
	r->h.payload_sum = 0;
	vms_hdr_encode(&r->h, hb); /* what tu_ed_build will write: the AAD */
	ck_assert_int_eq(ref_key(&rs, ikm, r->h.lane, r->h.epoch, key), 0);
	ref_nonce(nonce, r->h.lane, r->h.epoch, r->h.seq);
	free(r->pl);
	r->pl = tu_xmalloc(body_len + 24);
	r->pl_len = (uint32_t)(body_len + 24);
	ck_assert_int_eq(ref_seal(rs.cipher, key, nonce, hb, VMS_HDR_LEN, pt, body_len + 8, r->pl), 0);
	free(pt);
}

/* Open record i of a parsed stream with the reference implementation. */
static int ref_open_ed(const struct tu_ed *ed, size_t i, const uint8_t *ikm, uint8_t *pt)
{
	struct ref_stream rs;

	ck_assert_int_eq(ref_parse_preamble(&rs, ed->pre, ed->pre_len), 0);
	return ref_open_record(&rs, ikm, ed->r[i].hb, ed->r[i].pl, ed->r[i].pl_len, pt);
}

/* Every header of an encrypted stream: ENCRYPTED set, payload_sum 0. */
static void assert_sealed_headers(const struct tu_ed *ed)
{
	ck_assert(ed->pre[32] & 1);
	for (size_t i = 0; i < ed->n; i++) {
		ck_assert_msg(ed->r[i].h.flags == VMS_RFLAG_ENCRYPTED, "record %zu flags", i);
		ck_assert_msg(ed->r[i].h.payload_sum == 0, "record %zu: payload_sum visible", i);
		ck_assert_uint_ge(ed->r[i].h.wire_len, 24);
	}
}

static int write_file(const char *path, const void *p, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0 || write(fd, p, n) != (ssize_t)n || fchmod(fd, mode) != 0)
		tu_die("%s: %s", path, strerror(errno));
	return close(fd);
}

/* ---- key text and key files ------------------------------------------------------- */

static const char HEX64[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char HEX64_UP[] = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";

START_TEST(test_key_parse_hex)
{
	uint8_t key[32];
	char buf[200];

	memset(key, 0xaa, sizeof(key));
	ck_assert_int_eq(vms_key_parse_hex(HEX64, 64, key), 0);
	ck_assert_mem_eq(key, tv_key, 32);
	memset(key, 0xaa, sizeof(key));
	ck_assert_int_eq(vms_key_parse_hex(HEX64_UP, 64, key), 0);
	ck_assert_mem_eq(key, tv_key, 32);
	snprintf(buf, sizeof(buf), "%s\n", HEX64);
	memset(key, 0xaa, sizeof(key));
	ck_assert_int_eq(vms_key_parse_hex(buf, 65, key), 0);
	ck_assert_mem_eq(key, tv_key, 32);
	/* mixed case, all digit values */
	ck_assert_int_eq(vms_key_parse_hex("0123456789abcdefABCDEF0123456789abcdefABCDEF0123456789abcdefABCD",
					   64, key), 0);
	ck_assert_uint_eq(key[0], 0x01);
	ck_assert_uint_eq(key[5], 0xab);
	ck_assert_uint_eq(key[7], 0xef);
	ck_assert_uint_eq(key[8], 0xab);
	ck_assert_uint_eq(key[10], 0xef);
	ck_assert_uint_eq(key[31], 0xcd);

	snprintf(buf, sizeof(buf), "%s\r\n", HEX64);
	ck_assert_int_eq(vms_key_parse_hex(buf, 66, key), VMS_EKEY);
	snprintf(buf, sizeof(buf), "%s\n\n", HEX64);
	ck_assert_int_eq(vms_key_parse_hex(buf, 66, key), VMS_EKEY);
	snprintf(buf, sizeof(buf), "%s\r", HEX64);
	ck_assert_int_eq(vms_key_parse_hex(buf, 65, key), VMS_EKEY);
	ck_assert_int_eq(vms_key_parse_hex(HEX64, 63, key), VMS_EKEY);   /* 63 digits */
	snprintf(buf, sizeof(buf), "%s0", HEX64);
	ck_assert_int_eq(vms_key_parse_hex(buf, 65, key), VMS_EKEY);     /* 65 digits */
	snprintf(buf, sizeof(buf), "%.63s\n", HEX64);
	ck_assert_int_eq(vms_key_parse_hex(buf, 64, key), VMS_EKEY);     /* 63 + newline */
	snprintf(buf, sizeof(buf), "%s00", HEX64);
	ck_assert_int_eq(vms_key_parse_hex(buf, 66, key), VMS_EKEY);
	ck_assert_int_eq(vms_key_parse_hex("", 0, key), VMS_EKEY);
	ck_assert_int_eq(vms_key_parse_hex("\n", 1, key), VMS_EKEY);
	snprintf(buf, sizeof(buf), "\n%s", HEX64);
	ck_assert_int_eq(vms_key_parse_hex(buf, 65, key), VMS_EKEY);
	snprintf(buf, sizeof(buf), " %.63s", HEX64);
	ck_assert_int_eq(vms_key_parse_hex(buf, 64, key), VMS_EKEY);
	/* one non-hex character anywhere */
	for (size_t pos = 0; pos < 64; pos++) {
		static const char bad[] = "gG xX-:\0\xff";

		for (size_t b = 0; b < sizeof(bad) - 1; b++) {
			memcpy(buf, HEX64, 64);
			buf[pos] = bad[b];
			ck_assert_msg(vms_key_parse_hex(buf, 64, key) == VMS_EKEY,
				      "char 0x%02x at %zu accepted", (unsigned char)bad[b], pos);
		}
	}
	ck_assert_str_ne(vms_last_error(), "");
	/* "0x" prefix is not part of the format */
	snprintf(buf, sizeof(buf), "0x%.62s", HEX64);
	ck_assert_int_eq(vms_key_parse_hex(buf, 64, key), VMS_EKEY);
}
END_TEST

START_TEST(test_key_load_file)
{
	char dir[] = "/tmp/vms-keys-XXXXXX", path[256], line[80];
	uint8_t key[32];

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(line, sizeof(line), "%s\n", HEX64);

	snprintf(path, sizeof(path), "%s/ok600", dir);
	write_file(path, line, 65, 0600);
	memset(key, 0, sizeof(key));
	ck_assert_int_eq(vms_key_load_file(path, key, 0), 0);
	ck_assert_mem_eq(key, tv_key, 32);

	snprintf(path, sizeof(path), "%s/nonl400", dir);
	write_file(path, HEX64_UP, 64, 0400);
	memset(key, 0, sizeof(key));
	ck_assert_int_eq(vms_key_load_file(path, key, 0), 0);
	ck_assert_mem_eq(key, tv_key, 32);

	/* group/other readable: refused unless allow_shared */
	static const mode_t shared[] = { 0644, 0640, 0604, 0660, 0606, 0610, 0601 };
	for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++) {
		snprintf(path, sizeof(path), "%s/shared%o", dir, (unsigned)shared[i]);
		write_file(path, line, 65, shared[i]);
		ck_assert_msg(vms_key_load_file(path, key, 0) == VMS_EKEY, "mode %o accepted",
			      (unsigned)shared[i]);
		ck_assert_ptr_nonnull(strstr(vms_last_error(), path));
		memset(key, 0, sizeof(key));
		ck_assert_int_eq(vms_key_load_file(path, key, 1), 0);
		ck_assert_mem_eq(key, tv_key, 32);
	}

	snprintf(path, sizeof(path), "%s/missing", dir);
	ck_assert_int_eq(vms_key_load_file(path, key, 0), VMS_EKEY);
	ck_assert_int_eq(vms_key_load_file(path, key, 1), VMS_EKEY);
	ck_assert_int_eq(vms_key_load_file(dir, key, 1), VMS_EKEY); /* a directory */
	ck_assert_int_eq(vms_key_load_file(dir, key, 0), VMS_EKEY);

	/* contents the parser refuses, in a private file */
	{
		static const char *const bodies[] = { "", "\n", "abc\n" };
		char crlf[80], two[80], long_[200];

		snprintf(crlf, sizeof(crlf), "%s\r\n", HEX64);
		snprintf(two, sizeof(two), "%s\n\n", HEX64);
		snprintf(long_, sizeof(long_), "%s\n%s\n", HEX64, HEX64);
		for (size_t i = 0; i < 6; i++) {
			const char *b = i < 3 ? bodies[i] : i == 3 ? crlf : i == 4 ? two : long_;

			snprintf(path, sizeof(path), "%s/bad%zu", dir, i);
			write_file(path, b, strlen(b), 0600);
			ck_assert_msg(vms_key_load_file(path, key, 0) == VMS_EKEY, "body %zu accepted", i);
		}
	}
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		ck_assert_int_eq(system(cmd), 0);
	}
}
END_TEST

START_TEST(test_cipher_names)
{
	ck_assert_int_eq(vms_cipher_from_name("none"), VMS_CIPHER_NONE);
	ck_assert_int_eq(vms_cipher_from_name("aes-256-gcm"), VMS_CIPHER_AES_256_GCM);
	ck_assert_int_eq(vms_cipher_from_name("chacha20-poly1305"), VMS_CIPHER_CHACHA20_POLY1305);
	ck_assert_int_eq(vms_cipher_from_name("AES-256-GCM"), VMS_EINVAL);
	ck_assert_int_eq(vms_cipher_from_name("aes-128-gcm"), VMS_EINVAL);
	ck_assert_int_eq(vms_cipher_from_name(""), VMS_EINVAL);
	ck_assert_int_eq(vms_cipher_from_name(NULL), VMS_EINVAL);
	ck_assert_str_eq(vms_cipher_name(0), "none");
	ck_assert_str_eq(vms_cipher_name(1), "aes-256-gcm");
	ck_assert_str_eq(vms_cipher_name(2), "chacha20-poly1305");
	ck_assert_ptr_null(vms_cipher_name(3));
	ck_assert(vms_cipher_preferred() == VMS_CIPHER_AES_256_GCM ||
		  vms_cipher_preferred() == VMS_CIPHER_CHACHA20_POLY1305);
}
END_TEST

/* ---- key schedule against the reference --------------------------------------------- */

START_TEST(test_ref_hkdf_rfc5869)
{
	/* RFC 5869 A.1: proves the reference itself before it judges the library */
	static const uint8_t prk_want[32] = {
		0x07, 0x77, 0x09, 0x36, 0x2c, 0x2e, 0x32, 0xdf, 0x0d, 0xdc, 0x3f, 0x0d, 0xc4, 0x7b, 0xba, 0x63,
		0x90, 0xb6, 0xc7, 0x3b, 0xb5, 0x0f, 0x9c, 0x31, 0x22, 0xec, 0x84, 0x4a, 0xd7, 0xc2, 0xb3, 0xe5,
	};
	static const uint8_t okm_want[42] = {
		0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a, 0x90, 0x43, 0x4f, 0x64, 0xd0, 0x36,
		0x2f, 0x2a, 0x2d, 0x2d, 0x0a, 0x90, 0xcf, 0x1a, 0x5a, 0x4c, 0x5d, 0xb0, 0x2d, 0x56,
		0xec, 0xc4, 0xc5, 0xbf, 0x34, 0x00, 0x72, 0x08, 0xd5, 0xb8, 0x87, 0x18, 0x58, 0x65,
	};
	uint8_t ikm[22], salt[13], info[10], okm[42], prk[32];

	memset(ikm, 0x0b, sizeof(ikm));
	for (int i = 0; i < 13; i++)
		salt[i] = (uint8_t)i;
	for (int i = 0; i < 10; i++)
		info[i] = (uint8_t)(0xf0 + i);
	ck_assert_int_eq(ref_hkdf_pkey(salt, 13, ikm, 22, info, 10, okm, 42), 0);
	ck_assert_mem_eq(okm, okm_want, 42);
	memset(okm, 0, sizeof(okm));
	ck_assert_int_eq(ref_hkdf_hmac(salt, 13, ikm, 22, info, 10, okm, 42, prk), 0);
	ck_assert_mem_eq(okm, okm_want, 42);
	ck_assert_mem_eq(prk, prk_want, 32);
}
END_TEST

START_TEST(test_keysched_known_answer)
{
	/* key(lane 0, epoch 0) and key(0, 1) for the encrypted vectors' inputs,
	 * derived by the reference from FORMAT.md, pinned here; then the
	 * library's aes_gcm_epochs vector must open with exactly these keys. */
	static const uint8_t key_e0[32] = {
		0x08, 0xe9, 0xf7, 0x41, 0xcf, 0x86, 0x00, 0xd0, 0xa4, 0x05, 0xf1, 0x4e, 0x9b, 0xb4, 0xf1, 0x2a,
		0x19, 0xc3, 0x5c, 0x54, 0xcf, 0x42, 0x1e, 0x52, 0x9a, 0xe9, 0xa9, 0xd4, 0x0f, 0x4c, 0x44, 0x53,
	};
	static const uint8_t key_e1[32] = {
		0x8b, 0xea, 0xb4, 0xcf, 0xab, 0x2d, 0xc9, 0xba, 0xc3, 0x67, 0x77, 0xdf, 0x4d, 0x54, 0x2f, 0x76,
		0xb9, 0x90, 0x09, 0x03, 0xb3, 0xfe, 0x5e, 0xf4, 0x32, 0xf7, 0x97, 0x4a, 0xf5, 0x48, 0x4c, 0xeb,
	};
	/* info for lane 0x0102, epoch 0x0304, preamble_sum 0x1122334455667788,
	 * cipher 2: every multi-byte field little-endian */
	static const uint8_t info_want[44] = {
		'v', 'm', 's', 't', 'r', 'e', 'a', 'm', ' ', 'v', '1', ' ', 'k', 'e', 'y',
		'v', 'm', 's', 't', 'r', 'e', 'a', 'm', ' ', 'v', 'e', 'c', 't', 'o', 'r', 's',
		0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x02, 0x02, 0x01, 0x04, 0x03,
	};
	struct ref_stream rs;
	uint8_t k[32], info[44], *b;
	size_t n;

	ref_info(info, tv_stream_id, 0x1122334455667788ull, 2, 0x0102, 0x0304);
	ck_assert_mem_eq(info, info_want, 44);

	b = tv_aes_gcm_epochs(&n);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(ref_parse_preamble(&rs, b, n), 0);
	ck_assert(rs.has_salt);
	ck_assert_mem_eq(rs.salt, tv_salt, 32);
	ck_assert_uint_eq(rs.cipher, 1);
	ck_assert_int_eq(ref_key(&rs, tv_key, 0, 0, k), 0);
	ck_assert_mem_eq(k, key_e0, 32);
	ck_assert_int_eq(ref_key(&rs, tv_key, 0, 1, k), 0);
	ck_assert_mem_eq(k, key_e1, 32);
	/* record 0 (epoch 0) opens with key_e0 and record 1 (epoch 1) with
	 * key_e1, nonce lane || epoch || seq, AAD = the header */
	{
		struct tu_ed ed;
		uint8_t nonce[12], pt[64];

		ck_assert_int_eq(tu_ed_parse(&ed, b, n), 0);
		ck_assert_uint_eq(ed.r[1].h.epoch, 1);
		ref_nonce(nonce, 0, 0, 0);
		ck_assert_int_eq(ref_open(1, key_e0, nonce, ed.r[0].hb, 56, ed.r[0].pl, ed.r[0].pl_len, pt), 0);
		ref_nonce(nonce, 0, 1, 1);
		ck_assert_int_eq(ref_open(1, key_e1, nonce, ed.r[1].hb, 56, ed.r[1].pl, ed.r[1].pl_len, pt), 0);
		ck_assert_mem_eq(pt, "hello", 5);
		ck_assert_uint_eq(vms_get_u64(pt + 5), tu_xxh3("hello", 5));
		/* the other epoch's key does not open it */
		ck_assert_int_eq(ref_open(1, key_e0, nonce, ed.r[1].hb, 56, ed.r[1].pl, ed.r[1].pl_len, pt), -1);
		tu_ed_free(&ed);
	}
	free(b);
}
END_TEST

START_TEST(test_nonce_layout)
{
	static const uint8_t want[12] = { 0x02, 0x01, 0x04, 0x03, 0x0c, 0x0b, 0x0a, 0x09,
					  0x08, 0x07, 0x06, 0x05 };
	uint8_t n1[12], n2[12];

	vms_nonce(n1, 0x0102, 0x0304, 0x05060708090a0b0cull);
	ref_nonce(n2, 0x0102, 0x0304, 0x05060708090a0b0cull);
	ck_assert_mem_eq(n1, want, 12);
	ck_assert_mem_eq(n2, want, 12);
}
END_TEST

/* Write with each cipher; open every record with the reference and check the
 * plaintext is body || XXH3(decoded) exactly; re-seal it and get the same
 * bytes back. */
START_TEST(test_records_match_reference)
{
	uint8_t cipher = ciphers[_i % 2];
	struct wo s = { .cipher = cipher, .key = K1, .salt = SALT1, .sid = SID_A,
			.compress = _i >= 2 ? "zstd:3" : NULL, .threads = _i >= 2 ? 2 : 0 };
	uint8_t data[HOSTILE_DATA_LEN];
	struct tu_ed ed;
	uint8_t *b, *rebuilt;
	size_t n, n2, data_off = 0;

	fill_text(data, sizeof(data), 3);
	b = write_hostile_base(&s, data, &n);
	ck_assert_int_eq(tu_ed_parse(&ed, b, n), 0);
	ck_assert_uint_eq(ed.n, 9);
	assert_sealed_headers(&ed);
	for (size_t i = 0; i < ed.n; i++) {
		struct tu_rec *r = &ed.r[i];
		uint8_t *pt = tu_xmalloc(r->pl_len);
		uint8_t nonce[12], key[32], *again;
		struct ref_stream rs;
		size_t body = r->pl_len - 24;
		uint64_t sum;

		ck_assert_msg(ref_open_ed(&ed, i, K1, pt) == 0, "record %zu does not open", i);
		sum = vms_get_u64(pt + body);
		if (r->h.type == VMS_REC_DATA) {
			const uint8_t *raw = data + data_off;

			if (r->h.codec) {
				uint8_t *dec = tu_xmalloc(r->h.raw_len);

				ck_assert_uint_eq(r->h.codec, 1);
				ck_assert_uint_eq(ZSTD_decompress(dec, r->h.raw_len, pt, body), r->h.raw_len);
				ck_assert_mem_eq(dec, raw, r->h.raw_len);
				free(dec);
			} else {
				ck_assert_uint_eq(body, r->h.raw_len);
				ck_assert_mem_eq(pt, raw, body);
			}
			ck_assert_uint_eq(sum, tu_xxh3(raw, r->h.raw_len));
			data_off += r->h.raw_len;
		} else {
			ck_assert_uint_eq(body, r->h.raw_len);
			ck_assert_uint_eq(sum, tu_xxh3(pt, body));
		}
		/* the reference seal of the same plaintext is the same record */
		ck_assert_int_eq(ref_parse_preamble(&rs, ed.pre, ed.pre_len), 0);
		ck_assert_int_eq(ref_key(&rs, K1, r->h.lane, r->h.epoch, key), 0);
		ref_nonce(nonce, r->h.lane, r->h.epoch, r->h.seq);
		again = tu_xmalloc(r->pl_len);
		ck_assert_int_eq(ref_seal(cipher, key, nonce, r->hb, 56, pt, body + 8, again), 0);
		ck_assert_mem_eq(again, r->pl, r->pl_len);
		/* the nonce is little-endian: the big-endian reading does not open */
		if (r->h.seq) {
			uint8_t bad[12] = { 0 };

			bad[11] = (uint8_t)r->h.seq;
			ck_assert_int_eq(ref_open(cipher, key, bad, r->hb, 56, r->pl, r->pl_len, again), -1);
		}
		free(again);
		free(pt);
	}
	ck_assert_uint_eq(data_off, sizeof(data));
	/* re-sealing every record with the reference rebuilds the stream */
	for (size_t i = 0; i < ed.n; i++) {
		uint8_t *pt = tu_xmalloc(ed.r[i].pl_len);
		size_t body = ed.r[i].pl_len - 24;

		ck_assert_int_eq(ref_open_ed(&ed, i, K1, pt), 0);
		reseal(&ed, i, K1, pt, body, vms_get_u64(pt + body));
		free(pt);
	}
	rebuilt = tu_ed_build(&ed, &n2);
	ck_assert_uint_eq(n2, n);
	ck_assert_mem_eq(rebuilt, b, n);
	free(rebuilt);
	tu_ed_free(&ed);
	free(b);
}
END_TEST

/* ---- round trips ----------------------------------------------------------------------- */

START_TEST(test_roundtrip)
{
	/* _i: cipher x compress {none, zstd:1, auto} x threads {w0/r0, w2/r2, w2/r0, w0/r2} */
	static const char *const comp[] = { NULL, "zstd:1", "auto" };
	static const uint32_t wt[] = { 0, 2, 2, 0 }, rt[] = { 0, 2, 0, 2 };
	int ci = _i % 2, co = _i / 2 % 3, th = _i / 6;
	struct wo s = { .cipher = ciphers[ci], .key = K1, .compress = comp[co], .threads = wt[th] };
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	const size_t len0 = 9 * CHUNK + 123, len1 = 2 * CHUNK;
	uint8_t *d0 = tu_xmalloc(len0), *d1 = tu_xmalloc(len1), *b;
	int fd = tu_memfd_new();
	struct vms_writer *w = wopen(&s, fd);
	struct vms_stats ws = { .size = sizeof(ws) };
	struct tu_run r;
	struct tu_ed ed;
	size_t n;

	fill_text(d0, 3 * CHUNK, 1);
	memset(d0 + 3 * CHUNK, 0, 2 * CHUNK); /* two ZERO records */
	tu_fill(d0 + 5 * CHUNK, len0 - 5 * CHUNK, 2);
	fill_text(d1, len1, 9);
	d.name = "secret-device-name";
	d.kind = VMS_DEVKIND_VFIO;
	d.size_hint = len0;
	ck_assert_int_eq(vms_writer_begin_device(w, &d, NULL), 0);
	d.name = "second";
	d.kind = VMS_DEVKIND_VMM;
	d.size_hint = UINT64_MAX;
	ck_assert_int_eq(vms_writer_begin_device(w, &d, NULL), 0);
	ck_assert_int_eq(vms_writer_phase(w, VMS_PHASE_PRECOPY, 0), 0);
	ck_assert_int_eq(vms_writer_write(w, 0, d0, CHUNK), 0);
	ck_assert_int_eq(vms_writer_write(w, 1, d1, len1), 0);
	ck_assert_int_eq(vms_writer_write(w, 0, d0 + CHUNK, len0 - CHUNK), 0);
	ck_assert_int_eq(vms_writer_phase(w, VMS_PHASE_STOPCOPY, 7), 0);
	ck_assert_int_eq(vms_writer_end_device(w, 1), 0);
	ck_assert_int_eq(vms_writer_end_device(w, 0), 0);
	ck_assert_int_eq(vms_writer_finish(w), 0);
	ck_assert_int_eq(vms_writer_stats(w, &ws), 0);
	vms_writer_free(w);
	b = tu_memfd_get(fd, &n);
	close(fd);

	ck_assert_int_eq(read_with(b, n, K1, rt[th], 0, &r), 0);
	ck_assert_msg(r.err == 0, "%s", r.msg);
	ck_assert_int_eq(r.again, 0);
	ck_assert_uint_eq(r.info.cipher, ciphers[ci]);
	ck_assert_uint_eq(r.info.key_source, 1);
	ck_assert_uint_eq(r.info.flags, 1);
	ck_assert_uint_eq(r.dev[0].n, len0);
	ck_assert_mem_eq(r.dev[0].p, d0, len0);
	ck_assert_uint_eq(r.dev[1].n, len1);
	ck_assert_mem_eq(r.dev[1].p, d1, len1);
	ck_assert_str_eq(r.ev[0].text, "secret-device-name");
	ck_assert_uint_eq(r.ev[0].a, VMS_DEVKIND_VFIO);
	ck_assert_uint_eq(r.ev[0].b, len0);
	ck_assert_str_eq(r.ev[1].text, "second");
	ck_assert_uint_eq(r.ev[2].type, VMS_REC_PHASE);
	ck_assert_uint_eq(r.ev[2].a, VMS_PHASE_PRECOPY);
	ck_assert_uint_eq(r.st.zero_records, 2);
	ck_assert_uint_eq(r.st.records, ws.records);
	ck_assert_uint_eq(ws.wire_bytes, n);
	ck_assert_uint_eq(ws.raw_bytes, len0 + len1);
	ck_assert_uint_eq(ws.zero_records, 2);
	ck_assert_uint_eq(r.st.wire_bytes, n);
	for (size_t i = 0; i < r.nev; i++) {
		ck_assert_uint_eq(r.ev[i].flags, VMS_RFLAG_ENCRYPTED);
		ck_assert_uint_eq(r.ev[i].epoch, 0);
		if (r.ev[i].type == VMS_REC_ZERO)
			ck_assert_uint_eq(r.ev[i].wire_len, 24);
		else if (r.ev[i].type == VMS_REC_DATA && r.ev[i].codec == 0)
			ck_assert_uint_eq(r.ev[i].wire_len, r.ev[i].raw_len + 24);
		if (r.ev[i].type == VMS_REC_DATA && co == 1 && r.ev[i].offset < 3 * CHUNK &&
		    r.ev[i].device == 0)
			ck_assert_uint_eq(r.ev[i].codec, 1); /* text compresses */
	}
	tu_run_free(&r);

	/* nothing derived from the plaintext is visible */
	ck_assert_int_eq(tu_ed_parse(&ed, b, n), 0);
	assert_sealed_headers(&ed);
	ck_assert_ptr_null(memmem(b, n, "secret-device-name", 18));
	ck_assert_ptr_null(memmem(b, n, "second", 6));
	ck_assert_ptr_null(memmem(b, n, d0 + 5 * CHUNK, 16));
	ck_assert_ptr_null(memmem(b, n, "migration ", 10));
	tu_ed_free(&ed);
	free(b);
	free(d0);
	free(d1);
}
END_TEST

START_TEST(test_plaintext_visible_control)
{
	/* The same checks on an unencrypted stream do see the plaintext: the
	 * memmem() probes of test_roundtrip can fail. */
	struct wo s = { 0 };
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	int fd = tu_memfd_new();
	struct vms_writer *w = wopen(&s, fd);
	struct tu_ed ed;
	uint8_t *b;
	size_t n;

	d.name = "secret-device-name";
	ck_assert_int_eq(vms_writer_begin_device(w, &d, NULL), 0);
	ck_assert_int_eq(vms_writer_write(w, 0, "migration data", 14), 0);
	ck_assert_int_eq(vms_writer_end_device(w, 0), 0);
	b = wclose(w, fd, &n);
	ck_assert_ptr_nonnull(memmem(b, n, "secret-device-name", 18));
	ck_assert_ptr_nonnull(memmem(b, n, "migration ", 10));
	ck_assert_int_eq(tu_ed_parse(&ed, b, n), 0);
	ck_assert_uint_ne(ed.r[0].h.payload_sum, 0);
	tu_ed_free(&ed);
	free(b);
}
END_TEST

START_TEST(test_key_is_copied)
{
	/* The writer copies the key at open: scribbling over the caller's
	 * buffer afterwards changes nothing. */
	uint8_t key[32], data[100];
	struct wo s = { .cipher = VMS_CIPHER_AES_256_GCM, .key = key };
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	int fd = tu_memfd_new();
	struct vms_writer *w;
	struct tu_run r;
	uint8_t *b;
	size_t n;

	memcpy(key, K1, 32);
	w = wopen(&s, fd);
	memset(key, 0x55, sizeof(key));
	tu_fill(data, sizeof(data), 1);
	d.name = "d";
	ck_assert_int_eq(vms_writer_begin_device(w, &d, NULL), 0);
	ck_assert_int_eq(vms_writer_write(w, 0, data, sizeof(data)), 0);
	ck_assert_int_eq(vms_writer_end_device(w, 0), 0);
	b = wclose(w, fd, &n);
	ck_assert_int_eq(read_with(b, n, K1, 0, 0, &r), 0);
	ck_assert_mem_eq(r.dev[0].p, data, sizeof(data));
	tu_run_free(&r);
	free(b);
}
END_TEST

START_TEST(test_writer_key_options)
{
	static const struct {
		uint32_t cipher;
		const uint8_t *key;
		int code;
	} bad[] = {
		{ VMS_CIPHER_AES_256_GCM, NULL, VMS_EKEY },
		{ VMS_CIPHER_CHACHA20_POLY1305, NULL, VMS_EKEY },
		{ VMS_CIPHER_NONE, K1, VMS_EINVAL },
		{ 3, K1, VMS_EINVAL },
		{ 255, K1, VMS_EINVAL },
	};
	int fd = tu_memfd_new();

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
		struct vms_writer *w = (void *)1;
		uint8_t *b;
		size_t n;

		o.cipher = bad[i].cipher;
		o.key = bad[i].key;
		ck_assert_msg(vms_writer_open_fd(&w, fd, &o) == bad[i].code, "case %zu", i);
		ck_assert_ptr_null(w);
		ck_assert_str_ne(vms_last_error(), "");
		b = tu_memfd_get(fd, &n);
		ck_assert_msg(n == 0, "case %zu: %zu bytes written to the sink", i, n);
		free(b);
	}
	close(fd);
}
END_TEST

START_TEST(test_reader_key_mismatch)
{
	uint8_t data[HOSTILE_DATA_LEN], *enc, *plain;
	struct wo se = { .cipher = ciphers[_i], .key = K1 }, sp = { 0 };
	struct tu_run r;
	size_t ne, np;

	tu_fill(data, sizeof(data), 4);
	enc = write_hostile_base(&se, data, &ne);
	plain = write_hostile_base(&sp, data, &np);
	/* unencrypted stream, key given: refused at open */
	for (uint32_t t = 0; t <= 2; t += 2) {
		ck_assert_int_eq(read_with(plain, np, K1, t, 0, &r), VMS_EKEY);
		ck_assert_int_eq(r.open_err, VMS_EKEY);
		ck_assert_uint_eq(r.nev, 0);
		tu_run_free(&r);
		/* encrypted stream, no key */
		ck_assert_int_eq(read_with(enc, ne, NULL, t, 0, &r), VMS_EKEY);
		ck_assert_int_eq(r.open_err, VMS_EKEY);
		ck_assert_uint_eq(r.nev, 0);
		tu_run_free(&r);
	}
	/* a key given for a plaintext stream is refused in headers-only mode
	 * too (FORMAT.md preamble rule 21 needs no payload) */
	ck_assert_int_eq(read_with(plain, np, K1, 0, VMS_READER_F_HEADERS_ONLY, &r), VMS_EKEY);
	ck_assert_int_eq(r.open_err, VMS_EKEY);
	ck_assert_uint_eq(r.nev, 0);
	ck_assert_msg(strncmp(r.msg, "preamble at byte 0: ", 20) == 0, "%s", r.msg);
	tu_run_free(&r);
	/* headers-only needs no key and delivers no payload */
	ck_assert_int_eq(read_with(enc, ne, NULL, 0, VMS_READER_F_HEADERS_ONLY, &r), 0);
	ck_assert_uint_eq(r.nev, 9);
	ck_assert_uint_eq(r.st.wire_bytes, ne);
	for (size_t i = 0; i < r.nev; i++) {
		ck_assert_uint_eq(r.ev[i].seq, i);
		ck_assert_uint_eq(r.ev[i].flags, VMS_RFLAG_ENCRYPTED);
		if (r.ev[i].type == VMS_REC_DATA)
			ck_assert(r.ev[i].data_null);
	}
	ck_assert_uint_eq(r.ev[1].raw_len, CHUNK);
	ck_assert_uint_eq(r.ev[6].raw_len, 1000);
	ck_assert_uint_eq(r.ev[1].wire_len, CHUNK + 24);
	ck_assert_uint_eq(r.ev[8].type, VMS_REC_EOS);
	tu_run_free(&r);
	free(enc);
	free(plain);
}
END_TEST

/* ---- tampering ------------------------------------------------------------------------- */

enum tamper {
	T_WRONG_KEY,
	T_FLIP_CIPHERTEXT,
	T_FLIP_SEALED_SUM,
	T_FLIP_TAG,
	T_TRUNC_TAG_DATA,
	T_TRUNC_TAG_CONTROL,
	T_REPLAY,
	T_DROP,
	T_SWAP,
	T_DROP_PHASE_RENUMBER,
	T_SWAP_PHASE_RENUMBER,
	T_DROP_DATA_RENUMBER,
	T_TRANSPLANT_OTHER_SID,
	T_TRANSPLANT_OTHER_SALT,
	T_LANE,
	T_EPOCH_PLUS1,
	T_EPOCH_PLUS2,
	T_PAYLOAD_SUM_SET,
	T_FLAG_CLEARED,
	T_PRE_CREATOR,
	T_PRE_SALT,
	T_PRE_SID,
	T_PRE_MINOR,
	T_PRE_IGNORABLE_PARAM,
	T_PRE_CIPHER,
	T_RESEAL_BAD_SUM,
	T_RESEAL_BAD_DEVICE_NAME,
	T_RESEAL_SAME,
	T_COUNT
};

static const struct {
	const char *name;
	int code;
	size_t k; /* events delivered before the failure */
} tamper_want[T_COUNT] = {
	[T_WRONG_KEY] = { "wrong key", VMS_EAUTH, 0 },
	[T_FLIP_CIPHERTEXT] = { "ciphertext bit flipped", VMS_EAUTH, 3 },
	[T_FLIP_SEALED_SUM] = { "sealed sum bit flipped", VMS_EAUTH, 3 },
	[T_FLIP_TAG] = { "tag bit flipped", VMS_EAUTH, 3 },
	/* wire_len - 1 on an uncompressed DATA record: body = wire_len - 24 is
	 * then raw_len - 1, which 3.2 forbids for codec 0: the length rule
	 * (FORMAT.md 4.2, record rule 10) fires before authentication (rule 16). */
	[T_TRUNC_TAG_DATA] = { "tag truncated (DATA, codec 0)", VMS_ELENGTH, 3 },
	[T_TRUNC_TAG_CONTROL] = { "tag truncated (PHASE)", VMS_ELENGTH, 2 },
	[T_REPLAY] = { "record replayed", VMS_ESEQ, 4 },
	[T_DROP] = { "record dropped", VMS_ESEQ, 3 },
	[T_SWAP] = { "records swapped", VMS_ESEQ, 3 },
	[T_DROP_PHASE_RENUMBER] = { "PHASE dropped, later seqs rewritten", VMS_EAUTH, 2 },
	[T_SWAP_PHASE_RENUMBER] = { "PHASE and DATA swapped, seqs rewritten", VMS_EAUTH, 2 },
	/* fails authentication too, but the device offset is a header-only
	 * rule (FORMAT.md 4.2, record rule 14) and comes before rule 16 */
	[T_DROP_DATA_RENUMBER] = { "DATA dropped, later seqs rewritten", VMS_EOFFSET, 3 },
	[T_TRANSPLANT_OTHER_SID] = { "record from a stream with another id", VMS_EAUTH, 3 },
	[T_TRANSPLANT_OTHER_SALT] = { "record from a stream with another salt", VMS_EAUTH, 3 },
	[T_LANE] = { "lane 1 in a 1-lane stream", VMS_EEPOCH, 3 },
	[T_EPOCH_PLUS1] = { "epoch +1 without a rotation", VMS_EAUTH, 3 },
	[T_EPOCH_PLUS2] = { "epoch +2", VMS_EEPOCH, 3 },
	[T_PAYLOAD_SUM_SET] = { "payload_sum set in an encrypted header", VMS_ERESERVED, 3 }, /* rule 11 */
	[T_FLAG_CLEARED] = { "ENCRYPTED flag cleared", VMS_EFLAGS, 3 },
	[T_PRE_CREATOR] = { "preamble: creator changed", VMS_EAUTH, 0 },
	[T_PRE_SALT] = { "preamble: salt changed", VMS_EAUTH, 0 },
	[T_PRE_SID] = { "preamble: stream id changed", VMS_EAUTH, 0 },
	[T_PRE_MINOR] = { "preamble: minor version changed", VMS_EAUTH, 0 },
	[T_PRE_IGNORABLE_PARAM] = { "preamble: ignorable entry added", VMS_EAUTH, 0 },
	[T_PRE_CIPHER] = { "preamble: other cipher", VMS_EAUTH, 0 },
	/* authentic (re-sealed with the right key) but wrong inside */
	[T_RESEAL_BAD_SUM] = { "re-sealed with a wrong inner sum", VMS_EPAYLOADSUM, 3 },
	[T_RESEAL_BAD_DEVICE_NAME] = { "re-sealed DEVICE_BEGIN with a NUL in the name", VMS_EDEVICE, 0 },
	[T_RESEAL_SAME] = { "re-sealed unchanged (control)", 0, 9 },
};

static void swap_rec(struct tu_ed *ed, size_t a, size_t b)
{
	struct tu_rec t = ed->r[a];

	ed->r[a] = ed->r[b];
	ed->r[b] = t;
}

START_TEST(test_tamper)
{
	enum tamper t = (enum tamper)(_i / 2);
	uint8_t cipher = ciphers[_i % 2];
	struct wo s = { .cipher = cipher, .key = K1, .salt = SALT1, .sid = SID_A,
			.creator = "creator-A" };
	uint8_t data[HOSTILE_DATA_LEN];
	const uint8_t *rkey = K1;
	struct tu_run good;
	struct tu_ed ed;
	uint8_t *b, *bad;
	size_t n, nbad;

	tu_fill(data, sizeof(data), 77);
	b = write_hostile_base(&s, data, &n);
	ck_assert_int_eq(read_with(b, n, K1, 0, 0, &good), 0);
	ck_assert_uint_eq(good.nev, 9);
	ck_assert_int_eq(tu_ed_parse(&ed, b, n), 0);
	ck_assert_uint_eq(ed.r[2].h.type, VMS_REC_PHASE);
	ck_assert_uint_eq(ed.r[3].h.type, VMS_REC_DATA);

	switch (t) {
	case T_WRONG_KEY:
		rkey = K2;
		break;
	case T_FLIP_CIPHERTEXT:
		ed.r[3].pl[100] ^= 0x04;
		break;
	case T_FLIP_SEALED_SUM:
		ed.r[3].pl[CHUNK + 3] ^= 0x80;
		break;
	case T_FLIP_TAG:
		ed.r[3].pl[ed.r[3].pl_len - 1] ^= 0x01;
		break;
	case T_TRUNC_TAG_DATA:
		ed.r[3].pl_len--; /* tu_ed_build: wire_len = pl_len, header re-summed */
		break;
	case T_TRUNC_TAG_CONTROL:
		ed.r[2].pl_len--;
		break;
	case T_REPLAY:
		tu_ed_insert(&ed, 4, &ed.r[3].h, ed.r[3].pl, ed.r[3].pl_len);
		break;
	case T_DROP:
		tu_ed_remove(&ed, 3);
		break;
	case T_SWAP:
		swap_rec(&ed, 3, 4);
		break;
	case T_DROP_PHASE_RENUMBER:
		tu_ed_remove(&ed, 2);
		tu_ed_renumber(&ed);
		break;
	case T_SWAP_PHASE_RENUMBER:
		swap_rec(&ed, 2, 3);
		tu_ed_renumber(&ed);
		break;
	case T_DROP_DATA_RENUMBER:
		tu_ed_remove(&ed, 3);
		tu_ed_renumber(&ed);
		break;
	case T_TRANSPLANT_OTHER_SID:
	case T_TRANSPLANT_OTHER_SALT: {
		/* same key, same structure and position: only the stream differs */
		struct wo s2 = s;
		struct tu_ed e2;
		uint8_t *b2;
		size_t n2;

		if (t == T_TRANSPLANT_OTHER_SID)
			s2.sid = SID_B;
		else
			s2.salt = SALT2;
		b2 = write_hostile_base(&s2, data, &n2);
		ck_assert_uint_eq(n2, n);
		ck_assert_int_eq(tu_ed_parse(&e2, b2, n2), 0);
		ck_assert_mem_eq(e2.r[3].hb, ed.r[3].hb, VMS_HDR_LEN); /* same header */
		ck_assert_int_ne(memcmp(e2.r[3].pl, ed.r[3].pl, ed.r[3].pl_len), 0);
		memcpy(ed.r[3].pl, e2.r[3].pl, ed.r[3].pl_len);
		tu_ed_free(&e2);
		free(b2);
		break;
	}
	case T_LANE:
		ed.r[3].h.lane = 1;
		break;
	case T_EPOCH_PLUS1:
		ed.r[3].h.epoch = 1;
		break;
	case T_EPOCH_PLUS2:
		ed.r[3].h.epoch = 2;
		break;
	case T_PAYLOAD_SUM_SET:
		ed.r[3].h.payload_sum = tu_xxh3(data + CHUNK, CHUNK);
		break;
	case T_FLAG_CLEARED:
		ed.r[3].h.flags = 0;
		break;
	case T_PRE_CREATOR: {
		uint8_t *p = memmem(ed.pre, ed.pre_len, "creator-A", 9);

		ck_assert_ptr_nonnull(p);
		p[8] = 'B';
		tu_pre_fix(ed.pre, ed.pre_len);
		break;
	}
	case T_PRE_SALT: {
		uint8_t *p = memmem(ed.pre, ed.pre_len, SALT1, 32);

		ck_assert_ptr_nonnull(p);
		p[31] ^= 1;
		tu_pre_fix(ed.pre, ed.pre_len);
		break;
	}
	case T_PRE_SID:
		ed.pre[16] ^= 1;
		tu_pre_fix(ed.pre, ed.pre_len);
		break;
	case T_PRE_MINOR:
		ed.pre[10] = 1; /* version 1.1: a 1.0 reader accepts it */
		tu_pre_fix(ed.pre, ed.pre_len);
		break;
	case T_PRE_IGNORABLE_PARAM:
		tu_ed_add_param(&ed, 0x8abc, "x", 1);
		break;
	case T_PRE_CIPHER:
		ed.pre[40] = (uint8_t)(cipher == 1 ? 2 : 1);
		tu_pre_fix(ed.pre, ed.pre_len);
		break;
	case T_RESEAL_BAD_SUM:
		reseal(&ed, 3, K1, data + CHUNK, CHUNK, tu_xxh3(data + CHUNK, CHUNK) ^ 1);
		break;
	case T_RESEAL_BAD_DEVICE_NAME: {
		uint8_t body[18 + 2];
		struct vms_begin_body bb = { .kind = 0, .size_hint = UINT64_MAX, .name_len = 2 };

		memcpy(bb.name, "d\0", 2);
		ck_assert_uint_eq(vms_begin_encode(&bb, body), sizeof(body));
		ed.r[0].h.raw_len = sizeof(body);
		reseal(&ed, 0, K1, body, sizeof(body), tu_xxh3(body, sizeof(body)));
		break;
	}
	case T_RESEAL_SAME: {
		uint8_t *pt = tu_xmalloc(ed.r[3].pl_len);

		ck_assert_int_eq(ref_open_ed(&ed, 3, K1, pt), 0);
		reseal(&ed, 3, K1, pt, CHUNK, vms_get_u64(pt + CHUNK));
		free(pt);
		break;
	}
	default:
		tu_die("bad case");
	}
	bad = tu_ed_build(&ed, &nbad);
	if (t == T_RESEAL_SAME) {
		ck_assert_uint_eq(nbad, n);
		ck_assert_mem_eq(bad, b, n);
	} else if (t != T_WRONG_KEY) {
		ck_assert(nbad != n || memcmp(bad, b, n) != 0);
	}
	if (tamper_want[t].code == 0) {
		struct tu_run r;

		ck_assert_int_eq(read_with(bad, nbad, rkey, 2, 0, &r), 0);
		ck_assert_mem_eq(r.dev[0].p, data, sizeof(data));
		tu_run_free(&r);
	} else {
		expect_fail(tamper_want[t].name, bad, nbad, rkey, tamper_want[t].code,
			    tamper_want[t].k, &good);
	}
	free(bad);
	tu_ed_free(&ed);
	tu_run_free(&good);
	free(b);
}
END_TEST

/* Tag truncation on a compressed DATA record: body = wire_len - 24 is still
 * within 0 < body < raw_len, so the length rule passes and authentication
 * fails (the last 16 bytes are no longer the tag). */
START_TEST(test_truncated_tag_compressed)
{
	struct wo s = { .cipher = ciphers[_i], .key = K1, .compress = "zstd:1" };
	uint8_t data[HOSTILE_DATA_LEN];
	struct tu_run good;
	struct tu_ed ed;
	uint8_t *b, *bad;
	size_t n, nbad;

	fill_text(data, sizeof(data), 5);
	b = write_hostile_base(&s, data, &n);
	ck_assert_int_eq(read_with(b, n, K1, 0, 0, &good), 0);
	ck_assert_int_eq(tu_ed_parse(&ed, b, n), 0);
	ck_assert_uint_eq(ed.r[3].h.codec, 1);
	ck_assert_uint_lt(ed.r[3].pl_len - 24, CHUNK - 1);
	ed.r[3].pl_len--;
	bad = tu_ed_build(&ed, &nbad);
	expect_fail("tag truncated (DATA, zstd)", bad, nbad, K1, VMS_EAUTH, 3, &good);
	free(bad);
	tu_ed_free(&ed);
	tu_run_free(&good);
	free(b);
}
END_TEST

START_TEST(test_zero_record_truncated)
{
	struct wo s = { .cipher = ciphers[_i], .key = K1 };
	uint8_t data[HOSTILE_DATA_LEN] = { 0 };
	struct tu_run good;
	struct tu_ed ed;
	uint8_t *b, *bad;
	size_t n, nbad;

	data[0] = 1; /* record 1 DATA, 3 and 4 ZERO */
	b = write_hostile_base(&s, data, &n);
	ck_assert_int_eq(read_with(b, n, K1, 0, 0, &good), 0);
	ck_assert_int_eq(tu_ed_parse(&ed, b, n), 0);
	ck_assert_uint_eq(ed.r[3].h.type, VMS_REC_ZERO);
	ck_assert_uint_eq(ed.r[3].pl_len, 24);
	ed.r[3].pl_len = 23;
	bad = tu_ed_build(&ed, &nbad);
	expect_fail("ZERO record with wire_len 23", bad, nbad, K1, VMS_ELENGTH, 3, &good);
	free(bad);
	tu_ed_free(&ed);
	tu_run_free(&good);
	free(b);
}
END_TEST

/* Authentic record (re-sealed with the right key) holding a hostile zstd
 * frame: authentication passes, decompression (record rule 17) must refuse. */
START_TEST(test_resealed_hostile_frame)
{
	struct wo s = { .cipher = ciphers[_i], .key = K1, .compress = "zstd:1" };
	uint8_t data[HOSTILE_DATA_LEN], frame[2 * CHUNK];
	struct tu_run good;
	struct tu_ed ed;
	uint8_t *b, *bad;
	size_t n, nbad, fl;

	fill_text(data, sizeof(data), 6);
	b = write_hostile_base(&s, data, &n);
	ck_assert_int_eq(read_with(b, n, K1, 0, 0, &good), 0);
	ck_assert_int_eq(tu_ed_parse(&ed, b, n), 0);
	ck_assert_uint_eq(ed.r[3].h.codec, 1);
	fl = ZSTD_compress(frame, sizeof(frame), data + CHUNK, CHUNK, 1);
	ck_assert(!ZSTD_isError(fl));
	frame[fl++] = 0; /* one byte after the frame */
	ck_assert_uint_lt(fl, CHUNK);
	reseal(&ed, 3, K1, frame, fl, tu_xxh3(data + CHUNK, CHUNK));
	bad = tu_ed_build(&ed, &nbad);
	expect_fail("authentic record, trailing byte after the zstd frame", bad, nbad, K1,
		    VMS_EDECOMPRESS, 3, &good);
	free(bad);
	/* control: without the trailing byte the re-sealed record is accepted */
	reseal(&ed, 3, K1, frame, fl - 1, tu_xxh3(data + CHUNK, CHUNK));
	bad = tu_ed_build(&ed, &nbad);
	{
		struct tu_run r;

		ck_assert_int_eq(read_with(bad, nbad, K1, 0, 0, &r), 0);
		ck_assert_mem_eq(r.dev[0].p, data, sizeof(data));
		tu_run_free(&r);
	}
	free(bad);
	tu_ed_free(&ed);
	tu_run_free(&good);
	free(b);
}
END_TEST

/* ---- epochs ---------------------------------------------------------------------------- */

#define EPOCH_CHUNK (64u << 10)
#define EPOCH_LIMIT 200000u
#define EPOCH_DATA (3u << 20) /* 48 chunks */

static uint8_t *write_epochs(uint32_t cipher, uint32_t threads, const char *compress,
			     const uint8_t *data, size_t len, size_t *n)
{
	struct wo s = { .cipher = cipher, .key = K1, .chunk = EPOCH_CHUNK, .threads = threads,
			.compress = compress, .epoch_limit = EPOCH_LIMIT, .salt = SALT1, .sid = SID_A };
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	int fd = tu_memfd_new();
	struct vms_writer *w = wopen(&s, fd);

	d.name = "big";
	ck_assert_int_eq(vms_writer_begin_device(w, &d, NULL), 0);
	ck_assert_int_eq(vms_writer_write(w, 0, data, len / 2), 0);
	ck_assert_int_eq(vms_writer_phase(w, VMS_PHASE_SWITCHOVER, 0), 0);
	ck_assert_int_eq(vms_writer_write(w, 0, data + len / 2, len - len / 2), 0);
	ck_assert_int_eq(vms_writer_end_device(w, 0), 0);
	return wclose(w, fd, n);
}

/* An epoch limit below one record (test hook): every record gets an epoch
 * of its own, but the first is still epoch 0 (FORMAT.md record rule 8), so
 * the reader, which refuses a first record in epoch 1, reads it. */
START_TEST(test_epoch_limit_below_one_record)
{
	struct wo s = { .cipher = ciphers[_i], .key = K1, .epoch_limit = 1 };
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	int fd = tu_memfd_new();
	struct vms_writer *w = wopen(&s, fd);
	struct tu_run r;
	uint8_t *b;
	size_t n;

	d.name = "d";
	ck_assert_int_eq(vms_writer_begin_device(w, &d, NULL), 0);
	ck_assert_int_eq(vms_writer_write(w, 0, "hello", 5), 0);
	ck_assert_int_eq(vms_writer_end_device(w, 0), 0);
	b = wclose(w, fd, &n);
	ck_assert_int_eq(read_with(b, n, K1, 0, 0, &r), 0);
	ck_assert_uint_eq(r.nev, 4);
	for (size_t i = 0; i < r.nev; i++)
		ck_assert_uint_eq(r.ev[i].epoch, i);
	tu_run_free(&r);
	free(b);
}
END_TEST

START_TEST(test_epoch_rotation)
{
	/* _i: cipher x writer threads {0, 2} */
	uint32_t cipher = ciphers[_i % 2], threads = (uint32_t)(_i / 2) * 2;
	uint8_t *data = tu_xmalloc(EPOCH_DATA), *b;
	struct tu_run r;
	struct tu_ed ed;
	uint64_t sealed = 0;
	uint16_t epoch = 0, max_epoch = 0;
	size_t n;

	tu_fill(data, EPOCH_DATA, 11); /* incompressible, no zero chunk */
	b = write_epochs(cipher, threads, NULL, data, EPOCH_DATA, &n);
	ck_assert_int_eq(tu_ed_parse(&ed, b, n), 0);
	assert_sealed_headers(&ed);
	/* FORMAT.md 5: move to the next epoch before the plaintext sealed under
	 * one key would exceed the limit; plaintext = body || sum = wire - 16. */
	for (size_t i = 0; i < ed.n; i++) {
		uint64_t pt = ed.r[i].pl_len - 16u;

		if (sealed + pt > EPOCH_LIMIT) {
			epoch++;
			sealed = 0;
		}
		sealed += pt;
		ck_assert_msg(ed.r[i].h.epoch == epoch, "record %zu: epoch %u, want %u", i,
			      ed.r[i].h.epoch, epoch);
		max_epoch = epoch;
	}
	ck_assert_uint_ge(max_epoch, 2);
	ck_assert_uint_eq(ed.n, 1 + 48 + 1 + 1 + 1);
	/* 3 full chunks per epoch: 48 chunks use epochs 0..15, and PHASE,
	 * DEVICE_END and EOS fit in the epoch before them */
	ck_assert_uint_eq(max_epoch, 15);
	/* every record opens with the reference key of its epoch */
	for (size_t i = 0; i < ed.n; i += 7) {
		uint8_t *pt = tu_xmalloc(ed.r[i].pl_len);

		ck_assert_int_eq(ref_open_ed(&ed, i, K1, pt), 0);
		free(pt);
	}
	for (uint32_t rt = 0; rt <= 2; rt += 2) {
		ck_assert_int_eq(read_with(b, n, K1, rt, 0, &r), 0);
		ck_assert_uint_eq(r.nev, ed.n);
		for (size_t i = 0; i < r.nev; i++)
			ck_assert_uint_eq(r.ev[i].epoch, ed.r[i].h.epoch);
		ck_assert_uint_eq(r.dev[0].n, EPOCH_DATA);
		ck_assert_mem_eq(r.dev[0].p, data, EPOCH_DATA);
		tu_run_free(&r);
	}
	tu_ed_free(&ed);
	free(b);
	free(data);
}
END_TEST

START_TEST(test_epoch_rotation_compressed)
{
	/* zstd + zero chunks: the writer may count raw bytes (more than it
	 * seals); the rule is only that no key seals more than the limit. */
	uint32_t cipher = ciphers[_i % 2];
	uint8_t *data = tu_xmalloc(EPOCH_DATA), *b;
	uint64_t sealed[64] = { 0 };
	struct tu_run r;
	struct tu_ed ed;
	size_t n;

	fill_text(data, EPOCH_DATA / 2, 1);
	memset(data + EPOCH_DATA / 2, 0, EPOCH_DATA / 4);
	tu_fill(data + EPOCH_DATA / 4 * 3, EPOCH_DATA / 4, 2);
	b = write_epochs(cipher, 2, "zstd:1", data, EPOCH_DATA, &n);
	ck_assert_int_eq(tu_ed_parse(&ed, b, n), 0);
	assert_sealed_headers(&ed);
	ck_assert_uint_eq(ed.r[0].h.epoch, 0);
	for (size_t i = 0; i < ed.n; i++) {
		if (i)
			ck_assert(ed.r[i].h.epoch == ed.r[i - 1].h.epoch ||
				  ed.r[i].h.epoch == ed.r[i - 1].h.epoch + 1);
		ck_assert_uint_lt(ed.r[i].h.epoch, 64);
		sealed[ed.r[i].h.epoch] += ed.r[i].pl_len - 16u;
	}
	ck_assert_uint_ge(ed.r[ed.n - 1].h.epoch, 2);
	for (size_t e = 0; e < 64; e++)
		ck_assert_uint_le(sealed[e], EPOCH_LIMIT);
	ck_assert_int_eq(read_with(b, n, K1, 2, 0, &r), 0);
	ck_assert_mem_eq(r.dev[0].p, data, EPOCH_DATA);
	tu_run_free(&r);
	tu_ed_free(&ed);
	free(b);
	free(data);
}
END_TEST

START_TEST(test_epoch_tamper)
{
	/* _i = cipher + 2 * case; cases: 0 first epoch-1 record set to epoch 2
	 * (jump +2), 1 first epoch-2 record set to epoch 0 (back by 2),
	 * 2 the last epoch-1 record set to epoch 0 after an epoch-1 record (back
	 * by 1), 3 first epoch-1 record left at epoch 0 (rule passes, key and AAD
	 * wrong: EAUTH), 4 epoch 0 record set to 1 early (EAUTH) */
	uint32_t cipher = ciphers[_i % 2];
	int c = _i / 2;
	uint8_t *data = tu_xmalloc(EPOCH_DATA), *b, *bad;
	struct tu_run good;
	struct tu_ed ed;
	size_t n, nbad, first1 = 0, first2 = 0, at = 0;
	int code = VMS_EEPOCH;

	tu_fill(data, EPOCH_DATA, 12);
	b = write_epochs(cipher, 0, NULL, data, EPOCH_DATA, &n);
	ck_assert_int_eq(read_with(b, n, K1, 0, 0, &good), 0);
	ck_assert_int_eq(tu_ed_parse(&ed, b, n), 0);
	for (size_t i = 0; i < ed.n; i++) {
		if (!first1 && ed.r[i].h.epoch == 1)
			first1 = i;
		if (!first2 && ed.r[i].h.epoch == 2)
			first2 = i;
	}
	ck_assert_uint_gt(first1, 1);
	ck_assert_uint_gt(first2, first1 + 1);
	switch (c) {
	case 0:
		at = first1;
		ed.r[at].h.epoch = 2;
		break;
	case 1:
		at = first2;
		ed.r[at].h.epoch = 0;
		break;
	case 2:
		at = first2 - 1; /* epoch 1, after another epoch-1 record */
		ck_assert_uint_eq(ed.r[at - 1].h.epoch, 1);
		ed.r[at].h.epoch = 0;
		break;
	case 3:
		at = first1;
		ed.r[at].h.epoch = 0;
		code = VMS_EAUTH;
		break;
	case 4:
		at = first1 - 1;
		ed.r[at].h.epoch = 1;
		code = VMS_EAUTH;
		break;
	default:
		tu_die("bad case");
	}
	bad = tu_ed_build(&ed, &nbad);
	expect_fail(c == 0 ? "epoch +2" : c == 1 ? "epoch back by 2" : c == 2 ? "epoch back by 1"
		    : c == 3 ? "epoch not advanced" : "epoch advanced early",
		    bad, nbad, K1, code, at, &good);
	free(bad);
	tu_ed_free(&ed);
	tu_run_free(&good);
	free(b);
	free(data);
}
END_TEST

static Suite *crypto_suite(void)
{
	Suite *s = suite_create("crypto");
	TCase *tc;

	tc = tcase_create("keys");
	tcase_add_test(tc, test_key_parse_hex);
	tcase_add_test(tc, test_key_load_file);
	tcase_add_test(tc, test_cipher_names);
	tcase_add_test(tc, test_ref_hkdf_rfc5869);
	tcase_add_test(tc, test_keysched_known_answer);
	tcase_add_test(tc, test_nonce_layout);
	tcase_add_loop_test(tc, test_records_match_reference, 0, 4);
	suite_add_tcase(s, tc);

	tc = tcase_create("roundtrip");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_roundtrip, 0, 24);
	tcase_add_test(tc, test_plaintext_visible_control);
	tcase_add_test(tc, test_key_is_copied);
	tcase_add_test(tc, test_writer_key_options);
	tcase_add_loop_test(tc, test_reader_key_mismatch, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("tamper");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_tamper, 0, 2 * T_COUNT);
	tcase_add_loop_test(tc, test_truncated_tag_compressed, 0, 2);
	tcase_add_loop_test(tc, test_zero_record_truncated, 0, 2);
	tcase_add_loop_test(tc, test_resealed_hostile_frame, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("epochs");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_epoch_rotation, 0, 4);
	tcase_add_loop_test(tc, test_epoch_limit_below_one_record, 0, 2);
	tcase_add_loop_test(tc, test_epoch_rotation_compressed, 0, 2);
	tcase_add_loop_test(tc, test_epoch_tamper, 0, 10);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(crypto_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
