/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base/clock.h"
#include "pipeline/ring.h"
#include "vmstream.h"

struct worker_arg {
	struct vms_ring *r;
	unsigned idx;
};

static unsigned job_index(const struct vms_ring *r, const void *job)
{
	for (unsigned i = 0; i < r->n; i++)
		if (r->jobs[i] == job)
			return i;
	abort(); /* not one of ours: a caller bug, never input-driven */
}

int vms_ring_init(struct vms_ring *r, unsigned n, void **jobs, unsigned nthreads, void **wctx,
		  vms_ring_fn fn)
{
	memset(r, 0, sizeof(*r));
	r->n = n;
	r->jobs = jobs;
	r->nthreads = nthreads;
	r->wctx = wctx;
	r->fn = fn;
	r->waiting_idx = UINT64_MAX;
	r->state = calloc(n, 1);
	r->freelist = calloc(n, sizeof(*r->freelist));
	r->order = calloc(n, sizeof(*r->order));
	r->tids = nthreads ? calloc(nthreads, sizeof(*r->tids)) : NULL;
	if (!r->state || !r->freelist || !r->order || (nthreads && !r->tids)) {
		free(r->state);
		free(r->freelist);
		free(r->order);
		free(r->tids);
		r->state = NULL;
		return VMS_ENOMEM;
	}
	for (unsigned i = 0; i < n; i++)
		r->freelist[i] = n - 1 - i;
	r->nfree = n;
	pthread_mutex_init(&r->mu, NULL);
	pthread_mutex_init(&r->inline_mu, NULL);
	pthread_cond_init(&r->cv_work, NULL);
	pthread_cond_init(&r->cv_done, NULL);
	pthread_cond_init(&r->cv_free, NULL);
	pthread_cond_init(&r->cv_tail, NULL);
	return 0;
}

static void *worker_main(void *p)
{
	struct worker_arg *a = p;
	struct vms_ring *r = a->r;
	void *wctx = r->wctx[a->idx];

	free(a);
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->stop && r->next_work == r->head)
			pthread_cond_wait(&r->cv_work, &r->mu);
		if (r->stop)
			break;
		uint64_t i = r->next_work++;
		unsigned j = r->order[i % r->n];

		r->state[j] = SLOT_BUSY;
		r->queued--;
		pthread_mutex_unlock(&r->mu);
		r->fn(wctx, r->jobs[j]); /* errors travel inside the job */
		pthread_mutex_lock(&r->mu);
		r->state[j] = SLOT_DONE;
		if (i == r->tail || i == r->waiting_idx)
			pthread_cond_signal(&r->cv_done);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

int vms_ring_start(struct vms_ring *r)
{
	for (unsigned t = 0; t < r->nthreads; t++) {
		struct worker_arg *a = malloc(sizeof(*a));

		if (!a)
			return VMS_ENOMEM;
		a->r = r;
		a->idx = t;
		if (pthread_create(&r->tids[t], NULL, worker_main, a) != 0) {
			free(a);
			r->nthreads = t; /* join only those started */
			return VMS_ENOMEM;
		}
	}
	r->started = true;
	return 0;
}

void vms_ring_stop(struct vms_ring *r)
{
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->cv_work);
	pthread_cond_broadcast(&r->cv_done);
	pthread_cond_broadcast(&r->cv_free);
	pthread_cond_broadcast(&r->cv_tail);
	pthread_mutex_unlock(&r->mu);
}

void vms_ring_destroy(struct vms_ring *r)
{
	if (!r->state)
		return;
	vms_ring_stop(r);
	if (r->started)
		for (unsigned t = 0; t < r->nthreads; t++)
			pthread_join(r->tids[t], NULL);
	pthread_mutex_destroy(&r->mu);
	pthread_mutex_destroy(&r->inline_mu);
	pthread_cond_destroy(&r->cv_work);
	pthread_cond_destroy(&r->cv_done);
	pthread_cond_destroy(&r->cv_free);
	pthread_cond_destroy(&r->cv_tail);
	free(r->state);
	free(r->freelist);
	free(r->order);
	free(r->tids);
	r->state = NULL;
}

void *vms_ring_acquire(struct vms_ring *r)
{
	unsigned j;

	pthread_mutex_lock(&r->mu);
	if (r->nfree == 0) {
		uint64_t t0 = vms_now_ns();

		while (r->nfree == 0 && !r->stop)
			pthread_cond_wait(&r->cv_free, &r->mu);
		r->producer_wait_ns += vms_now_ns() - t0;
	}
	if (r->stop) {
		pthread_mutex_unlock(&r->mu);
		return NULL;
	}
	j = r->freelist[--r->nfree];
	r->state[j] = SLOT_FILLING;
	pthread_mutex_unlock(&r->mu);
	return r->jobs[j];
}

void *vms_ring_try_acquire(struct vms_ring *r)
{
	void *job = NULL;
	unsigned j;

	pthread_mutex_lock(&r->mu);
	if (r->nfree > 0 && !r->stop) {
		j = r->freelist[--r->nfree];
		r->state[j] = SLOT_FILLING;
		job = r->jobs[j];
	}
	pthread_mutex_unlock(&r->mu);
	return job;
}

void vms_ring_unacquire(struct vms_ring *r, void *job)
{
	unsigned j = job_index(r, job);

	pthread_mutex_lock(&r->mu);
	r->state[j] = SLOT_FREE;
	r->freelist[r->nfree++] = j;
	pthread_cond_signal(&r->cv_free);
	pthread_mutex_unlock(&r->mu);
}

uint64_t vms_ring_submit(struct vms_ring *r, void *job)
{
	unsigned j = job_index(r, job);
	uint64_t pos;

	pthread_mutex_lock(&r->mu);
	pos = r->head++;
	r->order[pos % r->n] = j;
	if (r->nthreads == 0) {
		/* Inline: run now on the submitter's thread. */
		r->state[j] = SLOT_BUSY;
		r->next_work++;
		pthread_mutex_unlock(&r->mu);
		pthread_mutex_lock(&r->inline_mu);
		r->fn(r->wctx[0], job);
		pthread_mutex_unlock(&r->inline_mu);
		pthread_mutex_lock(&r->mu);
		r->state[j] = SLOT_DONE;
		pthread_cond_broadcast(&r->cv_done);
		pthread_mutex_unlock(&r->mu);
		return pos;
	}
	r->state[j] = SLOT_QUEUED;
	r->queued++;
	pthread_cond_signal(&r->cv_work);
	pthread_mutex_unlock(&r->mu);
	return pos;
}

void vms_ring_close(struct vms_ring *r)
{
	pthread_mutex_lock(&r->mu);
	r->closed = true;
	pthread_cond_broadcast(&r->cv_done);
	pthread_mutex_unlock(&r->mu);
}

static void *done_at(struct vms_ring *r, uint64_t idx)
{
	unsigned j;

	if (idx < r->tail || idx >= r->head)
		return NULL;
	j = r->order[idx % r->n];
	return r->state[j] == SLOT_DONE ? r->jobs[j] : NULL;
}

void *vms_ring_wait_index(struct vms_ring *r, uint64_t idx)
{
	void *job = NULL;
	uint64_t t0 = 0;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		job = done_at(r, idx);
		if (job)
			break;
		if (r->stop || (idx >= r->head && r->closed))
			break;
		if (!t0)
			t0 = vms_now_ns();
		r->waiting_idx = idx;
		pthread_cond_wait(&r->cv_done, &r->mu);
	}
	r->waiting_idx = UINT64_MAX;
	if (t0)
		r->consumer_wait_ns += vms_now_ns() - t0;
	pthread_mutex_unlock(&r->mu);
	return job;
}

void *vms_ring_wait_done(struct vms_ring *r)
{
	uint64_t tail;

	pthread_mutex_lock(&r->mu);
	tail = r->tail;
	pthread_mutex_unlock(&r->mu);
	return vms_ring_wait_index(r, tail);
}

void *vms_ring_peek_index(struct vms_ring *r, uint64_t idx)
{
	void *job;

	pthread_mutex_lock(&r->mu);
	job = done_at(r, idx);
	pthread_mutex_unlock(&r->mu);
	return job;
}

uint64_t vms_ring_tail(struct vms_ring *r)
{
	uint64_t t;

	pthread_mutex_lock(&r->mu);
	t = r->tail;
	pthread_mutex_unlock(&r->mu);
	return t;
}

void vms_ring_release(struct vms_ring *r)
{
	unsigned j;

	pthread_mutex_lock(&r->mu);
	j = r->order[r->tail % r->n];
	r->state[j] = SLOT_FREE;
	r->freelist[r->nfree++] = j;
	r->tail++;
	pthread_cond_signal(&r->cv_free);
	if (r->tail_waiters)
		pthread_cond_broadcast(&r->cv_tail);
	pthread_mutex_unlock(&r->mu);
}

uint64_t vms_ring_head(struct vms_ring *r)
{
	uint64_t h;

	pthread_mutex_lock(&r->mu);
	h = r->head;
	pthread_mutex_unlock(&r->mu);
	return h;
}

bool vms_ring_wait_tail(struct vms_ring *r, uint64_t pos)
{
	bool ok;

	pthread_mutex_lock(&r->mu);
	r->tail_waiters++;
	while (r->tail < pos && !r->stop)
		pthread_cond_wait(&r->cv_tail, &r->mu);
	r->tail_waiters--;
	ok = r->tail >= pos;
	pthread_mutex_unlock(&r->mu);
	return ok;
}
