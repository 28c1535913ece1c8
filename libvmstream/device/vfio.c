/* SPDX-License-Identifier: MIT */
/*
 * VFIO migration v2 backend (Linux >= 5.18; PRE_COPY and MIG_DATA_SIZE >= 6.2).
 *
 * Device fd: VFIO_DEVICE_FEATURE with GET MIGRATION (capabilities), GET/SET
 * MIG_DEVICE_STATE (SET returns a data_fd when an arc starts a data
 * session), PROBE then GET MIG_DATA_SIZE (stop-copy estimate);
 * VFIO_DEVICE_RESET; for devices with PRE_COPY, PROBE then SET
 * MIG_PRECOPY_INFOv2 at open (Linux >= 7.1; the opt-in that makes the
 * precopy info's flags, VFIO_PRECOPY_INFO_REINIT, an output).
 * data_fd: read() in PRE_COPY/STOP_COPY, write() in RESUMING,
 * VFIO_MIG_GET_PRECOPY_INFO in PRE_COPY (the same ioctl under v1 and v2:
 * v2 only changes what its flags mean).
 *
 * data_fd ownership follows QEMU (hw/vfio/migration.c): the fd a SET returns
 * is kept while the device stays in the session (the saving group PRE_COPY,
 * PRE_COPY_P2P, STOP_COPY shares one fd; RESUMING has its own) and closed
 * when an arc leaves it. A new fd while one is still open means the kernel
 * ended our session behind our back (asynchronous reset): both are closed
 * and the state change fails, rather than splicing two sessions together.
 *
 * Every system call goes through struct vms_devsys so that the tests can put
 * an emulated kernel behind exactly this code; argument buffers are built by
 * the pure functions below, which the tests check byte for byte.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/error.h"
#include "device/device.h"
#include "device/vfio.h"

/* ---- the uAPI as this file relies on it ---------------------------------- */

_Static_assert(VFIO_DEVICE_FEATURE == 0x3B75, "VFIO_DEVICE_FEATURE is _IO(';', 117)");
_Static_assert(VFIO_DEVICE_RESET == 0x3B6F, "VFIO_DEVICE_RESET is _IO(';', 111)");
_Static_assert(VFIO_MIG_GET_PRECOPY_INFO == 0x3B79, "VFIO_MIG_GET_PRECOPY_INFO is _IO(';', 121)");
_Static_assert(VFIO_DEVICE_FEATURE_GET == 0x10000 && VFIO_DEVICE_FEATURE_SET == 0x20000 &&
	       VFIO_DEVICE_FEATURE_PROBE == 0x40000 && VFIO_DEVICE_FEATURE_MASK == 0xffff,
	       "feature flag bits");
_Static_assert(VFIO_DEVICE_FEATURE_MIGRATION == 1 && VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE == 2 &&
	       VFIO_DEVICE_FEATURE_MIG_DATA_SIZE == 9 &&
	       VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 == 12, "feature indexes");
_Static_assert(VFIO_PRECOPY_INFO_REINIT == 1 && VMS_PRECOPY_REINIT == VFIO_PRECOPY_INFO_REINIT,
	       "REINIT is bit 0 of struct vfio_precopy_info flags");
_Static_assert(sizeof(struct vfio_device_feature) == VMS_VFIO_FEATURE_HDR &&
	       offsetof(struct vfio_device_feature, argsz) == 0 &&
	       offsetof(struct vfio_device_feature, flags) == 4 &&
	       offsetof(struct vfio_device_feature, data) == 8, "struct vfio_device_feature");
_Static_assert(sizeof(struct vfio_device_feature_migration) == 8, "feature MIGRATION payload");
_Static_assert(sizeof(struct vfio_device_feature_mig_state) == 8 &&
	       offsetof(struct vfio_device_feature_mig_state, device_state) == 0 &&
	       offsetof(struct vfio_device_feature_mig_state, data_fd) == 4,
	       "feature MIG_DEVICE_STATE payload");
_Static_assert(VFIO_MIGRATION_STOP_COPY == VMS_DEVCAP_STOP_COPY &&
	       VFIO_MIGRATION_P2P == VMS_DEVCAP_P2P &&
	       VFIO_MIGRATION_PRE_COPY == VMS_DEVCAP_PRE_COPY, "capability bits");
_Static_assert((int)VFIO_DEVICE_STATE_ERROR == (int)VMS_DEV_ERROR && (int)VFIO_DEVICE_STATE_STOP == (int)VMS_DEV_STOP &&
	       (int)VFIO_DEVICE_STATE_RUNNING == (int)VMS_DEV_RUNNING &&
	       (int)VFIO_DEVICE_STATE_STOP_COPY == (int)VMS_DEV_STOP_COPY &&
	       (int)VFIO_DEVICE_STATE_RESUMING == (int)VMS_DEV_RESUMING &&
	       (int)VFIO_DEVICE_STATE_RUNNING_P2P == (int)VMS_DEV_RUNNING_P2P, "state numbers");
#if VMS_UAPI_HAVE_PRE_COPY
_Static_assert((int)VFIO_DEVICE_STATE_PRE_COPY == (int)VMS_DEV_PRE_COPY &&
	       (int)VFIO_DEVICE_STATE_PRE_COPY_P2P == (int)VMS_DEV_PRE_COPY_P2P, "PRE_COPY state numbers");
_Static_assert(sizeof(struct vfio_precopy_info) == sizeof(struct vms_vfio_precopy_info) &&
	       offsetof(struct vfio_precopy_info, initial_bytes) ==
		       offsetof(struct vms_vfio_precopy_info, initial_bytes) &&
	       offsetof(struct vfio_precopy_info, dirty_bytes) ==
		       offsetof(struct vms_vfio_precopy_info, dirty_bytes),
	       "struct vfio_precopy_info");
#endif
#if VMS_UAPI_HAVE_MIG_DATA_SIZE
_Static_assert(sizeof(struct vfio_device_feature_mig_data_size) == 8, "MIG_DATA_SIZE payload");
#endif
_Static_assert(sizeof(struct vms_vfio_precopy_info) == 24 &&
	       offsetof(struct vms_vfio_precopy_info, flags) == 4 &&
	       offsetof(struct vms_vfio_precopy_info, initial_bytes) == 8 &&
	       offsetof(struct vms_vfio_precopy_info, dirty_bytes) == 16,
	       "struct vfio_precopy_info layout (24 bytes)");
_Static_assert(sizeof(struct vms_vfio_feature) >= VMS_VFIO_FEATURE_HDR + 16, "feature buffer");

/* ---- pure marshalling ------------------------------------------------------ */

static uint32_t build(struct vms_vfio_feature *f, uint32_t flags, const void *payload,
		      uint32_t len)
{
	uint8_t *p = (uint8_t *)f->words;
	uint32_t argsz = VMS_VFIO_FEATURE_HDR + len;

	memset(f, 0, sizeof(*f));
	memcpy(p, &argsz, 4);
	memcpy(p + 4, &flags, 4);
	if (len)
		memcpy(p + VMS_VFIO_FEATURE_HDR, payload, len);
	return argsz;
}

uint32_t vms_vfio_build_probe(struct vms_vfio_feature *f, uint32_t feature, uint32_t ops)
{
	ops &= VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET;
	return build(f, (feature & VFIO_DEVICE_FEATURE_MASK) | VFIO_DEVICE_FEATURE_PROBE | ops,
		     NULL, 0);
}

uint32_t vms_vfio_build_migration_get(struct vms_vfio_feature *f)
{
	uint64_t flags = 0;

	return build(f, VFIO_DEVICE_FEATURE_MIGRATION | VFIO_DEVICE_FEATURE_GET, &flags, 8);
}

uint32_t vms_vfio_build_mig_state(struct vms_vfio_feature *f, int set, uint32_t state)
{
	struct vfio_device_feature_mig_state m = {
		.device_state = set ? state : 0,
		.data_fd = -1,
	};

	return build(f, VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE |
				(set ? VFIO_DEVICE_FEATURE_SET : VFIO_DEVICE_FEATURE_GET),
		     &m, sizeof(m));
}

uint32_t vms_vfio_build_data_size_get(struct vms_vfio_feature *f)
{
	uint64_t len = 0;

	return build(f, VFIO_DEVICE_FEATURE_MIG_DATA_SIZE | VFIO_DEVICE_FEATURE_GET, &len, 8);
}

uint64_t vms_vfio_feature_u64(const struct vms_vfio_feature *f)
{
	uint64_t v;

	memcpy(&v, (const uint8_t *)f->words + VMS_VFIO_FEATURE_HDR, 8);
	return v;
}

void vms_vfio_parse_mig_state(const struct vms_vfio_feature *f, uint32_t *state,
			      int32_t *data_fd)
{
	struct vfio_device_feature_mig_state m;

	memcpy(&m, (const uint8_t *)f->words + VMS_VFIO_FEATURE_HDR, sizeof(m));
	*state = m.device_state;
	*data_fd = m.data_fd;
}

uint32_t vms_vfio_caps_from_flags(uint64_t flags)
{
	return (uint32_t)(flags & (VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P |
				   VFIO_MIGRATION_PRE_COPY));
}

void vms_vfio_precopy_info_init(struct vms_vfio_precopy_info *info)
{
	memset(info, 0, sizeof(*info));
	info->argsz = sizeof(*info);
}

uint32_t vms_vfio_build_precopy_v2_set(struct vms_vfio_feature *f)
{
	return build(f, VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 | VFIO_DEVICE_FEATURE_SET, NULL, 0);
}

enum vms_vfio_precopy_abi vms_vfio_precopy_abi(uint32_t caps, int probe_errno, int set_errno)
{
	if (!(caps & VMS_DEVCAP_PRE_COPY) || probe_errno || set_errno)
		return VMS_VFIO_PRECOPY_V1;
	return VMS_VFIO_PRECOPY_V2;
}

uint32_t vms_vfio_precopy_flags(const struct vms_vfio_precopy_info *info,
				enum vms_vfio_precopy_abi abi)
{
	if (abi != VMS_VFIO_PRECOPY_V2)
		return 0; /* reserved: what the driver copied back is our own input */
	return info->flags & VFIO_PRECOPY_INFO_REINIT ? VMS_PRECOPY_REINIT : 0;
}

enum vms_vfio_rclass vms_vfio_read_errno_class(int err, uint32_t state)
{
	if (err == EINTR)
		return VMS_VFIO_R_RETRY;
	if (vms_state_precopy(state) && (err == ENOMSG || err == EAGAIN))
		return VMS_VFIO_R_NODATA;
	if (state == VMS_DEV_STOP_COPY && err == EAGAIN)
		return VMS_VFIO_R_WAIT;
	return VMS_VFIO_R_ERROR; /* ENOMSG in STOP_COPY included: the uAPI forbids it */
}


/* ---- system calls ----------------------------------------------------------- */

static int os_ioctl(void *ctx, int fd, unsigned long req, void *arg)
{
	(void)ctx;
	return ioctl(fd, req, arg);
}

static ssize_t os_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
	(void)ctx;
	return pread(fd, buf, len, off);
}

static ssize_t os_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
	(void)ctx;
	return pwrite(fd, buf, len, off);
}

static ssize_t os_read(void *ctx, int fd, void *buf, size_t len)
{
	(void)ctx;
	return read(fd, buf, len);
}

static ssize_t os_write(void *ctx, int fd, const void *buf, size_t len)
{
	(void)ctx;
	return write(fd, buf, len);
}

const struct vms_devsys vms_devsys_os = {
	.ctx = NULL,
	.ioctl = os_ioctl,
	.pread = os_pread,
	.pwrite = os_pwrite,
	.read = os_read,
	.write = os_write,
};

/* ---- the backend ------------------------------------------------------------- */

struct vfio {
	int fd;              /* device fd: the caller's */
	int data_fd;         /* current data session, -1 if none: ours */
	uint32_t caps;
	uint32_t state;      /* as last set or read */
	bool data_size;      /* MIG_DATA_SIZE probed (Linux >= 6.2) */
	int data_size_errno; /* why the probe failed */
	enum vms_vfio_precopy_abi precopy_abi; /* v2: opted in (Linux >= 7.1) */
	struct vms_devsys sys;
};

static const char vfio_tag[] = "vfio";


static int feature(struct vfio *v, struct vms_vfio_feature *f)
{
	return v->sys.ioctl(v->sys.ctx, v->fd, VFIO_DEVICE_FEATURE, f);
}

static void close_data(struct vfio *v)
{
	if (v->data_fd >= 0)
		close(v->data_fd);
	v->data_fd = -1;
}

static int vfio_get_state(void *impl, uint32_t *state)
{
	struct vfio *v = impl;
	struct vms_vfio_feature f;
	uint32_t s;
	int32_t fd;
	char eb[96];

	vms_vfio_build_mig_state(&f, 0, 0);
	if (feature(v, &f) < 0) {
		int e = errno;

		return vms_fail(VMS_EDEVIO, "VFIO_DEVICE_FEATURE(GET MIG_DEVICE_STATE) failed: %s",
				vms_errno_text(e, eb, sizeof(eb)));
	}
	vms_vfio_parse_mig_state(&f, &s, &fd);
	if (s >= VMS_DEV_NSTATES)
		return vms_fail(VMS_EDEVIO, "driver reports unknown migration state %u", s);
	v->state = s;
	*state = s;
	return 0;
}

static int vfio_caps(void *impl, uint32_t *caps)
{
	*caps = ((struct vfio *)impl)->caps;
	return 0;
}

static int vfio_set_state(void *impl, uint32_t next)
{
	struct vfio *v = impl;
	struct vms_vfio_feature f;
	uint32_t prev = v->state, got;
	int32_t newfd;
	char eb[96];

	vms_vfio_build_mig_state(&f, 1, next);
	if (feature(v, &f) < 0) {
		int e = errno;
		uint32_t now;

		/* The kernel leaves the device in the old state, a state on the way,
		 * or ERROR; ask it. A session we are no longer in is over. */
		vms_fail(VMS_EDEVIO, "VFIO_DEVICE_FEATURE(SET MIG_DEVICE_STATE %s -> %s) "
			 "failed: %s", vms_state_str(prev), vms_state_str(next),
			 vms_errno_text(e, eb, sizeof(eb)));
		{
			char msg[VMS_MSG_MAX];

			snprintf(msg, sizeof(msg), "%s", vms_errbuf());
			if (vfio_get_state(v, &now) < 0)
				now = VMS_DEV_ERROR;
			if (!vms_state_has_data(now) || vms_state_ends_session(prev, now))
				close_data(v);
			v->state = now;
			return vms_fail_msg(VMS_EDEVIO, msg);
		}
	}
	vms_vfio_parse_mig_state(&f, &got, &newfd);
	v->state = next;

	if (vms_state_has_data(next)) {
		bool continues = vms_state_saving(prev) && vms_state_saving(next);

		if (newfd >= 0 && v->data_fd >= 0) {
			close(newfd);
			close_data(v);
			return vms_fail(VMS_EDEVIO, "%s -> %s: the driver started a new data "
					"session while ours was open (data_fd out of sync, "
					"device reset behind our back?)", vms_state_str(prev),
					vms_state_str(next));
		}
		if (newfd >= 0) {
			v->data_fd = newfd;
		} else if (!continues || v->data_fd < 0) {
			return vms_fail(VMS_EDEVIO, "%s -> %s: the driver returned no data_fd",
					vms_state_str(prev), vms_state_str(next));
		}
		return 0;
	}
	if (newfd >= 0)
		close(newfd); /* no session in this state: not ours to keep */
	close_data(v);
	return 0;
}

/* The precopy info; returns the VMS_PRECOPY_* flags of the answer. */
static int vfio_precopy_info(void *impl, uint64_t *initial, uint64_t *dirty)
{
	struct vfio *v = impl;
	struct vms_vfio_precopy_info info;
	char eb[96];

	if (v->data_fd < 0)
		return vms_fail(VMS_EDEVIO, "precopy info: no data session");
	for (;;) {
		vms_vfio_precopy_info_init(&info); /* flags 0 in: a v1 driver echoes them */
		if (v->sys.ioctl(v->sys.ctx, v->data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info) == 0)
			break;
		if (errno == EINTR)
			continue;
		{
			int e = errno;

			return vms_fail(e == ENOTTY ? VMS_EUNSUPPORTED : VMS_EDEVIO,
					"VFIO_MIG_GET_PRECOPY_INFO on the data_fd failed: %s",
					vms_errno_text(e, eb, sizeof(eb)));
		}
	}
	*initial = info.initial_bytes;
	*dirty = info.dirty_bytes;
	return (int)vms_vfio_precopy_flags(&info, v->precopy_abi);
}

/* Opt in to the v2 precopy info where the kernel has it (Linux >= 7.1):
 * PROBE first (probe, never assume), then SET. Anything else falls back to
 * v1, whose flags are not looked at. Only devices with PRE_COPY have it. */
static void precopy_v2_opt_in(struct vfio *v)
{
	struct vms_vfio_feature f;
	int probe = 0, set = 0;

	if (v->caps & VMS_DEVCAP_PRE_COPY) {
		vms_vfio_build_probe(&f, VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2,
				     VFIO_DEVICE_FEATURE_SET);
		probe = feature(v, &f) == 0 ? 0 : errno;
		if (!probe) {
			vms_vfio_build_precopy_v2_set(&f);
			set = feature(v, &f) == 0 ? 0 : errno;
		}
	}
	v->precopy_abi = vms_vfio_precopy_abi(v->caps, probe, set);
}

static int vfio_stop_copy_size(void *impl, uint64_t *bytes)
{
	struct vfio *v = impl;
	struct vms_vfio_feature f;
	char eb[96];

	if (!v->data_size)
		return vms_fail(VMS_EUNSUPPORTED, "the kernel has no VFIO_DEVICE_FEATURE "
				"MIG_DATA_SIZE (Linux >= 6.2): probe failed with %s",
				vms_errno_text(v->data_size_errno, eb, sizeof(eb)));
	vms_vfio_build_data_size_get(&f);
	if (feature(v, &f) < 0) {
		int e = errno;

		return vms_fail(VMS_EDEVIO, "VFIO_DEVICE_FEATURE(GET MIG_DATA_SIZE) failed: %s",
				vms_errno_text(e, eb, sizeof(eb)));
	}
	*bytes = vms_vfio_feature_u64(&f);
	return 0;
}

static int wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	while (poll(&p, 1, -1) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static long vfio_read(void *impl, void *buf, size_t len)
{
	struct vfio *v = impl;
	char eb[96];

	if (v->data_fd < 0)
		return vms_fail(VMS_EDEVIO, "read: no data session");
	for (;;) {
		ssize_t n = v->sys.read(v->sys.ctx, v->data_fd, buf, len);
		int e;

		if (n > 0)
			return (long)n;
		if (n == 0) /* STOP_COPY: end of state; PRE_COPY: some drivers' "nothing now" */
			return vms_state_precopy(v->state) ? VMS_EAGAIN_DEV : 0;
		e = errno;
		switch (vms_vfio_read_errno_class(e, v->state)) {
		case VMS_VFIO_R_RETRY:
			continue;
		case VMS_VFIO_R_NODATA:
			return VMS_EAGAIN_DEV;
		case VMS_VFIO_R_WAIT:
			if (wait_fd(v->data_fd, POLLIN) == 0)
				continue;
			break;
		case VMS_VFIO_R_ERROR:
			break;
		}
		return vms_fail(VMS_EDEVIO, "read from data_fd in %s failed: %s",
				vms_state_str(v->state), vms_errno_text(e, eb, sizeof(eb)));
	}
}

static long vfio_write(void *impl, const void *buf, size_t len)
{
	struct vfio *v = impl;
	const uint8_t *p = buf;
	size_t done = 0;
	char eb[96];

	if (v->data_fd < 0)
		return vms_fail(VMS_EDEVIO, "write: no data session");
	while (done < len) {
		ssize_t n = v->sys.write(v->sys.ctx, v->data_fd, p + done, len - done);
		int e;

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		e = n == 0 ? EIO : errno;
		if (e == EINTR)
			continue;
		if (e == EAGAIN && wait_fd(v->data_fd, POLLOUT) == 0)
			continue;
		return vms_fail(VMS_EDEVIO, "write to data_fd in RESUMING failed after %zu of "
				"%zu bytes: %s", done, len, vms_errno_text(e, eb, sizeof(eb)));
	}
	return (long)done;
}

static int vfio_reset(void *impl)
{
	struct vfio *v = impl;
	char eb[96];
	uint32_t s;

	close_data(v); /* reset ends any session; its fd is dead */
	if (v->sys.ioctl(v->sys.ctx, v->fd, VFIO_DEVICE_RESET, NULL) < 0) {
		int e = errno;

		return vms_fail(VMS_EDEVIO, "VFIO_DEVICE_RESET failed: %s",
				vms_errno_text(e, eb, sizeof(eb)));
	}
	return vfio_get_state(v, &s);
}

static int vfio_data_fd(void *impl)
{
	return ((struct vfio *)impl)->data_fd;
}

static void vfio_close(void *impl)
{
	struct vfio *v = impl;

	if (!v)
		return;
	close_data(v);
	free(v);
}

static const struct vms_device_ops vfio_ops = {
	.size = sizeof(struct vms_device_ops),
	.caps = vfio_caps,
	.set_state = vfio_set_state,
	.precopy_info = vfio_precopy_info,
	.stop_copy_size = vfio_stop_copy_size,
	.read = vfio_read,
	.write = vfio_write,
	.reset = vfio_reset,
	.close = vfio_close,
};

int vms_device_open_vfio_sys(struct vms_device **out, const char *name, int device_fd,
			     const struct vms_devsys *sys)
{
	struct vms_device_ext ext = { .tag = vfio_tag, .get_state = vfio_get_state,
				      .data_fd = vfio_data_fd };
	struct vms_vfio_feature f;
	struct vfio *v;
	uint64_t flags;
	uint32_t state;
	char eb[96];
	int r;

	if (out)
		*out = NULL;
	r = vms_device_check_name(name);
	if (r < 0)
		return r;
	if (!out || !sys || device_fd < 0)
		return vms_fail(VMS_EINVAL, "device '%s': bad arguments (device fd %d)", name,
				device_fd);

	v = calloc(1, sizeof(*v));
	if (!v)
		return vms_fail(VMS_ENOMEM, "device '%s': out of memory", name);
	v->fd = device_fd;
	v->data_fd = -1;
	v->sys = *sys;

	vms_vfio_build_migration_get(&f);
	if (feature(v, &f) < 0) {
		int e = errno;

		r = vms_fail(VMS_EDEVIO, "device '%s': VFIO_DEVICE_FEATURE(GET MIGRATION) on fd "
			     "%d failed: %s%s", name, device_fd, vms_errno_text(e, eb, sizeof(eb)),
			     e == ENOTTY ? ": not a VFIO device fd, or its driver has no "
					   "migration support" : "");
		goto out_free;
	}
	flags = vms_vfio_feature_u64(&f);
	if (!(flags & VFIO_MIGRATION_STOP_COPY)) {
		r = vms_fail(VMS_EUNSUPPORTED, "device '%s': migration flags 0x%llx lack "
			     "VFIO_MIGRATION_STOP_COPY", name, (unsigned long long)flags);
		goto out_free;
	}
	v->caps = vms_vfio_caps_from_flags(flags);

	/* Kernels before 6.2 do not know feature 9 (EINVAL from the generic
	 * dispatcher; ENOTTY from a driver's own device_feature). */
	vms_vfio_build_probe(&f, VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, VFIO_DEVICE_FEATURE_GET);
	v->data_size = feature(v, &f) == 0;
	v->data_size_errno = v->data_size ? 0 : errno;
	precopy_v2_opt_in(v);

	r = vfio_get_state(v, &state);
	if (r < 0) {
		char msg[VMS_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", vms_errbuf());
		r = vms_fail(r, "device '%s': %s", name, msg);
		goto out_free;
	}
	ext.state = state;
	r = vms_device_create(out, name, VMS_DEVKIND_VFIO, &vfio_ops, v, &ext);
	if (r < 0)
		goto out_free;
	return 0;

out_free:
	free(v);
	return r;
}

int vms_device_open_vfio(struct vms_device **out, const char *name, int device_fd)
{
	return vms_device_open_vfio_sys(out, name, device_fd, &vms_devsys_os);
}
