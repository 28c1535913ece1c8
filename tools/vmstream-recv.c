/* SPDX-License-Identifier: MIT */
/*
 * vmstream-recv: read a vmstream stream, verify every record, and write the
 * device's bytes to a file or stdout. A file output appears only once the
 * whole stream verified; on any failure there is no output file.
 *
 * Device mode (--device SPEC, repeatable): load the stream's devices into
 * VFIO or simulated devices with vms_migrate_recv() (all by name, or all by
 * position when the first stream device's name is not a destination's); each is validated (RESUMING -> STOP) only after its DEVICE_END
 * verified, and the sender is told every device's result.
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
	OPT_DEVICE,
};

struct recv_args {
	const char *input;       /* file mode */
	const char *listen;      /* network mode */
	bool allow_plaintext;
	int accept_timeout_ms;   /* -1 = forever */
	const char *port_file;
	char host[VMS_ADDR_HOST_MAX + 1];
	uint16_t port;
	struct vms_tool_devset ds;  /* device mode */
};

static const struct vms_tool_opt recv_opts[] = {
	{ "input", required_argument, 'i', "FILE",
	  "file mode: read the stream from FILE ('-' = stdin)" },
	{ "listen", required_argument, OPT_LISTEN, "[HOST:]PORT",
	  "network mode: accept one session from vmstream-send --to on HOST:PORT "
	  "([IPV6]:PORT; no HOST = all addresses; PORT 0 = any free port)" },
	{ "device", required_argument, OPT_DEVICE, "SPEC",
	  "load the stream's devices into devices instead of writing OUTPUT; "
	  "repeatable. SPEC is vfio:PATH[,name=NAME] or sim:KEY=VALUE,... (as for "
	  "vmstream-send; a sim must have the source's size, profile and seed). "
	  "Matched all by name, or all by position when the first stream device's "
	  "name is no destination device's; a partial match is refused (exit 4)" },
	{ "key-file", required_argument, VMS_OPT_KEY_FILE, "FILE",
	  "file mode: key of an encrypted stream (64 hex digits, mode 0600)" },
	VMS_TOOL_OPT_THREADS,
	VMS_TOOL_OPT_MEMORY,
	VMS_TOOL_OPTS_NET,
	{ "allow-plaintext", no_argument, OPT_ALLOW_PLAINTEXT, NULL,
	  "network: accept an authenticated session whose records are not encrypted "
	  "(they are then only checksummed)" },
	{ "accept-timeout", required_argument, OPT_ACCEPT_TIMEOUT, "SECONDS",
	  "network: give up if no sender connects within SECONDS (default: wait forever)" },
	{ "port-file", required_argument, OPT_PORT_FILE, "FILE",
	  "network: once listening, write the port number to FILE (atomically)" },
	VMS_TOOL_OPTS_TAIL,
};

static int recv_opt(struct vms_tool *t, void *ctx, int key, const char *arg)
{
	struct recv_args *a = ctx;
	char why[160];

	switch (key) {
	case 'i':
		return vms_tool_opt_file(t, "--input", arg, &a->input);
	case OPT_LISTEN:
		return vms_tool_opt_addr(t, "--listen", arg, VMS_ADDR_LISTEN, a->host,
					 sizeof(a->host), &a->port, &a->listen);
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
	case OPT_DEVICE:
		return vms_tool_device_add(t, &a->ds, arg);
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
	/* device mode */
	struct vms_tool_devset *ds;
	bool devmode;
	struct vms_migrate_dev_report *dr;
	struct vms_migrate_report rep;
	bool have_report;
	/* Which destination device each stream device went to, in stream
	 * order, learnt by watching the devices leave RUNNING (watch_devices). */
	int *slot_of;          /* stream index -> index in ds, -1 = unknown */
	bool *seen;            /* per destination device */
	unsigned nseen;
};

static int input_open(struct vms_tool *t, struct recv_run *rr, const char *path)
{
	struct stat st;

	if (strcmp(path, "-") == 0 && isatty(STDIN_FILENO) == 1)
		return vms_tool_fail(t, VMS_EINVAL,
				     "refusing to read a stream from a terminal; "
				     "redirect stdin or name an input file");
	return vms_tool_open_input(t, path, "input ", &rr->in_fd, &st);
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
	if (err) /* bind/listen: address in use, no such address */
		return vms_tool_fail_net(t, err);
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
	if (err)
		return vms_tool_fail_net(t, err);
	snprintf(rr->peer, sizeof(rr->peer), "%s", vms_reader_peer(rr->r));
	/* Time and rate count from the session's start, not the wait for it. */
	rr->t0 = vms_tool_now();
	return 0;
}

/* Once the reader is open: its preamble, and the session's engine and lanes
 * on the progress line. */
static void show_session(struct recv_run *rr)
{
	if (rr->net)
		rr->prog.engine = vms_reader_engine(rr->r);
	rr->info.size = sizeof(rr->info);
	if (vms_reader_info(rr->r, &rr->info) == 0) {
		rr->have_info = true;
		if (rr->net)
			rr->prog.lanes = rr->info.lanes;
	}
}

static int pump(struct recv_run *rr)
{
	struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
	struct vms_tool *t = rr->t;
	struct vms_event ev = VMS_EVENT_INIT;
	int rc;

	ro.progress = vms_progress_cb;
	ro.progress_user = &rr->prog;
	ro.threads = t->sh.threads;
	ro.memory = t->sh.memory;
	if (open_reader(rr, &ro))
		return t->err;
	vms_progress_init(&rr->prog, t, UINT64_MAX);
	show_session(rr);
	if (rr->have_info)
		rr->prog.total = rr->info.size_hint;
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
		vms_tool_fail_net(t, rc);
		/* The sender does not know the data arrived, so it reports a
		 * failure; keep "OUTPUT exists only after exit 0" true. */
		if (!rr->out.in_place)
			unlink(rr->out.path);
		return t->err;
	}
	return 0;
}

/* ---- device mode ---------------------------------------------------------- */

/* vms_migrate_recv() reports devices in stream order without saying which
 * destination device each went to. It takes a destination device out of
 * RUNNING (to RESUMING) when it handles that device's DEVICE_BEGIN, one
 * record at a time, and the reader's progress callback runs on the same
 * thread once per record delivered: so between two callbacks at most one
 * device can have left RUNNING, and the order in which they do is the
 * stream order. */
static void watch_devices(struct recv_run *rr)
{
	for (unsigned i = 0; i < rr->ds->n && rr->nseen < rr->ds->n; i++) {
		uint32_t st;

		if (rr->seen[i] || vms_device_state(rr->ds->devs[i], &st) != 0 ||
		    st == VMS_DEV_RUNNING)
			continue;
		rr->seen[i] = true;
		rr->slot_of[rr->nseen++] = (int)i;
	}
}

static void dev_progress(void *user, const struct vms_stats *st)
{
	struct recv_run *rr = user;

	watch_devices(rr);
	vms_progress_cb(&rr->prog, st);
}

static const char *stream_dev_name(const struct recv_run *rr, unsigned i)
{
	int slot = i < rr->ds->n ? rr->slot_of[i] : -1;

	return slot >= 0 ? rr->ds->dev[slot].name : NULL;
}

/* State of the destination device stream device i went to, or NULL. */
static const char *stream_dev_state(const struct recv_run *rr, unsigned i)
{
	int slot = i < rr->ds->n ? rr->slot_of[i] : -1;
	uint32_t st;

	if (slot < 0 || !rr->ds->devs || vms_device_state(rr->ds->devs[slot], &st) != 0)
		return NULL;
	return vms_dev_state_name(st);
}

/* Codec names the preamble declares ("1:zstd,..." -> "zstd,..."). */
static const char *codecs_declared(struct recv_run *rr)
{
	const char *p = rr->have_info && rr->info.codecs ? rr->info.codecs : "";
	size_t n = 0;

	rr->compress[0] = '\0';
	while (*p && n + 1 < sizeof(rr->compress)) {
		const char *colon = strchr(p, ':'), *comma;

		if (!colon)
			break;
		p = colon + 1;
		comma = strchr(p, ',');
		snprintf(rr->compress + n, sizeof(rr->compress) - n, "%s%.*s", n ? "," : "",
			 (int)(comma ? (size_t)(comma - p) : strlen(p)), p);
		n = strlen(rr->compress);
		if (!comma)
			break;
		p = comma + 1;
	}
	return n ? rr->compress : "none";
}

static int migrate_in(struct recv_run *rr)
{
	struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
	struct vms_tool *t = rr->t;
	unsigned n = rr->ds->n;
	int err;

	ro.progress = dev_progress;
	ro.progress_user = rr;
	ro.threads = t->sh.threads;
	ro.memory = t->sh.memory;
	/* n matched devices, and the one the stream may carry beyond them (the
	 * load stops at the first device without a match) */
	rr->dr = calloc(n + 1, sizeof(*rr->dr));
	rr->slot_of = malloc(n * sizeof(*rr->slot_of));
	rr->seen = calloc(n, sizeof(*rr->seen));
	if (!rr->dr || !rr->slot_of || !rr->seen)
		return vms_tool_fail(t, VMS_ENOMEM, "out of memory");
	for (unsigned i = 0; i < n; i++)
		rr->slot_of[i] = -1;
	/* Devices before the stream: a bad spec or a missing device fails
	 * before anything is read or accepted. */
	if (vms_tool_devices_open(t, rr->ds))
		return t->err;
	vms_progress_init(&rr->prog, t, UINT64_MAX);
	if (open_reader(rr, &ro))
		return t->err;
	show_session(rr);
	rr->rep.size = sizeof(rr->rep);
	rr->rep.devs = rr->dr;
	rr->rep.devs_cap = n + 1;
	err = vms_migrate_recv(rr->r, rr->ds->devs, n, NULL, &rr->rep);
	/* vms_migrate_recv() told the sender the outcome itself. */
	rr->acked = true;
	rr->have_report = true;
	watch_devices(rr);
	rr->sink.pos += vms_tool_report_bytes(&rr->rep);
	if (err)
		return vms_tool_fail_lib(t, err);
	for (unsigned i = 0; i < n; i++)
		if (!rr->seen[i])
			vms_tool_warn(t, "device %s: the stream has no state for it; it was not "
					 "loaded", rr->ds->dev[i].name);
	return 0;
}

static void json_devices(struct vms_json *j, void *user)
{
	struct recv_run *rr = user;

	vms_json_arr_begin(j, "devices");
	for (unsigned i = 0; rr->have_report && i < rr->rep.ndev; i++) {
		const struct vms_migrate_dev_report *d = &rr->dr[i];

		vms_json_obj_begin(j, NULL);
		vms_json_u64(j, "index", i);
		vms_json_str(j, "name", stream_dev_name(rr, i));
		vms_json_dev_bytes(j, d);
		vms_json_str(j, "result", d->result ? vms_errname(d->result) : "ok");
		/* STOP = loaded and validated; RUNNING = reset after a failure */
		vms_json_str(j, "state", stream_dev_state(rr, i));
		vms_json_obj_end(j);
	}
	vms_json_arr_end(j);
	/* destination devices the stream did not carry */
	vms_json_arr_begin(j, "not_loaded");
	for (unsigned i = 0; rr->have_report && i < rr->ds->n; i++)
		if (!rr->seen[i])
			vms_json_str(j, NULL, rr->ds->dev[i].name);
	vms_json_arr_end(j);
}

static void print_device_lines(struct recv_run *rr)
{
	for (unsigned i = 0; i < rr->rep.ndev; i++) {
		const struct vms_migrate_dev_report *d = &rr->dr[i];
		const char *name = stream_dev_name(rr, i);
		char b1[32], b2[32];

		fprintf(stderr, "%s: device %s: loaded %s (precopy %s), %s\n", rr->t->prog,
			name ? name : "?",
			vms_tool_human_bytes(d->precopy_bytes + d->stopcopy_bytes, b1, sizeof(b1)),
			vms_tool_human_bytes(d->precopy_bytes, b2, sizeof(b2)),
			d->result ? vms_errname(d->result) : "validated");
	}
}

/* " from PEER, N lanes, ENGINE" in network mode, else "". */
static const char *from_peer(const struct recv_run *rr, const struct vms_summary *sum,
			     char *buf, size_t len)
{
	char lanes[64];

	buf[0] = '\0';
	if (rr->net)
		snprintf(buf, len, " from %s, %s", rr->peer,
			 vms_summary_lanes(sum, lanes, sizeof(lanes)));
	return buf;
}

static void print_dev_verdict(struct recv_run *rr, const struct vms_summary *sum)
{
	char b1[32], ratio[32], from[300];
	unsigned n = rr->rep.ndev;

	vms_summary_ratio(sum, ratio, sizeof(ratio));
	from_peer(rr, sum, from, sizeof(from));
	fprintf(stderr, "%s: OK: %u device%s loaded and validated (%s) in %.2f s%s%s, %s%s\n",
		rr->t->prog, n, n == 1 ? "" : "s", vms_tool_human_bytes(sum->bytes, b1, sizeof(b1)),
		sum->seconds, from, ratio, sum->cipher ? sum->cipher : "none",
		rr->net ? ", acknowledged" : "");
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
	char b1[32], b2[32], ratio[32], from[300];
	double rate = vms_summary_rate(sum);

	vms_summary_ratio(sum, ratio, sizeof(ratio));
	from_peer(rr, sum, from, sizeof(from));
	fprintf(stderr,
		"%s: OK: %s received and verified in %.2f s (%s/s)%s%s, %s, device '%s', digest "
		"%016llx, written to %s%s\n",
		rr->t->prog, vms_tool_human_bytes(sum->bytes, b1, sizeof(b1)), sum->seconds,
		vms_tool_human_bytes((uint64_t)rate, b2, sizeof(b2)), from, ratio,
		sum->cipher ? sum->cipher : "none", rr->device, (unsigned long long)rr->digest,
		vms_tool_path_name(output, true), rr->net ? ", acknowledged" : "");
}

static int run_recv(struct vms_tool *t, void *args, const char *output)
{
	struct recv_args *a = args;
	struct recv_run rr = { .t = t, .a = a, .in_fd = -1, .out = { .fd = -1 } };
	struct vms_stats st = { .size = sizeof(st) };
	struct vms_summary sum = { .bytes_key = "bytes_out", .acknowledged = -1 };

	rr.t0 = vms_tool_now();
	rr.net = a->listen != NULL;
	rr.ds = &a->ds;
	rr.devmode = a->ds.n > 0;
	vms_tool_signals_init(t);
	rr.sink.t = t;
	rr.sink.out = &rr.out;
	if (vms_tool_insecure_remote(t, rr.net, a->listen, VMS_ADDR_LISTEN))
		vms_tool_warn(t, "--insecure: accepting sessions on %s that are neither "
				 "authenticated nor encrypted", a->listen);
	if (rr.devmode) {
		migrate_in(&rr);
		vms_progress_end(&rr.prog);
		if (rr.have_report && !t->quiet && (t->verbose || (t->err && rr.prog.tty)))
			print_device_lines(&rr);
	} else if (vms_output_open(t, &rr.out, output, t->force) == 0) {
		/* Output first: an existing output is refused before reading a
		 * byte. */
		pump(&rr);
		vms_progress_end(&rr.prog);
	}
	if (t->err && !rr.devmode)
		vms_output_discard(&rr.out);
	/* Tell the sender why (its vms_writer_finish() then fails with
	 * VMS_EPEERABORT and this reason instead of waiting for a timeout). */
	if (t->err && rr.net && rr.r && !rr.acked)
		(void)vms_reader_ack(rr.r, t->err, t->msg);
	if (rr.r)
		vms_reader_stats(rr.r, &st);
	vms_summary_set_stats(&sum, rr.net, &st, rr.t0);
	sum.bytes = rr.sink.pos;
	sum.device = rr.devices ? rr.device : NULL;
	sum.have_digest = rr.have_digest && !t->err;
	sum.digest = rr.digest;
	sum.lanes = rr.have_info ? rr.info.lanes : 0;
	sum.engine = rr.r ? vms_reader_engine(rr.r) : NULL;
	sum.cipher = rr.have_info ? vms_cipher_name(rr.info.cipher) : NULL;
	sum.compress = !rr.r ? NULL : rr.devmode ? codecs_declared(&rr) : codecs_seen(&rr);
	sum.peer = rr.net && rr.peer[0] ? rr.peer : NULL;
	sum.address = a->listen;
	if (rr.devmode) {
		sum.extra = json_devices;
		sum.extra_user = &rr;
	}
	if (vms_tool_verdict_wanted(t, &rr.prog)) {
		if (rr.devmode)
			print_dev_verdict(&rr, &sum);
		else
			print_verdict(&rr, &sum, output);
	}
	vms_reader_free(rr.r);
	vms_listener_free(rr.l);
	if (rr.in_fd > STDERR_FILENO)
		close(rr.in_fd);
	vms_tool_write_summary(t, &sum);
	vms_tool_devices_free(rr.ds);
	free(rr.dr);
	free(rr.slot_of);
	free(rr.seen);
	return vms_tool_report(t);
}

/* Option combinations that depend on the mode. */
static int check_usage(struct vms_tool *t, void *args)
{
	struct recv_args *a = args;
	int rc;

	if (a->input && a->listen)
		return vms_tool_usage_error(t, "--input and --listen exclude each other");
	if (!a->input && !a->listen)
		return vms_tool_usage_error(t, "--input FILE is required ('-' for stdin), or --listen "
					       "[HOST:]PORT for network mode");
	rc = vms_tool_check_net_usage(t, a->listen != NULL);
	if (rc)
		return rc;
	if (!a->listen && (a->allow_plaintext || a->accept_timeout_ms >= 0 || a->port_file))
		return vms_tool_usage_error(t, "%s is a network option (use it with --listen)",
					    a->allow_plaintext ? "--allow-plaintext"
					    : a->port_file ? "--port-file" : "--accept-timeout");
	if (a->ds.n && t->force)
		return vms_tool_usage_error(t, "--force applies to an OUTPUT file, not to --device");
	return vms_tool_devices_check(t, &a->ds);
}

int main(int argc, char **argv)
{
	struct vms_tool t = {
		.prog = "vmstream-recv",
		.synopsis = "[OPTIONS] (--input FILE | --listen [HOST:]PORT) [OUTPUT | --device SPEC...]",
		.summary = "Verify a vmstream stream and write its device's bytes to OUTPUT "
			   "(default '-', stdout), or load its devices.",
		.details =
			"Without --device the stream must carry exactly one device. Every\n"
			"record is verified before its bytes are written. A file OUTPUT is\n"
			"written under a temporary name in its directory (zero blocks left as\n"
			"holes), synced, and renamed into place only after the whole stream\n"
			"verified; on any failure, or SIGINT/SIGTERM/SIGHUP, no OUTPUT file is\n"
			"left. An existing regular OUTPUT is refused (before reading) unless\n"
			"--force. Devices and FIFOs (/dev/null) are written in place.\n"
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
			"Device mode (--device SPEC, repeatable, instead of OUTPUT): loads the\n"
			"stream's devices (from vmstream-send --device) into VFIO or simulated\n"
			"devices, SPEC as for vmstream-send (a sim destination needs the\n"
			"source's size, profile and seed). Stream devices are matched all by\n"
			"name, or all by position when the first stream device's name is no\n"
			"destination device's (a partial match is refused). Each device is written in RESUMING and validated\n"
			"(RESUMING -> STOP) only after its DEVICE_END verified; on any failure\n"
			"the devices being loaded are reset and the sender gets the reason.\n"
			"A stream device without a destination device is VMS_EDEVICE (exit 4),\n"
			"a device that rejects its state VMS_EDEVIO (exit 8); a destination\n"
			"device the stream does not carry is left alone (WARNING). The --json\n"
			"summary gains a \"devices\" array in stream order (index, name,\n"
			"precopy_bytes, stopcopy_bytes, bytes, result, state) and \"not_loaded\".\n"
			"\n"
			"A progress line and a final verdict are shown when stderr is a terminal.",
		.opts = recv_opts,
	};
	static const struct vms_tool_main m = {
		.opt_fn = recv_opt,
		.check = check_usage,
		.run = run_recv,
		.operand = "OUTPUT",
		.role = "output",
	};
	struct recv_args a = { .accept_timeout_ms = -1 };

	return vms_tool_main(&t, argc, argv, &m, &a, &a.ds);
}
