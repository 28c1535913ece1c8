/* SPDX-License-Identifier: MIT */
/*
 * vmstream — move live-migration state of VM devices between hosts,
 * chunked, checksummed, compressed and encrypted end to end.
 *
 * One public header. Conventions (see README.md "Using the library"):
 *  - Every function that can fail returns 0 (or a non-negative count) on
 *    success and a negative `enum vms_err` code on failure. errno is never the
 *    error channel. On failure a one-line human message naming the record
 *    number and stream byte offset (where there is one) is available from
 *    vms_last_error() on the calling thread.
 *  - Objects are opaque, created by the _open/_new functions and released by _free;
 *    the _free functions accept NULL.
 *  - Option structs start with a `size` field; always initialise them with
 *    their *_INIT macro, then set what you need. New fields are only ever
 *    appended, so code built against an older header keeps working.
 *  - Thread safety: distinct objects may be used from distinct threads
 *    concurrently. One object must not be used from two threads at once.
 *    vms_strerror(), vms_version_string() and the codec registry lookups are
 *    thread-safe. The library starts its own worker threads only where an
 *    options struct says so (`threads`).
 *
 * The wire format is specified normatively in FORMAT.md.
 */
#ifndef VMSTREAM_H
#define VMSTREAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define VMS_API __attribute__((visibility("default")))
#else
#define VMS_API
#endif

#define VMS_VERSION_MAJOR 0
#define VMS_VERSION_MINOR 2
#define VMS_VERSION_PATCH 0

/* Library version, e.g. "0.1.0". */
VMS_API const char *vms_version_string(void);

/* ------------------------------------------------------------------------ */
/* Errors. Values are part of the ABI and are never renumbered. They are   */
/* wire values too (ABORT, REPLY, acknowledgement): FORMAT.md section 10   */
/* lists them, and a test keeps the two tables equal.                      */

enum vms_err {
	VMS_OK = 0,
	VMS_ENOMEM = -1,       /* out of memory (or over the memory budget) */
	VMS_EINVAL = -2,       /* bad argument or option value */
	VMS_EIO = -3,          /* a system call failed; message has errno text */
	VMS_ETRUNCATED = -4,   /* stream ended early (no EOS, cut record) */
	VMS_EMAGIC = -5,       /* not a vmstream stream (bad magic) */
	VMS_EVERSION = -6,     /* unsupported major version */
	VMS_EPREAMBLE = -7,    /* malformed preamble (field, length, checksum) */
	VMS_EHDRSUM = -8,      /* record header checksum mismatch */
	VMS_EPAYLOADSUM = -9,  /* payload checksum mismatch (decoded bytes) */
	VMS_ELENGTH = -10,     /* a length beyond its cap or inconsistent */
	VMS_ESEQ = -11,        /* sequence number gap, repeat or reorder */
	VMS_EOFFSET = -12,     /* device offset not contiguous */
	VMS_ERECTYPE = -13,    /* unknown critical record type */
	VMS_EDEVICE = -14,     /* record for an unknown/ended device, bad order */
	VMS_EDIGEST = -15,     /* DEVICE_END total or digest mismatch */
	VMS_EEOS = -16,        /* EOS totals mismatch */
	VMS_ETRAILING = -17,   /* bytes after EOS */
	VMS_ECODEC = -18,      /* unknown or undeclared codec */
	VMS_EDECOMPRESS = -19, /* corrupt compressed payload or size mismatch */
	VMS_EAUTH = -20,       /* AEAD authentication failed (tamper/wrong key) */
	VMS_EKEY = -21,        /* key missing, malformed or not usable */
	VMS_EPEERABORT = -22,  /* the peer aborted the stream (ABORT record) */
	VMS_ETIMEOUT = -23,    /* a timeout expired */
	VMS_EDEVIO = -24,      /* device (source or sink) reported an error */
	VMS_EFLAGS = -25,      /* reserved bits set or flags inconsistent */
	VMS_EEXIST = -26,      /* output exists (and overwriting not allowed) */
	VMS_ESTATE = -27,      /* call not valid in the object's current state */
	VMS_EUNSUPPORTED = -28,/* feature not available in this build/system */
	VMS_ECANCELED = -29,   /* operation canceled by the caller */
	VMS_EPROTO = -30,      /* session protocol violation */
	VMS_ENET = -31,        /* connection failed, reset or refused */
	VMS_ETLS = -32,        /* TLS handshake / authentication failure */
	VMS_EEPOCH = -33,      /* key epoch or lane field out of order */
	VMS_ERESERVED = -34,   /* reserved field not zero */
	VMS_ESINK = -35,       /* the sink (output) rejected or failed a write */
	VMS_ENODATA = -36,     /* device has no precopy data right now (retry
				  after precopy info); not a failure */
	VMS_EPHASE = -37,      /* PHASE record with an undefined phase value */
};

/* Static description of an error code ("bad record header checksum"). Never
 * NULL; unknown codes give "unknown error". Thread-safe. */
VMS_API const char *vms_strerror(int err);

/* Name of an error code ("VMS_EHDRSUM"), or NULL if unknown. */
VMS_API const char *vms_errname(int err);

/* The error rule: every function of this header that can fail returns 0
 * (or a non-negative count) or a negative enum vms_err, never -errno, so
 * that vms_errname() always names the right thing. Where a system call
 * failed, its errno is kept with the message: vms_last_errno() returns it
 * (0 when the last failure was not a failed system call). */
VMS_API int vms_last_errno(void);

/* Detailed message for the last failure of a vms_ call on this thread,
 * e.g. "record 7 at byte 1049032: header checksum mismatch". Valid until the
 * next failing vms_ call on the same thread. "" if none. */
VMS_API const char *vms_last_error(void);

/* ------------------------------------------------------------------------ */
/* Logging. Messages never contain key material.                             */

enum vms_log_level {
	VMS_LOG_ERROR = 0,
	VMS_LOG_WARN = 1,
	VMS_LOG_INFO = 2,
	VMS_LOG_DEBUG = 3,
};

/* May be called from library worker threads; must be thread-safe. */
typedef void (*vms_log_fn)(void *user, int level, const char *msg);

/* ------------------------------------------------------------------------ */
/* Format constants (FORMAT.md).                                            */

#define VMS_FORMAT_MAJOR 1
#define VMS_FORMAT_MINOR 0

/* Limits a caller needs. Both sides of a session enforce every one of them
 * before any work is done (the library's internal limits.h ties the caps
 * derived from these to them with static asserts). */
#define VMS_CHUNK_DEFAULT (1u << 20)  /* 1 MiB */
#define VMS_CHUNK_MIN (4u << 10)      /* 4 KiB */
#define VMS_CHUNK_MAX (16u << 20)     /* 16 MiB, hard cap */
#define VMS_NAME_MAX 255              /* device name, bytes */
#define VMS_DEVICES_MAX 65536u        /* devices in one stream */
#define VMS_LANES_MAX 64u             /* lanes (TCP connections) of a session */
#define VMS_THREADS_MAX 64u           /* worker threads of a writer or reader */
#define VMS_TEXT_MAX 1024u            /* ABORT and refusal texts, bytes */
#define VMS_CREATOR_MAX 64u           /* writer opts creator, bytes */
#define VMS_PSK_IDENTITY_MAX 128u     /* PSK identity, printable ASCII bytes */
#define VMS_MEMORY_MAX (1ull << 40)   /* memory budget (1 TiB) */
#define VMS_TIMEOUT_MAX_MS 86400000   /* timeouts in ms: one day at most */
#define VMS_ROUNDS_MAX 100000u        /* precopy rounds of a migration */
#define VMS_RATE_MAX (1ull << 40)     /* rate limit, bytes per second */
#define VMS_DEVICE_NONE 0xffffffffu   /* device field of stream-level records */

enum vms_rec_type {
	VMS_REC_DEVICE_BEGIN = 0x01,
	VMS_REC_DATA = 0x02,
	VMS_REC_ZERO = 0x03,
	VMS_REC_PHASE = 0x04,
	VMS_REC_DEVICE_END = 0x05,
	VMS_REC_EOS = 0x06,
	VMS_REC_ABORT = 0x07,
};
#define VMS_REC_IGNORABLE 0x80 /* type bit: readers may skip unknown types */

enum vms_phase {
	VMS_PHASE_PRECOPY = 1,
	VMS_PHASE_SWITCHOVER = 2,
	VMS_PHASE_STOPCOPY = 3,
};

enum vms_device_kind {
	VMS_DEVKIND_BLOB = 0,   /* opaque bytes (file, memory, stdin) */
	VMS_DEVKIND_VFIO = 1,   /* VFIO device migration state */
	VMS_DEVKIND_VMM = 2,    /* VMM-internal device state */
};

#define VMS_LEVEL_RAW (-1000)  /* struct vms_stats.level: auto stores raw */
#define VMS_KEY_LEN 32
#define VMS_SALT_LEN 32
#define VMS_THREADS_AUTO 0xffffffffu
#define VMS_MEMORY_DEFAULT (64ull << 20)

enum vms_cipher {
	VMS_CIPHER_NONE = 0,
	VMS_CIPHER_AES_256_GCM = 1,
	VMS_CIPHER_CHACHA20_POLY1305 = 2,
};

/* "none", "aes-256-gcm", "chacha20-poly1305" <-> enum vms_cipher.
 * vms_cipher_from_name returns the id or VMS_EINVAL. */
VMS_API int vms_cipher_from_name(const char *name);
VMS_API const char *vms_cipher_name(uint32_t cipher);
/* The cipher this CPU runs fastest: AES-256-GCM with AES instructions,
 * else ChaCha20-Poly1305. */
VMS_API uint32_t vms_cipher_preferred(void);

/* Read a key file: exactly 64 hex digits, optionally followed by one
 * newline (what `openssl rand -hex 32` writes). Anything else is VMS_EKEY.
 * Refuses files readable by group/other with VMS_EKEY unless allow_shared. */
VMS_API int vms_key_load_file(const char *path, uint8_t key[VMS_KEY_LEN],
			      int allow_shared);
/* Parse the same format from memory. */
VMS_API int vms_key_parse_hex(const char *text, size_t len,
			      uint8_t key[VMS_KEY_LEN]);
/* Zeroize key material (not optimised away). */
VMS_API void vms_wipe(void *p, size_t n);

/* ------------------------------------------------------------------------ */
/* Stages: per-chunk transforms, and the registry for third-party codecs.   */
/*
 * A stage transforms one chunk. Kinds:
 *  - VMS_STAGE_FILTER: decides a chunk needs no payload (the built-in "zero"
 *    stage turns an all-zero chunk into a ZERO record);
 *  - VMS_STAGE_CODEC: compression; wire id 1..63 reserved for FORMAT.md
 *    codecs, 64..254 for third parties (the stream preamble declares each
 *    codec used by name and id, so a reader refuses one it lacks);
 *  - VMS_STAGE_CIPHER: AEAD (built-in only; ids are FORMAT.md cipher ids).
 * Built-ins ("zero", "zstd", "aes-256-gcm", "chacha20-poly1305") are
 * described by this same structure and found with vms_stage_find().
 */
enum vms_stage_kind {
	VMS_STAGE_FILTER = 1,
	VMS_STAGE_CODEC = 2,
	VMS_STAGE_CIPHER = 3,
};

/* Results of apply() besides a negative enum vms_err. */
#define VMS_STAGE_DONE 0   /* dst holds dst_len bytes of output */
#define VMS_STAGE_SKIP 1   /* leave the chunk as it is (e.g. incompressible) */
#define VMS_STAGE_ELIDE 2  /* filter: the chunk is implied (ZERO record) */

struct vms_stage_conf {
	uint32_t size;        /* sizeof(struct vms_stage_conf) */
	int level;            /* codec level (already within the stage's range) */
	const uint8_t *key;   /* cipher: VMS_KEY_LEN bytes */
	size_t max_chunk;     /* largest src_len apply() will be given */
};

struct vms_stage_io {
	const void *src;      /* input bytes */
	size_t src_len;
	void *dst;            /* output buffer, dst_cap >= bound(src_len) */
	size_t dst_cap;
	size_t dst_len;       /* out: bytes written to dst */
	size_t raw_len;       /* invert() of a codec: exact decoded length */
	const void *aad;      /* cipher: associated data (record header) */
	size_t aad_len;
	const uint8_t *nonce; /* cipher: 12 bytes */
};

struct vms_stage {
	uint32_t size;          /* sizeof(struct vms_stage) */
	const char *name;       /* [a-z0-9._-], 1..32 bytes, unique */
	uint32_t kind;          /* enum vms_stage_kind */
	uint32_t id;            /* wire id (codec / cipher), 0 for filters */
	int level_min, level_max, level_default; /* codecs; 0,0,0 if unused */
	/* Per-worker context: called once per worker thread, never shared. */
	int (*ctx_new)(void **ctx, const struct vms_stage_conf *conf);
	void (*ctx_free)(void *ctx);
	/* Optional: change the level of a live context (adaptive codecs). */
	int (*set_level)(void *ctx, int level);
	/* Largest output apply() may produce for src_len input bytes. */
	size_t (*bound)(size_t src_len);
	/* Forward transform: VMS_STAGE_DONE / _SKIP / _ELIDE or a negative
	 * enum vms_err. A codec must return SKIP rather than grow the data. */
	int (*apply)(void *ctx, struct vms_stage_io *io);
	/* Inverse: 0 or a negative error (VMS_EDECOMPRESS for corrupt input or
	 * a length other than io->raw_len; VMS_EAUTH for a cipher). */
	int (*invert)(void *ctx, struct vms_stage_io *io);
};

/* Add a third-party codec (kind VMS_STAGE_CODEC, id 64..254, unique name
 * and id). The registry is filled before first use and then read-only:
 * registering after the first writer or reader was opened returns
 * VMS_ESTATE. The struct must stay valid for the life of the process.
 * Thread-safe. */
VMS_API int vms_stage_register(const struct vms_stage *stage);
/* Look a stage up by name or by kind and wire id; NULL if none. */
VMS_API const struct vms_stage *vms_stage_find(const char *name);
VMS_API const struct vms_stage *vms_stage_find_id(uint32_t kind, uint32_t id);

/* Check a compression spec as struct vms_writer_opts.compress takes it: NULL
 * or "none"; "auto"; NAME or NAME:LEVEL of a codec in the registry, LEVEL an
 * optional '-' and 1..6 digits, nothing else (no '+', space or fraction), in
 * the codec's [level_min, level_max] (zstd: -7..19). Returns 0 or VMS_EINVAL;
 * the message quotes spec and says what is wrong ("'zstd:20': level must be
 * an integer in [-7, 19]"), so a caller can put its own context in front. The
 * writer applies the same check. Thread-safe. */
VMS_API int vms_compress_check(const char *spec);

/* ------------------------------------------------------------------------ */
/* Statistics and progress.                                                 */

struct vms_stats {
	uint32_t size;          /* sizeof(struct vms_stats), set by caller */
	uint64_t raw_bytes;     /* device bytes in (writer) / out (reader) */
	uint64_t wire_bytes;    /* bytes of stream written / read */
	uint64_t records;       /* records written / read */
	uint64_t data_records;  /* DATA records */
	uint64_t zero_records;  /* ZERO records (elided all-zero chunks) */
	uint64_t stored_records;/* DATA records stored without compression */
	uint32_t devices;       /* devices begun */
	double seconds;         /* wall time since open */
	int32_t level;          /* current codec level (adaptive: moves);
				   VMS_LEVEL_RAW when "auto" found storing raw
				   faster than its fastest level */
	uint32_t threads;       /* worker threads configured (a stream without
				   codec and cipher runs its checksums on the
				   I/O threads and starts none) */
	uint64_t memory;        /* bytes of buffers allocated */
};

/* Called after each record is written/delivered (rate-limited by the caller
 * if it wants). Runs on the thread that called the writer/reader function. */
typedef void (*vms_progress_fn)(void *user, const struct vms_stats *st);

/* ------------------------------------------------------------------------ */
/* Writer: produces a stream, record by record, never buffering it whole.   */

struct vms_writer;

struct vms_writer_opts {
	uint32_t size;           /* sizeof(struct vms_writer_opts) */
	uint32_t chunk_size;     /* raw bytes per DATA record; 0 = 1 MiB */
	uint64_t size_hint;      /* total raw bytes expected, or UINT64_MAX */
	vms_log_fn log;          /* optional */
	void *log_user;
	int log_level;           /* highest level passed to log */
	vms_progress_fn progress;/* optional */
	void *progress_user;
	/* Reproducible output (test vectors, golden files): a fixed 16-byte
	 * stream id instead of a random one; NULL = random. */
	const uint8_t *stream_id;
	/* CREATOR preamble entry: NULL = "vmstream <version>", "" = none. */
	const char *creator;
	/* Compression: NULL or "none"; "zstd" (level 1), "zstd:LEVEL" (LEVEL
	 * may be negative, see vms_compress_check()); "auto" (zstd whose level
	 * follows the measured speeds, skipping data that does not compress);
	 * or "NAME[:LEVEL]" of a codec added with vms_stage_register(). */
	const char *compress;
	uint32_t cipher;         /* enum vms_cipher */
	const uint8_t *key;      /* VMS_KEY_LEN bytes of key material when
				    cipher != VMS_CIPHER_NONE; copied */
	const uint8_t *salt;     /* fixed VMS_SALT_LEN salt (reproducible
				    output only); NULL = random. Never reuse a
				    fixed salt with the same key and stream id */
	uint32_t threads;        /* worker threads; 0 = none (all work on the
				    calling thread); VMS_THREADS_AUTO = one per
				    online CPU */
	uint64_t memory;         /* buffer budget in bytes, at most
				    VMS_MEMORY_MAX; 0 = VMS_MEMORY_DEFAULT, or
				    what the chunk size and stages need if that
				    is more (a reader at its default accepts
				    whatever a writer at its default wrote);
				    too small a budget is VMS_EINVAL naming the
				    one needed */
	uint32_t flags;          /* VMS_WRITER_F_* */
};
#define VMS_WRITER_OPTS_INIT                                                  \
	{ sizeof(struct vms_writer_opts), 0, UINT64_MAX, NULL, NULL,          \
	  VMS_LOG_WARN, NULL, NULL, NULL, NULL, NULL, VMS_CIPHER_NONE, NULL,   \
	  NULL, 0, 0, 0 }

/* Do not turn all-zero chunks into ZERO records. */
#define VMS_WRITER_F_NO_ZERO_ELISION 0x1u

/* Start a stream on a file descriptor (file, pipe, socket). The preamble is
 * written immediately. The fd is not closed by the writer. */
VMS_API int vms_writer_open_fd(struct vms_writer **out, int fd,
			       const struct vms_writer_opts *opts);

struct vms_device_desc {
	uint32_t size;      /* sizeof(struct vms_device_desc) */
	uint32_t kind;      /* enum vms_device_kind */
	const char *name;   /* 1..VMS_NAME_MAX bytes, no NUL inside */
	uint64_t size_hint; /* expected bytes, or UINT64_MAX if unknown */
};
#define VMS_DEVICE_DESC_INIT                                                  \
	{ sizeof(struct vms_device_desc), VMS_DEVKIND_BLOB, NULL, UINT64_MAX }

/* Announce a device; its index (0, 1, 2, ...) is stored in *index. */
VMS_API int vms_writer_begin_device(struct vms_writer *w,
				    const struct vms_device_desc *desc,
				    uint32_t *index);

/* Append len bytes of device state. Copies; buf may be reused on return. */
VMS_API int vms_writer_write(struct vms_writer *w, uint32_t device,
			     const void *buf, size_t len);

/* Zero-copy variant: get the writer's current chunk buffer for `device`
 * (*buf, room for *room bytes), fill up to *room bytes (e.g. read() from
 * the device straight into it), then commit how many were filled. At most one
 * acquired buffer per writer at a time. Committing 0 bytes is allowed. */
VMS_API int vms_writer_acquire(struct vms_writer *w, uint32_t device,
			       void **buf, size_t *room);
VMS_API int vms_writer_commit(struct vms_writer *w, uint32_t device,
			      size_t len);

/* Zero-copy for memory the caller can keep unchanged for a while (a mapped
 * file, a VMM's buffer): the writer checksums buf in place and, when the
 * stream has neither codec nor cipher, sends whole chunks straight from it
 * instead of copying them into its buffers (a partial chunk before or after
 * is copied, so the stream is byte-identical to vms_writer_write()). With a
 * codec or cipher, or len under one chunk, the bytes are copied as by
 * vms_writer_write(). buf must stay valid and unchanged until done(user) is
 * called: exactly once, from any of the writer's threads or before this call
 * returns, including when the call or the stream fails or the writer is
 * freed. done must be quick and must not call the writer (it may run on
 * the output thread). Changing the bytes before then fails the stream at
 * the receiver (checksum), never silently. */
VMS_API int vms_writer_write_ref(struct vms_writer *w, uint32_t device,
				 const void *buf, size_t len,
				 void (*done)(void *user), void *user);

/* Send every device's partly filled chunk and wait until all records
 * written so far have been handed to the output (the kernel's socket
 * buffer, a file, a pipe): e.g. before a VMM stops its VM, so the
 * destination can act on them during precopy. Not while a chunk buffer is
 * acquired (VMS_ESTATE). A stalled receiver ends it through the idle
 * timeout, as for any write. */
VMS_API int vms_writer_flush(struct vms_writer *w);

/* Mark a migration phase (precopy round n, switchover, stop-copy). */
VMS_API int vms_writer_phase(struct vms_writer *w, uint32_t phase,
			     uint32_t round);

/* Flush the device's pending bytes and write DEVICE_END (total, digest). */
VMS_API int vms_writer_end_device(struct vms_writer *w, uint32_t device);

/* End the stream: all devices must have ended. Writes EOS and flushes. */
VMS_API int vms_writer_finish(struct vms_writer *w);

/* Write an ABORT record (best effort) and put the writer in a failed state.
 * code is the enum vms_err that caused it, msg a short reason (may be NULL). */
VMS_API int vms_writer_abort(struct vms_writer *w, int code, const char *msg);

VMS_API int vms_writer_stats(const struct vms_writer *w, struct vms_stats *st);

/* After vms_writer_end_device(): the device's byte count and digest (XXH3-64
 * of its bytes, seed 0: what `xxhsum -H3` prints for the same bytes). */
VMS_API int vms_writer_device_digest(const struct vms_writer *w, uint32_t device,
				     uint64_t *total, uint64_t *digest);

VMS_API void vms_writer_free(struct vms_writer *w);

/* ------------------------------------------------------------------------ */
/* Reader: verifies and decodes a stream record by record.                  */

struct vms_reader;

struct vms_reader_opts {
	uint32_t size;           /* sizeof(struct vms_reader_opts) */
	uint32_t max_chunk;      /* refuse streams whose chunk cap exceeds this;
				    0 = VMS_CHUNK_MAX */
	vms_log_fn log;
	void *log_user;
	int log_level;
	vms_progress_fn progress;
	void *progress_user;
	uint32_t flags;          /* VMS_READER_F_* */
	const uint8_t *key;      /* VMS_KEY_LEN bytes for encrypted streams */
	uint32_t threads;        /* as in struct vms_writer_opts */
	uint64_t memory;         /* as in struct vms_writer_opts */
};
#define VMS_READER_OPTS_INIT                                                  \
	{ sizeof(struct vms_reader_opts), 0, NULL, NULL, VMS_LOG_WARN, NULL,   \
	  NULL, 0, NULL, 0, 0 }

/* Framing only: check preamble, headers, sequence, lengths, device order and
 * trailing bytes, but neither read nor verify payloads (no key needed). Events
 * then carry header fields only: u.data.data is NULL and the type-specific
 * union is zeroed. For listing a stream (vmstream-inspect without --verify);
 * never use it to consume data. */
#define VMS_READER_F_HEADERS_ONLY 0x1u

/* Read and verify the preamble from fd. The fd is not closed. */
VMS_API int vms_reader_open_fd(struct vms_reader **out, int fd,
			       const struct vms_reader_opts *opts);

/* What the preamble says. */
struct vms_stream_info {
	uint32_t size;            /* sizeof(struct vms_stream_info) */
	uint16_t version_major;
	uint16_t version_minor;
	uint8_t stream_id[16];
	uint32_t flags;           /* preamble flags (FORMAT.md) */
	uint32_t chunk_cap;
	uint8_t cipher;           /* 0 = none (FORMAT.md cipher ids) */
	uint8_t key_source;
	uint16_t lanes;
	uint32_t preamble_len;
	uint64_t size_hint;       /* UINT64_MAX if the stream gave none */
	const char *creator;      /* CREATOR entry, "" if none; valid while the
				     reader lives */
	const char *codecs;       /* declared codecs, "id:name" comma-separated,
				     "" if none; valid while the reader lives */
	uint8_t has_salt;
};

VMS_API int vms_reader_info(const struct vms_reader *r,
			    struct vms_stream_info *info);

/* One verified record. Pointers are valid until the next vms_reader_next()
 * or vms_reader_free() on the same reader. Set size before the first call
 * (VMS_EVENT_INIT); the reader keeps it. */
struct vms_event {
	uint32_t size;        /* sizeof(struct vms_event), set by the caller */
	uint32_t type;        /* enum vms_rec_type (or unknown ignorable type) */
	uint32_t flags;       /* record flags */
	uint32_t codec;       /* codec id of the payload on the wire */
	uint32_t device;      /* device index or VMS_DEVICE_NONE */
	uint64_t seq;         /* record sequence number */
	uint64_t offset;      /* device byte offset (DATA/ZERO) */
	uint32_t raw_len;     /* decoded length */
	uint32_t wire_len;    /* payload length on the wire */
	uint16_t lane;
	uint16_t epoch;
	uint64_t stream_pos;  /* byte offset of the record header in the stream */
	union {
		struct { /* DATA: verified decoded bytes; ZERO: data == NULL */
			const void *data;
			size_t len;
		} data;
		struct { /* DEVICE_BEGIN */
			const char *name; /* NUL-terminated copy */
			uint32_t kind;
			uint64_t size_hint;
		} begin;
		struct { /* PHASE */
			uint32_t phase;
			uint32_t round;
		} phase;
		struct { /* DEVICE_END (already checked against the data) */
			uint64_t total;
			uint64_t digest;
		} end;
		struct { /* EOS (already checked) */
			uint64_t records;
			uint64_t raw_bytes;
			uint32_t devices;
		} eos;
		struct { /* ABORT */
			int32_t code;
			const char *text;
		} abort;
	} u;
};

#define VMS_EVENT_INIT { sizeof(struct vms_event), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, { { NULL, 0 } } }

/* Return 1 and fill *ev with the next verified record (ev->size below
 * sizeof(struct vms_event) is VMS_EINVAL); 0 once the stream has ended
 * cleanly (after the EOS event has been returned; it is returned only once
 * the reader saw that no byte follows it); or a negative error. An ABORT
 * record is returned as an event and the next
 * call returns VMS_EPEERABORT. After an error every later call returns the
 * same error. DATA bytes are only ever returned after their checksum (and
 * authentication) verified; DEVICE_END only after total and digest matched. */
VMS_API int vms_reader_next(struct vms_reader *r, struct vms_event *ev);

VMS_API int vms_reader_stats(const struct vms_reader *r, struct vms_stats *st);

VMS_API void vms_reader_free(struct vms_reader *r);

/* ------------------------------------------------------------------------ */
/* Network sessions (FORMAT.md section 9).                                  */
/*
 * The sender (TLS client) connects `lanes` TCP connections to the receiver
 * (TLS server). Each connection authenticates with TLS 1.3 (external PSK or
 * mutual X.509), exchanges HELLO/REPLY inside TLS, then carries the stream's
 * records as AEAD records on the plain socket, keyed from the TLS exporter
 * per lane and direction. The receiver acknowledges the verified end of the
 * stream; a sender's vms_writer_finish() returns 0 only after that
 * acknowledgement. Either side's failure reaches the other as a specific
 * error within idle_timeout_ms.
 */
enum vms_io_kind {
	VMS_IO_AUTO = 0,   /* io_uring if the kernel allows it, else posix;
			      the environment variable VMS_IO=uring|posix
			      overrides */
	VMS_IO_URING = 1,
	VMS_IO_POSIX = 2,
};

struct vms_net_opts {
	uint32_t size;              /* sizeof(struct vms_net_opts) */
	const uint8_t *psk;         /* VMS_KEY_LEN bytes: PSK mode; copied */
	const char *psk_identity;   /* NULL = "vmstream" */
	const char *cert_file;      /* X.509 mode: own certificate (PEM) */
	const char *key_file;       /* own private key (PEM) */
	const char *ca_file;        /* CA(s) that sign the peer (PEM) */
	uint32_t lanes;             /* sender: TCP connections, 1..64 (0 = 1) */
	int connect_timeout_ms;     /* 0 = 10000 */
	int idle_timeout_ms;        /* no progress for this long: VMS_ETIMEOUT;
				       0 = 30000 */
	uint32_t io;                /* enum vms_io_kind */
	uint64_t rate_limit;        /* sender: wire bytes per second, 0 = none */
	uint32_t flags;             /* VMS_NET_F_* */
};
#define VMS_NET_OPTS_INIT                                                     \
	{ sizeof(struct vms_net_opts), NULL, NULL, NULL, NULL, NULL, 1, 0, 0,  \
	  VMS_IO_AUTO, 0, 0 }

/* Allow an unauthenticated, unencrypted session with a non-loopback peer
 * (without it such a session is refused with VMS_EINVAL). */
#define VMS_NET_F_INSECURE 0x1u
/* Receiver: accept an authenticated session whose records are not
 * encrypted (by default an authenticated receiver requires encryption, since
 * unencrypted records are checksummed but not authenticated). */
#define VMS_NET_F_ALLOW_PLAINTEXT 0x2u

/* Network addresses, as vms_writer_connect() and vms_listen() take them:
 *   "HOST:PORT"    a host name or IPv4 literal of 1..VMS_ADDR_HOST_MAX bytes
 *   "[IPV6]:PORT"  an IPv6 literal, which needs the brackets
 *   "PORT"         with VMS_ADDR_LISTEN only: every local address
 * PORT is decimal digits and nothing else (no sign, space or suffix; leading
 * zeros are fine): 1..65535, or 0..65535 with VMS_ADDR_LISTEN (0 = an
 * ephemeral port).
 *
 * vms_addr_parse() checks addr and, where wanted (non-NULL), returns the host
 * without brackets ("" for "PORT" alone) in host, which has host_cap bytes,
 * at least VMS_ADDR_HOST_MAX + 1, and the port in *port. Returns 0 or
 * VMS_EINVAL. The message quotes addr and says what is wrong ("'h:0': port
 * '0' is out of range (1 to 65535)"), so a caller can put its own context
 * in front (the tools print "--to 'h:0': port ..."). Thread-safe. */
#define VMS_ADDR_HOST_MAX 255
#define VMS_ADDR_LISTEN 0x1u  /* a listener's address: "PORT" alone, port 0 */
VMS_API int vms_addr_parse(const char *addr, uint32_t flags, char *host, size_t host_cap,
			   uint16_t *port);
/* Does addr (parsed as above) name loopback only? Its host is resolved with
 * getaddrinfo() (this may wait for DNS). 1 = every address it resolves to is
 * loopback (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104); 0 = some address is
 * not, the host does not resolve, or "PORT" alone (every address); or
 * VMS_EINVAL from vms_addr_parse(). It is the test vms_writer_connect()
 * applies to the peer it reached and vms_listen() to the address it bound,
 * for a caller that wants to know before (to warn about an insecure
 * session, say). Thread-safe. */
VMS_API int vms_addr_is_loopback(const char *addr, uint32_t flags);

/* Connect to "HOST:PORT" ("[v6addr]:PORT" for IPv6 literals; addresses as
 * vms_addr_parse() without flags), authenticate every lane and start the
 * stream. opts->cipher must be set when the session is authenticated and
 * encryption is wanted (vms_cipher_preferred()); opts->key must be NULL (keys
 * come from the session). */
VMS_API int vms_writer_connect(struct vms_writer **out, const char *addr,
			       const struct vms_net_opts *net,
			       const struct vms_writer_opts *opts);

struct vms_listener;

/* Listen on "[HOST:]PORT" (port 0 = ephemeral; vms_listener_port tells);
 * addresses as vms_addr_parse() with VMS_ADDR_LISTEN. */
VMS_API int vms_listen(struct vms_listener **out, const char *addr,
		       const struct vms_net_opts *net);
VMS_API int vms_listener_port(const struct vms_listener *l);
/* Accept one session: all of its lanes, authenticated; returns a reader
 * positioned after the preamble. Waits up to timeout_ms (-1 = forever) for
 * the first connection; the other lanes of the session must follow within
 * connect_timeout_ms. A connection that fails authentication or negotiation
 * is refused (the peer gets the reason) and reported as the error. */
VMS_API int vms_accept(struct vms_listener *l, struct vms_reader **out,
		       const struct vms_reader_opts *opts, int timeout_ms);
VMS_API void vms_listener_free(struct vms_listener *l);

/* Receiver: tell the sender the outcome. status 0 = the stream verified and
 * its data was stored (call it after your own commit, e.g. fsync+rename or
 * device load); a negative enum vms_err = refused, with a short reason. Only
 * valid once; a reader freed without it sends a refusal carrying its error
 * (or VMS_ECANCELED). No-op (returns 0) on file/pipe readers. */
VMS_API int vms_reader_ack(struct vms_reader *r, int status, const char *text);

/* Which I/O engine a writer/reader uses: "io_uring", "posix" or "fd". */
VMS_API const char *vms_writer_engine(const struct vms_writer *w);
VMS_API const char *vms_reader_engine(const struct vms_reader *r);
/* Peer description for logs ("psk:vmstream", certificate subject, or
 * "insecure"). "" for file streams. */
VMS_API const char *vms_reader_peer(const struct vms_reader *r);
VMS_API const char *vms_writer_peer(const struct vms_writer *w);

/* ------------------------------------------------------------------------ */
/* Devices: sources and sinks of migration state (docs/DESIGN-NOTES.md).    */
/*
 * Every device follows the kernel's VFIO migration model: a state machine
 * (states below, same numbers as VFIO), opaque bytes read in PRE_COPY and
 * STOP_COPY, written in RESUMING, validated on RESUMING -> STOP. Backends:
 * VFIO v2 (device fd), the legacy v1 migration region, a simulated device
 * with data_fd semantics, memory and files; or your own through
 * struct vms_device_ops. Not thread-safe per device; different devices may
 * be used from different threads.
 */
enum vms_dev_state {
	VMS_DEV_ERROR = 0,
	VMS_DEV_STOP = 1,
	VMS_DEV_RUNNING = 2,
	VMS_DEV_STOP_COPY = 3,
	VMS_DEV_RESUMING = 4,
	VMS_DEV_RUNNING_P2P = 5,
	VMS_DEV_PRE_COPY = 6,
	VMS_DEV_PRE_COPY_P2P = 7,
};

#define VMS_DEVCAP_STOP_COPY 0x1u /* VFIO_MIGRATION_STOP_COPY */
#define VMS_DEVCAP_P2P 0x2u       /* VFIO_MIGRATION_P2P */
#define VMS_DEVCAP_PRE_COPY 0x4u  /* VFIO_MIGRATION_PRE_COPY */

struct vms_device;

/* For custom backends. Return 0 / byte counts, or a negative enum vms_err
 * (VMS_EDEVIO for a device failure). read() returns > 0 bytes, 0 at the end
 * of the state in STOP_COPY, or VMS_EAGAIN_DEV (= VMS_ENODATA) when PRE_COPY
 * has nothing right now. precopy_info() returns 0, or the VMS_PRECOPY_*
 * flags of this answer (VMS_PRECOPY_REINIT: new initial data, see
 * vms_device_precopy_info2()); unknown bits are dropped. set_state() is
 * only called along legal single arcs (the library walks multi-step paths
 * itself). */
#define VMS_EAGAIN_DEV VMS_ENODATA

struct vms_device_ops {
	uint32_t size;                 /* sizeof(struct vms_device_ops) */
	int (*caps)(void *impl, uint32_t *caps);
	int (*set_state)(void *impl, uint32_t state);
	int (*precopy_info)(void *impl, uint64_t *initial, uint64_t *dirty);
	int (*stop_copy_size)(void *impl, uint64_t *bytes); /* estimate */
	long (*read)(void *impl, void *buf, size_t len);
	long (*write)(void *impl, const void *buf, size_t len);
	int (*reset)(void *impl);
	void (*close)(void *impl);
};

/* Wrap a custom backend; ops is copied, impl is passed to every op and closed
 * (ops->close) by vms_device_free(). On failure impl stays the caller's. The
 * device starts in RUNNING. A custom backend cannot say where a failed
 * set_state() left it, so the device is then taken to be in ERROR (only
 * vms_device_reset() recovers it). caps NULL = VMS_DEVCAP_STOP_COPY. */
VMS_API int vms_device_new(struct vms_device **out, const char *name, uint32_t kind,
			   const struct vms_device_ops *ops, void *impl);
/* VFIO v2: a device fd from /dev/vfio/devices/vfioN (iommufd cdev) or
 * VFIO_GROUP_GET_DEVICE_FD. The fd stays the caller's. */
VMS_API int vms_device_open_vfio(struct vms_device **out, const char *name, int device_fd);
/* VFIO v1 (Linux 5.8-5.18): the migration region of device_fd at
 * region_offset (from VFIO_DEVICE_GET_REGION_INFO), region_size bytes. */
VMS_API int vms_device_open_vfio_v1(struct vms_device **out, const char *name, int device_fd,
				    uint64_t region_offset, uint64_t region_size);
/* Simulated device: "size=64M,profile=random|zeros|sparse|text|mixed,
 * dirty=8M,seed=N,precopy=0|1,p2p=0|1,fault=read|resume|slow|reinit,
 * fault_at=N,slow=RATE" (defaults size=1M,profile=mixed,dirty=0,seed=1,
 * precopy=1,p2p=1; sizes and rates take K/M/G/T binary suffixes; size >= 72
 * counts the image's own 72-byte header and trailer; fault=read fails the
 * fault_at-th read call (default 1), fault=slow paces reads to slow=
 * bytes/s (default 100M), fault=reinit makes the fault_at-th precopy info
 * call (default 1) stage the full image again and report it as new initial
 * data, VMS_PRECOPY_REINIT (needs precopy=1); unknown keys or bad values are
 * VMS_EINVAL). Its data session is a
 * real pipe (the device's side of the data_fd); one thread per device
 * writes what does not fit in the pipe at once. As a destination it validates the image it is given when
 * loading ends (RESUMING -> STOP), like real devices: the destination must
 * be opened with the source's size, profile and seed. */
VMS_API int vms_device_open_sim(struct vms_device **out, const char *name, const char *spec);
/* Memory (source: data/len, not copied, must outlive the device; sink: grows
 * up to cap bytes, more is VMS_EDEVIO) and files (source: read from fd until
 * EOF; sink: written at increasing offsets; the fd stays the caller's). Both
 * have capability STOP_COPY only. */
VMS_API int vms_device_open_mem(struct vms_device **out, const char *name, const void *data,
				size_t len, size_t cap);
VMS_API int vms_device_open_fd(struct vms_device **out, const char *name, int fd);
/* Content of a mem device (the source's buffer, or what was loaded into it)
 * and its length; NULL (and 0) for other devices. */
VMS_API const void *vms_device_mem(const struct vms_device *d, size_t *len);

VMS_API const char *vms_device_name(const struct vms_device *d);
VMS_API int vms_device_caps(struct vms_device *d, uint32_t *caps);
VMS_API int vms_device_state(const struct vms_device *d, uint32_t *state);
/* Move to `state` along the legal path (intermediate states as the kernel's
 * vfio_mig_get_next_state() chooses them). VMS_ESTATE if unreachable
 * (STOP_COPY -> PRE_COPY never is); VMS_EINVAL for ERROR; VMS_EDEVIO if the
 * device is in ERROR. If an arc fails, vms_device_state() tells where the
 * device is now (the message too); reset returns it to RUNNING. */
VMS_API int vms_device_set_state(struct vms_device *d, uint32_t state);
/* PRE_COPY/PRE_COPY_P2P only (else VMS_ESTATE): what the device still
 * has for precopy (VFIO_MIG_GET_PRECOPY_INFO): initial bytes (to be sent
 * before switchover is sensible) and dirty bytes (an estimate). Call it
 * between rounds: some devices only refill then. */
VMS_API int vms_device_precopy_info(struct vms_device *d, uint64_t *initial, uint64_t *dirty);

/* vms_device_precopy_info2() flags. REINIT: the device has new initial
 * data on its stream (Linux >= 7.1 VFIO_PRECOPY_INFO_REINIT, e.g. after it
 * was reconfigured during the migration). initial_bytes is then a new
 * count, irrespective of the earlier ones, and dirty_bytes restarts from 0
 * relative to it: the initial data must be sent again before switchover.
 * It is reported once, by the call that sees it. */
#define VMS_PRECOPY_REINIT 0x1u

struct vms_precopy_info {
	uint32_t size;          /* sizeof(struct vms_precopy_info), set by the caller */
	uint32_t flags;         /* out: VMS_PRECOPY_* */
	uint64_t initial_bytes; /* out */
	uint64_t dirty_bytes;   /* out */
};
#define VMS_PRECOPY_INFO_INIT { sizeof(struct vms_precopy_info), 0, 0, 0 }

/* vms_device_precopy_info() with the answer's flags. info->size below
 * sizeof(struct vms_precopy_info) is VMS_EINVAL (checked before the device
 * is asked, so no REINIT is lost to it). vms_device_precopy_info() drops
 * the flags. VFIO devices report REINIT only on Linux >= 7.1, where the
 * device is opted in to VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 when it is
 * opened; older kernels get the first precopy info and never report it. */
VMS_API int vms_device_precopy_info2(struct vms_device *d, struct vms_precopy_info *info);
VMS_API int vms_device_stop_copy_size(struct vms_device *d, uint64_t *bytes);
/* In PRE_COPY/PRE_COPY_P2P/STOP_COPY (else VMS_ESTATE): > 0 bytes; 0 = end of
 * the state (STOP_COPY, and every call after); VMS_EAGAIN_DEV = nothing now
 * (PRE_COPY; call vms_device_precopy_info() between rounds). A failure is
 * sticky for the data session: every data call repeats it until the device
 * leaves the saving states (the abort path, e.g. back to RUNNING) or is
 * reset. */
VMS_API long vms_device_read(struct vms_device *d, void *buf, size_t len);
/* RESUMING only: writes all len bytes (finishing short writes) and returns
 * len, or fails; a failure is sticky and only vms_device_reset() aborts
 * RESUMING. */
VMS_API long vms_device_write(struct vms_device *d, const void *buf, size_t len);
VMS_API int vms_device_reset(struct vms_device *d);
VMS_API void vms_device_free(struct vms_device *d);

/* The next state on the way from cur to target for a device with caps, as
 * the kernel computes it (VFIO_DEVICE_STATE_ERROR if there is no path).
 * Pure; exposed for VMMs and tests. */
VMS_API uint32_t vms_mig_next_state(uint32_t caps, uint32_t cur, uint32_t target);
/* "RUNNING", ...; NULL for an unknown state. */
VMS_API const char *vms_dev_state_name(uint32_t state);

/* ------------------------------------------------------------------------ */
/* Migration orchestration for a VMM (precopy rounds, switchover, stop-copy). */

struct vms_round_info {
	uint32_t size;              /* sizeof(struct vms_round_info) */
	uint32_t round;             /* 1, 2, ... */
	uint64_t round_bytes;       /* device bytes sent in this round */
	uint64_t remaining_bytes;   /* precopy bytes the devices still report
				       (initial + dirty) */
	uint64_t stop_copy_bytes;   /* devices' estimate of stop-copy state */
	double round_seconds;
	double throughput;          /* bytes/s of the stream so far */
	double est_downtime_ms;     /* stop_copy_bytes / throughput + per-device
				       overhead: the estimated downtime if the
				       VMM switched over now */
	uint64_t initial_bytes;     /* initial precopy bytes still to send: a
				       device's count until it first reaches 0,
				       and again from its VMS_PRECOPY_REINIT on
				       (its initial data must then be sent again);
				       switchover is sensible at 0 */
	uint32_t reinits;           /* devices that reported VMS_PRECOPY_REINIT
				       in this round */
};

/* After each precopy round: return 1 to switch over now, 0 for another
 * round, or a negative enum vms_err to cancel the migration. Without it the
 * rule is: switch over once initial_bytes is 0 and est_downtime_ms is
 * within downtime_limit_ms (or after max_rounds, in any case). */
typedef int (*vms_round_fn)(void *user, const struct vms_round_info *ri);
/* VMM hooks: stop the vCPUs (switchover), resume them (a failure after the
 * switchover: the source VM runs on). Return 0 or a negative error. */
typedef int (*vms_vm_fn)(void *user);

/* Every field is checked when vms_migrate_send/recv take the struct in,
 * before anything is sent or any device changes state: a value outside its
 * range is VMS_EINVAL. A field at 0 takes the default given. */
struct vms_migrate_opts {
	uint32_t size;              /* sizeof(struct vms_migrate_opts) */
	uint32_t max_rounds;        /* precopy rounds at most, up to
				       VMS_ROUNDS_MAX; 0 = 30 */
	double downtime_limit_ms;   /* without on_round: switch over once the
				       estimate is below this; up to
				       VMS_TIMEOUT_MAX_MS, 0 = 300; negative,
				       NaN and infinite values are VMS_EINVAL */
	vms_round_fn on_round;
	vms_vm_fn stop_vm;
	vms_vm_fn resume_vm;
	void *user;
	uint32_t threads;           /* devices read concurrently in stop-copy,
				       up to VMS_THREADS_MAX (clamped to the
				       number of devices: one thread per
				       device at most); 0 or VMS_THREADS_AUTO
				       = min(devices, 4) */
	uint32_t flags;             /* VMS_MIGRATE_F_*; other bits are
				       VMS_EINVAL */
};
#define VMS_MIGRATE_OPTS_INIT                                                 \
	{ sizeof(struct vms_migrate_opts), 0, 0.0, NULL, NULL, NULL, NULL, 0,  \
	  0 }
/* Skip precopy even for devices that support it. */
#define VMS_MIGRATE_F_NO_PRECOPY 0x1u

struct vms_migrate_dev_report {
	uint64_t precopy_bytes;     /* sent (source) / loaded (destination) */
	uint64_t stopcopy_bytes;
	uint64_t est_stop_copy_bytes; /* the device's estimate at switchover */
	double downtime_ms;         /* source: from stop_vm until this device's
				       state was completely in the stream */
	int32_t result;             /* 0, or the device's error */
};

/* Checked like the options: size must be sizeof(struct
 * vms_migrate_report), devs_cap at most VMS_DEVICES_MAX and non-zero only
 * with devs (devs with devs_cap 0 gets no entries); else VMS_EINVAL. */
struct vms_migrate_report {
	uint32_t size;              /* sizeof(struct vms_migrate_report) */
	uint32_t rounds;
	double est_downtime_ms;     /* the estimate when switching over */
	double downtime_ms;         /* source: stop_vm until the destination
				       acknowledged every device loaded */
	double total_seconds;
	uint32_t ndev;              /* entries filled in devs (<= capacity) */
	uint32_t devs_cap;          /* capacity of devs, set by the caller */
	struct vms_migrate_dev_report *devs; /* caller's array, or NULL */
};

/* Source: migrate n devices over an open writer: DEVICE_BEGIN for each,
 * precopy rounds while the VM runs, switchover (stop_vm), every device's
 * stop-copy state read concurrently, EOS, and the destination's
 * acknowledgement. Returns 0 only once the destination acknowledged every
 * device loaded; the source may then be released. On failure the stream is
 * aborted, source devices go back to RUNNING and resume_vm is called (if the
 * VM was stopped); the error names the device. The writer is finished (or
 * aborted) on return, except after bad arguments: VMS_EINVAL for the
 * options or report (see above), more than VMS_DEVICES_MAX devices, a NULL
 * device or array, or a device given twice, is returned before anything is
 * written, with the writer and every device as they were. */
VMS_API int vms_migrate_send(struct vms_writer *w, struct vms_device *const *devs, unsigned n,
			     const struct vms_migrate_opts *opts,
			     struct vms_migrate_report *report);

/* Destination: load the stream's devices into devs (all by name if the
 * first stream device's name is one of devs', else all by position; a
 * partial match is VMS_EDEVICE naming both devices), each in offset order, moving it to STOP (which validates the
 * image) only after its DEVICE_END verified; then acknowledge every device's
 * result to the sender. On failure every device that was being loaded is
 * reset and the sender gets the error. Bad arguments (as for
 * vms_migrate_send) are VMS_EINVAL before anything is read. */
VMS_API int vms_migrate_recv(struct vms_reader *r, struct vms_device *const *devs, unsigned n,
			     const struct vms_migrate_opts *opts,
			     struct vms_migrate_report *report);

/* Name of a record type ("DATA"), or NULL if unknown. */
VMS_API const char *vms_rec_type_name(uint32_t type);

#ifdef __cplusplus
}
#endif

#endif /* VMSTREAM_H */
