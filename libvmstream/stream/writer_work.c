/* SPDX-License-Identifier: MIT */
/* A writer worker: zero elision, codec and AEAD on one record, on a worker
 * thread or (threads == 0) the producer's. */
#include <stdio.h>
#include <string.h>
#include "base/hash.h"
#include "format/cursor.h"
#include "stage/stage.h"
#include "stage/tuner.h"
#include "base/error.h"
#include "stream/writer_internal.h"

static int job_fail(struct wjob *j, int code, const char *what)
{
	j->err = code;
	snprintf(j->msg, sizeof(j->msg), "record %llu: %s", (unsigned long long)j->seq, what);
	return code;
}

static int worker_key(struct wworker *k, uint16_t lane, uint16_t epoch)
{
	struct vms_writer *w = k->w;

	return vms_lane_key_use(&k->key, w->cipher, &w->ks[lane], lane, epoch, w->pre.chunk_cap);
}

/* Does this chunk look compressible? Compress four 2 KiB samples (start,
 * quarter, half, three quarters) and require a 1/32 gain. Decided from the
 * chunk alone, so the stream does not depend on which worker ran it; costs
 * under 1% of compressing a 1 MiB chunk that turns out incompressible. */
static bool worth_compressing(struct wworker *k, const struct wjob *j)
{
	struct vms_writer *w = k->w;
	uint8_t sample[4 * PROBE_PART];
	struct vms_stage_io io = { 0 };

	if (j->len < PROBE_MIN_CHUNK)
		return true;
	for (unsigned i = 0; i < 4; i++)
		memcpy(sample + i * PROBE_PART, j->raw + (size_t)j->len / 4 * i, PROBE_PART);
	io.src = sample;
	io.src_len = sizeof(sample);
	io.dst = j->out;
	io.dst_cap = w->codec->bound(sizeof(sample));
	return w->codec->apply(k->codec_ctx, &io) == VMS_STAGE_DONE;
}

static int worker_compress(struct wworker *k, struct wjob *j, const uint8_t **body,
			   uint32_t *body_len, uint8_t *codec)
{
	struct vms_writer *w = k->w;
	struct vms_stage_io io = { 0 };
	int level = atomic_load_explicit(&w->level, memory_order_relaxed);
	int r;

	if (level == VMS_TUNER_LEVEL_OFF)
		return 0; /* stored raw */
	if (level != k->codec_level && w->codec->set_level) {
		if (w->codec->set_level(k->codec_ctx, level) == 0)
			k->codec_level = level;
	}
	if (!worth_compressing(k, j))
		return 0;
	io.src = j->raw;
	io.src_len = j->len;
	io.dst = j->out;
	io.dst_cap = w->codec->bound(w->pre.chunk_cap);
	r = w->codec->apply(k->codec_ctx, &io);
	if (r < 0)
		return job_fail(j, r, "codec failed");
	if (r == VMS_STAGE_DONE && io.dst_len > 0 && io.dst_len < j->len) {
		*body = j->out;
		*body_len = (uint32_t)io.dst_len;
		*codec = (uint8_t)w->codec->id;
	}
	return 0;
}

int vms_wr_work(void *wctx, void *jp)
{
	struct wworker *k = wctx;
	struct vms_writer *w = k->w;
	struct wjob *j = jp;
	struct vms_rec_hdr h = { 0 };
	const uint8_t *body = j->ext ? j->ext : j->raw; /* ext: no codec, no cipher */
	uint32_t body_len = j->len;
	uint8_t codec = 0;
	uint64_t sum = 0;
	int err;

	j->err = 0;
	j->zero = j->stored = false;
	h.type = j->type;
	if (j->type == VMS_REC_DATA) {
		if (w->zero_elision && vms_all_zero(body, j->len)) {
			h.type = VMS_REC_ZERO;
			j->zero = true;
			body_len = 0;
		} else {
			/* hashed at commit, while the bytes were in cache */
			sum = XXH3_64bits_digest(j->hs);
			if (w->codec) {
				err = worker_compress(k, j, &body, &body_len, &codec);
				if (err)
					return err;
			}
			j->stored = codec == 0;
		}
	} else {
		sum = vms_xxh3(j->raw, j->len);
	}
	h.codec = codec;
	h.device = j->device;
	h.seq = j->seq;
	h.offset = j->offset;
	h.raw_len = j->len;
	h.lane = j->lane;
	h.epoch = j->epoch;
	if (w->cipher) {
		struct vms_stage_io io = { 0 };
		uint8_t nonce[VMS_NONCE_LEN];
		uint8_t *pt = (uint8_t *)body;

		h.flags = VMS_RFLAG_ENCRYPTED;
		h.wire_len = body_len + VMS_AEAD_OVERHEAD;
		vms_hdr_encode(&h, j->hdr);
		err = worker_key(k, j->lane, j->epoch);
		if (err)
			return job_fail(j, err, "cannot set up the record key");
		/* plaintext = body || u64 sum, sealed in place (the buffers have
		 * VMS_AEAD_OVERHEAD bytes of room after the body). */
		vms_put_u64(pt + body_len, sum);
		vms_nonce(nonce, j->lane, j->epoch, j->seq);
		io.src = pt;
		io.src_len = (size_t)body_len + 8;
		io.dst = pt;
		io.dst_cap = (size_t)body_len + VMS_AEAD_OVERHEAD;
		io.aad = j->hdr;
		io.aad_len = VMS_HDR_LEN;
		io.nonce = nonce;
		err = w->cipher->apply(k->key.ctx, &io);
		if (err < 0)
			return job_fail(j, err, "encryption failed");
		body_len = (uint32_t)io.dst_len;
	} else {
		h.payload_sum = sum;
		h.wire_len = body_len;
		vms_hdr_encode(&h, j->hdr);
	}
	j->payload = body;
	j->wire_len = body_len;
	return 0;
}
