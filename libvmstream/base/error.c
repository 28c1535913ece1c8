/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "base/error.h"

static _Thread_local char errbuf[VMS_MSG_MAX];
/* errno of a failed system call: named by vms_sys_err() while a message is
 * formatted, kept with the message by vms_fail*(). */
static _Thread_local int pending_errno, last_errno;

struct errdesc {
	int code;
	const char *name;
	const char *text;
};

/* Indexed by -code; entries are never renumbered (ABI). */
static const struct errdesc errtab[] = {
	{ VMS_OK, "VMS_OK", "success" },
	{ VMS_ENOMEM, "VMS_ENOMEM", "out of memory" },
	{ VMS_EINVAL, "VMS_EINVAL", "invalid argument" },
	{ VMS_EIO, "VMS_EIO", "I/O error" },
	{ VMS_ETRUNCATED, "VMS_ETRUNCATED", "stream truncated" },
	{ VMS_EMAGIC, "VMS_EMAGIC", "not a vmstream stream (bad magic)" },
	{ VMS_EVERSION, "VMS_EVERSION", "unsupported format version" },
	{ VMS_EPREAMBLE, "VMS_EPREAMBLE", "malformed stream preamble" },
	{ VMS_EHDRSUM, "VMS_EHDRSUM", "record header checksum mismatch" },
	{ VMS_EPAYLOADSUM, "VMS_EPAYLOADSUM", "payload checksum mismatch" },
	{ VMS_ELENGTH, "VMS_ELENGTH", "length out of bounds or inconsistent" },
	{ VMS_ESEQ, "VMS_ESEQ", "record sequence gap, repeat or reorder" },
	{ VMS_EOFFSET, "VMS_EOFFSET", "device offset not contiguous" },
	{ VMS_ERECTYPE, "VMS_ERECTYPE", "unknown critical record type" },
	{ VMS_EDEVICE, "VMS_EDEVICE", "invalid device reference or order" },
	{ VMS_EDIGEST, "VMS_EDIGEST", "device total or digest mismatch" },
	{ VMS_EEOS, "VMS_EEOS", "end-of-stream totals mismatch" },
	{ VMS_ETRAILING, "VMS_ETRAILING", "trailing bytes after end of stream" },
	{ VMS_ECODEC, "VMS_ECODEC", "unknown or undeclared codec" },
	{ VMS_EDECOMPRESS, "VMS_EDECOMPRESS", "corrupt compressed payload" },
	{ VMS_EAUTH, "VMS_EAUTH", "authentication failed (tampered data or wrong key)" },
	{ VMS_EKEY, "VMS_EKEY", "key missing or invalid" },
	{ VMS_EPEERABORT, "VMS_EPEERABORT", "peer aborted the stream" },
	{ VMS_ETIMEOUT, "VMS_ETIMEOUT", "timed out" },
	{ VMS_EDEVIO, "VMS_EDEVIO", "device error" },
	{ VMS_EFLAGS, "VMS_EFLAGS", "invalid or reserved flags" },
	{ VMS_EEXIST, "VMS_EEXIST", "output already exists" },
	{ VMS_ESTATE, "VMS_ESTATE", "operation not valid in this state" },
	{ VMS_EUNSUPPORTED, "VMS_EUNSUPPORTED", "not supported" },
	{ VMS_ECANCELED, "VMS_ECANCELED", "canceled" },
	{ VMS_EPROTO, "VMS_EPROTO", "protocol error" },
	{ VMS_ENET, "VMS_ENET", "network error" },
	{ VMS_ETLS, "VMS_ETLS", "TLS handshake or authentication failed" },
	{ VMS_EEPOCH, "VMS_EEPOCH", "key epoch or lane out of order" },
	{ VMS_ERESERVED, "VMS_ERESERVED", "reserved field not zero" },
	{ VMS_ESINK, "VMS_ESINK", "output sink failed" },
	{ VMS_ENODATA, "VMS_ENODATA", "no data available now" },
	{ VMS_EPHASE, "VMS_EPHASE", "undefined migration phase in a PHASE record" },
};

static const struct errdesc *lookup(int code)
{
	/* compare before negating: -INT_MIN overflows (codes come off the wire) */
	if (code > 0 || code <= -(int)(sizeof(errtab) / sizeof(errtab[0])))
		return NULL;
	return &errtab[-code];
}

const char *vms_strerror(int err)
{
	const struct errdesc *d = lookup(err);

	return d ? d->text : "unknown error";
}

const char *vms_errname(int err)
{
	const struct errdesc *d = lookup(err);

	return d ? d->name : NULL;
}

const char *vms_last_error(void)
{
	return errbuf;
}

const char *vms_errno_name(int err)
{
	switch (err) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case E2BIG: return "E2BIG";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case ENODEV: return "ENODEV";
	case EINVAL: return "EINVAL";
	case ENOTTY: return "ENOTTY";
	case ENOSPC: return "ENOSPC";
	case ESPIPE: return "ESPIPE";
	case EPIPE: return "EPIPE";
	case ERANGE: return "ERANGE";
	case ENOMSG: return "ENOMSG";
	case ENODATA: return "ENODATA";
	case EOVERFLOW: return "EOVERFLOW";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ETIMEDOUT: return "ETIMEDOUT";
	default: return NULL;
	}
}

int vms_last_errno(void)
{
	return last_errno;
}

const char *vms_sys_err(int err)
{
	pending_errno = err;
	return strerror(err);
}

const char *vms_errno_text(int err, char *buf, size_t cap)
{
	const char *name = vms_errno_name(err);

	pending_errno = err;
	if (name)
		snprintf(buf, cap, "%s (%s)", strerror(err), name);
	else
		snprintf(buf, cap, "%s (errno %d)", strerror(err), err);
	return buf;
}

const char *vms_errbuf(void)
{
	return errbuf;
}

int vms_failv(int code, const char *fmt, va_list ap)
{
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	last_errno = pending_errno;
	pending_errno = 0;
	return code;
}

int vms_fail(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vms_failv(code, fmt, ap);
	va_end(ap);
	return code;
}

int vms_fail_msg(int code, const char *msg)
{
	/* Re-raising the failure just recorded (a context keeps a copy of its
	 * message) keeps its errno; any other message has its own. */
	if (msg != errbuf && strcmp(msg, errbuf) != 0) {
		snprintf(errbuf, sizeof(errbuf), "%s", msg);
		last_errno = pending_errno;
	} else if (pending_errno) {
		last_errno = pending_errno;
	}
	pending_errno = 0;
	return code;
}

void vms_log(vms_log_fn fn, void *user, int max_level, int level, const char *fmt, ...)
{
	char buf[VMS_MSG_MAX];
	va_list ap;

	if (!fn || level > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fn(user, level, buf);
}
