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

/* Bind and listen on the first of host:port's addresses that allows it. */
static int listen_bind(struct vms_listener *l, const char *addr, const char *host, const char *port)
{
	struct addrinfo hints = { 0 }, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int err, gai, one = 1;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (gai != 0)
		return vms_fail(VMS_ENET, "cannot resolve %s: %s", host, gai_strerror(gai));
	err = VMS_ENET;
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);

		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
			err = vms_fail(VMS_ENET, "cannot listen on %s: %s", addr, vms_sys_err(errno));
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
		return err;
	getsockname(l->fd, (struct sockaddr *)&ss, &sl);
	l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						 : ((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

int vms_listen(struct vms_listener **out, const char *addr, const struct vms_net_opts *nopts)
{
	struct vms_listener *l;
	char host[VMS_ADDR_HOST_MAX + 1], port[8];
	int err;

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
	err = vms_addr_split(addr, VMS_ADDR_LISTEN, host, port);
	if (!err)
		err = listen_bind(l, addr, host, port);
	if (err)
		goto out_free;
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

/* Returned by the steps of vms_accept (besides 0 and errors): nothing to
 * add from this connection, go on with the next one. */
#define NEXT_CONNECTION 1

/* One connection during its handshake. */
struct lane_conn {
	int fd;
	struct vms_tls_conn *conn;  /* TLS, once authenticated; NULL: plain */
	struct vms_hello h;
	uint64_t deadline;          /* of the handshake */
};

static void transport_init(struct vms_transport *t, const struct vms_listener *l)
{
	vms_transport_init_fd(t, -1);
	t->session = true;
	t->own_fds = true;
	t->keyed = l->creds != NULL;
	t->allow_plaintext = (l->net.flags & VMS_NET_F_ALLOW_PLAINTEXT) != 0;
	t->engine = l->net.io;
	t->idle_timeout_ms = l->net.idle_timeout_ms;
	for (unsigned i = 0; i < VMS_LANES_MAX; i++)
		t->fds[i] = -1;
}

/* Wait for the next connection, until the first one's deadline (0 = none)
 * or, once the session started, its lanes' deadline; then take it. */
static int next_connection(const struct vms_listener *l, const struct vms_lane_set *s,
			   uint64_t deadline, int *fd)
{
	if (deadline || s->started) {
		struct pollfd p = { .fd = l->fd, .events = POLLIN };
		uint64_t dl = s->started ? s->deadline_ns : deadline;
		int n;

		do
			n = poll(&p, 1, (int)vms_deadline_left(dl));
		while (n < 0 && errno == EINTR);
		if (n == 0)
			return vms_fail(VMS_ETIMEOUT, s->started
					? "only %u of %u lanes connected in time" : "no sender connected in time",
					s->got, s->lanes);
	}
	*fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
	if (*fd >= 0)
		return 0;
	if (errno == EINTR || errno == ECONNABORTED)
		return NEXT_CONNECTION;
	return vms_fail(VMS_ENET, "accept: %s", vms_sys_err(errno));
}

/* Authenticate the peer (with credentials) and read its HELLO. */
static int lane_hello(const struct vms_listener *l, struct lane_conn *c)
{
	uint8_t msg[VMS_SESSION_MSG_MAX];
	const char *why;
	size_t mlen = 0;
	int err;

	if (l->creds)
		err = vms_tls_server_accept(l->creds, c->fd, msg, sizeof(msg), &mlen,
					    l->net.connect_timeout_ms, &c->conn);
	else
		err = vms_plain_recv(c->fd, msg, sizeof(msg), &mlen, c->deadline);
	if (!err) {
		err = vms_hello_decode(&c->h, msg, mlen, &why);
		if (err)
			vms_fail(err, "%s", why);
	}
	if (err) /* an unauthenticated or confused peer: refuse it, and say so */
		return vms_session_fail_ctx(err, "refused a connection");
	return 0;
}

/* Tell the sender why it is refused (best effort) and drop the connection.
 * The REPLY's exporter keys go to scratch: the session's lanes keep theirs. */
static void lane_refuse(const struct vms_listener *l, struct lane_conn *c, const uint8_t *rep,
			size_t rlen)
{
	uint8_t c2s[VMS_TLS_IKM_LEN], s2c[VMS_TLS_IKM_LEN];

	if (c->conn)
		vms_tls_server_reply(c->conn, rep, rlen, c->h.lane, c2s, s2c,
				     l->net.connect_timeout_ms);
	else
		vms_plain_send(c->fd, rep, rlen, c->deadline);
	close(c->fd);
	vms_wipe(c2s, sizeof(c2s));
	vms_wipe(s2c, sizeof(s2c));
}

/* Accept the lane: the REPLY, its keys into the transport, its place in the
 * session (the first lane starts it). */
static int lane_admit(const struct vms_listener *l, struct lane_conn *c, struct vms_lane_set *s,
		      struct vms_transport *t, const uint8_t *rep, size_t rlen)
{
	unsigned lane = c->h.lane;
	int err;

	if (c->conn) {
		char peer[sizeof(t->peer)];

		snprintf(peer, sizeof(peer), "%s", vms_tls_conn_peer(c->conn));
		err = vms_tls_server_reply(c->conn, rep, rlen, c->h.lane, t->ikm_c2s[lane],
					   t->ikm_s2c[lane], l->net.connect_timeout_ms);
		if (!err && !s->started)
			snprintf(t->peer, sizeof(t->peer), "%s", peer);
	} else {
		err = vms_plain_send(c->fd, rep, rlen, c->deadline);
		if (!err && !s->started)
			snprintf(t->peer, sizeof(t->peer), "insecure");
	}
	if (err) {
		close(c->fd);
		return err;
	}
	if (!s->started) {
		s->started = true;
		memcpy(s->session_id, c->h.session_id, sizeof(s->session_id));
		s->lanes = c->h.lanes;
		t->nlanes = s->lanes;
		s->deadline_ns = vms_deadline_in(l->net.connect_timeout_ms);
	}
	s->seen[lane] = true;
	t->fds[lane] = c->fd;
	s->got++;
	return 0;
}

/* The handshake of one accepted connection fd (always consumed): 0 = a lane
 * of the session, NEXT_CONNECTION = a stray connection refused while the
 * session gathers its lanes, or the error that ends vms_accept. */
static int accept_lane(const struct vms_listener *l, const struct vms_reader_opts *ro,
		       struct vms_lane_set *s, struct vms_transport *t, int fd)
{
	struct lane_conn c = { .fd = fd, .conn = NULL };
	uint8_t rep[VMS_SESSION_MSG_MAX];
	char why[512];
	size_t rlen;
	int code, err;

	vms_sock_tune(fd);
	c.deadline = vms_deadline_in(l->net.connect_timeout_ms);
	err = lane_hello(l, &c);
	if (err) {
		vms_tls_conn_free(c.conn);
		close(fd);
		return err;
	}
	code = vms_hello_check(l, &c.h, ro, s, why, sizeof(why));
	rlen = vms_reply_encode(code, vms_hello_max_chunk(ro), code ? why : "", rep);
	if (code) {
		/* tell the sender why; report it here too */
		lane_refuse(l, &c, rep, rlen);
		if (s->started)
			return NEXT_CONNECTION; /* a stray connection does not end the session */
		return vms_fail(code, "refused a session: %s", why);
	}
	return lane_admit(l, &c, s, t, rep, rlen);
}

int vms_accept(struct vms_listener *l, struct vms_reader **out, const struct vms_reader_opts *ro,
	       int timeout_ms)
{
	struct vms_transport t;
	struct vms_lane_set s = { 0 };
	uint64_t deadline = 0;
	int err;

	*out = NULL;
	transport_init(&t, l);
	if (timeout_ms >= 0)
		deadline = vms_deadline_in(timeout_ms);
	while (!s.started || s.got < s.lanes) {
		int fd = -1;

		err = next_connection(l, &s, deadline, &fd);
		if (!err)
			err = accept_lane(l, ro, &s, &t, fd);
		if (err == NEXT_CONNECTION)
			continue;
		if (err)
			goto out_release;
	}
	return vms_reader_open_transport(out, &t, ro);

out_release:
	t.nlanes = VMS_LANES_MAX;
	vms_transport_release(&t);
	return err;
}
