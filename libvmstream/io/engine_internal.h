/* SPDX-License-Identifier: MIT */
/*
 * What the two engines (uring.c, posix.c) share with the dispatcher
 * (engine.c): the operation pool, the per-fd write queues, the list of
 * completions not yet handed out, and debug counters that tests and
 * bench_engine read through vms_engine_stats(). Not part of the public API.
 *
 * Ordering model (both engines): every fd with pending operations has one
 * vms_fdq. Writes on it form a FIFO; only its head is ever being written
 * (one write in flight per fd), and the next one starts only after the head
 * completed in full. Different fds progress concurrently. If a write fails,
 * the writes still queued behind it on that fd complete with -ECANCELED
 * without touching the fd (bytes after a gap would corrupt the stream).
 */
#ifndef VMS_ENGINE_INTERNAL_H
#define VMS_ENGINE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include "io/engine.h"

#define VMS_ENGINE_DEPTH_MAX 4096u
#define VMS_ENGINE_IOV_MAX 4

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

/* Debug counters; cumulative over the engine's life. */
struct vms_engine_stats {
	uint64_t writes;            /* writev operations queued */
	uint64_t recvs;             /* recv operations queued */
	uint64_t fixed_ops;         /* transfers issued with the registered buffer
				       (READ_FIXED, WRITE_FIXED, SEND_ZC fixed) */
	uint64_t zc_ops;            /* SEND_ZC issued */
	uint64_t short_writes;      /* partial writes continued internally */
	uint64_t eagain;            /* EAGAIN answered by waiting for readiness */
	uint64_t syscalls_wait;     /* io_uring_enter / poll calls made while waiting */
	unsigned max_fd_writes;     /* most writes in progress on one fd at once (1) */
	unsigned max_fds_busy;      /* most fds with a write in progress at once */
	int fixed_registered;       /* the arena is a registered buffer */
	int reg_err;                /* -errno of a failed registration (0: none tried
				       or it worked) */
	uint64_t requeued;          /* ops the kernel canceled (their thread exited),
				       submitted again */
};

struct vms_engine_ops {
	const char *name;
	int kind;
	void (*destroy)(struct vms_engine *e);
	/* op was just queued (a write at the tail of its fdq, or a recv). */
	void (*start)(struct vms_engine *e, struct vms_op *op);
	int (*wait)(struct vms_engine *e, struct vms_io_done *done, unsigned max, int timeout_ms);
	long (*read_full)(struct vms_engine *e, int fd, int kind, void *buf, size_t len,
			  int timeout_ms);
	int (*write_full)(struct vms_engine *e, int fd, int kind, const void *buf, size_t len,
			  int timeout_ms);
	int (*cancel)(struct vms_engine *e);
	int (*set_send_zc)(struct vms_engine *e, int on);
};

struct vms_engine {
	const struct vms_engine_ops *ops;
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

/* ---- shared helpers (engine.c) ---------------------------------------- */

int vms_eng_base_init(struct vms_engine *e, const struct vms_engine_ops *ops, unsigned depth,
		      void *arena, size_t arena_len);
void vms_eng_base_free(struct vms_engine *e);

/* Record op's final result and queue it for vms_engine_wait(). For a write
 * this pops it from its fd queue (and cancels the rest of the queue if res <
 * 0); returns the write that should start next on that fd, or NULL. */
struct vms_op *vms_eng_complete(struct vms_engine *e, struct vms_op *op, long res);
/* Hand out up to max completions. */
unsigned vms_eng_drain(struct vms_engine *e, struct vms_io_done *done, unsigned max);
/* Advance op's iovecs past n written bytes. */
void vms_eng_advance(struct vms_op *op, size_t n);
/* Is [p, p+len) inside the arena? */
int vms_eng_in_arena(const struct vms_engine *e, const void *p, size_t len);

/* Monotonic clock and per-wait deadlines (timeout_ms -1 = none). */
int64_t vms_eng_now_ns(void);
int64_t vms_eng_deadline(int timeout_ms);
/* Milliseconds left until deadline (rounded up), 0 if past, -1 if none. */
int vms_eng_left_ms(int64_t deadline);

/* Engine constructors (no AUTO logic, no availability check). */
int vms_uring_new(struct vms_engine **out, unsigned depth, void *arena, size_t arena_len);
int vms_posix_new(struct vms_engine **out, unsigned depth, void *arena, size_t arena_len);

/* ---- for tests and bench_engine --------------------------------------- */

/* Copy the counters. 0, or VMS_EINVAL. */
int vms_engine_stats(const struct vms_engine *e, struct vms_engine_stats *out);
/* io_uring: send socket writes that lie in the registered arena with
 * SEND_ZC (zero copy; slower on loopback, may help on real NICs). Returns 0,
 * or VMS_EUNSUPPORTED (posix engine, or no registered arena). */
int vms_engine_set_send_zc(struct vms_engine *e, int on);
/* Why io_uring is unavailable ("" if it is available). */
const char *vms_engine_uring_reason(void);

#endif
