/* SPDX-License-Identifier: MIT */
/* The reader's failures, located at the record and byte they concern, and
 * the errors of its I/O: the bottom of the reader unit. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/error.h"
#include "stream/reader_internal.h"

/* Fail the reader for good (caller's thread), naming record and offset. */
int vms_rd_fail(struct vms_reader *r, int code, uint64_t seq, uint64_t pos, const char *why)
{
	vms_fail(code, "record %llu at byte %llu: %s", (unsigned long long)seq,
		 (unsigned long long)pos, why);
	r->err = code;
	snprintf(r->msg, sizeof(r->msg), "%s", vms_last_error());
	vms_log(r->o.log, r->o.log_user, r->o.log_level, VMS_LOG_ERROR, "%s", r->msg);
	return code;
}

/* Record an error inside a job (input or worker thread); delivered in order. */
int vms_rd_jfail(struct rjob *j, int code, uint64_t seq, const char *why)
{
	j->err = code;
	snprintf(j->msg, sizeof(j->msg), "record %llu at byte %llu: %s", (unsigned long long)seq,
		 (unsigned long long)j->pos, why);
	return code;
}

int vms_rd_io_code(long res)
{
	return res == -ETIMEDOUT ? VMS_ETIMEOUT
	       : res == -ECANCELED ? VMS_ECANCELED
	       : (res == -ECONNRESET || res == -EPIPE || res == -ENOTCONN) ? VMS_ENET : VMS_EIO;
}

const char *vms_rd_io_why(long res, char *buf, size_t cap)
{
	if (res == -ETIMEDOUT)
		return "no data from the sender within the idle timeout";
	snprintf(buf, cap, "read failed: %s", vms_sys_err((int)-res));
	return buf;
}
