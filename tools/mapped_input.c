/* SPDX-License-Identifier: MIT */
/*
 * Sending a regular file without copying it: the file is mapped in windows
 * and each window is lent to the writer (vms_writer_write_ref), which
 * checksums it in place and sends whole chunks straight from the page cache.
 * That saves the read() copy into the writer's buffers, about a third of
 * the sender's CPU on a plain stream (docs/PERFORMANCE.md).
 *
 * A mapped file that shrinks while it is being sent raises SIGBUS on the
 * next access to a page beyond its new end. The handler (tools/common.c)
 * removes a temporary output file, reports an I/O error and exits; the
 * receiver then sees the stream end without its EOS and writes nothing, as
 * for any other sender failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "common.h"
#include "mapped_input.h"

/* Window size: large enough that mapping costs little per byte (one mmap
 * and munmap per 8 MiB), small enough that what is mapped (and counted in
 * the resident set) stays small: a window is unmapped as soon as its last
 * chunk is written, and the writer holds at most its chunk slots. Two
 * chunks at least, so whole chunks are lent, not copied. */
#define MAP_WINDOW_MIN (8u << 20)

struct window {
	void *p;
	size_t len;
};

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
			  uint32_t chunk, const char *what, int exit_io, uint64_t *sent,
			  bool *own, char *why, size_t whylen)
{
	/* whole chunks per window (so none is split and copied), 2 at least */
	size_t per = chunk ? ((size_t)MAP_WINDOW_MIN + chunk - 1) / chunk : 1;
	size_t window = (size_t)chunk * (per < 2 ? 2 : per);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char line[400];
	uint64_t off = 0;

	*own = false;
	snprintf(line, sizeof(line), "VMS_EIO: input %s shrank (or failed to read) while it was "
		 "being sent; stream not completed", what);
	vms_tool_sigbus_exit(line, exit_io);

	while (off < size) {
		size_t len = size - off < window ? (size_t)(size - off) : window;
		size_t delta = (size_t)(off % page); /* mmap offsets are page-aligned */
		struct window *win = malloc(sizeof(*win));
		uint8_t *p;
		int err;

		if (!win) {
			*own = true;
			snprintf(why, whylen, "out of memory");
			return VMS_ENOMEM;
		}
		/* MAP_POPULATE: the page-table entries of the window in one call,
		 * not one fault per page on the hot path. */
		p = mmap(NULL, len + delta, PROT_READ, MAP_SHARED | MAP_POPULATE, fd,
			 (off_t)(off - delta));
		if (p == MAP_FAILED) {
			int e = errno;

			free(win);
			if (off == 0)
				return 1; /* not mappable here: the caller reads instead */
			*own = true;
			snprintf(why, whylen, "mapping input %s at byte %llu: %s", what,
				 (unsigned long long)off, strerror(e));
			return VMS_EIO;
		}
		win->p = p;
		win->len = len + delta;
		/* window_done runs once the writer no longer reads the window */
		err = vms_writer_write_ref(w, dev, p + delta, len, window_done, win);
		if (err)
			return err;
		off += len;
		*sent = off;
	}
	return 0;
}
