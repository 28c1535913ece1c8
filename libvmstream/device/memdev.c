/* SPDX-License-Identifier: MIT */
/*
 * Memory and file-descriptor devices: opaque blobs under the same state
 * machine as a VFIO device (capability STOP_COPY only: a blob has no notion
 * of dirty data, so there is no pre-copy; sending it in PRE_COPY and again
 * in STOP_COPY would hand the sink the bytes twice).
 *
 * mem: a source hands out the caller's buffer in STOP_COPY (no copy; the
 * buffer must outlive the device). RESUMING collects bytes into an owned
 * buffer that grows up to `cap`; from then on the device's content is what it
 * was loaded with (vms_device_mem(), and a later STOP_COPY, see it).
 *
 * fd: STOP_COPY reads the fd until EOF; RESUMING writes to it, finishing
 * short writes (pipes, sockets, files at increasing offsets). The fd stays
 * the caller's and is not closed. Sockets are written with MSG_NOSIGNAL; a
 * pipe whose reader has gone raises SIGPIPE like write(2) (the io engines'
 * convention: the program ignores SIGPIPE and gets VMS_EDEVIO with EPIPE).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "base/error.h"
#include "device/device.h"
#include "device/vfio.h"

#define MEM_GROW_MIN (64u << 10)

struct memdev {
	const uint8_t *src;   /* caller's bytes (source), NULL once loaded */
	size_t src_len;
	uint8_t *buf;         /* loaded bytes (owned) */
	size_t len, alloc, cap;
	bool loaded;          /* content is buf, not src */
	size_t pos;           /* STOP_COPY read position */
	uint32_t state;
};

static const char mem_tag[] = "mem";
static const char fd_tag[] = "fd";

static void mem_content(const struct memdev *m, const uint8_t **p, size_t *n)
{
	if (m->loaded) {
		*p = m->buf;
		*n = m->len;
	} else {
		*p = m->src;
		*n = m->src_len;
	}
}

static int blob_caps(void *impl, uint32_t *caps)
{
	(void)impl;
	*caps = VMS_DEVCAP_STOP_COPY;
	return 0;
}

static int mem_set_state(void *impl, uint32_t next)
{
	struct memdev *m = impl;

	if (next == VMS_DEV_STOP_COPY)
		m->pos = 0;
	if (next == VMS_DEV_RESUMING) {
		m->loaded = true; /* a load replaces the content */
		m->len = 0;
	}
	m->state = next;
	return 0;
}

static long mem_read(void *impl, void *buf, size_t len)
{
	struct memdev *m = impl;
	const uint8_t *p;
	size_t n;

	mem_content(m, &p, &n);
	if (m->pos >= n)
		return 0;
	n -= m->pos;
	if (n > len)
		n = len;
	memcpy(buf, p + m->pos, n);
	m->pos += n;
	return (long)n;
}

static long mem_write(void *impl, const void *buf, size_t len)
{
	struct memdev *m = impl;

	if (len > m->cap - m->len)
		return vms_fail(VMS_EDEVIO, "mem device full: %zu bytes stored, %zu more do not "
				"fit in its capacity of %zu", m->len, len, m->cap);
	if (m->len + len > m->alloc) {
		size_t want = m->alloc ? m->alloc : MEM_GROW_MIN;
		uint8_t *nb;

		while (want < m->len + len)
			want = want > m->cap / 2 ? m->cap : want * 2;
		if (want > m->cap)
			want = m->cap;
		nb = realloc(m->buf, want);
		if (!nb)
			return vms_fail(VMS_ENOMEM, "mem device: cannot grow to %zu bytes", want);
		m->buf = nb;
		m->alloc = want;
	}
	memcpy(m->buf + m->len, buf, len);
	m->len += len;
	return (long)len;
}

static int mem_stop_copy_size(void *impl, uint64_t *bytes)
{
	const uint8_t *p;
	size_t n;

	mem_content(impl, &p, &n);
	*bytes = n;
	return 0;
}

static int mem_reset(void *impl)
{
	struct memdev *m = impl;

	m->state = VMS_DEV_RUNNING;
	m->pos = 0;
	return 0;
}

static int mem_get_state(void *impl, uint32_t *state)
{
	*state = ((struct memdev *)impl)->state;
	return 0;
}

static void mem_close(void *impl)
{
	struct memdev *m = impl;

	if (!m)
		return;
	free(m->buf);
	free(m);
}

static const struct vms_device_ops mem_ops = {
	.size = sizeof(struct vms_device_ops),
	.caps = blob_caps,
	.set_state = mem_set_state,
	.stop_copy_size = mem_stop_copy_size,
	.read = mem_read,
	.write = mem_write,
	.reset = mem_reset,
	.close = mem_close,
};

int vms_device_open_mem(struct vms_device **out, const char *name, const void *data,
			size_t len, size_t cap)
{
	struct vms_device_ext ext = { .tag = mem_tag, .state = VMS_DEV_RUNNING,
				      .get_state = mem_get_state };
	struct memdev *m;
	int r;

	if (out)
		*out = NULL;
	r = vms_device_check_name(name);
	if (r < 0)
		return r;
	if (!out || (!data && len))
		return vms_fail(VMS_EINVAL, "device '%s': NULL data with length %zu", name, len);
	if (!data && cap == 0)
		return vms_fail(VMS_EINVAL, "device '%s': a mem device needs data (source) or "
				"a capacity (sink)", name);
	m = calloc(1, sizeof(*m));
	if (!m)
		return vms_fail(VMS_ENOMEM, "device '%s': out of memory", name);
	m->src = data;
	m->src_len = len;
	m->cap = cap;
	m->state = VMS_DEV_RUNNING;
	r = vms_device_create(out, name, VMS_DEVKIND_BLOB, &mem_ops, m, &ext);
	if (r < 0)
		mem_close(m);
	return r;
}

const void *vms_device_mem(const struct vms_device *d, size_t *len)
{
	const struct memdev *m = vms_device_impl(d, mem_tag);
	const uint8_t *p;
	size_t n;

	if (!m) {
		if (len)
			*len = 0;
		return NULL;
	}
	mem_content(m, &p, &n);
	if (len)
		*len = n;
	return p ? (const void *)p : (const void *)"";
}

/* ---- fd ------------------------------------------------------------------- */

struct fddev {
	int fd;
	bool sock;       /* send(MSG_NOSIGNAL): a gone peer is EPIPE, not SIGPIPE */
	uint32_t state;
};

static int fd_set_state(void *impl, uint32_t next)
{
	((struct fddev *)impl)->state = next;
	return 0;
}

static int fd_get_state(void *impl, uint32_t *state)
{
	*state = ((struct fddev *)impl)->state;
	return 0;
}

static int wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	while (poll(&p, 1, -1) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

static long fd_read(void *impl, void *buf, size_t len)
{
	struct fddev *f = impl;
	char eb[96];

	for (;;) {
		ssize_t n = read(f->fd, buf, len);

		if (n >= 0)
			return (long)n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && wait_fd(f->fd, POLLIN) == 0)
			continue;
		{
			int e = errno;

			return vms_fail(VMS_EDEVIO, "read from fd %d failed: %s", f->fd,
					vms_errno_text(e, eb, sizeof(eb)));
		}
	}
}

static long fd_write(void *impl, const void *buf, size_t len)
{
	struct fddev *f = impl;
	const uint8_t *p = buf;
	size_t done = 0;
	char eb[96];

	while (done < len) {
		ssize_t n = f->sock ? send(f->fd, p + done, len - done, MSG_NOSIGNAL)
				    : write(f->fd, p + done, len - done);
		int e;

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		e = n == 0 ? EIO : errno;
		if (e == EINTR)
			continue;
		if (e == EAGAIN && wait_fd(f->fd, POLLOUT) == 0)
			continue;
		return vms_fail(VMS_EDEVIO, "write to fd %d failed after %zu of %zu bytes: %s",
				f->fd, done, len, vms_errno_text(e, eb, sizeof(eb)));
	}
	return (long)done;
}

static int fd_stop_copy_size(void *impl, uint64_t *bytes)
{
	struct fddev *f = impl;
	struct stat st;
	off_t pos;

	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return vms_fail(VMS_EUNSUPPORTED, "fd %d is not a regular file: size unknown",
				f->fd);
	pos = lseek(f->fd, 0, SEEK_CUR);
	if (pos < 0)
		pos = 0;
	*bytes = st.st_size > pos ? (uint64_t)(st.st_size - pos) : 0;
	return 0;
}

static int fd_reset(void *impl)
{
	((struct fddev *)impl)->state = VMS_DEV_RUNNING;
	return 0;
}

static void fd_close(void *impl)
{
	free(impl);
}

static const struct vms_device_ops fd_ops = {
	.size = sizeof(struct vms_device_ops),
	.caps = blob_caps,
	.set_state = fd_set_state,
	.stop_copy_size = fd_stop_copy_size,
	.read = fd_read,
	.write = fd_write,
	.reset = fd_reset,
	.close = fd_close,
};

int vms_device_open_fd(struct vms_device **out, const char *name, int fd)
{
	struct vms_device_ext ext = { .tag = fd_tag, .state = VMS_DEV_RUNNING,
				      .get_state = fd_get_state };
	struct fddev *f;
	int r;

	if (out)
		*out = NULL;
	r = vms_device_check_name(name);
	if (r < 0)
		return r;
	if (!out || fd < 0)
		return vms_fail(VMS_EINVAL, "device '%s': bad fd %d", name, fd);
	f = calloc(1, sizeof(*f));
	if (!f)
		return vms_fail(VMS_ENOMEM, "device '%s': out of memory", name);
	f->fd = fd;
	f->state = VMS_DEV_RUNNING;
	{
		struct stat st;

		f->sock = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
	}
	r = vms_device_create(out, name, VMS_DEVKIND_BLOB, &fd_ops, f, &ext);
	if (r < 0)
		free(f);
	return r;
}
