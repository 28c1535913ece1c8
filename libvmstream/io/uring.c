/* SPDX-License-Identifier: MIT */
/*
 * io_uring engine (liburing 2.3 API level; newer kernel features are used
 * only when the kernel accepts them).
 *
 * - One ring per engine, IORING_SETUP_SINGLE_ISSUER when accepted. The ring
 *   starts disabled (IORING_SETUP_R_DISABLED) and is enabled by the first
 *   submission, so the engine may be created in one thread and then driven
 *   by another; from then on only that thread may submit.
 * - The caller's arena is registered as fixed buffer 0. Reads of any fd into
 *   it use READ_FIXED; writes from it to pipes/files use WRITE_FIXED.
 *   Socket writes never use WRITE_FIXED: a write() on a socket has no
 *   MSG_NOSIGNAL and raises SIGPIPE on a closed peer (and this kernel rejects
 *   IORING_RECVSEND_FIXED_BUF for plain SEND), so they use SEND (one iovec)
 *   or SENDMSG, with MSG_NOSIGNAL; or SEND_ZC from the arena when asked.
 * - Ordering: one write in flight per fd (see engine_internal.h). No
 *   IOSQE_IO_LINK chains: a short write in a chain cancels the rest of it,
 *   so a chain would need the same "resubmit the rest, then the canceled
 *   ones" logic anyway, while several fds in flight already keep the kernel
 *   busy. A short write is resubmitted before the next write on that fd.
 * - Batching: queued operations only fill the SQ; vms_engine_wait() submits
 *   them and waits in one io_uring_enter (io_uring_submit_and_wait_timeout),
 *   and the writes that completions unblock are submitted before it returns.
 * - -EAGAIN (an fd the caller set O_NONBLOCK on) is answered with a POLL_ADD
 *   and a resubmission when it fires.
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

#include "core/error.h"
#include "io/engine_internal.h"

enum {
	TAG_OP = 0,     /* the transfer itself */
	TAG_POLL = 1,   /* POLL_ADD waiting for readiness after -EAGAIN */
	TAG_IGNORE = 2, /* ASYNC_CANCEL: result not needed */
};

enum { FLIGHT_NONE = 0, FLIGHT_OP = 1, FLIGHT_POLL = 2 };

/* Per-SQE length cap: sqe->len is 32-bit, and the kernel caps a transfer
 * at about 2 GiB anyway; the rest is a short transfer, resubmitted. */
#define UR_LEN_MAX (1u << 30)

struct uring_engine {
	struct vms_engine base; /* first: the dispatcher casts */
	struct io_uring ring;
	int enabled;            /* R_DISABLED ring enabled by the first submit */
	int send_zc;
	int closing;            /* destroy: complete, never start anything */
	unsigned inflight;      /* CQEs still expected for operations (not cancels) */
};

static struct uring_engine *U(struct vms_engine *e)
{
	return (struct uring_engine *)e;
}

static void issue(struct uring_engine *u, struct vms_op *op);

/* Track what op has in the kernel (and, for the debug counters, how many
 * writes of one fd are in the kernel at once). */
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

static int enable(struct uring_engine *u)
{
	int ret;

	if (u->enabled)
		return 0;
	ret = io_uring_register(u->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	if (ret < 0)
		return ret;
	u->enabled = 1;
	return 0;
}

static int submit(struct uring_engine *u)
{
	int ret = enable(u);

	if (ret < 0)
		return ret;
	do
		ret = io_uring_submit(&u->ring);
	while (ret == -EINTR);
	return ret < 0 ? ret : 0;
}

static struct io_uring_sqe *sqe_get(struct uring_engine *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	/* The SQ is sized for depth + sync op + cancels; flush if ever full. */
	if (!sqe && submit(u) == 0)
		sqe = io_uring_get_sqe(&u->ring);
	return sqe;
}

static void set_ud(struct io_uring_sqe *sqe, struct vms_op *op, unsigned tag)
{
	io_uring_sqe_set_data64(sqe, (uint64_t)((uintptr_t)op | tag));
}

static unsigned len32(size_t len)
{
	return len > UR_LEN_MAX ? UR_LEN_MAX : (unsigned)len;
}

/* Final result: queued ops go to the done list (and may start the next
 * write on their fd); sync ops just record it. */
static void finish(struct uring_engine *u, struct vms_op *op, long res)
{
	struct vms_op *next;

	if (op->type == VMS_OP_SYNC_READ || op->type == VMS_OP_SYNC_WRITE) {
		op->res = res;
		op->complete = 1;
		return;
	}
	next = vms_eng_complete(&u->base, op, res);
	if (next && !u->closing)
		issue(u, next);
}

static void arm_poll(struct uring_engine *u, struct vms_op *op)
{
	int out = op->type == VMS_OP_WRITE || op->type == VMS_OP_SYNC_WRITE;
	struct io_uring_sqe *sqe = sqe_get(u);

	if (!sqe) {
		finish(u, op, -EBUSY);
		return;
	}
	io_uring_prep_poll_add(sqe, op->fd, out ? POLLOUT : POLLIN);
	set_ud(sqe, op, TAG_POLL);
	set_flight(u, op, FLIGHT_POLL);
	u->base.st.eagain++;
}

static void issue(struct uring_engine *u, struct vms_op *op)
{
	struct io_uring_sqe *sqe = sqe_get(u);
	struct iovec *v = &op->iov[op->cur];
	unsigned n = op->niov - op->cur;
	int fixed;

	if (!sqe) {
		finish(u, op, -EBUSY);
		return;
	}
	fixed = u->base.st.fixed_registered && n == 1 &&
		vms_eng_in_arena(&u->base, v->iov_base, v->iov_len);
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
	if (!is_write || res < 0) {
		finish(u, op, res);
		return;
	}
	if (res == 0) {
		/* write() of n > 0 bytes returning 0: no progress will ever come */
		finish(u, op, -EIO);
		return;
	}
	vms_eng_advance(op, (size_t)res);
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
		if (res == -EOPNOTSUPP && !op->canceling) {
			/* not a TCP/UDP socket: plain SEND from now on */
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

/* Submit what is queued and wait up to deadline (-1: forever) for at least
 * one CQE, then process every CQE available. Returns 0, -ETIME, or a hard
 * -errno from io_uring_enter. */
static int submit_wait(struct uring_engine *u, int64_t deadline)
{
	struct __kernel_timespec ts, *tsp = NULL;
	struct io_uring_cqe *cqe;
	int ret = enable(u);

	if (ret < 0)
		return ret;
	if (deadline >= 0) {
		int64_t left = deadline - vms_eng_now_ns();

		if (left < 0)
			left = 0;
		ts.tv_sec = left / 1000000000;
		ts.tv_nsec = left % 1000000000;
		tsp = &ts;
	}
	/* liburing 2.3 may return the number submitted instead of 0, and
	 * a timeout without a CQE either as -ETIME or as that count: only
	 * the CQ ring itself tells what happened. */
	ret = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, tsp, NULL);
	u->base.st.syscalls_wait++;
	reap(u);
	if (ret >= 0 || ret == -EINTR || ret == -EAGAIN || ret == -EBUSY)
		return 0;
	return ret;
}

static int flush(struct uring_engine *u)
{
	return io_uring_sq_ready(&u->ring) ? submit(u) : 0;
}

static void u_start(struct vms_engine *e, struct vms_op *op)
{
	struct uring_engine *u = U(e);

	/* A write behind another on the same fd starts when that one is done. */
	if (op->type == VMS_OP_WRITE && op->q->whead != op)
		return;
	issue(u, op);
}

static int u_wait(struct vms_engine *e, struct vms_io_done *done, unsigned max, int timeout_ms)
{
	struct uring_engine *u = U(e);
	int64_t deadline = vms_eng_deadline(timeout_ms);
	unsigned n = vms_eng_drain(e, done, max);
	int ret;

	while (n == 0 && max > 0 && u->inflight > 0) {
		ret = submit_wait(u, deadline);
		if (ret < 0 && ret != -ETIME)
			return vms_fail(VMS_EIO, "io_uring_enter: %s", strerror(-ret));
		n = vms_eng_drain(e, done, max);
		if (n == 0 && deadline >= 0 && vms_eng_now_ns() >= deadline)
			break;
	}
	/* Writes unblocked by these completions start now, not at the next
	 * call; a failure here shows up again at the next wait. */
	ret = flush(u);
	if (ret < 0 && n == 0)
		return vms_fail(VMS_EIO, "io_uring_submit: %s", strerror(-ret));
	return (int)n;
}

/* Cancel op (if in the kernel) and reap until its CQE came back, so that
 * its buffer is no longer used when this returns. */
static void cancel_and_reap(struct uring_engine *u, struct vms_op *op)
{
	struct io_uring_sqe *sqe;

	op->canceling = 1;
	if (op->inflight == FLIGHT_NONE)
		return;
	sqe = sqe_get(u);
	if (sqe) {
		io_uring_prep_cancel64(sqe, (uint64_t)((uintptr_t)op |
						       (op->inflight == FLIGHT_POLL ? TAG_POLL : TAG_OP)), 0);
		set_ud(sqe, NULL, TAG_IGNORE);
	}
	while (!op->complete) {
		int ret = submit_wait(u, -1);

		if (ret < 0 && ret != -ETIME)
			break; /* ring unusable: nothing more can be done */
	}
}

/* Wait for a sync op; the timeout restarts whenever bytes move. Returns 0
 * when complete, -ETIMEDOUT, or a hard -errno (op still in flight). */
static int wait_sync(struct uring_engine *u, struct vms_op *op, int timeout_ms)
{
	int64_t deadline = vms_eng_deadline(timeout_ms);
	size_t seen = op->done;

	while (!op->complete) {
		int ret;

		if (deadline >= 0 && vms_eng_now_ns() >= deadline)
			return -ETIMEDOUT;
		ret = submit_wait(u, deadline);
		if (ret < 0 && ret != -ETIME)
			return ret;
		if (op->done != seen) {
			seen = op->done;
			deadline = vms_eng_deadline(timeout_ms);
		}
	}
	return 0;
}

static long u_read_full(struct vms_engine *e, int fd, int is_sock, void *buf, size_t len,
			int timeout_ms)
{
	struct uring_engine *u = U(e);
	size_t got = 0;

	while (got < len) {
		struct vms_op op;
		int ret;

		memset(&op, 0, sizeof(op));
		op.type = VMS_OP_SYNC_READ;
		op.fd = fd;
		op.is_sock = (uint8_t)is_sock;
		op.iov[0].iov_base = (uint8_t *)buf + got;
		op.iov[0].iov_len = len - got;
		op.niov = 1;
		op.total = len - got;
		issue(u, &op);
		ret = wait_sync(u, &op, timeout_ms);
		if (ret < 0) {
			cancel_and_reap(u, &op);
			if (!op.complete)
				return ret;
			/* data that raced the cancel is kept */
			if (op.res == -ECANCELED)
				return ret;
		}
		if (op.res < 0)
			return op.res;
		if (op.res == 0)
			break;
		got += (size_t)op.res;
	}
	return (long)got;
}

static int u_write_full(struct vms_engine *e, int fd, int is_sock, const void *buf, size_t len,
			int timeout_ms)
{
	struct uring_engine *u = U(e);
	struct vms_op op;
	int ret;

	memset(&op, 0, sizeof(op));
	op.type = VMS_OP_SYNC_WRITE;
	op.fd = fd;
	op.is_sock = (uint8_t)is_sock;
	op.iov[0].iov_base = (void *)(uintptr_t)buf;
	op.iov[0].iov_len = len;
	op.niov = 1;
	op.total = len;
	issue(u, &op);
	ret = wait_sync(u, &op, timeout_ms);
	if (ret < 0) {
		cancel_and_reap(u, &op);
		if (!op.complete || op.res == -ECANCELED)
			return ret;
	}
	return op.res < 0 ? (int)op.res : 0;
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

	/* Nothing the kernel still holds may outlive the engine: cancel every
	 * operation in flight and reap it (SEND_ZC: until its notification). */
	u->closing = 1;
	if (u->inflight && u->enabled) {
		for (unsigned i = 0; i < e->depth; i++) {
			struct vms_op *op = &e->op_pool[i];
			struct io_uring_sqe *sqe;

			if (op->inflight == FLIGHT_NONE || op->zc)
				continue;
			op->canceling = 1;
			sqe = sqe_get(u);
			if (!sqe)
				break;
			io_uring_prep_cancel64(sqe, (uint64_t)((uintptr_t)op |
				(op->inflight == FLIGHT_POLL ? TAG_POLL : TAG_OP)), 0);
			set_ud(sqe, NULL, TAG_IGNORE);
		}
		while (u->inflight) {
			int ret = submit_wait(u, -1);

			if (ret < 0 && ret != -ETIME)
				break;
		}
	}
	io_uring_queue_exit(&u->ring);
	vms_eng_base_free(e);
	free(u);
}

static const struct vms_engine_ops uring_ops = {
	.name = "io_uring",
	.kind = VMS_ENGINE_URING,
	.destroy = u_destroy,
	.start = u_start,
	.wait = u_wait,
	.read_full = u_read_full,
	.write_full = u_write_full,
	.set_send_zc = u_set_send_zc,
};

int vms_uring_new(struct vms_engine **out, unsigned depth, void *arena, size_t arena_len)
{
	struct io_uring_params p;
	struct uring_engine *u;
	/* depth ops + a sync op + cancels, each at most one SQE at a time */
	unsigned entries = depth + 8;
	int rc, ret;

	u = calloc(1, sizeof(*u));
	if (!u)
		return vms_fail(VMS_ENOMEM, "io_uring engine: no memory");
	rc = vms_eng_base_init(&u->base, &uring_ops, depth, arena, arena_len);
	if (rc)
		goto out_free;

	memset(&p, 0, sizeof(p));
	/* No SINGLE_ISSUER: an engine moves between threads over its life (the
	 * writer's preamble and acknowledgement on the caller's thread, records
	 * on its output thread), one at a time, which that flag forbids. */
	p.flags = IORING_SETUP_SUBMIT_ALL;
	ret = io_uring_queue_init_params(entries, &u->ring, &p);
	if (ret == -EINVAL) {
		memset(&p, 0, sizeof(p));
		ret = io_uring_queue_init_params(entries, &u->ring, &p);
	}
	u->enabled = 1;
	if (ret < 0) {
		rc = vms_fail(ret == -ENOMEM ? VMS_ENOMEM : VMS_EIO, "io_uring_queue_init(%u): %s",
			      entries, strerror(-ret));
		goto out_base;
	}

	if (arena) {
		struct iovec iov = { .iov_base = arena, .iov_len = arena_len };

		/* Fails with ENOMEM over RLIMIT_MEMLOCK (without CAP_IPC_LOCK),
		 * EFAULT/EINVAL beyond 1 GiB or for unsuitable memory: the engine
		 * then works without fixed buffers. */
		ret = io_uring_register_buffers(&u->ring, &iov, 1);
		if (ret == 0)
			u->base.st.fixed_registered = 1;
		else
			u->base.st.reg_err = ret;
	}
	*out = &u->base;
	return 0;

out_base:
	vms_eng_base_free(&u->base);
out_free:
	free(u);
	return rc;
}
