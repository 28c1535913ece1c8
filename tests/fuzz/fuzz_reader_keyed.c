/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the reader with a fixed key (opts.key = FUZZ_KEY) over
 * encrypted and compressed streams, with 0 and 2 worker threads.
 *
 * Input: one mode byte, then the stream.
 *   bit 0  "plaintext form": every record flagged ENCRYPTED carries its
 *          plaintext (body || u64 sum) followed by 16 bytes of room for the tag;
 *          the harness seals it with the key FORMAT.md section 5 derives from
 *          FUZZ_KEY and the (possibly mutated) preamble. Mutations of the
 *          plaintext then reach what lies behind authentication: zstd frames,
 *          inner sums, control payloads, device rules.
 *   bit 1  fix checksums first: preamble_sum, every header_sum, the payload_sum
 *          of unencrypted records and (plaintext form) the inner sum of
 *          uncompressed records, so mutations get past the XXH3 gates.
 * Other bits are ignored. The sealing uses tests/vectors/refcrypto.h,
 * an implementation of section 5 independent of the library's.
 *
 * Checks, besides the sanitizers:
 *   - what the API promises (as in fuzz_reader.c): one negative code or 0 at
 *     the end, sticky; events in order, DATA contiguous per device with
 *     raw_len bytes; DEVICE_END and EOS agree with what was delivered; an
 *     ABORT event is followed by VMS_EPEERABORT;
 *   - the outcome does not depend on the thread count: threads 0 and 2 give
 *     the same code, the same events and the same bytes.
 *
 * Build a seed corpus (streams written by the library with FUZZ_KEY):
 *   gcc -std=gnu11 -DGEN_CORPUS -Iinclude -Ilibvmstream -Itests \
 *       $(find libvmstream -name '*.c') tests/fuzz/fuzz_reader_keyed.c \
 *       -o /tmp/gen_keyed -lxxhash -lzstd -lcrypto -lssl -luring -lpthread -lm
 *   /tmp/gen_keyed tests/fuzz/corpus/fuzz_reader_keyed
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
#include "../vectors/refcrypto.h"

#define HDR 56
#define HARNESS_DEVICES 64
#define MODE_PLAINTEXT 0x01
#define MODE_FIX_SUMS 0x02

/* 00 01 02 ... 1f, as in the encrypted test vectors (tests/vectors) */
static const uint8_t FUZZ_KEY[32] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "fuzz_reader_keyed: invariant broken: %s (%s:%d)\n", \
				#cond, __FILE__, __LINE__);                                \
			abort();                                                           \
		}                                                                          \
	} while (0)

static uint64_t xxh3(const void *p, size_t n)
{
	return (uint64_t)XXH3_64bits(p, n);
}

/* ---- sealing and checksum fixing ----------------------------------------------- */

struct keycache {
	bool valid;
	uint16_t lane, epoch;
	uint8_t key[32];
};

static void fix_and_seal(uint8_t *b, size_t n, unsigned mode)
{
	struct ref_stream rs;
	struct keycache kc = { 0 };
	bool sealable;
	uint32_t plen;
	size_t pos;

	if (n < 16)
		return;
	plen = ref_get32(b + 12);
	if (plen < 56 || plen > 4096 || plen > n)
		return;
	if (mode & MODE_FIX_SUMS)
		ref_le64(b + plen - 8, xxh3(b, plen - 8));
	if (ref_parse_preamble(&rs, b, n) != 0)
		return;
	sealable = (mode & MODE_PLAINTEXT) && rs.has_salt && (rs.cipher == 1 || rs.cipher == 2);
	for (pos = plen; n - pos >= HDR;) {
		uint8_t *h = b + pos, *pl = h + HDR;
		uint32_t raw = ref_get32(h + 24), wire = ref_get32(h + 28);
		size_t avail = n - pos - HDR;
		bool enc = h[1] & 1;

		if (wire > avail)
			break;
		if (enc && sealable && wire >= REF_TAG_LEN) {
			uint16_t lane = ref_get16(h + 32), epoch = ref_get16(h + 34);
			uint8_t nonce[REF_NONCE_LEN];
			size_t ptlen = wire - REF_TAG_LEN;
			uint8_t *pt;

			if ((mode & MODE_FIX_SUMS) && wire >= 24) {
				size_t body = wire - 24;

				if (h[0] == 3)
					ref_le64(pl + body, 0);
				else if (h[2] == 0 && raw == body)
					ref_le64(pl + body, xxh3(pl, body));
			}
			if (mode & MODE_FIX_SUMS)
				ref_le64(h + 48, xxh3(h, 48));
			if (!kc.valid || kc.lane != lane || kc.epoch != epoch) {
				uint8_t info[REF_INFO_LEN];

				ref_info(info, rs.stream_id, rs.preamble_sum, rs.cipher, lane, epoch);
				if (ref_hkdf_hmac(rs.salt, REF_SALT_LEN, FUZZ_KEY, 32, info, sizeof(info),
						  kc.key, 32, NULL) != 0)
					abort();
				kc.valid = true;
				kc.lane = lane;
				kc.epoch = epoch;
			}
			ref_nonce(nonce, lane, epoch, ref_get64(h + 8));
			pt = malloc(ptlen ? ptlen : 1);
			if (!pt)
				abort();
			memcpy(pt, pl, ptlen);
			if (ref_seal(rs.cipher, kc.key, nonce, h, HDR, pt, ptlen, pl) != 0)
				abort();
			free(pt);
		} else if (mode & MODE_FIX_SUMS) {
			if (!enc && h[0] != 3 && h[2] == 0 && raw <= wire)
				ref_le64(h + 40, xxh3(pl, raw));
			ref_le64(h + 48, xxh3(h, 48));
		}
		pos += HDR + wire;
	}
}

/* ---- one read --------------------------------------------------------------------- */

static int memfd = -1;

static void load(const uint8_t *data, size_t size)
{
	size_t done = 0;

	if (memfd < 0) {
		memfd = memfd_create("fuzz_reader_keyed", MFD_CLOEXEC);
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

struct outcome {
	int rc;
	uint64_t nev;
	uint64_t digest; /* over every event's fields and bytes */
	uint64_t bytes;
};

struct hdev {
	uint64_t bytes;
	XXH3_state_t *st;
};

static void mix(XXH3_state_t *s, const void *p, size_t n)
{
	XXH3_64bits_update(s, p, n);
}

static void run(const uint8_t *data, size_t size, uint32_t threads, struct outcome *out)
{
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;
	struct hdev devs[HARNESS_DEVICES];
	struct vms_reader *r = NULL;
	struct vms_event ev = VMS_EVENT_INIT;
	XXH3_state_t *dig = XXH3_createState();
	uint64_t raw_total = 0, last_pos = 0;
	uint32_t ndev = 0;
	bool aborted = false;
	int rc;

	CHECK(dig);
	XXH3_64bits_reset(dig);
	memset(devs, 0, sizeof(devs));
	memset(out, 0, sizeof(*out));
	o.key = FUZZ_KEY;
	o.threads = threads;
	o.max_chunk = 1u << 20; /* keeps each slot small */
	load(data, size);
	rc = vms_reader_open_fd(&r, memfd, &o);
	if (rc != 0) {
		CHECK(rc < 0 && r == NULL);
		CHECK(vms_errname(rc) != NULL);
		out->rc = rc;
		XXH3_freeState(dig);
		return;
	}
	for (;;) {
		rc = vms_reader_next(r, &ev);
		if (rc != 1)
			break;
		CHECK(!aborted); /* nothing after an ABORT event */
		out->nev++;
		CHECK(ev.stream_pos + HDR <= size);
		CHECK(out->nev == 1 || ev.stream_pos > last_pos);
		CHECK(out->nev <= size / HDR);
		last_pos = ev.stream_pos;
		mix(dig, &ev.type, sizeof(ev.type));
		mix(dig, &ev.device, sizeof(ev.device));
		mix(dig, &ev.seq, sizeof(ev.seq));
		mix(dig, &ev.offset, sizeof(ev.offset));
		mix(dig, &ev.raw_len, sizeof(ev.raw_len));
		mix(dig, &ev.wire_len, sizeof(ev.wire_len));
		mix(dig, &ev.codec, sizeof(ev.codec));
		mix(dig, &ev.epoch, sizeof(ev.epoch));
		mix(dig, &ev.stream_pos, sizeof(ev.stream_pos));
		switch (ev.type) {
		case VMS_REC_DEVICE_BEGIN:
			CHECK(ev.u.begin.name && strlen(ev.u.begin.name) >= 1 &&
			      strlen(ev.u.begin.name) <= VMS_NAME_MAX);
			CHECK(ev.device == ndev);
			mix(dig, ev.u.begin.name, strlen(ev.u.begin.name));
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
			CHECK(ev.u.data.len == ev.raw_len);
			if (ev.type == VMS_REC_DATA) {
				CHECK(ev.u.data.data != NULL);
				mix(dig, ev.u.data.data, ev.u.data.len);
			} else {
				CHECK(ev.u.data.data == NULL);
			}
			if (ev.device < HARNESS_DEVICES) {
				struct hdev *d = &devs[ev.device];

				CHECK(ev.offset == d->bytes);
				d->bytes += ev.raw_len;
				if (ev.type == VMS_REC_DATA) {
					XXH3_64bits_update(d->st, ev.u.data.data, ev.u.data.len);
				} else {
					static const uint8_t zeros[4096];

					for (uint32_t left = ev.raw_len; left;) {
						uint32_t k = left < sizeof(zeros) ? left : sizeof(zeros);

						XXH3_64bits_update(d->st, zeros, k);
						left -= k;
					}
				}
			}
			raw_total += ev.raw_len;
			out->bytes += ev.raw_len;
			break;
		case VMS_REC_DEVICE_END:
			CHECK(ev.device < ndev);
			if (ev.device < HARNESS_DEVICES) {
				CHECK(ev.u.end.total == devs[ev.device].bytes);
				CHECK(ev.u.end.digest == (uint64_t)XXH3_64bits_digest(devs[ev.device].st));
			}
			break;
		case VMS_REC_EOS:
			CHECK(ev.u.eos.raw_bytes == raw_total);
			CHECK(ev.u.eos.devices == ndev);
			CHECK(ev.u.eos.records == ev.seq);
			break;
		case VMS_REC_ABORT:
			CHECK(ev.u.abort.text != NULL);
			mix(dig, &ev.u.abort.code, sizeof(ev.u.abort.code));
			mix(dig, ev.u.abort.text, strlen(ev.u.abort.text));
			aborted = true;
			break;
		case VMS_REC_PHASE:
			mix(dig, &ev.u.phase, sizeof(ev.u.phase));
			break;
		default:
			abort(); /* unknown types are skipped, never delivered */
		}
	}
	CHECK(rc <= 0);
	if (aborted)
		CHECK(rc == VMS_EPEERABORT);
	if (rc < 0) {
		CHECK(vms_errname(rc) != NULL);
		CHECK(strlen(vms_last_error()) > 0);
	} else {
		struct vms_stats st = { .size = sizeof(st) };

		CHECK(vms_reader_stats(r, &st) == 0);
		CHECK(st.wire_bytes == size);
		CHECK(st.raw_bytes == raw_total);
	}
	CHECK(vms_reader_next(r, &ev) == rc);
	vms_reader_free(r);
	for (uint32_t i = 0; i < ndev && i < HARNESS_DEVICES; i++)
		XXH3_freeState(devs[i].st);
	out->rc = rc;
	out->digest = XXH3_64bits_digest(dig);
	XXH3_freeState(dig);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome o0, o2;
	unsigned mode;
	uint8_t *s;
	size_t n;

	if (size < 1)
		return 0;
	mode = data[0];
	n = size - 1;
	s = malloc(n ? n : 1);
	if (!s)
		abort();
	memcpy(s, data + 1, n);
	fix_and_seal(s, n, mode);
	run(s, n, 0, &o0);
	run(s, n, 2, &o2);
#ifdef KEYED_VERBOSE
	fprintf(stderr, "mode 0x%02x: rc %d (%s), %llu events, %llu bytes\n", mode, o0.rc,
		o0.rc ? vms_errname(o0.rc) : "ok", (unsigned long long)o0.nev,
		(unsigned long long)o0.bytes);
#endif
	if (o0.rc != o2.rc || o0.nev != o2.nev || o0.digest != o2.digest || o0.bytes != o2.bytes) {
		fprintf(stderr,
			"fuzz_reader_keyed: threads 0 and 2 disagree: rc %d/%d, events %llu/%llu, "
			"bytes %llu/%llu\n",
			o0.rc, o2.rc, (unsigned long long)o0.nev, (unsigned long long)o2.nev,
			(unsigned long long)o0.bytes, (unsigned long long)o2.bytes);
		abort();
	}
	free(s);
	return 0;
}

#ifdef GEN_CORPUS
/* ---- seed corpus ------------------------------------------------------------------------- */

#include "stream/internal.h"

struct seed {
	const char *name;
	uint32_t cipher;
	const char *compress;
	uint64_t epoch_limit;
	int content;
};

static int write_content(struct vms_writer *w, int content)
{
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	uint8_t buf[12288];
	int rc = 0;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i % 7 == 0 ? i * 31 : (size_t)"state of a device "[i % 18]);
	switch (content) {
	case 0: /* nothing: EOS only */
		break;
	case 1: /* one device, 5000 bytes */
		d.name = "d0";
		rc = vms_writer_begin_device(w, &d, NULL);
		rc = rc ? rc : vms_writer_write(w, 0, buf, 5000);
		rc = rc ? rc : vms_writer_end_device(w, 0);
		break;
	case 2: /* two devices, phases, a zero chunk, text */
		d.name = "cpu";
		rc = vms_writer_begin_device(w, &d, NULL);
		d.name = "vfio0";
		d.kind = VMS_DEVKIND_VFIO;
		rc = rc ? rc : vms_writer_begin_device(w, &d, NULL);
		rc = rc ? rc : vms_writer_phase(w, VMS_PHASE_PRECOPY, 1);
		rc = rc ? rc : vms_writer_write(w, 0, buf, 6000);
		memset(buf + 4096, 0, 4096);
		rc = rc ? rc : vms_writer_write(w, 1, buf, sizeof(buf));
		rc = rc ? rc : vms_writer_phase(w, VMS_PHASE_STOPCOPY, 0);
		rc = rc ? rc : vms_writer_end_device(w, 1);
		rc = rc ? rc : vms_writer_end_device(w, 0);
		break;
	case 3: /* small records for epoch rotation */
		d.name = "small";
		rc = vms_writer_begin_device(w, &d, NULL);
		for (int i = 0; i < 6 && !rc; i++) {
			rc = vms_writer_write(w, 0, buf + i * 100, 100);
			rc = rc ? rc : vms_writer_phase(w, VMS_PHASE_PRECOPY, (uint32_t)i);
		}
		rc = rc ? rc : vms_writer_end_device(w, 0);
		break;
	case 4: /* abort */
		d.name = "d0";
		rc = vms_writer_begin_device(w, &d, NULL);
		rc = rc ? rc : vms_writer_write(w, 0, buf, 4096 + 10);
		return rc ? rc : vms_writer_abort(w, VMS_EDEVIO, "device went away");
	}
	return rc ? rc : vms_writer_finish(w);
}

/* Plaintext form: replace each sealed payload by its plaintext || 16 zero
 * bytes (what the harness seals again with mode bit 0). */
static int unseal(uint8_t *b, size_t n)
{
	struct ref_stream rs;
	size_t pos;

	if (ref_parse_preamble(&rs, b, n) != 0)
		return -1;
	for (pos = rs.preamble_len; n - pos >= HDR;) {
		uint8_t *h = b + pos;
		uint32_t wire = ref_get32(h + 28);
		uint8_t *pt = malloc(wire);

		if (!pt || ref_open_record(&rs, FUZZ_KEY, h, h + HDR, wire, pt) != 0)
			return -1;
		memcpy(h + HDR, pt, wire - REF_TAG_LEN);
		memset(h + HDR + wire - REF_TAG_LEN, 0, REF_TAG_LEN);
		free(pt);
		pos += HDR + wire;
	}
	return 0;
}

static int save(const char *dir, const char *name, uint8_t mode, const uint8_t *b, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fputc(mode, f) == EOF || fwrite(b, 1, n, f) != n || fclose(f) != 0) {
		perror(path);
		return -1;
	}
	printf("%-28s %6zu bytes, mode 0x%02x\n", name, n + 1, mode);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct seed seeds[] = {
		{ "aes_plain", VMS_CIPHER_AES_256_GCM, NULL, 0, 1 },
		{ "chacha_zstd_2dev", VMS_CIPHER_CHACHA20_POLY1305, "zstd:1", 0, 2 },
		{ "aes_zstd_2dev", VMS_CIPHER_AES_256_GCM, "zstd:3", 0, 2 },
		{ "aes_epochs", VMS_CIPHER_AES_256_GCM, NULL, 64, 3 },
		{ "chacha_abort", VMS_CIPHER_CHACHA20_POLY1305, "zstd:1", 0, 4 },
		{ "aes_empty", VMS_CIPHER_AES_256_GCM, NULL, 0, 0 },
		{ "none_zstd", VMS_CIPHER_NONE, "zstd:1", 0, 2 },
	};
	static const uint8_t sid[16] = "fuzz keyed seeds";
	static const uint8_t salt[32] = "fuzz_reader_keyed seed salt 0001";

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		const struct seed *s = &seeds[i];
		struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
		struct vms_writer *w;
		char name[64];
		int fd = memfd_create("seed", MFD_CLOEXEC);
		off_t len;
		uint8_t *b;

		o.chunk_size = 4096;
		o.stream_id = sid;
		o.creator = "";
		o.compress = s->compress;
		o.cipher = s->cipher;
		o.key = s->cipher ? FUZZ_KEY : NULL;
		o.salt = salt;
		if (fd < 0 || vms_writer_open_fd(&w, fd, &o) != 0) {
			fprintf(stderr, "%s: %s\n", s->name, vms_last_error());
			return 1;
		}
		if (s->epoch_limit)
			vms_writer_set_epoch_limit(w, s->epoch_limit);
		if (write_content(w, s->content) != 0) {
			fprintf(stderr, "%s: %s\n", s->name, vms_last_error());
			return 1;
		}
		vms_writer_free(w);
		len = lseek(fd, 0, SEEK_END);
		b = malloc((size_t)len);
		if (!b || pread(fd, b, (size_t)len, 0) != len)
			return 1;
		close(fd);
		snprintf(name, sizeof(name), "seed_%s", s->name);
		if (save(argv[1], name, MODE_FIX_SUMS, b, (size_t)len) != 0)
			return 1;
		if (s->cipher) {
			if (unseal(b, (size_t)len) != 0) {
				fprintf(stderr, "%s: reference decryption failed\n", s->name);
				return 1;
			}
			snprintf(name, sizeof(name), "seed_%s_pt", s->name);
			if (save(argv[1], name, MODE_FIX_SUMS | MODE_PLAINTEXT, b, (size_t)len) != 0)
				return 1;
		}
		free(b);
	}
	return 0;
}
#endif
