/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "pipeline/ring.h"
#include "vmstream.h"

uint64_t vms_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct worker_arg {
	struct vms_ring *r;
	unsigned idx;
};

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
	r->tids = nthreads ? calloc(nthreads, sizeof(*r->tids)) : NULL;
	if (!r->state || (nthreads && !r->tids)) {
		free(r->state);
		free(r->tids);
		return VMS_ENOMEM;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv_work, NULL);
	pthread_cond_init(&r->cv_done, NULL);
	pthread_cond_init(&r->cv_free, NULL);
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
		unsigned s = (unsigned)(i % r->n);
		void *job = r->jobs[s];

		r->state[s] = SLOT_BUSY;
		r->queued--;
		pthread_mutex_unlock(&r->mu);
		r->fn(wctx, job); /* errors travel inside the job */
		pthread_mutex_lock(&r->mu);
		r->state[s] = SLOT_DONE;
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
	pthread_cond_destroy(&r->cv_work);
	pthread_cond_destroy(&r->cv_done);
	pthread_cond_destroy(&r->cv_free);
	free(r->state);
	free(r->tids);
	r->state = NULL;
}

void *vms_ring_acquire(struct vms_ring *r)
{
	unsigned s;

	pthread_mutex_lock(&r->mu);
	s = (unsigned)(r->head % r->n);
	if (r->state[s] != SLOT_FREE) {
		uint64_t t0 = vms_now_ns();

		while (r->state[s] != SLOT_FREE && !r->stop)
			pthread_cond_wait(&r->cv_free, &r->mu);
		r->producer_wait_ns += vms_now_ns() - t0;
	}
	if (r->stop) {
		pthread_mutex_unlock(&r->mu);
		return NULL;
	}
	r->state[s] = SLOT_FILLING;
	pthread_mutex_unlock(&r->mu);
	return r->jobs[s];
}

void vms_ring_submit(struct vms_ring *r)
{
	unsigned s;

	pthread_mutex_lock(&r->mu);
	s = (unsigned)(r->head % r->n);
	if (r->nthreads == 0) {
		/* Inline: run now on the producer's thread. */
		r->state[s] = SLOT_BUSY;
		r->head++;
		r->next_work++;
		pthread_mutex_unlock(&r->mu);
		r->fn(r->wctx[0], r->jobs[s]);
		pthread_mutex_lock(&r->mu);
		r->state[s] = SLOT_DONE;
		pthread_cond_signal(&r->cv_done);
		pthread_mutex_unlock(&r->mu);
		return;
	}
	r->state[s] = SLOT_QUEUED;
	r->head++;
	r->queued++;
	pthread_cond_signal(&r->cv_work);
	pthread_mutex_unlock(&r->mu);
}

void *vms_ring_wait_done(struct vms_ring *r)
{
	void *job = NULL;
	uint64_t t0 = 0;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		unsigned s = (unsigned)(r->tail % r->n);

		if (r->tail < r->head && r->state[s] == SLOT_DONE) {
			job = r->jobs[s];
			break;
		}
		if (r->stop || (r->tail == r->head && r->closed))
			break;
		if (!t0)
			t0 = vms_now_ns();
		pthread_cond_wait(&r->cv_done, &r->mu);
	}
	if (t0)
		r->consumer_wait_ns += vms_now_ns() - t0;
	pthread_mutex_unlock(&r->mu);
	return job;
}

void *vms_ring_peek_index(struct vms_ring *r, uint64_t idx)
{
	void *job = NULL;

	pthread_mutex_lock(&r->mu);
	if (idx < r->head && r->state[idx % r->n] == SLOT_DONE)
		job = r->jobs[idx % r->n];
	pthread_mutex_unlock(&r->mu);
	return job;
}

void *vms_ring_wait_index(struct vms_ring *r, uint64_t idx)
{
	void *job = NULL;
	uint64_t t0 = 0;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		if (idx < r->head && r->state[idx % r->n] == SLOT_DONE) {
			job = r->jobs[idx % r->n];
			break;
		}
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

uint64_t vms_ring_tail(struct vms_ring *r)
{
	uint64_t t;

	pthread_mutex_lock(&r->mu);
	t = r->tail;
	pthread_mutex_unlock(&r->mu);
	return t;
}

void vms_ring_close(struct vms_ring *r)
{
	pthread_mutex_lock(&r->mu);
	r->closed = true;
	pthread_cond_broadcast(&r->cv_done);
	pthread_mutex_unlock(&r->mu);
}

void *vms_ring_peek_done(struct vms_ring *r)
{
	void *job = NULL;
	unsigned s;

	pthread_mutex_lock(&r->mu);
	s = (unsigned)(r->tail % r->n);
	if (r->tail < r->head && r->state[s] == SLOT_DONE)
		job = r->jobs[s];
	pthread_mutex_unlock(&r->mu);
	return job;
}

void vms_ring_release(struct vms_ring *r)
{
	pthread_mutex_lock(&r->mu);
	r->state[r->tail % r->n] = SLOT_FREE;
	r->tail++;
	pthread_cond_signal(&r->cv_free);
	pthread_mutex_unlock(&r->mu);
}

uint64_t vms_ring_in_flight(struct vms_ring *r)
{
	uint64_t n;

	pthread_mutex_lock(&r->mu);
	n = r->head - r->tail;
	pthread_mutex_unlock(&r->mu);
	return n;
}
