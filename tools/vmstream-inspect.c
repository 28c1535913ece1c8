/* SPDX-License-Identifier: MIT */
/*
 * vmstream-inspect: list a stream's preamble and records and say whether it
 * is complete and valid. Without --verify only the framing is checked
 * (headers, sequence, lengths, device order, trailing bytes; no key needed);
 * with --verify every payload, digest and total is verified as well.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "common.h"

enum { OPT_VERIFY = VMS_OPT_TOOL_BASE, OPT_JSON_OUT };

struct inspect_args {
	bool verify;
	bool json;
};

static const struct vms_tool_opt inspect_opts[] = {
	{ "verify", no_argument, OPT_VERIFY, NULL,
	  "verify payload checksums, device digests and totals (full reader)" },
	{ "json", no_argument, OPT_JSON_OUT, NULL,
	  "print one JSON object (preamble, records, verdict) instead of text" },
	{ "key-file", required_argument, VMS_OPT_KEY_FILE, "FILE",
	  "key of an encrypted stream, for --verify (64 hex digits, mode 0600)" },
	VMS_TOOL_OPT_HELP,
	VMS_TOOL_OPT_VERSION,
	VMS_TOOL_OPT_END,
};

static int inspect_opt(struct vms_tool *t, void *ctx, int key, const char *arg)
{
	struct inspect_args *a = ctx;

	(void)arg;
	switch (key) {
	case OPT_VERIFY:
		a->verify = true;
		return 0;
	case OPT_JSON_OUT:
		a->json = true;
		return 0;
	default:
		return vms_tool_usage_error(t, "unhandled option");
	}
}

/* Text output: names are shown with C-style escapes so a hostile stream
 * cannot send control sequences to the terminal. */
static void print_escaped(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

struct inspect {
	struct vms_tool *t;
	const struct inspect_args *a;
	const char *path;
	struct vms_json j;
	struct vms_reader *r;
	uint64_t records;
	bool aborted;
};

static void show_preamble(struct inspect *in, const struct vms_stream_info *i)
{
	const char *cipher = vms_cipher_name(i->cipher);
	char buf[32];

	if (!cipher)
		cipher = "unknown";

	if (in->a->json) {
		vms_json_obj_begin(&in->j, "preamble");
		vms_json_u64(&in->j, "version_major", i->version_major);
		vms_json_u64(&in->j, "version_minor", i->version_minor);
		vms_json_u64(&in->j, "preamble_len", i->preamble_len);
		vms_json_hex(&in->j, "stream_id", i->stream_id, sizeof(i->stream_id));
		vms_json_u64(&in->j, "flags", i->flags);
		vms_json_u64(&in->j, "chunk_cap", i->chunk_cap);
		vms_json_str(&in->j, "cipher", cipher);
		vms_json_str(&in->j, "key_source", vms_tool_key_source_name(i->key_source));
		vms_json_u64(&in->j, "lanes", i->lanes);
		if (i->size_hint == UINT64_MAX)
			vms_json_null(&in->j, "size_hint");
		else
			vms_json_u64(&in->j, "size_hint", i->size_hint);
		vms_json_obj_end(&in->j);
		vms_json_arr_begin(&in->j, "records");
		return;
	}
	printf("file:          %s\n", vms_tool_path_name(in->path, false));
	printf("format:        %u.%u, preamble %u bytes\n", i->version_major, i->version_minor,
	       i->preamble_len);
	printf("stream id:     ");
	for (size_t k = 0; k < sizeof(i->stream_id); k++)
		printf("%02x", i->stream_id[k]);
	printf("\nflags:         0x%08x%s\n", i->flags, i->flags & 1 ? " (ENCRYPTED)" : "");
	printf("chunk cap:     %u (%s)\n", i->chunk_cap,
	       vms_tool_human_bytes(i->chunk_cap, buf, sizeof(buf)));
	printf("cipher:        %s\n", cipher);
	printf("key source:    %s\n", vms_tool_key_source_name(i->key_source));
	printf("lanes:         %u\n", i->lanes);
	if (i->size_hint == UINT64_MAX)
		printf("size hint:     unknown\n");
	else
		printf("size hint:     %llu (%s)\n", (unsigned long long)i->size_hint,
		       vms_tool_human_bytes(i->size_hint, buf, sizeof(buf)));
	printf("records%s:\n", in->a->verify ? " (verified)"
					     : " (framing only; payloads not read, use --verify)");
	printf("%8s %12s %-12s %5s %12s %9s %9s %5s %5s %4s %5s  %s\n", "seq", "stream_pos",
	       "type", "dev", "offset", "raw_len", "wire_len", "flags", "codec", "lane", "epoch",
	       "details");
}

static void show_record_json(struct inspect *in, const struct vms_event *ev)
{
	struct vms_json *j = &in->j;
	const char *name = vms_rec_type_name(ev->type);
	char hex[24];

	vms_json_obj_begin(j, NULL);
	vms_json_u64(j, "seq", ev->seq);
	vms_json_u64(j, "stream_pos", ev->stream_pos);
	vms_json_str(j, "type", name ? name : "UNKNOWN");
	vms_json_u64(j, "type_id", ev->type);
	if (ev->device == VMS_DEVICE_NONE)
		vms_json_null(j, "device");
	else
		vms_json_u64(j, "device", ev->device);
	vms_json_u64(j, "offset", ev->offset);
	vms_json_u64(j, "raw_len", ev->raw_len);
	vms_json_u64(j, "wire_len", ev->wire_len);
	vms_json_u64(j, "flags", ev->flags);
	vms_json_u64(j, "codec", ev->codec);
	vms_json_u64(j, "lane", ev->lane);
	vms_json_u64(j, "epoch", ev->epoch);
	if (in->a->verify) {
		switch (ev->type) {
		case VMS_REC_DEVICE_BEGIN:
			vms_json_str(j, "name", ev->u.begin.name);
			vms_json_str(j, "kind", vms_tool_devkind_name(ev->u.begin.kind));
			if (ev->u.begin.size_hint == UINT64_MAX)
				vms_json_null(j, "size_hint");
			else
				vms_json_u64(j, "size_hint", ev->u.begin.size_hint);
			break;
		case VMS_REC_PHASE:
			vms_json_str(j, "phase", vms_tool_phase_name(ev->u.phase.phase));
			vms_json_u64(j, "round", ev->u.phase.round);
			break;
		case VMS_REC_DEVICE_END:
			snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)ev->u.end.digest);
			vms_json_u64(j, "total", ev->u.end.total);
			vms_json_str(j, "digest_xxh3", hex);
			break;
		case VMS_REC_EOS:
			vms_json_u64(j, "records", ev->u.eos.records);
			vms_json_u64(j, "raw_bytes", ev->u.eos.raw_bytes);
			vms_json_u64(j, "devices", ev->u.eos.devices);
			break;
		case VMS_REC_ABORT:
			vms_json_str(j, "abort_code", vms_errname(ev->u.abort.code));
			vms_json_i64(j, "abort_value", ev->u.abort.code);
			vms_json_str(j, "abort_text", ev->u.abort.text);
			break;
		default:
			break;
		}
	}
	vms_json_obj_end(j);
}

static void show_record_text(struct inspect *in, const struct vms_event *ev)
{
	const char *name = vms_rec_type_name(ev->type);
	char dev[12];

	if (ev->device == VMS_DEVICE_NONE)
		snprintf(dev, sizeof(dev), "-");
	else
		snprintf(dev, sizeof(dev), "%u", ev->device);
	printf("%8llu %12llu %-12s %5s %12llu %9u %9u  0x%02x %5u %4u %5u",
	       (unsigned long long)ev->seq, (unsigned long long)ev->stream_pos,
	       name ? name : "UNKNOWN", dev, (unsigned long long)ev->offset, ev->raw_len,
	       ev->wire_len, ev->flags, ev->codec, ev->lane, ev->epoch);
	if (!in->a->verify || ev->type == VMS_REC_ZERO) {
		/* Headers-only events carry no payload fields. */
		if (ev->type != VMS_REC_DATA && ev->type != VMS_REC_ZERO)
			printf("  (payload not read)");
		putchar('\n');
		return;
	}
	printf("  ");
	switch (ev->type) {
	case VMS_REC_DEVICE_BEGIN:
		printf("name ");
		print_escaped(stdout, ev->u.begin.name);
		printf(" kind %s", vms_tool_devkind_name(ev->u.begin.kind));
		if (ev->u.begin.size_hint == UINT64_MAX)
			printf(" size_hint unknown");
		else
			printf(" size_hint %llu", (unsigned long long)ev->u.begin.size_hint);
		break;
	case VMS_REC_PHASE:
		printf("phase %s round %u", vms_tool_phase_name(ev->u.phase.phase), ev->u.phase.round);
		break;
	case VMS_REC_DEVICE_END:
		printf("total %llu digest %016llx", (unsigned long long)ev->u.end.total,
		       (unsigned long long)ev->u.end.digest);
		break;
	case VMS_REC_EOS:
		printf("records %llu raw_bytes %llu devices %u",
		       (unsigned long long)ev->u.eos.records, (unsigned long long)ev->u.eos.raw_bytes,
		       ev->u.eos.devices);
		break;
	case VMS_REC_ABORT: {
		const char *code = vms_errname(ev->u.abort.code);

		printf("code %s text ", code ? code : "unknown");
		print_escaped(stdout, ev->u.abort.text);
		break;
	}
	case VMS_REC_DATA:
		printf("checksum ok");
		break;
	default:
		break;
	}
	putchar('\n');
}

static void show_verdict(struct inspect *in, const struct vms_stats *st, bool have_stats)
{
	struct vms_tool *t = in->t;
	int status = t->err ? vms_tool_exit_code(t->err) : 0;
	const char *word = !t->err ? "OK" : status == VMS_EXIT_ABORTED ? "ABORTED"
					    : status == VMS_EXIT_STREAM ? "INVALID" : "ERROR";

	if (in->a->json) {
		vms_json_obj_begin(&in->j, "verdict");
		vms_json_str(&in->j, "status", t->err ? (status == VMS_EXIT_STREAM ? "invalid"
							 : status == VMS_EXIT_ABORTED ? "aborted"
										     : "error")
						      : "ok");
		vms_json_bool(&in->j, "complete", !t->err);
		vms_json_str(&in->j, "checks", in->a->verify ? "full" : "framing");
		vms_json_i64(&in->j, "exit_code", status);
		vms_json_str(&in->j, "error_code", t->err ? vms_errname(t->err) : NULL);
		vms_json_str(&in->j, "error_message", t->err ? t->msg : NULL);
		vms_json_u64(&in->j, "records", have_stats ? st->records : 0);
		vms_json_u64(&in->j, "devices", have_stats ? st->devices : 0);
		vms_json_u64(&in->j, "raw_bytes", have_stats ? st->raw_bytes : 0);
		vms_json_u64(&in->j, "stream_bytes", have_stats ? st->wire_bytes : 0);
		vms_json_obj_end(&in->j);
		vms_json_obj_end(&in->j);
		putchar('\n');
		return;
	}
	printf("verdict:       %s: ", word);
	if (t->err) {
		printf("%s: %s\n", vms_errname(t->err), t->msg);
		return;
	}
	printf("complete stream, %llu records, %u device%s, %llu raw bytes, %llu stream bytes; %s\n",
	       (unsigned long long)st->records, st->devices, st->devices == 1 ? "" : "s",
	       (unsigned long long)st->raw_bytes, (unsigned long long)st->wire_bytes,
	       in->a->verify ? "every checksum, digest and total verified"
			     : "framing checked, payloads not verified (use --verify)");
}

static int open_input(struct inspect *in, int *fd)
{
	struct stat st;

	return vms_tool_open_input(in->t, in->path, "", fd, &st);
}

static int run_inspect(struct vms_tool *t, const struct inspect_args *a, const char *path)
{
	struct inspect in = { .t = t, .a = a, .path = path };
	struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
	struct vms_stream_info info = { .size = sizeof(info) };
	struct vms_stats st = { .size = sizeof(st) };
	struct vms_event ev = VMS_EVENT_INIT;
	uint8_t key[VMS_KEY_LEN];
	bool listing = false;
	int fd = -1, rc;

	/* No signal handlers: nothing to clean up, and a listing piped into
	 * `head` should end quietly by SIGPIPE. */
	if (a->json) {
		char ver[32];

		snprintf(ver, sizeof(ver), "%d.%d.%d", VMS_VERSION_MAJOR, VMS_VERSION_MINOR,
			 VMS_VERSION_PATCH);
		vms_json_init(&in.j, stdout);
		vms_json_obj_begin(&in.j, NULL);
		vms_json_str(&in.j, "tool", t->prog);
		vms_json_str(&in.j, "version", ver);
		vms_json_str(&in.j, "file", vms_tool_path_name(path, false));
		vms_json_str(&in.j, "mode", a->verify ? "verify" : "framing");
	}
	if (open_input(&in, &fd) == 0 &&
	    (!a->verify || !t->sh.key_file || vms_tool_load_key(t, t->sh.key_file, key) == 0)) {
		ro.flags = a->verify ? 0 : VMS_READER_F_HEADERS_ONLY;
		/* Framing only reads no payload: the key is not needed then. */
		if (a->verify && t->sh.key_file)
			ro.key = key;
		rc = vms_reader_open_fd(&in.r, fd, &ro);
		vms_wipe(key, sizeof(key));
		if (rc)
			vms_tool_fail_lib(t, rc);
	}
	if (in.r && vms_reader_info(in.r, &info) == 0) {
		show_preamble(&in, &info);
		listing = true;
		while ((rc = vms_reader_next(in.r, &ev)) > 0) {
			if (a->json)
				show_record_json(&in, &ev);
			else
				show_record_text(&in, &ev);
		}
		if (rc < 0)
			vms_tool_fail_lib(t, rc);
		vms_reader_stats(in.r, &st);
	} else if (a->json) {
		vms_json_null(&in.j, "preamble");
		vms_json_arr_begin(&in.j, "records");
		listing = true;
	}
	if (a->json && listing)
		vms_json_arr_end(&in.j);
	show_verdict(&in, &st, in.r != NULL);
	vms_reader_free(in.r);
	if (fd > STDERR_FILENO)
		close(fd);
	if (fflush(stdout) != 0 || ferror(stdout))
		vms_tool_fail(t, VMS_EIO, "writing the listing to stdout: %s", strerror(errno));
	return vms_tool_report(t);
}

int main(int argc, char **argv)
{
	struct vms_tool t = {
		.prog = "vmstream-inspect",
		.synopsis = "[--verify [--key-file KEY]] [--json] FILE",
		.summary = "List the preamble and records of the vmstream stream in FILE ('-' = "
			   "stdin) and check it.",
		.details = "Without --verify only the framing is checked: preamble, record headers\n"
			   "and their checksums, sequence, lengths, device order, EOS presence and\n"
			   "trailing bytes; payloads are skipped (no key is needed). With --verify\n"
			   "the full reader also checks every payload checksum, DEVICE_END digest\n"
			   "and EOS total; an encrypted stream needs its --key-file for that.\n"
			   "The exit status is 0 only for a complete, valid stream.",
		.opts = inspect_opts,
	};
	struct inspect_args a = { 0 };
	int first, rc;

	rc = vms_tool_parse(&t, argc, argv, inspect_opt, &a, &first);
	if (rc >= 0)
		return rc;
	if (argc - first != 1)
		return vms_tool_usage_error(&t, "%s", argc == first ? "FILE is required ('-' for stdin)"
							     : "exactly one FILE expected");
	return run_inspect(&t, &a, argv[first]);
}
