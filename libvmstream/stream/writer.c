/* SPDX-License-Identifier: MIT */
/*
 * Stream writer, the public calls. The caller's thread fills chunks and
 * assigns sequence numbers; worker threads apply the stages (zero elision,
 * codec, AEAD) to whole chunks in parallel (writer_work.c); one emitter
 * thread writes finished records in sequence order (writer_out.c). All
 * buffers are allocated once, pre-faulted, and reused; the number of chunk
 * slots is fixed by the memory budget (backpressure). With threads == 0
 * everything runs on the caller's thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include "base/alloc.h"
#include "base/clock.h"
#include "base/hash.h"
#include "format/cursor.h"
#include "stage/stage.h"
#include "stage/tuner.h"
#include "base/error.h"
#include "stream/writer_internal.h"

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
			vms_wr_job_drop_ref(j);
			vms_ring_unacquire(&w->ring, j);
			return vms_wr_fail(w, VMS_EKEY, "key epochs exhausted: end the stream and start a new one");
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
			err = vms_wr_emit_inline(w, d);
		if (d)
			vms_wr_job_release(w, d);
		if (err)
			return err;
	}
	return vms_wr_check(w);
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
		vms_wr_fail(w, VMS_ECANCELED, "writer stopped");
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
		return vms_wr_check(w);
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
	size_t raw_cap = vms_page_round((size_t)w->pre.chunk_cap + VMS_AEAD_OVERHEAD);
	size_t out_cap = w->codec ? vms_page_round(w->codec->bound(w->pre.chunk_cap) + VMS_AEAD_OVERHEAD)
				  : 0;
	size_t slot = raw_cap + out_cap;
	char what[96];
	unsigned want;
	int err;

	w->nthreads = o->threads == VMS_THREADS_AUTO ? vms_online_cpus() : o->threads;
	/* Enough slots to keep every worker busy while the producer fills one
	 * and the emitter writes one; more only adds memory. */
	want = (w->nthreads ? 2 * w->nthreads + 2 : 1) + PENDING_DEVICES - 1;
	snprintf(what, sizeof(what), "%u-byte chunks%s", w->pre.chunk_cap,
		 w->codec ? " with a codec" : "");
	err = vms_budget_slots(o->memory, slot, 2, want, what, &w->nslots);
	if (err)
		return err;
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
	err = vms_ring_init(&w->ring, w->nslots, w->jobptrs, w->nworkers, w->wctx, vms_wr_work);
	if (err)
		return vms_fail(err, "out of memory for the work ring");
	err = vms_engine_new(&w->eng, (int)w->t.engine, ENGINE_DEPTH + 2, w->arena, w->arena_len);
	if (err)
		return err;
	if (w->t.session) {
		w->ackcap = ACK_BUF_MIN;
		w->ackbuf = malloc(w->ackcap);
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
		if (pthread_create(&w->emitter, NULL, vms_wr_emitter_main, w) != 0)
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
		return vms_fail(VMS_EIO, "getrandom failed: %s", vms_sys_err(errno));
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
			return vms_fail(VMS_EIO, "getrandom failed: %s", vms_sys_err(errno));
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
		return vms_fail(vms_wr_write_err(w, err), "writing the preamble: %s", vms_sys_err(-err));
	w->st.wire_bytes = len;
	return 0;
}

int vms_writer_open_transport(struct vms_writer **out, struct vms_transport *t,
			      const struct vms_writer_opts *opts)
{
	struct vms_writer_opts def;
	struct vms_writer *w;
	int err;

	*out = NULL;
	err = vms_writer_opts_take(&def, opts);
	if (err) {
		vms_transport_release(t);
		return err;
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
	w->pace.rate = w->t.rate_limit;
	w->pace.burst = def.chunk_size; /* one chunk of burst */
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
	int err = vms_wr_check(w);

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
	int err = vms_wr_check(w);

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
		return vms_wr_check(w);
	}
	j->type = VMS_REC_DEVICE_BEGIN;
	j->offset = 0;
	j->len = (uint32_t)vms_begin_encode(&b, body);
	memcpy(j->raw, body, j->len);

	pthread_mutex_lock(&w->prod_mu);
	if (w->ndev >= VMS_DEVICES_MAX) {
		/* the receiver refuses the same device with the same code */
		pthread_mutex_unlock(&w->prod_mu);
		vms_ring_unacquire(&w->ring, j);
		free(d->dg);
		free(d);
		return vms_fail(VMS_EDEVICE, "too many devices (limit 65536)");
	}
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
			return vms_wr_check(w);
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
				err = vms_wr_check(w);
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
	vms_wr_ref_put(ref);
	return err;
}

int vms_writer_flush(struct vms_writer *w)
{
	uint64_t pos;
	int err = vms_wr_check(w);

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
		return (err = vms_wr_check(w)) != 0 ? err : vms_wr_fail(w, VMS_ECANCELED, "writer stopped");
	return vms_wr_check(w);
}

int vms_writer_phase(struct vms_writer *w, uint32_t phase, uint32_t round)
{
	uint8_t body[8];
	int err = vms_wr_check(w);

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
	return vms_wr_check(w);
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
		return vms_wr_fail(w, VMS_EIO, "output: fstat failed: %s", vms_sys_err(errno));
	if ((uint64_t)st.st_size < want)
		return vms_wr_fail(w, VMS_EIO,
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
		vms_wr_ack_wait(w);
	if (atomic_load(&w->err))
		return vms_wr_check(w);
	if (w->ack.records != w->seq - 1 || w->ack.raw_bytes != w->raw_total ||
	    w->ack.ndev != w->ndev)
		return vms_wr_fail(w, VMS_EPROTO, "acknowledgement totals differ from what was sent");
	for (uint32_t i = 0; i < w->ndev; i++) {
		vms_ack_entry(&w->ack, i, &d);
		if (d.bytes != w->devs[i]->bytes || d.digest != w->devs[i]->digest)
			return vms_wr_fail(w, VMS_EPROTO, "acknowledgement for device %u differs from what was sent", i);
		if (d.result != 0)
			return vms_wr_fail(w, VMS_EDEVIO, "receiver could not load device %u: %s", i,
				     vms_strerror(d.result));
	}
	return 0;
}

int vms_writer_finish(struct vms_writer *w)
{
	uint8_t body[24];
	int err = vms_wr_check(w);

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
			return vms_wr_check(w);
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
	vms_wr_set_err(w, VMS_ECANCELED, msg ? msg : vms_strerror(code));
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
		vms_wr_job_drop_ref(&w->jobs[i]); /* abandoned with the stream: lent memory is free */
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
