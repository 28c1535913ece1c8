/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: arbitrary bytes as a stream, read through an fd (memfd)
 * exactly as vmstream-recv reads a file.
 *
 * Each input is read up to four times:
 *   1. as is, full verification;
 *   2. as is, VMS_READER_F_HEADERS_ONLY (framing only, max_chunk 64 KiB);
 *   3. and 4. the same after "fixing" every checksum it can find (preamble_sum,
 *      payload_sum of unencrypted records, header_sum), so that mutations
 *      reach the semantic checks behind the XXH3 gates instead of dying at
 *      the first checksum. Skipped when fixing changed nothing.
 *
 * Besides the sanitizers, the harness checks what the API promises and aborts
 * if the reader breaks it:
 *   - every event consumes at least one 56-byte header (no endless events);
 *   - vms_reader_next() returns 1 with an event, 0 at the clean end, or one
 *     negative code, and then returns the same value again (sticky);
 *   - DATA delivers raw_len bytes (NULL in headers-only mode), in order,
 *     contiguous per device (offset == bytes seen so far);
 *   - every DEVICE_END total/digest and the EOS totals equal what the
 *     harness itself received (full verification only);
 *   - a clean end means the whole input was consumed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "vmstream.h"

#define HARNESS_DEVICES 64
#define HDR 56

static int memfd = -1;

#define CHECK(cond)                                                                   \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "fuzz_reader: invariant broken: %s (%s:%d)\n",  \
				#cond, __FILE__, __LINE__);                           \
			abort();                                                      \
		}                                                                     \
	} while (0)

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t xxh3(const void *p, size_t n)
{
	return (uint64_t)XXH3_64bits(p, n);
}

static void load(const uint8_t *data, size_t size)
{
	size_t done = 0;

	if (memfd < 0) {
		memfd = memfd_create("fuzz_reader", MFD_CLOEXEC);
		if (memfd < 0) {
			perror("memfd_create");
			abort();
		}
	}
	if (ftruncate(memfd, 0) != 0)
		abort();
	while (done < size) {
		ssize_t w = pwrite(memfd, data + done, size - done, (off_t)done);

		if (w <= 0)
			abort();
		done += (size_t)w;
	}
	if (lseek(memfd, 0, SEEK_SET) != 0)
		abort();
}

struct hdev {
	uint64_t bytes;
	XXH3_state_t *st;
};

static void run(const uint8_t *data, size_t size, uint32_t flags)
{
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;
	struct hdev devs[HARNESS_DEVICES];
	bool headers_only = (flags & VMS_READER_F_HEADERS_ONLY) != 0;
	struct vms_reader *r = NULL;
	struct vms_event ev = VMS_EVENT_INIT;
	uint64_t raw_total = 0, last_pos = 0, nev = 0;
	uint32_t ndev = 0;
	int rc;

	memset(devs, 0, sizeof(devs));
	o.flags = flags;
	if (headers_only)
		o.max_chunk = 64u << 10;
	load(data, size);
	rc = vms_reader_open_fd(&r, memfd, &o);
	if (rc != 0) {
		CHECK(rc < 0 && r == NULL);
		CHECK(vms_errname(rc) != NULL);
		return;
	}
	for (;;) {
		rc = vms_reader_next(r, &ev);
		if (rc != 1)
			break;
		nev++;
		/* Each event is a distinct record, past the previous one. */
		CHECK(ev.stream_pos + HDR <= size);
		CHECK(nev == 1 || ev.stream_pos > last_pos);
		CHECK(nev <= size / HDR);
		last_pos = ev.stream_pos;
		switch (ev.type) {
		case VMS_REC_DEVICE_BEGIN:
			if (!headers_only)
				CHECK(ev.u.begin.name && strlen(ev.u.begin.name) >= 1 &&
				      strlen(ev.u.begin.name) <= VMS_NAME_MAX);
			CHECK(ev.device == ndev);
			if (ndev < HARNESS_DEVICES) {
				devs[ndev].st = XXH3_createState();
				CHECK(devs[ndev].st);
				XXH3_64bits_reset(devs[ndev].st);
			}
			ndev++;
			break;
		case VMS_REC_DATA:
		case VMS_REC_ZERO:
			CHECK(ev.device < ndev);
			CHECK(ev.raw_len >= 1);
			if (ev.device < HARNESS_DEVICES) {
				struct hdev *d = &devs[ev.device];

				CHECK(ev.offset == d->bytes);
				d->bytes += ev.raw_len;
				if (!headers_only && ev.type == VMS_REC_DATA) {
					CHECK(ev.u.data.data != NULL && ev.u.data.len == ev.raw_len);
					XXH3_64bits_update(d->st, ev.u.data.data, ev.u.data.len);
				} else if (!headers_only) {
					static const uint8_t zeros[4096];

					CHECK(ev.u.data.data == NULL && ev.u.data.len == ev.raw_len);
					for (uint32_t left = ev.raw_len; left;) {
						uint32_t k = left < sizeof(zeros) ? left : sizeof(zeros);

						XXH3_64bits_update(d->st, zeros, k);
						left -= k;
					}
				} else {
					CHECK(ev.u.data.data == NULL);
				}
			}
			raw_total += ev.raw_len;
			break;
		case VMS_REC_DEVICE_END:
			CHECK(ev.device < ndev);
			if (!headers_only && ev.device < HARNESS_DEVICES) {
				CHECK(ev.u.end.total == devs[ev.device].bytes);
				CHECK(ev.u.end.digest == (uint64_t)XXH3_64bits_digest(devs[ev.device].st));
			}
			break;
		case VMS_REC_EOS:
			if (!headers_only) {
				CHECK(ev.u.eos.raw_bytes == raw_total);
				CHECK(ev.u.eos.devices == ndev);
				CHECK(ev.u.eos.records == ev.seq);
			}
			break;
		case VMS_REC_ABORT:
			if (!headers_only)
				CHECK(ev.u.abort.text != NULL);
			break;
		case VMS_REC_PHASE:
			break;
		default:
			abort(); /* unknown types are skipped, never delivered */
		}
	}
	CHECK(rc <= 0);
	if (rc < 0) {
		CHECK(vms_errname(rc) != NULL);
		CHECK(strlen(vms_last_error()) > 0);
	} else {
		struct vms_stats st = { .size = sizeof(st) };

		CHECK(vms_reader_stats(r, &st) == 0);
		CHECK(st.wire_bytes == size);
	}
	CHECK(vms_reader_next(r, &ev) == rc);
	vms_reader_free(r);
	for (uint32_t i = 0; i < ndev && i < HARNESS_DEVICES; i++)
		XXH3_freeState(devs[i].st);
}

/* Recompute every checksum the framing lets us find. Returns true if any
 * byte changed. */
static bool fix_sums(uint8_t *b, size_t n)
{
	bool changed = false;
	uint32_t plen;
	size_t pos;

	if (n < 16)
		return false;
	plen = le32(b + 12);
	if (plen < 56 || plen > 4096 || plen > n)
		return false;
	{
		uint8_t old[8];

		memcpy(old, b + plen - 8, 8);
		put64(b + plen - 8, xxh3(b, plen - 8));
		changed |= memcmp(old, b + plen - 8, 8) != 0;
	}
	pos = plen;
	while (n - pos >= HDR) {
		uint8_t *h = b + pos, old[16];
		uint32_t raw = le32(h + 24), wire = le32(h + 28);
		size_t avail = n - pos - HDR;

		memcpy(old, h + 40, 16);
		/* Unencrypted DATA and control records: sum of the raw bytes. */
		if (!(h[1] & 1) && h[0] != 3 && h[2] == 0 && raw <= wire && wire <= avail)
			put64(h + 40, xxh3(h + HDR, raw));
		put64(h + 48, xxh3(h, 48));
		changed |= memcmp(old, h + 40, 16) != 0;
		if (wire > avail)
			break;
		pos += HDR + wire;
	}
	return changed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	run(data, size, 0);
	run(data, size, VMS_READER_F_HEADERS_ONLY);
	if (size < 16)
		return 0;
	copy = malloc(size);
	if (!copy)
		abort();
	memcpy(copy, data, size);
	if (fix_sums(copy, size)) {
		run(copy, size, 0);
		run(copy, size, VMS_READER_F_HEADERS_ONLY);
	}
	free(copy);
	return 0;
}
