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
 * produces; regenerating is only needed when a vector is added or the format
 * changes (which needs a new major version: FORMAT.md section 6).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
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
	grp(h, 32, 4, "flags 0x%08x", le32(b + 32));
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

static void dump_payload(struct hexout *h, const struct vms_rec_hdr *r, size_t off, size_t len)
{
	const uint8_t *p = h->base + off;
	char txt[2100];

	if (len == 0)
		return;
	if (r->flags & VMS_RFLAG_ENCRYPTED) {
		grp(h, off, len, "payload: ciphertext and tag");
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
		grp(h, off, len, "data, %zu bytes", len);
		return;
	default:
		break;
	}
	quoted(txt, sizeof(txt), p, len < 256 ? len : 256);
	grp(h, off, len, "payload \"%s\"", txt);
}

static void dump_records(struct hexout *h, size_t pos, size_t n)
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
		grp(h, pos, 4, "type 0x%02x, flags 0x%02x, codec %u, reserved %u", r.type, r.flags,
		    r.codec, h->base[pos + 3]);
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
		dump_payload(h, &r, pos, r.wire_len);
		pos += r.wire_len;
	}
}

static int write_hex(const char *path, const struct tv_vector *v, const uint8_t *b, size_t n)
{
	struct hexout h = { fopen(path, "w"), b };
	size_t pos;

	if (!h.f)
		return -1;
	fprintf(h.f, "# %s.vms, %zu bytes: %s\n", v->name, n, v->what);
	fprintf(h.f, "# expected: %s\n", v->code ? vms_errname(v->code) : "valid");
	fprintf(h.f, "# offset  bytes (hex)%*s field\n", HEX_COL - 11, "");
	pos = dump_preamble(&h, n);
	if (pos == 16 && n > 16) {
		fprintf(h.f, "## rest of the stream (preamble_len out of range)\n");
		grp(&h, 16, n - 16, NULL);
	} else if (pos < n) {
		dump_records(&h, pos, n);
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

static int write_readme(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs("# vmstream format test vectors\n\n"
	      "Small streams that pin the wire format of FORMAT.md (version 1.0). Generated by\n"
	      "`gen_vectors.c` from the definitions in `vectors.h`; do not edit by hand.\n\n"
	      "Each vector `NAME` has:\n\n"
	      "* `NAME.vms` — the stream bytes;\n"
	      "* `NAME.hex` — an annotated hex listing, one line per field group (offset, bytes,\n"
	      "  field values; payloads 16 bytes a line);\n"
	      "* a line `NAME CODE` in `expected.txt`: the exact `enum vms_err` a reader must\n"
	      "  return, `0` if it must accept the stream.\n\n"
	      "All vectors use chunk_cap 4096 and stream_id \"vmstream vectors\"\n"
	      "(`76 6d 73 74 72 65 61 6d 20 76 65 63 74 6f 72 73`). Valid vectors are written by\n"
	      "libvmstream's writer with that fixed stream id and `creator = \"\"` (no CREATOR\n"
	      "entry), so they depend on nothing but the format. Two of them (`unknown_ignorable`,\n"
	      "`minor_version`) carry something the writer never emits and are the writer's\n"
	      "output plus the edit described; `zero_record` is what the writer emits with zero\n"
	      "elision on (the default). Invalid vectors are a valid stream with\n"
	      "one defect; every other checksum is recomputed so that a reader meets exactly that\n"
	      "defect first (FORMAT.md section 4 gives the order of the checks).\n\n"
	      "`tests/check_vectors.c` rebuilds every vector from the same inputs and compares it\n"
	      "byte for byte with the committed file, checks that each `.hex` listing holds the\n"
	      "same bytes, and reads each file: valid vectors must decode to exactly the records\n"
	      "listed below, invalid ones must fail with exactly their code after delivering\n"
	      "exactly the events listed.\n\n"
	      "## Checksum example values\n\n"
	      "FORMAT.md section 1 refers here for the second example (both checked by\n"
	      "check_vectors):\n\n"
	      "| input | XXH3-64 (seed 0) |\n"
	      "|---|---|\n"
	      "| `\"\"` (empty) | `0x2d06800538d394c2` |\n"
	      "| `\"vmstream\"` (8 bytes `76 6d 73 74 72 65 61 6d`) | `0x823964198109694d` |\n\n"
	      "## Reading the decode listings\n\n"
	      "`preamble` is what the reader reports from the preamble (`vms_reader_info`). Then\n"
	      "one line per event: `SEQ TYPE at=<stream offset of the record header>` and the\n"
	      "decoded fields. DATA shows its bytes in hex when there are at most 16, else the\n"
	      "XXH3-64 of them. Unknown ignorable records are verified and skipped, so their seq\n"
	      "is missing from the list. For invalid vectors the list is what a reader delivers\n"
	      "before it fails; `at byte` is the offset the error message names.\n\n"
	      "## Regenerating\n\n"
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
		fprintf(f, "### `%s`\n\n%s. Expected decode:\n\n", v->name, v->what);
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
		if (v->where)
			fprintf(f, " The message names `%s`.", v->where);
		fputs(" Events before the failure:\n\n", f);
		readme_events(f, v->events);
		fputc('\n', f);
	}
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
		fprintf(exp, "%s %d\n", v->name, v->code);
		printf("%-24s %6zu bytes  %s\n", v->name, n, v->code ? vms_errname(v->code) : "valid");
		free(b);
	}
	if (fclose(exp) != 0)
		return 1;
	snprintf(path, sizeof(path), "%s/README.md", argv[1]);
	if (write_readme(path) != 0) {
		perror(path);
		return 1;
	}
	return 0;
}
