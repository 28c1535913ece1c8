/* SPDX-License-Identifier: MIT */
/*
 * VFIO uAPI marshalling, as pure functions so that they are tested byte for
 * byte without hardware (vfio.c, vfio_v1.c use them for every ioctl), and
 * the uAPI constants that older <linux/vfio.h> lack.
 */
#ifndef VMS_DEVICE_VFIO_H
#define VMS_DEVICE_VFIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <linux/vfio.h>

/* ---- uAPI additions, defined here when the installed header predates them.
 * Numbers from mainline include/uapi/linux/vfio.h. All three arrived in
 * Linux 6.2 (the 6.1 uAPI of Debian 12 lacks them; the PRE_COPY commit id is
 * the one QEMU's pre-copy commit cites; the version is from the merge
 * window, not checked against a 6.2 tarball). */

#ifdef VFIO_MIGRATION_PRE_COPY
#define VMS_UAPI_HAVE_PRE_COPY 1
#else
#define VMS_UAPI_HAVE_PRE_COPY 0
/* Linux 6.2 (commit 4db52602a607, "vfio: Extend the device migration
 * protocol with PRE_COPY"): PRE_COPY states, VFIO_MIG_GET_PRECOPY_INFO. */
#define VFIO_MIGRATION_PRE_COPY (1 << 2)
#endif

#ifndef VFIO_MIG_GET_PRECOPY_INFO
/* Linux 6.2, same commit; issued on the data_fd, not the device fd. */
#define VFIO_MIG_GET_PRECOPY_INFO _IO(VFIO_TYPE, VFIO_BASE + 21)
#endif

#ifdef VFIO_DEVICE_FEATURE_MIG_DATA_SIZE
#define VMS_UAPI_HAVE_MIG_DATA_SIZE 1
#else
#define VMS_UAPI_HAVE_MIG_DATA_SIZE 0
/* Linux 6.2 ("vfio: Add an option to get migration data size"): GET returns
 * struct { __aligned_u64 stop_copy_length; }, an estimate. */
#define VFIO_DEVICE_FEATURE_MIG_DATA_SIZE 9
#endif

#ifdef VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2
#define VMS_UAPI_HAVE_PRECOPY_INFOv2 1
#else
#define VMS_UAPI_HAVE_PRECOPY_INFOv2 0
/* Linux 7.1 (torvalds/linux d7140b5dde45, "vfio: Define uAPI for re-init
 * initial bytes during the PRE_COPY phase", merged for v7.1-rc1 with
 * 50ff3f404617, "vfio: Add support for VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2"):
 * a device feature with no payload, SET only (argsz 8), on the device fd.
 * It opts in to the v2 precopy info: from then on struct vfio_precopy_info's
 * flags, returned by VFIO_MIG_GET_PRECOPY_INFO on the data_fd, are output.
 * Before the opt-in they are reserved: drivers copy back whatever the
 * caller passed in. Refused with EINVAL by a device without PRE_COPY;
 * kernels before 7.1 refuse it as an unknown feature (ENOTTY from the
 * driver's device_feature, EINVAL without one). */
#define VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 12
#endif

#ifndef VFIO_PRECOPY_INFO_REINIT
/* Linux 7.1, same commit: struct vfio_precopy_info flags bit 0, output
 * (valid only after the v2 opt-in): new initial data is on the stream;
 * initial_bytes is a new count (irrespective of earlier ones) and
 * dirty_bytes restarts at 0 relative to it. */
#define VFIO_PRECOPY_INFO_REINIT (1 << 0)
#endif

/* struct vfio_precopy_info (Linux 6.2; flags output since 7.1 after the v2
 * opt-in), 24 bytes: the layout did not change. */
struct vms_vfio_precopy_info {
	uint32_t argsz;
	uint32_t flags;
	uint64_t initial_bytes;
	uint64_t dirty_bytes;
};

/* ---- VFIO_DEVICE_FEATURE argument buffers ----------------------------- */

/* struct vfio_device_feature (argsz, flags) followed by a payload of at most
 * 16 bytes; 8-byte aligned like the kernel's __aligned_u64 payloads. */
struct vms_vfio_feature {
	uint64_t words[3];
};

#define VMS_VFIO_FEATURE_HDR 8u

/* Probe: argsz 8, flags = feature | PROBE | ops (ops: GET and/or SET bits). */
uint32_t vms_vfio_build_probe(struct vms_vfio_feature *f, uint32_t feature, uint32_t ops);
/* GET MIGRATION: argsz 16, payload __u64 flags (out). */
uint32_t vms_vfio_build_migration_get(struct vms_vfio_feature *f);
/* GET or SET MIG_DEVICE_STATE: argsz 16, payload {__u32 device_state;
 * __s32 data_fd;}; SET carries state and data_fd -1, GET zero and -1. */
uint32_t vms_vfio_build_mig_state(struct vms_vfio_feature *f, int set, uint32_t state);
/* GET MIG_DATA_SIZE: argsz 16, payload __u64 stop_copy_length (out). */
uint32_t vms_vfio_build_data_size_get(struct vms_vfio_feature *f);

/* Read the payload back. */
uint64_t vms_vfio_feature_u64(const struct vms_vfio_feature *f);
void vms_vfio_parse_mig_state(const struct vms_vfio_feature *f, uint32_t *state,
			      int32_t *data_fd);

/* VFIO_MIGRATION_* flags -> VMS_DEVCAP_* (unknown bits dropped). */
uint32_t vms_vfio_caps_from_flags(uint64_t flags);

void vms_vfio_precopy_info_init(struct vms_vfio_precopy_info *info);

/* SET MIG_PRECOPY_INFOv2: argsz 8 (no payload), flags 12 | SET. */
uint32_t vms_vfio_build_precopy_v2_set(struct vms_vfio_feature *f);

/* Which precopy info a device gives. */
enum vms_vfio_precopy_abi {
	VMS_VFIO_PRECOPY_V1 = 1, /* flags reserved (an echo of the input): ignored */
	VMS_VFIO_PRECOPY_V2 = 2, /* flags are output: VFIO_PRECOPY_INFO_REINIT */
};
/* The fallback choice at open, from the opt-in's outcome: v2 only for a
 * device with PRE_COPY whose PROBE (SET) and then SET of
 * MIG_PRECOPY_INFOv2 both succeeded (errno 0 each), v1 otherwise. */
enum vms_vfio_precopy_abi vms_vfio_precopy_abi(uint32_t caps, int probe_errno, int set_errno);
/* VMS_PRECOPY_* flags of an answer: none under v1, and under v2 the bits
 * this library knows (REINIT); others are dropped. */
uint32_t vms_vfio_precopy_flags(const struct vms_vfio_precopy_info *info,
				enum vms_vfio_precopy_abi abi);

/* What a failed read() on a data_fd means. */
enum vms_vfio_rclass {
	VMS_VFIO_R_RETRY = 0,  /* EINTR: try again */
	VMS_VFIO_R_NODATA = 1, /* PRE_COPY: nothing now (ENOMSG; EAGAIN if O_NONBLOCK) */
	VMS_VFIO_R_WAIT = 2,   /* STOP_COPY on an O_NONBLOCK fd: poll, then again */
	VMS_VFIO_R_ERROR = 3,  /* a device error (sticky) */
};
enum vms_vfio_rclass vms_vfio_read_errno_class(int err, uint32_t state);

/* vms_errno_text() / vms_errno_name(): base/error.h */


/* ---- v1 migration region (Linux 5.8 - 5.18) ------------------------------ */

#define VMS_V1_RUNNING 1u
#define VMS_V1_SAVING 2u
#define VMS_V1_RESUMING 4u
#define VMS_V1_MASK 7u

/* Field offsets in struct vfio_device_migration_info. */
#define VMS_V1_OFF_STATE 0u
#define VMS_V1_OFF_PENDING 8u
#define VMS_V1_OFF_DATA_OFFSET 16u
#define VMS_V1_OFF_DATA_SIZE 24u
#define VMS_V1_HDR 32u

/* v2 state -> v1 device_state bits; VMS_EINVAL for states v1 lacks (P2P). */
int vms_v1_bits_from_state(uint32_t state, uint32_t *bits);
/* v1 device_state (only the mask bits count) -> v2 state; ERROR for the
 * error encoding (SAVING | RESUMING) and for invalid combinations. */
uint32_t vms_v1_state_from_bits(uint32_t bits);

#endif
