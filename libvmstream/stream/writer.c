/* SPDX-License-Identifier: MIT */
/*
 * Stream writer. The caller's thread fills chunks and assigns sequence
 * numbers; worker threads apply the stages (zero elision, codec, AEAD) to
 * whole chunks in parallel; one emitter thread writes finished records in
 * sequence order. All buffers are allocated once, pre-faulted, and reused;
 * the number of chunk slots is fixed by the memory budget (backpressure).
 * With threads == 0 everything runs on the caller's thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include "base/clock.h"
#include "base/alloc.h"
#include "base/error.h"
#include "io/fdio.h"
#include "stream/internal.h"
#include "crypto/keys.h"
#include "format/ack.h"
#include "format/cursor.h"
#include "format/format.h"
#include "base/hash.h"
#include "io/engine.h"
#include "pipeline/ring.h"
#include "stage/stage.h"

#define JOB_MSG 200
/* Adaptive level range for "auto" and the measuring window. */
#define AUTO_LEVEL_MIN (-7)
#define AUTO_LEVEL_MAX 9
/* "auto" below its lowest level: store chunks raw (the compressors were the
 * bottleneck even at -7); left again as soon as the output is the limit. */
#define AUTO_LEVEL_OFF VMS_LEVEL_RAW
#define AUTO_WINDOW_NS 20000000ull /* 20 ms */
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
#define ACK_BUF (VMS_ACK_FRAME_HDR + 64 * 1024)
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
	uint64_t rate_t0_ns, rate_bytes;
	bool ack_watch;             /* a receive on lane 0 is queued */
	bool ack_eof;
	uint8_t *ackbuf;
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

/* ---- errors ------------------------------------------------------------ */

static int set_err(struct vms_writer *w, int code, const char *msg)
{
	int zero = 0;

	/* First error wins; its message is published before the code. */
	if (atomic_load(&w->err) == 0) {
		snprintf(w->msg, sizeof(w->msg), "%s", msg);
		atomic_compare_exchange_strong(&w->err, &zero, code);
	}
	return vms_fail_msg(atomic_load(&w->err), w->msg);
}

static int wfail(struct vms_writer *w, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int wfail(struct vms_writer *w, int code, const char *fmt, ...)
{
	char buf[VMS_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return set_err(w, code, buf);
}

static int wcheck(struct vms_writer *w)
{
	int err = atomic_load(&w->err);

	return err ? vms_fail_msg(err, w->msg) : 0;
}

/* ---- lent memory ------------------------------------------------------- */

static void ref_put(struct wref *ref)
{
	if (ref && atomic_fetch_sub(&ref->n, 1) == 1) {
		ref->done(ref->user);
		free(ref);
	}
}

/* A job leaves the pipeline (written, abandoned or never submitted). */
static void job_drop_ref(struct wjob *j)
{
	struct wref *ref = j->ref;

	j->ref = NULL;
	j->ext = NULL;
	ref_put(ref);
}

/* The oldest job goes back to the free list (written, or dropped after a
 * failure), ending its share of any loan. */
static void job_release(struct vms_writer *w, struct wjob *j)
{
	job_drop_ref(j);
	vms_ring_release(&w->ring);
}

/* ---- worker: stages on one record ------------------------------------- */

static int job_fail(struct wjob *j, int code, const char *what)
{
	j->err = code;
	snprintf(j->msg, sizeof(j->msg), "record %llu: %s", (unsigned long long)j->seq, what);
	return code;
}

static int worker_key(struct wworker *k, uint16_t lane, uint16_t epoch)
{
	struct vms_writer *w = k->w;

	return vms_lane_key_use(&k->key, w->cipher, &w->ks[lane], lane, epoch, w->pre.chunk_cap);
}

/* Does this chunk look compressible? Compress four 2 KiB samples (start,
 * quarter, half, three quarters) and require a 1/32 gain. Decided from the
 * chunk alone, so the stream does not depend on which worker ran it; costs
 * under 1% of compressing a 1 MiB chunk that turns out incompressible. */
static bool worth_compressing(struct wworker *k, const struct wjob *j)
{
	struct vms_writer *w = k->w;
	uint8_t sample[4 * PROBE_PART];
	struct vms_stage_io io = { 0 };

	if (j->len < PROBE_MIN_CHUNK)
		return true;
	for (unsigned i = 0; i < 4; i++)
		memcpy(sample + i * PROBE_PART, j->raw + (size_t)j->len / 4 * i, PROBE_PART);
	io.src = sample;
	io.src_len = sizeof(sample);
	io.dst = j->out;
	io.dst_cap = w->codec->bound(sizeof(sample));
	return w->codec->apply(k->codec_ctx, &io) == VMS_STAGE_DONE;
}

static int worker_compress(struct wworker *k, struct wjob *j, const uint8_t **body,
			   uint32_t *body_len, uint8_t *codec)
{
	struct vms_writer *w = k->w;
	struct vms_stage_io io = { 0 };
	int level = atomic_load_explicit(&w->level, memory_order_relaxed);
	int r;

	if (level == AUTO_LEVEL_OFF)
		return 0; /* stored raw */
	if (level != k->codec_level && w->codec->set_level) {
		if (w->codec->set_level(k->codec_ctx, level) == 0)
			k->codec_level = level;
	}
	if (!worth_compressing(k, j))
		return 0;
	io.src = j->raw;
	io.src_len = j->len;
	io.dst = j->out;
	io.dst_cap = w->codec->bound(w->pre.chunk_cap);
	r = w->codec->apply(k->codec_ctx, &io);
	if (r < 0)
		return job_fail(j, r, "codec failed");
	if (r == VMS_STAGE_DONE && io.dst_len > 0 && io.dst_len < j->len) {
		*body = j->out;
		*body_len = (uint32_t)io.dst_len;
		*codec = (uint8_t)w->codec->id;
	}
	return 0;
}

static int writer_work(void *wctx, void *jp)
{
	struct wworker *k = wctx;
	struct vms_writer *w = k->w;
	struct wjob *j = jp;
	struct vms_rec_hdr h = { 0 };
	const uint8_t *body = j->ext ? j->ext : j->raw; /* ext: no codec, no cipher */
	uint32_t body_len = j->len;
	uint8_t codec = 0;
	uint64_t sum = 0;
	int err;

	j->err = 0;
	j->zero = j->stored = false;
	h.type = j->type;
	if (j->type == VMS_REC_DATA) {
		if (w->zero_elision && vms_all_zero(body, j->len)) {
			h.type = VMS_REC_ZERO;
			j->zero = true;
			body_len = 0;
		} else {
			/* hashed at commit, while the bytes were in cache */
			sum = XXH3_64bits_digest(j->hs);
			if (w->codec) {
				err = worker_compress(k, j, &body, &body_len, &codec);
				if (err)
					return err;
			}
			j->stored = codec == 0;
		}
	} else {
		sum = vms_xxh3(j->raw, j->len);
	}
	h.codec = codec;
	h.device = j->device;
	h.seq = j->seq;
	h.offset = j->offset;
	h.raw_len = j->len;
	h.lane = j->lane;
	h.epoch = j->epoch;
	if (w->cipher) {
		struct vms_stage_io io = { 0 };
		uint8_t nonce[VMS_NONCE_LEN];
		uint8_t *pt = (uint8_t *)body;

		h.flags = VMS_RFLAG_ENCRYPTED;
		h.wire_len = body_len + VMS_AEAD_OVERHEAD;
		vms_hdr_encode(&h, j->hdr);
		err = worker_key(k, j->lane, j->epoch);
		if (err)
			return job_fail(j, err, "cannot set up the record key");
		/* plaintext = body || u64 sum, sealed in place (the buffers have
		 * VMS_AEAD_OVERHEAD bytes of room after the body). */
		vms_put_u64(pt + body_len, sum);
		vms_nonce(nonce, j->lane, j->epoch, j->seq);
		io.src = pt;
		io.src_len = (size_t)body_len + 8;
		io.dst = pt;
		io.dst_cap = (size_t)body_len + VMS_AEAD_OVERHEAD;
		io.aad = j->hdr;
		io.aad_len = VMS_HDR_LEN;
		io.nonce = nonce;
		err = w->cipher->apply(k->key.ctx, &io);
		if (err < 0)
			return job_fail(j, err, "encryption failed");
		body_len = (uint32_t)io.dst_len;
	} else {
		h.payload_sum = sum;
		h.wire_len = body_len;
		vms_hdr_encode(&h, j->hdr);
	}
	j->payload = body;
	j->wire_len = body_len;
	return 0;
}

/* ---- emitter: in-order output ----------------------------------------- */

static void tune_level(struct vms_writer *w, uint64_t *win_t0, uint64_t *win_write,
		       uint64_t *win_starve, uint64_t *win_prod)
{
	uint64_t now = vms_now_ns(), span = now - *win_t0;
	uint64_t write_ns = w->emit_write_ns - *win_write;
	uint64_t starve_ns, prod_ns;
	int level;

	if (span < AUTO_WINDOW_NS)
		return;
	pthread_mutex_lock(&w->ring.mu);
	starve_ns = w->ring.consumer_wait_ns - *win_starve;
	prod_ns = w->ring.producer_wait_ns - *win_prod;
	*win_starve = w->ring.consumer_wait_ns;
	*win_prod = w->ring.producer_wait_ns;
	pthread_mutex_unlock(&w->ring.mu);
	*win_t0 = now;
	*win_write = w->emit_write_ns;

	/* The rule `zstd --adapt` follows: if the output waits for the
	 * compressors (emitter starved while the producer is blocked on full
	 * slots), compression is the bottleneck: go faster. If the output is
	 * the bottleneck (emitter busy writing, producer blocked), spend the
	 * idle CPU on a better ratio. */
	level = atomic_load(&w->level);
	if (starve_ns > span / 4 && prod_ns > span / 4) {
		/* never slower than sending raw: past the fastest level, stop
		 * compressing */
		int step = starve_ns > span / 2 ? 3 : 1; /* far from balance: hurry */

		if (level == AUTO_LEVEL_MIN || level == AUTO_LEVEL_OFF)
			level = AUTO_LEVEL_OFF;
		else if (level > 0 && level - step < 1)
			level = -1; /* zstd has no level 0 step: 0 means its default */
		else
			level = level - step < AUTO_LEVEL_MIN ? AUTO_LEVEL_MIN : level - step;
	} else if (write_ns > span * 3 / 4 && starve_ns < span / 20) {
		level = level == AUTO_LEVEL_OFF ? AUTO_LEVEL_MIN : level == -1 ? 1 : level + 1;
		if (level > AUTO_LEVEL_MAX)
			level = AUTO_LEVEL_MAX;
	}
	atomic_store(&w->level, level);
}

/* Map a failed write to the error a user can act on. */
static int write_err_code(const struct vms_writer *w, long res)
{
	if (w->t.session)
		return res == -ETIMEDOUT ? VMS_ETIMEOUT : VMS_ENET;
	return res == -EPIPE ? VMS_ESINK : VMS_EIO;
}

/* A fatal error on a session: make the kernel finish every pending
 * operation now (they fail) so that buffers can be reclaimed. */
static void shutdown_lanes(struct vms_writer *w)
{
	if (!w->t.session)
		return;
	for (unsigned l = 0; l < w->t.nlanes; l++)
		shutdown(w->t.fds[l], SHUT_RDWR);
}

/* Bytes from the receiver on lane 0: its acknowledgement, or a refusal
 * sent early. Complete frames are verified (AEAD or checksum). */
static void ack_input(struct vms_writer *w, long res)
{
	uint32_t body_len;
	size_t frame;
	const char *why;
	int err;

	w->ack_watch = false;
	if (res == -ECANCELED)
		return; /* io_uring cancels a thread's requests when it exits:
			   the output thread's watch is re-armed by the caller */
	if (res < 0) {
		if (!w->acked)
			wfail(w, res == -ETIMEDOUT ? VMS_ETIMEOUT : VMS_ENET,
			      "receiver connection failed: %s", strerror((int)-res));
		return;
	}
	if (res == 0) {
		w->ack_eof = true;
		if (!w->acked)
			wfail(w, VMS_ENET, "receiver closed the connection without acknowledging");
		return;
	}
	w->ack_len += (size_t)res;
	if (w->ack_len < VMS_ACK_FRAME_HDR)
		return;
	if ((uint32_t)vms_get_u64(w->ackbuf) != VMS_ACK_MAGIC) {
		wfail(w, VMS_EPROTO, "receiver sent something that is not an acknowledgement");
		return;
	}
	body_len = (uint32_t)(vms_get_u64(w->ackbuf) >> 32);
	frame = VMS_ACK_FRAME_HDR + (size_t)body_len + (w->t.keyed ? VMS_AEAD_TAG : 8);
	if (body_len > ACK_BUF - VMS_ACK_FRAME_HDR - VMS_AEAD_TAG - 8) {
		wfail(w, VMS_EPROTO, "acknowledgement too long (%u bytes)", body_len);
		return;
	}
	if (w->ack_len < frame)
		return;
	if (w->t.keyed) {
		/* the stream's cipher; AES-256-GCM when records are not encrypted */
		err = vms_ack_crypt(w->cipher ? w->cipher : &vms_stage_aes_gcm, w->pre.salt,
				    w->t.ikm_s2c[0], w->pre.stream_id, w->pre.sum, w->ackbuf, body_len,
				    false);
		if (err) {
			wfail(w, VMS_EAUTH, "acknowledgement failed authentication");
			return;
		}
	} else if (vms_xxh3(w->ackbuf, VMS_ACK_FRAME_HDR + body_len) !=
		   vms_get_u64(w->ackbuf + VMS_ACK_FRAME_HDR + body_len)) {
		wfail(w, VMS_EPROTO, "acknowledgement checksum mismatch");
		return;
	}
	err = vms_ack_decode_body(&w->ack, w->ackbuf + VMS_ACK_FRAME_HDR, body_len, &why);
	if (err) {
		wfail(w, err, "acknowledgement: %s", why);
		return;
	}
	w->acked = true;
	if (w->ack.status != 0) {
		wfail(w, VMS_EPEERABORT, "receiver refused the stream: %s (%s)", w->ack.text,
		      vms_errname(w->ack.status) ? vms_errname(w->ack.status) : "unknown error");
		return;
	}
	if (!w->finished)
		wfail(w, VMS_EPROTO, "receiver acknowledged before the end of the stream");
}

static void ack_watch(struct vms_writer *w)
{
	if (!w->t.session || w->ack_watch || w->ack_eof || w->acked ||
	    w->ack_len >= ACK_BUF)
		return;
	if (vms_engine_recv(w->eng, w->t.fds[0], w->ackbuf + w->ack_len, ACK_BUF - w->ack_len,
			    ACK_TAG) == 0)
		w->ack_watch = true;
}

static void handle_done(struct vms_writer *w, const struct vms_io_done *d)
{
	struct wjob *j;

	w->last_progress_ns = vms_now_ns();
	if (d->user == ACK_TAG) {
		ack_input(w, d->res);
		ack_watch(w);
		return;
	}
	j = d->user;
	w->writes_in_flight--;
	j->written = true;
	if (d->res < 0) {
		wfail(w, write_err_code(w, d->res), "record %llu: write failed (%s): %s",
		      (unsigned long long)j->seq, w->t.session ? "to the receiver" : "output",
		      strerror((int)-d->res));
		return;
	}
	pthread_mutex_lock(&w->stats_mu);
	w->st.wire_bytes += VMS_HDR_LEN + j->wire_len;
	w->st.records++;
	if (j->type == VMS_REC_DATA) {
		w->st.raw_bytes += j->len;
		if (j->zero)
			w->st.zero_records++;
		else
			w->st.data_records++;
		if (j->stored && !j->zero)
			w->st.stored_records++;
	}
	pthread_mutex_unlock(&w->stats_mu);
}

/* Wait for engine completions; 0, or an error already recorded. */
static int reap(struct vms_writer *w, int timeout_ms)
{
	struct vms_io_done done[DONE_BATCH];
	int n = vms_engine_wait(w->eng, done, DONE_BATCH, timeout_ms);

	if (n < 0)
		return wfail(w, n, "I/O engine: %s", vms_last_error());
	for (int i = 0; i < n; i++)
		handle_done(w, &done[i]);
	if (n == 0 && w->t.idle_timeout_ms >= 0 &&
	    vms_now_ns() - w->last_progress_ns > (uint64_t)w->t.idle_timeout_ms * 1000000u)
		return wfail(w, VMS_ETIMEOUT, "no progress for %d ms (receiver stalled or network down)",
			     w->t.idle_timeout_ms);
	return 0;
}

static void release_written(struct vms_writer *w)
{
	struct wjob *j;

	while ((j = vms_ring_peek_index(&w->ring, vms_ring_tail(&w->ring))) && j->written) {
		j->written = false;
		job_release(w, j);
	}
}

static void queue_job(struct vms_writer *w, struct wjob *j)
{
	struct iovec iov[2];
	int err;

	iov[0].iov_base = j->hdr;
	iov[0].iov_len = VMS_HDR_LEN;
	iov[1].iov_base = (void *)j->payload;
	iov[1].iov_len = j->wire_len;
	err = vms_engine_writev(w->eng, w->t.fds[j->lane], iov, j->wire_len ? 2 : 1, j);
	if (err) {
		wfail(w, err, "record %llu: cannot queue the write: %s", (unsigned long long)j->seq,
		      vms_last_error());
		j->written = true;
		return;
	}
	w->writes_in_flight++;
	w->rate_bytes += VMS_HDR_LEN + j->wire_len;
}

/* Rate limit: nanoseconds to wait before `bytes` more may go out. */
static uint64_t rate_delay(struct vms_writer *w, uint64_t bytes)
{
	uint64_t now, due;

	if (!w->t.rate_limit)
		return 0;
	now = vms_now_ns();
	if (!w->rate_t0_ns)
		w->rate_t0_ns = now;
	/* time at which rate_bytes + bytes are allowed to have been sent,
	 * with one chunk of burst */
	due = w->rate_t0_ns + (uint64_t)((double)(w->rate_bytes + bytes > w->pre.chunk_cap
						     ? w->rate_bytes + bytes - w->pre.chunk_cap : 0) *
					 1e9 / (double)w->t.rate_limit);
	return due > now ? due - now : 0;
}

/* After a failure: let in-flight operations finish (they fail fast once
 * the lanes are shut down) so no buffer is still in the kernel's hands. */
static void drain_inflight(struct vms_writer *w)
{
	shutdown_lanes(w);
	/* a stalled pipe or peer would never finish them: give up on them */
	if (w->writes_in_flight > 0 || w->ack_watch)
		vms_engine_cancel(w->eng);
	while (w->writes_in_flight > 0 || w->ack_watch) {
		struct vms_io_done done[DONE_BATCH];
		int n = vms_engine_wait(w->eng, done, DONE_BATCH, 1000);

		if (n < 0)
			break;
		for (int i = 0; i < n; i++) {
			if (done[i].user == ACK_TAG) {
				w->ack_watch = false;
			} else {
				w->writes_in_flight--;
				((struct wjob *)done[i].user)->written = true;
			}
		}
	}
}

/* Emitter after a failure: release every slot until the ring is closed, so
 * a producer blocked on a full ring wakes up and sees the error. */
static void emitter_drain_failed(struct vms_writer *w)
{
	struct wjob *j;

	drain_inflight(w);
	while ((j = vms_ring_wait_done(&w->ring)) != NULL) {
		j->written = false;
		job_release(w, j);
	}
}

/* Session end: half-close every lane (the receiver sees EOF after EOS),
 * then wait for the acknowledgement. Runs on the thread that armed the
 * receive for it: io_uring completes a request through its submitting
 * task, and one submitted by an exited thread only completes (cancelled)
 * through the kernel's delayed fallback, milliseconds later. */
static void ack_wait(struct vms_writer *w)
{
	w->last_progress_ns = vms_now_ns();
	for (unsigned l = 0; l < w->t.nlanes; l++)
		shutdown(w->t.fds[l], SHUT_WR);
	while (!w->acked && !atomic_load(&w->err)) {
		ack_watch(w);
		reap(w, 1000);
	}
	if (atomic_load(&w->err))
		drain_inflight(w);
}

static void *emitter_main(void *p)
{
	struct vms_writer *w = p;
	uint64_t win_t0 = vms_now_ns(), win_write = 0, win_starve = 0, win_prod = 0;
	uint64_t next = vms_ring_tail(&w->ring);

	w->last_progress_ns = vms_now_ns();
	for (;;) {
		uint64_t delay = 0;
		struct wjob *j;

		if (atomic_load(&w->err)) {
			emitter_drain_failed(w);
			break;
		}
		ack_watch(w);
		while (w->writes_in_flight < ENGINE_DEPTH &&
		       (j = vms_ring_peek_index(&w->ring, next)) != NULL) {
			if (j->err) {
				set_err(w, j->err, j->msg);
				break;
			}
			delay = rate_delay(w, VMS_HDR_LEN + j->wire_len);
			if (delay)
				break;
			queue_job(w, j);
			next++;
		}
		if (atomic_load(&w->err))
			continue;
		if (w->writes_in_flight == 0 && !delay) {
			uint64_t t0 = vms_now_ns();

			/* nothing on the wire: wait for the next record */
			if (!vms_ring_wait_index(&w->ring, next)) {
				/* closed and everything written */
				if (w->ack_in_emitter)
					ack_wait(w);
				break;
			}
			w->last_progress_ns += vms_now_ns() - t0;
			continue;
		}
		{
			uint64_t t0 = vms_now_ns();
			int tmo = delay ? (int)(delay / 1000000u) + 1 : 1000;

			reap(w, tmo);
			w->emit_write_ns += vms_now_ns() - t0;
		}
		release_written(w);
		if (w->adaptive)
			tune_level(w, &win_t0, &win_write, &win_starve, &win_prod);
	}
	return NULL;
}

/* Inline mode (no threads): write the record now on the caller's thread. */
static int emit_inline(struct vms_writer *w, struct wjob *j)
{
	uint64_t delay;

	if (j->err)
		return set_err(w, j->err, j->msg);
	while ((delay = rate_delay(w, VMS_HDR_LEN + j->wire_len)) != 0) {
		struct timespec ts = { (time_t)(delay / 1000000000u), (long)(delay % 1000000000u) };

		nanosleep(&ts, NULL);
	}
	ack_watch(w);
	queue_job(w, j);
	while (!j->written && !atomic_load(&w->err))
		reap(w, 1000);
	if (atomic_load(&w->err))
		drain_inflight(w);
	j->written = false;
	return wcheck(w);
}

/* ---- producer side ---------------------------------------------------- */

static void progress(struct vms_writer *w)
{
	struct vms_stats s;

	if (!w->o.progress)
		return;
	pthread_mutex_lock(&w->stats_mu);
	s = w->st;
	pthread_mutex_unlock(&w->stats_mu);
	s.seconds = (double)(vms_now_ns() - w->t0_ns) * 1e-9;
	s.level = atomic_load(&w->level);
	w->o.progress(w->o.progress_user, &s);
}

/* Assign sequence, lane and epoch in submission order and hand over.
 * Called with prod_mu held, so positions in the ring follow seq. */
static int job_submit_locked(struct vms_writer *w, struct wjob *j)
{
	uint64_t sealed = (uint64_t)j->len + 8;

	/* A fresh epoch takes its first record whatever its size: the stream's
	 * first record has epoch 0 (FORMAT.md record rule 8; only a test's
	 * epoch limit below one record could make it otherwise). */
	if (w->cipher && w->epoch_records > 0 &&
	    (w->epoch_bytes + sealed > w->epoch_bytes_limit ||
	     w->epoch_records + 1 > VMS_EPOCH_RECORDS)) {
		if (w->epoch == UINT16_MAX) {
			job_drop_ref(j);
			vms_ring_unacquire(&w->ring, j);
			return wfail(w, VMS_EKEY, "key epochs exhausted: end the stream and start a new one");
		}
		w->epoch++;
		w->epoch_bytes = 0;
		w->epoch_records = 0;
	}
	w->epoch_bytes += sealed;
	w->epoch_records++;
	j->seq = w->seq++;
	j->lane = (uint16_t)(j->seq % w->t.nlanes);
	j->epoch = w->epoch;
	vms_ring_submit(&w->ring, j);
	if (!w->emitter_started) {
		/* Inline mode: the job ran at submit; write it now. */
		struct wjob *d = vms_ring_wait_done(&w->ring);
		int err = 0;

		if (d && atomic_load(&w->err) == 0)
			err = emit_inline(w, d);
		if (d)
			job_release(w, d);
		if (err)
			return err;
	}
	return wcheck(w);
}

/* Submit a device's pending chunk (prod_mu held). An empty one goes back. */
static int flush_dev_locked(struct vms_writer *w, struct wdev *d)
{
	struct wjob *j = d->cur;

	if (!j)
		return 0;
	d->cur = NULL;
	if (j->len == 0) {
		/* nothing was committed: a record needs at least one byte */
		vms_ring_unacquire(&w->ring, j);
		return 0;
	}
	return job_submit_locked(w, j);
}

/* Flush every device's pending chunk (prod_mu held); a chunk acquired
 * right now by another thread makes this VMS_ESTATE. */
static int flush_all_locked(struct vms_writer *w)
{
	int err = 0;

	for (uint32_t i = 0; i < w->ndev && !err; i++) {
		if (w->devs[i]->acquired)
			return vms_fail(VMS_ESTATE, "device %u has a chunk buffer acquired", i);
		err = flush_dev_locked(w, w->devs[i]);
	}
	return err;
}

/* A job becomes device d's next DATA chunk, starting at its current end. */
static void data_job_init(struct wjob *j, uint32_t device, const struct wdev *d, uint32_t len)
{
	j->type = VMS_REC_DATA;
	j->device = device;
	j->offset = d->bytes;
	j->len = len;
	XXH3_64bits_reset(j->hs);
}

/* A free job (waits for one: jobs come back as records are written). */
static struct wjob *job_acquire(struct vms_writer *w)
{
	struct wjob *j = vms_ring_acquire(&w->ring);

	if (!j)
		wfail(w, VMS_ECANCELED, "writer stopped");
	else
		j->ext = NULL;
	return j;
}

/* Before device d takes a new chunk (prod_mu held): at most max_pending
 * devices keep a partial chunk; beyond that the least recently used idle
 * one is sent now. The rule depends only on the calls made, never on
 * timing, so the stream is the same with or without worker threads, and
 * open devices can never hold every job. */
static int limit_pending_locked(struct vms_writer *w, struct wdev *d)
{
	struct wdev *lru = NULL;
	unsigned pending = 0;

	for (uint32_t i = 0; i < w->ndev; i++) {
		struct wdev *o = w->devs[i];

		if (!o->cur || o == d)
			continue;
		pending++;
		if (!o->acquired && (!lru || o->stamp < lru->stamp))
			lru = o;
	}
	if (pending < w->max_pending || !lru)
		return 0;
	return flush_dev_locked(w, lru);
}

/* Write a control record; flush = 1: first flush `device`'s pending chunk,
 * 2: every device's. */
static int emit_control(struct vms_writer *w, uint8_t type, uint32_t device, const uint8_t *body,
			uint32_t len, int flush)
{
	struct wjob *j = job_acquire(w);
	int err;

	if (!j)
		return wcheck(w);
	j->type = type;
	j->device = device;
	j->offset = 0;
	j->len = len;
	memcpy(j->raw, body, len);
	pthread_mutex_lock(&w->prod_mu);
	err = flush == 2 ? flush_all_locked(w) : flush == 1 ? flush_dev_locked(w, w->devs[device]) : 0;
	if (err)
		vms_ring_unacquire(&w->ring, j);
	else
		err = job_submit_locked(w, j);
	pthread_mutex_unlock(&w->prod_mu);
	progress(w);
	return err;
}

/* ---- setup ------------------------------------------------------------ */

static int setup_stages(struct vms_writer *w, const struct vms_writer_opts *o)
{
	int level;
	int err = vms_compress_parse(o->compress, &w->codec, &level, &w->adaptive);

	if (err)
		return err;
	atomic_store(&w->level, level);
	w->zero_elision = !(o->flags & VMS_WRITER_F_NO_ZERO_ELISION);
	if (o->cipher != VMS_CIPHER_NONE) {
		w->cipher = vms_stage_find_id(VMS_STAGE_CIPHER, o->cipher);
		if (!w->cipher)
			return vms_fail(VMS_EINVAL, "unknown cipher id %u", o->cipher);
		if (w->t.session) {
			if (!w->t.keyed)
				return vms_fail(VMS_EKEY, "cipher %s needs an authenticated session",
						w->cipher->name);
		} else if (!o->key) {
			return vms_fail(VMS_EKEY, "cipher %s needs a key", w->cipher->name);
		} else {
			memcpy(w->key, o->key, VMS_KEY_LEN);
		}
	} else if (o->key) {
		return vms_fail(VMS_EINVAL, "a key was given but no cipher");
	}
	return 0;
}

static int setup_pipeline(struct vms_writer *w, const struct vms_writer_opts *o)
{
	uint64_t budget = o->memory ? o->memory : VMS_MEMORY_DEFAULT;
	size_t raw_cap = vms_page_round((size_t)w->pre.chunk_cap + VMS_AEAD_OVERHEAD);
	size_t out_cap = w->codec ? vms_page_round(w->codec->bound(w->pre.chunk_cap) + VMS_AEAD_OVERHEAD)
				  : 0;
	size_t slot = raw_cap + out_cap;
	unsigned want, fit;
	int err;

	w->nthreads = o->threads == VMS_THREADS_AUTO ? vms_online_cpus() : o->threads;
	if (w->nthreads > VMS_THREADS_MAX)
		return vms_fail(VMS_EINVAL, "threads %u above the limit %d", w->nthreads, VMS_THREADS_MAX);
	/* Enough slots to keep every worker busy while the producer fills one
	 * and the emitter writes one; more only adds memory. */
	want = (w->nthreads ? 2 * w->nthreads + 2 : 1) + PENDING_DEVICES - 1;
	fit = (unsigned)(budget / slot > 1024 ? 1024 : budget / slot);
	if (fit < 2u)
		return vms_fail(VMS_EINVAL,
				"memory budget %llu bytes is too small for %u-byte chunks (need %zu)",
				(unsigned long long)budget, w->pre.chunk_cap, slot * 2);
	w->nslots = want < fit ? want : fit;
	/* keep at least one job free of partial chunks (and a second one in
	 * flight when threads run) */
	w->max_pending = w->nslots > PENDING_DEVICES + 1 ? PENDING_DEVICES : w->nslots - 1;
	w->arena_len = slot * w->nslots;
	w->arena = vms_alloc_prefault(w->arena_len);
	w->jobs = calloc(w->nslots, sizeof(*w->jobs));
	w->jobptrs = calloc(w->nslots, sizeof(*w->jobptrs));
	w->workers = calloc(w->nthreads + 1, sizeof(*w->workers));
	w->wctx = calloc(w->nthreads + 1, sizeof(*w->wctx));
	if (posix_memalign((void **)&w->hstates, 64, w->nslots * sizeof(*w->hstates)))
		w->hstates = NULL;
	if (!w->arena || !w->jobs || !w->jobptrs || !w->workers || !w->wctx || !w->hstates)
		return vms_fail(VMS_ENOMEM, "out of memory allocating %zu bytes of buffers",
				w->arena_len);
	for (unsigned i = 0; i < w->nslots; i++) {
		w->jobs[i].raw = w->arena + i * slot;
		w->jobs[i].hs = &w->hstates[i];
		w->jobs[i].out = out_cap ? w->arena + i * slot + raw_cap : NULL;
		w->jobptrs[i] = &w->jobs[i];
	}
	for (unsigned t = 0; t <= w->nthreads; t++) {
		struct wworker *k = &w->workers[t];

		k->w = w;
		w->wctx[t] = k;
		if (w->codec) {
			struct vms_stage_conf conf = { .size = sizeof(conf) };

			conf.level = atomic_load(&w->level);
			conf.max_chunk = w->pre.chunk_cap;
			err = w->codec->ctx_new(&k->codec_ctx, &conf);
			if (err)
				return vms_fail(err, "codec %s: cannot create a context", w->codec->name);
			k->codec_level = conf.level;
		}
	}
	/* Without codec and cipher a record is a zero test and a checksum, both
	 * done on the caller's thread while the bytes are in its cache: worker
	 * threads would only add hand-offs and cold reads. The output thread
	 * still overlaps the writing. */
	w->nworkers = w->codec || w->cipher ? w->nthreads : 0;
	err = vms_ring_init(&w->ring, w->nslots, w->jobptrs, w->nworkers, w->wctx, writer_work);
	if (err)
		return vms_fail(err, "out of memory for the work ring");
	err = vms_engine_new(&w->eng, (int)w->t.engine, ENGINE_DEPTH + 2, w->arena, w->arena_len);
	if (err)
		return err;
	if (w->t.session) {
		w->ackbuf = malloc(ACK_BUF);
		if (!w->ackbuf)
			return vms_fail(VMS_ENOMEM, "out of memory for the acknowledgement buffer");
	}
	w->st.memory = w->arena_len;
	w->st.threads = w->nthreads;
	return 0;
}

static int start_threads(struct vms_writer *w)
{
	int err = vms_ring_start(&w->ring);

	if (err)
		return vms_fail(err, "cannot start worker threads");
	if (w->nthreads) {
		if (pthread_create(&w->emitter, NULL, emitter_main, w) != 0)
			return vms_fail(VMS_ENOMEM, "cannot start the output thread");
		w->emitter_started = true;
	}
	return 0;
}

static int write_preamble(struct vms_writer *w, const struct vms_writer_opts *o)
{
	uint8_t buf[VMS_PREAMBLE_MAX];
	const char *why;
	size_t len;
	int err;

	w->pre.major = VMS_FORMAT_MAJOR;
	w->pre.minor = VMS_FORMAT_MINOR;
	if (o->stream_id)
		memcpy(w->pre.stream_id, o->stream_id, 16);
	else if (getrandom(w->pre.stream_id, 16, 0) != 16)
		return vms_fail(VMS_EIO, "getrandom failed: %s", strerror(errno));
	w->pre.lanes = (uint16_t)w->t.nlanes;
	w->pre.size_hint = o->size_hint;
	if (o->creator && strlen(o->creator) > VMS_CREATOR_MAX)
		return vms_fail(VMS_EINVAL, "creator longer than %d bytes", VMS_CREATOR_MAX);
	snprintf(w->pre.creator, sizeof(w->pre.creator), "%s%s", o->creator ? "" : "vmstream ",
		 o->creator ? o->creator : vms_version_string());
	if (w->codec) {
		w->pre.ncodecs = 1;
		w->pre.codecs[0].id = (uint8_t)w->codec->id;
		snprintf(w->pre.codecs[0].name, sizeof(w->pre.codecs[0].name), "%s", w->codec->name);
	}
	if (w->cipher) {
		w->pre.cipher = (uint8_t)w->cipher->id;
		w->pre.key_source = w->t.session ? VMS_KEYSRC_SESSION : VMS_KEYSRC_FILE;
		w->pre.flags |= VMS_PFLAG_ENCRYPTED;
		w->pre.has_salt = true;
		if (o->salt)
			memcpy(w->pre.salt, o->salt, VMS_SALT_LEN);
		else if (getrandom(w->pre.salt, VMS_SALT_LEN, 0) != VMS_SALT_LEN)
			return vms_fail(VMS_EIO, "getrandom failed: %s", strerror(errno));
	}
	err = vms_preamble_encode(&w->pre, buf, sizeof(buf), &len, &why);
	if (err)
		return vms_fail(err, "preamble: %s", why);
	if (w->cipher) {
		/* Keys bind the whole preamble through its checksum; a session
		 * has its own input key material per lane (TLS exporter). */
		for (unsigned l = 0; l < w->t.nlanes && !err; l++)
			err = vms_keysched_init(&w->ks[l], w->pre.salt,
						w->t.session ? w->t.ikm_c2s[l] : w->key,
						w->pre.stream_id, w->pre.sum, w->pre.cipher);
		vms_wipe(w->key, sizeof(w->key));
		vms_wipe(w->t.ikm_c2s, sizeof(w->t.ikm_c2s));
		if (err)
			return err;
	}
	err = vms_engine_write_full(w->eng, w->t.fds[0], buf, len, w->t.idle_timeout_ms);
	if (err)
		return vms_fail(write_err_code(w, err), "writing the preamble: %s", strerror(-err));
	w->st.wire_bytes = len;
	return 0;
}

int vms_writer_open_transport(struct vms_writer **out, struct vms_transport *t,
			      const struct vms_writer_opts *opts)
{
	struct vms_writer_opts def = VMS_WRITER_OPTS_INIT;
	struct vms_writer *w;
	int err;

	*out = NULL;
	if (opts) {
		if (opts->size < offsetof(struct vms_writer_opts, stream_id) ||
		    opts->size > sizeof(def)) {
			vms_transport_release(t);
			return vms_fail(VMS_EINVAL, "writer options: bad size field %u", opts->size);
		}
		memcpy(&def, opts, opts->size);
	}
	if (def.chunk_size == 0)
		def.chunk_size = VMS_CHUNK_DEFAULT;
	if (def.chunk_size < VMS_CHUNK_MIN || def.chunk_size > VMS_CHUNK_MAX) {
		vms_transport_release(t);
		return vms_fail(VMS_EINVAL, "chunk size %u outside [%u, %u]", def.chunk_size,
				VMS_CHUNK_MIN, VMS_CHUNK_MAX);
	}
	vms_stage_freeze();
	w = calloc(1, sizeof(*w));
	if (!w) {
		vms_transport_release(t);
		return vms_fail(VMS_ENOMEM, "out of memory allocating the writer");
	}
	w->t = *t; /* the writer owns the transport from here on */
	vms_wipe(t, sizeof(*t));
	w->o = def;
	w->o.size = sizeof(w->o);
	w->o.key = NULL; /* copied; never keep the caller's pointer */
	w->t0_ns = vms_now_ns();
	w->st.size = sizeof(w->st);
	w->pre.chunk_cap = def.chunk_size;
	w->epoch_bytes_limit = VMS_EPOCH_BYTES;
	pthread_mutex_init(&w->stats_mu, NULL);
	pthread_mutex_init(&w->prod_mu, NULL);
	err = setup_stages(w, &def);
	if (!err && w->t.session && def.key)
		err = vms_fail(VMS_EINVAL, "a network session derives its keys; do not pass a key");
	if (!err && w->t.session && w->cipher && !w->t.keyed)
		err = vms_fail(VMS_EKEY, "encryption needs an authenticated session (PSK or certificates)");
	if (!err)
		err = setup_pipeline(w, &def);
	w->out_start = -1;
	if (!err && !w->t.session && w->t.nlanes == 1) {
		struct stat st;

		if (fstat(w->t.fds[0], &st) == 0 && S_ISREG(st.st_mode))
			w->out_start = (int64_t)lseek(w->t.fds[0], 0, SEEK_CUR);
	}
	if (!err)
		err = write_preamble(w, &def);
	if (!err)
		err = start_threads(w);
	if (err)
		goto out_free;
	*out = w;
	return 0;

out_free:
	/* keep the message of the failure, not of the cleanup */
	{
		char msg[VMS_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", vms_last_error());
		vms_writer_free(w);
		vms_fail_msg(err, msg);
	}
	return err;
}

int vms_writer_open_fd(struct vms_writer **out, int fd, const struct vms_writer_opts *opts)
{
	struct vms_transport t;

	vms_transport_init_fd(&t, fd);
	return vms_writer_open_transport(out, &t, opts);
}

const char *vms_writer_peer(const struct vms_writer *w)
{
	return w->t.peer;
}

int vms_writer_device_digest(const struct vms_writer *w, uint32_t device, uint64_t *total,
			     uint64_t *digest)
{
	struct vms_writer *mw = (struct vms_writer *)w;
	int err = 0;

	pthread_mutex_lock(&mw->prod_mu);
	if (device >= w->ndev)
		err = vms_fail(VMS_EINVAL, "device %u was not begun", device);
	else if (!w->devs[device]->ended)
		err = vms_fail(VMS_ESTATE, "device %u has not ended", device);
	else {
		*total = w->devs[device]->bytes;
		*digest = w->devs[device]->digest;
	}
	pthread_mutex_unlock(&mw->prod_mu);
	return err;
}

const char *vms_writer_engine(const struct vms_writer *w)
{
	return w->eng ? vms_engine_name(w->eng) : "none";
}

/* ---- public producer API ---------------------------------------------- */

static int check_dev(struct vms_writer *w, uint32_t device, struct wdev **out)
{
	int err = wcheck(w);

	if (err)
		return err;
	if (w->finished)
		return vms_fail(VMS_ESTATE, "stream already finished");
	pthread_mutex_lock(&w->prod_mu);
	if (device >= w->ndev)
		err = vms_fail(VMS_EINVAL, "device %u was not begun", device);
	else if (w->devs[device]->ended)
		err = vms_fail(VMS_ESTATE, "device %u already ended", device);
	else
		*out = w->devs[device];
	pthread_mutex_unlock(&w->prod_mu);
	return err;
}

int vms_writer_begin_device(struct vms_writer *w, const struct vms_device_desc *desc,
			    uint32_t *index)
{
	struct vms_begin_body b = { 0 };
	uint8_t body[18 + VMS_NAME_MAX];
	struct wdev *d;
	struct wjob *j;
	size_t nlen;
	int err = wcheck(w);

	if (err)
		return err;
	if (w->finished)
		return vms_fail(VMS_ESTATE, "cannot begin a device after the stream finished");
	if (!desc || desc->size < sizeof(struct vms_device_desc) || !desc->name)
		return vms_fail(VMS_EINVAL, "device description missing or incomplete");
	nlen = strlen(desc->name);
	if (nlen < 1 || nlen > VMS_NAME_MAX)
		return vms_fail(VMS_EINVAL, "device name must be 1..%d bytes", VMS_NAME_MAX);
	d = calloc(1, sizeof(*d));
	if (!d || posix_memalign((void **)&d->dg, 64, sizeof(*d->dg))) {
		free(d);
		return vms_fail(VMS_ENOMEM, "out of memory for a device");
	}
	vms_digest_init(d->dg);
	b.kind = desc->kind;
	b.size_hint = desc->size_hint;
	b.name_len = (uint16_t)nlen;
	memcpy(b.name, desc->name, nlen);
	j = job_acquire(w);
	if (!j) {
		free(d->dg);
		free(d);
		return wcheck(w);
	}
	j->type = VMS_REC_DEVICE_BEGIN;
	j->offset = 0;
	j->len = (uint32_t)vms_begin_encode(&b, body);
	memcpy(j->raw, body, j->len);

	pthread_mutex_lock(&w->prod_mu);
	if (w->ndev == w->capdev) {
		uint32_t ncap = w->capdev ? w->capdev * 2 : 8;
		struct wdev **nd = ncap < w->capdev ? NULL : realloc(w->devs, ncap * sizeof(*nd));

		if (!nd) {
			pthread_mutex_unlock(&w->prod_mu);
			vms_ring_unacquire(&w->ring, j);
			free(d->dg);
			free(d);
			return vms_fail(VMS_ENOMEM, "out of memory for the device table");
		}
		w->devs = nd;
		w->capdev = ncap;
	}
	j->device = w->ndev;
	err = job_submit_locked(w, j);
	if (!err) {
		if (index)
			*index = w->ndev;
		w->devs[w->ndev++] = d;
		d = NULL;
	}
	pthread_mutex_unlock(&w->prod_mu);
	if (d) {
		free(d->dg);
		free(d);
		return err;
	}
	pthread_mutex_lock(&w->stats_mu);
	w->st.devices = w->ndev;
	pthread_mutex_unlock(&w->stats_mu);
	progress(w);
	return 0;
}

int vms_writer_acquire(struct vms_writer *w, uint32_t device, void **buf, size_t *room)
{
	struct wdev *d = NULL;
	int err = check_dev(w, device, &d);

	if (err)
		return err;
	if (d->acquired)
		return vms_fail(VMS_ESTATE, "device %u already has a chunk buffer acquired", device);
	/* d->cur is looked at and taken under prod_mu: until d is marked
	 * acquired, another device's producer may flush it (limit_pending). */
	pthread_mutex_lock(&w->prod_mu);
	if (!d->cur) {
		struct wjob *j;

		err = limit_pending_locked(w, d);
		pthread_mutex_unlock(&w->prod_mu);
		if (err)
			return err;
		j = job_acquire(w); /* may wait for a free job: not under the lock */
		if (!j)
			return wcheck(w);
		data_job_init(j, device, d, 0);
		pthread_mutex_lock(&w->prod_mu);
		d->cur = j;
		/* other devices' producers may have installed chunks while the
		 * lock was dropped: hold the limit again, or partial chunks could
		 * take every job and block a control record for good */
		err = limit_pending_locked(w, d);
		if (err) {
			pthread_mutex_unlock(&w->prod_mu);
			return err;
		}
	}
	d->stamp = ++w->stamp;
	d->acquired = true;
	*buf = d->cur->raw + d->cur->len;
	*room = w->pre.chunk_cap - d->cur->len;
	pthread_mutex_unlock(&w->prod_mu);
	return 0;
}

int vms_writer_commit(struct vms_writer *w, uint32_t device, size_t len)
{
	struct wdev *d = NULL;
	struct wjob *j;
	int err = check_dev(w, device, &d);

	if (err)
		return err;
	j = d->cur;
	if (!d->acquired || !j)
		return vms_fail(VMS_ESTATE, "commit without a matching acquire");
	if (len > w->pre.chunk_cap - j->len)
		return vms_fail(VMS_EINVAL, "commit of %zu bytes exceeds the acquired room", len);
	/* The device digest is sequential, so it is computed here, in offset
	 * order, while the bytes are hot in cache, in the same pass as the
	 * record's checksum. */
	vms_hash2_update(d->dg, j->hs, j->raw + j->len, len);
	pthread_mutex_lock(&w->prod_mu);
	d->acquired = false;
	j->len += (uint32_t)len;
	d->bytes += len;
	w->raw_total += len;
	err = j->len == w->pre.chunk_cap ? flush_dev_locked(w, d) : 0;
	pthread_mutex_unlock(&w->prod_mu);
	if (j->len == w->pre.chunk_cap)
		progress(w);
	return err;
}

int vms_writer_write(struct vms_writer *w, uint32_t device, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	struct wdev *d = NULL;
	int err = check_dev(w, device, &d);

	while (!err && len > 0) {
		void *dst;
		size_t room;

		err = vms_writer_acquire(w, device, &dst, &room);
		if (err)
			break;
		if (room > len)
			room = len;
		memcpy(dst, p, room);
		err = vms_writer_commit(w, device, room);
		p += room;
		len -= room;
	}
	return err;
}

int vms_writer_write_ref(struct vms_writer *w, uint32_t device, const void *buf, size_t len,
			 void (*done)(void *user), void *user)
{
	const uint8_t *p = buf;
	struct wdev *d = NULL;
	struct wref *ref;
	size_t fill;
	int err;

	if (!done)
		return vms_fail(VMS_EINVAL, "vms_writer_write_ref needs a done callback");
	err = check_dev(w, device, &d);
	if (!err && d->acquired)
		err = vms_fail(VMS_ESTATE, "device %u has a chunk buffer acquired", device);
	/* With a codec or cipher the stage writes its output into the writer's
	 * buffers anyway; copying the input there costs one cache-hot pass. */
	if (err || len < w->pre.chunk_cap || w->codec || w->cipher) {
		if (!err)
			err = vms_writer_write(w, device, buf, len);
		done(user);
		return err;
	}
	ref = malloc(sizeof(*ref));
	if (!ref) {
		done(user);
		return vms_fail(VMS_ENOMEM, "out of memory");
	}
	atomic_init(&ref->n, 1); /* ours, until every chunk is queued */
	ref->done = done;
	ref->user = user;
	/* Complete a partly filled chunk by copying, so that records fall on the
	 * same boundaries as with vms_writer_write(): the stream is identical. */
	pthread_mutex_lock(&w->prod_mu);
	fill = d->cur && d->cur->len > 0 ? w->pre.chunk_cap - d->cur->len : 0;
	pthread_mutex_unlock(&w->prod_mu);
	if (fill) {
		err = vms_writer_write(w, device, p, fill);
		p += fill;
		len -= fill;
	}
	while (!err && len >= w->pre.chunk_cap) {
		struct wjob *j;

		/* Take the device's pending chunk under the lock (another device's
		 * producer may flush it otherwise): an empty one is reused; a
		 * partial one (flushed and refilled by a concurrent producer
		 * between the fill above and here) goes out as it is. */
		pthread_mutex_lock(&w->prod_mu);
		j = d->cur;
		d->cur = NULL;
		if (j && j->len > 0) {
			err = job_submit_locked(w, j);
			j = NULL;
		}
		if (!err && !j)
			err = limit_pending_locked(w, d);
		pthread_mutex_unlock(&w->prod_mu);
		if (err)
			break;
		if (!j) {
			j = job_acquire(w);
			if (!j) {
				err = wcheck(w);
				break;
			}
		}
		data_job_init(j, device, d, w->pre.chunk_cap);
		j->ext = p;
		j->ref = ref;
		atomic_fetch_add(&ref->n, 1);
		vms_hash2_update(d->dg, j->hs, p, j->len);
		pthread_mutex_lock(&w->prod_mu);
		d->stamp = ++w->stamp;
		d->bytes += j->len;
		w->raw_total += j->len;
		err = job_submit_locked(w, j);
		pthread_mutex_unlock(&w->prod_mu);
		progress(w);
		p += w->pre.chunk_cap;
		len -= w->pre.chunk_cap;
	}
	if (!err && len > 0)
		err = vms_writer_write(w, device, p, len);
	ref_put(ref);
	return err;
}

int vms_writer_flush(struct vms_writer *w)
{
	uint64_t pos;
	int err = wcheck(w);

	if (err)
		return err;
	if (w->finished)
		return vms_fail(VMS_ESTATE, "cannot flush after the stream finished");
	pthread_mutex_lock(&w->prod_mu);
	err = flush_all_locked(w);
	pos = vms_ring_head(&w->ring);
	pthread_mutex_unlock(&w->prod_mu);
	if (err)
		return err;
	/* released = written (or dropped after a failure, reported below) */
	if (!vms_ring_wait_tail(&w->ring, pos))
		return (err = wcheck(w)) != 0 ? err : wfail(w, VMS_ECANCELED, "writer stopped");
	return wcheck(w);
}

int vms_writer_phase(struct vms_writer *w, uint32_t phase, uint32_t round)
{
	uint8_t body[8];
	int err = wcheck(w);

	if (err)
		return err;
	if (w->finished)
		return vms_fail(VMS_ESTATE, "cannot write a phase record after the stream finished");
	if (phase < VMS_PHASE_PRECOPY || phase > VMS_PHASE_STOPCOPY)
		return vms_fail(VMS_EINVAL, "unknown phase %u", phase);
	return emit_control(w, VMS_REC_PHASE, VMS_DEVICE_NONE, body,
			    (uint32_t)vms_phase_encode(phase, round, body), 2);
}

int vms_writer_end_device(struct vms_writer *w, uint32_t device)
{
	uint8_t body[16];
	struct wdev *d = NULL;
	int err = check_dev(w, device, &d);

	if (err)
		return err;
	if (d->acquired)
		return vms_fail(VMS_ESTATE, "device %u still has a chunk buffer acquired", device);
	d->digest = vms_digest_final(d->dg);
	err = emit_control(w, VMS_REC_DEVICE_END, device, body,
			   (uint32_t)vms_u64pair_encode(d->bytes, d->digest, body), 1);
	if (err)
		return err;
	pthread_mutex_lock(&w->prod_mu);
	d->ended = true;
	pthread_mutex_unlock(&w->prod_mu);
	free(d->dg);
	d->dg = NULL;
	return 0;
}

/* Close the ring and wait until the emitter has written everything. */
static int drain(struct vms_writer *w)
{
	vms_ring_close(&w->ring);
	if (w->emitter_started) {
		pthread_join(w->emitter, NULL);
		w->emitter_started = false;
	}
	return wcheck(w);
}

/* A regular output file must have grown by every byte written. The counts
 * reported for each write are not enough: Linux 6.18's io_uring reports
 * writes past a file's RLIMIT_FSIZE as complete (plausible counts, nothing
 * written, no EFBIG), so a truncated stream file would look complete. */
static int check_file_output(struct vms_writer *w)
{
	uint64_t want = (uint64_t)w->out_start + w->st.wire_bytes;
	struct stat st;

	if (fstat(w->t.fds[0], &st) != 0)
		return wfail(w, VMS_EIO, "output: fstat failed: %s", strerror(errno));
	if ((uint64_t)st.st_size < want)
		return wfail(w, VMS_EIO,
			     "output file is %llu bytes after %llu bytes were written from offset "
			     "%lld: data was lost (file size limit or file system error)",
			     (unsigned long long)st.st_size, (unsigned long long)w->st.wire_bytes,
			     (long long)w->out_start);
	return 0;
}

/* Session end: the acknowledgement (waited for by the output thread, or
 * here without one), checked against what was sent. */
static int await_ack(struct vms_writer *w)
{
	struct vms_ack_dev d;

	if (!w->ack_in_emitter)
		ack_wait(w);
	if (atomic_load(&w->err))
		return wcheck(w);
	if (w->ack.records != w->seq - 1 || w->ack.raw_bytes != w->raw_total ||
	    w->ack.ndev != w->ndev)
		return wfail(w, VMS_EPROTO, "acknowledgement totals differ from what was sent");
	for (uint32_t i = 0; i < w->ndev; i++) {
		vms_ack_entry(&w->ack, i, &d);
		if (d.bytes != w->devs[i]->bytes || d.digest != w->devs[i]->digest)
			return wfail(w, VMS_EPROTO, "acknowledgement for device %u differs from what was sent", i);
		if (d.result != 0)
			return wfail(w, VMS_EDEVIO, "receiver could not load device %u: %s", i,
				     vms_strerror(d.result));
	}
	return 0;
}

int vms_writer_finish(struct vms_writer *w)
{
	uint8_t body[24];
	int err = wcheck(w);

	if (err)
		return err;
	if (w->finished)
		return vms_fail(VMS_ESTATE, "stream already finished");
	for (uint32_t i = 0; i < w->ndev; i++)
		if (!w->devs[i]->ended)
			return vms_fail(VMS_ESTATE, "device %u not ended before finish", i);
	/* EOS counts the records before it: build it under the lock that
	 * assigns sequence numbers */
	{
		struct wjob *j = job_acquire(w);

		if (!j)
			return wcheck(w);
		pthread_mutex_lock(&w->prod_mu);
		j->type = VMS_REC_EOS;
		j->device = VMS_DEVICE_NONE;
		j->offset = 0;
		j->len = (uint32_t)vms_eos_encode(w->seq, w->raw_total, w->ndev, body);
		memcpy(j->raw, body, j->len);
		err = job_submit_locked(w, j);
		pthread_mutex_unlock(&w->prod_mu);
	}
	if (err)
		return err;
	w->finished = true;
	w->ack_in_emitter = w->t.session && w->emitter_started;
	err = drain(w);
	if (!err && w->out_start >= 0)
		err = check_file_output(w);
	if (!err && w->t.session)
		err = await_ack(w);
	progress(w);
	return err;
}

int vms_writer_abort(struct vms_writer *w, int code, const char *msg)
{
	uint8_t body[6 + VMS_ABORT_TEXT_MAX];
	struct wjob *j;
	int err = 0;

	if (w->finished)
		return vms_fail(VMS_ESTATE, "stream already finished");
	w->finished = true;
	if (atomic_load(&w->err) == 0) {
		/* Partial chunks are not sent: the ABORT says why. */
		pthread_mutex_lock(&w->prod_mu);
		for (uint32_t i = 0; i < w->ndev; i++) {
			struct wdev *d = w->devs[i];

			if (d->cur) {
				vms_ring_unacquire(&w->ring, d->cur);
				d->cur = NULL;
				d->acquired = false;
			}
		}
		pthread_mutex_unlock(&w->prod_mu);
		j = job_acquire(w);
		if (j) {
			j->type = VMS_REC_ABORT;
			j->device = VMS_DEVICE_NONE;
			j->offset = 0;
			j->len = (uint32_t)vms_abort_encode(code, msg, body);
			memcpy(j->raw, body, j->len);
			pthread_mutex_lock(&w->prod_mu);
			err = job_submit_locked(w, j);
			pthread_mutex_unlock(&w->prod_mu);
		}
		if (!err)
			err = drain(w);
	} else {
		drain(w);
	}
	set_err(w, VMS_ECANCELED, msg ? msg : vms_strerror(code));
	return err == VMS_ECANCELED ? 0 : err;
}

int vms_writer_stats(const struct vms_writer *w, struct vms_stats *st)
{
	struct vms_writer *mw = (struct vms_writer *)w;
	struct vms_stats s;

	pthread_mutex_lock(&mw->stats_mu);
	s = w->st;
	pthread_mutex_unlock(&mw->stats_mu);
	s.seconds = (double)(vms_now_ns() - w->t0_ns) * 1e-9;
	s.level = atomic_load(&mw->level);
	return vms_stats_copy_out(st, &s);
}

void vms_writer_set_epoch_limit(struct vms_writer *w, uint64_t bytes)
{
	w->epoch_bytes_limit = bytes;
}

void vms_writer_free(struct vms_writer *w)
{
	if (!w)
		return;
	if (w->ring.state) {
		/* an unfinished stream is not completed behind the caller's back:
		 * the emitter stops writing and only drains */
		int zero = 0;

		atomic_compare_exchange_strong(&w->err, &zero, VMS_ECANCELED);
		vms_ring_close(&w->ring);
		if (w->emitter_started)
			pthread_join(w->emitter, NULL);
		vms_ring_destroy(&w->ring);
	}
	for (unsigned i = 0; w->jobs && i < w->nslots; i++)
		job_drop_ref(&w->jobs[i]); /* abandoned with the stream: lent memory is free */
	if (w->workers) {
		for (unsigned t = 0; t <= w->nthreads; t++) {
			struct wworker *k = &w->workers[t];

			if (k->codec_ctx)
				w->codec->ctx_free(k->codec_ctx);
			if (w->cipher)
				vms_lane_key_free(&k->key, w->cipher);
		}
	}
	for (uint32_t i = 0; i < w->ndev; i++) {
		free(w->devs[i]->dg);
		free(w->devs[i]);
	}
	free(w->devs);
	vms_engine_free(w->eng); /* before the arena it may have registered */
	vms_free_prefault(w->arena, w->arena_len);
	free(w->ackbuf);
	vms_transport_release(&w->t);
	free(w->jobs);
	free(w->hstates);
	free(w->jobptrs);
	free(w->workers);
	free(w->wctx);
	for (unsigned l = 0; l < VMS_LANES_MAX; l++)
		vms_keysched_wipe(&w->ks[l]);
	vms_wipe(w->key, sizeof(w->key));
	pthread_mutex_destroy(&w->stats_mu);
	pthread_mutex_destroy(&w->prod_mu);
	free(w);
}
