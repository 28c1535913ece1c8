/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>
#include "base/error.h"

static _Thread_local char errbuf[VMS_MSG_MAX];

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

const char *vms_errbuf(void)
{
	return errbuf;
}

int vms_failv(int code, const char *fmt, va_list ap)
{
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
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
	if (msg != errbuf)
		snprintf(errbuf, sizeof(errbuf), "%s", msg);
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
