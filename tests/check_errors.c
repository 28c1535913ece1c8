/* SPDX-License-Identifier: MIT */
/*
 * The error rule (vmstream.h): a public function returns 0 or a negative
 * enum vms_err, never -errno; a failed system call's errno is kept with the
 * message (vms_last_errno()). -errno and the enum share one int, so an errno
 * that leaked out would be named as the wrong error (-EIO == VMS_EMAGIC).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <vmstream.h>
#include "testutil.h"

START_TEST(test_codes_named_and_contiguous)
{
	int last = 0;

	/* every code from VMS_OK down to the last one has a name and a text,
	 * and the one past it has neither */
	for (int c = 0; vms_errname(c); c--)
		last = c;
	ck_assert_int_eq(last, VMS_EPHASE);
	for (int c = VMS_OK; c >= VMS_EPHASE; c--) {
		ck_assert_ptr_nonnull(vms_errname(c));
		ck_assert_str_ne(vms_strerror(c), "unknown error");
	}
	ck_assert_ptr_null(vms_errname(VMS_EPHASE - 1));
	ck_assert_ptr_null(vms_errname(1));
	ck_assert_ptr_null(vms_errname(-2147483647 - 1));
	ck_assert_str_eq(vms_strerror(VMS_EPHASE - 1), "unknown error");
}
END_TEST

START_TEST(test_syscall_failure_keeps_errno)
{
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_writer *w = NULL;
	struct vms_reader *r = NULL;
	uint8_t key[VMS_KEY_LEN];
	int fd;

	/* writing the preamble to a descriptor that is not open (a high
	 * number: a freed low one is taken again by the writer's own fds) */
	fd = 900;
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	ck_assert_int_eq(vms_writer_open_fd(&w, fd, &wo), VMS_EIO);
	ck_assert_ptr_null(w);
	ck_assert_int_eq(vms_last_errno(), EBADF);
	ck_assert_ptr_nonnull(strstr(vms_last_error(), strerror(EBADF)));

	/* reading a stream from a directory */
	fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(vms_reader_open_fd(&r, fd, NULL), VMS_EIO);
	ck_assert_int_eq(vms_last_errno(), EISDIR);
	close(fd);

	/* a key file that does not exist */
	ck_assert_int_eq(vms_key_load_file("/nonexistent/vmstream.key", key, 0), VMS_EKEY);
	ck_assert_int_eq(vms_last_errno(), ENOENT);

	/* a failure that is not a system call's leaves no errno behind */
	wo.chunk_size = 1;
	ck_assert_int_eq(vms_writer_open_fd(&w, 1, &wo), VMS_EINVAL);
	ck_assert_int_eq(vms_last_errno(), 0);
}
END_TEST

START_TEST(test_listen_in_use)
{
	struct vms_listener *a = NULL, *b = NULL;
	char addr[64];

	ck_assert_int_eq(vms_listen(&a, "127.0.0.1:0", NULL), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", vms_listener_port(a));
	ck_assert_int_eq(vms_listen(&b, addr, NULL), VMS_ENET);
	ck_assert_int_eq(vms_last_errno(), EADDRINUSE);
	vms_listener_free(a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("errors");
	TCase *tc = tcase_create("rule");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_codes_named_and_contiguous);
	tcase_add_test(tc, test_syscall_failure_keeps_errno);
	tcase_add_test(tc, test_listen_in_use);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
