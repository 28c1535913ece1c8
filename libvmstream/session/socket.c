/* SPDX-License-Identifier: MIT */
/*
 * Deadlines and socket waits of the session handshake, and the settings
 * every lane's socket gets.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include "base/clock.h"
#include "base/error.h"
#include "session/internal.h"

uint64_t vms_deadline_in(int ms)
{
	return vms_now_ns() + (uint64_t)ms * 1000000u;
}

int64_t vms_deadline_left(uint64_t deadline_ns)
{
	uint64_t now = vms_now_ns();

	return now >= deadline_ns ? 0 : (int64_t)((deadline_ns - now) / 1000000u) + 1;
}

int vms_fd_wait(int fd, short ev, uint64_t deadline_ns)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int n;

	do
		n = poll(&p, 1, (int)vms_deadline_left(deadline_ns));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return vms_fail(VMS_ENET, "poll: %s", vms_sys_err(errno));
	if (n == 0)
		return vms_fail(VMS_ETIMEOUT, "handshake timed out");
	return 0;
}

void vms_sock_tune(int fd)
{
	int one = 1;

	/* records are written whole; Nagle would only delay the small ones */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
