/* SPDX-License-Identifier: MIT */
/*
 * An independent reading of FORMAT.md section 5 (key schedule, nonce, record
 * sealing), written from the specification only, for the tests and for the
 * encrypted test vectors' annotations. It shares no code with libvmstream/crypto:
 *
 *  - HKDF-SHA256 two ways: OpenSSL's EVP_PKEY HKDF method (the library uses
 *    EVP_KDF) and RFC 5869 spelled out with one-shot HMAC, cross-checked
 *    against each other and against RFC 5869 test case 1;
 *  - the preamble fields it needs (stream_id, cipher, SALT, preamble_sum) are
 *    read by offset, not with the library's preamble decoder;
 *  - AEAD seal/open through EVP with an explicit 12-byte IV.
 *
 * Header-only (static inline) because CMake builds every check_*.c alone.
 */
#ifndef VMS_REFCRYPTO_H
#define VMS_REFCRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

#define REF_KEY_LEN 32
#define REF_SALT_LEN 32
#define REF_NONCE_LEN 12
#define REF_TAG_LEN 16
#define REF_INFO_LEN (15 + 16 + 8 + 1 + 2 + 2) /* 44 */
#define REF_LABEL "vmstream v1 key"

static inline void ref_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void ref_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t ref_get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline uint32_t ref_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint16_t ref_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* HKDF-SHA256 (extract and expand) through the EVP_PKEY HKDF method.
 * Returns 0 or -1. */
static inline int ref_hkdf_pkey(const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
				size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *out,
				size_t out_len)
{
	EVP_PKEY_CTX *p = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	size_t len = out_len;
	int ok;

	ok = p && EVP_PKEY_derive_init(p) == 1 &&
	     EVP_PKEY_CTX_set_hkdf_md(p, EVP_sha256()) == 1 &&
	     EVP_PKEY_CTX_set1_hkdf_salt(p, salt, (int)salt_len) == 1 &&
	     EVP_PKEY_CTX_set1_hkdf_key(p, ikm, (int)ikm_len) == 1 &&
	     EVP_PKEY_CTX_add1_hkdf_info(p, info, (int)info_len) == 1 &&
	     EVP_PKEY_derive(p, out, &len) == 1 && len == out_len;
	EVP_PKEY_CTX_free(p);
	return ok ? 0 : -1;
}

/* RFC 5869 by hand: PRK = HMAC(salt, IKM); T(i) = HMAC(PRK, T(i-1)|info|i). */
static inline int ref_hkdf_hmac(const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
				size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *out,
				size_t out_len, uint8_t prk_out[32])
{
	uint8_t prk[32], t[32], buf[32 + 256 + 1];
	unsigned int len = 0;
	size_t done = 0, tlen = 0;

	if (info_len > 256 || out_len > 255 * 32)
		return -1;
	if (!HMAC(EVP_sha256(), salt, (int)salt_len, ikm, ikm_len, prk, &len) || len != 32)
		return -1;
	for (uint8_t i = 1; done < out_len; i++) {
		size_t n = 0, k;

		memcpy(buf, t, tlen);
		n += tlen;
		memcpy(buf + n, info, info_len);
		n += info_len;
		buf[n++] = i;
		if (!HMAC(EVP_sha256(), prk, 32, buf, n, t, &len) || len != 32)
			return -1;
		tlen = 32;
		k = out_len - done < 32 ? out_len - done : 32;
		memcpy(out + done, t, k);
		done += k;
	}
	if (prk_out)
		memcpy(prk_out, prk, 32);
	return 0;
}

/* info = "vmstream v1 key" || stream_id || u64 preamble_sum || u8 cipher ||
 * u16 lane || u16 epoch (FORMAT.md section 5), byte by byte. */
static inline void ref_info(uint8_t info[REF_INFO_LEN], const uint8_t stream_id[16],
			    uint64_t preamble_sum, uint8_t cipher, uint16_t lane, uint16_t epoch)
{
	memcpy(info, REF_LABEL, 15);
	memcpy(info + 15, stream_id, 16);
	ref_le64(info + 31, preamble_sum);
	info[39] = cipher;
	ref_le16(info + 40, lane);
	ref_le16(info + 42, epoch);
}

/* nonce = u16 lane || u16 epoch || u64 seq */
static inline void ref_nonce(uint8_t n[REF_NONCE_LEN], uint16_t lane, uint16_t epoch,
			     uint64_t seq)
{
	ref_le16(n, lane);
	ref_le16(n + 2, epoch);
	ref_le64(n + 4, seq);
}

/* What the key schedule needs from a preamble, read by offset (section 2). */
struct ref_stream {
	uint8_t stream_id[16];
	uint8_t cipher;
	uint8_t key_source;
	bool has_salt;
	uint8_t salt[REF_SALT_LEN];
	uint64_t preamble_sum;
	uint32_t preamble_len;
};

/* Returns 0, or -1 if the preamble does not parse. */
static inline int ref_parse_preamble(struct ref_stream *s, const uint8_t *b, size_t n)
{
	size_t pos, end;

	memset(s, 0, sizeof(*s));
	if (n < 56)
		return -1;
	s->preamble_len = ref_get32(b + 12);
	if (s->preamble_len < 56 || s->preamble_len > 4096 || s->preamble_len > n)
		return -1;
	memcpy(s->stream_id, b + 16, 16);
	s->cipher = b[40];
	s->key_source = b[41];
	end = s->preamble_len - 8;
	s->preamble_sum = ref_get64(b + end);
	for (pos = 48; pos < end;) {
		uint16_t type, len;

		if (end - pos < 4)
			return -1;
		type = ref_get16(b + pos);
		len = ref_get16(b + pos + 2);
		if (len > end - pos - 4)
			return -1;
		if (type == 0x0002 && len == REF_SALT_LEN) {
			memcpy(s->salt, b + pos + 4, REF_SALT_LEN);
			s->has_salt = true;
		}
		pos += 4u + len;
	}
	return 0;
}

/* key(lane, epoch) from the stream's preamble and the IKM (key file bytes).
 * Both HKDF implementations must agree; returns -1 otherwise. */
static inline int ref_key(const struct ref_stream *s, const uint8_t ikm[REF_KEY_LEN],
			  uint16_t lane, uint16_t epoch, uint8_t key[REF_KEY_LEN])
{
	uint8_t info[REF_INFO_LEN], k2[REF_KEY_LEN];

	ref_info(info, s->stream_id, s->preamble_sum, s->cipher, lane, epoch);
	if (ref_hkdf_pkey(s->salt, REF_SALT_LEN, ikm, REF_KEY_LEN, info, sizeof(info), key,
			  REF_KEY_LEN) != 0 ||
	    ref_hkdf_hmac(s->salt, REF_SALT_LEN, ikm, REF_KEY_LEN, info, sizeof(info), k2,
			  REF_KEY_LEN, NULL) != 0)
		return -1;
	return memcmp(key, k2, REF_KEY_LEN) == 0 ? 0 : -1;
}

static inline const EVP_CIPHER *ref_evp(uint8_t cipher)
{
	return cipher == 1 ? EVP_aes_256_gcm() : cipher == 2 ? EVP_chacha20_poly1305() : NULL;
}

/* out = ciphertext (n bytes) || tag (16). Returns 0 or -1. */
static inline int ref_seal(uint8_t cipher, const uint8_t key[REF_KEY_LEN],
			   const uint8_t nonce[REF_NONCE_LEN], const uint8_t *aad, size_t aad_len,
			   const uint8_t *pt, size_t n, uint8_t *out)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int l = 0, f = 0, ok;

	ok = c && ref_evp(cipher) &&
	     EVP_EncryptInit_ex(c, ref_evp(cipher), NULL, NULL, NULL) == 1 &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, REF_NONCE_LEN, NULL) == 1 &&
	     EVP_EncryptInit_ex(c, NULL, NULL, key, nonce) == 1 &&
	     EVP_EncryptUpdate(c, NULL, &l, aad, (int)aad_len) == 1 &&
	     EVP_EncryptUpdate(c, out, &l, pt, (int)n) == 1 &&
	     EVP_EncryptFinal_ex(c, out + l, &f) == 1 && (size_t)(l + f) == n &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, REF_TAG_LEN, out + n) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

/* in = ciphertext || tag (n >= 16 bytes); pt gets n - 16 bytes. Returns 0, or
 * -1 if authentication fails. */
static inline int ref_open(uint8_t cipher, const uint8_t key[REF_KEY_LEN],
			   const uint8_t nonce[REF_NONCE_LEN], const uint8_t *aad, size_t aad_len,
			   const uint8_t *in, size_t n, uint8_t *pt)
{
	EVP_CIPHER_CTX *c;
	uint8_t tag[REF_TAG_LEN];
	int l = 0, f = 0, ok;

	if (n < REF_TAG_LEN || !ref_evp(cipher))
		return -1;
	c = EVP_CIPHER_CTX_new();
	memcpy(tag, in + n - REF_TAG_LEN, REF_TAG_LEN);
	ok = c && EVP_DecryptInit_ex(c, ref_evp(cipher), NULL, NULL, NULL) == 1 &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, REF_NONCE_LEN, NULL) == 1 &&
	     EVP_DecryptInit_ex(c, NULL, NULL, key, nonce) == 1 &&
	     EVP_DecryptUpdate(c, NULL, &l, aad, (int)aad_len) == 1 &&
	     EVP_DecryptUpdate(c, pt, &l, in, (int)(n - REF_TAG_LEN)) == 1 &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, REF_TAG_LEN, tag) == 1 &&
	     EVP_DecryptFinal_ex(c, pt + l, &f) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -1;
}

/* Open one record: hdr = its 56 header bytes (the AAD), payload = wire bytes.
 * pt gets wire_len - 16 bytes = body || u64 sum. Returns 0 or -1. */
static inline int ref_open_record(const struct ref_stream *s, const uint8_t ikm[REF_KEY_LEN],
				  const uint8_t hdr[56], const uint8_t *payload, size_t wire_len,
				  uint8_t *pt)
{
	uint8_t key[REF_KEY_LEN], nonce[REF_NONCE_LEN];
	uint16_t lane = ref_get16(hdr + 32), epoch = ref_get16(hdr + 34);
	int rc;

	if (ref_key(s, ikm, lane, epoch, key) != 0)
		return -1;
	ref_nonce(nonce, lane, epoch, ref_get64(hdr + 8));
	rc = ref_open(s->cipher, key, nonce, hdr, 56, payload, wire_len, pt);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

#endif
