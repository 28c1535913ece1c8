/* SPDX-License-Identifier: MIT */
/*
 * What the pieces of a network session share (FORMAT.md section 9). The unit,
 * listed from the bottom up; each file calls only files listed before it,
 * never the public calls on top (connect.c and accept.c do not call each
 * other either):
 *
 *   fail.c     failure helpers
 *   socket.c   deadlines, waiting on a socket, per-lane socket settings
 *   frame.c    the unauthenticated framing (u32 length, bytes, u64 XXH3)
 *   tls.c      TLS 1.3 authentication of one lane (tls.h)
 *   hello.c    HELLO / REPLY codec and the receiver's HELLO policy
 *   addr.c     address parsing, the loopback test (public: vms_addr_*)
 *   options.c  network options intake and TLS credentials
 *   connect.c  the sender: vms_writer_connect
 *   accept.c   the receiver: vms_listen, vms_accept, vms_listener_*
 *
 * Not part of the public API.
 */
#ifndef VMS_SESSION_INTERNAL_H
#define VMS_SESSION_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "base/limits.h"
#include "format/format.h"
#include "vmstream.h"

struct vms_tls_creds;

#define VMS_SESSION_ID_LEN 16

/* ---- shared state -------------------------------------------------------- */

/* A HELLO (FORMAT.md section 9), decoded or to encode. */
struct vms_hello {
	uint16_t vmin, vmax, lane, lanes;
	uint8_t session_id[VMS_SESSION_ID_LEN];
	uint32_t chunk_cap;
	uint8_t cipher;
	uint64_t size_hint;
	unsigned ncodecs;
	struct vms_codec_decl codecs[VMS_MAX_CODECS];
};

struct vms_listener {
	int fd;
	struct vms_net_opts net;      /* taken in; psk points at psk below */
	uint8_t psk[VMS_KEY_LEN];
	struct vms_tls_creds *creds;  /* NULL: unauthenticated */
	bool loopback;                /* bound to a loopback address */
	int port;
};

/* The session a receiver is putting together: its first HELLO fixes the
 * session id and the lane count, later lanes must fit them. */
struct vms_lane_set {
	bool started;
	uint8_t session_id[VMS_SESSION_ID_LEN];
	unsigned lanes;               /* lanes the session has */
	unsigned got;                 /* lanes accepted so far */
	bool seen[VMS_LANES_MAX];
	uint64_t deadline_ns;         /* the rest of the lanes are due */
};

/* ---- fail.c ---------------------------------------------------------------- */

/* Record code with fmt's text, ": " and this thread's current message after
 * it ("lane 1" + "handshake timed out"); returns code. */
int vms_session_fail_ctx(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- socket.c -------------------------------------------------------------- */

/* The monotonic time ms from now, and the ms left until deadline_ns (rounded
 * up, 0 once it passed) for poll(). */
uint64_t vms_deadline_in(int ms);
int64_t vms_deadline_left(uint64_t deadline_ns);
/* Wait until fd is ready for ev (POLLIN/POLLOUT): 0, VMS_ETIMEOUT ("handshake
 * timed out") at the deadline, VMS_ENET if poll fails. */
int vms_fd_wait(int fd, short ev, uint64_t deadline_ns);
/* Settings every lane's socket gets. */
void vms_sock_tune(int fd);

/* ---- frame.c --------------------------------------------------------------- */

/* One message of an unauthenticated session (len <= VMS_SESSION_MSG_MAX),
 * framed as u32 length, the bytes, their u64 XXH3; by the deadline. */
int vms_plain_send(int fd, const uint8_t *msg, size_t len, uint64_t deadline_ns);
int vms_plain_recv(int fd, uint8_t *msg, size_t cap, size_t *len, uint64_t deadline_ns);

/* ---- hello.c --------------------------------------------------------------- */

/* out has room for VMS_SESSION_MSG_MAX bytes. Returns the length. */
size_t vms_hello_encode(const struct vms_hello *h, uint8_t *out);
/* 0, or VMS_EPROTO with the reason in *why (nothing recorded). */
int vms_hello_decode(struct vms_hello *h, const uint8_t *in, size_t n, const char **why);
/* status 0 = accepted, else the refusal code with text (cut to fit). */
size_t vms_reply_encode(int32_t status, uint32_t max_chunk, const char *text, uint8_t *out);
/* 0 or VMS_EPROTO (recorded); text gets the refusal text, cut to cap. */
int vms_reply_decode(const uint8_t *in, size_t n, int32_t *status, char *text, size_t cap);
/* The receiver's policy for a HELLO, given the session so far: 0, or the
 * refusal code with its reason in why (nothing recorded). */
int vms_hello_check(const struct vms_listener *l, const struct vms_hello *h,
		    const struct vms_reader_opts *ro, const struct vms_lane_set *s, char *why,
		    size_t cap);
/* The largest chunk this receiver accepts (reader opts' max_chunk, or the cap). */
uint32_t vms_hello_max_chunk(const struct vms_reader_opts *ro);

/* ---- addr.c ---------------------------------------------------------------- */

/* vms_addr_parse() for getaddrinfo(): the port as a string, and the
 * message begins "address " ("address 'h:0': port '0' is out of range ..."). */
int vms_addr_split(const char *addr, uint32_t flags, char host[VMS_ADDR_HOST_MAX + 1],
		   char port[8]);
/* Is the address loopback (127/8, ::1, ::ffff:127.0.0.0/104)? */
bool vms_sockaddr_loopback(const struct sockaddr *sa);

/* ---- options.c ------------------------------------------------------------- */

/* Take in network options: size field, defaults, every bound. */
int vms_net_opts_take(struct vms_net_opts *dst, const struct vms_net_opts *src);
/* A PSK or certificates configured? */
bool vms_net_authenticated(const struct vms_net_opts *n);
/* The TLS credentials of n for one side; *out = NULL when unauthenticated. */
int vms_net_creds(const struct vms_net_opts *n, int is_server, struct vms_tls_creds **out);

#endif
