/* SPDX-License-Identifier: MIT */
/*
 * The sender of a network session (FORMAT.md section 9): connect every lane,
 * authenticate it (TLS 1.3, tls.c) or not (loopback / insecure), offer the
 * HELLO, take the REPLY, then hand the lanes to the writer (stream/).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include "base/clock.h"
#include "base/error.h"
#include "session/internal.h"
#include "session/tls.h"
#include "stage/stage.h"
#include "stream/internal.h"

static int connect_one(const struct addrinfo *ai, uint64_t deadline_ns, int *out)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			ai->ai_protocol);
	int err, soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (fd < 0)
		return vms_fail(VMS_ENET, "socket: %s", vms_sys_err(errno));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
		err = vms_fail(VMS_ENET, "connect: %s", vms_sys_err(errno));
		goto out_close;
	}
	err = vms_fd_wait(fd, POLLOUT, deadline_ns);
	if (err) {
		if (err == VMS_ETIMEOUT)
			vms_fail(VMS_ETIMEOUT, "connect timed out");
		goto out_close;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
		err = vms_fail(VMS_ENET, "connect: %s", vms_sys_err(soerr ? soerr : errno));
		goto out_close;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	*out = fd;
	return 0;

out_close:
	close(fd);
	return err;
}

/* A sender's session while its lanes are set up. */
struct dial {
	const char *addr;          /* as given, for messages */
	struct vms_writer_opts wo;
	struct vms_net_opts net;
	struct vms_tls_creds *creds;
	struct addrinfo *res;
	struct vms_hello h;        /* lane set per lane */
	uint64_t deadline;         /* all lanes, handshakes included */
	struct vms_transport t;    /* what the writer gets */
};

/* Options, address and credentials, in the order their errors are reported. */
static int dial_take(struct dial *d, const char *addr, const struct vms_net_opts *nopts,
		     const struct vms_writer_opts *opts)
{
	struct addrinfo hints = { 0 };
	char host[VMS_ADDR_HOST_MAX + 1], port[8];
	int err, gai;

	err = vms_net_opts_take(&d->net, nopts);
	if (err)
		return err;
	err = vms_writer_opts_take(&d->wo, opts);
	if (err)
		return err;
	if (d->wo.cipher != VMS_CIPHER_NONE && !vms_net_authenticated(&d->net))
		return vms_fail(VMS_EKEY, "encryption needs an authenticated session: give a PSK or certificates");
	err = vms_addr_split(addr, 0, host, port);
	if (err)
		return err;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	gai = getaddrinfo(host, port, &hints, &d->res);
	if (gai != 0)
		return vms_fail(VMS_ENET, "cannot resolve %s: %s", host, gai_strerror(gai));
	return vms_net_creds(&d->net, 0, &d->creds);
}

/* The HELLO every lane sends (its lane field aside). */
static int dial_hello(struct dial *d)
{
	struct vms_hello *h = &d->h;
	const struct vms_stage *codec;
	int level, err;
	bool adaptive;

	h->vmin = h->vmax = VMS_FORMAT_MAJOR;
	h->lanes = (uint16_t)d->net.lanes;
	if (getrandom(h->session_id, sizeof(h->session_id), 0) != sizeof(h->session_id))
		return vms_fail(VMS_EIO, "getrandom: %s", vms_sys_err(errno));
	h->chunk_cap = d->wo.chunk_size ? d->wo.chunk_size : VMS_CHUNK_DEFAULT;
	h->cipher = (uint8_t)d->wo.cipher;
	h->size_hint = d->wo.size_hint;
	err = vms_compress_parse(d->wo.compress, &codec, &level, &adaptive);
	if (err)
		return err;
	if (codec) {
		h->ncodecs = 1;
		h->codecs[0].id = (uint8_t)codec->id;
		snprintf(h->codecs[0].name, sizeof(h->codecs[0].name), "%s", codec->name);
	}
	return 0;
}

static void dial_transport(struct dial *d)
{
	struct vms_transport *t = &d->t;

	t->nlanes = d->net.lanes;
	t->own_fds = true;
	t->session = true;
	t->keyed = d->creds != NULL;
	t->engine = d->net.io;
	t->idle_timeout_ms = d->net.idle_timeout_ms;
	t->rate_limit = d->net.rate_limit;
	for (unsigned l = 0; l < d->net.lanes; l++)
		t->fds[l] = -1;
}

/* TCP connection of lane l to the first address that answers. */
static int lane_connect(struct dial *d, unsigned l, int *fd)
{
	int err = VMS_ENET;

	for (const struct addrinfo *ai = d->res; ai; ai = ai->ai_next) {
		err = connect_one(ai, d->deadline, fd);
		if (!err)
			return 0;
	}
	return vms_session_fail_ctx(err, "cannot connect to %s (lane %u)", d->addr, l);
}

/* The first lane decides: no credentials is only for loopback, or insecure. */
static int lane_policy(struct dial *d, int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	bool loopback = getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 &&
			vms_sockaddr_loopback((struct sockaddr *)&ss);

	if (d->creds || loopback)
		return 0;
	if (!(d->net.flags & VMS_NET_F_INSECURE))
		return vms_fail(VMS_EINVAL, "refusing an unauthenticated, unencrypted session "
					    "with non-loopback %s: give a PSK or certificates, "
					    "or choose insecure explicitly", d->addr);
	vms_log(d->wo.log, d->wo.log_user, d->wo.log_level, VMS_LOG_WARN,
		"INSECURE: sending unauthenticated, unencrypted data to %s", d->addr);
	return 0;
}

/* HELLO out, REPLY in, on lane l (TLS or plain); the lane's keys land in the
 * transport. */
static int lane_exchange(struct dial *d, unsigned l, int fd, uint8_t *rep, size_t *rlen)
{
	struct vms_transport *t = &d->t;
	uint8_t msg[VMS_SESSION_MSG_MAX];
	size_t mlen;
	int err;

	d->h.lane = (uint16_t)l;
	mlen = vms_hello_encode(&d->h, msg);
	if (d->creds) {
		struct vms_tls_info info;
		int timeout = (int)vms_deadline_left(d->deadline);

		err = vms_tls_client(d->creds, fd, msg, mlen, rep, VMS_SESSION_MSG_MAX, rlen,
				     (uint16_t)l, t->ikm_c2s[l], t->ikm_s2c[l], timeout > 0 ? timeout : 1,
				     &info);
		if (!err && l == 0)
			snprintf(t->peer, sizeof(t->peer), "%.255s", info.peer);
	} else {
		err = vms_plain_send(fd, msg, mlen, d->deadline);
		if (!err)
			err = vms_plain_recv(fd, rep, VMS_SESSION_MSG_MAX, rlen, d->deadline);
		if (!err && l == 0)
			snprintf(t->peer, sizeof(t->peer), "insecure");
	}
	if (err)
		return vms_session_fail_ctx(err, "lane %u", l);
	return 0;
}

/* Lane l: connect, check, handshake, and the receiver's verdict. */
static int dial_lane(struct dial *d, unsigned l)
{
	uint8_t rep[VMS_SESSION_MSG_MAX];
	char text[VMS_SESSION_MSG_MAX];
	size_t rlen = 0;
	int32_t status = 0;
	int fd = -1, err;

	err = lane_connect(d, l, &fd);
	if (err)
		return err;
	d->t.fds[l] = fd;
	if (l == 0) {
		err = lane_policy(d, fd);
		if (err)
			return err;
	}
	vms_sock_tune(fd);
	err = lane_exchange(d, l, fd, rep, &rlen);
	if (!err)
		err = vms_reply_decode(rep, rlen, &status, text, sizeof(text));
	if (err)
		return err;
	if (status != 0)
		return vms_fail(status < 0 && vms_errname(status) ? status : VMS_EPROTO,
				"receiver refused the session: %s", text);
	return 0;
}

int vms_writer_connect(struct vms_writer **out, const char *addr, const struct vms_net_opts *nopts,
		       const struct vms_writer_opts *opts)
{
	struct dial d = { .addr = addr };
	int err;

	*out = NULL;
	vms_transport_init_fd(&d.t, -1);
	err = dial_take(&d, addr, nopts, opts);
	if (!err)
		err = dial_hello(&d);
	if (err)
		goto out_free;
	d.deadline = vms_deadline_in(d.net.connect_timeout_ms);
	dial_transport(&d);
	for (unsigned l = 0; l < d.net.lanes && !err; l++)
		err = dial_lane(&d, l);
	if (err)
		goto out_free;
	freeaddrinfo(d.res);
	vms_tls_creds_free(d.creds);
	return vms_writer_open_transport(out, &d.t, &d.wo);

out_free:
	if (d.res)
		freeaddrinfo(d.res);
	vms_tls_creds_free(d.creds);
	d.t.own_fds = true;
	vms_transport_release(&d.t);
	return err;
}
