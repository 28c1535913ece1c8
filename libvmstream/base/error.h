/* SPDX-License-Identifier: MIT */
#ifndef VMS_ERROR_H
#define VMS_ERROR_H

#include <stdarg.h>
#include <stddef.h>
#include "base/limits.h"


/* Record code + formatted message as this thread's last error; returns code. */
int vms_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int vms_failv(int code, const char *fmt, va_list ap);
/* Copy a stored message (e.g. from a context's sticky error) to this thread. */
int vms_fail_msg(int code, const char *msg);
/* vms_sys_err(err) for a message given to vms_fail*(), which then keeps err as
 * the failure's errno (vms_last_errno()). The library calls these instead
 * of vms_sys_err(). */
const char *vms_sys_err(int err);
/* "Bad file descriptor (EBADF)" into buf; keeps err like vms_sys_err(). */
const char *vms_errno_text(int err, char *buf, size_t cap);
/* "EBADF", or NULL for an errno without a name here. */
const char *vms_errno_name(int err);

/* The current thread's message buffer (for contexts that keep a copy). */
const char *vms_errbuf(void);

/* Log through an optional callback; never used for secrets. */
void vms_log(vms_log_fn fn, void *user, int max_level, int level, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#endif
