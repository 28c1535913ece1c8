/* SPDX-License-Identifier: MIT */
/*
 * vmstream-recv: read a vmstream stream, verify every record, and write the
 * device's bytes to a file or stdout. A file output appears only once the
 * whole stream verified; on any failure there is no output file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "common.h"

/* Holes are made for whole blocks of this size that are all zero. */
#define HOLE_BLOCK 4096u
#define ZERO_BUF (64u << 10)

struct recv_args {
	const char *input;
};

static const struct vms_tool_opt recv_opts[] = {
	{ "input", required_argument, 'i', "FILE", "read the stream from FILE ('-' = stdin); required" },
	VMS_TOOL_OPT_FORCE,
	VMS_TOOL_OPT_JSON,
	VMS_TOOL_OPT_PROGRESS,
	VMS_TOOL_OPT_NO_PROGRESS,
	VMS_TOOL_OPT_QUIET,
	VMS_TOOL_OPT_HELP,
	VMS_TOOL_OPT_VERSION,
	VMS_TOOL_OPT_END,
};

static int recv_opt(struct vms_tool *t, void *ctx, int key, const char *arg)
{
	struct recv_args *a = ctx;

	switch (key) {
	case 'i':
		if (!*arg)
			return vms_tool_usage_error(t, "--input needs a file name or '-'");
		a->input = arg;
		return 0;
	default:
		return vms_tool_usage_error(t, "unhandled option");
	}
}

/* Where the device's bytes go. A regular (temporary) file gets holes for
 * ZERO records and for all-zero blocks; anything else gets every byte. */
struct sink {
	struct vms_tool *t;
	struct vms_output *out;
	uint64_t pos;      /* device bytes delivered so far */
};

static const uint8_t zeros[ZERO_BUF];

static bool all_zero(const uint8_t *p, size_t n)
{
	/* Cheap early exit on data; memcmp against itself for the rest. */
	for (size_t i = 0; i < n && i < 16; i++)
		if (p[i])
			return false;
	return n <= 16 || memcmp(p, p + 16, n - 16) == 0;
}

static int sink_fail(struct sink *s, int err)
{
	return vms_tool_fail(s->t, VMS_ESINK, "writing output '%s' at byte %llu: %s",
			     vms_tool_path_name(s->out->path, true), (unsigned long long)s->pos,
			     strerror(-err));
}

static int pwrite_all(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static int sink_data(struct sink *s, const uint8_t *p, size_t len)
{
	size_t i = 0, run = 0; /* run: pending non-hole bytes starting at i - run */
	int err;

	if (!s->out->seekable) {
		err = vms_write_all(s->out->fd, p, len);
		if (err)
			return sink_fail(s, err);
		s->pos += len;
		return 0;
	}
	while (i < len) {
		uint64_t at = s->pos + i;
		size_t blk = HOLE_BLOCK - (size_t)(at % HOLE_BLOCK);

		if (blk > len - i)
			blk = len - i;
		if (blk == HOLE_BLOCK && all_zero(p + i, blk)) {
			if (run) {
				err = pwrite_all(s->out->fd, p + i - run, run, at - run);
				if (err)
					return sink_fail(s, err);
				run = 0;
			}
		} else {
			run += blk;
		}
		i += blk;
	}
	if (run) {
		err = pwrite_all(s->out->fd, p + len - run, run, s->pos + len - run);
		if (err)
			return sink_fail(s, err);
	}
	s->pos += len;
	return 0;
}

static int sink_zero(struct sink *s, uint64_t len)
{
	if (s->out->seekable) {
		s->pos += len; /* a hole; ftruncate at the end sets the size */
		return 0;
	}
	while (len > 0) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int err = vms_write_all(s->out->fd, zeros, n);

		if (err)
			return sink_fail(s, err);
		s->pos += n;
		len -= n;
	}
	return 0;
}

static int sink_finish(struct sink *s)
{
	if (s->out->seekable && ftruncate(s->out->fd, (off_t)s->pos) != 0)
		return vms_tool_fail(s->t, VMS_ESINK, "setting the size of output '%s': %s",
				     s->out->path, strerror(errno));
	return 0;
}

struct recv_run {
	struct vms_tool *t;
	int in_fd;
	struct vms_output out;
	struct vms_progress prog;
	struct vms_reader *r;
	struct sink sink;
	uint32_t devices;
	char device[VMS_NAME_MAX + 1];
	bool have_digest;
	uint64_t digest;
};

static int input_open(struct vms_tool *t, struct recv_run *rr, const char *path)
{
	struct stat st;

	if (strcmp(path, "-") == 0) {
		if (isatty(STDIN_FILENO) == 1)
			return vms_tool_fail(t, VMS_EINVAL,
					     "refusing to read a stream from a terminal; "
					     "redirect stdin or name an input file");
		rr->in_fd = STDIN_FILENO;
	} else {
		rr->in_fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
		if (rr->in_fd < 0)
			return vms_tool_fail(t, VMS_EIO, "opening input '%s': %s", path,
					     strerror(errno));
	}
	if (fstat(rr->in_fd, &st) != 0)
		return vms_tool_fail(t, VMS_EIO, "examining input '%s': %s",
				     vms_tool_path_name(path, false), strerror(errno));
	if (S_ISDIR(st.st_mode))
		return vms_tool_fail(t, VMS_EIO, "input '%s' is a directory", path);
	(void)posix_fadvise(rr->in_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
}

static int on_event(struct recv_run *rr, const struct vms_event *ev)
{
	switch (ev->type) {
	case VMS_REC_DEVICE_BEGIN:
		if (ev->device != 0)
			return vms_tool_fail(rr->t, VMS_EDEVICE,
					     "record %llu at byte %llu: stream carries a second device "
					     "('%s'); writing to a file takes exactly one",
					     (unsigned long long)ev->seq,
					     (unsigned long long)ev->stream_pos, ev->u.begin.name);
		rr->devices = 1;
		snprintf(rr->device, sizeof(rr->device), "%s", ev->u.begin.name);
		if (rr->prog.total == UINT64_MAX)
			rr->prog.total = ev->u.begin.size_hint;
		return 0;
	case VMS_REC_DATA:
		return sink_data(&rr->sink, ev->u.data.data, ev->u.data.len);
	case VMS_REC_ZERO:
		return sink_zero(&rr->sink, ev->u.data.len);
	case VMS_REC_DEVICE_END:
		rr->have_digest = true;
		rr->digest = ev->u.end.digest;
		return 0;
	default:
		/* PHASE and EOS need nothing here; after an ABORT event the
		 * next vms_reader_next() fails with the peer's reason. */
		return 0;
	}
}

static int pump(struct recv_run *rr)
{
	struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
	struct vms_stream_info info = { .size = sizeof(info) };
	struct vms_event ev;
	int rc;

	ro.progress = vms_progress_cb;
	ro.progress_user = &rr->prog;
	rc = vms_reader_open_fd(&rr->r, rr->in_fd, &ro);
	if (rc)
		return vms_tool_fail_lib(rr->t, rc);
	if (vms_reader_info(rr->r, &info) == 0)
		rr->prog.total = info.size_hint;
	while ((rc = vms_reader_next(rr->r, &ev)) > 0) {
		rc = on_event(rr, &ev);
		if (rc)
			return rc;
	}
	if (rc < 0)
		return vms_tool_fail_lib(rr->t, rc);
	if (rr->devices == 0)
		return vms_tool_fail(rr->t, VMS_EDEVICE,
				     "stream carries no device; writing to a file takes exactly one");
	rc = sink_finish(&rr->sink);
	if (rc)
		return rc;
	return vms_output_commit(rr->t, &rr->out);
}

static int run_recv(struct vms_tool *t, const struct recv_args *a, const char *output)
{
	struct recv_run rr = { .t = t, .in_fd = -1, .out = { .fd = -1 } };
	struct vms_stats st = { .size = sizeof(st) };
	struct vms_summary sum = { .bytes_key = "bytes_out" };
	double t0 = vms_tool_now();

	vms_tool_signals_init(t);
	rr.sink.t = t;
	rr.sink.out = &rr.out;
	/* Output first: an existing output is refused before reading a byte. */
	if (vms_output_open(t, &rr.out, output, t->force) == 0 && input_open(t, &rr, a->input) == 0) {
		vms_progress_init(&rr.prog, t, UINT64_MAX);
		pump(&rr);
		vms_progress_end(&rr.prog);
	}
	if (t->err)
		vms_output_discard(&rr.out);
	if (rr.r)
		vms_reader_stats(rr.r, &st);
	sum.bytes = rr.sink.pos;
	sum.wire_bytes = st.wire_bytes;
	sum.records = st.records;
	sum.seconds = vms_tool_now() - t0;
	sum.device = rr.devices ? rr.device : NULL;
	sum.have_digest = rr.have_digest && !t->err;
	sum.digest = rr.digest;
	if (!t->err && rr.prog.on) {
		char a1[32], a2[32];

		fprintf(stderr, "%s: received and verified %s in %.2f s (%s/s), device '%s', "
				"digest %016llx, written to %s\n",
			t->prog, vms_tool_human_bytes(sum.bytes, a1, sizeof(a1)), sum.seconds,
			vms_tool_human_bytes(sum.seconds > 0 ? (uint64_t)((double)sum.bytes / sum.seconds)
							     : 0, a2, sizeof(a2)),
			rr.device, (unsigned long long)rr.digest, vms_tool_path_name(output, true));
	}
	vms_reader_free(rr.r);
	if (rr.in_fd > STDERR_FILENO)
		close(rr.in_fd);
	vms_tool_write_summary(t, &sum);
	return vms_tool_report(t);
}

int main(int argc, char **argv)
{
	struct vms_tool t = {
		.prog = "vmstream-recv",
		.synopsis = "[OPTIONS] --input FILE [OUTPUT]",
		.summary = "Verify the vmstream stream in FILE and write its device's bytes to "
			   "OUTPUT (default '-', stdout).",
		.details = "The stream must carry exactly one device. Every record is verified\n"
			   "before its bytes are written. A file OUTPUT is written under a\n"
			   "temporary name in its directory (zero blocks left as holes), synced,\n"
			   "and renamed into place only after the whole stream verified; on any\n"
			   "failure, or SIGINT/SIGTERM/SIGHUP, no OUTPUT file is left. An\n"
			   "existing regular OUTPUT is refused (before reading) unless --force.\n"
			   "Devices and FIFOs (/dev/null) are written in place.",
		.opts = recv_opts,
	};
	struct recv_args a = { 0 };
	int first, rc;

	rc = vms_tool_parse(&t, argc, argv, recv_opt, &a, &first);
	if (rc >= 0)
		return rc;
	if (!a.input)
		return vms_tool_usage_error(&t, "--input FILE is required ('-' for stdin)");
	if (argc - first > 1)
		return vms_tool_usage_error(&t, "more than one OUTPUT given ('%s')", argv[first + 1]);
	return run_recv(&t, &a, argc > first ? argv[first] : "-");
}
