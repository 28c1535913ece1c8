/* SPDX-License-Identifier: MIT */
/* The writer's failures (first one wins, sticky), lent memory and job
 * release: the bottom of the writer unit (writer_internal.h). */
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/socket.h>
#include <errno.h>
#include "base/error.h"
#include "stream/writer_internal.h"

int vms_wr_set_err(struct vms_writer *w, int code, const char *msg)
{
	int zero = 0;

	/* First error wins; its message is published before the code. */
	if (atomic_load(&w->err) == 0) {
		snprintf(w->msg, sizeof(w->msg), "%s", msg);
		atomic_compare_exchange_strong(&w->err, &zero, code);
	}
	return vms_fail_msg(atomic_load(&w->err), w->msg);
}

int vms_wr_fail(struct vms_writer *w, int code, const char *fmt, ...)
{
	char buf[VMS_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return vms_wr_set_err(w, code, buf);
}

int vms_wr_check(struct vms_writer *w)
{
	int err = atomic_load(&w->err);

	return err ? vms_fail_msg(err, w->msg) : 0;
}

void vms_wr_ref_put(struct wref *ref)
{
	if (ref && atomic_fetch_sub(&ref->n, 1) == 1) {
		ref->done(ref->user);
		free(ref);
	}
}

/* A job leaves the pipeline (written, abandoned or never submitted). */
void vms_wr_job_drop_ref(struct wjob *j)
{
	struct wref *ref = j->ref;

	j->ref = NULL;
	j->ext = NULL;
	vms_wr_ref_put(ref);
}

/* The oldest job goes back to the free list (written, or dropped after a
 * failure), ending its share of any loan. */
void vms_wr_job_release(struct vms_writer *w, struct wjob *j)
{
	vms_wr_job_drop_ref(j);
	vms_ring_release(&w->ring);
}

/* Map a failed write to the error a user can act on. */
int vms_wr_write_err(const struct vms_writer *w, long res)
{
	if (w->t.session)
		return res == -ETIMEDOUT ? VMS_ETIMEOUT : VMS_ENET;
	return res == -EPIPE ? VMS_ESINK : VMS_EIO;
}

/* A fatal error on a session: make the kernel finish every pending
 * operation now (they fail) so that buffers can be reclaimed. */
void vms_wr_shutdown_lanes(struct vms_writer *w)
{
	if (!w->t.session)
		return;
	for (unsigned l = 0; l < w->t.nlanes; l++)
		shutdown(w->t.fds[l], SHUT_RDWR);
}
