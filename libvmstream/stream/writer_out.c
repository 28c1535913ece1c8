/* SPDX-License-Identifier: MIT */
/* The writer's output: finished records to the engine in sequence order
 * (one emitter thread, or inline), the rate limit, the auto level, and the
 * receiver's acknowledgement on lane 0. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include "base/clock.h"
#include "stage/tuner.h"
#include "stream/ack.h"
#include "base/error.h"
#include "stream/writer_internal.h"

/* auto: at the end of each measuring window, the level for the next one. */
static void tune_level(struct vms_writer *w)
{
	struct vms_tune_win *t = &w->tune;
	uint64_t now = vms_now_ns(), span = now - t->t0;
	uint64_t starve, prod, write = w->emit_write_ns - t->write;

	if (span < VMS_TUNER_WINDOW_NS)
		return;
	pthread_mutex_lock(&w->ring.mu);
	starve = w->ring.consumer_wait_ns - t->starve;
	prod = w->ring.producer_wait_ns - t->prod;
	t->starve = w->ring.consumer_wait_ns;
	t->prod = w->ring.producer_wait_ns;
	pthread_mutex_unlock(&w->ring.mu);
	t->t0 = now;
	t->write = w->emit_write_ns;
	atomic_store(&w->level, vms_tuner_next(atomic_load(&w->level), span, write, starve, prod));
}

static struct vms_ack_keys ack_keys(const struct vms_writer *w)
{
	struct vms_ack_keys k = { w->t.keyed, &w->pre, w->t.ikm_s2c[0] };

	return k;
}

/* The frame's body may be at most what this stream's devices need (every
 * device begun has an entry; a refusal has none); the buffer grows to hold
 * exactly that. No receive is in flight while this runs. 0, or the failure
 * recorded. */
static int ack_reserve(struct vms_writer *w, uint32_t *body_len)
{
	size_t most = vms_ack_body_len(w->ndev, VMS_ACK_TEXT_MAX);
	size_t need;
	uint8_t *nb;
	int err;

	_Static_assert(ACK_BUF_MIN <= VMS_ACK_FRAME_MAX, "a refusal fits the frame bound");
	err = vms_ack_header(w->ackbuf, (uint32_t)most, body_len);
	if (err)
		return vms_wr_set_err(w, err, vms_last_error());
	need = VMS_ACK_FRAME_HDR + (size_t)*body_len + VMS_ACK_TRAILER_MAX;
	if (need <= w->ackcap)
		return 0;
	nb = realloc(w->ackbuf, need);
	if (!nb)
		return vms_wr_fail(w, VMS_ENOMEM, "out of memory for a %zu-byte acknowledgement", need);
	w->ackbuf = nb;
	w->ackcap = need;
	return 0;
}

/* Bytes from the receiver on lane 0: its acknowledgement, or a refusal
 * sent early. A complete frame is verified (AEAD or checksum). */
static void ack_input(struct vms_writer *w, long res)
{
	struct vms_ack_keys k = ack_keys(w);
	uint32_t body_len;
	int err;

	w->ack_watch = false;
	if (res == -ECANCELED)
		return; /* io_uring cancels a thread's requests when it exits:
			   the output thread's watch is re-armed by the caller */
	if (res < 0) {
		if (!w->acked)
			vms_wr_fail(w, res == -ETIMEDOUT ? VMS_ETIMEOUT : VMS_ENET,
				    "receiver connection failed: %s", vms_sys_err((int)-res));
		return;
	}
	if (res == 0) {
		w->ack_eof = true;
		if (!w->acked)
			vms_wr_fail(w, VMS_ENET, "receiver closed the connection without acknowledging");
		return;
	}
	w->ack_len += (size_t)res;
	if (w->ack_len < VMS_ACK_FRAME_HDR || ack_reserve(w, &body_len))
		return;
	if (w->ack_len < VMS_ACK_FRAME_HDR + (size_t)body_len + vms_ack_trailer(k.keyed))
		return;
	err = vms_ack_open(&k, w->ackbuf, body_len, &w->ack);
	if (err) {
		vms_wr_set_err(w, err, vms_last_error());
		return;
	}
	w->acked = true;
	if (w->ack.status != 0) {
		vms_wr_fail(w, VMS_EPEERABORT, "receiver refused the stream: %s (%s)", w->ack.text,
			    vms_errname(w->ack.status) ? vms_errname(w->ack.status) : "unknown error");
		return;
	}
	if (!w->finished)
		vms_wr_fail(w, VMS_EPROTO, "receiver acknowledged before the end of the stream");
}

void vms_wr_ack_watch(struct vms_writer *w)
{
	if (!w->t.session || w->ack_watch || w->ack_eof || w->acked ||
	    w->ack_len >= w->ackcap)
		return;
	if (vms_engine_recv(w->eng, w->t.fds[0], w->ackbuf + w->ack_len, w->ackcap - w->ack_len,
			    ACK_TAG) == 0)
		w->ack_watch = true;
}

static void handle_done(struct vms_writer *w, const struct vms_io_done *d)
{
	struct wjob *j;

	w->last_progress_ns = vms_now_ns();
	if (d->user == ACK_TAG) {
		ack_input(w, d->res);
		vms_wr_ack_watch(w);
		return;
	}
	j = d->user;
	w->writes_in_flight--;
	j->written = true;
	if (d->res < 0) {
		vms_wr_fail(w, vms_wr_write_err(w, d->res), "record %llu: write failed (%s): %s",
		      (unsigned long long)j->seq, w->t.session ? "to the receiver" : "output",
		      vms_sys_err((int)-d->res));
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
		return vms_wr_fail(w, n, "I/O engine: %s", vms_last_error());
	for (int i = 0; i < n; i++)
		handle_done(w, &done[i]);
	if (n == 0 && w->t.idle_timeout_ms >= 0 &&
	    vms_now_ns() - w->last_progress_ns > (uint64_t)w->t.idle_timeout_ms * 1000000u)
		return vms_wr_fail(w, VMS_ETIMEOUT, "no progress for %d ms (receiver stalled or network down)",
			     w->t.idle_timeout_ms);
	return 0;
}

static void release_written(struct vms_writer *w)
{
	struct wjob *j;

	while ((j = vms_ring_peek_index(&w->ring, vms_ring_tail(&w->ring))) && j->written) {
		j->written = false;
		vms_wr_job_release(w, j);
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
		vms_wr_fail(w, err, "record %llu: cannot queue the write: %s", (unsigned long long)j->seq,
		      vms_last_error());
		j->written = true;
		return;
	}
	w->writes_in_flight++;
	vms_pace_sent(&w->pace, VMS_HDR_LEN + j->wire_len);
}

/* Rate limit: nanoseconds to wait before `bytes` more may go out. */
static uint64_t rate_delay(struct vms_writer *w, uint64_t bytes)
{
	return w->pace.rate ? vms_pace_delay(&w->pace, vms_now_ns(), bytes) : 0;
}

/* After a failure: let in-flight operations finish (they fail fast once
 * the lanes are shut down) so no buffer is still in the kernel's hands. */
static void drain_inflight(struct vms_writer *w)
{
	vms_wr_shutdown_lanes(w);
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
		vms_wr_job_release(w, j);
	}
}

/* Session end: half-close every lane (the receiver sees EOF after EOS),
 * then wait for the acknowledgement. Runs on the thread that armed the
 * receive for it: io_uring completes a request through its submitting
 * task, and one submitted by an exited thread only completes (cancelled)
 * through the kernel's delayed fallback, milliseconds later. */
void vms_wr_ack_wait(struct vms_writer *w)
{
	w->last_progress_ns = vms_now_ns();
	for (unsigned l = 0; l < w->t.nlanes; l++)
		shutdown(w->t.fds[l], SHUT_WR);
	while (!w->acked && !atomic_load(&w->err)) {
		vms_wr_ack_watch(w);
		reap(w, 1000);
	}
	if (atomic_load(&w->err))
		drain_inflight(w);
}

void *vms_wr_emitter_main(void *p)
{
	struct vms_writer *w = p;
	uint64_t next = vms_ring_tail(&w->ring);

	w->last_progress_ns = vms_now_ns();
	w->tune.t0 = vms_now_ns();
	for (;;) {
		uint64_t delay = 0;
		struct wjob *j;

		if (atomic_load(&w->err)) {
			emitter_drain_failed(w);
			break;
		}
		vms_wr_ack_watch(w);
		while (w->writes_in_flight < ENGINE_DEPTH &&
		       (j = vms_ring_peek_index(&w->ring, next)) != NULL) {
			if (j->err) {
				vms_wr_set_err(w, j->err, j->msg);
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
					vms_wr_ack_wait(w);
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
			tune_level(w);
	}
	return NULL;
}

/* Inline mode (no threads): write the record now on the caller's thread. */
int vms_wr_emit_inline(struct vms_writer *w, struct wjob *j)
{
	uint64_t delay;

	if (j->err)
		return vms_wr_set_err(w, j->err, j->msg);
	while ((delay = rate_delay(w, VMS_HDR_LEN + j->wire_len)) != 0) {
		struct timespec ts = { (time_t)(delay / 1000000000u), (long)(delay % 1000000000u) };

		nanosleep(&ts, NULL);
	}
	vms_wr_ack_watch(w);
	queue_job(w, j);
	while (!j->written && !atomic_load(&w->err))
		reap(w, 1000);
	if (atomic_load(&w->err))
		drain_inflight(w);
	j->written = false;
	return vms_wr_check(w);
}
