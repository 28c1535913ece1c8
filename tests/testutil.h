/* SPDX-License-Identifier: MIT */
/*
 * Header-only helpers shared by the Check suites, the vector generator and
 * the fuzz target (CMake builds every tests/check_*.c alone, so nothing here
 * may need a separate object file: everything is static inline).
 *
 *  - tu_memfd_*: an in-memory fd a stream is written to / read from;
 *  - tu_run: drive a reader over a byte buffer and record every event and
 *    every delivered DATA byte per device;
 *  - tu_ed: a small stream editor that splits a stream into records and
 *    re-serialises it, so tests can swap, drop, insert or patch records and
 *    recompute checksums exactly as a forger would;
 *  - tu_wait_*: waits for the event a test needs (an fd ready, a thread
 *    blocked, the library's threads idle), never for a guessed time.
 *
 * Setup failures (not test failures) abort via tu_die(); a missing kernel
 * feature exits 77 ("skipped").
 *
 * Include after defining _GNU_SOURCE (memfd_create).
 */
#ifndef VMS_TESTUTIL_H
#define VMS_TESTUTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "vmstream.h"
#include "format/cursor.h"
#include "format/format.h"

#define TU_SKIP 77

static inline void tu_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static inline void tu_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("test setup failed: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

static inline void *tu_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		tu_die("out of memory (%zu bytes)", n);
	return p;
}

static inline void *tu_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		tu_die("out of memory (%zu bytes)", n);
	return q;
}

static inline void *tu_memdup(const void *p, size_t n)
{
	void *q = tu_xmalloc(n);

	if (n)
		memcpy(q, p, n);
	return q;
}

/* Reference XXH3-64 (seed 0), independent of the library's dispatch path. */
static inline uint64_t tu_xxh3(const void *p, size_t n)
{
	return (uint64_t)XXH3_64bits(p, n);
}

/* Deterministic pseudo-random bytes (xorshift64*), never all zero. */
static inline void tu_fill(void *buf, size_t n, uint64_t seed)
{
	uint8_t *p = buf;
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;

	for (size_t i = 0; i < n; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		p[i] = (uint8_t)((x * 0x2545f4914f6cdd1dull) >> 56);
	}
}

/* ---- readiness -------------------------------------------------------- */

/* Bound of every readiness wait. It only ends a hang: on a loaded machine
 * the event may come late, but it comes, so nothing depends on the value. */
#define TU_WAIT_MS 30000

static inline int64_t tu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* poll() one fd for events: its revents, or 0 if nothing came within
 * timeout_ms. */
static inline short tu_wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int64_t end = tu_now_ms() + timeout_ms;

	for (;;) {
		int64_t left = end - tu_now_ms();
		int r = poll(&p, 1, left > 0 ? (int)left : 0);

		if (r > 0)
			return p.revents;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			tu_die("poll: %s", strerror(errno));
	}
}

/* Thread states come from /proc, which has no notification: the waits
 * below look every millisecond until what they wait for holds, and hold
 * still (same context-switch counts) on two looks in a row, so a thread
 * woken between two reads of /proc is not taken for an idle one. */
#define TU_THREADS_MAX 256

struct tu_thread {
	pid_t tid;
	char state;               /* State: letter of /proc/self/task/TID/status */
	unsigned long long sw;    /* voluntary + involuntary context switches */
	long sys;                 /* system call it is blocked in; -1: none,
				     -2: /proc does not say */
};

static inline bool tu_thread_read(pid_t tid, struct tu_thread *t)
{
	char path[64], line[160];
	unsigned long long v;
	FILE *f;

	t->tid = tid;
	t->state = '?';
	t->sw = 0;
	t->sys = -1;
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return false; /* it exited */
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "State:", 6))
			sscanf(line + 6, " %c", &t->state);
		else if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1 ||
			 sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
			t->sw += v;
	}
	fclose(f);
	/* "NR args..." while blocked in a system call, else "running" / "-1 ..." */
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	f = fopen(path, "r");
	if (!f) {
		t->sys = -2;
	} else {
		if (fscanf(f, "%ld", &t->sys) != 1)
			t->sys = -1;
		fclose(f);
	}
	return true;
}

static inline bool tu_thread_asleep(const struct tu_thread *t)
{
	return t->state == 'S' || t->state == 'D' || t->state == 'I';
}

/* Every thread of this process but the caller, into t[]; their number. */
static inline unsigned tu_threads_read(struct tu_thread *t)
{
	pid_t self = (pid_t)syscall(SYS_gettid);
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	unsigned n = 0;

	if (!d)
		tu_die("/proc/self/task: %s", strerror(errno));
	while ((de = readdir(d)) && n < TU_THREADS_MAX) {
		pid_t tid = (pid_t)atoi(de->d_name);

		if (tid > 0 && tid != self && tu_thread_read(tid, &t[n]))
			n++;
	}
	closedir(d);
	return n;
}

static inline void tu_pause_1ms(void)
{
	struct timespec ts = { 0, 1000000 }; /* the look interval, see above */

	nanosleep(&ts, NULL);
}

static inline bool tu_threads_same(const struct tu_thread *a, unsigned na,
				   const struct tu_thread *b, unsigned nb)
{
	if (na != nb)
		return false;
	for (unsigned i = 0; i < na; i++)
		if (a[i].tid != b[i].tid || a[i].sw != b[i].sw)
			return false;
	return true;
}

/* Wait until every other thread of this process (the library's input,
 * output, worker and device threads) is asleep and stays so: nothing moves
 * any more without the test doing something (reading a pipe, releasing an
 * event, writing more). true when reached, false after timeout_ms. */
static inline bool tu_wait_quiescent(int timeout_ms)
{
	struct tu_thread a[TU_THREADS_MAX], b[TU_THREADS_MAX];
	int64_t end = tu_now_ms() + timeout_ms;
	unsigned na = 0, nb;
	bool prev = false;

	for (;;) {
		bool all = true;

		nb = tu_threads_read(b);
		for (unsigned i = 0; i < nb; i++)
			all = all && tu_thread_asleep(&b[i]);
		if (all && prev && tu_threads_same(a, na, b, nb))
			return true;
		prev = all;
		memcpy(a, b, sizeof(b[0]) * nb);
		na = nb;
		if (tu_now_ms() > end)
			return false;
		tu_pause_1ms();
	}
}

/* Wait until thread tid is blocked in a system call other than a futex
 * wait (a read, write, poll or io_uring_enter: it waits for an fd) and
 * stays there. true when reached, false after timeout_ms. */
static inline bool tu_wait_blocked(pid_t tid, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	struct tu_thread a = { 0 }, b;
	bool prev = false;

	for (;;) {
		bool now = tu_thread_read(tid, &b) && tu_thread_asleep(&b) &&
			   (b.sys >= 0 || b.sys == -2) && b.sys != SYS_futex;

		if (now && prev && a.sw == b.sw)
			return true;
		prev = now;
		a = b;
		if (tu_now_ms() > end)
			return false;
		tu_pause_1ms();
	}
}

/* ---- memfd ------------------------------------------------------------ */

static inline int tu_memfd_new(void)
{
	int fd = memfd_create("vmstream-test", MFD_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOSYS) {
			fprintf(stderr, "memfd_create unavailable: skipped\n");
			exit(TU_SKIP);
		}
		tu_die("memfd_create: %s", strerror(errno));
	}
	return fd;
}

/* For main(): exit 77 ("skipped") if this kernel has no memfd_create, before
 * any test runs (inside a forked Check test an exit would count as an error). */
static inline void tu_require_memfd(void)
{
	close(tu_memfd_new());
}

/* Make fd hold exactly buf[0..n) and rewind it. */
static inline void tu_memfd_set(int fd, const void *buf, size_t n)
{
	size_t done = 0;

	if (ftruncate(fd, 0) != 0)
		tu_die("ftruncate: %s", strerror(errno));
	while (done < n) {
		ssize_t w = pwrite(fd, (const uint8_t *)buf + done, n - done, (off_t)done);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			tu_die("pwrite: %s", strerror(errno));
		}
		done += (size_t)w;
	}
	if (lseek(fd, 0, SEEK_SET) != 0)
		tu_die("lseek: %s", strerror(errno));
}

/* The whole content of fd (from offset 0); fd is left rewound. */
static inline uint8_t *tu_memfd_get(int fd, size_t *n)
{
	off_t end = lseek(fd, 0, SEEK_END);
	uint8_t *p;
	size_t done = 0;

	if (end < 0)
		tu_die("lseek: %s", strerror(errno));
	p = tu_xmalloc((size_t)end);
	while (done < (size_t)end) {
		ssize_t r = pread(fd, p + done, (size_t)end - done, (off_t)done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			tu_die("pread: %s", r < 0 ? strerror(errno) : "short file");
		done += (size_t)r;
	}
	if (lseek(fd, 0, SEEK_SET) != 0)
		tu_die("lseek: %s", strerror(errno));
	*n = (size_t)end;
	return p;
}

/* ---- growable byte buffer --------------------------------------------- */

struct tu_bytes {
	uint8_t *p;
	size_t n, cap;
};

static inline void tu_bytes_add(struct tu_bytes *b, const void *src, size_t n)
{
	if (n > b->cap - b->n) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap - b->n < n)
			cap *= 2;
		b->p = tu_xrealloc(b->p, cap);
		b->cap = cap;
	}
	if (src)
		memcpy(b->p + b->n, src, n);
	else
		memset(b->p + b->n, 0, n);
	b->n += n;
}

static inline void tu_bytes_free(struct tu_bytes *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ---- reading a whole stream ------------------------------------------- */

#define TU_MAX_DEV 16
#define TU_MAX_EVENTS 100000

/* One delivered event, with the union flattened and strings copied. */
struct tu_ev {
	uint32_t type, flags, codec, device;
	uint64_t seq, offset;
	uint32_t raw_len, wire_len;
	uint16_t lane, epoch;
	uint64_t stream_pos;
	bool data_null;    /* u.data.data == NULL (DATA/ZERO) */
	size_t data_len;   /* u.data.len */
	uint64_t data_sum; /* XXH3 of the delivered bytes (DATA) */
	uint64_t a, b;     /* begin: kind, size_hint; phase: phase, round;
			      end: total, digest; eos: records, raw_bytes;
			      abort: code (sign-extended), 0 */
	uint32_t c;        /* eos: devices */
	char text[VMS_ABORT_TEXT_MAX + 1]; /* begin: name; abort: text */
};

struct tu_run {
	int open_err;      /* vms_reader_open_fd() result */
	int err;           /* last vms_reader_next() result: 0 = clean end */
	int again;         /* one more vms_reader_next() after the end */
	char msg[512];     /* vms_last_error() after a failure */
	struct tu_ev *ev;
	size_t nev;
	struct tu_bytes dev[TU_MAX_DEV]; /* DATA/ZERO bytes per device */
	struct vms_stream_info info; /* its strings point into the two below */
	char info_creator[256];
	char info_codecs[1024];
	struct vms_stats st;
};

static inline void tu_run_free(struct tu_run *r)
{
	free(r->ev);
	for (int i = 0; i < TU_MAX_DEV; i++)
		tu_bytes_free(&r->dev[i]);
	memset(r, 0, sizeof(*r));
}

/* Read every event from fd (already positioned at the stream start). */
static inline int tu_run_fd(int fd, const struct vms_reader_opts *opts, struct tu_run *r)
{
	struct vms_reader *rd;
	size_t cap = 0;

	memset(r, 0, sizeof(*r));
	r->open_err = vms_reader_open_fd(&rd, fd, opts);
	if (r->open_err) {
		snprintf(r->msg, sizeof(r->msg), "%s", vms_last_error());
		if (rd)
			tu_die("vms_reader_open_fd failed but returned a reader");
		r->err = r->again = r->open_err;
		return r->err;
	}
	r->info.size = sizeof(r->info);
	if (vms_reader_info(rd, &r->info) != 0)
		tu_die("vms_reader_info failed");
	/* the reader's strings live only as long as the reader: keep copies */
	snprintf(r->info_creator, sizeof(r->info_creator), "%s", r->info.creator ? r->info.creator : "");
	snprintf(r->info_codecs, sizeof(r->info_codecs), "%s", r->info.codecs ? r->info.codecs : "");
	r->info.creator = r->info_creator;
	r->info.codecs = r->info_codecs;
	for (;;) {
		struct vms_event e = VMS_EVENT_INIT;
		struct tu_ev *t;
		int rc = vms_reader_next(rd, &e);

		if (rc <= 0) {
			r->err = rc;
			if (rc < 0)
				snprintf(r->msg, sizeof(r->msg), "%s", vms_last_error());
			break;
		}
		if (rc != 1)
			tu_die("vms_reader_next returned %d", rc);
		if (r->nev == TU_MAX_EVENTS)
			tu_die("too many events");
		if (r->nev == cap) {
			cap = cap ? cap * 2 : 64;
			r->ev = tu_xrealloc(r->ev, cap * sizeof(*r->ev));
		}
		t = &r->ev[r->nev++];
		memset(t, 0, sizeof(*t));
		t->type = e.type;
		t->flags = e.flags;
		t->codec = e.codec;
		t->device = e.device;
		t->seq = e.seq;
		t->offset = e.offset;
		t->raw_len = e.raw_len;
		t->wire_len = e.wire_len;
		t->lane = e.lane;
		t->epoch = e.epoch;
		t->stream_pos = e.stream_pos;
		switch (e.type) {
		case VMS_REC_DATA:
		case VMS_REC_ZERO:
			t->data_null = e.u.data.data == NULL;
			t->data_len = e.u.data.len;
			if (e.u.data.data)
				t->data_sum = tu_xxh3(e.u.data.data, e.u.data.len);
			if (e.device < TU_MAX_DEV && !(opts && (opts->flags & VMS_READER_F_HEADERS_ONLY)))
				tu_bytes_add(&r->dev[e.device], e.u.data.data, e.u.data.len);
			break;
		case VMS_REC_DEVICE_BEGIN:
			t->a = e.u.begin.kind;
			t->b = e.u.begin.size_hint;
			if (e.u.begin.name)
				snprintf(t->text, sizeof(t->text), "%s", e.u.begin.name);
			break;
		case VMS_REC_PHASE:
			t->a = e.u.phase.phase;
			t->b = e.u.phase.round;
			break;
		case VMS_REC_DEVICE_END:
			t->a = e.u.end.total;
			t->b = e.u.end.digest;
			break;
		case VMS_REC_EOS:
			t->a = e.u.eos.records;
			t->b = e.u.eos.raw_bytes;
			t->c = e.u.eos.devices;
			break;
		case VMS_REC_ABORT:
			t->a = (uint64_t)(int64_t)e.u.abort.code;
			if (e.u.abort.text)
				snprintf(t->text, sizeof(t->text), "%s", e.u.abort.text);
			break;
		default:
			break;
		}
	}
	/* Errors and the end are sticky: the next call must say the same. */
	{
		struct vms_event e = VMS_EVENT_INIT;

		r->again = vms_reader_next(rd, &e);
	}
	r->st.size = sizeof(r->st);
	if (vms_reader_stats(rd, &r->st) != 0)
		tu_die("vms_reader_stats failed");
	vms_reader_free(rd);
	return r->err;
}

/* Read the stream buf[0..n) with the given reader flags (0 = defaults). */
static inline int tu_run_buf(const void *buf, size_t n, uint32_t flags, struct tu_run *r)
{
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;
	int fd = tu_memfd_new();
	int rc;

	o.flags = flags;
	tu_memfd_set(fd, buf, n);
	rc = tu_run_fd(fd, &o, r);
	close(fd);
	return rc;
}

/* ---- stream editor ---------------------------------------------------- */

struct tu_rec {
	struct vms_rec_hdr h;
	uint8_t hb[VMS_HDR_LEN]; /* the header bytes as parsed */
	uint8_t *pl;             /* payload (wire bytes) */
	uint32_t pl_len;
	size_t pos;              /* stream offset of the header when parsed */
};

struct tu_ed {
	uint8_t pre[VMS_PREAMBLE_MAX];
	size_t pre_len;
	struct tu_rec *r;
	size_t n, cap;
};

static inline void tu_ed_free(struct tu_ed *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->r[i].pl);
	free(e->r);
	memset(e, 0, sizeof(*e));
}

static inline uint16_t tu_le16(const uint8_t *b)
{
	return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t tu_le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Header fields from raw bytes, without any check (FORMAT.md section 3). */
static inline void tu_hdr_parse(struct vms_rec_hdr *h, const uint8_t *b)
{
	memset(h, 0, sizeof(*h));
	h->type = b[0];
	h->flags = b[1];
	h->codec = b[2];
	h->device = tu_le32(b + 4);
	h->seq = vms_get_u64(b + 8);
	h->offset = vms_get_u64(b + 16);
	h->raw_len = tu_le32(b + 24);
	h->wire_len = tu_le32(b + 28);
	h->lane = tu_le16(b + 32);
	h->epoch = tu_le16(b + 34);
	h->payload_sum = vms_get_u64(b + 40);
}

/* Split a well-formed stream (as the writer produced it) into records.
 * Returns 0, or -1 if the bytes do not frame. */
static inline int tu_ed_parse(struct tu_ed *e, const uint8_t *buf, size_t n)
{
	size_t pos;

	memset(e, 0, sizeof(*e));
	if (n < VMS_PREAMBLE_MIN)
		return -1;
	e->pre_len = tu_le32(buf + 12);
	if (e->pre_len < VMS_PREAMBLE_MIN || e->pre_len > VMS_PREAMBLE_MAX || e->pre_len > n)
		return -1;
	memcpy(e->pre, buf, e->pre_len);
	pos = e->pre_len;
	while (pos < n) {
		struct tu_rec *r;

		if (n - pos < VMS_HDR_LEN)
			return -1;
		if (e->n == e->cap) {
			e->cap = e->cap ? e->cap * 2 : 32;
			e->r = tu_xrealloc(e->r, e->cap * sizeof(*e->r));
		}
		r = &e->r[e->n];
		memcpy(r->hb, buf + pos, VMS_HDR_LEN);
		tu_hdr_parse(&r->h, r->hb);
		r->pos = pos;
		pos += VMS_HDR_LEN;
		if (r->h.wire_len > n - pos)
			return -1;
		r->pl_len = r->h.wire_len;
		r->pl = tu_memdup(buf + pos, r->pl_len);
		pos += r->pl_len;
		e->n++;
	}
	return 0;
}

/* Insert a record before index at (at == e->n appends). Payload is copied. */
static inline void tu_ed_insert(struct tu_ed *e, size_t at, const struct vms_rec_hdr *h,
				const void *pl, uint32_t pl_len)
{
	struct tu_rec *r;

	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 32;
		e->r = tu_xrealloc(e->r, e->cap * sizeof(*e->r));
	}
	memmove(&e->r[at + 1], &e->r[at], (e->n - at) * sizeof(*e->r));
	r = &e->r[at];
	memset(r, 0, sizeof(*r));
	r->h = *h;
	r->h.wire_len = pl_len;
	r->pl = tu_memdup(pl, pl_len);
	r->pl_len = pl_len;
	e->n++;
}

static inline void tu_ed_remove(struct tu_ed *e, size_t at)
{
	free(e->r[at].pl);
	memmove(&e->r[at], &e->r[at + 1], (e->n - at - 1) * sizeof(*e->r));
	e->n--;
}

/* Index of the first record of type t at or after from, or e->n. */
static inline size_t tu_ed_find(const struct tu_ed *e, uint8_t t, size_t from)
{
	for (size_t i = from; i < e->n; i++)
		if (e->r[i].h.type == t)
			return i;
	return e->n;
}

/* seq = position, as a well-behaved writer numbers records. */
static inline void tu_ed_renumber(struct tu_ed *e)
{
	for (size_t i = 0; i < e->n; i++)
		e->r[i].h.seq = i;
}

/* payload_sum = XXH3 of the payload, for one unencrypted, uncompressed
 * record (ZERO: 0). */
static inline void tu_ed_fix_sum(struct tu_ed *e, size_t i)
{
	struct tu_rec *r = &e->r[i];

	r->h.payload_sum = r->h.type == VMS_REC_ZERO ? 0 : tu_xxh3(r->pl, r->pl_len);
}

/* Recompute every EOS body from the records before it (and its sum). */
static inline void tu_ed_fix_eos(struct tu_ed *e)
{
	uint64_t raw = 0;
	uint32_t devs = 0;

	for (size_t i = 0; i < e->n; i++) {
		struct tu_rec *r = &e->r[i];

		if (r->h.type == VMS_REC_DATA || r->h.type == VMS_REC_ZERO)
			raw += r->h.raw_len;
		else if (r->h.type == VMS_REC_DEVICE_BEGIN)
			devs++;
		else if (r->h.type == VMS_REC_EOS && r->pl_len == 24) {
			vms_put_u64(r->pl, r->h.seq);
			vms_put_u64(r->pl + 8, raw);
			vms_put_u32(r->pl + 16, devs);
			tu_ed_fix_sum(e, i);
		}
	}
}

/* Rewrite preamble_len and preamble_sum for a preamble of len bytes. */
static inline void tu_pre_fix(uint8_t *pre, size_t len)
{
	vms_put_u32(pre + 12, (uint32_t)len);
	vms_put_u64(pre + len - 8, tu_xxh3(pre, len - 8));
}

/* Append a parameter entry to the editor's preamble (before the sum). */
static inline void tu_ed_add_param(struct tu_ed *e, uint16_t type, const void *v, uint16_t len)
{
	size_t at = e->pre_len - 8;

	if (e->pre_len + 4u + len > VMS_PREAMBLE_MAX)
		tu_die("preamble too long");
	vms_put_u16(e->pre + at, type);
	vms_put_u16(e->pre + at + 2, len);
	memcpy(e->pre + at + 4, v, len);
	e->pre_len += 4u + len;
	tu_pre_fix(e->pre, e->pre_len);
}

/* Serialise: headers re-encoded from r->h (fresh header_sum, wire_len =
 * payload length), payloads as they are. Also stores each record's new
 * position in r->pos. */
static inline uint8_t *tu_ed_build(struct tu_ed *e, size_t *n)
{
	struct tu_bytes b = { 0 };

	tu_bytes_add(&b, e->pre, e->pre_len);
	for (size_t i = 0; i < e->n; i++) {
		struct tu_rec *r = &e->r[i];

		r->h.wire_len = r->pl_len;
		vms_hdr_encode(&r->h, r->hb);
		r->pos = b.n;
		tu_bytes_add(&b, r->hb, VMS_HDR_LEN);
		tu_bytes_add(&b, r->pl, r->pl_len);
	}
	*n = b.n;
	return b.p;
}

/* Recompute the header_sum of raw header bytes (after patching them). */
static inline void tu_hdr_resum(uint8_t *hb)
{
	vms_put_u64(hb + 48, tu_xxh3(hb, 48));
}

#endif
