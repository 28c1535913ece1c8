/* SPDX-License-Identifier: MIT */
/* The receiver's answer on lane 0: the acknowledgement, or a refusal
 * (then the lanes are drained so the sender reads the reason). */
#include <poll.h>
#include <sys/socket.h>
#include "base/clock.h"
#include "stream/ack.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/error.h"
#include "stream/reader_internal.h"

/* Before the pipeline exists (a refusal at open): a bounded blocking send. */
static int send_plain(int fd, const uint8_t *p, size_t n, int timeout_ms)
{
	while (n) {
		struct pollfd pf = { .fd = fd, .events = POLLOUT };
		ssize_t w;

		if (poll(&pf, 1, timeout_ms) == 0)
			return -ETIMEDOUT;
		w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Build, seal (or checksum) and send the acknowledgement on lane 0. */
int vms_rd_send_ack(struct vms_reader *r, int status, const char *text)
{
	struct vms_ack_keys k = { r->t.keyed, &r->pre, r->t.ikm_s2c[0] };
	struct vms_ack a = { 0 };
	struct vms_ack_dev *devs = NULL;
	uint8_t *frame;
	size_t flen;
	int err;

	a.status = status;
	snprintf(a.text, sizeof(a.text), "%s", text ? text : "");
	if (status == 0) {
		a.records = r->st.records - 1; /* records before EOS */
		a.raw_bytes = r->raw_total;
		a.ndev = r->ndev;
		devs = calloc(r->ndev ? r->ndev : 1, sizeof(*devs));
		if (!devs)
			return vms_fail(VMS_ENOMEM, "out of memory for the acknowledgement");
		for (uint32_t i = 0; i < r->ndev; i++) {
			devs[i].bytes = r->devs[i].bytes;
			devs[i].digest = r->devs[i].digest;
			devs[i].result = i < r->dev_result_n ? r->dev_result[i] : 0;
		}
	}
	err = vms_ack_build(&k, &a, devs, &frame, &flen);
	free(devs);
	if (!err) {
		err = r->eng ? vms_engine_write_full(r->eng, r->t.fds[0], frame, flen,
						     r->t.idle_timeout_ms)
			     : send_plain(r->t.fds[0], frame, flen, r->t.idle_timeout_ms);
		if (err)
			err = vms_fail(vms_rd_io_code(err), "sending the acknowledgement: %s", vms_sys_err(-err));
		free(frame);
	}
	r->ack_sent = true;
	vms_wipe(r->t.ikm_s2c, sizeof(r->t.ikm_s2c));
	return err;
}

int vms_reader_set_device_result(struct vms_reader *r, uint32_t device, int32_t result)
{
	if (device >= r->ndev)
		return vms_fail(VMS_EINVAL, "device %u is not in the stream", device);
	if (!r->dev_result || r->dev_result_n < r->ndev) {
		int32_t *nr = realloc(r->dev_result, r->ndev * sizeof(*nr));

		if (!nr)
			return vms_fail(VMS_ENOMEM, "out of memory");
		memset(nr + r->dev_result_n, 0, (r->ndev - r->dev_result_n) * sizeof(*nr));
		r->dev_result = nr;
		r->dev_result_n = r->ndev;
	}
	r->dev_result[device] = result;
	return 0;
}

/* Stop reading for good: wake and join the input thread. */
static void stop_input(struct vms_reader *r)
{
	if (r->cancel_fd >= 0) {
		uint64_t one = 1;

		(void)!write(r->cancel_fd, &one, sizeof(one));
	}
	if (r->ring.state) {
		vms_ring_stop(&r->ring);
		if (r->input_started) {
			pthread_join(r->input, NULL);
			r->input_started = false;
		}
	}
}

/* After a refusal: read and drop what the sender still sends until it stops
 * (it does once it reads the refusal) or max_ms pass. Closing a socket with
 * unread data would reset the connection, and the sender would report the
 * reset instead of the reason. */
static void drain_lanes(struct vms_reader *r, int max_ms)
{
	uint64_t deadline = vms_now_ns() + (uint64_t)max_ms * 1000000u;
	bool open[VMS_LANES_MAX];
	unsigned live = r->t.nlanes;
	char junk[16384];

	for (unsigned l = 0; l < r->t.nlanes; l++) {
		open[l] = true;
		shutdown(r->t.fds[l], SHUT_WR);
	}
	while (live > 0 && vms_now_ns() < deadline) {
		struct pollfd pf[VMS_LANES_MAX];
		unsigned map[VMS_LANES_MAX], np = 0;

		for (unsigned l = 0; l < r->t.nlanes; l++) {
			if (!open[l])
				continue;
			pf[np].fd = r->t.fds[l];
			pf[np].events = POLLIN;
			pf[np].revents = 0;
			map[np++] = l;
		}
		if (poll(pf, np, (int)((deadline - vms_now_ns()) / 1000000u) + 1) <= 0)
			break;
		for (unsigned i = 0; i < np; i++) {
			ssize_t n;

			if (!pf[i].revents)
				continue;
			n = recv(pf[i].fd, junk, sizeof(junk), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				open[map[i]] = false;
				live--;
			}
		}
	}
}

int vms_rd_refuse(struct vms_reader *r, int status, const char *text)
{
	int err;

	stop_input(r);
	err = vms_rd_send_ack(r, status, text);
	drain_lanes(r, r->t.idle_timeout_ms > 0 && r->t.idle_timeout_ms < 2000
			       ? r->t.idle_timeout_ms : 2000);
	return err;
}
