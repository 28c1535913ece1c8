/* SPDX-License-Identifier: MIT */
/*
 * bench_engine: loopback TCP throughput of the I/O engines, 1 MiB writes,
 * against plain blocking send()/recv() loops measured in the same run.
 *
 * The receiver is a forked process (its own address space and scheduler
 * entity, as on a real destination); the sender is this process. Modes:
 *   base    blocking send() / recv() loops, one thread per connection on
 *           both sides (what iperf3 -l 1M does)
 *   posix   posix engine on both sides, one thread drives all connections
 *   uring   io_uring engine, no arena: SEND / RECV
 *   fixed   io_uring with a registered arena: the receiver uses READ_FIXED;
 *           socket sends stay SEND (see uring.c)
 *   zc      as fixed, and the sender uses SEND_ZC from the arena (if the
 *           kernel has it)
 * Each measurement sends SIZE bytes split over 1 or 2 connections, with up
 * to QD writes queued per connection, and ends when the receiver has seen
 * EOF on every connection and acknowledged the byte count (CPU time of
 * each side is reported per 10^9 bytes). Each round measures every mode
 * back to back (the first one rotates); medians over the rounds are
 * reported, and "vs baseline" is the median of the per-round ratios.
 *
 * usage: bench_engine [-s MIB] [-r RUNS] [-q QD] [-m MODES]
 *   MODES: comma-separated subset of base,posix,uring,fixed,zc (default all)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmstream.h"
#include "io/engine.h"

#define MIB (1024u * 1024u)
#define MAX_CONN 2
#define MAX_RUNS 64

enum mode { M_BASE, M_POSIX, M_URING, M_FIXED, M_ZC, M_COUNT };
static const char *const mode_name[M_COUNT] = { "baseline send/recv", "posix engine",
						 "io_uring", "io_uring fixed", "io_uring SEND_ZC" };
static const char *const mode_key[M_COUNT] = { "base", "posix", "uring", "fixed", "zc" };

static size_t total_bytes = (size_t)2048 * MIB;
static unsigned qd = 8;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void die(const char *what)
{
	fprintf(stderr, "bench_engine: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void die_vms(const char *what, int rc)
{
	fprintf(stderr, "bench_engine: %s: %s (%s)\n", what, vms_strerror(rc), vms_last_error());
	exit(1);
}

static void *alloc_touched(size_t len)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	for (size_t i = 0; i + 8 <= len; i += 8) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		memcpy(p + i, &(uint64_t){ x * 0x2545f4914f6cdd1dull }, 8);
	}
	return p;
}

static int zc_supported(void)
{
	struct io_uring_probe *p;
	int ok;

	if (!vms_engine_uring_available())
		return 0;
	p = io_uring_get_probe();
	if (!p)
		return 0;
	ok = io_uring_opcode_supported(p, IORING_OP_SEND_ZC);
	io_uring_free_probe(p);
	return ok;
}

static int engine_kind(enum mode m)
{
	return m == M_POSIX ? VMS_ENGINE_POSIX : VMS_ENGINE_URING;
}

static int uses_arena(enum mode m)
{
	return m == M_FIXED || m == M_ZC;
}

/* ---- receiver (child process) -------------------------------------------- */

struct brecv {
	pthread_t th;
	int fd;
	uint8_t *buf;
	uint64_t got;
};

static void *base_recv_main(void *arg)
{
	struct brecv *r = arg;

	for (;;) {
		ssize_t n = recv(r->fd, r->buf, MIB, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		r->got += (uint64_t)n;
	}
	return NULL;
}

static uint64_t receive(enum mode m, const int *fd, int nconn)
{
	size_t arena_len = (size_t)nconn * MIB;
	uint8_t *arena = alloc_touched(arena_len);
	uint64_t got = 0;

	if (m == M_BASE) {
		struct brecv r[MAX_CONN];

		for (int c = 0; c < nconn; c++) {
			r[c] = (struct brecv){ .fd = fd[c], .buf = arena + (size_t)c * MIB };
			if (pthread_create(&r[c].th, NULL, base_recv_main, &r[c]) != 0)
				die("pthread_create");
		}
		for (int c = 0; c < nconn; c++) {
			pthread_join(r[c].th, NULL);
			got += r[c].got;
		}
	} else {
		struct vms_engine *e;
		int rc = vms_engine_new(&e, engine_kind(m), 2 * MAX_CONN,
					uses_arena(m) ? arena : NULL, uses_arena(m) ? arena_len : 0);
		int left = nconn;

		if (rc)
			die_vms("receiver engine", rc);
		for (int c = 0; c < nconn; c++)
			if ((rc = vms_engine_recv(e, fd[c], arena + (size_t)c * MIB, MIB,
						  (void *)(intptr_t)c)))
				die_vms("recv", rc);
		while (left) {
			struct vms_io_done d[MAX_CONN];
			int n = vms_engine_wait(e, d, MAX_CONN, -1);

			if (n < 0)
				die_vms("receiver wait", n);
			for (int k = 0; k < n; k++) {
				int c = (int)(intptr_t)d[k].user;

				if (d[k].res <= 0) {
					if (d[k].res < 0)
						fprintf(stderr, "bench_engine: recv: %s\n",
							strerror((int)-d[k].res));
					left--;
					continue;
				}
				got += (uint64_t)d[k].res;
				if ((rc = vms_engine_recv(e, fd[c], arena + (size_t)c * MIB, MIB,
							  d[k].user)))
					die_vms("recv", rc);
			}
		}
		vms_engine_free(e);
	}
	munmap(arena, arena_len);
	return got;
}

/* ---- sender ------------------------------------------------------------------ */

struct bsend {
	pthread_t th;
	int fd;
	const uint8_t *buf;
	size_t bytes;
	int err;
};

static void *base_send_main(void *arg)
{
	struct bsend *s = arg;
	size_t left = s->bytes;

	while (left) {
		size_t k = left < MIB ? left : MIB, off = 0;

		while (off < k) {
			ssize_t n = send(s->fd, s->buf + off, k - off, MSG_NOSIGNAL);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				s->err = errno;
				return NULL;
			}
			off += (size_t)n;
		}
		left -= k;
	}
	return NULL;
}

static void send_engine(enum mode m, const int *fd, int nconn, uint8_t *arena, size_t arena_len,
			size_t per_conn)
{
	unsigned depth = qd * (unsigned)nconn;
	size_t left[MAX_CONN];
	unsigned inq[MAX_CONN] = { 0 }, seq[MAX_CONN] = { 0 };
	struct vms_engine *e;
	int rc = vms_engine_new(&e, engine_kind(m), depth, uses_arena(m) ? arena : NULL,
				uses_arena(m) ? arena_len : 0);
	int busy = 1;

	if (rc)
		die_vms("sender engine", rc);
	if (m == M_ZC && (rc = vms_engine_set_send_zc(e, 1)))
		die_vms("SEND_ZC", rc);
	for (int c = 0; c < nconn; c++)
		left[c] = per_conn;
	while (busy) {
		struct vms_io_done d[16];
		int n;

		/* keep qd writes queued per connection, each from its own slot
		 * (completions come in order per connection) */
		for (int c = 0; c < nconn; c++) {
			while (left[c] && inq[c] < qd) {
				size_t k = left[c] < MIB ? left[c] : MIB;
				unsigned slot = (unsigned)c * qd + seq[c]++ % qd;
				struct iovec iov = { arena + (size_t)slot * MIB, k };

				if ((rc = vms_engine_writev(e, fd[c], &iov, 1, (void *)(intptr_t)c)))
					die_vms("writev", rc);
				left[c] -= k;
				inq[c]++;
			}
		}
		n = vms_engine_wait(e, d, 16, -1);
		if (n < 0)
			die_vms("sender wait", n);
		for (int k = 0; k < n; k++) {
			if (d[k].res < 0) {
				fprintf(stderr, "bench_engine: write: %s\n", strerror((int)-d[k].res));
				exit(1);
			}
			inq[(intptr_t)d[k].user]--;
		}
		busy = 0;
		for (int c = 0; c < nconn; c++)
			busy |= left[c] || inq[c];
	}
	vms_engine_free(e);
}

/* ---- one measurement ------------------------------------------------------------ */

static void tcp_listen(int *l, struct sockaddr_in *a)
{
	socklen_t al = sizeof(*a);

	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*l < 0 || bind(*l, (struct sockaddr *)a, sizeof(*a)) != 0 || listen(*l, 8) != 0 ||
	    getsockname(*l, (struct sockaddr *)a, &al) != 0)
		die("listen");
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

struct result {
	double gbs;     /* 10^9 bytes per second */
	double snd_cpu; /* CPU seconds (user + system) per 10^9 bytes */
	double rcv_cpu;
};

/* What the receiver sends back after EOF on every connection. */
struct ack {
	uint64_t bytes;
	double cpu;
};

static struct result measure(enum mode m, int nconn, uint8_t *arena, size_t arena_len)
{
	size_t per_conn = total_bytes / (size_t)nconn;
	struct ack ack = { 0 };
	struct result res;
	struct sockaddr_in a;
	int l, fd[MAX_CONN], status;
	double t0, t1, c0;
	pid_t pid;

	tcp_listen(&l, &a);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		int rfd[MAX_CONN];
		double rc0;

		for (int c = 0; c < nconn; c++)
			if ((rfd[c] = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0)
				die("accept");
		close(l);
		rc0 = cpu_seconds();
		ack.bytes = receive(m, rfd, nconn);
		ack.cpu = cpu_seconds() - rc0;
		if (send(rfd[0], &ack, sizeof(ack), MSG_NOSIGNAL) != (ssize_t)sizeof(ack))
			die("ack");
		_exit(0);
	}
	close(l);
	for (int c = 0; c < nconn; c++) {
		fd[c] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd[c] < 0 || connect(fd[c], (struct sockaddr *)&a, sizeof(a)) != 0)
			die("connect");
	}
	c0 = cpu_seconds();
	t0 = now();
	if (m == M_BASE) {
		struct bsend sn[MAX_CONN];

		for (int c = 0; c < nconn; c++) {
			sn[c] = (struct bsend){ .fd = fd[c], .buf = arena + (size_t)c * MIB,
						.bytes = per_conn };
			if (pthread_create(&sn[c].th, NULL, base_send_main, &sn[c]) != 0)
				die("pthread_create");
		}
		for (int c = 0; c < nconn; c++) {
			pthread_join(sn[c].th, NULL);
			if (sn[c].err) {
				errno = sn[c].err;
				die("send");
			}
		}
	} else {
		send_engine(m, fd, nconn, arena, arena_len, per_conn);
	}
	for (int c = 0; c < nconn; c++)
		shutdown(fd[c], SHUT_WR);
	res.snd_cpu = cpu_seconds() - c0;
	if (recv(fd[0], &ack, sizeof(ack), MSG_WAITALL) != (ssize_t)sizeof(ack))
		die("ack");
	t1 = now();
	if (ack.bytes != per_conn * (size_t)nconn) {
		fprintf(stderr, "bench_engine: receiver got %llu bytes, sent %zu\n",
			(unsigned long long)ack.bytes, per_conn * (size_t)nconn);
		exit(1);
	}
	for (int c = 0; c < nconn; c++)
		close(fd[c]);
	waitpid(pid, &status, 0);
	res.gbs = (double)ack.bytes / (t1 - t0) / 1e9;
	res.snd_cpu /= (double)ack.bytes / 1e9;
	res.rcv_cpu = ack.cpu / ((double)ack.bytes / 1e9);
	return res;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	static struct result res[M_COUNT][MAX_CONN][MAX_RUNS];
	int runs = 5, have[M_COUNT], want[M_COUNT], opt;
	size_t arena_len;
	uint8_t *arena;

	for (int m = 0; m < M_COUNT; m++)
		want[m] = 1;
	while ((opt = getopt(argc, argv, "s:r:q:m:")) != -1) {
		switch (opt) {
		case 'm':
			for (int m = 0; m < M_COUNT; m++) {
				char list[256], key[16];

				snprintf(list, sizeof(list), ",%s,", optarg);
				snprintf(key, sizeof(key), ",%s,", mode_key[m]);
				want[m] = strstr(list, key) != NULL;
			}
			break;
		case 's':
			total_bytes = (size_t)strtoull(optarg, NULL, 10) * MIB;
			break;
		case 'r':
			runs = atoi(optarg);
			break;
		case 'q':
			qd = (unsigned)atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: bench_engine [-s MIB] [-r RUNS] [-q QD] "
				"[-m base,posix,uring,fixed,zc]\n");
			return 2;
		}
	}
	if (runs < 1 || runs > MAX_RUNS || qd < 1 || qd > 256 || total_bytes < 2 * MIB) {
		fprintf(stderr, "bench_engine: bad arguments\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	for (int m = 0; m < M_COUNT; m++)
		have[m] = want[m];
	if (!vms_engine_uring_available()) {
		printf("io_uring unavailable: %s\n", vms_engine_uring_reason());
		have[M_URING] = have[M_FIXED] = have[M_ZC] = 0;
	}
	if (have[M_ZC] && !zc_supported()) {
		printf("SEND_ZC not supported by this kernel\n");
		have[M_ZC] = 0;
	}
	arena_len = (size_t)qd * MAX_CONN * MIB;
	arena = alloc_touched(arena_len);

	printf("loopback TCP, %zu MiB per measurement, 1 MiB writes, %u queued per connection "
	       "(engines), %d alternating runs, medians\n", total_bytes / MIB, qd, runs);
	/* Modes alternate within each round, the first one rotating, so that
	 * every mode sees the same drift of this machine's load and a
	 * baseline measured next to it. */
	for (int r = 0; r < runs; r++) {
		for (int c = 1; c <= MAX_CONN; c++) {
			for (int k = 0; k < M_COUNT; k++) {
				int m = (k + r) % M_COUNT;
				struct result *x = &res[m][c - 1][r];

				if (!have[m])
					continue;
				*x = measure((enum mode)m, c, arena, arena_len);
				fprintf(stderr, "  run %d %-20s %d conn: %5.2f GB/s, CPU s/GB %.3f + %.3f\n",
					r + 1, mode_name[m], c, x->gbs, x->snd_cpu, x->rcv_cpu);
			}
		}
	}

	/* "vs baseline": median over the rounds of (mode / baseline of the
	 * same round), which cancels most of the load drift between rounds. */
	printf("\n| mode | conns | GB/s median (min-max) | vs baseline (same round) | "
	       "CPU s/GB sender | CPU s/GB receiver |\n");
	printf("| --- | --- | --- | --- | --- | --- |\n");
	for (int c = 0; c < MAX_CONN; c++) {
		for (int m = 0; m < M_COUNT; m++) {
			double g[MAX_RUNS], ratio[MAX_RUNS], sc[MAX_RUNS], rc[MAX_RUNS];
			double lo = 1e30, hi = 0;

			if (!want[m])
				continue;
			if (!have[m]) {
				printf("| %s | %d | n/a | | | |\n", mode_name[m], c + 1);
				continue;
			}
			for (int r = 0; r < runs; r++) {
				g[r] = res[m][c][r].gbs;
				ratio[r] = have[M_BASE] ? g[r] / res[M_BASE][c][r].gbs : 0;
				sc[r] = res[m][c][r].snd_cpu;
				rc[r] = res[m][c][r].rcv_cpu;
				lo = g[r] < lo ? g[r] : lo;
				hi = g[r] > hi ? g[r] : hi;
			}
			printf("| %s | %d | %.2f (%.2f-%.2f) | ", mode_name[m], c + 1, median(g, runs),
			       lo, hi);
			if (have[M_BASE])
				printf("%.2fx", median(ratio, runs));
			printf(" | %.3f | %.3f |\n", median(sc, runs), median(rc, runs));
		}
	}
	munmap(arena, arena_len);
	return 0;
}
