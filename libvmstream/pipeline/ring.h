/* SPDX-License-Identifier: MIT */
/*
 * Ordered work ring: a fixed set of jobs that producers take from a free
 * list and submit in any order of filling; submission fixes the order. A pool
 * of worker threads transforms submitted jobs in parallel; one consumer takes
 * them back in submission order. The number of jobs is the memory budget: a
 * producer that finds no free job waits (backpressure), so nothing grows with
 * the stream. With zero workers a job runs on the submitter's thread.
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
	pthread_cond_t cv_free;  /* producers: a job was freed */
	pthread_cond_t cv_tail;  /* vms_ring_wait_tail(): the tail moved */
	unsigned tail_waiters;
	unsigned n;
	void **jobs;        /* the n jobs */
	uint8_t *state;     /* per job */
	unsigned *freelist; /* stack of free job indices */
	unsigned nfree;
	unsigned *order;    /* job index at submission position % n */
	uint64_t head;      /* next submission position */
	uint64_t next_work; /* next position a worker takes */
	uint64_t tail;      /* next position to consume */
	unsigned nthreads;
	pthread_t *tids;
	void **wctx;        /* one context per worker (index 0 also inline) */
	vms_ring_fn fn;
	bool stop;
	bool closed;        /* producers will submit nothing more */
	bool started;
	/* time accounting for adaptive tuning (ns) */
	uint64_t producer_wait_ns;
	uint64_t consumer_wait_ns;
	unsigned queued;    /* jobs queued and not yet taken by a worker */
	uint64_t waiting_idx; /* position the consumer waits for, or UINT64_MAX */
	pthread_mutex_t inline_mu; /* serialises inline runs on wctx[0] */
};

/* jobs[0..n) and wctx[0..nthreads] (nthreads+1 entries) are owned by the
 * caller and must outlive the ring. */
int vms_ring_init(struct vms_ring *r, unsigned n, void **jobs, unsigned nthreads, void **wctx,
		  vms_ring_fn fn);
int vms_ring_start(struct vms_ring *r);
/* Wake everybody waiting and make acquire/wait return NULL. */
void vms_ring_stop(struct vms_ring *r);
/* Stop workers and join them (pending jobs are abandoned). */
void vms_ring_destroy(struct vms_ring *r);

/* Producer: wait for a free job (NULL once stopped). Thread-safe. */
void *vms_ring_acquire(struct vms_ring *r);
/* Producer: a free job if there is one now, else NULL (never waits). */
void *vms_ring_try_acquire(struct vms_ring *r);
/* Producer: give an acquired job back unused. */
void vms_ring_unacquire(struct vms_ring *r, void *job);
/* Producer: hand an acquired job to the workers (or run it inline); returns
 * its position. Callers that need positions to follow another order (e.g.
 * sequence numbers) serialise their submissions. */
uint64_t vms_ring_submit(struct vms_ring *r, void *job);
/* Producer: no more submissions; wakes a consumer waiting for one. */
void vms_ring_close(struct vms_ring *r);

/* Consumer: wait until the oldest submitted job is done (waiting for a
 * submission if none is in flight); NULL once the ring is closed and drained,
 * or stopped. */
void *vms_ring_wait_done(struct vms_ring *r);
/* The job at position idx (>= tail) if it is done, else NULL ... */
void *vms_ring_peek_index(struct vms_ring *r, uint64_t idx);
/* ... or wait for it; NULL once the ring is closed with idx == head, or
 * stopped. */
void *vms_ring_wait_index(struct vms_ring *r, uint64_t idx);
/* Position of the oldest unreleased job. */
uint64_t vms_ring_tail(struct vms_ring *r);
/* Position the next submission will get (= jobs submitted so far). */
uint64_t vms_ring_head(struct vms_ring *r);
/* Wait until every job before position pos has been released; false if the
 * ring was stopped first. */
bool vms_ring_wait_tail(struct vms_ring *r, uint64_t pos);
/* Consumer: release the oldest job back to the free list. */
void vms_ring_release(struct vms_ring *r);

#endif
