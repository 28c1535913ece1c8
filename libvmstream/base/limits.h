/* SPDX-License-Identifier: MIT */
/*
 * Every cap of the library, in one place. The caps a caller needs are public
 * (vmstream.h); the ones below are internal or derived. A derived cap is
 * computed from its sources and tied to them by a static assert, so changing
 * one cap cannot leave a buffer sized for the old value.
 *
 * Rule (DESIGN.md "Sessions that survive"): a limit one side of a session
 * enforces, the other enforces before any work is done, from this header.
 */
#ifndef VMS_BASE_LIMITS_H
#define VMS_BASE_LIMITS_H

#include <stdint.h>
#include "vmstream.h"

/* ---- stream format (FORMAT.md sections 2 and 3) ------------------------ */
#define VMS_PREAMBLE_FIXED 48
#define VMS_PREAMBLE_MIN 56
#define VMS_PREAMBLE_MAX 4096
#define VMS_HDR_LEN 56
#define VMS_CTRL_MAX 4096             /* control record body */
#define VMS_ABORT_TEXT_MAX VMS_TEXT_MAX
#define VMS_AEAD_TAG 16
#define VMS_AEAD_OVERHEAD 24          /* u64 sum inside the ciphertext + tag */
#define VMS_MAX_CODECS 16             /* CODEC entries in one preamble */
#define VMS_CODEC_NAME_MAX 32
#define VMS_BEGIN_FIXED 18            /* DEVICE_BEGIN body before the name */
#define VMS_ABORT_FIXED 6             /* ABORT body before the text */
/* Key epochs (FORMAT.md section 5): a writer moves to the next epoch before
 * the plaintext or the records sealed under one key would exceed these. */
#define VMS_EPOCH_BYTES (1ull << 34)
#define VMS_EPOCH_RECORDS (1ull << 32)

/* ---- sessions (FORMAT.md section 9) ------------------------------------ */
#define VMS_SESSION_MSG_MAX 4096      /* HELLO / REPLY, framing excluded */
#define VMS_ACK_FRAME_HDR 8
#define VMS_ACK_BODY_FIXED 38
#define VMS_ACK_ENTRY 24
#define VMS_ACK_TEXT_MAX VMS_TEXT_MAX
/* The largest acknowledgement body: every device of a stream has an entry,
 * so the bound follows from the device cap. The sender sizes its buffer from
 * the devices it actually began (never more than this). */
#define VMS_ACK_BODY_MAX \
	((uint64_t)VMS_ACK_BODY_FIXED + VMS_ACK_TEXT_MAX + (uint64_t)VMS_DEVICES_MAX * VMS_ACK_ENTRY)
#define VMS_ACK_TRAILER_MAX 16        /* AEAD tag (or 8-byte XXH3 unkeyed) */
#define VMS_ACK_FRAME_MAX (VMS_ACK_FRAME_HDR + VMS_ACK_BODY_MAX + VMS_ACK_TRAILER_MAX)

/* ---- library internals ------------------------------------------------- */
#define VMS_MSG_MAX 512               /* a vms_last_error() message */
/* vms_migrate_opts defaults, for the fields left 0 (vmstream.h) */
#define VMS_MIGRATE_THREADS_DEFAULT 4 /* stop-copy readers: min(devices, this) */
#define VMS_MIGRATE_ROUNDS_DEFAULT 30 /* precopy rounds at most */
#define VMS_MIGRATE_DOWNTIME_DEFAULT_MS 300.0 /* switchover once the estimate fits */
#define VMS_MEMORY_SLOTS_MAX 1024u    /* buffer slots of a writer or reader */
/* vms_net_opts defaults, for the timeouts left 0 (vmstream.h) */
#define VMS_CONNECT_MS_DEFAULT 10000  /* connect and handshake, per session */
#define VMS_IDLE_MS_DEFAULT 30000     /* no progress for this long: VMS_ETIMEOUT */

_Static_assert(VMS_CHUNK_MIN <= VMS_CHUNK_DEFAULT && VMS_CHUNK_DEFAULT <= VMS_CHUNK_MAX,
	       "default chunk inside its bounds");
_Static_assert(VMS_CHUNK_MAX + VMS_AEAD_OVERHEAD <= UINT32_MAX, "wire_len is a u32");
_Static_assert(VMS_BEGIN_FIXED + VMS_NAME_MAX <= VMS_CTRL_MAX, "DEVICE_BEGIN fits a control body");
_Static_assert(VMS_ABORT_FIXED + VMS_ABORT_TEXT_MAX <= VMS_CTRL_MAX, "ABORT fits a control body");
_Static_assert(VMS_NAME_MAX <= UINT16_MAX, "name_len is a u16");
_Static_assert(VMS_TEXT_MAX <= UINT16_MAX, "text_len is a u16");
_Static_assert(VMS_DEVICES_MAX - 1 < VMS_DEVICE_NONE, "device indexes stay below DEVICE_NONE");
_Static_assert(VMS_LANES_MAX <= UINT16_MAX, "lane is a u16");
_Static_assert(VMS_ACK_FRAME_MAX <= UINT32_MAX, "ACK body length is a u32");
_Static_assert(VMS_ACK_BODY_MAX >= VMS_ACK_BODY_FIXED + VMS_ACK_TEXT_MAX +
		       (uint64_t)VMS_DEVICES_MAX * VMS_ACK_ENTRY,
	       "an acknowledgement of every device the writer accepts fits");
_Static_assert(VMS_MSG_MAX > VMS_NAME_MAX + 128, "a message can name a device");
_Static_assert(VMS_MIGRATE_THREADS_DEFAULT <= VMS_THREADS_MAX &&
		       VMS_MIGRATE_ROUNDS_DEFAULT <= VMS_ROUNDS_MAX &&
		       (long)VMS_MIGRATE_DOWNTIME_DEFAULT_MS <= VMS_TIMEOUT_MAX_MS,
	       "migration defaults inside the bounds vms_migrate_opts are checked against");
_Static_assert(VMS_CONNECT_MS_DEFAULT <= VMS_TIMEOUT_MAX_MS &&
		       VMS_IDLE_MS_DEFAULT <= VMS_TIMEOUT_MAX_MS,
	       "network timeout defaults inside the bounds vms_net_opts are checked against");

#endif
