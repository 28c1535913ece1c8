/* SPDX-License-Identifier: MIT */
/*
 * The committed format test vectors (tests/vectors, FORMAT.md section 8):
 *  - the writer reproduces every vector byte for byte from the inputs in
 *    vectors.h (fixed stream id, no CREATOR, fixed key and salt), invalid
 *    ones included;
 *  - each NAME.hex listing holds exactly the bytes of NAME.vms;
 *  - expected.txt lists exactly the vectors of vectors.h with their codes
 *    (and which are read with the key), vectors.key holds that key;
 *  - the reader (threads 0 and 2) decodes every valid vector to the listed
 *    records and fails every invalid one with exactly its code and location,
 *    after exactly the listed events; an encrypted valid vector fails without
 *    its key (VMS_EKEY) and with another key (VMS_EAUTH);
 *  - every valid vector decodes a second way, from FORMAT.md alone: the
 *    reference AEAD of refcrypto.h, libzstd's one-shot decoder, sums, digests
 *    and totals recomputed here.
 *
 * The vectors directory is $VMS_SOURCE_DIR/tests/vectors when the variable is
 * set (CTest sets it), else VMS_SOURCE_DIR/tests/vectors with the compile-time
 * VMS_SOURCE_DIR (default ".": run from the project root), else the vectors
 * directory next to this source file. A missing directory fails the suite.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "vectors/vectors.h"

/* The project root, when the build does not pass one: the tests are then
 * expected to run from it. $VMS_SOURCE_DIR (set by CTest) wins over both. */
#ifndef VMS_SOURCE_DIR
#define VMS_SOURCE_DIR "."
#endif

static char vdir[PATH_MAX];

static bool is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void find_vectors(void)
{
	const char *env = getenv("VMS_SOURCE_DIR");
	const char *file = __FILE__, *slash = strrchr(file, '/');

	if (env && *env) {
		snprintf(vdir, sizeof(vdir), "%s/tests/vectors", env);
		return; /* asked for: use it, and fail loudly if it is not there */
	}
	snprintf(vdir, sizeof(vdir), "%s/tests/vectors", VMS_SOURCE_DIR);
	if (is_dir(vdir))
		return;
	/* next to this source file (CMake compiles it by absolute path) */
	if (slash) {
		char near[PATH_MAX];

		snprintf(near, sizeof(near), "%.*s/vectors", (int)(slash - file), file);
		if (is_dir(near))
			snprintf(vdir, sizeof(vdir), "%s", near);
	}
}

/* Whole file, or NULL (errno set). */
static uint8_t *slurp(const char *name, size_t *n)
{
	char path[PATH_MAX + 64];
	struct tu_bytes b = { 0 };
	uint8_t buf[4096];
	size_t k;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", vdir, name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	while ((k = fread(buf, 1, sizeof(buf), f)) > 0)
		tu_bytes_add(&b, buf, k);
	fclose(f);
	tu_bytes_add(&b, "", 1); /* NUL for text files; not counted */
	*n = b.n - 1;
	return b.p;
}

static uint8_t *slurp_or_fail(const char *name, size_t *n)
{
	uint8_t *p = slurp(name, n);

	ck_assert_msg(p != NULL, "cannot read %s/%s: %s (set VMS_SOURCE_DIR)", vdir, name,
		      strerror(errno));
	return p;
}

START_TEST(vectors_dir_present)
{
	ck_assert_msg(is_dir(vdir), "no vectors directory at %s", vdir);
}
END_TEST

/* expected.txt: "name code" lines, exactly the table, same order. */
START_TEST(expected_txt_matches_table)
{
	size_t n, i = 0;
	char *txt = (char *)slurp_or_fail("expected.txt", &n);
	char *save = NULL;

	for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[64], key[16] = "";
		int code, k = sscanf(line, "%63s %d %15s", name, &code, key);

		ck_assert_msg(k == 2 || (k == 3 && strcmp(key, "key") == 0), "bad line \"%s\"", line);
		ck_assert_msg(i < TV_COUNT, "expected.txt lists more vectors than vectors.h");
		ck_assert_str_eq(name, tv_vectors[i].name);
		ck_assert_int_eq(code, tv_vectors[i].code);
		ck_assert_int_eq(k == 3, tv_vectors[i].keyed);
		i++;
	}
	ck_assert_uint_eq(i, TV_COUNT);
	free(txt);
}
END_TEST

/* Names unique; every category the spec asks for is present. */
START_TEST(table_sane)
{
	size_t valid = 0;

	for (size_t i = 0; i < TV_COUNT; i++) {
		const char *w = tv_vectors[i].where;

		valid += tv_vectors[i].code == 0;
		ck_assert_ptr_nonnull(vms_errname(tv_vectors[i].code));
		/* every refusal names its location */
		if (tv_vectors[i].code)
			ck_assert_msg(w && (strncmp(w, "preamble at byte 0", 18) == 0 ||
					    strncmp(w, "record ", 7) == 0),
				      "%s: no location", tv_vectors[i].name);
		for (size_t k = 0; k < i; k++)
			ck_assert_str_ne(tv_vectors[i].name, tv_vectors[k].name);
	}
	ck_assert_uint_ge(valid, 7);
	ck_assert_uint_ge(TV_COUNT - valid, 12);
}
END_TEST

/* vectors.key: the key of the encrypted vectors, as a key file. */
START_TEST(key_file_matches)
{
	char path[PATH_MAX + 16];
	uint8_t key[VMS_KEY_LEN];

	snprintf(path, sizeof(path), "%s/vectors.key", vdir);
	ck_assert_msg(vms_key_load_file(path, key, 1) == 0, "%s: %s", path, vms_last_error());
	ck_assert_mem_eq(key, tv_key, VMS_KEY_LEN);
}
END_TEST

/* Read a vector's bytes with the given key and reader threads. */
static void run_vector(const uint8_t *bin, size_t n, const uint8_t *key, uint32_t threads,
		       uint32_t flags, struct tu_run *r)
{
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;
	int fd = tu_memfd_new();

	o.key = key;
	o.threads = threads;
	o.flags = flags;
	tu_memfd_set(fd, bin, n);
	tu_run_fd(fd, &o, r);
	close(fd);
}

/* The writer (plus the documented edit) reproduces the committed bytes. */
START_TEST(rebuild_byte_for_byte)
{
	const struct tv_vector *v = &tv_vectors[_i];
	char name[96];
	size_t n, m;
	uint8_t *file, *built;

	snprintf(name, sizeof(name), "%s.vms", v->name);
	file = slurp_or_fail(name, &n);
	built = v->build(&m);
	if (m != n || memcmp(file, built, n) != 0) {
		size_t at = 0;

		unsigned zv = ZSTD_versionNumber();

		while (at < n && at < m && file[at] == built[at])
			at++;
		ck_abort_msg("%s: committed %zu bytes, writer now gives %zu; first difference at "
			     "byte %zu%s (libzstd %u.%u.%u; see tests/vectors/README.md)",
			     v->name, n, m, at,
			     v->uses_zstd ? ": a zstd vector, whose frame may differ across libzstd "
					    "versions"
					  : ": not a zstd vector, so a format change?",
			     zv / 10000, zv / 100 % 100, zv % 100);
	}
	free(file);
	free(built);
}
END_TEST

/* NAME.hex: offsets continuous, bytes equal to NAME.vms. */
START_TEST(hex_listing_matches)
{
	const struct tv_vector *v = &tv_vectors[_i];
	char name[96];
	size_t n, hn;
	uint8_t *bin;
	char *hex, *save = NULL;
	struct tu_bytes got = { 0 };

	snprintf(name, sizeof(name), "%s.vms", v->name);
	bin = slurp_or_fail(name, &n);
	snprintf(name, sizeof(name), "%s.hex", v->name);
	hex = (char *)slurp_or_fail(name, &hn);
	for (char *line = strtok_r(hex, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long off;
		char *p;

		if (line[0] == '#')
			continue;
		off = strtoul(line, &p, 16);
		ck_assert_msg(p == line + 6 && p[0] == ' ' && p[1] == ' ', "%s: bad line \"%s\"",
			      name, line);
		ck_assert_msg(off == got.n, "%s: line at 0x%lx, expected 0x%zx", name, off, got.n);
		p += 2;
		/* up to 16 "xx " groups, then padding and the annotation */
		for (int i = 0; i < 16; i++) {
			unsigned b;

			if (!(p[0] && p[1] && p[2] == ' ' && sscanf(p, "%2x", &b) == 1 &&
			      strchr("0123456789abcdef", p[0]) && strchr("0123456789abcdef", p[1])))
				break;
			tu_bytes_add(&got, &(uint8_t){ (uint8_t)b }, 1);
			p += 3;
		}
	}
	ck_assert_uint_eq(got.n, n);
	ck_assert_mem_eq(got.p, bin, n);
	tu_bytes_free(&got);
	free(bin);
	free(hex);
}
END_TEST

/* Reader: exact code, exact events before it, message naming the place. */
START_TEST(decode_as_listed)
{
	const struct tv_vector *v = &tv_vectors[_i];
	struct tu_bytes listing = { 0 };
	char name[96], line[2048];
	struct tu_run r;
	uint8_t *bin;
	size_t n;

	snprintf(name, sizeof(name), "%s.vms", v->name);
	bin = slurp_or_fail(name, &n);
	for (uint32_t t = 0; t <= 2; t += 2) {
		run_vector(bin, n, v->keyed ? tv_key : NULL, t, 0, &r);
		ck_assert_msg(r.err == v->code, "%s (threads %u): reader says %s (%d), expected %s "
			      "(%d): %s",
			      v->name, t, vms_errname(r.err), r.err, vms_errname(v->code), v->code,
			      r.msg);
		ck_assert_int_eq(r.again, v->code);
		/* the message starts with the location (FORMAT.md 4) */
		if (v->where)
			ck_assert_msg(strncmp(r.msg, v->where, strlen(v->where)) == 0,
				      "%s: message \"%s\" does not start with \"%s\"", v->name, r.msg,
				      v->where);
		if (r.open_err == 0) {
			tv_format_info(line, sizeof(line), &r.info);
			tu_bytes_add(&listing, line, strlen(line));
		}
		for (size_t i = 0; i < r.nev; i++) {
			const struct tu_ev *e = &r.ev[i];
			const uint8_t *data = NULL;

			if (e->type == VMS_REC_DATA && e->device < TU_MAX_DEV)
				data = r.dev[e->device].p + e->offset;
			tv_format_event(line, sizeof(line), e, data);
			tu_bytes_add(&listing, line, strlen(line));
		}
		tu_bytes_add(&listing, "", 1);
		ck_assert_msg(strcmp((char *)listing.p, v->events) == 0,
			      "%s (threads %u): decoded\n%s\nbut the listing says\n%s", v->name, t,
			      (char *)listing.p, v->events);
		tu_bytes_free(&listing);
		tu_run_free(&r);
	}
	free(bin);
}
END_TEST

/* An encrypted valid vector: no key is VMS_EKEY at open, another key
 * VMS_EAUTH at the first record, and nothing is delivered either way. */
START_TEST(keyed_needs_its_key)
{
	const struct tv_vector *v = &tv_vectors[_i];
	uint8_t other[VMS_KEY_LEN];
	struct tu_run r;
	char name[96];
	uint8_t *bin;
	size_t n;

	if (!v->keyed || v->code != 0)
		return;
	snprintf(name, sizeof(name), "%s.vms", v->name);
	bin = slurp_or_fail(name, &n);
	run_vector(bin, n, NULL, 0, 0, &r);
	ck_assert_int_eq(r.open_err, VMS_EKEY);
	ck_assert_ptr_nonnull(strstr(r.msg, "preamble at byte 0"));
	tu_run_free(&r);
	memcpy(other, tv_key, sizeof(other));
	other[31] ^= 1;
	run_vector(bin, n, other, 0, 0, &r);
	ck_assert_int_eq(r.open_err, 0);
	ck_assert_int_eq(r.err, VMS_EAUTH);
	ck_assert_uint_eq(r.nev, 0);
	ck_assert_msg(strstr(r.msg, "record 0 at byte ") != NULL, "%s", r.msg);
	tu_run_free(&r);
	free(bin);
}
END_TEST

/* Decode a valid vector without the library's reader, from FORMAT.md alone:
 * open each sealed record with refcrypto.h, expand each compressed one with
 * libzstd, recompute every sum, device digest and EOS total, and compare the
 * device bytes with what the reader delivered. */
START_TEST(reference_decode)
{
	const struct tv_vector *v = &tv_vectors[_i];
	struct tu_bytes dev[TU_MAX_DEV] = { { 0 } };
	struct ref_stream rs;
	struct tu_run r;
	struct tu_ed ed;
	uint64_t raw_total = 0;
	uint32_t ndev = 0;
	char name[96];
	uint8_t *bin;
	size_t n;

	if (v->code != 0)
		return;
	snprintf(name, sizeof(name), "%s.vms", v->name);
	bin = slurp_or_fail(name, &n);
	ck_assert_int_eq(tu_ed_parse(&ed, bin, n), 0);
	ck_assert_int_eq(ref_parse_preamble(&rs, bin, n), 0);
	ck_assert_mem_eq(rs.stream_id, tv_stream_id, 16);
	ck_assert_uint_eq(rs.cipher != 0, v->keyed);
	for (size_t i = 0; i < ed.n; i++) {
		struct tu_rec *rec = &ed.r[i];
		uint8_t *pt = tu_xmalloc(rec->pl_len + 1);
		size_t body = rec->pl_len;
		uint64_t sum = rec->h.payload_sum;

		ck_assert_uint_eq(rec->h.seq, i);
		if (rs.cipher) {
			ck_assert_mem_eq(rs.salt, tv_salt, 32);
			ck_assert_uint_eq(rec->h.flags, VMS_RFLAG_ENCRYPTED);
			ck_assert_uint_eq(rec->h.payload_sum, 0);
			ck_assert_msg(ref_open_record(&rs, tv_key, rec->hb, rec->pl, rec->pl_len, pt) ==
					      0,
				      "%s: record %zu does not open", v->name, i);
			body -= 24;
			sum = vms_get_u64(pt + body);
		} else {
			memcpy(pt, rec->pl, rec->pl_len);
		}
		if (rec->h.type == VMS_REC_DATA || rec->h.type == VMS_REC_ZERO) {
			uint8_t *raw = tu_xmalloc(rec->h.raw_len);

			ck_assert_uint_lt(rec->h.device, TU_MAX_DEV);
			ck_assert_uint_eq(rec->h.offset, dev[rec->h.device].n);
			if (rec->h.type == VMS_REC_ZERO) {
				ck_assert_uint_eq(body, 0);
				ck_assert_uint_eq(sum, 0);
				memset(raw, 0, rec->h.raw_len);
			} else if (rec->h.codec) {
				ck_assert_uint_eq(rec->h.codec, 1); /* zstd */
				ck_assert_uint_eq(ZSTD_getFrameContentSize(pt, body), rec->h.raw_len);
				ck_assert_uint_eq(ZSTD_decompress(raw, rec->h.raw_len, pt, body),
						  rec->h.raw_len);
			} else {
				ck_assert_uint_eq(body, rec->h.raw_len);
				memcpy(raw, pt, body);
			}
			if (rec->h.type == VMS_REC_DATA)
				ck_assert_uint_eq(sum, tu_xxh3(raw, rec->h.raw_len));
			tu_bytes_add(&dev[rec->h.device], raw, rec->h.raw_len);
			raw_total += rec->h.raw_len;
			free(raw);
		} else {
			ck_assert_uint_eq(body, rec->h.raw_len);
			ck_assert_uint_eq(sum, tu_xxh3(pt, body));
		}
		if (rec->h.type == VMS_REC_DEVICE_BEGIN)
			ndev++;
		if (rec->h.type == VMS_REC_DEVICE_END) {
			const struct tu_bytes *d = &dev[rec->h.device];

			ck_assert_uint_eq(vms_get_u64(pt), d->n);
			ck_assert_uint_eq(vms_get_u64(pt + 8), tu_xxh3(d->p, d->n));
		}
		if (rec->h.type == VMS_REC_EOS) {
			ck_assert_uint_eq(i, ed.n - 1);
			ck_assert_uint_eq(vms_get_u64(pt), i);
			ck_assert_uint_eq(vms_get_u64(pt + 8), raw_total);
			ck_assert_uint_eq(vms_get_u64(pt + 16) & 0xffffffffu, ndev);
		}
		free(pt);
	}
	/* the library's reader delivered the same device bytes */
	run_vector(bin, n, v->keyed ? tv_key : NULL, 0, 0, &r);
	ck_assert_int_eq(r.err, 0);
	for (uint32_t d = 0; d < ndev && d < TU_MAX_DEV; d++) {
		ck_assert_uint_eq(r.dev[d].n, dev[d].n);
		if (dev[d].n)
			ck_assert_mem_eq(r.dev[d].p, dev[d].p, dev[d].n);
		tu_bytes_free(&dev[d]);
	}
	tu_run_free(&r);
	tu_ed_free(&ed);
	free(bin);
}
END_TEST

/* Valid vectors also frame cleanly in headers-only mode, same records. */
START_TEST(valid_headers_only)
{
	const struct tv_vector *v = &tv_vectors[_i];
	struct tu_run full, hdr;
	char name[96];
	uint8_t *bin;
	size_t n;

	if (v->code != 0)
		return;
	snprintf(name, sizeof(name), "%s.vms", v->name);
	bin = slurp_or_fail(name, &n);
	run_vector(bin, n, v->keyed ? tv_key : NULL, 0, 0, &full);
	run_vector(bin, n, NULL, 0, VMS_READER_F_HEADERS_ONLY, &hdr);
	ck_assert_int_eq(hdr.err, 0);
	ck_assert_uint_eq(hdr.nev, full.nev);
	for (size_t i = 0; i < hdr.nev; i++) {
		ck_assert_uint_eq(hdr.ev[i].type, full.ev[i].type);
		ck_assert_uint_eq(hdr.ev[i].seq, full.ev[i].seq);
		ck_assert_uint_eq(hdr.ev[i].stream_pos, full.ev[i].stream_pos);
	}
	tu_run_free(&full);
	tu_run_free(&hdr);
	free(bin);
}
END_TEST

/* FORMAT.md section 1 example values; README.md carries the second one. */
START_TEST(xxh3_examples)
{
	size_t n;
	char *readme;

	ck_assert_uint_eq(tu_xxh3("", 0), 0x2d06800538d394c2ull);
	ck_assert_uint_eq(tu_xxh3("vmstream", 8), 0x823964198109694dull);
	readme = (char *)slurp_or_fail("README.md", &n);
	ck_assert_ptr_nonnull(strstr(readme, "0x823964198109694d"));
	ck_assert_ptr_nonnull(strstr(readme, "0x2d06800538d394c2"));
	for (size_t i = 0; i < TV_COUNT; i++) {
		char head[96];

		snprintf(head, sizeof(head), "### `%s`", tv_vectors[i].name);
		ck_assert_msg(strstr(readme, head) != NULL, "README.md does not describe %s",
			      tv_vectors[i].name);
	}
	free(readme);
}
END_TEST

/* FORMAT.md section 10 lists every enum vms_err with its number (they are
 * wire values), exactly the library's table, in order. */
START_TEST(format_md_error_table)
{
	char name[PATH_MAX + 32];
	char *txt, *p, *save = NULL;
	int want = 0;
	size_t n;
	FILE *f;
	struct tu_bytes b = { 0 };
	uint8_t buf[4096];

	snprintf(name, sizeof(name), "%s/../../FORMAT.md", vdir);
	f = fopen(name, "rb");
	ck_assert_msg(f != NULL, "%s: %s", name, strerror(errno));
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		tu_bytes_add(&b, buf, n);
	fclose(f);
	tu_bytes_add(&b, "", 1);
	txt = (char *)b.p;
	p = strstr(txt, "\n## 10. Error codes\n");
	ck_assert_msg(p != NULL, "FORMAT.md has no section \"10. Error codes\"");
	for (char *line = strtok_r(p, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char ename[64];
		int value;

		if (strncmp(line, "## ", 3) == 0 && strncmp(line, "## 10.", 6) != 0)
			break; /* next section */
		if (sscanf(line, "| %d | `%63[A-Z_0-9]` |", &value, ename) != 2)
			continue;
		ck_assert_msg(value == want, "FORMAT.md lists %d where %d is next", value, want);
		ck_assert_msg(vms_errname(value) != NULL, "FORMAT.md lists %d, unknown to the library",
			      value);
		ck_assert_str_eq(ename, vms_errname(value));
		want--;
	}
	ck_assert_msg(vms_errname(want) == NULL, "FORMAT.md section 10 lacks %d (%s)", want,
		      vms_errname(want));
	ck_assert_int_lt(want, -30);
	tu_bytes_free(&b);
}
END_TEST

static Suite *vectors_suite(void)
{
	Suite *s = suite_create("vectors");
	TCase *tc = tcase_create("files");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, vectors_dir_present);
	tcase_add_test(tc, expected_txt_matches_table);
	tcase_add_test(tc, table_sane);
	tcase_add_test(tc, key_file_matches);
	tcase_add_loop_test(tc, rebuild_byte_for_byte, 0, (int)TV_COUNT);
	tcase_add_loop_test(tc, hex_listing_matches, 0, (int)TV_COUNT);
	tcase_add_loop_test(tc, decode_as_listed, 0, (int)TV_COUNT);
	tcase_add_loop_test(tc, keyed_needs_its_key, 0, (int)TV_COUNT);
	tcase_add_loop_test(tc, reference_decode, 0, (int)TV_COUNT);
	tcase_add_loop_test(tc, valid_headers_only, 0, (int)TV_COUNT);
	tcase_add_test(tc, xxh3_examples);
	tcase_add_test(tc, format_md_error_table);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	tu_require_memfd();
	find_vectors();
	sr = srunner_create(vectors_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
