/* SPDX-License-Identifier: MIT */
/* Buffered input over an fd: EINTR retried, every wait bounded by an
 * optional timeout and cancel fd. */
#ifndef VMS_FDIO_H
#define VMS_FDIO_H

#include <stddef.h>
#include <stdint.h>

/* Buffered input over an fd, so small headers do not cost a syscall each. */
struct vms_engine;

struct vms_in {
	int fd;
	uint8_t *buf;
	size_t cap, pos, end;
	uint64_t consumed; /* bytes handed out so far = stream offset */
	int eof;
	int timeout_ms;    /* per wait; -1 = block forever */
	int cancel_fd;     /* eventfd: readable = give up (-ECANCELED); -1 = none */
	int sock;          /* fd is a stream socket: recv(MSG_DONTWAIT) first */
	int lowat;         /* its SO_RCVLOWAT as last set (1 = the default) */
};

int vms_in_init(struct vms_in *in, int fd, size_t cap);
void vms_in_free(struct vms_in *in);
/* Copy up to n bytes to dst; returns count (< n only at EOF) or -errno. */
long vms_in_read(struct vms_in *in, void *dst, size_t n);
/* 1 if no byte follows, 0 if one does, -errno on error. */
int vms_in_at_eof(struct vms_in *in);
/* Bytes buffered and not yet handed out. */
size_t vms_in_buffered(const struct vms_in *in);
/* One non-blocking receive appended to the buffer: bytes, 0 at EOF, -EAGAIN
 * if nothing is there, or -errno. */
long vms_in_fill_some(struct vms_in *in);

#endif
