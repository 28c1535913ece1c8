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
		return vms_fail(VMS_ENET, "socket: %s", strerror(errno));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
		err = vms_fail(VMS_ENET, "connect: %s", strerror(errno));
		goto out_close;
	}
	err = vms_fd_wait(fd, POLLOUT, deadline_ns);
	if (err) {
		if (err == VMS_ETIMEOUT)
			vms_fail(VMS_ETIMEOUT, "connect timed out");
		goto out_close;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
		err = vms_fail(VMS_ENET, "connect: %s", strerror(soerr ? soerr : errno));
		goto out_close;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	*out = fd;
	return 0;

out_close:
	close(fd);
	return err;
}

int vms_writer_connect(struct vms_writer **out, const char *addr, const struct vms_net_opts *nopts,
		       const struct vms_writer_opts *opts)
{
	struct vms_writer_opts wo;
	struct vms_net_opts net;
	struct vms_transport t;
	struct vms_tls_creds *creds = NULL;
	struct addrinfo hints = { 0 }, *res = NULL, *ai;
	struct vms_hello h = { 0 };
	char host[256], port[16];
	uint64_t deadline;
	bool loopback = false;
	int err, gai;

	*out = NULL;
	vms_transport_init_fd(&t, -1);
	err = vms_net_opts_take(&net, nopts);
	if (err)
		return err;
	err = vms_writer_opts_take(&wo, opts);
	if (err)
		return err;
	if (wo.cipher != VMS_CIPHER_NONE && !vms_net_authenticated(&net))
		return vms_fail(VMS_EKEY, "encryption needs an authenticated session: give a PSK or certificates");
	err = vms_split_addr(addr, host, sizeof(host), port, sizeof(port), false);
	if (err)
		return err;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	gai = getaddrinfo(host, port, &hints, &res);
	if (gai != 0)
		return vms_fail(VMS_ENET, "cannot resolve %s: %s", host, gai_strerror(gai));
	err = vms_net_creds(&net, 0, &creds);
	if (err)
		goto out_free;

	h.vmin = h.vmax = VMS_FORMAT_MAJOR;
	h.lanes = (uint16_t)net.lanes;
	if (getrandom(h.session_id, sizeof(h.session_id), 0) != sizeof(h.session_id)) {
		err = vms_fail(VMS_EIO, "getrandom: %s", strerror(errno));
		goto out_free;
	}
	h.chunk_cap = wo.chunk_size ? wo.chunk_size : VMS_CHUNK_DEFAULT;
	h.cipher = (uint8_t)wo.cipher;
	h.size_hint = wo.size_hint;
	{
		const struct vms_stage *codec;
		int level;
		bool adaptive;

		err = vms_compress_parse(wo.compress, &codec, &level, &adaptive);
		if (err)
			goto out_free;
		if (codec) {
			h.ncodecs = 1;
			h.codecs[0].id = (uint8_t)codec->id;
			snprintf(h.codecs[0].name, sizeof(h.codecs[0].name), "%s", codec->name);
		}
	}

	deadline = vms_deadline_in(net.connect_timeout_ms);
	t.nlanes = net.lanes;
	t.own_fds = true;
	t.session = true;
	t.keyed = creds != NULL;
	t.engine = net.io;
	t.idle_timeout_ms = net.idle_timeout_ms;
	t.rate_limit = net.rate_limit;
	for (unsigned l = 0; l < net.lanes; l++)
		t.fds[l] = -1;
	for (unsigned l = 0; l < net.lanes; l++) {
		uint8_t msg[VMS_SESSION_MSG_MAX], rep[VMS_SESSION_MSG_MAX];
		size_t mlen, rlen = 0;
		int32_t status = 0;
		char text[VMS_SESSION_MSG_MAX];
		int fd = -1;

		err = VMS_ENET;
		for (ai = res; ai; ai = ai->ai_next) {
			err = connect_one(ai, deadline, &fd);
			if (!err)
				break;
		}
		if (err) {
			char why[VMS_MSG_MAX];

			snprintf(why, sizeof(why), "%s", vms_last_error());
			err = vms_fail(err, "cannot connect to %s (lane %u): %s", addr, l, why);
			goto out_free;
		}
		t.fds[l] = fd;
		if (l == 0) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);

			loopback = getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 &&
				   vms_sockaddr_loopback((struct sockaddr *)&ss);
			if (!creds && !loopback && !(net.flags & VMS_NET_F_INSECURE)) {
				err = vms_fail(VMS_EINVAL, "refusing an unauthenticated, unencrypted session "
							   "with non-loopback %s: give a PSK or certificates, "
							   "or choose insecure explicitly", addr);
				goto out_free;
			}
			if (!creds && !loopback)
				vms_log(wo.log, wo.log_user, wo.log_level, VMS_LOG_WARN,
					"INSECURE: sending unauthenticated, unencrypted data to %s", addr);
		}
		vms_sock_tune(fd);
		h.lane = (uint16_t)l;
		mlen = vms_hello_encode(&h, msg);
		if (creds) {
			struct vms_tls_info info;
			int timeout = (int)vms_deadline_left(deadline);

			err = vms_tls_client(creds, fd, msg, mlen, rep, sizeof(rep), &rlen, (uint16_t)l,
					     t.ikm_c2s[l], t.ikm_s2c[l], timeout > 0 ? timeout : 1,
					     &info);
			if (!err && l == 0)
				snprintf(t.peer, sizeof(t.peer), "%.255s", info.peer);
		} else {
			err = vms_plain_send(fd, msg, mlen, deadline);
			if (!err)
				err = vms_plain_recv(fd, rep, sizeof(rep), &rlen, deadline);
			if (!err && l == 0)
				snprintf(t.peer, sizeof(t.peer), "insecure");
		}
		if (err) {
			char why[VMS_MSG_MAX];

			snprintf(why, sizeof(why), "%s", vms_last_error());
			err = vms_fail(err, "lane %u: %s", l, why);
			goto out_free;
		}
		err = vms_reply_decode(rep, rlen, &status, text, sizeof(text));
		if (err)
			goto out_free;
		if (status != 0) {
			err = vms_fail(status < 0 && vms_errname(status) ? status : VMS_EPROTO,
				       "receiver refused the session: %s", text);
			goto out_free;
		}
	}
	freeaddrinfo(res);
	res = NULL;
	vms_tls_creds_free(creds);
	creds = NULL;
	return vms_writer_open_transport(out, &t, &wo);

out_free:
	if (res)
		freeaddrinfo(res);
	vms_tls_creds_free(creds);
	t.own_fds = true;
	vms_transport_release(&t);
	return err;
}

