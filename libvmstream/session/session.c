/* SPDX-License-Identifier: MIT */
/*
 * Network sessions (FORMAT.md section 9): TCP lanes, authentication through
 * TLS 1.3 (session/tls.c) or none (loopback / --insecure), HELLO/REPLY
 * negotiation, then the stream runs on the raw sockets through the writer
 * and reader (core/), which also carry the acknowledgement.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <sys/socket.h>
#include "base/clock.h"
#include "base/abi.h"
#include "base/error.h"
#include "stream/internal.h"
#include "format/cursor.h"
#include "format/format.h"
#include "base/hash.h"
#include "pipeline/ring.h"
#include "session/tls.h"
#include "stage/stage.h"

#define HELLO_MAGIC "VMSHELO1"
#define REPLY_MAGIC "VMSREPL1"
#define HELLO_FIXED 48
#define REPLY_FIXED 22
#define DEFAULT_CONNECT_MS 10000
#define DEFAULT_IDLE_MS 30000

struct hello {
	uint16_t vmin, vmax, lane, lanes;
	uint8_t session_id[16];
	uint32_t chunk_cap;
	uint8_t cipher;
	uint64_t size_hint;
	unsigned ncodecs;
	struct vms_codec_decl codecs[VMS_MAX_CODECS];
};

struct vms_listener {
	int fd;
	struct vms_net_opts net;
	uint8_t psk[VMS_KEY_LEN];
	struct vms_tls_creds *creds;
	bool loopback;
	int port;
	uint64_t lanes_deadline; /* the rest of a session's lanes are due */
};

/* ---- messages ---------------------------------------------------------- */

static size_t hello_encode(const struct hello *h, uint8_t *out)
{
	uint8_t *q = out + HELLO_FIXED;

	memcpy(out, HELLO_MAGIC, 8);
	vms_put_u16(out + 8, h->vmin);
	vms_put_u16(out + 10, h->vmax);
	vms_put_u16(out + 12, h->lane);
	vms_put_u16(out + 14, h->lanes);
	memcpy(out + 16, h->session_id, 16);
	vms_put_u32(out + 32, h->chunk_cap);
	out[36] = h->cipher;
	out[37] = 0;
	vms_put_u16(out + 38, (uint16_t)h->ncodecs);
	vms_put_u64(out + 40, h->size_hint);
	for (unsigned i = 0; i < h->ncodecs; i++) {
		size_t n = strlen(h->codecs[i].name);

		*q++ = h->codecs[i].id;
		*q++ = (uint8_t)n;
		memcpy(q, h->codecs[i].name, n);
		q += n;
	}
	return (size_t)(q - out);
}

static int hello_decode(struct hello *h, const uint8_t *in, size_t n, const char **why)
{
	struct vms_cur c = vms_cur_init(in, n);
	const uint8_t *magic;
	uint8_t reserved;
	uint16_t ncodecs;

	memset(h, 0, sizeof(*h));
	if (!vms_cur_ptr(&c, 8, &magic) || memcmp(magic, HELLO_MAGIC, 8) != 0)
		return *why = "peer did not send a vmstream HELLO", VMS_EPROTO;
	if (!(vms_cur_u16(&c, &h->vmin) && vms_cur_u16(&c, &h->vmax) && vms_cur_u16(&c, &h->lane) &&
	      vms_cur_u16(&c, &h->lanes) && vms_cur_bytes(&c, h->session_id, 16) &&
	      vms_cur_u32(&c, &h->chunk_cap) && vms_cur_u8(&c, &h->cipher) &&
	      vms_cur_u8(&c, &reserved) && vms_cur_u16(&c, &ncodecs) &&
	      vms_cur_u64(&c, &h->size_hint)))
		return *why = "HELLO too short", VMS_EPROTO;
	if (reserved != 0)
		return *why = "HELLO reserved field not zero", VMS_EPROTO;
	if (ncodecs > VMS_MAX_CODECS)
		return *why = "HELLO lists too many codecs", VMS_EPROTO;
	for (unsigned i = 0; i < ncodecs; i++) {
		uint8_t id, len;
		const uint8_t *name;

		if (!vms_cur_u8(&c, &id) || !vms_cur_u8(&c, &len) || len < 1 ||
		    len > VMS_CODEC_NAME_MAX || !vms_cur_ptr(&c, len, &name))
			return *why = "HELLO codec entry malformed", VMS_EPROTO;
		h->codecs[i].id = id;
		memcpy(h->codecs[i].name, name, len);
		h->codecs[i].name[len] = '\0';
	}
	h->ncodecs = ncodecs;
	if (vms_cur_left(&c) != 0)
		return *why = "HELLO has trailing bytes", VMS_EPROTO;
	return 0;
}

static size_t reply_encode(int32_t status, uint32_t max_chunk, const char *text, uint8_t *out)
{
	size_t n = text ? strlen(text) : 0;

	if (n > VMS_SESSION_MSG_MAX - REPLY_FIXED)
		n = VMS_SESSION_MSG_MAX - REPLY_FIXED;
	memcpy(out, REPLY_MAGIC, 8);
	vms_put_u32(out + 8, (uint32_t)status);
	vms_put_u16(out + 12, VMS_FORMAT_MAJOR);
	vms_put_u16(out + 14, 0);
	vms_put_u32(out + 16, max_chunk);
	vms_put_u16(out + 20, (uint16_t)n);
	memcpy(out + REPLY_FIXED, text ? text : "", n);
	return REPLY_FIXED + n;
}

static int reply_decode(const uint8_t *in, size_t n, int32_t *status, char *text, size_t cap)
{
	struct vms_cur c = vms_cur_init(in, n);
	const uint8_t *magic, *t;
	uint32_t st, max_chunk;
	uint16_t version, reserved, tl;

	if (!vms_cur_ptr(&c, 8, &magic) || memcmp(magic, REPLY_MAGIC, 8) != 0 ||
	    !(vms_cur_u32(&c, &st) && vms_cur_u16(&c, &version) && vms_cur_u16(&c, &reserved) &&
	      vms_cur_u32(&c, &max_chunk) && vms_cur_u16(&c, &tl)) ||
	    !vms_cur_ptr(&c, tl, &t) || vms_cur_left(&c) != 0)
		return vms_fail(VMS_EPROTO, "receiver sent a malformed REPLY");
	*status = (int32_t)st;
	if (tl >= cap)
		tl = (uint16_t)(cap - 1);
	memcpy(text, t, tl);
	text[tl] = '\0';
	return 0;
}

/* ---- plain (unauthenticated) framing: u32 len, bytes, u64 XXH3 ---------- */

static int64_t deadline_left(uint64_t deadline_ns)
{
	uint64_t now = vms_now_ns();

	return now >= deadline_ns ? 0 : (int64_t)((deadline_ns - now) / 1000000u) + 1;
}

static int io_wait(int fd, short ev, uint64_t deadline_ns)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int n;

	do
		n = poll(&p, 1, (int)deadline_left(deadline_ns));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return vms_fail(VMS_ENET, "poll: %s", vms_sys_err(errno));
	if (n == 0)
		return vms_fail(VMS_ETIMEOUT, "handshake timed out");
	return 0;
}

static int plain_send(int fd, const uint8_t *msg, size_t len, uint64_t deadline_ns)
{
	uint8_t buf[4 + VMS_SESSION_MSG_MAX + 8];
	size_t n = 4 + len + 8, off = 0;

	vms_put_u32(buf, (uint32_t)len);
	memcpy(buf + 4, msg, len);
	vms_put_u64(buf + 4 + len, vms_xxh3(msg, len));
	while (off < n) {
		ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			int err = io_wait(fd, POLLOUT, deadline_ns);

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

static int plain_recv_exact(int fd, uint8_t *buf, size_t n, uint64_t deadline_ns)
{
	size_t off = 0;

	while (off < n) {
		ssize_t r = recv(fd, buf + off, n - off, MSG_DONTWAIT);

		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			int err = io_wait(fd, POLLIN, deadline_ns);

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

static int plain_recv(int fd, uint8_t *msg, size_t cap, size_t *len, uint64_t deadline_ns)
{
	uint8_t hdr[4], sum[8];
	uint32_t n;
	int err = plain_recv_exact(fd, hdr, 4, deadline_ns);

	if (err)
		return err;
	if (hdr[0] == 0x16 && hdr[1] == 0x03)
		return vms_fail(VMS_ETLS, "peer speaks TLS but this side has no credentials "
					  "(give both sides --psk-file or certificates)");
	n = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
	if (n > cap)
		return vms_fail(VMS_EPROTO, "peer is not speaking the vmstream handshake");
	err = plain_recv_exact(fd, msg, n, deadline_ns);
	if (!err)
		err = plain_recv_exact(fd, sum, 8, deadline_ns);
	if (err)
		return err;
	if (vms_get_u64(sum) != vms_xxh3(msg, n))
		return vms_fail(VMS_EPROTO, "handshake message checksum mismatch");
	*len = n;
	return 0;
}

/* ---- addresses --------------------------------------------------------- */

/* "HOST:PORT", "[V6]:PORT" or "PORT" (listen only: any address). */
static int split_addr(const char *addr, char *host, size_t hcap, char *port, size_t pcap,
		      bool allow_no_host)
{
	const char *colon;
	size_t hl;

	if (!addr || !*addr)
		return vms_fail(VMS_EINVAL, "empty address");
	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');

		if (!end || end[1] != ':')
			return vms_fail(VMS_EINVAL, "address \"%s\": expected [IPV6]:PORT", addr);
		hl = (size_t)(end - addr - 1);
		colon = end + 1;
		if (hl >= hcap)
			return vms_fail(VMS_EINVAL, "address \"%s\": host too long", addr);
		memcpy(host, addr + 1, hl);
		host[hl] = '\0';
	} else {
		colon = strrchr(addr, ':');
		if (!colon) {
			if (!allow_no_host)
				return vms_fail(VMS_EINVAL, "address \"%s\": expected HOST:PORT", addr);
			host[0] = '\0';
			colon = addr - 1;
		} else {
			hl = (size_t)(colon - addr);
			if (hl >= hcap || memchr(addr, ':', hl))
				return vms_fail(VMS_EINVAL, "address \"%s\": IPv6 literals need brackets", addr);
			memcpy(host, addr, hl);
			host[hl] = '\0';
		}
	}
	{
		const char *p = colon + 1;
		char *end;
		long v;

		errno = 0;
		v = strtol(p, &end, 10);
		if (!*p || *end || errno || v < 0 || v > 65535 || strlen(p) >= pcap)
			return vms_fail(VMS_EINVAL, "address \"%s\": port must be 0..65535", addr);
		snprintf(port, pcap, "%ld", v);
	}
	return 0;
}

static bool sockaddr_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

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
	err = io_wait(fd, POLLOUT, deadline_ns);
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

static void tune_socket(int fd)
{
	int one = 1;

	/* records are written whole; Nagle would only delay the small ones */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- credentials -------------------------------------------------------- */

static bool net_authenticated(const struct vms_net_opts *n)
{
	return n->psk || n->cert_file || n->key_file || n->ca_file;
}

#define NET_FLAGS (VMS_NET_F_INSECURE | VMS_NET_F_ALLOW_PLAINTEXT)

static int timeout_take(const char *name, int *ms, int def)
{
	if (*ms < 0 || *ms > VMS_TIMEOUT_MAX_MS)
		return vms_fail(VMS_EINVAL, "network options: %s %d ms outside [0, %d] (0 = %d)", name,
				*ms, VMS_TIMEOUT_MAX_MS, def);
	if (*ms == 0)
		*ms = def;
	return 0;
}

/* Take in network options: size field, defaults, every bound. */
static int net_opts_copy(struct vms_net_opts *dst, const struct vms_net_opts *src)
{
	struct vms_net_opts def = VMS_NET_OPTS_INIT;
	int err = vms_opts_take(&def, sizeof(def), src, sizeof(def), "network options");

	if (err)
		return err;
	if (def.lanes == 0)
		def.lanes = 1;
	if (def.lanes > VMS_LANES_MAX)
		return vms_fail(VMS_EINVAL, "network options: lanes %u outside [1, %u]", def.lanes,
				VMS_LANES_MAX);
	err = timeout_take("connect_timeout_ms", &def.connect_timeout_ms, DEFAULT_CONNECT_MS);
	if (!err)
		err = timeout_take("idle_timeout_ms", &def.idle_timeout_ms, DEFAULT_IDLE_MS);
	if (err)
		return err;
	if (def.io > VMS_IO_POSIX)
		return vms_fail(VMS_EINVAL, "network options: unknown I/O engine %u", def.io);
	if (def.rate_limit > VMS_RATE_MAX)
		return vms_fail(VMS_EINVAL, "network options: rate_limit %llu above %llu bytes/s",
				(unsigned long long)def.rate_limit, (unsigned long long)VMS_RATE_MAX);
	if (def.flags & ~(uint32_t)NET_FLAGS)
		return vms_fail(VMS_EINVAL, "network options: unknown flags 0x%x",
				def.flags & ~(uint32_t)NET_FLAGS);
	/* the PSK identity is checked where the credentials are made (tls.c) */
	if (def.psk && (def.cert_file || def.key_file || def.ca_file))
		return vms_fail(VMS_EINVAL, "choose either a PSK or certificates, not both");
	if (!def.psk && (def.cert_file || def.key_file || def.ca_file) &&
	    !(def.cert_file && def.key_file && def.ca_file))
		return vms_fail(VMS_EINVAL, "certificate mode needs a certificate, a key and a CA file");
	*dst = def;
	return 0;
}

static int creds_for(const struct vms_net_opts *n, int is_server, struct vms_tls_creds **out)
{
	struct vms_tls_conf conf = { 0 };

	*out = NULL;
	if (!net_authenticated(n))
		return 0;
	conf.psk = n->psk;
	conf.psk_len = n->psk ? VMS_KEY_LEN : 0;
	conf.psk_identity = n->psk_identity;
	conf.cert_file = n->cert_file;
	conf.key_file = n->key_file;
	conf.ca_file = n->ca_file;
	return vms_tls_creds_new(out, &conf, is_server);
}

/* ---- sender ------------------------------------------------------------ */

int vms_writer_connect(struct vms_writer **out, const char *addr, const struct vms_net_opts *nopts,
		       const struct vms_writer_opts *opts)
{
	struct vms_writer_opts wo;
	struct vms_net_opts net;
	struct vms_transport t;
	struct vms_tls_creds *creds = NULL;
	struct addrinfo hints = { 0 }, *res = NULL, *ai;
	struct hello h = { 0 };
	char host[256], port[16];
	uint64_t deadline;
	bool loopback = false;
	int err, gai;

	*out = NULL;
	vms_transport_init_fd(&t, -1);
	err = net_opts_copy(&net, nopts);
	if (err)
		return err;
	err = vms_writer_opts_take(&wo, opts);
	if (err)
		return err;
	if (wo.cipher != VMS_CIPHER_NONE && !net_authenticated(&net))
		return vms_fail(VMS_EKEY, "encryption needs an authenticated session: give a PSK or certificates");
	err = split_addr(addr, host, sizeof(host), port, sizeof(port), false);
	if (err)
		return err;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	gai = getaddrinfo(host, port, &hints, &res);
	if (gai != 0)
		return vms_fail(VMS_ENET, "cannot resolve %s: %s", host, gai_strerror(gai));
	err = creds_for(&net, 0, &creds);
	if (err)
		goto out_free;

	h.vmin = h.vmax = VMS_FORMAT_MAJOR;
	h.lanes = (uint16_t)net.lanes;
	if (getrandom(h.session_id, sizeof(h.session_id), 0) != sizeof(h.session_id)) {
		err = vms_fail(VMS_EIO, "getrandom: %s", vms_sys_err(errno));
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

	deadline = vms_now_ns() + (uint64_t)net.connect_timeout_ms * 1000000u;
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
				   sockaddr_loopback((struct sockaddr *)&ss);
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
		tune_socket(fd);
		h.lane = (uint16_t)l;
		mlen = hello_encode(&h, msg);
		if (creds) {
			struct vms_tls_info info;
			int timeout = (int)deadline_left(deadline);

			err = vms_tls_client(creds, fd, msg, mlen, rep, sizeof(rep), &rlen, (uint16_t)l,
					     t.ikm_c2s[l], t.ikm_s2c[l], timeout > 0 ? timeout : 1,
					     &info);
			if (!err && l == 0)
				snprintf(t.peer, sizeof(t.peer), "%.255s", info.peer);
		} else {
			err = plain_send(fd, msg, mlen, deadline);
			if (!err)
				err = plain_recv(fd, rep, sizeof(rep), &rlen, deadline);
			if (!err && l == 0)
				snprintf(t.peer, sizeof(t.peer), "insecure");
		}
		if (err) {
			char why[VMS_MSG_MAX];

			snprintf(why, sizeof(why), "%s", vms_last_error());
			err = vms_fail(err, "lane %u: %s", l, why);
			goto out_free;
		}
		err = reply_decode(rep, rlen, &status, text, sizeof(text));
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

/* ---- receiver ---------------------------------------------------------- */

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
	err = net_opts_copy(&l->net, nopts);
	if (err)
		goto out_free;
	if (l->net.psk) {
		memcpy(l->psk, l->net.psk, VMS_KEY_LEN);
		l->net.psk = l->psk;
	}
	err = split_addr(addr, host, sizeof(host), port, sizeof(port), true);
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
			err = vms_fail(VMS_ENET, "cannot listen on %s: %s", addr, vms_sys_err(errno));
			close(fd);
			continue;
		}
		l->fd = fd;
		l->loopback = sockaddr_loopback(ai->ai_addr);
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
	if (!net_authenticated(&l->net) && !l->loopback && !(l->net.flags & VMS_NET_F_INSECURE)) {
		err = vms_fail(VMS_EINVAL, "refusing to accept unauthenticated, unencrypted sessions on "
					   "non-loopback %s: give a PSK or certificates, or choose "
					   "insecure explicitly", addr);
		goto out_free;
	}
	err = creds_for(&l->net, 1, &l->creds);
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

/* Check a HELLO against this receiver's policy and the session so far.
 * Returns 0 or the refusal code with its reason in why. */
static int check_hello(const struct vms_listener *l, const struct hello *h,
		       const struct vms_reader_opts *ro, bool have_session,
		       const uint8_t session_id[16], unsigned lanes, const bool *seen, char *why,
		       size_t cap)
{
	uint32_t max_chunk = ro && ro->max_chunk ? ro->max_chunk : VMS_CHUNK_MAX;

	if (h->vmin > VMS_FORMAT_MAJOR || h->vmax < VMS_FORMAT_MAJOR) {
		snprintf(why, cap, "no common format version (sender %u..%u, receiver %u)", h->vmin,
			 h->vmax, VMS_FORMAT_MAJOR);
		return VMS_EVERSION;
	}
	if (h->lanes < 1 || h->lanes > VMS_LANES_MAX || h->lane >= h->lanes) {
		snprintf(why, cap, "bad lane %u of %u", h->lane, h->lanes);
		return VMS_EPROTO;
	}
	if (h->chunk_cap > max_chunk || h->chunk_cap < VMS_CHUNK_MIN) {
		snprintf(why, cap, "chunk size %u not accepted (receiver allows up to %u)", h->chunk_cap,
			 max_chunk);
		return VMS_ELENGTH;
	}
	for (unsigned i = 0; i < h->ncodecs; i++) {
		const struct vms_stage *st = vms_stage_find(h->codecs[i].name);

		if (!st || st->kind != VMS_STAGE_CODEC) {
			snprintf(why, cap, "codec \"%s\" is not available on the receiver",
				 h->codecs[i].name);
			return VMS_ECODEC;
		}
	}
	if (h->cipher > VMS_CIPHER_CHACHA20_POLY1305) {
		snprintf(why, cap, "unknown cipher %u", h->cipher);
		return VMS_EPROTO;
	}
	if (h->cipher != VMS_CIPHER_NONE && !l->creds) {
		snprintf(why, cap, "encryption needs authentication, and this receiver has none");
		return VMS_EKEY;
	}
	if (h->cipher == VMS_CIPHER_NONE && l->creds && !(l->net.flags & VMS_NET_F_ALLOW_PLAINTEXT)) {
		snprintf(why, cap, "this receiver requires encrypted records");
		return VMS_EPROTO;
	}
	if (have_session) {
		if (memcmp(session_id, h->session_id, 16) != 0) {
			snprintf(why, cap, "another session is being received");
			return VMS_EPROTO;
		}
		if (h->lanes != lanes || seen[h->lane]) {
			snprintf(why, cap, "lane %u of %u does not fit the session", h->lane, h->lanes);
			return VMS_EPROTO;
		}
	}
	return 0;
}

int vms_accept(struct vms_listener *l, struct vms_reader **out, const struct vms_reader_opts *ro,
	       int timeout_ms)
{
	struct vms_transport t;
	bool seen[VMS_LANES_MAX] = { false };
	uint8_t session_id[16];
	unsigned lanes = 0, got = 0;
	bool have_session = false;
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
		deadline = vms_now_ns() + (uint64_t)timeout_ms * 1000000u;

	while (!have_session || got < lanes) {
		uint8_t msg[VMS_SESSION_MSG_MAX], rep[VMS_SESSION_MSG_MAX];
		struct vms_tls_conn *conn = NULL;
		struct hello h;
		char why[512];
		const char *dwhy;
		size_t mlen = 0, rlen;
		uint64_t hs_deadline;
		int fd, code;

		if (deadline || have_session) {
			struct pollfd p = { .fd = l->fd, .events = POLLIN };
			uint64_t dl = have_session ? l->lanes_deadline : deadline;
			int n;

			do
				n = poll(&p, 1, (int)deadline_left(dl));
			while (n < 0 && errno == EINTR);
			if (n == 0) {
				err = vms_fail(VMS_ETIMEOUT, have_session
						? "only %u of %u lanes connected in time" : "no sender connected in time",
					       got, lanes);
				goto out_release;
			}
		}
		fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			err = vms_fail(VMS_ENET, "accept: %s", vms_sys_err(errno));
			goto out_release;
		}
		tune_socket(fd);
		hs_deadline = vms_now_ns() + (uint64_t)l->net.connect_timeout_ms * 1000000u;
		if (l->creds)
			err = vms_tls_server_accept(l->creds, fd, msg, sizeof(msg), &mlen,
						    l->net.connect_timeout_ms, &conn);
		else
			err = plain_recv(fd, msg, sizeof(msg), &mlen, hs_deadline);
		if (!err) {
			err = hello_decode(&h, msg, mlen, &dwhy);
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
		code = check_hello(l, &h, ro, have_session, session_id, lanes, seen, why, sizeof(why));
		rlen = reply_encode(code, ro && ro->max_chunk ? ro->max_chunk : VMS_CHUNK_MAX,
				    code ? why : "", rep);
		if (code) {
			/* tell the sender why; report it here too */
			if (conn)
				vms_tls_server_reply(conn, rep, rlen, h.lane, t.ikm_c2s[0], t.ikm_s2c[0],
						     l->net.connect_timeout_ms);
			else
				plain_send(fd, rep, rlen, hs_deadline);
			close(fd);
			vms_wipe(t.ikm_c2s[0], VMS_KEY_LEN);
			vms_wipe(t.ikm_s2c[0], VMS_KEY_LEN);
			if (have_session)
				continue; /* a stray connection does not end the session */
			err = vms_fail(code, "refused a session: %s", why);
			goto out_release;
		}
		if (conn) {
			char peer[sizeof(t.peer)];

			snprintf(peer, sizeof(peer), "%s", vms_tls_conn_peer(conn));
			err = vms_tls_server_reply(conn, rep, rlen, h.lane, t.ikm_c2s[h.lane],
						   t.ikm_s2c[h.lane], l->net.connect_timeout_ms);
			if (!err && !have_session)
				snprintf(t.peer, sizeof(t.peer), "%s", peer);
		} else {
			err = plain_send(fd, rep, rlen, hs_deadline);
			if (!err && !have_session)
				snprintf(t.peer, sizeof(t.peer), "insecure");
		}
		if (err) {
			close(fd);
			goto out_release;
		}
		if (!have_session) {
			have_session = true;
			memcpy(session_id, h.session_id, 16);
			lanes = h.lanes;
			t.nlanes = lanes;
			l->lanes_deadline = vms_now_ns() + (uint64_t)l->net.connect_timeout_ms * 1000000u;
		}
		seen[h.lane] = true;
		t.fds[h.lane] = fd;
		got++;
	}
	return vms_reader_open_transport(out, &t, ro);

out_release:
	t.nlanes = VMS_LANES_MAX;
	vms_transport_release(&t);
	return err;
}
