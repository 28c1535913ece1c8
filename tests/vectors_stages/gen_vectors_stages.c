/* SPDX-License-Identifier: MIT */
/*
 * Writes the stage vectors of vectors_stages.h into a directory: NAME.vms,
 * NAME.hex (annotated hex listing; encrypted records also show the derived
 * key, nonce and plaintext, computed by refcrypto.h from FORMAT.md alone) and
 * README.md. Refuses to write anything if a vector's decode differs from the
 * listing in vectors_stages.h, or if the reference decryption disagrees with
 * the library's output. Build and run from the project root:
 *
 *   gcc -std=gnu11 -Iinclude -Ilibvmstream -Itests \
 *       $(find libvmstream -name '*.c') tests/vectors_stages/gen_vectors_stages.c \
 *       -o /tmp/gen_vectors_stages -lxxhash -lzstd -lcrypto -lssl -luring -lpthread -lm
 *   /tmp/gen_vectors_stages tests/vectors_stages
 *
 * (`--print` prints each vector's actual decode listing and writes nothing.)
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <zstd.h>
#include "vectors_stages/refcrypto.h"
#include "vectors_stages/vectors_stages.h"

#define HEX_COL 48

struct hexout {
	FILE *f;
	const uint8_t *base;
};

static void grp(struct hexout *h, size_t off, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* One field group: offset, up to 16 bytes a line, annotation on line 1. */
static void grp(struct hexout *h, size_t off, size_t len, const char *fmt, ...)
{
	size_t done = 0;
	bool first = true;

	do {
		size_t k = len - done < 16 ? len - done : 16;
		int col = 0;

		fprintf(h->f, "%06zx  ", off + done);
		for (size_t i = 0; i < k; i++)
			col += fprintf(h->f, "%02x ", h->base[off + done + i]);
		if (first && fmt) {
			va_list ap;

			fprintf(h->f, "%*s", HEX_COL - col + 1, "");
			va_start(ap, fmt);
			vfprintf(h->f, fmt, ap);
			va_end(ap);
		}
		fputc('\n', h->f);
		first = false;
		done += k;
	} while (done < len);
}

/* A comment line with bytes: "#   label xx xx ..." (16 a line). */
static void cbytes(FILE *f, const char *label, const uint8_t *p, size_t n)
{
	fprintf(f, "#   %s", label);
	for (size_t i = 0; i < n; i++) {
		if (i && i % 16 == 0)
			fprintf(f, "\n#   %*s", (int)strlen(label), "");
		fprintf(f, " %02x", p[i]);
	}
	fputc('\n', f);
}

static size_t dump_preamble(struct hexout *h)
{
	const uint8_t *b = h->base;
	uint32_t plen = tu_le32(b + 12);
	size_t pos = 48;

	fprintf(h->f, "## preamble\n");
	grp(h, 0, 8, "magic");
	grp(h, 8, 4, "version_major %u, version_minor %u", tu_le16(b + 8), tu_le16(b + 10));
	grp(h, 12, 4, "preamble_len %u", plen);
	grp(h, 16, 16, "stream_id \"%.16s\"", (const char *)b + 16);
	grp(h, 32, 4, "flags 0x%08x%s", tu_le32(b + 32), tu_le32(b + 32) & 1 ? " (ENCRYPTED)" : "");
	grp(h, 36, 4, "chunk_cap %u", tu_le32(b + 36));
	grp(h, 40, 4, "cipher %u, key_source %u, lanes %u", b[40], b[41], tu_le16(b + 42));
	grp(h, 44, 4, "reserved %u", tu_le32(b + 44));
	while (pos + 4 <= plen - 8) {
		uint16_t t = tu_le16(b + pos), len = tu_le16(b + pos + 2);

		if (t == 0x0001)
			grp(h, pos, 4u + len, "param 0x0001 CODEC, len %u: id %u \"%.*s\"", len, b[pos + 4],
			    (int)len - 1, (const char *)b + pos + 5);
		else if (t == 0x0002)
			grp(h, pos, 4u + len, "param 0x0002 SALT, len %u", len);
		else
			grp(h, pos, 4u + len, "param 0x%04x, len %u", t, len);
		pos += 4u + len;
	}
	grp(h, plen - 8, 8, "preamble_sum 0x%016llx", (unsigned long long)vms_get_u64(b + plen - 8));
	return plen;
}

static int dump_records(struct hexout *h, size_t pos, size_t n, const struct ref_stream *rs)
{
	int seen_epoch[65536 / 32] = { 0 };

	for (unsigned long long i = 0; pos < n; i++) {
		struct vms_rec_hdr r;
		const char *name;
		const uint8_t *hb = h->base + pos;

		tu_hdr_parse(&r, hb);
		name = vms_rec_type_name(r.type);
		fprintf(h->f, "## record %llu at %zu (0x%zx): %s\n", i, pos, pos, name ? name : "?");
		grp(h, pos, 4, "type 0x%02x, flags 0x%02x%s, codec %u, reserved %u", r.type, r.flags,
		    r.flags & 1 ? " (ENCRYPTED)" : "", r.codec, hb[3]);
		grp(h, pos + 4, 4, "device %u%s", r.device, r.device == VMS_DEVICE_NONE ? " (none)" : "");
		grp(h, pos + 8, 8, "seq %llu", (unsigned long long)r.seq);
		grp(h, pos + 16, 8, "offset %llu", (unsigned long long)r.offset);
		grp(h, pos + 24, 8, "raw_len %u, wire_len %u", r.raw_len, r.wire_len);
		grp(h, pos + 32, 8, "lane %u, epoch %u, reserved %u", r.lane, r.epoch, tu_le32(hb + 36));
		grp(h, pos + 40, 8, "payload_sum 0x%016llx", (unsigned long long)r.payload_sum);
		grp(h, pos + 48, 8, "header_sum 0x%016llx", (unsigned long long)vms_get_u64(hb + 48));
		pos += VMS_HDR_LEN;
		if (r.wire_len > n - pos)
			return -1;
		if (r.flags & 1) {
			uint8_t key[32], nonce[12], info[REF_INFO_LEN];
			uint8_t *pt = tu_xmalloc(r.wire_len);
			size_t body = r.wire_len - 24;

			if (!(seen_epoch[r.epoch / 32] & (1 << (r.epoch % 32)))) {
				seen_epoch[r.epoch / 32] |= 1 << (r.epoch % 32);
				ref_info(info, rs->stream_id, rs->preamble_sum, rs->cipher, r.lane, r.epoch);
				if (ref_key(rs, vs_key, r.lane, r.epoch, key) != 0)
					return -1;
				fprintf(h->f, "# first record of lane %u, epoch %u:\n", r.lane, r.epoch);
				cbytes(h->f, "info =", info, sizeof(info));
				cbytes(h->f, "key(lane, epoch) = HKDF-Expand(PRK, info, 32) =", key, 32);
			}
			ref_nonce(nonce, r.lane, r.epoch, r.seq);
			cbytes(h->f, "nonce = lane || epoch || seq =", nonce, 12);
			fprintf(h->f, "#   AAD = the 56 header bytes above\n");
			if (ref_open_record(rs, vs_key, hb, h->base + pos, r.wire_len, pt) != 0) {
				fprintf(stderr, "reference decryption of record %llu failed\n", i);
				free(pt);
				return -1;
			}
			if (body)
				cbytes(h->f, r.codec ? "plaintext body (zstd frame) =" : "plaintext body =",
				       pt, body);
			cbytes(h->f, "plaintext sum (u64, XXH3-64 of the decoded bytes) =", pt + body, 8);
			grp(h, pos, body + 8, "ciphertext of body || sum, %zu bytes", body + 8);
			grp(h, pos + body + 8, 16, "tag");
			free(pt);
		} else if (r.wire_len) {
			if (r.type == VMS_REC_DATA && r.codec)
				grp(h, pos, r.wire_len, "zstd frame, %u bytes, decodes to raw_len %u bytes",
				    r.wire_len, r.raw_len);
			else
				grp(h, pos, r.wire_len, "payload, %u bytes", r.wire_len);
		}
		pos += r.wire_len;
	}
	return 0;
}

static int write_hex(const char *path, const struct vs_vector *v, const uint8_t *b, size_t n)
{
	struct hexout h = { fopen(path, "w"), b };
	struct ref_stream rs;
	size_t pos;
	int rc;

	if (!h.f)
		return -1;
	if (ref_parse_preamble(&rs, b, n) != 0)
		return -1;
	fprintf(h.f, "# %s.vms, %zu bytes: %s\n", v->name, n, v->what);
	fprintf(h.f, "# Lines starting with '#' are annotations; the others hold the stream bytes.\n");
	fprintf(h.f, "# offset  bytes (hex)%*s field\n", HEX_COL - 11, "");
	pos = dump_preamble(&h);
	if (rs.cipher) {
		uint8_t prk[32], k[32];

		if (ref_hkdf_hmac(rs.salt, 32, vs_key, 32, (const uint8_t *)"", 0, k, 32, prk) != 0)
			return -1;
		fprintf(h.f, "# key schedule (FORMAT.md section 5), key file bytes = IKM:\n");
		cbytes(h.f, "IKM =", vs_key, 32);
		cbytes(h.f, "PRK = HKDF-Extract(SHA-256, salt = SALT, IKM) =", prk, 32);
	}
	rc = dump_records(&h, pos, n, &rs);
	if (fclose(h.f) != 0)
		return -1;
	return rc;
}

static void readme_block(FILE *f, const char *text)
{
	const char *p = text;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		fprintf(f, "    %.*s\n", (int)len, p);
		p += len + (nl ? 1 : 0);
	}
}

static int write_readme(const char *path)
{
	FILE *f = fopen(path, "w");
	unsigned zv = ZSTD_versionNumber();

	if (!f)
		return -1;
	fprintf(f,
		"# vmstream stage test vectors (compression and encryption)\n\n"
		"Streams that pin FORMAT.md section 3.2 (zstd payloads) and section 5 (AEAD and\n"
		"key schedule). Generated by `gen_vectors_stages.c` from the definitions in\n"
		"`vectors_stages.h`; do not edit by hand. `refcrypto.h` is an independent\n"
		"implementation of section 5 (HKDF through OpenSSL's EVP_PKEY method and again by\n"
		"hand with HMAC, nonce, AEAD) used for the annotations and by the tests.\n\n"
		"Each vector `NAME` has `NAME.vms` (the stream) and `NAME.hex` (annotated hex\n"
		"listing; lines starting with `#` are annotations: for encrypted records the\n"
		"HKDF info, the derived key of each (lane, epoch), the nonce and the decrypted\n"
		"plaintext `body || sum`).\n\n"
		"## Inputs\n\n"
		"All vectors are written by libvmstream's writer (threads 0) with:\n\n"
		"* chunk_cap 4096, `creator = \"\"` (no CREATOR entry), no size hint;\n"
		"* stream_id \"vmstream vectors\" (`76 6d 73 74 72 65 61 6d 20 76 65 63 74 6f 72 73`);\n"
		"* encrypted vectors: key file bytes (IKM) `00 01 02 ... 1f`, i.e. the key file\n"
		"  `000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f`, key_source 1,\n"
		"  and SALT `40 41 42 ... 5f` (32 bytes, \"@ABC...XYZ[\\]^_\").\n\n"
		"The text input of `zstd1_text` and `zstd1_aes_gcm` is these 9 lines (461 bytes,\n"
		"each ending in a newline):\n\n"
		"    vmstream stage vectors: zstd level 1 on text\n"
		"    line 1: the quick brown fox jumps over the lazy dog\n"
		"    ...  (lines 2 to 7 alike)\n"
		"    line 8: the quick brown fox jumps over the lazy dog\n\n"
		"## Checks\n\n"
		"`tests/check_crypto.c` (tcase `vectors_stages`):\n\n"
		"* rebuilds every vector with the library's writer and compares it byte for byte\n"
		"  with `NAME.vms` (the *encoder* check);\n"
		"* decodes every `NAME.vms` with the key (reader threads 0 and 2) and compares with\n"
		"  the listing below (the *decoder* check), and decrypts and decompresses every\n"
		"  record again with `refcrypto.h` and libzstd's one-shot decoder;\n"
		"* checks that every `NAME.hex` holds exactly the bytes of `NAME.vms`.\n\n"
		"zstd does not promise the same compressed bytes across versions. These files were\n"
		"made with libzstd %u.%u.%u. With another libzstd the decoder check still holds\n"
		"(decoding is version independent), but the encoder check of `zstd1_text` and\n"
		"`zstd1_aes_gcm` may fail with a message naming both versions. Then look at the\n"
		"difference (`cmp -l`, or the two `.hex` files): if only the zstd frame and what\n"
		"depends on it (wire lengths, later offsets, sums, ciphertext) changed, regenerate\n"
		"with the commands below and commit the new files; anything else is a format\n"
		"change (FORMAT.md section 6). The uncompressed vectors must never change.\n\n"
		"## Regenerating\n\n"
		"    gcc -std=gnu11 -Iinclude -Ilibvmstream -Itests \\\n"
		"        $(find libvmstream -name '*.c') tests/vectors_stages/gen_vectors_stages.c \\\n"
		"        -o /tmp/gen_vectors_stages -lxxhash -lzstd -lcrypto -lssl -luring -lpthread -lm\n"
		"    /tmp/gen_vectors_stages tests/vectors_stages\n\n"
		"The generator refuses to write if a decode differs from the listing in\n"
		"`vectors_stages.h` or if the reference decryption disagrees with the library.\n\n"
		"## Reading the decode listings\n\n"
		"`preamble` is what the reader reports (`vms_reader_info`) plus the declared\n"
		"codecs (`id:name`). Then one line per event: `SEQ TYPE at=<stream offset of the\n"
		"record header> epoch=<key epoch>` and the decoded fields. DATA shows its bytes in\n"
		"hex when there are at most 16, else their XXH3-64; `codec` and `wire_len` are the\n"
		"record's on the wire (an encrypted record's wire_len is its body plus 24).\n\n"
		"## Vectors\n\n",
		zv / 10000, zv / 100 % 100, zv % 100);
	for (size_t i = 0; i < VS_COUNT; i++) {
		const struct vs_vector *v = &vs_vectors[i];

		fprintf(f, "### `%s`\n\n%s. Written with `compress = %s`, `cipher = %s`%s. "
			   "Expected decode%s:\n\n",
			v->name, v->what, v->compress ? v->compress : "NULL",
			vms_cipher_name(v->cipher), v->epoch_limit ? ", epoch limit 32" : "",
			v->cipher ? " with the key" : "");
		readme_block(f, v->events);
		fputc('\n', f);
	}
	return fclose(f);
}

int main(int argc, char **argv)
{
	bool print = argc == 3 && strcmp(argv[1], "--print") == 0;
	const char *dir = print ? argv[2] : argv[1];
	char path[4096];
	int bad = 0;

	if (argc != 2 && !print) {
		fprintf(stderr, "usage: %s [--print] OUTDIR\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < VS_COUNT; i++) {
		const struct vs_vector *v = &vs_vectors[i];
		size_t n;
		uint8_t *b = vs_build(v, &n);
		char *dec;

		if (!b)
			return 1;
		dec = vs_decode(b, n, v->cipher ? vs_key : NULL, 0);
		if (print) {
			printf("== %s (%zu bytes)\n%s", v->name, n, dec);
		} else if (strcmp(dec, v->events) != 0) {
			fprintf(stderr, "%s: decode differs from vectors_stages.h:\n%s", v->name, dec);
			bad = 1;
		}
		free(dec);
		free(b);
	}
	if (print || bad)
		return bad;
	for (size_t i = 0; i < VS_COUNT; i++) {
		const struct vs_vector *v = &vs_vectors[i];
		size_t n;
		uint8_t *b = vs_build(v, &n);
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s.vms", dir, v->name);
		f = fopen(path, "wb");
		if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0) {
			perror(path);
			return 1;
		}
		snprintf(path, sizeof(path), "%s/%s.hex", dir, v->name);
		if (write_hex(path, v, b, n) != 0) {
			fprintf(stderr, "%s: cannot write the listing\n", path);
			return 1;
		}
		printf("%-20s %5zu bytes\n", v->name, n);
		free(b);
	}
	snprintf(path, sizeof(path), "%s/README.md", dir);
	if (write_readme(path) != 0) {
		perror(path);
		return 1;
	}
	return 0;
}
