/* SPDX-License-Identifier: MIT */
/*
 * The writer unit's shared state and failure helpers. The pieces:
 *   writer_base.c  failures, lent memory, job release (used by all below)
 *   writer_work.c  a worker: the stages on one record
 *   writer_out.c   the output: records in sequence order to the engine, the
 *                  rate limit, the auto level, the acknowledgement
 *   writer.c       the public calls: setup, producers, finish
 * Arrows point down this list only.
 */
#ifndef VMS_STREAM_WRITER_INTERNAL_H
#define VMS_STREAM_WRITER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <xxhash.h>
#include "base/limits.h"
#include "crypto/keys.h"
#include "format/ack.h"
#include "format/format.h"
#include "io/engine.h"
#include "io/pace.h"
#include "pipeline/ring.h"
#include "stream/internal.h"

/* auto: the counters at the start of the current measuring window */
struct vms_tune_win {
	uint64_t t0, write, starve, prod;
};

#define JOB_MSG 200
#define PROBE_PART 2048
#define PROBE_MIN_CHUNK (64u << 10)
/* devices that may each keep a partly filled chunk (interleaved writers) */
#define PENDING_DEVICES 4

struct wdev {
	uint64_t bytes;
	struct vms_digest *dg;
	uint64_t digest;     /* final, once ended */
	struct wjob *cur;    /* chunk being filled, or NULL */
	uint64_t stamp;      /* last acquire, for limit_pending_locked() */
	bool acquired;       /* the caller holds cur's buffer */
	bool ended;
};

/* Caller memory lent with vms_writer_write_ref(): done once no job reads it. */
struct wref {
	atomic_uint n;
	void (*done)(void *user);
	void *user;
};

struct wjob {
	uint8_t type;
	uint32_t device;
	uint64_t seq;
	uint64_t offset;
	uint16_t lane, epoch;
	uint32_t len;        /* raw length (DATA) or body length (control) */
	uint8_t *raw;        /* chunk_cap + VMS_AEAD_OVERHEAD bytes */
	uint8_t *out;        /* codec output (bound + overhead) or NULL */
	XXH3_state_t *hs;    /* DATA: XXH3 of the bytes committed so far */
	const uint8_t *ext;  /* DATA from vms_writer_write_ref(): bytes in place of raw */
	struct wref *ref;    /* ... and the loan they belong to */
	uint8_t hdr[VMS_HDR_LEN];
	const uint8_t *payload;
	uint32_t wire_len;
	bool zero, stored;
	bool written;        /* emitter: the engine finished writing it */
	int err;
	char msg[JOB_MSG];
};

#define ACK_TAG ((void *)1)
/* Room for a refusal (no device entries); an acknowledgement of n devices
 * grows the buffer to exactly its size when its header arrives. */
#define ACK_BUF_MIN (VMS_ACK_FRAME_HDR + VMS_ACK_BODY_FIXED + VMS_ACK_TEXT_MAX + VMS_ACK_TRAILER_MAX)
#define ENGINE_DEPTH 64
#define DONE_BATCH 32

struct wworker {
	struct vms_writer *w;
	void *codec_ctx;
	int codec_level;
	struct vms_lane_key key;
};

struct vms_writer {
	struct vms_transport t;
	struct vms_engine *eng;
	struct vms_writer_opts o;
	struct vms_preamble pre;
	uint8_t key[VMS_KEY_LEN];
	struct vms_keysched ks[VMS_LANES_MAX];
	const struct vms_stage *codec;
	const struct vms_stage *cipher;
	bool adaptive;
	atomic_int level;           /* codec level workers should use */
	bool zero_elision;

	/* producer side */
	uint64_t seq;
	uint16_t epoch;
	uint64_t epoch_bytes, epoch_records;
	uint64_t epoch_bytes_limit;
	pthread_mutex_t prod_mu;    /* seq order, device table, pending chunks */
	uint64_t stamp;
	unsigned max_pending;       /* devices that may hold a partial chunk */
	struct wdev **devs;
	uint32_t ndev, capdev;
	uint64_t raw_total;
	bool finished;
	bool ack_in_emitter;        /* finish: the output thread waits for the ACK */
	int64_t out_start;          /* a regular output file's offset at open, or -1 */

	/* pipeline */
	struct vms_ring ring;
	struct wjob *jobs;
	void **jobptrs;
	struct wworker *workers;
	void **wctx;
	unsigned nthreads, nslots;
	unsigned nworkers;          /* ring workers: 0 when nothing but a checksum */
	XXH3_state_t *hstates;      /* one per job, 64-byte aligned */
	uint8_t *arena;
	size_t arena_len;
	pthread_t emitter;
	bool emitter_started;

	/* emitter side */
	unsigned writes_in_flight;
	uint64_t last_progress_ns;
	struct vms_pace pace;       /* rate limit (wire bytes) */
	struct vms_tune_win tune;   /* auto: the current measuring window */
	bool ack_watch;             /* a receive on lane 0 is queued */
	bool ack_eof;
	uint8_t *ackbuf;
	size_t ackcap;
	size_t ack_len;
	bool acked;
	struct vms_ack ack;

	/* read by others under stats_mu */
	pthread_mutex_t stats_mu;
	struct vms_stats st;
	uint64_t t0_ns;
	uint64_t emit_write_ns;

	_Atomic int err;            /* sticky; msg written before err is set */
	char msg[VMS_MSG_MAX];
};

/* writer_base.c */
int vms_wr_set_err(struct vms_writer *w, int code, const char *msg);
int vms_wr_fail(struct vms_writer *w, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int vms_wr_check(struct vms_writer *w);
void vms_wr_ref_put(struct wref *ref);
void vms_wr_job_drop_ref(struct wjob *j);
void vms_wr_job_release(struct vms_writer *w, struct wjob *j);
/* A failed write as the error a user can act on. */
int vms_wr_write_err(const struct vms_writer *w, long res);
/* A fatal error on a session: make the kernel finish every pending
 * operation now (they fail) so that buffers can be reclaimed. */
void vms_wr_shutdown_lanes(struct vms_writer *w);

/* writer_work.c: the vms_ring worker function */
int vms_wr_work(void *wctx, void *jp);

/* writer_out.c */
void *vms_wr_emitter_main(void *p);
int vms_wr_emit_inline(struct vms_writer *w, struct wjob *j);
void vms_wr_ack_watch(struct vms_writer *w);
void vms_wr_ack_wait(struct vms_writer *w);

#endif
