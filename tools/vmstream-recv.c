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

enum {
	OPT_LISTEN = VMS_OPT_TOOL_BASE,
	OPT_ALLOW_PLAINTEXT,
	OPT_ACCEPT_TIMEOUT,
	OPT_PORT_FILE,
};

struct recv_args {
	const char *input;       /* file mode */
	const char *listen;      /* network mode */
	bool allow_plaintext;
	int accept_timeout_ms;   /* -1 = forever */
	const char *port_file;
	char host[256];
	unsigned port;
};

static const struct vms_tool_opt recv_opts[] = {
	{ "input", required_argument, 'i', "FILE",
	  "file mode: read the stream from FILE ('-' = stdin)" },
	{ "listen", required_argument, OPT_LISTEN, "[HOST:]PORT",
	  "network mode: accept one session from vmstream-send --to on HOST:PORT "
	  "([IPV6]:PORT; no HOST = all addresses; PORT 0 = any free port)" },
	{ "key-file", required_argument, VMS_OPT_KEY_FILE, "FILE",
	  "file mode: key of an encrypted stream (64 hex digits, mode 0600)" },
	VMS_TOOL_OPT_THREADS,
	VMS_TOOL_OPT_MEMORY,
	VMS_TOOL_OPT_PSK_FILE,
	VMS_TOOL_OPT_PSK_IDENTITY,
	VMS_TOOL_OPT_CERT,
	VMS_TOOL_OPT_TLS_KEY,
	VMS_TOOL_OPT_CA,
	VMS_TOOL_OPT_IO,
	VMS_TOOL_OPT_CONNECT_TIMEOUT,
	VMS_TOOL_OPT_IDLE_TIMEOUT,
	VMS_TOOL_OPT_INSECURE,
	{ "allow-plaintext", no_argument, OPT_ALLOW_PLAINTEXT, NULL,
	  "network: accept an authenticated session whose records are not encrypted "
	  "(they are then only checksummed)" },
	{ "accept-timeout", required_argument, OPT_ACCEPT_TIMEOUT, "SECONDS",
	  "network: give up if no sender connects within SECONDS (default: wait forever)" },
	{ "port-file", required_argument, OPT_PORT_FILE, "FILE",
	  "network: once listening, write the port number to FILE (atomically)" },
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
	char why[160];

	switch (key) {
	case 'i':
		if (!*arg)
			return vms_tool_usage_error(t, "--input needs a file name or '-'");
		a->input = arg;
		return 0;
	case OPT_LISTEN:
		if (vms_tool_split_addr(arg, false, a->host, sizeof(a->host), &a->port, why,
					sizeof(why)))
			return vms_tool_usage_error(t, "--listen %s", why);
		a->listen = arg;
		return 0;
	case OPT_ALLOW_PLAINTEXT:
		a->allow_plaintext = true;
		return 0;
	case OPT_ACCEPT_TIMEOUT:
		if (vms_tool_parse_seconds(arg, 1, INT_MAX, &a->accept_timeout_ms, why, sizeof(why)))
			return vms_tool_usage_error(t, "--accept-timeout %s", why);
		return 0;
	case OPT_PORT_FILE:
		if (!*arg)
			return vms_tool_usage_error(t, "--port-file needs a file name");
		a->port_file = arg;
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
	const struct recv_args *a;
	bool net;
	int in_fd;
	struct vms_output out;
	struct vms_progress prog;
	struct vms_listener *l;
	struct vms_reader *r;
	struct vms_stream_info info;
	bool have_info;
	bool acked;
	struct sink sink;
	uint32_t devices;
	char device[VMS_NAME_MAX + 1];
	bool have_digest;
	uint64_t digest;
	bool codec_seen[256];
	char compress[96];
	char peer[256];
	double t0;
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
		rr->codec_seen[ev->codec & 0xff] = true;
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

/* Write the port number to FILE through a temporary name, so that a reader
 * polling for FILE never sees it half written. */
static int write_port_file(struct vms_tool *t, const char *path, int port)
{
	char tmp[PATH_MAX], line[16];
	int fd, n, err;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return vms_tool_fail(t, VMS_EIO, "--port-file '%s': path too long", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return vms_tool_fail(t, VMS_EIO, "creating port file '%s': %s", tmp, strerror(errno));
	n = snprintf(line, sizeof(line), "%d\n", port);
	err = vms_write_all(fd, line, (size_t)n);
	if (close(fd) != 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) != 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		return vms_tool_fail(t, VMS_EIO, "writing port file '%s': %s", path, strerror(-err));
	}
	return 0;
}

/* Open the reader: on the input file, or the first session accepted. */
static int open_reader(struct recv_run *rr, struct vms_reader_opts *ro)
{
	struct vms_tool *t = rr->t;
	const struct recv_args *a = rr->a;
	struct vms_net_opts no = VMS_NET_OPTS_INIT;
	uint8_t psk[VMS_KEY_LEN];
	uint8_t key[VMS_KEY_LEN];
	char shown[300];
	int err, port;

	if (!rr->net) {
		if (input_open(t, rr, a->input))
			return t->err;
		if (t->sh.key_file) {
			if (vms_tool_load_key(t, t->sh.key_file, key))
				return t->err;
			ro->key = key;
		}
		err = vms_reader_open_fd(&rr->r, rr->in_fd, ro);
		vms_wipe(key, sizeof(key));
		return err ? vms_tool_fail_lib(t, err) : 0;
	}
	if (vms_tool_net_opts(t, &no, psk))
		return t->err;
	if (a->allow_plaintext)
		no.flags |= VMS_NET_F_ALLOW_PLAINTEXT;
	err = vms_listen(&rr->l, a->listen, &no);
	vms_wipe(psk, sizeof(psk));
	if (err) {
		/* bind/listen failures (address in use, no such address) are
		 * network errors (exit 7). */
		if (err == VMS_EIO)
			err = VMS_ENET;
		return vms_tool_fail_lib(t, err);
	}
	port = vms_listener_port(rr->l);
	if (a->host[0] && strchr(a->host, ':'))
		snprintf(shown, sizeof(shown), "[%s]:%d", a->host, port);
	else
		snprintf(shown, sizeof(shown), "%s:%d", a->host[0] ? a->host : "*", port);
	/* Machine-readable: always printed when the port was chosen by the
	 * system, since nothing else tells it (unless --port-file). */
	if (!t->quiet || (a->port == 0 && !a->port_file))
		fprintf(stderr, "%s: listening on %s\n", t->prog, shown);
	if (a->port_file && write_port_file(t, a->port_file, port))
		return t->err;
	err = vms_accept(rr->l, &rr->r, ro, a->accept_timeout_ms);
	/* One session per run: stop listening now. */
	vms_listener_free(rr->l);
	rr->l = NULL;
	if (err) {
		if (err == VMS_EIO)
			err = VMS_ENET;
		return vms_tool_fail_lib(t, err);
	}
	snprintf(rr->peer, sizeof(rr->peer), "%s", vms_reader_peer(rr->r));
	/* Time and rate count from the session's start, not the wait for it. */
	rr->t0 = vms_tool_now();
	return 0;
}

static int pump(struct recv_run *rr)
{
	struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
	struct vms_tool *t = rr->t;
	struct vms_event ev;
	int rc;

	ro.progress = vms_progress_cb;
	ro.progress_user = &rr->prog;
	ro.threads = t->sh.threads;
	ro.memory = t->sh.memory;
	if (open_reader(rr, &ro))
		return t->err;
	vms_progress_init(&rr->prog, t, UINT64_MAX);
	if (rr->net)
		rr->prog.engine = vms_reader_engine(rr->r);
	rr->info.size = sizeof(rr->info);
	if (vms_reader_info(rr->r, &rr->info) == 0) {
		rr->have_info = true;
		rr->prog.total = rr->info.size_hint;
		if (rr->net)
			rr->prog.lanes = rr->info.lanes;
	}
	while ((rc = vms_reader_next(rr->r, &ev)) > 0) {
		rc = on_event(rr, &ev);
		if (rc)
			return rc;
	}
	if (rc < 0)
		return vms_tool_fail_lib(t, rc);
	if (rr->devices == 0)
		return vms_tool_fail(t, VMS_EDEVICE,
				     "stream carries no device; writing to a file takes exactly one");
	rc = sink_finish(&rr->sink);
	if (rc)
		return rc;
	rc = vms_output_commit(t, &rr->out);
	if (rc || !rr->net)
		return rc;
	/* Stored: only now tell the sender it may let go of the source. */
	rr->acked = true;
	rc = vms_reader_ack(rr->r, 0, NULL);
	if (rc) {
		vms_tool_fail_lib(t, rc == VMS_EIO ? VMS_ENET : rc);
		/* The sender does not know the data arrived, so it reports a
		 * failure; keep "OUTPUT exists only after exit 0" true. */
		if (!rr->out.in_place)
			unlink(rr->out.path);
		return t->err;
	}
	return 0;
}

/* What compression the stream used, from the codecs of its DATA records. */
static const char *codecs_seen(struct recv_run *rr)
{
	size_t n = 0;

	rr->compress[0] = '\0';
	for (unsigned id = 1; id < 256; id++) {
		const struct vms_stage *st;

		if (!rr->codec_seen[id])
			continue;
		st = vms_stage_find_id(VMS_STAGE_CODEC, id);
		snprintf(rr->compress + n, sizeof(rr->compress) - n, "%s%s", n ? "," : "",
			 st ? st->name : "?");
		n = strlen(rr->compress);
	}
	return n ? rr->compress : "none";
}

static void print_verdict(struct recv_run *rr, const struct vms_summary *sum,
			  const char *output)
{
	char b1[32], b2[32], ratio[32] = "", from[300] = "";
	double rate = sum->seconds > 0 ? (double)sum->bytes / sum->seconds : 0;

	if (sum->wire_bytes)
		snprintf(ratio, sizeof(ratio), ", ratio %.2f",
			 (double)sum->bytes / (double)sum->wire_bytes);
	if (rr->net)
		snprintf(from, sizeof(from), " from %s, %u lane%s, %s", rr->peer, sum->lanes,
			 sum->lanes == 1 ? "" : "s", sum->engine ? sum->engine : "?");
	fprintf(stderr,
		"%s: OK: %s received and verified in %.2f s (%s/s)%s%s, %s, device '%s', digest "
		"%016llx, written to %s%s\n",
		rr->t->prog, vms_tool_human_bytes(sum->bytes, b1, sizeof(b1)), sum->seconds,
		vms_tool_human_bytes((uint64_t)rate, b2, sizeof(b2)), from, ratio,
		sum->cipher ? sum->cipher : "none", rr->device, (unsigned long long)rr->digest,
		vms_tool_path_name(output, true), rr->net ? ", acknowledged" : "");
}

static int run_recv(struct vms_tool *t, const struct recv_args *a, const char *output)
{
	struct recv_run rr = { .t = t, .a = a, .in_fd = -1, .out = { .fd = -1 } };
	struct vms_stats st = { .size = sizeof(st) };
	struct vms_summary sum = { .bytes_key = "bytes_out", .acknowledged = -1 };

	rr.t0 = vms_tool_now();
	rr.net = a->listen != NULL;
	vms_tool_signals_init(t);
	rr.sink.t = t;
	rr.sink.out = &rr.out;
	if (rr.net && !vms_tool_net_authenticated(t) && t->sh.insecure &&
	    !vms_tool_host_is_loopback(a->host))
		vms_tool_warn(t, "--insecure: accepting sessions on %s that are neither "
				 "authenticated nor encrypted", a->listen);
	/* Output first: an existing output is refused before reading a byte. */
	if (vms_output_open(t, &rr.out, output, t->force) == 0) {
		pump(&rr);
		vms_progress_end(&rr.prog);
	}
	if (t->err)
		vms_output_discard(&rr.out);
	/* Tell the sender why (its vms_writer_finish() then fails with
	 * VMS_EPEERABORT and this reason instead of waiting for a timeout). */
	if (t->err && rr.net && rr.r && !rr.acked)
		(void)vms_reader_ack(rr.r, t->err, t->msg);
	if (rr.r)
		vms_reader_stats(rr.r, &st);
	sum.mode = rr.net ? "net" : "file";
	sum.bytes = rr.sink.pos;
	sum.wire_bytes = st.wire_bytes;
	sum.records = st.records;
	sum.seconds = vms_tool_now() - rr.t0;
	sum.device = rr.devices ? rr.device : NULL;
	sum.have_digest = rr.have_digest && !t->err;
	sum.digest = rr.digest;
	sum.lanes = rr.have_info ? rr.info.lanes : 0;
	sum.engine = rr.r ? vms_reader_engine(rr.r) : NULL;
	sum.cipher = rr.have_info ? vms_tool_cipher_name(rr.info.cipher) : NULL;
	sum.compress = rr.r ? codecs_seen(&rr) : NULL;
	sum.peer = rr.net && rr.peer[0] ? rr.peer : NULL;
	sum.address = a->listen;
	if (!t->err && !t->quiet && (rr.prog.tty || t->progress == VMS_PROGRESS_ON))
		print_verdict(&rr, &sum, output);
	vms_reader_free(rr.r);
	vms_listener_free(rr.l);
	if (rr.in_fd > STDERR_FILENO)
		close(rr.in_fd);
	vms_tool_write_summary(t, &sum);
	return vms_tool_report(t);
}

int main(int argc, char **argv)
{
	struct vms_tool t = {
		.prog = "vmstream-recv",
		.synopsis = "[OPTIONS] (--input FILE | --listen [HOST:]PORT) [OUTPUT]",
		.summary = "Verify a vmstream stream and write its device's bytes to OUTPUT "
			   "(default '-', stdout).",
		.details =
			"The stream must carry exactly one device. Every record is verified\n"
			"before its bytes are written. A file OUTPUT is written under a\n"
			"temporary name in its directory (zero blocks left as holes), synced,\n"
			"and renamed into place only after the whole stream verified; on any\n"
			"failure, or SIGINT/SIGTERM/SIGHUP, no OUTPUT file is left. An\n"
			"existing regular OUTPUT is refused (before reading) unless --force.\n"
			"Devices and FIFOs (/dev/null) are written in place.\n"
			"\n"
			"File mode (--input): reads a stream file or pipe; --key-file for an\n"
			"encrypted stream.\n"
			"\n"
			"Network mode (--listen): accepts one session from vmstream-send --to,\n"
			"authenticated with --psk-file or --cert/--key/--ca (without them only\n"
			"loopback senders, unless --insecure). Encrypted records are required\n"
			"in an authenticated session unless --allow-plaintext. The sender is\n"
			"acknowledged only after OUTPUT was synced and renamed; on any failure\n"
			"the sender gets the reason. With port 0 the bound port is printed as\n"
			"'vmstream-recv: listening on HOST:PORT' (and written to --port-file).\n"
			"\n"
			"A progress line and a final verdict are shown when stderr is a terminal.",
		.opts = recv_opts,
	};
	struct recv_args a = { .accept_timeout_ms = -1 };
	int first, rc;

	rc = vms_tool_parse(&t, argc, argv, recv_opt, &a, &first);
	if (rc >= 0)
		return rc;
	if (a.input && a.listen)
		return vms_tool_usage_error(&t, "--input and --listen exclude each other");
	if (!a.input && !a.listen)
		return vms_tool_usage_error(&t, "--input FILE is required ('-' for stdin), or --listen "
						"[HOST:]PORT for network mode");
	rc = vms_tool_check_net_usage(&t, a.listen != NULL);
	if (rc)
		return rc;
	if (!a.listen && (a.allow_plaintext || a.accept_timeout_ms >= 0 || a.port_file))
		return vms_tool_usage_error(&t, "%s is a network option (use it with --listen)",
					    a.allow_plaintext ? "--allow-plaintext"
					    : a.port_file ? "--port-file" : "--accept-timeout");
	if (argc - first > 1)
		return vms_tool_usage_error(&t, "more than one OUTPUT given ('%s')", argv[first + 1]);
	return run_recv(&t, &a, argc > first ? argv[first] : "-");
}
