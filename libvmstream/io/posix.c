/* SPDX-License-Identifier: MIT */
/*
 * Portable engine: poll() plus plain system calls, all performed inside
 * vms_engine_wait() (queueing only records the operation).
 *
 * - Sockets: non-blocking attempts (send/sendmsg with MSG_DONTWAIT |
 *   MSG_NOSIGNAL, recv with MSG_DONTWAIT), whatever the fd's own O_NONBLOCK
 *   flag says; on EAGAIN the fd joins the poll() set, so several lanes
 *   progress concurrently from one thread.
 * - Other fds (pipes, files, ttys; possibly the caller's stdin/stdout, whose
 *   O_NONBLOCK flag is never changed): poll() for readiness first, so a wait
 *   honours its timeout, then plain blocking writev/read. A blocking writev
 *   to a pipe returns once every byte is in the pipe, which may take longer
 *   than the timeout once started. If the caller made the fd non-blocking,
 *   EAGAIN sends it back to poll().
 * - Ordering and short writes as in engine_internal.h: one write in progress
 *   per fd, the rest of a short write is finished before the next write.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/error.h"
#include "io/engine_internal.h"

struct posix_engine {
	struct vms_engine base; /* first: the dispatcher casts */
	struct pollfd *pfd;     /* depth entries: at most depth fds are active */
	struct vms_fdq **pq;
};

static struct posix_engine *P(struct vms_engine *e)
{
	return (struct posix_engine *)e;
}

static void p_start(struct vms_engine *e, struct vms_op *op)
{
	(void)e;
	(void)op;
}

/* Write as much of the head of q as the fd takes. */
static void attempt_write(struct vms_engine *e, struct vms_fdq *q)
{
	struct vms_op *op = q->whead;

	q->wready = 0;
	q->wflight = 1;
	if (e->st.max_fd_writes < 1)
		e->st.max_fd_writes = 1;
	for (;;) {
		struct iovec *v = &op->iov[op->cur];
		int n = op->niov - op->cur;
		ssize_t w;

		if (op->is_sock && n == 1) {
			w = send(op->fd, v->iov_base, v->iov_len, MSG_DONTWAIT | MSG_NOSIGNAL);
		} else if (op->is_sock) {
			struct msghdr m = { .msg_iov = v, .msg_iovlen = (size_t)n };

			w = sendmsg(op->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		} else {
			w = writev(op->fd, v, n);
		}
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				q->wblocked = 1;
				e->st.eagain++;
				return;
			}
			q->wflight = 0;
			vms_eng_complete(e, op, -errno);
			return;
		}
		if (w == 0) {
			q->wflight = 0;
			vms_eng_complete(e, op, -EIO);
			return;
		}
		vms_eng_advance(op, (size_t)w);
		if (op->done == op->total) {
			q->wflight = 0;
			vms_eng_complete(e, op, (long)op->total);
			return;
		}
		e->st.short_writes++;
	}
}

static void attempt_recv(struct vms_engine *e, struct vms_fdq *q)
{
	struct vms_op *op = q->recv;
	ssize_t r;

	q->rready = 0;
	do {
		if (op->is_sock)
			r = recv(op->fd, op->iov[0].iov_base, op->iov[0].iov_len, MSG_DONTWAIT);
		else
			r = read(op->fd, op->iov[0].iov_base, op->iov[0].iov_len);
	} while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		q->rblocked = 1;
		e->st.eagain++;
		return;
	}
	vms_eng_complete(e, op, r < 0 ? -errno : (long)r);
}

/* May an op be tried without asking poll() first? Sockets: until they say
 * EAGAIN. Others: only when poll() said so. */
static int can_write(const struct vms_fdq *q)
{
	return q->whead && (q->wready || (q->whead->is_sock && !q->wblocked));
}

static int can_recv(const struct vms_fdq *q)
{
	return q->recv && (q->rready || (q->recv->is_sock && !q->rblocked));
}

static void progress(struct vms_engine *e)
{
	struct vms_fdq *q, *next;

	for (q = e->active; q; q = next) {
		int w = can_write(q), r = can_recv(q);

		next = q->next; /* q may go back to the free list */
		/* Attempt the receive first: the write completing cannot free q
		 * while a receive is pending, and vice versa. */
		if (r)
			attempt_recv(e, q);
		if (w)
			attempt_write(e, q);
	}
}

static void fail_fd(struct vms_engine *e, struct vms_fdq *q, long res)
{
	struct vms_op *r = q->recv;

	if (q->whead) {
		q->wflight = 0;
		vms_eng_complete(e, q->whead, res); /* the rest: -ECANCELED */
	}
	if (r)
		vms_eng_complete(e, r, res);
}

static int p_wait(struct vms_engine *e, struct vms_io_done *done, unsigned max, int timeout_ms)
{
	struct posix_engine *p = P(e);
	int64_t deadline = vms_eng_deadline(timeout_ms);
	unsigned n = vms_eng_drain(e, done, max);
	int last = 0;

	while (n == 0 && max > 0 && e->npending > 0) {
		struct vms_fdq *q;
		nfds_t k = 0;
		int left, busy = 0, ret;

		progress(e);
		n = vms_eng_drain(e, done, max);
		if (n || last || e->npending == 0)
			break;
		for (q = e->active; q; q = q->next) {
			short ev = 0;

			if (can_write(q) || can_recv(q))
				busy = 1;
			if (q->whead)
				ev |= POLLOUT;
			if (q->recv)
				ev |= POLLIN;
			p->pfd[k].fd = q->fd;
			p->pfd[k].events = ev;
			p->pfd[k].revents = 0;
			p->pq[k++] = q;
		}
		if (e->nbusy > e->st.max_fds_busy)
			e->st.max_fds_busy = e->nbusy;
		left = busy ? 0 : vms_eng_left_ms(deadline);
		if (left == 0 && !busy)
			last = 1; /* one non-blocking look, then report the timeout */
		ret = poll(p->pfd, k, left);
		e->st.syscalls_wait++;
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return vms_fail(VMS_EIO, "poll: %s", strerror(errno));
		}
		for (nfds_t i = 0; ret > 0 && i < k; i++) {
			short re = p->pfd[i].revents;

			q = p->pq[i];
			if (!re)
				continue;
			if (re & POLLNVAL) {
				fail_fd(e, q, -EBADF);
				continue;
			}
			if (q->whead && (re & (POLLOUT | POLLERR | POLLHUP))) {
				q->wready = 1;
				q->wblocked = 0;
			}
			if (q->recv && (re & (POLLIN | POLLERR | POLLHUP))) {
				q->rready = 1;
				q->rblocked = 0;
			}
		}
	}
	return (int)n;
}

/* Wait for one fd; 1 ready, 0 timed out, or -errno. */
static int poll_one(int fd, short ev, int timeout_ms)
{
	int64_t deadline = vms_eng_deadline(timeout_ms);
	struct pollfd pfd = { .fd = fd, .events = ev };

	for (;;) {
		int ret = poll(&pfd, 1, vms_eng_left_ms(deadline));

		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return -errno;
		if (ret == 0)
			return 0;
		return pfd.revents & POLLNVAL ? -EBADF : 1;
	}
}

static long p_read_full(struct vms_engine *e, int fd, int is_sock, void *buf, size_t len,
			int timeout_ms)
{
	size_t got = 0;

	(void)e;
	while (got < len) {
		ssize_t r;

		if (!is_sock) {
			int pr = poll_one(fd, POLLIN, timeout_ms);

			if (pr <= 0)
				return pr == 0 ? -ETIMEDOUT : pr;
			r = read(fd, (uint8_t *)buf + got, len - got);
		} else {
			r = recv(fd, (uint8_t *)buf + got, len - got, MSG_DONTWAIT);
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				int pr = poll_one(fd, POLLIN, timeout_ms);

				if (pr <= 0)
					return pr == 0 ? -ETIMEDOUT : pr;
				continue;
			}
			return -errno;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (long)got;
}

static int p_write_full(struct vms_engine *e, int fd, int is_sock, const void *buf, size_t len,
			int timeout_ms)
{
	size_t put = 0;

	(void)e;
	while (put < len) {
		ssize_t w;

		if (!is_sock) {
			int pr = poll_one(fd, POLLOUT, timeout_ms);

			if (pr <= 0)
				return pr == 0 ? -ETIMEDOUT : pr;
			w = write(fd, (const uint8_t *)buf + put, len - put);
		} else {
			w = send(fd, (const uint8_t *)buf + put, len - put,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		}
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				int pr = poll_one(fd, POLLOUT, timeout_ms);

				if (pr <= 0)
					return pr == 0 ? -ETIMEDOUT : pr;
				continue;
			}
			return -errno;
		}
		if (w == 0)
			return -EIO;
		put += (size_t)w;
	}
	return 0;
}

static void p_destroy(struct vms_engine *e)
{
	struct posix_engine *p = P(e);

	free(p->pfd);
	free(p->pq);
	vms_eng_base_free(e);
	free(p);
}

static const struct vms_engine_ops posix_ops = {
	.name = "posix",
	.kind = VMS_ENGINE_POSIX,
	.destroy = p_destroy,
	.start = p_start,
	.wait = p_wait,
	.read_full = p_read_full,
	.write_full = p_write_full,
	.set_send_zc = NULL,
};

int vms_posix_new(struct vms_engine **out, unsigned depth, void *arena, size_t arena_len)
{
	struct posix_engine *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return vms_fail(VMS_ENOMEM, "posix engine: no memory");
	rc = vms_eng_base_init(&p->base, &posix_ops, depth, arena, arena_len);
	if (rc)
		goto out_free;
	p->pfd = calloc(depth, sizeof(*p->pfd));
	p->pq = calloc(depth, sizeof(*p->pq));
	if (!p->pfd || !p->pq) {
		rc = vms_fail(VMS_ENOMEM, "posix engine: no memory");
		goto out_base;
	}
	*out = &p->base;
	return 0;

out_base:
	free(p->pfd);
	free(p->pq);
	vms_eng_base_free(&p->base);
out_free:
	free(p);
	return rc;
}
