/* SPDX-License-Identifier: MIT */
/*
 * TLS 1.3 authentication of one lane, then a switch to the raw socket.
 *
 * Each TCP connection ("lane") of a session starts with a TLS 1.3 handshake
 * (mutual X.509, or an external PSK with (EC)DHE), then carries exactly one
 * application message each way inside TLS:
 *
 *     client (data sender)                    server (data receiver)
 *     handshake  <------------------------->  handshake
 *     HELLO      -------------------------->  vms_tls_server_accept() returns it
 *                                             caller parses it, learns the lane
 *     vms_tls_client() returns  <---------  REPLY  (vms_tls_server_reply())
 *
 * Each message is framed inside TLS as u32 length (little-endian) + bytes,
 * 0..VMS_SESSION_MSG_MAX bytes, in one TLS record. Then both sides stop using TLS
 * and the socket is a raw byte stream again, from the next byte on:
 *  - OpenSSL never reads ahead (read-ahead off: it reads a record header, then
 *    exactly that record), and no TLS byte is written after the REPLY (no
 *    session tickets, no KeyUpdate, no close_notify). So raw bytes that follow
 *    the HELLO or the REPLY record — even in the same TCP segment — are left
 *    in the socket untouched for the caller.
 *  - The client sends raw bytes only after it has the REPLY; the server may
 *    find raw bytes waiting as soon as its REPLY is written (or even earlier:
 *    it never reads past the HELLO record).
 *  - The fd is never closed, shut down or left in another mode: it is made
 *    non-blocking for the exchange and its file status flags are restored
 *    before every return (also on errors).
 *
 * Keys: after the exchange both sides export, with the TLS 1.3 exporter
 * (RFC 8446 §7.5), label "EXPORTER-vmstream-v1", context = u16 lane (LE) ||
 * u8 direction, 32 bytes: ikm_c2s (direction 0, data from the TLS client) and
 * ikm_s2c (direction 1). These are FORMAT.md §5's key_source 2 IKM. On any
 * failure the ikm outputs are zeroed.
 *
 * Timeouts: timeout_ms (> 0) bounds the whole call (handshake + message
 * exchange); a silent or dead peer gives VMS_ETIMEOUT, never a hang.
 *
 * Errors (message via vms_last_error(), one line, never key material; the
 * OpenSSL error queue of the calling thread is emptied on every return):
 *  VMS_ETLS     authentication failed (PSK mismatch or unknown identity,
 *               untrusted/expired/missing certificate, mode mismatch), the
 *               peer is not speaking TLS, or any other TLS protocol failure
 *  VMS_ENET     connection closed or reset by the peer
 *  VMS_ETIMEOUT the deadline passed
 *  VMS_EPROTO   HELLO/REPLY frame longer than VMS_SESSION_MSG_MAX or than the
 *               caller's buffer, bytes after the frame inside its record,
 *               or a KeyUpdate from the peer
 *  VMS_EINVAL   bad arguments; bad credential files (named in the message)
 *  VMS_ENOMEM   allocation failure
 *
 * Thread safety: a vms_tls_creds is immutable after vms_tls_creds_new() and
 * may be used by any number of threads (lanes) at once; it must outlive every
 * call and every vms_tls_conn made from it. A vms_tls_conn belongs to one
 * thread at a time.
 */
#ifndef VMS_SESSION_TLS_H
#define VMS_SESSION_TLS_H

#include <stddef.h>
#include <stdint.h>
#include "base/limits.h"

#define VMS_TLS_PSK_LEN 32          /* external PSK length */
#define VMS_TLS_IDENTITY_DEFAULT "vmstream"
#define VMS_TLS_EXPORTER_LABEL "EXPORTER-vmstream-v1"
#define VMS_TLS_IKM_LEN 32

/* An SSL_CTX plus settings; see "Thread safety" above. */
struct vms_tls_creds;

struct vms_tls_conf {
	/* PSK mode when psk != NULL: exactly VMS_TLS_PSK_LEN raw bytes (copied),
	 * identity NULL = VMS_TLS_IDENTITY_DEFAULT. The cert fields must then be
	 * NULL (mixing the two modes is VMS_EINVAL). */
	const uint8_t *psk;
	size_t psk_len;
	const char *psk_identity;
	/* X.509 mode (psk == NULL): all three are required on both sides.
	 * cert_file: PEM certificate chain (leaf first); key_file: PEM private
	 * key without passphrase; ca_file: PEM CA certificate(s) the peer's
	 * chain must lead to. The server requires a client certificate. Peer
	 * names are not checked: whoever holds a certificate from the CA is a
	 * peer. */
	const char *cert_file, *key_file, *ca_file;
};

/* Build credentials for one side. Files are read here, so a missing or
 * unreadable file, a bad PEM, or a key that does not match the certificate
 * is VMS_EINVAL now (message names the file), not a handshake failure later. */
int vms_tls_creds_new(struct vms_tls_creds **out, const struct vms_tls_conf *conf, int is_server);
void vms_tls_creds_free(struct vms_tls_creds *c); /* NULL ok; wipes the PSK */

/* What was negotiated, for logs. Strings are NUL-terminated, printable. */
struct vms_tls_info {
	char peer[256];   /* peer certificate subject (RFC 2253, e.g.
			     "CN=host-b,O=example") or "psk:<identity>" */
	char cipher[48];  /* "TLS_AES_256_GCM_SHA384" */
	char group[32];   /* (EC)DHE group, e.g. "x25519"; never empty after
			     success: PSK mode always uses psk_dhe_ke */
};

/* Client: handshake on the connected socket fd, send hello[0..hello_len)
 * (hello_len <= VMS_SESSION_MSG_MAX), read the reply into reply[0..reply_cap)
 * and its length into *reply_len, export the lane's two IKMs. info may be
 * NULL. On success the next byte on fd in each direction is raw. */
int vms_tls_client(struct vms_tls_creds *c, int fd, const void *hello, size_t hello_len,
		   void *reply, size_t reply_cap, size_t *reply_len, uint16_t lane,
		   uint8_t ikm_c2s[VMS_TLS_IKM_LEN], uint8_t ikm_s2c[VMS_TLS_IKM_LEN],
		   int timeout_ms, struct vms_tls_info *info);

/* Server, in two steps so the caller can parse the hello (and learn the lane)
 * before replying. */
struct vms_tls_conn;

/* Handshake on the accepted socket fd and read the client's hello into
 * hello[0..hello_cap). On success *conn must be passed to
 * vms_tls_server_reply() or vms_tls_conn_free(). On failure *conn is NULL. */
int vms_tls_server_accept(struct vms_tls_creds *c, int fd, void *hello, size_t hello_cap,
			  size_t *hello_len, int timeout_ms, struct vms_tls_conn **conn);

/* Send reply[0..reply_len) (<= VMS_SESSION_MSG_MAX) and export the IKMs of
 * `lane`. Frees conn in all cases. On success the next byte on the fd in
 * each direction is raw (raw bytes from the client may already be waiting). */
int vms_tls_server_reply(struct vms_tls_conn *conn, const void *reply, size_t reply_len,
			 uint16_t lane, uint8_t ikm_c2s[VMS_TLS_IKM_LEN],
			 uint8_t ikm_s2c[VMS_TLS_IKM_LEN], int timeout_ms);

/* Abandon a connection after accept (e.g. a bad hello). Sends nothing (no
 * close_notify), never closes the fd. NULL ok. */
void vms_tls_conn_free(struct vms_tls_conn *conn);

/* The peer (certificate subject or "psk:<identity>") for logs; valid until
 * the conn is freed (vms_tls_server_reply() frees it: copy it first). */
const char *vms_tls_conn_peer(const struct vms_tls_conn *conn);
/* Everything vms_tls_client() reports in its info, for the server side. */
void vms_tls_conn_info(const struct vms_tls_conn *conn, struct vms_tls_info *info);

#endif
