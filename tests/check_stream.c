/* SPDX-License-Identifier: MIT */
/*
 * Writer -> reader round trips through a memfd (and one through a pipe with
 * the writer on another thread): sizes around the chunk size, several and
 * interleaved devices, phases, the acquire/commit API, API misuse with exact
 * codes, EOS/DEVICE_END totals against an independent XXH3, exact stats,
 * ABORT, error messages naming the record, and the headers-only reader.
 *
 * Data is pseudo-random (tu_fill) so that no chunk is all zeros: the writer
 * would elide such a chunk as a ZERO record (tested separately).
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "testutil.h"

static const uint8_t fixed_id[16] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4,
				      5, 6, 7, 8, 9, 10, 11, 12 };

/* ---- helpers ------------------------------------------------------------------ */

struct wr {
	int fd;
	struct vms_writer *w;
	uint8_t *out; /* stream bytes after wr_close */
	size_t n;
};

static void wr_open_opts(struct wr *t, const struct vms_writer_opts *o)
{
	memset(t, 0, sizeof(*t));
	t->fd = tu_memfd_new();
	ck_assert_int_eq(vms_writer_open_fd(&t->w, t->fd, o), 0);
	ck_assert_ptr_nonnull(t->w);
}

static void wr_open(struct wr *t, uint32_t chunk)
{
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;

	o.chunk_size = chunk;
	o.stream_id = fixed_id;
	o.creator = "";
	wr_open_opts(t, &o);
}

static uint32_t wr_dev(struct wr *t, const char *name)
{
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	uint32_t idx = UINT32_MAX;

	d.name = name;
	ck_assert_int_eq(vms_writer_begin_device(t->w, &d, &idx), 0);
	return idx;
}

/* Free the writer and collect what it wrote. */
static void wr_close(struct wr *t)
{
	vms_writer_free(t->w);
	t->w = NULL;
	t->out = tu_memfd_get(t->fd, &t->n);
	close(t->fd);
}

static void wr_free(struct wr *t)
{
	free(t->out);
	memset(t, 0, sizeof(*t));
}

static struct vms_stats wr_stats(struct wr *t)
{
	struct vms_stats st;

	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	ck_assert_int_eq(vms_writer_stats(t->w, &st), 0);
	return st;
}

static size_t count_type(const struct tu_run *r, uint32_t type)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nev; i++)
		n += r->ev[i].type == type;
	return n;
}

/* The last event must be a clean EOS with these totals. */
static void assert_eos(const struct tu_run *r, uint64_t records, uint64_t raw, uint32_t devices)
{
	const struct tu_ev *e;

	ck_assert_int_eq(r->err, 0);
	ck_assert_int_eq(r->again, 0);
	ck_assert_uint_gt(r->nev, 0);
	e = &r->ev[r->nev - 1];
	ck_assert_uint_eq(e->type, VMS_REC_EOS);
	ck_assert_uint_eq(e->seq, records);
	ck_assert_uint_eq(e->a, records);
	ck_assert_uint_eq(e->b, raw);
	ck_assert_uint_eq(e->c, devices);
	ck_assert_uint_eq(e->device, VMS_DEVICE_NONE);
}

static const struct tu_ev *find_end(const struct tu_run *r, uint32_t dev)
{
	for (size_t i = 0; i < r->nev; i++)
		if (r->ev[i].type == VMS_REC_DEVICE_END && r->ev[i].device == dev)
			return &r->ev[i];
	ck_abort_msg("no DEVICE_END for device %u", dev);
	return NULL;
}

/* Every event: seq = its index (no ignorable records here), stream_pos
 * strictly increasing and consistent with wire lengths. */
static void assert_framing(const struct tu_run *r, size_t preamble_len)
{
	uint64_t pos = preamble_len;

	for (size_t i = 0; i < r->nev; i++) {
		ck_assert_uint_eq(r->ev[i].seq, i);
		ck_assert_uint_eq(r->ev[i].stream_pos, pos);
		ck_assert_uint_eq(r->ev[i].lane, 0);
		ck_assert_uint_eq(r->ev[i].epoch, 0);
		ck_assert_uint_eq(r->ev[i].flags, 0);
		pos += 56 + r->ev[i].wire_len;
	}
}

/* ---- round trips over sizes --------------------------------------------------- */

struct size_case {
	uint32_t chunk;
	size_t size;
	size_t piece; /* write() size; 0 = all at once */
};

#define K4 4096u
#define M1 (1u << 20)
static const struct size_case size_cases[] = {
	{ K4, 0, 0 },         { K4, 1, 0 },          { K4, K4 - 1, 0 },
	{ K4, K4, 0 },        { K4, K4 + 1, 0 },     { K4, 40 * K4 + 123, 1000 },
	{ K4, 3 * K4, 1 },    { M1, 0, 0 },          { M1, 1, 0 },
	{ M1, M1 - 1, 0 },    { M1, M1, 65536 },     { M1, M1 + 1, 0 },
	{ M1, 5 * M1 + 17, 300000 },
};
#define N_SIZE_CASES (sizeof(size_cases) / sizeof(size_cases[0]))

START_TEST(roundtrip_sizes)
{
	const struct size_case *c = &size_cases[_i];
	size_t nchunks = (c->size + c->chunk - 1) / c->chunk;
	uint8_t *data = tu_xmalloc(c->size);
	struct vms_stats ws;
	struct tu_run r;
	struct wr t;
	uint32_t d;

	tu_fill(data, c->size, (uint64_t)_i + 1);
	wr_open(&t, c->chunk);
	d = wr_dev(&t, "dev");
	if (c->piece == 0) {
		ck_assert_int_eq(vms_writer_write(t.w, d, data, c->size), 0);
	} else {
		for (size_t off = 0; off < c->size; off += c->piece) {
			size_t k = c->size - off < c->piece ? c->size - off : c->piece;

			ck_assert_int_eq(vms_writer_write(t.w, d, data + off, k), 0);
		}
	}
	ck_assert_int_eq(vms_writer_end_device(t.w, d), 0);
	ck_assert_int_eq(vms_writer_finish(t.w), 0);
	ws = wr_stats(&t);
	wr_close(&t);

	/* preamble 56 + BEGIN (56 + 21) + DATA records + END (72) + EOS (80) */
	ck_assert_uint_eq(t.n, 56 + 77 + nchunks * 56 + c->size + 72 + 80);
	ck_assert_uint_eq(ws.wire_bytes, t.n);
	ck_assert_uint_eq(ws.records, nchunks + 3);
	ck_assert_uint_eq(ws.raw_bytes, c->size);
	ck_assert_uint_eq(ws.data_records, nchunks);
	ck_assert_uint_eq(ws.stored_records, nchunks);
	ck_assert_uint_eq(ws.zero_records, 0);
	ck_assert_uint_eq(ws.devices, 1);

	tu_run_buf(t.out, t.n, 0, &r);
	ck_assert_int_eq(r.open_err, 0);
	ck_assert_uint_eq(r.info.chunk_cap, c->chunk);
	ck_assert_uint_eq(r.info.preamble_len, 56);
	ck_assert_mem_eq(r.info.stream_id, fixed_id, 16);
	ck_assert_uint_eq(r.nev, nchunks + 3);
	assert_framing(&r, 56);
	ck_assert_uint_eq(r.ev[0].type, VMS_REC_DEVICE_BEGIN);
	ck_assert_str_eq(r.ev[0].text, "dev");
	for (size_t i = 0; i < nchunks; i++) {
		const struct tu_ev *e = &r.ev[1 + i];
		size_t want = i + 1 < nchunks ? c->chunk : c->size - i * c->chunk;

		ck_assert_uint_eq(e->type, VMS_REC_DATA);
		ck_assert_uint_eq(e->offset, i * c->chunk);
		ck_assert_uint_eq(e->raw_len, want);
		ck_assert_uint_eq(e->wire_len, want);
		ck_assert_uint_eq(e->data_len, want);
		ck_assert_uint_eq(e->data_sum, tu_xxh3(data + i * c->chunk, want));
	}
	ck_assert_uint_eq(r.dev[0].n, c->size);
	if (c->size)
		ck_assert_mem_eq(r.dev[0].p, data, c->size);
	ck_assert_uint_eq(find_end(&r, 0)->a, c->size);
	ck_assert_uint_eq(find_end(&r, 0)->b, tu_xxh3(data, c->size));
	assert_eos(&r, nchunks + 2, c->size, 1);
	ck_assert_uint_eq(r.st.wire_bytes, t.n);
	ck_assert_uint_eq(r.st.records, nchunks + 3);
	ck_assert_uint_eq(r.st.raw_bytes, c->size);
	ck_assert_uint_eq(r.st.data_records, nchunks);
	ck_assert_uint_eq(r.st.zero_records, 0);
	ck_assert_uint_eq(r.st.devices, 1);
	tu_run_free(&r);
	wr_free(&t);
	free(data);
}
END_TEST

/* ---- several devices, interleaving, phases -------------------------------------- */

START_TEST(several_devices)
{
	static const size_t sizes[] = { 0, 1, 4096, 10000, 3 };
	const size_t nd = sizeof(sizes) / sizeof(sizes[0]);
	uint8_t *data[5];
	struct tu_run r;
	struct wr t;
	uint64_t total = 0;
	size_t data_recs = 0;

	wr_open(&t, 4096);
	for (size_t i = 0; i < nd; i++) {
		char name[16];

		snprintf(name, sizeof(name), "dev%zu", i);
		ck_assert_uint_eq(wr_dev(&t, name), i);
		data[i] = tu_xmalloc(sizes[i]);
		tu_fill(data[i], sizes[i], 100 + i);
		total += sizes[i];
		data_recs += (sizes[i] + 4095) / 4096;
	}
	for (size_t i = 0; i < nd; i++) {
		ck_assert_int_eq(vms_writer_write(t.w, (uint32_t)i, data[i], sizes[i]), 0);
		ck_assert_int_eq(vms_writer_end_device(t.w, (uint32_t)i), 0);
	}
	ck_assert_int_eq(vms_writer_finish(t.w), 0);
	wr_close(&t);

	tu_run_buf(t.out, t.n, 0, &r);
	ck_assert_uint_eq(r.nev, 2 * nd + data_recs + 1);
	assert_framing(&r, 56);
	for (size_t i = 0; i < nd; i++) {
		ck_assert_uint_eq(r.ev[i].type, VMS_REC_DEVICE_BEGIN);
		ck_assert_uint_eq(r.ev[i].device, i);
		ck_assert_uint_eq(r.dev[i].n, sizes[i]);
		if (sizes[i])
			ck_assert_mem_eq(r.dev[i].p, data[i], sizes[i]);
		ck_assert_uint_eq(find_end(&r, (uint32_t)i)->a, sizes[i]);
		ck_assert_uint_eq(find_end(&r, (uint32_t)i)->b, tu_xxh3(data[i], sizes[i]));
		free(data[i]);
	}
	assert_eos(&r, r.nev - 1, total, (uint32_t)nd);
	ck_assert_uint_eq(r.st.devices, nd);
	tu_run_free(&r);
	wr_free(&t);
}
END_TEST

/* Two devices written alternately in uneven pieces. The writer keeps one
 * pending chunk: a write to the other device flushes it. The expected record
 * list comes from that model. */
START_TEST(interleaved_devices)
{
	enum { N = 60000 };
	uint8_t *src[2];
	size_t done[2] = { 0, 0 };
	struct { uint32_t dev; uint64_t off; uint32_t len; } want[512];
	size_t nwant = 0;
	/* the writer keeps one partial chunk per device (up to 4 devices) */
	uint64_t pend_off[2] = { 0, 0 };
	uint32_t pend_len[2] = { 0, 0 };
	uint64_t rng = 7;
	struct tu_run r;
	struct wr t;
	size_t k = 0;

	src[0] = tu_xmalloc(N);
	src[1] = tu_xmalloc(N);
	tu_fill(src[0], N, 11);
	tu_fill(src[1], N, 12);
	wr_open(&t, 4096);
	ck_assert_uint_eq(wr_dev(&t, "a"), 0);
	ck_assert_uint_eq(wr_dev(&t, "b"), 1);
	while (done[0] < N || done[1] < N) {
		uint32_t d;
		size_t piece;

		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		d = done[0] >= N ? 1 : done[1] >= N ? 0 : (uint32_t)(rng >> 40) & 1;
		piece = (size_t)(rng >> 33) % 9000 + 1;
		if (piece > N - done[d])
			piece = N - done[d];
		ck_assert_int_eq(vms_writer_write(t.w, d, src[d] + done[d], piece), 0);
		/* model: a device's record goes out when its chunk is full */
		for (size_t left = piece; left;) {
			uint32_t room = 4096 - pend_len[d];
			uint32_t take = left < room ? (uint32_t)left : room;

			pend_len[d] += take;
			done[d] += take;
			left -= take;
			if (pend_len[d] == 4096) {
				want[nwant].dev = d;
				want[nwant].off = pend_off[d];
				want[nwant++].len = pend_len[d];
				pend_off[d] += pend_len[d];
				pend_len[d] = 0;
			}
		}
		ck_assert_uint_lt(nwant, 500);
	}
	ck_assert_int_eq(vms_writer_end_device(t.w, 0), 0);
	ck_assert_int_eq(vms_writer_end_device(t.w, 1), 0);
	ck_assert_int_eq(vms_writer_finish(t.w), 0);
	wr_close(&t);
	/* end_device sends each device's partial chunk, in that order */
	for (uint32_t d = 0; d < 2; d++) {
		if (pend_len[d]) {
			want[nwant].dev = d;
			want[nwant].off = pend_off[d];
			want[nwant++].len = pend_len[d];
		}
	}

	tu_run_buf(t.out, t.n, 0, &r);
	assert_framing(&r, 56);
	for (size_t i = 0; i < r.nev; i++) {
		if (r.ev[i].type != VMS_REC_DATA)
			continue;
		ck_assert_uint_lt(k, nwant);
		ck_assert_uint_eq(r.ev[i].device, want[k].dev);
		ck_assert_uint_eq(r.ev[i].offset, want[k].off);
		ck_assert_uint_eq(r.ev[i].raw_len, want[k].len);
		ck_assert_uint_eq(r.ev[i].data_sum, tu_xxh3(src[want[k].dev] + want[k].off, want[k].len));
		k++;
	}
	ck_assert_uint_eq(k, nwant);
	for (int d = 0; d < 2; d++) {
		ck_assert_uint_eq(r.dev[d].n, N);
		ck_assert_mem_eq(r.dev[d].p, src[d], N);
		ck_assert_uint_eq(find_end(&r, (uint32_t)d)->b, tu_xxh3(src[d], N));
		free(src[d]);
	}
	assert_eos(&r, r.nev - 1, 2 * N, 2);
	tu_run_free(&r);
	wr_free(&t);
}
END_TEST

/* PHASE records come out where they were written: pending bytes of the
 * chunk being filled are flushed before the PHASE. */
START_TEST(phases)
{
	uint8_t buf[5000];
	struct tu_run r;
	struct wr t;
	uint32_t d;
	static const uint32_t want_types[] = {
		VMS_REC_PHASE, VMS_REC_DEVICE_BEGIN, VMS_REC_DATA, VMS_REC_DATA, VMS_REC_PHASE,
		VMS_REC_DATA, VMS_REC_PHASE, VMS_REC_PHASE, VMS_REC_DEVICE_END, VMS_REC_EOS,
	};

	tu_fill(buf, sizeof(buf), 5);
	wr_open(&t, 4096);
	ck_assert_int_eq(vms_writer_phase(t.w, VMS_PHASE_PRECOPY, 1), 0);
	d = wr_dev(&t, "dev");
	ck_assert_int_eq(vms_writer_write(t.w, d, buf, 5000), 0); /* 4096 + 904 pending */
	ck_assert_int_eq(vms_writer_phase(t.w, VMS_PHASE_PRECOPY, 2), 0);
	ck_assert_int_eq(vms_writer_write(t.w, d, buf, 10), 0);
	ck_assert_int_eq(vms_writer_phase(t.w, VMS_PHASE_SWITCHOVER, 0), 0);
	ck_assert_int_eq(vms_writer_phase(t.w, VMS_PHASE_STOPCOPY, 0xffffffffu), 0);
	ck_assert_int_eq(vms_writer_end_device(t.w, d), 0);
	ck_assert_int_eq(vms_writer_finish(t.w), 0);
	wr_close(&t);

	tu_run_buf(t.out, t.n, 0, &r);
	ck_assert_uint_eq(r.nev, sizeof(want_types) / sizeof(want_types[0]));
	for (size_t i = 0; i < r.nev; i++)
		ck_assert_uint_eq(r.ev[i].type, want_types[i]);
	assert_framing(&r, 56);
	ck_assert_uint_eq(r.ev[0].a, 1);
	ck_assert_uint_eq(r.ev[0].b, 1);
	ck_assert_uint_eq(r.ev[0].device, VMS_DEVICE_NONE);
	ck_assert_uint_eq(r.ev[2].raw_len, 4096);
	ck_assert_uint_eq(r.ev[3].raw_len, 904);
	ck_assert_uint_eq(r.ev[4].a, 1);
	ck_assert_uint_eq(r.ev[4].b, 2);
	ck_assert_uint_eq(r.ev[5].raw_len, 10);
	ck_assert_uint_eq(r.ev[5].offset, 5000);
	ck_assert_uint_eq(r.ev[6].a, 2);
	ck_assert_uint_eq(r.ev[6].b, 0);
	ck_assert_uint_eq(r.ev[7].a, 3);
	ck_assert_uint_eq(r.ev[7].b, 0xffffffffu);
	ck_assert_uint_eq(r.dev[0].n, 5010);
	assert_eos(&r, 9, 5010, 1);
	tu_run_free(&r);
	wr_free(&t);
}
END_TEST

/* ---- acquire / commit ----------------------------------------------------------- */

START_TEST(acquire_commit)
{
	uint8_t expect[4096 + 200];
	struct tu_run r;
	struct wr t;
	void *buf, *buf2;
	size_t room, room2;
	uint32_t d;

	wr_open(&t, 4096);
	d = wr_dev(&t, "dev");
	ck_assert_int_eq(vms_writer_acquire(t.w, d, &buf, &room), 0);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(room, 4096);
	/* double acquire */
	ck_assert_int_eq(vms_writer_acquire(t.w, d, &buf2, &room2), VMS_ESTATE);
	/* commit more than the room: refused, the acquisition stays */
	ck_assert_int_eq(vms_writer_commit(t.w, d, 4097), VMS_EINVAL);
	ck_assert_int_eq(vms_writer_commit(t.w, d, SIZE_MAX), VMS_EINVAL);
	/* commit for another device */
	ck_assert_int_eq(vms_writer_commit(t.w, d + 1, 1), VMS_EINVAL); /* not begun */
	memset(buf, 'A', 100);
	ck_assert_int_eq(vms_writer_commit(t.w, d, 100), 0);
	/* commit without acquire */
	ck_assert_int_eq(vms_writer_commit(t.w, d, 0), VMS_ESTATE);
	/* commit 0 */
	ck_assert_int_eq(vms_writer_acquire(t.w, d, &buf, &room), 0);
	ck_assert_uint_eq(room, 4096 - 100);
	ck_assert_int_eq(vms_writer_commit(t.w, d, 0), 0);
	/* fill the chunk exactly: a full chunk is sent right away */
	ck_assert_int_eq(vms_writer_acquire(t.w, d, &buf, &room), 0);
	ck_assert_uint_eq(room, 3996);
	memset(buf, 'B', room);
	ck_assert_int_eq(vms_writer_commit(t.w, d, room), 0);
	ck_assert_uint_eq(wr_stats(&t).data_records, 1);
	ck_assert_int_eq(vms_writer_acquire(t.w, d, &buf, &room), 0);
	ck_assert_uint_eq(room, 4096);
	/* while a buffer is held: no phase, end of that device or finish; other
	 * devices may begin (several producers may run at once) */
	ck_assert_int_eq(vms_writer_phase(t.w, VMS_PHASE_PRECOPY, 1), VMS_ESTATE);
	ck_assert_int_eq(vms_writer_end_device(t.w, d), VMS_ESTATE);
	{
		struct vms_device_desc dd = VMS_DEVICE_DESC_INIT;
		uint32_t other = 0;

		dd.name = "other";
		ck_assert_int_eq(vms_writer_begin_device(t.w, &dd, &other), 0);
		ck_assert_uint_eq(other, d + 1);
		ck_assert_int_eq(vms_writer_finish(t.w), VMS_ESTATE);
		ck_assert_int_eq(vms_writer_end_device(t.w, other), 0);
	}
	ck_assert_int_eq(vms_writer_finish(t.w), VMS_ESTATE);
	memset(buf, 'C', 200);
	ck_assert_int_eq(vms_writer_commit(t.w, d, 200), 0);
	ck_assert_int_eq(vms_writer_end_device(t.w, d), 0);
	ck_assert_int_eq(vms_writer_finish(t.w), 0);
	wr_close(&t);

	memset(expect, 'A', 100);
	memset(expect + 100, 'B', 3996);
	memset(expect + 4096, 'C', 200);
	tu_run_buf(t.out, t.n, 0, &r);
	ck_assert_uint_eq(r.dev[0].n, sizeof(expect));
	ck_assert_mem_eq(r.dev[0].p, expect, sizeof(expect));
	ck_assert_uint_eq(count_type(&r, VMS_REC_DATA), 2);
	ck_assert_uint_eq(find_end(&r, 0)->b, tu_xxh3(expect, sizeof(expect)));
	/* BEGIN, BEGIN other, END other, DATA, DATA, END */
	assert_eos(&r, 6, sizeof(expect), 2);
	tu_run_free(&r);
	wr_free(&t);
}
END_TEST

/* ---- misuse ---------------------------------------------------------------------- */

START_TEST(misuse_codes)
{
	struct vms_device_desc dd = VMS_DEVICE_DESC_INIT;
	char longname[300];
	struct wr t;
	void *buf;
	size_t room;
	uint32_t d;

	wr_open(&t, 4096);
	/* nothing begun yet */
	ck_assert_int_eq(vms_writer_write(t.w, 0, "x", 1), VMS_EINVAL);
	ck_assert_int_eq(vms_writer_write(t.w, 0, "x", 0), VMS_EINVAL);
	ck_assert_int_eq(vms_writer_acquire(t.w, 0, &buf, &room), VMS_EINVAL);
	ck_assert_int_eq(vms_writer_end_device(t.w, 0), VMS_EINVAL);
	/* bad device descriptions */
	ck_assert_int_eq(vms_writer_begin_device(t.w, NULL, &d), VMS_EINVAL);
	ck_assert_int_eq(vms_writer_begin_device(t.w, &dd, &d), VMS_EINVAL); /* name NULL */
	dd.name = "";
	ck_assert_int_eq(vms_writer_begin_device(t.w, &dd, &d), VMS_EINVAL);
	memset(longname, 'n', 256);
	longname[256] = '\0';
	dd.name = longname;
	ck_assert_int_eq(vms_writer_begin_device(t.w, &dd, &d), VMS_EINVAL);
	longname[255] = '\0';
	dd.size = 4;
	ck_assert_int_eq(vms_writer_begin_device(t.w, &dd, &d), VMS_EINVAL);
	dd.size = sizeof(dd);
	ck_assert_int_eq(vms_writer_begin_device(t.w, &dd, &d), 0); /* 255 bytes: fine */
	ck_assert_uint_eq(d, 0);
	/* unknown device index, phase values */
	ck_assert_int_eq(vms_writer_write(t.w, 1, "x", 1), VMS_EINVAL);
	ck_assert_int_eq(vms_writer_write(t.w, UINT32_MAX, "x", 1), VMS_EINVAL);
	ck_assert_int_eq(vms_writer_end_device(t.w, 7), VMS_EINVAL);
	ck_assert_int_eq(vms_writer_phase(t.w, 0, 0), VMS_EINVAL);
	ck_assert_int_eq(vms_writer_phase(t.w, 4, 0), VMS_EINVAL);
	/* finish with an open device */
	ck_assert_int_eq(vms_writer_write(t.w, 0, "abc", 3), 0);
	ck_assert_int_eq(vms_writer_finish(t.w), VMS_ESTATE);
	ck_assert_int_eq(vms_writer_end_device(t.w, 0), 0);
	/* after end_device */
	ck_assert_int_eq(vms_writer_write(t.w, 0, "x", 1), VMS_ESTATE);
	ck_assert_int_eq(vms_writer_write(t.w, 0, "x", 0), VMS_ESTATE);
	ck_assert_int_eq(vms_writer_acquire(t.w, 0, &buf, &room), VMS_ESTATE);
	ck_assert_int_eq(vms_writer_end_device(t.w, 0), VMS_ESTATE);
	/* none of these failures broke the writer */
	ck_assert_int_eq(vms_writer_finish(t.w), 0);
	/* after finish */
	dd.name = "late";
	ck_assert_int_eq(vms_writer_begin_device(t.w, &dd, &d), VMS_ESTATE);
	ck_assert_int_eq(vms_writer_write(t.w, 0, "x", 1), VMS_ESTATE);
	ck_assert_int_eq(vms_writer_phase(t.w, VMS_PHASE_PRECOPY, 1), VMS_ESTATE);
	ck_assert_int_eq(vms_writer_finish(t.w), VMS_ESTATE);
	ck_assert_int_eq(vms_writer_abort(t.w, VMS_EIO, "late"), VMS_ESTATE);
	wr_close(&t);
	{
		struct tu_run r;

		tu_run_buf(t.out, t.n, 0, &r);
		ck_assert_uint_eq(r.nev, 4);
		ck_assert_uint_eq(r.dev[0].n, 3);
		ck_assert_uint_eq(r.ev[0].text[254], 'n');
		ck_assert_uint_eq(strlen(r.ev[0].text), 255);
		assert_eos(&r, 3, 3, 1);
		tu_run_free(&r);
	}
	wr_free(&t);
	vms_writer_free(NULL);
	vms_reader_free(NULL);
}
END_TEST

START_TEST(bad_options)
{
	static const uint32_t bad_chunks[] = { 1, 4095, (16u << 20) + 1, UINT32_MAX };
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
	struct vms_writer *w = (struct vms_writer *)&o;
	struct vms_reader *r = (struct vms_reader *)&o;
	char creator[80];
	int fd = tu_memfd_new();

	for (size_t i = 0; i < sizeof(bad_chunks) / sizeof(bad_chunks[0]); i++) {
		o.chunk_size = bad_chunks[i];
		ck_assert_int_eq(vms_writer_open_fd(&w, fd, &o), VMS_EINVAL);
		ck_assert_ptr_null(w);
		w = (struct vms_writer *)&o;
	}
	o.chunk_size = 4096;
	o.size = 0;
	ck_assert_int_eq(vms_writer_open_fd(&w, fd, &o), VMS_EINVAL);
	ck_assert_ptr_null(w);
	o.size = 4;
	ck_assert_int_eq(vms_writer_open_fd(&w, fd, &o), VMS_EINVAL);
	o.size = sizeof(o);
	memset(creator, 'c', sizeof(creator));
	creator[65] = '\0';
	o.creator = creator;
	ck_assert_int_eq(vms_writer_open_fd(&w, fd, &o), VMS_EINVAL);
	/* nothing was written by the refused opens */
	ck_assert_int_eq(lseek(fd, 0, SEEK_END), 0);
	creator[64] = '\0';
	ck_assert_int_eq(vms_writer_open_fd(&w, fd, &o), 0);
	vms_writer_free(w);
	/* chunk_size 0 = 1 MiB; 4096 and 16 MiB are the limits */
	{
		static const uint32_t sizes[] = { 0, 4096, 16u << 20 };

		for (size_t i = 0; i < 3; i++) {
			struct vms_writer_opts oo = VMS_WRITER_OPTS_INIT;
			struct tu_run rr;
			struct wr t;

			oo.chunk_size = sizes[i];
			wr_open_opts(&t, &oo);
			ck_assert_int_eq(vms_writer_finish(t.w), 0);
			wr_close(&t);
			tu_run_buf(t.out, t.n, 0, &rr);
			ck_assert_int_eq(rr.err, 0);
			ck_assert_uint_eq(rr.info.chunk_cap, sizes[i] ? sizes[i] : (1u << 20));
			tu_run_free(&rr);
			wr_free(&t);
		}
	}
	/* reader options */
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	ro.size = 0;
	ck_assert_int_eq(vms_reader_open_fd(&r, fd, &ro), VMS_EINVAL);
	ck_assert_ptr_null(r);
	ro.size = 4;
	r = (struct vms_reader *)&o;
	ck_assert_int_eq(vms_reader_open_fd(&r, fd, &ro), VMS_EINVAL);
	ck_assert_ptr_null(r);
	close(fd);
}
END_TEST

/* The reader's max_chunk option: a stream whose chunk cap exceeds it. */
START_TEST(reader_max_chunk)
{
	struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
	struct vms_reader *rd = NULL;
	struct wr t;
	int fd;

	wr_open(&t, 65536);
	ck_assert_int_eq(vms_writer_finish(t.w), 0);
	wr_close(&t);
	fd = tu_memfd_new();
	tu_memfd_set(fd, t.out, t.n);
	ro.max_chunk = 65535;
	ck_assert_int_eq(vms_reader_open_fd(&rd, fd, &ro), VMS_ELENGTH);
	ck_assert_ptr_null(rd);
	/* FORMAT.md preamble rule 11, located like every preamble refusal */
	ck_assert_msg(strncmp(vms_last_error(), "preamble at byte 0: ", 20) == 0, "%s",
		      vms_last_error());
	tu_memfd_set(fd, t.out, t.n);
	ro.max_chunk = 65536;
	ck_assert_int_eq(vms_reader_open_fd(&rd, fd, &ro), 0);
	vms_reader_free(rd);
	close(fd);
	wr_free(&t);
}
END_TEST

/* A chunk cap the reader's memory budget cannot buffer (with its threads) is
 * a chunk cap it does not accept: VMS_ELENGTH at the preamble (FORMAT.md
 * preamble rule 22), like max_chunk, not an option error. */
START_TEST(reader_budget_chunk_cap)
{
	struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
	struct vms_reader *rd = (struct vms_reader *)&ro;
	struct tu_run r;
	struct wr t;
	uint32_t d;
	int fd;

	wr_open(&t, 1u << 20);
	d = wr_dev(&t, "d");
	ck_assert_int_eq(vms_writer_write(t.w, d, "hello", 5), 0);
	ck_assert_int_eq(vms_writer_end_device(t.w, d), 0);
	ck_assert_int_eq(vms_writer_finish(t.w), 0);
	wr_close(&t);
	fd = tu_memfd_new();
	tu_memfd_set(fd, t.out, t.n);
	ro.memory = 2u << 20; /* one 1 MiB slot; two threads need three */
	ro.threads = 2;
	ck_assert_int_eq(vms_reader_open_fd(&rd, fd, &ro), VMS_ELENGTH);
	ck_assert_ptr_null(rd);
	{
		static const char want[] = "preamble at byte 0: memory budget 2097152 bytes is too "
					   "small for the stream's 1048576-byte chunks with 2 threads: "
					   "it needs at least 3158016 (--memory 3158016";

		ck_assert_msg(strncmp(vms_last_error(), want, sizeof(want) - 1) == 0, "%s",
			      vms_last_error());
	}
	/* the same budget without threads fits, and reads it all */
	ro.threads = 0;
	tu_memfd_set(fd, t.out, t.n);
	ck_assert_int_eq(tu_run_fd(fd, &ro, &r), 0);
	ck_assert_uint_eq(r.dev[0].n, 5);
	tu_run_free(&r);
	close(fd);
	wr_free(&t);
}
END_TEST

/* FORMAT.md record rule 13: at most 65536 devices (VMS_DEVICES_MAX). The
 * 65537th DEVICE_BEGIN (seq 65536) is refused with its location after the
 * 65536 before it were delivered. Built by hand: the writer refuses it. */
START_TEST(device_cap)
{
	struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
	struct tu_bytes b = { 0 };
	struct vms_reader *rd;
	struct vms_event ev = VMS_EVENT_INIT;
	struct wr t;
	uint64_t seen = 0, pos;
	char want[96];
	int fd, rc;

	wr_open(&t, 4096);
	wr_close(&t); /* preamble only: no finish, no EOS */
	tu_bytes_add(&b, t.out, t.n);
	for (uint32_t i = 0; i <= VMS_DEVICES_MAX; i++) {
		struct vms_begin_body bb = { .kind = 0, .size_hint = UINT64_MAX, .name_len = 1 };
		struct vms_rec_hdr h = { .type = VMS_REC_DEVICE_BEGIN, .device = i, .seq = i };
		uint8_t hb[VMS_HDR_LEN], body[VMS_BEGIN_FIXED + 1];

		bb.name[0] = 'd';
		h.raw_len = h.wire_len = (uint32_t)vms_begin_encode(&bb, body);
		h.payload_sum = tu_xxh3(body, h.raw_len);
		vms_hdr_encode(&h, hb);
		tu_bytes_add(&b, hb, sizeof(hb));
		tu_bytes_add(&b, body, h.raw_len);
	}
	pos = t.n + (uint64_t)VMS_DEVICES_MAX * (VMS_HDR_LEN + VMS_BEGIN_FIXED + 1);
	fd = tu_memfd_new();
	tu_memfd_set(fd, b.p, b.n);
	ck_assert_int_eq(vms_reader_open_fd(&rd, fd, &ro), 0);
	while ((rc = vms_reader_next(rd, &ev)) == 1) {
		ck_assert_uint_eq(ev.type, VMS_REC_DEVICE_BEGIN);
		ck_assert_uint_eq(ev.seq, seen);
		seen++;
	}
	ck_assert_int_eq(rc, VMS_EDEVICE);
	ck_assert_uint_eq(seen, VMS_DEVICES_MAX);
	snprintf(want, sizeof(want), "record %u at byte %llu: ", VMS_DEVICES_MAX,
		 (unsigned long long)pos);
	ck_assert_msg(strncmp(vms_last_error(), want, strlen(want)) == 0, "%s", vms_last_error());
	vms_reader_free(rd);
	close(fd);
	tu_bytes_free(&b);
	wr_free(&t);
}
END_TEST

/* ---- ABORT -------------------------------------------------------------------------- */

START_TEST(abort_record)
{
	uint8_t data[5000];
	struct tu_run r;
	struct wr t;
	uint32_t d;

	tu_fill(data, sizeof(data), 3);
	wr_open(&t, 4096);
	d = wr_dev(&t, "dev");
	ck_assert_int_eq(vms_writer_write(t.w, d, data, sizeof(data)), 0); /* 904 pending */
	ck_assert_int_eq(vms_writer_abort(t.w, VMS_EDEVIO, "disk gone"), 0);
	/* the writer is done: everything else is refused */
	ck_assert_int_eq(vms_writer_write(t.w, d, data, 1), VMS_ECANCELED);
	ck_assert_int_eq(vms_writer_finish(t.w), VMS_ECANCELED);
	ck_assert_int_eq(vms_writer_abort(t.w, VMS_EIO, NULL), VMS_ESTATE);
	wr_close(&t);

	tu_run_buf(t.out, t.n, 0, &r);
	ck_assert_int_eq(r.err, VMS_EPEERABORT);
	ck_assert_int_eq(r.again, VMS_EPEERABORT);
	ck_assert_ptr_nonnull(strstr(r.msg, "disk gone"));
	ck_assert_ptr_nonnull(strstr(r.msg, "VMS_EDEVIO"));
	/* located at the ABORT record (seq 2, after 56 + 77 + 4152 bytes) */
	ck_assert_msg(strncmp(r.msg, "record 2 at byte 4285: ", 23) == 0, "%s", r.msg);
	ck_assert_uint_eq(r.nev, 3);
	ck_assert_uint_eq(r.ev[1].type, VMS_REC_DATA);
	ck_assert_uint_eq(r.ev[1].raw_len, 4096);
	ck_assert_uint_eq(r.ev[2].type, VMS_REC_ABORT);
	ck_assert_uint_eq(r.ev[2].seq, 2);
	ck_assert_int_eq((int64_t)r.ev[2].a, VMS_EDEVIO);
	ck_assert_str_eq(r.ev[2].text, "disk gone");
	/* the pending 904 bytes were dropped, not sent */
	ck_assert_uint_eq(r.dev[0].n, 4096);
	ck_assert_uint_eq(t.n, 56 + 77 + 56 + 4096 + 56 + 6 + 9);
	tu_run_free(&r);
	/* framing only: the same location, no reason */
	tu_run_buf(t.out, t.n, VMS_READER_F_HEADERS_ONLY, &r);
	ck_assert_int_eq(r.err, VMS_EPEERABORT);
	ck_assert_msg(strncmp(r.msg, "record 2 at byte 4285: peer aborted", 35) == 0, "%s", r.msg);
	ck_assert_uint_eq(r.nev, 3);
	tu_run_free(&r);
	wr_free(&t);
}
END_TEST

/* An ABORT code is whatever int32 the peer sent; naming it must not be
 * undefined behaviour (error.c lookup() negates the code: -INT_MIN). */
START_TEST(abort_code_int_min)
{
	struct tu_run r;
	struct wr t;

	wr_open(&t, 4096);
	ck_assert_int_eq(vms_writer_abort(t.w, INT_MIN, "odd code"), 0);
	wr_close(&t);
	tu_run_buf(t.out, t.n, 0, &r);
	ck_assert_uint_eq(r.nev, 1);
	ck_assert_int_eq((int64_t)r.ev[0].a, INT_MIN);
	ck_assert_int_eq(r.err, VMS_EPEERABORT);
	ck_assert_ptr_nonnull(strstr(r.msg, "odd code"));
	tu_run_free(&r);
	wr_free(&t);
}
END_TEST

/* ---- error messages name the record ------------------------------------------------ */

/* A small stream: BEGIN, DATA x3 (4096, 4096, 100), END, EOS. */
static uint8_t *small_stream(size_t *n)
{
	uint8_t data[8292];
	struct wr t;
	uint32_t d;

	tu_fill(data, sizeof(data), 9);
	wr_open(&t, 4096);
	d = wr_dev(&t, "dev");
	ck_assert_int_eq(vms_writer_write(t.w, d, data, sizeof(data)), 0);
	ck_assert_int_eq(vms_writer_end_device(t.w, d), 0);
	ck_assert_int_eq(vms_writer_finish(t.w), 0);
	wr_close(&t);
	*n = t.n;
	return t.out;
}

static void expect_msg(const uint8_t *b, size_t n, int code, const char *where)
{
	struct tu_run r;

	tu_run_buf(b, n, 0, &r);
	ck_assert_int_eq(r.err, code);
	ck_assert_int_eq(r.again, code);
	ck_assert_msg(strstr(r.msg, where) != NULL, "message \"%s\" does not name \"%s\"", r.msg,
		      where);
	/* vms_last_error() after the repeated call says the same */
	tu_run_free(&r);
}

START_TEST(error_messages)
{
	size_t n;
	uint8_t *b = small_stream(&n);
	/* record positions: BEGIN 56, DATA 133, 4285, 8437, END 8593, EOS 8665 */
	static const size_t pos[] = { 56, 133, 4285, 8437, 8593, 8665 };
	char where[96];

	ck_assert_uint_eq(n, 8665 + 80);
	for (size_t i = 0; i < 6; i++) {
		/* header checksum */
		b[pos[i] + 9] ^= 0x01;
		snprintf(where, sizeof(where), "record %zu at byte %zu", i, pos[i]);
		expect_msg(b, n, VMS_EHDRSUM, where);
		b[pos[i] + 9] ^= 0x01;
		/* payload checksum */
		b[pos[i] + 56 + 3] ^= 0x40;
		expect_msg(b, n, VMS_EPAYLOADSUM, where);
		b[pos[i] + 56 + 3] ^= 0x40;
		/* cut inside the header / the payload / right before it */
		expect_msg(b, pos[i] + 10, VMS_ETRUNCATED, where);
		expect_msg(b, pos[i] + 60, VMS_ETRUNCATED, where);
		expect_msg(b, pos[i], VMS_ETRUNCATED, where);
	}
	/* a byte after EOS: record 6 at the first extra byte (FORMAT.md 4.17) */
	b = tu_xrealloc(b, n + 1);
	b[n] = 0;
	snprintf(where, sizeof(where), "record 6 at byte %zu", n);
	expect_msg(b, n + 1, VMS_ETRAILING, where);
	/* preamble errors name byte 0 */
	b[0] ^= 1;
	expect_msg(b, n, VMS_EMAGIC, "preamble at byte 0");
	free(b);
}
END_TEST

/* ---- the reader API ------------------------------------------------------------------ */

START_TEST(reader_end_is_sticky)
{
	struct vms_reader *rd;
	struct vms_event ev = VMS_EVENT_INIT;
	size_t n;
	uint8_t *b = small_stream(&n);
	int fd = tu_memfd_new();
	int k = 0;

	tu_memfd_set(fd, b, n);
	ck_assert_int_eq(vms_reader_open_fd(&rd, fd, NULL), 0);
	while (vms_reader_next(rd, &ev) == 1)
		k++;
	ck_assert_int_eq(k, 6);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(vms_reader_next(rd, &ev), 0);
	vms_reader_free(rd);
	close(fd);
	free(b);
}
END_TEST

START_TEST(reader_info_and_hint)
{
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	struct vms_stream_info small;
	struct tu_run r;
	struct wr t;

	o.chunk_size = 8192;
	o.stream_id = fixed_id;
	o.size_hint = 123456789;
	o.creator = "check_stream";
	wr_open_opts(&t, &o);
	ck_assert_int_eq(vms_writer_finish(t.w), 0);
	wr_close(&t);
	tu_run_buf(t.out, t.n, 0, &r);
	ck_assert_int_eq(r.err, 0);
	ck_assert_uint_eq(r.info.version_major, 1);
	ck_assert_uint_eq(r.info.version_minor, 0);
	ck_assert_uint_eq(r.info.chunk_cap, 8192);
	ck_assert_uint_eq(r.info.lanes, 1);
	ck_assert_uint_eq(r.info.cipher, 0);
	ck_assert_uint_eq(r.info.flags, 0);
	ck_assert_uint_eq(r.info.size_hint, 123456789);
	ck_assert_uint_eq(r.info.preamble_len, 56 + 12 + 4 + 12);
	ck_assert_mem_eq(r.info.stream_id, fixed_id, 16);
	ck_assert_uint_eq(r.nev, 1);
	assert_eos(&r, 0, 0, 0);
	tu_run_free(&r);
	/* a smaller info struct (older caller) gets only what fits */
	{
		struct vms_reader *rd;
		int fd = tu_memfd_new();

		tu_memfd_set(fd, t.out, t.n);
		ck_assert_int_eq(vms_reader_open_fd(&rd, fd, NULL), 0);
		memset(&small, 0xee, sizeof(small));
		small.size = (uint32_t)offsetof(struct vms_stream_info, stream_id);
		ck_assert_int_eq(vms_reader_info(rd, &small), 0);
		ck_assert_uint_eq(small.version_major, 1);
		ck_assert_uint_eq(small.stream_id[0], 0xee);
		small.size = 0;
		ck_assert_int_eq(vms_reader_info(rd, &small), VMS_EINVAL);
		vms_reader_free(rd);
		close(fd);
	}
	wr_free(&t);
}
END_TEST

/* ---- headers-only mode ------------------------------------------------------------ */

START_TEST(headers_only)
{
	struct tu_run full, hdr;
	size_t n;
	uint8_t *b = small_stream(&n);

	tu_run_buf(b, n, 0, &full);
	tu_run_buf(b, n, VMS_READER_F_HEADERS_ONLY, &hdr);
	ck_assert_int_eq(hdr.err, 0);
	ck_assert_int_eq(hdr.again, 0);
	ck_assert_uint_eq(hdr.nev, full.nev);
	for (size_t i = 0; i < hdr.nev; i++) {
		const struct tu_ev *a = &full.ev[i], *h = &hdr.ev[i];

		ck_assert_uint_eq(h->type, a->type);
		ck_assert_uint_eq(h->seq, a->seq);
		ck_assert_uint_eq(h->device, a->device);
		ck_assert_uint_eq(h->offset, a->offset);
		ck_assert_uint_eq(h->raw_len, a->raw_len);
		ck_assert_uint_eq(h->wire_len, a->wire_len);
		ck_assert_uint_eq(h->stream_pos, a->stream_pos);
		/* the union carries nothing */
		ck_assert(h->type != VMS_REC_DATA || h->data_null);
		ck_assert_uint_eq(h->a, 0);
		ck_assert_uint_eq(h->b, 0);
		ck_assert_uint_eq(h->c, 0);
		ck_assert_str_eq(h->text, "");
	}
	ck_assert_uint_eq(hdr.st.records, full.st.records);
	ck_assert_uint_eq(hdr.st.wire_bytes, n);
	ck_assert_uint_eq(hdr.st.raw_bytes, 8292);
	ck_assert_uint_eq(hdr.st.data_records, 3);
	tu_run_free(&hdr);

	/* payloads are not verified: a bad DATA byte passes ... */
	b[133 + 56 + 7] ^= 0x20;
	tu_run_buf(b, n, VMS_READER_F_HEADERS_ONLY, &hdr);
	ck_assert_int_eq(hdr.err, 0);
	tu_run_free(&hdr);
	b[133 + 56 + 7] ^= 0x20;
	/* ... but headers, sequence, lengths and trailing bytes are */
	b[4285 + 20] ^= 0x01;
	tu_run_buf(b, n, VMS_READER_F_HEADERS_ONLY, &hdr);
	ck_assert_int_eq(hdr.err, VMS_EHDRSUM);
	ck_assert_uint_eq(hdr.nev, 2);
	tu_run_free(&hdr);
	b[4285 + 20] ^= 0x01;
	tu_run_buf(b, n - 1, VMS_READER_F_HEADERS_ONLY, &hdr);
	ck_assert_int_eq(hdr.err, VMS_ETRUNCATED);
	tu_run_free(&hdr);
	b = tu_xrealloc(b, n + 1);
	b[n] = 'x';
	tu_run_buf(b, n + 1, VMS_READER_F_HEADERS_ONLY, &hdr);
	ck_assert_int_eq(hdr.err, VMS_ETRAILING);
	tu_run_free(&hdr);
	tu_run_free(&full);
	free(b);
}
END_TEST

/* An encrypted stream can be listed without its key; reading it needs one. */
START_TEST(headers_only_encrypted)
{
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	uint8_t key[32], data[5000];
	struct tu_run r;
	struct wr t;
	uint32_t d;

	memset(key, 0x42, sizeof(key));
	tu_fill(data, sizeof(data), 77);
	o.chunk_size = 4096;
	o.creator = "";
	o.cipher = VMS_CIPHER_CHACHA20_POLY1305;
	o.key = key;
	wr_open_opts(&t, &o);
	d = wr_dev(&t, "secret");
	ck_assert_int_eq(vms_writer_write(t.w, d, data, sizeof(data)), 0);
	ck_assert_int_eq(vms_writer_end_device(t.w, d), 0);
	ck_assert_int_eq(vms_writer_finish(t.w), 0);
	wr_close(&t);

	tu_run_buf(t.out, t.n, 0, &r);
	ck_assert_int_eq(r.open_err, VMS_EKEY);
	ck_assert_uint_eq(r.nev, 0);
	tu_run_free(&r);
	tu_run_buf(t.out, t.n, VMS_READER_F_HEADERS_ONLY, &r);
	ck_assert_int_eq(r.err, 0);
	ck_assert_uint_eq(r.info.cipher, VMS_CIPHER_CHACHA20_POLY1305);
	ck_assert_uint_eq(r.nev, 5);
	ck_assert_uint_eq(r.ev[1].flags, 1);
	ck_assert_uint_eq(r.ev[1].raw_len, 4096);
	ck_assert_uint_eq(r.ev[1].wire_len, 4096 + 24);
	ck_assert(r.ev[1].data_null);
	ck_assert_uint_eq(r.ev[2].raw_len, 904);
	ck_assert_uint_eq(r.st.raw_bytes, 5000);
	tu_run_free(&r);
	wr_free(&t);
}
END_TEST

/* ---- pipe, threads ------------------------------------------------------------------ */

struct pipe_job {
	int fd;
	const uint8_t *data[2];
	size_t len;
	int rc;
};

static void *pipe_writer(void *p)
{
	struct pipe_job *j = p;
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc dd = VMS_DEVICE_DESC_INIT;
	struct vms_writer *w;
	int rc;

	o.chunk_size = 1u << 20;
	o.creator = "";
	rc = vms_writer_open_fd(&w, j->fd, &o);
	if (rc) {
		j->rc = rc;
		close(j->fd);
		return NULL;
	}
	dd.name = "a";
	rc = vms_writer_begin_device(w, &dd, NULL);
	dd.name = "b";
	if (!rc)
		rc = vms_writer_begin_device(w, &dd, NULL);
	for (size_t off = 0; !rc && off < j->len; off += 100000) {
		size_t k = j->len - off < 100000 ? j->len - off : 100000;

		rc = vms_writer_write(w, 0, j->data[0] + off, k);
		if (!rc)
			rc = vms_writer_write(w, 1, j->data[1] + off, k);
	}
	if (!rc)
		rc = vms_writer_end_device(w, 0);
	if (!rc)
		rc = vms_writer_end_device(w, 1);
	if (!rc)
		rc = vms_writer_finish(w);
	vms_writer_free(w);
	close(j->fd);
	j->rc = rc;
	return NULL;
}

START_TEST(pipe_roundtrip)
{
	enum { N = 3 * (1 << 20) + 5 };
	struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
	struct pipe_job j;
	struct tu_run r;
	pthread_t th;
	uint8_t *a = tu_xmalloc(N), *b = tu_xmalloc(N);
	int p[2];

	tu_fill(a, N, 1000);
	tu_fill(b, N, 1001);
	ck_assert_int_eq(pipe(p), 0);
	j.fd = p[1];
	j.data[0] = a;
	j.data[1] = b;
	j.len = N;
	j.rc = 1;
	ck_assert_int_eq(pthread_create(&th, NULL, pipe_writer, &j), 0);
	tu_run_fd(p[0], &ro, &r);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	close(p[0]);
	ck_assert_int_eq(j.rc, 0);
	ck_assert_int_eq(r.err, 0);
	ck_assert_uint_eq(r.dev[0].n, N);
	ck_assert_uint_eq(r.dev[1].n, N);
	ck_assert_mem_eq(r.dev[0].p, a, N);
	ck_assert_mem_eq(r.dev[1].p, b, N);
	ck_assert_uint_eq(find_end(&r, 0)->b, tu_xxh3(a, N));
	ck_assert_uint_eq(find_end(&r, 1)->b, tu_xxh3(b, N));
	assert_eos(&r, r.nev - 1, 2ull * N, 2);
	tu_run_free(&r);
	free(a);
	free(b);
}
END_TEST

/* Worker threads change nothing in the output: same bytes as inline. */
START_TEST(threads_same_bytes)
{
	enum { N = 300000 };
	uint8_t *data = tu_xmalloc(N);
	struct wr t[2];

	tu_fill(data, N, 4242);
	for (int i = 0; i < 2; i++) {
		struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
		uint32_t d0, d1;

		o.chunk_size = 4096;
		o.stream_id = fixed_id;
		o.creator = "";
		o.threads = i ? 3 : 0;
		wr_open_opts(&t[i], &o);
		d0 = wr_dev(&t[i], "x");
		d1 = wr_dev(&t[i], "y");
		for (size_t off = 0; off < N; off += 7000) {
			size_t k = N - off < 7000 ? N - off : 7000;

			ck_assert_int_eq(vms_writer_write(t[i].w, (off / 7000) % 3 ? d0 : d1, data + off, k), 0);
		}
		ck_assert_int_eq(vms_writer_end_device(t[i].w, d0), 0);
		ck_assert_int_eq(vms_writer_end_device(t[i].w, d1), 0);
		ck_assert_int_eq(vms_writer_finish(t[i].w), 0);
		wr_close(&t[i]);
	}
	ck_assert_uint_eq(t[0].n, t[1].n);
	ck_assert_mem_eq(t[0].out, t[1].out, t[0].n);
	/* and a threaded reader sees the same events as an inline one */
	{
		struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
		struct tu_run a, b;
		int fd = tu_memfd_new();

		tu_run_buf(t[0].out, t[0].n, 0, &a);
		tu_memfd_set(fd, t[0].out, t[0].n);
		ro.threads = 3;
		tu_run_fd(fd, &ro, &b);
		close(fd);
		ck_assert_int_eq(a.err, 0);
		ck_assert_int_eq(b.err, 0);
		ck_assert_uint_eq(a.nev, b.nev);
		for (size_t i = 0; i < a.nev; i++) {
			ck_assert_uint_eq(a.ev[i].type, b.ev[i].type);
			ck_assert_uint_eq(a.ev[i].data_sum, b.ev[i].data_sum);
			ck_assert_uint_eq(a.ev[i].stream_pos, b.ev[i].stream_pos);
		}
		ck_assert_uint_eq(a.dev[0].n + a.dev[1].n, N);
		tu_run_free(&a);
		tu_run_free(&b);
	}
	wr_free(&t[0]);
	wr_free(&t[1]);
	free(data);
}
END_TEST

/* vms_writer_flush: partial chunks go out now and everything is written
 * when it returns (the output holds exactly the records so far); refused
 * while a buffer is acquired and after the end. */
START_TEST(writer_flush)
{
	for (int threads = 0; threads <= 2; threads += 2) {
		struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
		uint8_t data[5000];
		struct wr t;
		struct stat st;
		uint32_t d;
		void *buf;
		size_t room;
		struct vms_stats ws;

		tu_fill(data, sizeof(data), 3);
		o.chunk_size = 8192;
		o.threads = (uint32_t)threads;
		wr_open_opts(&t, &o);
		d = wr_dev(&t, "x");
		ck_assert_int_eq(vms_writer_write(t.w, d, data, sizeof(data)), 0);
		ck_assert_int_eq(vms_writer_flush(t.w), 0);
		ws = wr_stats(&t);
		ck_assert_uint_eq(ws.records, 2);          /* DEVICE_BEGIN, DATA of 5000 */
		ck_assert_uint_eq(ws.raw_bytes, sizeof(data));
		ck_assert_int_eq(fstat(t.fd, &st), 0);
		/* wire_bytes counts the preamble and every record written */
		ck_assert_uint_eq((uint64_t)st.st_size, ws.wire_bytes);
		ck_assert_int_eq(vms_writer_acquire(t.w, d, &buf, &room), 0);
		ck_assert_int_eq(vms_writer_flush(t.w), VMS_ESTATE);
		ck_assert_int_eq(vms_writer_commit(t.w, d, 0), 0);
		ck_assert_int_eq(vms_writer_end_device(t.w, d), 0);
		ck_assert_int_eq(vms_writer_finish(t.w), 0);
		ck_assert_int_eq(vms_writer_flush(t.w), VMS_ESTATE);
		wr_close(&t);
		wr_free(&t);
	}
}
END_TEST

/* vms_writer_write_ref: the stream is byte-identical to vms_writer_write()
 * (partial chunk before, whole chunks lent, tail after, zero chunks among
 * them), for every thread count, with and without a codec; done is called
 * exactly once, also when the writer is freed unfinished. */
struct ref_count {
	int calls;
	pthread_mutex_t mu;
};

static void ref_done(void *user)
{
	struct ref_count *c = user;

	pthread_mutex_lock(&c->mu);
	c->calls++;
	pthread_mutex_unlock(&c->mu);
}

static void ref_stream(int threads, const char *compress, bool by_ref, const uint8_t *data,
		       size_t n, struct wr *t, struct ref_count *rc)
{
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	uint32_t d;
	size_t cut[] = { 0, 1000, 1000 + 3 * 8192 + 17, n };

	o.chunk_size = 8192;
	o.stream_id = fixed_id;
	o.creator = "";
	o.threads = (uint32_t)threads;
	o.compress = compress;
	wr_open_opts(t, &o);
	d = wr_dev(t, "ref");
	for (size_t i = 0; i + 1 < sizeof(cut) / sizeof(cut[0]); i++) {
		const uint8_t *p = data + cut[i];
		size_t k = cut[i + 1] - cut[i];

		if (by_ref && i > 0)
			ck_assert_int_eq(vms_writer_write_ref(t->w, d, p, k, ref_done, rc), 0);
		else
			ck_assert_int_eq(vms_writer_write(t->w, d, p, k), 0);
	}
	ck_assert_int_eq(vms_writer_end_device(t->w, d), 0);
	ck_assert_int_eq(vms_writer_finish(t->w), 0);
	wr_close(t);
}

START_TEST(write_ref_same_bytes)
{
	enum { N = 20 * 8192 + 333 };
	uint8_t *data = tu_xmalloc(N);
	static const char *codecs[] = { NULL, "zstd:1" };

	tu_fill(data, N, 99);
	memset(data + 8 * 8192, 0, 2 * 8192); /* two whole zero chunks, lent */
	for (int c = 0; c < 2; c++) {
		for (int threads = 0; threads <= 2; threads += 2) {
			struct ref_count rc = { 0, PTHREAD_MUTEX_INITIALIZER };
			struct wr a, b;
			struct tu_run r;

			ref_stream(threads, codecs[c], false, data, N, &a, &rc);
			ref_stream(threads, codecs[c], true, data, N, &b, &rc);
			ck_assert_int_eq(rc.calls, 2); /* one per vms_writer_write_ref() call */
			ck_assert_uint_eq(a.n, b.n);
			ck_assert_mem_eq(a.out, b.out, a.n);
			tu_run_buf(b.out, b.n, 0, &r);
			ck_assert_int_eq(r.err, 0);
			ck_assert_uint_eq(r.dev[0].n, N);
			ck_assert_uint_eq(count_type(&r, VMS_REC_ZERO), 2);
			tu_run_free(&r);
			wr_free(&a);
			wr_free(&b);
		}
	}
	free(data);
}
END_TEST

START_TEST(write_ref_misuse_and_free)
{
	enum { N = 6 * 8192 };
	uint8_t *data = tu_xmalloc(N);
	struct ref_count rc = { 0, PTHREAD_MUTEX_INITIALIZER };
	struct wr t;
	uint32_t d;
	void *buf;
	size_t room;

	tu_fill(data, N, 7);
	for (int threads = 0; threads <= 2; threads += 2) {
		struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;

		rc.calls = 0;
		o.chunk_size = 8192;
		o.threads = (uint32_t)threads;
		wr_open_opts(&t, &o);
		d = wr_dev(&t, "x");
		ck_assert_int_eq(vms_writer_write_ref(t.w, d, data, N, NULL, &rc), VMS_EINVAL);
		ck_assert_int_eq(vms_writer_write_ref(t.w, d + 1, data, N, ref_done, &rc), VMS_EINVAL);
		ck_assert_int_eq(rc.calls, 1); /* refused, and still done */
		ck_assert_int_eq(vms_writer_acquire(t.w, d, &buf, &room), 0);
		ck_assert_int_eq(vms_writer_write_ref(t.w, d, data, N, ref_done, &rc), VMS_ESTATE);
		ck_assert_int_eq(rc.calls, 2);
		ck_assert_int_eq(vms_writer_commit(t.w, d, 0), 0);
		ck_assert_int_eq(vms_writer_write_ref(t.w, d, data, N, ref_done, &rc), 0);
		/* never finished: freeing the writer ends the loan */
		wr_close(&t);
		ck_assert_int_eq(rc.calls, 3);
		wr_free(&t);
	}
	free(data);
}
END_TEST

/* An all-zero chunk: a ZERO record by default, DATA with the opt-out flag;
 * the reader delivers zeros either way. */
START_TEST(zero_chunks)
{
	static const uint8_t zeros[8192];
	for (int noelide = 0; noelide <= 1; noelide++) {
		struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
		struct vms_stats ws;
		struct tu_run r;
		struct wr t;
		uint32_t d;

		o.chunk_size = 4096;
		o.creator = "";
		o.flags = noelide ? VMS_WRITER_F_NO_ZERO_ELISION : 0;
		wr_open_opts(&t, &o);
		d = wr_dev(&t, "z");
		ck_assert_int_eq(vms_writer_write(t.w, d, zeros, sizeof(zeros)), 0);
		ck_assert_int_eq(vms_writer_write(t.w, d, "x", 1), 0);
		ck_assert_int_eq(vms_writer_end_device(t.w, d), 0);
		ck_assert_int_eq(vms_writer_finish(t.w), 0);
		ws = wr_stats(&t);
		wr_close(&t);
		ck_assert_uint_eq(ws.zero_records, noelide ? 0 : 2);
		ck_assert_uint_eq(ws.data_records, noelide ? 3 : 1);
		ck_assert_uint_eq(ws.raw_bytes, 8193);
		tu_run_buf(t.out, t.n, 0, &r);
		ck_assert_int_eq(r.err, 0);
		ck_assert_uint_eq(count_type(&r, VMS_REC_ZERO), noelide ? 0 : 2);
		ck_assert_uint_eq(r.st.zero_records, noelide ? 0 : 2);
		ck_assert_uint_eq(r.dev[0].n, 8193);
		ck_assert_mem_eq(r.dev[0].p, zeros, 8192);
		ck_assert_uint_eq(r.dev[0].p[8192], 'x');
		if (!noelide) {
			ck_assert(r.ev[1].data_null);
			ck_assert_uint_eq(r.ev[1].wire_len, 0);
			ck_assert_uint_eq(r.ev[1].data_len, 4096);
		}
		assert_eos(&r, r.nev - 1, 8193, 1);
		tu_run_free(&r);
		wr_free(&t);
	}
}
END_TEST

static Suite *stream_suite(void)
{
	Suite *s = suite_create("stream");
	TCase *tc;

	tc = tcase_create("roundtrip");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, roundtrip_sizes, 0, (int)N_SIZE_CASES);
	tcase_add_test(tc, several_devices);
	tcase_add_test(tc, interleaved_devices);
	tcase_add_test(tc, phases);
	tcase_add_test(tc, zero_chunks);
	tcase_add_test(tc, pipe_roundtrip);
	tcase_add_test(tc, threads_same_bytes);
	tcase_add_test(tc, write_ref_same_bytes);
	tcase_add_test(tc, write_ref_misuse_and_free);
	tcase_add_test(tc, writer_flush);
	suite_add_tcase(s, tc);

	tc = tcase_create("api");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, acquire_commit);
	tcase_add_test(tc, misuse_codes);
	tcase_add_test(tc, bad_options);
	tcase_add_test(tc, reader_max_chunk);
	tcase_add_test(tc, reader_budget_chunk_cap);
	tcase_add_test(tc, device_cap);
	tcase_add_test(tc, reader_end_is_sticky);
	tcase_add_test(tc, reader_info_and_hint);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, abort_record);
	tcase_add_test(tc, abort_code_int_min);
	tcase_add_test(tc, error_messages);
	tcase_add_test(tc, headers_only);
	tcase_add_test(tc, headers_only_encrypted);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_require_memfd();
	sr = srunner_create(stream_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
