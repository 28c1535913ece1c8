/* SPDX-License-Identifier: MIT */
/*
 * The reader unit's shared state and failure helpers. The pieces:
 *   reader_base.c     failures (located at record and byte), I/O error codes
 *   reader_input.c    input: lanes, framing, the header rules (FORMAT.md 4.2
 *                     up to the payload), trailing bytes
 *   reader_verify.c   a worker: authenticate, decode, checksum one record
 *   reader_deliver.c  delivery: the payload rules, in order, to events
 *   reader_ack.c      the receiver's answer: acknowledgement or refusal
 *   reader.c          the public calls: setup, next, ack, free
 * Arrows point down this list only.
 */
#ifndef VMS_STREAM_READER_INTERNAL_H
#define VMS_STREAM_READER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "base/limits.h"
#include "crypto/keys.h"
#include "format/format.h"
#include "io/engine.h"
#include "io/fdio.h"
#include "pipeline/ring.h"
#include "stream/internal.h"

#define READER_INBUF (64u << 10)
#define JOB_MSG 240

struct rdev {            /* delivery side: payload-level state */
	uint64_t bytes;
	struct vms_digest *dg;
	uint64_t digest;     /* verified, once ended */
	bool ended;
};

struct idev {            /* input side: header-level state */
	uint64_t bytes;
	struct vms_digest *dg; /* direct mode: the device digest */
	bool ended;
};

struct rjob {
	struct vms_rec_hdr h;
	uint8_t hdr[VMS_HDR_LEN];
	uint16_t lane;       /* connection it arrived on */
	uint64_t pos;        /* byte offset in that lane's stream */
	uint32_t body_len;
	uint8_t *wire;       /* chunk_cap + VMS_AEAD_OVERHEAD */
	uint8_t *raw;        /* chunk_cap, when the stream declares codecs */
	const uint8_t *data; /* verified decoded bytes */
	uint64_t end_digest; /* direct mode, DEVICE_END: digest of the device's bytes */
	bool trailing;       /* EOS: bytes follow it (reported after EOS verified) */
	uint64_t trail_pos;
	int err;
	char msg[JOB_MSG];
};

struct rworker {
	struct vms_reader *r;
	void *codec_ctx[VMS_MAX_CODECS];
	struct vms_lane_key key;
};

enum rstate { R_OPEN, R_EOS_SEEN, R_DONE };

struct lane_in {
	struct vms_in in;
	bool pending;        /* a verified header waits in hdr */
	uint8_t hdr[VMS_HDR_LEN];
	struct vms_rec_hdr h;
	uint64_t pos;
};

struct vms_reader {
	struct vms_transport t;
	struct vms_engine *eng;
	int cancel_fd;       /* eventfd: wakes the input thread for good */
	struct lane_in lanes[VMS_LANES_MAX];
	struct vms_in *in;   /* lanes[0].in: the preamble's lane */
	struct vms_reader_opts o;
	struct vms_preamble pre;
	struct vms_keysched ks[VMS_LANES_MAX];
	bool ack_sent;
	char codec_list[VMS_MAX_CODECS * (VMS_CODEC_NAME_MAX + 6)];
	int32_t *dev_result;   /* per-device load result for the ACK (or NULL) */
	uint32_t dev_result_n;
	const struct vms_stage *cipher;
	const struct vms_stage *codecs[VMS_MAX_CODECS]; /* by preamble index */
	bool headers_only;
	bool direct;         /* no cipher, no codec: verify on the input thread */

	/* input side */
	uint64_t in_seq;
	uint16_t in_epoch;
	struct idev *idevs;
	uint32_t nidev, capidev;
	bool in_stopped;

	/* pipeline */
	struct vms_ring ring;
	struct rjob *jobs;
	void **jobptrs;
	struct rworker *workers;
	void **wctx;
	unsigned nthreads, nslots;
	uint8_t *arena;
	size_t arena_len;
	pthread_t input;
	bool input_started;
	bool holding;        /* caller holds the oldest job (its event data) */

	/* delivery side */
	struct rdev *devs;
	uint32_t ndev, capdev;
	uint64_t raw_total;
	enum rstate state;
	bool aborted;
	int32_t abort_code;
	uint64_t abort_seq, abort_pos; /* the ABORT record: reported with its location */
	char name[VMS_NAME_MAX + 1];
	char abort_text[VMS_ABORT_TEXT_MAX + 1];

	pthread_mutex_t stats_mu;
	struct vms_stats st;
	uint64_t t0_ns;
	int err;             /* sticky (delivery side) */
	char msg[VMS_MSG_MAX];
};

/* reader_base.c */
int vms_rd_fail(struct vms_reader *r, int code, uint64_t seq, uint64_t pos, const char *why);
int vms_rd_jfail(struct rjob *j, int code, uint64_t seq, const char *why);
int vms_rd_io_code(long res);
const char *vms_rd_io_why(long res, char *buf, size_t cap);

/* reader_input.c */
int vms_rd_input_record(struct vms_reader *r, struct rjob *j);
void *vms_rd_input_main(void *p);

/* reader_verify.c: the vms_ring worker function */
int vms_rd_work(void *wctx, void *jp);

/* reader_deliver.c */
int vms_rd_deliver(struct vms_reader *r, const struct rjob *j, struct vms_event *ev);

/* reader_ack.c */
int vms_rd_send_ack(struct vms_reader *r, int status, const char *text);
int vms_rd_refuse(struct vms_reader *r, int status, const char *text);

#endif
