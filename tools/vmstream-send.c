/* SPDX-License-Identifier: MIT */
/*
 * vmstream-send: read device state (a file, or stdin) and write it as a
 * vmstream stream (FORMAT.md) to a file or stdout (file mode, --output), or
 * send it to vmstream-recv --listen over an authenticated network session
 * (network mode, --to). In network mode the exit status is 0 only once the
 * receiver acknowledged that it verified and stored the whole stream.
 *
 * Device mode (--device SPEC, repeatable): migrate VFIO or simulated devices
 * with vms_migrate_send(): precopy rounds, switchover, concurrent stop-copy,
 * and (network) the receiver's acknowledgement that every device loaded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "common.h"
#include "mapped_input.h"

enum {
	OPT_CHUNK_SIZE = VMS_OPT_TOOL_BASE,
	OPT_TO,
	OPT_COMPRESS,
	OPT_ENCRYPT,
	OPT_LANES,
	OPT_RATE_LIMIT,
	OPT_DEVICE,
	OPT_PRECOPY_ROUNDS,
	OPT_DOWNTIME_LIMIT,
	OPT_NO_PRECOPY,
};

#define DEFAULT_PRECOPY_ROUNDS 30
#define DEFAULT_DOWNTIME_MS 300

struct send_args {
	const char *output;     /* file mode */
	const char *to;         /* network mode */
	uint32_t chunk_size;
	const char *compress;   /* NULL = none */
	int cipher;             /* enum vms_cipher, -1 = default */
	uint32_t lanes;         /* 0 = not given (1) */
	uint64_t rate_limit;    /* 0 = none */
	bool rate_given;
	/* device mode */
	struct vms_tool_devset ds;
	uint32_t max_rounds;    /* 0 = not given */
	uint64_t downtime_ms;   /* 0 = not given */
	bool no_precopy;
};

static const struct vms_tool_opt send_opts[] = {
	{ "output", required_argument, 'o', "FILE",
	  "file mode: write the stream to FILE ('-' = stdout)" },
	{ "to", required_argument, OPT_TO, "HOST:PORT",
	  "network mode: send to 'vmstream-recv --listen' at HOST:PORT ([IPV6]:PORT)" },
	{ "device", required_argument, OPT_DEVICE, "SPEC",
	  "migrate a device instead of sending INPUT; repeatable. SPEC is "
	  "vfio:PATH[,name=NAME] or sim:KEY=VALUE,... (size, profile, dirty, seed, "
	  "precopy, p2p, fault, fault_at, slow, name); names default to the VFIO "
	  "path's basename, or dev0, dev1, ... by position" },
	{ "precopy-rounds", required_argument, OPT_PRECOPY_ROUNDS, "N",
	  "device mode: at most N precopy rounds, 1..100000 (default 30)" },
	{ "downtime-limit", required_argument, OPT_DOWNTIME_LIMIT, "MS",
	  "device mode: switch over once the estimated downtime is at most MS "
	  "milliseconds (default 300)" },
	{ "no-precopy", no_argument, OPT_NO_PRECOPY, NULL,
	  "device mode: no precopy rounds, even for devices that support them" },
	{ "chunk-size", required_argument, OPT_CHUNK_SIZE, "SIZE",
	  "bytes per record, 4K..16M (default 1M; binary K/M/G)" },
	{ "compress", required_argument, OPT_COMPRESS, "CODEC",
	  "none, zstd, zstd:LEVEL (-7..19) or auto (adaptive zstd that skips "
	  "incompressible data); default none" },
	{ "encrypt", required_argument, OPT_ENCRYPT, "CIPHER",
	  "none, aes-256-gcm or chacha20-poly1305. File mode: needs --key-file. "
	  "Network mode: default is the fastest cipher on this CPU when the session is "
	  "authenticated, else none; 'none' with authentication leaves records only "
	  "checksummed, not authenticated (the receiver must --allow-plaintext)" },
	{ "key-file", required_argument, VMS_OPT_KEY_FILE, "FILE",
	  "file mode: stream key, 64 hex digits, mode 0600 (openssl rand -hex 32); "
	  "without --encrypt it selects the fastest cipher" },
	VMS_TOOL_OPT_THREADS,
	VMS_TOOL_OPT_MEMORY,
	{ "lanes", required_argument, OPT_LANES, "N",
	  "network: TCP connections to stripe records over, 1..64 (default 1)" },
	{ "rate-limit", required_argument, OPT_RATE_LIMIT, "RATE",
	  "network: at most RATE stream bytes per second; binary suffixes "
	  "(200M = 200 MiB/s = 209715200 bytes/s)" },
	VMS_TOOL_OPTS_NET,
	VMS_TOOL_OPTS_TAIL,
};

static int send_opt(struct vms_tool *t, void *ctx, int key, const char *arg)
{
	struct send_args *a = ctx;
	char why[160];
	uint64_t v;
	int c;

	switch (key) {
	case 'o':
		return vms_tool_opt_file(t, "--output", arg, &a->output);
	case OPT_TO:
		return vms_tool_opt_addr(t, "--to", arg, 0, NULL, 0, NULL, &a->to);
	case OPT_CHUNK_SIZE:
		if (vms_tool_parse_size(arg, VMS_CHUNK_MIN, VMS_CHUNK_MAX, &v, why, sizeof(why)))
			return vms_tool_usage_error(t, "--chunk-size %s", why);
		a->chunk_size = (uint32_t)v;
		return 0;
	case OPT_COMPRESS:
		if (vms_compress_check(arg))
			return vms_tool_usage_error(t, "--compress %s", vms_last_error());
		a->compress = arg;
		return 0;
	case OPT_ENCRYPT:
		c = vms_cipher_from_name(arg);
		if (c < 0)
			return vms_tool_usage_error(t, "--encrypt '%s': expected none, aes-256-gcm or "
						       "chacha20-poly1305", arg);
		a->cipher = c;
		return 0;
	case OPT_LANES:
		if (vms_tool_parse_uint(arg, 1, 64, &v, why, sizeof(why)))
			return vms_tool_usage_error(t, "--lanes %s", why);
		a->lanes = (uint32_t)v;
		return 0;
	case OPT_RATE_LIMIT:
		if (vms_tool_parse_size(arg, 1024, UINT64_MAX, &v, why, sizeof(why)))
			return vms_tool_usage_error(t, "--rate-limit %s (bytes per second)", why);
		a->rate_limit = v;
		a->rate_given = true;
		return 0;
	case OPT_DEVICE:
		return vms_tool_device_add(t, &a->ds, arg);
	case OPT_PRECOPY_ROUNDS:
		if (vms_tool_parse_uint(arg, 1, 100000, &v, why, sizeof(why)))
			return vms_tool_usage_error(t, "--precopy-rounds %s", why);
		a->max_rounds = (uint32_t)v;
		return 0;
	case OPT_DOWNTIME_LIMIT:
		if (vms_tool_parse_uint(arg, 1, 3600000, &v, why, sizeof(why)))
			return vms_tool_usage_error(t, "--downtime-limit %s (milliseconds)", why);
		a->downtime_ms = v;
		return 0;
	case OPT_NO_PRECOPY:
		a->no_precopy = true;
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

/* The device is named after the file (basename, trailing '/' dropped), or
 * "stdin". */
static void input_name(struct input *in, const char *path)
{
	const char *base;
	size_t len;

	if (strcmp(path, "-") == 0) {
		snprintf(in->name, sizeof(in->name), "stdin");
		return;
	}
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

static int input_open(struct vms_tool *t, struct input *in, const char *path)
{
	struct stat st;
	int rc;

	in->path = path;
	in->size = UINT64_MAX;
	rc = vms_tool_open_input(t, path, "input ", &in->fd, &st);
	/* named once opened, also if it then turns out unusable (--json) */
	if (in->fd >= 0)
		input_name(in, path);
	if (rc)
		return rc;
	if (S_ISREG(st.st_mode)) {
		off_t at = lseek(in->fd, 0, SEEK_CUR);

		if (at >= 0 && at <= st.st_size)
			in->size = (uint64_t)(st.st_size - at);
	} else if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(in->fd, 0, SEEK_END);

		if (end >= 0 && lseek(in->fd, 0, SEEK_SET) == 0)
			in->size = (uint64_t)end;
	}
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

struct dev_digest {
	bool have;
	uint64_t digest;
};

struct send_run {
	struct vms_tool *t;
	const struct send_args *a;
	bool net;
	/* device mode */
	struct vms_tool_devset *ds;
	bool devmode;
	bool show_notes;        /* rounds, switchover: terminal or --verbose */
	pthread_mutex_t mu;     /* progress and notes (stop-copy runs threads) */
	struct vms_migrate_dev_report *dr;
	struct vms_migrate_report rep;
	bool have_report;
	struct dev_digest *dg;
	int mig_err;
	uint32_t cipher;
	struct input in;
	struct vms_output out;
	struct vms_progress prog;
	struct vms_writer *w;
	uint64_t bytes_in;
	uint64_t digest;
	bool have_digest;
	bool acknowledged;
	char peer[160];
	double t0;
};

/* Writer options both modes share; progress is set by the caller. */
static void writer_opts(const struct send_run *s, struct vms_writer_opts *wo)
{
	wo->chunk_size = s->a->chunk_size;
	wo->compress = s->a->compress;
	wo->cipher = s->cipher;
	wo->threads = s->t->sh.threads;
	wo->memory = s->t->sh.memory;
}

/* Open the writer: on the output file, or connected to the receiver. */
static int open_writer(struct send_run *s, struct vms_writer_opts *wo)
{
	struct vms_tool *t = s->t;
	const struct send_args *a = s->a;
	struct vms_net_opts no = VMS_NET_OPTS_INIT;
	uint8_t psk[VMS_KEY_LEN];
	uint8_t key[VMS_KEY_LEN];
	int err;

	if (!s->net) {
		if (vms_output_open(t, &s->out, a->output, t->force))
			return t->err;
		if (s->cipher != VMS_CIPHER_NONE) {
			if (vms_tool_load_key(t, t->sh.key_file, key))
				return t->err;
			wo->key = key;
		}
		err = vms_writer_open_fd(&s->w, s->out.fd, wo);
		vms_wipe(key, sizeof(key));
		return err ? vms_tool_fail_lib(t, err) : 0;
	}
	if (vms_tool_net_opts(t, &no, psk))
		return t->err;
	no.lanes = a->lanes ? a->lanes : 1;
	no.rate_limit = a->rate_limit;
	err = vms_writer_connect(&s->w, a->to, &no, wo);
	vms_wipe(psk, sizeof(psk));
	if (err)
		return vms_tool_fail_net(t, err);
	if (t->sh.psk_file)
		snprintf(s->peer, sizeof(s->peer), "psk:%s",
			 t->sh.psk_identity ? t->sh.psk_identity : "vmstream");
	else if (t->sh.cert)
		snprintf(s->peer, sizeof(s->peer), "x509");
	else
		snprintf(s->peer, sizeof(s->peer), "insecure");
	return 0;
}

/* Once the writer is open: the session's engine and lanes on the progress
 * line. */
static void show_session(struct send_run *s)
{
	if (s->net) {
		s->prog.engine = vms_writer_engine(s->w);
		s->prog.lanes = s->a->lanes ? s->a->lanes : 1;
	}
}

/* Stream the whole input as device 0. */
static int pump(struct send_run *s)
{
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc desc = VMS_DEVICE_DESC_INIT;
	struct vms_tool *t = s->t;
	uint32_t dev;
	bool eof = false, mapped = false, map;
	int err;

	/* A plain stream from a regular file: lend the mapped file to the
	 * writer instead of copying it (tools/mapped_input.c). Each chunk then
	 * costs a checksum and a send, both cheapest on one thread while the
	 * chunk is in its cache: "auto" threads means none there. */
	map = (!s->a->compress || strcmp(s->a->compress, "none") == 0) &&
	      s->cipher == VMS_CIPHER_NONE && vms_mapped_input_usable(s->in.fd, s->in.size);
	writer_opts(s, &wo);
	if (map && wo.threads == VMS_THREADS_AUTO)
		wo.threads = 0;
	wo.size_hint = s->in.size;
	wo.progress = vms_progress_cb;
	wo.progress_user = &s->prog;
	if (open_writer(s, &wo))
		return t->err;
	vms_progress_init(&s->prog, t, s->in.size);
	show_session(s);

	desc.kind = VMS_DEVKIND_BLOB;
	desc.name = s->in.name;
	desc.size_hint = s->in.size;
	err = vms_writer_begin_device(s->w, &desc, &dev);
	if (err)
		return vms_tool_fail_lib(t, err);

	if (map) {
		char what[300], why[400] = "";
		bool own = false;

		snprintf(what, sizeof(what), "'%s'", vms_tool_path_name(s->in.path, false));
		err = vms_mapped_input_send(s->w, dev, s->in.fd, s->in.size,
					    s->a->chunk_size ? s->a->chunk_size : VMS_CHUNK_DEFAULT,
					    what, VMS_EXIT_IO, &s->bytes_in, &own, why, sizeof(why));
		if (err && own) {
			(void)vms_writer_abort(s->w, err, why);
			return vms_tool_fail(t, err, "%s; stream aborted", why);
		}
		if (err == 1)
			err = 0; /* not mappable: read() below */
		else
			eof = mapped = true; /* done, or a library error reported below */
	}
	while (!err && !eof) {
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
	if (!err)
		err = vms_writer_end_device(s->w, dev);
	if (!err) {
		/* the digest the receiver verifies (DEVICE_END): XXH3-64 of the
		 * input, computed by the library as it went */
		uint64_t total;

		err = vms_writer_device_digest(s->w, dev, &total, &s->digest);
	}
	/* Network: returns 0 only after the receiver's acknowledgement. */
	if (!err)
		err = vms_writer_finish(s->w);
	if (err && mapped && vms_mapped_input_shrank(s->in.fd, s->in.size))
		/* a send from a page that vanished fails with EFAULT: say why */
		return vms_tool_fail(t, VMS_EIO, "input '%s' shrank while it was being sent; "
				     "stream not completed", vms_tool_path_name(s->in.path, false));
	if (err)
		return vms_tool_fail_lib(t, err);
	s->have_digest = true;
	if (s->net) {
		s->acknowledged = true;
		return 0;
	}
	return vms_output_commit(t, &s->out);
}

/* ---- device mode ---------------------------------------------------------- */

/* One note line on stderr; the progress line (if drawn) is erased first and
 * comes back with the next update. */
static void note(struct send_run *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct send_run *s, const char *fmt, ...)
{
	char buf[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&s->mu);
	vms_progress_end(&s->prog);
	fprintf(stderr, "%s: %s\n", s->t->prog, buf);
	pthread_mutex_unlock(&s->mu);
}

/* The writer's progress callback runs on whichever thread wrote: in
 * stop-copy, several at once. */
static void dev_progress(void *user, const struct vms_stats *st)
{
	struct send_run *s = user;

	pthread_mutex_lock(&s->mu);
	vms_progress_cb(&s->prog, st);
	pthread_mutex_unlock(&s->mu);
}

static uint32_t max_rounds(const struct send_args *a)
{
	return a->max_rounds ? a->max_rounds : DEFAULT_PRECOPY_ROUNDS;
}

static double downtime_limit(const struct send_args *a)
{
	return (double)(a->downtime_ms ? a->downtime_ms : DEFAULT_DOWNTIME_MS);
}

/* After each precopy round: show it, and decide. The policy is the
 * library's default one, made visible: switch over once the initial data is
 * out (again, after a device's REINIT) and the estimated downtime fits the
 * limit, or after the last allowed round. */
static int on_round(void *user, const struct vms_round_info *ri)
{
	struct send_run *s = user;
	int fits = ri->initial_bytes == 0 && ri->est_downtime_ms <= downtime_limit(s->a);
	int sw = fits || ri->round >= max_rounds(s->a);

	if (s->show_notes) {
		char b1[32], b2[32], b3[32], b4[32];

		note(s, "precopy round %u: %s in %.3f s, %s remaining, stop-copy %s at %s/s, "
			"estimated downtime %.2f ms%s",
		     ri->round, vms_tool_human_bytes(ri->round_bytes, b1, sizeof(b1)),
		     ri->round_seconds, vms_tool_human_bytes(ri->remaining_bytes, b2, sizeof(b2)),
		     vms_tool_human_bytes(ri->stop_copy_bytes, b3, sizeof(b3)),
		     vms_tool_human_bytes((uint64_t)ri->throughput, b4, sizeof(b4)),
		     ri->est_downtime_ms,
		     !sw ? (ri->reinits ? " (a device re-initialised: its initial data again)" : "")
		     : fits ? " -> switchover (within the limit)"
			    : " -> switchover (last round)");
	}
	return sw;
}

/* The VMM hooks. This tool has no VM: a VMM stops its vCPUs in stop_vm
 * (the start of the downtime) and resumes them in resume_vm (the migration
 * failed after the switchover, the source runs on). */
static int stop_vm(void *user)
{
	struct send_run *s = user;

	if (s->show_notes)
		note(s, "switchover: devices to STOP_COPY (a VMM stops the vCPUs here)");
	return 0;
}

static int resume_vm(void *user)
{
	struct send_run *s = user;

	if (s->show_notes)
		note(s, "resumed source: devices back to RUNNING (a VMM resumes the vCPUs here)");
	return 0;
}

static void print_device_lines(struct send_run *s)
{
	for (unsigned i = 0; i < s->rep.ndev; i++) {
		const struct vms_migrate_dev_report *d = &s->dr[i];
		char b1[32], b2[32], b3[32] = "none";

		if (d->est_stop_copy_bytes != UINT64_MAX)
			vms_tool_human_bytes(d->est_stop_copy_bytes, b3, sizeof(b3));
		note(s, "device %s: precopy %s, stop-copy %s (estimate %s), downtime %.2f ms%s%s",
		     s->ds->dev[i].name, vms_tool_human_bytes(d->precopy_bytes, b1, sizeof(b1)),
		     vms_tool_human_bytes(d->stopcopy_bytes, b2, sizeof(b2)), b3, d->downtime_ms,
		     d->result ? ", failed: " : "", d->result ? vms_errname(d->result) : "");
	}
}

/* Migrate the --device devices into the writer (file or session). */
static int migrate(struct send_run *s)
{
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_migrate_opts mo = VMS_MIGRATE_OPTS_INIT;
	struct vms_tool *t = s->t;
	const struct send_args *a = s->a;
	unsigned n = s->ds->n;
	int err;

	writer_opts(s, &wo);
	wo.progress = dev_progress;
	wo.progress_user = s;
	s->dr = calloc(n, sizeof(*s->dr));
	s->dg = calloc(n, sizeof(*s->dg));
	if (!s->dr || !s->dg)
		return vms_tool_fail(t, VMS_ENOMEM, "out of memory");
	/* Devices first: a bad spec or a missing device fails before any
	 * output file or connection exists. */
	if (vms_tool_devices_open(t, s->ds))
		return t->err;
	vms_progress_init(&s->prog, t, UINT64_MAX);
	if (open_writer(s, &wo))
		return t->err;
	show_session(s);
	if (t->verbose && !t->quiet) {
		for (unsigned i = 0; i < n; i++)
			note(s, "device %s: %s:%s", s->ds->dev[i].name,
			     vms_tool_dev_kind_name(s->ds->dev[i].kind), s->ds->dev[i].arg);
		note(s, "migrating %u device%s to %s (%s)%s", n, n == 1 ? "" : "s",
		     s->net ? a->to : vms_tool_path_name(a->output, true),
		     vms_writer_engine(s->w), a->no_precopy ? ", no precopy" : "");
	}
	mo.max_rounds = max_rounds(a);
	mo.downtime_limit_ms = downtime_limit(a);
	mo.on_round = on_round;
	mo.stop_vm = stop_vm;
	mo.resume_vm = resume_vm;
	mo.user = s;
	if (a->no_precopy)
		mo.flags |= VMS_MIGRATE_F_NO_PRECOPY;
	s->rep.size = sizeof(s->rep);
	s->rep.devs = s->dr;
	s->rep.devs_cap = n;
	err = vms_migrate_send(s->w, s->ds->devs, n, &mo, &s->rep);
	s->have_report = true;
	s->mig_err = err;
	s->bytes_in += vms_tool_report_bytes(&s->rep);
	if (err)
		return vms_tool_fail_lib(t, err);
	for (unsigned i = 0; i < n; i++) {
		uint64_t total;

		s->dg[i].have = vms_writer_device_digest(s->w, i, &total, &s->dg[i].digest) == 0;
	}
	if (s->net) {
		/* vms_migrate_send returned 0: the receiver acknowledged every
		 * device loaded and validated. */
		s->acknowledged = true;
		return 0;
	}
	err = vms_output_commit(t, &s->out);
	if (err) {
		/* The snapshot is not stored: the source runs on. */
		for (unsigned i = 0; i < n; i++)
			(void)vms_device_set_state(s->ds->devs[i], VMS_DEV_RUNNING);
		resume_vm(s);
	}
	return err;
}

static void json_devices(struct vms_json *j, void *user)
{
	struct send_run *s = user;
	bool ok = s->have_report && !s->mig_err;

	if (s->have_report) {
		vms_json_u64(j, "rounds", s->rep.rounds);
		vms_json_double(j, "est_downtime_ms", s->rep.est_downtime_ms);
	} else {
		vms_json_null(j, "rounds");
		vms_json_null(j, "est_downtime_ms");
	}
	if (ok)
		vms_json_double(j, "downtime_ms", s->rep.downtime_ms);
	else
		vms_json_null(j, "downtime_ms");
	vms_json_arr_begin(j, "devices");
	for (unsigned i = 0; i < s->ds->n; i++) {
		const struct vms_tool_dev *td = &s->ds->dev[i];
		const struct vms_migrate_dev_report *d =
			s->have_report && i < s->rep.ndev ? &s->dr[i] : NULL;
		char dg[24];
		uint32_t st;

		vms_json_obj_begin(j, NULL);
		vms_json_str(j, "name", td->name);
		vms_json_str(j, "kind", vms_tool_dev_kind_name(td->kind));
		if (d) {
			vms_json_dev_bytes(j, d);
			if (d->est_stop_copy_bytes != UINT64_MAX)
				vms_json_u64(j, "est_stop_copy_bytes", d->est_stop_copy_bytes);
			else
				vms_json_null(j, "est_stop_copy_bytes");
			if (d->downtime_ms > 0)
				vms_json_double(j, "downtime_ms", d->downtime_ms);
			else
				vms_json_null(j, "downtime_ms");
			vms_json_str(j, "result", d->result ? vms_errname(d->result) : "ok");
		} else {
			vms_json_null(j, "precopy_bytes");
			vms_json_null(j, "stopcopy_bytes");
			vms_json_null(j, "bytes");
			vms_json_null(j, "est_stop_copy_bytes");
			vms_json_null(j, "downtime_ms");
			vms_json_null(j, "result");
		}
		/* after a failure: RUNNING again (the source runs on) */
		if (s->ds->devs && vms_device_state(s->ds->devs[i], &st) == 0)
			vms_json_str(j, "state", vms_dev_state_name(st));
		else
			vms_json_null(j, "state");
		if (s->dg && s->dg[i].have) {
			snprintf(dg, sizeof(dg), "%016llx", (unsigned long long)s->dg[i].digest);
			vms_json_str(j, "digest_xxh3", dg);
		} else {
			vms_json_null(j, "digest_xxh3");
		}
		vms_json_obj_end(j);
	}
	vms_json_arr_end(j);
}

static void print_dev_verdict(const struct send_run *s, const struct vms_summary *sum)
{
	char b1[32], b2[32], ratio[32], lanes[64], rounds[48];
	unsigned n = s->ds->n;

	vms_summary_ratio(sum, ratio, sizeof(ratio));
	if (s->rep.rounds)
		snprintf(rounds, sizeof(rounds), "%u precopy round%s", s->rep.rounds,
			 s->rep.rounds == 1 ? "" : "s");
	else
		snprintf(rounds, sizeof(rounds), "no precopy");
	if (s->net)
		fprintf(stderr,
			"%s: OK: %u device%s migrated (%s) in %.2f s, %s, downtime %.2f ms "
			"(estimated %.2f ms)%s, %s, %s, acknowledged by %s at %s\n",
			s->t->prog, n, n == 1 ? "" : "s",
			vms_tool_human_bytes(sum->bytes, b1, sizeof(b1)), sum->seconds, rounds,
			s->rep.downtime_ms, s->rep.est_downtime_ms, ratio,
			vms_summary_lanes(sum, lanes, sizeof(lanes)), sum->cipher, s->peer, s->a->to);
	else
		fprintf(stderr,
			"%s: OK: %u device%s saved (%s) to %s in %.2f s, %s, downtime %.2f ms%s, "
			"%llu records, %s\n",
			s->t->prog, n, n == 1 ? "" : "s",
			vms_tool_human_bytes(sum->bytes, b2, sizeof(b2)),
			vms_tool_path_name(s->a->output, true), sum->seconds, rounds,
			s->rep.downtime_ms, ratio, (unsigned long long)sum->records, sum->cipher);
}

static void print_verdict(const struct send_run *s, const struct vms_summary *sum)
{
	char b1[32], b2[32], ratio[32], lanes[64];
	double rate = vms_summary_rate(sum);

	vms_summary_ratio(sum, ratio, sizeof(ratio));
	if (s->net)
		fprintf(stderr,
			"%s: OK: %s sent in %.2f s (%s/s)%s, %s, %s, acknowledged by %s at %s, "
			"digest %016llx\n",
			s->t->prog, vms_tool_human_bytes(sum->bytes, b1, sizeof(b1)), sum->seconds,
			vms_tool_human_bytes((uint64_t)rate, b2, sizeof(b2)), ratio,
			vms_summary_lanes(sum, lanes, sizeof(lanes)), sum->cipher, s->peer, s->a->to,
			(unsigned long long)s->digest);
	else
		fprintf(stderr,
			"%s: OK: %s written to %s in %.2f s (%s/s)%s, %llu records, %s, digest "
			"%016llx\n",
			s->t->prog, vms_tool_human_bytes(sum->bytes, b1, sizeof(b1)),
			vms_tool_path_name(s->a->output, true), sum->seconds,
			vms_tool_human_bytes((uint64_t)rate, b2, sizeof(b2)), ratio,
			(unsigned long long)sum->records, sum->cipher, (unsigned long long)s->digest);
}

static int run_send(struct vms_tool *t, void *args, const char *input)
{
	struct send_args *a = args;
	struct send_run s = { .t = t, .a = a, .in = { .fd = -1 }, .out = { .fd = -1 } };
	struct vms_stats st = { .size = sizeof(st) };
	struct vms_summary sum = { .bytes_key = "bytes_in", .acknowledged = -1 };

	s.t0 = vms_tool_now();
	s.net = a->to != NULL;
	s.ds = &a->ds;
	s.devmode = a->ds.n > 0;
	s.show_notes = !t->quiet && (t->verbose || isatty(STDERR_FILENO) == 1);
	pthread_mutex_init(&s.mu, NULL);
	if (a->cipher >= 0)
		s.cipher = (uint32_t)a->cipher;
	else if (s.net ? vms_tool_net_authenticated(t) : t->sh.key_file != NULL)
		s.cipher = vms_cipher_preferred();
	else
		s.cipher = VMS_CIPHER_NONE;
	vms_tool_signals_init(t);
	if (vms_tool_insecure_remote(t, s.net, a->to, 0))
		vms_tool_warn(t, "--insecure: the session with %s is neither authenticated nor "
				 "encrypted; anyone on the path can read and alter it", a->to);
	if (s.devmode) {
		migrate(&s);
		vms_progress_end(&s.prog);
		if (s.have_report && (t->verbose || (t->err && s.show_notes)) && !t->quiet)
			print_device_lines(&s);
	} else if (input_open(t, &s.in, input) == 0) {
		pump(&s);
		vms_progress_end(&s.prog);
	}
	if (t->err && !s.net)
		vms_output_discard(&s.out);
	if (s.w)
		vms_writer_stats(s.w, &st);
	vms_summary_set_stats(&sum, s.net, &st, s.t0);
	sum.bytes = s.bytes_in;
	sum.device = s.in.name[0] ? s.in.name : NULL;
	sum.have_digest = s.have_digest;
	sum.digest = s.digest;
	sum.lanes = s.net ? (a->lanes ? a->lanes : 1) : 1;
	sum.engine = s.w ? vms_writer_engine(s.w) : NULL;
	sum.cipher = vms_cipher_name(s.cipher);
	sum.compress = a->compress ? a->compress : "none";
	sum.peer = s.net && s.peer[0] ? s.peer : NULL;
	sum.address = a->to;
	if (s.net)
		sum.acknowledged = s.acknowledged;
	if (s.devmode) {
		sum.extra = json_devices;
		sum.extra_user = &s;
	}
	if (vms_tool_verdict_wanted(t, &s.prog)) {
		if (s.devmode)
			print_dev_verdict(&s, &sum);
		else
			print_verdict(&s, &sum);
	}
	vms_writer_free(s.w);
	if (s.in.fd > STDERR_FILENO)
		close(s.in.fd);
	vms_tool_write_summary(t, &sum);
	vms_tool_devices_free(s.ds);
	free(s.dr);
	free(s.dg);
	pthread_mutex_destroy(&s.mu);
	return vms_tool_report(t);
}

/* Option combinations that depend on the mode. */
static int check_usage(struct vms_tool *t, void *args)
{
	struct send_args *a = args;
	bool net = a->to != NULL;
	int rc;

	if (a->output && a->to)
		return vms_tool_usage_error(t, "--output and --to exclude each other");
	if (!a->output && !a->to)
		return vms_tool_usage_error(t, "--output FILE is required ('-' for stdout), or --to "
					       "HOST:PORT for network mode");
	rc = vms_tool_check_net_usage(t, net);
	if (rc)
		return rc;
	if (!a->ds.n && (a->max_rounds || a->downtime_ms || a->no_precopy))
		return vms_tool_usage_error(t, "%s is a device-mode option (use it with --device)",
					    a->max_rounds ? "--precopy-rounds"
					    : a->downtime_ms ? "--downtime-limit" : "--no-precopy");
	if (a->no_precopy && (a->max_rounds || a->downtime_ms))
		return vms_tool_usage_error(t, "--no-precopy excludes %s",
					    a->max_rounds ? "--precopy-rounds" : "--downtime-limit");
	rc = vms_tool_devices_check(t, &a->ds);
	if (rc)
		return rc;
	if (!net) {
		if (a->lanes)
			return vms_tool_usage_error(t, "--lanes is a network option (use it with --to)");
		if (a->rate_given)
			return vms_tool_usage_error(t, "--rate-limit is a network option (use it "
						       "with --to)");
		if (a->cipher > 0 && !t->sh.key_file)
			return vms_tool_usage_error(t, "--encrypt %s needs --key-file FILE "
						       "(64 hex digits: openssl rand -hex 32)",
						    vms_cipher_name((uint32_t)a->cipher));
		if (a->cipher == VMS_CIPHER_NONE && t->sh.key_file)
			return vms_tool_usage_error(t, "--key-file given with --encrypt none");
		return 0;
	}
	if (t->force)
		return vms_tool_usage_error(t, "--force applies to --output files only");
	if (a->cipher > 0 && !vms_tool_net_authenticated(t))
		return vms_tool_usage_error(t, "--encrypt %s needs an authenticated session "
					       "(--psk-file, or --cert/--key/--ca)",
					    vms_cipher_name((uint32_t)a->cipher));
	return 0;
}

int main(int argc, char **argv)
{
	struct vms_tool t = {
		.prog = "vmstream-send",
		.synopsis = "[OPTIONS] (--output FILE | --to HOST:PORT) [INPUT | --device SPEC...]",
		.summary = "Send INPUT (a file, or stdin if '-' or absent), or migrate devices, as a "
			   "verified vmstream stream.",
		.details =
			"Without --device the stream holds one device named after INPUT\n"
			"(\"stdin\" for stdin).\n"
			"\n"
			"File mode (--output): the stream FILE is written under a temporary\n"
			"name in its directory, synced and renamed when complete; an existing\n"
			"regular FILE is only replaced with --force. Devices and FIFOs\n"
			"(/dev/null) are written in place. If reading INPUT fails, the stream\n"
			"gets an ABORT record. With --key-file the records are encrypted\n"
			"(--encrypt, default the fastest cipher on this CPU).\n"
			"\n"
			"Network mode (--to): connects to 'vmstream-recv --listen', authenticates\n"
			"with TLS 1.3 (--psk-file, or --cert/--key/--ca; without them only a\n"
			"loopback peer is accepted unless --insecure), and streams over --lanes\n"
			"TCP connections. Exit status 0 means the receiver verified the whole\n"
			"stream, stored it and acknowledged it; a refusal is exit 6 with the\n"
			"receiver's reason.\n"
			"\n"
			"Device mode (--device SPEC, repeatable, instead of INPUT): migrates the\n"
			"devices with precopy rounds while the source runs, a switchover, and\n"
			"every device's stop-copy state read concurrently. SPEC is\n"
			"  vfio:PATH[,name=NAME]  a VFIO device (/dev/vfio/devices/vfio0), O_RDWR\n"
			"  sim:KEY=VALUE,...      a simulated device with VFIO data_fd semantics:\n"
			"      size=1M profile=mixed (random|zeros|sparse|text|mixed) dirty=0\n"
			"      seed=1 precopy=1 p2p=1 fault=none|read|resume|slow fault_at=1\n"
			"      slow=100M name=devN (defaults shown)\n"
			"Names default to PATH's basename (vfio) or dev0, dev1, ... by position;\n"
			"the receiver matches devices all by name, or all by position. After each\n"
			"precopy round the tool switches over once the estimated downtime is at\n"
			"most --downtime-limit or after --precopy-rounds rounds. There is no VM\n"
			"here: where a VMM stops its vCPUs (switchover) and resumes them (a\n"
			"failure after it) the tool only logs it. Rounds and the switchover are\n"
			"shown on a terminal and with --verbose. Network mode: exit 0 only once\n"
			"the receiver loaded and validated every device. A device failure is\n"
			"exit 8 (VMS_EDEVIO); the source devices are then RUNNING again. The\n"
			"--json summary gains rounds, est_downtime_ms, downtime_ms and a\n"
			"\"devices\" array (name, kind, precopy_bytes, stopcopy_bytes, bytes,\n"
			"est_stop_copy_bytes, downtime_ms, result, state, digest_xxh3).\n"
			"\n"
			"A progress line (bytes, %, rate, ETA, compression ratio raw/wire, lanes,\n"
			"I/O engine) and a final verdict are shown when stderr is a terminal.",
		.opts = send_opts,
	};
	static const struct vms_tool_main m = {
		.opt_fn = send_opt,
		.check = check_usage,
		.run = run_send,
		.operand = "INPUT",
		.role = "input",
	};
	struct send_args a = { .cipher = -1 };

	return vms_tool_main(&t, argc, argv, &m, &a, &a.ds);
}
