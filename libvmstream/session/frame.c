/* SPDX-License-Identifier: MIT */
/*
 * The framing of an unauthenticated session's HELLO and REPLY (FORMAT.md
 * section 9): u32 length (little-endian), the bytes, their u64 XXH3. With
 * TLS the same messages travel inside TLS instead (tls.c).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include "base/error.h"
#include "base/hash.h"
#include "format/cursor.h"
#include "session/internal.h"

int vms_plain_send(int fd, const uint8_t *msg, size_t len, uint64_t deadline_ns)
{
	uint8_t buf[4 + VMS_SESSION_MSG_MAX + 8];
	size_t n = 4 + len + 8, off = 0;

	vms_put_u32(buf, (uint32_t)len);
	memcpy(buf + 4, msg, len);
	vms_put_u64(buf + 4 + len, vms_xxh3(msg, len));
	while (off < n) {
		ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			int err = vms_fd_wait(fd, POLLOUT, deadline_ns);

			if (err)
				return err;
			continue;
		}
		if (w < 0)
			return vms_fail(VMS_ENET, "handshake send failed: %s", vms_sys_err(errno));
		off += (size_t)w;
	}
	return 0;
}

static int recv_exact(int fd, uint8_t *buf, size_t n, uint64_t deadline_ns)
{
	size_t off = 0;

	while (off < n) {
		ssize_t r = recv(fd, buf + off, n - off, MSG_DONTWAIT);

		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			int err = vms_fd_wait(fd, POLLIN, deadline_ns);

			if (err)
				return err;
			continue;
		}
		if (r < 0)
			return vms_fail(VMS_ENET, "handshake receive failed: %s (do both sides use the "
						  "same authentication settings?)", vms_sys_err(errno));
		if (r == 0)
			return vms_fail(VMS_ENET, "peer closed the connection during the handshake "
						  "(do both sides use the same authentication settings?)");
		off += (size_t)r;
	}
	return 0;
}

int vms_plain_recv(int fd, uint8_t *msg, size_t cap, size_t *len, uint64_t deadline_ns)
{
	uint8_t hdr[4], sum[8];
	uint32_t n;
	int err = recv_exact(fd, hdr, 4, deadline_ns);

	if (err)
		return err;
	if (hdr[0] == 0x16 && hdr[1] == 0x03)
		return vms_fail(VMS_ETLS, "peer speaks TLS but this side has no credentials "
					  "(give both sides --psk-file or certificates)");
	n = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
	if (n > cap)
		return vms_fail(VMS_EPROTO, "peer is not speaking the vmstream handshake");
	err = recv_exact(fd, msg, n, deadline_ns);
	if (!err)
		err = recv_exact(fd, sum, 8, deadline_ns);
	if (err)
		return err;
	if (vms_get_u64(sum) != vms_xxh3(msg, n))
		return vms_fail(VMS_EPROTO, "handshake message checksum mismatch");
	*len = n;
	return 0;
}
