/* SPDX-License-Identifier: MIT */
/*
 * I/O engines, each test run for both engines (loop index 0 = posix,
 * 1 = io_uring; the io_uring variant alone is skipped, and says so, when
 * io_uring is unavailable here):
 *  - several lanes at once over socketpairs and loopback TCP, many queued
 *    writes per fd, reader threads checking order and content byte for byte;
 *  - the engine as receiver on several lanes;
 *  - short writes (tiny socket buffers), pipes (blocking and O_NONBLOCK, flag
 *    left alone) and regular files through writev, in order;
 *  - exact errors: EPIPE / ECONNRESET with SIGPIPE at its default action,
 *    -ECANCELED for writes queued behind a failed one, EOF = 0;
 *  - read_full / write_full timeouts: -ETIMEDOUT on time, and the buffer is
 *    neither written nor the data consumed after the call returned;
 *  - the fixed-buffer path (counters), a failed registration (RLIMIT_MEMLOCK
 *    without CAP_IPC_LOCK), io_uring blocked by seccomp (re-exec of this
 *    program), and the VMS_IO override.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "testutil.h"
#include "stream/internal.h"
#include "io/engine.h"

static const int KINDS[2] = { VMS_ENGINE_POSIX, VMS_ENGINE_URING };
static const char *const KIND_NAME[2] = { "posix", "io_uring" };

#define MIB (1u << 20)

/* ---- helpers ------------------------------------------------------------ */

/* A timeout under test fired no earlier than asked (the engine's clock is
 * CLOCK_MONOTONIC, like tu_tu_now_ms()) and did not turn into a hang. How much
 * later it fires is up to a loaded machine's scheduler, hence the generous
 * upper bound. */
#define LATE_MS 10000

static void assert_timed_out(int64_t dt, int timeout_ms, const char *what)
{
	ck_assert_msg(dt >= timeout_ms - 10 && dt < timeout_ms + LATE_MS,
		      "%s: timed out after %lld ms for a %d ms timeout", what, (long long)dt,
		      timeout_ms);
}

/* The late data of a test sits in fd, whole, and nobody took it: an
 * operation still in the kernel would have been woken by its arrival and
 * read it (io_uring runs it, as task work, before the write that woke it
 * returns to this thread). */
static void assert_unread(int fd, size_t len, const char *what)
{
	int n = -1;

	ck_assert_msg(tu_wait_fd(fd, POLLIN, TU_WAIT_MS) & POLLIN, "%s: no data in the fd", what);
	ck_assert_int_eq(ioctl(fd, FIONREAD, &n), 0);
	ck_assert_msg(n == (int)len, "%s: %d bytes left in the fd, %zu written", what, n, len);
}

/* NULL when the io_uring variant cannot run here (reported as skipped). */
static struct vms_engine *eng_new(int i, const char *test, unsigned depth, void *arena,
				  size_t len)
{
	struct vms_engine *e = NULL;
	int rc;

	if (KINDS[i] == VMS_ENGINE_URING && !vms_engine_uring_available()) {
		printf("%s [io_uring]: SKIPPED, io_uring unavailable: %s\n", test,
		       vms_engine_uring_reason());
		return NULL;
	}
	rc = vms_engine_new(&e, KINDS[i], depth, arena, len);
	ck_assert_msg(rc == 0, "%s: vms_engine_new(%s): %d %s", test, KIND_NAME[i], rc,
		      vms_last_error());
	ck_assert_int_eq(vms_engine_kind(e), KINDS[i]);
	ck_assert_str_eq(vms_engine_name(e), KIND_NAME[i]);
	return e;
}

static struct vms_engine_stats stats(const struct vms_engine *e)
{
	struct vms_engine_stats st;

	ck_assert_int_eq(vms_engine_stats(e, &st), 0);
	return st;
}

static void *xmap(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		tu_die("mmap %zu: %s", len, strerror(errno));
	memset(p, 0, len);
	return p;
}

static void unix_pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		tu_die("socketpair: %s", strerror(errno));
}

/* Loopback TCP connection: sv[0] connected to sv[1]. */
static void tcp_pair(int sv[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 8) != 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) != 0)
		tu_die("tcp listen: %s", strerror(errno));
	sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sv[0] < 0 || connect(sv[0], (struct sockaddr *)&a, sizeof(a)) != 0)
		tu_die("tcp connect: %s", strerror(errno));
	sv[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (sv[1] < 0)
		tu_die("tcp accept: %s", strerror(errno));
	close(l);
}

static void xpipe(int p[2], int flags)
{
	if (pipe2(p, O_CLOEXEC | flags) != 0)
		tu_die("pipe2: %s", strerror(errno));
}

static int tmpfile_fd(void)
{
	char path[] = "/tmp/vms-engine-XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0)
		tu_die("mkstemp: %s", strerror(errno));
	unlink(path);
	return fd;
}

static void set_bufs(int fd, int snd, int rcv)
{
	if (snd)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
	if (rcv)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
}

/* Record `seq` of lane `lane`: every byte depends on (lane, seq, position). */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void pat_fill(uint8_t *p, size_t len, unsigned lane, uint64_t seq)
{
	uint64_t base = mix64(((uint64_t)lane << 40) ^ (seq << 8) ^ 0x5a);
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t w = mix64(base + i);

		memcpy(p + i, &w, 8);
	}
	if (i < len) {
		uint64_t w = mix64(base + i);

		memcpy(p + i, &w, len - i);
	}
}

/* Checks a lane's byte stream as it arrives in arbitrary pieces. */
struct verifier {
	unsigned lane;
	size_t rec;
	uint8_t *exp;
	uint64_t seq, bytes;
	size_t off;  /* within the current record */
	int bad;
	uint64_t bad_at;
};

static void ver_init(struct verifier *v, unsigned lane, size_t rec)
{
	memset(v, 0, sizeof(*v));
	v->lane = lane;
	v->rec = rec;
	v->exp = tu_xmalloc(rec);
	pat_fill(v->exp, rec, lane, 0);
}

static void ver_feed(struct verifier *v, const uint8_t *p, size_t n)
{
	while (n && !v->bad) {
		size_t k = v->rec - v->off < n ? v->rec - v->off : n;

		if (memcmp(p, v->exp + v->off, k) != 0) {
			size_t j = 0;

			while (p[j] == v->exp[v->off + j])
				j++;
			v->bad = 1;
			v->bad_at = v->bytes + j;
			return;
		}
		v->off += k;
		v->bytes += k;
		p += k;
		n -= k;
		if (v->off == v->rec) {
			v->off = 0;
			v->seq++;
			pat_fill(v->exp, v->rec, v->lane, v->seq);
		}
	}
}

static void ver_free(struct verifier *v)
{
	free(v->exp);
	v->exp = NULL;
}

/* A thread reading an fd to EOF with plain read(), verifying as it goes. */
struct reader {
	pthread_t th;
	int fd;
	size_t chunk;
	pid_t writer;      /* if not 0: before the first read, wait until this
			      thread is blocked on the full fd */
	bool stalled;      /* ... and it was */
	struct verifier v;
	int err;           /* errno of a failed read */
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint8_t *buf = tu_xmalloc(r->chunk);

	if (r->writer)
		r->stalled = tu_wait_blocked(r->writer, TU_WAIT_MS);
	for (;;) {
		ssize_t n = read(r->fd, buf, r->chunk);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd pfd = { .fd = r->fd, .events = POLLIN };

			poll(&pfd, 1, -1);
			continue;
		}
		if (n < 0) {
			r->err = errno;
			break;
		}
		if (n == 0)
			break;
		ver_feed(&r->v, buf, (size_t)n);
	}
	free(buf);
	return NULL;
}

/* stall: the calling thread is about to write to fd; the reader lets it fill
 * the fd and block before reading anything, so that the writes go short and
 * meet EAGAIN by construction, not by the luck of scheduling. */
static void reader_start(struct reader *r, int fd, unsigned lane, size_t rec, size_t chunk,
			 bool stall)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->chunk = chunk;
	r->writer = stall ? (pid_t)syscall(SYS_gettid) : 0;
	ver_init(&r->v, lane, rec);
	if (pthread_create(&r->th, NULL, reader_main, r) != 0)
		tu_die("pthread_create");
}

static void reader_join(struct reader *r, uint64_t expect_bytes, const char *what)
{
	pthread_join(r->th, NULL);
	ck_assert_msg(!r->writer || r->stalled, "%s lane %u: the writer never blocked on the fd",
		      what, r->v.lane);
	ck_assert_msg(r->err == 0, "%s lane %u: read: %s", what, r->v.lane, strerror(r->err));
	ck_assert_msg(!r->v.bad, "%s lane %u: wrong byte at stream offset %llu", what, r->v.lane,
		      (unsigned long long)r->v.bad_at);
	ck_assert_msg(r->v.bytes == expect_bytes, "%s lane %u: %llu bytes, expected %llu", what,
		      r->v.lane, (unsigned long long)r->v.bytes, (unsigned long long)expect_bytes);
	ver_free(&r->v);
}

/*
 * Queue `recs` records of `rec` bytes on each fd, keeping up to `depth`
 * writes queued in total (round robin over the fds, so each fd has many
 * queued), and check every completion: full length, and per fd in queue
 * order. Buffers come from the arena (slot i at arena + i * rec) or, for
 * every fourth record, from outside it; records are split over 1..3 iovecs.
 */
struct slot {
	unsigned lane;
	uint64_t seq;
};

static void send_records(struct vms_engine *e, uint8_t *arena, unsigned depth, const int *fds,
			 unsigned nfd, unsigned recs, size_t rec)
{
	uint8_t *outside = tu_xmalloc((size_t)depth * rec);
	struct slot *slots = tu_xmalloc(depth * sizeof(*slots));
	unsigned *free_slots = tu_xmalloc(depth * sizeof(unsigned));
	uint64_t next[8] = { 0 }, expect[8] = { 0 };
	uint64_t total = (uint64_t)nfd * recs, queued = 0, completed = 0;
	unsigned nfree = depth, rr = 0;

	ck_assert_uint_le(nfd, 8);
	for (unsigned i = 0; i < depth; i++)
		free_slots[i] = depth - 1 - i;
	while (completed < total) {
		struct vms_io_done done[32];
		int n;

		while (nfree && queued < total) {
			unsigned s = free_slots[--nfree], lane = rr;
			uint8_t *a = arena + (size_t)s * rec, *o = outside + (size_t)s * rec;
			struct iovec iov[4];
			int niov;
			uint64_t seq;
			size_t cut;

			while (next[lane] == recs)
				lane = (lane + 1) % nfd;
			rr = (lane + 1) % nfd;
			seq = next[lane]++;
			slots[s].lane = lane;
			slots[s].seq = seq;
			pat_fill(a, rec, lane, seq);
			cut = 1 + (size_t)(seq * 7919) % (rec - 2);
			switch (seq % 4) {
			case 0: /* one iovec in the arena */
				iov[0] = (struct iovec){ a, rec };
				niov = 1;
				break;
			case 1: /* two iovecs in the arena */
				iov[0] = (struct iovec){ a, cut };
				iov[1] = (struct iovec){ a + cut, rec - cut };
				niov = 2;
				break;
			case 2: /* arena, outside, empty, arena */
				memcpy(o + cut, a + cut, 1);
				iov[0] = (struct iovec){ a, cut };
				iov[1] = (struct iovec){ o + cut, 1 };
				iov[2] = (struct iovec){ NULL, 0 };
				iov[3] = (struct iovec){ a + cut + 1, rec - cut - 1 };
				niov = 4;
				break;
			default: /* one iovec outside the arena */
				memcpy(o, a, rec);
				iov[0] = (struct iovec){ o, rec };
				niov = 1;
				break;
			}
			ck_assert_int_eq(vms_engine_writev(e, fds[lane], iov, niov,
							   (void *)(uintptr_t)s), 0);
			queued++;
		}
		n = vms_engine_wait(e, done, 32, 30000);
		ck_assert_msg(n > 0, "no completion within 30 s (%d: %s)", n, vms_last_error());
		for (int i = 0; i < n; i++) {
			unsigned s = (unsigned)(uintptr_t)done[i].user;

			ck_assert_msg(done[i].res == (long)rec, "lane %u record %llu: res %ld",
				      slots[s].lane, (unsigned long long)slots[s].seq, done[i].res);
			ck_assert_msg(slots[s].seq == expect[slots[s].lane],
				      "lane %u: record %llu completed, expected %llu", slots[s].lane,
				      (unsigned long long)slots[s].seq,
				      (unsigned long long)expect[slots[s].lane]);
			expect[slots[s].lane]++;
			free_slots[nfree++] = s;
			completed++;
		}
	}
	ck_assert_uint_eq(vms_engine_pending(e), 0);
	free(free_slots);
	free(slots);
	free(outside);
}

static void print_stats(const char *what, int i, const struct vms_engine_stats *st)
{
	printf("%s [%s]: writes %llu recvs %llu fixed %llu short %llu eagain %llu waits %llu "
	       "max_fd_writes %u max_fds_busy %u registered %d\n",
	       what, KIND_NAME[i], (unsigned long long)st->writes, (unsigned long long)st->recvs,
	       (unsigned long long)st->fixed_ops, (unsigned long long)st->short_writes,
	       (unsigned long long)st->eagain, (unsigned long long)st->syscalls_wait,
	       st->max_fd_writes, st->max_fds_busy, st->fixed_registered);
}

/* ---- lanes: 4 fds x 200 writes of 1 MiB ------------------------------------ */

#define LANES 4
#define LANE_RECS 200
#define LANE_DEPTH 64

static void lanes_run(int i, int tcp)
{
	const char *what = tcp ? "lanes_tcp" : "lanes_unix";
	size_t arena_len = (size_t)LANE_DEPTH * MIB;
	uint8_t *arena = xmap(arena_len);
	struct reader rd[LANES];
	struct vms_engine *e = eng_new(i, what, LANE_DEPTH, arena, arena_len);
	struct vms_engine_stats st;
	int sv[LANES][2], fds[LANES];

	if (!e) {
		munmap(arena, arena_len);
		return;
	}
	for (int l = 0; l < LANES; l++) {
		if (tcp)
			tcp_pair(sv[l]);
		else
			unix_pair(sv[l]);
		fds[l] = sv[l][0];
		reader_start(&rd[l], sv[l][1], (unsigned)l, MIB, 256u << 10, false);
	}
	send_records(e, arena, LANE_DEPTH, fds, LANES, LANE_RECS, MIB);
	for (int l = 0; l < LANES; l++)
		shutdown(fds[l], SHUT_WR);
	for (int l = 0; l < LANES; l++) {
		reader_join(&rd[l], (uint64_t)LANE_RECS * MIB, what);
		close(sv[l][0]);
		close(sv[l][1]);
	}
	st = stats(e);
	print_stats(what, i, &st);
	ck_assert_uint_eq(st.writes, LANES * LANE_RECS);
	ck_assert_uint_eq(st.max_fd_writes, 1); /* never two writes of one fd at once */
	ck_assert_uint_ge(st.max_fds_busy, 2);  /* lanes progressed together */
	if (KINDS[i] == VMS_ENGINE_URING) {
		ck_assert_int_eq(st.fixed_registered, 1);
		ck_assert_int_eq(st.max_fds_busy, LANES);
	}
	vms_engine_free(e);
	munmap(arena, arena_len);
}

START_TEST(test_lanes_unix)
{
	lanes_run(_i, 0);
}
END_TEST

START_TEST(test_lanes_tcp)
{
	lanes_run(_i, 1);
}
END_TEST

/* ---- the engine as receiver on several lanes -------------------------------- */

struct writer {
	pthread_t th;
	int fd;
	unsigned lane, recs;
	size_t rec;
};

/* Plain blocking write of all n bytes (EINTR and short writes handled). */
static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = write(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint8_t *buf = tu_xmalloc(w->rec);

	for (unsigned s = 0; s < w->recs; s++) {
		pat_fill(buf, w->rec, w->lane, s);
		if (write_all(w->fd, buf, w->rec) != 0)
			break;
	}
	close(w->fd);
	free(buf);
	return NULL;
}

static void recv_lanes_run(int i, int tcp)
{
	const char *what = tcp ? "recv_lanes_tcp" : "recv_lanes_unix";
	const unsigned recs = 48;
	size_t arena_len = (size_t)LANES * MIB;
	uint8_t *arena = xmap(arena_len), *heap = tu_xmalloc((size_t)LANES * MIB);
	struct vms_engine *e = eng_new(i, what, 16, arena, arena_len);
	struct writer w[LANES];
	struct verifier v[LANES];
	int sv[LANES][2], eof[LANES] = { 0 }, busy[LANES] = { 0 }, left = LANES;
	uint64_t fixed0;

	if (!e)
		goto out;
	fixed0 = stats(e).fixed_ops;
	for (int l = 0; l < LANES; l++) {
		if (tcp)
			tcp_pair(sv[l]);
		else
			unix_pair(sv[l]);
		ver_init(&v[l], (unsigned)l, MIB);
		w[l] = (struct writer){ .fd = sv[l][1], .lane = (unsigned)l, .recs = recs, .rec = MIB };
		if (pthread_create(&w[l].th, NULL, writer_main, &w[l]) != 0)
			tu_die("pthread_create");
	}
	while (left) {
		struct vms_io_done done[LANES];
		int n;

		for (int l = 0; l < LANES; l++) {
			/* even lanes receive into the arena, odd ones outside it */
			uint8_t *b = (l % 2 ? heap : arena) + (size_t)l * MIB;

			if (eof[l] || busy[l])
				continue;
			ck_assert_int_eq(vms_engine_recv(e, sv[l][0], b, MIB, (void *)(intptr_t)l), 0);
			busy[l] = 1;
		}
		n = vms_engine_wait(e, done, LANES, 30000);
		ck_assert_msg(n > 0, "%s: no completion (%d)", what, n);
		for (int k = 0; k < n; k++) {
			int l = (int)(intptr_t)done[k].user;
			uint8_t *b = (l % 2 ? heap : arena) + (size_t)l * MIB;

			busy[l] = 0;
			ck_assert_msg(done[k].res >= 0, "%s lane %d: %ld", what, l, done[k].res);
			if (done[k].res == 0) {
				eof[l] = 1;
				left--;
				continue;
			}
			ver_feed(&v[l], b, (size_t)done[k].res);
		}
	}
	for (int l = 0; l < LANES; l++) {
		pthread_join(w[l].th, NULL);
		ck_assert_msg(!v[l].bad, "%s lane %d: wrong byte at %llu", what, l,
			      (unsigned long long)v[l].bad_at);
		ck_assert_uint_eq(v[l].bytes, (uint64_t)recs * MIB);
		ver_free(&v[l]);
		close(sv[l][0]);
	}
	if (KINDS[i] == VMS_ENGINE_URING)
		ck_assert_uint_gt(stats(e).fixed_ops, fixed0); /* READ_FIXED on sockets */
	else
		ck_assert_uint_eq(stats(e).fixed_ops, 0);
	vms_engine_free(e);
out:
	free(heap);
	munmap(arena, arena_len);
}

START_TEST(test_recv_lanes_unix)
{
	recv_lanes_run(_i, 0);
}
END_TEST

START_TEST(test_recv_lanes_tcp)
{
	recv_lanes_run(_i, 1);
}
END_TEST

/* ---- short writes --------------------------------------------------------- */

static void short_run(int i, int tcp)
{
	const char *what = tcp ? "short_tcp" : "short_unix";
	const unsigned depth = 8, recs = 24;
	const size_t rec = 256u << 10;
	size_t arena_len = depth * rec;
	uint8_t *arena = xmap(arena_len);
	struct vms_engine *e = eng_new(i, what, depth, arena, arena_len);
	struct vms_engine_stats st;
	struct reader rd;
	int sv[2];

	if (!e) {
		munmap(arena, arena_len);
		return;
	}
	if (tcp)
		tcp_pair(sv);
	else
		unix_pair(sv);
	/* Tiny send buffer: every write goes out in many pieces. (A tiny
	 * receive window as well would make TCP crawl on timers.) */
	set_bufs(sv[0], 4096, 0);
	if (!tcp)
		set_bufs(sv[1], 0, 4096);
	/* a reader that lets the socket fill first, then takes odd-sized bites */
	reader_start(&rd, sv[1], 0, rec, 3001, true);
	send_records(e, arena, depth, &sv[0], 1, recs, rec);
	shutdown(sv[0], SHUT_WR);
	reader_join(&rd, (uint64_t)recs * rec, what);
	st = stats(e);
	print_stats(what, i, &st);
	ck_assert_uint_gt(st.short_writes, 0); /* the case under test happened */
	ck_assert_uint_eq(st.max_fd_writes, 1);
	close(sv[0]);
	close(sv[1]);
	vms_engine_free(e);
	munmap(arena, arena_len);
}

START_TEST(test_short_unix)
{
	short_run(_i, 0);
}
END_TEST

START_TEST(test_short_tcp)
{
	short_run(_i, 1);
}
END_TEST

/* ---- pipes and files ---------------------------------------------------------- */

static void pipe_run(int i, int nonblock)
{
	const char *what = nonblock ? "pipe_nonblock" : "pipe";
	const unsigned depth = 16, recs = 120;
	const size_t rec = 96u << 10;
	size_t arena_len = depth * rec;
	uint8_t *arena = xmap(arena_len);
	struct vms_engine *e = eng_new(i, what, depth, arena, arena_len);
	struct vms_engine_stats st;
	struct reader rd;
	int p[2], fl0, fl1;

	if (!e) {
		munmap(arena, arena_len);
		return;
	}
	xpipe(p, nonblock ? O_NONBLOCK : 0);
	fl0 = fcntl(p[1], F_GETFL);
	/* the reader lets the pipe fill first, then takes small bites: writes
	 * block or go short */
	reader_start(&rd, p[0], 0, rec, 5000, true);
	send_records(e, arena, depth, &p[1], 1, recs, rec);
	fl1 = fcntl(p[1], F_GETFL);
	ck_assert_int_eq(fl0, fl1); /* O_NONBLOCK (un)set as the caller left it */
	close(p[1]);
	reader_join(&rd, (uint64_t)recs * rec, what);
	close(p[0]);
	st = stats(e);
	print_stats(what, i, &st);
	if (KINDS[i] == VMS_ENGINE_URING)
		ck_assert_uint_gt(st.fixed_ops, 0); /* WRITE_FIXED from the arena */
	if (nonblock && KINDS[i] == VMS_ENGINE_POSIX)
		ck_assert_uint_gt(st.eagain, 0); /* EAGAIN answered by poll() */
	vms_engine_free(e);
	munmap(arena, arena_len);
}

START_TEST(test_pipe)
{
	pipe_run(_i, 0);
}
END_TEST

START_TEST(test_pipe_nonblock)
{
	pipe_run(_i, 1);
}
END_TEST

START_TEST(test_file)
{
	const unsigned depth = 16, recs = 200;
	const size_t rec = 256u << 10;
	size_t arena_len = depth * rec;
	uint8_t *arena = xmap(arena_len), *buf = tu_xmalloc(MIB);
	struct vms_engine *e = eng_new(_i, "file", depth, arena, arena_len);
	struct verifier v;
	int fd = tmpfile_fd(), busy = 0, eof = 0;

	if (!e)
		goto out;
	ck_assert_int_eq(write(fd, "", 0), 0);
	send_records(e, arena, depth, &fd, 1, recs, rec);
	/* writes went to the current position, one after the other */
	ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), (off_t)recs * (off_t)rec);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	ver_init(&v, 0, rec);
	/* read it back through recv (plain read / READ_FIXED on files) */
	while (!eof) {
		struct vms_io_done d;
		int n;

		if (!busy)
			ck_assert_int_eq(vms_engine_recv(e, fd, buf, MIB, NULL), 0);
		busy = 1;
		n = vms_engine_wait(e, &d, 1, 10000);
		ck_assert_int_eq(n, 1);
		busy = 0;
		ck_assert_int_ge(d.res, 0);
		if (d.res == 0)
			eof = 1;
		else
			ver_feed(&v, buf, (size_t)d.res);
	}
	ck_assert(!v.bad);
	ck_assert_uint_eq(v.bytes, (uint64_t)recs * rec);
	ver_free(&v);
	/* and once more through read_full, into the arena */
	ck_assert_int_eq(lseek(fd, (off_t)rec, SEEK_SET), (off_t)rec);
	ck_assert_int_eq(vms_engine_read_full(e, fd, arena, rec, 1000), (long)rec);
	pat_fill(buf, rec, 0, 1);
	ck_assert_int_eq(memcmp(arena, buf, rec), 0);
	ck_assert_int_eq(lseek(fd, -16, SEEK_END), (off_t)recs * (off_t)rec - 16);
	ck_assert_int_eq(vms_engine_read_full(e, fd, arena, rec, 1000), 16);
	vms_engine_free(e);
out:
	close(fd);
	free(buf);
	munmap(arena, arena_len);
}
END_TEST

/* ---- errors ------------------------------------------------------------ */

static long one(struct vms_engine *e, int timeout_ms)
{
	struct vms_io_done d;
	int n = vms_engine_wait(e, &d, 1, timeout_ms);

	ck_assert_msg(n == 1, "wait: %d (%s)", n, vms_last_error());
	return d.res;
}

static int wr(struct vms_engine *e, int fd, const void *p, size_t n, void *user)
{
	struct iovec iov = { (void *)(uintptr_t)p, n };

	return vms_engine_writev(e, fd, &iov, 1, user);
}

START_TEST(test_epipe_unix)
{
	static char buf[4096];
	struct vms_engine *e = eng_new(_i, "epipe_unix", 8, NULL, 0);
	struct vms_io_done d[4];
	int sv[2], n;

	if (!e)
		return;
	signal(SIGPIPE, SIG_DFL); /* a SIGPIPE would kill this test */
	unix_pair(sv);
	close(sv[1]);
	ck_assert_int_eq(wr(e, sv[0], buf, sizeof(buf), (void *)1), 0);
	ck_assert_int_eq(wr(e, sv[0], buf, sizeof(buf), (void *)2), 0);
	ck_assert_int_eq(wr(e, sv[0], buf, sizeof(buf), (void *)3), 0);
	n = 0;
	while (n < 3) {
		int k = vms_engine_wait(e, d + n, 3 - (unsigned)n, 5000);

		ck_assert_int_gt(k, 0);
		n += k;
	}
	/* the first write fails; the ones behind it are never attempted */
	ck_assert_ptr_eq(d[0].user, (void *)1);
	ck_assert_int_eq(d[0].res, -EPIPE);
	ck_assert_ptr_eq(d[1].user, (void *)2);
	ck_assert_int_eq(d[1].res, -ECANCELED);
	ck_assert_ptr_eq(d[2].user, (void *)3);
	ck_assert_int_eq(d[2].res, -ECANCELED);
	/* write_full says the same */
	ck_assert_int_eq(vms_engine_write_full(e, sv[0], buf, 100, 1000), -EPIPE);
	ck_assert_uint_eq(vms_engine_pending(e), 0);
	close(sv[0]);
	vms_engine_free(e);
}
END_TEST

START_TEST(test_reset_tcp)
{
	static char buf[4096];
	struct vms_engine *e = eng_new(_i, "reset_tcp", 8, NULL, 0);
	struct vms_io_done d;
	int sv[2], sv2[2];
	char c;

	if (!e)
		return;
	signal(SIGPIPE, SIG_DFL);
	/* The peer closes with unread data: it answers with RST. The first
	 * send then reports ECONNRESET, the next ones EPIPE. */
	tcp_pair(sv);
	ck_assert_int_eq(write(sv[0], "x", 1), 1);
	ck_assert(tu_wait_fd(sv[1], POLLIN, TU_WAIT_MS) & POLLIN); /* it is there, unread */
	close(sv[1]);
	/* the RST is in when sv[0] reports the error */
	ck_assert(tu_wait_fd(sv[0], POLLIN, TU_WAIT_MS) & POLLERR);
	ck_assert_int_eq(wr(e, sv[0], buf, sizeof(buf), NULL), 0);
	ck_assert_int_eq(one(e, 5000), -ECONNRESET);
	ck_assert_int_eq(wr(e, sv[0], buf, sizeof(buf), NULL), 0);
	ck_assert_int_eq(one(e, 5000), -EPIPE);
	ck_assert_int_eq(vms_engine_write_full(e, sv[0], buf, sizeof(buf), 1000), -EPIPE);
	close(sv[0]);

	/* a receive in progress when the connection is reset */
	tcp_pair(sv2);
	ck_assert_int_eq(write(sv2[0], "x", 1), 1);
	ck_assert(tu_wait_fd(sv2[1], POLLIN, TU_WAIT_MS) & POLLIN);
	ck_assert_int_eq(vms_engine_recv(e, sv2[0], &c, 1, NULL), 0);
	ck_assert_int_eq(vms_engine_wait(e, &d, 1, 0), 0); /* submitted, nothing to read yet */
	close(sv2[1]);
	ck_assert_int_eq(one(e, 5000), -ECONNRESET);
	close(sv2[0]);
	vms_engine_free(e);
}
END_TEST

START_TEST(test_epipe_pipe)
{
	static char buf[4096];
	struct vms_engine *e = eng_new(_i, "epipe_pipe", 8, NULL, 0);
	int p[2];

	if (!e)
		return;
	/* engine.h: for pipes the caller ignores SIGPIPE */
	signal(SIGPIPE, SIG_IGN);
	xpipe(p, 0);
	close(p[0]);
	ck_assert_int_eq(wr(e, p[1], buf, sizeof(buf), NULL), 0);
	ck_assert_int_eq(one(e, 5000), -EPIPE);
	ck_assert_int_eq(vms_engine_write_full(e, p[1], buf, sizeof(buf), 1000), -EPIPE);
	close(p[1]);
	signal(SIGPIPE, SIG_DFL);
	vms_engine_free(e);
}
END_TEST

START_TEST(test_eof)
{
	struct vms_engine *e = eng_new(_i, "eof", 8, NULL, 0);
	char buf[64];
	int sv[2], p[2], fd;

	if (!e)
		return;
	unix_pair(sv);
	ck_assert_int_eq(write(sv[1], "hello", 5), 5);
	shutdown(sv[1], SHUT_WR);
	ck_assert_int_eq(vms_engine_recv(e, sv[0], buf, sizeof(buf), NULL), 0);
	ck_assert_int_eq(one(e, 5000), 5);
	ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
	ck_assert_int_eq(vms_engine_recv(e, sv[0], buf, sizeof(buf), NULL), 0);
	ck_assert_int_eq(one(e, 5000), 0);
	close(sv[0]);
	close(sv[1]);

	xpipe(p, 0);
	close(p[1]);
	ck_assert_int_eq(vms_engine_recv(e, p[0], buf, sizeof(buf), NULL), 0);
	ck_assert_int_eq(one(e, 5000), 0);
	close(p[0]);

	fd = tmpfile_fd();
	ck_assert_int_eq(vms_engine_recv(e, fd, buf, sizeof(buf), NULL), 0);
	ck_assert_int_eq(one(e, 5000), 0);
	/* read_full stops early only at EOF */
	ck_assert_int_eq(write(fd, "0123456789", 10), 10);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	ck_assert_int_eq(vms_engine_read_full(e, fd, buf, sizeof(buf), 1000), 10);
	close(fd);
	vms_engine_free(e);
}
END_TEST

/* ---- timeouts --------------------------------------------------------------- */

/* read_full with nothing to read: -ETIMEDOUT on time; afterwards the buffer
 * stays untouched and the data that arrives is still in the fd. */
static void read_timeout_on(struct vms_engine *e, int rfd, int wfd, uint8_t *buf, const char *what)
{
	int64_t t0 = tu_now_ms(), dt;
	char got[64];
	long r;

	memset(buf, 0xaa, 4096);
	r = vms_engine_read_full(e, rfd, buf, 100, 200);
	dt = tu_now_ms() - t0;
	ck_assert_msg(r == -ETIMEDOUT, "%s: read_full: %ld", what, r);
	assert_timed_out(dt, 200, what);
	ck_assert_int_eq(write(wfd, "late data", 9), 9);
	assert_unread(rfd, 9, what);
	for (int k = 0; k < 4096; k++)
		ck_assert_msg(buf[k] == 0xaa, "%s: buffer written after return (byte %d)", what, k);
	ck_assert_int_eq(read(rfd, got, sizeof(got)), 9);
	ck_assert_int_eq(memcmp(got, "late data", 9), 0);
}

START_TEST(test_read_timeout)
{
	size_t arena_len = 1 << 16;
	uint8_t *arena = xmap(arena_len), *heap = tu_xmalloc(4096);
	struct vms_engine *e = eng_new(_i, "read_timeout", 8, arena, arena_len);
	int sv[2], p[2];

	if (!e)
		goto out;
	unix_pair(sv);
	read_timeout_on(e, sv[0], sv[1], heap, "socket");
	read_timeout_on(e, sv[0], sv[1], arena, "socket, arena");
	xpipe(p, 0);
	read_timeout_on(e, p[0], p[1], heap, "pipe");
	read_timeout_on(e, p[0], p[1], arena + 4096, "pipe, arena");
	/* and a read that succeeds across several arrivals */
	for (int k = 0; k < 3; k++)
		ck_assert_int_eq(write(sv[1], "abcd", 4), 4);
	ck_assert_int_eq(vms_engine_read_full(e, sv[0], heap, 12, 1000), 12);
	ck_assert_int_eq(memcmp(heap, "abcdabcdabcd", 12), 0);
	ck_assert_uint_eq(vms_engine_pending(e), 0);
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
	vms_engine_free(e);
out:
	free(heap);
	munmap(arena, arena_len);
}
END_TEST

/* write_full into a peer that never reads: -ETIMEDOUT, and no byte reaches
 * the fd after the call returned. */
START_TEST(test_write_timeout)
{
	const size_t len = 4 * MIB;
	uint8_t *buf = tu_xmalloc(len), *sink = tu_xmalloc(len);
	struct vms_engine *e = eng_new(_i, "write_timeout", 8, NULL, 0);
	int64_t t0, dt;
	ssize_t a, b;
	int sv[2], rc;

	if (!e)
		goto out;
	memset(buf, 'w', len);
	unix_pair(sv);
	set_bufs(sv[0], 8192, 0);
	set_bufs(sv[1], 0, 8192);
	t0 = tu_now_ms();
	rc = vms_engine_write_full(e, sv[0], buf, len, 200);
	dt = tu_now_ms() - t0;
	ck_assert_int_eq(rc, -ETIMEDOUT);
	assert_timed_out(dt, 200, "write_full");
	a = recv(sv[1], sink, len, MSG_DONTWAIT);
	ck_assert_int_gt(a, 0);
	/* That recv made room: a write still in the kernel would go on now,
	 * ahead of this marker written through the same engine. The marker
	 * must be all that follows. */
	ck_assert_int_eq(vms_engine_write_full(e, sv[0], "M", 1, TU_WAIT_MS), 0);
	ck_assert(tu_wait_fd(sv[1], POLLIN, TU_WAIT_MS) & POLLIN);
	b = recv(sv[1], sink, len, MSG_DONTWAIT);
	ck_assert_msg(b == 1 && sink[0] == 'M',
		      "after write_full returned: %zd bytes where the 1-byte marker was expected", b);
	close(sv[0]);
	close(sv[1]);
	vms_engine_free(e);
out:
	free(buf);
	free(sink);
}
END_TEST

START_TEST(test_wait_timeout)
{
	struct vms_engine *e = eng_new(_i, "wait_timeout", 8, NULL, 0);
	struct vms_io_done d;
	int64_t t0, dt;
	char c = 0;
	int sv[2];

	if (!e)
		return;
	/* nothing pending: returns at once, even with no timeout */
	ck_assert_int_eq(vms_engine_wait(e, &d, 1, -1), 0);
	unix_pair(sv);
	ck_assert_int_eq(vms_engine_recv(e, sv[0], &c, 1, (void *)7), 0);
	ck_assert_int_eq(vms_engine_wait(e, &d, 1, 0), 0);
	t0 = tu_now_ms();
	ck_assert_int_eq(vms_engine_wait(e, &d, 1, 150), 0);
	dt = tu_now_ms() - t0;
	assert_timed_out(dt, 150, "wait");
	ck_assert_uint_eq(vms_engine_pending(e), 1);
	ck_assert_int_eq(write(sv[1], "z", 1), 1);
	ck_assert_int_eq(vms_engine_wait(e, &d, 1, 5000), 1);
	ck_assert_ptr_eq(d.user, (void *)7);
	ck_assert_int_eq(d.res, 1);
	ck_assert_int_eq(c, 'z');
	ck_assert_uint_eq(vms_engine_pending(e), 0);
	close(sv[0]);
	close(sv[1]);
	vms_engine_free(e);
}
END_TEST

/* A pipe nobody reads: waits still time out (no thread stuck in write()),
 * and vms_engine_cancel() ends everything with -ECANCELED. */
START_TEST(test_cancel)
{
	const size_t len = 64u << 10;
	uint8_t *buf = tu_xmalloc(len), *sink = tu_xmalloc(1 << 20);
	struct vms_engine *e = eng_new(_i, "cancel", 8, NULL, 0);
	struct vms_io_done d[8];
	int p[2], sv[2], fl, n = 0;
	int64_t t0, dt;
	char c;

	if (!e)
		goto out;
	memset(buf, 'p', len);
	xpipe(p, 0);
	ck_assert_int_eq(fcntl(p[1], F_SETPIPE_SZ, 4096), 4096);
	fl = fcntl(p[1], F_GETFL);
	unix_pair(sv);
	for (int k = 0; k < 3; k++)
		ck_assert_int_eq(wr(e, p[1], buf, len, (void *)(intptr_t)(k + 1)), 0);
	ck_assert_int_eq(vms_engine_recv(e, sv[0], &c, 1, (void *)4), 0);
	t0 = tu_now_ms();
	ck_assert_int_eq(vms_engine_wait(e, d, 8, 200), 0);
	dt = tu_now_ms() - t0;
	assert_timed_out(dt, 200, "wait on a stalled pipe");
	ck_assert_int_eq(vms_engine_cancel(e), 0);
	while (n < 4) {
		int k = vms_engine_wait(e, d + n, 8 - (unsigned)n, 2000);

		ck_assert_int_gt(k, 0);
		n += k;
	}
	for (int k = 0; k < 4; k++)
		ck_assert_msg(d[k].res == -ECANCELED, "op %p: %ld", d[k].user, d[k].res);
	ck_assert_uint_eq(vms_engine_pending(e), 0);
	ck_assert_int_eq(fcntl(p[1], F_GETFL), fl);
	/* and the engine goes on working */
	ck_assert_int_gt(read(p[0], sink, 1 << 20), 0);
	ck_assert_int_eq(wr(e, sv[0], "x", 1, NULL), 0);
	ck_assert_int_eq(one(e, 5000), 1);
	ck_assert_int_eq(read(sv[1], &c, 1), 1);
	ck_assert_int_eq(vms_engine_cancel(e), 0); /* nothing pending: nothing to do */
	ck_assert_int_eq(vms_engine_wait(e, d, 8, 0), 0);
	/* write_full into the stalled pipe times out too */
	t0 = tu_now_ms();
	ck_assert_int_eq(vms_engine_write_full(e, p[1], buf, len, 200), -ETIMEDOUT);
	dt = tu_now_ms() - t0;
	assert_timed_out(dt, 200, "write_full on a stalled pipe");
	ck_assert_int_eq(fcntl(p[1], F_GETFL), fl);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
	vms_engine_free(e);
out:
	free(buf);
	free(sink);
}
END_TEST

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Freeing an engine with a write pending on a stalled pipe leaks nothing
 * (posix: the pipe's private reopen is closed). */
START_TEST(test_free_stalled_pipe)
{
	const size_t len = 256u << 10;
	char *buf = tu_xmalloc(len);
	struct vms_engine *e;
	int p[2], before;

	xpipe(p, 0);
	ck_assert_int_eq(fcntl(p[1], F_SETPIPE_SZ, 4096), 4096);
	memset(buf, 's', len);
	before = count_fds();
	e = eng_new(_i, "free_stalled_pipe", 4, NULL, 0);
	if (!e)
		goto out;
	ck_assert_int_eq(wr(e, p[1], buf, len, NULL), 0);
	ck_assert_int_eq(wr(e, p[1], buf, len, NULL), 0);
	ck_assert_int_eq(vms_engine_wait(e, (struct vms_io_done[1]){ { 0 } }, 1, 50), 0);
	vms_engine_free(e);
	ck_assert_int_eq(count_fds(), before);
out:
	close(p[0]);
	close(p[1]);
	free(buf);
}
END_TEST

/* Freeing an engine with a receive in flight: it returns, and the buffer is
 * not written afterwards. */
START_TEST(test_free_pending)
{
	struct vms_engine *e = eng_new(_i, "free_pending", 8, NULL, 0);
	char *buf = tu_xmalloc(64), got[16];
	int sv[2];

	if (!e)
		goto out;
	unix_pair(sv);
	memset(buf, 0x55, 64);
	ck_assert_int_eq(vms_engine_recv(e, sv[0], buf, 64, NULL), 0);
	ck_assert_int_eq(vms_engine_wait(e, NULL, 0, 0), 0);
	ck_assert_int_eq(vms_engine_wait(e, (struct vms_io_done[1]){ { 0 } }, 1, 20), 0);
	vms_engine_free(e);
	ck_assert_int_eq(write(sv[1], "after", 5), 5);
	assert_unread(sv[0], 5, "after free");
	for (int k = 0; k < 64; k++)
		ck_assert_int_eq((unsigned char)buf[k], 0x55);
	ck_assert_int_eq(read(sv[0], got, sizeof(got)), 5);
	close(sv[0]);
	close(sv[1]);
out:
	free(buf);
}
END_TEST

/* ---- arguments ---------------------------------------------------------------- */

START_TEST(test_args)
{
	struct vms_engine *e = eng_new(_i, "args", 2, NULL, 0), *x = (void *)1;
	struct iovec iov[5] = { { "a", 1 }, { "b", 1 }, { "c", 1 }, { "d", 1 }, { "e", 1 } };
	char c[2];
	int sv[2], sv2[2];

	if (!e)
		return;
	ck_assert_int_eq(vms_engine_new(&x, KINDS[_i], 0, NULL, 0), VMS_EINVAL);
	ck_assert_ptr_null(x);
	ck_assert_int_eq(vms_engine_new(&x, KINDS[_i], VMS_ENGINE_DEPTH_MAX + 1, NULL, 0),
			 VMS_EINVAL);
	ck_assert_int_eq(vms_engine_new(&x, 9, 8, NULL, 0), VMS_EINVAL);
	ck_assert_int_eq(vms_engine_new(&x, KINDS[_i], 8, NULL, 10), VMS_EINVAL);
	unix_pair(sv);
	unix_pair(sv2);
	ck_assert_int_eq(vms_engine_writev(e, sv[0], iov, 0, NULL), VMS_EINVAL);
	ck_assert_int_eq(vms_engine_writev(e, sv[0], iov, 5, NULL), VMS_EINVAL);
	ck_assert_int_eq(wr(e, sv[0], "", 0, NULL), VMS_EINVAL);
	ck_assert_int_eq(wr(e, -1, "x", 1, NULL), VMS_EINVAL);
	ck_assert_int_eq(vms_engine_recv(e, sv[0], c, 0, NULL), VMS_EINVAL);
	ck_assert_int_eq(vms_engine_read_full(e, -1, c, 1, 10), -EBADF);
	ck_assert_int_eq(vms_engine_write_full(e, -1, c, 1, 10), -EBADF);
	ck_assert_uint_eq(vms_engine_pending(e), 0);
	/* one receive per fd; depth operations at most */
	ck_assert_int_eq(vms_engine_recv(e, sv[0], c, 1, NULL), 0);
	ck_assert_int_eq(vms_engine_recv(e, sv[0], c + 1, 1, NULL), VMS_ESTATE);
	ck_assert_int_eq(vms_engine_writev(e, sv[0], iov, 4, NULL), 0);
	ck_assert_int_eq(vms_engine_recv(e, sv2[0], c + 1, 1, NULL), VMS_ESTATE);
	ck_assert_int_eq(vms_engine_writev(e, sv2[0], iov, 1, NULL), VMS_ESTATE);
	ck_assert_uint_eq(vms_engine_pending(e), 2);
	ck_assert_int_eq(one(e, 5000), 4);
	ck_assert_int_eq(write(sv[1], "r", 1), 1);
	ck_assert_int_eq(one(e, 5000), 1);
	ck_assert_int_eq(c[0], 'r');
	ck_assert_int_eq(read(sv[1], c, 2), 2);
	ck_assert_int_eq(vms_engine_stats(NULL, NULL), VMS_EINVAL);
	/* writing to a pipe's read end fails at once, whichever engine */
	{
		int pp[2];

		xpipe(pp, 0);
		ck_assert_int_eq(wr(e, pp[0], "x", 1, NULL), 0);
		ck_assert_int_eq(one(e, 2000), -EBADF);
		ck_assert_int_eq(vms_engine_write_full(e, pp[0], "x", 1, 100), -EBADF);
		close(pp[0]);
		close(pp[1]);
	}
	close(sv[0]);
	close(sv[1]);
	close(sv2[0]);
	close(sv2[1]);
	vms_engine_free(e);
	vms_engine_free(NULL);
}
END_TEST

/* ---- fixed buffers ------------------------------------------------------------ */

START_TEST(test_fixed)
{
	/* the mapping goes on past the registered arena, so a buffer can
	 * straddle its end */
	size_t arena_len = (1 << 20) - 4096;
	uint8_t *arena = xmap(1 << 20), *heap = tu_xmalloc(8192);
	struct vms_engine *e = eng_new(_i, "fixed", 8, arena, arena_len), *e2;
	int uring = KINDS[_i] == VMS_ENGINE_URING;
	struct vms_engine_stats st;
	int p[2], sv[2];
	uint64_t f;

	if (!e)
		goto out;
	st = stats(e);
	ck_assert_int_eq(st.fixed_registered, uring);
	ck_assert_int_eq(st.reg_err, 0);
	f = st.fixed_ops;
	xpipe(p, 0);
	unix_pair(sv);
	memcpy(arena + 100, "fixed!", 6);
	ck_assert_int_eq(wr(e, p[1], arena + 100, 6, NULL), 0); /* pipe, in arena */
	ck_assert_int_eq(one(e, 5000), 6);
	ck_assert_uint_eq(stats(e).fixed_ops, f + (unsigned)uring);
	f = stats(e).fixed_ops;
	ck_assert_int_eq(wr(e, p[1], "heap", 4, NULL), 0); /* outside */
	ck_assert_int_eq(one(e, 5000), 4);
	ck_assert_uint_eq(stats(e).fixed_ops, f);
	/* straddling the arena's end: not fixed */
	ck_assert_int_eq(wr(e, p[1], arena + arena_len - 1, 2, NULL), 0);
	ck_assert_int_eq(one(e, 5000), 2);
	ck_assert_uint_eq(stats(e).fixed_ops, f);
	ck_assert_int_eq(read(p[0], heap, 64), 12);
	ck_assert_int_eq(memcmp(heap, "fixed!heap", 10), 0);
	/* socket receive into the arena: READ_FIXED */
	ck_assert_int_eq(write(sv[1], "sock", 4), 4);
	ck_assert_int_eq(vms_engine_recv(e, sv[0], arena + 4096, 100, NULL), 0);
	ck_assert_int_eq(one(e, 5000), 4);
	ck_assert_int_eq(memcmp(arena + 4096, "sock", 4), 0);
	ck_assert_uint_eq(stats(e).fixed_ops, f + (unsigned)uring);
	f = stats(e).fixed_ops;
	/* socket writes never use WRITE_FIXED (no MSG_NOSIGNAL) */
	ck_assert_int_eq(wr(e, sv[0], arena + 100, 6, NULL), 0);
	ck_assert_int_eq(one(e, 5000), 6);
	ck_assert_uint_eq(stats(e).fixed_ops, f);
	ck_assert_int_eq(read(sv[1], heap, 64), 6);
	/* read_full / write_full into / from the arena */
	ck_assert_int_eq(vms_engine_write_full(e, p[1], arena + 100, 6, 1000), 0);
	ck_assert_int_eq(vms_engine_read_full(e, p[0], arena + 8192, 6, 1000), 6);
	ck_assert_int_eq(memcmp(arena + 8192, "fixed!", 6), 0);
	ck_assert_uint_eq(stats(e).fixed_ops, f + 2u * (unsigned)uring);
	if (uring) {
		ck_assert_int_eq(vms_engine_set_send_zc(e, 1), 0);
		ck_assert_int_eq(vms_engine_set_send_zc(e, 0), 0);
	} else {
		ck_assert_int_eq(vms_engine_set_send_zc(e, 1), VMS_EUNSUPPORTED);
	}
	vms_engine_free(e);
	/* no arena: nothing registered */
	e2 = eng_new(_i, "fixed", 8, NULL, 0);
	st = stats(e2);
	ck_assert_int_eq(st.fixed_registered, 0);
	ck_assert_int_eq(st.reg_err, 0);
	vms_engine_free(e2);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
out:
	free(heap);
	munmap(arena, 1 << 20);
}
END_TEST

/* Registration beyond RLIMIT_MEMLOCK (CAP_IPC_LOCK dropped so the limit
 * applies even to root): the engine works on without fixed buffers. Runs in
 * a child because it drops a capability. */
static int noreg_child(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	struct rlimit rl = { 64 << 10, 64 << 10 };
	struct vms_engine_stats st;
	struct vms_engine *e;
	size_t len = 4 << 20;
	uint8_t *arena = xmap(len);
	char got[8];
	int p[2];

	if (syscall(SYS_capget, &h, d) != 0)
		return 77;
	d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
	if (syscall(SYS_capset, &h, d) != 0 || setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
		return 77;
	if (vms_engine_new(&e, VMS_ENGINE_URING, 8, arena, len) != 0)
		return 2;
	vms_engine_stats(e, &st);
	if (st.fixed_registered != 0 || st.reg_err != -ENOMEM) {
		fprintf(stderr, "registered %d reg_err %d\n", st.fixed_registered, st.reg_err);
		return 3;
	}
	xpipe(p, 0);
	memcpy(arena, "noreg", 5);
	if (vms_engine_write_full(e, p[1], arena, 5, 1000) != 0 || read(p[0], got, 8) != 5 ||
	    memcmp(got, "noreg", 5) != 0)
		return 4;
	vms_engine_stats(e, &st);
	if (st.fixed_ops != 0)
		return 5;
	vms_engine_free(e);
	return 0;
}

START_TEST(test_register_fails)
{
	pid_t pid;
	int status;

	if (!vms_engine_uring_available()) {
		printf("register_fails [io_uring]: SKIPPED, io_uring unavailable: %s\n",
		       vms_engine_uring_reason());
		return;
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(noreg_child());
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77) {
		printf("register_fails: SKIPPED, cannot drop CAP_IPC_LOCK here\n");
		return;
	}
	ck_assert_msg(WEXITSTATUS(status) == 0, "child failed at step %d", WEXITSTATUS(status));
}
END_TEST

/* ---- availability ------------------------------------------------------------- */

/* Runs in a fresh process whose io_uring_setup fails with errno `err`
 * (seccomp), so the cached probe has not run yet. */
static int blocked_child(int err)
{
	struct vms_engine *e = NULL;
	char c = 0;
	int sv[2], rc;

	if (vms_engine_uring_available())
		return 10;
	if (!strstr(vms_engine_uring_reason(), strerror(err)))
		return 11;
	rc = vms_engine_new(&e, VMS_ENGINE_URING, 8, NULL, 0);
	if (rc != VMS_EUNSUPPORTED || e || !strstr(vms_last_error(), "io_uring") ||
	    !strstr(vms_last_error(), strerror(err)))
		return 12;
	rc = vms_engine_new(&e, VMS_ENGINE_AUTO, 8, NULL, 0);
	if (rc != 0 || vms_engine_kind(e) != VMS_ENGINE_POSIX)
		return 13;
	unix_pair(sv);
	if (wr(e, sv[0], "k", 1, NULL) != 0 || vms_engine_recv(e, sv[1], &c, 1, NULL) != 0)
		return 14;
	for (int got = 0; got < 2;) {
		struct vms_io_done d[2];
		int n = vms_engine_wait(e, d, 2, 5000);

		if (n <= 0)
			return 15;
		for (int k = 0; k < n; k++)
			if (d[k].res != 1)
				return 16;
		got += n;
	}
	if (c != 'k')
		return 17;
	vms_engine_free(e);
	setenv("VMS_IO", "uring", 1);
	if (vms_engine_new(&e, VMS_ENGINE_AUTO, 8, NULL, 0) != VMS_EUNSUPPORTED ||
	    !strstr(vms_last_error(), "VMS_IO=uring"))
		return 18;
	return 0;
}

static void run_blocked(int err)
{
#if defined(__x86_64__)
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	char arg[16];
	pid_t pid;
	int status;

	snprintf(arg, sizeof(arg), "%d", err);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
			_exit(77);
		unsetenv("VMS_IO");
		execl("/proc/self/exe", "check_engine", "--blocked-child", arg, (char *)NULL);
		_exit(76);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77) {
		printf("uring_blocked: SKIPPED, cannot install a seccomp filter here\n");
		return;
	}
	ck_assert_msg(WEXITSTATUS(status) == 0, "errno %d: child failed at step %d", err,
		      WEXITSTATUS(status));
#else
	(void)err;
	printf("uring_blocked: SKIPPED, filter written for x86_64 only\n");
#endif
}

START_TEST(test_uring_blocked)
{
	run_blocked(ENOSYS);
	run_blocked(EPERM);
}
END_TEST

START_TEST(test_env_override)
{
	struct vms_engine *e = NULL;
	int avail = vms_engine_uring_available();

	setenv("VMS_IO", "posix", 1);
	ck_assert_int_eq(vms_engine_new(&e, VMS_ENGINE_AUTO, 8, NULL, 0), 0);
	ck_assert_int_eq(vms_engine_kind(e), VMS_ENGINE_POSIX);
	ck_assert_str_eq(vms_engine_name(e), "posix");
	vms_engine_free(e);
	/* only AUTO is overridden */
	if (avail) {
		ck_assert_int_eq(vms_engine_new(&e, VMS_ENGINE_URING, 8, NULL, 0), 0);
		ck_assert_int_eq(vms_engine_kind(e), VMS_ENGINE_URING);
		vms_engine_free(e);
	}
	setenv("VMS_IO", "uring", 1);
	if (avail) {
		ck_assert_int_eq(vms_engine_new(&e, VMS_ENGINE_AUTO, 8, NULL, 0), 0);
		ck_assert_int_eq(vms_engine_kind(e), VMS_ENGINE_URING);
		vms_engine_free(e);
	} else {
		ck_assert_int_eq(vms_engine_new(&e, VMS_ENGINE_AUTO, 8, NULL, 0), VMS_EUNSUPPORTED);
	}
	ck_assert_int_eq(vms_engine_new(&e, VMS_ENGINE_POSIX, 8, NULL, 0), 0);
	ck_assert_int_eq(vms_engine_kind(e), VMS_ENGINE_POSIX);
	vms_engine_free(e);
	setenv("VMS_IO", "fast", 1);
	e = (void *)1;
	ck_assert_int_eq(vms_engine_new(&e, VMS_ENGINE_AUTO, 8, NULL, 0), VMS_EINVAL);
	ck_assert_ptr_null(e);
	ck_assert_ptr_nonnull(strstr(vms_last_error(), "VMS_IO=fast"));
	setenv("VMS_IO", "auto", 1);
	ck_assert_int_eq(vms_engine_new(&e, VMS_ENGINE_AUTO, 8, NULL, 0), 0);
	ck_assert_int_eq(vms_engine_kind(e), avail ? VMS_ENGINE_URING : VMS_ENGINE_POSIX);
	vms_engine_free(e);
	unsetenv("VMS_IO");
	ck_assert_int_eq(vms_engine_new(&e, VMS_ENGINE_AUTO, 8, NULL, 0), 0);
	ck_assert_int_eq(vms_engine_kind(e), avail ? VMS_ENGINE_URING : VMS_ENGINE_POSIX);
	vms_engine_free(e);
}
END_TEST

/* Created in one thread, driven by another. */
static void *drive_main(void *arg)
{
	struct vms_engine *e = arg;
	static char c;
	int sv[2];
	long res = -1;

	unix_pair(sv);
	if (wr(e, sv[0], "t", 1, NULL) == 0) {
		struct vms_io_done d;

		if (vms_engine_wait(e, &d, 1, 5000) == 1)
			res = d.res;
	}
	if (read(sv[1], &c, 1) != 1)
		res = -2;
	close(sv[0]);
	close(sv[1]);
	return (void *)(intptr_t)res;
}

START_TEST(test_other_thread)
{
	struct vms_engine *e = eng_new(_i, "other_thread", 8, NULL, 0);
	pthread_t th;
	void *ret;

	if (!e)
		return;
	ck_assert_int_eq(pthread_create(&th, NULL, drive_main, e), 0);
	pthread_join(th, &ret);
	ck_assert_int_eq((intptr_t)ret, 1);
	vms_engine_free(e);
}
END_TEST

/* Thread handover, as a writer does it: the opening thread writes a
 * preamble with write_full, a second thread then queues a receive, submits
 * it and exits while it is pending (io_uring cancels a request whose thread
 * has gone; the engine submits it again), and the first thread finishes. */
struct handover {
	struct vms_engine *e;
	int fd;
	char *buf;
	int rc;
};

static void *handover_main(void *arg)
{
	struct handover *h = arg;
	struct vms_io_done d;

	h->rc = vms_engine_write_full(h->e, h->fd, "second", 6, 1000);
	if (h->rc == 0)
		h->rc = vms_engine_recv(h->e, h->fd, h->buf, 16, (void *)5);
	if (h->rc == 0)
		h->rc = vms_engine_wait(h->e, &d, 1, 50); /* submits; nothing arrives */
	return NULL;
}

START_TEST(test_handover)
{
	struct vms_engine *e = eng_new(_i, "handover", 8, NULL, 0);
	struct handover h;
	struct vms_engine_stats st;
	struct vms_io_done d;
	char got[16] = { 0 }, buf[16] = { 0 };
	pthread_t th;
	int sv[2];

	if (!e)
		return;
	unix_pair(sv);
	ck_assert_int_eq(vms_engine_write_full(e, sv[0], "first", 5, 1000), 0);
	h = (struct handover){ .e = e, .fd = sv[0], .buf = buf };
	ck_assert_int_eq(pthread_create(&th, NULL, handover_main, &h), 0);
	pthread_join(th, NULL);
	ck_assert_int_eq(h.rc, 0);
	ck_assert_uint_eq(vms_engine_pending(e), 1);
	ck_assert_int_eq(read(sv[1], got, sizeof(got)), 11);
	ck_assert_int_eq(memcmp(got, "firstsecond", 11), 0);
	/* the receive queued by the thread that is gone completes here */
	ck_assert_int_eq(write(sv[1], "ack", 3), 3);
	ck_assert_int_eq(vms_engine_wait(e, &d, 1, 5000), 1);
	ck_assert_ptr_eq(d.user, (void *)5);
	ck_assert_int_eq(d.res, 3);
	ck_assert_int_eq(memcmp(buf, "ack", 3), 0);
	ck_assert_int_eq(wr(e, sv[0], "third", 5, NULL), 0);
	ck_assert_int_eq(one(e, 5000), 5);
	ck_assert_int_eq(read(sv[1], got, sizeof(got)), 5);
	st = stats(e);
	if (KINDS[_i] == VMS_ENGINE_URING) {
		printf("handover [io_uring]: requeued %llu\n", (unsigned long long)st.requeued);
		ck_assert_uint_ge(st.requeued, 1);
	}
	close(sv[0]);
	close(sv[1]);
	vms_engine_free(e);
}
END_TEST

/* The thread that submitted a receive exits; another frees the engine: no
 * hang, and the buffer is not written afterwards. */
static void *submit_recv_main(void *arg)
{
	struct handover *h = arg;
	struct vms_io_done d;

	h->rc = vms_engine_recv(h->e, h->fd, h->buf, 16, NULL);
	if (h->rc == 0)
		h->rc = vms_engine_wait(h->e, &d, 1, 20);
	return NULL;
}

START_TEST(test_free_after_owner_exit)
{
	struct vms_engine *e = eng_new(_i, "free_after_owner_exit", 8, NULL, 0);
	char *buf = tu_xmalloc(16), got[8];
	struct handover h;
	pthread_t th;
	int sv[2];

	if (!e)
		goto out;
	unix_pair(sv);
	memset(buf, 0x33, 16);
	h = (struct handover){ .e = e, .fd = sv[0], .buf = buf };
	ck_assert_int_eq(pthread_create(&th, NULL, submit_recv_main, &h), 0);
	pthread_join(th, NULL);
	ck_assert_int_eq(h.rc, 0);
	vms_engine_free(e);
	ck_assert_int_eq(write(sv[1], "late", 4), 4);
	assert_unread(sv[0], 4, "after free");
	for (int k = 0; k < 16; k++)
		ck_assert_int_eq((unsigned char)buf[k], 0x33);
	ck_assert_int_eq(read(sv[0], got, sizeof(got)), 4);
	close(sv[0]);
	close(sv[1]);
out:
	free(buf);
}
END_TEST

/* A second thread submits and completes a write while the first one's
 * receive is in the kernel; the first thread then gets its receive. */
struct holder {
	struct vms_engine *e;
	int fd;
	char buf[8];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stage; /* 1: recv submitted; 2: go on */
	int n;
	struct vms_io_done d[2];
};

static void *holder_main(void *arg)
{
	struct holder *h = arg;

	vms_engine_recv(h->e, h->fd, h->buf, sizeof(h->buf), (void *)1);
	vms_engine_wait(h->e, h->d, 2, 0);
	pthread_mutex_lock(&h->mu);
	h->stage = 1;
	pthread_cond_broadcast(&h->cv);
	while (h->stage != 2)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
	while (h->n < 2) {
		int k = vms_engine_wait(h->e, h->d + h->n, 2 - (unsigned)h->n, 5000);

		if (k <= 0)
			break;
		h->n += k;
	}
	return NULL;
}

START_TEST(test_foreign_thread)
{
	struct vms_engine *e = eng_new(_i, "foreign_thread", 8, NULL, 0);
	struct holder h;
	struct vms_io_done d;
	char got[8];
	pthread_t th;
	int sv[2];

	if (!e)
		return;
	unix_pair(sv);
	memset(&h, 0, sizeof(h));
	h.e = e;
	h.fd = sv[0];
	pthread_mutex_init(&h.mu, NULL);
	pthread_cond_init(&h.cv, NULL);
	ck_assert_int_eq(pthread_create(&th, NULL, holder_main, &h), 0);
	pthread_mutex_lock(&h.mu);
	while (h.stage != 1)
		pthread_cond_wait(&h.cv, &h.mu);
	pthread_mutex_unlock(&h.mu);
	ck_assert_int_eq(wr(e, sv[0], "w", 1, (void *)2), 0);
	ck_assert_int_eq(vms_engine_wait(e, &d, 1, 100), 1);
	ck_assert_int_eq(d.res, 1);
	h.n = 1; /* the holder waits for its receive only */
	h.d[0] = d;
	ck_assert_int_eq(write(sv[1], "r", 1), 1);
	pthread_mutex_lock(&h.mu);
	h.stage = 2;
	pthread_cond_broadcast(&h.cv);
	pthread_mutex_unlock(&h.mu);
	pthread_join(th, NULL);
	ck_assert_int_eq(h.n, 2);
	for (int k = 0; k < 2; k++)
		ck_assert_int_eq(h.d[k].res, 1);
	ck_assert_int_eq(h.buf[0], 'r');
	ck_assert_int_eq(read(sv[1], got, sizeof(got)), 1);
	ck_assert_int_eq(got[0], 'w');
	pthread_mutex_destroy(&h.mu);
	pthread_cond_destroy(&h.cv);
	close(sv[0]);
	close(sv[1]);
	vms_engine_free(e);
}
END_TEST

/* ---- reader input on several TCP lanes -------------------------------------- */

/* A reader waiting for a large payload raises SO_RCVLOWAT on that lane; it
 * must put it back once the payload is in. Otherwise the multi-lane header
 * wait (poll on every lane) does not see a short record (DEVICE_END) that is
 * already queued behind it until more bytes come. The sender writes 4 MiB
 * over two lanes through small socket buffers, ends the device, flushes,
 * then sends nothing more until the reader has had DEVICE_END (it used to
 * come only with the EOS after it): an order, not a time, so a loaded
 * machine cannot fail it, and without the fix the sender waits in vain
 * (TU_WAIT_MS), then finishes, and the test fails on `gave_up`. */
struct lanes_writer {
	int fd[2];
	int seen[2];   /* pipe: the reader writes a byte once it has DEVICE_END */
	bool gave_up;  /* the sender stopped waiting for it */
	int err;
};

static void *lanes_writer_main(void *p)
{
	struct lanes_writer *lw = p;
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_transport t;
	struct vms_writer *w = NULL;
	size_t n = 4u << 20;
	uint8_t *buf = tu_xmalloc(n);
	uint32_t dev;
	int sb = 32768, err;

	tu_fill(buf, n, 77);
	for (int l = 0; l < 2; l++)
		setsockopt(lw->fd[l], SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
	vms_transport_init_fd(&t, lw->fd[0]);
	t.nlanes = 2;
	t.fds[1] = lw->fd[1];
	o.threads = 1;
	err = vms_writer_open_transport(&w, &t, &o);
	d.name = "dev";
	if (!err)
		err = vms_writer_begin_device(w, &d, &dev);
	for (size_t off = 0; !err && off < n; off += 65536)
		err = vms_writer_write(w, dev, buf + off, 65536);
	if (!err)
		err = vms_writer_end_device(w, dev);
	if (!err)
		err = vms_writer_flush(w);
	if (!err) {
		lw->gave_up = !(tu_wait_fd(lw->seen[0], POLLIN, TU_WAIT_MS) & POLLIN);
		err = vms_writer_finish(w);
	}
	lw->err = err;
	vms_writer_free(w);
	for (int l = 0; l < 2; l++)
		shutdown(lw->fd[l], SHUT_WR); /* end of stream: the reader checks each lane */
	free(buf);
	return NULL;
}

START_TEST(test_reader_lanes_short_record_after_payload)
{
	struct lanes_writer lw = { { -1, -1 }, { -1, -1 }, false, -1 };
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;
	struct vms_transport t;
	struct vms_reader *r = NULL;
	struct vms_event ev = VMS_EVENT_INIT;
	int rfd[2], sv[2][2], rc, ends = 0;
	pthread_t th;

	ck_assert_int_eq(pipe2(lw.seen, O_CLOEXEC), 0);
	for (int l = 0; l < 2; l++) {
		tcp_pair(sv[l]);
		lw.fd[l] = sv[l][0];
		rfd[l] = sv[l][1];
	}
	ck_assert_int_eq(pthread_create(&th, NULL, lanes_writer_main, &lw), 0);
	vms_transport_init_fd(&t, rfd[0]);
	t.nlanes = 2;
	t.fds[1] = rfd[1];
	t.idle_timeout_ms = 2 * TU_WAIT_MS; /* longer than the sender waits */
	o.threads = 1;
	ck_assert_int_eq(vms_reader_open_transport(&r, &t, &o), 0);
	while ((rc = vms_reader_next(r, &ev)) > 0) {
		if (ev.type == VMS_REC_DEVICE_END) {
			ck_assert_int_eq(write(lw.seen[1], "e", 1), 1);
			ends++;
		}
		if (ev.type == VMS_REC_EOS)
			break;
	}
	ck_assert_msg(rc > 0, "reader: %s", vms_last_error());
	ck_assert_int_eq(ends, 1);
	pthread_join(th, NULL);
	ck_assert_int_eq(lw.err, 0);
	/* delivered while the sender waited, not after it sent more */
	ck_assert_msg(!lw.gave_up, "DEVICE_END not delivered within %d s of the flush, while the "
		      "sender sent nothing more", TU_WAIT_MS / 1000);
	vms_reader_free(r);
	for (int l = 0; l < 2; l++) {
		close(sv[l][0]);
		close(sv[l][1]);
		close(lw.seen[l]);
	}
}
END_TEST

static Suite *engine_suite(void)
{
	Suite *s = suite_create("engine");
	TCase *tc = tcase_create("engine");

	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_lanes_unix, 0, 2);
	tcase_add_loop_test(tc, test_lanes_tcp, 0, 2);
	tcase_add_loop_test(tc, test_recv_lanes_unix, 0, 2);
	tcase_add_loop_test(tc, test_recv_lanes_tcp, 0, 2);
	tcase_add_loop_test(tc, test_short_unix, 0, 2);
	tcase_add_loop_test(tc, test_short_tcp, 0, 2);
	tcase_add_loop_test(tc, test_pipe, 0, 2);
	tcase_add_loop_test(tc, test_pipe_nonblock, 0, 2);
	tcase_add_loop_test(tc, test_file, 0, 2);
	tcase_add_loop_test(tc, test_epipe_unix, 0, 2);
	tcase_add_loop_test(tc, test_reset_tcp, 0, 2);
	tcase_add_loop_test(tc, test_epipe_pipe, 0, 2);
	tcase_add_loop_test(tc, test_eof, 0, 2);
	tcase_add_loop_test(tc, test_read_timeout, 0, 2);
	tcase_add_loop_test(tc, test_write_timeout, 0, 2);
	tcase_add_loop_test(tc, test_wait_timeout, 0, 2);
	tcase_add_loop_test(tc, test_free_pending, 0, 2);
	tcase_add_loop_test(tc, test_cancel, 0, 2);
	tcase_add_loop_test(tc, test_free_stalled_pipe, 0, 2);
	tcase_add_loop_test(tc, test_args, 0, 2);
	tcase_add_loop_test(tc, test_fixed, 0, 2);
	tcase_add_loop_test(tc, test_other_thread, 0, 2);
	tcase_add_loop_test(tc, test_handover, 0, 2);
	tcase_add_loop_test(tc, test_foreign_thread, 0, 2);
	tcase_add_loop_test(tc, test_free_after_owner_exit, 0, 2);
	tcase_add_test(tc, test_register_fails);
	tcase_add_test(tc, test_uring_blocked);
	tcase_add_test(tc, test_env_override);
	tcase_add_test(tc, test_reader_lanes_short_record_after_payload);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	SRunner *sr;
	int failed;

	if (argc == 3 && !strcmp(argv[1], "--blocked-child"))
		return blocked_child(atoi(argv[2]));
	setvbuf(stdout, NULL, _IOLBF, 0);
	unsetenv("VMS_IO");
	printf("io_uring here: %s%s\n", vms_engine_uring_available() ? "available" : "unavailable: ",
	       vms_engine_uring_reason());
	sr = srunner_create(engine_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
