/* SPDX-License-Identifier: MIT */
/*
 * io_uring engine (liburing 2.3 API level; newer kernel features are used
 * only when the kernel accepts them).
 *
 * - One ring per engine, with IORING_SETUP_SUBMIT_ALL when the kernel
 *   accepts it. Not SINGLE_ISSUER: engine.h lets an engine change threads
 *   (the writer's output thread, then its caller), and any thread may submit.
 * - io_uring ties a request to the thread that submitted it: if that thread
 *   exits first, the kernel cancels the request when it would run. Such a
 *   -ECANCELED (not asked for, nothing transferred) is submitted again by the
 *   thread now driving the engine.
 * - The caller's arena is registered as fixed buffer 0. Reads of any fd into
 *   it use READ_FIXED; writes from it to pipes/files use WRITE_FIXED.
 *   Socket writes never use WRITE_FIXED: write() on a socket has no
 *   MSG_NOSIGNAL and raises SIGPIPE on a closed peer (measured), and the
 *   kernel rejects IORING_RECVSEND_FIXED_BUF for plain SEND. They use SEND
 *   (one iovec) or SENDMSG with MSG_NOSIGNAL, or SEND_ZC from the arena when
 *   asked (vms_engine_set_send_zc).
 * - Ordering: one write in flight per fd (see queue.h), no
 *   IOSQE_IO_LINK chains: a short write in a chain cancels the rest of it,
 *   so a chain needs the same "resubmit the rest, then the canceled ones"
 *   logic anyway, while writes to several fds in flight already keep the
 *   kernel busy. A short write's remainder is resubmitted before the next
 *   write of that fd starts.
 * - Batching: queueing only prepares SQEs; vms_engine_wait() submits them
 *   and waits in one io_uring_enter (io_uring_submit_and_wait_timeout), and
 *   the writes that its completions unblock are submitted before it returns.
 * - -EAGAIN (an fd the caller made O_NONBLOCK, on kernels that report it) is
 *   answered with a POLL_ADD and a resubmission when it fires.
 *
 * user_data = operation address | tag (low two bits).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/clock.h"
#include "base/error.h"
#include "io/backend.h"

enum {
	TAG_OP = 0,     /* the transfer itself */
	TAG_POLL = 1,   /* POLL_ADD waiting for readiness after -EAGAIN */
	TAG_IGNORE = 2, /* ASYNC_CANCEL, or a neutralised SQE: result not needed */
};

enum { FLIGHT_NONE = 0, FLIGHT_OP = 1, FLIGHT_POLL = 2 };

/* Per-SQE length cap: sqe->len is 32-bit, and the kernel caps a transfer
 * at about 2 GiB anyway; the rest is a short transfer, resubmitted. */
#define UR_LEN_MAX (1u << 30)
/* Resubmissions of one op after cancels nobody asked for. */
#define UR_REQUEUE_MAX 8

struct uring_engine {
	struct vms_engine base;  /* first: the dispatcher casts */
	struct io_uring ring;
	unsigned entries;
	unsigned setup_flags;    /* what the ring is created with */
	int send_zc;
	int closing;             /* destroy: complete, never start anything */
	unsigned inflight;       /* ops with an SQE prepared or in the kernel */
};

static struct uring_engine *U(struct vms_engine *e)
{
	return (struct uring_engine *)e;
}

static void issue(struct uring_engine *u, struct vms_op *op);

/* ---- ring ---------------------------------------------------------------- */

static int ring_setup(struct uring_engine *u)
{
	struct io_uring *ring = &u->ring;
	struct io_uring_params p;
	int ret;

	memset(&p, 0, sizeof(p));
	p.flags = u->setup_flags;
	ret = io_uring_queue_init_params(u->entries, ring, &p);
	if (ret == -EINVAL && u->setup_flags) {
		/* kernel before 5.18: no SUBMIT_ALL */
		u->setup_flags = 0;
		memset(&p, 0, sizeof(p));
		ret = io_uring_queue_init_params(u->entries, ring, &p);
	}
	if (ret < 0)
		return ret;
	if (u->base.arena) {
		struct iovec iov = { .iov_base = u->base.arena, .iov_len = u->base.arena_len };

		/* Fails with ENOMEM beyond RLIMIT_MEMLOCK (without
		 * CAP_IPC_LOCK), EFAULT/EINVAL beyond 1 GiB or for memory that
		 * cannot be pinned: the engine then goes on without. */
		ret = io_uring_register_buffers(ring, &iov, 1);
		u->base.st.fixed_registered = ret == 0;
		u->base.st.reg_err = ret == 0 ? 0 : ret;
	}
	return 0;
}

/* Has the kernel not yet consumed op's latest SQE? */
static int unconsumed(struct uring_engine *u, const struct vms_op *op)
{
	unsigned khead = io_uring_smp_load_acquire(u->ring.sq.khead);

	return op->inflight != FLIGHT_NONE && (int32_t)(op->sqe_pos - khead) >= 0;
}

/* Track what op has prepared or in the kernel (and, for the debug counters,
 * how many writes of one fd are in progress at once). */
static void set_flight(struct uring_engine *u, struct vms_op *op, uint8_t state)
{
	if (state != FLIGHT_NONE)
		u->inflight++;
	else
		u->inflight--;
	if (op->type == VMS_OP_WRITE) {
		struct vms_fdq *q = op->q;

		if (state != FLIGHT_NONE) {
			if (++q->wflight > u->base.st.max_fd_writes)
				u->base.st.max_fd_writes = q->wflight;
		} else {
			q->wflight--;
		}
	}
	op->inflight = state;
}

static struct io_uring_sqe *sqe_get(struct uring_engine *u, struct vms_op *op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	/* The SQ holds depth + a sync op + cancels: full only if something
	 * is badly wrong; flush once in case. */
	if (!sqe && io_uring_submit(&u->ring) >= 0)
		sqe = io_uring_get_sqe(&u->ring);
	if (sqe && op) {
		op->sqe = sqe;
		op->sqe_pos = u->ring.sq.sqe_tail - 1;
	}
	return sqe;
}

static void set_ud(struct io_uring_sqe *sqe, struct vms_op *op, unsigned tag)
{
	io_uring_sqe_set_data64(sqe, (uint64_t)((uintptr_t)op | tag));
}

/* Turn op's unconsumed SQE into a NOP nobody waits for. */
static void neutralise(struct uring_engine *u, struct vms_op *op)
{
	struct io_uring_sqe *sqe = op->sqe;

	io_uring_prep_nop(sqe);
	set_ud(sqe, NULL, TAG_IGNORE);
	set_flight(u, op, FLIGHT_NONE);
}

/* ---- completions ---------------------------------------------------------- */

/* Final result: queued ops go to the done list (and may start the next
 * write of their fd); sync ops just record it. */
static void finish(struct uring_engine *u, struct vms_op *op, long res)
{
	struct vms_op *next;

	if (op->type == VMS_OP_SYNC_READ || op->type == VMS_OP_SYNC_WRITE) {
		op->res = res;
		op->complete = 1;
		return;
	}
	next = vms_ioq_complete(&u->base, op, res);
	if (next && !u->closing)
		issue(u, next);
}

/* An SQE for op's next step, or NULL once op is finished instead: canceled
 * before it (re)started (-ECANCELED), or no SQE to be had (-EBUSY). */
static struct io_uring_sqe *op_sqe(struct uring_engine *u, struct vms_op *op)
{
	struct io_uring_sqe *sqe;

	if (op->canceling) {
		finish(u, op, -ECANCELED);
		return NULL;
	}
	sqe = sqe_get(u, op);
	if (!sqe)
		finish(u, op, -EBUSY);
	return sqe;
}

static void arm_poll(struct uring_engine *u, struct vms_op *op)
{
	int out = op->type == VMS_OP_WRITE || op->type == VMS_OP_SYNC_WRITE;
	struct io_uring_sqe *sqe = op_sqe(u, op);

	if (!sqe)
		return;
	io_uring_prep_poll_add(sqe, op->fd, out ? POLLOUT : POLLIN);
	set_ud(sqe, op, TAG_POLL);
	set_flight(u, op, FLIGHT_POLL);
	u->base.st.eagain++;
}

static unsigned len32(size_t len)
{
	return len > UR_LEN_MAX ? UR_LEN_MAX : (unsigned)len;
}

static void issue(struct uring_engine *u, struct vms_op *op)
{
	struct io_uring_sqe *sqe;
	struct iovec *v = &op->iov[op->cur];
	unsigned n = op->niov - op->cur;
	int fixed;

	sqe = op_sqe(u, op);
	if (!sqe)
		return;
	op->zc = 0;
	fixed = u->base.st.fixed_registered && n == 1 &&
		vms_ioq_in_arena(&u->base, v->iov_base, v->iov_len);
	switch (op->type) {
	case VMS_OP_WRITE:
	case VMS_OP_SYNC_WRITE:
		if (op->is_sock) {
			if (fixed && u->send_zc) {
				io_uring_prep_send_zc_fixed(sqe, op->fd, v->iov_base,
							    len32(v->iov_len), MSG_NOSIGNAL, 0, 0);
				op->zc = 1;
				u->base.st.zc_ops++;
				u->base.st.fixed_ops++;
			} else if (n == 1) {
				io_uring_prep_send(sqe, op->fd, v->iov_base, len32(v->iov_len),
						   MSG_NOSIGNAL);
			} else {
				memset(&op->msg, 0, sizeof(op->msg));
				op->msg.msg_iov = v;
				op->msg.msg_iovlen = n;
				io_uring_prep_sendmsg(sqe, op->fd, &op->msg, MSG_NOSIGNAL);
			}
		} else if (fixed) {
			/* offset -1: the file position, as write() would */
			io_uring_prep_write_fixed(sqe, op->fd, v->iov_base, len32(v->iov_len),
						  (uint64_t)-1, 0);
			u->base.st.fixed_ops++;
		} else {
			io_uring_prep_writev(sqe, op->fd, v, n, (uint64_t)-1);
		}
		break;
	default: /* VMS_OP_RECV, VMS_OP_SYNC_READ: one buffer */
		if (fixed) {
			io_uring_prep_read_fixed(sqe, op->fd, v->iov_base, len32(v->iov_len),
						 (uint64_t)-1, 0);
			u->base.st.fixed_ops++;
		} else if (op->is_sock) {
			io_uring_prep_recv(sqe, op->fd, v->iov_base, len32(v->iov_len), 0);
		} else {
			io_uring_prep_read(sqe, op->fd, v->iov_base, len32(v->iov_len),
					   (uint64_t)-1);
		}
		break;
	}
	set_ud(sqe, op, TAG_OP);
	set_flight(u, op, FLIGHT_OP);
}

/* -ECANCELED without a cancel of ours: the thread that submitted op has
 * exited. Nothing was transferred (partial progress is reported as a
 * count), so submit it again from this thread. */
static int requeue(struct uring_engine *u, struct vms_op *op, int res, int poll)
{
	if (res != -ECANCELED || op->canceling || u->closing || op->retries >= UR_REQUEUE_MAX)
		return 0;
	op->retries++;
	u->base.st.requeued++;
	if (poll)
		arm_poll(u, op);
	else
		issue(u, op);
	return 1;
}

/* The transfer's result (after any SEND_ZC notification). */
static void on_result(struct uring_engine *u, struct vms_op *op, int res)
{
	int is_write = op->type == VMS_OP_WRITE || op->type == VMS_OP_SYNC_WRITE;

	if (res == -EINTR || res == -EAGAIN) {
		if (op->canceling || u->closing)
			finish(u, op, -ECANCELED);
		else if (res == -EINTR)
			issue(u, op);
		else
			arm_poll(u, op);
		return;
	}
	if (requeue(u, op, res, 0))
		return;
	if (!is_write || res < 0) {
		finish(u, op, res);
		return;
	}
	if (res == 0) {
		/* write() of n > 0 bytes returning 0: no progress will ever come */
		finish(u, op, -EIO);
		return;
	}
	if ((size_t)res > op->total - op->done) {
		/* more than was asked: never believe such a count */
		finish(u, op, -EIO);
		return;
	}
	vms_ioq_advance(op, (size_t)res);
	if (op->done == op->total) {
		finish(u, op, (long)op->total);
		return;
	}
	if (op->canceling || u->closing) {
		finish(u, op, -ECANCELED);
		return;
	}
	u->base.st.short_writes++;
	issue(u, op);
}

static void on_cqe(struct uring_engine *u, const struct io_uring_cqe *cqe)
{
	uintptr_t ud = (uintptr_t)io_uring_cqe_get_data64(cqe);
	struct vms_op *op = (struct vms_op *)(ud & ~(uintptr_t)3);
	unsigned tag = (unsigned)(ud & 3);
	int res = cqe->res;

	if (tag == TAG_IGNORE)
		return;
	if (tag == TAG_POLL) {
		set_flight(u, op, FLIGHT_NONE);
		if (op->canceling || u->closing)
			finish(u, op, -ECANCELED);
		else if (requeue(u, op, res, 1))
			return;
		else if (res < 0 && res != -EINTR)
			finish(u, op, res);
		else
			issue(u, op);
		return;
	}
	if (op->zc) {
		if (cqe->flags & IORING_CQE_F_MORE) {
			/* the buffer is the kernel's until the notification */
			op->zc_res = res;
			return;
		}
		if (cqe->flags & IORING_CQE_F_NOTIF)
			res = op->zc_res;
		op->zc = 0;
		if (res == -EOPNOTSUPP && !op->canceling && !u->closing) {
			/* not TCP/UDP: plain SEND from now on */
			u->send_zc = 0;
			set_flight(u, op, FLIGHT_NONE);
			issue(u, op);
			return;
		}
	}
	set_flight(u, op, FLIGHT_NONE);
	on_result(u, op, res);
}

static void reap(struct uring_engine *u)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&u->ring, head, cqe) {
		on_cqe(u, cqe);
		n++;
	}
	io_uring_cq_advance(&u->ring, n);
}

/* Submit what is prepared and, if wait, wait until deadline (-1: forever)
 * for at least one CQE; then process every CQE there is. Returns 0, -ETIME,
 * or another hard -errno from io_uring_enter. */
static int enter(struct uring_engine *u, int wait, int64_t deadline)
{
	int ret;

	if (!wait) {
		ret = io_uring_submit(&u->ring);
	} else {
		struct __kernel_timespec ts, *tsp = NULL;
		struct io_uring_cqe *cqe;

		if (deadline >= 0) {
			int64_t left = deadline - (int64_t)vms_now_ns();

			if (left < 0)
				left = 0;
			ts.tv_sec = left / 1000000000;
			ts.tv_nsec = left % 1000000000;
			tsp = &ts;
		}
		/* liburing 2.3 may return the number submitted, and a timeout
		 * either as -ETIME or as that count: only the CQ ring tells
		 * what happened. */
		ret = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, tsp, NULL);
		u->base.st.syscalls_wait++;
	}
	reap(u);
	if (ret >= 0 || ret == -EINTR || ret == -EAGAIN || ret == -EBUSY)
		return 0;
	return ret;
}

static int flush(struct uring_engine *u)
{
	return io_uring_sq_ready(&u->ring) ? enter(u, 0, -1) : 0;
}

static int engine_err(int ret, const char *what)
{
	return vms_fail(VMS_EIO, "io_uring engine: %s: %s", what, vms_sys_err(-ret));
}

/* ---- queued operations ------------------------------------------------------- */

static void u_start(struct vms_engine *e, struct vms_op *op)
{
	/* A write behind another on the same fd starts when that one is done. */
	if (op->type == VMS_OP_WRITE && op->q->whead != op)
		return;
	issue(U(e), op);
}

static int u_wait(struct vms_engine *e, struct vms_io_done *done, unsigned max, int timeout_ms)
{
	struct uring_engine *u = U(e);
	int64_t deadline = vms_ioq_deadline(timeout_ms);
	unsigned n = vms_ioq_drain(e, done, max);
	int ret;

	while (n == 0 && max > 0 && u->inflight > 0) {
		ret = enter(u, 1, deadline);
		if (ret < 0 && ret != -ETIME)
			return engine_err(ret, "wait");
		n = vms_ioq_drain(e, done, max);
		if (n == 0 && deadline >= 0 && (int64_t)vms_now_ns() >= deadline)
			break;
	}
	/* Writes unblocked by these completions start now, not at the next
	 * call; a failure here shows up again at the next wait. */
	ret = flush(u);
	if (ret < 0 && n == 0)
		return engine_err(ret, "submit");
	return (int)n;
}

/* ---- synchronous operations ---------------------------------------------------- */

/* Ask the kernel to cancel op's SQE in flight (result not needed: op's own
 * CQE says how it ended). */
static void cancel_sqe(struct uring_engine *u, struct vms_op *op)
{
	struct io_uring_sqe *sqe = sqe_get(u, NULL);

	if (!sqe)
		return;
	io_uring_prep_cancel64(sqe, (uint64_t)((uintptr_t)op |
					       (op->inflight == FLIGHT_POLL ? TAG_POLL : TAG_OP)), 0);
	set_ud(sqe, NULL, TAG_IGNORE);
}

/* Stop a sync op so that its buffer is no longer used when this returns:
 * an SQE the kernel never saw becomes a NOP; otherwise cancel it and reap
 * until its CQE came back. */
static void sync_abort(struct uring_engine *u, struct vms_op *op)
{
	op->canceling = 1;
	if (op->complete)
		return;
	if (unconsumed(u, op)) {
		neutralise(u, op);
		op->res = -ECANCELED;
		op->complete = 1;
		return;
	}
	cancel_sqe(u, op);
	while (!op->complete) {
		int ret = enter(u, 1, -1);

		if (ret < 0 && ret != -ETIME)
			break; /* ring unusable: nothing more can be done */
	}
}

/* Wait for a sync op; the timeout restarts whenever bytes move. Returns 0
 * when complete, -ETIMEDOUT, or a hard -errno. */
static int sync_wait(struct uring_engine *u, struct vms_op *op, int timeout_ms)
{
	int64_t deadline = vms_ioq_deadline(timeout_ms);
	size_t seen = op->done;

	for (;;) {
		/* at least one submission, even with a timeout of 0 */
		int ret = enter(u, 1, deadline);

		if (ret < 0 && ret != -ETIME)
			return ret;
		if (op->complete)
			return 0;
		if (op->done != seen) {
			seen = op->done;
			deadline = vms_ioq_deadline(timeout_ms);
		} else if (deadline >= 0 && (int64_t)vms_now_ns() >= deadline) {
			return -ETIMEDOUT;
		}
	}
}

static void sync_init(struct vms_op *op, int type, int fd, int is_sock, void *buf, size_t len)
{
	memset(op, 0, sizeof(*op));
	op->type = (uint8_t)type;
	op->fd = fd;
	op->is_sock = (uint8_t)is_sock;
	op->iov[0].iov_base = buf;
	op->iov[0].iov_len = len;
	op->niov = 1;
	op->total = len;
}

static long u_read_full(struct vms_engine *e, int fd, int kind, void *buf, size_t len,
			int timeout_ms)
{
	struct uring_engine *u = U(e);
	long rc = 0;
	size_t got = 0;
	struct vms_op op;

	while (got < len) {
		int ret;

		sync_init(&op, VMS_OP_SYNC_READ, fd, kind == VMS_FD_SOCK, (uint8_t *)buf + got,
			  len - got);
		issue(u, &op);
		ret = sync_wait(u, &op, timeout_ms);
		if (ret < 0) {
			sync_abort(u, &op);
			/* data that raced the cancel is kept */
			if (!op.complete || op.res == -ECANCELED) {
				rc = ret;
				break;
			}
		}
		if (op.res <= 0) {
			rc = op.res;
			break;
		}
		got += (size_t)op.res;
	}
	return rc < 0 ? rc : (long)got;
}

static int u_write_full(struct vms_engine *e, int fd, int kind, const void *buf, size_t len,
			int timeout_ms)
{
	struct uring_engine *u = U(e);
	struct vms_op op;
	int ret;

	sync_init(&op, VMS_OP_SYNC_WRITE, fd, kind == VMS_FD_SOCK, (void *)(uintptr_t)buf, len);
	issue(u, &op);
	ret = sync_wait(u, &op, timeout_ms);
	if (ret < 0)
		sync_abort(u, &op);
	if (ret < 0 && (!op.complete || op.res == -ECANCELED))
		return ret;
	return op.res < 0 ? (int)op.res : 0;
}

/* ---- cancel and life cycle ---------------------------------------------------------- */

static int u_cancel(struct vms_engine *e)
{
	struct uring_engine *u = U(e);
	struct vms_fdq *q;
	int ret;

	reap(u);
	/* Mark first, so nothing canceled is (re)started meanwhile. */
	for (q = e->active; q; q = q->next) {
		for (struct vms_op *op = q->whead; op; op = op->next)
			op->canceling = 1;
		if (q->recv)
			q->recv->canceling = 1;
	}
	for (unsigned i = 0; i < e->depth; i++) {
		struct vms_op *op = &e->op_pool[i];

		if (op->inflight == FLIGHT_NONE)
			continue;
		if (unconsumed(u, op)) {
			neutralise(u, op);
			finish(u, op, -ECANCELED); /* and the writes queued behind it */
		} else if (!op->zc) {
			cancel_sqe(u, op);
		}
	}
	ret = flush(u);
	return ret < 0 ? engine_err(ret, "cancel") : 0;
}

static int u_set_send_zc(struct vms_engine *e, int on)
{
	struct uring_engine *u = U(e);

	if (on && !e->st.fixed_registered)
		return vms_fail(VMS_EUNSUPPORTED, "SEND_ZC needs a registered arena");
	u->send_zc = on ? 1 : 0;
	return 0;
}

static void u_destroy(struct vms_engine *e)
{
	struct uring_engine *u = U(e);

	/* Nothing the kernel holds may outlive the engine: SQEs it never saw
	 * become NOPs, operations in flight are canceled and reaped (SEND_ZC:
	 * until its notification). */
	u->closing = 1;
	reap(u);
	for (unsigned i = 0; i < e->depth && u->inflight; i++) {
		struct vms_op *op = &e->op_pool[i];

		if (op->inflight == FLIGHT_NONE)
			continue;
		if (unconsumed(u, op)) {
			neutralise(u, op);
			continue;
		}
		op->canceling = 1;
		if (!op->zc)
			cancel_sqe(u, op);
	}
	while (u->inflight) {
		int ret = enter(u, 1, -1);

		if (ret < 0 && ret != -ETIME && ret != -EINTR)
			break;
	}
	io_uring_queue_exit(&u->ring);
	vms_ioq_free(e);
	free(u);
}

static const struct vms_backend_ops uring_ops = {
	.name = "io_uring",
	.kind = VMS_ENGINE_URING,
	.destroy = u_destroy,
	.start = u_start,
	.wait = u_wait,
	.read_full = u_read_full,
	.write_full = u_write_full,
	.cancel = u_cancel,
	.set_send_zc = u_set_send_zc,
};

int vms_uring_new(struct vms_engine **out, unsigned depth, void *arena, size_t arena_len)
{
	struct uring_engine *u;
	int rc, ret;

	u = calloc(1, sizeof(*u));
	if (!u)
		return vms_fail(VMS_ENOMEM, "io_uring engine: no memory");
	rc = vms_ioq_init(&u->base, &uring_ops, depth, arena, arena_len);
	if (rc)
		goto out_free;
	/* depth ops + a sync op + cancels, each at most one SQE at a time */
	u->entries = depth + 8;
	/* No SINGLE_ISSUER: the writer's engine moves between threads (records
	 * from its output thread, then the acknowledgement on the caller's), and
	 * a single-issuer ring had to be rebuilt there, costing 5-6 ms at the end
	 * of every session (bench_device), for no measured gain. */
	u->setup_flags = IORING_SETUP_SUBMIT_ALL;
	ret = ring_setup(u);
	if (ret < 0) {
		rc = vms_fail(ret == -ENOMEM ? VMS_ENOMEM : VMS_EIO, "io_uring_queue_init(%u): %s",
			      u->entries, vms_sys_err(-ret));
		goto out_base;
	}
	*out = &u->base;
	return 0;

out_base:
	vms_ioq_free(&u->base);
out_free:
	free(u);
	return rc;
}
