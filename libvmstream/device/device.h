/* SPDX-License-Identifier: MIT */
/*
 * Device layer internals: the generic wrapper (device.c) that every backend
 * (vfio.c, vfio_v1.c, sim.c, memdev.c, or a caller's struct vms_device_ops)
 * sits behind, and the system-call table the VFIO backends go through.
 *
 * The wrapper owns the state machine: it walks multi-step paths with
 * vms_mig_next_state() and hands a backend only single legal arcs; it checks
 * that reads happen in saving states and writes in RESUMING; it keeps a
 * device's errors sticky (see device.c).
 */
#ifndef VMS_DEVICE_H
#define VMS_DEVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "vmstream.h"

#define VMS_DEV_NSTATES 8u

/* PRE_COPY, PRE_COPY_P2P and STOP_COPY: the kernel's "saving group", which
 * shares one data transfer session (one data_fd). */
static inline bool vms_state_saving(uint32_t s)
{
	return s == VMS_DEV_PRE_COPY || s == VMS_DEV_PRE_COPY_P2P || s == VMS_DEV_STOP_COPY;
}

static inline bool vms_state_precopy(uint32_t s)
{
	return s == VMS_DEV_PRE_COPY || s == VMS_DEV_PRE_COPY_P2P;
}

/* A state that owns a data session (data_fd): saving group or RESUMING. */
static inline bool vms_state_has_data(uint32_t s)
{
	return vms_state_saving(s) || s == VMS_DEV_RESUMING;
}

/* Does the arc from -> to end the data session `from` belongs to? */
static inline bool vms_state_ends_session(uint32_t from, uint32_t to)
{
	if (vms_state_saving(from))
		return !vms_state_saving(to);
	return from == VMS_DEV_RESUMING && to != VMS_DEV_RESUMING;
}

/* vms_dev_state_name() for messages: never NULL. */
static inline const char *vms_state_str(uint32_t s)
{
	const char *n = vms_dev_state_name(s);

	return n ? n : "INVALID";
}

/* Hooks only the built-in backends provide (a caller's ops cannot). */
struct vms_device_ext {
	const void *tag;   /* identifies the backend type, see vms_device_impl() */
	uint32_t state;    /* state the device is in when it is wrapped */
	/* Ask the device which state it is in (after a failed arc, after reset).
	 * Without it a failed arc leaves the wrapper in ERROR (must reset). */
	int (*get_state)(void *impl, uint32_t *state);
	/* The current data session's file descriptor, or -1. */
	int (*data_fd)(void *impl);
};

/* Wrap impl. On failure impl is NOT closed (the caller still owns it). */
int vms_device_create(struct vms_device **out, const char *name, uint32_t kind,
		      const struct vms_device_ops *ops, void *impl,
		      const struct vms_device_ext *ext);
/* impl of d if d's backend was created with `tag`, else NULL. */
void *vms_device_impl(const struct vms_device *d, const void *tag);
/* The backend's current data_fd (VFIO, sim), or -1: for tests and for engines
 * that want to read the stream themselves (io_uring). The fd stays the
 * device's; reading it directly bypasses PRE_COPY's no-data detection. */
int vms_device_data_fd(const struct vms_device *d);
uint32_t vms_device_kind(const struct vms_device *d);

/* Check a device name: 1..VMS_NAME_MAX bytes. Returns 0 or VMS_EINVAL (with
 * a message). */
int vms_device_check_name(const char *name);

/*
 * System calls of the VFIO backends, through a table so that the tests can
 * put an emulated kernel behind the real code paths (no VFIO hardware in CI).
 * Every function returns like the system call (-1 and errno on failure).
 */
struct vms_devsys {
	void *ctx;
	int (*ioctl)(void *ctx, int fd, unsigned long req, void *arg);
	ssize_t (*pread)(void *ctx, int fd, void *buf, size_t len, off_t off);
	ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t len, off_t off);
	ssize_t (*read)(void *ctx, int fd, void *buf, size_t len);
	ssize_t (*write)(void *ctx, int fd, const void *buf, size_t len);
};

/* The real system calls. */
extern const struct vms_devsys vms_devsys_os;

/* Backends with an explicit system-call table (sys is copied). */
int vms_device_open_vfio_sys(struct vms_device **out, const char *name, int device_fd,
			     const struct vms_devsys *sys);
int vms_device_open_vfio_v1_sys(struct vms_device **out, const char *name, int device_fd,
				uint64_t region_offset, uint64_t region_size,
				const struct vms_devsys *sys);

#endif
