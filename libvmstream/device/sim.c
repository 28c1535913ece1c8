/* SPDX-License-Identifier: MIT */
/*
 * Simulated device with the kernel's data_fd semantics.
 *
 * Why a pipe: the data session is a real file descriptor, a pipe, because
 * that is what a VFIO data_fd is to its user: a stream, not a file
 * (pread/lseek fail with ESPIPE, no mmap), whose read() blocks until the
 * device has staged data and may return fewer bytes than asked, and whose
 * write() blocks while the device is busy digesting the previous bytes. Code
 * that is correct against the sim is thereby correct against short reads,
 * blocking and back-pressure, and an engine that wants to read the fd itself
 * (io_uring) can. A memfd would be positional and never block; generating
 * bytes inside read() would never block either.
 *
 * Saving: queued segments (see sim.h) go into the pipe's O_NONBLOCK write
 * end. A segment that fits the pipe (small devices: all of them) is
 * generated and written at once by the caller of the state change that
 * stages it, as a driver that saves its state during the arc ioctl; anything
 * larger is streamed by the device's thread: it generates into one of a ring
 * of page-aligned buffers (hashing each block while it is in L1) and
 * vmsplice()s full buffers into the pipe (a buffer is refilled only once the
 * pipe has given all its bytes to the reader: the ring holds more than the
 * pipe), waiting in poll() with an eventfd that tears it down. The reader
 * counts what was queued and what it consumed: in PRE_COPY with nothing left
 * it returns VMS_EAGAIN_DEV at once (the ENOMSG of a driver) instead of
 * blocking; once STOP_COPY's final segment is in the pipe its write end is
 * closed, so read() returns 0: the end of the state, from the fd itself.
 * Like drivers that refill only then, a new pre-copy round (`dirty` bytes of
 * changed blocks) is staged only when precopy_info is called with
 * everything read.
 *
 * Loading: write() goes into the pipe. While everything written fits the
 * pipe, the bytes wait there and the image is validated at RESUMING -> STOP
 * by the caller (every block regenerated and compared, checksums); a bigger
 * image is handed to the device's thread, which validates it as it arrives.
 * Either way the verdict is given at RESUMING -> STOP, as a driver does, and
 * a rejected image puts the device in ERROR until reset.
 *
 * The device's thread is started when a session first needs it and serves
 * every later session of the device, saving or loading, until the device is
 * closed: a data session costs a pipe, not a thread.
 *
 * Locking: `mu` (per device) guards the segment queue, the thread's job and
 * its progress. The thread reads the block versions while it emits; the user
 * thread changes them only in a refill, which waits until every queued
 * segment is emitted, under `mu`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include "base/error.h"
#include "device/device.h"
#include "device/sim.h"
#include "device/vfio.h"
#include "base/hash.h"

#define EMIT_BUF (256u << 10)   /* device thread: one buffer of its ring */
#define RING_MAX 10u            /* buffers in the ring at most */
#define INLINE_MAX (64u << 10)  /* segments up to this are emitted by the caller */
#define INLINE_SIZE (32u << 10) /* devices up to this never need the thread */
#define PIPE_SIZE (1u << 20)
#define READ_MAX (256u << 10)   /* bytes per read() of the data fd */
#define PAGE 4096u
#define QMAX 8u
#define SPEC_MAX 1024u
#define SLOW_DEFAULT (100ull << 20)
#define REPLAY_MAX (1ull << 30) /* block updates a header may make us replay */
#define MSG_LEN 256u

/* ---- spec ---------------------------------------------------------------- */

static const char *const profile_names[] = {
	[VMS_SIM_RANDOM] = "random", [VMS_SIM_ZEROS] = "zeros", [VMS_SIM_SPARSE] = "sparse",
	[VMS_SIM_TEXT] = "text", [VMS_SIM_MIXED] = "mixed",
};
#define NPROFILES (sizeof(profile_names) / sizeof(profile_names[0]))

static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned base = 10;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return VMS_EINVAL;
	for (; *s; s++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return VMS_EINVAL;
		if (v > (UINT64_MAX - d) / base)
			return VMS_EINVAL;
		v = v * base + d;
	}
	*out = v;
	return 0;
}

int vms_sim_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned shift = 0;

	if (!s || !(*s >= '0' && *s <= '9'))
		return VMS_EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return VMS_EINVAL;
		v = v * 10 + d;
	}
	switch (*s) {
	case '\0': break;
	case 'K': case 'k': shift = 10; s++; break;
	case 'M': case 'm': shift = 20; s++; break;
	case 'G': case 'g': shift = 30; s++; break;
	case 'T': case 't': shift = 40; s++; break;
	default: return VMS_EINVAL;
	}
	if (*s)
		return VMS_EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return VMS_EINVAL;
	*out = v << shift;
	return 0;
}

static int bad_spec(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_spec(const char *fmt, ...)
{
	char msg[VMS_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return vms_fail(VMS_EINVAL, "sim spec: %s", msg);
}

enum {
	K_SIZE, K_PROFILE, K_DIRTY, K_SEED, K_PRECOPY, K_P2P, K_FAULT, K_FAULT_AT, K_SLOW, K_N
};
static const char *const key_names[K_N] = {
	"size", "profile", "dirty", "seed", "precopy", "p2p", "fault", "fault_at", "slow",
};

static int parse_item(struct vms_sim_conf *c, int key, const char *val)
{
	uint64_t v;

	switch (key) {
	case K_SIZE:
		if (vms_sim_parse_size(val, &v) < 0)
			return bad_spec("size '%s' is not a number with an optional K/M/G/T "
					"suffix", val);
		if (v < VMS_SIM_OVERHEAD || v > VMS_SIM_SIZE_MAX)
			return bad_spec("size %llu out of range [%u, %llu]",
					(unsigned long long)v, VMS_SIM_OVERHEAD,
					(unsigned long long)VMS_SIM_SIZE_MAX);
		c->size = v;
		return 0;
	case K_DIRTY:
		if (vms_sim_parse_size(val, &c->dirty) < 0)
			return bad_spec("dirty '%s' is not a number with an optional K/M/G/T "
					"suffix", val);
		return 0;
	case K_SLOW:
		if (vms_sim_parse_size(val, &c->slow) < 0 || c->slow == 0)
			return bad_spec("slow '%s' must be a rate in bytes per second > 0 "
					"(K/M/G suffixes)", val);
		return 0;
	case K_SEED:
		if (parse_u64(val, &c->seed) < 0)
			return bad_spec("seed '%s' is not a 64-bit decimal or 0x hex number",
					val);
		return 0;
	case K_FAULT_AT:
		if (parse_u64(val, &c->fault_at) < 0 || c->fault_at == 0)
			return bad_spec("fault_at '%s' must be a call number >= 1", val);
		return 0;
	case K_PRECOPY:
	case K_P2P:
		if (strcmp(val, "0") != 0 && strcmp(val, "1") != 0)
			return bad_spec("%s must be 0 or 1, not '%s'", key_names[key], val);
		if (key == K_PRECOPY)
			c->precopy = val[0] == '1';
		else
			c->p2p = val[0] == '1';
		return 0;
	case K_PROFILE:
		for (unsigned i = 0; i < NPROFILES; i++) {
			if (strcmp(val, profile_names[i]) == 0) {
				c->profile = i;
				return 0;
			}
		}
		return bad_spec("unknown profile '%s' (random, zeros, sparse, text, mixed)", val);
	case K_FAULT:
		if (strcmp(val, "none") == 0)
			c->fault = VMS_SIM_FAULT_NONE;
		else if (strcmp(val, "read") == 0)
			c->fault = VMS_SIM_FAULT_READ;
		else if (strcmp(val, "resume") == 0)
			c->fault = VMS_SIM_FAULT_RESUME;
		else if (strcmp(val, "slow") == 0)
			c->fault = VMS_SIM_FAULT_SLOW;
		else if (strcmp(val, "reinit") == 0)
			c->fault = VMS_SIM_FAULT_REINIT;
		else
			return bad_spec("unknown fault '%s' (none, read, resume, slow, reinit)",
					val);
		return 0;
	}
	return bad_spec("internal: key %d", key);
}

int vms_sim_parse(const char *spec, struct vms_sim_conf *c)
{
	char buf[SPEC_MAX];
	unsigned seen = 0;
	char *item, *save = NULL;
	size_t n;

	memset(c, 0, sizeof(*c));
	c->size = 1u << 20;
	c->profile = VMS_SIM_MIXED;
	c->seed = 1;
	c->precopy = true;
	c->p2p = true;
	if (!spec)
		spec = "";
	n = strlen(spec);
	if (n >= sizeof(buf))
		return bad_spec("longer than %u bytes", SPEC_MAX - 1);
	memcpy(buf, spec, n + 1);
	if (n && (buf[0] == ',' || buf[n - 1] == ',' || strstr(buf, ",,")))
		return bad_spec("empty item in '%s'", spec);

	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		int key = -1, r;

		if (!eq || eq == item)
			return bad_spec("'%s' is not key=value", item);
		*eq = '\0';
		for (int k = 0; k < K_N; k++) {
			if (strcmp(item, key_names[k]) == 0)
				key = k;
		}
		if (key < 0)
			return bad_spec("unknown key '%s' (size, profile, dirty, seed, precopy, "
					"p2p, fault, fault_at, slow)", item);
		if (seen & (1u << key))
			return bad_spec("key '%s' given twice", item);
		seen |= 1u << key;
		if (!eq[1])
			return bad_spec("key '%s' has an empty value", item);
		r = parse_item(c, key, eq + 1);
		if (r < 0)
			return r;
	}
	if (c->dirty > c->size)
		return bad_spec("dirty %llu exceeds size %llu", (unsigned long long)c->dirty,
				(unsigned long long)c->size);
	if ((seen & (1u << K_FAULT_AT)) && c->fault != VMS_SIM_FAULT_READ &&
	    c->fault != VMS_SIM_FAULT_REINIT)
		return bad_spec("fault_at needs fault=read or fault=reinit");
	if (c->fault == VMS_SIM_FAULT_REINIT && !c->precopy)
		return bad_spec("fault=reinit needs precopy=1 (it is a precopy info answer)");
	if ((c->fault == VMS_SIM_FAULT_READ || c->fault == VMS_SIM_FAULT_REINIT) && !c->fault_at)
		c->fault_at = 1;
	if (c->fault == VMS_SIM_FAULT_SLOW && !c->slow)
		c->slow = SLOW_DEFAULT;
	return 0;
}

/* ---- content --------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static inline uint64_t wyrand(uint64_t *s)
{
	__uint128_t t;

	*s += 0xa0761d6478bd642full;
	t = (__uint128_t)*s * (*s ^ 0xe7037ed1a0b428dbull);
	return (uint64_t)(t >> 64) ^ (uint64_t)t;
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Random blocks: a window of a process-wide pool of random words (256 KiB,
 * the same in every process: from a fixed seed), each word XORed with a
 * per-block key; the window's start comes from the key too. As
 * incompressible as the pool (an LZ match between two blocks would need
 * their 64-bit keys to agree), at the speed of a copy from L2: the sim
 * costs its reader little more than a real device would. */
#define POOL_WORDS (32u << 10)
typedef uint64_t u64x4 __attribute__((vector_size(32)));
static uint64_t pool[POOL_WORDS];
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_init(void)
{
	uint64_t s = 0x5eed5eed5eed5eedull;

	for (unsigned i = 0; i < POOL_WORDS; i++)
		pool[i] = wyrand(&s);
}

static void fill_random(uint8_t *p, size_t n, uint64_t key)
{
	size_t words = (n + 7) / 8, i;
	const uint64_t *src = pool + (size_t)(key % (POOL_WORDS - VMS_SIM_BLOCK / 8 + 1));
	uint64_t k = mix64(key ^ 0x2545f4914f6cdd1dull), v;

	u64x4 kv = { k, k, k, k };

	pthread_once(&pool_once, pool_init);
	if (words > VMS_SIM_BLOCK / 8) { /* callers pass blocks; stay correct anyway */
		fill_random(p, VMS_SIM_BLOCK, key);
		fill_random(p + VMS_SIM_BLOCK, n - VMS_SIM_BLOCK, mix64(key));
		return;
	}
	for (i = 0; i + 32 <= n; i += 32) { /* the same words, 4 at a time */
		u64x4 a;

		memcpy(&a, src + i / 8, sizeof(a));
		a ^= kv;
		memcpy(p + i, &a, sizeof(a));
	}
	for (; i + 8 <= n; i += 8) {
		v = src[i / 8] ^ k;
		memcpy(p + i, &v, 8);
	}
	if (i < n) {
		v = src[i / 8] ^ k;
		memcpy(p + i, &v, n - i);
	}
}

/* Words in 16-byte slots, each followed by its separator slot, so that a
 * word is one fixed-size copy (the generator runs at GB/s, not per byte). */
static const struct {
	char w[16];
	uint8_t len; /* including the separator */
} words[32] = {
	{ "the ", 4 }, { "device ", 7 }, { "state ", 6 }, { "of ", 3 }, { "a ", 2 },
	{ "virtual ", 8 }, { "machine ", 8 }, { "moves ", 6 }, { "between ", 8 },
	{ "hosts ", 6 }, { "while ", 6 }, { "it ", 3 }, { "runs ", 5 }, { "and ", 4 },
	{ "every ", 6 }, { "byte ", 5 }, { "is ", 3 }, { "checked ", 8 }, { "queue ", 6 },
	{ "ring ", 5 }, { "buffer ", 7 }, { "register ", 9 }, { "interrupt ", 10 },
	{ "vector ", 7 }, { "page ", 5 }, { "table ", 6 }, { "memory ", 7 },
	{ "driver ", 7 }, { "firmware ", 9 }, { "context ", 8 }, { "descriptor ", 11 },
	{ "doorbell ", 9 },
};

static void fill_text(uint8_t *p, size_t n, uint64_t key)
{
	uint8_t tmp[VMS_SIM_BLOCK + 16];
	uint64_t s = key;
	size_t i = 0;

	while (n > VMS_SIM_BLOCK) { /* callers pass blocks; stay correct anyway */
		fill_text(p, VMS_SIM_BLOCK, s);
		p += VMS_SIM_BLOCK;
		n -= VMS_SIM_BLOCK;
		s = mix64(s);
	}
	while (i < n) {
		uint64_t r = wyrand(&s);

		for (int k = 0; k < 8 && i < n; k++, r >>= 8) {
			unsigned w = (unsigned)(r & 31);

			memcpy(tmp + i, words[w].w, 16);
			i += words[w].len;
			if ((r & 0xe0) == 0xe0)
				tmp[i - 1] = '\n';
		}
	}
	memcpy(p, tmp, n);
}

/* Block j of the content at version v. */
static void gen_block(const struct vms_sim_conf *c, uint64_t j, uint32_t v, uint8_t *p,
		      size_t n)
{
	uint64_t key = mix64(c->seed ^ mix64(j ^ mix64((uint64_t)v + 0x9e3779b97f4a7c15ull)));
	unsigned pick = (unsigned)(key >> 61); /* 0..7 */
	enum { RND, ZERO, TXT } kind;

	switch (c->profile) {
	case VMS_SIM_RANDOM: kind = RND; break;
	case VMS_SIM_ZEROS: kind = ZERO; break;
	case VMS_SIM_SPARSE: kind = pick == 0 ? RND : ZERO; break;
	case VMS_SIM_TEXT: kind = TXT; break;
	default: kind = pick < 2 ? RND : pick < 4 ? ZERO : TXT; break;
	}
	switch (kind) {
	case RND:
		fill_random(p, n, key);
		break;
	case TXT:
		fill_text(p, n, key);
		break;
	case ZERO:
		memset(p, 0, n);
		if (v) { /* a dirtied zero block must still change */
			uint8_t stamp[16];

			put_le64(stamp, key | 1);
			put_le64(stamp + 8, v);
			memcpy(p, stamp, n < 16 ? n : 16);
		}
		break;
	}
}

/* Geometry shared by source, sink and validator. */
struct geo {
	struct vms_sim_conf c;
	uint64_t clen;  /* content bytes = size - overhead */
	uint64_t nblk;  /* blocks, the last one may be short */
};

static size_t blen(const struct geo *g, uint64_t j)
{
	uint64_t left = g->clen - j * VMS_SIM_BLOCK;

	return left < VMS_SIM_BLOCK ? (size_t)left : VMS_SIM_BLOCK;
}

/* Round r dirties `count` blocks from `start` on, wrapping. */
static uint64_t round_count(const struct geo *g, uint64_t dirty)
{
	uint64_t k = dirty / VMS_SIM_BLOCK + (dirty % VMS_SIM_BLOCK != 0);

	return k < g->nblk ? k : g->nblk;
}

static uint64_t round_start(const struct geo *g, uint64_t r)
{
	return g->nblk ? mix64(g->c.seed ^ mix64(r ^ 0xd1b54a32d192ed03ull)) % g->nblk : 0;
}

static void apply_round(const struct geo *g, uint32_t *ver, uint64_t r, uint64_t dirty)
{
	uint64_t start = round_start(g, r), k = round_count(g, dirty);

	for (uint64_t i = 0; i < k; i++)
		ver[(start + i) % g->nblk]++;
}

static uint64_t delta_len(const struct geo *g, uint64_t r, uint64_t dirty)
{
	uint64_t start = round_start(g, r), k = round_count(g, dirty), n = 0;

	for (uint64_t i = 0; i < k; i++)
		n += 8 + blen(g, (start + i) % g->nblk);
	return n;
}

static uint64_t seg_len(const struct geo *g, uint32_t type, uint64_t r, uint64_t dirty)
{
	return VMS_SIM_OVERHEAD + (type == VMS_SIM_SEG_FULL ? g->clen : delta_len(g, r, dirty));
}

static void put_hdr(uint8_t h[VMS_SIM_HDR], const struct geo *g, uint32_t type, uint64_t gen,
		    uint64_t dirty, uint64_t payload)
{
	memcpy(h, VMS_SIM_MAGIC, 8);
	h[8] = (uint8_t)VMS_SIM_VERSION;
	h[9] = 0;
	h[10] = (uint8_t)type;
	h[11] = 0;
	h[12] = (uint8_t)g->c.profile;
	h[13] = h[14] = h[15] = 0;
	put_le64(h + 16, g->c.size);
	put_le64(h + 24, g->c.seed);
	put_le64(h + 32, gen);
	put_le64(h + 40, dirty);
	put_le64(h + 48, payload);
	put_le64(h + 56, vms_xxh3(h, 56));
}

/* ---- saving: generating segments ----------------------------------------- */

struct seg {
	uint32_t type;
	uint64_t gen;
	bool final;
	bool pregen;             /* generated by the caller: bytes [off, len) of
				    the device's inline buffer are still to go */
	size_t off, len;
};

/* A saving session: its pipe and what is queued for it. */
struct save {
	int rfd;
	int wfd;                 /* mu: -1 once closed (the end of the state) */
	size_t cap;              /* pipe capacity in bytes */
	uint64_t dirty;          /* bytes per round for DELTA segments */
	struct seg q[QMAX];      /* mu */
	unsigned head, tail;     /* mu: q[head..tail) still to emit */
	unsigned done;           /* mu: segments completely emitted */
	bool stop;               /* mu: the session is ending */
	uint64_t written;        /* bytes in the pipe so far; by whoever emits:
				    the caller while head == tail, else the thread */
	/* user thread only */
	uint64_t queued, consumed, initial_len;
	bool final_queued;
	struct timespec t0;
	bool paced;
};

struct sim;

/* Where a segment is generated to: a buffer, handed on by full() whenever it
 * fills up (NULL: the buffer is big enough for the whole segment). */
struct out {
	uint8_t *p;
	size_t n, cap;
	int (*full)(struct out *o);
	struct sim *s;
	struct save *sv;
};

static int out_put(struct out *o, const void *p, size_t n)
{
	const uint8_t *src = p;

	while (n > 0) {
		size_t k;

		/* a full buffer is handed on only when more is coming */
		if (o->n == o->cap && (!o->full || o->full(o) < 0))
			return -1;
		k = o->cap - o->n < n ? o->cap - o->n : n;
		memcpy(o->p + o->n, src, k);
		o->n += k;
		src += k;
		n -= k;
	}
	return 0;
}

/* A block (or a DELTA entry's block): straight into the buffer when it fits,
 * hashed there while it is in L1. */
static int out_block(struct out *o, struct vms_digest *dg, const struct geo *g, uint64_t j,
		     uint32_t v)
{
	size_t n = blen(g, j);
	uint8_t blk[VMS_SIM_BLOCK];

	if (o->n == o->cap && o->full && o->full(o) < 0)
		return -1;
	if (o->cap - o->n >= n) {
		uint8_t *at = o->p + o->n;

		gen_block(&g->c, j, v, at, n);
		vms_digest_update(dg, at, n);
		o->n += n;
		return 0;
	}
	gen_block(&g->c, j, v, blk, n);
	vms_digest_update(dg, blk, n);
	return out_put(o, blk, n);
}

/* Generate one segment into o. What does not fill a whole buffer stays in o
 * (o->n bytes) for the caller. */
static int gen_seg(const struct geo *g, const uint32_t *ver, uint64_t dirty, const struct seg *sg,
		   struct out *o)
{
	struct vms_digest dg;
	uint8_t h[VMS_SIM_HDR], t[8];
	uint64_t payload = seg_len(g, sg->type, sg->gen, dirty) - VMS_SIM_OVERHEAD;

	put_hdr(h, g, sg->type, sg->gen, dirty, payload);
	if (out_put(o, h, sizeof(h)) < 0)
		return -1;
	vms_digest_init(&dg);
	if (sg->type == VMS_SIM_SEG_FULL) {
		for (uint64_t j = 0; j < g->nblk; j++)
			if (out_block(o, &dg, g, j, ver[j]) < 0)
				return -1;
	} else {
		uint64_t start = round_start(g, sg->gen), k = round_count(g, dirty);

		for (uint64_t i = 0; i < k; i++) {
			uint64_t j = (start + i) % g->nblk;
			uint8_t idx[8];

			put_le64(idx, j);
			vms_digest_update(&dg, idx, 8);
			if (out_put(o, idx, 8) < 0 || out_block(o, &dg, g, j, ver[j]) < 0)
				return -1;
		}
	}
	put_le64(t, vms_digest_final(&dg));
	return out_put(o, t, sizeof(t));
}

/* ---- loading: the validator --------------------------------------------------- */

struct val {
	const struct geo *g;
	uint32_t *ver;
	uint64_t gen, dirty;
	bool have_dirty;
	enum { V_HDR, V_PAY, V_TRL } ph;
	uint8_t hb[VMS_SIM_HDR];
	size_t hn;
	uint32_t type;
	uint64_t plen, ppos;
	struct vms_digest dg;
	uint8_t tb[8];
	size_t tn;
	uint64_t item;        /* FULL: block; DELTA: entry */
	uint64_t j;           /* DELTA: block of the current entry */
	uint64_t dstart;      /* DELTA: first block of the round */
	bool in_index;
	uint8_t ib[8];
	size_t in;
	uint8_t acc[VMS_SIM_BLOCK], exp[VMS_SIM_BLOCK];
	size_t an;
	bool seen_full, last_full;
	uint64_t fed;         /* stream bytes consumed */
	uint64_t seg_at;      /* stream offset of the current segment */
	bool bad;
	char msg[MSG_LEN];
};

static void vbad(struct val *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vbad(struct val *v, const char *fmt, ...)
{
	char m[MSG_LEN - 64];
	va_list ap;

	if (v->bad)
		return;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	snprintf(v->msg, sizeof(v->msg), "%s (segment at byte %llu)", m,
		 (unsigned long long)v->seg_at);
	v->bad = true;
}

static void replay_to(struct val *v, uint64_t gen)
{
	while (v->gen < gen) {
		v->gen++;
		apply_round(v->g, v->ver, v->gen, v->dirty);
	}
}

static void on_header(struct val *v)
{
	const struct geo *g = v->g;
	const uint8_t *h = v->hb;
	uint64_t size = get_le64(h + 16), seed = get_le64(h + 24), gen = get_le64(h + 32);
	uint64_t dirty = get_le64(h + 40);
	uint32_t profile = h[12] | (uint32_t)h[13] << 8 | (uint32_t)h[14] << 16 |
			   (uint32_t)h[15] << 24;

	if (memcmp(h, VMS_SIM_MAGIC, 8) != 0) {
		vbad(v, "not a sim device image (bad magic)");
		return;
	}
	if (h[8] != VMS_SIM_VERSION || h[9] != 0) {
		vbad(v, "unsupported sim image version %u", h[8] | (unsigned)h[9] << 8);
		return;
	}
	if (get_le64(h + 56) != vms_xxh3(h, 56)) {
		vbad(v, "segment header checksum mismatch");
		return;
	}
	v->type = h[10] | (uint32_t)h[11] << 8;
	if (v->type != VMS_SIM_SEG_FULL && v->type != VMS_SIM_SEG_DELTA) {
		vbad(v, "unknown segment type %u", v->type);
		return;
	}
	if (size != g->c.size || seed != g->c.seed || profile != g->c.profile) {
		vbad(v, "image of an incompatible device (size %llu, seed %llu, profile "
		"%u; this device: size %llu, seed %llu, profile %u)",
		(unsigned long long)size, (unsigned long long)seed, profile,
		(unsigned long long)g->c.size, (unsigned long long)g->c.seed,
		g->c.profile);
		return;
	}
	if (!v->have_dirty) {
		v->dirty = dirty;
		v->have_dirty = true;
	} else if (dirty != v->dirty) {
		vbad(v, "dirty size changed from %llu to %llu",
		(unsigned long long)v->dirty, (unsigned long long)dirty);
		return;
	}
	v->plen = get_le64(h + 48);
	if (v->type == VMS_SIM_SEG_FULL) {
		if (gen < v->gen ||
		    (gen - v->gen) > REPLAY_MAX / (round_count(g, v->dirty) + 1)) {
			vbad(v, "full image of generation %llu after generation %llu",
			(unsigned long long)gen, (unsigned long long)v->gen);
			return;
		}
		replay_to(v, gen);
		if (v->plen != g->clen) {
			vbad(v, "full image payload %llu bytes, expected %llu",
			(unsigned long long)v->plen, (unsigned long long)g->clen);
			return;
		}
	} else {
		if (!v->seen_full) {
			vbad(v, "delta segment before any full image");
			return;
		}
		if (gen != v->gen + 1) {
			vbad(v, "delta of generation %llu after generation %llu",
			(unsigned long long)gen, (unsigned long long)v->gen);
			return;
		}
		if (v->plen != delta_len(g, gen, v->dirty)) {
			vbad(v, "delta payload %llu bytes, expected %llu",
			(unsigned long long)v->plen,
			(unsigned long long)delta_len(g, gen, v->dirty));
			return;
		}
		replay_to(v, gen);
		v->dstart = round_start(g, gen);
		v->in_index = true;
		v->in = 0;
	}
	v->item = 0;
	v->an = 0;
	v->ppos = 0;
	vms_digest_init(&v->dg);
	v->ph = v->plen ? V_PAY : V_TRL;
	v->tn = 0;
}

static void check_block(struct val *v, uint64_t j)
{
	size_t n = blen(v->g, j);

	gen_block(&v->g->c, j, v->ver[j], v->exp, n);
	if (memcmp(v->exp, v->acc, n) != 0) {
		size_t k = 0;

		while (v->exp[k] == v->acc[k])
			k++;
		vbad(v, "content differs from the source's: block %llu (generation %llu), "
		     "byte %zu of the block", (unsigned long long)j,
		     (unsigned long long)v->gen, k);
	}
}

/* Consume payload bytes; returns how many were used. */
static size_t on_payload(struct val *v, const uint8_t *p, size_t n)
{
	const struct geo *g = v->g;
	size_t take;

	if (v->type == VMS_SIM_SEG_DELTA && v->in_index) {
		take = 8 - v->in < n ? 8 - v->in : n;
		memcpy(v->ib + v->in, p, take);
		v->in += take;
		if (v->in == 8) {
			uint64_t want = (v->dstart + v->item) % g->nblk;

			v->j = get_le64(v->ib);
			if (v->j != want) /* also keeps j < nblk for blen() */
				vbad(v, "delta entry %llu names block %llu, expected %llu",
			 (unsigned long long)v->item, (unsigned long long)v->j,
			 (unsigned long long)want);
			v->in_index = false;
			v->an = 0;
		}
		return take;
	}
	{
		uint64_t j = v->type == VMS_SIM_SEG_FULL ? v->item : v->j;
		size_t want = blen(g, j);

		take = want - v->an < n ? want - v->an : n;
		memcpy(v->acc + v->an, p, take);
		v->an += take;
		if (v->an == want) {
			check_block(v, j);
			v->item++;
			v->an = 0;
			v->in = 0;
			v->in_index = v->type == VMS_SIM_SEG_DELTA;
		}
	}
	return take;
}

static void val_feed(struct val *v, const uint8_t *p, size_t n)
{
	while (n > 0 && !v->bad) {
		size_t take;

		switch (v->ph) {
		case V_HDR:
			if (v->hn == 0)
				v->seg_at = v->fed;
			take = VMS_SIM_HDR - v->hn < n ? VMS_SIM_HDR - v->hn : n;
			memcpy(v->hb + v->hn, p, take);
			v->hn += take;
			if (v->hn == VMS_SIM_HDR)
				on_header(v);
			break;
		case V_PAY: {
			uint64_t left = v->plen - v->ppos;

			take = on_payload(v, p, left < n ? (size_t)left : n);
			vms_digest_update(&v->dg, p, take);
			v->ppos += take;
			if (v->ppos == v->plen)
				v->ph = V_TRL;
			break;
		}
		case V_TRL:
		default:
			take = 8 - v->tn < n ? 8 - v->tn : n;
			memcpy(v->tb + v->tn, p, take);
			v->tn += take;
			if (v->tn == 8) {
				if (get_le64(v->tb) != vms_digest_final(&v->dg))
					vbad(v, "payload checksum mismatch");
				v->seen_full |= v->type == VMS_SIM_SEG_FULL;
				v->last_full = v->type == VMS_SIM_SEG_FULL;
				v->ph = V_HDR;
				v->hn = 0;
			}
			break;
		}
		p += take;
		n -= take;
		v->fed += take;
	}
}

/* The verdict at RESUMING -> STOP. */
static void val_finish(struct val *v)
{
	if (v->bad)
		return;
	if (v->fed == 0) {
		snprintf(v->msg, sizeof(v->msg), "no state was loaded (0 bytes written)");
		v->bad = true;
	} else if (v->ph != V_HDR || v->hn != 0) {
		snprintf(v->msg, sizeof(v->msg), "image truncated: the stream ends inside the "
			 "segment at byte %llu, after %llu bytes", (unsigned long long)v->seg_at,
			 (unsigned long long)v->fed);
		v->bad = true;
	} else if (!v->last_full) {
		snprintf(v->msg, sizeof(v->msg), "incomplete image: the stream (%llu bytes) does "
			 "not end with a full device image", (unsigned long long)v->fed);
		v->bad = true;
	}
}

/* ---- the device ---------------------------------------------------------------- */

/* A loading session: its pipe and its validator. */
struct load {
	int rfd, wfd;
	uint64_t cap_pages;      /* pipe capacity in pages */
	uint64_t wpages;         /* pages the bytes written may occupy at most */
	bool thread;             /* mu: the device's thread validates */
	bool taken;              /* mu: ... and has started to */
	bool done;               /* mu: ... and reached the end of the input */
	struct val v;            /* the thread's once `thread`, else the user's */
	char err[MSG_LEN];       /* the thread's read error, if any */
};

struct sim {
	struct geo g;
	uint32_t *ver;        /* block versions of the current content */
	uint64_t gen;         /* rounds applied */
	uint64_t rdirty;      /* bytes per round in this content's history */
	uint32_t state;
	uint64_t reads;       /* read calls, for fault=read */
	uint64_t infos;       /* precopy info calls, for fault=reinit */
	struct save *sv;      /* the data session (set and cleared under mu) */
	struct load *ld;
	int derr;             /* sticky error of the data session */
	char dmsg[VMS_MSG_MAX];
	uint8_t *ibuf;        /* INLINE_MAX bytes: segments the caller emits; the
				 thread's while a pregen segment is queued */
	/* the device's thread */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thr;
	bool thr_started;
	bool quit;            /* mu */
	bool busy;            /* mu: the thread works on a job, outside mu */
	int evfd;             /* wakes the thread out of poll() (a session ends) */
	uint8_t *ring[RING_MAX];   /* thread: generation buffers */
	uint64_t ring_end[RING_MAX]; /* stream offset after a buffer's last spliced byte */
	unsigned nring, rcur;
	bool no_splice;       /* vmsplice() refused once: copy */
};

static const char sim_tag[] = "sim";

static int data_fail(struct sim *s, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int data_fail(struct sim *s, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->dmsg, sizeof(s->dmsg), fmt, ap);
	va_end(ap);
	s->derr = code;
	return vms_fail_msg(code, s->dmsg);
}

/* A session's pipe; `big`: ask for PIPE_SIZE (best effort). *cap is what the
 * kernel gave (it may give less, e.g. beyond the user's pipe page limit). */
static int make_pipe(int fds[2], bool nonblock_write, bool big, size_t *cap)
{
	int c;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	if (big)
		(void)fcntl(fds[1], F_SETPIPE_SZ, (int)PIPE_SIZE);
	if (nonblock_write && fcntl(fds[1], F_SETFL, O_NONBLOCK) < 0) {
		int e = errno;

		close(fds[0]);
		close(fds[1]);
		return -e;
	}
	c = fcntl(fds[1], F_GETPIPE_SZ);
	*cap = c > 0 ? (size_t)c : 2 * PAGE;
	return 0;
}

/* mu held. */
static void close_wfd(struct save *sv)
{
	if (sv->wfd >= 0) {
		close(sv->wfd);
		sv->wfd = -1;
	}
}

/* ---- the device's thread: saving ---- */

/* Wait until the pipe takes more, or the session ends (-1). */
static int wait_out(struct sim *s, struct save *sv)
{
	struct pollfd pf[2] = { { .fd = sv->wfd, .events = POLLOUT },
				{ .fd = s->evfd, .events = POLLIN } };

	if (poll(pf, 2, -1) < 0 && errno != EINTR)
		return -1;
	return pf[1].revents ? -1 : 0;
}

/* Write everything (copying); 0, or -1 when told to stop or the pipe broke. */
static int pump(struct sim *s, struct save *sv, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(sv->wfd, p, n);

		if (w > 0) {
			p += w;
			n -= (size_t)w;
			sv->written += (uint64_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			if (wait_out(s, sv) < 0)
				return -1;
			continue;
		}
		return -1;
	}
	return 0;
}

/* Before the thread generates into a ring buffer again: every byte it gave
 * the pipe by reference (up to stream offset `upto`) must have been read.
 * The pipe holds at most cap bytes, so everything before written - cap has
 * been: with the ring one buffer larger than the pipe that settles it
 * without asking the pipe (whose lock a reader holds while it copies);
 * otherwise FIONREAD tells what is still in the pipe. */
static int ring_wait(struct sim *s, struct save *sv, uint64_t upto)
{
	while (upto && upto + sv->cap > sv->written) {
		int inpipe = 0;
		struct pollfd pf = { .fd = s->evfd, .events = POLLIN };

		if (ioctl(sv->wfd, FIONREAD, &inpipe) < 0)
			return -1;
		if (sv->written - (uint64_t)inpipe >= upto)
			return 0;
		if (poll(&pf, 1, 1) > 0)
			return -1;
	}
	return 0;
}

/* Buffers for a pipe of `cap` bytes: one more than the pipe holds, and the
 * one being filled. Fewer if memory is short (ring_wait keeps it correct). */
static int ring_alloc(struct sim *s, size_t cap)
{
	unsigned want = (unsigned)(cap / EMIT_BUF) + 2;

	if (want > RING_MAX)
		want = RING_MAX;
	while (s->nring < want) {
		/* Small pages: the reader drops each page the pipe held as the
		 * producer pins the next ones; in one huge page both would
		 * bounce the same reference count between the CPUs. */
		void *p = mmap(NULL, EMIT_BUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);

		if (p == MAP_FAILED)
			break;
		(void)madvise(p, EMIT_BUF, MADV_NOHUGEPAGE);
		s->ring[s->nring++] = p;
	}
	return s->nring ? 0 : -1;
}

/* out.full of the thread: hand the buffer to the pipe by reference
 * (vmsplice, no copy) and move on to the next one of the ring. */
static int ring_full(struct out *o)
{
	struct sim *s = o->s;
	struct save *sv = o->sv;
	struct iovec iov = { .iov_base = o->p, .iov_len = o->n };
	bool spliced = false;

	while (!s->no_splice && iov.iov_len > 0) {
		ssize_t w = vmsplice(sv->wfd, &iov, 1, SPLICE_F_NONBLOCK);

		if (w > 0) {
			iov.iov_base = (uint8_t *)iov.iov_base + w;
			iov.iov_len -= (size_t)w;
			sv->written += (uint64_t)w;
			spliced = true;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			if (wait_out(s, sv) < 0)
				return -1;
			continue;
		}
		if (w < 0 && errno != EBADF && errno != EPIPE) {
			s->no_splice = true; /* not allowed here: copy from now on */
			break;
		}
		return -1;
	}
	if (iov.iov_len > 0 && pump(s, sv, iov.iov_base, iov.iov_len) < 0)
		return -1;
	s->ring_end[s->rcur] = spliced ? sv->written : 0;
	s->rcur = (s->rcur + 1) % s->nring;
	if (ring_wait(s, sv, s->ring_end[s->rcur]) < 0)
		return -1;
	o->p = s->ring[s->rcur];
	o->n = 0;
	return 0;
}

static int thread_emit(struct sim *s, struct save *sv, const struct seg *sg)
{
	struct out o = { .cap = EMIT_BUF, .full = ring_full, .s = s, .sv = sv };

	if (sg->pregen) /* the rest of what the caller generated */
		return pump(s, sv, s->ibuf + sg->off, sg->len - sg->off);
	if (ring_alloc(s, sv->cap) < 0 || ring_wait(s, sv, s->ring_end[s->rcur]) < 0)
		return -1;
	o.p = s->ring[s->rcur];
	if (gen_seg(&s->g, s->ver, sv->dirty, sg, &o) < 0)
		return -1;
	/* the tail is copied: its buffer is free again at once */
	return pump(s, sv, o.p, o.n);
}

/* ---- the device's thread: loading ---- */

static void consume(struct sim *s, struct load *ld)
{
	uint8_t *buf = ring_alloc(s, 0) == 0 ? s->ring[0] : NULL;

	for (;;) {
		uint8_t small[PAGE];
		ssize_t n = buf ? read(ld->rfd, buf, EMIT_BUF) : read(ld->rfd, small, sizeof(small));

		if (n > 0) {
			val_feed(&ld->v, buf ? buf : small, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			snprintf(ld->err, sizeof(ld->err), "device read its pipe: %s",
				 vms_sys_err(errno));
		break;
	}
	val_finish(&ld->v);
}

/* mu held. */
static bool has_work(const struct sim *s)
{
	return (s->sv && !s->sv->stop && s->sv->head != s->sv->tail) ||
	       (s->ld && s->ld->thread && !s->ld->taken);
}

static void *thread_main(void *arg)
{
	struct sim *s = arg;

	pthread_setname_np(pthread_self(), "vms-sim");
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->quit && !has_work(s))
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->quit)
			break;
		s->busy = true;
		if (s->sv && !s->sv->stop && s->sv->head != s->sv->tail) {
			struct save *sv = s->sv;
			struct seg sg = sv->q[sv->head % QMAX];
			int r;

			pthread_mutex_unlock(&s->mu);
			r = thread_emit(s, sv, &sg);
			pthread_mutex_lock(&s->mu);
			sv->head++;
			sv->done++;
			if (r < 0)
				sv->stop = true; /* stopped, or the pipe broke */
			/* The end of the state (or of a broken session): EOF. */
			if (r < 0 || sg.final)
				close_wfd(sv);
		} else {
			struct load *ld = s->ld;

			ld->taken = true;
			pthread_mutex_unlock(&s->mu);
			consume(s, ld);
			pthread_mutex_lock(&s->mu);
			ld->done = true;
		}
		s->busy = false;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Started when a session first needs it; it serves the device until close. */
static int thread_start(struct sim *s)
{
	int r;

	if (s->thr_started)
		return 0;
	s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->evfd < 0)
		return -errno;
	r = pthread_create(&s->thr, NULL, thread_main, s);
	if (r) {
		close(s->evfd);
		s->evfd = -1;
		return -r;
	}
	s->thr_started = true;
	return 0;
}

static int thread_fail(int neg_errno, const char *what)
{
	char eb[96];

	return vms_fail(neg_errno == -ENOMEM ? VMS_ENOMEM : VMS_EDEVIO, "sim: cannot %s: %s", what,
			vms_errno_text(-neg_errno, eb, sizeof(eb)));
}

/* ---- sessions (user thread) ---- */

static void end_save(struct sim *s)
{
	struct save *sv = s->sv;

	if (!sv)
		return;
	pthread_mutex_lock(&s->mu);
	sv->stop = true;
	if (s->busy) {
		/* Wakes the thread out of poll() on a full pipe. An eventfd
		 * write of 1 cannot fail short of a counter overflow. */
		uint64_t one = 1;
		ssize_t w = write(s->evfd, &one, sizeof(one));

		(void)w;
		while (s->busy)
			pthread_cond_wait(&s->cv, &s->mu);
		w = read(s->evfd, &one, sizeof(one)); /* reset it for the next session */
		(void)w;
	}
	s->sv = NULL;
	close_wfd(sv);
	pthread_mutex_unlock(&s->mu);
	close(sv->rfd);
	free(sv);
}

static int start_save(struct sim *s)
{
	bool big = s->g.c.size > INLINE_SIZE;
	struct save *sv;
	int fds[2], r;

	sv = calloc(1, sizeof(*sv));
	if (!sv)
		return vms_fail(VMS_ENOMEM, "sim: out of memory");
	r = make_pipe(fds, true, big, &sv->cap);
	if (r == 0 && big) {
		r = thread_start(s);
		if (r < 0) {
			close(fds[0]);
			close(fds[1]);
		}
	}
	if (r < 0) {
		free(sv);
		return thread_fail(r, "start a data session");
	}
	sv->rfd = fds[0];
	sv->wfd = fds[1];
	sv->dirty = s->rdirty;
	pthread_mutex_lock(&s->mu);
	s->sv = sv;
	s->rcur = 0;
	memset(s->ring_end, 0, sizeof(s->ring_end)); /* a new pipe holds nothing */
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* Write without blocking what the pipe takes now; returns how much. */
static size_t put_nonblock(struct save *sv, const uint8_t *p, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t w = write(sv->wfd, p + done, n - done);

		if (w > 0)
			done += (size_t)w;
		else if (!(w < 0 && errno == EINTR))
			break;
	}
	sv->written += done;
	return done;
}

/* Stage a segment (user thread): emitted here and now when the thread has
 * nothing queued and it fits the pipe, else queued for the thread. */
static int queue_seg(struct sim *s, uint32_t type, bool final)
{
	struct save *sv = s->sv;
	struct seg sg = { .type = type, .gen = s->gen, .final = final };
	uint64_t len = seg_len(&s->g, type, s->gen, s->rdirty);
	bool here, broken;
	int r;

	pthread_mutex_lock(&s->mu);
	here = sv->head == sv->tail;
	broken = sv->stop || sv->wfd < 0;
	pthread_mutex_unlock(&s->mu);
	sv->queued += len;
	sv->final_queued |= final;
	if (broken) {
		/* a broken session gets no more bytes: its reader sees the end
		 * of the stream too early, and says so */
		return 0;
	}
	if (here && len <= INLINE_MAX && sv->written - sv->consumed + len <= sv->cap) {
		if (!s->ibuf)
			s->ibuf = malloc(INLINE_MAX);
		here = s->ibuf != NULL;
	} else {
		here = false;
	}
	if (here) {
		struct out o = { .p = s->ibuf, .cap = INLINE_MAX };
		size_t off;

		(void)gen_seg(&s->g, s->ver, sv->dirty, &sg, &o); /* fits: cannot fail */
		off = put_nonblock(sv, s->ibuf, o.n);
		if (off == o.n) {
			pthread_mutex_lock(&s->mu);
			sv->head++;
			sv->tail++;
			sv->done++;
			if (final)
				close_wfd(sv); /* the end of the state: EOF */
			pthread_mutex_unlock(&s->mu);
			return 0;
		}
		sg.pregen = true; /* the pipe was fuller than it looked */
		sg.off = off;
		sg.len = o.n;
	}
	r = thread_start(s);
	if (r < 0) {
		char eb[96];

		return data_fail(s, r == -ENOMEM ? VMS_ENOMEM : VMS_EDEVIO,
				 "sim: cannot start the device's thread: %s",
				 vms_errno_text(-r, eb, sizeof(eb)));
	}
	pthread_mutex_lock(&s->mu);
	sv->q[sv->tail % QMAX] = sg;
	sv->tail++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* Give the load to the thread (mu not held). */
static int load_to_thread(struct sim *s, struct load *ld)
{
	int r = thread_start(s);

	if (r < 0)
		return r;
	pthread_mutex_lock(&s->mu);
	ld->thread = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* Wait until the thread read the load to its end (after wfd was closed). */
static void load_wait(struct sim *s, struct load *ld)
{
	pthread_mutex_lock(&s->mu);
	while (ld->thread && !ld->done)
		pthread_cond_wait(&s->cv, &s->mu);
	s->ld = NULL;
	pthread_mutex_unlock(&s->mu);
}

static void free_load(struct load *ld)
{
	if (ld->rfd >= 0)
		close(ld->rfd);
	free(ld->v.ver);
	free(ld);
}

static void abort_load(struct sim *s)
{
	struct load *ld = s->ld;

	if (!ld)
		return;
	if (ld->wfd >= 0)
		close(ld->wfd); /* the end of the input for whoever reads it */
	load_wait(s, ld);
	free_load(ld);
}

/* The load's pipe, made when the data session is first used: a VMM
 * moves every destination device to RESUMING when the stream announces it,
 * and thousands of devices waiting for their bytes must not hold two
 * descriptors each. 0, or a negative enum vms_err (the load is aborted). */
static int load_open(struct sim *s, struct load *ld)
{
	bool big = s->g.c.size > INLINE_SIZE;
	size_t cap = 0;
	int fds[2], r;

	if (ld->wfd >= 0)
		return 0;
	r = make_pipe(fds, false, big, &cap);
	if (r < 0)
		return thread_fail(r, "start loading");
	ld->rfd = fds[0];
	ld->wfd = fds[1];
	ld->cap_pages = cap / PAGE;
	if (big) { /* will not fit the pipe: validated as it arrives */
		r = load_to_thread(s, ld);
		if (r < 0)
			return thread_fail(r, "start loading");
	}
	return 0;
}

static int start_load(struct sim *s)
{
	struct load *ld;

	ld = calloc(1, sizeof(*ld));
	if (!ld)
		return vms_fail(VMS_ENOMEM, "sim: out of memory");
	ld->v.ver = calloc(s->g.nblk ? s->g.nblk : 1, sizeof(uint32_t));
	if (!ld->v.ver) {
		free(ld);
		return vms_fail(VMS_ENOMEM, "sim: out of memory");
	}
	ld->v.g = &s->g;
	ld->rfd = ld->wfd = -1;
	pthread_mutex_lock(&s->mu);
	s->ld = ld;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* RESUMING -> STOP: end of input, the verdict. */
static int finish_load(struct sim *s)
{
	struct load *ld = s->ld;
	char msg[VMS_MSG_MAX];
	bool thread;
	int r = 0;

	if (ld->wfd >= 0)
		close(ld->wfd);
	pthread_mutex_lock(&s->mu);
	thread = ld->thread;
	pthread_mutex_unlock(&s->mu);
	if (thread) {
		load_wait(s, ld);
	} else {
		/* everything is in the pipe: validate it here */
		uint8_t buf[16384];
		ssize_t n;

		while (ld->rfd >= 0 && (n = read(ld->rfd, buf, sizeof(buf))) != 0) {
			if (n > 0) {
				val_feed(&ld->v, buf, (size_t)n);
			} else if (errno != EINTR) {
				snprintf(ld->err, sizeof(ld->err), "device read its pipe: %s",
					 vms_sys_err(errno));
				break;
			}
		}
		val_finish(&ld->v);
		pthread_mutex_lock(&s->mu);
		s->ld = NULL;
		pthread_mutex_unlock(&s->mu);
	}
	if (ld->err[0]) {
		snprintf(msg, sizeof(msg), "%s", ld->err);
		r = VMS_EDEVIO;
	} else if (ld->v.bad) {
		snprintf(msg, sizeof(msg), "image rejected at RESUMING -> STOP: %s", ld->v.msg);
		r = VMS_EDEVIO;
	} else if (s->g.c.fault == VMS_SIM_FAULT_RESUME) {
		snprintf(msg, sizeof(msg), "image rejected at RESUMING -> STOP: simulated fault "
			 "(fault=resume)");
		r = VMS_EDEVIO;
	} else {
		/* The device now holds the loaded content. */
		uint32_t *old = s->ver;

		s->ver = ld->v.ver;
		ld->v.ver = old;
		s->gen = ld->v.gen;
		if (ld->v.gen > 0)
			s->rdirty = ld->v.dirty; /* continue the source's dirtying pattern */
	}
	free_load(ld);
	return r ? vms_fail_msg(r, msg) : 0;
}

static int sim_caps(void *impl, uint32_t *caps)
{
	const struct sim *s = impl;

	*caps = VMS_DEVCAP_STOP_COPY | (s->g.c.p2p ? VMS_DEVCAP_P2P : 0) |
		(s->g.c.precopy ? VMS_DEVCAP_PRE_COPY : 0);
	return 0;
}

static int sim_get_state(void *impl, uint32_t *state)
{
	*state = ((struct sim *)impl)->state;
	return 0;
}

static void end_session(struct sim *s)
{
	end_save(s);
	abort_load(s);
	s->derr = 0;
	s->dmsg[0] = '\0';
}

static int sim_set_state(void *impl, uint32_t next)
{
	struct sim *s = impl;
	uint32_t prev = s->state, caps;
	int r;

	sim_caps(s, &caps);
	if (vms_mig_next_state(caps, prev, next) != next || next == prev)
		return vms_fail(VMS_ESTATE, "sim: %s -> %s is not a single legal arc",
				vms_state_str(prev), vms_state_str(next));

	if (prev == VMS_DEV_RESUMING) { /* -> STOP: load or reject */
		r = finish_load(s);
		s->state = r < 0 ? VMS_DEV_ERROR : next;
		s->derr = 0;
		return r;
	}
	if (vms_state_ends_session(prev, next)) {
		end_session(s);
	} else if (vms_state_saving(next) && !vms_state_saving(prev)) {
		r = start_save(s);
		if (r < 0)
			return r;
		r = queue_seg(s, VMS_SIM_SEG_FULL, !vms_state_precopy(next));
		if (r < 0) {
			end_session(s);
			return r;
		}
		s->sv->initial_len = vms_state_precopy(next) ? s->sv->queued : 0;
	} else if (vms_state_precopy(prev) && next == VMS_DEV_STOP_COPY) {
		r = queue_seg(s, VMS_SIM_SEG_FULL, true);
		if (r < 0)
			return r;
	} else if (next == VMS_DEV_RESUMING) {
		r = start_load(s);
		if (r < 0)
			return r;
	}
	s->state = next;
	return 0;
}

static void pace(struct save *sv, uint64_t rate)
{
	struct timespec now;
	double want, have;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!sv->paced) {
		sv->t0 = now;
		sv->paced = true;
	}
	want = (double)sv->consumed / (double)rate;
	have = (double)(now.tv_sec - sv->t0.tv_sec) + (double)(now.tv_nsec - sv->t0.tv_nsec) * 1e-9;
	if (want > have) {
		double d = want - have;
		struct timespec ts = { .tv_sec = (time_t)d,
			   .tv_nsec = (long)((d - (double)(time_t)d) * 1e9) };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
		}
	}
}

static long sim_read(void *impl, void *buf, size_t len)
{
	struct sim *s = impl;
	struct save *sv = s->sv;
	char eb[96];
	ssize_t n;

	if (s->derr)
		return vms_fail_msg(s->derr, s->dmsg);
	if (!sv)
		return vms_fail(VMS_EDEVIO, "sim: read without a data session");
	s->reads++;
	if (s->g.c.fault == VMS_SIM_FAULT_READ && s->reads == s->g.c.fault_at)
		return data_fail(s, VMS_EDEVIO, "sim: simulated read fault (fault=read, read "
				 "#%llu)", (unsigned long long)s->reads);
	if (vms_state_precopy(s->state)) {
		uint64_t avail = sv->queued - sv->consumed;

		if (avail == 0)
			return VMS_EAGAIN_DEV; /* ENOMSG: drained; precopy_info refills */
		if (len > avail)
			len = (size_t)avail;
	}
	/* A pipe read holds the pipe's lock while it copies: in slices the
	 * producer is not kept spinning on it for long. */
	if (len > READ_MAX)
		len = READ_MAX;
	do {
		n = read(sv->rfd, buf, len);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		int e = errno;

		return data_fail(s, VMS_EDEVIO, "sim: read from the data fd failed: %s",
				 vms_errno_text(e, eb, sizeof(eb)));
	}
	if (n == 0) {
		if (sv->consumed < sv->queued || !sv->final_queued)
			return data_fail(s, VMS_EDEVIO, "sim: the data stream ended after %llu "
					 "of %llu bytes", (unsigned long long)sv->consumed,
					 (unsigned long long)sv->queued);
		return 0;
	}
	sv->consumed += (uint64_t)n;
	if (s->g.c.slow)
		pace(sv, s->g.c.slow);
	return (long)n;
}

static long sim_write(void *impl, const void *buf, size_t len)
{
	struct sim *s = impl;
	struct load *ld = s->ld;
	char eb[96];
	ssize_t n;

	if (s->derr)
		return vms_fail_msg(s->derr, s->dmsg);
	if (!ld)
		return vms_fail(VMS_EDEVIO, "sim: write without a data session");
	if (ld->wfd < 0) {
		int r = load_open(s, ld);

		if (r < 0)
			return data_fail(s, r, "%s", vms_last_error());
	}
	if (!ld->thread) {
		/* A write of k bytes takes at most ceil(k / page) pipe pages.
		 * While they all fit, the bytes wait in the pipe (no reader
		 * needed); before they would not, the thread takes over. */
		uint64_t pages = (len + PAGE - 1) / PAGE;

		if (ld->wpages + pages <= ld->cap_pages) {
			ld->wpages += pages;
		} else {
			int r = load_to_thread(s, ld);

			if (r < 0)
				return data_fail(s, r == -ENOMEM ? VMS_ENOMEM : VMS_EDEVIO,
						 "sim: cannot start the device's thread: %s",
						 vms_errno_text(-r, eb, sizeof(eb)));
		}
	}
	do {
		n = write(ld->wfd, buf, len);
	} while (n < 0 && errno == EINTR);
	if (n <= 0) {
		int e = n < 0 ? errno : EIO;

		return data_fail(s, VMS_EDEVIO, "sim: write to the data fd failed: %s",
				 vms_errno_text(e, eb, sizeof(eb)));
	}
	return (long)n; /* short writes are finished by the caller, as with a real fd */
}

/* Drained: the device has run on and dirtied some state; stage it. The
 * thread must be idle before the versions change under it (everything is
 * read, so it has nothing left to write). */
static int refill(struct sim *s, struct save *sv)
{
	pthread_mutex_lock(&s->mu);
	while (sv->done != sv->tail && !sv->stop)
		pthread_cond_wait(&s->cv, &s->mu);
	s->gen++;
	apply_round(&s->g, s->ver, s->gen, s->rdirty);
	pthread_mutex_unlock(&s->mu);
	return queue_seg(s, VMS_SIM_SEG_DELTA, false);
}

/* fault=reinit: new initial data, as a driver whose device was
 * reconfigured: the full image is staged again, and everything not read
 * yet counts as initial (dirty restarts at 0). The versions do not
 * change, so the thread may still be writing what came before. */
static int reinit(struct sim *s, struct save *sv)
{
	int r = queue_seg(s, VMS_SIM_SEG_FULL, false);

	if (r < 0)
		return r;
	sv->initial_len = sv->queued;
	return VMS_PRECOPY_REINIT;
}

/* Returns the VMS_PRECOPY_* flags of the answer. */
static int sim_precopy_info(void *impl, uint64_t *initial, uint64_t *dirty)
{
	struct sim *s = impl;
	struct save *sv = s->sv;
	uint64_t init_left;
	int flags = 0;

	if (s->derr)
		return vms_fail_msg(s->derr, s->dmsg);
	if (!sv || !vms_state_precopy(s->state))
		return vms_fail(VMS_ESTATE, "sim: precopy info outside PRE_COPY");
	s->infos++;
	if (s->g.c.fault == VMS_SIM_FAULT_REINIT && s->infos == s->g.c.fault_at &&
	    !sv->final_queued) {
		flags = reinit(s, sv);
		if (flags < 0)
			return flags;
	} else if (sv->queued == sv->consumed && s->g.c.dirty > 0 && s->g.nblk > 0 &&
		   !sv->final_queued) {
		int r = refill(s, sv);

		if (r < 0)
			return r;
	}
	init_left = sv->initial_len > sv->consumed ? sv->initial_len - sv->consumed : 0;
	*initial = init_left;
	*dirty = sv->queued - sv->consumed - init_left;
	return flags;
}

/* What stop-copy will still read: in PRE_COPY what is staged and not read
 * yet (the last round's delta) plus the full image STOP_COPY adds; in
 * STOP_COPY what is left; outside a saving session the full image. */
static int sim_stop_copy_size(void *impl, uint64_t *bytes)
{
	struct sim *s = impl;
	struct save *sv = s->sv;

	if (!sv)
		*bytes = s->g.c.size;
	else if (vms_state_precopy(s->state))
		*bytes = sv->queued - sv->consumed + s->g.c.size;
	else
		*bytes = sv->queued - sv->consumed;
	return 0;
}

static int sim_reset(void *impl)
{
	struct sim *s = impl;

	end_session(s);
	/* A reset device comes back with its initial content. */
	memset(s->ver, 0, (s->g.nblk ? s->g.nblk : 1) * sizeof(uint32_t));
	s->gen = 0;
	s->rdirty = s->g.c.dirty;
	s->state = VMS_DEV_RUNNING;
	return 0;
}

static int sim_data_fd(void *impl)
{
	struct sim *s = impl;

	if (s->sv)
		return s->sv->rfd;
	if (s->ld)
		return load_open(s, s->ld) < 0 ? -1 : s->ld->wfd;
	return -1;
}

static void sim_close(void *impl)
{
	struct sim *s = impl;

	if (!s)
		return;
	end_session(s);
	if (s->thr_started) {
		pthread_mutex_lock(&s->mu);
		s->quit = true;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thr, NULL);
		close(s->evfd);
	}
	for (unsigned i = 0; i < s->nring; i++)
		munmap(s->ring[i], EMIT_BUF);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s->ibuf);
	free(s->ver);
	free(s);
}

static const struct vms_device_ops sim_ops = {
	.size = sizeof(struct vms_device_ops),
	.caps = sim_caps,
	.set_state = sim_set_state,
	.precopy_info = sim_precopy_info,
	.stop_copy_size = sim_stop_copy_size,
	.read = sim_read,
	.write = sim_write,
	.reset = sim_reset,
	.close = sim_close,
};

int vms_device_open_sim(struct vms_device **out, const char *name, const char *spec)
{
	struct vms_device_ext ext = { .tag = sim_tag, .state = VMS_DEV_RUNNING,
			  .get_state = sim_get_state, .data_fd = sim_data_fd };
	struct vms_sim_conf c;
	struct sim *s;
	int r;

	if (out)
		*out = NULL;
	r = vms_device_check_name(name);
	if (r < 0)
		return r;
	if (!out)
		return vms_fail(VMS_EINVAL, "device '%s': out is NULL", name);
	r = vms_sim_parse(spec, &c);
	if (r < 0) {
		char msg[VMS_MSG_MAX];

		snprintf(msg, sizeof(msg), "%s", vms_errbuf());
		return vms_fail(r, "device '%s': %s", name, msg);
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return vms_fail(VMS_ENOMEM, "device '%s': out of memory", name);
	s->g.c = c;
	s->g.clen = c.size - VMS_SIM_OVERHEAD;
	s->g.nblk = s->g.clen / VMS_SIM_BLOCK + (s->g.clen % VMS_SIM_BLOCK != 0);
	s->evfd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->ver = calloc(s->g.nblk ? s->g.nblk : 1, sizeof(uint32_t));
	if (!s->ver) {
		sim_close(s);
		return vms_fail(VMS_ENOMEM, "device '%s': out of memory", name);
	}
	s->rdirty = c.dirty;
	s->state = VMS_DEV_RUNNING;
	r = vms_device_create(out, name, VMS_DEVKIND_VFIO, &sim_ops, s, &ext);
	if (r < 0)
		sim_close(s);
	return r;
}
