/* SPDX-License-Identifier: MIT */
/*
 * bench_format: cost of the stream format itself, single thread, in memory.
 *
 * Encodes SIZE bytes of device data as 1 MiB DATA records (XXH3 payload
 * checksums, device digest) through the public writer API into a memfd that
 * was allocated beforehand, then decodes and verifies it with the public
 * reader. The same run measures memcpy between two 256 MiB buffers, so the
 * result is also given as a fraction of this machine's memory bandwidth.
 * Repetitions alternate (memcpy, encode, decode) and medians are reported.
 *
 * usage: bench_format [-s MIB] [-r REPS] [-c CHUNK_KIB]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include "vmstream.h"
#include "format/format.h"
#include "base/hash.h"

#define MIB (1024u * 1024u)

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

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void *alloc_touched(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 1, len);
	return p;
}

/* Incompressible, never all-zero: xorshift64* words. */
static void fill_random(uint8_t *p, size_t len)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		uint64_t v = x * 0x2545f4914f6cdd1dull;

		memcpy(p + i, &v, 8);
	}
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_format: %s: %s: %s\n", what, vms_errname(err) ? vms_errname(err) : "?",
		vms_last_error());
	exit(1);
}

static double encode(int fd, const uint8_t *src, size_t size, uint32_t chunk, uint64_t *wire)
{
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc desc = VMS_DEVICE_DESC_INIT;
	struct vms_stats st = { .size = sizeof(st) };
	struct vms_writer *w;
	uint32_t dev;
	double t0;
	int err;

	/* Pages exist before timing starts (slack beyond the stream too). */
	if (fallocate(fd, 0, 0, (off_t)(size + size / chunk * 128 + MIB)) != 0 ||
	    lseek(fd, 0, SEEK_SET) != 0) {
		perror("bench_format: preparing the memfd");
		exit(1);
	}
	wo.chunk_size = chunk;
	wo.size_hint = size;
	desc.name = "bench";
	desc.size_hint = size;
	t0 = now();
	err = vms_writer_open_fd(&w, fd, &wo);
	if (err)
		die("vms_writer_open_fd", err);
	err = vms_writer_begin_device(w, &desc, &dev);
	for (size_t off = 0; !err && off < size; off += chunk)
		err = vms_writer_write(w, dev, src + off, size - off < chunk ? size - off : chunk);
	if (!err)
		err = vms_writer_end_device(w, dev);
	if (!err)
		err = vms_writer_finish(w);
	if (err)
		die("encode", err);
	t0 = now() - t0;
	vms_writer_stats(w, &st);
	*wire = st.wire_bytes;
	vms_writer_free(w);
	/* The reader rejects bytes after EOS: cut the slack off. */
	if (ftruncate(fd, (off_t)st.wire_bytes) != 0) {
		perror("bench_format: ftruncate");
		exit(1);
	}
	return t0;
}

/* check != NULL: also compare the decoded bytes with it (not timed). */
static double decode(int fd, size_t size, const uint8_t *check)
{
	struct vms_reader *r;
	struct vms_event ev = VMS_EVENT_INIT;
	uint64_t got = 0;
	double t0;
	int rc;

	if (lseek(fd, 0, SEEK_SET) != 0) {
		perror("bench_format: lseek");
		exit(1);
	}
	t0 = now();
	rc = vms_reader_open_fd(&r, fd, NULL);
	if (rc)
		die("vms_reader_open_fd", rc);
	while ((rc = vms_reader_next(r, &ev)) > 0) {
		if (ev.type != VMS_REC_DATA)
			continue;
		if (check && memcmp(ev.u.data.data, check + ev.offset, ev.u.data.len) != 0) {
			fprintf(stderr, "bench_format: decoded bytes differ at %llu\n",
				(unsigned long long)ev.offset);
			exit(1);
		}
		got += ev.u.data.len;
	}
	if (rc < 0)
		die("decode", rc);
	t0 = now() - t0;
	vms_reader_free(r);
	if (got != size) {
		fprintf(stderr, "bench_format: decoded %llu bytes, expected %zu\n",
			(unsigned long long)got, size);
		exit(1);
	}
	return t0;
}

/* The format layer alone, in memory: what the writer does per record
 * besides I/O (payload XXH3 into the header, device digest, header encode
 * with its checksum) and what the reader does (header decode and checks,
 * payload XXH3 verify, device digest). Payloads are never copied by the
 * format: the writer hands header + payload to writev/io_uring as two
 * pieces, the reader verifies the payload where it was received. Both
 * hashes are one pass over the payload (hash/hash.h: vms_hash2_update and
 * vms_xxh3_and_digest, what the writer and the reader use). */
static double format_encode(const uint8_t *src, size_t size, uint32_t chunk, uint8_t *hdrs)
{
	struct vms_digest *dg = aligned_alloc(64, sizeof(*dg));
	double t0 = now();
	uint64_t seq = 0;

	vms_digest_init(dg);
	for (size_t off = 0; off < size; off += chunk, seq++) {
		struct vms_rec_hdr h = { .type = VMS_REC_DATA, .device = 0 };
		uint32_t len = (uint32_t)(size - off < chunk ? size - off : chunk);
		XXH3_state_t rec;

		h.seq = seq;
		h.offset = off;
		h.raw_len = len;
		h.wire_len = len;
		XXH3_64bits_reset(&rec);
		vms_hash2_update(dg, &rec, src + off, len);
		h.payload_sum = XXH3_64bits_digest(&rec);
		vms_hdr_encode(&h, hdrs + seq * VMS_HDR_LEN);
	}
	(void)vms_digest_final(dg);
	free(dg);
	return now() - t0;
}

static double format_decode(const uint8_t *src, size_t size, uint32_t chunk, const uint8_t *hdrs,
			    const struct vms_preamble *pre)
{
	struct vms_digest *dg = aligned_alloc(64, sizeof(*dg));
	double t0 = now();
	uint64_t seq = 0;

	vms_digest_init(dg);
	for (size_t off = 0; off < size; off += chunk, seq++) {
		struct vms_rec_hdr h;
		const char *why;
		uint32_t body;

		if (vms_hdr_decode(&h, hdrs + seq * VMS_HDR_LEN, &why) ||
		    vms_hdr_check(&h, pre, &body, &why) || h.seq != seq || h.offset != off ||
		    vms_xxh3_and_digest(dg, src + off, h.raw_len) != h.payload_sum) {
			fprintf(stderr, "bench_format: format decode failed at record %llu\n",
				(unsigned long long)seq);
			exit(1);
		}
	}
	(void)vms_digest_final(dg);
	free(dg);
	return now() - t0;
}

static unsigned long arg_num(const char *s, unsigned long lo, unsigned long hi, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "bench_format: bad %s '%s' (%lu..%lu)\n", what, s, lo, hi);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	size_t size = 256u * MIB, copy = 256u * MIB;
	uint32_t chunk = VMS_CHUNK_DEFAULT;
	int reps = 7, opt;
	uint8_t *src, *dst;
	double *t_cpy, *t_enc, *t_dec, m_cpy, m_enc, m_dec;
	double *f_enc, *f_dec, mf_enc, mf_dec;
	struct vms_preamble pre = { 0 };
	uint8_t *hdrs;
	uint64_t wire = 0;
	int fd;

	while ((opt = getopt(argc, argv, "s:r:c:h")) != -1) {
		switch (opt) {
		case 's':
			size = arg_num(optarg, 1, 16384, "size (MiB)") * MIB;
			break;
		case 'r':
			reps = (int)arg_num(optarg, 1, 101, "repetitions");
			break;
		case 'c':
			chunk = (uint32_t)arg_num(optarg, VMS_CHUNK_MIN / 1024, VMS_CHUNK_MAX / 1024,
						  "chunk (KiB)") * 1024;
			break;
		default:
			fprintf(stderr, "usage: bench_format [-s MIB] [-r REPS] [-c CHUNK_KIB]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (size > copy)
		copy = size;

	src = alloc_touched(copy);
	dst = alloc_touched(copy);
	t_cpy = calloc((size_t)reps, sizeof(double));
	t_enc = calloc((size_t)reps, sizeof(double));
	t_dec = calloc((size_t)reps, sizeof(double));
	f_enc = calloc((size_t)reps, sizeof(double));
	f_dec = calloc((size_t)reps, sizeof(double));
	hdrs = calloc(size / chunk + 1, VMS_HDR_LEN);
	pre.chunk_cap = chunk;
	pre.lanes = 1;
	if (!f_enc || !f_dec || !hdrs) {
		fprintf(stderr, "bench_format: out of memory\n");
		return 1;
	}
	if (!src || !dst || !t_cpy || !t_enc || !t_dec) {
		fprintf(stderr, "bench_format: out of memory\n");
		return 1;
	}
	fill_random(src, copy);

	/* The stream lives in a memfd whose pages are allocated before each
	 * timed encode: only the format (and the kernel's copy into the memfd)
	 * is measured, not page allocation or storage. */
	fd = memfd_create("bench_format", MFD_CLOEXEC);
	if (fd < 0) {
		perror("bench_format: memfd_create");
		return 1;
	}

	/* Warm-up and correctness check, not timed. */
	encode(fd, src, size, chunk, &wire);
	decode(fd, size, src);

	for (int i = 0; i < reps; i++) {
		double t0 = now();

		memcpy(dst, src, copy);
		t_cpy[i] = (now() - t0) * (double)size / (double)copy;
		__asm__ volatile("" : : "r"(dst) : "memory");
		t_enc[i] = encode(fd, src, size, chunk, &wire);
		t_dec[i] = decode(fd, size, NULL);
		f_enc[i] = format_encode(src, size, chunk, hdrs);
		f_dec[i] = format_decode(src, size, chunk, hdrs, &pre);
	}
	mf_enc = median(f_enc, reps);
	mf_dec = median(f_dec, reps);
	m_cpy = median(t_cpy, reps);
	m_enc = median(t_enc, reps);
	m_dec = median(t_dec, reps);

#define GBS(t) ((double)size / (t) / 1e9)
	printf("bench_format: %zu MiB of device data in %u KiB records, %d alternating runs, "
	       "medians; stream %llu bytes (%.3f%% overhead)\n",
	       size / MIB, chunk / 1024, reps, (unsigned long long)wire,
	       100.0 * (double)(wire - size) / (double)size);
	printf("%-34s %10s %12s\n", "", "GB/s", "x memcpy");
	printf("%-34s %10.2f %12.3f\n", "memcpy (256 MiB buffers)", GBS(m_cpy), 1.0);
	printf("%-34s %10.2f %12.3f\n", "encode (writer -> memfd)", GBS(m_enc), m_cpy / m_enc);
	printf("%-34s %10.2f %12.3f\n", "decode+verify (memfd -> reader)", GBS(m_dec),
	       m_cpy / m_dec);
	printf("%-34s %10.2f %12.3f\n", "encode+decode", GBS(m_enc + m_dec),
	       m_cpy / (m_enc + m_dec));
	printf("%-34s %10.2f %12.3f\n", "format encode (in memory)", GBS(mf_enc), m_cpy / mf_enc);
	printf("%-34s %10.2f %12.3f\n", "format decode+verify (in memory)", GBS(mf_dec),
	       m_cpy / mf_dec);
	printf("%-34s %10.2f %12.3f   <- target >= 0.5\n", "format encode+decode (in memory)",
	       GBS(mf_enc + mf_dec), m_cpy / (mf_enc + mf_dec));
#undef GBS
	close(fd);
	free(f_enc);
	free(f_dec);
	free(hdrs);
	free(t_cpy);
	free(t_enc);
	free(t_dec);
	munmap(src, copy);
	munmap(dst, copy);
	return 0;
}
