/* SPDX-License-Identifier: MIT */
/*
 * Stages: the registry (built-ins, third-party codecs, the freeze), a custom
 * codec round-tripped through writer and reader, the zero filter, and zstd
 * (level parsing, incompressible data, hostile frames).
 *
 * The registry is process-wide and freezes at the first writer/reader open,
 * so every test here needs a fresh process: main() forces CK_FORK whatever
 * the environment says, and tests that need two registries (a writer that
 * registered a codec and a reader that did not) fork once more themselves.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <zstd.h>

#include "testutil.h"
#include "stage/stage.h"

#define CHUNK 4096u
#define TRLE_ID 200
#define TRLE_LEVEL_DEFAULT 3

/* ---- helpers ------------------------------------------------------------- */

/* Text-like bytes: words from a small dictionary, so zstd (and RLE, a bit)
 * compress them. Deterministic in seed. */
static void fill_text(uint8_t *p, size_t n, uint64_t seed)
{
	static const char *const words[] = { "device ", "state ", "migration ", "vfio ",
					     "the ", "region ", "0x1000 ", "page\n", "dirty ",
					     "bitmap ", "queue ", "ring " };
	size_t o = 0;
	uint64_t x = seed * 2654435761u + 1;

	while (o < n) {
		const char *w;
		size_t k;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		w = words[(x >> 33) % (sizeof(words) / sizeof(words[0]))];
		k = strlen(w);
		if (k > n - o)
			k = n - o;
		memcpy(p + o, w, k);
		o += k;
	}
}

/* Runs of equal bytes (what the test RLE codec shrinks). */
static void fill_runs(uint8_t *p, size_t n, uint64_t seed)
{
	size_t o = 0;
	uint8_t b = (uint8_t)(seed | 1);

	while (o < n) {
		size_t k = 17 + (o / 7) % 200;

		if (k > n - o)
			k = n - o;
		memset(p + o, b, k);
		b = (uint8_t)(b * 37 + 11);
		if (b == 0)
			b = 1;
		o += k;
	}
}

struct wr {
	const char *compress;
	uint32_t threads;
	uint32_t flags;
	uint32_t chunk;
};

/* Write one device "d0" holding data[0..n) in pieces of `piece` bytes; return
 * the stream bytes (ck_assert on any failure). */
static uint8_t *write_one(const struct wr *s, const uint8_t *data, size_t n, size_t piece,
			  size_t *out_len, struct vms_stats *st)
{
	static const uint8_t sid[16] = "check_stages sid";
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_writer *w;
	uint32_t idx = 99;
	int fd = tu_memfd_new();
	uint8_t *out;
	int rc;

	o.chunk_size = s->chunk ? s->chunk : CHUNK;
	o.compress = s->compress;
	o.threads = s->threads;
	o.flags = s->flags;
	o.stream_id = sid;
	o.creator = "";
	rc = vms_writer_open_fd(&w, fd, &o);
	ck_assert_msg(rc == 0, "writer open (%s): %s", s->compress ? s->compress : "none",
		      vms_last_error());
	d.name = "d0";
	ck_assert_int_eq(vms_writer_begin_device(w, &d, &idx), 0);
	ck_assert_uint_eq(idx, 0);
	for (size_t off = 0; off < n;) {
		size_t k = n - off < piece ? n - off : piece;

		rc = vms_writer_write(w, 0, data + off, k);
		ck_assert_msg(rc == 0, "write: %s", vms_last_error());
		off += k;
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
	out = tu_memfd_get(fd, out_len);
	close(fd);
	return out;
}

static int read_buf(const uint8_t *buf, size_t n, uint32_t threads, struct tu_run *r)
{
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;
	int fd = tu_memfd_new();
	int rc;

	o.threads = threads;
	tu_memfd_set(fd, buf, n);
	rc = tu_run_fd(fd, &o, r);
	close(fd);
	return rc;
}

/* A stream with no device, built without the writer (which would freeze the
 * registry): preamble and EOS only. */
static uint8_t *hand_empty_stream(size_t *len)
{
	struct vms_preamble p = { 0 };
	struct vms_rec_hdr h = { 0 };
	uint8_t *buf = tu_xmalloc(VMS_PREAMBLE_MAX + VMS_HDR_LEN + 24);
	uint8_t body[24];
	const char *why = "";
	size_t plen;

	p.major = 1;
	p.chunk_cap = CHUNK;
	p.lanes = 1;
	p.size_hint = UINT64_MAX;
	memcpy(p.stream_id, "hand-made stream", 16);
	if (vms_preamble_encode(&p, buf, VMS_PREAMBLE_MAX, &plen, &why) != 0)
		tu_die("preamble encode: %s", why);
	h.type = VMS_REC_EOS;
	h.device = VMS_DEVICE_NONE;
	h.raw_len = (uint32_t)vms_eos_encode(0, 0, 0, body);
	h.wire_len = h.raw_len;
	h.payload_sum = tu_xxh3(body, sizeof(body));
	vms_hdr_encode(&h, buf + plen);
	memcpy(buf + plen + VMS_HDR_LEN, body, sizeof(body));
	*len = plen + VMS_HDR_LEN + sizeof(body);
	return buf;
}

/* Run fn in a child process (its own registry) and return its exit code. */
static int in_child(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		tu_die("fork: %s", strerror(errno));
	if (pid == 0)
		_exit(fn(arg));
	if (waitpid(pid, &status, 0) != pid)
		tu_die("waitpid: %s", strerror(errno));
	if (!WIFEXITED(status))
		return 1000 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return WEXITSTATUS(status);
}

/* ---- the test codec: "test-rle" ------------------------------------------- */
/*
 * Output: one byte holding the context's level (so the level a spec such as
 * "test-rle:7" chose is visible on the wire), then (count 1..255, byte)
 * pairs. Contexts remember the first thread that used them, so a context
 * shared between threads is detected.
 */

static atomic_int trle_ctx_live;     /* ctx_new minus ctx_free */
static atomic_int trle_ctx_created;
static atomic_int trle_shared;       /* a context was used by two threads */
static atomic_int trle_last_level;   /* conf->level of the last ctx_new */
static atomic_int trle_apply_calls;

struct trle_ctx {
	int level;
	bool have_owner;
	pthread_t owner;
};

static int trle_ctx_new(void **ctx, const struct vms_stage_conf *conf)
{
	struct trle_ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return VMS_ENOMEM;
	c->level = conf->level;
	atomic_store(&trle_last_level, conf->level);
	atomic_fetch_add(&trle_ctx_live, 1);
	atomic_fetch_add(&trle_ctx_created, 1);
	*ctx = c;
	return 0;
}

static void trle_ctx_free(void *ctx)
{
	if (!ctx)
		return;
	atomic_fetch_sub(&trle_ctx_live, 1);
	free(ctx);
}

static void trle_owner(struct trle_ctx *c)
{
	if (!c->have_owner) {
		c->owner = pthread_self();
		c->have_owner = true;
	} else if (!pthread_equal(c->owner, pthread_self())) {
		atomic_store(&trle_shared, 1);
	}
}

static size_t trle_bound(size_t n)
{
	return 1 + 2 * n;
}

static int trle_apply(void *ctx, struct vms_stage_io *io)
{
	struct trle_ctx *c = ctx;
	const uint8_t *s = io->src;
	uint8_t *d = io->dst;
	size_t o = 1;

	trle_owner(c);
	atomic_fetch_add(&trle_apply_calls, 1);
	if (io->dst_cap < 1)
		return VMS_EINVAL;
	d[0] = (uint8_t)c->level;
	for (size_t i = 0; i < io->src_len;) {
		size_t k = 1;

		while (i + k < io->src_len && k < 255 && s[i + k] == s[i])
			k++;
		if (o + 2 >= io->src_len || o + 2 > io->dst_cap)
			return VMS_STAGE_SKIP; /* would not shrink */
		d[o++] = (uint8_t)k;
		d[o++] = s[i];
		i += k;
	}
	io->dst_len = o;
	return VMS_STAGE_DONE;
}

static int trle_invert(void *ctx, struct vms_stage_io *io)
{
	const uint8_t *s = io->src;
	uint8_t *d = io->dst;
	size_t o = 0;

	trle_owner(ctx);
	if (io->src_len < 1 || (io->src_len - 1) % 2 != 0 || s[0] < 1 || s[0] > 9)
		return VMS_EDECOMPRESS;
	for (size_t i = 1; i < io->src_len; i += 2) {
		size_t k = s[i];

		if (k == 0 || k > io->raw_len - o || k > io->dst_cap - o)
			return VMS_EDECOMPRESS;
		memset(d + o, s[i + 1], k);
		o += k;
	}
	if (o != io->raw_len)
		return VMS_EDECOMPRESS;
	io->dst_len = o;
	return 0;
}

#define TRLE_STAGE(nm, wire_id)                                                       \
	{                                                                             \
		.size = sizeof(struct vms_stage), .name = (nm), .kind = VMS_STAGE_CODEC, \
		.id = (wire_id), .level_min = 1, .level_max = 9,                      \
		.level_default = TRLE_LEVEL_DEFAULT, .ctx_new = trle_ctx_new,         \
		.ctx_free = trle_ctx_free, .bound = trle_bound, .apply = trle_apply,  \
		.invert = trle_invert,                                                \
	}

static const struct vms_stage trle_stage = TRLE_STAGE("test-rle", TRLE_ID);
/* The same codec name under another private id (a different process's view). */
static const struct vms_stage trle_stage_201 = TRLE_STAGE("test-rle", 201);

/* Codecs that misbehave in ways the writer must absorb. */
static size_t copy_bound(size_t n)
{
	return n;
}

static int grow_apply(void *ctx, struct vms_stage_io *io)
{
	(void)ctx;
	/* "DONE" but no gain: the writer must store the chunk raw. */
	memcpy(io->dst, io->src, io->src_len);
	io->dst_len = io->src_len;
	return VMS_STAGE_DONE;
}

static int empty_apply(void *ctx, struct vms_stage_io *io)
{
	(void)ctx;
	(void)io;
	io->dst_len = 0; /* "DONE" with nothing: a 0-byte body is invalid */
	return VMS_STAGE_DONE;
}

static const struct vms_stage grow_stage = {
	.size = sizeof(struct vms_stage), .name = "test-grow", .kind = VMS_STAGE_CODEC,
	.id = 201, .ctx_new = trle_ctx_new, .ctx_free = trle_ctx_free, .bound = copy_bound,
	.apply = grow_apply, .invert = trle_invert,
};

static const struct vms_stage empty_stage = {
	.size = sizeof(struct vms_stage), .name = "test-empty", .kind = VMS_STAGE_CODEC,
	.id = 202, .ctx_new = trle_ctx_new, .ctx_free = trle_ctx_free, .bound = copy_bound,
	.apply = empty_apply, .invert = trle_invert,
};

/* ---- registry --------------------------------------------------------------- */

START_TEST(test_builtins_found)
{
	const struct vms_stage *z = vms_stage_find("zero"), *zs = vms_stage_find("zstd");
	const struct vms_stage *g = vms_stage_find("aes-256-gcm");
	const struct vms_stage *c = vms_stage_find("chacha20-poly1305");

	ck_assert_ptr_nonnull(z);
	ck_assert_ptr_nonnull(zs);
	ck_assert_ptr_nonnull(g);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(z->name, "zero");
	ck_assert_uint_eq(z->kind, VMS_STAGE_FILTER);
	ck_assert_uint_eq(z->id, 0);
	ck_assert_str_eq(zs->name, "zstd");
	ck_assert_uint_eq(zs->kind, VMS_STAGE_CODEC);
	ck_assert_uint_eq(zs->id, 1);
	ck_assert_int_eq(zs->level_min, -7);
	ck_assert_int_eq(zs->level_max, 19);
	ck_assert_int_eq(zs->level_default, 1);
	ck_assert_ptr_nonnull(zs->set_level);
	ck_assert_uint_eq(g->kind, VMS_STAGE_CIPHER);
	ck_assert_uint_eq(g->id, VMS_CIPHER_AES_256_GCM);
	ck_assert_uint_eq(c->kind, VMS_STAGE_CIPHER);
	ck_assert_uint_eq(c->id, VMS_CIPHER_CHACHA20_POLY1305);
	for (const struct vms_stage *const *p = (const struct vms_stage *const[]){ z, zs, g, c, NULL };
	     *p; p++) {
		ck_assert_uint_eq((*p)->size, sizeof(struct vms_stage));
		ck_assert_ptr_nonnull((*p)->ctx_new);
		ck_assert_ptr_nonnull((*p)->ctx_free);
		ck_assert_ptr_nonnull((*p)->bound);
		ck_assert_ptr_nonnull((*p)->apply);
		ck_assert_ptr_nonnull((*p)->invert);
	}

	ck_assert_ptr_eq(vms_stage_find_id(VMS_STAGE_FILTER, 0), z);
	ck_assert_ptr_eq(vms_stage_find_id(VMS_STAGE_CODEC, 1), zs);
	ck_assert_ptr_eq(vms_stage_find_id(VMS_STAGE_CIPHER, 1), g);
	ck_assert_ptr_eq(vms_stage_find_id(VMS_STAGE_CIPHER, 2), c);
	/* kind and id together: id 1 is zstd as a codec, AES-GCM as a cipher */
	ck_assert_ptr_null(vms_stage_find_id(VMS_STAGE_CODEC, 0));
	ck_assert_ptr_null(vms_stage_find_id(VMS_STAGE_CODEC, 2));
	ck_assert_ptr_null(vms_stage_find_id(VMS_STAGE_CIPHER, 0));
	ck_assert_ptr_null(vms_stage_find_id(VMS_STAGE_CIPHER, 3));
	ck_assert_ptr_null(vms_stage_find_id(VMS_STAGE_FILTER, 1));
	ck_assert_ptr_null(vms_stage_find_id(0, 1));
	ck_assert_ptr_null(vms_stage_find_id(VMS_STAGE_CODEC, TRLE_ID));

	ck_assert_ptr_null(vms_stage_find(NULL));
	ck_assert_ptr_null(vms_stage_find(""));
	ck_assert_ptr_null(vms_stage_find("ZSTD"));
	ck_assert_ptr_null(vms_stage_find("zstd "));
	ck_assert_ptr_null(vms_stage_find("test-rle"));
	ck_assert_ptr_null(vms_stage_find("none"));
	ck_assert_ptr_null(vms_stage_find("auto"));
}
END_TEST

/* One invalid stage description and what makes it invalid. */
struct bad_stage {
	const char *why;
	struct vms_stage st;
};

START_TEST(test_register_rejects)
{
	static const char name33[] = "abcdefghijklmnopqrstuvwxyz0123456";
	static struct vms_stage ok;
	struct bad_stage bad[40];
	size_t nbad = 0;

	ok = trle_stage;

#define BAD(text, field, value)                                                    \
	do {                                                                       \
		bad[nbad].why = (text);                                            \
		bad[nbad].st = trle_stage;                                         \
		bad[nbad].st.field = (value);                                      \
		nbad++;                                                            \
	} while (0)
	BAD("size 0", size, 0);
	BAD("size one short", size, (uint32_t)sizeof(struct vms_stage) - 1);
	BAD("kind filter", kind, VMS_STAGE_FILTER);
	BAD("kind cipher", kind, VMS_STAGE_CIPHER);
	BAD("kind 0", kind, 0);
	BAD("kind 4", kind, 4);
	BAD("name NULL", name, NULL);
	BAD("name empty", name, "");
	BAD("name uppercase", name, "Test-rle");
	BAD("name space", name, "test rle");
	BAD("name slash", name, "test/rle");
	BAD("name colon", name, "test:rle");
	BAD("name plus", name, "test+rle");
	BAD("name 33 bytes", name, name33);
	BAD("name non-ascii", name, "t\xc3\xa9st");
	BAD("id 0", id, 0);
	BAD("id 1 (zstd's)", id, 1);
	BAD("id 63", id, 63);
	BAD("id 255", id, 255);
	BAD("id 256", id, 256);
	BAD("id 0x100000c8", id, 0x100000c8u);
	BAD("no ctx_new", ctx_new, NULL);
	BAD("no ctx_free", ctx_free, NULL);
	BAD("no bound", bound, NULL);
	BAD("no apply", apply, NULL);
	BAD("no invert", invert, NULL);
	BAD("level_min > level_max", level_min, 10);
	BAD("level_max < level_min", level_max, 0);
	BAD("default below min", level_default, 0);
	BAD("default above max", level_default, 10);
#undef BAD

	ck_assert_int_eq(vms_stage_register(NULL), VMS_EINVAL);
	ck_assert_str_ne(vms_last_error(), "");
	for (size_t i = 0; i < nbad; i++) {
		int rc = vms_stage_register(&bad[i].st);

		ck_assert_msg(rc == VMS_EINVAL, "%s: got %d (%s), want VMS_EINVAL", bad[i].why, rc,
			      vms_errname(rc) ? vms_errname(rc) : "?");
		ck_assert_msg(strlen(vms_last_error()) > 0, "%s: no message", bad[i].why);
	}
	/* nothing of it was registered */
	ck_assert_ptr_null(vms_stage_find("test-rle"));
	for (uint32_t id = 0; id < 300; id++)
		if (id != 1)
			ck_assert_ptr_null(vms_stage_find_id(VMS_STAGE_CODEC, id));

	/* the limits themselves are fine */
	ok.name = "abcdefghijklmnopqrstuvwxyz012345"; /* 32 bytes */
	ok.id = 64;
	ck_assert_int_eq(vms_stage_register(&ok), 0);
	ck_assert_ptr_eq(vms_stage_find("abcdefghijklmnopqrstuvwxyz012345"), &ok);
	ck_assert_ptr_eq(vms_stage_find_id(VMS_STAGE_CODEC, 64), &ok);
	{
		static struct vms_stage hi;

		hi = trle_stage;
		hi.name = "a._-9";
		hi.id = 254;
		hi.level_min = hi.level_max = hi.level_default = -3; /* one level */
		hi.set_level = NULL; /* optional */
		ck_assert_int_eq(vms_stage_register(&hi), 0);
		ck_assert_ptr_eq(vms_stage_find_id(VMS_STAGE_CODEC, 254), &hi);
	}
}
END_TEST

START_TEST(test_register_duplicates)
{
	struct vms_stage same_name = trle_stage, same_id = trle_stage, as_zstd = trle_stage;
	struct vms_stage as_zero = trle_stage, as_gcm = trle_stage;

	ck_assert_int_eq(vms_stage_register(&trle_stage), 0);
	ck_assert_ptr_eq(vms_stage_find("test-rle"), &trle_stage);
	ck_assert_ptr_eq(vms_stage_find_id(VMS_STAGE_CODEC, TRLE_ID), &trle_stage);

	ck_assert_int_eq(vms_stage_register(&trle_stage), VMS_EINVAL);
	same_name.id = 201;
	ck_assert_int_eq(vms_stage_register(&same_name), VMS_EINVAL);
	same_id.name = "other";
	ck_assert_int_eq(vms_stage_register(&same_id), VMS_EINVAL);
	/* names of built-ins are taken whatever their kind */
	as_zstd.name = "zstd";
	as_zstd.id = 202;
	ck_assert_int_eq(vms_stage_register(&as_zstd), VMS_EINVAL);
	as_zero.name = "zero";
	as_zero.id = 203;
	ck_assert_int_eq(vms_stage_register(&as_zero), VMS_EINVAL);
	as_gcm.name = "aes-256-gcm";
	as_gcm.id = 204;
	ck_assert_int_eq(vms_stage_register(&as_gcm), VMS_EINVAL);

	ck_assert_ptr_eq(vms_stage_find("test-rle"), &trle_stage);
	ck_assert_ptr_null(vms_stage_find("other"));
	ck_assert_ptr_eq(vms_stage_find("zstd"), vms_stage_find_id(VMS_STAGE_CODEC, 1));
	ck_assert_str_eq(vms_stage_find("zero")->name, "zero");
	for (uint32_t id = 201; id <= 204; id++)
		ck_assert_ptr_null(vms_stage_find_id(VMS_STAGE_CODEC, id));
}
END_TEST

START_TEST(test_register_after_writer_open)
{
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	struct vms_writer *w;
	int fd = tu_memfd_new();

	ck_assert_int_eq(vms_stage_register(&grow_stage), 0); /* before: fine */
	ck_assert_int_eq(vms_writer_open_fd(&w, fd, &o), 0);
	ck_assert_int_eq(vms_stage_register(&trle_stage), VMS_ESTATE);
	ck_assert_str_ne(vms_last_error(), "");
	ck_assert_ptr_null(vms_stage_find("test-rle"));
	vms_writer_free(w);
	/* frozen for the life of the process, not of the writer */
	ck_assert_int_eq(vms_stage_register(&trle_stage), VMS_ESTATE);
	ck_assert_ptr_null(vms_stage_find("test-rle"));
	ck_assert_ptr_eq(vms_stage_find("test-grow"), &grow_stage);
	close(fd);
}
END_TEST

START_TEST(test_register_after_reader_open)
{
	struct vms_reader *r;
	size_t n;
	uint8_t *s = hand_empty_stream(&n);
	int fd = tu_memfd_new();
	struct vms_event ev = VMS_EVENT_INIT;

	tu_memfd_set(fd, s, n);
	ck_assert_int_eq(vms_reader_open_fd(&r, fd, NULL), 0);
	ck_assert_int_eq(vms_stage_register(&trle_stage), VMS_ESTATE);
	ck_assert_int_eq(vms_reader_next(r, &ev), 1);
	ck_assert_uint_eq(ev.type, VMS_REC_EOS);
	ck_assert_int_eq(vms_reader_next(r, &ev), 0);
	vms_reader_free(r);
	ck_assert_int_eq(vms_stage_register(&trle_stage), VMS_ESTATE);
	ck_assert_ptr_null(vms_stage_find("test-rle"));
	free(s);
	close(fd);
}
END_TEST

/* ---- custom codec through writer and reader --------------------------------- */

/* 3 chunks of runs, one all-zero chunk, one chunk of runs, a random tail. */
#define RLE_DATA_LEN (5 * CHUNK + 1000)

static uint8_t *rle_data(void)
{
	uint8_t *d = tu_xmalloc(RLE_DATA_LEN);

	fill_runs(d, 3 * CHUNK, 7);
	memset(d + 3 * CHUNK, 0, CHUNK);
	fill_runs(d + 4 * CHUNK, CHUNK, 8);
	tu_fill(d + 5 * CHUNK, 1000, 9);
	return d;
}

static void check_rle_stream(const uint8_t *s, size_t n, const uint8_t *data, int level,
			     uint32_t rthreads)
{
	static const uint32_t want_type[] = { VMS_REC_DEVICE_BEGIN, VMS_REC_DATA, VMS_REC_DATA,
					      VMS_REC_DATA, VMS_REC_ZERO, VMS_REC_DATA,
					      VMS_REC_DATA, VMS_REC_DEVICE_END, VMS_REC_EOS };
	static const uint32_t want_codec[] = { 0, TRLE_ID, TRLE_ID, TRLE_ID, 0, TRLE_ID, 0, 0, 0 };
	struct vms_preamble p;
	struct tu_run r;
	struct tu_ed ed;
	const char *why = "";

	/* the preamble declares the codec by name and id */
	ck_assert_int_eq(tu_ed_parse(&ed, s, n), 0);
	ck_assert_int_eq(vms_preamble_decode(&p, ed.pre, ed.pre_len, VMS_CHUNK_MAX, &why), 0);
	ck_assert_uint_eq(p.ncodecs, 1);
	ck_assert_uint_eq(p.codecs[0].id, TRLE_ID);
	ck_assert_str_eq(p.codecs[0].name, "test-rle");
	ck_assert_uint_eq(ed.n, 9);
	for (size_t i = 0; i < ed.n; i++) {
		ck_assert_uint_eq(ed.r[i].h.codec, want_codec[i]);
		/* the level the spec asked for is what the codec context got */
		if (want_codec[i])
			ck_assert_uint_eq(ed.r[i].pl[0], (unsigned)level);
	}
	tu_ed_free(&ed);

	ck_assert_int_eq(read_buf(s, n, rthreads, &r), 0);
	ck_assert_msg(r.err == 0, "read: %s", r.msg);
	ck_assert_uint_eq(r.nev, 9);
	for (size_t i = 0; i < r.nev; i++) {
		ck_assert_uint_eq(r.ev[i].type, want_type[i]);
		ck_assert_uint_eq(r.ev[i].codec, want_codec[i]);
		ck_assert_uint_eq(r.ev[i].seq, i);
	}
	ck_assert_uint_eq(r.ev[6].raw_len, 1000);
	ck_assert_uint_eq(r.ev[6].wire_len, 1000);
	ck_assert_uint_lt(r.ev[1].wire_len, CHUNK);
	ck_assert_uint_eq(r.dev[0].n, RLE_DATA_LEN);
	ck_assert_mem_eq(r.dev[0].p, data, RLE_DATA_LEN);
	ck_assert_uint_eq(r.st.data_records, 5);
	ck_assert_uint_eq(r.st.zero_records, 1);
	ck_assert_uint_eq(r.st.stored_records, 1);
	tu_run_free(&r);
}

START_TEST(test_rle_roundtrip)
{
	/* _i: 0 = writer threads 0, reader 0; 1 = 2/2; 2 = 2/0; 3 = 0/2 */
	static const uint32_t wt[] = { 0, 2, 2, 0 }, rt[] = { 0, 2, 0, 2 };
	struct wr s = { .compress = "test-rle", .threads = wt[_i] };
	struct vms_stats st;
	uint8_t *data = rle_data(), *out;
	size_t n;

	ck_assert_int_eq(vms_stage_register(&trle_stage), 0);
	ck_assert_int_eq(vms_stage_register(&grow_stage), 0);
	out = write_one(&s, data, RLE_DATA_LEN, 1500, &n, &st);
	ck_assert_int_eq(atomic_load(&trle_last_level), TRLE_LEVEL_DEFAULT);
	ck_assert_uint_eq(st.data_records, 5);
	ck_assert_uint_eq(st.zero_records, 1);
	ck_assert_uint_eq(st.stored_records, 1);
	ck_assert_uint_eq(st.raw_bytes, RLE_DATA_LEN);
	ck_assert_uint_eq(st.wire_bytes, n);
	check_rle_stream(out, n, data, TRLE_LEVEL_DEFAULT, rt[_i]);
	free(out);

	s.compress = "test-rle:7";
	out = write_one(&s, data, RLE_DATA_LEN, CHUNK, &n, NULL);
	ck_assert_int_eq(atomic_load(&trle_last_level), 7);
	check_rle_stream(out, n, data, 7, rt[_i]);
	free(out);

	s.compress = "test-rle:9";
	out = write_one(&s, data, RLE_DATA_LEN, 777, &n, NULL);
	check_rle_stream(out, n, data, 9, rt[_i]);
	free(out);

	/* every context created was freed, none was used by two threads */
	ck_assert_int_gt(atomic_load(&trle_ctx_created), 0);
	ck_assert_int_eq(atomic_load(&trle_ctx_live), 0);
	ck_assert_int_eq(atomic_load(&trle_shared), 0);
	free(data);
}
END_TEST

START_TEST(test_rle_bad_level_spec)
{
	static const char *const bad[] = { "test-rle:0", "test-rle:10", "test-rle:-1", "test-rle:",
					   "test-rle:3x", "test-rl", "test-rle3" };
	int fd = tu_memfd_new();

	ck_assert_int_eq(vms_stage_register(&trle_stage), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
		struct vms_writer *w = (void *)1;
		size_t len;
		uint8_t *b;

		o.compress = bad[i];
		ck_assert_msg(vms_writer_open_fd(&w, fd, &o) == VMS_EINVAL, "%s accepted", bad[i]);
		ck_assert_ptr_null(w);
		b = tu_memfd_get(fd, &len);
		ck_assert_msg(len == 0, "%s: %zu bytes written to the sink", bad[i], len);
		free(b);
	}
	ck_assert_int_eq(atomic_load(&trle_ctx_live), 0);
	close(fd);
}
END_TEST

/* Child: register test-rle (or not), write the RLE stream into fd. */
struct child_write {
	int fd;
	const struct vms_stage *reg;
};

static int child_write_rle(void *arg)
{
	struct child_write *c = arg;
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_writer *w;
	uint8_t *data = rle_data();

	if (c->reg && vms_stage_register(c->reg) != 0)
		return 2;
	o.chunk_size = CHUNK;
	o.compress = "test-rle";
	d.name = "d0";
	if (vms_writer_open_fd(&w, c->fd, &o) != 0)
		return 3;
	if (vms_writer_begin_device(w, &d, NULL) != 0 ||
	    vms_writer_write(w, 0, data, RLE_DATA_LEN) != 0 || vms_writer_end_device(w, 0) != 0 ||
	    vms_writer_finish(w) != 0)
		return 4;
	vms_writer_free(w);
	free(data);
	return 0;
}

START_TEST(test_rle_unregistered_reader)
{
	struct child_write c = { tu_memfd_new(), &trle_stage };
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;
	struct tu_run r;

	ck_assert_int_eq(in_child(child_write_rle, &c), 0);
	/* this process never registered it */
	ck_assert_ptr_null(vms_stage_find("test-rle"));
	ck_assert_int_eq(lseek(c.fd, 0, SEEK_SET), 0);
	ck_assert_int_eq(tu_run_fd(c.fd, &o, &r), VMS_ECODEC);
	ck_assert_int_eq(r.open_err, VMS_ECODEC);
	ck_assert_uint_eq(r.nev, 0);
	ck_assert_ptr_nonnull(strstr(r.msg, "test-rle"));
	tu_run_free(&r);
	/* FORMAT.md 4.1, preamble rule 19 holds in headers-only mode too */
	ck_assert_int_eq(lseek(c.fd, 0, SEEK_SET), 0);
	o.flags = VMS_READER_F_HEADERS_ONLY;
	ck_assert_int_eq(tu_run_fd(c.fd, &o, &r), VMS_ECODEC);
	ck_assert_uint_eq(r.nev, 0);
	tu_run_free(&r);
	close(c.fd);
}
END_TEST

START_TEST(test_rle_private_id_from_stream)
{
	/* Private ids mean what the stream's CODEC entry says: a reader that
	 * registered "test-rle" under id 201 reads a stream declaring it as 200. */
	struct child_write c = { tu_memfd_new(), &trle_stage };
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;
	uint8_t *data = rle_data();
	struct tu_run r;

	ck_assert_int_eq(in_child(child_write_rle, &c), 0);
	ck_assert_int_eq(vms_stage_register(&trle_stage_201), 0);
	ck_assert_int_eq(lseek(c.fd, 0, SEEK_SET), 0);
	ck_assert_int_eq(tu_run_fd(c.fd, &o, &r), 0);
	ck_assert_uint_eq(r.nev, 9);
	ck_assert_uint_eq(r.ev[1].codec, TRLE_ID);
	ck_assert_uint_eq(r.dev[0].n, RLE_DATA_LEN);
	ck_assert_mem_eq(r.dev[0].p, data, RLE_DATA_LEN);
	tu_run_free(&r);
	free(data);
	close(c.fd);
}
END_TEST

START_TEST(test_rle_private_low_id)
{
	/* FORMAT.md 2.1: ids 1..63 belong to codecs FORMAT.md defines. The RLE
	 * stream with its private codec declared (and used) as id 5 instead of
	 * 200 is refused at the preamble although the reader has the codec;
	 * as id 64 it reads. */
	struct child_write c = { tu_memfd_new(), &trle_stage };
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;
	static const uint8_t ids[] = { 5, 63, 64 };
	struct tu_ed ed;
	uint8_t *b;
	size_t n;

	ck_assert_int_eq(in_child(child_write_rle, &c), 0);
	ck_assert_int_eq(vms_stage_register(&trle_stage), 0);
	b = tu_memfd_get(c.fd, &n);
	for (size_t k = 0; k < sizeof(ids); k++) {
		struct tu_run r;
		uint8_t *e;
		size_t en;

		ck_assert_int_eq(tu_ed_parse(&ed, b, n), 0);
		ck_assert_uint_eq(tu_le16(ed.pre + 48), 0x0001); /* the CODEC entry */
		ck_assert_uint_eq(ed.pre[52], TRLE_ID);
		ed.pre[52] = ids[k];
		tu_pre_fix(ed.pre, ed.pre_len);
		for (size_t i = 0; i < ed.n; i++)
			if (ed.r[i].h.codec == TRLE_ID)
				ed.r[i].h.codec = ids[k];
		e = tu_ed_build(&ed, &en);
		tu_memfd_set(c.fd, e, en);
		tu_run_fd(c.fd, &o, &r);
		if (ids[k] < 64) {
			ck_assert_int_eq(r.open_err, VMS_ECODEC);
			ck_assert_uint_eq(r.nev, 0);
			ck_assert_msg(strncmp(r.msg, "preamble at byte 0: ", 20) == 0, "%s", r.msg);
		} else {
			ck_assert_msg(r.err == 0, "id %u: %s", ids[k], r.msg);
			ck_assert_uint_eq(r.dev[0].n, RLE_DATA_LEN);
		}
		tu_run_free(&r);
		tu_ed_free(&ed);
		free(e);
	}
	free(b);
	close(c.fd);
}
END_TEST

START_TEST(test_codec_without_gain_is_stored)
{
	/* _i 0: codec says DONE with dst_len == src_len; 1: DONE with 0 bytes.
	 * Either way a record must be stored raw (3.2: 0 < body_len < raw_len). */
	const struct vms_stage *st = _i == 0 ? &grow_stage : &empty_stage;
	struct wr s = { .compress = st->name };
	uint8_t *data = tu_xmalloc(3 * CHUNK + 5), *out;
	struct vms_stats ws;
	struct tu_run r;
	size_t n;

	fill_text(data, 3 * CHUNK + 5, 1);
	ck_assert_int_eq(vms_stage_register(st), 0);
	out = write_one(&s, data, 3 * CHUNK + 5, CHUNK, &n, &ws);
	ck_assert_uint_eq(ws.data_records, 4);
	ck_assert_uint_eq(ws.stored_records, 4);
	ck_assert_int_eq(read_buf(out, n, 0, &r), 0);
	ck_assert_uint_eq(r.nev, 7);
	for (size_t i = 1; i <= 4; i++) {
		ck_assert_uint_eq(r.ev[i].type, VMS_REC_DATA);
		ck_assert_uint_eq(r.ev[i].codec, 0);
		ck_assert_uint_eq(r.ev[i].wire_len, r.ev[i].raw_len);
	}
	ck_assert_uint_eq(r.st.stored_records, 4);
	ck_assert_mem_eq(r.dev[0].p, data, 3 * CHUNK + 5);
	tu_run_free(&r);
	free(out);
	free(data);
}
END_TEST

/* ---- zero filter --------------------------------------------------------------- */

START_TEST(test_all_zero_unit)
{
	uint8_t b[300];

	memset(b, 0, sizeof(b));
	ck_assert(vms_all_zero(b, 0));
	ck_assert(vms_all_zero(b, 1));
	ck_assert(vms_all_zero(b, sizeof(b)));
	for (size_t n = 1; n <= 70; n++) {
		for (size_t i = 0; i < n; i++) {
			b[i] = 0x80;
			ck_assert_msg(!vms_all_zero(b, n), "n=%zu, byte %zu set", n, i);
			b[i] = 0;
		}
		/* a non-zero byte just past the end does not count */
		b[n] = 1;
		ck_assert(vms_all_zero(b, n));
		b[n] = 0;
	}
}
END_TEST

START_TEST(test_zero_stage_callbacks)
{
	const struct vms_stage *z = vms_stage_find("zero");
	struct vms_stage_conf conf = { .size = sizeof(conf), .max_chunk = CHUNK };
	struct vms_stage_io io = { 0 };
	uint8_t src[64] = { 0 }, dst[64];
	void *ctx = (void *)1;

	ck_assert_int_eq(z->ctx_new(&ctx, &conf), 0);
	io.src = src;
	io.src_len = sizeof(src);
	io.dst = dst;
	io.dst_cap = sizeof(dst);
	ck_assert_int_eq(z->apply(ctx, &io), VMS_STAGE_ELIDE);
	ck_assert_uint_eq(io.dst_len, 0);
	src[63] = 1;
	ck_assert_int_eq(z->apply(ctx, &io), VMS_STAGE_SKIP);
	src[63] = 0;
	src[0] = 1;
	ck_assert_int_eq(z->apply(ctx, &io), VMS_STAGE_SKIP);
	memset(dst, 0xee, sizeof(dst));
	io.src_len = 0;
	io.raw_len = 40;
	ck_assert_int_eq(z->invert(ctx, &io), 0);
	ck_assert_uint_eq(io.dst_len, 40);
	for (size_t i = 0; i < 40; i++)
		ck_assert_uint_eq(dst[i], 0);
	ck_assert_uint_eq(dst[40], 0xee);
	io.raw_len = 65; /* more than dst holds */
	ck_assert_int_lt(z->invert(ctx, &io), 0);
	z->ctx_free(ctx);
}
END_TEST

START_TEST(test_zero_records)
{
	/* _i: 0 none, 1 zstd:1, 2 test-rle; reader threads alternate */
	static const char *const comp[] = { NULL, "zstd:1", "test-rle" };
	struct wr s = { .compress = comp[_i], .threads = (uint32_t)_i % 2 * 2 };
	const size_t len = 5 * CHUNK + 100;
	uint8_t *data = calloc(1, len), *out;
	struct vms_stats ws;
	struct tu_run r;
	size_t n;

	if (_i == 2)
		ck_assert_int_eq(vms_stage_register(&trle_stage), 0);
	/* chunk 0 zero; 1: first byte set; 2: last byte set; 3 zero;
	 * 4: a byte in the middle; tail of 100 zero bytes */
	data[1 * CHUNK] = 0x01;
	data[3 * CHUNK - 1] = 0x80;
	data[4 * CHUNK + 2000] = 0xff;
	out = write_one(&s, data, len, 1000, &n, &ws);
	ck_assert_uint_eq(ws.zero_records, 3);
	ck_assert_uint_eq(ws.data_records, 3);
	ck_assert_uint_eq(ws.raw_bytes, len);
	ck_assert_int_eq(read_buf(out, n, 2 - s.threads, &r), 0);
	ck_assert_uint_eq(r.nev, 9);
	{
		static const uint32_t t[] = { VMS_REC_DEVICE_BEGIN, VMS_REC_ZERO, VMS_REC_DATA,
					      VMS_REC_DATA, VMS_REC_ZERO, VMS_REC_DATA,
					      VMS_REC_ZERO, VMS_REC_DEVICE_END, VMS_REC_EOS };

		for (size_t i = 0; i < 9; i++)
			ck_assert_uint_eq(r.ev[i].type, t[i]);
	}
	for (size_t i = 1; i <= 6; i++) {
		ck_assert_uint_eq(r.ev[i].offset, (i - 1) * CHUNK);
		ck_assert_uint_eq(r.ev[i].raw_len, i == 6 ? 100 : CHUNK);
		if (r.ev[i].type == VMS_REC_ZERO) {
			ck_assert(r.ev[i].data_null);
			ck_assert_uint_eq(r.ev[i].data_len, r.ev[i].raw_len);
			ck_assert_uint_eq(r.ev[i].wire_len, 0);
			ck_assert_uint_eq(r.ev[i].codec, 0);
		}
	}
	ck_assert_uint_eq(r.st.zero_records, 3);
	ck_assert_uint_eq(r.st.data_records, 3);
	ck_assert_uint_eq(r.dev[0].n, len);
	ck_assert_mem_eq(r.dev[0].p, data, len);
	tu_run_free(&r);
	free(out);

	/* elision off: every chunk is DATA, zero chunks included */
	s.flags = VMS_WRITER_F_NO_ZERO_ELISION;
	out = write_one(&s, data, len, CHUNK, &n, &ws);
	ck_assert_uint_eq(ws.zero_records, 0);
	ck_assert_uint_eq(ws.data_records, 6);
	ck_assert_int_eq(read_buf(out, n, 0, &r), 0);
	ck_assert_uint_eq(r.nev, 9);
	for (size_t i = 1; i <= 6; i++)
		ck_assert_uint_eq(r.ev[i].type, VMS_REC_DATA);
	ck_assert_mem_eq(r.dev[0].p, data, len);
	tu_run_free(&r);
	free(out);
	free(data);
}
END_TEST

START_TEST(test_zero_single_byte_chunks)
{
	/* A 1-byte zero tail is a ZERO record of raw_len 1; a 1-byte non-zero
	 * one is DATA. */
	uint8_t d0[CHUNK + 1] = { 0 }, d1[CHUNK + 1] = { 0 };
	struct wr s = { 0 };
	struct tu_run r;
	uint8_t *out;
	size_t n;

	d1[CHUNK] = 7;
	out = write_one(&s, d0, sizeof(d0), sizeof(d0), &n, NULL);
	ck_assert_int_eq(read_buf(out, n, 0, &r), 0);
	ck_assert_uint_eq(r.nev, 5);
	ck_assert_uint_eq(r.ev[2].type, VMS_REC_ZERO);
	ck_assert_uint_eq(r.ev[2].raw_len, 1);
	tu_run_free(&r);
	free(out);
	out = write_one(&s, d1, sizeof(d1), sizeof(d1), &n, NULL);
	ck_assert_int_eq(read_buf(out, n, 0, &r), 0);
	ck_assert_uint_eq(r.nev, 5);
	ck_assert_uint_eq(r.ev[1].type, VMS_REC_ZERO);
	ck_assert_uint_eq(r.ev[2].type, VMS_REC_DATA);
	ck_assert_uint_eq(r.ev[2].raw_len, 1);
	ck_assert_uint_eq(r.dev[0].p[CHUNK], 7);
	tu_run_free(&r);
	free(out);
}
END_TEST

/* ---- zstd: spec parsing ----------------------------------------------------------- */

START_TEST(test_compress_spec_parse)
{
	static const char *const bad[] = {
		"zstd:-8", "zstd:20", "zstd:", "zstd:x", "zstd:1x", "bogus", "", ":1", "zstd:1:2",
		"zstd:-", "zstd:99999999999999999999", "ZSTD", "zstd :1", "zero", "aes-256-gcm",
		"chacha20-poly1305", "none:1", "auto:1", "zstd:1.5",
	};
	const struct vms_stage *st;
	int level;
	bool adaptive;
	char spec[32];

	for (int l = -7; l <= 19; l++) {
		snprintf(spec, sizeof(spec), "zstd:%d", l);
		st = NULL;
		level = 1000;
		ck_assert_msg(vms_compress_parse(spec, &st, &level, &adaptive) == 0, "%s", spec);
		ck_assert_ptr_eq(st, vms_stage_find("zstd"));
		ck_assert_int_eq(level, l);
		ck_assert(!adaptive);
	}
	ck_assert_int_eq(vms_compress_parse("zstd", &st, &level, &adaptive), 0);
	ck_assert_ptr_eq(st, vms_stage_find("zstd"));
	ck_assert_int_eq(level, 1);
	ck_assert(!adaptive);
	ck_assert_int_eq(vms_compress_parse("auto", &st, &level, &adaptive), 0);
	ck_assert_ptr_eq(st, vms_stage_find("zstd"));
	ck_assert(adaptive);
	ck_assert_int_eq(vms_compress_parse("none", &st, &level, &adaptive), 0);
	ck_assert_ptr_null(st);
	ck_assert(!adaptive);
	st = (void *)1;
	ck_assert_int_eq(vms_compress_parse(NULL, &st, &level, &adaptive), 0);
	ck_assert_ptr_null(st);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = vms_compress_parse(bad[i], &st, &level, &adaptive);

		ck_assert_msg(rc == VMS_EINVAL, "\"%s\": got %d, want VMS_EINVAL", bad[i], rc);
		ck_assert_msg(strlen(vms_last_error()) > 0, "\"%s\": no message", bad[i]);
	}
}
END_TEST

/* The public check: the tools' rules, exact messages. */
START_TEST(test_compress_check)
{
	static const char *const good[] = {
		NULL, "none", "auto", "zstd", "zstd:-7", "zstd:19", "zstd:0", "zstd:-0", "zstd:1",
		"zstd:000019", "zstd:-000007",
	};
	static const struct {
		const char *spec, *msg;
	} bad[] = {
		{ "", "'': expected none, auto, zstd or zstd:LEVEL" },
		{ ":1", "':1': expected none, auto, zstd or zstd:LEVEL" },
		{ "lz4", "'lz4': no codec named 'lz4' (none, auto, zstd, zstd:LEVEL)" },
		{ "ZSTD", "'ZSTD': no codec named 'ZSTD' (none, auto, zstd, zstd:LEVEL)" },
		{ "zstd :1", "'zstd :1': no codec named 'zstd ' (none, auto, zstd, zstd:LEVEL)" },
		{ " zstd", "' zstd': no codec named ' zstd' (none, auto, zstd, zstd:LEVEL)" },
		{ "zero", "'zero': no codec named 'zero' (none, auto, zstd, zstd:LEVEL)" },
		{ "aes-256-gcm:1", "'aes-256-gcm:1': no codec named 'aes-256-gcm' (none, auto, zstd, zstd:LEVEL)" },
		{ "none:1", "'none:1': no codec named 'none' (none, auto, zstd, zstd:LEVEL)" },
		{ "auto:1", "'auto:1': no codec named 'auto' (none, auto, zstd, zstd:LEVEL)" },
		{ "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", /* 33 bytes: longer than any codec name */
		  "'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz': no codec named "
		  "'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz' (none, auto, zstd, zstd:LEVEL)" },
		/* levels: one past each end, then anything but an optional '-' and digits */
		{ "zstd:20", "'zstd:20': level must be an integer in [-7, 19]" },
		{ "zstd:-8", "'zstd:-8': level must be an integer in [-7, 19]" },
		{ "zstd:", "'zstd:': level must be an integer in [-7, 19]" },
		{ "zstd:-", "'zstd:-': level must be an integer in [-7, 19]" },
		{ "zstd:+1", "'zstd:+1': level must be an integer in [-7, 19]" },
		{ "zstd: 1", "'zstd: 1': level must be an integer in [-7, 19]" },
		{ "zstd:1 ", "'zstd:1 ': level must be an integer in [-7, 19]" },
		{ "zstd:1x", "'zstd:1x': level must be an integer in [-7, 19]" },
		{ "zstd:1.5", "'zstd:1.5': level must be an integer in [-7, 19]" },
		{ "zstd:1:2", "'zstd:1:2': level must be an integer in [-7, 19]" },
		{ "zstd:--1", "'zstd:--1': level must be an integer in [-7, 19]" },
		{ "zstd:0x1", "'zstd:0x1': level must be an integer in [-7, 19]" },
		{ "zstd:0000001", "'zstd:0000001': level must be an integer in [-7, 19]" },
		{ "zstd:99999999999", "'zstd:99999999999': level must be an integer in [-7, 19]" },
	};
	const struct vms_stage *z = vms_stage_find("zstd");

	ck_assert_ptr_nonnull(z);
	ck_assert_int_eq(z->level_min, -7); /* the messages above */
	ck_assert_int_eq(z->level_max, 19);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(vms_compress_check(good[i]) == 0, "%s: %s", good[i] ? good[i] : "NULL",
			      vms_last_error());
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = vms_compress_check(bad[i].spec);

		ck_assert_msg(rc == VMS_EINVAL, "\"%s\": got %d, want VMS_EINVAL", bad[i].spec, rc);
		ck_assert_str_eq(vms_last_error(), bad[i].msg);
	}
}
END_TEST

/* The writer takes specs by the same rules; its message names the option. */
START_TEST(test_compress_check_writer_agrees)
{
	static const char *const specs[] = { "zstd:+1", "zstd: 1", "zstd:-0", "zstd:0000001",
					     "zstd:000019", "" };
	int fd = tu_memfd_new();

	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
		struct vms_writer *w = NULL;
		char want[256];
		int check = vms_compress_check(specs[i]), rc;

		snprintf(want, sizeof(want), "compression %s", vms_last_error());
		o.compress = specs[i];
		o.chunk_size = CHUNK;
		rc = vms_writer_open_fd(&w, fd, &o);
		ck_assert_msg(rc == check, "\"%s\": writer %d, check %d", specs[i], rc, check);
		if (rc)
			ck_assert_str_eq(vms_last_error(), want);
		vms_writer_free(w);
	}
	close(fd);
}
END_TEST

START_TEST(test_compress_spec_writer_open)
{
	/* Through the public API: rejected specs fail the open and write nothing. */
	static const char *const bad[] = { "zstd:-8", "zstd:20", "zstd:", "zstd:x", "zstd:1x",
					   "bogus" };
	static const char *const good[] = { "zstd:-7", "zstd:19", "zstd", "auto", "none" };
	int fd = tu_memfd_new();

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
		struct vms_writer *w = (void *)1;
		size_t len;
		uint8_t *b;

		o.compress = bad[i];
		ck_assert_int_eq(vms_writer_open_fd(&w, fd, &o), VMS_EINVAL);
		ck_assert_ptr_null(w);
		ck_assert_ptr_nonnull(strstr(vms_last_error(), bad[i]));
		b = tu_memfd_get(fd, &len);
		ck_assert_uint_eq(len, 0);
		free(b);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
		struct vms_writer *w = NULL;

		o.compress = good[i];
		o.chunk_size = CHUNK;
		ck_assert_msg(vms_writer_open_fd(&w, fd, &o) == 0, "%s: %s", good[i],
			      vms_last_error());
		vms_writer_free(w);
	}
	close(fd);
}
END_TEST

/* ---- zstd: round trips and stored chunks ---------------------------------------------- */

START_TEST(test_zstd_levels_roundtrip)
{
	static const char *const spec[] = { "zstd:-7", "zstd:-1", "zstd", "zstd:3", "zstd:19" };
	const size_t len = 3 * CHUNK + 333;
	uint8_t *data = tu_xmalloc(len), *out;
	struct wr s = { .compress = spec[_i] };
	struct vms_stats ws;
	struct tu_run r;
	size_t n;

	fill_text(data, len, 42);
	out = write_one(&s, data, len, 4000, &n, &ws);
	ck_assert_uint_eq(ws.stored_records, 0);
	ck_assert_int_eq(ws.level, _i == 0 ? -7 : _i == 1 ? -1 : _i == 2 ? 1 : _i == 3 ? 3 : 19);
	ck_assert_int_eq(read_buf(out, n, (uint32_t)_i % 2 * 2, &r), 0);
	ck_assert_uint_eq(r.nev, 7);
	for (size_t i = 1; i <= 4; i++) {
		ck_assert_uint_eq(r.ev[i].type, VMS_REC_DATA);
		ck_assert_uint_eq(r.ev[i].codec, 1);
		ck_assert_uint_lt(r.ev[i].wire_len, r.ev[i].raw_len);
		ck_assert_uint_gt(r.ev[i].wire_len, 0);
	}
	ck_assert_uint_eq(r.st.stored_records, 0);
	ck_assert_uint_eq(r.dev[0].n, len);
	ck_assert_mem_eq(r.dev[0].p, data, len);
	tu_run_free(&r);
	free(out);
	free(data);
}
END_TEST

START_TEST(test_zstd_incompressible_stored)
{
	/* _i 0: zstd:1 threads 0; 1: zstd:19 threads 2; 2: auto threads 2 */
	static const char *const spec[] = { "zstd:1", "zstd:19", "auto" };
	const size_t nchunks = 10, len = nchunks * CHUNK + 17;
	uint8_t *data = tu_xmalloc(len), *out;
	struct wr s = { .compress = spec[_i], .threads = _i ? 2 : 0 };
	struct vms_stats ws;
	struct tu_run r;
	size_t n;

	tu_fill(data, len, 1234);
	out = write_one(&s, data, len, CHUNK, &n, &ws);
	ck_assert_uint_eq(ws.data_records, nchunks + 1);
	ck_assert_uint_eq(ws.stored_records, nchunks + 1);
	ck_assert_int_eq(read_buf(out, n, 0, &r), 0);
	ck_assert_uint_eq(r.nev, nchunks + 4);
	for (size_t i = 1; i <= nchunks + 1; i++) {
		ck_assert_uint_eq(r.ev[i].type, VMS_REC_DATA);
		ck_assert_uint_eq(r.ev[i].codec, 0);
		ck_assert_uint_eq(r.ev[i].wire_len, r.ev[i].raw_len);
	}
	ck_assert_uint_eq(r.st.stored_records, nchunks + 1);
	ck_assert_uint_eq(r.st.data_records, nchunks + 1);
	ck_assert_mem_eq(r.dev[0].p, data, len);
	/* stored records cost nothing over no compression: same stream size */
	{
		struct wr plain = { 0 };
		size_t n2;
		uint8_t *o2 = write_one(&plain, data, len, CHUNK, &n2, NULL);
		struct tu_ed e1, e2;

		ck_assert_int_eq(tu_ed_parse(&e1, out, n), 0);
		ck_assert_int_eq(tu_ed_parse(&e2, o2, n2), 0);
		/* the zstd stream's preamble is longer by its CODEC entry only */
		ck_assert_uint_eq(e1.pre_len, e2.pre_len + 4 + 1 + 4);
		ck_assert_uint_eq(n - e1.pre_len, n2 - e2.pre_len);
		ck_assert_mem_eq(out + e1.pre_len, o2 + e2.pre_len, n - e1.pre_len);
		tu_ed_free(&e1);
		tu_ed_free(&e2);
		free(o2);
	}
	tu_run_free(&r);
	free(out);
	free(data);
}
END_TEST

/* ---- zstd: hostile frames -------------------------------------------------------------- */

#define HOSTILE_RAW 4000u /* raw_len of the record under attack */

static size_t zc(void *dst, size_t cap, const void *src, size_t n, int content_size, int checksum)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	size_t r;

	if (!c)
		tu_die("ZSTD_createCCtx");
	ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3);
	ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, content_size);
	ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum);
	r = ZSTD_compress2(c, dst, cap, src, n);
	ZSTD_freeCCtx(c);
	if (ZSTD_isError(r))
		tu_die("ZSTD_compress2: %s", ZSTD_getErrorName(r));
	return r;
}

/* Rewrite the Frame_Content_Size field of the frame at f (RFC 8878 3.1.1.1)
 * to v, which must fit the field's existing width. */
static void set_fcs(uint8_t *f, uint64_t v)
{
	uint8_t fhd = f[4];
	unsigned fcs_flag = fhd >> 6, single = (fhd >> 5) & 1, did_flag = fhd & 3;
	static const unsigned did_size[] = { 0, 1, 2, 4 };
	size_t pos = 5 + (single ? 0 : 1) + did_size[did_flag];
	unsigned width = fcs_flag == 0 ? (single ? 1 : 0) : 1u << fcs_flag;

	if (width == 0)
		tu_die("frame has no content size field");
	if (width == 2)
		v -= 256; /* the 2-byte form is offset by 256 */
	for (unsigned i = 0; i < width; i++)
		f[pos + i] = (uint8_t)(v >> (8 * i));
}

enum hostile {
	H_CONTROL,          /* a correct frame: must be accepted */
	H_CONTROL_CHECKSUM, /* a correct frame with a content checksum: accepted */
	H_CLAIMS_MORE,      /* frame of raw+1 bytes, honest content size */
	H_CLAIMS_LESS,      /* frame of raw-1 bytes, honest content size */
	H_NO_SIZE,          /* frame without a content size field */
	H_DECODES_MORE,     /* content size says raw, blocks hold raw+1 */
	H_DECODES_LESS,     /* content size says raw, blocks hold raw-1 */
	H_TRAILING_BYTE,    /* good frame + 1 byte */
	H_TRAILING_FRAME,   /* good frame + a second frame */
	H_TRAILING_SKIP,    /* good frame + an empty skippable frame */
	H_TRUNCATED,        /* good frame minus its last byte */
	H_GARBAGE,          /* not a zstd frame at all */
	H_BAD_CHECKSUM,     /* frame with a content checksum that does not match */
	H_COUNT
};

static const char *const hostile_name[] = {
	"control", "control+checksum", "claims more", "claims less", "no content size",
	"decodes more", "decodes less", "trailing byte", "trailing frame", "trailing skippable",
	"truncated", "garbage", "bad checksum",
};

/* Body for the attacked record; raw holds HOSTILE_RAW + 1 bytes of text. */
static size_t hostile_body(enum hostile h, const uint8_t *raw, uint8_t *b, size_t cap)
{
	size_t n = 0;

	switch (h) {
	case H_CONTROL:
		return zc(b, cap, raw, HOSTILE_RAW, 1, 0);
	case H_CONTROL_CHECKSUM:
		return zc(b, cap, raw, HOSTILE_RAW, 1, 1);
	case H_CLAIMS_MORE:
		return zc(b, cap, raw, HOSTILE_RAW + 1, 1, 0);
	case H_CLAIMS_LESS:
		return zc(b, cap, raw, HOSTILE_RAW - 1, 1, 0);
	case H_NO_SIZE:
		n = zc(b, cap, raw, HOSTILE_RAW, 0, 0);
		ck_assert_uint_eq(ZSTD_getFrameContentSize(b, n), ZSTD_CONTENTSIZE_UNKNOWN);
		return n;
	case H_DECODES_MORE:
		n = zc(b, cap, raw, HOSTILE_RAW + 1, 1, 0);
		set_fcs(b, HOSTILE_RAW);
		ck_assert_uint_eq(ZSTD_getFrameContentSize(b, n), HOSTILE_RAW);
		return n;
	case H_DECODES_LESS:
		n = zc(b, cap, raw, HOSTILE_RAW - 1, 1, 0);
		set_fcs(b, HOSTILE_RAW);
		ck_assert_uint_eq(ZSTD_getFrameContentSize(b, n), HOSTILE_RAW);
		return n;
	case H_TRAILING_BYTE:
		n = zc(b, cap, raw, HOSTILE_RAW, 1, 0);
		b[n] = 0;
		return n + 1;
	case H_TRAILING_FRAME:
		n = zc(b, cap, raw, HOSTILE_RAW, 1, 0);
		return n + zc(b + n, cap - n, raw, 1, 1, 0);
	case H_TRAILING_SKIP:
		n = zc(b, cap, raw, HOSTILE_RAW, 1, 0);
		vms_put_u32(b + n, 0x184D2A50u);
		vms_put_u32(b + n + 4, 0);
		return n + 8;
	case H_TRUNCATED:
		return zc(b, cap, raw, HOSTILE_RAW, 1, 0) - 1;
	case H_GARBAGE: {
		static const char g[] = "this is not a zstd frame, it only sits where one should";

		memcpy(b, g, sizeof(g) - 1);
		return sizeof(g) - 1;
	}
	case H_BAD_CHECKSUM:
		n = zc(b, cap, raw, HOSTILE_RAW, 1, 1);
		b[n - 1] ^= 0x01;
		return n;
	default:
		tu_die("bad case");
	}
}

START_TEST(test_zstd_hostile_records)
{
	/* _i = case * 2 + reader threads/2 */
	enum hostile h = (enum hostile)(_i / 2);
	uint32_t rthreads = (uint32_t)(_i % 2) * 2;
	uint8_t raw[HOSTILE_RAW + 1], body[2 * HOSTILE_RAW];
	struct wr s = { .compress = "zstd:1" };
	struct tu_ed ed;
	struct tu_run r;
	uint8_t *out, *bad;
	size_t n, nbad, blen;
	bool accept = h == H_CONTROL || h == H_CONTROL_CHECKSUM;

	fill_text(raw, sizeof(raw), 99);
	out = write_one(&s, raw, HOSTILE_RAW, HOSTILE_RAW, &n, NULL);
	ck_assert_int_eq(tu_ed_parse(&ed, out, n), 0);
	ck_assert_uint_eq(ed.n, 4);
	ck_assert_uint_eq(ed.r[1].h.type, VMS_REC_DATA);
	ck_assert_uint_eq(ed.r[1].h.codec, 1);

	blen = hostile_body(h, raw, body, sizeof(body));
	/* only the decompression rule may fire: lengths within 3.2, codec
	 * declared, header and payload checksums right for raw_len bytes */
	ck_assert_uint_gt(blen, 0);
	ck_assert_uint_lt(blen, HOSTILE_RAW);
	free(ed.r[1].pl);
	ed.r[1].pl = tu_memdup(body, blen);
	ed.r[1].pl_len = (uint32_t)blen;
	ck_assert_uint_eq(ed.r[1].h.raw_len, HOSTILE_RAW);
	ck_assert_uint_eq(ed.r[1].h.payload_sum, tu_xxh3(raw, HOSTILE_RAW));
	bad = tu_ed_build(&ed, &nbad);

	read_buf(bad, nbad, rthreads, &r);
	if (accept) {
		ck_assert_msg(r.err == 0, "%s: %s", hostile_name[h], r.msg);
		ck_assert_uint_eq(r.nev, 4);
		ck_assert_uint_eq(r.dev[0].n, HOSTILE_RAW);
		ck_assert_mem_eq(r.dev[0].p, raw, HOSTILE_RAW);
	} else {
		ck_assert_msg(r.err == VMS_EDECOMPRESS, "%s: got %s (%s)", hostile_name[h],
			      vms_errname(r.err) ? vms_errname(r.err) : "?", r.msg);
		ck_assert_int_eq(r.again, VMS_EDECOMPRESS);
		ck_assert_uint_eq(r.nev, 1); /* DEVICE_BEGIN only */
		ck_assert_uint_eq(r.ev[0].type, VMS_REC_DEVICE_BEGIN);
		ck_assert_uint_eq(r.dev[0].n, 0);
		ck_assert_ptr_nonnull(strstr(r.msg, "record 1 at byte"));
	}
	tu_run_free(&r);
	tu_ed_free(&ed);
	free(bad);
	free(out);
}
END_TEST

START_TEST(test_zstd_invert_direct)
{
	/* The codec callback itself, with a too-small destination. */
	const struct vms_stage *z = vms_stage_find("zstd");
	struct vms_stage_conf conf = { .size = sizeof(conf), .level = 1, .max_chunk = CHUNK };
	struct vms_stage_io io = { 0 };
	uint8_t raw[CHUNK], comp[CHUNK], dst[CHUNK];
	void *ctx;
	size_t cn;

	fill_text(raw, sizeof(raw), 5);
	ck_assert_int_eq(z->ctx_new(&ctx, &conf), 0);
	io.src = raw;
	io.src_len = sizeof(raw);
	io.dst = comp;
	io.dst_cap = z->bound(sizeof(raw)) < sizeof(comp) ? z->bound(sizeof(raw)) : sizeof(comp);
	ck_assert_int_eq(z->apply(ctx, &io), VMS_STAGE_DONE);
	cn = io.dst_len;
	ck_assert_uint_lt(cn, sizeof(raw));
	ck_assert_uint_eq(ZSTD_getFrameContentSize(comp, cn), sizeof(raw));

	memset(&io, 0, sizeof(io));
	io.src = comp;
	io.src_len = cn;
	io.dst = dst;
	io.dst_cap = sizeof(dst);
	io.raw_len = sizeof(raw);
	ck_assert_int_eq(z->invert(ctx, &io), 0);
	ck_assert_uint_eq(io.dst_len, sizeof(raw));
	ck_assert_mem_eq(dst, raw, sizeof(raw));
	io.dst_cap = sizeof(raw) - 1;
	ck_assert_int_eq(z->invert(ctx, &io), VMS_EDECOMPRESS);
	io.dst_cap = sizeof(dst);
	io.raw_len = sizeof(raw) - 1;
	ck_assert_int_eq(z->invert(ctx, &io), VMS_EDECOMPRESS);
	io.raw_len = sizeof(raw);
	io.src_len = 3; /* shorter than a frame header */
	ck_assert_int_eq(z->invert(ctx, &io), VMS_EDECOMPRESS);
	io.src_len = 0;
	ck_assert_int_eq(z->invert(ctx, &io), VMS_EDECOMPRESS);
	z->ctx_free(ctx);
}
END_TEST

static Suite *stages_suite(void)
{
	Suite *s = suite_create("stages");
	TCase *tc;

	tc = tcase_create("registry");
	tcase_add_test(tc, test_builtins_found);
	tcase_add_test(tc, test_register_rejects);
	tcase_add_test(tc, test_register_duplicates);
	tcase_add_test(tc, test_register_after_writer_open);
	tcase_add_test(tc, test_register_after_reader_open);
	suite_add_tcase(s, tc);

	tc = tcase_create("custom_codec");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_rle_roundtrip, 0, 4);
	tcase_add_test(tc, test_rle_bad_level_spec);
	tcase_add_test(tc, test_rle_unregistered_reader);
	tcase_add_test(tc, test_rle_private_id_from_stream);
	tcase_add_test(tc, test_rle_private_low_id);
	tcase_add_loop_test(tc, test_codec_without_gain_is_stored, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("zero");
	tcase_add_test(tc, test_all_zero_unit);
	tcase_add_test(tc, test_zero_stage_callbacks);
	tcase_add_loop_test(tc, test_zero_records, 0, 3);
	tcase_add_test(tc, test_zero_single_byte_chunks);
	suite_add_tcase(s, tc);

	tc = tcase_create("zstd");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_compress_spec_parse);
	tcase_add_test(tc, test_compress_spec_writer_open);
	tcase_add_test(tc, test_compress_check);
	tcase_add_test(tc, test_compress_check_writer_agrees);
	tcase_add_loop_test(tc, test_zstd_levels_roundtrip, 0, 5);
	tcase_add_loop_test(tc, test_zstd_incompressible_stored, 0, 3);
	tcase_add_loop_test(tc, test_zstd_hostile_records, 0, 2 * H_COUNT);
	tcase_add_test(tc, test_zstd_invert_direct);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(stages_suite());
	int failed;

	/* The registry freezes process-wide: every test needs its own process,
	 * even when CK_FORK=no is set to debug something else. */
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
