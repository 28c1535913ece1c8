/* SPDX-License-Identifier: MIT */
/*
 * Limits (base/limits.h and the public VMS_*_MAX) and the options structs
 * that take them in: every field at its bounds and one past, with the exact
 * code; the device cap through a real session, where both sides must reach
 * the same verdict for every device count the writer accepts; and budgets
 * that size themselves, so whatever a writer accepts at its defaults, a
 * reader at its defaults accepts.
 */
#define _GNU_SOURCE
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <vmstream.h>
#include "base/limits.h"
#include "testutil.h"

static const uint8_t key[VMS_KEY_LEN] = { 9, 8, 7, 6, 5, 4, 3, 2, 1 };
static const uint8_t psk[VMS_KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };

/* ---- writer options ----------------------------------------------------- */

static int open_writer(const struct vms_writer_opts *o)
{
	struct vms_writer *w = NULL;
	int fd = tu_memfd_new();
	int err = vms_writer_open_fd(&w, fd, o);

	vms_writer_free(w);
	close(fd);
	return err;
}

START_TEST(test_writer_opts_bounds)
{
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	char creator[VMS_CREATOR_MAX + 2];

	ck_assert_int_eq(open_writer(&o), 0);
	/* size field: the first release's struct .. this header's */
	o.size = (uint32_t)offsetof(struct vms_writer_opts, stream_id);
	ck_assert_int_eq(open_writer(&o), 0);
	o.size = (uint32_t)offsetof(struct vms_writer_opts, stream_id) - 1;
	ck_assert_int_eq(open_writer(&o), VMS_EINVAL);
	o.size = sizeof(o) + 1;
	ck_assert_int_eq(open_writer(&o), VMS_EINVAL);
	o.size = sizeof(o);

	o.chunk_size = VMS_CHUNK_MIN;
	ck_assert_int_eq(open_writer(&o), 0);
	o.chunk_size = VMS_CHUNK_MIN - 1;
	ck_assert_int_eq(open_writer(&o), VMS_EINVAL);
	o.chunk_size = VMS_CHUNK_MAX;
	ck_assert_int_eq(open_writer(&o), 0);
	o.chunk_size = VMS_CHUNK_MAX + 1;
	ck_assert_int_eq(open_writer(&o), VMS_EINVAL);
	o.chunk_size = 0;

	o.log_level = VMS_LOG_DEBUG;
	ck_assert_int_eq(open_writer(&o), 0);
	o.log_level = VMS_LOG_DEBUG + 1;
	ck_assert_int_eq(open_writer(&o), VMS_EINVAL);
	o.log_level = VMS_LOG_ERROR - 1;
	ck_assert_int_eq(open_writer(&o), VMS_EINVAL);
	o.log_level = VMS_LOG_ERROR;
	ck_assert_int_eq(open_writer(&o), 0);
	o.log_level = VMS_LOG_WARN;

	memset(creator, 'c', sizeof(creator));
	creator[VMS_CREATOR_MAX] = '\0';
	o.creator = creator;
	ck_assert_int_eq(open_writer(&o), 0);
	creator[VMS_CREATOR_MAX] = 'c';
	creator[VMS_CREATOR_MAX + 1] = '\0';
	ck_assert_int_eq(open_writer(&o), VMS_EINVAL);
	o.creator = NULL;

	o.threads = VMS_THREADS_MAX;
	ck_assert_int_eq(open_writer(&o), 0);
	o.threads = VMS_THREADS_MAX + 1;
	ck_assert_int_eq(open_writer(&o), VMS_EINVAL);
	o.threads = VMS_THREADS_AUTO;
	ck_assert_int_eq(open_writer(&o), 0);
	o.threads = 0;

	o.memory = VMS_MEMORY_MAX + 1;
	ck_assert_int_eq(open_writer(&o), VMS_EINVAL);
	/* the smallest budget: two slots of a 4 KiB chunk (+ AEAD room) */
	o.chunk_size = VMS_CHUNK_MIN;
	o.memory = 2 * 8192;
	ck_assert_int_eq(open_writer(&o), 0);
	o.memory = 2 * 8192 - 1;
	ck_assert_int_eq(open_writer(&o), VMS_EINVAL);
	ck_assert_ptr_nonnull(strstr(vms_last_error(), "needs at least 16384 (--memory 16384"));
	o.memory = 0;
	o.chunk_size = 0;

	o.cipher = VMS_CIPHER_CHACHA20_POLY1305;
	o.key = key;
	ck_assert_int_eq(open_writer(&o), 0);
	o.cipher = VMS_CIPHER_CHACHA20_POLY1305 + 1;
	ck_assert_int_eq(open_writer(&o), VMS_EINVAL);
	o.cipher = VMS_CIPHER_NONE;
	ck_assert_int_eq(open_writer(&o), VMS_EINVAL); /* a key but no cipher */
	o.key = NULL;

	o.flags = VMS_WRITER_F_NO_ZERO_ELISION;
	ck_assert_int_eq(open_writer(&o), 0);
	o.flags = VMS_WRITER_F_NO_ZERO_ELISION << 1;
	ck_assert_int_eq(open_writer(&o), VMS_EINVAL);
	o.flags = 0;

	o.compress = "zstd:19";
	ck_assert_int_eq(open_writer(&o), 0);
	o.compress = "zstd:23";
	ck_assert_int_eq(open_writer(&o), VMS_EINVAL);
}
END_TEST

/* ---- reader options ----------------------------------------------------- */

/* A small valid stream (one device, 10 KiB), in a memfd. */
static int small_stream(uint32_t chunk, const char *compress)
{
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_writer *w;
	uint8_t buf[10240];
	uint32_t dev;
	int fd = tu_memfd_new();

	wo.chunk_size = chunk;
	wo.compress = compress;
	tu_fill(buf, sizeof(buf), 7);
	d.name = "dev";
	ck_assert_int_eq(vms_writer_open_fd(&w, fd, &wo), 0);
	ck_assert_int_eq(vms_writer_begin_device(w, &d, &dev), 0);
	ck_assert_int_eq(vms_writer_write(w, dev, buf, sizeof(buf)), 0);
	ck_assert_int_eq(vms_writer_end_device(w, dev), 0);
	ck_assert_int_eq(vms_writer_finish(w), 0);
	vms_writer_free(w);
	return fd;
}

static int read_all(int fd, const struct vms_reader_opts *o)
{
	struct vms_event ev = VMS_EVENT_INIT;
	struct vms_reader *r = NULL;
	int err;

	lseek(fd, 0, SEEK_SET);
	err = vms_reader_open_fd(&r, fd, o);
	while (!err && (err = vms_reader_next(r, &ev)) == 1)
		err = 0;
	vms_reader_free(r);
	return err;
}

START_TEST(test_reader_opts_bounds)
{
	struct vms_reader_opts o = VMS_READER_OPTS_INIT;
	int fd = small_stream(VMS_CHUNK_MIN, NULL);

	ck_assert_int_eq(read_all(fd, &o), 0);
	o.size = (uint32_t)offsetof(struct vms_reader_opts, flags);
	ck_assert_int_eq(read_all(fd, &o), 0);
	o.size = (uint32_t)offsetof(struct vms_reader_opts, flags) - 1;
	ck_assert_int_eq(read_all(fd, &o), VMS_EINVAL);
	o.size = sizeof(o) + 1;
	ck_assert_int_eq(read_all(fd, &o), VMS_EINVAL);
	o.size = sizeof(o);

	o.max_chunk = VMS_CHUNK_MIN;
	ck_assert_int_eq(read_all(fd, &o), 0);
	o.max_chunk = VMS_CHUNK_MIN - 1;
	ck_assert_int_eq(read_all(fd, &o), VMS_EINVAL);
	o.max_chunk = VMS_CHUNK_MAX;
	ck_assert_int_eq(read_all(fd, &o), 0);
	o.max_chunk = VMS_CHUNK_MAX + 1;
	ck_assert_int_eq(read_all(fd, &o), VMS_EINVAL);
	o.max_chunk = 0;

	o.log_level = VMS_LOG_DEBUG + 1;
	ck_assert_int_eq(read_all(fd, &o), VMS_EINVAL);
	o.log_level = VMS_LOG_ERROR - 1;
	ck_assert_int_eq(read_all(fd, &o), VMS_EINVAL);
	o.log_level = VMS_LOG_DEBUG;
	ck_assert_int_eq(read_all(fd, &o), 0);
	o.log_level = VMS_LOG_WARN;

	o.threads = VMS_THREADS_MAX;
	ck_assert_int_eq(read_all(fd, &o), 0);
	o.threads = VMS_THREADS_MAX + 1;
	ck_assert_int_eq(read_all(fd, &o), VMS_EINVAL);
	o.threads = 0;

	o.memory = VMS_MEMORY_MAX + 1;
	ck_assert_int_eq(read_all(fd, &o), VMS_EINVAL);
	o.memory = 8192; /* one slot: 4 KiB chunk + AEAD room, page rounded */
	ck_assert_int_eq(read_all(fd, &o), 0);
	o.memory = 8191; /* a stream refused at its preamble (FORMAT.md rule 22) */
	ck_assert_int_eq(read_all(fd, &o), VMS_ELENGTH);
	o.memory = 0;

	o.flags = VMS_READER_F_HEADERS_ONLY;
	ck_assert_int_eq(read_all(fd, &o), 0);
	o.flags = VMS_READER_F_HEADERS_ONLY << 1;
	ck_assert_int_eq(read_all(fd, &o), VMS_EINVAL);
	close(fd);
}
END_TEST

/* Rule: whatever a writer accepts at its defaults, a reader at its defaults
 * accepts: every chunk size x codec x cipher, default memory on both sides,
 * with and without threads. */
START_TEST(test_default_budgets_agree)
{
	static const char *codecs[] = { NULL, "zstd", "zstd:19", "auto" };
	static const uint32_t ciphers[] = { VMS_CIPHER_NONE, VMS_CIPHER_AES_256_GCM,
					    VMS_CIPHER_CHACHA20_POLY1305 };
	unsigned threads = (unsigned)_i;

	for (uint32_t chunk = VMS_CHUNK_MIN; chunk <= VMS_CHUNK_MAX; chunk *= 4)
		for (unsigned c = 0; c < 4; c++)
			for (unsigned k = 0; k < 3; k++) {
				struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
				struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
				struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
				struct vms_writer *w;
				static uint8_t buf[300 << 10];
				uint32_t dev;
				int fd = tu_memfd_new();

				tu_fill(buf, sizeof(buf), chunk + c);
				wo.chunk_size = chunk;
				wo.compress = codecs[c];
				wo.cipher = ciphers[k];
				wo.key = k ? key : NULL;
				wo.threads = threads;
				ro.key = k ? key : NULL;
				ro.threads = threads;
				d.name = "dev";
				ck_assert_msg(vms_writer_open_fd(&w, fd, &wo) == 0, "chunk %u %s %u: %s",
					      chunk, codecs[c] ? codecs[c] : "none", ciphers[k],
					      vms_last_error());
				ck_assert_int_eq(vms_writer_begin_device(w, &d, &dev), 0);
				ck_assert_int_eq(vms_writer_write(w, dev, buf, sizeof(buf)), 0);
				ck_assert_int_eq(vms_writer_end_device(w, dev), 0);
				ck_assert_int_eq(vms_writer_finish(w), 0);
				vms_writer_free(w);
				ck_assert_msg(read_all(fd, &ro) == 0, "chunk %u %s %u: %s", chunk,
					      codecs[c] ? codecs[c] : "none", ciphers[k],
					      vms_last_error());
				close(fd);
			}
}
END_TEST

/* ---- network options ---------------------------------------------------- */

static int try_listen(const struct vms_net_opts *n)
{
	struct vms_listener *l = NULL;
	int err = vms_listen(&l, "127.0.0.1:0", n);

	vms_listener_free(l);
	return err;
}

START_TEST(test_net_opts_bounds)
{
	struct vms_net_opts n = VMS_NET_OPTS_INIT;
	char id[VMS_PSK_IDENTITY_MAX + 2];

	ck_assert_int_eq(try_listen(&n), 0);
	n.size = sizeof(n) - 1;
	ck_assert_int_eq(try_listen(&n), VMS_EINVAL);
	n.size = sizeof(n) + 1;
	ck_assert_int_eq(try_listen(&n), VMS_EINVAL);
	n.size = sizeof(n);

	n.lanes = VMS_LANES_MAX;
	ck_assert_int_eq(try_listen(&n), 0);
	n.lanes = VMS_LANES_MAX + 1;
	ck_assert_int_eq(try_listen(&n), VMS_EINVAL);
	n.lanes = 0; /* = 1 */
	ck_assert_int_eq(try_listen(&n), 0);

	n.connect_timeout_ms = VMS_TIMEOUT_MAX_MS;
	ck_assert_int_eq(try_listen(&n), 0);
	n.connect_timeout_ms = VMS_TIMEOUT_MAX_MS + 1;
	ck_assert_int_eq(try_listen(&n), VMS_EINVAL);
	n.connect_timeout_ms = -1;
	ck_assert_int_eq(try_listen(&n), VMS_EINVAL);
	n.connect_timeout_ms = 0;

	n.idle_timeout_ms = VMS_TIMEOUT_MAX_MS;
	ck_assert_int_eq(try_listen(&n), 0);
	n.idle_timeout_ms = VMS_TIMEOUT_MAX_MS + 1;
	ck_assert_int_eq(try_listen(&n), VMS_EINVAL);
	n.idle_timeout_ms = -1;
	ck_assert_int_eq(try_listen(&n), VMS_EINVAL);
	n.idle_timeout_ms = 0;

	n.io = VMS_IO_POSIX;
	ck_assert_int_eq(try_listen(&n), 0);
	n.io = VMS_IO_POSIX + 1;
	ck_assert_int_eq(try_listen(&n), VMS_EINVAL);
	n.io = VMS_IO_AUTO;

	n.rate_limit = VMS_RATE_MAX;
	ck_assert_int_eq(try_listen(&n), 0);
	n.rate_limit = VMS_RATE_MAX + 1;
	ck_assert_int_eq(try_listen(&n), VMS_EINVAL);
	n.rate_limit = 0;

	n.flags = VMS_NET_F_INSECURE | VMS_NET_F_ALLOW_PLAINTEXT;
	ck_assert_int_eq(try_listen(&n), 0);
	n.flags = VMS_NET_F_ALLOW_PLAINTEXT << 1;
	ck_assert_int_eq(try_listen(&n), VMS_EINVAL);
	n.flags = 0;

	n.psk = psk;
	memset(id, 'i', sizeof(id));
	id[VMS_PSK_IDENTITY_MAX] = '\0';
	n.psk_identity = id;
	ck_assert_int_eq(try_listen(&n), 0);
	id[VMS_PSK_IDENTITY_MAX] = 'i';
	id[VMS_PSK_IDENTITY_MAX + 1] = '\0';
	ck_assert_int_eq(try_listen(&n), VMS_EINVAL);
	n.psk_identity = "";
	ck_assert_int_eq(try_listen(&n), VMS_EINVAL);
	n.psk_identity = NULL;
}
END_TEST

/* ---- the device cap, through a session --------------------------------- */

struct recv_arg {
	struct vms_listener *l;
	unsigned devices;     /* DEVICE_BEGIN records seen */
	int err;              /* first failure, or the result of a clean end */
	int acked;
};

static void *recv_main(void *p)
{
	struct recv_arg *a = p;
	struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
	struct vms_event ev = VMS_EVENT_INIT;
	struct vms_reader *r = NULL;
	int err = vms_accept(a->l, &r, &ro, 30000);

	while (!err && (err = vms_reader_next(r, &ev)) == 1) {
		err = 0;
		if (ev.type == VMS_REC_DEVICE_BEGIN)
			a->devices++;
	}
	if (!err)
		a->acked = vms_reader_ack(r, 0, NULL) == 0;
	a->err = err;
	vms_reader_free(r);
	return NULL;
}

/* n devices of one byte each over a PSK session: the writer's verdict and
 * the reader's. */
static void session_devices(unsigned n, int *w_err, struct recv_arg *a)
{
	struct vms_net_opts net = VMS_NET_OPTS_INIT;
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_writer *w;
	pthread_t th;
	char addr[64];
	int err = 0;

	net.psk = psk;
	wo.cipher = VMS_CIPHER_AES_256_GCM;
	memset(a, 0, sizeof(*a));
	ck_assert_int_eq(vms_listen(&a->l, "127.0.0.1:0", &net), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", vms_listener_port(a->l));
	ck_assert_int_eq(pthread_create(&th, NULL, recv_main, a), 0);
	ck_assert_int_eq(vms_writer_connect(&w, addr, &net, &wo), 0);
	for (unsigned i = 0; i < n && !err; i++) {
		char name[16];
		uint32_t dev;
		uint8_t b = (uint8_t)i;

		snprintf(name, sizeof(name), "d%u", i);
		d.name = name;
		err = vms_writer_begin_device(w, &d, &dev);
		if (!err)
			err = vms_writer_write(w, dev, &b, 1);
		if (!err)
			err = vms_writer_end_device(w, dev);
	}
	if (err) {
		*w_err = err;
		vms_writer_abort(w, err, vms_last_error());
	} else {
		*w_err = vms_writer_finish(w);
	}
	vms_writer_free(w);
	pthread_join(th, NULL);
	vms_listener_free(a->l);
}

START_TEST(test_device_cap_one_verdict)
{
	struct recv_arg a;
	int werr;

	/* at the cap: the acknowledgement carries an entry per device (1.5 MiB,
	 * over the 64 KiB that once split the verdict) and both sides succeed */
	session_devices(VMS_DEVICES_MAX, &werr, &a);
	ck_assert_msg(werr == 0, "writer: %s", vms_last_error());
	ck_assert_int_eq(a.err, 0);
	ck_assert_int_eq(a.acked, 1);
	ck_assert_uint_eq(a.devices, VMS_DEVICES_MAX);
}
END_TEST

START_TEST(test_device_cap_past)
{
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_writer *w;
	uint32_t dev;
	int fd = tu_memfd_new();

	/* the writer refuses the device that crosses the cap, with the code the
	 * receiver gives for it (check_stream: VMS_EDEVICE at DEVICE_BEGIN) */
	d.name = "d";
	ck_assert_int_eq(vms_writer_open_fd(&w, fd, &wo), 0);
	for (unsigned i = 0; i < VMS_DEVICES_MAX; i++)
		ck_assert_int_eq(vms_writer_begin_device(w, &d, &dev), 0);
	ck_assert_uint_eq(dev, VMS_DEVICES_MAX - 1);
	ck_assert_int_eq(vms_writer_begin_device(w, &d, &dev), VMS_EDEVICE);
	ck_assert_str_eq(vms_last_error(), "too many devices (limit 65536)");
	vms_writer_free(w);
	close(fd);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("limits");
	TCase *tc = tcase_create("options");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_writer_opts_bounds);
	tcase_add_test(tc, test_reader_opts_bounds);
	tcase_add_test(tc, test_net_opts_bounds);
	tcase_add_loop_test(tc, test_default_budgets_agree, 0, 3);
	suite_add_tcase(s, tc);
	tc = tcase_create("devices");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_device_cap_one_verdict);
	tcase_add_test(tc, test_device_cap_past);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	tu_require_memfd();
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
