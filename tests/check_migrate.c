/* SPDX-License-Identifier: MIT */
/*
 * Migration orchestration end to end over a real loopback session (and over
 * a stream file): several simulated devices with precopy, and every fault
 * ending in the documented state on both sides with its exact error.
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <vmstream.h>

#define MAXDEV 8

struct side {
	char specbuf[MAXDEV][160];
	const char *specs[MAXDEV];
	const char *names[MAXDEV];
	unsigned n;
	struct vms_device *devs[MAXDEV];
	struct vms_migrate_dev_report dr[MAXDEV];
	struct vms_migrate_report rep;
	int err;
	char msg[512];
	uint32_t state_after[MAXDEV];
};

struct dest_arg {
	struct vms_listener *l;
	struct side *s;
};

static uint8_t psk[VMS_KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static int vm_stopped, vm_resumed, rounds_seen;
static double run_downtime_ms; /* run()'s downtime_limit_ms (0 = default) */
/* the source's writer, and what it had written when the VM was stopped */
static struct vms_writer *cur_w;
static struct vms_stats at_stop;

static void open_side(struct side *s)
{
	for (unsigned i = 0; i < s->n; i++)
		ck_assert_int_eq(vms_device_open_sim(&s->devs[i], s->names[i], s->specs[i]), 0);
	s->rep.size = sizeof(s->rep);
	s->rep.devs = s->dr;
	s->rep.devs_cap = MAXDEV;
}

static void close_side(struct side *s)
{
	for (unsigned i = 0; i < s->n; i++) {
		vms_device_state(s->devs[i], &s->state_after[i]);
		vms_device_free(s->devs[i]);
	}
}

static void *dest_main(void *p)
{
	struct dest_arg *a = p;
	struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
	struct vms_reader *r;

	ro.threads = 2;
	a->s->err = vms_accept(a->l, &r, &ro, 10000);
	if (!a->s->err) {
		a->s->err = vms_migrate_recv(r, a->s->devs, a->s->n, NULL, &a->s->rep);
		snprintf(a->s->msg, sizeof(a->s->msg), "%s", vms_last_error());
		vms_reader_free(r);
	}
	return NULL;
}

static int stop_vm(void *u)
{
	(void)u;
	vm_stopped++;
	at_stop.size = sizeof(at_stop);
	if (cur_w)
		ck_assert_int_eq(vms_writer_stats(cur_w, &at_stop), 0);
	return 0;
}

static int resume_vm(void *u)
{
	(void)u;
	vm_resumed++;
	return 0;
}

static int switch_after_3(void *u, const struct vms_round_info *ri)
{
	(void)u;
	rounds_seen++;
	ck_assert_uint_eq(ri->round, (uint32_t)rounds_seen);
	ck_assert(ri->est_downtime_ms > 0);
	return ri->round >= 3;
}

static int cancel_round(void *u, const struct vms_round_info *ri)
{
	(void)u;
	(void)ri;
	return VMS_ECANCELED;
}

/* Run source and destination over loopback; returns the source's error. */
static int run(struct side *src, struct side *dst, vms_round_fn on_round)
{
	struct vms_net_opts net = VMS_NET_OPTS_INIT;
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_migrate_opts mo = VMS_MIGRATE_OPTS_INIT;
	struct vms_listener *l;
	struct vms_writer *w;
	struct dest_arg a;
	pthread_t th;
	char addr[64];
	int err;

	vm_stopped = vm_resumed = rounds_seen = 0;
	open_side(src);
	open_side(dst);
	net.psk = psk;
	net.lanes = 2;
	net.idle_timeout_ms = 10000;
	ck_assert_int_eq(vms_listen(&l, "127.0.0.1:0", &net), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", vms_listener_port(l));
	a.l = l;
	a.s = dst;
	ck_assert_int_eq(pthread_create(&th, NULL, dest_main, &a), 0);
	wo.compress = "zstd:1";
	wo.cipher = VMS_CIPHER_AES_256_GCM;
	wo.threads = 2;
	wo.chunk_size = 256 << 10;
	ck_assert_int_eq(vms_writer_connect(&w, addr, &net, &wo), 0);
	mo.on_round = on_round;
	mo.stop_vm = stop_vm;
	mo.resume_vm = resume_vm;
	mo.downtime_limit_ms = run_downtime_ms;
	cur_w = w;
	memset(&at_stop, 0, sizeof(at_stop));
	err = vms_migrate_send(w, src->devs, src->n, &mo, &src->rep);
	cur_w = NULL;
	src->err = err;
	snprintf(src->msg, sizeof(src->msg), "%s", vms_last_error());
	vms_writer_free(w);
	pthread_join(th, NULL);
	vms_listener_free(l);
	close_side(src);
	close_side(dst);
	return err;
}

static void devices(struct side *s, const char *gpu_extra, const char *small_extra)
{
	char (*spec)[160] = s->specbuf;

	s->n = 6;
	snprintf(spec[0], sizeof(spec[0]), "size=8M,profile=mixed,dirty=1M,seed=1%s", gpu_extra);
	for (int i = 1; i <= 4; i++)
		snprintf(spec[i], sizeof(spec[0]), "size=4K,profile=text,dirty=4K,seed=%d", i + 1);
	snprintf(spec[5], sizeof(spec[0]), "size=176,profile=random,seed=9%s", small_extra);
	s->names[0] = "gpu0";
	s->names[1] = "qat0";
	s->names[2] = "qat1";
	s->names[3] = "qat2";
	s->names[4] = "qat3";
	s->names[5] = "hisi0";
	for (unsigned i = 0; i < s->n; i++)
		s->specs[i] = spec[i];
}

START_TEST(precopy_six_devices)
{
	struct side src = { 0 }, dst = { 0 };

	devices(&src, "", "");
	devices(&dst, "", "");
	ck_assert_int_eq(run(&src, &dst, switch_after_3), 0);
	ck_assert_int_eq(dst.err, 0);
	ck_assert_int_eq(vm_stopped, 1);
	ck_assert_int_eq(vm_resumed, 0);
	ck_assert_uint_eq(src.rep.rounds, 3);
	ck_assert_int_eq(rounds_seen, 3);
	ck_assert_uint_eq(src.rep.ndev, 6);
	ck_assert_uint_eq(dst.rep.ndev, 6);
	for (unsigned i = 0; i < 6; i++) {
		/* what the source sent is what the destination loaded */
		ck_assert_uint_eq(src.dr[i].precopy_bytes, dst.dr[i].precopy_bytes);
		ck_assert_uint_eq(src.dr[i].stopcopy_bytes, dst.dr[i].stopcopy_bytes);
		ck_assert_uint_gt(src.dr[i].stopcopy_bytes, 0);
		ck_assert_int_eq(dst.dr[i].result, 0);
		ck_assert(src.dr[i].downtime_ms > 0);
		ck_assert(src.dr[i].downtime_ms <= src.rep.downtime_ms);
		/* destination devices validated their image: STOP */
		ck_assert_uint_eq(dst.state_after[i], VMS_DEV_STOP);
		ck_assert_uint_eq(src.state_after[i], VMS_DEV_STOP);
	}
	/* the big device had precopy data in every round */
	ck_assert_uint_gt(src.dr[0].precopy_bytes, 8u << 20);
	ck_assert(src.rep.est_downtime_ms > 0);
	{
		uint64_t pre = 0;

		for (unsigned i = 0; i < 6; i++) {
			/* the estimate at switchover counted the staged delta:
			 * exactly what stop-copy read */
			ck_assert_uint_eq(src.dr[i].est_stop_copy_bytes, src.dr[i].stopcopy_bytes);
			pre += src.dr[i].precopy_bytes;
		}
		/* before the VM stopped, everything queued was written: every
		 * precopy byte, the 6 DEVICE_BEGIN and 4 PHASE records */
		ck_assert_uint_eq(at_stop.raw_bytes, pre);
		ck_assert_uint_ge(at_stop.records, 6 + 3 + 1);
	}
}
END_TEST

/* A device that reports new initial data (VMS_PRECOPY_REINIT) in round 1:
 * the built-in rule, which would switch over after round 1 (every initial
 * byte out, any estimate within the limit), sends the device's initial
 * data again in round 2 first; the destination loads both and verifies
 * every device. */
static uint64_t reinit_initial[8];
static uint32_t reinit_seen[8];

static int record_round(void *u, const struct vms_round_info *ri)
{
	(void)u;
	ck_assert_uint_ge(ri->size, sizeof(*ri));
	if (ri->round < 8) {
		reinit_initial[ri->round] = ri->initial_bytes;
		reinit_seen[ri->round] = ri->reinits;
	}
	/* a VMM that wants two rounds at least, and the initial data out */
	return ri->round >= 2 && ri->initial_bytes == 0;
}

START_TEST(precopy_reinit)
{
	struct side src = { 0 }, dst = { 0 };

	run_downtime_ms = VMS_TIMEOUT_MAX_MS; /* only the initial bytes decide */
	/* without the fault: one round */
	devices(&src, "", "");
	devices(&dst, "", "");
	ck_assert_int_eq(run(&src, &dst, NULL), 0);
	ck_assert_uint_eq(src.rep.rounds, 1);
	ck_assert_uint_eq(src.dr[0].precopy_bytes, 8u << 20);

	/* gpu0's first precopy info says REINIT: the full 8 MiB again */
	memset(&src, 0, sizeof(src));
	memset(&dst, 0, sizeof(dst));
	devices(&src, ",fault=reinit,fault_at=1", "");
	devices(&dst, "", "");
	ck_assert_int_eq(run(&src, &dst, NULL), 0);
	ck_assert_int_eq(dst.err, 0);
	ck_assert_uint_eq(src.rep.rounds, 2);
	ck_assert_uint_eq(src.dr[0].precopy_bytes, 2 * (8u << 20));
	ck_assert_int_eq(vm_stopped, 1);
	ck_assert_uint_eq(dst.rep.ndev, 6);
	for (unsigned i = 0; i < 6; i++) {
		ck_assert_uint_eq(dst.dr[i].precopy_bytes, src.dr[i].precopy_bytes);
		ck_assert_uint_eq(dst.dr[i].stopcopy_bytes, src.dr[i].stopcopy_bytes);
		ck_assert_int_eq(dst.dr[i].result, 0);
		ck_assert_uint_eq(dst.state_after[i], VMS_DEV_STOP);
		ck_assert_uint_eq(src.state_after[i], VMS_DEV_STOP);
	}

	/* What the VMM sees, with a REINIT after the initial data was out
	 * (round 1): its initial bytes count again in round 2 (a VMM that
	 * switches at round 2 with no initial bytes left must wait), and are
	 * out after round 3. */
	memset(&src, 0, sizeof(src));
	memset(&dst, 0, sizeof(dst));
	memset(reinit_initial, 0xff, sizeof(reinit_initial));
	memset(reinit_seen, 0xff, sizeof(reinit_seen));
	devices(&src, ",fault=reinit,fault_at=2", "");
	devices(&dst, "", "");
	ck_assert_int_eq(run(&src, &dst, record_round), 0);
	ck_assert_int_eq(dst.err, 0);
	ck_assert_uint_eq(src.rep.rounds, 3);
	ck_assert_uint_eq(reinit_seen[1], 0);
	ck_assert_uint_eq(reinit_initial[1], 0);
	ck_assert_uint_eq(reinit_seen[2], 1);
	ck_assert_uint_eq(reinit_initial[2], 8u << 20);
	ck_assert_uint_eq(reinit_seen[3], 0);
	ck_assert_uint_eq(reinit_initial[3], 0);
	/* the first image, round 1's delta, the image again */
	ck_assert_uint_ge(src.dr[0].precopy_bytes, 2 * (8u << 20) + (1u << 20));
	for (unsigned i = 0; i < 6; i++) {
		ck_assert_uint_eq(dst.dr[i].precopy_bytes, src.dr[i].precopy_bytes);
		ck_assert_uint_eq(dst.state_after[i], VMS_DEV_STOP);
	}
	run_downtime_ms = 0;
}
END_TEST

START_TEST(source_read_fault)
{
	struct side src = { 0 }, dst = { 0 };

	devices(&src, ",fault=read", "");
	devices(&dst, "", "");
	ck_assert_int_eq(run(&src, &dst, switch_after_3), VMS_EDEVIO);
	/* the device's message, naming it once */
	ck_assert_str_eq(src.msg, "device 'gpu0': sim: simulated read fault (fault=read, read #1)");
	/* the stream was aborted: the destination reports the peer's abort
	 * and resets what it was loading */
	ck_assert_int_eq(dst.err, VMS_EPEERABORT);
	ck_assert_ptr_nonnull(strstr(dst.msg, "VMS_EDEVIO"));
	for (unsigned i = 0; i < 6; i++) {
		ck_assert_uint_ne(dst.state_after[i], VMS_DEV_RESUMING);
		/* source devices run again */
		ck_assert_uint_eq(src.state_after[i], VMS_DEV_RUNNING);
	}
}
END_TEST

START_TEST(destination_resume_fault)
{
	struct side src = { 0 }, dst = { 0 };

	devices(&src, "", "");
	devices(&dst, "", ",fault=resume");
	ck_assert_int_eq(run(&src, &dst, switch_after_3), VMS_EPEERABORT);
	/* the sender learns which device and why */
	ck_assert_ptr_nonnull(strstr(src.msg, "hisi0"));
	ck_assert_ptr_nonnull(strstr(src.msg, "VMS_EDEVIO"));
	ck_assert_int_eq(dst.err, VMS_EDEVIO);
	ck_assert_str_eq(dst.msg, "device 'hisi0' rejected its state: image rejected at RESUMING -> "
				  "STOP: simulated fault (fault=resume) (RESUMING -> STOP; device now "
				  "in ERROR: reset it with vms_device_reset())");
	ck_assert_int_eq(vm_stopped, 1);
	ck_assert_int_eq(vm_resumed, 1);
	for (unsigned i = 0; i < 6; i++) {
		ck_assert_uint_eq(src.state_after[i], VMS_DEV_RUNNING);
		ck_assert_uint_ne(dst.state_after[i], VMS_DEV_RESUMING);
	}
}
END_TEST

START_TEST(cancel_in_precopy)
{
	struct side src = { 0 }, dst = { 0 };

	devices(&src, "", "");
	devices(&dst, "", "");
	ck_assert_int_eq(run(&src, &dst, cancel_round), VMS_ECANCELED);
	ck_assert_int_eq(vm_stopped, 0);
	ck_assert_int_eq(vm_resumed, 0);
	ck_assert_int_eq(dst.err, VMS_EPEERABORT);
	for (unsigned i = 0; i < 6; i++) {
		ck_assert_uint_eq(src.state_after[i], VMS_DEV_RUNNING);
		ck_assert_uint_ne(dst.state_after[i], VMS_DEV_RESUMING);
	}
}
END_TEST

START_TEST(destination_lacks_a_device)
{
	struct side src = { 0 }, dst = { 0 };

	devices(&src, "", "");
	devices(&dst, "", "");
	dst.n = 5; /* no "hisi0" */
	ck_assert_int_eq(run(&src, &dst, switch_after_3), VMS_EPEERABORT);
	ck_assert_int_eq(dst.err, VMS_EDEVICE);
	ck_assert_ptr_nonnull(strstr(dst.msg, "hisi0"));
	ck_assert_ptr_nonnull(strstr(src.msg, "VMS_EDEVICE"));
}
END_TEST

/* The same migration through a stream file: a snapshot restored later. */
START_TEST(through_a_file)
{
	struct side src = { 0 }, dst = { 0 };
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_migrate_opts mo = VMS_MIGRATE_OPTS_INIT;
	struct vms_writer *w;
	struct vms_reader *r;
	int fd = memfd_create("snap", 0);

	devices(&src, "", "");
	devices(&dst, "", "");
	open_side(&src);
	open_side(&dst);
	wo.threads = 0;
	mo.flags = VMS_MIGRATE_F_NO_PRECOPY;
	ck_assert_int_eq(vms_writer_open_fd(&w, fd, &wo), 0);
	ck_assert_int_eq(vms_migrate_send(w, src.devs, src.n, &mo, &src.rep), 0);
	vms_writer_free(w);
	ck_assert_uint_eq(src.rep.rounds, 0);
	ck_assert_int_eq((int)lseek(fd, 0, SEEK_SET), 0);
	ck_assert_int_eq(vms_reader_open_fd(&r, fd, NULL), 0);
	ck_assert_int_eq(vms_migrate_recv(r, dst.devs, dst.n, NULL, &dst.rep), 0);
	vms_reader_free(r);
	close_side(&src);
	close_side(&dst);
	for (unsigned i = 0; i < 6; i++) {
		ck_assert_uint_eq(dst.state_after[i], VMS_DEV_STOP);
		ck_assert_uint_eq(src.dr[i].precopy_bytes, 0);
		ck_assert_uint_eq(dst.dr[i].stopcopy_bytes, src.dr[i].stopcopy_bytes);
	}
	close(fd);
}
END_TEST

/* ---- a spy in front of a sim device: the arcs every device takes, in the
 * order they happen across the stop-copy threads; optionally one arc fails */

#define LOGMAX 256
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static struct { int dev; uint32_t state; } arclog[LOGMAX];
static int nlog;

struct spy {
	struct vms_device *inner;
	int idx;
	uint32_t fail_to; /* this arc fails (0 = none) */
};

static int spy_caps(void *impl, uint32_t *caps)
{
	return vms_device_caps(((struct spy *)impl)->inner, caps);
}

static int spy_set_state(void *impl, uint32_t state)
{
	struct spy *sp = impl;

	pthread_mutex_lock(&log_mu);
	if (nlog < LOGMAX) {
		arclog[nlog].dev = sp->idx;
		arclog[nlog++].state = state;
	}
	pthread_mutex_unlock(&log_mu);
	if (sp->fail_to && state == sp->fail_to)
		return VMS_EDEVIO;
	return vms_device_set_state(sp->inner, state);
}

static int spy_precopy_info(void *impl, uint64_t *i, uint64_t *d)
{
	return vms_device_precopy_info(((struct spy *)impl)->inner, i, d);
}

static int spy_size(void *impl, uint64_t *b)
{
	return vms_device_stop_copy_size(((struct spy *)impl)->inner, b);
}

static long spy_read(void *impl, void *buf, size_t len)
{
	return vms_device_read(((struct spy *)impl)->inner, buf, len);
}

static int spy_reset(void *impl)
{
	return vms_device_reset(((struct spy *)impl)->inner);
}

static const struct vms_device_ops spy_ops = {
	.size = sizeof(struct vms_device_ops),
	.caps = spy_caps,
	.set_state = spy_set_state,
	.precopy_info = spy_precopy_info,
	.stop_copy_size = spy_size,
	.read = spy_read,
	.reset = spy_reset,
};

/* Source: 6 spied sim devices (p2p=1) into a memfd stream. */
static int spied_send(struct side *src, struct spy *sp, uint32_t flags, int *fd)
{
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_migrate_opts mo = VMS_MIGRATE_OPTS_INIT;
	struct vms_device *outer[MAXDEV];
	struct vms_writer *w;
	int err;

	open_side(src);
	for (unsigned i = 0; i < src->n; i++) {
		sp[i].inner = src->devs[i];
		sp[i].idx = (int)i;
		ck_assert_int_eq(vms_device_new(&outer[i], src->names[i], VMS_DEVKIND_VFIO, &spy_ops,
						&sp[i]), 0);
	}
	*fd = memfd_create("stream", 0);
	ck_assert_int_ge(*fd, 0);
	wo.threads = 2;
	mo.flags = flags;
	mo.max_rounds = 2;
	mo.downtime_limit_ms = 1e-9; /* never: all rounds */
	mo.stop_vm = stop_vm;
	mo.resume_vm = resume_vm;
	vm_stopped = vm_resumed = 0;
	nlog = 0;
	ck_assert_int_eq(vms_writer_open_fd(&w, *fd, &wo), 0);
	err = vms_migrate_send(w, outer, src->n, &mo, &src->rep);
	snprintf(src->msg, sizeof(src->msg), "%s", vms_last_error());
	vms_writer_free(w);
	for (unsigned i = 0; i < src->n; i++) {
		vms_device_state(outer[i], &src->state_after[i]);
		vms_device_free(outer[i]);
	}
	close_side(src);
	return err;
}

/* Switchover: every device stops peer-to-peer DMA (RUNNING_P2P or
 * PRE_COPY_P2P) before any device stops; STOP_COPY itself happens in the
 * stop-copy threads. */
START_TEST(p2p_quiesce_first)
{
	struct side src = { 0 };
	struct spy sp[MAXDEV] = { 0 };
	int fd, first_stop = -1, last_p2p = -1, p2p = 0, sc = 0;

	devices(&src, "", ",precopy=0");
	ck_assert_int_eq(spied_send(&src, sp, 0, &fd), 0);
	for (int k = 0; k < nlog; k++) {
		uint32_t st = arclog[k].state;

		if (st == VMS_DEV_RUNNING_P2P || st == VMS_DEV_PRE_COPY_P2P) {
			last_p2p = k;
			p2p++;
		}
		if ((st == VMS_DEV_STOP || st == VMS_DEV_STOP_COPY) && first_stop < 0)
			first_stop = k;
		sc += st == VMS_DEV_STOP_COPY;
	}
	ck_assert_int_eq(p2p, 6);
	ck_assert_int_eq(sc, 6);
	ck_assert_int_lt(last_p2p, first_stop);
	for (unsigned i = 0; i < 6; i++)
		ck_assert_uint_eq(src.state_after[i], VMS_DEV_STOP);
	close(fd);
}
END_TEST

/* A device whose STOP_COPY arc fails in a stop-copy thread: one message
 * naming it once, the stream aborted, every source device running again
 * and the VM resumed. */
START_TEST(stop_copy_arc_fails)
{
	struct side src = { 0 };
	struct spy sp[MAXDEV] = { 0 };
	int fd;

	devices(&src, "", "");
	sp[2].fail_to = VMS_DEV_STOP_COPY; /* qat1 */
	ck_assert_int_eq(spied_send(&src, sp, VMS_MIGRATE_F_NO_PRECOPY, &fd), VMS_EDEVIO);
	ck_assert_str_eq(src.msg, "device 'qat1': state change failed: device "
				  "error (STOP -> STOP_COPY; device now in ERROR: reset it with "
				  "vms_device_reset())");
	ck_assert_int_eq(vm_stopped, 1);
	ck_assert_int_eq(vm_resumed, 1);
	ck_assert_int_eq(src.dr[2].result, VMS_EDEVIO);
	for (unsigned i = 0; i < 6; i++)
		ck_assert_uint_eq(src.state_after[i], VMS_DEV_RUNNING);
	close(fd);
}
END_TEST

/* ---- stop-copy threads ---- */

/* Eight small devices into a memfd stream with `threads` stop-copy
 * threads, then loaded back; every device must verify. */
static int eight_devices(uint32_t threads, struct side *src, struct side *dst)
{
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_migrate_opts mo = VMS_MIGRATE_OPTS_INIT;
	static const char *const names[8] = { "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7" };
	struct vms_writer *w;
	struct vms_reader *r;
	int fd = memfd_create("eight", 0), err;

	ck_assert_int_ge(fd, 0);
	for (struct side *s = src; s; s = s == src ? dst : NULL) {
		s->n = 8;
		for (unsigned i = 0; i < 8; i++) {
			snprintf(s->specbuf[i], sizeof(s->specbuf[i]),
				 "size=%uK,profile=text,seed=%u,precopy=0", 4 + 4 * i, 100 + i);
			s->specs[i] = s->specbuf[i];
			s->names[i] = names[i];
		}
		open_side(s);
	}
	wo.threads = 0;
	mo.threads = threads;
	mo.flags = VMS_MIGRATE_F_NO_PRECOPY;
	ck_assert_int_eq(vms_writer_open_fd(&w, fd, &wo), 0);
	err = vms_migrate_send(w, src->devs, src->n, &mo, &src->rep);
	snprintf(src->msg, sizeof(src->msg), "%s", vms_last_error());
	vms_writer_free(w);
	if (!err) {
		ck_assert_int_eq((int)lseek(fd, 0, SEEK_SET), 0);
		ck_assert_int_eq(vms_reader_open_fd(&r, fd, NULL), 0);
		dst->err = vms_migrate_recv(r, dst->devs, dst->n, NULL, &dst->rep);
		snprintf(dst->msg, sizeof(dst->msg), "%s", vms_last_error());
		vms_reader_free(r);
	}
	close_side(src);
	close_side(dst);
	close(fd);
	return err;
}

/* More stop-copy threads than devices, and more than the default 4: as
 * many threads as devices run (the rest would have nothing to do). This
 * once wrote past a 4-entry thread array (UBSan: index out of bounds). */
START_TEST(stop_copy_threads_above_devices)
{
	static const uint32_t counts[] = { 12, 8, 5, 1, VMS_THREADS_MAX };

	for (unsigned k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
		struct side src = { 0 }, dst = { 0 };

		ck_assert_msg(eight_devices(counts[k], &src, &dst) == 0, "threads=%u: %s", counts[k],
			      src.msg);
		ck_assert_msg(dst.err == 0, "threads=%u: %s", counts[k], dst.msg);
		ck_assert_uint_eq(src.rep.ndev, 8);
		for (unsigned i = 0; i < 8; i++) {
			ck_assert_int_eq(src.dr[i].result, 0);
			ck_assert_uint_eq(src.dr[i].stopcopy_bytes, (4 + 4 * i) << 10);
			ck_assert_uint_eq(dst.dr[i].stopcopy_bytes, src.dr[i].stopcopy_bytes);
			ck_assert_uint_eq(dst.state_after[i], VMS_DEV_STOP);
		}
	}
}
END_TEST

/* ---- what vms_migrate_send/recv take in: every field at its bounds and
 * one past them ---- */

static int sent_rounds;

static int switch_at_1(void *u, const struct vms_round_info *ri)
{
	(void)u;
	sent_rounds = (int)ri->round;
	return 1;
}

/* One small precopy sim device (or the caller's devices) sent into a
 * memfd stream with `mo` and `rep`. Returns vms_migrate_send's result; on
 * VMS_EINVAL asserts that nothing reached the sink and that the device
 * did not move. */
static int send_with(const struct vms_migrate_opts *mo, struct vms_migrate_report *rep,
		     struct vms_device *const *devs, unsigned n)
{
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_device *own = NULL;
	struct vms_writer *w;
	struct stat before, after;
	uint32_t st;
	int fd = memfd_create("bounds", 0), err;

	ck_assert_int_ge(fd, 0);
	if (!devs) {
		ck_assert_int_eq(vms_device_open_sim(&own, "dev", "size=8K,dirty=4K,seed=5"), 0);
		devs = &own;
		n = 1;
	}
	wo.threads = 0;
	ck_assert_int_eq(vms_writer_open_fd(&w, fd, &wo), 0);
	ck_assert_int_eq(fstat(fd, &before), 0);
	err = vms_migrate_send(w, devs, n, mo, rep);
	ck_assert_int_eq(fstat(fd, &after), 0);
	if (err == VMS_EINVAL) {
		ck_assert_int_eq((int)after.st_size, (int)before.st_size);
		if (own) {
			ck_assert_int_eq(vms_device_state(own, &st), 0);
			ck_assert_uint_eq(st, VMS_DEV_RUNNING);
		}
	}
	vms_writer_free(w);
	vms_device_free(own);
	close(fd);
	return err;
}

static int send_opts(const struct vms_migrate_opts *mo)
{
	return send_with(mo, NULL, NULL, 0);
}

START_TEST(migrate_opts_bounds)
{
	struct vms_migrate_opts mo = VMS_MIGRATE_OPTS_INIT;
	const struct vms_migrate_opts def = VMS_MIGRATE_OPTS_INIT;
	struct vms_migrate_dev_report dr[1];
	struct vms_migrate_report rep = { .size = sizeof(rep), .devs = dr, .devs_cap = 1 };

	/* size: exactly this header's struct */
	ck_assert_int_eq(send_opts(NULL), 0);
	ck_assert_int_eq(send_opts(&mo), 0);
	mo.size = sizeof(mo) + 1;
	ck_assert_int_eq(send_opts(&mo), VMS_EINVAL);
	ck_assert_ptr_nonnull(strstr(vms_last_error(), "size field"));
	mo.size = sizeof(mo) - 1;
	ck_assert_int_eq(send_opts(&mo), VMS_EINVAL);
	mo.size = 0;
	ck_assert_int_eq(send_opts(&mo), VMS_EINVAL);

	/* max_rounds: 0 = 30, 1 .. VMS_ROUNDS_MAX */
	mo = def;
	mo.downtime_limit_ms = 1e-9; /* never by the estimate: every round */
	ck_assert_int_eq(send_with(&mo, &rep, NULL, 0), 0);
	ck_assert_uint_eq(rep.rounds, 30);
	mo.max_rounds = 1;
	ck_assert_int_eq(send_with(&mo, &rep, NULL, 0), 0);
	ck_assert_uint_eq(rep.rounds, 1);
	mo.max_rounds = VMS_ROUNDS_MAX;
	mo.on_round = switch_at_1;
	sent_rounds = 0;
	ck_assert_int_eq(send_opts(&mo), 0);
	ck_assert_int_eq(sent_rounds, 1);
	mo.max_rounds = VMS_ROUNDS_MAX + 1;
	ck_assert_int_eq(send_opts(&mo), VMS_EINVAL);
	ck_assert_ptr_nonnull(strstr(vms_last_error(), "max_rounds 100001"));
	mo.max_rounds = UINT32_MAX;
	ck_assert_int_eq(send_opts(&mo), VMS_EINVAL);

	/* downtime_limit_ms: [0, VMS_TIMEOUT_MAX_MS], 0 = 300 */
	mo = def;
	mo.downtime_limit_ms = 0.0;
	ck_assert_int_eq(send_opts(&mo), 0);
	mo.downtime_limit_ms = -0.0;
	ck_assert_int_eq(send_opts(&mo), 0);
	mo.downtime_limit_ms = 4.9e-324; /* the smallest positive double */
	ck_assert_int_eq(send_opts(&mo), 0);
	mo.downtime_limit_ms = VMS_TIMEOUT_MAX_MS;
	ck_assert_int_eq(send_opts(&mo), 0);
	mo.downtime_limit_ms = nextafter(VMS_TIMEOUT_MAX_MS, INFINITY);
	ck_assert_int_eq(send_opts(&mo), VMS_EINVAL);
	ck_assert_ptr_nonnull(strstr(vms_last_error(), "downtime_limit_ms"));
	mo.downtime_limit_ms = -4.9e-324;
	ck_assert_int_eq(send_opts(&mo), VMS_EINVAL);
	mo.downtime_limit_ms = -1;
	ck_assert_int_eq(send_opts(&mo), VMS_EINVAL);
	mo.downtime_limit_ms = NAN;
	ck_assert_int_eq(send_opts(&mo), VMS_EINVAL);
	ck_assert_ptr_nonnull(strstr(vms_last_error(), "nan"));
	mo.downtime_limit_ms = INFINITY;
	ck_assert_int_eq(send_opts(&mo), VMS_EINVAL);
	mo.downtime_limit_ms = -INFINITY;
	ck_assert_int_eq(send_opts(&mo), VMS_EINVAL);

	/* threads: 0 .. VMS_THREADS_MAX, and VMS_THREADS_AUTO */
	mo = def;
	mo.flags = VMS_MIGRATE_F_NO_PRECOPY;
	mo.threads = VMS_THREADS_MAX;
	ck_assert_int_eq(send_opts(&mo), 0);
	mo.threads = VMS_THREADS_AUTO;
	ck_assert_int_eq(send_opts(&mo), 0);
	mo.threads = VMS_THREADS_MAX + 1;
	ck_assert_int_eq(send_opts(&mo), VMS_EINVAL);
	ck_assert_ptr_nonnull(strstr(vms_last_error(), "threads 65"));
	mo.threads = VMS_THREADS_AUTO - 1;
	ck_assert_int_eq(send_opts(&mo), VMS_EINVAL);

	/* flags: only the known bits */
	mo = def;
	mo.flags = VMS_MIGRATE_F_NO_PRECOPY;
	ck_assert_int_eq(send_with(&mo, &rep, NULL, 0), 0);
	ck_assert_uint_eq(rep.rounds, 0);
	mo.flags = VMS_MIGRATE_F_NO_PRECOPY << 1;
	ck_assert_int_eq(send_opts(&mo), VMS_EINVAL);
	ck_assert_str_eq(vms_last_error(), "migration options: unknown flags 0x2");
	mo.flags = 0x80000000u | VMS_MIGRATE_F_NO_PRECOPY;
	ck_assert_int_eq(send_opts(&mo), VMS_EINVAL);
}
END_TEST

START_TEST(migrate_report_and_devices_bounds)
{
	struct vms_migrate_opts mo = VMS_MIGRATE_OPTS_INIT;
	struct vms_migrate_dev_report dr[2];
	struct vms_migrate_report rep = { .size = sizeof(rep), .devs = dr, .devs_cap = 1 };
	struct vms_migrate_dev_report *many = calloc(VMS_DEVICES_MAX, sizeof(*many));
	struct vms_device *a, *b, *pair[2];
	struct vms_reader *r;
	int fd;

	ck_assert_ptr_nonnull(many);
	mo.flags = VMS_MIGRATE_F_NO_PRECOPY;
	/* size: exactly this header's struct */
	ck_assert_int_eq(send_with(&mo, &rep, NULL, 0), 0);
	ck_assert_uint_eq(rep.ndev, 1);
	rep.size = sizeof(rep) - 1;
	ck_assert_int_eq(send_with(&mo, &rep, NULL, 0), VMS_EINVAL);
	ck_assert_ptr_nonnull(strstr(vms_last_error(), "migration report: size field"));
	rep.size = sizeof(rep) + 1;
	ck_assert_int_eq(send_with(&mo, &rep, NULL, 0), VMS_EINVAL);
	rep.size = 0;
	ck_assert_int_eq(send_with(&mo, &rep, NULL, 0), VMS_EINVAL);
	/* devs_cap: 0 .. VMS_DEVICES_MAX, non-zero only with devs */
	rep.size = sizeof(rep);
	rep.devs_cap = 0;
	ck_assert_int_eq(send_with(&mo, &rep, NULL, 0), 0);
	ck_assert_uint_eq(rep.ndev, 0);
	rep.devs = NULL;
	ck_assert_int_eq(send_with(&mo, &rep, NULL, 0), 0);
	rep.devs_cap = 1;
	ck_assert_int_eq(send_with(&mo, &rep, NULL, 0), VMS_EINVAL);
	ck_assert_str_eq(vms_last_error(), "migration report: devs is NULL but devs_cap is 1");
	rep.devs = many;
	rep.devs_cap = VMS_DEVICES_MAX;
	ck_assert_int_eq(send_with(&mo, &rep, NULL, 0), 0);
	ck_assert_uint_eq(rep.ndev, 1);
	rep.devs_cap = VMS_DEVICES_MAX + 1;
	ck_assert_int_eq(send_with(&mo, &rep, NULL, 0), VMS_EINVAL);
	ck_assert_ptr_nonnull(strstr(vms_last_error(), "devs_cap 65537"));

	/* devices: at most VMS_DEVICES_MAX, none NULL, none twice */
	ck_assert_int_eq(vms_device_open_sim(&a, "a", "size=4K"), 0);
	ck_assert_int_eq(vms_device_open_sim(&b, "b", "size=4K"), 0);
	pair[0] = a;
	pair[1] = a;
	ck_assert_int_eq(send_with(&mo, NULL, pair, 2), VMS_EINVAL);
	ck_assert_str_eq(vms_last_error(), "device 'a' is given twice");
	pair[1] = NULL;
	ck_assert_int_eq(send_with(&mo, NULL, pair, 2), VMS_EINVAL);
	ck_assert_str_eq(vms_last_error(), "device 1 is NULL");
	ck_assert_int_eq(send_with(&mo, NULL, NULL, 0), 0); /* n = 0 is the helper's own */
	ck_assert_int_eq(send_with(&mo, NULL, pair, VMS_DEVICES_MAX + 1), VMS_EINVAL);
	ck_assert_ptr_nonnull(strstr(vms_last_error(), "65537 devices"));
	pair[1] = b;
	ck_assert_int_eq(send_with(&mo, NULL, pair, 2), 0);
	for (unsigned i = 0; i < 2; i++) {
		uint32_t st;

		ck_assert_int_eq(vms_device_state(pair[i], &st), 0);
		ck_assert_uint_eq(st, VMS_DEV_STOP);
	}

	/* the destination takes its arguments in the same way, before it
	 * reads anything */
	fd = memfd_create("one", 0);
	ck_assert_int_ge(fd, 0);
	{
		struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
		struct vms_device *c;
		struct vms_writer *w;

		ck_assert_int_eq(vms_device_open_sim(&c, "c", "size=4K"), 0);
		wo.threads = 0;
		ck_assert_int_eq(vms_writer_open_fd(&w, fd, &wo), 0);
		ck_assert_int_eq(vms_migrate_send(w, &c, 1, &mo, NULL), 0);
		vms_writer_free(w);
		vms_device_free(c);
	}
	ck_assert_int_eq((int)lseek(fd, 0, SEEK_SET), 0);
	ck_assert_int_eq(vms_reader_open_fd(&r, fd, NULL), 0);
	mo.downtime_limit_ms = NAN;
	ck_assert_int_eq(vms_migrate_recv(r, pair, 2, &mo, NULL), VMS_EINVAL);
	mo.downtime_limit_ms = 0;
	rep.devs = NULL;
	rep.devs_cap = 1;
	ck_assert_int_eq(vms_migrate_recv(r, pair, 2, &mo, &rep), VMS_EINVAL);
	pair[1] = a;
	ck_assert_int_eq(vms_migrate_recv(r, pair, 2, NULL, NULL), VMS_EINVAL);
	ck_assert_str_eq(vms_last_error(), "device 'a' is given twice");
	ck_assert_int_eq(vms_migrate_recv(r, NULL, 1, NULL, NULL), VMS_EINVAL);
	{
		/* nothing was read: the stream still loads */
		struct vms_device *c;
		uint32_t st;

		ck_assert_int_eq(vms_device_open_sim(&c, "c", "size=4K"), 0);
		ck_assert_int_eq(vms_migrate_recv(r, &c, 1, NULL, NULL), 0);
		ck_assert_int_eq(vms_device_state(c, &st), 0);
		ck_assert_uint_eq(st, VMS_DEV_STOP);
		vms_device_free(c);
	}
	vms_reader_free(r);
	close(fd);
	vms_device_free(a);
	vms_device_free(b);
	free(many);
}
END_TEST

/* ---- destination matching: all by name, or all by position ---- */

static int stream_fd = -1;

/* A stop-copy-only stream of the six devices, once per test process. */
static void make_stream(void)
{
	struct side src = { 0 };
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_migrate_opts mo = VMS_MIGRATE_OPTS_INIT;
	struct vms_writer *w;

	devices(&src, "", "");
	open_side(&src);
	stream_fd = memfd_create("snap", 0);
	ck_assert_int_ge(stream_fd, 0);
	wo.threads = 0;
	mo.flags = VMS_MIGRATE_F_NO_PRECOPY;
	ck_assert_int_eq(vms_writer_open_fd(&w, stream_fd, &wo), 0);
	ck_assert_int_eq(vms_migrate_send(w, src.devs, src.n, &mo, &src.rep), 0);
	vms_writer_free(w);
	close_side(&src);
}

/* Load the stream into destination devices named `names` (space
 * separated) whose specs are the stream's devices' in `order` (indices). */
static int load_named(const char *names, const unsigned *order, unsigned n, struct side *dst,
		      char *msg, size_t msglen)
{
	struct side all = { 0 };
	static char namebuf[MAXDEV][32];
	struct vms_reader *r;
	const char *p = names;
	int err;

	if (stream_fd < 0)
		make_stream();
	devices(&all, "", "");
	memset(dst, 0, sizeof(*dst));
	dst->n = n;
	for (unsigned i = 0; i < n; i++) {
		int len;

		ck_assert_int_eq(sscanf(p, "%31s%n", namebuf[i], &len), 1);
		p += len;
		memcpy(dst->specbuf[i], all.specbuf[order[i]], sizeof(dst->specbuf[i]));
		dst->specs[i] = dst->specbuf[i];
		dst->names[i] = namebuf[i];
	}
	open_side(dst);
	ck_assert_int_eq((int)lseek(stream_fd, 0, SEEK_SET), 0);
	ck_assert_int_eq(vms_reader_open_fd(&r, stream_fd, NULL), 0);
	err = vms_migrate_recv(r, dst->devs, dst->n, NULL, &dst->rep);
	snprintf(msg, msglen, "%s", vms_last_error());
	vms_reader_free(r);
	close_side(dst);
	return err;
}

START_TEST(match_by_name_or_position)
{
	static const unsigned same[] = { 0, 1, 2, 3, 4, 5 }, shuffled[] = { 5, 3, 0, 2, 1, 4 };
	struct side dst;
	char msg[512];

	/* by name, in another order */
	ck_assert_int_eq(load_named("hisi0 qat2 gpu0 qat1 qat0 qat3", shuffled, 6, &dst, msg,
				    sizeof(msg)), 0);
	for (unsigned i = 0; i < 6; i++)
		ck_assert_uint_eq(dst.state_after[i], VMS_DEV_STOP);
	/* by position: no destination device carries a stream device's name */
	ck_assert_int_eq(load_named("a b c d e f", same, 6, &dst, msg, sizeof(msg)), 0);
	for (unsigned i = 0; i < 6; i++)
		ck_assert_uint_eq(dst.state_after[i], VMS_DEV_STOP);
	/* by position, with a name that agrees at its own position */
	ck_assert_int_eq(load_named("a qat0 c d e f", same, 6, &dst, msg, sizeof(msg)), 0);
}
END_TEST

START_TEST(match_mismatches)
{
	static const unsigned same[] = { 0, 1, 2, 3, 4, 5 };
	struct side dst;
	char msg[512];

	/* Names that partly match: once "gpu0" matched no name the stream goes
	 * by position, and then "qat0" would land on "b" while a destination
	 * device is named "qat0" (the old rule loaded it into that one, and
	 * "qat1" by position into "c"). */
	ck_assert_int_eq(load_named("a b c d e qat0", same, 6, &dst, msg, sizeof(msg)),
			 VMS_EDEVICE);
	ck_assert_str_eq(msg, "stream device 1 \"qat0\" would go by position to destination "
			      "device 1 \"b\", but destination device 5 is named \"qat0\" "
			      "(devices are matched by position, as the first stream device "
			      "\"gpu0\" matched no name: name the devices alike on both sides, "
			      "or not at all)");
	/* none of the devices stays half loaded */
	for (unsigned i = 0; i < 6; i++)
		ck_assert_uint_ne(dst.state_after[i], VMS_DEV_RESUMING);
	/* by name, one missing */
	ck_assert_int_eq(load_named("gpu0 qat0 qat1 qat2 qat3 other", same, 6, &dst, msg,
				    sizeof(msg)), VMS_EDEVICE);
	ck_assert_str_eq(msg, "stream device 5 \"hisi0\" matches no destination device (devices "
			      "are matched by name, as the first stream device \"gpu0\" was; "
			      "destination device 5 is \"other\")");
	ck_assert_int_eq(load_named("gpu0 qat0 qat1 qat2 qat3", same, 5, &dst, msg, sizeof(msg)),
			 VMS_EDEVICE);
	ck_assert_str_eq(msg, "stream device 5 \"hisi0\" matches no destination device (devices "
			      "are matched by name, as the first stream device \"gpu0\" was)");
	/* by position, too few */
	ck_assert_int_eq(load_named("a b c", same, 3, &dst, msg, sizeof(msg)), VMS_EDEVICE);
	ck_assert_str_eq(msg, "stream device 3 \"qat2\" matches no destination device (devices "
			      "are matched by position, as the first stream device \"gpu0\" "
			      "matched no name; there are 3 destination devices)");
	for (unsigned i = 0; i < 3; i++)
		ck_assert_uint_ne(dst.state_after[i], VMS_DEV_RESUMING);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("migrate");
	TCase *tc = tcase_create("migrate");
	SRunner *sr;
	int failed;

	signal(SIGPIPE, SIG_IGN);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, precopy_six_devices);
	tcase_add_test(tc, precopy_reinit);
	tcase_add_test(tc, source_read_fault);
	tcase_add_test(tc, destination_resume_fault);
	tcase_add_test(tc, cancel_in_precopy);
	tcase_add_test(tc, destination_lacks_a_device);
	tcase_add_test(tc, through_a_file);
	tcase_add_test(tc, p2p_quiesce_first);
	tcase_add_test(tc, stop_copy_arc_fails);
	tcase_add_test(tc, stop_copy_threads_above_devices);
	tcase_add_test(tc, migrate_opts_bounds);
	tcase_add_test(tc, migrate_report_and_devices_bounds);
	tcase_add_test(tc, match_by_name_or_position);
	tcase_add_test(tc, match_mismatches);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
