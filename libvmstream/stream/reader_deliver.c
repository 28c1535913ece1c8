/* SPDX-License-Identifier: MIT */
/* Reader delivery: the payload rules, in sequence order, to events. */
#include "base/hash.h"
#include "format/cursor.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/error.h"
#include "stream/reader_internal.h"

static int add_device(struct vms_reader *r, const struct rjob *j)
{
	struct rdev *d;

	if (r->ndev == r->capdev) {
		uint32_t ncap = r->capdev ? r->capdev * 2 : 8;
		struct rdev *nd = realloc(r->devs, ncap * sizeof(*nd));

		if (!nd)
			return vms_rd_fail(r, VMS_ENOMEM, j->h.seq, j->pos, "out of memory for the device table");
		r->devs = nd;
		r->capdev = ncap;
	}
	d = &r->devs[r->ndev];
	memset(d, 0, sizeof(*d));
	if (!r->headers_only && !r->direct) {
		if (posix_memalign((void **)&d->dg, 64, sizeof(*d->dg)))
			return vms_rd_fail(r, VMS_ENOMEM, j->h.seq, j->pos, "out of memory for a device digest");
		vms_digest_init(d->dg);
	}
	r->ndev++;
	return 0;
}

static int deliver_control(struct vms_reader *r, const struct rjob *j, struct vms_event *ev)
{
	const struct vms_rec_hdr *h = &j->h;
	const uint8_t *body = j->data;
	const char *why;
	int err;

	switch (h->type) {
	case VMS_REC_DEVICE_BEGIN: {
		struct vms_begin_body b;

		err = vms_begin_decode(&b, body, h->raw_len, &why);
		if (err)
			return vms_rd_fail(r, err, h->seq, j->pos, why);
		err = add_device(r, j);
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
			return vms_rd_fail(r, err, h->seq, j->pos, why);
		ev->u.phase.phase = (uint32_t)vms_get_u64(body);
		ev->u.phase.round = (uint32_t)(vms_get_u64(body) >> 32);
		/* FORMAT.md 3.1, record rule 19: phases 1..3 are all 1.x has */
		if (ev->u.phase.phase < VMS_PHASE_PRECOPY || ev->u.phase.phase > VMS_PHASE_STOPCOPY)
			return vms_rd_fail(r, VMS_EPHASE, h->seq, j->pos, "PHASE with an undefined phase value");
		return 0;
	case VMS_REC_DEVICE_END: {
		struct rdev *d = &r->devs[h->device];
		uint64_t total, digest;

		err = vms_fixed_decode(body, h->raw_len, 16, &why);
		if (err)
			return vms_rd_fail(r, err, h->seq, j->pos, why);
		total = vms_get_u64(body);
		digest = vms_get_u64(body + 8);
		if (total != d->bytes)
			return vms_rd_fail(r, VMS_EDIGEST, h->seq, j->pos,
				     "DEVICE_END total differs from the bytes received");
		if (digest != (r->direct ? j->end_digest : vms_digest_final(d->dg)))
			return vms_rd_fail(r, VMS_EDIGEST, h->seq, j->pos,
				     "DEVICE_END digest differs from the bytes received");
		d->ended = true;
		d->digest = digest;
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
			return vms_rd_fail(r, err, h->seq, j->pos, why);
		for (uint32_t i = 0; i < r->ndev; i++)
			if (!r->devs[i].ended)
				return vms_rd_fail(r, VMS_EEOS, h->seq, j->pos, "EOS while a device has not ended");
		if (records != h->seq || raw != r->raw_total || devices != r->ndev)
			return vms_rd_fail(r, VMS_EEOS, h->seq, j->pos, "EOS totals differ from the stream");
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
			return vms_rd_fail(r, err, h->seq, j->pos, why);
		ev->u.abort.code = code;
		ev->u.abort.text = r->abort_text;
		r->abort_code = code;
		return 0;
	}
	default: /* ignorable unknown type: verified, skipped by the caller */
		return 0;
	}
}

/* Framing-only mode: device bookkeeping from header fields alone. */
static int deliver_header_only(struct vms_reader *r, const struct rjob *j)
{
	const struct vms_rec_hdr *h = &j->h;

	switch (h->type) {
	case VMS_REC_DEVICE_BEGIN:
		return add_device(r, j);
	case VMS_REC_DATA:
	case VMS_REC_ZERO:
		r->devs[h->device].bytes += h->raw_len;
		r->raw_total += h->raw_len;
		break;
	case VMS_REC_DEVICE_END:
		r->devs[h->device].ended = true;
		break;
	default:
		break;
	}
	return 0;
}

int vms_rd_deliver(struct vms_reader *r, const struct rjob *j, struct vms_event *ev)
{
	const struct vms_rec_hdr *h = &j->h;
	int err = 0;

	if (j->err) {
		r->err = j->err;
		snprintf(r->msg, sizeof(r->msg), "%s", j->msg);
		vms_log(r->o.log, r->o.log_user, r->o.log_level, VMS_LOG_ERROR, "%s", r->msg);
		return vms_fail_msg(r->err, r->msg);
	}
	memset((char *)ev + sizeof(ev->size), 0, sizeof(*ev) - sizeof(ev->size));
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
	ev->stream_pos = j->pos;
	if (r->headers_only) {
		err = deliver_header_only(r, j);
	} else if (h->type == VMS_REC_DATA || h->type == VMS_REC_ZERO) {
		struct rdev *d = &r->devs[h->device];

		if (r->direct)
			; /* digested on the input side, in stream order */
		else if (h->type == VMS_REC_DATA)
			vms_digest_update(d->dg, j->data, h->raw_len);
		else
			vms_digest_zeros(d->dg, h->raw_len);
		d->bytes += h->raw_len;
		r->raw_total += h->raw_len;
		ev->u.data.data = j->data;
		ev->u.data.len = h->raw_len;
	} else {
		err = deliver_control(r, j, ev);
	}
	if (!err && h->type == VMS_REC_EOS && j->trailing)
		err = vms_rd_fail(r, VMS_ETRAILING, h->seq + 1, j->trail_pos, "bytes follow the EOS record");
	if (err)
		return err;
	pthread_mutex_lock(&r->stats_mu);
	r->st.records++;
	r->st.devices = r->ndev;
	if (h->type == VMS_REC_DATA || h->type == VMS_REC_ZERO) {
		r->st.raw_bytes += h->raw_len;
		if (h->type == VMS_REC_DATA)
			r->st.data_records++;
		else
			r->st.zero_records++;
		if (h->type == VMS_REC_DATA && h->codec == 0)
			r->st.stored_records++;
	}
	pthread_mutex_unlock(&r->stats_mu);
	return 0;
}
