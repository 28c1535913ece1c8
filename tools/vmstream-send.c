/* SPDX-License-Identifier: MIT */
/*
 * vmstream-send: read device state (a file, or stdin) and write it as a
 * vmstream stream (FORMAT.md) to a file or stdout.
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

enum { OPT_CHUNK_SIZE = VMS_OPT_TOOL_BASE };

struct send_args {
	const char *output;
	uint32_t chunk_size;
};

static const struct vms_tool_opt send_opts[] = {
	{ "output", required_argument, 'o', "FILE",
	  "write the stream to FILE ('-' = stdout); required" },
	{ "chunk-size", required_argument, OPT_CHUNK_SIZE, "SIZE",
	  "bytes per record, 4K..16M (default 1M; binary K/M/G)" },
	VMS_TOOL_OPT_FORCE,
	VMS_TOOL_OPT_JSON,
	VMS_TOOL_OPT_PROGRESS,
	VMS_TOOL_OPT_NO_PROGRESS,
	VMS_TOOL_OPT_QUIET,
	VMS_TOOL_OPT_HELP,
	VMS_TOOL_OPT_VERSION,
	VMS_TOOL_OPT_END,
};

static int send_opt(struct vms_tool *t, void *ctx, int key, const char *arg)
{
	struct send_args *a = ctx;
	char why[160];
	uint64_t v;

	switch (key) {
	case 'o':
		if (!*arg)
			return vms_tool_usage_error(t, "--output needs a file name or '-'");
		a->output = arg;
		return 0;
	case OPT_CHUNK_SIZE:
		if (vms_tool_parse_size(arg, VMS_CHUNK_MIN, VMS_CHUNK_MAX, &v, why, sizeof(why)))
			return vms_tool_usage_error(t, "--chunk-size %s", why);
		a->chunk_size = (uint32_t)v;
		return 0;
	default:
		return vms_tool_usage_error(t, "unhandled option");
	}
}

struct input {
	const char *path;
	int fd;
	uint64_t size;       /* UINT64_MAX = unknown */
	char name[VMS_NAME_MAX + 1];
};

static int input_open(struct vms_tool *t, struct input *in, const char *path)
{
	struct stat st;
	const char *base;
	size_t len;

	in->path = path;
	in->size = UINT64_MAX;
	if (strcmp(path, "-") == 0) {
		in->fd = STDIN_FILENO;
		snprintf(in->name, sizeof(in->name), "stdin");
	} else {
		in->fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
		if (in->fd < 0)
			return vms_tool_fail(t, VMS_EIO, "opening input '%s': %s", path,
					     strerror(errno));
		/* The device is named after the file: basename, trailing '/' dropped. */
		len = strlen(path);
		while (len > 1 && path[len - 1] == '/')
			len--;
		base = memrchr(path, '/', len);
		base = base && len > 1 ? base + 1 : path;
		len -= (size_t)(base - path);
		if (len > VMS_NAME_MAX)
			len = VMS_NAME_MAX;
		memcpy(in->name, base, len);
		in->name[len] = '\0';
	}
	if (fstat(in->fd, &st) != 0)
		return vms_tool_fail(t, VMS_EIO, "examining input '%s': %s",
				     vms_tool_path_name(path, false), strerror(errno));
	if (S_ISDIR(st.st_mode))
		return vms_tool_fail(t, VMS_EIO, "input '%s' is a directory", path);
	if (S_ISREG(st.st_mode)) {
		off_t at = lseek(in->fd, 0, SEEK_CUR);

		if (at >= 0 && at <= st.st_size)
			in->size = (uint64_t)(st.st_size - at);
	} else if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(in->fd, 0, SEEK_END);

		if (end >= 0 && lseek(in->fd, 0, SEEK_SET) == 0)
			in->size = (uint64_t)end;
	}
	(void)posix_fadvise(in->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
}

/* Fill buf completely unless the input ends: full chunks make full records.
 * Returns bytes read, or -errno. */
static long read_full(int fd, uint8_t *buf, size_t room, bool *eof)
{
	size_t got = 0;

	while (got < room) {
		ssize_t r = read(fd, buf + got, room - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0) {
			*eof = true;
			break;
		}
		got += (size_t)r;
	}
	return (long)got;
}

struct send_run {
	struct vms_tool *t;
	struct input in;
	struct vms_output out;
	struct vms_progress prog;
	struct vms_writer *w;
	uint64_t bytes_in;
	double t0;
};

/* Stream the whole input as device 0. */
static int pump(struct send_run *s, const struct send_args *a)
{
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc desc = VMS_DEVICE_DESC_INIT;
	struct vms_tool *t = s->t;
	uint32_t dev;
	bool eof = false;
	int err;

	wo.chunk_size = a->chunk_size;
	wo.size_hint = s->in.size;
	wo.progress = vms_progress_cb;
	wo.progress_user = &s->prog;
	err = vms_writer_open_fd(&s->w, s->out.fd, &wo);
	if (err)
		return vms_tool_fail_lib(t, err);
	desc.kind = VMS_DEVKIND_BLOB;
	desc.name = s->in.name;
	desc.size_hint = s->in.size;
	err = vms_writer_begin_device(s->w, &desc, &dev);
	if (err)
		return vms_tool_fail_lib(t, err);

	while (!eof) {
		void *buf;
		size_t room;
		long got;

		err = vms_writer_acquire(s->w, dev, &buf, &room);
		if (err)
			return vms_tool_fail_lib(t, err);
		got = read_full(s->in.fd, buf, room, &eof);
		if (got < 0) {
			char why[256];

			snprintf(why, sizeof(why), "reading input '%s' at byte %llu: %s",
				 vms_tool_path_name(s->in.path, false),
				 (unsigned long long)s->bytes_in, strerror((int)-got));
			/* Tell the reader why the stream ends here. */
			(void)vms_writer_abort(s->w, VMS_EIO, why);
			return vms_tool_fail(t, VMS_EIO, "%s; stream aborted", why);
		}
		s->bytes_in += (uint64_t)got;
		err = vms_writer_commit(s->w, dev, (size_t)got);
		if (err)
			return vms_tool_fail_lib(t, err);
	}
	err = vms_writer_end_device(s->w, dev);
	if (err)
		return vms_tool_fail_lib(t, err);
	err = vms_writer_finish(s->w);
	if (err)
		return vms_tool_fail_lib(t, err);
	return vms_output_commit(t, &s->out);
}

static int run_send(struct vms_tool *t, const struct send_args *a, const char *input)
{
	struct send_run s = { .t = t, .in = { .fd = -1 }, .out = { .fd = -1 } };
	struct vms_stats st = { .size = sizeof(st) };
	struct vms_summary sum = { .bytes_key = "bytes_in" };

	s.t0 = vms_tool_now();
	vms_tool_signals_init(t);
	if (input_open(t, &s.in, input) == 0 &&
	    vms_output_open(t, &s.out, a->output, t->force) == 0) {
		vms_progress_init(&s.prog, t, s.in.size);
		pump(&s, a);
		vms_progress_end(&s.prog);
	}
	if (t->err)
		vms_output_discard(&s.out);
	if (s.w)
		vms_writer_stats(s.w, &st);
	sum.bytes = s.bytes_in;
	sum.wire_bytes = st.wire_bytes;
	sum.records = st.records;
	sum.seconds = vms_tool_now() - s.t0;
	sum.device = s.in.name[0] ? s.in.name : NULL;
	if (!t->err && s.prog.on) {
		char a1[32], a2[32], a3[32];

		fprintf(stderr, "%s: sent %s in %.2f s (%s/s) as %llu records, %s of stream to %s\n",
			t->prog, vms_tool_human_bytes(sum.bytes, a1, sizeof(a1)), sum.seconds,
			vms_tool_human_bytes(sum.seconds > 0 ? (uint64_t)((double)sum.bytes / sum.seconds)
							     : 0, a2, sizeof(a2)),
			(unsigned long long)sum.records,
			vms_tool_human_bytes(sum.wire_bytes, a3, sizeof(a3)),
			vms_tool_path_name(a->output, true));
	}
	vms_writer_free(s.w);
	if (s.in.fd > STDERR_FILENO)
		close(s.in.fd);
	vms_tool_write_summary(t, &sum);
	return vms_tool_report(t);
}

int main(int argc, char **argv)
{
	struct vms_tool t = {
		.prog = "vmstream-send",
		.synopsis = "[OPTIONS] --output FILE [INPUT]",
		.summary = "Write INPUT (a file, or stdin if '-' or absent) as a verified vmstream "
			   "stream.",
		.details = "The stream holds one device named after INPUT (\"stdin\" for stdin).\n"
			   "A stream FILE is written under a temporary name in its directory,\n"
			   "synced and renamed when complete; an existing regular FILE is only\n"
			   "replaced with --force. Devices and FIFOs (/dev/null) are written\n"
			   "in place. If reading INPUT fails, the stream gets an ABORT record.",
		.opts = send_opts,
	};
	struct send_args a = { 0 };
	int first, rc;

	rc = vms_tool_parse(&t, argc, argv, send_opt, &a, &first);
	if (rc >= 0)
		return rc;
	if (!a.output)
		return vms_tool_usage_error(&t, "--output FILE is required ('-' for stdout)");
	if (argc - first > 1)
		return vms_tool_usage_error(&t, "more than one INPUT given ('%s')", argv[first + 1]);
	return run_send(&t, &a, argc > first ? argv[first] : "-");
}
