/* SPDX-License-Identifier: MIT */
/* The bookkeeping both backends share (queue.h): operation pool, per-fd
 * queues, completions not yet handed out, per-wait deadlines. Calls nothing
 * in engine.c, posix.c or uring.c. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/error.h"
#include "io/queue.h"

int vms_ioq_init(struct vms_engine *e, const struct vms_backend_ops *ops, unsigned depth,
		 void *arena, size_t arena_len)
{
	e->ops = ops;
	e->depth = depth;
	e->arena = arena;
	e->arena_len = arena_len;
	e->op_pool = calloc(depth, sizeof(*e->op_pool));
	e->fdq_pool = calloc(depth, sizeof(*e->fdq_pool));
	if (!e->op_pool || !e->fdq_pool) {
		free(e->op_pool);
		free(e->fdq_pool);
		return vms_fail(VMS_ENOMEM, "engine: no memory for %u operations", depth);
	}
	for (unsigned i = 0; i < depth; i++) {
		e->op_pool[i].next = i + 1 < depth ? &e->op_pool[i + 1] : NULL;
		e->fdq_pool[i].next = i + 1 < depth ? &e->fdq_pool[i + 1] : NULL;
	}
	e->free_ops = e->op_pool;
	e->free_fdqs = e->fdq_pool;
	return 0;
}

void vms_ioq_free(struct vms_engine *e)
{
	free(e->op_pool);
	free(e->fdq_pool);
}

/* ---- queueing ---------------------------------------------------------- */

static struct vms_fdq *fdq_get(struct vms_engine *e, int fd)
{
	struct vms_fdq *q;

	for (q = e->active; q; q = q->next)
		if (q->fd == fd)
			return q;
	q = e->free_fdqs; /* never empty: at most depth fds have an op */
	e->free_fdqs = q->next;
	memset(q, 0, sizeof(*q));
	q->fd = fd;
	q->next = e->active;
	e->active = q;
	return q;
}

static void fdq_put_if_idle(struct vms_engine *e, struct vms_fdq *q)
{
	struct vms_fdq **pp;

	if (q->whead || q->recv)
		return;
	for (pp = &e->active; *pp != q; pp = &(*pp)->next)
		;
	*pp = q->next;
	q->next = e->free_fdqs;
	e->free_fdqs = q;
}

/* A free operation, set up as a queued writev or recv of total bytes on fd
 * (kind: enum vms_fd_kind); NULL with VMS_ESTATE when depth operations are
 * pending. */
static struct vms_op *op_get(struct vms_engine *e, int type, int fd, int kind, void *user,
			     size_t total)
{
	struct vms_op *op = e->free_ops;

	if (!op) {
		vms_fail(VMS_ESTATE, "engine %s: %u operations already pending (depth)",
			 type == VMS_OP_WRITE ? "writev" : "recv", e->depth);
		return NULL;
	}
	e->free_ops = op->next;
	memset(op, 0, sizeof(*op));
	e->npending++;
	op->type = (uint8_t)type;
	op->fd = fd;
	op->is_sock = kind == VMS_FD_SOCK;
	op->is_fifo = kind == VMS_FD_FIFO;
	op->alt_fd = -1;
	op->user = user;
	op->total = total;
	return op;
}

struct vms_op *vms_ioq_write(struct vms_engine *e, int fd, int kind, const struct iovec *iov,
			     int n, size_t total, void *user)
{
	struct vms_op *op = op_get(e, VMS_OP_WRITE, fd, kind, user, total);
	struct vms_fdq *q;

	if (!op)
		return NULL;
	for (int i = 0; i < n; i++)
		op->iov[op->niov++] = iov[i]; /* empty ones are skipped by advance */
	vms_ioq_advance(op, 0);
	q = fdq_get(e, fd);
	op->q = q;
	if (q->wtail)
		q->wtail->next = op;
	else {
		q->whead = op;
		if (++e->nbusy > e->st.max_fds_busy)
			e->st.max_fds_busy = e->nbusy;
	}
	q->wtail = op;
	e->st.writes++;
	return op;
}

struct vms_op *vms_ioq_recv(struct vms_engine *e, int fd, int kind, void *buf, size_t len,
			    void *user)
{
	struct vms_op *op;
	struct vms_fdq *q;

	for (q = e->active; q; q = q->next)
		if (q->fd == fd && q->recv) {
			vms_fail(VMS_ESTATE, "engine recv: fd %d already has a receive pending", fd);
			return NULL;
		}
	op = op_get(e, VMS_OP_RECV, fd, kind, user, len);
	if (!op)
		return NULL;
	op->iov[0].iov_base = buf;
	op->iov[0].iov_len = len;
	op->niov = 1;
	q = fdq_get(e, fd);
	op->q = q;
	q->recv = op;
	e->st.recvs++;
	return op;
}

/* ---- completions ------------------------------------------------------- */

static void done_push(struct vms_engine *e, struct vms_op *op, long res)
{
	op->res = res;
	op->next = NULL;
	if (e->done_tail)
		e->done_tail->next = op;
	else
		e->done_head = op;
	e->done_tail = op;
}

struct vms_op *vms_ioq_complete(struct vms_engine *e, struct vms_op *op, long res)
{
	struct vms_fdq *q = op->q;
	struct vms_op *next = NULL;

	if (op->type == VMS_OP_RECV) {
		q->recv = NULL;
		done_push(e, op, res);
		fdq_put_if_idle(e, q);
		return NULL;
	}
	/* Only the head of an fd's queue is ever in progress. */
	q->whead = op->next;
	if (!q->whead)
		q->wtail = NULL;
	done_push(e, op, res);
	if (res < 0) {
		while (q->whead) {
			struct vms_op *c = q->whead;

			q->whead = c->next;
			done_push(e, c, -ECANCELED);
		}
		q->wtail = NULL;
	}
	next = q->whead;
	if (!next)
		e->nbusy--;
	fdq_put_if_idle(e, q);
	return next;
}

unsigned vms_ioq_drain(struct vms_engine *e, struct vms_io_done *done, unsigned max)
{
	unsigned n = 0;

	while (n < max && e->done_head) {
		struct vms_op *op = e->done_head;

		e->done_head = op->next;
		if (!e->done_head)
			e->done_tail = NULL;
		done[n].user = op->user;
		done[n].res = op->res;
		n++;
		op->next = e->free_ops;
		e->free_ops = op;
		e->npending--;
	}
	return n;
}

/* ---- transfers --------------------------------------------------------- */

void vms_ioq_advance(struct vms_op *op, size_t n)
{
	op->done += n;
	while (op->cur < op->niov && n >= op->iov[op->cur].iov_len) {
		n -= op->iov[op->cur].iov_len;
		op->cur++;
	}
	if (op->cur < op->niov) {
		op->iov[op->cur].iov_base = (uint8_t *)op->iov[op->cur].iov_base + n;
		op->iov[op->cur].iov_len -= n;
	}
}

int vms_ioq_in_arena(const struct vms_engine *e, const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)e->arena, x = (uintptr_t)p;

	return e->arena && len && x >= a && x - a <= e->arena_len &&
	       len <= e->arena_len - (x - a);
}

/* ---- deadlines --------------------------------------------------------- */

int64_t vms_ioq_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : (int64_t)vms_now_ns() + (int64_t)timeout_ms * 1000000;
}

int vms_ioq_left_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - (int64_t)vms_now_ns();
	if (left <= 0)
		return 0;
	left = (left + 999999) / 1000000;
	return left > INT_MAX ? INT_MAX : (int)left;
}
