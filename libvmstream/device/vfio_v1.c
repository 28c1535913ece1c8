/* SPDX-License-Identifier: MIT */
/*
 * VFIO migration v1: the migration region (Linux 5.8 - 5.18, removed since).
 *
 * The region starts with struct vfio_device_migration_info:
 *   +0  __u32 device_state   bits RUNNING 1, SAVING 2, RESUMING 4
 *   +8  __u64 pending_bytes
 *   +16 __u64 data_offset     (from the region start)
 *   +24 __u64 data_size
 * Every access is a pread/pwrite of the device fd at region_offset + field:
 * positional, so an io_uring engine can issue the same accesses directly.
 *
 * The API speaks v2 states; v1 bit masks map to them:
 *   STOP 0, RUNNING 1, PRE_COPY SAVING|RUNNING 3, STOP_COPY SAVING 2,
 *   RESUMING 4, ERROR SAVING|RESUMING 6.
 * v1 has no P2P states, so the capabilities are STOP_COPY | PRE_COPY.
 *
 * Save (PRE_COPY, STOP_COPY): read pending_bytes — 0 means nothing now
 * (PRE_COPY) or the end of the state (STOP_COPY); otherwise read data_offset
 * (the driver stages the next chunk now), read data_size, then read those
 * bytes from the data window; the next pending_bytes read starts the next
 * chunk. read() hands the window out in pieces of the caller's size.
 * Resume: read data_offset, write the data there (at most up to the region's
 * end), then write data_size; the driver consumes the chunk on that write.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/error.h"
#include "device/device.h"
#include "device/vfio.h"

#ifdef VFIO_DEVICE_STATE_V1_RUNNING
_Static_assert(sizeof(struct vfio_device_migration_info) == VMS_V1_HDR &&
	       offsetof(struct vfio_device_migration_info, device_state) == VMS_V1_OFF_STATE &&
	       offsetof(struct vfio_device_migration_info, pending_bytes) == VMS_V1_OFF_PENDING &&
	       offsetof(struct vfio_device_migration_info, data_offset) == VMS_V1_OFF_DATA_OFFSET &&
	       offsetof(struct vfio_device_migration_info, data_size) == VMS_V1_OFF_DATA_SIZE,
	       "struct vfio_device_migration_info");
_Static_assert(VFIO_DEVICE_STATE_V1_RUNNING == VMS_V1_RUNNING &&
	       VFIO_DEVICE_STATE_V1_SAVING == VMS_V1_SAVING &&
	       VFIO_DEVICE_STATE_V1_RESUMING == VMS_V1_RESUMING, "v1 state bits");
#endif

int vms_v1_bits_from_state(uint32_t state, uint32_t *bits)
{
	switch (state) {
	case VMS_DEV_STOP: *bits = 0; return 0;
	case VMS_DEV_RUNNING: *bits = VMS_V1_RUNNING; return 0;
	case VMS_DEV_PRE_COPY: *bits = VMS_V1_SAVING | VMS_V1_RUNNING; return 0;
	case VMS_DEV_STOP_COPY: *bits = VMS_V1_SAVING; return 0;
	case VMS_DEV_RESUMING: *bits = VMS_V1_RESUMING; return 0;
	default: return VMS_EINVAL;
	}
}

uint32_t vms_v1_state_from_bits(uint32_t bits)
{
	switch (bits & VMS_V1_MASK) {
	case 0: return VMS_DEV_STOP;
	case VMS_V1_RUNNING: return VMS_DEV_RUNNING;
	case VMS_V1_SAVING | VMS_V1_RUNNING: return VMS_DEV_PRE_COPY;
	case VMS_V1_SAVING: return VMS_DEV_STOP_COPY;
	case VMS_V1_RESUMING: return VMS_DEV_RESUMING;
	default: return VMS_DEV_ERROR; /* SAVING|RESUMING = error; the rest invalid */
	}
}

struct v1 {
	int fd;                /* the caller's */
	uint64_t off, size;    /* region */
	struct vms_devsys sys;
	uint32_t state;
	/* save: the staged chunk being handed out */
	bool in_chunk;
	uint64_t pending;      /* pending_bytes when the chunk was staged */
	uint64_t chunk_pos;    /* region offset of the next unread byte */
	uint64_t chunk_left;
	uint64_t chunk_size;
};

static const char v1_tag[] = "vfio-v1";


/* Exactly len bytes at region offset `at`, or VMS_EDEVIO. */
static int rd(struct v1 *v, uint64_t at, void *buf, size_t len, const char *what)
{
	size_t got = 0;
	char eb[96];

	while (got < len) {
		ssize_t n = v->sys.pread(v->sys.ctx, v->fd, (uint8_t *)buf + got, len - got,
					 (off_t)(v->off + at + got));

		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			return vms_fail(VMS_EDEVIO, "migration region: %s at +%llu: short read "
					"(%zu of %zu bytes)", what, (unsigned long long)at, got,
					len);
		{
			int e = errno;

			return vms_fail(VMS_EDEVIO, "migration region: reading %s at +%llu "
					"failed: %s", what, (unsigned long long)at,
					vms_errno_text(e, eb, sizeof(eb)));
		}
	}
	return 0;
}

static int wr(struct v1 *v, uint64_t at, const void *buf, size_t len, const char *what)
{
	size_t done = 0;
	char eb[96];

	while (done < len) {
		ssize_t n = v->sys.pwrite(v->sys.ctx, v->fd, (const uint8_t *)buf + done,
					  len - done, (off_t)(v->off + at + done));

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		{
			int e = n == 0 ? EIO : errno;

			return vms_fail(VMS_EDEVIO, "migration region: writing %s at +%llu "
					"failed after %zu of %zu bytes: %s", what,
					(unsigned long long)at, done, len,
					vms_errno_text(e, eb, sizeof(eb)));
		}
	}
	return 0;
}

static int rd64(struct v1 *v, uint64_t at, uint64_t *val, const char *what)
{
	return rd(v, at, val, sizeof(*val), what);
}

static int v1_get_state(void *impl, uint32_t *state)
{
	struct v1 *v = impl;
	uint32_t bits;
	int r = rd(v, VMS_V1_OFF_STATE, &bits, sizeof(bits), "device_state");

	if (r < 0)
		return r;
	v->state = vms_v1_state_from_bits(bits);
	*state = v->state;
	return 0;
}

static int v1_caps(void *impl, uint32_t *caps)
{
	(void)impl;
	*caps = VMS_DEVCAP_STOP_COPY | VMS_DEVCAP_PRE_COPY;
	return 0;
}

static int v1_set_state(void *impl, uint32_t next)
{
	struct v1 *v = impl;
	uint32_t bits, cur, prev = v->state;
	int r;

	if (vms_v1_bits_from_state(next, &bits) < 0)
		return vms_fail(VMS_ESTATE, "v1 migration has no state %s", vms_state_str(next));
	/* device_state bits outside the mask are reserved: preserve them. */
	r = rd(v, VMS_V1_OFF_STATE, &cur, sizeof(cur), "device_state");
	if (r < 0)
		return r;
	cur = (cur & ~VMS_V1_MASK) | bits;
	r = wr(v, VMS_V1_OFF_STATE, &cur, sizeof(cur), "device_state");
	if (r < 0)
		return r; /* the wrapper reads device_state back to learn where we are */
	v->state = next;
	if (vms_state_ends_session(prev, next) || !vms_state_saving(prev))
		v->in_chunk = false;
	return 0;
}

/* Stage the next chunk: pending_bytes, data_offset, data_size. 1 = staged,
 * 0 = nothing pending, < 0 = error. */
static int stage(struct v1 *v)
{
	uint64_t pending, doff, dsize;
	int r;

	r = rd64(v, VMS_V1_OFF_PENDING, &pending, "pending_bytes");
	if (r < 0)
		return r;
	if (pending == 0)
		return 0;
	r = rd64(v, VMS_V1_OFF_DATA_OFFSET, &doff, "data_offset");
	if (r == 0)
		r = rd64(v, VMS_V1_OFF_DATA_SIZE, &dsize, "data_size");
	if (r < 0)
		return r;
	if (doff < VMS_V1_HDR || doff > v->size || dsize > v->size - doff)
		return vms_fail(VMS_EDEVIO, "migration region: data window [%llu, +%llu) lies "
				"outside the %llu-byte region's data area",
				(unsigned long long)doff, (unsigned long long)dsize,
				(unsigned long long)v->size);
	if (dsize == 0) {
		if (vms_state_precopy(v->state))
			return 0;
		return vms_fail(VMS_EDEVIO, "migration region: pending_bytes %llu but "
				"data_size 0 in STOP_COPY", (unsigned long long)pending);
	}
	v->pending = pending;
	v->chunk_pos = doff;
	v->chunk_left = dsize;
	v->chunk_size = dsize;
	v->in_chunk = true;
	return 1;
}

static long v1_read(void *impl, void *buf, size_t len)
{
	struct v1 *v = impl;
	size_t n;
	int r;

	if (!v->in_chunk) {
		r = stage(v);
		if (r < 0)
			return r;
		if (r == 0)
			return vms_state_precopy(v->state) ? VMS_EAGAIN_DEV : 0;
	}
	n = len < v->chunk_left ? len : (size_t)v->chunk_left;
	r = rd(v, v->chunk_pos, buf, n, "migration data");
	if (r < 0)
		return r;
	v->chunk_pos += n;
	v->chunk_left -= n;
	if (v->chunk_left == 0)
		v->in_chunk = false; /* the next read starts with pending_bytes */
	return (long)n;
}

static long v1_write(void *impl, const void *buf, size_t len)
{
	struct v1 *v = impl;
	uint64_t doff, n;
	int r;

	r = rd64(v, VMS_V1_OFF_DATA_OFFSET, &doff, "data_offset");
	if (r < 0)
		return r;
	if (doff < VMS_V1_HDR || doff >= v->size)
		return vms_fail(VMS_EDEVIO, "migration region: data_offset %llu outside the "
				"%llu-byte region's data area", (unsigned long long)doff,
				(unsigned long long)v->size);
	n = v->size - doff;
	if (n > len)
		n = len;
	r = wr(v, doff, buf, (size_t)n, "migration data");
	if (r == 0)
		r = wr(v, VMS_V1_OFF_DATA_SIZE, &n, sizeof(n), "data_size");
	if (r < 0)
		return r;
	return (long)n;
}

static int pending_now(struct v1 *v, uint64_t *bytes)
{
	if (v->in_chunk) {
		/* pending_bytes counted the staged chunk; some of it is read. */
		uint64_t read_so_far = v->chunk_size - v->chunk_left;

		*bytes = v->pending > read_so_far ? v->pending - read_so_far : v->chunk_left;
		return 0;
	}
	return rd64(v, VMS_V1_OFF_PENDING, bytes, "pending_bytes");
}

static int v1_precopy_info(void *impl, uint64_t *initial, uint64_t *dirty)
{
	struct v1 *v = impl;
	int r = pending_now(v, initial);

	/* v1 has one number: call it all initial data. */
	*dirty = 0;
	return r;
}

static int v1_stop_copy_size(void *impl, uint64_t *bytes)
{
	struct v1 *v = impl;

	if (!vms_state_saving(v->state))
		return vms_fail(VMS_EUNSUPPORTED, "v1 migration reports pending bytes only while "
				"saving (PRE_COPY, STOP_COPY)");
	return pending_now(v, bytes);
}

static int v1_reset(void *impl)
{
	struct v1 *v = impl;
	char eb[96];
	uint32_t s;

	v->in_chunk = false;
	if (v->sys.ioctl(v->sys.ctx, v->fd, VFIO_DEVICE_RESET, NULL) < 0) {
		int e = errno;

		return vms_fail(VMS_EDEVIO, "VFIO_DEVICE_RESET failed: %s",
				vms_errno_text(e, eb, sizeof(eb)));
	}
	return v1_get_state(v, &s);
}

static void v1_close(void *impl)
{
	free(impl);
}

static const struct vms_device_ops v1_ops = {
	.size = sizeof(struct vms_device_ops),
	.caps = v1_caps,
	.set_state = v1_set_state,
	.precopy_info = v1_precopy_info,
	.stop_copy_size = v1_stop_copy_size,
	.read = v1_read,
	.write = v1_write,
	.reset = v1_reset,
	.close = v1_close,
};

int vms_device_open_vfio_v1_sys(struct vms_device **out, const char *name, int device_fd,
				uint64_t region_offset, uint64_t region_size,
				const struct vms_devsys *sys)
{
	struct vms_device_ext ext = { .tag = v1_tag, .get_state = v1_get_state };
	struct v1 *v;
	uint32_t state;
	int r;

	if (out)
		*out = NULL;
	r = vms_device_check_name(name);
	if (r < 0)
		return r;
	if (!out || !sys || device_fd < 0)
		return vms_fail(VMS_EINVAL, "device '%s': bad arguments (device fd %d)", name,
				device_fd);
	if (region_size <= VMS_V1_HDR || region_offset > (uint64_t)INT64_MAX ||
	    region_size > (uint64_t)INT64_MAX - region_offset)
		return vms_fail(VMS_EINVAL, "device '%s': migration region [%llu, +%llu) must "
				"hold the %u-byte header and some data and fit in off_t",
				name, (unsigned long long)region_offset,
				(unsigned long long)region_size, VMS_V1_HDR);

	v = calloc(1, sizeof(*v));
	if (!v)
		return vms_fail(VMS_ENOMEM, "device '%s': out of memory", name);
	v->fd = device_fd;
	v->off = region_offset;
	v->size = region_size;
	v->sys = *sys;

	r = v1_get_state(v, &state);
	if (r < 0) {
		char msg[VMS_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", vms_errbuf());
		r = vms_fail(r, "device '%s': %s", name, msg);
		goto out_free;
	}
	ext.state = state;
	r = vms_device_create(out, name, VMS_DEVKIND_VFIO, &v1_ops, v, &ext);
	if (r < 0)
		goto out_free;
	return 0;

out_free:
	free(v);
	return r;
}

int vms_device_open_vfio_v1(struct vms_device **out, const char *name, int device_fd,
			    uint64_t region_offset, uint64_t region_size)
{
	return vms_device_open_vfio_v1_sys(out, name, device_fd, region_offset, region_size,
					   &vms_devsys_os);
}
