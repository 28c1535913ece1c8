/* SPDX-License-Identifier: MIT */
/*
 * Migration orchestration end to end over a real loopback session (and over
 * a stream file): several simulated devices with precopy, and every fault
 * ending in the documented state on both sides with its exact error.
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
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
	err = vms_migrate_send(w, src->devs, src->n, &mo, &src->rep);
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
}
END_TEST

START_TEST(source_read_fault)
{
	struct side src = { 0 }, dst = { 0 };

	devices(&src, ",fault=read", "");
	devices(&dst, "", "");
	ck_assert_int_eq(run(&src, &dst, switch_after_3), VMS_EDEVIO);
	ck_assert_ptr_nonnull(strstr(src.msg, "gpu0"));
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
	ck_assert_ptr_nonnull(strstr(dst.msg, "hisi0"));
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

int main(void)
{
	Suite *s = suite_create("migrate");
	TCase *tc = tcase_create("migrate");
	SRunner *sr;
	int failed;

	signal(SIGPIPE, SIG_IGN);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, precopy_six_devices);
	tcase_add_test(tc, source_read_fault);
	tcase_add_test(tc, destination_resume_fault);
	tcase_add_test(tc, cancel_in_precopy);
	tcase_add_test(tc, destination_lacks_a_device);
	tcase_add_test(tc, through_a_file);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
