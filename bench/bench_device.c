/* SPDX-License-Identifier: MIT */
/*
 * bench_device: Issue 6 benchmark of the migration orchestration
 * (vms_migrate_send / vms_migrate_recv) over a loopback network session.
 *
 * (a) added downtime per small device: stop-copy only
 *     (VMS_MIGRATE_F_NO_PRECOPY) of one big sim device (--big, default 1 MiB)
 *     plus --small sim devices of --small-size bytes (default 100 x 4 KiB),
 *     against the same big device alone, both over an established TLS 1.3
 *     PSK session (the handshake happens before the switchover, as in a VMM
 *     that connects early). Downtime = the report's downtime_ms: from the
 *     stop_vm hook until the destination acknowledged every device loaded
 *     and validated (RESUMING -> STOP of sim devices checks every byte).
 *     Per added device: (downtime_with - downtime_without) / small, from
 *     each run's pair, median over the runs; the per-device downtimes of
 *     the report (stop until that device's state was in the stream) too.
 * (b) stop-copy throughput of one --tput-size sim device (profile=random,
 *     default 1 GiB) against the same bytes served from memory
 *     (vms_device_open_mem over a buffer holding the sim device's image,
 *     read out of a sim device before the runs). The destination is the
 *     same discarding device in both cases, so only the source side
 *     differs. Done twice: over the PSK session with AES-256-GCM
 *     (compress none), and over an unauthenticated loopback session with
 *     records only checksummed (the harder case: no cipher cost hides the
 *     device's).
 *
 * Each run measures every configuration once; the order alternates from
 * run to run. The destination is a forked child process (its own CPU
 * accounting, like a second host); the parent is the source.
 *
 *   bench_device [--runs N] [--quick] [--json FILE] [--big SIZE]
 *                [--small N] [--small-size SIZE] [--tput-size SIZE]
 *                [--only downtime,throughput]
 *
 * Output: a table on stdout; --json FILE gets every sample and the medians.
 * Exit status 0 even when a target is missed; 1 if a migration failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <vmstream.h>

#define MAX_SMALL 4096
#define MAX_RUNS 101

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static double self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (*end == 'K' || *end == 'k')
		v <<= 10, end++;
	else if (*end == 'M' || *end == 'm')
		v <<= 20, end++;
	else if (*end == 'G' || *end == 'g')
		v <<= 30, end++;
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct stat3 {
	double med, min, max;
};

static struct stat3 stat3(const double *v, int n)
{
	double s[MAX_RUNS];
	struct stat3 r = { 0, 0, 0 };

	if (n <= 0)
		return r;
	if (n > MAX_RUNS)
		n = MAX_RUNS;
	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	r.min = s[0];
	r.max = s[n - 1];
	r.med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	return r;
}

/* median of an arbitrary-length array (sorted in place) */
static double median_inplace(double *v, int n)
{
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- a destination device that accepts anything and discards it -------- */

struct discard {
	uint32_t state;
	uint64_t bytes;
};

static int dc_caps(void *impl, uint32_t *caps)
{
	(void)impl;
	*caps = VMS_DEVCAP_STOP_COPY;
	return 0;
}

static int dc_set_state(void *impl, uint32_t state)
{
	((struct discard *)impl)->state = state;
	return 0;
}

static int dc_stop_copy_size(void *impl, uint64_t *bytes)
{
	(void)impl;
	*bytes = 0;
	return 0;
}

static long dc_read(void *impl, void *buf, size_t len)
{
	(void)impl, (void)buf, (void)len;
	return 0;
}

static long dc_write(void *impl, const void *buf, size_t len)
{
	(void)buf;
	((struct discard *)impl)->bytes += len;
	return (long)len;
}

static int dc_reset(void *impl)
{
	((struct discard *)impl)->state = VMS_DEV_RUNNING;
	return 0;
}

static void dc_close(void *impl)
{
	(void)impl;
}

static int open_discard(struct vms_device **out, const char *name, struct discard *impl)
{
	struct vms_device_ops ops = {
		.size = sizeof(ops),
		.caps = dc_caps,
		.set_state = dc_set_state,
		.stop_copy_size = dc_stop_copy_size,
		.read = dc_read,
		.write = dc_write,
		.reset = dc_reset,
		.close = dc_close,
	};

	memset(impl, 0, sizeof(*impl));
	impl->state = VMS_DEV_RUNNING;
	return vms_device_new(out, name, VMS_DEVKIND_VFIO, &ops, impl);
}

/* ---- one migration ------------------------------------------------------ */

enum dev_kind { DK_SIM, DK_MEM };

struct devspec {
	char name[32];
	char spec[128];
	enum dev_kind kind;     /* source kind */
	int sink_discard;       /* destination: discarding device, else sim */
};

struct mig_conf {
	struct devspec *devs;
	unsigned n;
	int psk;                /* PSK session + AES-256-GCM, else insecure loopback */
	uint32_t io;            /* enum vms_io_kind */
	const char *compress;
	const void *mem;        /* DK_MEM source bytes */
	size_t mem_len;
};

struct mig_result {
	double downtime_ms;
	double total_s;
	double src_cpu_s, dst_cpu_s;
	uint64_t bytes;
	double dev_downtime_ms[MAX_SMALL + 1];
	unsigned ndev;
};

static int fail(const char *what, int err)
{
	fprintf(stderr, "bench_device: %s: %s: %s\n", what,
		vms_errname(err) ? vms_errname(err) : "?", vms_last_error());
	return -1;
}

static int destination(struct vms_listener *l, const struct mig_conf *c)
{
	struct vms_device **devs = calloc(c->n, sizeof(*devs));
	struct discard *dimpl = calloc(c->n, sizeof(*dimpl));
	struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
	struct vms_reader *r;
	int err;

	if (!devs || !dimpl)
		return 1;
	for (unsigned i = 0; i < c->n; i++) {
		err = c->devs[i].sink_discard ? open_discard(&devs[i], c->devs[i].name, &dimpl[i])
					      : vms_device_open_sim(&devs[i], c->devs[i].name,
								    c->devs[i].spec);
		if (err)
			return fail("destination device", err), 1;
	}
	ro.threads = VMS_THREADS_AUTO;
	err = vms_accept(l, &r, &ro, 20000);
	if (err)
		return fail("accept", err), 1;
	err = vms_migrate_recv(r, devs, c->n, NULL, NULL);
	vms_reader_free(r);
	for (unsigned i = 0; i < c->n; i++)
		vms_device_free(devs[i]);
	free(devs);
	free(dimpl);
	if (err)
		return fail("vms_migrate_recv", err), 1;
	return 0;
}

static int noop_vm(void *user)
{
	(void)user;
	return 0;
}

static int migrate_once(const struct mig_conf *c, struct mig_result *res)
{
	struct vms_net_opts net = VMS_NET_OPTS_INIT;
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_migrate_opts mo = VMS_MIGRATE_OPTS_INIT;
	struct vms_migrate_dev_report *dr = calloc(c->n, sizeof(*dr));
	struct vms_migrate_report rep = { .size = sizeof(rep), .devs = dr, .devs_cap = c->n };
	struct vms_device **devs = calloc(c->n, sizeof(*devs));
	struct vms_listener *l;
	struct vms_writer *w;
	struct rusage cru;
	uint8_t psk[VMS_KEY_LEN];
	char addr[64];
	double cpu0;
	pid_t child;
	int err, status = 0;

	if (!dr || !devs)
		return -1;
	if (c->psk) {
		if (getrandom(psk, sizeof(psk), 0) != (ssize_t)sizeof(psk))
			return -1;
		net.psk = psk;
	}
	net.io = c->io;
	err = vms_listen(&l, "127.0.0.1:0", &net);
	if (err)
		return fail("listen", err);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", vms_listener_port(l));
	fflush(NULL);
	child = fork();
	if (child < 0)
		return -1;
	if (child == 0)
		_exit(destination(l, c));
	vms_listener_free(l);

	for (unsigned i = 0; i < c->n && !err; i++)
		err = c->devs[i].kind == DK_MEM
			      ? vms_device_open_mem(&devs[i], c->devs[i].name, c->mem, c->mem_len, 0)
			      : vms_device_open_sim(&devs[i], c->devs[i].name, c->devs[i].spec);
	if (err) {
		fail("source device", err);
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
		return -1;
	}
	wo.compress = c->compress;
	wo.cipher = c->psk ? VMS_CIPHER_AES_256_GCM : VMS_CIPHER_NONE;
	wo.threads = VMS_THREADS_AUTO;
	cpu0 = self_cpu();
	err = vms_writer_connect(&w, addr, &net, &wo); /* the session is up before the switchover */
	if (err) {
		fail("connect", err);
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
		return -1;
	}
	mo.flags = VMS_MIGRATE_F_NO_PRECOPY;
	mo.stop_vm = noop_vm;
	mo.resume_vm = noop_vm;
	err = vms_migrate_send(w, devs, c->n, &mo, &rep);
	if (err)
		fail("vms_migrate_send", err);
	vms_writer_free(w);
	res->src_cpu_s = self_cpu() - cpu0;
	memset(&cru, 0, sizeof(cru));
	if (wait4(child, &status, 0, &cru) < 0)
		return -1;
	res->dst_cpu_s = tv_s(cru.ru_utime) + tv_s(cru.ru_stime);
	for (unsigned i = 0; i < c->n; i++)
		vms_device_free(devs[i]);
	free(devs);
	if (err || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		free(dr);
		fprintf(stderr, "bench_device: migration failed (destination status %d)\n", status);
		return -1;
	}
	res->downtime_ms = rep.downtime_ms;
	res->total_s = rep.total_seconds;
	res->bytes = 0;
	res->ndev = rep.ndev;
	for (unsigned i = 0; i < rep.ndev && i <= MAX_SMALL; i++) {
		res->bytes += dr[i].stopcopy_bytes;
		res->dev_downtime_ms[i] = dr[i].downtime_ms;
	}
	free(dr);
	return 0;
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_device [--runs N] [--quick] [--json FILE] [--big SIZE] [--small N]\n"
		   "                    [--small-size SIZE] [--tput-size SIZE]\n"
		   "                    [--only downtime,throughput] [--down-compress C]\n"
		   "                    [--down-session psk|plain] [--down-runs N (default 3 x runs)]\n");
}

struct tput_cfg {
	const char *id;
	const char *label;
	int psk;
	enum dev_kind kind;
};

int main(int argc, char **argv)
{
	int runs = 5, down_runs = 0, quick = 0, do_down = 1, do_tput = 1;
	uint64_t big = 1 << 20, small_size = 4096, tput = 1ull << 30, nsmall = 100;
	const char *json = NULL, *dcompress = "auto";
	int dpsk = 1;
	struct utsname un;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--quick")) {
			quick = 1;
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!v) {
			usage(stderr);
			return 2;
		}
		i++;
		if (!strcmp(a, "--runs"))
			runs = atoi(v);
		else if (!strcmp(a, "--down-runs"))
			down_runs = atoi(v);
		else if (!strcmp(a, "--json"))
			json = v;
		else if (!strcmp(a, "--big") && !parse_size(v, &big))
			;
		else if (!strcmp(a, "--small") && !parse_size(v, &nsmall))
			;
		else if (!strcmp(a, "--small-size") && !parse_size(v, &small_size))
			;
		else if (!strcmp(a, "--tput-size") && !parse_size(v, &tput))
			;
		else if (!strcmp(a, "--down-compress"))
			dcompress = v;
		else if (!strcmp(a, "--down-session") && (!strcmp(v, "psk") || !strcmp(v, "plain")))
			dpsk = !strcmp(v, "psk");
		else if (!strcmp(a, "--only")) {
			do_down = strstr(v, "downtime") != NULL;
			do_tput = strstr(v, "throughput") != NULL;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (quick) {
		if (runs == 5)
			runs = 1;
		if (tput == 1ull << 30)
			tput = 16ull << 20;
		if (nsmall == 100)
			nsmall = 10;
	}
	if (!down_runs) /* (a) is cheap (tens of ms a run) and noisy: 3x the runs */
		down_runs = quick ? runs : 3 * runs;
	if (runs < 1 || runs > MAX_RUNS || down_runs < 1 || down_runs > MAX_RUNS || nsmall < 1 || nsmall > MAX_SMALL || big < 72 ||
	    small_size < 72 || tput < 4096) {
		usage(stderr);
		return 2;
	}
	uname(&un);

	/* (a) device sets */
	unsigned nwith = 1 + (unsigned)nsmall;
	struct devspec *with = calloc(nwith, sizeof(*with));
	if (!with)
		return 1;
	snprintf(with[0].name, sizeof(with[0].name), "big0");
	snprintf(with[0].spec, sizeof(with[0].spec), "size=%" PRIu64 ",profile=mixed,seed=1,precopy=0",
		 big);
	for (unsigned i = 1; i < nwith; i++) {
		snprintf(with[i].name, sizeof(with[i].name), "small%u", i);
		snprintf(with[i].spec, sizeof(with[i].spec),
			 "size=%" PRIu64 ",profile=random,seed=%u,precopy=0", small_size, i + 1);
	}
	struct mig_conf c_with = { .devs = with, .n = nwith, .psk = dpsk, .compress = dcompress };
	struct mig_conf c_without = { .devs = with, .n = 1, .psk = dpsk, .compress = dcompress };
	static const uint32_t engines[2] = { VMS_IO_URING, VMS_IO_POSIX };
	static const char *const engine_name[2] = { "io_uring", "posix" };

	/* (b): the sim device's image, read once, is the memory device's content */
	char tspec[128];
	struct devspec tdev = { .name = "dev0", .sink_discard = 1 };
	void *img = NULL;
	size_t img_len = 0;

	snprintf(tspec, sizeof(tspec), "size=%" PRIu64 ",profile=random,seed=7,precopy=0", tput);
	snprintf(tdev.spec, sizeof(tdev.spec), "%s", tspec);
	if (do_tput) {
		struct vms_device *d;
		int err = vms_device_open_sim(&d, "dev0", tspec);

		if (err)
			return fail("sim", err), 1;
		img = mmap(NULL, tput, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
			   -1, 0);
		if (img == MAP_FAILED)
			return perror("mmap"), 1;
		err = vms_device_set_state(d, VMS_DEV_STOP_COPY);
		if (err)
			return fail("sim stop-copy", err), 1;
		for (;;) {
			static char scratch[4096];
			long r = img_len < tput
					 ? vms_device_read(d, (char *)img + img_len, tput - img_len)
					 : vms_device_read(d, scratch, sizeof(scratch)); /* must be the end */

			if (r < 0)
				return fail("sim read", (int)r), 1;
			if (r == 0)
				break;
			if (img_len + (size_t)r > tput) {
				img_len += (size_t)r;
				break;
			}
			img_len += (size_t)r;
		}
		vms_device_free(d);
		if (img_len != tput) {
			fprintf(stderr, "bench_device: sim image is %zu bytes, expected %" PRIu64 "\n",
				img_len, tput);
			return 1;
		}
	}
	static const struct tput_cfg tcfg[] = {
		{ "sim-aes", "1 sim device, stop-copy, PSK + AES-256-GCM", 1, DK_SIM },
		{ "mem-aes", "same bytes from memory (vms_device_open_mem), PSK + AES-256-GCM", 1, DK_MEM },
		{ "sim-plain", "1 sim device, stop-copy, loopback, checksummed only", 0, DK_SIM },
		{ "mem-plain", "same bytes from memory, loopback, checksummed only", 0, DK_MEM },
	};
	enum { NT = 4 };

	static double d_with[2][MAX_RUNS], d_without[2][MAX_RUNS], per_dev[2][MAX_RUNS];
	static double big_dt[2][MAX_RUNS], small_med[2][MAX_RUNS], small_max[2][MAX_RUNS];
	static double t_gbps[NT][MAX_RUNS], t_scpu[NT][MAX_RUNS], t_dcpu[NT][MAX_RUNS];
	static double t_ratio[2][MAX_RUNS];
	static struct mig_result res;
	double *tmp = calloc(nwith, sizeof(double));

	if (!tmp)
		return 1;
	printf("bench_device: %d run(s); (a) 1 x %" PRIu64 " B + %" PRIu64 " x %" PRIu64
	       " B sim devices vs the big one alone; (b) %" PRIu64 " B sim vs memory\n",
	       runs, big, nsmall, small_size, tput);
	if (do_down && migrate_once(&c_without, &res)) /* warm-up, not counted */
		return 1;
	for (int r = 0; r < (runs > down_runs ? runs : down_runs); r++) {
		/* alternate the order from run to run */
		if (do_down && r < down_runs) {
			for (int k = 0; k < 4; k++) {
				int kk = (k + r) % 4, e = kk / 2, is_with = kk % 2 == 0;
				struct mig_conf *c = is_with ? &c_with : &c_without;

				c->io = engines[e];
				if (migrate_once(c, &res))
					return 1;
				if (is_with) {
					d_with[e][r] = res.downtime_ms;
					big_dt[e][r] = res.dev_downtime_ms[0];
					for (unsigned i = 1; i < res.ndev; i++)
						tmp[i - 1] = res.dev_downtime_ms[i];
					small_max[e][r] = 0;
					for (unsigned i = 1; i < res.ndev; i++)
						if (tmp[i - 1] > small_max[e][r])
							small_max[e][r] = tmp[i - 1];
					small_med[e][r] = median_inplace(tmp, (int)res.ndev - 1);
				} else {
					d_without[e][r] = res.downtime_ms;
				}
			}
			for (int e = 0; e < 2; e++) {
				per_dev[e][r] = (d_with[e][r] - d_without[e][r]) * 1000.0 / (double)nsmall; /* us */
				printf("  run %d, %-8s: downtime with %.3f ms, without %.3f ms -> %.1f us per added device\n",
				       r + 1, engine_name[e], d_with[e][r], d_without[e][r], per_dev[e][r]);
			}
		}
		if (do_tput && r < runs) {
			for (int k = 0; k < NT; k++) {
				int t = (k + r) % NT;
				struct mig_conf c = { .devs = &tdev, .n = 1, .psk = tcfg[t].psk,
						      .compress = "none", .mem = img, .mem_len = img_len };

				tdev.kind = tcfg[t].kind;
				if (migrate_once(&c, &res))
					return 1;
				t_gbps[t][r] = (double)res.bytes / (res.downtime_ms / 1e3) / 1e9;
				t_scpu[t][r] = res.src_cpu_s / ((double)res.bytes / 1e9);
				t_dcpu[t][r] = res.dst_cpu_s / ((double)res.bytes / 1e9);
				if (res.bytes != tput) {
					fprintf(stderr, "bench_device: %s moved %" PRIu64 " bytes, expected %" PRIu64 "\n",
						tcfg[t].id, res.bytes, tput);
					return 1;
				}
			}
			t_ratio[0][r] = t_gbps[0][r] / t_gbps[1][r];
			t_ratio[1][r] = t_gbps[2][r] / t_gbps[3][r];
			printf("  run %d: stop-copy GB/s sim-aes %.3f mem-aes %.3f (x%.3f), sim-plain %.3f "
			       "mem-plain %.3f (x%.3f)\n",
			       r + 1, t_gbps[0][r], t_gbps[1][r], t_ratio[0][r], t_gbps[2][r], t_gbps[3][r],
			       t_ratio[1][r]);
		}
		fflush(stdout);
	}

	FILE *jf = json ? fopen(json, "w") : NULL;
	if (json && !jf)
		return perror(json), 1;
	if (jf)
		fprintf(jf, "{\"bench\":\"device\",\"kernel\":\"%s\",\"runs\":%d,\"quick\":%s", un.release,
			runs, quick ? "true" : "false");
	printf("\nbench_device: medians of %d run(s) [min .. max] ((a): %d runs)\n", runs, down_runs);
	if (do_down) {
		printf("(a) downtime, stop-copy only, %s, compress %s\n",
		       dpsk ? "PSK session, AES-256-GCM" : "loopback session, checksummed only", dcompress);
		if (jf)
			fprintf(jf, ",\"downtime\":{\"big_bytes\":%" PRIu64 ",\"small\":%" PRIu64
				    ",\"small_bytes\":%" PRIu64 ",\"session\":\"%s\",\"cipher\":\"%s\","
				    "\"compress\":\"%s\",\"target_us\":100,\"runs\":%d,\"engines\":[",
				big, nsmall, small_size, dpsk ? "psk" : "insecure-loopback",
				dpsk ? "aes-256-gcm" : "none", dcompress, down_runs);
		for (int e = 0; e < 2; e++) {
			struct stat3 sw = stat3(d_with[e], down_runs), so = stat3(d_without[e], down_runs),
				     sp = stat3(per_dev[e], down_runs), sb = stat3(big_dt[e], down_runs),
				     sm = stat3(small_med[e], down_runs), sx = stat3(small_max[e], down_runs);
			printf("  --io %s\n", engine_name[e]);
			printf("  %-48s %9.3f ms [%.3f .. %.3f]\n", "1 big + N small: downtime", sw.med, sw.min, sw.max);
			printf("  %-48s %9.3f ms [%.3f .. %.3f]\n", "1 big alone: downtime", so.med, so.min, so.max);
			printf("  %-48s %9.1f us [%.1f .. %.1f]   target <= 100 us: %s\n",
			       "added downtime per small device", sp.med, sp.min, sp.max,
			       sp.med <= 100.0 ? "MET" : "NOT MET");
			printf("  %-48s %9.3f ms [%.3f .. %.3f]\n", "report: big device in the stream after", sb.med,
			       sb.min, sb.max);
			printf("  %-48s %9.3f ms [%.3f .. %.3f]\n", "report: small devices, median per run", sm.med,
			       sm.min, sm.max);
			printf("  %-48s %9.3f ms [%.3f .. %.3f]\n", "report: small devices, last one", sx.med, sx.min,
			       sx.max);
			if (jf) {
				const struct { const char *k; double *v; struct stat3 s; } f[] = {
					{ "with_ms", d_with[e], sw }, { "without_ms", d_without[e], so },
					{ "per_device_us", per_dev[e], sp }, { "big_dev_ms", big_dt[e], sb },
					{ "small_dev_median_ms", small_med[e], sm }, { "small_dev_max_ms", small_max[e], sx },
				};
				fprintf(jf, "%s{\"io\":\"%s\"", e ? "," : "", engine_name[e]);
				for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
					fprintf(jf, ",\"%s\":{\"median\":%.6f,\"min\":%.6f,\"max\":%.6f,\"samples\":[",
						f[i].k, f[i].s.med, f[i].s.min, f[i].s.max);
					for (int r = 0; r < down_runs; r++)
						fprintf(jf, "%s%.6f", r ? "," : "", f[i].v[r]);
					fprintf(jf, "]}");
				}
				fprintf(jf, "}");
			}
		}
		if (jf)
			fprintf(jf, "]}");
	}
	if (do_tput) {
		printf("(b) stop-copy throughput of %" PRIu64 " bytes, profile random, compress none\n", tput);
		printf("  %-66s %8s %17s %9s %9s\n", "", "GB/s", "[min .. max]", "src s/GB", "dst s/GB");
		for (int t = 0; t < NT; t++) {
			struct stat3 g = stat3(t_gbps[t], runs), s = stat3(t_scpu[t], runs),
				     d = stat3(t_dcpu[t], runs);
			printf("  %-66s %8.3f [%6.3f .. %6.3f] %9.3f %9.3f\n", tcfg[t].label, g.med, g.min,
			       g.max, s.med, d.med);
		}
		struct stat3 ra = stat3(t_ratio[0], runs), rp = stat3(t_ratio[1], runs);
		printf("  %-66s x%.3f [%.3f .. %.3f]   target >= 0.9: %s\n", "sim / memory, PSK + AES",
		       ra.med, ra.min, ra.max, ra.med >= 0.9 ? "MET" : "NOT MET");
		printf("  %-66s x%.3f [%.3f .. %.3f]   target >= 0.9: %s\n", "sim / memory, checksummed only",
		       rp.med, rp.min, rp.max, rp.med >= 0.9 ? "MET" : "NOT MET");
		if (jf) {
			fprintf(jf, ",\"throughput\":{\"bytes\":%" PRIu64 ",\"target\":0.9,\"rows\":[", tput);
			for (int t = 0; t < NT; t++) {
				struct stat3 g = stat3(t_gbps[t], runs), s = stat3(t_scpu[t], runs),
					     d = stat3(t_dcpu[t], runs);
				fprintf(jf, "%s{\"id\":\"%s\",\"label\":\"%s\",\"gbps\":{\"median\":%.6f,\"min\":%.6f,"
					    "\"max\":%.6f,\"samples\":[",
					t ? "," : "", tcfg[t].id, tcfg[t].label, g.med, g.min, g.max);
				for (int r = 0; r < runs; r++)
					fprintf(jf, "%s%.6f", r ? "," : "", t_gbps[t][r]);
				fprintf(jf, "]},\"send_cpu_s_per_gb\":{\"median\":%.6f,\"min\":%.6f,\"max\":%.6f},"
					    "\"recv_cpu_s_per_gb\":{\"median\":%.6f,\"min\":%.6f,\"max\":%.6f}}",
					s.med, s.min, s.max, d.med, d.min, d.max);
			}
			fprintf(jf, "],\"ratio_aes\":{\"median\":%.6f,\"min\":%.6f,\"max\":%.6f},"
				    "\"ratio_plain\":{\"median\":%.6f,\"min\":%.6f,\"max\":%.6f}}",
				ra.med, ra.min, ra.max, rp.med, rp.min, rp.max);
		}
	}
	if (jf) {
		fprintf(jf, "}\n");
		fclose(jf);
	}
	free(tmp);
	free(with);
	if (img)
		munmap(img, tput);
	return 0;
}
