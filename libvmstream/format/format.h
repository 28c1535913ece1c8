/* SPDX-License-Identifier: MIT */
/*
 * Pure encode/decode of the v1 wire format (FORMAT.md). No I/O, no allocation.
 * Decoders return 0 or a negative enum vms_err and set *why to a static reason.
 */
#ifndef VMS_FORMAT_H
#define VMS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/limits.h"

#define VMS_MAGIC "\x8aVMS\r\n\x1a\n"
#define VMS_MAGIC_LEN 8

#define VMS_PFLAG_ENCRYPTED 0x1u
#define VMS_RFLAG_ENCRYPTED 0x1u

#define VMS_PARAM_CODEC 0x0001
#define VMS_PARAM_SALT 0x0002
#define VMS_PARAM_SIZE_HINT 0x8001
#define VMS_PARAM_CREATOR 0x8002
#define VMS_PARAM_IGNORABLE 0x8000

enum vms_key_source { VMS_KEYSRC_NONE = 0, VMS_KEYSRC_FILE = 1, VMS_KEYSRC_SESSION = 2 };

struct vms_codec_decl {
	uint8_t id;
	char name[VMS_CODEC_NAME_MAX + 1];
};

struct vms_preamble {
	uint16_t major, minor;
	uint32_t len; /* set by encode / decode */
	uint8_t stream_id[16];
	uint32_t flags;
	uint32_t chunk_cap;
	uint8_t cipher;
	uint8_t key_source;
	uint16_t lanes;
	bool has_salt;
	uint8_t salt[VMS_SALT_LEN];
	uint64_t size_hint; /* UINT64_MAX = none */
	char creator[VMS_CREATOR_MAX + 1]; /* "" = none */
	unsigned ncodecs;
	struct vms_codec_decl codecs[VMS_MAX_CODECS];
	uint64_t sum; /* preamble_sum, set by encode / decode */
};

struct vms_rec_hdr {
	uint8_t type;
	uint8_t flags;
	uint8_t codec;
	uint32_t device;
	uint64_t seq;
	uint64_t offset;
	uint32_t raw_len;
	uint32_t wire_len;
	uint16_t lane;
	uint16_t epoch;
	uint64_t payload_sum;
};

/* Preamble. encode computes len and sum; buf must hold VMS_PREAMBLE_MAX. */
int vms_preamble_encode(struct vms_preamble *p, uint8_t *buf, size_t cap, size_t *len,
			const char **why);
/* Check magic, major version and length field of the first 16 bytes. */
int vms_preamble_peek(const uint8_t *buf, size_t n, uint32_t *len, const char **why);
int vms_preamble_decode(struct vms_preamble *p, const uint8_t *buf, size_t n,
			uint32_t max_chunk, const char **why);
const struct vms_codec_decl *vms_preamble_codec(const struct vms_preamble *p, uint8_t id);

/* Record header. encode writes header_sum. */
void vms_hdr_encode(const struct vms_rec_hdr *h, uint8_t out[VMS_HDR_LEN]);
/* Checks header_sum, reserved bytes, undefined flag bits. */
int vms_hdr_decode(struct vms_rec_hdr *h, const uint8_t in[VMS_HDR_LEN], const char **why);
/* Length and codec rules of FORMAT.md 3.2 against the stream's preamble:
 * returns the body length (wire minus AEAD overhead) in *body_len. */
int vms_hdr_check(const struct vms_rec_hdr *h, const struct vms_preamble *p, uint32_t *body_len,
		  const char **why);
bool vms_rec_is_control(uint8_t type);
bool vms_rec_is_known(uint32_t type);

/* Control payloads (bodies). encode returns the body length. */
struct vms_begin_body {
	uint32_t kind;
	uint64_t size_hint;
	uint16_t name_len;
	char name[VMS_NAME_MAX + 1];
};
size_t vms_begin_encode(const struct vms_begin_body *b, uint8_t *out);
int vms_begin_decode(struct vms_begin_body *b, const uint8_t *in, size_t n, const char **why);

size_t vms_u64pair_encode(uint64_t a, uint64_t b, uint8_t *out); /* DEVICE_END */
size_t vms_phase_encode(uint32_t phase, uint32_t round, uint8_t *out);
size_t vms_eos_encode(uint64_t records, uint64_t raw_bytes, uint32_t devices, uint8_t *out);
int vms_eos_decode(const uint8_t *in, size_t n, uint64_t *records, uint64_t *raw_bytes,
		   uint32_t *devices, const char **why);
size_t vms_abort_encode(int32_t code, const char *text, uint8_t *out);
int vms_abort_decode(const uint8_t *in, size_t n, int32_t *code, char *text, size_t text_cap,
		     const char **why);
int vms_fixed_decode(const uint8_t *in, size_t n, size_t want, const char **why);

#endif
