/* SPDX-License-Identifier: MIT */
/*
 * Bounds-checked cursors. Untrusted bytes are only ever read through
 * struct vms_cur: every read checks `n <= end - pos` (never `pos + n > end`,
 * which can overflow) and a failed read leaves the cursor where it was.
 */
#ifndef VMS_CURSOR_H
#define VMS_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct vms_cur {
	const uint8_t *pos;
	const uint8_t *end;
};

static inline struct vms_cur vms_cur_init(const void *p, size_t n)
{
	struct vms_cur c = { (const uint8_t *)p, (const uint8_t *)p + n };
	return c;
}

static inline size_t vms_cur_left(const struct vms_cur *c)
{
	return (size_t)(c->end - c->pos);
}

static inline bool vms_cur_ptr(struct vms_cur *c, size_t n, const uint8_t **out)
{
	if (n > vms_cur_left(c))
		return false;
	*out = c->pos;
	c->pos += n;
	return true;
}

static inline bool vms_cur_bytes(struct vms_cur *c, void *dst, size_t n)
{
	const uint8_t *p;

	if (!vms_cur_ptr(c, n, &p))
		return false;
	memcpy(dst, p, n);
	return true;
}

static inline bool vms_cur_u8(struct vms_cur *c, uint8_t *v)
{
	return vms_cur_bytes(c, v, 1);
}

static inline bool vms_cur_u16(struct vms_cur *c, uint16_t *v)
{
	const uint8_t *p;

	if (!vms_cur_ptr(c, 2, &p))
		return false;
	*v = (uint16_t)(p[0] | (unsigned)p[1] << 8);
	return true;
}

static inline bool vms_cur_u32(struct vms_cur *c, uint32_t *v)
{
	const uint8_t *p;

	if (!vms_cur_ptr(c, 4, &p))
		return false;
	*v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	return true;
}

static inline bool vms_cur_u64(struct vms_cur *c, uint64_t *v)
{
	uint32_t lo, hi;
	struct vms_cur save = *c;

	if (!vms_cur_u32(c, &lo) || !vms_cur_u32(c, &hi)) {
		*c = save;
		return false;
	}
	*v = (uint64_t)hi << 32 | lo;
	return true;
}

/* Little-endian stores into trusted, correctly sized buffers. */
static inline void vms_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void vms_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void vms_put_u64(uint8_t *p, uint64_t v)
{
	vms_put_u32(p, (uint32_t)v);
	vms_put_u32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t vms_get_u64(const uint8_t *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	       (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
	       (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

#endif
