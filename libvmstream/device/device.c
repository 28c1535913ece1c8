/* SPDX-License-Identifier: MIT */
/*
 * The generic device: one struct vms_device in front of every backend.
 *
 * What it adds to a backend's ops:
 *  - the state machine: vms_device_set_state() walks the path the kernel's
 *    vfio_mig_get_next_state() would take (vms_mig_next_state()), one legal
 *    arc per backend call, so no backend ever sees a combination transition
 *    and nobody ever requests STOP_COPY -> PRE_COPY;
 *  - the data rules: read() only in PRE_COPY/PRE_COPY_P2P/STOP_COPY, write()
 *    only in RESUMING; a read that finds nothing in PRE_COPY is
 *    VMS_EAGAIN_DEV, in STOP_COPY 0 is the end of the state and stays so;
 *    write() finishes short writes;
 *  - sticky errors, as on a VFIO data_fd: once a read or write failed, every
 *    data call of that session returns the same error and message. Leaving a
 *    saving state for a state without data (the VMM's abort path: back to
 *    RUNNING) ends the session and clears it; in RESUMING only reset helps
 *    ("to abort a RESUMING session the device must be reset", uapi vfio.h).
 *    A device in ERROR refuses everything but reset;
 *  - messages that name the device.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/abi.h"
#include "base/error.h"
#include "device/device.h"

/* One call never moves more than this (read(2) moves at most ~2 GiB). */
#define IO_MAX (1u << 30)

struct vms_device {
	char name[VMS_NAME_MAX + 1];
	uint32_t kind;
	struct vms_device_ops ops;
	void *impl;
	struct vms_device_ext ext;
	uint32_t state;
	uint32_t caps;
	bool caps_known;
	bool eof;             /* STOP_COPY: the backend said 0 (end of state) */
	int err;              /* sticky error of the data session, 0 = none */
	char errmsg[VMS_MSG_MAX];
};

static int dev_fail(const struct vms_device *d, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int dev_fail(const struct vms_device *d, int code, const char *fmt, ...)
{
	char msg[VMS_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return vms_fail(code, "device '%s': %s", d->name, msg);
}

/* Before calling into a backend: an empty message tells afterwards whether
 * the backend explained its failure (built-in ones do, a caller's cannot). */
static void clear_msg(void)
{
	vms_fail_msg(0, "");
}

/* After a backend failed: name the device and the operation. */
static int dev_wrap(const struct vms_device *d, int code, const char *what)
{
	char msg[VMS_MSG_MAX];

	if (code >= 0)
		code = VMS_EDEVIO; /* a backend must fail with a negative code */
	snprintf(msg, sizeof(msg), "%s", vms_errbuf());
	if (msg[0] == '\0')
		return dev_fail(d, code, "%s failed: %s", what, vms_strerror(code));
	return dev_fail(d, code, "%s", msg);
}

static int sticky(const struct vms_device *d)
{
	return vms_fail_msg(d->err, d->errmsg);
}

/* Make the message of a data error the session's sticky error. */
static int set_sticky(struct vms_device *d, int code)
{
	d->err = code;
	snprintf(d->errmsg, sizeof(d->errmsg), "%s", vms_errbuf());
	return code;
}

static int in_error(const struct vms_device *d)
{
	return dev_fail(d, VMS_EDEVIO,
			"device is in ERROR state; only vms_device_reset() recovers it");
}

int vms_device_check_name(const char *name)
{
	size_t n;

	if (!name)
		return vms_fail(VMS_EINVAL, "device name is NULL");
	n = strlen(name);
	if (n == 0 || n > VMS_NAME_MAX)
		return vms_fail(VMS_EINVAL, "device name must be 1..%d bytes, not %zu",
				VMS_NAME_MAX, n);
	return 0;
}

int vms_device_create(struct vms_device **out, const char *name, uint32_t kind,
		      const struct vms_device_ops *ops, void *impl,
		      const struct vms_device_ext *ext)
{
	struct vms_device_ops o = { 0 };
	struct vms_device *d;
	char what[VMS_NAME_MAX + 32];
	int r;

	if (!out)
		return vms_fail(VMS_EINVAL, "device: out is NULL");
	*out = NULL;
	r = vms_device_check_name(name);
	if (r < 0)
		return r;
	if (kind > VMS_DEVKIND_VMM)
		return vms_fail(VMS_EINVAL, "device '%s': unknown kind %u", name, kind);
	if (!ops)
		return vms_fail(VMS_EINVAL, "device '%s': ops is NULL", name);
	/* Only the bytes the caller's size field covers are read (the first
	 * release's struct is the whole of today's). */
	snprintf(what, sizeof(what), "device '%s': ops", name);
	r = vms_opts_take(&o, sizeof(o), ops, sizeof(struct vms_device_ops), what);
	if (r < 0)
		return r;
	if (!o.set_state)
		return vms_fail(VMS_EINVAL, "device '%s': ops->set_state is required", name);
	if (ext && ext->state >= VMS_DEV_NSTATES)
		return vms_fail(VMS_EINVAL, "device '%s': invalid initial state %u", name,
				ext->state);

	d = calloc(1, sizeof(*d));
	if (!d)
		return vms_fail(VMS_ENOMEM, "device '%s': out of memory", name);
	memcpy(d->name, name, strlen(name) + 1);
	d->kind = kind;
	d->ops = o;
	d->impl = impl;
	if (ext)
		d->ext = *ext;
	d->state = ext ? ext->state : VMS_DEV_RUNNING; /* VFIO devices start RUNNING */
	*out = d;
	return 0;
}

int vms_device_new(struct vms_device **out, const char *name, uint32_t kind,
		   const struct vms_device_ops *ops, void *impl)
{
	return vms_device_create(out, name, kind, ops, impl, NULL);
}

void *vms_device_impl(const struct vms_device *d, const void *tag)
{
	return d && tag && d->ext.tag == tag ? d->impl : NULL;
}

int vms_device_data_fd(const struct vms_device *d)
{
	return d && d->ext.data_fd ? d->ext.data_fd(d->impl) : -1;
}

uint32_t vms_device_kind(const struct vms_device *d)
{
	return d ? d->kind : VMS_DEVKIND_BLOB;
}

const char *vms_device_name(const struct vms_device *d)
{
	return d ? d->name : NULL;
}

int vms_device_caps(struct vms_device *d, uint32_t *caps)
{
	uint32_t c = VMS_DEVCAP_STOP_COPY;
	int r;

	if (!d || !caps)
		return vms_fail(VMS_EINVAL, "vms_device_caps: NULL argument");
	if (!d->caps_known) {
		if (d->ops.caps) {
			clear_msg();
			r = d->ops.caps(d->impl, &c);
			if (r < 0)
				return dev_wrap(d, r, "reading migration capabilities");
		}
		d->caps = c;
		d->caps_known = true;
	}
	*caps = d->caps;
	return 0;
}

int vms_device_state(const struct vms_device *d, uint32_t *state)
{
	if (!d || !state)
		return vms_fail(VMS_EINVAL, "vms_device_state: NULL argument");
	*state = d->state;
	return 0;
}

/* Where is the device after a failed arc or reset? Ask it if it can tell;
 * otherwise assume the worst (ERROR: the caller must reset). */
static uint32_t query_state(struct vms_device *d, uint32_t fallback)
{
	uint32_t s;
	char saved[VMS_MSG_MAX];

	if (!d->ext.get_state)
		return fallback;
	snprintf(saved, sizeof(saved), "%s", vms_errbuf());
	if (d->ext.get_state(d->impl, &s) < 0 || s >= VMS_DEV_NSTATES)
		s = VMS_DEV_ERROR;
	vms_fail_msg(0, saved);
	return s;
}

static void enter(struct vms_device *d, uint32_t next)
{
	uint32_t prev = d->state;

	d->state = next;
	if (vms_state_ends_session(prev, next) || next == VMS_DEV_ERROR) {
		d->err = 0;
		d->eof = false;
	}
	if (vms_state_has_data(next) && !vms_state_has_data(prev))
		d->eof = false;
}

static int one_arc(struct vms_device *d, uint32_t next)
{
	uint32_t from = d->state;
	int r;

	clear_msg();
	r = d->ops.set_state(d->impl, next);
	if (r >= 0) {
		enter(d, next);
		return 0;
	}
	r = dev_wrap(d, r, "state change");
	{
		char msg[VMS_MSG_MAX];
		uint32_t now = query_state(d, VMS_DEV_ERROR);

		snprintf(msg, sizeof(msg), "%s", vms_errbuf());
		enter(d, now);
		if (now == VMS_DEV_ERROR)
			return vms_fail(r, "%s (%s -> %s; device now in ERROR: reset it with "
					"vms_device_reset())", msg, vms_state_str(from),
					vms_state_str(next));
		return vms_fail(r, "%s (%s -> %s; device now in %s; vms_device_reset() "
				"returns it to RUNNING)", msg, vms_state_str(from),
				vms_state_str(next), vms_state_str(now));
	}
}

int vms_device_set_state(struct vms_device *d, uint32_t target)
{
	uint32_t caps, next;
	int r;

	if (!d)
		return vms_fail(VMS_EINVAL, "vms_device_set_state: device is NULL");
	if (target >= VMS_DEV_NSTATES)
		return dev_fail(d, VMS_EINVAL, "invalid target state %u", target);
	if (target == VMS_DEV_ERROR)
		return dev_fail(d, VMS_EINVAL, "ERROR cannot be requested as a state");
	if (d->state == VMS_DEV_ERROR)
		return in_error(d);
	if (d->state == target)
		return 0;
	r = vms_device_caps(d, &caps);
	if (r < 0)
		return r;
	if (d->err && d->state == VMS_DEV_RESUMING)
		return sticky(d); /* the image is broken: only reset aborts RESUMING */

	while (d->state != target) {
		next = vms_mig_next_state(caps, d->state, target);
		if (next == VMS_DEV_ERROR) {
			if (d->state == VMS_DEV_STOP_COPY && vms_state_precopy(target))
				return dev_fail(d, VMS_ESTATE,
						"STOP_COPY -> %s is not a legal transition "
						"(a saving session cannot return to pre-copy)",
						vms_state_str(target));
			return dev_fail(d, VMS_ESTATE,
					"no transition from %s to %s for a device with "
					"capabilities 0x%x", vms_state_str(d->state),
					vms_state_str(target), caps);
		}
		/* A failed session may be left, not continued. */
		if (d->err && vms_state_saving(d->state) && vms_state_saving(next))
			return sticky(d);
		r = one_arc(d, next);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Ask the backend: its answer in *out, flags included. */
static int precopy_query(struct vms_device *d, struct vms_precopy_info *out)
{
	uint64_t i = 0, y = 0;
	int r;

	if (d->state == VMS_DEV_ERROR)
		return in_error(d);
	if (!vms_state_precopy(d->state))
		return dev_fail(d, VMS_ESTATE, "precopy info is only available in PRE_COPY "
				"states, not in %s", vms_state_str(d->state));
	if (d->err)
		return sticky(d);
	if (!d->ops.precopy_info)
		return dev_fail(d, VMS_EUNSUPPORTED, "backend has no precopy info");
	clear_msg();
	r = d->ops.precopy_info(d->impl, &i, &y);
	if (r < 0)
		return dev_wrap(d, r, "precopy info");
	out->flags = (uint32_t)r & VMS_PRECOPY_REINIT; /* the flags this library knows */
	out->initial_bytes = i;
	out->dirty_bytes = y;
	return 0;
}

int vms_device_precopy_info(struct vms_device *d, uint64_t *initial, uint64_t *dirty)
{
	struct vms_precopy_info info = VMS_PRECOPY_INFO_INIT;
	int r;

	if (!d || !initial || !dirty)
		return vms_fail(VMS_EINVAL, "vms_device_precopy_info: NULL argument");
	r = precopy_query(d, &info);
	if (r < 0)
		return r;
	*initial = info.initial_bytes;
	*dirty = info.dirty_bytes;
	return 0;
}

int vms_device_precopy_info2(struct vms_device *d, struct vms_precopy_info *info)
{
	struct vms_precopy_info got = VMS_PRECOPY_INFO_INIT;
	int r;

	if (!d || !info)
		return vms_fail(VMS_EINVAL, "vms_device_precopy_info2: NULL argument");
	/* before asking: a REINIT must not be taken from the device and lost */
	if (info->size < sizeof(got))
		return vms_fail(VMS_EINVAL, "vms_device_precopy_info2: size field %u below %zu "
				"(initialise it with VMS_PRECOPY_INFO_INIT)", info->size,
				sizeof(got));
	r = precopy_query(d, &got);
	if (r < 0)
		return r;
	return vms_struct_out(info, &got, sizeof(got), sizeof(got), "precopy info");
}

int vms_device_stop_copy_size(struct vms_device *d, uint64_t *bytes)
{
	uint64_t n = 0;
	int r;

	if (!d || !bytes)
		return vms_fail(VMS_EINVAL, "vms_device_stop_copy_size: NULL argument");
	if (d->state == VMS_DEV_ERROR)
		return in_error(d);
	if (!d->ops.stop_copy_size)
		return dev_fail(d, VMS_EUNSUPPORTED, "backend gives no stop-copy size");
	clear_msg();
	r = d->ops.stop_copy_size(d->impl, &n);
	if (r < 0)
		return dev_wrap(d, r, "stop-copy size");
	*bytes = n;
	return 0;
}

long vms_device_read(struct vms_device *d, void *buf, size_t len)
{
	long r;

	if (!d || !buf || len == 0)
		return vms_fail(VMS_EINVAL, "vms_device_read: NULL argument or zero length");
	if (d->state == VMS_DEV_ERROR)
		return in_error(d);
	if (!vms_state_saving(d->state))
		return dev_fail(d, VMS_ESTATE, "read in state %s (only PRE_COPY, "
				"PRE_COPY_P2P and STOP_COPY have data to read)",
				vms_state_str(d->state));
	if (d->err)
		return sticky(d);
	if (d->eof && d->state == VMS_DEV_STOP_COPY)
		return 0;
	if (!d->ops.read)
		return dev_fail(d, VMS_EUNSUPPORTED, "backend cannot be read");
	if (len > IO_MAX)
		len = IO_MAX;

	clear_msg();
	r = d->ops.read(d->impl, buf, len);
	if (r == VMS_EAGAIN_DEV || r == 0) {
		if (vms_state_precopy(d->state))
			return VMS_EAGAIN_DEV; /* some drivers say 0 instead of ENOMSG */
		if (r == 0) {
			d->eof = true;
			return 0;
		}
		dev_fail(d, VMS_EDEVIO, "backend said 'no data now' in STOP_COPY, where "
			 "only the end of the state (0) may stop the data");
		return set_sticky(d, VMS_EDEVIO);
	}
	if (r < 0)
		return set_sticky(d, dev_wrap(d, (int)r, "read"));
	if ((size_t)r > len) {
		dev_fail(d, VMS_EDEVIO, "backend returned %ld bytes for a %zu-byte read", r,
			 len);
		return set_sticky(d, VMS_EDEVIO);
	}
	return r;
}

long vms_device_write(struct vms_device *d, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t done = 0;

	if (!d || (!buf && len))
		return vms_fail(VMS_EINVAL, "vms_device_write: NULL argument");
	if (len > LONG_MAX)
		return dev_fail(d, VMS_EINVAL, "write of %zu bytes is too large", len);
	if (d->state == VMS_DEV_ERROR)
		return in_error(d);
	if (d->state != VMS_DEV_RESUMING)
		return dev_fail(d, VMS_ESTATE, "write in state %s (only RESUMING accepts "
				"data)", vms_state_str(d->state));
	if (d->err)
		return sticky(d);
	if (!d->ops.write)
		return dev_fail(d, VMS_EUNSUPPORTED, "backend cannot be written");

	while (done < len) {
		size_t n = len - done > IO_MAX ? IO_MAX : len - done;
		long r;

		clear_msg();
		r = d->ops.write(d->impl, p + done, n);
		if (r < 0)
			return set_sticky(d, dev_wrap(d, (int)r, "write"));
		if (r == 0 || (size_t)r > n) {
			dev_fail(d, VMS_EDEVIO, "backend accepted %ld of %zu bytes", r, n);
			return set_sticky(d, VMS_EDEVIO);
		}
		done += (size_t)r;
	}
	return (long)done;
}

int vms_device_reset(struct vms_device *d)
{
	int r;

	if (!d)
		return vms_fail(VMS_EINVAL, "vms_device_reset: device is NULL");
	if (!d->ops.reset)
		return dev_fail(d, VMS_EUNSUPPORTED, "backend cannot be reset");
	clear_msg();
	r = d->ops.reset(d->impl);
	if (r < 0) {
		r = dev_wrap(d, r, "reset");
		d->state = query_state(d, VMS_DEV_ERROR);
		return r;
	}
	d->state = query_state(d, VMS_DEV_RUNNING); /* reset returns to RUNNING */
	d->err = 0;
	d->eof = false;
	return 0;
}

void vms_device_free(struct vms_device *d)
{
	if (!d)
		return;
	if (d->ops.close)
		d->ops.close(d->impl);
	free(d);
}
