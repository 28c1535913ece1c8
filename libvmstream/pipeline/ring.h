/* SPDX-License-Identifier: MIT */
/*
 * Ordered work ring: a fixed set of job slots that one producer fills in
 * order, a pool of worker threads transforms in any order, and one consumer
 * takes back in the original order. The number of slots is the memory
 * budget: a producer that finds no free slot waits (backpressure), so nothing
 * grows with the stream. With zero workers every job runs on the producer's
 * thread at submit time.
 */
#ifndef VMS_RING_H
#define VMS_RING_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef int (*vms_ring_fn)(void *wctx, void *job);

enum vms_slot_state { SLOT_FREE, SLOT_FILLING, SLOT_QUEUED, SLOT_BUSY, SLOT_DONE };

struct vms_ring {
	pthread_mutex_t mu;
	pthread_cond_t cv_work;  /* workers: a job was queued / stop */
	pthread_cond_t cv_done;  /* consumer: a job finished */
	pthread_cond_t cv_free;  /* producer: a slot was freed */
	unsigned n;
	void **jobs;
	uint8_t *state;
	uint64_t head;      /* next slot to fill (monotonic; slot = head % n) */
	uint64_t next_work; /* next queued slot a worker takes */
	uint64_t tail;      /* next slot to consume */
	unsigned nthreads;
	pthread_t *tids;
	void **wctx;        /* one context per worker (index nthreads = inline) */
	vms_ring_fn fn;
	bool stop;
	bool closed;        /* producer will submit nothing more */
	bool started;
	/* time accounting for adaptive tuning (ns) */
	uint64_t producer_wait_ns;
	uint64_t consumer_wait_ns;
	unsigned queued;    /* jobs queued and not yet taken by a worker */
	uint64_t waiting_idx; /* index the consumer waits for, or UINT64_MAX */
};

/* jobs[i] and wctx[0..nthreads] (nthreads+1 entries) are owned by the
 * caller and must outlive the ring. */
int vms_ring_init(struct vms_ring *r, unsigned n, void **jobs, unsigned nthreads, void **wctx,
		  vms_ring_fn fn);
int vms_ring_start(struct vms_ring *r);
/* Wake everybody waiting and make acquire/wait_done return NULL. */
void vms_ring_stop(struct vms_ring *r);
/* Stop workers and join them (pending jobs are abandoned). */
void vms_ring_destroy(struct vms_ring *r);

/* Producer: wait for the next free slot; returns its job. */
void *vms_ring_acquire(struct vms_ring *r);
/* Producer: hand the acquired slot to the workers (or run it inline). */
void vms_ring_submit(struct vms_ring *r);
/* Consumer: wait until the oldest submitted job is done (waiting for a
 * submission if none is in flight); NULL once the ring is closed and drained,
 * or stopped. */
void *vms_ring_wait_done(struct vms_ring *r);
/* Producer: no more submissions; wakes a consumer waiting for one. */
void vms_ring_close(struct vms_ring *r);
/* Non-blocking: the oldest job if it is done, else NULL. */
void *vms_ring_peek_done(struct vms_ring *r);
/* Consumer with several jobs in flight: the job at absolute index idx
 * (tail <= idx) if it is done, else NULL (peek) ... */
void *vms_ring_peek_index(struct vms_ring *r, uint64_t idx);
/* ... or wait for it; NULL once the ring is closed with idx == head, or
 * stopped. */
void *vms_ring_wait_index(struct vms_ring *r, uint64_t idx);
/* Absolute index of the oldest unreleased job. */
uint64_t vms_ring_tail(struct vms_ring *r);
/* Consumer: release the oldest job's slot. */
void vms_ring_release(struct vms_ring *r);
/* Jobs submitted and not yet released. */
uint64_t vms_ring_in_flight(struct vms_ring *r);

uint64_t vms_now_ns(void);

#endif
