/* SPDX-License-Identifier: MIT */
/* The engine's public calls, on top of the io unit: the io_uring
 * availability probe, the choice of backend (AUTO, VMS_IO), argument checks,
 * and dispatch to the backend (backend.h). The backends (posix.c, uring.c)
 * and the bookkeeping they share (queue.c) never call back into this file. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "io/backend.h"

/* ---- availability probe ----------------------------------------------- */

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
/* Written once under probe_once, read-only afterwards. */
static int probe_ok;
static char probe_reason[160];

static int sysctl_disabled(void)
{
	char buf[16] = { 0 };
	int fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0)
		return 0; /* kernels before 6.6 have no such switch */
	r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return r > 0 ? atoi(buf) : 0;
}

static void probe(void)
{
	static const int need[] = {
		IORING_OP_NOP, IORING_OP_SEND, IORING_OP_RECV, IORING_OP_SENDMSG,
		IORING_OP_READ, IORING_OP_WRITEV, IORING_OP_READ_FIXED,
		IORING_OP_WRITE_FIXED, IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL,
	};
	struct __kernel_timespec ts = { .tv_sec = 5 };
	struct io_uring_probe *p;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct io_uring ring;
	int disabled = sysctl_disabled();
	int ret;

	if (disabled == 2) {
		snprintf(probe_reason, sizeof(probe_reason),
			 "io_uring is disabled by sysctl kernel.io_uring_disabled=2");
		return;
	}
	ret = io_uring_queue_init(4, &ring, 0);
	if (ret < 0) {
		if (ret == -ENOSYS)
			snprintf(probe_reason, sizeof(probe_reason),
				 "io_uring_setup: %s (kernel without io_uring, or blocked by seccomp)",
				 vms_sys_err(-ret));
		else if (ret == -EPERM)
			snprintf(probe_reason, sizeof(probe_reason),
				 "io_uring_setup: %s (kernel.io_uring_disabled=%d, seccomp or container policy)",
				 vms_sys_err(-ret), disabled);
		else
			snprintf(probe_reason, sizeof(probe_reason), "io_uring_setup: %s",
				 vms_sys_err(-ret));
		return;
	}
	p = io_uring_get_probe_ring(&ring);
	if (!p) {
		snprintf(probe_reason, sizeof(probe_reason),
			 "kernel too old: io_uring opcode probe not supported");
		goto out_exit;
	}
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (!io_uring_opcode_supported(p, need[i])) {
			snprintf(probe_reason, sizeof(probe_reason),
				 "kernel too old: io_uring opcode %d not supported", need[i]);
			io_uring_free_probe(p);
			goto out_exit;
		}
	}
	io_uring_free_probe(p);
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_nop(sqe);
	ret = io_uring_submit(&ring);
	if (ret != 1) {
		snprintf(probe_reason, sizeof(probe_reason), "io_uring NOP submit: %s",
			 ret < 0 ? vms_sys_err(-ret) : "not consumed");
		goto out_exit;
	}
	ret = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
	if (ret < 0 || cqe->res != 0) {
		snprintf(probe_reason, sizeof(probe_reason), "io_uring NOP completion: %s",
			 vms_sys_err(ret < 0 ? -ret : -cqe->res));
		goto out_exit;
	}
	io_uring_cqe_seen(&ring, cqe);
	probe_ok = 1;
out_exit:
	io_uring_queue_exit(&ring);
}

int vms_engine_uring_available(void)
{
	pthread_once(&probe_once, probe);
	return probe_ok;
}

const char *vms_engine_uring_reason(void)
{
	pthread_once(&probe_once, probe);
	return probe_ok ? "" : probe_reason;
}

/* ---- construction and dispatch ---------------------------------------- */

int vms_engine_new(struct vms_engine **out, int kind, unsigned depth, void *arena,
		   size_t arena_len)
{
	const char *env = NULL;
	int rc;

	if (!out)
		return vms_fail(VMS_EINVAL, "engine: NULL output pointer");
	*out = NULL;
	if (kind != VMS_ENGINE_AUTO && kind != VMS_ENGINE_URING && kind != VMS_ENGINE_POSIX)
		return vms_fail(VMS_EINVAL, "engine: unknown kind %d", kind);
	if (depth == 0 || depth > VMS_ENGINE_DEPTH_MAX)
		return vms_fail(VMS_EINVAL, "engine: depth %u not in 1..%u", depth,
				VMS_ENGINE_DEPTH_MAX);
	if ((arena == NULL) != (arena_len == 0))
		return vms_fail(VMS_EINVAL, "engine: arena %p with length %zu", arena, arena_len);

	if (kind == VMS_ENGINE_AUTO) {
		env = getenv("VMS_IO");
		if (env && !strcmp(env, "uring"))
			kind = VMS_ENGINE_URING;
		else if (env && !strcmp(env, "posix"))
			kind = VMS_ENGINE_POSIX;
		else if (env && *env && strcmp(env, "auto"))
			return vms_fail(VMS_EINVAL, "VMS_IO=%s: expected uring, posix or auto", env);
		else
			env = NULL;
	}
	if (kind == VMS_ENGINE_URING) {
		if (!vms_engine_uring_available())
			return vms_fail(VMS_EUNSUPPORTED, "io_uring engine unavailable%s: %s",
					env ? " (VMS_IO=uring)" : "", probe_reason);
		return vms_uring_new(out, depth, arena, arena_len);
	}
	if (kind == VMS_ENGINE_AUTO && vms_engine_uring_available()) {
		/* If this ring cannot be had (ring memory beyond
		 * RLIMIT_MEMLOCK on old kernels, fd limits, ...), the portable
		 * engine is the way forward. */
		rc = vms_uring_new(out, depth, arena, arena_len);
		if (rc == 0)
			return 0;
	}
	return vms_posix_new(out, depth, arena, arena_len);
}

void vms_engine_free(struct vms_engine *e)
{
	if (e)
		e->ops->destroy(e);
}

const char *vms_engine_name(const struct vms_engine *e)
{
	return e->ops->name;
}

int vms_engine_kind(const struct vms_engine *e)
{
	return e->ops->kind;
}

unsigned vms_engine_pending(const struct vms_engine *e)
{
	return e->npending;
}

int vms_engine_stats(const struct vms_engine *e, struct vms_engine_stats *out)
{
	if (!e || !out)
		return vms_fail(VMS_EINVAL, "engine stats: NULL argument");
	*out = e->st;
	return 0;
}

int vms_engine_set_send_zc(struct vms_engine *e, int on)
{
	if (!e->ops->set_send_zc)
		return vms_fail(VMS_EUNSUPPORTED, "%s engine: no SEND_ZC", e->ops->name);
	return e->ops->set_send_zc(e, on);
}

/* fd type, once per operation: sockets get send/recv semantics (MSG_NOSIGNAL,
 * MSG_DONTWAIT), everything else read/write. */
static int fd_kind(int fd, const char *what)
{
	struct stat st;

	if (fd < 0 || fstat(fd, &st) != 0) {
		int err = fd < 0 ? EBADF : errno;

		return vms_fail(VMS_EINVAL, "engine %s: fd %d: %s", what, fd, vms_sys_err(err));
	}
	if (S_ISSOCK(st.st_mode))
		return VMS_FD_SOCK;
	return S_ISFIFO(st.st_mode) ? VMS_FD_FIFO : VMS_FD_OTHER;
}

int vms_engine_writev(struct vms_engine *e, int fd, const struct iovec *iov, int n, void *user)
{
	struct vms_op *op;
	size_t total = 0;
	int kind;

	if (!e || !iov || n < 1 || n > VMS_ENGINE_IOV_MAX)
		return vms_fail(VMS_EINVAL, "engine writev: %d iovecs (1..%d)", n,
				VMS_ENGINE_IOV_MAX);
	for (int i = 0; i < n; i++) {
		if (iov[i].iov_len > (size_t)LONG_MAX - total)
			return vms_fail(VMS_EINVAL, "engine writev: total length overflows");
		if (iov[i].iov_len && !iov[i].iov_base)
			return vms_fail(VMS_EINVAL, "engine writev: NULL buffer");
		total += iov[i].iov_len;
	}
	if (total == 0)
		return vms_fail(VMS_EINVAL, "engine writev: nothing to write");
	kind = fd_kind(fd, "writev");
	if (kind < 0)
		return kind;
	op = vms_ioq_write(e, fd, kind, iov, n, total, user);
	if (!op)
		return VMS_ESTATE;
	e->ops->start(e, op);
	return 0;
}

int vms_engine_recv(struct vms_engine *e, int fd, void *buf, size_t len, void *user)
{
	struct vms_op *op;
	int kind;

	if (!e || !buf || len == 0 || len > (size_t)LONG_MAX)
		return vms_fail(VMS_EINVAL, "engine recv: bad buffer (%zu bytes)", len);
	kind = fd_kind(fd, "recv");
	if (kind < 0)
		return kind;
	op = vms_ioq_recv(e, fd, kind, buf, len, user);
	if (!op)
		return VMS_ESTATE;
	e->ops->start(e, op);
	return 0;
}

int vms_engine_wait(struct vms_engine *e, struct vms_io_done *done, unsigned max, int timeout_ms)
{
	if (!e || (!done && max) || timeout_ms < -1)
		return vms_fail(VMS_EINVAL, "engine wait: bad arguments");
	return e->ops->wait(e, done, max, timeout_ms);
}

int vms_engine_cancel(struct vms_engine *e)
{
	if (!e)
		return vms_fail(VMS_EINVAL, "engine cancel: NULL engine");
	return e->ops->cancel(e);
}

/* Arguments of read_full / write_full: 0 with the fd's kind in *kind, 1 if
 * there is nothing to transfer, or -EINVAL / -EBADF. */
static int sync_check(const struct vms_engine *e, int fd, const void *buf, size_t len,
		      int timeout_ms, const char *what, int *kind)
{
	if (!e || (!buf && len) || len > (size_t)LONG_MAX || timeout_ms < -1)
		return -EINVAL;
	if (len == 0)
		return 1;
	*kind = fd_kind(fd, what);
	return *kind < 0 ? -EBADF : 0;
}

long vms_engine_read_full(struct vms_engine *e, int fd, void *buf, size_t len, int timeout_ms)
{
	int kind, rc = sync_check(e, fd, buf, len, timeout_ms, "read_full", &kind);

	if (rc)
		return rc < 0 ? rc : 0;
	return e->ops->read_full(e, fd, kind, buf, len, timeout_ms);
}

int vms_engine_write_full(struct vms_engine *e, int fd, const void *buf, size_t len,
			  int timeout_ms)
{
	int kind, rc = sync_check(e, fd, buf, len, timeout_ms, "write_full", &kind);

	if (rc)
		return rc < 0 ? rc : 0;
	return e->ops->write_full(e, fd, kind, buf, len, timeout_ms);
}
