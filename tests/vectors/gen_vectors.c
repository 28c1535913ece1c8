/* SPDX-License-Identifier: MIT */
/*
 * Writes the format test vectors of vectors.h into a directory: NAME.vms,
 * NAME.hex (annotated hex listing), expected.txt and README.md.
 *
 * Build and run from the project root (it needs the library's writer and
 * the internal header encoder):
 *
 *   gcc -std=gnu11 -Iinclude -Ilibvmstream -Itests \
 *       $(find libvmstream -name '*.c') tests/vectors/gen_vectors.c \
 *       -o /tmp/gen_vectors -lxxhash -lzstd -lcrypto -lssl -luring -lpthread -lm
 *   /tmp/gen_vectors tests/vectors
 *
 * check_vectors then proves the committed files are what the current writer
 * produces; regenerating is only needed when a vector is added, when a newer
 * libzstd compresses the zstd vectors differently (README "Compressed
 * vectors"), or when the format changes (FORMAT.md section 6).
 *
 * Encrypted records are annotated with what FORMAT.md section 5 derives for
 * them (HKDF info, key, nonce, plaintext), computed by refcrypto.h from the
 * specification alone, not by the library.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <zstd.h>
#include "vectors.h"

/* ---- annotated hex listing ----------------------------------------------- */

#define HEX_COL 48 /* 16 bytes x "xx " */

struct hexout {
	FILE *f;
	const uint8_t *base;
};

/* One field group: offset, up to 16 bytes per line, annotation on line 1. */
static void grp(struct hexout *h, size_t off, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

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

static uint16_t le16(const uint8_t *p)
{
	return tu_le16(p);
}

static uint32_t le32(const uint8_t *p)
{
	return tu_le32(p);
}

static uint64_t le64(const uint8_t *p)
{
	return vms_get_u64(p);
}

static const char *param_name(uint16_t t)
{
	switch (t) {
	case 0x0001: return "CODEC";
	case 0x0002: return "SALT";
	case 0x8001: return "SIZE_HINT";
	case 0x8002: return "CREATOR";
	default: return t & 0x8000 ? "unknown, ignorable" : "unknown, critical";
	}
}

/* Text, with anything outside printable ASCII escaped. */
static void quoted(char *out, size_t cap, const uint8_t *p, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 5 < cap; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
			out[o++] = (char)p[i];
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", p[i]);
	}
	out[o] = '\0';
}

static size_t dump_preamble(struct hexout *h, size_t n)
{
	const uint8_t *b = h->base;
	uint32_t plen;
	size_t pos;

	fprintf(h->f, "## preamble\n");
	if (n < 16) {
		grp(h, 0, n, "(stream shorter than 16 bytes)");
		return n;
	}
	grp(h, 0, 8, "magic%s", memcmp(b, VMS_MAGIC, 8) ? " (WRONG)" : "");
	grp(h, 8, 4, "version_major %u, version_minor %u", le16(b + 8), le16(b + 10));
	plen = le32(b + 12);
	grp(h, 12, 4, "preamble_len %u", plen);
	if (plen < VMS_PREAMBLE_MIN || plen > VMS_PREAMBLE_MAX || plen > n)
		return 16;
	grp(h, 16, 16, "stream_id");
	grp(h, 32, 4, "flags 0x%08x%s", le32(b + 32), le32(b + 32) & 1 ? " (ENCRYPTED)" : "");
	grp(h, 36, 4, "chunk_cap %u", le32(b + 36));
	grp(h, 40, 4, "cipher %u, key_source %u, lanes %u", b[40], b[41], le16(b + 42));
	grp(h, 44, 4, "reserved %u", le32(b + 44));
	pos = 48;
	while (pos + 4 <= plen - 8) {
		uint16_t t = le16(b + pos), len = le16(b + pos + 2);
		char txt[200];

		if (len > plen - 8 - pos - 4)
			break;
		switch (t) {
		case 0x0001:
			quoted(txt, sizeof(txt), b + pos + 5, len ? len - 1u : 0);
			grp(h, pos, 4u + len, "param 0x%04x %s, len %u: id %u \"%s\"", t, param_name(t),
			    len, len ? b[pos + 4] : 0, txt);
			break;
		case 0x0002:
			grp(h, pos, 4u + len, "param 0x%04x %s, len %u", t, param_name(t), len);
			break;
		case 0x8001:
			if (len == 8) {
				grp(h, pos, 4u + len, "param 0x%04x %s, len %u: %llu", t, param_name(t),
				    len, (unsigned long long)le64(b + pos + 4));
				break;
			}
			/* fall through */
		default:
			quoted(txt, sizeof(txt), b + pos + 4, len);
			grp(h, pos, 4u + len, "param 0x%04x %s, len %u: \"%s\"", t, param_name(t), len,
			    txt);
			break;
		}
		pos += 4u + len;
	}
	if (pos < plen - 8)
		grp(h, pos, plen - 8 - pos, "(unparsed parameter bytes)");
	grp(h, plen - 8, 8, "preamble_sum 0x%016llx", (unsigned long long)le64(b + plen - 8));
	return plen;
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

/* Key schedule of an encrypted stream (FORMAT.md section 5), if its salt
 * and tv_key give it; records are then annotated by dump_sealed. */
struct sealing {
	bool on;
	struct ref_stream rs;
	uint32_t seen[65536 / 32]; /* (lane 0) epochs whose key was shown */
};

static void dump_key_schedule(struct hexout *h, struct sealing *s, size_t n)
{
	uint8_t prk[32], k[32];

	s->on = ref_parse_preamble(&s->rs, h->base, n) == 0 && s->rs.cipher && s->rs.has_salt &&
		ref_hkdf_hmac(s->rs.salt, 32, tv_key, 32, (const uint8_t *)"", 0, k, 32, prk) == 0;
	if (!s->on)
		return;
	fprintf(h->f, "# key schedule (FORMAT.md section 5) with the key file vectors.key = IKM:\n");
	cbytes(h->f, "IKM =", tv_key, 32);
	cbytes(h->f, "PRK = HKDF-Extract(SHA-256, salt = SALT, IKM) =", prk, 32);
}

/* An encrypted payload: derived key (first record of each epoch), nonce,
 * plaintext, then the ciphertext and the tag. Returns false if it does not
 * open with tv_key (the caller then lists it as opaque bytes). */
static bool dump_sealed(struct hexout *h, struct sealing *s, const uint8_t *hb,
			const struct vms_rec_hdr *r, size_t off, size_t len)
{
	uint8_t key[32], nonce[12], info[REF_INFO_LEN];
	uint8_t *pt;
	size_t body;

	if (!s->on || len < 24)
		return false;
	pt = tu_xmalloc(len);
	if (ref_open_record(&s->rs, tv_key, hb, h->base + off, len, pt) != 0 ||
	    ref_key(&s->rs, tv_key, r->lane, r->epoch, key) != 0) {
		free(pt);
		return false;
	}
	body = len - 24;
	if (r->lane == 0 && !(s->seen[r->epoch / 32] & (1u << (r->epoch % 32)))) {
		s->seen[r->epoch / 32] |= 1u << (r->epoch % 32);
		ref_info(info, s->rs.stream_id, s->rs.preamble_sum, s->rs.cipher, r->lane, r->epoch);
		fprintf(h->f, "# first record of lane %u, epoch %u:\n", r->lane, r->epoch);
		cbytes(h->f, "info =", info, sizeof(info));
		cbytes(h->f, "key(lane, epoch) = HKDF-Expand(PRK, info, 32) =", key, 32);
	}
	ref_nonce(nonce, r->lane, r->epoch, r->seq);
	cbytes(h->f, "nonce = lane || epoch || seq =", nonce, 12);
	fprintf(h->f, "#   AAD = the 56 header bytes above\n");
	if (body)
		cbytes(h->f, r->codec ? "plaintext body (zstd frame) =" : "plaintext body =", pt, body);
	cbytes(h->f, "plaintext sum (u64, XXH3-64 of the decoded bytes) =", pt + body, 8);
	grp(h, off, body + 8, "ciphertext of body || sum, %zu bytes", body + 8);
	grp(h, off + body + 8, 16, "tag");
	free(pt);
	return true;
}

static void dump_payload(struct hexout *h, const struct vms_rec_hdr *r, size_t off, size_t len)
{
	const uint8_t *p = h->base + off;
	char txt[2100];

	if (len == 0)
		return;
	if (r->flags & VMS_RFLAG_ENCRYPTED) {
		grp(h, off, len, "payload: ciphertext and tag (does not open with vectors.key)");
		return;
	}
	switch (r->type) {
	case VMS_REC_DEVICE_BEGIN:
		if (len >= 18 && le16(p + 16) == len - 18) {
			quoted(txt, sizeof(txt), p + 18, len - 18);
			grp(h, off, 8, "kind %u, reserved %u", le32(p), le32(p + 4));
			if (le64(p + 8) == UINT64_MAX)
				grp(h, off + 8, 8, "size_hint unknown");
			else
				grp(h, off + 8, 8, "size_hint %llu", (unsigned long long)le64(p + 8));
			grp(h, off + 16, 2, "name_len %u", le16(p + 16));
			grp(h, off + 18, len - 18, "name \"%s\"", txt);
			return;
		}
		break;
	case VMS_REC_PHASE:
		if (len == 8) {
			grp(h, off, 8, "phase %u, round %u", le32(p), le32(p + 4));
			return;
		}
		break;
	case VMS_REC_DEVICE_END:
		if (len == 16) {
			grp(h, off, 8, "total %llu", (unsigned long long)le64(p));
			grp(h, off + 8, 8, "digest 0x%016llx", (unsigned long long)le64(p + 8));
			return;
		}
		break;
	case VMS_REC_EOS:
		if (len == 24) {
			grp(h, off, 8, "records %llu", (unsigned long long)le64(p));
			grp(h, off + 8, 8, "raw_bytes %llu", (unsigned long long)le64(p + 8));
			grp(h, off + 16, 8, "devices %u, reserved %u", le32(p + 16), le32(p + 20));
			return;
		}
		break;
	case VMS_REC_ABORT:
		if (len >= 6 && le16(p + 4) == len - 6) {
			quoted(txt, sizeof(txt), p + 6, len - 6);
			grp(h, off, 6, "code %d (%s), text_len %u", (int32_t)le32(p),
			    vms_errname((int32_t)le32(p)) ? vms_errname((int32_t)le32(p)) : "?",
			    le16(p + 4));
			if (len > 6)
				grp(h, off + 6, len - 6, "text \"%s\"", txt);
			return;
		}
		break;
	case VMS_REC_DATA:
		if (r->codec)
			grp(h, off, len, "codec %u body (zstd frame), %zu bytes, decodes to raw_len %u "
					 "bytes", r->codec, len, r->raw_len);
		else
			grp(h, off, len, "data, %zu bytes", len);
		return;
	default:
		break;
	}
	quoted(txt, sizeof(txt), p, len < 256 ? len : 256);
	grp(h, off, len, "payload \"%s\"", txt);
}

static void dump_records(struct hexout *h, struct sealing *s, size_t pos, size_t n)
{
	for (unsigned long long i = 0; pos < n; i++) {
		struct vms_rec_hdr r;
		const char *name;
		size_t avail;

		if (n - pos < VMS_HDR_LEN) {
			fprintf(h->f, "## %zu bytes that do not make a record header\n", n - pos);
			grp(h, pos, n - pos, "(truncated header)");
			return;
		}
		tu_hdr_parse(&r, h->base + pos);
		name = vms_rec_type_name(r.type);
		fprintf(h->f, "## record %llu at %zu (0x%zx): %s\n", i, pos, pos,
			name ? name : (r.type & VMS_REC_IGNORABLE ? "unknown, ignorable"
								  : "unknown, critical"));
		grp(h, pos, 4, "type 0x%02x, flags 0x%02x%s, codec %u, reserved %u", r.type, r.flags,
		    r.flags & VMS_RFLAG_ENCRYPTED ? " (ENCRYPTED)" : "", r.codec, h->base[pos + 3]);
		grp(h, pos + 4, 4, "device %u%s", r.device,
		    r.device == VMS_DEVICE_NONE ? " (none)" : "");
		grp(h, pos + 8, 8, "seq %llu", (unsigned long long)r.seq);
		grp(h, pos + 16, 8, "offset %llu", (unsigned long long)r.offset);
		grp(h, pos + 24, 8, "raw_len %u, wire_len %u", r.raw_len, r.wire_len);
		grp(h, pos + 32, 8, "lane %u, epoch %u, reserved %u", r.lane, r.epoch,
		    le32(h->base + pos + 36));
		grp(h, pos + 40, 8, "payload_sum 0x%016llx", (unsigned long long)r.payload_sum);
		grp(h, pos + 48, 8, "header_sum 0x%016llx%s",
		    (unsigned long long)le64(h->base + pos + 48),
		    le64(h->base + pos + 48) == tu_xxh3(h->base + pos, 48) ? "" : " (WRONG)");
		pos += VMS_HDR_LEN;
		avail = n - pos;
		if (r.wire_len > avail) {
			if (avail)
				grp(h, pos, avail, "payload cut after %zu of %u bytes", avail, r.wire_len);
			return;
		}
		if (!(r.flags & VMS_RFLAG_ENCRYPTED) ||
		    !dump_sealed(h, s, h->base + pos - VMS_HDR_LEN, &r, pos, r.wire_len))
			dump_payload(h, &r, pos, r.wire_len);
		pos += r.wire_len;
	}
}

static int write_hex(const char *path, const struct tv_vector *v, const uint8_t *b, size_t n)
{
	struct hexout h = { fopen(path, "w"), b };
	static struct sealing s;
	size_t pos;

	if (!h.f)
		return -1;
	memset(&s, 0, sizeof(s));
	fprintf(h.f, "# %s.vms, %zu bytes: %s\n", v->name, n, v->what);
	fprintf(h.f, "# expected: %s%s\n", v->code ? vms_errname(v->code) : "valid",
		v->keyed ? " (read with the key in vectors.key)" : "");
	fprintf(h.f, "# Lines starting with '#' are annotations; the others hold the stream bytes.\n");
	fprintf(h.f, "# offset  bytes (hex)%*s field\n", HEX_COL - 11, "");
	pos = dump_preamble(&h, n);
	if (pos == 16 && n > 16) {
		fprintf(h.f, "## rest of the stream (preamble_len out of range)\n");
		grp(&h, 16, n - 16, NULL);
	} else if (pos < n) {
		dump_key_schedule(&h, &s, n);
		dump_records(&h, &s, pos, n);
	}
	return fclose(h.f);
}

/* ---- README ---------------------------------------------------------------- */

static void readme_events(FILE *f, const char *events)
{
	const char *p = events;

	if (!*p) {
		fprintf(f, "    (no event: the reader fails at the preamble)\n");
		return;
	}
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		fprintf(f, "    %.*s\n", (int)len, p);
		p += len + (nl ? 1 : 0);
	}
}

static void hex32(FILE *f, const uint8_t *p)
{
	for (int i = 0; i < 32; i++)
		fprintf(f, "%02x", p[i]);
}

static int write_readme(const char *path)
{
	FILE *f = fopen(path, "w");
	unsigned zv = ZSTD_versionNumber();

	if (!f)
		return -1;
	fputs("# vmstream format test vectors\n\n"
	      "Small streams that pin the wire format of FORMAT.md (version 1.0): plain,\n"
	      "compressed (zstd) and encrypted (AES-256-GCM, ChaCha20-Poly1305) streams a reader\n"
	      "must accept, and streams with one defect each that it must refuse with an exact\n"
	      "error. This directory is all an implementer needs besides FORMAT.md. Generated by\n"
	      "`gen_vectors.c` from the definitions in `vectors.h`; do not edit by hand.\n\n"
	      "## Files\n\n"
	      "* `NAME.vms` — the stream bytes;\n"
	      "* `NAME.hex` — an annotated hex listing, one line per field group (offset, bytes,\n"
	      "  field values; payloads 16 bytes a line). Lines starting with `#` are\n"
	      "  annotations; for encrypted records they give what FORMAT.md section 5 derives:\n"
	      "  the HKDF info and key of each (lane, epoch), the nonce and the decrypted\n"
	      "  plaintext `body || sum` (computed by `refcrypto.h`, an implementation of\n"
	      "  section 5 written from the specification alone);\n"
	      "* `expected.txt` — one line `NAME CODE` per vector: the exact `enum vms_err` a\n"
	      "  reader must return (its number: FORMAT.md section 10), `0` if it must accept\n"
	      "  the stream; a third word `key` means the stream is read with the key\n"
	      "  of `vectors.key`, otherwise the reader is given no key;\n"
	      "* `vectors.key` — that key as a key file (FORMAT.md section 5: 64 hex digits\n"
	      "  and a newline). The tools refuse key files readable by others: copy it and\n"
	      "  `chmod 600` the copy before `vmstream-inspect --verify --key-file`.\n\n"
	      "## Inputs\n\n"
	      "All vectors use chunk_cap 4096 and stream_id \"vmstream vectors\"\n"
	      "(`76 6d 73 74 72 65 61 6d 20 76 65 63 74 6f 72 73`). Valid vectors are written by\n"
	      "libvmstream's writer (threads 0) with that fixed stream id and `creator = \"\"` (no\n"
	      "CREATOR entry), so they depend on nothing but the format (and, for the zstd\n"
	      "ones, the compressor: below). Four (`unknown_ignorable`, `minor_version`,\n"
	      "`zstd_unused_bit`, `zstd_checksum`) carry something the writer never emits and\n"
	      "are the writer's output plus the edit described; `zero_record` is what the\n"
	      "writer emits with zero elision on (the default). Invalid vectors are a valid\n"
	      "stream with one defect (a few, named `X_before_Y` or `X_and_Y`, have two, to pin\n"
	      "which rule comes first); every other checksum is recomputed (and an encrypted\n"
	      "record resealed) so that a reader meets exactly that defect first (FORMAT.md\n"
	      "section 4 gives the order of the checks).\n\n"
	      "The encrypted vectors (key_source 1, key file) use:\n\n",
	      f);
	fputs("* key (IKM, the key file's 32 bytes): `", f);
	hex32(f, tv_key);
	fputs("`\n* SALT (the preamble's SALT entry): `", f);
	hex32(f, tv_salt);
	fputs("` (\"@ABC...XYZ[\\]^_\")\n\n"
	      "The input of `zstd1_text` and `zstd1_aes_gcm` is device \"text\" holding these\n"
	      "9 lines (461 bytes, each ending in a newline):\n\n"
	      "    vmstream stage vectors: zstd level 1 on text\n"
	      "    line 1: the quick brown fox jumps over the lazy dog\n"
	      "    ...  (lines 2 to 7 alike)\n"
	      "    line 8: the quick brown fox jumps over the lazy dog\n\n"
	      "## Checks\n\n"
	      "`tests/check_vectors.c` rebuilds every vector from the same inputs and compares it\n"
	      "byte for byte with the committed file, checks that each `.hex` listing holds the\n"
	      "same bytes and that `expected.txt` and `vectors.key` say what `vectors.h` says,\n"
	      "and reads each file with libvmstream's reader (threads 0 and 2): valid vectors\n"
	      "must decode to exactly the records listed below, invalid ones must fail with\n"
	      "exactly their code, the location listed, after delivering exactly the events\n"
	      "listed. Every valid vector is also decoded a second way, without the library's\n"
	      "reader: `refcrypto.h` opens each encrypted record, libzstd's one-shot decoder\n"
	      "expands each compressed one, and every sum, digest and total is recomputed. An\n"
	      "encrypted vector read without the key must fail with `VMS_EKEY`, with another\n"
	      "key with `VMS_EAUTH`.\n\n"
	      "## Checksum example values\n\n"
	      "FORMAT.md section 1 refers here for the second example (both checked by\n"
	      "check_vectors):\n\n"
	      "| input | XXH3-64 (seed 0) |\n"
	      "|---|---|\n"
	      "| `\"\"` (empty) | `0x2d06800538d394c2` |\n"
	      "| `\"vmstream\"` (8 bytes `76 6d 73 74 72 65 61 6d`) | `0x823964198109694d` |\n\n"
	      "## Reading the decode listings\n\n"
	      "`preamble` is what the reader reports from the preamble (`vms_reader_info`;\n"
	      "`key_source` only for encrypted streams, `codecs` (`id:name`) only when some are\n"
	      "declared). Then one line per event: `SEQ TYPE at=<stream offset of the record\n"
	      "header>`, `epoch=<key epoch>` for encrypted records, and the decoded fields. DATA\n"
	      "shows its bytes in hex when there are at most 16, else the XXH3-64 of them; in a\n"
	      "compressed or encrypted stream also its `codec` and `wire_len` as on the wire (an\n"
	      "encrypted record's wire_len is its body plus 24). Unknown ignorable records are\n"
	      "verified and skipped, so their seq is missing from the list. For invalid vectors\n"
	      "the list is what a reader delivers before it fails (nothing of the failing\n"
	      "record); `at` is the location its error names: `preamble at byte 0`, or\n"
	      "`record N at byte P` (FORMAT.md section 4).\n\n",
	      f);
	fprintf(f,
		"## Compressed vectors and the libzstd version\n\n"
		"zstd does not promise the same compressed bytes across versions. These files were\n"
		"made with libzstd %u.%u.%u. With another libzstd every decode still holds\n"
		"(decoding is version independent), but the rebuild of the vectors made from the\n"
		"writer's zstd output may fail with a message naming the libzstd version:",
		zv / 10000, zv / 100 % 100, zv % 100);
	for (size_t i = 0, k = 0; i < TV_COUNT; i++)
		if (tv_vectors[i].uses_zstd)
			fprintf(f, "%s`%s`", k++ ? ", " : " ", tv_vectors[i].name);
	fputs(". Then look at the difference (`cmp -l`, or the two `.hex` files): if only\n"
	      "the zstd frame and what depends on it (wire lengths, later offsets, sums,\n"
	      "ciphertext) changed, regenerate and commit the new files; anything else is a\n"
	      "format change (FORMAT.md section 6). The other vectors must never change.\n\n",
	      f);
	fputs("## Regenerating\n\n"
	      "    gcc -std=gnu11 -Iinclude -Ilibvmstream -Itests \\\n"
	      "        $(find libvmstream -name '*.c') tests/vectors/gen_vectors.c \\\n"
	      "        -o /tmp/gen_vectors -lxxhash -lzstd -lcrypto -lssl -luring -lpthread -lm\n"
	      "    /tmp/gen_vectors tests/vectors\n\n"
	      "A change in any valid vector's bytes is a format change: FORMAT.md section 6.\n\n"
	      "## Valid vectors\n\n",
	      f);
	for (size_t i = 0; i < TV_COUNT; i++) {
		const struct tv_vector *v = &tv_vectors[i];

		if (v->code)
			continue;
		fprintf(f, "### `%s`\n\n%s. Expected decode%s:\n\n", v->name, v->what,
			v->keyed ? " with the key" : "");
		readme_events(f, v->events);
		fputc('\n', f);
	}
	fputs("## Streams a reader must refuse\n\n", f);
	for (size_t i = 0; i < TV_COUNT; i++) {
		const struct tv_vector *v = &tv_vectors[i];

		if (!v->code)
			continue;
		fprintf(f, "### `%s` — `%s` (%d)\n\n%s.", v->name, vms_errname(v->code), v->code,
			v->what);
		if (v->keyed)
			fputs(" Read with the key.", f);
		if (v->where)
			fprintf(f, " The error message starts with `%s`.", v->where);
		fputs(" Events before the failure:\n\n", f);
		readme_events(f, v->events);
		fputc('\n', f);
	}
	return fclose(f);
}

static int write_key_file(const char *dir)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/vectors.key", dir);
	f = fopen(path, "w");
	if (!f)
		return -1;
	hex32(f, tv_key);
	fputc('\n', f);
	return fclose(f);
}

int main(int argc, char **argv)
{
	char path[4096];
	FILE *exp;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 2;
	}
	snprintf(path, sizeof(path), "%s/expected.txt", argv[1]);
	exp = fopen(path, "w");
	if (!exp) {
		perror(path);
		return 1;
	}
	for (size_t i = 0; i < TV_COUNT; i++) {
		const struct tv_vector *v = &tv_vectors[i];
		size_t n;
		uint8_t *b = v->build(&n);
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s.vms", argv[1], v->name);
		f = fopen(path, "wb");
		if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0) {
			perror(path);
			return 1;
		}
		snprintf(path, sizeof(path), "%s/%s.hex", argv[1], v->name);
		if (write_hex(path, v, b, n) != 0) {
			perror(path);
			return 1;
		}
		fprintf(exp, "%s %d%s\n", v->name, v->code, v->keyed ? " key" : "");
		printf("%-24s %6zu bytes  %s\n", v->name, n, v->code ? vms_errname(v->code) : "valid");
		free(b);
	}
	if (fclose(exp) != 0)
		return 1;
	if (write_key_file(argv[1]) != 0) {
		perror("vectors.key");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/README.md", argv[1]);
	if (write_readme(path) != 0) {
		perror(path);
		return 1;
	}
	return 0;
}
