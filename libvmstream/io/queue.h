/* SPDX-License-Identifier: MIT */
/*
 * The floor of the io unit: the state both backends (posix.c, uring.c)
 * share and the helpers they call (queue.c): the operation pool, the per-fd
 * queues, the list of completions not yet handed out, the debug counters,
 * per-wait deadlines. queue.c calls nothing above it; the backends call it,
 * engine.c calls it and the backends (through struct vms_backend_ops,
 * backend.h). Not part of the public API.
 *
 * Ordering model (both backends): every fd with pending operations has one
 * vms_fdq. Writes on it form a FIFO; only its head is ever being written
 * (one write in flight per fd), and the next one starts only after the head
 * completed in full. Different fds progress concurrently. If a write fails,
 * the writes still queued behind it on that fd complete with -ECANCELED
 * without touching the fd (bytes after a gap would corrupt the stream).
 */
#ifndef VMS_IO_QUEUE_H
#define VMS_IO_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include "io/engine.h" /* the unit's vocabulary: vms_io_done, the counters */

/* What fstat() says an fd is, once per operation. */
enum vms_fd_kind {
	VMS_FD_OTHER = 0, /* regular file, tty, character device, ... */
	VMS_FD_SOCK = 1,
	VMS_FD_FIFO = 2,  /* pipe or named FIFO */
};

enum vms_op_type {
	VMS_OP_WRITE = 1,      /* queued writev */
	VMS_OP_RECV = 2,       /* queued recv */
	VMS_OP_SYNC_WRITE = 3, /* write_full (uring only; lives on the stack) */
	VMS_OP_SYNC_READ = 4,  /* one read of read_full (uring only) */
};

struct vms_fdq;

struct vms_op {
	struct vms_op *next;   /* fd write queue, free list or done list */
	struct vms_fdq *q;     /* NULL for sync ops */
	void *user;
	long res;              /* final result once complete */
	size_t total;          /* bytes asked for */
	size_t done;           /* bytes written so far (writes) */
	int fd;
	uint8_t type;          /* enum vms_op_type */
	uint8_t is_sock;       /* fstat() said S_ISSOCK when queued */
	uint8_t is_fifo;       /* ... or S_ISFIFO */
	int alt_fd;            /* posix: private O_NONBLOCK open of a FIFO, or -1 */
	uint8_t niov, cur;     /* iov[cur..niov) still to transfer, advanced in place */
	struct iovec iov[VMS_ENGINE_IOV_MAX];
	/* io_uring state */
	struct msghdr msg;     /* SENDMSG: must stay put until the CQE */
	uint8_t inflight;      /* nothing, the transfer, or a POLL_ADD (uring.c) */
	uint8_t zc;            /* SEND_ZC issued: completion comes with the notification */
	uint8_t canceling;     /* a cancel was sent: never reissue */
	uint8_t complete;      /* sync ops: res is final */
	uint8_t retries;       /* resubmissions after a cancel we did not ask for */
	int zc_res;
	uint32_t sqe_pos;      /* SQ position of its latest SQE (consumed yet?) */
	void *sqe;             /* that SQE */
};

struct vms_fdq {
	struct vms_fdq *next;  /* active list or free list */
	int fd;
	struct vms_op *whead, *wtail; /* writes in queue order; whead is in progress */
	struct vms_op *recv;          /* at most one */
	/* posix: readiness reported by poll(), cleared when an attempt blocks */
	uint8_t wready, rready;
	/* posix: socket attempt returned EAGAIN; wait for poll() before retrying */
	uint8_t wblocked, rblocked;
	unsigned wflight;      /* writes of this fd being transferred (debug: max 1) */
};

struct vms_backend_ops;

/* The part of every engine both backends share; a backend's own struct
 * starts with it. */
struct vms_engine {
	const struct vms_backend_ops *ops;
	unsigned depth;
	unsigned npending;       /* ops taken from the pool and not yet handed out */
	unsigned nbusy;          /* fds whose write queue is not empty */
	struct vms_op *op_pool, *free_ops;
	struct vms_fdq *fdq_pool, *free_fdqs, *active;
	struct vms_op *done_head, *done_tail;
	uint8_t *arena;
	size_t arena_len;
	struct vms_engine_stats st;
};

/* Pools for depth operations (ops is only stored). 0 or VMS_ENOMEM. */
int vms_ioq_init(struct vms_engine *e, const struct vms_backend_ops *ops, unsigned depth,
		 void *arena, size_t arena_len);
void vms_ioq_free(struct vms_engine *e);

/* Queue a writev of iov[0..n) (total bytes, not 0) at the tail of fd's
 * write queue, or fd's one receive of len bytes into buf; kind: enum
 * vms_fd_kind. Returns the operation for the backend to start, or NULL
 * after vms_fail(VMS_ESTATE) (depth operations pending; recv: fd already
 * has a receive). Arguments are the caller's to check. */
struct vms_op *vms_ioq_write(struct vms_engine *e, int fd, int kind, const struct iovec *iov,
			     int n, size_t total, void *user);
struct vms_op *vms_ioq_recv(struct vms_engine *e, int fd, int kind, void *buf, size_t len,
			    void *user);

/* Record op's final result and queue it for vms_engine_wait(). For a write
 * this pops it from its fd queue (and cancels the rest of the queue if res <
 * 0); returns the write that should start next on that fd, or NULL. */
struct vms_op *vms_ioq_complete(struct vms_engine *e, struct vms_op *op, long res);
/* Hand out up to max completions. */
unsigned vms_ioq_drain(struct vms_engine *e, struct vms_io_done *done, unsigned max);
/* Advance op's iovecs past n written bytes. */
void vms_ioq_advance(struct vms_op *op, size_t n);
/* Is [p, p+len) inside the arena? */
int vms_ioq_in_arena(const struct vms_engine *e, const void *p, size_t len);

/* Per-wait deadlines on vms_now_ns() (base/clock.h): timeout_ms -1 = none,
 * deadline -1 = none. */
int64_t vms_ioq_deadline(int timeout_ms);
/* Milliseconds left until deadline (rounded up), 0 if past, -1 if none. */
int vms_ioq_left_ms(int64_t deadline);

#endif
