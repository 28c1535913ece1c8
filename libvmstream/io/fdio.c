/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include "io/fdio.h"

/* A payload read waits until this much of it (or all of it, if less) is
 * queued, instead of waking for every segment that arrives. */
#define IN_LOWAT_MAX (256u << 10)

int vms_in_init(struct vms_in *in, int fd, size_t cap)
{
	memset(in, 0, sizeof(*in));
	in->fd = fd;
	in->cap = cap;
	in->timeout_ms = -1;
	in->cancel_fd = -1;
	in->lowat = 1;
	{
		struct stat st;

		in->sock = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
	}
	in->buf = malloc(cap);
	return in->buf ? 0 : -ENOMEM;
}

/* Back to the default SO_RCVLOWAT: a raised one would keep poll() on this
 * socket (the reader's lane selection, a caller's own use of the fd)
 * from reporting a short record that is already queued. */
static void lowat_reset(struct vms_in *in)
{
	int one = 1;

	if (in->lowat != 1 &&
	    setsockopt(in->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one)) == 0)
		in->lowat = 1;
}

void vms_in_free(struct vms_in *in)
{
	if (in->sock && in->buf)
		lowat_reset(in);
	free(in->buf);
	in->buf = NULL;
}

/* Wait until fd is readable (-ETIMEDOUT after the timeout, -ECANCELED when
 * the cancel eventfd fires), so that no read ever blocks for good. */
static int wait_readable(const struct vms_in *in)
{
	struct pollfd p[2] = { { .fd = in->fd, .events = POLLIN },
			       { .fd = in->cancel_fd, .events = POLLIN } };
	int n;

	if (in->timeout_ms < 0 && in->cancel_fd < 0 && !in->sock)
		return 0; /* the read itself blocks */
	do
		n = poll(p, in->cancel_fd >= 0 ? 2 : 1, in->timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	if (in->cancel_fd >= 0 && (p[1].revents & POLLIN))
		return -ECANCELED;
	return 0;
}

/* One read of at most len bytes, after waiting as above. A socket is read
 * without waiting first (one syscall when data is queued, the common case);
 * when nothing is, the wait asks for min(want, IN_LOWAT_MAX) bytes through
 * SO_RCVLOWAT, so a large payload costs a few wake-ups, not one per
 * segment. want must never exceed what the stream still owes (a header
 * read passes 1): the end of the stream (FIN) wakes the wait regardless. */
static long read_some(struct vms_in *in, void *buf, size_t len, size_t want)
{
	ssize_t r;
	int err;

	if (in->sock) {
		int lowat = (int)(want < IN_LOWAT_MAX ? (want ? want : 1) : IN_LOWAT_MAX);

		for (;;) {
			r = recv(in->fd, buf, len, MSG_DONTWAIT);
			if (r >= 0)
				return (long)r;
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			if (lowat != in->lowat &&
			    setsockopt(in->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)) == 0)
				in->lowat = lowat;
			err = wait_readable(in);
			if (err == -ETIMEDOUT && in->lowat > 1) {
				/* fewer than lowat bytes in the idle time is still
				 * progress on a slow link: take what is there */
				r = recv(in->fd, buf, len, MSG_DONTWAIT);
				if (r > 0)
					return (long)r;
			}
			if (err)
				return err;
		}
	}
	err = wait_readable(in);
	if (err)
		return err;
	do
		r = read(in->fd, buf, len);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : (long)r;
}

static int fill(struct vms_in *in)
{
	long r;

	in->pos = in->end = 0;
	r = read_some(in, in->buf, in->cap, 1);
	if (r < 0)
		return (int)r;
	if (r == 0)
		in->eof = 1;
	in->end = (size_t)r;
	return 0;
}

long vms_in_read(struct vms_in *in, void *dst, size_t n)
{
	size_t got = 0;

	while (got < n) {
		size_t avail = in->end - in->pos;

		if (avail) {
			size_t k = avail < n - got ? avail : n - got;

			memcpy((uint8_t *)dst + got, in->buf + in->pos, k);
			in->pos += k;
			got += k;
			continue;
		}
		if (in->eof)
			break;
		if (n - got >= in->cap) {
			/* Large payloads bypass the buffer: one copy, not two. */
			long r = read_some(in, (uint8_t *)dst + got, n - got, n - got);

			if (r < 0)
				return r;
			if (r == 0)
				in->eof = 1;
			got += (size_t)r;
			continue;
		}
		int err = fill(in);

		if (err)
			return err;
	}
	if (in->sock)
		lowat_reset(in); /* the payload is in: headers wait for 1 byte */
	in->consumed += got;
	return (long)got;
}

int vms_in_at_eof(struct vms_in *in)
{
	if (in->end > in->pos)
		return 0;
	if (in->eof)
		return 1;
	int err = fill(in);

	if (err)
		return err;
	return in->end == 0;
}

size_t vms_in_buffered(const struct vms_in *in)
{
	return in->end - in->pos;
}

long vms_in_fill_some(struct vms_in *in)
{
	ssize_t r;

	if (in->eof)
		return 0;
	if (in->pos > 0) {
		memmove(in->buf, in->buf + in->pos, in->end - in->pos);
		in->end -= in->pos;
		in->pos = 0;
	}
	if (in->end == in->cap)
		return -ENOBUFS;
	do
		r = recv(in->fd, in->buf + in->end, in->cap - in->end, MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (r == 0)
		in->eof = 1;
	in->end += (size_t)r;
	return (long)r;
}
