/* SPDX-License-Identifier: MIT */
/*
 * TLS 1.3 per lane: authenticate, exchange HELLO/REPLY, export the lane keys,
 * then hand the socket back as a raw byte stream (see session/tls.h).
 *
 * Choices, and why:
 *  - One cipher suite, TLS_AES_256_GCM_SHA384, in both modes. External PSKs
 *    go through the TLS 1.3 session callbacks (SSL_CTX_set_psk_use_session_
 *    callback / _find_session_callback), where the PSK's hash is the one of
 *    the cipher we put in the SSL_SESSION, so SHA-384 works; only the old
 *    TLS 1.2-style PSK callbacks are tied to SHA-256.
 *  - PSK key exchange is psk_dhe_ke only: OpenSSL offers and accepts psk_ke
 *    only with SSL_OP_ALLOW_NO_DHE_KEX, which we clear; after the handshake
 *    we also insist that an (EC)DHE group was negotiated (forward secrecy).
 *  - Our own BIO over the fd: send(MSG_NOSIGNAL) so a dead peer never raises
 *    SIGPIPE in the host process; it never closes the fd; it keeps the errno
 *    of a failed syscall for the message; and kTLS can never be switched on
 *    (the kernel would then own the record layer and eat the raw stream).
 *  - Deadlines with a non-blocking fd and poll() rather than SO_RCVTIMEO /
 *    SO_SNDTIMEO: those bound each syscall, not the step, so a peer dripping
 *    one byte per period could stall us forever; they would also change
 *    socket options the io engines rely on. The fd's file status flags are
 *    restored before returning.
 *  - No read-ahead: OpenSSL reads a 5-byte record header, then exactly the
 *    record. We read exactly one frame and stop, so bytes after the HELLO /
 *    REPLY record stay in the socket. No tickets, no early data, no
 *    close_notify (SSL_shutdown is never called), so after the REPLY no TLS
 *    byte is written either.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include "base/error.h"
#include "format/cursor.h"
#include "session/tls.h"

#define TLS_SUITE "TLS_AES_256_GCM_SHA384"
#define TLS_GROUPS "X25519:P-256:P-384"
#define TLS_GROUPS_FIPS "P-256:P-384" /* when the provider has no X25519 */
static const unsigned char tls_suite_id[2] = { 0x13, 0x02 }; /* TLS_AES_256_GCM_SHA384 */

struct vms_tls_creds {
	SSL_CTX *ctx;
	BIO_METHOD *bio_meth;
	int is_server;
	int psk_mode;
	uint8_t psk[VMS_TLS_PSK_LEN];
	char identity[VMS_PSK_IDENTITY_MAX + 1];
	size_t identity_len;
};

struct vms_tls_conn {
	struct vms_tls_creds *creds;
	SSL *ssl;
	int fd;
	int saved_flags;     /* fd's status flags while we hold it non-blocking, else -1 */
	int timeout_ms;
	int64_t deadline_ms; /* CLOCK_MONOTONIC */
	int sys_errno;       /* errno of the last failed send/recv */
	int eof;             /* recv returned 0 */
	int psk_offered;     /* server: the client offered a PSK identity */
	int psk_unknown;     /* server: ... and it is not ours */
	int key_update;      /* the peer sent a KeyUpdate */
	char peer[256];
};

static const char step_handshake[] = "during the TLS handshake";
static const char step_send_hello[] = "while sending the HELLO";
static const char step_read_hello[] = "while reading the HELLO";
static const char step_send_reply[] = "while sending the REPLY";
static const char step_read_reply[] = "while reading the REPLY";

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copy src into dst[0..cap) as one printable line (no control characters). */
static void copy_printable(char *dst, size_t cap, const char *src, size_t len)
{
	size_t i, n = 0;

	if (!cap)
		return;
	for (i = 0; i < len && n + 1 < cap; i++) {
		unsigned char ch = (unsigned char)src[i];

		dst[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	dst[n] = '\0';
}

/* Empty this thread's OpenSSL error queue, so nothing leaks into a later call;
 * return the first (root cause) entry and its text. */
static unsigned long drain_errors(char *buf, size_t cap)
{
	unsigned long first = 0, e;
	const char *data;
	int flags;

	buf[0] = '\0';
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		const char *reason;
		char tmp[256];

		if (first)
			continue;
		first = e;
		reason = ERR_reason_error_string(e);
		if (!reason) {
			snprintf(tmp, sizeof(tmp), "error %08lx", e);
			reason = tmp;
		}
		if ((flags & ERR_TXT_STRING) && data && *data) {
			char line[512];

			snprintf(line, sizeof(line), "%s: %s", reason, data);
			copy_printable(buf, cap, line, strlen(line));
		} else {
			copy_printable(buf, cap, reason, strlen(reason));
		}
	}
	if (!first)
		snprintf(buf, cap, "no OpenSSL error");
	return first;
}

/* ---- the BIO: plain socket I/O that never closes the fd, never SIGPIPEs ---- */

static int bio_write(BIO *b, const char *buf, int len)
{
	struct vms_tls_conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	n = send(c->fd, buf, (size_t)len, MSG_NOSIGNAL);
	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		BIO_set_retry_write(b);
	else
		c->sys_errno = errno;
	return -1;
}

static int bio_read(BIO *b, char *buf, int len)
{
	struct vms_tls_conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	n = recv(c->fd, buf, (size_t)len, 0);
	if (n > 0)
		return (int)n;
	if (n == 0) {
		c->eof = 1;
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		BIO_set_retry_read(b);
	else
		c->sys_errno = errno;
	return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct vms_tls_conn *c = BIO_get_data(b);

	(void)num;
	(void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1; /* nothing is buffered here */
	case BIO_CTRL_EOF:
		return c ? c->eof : 0;
	default:
		return 0; /* includes the kTLS queries: not supported */
	}
}

/* ---- PSK callbacks ---------------------------------------------------------- */

static SSL_SESSION *psk_session(SSL *ssl, const struct vms_tls_creds *cr)
{
	const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, tls_suite_id);
	SSL_SESSION *s;

	if (!cipher)
		return NULL;
	s = SSL_SESSION_new();
	if (!s)
		return NULL;
	if (!SSL_SESSION_set1_master_key(s, cr->psk, sizeof(cr->psk)) ||
	    !SSL_SESSION_set_cipher(s, cipher) ||
	    !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
		SSL_SESSION_free(s); /* cleanses the key copy */
		return NULL;
	}
	return s;
}

/* Client. OpenSSL owns (and frees) the session we return. */
static int psk_use_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
		      SSL_SESSION **sess)
{
	struct vms_tls_conn *c = SSL_get_app_data(ssl);
	const struct vms_tls_creds *cr = c->creds;

	*sess = NULL;
	/* Called again after a HelloRetryRequest with the suite's hash: ours is
	 * SHA-384 or there is no PSK (and the handshake fails). */
	if (md && EVP_MD_get_type(md) != NID_sha384)
		return 1;
	*sess = psk_session(ssl, cr);
	if (!*sess)
		return 0;
	*id = (const unsigned char *)cr->identity;
	*idlen = cr->identity_len;
	return 1;
}

/* Server. An unknown identity gets no session: the handshake then fails for
 * want of a certificate, and we say why. */
static int psk_find_cb(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
	struct vms_tls_conn *c = SSL_get_app_data(ssl);
	const struct vms_tls_creds *cr = c->creds;

	*sess = NULL;
	c->psk_offered = 1;
	if (idlen != cr->identity_len || CRYPTO_memcmp(id, cr->identity, idlen) != 0) {
		c->psk_unknown = 1;
		return 1;
	}
	c->psk_unknown = 0;
	*sess = psk_session(ssl, cr);
	return *sess ? 1 : 0;
}

static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
		   SSL *ssl, void *arg)
{
	struct vms_tls_conn *c = arg;
	const unsigned char *p = buf;

	(void)version;
	(void)ssl;
	if (!write_p && content_type == SSL3_RT_HANDSHAKE && len >= 1 &&
	    p[0] == SSL3_MT_KEY_UPDATE)
		c->key_update = 1;
}

static int no_passwd_cb(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0; /* never prompt on a terminal from inside a library */
}

/* ---- credentials -------------------------------------------------------------- */

static int check_file(const char *path, const char *what)
{
	int fd;

	if (!path || !*path)
		return vms_fail(VMS_EINVAL, "TLS: no %s file given (X.509 mode needs cert, key and CA)",
				what);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vms_fail(VMS_EINVAL, "TLS %s file %s: %s", what, path, vms_sys_err(errno));
	close(fd);
	return 0;
}

static int load_x509(struct vms_tls_creds *cr, const struct vms_tls_conf *conf)
{
	char osl[256];
	int err;

	if ((err = check_file(conf->cert_file, "certificate")) ||
	    (err = check_file(conf->key_file, "key")) ||
	    (err = check_file(conf->ca_file, "CA")))
		return err;
	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(cr->ctx, conf->cert_file) != 1) {
		drain_errors(osl, sizeof(osl));
		return vms_fail(VMS_EINVAL, "TLS certificate file %s: not a usable PEM certificate (%s)",
				conf->cert_file, osl);
	}
	if (SSL_CTX_use_PrivateKey_file(cr->ctx, conf->key_file, SSL_FILETYPE_PEM) != 1) {
		unsigned long e = drain_errors(osl, sizeof(osl));

		if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
			return vms_fail(VMS_EINVAL, "TLS key file %s does not match certificate %s",
					conf->key_file, conf->cert_file);
		return vms_fail(VMS_EINVAL,
				"TLS key file %s: not a usable PEM private key, or it needs a "
				"passphrase (%s)",
				conf->key_file, osl);
	}
	if (SSL_CTX_check_private_key(cr->ctx) != 1) {
		drain_errors(osl, sizeof(osl));
		return vms_fail(VMS_EINVAL, "TLS key file %s does not match certificate %s (%s)",
				conf->key_file, conf->cert_file, osl);
	}
	if (SSL_CTX_load_verify_file(cr->ctx, conf->ca_file) != 1) {
		drain_errors(osl, sizeof(osl));
		return vms_fail(VMS_EINVAL, "TLS CA file %s: no usable PEM CA certificate (%s)",
				conf->ca_file, osl);
	}
	if (cr->is_server)
		SSL_CTX_set_verify(cr->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	else
		SSL_CTX_set_verify(cr->ctx, SSL_VERIFY_PEER, NULL);
	return 0;
}

static int set_psk(struct vms_tls_creds *cr, const struct vms_tls_conf *conf)
{
	const char *id = conf->psk_identity ? conf->psk_identity : VMS_TLS_IDENTITY_DEFAULT;
	size_t i, n = strnlen(id, VMS_PSK_IDENTITY_MAX + 1);

	if (conf->psk_len != VMS_TLS_PSK_LEN)
		return vms_fail(VMS_EINVAL, "TLS PSK must be %d bytes, got %zu", VMS_TLS_PSK_LEN,
				conf->psk_len);
	if (conf->cert_file || conf->key_file || conf->ca_file)
		return vms_fail(VMS_EINVAL, "TLS: give either a PSK or certificate files, not both");
	if (n == 0 || n > VMS_PSK_IDENTITY_MAX)
		return vms_fail(VMS_EINVAL, "TLS PSK identity must be 1..%d bytes",
				VMS_PSK_IDENTITY_MAX);
	for (i = 0; i < n; i++)
		if ((unsigned char)id[i] < 0x20 || (unsigned char)id[i] >= 0x7f)
			return vms_fail(VMS_EINVAL, "TLS PSK identity must be printable ASCII");
	memcpy(cr->psk, conf->psk, VMS_TLS_PSK_LEN);
	memcpy(cr->identity, id, n);
	cr->identity[n] = '\0';
	cr->identity_len = n;
	cr->psk_mode = 1;
	if (cr->is_server) {
		SSL_CTX_set_psk_find_session_callback(cr->ctx, psk_find_cb);
		SSL_CTX_set_verify(cr->ctx, SSL_VERIFY_NONE, NULL);
	} else {
		SSL_CTX_set_psk_use_session_callback(cr->ctx, psk_use_cb);
		/* Nothing is trusted: a server that answers with a certificate
		 * instead of accepting our PSK fails verification. */
		SSL_CTX_set_verify(cr->ctx, SSL_VERIFY_PEER, NULL);
	}
	return 0;
}

static int ctx_setup(struct vms_tls_creds *cr)
{
	SSL_CTX *ctx = cr->ctx;
	char osl[256];

	if (SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1) {
		ERR_clear_error();
		if (SSL_CTX_set1_groups_list(ctx, TLS_GROUPS_FIPS) != 1) {
			drain_errors(osl, sizeof(osl));
			return vms_fail(VMS_EUNSUPPORTED, "TLS: no usable (EC)DHE group (%s)", osl);
		}
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, TLS_SUITE) != 1) {
		drain_errors(osl, sizeof(osl));
		return vms_fail(VMS_EUNSUPPORTED, "TLS: OpenSSL cannot do TLS 1.3 with %s (%s)",
				TLS_SUITE, osl);
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION |
				 SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_NO_DHE_KEX | SSL_OP_ENABLE_KTLS);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_read_ahead(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_max_early_data(ctx, 0);
	SSL_CTX_set_recv_max_early_data(ctx, 0);
	SSL_CTX_set_default_passwd_cb(ctx, no_passwd_cb);
	return 0;
}

int vms_tls_creds_new(struct vms_tls_creds **out, const struct vms_tls_conf *conf, int is_server)
{
	struct vms_tls_creds *cr;
	int err;

	if (!out)
		return vms_fail(VMS_EINVAL, "vms_tls_creds_new: out is NULL");
	*out = NULL;
	if (!conf)
		return vms_fail(VMS_EINVAL, "vms_tls_creds_new: conf is NULL");
	cr = calloc(1, sizeof(*cr));
	if (!cr)
		return vms_fail(VMS_ENOMEM, "TLS: out of memory");
	cr->is_server = !!is_server;
	ERR_clear_error();
	cr->ctx = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
	cr->bio_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "vmstream socket");
	if (!cr->ctx || !cr->bio_meth || !BIO_meth_set_write(cr->bio_meth, bio_write) ||
	    !BIO_meth_set_read(cr->bio_meth, bio_read) || !BIO_meth_set_ctrl(cr->bio_meth, bio_ctrl)) {
		err = vms_fail(VMS_ENOMEM, "TLS: cannot create an OpenSSL context");
		goto out_free_creds;
	}
	err = ctx_setup(cr);
	if (err)
		goto out_free_creds;
	err = conf->psk ? set_psk(cr, conf) : load_x509(cr, conf);
	if (err)
		goto out_free_creds;
	ERR_clear_error();
	*out = cr;
	return 0;

out_free_creds:
	vms_tls_creds_free(cr);
	ERR_clear_error();
	return err;
}

void vms_tls_creds_free(struct vms_tls_creds *c)
{
	if (!c)
		return;
	SSL_CTX_free(c->ctx);
	BIO_meth_free(c->bio_meth);
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

/* ---- one connection --------------------------------------------------------------- */

static int fd_nonblock(struct vms_tls_conn *c)
{
	int fl = fcntl(c->fd, F_GETFL);

	if (fl < 0)
		return vms_fail(VMS_EINVAL, "TLS: fd %d: %s", c->fd, vms_sys_err(errno));
	if (!(fl & O_NONBLOCK) && fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return vms_fail(VMS_EIO, "TLS: cannot make fd %d non-blocking: %s", c->fd,
				vms_sys_err(errno));
	c->saved_flags = fl;
	return 0;
}

static void fd_restore(struct vms_tls_conn *c)
{
	if (c->saved_flags >= 0 && !(c->saved_flags & O_NONBLOCK))
		(void)fcntl(c->fd, F_SETFL, c->saved_flags);
	c->saved_flags = -1;
}

static void set_deadline(struct vms_tls_conn *c, int timeout_ms)
{
	c->timeout_ms = timeout_ms;
	c->deadline_ms = now_ms() + timeout_ms;
}

void vms_tls_conn_free(struct vms_tls_conn *conn)
{
	if (!conn)
		return;
	fd_restore(conn);
	if (conn->ssl) {
		/* Mark the connection as shut down so nothing would ever emit a
		 * close_notify; SSL_free itself writes nothing and our BIO never
		 * closes the fd. */
		SSL_set_shutdown(conn->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_free(conn->ssl);
	}
	OPENSSL_cleanse(conn, sizeof(*conn));
	free(conn);
	ERR_clear_error();
}

static int conn_new(struct vms_tls_conn **out, struct vms_tls_creds *cr, int fd, int timeout_ms)
{
	struct vms_tls_conn *c;
	int type = 0, err;
	socklen_t tlen = sizeof(type);
	BIO *bio;

	*out = NULL;
	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_STREAM)
		return vms_fail(VMS_EINVAL, "TLS: fd %d is not a stream socket", fd);
	c = calloc(1, sizeof(*c));
	if (!c)
		return vms_fail(VMS_ENOMEM, "TLS: out of memory");
	c->creds = cr;
	c->fd = fd;
	c->saved_flags = -1;
	set_deadline(c, timeout_ms);
	ERR_clear_error();
	c->ssl = SSL_new(cr->ctx);
	bio = c->ssl ? BIO_new(cr->bio_meth) : NULL;
	if (!bio) {
		err = vms_fail(VMS_ENOMEM, "TLS: cannot create a connection");
		goto out_free_conn;
	}
	BIO_set_data(bio, c);
	BIO_set_init(bio, 1);
	SSL_set_bio(c->ssl, bio, bio);
	SSL_set_app_data(c->ssl, c);
	SSL_set_msg_callback(c->ssl, msg_cb);
	SSL_set_msg_callback_arg(c->ssl, c);
	if (cr->is_server)
		SSL_set_accept_state(c->ssl);
	else
		SSL_set_connect_state(c->ssl);
	err = fd_nonblock(c);
	if (err)
		goto out_free_conn;
	*out = c;
	return 0;

out_free_conn:
	vms_tls_conn_free(c);
	return err;
}

static int wait_fd(struct vms_tls_conn *c, short events, const char *step)
{
	struct pollfd p = { .fd = c->fd, .events = events };

	for (;;) {
		int64_t left = c->deadline_ms - now_ms();
		int rc;

		if (left <= 0)
			return vms_fail(VMS_ETIMEOUT, "TLS: no progress from the %s within %d ms %s",
					c->creds->is_server ? "client" : "server", c->timeout_ms,
					step);
		rc = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (rc > 0)
			return 0; /* also POLLERR/POLLHUP: the next SSL call reports it */
		if (rc < 0 && errno != EINTR)
			return vms_fail(VMS_EIO, "TLS: poll: %s", vms_sys_err(errno));
	}
}

static const char *verify_hint(long vr)
{
	switch (vr) {
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return "not trusted (self-signed/unknown CA)";
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
	case X509_V_ERR_CRL_HAS_EXPIRED:
		return "expired or not yet valid";
	case X509_V_ERR_INVALID_PURPOSE:
		return "not valid for this purpose (extended key usage)";
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
	case X509_V_ERR_CERT_REJECTED:
	case X509_V_ERR_CERT_UNTRUSTED:
		return "not trusted";
	default:
		return "rejected";
	}
}

/* A failure whose OpenSSL reason says what it was: VMS_ETLS with the message,
 * or 0 when the reason alone does not tell. */
static int fail_by_reason(const struct vms_tls_conn *c, int reason, const char *osl)
{
	const char *peer = c->creds->is_server ? "client" : "server";

	switch (reason) {
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_UNKNOWN_PROTOCOL:
	case SSL_R_WRONG_SSL_VERSION:
		return vms_fail(VMS_ETLS, "TLS handshake failed: peer is not speaking TLS [%s]", osl);
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
		return vms_fail(VMS_ETLS, "TLS handshake failed: the %s does not speak TLS 1.3 [%s]",
				peer, osl);
	case SSL_R_CERTIFICATE_VERIFY_FAILED: {
		long vr = SSL_get_verify_result(c->ssl);

		if (c->creds->psk_mode)
			return vms_fail(VMS_ETLS,
					"TLS handshake failed: the server sent a certificate instead of "
					"accepting our PSK (is it configured for X.509?) [%s]",
					X509_verify_cert_error_string(vr));
		return vms_fail(VMS_ETLS, "TLS handshake failed: %s certificate %s: %s", peer,
				verify_hint(vr), X509_verify_cert_error_string(vr));
	}
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		return vms_fail(VMS_ETLS,
				"TLS handshake failed: the client sent no certificate, one is required [%s]",
				osl);
	case SSL_R_BINDER_DOES_NOT_VERIFY:
		return vms_fail(VMS_ETLS,
				"TLS handshake failed: PSK mismatch (the client's PSK binder does not verify) [%s]",
				osl);
	default:
		return 0;
	}
}

/* An alert from the peer: it refused something of ours. */
static int fail_by_alert(const struct vms_tls_conn *c, int alert, const char *step)
{
	const char *peer = c->creds->is_server ? "client" : "server";
	const char *me = c->creds->is_server ? "server" : "client";
	const char *desc = SSL_alert_desc_string_long(alert);

	switch (alert) {
	case SSL_AD_DECRYPT_ERROR:
	case SSL_AD_HANDSHAKE_FAILURE:
	case SSL_AD_ILLEGAL_PARAMETER:
		if (c->creds->psk_mode)
			return vms_fail(VMS_ETLS,
					"TLS handshake failed: PSK mismatch or unknown identity (the %s sent alert \"%s\")",
					peer, desc);
		if (alert == SSL_AD_HANDSHAKE_FAILURE)
			return vms_fail(VMS_ETLS,
					"TLS handshake failed: the %s sent alert \"%s\" (no common parameters: is it configured for a PSK?)",
					peer, desc);
		break;
	case SSL_AD_UNKNOWN_CA:
	case SSL_AD_BAD_CERTIFICATE:
	case SSL_AD_UNSUPPORTED_CERTIFICATE:
	case SSL_AD_CERTIFICATE_REVOKED:
	case SSL_AD_CERTIFICATE_EXPIRED:
	case SSL_AD_CERTIFICATE_UNKNOWN:
	case SSL_AD_CERTIFICATE_REQUIRED:
	case SSL_AD_ACCESS_DENIED:
		return vms_fail(VMS_ETLS,
				"TLS handshake failed: the %s rejected our %s certificate (alert \"%s\")",
				peer, me, desc);
	default:
		break;
	}
	return vms_fail(VMS_ETLS, "TLS handshake failed: the %s sent alert \"%s\" %s", peer, desc,
			step);
}

/* Turn the failure of SSL call `ret` into a code and a one-line message. */
static int tls_fail(struct vms_tls_conn *c, int ret, const char *step)
{
	int ssl_err = SSL_get_error(c->ssl, ret);
	const char *peer = c->creds->is_server ? "client" : "server";
	unsigned long e;
	int reason, err;
	char osl[256];

	e = drain_errors(osl, sizeof(osl));
	reason = (e && ERR_GET_LIB(e) == ERR_LIB_SSL) ? ERR_GET_REASON(e) : 0;

	if (ssl_err == SSL_ERROR_ZERO_RETURN)
		return vms_fail(VMS_ENET, "TLS: the %s closed the connection (close_notify) %s",
				peer, step);
	if (ssl_err == SSL_ERROR_SYSCALL || reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
		if (c->sys_errno && reason != SSL_R_UNEXPECTED_EOF_WHILE_READING)
			return vms_fail(VMS_ENET, "TLS: connection to the %s failed %s: %s", peer,
					step, vms_sys_err(c->sys_errno));
		if (!e || reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
			return vms_fail(VMS_ENET, "TLS: the %s closed the connection %s", peer,
					step);
	}
	err = fail_by_reason(c, reason, osl);
	if (err)
		return err;
	if (c->creds->is_server && c->creds->psk_mode && !c->psk_offered)
		return vms_fail(VMS_ETLS,
				"TLS handshake failed: the client offered no PSK (is it configured for X.509?) [%s]",
				osl);
	if (c->creds->is_server && c->creds->psk_mode && c->psk_unknown)
		return vms_fail(VMS_ETLS,
				"TLS handshake failed: PSK mismatch or unknown identity (the client's PSK identity is not \"%s\") [%s]",
				c->creds->identity, osl);
	if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256)
		return fail_by_alert(c, reason - SSL_AD_REASON_OFFSET, step);
	if (step == step_handshake)
		return vms_fail(VMS_ETLS, "TLS handshake failed: %s", osl);
	return vms_fail(VMS_ETLS, "TLS error %s: %s", step, osl);
}

enum tls_op { OP_HANDSHAKE, OP_READ, OP_WRITE };

/* Our send failed because the peer reset the connection. A peer that refused
 * us sent an alert before closing; closing with our unread bytes in its
 * socket turns its FIN into an RST, which can reach us before we read the
 * alert. Linux keeps what was received before the RST readable, so look for
 * the alert (non-blocking, a few records at most) and report that instead of
 * a bare "connection reset". Returns 0 if there was no alert. */
static int salvage_alert(struct vms_tls_conn *c, const char *step)
{
	uint8_t tmp[256];
	int i;

	for (i = 0; i < 4; i++) {
		size_t n = 0;
		int ret;

		ERR_clear_error();
		c->sys_errno = 0;
		ret = SSL_read_ex(c->ssl, tmp, sizeof(tmp), &n);
		OPENSSL_cleanse(tmp, sizeof(tmp));
		if (ret == 1)
			continue; /* application data: not what we are after */
		if (SSL_get_error(c->ssl, ret) == SSL_ERROR_SSL) {
			unsigned long e = ERR_peek_error();
			int reason = ERR_GET_LIB(e) == ERR_LIB_SSL ? ERR_GET_REASON(e) : 0;

			if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256)
				return tls_fail(c, ret, step);
		}
		break;
	}
	ERR_clear_error();
	return 0;
}

/* Run one SSL operation to completion (a read: exactly len bytes) or until
 * the deadline. */
static int tls_run(struct vms_tls_conn *c, enum tls_op op, void *buf, size_t len, const char *step)
{
	size_t done = 0;

	for (;;) {
		size_t n = 0;
		short events;
		int ret, err, reset;

		ERR_clear_error();
		c->sys_errno = 0;
		switch (op) {
		case OP_HANDSHAKE:
			ret = SSL_do_handshake(c->ssl);
			break;
		case OP_READ:
			ret = SSL_read_ex(c->ssl, (uint8_t *)buf + done, len - done, &n);
			break;
		default:
			ret = SSL_write_ex(c->ssl, buf, len, &n);
			break;
		}
		if (ret == 1) {
			if (op != OP_READ)
				return 0; /* SSL_write_ex: all of it (no partial-write mode) */
			done += n;
			if (done == len)
				return 0;
			continue;
		}
		switch (SSL_get_error(c->ssl, ret)) {
		case SSL_ERROR_WANT_READ:
			events = POLLIN;
			break;
		case SSL_ERROR_WANT_WRITE:
			events = POLLOUT;
			break;
		default:
			reset = c->sys_errno == EPIPE || c->sys_errno == ECONNRESET;
			err = tls_fail(c, ret, step);
			if (err == VMS_ENET && reset) {
				int alert = salvage_alert(c, step);

				if (alert)
					return alert;
			}
			return err;
		}
		err = wait_fd(c, events, step);
		if (err)
			return err;
	}
}

static void describe_peer(struct vms_tls_conn *c)
{
	X509 *cert;
	BIO *mem;
	char *p;
	long n;

	if (c->creds->psk_mode) {
		snprintf(c->peer, sizeof(c->peer), "psk:%s", c->creds->identity);
		return;
	}
	snprintf(c->peer, sizeof(c->peer), "(unknown)");
	cert = SSL_get0_peer_certificate(c->ssl);
	mem = cert ? BIO_new(BIO_s_mem()) : NULL;
	if (!mem)
		return;
	if (X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
		n = BIO_get_mem_data(mem, &p);
		if (n > 0)
			copy_printable(c->peer, sizeof(c->peer), p, (size_t)n);
	}
	BIO_free(mem);
}

/* After the handshake: the peer was authenticated the way we configured. */
static int check_peer(struct vms_tls_conn *c)
{
	const char *peer = c->creds->is_server ? "client" : "server";

	if (c->creds->psk_mode) {
		if (!SSL_session_reused(c->ssl))
			return vms_fail(VMS_ETLS, "TLS handshake failed: the %s did not use the PSK",
					peer);
		if (SSL_get_negotiated_group(c->ssl) == 0)
			return vms_fail(VMS_ETLS,
					"TLS handshake failed: PSK without (EC)DHE (no forward secrecy)");
	} else {
		long vr = SSL_get_verify_result(c->ssl);

		if (!SSL_get0_peer_certificate(c->ssl))
			return vms_fail(VMS_ETLS, "TLS handshake failed: the %s sent no certificate",
					peer);
		if (vr != X509_V_OK)
			return vms_fail(VMS_ETLS, "TLS handshake failed: %s certificate %s: %s", peer,
					verify_hint(vr), X509_verify_cert_error_string(vr));
	}
	if (SSL_version(c->ssl) != TLS1_3_VERSION)
		return vms_fail(VMS_ETLS, "TLS handshake failed: not TLS 1.3");
	describe_peer(c);
	return 0;
}

static int handshake(struct vms_tls_conn *c)
{
	int err = tls_run(c, OP_HANDSHAKE, NULL, 0, step_handshake);

	return err ? err : check_peer(c);
}

/* u32 length (LE) + bytes, in one SSL_write, hence one record. */
static int write_frame(struct vms_tls_conn *c, const void *msg, size_t len, const char *step)
{
	uint8_t frame[4 + VMS_SESSION_MSG_MAX];
	int err;

	vms_put_u32(frame, (uint32_t)len);
	if (len)
		memcpy(frame + 4, msg, len);
	err = tls_run(c, OP_WRITE, frame, 4 + len, step);
	OPENSSL_cleanse(frame, 4 + len);
	return err;
}

static int read_frame(struct vms_tls_conn *c, void *buf, size_t cap, size_t *out_len,
		      const char *what, const char *step)
{
	uint8_t hdr[4] = { 0 };
	struct vms_cur cur;
	uint32_t n = 0;
	int err, left;

	err = tls_run(c, OP_READ, hdr, sizeof(hdr), step);
	if (err)
		return err;
	cur = vms_cur_init(hdr, sizeof(hdr));
	(void)vms_cur_u32(&cur, &n);
	if (n > VMS_SESSION_MSG_MAX)
		return vms_fail(VMS_EPROTO, "TLS: the %s's %s is %u bytes, the limit is %d",
				c->creds->is_server ? "client" : "server", what, n, VMS_SESSION_MSG_MAX);
	if (n > cap)
		return vms_fail(VMS_EPROTO, "TLS: the %s's %s is %u bytes, the buffer holds %zu",
				c->creds->is_server ? "client" : "server", what, n, cap);
	if (n) {
		err = tls_run(c, OP_READ, buf, n, step);
		if (err)
			return err;
	}
	left = SSL_pending(c->ssl);
	if (left > 0)
		return vms_fail(VMS_EPROTO, "TLS: %d unexpected bytes after the %s in its TLS record",
				left, what);
	if (c->key_update)
		return vms_fail(VMS_EPROTO, "TLS: the %s sent a KeyUpdate (not allowed)",
				c->creds->is_server ? "client" : "server");
	*out_len = n;
	return 0;
}

static int export_ikm(struct vms_tls_conn *c, uint16_t lane, uint8_t c2s[VMS_TLS_IKM_LEN],
		      uint8_t s2c[VMS_TLS_IKM_LEN])
{
	static const char label[] = VMS_TLS_EXPORTER_LABEL;
	uint8_t context[3];

	vms_put_u16(context, lane);
	context[2] = 0; /* data from the TLS client */
	if (SSL_export_keying_material(c->ssl, c2s, VMS_TLS_IKM_LEN, label, sizeof(label) - 1,
				       context, sizeof(context), 1) != 1)
		goto out_fail;
	context[2] = 1; /* data from the TLS server */
	if (SSL_export_keying_material(c->ssl, s2c, VMS_TLS_IKM_LEN, label, sizeof(label) - 1,
				       context, sizeof(context), 1) != 1)
		goto out_fail;
	return 0;

out_fail:
	ERR_clear_error();
	return vms_fail(VMS_ETLS, "TLS: exporting the lane %u keys failed", lane);
}

static void wipe_ikm(uint8_t *c2s, uint8_t *s2c)
{
	if (c2s)
		OPENSSL_cleanse(c2s, VMS_TLS_IKM_LEN);
	if (s2c)
		OPENSSL_cleanse(s2c, VMS_TLS_IKM_LEN);
}

void vms_tls_conn_info(const struct vms_tls_conn *conn, struct vms_tls_info *info)
{
	const SSL_CIPHER *cipher;
	const char *group = NULL;
	int nid;

	memset(info, 0, sizeof(*info));
	if (!conn)
		return;
	snprintf(info->peer, sizeof(info->peer), "%s", conn->peer);
	cipher = SSL_get_current_cipher(conn->ssl);
	if (cipher)
		snprintf(info->cipher, sizeof(info->cipher), "%s", SSL_CIPHER_standard_name(cipher));
	nid = (int)SSL_get_negotiated_group(conn->ssl);
	if (nid)
		group = SSL_group_to_name(conn->ssl, nid);
	if (group)
		copy_printable(info->group, sizeof(info->group), group, strlen(group));
}

const char *vms_tls_conn_peer(const struct vms_tls_conn *conn)
{
	return conn ? conn->peer : "";
}

int vms_tls_client(struct vms_tls_creds *c, int fd, const void *hello, size_t hello_len,
		   void *reply, size_t reply_cap, size_t *reply_len, uint16_t lane,
		   uint8_t ikm_c2s[VMS_TLS_IKM_LEN], uint8_t ikm_s2c[VMS_TLS_IKM_LEN],
		   int timeout_ms, struct vms_tls_info *info)
{
	struct vms_tls_conn *conn = NULL;
	int err;

	wipe_ikm(ikm_c2s, ikm_s2c);
	if (info)
		memset(info, 0, sizeof(*info));
	if (!c || c->is_server || !ikm_c2s || !ikm_s2c || !reply_len || (!reply && reply_cap) ||
	    (!hello && hello_len))
		return vms_fail(VMS_EINVAL, "vms_tls_client: bad arguments");
	if (hello_len > VMS_SESSION_MSG_MAX)
		return vms_fail(VMS_EINVAL, "TLS: HELLO of %zu bytes exceeds the limit of %d",
				hello_len, VMS_SESSION_MSG_MAX);
	if (timeout_ms <= 0)
		return vms_fail(VMS_EINVAL, "TLS: the timeout must be positive");
	*reply_len = 0;
	err = conn_new(&conn, c, fd, timeout_ms);
	if (err)
		return err;
	err = handshake(conn);
	if (err)
		goto out_free_conn;
	err = write_frame(conn, hello, hello_len, step_send_hello);
	if (err)
		goto out_free_conn;
	err = read_frame(conn, reply, reply_cap, reply_len, "REPLY", step_read_reply);
	if (err)
		goto out_free_conn;
	err = export_ikm(conn, lane, ikm_c2s, ikm_s2c);
	if (err)
		goto out_free_conn;
	if (info)
		vms_tls_conn_info(conn, info);

out_free_conn:
	if (err) {
		wipe_ikm(ikm_c2s, ikm_s2c);
		*reply_len = 0;
	}
	vms_tls_conn_free(conn);
	return err;
}

int vms_tls_server_accept(struct vms_tls_creds *c, int fd, void *hello, size_t hello_cap,
			  size_t *hello_len, int timeout_ms, struct vms_tls_conn **conn)
{
	struct vms_tls_conn *tc = NULL;
	int err;

	if (!conn)
		return vms_fail(VMS_EINVAL, "vms_tls_server_accept: conn is NULL");
	*conn = NULL;
	if (!c || !c->is_server || !hello_len || (!hello && hello_cap))
		return vms_fail(VMS_EINVAL, "vms_tls_server_accept: bad arguments");
	if (timeout_ms <= 0)
		return vms_fail(VMS_EINVAL, "TLS: the timeout must be positive");
	*hello_len = 0;
	err = conn_new(&tc, c, fd, timeout_ms);
	if (err)
		return err;
	err = handshake(tc);
	if (err)
		goto out_free_conn;
	err = read_frame(tc, hello, hello_cap, hello_len, "HELLO", step_read_hello);
	if (err)
		goto out_free_conn;
	fd_restore(tc); /* the caller owns the fd between the two steps */
	*conn = tc;
	return 0;

out_free_conn:
	*hello_len = 0;
	vms_tls_conn_free(tc);
	return err;
}

int vms_tls_server_reply(struct vms_tls_conn *conn, const void *reply, size_t reply_len,
			 uint16_t lane, uint8_t ikm_c2s[VMS_TLS_IKM_LEN],
			 uint8_t ikm_s2c[VMS_TLS_IKM_LEN], int timeout_ms)
{
	int err;

	wipe_ikm(ikm_c2s, ikm_s2c);
	if (!conn)
		return vms_fail(VMS_EINVAL, "vms_tls_server_reply: conn is NULL");
	if (!ikm_c2s || !ikm_s2c || (!reply && reply_len)) {
		err = vms_fail(VMS_EINVAL, "vms_tls_server_reply: bad arguments");
		goto out_free_conn;
	}
	if (reply_len > VMS_SESSION_MSG_MAX) {
		err = vms_fail(VMS_EINVAL, "TLS: REPLY of %zu bytes exceeds the limit of %d",
			       reply_len, VMS_SESSION_MSG_MAX);
		goto out_free_conn;
	}
	if (timeout_ms <= 0) {
		err = vms_fail(VMS_EINVAL, "TLS: the timeout must be positive");
		goto out_free_conn;
	}
	set_deadline(conn, timeout_ms);
	err = fd_nonblock(conn);
	if (err)
		goto out_free_conn;
	/* Keys first: if the export failed after the REPLY went out, the client
	 * would believe the lane is ready. */
	err = export_ikm(conn, lane, ikm_c2s, ikm_s2c);
	if (err)
		goto out_free_conn;
	err = write_frame(conn, reply, reply_len, step_send_reply);

out_free_conn:
	if (err)
		wipe_ikm(ikm_c2s, ikm_s2c);
	vms_tls_conn_free(conn);
	return err;
}
