/* SPDX-License-Identifier: MIT */
/*
 * AEAD stages (OpenSSL EVP): AES-256-GCM and ChaCha20-Poly1305, 12-byte
 * nonce, 16-byte tag appended to the ciphertext. One EVP context per worker,
 * keyed once; the nonce changes per record.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "stage/stage.h"

#define TAG_LEN 16
#define NONCE_LEN 12

struct actx {
	EVP_CIPHER_CTX *enc;
	EVP_CIPHER_CTX *dec;
};

static void aead_ctx_free(void *p)
{
	struct actx *a = p;

	if (!a)
		return;
	EVP_CIPHER_CTX_free(a->enc); /* cleanses the key schedule */
	EVP_CIPHER_CTX_free(a->dec);
	free(a);
}

static int aead_ctx_new_cipher(void **out, const struct vms_stage_conf *conf,
			       const EVP_CIPHER *cipher)
{
	struct actx *a;

	*out = NULL;
	if (!conf->key)
		return VMS_EKEY;
	a = calloc(1, sizeof(*a));
	if (!a)
		return VMS_ENOMEM;
	a->enc = EVP_CIPHER_CTX_new();
	a->dec = EVP_CIPHER_CTX_new();
	if (!a->enc || !a->dec ||
	    EVP_EncryptInit_ex(a->enc, cipher, NULL, NULL, NULL) != 1 ||
	    EVP_DecryptInit_ex(a->dec, cipher, NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(a->enc, EVP_CTRL_AEAD_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(a->dec, EVP_CTRL_AEAD_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(a->enc, NULL, NULL, conf->key, NULL) != 1 ||
	    EVP_DecryptInit_ex(a->dec, NULL, NULL, conf->key, NULL) != 1) {
		aead_ctx_free(a);
		return VMS_ENOMEM;
	}
	*out = a;
	return 0;
}

static int gcm_ctx_new(void **out, const struct vms_stage_conf *conf)
{
	return aead_ctx_new_cipher(out, conf, EVP_aes_256_gcm());
}

static int chacha_ctx_new(void **out, const struct vms_stage_conf *conf)
{
	return aead_ctx_new_cipher(out, conf, EVP_chacha20_poly1305());
}

static size_t aead_bound(size_t n)
{
	return n + TAG_LEN;
}

/* EVP lengths are int: chunks are capped at 16 MiB, far below INT_MAX. */
static int aead_apply(void *p, struct vms_stage_io *io)
{
	struct actx *a = p;
	unsigned char *dst = io->dst;
	int n = 0, fin = 0;

	if (io->dst_cap < io->src_len + TAG_LEN)
		return VMS_EINVAL;
	if (EVP_EncryptInit_ex(a->enc, NULL, NULL, NULL, io->nonce) != 1 ||
	    EVP_EncryptUpdate(a->enc, NULL, &n, io->aad, (int)io->aad_len) != 1 ||
	    EVP_EncryptUpdate(a->enc, dst, &n, io->src, (int)io->src_len) != 1 ||
	    EVP_EncryptFinal_ex(a->enc, dst + n, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(a->enc, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, dst + n + fin) != 1)
		return VMS_EIO;
	io->dst_len = (size_t)n + (size_t)fin + TAG_LEN;
	return VMS_STAGE_DONE;
}

static int aead_invert(void *p, struct vms_stage_io *io)
{
	struct actx *a = p;
	const unsigned char *src = io->src;
	unsigned char tag[TAG_LEN];
	size_t clen;
	int n = 0, fin = 0;

	if (io->src_len < TAG_LEN)
		return VMS_EAUTH;
	clen = io->src_len - TAG_LEN;
	if (io->dst_cap < clen)
		return VMS_EINVAL;
	memcpy(tag, src + clen, TAG_LEN);
	if (EVP_DecryptInit_ex(a->dec, NULL, NULL, NULL, io->nonce) != 1 ||
	    EVP_DecryptUpdate(a->dec, NULL, &n, io->aad, (int)io->aad_len) != 1 ||
	    EVP_DecryptUpdate(a->dec, io->dst, &n, src, (int)clen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(a->dec, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, tag) != 1)
		return VMS_EIO;
	if (EVP_DecryptFinal_ex(a->dec, (unsigned char *)io->dst + n, &fin) != 1)
		return VMS_EAUTH;
	io->dst_len = (size_t)n + (size_t)fin;
	return 0;
}

const struct vms_stage vms_stage_aes_gcm = {
	.size = sizeof(struct vms_stage),
	.name = "aes-256-gcm",
	.kind = VMS_STAGE_CIPHER,
	.id = VMS_CIPHER_AES_256_GCM,
	.ctx_new = gcm_ctx_new,
	.ctx_free = aead_ctx_free,
	.bound = aead_bound,
	.apply = aead_apply,
	.invert = aead_invert,
};

const struct vms_stage vms_stage_chacha = {
	.size = sizeof(struct vms_stage),
	.name = "chacha20-poly1305",
	.kind = VMS_STAGE_CIPHER,
	.id = VMS_CIPHER_CHACHA20_POLY1305,
	.ctx_new = chacha_ctx_new,
	.ctx_free = aead_ctx_free,
	.bound = aead_bound,
	.apply = aead_apply,
	.invert = aead_invert,
};
