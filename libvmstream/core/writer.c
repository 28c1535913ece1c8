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
#include "core/error.h"
#include "core/fdio.h"
#include "core/internal.h"
#include "crypto/keys.h"
#include "format/cursor.h"
#include "format/format.h"
#include "hash/hash.h"
#include "pipeline/ring.h"
#include "stage/stage.h"

#define MAX_THREADS 64
#define JOB_MSG 200
/* Adaptive level range for "auto" and the measuring window. */
#define AUTO_LEVEL_MIN (-7)
#define AUTO_LEVEL_MAX 9
#define AUTO_WINDOW_NS 50000000ull /* 50 ms */
#define SKIP_BACKOFF_MAX 64

struct wdev {
	uint64_t bytes;
	struct vms_digest *dg;
	bool ended;
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
	uint8_t hdr[VMS_HDR_LEN];
	const uint8_t *payload;
	uint32_t wire_len;
	bool zero, stored;
	int err;
	char msg[JOB_MSG];
};

struct wworker {
	struct vms_writer *w;
	void *codec_ctx;
	int codec_level;
	void *cipher_ctx;
	uint16_t key_lane, key_epoch;
	bool have_key;
	unsigned skip_backoff, skip_left;
};

struct vms_writer {
	int fd;
	struct vms_writer_opts o;
	struct vms_preamble pre;
	uint8_t key[VMS_KEY_LEN];
	struct vms_keysched ks;
	const struct vms_stage *codec;
	const struct vms_stage *cipher;
	bool adaptive;
	atomic_int level;           /* codec level workers should use */
	bool zero_elision;

	/* producer side */
	uint64_t seq;
	uint16_t lane, epoch;
	uint64_t epoch_bytes, epoch_records;
	uint64_t epoch_bytes_limit;
	struct wjob *cur;           /* chunk being filled, or NULL */
	struct wjob *spare;         /* acquired slot left empty, reused next */
	bool acquired;
	struct wdev *devs;
	uint32_t ndev, capdev;
	uint64_t raw_total;
	bool finished;

	/* pipeline */
	struct vms_ring ring;
	struct wjob *jobs;
	void **jobptrs;
	struct wworker *workers;
	void **wctx;
	unsigned nthreads, nslots;
	uint8_t *arena;
	size_t arena_len;
	pthread_t emitter;
	bool emitter_started;

	/* emitter side, read by others under stats_mu */
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
	struct vms_stage_conf conf = { .size = sizeof(conf) };
	uint8_t key[VMS_KEY_LEN];
	int err;

	if (k->have_key && k->key_lane == lane && k->key_epoch == epoch)
		return 0;
	if (k->cipher_ctx) {
		w->cipher->ctx_free(k->cipher_ctx);
		k->cipher_ctx = NULL;
	}
	k->have_key = false;
	err = vms_keysched_key(&w->ks, lane, epoch, key);
	if (err)
		return err;
	conf.key = key;
	conf.max_chunk = w->pre.chunk_cap;
	err = w->cipher->ctx_new(&k->cipher_ctx, &conf);
	vms_wipe(key, sizeof(key));
	if (err)
		return err;
	k->key_lane = lane;
	k->key_epoch = epoch;
	k->have_key = true;
	return 0;
}

static int worker_compress(struct wworker *k, struct wjob *j, const uint8_t **body,
			   uint32_t *body_len, uint8_t *codec)
{
	struct vms_writer *w = k->w;
	struct vms_stage_io io = { 0 };
	int level = atomic_load_explicit(&w->level, memory_order_relaxed);
	int r;

	/* Data that did not compress is probably followed by more of the
	 * same: back off exponentially before trying again, so incompressible
	 * streams cost almost nothing (never slower than no compression). */
	if (k->skip_left) {
		k->skip_left--;
		return 0;
	}
	if (level != k->codec_level && w->codec->set_level) {
		if (w->codec->set_level(k->codec_ctx, level) == 0)
			k->codec_level = level;
	}
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
		k->skip_backoff = 0;
		return 0;
	}
	k->skip_backoff = k->skip_backoff ? k->skip_backoff * 2 : 1;
	if (k->skip_backoff > SKIP_BACKOFF_MAX)
		k->skip_backoff = SKIP_BACKOFF_MAX;
	k->skip_left = k->skip_backoff;
	return 0;
}

static int writer_work(void *wctx, void *jp)
{
	struct wworker *k = wctx;
	struct vms_writer *w = k->w;
	struct wjob *j = jp;
	struct vms_rec_hdr h = { 0 };
	const uint8_t *body = j->raw;
	uint32_t body_len = j->len;
	uint8_t codec = 0;
	uint64_t sum = 0;
	int err;

	j->err = 0;
	j->zero = j->stored = false;
	h.type = j->type;
	if (j->type == VMS_REC_DATA) {
		if (w->zero_elision && vms_all_zero(j->raw, j->len)) {
			h.type = VMS_REC_ZERO;
			j->zero = true;
			body_len = 0;
		} else {
			sum = vms_xxh3(j->raw, j->len);
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
		err = w->cipher->apply(k->cipher_ctx, &io);
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
		level = level == 1 ? -1 : level - 1;
		if (level < AUTO_LEVEL_MIN)
			level = AUTO_LEVEL_MIN;
	} else if (write_ns > span * 3 / 4 && starve_ns < span / 20) {
		level = level == -1 ? 1 : level + 1;
		if (level > AUTO_LEVEL_MAX)
			level = AUTO_LEVEL_MAX;
	}
	atomic_store(&w->level, level);
}

/* Write one finished record; returns 0 or an error (already recorded). */
static int emit_job(struct vms_writer *w, struct wjob *j)
{
	struct iovec iov[2];
	uint64_t t0, pos;
	int err;

	if (j->err)
		return set_err(w, j->err, j->msg);
	iov[0].iov_base = j->hdr;
	iov[0].iov_len = VMS_HDR_LEN;
	iov[1].iov_base = (void *)j->payload;
	iov[1].iov_len = j->wire_len;
	t0 = vms_now_ns();
	err = vms_writev_all(w->fd, iov, j->wire_len ? 2 : 1);
	w->emit_write_ns += vms_now_ns() - t0;
	pthread_mutex_lock(&w->stats_mu);
	pos = w->st.wire_bytes;
	if (!err) {
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
	}
	pthread_mutex_unlock(&w->stats_mu);
	if (err)
		return wfail(w, err == -EPIPE ? VMS_ESINK : VMS_EIO,
			     "record %llu at byte %llu: write failed: %s",
			     (unsigned long long)j->seq, (unsigned long long)pos, strerror(-err));
	return 0;
}

static void *emitter_main(void *p)
{
	struct vms_writer *w = p;
	uint64_t win_t0 = vms_now_ns(), win_write = 0, win_starve = 0, win_prod = 0;
	struct wjob *j;

	while ((j = vms_ring_wait_done(&w->ring)) != NULL) {
		/* After a failure keep draining (without writing) so that a
		 * producer blocked on a full ring wakes up and sees the error. */
		if (atomic_load(&w->err) == 0)
			emit_job(w, j);
		vms_ring_release(&w->ring);
		if (w->adaptive)
			tune_level(w, &win_t0, &win_write, &win_starve, &win_prod);
	}
	return NULL;
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

static struct wjob *job_acquire(struct vms_writer *w)
{
	struct wjob *j = w->spare;

	/* an acquired slot that stayed empty is reused, never submitted */
	if (j) {
		w->spare = NULL;
		return j;
	}
	j = vms_ring_acquire(&w->ring);

	if (!j)
		wfail(w, VMS_ECANCELED, "writer stopped");
	return j;
}

/* Assign sequence, lane and epoch in submission order and hand over. */
static int job_submit(struct vms_writer *w, struct wjob *j)
{
	uint64_t sealed = (uint64_t)j->len + 8;

	if (w->cipher && (w->epoch_bytes + sealed > w->epoch_bytes_limit ||
			  w->epoch_records + 1 > VMS_EPOCH_RECORDS)) {
		if (w->epoch == UINT16_MAX)
			return wfail(w, VMS_EKEY, "key epochs exhausted: end the stream and start a new one");
		w->epoch++;
		w->epoch_bytes = 0;
		w->epoch_records = 0;
	}
	w->epoch_bytes += sealed;
	w->epoch_records++;
	j->seq = w->seq++;
	j->lane = w->lane;
	j->epoch = w->epoch;
	vms_ring_submit(&w->ring);
	if (w->nthreads == 0) {
		/* Inline mode: emit right away on this thread. */
		struct wjob *d = vms_ring_wait_done(&w->ring);
		int err = 0;

		if (d && atomic_load(&w->err) == 0)
			err = emit_job(w, d);
		if (d)
			vms_ring_release(&w->ring);
		if (err)
			return err;
	}
	progress(w);
	return wcheck(w);
}

static int flush_chunk(struct vms_writer *w)
{
	struct wjob *j = w->cur;

	if (!j)
		return 0;
	w->cur = NULL;
	if (j->len == 0) {
		/* nothing was committed: a record needs at least one byte */
		w->spare = j;
		return 0;
	}
	return job_submit(w, j);
}

static int emit_control(struct vms_writer *w, uint8_t type, uint32_t device, const uint8_t *body,
			uint32_t len)
{
	struct wjob *j;
	int err = flush_chunk(w);

	if (err)
		return err;
	j = job_acquire(w);
	if (!j)
		return wcheck(w);
	j->type = type;
	j->device = device;
	j->offset = 0;
	j->len = len;
	memcpy(j->raw, body, len);
	return job_submit(w, j);
}

/* ---- setup ------------------------------------------------------------ */

static unsigned online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (n > MAX_THREADS ? MAX_THREADS : (unsigned)n);
}

static size_t page_round(size_t n)
{
	return (n + 4095) & ~(size_t)4095;
}

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
		if (!o->key)
			return vms_fail(VMS_EKEY, "cipher %s needs a key", w->cipher->name);
		memcpy(w->key, o->key, VMS_KEY_LEN);
	} else if (o->key) {
		return vms_fail(VMS_EINVAL, "a key was given but no cipher");
	}
	return 0;
}

static int setup_pipeline(struct vms_writer *w, const struct vms_writer_opts *o)
{
	uint64_t budget = o->memory ? o->memory : VMS_MEMORY_DEFAULT;
	size_t raw_cap = page_round((size_t)w->pre.chunk_cap + VMS_AEAD_OVERHEAD);
	size_t out_cap = w->codec ? page_round(w->codec->bound(w->pre.chunk_cap) + VMS_AEAD_OVERHEAD)
				  : 0;
	size_t slot = raw_cap + out_cap;
	unsigned want, fit;
	int err;

	w->nthreads = o->threads == VMS_THREADS_AUTO ? online_cpus() : o->threads;
	if (w->nthreads > MAX_THREADS)
		return vms_fail(VMS_EINVAL, "threads %u above the limit %d", w->nthreads, MAX_THREADS);
	/* Enough slots to keep every worker busy while the producer fills one
	 * and the emitter writes one; more only adds memory. */
	want = w->nthreads ? 2 * w->nthreads + 2 : 1;
	fit = (unsigned)(budget / slot > 1024 ? 1024 : budget / slot);
	if (fit < (w->nthreads ? 2u : 1u))
		return vms_fail(VMS_EINVAL,
				"memory budget %llu bytes is too small for %u-byte chunks (need %zu)",
				(unsigned long long)budget, w->pre.chunk_cap,
				slot * (w->nthreads ? 2 : 1));
	w->nslots = want < fit ? want : fit;
	w->arena_len = slot * w->nslots;
	w->arena = vms_alloc_prefault(w->arena_len);
	w->jobs = calloc(w->nslots, sizeof(*w->jobs));
	w->jobptrs = calloc(w->nslots, sizeof(*w->jobptrs));
	w->workers = calloc(w->nthreads + 1, sizeof(*w->workers));
	w->wctx = calloc(w->nthreads + 1, sizeof(*w->wctx));
	if (!w->arena || !w->jobs || !w->jobptrs || !w->workers || !w->wctx)
		return vms_fail(VMS_ENOMEM, "out of memory allocating %zu bytes of buffers",
				w->arena_len);
	for (unsigned i = 0; i < w->nslots; i++) {
		w->jobs[i].raw = w->arena + i * slot;
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
	err = vms_ring_init(&w->ring, w->nslots, w->jobptrs, w->nthreads, w->wctx, writer_work);
	if (err)
		return vms_fail(err, "out of memory for the work ring");
	err = vms_ring_start(&w->ring);
	if (err)
		return vms_fail(err, "cannot start worker threads");
	if (w->nthreads) {
		if (pthread_create(&w->emitter, NULL, emitter_main, w) != 0)
			return vms_fail(VMS_ENOMEM, "cannot start the output thread");
		w->emitter_started = true;
	}
	w->st.memory = w->arena_len;
	w->st.threads = w->nthreads;
	return 0;
}

static int write_preamble(struct vms_writer *w, const struct vms_writer_opts *o)
{
	uint8_t buf[VMS_PREAMBLE_MAX];
	struct iovec iov;
	const char *why;
	size_t len;
	int err;

	w->pre.major = VMS_FORMAT_MAJOR;
	w->pre.minor = VMS_FORMAT_MINOR;
	if (o->stream_id)
		memcpy(w->pre.stream_id, o->stream_id, 16);
	else if (getrandom(w->pre.stream_id, 16, 0) != 16)
		return vms_fail(VMS_EIO, "getrandom failed: %s", strerror(errno));
	w->pre.lanes = 1;
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
		w->pre.key_source = VMS_KEYSRC_FILE;
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
		/* Keys bind the whole preamble through its checksum. */
		err = vms_keysched_init(&w->ks, w->pre.salt, w->key, w->pre.stream_id, w->pre.sum,
					w->pre.cipher);
		vms_wipe(w->key, sizeof(w->key));
		if (err)
			return err;
	}
	iov.iov_base = buf;
	iov.iov_len = len;
	err = vms_writev_all(w->fd, &iov, 1);
	if (err)
		return vms_fail(err == -EPIPE ? VMS_ESINK : VMS_EIO, "writing the preamble: %s",
				strerror(-err));
	w->st.wire_bytes = len;
	return 0;
}

int vms_writer_open_fd(struct vms_writer **out, int fd, const struct vms_writer_opts *opts)
{
	struct vms_writer_opts def = VMS_WRITER_OPTS_INIT;
	struct vms_writer *w;
	int err;

	*out = NULL;
	if (opts) {
		if (opts->size < offsetof(struct vms_writer_opts, stream_id) ||
		    opts->size > sizeof(def))
			return vms_fail(VMS_EINVAL, "writer options: bad size field %u", opts->size);
		memcpy(&def, opts, opts->size);
	}
	if (def.chunk_size == 0)
		def.chunk_size = VMS_CHUNK_DEFAULT;
	if (def.chunk_size < VMS_CHUNK_MIN || def.chunk_size > VMS_CHUNK_MAX)
		return vms_fail(VMS_EINVAL, "chunk size %u outside [%u, %u]", def.chunk_size,
				VMS_CHUNK_MIN, VMS_CHUNK_MAX);
	vms_stage_freeze();
	w = calloc(1, sizeof(*w));
	if (!w)
		return vms_fail(VMS_ENOMEM, "out of memory allocating the writer");
	w->fd = fd;
	w->o = def;
	w->o.size = sizeof(w->o);
	w->o.key = NULL; /* copied; never keep the caller's pointer */
	w->t0_ns = vms_now_ns();
	w->st.size = sizeof(w->st);
	w->pre.chunk_cap = def.chunk_size;
	w->epoch_bytes_limit = VMS_EPOCH_BYTES;
	pthread_mutex_init(&w->stats_mu, NULL);
	err = setup_stages(w, &def);
	if (err)
		goto out_free;
	err = write_preamble(w, &def);
	if (err)
		goto out_free;
	err = setup_pipeline(w, &def);
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

/* ---- public producer API ---------------------------------------------- */

static int check_dev(struct vms_writer *w, uint32_t device)
{
	int err = wcheck(w);

	if (err)
		return err;
	if (w->finished)
		return vms_fail(VMS_ESTATE, "stream already finished");
	if (device >= w->ndev)
		return vms_fail(VMS_EINVAL, "device %u was not begun", device);
	if (w->devs[device].ended)
		return vms_fail(VMS_ESTATE, "device %u already ended", device);
	return 0;
}

int vms_writer_begin_device(struct vms_writer *w, const struct vms_device_desc *desc,
			    uint32_t *index)
{
	struct vms_begin_body b = { 0 };
	uint8_t body[18 + VMS_NAME_MAX];
	struct wdev *d;
	size_t nlen;
	int err = wcheck(w);

	if (err)
		return err;
	if (w->finished || w->acquired)
		return vms_fail(VMS_ESTATE, "cannot begin a device now");
	if (!desc || desc->size < sizeof(struct vms_device_desc) || !desc->name)
		return vms_fail(VMS_EINVAL, "device description missing or incomplete");
	nlen = strlen(desc->name);
	if (nlen < 1 || nlen > VMS_NAME_MAX)
		return vms_fail(VMS_EINVAL, "device name must be 1..%d bytes", VMS_NAME_MAX);
	if (w->ndev == UINT32_MAX - 1)
		return vms_fail(VMS_EINVAL, "too many devices");
	if (w->ndev == w->capdev) {
		uint32_t ncap = w->capdev ? w->capdev * 2 : 8;
		struct wdev *nd = realloc(w->devs, ncap * sizeof(*nd));

		if (!nd)
			return vms_fail(VMS_ENOMEM, "out of memory for the device table");
		w->devs = nd;
		w->capdev = ncap;
	}
	d = &w->devs[w->ndev];
	memset(d, 0, sizeof(*d));
	if (posix_memalign((void **)&d->dg, 64, sizeof(*d->dg)))
		return vms_fail(VMS_ENOMEM, "out of memory for a device digest");
	vms_digest_init(d->dg);
	b.kind = desc->kind;
	b.size_hint = desc->size_hint;
	b.name_len = (uint16_t)nlen;
	memcpy(b.name, desc->name, nlen);
	err = emit_control(w, VMS_REC_DEVICE_BEGIN, w->ndev, body,
			   (uint32_t)vms_begin_encode(&b, body));
	if (err) {
		free(d->dg);
		return err;
	}
	if (index)
		*index = w->ndev;
	w->ndev++;
	pthread_mutex_lock(&w->stats_mu);
	w->st.devices = w->ndev;
	pthread_mutex_unlock(&w->stats_mu);
	return 0;
}

int vms_writer_acquire(struct vms_writer *w, uint32_t device, void **buf, size_t *room)
{
	int err = check_dev(w, device);

	if (err)
		return err;
	if (w->acquired)
		return vms_fail(VMS_ESTATE, "a chunk buffer is already acquired");
	if (w->cur && w->cur->device != device) {
		err = flush_chunk(w);
		if (err)
			return err;
	}
	if (!w->cur) {
		struct wjob *j = job_acquire(w);

		if (!j)
			return wcheck(w);
		j->type = VMS_REC_DATA;
		j->device = device;
		j->offset = w->devs[device].bytes;
		j->len = 0;
		w->cur = j;
	}
	*buf = w->cur->raw + w->cur->len;
	*room = w->pre.chunk_cap - w->cur->len;
	w->acquired = true;
	return 0;
}

int vms_writer_commit(struct vms_writer *w, uint32_t device, size_t len)
{
	struct wjob *j = w->cur;
	struct wdev *d;
	int err = wcheck(w);

	if (err)
		return err;
	if (!w->acquired || !j || j->device != device)
		return vms_fail(VMS_ESTATE, "commit without a matching acquire");
	if (len > w->pre.chunk_cap - j->len)
		return vms_fail(VMS_EINVAL, "commit of %zu bytes exceeds the acquired room", len);
	w->acquired = false;
	d = &w->devs[device];
	/* The device digest is sequential, so it is computed here, in offset
	 * order, while the bytes are hot in cache. */
	vms_digest_update(d->dg, j->raw + j->len, len);
	j->len += (uint32_t)len;
	d->bytes += len;
	w->raw_total += len;
	if (j->len == w->pre.chunk_cap)
		return flush_chunk(w);
	return 0;
}

int vms_writer_write(struct vms_writer *w, uint32_t device, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int err = check_dev(w, device);

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

int vms_writer_phase(struct vms_writer *w, uint32_t phase, uint32_t round)
{
	uint8_t body[8];
	int err = wcheck(w);

	if (err)
		return err;
	if (w->finished || w->acquired)
		return vms_fail(VMS_ESTATE, "cannot write a phase record now");
	if (phase < VMS_PHASE_PRECOPY || phase > VMS_PHASE_STOPCOPY)
		return vms_fail(VMS_EINVAL, "unknown phase %u", phase);
	return emit_control(w, VMS_REC_PHASE, VMS_DEVICE_NONE, body,
			    (uint32_t)vms_phase_encode(phase, round, body));
}

int vms_writer_end_device(struct vms_writer *w, uint32_t device)
{
	uint8_t body[16];
	struct wdev *d;
	int err = check_dev(w, device);

	if (err)
		return err;
	if (w->acquired)
		return vms_fail(VMS_ESTATE, "a chunk buffer is still acquired");
	d = &w->devs[device];
	err = emit_control(w, VMS_REC_DEVICE_END, device, body,
			   (uint32_t)vms_u64pair_encode(d->bytes, vms_digest_final(d->dg), body));
	if (err)
		return err;
	d->ended = true;
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

int vms_writer_finish(struct vms_writer *w)
{
	uint8_t body[24];
	int err = wcheck(w);

	if (err)
		return err;
	if (w->finished)
		return vms_fail(VMS_ESTATE, "stream already finished");
	if (w->acquired)
		return vms_fail(VMS_ESTATE, "a chunk buffer is still acquired");
	for (uint32_t i = 0; i < w->ndev; i++)
		if (!w->devs[i].ended)
			return vms_fail(VMS_ESTATE, "device %u not ended before finish", i);
	err = emit_control(w, VMS_REC_EOS, VMS_DEVICE_NONE, body,
			   (uint32_t)vms_eos_encode(w->seq, w->raw_total, w->ndev, body));
	if (err)
		return err;
	w->finished = true;
	err = drain(w);
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
	w->acquired = false;
	if (atomic_load(&w->err) == 0) {
		/* The partial chunk is not sent: its slot carries the ABORT. */
		j = w->cur ? w->cur : job_acquire(w);
		w->cur = NULL;
		if (j == w->spare)
			w->spare = NULL;
		if (j) {
			j->type = VMS_REC_ABORT;
			j->device = VMS_DEVICE_NONE;
			j->offset = 0;
			j->len = (uint32_t)vms_abort_encode(code, msg, body);
			memcpy(j->raw, body, j->len);
			err = job_submit(w, j);
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

	if (!st || st->size < sizeof(uint32_t))
		return vms_fail(VMS_EINVAL, "stats: bad size field");
	pthread_mutex_lock(&mw->stats_mu);
	s = w->st;
	pthread_mutex_unlock(&mw->stats_mu);
	s.seconds = (double)(vms_now_ns() - w->t0_ns) * 1e-9;
	s.level = atomic_load(&mw->level);
	memcpy((char *)st + sizeof(uint32_t), (const char *)&s + sizeof(uint32_t),
	       (st->size < sizeof(s) ? st->size : sizeof(s)) - sizeof(uint32_t));
	return 0;
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
	if (w->workers) {
		for (unsigned t = 0; t <= w->nthreads; t++) {
			struct wworker *k = &w->workers[t];

			if (k->codec_ctx)
				w->codec->ctx_free(k->codec_ctx);
			if (k->cipher_ctx)
				w->cipher->ctx_free(k->cipher_ctx);
		}
	}
	for (uint32_t i = 0; i < w->ndev; i++)
		free(w->devs[i].dg);
	free(w->devs);
	vms_free_prefault(w->arena, w->arena_len);
	free(w->jobs);
	free(w->jobptrs);
	free(w->workers);
	free(w->wctx);
	vms_keysched_wipe(&w->ks);
	vms_wipe(w->key, sizeof(w->key));
	pthread_mutex_destroy(&w->stats_mu);
	free(w);
}
