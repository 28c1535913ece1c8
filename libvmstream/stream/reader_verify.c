/* SPDX-License-Identifier: MIT */
/* A reader worker: authenticate, decode and checksum one record. */
#include "base/hash.h"
#include "format/cursor.h"
#include "stage/stage.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/error.h"
#include "stream/reader_internal.h"

static int worker_key(struct rworker *k, uint16_t lane, uint16_t epoch)
{
	struct vms_reader *r = k->r;

	return vms_lane_key_use(&k->key, r->cipher, &r->ks[lane], lane, epoch, r->pre.chunk_cap);
}

static int codec_index(const struct vms_preamble *p, uint8_t id)
{
	for (unsigned i = 0; i < p->ncodecs; i++)
		if (p->codecs[i].id == id)
			return (int)i;
	return -1;
}

int vms_rd_work(void *wctx, void *jp)
{
	struct rworker *k = wctx;
	struct vms_reader *r = k->r;
	struct rjob *j = jp;
	const struct vms_rec_hdr *h = &j->h;
	uint64_t sum = h->payload_sum;
	struct vms_digest *dg;
	int err;

	if (j->err || r->headers_only)
		return 0;
	if (h->flags & VMS_RFLAG_ENCRYPTED) {
		struct vms_stage_io io = { 0 };
		uint8_t nonce[VMS_NONCE_LEN];

		err = worker_key(k, h->lane, h->epoch);
		if (err)
			return vms_rd_jfail(j, err, h->seq, "cannot derive the record key");
		vms_nonce(nonce, h->lane, h->epoch, h->seq);
		io.src = j->wire;
		io.src_len = h->wire_len;
		io.dst = j->wire; /* in place */
		io.dst_cap = h->wire_len;
		io.aad = j->hdr;
		io.aad_len = VMS_HDR_LEN;
		io.nonce = nonce;
		err = r->cipher->invert(k->key.ctx, &io);
		if (err)
			return vms_rd_jfail(j, err == VMS_EAUTH ? VMS_EAUTH : VMS_EIO, h->seq,
				     err == VMS_EAUTH ? "authentication failed (tampered record or wrong key)"
						      : "decryption failed");
		sum = vms_get_u64(j->wire + j->body_len);
	}
	/* Direct mode (no cipher, no codec): this runs on the thread that just
	 * read the record, in stream order, so the payload is checked and fed
	 * to the device digest (kept on the input side, idevs) in one pass while
	 * it is still in that core's cache. */
	dg = r->direct && h->device < r->nidev ? r->idevs[h->device].dg : NULL;
	switch (h->type) {
	case VMS_REC_DATA:
		if (h->codec) {
			int ci = codec_index(&r->pre, h->codec);
			struct vms_stage_io io = { 0 };

			io.src = j->wire;
			io.src_len = j->body_len;
			io.dst = j->raw;
			io.dst_cap = r->pre.chunk_cap;
			io.raw_len = h->raw_len;
			err = r->codecs[ci]->invert(k->codec_ctx[ci], &io);
			if (err || io.dst_len != h->raw_len)
				return vms_rd_jfail(j, VMS_EDECOMPRESS, h->seq,
					     "compressed payload is corrupt or does not decode to raw_len bytes");
			j->data = j->raw;
		} else {
			j->data = j->wire;
		}
		if ((dg ? vms_xxh3_and_digest(dg, j->data, h->raw_len)
			: vms_xxh3(j->data, h->raw_len)) != sum)
			return vms_rd_jfail(j, VMS_EPAYLOADSUM, h->seq, "DATA payload checksum mismatch");
		break;
	case VMS_REC_ZERO:
		if (sum != 0)
			return vms_rd_jfail(j, VMS_EPAYLOADSUM, h->seq, "ZERO record with a non-zero checksum");
		if (dg)
			vms_digest_zeros(dg, h->raw_len);
		break;
	default:
		if (vms_xxh3(j->wire, h->raw_len) != sum)
			return vms_rd_jfail(j, VMS_EPAYLOADSUM, h->seq, "control payload checksum mismatch");
		j->data = j->wire;
		if (dg && h->type == VMS_REC_DEVICE_END) {
			j->end_digest = vms_digest_final(dg);
			free(dg);
			r->idevs[h->device].dg = NULL;
		}
		break;
	}
	return 0;
}
