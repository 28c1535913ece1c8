/* SPDX-License-Identifier: MIT */
/*
 * Failure helpers of the session unit.
 */
#include <stdarg.h>
#include <stdio.h>
#include "base/error.h"
#include "session/internal.h"

int vms_session_fail_ctx(int code, const char *fmt, ...)
{
	char ctx[VMS_MSG_MAX], why[VMS_MSG_MAX];
	va_list ap;

	/* copied first: the message is about to be overwritten */
	snprintf(why, sizeof(why), "%s", vms_last_error());
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	return vms_fail(code, "%s: %s", ctx, why);
}
