/* SPDX-License-Identifier: MIT */
/*
 * Migration orchestration (the VMM-facing loop): precopy rounds while the VM
 * runs, a downtime estimate after each round, switchover, every device's
 * stop-copy state read concurrently into the stream (small devices are not
 * held back by a large one), and on the destination the load of each device
 * in offset order, validated (RESUMING -> STOP) only after its DEVICE_END
 * verified. One interface for all devices: nothing here knows a device type.
 *
 * Switchover is sensible once every device's initial precopy data is out
 * and the estimate fits the limit. A device that reports new initial data
 * (VMS_PRECOPY_REINIT, VFIO_PRECOPY_INFO_REINIT) has it counted again from
 * that round on: precopy goes on until it is out too (max_rounds still
 * bounds the rounds).
 *
 * Downtime: before the VM stops, everything queued (DEVICE_BEGIN records,
 * precopy data) is written, so the destination's RESUMING arcs happen while
 * the VM runs; after it stops, only the P2P quiescing arcs run one after
 * another (the kernel's order: no device stops while another still issues
 * peer-to-peer DMA), and each device's STOP_COPY arc is the first step of
 * its stop-copy job, overlapping the other devices' data.
 *
 * Destination devices are matched all by name or all by position (see
 * match_device()), never a mix.
 *
 * The steps, in order. Source (vms_migrate_send): begin_devices, precopy
 * (precopy_round after precopy_round), switchover (flush, stop_vm),
 * quiesce_p2p, stop_copy, then vms_writer_finish: EOS and the destination's
 * acknowledgement. Any failure ends in roll_back_source: the stream
 * aborted, every source device back in RUNNING, the VM resumed.
 * Destination (vms_migrate_recv): load_stream (on_begin, on_data, on_end),
 * reset_unfinished (a device still loading is reset, never left half
 * loaded), then the acknowledgement of every device's result.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/abi.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/limits.h"
#include "stream/internal.h"
#include "device/device.h"
#include "pipeline/ring.h"

/* Fixed cost per device at switchover (state change + records), for the
 * estimate; measured by bench as well. */
#define PER_DEVICE_OVERHEAD_MS 0.05

struct sdev {
	struct vms_device *d;
	uint32_t idx;            /* writer device index */
	uint32_t caps;
	bool precopy;
	uint64_t est;            /* stop-copy size estimate */
	bool initial_out;        /* its initial bytes reached 0 (until a REINIT) */
	uint64_t pre_bytes, stop_bytes;
	double downtime_ms;
	int err;
};

struct stopcopy {
	struct vms_writer *w;
	struct sdev *devs;
	unsigned n;
	unsigned *order;         /* smallest estimate first */
	atomic_uint next;
	uint64_t t_stop;
	atomic_int err;
	char msg[VMS_MSG_MAX];
	pthread_mutex_t mu;
};

/* The first release's struct vms_migrate_opts (a caller's size field may
 * not say less). */
#define OPTS_MIN (offsetof(struct vms_migrate_opts, flags) + sizeof(uint32_t))
#define KNOWN_FLAGS VMS_MIGRATE_F_NO_PRECOPY

/* Take in the caller's options (NULL = every default): each field checked
 * against its bound here, once (vmstream.h documents the bounds), and the
 * 0 = default fields resolved. */
static int opts_take(struct vms_migrate_opts *o, const struct vms_migrate_opts *in)
{
	struct vms_migrate_opts def = VMS_MIGRATE_OPTS_INIT;
	int err;

	*o = def;
	err = vms_opts_take(o, sizeof(*o), in, OPTS_MIN, "migration options");
	if (err)
		return err;
	if (o->max_rounds > VMS_ROUNDS_MAX)
		return vms_fail(VMS_EINVAL, "migration options: max_rounds %u above the limit %u",
				o->max_rounds, VMS_ROUNDS_MAX);
	if (o->max_rounds == 0)
		o->max_rounds = VMS_MIGRATE_ROUNDS_DEFAULT;
	/* NaN fails every comparison: test for the good range, not the bad */
	if (!(o->downtime_limit_ms >= 0 && o->downtime_limit_ms <= VMS_TIMEOUT_MAX_MS))
		return vms_fail(VMS_EINVAL, "migration options: downtime_limit_ms %g outside "
				"[0, %d] (0 = %g)", o->downtime_limit_ms, VMS_TIMEOUT_MAX_MS,
				VMS_MIGRATE_DOWNTIME_DEFAULT_MS);
	if (o->downtime_limit_ms == 0)
		o->downtime_limit_ms = VMS_MIGRATE_DOWNTIME_DEFAULT_MS;
	if (o->threads == VMS_THREADS_AUTO)
		o->threads = 0;
	if (o->threads > VMS_THREADS_MAX)
		return vms_fail(VMS_EINVAL, "migration options: threads %u above the limit %u "
				"(0 or VMS_THREADS_AUTO = min(devices, %d))", o->threads,
				VMS_THREADS_MAX, VMS_MIGRATE_THREADS_DEFAULT);
	if (o->flags & ~KNOWN_FLAGS)
		return vms_fail(VMS_EINVAL, "migration options: unknown flags 0x%x",
				o->flags & ~KNOWN_FLAGS);
	return 0;
}

/* A caller's report: its size, and devs/devs_cap that agree (a capacity
 * needs an array; an array of capacity 0 gets no entries). NULL is fine:
 * no report. */
static int report_check(const struct vms_migrate_report *rep)
{
	if (!rep)
		return 0;
	if (rep->size != sizeof(*rep))
		return vms_fail(VMS_EINVAL, "migration report: size field %u is not %zu "
				"(initialise it with sizeof)", rep->size, sizeof(*rep));
	if (rep->devs_cap > VMS_DEVICES_MAX)
		return vms_fail(VMS_EINVAL, "migration report: devs_cap %u above the device "
				"limit %u", rep->devs_cap, VMS_DEVICES_MAX);
	if (rep->devs_cap && !rep->devs)
		return vms_fail(VMS_EINVAL, "migration report: devs is NULL but devs_cap is %u",
				rep->devs_cap);
	return 0;
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;

	return x < y ? -1 : x > y;
}

/* The caller's device array: at most VMS_DEVICES_MAX devices, none NULL,
 * none twice (its state would be read, or loaded, twice). */
static int devices_check(struct vms_device *const *devs, unsigned n)
{
	struct vms_device **sorted;
	int err = 0;

	if (n > VMS_DEVICES_MAX)
		return vms_fail(VMS_EINVAL, "%u devices: above the limit %u", n, VMS_DEVICES_MAX);
	if (n && !devs)
		return vms_fail(VMS_EINVAL, "%u devices but the device array is NULL", n);
	for (unsigned i = 0; i < n; i++)
		if (!devs[i])
			return vms_fail(VMS_EINVAL, "device %u is NULL", i);
	if (n < 2)
		return 0;
	sorted = malloc(n * sizeof(*sorted));
	if (!sorted)
		return vms_fail(VMS_ENOMEM, "out of memory");
	memcpy(sorted, devs, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_ptr);
	for (unsigned i = 1; i < n && !err; i++)
		if (sorted[i] == sorted[i - 1])
			err = vms_fail(VMS_EINVAL, "device '%s' is given twice",
				       vms_device_name(sorted[i]));
	free(sorted);
	return err;
}

/* Everything vms_migrate_send/recv take in, checked before any work. */
static int args_take(struct vms_migrate_opts *o, const struct vms_migrate_opts *in,
		     struct vms_device *const *devs, unsigned n,
		     const struct vms_migrate_report *rep)
{
	int err = opts_take(o, in);

	if (!err)
		err = report_check(rep);
	if (!err)
		err = devices_check(devs, n);
	return err;
}

/* Move up to `limit` bytes (0 = until the device has nothing more / EOF)
 * from a device into the stream. Returns bytes moved or a negative error. */
static long pump_device(struct vms_writer *w, struct sdev *s, uint64_t limit)
{
	uint64_t moved = 0;

	for (;;) {
		void *buf;
		size_t room;
		long r;
		int err = vms_writer_acquire(w, s->idx, &buf, &room);

		if (err)
			return err;
		if (limit && room > limit - moved)
			room = (size_t)(limit - moved);
		r = vms_device_read(s->d, buf, room);
		if (r < 0 && r != VMS_EAGAIN_DEV) {
			/* the device's message names it already */
			char m[VMS_MSG_MAX];

			snprintf(m, sizeof(m), "%s", vms_last_error());
			vms_writer_commit(w, s->idx, 0);
			return vms_fail_msg((int)r, m);
		}
		err = vms_writer_commit(w, s->idx, r > 0 ? (size_t)r : 0);
		if (err)
			return err;
		if (r == VMS_EAGAIN_DEV || r == 0)
			return (long)moved;
		moved += (uint64_t)r;
		if (limit && moved >= limit)
			return (long)moved;
	}
}

static void *stopcopy_main(void *p)
{
	struct stopcopy *sc = p;
	unsigned k;

	while (!atomic_load(&sc->err) && (k = atomic_fetch_add(&sc->next, 1)) < sc->n) {
		struct sdev *s = &sc->devs[sc->order[k]];
		/* The state change is part of the job: one device's (a driver
		 * saving its state in the ioctl) overlaps the others' data. */
		int err = vms_device_set_state(s->d, VMS_DEV_STOP_COPY);
		long r = err ? err : pump_device(sc->w, s, 0);

		err = r < 0 ? (int)r : 0;
		if (!err) {
			s->stop_bytes += (uint64_t)r;
			err = vms_writer_end_device(sc->w, s->idx);
		}
		if (!err) {
			s->downtime_ms = (double)(vms_now_ns() - sc->t_stop) / 1e6;
			/* the state is in the stream; the device may rest */
			err = vms_device_set_state(s->d, VMS_DEV_STOP);
		}
		if (err) {
			int zero = 0;

			s->err = err;
			pthread_mutex_lock(&sc->mu);
			if (atomic_compare_exchange_strong(&sc->err, &zero, err))
				snprintf(sc->msg, sizeof(sc->msg), "%s", vms_last_error());
			pthread_mutex_unlock(&sc->mu);
		}
	}
	return NULL;
}

static int stop_copy_all(struct vms_writer *w, struct sdev *devs, unsigned n, unsigned nthreads,
			 uint64_t t_stop)
{
	pthread_t tid[VMS_THREADS_MAX];
	struct stopcopy sc = { .w = w, .devs = devs, .n = n, .t_stop = t_stop };
	unsigned started = 0;
	int err;

	sc.order = calloc(n ? n : 1, sizeof(*sc.order));
	if (!sc.order)
		return vms_fail(VMS_ENOMEM, "out of memory");
	for (unsigned i = 0; i < n; i++)
		sc.order[i] = i;
	/* smallest first: many small devices finish while a big one streams */
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && devs[sc.order[j]].est < devs[sc.order[j - 1]].est; j--) {
			unsigned t = sc.order[j];

			sc.order[j] = sc.order[j - 1];
			sc.order[j - 1] = t;
		}
	pthread_mutex_init(&sc.mu, NULL);
	/* opts_take bounds nthreads; no more threads than devices to read */
	if (nthreads > n)
		nthreads = n;
	if (nthreads > VMS_THREADS_MAX)
		nthreads = VMS_THREADS_MAX;
	for (unsigned t = 1; t < nthreads; t++)
		if (pthread_create(&tid[started], NULL, stopcopy_main, &sc) == 0)
			started++;
	stopcopy_main(&sc); /* this thread works too */
	for (unsigned t = 0; t < started; t++)
		pthread_join(tid[t], NULL);
	pthread_mutex_destroy(&sc.mu);
	free(sc.order);
	err = atomic_load(&sc.err);
	return err ? vms_fail_msg(err, sc.msg) : 0;
}

static void fill_report(struct vms_migrate_report *rep, const struct sdev *devs, unsigned n)
{
	if (!rep)
		return;
	rep->ndev = 0;
	for (unsigned i = 0; i < n && rep->devs && i < rep->devs_cap; i++) {
		struct vms_migrate_dev_report *d = &rep->devs[i];

		d->precopy_bytes = devs[i].pre_bytes;
		d->stopcopy_bytes = devs[i].stop_bytes;
		d->est_stop_copy_bytes = devs[i].est;
		d->downtime_ms = devs[i].downtime_ms;
		d->result = devs[i].err;
		rep->ndev = i + 1;
	}
}

static double stream_rate(struct vms_writer *w)
{
	struct vms_stats st = { .size = sizeof(st) };

	vms_writer_stats(w, &st);
	return st.seconds > 0 ? (double)st.raw_bytes / st.seconds : 0.0;
}

/* ---- source ------------------------------------------------------------ */

/* One vms_migrate_send: its devices and what each step leaves to the next. */
struct send {
	struct vms_writer *w;
	struct vms_migrate_opts o;
	struct sdev *sd;
	unsigned n;
	bool any_precopy;
	bool vm_stopped;         /* stop_vm succeeded: resume_vm on failure */
	uint32_t rounds;
	double est_ms;           /* downtime estimate at switchover */
	uint64_t t_stop;         /* when the VM stopped, 0 = not yet */
};

/* Every device: capabilities, first estimate, DEVICE_BEGIN, and PRE_COPY
 * for those that take part in precopy. */
static int begin_devices(struct send *s, struct vms_device *const *devs)
{
	int err = 0;

	for (unsigned i = 0; i < s->n && !err; i++) {
		struct vms_device_desc desc = VMS_DEVICE_DESC_INIT;
		struct sdev *d = &s->sd[i];

		d->d = devs[i];
		err = vms_device_caps(devs[i], &d->caps);
		if (err)
			break;
		if (vms_device_stop_copy_size(devs[i], &d->est) != 0)
			d->est = UINT64_MAX; /* no estimate from this device */
		desc.kind = vms_device_kind(devs[i]);
		desc.name = vms_device_name(devs[i]);
		desc.size_hint = d->est;
		err = vms_writer_begin_device(s->w, &desc, &d->idx);
		d->precopy = (d->caps & VMS_DEVCAP_PRE_COPY) &&
			     !(s->o.flags & VMS_MIGRATE_F_NO_PRECOPY);
		if (!err && d->precopy) {
			err = vms_device_set_state(devs[i], VMS_DEV_PRE_COPY);
			s->any_precopy = true;
		}
	}
	return err;
}

/* What a device says it still has for precopy, into the round. Initial
 * bytes count until they first reach 0 (they only go down, uapi vfio.h)
 * and from a REINIT on again: the device has new initial data, which must
 * be sent before switchover as the first was; the accounting restarts. */
static void precopy_account(struct sdev *d, struct vms_round_info *ri)
{
	struct vms_precopy_info pi = VMS_PRECOPY_INFO_INIT;

	if (vms_device_precopy_info2(d->d, &pi) != 0)
		return;
	if (pi.flags & VMS_PRECOPY_REINIT) {
		d->initial_out = false;
		ri->reinits++;
	}
	if (pi.initial_bytes == 0)
		d->initial_out = true;
	if (!d->initial_out)
		ri->initial_bytes += pi.initial_bytes;
	ri->remaining_bytes += pi.initial_bytes + pi.dirty_bytes;
}

/* One precopy round: drain what every precopy device has now, then ask
 * every device for the rest (some drivers only refill after that) and
 * for a new stop-copy estimate. Fills ri. */
static int precopy_round(struct send *s, struct vms_round_info *ri)
{
	uint64_t t0 = vms_now_ns();
	int err;

	err = vms_writer_phase(s->w, VMS_PHASE_PRECOPY, ri->round);
	for (unsigned i = 0; i < s->n && !err; i++) {
		struct sdev *d = &s->sd[i];
		long r;

		if (!d->precopy)
			continue;
		r = pump_device(s->w, d, 0);
		if (r < 0) {
			err = d->err = (int)r;
			break;
		}
		d->pre_bytes += (uint64_t)r;
		ri->round_bytes += (uint64_t)r;
	}
	for (unsigned i = 0; i < s->n && !err; i++) {
		struct sdev *d = &s->sd[i];
		uint64_t est = 0;

		if (d->precopy)
			precopy_account(d, ri);
		if (vms_device_stop_copy_size(d->d, &est) == 0)
			d->est = est;
		ri->stop_copy_bytes += d->est == UINT64_MAX ? 0 : d->est;
	}
	if (err)
		return err;
	ri->round_seconds = (double)(vms_now_ns() - t0) / 1e9;
	ri->throughput = stream_rate(s->w);
	ri->est_downtime_ms = (ri->throughput > 0 ? (double)ri->stop_copy_bytes /
							     ri->throughput * 1e3
						 : 0) + PER_DEVICE_OVERHEAD_MS * s->n;
	return 0;
}

/* Precopy rounds while the VM runs, until the VMM (on_round) or the
 * default rule says switch over, or max_rounds. */
static int precopy(struct send *s)
{
	while (s->any_precopy && s->rounds < s->o.max_rounds) {
		struct vms_round_info ri = { .size = sizeof(ri) };
		int decision, err;

		ri.round = ++s->rounds;
		err = precopy_round(s, &ri);
		if (err)
			return err;
		s->est_ms = ri.est_downtime_ms;
		if (s->o.on_round) {
			decision = s->o.on_round(s->o.user, &ri);
			if (decision < 0)
				return vms_fail(decision, "the VMM cancelled the migration after "
						"round %u", ri.round);
		} else {
			/* switchover is sensible once the initial bytes are out
			 * and the estimate fits the limit */
			decision = ri.initial_bytes == 0 &&
				   ri.est_downtime_ms <= s->o.downtime_limit_ms;
		}
		if (decision > 0)
			break;
	}
	return 0;
}

/* Switchover. Whatever is queued goes out while the VM still runs (the
 * destination takes its devices to RESUMING at DEVICE_BEGIN, not in the
 * downtime); then the VM stops. */
static int switchover(struct send *s)
{
	int err = vms_writer_phase(s->w, VMS_PHASE_SWITCHOVER, 0);

	if (!err)
		err = vms_writer_flush(s->w);
	if (err)
		return err;
	if (!s->any_precopy) {
		double rate = stream_rate(s->w);
		uint64_t total = 0;

		for (unsigned i = 0; i < s->n; i++)
			total += s->sd[i].est == UINT64_MAX ? 0 : s->sd[i].est;
		s->est_ms = (rate > 0 ? (double)total / rate * 1e3 : 0) +
			    PER_DEVICE_OVERHEAD_MS * s->n;
	}
	if (s->o.stop_vm) {
		err = s->o.stop_vm(s->o.user);
		if (err)
			vms_fail(err, "the VMM could not stop the VM");
	}
	s->vm_stopped = !err;
	s->t_stop = vms_now_ns();
	return err;
}

/* Every P2P device stops initiating peer-to-peer DMA before any device
 * stops (RUNNING_P2P / PRE_COPY_P2P, the kernel's prescribed order). */
static int quiesce_p2p(struct send *s)
{
	int err = 0;

	for (unsigned i = 0; i < s->n && !err; i++) {
		struct sdev *d = &s->sd[i];
		uint32_t st;

		if (!(d->caps & VMS_DEVCAP_P2P) || vms_device_state(d->d, &st) != 0)
			continue;
		if (st == VMS_DEV_RUNNING)
			err = vms_device_set_state(d->d, VMS_DEV_RUNNING_P2P);
		else if (st == VMS_DEV_PRE_COPY)
			err = vms_device_set_state(d->d, VMS_DEV_PRE_COPY_P2P);
		if (err)
			d->err = err;
	}
	return err;
}

/* Stop-copy: every device's remaining state, read concurrently (STOP_COPY
 * itself is each stop-copy worker's first step). */
static int stop_copy(struct send *s)
{
	int err = vms_writer_phase(s->w, VMS_PHASE_STOPCOPY, 0);

	if (!err)
		err = stop_copy_all(s->w, s->sd, s->n,
				    s->o.threads ? s->o.threads : VMS_MIGRATE_THREADS_DEFAULT,
				    s->t_stop);
	return err;
}

static void send_report(const struct send *s, struct vms_migrate_report *rep, uint64_t t0,
			int err)
{
	if (!rep)
		return;
	rep->rounds = s->rounds;
	rep->est_downtime_ms = s->est_ms;
	rep->downtime_ms = s->t_stop && !err ? (double)(vms_now_ns() - s->t_stop) / 1e6 : 0;
	rep->total_seconds = (double)(vms_now_ns() - t0) / 1e9;
	fill_report(rep, s->sd, s->n);
}

/* Back to a running source: stream aborted, devices RUNNING, VM resumed.
 * The original error stays the one reported. */
static void roll_back_source(struct send *s, int err)
{
	char msg[VMS_MSG_MAX];

	snprintf(msg, sizeof(msg), "%s", vms_last_error());
	vms_writer_abort(s->w, err, msg);
	for (unsigned i = 0; i < s->n; i++) {
		uint32_t st;

		if (!s->sd[i].d)
			continue; /* not begun: never touched */
		if (vms_device_state(s->sd[i].d, &st) == 0 && st == VMS_DEV_ERROR)
			vms_device_reset(s->sd[i].d);
		vms_device_set_state(s->sd[i].d, VMS_DEV_RUNNING);
	}
	if (s->vm_stopped && s->o.resume_vm)
		s->o.resume_vm(s->o.user);
	vms_fail_msg(err, msg);
}

int vms_migrate_send(struct vms_writer *w, struct vms_device *const *devs, unsigned n,
		     const struct vms_migrate_opts *opts, struct vms_migrate_report *rep)
{
	struct send s = { .w = w, .n = n };
	uint64_t t0 = vms_now_ns();
	int err;

	err = args_take(&s.o, opts, devs, n, rep);
	if (err)
		return err;
	s.sd = calloc(n ? n : 1, sizeof(*s.sd));
	if (!s.sd)
		return vms_fail(VMS_ENOMEM, "out of memory");

	err = begin_devices(&s, devs);
	if (!err)
		err = precopy(&s);
	if (!err)
		err = switchover(&s);
	if (!err)
		err = quiesce_p2p(&s);
	if (!err)
		err = stop_copy(&s);
	if (!err)
		err = vms_writer_finish(w); /* EOS, then the destination's acknowledgement */
	send_report(&s, rep, t0, err);
	if (err)
		roll_back_source(&s, err);
	free(s.sd);
	return err;
}

/* ---- destination ------------------------------------------------------- */

struct rdev_map {
	struct vms_device *d;
	int slot;                /* index into devs, or -1 */
	bool loading;
	uint64_t pre_bytes, stop_bytes;
	int32_t result;
};

static int write_all(struct vms_device *d, const void *buf, size_t len)
{
	long r = vms_device_write(d, buf, len);

	if (r < 0)
		return (int)r;
	if ((size_t)r != len)
		return vms_fail(VMS_EDEVIO, "device %s took %ld of %zu bytes", vms_device_name(d), r,
				len);
	return 0;
}

static int write_zeros(struct vms_device *d, uint64_t len)
{
	static const uint8_t zeros[64 << 10];

	while (len) {
		size_t k = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int err = write_all(d, zeros, k);

		if (err)
			return err;
		len -= k;
	}
	return 0;
}

/* How stream devices find their destination device: decided at the first
 * DEVICE_BEGIN and kept for the whole stream, never mixed. */
enum { MATCH_UNSET, MATCH_NAME, MATCH_POSITION };

/* The destination device for stream device `index` named `name`, or a
 * VMS_EDEVICE that names both sides. By name if the first stream device's
 * name is a destination device's (then every stream device must find its
 * name), else by position (then no stream device may carry the name of a
 * destination device at another position: names that partly match are a
 * mistake, not a hint). */
static int match_device(struct vms_device *const *devs, unsigned n, const bool *used, int *mode,
			char *first, const char *name, uint32_t index)
{
	int named = -1;

	for (unsigned i = 0; i < n && named < 0; i++)
		if (strcmp(vms_device_name(devs[i]), name) == 0)
			named = (int)i;
	if (*mode == MATCH_UNSET) {
		*mode = named >= 0 ? MATCH_NAME : MATCH_POSITION;
		snprintf(first, VMS_NAME_MAX + 1, "%s", name);
	}
	if (*mode == MATCH_NAME) {
		if (named >= 0 && !used[named])
			return named;
		if (named >= 0)
			return vms_fail(VMS_EDEVICE, "stream device %u \"%s\": destination device "
					"\"%s\" already took an earlier stream device of that name",
					index, name, name);
		if (index < n)
			return vms_fail(VMS_EDEVICE, "stream device %u \"%s\" matches no destination "
					"device (devices are matched by name, as the first stream "
					"device \"%s\" was; destination device %u is \"%s\")",
					index, name, first, index, vms_device_name(devs[index]));
		return vms_fail(VMS_EDEVICE, "stream device %u \"%s\" matches no destination "
				"device (devices are matched by name, as the first stream device "
				"\"%s\" was)", index, name, first);
	}
	if (index >= n)
		return vms_fail(VMS_EDEVICE, "stream device %u \"%s\" matches no destination device "
				"(devices are matched by position, as the first stream device "
				"\"%s\" matched no name; there are %u destination devices)",
				index, name, first, n);
	if (named >= 0 && named != (int)index)
		return vms_fail(VMS_EDEVICE, "stream device %u \"%s\" would go by position to "
				"destination device %u \"%s\", but destination device %d is named "
				"\"%s\" (devices are matched by position, as the first stream device "
				"\"%s\" matched no name: name the devices alike on both sides, or "
				"not at all)", index, name, index, vms_device_name(devs[index]), named,
				name, first);
	return (int)index;
}

/* A device's message without its "device 'NAME': " (to put it in context). */
static const char *without_prefix(const char *msg, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(msg, "device '", 8) == 0 && strncmp(msg + 8, name, n) == 0 &&
	    strncmp(msg + 8 + n, "': ", 3) == 0)
		return msg + 8 + n + 3;
	return msg;
}

/* One vms_migrate_recv: the stream's devices as they begin, and where
 * each one goes. */
struct recv {
	struct vms_reader *r;
	struct vms_device *const *devs;
	unsigned n;
	bool *used;              /* destination devices already taken */
	struct rdev_map *map;    /* by stream device index */
	uint32_t nmap;
	uint32_t phase;
	int mode;                /* MATCH_* */
	char first[VMS_NAME_MAX + 1];
};

/* DEVICE_BEGIN: find the destination device and start loading it. *mp is
 * the new map entry (also on failure, once it exists). */
static int on_begin(struct recv *rc, const struct vms_event *ev, struct rdev_map **mp)
{
	struct rdev_map *nm = realloc(rc->map, (rc->nmap + 1) * sizeof(*rc->map)), *m;
	int slot, err;

	if (!nm)
		return vms_fail(VMS_ENOMEM, "out of memory");
	rc->map = nm;
	m = *mp = &rc->map[rc->nmap++];
	memset(m, 0, sizeof(*m));
	slot = match_device(rc->devs, rc->n, rc->used, &rc->mode, rc->first, ev->u.begin.name,
			    ev->device);
	if (slot < 0)
		return slot;
	rc->used[slot] = true;
	m->slot = slot;
	m->d = rc->devs[slot];
	err = vms_device_set_state(m->d, VMS_DEV_RESUMING);
	m->loading = !err;
	return err;
}

/* DATA or ZERO: the next bytes of the device's state. */
static int on_data(struct recv *rc, struct rdev_map *m, const struct vms_event *ev)
{
	int err = ev->type == VMS_REC_DATA ? write_all(m->d, ev->u.data.data, ev->u.data.len)
					   : write_zeros(m->d, ev->u.data.len);

	if (rc->phase == VMS_PHASE_PRECOPY)
		m->pre_bytes += ev->raw_len;
	else
		m->stop_bytes += ev->raw_len;
	return err;
}

/* DEVICE_END, verified: only now may the device validate and use it. */
static int on_end(struct recv *rc, struct rdev_map *m, const struct vms_event *ev)
{
	int err = 0;

	m->loading = false;
	m->result = vms_device_set_state(m->d, VMS_DEV_STOP);
	if (m->result) {
		char dm[VMS_MSG_MAX];

		snprintf(dm, sizeof(dm), "%s", vms_last_error());
		vms_device_reset(m->d);
		err = vms_fail(m->result, "device '%s' rejected its state: %s",
			       vms_device_name(m->d), without_prefix(dm, vms_device_name(m->d)));
	}
	vms_reader_set_device_result(rc->r, ev->device, m->result);
	return err;
}

/* Read the stream to its end (or the first error), loading each device. */
static int load_stream(struct recv *rc)
{
	struct vms_event ev = VMS_EVENT_INIT;
	int err = 0, more;

	while ((more = vms_reader_next(rc->r, &ev)) == 1) {
		struct rdev_map *m = ev.device < rc->nmap ? &rc->map[ev.device] : NULL;

		switch (ev.type) {
		case VMS_REC_DEVICE_BEGIN:
			err = on_begin(rc, &ev, &m);
			break;
		case VMS_REC_PHASE:
			rc->phase = ev.u.phase.phase;
			break;
		case VMS_REC_DATA:
		case VMS_REC_ZERO:
			err = on_data(rc, m, &ev);
			break;
		case VMS_REC_DEVICE_END:
			err = on_end(rc, m, &ev);
			break;
		default:
			break;
		}
		if (err) {
			if (m && !m->result)
				m->result = err;
			return err;
		}
	}
	return more < 0 ? more : 0;
}

/* Never leave half a state loaded: every device still loading is reset. */
static void reset_unfinished(struct recv *rc, int err)
{
	for (uint32_t i = 0; i < rc->nmap; i++) {
		if (rc->map[i].loading && rc->map[i].d) {
			vms_device_reset(rc->map[i].d);
			if (!rc->map[i].result)
				rc->map[i].result = err ? err : VMS_ECANCELED;
		}
	}
}

static void recv_report(const struct recv *rc, struct vms_migrate_report *rep, uint64_t t0)
{
	if (!rep)
		return;
	rep->rounds = 0;
	rep->total_seconds = (double)(vms_now_ns() - t0) / 1e9;
	rep->ndev = 0;
	for (uint32_t i = 0; i < rc->nmap && rep->devs && i < rep->devs_cap; i++) {
		struct vms_migrate_dev_report *d = &rep->devs[i];

		memset(d, 0, sizeof(*d));
		d->precopy_bytes = rc->map[i].pre_bytes;
		d->stopcopy_bytes = rc->map[i].stop_bytes;
		d->result = rc->map[i].result;
		rep->ndev = i + 1;
	}
}

int vms_migrate_recv(struct vms_reader *r, struct vms_device *const *devs, unsigned n,
		     const struct vms_migrate_opts *opts, struct vms_migrate_report *rep)
{
	struct recv rc = { .r = r, .devs = devs, .n = n, .phase = VMS_PHASE_PRECOPY,
			   .mode = MATCH_UNSET };
	struct vms_migrate_opts o;
	uint64_t t0 = vms_now_ns();
	char msg[VMS_MSG_MAX];
	int err, ack;

	err = args_take(&o, opts, devs, n, rep);
	if (err)
		return err;
	rc.used = calloc(n ? n : 1, sizeof(*rc.used));
	if (!rc.used)
		return vms_fail(VMS_ENOMEM, "out of memory");
	err = load_stream(&rc);
	snprintf(msg, sizeof(msg), "%s", err ? vms_last_error() : "");
	reset_unfinished(&rc, err);
	/* acknowledge: every device's result, or the stream's error */
	ack = vms_reader_ack(r, err, err ? msg : NULL);
	if (!err && ack) {
		err = ack;
		snprintf(msg, sizeof(msg), "%s", vms_last_error()); /* the ack's own */
	}
	recv_report(&rc, rep, t0);
	free(rc.map);
	free(rc.used);
	if (err)
		vms_fail_msg(err, msg);
	return err;
}
