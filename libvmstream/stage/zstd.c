/* SPDX-License-Identifier: MIT */
/*
 * zstd codec: one frame per record, content size recorded, decoded into
 * exactly raw_len bytes (a frame that claims or yields more is refused, so
 * no decompression bombs).
 */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>
#include "stage/stage.h"

/* A chunk must shrink by at least 1/32 (~3%) to be worth a decode on the
 * other side; otherwise it is stored raw. */
#define MIN_GAIN_SHIFT 5

struct zctx {
	ZSTD_CCtx *c;
	ZSTD_DCtx *d;
	int level;
};

static void zstd_ctx_free(void *p)
{
	struct zctx *z = p;

	if (!z)
		return;
	ZSTD_freeCCtx(z->c);
	ZSTD_freeDCtx(z->d);
	free(z);
}

static int zstd_set_level(void *p, int level)
{
	struct zctx *z = p;

	if (ZSTD_isError(ZSTD_CCtx_setParameter(z->c, ZSTD_c_compressionLevel, level)))
		return VMS_EINVAL;
	z->level = level;
	return 0;
}

static int zstd_ctx_new(void **out, const struct vms_stage_conf *conf)
{
	struct zctx *z = calloc(1, sizeof(*z));

	*out = NULL;
	if (!z)
		return VMS_ENOMEM;
	z->c = ZSTD_createCCtx();
	z->d = ZSTD_createDCtx();
	if (!z->c || !z->d)
		goto out_free;
	/* Frames never need a window larger than the largest chunk. */
	if (ZSTD_isError(ZSTD_DCtx_setParameter(z->d, ZSTD_d_windowLogMax, 24)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z->c, ZSTD_c_contentSizeFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z->c, ZSTD_c_checksumFlag, 0)) ||
	    zstd_set_level(z, conf->level) != 0)
		goto out_free;
	*out = z;
	return 0;

out_free:
	zstd_ctx_free(z);
	return VMS_ENOMEM;
}

static size_t zstd_bound(size_t n)
{
	return ZSTD_compressBound(n);
}

static int zstd_apply(void *p, struct vms_stage_io *io)
{
	struct zctx *z = p;
	size_t limit = io->src_len - (io->src_len >> MIN_GAIN_SHIFT);
	size_t r;

	/* Compress into at most `limit` bytes: if it does not fit, zstd stops
	 * early with dstSize_tooSmall and we store the chunk raw. */
	if (limit > io->dst_cap)
		limit = io->dst_cap;
	r = ZSTD_compress2(z->c, io->dst, limit, io->src, io->src_len);
	if (ZSTD_isError(r)) {
		if (ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall)
			return VMS_STAGE_SKIP;
		return VMS_EINVAL;
	}
	if (r >= limit)
		return VMS_STAGE_SKIP;
	io->dst_len = r;
	return VMS_STAGE_DONE;
}

static int zstd_invert(void *p, struct vms_stage_io *io)
{
	struct zctx *z = p;
	unsigned long long csize;
	size_t fsize, r;

	/* FORMAT.md 2.1: an RFC 8878 frame. libzstd built with legacy support
	 * also decodes the pre-1.0 formats (other magic numbers), which other
	 * readers do not: refuse them so that every reader agrees. */
	if (io->src_len < 4 || memcmp(io->src, "\x28\xb5\x2f\xfd", 4) != 0)
		return VMS_EDECOMPRESS;
	csize = ZSTD_getFrameContentSize(io->src, io->src_len);
	if (csize != io->raw_len || io->raw_len > io->dst_cap)
		return VMS_EDECOMPRESS;
	/* Exactly one frame, nothing after it. */
	fsize = ZSTD_findFrameCompressedSize(io->src, io->src_len);
	if (ZSTD_isError(fsize) || fsize != io->src_len)
		return VMS_EDECOMPRESS;
	r = ZSTD_decompressDCtx(z->d, io->dst, io->raw_len, io->src, io->src_len);
	if (ZSTD_isError(r) || r != io->raw_len)
		return VMS_EDECOMPRESS;
	io->dst_len = r;
	return 0;
}

const struct vms_stage vms_stage_zstd = {
	.size = sizeof(struct vms_stage),
	.name = "zstd",
	.kind = VMS_STAGE_CODEC,
	.id = 1,
	.level_min = -7,
	.level_max = 19,
	.level_default = 1,
	.ctx_new = zstd_ctx_new,
	.ctx_free = zstd_ctx_free,
	.set_level = zstd_set_level,
	.bound = zstd_bound,
	.apply = zstd_apply,
	.invert = zstd_invert,
};
