/* SPDX-License-Identifier: MIT */
/*
 * Stream reader. An input thread reads records and applies every rule that
 * needs only the header (FORMAT.md section 4) before it reads a payload;
 * worker threads authenticate, decompress and checksum payloads in parallel;
 * the caller's thread takes records back in sequence order, applies the rules
 * that need the payload (device digests, EOS totals) and only then hands out
 * the bytes. Errors travel in order too: every record before a bad one is
 * delivered, nothing after it. With threads == 0 all of it runs inline.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include "base/clock.h"
#include "base/alloc.h"
#include "base/error.h"
#include "io/fdio.h"
#include "stream/internal.h"
#include "crypto/keys.h"
#include "stream/ack.h"
#include "format/cursor.h"
#include "format/format.h"
#include "base/hash.h"
#include "io/engine.h"
#include "pipeline/ring.h"
#include "stage/stage.h"

#include "stream/reader_internal.h"

/* ---- errors ------------------------------------------------------------ */



/* ---- input side: framing and header rules ----------------------------- */









/* ---- workers: authenticate, decode, checksum --------------------------- */




/* ---- delivery: payload-level rules, in order --------------------------- */





/* ---- setup ------------------------------------------------------------ */

static int read_preamble(struct vms_reader *r, const uint8_t *key)
{
	uint8_t buf[VMS_PREAMBLE_MAX];
	const char *why;
	uint32_t plen;
	long got;
	int err;

	got = vms_in_read(r->in, buf, 16);
	if (got < 0)
		return vms_fail(vms_rd_io_code(got), "reading the preamble: %s", vms_sys_err((int)-got));
	err = vms_preamble_peek(buf, (size_t)got, &plen, &why);
	if (err)
		return vms_fail(err, "preamble at byte 0: %s", why);
	got = vms_in_read(r->in, buf + 16, plen - 16);
	if (got < 0)
		return vms_fail(vms_rd_io_code(got), "reading the preamble: %s", vms_sys_err((int)-got));
	err = vms_preamble_decode(&r->pre, buf, 16 + (size_t)got, r->o.max_chunk, &why);
	if (err)
		return vms_fail(err, "preamble at byte 0: %s", why);
	for (unsigned i = 0; i < r->pre.ncodecs; i++) {
		const struct vms_codec_decl *c = &r->pre.codecs[i];
		const struct vms_stage *st = vms_stage_find(c->name);

		if (!st || st->kind != VMS_STAGE_CODEC)
			return vms_fail(VMS_ECODEC, "preamble at byte 0: codec \"%s\" (id %u) is not available",
					c->name, c->id);
		if (st->id < 64 && st->id != c->id)
			return vms_fail(VMS_ECODEC, "preamble at byte 0: codec \"%s\" must have id %u, not %u",
					c->name, st->id, c->id);
		/* FORMAT.md 2.1: ids below 64 belong to codecs FORMAT.md defines */
		if (st->id >= 64 && c->id < 64)
			return vms_fail(VMS_ECODEC, "preamble at byte 0: private codec \"%s\" declared "
						    "with id %u, reserved for FORMAT.md codecs", c->name, c->id);
		r->codecs[i] = st;
		snprintf(r->codec_list + strlen(r->codec_list),
			 sizeof(r->codec_list) - strlen(r->codec_list), "%s%u:%s", i ? "," : "", c->id,
			 c->name);
	}
	r->st.wire_bytes = plen;
	if (r->pre.lanes != r->t.nlanes)
		return vms_fail(VMS_EPREAMBLE, "preamble at byte 0: stream has %u lanes, the session %u",
				r->pre.lanes, r->t.nlanes);
	/* FORMAT.md preamble rule 21: a caller who gives a key expects secrecy
	 * and authenticity; a plaintext stream (perhaps one whose encryption
	 * was stripped, checksums recomputed) must not read as verified. */
	if (r->pre.cipher == VMS_CIPHER_NONE) {
		if (key || (r->t.keyed && !r->t.allow_plaintext))
			return vms_fail(VMS_EKEY, "preamble at byte 0: stream is not encrypted but a key "
						  "was expected (refusing unauthenticated data)");
		return 0;
	}
	if (r->headers_only)
		return 0;
	if (r->pre.key_source != (r->t.session ? VMS_KEYSRC_SESSION : VMS_KEYSRC_FILE))
		return vms_fail(VMS_EKEY, "preamble at byte 0: stream keys come from a %s",
				r->pre.key_source == VMS_KEYSRC_SESSION ? "network session" : "key file");
	if (r->t.session ? !r->t.keyed : !key)
		return vms_fail(VMS_EKEY, "preamble at byte 0: stream is encrypted and no key was given");
	r->cipher = vms_stage_find_id(VMS_STAGE_CIPHER, r->pre.cipher);
	if (!r->cipher)
		return vms_fail(VMS_EUNSUPPORTED, "cipher %u not available", r->pre.cipher);
	for (unsigned l = 0; l < r->t.nlanes; l++) {
		err = vms_keysched_init(&r->ks[l], r->pre.salt, r->t.session ? r->t.ikm_c2s[l] : key,
					r->pre.stream_id, r->pre.sum, r->pre.cipher);
		if (err)
			return err;
	}
	vms_wipe(r->t.ikm_c2s, sizeof(r->t.ikm_c2s));
	return 0;
}

static int setup_pipeline(struct vms_reader *r)
{
	size_t wire_cap = vms_page_round((size_t)r->pre.chunk_cap + VMS_AEAD_OVERHEAD);
	size_t raw_cap = r->pre.ncodecs ? vms_page_round(r->pre.chunk_cap) : 0;
	size_t slot = wire_cap + raw_cap;
	char what[96];
	unsigned want;
	int err;

	r->nthreads = r->o.threads == VMS_THREADS_AUTO ? vms_online_cpus() : r->o.threads;
	if (r->headers_only)
		r->nthreads = 0;
	/* producer fills one, workers hold one each, the caller holds one. */
	want = r->nthreads ? 2 * r->nthreads + 3 : 1;
	snprintf(what, sizeof(what), "the stream's %u-byte chunks%s with %u threads",
		 r->pre.chunk_cap, r->pre.ncodecs ? " and a codec" : "", r->nthreads);
	err = vms_budget_slots(r->o.memory, slot, r->nthreads ? 3u : 1u, want, what, &r->nslots);
	if (err) {
		/* FORMAT.md preamble rule 22: the stream's chunk cap is more
		 * than this reader accepts, as for max_chunk (rule 11). */
		char m[VMS_MSG_MAX];

		snprintf(m, sizeof(m), "%s", vms_last_error());
		return vms_fail(VMS_ELENGTH, "preamble at byte 0: %s", m);
	}
	r->arena_len = slot * r->nslots;
	r->arena = vms_alloc_prefault(r->arena_len);
	r->jobs = calloc(r->nslots, sizeof(*r->jobs));
	r->jobptrs = calloc(r->nslots, sizeof(*r->jobptrs));
	r->workers = calloc(r->nthreads + 1, sizeof(*r->workers));
	r->wctx = calloc(r->nthreads + 1, sizeof(*r->wctx));
	if (!r->arena || !r->jobs || !r->jobptrs || !r->workers || !r->wctx)
		return vms_fail(VMS_ENOMEM, "out of memory allocating %zu bytes of buffers",
				r->arena_len);
	for (unsigned i = 0; i < r->nslots; i++) {
		r->jobs[i].wire = r->arena + i * slot;
		r->jobs[i].raw = raw_cap ? r->arena + i * slot + wire_cap : NULL;
		r->jobptrs[i] = &r->jobs[i];
	}
	for (unsigned t = 0; t <= r->nthreads; t++) {
		struct rworker *k = &r->workers[t];

		k->r = r;
		r->wctx[t] = k;
		for (unsigned c = 0; c < r->pre.ncodecs; c++) {
			struct vms_stage_conf conf = { .size = sizeof(conf) };

			conf.level = r->codecs[c]->level_default;
			conf.max_chunk = r->pre.chunk_cap;
			err = r->codecs[c]->ctx_new(&k->codec_ctx[c], &conf);
			if (err)
				return vms_fail(err, "codec %s: cannot create a context",
						r->codecs[c]->name);
		}
	}
	/* Without cipher and codec a record needs only its checksum: it is
	 * computed on the thread that read it (vms_rd_work run inline), where
	 * the bytes are in cache; workers would add hand-offs and cold reads. */
	r->direct = !r->headers_only && r->pre.cipher == VMS_CIPHER_NONE && r->pre.ncodecs == 0;
	err = vms_ring_init(&r->ring, r->nslots, r->jobptrs, r->direct ? 0 : r->nthreads, r->wctx,
			    vms_rd_work);
	if (err)
		return vms_fail(err, "out of memory for the work ring");
	err = vms_engine_new(&r->eng, (int)r->t.engine, 4, r->arena, r->arena_len);
	if (err)
		return err;
	err = vms_ring_start(&r->ring);
	if (err)
		return vms_fail(err, "cannot start worker threads");
	if (r->nthreads) {
		if (pthread_create(&r->input, NULL, vms_rd_input_main, r) != 0)
			return vms_fail(VMS_ENOMEM, "cannot start the input thread");
		r->input_started = true;
	}
	r->st.memory = r->arena_len;
	r->st.threads = r->nthreads;
	return 0;
}

int vms_reader_open_transport(struct vms_reader **out, struct vms_transport *t,
			      const struct vms_reader_opts *opts)
{
	struct vms_reader_opts def;
	struct vms_reader *r;
	int err;

	*out = NULL;
	err = vms_reader_opts_take(&def, opts);
	if (err) {
		vms_transport_release(t);
		return err;
	}
	vms_stage_freeze();
	r = calloc(1, sizeof(*r));
	if (!r) {
		vms_transport_release(t);
		return vms_fail(VMS_ENOMEM, "out of memory allocating the reader");
	}
	r->cancel_fd = -1;
	r->t = *t; /* the reader owns the transport from here on */
	vms_wipe(t, sizeof(*t));
	r->o = def;
	r->o.size = sizeof(r->o);
	r->o.key = NULL; /* used once below, never kept */
	r->headers_only = (def.flags & VMS_READER_F_HEADERS_ONLY) != 0;
	r->t0_ns = vms_now_ns();
	r->st.size = sizeof(r->st);
	r->in = &r->lanes[0].in;
	pthread_mutex_init(&r->stats_mu, NULL);
	r->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->cancel_fd < 0) {
		err = vms_fail(VMS_EIO, "eventfd: %s", vms_sys_err(errno));
		goto out_free;
	}
	for (unsigned l = 0; l < r->t.nlanes; l++) {
		if (vms_in_init(&r->lanes[l].in, r->t.fds[l], READER_INBUF)) {
			err = vms_fail(VMS_ENOMEM, "out of memory allocating the input buffer");
			goto out_free;
		}
		r->lanes[l].in.timeout_ms = r->t.idle_timeout_ms;
		r->lanes[l].in.cancel_fd = r->cancel_fd;
	}
	if (def.key && r->t.session) {
		err = vms_fail(VMS_EINVAL, "a network session derives its keys; do not pass a key");
		goto out_free;
	}
	err = read_preamble(r, def.key);
	if (err)
		goto out_free;
	err = setup_pipeline(r);
	if (err)
		goto out_free;
	*out = r;
	return 0;

out_free:
	{
		char msg[VMS_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", vms_last_error());
		vms_reader_free(r);
		vms_fail_msg(err, msg);
	}
	return err;
}

int vms_reader_open_fd(struct vms_reader **out, int fd, const struct vms_reader_opts *opts)
{
	struct vms_transport t;

	vms_transport_init_fd(&t, fd);
	return vms_reader_open_transport(out, &t, opts);
}

const char *vms_reader_engine(const struct vms_reader *r)
{
	return r->eng ? vms_engine_name(r->eng) : "none";
}

const char *vms_reader_peer(const struct vms_reader *r)
{
	return r->t.peer;
}

int vms_reader_info(const struct vms_reader *r, struct vms_stream_info *info)
{
	struct vms_stream_info i = { 0 };

	if (!info || info->size < sizeof(uint32_t))
		return vms_fail(VMS_EINVAL, "stream info: bad size field");
	i.size = info->size;
	i.version_major = r->pre.major;
	i.version_minor = r->pre.minor;
	memcpy(i.stream_id, r->pre.stream_id, 16);
	i.flags = r->pre.flags;
	i.chunk_cap = r->pre.chunk_cap;
	i.cipher = r->pre.cipher;
	i.key_source = r->pre.key_source;
	i.lanes = r->pre.lanes;
	i.preamble_len = r->pre.len;
	i.size_hint = r->pre.size_hint;
	i.creator = r->pre.creator;
	i.codecs = r->codec_list;
	i.has_salt = r->pre.has_salt;
	memcpy(info, &i, info->size < sizeof(i) ? info->size : sizeof(i));
	return 0;
}

/* Next finished record, in order (inline mode reads and verifies it now). */
static struct rjob *next_job(struct vms_reader *r)
{
	if (r->nthreads == 0 && !r->in_stopped) {
		struct rjob *j = vms_ring_acquire(&r->ring);

		if (!j)
			return NULL;
		if (vms_rd_input_record(r, j))
			r->in_stopped = true;
		vms_ring_submit(&r->ring, j);
	}
	return vms_ring_wait_done(&r->ring);
}

static void progress(struct vms_reader *r)
{
	struct vms_stats s;

	if (!r->o.progress)
		return;
	pthread_mutex_lock(&r->stats_mu);
	s = r->st;
	pthread_mutex_unlock(&r->stats_mu);
	s.seconds = (double)(vms_now_ns() - r->t0_ns) * 1e-9;
	r->o.progress(r->o.progress_user, &s);
}

int vms_reader_next(struct vms_reader *r, struct vms_event *ev)
{
	struct rjob *j;
	int err;

	if (!ev || ev->size < sizeof(*ev))
		return vms_fail(VMS_EINVAL, "event: size field %u below %zu (initialise it with VMS_EVENT_INIT)",
				ev ? ev->size : 0, sizeof(*ev));
	if (r->holding) {
		vms_ring_release(&r->ring);
		r->holding = false;
	}
	if (r->err)
		return vms_fail_msg(r->err, r->msg);
	if (r->state == R_DONE)
		return 0;
	if (r->state == R_EOS_SEEN) {
		r->state = R_DONE;
		return 0;
	}
	if (r->aborted) {
		/* located at the ABORT record, like every other refusal */
		int k = snprintf(r->msg, sizeof(r->msg), "record %llu at byte %llu: ",
				 (unsigned long long)r->abort_seq, (unsigned long long)r->abort_pos);
		size_t at = k > 0 ? (size_t)k : 0;

		r->err = VMS_EPEERABORT;
		if (r->headers_only)
			snprintf(r->msg + at, sizeof(r->msg) - at, "peer aborted the stream (reason "
								 "not read: headers-only mode)");
		else
			snprintf(r->msg + at, sizeof(r->msg) - at,
				 "peer aborted the stream: %.300s (peer error %s)", r->abort_text,
				 vms_errname(r->abort_code) ? vms_errname(r->abort_code) : "unknown");
		return vms_fail_msg(r->err, r->msg);
	}
	for (;;) {
		j = next_job(r);
		if (!j)
			return vms_rd_fail(r, VMS_ECANCELED, r->in_seq, 0, "reader stopped");
		r->holding = true;
		err = vms_rd_deliver(r, j, ev);
		if (err)
			return err;
		if (vms_rec_is_known(ev->type))
			break;
		/* ignorable unknown record: verified, skipped */
		vms_ring_release(&r->ring);
		r->holding = false;
	}
	if (ev->type == VMS_REC_EOS)
		r->state = R_EOS_SEEN;
	else if (ev->type == VMS_REC_ABORT) {
		r->aborted = true;
		r->abort_seq = ev->seq;
		r->abort_pos = ev->stream_pos;
	}
	progress(r);
	return 1;
}

int vms_reader_stats(const struct vms_reader *r, struct vms_stats *st)
{
	struct vms_reader *mr = (struct vms_reader *)r;
	struct vms_stats s;

	pthread_mutex_lock(&mr->stats_mu);
	s = r->st;
	pthread_mutex_unlock(&mr->stats_mu);
	s.seconds = (double)(vms_now_ns() - r->t0_ns) * 1e-9;
	return vms_stats_copy_out(st, &s);
}







int vms_reader_ack(struct vms_reader *r, int status, const char *text)
{
	if (!r->t.session)
		return 0;
	if (r->ack_sent)
		return vms_fail(VMS_ESTATE, "acknowledgement already sent");
	if (status > 0)
		return vms_fail(VMS_EINVAL, "status must be 0 or a negative vms error code");
	if (status == 0 && (r->state == R_OPEN || r->err))
		return vms_fail(VMS_ESTATE, "cannot acknowledge a stream that has not ended cleanly");
	return status ? vms_rd_refuse(r, status, text) : vms_rd_send_ack(r, status, text);
}

void vms_reader_free(struct vms_reader *r)
{
	if (!r)
		return;
	if (r->cancel_fd >= 0) {
		uint64_t one = 1;

		(void)!write(r->cancel_fd, &one, sizeof(one));
	}
	if (r->t.session && !r->ack_sent) {
		/* Tell the sender why, rather than letting it time out. */
		int code = r->err ? r->err : VMS_ECANCELED;

		if (r->t.idle_timeout_ms < 0 || r->t.idle_timeout_ms > 2000)
			r->t.idle_timeout_ms = 2000;
		vms_rd_refuse(r, code, r->err ? r->msg : "receiver gave up on the stream");
	}
	if (r->ring.state) {
		/* wake the input thread if it waits for a free slot or for
		 * input (cancel_fd), then join it before the ring goes away */
		vms_ring_stop(&r->ring);
		if (r->input_started)
			pthread_join(r->input, NULL);
		vms_ring_destroy(&r->ring);
	}
	if (r->workers) {
		for (unsigned t = 0; t <= r->nthreads; t++) {
			struct rworker *k = &r->workers[t];

			for (unsigned c = 0; c < r->pre.ncodecs; c++)
				if (k->codec_ctx[c])
					r->codecs[c]->ctx_free(k->codec_ctx[c]);
			if (r->cipher)
				vms_lane_key_free(&k->key, r->cipher);
		}
	}
	for (uint32_t i = 0; i < r->ndev; i++)
		free(r->devs[i].dg);
	free(r->devs);
	for (uint32_t i = 0; i < r->nidev; i++)
		free(r->idevs[i].dg);
	free(r->idevs);
	free(r->dev_result);
	vms_engine_free(r->eng); /* before the arena it may have registered */
	r->eng = NULL;
	vms_free_prefault(r->arena, r->arena_len);
	free(r->jobs);
	free(r->jobptrs);
	free(r->workers);
	free(r->wctx);
	for (unsigned l = 0; l < VMS_LANES_MAX; l++) {
		vms_keysched_wipe(&r->ks[l]);
		vms_in_free(&r->lanes[l].in);
	}
	vms_transport_release(&r->t);
	if (r->cancel_fd >= 0)
		close(r->cancel_fd);
	pthread_mutex_destroy(&r->stats_mu);
	free(r);
}

const char *vms_rec_type_name(uint32_t type)
{
	static const char *const names[] = { NULL, "DEVICE_BEGIN", "DATA", "ZERO", "PHASE",
					     "DEVICE_END", "EOS", "ABORT" };

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : NULL;
}
