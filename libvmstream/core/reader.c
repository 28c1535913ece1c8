/* SPDX-License-Identifier: MIT */
/*
 * Stream reader: reads records one by one, verifies everything FORMAT.md
 * section 4 lists, and only then hands bytes to the caller.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/error.h"
#include "core/fdio.h"
#include "core/internal.h"
#include "format/cursor.h"
#include "format/format.h"
#include "hash/hash.h"

#define READER_MAX_DEVICES 65536u
#define READER_INBUF (64u << 10)

struct rdev {
	uint64_t bytes;
	struct vms_digest *dg;
	bool ended;
};

enum rstate { R_OPEN, R_EOS_SEEN, R_DONE };

struct vms_reader {
	struct vms_in in;
	struct vms_reader_opts o;
	struct vms_preamble pre;
	uint64_t seq;          /* next expected sequence number */
	uint16_t epoch;
	uint8_t *payload;      /* wire payload, chunk_cap + overhead */
	size_t payload_cap;
	struct rdev *devs;
	uint32_t ndev, capdev;
	uint64_t raw_total;
	struct vms_stats st;
	double t0;
	enum rstate state;
	int err;               /* sticky */
	bool aborted;
	int32_t abort_code;
	char name[VMS_NAME_MAX + 1];
	char abort_text[VMS_ABORT_TEXT_MAX + 1];
	char msg[VMS_MSG_MAX];
};

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Fail the reader for good, naming the record and its stream offset. */
static int rfail(struct vms_reader *r, int code, uint64_t pos, const char *why)
{
	vms_fail(code, "record %llu at byte %llu: %s", (unsigned long long)r->seq,
		 (unsigned long long)pos, why);
	r->err = code;
	snprintf(r->msg, sizeof(r->msg), "%s", vms_last_error());
	vms_log(r->o.log, r->o.log_user, r->o.log_level, VMS_LOG_ERROR, "%s", r->msg);
	return code;
}

int vms_reader_open_fd(struct vms_reader **out, int fd, const struct vms_reader_opts *opts)
{
	struct vms_reader_opts def = VMS_READER_OPTS_INIT;
	uint8_t buf[VMS_PREAMBLE_MAX];
	struct vms_reader *r;
	uint32_t plen;
	long got;
	const char *why;
	int err;

	*out = NULL;
	if (opts) {
		if (opts->size < offsetof(struct vms_reader_opts, flags))
			return vms_fail(VMS_EINVAL, "reader options: bad size field %u", opts->size);
		memcpy(&def, opts, opts->size < sizeof(def) ? opts->size : sizeof(def));
	}
	if (def.max_chunk == 0 || def.max_chunk > VMS_CHUNK_MAX)
		def.max_chunk = VMS_CHUNK_MAX;
	r = calloc(1, sizeof(*r));
	if (!r)
		return vms_fail(VMS_ENOMEM, "out of memory allocating the reader");
	r->o = def;
	r->t0 = now_sec();
	r->st.size = sizeof(r->st);
	err = vms_in_init(&r->in, fd, READER_INBUF);
	if (err) {
		err = vms_fail(VMS_ENOMEM, "out of memory allocating the input buffer");
		goto out_free_reader;
	}

	got = vms_in_read(&r->in, buf, 16);
	if (got < 0) {
		err = vms_fail(VMS_EIO, "reading the preamble: %s", strerror((int)-got));
		goto out_free_in;
	}
	err = vms_preamble_peek(buf, (size_t)got, &plen, &why);
	if (err) {
		err = vms_fail(err, "preamble at byte 0: %s", why);
		goto out_free_in;
	}
	got = vms_in_read(&r->in, buf + 16, plen - 16);
	if (got < 0) {
		err = vms_fail(VMS_EIO, "reading the preamble: %s", strerror((int)-got));
		goto out_free_in;
	}
	err = vms_preamble_decode(&r->pre, buf, 16 + (size_t)got, def.max_chunk, &why);
	if (err) {
		err = vms_fail(err, "preamble at byte 0: %s", why);
		goto out_free_in;
	}
	if (r->pre.cipher != VMS_CIPHER_NONE && !(def.flags & VMS_READER_F_HEADERS_ONLY)) {
		err = vms_fail(VMS_EKEY, "preamble at byte 0: stream is encrypted and no key was given");
		goto out_free_in;
	}
	r->payload_cap = (size_t)r->pre.chunk_cap + VMS_AEAD_OVERHEAD;
	r->payload = vms_alloc_prefault(r->payload_cap);
	if (!r->payload) {
		err = vms_fail(VMS_ENOMEM, "out of memory allocating the payload buffer");
		goto out_free_in;
	}
	r->st.wire_bytes = plen;
	*out = r;
	return 0;

out_free_in:
	vms_in_free(&r->in);
out_free_reader:
	free(r);
	return err;
}

int vms_reader_info(const struct vms_reader *r, struct vms_stream_info *info)
{
	struct vms_stream_info i = { 0 };

	if (!info || info->size < sizeof(uint32_t))
		return vms_fail(VMS_EINVAL, "stream info: bad size field");
	i.size = info->size;
	i.version_major = r->pre.major;
	i.version_minor = r->pre.minor;
	memcpy(i.stream_id, r->pre.stream_id, 16);
	i.flags = r->pre.flags;
	i.chunk_cap = r->pre.chunk_cap;
	i.cipher = r->pre.cipher;
	i.key_source = r->pre.key_source;
	i.lanes = r->pre.lanes;
	i.preamble_len = r->pre.len;
	i.size_hint = r->pre.size_hint;
	memcpy(info, &i, info->size < sizeof(i) ? info->size : sizeof(i));
	return 0;
}

/* Device and offset rules that need only the header (before any payload
 * is read, so a hostile header never makes us read or allocate). */
static int check_device_hdr(struct vms_reader *r, const struct vms_rec_hdr *h, uint64_t pos)
{
	switch (h->type) {
	case VMS_REC_DEVICE_BEGIN:
		if (h->device != r->ndev)
			return rfail(r, VMS_EDEVICE, pos, "DEVICE_BEGIN index is not the next device");
		if (r->ndev >= READER_MAX_DEVICES)
			return rfail(r, VMS_EDEVICE, pos, "too many devices (limit 65536)");
		break;
	case VMS_REC_DATA:
	case VMS_REC_ZERO:
	case VMS_REC_DEVICE_END:
		if (h->device >= r->ndev)
			return rfail(r, VMS_EDEVICE, pos, "record for a device that was not begun");
		if (r->devs[h->device].ended)
			return rfail(r, VMS_EDEVICE, pos, "record for a device that already ended");
		break;
	default:
		if (h->device != VMS_DEVICE_NONE)
			return rfail(r, VMS_EDEVICE, pos, "stream-level record names a device");
		break;
	}
	if (h->type == VMS_REC_DATA || h->type == VMS_REC_ZERO) {
		const struct rdev *d = &r->devs[h->device];

		if (h->offset != d->bytes)
			return rfail(r, VMS_EOFFSET, pos, "offset does not continue the device");
		if (d->bytes + h->raw_len < d->bytes)
			return rfail(r, VMS_EOFFSET, pos, "device offset overflows");
	} else if (h->offset != 0) {
		return rfail(r, VMS_EOFFSET, pos, "control record with a non-zero offset");
	}
	return 0;
}

static int add_device(struct vms_reader *r, uint64_t pos)
{
	struct rdev *d;

	if (r->ndev == r->capdev) {
		uint32_t ncap = r->capdev ? r->capdev * 2 : 8;
		struct rdev *nd = realloc(r->devs, ncap * sizeof(*nd));

		if (!nd)
			return rfail(r, VMS_ENOMEM, pos, "out of memory for the device table");
		r->devs = nd;
		r->capdev = ncap;
	}
	d = &r->devs[r->ndev];
	memset(d, 0, sizeof(*d));
	if (posix_memalign((void **)&d->dg, 64, sizeof(*d->dg)))
		return rfail(r, VMS_ENOMEM, pos, "out of memory for a device digest");
	vms_digest_init(d->dg);
	r->ndev++;
	r->st.devices = r->ndev;
	return 0;
}

static void fill_event(struct vms_event *ev, const struct vms_rec_hdr *h, uint64_t pos)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = h->type;
	ev->flags = h->flags;
	ev->codec = h->codec;
	ev->device = h->device;
	ev->seq = h->seq;
	ev->offset = h->offset;
	ev->raw_len = h->raw_len;
	ev->wire_len = h->wire_len;
	ev->lane = h->lane;
	ev->epoch = h->epoch;
	ev->stream_pos = pos;
}

/* Apply a verified control payload; fills the event. */
static int apply_control(struct vms_reader *r, const struct vms_rec_hdr *h, const uint8_t *body,
			 struct vms_event *ev, uint64_t pos)
{
	const char *why;
	int err;

	switch (h->type) {
	case VMS_REC_DEVICE_BEGIN: {
		struct vms_begin_body b;

		err = vms_begin_decode(&b, body, h->raw_len, &why);
		if (err)
			return rfail(r, err, pos, why);
		err = add_device(r, pos);
		if (err)
			return err;
		memcpy(r->name, b.name, (size_t)b.name_len + 1);
		ev->u.begin.name = r->name;
		ev->u.begin.kind = b.kind;
		ev->u.begin.size_hint = b.size_hint;
		return 0;
	}
	case VMS_REC_PHASE:
		err = vms_fixed_decode(body, h->raw_len, 8, &why);
		if (err)
			return rfail(r, err, pos, why);
		ev->u.phase.phase = (uint32_t)vms_get_u64(body);
		ev->u.phase.round = (uint32_t)(vms_get_u64(body) >> 32);
		return 0;
	case VMS_REC_DEVICE_END: {
		struct rdev *d = &r->devs[h->device];
		uint64_t total, digest;

		err = vms_fixed_decode(body, h->raw_len, 16, &why);
		if (err)
			return rfail(r, err, pos, why);
		total = vms_get_u64(body);
		digest = vms_get_u64(body + 8);
		if (total != d->bytes)
			return rfail(r, VMS_EDIGEST, pos, "DEVICE_END total differs from the bytes received");
		if (digest != vms_digest_final(d->dg))
			return rfail(r, VMS_EDIGEST, pos, "DEVICE_END digest differs from the bytes received");
		d->ended = true;
		free(d->dg);
		d->dg = NULL;
		ev->u.end.total = total;
		ev->u.end.digest = digest;
		return 0;
	}
	case VMS_REC_EOS: {
		uint64_t records, raw;
		uint32_t devices;

		err = vms_eos_decode(body, h->raw_len, &records, &raw, &devices, &why);
		if (err)
			return rfail(r, err, pos, why);
		for (uint32_t i = 0; i < r->ndev; i++)
			if (!r->devs[i].ended)
				return rfail(r, VMS_EEOS, pos, "EOS while a device has not ended");
		if (records != h->seq || raw != r->raw_total || devices != r->ndev)
			return rfail(r, VMS_EEOS, pos, "EOS totals differ from the stream");
		ev->u.eos.records = records;
		ev->u.eos.raw_bytes = raw;
		ev->u.eos.devices = devices;
		return 0;
	}
	case VMS_REC_ABORT: {
		int32_t code;

		err = vms_abort_decode(body, h->raw_len, &code, r->abort_text,
				       sizeof(r->abort_text), &why);
		if (err)
			return rfail(r, err, pos, why);
		ev->u.abort.code = code;
		r->abort_code = code;
		ev->u.abort.text = r->abort_text;
		return 0;
	}
	default: /* ignorable unknown: verified, skipped by the caller */
		return 0;
	}
}

/* Framing-only mode: device bookkeeping from header fields alone. */
static int apply_header_only(struct vms_reader *r, const struct vms_rec_hdr *h, uint64_t pos)
{
	int err;

	switch (h->type) {
	case VMS_REC_DEVICE_BEGIN:
		err = add_device(r, pos);
		if (err)
			return err;
		break;
	case VMS_REC_DATA:
	case VMS_REC_ZERO:
		r->devs[h->device].bytes += h->raw_len;
		r->raw_total += h->raw_len;
		r->st.raw_bytes += h->raw_len;
		if (h->type == VMS_REC_DATA)
			r->st.data_records++;
		else
			r->st.zero_records++;
		break;
	case VMS_REC_DEVICE_END:
		r->devs[h->device].ended = true;
		break;
	default:
		break;
	}
	r->seq++;
	r->st.records++;
	return 0;
}

static int read_record(struct vms_reader *r, struct vms_event *ev)
{
	uint8_t hb[VMS_HDR_LEN];
	struct vms_rec_hdr h;
	uint64_t pos = r->in.consumed;
	uint32_t body_len;
	const char *why;
	long got;
	int err;

	got = vms_in_read(&r->in, hb, sizeof(hb));
	if (got < 0)
		return rfail(r, VMS_EIO, pos, strerror((int)-got));
	if ((size_t)got < sizeof(hb))
		return rfail(r, VMS_ETRUNCATED, pos,
			     got == 0 ? "stream ends without EOS" : "stream ends inside a record header");
	err = vms_hdr_decode(&h, hb, &why);
	if (err)
		return rfail(r, err, pos, why);
	if ((h.flags & VMS_RFLAG_ENCRYPTED) != (r->pre.flags & VMS_PFLAG_ENCRYPTED))
		return rfail(r, VMS_EFLAGS, pos, "record ENCRYPTED flag differs from the stream's");
	if (h.seq != r->seq)
		return rfail(r, VMS_ESEQ, pos, h.seq < r->seq ? "sequence number repeats or goes back"
							       : "sequence number skips ahead");
	if (h.lane >= r->pre.lanes)
		return rfail(r, VMS_EEPOCH, pos, "lane index beyond the stream's lane count");
	if (r->pre.cipher == VMS_CIPHER_NONE ? h.epoch != 0
					     : (h.epoch < r->epoch || h.epoch > r->epoch + 1))
		return rfail(r, VMS_EEPOCH, pos, "key epoch out of order");
	if (!vms_rec_is_known(h.type) && !(h.type & VMS_REC_IGNORABLE))
		return rfail(r, VMS_ERECTYPE, pos, "unknown critical record type");
	err = vms_hdr_check(&h, &r->pre, &body_len, &why);
	if (err)
		return rfail(r, err, pos, why);
	err = check_device_hdr(r, &h, pos);
	if (err)
		return err;

	got = vms_in_read(&r->in, r->payload, h.wire_len);
	if (got < 0)
		return rfail(r, VMS_EIO, pos, strerror((int)-got));
	if ((size_t)got < h.wire_len)
		return rfail(r, VMS_ETRUNCATED, pos, "stream ends inside a record payload");
	r->st.wire_bytes += VMS_HDR_LEN + h.wire_len;

	fill_event(ev, &h, pos);
	if (r->o.flags & VMS_READER_F_HEADERS_ONLY)
		return apply_header_only(r, &h, pos);
	if (h.type == VMS_REC_DATA) {
		struct rdev *d = &r->devs[h.device];

		/* codec != 0 is refused by vms_hdr_check until codecs exist. */
		if (vms_xxh3(r->payload, h.raw_len) != h.payload_sum)
			return rfail(r, VMS_EPAYLOADSUM, pos, "DATA payload checksum mismatch");
		vms_digest_update(d->dg, r->payload, h.raw_len);
		d->bytes += h.raw_len;
		r->raw_total += h.raw_len;
		r->st.raw_bytes += h.raw_len;
		r->st.data_records++;
		ev->u.data.data = r->payload;
		ev->u.data.len = h.raw_len;
	} else if (h.type == VMS_REC_ZERO) {
		struct rdev *d = &r->devs[h.device];

		if (h.payload_sum != 0)
			return rfail(r, VMS_EPAYLOADSUM, pos, "ZERO record with a non-zero payload_sum");
		vms_digest_zeros(d->dg, h.raw_len);
		d->bytes += h.raw_len;
		r->raw_total += h.raw_len;
		r->st.raw_bytes += h.raw_len;
		r->st.zero_records++;
		ev->u.data.data = NULL;
		ev->u.data.len = h.raw_len;
	} else {
		if (vms_xxh3(r->payload, h.raw_len) != h.payload_sum)
			return rfail(r, VMS_EPAYLOADSUM, pos, "control payload checksum mismatch");
		err = apply_control(r, &h, r->payload, ev, pos);
		if (err)
			return err;
	}
	r->seq++;
	r->st.records++;
	return 0;
}

int vms_reader_next(struct vms_reader *r, struct vms_event *ev)
{
	int err;

	if (r->err)
		return vms_fail_msg(r->err, r->msg);
	if (r->state == R_DONE)
		return 0;
	if (r->state == R_EOS_SEEN) {
		r->state = R_DONE;
		return 0;
	}
	if (r->aborted) {
		r->err = VMS_EPEERABORT;
		snprintf(r->msg, sizeof(r->msg), "peer aborted the stream: %.300s (peer error %s)",
			 r->abort_text, vms_errname(r->abort_code) ? vms_errname(r->abort_code) : "unknown");
		return vms_fail_msg(r->err, r->msg);
	}
	for (;;) {
		err = read_record(r, ev);
		if (err)
			return err;
		if (vms_rec_is_known(ev->type))
			break;
		/* ignorable unknown record: verified, skipped */
	}
	if (ev->type == VMS_REC_EOS) {
		int at_eof = vms_in_at_eof(&r->in);

		if (at_eof < 0)
			return rfail(r, VMS_EIO, r->in.consumed, strerror(-at_eof));
		if (!at_eof)
			return rfail(r, VMS_ETRAILING, r->in.consumed, "bytes follow the EOS record");
		r->state = R_EOS_SEEN;
	} else if (ev->type == VMS_REC_ABORT) {
		r->aborted = true;
	}
	if (r->o.progress)
		r->o.progress(r->o.progress_user, &r->st);
	return 1;
}

int vms_reader_stats(const struct vms_reader *r, struct vms_stats *st)
{
	struct vms_stats s = r->st;

	if (!st || st->size < sizeof(uint32_t))
		return vms_fail(VMS_EINVAL, "stats: bad size field");
	s.seconds = now_sec() - r->t0;
	memcpy((char *)st + sizeof(uint32_t), (const char *)&s + sizeof(uint32_t),
	       (st->size < sizeof(s) ? st->size : sizeof(s)) - sizeof(uint32_t));
	return 0;
}

void vms_reader_free(struct vms_reader *r)
{
	if (!r)
		return;
	for (uint32_t i = 0; i < r->ndev; i++)
		free(r->devs[i].dg);
	free(r->devs);
	vms_free_prefault(r->payload, r->payload_cap);
	vms_in_free(&r->in);
	free(r);
}

const char *vms_rec_type_name(uint32_t type)
{
	static const char *const names[] = { NULL, "DEVICE_BEGIN", "DATA", "ZERO", "PHASE",
					     "DEVICE_END", "EOS", "ABORT" };

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : NULL;
}
