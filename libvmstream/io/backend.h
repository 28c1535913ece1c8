/* SPDX-License-Identifier: MIT */
/*
 * What a backend (posix.c, uring.c) offers engine.c: its constructor and
 * the operations engine.c dispatches through. Backends build on queue.h and
 * never call engine.c. Not part of the public API.
 */
#ifndef VMS_IO_BACKEND_H
#define VMS_IO_BACKEND_H

#include <stddef.h>
#include "io/queue.h"

struct vms_backend_ops {
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
	int (*set_send_zc)(struct vms_engine *e, int on); /* NULL: not supported */
};

/* Constructors (arguments checked by vms_engine_new; no AUTO logic, no
 * availability check). 0 or a negative enum vms_err, message via vms_fail(). */
int vms_uring_new(struct vms_engine **out, unsigned depth, void *arena, size_t arena_len);
int vms_posix_new(struct vms_engine **out, unsigned depth, void *arena, size_t arena_len);

#endif
