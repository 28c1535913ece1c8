/* SPDX-License-Identifier: MIT */
/* Zero-chunk elision: an all-zero chunk becomes a ZERO record (no payload). */
#include <string.h>
#include "stage/stage.h"

bool vms_all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;

	/* memcmp against itself shifted by one byte runs at vector speed and
	 * stops at the first non-zero byte. */
	return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

static int zero_ctx_new(void **ctx, const struct vms_stage_conf *conf)
{
	(void)conf;
	*ctx = NULL;
	return 0;
}

static void zero_ctx_free(void *ctx)
{
	(void)ctx;
}

static size_t zero_bound(size_t n)
{
	(void)n;
	return 0;
}

static int zero_apply(void *ctx, struct vms_stage_io *io)
{
	(void)ctx;
	io->dst_len = 0;
	return vms_all_zero(io->src, io->src_len) ? VMS_STAGE_ELIDE : VMS_STAGE_SKIP;
}

static int zero_invert(void *ctx, struct vms_stage_io *io)
{
	(void)ctx;
	if (io->dst_cap < io->raw_len)
		return VMS_EINVAL;
	memset(io->dst, 0, io->raw_len);
	io->dst_len = io->raw_len;
	return 0;
}

const struct vms_stage vms_stage_zero = {
	.size = sizeof(struct vms_stage),
	.name = "zero",
	.kind = VMS_STAGE_FILTER,
	.ctx_new = zero_ctx_new,
	.ctx_free = zero_ctx_free,
	.bound = zero_bound,
	.apply = zero_apply,
	.invert = zero_invert,
};
