/* SPDX-License-Identifier: MIT */
/*
 * The parallel pipeline: every stage combination round-trips bit-exact with
 * and without worker threads on either side; output does not depend on the
 * thread count; the memory budget holds; abort, a failing sink, and freeing
 * objects mid-stream neither hang nor leak (run it under ASan and TSan).
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <time.h>

#include "testutil.h"

#define CHUNK (64u << 10)
#define SMALL_CHUNK 4096u

static const uint8_t KEY[32] = "pipeline test key, 32 bytes long";
static const uint8_t SALT[32] = "pipeline test salt, 32 bytes...";
static const uint8_t SID[16] = "pipeline test id";

/* ---- data profiles ------------------------------------------------------------- */

enum profile { P_RANDOM, P_ZEROS, P_SPARSE, P_TEXT, P_MIXED, P_CHUNKMIX, P_COUNT };
static const char *const profile_name[] = { "random", "zeros", "sparse", "text", "mixed",
					    "chunkmix" };

static void fill_text(uint8_t *p, size_t n, uint64_t seed)
{
	static const char *const words[] = { "device ", "state ", "migration ", "vfio ", "the ",
					     "region ", "0x1000 ", "page\n", "dirty ", "bitmap " };
	uint64_t x = seed * 2654435761u + 3;

	for (size_t o = 0; o < n;) {
		const char *w;
		size_t k;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		w = words[(x >> 33) % 10];
		k = strlen(w) < n - o ? strlen(w) : n - o;
		memcpy(p + o, w, k);
		o += k;
	}
}

/* n bytes of a profile, with chunk size `chunk` for the chunk-aligned ones:
 *  sparse   even chunks all zero; odd chunks zero but one byte in every 4 KiB
 *           (the chunk's first byte included);
 *  mixed    16 KiB segments cycling random, text, zero, text;
 *  chunkmix whole chunks alternating random and text. */
static uint8_t *make_data(enum profile p, size_t n, size_t chunk)
{
	uint8_t *d = tu_xmalloc(n);

	switch (p) {
	case P_RANDOM:
		tu_fill(d, n, 1);
		break;
	case P_ZEROS:
		memset(d, 0, n);
		break;
	case P_SPARSE:
		memset(d, 0, n);
		for (size_t i = 0; i < n; i += 4096)
			if ((i / chunk) % 2 == 1)
				d[i] = (uint8_t)((i >> 12) | 1);
		break;
	case P_TEXT:
		fill_text(d, n, 2);
		break;
	case P_MIXED:
		for (size_t o = 0; o < n; o += 16384) {
			size_t k = n - o < 16384 ? n - o : 16384;

			switch (o / 16384 % 4) {
			case 0: tu_fill(d + o, k, o); break;
			case 2: memset(d + o, 0, k); break;
			default: fill_text(d + o, k, o); break;
			}
		}
		break;
	case P_CHUNKMIX:
		for (size_t o = 0; o < n; o += chunk) {
			size_t k = n - o < chunk ? n - o : chunk;

			if (o / chunk % 2 == 0)
				tu_fill(d + o, k, o);
			else
				fill_text(d + o, k, o);
		}
		break;
	default:
		tu_die("bad profile");
	}
	return d;
}

/* ---- writing and reading ------------------------------------------------------------- */

struct wcfg {
	const char *compress;
	uint32_t cipher;
	uint32_t threads;
	uint32_t chunk;
	uint64_t memory;
};

static void wopts(const struct wcfg *c, struct vms_writer_opts *o)
{
	struct vms_writer_opts def = VMS_WRITER_OPTS_INIT;

	*o = def;
	o->chunk_size = c->chunk ? c->chunk : CHUNK;
	o->compress = c->compress;
	o->cipher = c->cipher;
	o->key = c->cipher ? KEY : NULL;
	o->salt = SALT;
	o->stream_id = SID;
	o->creator = "";
	o->threads = c->threads;
	o->memory = c->memory;
}

/* One device "dev" with data[0..n), written in pieces of varying size (some
 * through acquire/commit); returns the stream; *st gets the writer's stats
 * after finish. */
static uint8_t *write_stream(const struct wcfg *c, const uint8_t *data, size_t n, size_t *out_n,
			     struct vms_stats *st)
{
	struct vms_writer_opts o;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_writer *w;
	int fd = tu_memfd_new();
	size_t off = 0, step = 1000;
	uint8_t *out;
	int rc;

	wopts(c, &o);
	rc = vms_writer_open_fd(&w, fd, &o);
	ck_assert_msg(rc == 0, "writer open: %s", vms_last_error());
	d.name = "dev";
	d.size_hint = n;
	ck_assert_int_eq(vms_writer_begin_device(w, &d, NULL), 0);
	for (int i = 0; off < n; i++) {
		size_t k = n - off < step ? n - off : step;

		if (i % 3 == 2) {
			void *buf;
			size_t room;

			ck_assert_int_eq(vms_writer_acquire(w, 0, &buf, &room), 0);
			ck_assert_uint_gt(room, 0);
			if (k > room)
				k = room;
			memcpy(buf, data + off, k);
			ck_assert_int_eq(vms_writer_commit(w, 0, k), 0);
		} else {
			rc = vms_writer_write(w, 0, data + off, k);
			ck_assert_msg(rc == 0, "write: %s", vms_last_error());
		}
		off += k;
		step = step * 7 % 70001 + 1; /* 1 byte .. 70 KB, crossing chunk ends */
	}
	ck_assert_int_eq(vms_writer_end_device(w, 0), 0);
	rc = vms_writer_finish(w);
	ck_assert_msg(rc == 0, "finish: %s", vms_last_error());
	if (st) {
		memset(st, 0, sizeof(*st));
		st->size = sizeof(*st);
		ck_assert_int_eq(vms_writer_stats(w, st), 0);
	}
	vms_writer_free(w);
	out = tu_memfd_get(fd, out_n);
	close(fd);
	return out;
}

static int read_stream(const uint8_t *b, size_t n, uint32_t cipher, uint32_t threads,
		       uint64_t memory, struct tu_run *r)
{
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;
	int fd = tu_memfd_new();
	int rc;

	o.key = cipher ? KEY : NULL;
	o.threads = threads;
	o.memory = memory;
	tu_memfd_set(fd, b, n);
	rc = tu_run_fd(fd, &o, r);
	close(fd);
	return rc;
}

/* ---- the matrix ------------------------------------------------------------------------ */

static const char *const compressors[] = { NULL, "zstd:1", "zstd:-5", "zstd:9", "auto" };
static const uint32_t cipher_ids[] = { VMS_CIPHER_NONE, VMS_CIPHER_AES_256_GCM,
				       VMS_CIPHER_CHACHA20_POLY1305 };
static const size_t sizes[] = { 0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + CHUNK / 2 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))
#define MAX_SIZE (5 * CHUNK + CHUNK / 2)

static void run_cell(int ci, int ki, enum profile p, size_t n, uint32_t wt, uint32_t rt,
		     const uint8_t *data)
{
	struct wcfg c = { .compress = compressors[ci], .cipher = cipher_ids[ki], .threads = wt };
	char what[160];
	struct vms_stats ws;
	struct tu_run r;
	size_t sn, nchunks = (n + CHUNK - 1) / CHUNK, nzero = 0, nstored = 0;
	uint8_t *s;

	snprintf(what, sizeof(what), "compress=%s cipher=%s profile=%s size=%zu threads=%u/%u",
		 c.compress ? c.compress : "none", vms_cipher_name(c.cipher), profile_name[p], n,
		 wt, rt);
	s = write_stream(&c, data, n, &sn, &ws);
	read_stream(s, sn, c.cipher, rt, 0, &r);
	ck_assert_msg(r.err == 0, "%s: %s", what, r.msg);
	ck_assert_msg(r.nev == nchunks + 3, "%s: %zu events", what, r.nev);
	ck_assert_msg(r.dev[0].n == n && (n == 0 || memcmp(r.dev[0].p, data, n) == 0),
		      "%s: data differs", what);
	ck_assert_uint_eq(r.ev[0].type, VMS_REC_DEVICE_BEGIN);
	ck_assert_uint_eq(r.ev[0].b, n);
	for (size_t i = 0; i < nchunks; i++) {
		const struct tu_ev *e = &r.ev[1 + i];
		size_t len = n - i * CHUNK < CHUNK ? n - i * CHUNK : CHUNK;
		const uint8_t *raw = data + i * CHUNK;
		bool zero = true;

		for (size_t j = 0; j < len && zero; j++)
			zero = raw[j] == 0;
		ck_assert_msg(e->offset == i * CHUNK && e->raw_len == len, "%s: record %zu framing",
			      what, i + 1);
		ck_assert_msg(e->type == (zero ? VMS_REC_ZERO : VMS_REC_DATA),
			      "%s: record %zu type %u", what, i + 1, e->type);
		ck_assert_uint_eq(e->epoch, 0);
		ck_assert_uint_eq(e->flags, c.cipher ? 1u : 0u);
		if (zero) {
			nzero++;
			ck_assert_uint_eq(e->wire_len, c.cipher ? 24 : 0);
			continue;
		}
		if (e->codec == 0) {
			nstored++;
			ck_assert_uint_eq(e->wire_len, len + (c.cipher ? 24u : 0u));
		} else {
			ck_assert_uint_eq(e->codec, 1);
			ck_assert_uint_gt(e->wire_len, c.cipher ? 24u : 0u);
			ck_assert_uint_lt(e->wire_len, len + (c.cipher ? 24u : 0u));
		}
		/* exact codec choice where the data decides it */
		if (!c.compress || p == P_RANDOM || len == 1)
			ck_assert_msg(e->codec == 0, "%s: record %zu compressed", what, i + 1);
		else if (p == P_TEXT || p == P_SPARSE)
			ck_assert_msg(e->codec == 1, "%s: record %zu stored", what, i + 1);
	}
	ck_assert_uint_eq(r.ev[nchunks + 1].type, VMS_REC_DEVICE_END);
	ck_assert_uint_eq(r.ev[nchunks + 1].a, n);
	ck_assert_uint_eq(r.ev[nchunks + 1].b, tu_xxh3(data, n));
	ck_assert_uint_eq(r.ev[nchunks + 2].type, VMS_REC_EOS);
	ck_assert_uint_eq(r.ev[nchunks + 2].a, nchunks + 2);
	ck_assert_uint_eq(r.ev[nchunks + 2].b, n);
	if (p == P_ZEROS)
		ck_assert_uint_eq(nzero, nchunks);
	if (p == P_RANDOM)
		ck_assert_uint_eq(nstored, nchunks);
	/* both sides count the same */
	ck_assert_uint_eq(ws.raw_bytes, n);
	ck_assert_uint_eq(ws.wire_bytes, sn);
	ck_assert_uint_eq(ws.records, nchunks + 3);
	ck_assert_uint_eq(ws.zero_records, nzero);
	ck_assert_uint_eq(ws.data_records, nchunks - nzero);
	ck_assert_uint_eq(ws.stored_records, nstored);
	ck_assert_uint_eq(ws.threads, wt);
	ck_assert_uint_eq(r.st.raw_bytes, n);
	ck_assert_uint_eq(r.st.wire_bytes, sn);
	ck_assert_uint_eq(r.st.records, nchunks + 3);
	ck_assert_uint_eq(r.st.zero_records, nzero);
	ck_assert_uint_eq(r.st.stored_records, nstored);
	ck_assert_uint_eq(r.st.threads, rt);
	tu_run_free(&r);
	free(s);
}

START_TEST(test_matrix)
{
	/* _i = compressor * 3 + cipher */
	int ci = _i / 3, ki = _i % 3;

	for (int p = 0; p < P_CHUNKMIX; p++) {
		uint8_t *data = make_data((enum profile)p, MAX_SIZE, CHUNK);

		for (size_t s = 0; s < NSIZES; s++)
			run_cell(ci, ki, (enum profile)p, sizes[s], 0, 0, data);
		/* workers on both sides, then on one side only */
		run_cell(ci, ki, (enum profile)p, CHUNK + 1, 2, 2, data);
		run_cell(ci, ki, (enum profile)p, MAX_SIZE, 2, 2, data);
		if ((p + _i) % 2)
			run_cell(ci, ki, (enum profile)p, MAX_SIZE, 2, 0, data);
		else
			run_cell(ci, ki, (enum profile)p, MAX_SIZE, 0, 2, data);
		free(data);
	}
}
END_TEST

START_TEST(test_many_chunks_threads)
{
	/* A longer stream through many more slots than workers, all four thread
	 * pairs, one device interleaved with a second. */
	static const uint32_t wt[] = { 0, 2, 2, 0, 4 }, rt[] = { 0, 2, 0, 2, 4 };
	struct wcfg c = { .compress = _i % 2 ? "zstd:1" : NULL,
			  .cipher = _i % 3 ? VMS_CIPHER_CHACHA20_POLY1305 : 0,
			  .threads = wt[_i], .chunk = SMALL_CHUNK };
	const size_t n = 300 * SMALL_CHUNK + 77;
	uint8_t *data = make_data(P_MIXED, n, SMALL_CHUNK), *s;
	struct vms_stats ws;
	struct tu_run r;
	size_t sn;

	s = write_stream(&c, data, n, &sn, &ws);
	read_stream(s, sn, c.cipher, rt[_i], 0, &r);
	ck_assert_msg(r.err == 0, "%s", r.msg);
	ck_assert_uint_eq(r.dev[0].n, n);
	ck_assert_mem_eq(r.dev[0].p, data, n);
	ck_assert_uint_eq(r.nev, 301 + 3);
	for (size_t i = 0; i < r.nev; i++)
		ck_assert_uint_eq(r.ev[i].seq, i);
	tu_run_free(&r);
	free(s);
	free(data);
}
END_TEST

/* ---- determinism ----------------------------------------------------------------------- */

START_TEST(test_deterministic_across_threads)
{
	/* _i = level * 2 + cipher; every profile. Fixed level, fixed stream id
	 * and salt: the bytes must not depend on the number of threads. */
	static const char *const levels[] = { "zstd:1", "zstd:-5", "zstd:9", NULL };
	struct wcfg c = { .compress = levels[_i / 2],
			  .cipher = _i % 2 ? VMS_CIPHER_AES_256_GCM : VMS_CIPHER_NONE };
	const size_t n = 12 * CHUNK + 5;

	for (int p = 0; p < P_COUNT; p++) {
		uint8_t *data = make_data((enum profile)p, n, CHUNK), *s0;
		size_t n0;

		c.threads = 0;
		s0 = write_stream(&c, data, n, &n0, NULL);
		/* a scheduling-dependent difference may hide in one run: several */
		for (int rep = 0; rep < 3; rep++) {
			for (uint32_t t = 2; t <= 4; t += 2) {
				size_t nt;
				uint8_t *st;

				c.threads = t;
				st = write_stream(&c, data, n, &nt, NULL);
				ck_assert_msg(n0 == nt && memcmp(s0, st, n0) == 0,
					      "compress=%s cipher=%u profile=%s: threads 0 and %u give "
					      "different streams (%zu vs %zu bytes, run %d)",
					      c.compress ? c.compress : "none", c.cipher, profile_name[p],
					      t, n0, nt, rep + 1);
				free(st);
			}
		}
		free(s0);
		free(data);
	}
}
END_TEST

/* ---- memory budget ------------------------------------------------------------------------ */

static int try_writer(const struct wcfg *c, struct vms_stats *st, size_t *written)
{
	struct vms_writer_opts o;
	struct vms_writer *w = NULL;
	int fd = tu_memfd_new();
	uint8_t *b;
	int rc;

	wopts(c, &o);
	rc = vms_writer_open_fd(&w, fd, &o);
	if (rc == 0) {
		memset(st, 0, sizeof(*st));
		st->size = sizeof(*st);
		ck_assert_int_eq(vms_writer_stats(w, st), 0);
		vms_writer_free(w);
	} else {
		ck_assert_ptr_null(w);
	}
	b = tu_memfd_get(fd, written);
	free(b);
	close(fd);
	return rc;
}

START_TEST(test_memory_budget_too_small)
{
	/* _i: threads 0 / 2 x compress none / zstd */
	struct wcfg c = { .threads = (uint32_t)(_i % 2) * 2, .compress = _i / 2 ? "zstd:1" : NULL,
			  .memory = 4096 };
	struct vms_stats st;
	size_t written = 99;

	ck_assert_int_eq(try_writer(&c, &st, &written), VMS_EINVAL);
	ck_assert_ptr_nonnull(strstr(vms_last_error(), "memory budget"));
	/* a bad option is refused before anything reaches the sink */
	ck_assert_msg(written == 0, "%zu bytes (the preamble) written before the budget was "
				    "checked", written);
}
END_TEST

START_TEST(test_memory_budget_reader_too_small)
{
	struct wcfg c = { .chunk = CHUNK };
	uint8_t *data = make_data(P_TEXT, 3 * CHUNK, CHUNK), *s;
	struct tu_run r;
	size_t sn;

	s = write_stream(&c, data, 3 * CHUNK, &sn, NULL);
	/* the reader does not accept the stream's chunk cap within its budget:
	 * a refusal of the stream at its preamble (FORMAT.md preamble rule 22),
	 * like max_chunk, not an option error */
	for (uint32_t t = 0; t <= 2; t += 2) {
		ck_assert_int_eq(read_stream(s, sn, 0, t, 4096, &r), VMS_ELENGTH);
		ck_assert_int_eq(r.open_err, VMS_ELENGTH);
		ck_assert_uint_eq(r.nev, 0);
		ck_assert_msg(strncmp(r.msg, "preamble at byte 0: ", 20) == 0, "%s", r.msg);
		ck_assert_ptr_nonnull(strstr(r.msg, "memory budget"));
		tu_run_free(&r);
	}
	free(s);
	free(data);
}
END_TEST

/* Smallest budget (multiple of 1 KiB) a writer/reader accepts. */
static uint64_t min_writer_budget(struct wcfg c)
{
	uint64_t lo = 1024, hi = 64ull << 20;
	struct vms_stats st;
	size_t written;

	while (lo < hi) {
		uint64_t mid = (lo + hi) / 2 / 1024 * 1024;

		if (mid < lo)
			mid = lo;
		c.memory = mid;
		if (try_writer(&c, &st, &written) == 0)
			hi = mid;
		else
			lo = mid + 1024;
	}
	return lo;
}

START_TEST(test_memory_budget_respected)
{
	/* _i: threads {0, 2} x compress {none, zstd:1} x cipher {none, aes} */
	struct wcfg c = { .threads = (uint32_t)(_i % 2) * 2, .compress = _i / 2 % 2 ? "zstd:1" : NULL,
			  .cipher = _i / 4 ? VMS_CIPHER_AES_256_GCM : 0 };
	static const uint64_t budgets[] = { 256u << 10, 1u << 20, 4u << 20, 0 };
	uint8_t *data = make_data(P_MIXED, 9 * CHUNK + 3, CHUNK), *ref, *s;
	struct vms_stats st;
	struct tu_run r;
	uint64_t minb;
	size_t refn, sn, written;

	for (size_t i = 0; i < sizeof(budgets) / sizeof(budgets[0]); i++) {
		c.memory = budgets[i];
		if (try_writer(&c, &st, &written) != 0) {
			ck_assert_msg(budgets[i] && budgets[i] < (1u << 20),
				      "budget %llu refused", (unsigned long long)budgets[i]);
			continue;
		}
		ck_assert_uint_gt(st.memory, 0);
		ck_assert_msg(st.memory <= (budgets[i] ? budgets[i] : VMS_MEMORY_DEFAULT),
			      "writer memory %llu over the budget %llu",
			      (unsigned long long)st.memory, (unsigned long long)budgets[i]);
	}
	/* the smallest accepted budget: respected, and the stream still flows
	 * (through the fewest slots) and equals the one with the default */
	minb = min_writer_budget(c);
	c.memory = minb - 1024;
	ck_assert_int_eq(try_writer(&c, &st, &written), VMS_EINVAL);
	c.memory = minb;
	ck_assert_int_eq(try_writer(&c, &st, &written), 0);
	ck_assert_uint_le(st.memory, minb);
	s = write_stream(&c, data, 9 * CHUNK + 3, &sn, &st);
	ck_assert_uint_le(st.memory, minb);
	c.memory = 0;
	ref = write_stream(&c, data, 9 * CHUNK + 3, &refn, NULL);
	if (!c.compress || c.threads == 0) /* same bytes whatever the slot count */
		ck_assert(sn == refn && memcmp(s, ref, sn) == 0);
	/* reader: small budgets too */
	for (uint64_t b = 128u << 10; b <= (2u << 20); b *= 2) {
		int rc = read_stream(s, sn, c.cipher, c.threads, b, &r);

		if (rc == 0) {
			ck_assert_msg(r.st.memory <= b, "reader memory %llu over the budget %llu",
				      (unsigned long long)r.st.memory, (unsigned long long)b);
			ck_assert_mem_eq(r.dev[0].p, data, 9 * CHUNK + 3);
		} else {
			ck_assert_int_eq(rc, VMS_ELENGTH); /* chunk cap not accepted */
			ck_assert_uint_lt(b, 1u << 20);
		}
		tu_run_free(&r);
	}
	free(ref);
	free(s);
	free(data);
}
END_TEST

START_TEST(test_thread_limits)
{
	struct wcfg c = { .threads = 65 };
	struct vms_stats st;
	size_t written;
	struct tu_run r;
	uint8_t *s, *data = make_data(P_TEXT, 100, CHUNK);
	size_t sn;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	ck_assert_int_eq(try_writer(&c, &st, &written), VMS_EINVAL);
	c.threads = VMS_THREADS_AUTO;
	ck_assert_int_eq(try_writer(&c, &st, &written), 0);
	ck_assert_uint_eq(st.threads, cpus > 64 ? 64 : (uint32_t)cpus);
	c.threads = 0;
	s = write_stream(&c, data, 100, &sn, NULL);
	ck_assert_int_eq(read_stream(s, sn, 0, 65, 0, &r), VMS_EINVAL);
	tu_run_free(&r);
	ck_assert_int_eq(read_stream(s, sn, 0, VMS_THREADS_AUTO, 0, &r), 0);
	ck_assert_uint_eq(r.st.threads, cpus > 64 ? 64 : (uint32_t)cpus);
	tu_run_free(&r);
	free(s);
	free(data);
}
END_TEST

/* ---- abort ------------------------------------------------------------------------------ */

START_TEST(test_abort)
{
	/* _i: writer threads x reader threads */
	uint32_t wt = (uint32_t)(_i / 2) * 2, rt = (uint32_t)(_i % 2) * 2;
	struct wcfg c = { .threads = wt, .chunk = SMALL_CHUNK, .compress = "zstd:1",
			  .cipher = _i == 3 ? VMS_CIPHER_AES_256_GCM : 0 };
	struct vms_writer_opts o;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_writer *w;
	uint8_t *data = make_data(P_TEXT, 5 * SMALL_CHUNK / 2, SMALL_CHUNK), *s;
	int fd = tu_memfd_new();
	struct tu_run r;
	size_t sn;

	wopts(&c, &o);
	ck_assert_int_eq(vms_writer_open_fd(&w, fd, &o), 0);
	d.name = "dev";
	ck_assert_int_eq(vms_writer_begin_device(w, &d, NULL), 0);
	ck_assert_int_eq(vms_writer_write(w, 0, data, 5 * SMALL_CHUNK / 2), 0);
	ck_assert_int_eq(vms_writer_abort(w, VMS_EDEVIO, "disk gone"), 0);
	/* the writer is failed for good */
	ck_assert_int_eq(vms_writer_write(w, 0, data, 10), VMS_ECANCELED);
	ck_assert_int_eq(vms_writer_end_device(w, 0), VMS_ECANCELED);
	ck_assert_int_eq(vms_writer_finish(w), VMS_ECANCELED);
	ck_assert_int_eq(vms_writer_abort(w, VMS_EDEVIO, "again"), VMS_ESTATE);
	vms_writer_free(w);
	s = tu_memfd_get(fd, &sn);
	close(fd);

	read_stream(s, sn, c.cipher, rt, 0, &r);
	ck_assert_int_eq(r.err, VMS_EPEERABORT);
	ck_assert_int_eq(r.again, VMS_EPEERABORT);
	ck_assert_ptr_nonnull(strstr(r.msg, "disk gone"));
	/* BEGIN, the two full chunks; the partial one is not sent; ABORT last */
	ck_assert_uint_eq(r.nev, 4);
	ck_assert_uint_eq(r.ev[1].type, VMS_REC_DATA);
	ck_assert_uint_eq(r.ev[2].type, VMS_REC_DATA);
	ck_assert_uint_eq(r.ev[3].type, VMS_REC_ABORT);
	ck_assert_int_eq((int64_t)r.ev[3].a, VMS_EDEVIO);
	ck_assert_str_eq(r.ev[3].text, "disk gone");
	ck_assert_uint_eq(r.dev[0].n, 2 * SMALL_CHUNK);
	ck_assert_mem_eq(r.dev[0].p, data, 2 * SMALL_CHUNK);
	tu_run_free(&r);

	/* records after the ABORT are never delivered */
	if (!c.cipher) {
		struct tu_ed ed;
		uint8_t *bad;
		size_t nbad;

		ck_assert_int_eq(tu_ed_parse(&ed, s, sn), 0);
		ck_assert_uint_eq(ed.n, 4);
		tu_ed_insert(&ed, 4, &ed.r[2].h, ed.r[2].pl, ed.r[2].pl_len);
		ed.r[4].h.seq = 4;
		ed.r[4].h.offset = 2 * SMALL_CHUNK;
		bad = tu_ed_build(&ed, &nbad);
		read_stream(bad, nbad, 0, rt, 0, &r);
		ck_assert_int_eq(r.err, VMS_EPEERABORT);
		ck_assert_uint_eq(r.nev, 4);
		ck_assert_uint_eq(r.dev[0].n, 2 * SMALL_CHUNK);
		tu_run_free(&r);
		free(bad);
		tu_ed_free(&ed);
	}
	free(s);
	free(data);
}
END_TEST

START_TEST(test_abort_long_text)
{
	struct wcfg c = { .threads = 2, .chunk = SMALL_CHUNK };
	struct vms_writer_opts o;
	struct vms_writer *w;
	char text[2001];
	int fd = tu_memfd_new();
	struct tu_run r;
	uint8_t *s;
	size_t sn;

	memset(text, 'x', 2000);
	text[2000] = '\0';
	wopts(&c, &o);
	ck_assert_int_eq(vms_writer_open_fd(&w, fd, &o), 0);
	ck_assert_int_eq(vms_writer_abort(w, VMS_ETIMEOUT, text), 0);
	vms_writer_free(w);
	s = tu_memfd_get(fd, &sn);
	close(fd);
	read_stream(s, sn, 0, 0, 0, &r);
	ck_assert_int_eq(r.err, VMS_EPEERABORT);
	ck_assert_uint_eq(r.nev, 1);
	ck_assert_int_eq((int64_t)r.ev[0].a, VMS_ETIMEOUT);
	ck_assert_uint_eq(strlen(r.ev[0].text), 1024);
	tu_run_free(&r);
	free(s);
}
END_TEST

/* ---- a sink that fails --------------------------------------------------------------------- */

START_TEST(test_sink_epipe)
{
	/* _i: writer threads 0 / 2 */
	struct wcfg c = { .threads = (uint32_t)_i * 2, .chunk = CHUNK };
	struct vms_writer_opts o;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_writer *w;
	uint8_t *data = make_data(P_RANDOM, 1u << 20, CHUNK);
	int p[2], rc = 0;
	size_t written = 0;

	ck_assert(signal(SIGPIPE, SIG_IGN) != SIG_ERR);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	wopts(&c, &o);
	ck_assert_int_eq(vms_writer_open_fd(&w, p[1], &o), 0); /* preamble fits the pipe */
	d.name = "dev";
	ck_assert_int_eq(vms_writer_begin_device(w, &d, NULL), 0);
	close(p[0]);
	while (written < (256u << 20)) {
		rc = vms_writer_write(w, 0, data, 1u << 20);
		if (rc)
			break;
		written += 1u << 20;
	}
	ck_assert_msg(rc == VMS_ESINK, "got %d (%s) after %zu bytes", rc,
		      vms_errname(rc) ? vms_errname(rc) : "?", written);
	ck_assert_ptr_nonnull(strstr(vms_last_error(), "write failed"));
	/* sticky */
	ck_assert_int_eq(vms_writer_write(w, 0, data, 10), VMS_ESINK);
	ck_assert_int_eq(vms_writer_end_device(w, 0), VMS_ESINK);
	ck_assert_int_eq(vms_writer_finish(w), VMS_ESINK);
	vms_writer_free(w);
	close(p[1]);
	free(data);
}
END_TEST

START_TEST(test_sink_epipe_at_open)
{
	struct wcfg c = { .threads = (uint32_t)_i * 2 };
	struct vms_writer_opts o;
	struct vms_writer *w = (void *)1;
	int p[2];

	ck_assert(signal(SIGPIPE, SIG_IGN) != SIG_ERR);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	wopts(&c, &o);
	ck_assert_int_eq(vms_writer_open_fd(&w, p[1], &o), VMS_ESINK);
	ck_assert_ptr_null(w);
	close(p[1]);
}
END_TEST

START_TEST(test_sink_bad_fd)
{
	/* a read-only fd: write() fails with EBADF -> VMS_EIO */
	struct wcfg c = { .threads = (uint32_t)_i * 2 };
	struct vms_writer_opts o;
	struct vms_writer *w = (void *)1;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	wopts(&c, &o);
	ck_assert_int_eq(vms_writer_open_fd(&w, fd, &o), VMS_EIO);
	ck_assert_ptr_null(w);
	close(fd);
}
END_TEST

/* ---- freeing mid-stream ------------------------------------------------------------------------ */

START_TEST(test_writer_free_mid_stream)
{
	/* _i 0: partial chunk pending; 1: an acquired buffer outstanding;
	 * 2: right after open; 3: after a few full chunks, compress + cipher */
	struct wcfg c = { .threads = 2, .chunk = SMALL_CHUNK,
			  .compress = _i == 3 ? "zstd:1" : NULL,
			  .cipher = _i == 3 ? VMS_CIPHER_AES_256_GCM : 0 };
	struct vms_writer_opts o;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_writer *w;
	uint8_t *data = make_data(P_MIXED, 200 * SMALL_CHUNK, SMALL_CHUNK), *s;
	int fd = tu_memfd_new();
	struct tu_run r;
	size_t sn;

	wopts(&c, &o);
	ck_assert_int_eq(vms_writer_open_fd(&w, fd, &o), 0);
	if (_i != 2) {
		d.name = "dev";
		ck_assert_int_eq(vms_writer_begin_device(w, &d, NULL), 0);
		ck_assert_int_eq(vms_writer_write(w, 0, data, 200 * SMALL_CHUNK - 100), 0);
	}
	if (_i == 1) {
		void *buf;
		size_t room;

		ck_assert_int_eq(vms_writer_acquire(w, 0, &buf, &room), 0);
		memset(buf, 1, room);
	}
	vms_writer_free(w); /* must return, leak nothing (ASan), race nothing (TSan) */
	s = tu_memfd_get(fd, &sn);
	close(fd);
	/* what was written is a prefix of a stream, never completed behind the
	 * caller's back */
	read_stream(s, sn, c.cipher, 0, 0, &r);
	ck_assert_int_eq(r.err, VMS_ETRUNCATED);
	for (size_t i = 0; i < r.nev; i++)
		ck_assert_uint_ne(r.ev[i].type, VMS_REC_EOS);
	ck_assert_uint_le(r.dev[0].n, 200 * SMALL_CHUNK - 100);
	if (r.dev[0].n)
		ck_assert_mem_eq(r.dev[0].p, data, r.dev[0].n);
	tu_run_free(&r);
	free(s);
	free(data);
}
END_TEST

START_TEST(test_reader_free_mid_stream)
{
	/* _i: events read before the free: 0, 1, 5, 150; a ring that is full
	 * (input thread blocked on a slot) is the interesting case */
	static const size_t take[] = { 0, 1, 5, 150 };
	struct wcfg c = { .threads = 0, .chunk = SMALL_CHUNK, .compress = "zstd:1",
			  .cipher = VMS_CIPHER_CHACHA20_POLY1305 };
	uint8_t *data = make_data(P_MIXED, 300 * SMALL_CHUNK, SMALL_CHUNK), *s;
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;
	struct vms_reader *rd;
	struct vms_event ev = VMS_EVENT_INIT;
	int fd = tu_memfd_new();
	size_t sn;

	s = write_stream(&c, data, 300 * SMALL_CHUNK, &sn, NULL);
	tu_memfd_set(fd, s, sn);
	o.key = KEY;
	o.threads = 2;
	ck_assert_int_eq(vms_reader_open_fd(&rd, fd, &o), 0);
	for (size_t i = 0; i < take[_i]; i++)
		ck_assert_int_eq(vms_reader_next(rd, &ev), 1);
	/* the input thread has filled every slot it can and waits for one */
	ck_assert(tu_wait_quiescent(TU_WAIT_MS));
	vms_reader_free(rd);
	close(fd);
	free(s);
	free(data);
}
END_TEST

/* Run fn(arg) on a helper thread; return true if it finished within ms. */
struct timed {
	void (*fn)(void *);
	void *arg;
};

static void *timed_main(void *p)
{
	struct timed *t = p;

	t->fn(t->arg);
	return NULL;
}

static bool finishes_within(void (*fn)(void *), void *arg, int ms)
{
	struct timed t = { fn, arg };
	struct timespec dl;
	pthread_t th;

	ck_assert_int_eq(pthread_create(&th, NULL, timed_main, &t), 0);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	if (pthread_timedjoin_np(th, NULL, &dl) != 0) {
		pthread_detach(th);
		return false;
	}
	return true;
}

static void free_reader(void *r)
{
	vms_reader_free(r);
}

static void free_writer(void *w)
{
	vms_writer_free(w);
}

START_TEST(test_reader_free_stalled_pipe)
{
	/* The peer sent part of a stream and then went quiet without closing:
	 * the reader's input thread waits in read(). Giving up on the peer
	 * (freeing the reader) must still return. */
	struct wcfg c = { .chunk = SMALL_CHUNK };
	uint8_t *data = make_data(P_TEXT, 10 * SMALL_CHUNK, SMALL_CHUNK), *s;
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;
	struct vms_reader *rd;
	struct vms_event ev = VMS_EVENT_INIT;
	struct tu_ed ed;
	size_t sn, part;
	int p[2], left = -1;

	s = write_stream(&c, data, 10 * SMALL_CHUNK, &sn, NULL);
	ck_assert_int_eq(tu_ed_parse(&ed, s, sn), 0);
	part = ed.r[3].pos; /* preamble and records 0..2 */
	tu_ed_free(&ed);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(write(p[1], s, part), (ssize_t)part);
	o.threads = 2;
	ck_assert_int_eq(vms_reader_open_fd(&rd, p[0], &o), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(vms_reader_next(rd, &ev), 1);
	/* the input thread has read all there is and waits for more */
	ck_assert(tu_wait_quiescent(TU_WAIT_MS));
	ck_assert_int_eq(ioctl(p[0], FIONREAD, &left), 0);
	ck_assert_int_eq(left, 0);
	/* (a bound on a hang: returning at all is what is under test) */
	ck_assert_msg(finishes_within(free_reader, rd, TU_WAIT_MS),
		      "vms_reader_free() did not return within %d s: its input thread waits "
		      "forever in read() on a pipe whose writer is idle", TU_WAIT_MS / 1000);
	close(p[0]);
	close(p[1]);
	free(s);
	free(data);
}
END_TEST

START_TEST(test_writer_free_stalled_pipe)
{
	/* The reader of the pipe stopped reading: the writer's output thread
	 * waits in write(). Giving up (freeing the writer) must still return. */
	struct wcfg c = { .threads = 2, .chunk = SMALL_CHUNK };
	uint8_t *data = make_data(P_RANDOM, 4 * SMALL_CHUNK, SMALL_CHUNK);
	struct vms_writer_opts o;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_writer *w;
	int p[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(fcntl(p[1], F_SETPIPE_SZ, 4096), 4096);
	wopts(&c, &o);
	ck_assert_int_eq(vms_writer_open_fd(&w, p[1], &o), 0);
	d.name = "dev";
	ck_assert_int_eq(vms_writer_begin_device(w, &d, NULL), 0);
	/* 4 records: more than the pipe holds, fewer than the ring's slots */
	ck_assert_int_eq(vms_writer_write(w, 0, data, 4 * SMALL_CHUNK), 0);
	/* the output thread has filled the pipe (it takes no more) and waits
	 * for room */
	ck_assert(tu_wait_quiescent(TU_WAIT_MS));
	ck_assert(!(tu_wait_fd(p[1], POLLOUT, 0) & POLLOUT));
	/* (a bound on a hang: returning at all is what is under test) */
	ck_assert_msg(finishes_within(free_writer, w, TU_WAIT_MS),
		      "vms_writer_free() did not return within %d s: its output thread waits "
		      "forever in write() on a pipe nobody reads", TU_WAIT_MS / 1000);
	close(p[0]);
	close(p[1]);
	free(data);
}
END_TEST

static Suite *pipeline_suite(void)
{
	Suite *s = suite_create("pipeline");
	TCase *tc;

	tc = tcase_create("matrix");
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_matrix, 0, 15);
	tcase_add_loop_test(tc, test_many_chunks_threads, 0, 5);
	suite_add_tcase(s, tc);

	tc = tcase_create("determinism");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_deterministic_across_threads, 0, 8);
	suite_add_tcase(s, tc);

	tc = tcase_create("memory");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_memory_budget_too_small, 0, 4);
	tcase_add_test(tc, test_memory_budget_reader_too_small);
	tcase_add_loop_test(tc, test_memory_budget_respected, 0, 8);
	tcase_add_test(tc, test_thread_limits);
	suite_add_tcase(s, tc);

	tc = tcase_create("failures");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_abort, 0, 4);
	tcase_add_test(tc, test_abort_long_text);
	tcase_add_loop_test(tc, test_sink_epipe, 0, 2);
	tcase_add_loop_test(tc, test_sink_epipe_at_open, 0, 2);
	tcase_add_loop_test(tc, test_sink_bad_fd, 0, 2);
	tcase_add_loop_test(tc, test_writer_free_mid_stream, 0, 4);
	tcase_add_loop_test(tc, test_reader_free_mid_stream, 0, 4);
	tcase_add_test(tc, test_reader_free_stalled_pipe);
	tcase_add_test(tc, test_writer_free_stalled_pipe);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pipeline_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
