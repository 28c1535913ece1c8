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
 *   honours its timeout, then plain read / writev. A blocking writev to a
 *   pipe would only return once every byte is in the pipe, i.e. never if the
 *   reader stalls; so writes to a pipe go through a second open file
 *   description of the same pipe (/proc/self/fd/N opened O_WRONLY |
 *   O_NONBLOCK, for the duration of the operation): the caller's description
 *   and its flags stay untouched, and a full pipe means EAGAIN and poll()
 *   instead of a thread stuck in write(). Without /proc (or if the reopen is
 *   refused) the write is a plain blocking one. If the caller made an fd
 *   non-blocking itself, EAGAIN sends it back to poll() too.
 * - Ordering and short writes as in queue.h: one write in progress
 *   per fd, the rest of a short write is finished before the next write.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "io/backend.h"

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

/* A second, non-blocking open file description of the pipe fd writes to;
 * -1: none (writes block); -3: fd is not open for writing (a write fails at
 * once). The caller's description is not touched. */
static int fifo_reopen(int fd)
{
	int fl = fcntl(fd, F_GETFL), nfd;
	struct stat a, b;
	char path[32];

	if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY)
		return -3;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (nfd < 0)
		return -1;
	if (fstat(fd, &a) != 0 || fstat(nfd, &b) != 0 || a.st_dev != b.st_dev ||
	    a.st_ino != b.st_ino) {
		close(nfd);
		return -1;
	}
	return nfd;
}

static void write_done(struct vms_engine *e, struct vms_fdq *q, struct vms_op *op, long res)
{
	if (op->alt_fd >= 0)
		close(op->alt_fd);
	op->alt_fd = -1;
	q->wflight = 0;
	vms_ioq_complete(e, op, res);
}

/* Write as much of the head of q as the fd takes. */
static void attempt_write(struct vms_engine *e, struct vms_fdq *q)
{
	struct vms_op *op = q->whead;
	int fd;

	q->wready = 0;
	q->wflight = 1;
	if (e->st.max_fd_writes < 1)
		e->st.max_fd_writes = 1;
	fd = op->alt_fd >= 0 ? op->alt_fd : op->fd;
	for (;;) {
		struct iovec *v = &op->iov[op->cur];
		int n = op->niov - op->cur;
		ssize_t w;

		if (op->is_sock && n == 1) {
			w = send(fd, v->iov_base, v->iov_len, MSG_DONTWAIT | MSG_NOSIGNAL);
		} else if (op->is_sock) {
			struct msghdr m = { .msg_iov = v, .msg_iovlen = (size_t)n };

			w = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
		} else {
			w = writev(fd, v, n);
		}
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				q->wblocked = 1;
				e->st.eagain++;
				return;
			}
			write_done(e, q, op, -errno);
			return;
		}
		if (w == 0) {
			write_done(e, q, op, -EIO);
			return;
		}
		vms_ioq_advance(op, (size_t)w);
		if (op->done == op->total) {
			write_done(e, q, op, (long)op->total);
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
	vms_ioq_complete(e, op, r < 0 ? -errno : (long)r);
}

/* Can op's write be attempted without blocking? Sockets (MSG_DONTWAIT) and
 * pipes reopened non-blocking can; the first call reopens a pipe. */
static int nonblocking(struct vms_op *op)
{
	if (op->is_fifo && op->alt_fd == -1) {
		int fd = fifo_reopen(op->fd);

		op->alt_fd = fd == -1 ? -2 : fd; /* -2: tried, writes block */
	}
	return op->is_sock || op->alt_fd >= 0 || op->alt_fd == -3;
}

/* May an op be tried without asking poll() first? Non-blocking ones: until
 * they say EAGAIN. Others: only when poll() said so. */
static int can_write(const struct vms_fdq *q)
{
	return q->whead && (q->wready || (nonblocking(q->whead) && !q->wblocked));
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
		/* The receive first: its completion cannot free q while a
		 * write is queued, and q is not touched after the write. */
		if (r)
			attempt_recv(e, q);
		if (w)
			attempt_write(e, q);
	}
}

/* Complete everything pending on q with res (queued writes behind the
 * first one: -ECANCELED). */
static void fail_fd(struct vms_engine *e, struct vms_fdq *q, long res)
{
	struct vms_op *r = q->recv;

	if (r)
		vms_ioq_complete(e, r, res);
	if (q->whead)
		write_done(e, q, q->whead, res);
}

static int p_cancel(struct vms_engine *e)
{
	struct vms_fdq *q, *next;

	for (q = e->active; q; q = next) {
		next = q->next;
		fail_fd(e, q, -ECANCELED);
	}
	return 0;
}

static int p_wait(struct vms_engine *e, struct vms_io_done *done, unsigned max, int timeout_ms)
{
	struct posix_engine *p = P(e);
	int64_t deadline = vms_ioq_deadline(timeout_ms);
	unsigned n = vms_ioq_drain(e, done, max);
	int last = 0;

	while (n == 0 && max > 0 && e->npending > 0) {
		struct vms_fdq *q;
		nfds_t k = 0;
		int left, busy = 0, ret;

		progress(e);
		n = vms_ioq_drain(e, done, max);
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
		left = busy ? 0 : vms_ioq_left_ms(deadline);
		if (left == 0 && !busy)
			last = 1; /* one non-blocking look, then report the timeout */
		ret = poll(p->pfd, k, left);
		e->st.syscalls_wait++;
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return vms_fail(VMS_EIO, "poll: %s", vms_sys_err(errno));
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
	int64_t deadline = vms_ioq_deadline(timeout_ms);
	struct pollfd pfd = { .fd = fd, .events = ev };

	for (;;) {
		int ret = poll(&pfd, 1, vms_ioq_left_ms(deadline));

		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return -errno;
		if (ret == 0)
			return 0;
		return pfd.revents & POLLNVAL ? -EBADF : 1;
	}
}

static long p_read_full(struct vms_engine *e, int fd, int kind, void *buf, size_t len,
			int timeout_ms)
{
	size_t got = 0;

	(void)e;
	while (got < len) {
		ssize_t r;

		if (kind != VMS_FD_SOCK) {
			/* after POLLIN a read does not block */
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

static int p_write_full(struct vms_engine *e, int fd, int kind, const void *buf, size_t len,
			int timeout_ms)
{
	int alt = kind == VMS_FD_FIFO ? fifo_reopen(fd) : -1;
	size_t put = 0;

	if (alt == -3)
		return -EBADF; /* not open for writing */
	int rc = 0;

	(void)e;
	while (put < len) {
		const uint8_t *p = (const uint8_t *)buf + put;
		ssize_t w;

		if (kind == VMS_FD_SOCK) {
			w = send(fd, p, len - put, MSG_DONTWAIT | MSG_NOSIGNAL);
		} else if (alt >= 0) {
			w = write(alt, p, len - put);
		} else {
			int pr = poll_one(fd, POLLOUT, timeout_ms);

			if (pr <= 0) {
				rc = pr == 0 ? -ETIMEDOUT : pr;
				break;
			}
			w = write(fd, p, len - put);
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int pr = poll_one(fd, POLLOUT, timeout_ms);

			if (pr <= 0) {
				rc = pr == 0 ? -ETIMEDOUT : pr;
				break;
			}
			continue;
		}
		if (w <= 0) {
			rc = w < 0 ? -errno : -EIO;
			break;
		}
		put += (size_t)w;
	}
	if (alt >= 0)
		close(alt);
	return rc;
}

static void p_destroy(struct vms_engine *e)
{
	struct posix_engine *p = P(e);

	/* only the write in progress on an fd may hold a reopened pipe */
	for (struct vms_fdq *q = e->active; q; q = q->next)
		if (q->whead && q->whead->alt_fd >= 0)
			close(q->whead->alt_fd);

	free(p->pfd);
	free(p->pq);
	vms_ioq_free(e);
	free(p);
}

static const struct vms_backend_ops posix_ops = {
	.name = "posix",
	.kind = VMS_ENGINE_POSIX,
	.destroy = p_destroy,
	.start = p_start,
	.wait = p_wait,
	.read_full = p_read_full,
	.write_full = p_write_full,
	.cancel = p_cancel,
	.set_send_zc = NULL,
};

int vms_posix_new(struct vms_engine **out, unsigned depth, void *arena, size_t arena_len)
{
	struct posix_engine *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		return vms_fail(VMS_ENOMEM, "posix engine: no memory");
	rc = vms_ioq_init(&p->base, &posix_ops, depth, arena, arena_len);
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
	vms_ioq_free(&p->base);
out_free:
	free(p);
	return rc;
}
