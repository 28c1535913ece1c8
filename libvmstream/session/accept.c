/* SPDX-License-Identifier: MIT */
/*
 * The receiver of a network session (FORMAT.md section 9): listen, accept
 * the lanes of one session, authenticate each (tls.c) or not, check its
 * HELLO, answer with a REPLY, then hand the lanes to the reader (stream/).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "base/clock.h"
#include "base/error.h"
#include "session/internal.h"
#include "session/tls.h"
#include "stream/internal.h"

int vms_listen(struct vms_listener **out, const char *addr, const struct vms_net_opts *nopts)
{
	struct addrinfo hints = { 0 }, *res = NULL, *ai;
	struct vms_listener *l;
	char host[256], port[16];
	int err, gai, one = 1;

	*out = NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return vms_fail(VMS_ENOMEM, "out of memory");
	l->fd = -1;
	err = vms_net_opts_take(&l->net, nopts);
	if (err)
		goto out_free;
	if (l->net.psk) {
		memcpy(l->psk, l->net.psk, VMS_KEY_LEN);
		l->net.psk = l->psk;
	}
	err = vms_split_addr(addr, host, sizeof(host), port, sizeof(port), true);
	if (err)
		goto out_free;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (gai != 0) {
		err = vms_fail(VMS_ENET, "cannot resolve %s: %s", host, gai_strerror(gai));
		goto out_free;
	}
	err = VMS_ENET;
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);

		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
			err = vms_fail(VMS_ENET, "cannot listen on %s: %s", addr, strerror(errno));
			close(fd);
			continue;
		}
		l->fd = fd;
		l->loopback = vms_sockaddr_loopback(ai->ai_addr);
		err = 0;
		break;
	}
	freeaddrinfo(res);
	if (err)
		goto out_free;
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		getsockname(l->fd, (struct sockaddr *)&ss, &sl);
		l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
	}
	if (!vms_net_authenticated(&l->net) && !l->loopback && !(l->net.flags & VMS_NET_F_INSECURE)) {
		err = vms_fail(VMS_EINVAL, "refusing to accept unauthenticated, unencrypted sessions on "
					   "non-loopback %s: give a PSK or certificates, or choose "
					   "insecure explicitly", addr);
		goto out_free;
	}
	err = vms_net_creds(&l->net, 1, &l->creds);
	if (err)
		goto out_free;
	*out = l;
	return 0;

out_free:
	vms_listener_free(l);
	return err;
}

int vms_listener_port(const struct vms_listener *l)
{
	return l->port;
}

void vms_listener_free(struct vms_listener *l)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd);
	vms_tls_creds_free(l->creds);
	vms_wipe(l->psk, sizeof(l->psk));
	free(l);
}

int vms_accept(struct vms_listener *l, struct vms_reader **out, const struct vms_reader_opts *ro,
	       int timeout_ms)
{
	struct vms_transport t;
	struct vms_lane_set s = { 0 };
	uint64_t deadline = 0;
	int err;

	*out = NULL;
	vms_transport_init_fd(&t, -1);
	t.session = true;
	t.own_fds = true;
	t.keyed = l->creds != NULL;
	t.allow_plaintext = (l->net.flags & VMS_NET_F_ALLOW_PLAINTEXT) != 0;
	t.engine = l->net.io;
	t.idle_timeout_ms = l->net.idle_timeout_ms;
	for (unsigned i = 0; i < VMS_LANES_MAX; i++)
		t.fds[i] = -1;
	if (timeout_ms >= 0)
		deadline = vms_deadline_in(timeout_ms);

	while (!s.started || s.got < s.lanes) {
		uint8_t msg[VMS_SESSION_MSG_MAX], rep[VMS_SESSION_MSG_MAX];
		struct vms_tls_conn *conn = NULL;
		struct vms_hello h;
		char why[512];
		const char *dwhy;
		size_t mlen = 0, rlen;
		uint64_t hs_deadline;
		int fd, code;

		if (deadline || s.started) {
			struct pollfd p = { .fd = l->fd, .events = POLLIN };
			uint64_t dl = s.started ? s.deadline_ns : deadline;
			int n;

			do
				n = poll(&p, 1, (int)vms_deadline_left(dl));
			while (n < 0 && errno == EINTR);
			if (n == 0) {
				err = vms_fail(VMS_ETIMEOUT, s.started
						? "only %u of %u lanes connected in time" : "no sender connected in time",
					       s.got, s.lanes);
				goto out_release;
			}
		}
		fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			err = vms_fail(VMS_ENET, "accept: %s", strerror(errno));
			goto out_release;
		}
		vms_sock_tune(fd);
		hs_deadline = vms_deadline_in(l->net.connect_timeout_ms);
		if (l->creds)
			err = vms_tls_server_accept(l->creds, fd, msg, sizeof(msg), &mlen,
						    l->net.connect_timeout_ms, &conn);
		else
			err = vms_plain_recv(fd, msg, sizeof(msg), &mlen, hs_deadline);
		if (!err) {
			err = vms_hello_decode(&h, msg, mlen, &dwhy);
			if (err) {
				snprintf(why, sizeof(why), "%s", dwhy);
				vms_fail(err, "%s", dwhy);
			}
		}
		if (err) {
			/* an unauthenticated or confused peer: refuse it, and say so */
			char m[VMS_MSG_MAX];

			snprintf(m, sizeof(m), "%s", vms_last_error());
			vms_tls_conn_free(conn);
			close(fd);
			err = vms_fail(err, "refused a connection: %s", m);
			goto out_release;
		}
		code = vms_hello_check(l, &h, ro, &s, why, sizeof(why));
		rlen = vms_reply_encode(code, vms_hello_max_chunk(ro), code ? why : "", rep);
		if (code) {
			/* tell the sender why; report it here too */
			if (conn)
				vms_tls_server_reply(conn, rep, rlen, h.lane, t.ikm_c2s[0], t.ikm_s2c[0],
						     l->net.connect_timeout_ms);
			else
				vms_plain_send(fd, rep, rlen, hs_deadline);
			close(fd);
			vms_wipe(t.ikm_c2s[0], VMS_KEY_LEN);
			vms_wipe(t.ikm_s2c[0], VMS_KEY_LEN);
			if (s.started)
				continue; /* a stray connection does not end the session */
			err = vms_fail(code, "refused a session: %s", why);
			goto out_release;
		}
		if (conn) {
			char peer[sizeof(t.peer)];

			snprintf(peer, sizeof(peer), "%s", vms_tls_conn_peer(conn));
			err = vms_tls_server_reply(conn, rep, rlen, h.lane, t.ikm_c2s[h.lane],
						   t.ikm_s2c[h.lane], l->net.connect_timeout_ms);
			if (!err && !s.started)
				snprintf(t.peer, sizeof(t.peer), "%s", peer);
		} else {
			err = vms_plain_send(fd, rep, rlen, hs_deadline);
			if (!err && !s.started)
				snprintf(t.peer, sizeof(t.peer), "insecure");
		}
		if (err) {
			close(fd);
			goto out_release;
		}
		if (!s.started) {
			s.started = true;
			memcpy(s.session_id, h.session_id, 16);
			s.lanes = h.lanes;
			t.nlanes = s.lanes;
			s.deadline_ns = vms_deadline_in(l->net.connect_timeout_ms);
		}
		s.seen[h.lane] = true;
		t.fds[h.lane] = fd;
		s.got++;
	}
	return vms_reader_open_transport(out, &t, ro);

out_release:
	t.nlanes = VMS_LANES_MAX;
	vms_transport_release(&t);
	return err;
}
