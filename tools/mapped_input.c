/* SPDX-License-Identifier: MIT */
/*
 * Sending a regular file without copying it: the file is mapped in windows
 * and each window is lent to the writer (vms_writer_write_ref), which
 * checksums it in place and sends whole chunks straight from the page cache.
 * That saves the read() copy into the writer's buffers, about a third of
 * the sender's CPU on a plain stream (docs/PERFORMANCE.md).
 *
 * A mapped file that shrinks while it is being sent would raise SIGBUS on
 * the next access to a page beyond its new end. The handler reports that as
 * an I/O error and exits; the receiver then sees the stream end without its
 * EOS and writes nothing, as for any other sender failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "mapped_input.h"

/* Window size: large enough that mapping costs nothing per byte, small
 * enough that the mapped (resident) part stays bounded: the writer holds at
 * most its chunk slots, so at most two windows are mapped at a time. */
#define MAP_WINDOW (32u << 20)

struct window {
	void *p;
	size_t len;
};

static char sigbus_msg[512];
static size_t sigbus_len;
static int sigbus_exit;

static void on_sigbus(int sig)
{
	ssize_t n;

	(void)sig;
	n = write(STDERR_FILENO, sigbus_msg, sigbus_len);
	(void)n;
	_exit(sigbus_exit);
}

static void window_done(void *user)
{
	struct window *win = user;

	munmap(win->p, win->len);
	free(win);
}

bool vms_mapped_input_shrank(int fd, uint64_t size)
{
	struct stat st;

	return fstat(fd, &st) == 0 && (uint64_t)st.st_size < size;
}

bool vms_mapped_input_usable(int fd, uint64_t size)
{
	struct stat st;

	return size != UINT64_MAX && size > 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	       (uint64_t)st.st_size == size;
}

int vms_mapped_input_send(struct vms_writer *w, uint32_t dev, int fd, uint64_t size,
			  const char *what, int exit_io, uint64_t *sent, char *why, size_t whylen)
{
	struct sigaction sa;
	uint64_t off = 0;
	int err = 0;

	snprintf(sigbus_msg, sizeof(sigbus_msg),
		 "vmstream-send: error: VMS_EIO: input %s shrank while it was being sent; "
		 "stream not completed\n", what);
	sigbus_len = strlen(sigbus_msg);
	sigbus_exit = exit_io;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigbus;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);

	while (off < size) {
		size_t len = size - off < MAP_WINDOW ? (size_t)(size - off) : MAP_WINDOW;
		struct window *win = malloc(sizeof(*win));
		void *p;

		if (!win) {
			snprintf(why, whylen, "out of memory");
			return VMS_ENOMEM;
		}
		/* MAP_POPULATE: the page-table entries of the window in one call,
		 * not one fault per page on the hot path. */
		p = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, (off_t)off);
		if (p == MAP_FAILED) {
			snprintf(why, whylen, "mapping input %s at byte %llu: %s", what,
				 (unsigned long long)off, strerror(errno));
			free(win);
			return VMS_EIO;
		}
		(void)madvise(p, len, MADV_SEQUENTIAL);
		win->p = p;
		win->len = len;
		/* window_done runs once the writer no longer reads the window */
		err = vms_writer_write_ref(w, dev, p, len, window_done, win);
		if (err)
			return err;
		off += len;
		*sent = off;
	}
	return 0;
}
