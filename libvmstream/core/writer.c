/* SPDX-License-Identifier: MIT */
/*
 * Stream writer: chunks device bytes into DATA records and writes the
 * preamble, control records and EOS (FORMAT.md). Single producer thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include "core/error.h"
#include "core/fdio.h"
#include "core/internal.h"
#include "format/format.h"
#include "hash/hash.h"

struct wdev {
	uint64_t bytes;
	struct vms_digest *dg;
	bool ended;
};

struct vms_writer {
	int fd;
	struct vms_writer_opts o;
	struct vms_preamble pre;
	uint64_t seq;
	uint16_t lane, epoch;
	uint8_t *chunk;       /* chunk_cap bytes, pre-faulted */
	uint32_t fill;
	uint32_t chunk_dev;   /* device the pending chunk belongs to */
	bool acquired;
	struct wdev *devs;
	uint32_t ndev, capdev;
	uint64_t raw_total;
	struct vms_stats st;
	double t0;
	int err;              /* sticky */
	bool finished;
	char msg[VMS_MSG_MAX];
};

static int wfail(struct vms_writer *w, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int wfail(struct vms_writer *w, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vms_failv(code, fmt, ap);
	va_end(ap);
	w->err = code;
	snprintf(w->msg, sizeof(w->msg), "%s", vms_last_error());
	return code;
}

/* Return the sticky error (re-publishing its message on this thread). */
static int wcheck(struct vms_writer *w)
{
	if (w->err)
		return vms_fail_msg(w->err, w->msg);
	return 0;
}

static int emit(struct vms_writer *w, struct vms_rec_hdr *h, const void *body, uint32_t len)
{
	uint8_t hb[VMS_HDR_LEN];
	struct iovec iov[2];
	int n = 1, err;

	h->seq = w->seq;
	h->lane = w->lane;
	h->epoch = w->epoch;
	h->wire_len = len;
	vms_hdr_encode(h, hb);
	iov[0].iov_base = hb;
	iov[0].iov_len = sizeof(hb);
	if (len) {
		iov[1].iov_base = (void *)body;
		iov[1].iov_len = len;
		n = 2;
	}
	err = vms_writev_all(w->fd, iov, n);
	if (err)
		return wfail(w, VMS_EIO, "record %llu at byte %llu: write failed: %s",
			     (unsigned long long)w->seq, (unsigned long long)w->st.wire_bytes,
			     strerror(-err));
	w->seq++;
	w->st.records++;
	w->st.wire_bytes += VMS_HDR_LEN + len;
	if (w->o.progress)
		w->o.progress(w->o.progress_user, &w->st);
	return 0;
}

static int emit_control(struct vms_writer *w, uint8_t type, uint32_t device, const uint8_t *body,
			uint32_t len)
{
	struct vms_rec_hdr h = { .type = type, .device = device, .raw_len = len };

	h.payload_sum = vms_xxh3(body, len);
	return emit(w, &h, body, len);
}

static int flush_chunk(struct vms_writer *w)
{
	struct wdev *d = &w->devs[w->chunk_dev];
	struct vms_rec_hdr h = { .type = VMS_REC_DATA, .device = w->chunk_dev };
	int err;

	if (w->fill == 0)
		return 0;
	h.offset = d->bytes;
	h.raw_len = w->fill;
	h.payload_sum = vms_xxh3(w->chunk, w->fill);
	vms_digest_update(d->dg, w->chunk, w->fill);
	err = emit(w, &h, w->chunk, w->fill);
	if (err)
		return err;
	d->bytes += w->fill;
	w->raw_total += w->fill;
	w->st.raw_bytes += w->fill;
	w->st.data_records++;
	w->st.stored_records++;
	w->fill = 0;
	return 0;
}

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int vms_writer_open_fd(struct vms_writer **out, int fd, const struct vms_writer_opts *opts)
{
	struct vms_writer_opts def = VMS_WRITER_OPTS_INIT;
	uint8_t buf[VMS_PREAMBLE_MAX];
	struct iovec iov;
	struct vms_writer *w;
	size_t len;
	const char *why;
	int err;

	*out = NULL;
	if (opts) {
		if (opts->size < offsetof(struct vms_writer_opts, stream_id))
			return vms_fail(VMS_EINVAL, "writer options: bad size field %u", opts->size);
		memcpy(&def, opts, opts->size < sizeof(def) ? opts->size : sizeof(def));
	}
	if (def.chunk_size == 0)
		def.chunk_size = VMS_CHUNK_DEFAULT;
	if (def.chunk_size < VMS_CHUNK_MIN || def.chunk_size > VMS_CHUNK_MAX)
		return vms_fail(VMS_EINVAL, "chunk size %u outside [%u, %u]", def.chunk_size,
				VMS_CHUNK_MIN, VMS_CHUNK_MAX);
	w = calloc(1, sizeof(*w));
	if (!w)
		return vms_fail(VMS_ENOMEM, "out of memory allocating the writer");
	w->fd = fd;
	w->o = def;
	w->o.size = sizeof(w->o);
	w->t0 = now_sec();
	w->st.size = sizeof(w->st);
	w->chunk = vms_alloc_prefault(def.chunk_size);
	if (!w->chunk) {
		err = vms_fail(VMS_ENOMEM, "out of memory allocating a %u-byte chunk", def.chunk_size);
		goto out_free_writer;
	}

	w->pre.major = VMS_FORMAT_MAJOR;
	w->pre.minor = VMS_FORMAT_MINOR;
	if (getrandom(w->pre.stream_id, sizeof(w->pre.stream_id), 0) != sizeof(w->pre.stream_id)) {
		err = vms_fail(VMS_EIO, "getrandom failed: %s", strerror(errno));
		goto out_free_chunk;
	}
	if (def.stream_id)
		memcpy(w->pre.stream_id, def.stream_id, 16);
	w->pre.chunk_cap = def.chunk_size;
	w->pre.lanes = 1;
	w->pre.size_hint = def.size_hint;
	if (def.creator && strlen(def.creator) > VMS_CREATOR_MAX) {
		err = vms_fail(VMS_EINVAL, "creator longer than %d bytes", VMS_CREATOR_MAX);
		goto out_free_chunk;
	}
	snprintf(w->pre.creator, sizeof(w->pre.creator), "%s%s",
		 def.creator ? "" : "vmstream ", def.creator ? def.creator : vms_version_string());
	err = vms_preamble_encode(&w->pre, buf, sizeof(buf), &len, &why);
	if (err) {
		err = vms_fail(err, "preamble: %s", why);
		goto out_free_chunk;
	}
	iov.iov_base = buf;
	iov.iov_len = len;
	err = vms_writev_all(fd, &iov, 1);
	if (err) {
		err = vms_fail(VMS_EIO, "writing the preamble: %s", strerror(-err));
		goto out_free_chunk;
	}
	w->st.wire_bytes = len;
	*out = w;
	return 0;

out_free_chunk:
	vms_free_prefault(w->chunk, def.chunk_size);
out_free_writer:
	free(w);
	return err;
}

static int check_dev(struct vms_writer *w, uint32_t device)
{
	int err = wcheck(w);

	if (err)
		return err;
	if (w->finished)
		return vms_fail(VMS_ESTATE, "stream already finished");
	if (device >= w->ndev)
		return vms_fail(VMS_EINVAL, "device %u was not begun", device);
	if (w->devs[device].ended)
		return vms_fail(VMS_ESTATE, "device %u already ended", device);
	return 0;
}

int vms_writer_begin_device(struct vms_writer *w, const struct vms_device_desc *desc,
			    uint32_t *index)
{
	struct vms_begin_body b = { 0 };
	uint8_t body[18 + VMS_NAME_MAX];
	size_t nlen;
	int err = wcheck(w);

	if (err)
		return err;
	if (w->finished || w->acquired)
		return vms_fail(VMS_ESTATE, "cannot begin a device now");
	if (!desc || desc->size < sizeof(struct vms_device_desc) || !desc->name)
		return vms_fail(VMS_EINVAL, "device description missing or incomplete");
	nlen = strlen(desc->name);
	if (nlen < 1 || nlen > VMS_NAME_MAX)
		return vms_fail(VMS_EINVAL, "device name must be 1..%d bytes", VMS_NAME_MAX);
	if (w->ndev == w->capdev) {
		uint32_t ncap = w->capdev ? w->capdev * 2 : 8;
		struct wdev *nd = realloc(w->devs, ncap * sizeof(*nd));

		if (!nd)
			return vms_fail(VMS_ENOMEM, "out of memory for device table");
		w->devs = nd;
		w->capdev = ncap;
	}
	struct wdev *d = &w->devs[w->ndev];

	memset(d, 0, sizeof(*d));
	if (posix_memalign((void **)&d->dg, 64, sizeof(*d->dg)))
		return vms_fail(VMS_ENOMEM, "out of memory for device digest");
	vms_digest_init(d->dg);
	b.kind = desc->kind;
	b.size_hint = desc->size_hint;
	b.name_len = (uint16_t)nlen;
	memcpy(b.name, desc->name, nlen);
	err = emit_control(w, VMS_REC_DEVICE_BEGIN, w->ndev, body,
			   (uint32_t)vms_begin_encode(&b, body));
	if (err) {
		free(d->dg);
		return err;
	}
	if (index)
		*index = w->ndev;
	w->ndev++;
	w->st.devices = w->ndev;
	return 0;
}

int vms_writer_acquire(struct vms_writer *w, uint32_t device, void **buf, size_t *room)
{
	int err = check_dev(w, device);

	if (err)
		return err;
	if (w->acquired)
		return vms_fail(VMS_ESTATE, "a chunk buffer is already acquired");
	if (w->fill && w->chunk_dev != device) {
		err = flush_chunk(w);
		if (err)
			return err;
	}
	w->chunk_dev = device;
	*buf = w->chunk + w->fill;
	*room = w->pre.chunk_cap - w->fill;
	w->acquired = true;
	return 0;
}

int vms_writer_commit(struct vms_writer *w, uint32_t device, size_t len)
{
	int err = wcheck(w);

	if (err)
		return err;
	if (!w->acquired || w->chunk_dev != device)
		return vms_fail(VMS_ESTATE, "commit without a matching acquire");
	if (len > w->pre.chunk_cap - w->fill)
		return vms_fail(VMS_EINVAL, "commit of %zu bytes exceeds the acquired room", len);
	w->acquired = false;
	w->fill += (uint32_t)len;
	if (w->fill == w->pre.chunk_cap)
		return flush_chunk(w);
	return 0;
}

int vms_writer_write(struct vms_writer *w, uint32_t device, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		void *dst;
		size_t room;
		int err = vms_writer_acquire(w, device, &dst, &room);

		if (err)
			return err;
		if (room > len)
			room = len;
		memcpy(dst, p, room);
		err = vms_writer_commit(w, device, room);
		if (err)
			return err;
		p += room;
		len -= room;
	}
	return check_dev(w, device);
}

int vms_writer_phase(struct vms_writer *w, uint32_t phase, uint32_t round)
{
	uint8_t body[8];
	int err = wcheck(w);

	if (err)
		return err;
	if (w->finished || w->acquired)
		return vms_fail(VMS_ESTATE, "cannot write a phase record now");
	if (phase < VMS_PHASE_PRECOPY || phase > VMS_PHASE_STOPCOPY)
		return vms_fail(VMS_EINVAL, "unknown phase %u", phase);
	err = flush_chunk(w);
	if (err)
		return err;
	return emit_control(w, VMS_REC_PHASE, VMS_DEVICE_NONE, body,
			    (uint32_t)vms_phase_encode(phase, round, body));
}

int vms_writer_end_device(struct vms_writer *w, uint32_t device)
{
	uint8_t body[16];
	struct wdev *d;
	int err = check_dev(w, device);

	if (err)
		return err;
	if (w->acquired)
		return vms_fail(VMS_ESTATE, "a chunk buffer is still acquired");
	if (w->fill && w->chunk_dev == device) {
		err = flush_chunk(w);
		if (err)
			return err;
	}
	d = &w->devs[device];
	err = emit_control(w, VMS_REC_DEVICE_END, device, body,
			   (uint32_t)vms_u64pair_encode(d->bytes, vms_digest_final(d->dg), body));
	if (err)
		return err;
	d->ended = true;
	free(d->dg);
	d->dg = NULL;
	return 0;
}

int vms_writer_finish(struct vms_writer *w)
{
	uint8_t body[24];
	int err = wcheck(w);

	if (err)
		return err;
	if (w->finished)
		return vms_fail(VMS_ESTATE, "stream already finished");
	for (uint32_t i = 0; i < w->ndev; i++)
		if (!w->devs[i].ended)
			return vms_fail(VMS_ESTATE, "device %u not ended before finish", i);
	err = emit_control(w, VMS_REC_EOS, VMS_DEVICE_NONE, body,
			   (uint32_t)vms_eos_encode(w->seq, w->raw_total, w->ndev, body));
	if (err)
		return err;
	w->finished = true;
	return 0;
}

int vms_writer_abort(struct vms_writer *w, int code, const char *msg)
{
	uint8_t body[6 + VMS_ABORT_TEXT_MAX];
	int err;

	if (w->finished)
		return vms_fail(VMS_ESTATE, "stream already finished");
	w->acquired = false;
	w->fill = 0;
	err = emit_control(w, VMS_REC_ABORT, VMS_DEVICE_NONE, body,
			   (uint32_t)vms_abort_encode(code, msg, body));
	w->finished = true;
	if (!w->err)
		wfail(w, VMS_ECANCELED, "stream aborted: %s", msg ? msg : vms_strerror(code));
	return err;
}

int vms_writer_stats(const struct vms_writer *w, struct vms_stats *st)
{
	struct vms_stats s = w->st;

	if (!st || st->size < sizeof(uint32_t))
		return vms_fail(VMS_EINVAL, "stats: bad size field");
	s.seconds = now_sec() - w->t0;
	memcpy((char *)st + sizeof(uint32_t), (const char *)&s + sizeof(uint32_t),
	       (st->size < sizeof(s) ? st->size : sizeof(s)) - sizeof(uint32_t));
	return 0;
}

void vms_writer_free(struct vms_writer *w)
{
	if (!w)
		return;
	for (uint32_t i = 0; i < w->ndev; i++)
		free(w->devs[i].dg);
	free(w->devs);
	vms_free_prefault(w->chunk, w->pre.chunk_cap);
	free(w);
}
