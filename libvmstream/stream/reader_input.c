/* SPDX-License-Identifier: MIT */
/* Reader input: records off the lanes (merged by seq), framing and every
 * rule that needs only the header, before any payload is read. */
#include <poll.h>
#include <sys/socket.h>
#include "base/clock.h"
#include "base/hash.h"
#include "format/cursor.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/error.h"
#include "stream/reader_internal.h"

static int input_device_rules(struct vms_reader *r, struct rjob *j)
{
	const struct vms_rec_hdr *h = &j->h;

	switch (h->type) {
	case VMS_REC_DEVICE_BEGIN:
		if (h->device != r->nidev)
			return vms_rd_jfail(j, VMS_EDEVICE, h->seq, "DEVICE_BEGIN index is not the next device");
		_Static_assert(VMS_DEVICES_MAX == 65536u, "the message names the limit");
		if (r->nidev >= VMS_DEVICES_MAX)
			return vms_rd_jfail(j, VMS_EDEVICE, h->seq, "too many devices (limit 65536)");
		if (r->nidev == r->capidev) {
			uint32_t ncap = r->capidev ? r->capidev * 2 : 8;
			struct idev *nd = realloc(r->idevs, ncap * sizeof(*nd));

			if (!nd)
				return vms_rd_jfail(j, VMS_ENOMEM, h->seq, "out of memory for the device table");
			r->idevs = nd;
			r->capidev = ncap;
		}
		memset(&r->idevs[r->nidev], 0, sizeof(r->idevs[0]));
		if (r->direct) {
			struct vms_digest *dg;

			if (posix_memalign((void **)&dg, 64, sizeof(*dg)))
				return vms_rd_jfail(j, VMS_ENOMEM, h->seq, "out of memory for a device digest");
			vms_digest_init(dg);
			r->idevs[r->nidev].dg = dg;
		}
		r->nidev++;
		break;
	case VMS_REC_DATA:
	case VMS_REC_ZERO:
	case VMS_REC_DEVICE_END:
		if (h->device >= r->nidev)
			return vms_rd_jfail(j, VMS_EDEVICE, h->seq, "record for a device that was not begun");
		if (r->idevs[h->device].ended)
			return vms_rd_jfail(j, VMS_EDEVICE, h->seq, "record for a device that already ended");
		break;
	default:
		if (h->device != VMS_DEVICE_NONE)
			return vms_rd_jfail(j, VMS_EDEVICE, h->seq, "stream-level record names a device");
		break;
	}
	if (h->type == VMS_REC_DATA || h->type == VMS_REC_ZERO) {
		struct idev *d = &r->idevs[h->device];

		if (h->offset != d->bytes)
			return vms_rd_jfail(j, VMS_EOFFSET, h->seq, "offset does not continue the device");
		if (d->bytes + h->raw_len < d->bytes)
			return vms_rd_jfail(j, VMS_EOFFSET, h->seq, "device offset overflows");
		d->bytes += h->raw_len;
	} else if (h->offset != 0) {
		return vms_rd_jfail(j, VMS_EOFFSET, h->seq, "control record with a non-zero offset");
	}
	if (h->type == VMS_REC_DEVICE_END)
		r->idevs[h->device].ended = true;
	return 0;
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
		return vms_rd_jfail(j, vms_rd_io_code(got), r->in_seq, vms_rd_io_why(got, b, sizeof(b)));
	}
	if ((size_t)got < VMS_HDR_LEN) {
		j->pos = li->pos;
		return vms_rd_jfail(j, VMS_ETRUNCATED, r->in_seq,
			     got == 0 ? "stream ends without EOS" : "stream ends inside a record header");
	}
	err = vms_hdr_decode(&li->h, li->hdr, &why);
	if (err) {
		j->pos = li->pos;
		return vms_rd_jfail(j, err, r->in_seq, why);
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
				return vms_rd_jfail(j, VMS_ESEQ, r->in_seq, "sequence number repeats or goes back");
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
			return any ? vms_rd_jfail(j, VMS_ESEQ, r->in_seq, "sequence number skips ahead")
				   : vms_rd_jfail(j, VMS_ETRUNCATED, r->in_seq, "stream ends without EOS");
		}
		pf[np].fd = r->cancel_fd;
		pf[np].events = POLLIN;
		pf[np].revents = 0;
		do
			rc = poll(pf, np + 1, r->t.idle_timeout_ms);
		while (rc < 0 && errno == EINTR);
		if (pf[np].revents & POLLIN) {
			j->pos = r->lanes[0].in.consumed;
			return vms_rd_jfail(j, VMS_ECANCELED, r->in_seq, "reader closed");
		}
		if (rc == 0) {
			j->pos = r->lanes[0].in.consumed;
			return vms_rd_jfail(j, VMS_ETIMEOUT, r->in_seq,
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
				return vms_rd_jfail(j, vms_rd_io_code(got), r->in_seq, vms_rd_io_why(got, b, sizeof(b)));
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

			vms_rd_jfail(j, vms_rd_io_code(at_eof), j->h.seq + 1, vms_rd_io_why(at_eof, b, sizeof(b)));
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
int vms_rd_input_record(struct vms_reader *r, struct rjob *j)
{
	struct vms_rec_hdr *h = &j->h;
	struct lane_in *li;
	unsigned lane = 0;
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
		return vms_rd_jfail(j, VMS_EFLAGS, r->in_seq, "record ENCRYPTED flag differs from the stream's"), 1;
	if (h->seq != r->in_seq)
		return vms_rd_jfail(j, VMS_ESEQ, r->in_seq,
			     h->seq < r->in_seq ? "sequence number repeats or goes back"
						: "sequence number skips ahead"), 1;
	if (h->lane >= r->pre.lanes)
		return vms_rd_jfail(j, VMS_EEPOCH, h->seq, "lane index beyond the stream's lane count"), 1;
	if (r->t.nlanes > 1 && h->lane != lane)
		return vms_rd_jfail(j, VMS_EEPOCH, h->seq, "record arrived on another lane than its header names"), 1;
	/* FORMAT.md record rule 8: the first record has epoch 0, each next one
	 * the same epoch or the next */
	if (r->pre.cipher == VMS_CIPHER_NONE ? h->epoch != 0
					     : (h->epoch < r->in_epoch ||
						h->epoch > r->in_epoch + (h->seq ? 1 : 0)))
		return vms_rd_jfail(j, VMS_EEPOCH, h->seq, "key epoch out of order"), 1;
	if (!vms_rec_is_known(h->type) && !(h->type & VMS_REC_IGNORABLE))
		return vms_rd_jfail(j, VMS_ERECTYPE, h->seq, "unknown critical record type"), 1;
	err = vms_hdr_check(h, &r->pre, &j->body_len, &why);
	if (err)
		return vms_rd_jfail(j, err, h->seq, why), 1;
	if (input_device_rules(r, j))
		return 1;
	/* Only now, with every length checked against the caps, read. */
	got = vms_in_read(&li->in, j->wire, h->wire_len);
	if (got < 0) {
		char b[96];

		return vms_rd_jfail(j, vms_rd_io_code(got), h->seq, vms_rd_io_why(got, b, sizeof(b))), 1;
	}
	if ((size_t)got < h->wire_len)
		return vms_rd_jfail(j, VMS_ETRUNCATED, h->seq, "stream ends inside a record payload"), 1;
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

void *vms_rd_input_main(void *p)
{
	struct vms_reader *r = p;

	for (;;) {
		struct rjob *j = vms_ring_acquire(&r->ring);
		int end;

		if (!j)
			break;
		end = vms_rd_input_record(r, j);
		vms_ring_submit(&r->ring, j);
		if (end)
			break;
	}
	vms_ring_close(&r->ring);
	return NULL;
}
