/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include "base/error.h"
#include "crypto/keys.h"
#include "format/cursor.h"
#include "stage/stage.h"

#define INFO_LABEL "vmstream v1 key"

void vms_wipe(void *p, size_t n)
{
	if (p)
		OPENSSL_cleanse(p, n);
}

static int hkdf(int mode, const uint8_t *salt, size_t salt_len, const uint8_t *ikm, size_t ikm_len,
		const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[6], *p = params;
	int ok;

	EVP_KDF_free(kdf);
	if (!kctx)
		return vms_fail(VMS_EUNSUPPORTED, "OpenSSL has no HKDF");
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	*p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	if (salt)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
	if (info)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
	*p = OSSL_PARAM_construct_end();
	ok = EVP_KDF_derive(kctx, out, out_len, params);
	EVP_KDF_CTX_free(kctx);
	return ok == 1 ? 0 : vms_fail(VMS_EKEY, "HKDF failed");
}

int vms_keysched_init(struct vms_keysched *ks, const uint8_t salt[VMS_SALT_LEN],
		      const uint8_t ikm[VMS_KEY_LEN], const uint8_t stream_id[16],
		      uint64_t preamble_sum, uint8_t cipher)
{
	memcpy(ks->stream_id, stream_id, 16);
	ks->preamble_sum = preamble_sum;
	ks->cipher = cipher;
	return hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, salt, VMS_SALT_LEN, ikm, VMS_KEY_LEN, NULL, 0,
		    ks->prk, sizeof(ks->prk));
}

int vms_keysched_key(const struct vms_keysched *ks, uint16_t lane, uint16_t epoch,
		     uint8_t key[VMS_KEY_LEN])
{
	uint8_t info[15 + 16 + 8 + 1 + 2 + 2];
	uint8_t *q = info;

	memcpy(q, INFO_LABEL, 15);
	q += 15;
	memcpy(q, ks->stream_id, 16);
	q += 16;
	vms_put_u64(q, ks->preamble_sum);
	q += 8;
	*q++ = ks->cipher;
	vms_put_u16(q, lane);
	q += 2;
	vms_put_u16(q, epoch);
	return hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, NULL, 0, ks->prk, sizeof(ks->prk), info,
		    sizeof(info), key, VMS_KEY_LEN);
}

void vms_keysched_wipe(struct vms_keysched *ks)
{
	vms_wipe(ks->prk, sizeof(ks->prk));
}

void vms_nonce(uint8_t nonce[VMS_NONCE_LEN], uint16_t lane, uint16_t epoch, uint64_t seq)
{
	vms_put_u16(nonce, lane);
	vms_put_u16(nonce + 2, epoch);
	vms_put_u64(nonce + 4, seq);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int vms_key_parse_hex(const char *text, size_t len, uint8_t key[VMS_KEY_LEN])
{
	if (len == 2 * VMS_KEY_LEN + 1 && text[len - 1] == '\n')
		len--;
	if (len != 2 * VMS_KEY_LEN)
		return vms_fail(VMS_EKEY, "key must be exactly 64 hex digits (optionally one newline)");
	for (size_t i = 0; i < VMS_KEY_LEN; i++) {
		int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			vms_wipe(key, VMS_KEY_LEN);
			return vms_fail(VMS_EKEY, "key has a non-hex character at position %zu",
					hi < 0 ? 2 * i : 2 * i + 1);
		}
		key[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int vms_key_load_file(const char *path, uint8_t key[VMS_KEY_LEN], int allow_shared)
{
	char buf[2 * VMS_KEY_LEN + 2];
	struct stat st;
	long n;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vms_fail(errno == ENOENT ? VMS_EKEY : VMS_EIO, "key file %s: %s", path,
				vms_sys_err(errno));
	if (fstat(fd, &st) != 0) {
		err = vms_fail(VMS_EIO, "key file %s: %s", path, vms_sys_err(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		err = vms_fail(VMS_EKEY, "key file %s: not a regular file", path);
		goto out_close;
	}
	if (!allow_shared && (st.st_mode & 077)) {
		err = vms_fail(VMS_EKEY, "key file %s: readable by group or others (chmod 600)", path);
		goto out_close;
	}
	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		err = vms_fail(VMS_EIO, "key file %s: %s", path, vms_sys_err(errno));
		goto out_wipe;
	}
	err = vms_key_parse_hex(buf, (size_t)n, key);
	if (err)
		vms_fail(err, "key file %s: %s", path, "must hold exactly 64 hex digits and at most one newline");
out_wipe:
	vms_wipe(buf, sizeof(buf));
out_close:
	close(fd);
	return err;
}

int vms_cipher_from_name(const char *name)
{
	if (!name)
		return vms_fail(VMS_EINVAL, "cipher name missing");
	if (strcmp(name, "none") == 0)
		return VMS_CIPHER_NONE;
	if (strcmp(name, "aes-256-gcm") == 0)
		return VMS_CIPHER_AES_256_GCM;
	if (strcmp(name, "chacha20-poly1305") == 0)
		return VMS_CIPHER_CHACHA20_POLY1305;
	return vms_fail(VMS_EINVAL, "unknown cipher \"%s\" (none, aes-256-gcm, chacha20-poly1305)",
			name);
}

const char *vms_cipher_name(uint32_t cipher)
{
	switch (cipher) {
	case VMS_CIPHER_NONE:
		return "none";
	case VMS_CIPHER_AES_256_GCM:
		return "aes-256-gcm";
	case VMS_CIPHER_CHACHA20_POLY1305:
		return "chacha20-poly1305";
	default:
		return NULL;
	}
}

uint32_t vms_cipher_preferred(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul"))
		return VMS_CIPHER_AES_256_GCM;
	return VMS_CIPHER_CHACHA20_POLY1305;
#elif defined(__aarch64__)
	return VMS_CIPHER_AES_256_GCM; /* ARMv8 crypto extensions are near universal */
#else
	return VMS_CIPHER_CHACHA20_POLY1305;
#endif
}

int vms_lane_key_use(struct vms_lane_key *lk, const struct vms_stage *cipher,
		     const struct vms_keysched *ks, uint16_t lane, uint16_t epoch, size_t max_chunk)
{
	struct vms_stage_conf conf = { .size = sizeof(conf) };
	uint8_t key[VMS_KEY_LEN];
	int err;

	if (lk->valid && lk->lane == lane && lk->epoch == epoch)
		return 0;
	vms_lane_key_free(lk, cipher);
	err = vms_keysched_key(ks, lane, epoch, key);
	if (err)
		return err;
	conf.key = key;
	conf.max_chunk = max_chunk;
	err = cipher->ctx_new(&lk->ctx, &conf);
	vms_wipe(key, sizeof(key));
	if (err)
		return err;
	lk->lane = lane;
	lk->epoch = epoch;
	lk->valid = true;
	return 0;
}

void vms_lane_key_free(struct vms_lane_key *lk, const struct vms_stage *cipher)
{
	if (lk->ctx)
		cipher->ctx_free(lk->ctx);
	lk->ctx = NULL;
	lk->valid = false;
}

int vms_ack_crypt(const struct vms_stage *cipher, const uint8_t salt[VMS_SALT_LEN],
		  const uint8_t ikm[VMS_KEY_LEN], const uint8_t stream_id[16], uint64_t preamble_sum,
		  uint8_t *frame, size_t body_len, bool encrypt)
{
	struct vms_keysched ks;
	struct vms_lane_key lk = { 0 };
	struct vms_stage_io io = { 0 };
	uint8_t nonce[VMS_NONCE_LEN];
	int err;

	err = vms_keysched_init(&ks, salt, ikm, stream_id, preamble_sum, (uint8_t)cipher->id);
	if (!err)
		err = vms_lane_key_use(&lk, cipher, &ks, 0, 0, body_len);
	vms_keysched_wipe(&ks);
	if (err)
		return err;
	/* one acknowledgement per session: the nonce is used once per key */
	vms_nonce(nonce, 0, 0, 0);
	io.src = frame + 8;
	io.src_len = encrypt ? body_len : body_len + 16;
	io.dst = frame + 8;
	io.dst_cap = body_len + 16;
	io.aad = frame;
	io.aad_len = 8;
	io.nonce = nonce;
	err = encrypt ? (cipher->apply(lk.ctx, &io) < 0 ? VMS_EIO : 0) : cipher->invert(lk.ctx, &io);
	vms_lane_key_free(&lk, cipher);
	return err;
}
