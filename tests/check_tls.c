/* SPDX-License-Identifier: MIT */
/*
 * session/tls: TLS 1.3 authentication of a lane, HELLO/REPLY exchange, key
 * export, and the switch to the raw socket.
 *
 * Real sockets (loopback TCP, ephemeral ports), one thread per side. Peers
 * that misbehave are written here with OpenSSL directly ("rogue" peers) or as
 * plain byte writers. Certificates come from tests/tls_certs.sh, run once into
 * a temporary directory.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "vmstream.h"
#include "session/tls.h"
#include "testutil.h"

#define OK_TIMEOUT 20000 /* ms: generous, sanitizer builds are slow */
#define SHORT_TIMEOUT 300
#define RAW_BIG (8u << 20)

static char certdir[256];

static const uint8_t psk_a[32] = {
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
	0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78, 0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0,
};
static const uint8_t psk_b[32] = { 1, 2, 3 };

/* ---- helpers ---------------------------------------------------------------- */

static int64_t now_ms(void)
{
	return tu_now_ms();
}

/* A peer that stalls does so until the other end gives up and closes: the
 * order under test, whatever the machine's speed. true if it did. */
static bool wait_hangup(int fd)
{
	return tu_wait_fd(fd, POLLRDHUP, TU_WAIT_MS) & (POLLRDHUP | POLLHUP);
}

static void die(const char *what) __attribute__((noreturn));

static void die(const char *what)
{
	fprintf(stderr, "test setup failed: %s: %s\n", what, strerror(errno));
	abort();
}

/* Path of a file made by tls_certs.sh, in one of 32 rotating buffers: use it
 * right away (tests call this from one thread). */
static const char *cp(const char *name)
{
	static char bufs[32][PATH_MAX];
	static int next;
	char *b = bufs[next++ % 32];

	snprintf(b, PATH_MAX, "%s/%s", certdir, name);
	return b;
}

/* A connected loopback TCP pair. */
static void tcp_pair(int *cfd, int *sfd)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int l, one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) < 0)
		die("listen");
	*cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*cfd < 0 || connect(*cfd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect");
	*sfd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (*sfd < 0)
		die("accept");
	close(l);
	setsockopt(*cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(*sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Stream pattern: byte i is byte (i % 8) of splitmix64(seed + i / 8), so loss,
 * duplication, reordering and foreign bytes all show. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void pattern(uint8_t *buf, uint64_t off, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t pos = off + i;

		buf[i] = (uint8_t)(mix(seed + pos / 8) >> (8 * (pos % 8)));
	}
}

/* Write len pattern bytes; works whether fd is blocking or not (another
 * thread may flip O_NONBLOCK under us). Returns 0 or -errno. */
static int raw_send(int fd, size_t len, uint64_t seed)
{
	static const size_t step = 64 << 10;
	uint8_t *buf = malloc(step);
	uint64_t off = 0;
	int rc = 0;

	if (!buf)
		die("malloc");
	while (off < len) {
		size_t n = len - off < step ? len - off : step, done = 0;

		pattern(buf, off, n, seed);
		while (done < n) {
			ssize_t w = send(fd, buf + done, n - done, MSG_NOSIGNAL | MSG_DONTWAIT);

			if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
				struct pollfd p = { .fd = fd, .events = POLLOUT };

				poll(&p, 1, 1000);
				continue;
			}
			if (w <= 0) {
				rc = -errno;
				goto out;
			}
			done += (size_t)w;
		}
		off += n;
	}
out:
	free(buf);
	return rc;
}

/* Read exactly len bytes with plain read() and compare with the pattern.
 * Returns 0 if every byte matched, 1 on a mismatch, -errno / -EPIPE (EOF). */
static int raw_recv_check(int fd, size_t len, uint64_t seed)
{
	static const size_t step = 64 << 10;
	uint8_t *buf = malloc(step), *want = malloc(step);
	uint64_t off = 0;
	int rc = 0;

	if (!buf || !want)
		die("malloc");
	while (off < len) {
		size_t cap = len - off < step ? len - off : step;
		ssize_t n = read(fd, buf, cap);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLIN };

			poll(&p, 1, 1000);
			continue;
		}
		if (n <= 0) {
			rc = n < 0 ? -errno : -EPIPE;
			break;
		}
		pattern(want, off, (size_t)n, seed);
		if (memcmp(buf, want, (size_t)n) != 0) {
			rc = 1;
			break;
		}
		off += (size_t)n;
	}
	free(buf);
	free(want);
	return rc;
}

static int readable_bytes(int fd)
{
	int n = 0;

	if (ioctl(fd, FIONREAD, &n) < 0)
		return -1;
	return n;
}

static struct vms_tls_creds *creds_psk(const uint8_t *psk, const char *id, int server)
{
	struct vms_tls_conf conf = { .psk = psk, .psk_len = 32, .psk_identity = id };
	struct vms_tls_creds *c = NULL;
	int rc = vms_tls_creds_new(&c, &conf, server);

	ck_assert_msg(rc == 0, "creds_new: %s", vms_last_error());
	return c;
}

static struct vms_tls_creds *creds_x509(const char *cert, const char *key, const char *ca,
					int server)
{
	struct vms_tls_conf conf = { .cert_file = cert, .key_file = key, .ca_file = ca };
	struct vms_tls_creds *c = NULL;
	int rc = vms_tls_creds_new(&c, &conf, server);

	ck_assert_msg(rc == 0, "creds_new(%s): %s", cert, vms_last_error());
	return c;
}

/* ---- the two sides, each on its own thread --------------------------------------- */

struct side {
	struct vms_tls_creds *creds;
	int fd;
	int timeout_ms;
	uint16_t lane;             /* client: its lane; server: learnt from the HELLO */
	uint8_t msg[VMS_SESSION_MSG_MAX];
	size_t msg_len;            /* HELLO (client) / REPLY (server) */
	uint8_t got[VMS_SESSION_MSG_MAX];
	size_t got_cap, got_len;
	uint8_t c2s[32], s2c[32];
	struct vms_tls_info info;
	int accept_rc;             /* server: vms_tls_server_accept() */
	int rc;                    /* final result of the TLS calls */
	char err[512];
	int64_t elapsed_ms;
	unsigned long err_queue;   /* ERR_peek_error() after the calls: must be 0 */
	int flags_before, flags_after, flags_between;
	int close_on_fail;         /* close the fd right after a failed call */
	enum { REPLY, ABANDON, ABANDON_AFTER_PEER } no_reply; /* server, after accept:
				      abandon at once, or once the peer hung up */
	/* raw phase, after a successful exchange */
	size_t raw_out, raw_in;    /* bytes to send / to receive and check */
	uint64_t seed_out, seed_in;
	int raw_out_rc, raw_in_rc;
	int pending_after;         /* server: readable bytes right after the REPLY */
	int spy;                   /* client: raw_out is sent by the spy thread */
	int wait_raw;              /* server: reply only once raw bytes are waiting */
	/* client spy: sends raw_out from another thread the moment the server
	 * has the HELLO and is about to write its REPLY */
	atomic_int *go;
};

struct raw_job {
	int fd;
	size_t len;
	uint64_t seed;
	atomic_int *go;
	int rc;
};

static void *raw_sender(void *arg)
{
	struct raw_job *j = arg;

	if (j->go)
		while (!atomic_load(j->go))
			sched_yield();
	j->rc = raw_send(j->fd, j->len, j->seed);
	return NULL;
}

/* Raw phase: send in a helper thread, receive here, so neither side can block
 * the other whatever the socket buffer sizes. */
static void raw_phase(struct side *s)
{
	struct raw_job job = { s->fd, s->raw_out, s->seed_out, NULL, 0 };
	pthread_t t;
	int started = 0;

	if (s->raw_out && !s->spy) {
		if (pthread_create(&t, NULL, raw_sender, &job))
			die("pthread_create");
		started = 1;
	}
	s->raw_in_rc = s->raw_in ? raw_recv_check(s->fd, s->raw_in, s->seed_in) : 0;
	if (started) {
		pthread_join(t, NULL);
		s->raw_out_rc = job.rc;
	}
}

static void finish(struct side *s, int64_t t0)
{
	s->elapsed_ms = now_ms() - t0;
	snprintf(s->err, sizeof(s->err), "%s", s->rc ? vms_last_error() : "");
	s->err_queue = ERR_peek_error();
	s->flags_after = fcntl(s->fd, F_GETFL);
	if (s->rc && s->close_on_fail) {
		close(s->fd);
		s->fd = -1;
	}
}

static void *client_main(void *arg)
{
	struct side *s = arg;
	int64_t t0 = now_ms();

	s->flags_before = fcntl(s->fd, F_GETFL);
	s->rc = vms_tls_client(s->creds, s->fd, s->msg, s->msg_len, s->got, s->got_cap,
			       &s->got_len, s->lane, s->c2s, s->s2c, s->timeout_ms, &s->info);
	finish(s, t0);
	if (s->rc == 0)
		raw_phase(s);
	return NULL;
}

static void *server_main(void *arg)
{
	struct side *s = arg;
	struct vms_tls_conn *conn = NULL;
	int64_t t0 = now_ms();

	s->flags_before = fcntl(s->fd, F_GETFL);
	s->rc = s->accept_rc = vms_tls_server_accept(s->creds, s->fd, s->got, s->got_cap,
						     &s->got_len, s->timeout_ms, &conn);
	if (s->rc == 0) {
		ck_assert_ptr_nonnull(conn);
		s->flags_between = fcntl(s->fd, F_GETFL);
		vms_tls_conn_info(conn, &s->info);
		ck_assert_str_eq(vms_tls_conn_peer(conn), s->info.peer);
		/* The "caller parses the hello": its first two bytes are the lane. */
		s->lane = (uint16_t)(s->got_len >= 2 ? s->got[0] | s->got[1] << 8 : 0);
		if (s->no_reply != REPLY) {
			if (s->no_reply == ABANDON_AFTER_PEER)
				ck_assert(wait_hangup(s->fd));
			vms_tls_conn_free(conn);
			s->rc = VMS_ECANCELED;
			finish(s, t0);
			return NULL;
		}
		if (s->go)
			atomic_store(s->go, 1);
		if (s->wait_raw) {
			/* Reply only once raw bytes from the client sit in our socket. */
			ck_assert(tu_wait_fd(s->fd, POLLIN, TU_WAIT_MS) & POLLIN);
		}
		s->rc = vms_tls_server_reply(conn, s->msg, s->msg_len, s->lane, s->c2s, s->s2c,
					     s->timeout_ms);
		s->pending_after = readable_bytes(s->fd);
	} else {
		ck_assert_ptr_null(conn);
	}
	finish(s, t0);
	if (s->rc == 0)
		raw_phase(s);
	return NULL;
}

static void side_init(struct side *s, struct vms_tls_creds *creds, int fd, int is_server)
{
	memset(s, 0, sizeof(*s));
	s->creds = creds;
	s->fd = fd;
	s->timeout_ms = OK_TIMEOUT;
	s->got_cap = sizeof(s->got);
	if (is_server) {
		s->msg_len = 40;
		for (size_t i = 0; i < s->msg_len; i++)
			s->msg[i] = (uint8_t)(0xa0 ^ i);
	}
}

static void client_hello(struct side *s, uint16_t lane, size_t len)
{
	s->lane = lane;
	s->msg_len = len;
	for (size_t i = 0; i < len; i++)
		s->msg[i] = (uint8_t)(i * 7 + 3);
	s->msg[0] = (uint8_t)lane;
	s->msg[1] = (uint8_t)(lane >> 8);
}

/* Run a library client against a library server over a fresh TCP pair. */
static void run_pair(struct side *cl, struct side *sv)
{
	pthread_t tc, ts, tspy;
	struct raw_job spy = { cl->fd, cl->raw_out, cl->seed_out, cl->go, 0 };

	if (pthread_create(&ts, NULL, server_main, sv) || pthread_create(&tc, NULL, client_main, cl))
		die("pthread_create");
	if (cl->spy && pthread_create(&tspy, NULL, raw_sender, &spy))
		die("pthread_create");
	pthread_join(tc, NULL);
	pthread_join(ts, NULL);
	if (cl->spy) {
		atomic_store(cl->go, 1); /* release it if the exchange failed */
		pthread_join(tspy, NULL);
		cl->raw_out_rc = spy.rc;
	}
	if (cl->fd >= 0)
		close(cl->fd);
	if (sv->fd >= 0)
		close(sv->fd);
}

static void pair_fds(struct side *cl, struct side *sv)
{
	int c, s;

	tcp_pair(&c, &s);
	cl->fd = c;
	sv->fd = s;
}

static void assert_clean(const struct side *s)
{
	ck_assert_msg(s->err_queue == 0, "OpenSSL error queue not empty after a call");
	ck_assert_int_eq(s->flags_after, s->flags_before);
}

static void assert_ok_pair(struct side *cl, struct side *sv)
{
	ck_assert_msg(cl->rc == 0, "client: %s", cl->err);
	ck_assert_msg(sv->rc == 0, "server: %s", sv->err);
	assert_clean(cl);
	assert_clean(sv);
	/* messages arrived intact */
	ck_assert_uint_eq(sv->got_len, cl->msg_len);
	ck_assert_mem_eq(sv->got, cl->msg, cl->msg_len);
	ck_assert_uint_eq(cl->got_len, sv->msg_len);
	if (sv->msg_len)
		ck_assert_mem_eq(cl->got, sv->msg, sv->msg_len);
	ck_assert_uint_eq(sv->lane, cl->lane);
	/* both ends derived the same keys, and the two directions differ */
	ck_assert_mem_eq(cl->c2s, sv->c2s, 32);
	ck_assert_mem_eq(cl->s2c, sv->s2c, 32);
	ck_assert(memcmp(cl->c2s, cl->s2c, 32) != 0);
	/* negotiated what we asked for */
	ck_assert_str_eq(cl->info.cipher, "TLS_AES_256_GCM_SHA384");
	ck_assert_str_eq(sv->info.cipher, "TLS_AES_256_GCM_SHA384");
	ck_assert_msg(cl->info.group[0] && sv->info.group[0], "no (EC)DHE group");
	ck_assert_str_eq(cl->info.group, sv->info.group);
	/* the raw phase (if any) moved every byte intact */
	ck_assert_int_eq(cl->raw_out_rc, 0);
	ck_assert_int_eq(sv->raw_out_rc, 0);
	ck_assert_int_eq(cl->raw_in_rc, 0);
	ck_assert_int_eq(sv->raw_in_rc, 0);
}

/* One complete PSK exchange on `lane`; keys returned for comparison. */
static void psk_exchange(struct vms_tls_creds *cc, struct vms_tls_creds *sc, uint16_t lane,
			 uint8_t c2s[32], uint8_t s2c[32])
{
	struct side cl, sv;

	side_init(&cl, cc, -1, 0);
	side_init(&sv, sc, -1, 1);
	pair_fds(&cl, &sv);
	client_hello(&cl, lane, 100);
	run_pair(&cl, &sv);
	assert_ok_pair(&cl, &sv);
	memcpy(c2s, cl.c2s, 32);
	memcpy(s2c, cl.s2c, 32);
}

/* ---- rogue peers: OpenSSL driven directly, to misbehave on purpose ----------------- */

enum rogue_auth { R_PSK, R_X509, R_X509_NOCERT };

struct rogue {
	int fd;
	int is_server;
	enum rogue_auth auth;
	const uint8_t *psk;
	const char *identity;
	const char *cert, *key, *ca;
	int tls12;               /* speak TLS 1.2 only */
	int key_update;          /* send a KeyUpdate before the HELLO */
	int stall;               /* client: after the handshake, send nothing until
				    the peer hangs up */
	uint32_t claim;          /* frame length field; 0 = msg_len */
	size_t msg_len;          /* frame payload bytes actually sent */
	size_t raw_len;          /* raw bytes glued to the frame's record, one send() */
	uint64_t seed;
	size_t raw_after_len;    /* server: raw bytes expected from the client after REPLY */
	uint64_t seed_after;
	/* results */
	int handshake_ok;
	int send_ok;             /* our frame went out */
	int frame_rc;            /* 1 if the peer's frame was read */
	uint8_t got[VMS_SESSION_MSG_MAX];
	size_t got_len;
	int raw_after_rc;
};

static int rogue_psk_use(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
			 SSL_SESSION **sess)
{
	struct rogue *r = SSL_get_app_data(ssl);
	const unsigned char suite[2] = { 0x13, 0x02 };
	SSL_SESSION *s = SSL_SESSION_new();

	(void)md;
	SSL_SESSION_set1_master_key(s, r->psk, 32);
	SSL_SESSION_set_cipher(s, SSL_CIPHER_find(ssl, suite));
	SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION);
	*sess = s;
	*id = (const unsigned char *)r->identity;
	*idlen = strlen(r->identity);
	return 1;
}

static int rogue_psk_find(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
	struct rogue *r = SSL_get_app_data(ssl);
	const unsigned char suite[2] = { 0x13, 0x02 };
	SSL_SESSION *s;

	*sess = NULL;
	if (idlen != strlen(r->identity) || memcmp(id, r->identity, idlen))
		return 1;
	s = SSL_SESSION_new();
	SSL_SESSION_set1_master_key(s, r->psk, 32);
	SSL_SESSION_set_cipher(s, SSL_CIPHER_find(ssl, suite));
	SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION);
	*sess = s;
	return 1;
}

static SSL *rogue_ssl(struct rogue *r)
{
	SSL_CTX *ctx = SSL_CTX_new(r->is_server ? TLS_server_method() : TLS_client_method());
	struct timeval tv = { 10, 0 };
	SSL *ssl;

	/* A safety net so a rogue never hangs the suite. */
	setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(r->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (r->tls12) {
		SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
		SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	} else {
		SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	}
	SSL_CTX_set_ciphersuites(ctx, "TLS_AES_256_GCM_SHA384");
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_read_ahead(ctx, 0);
	if (r->auth == R_PSK) {
		if (r->is_server)
			SSL_CTX_set_psk_find_session_callback(ctx, rogue_psk_find);
		else
			SSL_CTX_set_psk_use_session_callback(ctx, rogue_psk_use);
	} else {
		if (r->auth == R_X509 || r->is_server) {
			ck_assert(SSL_CTX_use_certificate_chain_file(ctx, r->cert) == 1);
			ck_assert(SSL_CTX_use_PrivateKey_file(ctx, r->key, SSL_FILETYPE_PEM) == 1);
		}
		ck_assert(SSL_CTX_load_verify_file(ctx, r->ca) == 1);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (r->is_server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
				   NULL);
	}
	ssl = SSL_new(ctx);
	SSL_CTX_free(ctx); /* the SSL keeps its reference */
	SSL_set_app_data(ssl, r);
	SSL_set_fd(ssl, r->fd);
	return ssl;
}

/* Send a frame (length field r->claim, r->msg_len payload bytes) in one TLS
 * record; with raw_len, the record and the raw bytes leave in one send(). */
static void rogue_send_frame(struct rogue *r, SSL *ssl)
{
	uint8_t frame[4 + 2 * VMS_SESSION_MSG_MAX];
	uint32_t claim = r->claim ? r->claim : (uint32_t)r->msg_len;

	ck_assert_uint_le(r->msg_len, 2 * VMS_SESSION_MSG_MAX);
	frame[0] = (uint8_t)claim;
	frame[1] = (uint8_t)(claim >> 8);
	frame[2] = (uint8_t)(claim >> 16);
	frame[3] = (uint8_t)(claim >> 24);
	for (size_t i = 0; i < r->msg_len; i++)
		frame[4 + i] = (uint8_t)i;
	if (r->msg_len >= 2 && !r->is_server) {
		frame[4] = 3; /* lane 3 */
		frame[5] = 0;
	}
	if (!r->raw_len) {
		r->send_ok = SSL_write(ssl, frame, (int)(4 + r->msg_len)) == (int)(4 + r->msg_len);
		return;
	}
	/* Encrypt into memory, then glue the raw bytes right behind the record. */
	BIO *mem = BIO_new(BIO_s_mem());
	char *rec;
	long rec_len;
	size_t total;
	uint8_t *wire;

	SSL_set0_wbio(ssl, mem); /* the socket BIO stays as rbio */
	ck_assert(SSL_write(ssl, frame, (int)(4 + r->msg_len)) == (int)(4 + r->msg_len));
	rec_len = BIO_get_mem_data(mem, &rec);
	ck_assert_int_gt(rec_len, 0);
	total = (size_t)rec_len + r->raw_len;
	wire = malloc(total);
	memcpy(wire, rec, (size_t)rec_len);
	pattern(wire + rec_len, 0, r->raw_len, r->seed);
	r->send_ok = 1;
	for (size_t done = 0; done < total;) {
		ssize_t w = send(r->fd, wire + done, total - done, MSG_NOSIGNAL);

		if (w <= 0) {
			r->send_ok = 0;
			break;
		}
		done += (size_t)w;
	}
	free(wire);
}

static int rogue_read_frame(struct rogue *r, SSL *ssl)
{
	uint8_t hdr[4];
	uint32_t n;
	size_t got = 0;

	if (SSL_read(ssl, hdr, 4) != 4)
		return 0;
	n = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
	if (n > sizeof(r->got))
		return 0;
	while (got < n) {
		int k = SSL_read(ssl, r->got + got, (int)(n - got));

		if (k <= 0)
			return 0;
		got += (size_t)k;
	}
	r->got_len = n;
	return 1;
}

static void *rogue_main(void *arg)
{
	struct rogue *r = arg;
	SSL *ssl = rogue_ssl(r);

	r->handshake_ok = (r->is_server ? SSL_accept(ssl) : SSL_connect(ssl)) == 1;
	if (!r->handshake_ok)
		goto out;
	if (r->is_server) {
		r->frame_rc = rogue_read_frame(r, ssl); /* HELLO */
		if (r->frame_rc)
			rogue_send_frame(r, ssl);       /* REPLY (+ raw s2c) */
		if (r->raw_after_len)
			r->raw_after_rc = raw_recv_check(r->fd, r->raw_after_len, r->seed_after);
		goto out;
	}
	if (r->stall) {
		ck_assert(wait_hangup(r->fd));
		goto out;
	}
	if (r->key_update)
		ck_assert(SSL_key_update(ssl, SSL_KEY_UPDATE_NOT_REQUESTED) == 1);
	rogue_send_frame(r, ssl);                       /* HELLO (+ raw c2s) */
	r->frame_rc = rogue_read_frame(r, ssl);         /* REPLY */
out:
	ERR_clear_error();
	SSL_free(ssl); /* no close_notify: never shut down */
	return NULL;
}

/* A library side against a rogue: lib runs on its own thread (closing its fd
 * when it fails, so the rogue's blocking reads end), the rogue on this one. */
static void run_vs_rogue(struct side *lib, int lib_is_server, struct rogue *r)
{
	pthread_t t;

	lib->close_on_fail = 1;
	if (pthread_create(&t, NULL, lib_is_server ? server_main : client_main, lib))
		die("pthread_create");
	rogue_main(r);
	pthread_join(t, NULL);
	if (lib->fd >= 0)
		close(lib->fd);
	close(r->fd);
}

/* ---- credentials ----------------------------------------------------------------- */

static void expect_creds_fail(const struct vms_tls_conf *conf, int server, int code,
			      const char *needle)
{
	struct vms_tls_creds *c = (struct vms_tls_creds *)&c;
	int rc = vms_tls_creds_new(&c, conf, server);

	ck_assert_msg(rc == code, "got %d (%s), want %d", rc, vms_last_error(), code);
	ck_assert_ptr_null(c);
	if (needle)
		ck_assert_msg(strstr(vms_last_error(), needle), "message \"%s\" lacks \"%s\"",
			      vms_last_error(), needle);
	ck_assert(ERR_peek_error() == 0);
}

START_TEST(test_creds_errors)
{
	struct vms_tls_conf conf;
	uint8_t longid[VMS_PSK_IDENTITY_MAX + 2];

	for (int server = 0; server <= 1; server++) {
		const char *missing = cp("no-such-file.pem");
		const char *cert = cp(server ? "server.pem" : "client.pem");
		const char *key = cp(server ? "server.key" : "client.key");
		const char *other_key = cp(server ? "client.key" : "server.key");
		const char *ca = cp("ca.pem");

		conf = (struct vms_tls_conf){ .cert_file = missing, .key_file = key, .ca_file = ca };
		expect_creds_fail(&conf, server, VMS_EINVAL, missing);
		conf = (struct vms_tls_conf){ .cert_file = cert, .key_file = missing, .ca_file = ca };
		expect_creds_fail(&conf, server, VMS_EINVAL, missing);
		conf = (struct vms_tls_conf){ .cert_file = cert, .key_file = key, .ca_file = missing };
		expect_creds_fail(&conf, server, VMS_EINVAL, missing);
		conf = (struct vms_tls_conf){ .cert_file = cert, .key_file = other_key, .ca_file = ca };
		expect_creds_fail(&conf, server, VMS_EINVAL, other_key);
		conf = (struct vms_tls_conf){ .cert_file = cp("garbage.pem"), .key_file = key,
					      .ca_file = ca };
		expect_creds_fail(&conf, server, VMS_EINVAL, "garbage.pem");
		conf = (struct vms_tls_conf){ .cert_file = cert, .key_file = cp("garbage.pem"),
					      .ca_file = ca };
		expect_creds_fail(&conf, server, VMS_EINVAL, "garbage.pem");
		conf = (struct vms_tls_conf){ .cert_file = cert, .key_file = key,
					      .ca_file = cp("garbage.pem") };
		expect_creds_fail(&conf, server, VMS_EINVAL, "garbage.pem");
		/* mutual authentication: no file may be left out */
		conf = (struct vms_tls_conf){ .key_file = key, .ca_file = ca };
		expect_creds_fail(&conf, server, VMS_EINVAL, "certificate");
		conf = (struct vms_tls_conf){ .cert_file = cert, .key_file = key };
		expect_creds_fail(&conf, server, VMS_EINVAL, "CA");
		/* PSK */
		conf = (struct vms_tls_conf){ .psk = psk_a, .psk_len = 16 };
		expect_creds_fail(&conf, server, VMS_EINVAL, "32 bytes");
		conf = (struct vms_tls_conf){ .psk = psk_a, .psk_len = 32, .ca_file = ca };
		expect_creds_fail(&conf, server, VMS_EINVAL, "not both");
		conf = (struct vms_tls_conf){ .psk = psk_a, .psk_len = 32, .psk_identity = "" };
		expect_creds_fail(&conf, server, VMS_EINVAL, "identity");
		conf = (struct vms_tls_conf){ .psk = psk_a, .psk_len = 32, .psk_identity = "a\nb" };
		expect_creds_fail(&conf, server, VMS_EINVAL, "identity");
		memset(longid, 'x', sizeof(longid) - 1);
		longid[sizeof(longid) - 1] = 0;
		conf = (struct vms_tls_conf){ .psk = psk_a, .psk_len = 32,
					      .psk_identity = (const char *)longid };
		expect_creds_fail(&conf, server, VMS_EINVAL, "identity");
		expect_creds_fail(NULL, server, VMS_EINVAL, NULL);
	}
	ck_assert_int_eq(vms_tls_creds_new(NULL, &conf, 0), VMS_EINVAL);
	vms_tls_creds_free(NULL);

	/* A chain file (leaf + intermediate) is a valid certificate. */
	vms_tls_creds_free(creds_x509(cp("chain-server.pem"), cp("chain-server.key"), cp("ca.pem"), 1));
}
END_TEST

START_TEST(test_bad_args)
{
	struct vms_tls_creds *cc = creds_psk(psk_a, NULL, 0);
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);
	struct vms_tls_conn *conn = (struct vms_tls_conn *)&conn;
	uint8_t buf[VMS_SESSION_MSG_MAX + 1] = { 0 }, c2s[32], s2c[32];
	size_t len;
	int c, s, p[2];

	tcp_pair(&c, &s);
	memset(c2s, 0x55, 32);
	/* over-long HELLO is the caller's mistake: VMS_EINVAL before any I/O */
	ck_assert_int_eq(vms_tls_client(cc, c, buf, VMS_SESSION_MSG_MAX + 1, buf, 10, &len, 0, c2s, s2c,
					1000, NULL), VMS_EINVAL);
	ck_assert(c2s[0] == 0 && c2s[31] == 0); /* outputs wiped on failure */
	ck_assert_int_eq(vms_tls_client(cc, c, buf, 1, buf, 10, &len, 0, c2s, s2c, 0, NULL),
			 VMS_EINVAL);
	ck_assert_int_eq(vms_tls_client(sc, c, buf, 1, buf, 10, &len, 0, c2s, s2c, 1000, NULL),
			 VMS_EINVAL); /* server creds on the client side */
	ck_assert_int_eq(vms_tls_server_accept(cc, s, buf, 10, &len, 1000, &conn), VMS_EINVAL);
	ck_assert_ptr_null(conn);
	ck_assert_int_eq(vms_tls_server_accept(sc, -1, buf, 10, &len, 1000, &conn), VMS_EINVAL);
	ck_assert_int_eq(vms_tls_server_reply(NULL, buf, 1, 0, c2s, s2c, 1000), VMS_EINVAL);
	/* not a stream socket */
	ck_assert(pipe(p) == 0);
	ck_assert_int_eq(vms_tls_server_accept(sc, p[0], buf, 10, &len, 1000, &conn), VMS_EINVAL);
	close(p[0]);
	close(p[1]);
	vms_tls_conn_free(NULL);
	ck_assert_str_eq(vms_tls_conn_peer(NULL), "");
	ck_assert(ERR_peek_error() == 0);
	close(c);
	close(s);
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

/* ---- successful exchanges -------------------------------------------------------------- */

START_TEST(test_psk_ok)
{
	struct vms_tls_creds *cc = creds_psk(psk_a, NULL, 0);
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);
	uint8_t k0c[32], k0s[32], k7c[32], k7s[32], k0c2[32], k0s2[32];
	struct side cl, sv;

	side_init(&cl, cc, -1, 0);
	side_init(&sv, sc, -1, 1);
	pair_fds(&cl, &sv);
	client_hello(&cl, 0, VMS_SESSION_MSG_MAX); /* the largest HELLO */
	sv.msg_len = VMS_SESSION_MSG_MAX;          /* and the largest REPLY */
	run_pair(&cl, &sv);
	assert_ok_pair(&cl, &sv);
	ck_assert_str_eq(cl.info.peer, "psk:vmstream");
	ck_assert_str_eq(sv.info.peer, "psk:vmstream");
	/* the server holds the fd in the caller's mode between its two steps */
	ck_assert_int_eq(sv.flags_between, sv.flags_before);
	memcpy(k0c, cl.c2s, 32);
	memcpy(k0s, cl.s2c, 32);

	psk_exchange(cc, sc, 7, k7c, k7s);
	psk_exchange(cc, sc, 0, k0c2, k0s2);
	/* keys differ between lanes, and between connections of the same lane */
	ck_assert(memcmp(k0c, k7c, 32) != 0 && memcmp(k0s, k7s, 32) != 0);
	ck_assert(memcmp(k0c, k0c2, 32) != 0 && memcmp(k0s, k0s2, 32) != 0);

	/* an empty HELLO and REPLY are fine too */
	side_init(&cl, cc, -1, 0);
	side_init(&sv, sc, -1, 1);
	pair_fds(&cl, &sv);
	sv.msg_len = 0;
	run_pair(&cl, &sv);
	assert_ok_pair(&cl, &sv);
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

START_TEST(test_psk_identity)
{
	struct vms_tls_creds *cc = creds_psk(psk_a, "lane-node-a", 0);
	struct vms_tls_creds *sc = creds_psk(psk_a, "lane-node-a", 1);
	struct side cl, sv;

	side_init(&cl, cc, -1, 0);
	side_init(&sv, sc, -1, 1);
	pair_fds(&cl, &sv);
	client_hello(&cl, 65535, 2);
	run_pair(&cl, &sv);
	assert_ok_pair(&cl, &sv);
	ck_assert_str_eq(cl.info.peer, "psk:lane-node-a");
	ck_assert_str_eq(sv.info.peer, "psk:lane-node-a");
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

START_TEST(test_x509_ok)
{
	struct vms_tls_creds *cc = creds_x509(cp("client.pem"), cp("client.key"), cp("ca.pem"), 0);
	struct vms_tls_creds *sc = creds_x509(cp("server.pem"), cp("server.key"), cp("ca.pem"), 1);
	struct vms_tls_creds *sc2 =
		creds_x509(cp("chain-server.pem"), cp("chain-server.key"), cp("ca.pem"), 1);
	struct side cl, sv;

	side_init(&cl, cc, -1, 0);
	side_init(&sv, sc, -1, 1);
	pair_fds(&cl, &sv);
	client_hello(&cl, 2, 300);
	run_pair(&cl, &sv);
	assert_ok_pair(&cl, &sv);
	ck_assert_str_eq(cl.info.peer, "CN=vmstream-test-server,O=vmstream test");
	ck_assert_str_eq(sv.info.peer, "CN=vmstream-test-client,O=vmstream test");

	/* a server whose chain runs through an intermediate CA */
	side_init(&cl, cc, -1, 0);
	side_init(&sv, sc2, -1, 1);
	pair_fds(&cl, &sv);
	client_hello(&cl, 1, 10);
	run_pair(&cl, &sv);
	assert_ok_pair(&cl, &sv);
	ck_assert_str_eq(cl.info.peer, "CN=vmstream-test-chain-server,O=vmstream test");
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
	vms_tls_creds_free(sc2);
}
END_TEST

/* Many lanes at once on shared credentials (thread safety; TSan build). */
#define NLANES 8
START_TEST(test_parallel_lanes)
{
	struct vms_tls_creds *cc = creds_psk(psk_a, NULL, 0);
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);
	static struct side cl[NLANES], sv[NLANES];
	pthread_t t[2 * NLANES];

	for (int i = 0; i < NLANES; i++) {
		side_init(&cl[i], cc, -1, 0);
		side_init(&sv[i], sc, -1, 1);
		pair_fds(&cl[i], &sv[i]);
		client_hello(&cl[i], (uint16_t)i, 64);
		cl[i].raw_out = sv[i].raw_in = 256 << 10;
		cl[i].seed_out = sv[i].seed_in = 100 + (uint64_t)i;
	}
	for (int i = 0; i < NLANES; i++)
		if (pthread_create(&t[2 * i], NULL, server_main, &sv[i]) ||
		    pthread_create(&t[2 * i + 1], NULL, client_main, &cl[i]))
			die("pthread_create");
	for (int i = 0; i < 2 * NLANES; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < NLANES; i++) {
		assert_ok_pair(&cl[i], &sv[i]);
		for (int j = 0; j < i; j++)
			ck_assert(memcmp(cl[i].c2s, cl[j].c2s, 32) != 0);
		close(cl[i].fd);
		close(sv[i].fd);
	}
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

/* ---- the switch to raw bytes ------------------------------------------------------------- */

/* Right after the exchange the client streams 8 MiB and the server 256 KiB,
 * both with plain write()/read(): every byte arrives, none is eaten or
 * produced by OpenSSL. */
static void raw_switch(struct vms_tls_creds *cc, struct vms_tls_creds *sc)
{
	struct side cl, sv;

	side_init(&cl, cc, -1, 0);
	side_init(&sv, sc, -1, 1);
	pair_fds(&cl, &sv);
	client_hello(&cl, 5, 200);
	cl.raw_out = sv.raw_in = RAW_BIG;
	cl.seed_out = sv.seed_in = 0xc25;
	sv.raw_out = cl.raw_in = 256 << 10;
	sv.seed_out = cl.seed_in = 0x52c;
	run_pair(&cl, &sv);
	assert_ok_pair(&cl, &sv);
}

START_TEST(test_raw_switch_psk)
{
	struct vms_tls_creds *cc = creds_psk(psk_a, NULL, 0);
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);

	raw_switch(cc, sc);
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

/* The same over an AF_UNIX socketpair. */
START_TEST(test_raw_switch_socketpair)
{
	struct vms_tls_creds *cc = creds_psk(psk_a, NULL, 0);
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);
	struct side cl, sv;
	int sp[2];

	ck_assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
	side_init(&cl, cc, sp[0], 0);
	side_init(&sv, sc, sp[1], 1);
	client_hello(&cl, 1, 100);
	cl.raw_out = sv.raw_in = RAW_BIG;
	cl.seed_out = sv.seed_in = 0x5e;
	sv.raw_out = cl.raw_in = 256 << 10;
	sv.seed_out = cl.seed_in = 0xe5;
	run_pair(&cl, &sv);
	assert_ok_pair(&cl, &sv);
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

START_TEST(test_raw_switch_x509)
{
	struct vms_tls_creds *cc = creds_x509(cp("client.pem"), cp("client.key"), cp("ca.pem"), 0);
	struct vms_tls_creds *sc = creds_x509(cp("server.pem"), cp("server.key"), cp("ca.pem"), 1);

	raw_switch(cc, sc);
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

/* The client's raw bytes are in flight while the server is still writing its
 * REPLY: a second client thread starts streaming 8 MiB the moment the server
 * has the HELLO (before its SSL_write), while the client thread itself is
 * still inside SSL_read waiting for the REPLY. In odd rounds the server even
 * waits until raw bytes have reached its socket before it writes the REPLY
 * (deterministic); in even rounds the timing is left to the scheduler. */
START_TEST(test_raw_switch_in_flight)
{
	struct vms_tls_creds *cc = creds_psk(psk_a, NULL, 0);
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);
	int waiting = 0;

	for (int round = 0; round < 6; round++) {
		atomic_int go = 0;
		struct side cl, sv;

		side_init(&cl, cc, -1, 0);
		side_init(&sv, sc, -1, 1);
		pair_fds(&cl, &sv);
		client_hello(&cl, (uint16_t)round, 100);
		sv.msg_len = VMS_SESSION_MSG_MAX;
		cl.spy = 1;
		cl.go = sv.go = &go;
		cl.raw_out = sv.raw_in = RAW_BIG;
		cl.seed_out = sv.seed_in = 0xf117 + (uint64_t)round;
		sv.wait_raw = round & 1;
		run_pair(&cl, &sv);
		assert_ok_pair(&cl, &sv);
		if (sv.wait_raw)
			ck_assert_int_gt(sv.pending_after, 0);
		if (sv.pending_after > 0)
			waiting++;
	}
	if (getenv("VMS_TEST_VERBOSE"))
		fprintf(stderr, "in-flight: raw bytes waiting when the REPLY was written: %d of 6\n",
			waiting);
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

/* The most hostile timing: the raw bytes arrive glued to the TLS record in the
 * same send() — behind the HELLO at the server (the client is rogue and does
 * not even wait for the REPLY), behind the REPLY at the client. OpenSSL must
 * stop exactly at the record boundary. */
START_TEST(test_raw_glued_to_hello)
{
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);
	struct rogue r = { .auth = R_PSK, .psk = psk_a, .identity = "vmstream", .msg_len = 64,
			   .raw_len = 1 << 20, .seed = 0x91 };
	struct side sv;
	int c, s;

	tcp_pair(&c, &s);
	r.fd = c;
	side_init(&sv, sc, s, 1);
	sv.raw_in = r.raw_len;
	sv.seed_in = r.seed;
	run_vs_rogue(&sv, 1, &r);
	ck_assert_msg(sv.rc == 0, "server: %s", sv.err);
	assert_clean(&sv);
	ck_assert_uint_eq(sv.got_len, 64);
	ck_assert_int_eq(sv.lane, 3);
	ck_assert_int_eq(sv.raw_in_rc, 0);
	ck_assert(r.frame_rc);
	ck_assert_uint_eq(r.got_len, sv.msg_len);
	vms_tls_creds_free(sc);
}
END_TEST

START_TEST(test_raw_glued_to_reply)
{
	struct vms_tls_creds *cc = creds_psk(psk_a, NULL, 0);
	struct rogue r = { .is_server = 1, .auth = R_PSK, .psk = psk_a, .identity = "vmstream",
			   .msg_len = 33, .raw_len = 1 << 20, .seed = 0x19,
			   .raw_after_len = RAW_BIG, .seed_after = 0x77 };
	struct side cl;
	int c, s;

	tcp_pair(&c, &s);
	r.fd = s;
	side_init(&cl, cc, c, 0);
	client_hello(&cl, 9, 50);
	cl.raw_in = r.raw_len;
	cl.seed_in = r.seed;
	cl.raw_out = r.raw_after_len;
	cl.seed_out = r.seed_after;
	run_vs_rogue(&cl, 0, &r);
	ck_assert_msg(cl.rc == 0, "client: %s", cl.err);
	assert_clean(&cl);
	ck_assert_uint_eq(cl.got_len, 33);
	ck_assert_int_eq(cl.raw_in_rc, 0);
	ck_assert_int_eq(cl.raw_out_rc, 0);
	ck_assert_int_eq(r.raw_after_rc, 0);
	vms_tls_creds_free(cc);
}
END_TEST

/* ---- authentication failures ------------------------------------------------------------- */

static void assert_fail(const struct side *s, int code, const char *needle)
{
	if (getenv("VMS_TEST_VERBOSE"))
		fprintf(stderr, "  %-13s %s\n", vms_errname(s->rc) ? vms_errname(s->rc) : "?", s->err);
	ck_assert_msg(s->rc == code, "got %s (%s), want %s", vms_errname(s->rc), s->err,
		      vms_errname(code));
	if (needle)
		ck_assert_msg(strstr(s->err, needle), "message \"%s\" lacks \"%s\"", s->err, needle);
	ck_assert_msg(!strchr(s->err, '\n'), "message is not one line");
	assert_clean(s);
	ck_assert(memcmp(s->c2s, (uint8_t[32]){ 0 }, 32) == 0);
	ck_assert(memcmp(s->s2c, (uint8_t[32]){ 0 }, 32) == 0);
}

/* Both library sides; the server fails and closes first when close_first. */
static void run_fail_pair(struct vms_tls_creds *cc, struct vms_tls_creds *sc, struct side *cl,
			  struct side *sv, int close_on_fail)
{
	side_init(cl, cc, -1, 0);
	side_init(sv, sc, -1, 1);
	pair_fds(cl, sv);
	client_hello(cl, 1, 20);
	cl->close_on_fail = sv->close_on_fail = close_on_fail;
	run_pair(cl, sv);
}

/* Wrong PSK: the server checks the client's PSK binder in the ClientHello, so
 * it always notices first: it fails with "binder does not verify" and sends
 * an alert (OpenSSL 3.0: illegal_parameter), which the client reads as the
 * answer to its ClientHello. Both ends: VMS_ETLS, never VMS_ENET, whether or
 * not the server closes its fd at once: the server has consumed everything
 * the client sent (so its close is a FIN, not an RST), and the alert is
 * queued at the client before the FIN anyway. */
START_TEST(test_wrong_psk)
{
	struct vms_tls_creds *cc = creds_psk(psk_b, NULL, 0);
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);
	struct side cl, sv;

	for (int close_on_fail = 0; close_on_fail <= 1; close_on_fail++) {
		for (int i = 0; i < 10; i++) {
			run_fail_pair(cc, sc, &cl, &sv, close_on_fail);
			assert_fail(&sv, VMS_ETLS, "PSK mismatch");
			assert_fail(&cl, VMS_ETLS, "PSK mismatch or unknown identity");
		}
	}
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

START_TEST(test_unknown_identity)
{
	struct vms_tls_creds *cc = creds_psk(psk_a, "somebody", 0);
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);
	struct side cl, sv;

	for (int close_on_fail = 0; close_on_fail <= 1; close_on_fail++) {
		run_fail_pair(cc, sc, &cl, &sv, close_on_fail);
		assert_fail(&sv, VMS_ETLS, "unknown identity");
		assert_fail(&cl, VMS_ETLS, "PSK mismatch or unknown identity");
	}
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

/* The client verifies the server's chain first (in the server's flight) and
 * sends an unknown_ca/bad_certificate alert: client "not trusted", server
 * "rejected our server certificate". */
static void untrusted_server(const char *cert, const char *key, const char *client_needle)
{
	struct vms_tls_creds *cc = creds_x509(cp("client.pem"), cp("client.key"), cp("ca.pem"), 0);
	struct vms_tls_creds *sc = creds_x509(cp(cert), cp(key), cp("ca.pem"), 1);
	struct side cl, sv;

	for (int close_on_fail = 0; close_on_fail <= 1; close_on_fail++) {
		run_fail_pair(cc, sc, &cl, &sv, close_on_fail);
		assert_fail(&cl, VMS_ETLS, client_needle);
		assert_fail(&sv, VMS_ETLS, "rejected our server certificate");
	}
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}

START_TEST(test_untrusted_server)
{
	untrusted_server("other-server.pem", "other-server.key",
			 "server certificate not trusted (self-signed/unknown CA)");
	untrusted_server("selfsigned.pem", "selfsigned.key",
			 "server certificate not trusted (self-signed/unknown CA)");
	untrusted_server("expired-server.pem", "expired-server.key",
			 "server certificate expired");
	/* a client certificate is not a server certificate (extended key usage) */
	untrusted_server("client.pem", "client.key", "not valid for this purpose");
}
END_TEST

/* TLS 1.3: the client's handshake is complete once it sent its Finished, so
 * it learns of the server's verdict on its certificate only while reading the
 * REPLY — as the server's alert. Both ends VMS_ETLS. */
START_TEST(test_client_other_ca)
{
	struct vms_tls_creds *cc =
		creds_x509(cp("other-client.pem"), cp("other-client.key"), cp("ca.pem"), 0);
	struct vms_tls_creds *sc = creds_x509(cp("server.pem"), cp("server.key"), cp("ca.pem"), 1);
	struct side cl, sv;

	for (int close_on_fail = 0; close_on_fail <= 1; close_on_fail++) {
		for (int i = 0; i < 5; i++) {
			run_fail_pair(cc, sc, &cl, &sv, close_on_fail);
			assert_fail(&sv, VMS_ETLS,
				    "client certificate not trusted (self-signed/unknown CA)");
			assert_fail(&cl, VMS_ETLS, "rejected our client certificate");
		}
	}
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

START_TEST(test_client_without_cert)
{
	struct vms_tls_creds *sc = creds_x509(cp("server.pem"), cp("server.key"), cp("ca.pem"), 1);
	struct rogue r = { .auth = R_X509_NOCERT, .ca = cp("ca.pem"), .msg_len = 10 };
	struct side sv;
	int c, s;

	tcp_pair(&c, &s);
	r.fd = c;
	side_init(&sv, sc, s, 1);
	run_vs_rogue(&sv, 1, &r);
	assert_fail(&sv, VMS_ETLS, "client sent no certificate");
	ck_assert(r.handshake_ok); /* TLS 1.3: the client only hears of it later */
	ck_assert(!r.frame_rc);
	vms_tls_creds_free(sc);
}
END_TEST

/* PSK on one side, certificates on the other. */
START_TEST(test_mode_mismatch)
{
	struct vms_tls_creds *cpsk = creds_psk(psk_a, NULL, 0);
	struct vms_tls_creds *spsk = creds_psk(psk_a, NULL, 1);
	struct vms_tls_creds *cx = creds_x509(cp("client.pem"), cp("client.key"), cp("ca.pem"), 0);
	struct vms_tls_creds *sx = creds_x509(cp("server.pem"), cp("server.key"), cp("ca.pem"), 1);
	struct side cl, sv;

	run_fail_pair(cpsk, sx, &cl, &sv, 1);
	assert_fail(&cl, VMS_ETLS, "instead of accepting our PSK");
	assert_fail(&sv, VMS_ETLS, "TLS handshake failed");

	run_fail_pair(cx, spsk, &cl, &sv, 1);
	assert_fail(&sv, VMS_ETLS, "offered no PSK");
	assert_fail(&cl, VMS_ETLS, "is it configured for a PSK?");
	vms_tls_creds_free(cpsk);
	vms_tls_creds_free(spsk);
	vms_tls_creds_free(cx);
	vms_tls_creds_free(sx);
}
END_TEST

/* A TLS 1.2-only peer is refused, in both roles (no downgrade). */
START_TEST(test_tls12_peer)
{
	struct vms_tls_creds *cc = creds_x509(cp("client.pem"), cp("client.key"), cp("ca.pem"), 0);
	struct vms_tls_creds *sc = creds_x509(cp("server.pem"), cp("server.key"), cp("ca.pem"), 1);
	struct rogue r = { .is_server = 1, .auth = R_X509, .tls12 = 1, .cert = cp("server.pem"),
			   .key = cp("server.key"), .ca = cp("ca.pem"), .msg_len = 4 };
	struct side s1, s2;
	int c, s;

	tcp_pair(&c, &s);
	r.fd = s;
	side_init(&s1, cc, c, 0);
	client_hello(&s1, 0, 10);
	run_vs_rogue(&s1, 0, &r);
	assert_fail(&s1, VMS_ETLS, "does not speak TLS 1.3");

	tcp_pair(&c, &s);
	r = (struct rogue){ .fd = c, .auth = R_X509, .tls12 = 1, .cert = cp("client.pem"),
			    .key = cp("client.key"), .ca = cp("ca.pem"), .msg_len = 4 };
	side_init(&s2, sc, s, 1);
	run_vs_rogue(&s2, 1, &r);
	assert_fail(&s2, VMS_ETLS, "does not speak TLS 1.3");
	ck_assert(!r.handshake_ok);
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

/* ---- peers that do not speak TLS ------------------------------------------------------------ */

static const char http_req[] = "GET / HTTP/1.0\r\n\r\n";
static const uint8_t vms_magic[8] = { 0x8a, 'V', 'M', 'S', '\r', '\n', 0x1a, '\n' };

/* The client side wrote `bytes` and closed; the library server must say "not
 * TLS". */
static void server_vs_bytes(const void *bytes, size_t len, int close_after)
{
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);
	struct vms_tls_conn *conn = NULL;
	uint8_t buf[64];
	size_t n;
	int c, s, rc;

	tcp_pair(&c, &s);
	ck_assert(write(c, bytes, len) == (ssize_t)len);
	if (close_after)
		close(c);
	rc = vms_tls_server_accept(sc, s, buf, sizeof(buf), &n, OK_TIMEOUT, &conn);
	ck_assert_msg(rc == VMS_ETLS, "got %s: %s", vms_errname(rc), vms_last_error());
	ck_assert_msg(strstr(vms_last_error(), "peer is not speaking TLS"), "%s", vms_last_error());
	ck_assert_ptr_null(conn);
	ck_assert(ERR_peek_error() == 0);
	if (!close_after)
		close(c);
	close(s);
	vms_tls_creds_free(sc);
}

struct stream_job {
	int fd;
	int rc;
};

/* A complete small vmstream stream, plaintext, straight onto the socket. */
static void *write_stream(void *arg)
{
	struct stream_job *j = arg;
	struct vms_writer_opts o = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_writer *w = NULL;
	uint8_t data[1000];
	uint32_t dev;

	memset(data, 0x5a, sizeof(data));
	d.name = "dev0";
	j->rc = vms_writer_open_fd(&w, j->fd, &o);
	if (!j->rc)
		j->rc = vms_writer_begin_device(w, &d, &dev);
	if (!j->rc)
		j->rc = vms_writer_write(w, dev, data, sizeof(data));
	if (!j->rc)
		j->rc = vms_writer_end_device(w, dev);
	if (!j->rc)
		j->rc = vms_writer_finish(w);
	vms_writer_free(w);
	shutdown(j->fd, SHUT_WR);
	return NULL;
}

START_TEST(test_not_tls_at_server)
{
	struct vms_tls_creds *sc = creds_x509(cp("server.pem"), cp("server.key"), cp("ca.pem"), 1);
	struct vms_tls_conn *conn = NULL;
	struct stream_job j;
	pthread_t t;
	uint8_t buf[64];
	size_t n;
	int c, s, rc;

	server_vs_bytes(http_req, strlen(http_req), 1);
	server_vs_bytes(http_req, strlen(http_req), 0);
	server_vs_bytes(vms_magic, sizeof(vms_magic), 1);
	server_vs_bytes(vms_magic, sizeof(vms_magic), 0);
	server_vs_bytes("SSH-2.0-OpenSSH_9.2\r\n", 21, 1);

	/* a vmstream sender that was not told to use TLS */
	tcp_pair(&c, &s);
	j.fd = c;
	if (pthread_create(&t, NULL, write_stream, &j))
		die("pthread_create");
	rc = vms_tls_server_accept(sc, s, buf, sizeof(buf), &n, OK_TIMEOUT, &conn);
	ck_assert_msg(rc == VMS_ETLS, "got %s: %s", vms_errname(rc), vms_last_error());
	ck_assert_msg(strstr(vms_last_error(), "peer is not speaking TLS"), "%s", vms_last_error());
	close(s); /* the writer may be blocked on a full socket */
	pthread_join(t, NULL);
	close(c);
	vms_tls_creds_free(sc);
}
END_TEST

/* The server side answers the ClientHello with something else. The fake
 * server keeps its socket open until the client is done, so no RST races. */
static void client_vs_bytes(const void *bytes, size_t len)
{
	struct vms_tls_creds *cc = creds_psk(psk_a, NULL, 0);
	uint8_t reply[64], c2s[32], s2c[32];
	size_t n;
	int c, s, rc;

	tcp_pair(&c, &s);
	ck_assert(write(s, bytes, len) == (ssize_t)len);
	rc = vms_tls_client(cc, c, "hi", 2, reply, sizeof(reply), &n, 0, c2s, s2c, OK_TIMEOUT, NULL);
	ck_assert_msg(rc == VMS_ETLS, "got %s: %s", vms_errname(rc), vms_last_error());
	ck_assert_msg(strstr(vms_last_error(), "peer is not speaking TLS"), "%s", vms_last_error());
	ck_assert(ERR_peek_error() == 0);
	close(c);
	close(s);
	vms_tls_creds_free(cc);
}

START_TEST(test_not_tls_at_client)
{
	static const char http_resp[] = "HTTP/1.0 400 Bad Request\r\n\r\n";

	client_vs_bytes(http_resp, strlen(http_resp));
	client_vs_bytes(vms_magic, sizeof(vms_magic));
	client_vs_bytes(http_req, strlen(http_req));
}
END_TEST

/* ---- timeouts and dead peers ------------------------------------------------------------------ */

/* The deadline is what is under test: it may not expire early (the library
 * and this test both read CLOCK_MONOTONIC) and must expire, not hang. How
 * late a loaded machine lets it fire is not the library's doing, hence the
 * generous upper bound. */
#define LATE_MS 10000

static void assert_elapsed(int64_t ms, int timeout)
{
	ck_assert_msg(ms >= timeout - 20 && ms < timeout + LATE_MS,
		      "elapsed %lld ms for a %d ms deadline", (long long)ms, timeout);
}

START_TEST(test_silent_peer)
{
	struct vms_tls_creds *cc = creds_psk(psk_a, NULL, 0);
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);
	struct vms_tls_conn *conn = NULL;
	uint8_t buf[64], c2s[32], s2c[32];
	size_t n;
	int64_t t0;
	int c, s, rc;

	/* a client that connects and says nothing */
	tcp_pair(&c, &s);
	t0 = now_ms();
	rc = vms_tls_server_accept(sc, s, buf, sizeof(buf), &n, SHORT_TIMEOUT, &conn);
	ck_assert_msg(rc == VMS_ETIMEOUT, "got %s: %s", vms_errname(rc), vms_last_error());
	assert_elapsed(now_ms() - t0, SHORT_TIMEOUT);
	ck_assert_msg(strstr(vms_last_error(), "the TLS handshake"), "%s", vms_last_error());
	ck_assert(!(fcntl(s, F_GETFL) & O_NONBLOCK)); /* restored */
	/* a server that accepts the TCP connection and says nothing */
	t0 = now_ms();
	rc = vms_tls_client(cc, c, "x", 1, buf, sizeof(buf), &n, 0, c2s, s2c, SHORT_TIMEOUT, NULL);
	ck_assert_msg(rc == VMS_ETIMEOUT, "got %s: %s", vms_errname(rc), vms_last_error());
	assert_elapsed(now_ms() - t0, SHORT_TIMEOUT);
	ck_assert(!(fcntl(c, F_GETFL) & O_NONBLOCK));
	ck_assert(ERR_peek_error() == 0);
	close(c);
	close(s);
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

/* Stalls after the handshake: the HELLO never comes / the REPLY never comes. */
START_TEST(test_stalled_peer)
{
	struct vms_tls_creds *cc = creds_psk(psk_a, NULL, 0);
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);
	struct rogue r = { .auth = R_PSK, .psk = psk_a, .identity = "vmstream", .stall = 1 };
	struct side sv, cl;
	int c, s;

	tcp_pair(&c, &s);
	r.fd = c;
	side_init(&sv, sc, s, 1);
	sv.timeout_ms = SHORT_TIMEOUT;
	run_vs_rogue(&sv, 1, &r);
	ck_assert(r.handshake_ok);
	assert_fail(&sv, VMS_ETIMEOUT, "reading the HELLO");
	assert_elapsed(sv.elapsed_ms, SHORT_TIMEOUT);

	/* the server takes the HELLO and never replies */
	side_init(&cl, cc, -1, 0);
	side_init(&sv, sc, -1, 1);
	pair_fds(&cl, &sv);
	client_hello(&cl, 0, 8);
	cl.timeout_ms = 600;
	cl.close_on_fail = 1; /* the server's cue to give up */
	sv.no_reply = ABANDON_AFTER_PEER;
	run_pair(&cl, &sv);
	assert_fail(&cl, VMS_ETIMEOUT, "reading the REPLY");
	assert_elapsed(cl.elapsed_ms, 600);
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

START_TEST(test_peer_closes)
{
	struct vms_tls_creds *cc = creds_psk(psk_a, NULL, 0);
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);
	struct vms_tls_conn *conn = NULL;
	struct linger lg = { 1, 0 };
	uint8_t buf[64], c2s[32], s2c[32];
	struct side cl, sv;
	size_t n;
	int c, s, rc;

	/* client connects and closes before saying anything */
	tcp_pair(&c, &s);
	close(c);
	rc = vms_tls_server_accept(sc, s, buf, sizeof(buf), &n, OK_TIMEOUT, &conn);
	ck_assert_msg(rc == VMS_ENET, "got %s: %s", vms_errname(rc), vms_last_error());
	ck_assert_msg(strstr(vms_last_error(), "closed the connection"), "%s", vms_last_error());
	close(s);
	/* client resets the connection */
	tcp_pair(&c, &s);
	setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(c);
	rc = vms_tls_server_accept(sc, s, buf, sizeof(buf), &n, OK_TIMEOUT, &conn);
	ck_assert_msg(rc == VMS_ENET, "got %s: %s", vms_errname(rc), vms_last_error());
	close(s);
	/* server closes at once: the client's ClientHello meets EOF (or EPIPE) */
	tcp_pair(&c, &s);
	close(s);
	rc = vms_tls_client(cc, c, "x", 1, buf, sizeof(buf), &n, 0, c2s, s2c, OK_TIMEOUT, NULL);
	ck_assert_msg(rc == VMS_ENET, "got %s: %s", vms_errname(rc), vms_last_error());
	ck_assert(ERR_peek_error() == 0);
	close(c);
	/* server resets */
	tcp_pair(&c, &s);
	setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(s);
	rc = vms_tls_client(cc, c, "x", 1, buf, sizeof(buf), &n, 0, c2s, s2c, OK_TIMEOUT, NULL);
	ck_assert_msg(rc == VMS_ENET, "got %s: %s", vms_errname(rc), vms_last_error());
	close(c);
	/* the server abandons the conn after reading the HELLO and closes */
	side_init(&cl, cc, -1, 0);
	side_init(&sv, sc, -1, 1);
	pair_fds(&cl, &sv);
	client_hello(&cl, 0, 8);
	sv.no_reply = ABANDON;
	sv.close_on_fail = 1;
	run_pair(&cl, &sv);
	assert_fail(&cl, VMS_ENET, "reading the REPLY");
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

/* ---- framing ----------------------------------------------------------------------------------- */

static void server_vs_rogue_frame(uint32_t claim, size_t msg_len, size_t cap, int code,
				  const char *needle)
{
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);
	struct rogue r = { .auth = R_PSK, .psk = psk_a, .identity = "vmstream", .claim = claim,
			   .msg_len = msg_len };
	struct side sv;
	int c, s;

	tcp_pair(&c, &s);
	r.fd = c;
	side_init(&sv, sc, s, 1);
	sv.got_cap = cap;
	run_vs_rogue(&sv, 1, &r);
	assert_fail(&sv, code, needle);
	vms_tls_creds_free(sc);
}

START_TEST(test_oversize_hello)
{
	/* 4097 bytes announced and sent */
	server_vs_rogue_frame(VMS_SESSION_MSG_MAX + 1, VMS_SESSION_MSG_MAX + 1, VMS_SESSION_MSG_MAX, VMS_EPROTO,
			      "the limit is 4096");
	/* a huge length field, nothing behind it */
	server_vs_rogue_frame(0xffffffffu, 0, VMS_SESSION_MSG_MAX, VMS_EPROTO, "the limit is 4096");
	/* within the limit but beyond the caller's buffer */
	server_vs_rogue_frame(100, 100, 50, VMS_EPROTO, "the buffer holds 50");
	/* more bytes in the record than the frame says */
	server_vs_rogue_frame(5, 10, VMS_SESSION_MSG_MAX, VMS_EPROTO, "unexpected bytes after the HELLO");
}
END_TEST

START_TEST(test_oversize_reply)
{
	struct vms_tls_creds *cc = creds_psk(psk_a, NULL, 0);
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);
	struct rogue r = { .is_server = 1, .auth = R_PSK, .psk = psk_a, .identity = "vmstream",
			   .msg_len = VMS_SESSION_MSG_MAX + 1 };
	struct vms_tls_conn *conn = NULL;
	uint8_t buf[VMS_SESSION_MSG_MAX + 1] = { 0 }, c2s[32], s2c[32];
	struct side cl;
	size_t n;
	int c, s, rc;

	tcp_pair(&c, &s);
	r.fd = s;
	side_init(&cl, cc, c, 0);
	client_hello(&cl, 0, 10);
	run_vs_rogue(&cl, 0, &r);
	assert_fail(&cl, VMS_EPROTO, "the limit is 4096");

	/* the library server refuses to send one (caller error) and frees conn */
	tcp_pair(&c, &s);
	{
		struct side cl2;

		side_init(&cl2, cc, c, 0);
		client_hello(&cl2, 0, 10);
		/* ENET from the close below, however late a loaded machine runs
		 * it: the client's deadline only bounds a hang */
		cl2.timeout_ms = OK_TIMEOUT;
		pthread_t t;

		if (pthread_create(&t, NULL, client_main, &cl2))
			die("pthread_create");
		rc = vms_tls_server_accept(sc, s, buf, sizeof(buf), &n, OK_TIMEOUT, &conn);
		ck_assert_msg(rc == 0, "%s", vms_last_error());
		rc = vms_tls_server_reply(conn, buf, VMS_SESSION_MSG_MAX + 1, 0, c2s, s2c, OK_TIMEOUT);
		ck_assert_int_eq(rc, VMS_EINVAL);
		close(s);
		pthread_join(t, NULL);
		ck_assert_int_eq(cl2.rc, VMS_ENET);
		close(c);
	}
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

START_TEST(test_key_update_rejected)
{
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);
	struct rogue r = { .auth = R_PSK, .psk = psk_a, .identity = "vmstream", .key_update = 1,
			   .msg_len = 16 };
	struct side sv;
	int c, s;

	tcp_pair(&c, &s);
	r.fd = c;
	side_init(&sv, sc, s, 1);
	run_vs_rogue(&sv, 1, &r);
	assert_fail(&sv, VMS_EPROTO, "KeyUpdate");
	vms_tls_creds_free(sc);
}
END_TEST

/* The fd's mode is the caller's: a non-blocking fd stays non-blocking. */
START_TEST(test_nonblocking_fd_kept)
{
	struct vms_tls_creds *cc = creds_psk(psk_a, NULL, 0);
	struct vms_tls_creds *sc = creds_psk(psk_a, NULL, 1);
	struct side cl, sv;

	side_init(&cl, cc, -1, 0);
	side_init(&sv, sc, -1, 1);
	pair_fds(&cl, &sv);
	fcntl(sv.fd, F_SETFL, fcntl(sv.fd, F_GETFL) | O_NONBLOCK);
	client_hello(&cl, 4, 30);
	cl.raw_out = sv.raw_in = 1 << 20; /* raw_recv_check copes with EAGAIN */
	cl.seed_out = sv.seed_in = 4;
	run_pair(&cl, &sv);
	assert_ok_pair(&cl, &sv);
	ck_assert(sv.flags_before & O_NONBLOCK);
	ck_assert(!(cl.flags_before & O_NONBLOCK));
	vms_tls_creds_free(cc);
	vms_tls_creds_free(sc);
}
END_TEST

/* ---- driver -------------------------------------------------------------------------------------- */

static int tls13_available(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	int ok = ctx && SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1 &&
		 SSL_CTX_set_ciphersuites(ctx, "TLS_AES_256_GCM_SHA384") == 1;

	SSL_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

static int make_certs(void)
{
	char script[PATH_MAX], cmd[3 * PATH_MAX], here[PATH_MAX];
	const char *src = getenv("VMS_SOURCE_DIR");
	int rc;

	if (src && *src) {
		snprintf(script, sizeof(script), "%s/tests/tls_certs.sh", src);
	} else {
		snprintf(here, sizeof(here), "%s", __FILE__);
		snprintf(script, sizeof(script), "%s/tls_certs.sh", dirname(here));
	}
	snprintf(certdir, sizeof(certdir), "%s/vms-tls-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(certdir))
		die("mkdtemp");
	snprintf(cmd, sizeof(cmd), "bash '%s' '%s' >/dev/null", script, certdir);
	rc = system(cmd);
	if (rc == -1 || !WIFEXITED(rc))
		return -1;
	return WEXITSTATUS(rc);
}

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("tls");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_creds_errors);
	tcase_add_test(tc, test_bad_args);
	tcase_add_test(tc, test_psk_ok);
	tcase_add_test(tc, test_psk_identity);
	tcase_add_test(tc, test_x509_ok);
	tcase_add_test(tc, test_parallel_lanes);
	tcase_add_test(tc, test_raw_switch_psk);
	tcase_add_test(tc, test_raw_switch_x509);
	tcase_add_test(tc, test_raw_switch_socketpair);
	tcase_add_test(tc, test_raw_switch_in_flight);
	tcase_add_test(tc, test_raw_glued_to_hello);
	tcase_add_test(tc, test_raw_glued_to_reply);
	tcase_add_test(tc, test_wrong_psk);
	tcase_add_test(tc, test_unknown_identity);
	tcase_add_test(tc, test_untrusted_server);
	tcase_add_test(tc, test_client_other_ca);
	tcase_add_test(tc, test_client_without_cert);
	tcase_add_test(tc, test_mode_mismatch);
	tcase_add_test(tc, test_tls12_peer);
	tcase_add_test(tc, test_not_tls_at_server);
	tcase_add_test(tc, test_not_tls_at_client);
	tcase_add_test(tc, test_silent_peer);
	tcase_add_test(tc, test_stalled_peer);
	tcase_add_test(tc, test_peer_closes);
	tcase_add_test(tc, test_oversize_hello);
	tcase_add_test(tc, test_oversize_reply);
	tcase_add_test(tc, test_key_update_rejected);
	tcase_add_test(tc, test_nonblocking_fd_kept);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	char cmd[PATH_MAX + 32];
	int failed, rc;

	signal(SIGPIPE, SIG_IGN);
	if (!tls13_available()) {
		fprintf(stderr, "OpenSSL without TLS 1.3: skipped\n");
		return 77;
	}
	rc = make_certs();
	if (rc != 0) {
		/* Not a skip: without certificates half of the suite would not run. */
		fprintf(stderr, "tls_certs.sh failed (%d%s)\n", rc,
			rc == 77 ? ": no openssl command-line tool" : "");
		return 1;
	}
	sr = srunner_create(tls_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", certdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", certdir);
	return failed ? 1 : 0;
}
