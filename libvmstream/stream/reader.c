/* SPDX-License-Identifier: MIT */
/*
 * Stream reader. An input thread reads records and applies every rule that
 * needs only the header (FORMAT.md section 4) before it reads a payload;
 * worker threads authenticate, decompress and checksum payloads in parallel;
 * the caller's thread takes records back in sequence order, applies the rules
 * that need the payload (device digests, EOS totals) and only then hands out
 * the bytes. Errors travel in order too: every record before a bad one is
 * delivered, nothing after it. With threads == 0 all of it runs inline.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include "base/clock.h"
#include "base/alloc.h"
#include "base/error.h"
#include "io/fdio.h"
#include "stream/internal.h"
#include "crypto/keys.h"
#include "stream/ack.h"
#include "format/cursor.h"
#include "format/format.h"
#include "base/hash.h"
#include "io/engine.h"
#include "pipeline/ring.h"
#include "stage/stage.h"

#define READER_INBUF (64u << 10)
#define JOB_MSG 240

struct rdev {            /* delivery side: payload-level state */
	uint64_t bytes;
	struct vms_digest *dg;
	uint64_t digest;     /* verified, once ended */
	bool ended;
};

struct idev {            /* input side: header-level state */
	uint64_t bytes;
	struct vms_digest *dg; /* direct mode: the device digest */
	bool ended;
};

struct rjob {
	struct vms_rec_hdr h;
	uint8_t hdr[VMS_HDR_LEN];
	uint16_t lane;       /* connection it arrived on */
	uint64_t pos;        /* byte offset in that lane's stream */
	uint32_t body_len;
	uint8_t *wire;       /* chunk_cap + VMS_AEAD_OVERHEAD */
	uint8_t *raw;        /* chunk_cap, when the stream declares codecs */
	const uint8_t *data; /* verified decoded bytes */
	uint64_t end_digest; /* direct mode, DEVICE_END: digest of the device's bytes */
	bool trailing;       /* EOS: bytes follow it (reported after EOS verified) */
	uint64_t trail_pos;
	int err;
	char msg[JOB_MSG];
};

struct rworker {
	struct vms_reader *r;
	void *codec_ctx[VMS_MAX_CODECS];
	struct vms_lane_key key;
};

enum rstate { R_OPEN, R_EOS_SEEN, R_DONE };

struct lane_in {
	struct vms_in in;
	bool pending;        /* a verified header waits in hdr */
	uint8_t hdr[VMS_HDR_LEN];
	struct vms_rec_hdr h;
	uint64_t pos;
};

struct vms_reader {
	struct vms_transport t;
	struct vms_engine *eng;
	int cancel_fd;       /* eventfd: wakes the input thread for good */
	struct lane_in lanes[VMS_LANES_MAX];
	struct vms_in *in;   /* lanes[0].in: the preamble's lane */
	struct vms_reader_opts o;
	struct vms_preamble pre;
	struct vms_keysched ks[VMS_LANES_MAX];
	bool ack_sent;
	char codec_list[VMS_MAX_CODECS * (VMS_CODEC_NAME_MAX + 6)];
	int32_t *dev_result;   /* per-device load result for the ACK (or NULL) */
	uint32_t dev_result_n;
	const struct vms_stage *cipher;
	const struct vms_stage *codecs[VMS_MAX_CODECS]; /* by preamble index */
	bool headers_only;
	bool direct;         /* no cipher, no codec: verify on the input thread */

	/* input side */
	uint64_t in_seq;
	uint16_t in_epoch;
	struct idev *idevs;
	uint32_t nidev, capidev;
	bool in_stopped;

	/* pipeline */
	struct vms_ring ring;
	struct rjob *jobs;
	void **jobptrs;
	struct rworker *workers;
	void **wctx;
	unsigned nthreads, nslots;
	uint8_t *arena;
	size_t arena_len;
	pthread_t input;
	bool input_started;
	bool holding;        /* caller holds the oldest job (its event data) */

	/* delivery side */
	struct rdev *devs;
	uint32_t ndev, capdev;
	uint64_t raw_total;
	enum rstate state;
	bool aborted;
	int32_t abort_code;
	uint64_t abort_seq, abort_pos; /* the ABORT record: reported with its location */
	char name[VMS_NAME_MAX + 1];
	char abort_text[VMS_ABORT_TEXT_MAX + 1];

	pthread_mutex_t stats_mu;
	struct vms_stats st;
	uint64_t t0_ns;
	int err;             /* sticky (delivery side) */
	char msg[VMS_MSG_MAX];
};

/* ---- errors ------------------------------------------------------------ */

/* Fail the reader for good (caller's thread), naming record and offset. */
static int rfail(struct vms_reader *r, int code, uint64_t seq, uint64_t pos, const char *why)
{
	vms_fail(code, "record %llu at byte %llu: %s", (unsigned long long)seq,
		 (unsigned long long)pos, why);
	r->err = code;
	snprintf(r->msg, sizeof(r->msg), "%s", vms_last_error());
	vms_log(r->o.log, r->o.log_user, r->o.log_level, VMS_LOG_ERROR, "%s", r->msg);
	return code;
}

/* Record an error inside a job (input or worker thread); delivered in order. */
static int jfail(struct rjob *j, int code, uint64_t seq, const char *why)
{
	j->err = code;
	snprintf(j->msg, sizeof(j->msg), "record %llu at byte %llu: %s", (unsigned long long)seq,
		 (unsigned long long)j->pos, why);
	return code;
}

/* ---- input side: framing and header rules ----------------------------- */

static int input_device_rules(struct vms_reader *r, struct rjob *j)
{
	const struct vms_rec_hdr *h = &j->h;

	switch (h->type) {
	case VMS_REC_DEVICE_BEGIN:
		if (h->device != r->nidev)
			return jfail(j, VMS_EDEVICE, h->seq, "DEVICE_BEGIN index is not the next device");
		_Static_assert(VMS_DEVICES_MAX == 65536u, "the message names the limit");
		if (r->nidev >= VMS_DEVICES_MAX)
			return jfail(j, VMS_EDEVICE, h->seq, "too many devices (limit 65536)");
		if (r->nidev == r->capidev) {
			uint32_t ncap = r->capidev ? r->capidev * 2 : 8;
			struct idev *nd = realloc(r->idevs, ncap * sizeof(*nd));

			if (!nd)
				return jfail(j, VMS_ENOMEM, h->seq, "out of memory for the device table");
			r->idevs = nd;
			r->capidev = ncap;
		}
		memset(&r->idevs[r->nidev], 0, sizeof(r->idevs[0]));
		if (r->direct) {
			struct vms_digest *dg;

			if (posix_memalign((void **)&dg, 64, sizeof(*dg)))
				return jfail(j, VMS_ENOMEM, h->seq, "out of memory for a device digest");
			vms_digest_init(dg);
			r->idevs[r->nidev].dg = dg;
		}
		r->nidev++;
		break;
	case VMS_REC_DATA:
	case VMS_REC_ZERO:
	case VMS_REC_DEVICE_END:
		if (h->device >= r->nidev)
			return jfail(j, VMS_EDEVICE, h->seq, "record for a device that was not begun");
		if (r->idevs[h->device].ended)
			return jfail(j, VMS_EDEVICE, h->seq, "record for a device that already ended");
		break;
	default:
		if (h->device != VMS_DEVICE_NONE)
			return jfail(j, VMS_EDEVICE, h->seq, "stream-level record names a device");
		break;
	}
	if (h->type == VMS_REC_DATA || h->type == VMS_REC_ZERO) {
		struct idev *d = &r->idevs[h->device];

		if (h->offset != d->bytes)
			return jfail(j, VMS_EOFFSET, h->seq, "offset does not continue the device");
		if (d->bytes + h->raw_len < d->bytes)
			return jfail(j, VMS_EOFFSET, h->seq, "device offset overflows");
		d->bytes += h->raw_len;
	} else if (h->offset != 0) {
		return jfail(j, VMS_EOFFSET, h->seq, "control record with a non-zero offset");
	}
	if (h->type == VMS_REC_DEVICE_END)
		r->idevs[h->device].ended = true;
	return 0;
}

static int io_code(long res)
{
	return res == -ETIMEDOUT ? VMS_ETIMEOUT
	       : res == -ECANCELED ? VMS_ECANCELED
	       : (res == -ECONNRESET || res == -EPIPE || res == -ENOTCONN) ? VMS_ENET : VMS_EIO;
}

static const char *io_why(long res, char *buf, size_t cap)
{
	if (res == -ETIMEDOUT)
		return "no data from the sender within the idle timeout";
	snprintf(buf, cap, "read failed: %s", vms_sys_err((int)-res));
	return buf;
}

/* Decode a header read from lane l into the lane's pending slot. */
static int lane_take_header(struct vms_reader *r, struct rjob *j, unsigned l)
{
	struct lane_in *li = &r->lanes[l];
	const char *why;
	long got;
	int err;

	li->pos = li->in.consumed;
	got = vms_in_read(&li->in, li->hdr, VMS_HDR_LEN);
	if (got < 0) {
		char b[96];

		j->pos = li->pos;
		return jfail(j, io_code(got), r->in_seq, io_why(got, b, sizeof(b)));
	}
	if ((size_t)got < VMS_HDR_LEN) {
		j->pos = li->pos;
		return jfail(j, VMS_ETRUNCATED, r->in_seq,
			     got == 0 ? "stream ends without EOS" : "stream ends inside a record header");
	}
	err = vms_hdr_decode(&li->h, li->hdr, &why);
	if (err) {
		j->pos = li->pos;
		return jfail(j, err, r->in_seq, why);
	}
	li->pending = true;
	return 0;
}

/* Find the lane whose next record is in_seq (FORMAT.md section 7: each lane
 * carries increasing seq; the receiver merges). Lanes are read as data
 * arrives (poll), never by blocking on one lane while another holds the
 * record needed, so the sender's per-lane flow control cannot deadlock us. */
static int pick_lane(struct vms_reader *r, struct rjob *j, unsigned *lane)
{
	unsigned n = r->t.nlanes;

	if (n == 1) {
		if (!r->lanes[0].pending && lane_take_header(r, j, 0))
			return -1;
		*lane = 0;
		return 0;
	}
	for (;;) {
		struct pollfd pf[VMS_LANES_MAX + 1];
		unsigned np = 0, live = 0;
		int rc;

		for (unsigned l = 0; l < n; l++) {
			struct lane_in *li = &r->lanes[l];

			if (!li->pending && vms_in_buffered(&li->in) >= VMS_HDR_LEN &&
			    lane_take_header(r, j, l))
				return -1;
			if (li->pending && li->h.seq == r->in_seq) {
				*lane = l;
				return 0;
			}
			if (li->pending && li->h.seq < r->in_seq) {
				j->pos = li->pos;
				return jfail(j, VMS_ESEQ, r->in_seq, "sequence number repeats or goes back");
			}
		}
		for (unsigned l = 0; l < n; l++) {
			struct lane_in *li = &r->lanes[l];

			if (li->pending || li->in.eof)
				continue;
			live++;
			pf[np].fd = li->in.fd;
			pf[np].events = POLLIN;
			pf[np].revents = 0;
			np++;
		}
		if (live == 0) {
			/* every lane has ended or holds a later record */
			bool any = false;

			for (unsigned l = 0; l < n; l++)
				any |= r->lanes[l].pending;
			j->pos = r->lanes[0].in.consumed;
			return any ? jfail(j, VMS_ESEQ, r->in_seq, "sequence number skips ahead")
				   : jfail(j, VMS_ETRUNCATED, r->in_seq, "stream ends without EOS");
		}
		pf[np].fd = r->cancel_fd;
		pf[np].events = POLLIN;
		pf[np].revents = 0;
		do
			rc = poll(pf, np + 1, r->t.idle_timeout_ms);
		while (rc < 0 && errno == EINTR);
		if (pf[np].revents & POLLIN) {
			j->pos = r->lanes[0].in.consumed;
			return jfail(j, VMS_ECANCELED, r->in_seq, "reader closed");
		}
		if (rc == 0) {
			j->pos = r->lanes[0].in.consumed;
			return jfail(j, VMS_ETIMEOUT, r->in_seq,
				     "no data from the sender within the idle timeout");
		}
		np = 0;
		for (unsigned l = 0; l < n; l++) {
			struct lane_in *li = &r->lanes[l];
			long got;

			if (li->pending || li->in.eof)
				continue;
			if (!(pf[np++].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			got = vms_in_fill_some(&li->in);
			if (got < 0 && got != -EAGAIN) {
				char b[96];

				j->pos = li->in.consumed;
				return jfail(j, io_code(got), r->in_seq, io_why(got, b, sizeof(b)));
			}
		}
	}
}

/* After EOS: every lane must end with no further byte. */
static void check_trailing(struct vms_reader *r, struct rjob *j)
{
	for (unsigned l = 0; l < r->t.nlanes; l++) {
		struct lane_in *li = &r->lanes[l];
		int at_eof = li->pending ? 0 : vms_in_at_eof(&li->in);

		if (at_eof < 0) {
			char b[96];

			jfail(j, io_code(at_eof), j->h.seq + 1, io_why(at_eof, b, sizeof(b)));
			return;
		}
		if (!at_eof) {
			/* FORMAT.md record rule 22: reported after the EOS itself verified,
			 * and the EOS is then not delivered */
			j->trailing = true;
			j->trail_pos = li->pending ? li->pos : li->in.consumed;
			return;
		}
	}
}

/* Read one record into j. Returns 1 if the input has ended (EOS, ABORT or an
 * error recorded in j), 0 to go on. */
static int input_record(struct vms_reader *r, struct rjob *j)
{
	struct vms_rec_hdr *h = &j->h;
	struct lane_in *li;
	unsigned lane;
	const char *why;
	long got;
	int err;

	j->err = 0;
	j->data = NULL;
	j->trailing = false;
	if (pick_lane(r, j, &lane))
		return 1;
	li = &r->lanes[lane];
	li->pending = false;
	memcpy(j->hdr, li->hdr, VMS_HDR_LEN);
	*h = li->h;
	j->lane = (uint16_t)lane;
	j->pos = li->pos;
	if ((h->flags & VMS_RFLAG_ENCRYPTED) != (r->pre.flags & VMS_PFLAG_ENCRYPTED))
		return jfail(j, VMS_EFLAGS, r->in_seq, "record ENCRYPTED flag differs from the stream's"), 1;
	if (h->seq != r->in_seq)
		return jfail(j, VMS_ESEQ, r->in_seq,
			     h->seq < r->in_seq ? "sequence number repeats or goes back"
						: "sequence number skips ahead"), 1;
	if (h->lane >= r->pre.lanes)
		return jfail(j, VMS_EEPOCH, h->seq, "lane index beyond the stream's lane count"), 1;
	if (r->t.nlanes > 1 && h->lane != lane)
		return jfail(j, VMS_EEPOCH, h->seq, "record arrived on another lane than its header names"), 1;
	/* FORMAT.md record rule 8: the first record has epoch 0, each next one
	 * the same epoch or the next */
	if (r->pre.cipher == VMS_CIPHER_NONE ? h->epoch != 0
					     : (h->epoch < r->in_epoch ||
						h->epoch > r->in_epoch + (h->seq ? 1 : 0)))
		return jfail(j, VMS_EEPOCH, h->seq, "key epoch out of order"), 1;
	if (!vms_rec_is_known(h->type) && !(h->type & VMS_REC_IGNORABLE))
		return jfail(j, VMS_ERECTYPE, h->seq, "unknown critical record type"), 1;
	err = vms_hdr_check(h, &r->pre, &j->body_len, &why);
	if (err)
		return jfail(j, err, h->seq, why), 1;
	if (input_device_rules(r, j))
		return 1;
	/* Only now, with every length checked against the caps, read. */
	got = vms_in_read(&li->in, j->wire, h->wire_len);
	if (got < 0) {
		char b[96];

		return jfail(j, io_code(got), h->seq, io_why(got, b, sizeof(b))), 1;
	}
	if ((size_t)got < h->wire_len)
		return jfail(j, VMS_ETRUNCATED, h->seq, "stream ends inside a record payload"), 1;
	r->in_seq++;
	r->in_epoch = h->epoch;
	pthread_mutex_lock(&r->stats_mu);
	r->st.wire_bytes += VMS_HDR_LEN + h->wire_len;
	pthread_mutex_unlock(&r->stats_mu);
	if (h->type == VMS_REC_EOS) {
		check_trailing(r, j);
		return 1;
	}
	return h->type == VMS_REC_ABORT;
}

static void *input_main(void *p)
{
	struct vms_reader *r = p;

	for (;;) {
		struct rjob *j = vms_ring_acquire(&r->ring);
		int end;

		if (!j)
			break;
		end = input_record(r, j);
		vms_ring_submit(&r->ring, j);
		if (end)
			break;
	}
	vms_ring_close(&r->ring);
	return NULL;
}

/* ---- workers: authenticate, decode, checksum --------------------------- */

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

static int reader_work(void *wctx, void *jp)
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
			return jfail(j, err, h->seq, "cannot derive the record key");
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
			return jfail(j, err == VMS_EAUTH ? VMS_EAUTH : VMS_EIO, h->seq,
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
				return jfail(j, VMS_EDECOMPRESS, h->seq,
					     "compressed payload is corrupt or does not decode to raw_len bytes");
			j->data = j->raw;
		} else {
			j->data = j->wire;
		}
		if ((dg ? vms_xxh3_and_digest(dg, j->data, h->raw_len)
			: vms_xxh3(j->data, h->raw_len)) != sum)
			return jfail(j, VMS_EPAYLOADSUM, h->seq, "DATA payload checksum mismatch");
		break;
	case VMS_REC_ZERO:
		if (sum != 0)
			return jfail(j, VMS_EPAYLOADSUM, h->seq, "ZERO record with a non-zero checksum");
		if (dg)
			vms_digest_zeros(dg, h->raw_len);
		break;
	default:
		if (vms_xxh3(j->wire, h->raw_len) != sum)
			return jfail(j, VMS_EPAYLOADSUM, h->seq, "control payload checksum mismatch");
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

/* ---- delivery: payload-level rules, in order --------------------------- */

static int add_device(struct vms_reader *r, const struct rjob *j)
{
	struct rdev *d;

	if (r->ndev == r->capdev) {
		uint32_t ncap = r->capdev ? r->capdev * 2 : 8;
		struct rdev *nd = realloc(r->devs, ncap * sizeof(*nd));

		if (!nd)
			return rfail(r, VMS_ENOMEM, j->h.seq, j->pos, "out of memory for the device table");
		r->devs = nd;
		r->capdev = ncap;
	}
	d = &r->devs[r->ndev];
	memset(d, 0, sizeof(*d));
	if (!r->headers_only && !r->direct) {
		if (posix_memalign((void **)&d->dg, 64, sizeof(*d->dg)))
			return rfail(r, VMS_ENOMEM, j->h.seq, j->pos, "out of memory for a device digest");
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
			return rfail(r, err, h->seq, j->pos, why);
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
			return rfail(r, err, h->seq, j->pos, why);
		ev->u.phase.phase = (uint32_t)vms_get_u64(body);
		ev->u.phase.round = (uint32_t)(vms_get_u64(body) >> 32);
		/* FORMAT.md 3.1, record rule 19: phases 1..3 are all 1.x has */
		if (ev->u.phase.phase < VMS_PHASE_PRECOPY || ev->u.phase.phase > VMS_PHASE_STOPCOPY)
			return rfail(r, VMS_EPHASE, h->seq, j->pos, "PHASE with an undefined phase value");
		return 0;
	case VMS_REC_DEVICE_END: {
		struct rdev *d = &r->devs[h->device];
		uint64_t total, digest;

		err = vms_fixed_decode(body, h->raw_len, 16, &why);
		if (err)
			return rfail(r, err, h->seq, j->pos, why);
		total = vms_get_u64(body);
		digest = vms_get_u64(body + 8);
		if (total != d->bytes)
			return rfail(r, VMS_EDIGEST, h->seq, j->pos,
				     "DEVICE_END total differs from the bytes received");
		if (digest != (r->direct ? j->end_digest : vms_digest_final(d->dg)))
			return rfail(r, VMS_EDIGEST, h->seq, j->pos,
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
			return rfail(r, err, h->seq, j->pos, why);
		for (uint32_t i = 0; i < r->ndev; i++)
			if (!r->devs[i].ended)
				return rfail(r, VMS_EEOS, h->seq, j->pos, "EOS while a device has not ended");
		if (records != h->seq || raw != r->raw_total || devices != r->ndev)
			return rfail(r, VMS_EEOS, h->seq, j->pos, "EOS totals differ from the stream");
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
			return rfail(r, err, h->seq, j->pos, why);
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

static int deliver(struct vms_reader *r, const struct rjob *j, struct vms_event *ev)
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
		err = rfail(r, VMS_ETRAILING, h->seq + 1, j->trail_pos, "bytes follow the EOS record");
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

/* ---- setup ------------------------------------------------------------ */

static int read_preamble(struct vms_reader *r, const uint8_t *key)
{
	uint8_t buf[VMS_PREAMBLE_MAX];
	const char *why;
	uint32_t plen;
	long got;
	int err;

	got = vms_in_read(r->in, buf, 16);
	if (got < 0)
		return vms_fail(io_code(got), "reading the preamble: %s", vms_sys_err((int)-got));
	err = vms_preamble_peek(buf, (size_t)got, &plen, &why);
	if (err)
		return vms_fail(err, "preamble at byte 0: %s", why);
	got = vms_in_read(r->in, buf + 16, plen - 16);
	if (got < 0)
		return vms_fail(io_code(got), "reading the preamble: %s", vms_sys_err((int)-got));
	err = vms_preamble_decode(&r->pre, buf, 16 + (size_t)got, r->o.max_chunk, &why);
	if (err)
		return vms_fail(err, "preamble at byte 0: %s", why);
	for (unsigned i = 0; i < r->pre.ncodecs; i++) {
		const struct vms_codec_decl *c = &r->pre.codecs[i];
		const struct vms_stage *st = vms_stage_find(c->name);

		if (!st || st->kind != VMS_STAGE_CODEC)
			return vms_fail(VMS_ECODEC, "preamble at byte 0: codec \"%s\" (id %u) is not available",
					c->name, c->id);
		if (st->id < 64 && st->id != c->id)
			return vms_fail(VMS_ECODEC, "preamble at byte 0: codec \"%s\" must have id %u, not %u",
					c->name, st->id, c->id);
		/* FORMAT.md 2.1: ids below 64 belong to codecs FORMAT.md defines */
		if (st->id >= 64 && c->id < 64)
			return vms_fail(VMS_ECODEC, "preamble at byte 0: private codec \"%s\" declared "
						    "with id %u, reserved for FORMAT.md codecs", c->name, c->id);
		r->codecs[i] = st;
		snprintf(r->codec_list + strlen(r->codec_list),
			 sizeof(r->codec_list) - strlen(r->codec_list), "%s%u:%s", i ? "," : "", c->id,
			 c->name);
	}
	r->st.wire_bytes = plen;
	if (r->pre.lanes != r->t.nlanes)
		return vms_fail(VMS_EPREAMBLE, "preamble at byte 0: stream has %u lanes, the session %u",
				r->pre.lanes, r->t.nlanes);
	/* FORMAT.md preamble rule 21: a caller who gives a key expects secrecy
	 * and authenticity; a plaintext stream (perhaps one whose encryption
	 * was stripped, checksums recomputed) must not read as verified. */
	if (r->pre.cipher == VMS_CIPHER_NONE) {
		if (key || (r->t.keyed && !r->t.allow_plaintext))
			return vms_fail(VMS_EKEY, "preamble at byte 0: stream is not encrypted but a key "
						  "was expected (refusing unauthenticated data)");
		return 0;
	}
	if (r->headers_only)
		return 0;
	if (r->pre.key_source != (r->t.session ? VMS_KEYSRC_SESSION : VMS_KEYSRC_FILE))
		return vms_fail(VMS_EKEY, "preamble at byte 0: stream keys come from a %s",
				r->pre.key_source == VMS_KEYSRC_SESSION ? "network session" : "key file");
	if (r->t.session ? !r->t.keyed : !key)
		return vms_fail(VMS_EKEY, "preamble at byte 0: stream is encrypted and no key was given");
	r->cipher = vms_stage_find_id(VMS_STAGE_CIPHER, r->pre.cipher);
	if (!r->cipher)
		return vms_fail(VMS_EUNSUPPORTED, "cipher %u not available", r->pre.cipher);
	for (unsigned l = 0; l < r->t.nlanes; l++) {
		err = vms_keysched_init(&r->ks[l], r->pre.salt, r->t.session ? r->t.ikm_c2s[l] : key,
					r->pre.stream_id, r->pre.sum, r->pre.cipher);
		if (err)
			return err;
	}
	vms_wipe(r->t.ikm_c2s, sizeof(r->t.ikm_c2s));
	return 0;
}

static int setup_pipeline(struct vms_reader *r)
{
	size_t wire_cap = vms_page_round((size_t)r->pre.chunk_cap + VMS_AEAD_OVERHEAD);
	size_t raw_cap = r->pre.ncodecs ? vms_page_round(r->pre.chunk_cap) : 0;
	size_t slot = wire_cap + raw_cap;
	char what[96];
	unsigned want;
	int err;

	r->nthreads = r->o.threads == VMS_THREADS_AUTO ? vms_online_cpus() : r->o.threads;
	if (r->headers_only)
		r->nthreads = 0;
	/* producer fills one, workers hold one each, the caller holds one. */
	want = r->nthreads ? 2 * r->nthreads + 3 : 1;
	snprintf(what, sizeof(what), "the stream's %u-byte chunks%s with %u threads",
		 r->pre.chunk_cap, r->pre.ncodecs ? " and a codec" : "", r->nthreads);
	err = vms_budget_slots(r->o.memory, slot, r->nthreads ? 3u : 1u, want, what, &r->nslots);
	if (err) {
		/* FORMAT.md preamble rule 22: the stream's chunk cap is more
		 * than this reader accepts, as for max_chunk (rule 11). */
		char m[VMS_MSG_MAX];

		snprintf(m, sizeof(m), "%s", vms_last_error());
		return vms_fail(VMS_ELENGTH, "preamble at byte 0: %s", m);
	}
	r->arena_len = slot * r->nslots;
	r->arena = vms_alloc_prefault(r->arena_len);
	r->jobs = calloc(r->nslots, sizeof(*r->jobs));
	r->jobptrs = calloc(r->nslots, sizeof(*r->jobptrs));
	r->workers = calloc(r->nthreads + 1, sizeof(*r->workers));
	r->wctx = calloc(r->nthreads + 1, sizeof(*r->wctx));
	if (!r->arena || !r->jobs || !r->jobptrs || !r->workers || !r->wctx)
		return vms_fail(VMS_ENOMEM, "out of memory allocating %zu bytes of buffers",
				r->arena_len);
	for (unsigned i = 0; i < r->nslots; i++) {
		r->jobs[i].wire = r->arena + i * slot;
		r->jobs[i].raw = raw_cap ? r->arena + i * slot + wire_cap : NULL;
		r->jobptrs[i] = &r->jobs[i];
	}
	for (unsigned t = 0; t <= r->nthreads; t++) {
		struct rworker *k = &r->workers[t];

		k->r = r;
		r->wctx[t] = k;
		for (unsigned c = 0; c < r->pre.ncodecs; c++) {
			struct vms_stage_conf conf = { .size = sizeof(conf) };

			conf.level = r->codecs[c]->level_default;
			conf.max_chunk = r->pre.chunk_cap;
			err = r->codecs[c]->ctx_new(&k->codec_ctx[c], &conf);
			if (err)
				return vms_fail(err, "codec %s: cannot create a context",
						r->codecs[c]->name);
		}
	}
	/* Without cipher and codec a record needs only its checksum: it is
	 * computed on the thread that read it (reader_work run inline), where
	 * the bytes are in cache; workers would add hand-offs and cold reads. */
	r->direct = !r->headers_only && r->pre.cipher == VMS_CIPHER_NONE && r->pre.ncodecs == 0;
	err = vms_ring_init(&r->ring, r->nslots, r->jobptrs, r->direct ? 0 : r->nthreads, r->wctx,
			    reader_work);
	if (err)
		return vms_fail(err, "out of memory for the work ring");
	err = vms_engine_new(&r->eng, (int)r->t.engine, 4, r->arena, r->arena_len);
	if (err)
		return err;
	err = vms_ring_start(&r->ring);
	if (err)
		return vms_fail(err, "cannot start worker threads");
	if (r->nthreads) {
		if (pthread_create(&r->input, NULL, input_main, r) != 0)
			return vms_fail(VMS_ENOMEM, "cannot start the input thread");
		r->input_started = true;
	}
	r->st.memory = r->arena_len;
	r->st.threads = r->nthreads;
	return 0;
}

int vms_reader_open_transport(struct vms_reader **out, struct vms_transport *t,
			      const struct vms_reader_opts *opts)
{
	struct vms_reader_opts def;
	struct vms_reader *r;
	int err;

	*out = NULL;
	err = vms_reader_opts_take(&def, opts);
	if (err) {
		vms_transport_release(t);
		return err;
	}
	vms_stage_freeze();
	r = calloc(1, sizeof(*r));
	if (!r) {
		vms_transport_release(t);
		return vms_fail(VMS_ENOMEM, "out of memory allocating the reader");
	}
	r->cancel_fd = -1;
	r->t = *t; /* the reader owns the transport from here on */
	vms_wipe(t, sizeof(*t));
	r->o = def;
	r->o.size = sizeof(r->o);
	r->o.key = NULL; /* used once below, never kept */
	r->headers_only = (def.flags & VMS_READER_F_HEADERS_ONLY) != 0;
	r->t0_ns = vms_now_ns();
	r->st.size = sizeof(r->st);
	r->in = &r->lanes[0].in;
	pthread_mutex_init(&r->stats_mu, NULL);
	r->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->cancel_fd < 0) {
		err = vms_fail(VMS_EIO, "eventfd: %s", vms_sys_err(errno));
		goto out_free;
	}
	for (unsigned l = 0; l < r->t.nlanes; l++) {
		if (vms_in_init(&r->lanes[l].in, r->t.fds[l], READER_INBUF)) {
			err = vms_fail(VMS_ENOMEM, "out of memory allocating the input buffer");
			goto out_free;
		}
		r->lanes[l].in.timeout_ms = r->t.idle_timeout_ms;
		r->lanes[l].in.cancel_fd = r->cancel_fd;
	}
	if (def.key && r->t.session) {
		err = vms_fail(VMS_EINVAL, "a network session derives its keys; do not pass a key");
		goto out_free;
	}
	err = read_preamble(r, def.key);
	if (err)
		goto out_free;
	err = setup_pipeline(r);
	if (err)
		goto out_free;
	*out = r;
	return 0;

out_free:
	{
		char msg[VMS_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", vms_last_error());
		vms_reader_free(r);
		vms_fail_msg(err, msg);
	}
	return err;
}

int vms_reader_open_fd(struct vms_reader **out, int fd, const struct vms_reader_opts *opts)
{
	struct vms_transport t;

	vms_transport_init_fd(&t, fd);
	return vms_reader_open_transport(out, &t, opts);
}

const char *vms_reader_engine(const struct vms_reader *r)
{
	return r->eng ? vms_engine_name(r->eng) : "none";
}

const char *vms_reader_peer(const struct vms_reader *r)
{
	return r->t.peer;
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
	i.creator = r->pre.creator;
	i.codecs = r->codec_list;
	i.has_salt = r->pre.has_salt;
	memcpy(info, &i, info->size < sizeof(i) ? info->size : sizeof(i));
	return 0;
}

/* Next finished record, in order (inline mode reads and verifies it now). */
static struct rjob *next_job(struct vms_reader *r)
{
	if (r->nthreads == 0 && !r->in_stopped) {
		struct rjob *j = vms_ring_acquire(&r->ring);

		if (!j)
			return NULL;
		if (input_record(r, j))
			r->in_stopped = true;
		vms_ring_submit(&r->ring, j);
	}
	return vms_ring_wait_done(&r->ring);
}

static void progress(struct vms_reader *r)
{
	struct vms_stats s;

	if (!r->o.progress)
		return;
	pthread_mutex_lock(&r->stats_mu);
	s = r->st;
	pthread_mutex_unlock(&r->stats_mu);
	s.seconds = (double)(vms_now_ns() - r->t0_ns) * 1e-9;
	r->o.progress(r->o.progress_user, &s);
}

int vms_reader_next(struct vms_reader *r, struct vms_event *ev)
{
	struct rjob *j;
	int err;

	if (!ev || ev->size < sizeof(*ev))
		return vms_fail(VMS_EINVAL, "event: size field %u below %zu (initialise it with VMS_EVENT_INIT)",
				ev ? ev->size : 0, sizeof(*ev));
	if (r->holding) {
		vms_ring_release(&r->ring);
		r->holding = false;
	}
	if (r->err)
		return vms_fail_msg(r->err, r->msg);
	if (r->state == R_DONE)
		return 0;
	if (r->state == R_EOS_SEEN) {
		r->state = R_DONE;
		return 0;
	}
	if (r->aborted) {
		/* located at the ABORT record, like every other refusal */
		int k = snprintf(r->msg, sizeof(r->msg), "record %llu at byte %llu: ",
				 (unsigned long long)r->abort_seq, (unsigned long long)r->abort_pos);
		size_t at = k > 0 ? (size_t)k : 0;

		r->err = VMS_EPEERABORT;
		if (r->headers_only)
			snprintf(r->msg + at, sizeof(r->msg) - at, "peer aborted the stream (reason "
								 "not read: headers-only mode)");
		else
			snprintf(r->msg + at, sizeof(r->msg) - at,
				 "peer aborted the stream: %.300s (peer error %s)", r->abort_text,
				 vms_errname(r->abort_code) ? vms_errname(r->abort_code) : "unknown");
		return vms_fail_msg(r->err, r->msg);
	}
	for (;;) {
		j = next_job(r);
		if (!j)
			return rfail(r, VMS_ECANCELED, r->in_seq, 0, "reader stopped");
		r->holding = true;
		err = deliver(r, j, ev);
		if (err)
			return err;
		if (vms_rec_is_known(ev->type))
			break;
		/* ignorable unknown record: verified, skipped */
		vms_ring_release(&r->ring);
		r->holding = false;
	}
	if (ev->type == VMS_REC_EOS)
		r->state = R_EOS_SEEN;
	else if (ev->type == VMS_REC_ABORT) {
		r->aborted = true;
		r->abort_seq = ev->seq;
		r->abort_pos = ev->stream_pos;
	}
	progress(r);
	return 1;
}

int vms_reader_stats(const struct vms_reader *r, struct vms_stats *st)
{
	struct vms_reader *mr = (struct vms_reader *)r;
	struct vms_stats s;

	pthread_mutex_lock(&mr->stats_mu);
	s = r->st;
	pthread_mutex_unlock(&mr->stats_mu);
	s.seconds = (double)(vms_now_ns() - r->t0_ns) * 1e-9;
	return vms_stats_copy_out(st, &s);
}

/* Before the pipeline exists (a refusal at open): a bounded blocking send. */
static int send_plain(int fd, const uint8_t *p, size_t n, int timeout_ms)
{
	while (n) {
		struct pollfd pf = { .fd = fd, .events = POLLOUT };
		ssize_t w;

		if (poll(&pf, 1, timeout_ms) == 0)
			return -ETIMEDOUT;
		w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Build, seal (or checksum) and send the acknowledgement on lane 0. */
static int send_ack(struct vms_reader *r, int status, const char *text)
{
	struct vms_ack_keys k = { r->t.keyed, &r->pre, r->t.ikm_s2c[0] };
	struct vms_ack a = { 0 };
	struct vms_ack_dev *devs = NULL;
	uint8_t *frame;
	size_t flen;
	int err;

	a.status = status;
	snprintf(a.text, sizeof(a.text), "%s", text ? text : "");
	if (status == 0) {
		a.records = r->st.records - 1; /* records before EOS */
		a.raw_bytes = r->raw_total;
		a.ndev = r->ndev;
		devs = calloc(r->ndev ? r->ndev : 1, sizeof(*devs));
		if (!devs)
			return vms_fail(VMS_ENOMEM, "out of memory for the acknowledgement");
		for (uint32_t i = 0; i < r->ndev; i++) {
			devs[i].bytes = r->devs[i].bytes;
			devs[i].digest = r->devs[i].digest;
			devs[i].result = i < r->dev_result_n ? r->dev_result[i] : 0;
		}
	}
	err = vms_ack_build(&k, &a, devs, &frame, &flen);
	free(devs);
	if (!err) {
		err = r->eng ? vms_engine_write_full(r->eng, r->t.fds[0], frame, flen,
						     r->t.idle_timeout_ms)
			     : send_plain(r->t.fds[0], frame, flen, r->t.idle_timeout_ms);
		if (err)
			err = vms_fail(io_code(err), "sending the acknowledgement: %s", vms_sys_err(-err));
		free(frame);
	}
	r->ack_sent = true;
	vms_wipe(r->t.ikm_s2c, sizeof(r->t.ikm_s2c));
	return err;
}

int vms_reader_set_device_result(struct vms_reader *r, uint32_t device, int32_t result)
{
	if (device >= r->ndev)
		return vms_fail(VMS_EINVAL, "device %u is not in the stream", device);
	if (!r->dev_result || r->dev_result_n < r->ndev) {
		int32_t *nr = realloc(r->dev_result, r->ndev * sizeof(*nr));

		if (!nr)
			return vms_fail(VMS_ENOMEM, "out of memory");
		memset(nr + r->dev_result_n, 0, (r->ndev - r->dev_result_n) * sizeof(*nr));
		r->dev_result = nr;
		r->dev_result_n = r->ndev;
	}
	r->dev_result[device] = result;
	return 0;
}

/* Stop reading for good: wake and join the input thread. */
static void stop_input(struct vms_reader *r)
{
	if (r->cancel_fd >= 0) {
		uint64_t one = 1;

		(void)!write(r->cancel_fd, &one, sizeof(one));
	}
	if (r->ring.state) {
		vms_ring_stop(&r->ring);
		if (r->input_started) {
			pthread_join(r->input, NULL);
			r->input_started = false;
		}
	}
}

/* After a refusal: read and drop what the sender still sends until it stops
 * (it does once it reads the refusal) or max_ms pass. Closing a socket with
 * unread data would reset the connection, and the sender would report the
 * reset instead of the reason. */
static void drain_lanes(struct vms_reader *r, int max_ms)
{
	uint64_t deadline = vms_now_ns() + (uint64_t)max_ms * 1000000u;
	bool open[VMS_LANES_MAX];
	unsigned live = r->t.nlanes;
	char junk[16384];

	for (unsigned l = 0; l < r->t.nlanes; l++) {
		open[l] = true;
		shutdown(r->t.fds[l], SHUT_WR);
	}
	while (live > 0 && vms_now_ns() < deadline) {
		struct pollfd pf[VMS_LANES_MAX];
		unsigned map[VMS_LANES_MAX], np = 0;

		for (unsigned l = 0; l < r->t.nlanes; l++) {
			if (!open[l])
				continue;
			pf[np].fd = r->t.fds[l];
			pf[np].events = POLLIN;
			pf[np].revents = 0;
			map[np++] = l;
		}
		if (poll(pf, np, (int)((deadline - vms_now_ns()) / 1000000u) + 1) <= 0)
			break;
		for (unsigned i = 0; i < np; i++) {
			ssize_t n;

			if (!pf[i].revents)
				continue;
			n = recv(pf[i].fd, junk, sizeof(junk), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				open[map[i]] = false;
				live--;
			}
		}
	}
}

static int refuse(struct vms_reader *r, int status, const char *text)
{
	int err;

	stop_input(r);
	err = send_ack(r, status, text);
	drain_lanes(r, r->t.idle_timeout_ms > 0 && r->t.idle_timeout_ms < 2000
			       ? r->t.idle_timeout_ms : 2000);
	return err;
}

int vms_reader_ack(struct vms_reader *r, int status, const char *text)
{
	if (!r->t.session)
		return 0;
	if (r->ack_sent)
		return vms_fail(VMS_ESTATE, "acknowledgement already sent");
	if (status > 0)
		return vms_fail(VMS_EINVAL, "status must be 0 or a negative vms error code");
	if (status == 0 && (r->state == R_OPEN || r->err))
		return vms_fail(VMS_ESTATE, "cannot acknowledge a stream that has not ended cleanly");
	return status ? refuse(r, status, text) : send_ack(r, status, text);
}

void vms_reader_free(struct vms_reader *r)
{
	if (!r)
		return;
	if (r->cancel_fd >= 0) {
		uint64_t one = 1;

		(void)!write(r->cancel_fd, &one, sizeof(one));
	}
	if (r->t.session && !r->ack_sent) {
		/* Tell the sender why, rather than letting it time out. */
		int code = r->err ? r->err : VMS_ECANCELED;

		if (r->t.idle_timeout_ms < 0 || r->t.idle_timeout_ms > 2000)
			r->t.idle_timeout_ms = 2000;
		refuse(r, code, r->err ? r->msg : "receiver gave up on the stream");
	}
	if (r->ring.state) {
		/* wake the input thread if it waits for a free slot or for
		 * input (cancel_fd), then join it before the ring goes away */
		vms_ring_stop(&r->ring);
		if (r->input_started)
			pthread_join(r->input, NULL);
		vms_ring_destroy(&r->ring);
	}
	if (r->workers) {
		for (unsigned t = 0; t <= r->nthreads; t++) {
			struct rworker *k = &r->workers[t];

			for (unsigned c = 0; c < r->pre.ncodecs; c++)
				if (k->codec_ctx[c])
					r->codecs[c]->ctx_free(k->codec_ctx[c]);
			if (r->cipher)
				vms_lane_key_free(&k->key, r->cipher);
		}
	}
	for (uint32_t i = 0; i < r->ndev; i++)
		free(r->devs[i].dg);
	free(r->devs);
	for (uint32_t i = 0; i < r->nidev; i++)
		free(r->idevs[i].dg);
	free(r->idevs);
	free(r->dev_result);
	vms_engine_free(r->eng); /* before the arena it may have registered */
	r->eng = NULL;
	vms_free_prefault(r->arena, r->arena_len);
	free(r->jobs);
	free(r->jobptrs);
	free(r->workers);
	free(r->wctx);
	for (unsigned l = 0; l < VMS_LANES_MAX; l++) {
		vms_keysched_wipe(&r->ks[l]);
		vms_in_free(&r->lanes[l].in);
	}
	vms_transport_release(&r->t);
	if (r->cancel_fd >= 0)
		close(r->cancel_fd);
	pthread_mutex_destroy(&r->stats_mu);
	free(r);
}

const char *vms_rec_type_name(uint32_t type)
{
	static const char *const names[] = { NULL, "DEVICE_BEGIN", "DATA", "ZERO", "PHASE",
					     "DEVICE_END", "EOS", "ABORT" };

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : NULL;
}
