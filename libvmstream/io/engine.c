/* SPDX-License-Identifier: MIT */
/* Engine dispatch, AUTO selection, the io_uring availability probe, and the
 * bookkeeping both engines share (operation pool, per-fd write queues,
 * completions not yet handed out). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "io/engine_internal.h"

/* ---- availability probe ----------------------------------------------- */

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
/* Written once under probe_once, read-only afterwards. */
static int probe_ok;
static char probe_reason[160];

static int sysctl_disabled(void)
{
	char buf[16] = { 0 };
	int fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0)
		return 0; /* kernels before 6.6 have no such switch */
	r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return r > 0 ? atoi(buf) : 0;
}

static void probe(void)
{
	static const int need[] = {
		IORING_OP_NOP, IORING_OP_SEND, IORING_OP_RECV, IORING_OP_SENDMSG,
		IORING_OP_READ, IORING_OP_WRITEV, IORING_OP_READ_FIXED,
		IORING_OP_WRITE_FIXED, IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL,
	};
	struct __kernel_timespec ts = { .tv_sec = 5 };
	struct io_uring_probe *p;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct io_uring ring;
	int disabled = sysctl_disabled();
	int ret;

	if (disabled == 2) {
		snprintf(probe_reason, sizeof(probe_reason),
			 "io_uring is disabled by sysctl kernel.io_uring_disabled=2");
		return;
	}
	ret = io_uring_queue_init(4, &ring, 0);
	if (ret < 0) {
		if (ret == -ENOSYS)
			snprintf(probe_reason, sizeof(probe_reason),
				 "io_uring_setup: %s (kernel without io_uring, or blocked by seccomp)",
				 vms_sys_err(-ret));
		else if (ret == -EPERM)
			snprintf(probe_reason, sizeof(probe_reason),
				 "io_uring_setup: %s (kernel.io_uring_disabled=%d, seccomp or container policy)",
				 vms_sys_err(-ret), disabled);
		else
			snprintf(probe_reason, sizeof(probe_reason), "io_uring_setup: %s",
				 vms_sys_err(-ret));
		return;
	}
	p = io_uring_get_probe_ring(&ring);
	if (!p) {
		snprintf(probe_reason, sizeof(probe_reason),
			 "kernel too old: io_uring opcode probe not supported");
		goto out_exit;
	}
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (!io_uring_opcode_supported(p, need[i])) {
			snprintf(probe_reason, sizeof(probe_reason),
				 "kernel too old: io_uring opcode %d not supported", need[i]);
			io_uring_free_probe(p);
			goto out_exit;
		}
	}
	io_uring_free_probe(p);
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_nop(sqe);
	ret = io_uring_submit(&ring);
	if (ret != 1) {
		snprintf(probe_reason, sizeof(probe_reason), "io_uring NOP submit: %s",
			 ret < 0 ? vms_sys_err(-ret) : "not consumed");
		goto out_exit;
	}
	ret = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
	if (ret < 0 || cqe->res != 0) {
		snprintf(probe_reason, sizeof(probe_reason), "io_uring NOP completion: %s",
			 vms_sys_err(ret < 0 ? -ret : -cqe->res));
		goto out_exit;
	}
	io_uring_cqe_seen(&ring, cqe);
	probe_ok = 1;
out_exit:
	io_uring_queue_exit(&ring);
}

int vms_engine_uring_available(void)
{
	pthread_once(&probe_once, probe);
	return probe_ok;
}

const char *vms_engine_uring_reason(void)
{
	pthread_once(&probe_once, probe);
	return probe_ok ? "" : probe_reason;
}

/* ---- construction and dispatch ---------------------------------------- */

int vms_engine_new(struct vms_engine **out, int kind, unsigned depth, void *arena,
		   size_t arena_len)
{
	const char *env = NULL;
	int rc;

	if (!out)
		return vms_fail(VMS_EINVAL, "engine: NULL output pointer");
	*out = NULL;
	if (kind != VMS_ENGINE_AUTO && kind != VMS_ENGINE_URING && kind != VMS_ENGINE_POSIX)
		return vms_fail(VMS_EINVAL, "engine: unknown kind %d", kind);
	if (depth == 0 || depth > VMS_ENGINE_DEPTH_MAX)
		return vms_fail(VMS_EINVAL, "engine: depth %u not in 1..%u", depth,
				VMS_ENGINE_DEPTH_MAX);
	if ((arena == NULL) != (arena_len == 0))
		return vms_fail(VMS_EINVAL, "engine: arena %p with length %zu", arena, arena_len);

	if (kind == VMS_ENGINE_AUTO) {
		env = getenv("VMS_IO");
		if (env && !strcmp(env, "uring"))
			kind = VMS_ENGINE_URING;
		else if (env && !strcmp(env, "posix"))
			kind = VMS_ENGINE_POSIX;
		else if (env && *env && strcmp(env, "auto"))
			return vms_fail(VMS_EINVAL, "VMS_IO=%s: expected uring, posix or auto", env);
		else
			env = NULL;
	}
	if (kind == VMS_ENGINE_URING) {
		if (!vms_engine_uring_available())
			return vms_fail(VMS_EUNSUPPORTED, "io_uring engine unavailable%s: %s",
					env ? " (VMS_IO=uring)" : "", probe_reason);
		return vms_uring_new(out, depth, arena, arena_len);
	}
	if (kind == VMS_ENGINE_AUTO && vms_engine_uring_available()) {
		/* If this ring cannot be had (ring memory beyond
		 * RLIMIT_MEMLOCK on old kernels, fd limits, ...), the portable
		 * engine is the way forward. */
		rc = vms_uring_new(out, depth, arena, arena_len);
		if (rc == 0)
			return 0;
	}
	return vms_posix_new(out, depth, arena, arena_len);
}

void vms_engine_free(struct vms_engine *e)
{
	if (e)
		e->ops->destroy(e);
}

const char *vms_engine_name(const struct vms_engine *e)
{
	return e->ops->name;
}

int vms_engine_kind(const struct vms_engine *e)
{
	return e->ops->kind;
}

unsigned vms_engine_pending(const struct vms_engine *e)
{
	return e->npending;
}

int vms_engine_stats(const struct vms_engine *e, struct vms_engine_stats *out)
{
	if (!e || !out)
		return vms_fail(VMS_EINVAL, "engine stats: NULL argument");
	*out = e->st;
	return 0;
}

int vms_engine_set_send_zc(struct vms_engine *e, int on)
{
	if (!e->ops->set_send_zc)
		return vms_fail(VMS_EUNSUPPORTED, "%s engine: no SEND_ZC", e->ops->name);
	return e->ops->set_send_zc(e, on);
}

/* fd type, once per operation: sockets get send/recv semantics (MSG_NOSIGNAL,
 * MSG_DONTWAIT), everything else read/write. */
static int fd_kind(int fd, const char *what)
{
	struct stat st;

	if (fd < 0 || fstat(fd, &st) != 0) {
		int err = fd < 0 ? EBADF : errno;

		return vms_fail(VMS_EINVAL, "engine %s: fd %d: %s", what, fd, vms_sys_err(err));
	}
	if (S_ISSOCK(st.st_mode))
		return VMS_FD_SOCK;
	return S_ISFIFO(st.st_mode) ? VMS_FD_FIFO : VMS_FD_OTHER;
}

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
 * (kind: fd_kind()); NULL with VMS_ESTATE when depth operations are pending. */
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

int vms_engine_writev(struct vms_engine *e, int fd, const struct iovec *iov, int n, void *user)
{
	struct vms_op *op;
	struct vms_fdq *q;
	size_t total = 0;
	int kind;

	if (!e || !iov || n < 1 || n > VMS_ENGINE_IOV_MAX)
		return vms_fail(VMS_EINVAL, "engine writev: %d iovecs (1..%d)", n,
				VMS_ENGINE_IOV_MAX);
	for (int i = 0; i < n; i++) {
		if (iov[i].iov_len > (size_t)LONG_MAX - total)
			return vms_fail(VMS_EINVAL, "engine writev: total length overflows");
		if (iov[i].iov_len && !iov[i].iov_base)
			return vms_fail(VMS_EINVAL, "engine writev: NULL buffer");
		total += iov[i].iov_len;
	}
	if (total == 0)
		return vms_fail(VMS_EINVAL, "engine writev: nothing to write");
	kind = fd_kind(fd, "writev");
	if (kind < 0)
		return kind;
	op = op_get(e, VMS_OP_WRITE, fd, kind, user, total);
	if (!op)
		return VMS_ESTATE;
	for (int i = 0; i < n; i++)
		op->iov[op->niov++] = iov[i]; /* empty ones are skipped by advance */
	vms_eng_advance(op, 0);
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
	e->ops->start(e, op);
	return 0;
}

int vms_engine_recv(struct vms_engine *e, int fd, void *buf, size_t len, void *user)
{
	struct vms_op *op;
	struct vms_fdq *q;
	int kind;

	if (!e || !buf || len == 0 || len > (size_t)LONG_MAX)
		return vms_fail(VMS_EINVAL, "engine recv: bad buffer (%zu bytes)", len);
	kind = fd_kind(fd, "recv");
	if (kind < 0)
		return kind;
	for (q = e->active; q; q = q->next)
		if (q->fd == fd && q->recv)
			return vms_fail(VMS_ESTATE, "engine recv: fd %d already has a receive pending",
					fd);
	op = op_get(e, VMS_OP_RECV, fd, kind, user, len);
	if (!op)
		return VMS_ESTATE;
	op->iov[0].iov_base = buf;
	op->iov[0].iov_len = len;
	op->niov = 1;
	q = fdq_get(e, fd);
	op->q = q;
	q->recv = op;
	e->st.recvs++;
	e->ops->start(e, op);
	return 0;
}

int vms_engine_wait(struct vms_engine *e, struct vms_io_done *done, unsigned max, int timeout_ms)
{
	if (!e || (!done && max) || timeout_ms < -1)
		return vms_fail(VMS_EINVAL, "engine wait: bad arguments");
	return e->ops->wait(e, done, max, timeout_ms);
}

int vms_engine_cancel(struct vms_engine *e)
{
	if (!e)
		return vms_fail(VMS_EINVAL, "engine cancel: NULL engine");
	return e->ops->cancel(e);
}

/* Arguments of read_full / write_full: 0 with the fd's kind in *kind, 1 if
 * there is nothing to transfer, or -EINVAL / -EBADF. */
static int sync_check(const struct vms_engine *e, int fd, const void *buf, size_t len,
		      int timeout_ms, const char *what, int *kind)
{
	if (!e || (!buf && len) || len > (size_t)LONG_MAX || timeout_ms < -1)
		return -EINVAL;
	if (len == 0)
		return 1;
	*kind = fd_kind(fd, what);
	return *kind < 0 ? -EBADF : 0;
}

long vms_engine_read_full(struct vms_engine *e, int fd, void *buf, size_t len, int timeout_ms)
{
	int kind, rc = sync_check(e, fd, buf, len, timeout_ms, "read_full", &kind);

	if (rc)
		return rc < 0 ? rc : 0;
	return e->ops->read_full(e, fd, kind, buf, len, timeout_ms);
}

int vms_engine_write_full(struct vms_engine *e, int fd, const void *buf, size_t len,
			  int timeout_ms)
{
	int kind, rc = sync_check(e, fd, buf, len, timeout_ms, "write_full", &kind);

	if (rc)
		return rc < 0 ? rc : 0;
	return e->ops->write_full(e, fd, kind, buf, len, timeout_ms);
}

/* ---- shared bookkeeping ----------------------------------------------- */

int vms_eng_base_init(struct vms_engine *e, const struct vms_engine_ops *ops, unsigned depth,
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

void vms_eng_base_free(struct vms_engine *e)
{
	free(e->op_pool);
	free(e->fdq_pool);
}

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

struct vms_op *vms_eng_complete(struct vms_engine *e, struct vms_op *op, long res)
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

unsigned vms_eng_drain(struct vms_engine *e, struct vms_io_done *done, unsigned max)
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

void vms_eng_advance(struct vms_op *op, size_t n)
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

int vms_eng_in_arena(const struct vms_engine *e, const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)e->arena, x = (uintptr_t)p;

	return e->arena && len && x >= a && x - a <= e->arena_len &&
	       len <= e->arena_len - (x - a);
}

int64_t vms_eng_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t vms_eng_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : vms_eng_now_ns() + (int64_t)timeout_ms * 1000000;
}

int vms_eng_left_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - vms_eng_now_ns();
	if (left <= 0)
		return 0;
	left = (left + 999999) / 1000000;
	return left > INT_MAX ? INT_MAX : (int)left;
}
