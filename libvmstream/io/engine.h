/* SPDX-License-Identifier: MIT */
/*
 * I/O engines: move whole records between memory and file descriptors
 * (sockets, pipes, files). Two implementations behind one interface:
 *  - io_uring (liburing): buffers of the caller's arena registered once;
 *    submissions batched; short transfers resubmitted internally;
 *  - posix: poll() + non-blocking send/recv for sockets; poll() then plain
 *    read/write for files and pipes (pipe writes through a private
 *    non-blocking reopen of the pipe, so a stalled reader cannot hold a
 *    thread in write(); the caller's O_NONBLOCK flags are never changed).
 * VMS_ENGINE_AUTO picks io_uring when the kernel allows it (not disabled by
 * sysctl kernel.io_uring_disabled, not blocked by seccomp: the probe is a
 * real io_uring_queue_init + a NOP round trip), else posix. The environment
 * variable VMS_IO=uring|posix overrides AUTO.
 *
 * One engine is used by one thread at a time (no internal locking); it may
 * move to another thread between calls, also with operations pending.
 * io_uring ties each request to the thread that submitted it: if that thread
 * exits while one is pending, the engine submits it again from the thread
 * that waits next. Freeing an engine cancels its pending operations; nothing
 * touches their buffers afterwards.
 *
 * SIGPIPE: socket writes use MSG_NOSIGNAL and never raise it. A write to a
 * pipe whose reader has gone raises SIGPIPE like write(2) does: the caller
 * is expected to ignore SIGPIPE (signal(SIGPIPE, SIG_IGN)); the write then
 * completes with -EPIPE.
 */
#ifndef VMS_ENGINE_H
#define VMS_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum vms_engine_kind {
	VMS_ENGINE_AUTO = 0,
	VMS_ENGINE_URING = 1,
	VMS_ENGINE_POSIX = 2,
};

#define VMS_ENGINE_DEPTH_MAX 4096u /* most operations one engine keeps pending */
#define VMS_ENGINE_IOV_MAX 4       /* most iovecs in one vms_engine_writev() */

struct vms_engine;

struct vms_io_done {
	void *user;   /* as passed when queued */
	long res;     /* bytes transferred (writev: all of them), 0 = EOF (recv), or -errno */
};

/* depth: max operations in flight (1..VMS_ENGINE_DEPTH_MAX). arena/arena_len:
 * memory that queued buffers usually live in (registered with io_uring as
 * fixed buffers; may be NULL). Returns 0 or a negative enum vms_err
 * (VMS_EUNSUPPORTED if URING was requested explicitly and is not available),
 * message via vms_fail(). */
int vms_engine_new(struct vms_engine **out, int kind, unsigned depth, void *arena,
		   size_t arena_len);
void vms_engine_free(struct vms_engine *e);
/* "io_uring" or "posix" */
const char *vms_engine_name(const struct vms_engine *e);
int vms_engine_kind(const struct vms_engine *e);

/* Queue writing ALL bytes of iov[0..n) (n <= 4) to fd, in order after the
 * writes already queued on the same fd. The iov array is copied; the buffers
 * must stay valid until the completion. Completes once with res = total
 * bytes, or -errno (EPIPE, ECONNRESET, ...). If a write fails, the writes
 * queued behind it on the same fd complete with -ECANCELED without being
 * attempted. VMS_EINVAL for n outside 1..4, a total of 0 bytes or a bad fd;
 * VMS_ESTATE when depth operations are already pending. */
int vms_engine_writev(struct vms_engine *e, int fd, const struct iovec *iov, int n, void *user);

/* Queue one receive of up to len bytes from fd into buf (completes with the
 * byte count, 0 at EOF, or -errno). At most one receive per fd in flight
 * (a second one is VMS_ESTATE). */
int vms_engine_recv(struct vms_engine *e, int fd, void *buf, size_t len, void *user);

/* Submit what is queued and wait up to timeout_ms (-1 = forever, 0 = poll)
 * for completions; fills up to max entries of done. Returns the number filled
 * (0 on timeout) or a negative enum vms_err. */
int vms_engine_wait(struct vms_engine *e, struct vms_io_done *done, unsigned max, int timeout_ms);

/* Operations queued or in flight. */
unsigned vms_engine_pending(const struct vms_engine *e);

/* Cancel every operation queued or in flight, e.g. to give up on a peer
 * that stopped reading. Each still completes once through vms_engine_wait(),
 * with -ECANCELED unless it finished first; a write canceled midway may have
 * put part of its bytes on the fd. Returns 0 or a negative enum vms_err. */
int vms_engine_cancel(struct vms_engine *e);

/* Synchronous read of exactly len bytes (fewer only at EOF) with a timeout
 * for each wait (-1 = none). Returns bytes read, or -ETIMEDOUT / -errno (bytes
 * read before a timeout are then lost; nothing touches buf after the call
 * returned). Must not be mixed with queued operations on the same fd;
 * completions of queued operations on other fds are kept for the next
 * vms_engine_wait(). */
long vms_engine_read_full(struct vms_engine *e, int fd, void *buf, size_t len, int timeout_ms);

/* Synchronous write of all of buf with a per-wait timeout. 0 or -errno. */
int vms_engine_write_full(struct vms_engine *e, int fd, const void *buf, size_t len,
			  int timeout_ms);

/* Is io_uring usable here? (cached probe) */
int vms_engine_uring_available(void);
/* Why io_uring is unavailable ("" if it is available). */
const char *vms_engine_uring_reason(void);

/* ---- for tests and bench_engine --------------------------------------- */

/* Debug counters; cumulative over the engine's life. */
struct vms_engine_stats {
	uint64_t writes;            /* writev operations queued */
	uint64_t recvs;             /* recv operations queued */
	uint64_t fixed_ops;         /* transfers issued with the registered buffer
				       (READ_FIXED, WRITE_FIXED, SEND_ZC fixed) */
	uint64_t zc_ops;            /* SEND_ZC issued */
	uint64_t short_writes;      /* partial writes continued internally */
	uint64_t eagain;            /* EAGAIN answered by waiting for readiness */
	uint64_t syscalls_wait;     /* io_uring_enter / poll calls made while waiting */
	unsigned max_fd_writes;     /* most writes in progress on one fd at once (1) */
	unsigned max_fds_busy;      /* most fds with a write in progress at once */
	int fixed_registered;       /* the arena is a registered buffer */
	int reg_err;                /* -errno of a failed registration (0: none tried
				       or it worked) */
	uint64_t requeued;          /* ops the kernel canceled (their thread exited),
				       submitted again */
};

/* Copy the counters. 0, or VMS_EINVAL. */
int vms_engine_stats(const struct vms_engine *e, struct vms_engine_stats *out);
/* io_uring: send socket writes that lie in the registered arena with
 * SEND_ZC (zero copy; slower on loopback, may help on real NICs). Returns 0,
 * or VMS_EUNSUPPORTED (posix engine, or no registered arena). */
int vms_engine_set_send_zc(struct vms_engine *e, int on);

#endif
