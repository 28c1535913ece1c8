/* SPDX-License-Identifier: MIT */
/*
 * session/: addresses (vms_addr_parse, vms_addr_is_loopback), and how a
 * receiver puts a session together from its lanes.
 *
 * The sender side is written here from the session's own pieces (HELLO
 * codec, vms_tls_client, the writer over a transport) so a test can place a
 * connection between two lanes of a session, which vms_writer_connect never
 * does. Real loopback sockets, the receiver on its own thread.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "vmstream.h"
#include "session/internal.h"
#include "session/tls.h"
#include "stream/internal.h"
#include "testutil.h"

#define TIMEOUT_MS 20000 /* generous: sanitizer builds are slow */

static const uint8_t psk[VMS_KEY_LEN] = { 9, 8, 7, 6, 5, 4, 3, 2, 1 };

/* ---- receiver --------------------------------------------------------------- */

struct receiver {
	struct vms_listener *l;
	pthread_t th;
	int err;           /* vms_accept, then the stream */
	char msg[VMS_MSG_MAX];
	struct tu_bytes data;
};

static void *receiver_main(void *p)
{
	struct receiver *rx = p;
	struct vms_reader_opts ro = VMS_READER_OPTS_INIT;
	struct vms_event ev = VMS_EVENT_INIT;
	struct vms_reader *r = NULL;
	int err = vms_accept(rx->l, &r, &ro, TIMEOUT_MS);

	while (!err && (err = vms_reader_next(r, &ev)) == 1) {
		err = 0;
		if (ev.type == VMS_REC_DATA)
			tu_bytes_add(&rx->data, ev.u.data.data, ev.u.data.len);
	}
	if (err)
		snprintf(rx->msg, sizeof(rx->msg), "%s", vms_last_error());
	else
		err = vms_reader_ack(r, 0, NULL);
	rx->err = err;
	vms_reader_free(r);
	return NULL;
}

/* A PSK receiver on an ephemeral loopback port, accepting on its thread. */
static int receiver_start(struct receiver *rx)
{
	struct vms_net_opts net = VMS_NET_OPTS_INIT;

	memset(rx, 0, sizeof(*rx));
	net.psk = psk;
	ck_assert_int_eq(vms_listen(&rx->l, "127.0.0.1:0", &net), 0);
	ck_assert_int_eq(pthread_create(&rx->th, NULL, receiver_main, rx), 0);
	return vms_listener_port(rx->l);
}

static void receiver_end(struct receiver *rx)
{
	pthread_join(rx->th, NULL);
	vms_listener_free(rx->l);
}

/* ---- sender, piece by piece --------------------------------------------------- */

static int tcp_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s",
		      strerror(errno));
	return fd;
}

static void hello_init(struct vms_hello *h, uint8_t id, uint16_t lanes)
{
	memset(h, 0, sizeof(*h));
	h->vmin = h->vmax = VMS_FORMAT_MAJOR;
	h->lanes = lanes;
	memset(h->session_id, id, sizeof(h->session_id));
	h->chunk_cap = VMS_CHUNK_DEFAULT;
	h->cipher = VMS_CIPHER_AES_256_GCM;
	h->size_hint = UINT64_MAX;
}

/* One lane's handshake as the writer does it: the receiver's status, and the
 * REPLY's text in text. */
static int32_t lane_handshake(struct vms_tls_creds *creds, int fd, const struct vms_hello *h,
			      uint8_t c2s[VMS_KEY_LEN], uint8_t s2c[VMS_KEY_LEN], char *text,
			      size_t cap)
{
	uint8_t msg[VMS_SESSION_MSG_MAX], rep[VMS_SESSION_MSG_MAX];
	size_t mlen = vms_hello_encode(h, msg), rlen = 0;
	int32_t status = 0;
	int err = vms_tls_client(creds, fd, msg, mlen, rep, sizeof(rep), &rlen, h->lane, c2s, s2c,
				 TIMEOUT_MS, NULL);

	ck_assert_msg(err == 0, "lane %u: %s", h->lane, vms_last_error());
	ck_assert_int_eq(vms_reply_decode(rep, rlen, &status, text, cap), 0);
	return status;
}

/* ---- addresses ---------------------------------------------------------------- */

/* "aaa...:1" or "[aaa...]:1" with a host of n bytes, into buf. */
static void long_addr(char *buf, size_t n, bool brackets)
{
	size_t o = 0;

	if (brackets)
		buf[o++] = '[';
	memset(buf + o, 'a', n);
	strcpy(buf + o + n, brackets ? "]:1" : ":1");
}

struct addr_ok {
	const char *addr;
	uint32_t flags;
	const char *host;
	uint16_t port;
};

START_TEST(test_addr_parse_valid)
{
	static const struct addr_ok ok[] = {
		{ "127.0.0.1:80", 0, "127.0.0.1", 80 },
		{ "h:1", 0, "h", 1 },
		{ "h:65535", 0, "h", 65535 },
		{ "localhost:0080", 0, "localhost", 80 },
		{ "[::1]:7000", 0, "::1", 7000 },
		{ "[fe80::1%eth0]:22", 0, "fe80::1%eth0", 22 },
		{ "[::ffff:127.0.0.1]:1", 0, "::ffff:127.0.0.1", 1 },
		/* a listener: no host, port 0 */
		{ "0", VMS_ADDR_LISTEN, "", 0 },
		{ "65535", VMS_ADDR_LISTEN, "", 65535 },
		{ "h:0", VMS_ADDR_LISTEN, "h", 0 },
		{ "[::]:0", VMS_ADDR_LISTEN, "::", 0 },
		{ "0.0.0.0:7000", VMS_ADDR_LISTEN, "0.0.0.0", 7000 },
	};
	char host[VMS_ADDR_HOST_MAX + 1], longest[VMS_ADDR_HOST_MAX + 8];
	uint16_t port;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		memset(host, 'x', sizeof(host));
		port = 12345;
		ck_assert_msg(vms_addr_parse(ok[i].addr, ok[i].flags, host, sizeof(host), &port) == 0,
			      "%s: %s", ok[i].addr, vms_last_error());
		ck_assert_str_eq(host, ok[i].host);
		ck_assert_uint_eq(port, ok[i].port);
	}
	/* the longest host, plain and in brackets */
	long_addr(longest, VMS_ADDR_HOST_MAX, false);
	ck_assert_int_eq(vms_addr_parse(longest, 0, host, sizeof(host), &port), 0);
	ck_assert_uint_eq(strlen(host), VMS_ADDR_HOST_MAX);
	ck_assert_uint_eq(port, 1);
	long_addr(longest, VMS_ADDR_HOST_MAX, true);
	ck_assert_int_eq(vms_addr_parse(longest, 0, host, sizeof(host), &port), 0);
	ck_assert_uint_eq(strlen(host), VMS_ADDR_HOST_MAX);
	/* only checking: host and port not wanted */
	ck_assert_int_eq(vms_addr_parse("h:1", 0, NULL, 0, NULL), 0);
	ck_assert_int_eq(vms_addr_parse("[::1]:0", VMS_ADDR_LISTEN, NULL, 0, NULL), 0);
}
END_TEST

struct addr_bad {
	const char *addr;
	uint32_t flags;
	const char *msg;
};

START_TEST(test_addr_parse_rejects)
{
	static const struct addr_bad bad[] = {
		{ NULL, 0, "no address" },
		{ "", 0, "'': expected HOST:PORT" },
		{ "", VMS_ADDR_LISTEN, "'': port '' is not a number" },
		{ "nohost", 0, "'nohost': expected HOST:PORT" },
		{ "7000", 0, "'7000': expected HOST:PORT" },
		{ ":7000", 0, "':7000': bad host name" },
		{ ":7000", VMS_ADDR_LISTEN, "':7000': bad host name" },
		/* port bounds */
		{ "h:0", 0, "'h:0': port '0' is out of range (1 to 65535)" },
		{ "h:65536", 0, "'h:65536': port '65536' is out of range (1 to 65535)" },
		{ "65536", VMS_ADDR_LISTEN, "'65536': port '65536' is out of range (0 to 65535)" },
		{ "h:99999999999999999999999", 0,
		  "'h:99999999999999999999999': port '99999999999999999999999' is too large" },
		/* nothing but digits */
		{ "h:", 0, "'h:': port '' is not a number" },
		{ "h:+1", 0, "'h:+1': port '+1' is not a number" },
		{ "h:-1", 0, "'h:-1': port '-1' is not a number" },
		{ "h: 1", 0, "'h: 1': port ' 1' is not a number" },
		{ "h:1 ", 0, "'h:1 ': port '1 ' is not a number" },
		{ "h:1x", 0, "'h:1x': port '1x' is not a number" },
		{ "h:0x10", 0, "'h:0x10': port '0x10' is not a number" },
		{ "+1", VMS_ADDR_LISTEN, "'+1': port '+1' is not a number" },
		{ " 1", VMS_ADDR_LISTEN, "' 1': port ' 1' is not a number" },
		/* IPv6 */
		{ "::1:7000", 0, "'::1:7000': write IPv6 addresses in brackets, [::1]:PORT" },
		{ "h:1:2", 0, "'h:1:2': write IPv6 addresses in brackets, [h:1]:PORT" },
		{ "[::1]", 0, "'[::1]': expected [IPV6]:PORT" },
		{ "[::1]7000", 0, "'[::1]7000': expected [IPV6]:PORT" },
		{ "[::1:7000", 0, "'[::1:7000': expected [IPV6]:PORT" },
		{ "[]:7000", 0, "'[]:7000': bad IPv6 address" },
		{ "[::1]:", 0, "'[::1]:': port '' is not a number" },
		{ "[::1]:0", 0, "'[::1]:0': port '0' is out of range (1 to 65535)" },
		/* flags */
		{ "h:1", 0x2, "address flags 0x2 unknown" },
	};
	char host[VMS_ADDR_HOST_MAX + 1], too_long[VMS_ADDR_HOST_MAX + 8];
	uint16_t port;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc;

		strcpy(host, "untouched");
		port = 4242;
		rc = vms_addr_parse(bad[i].addr, bad[i].flags, host, sizeof(host), &port);
		ck_assert_msg(rc == VMS_EINVAL, "%s: got %d", bad[i].addr ? bad[i].addr : "NULL", rc);
		ck_assert_str_eq(vms_last_error(), bad[i].msg);
		ck_assert_str_eq(host, "untouched");
		ck_assert_uint_eq(port, 4242);
	}
	/* one byte over the longest host */
	long_addr(too_long, VMS_ADDR_HOST_MAX + 1, false);
	ck_assert_int_eq(vms_addr_parse(too_long, 0, host, sizeof(host), &port), VMS_EINVAL);
	ck_assert_ptr_nonnull(strstr(vms_last_error(), "a:1': bad host name"));
	long_addr(too_long, VMS_ADDR_HOST_MAX + 1, true);
	ck_assert_int_eq(vms_addr_parse(too_long, 0, host, sizeof(host), &port), VMS_EINVAL);
	ck_assert_ptr_nonnull(strstr(vms_last_error(), "a]:1': bad IPv6 address"));
	/* a host buffer that could not hold the longest host */
	ck_assert_int_eq(vms_addr_parse("h:1", 0, host, VMS_ADDR_HOST_MAX, &port), VMS_EINVAL);
	ck_assert_str_eq(vms_last_error(), "address host buffer of 255 bytes: it needs 256");
}
END_TEST

/* The session's public calls take addresses through the same parser. */
START_TEST(test_addr_session_calls)
{
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_net_opts net = VMS_NET_OPTS_INIT;
	struct vms_listener *l = (void *)1;
	struct vms_writer *w = (void *)1;

	ck_assert_int_eq(vms_listen(&l, "127.0.0.1:+0", &net), VMS_EINVAL);
	ck_assert_ptr_null(l);
	ck_assert_str_eq(vms_last_error(), "address '127.0.0.1:+0': port '+0' is not a number");
	ck_assert_int_eq(vms_listen(&l, " 0", &net), VMS_EINVAL);
	ck_assert_int_eq(vms_writer_connect(&w, ":7000", &net, &wo), VMS_EINVAL);
	ck_assert_ptr_null(w);
	ck_assert_str_eq(vms_last_error(), "address ':7000': bad host name");
	ck_assert_int_eq(vms_writer_connect(&w, "127.0.0.1:0", &net, &wo), VMS_EINVAL);
	ck_assert_str_eq(vms_last_error(),
			 "address '127.0.0.1:0': port '0' is out of range (1 to 65535)");
	ck_assert_int_eq(vms_writer_connect(&w, NULL, &net, &wo), VMS_EINVAL);
	ck_assert_str_eq(vms_last_error(), "address no address");
	/* a listener's own forms still listen */
	ck_assert_int_eq(vms_listen(&l, "127.0.0.1:00", &net), 0);
	ck_assert_int_gt(vms_listener_port(l), 0);
	vms_listener_free(l);
}
END_TEST

START_TEST(test_addr_is_loopback)
{
	static const struct {
		const char *addr;
		uint32_t flags;
		int want;
	} cases[] = {
		{ "127.0.0.1:1", 0, 1 },
		{ "127.255.254.253:1", 0, 1 },
		{ "[::1]:1", 0, 1 },
		{ "[::ffff:127.0.0.1]:1", 0, 1 },
		{ "localhost:1", 0, 1 },
		{ "127.0.0.1:0", VMS_ADDR_LISTEN, 1 },
		{ "10.0.0.1:1", 0, 0 },
		{ "128.0.0.1:1", 0, 0 },
		{ "[2001:db8::1]:1", 0, 0 },
		{ "[::ffff:10.0.0.1]:1", 0, 0 },
		{ "[::]:0", VMS_ADDR_LISTEN, 0 },       /* every address */
		{ "0.0.0.0:0", VMS_ADDR_LISTEN, 0 },
		{ "7000", VMS_ADDR_LISTEN, 0 },         /* no host: every address */
		{ "127.0.0.1:0", 0, VMS_EINVAL },       /* as vms_addr_parse */
		{ "::1:7000", 0, VMS_EINVAL },
		{ "", 0, VMS_EINVAL },
		{ NULL, 0, VMS_EINVAL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = vms_addr_is_loopback(cases[i].addr, cases[i].flags);

		ck_assert_msg(rc == cases[i].want, "%s: got %d, want %d",
			      cases[i].addr ? cases[i].addr : "NULL", rc, cases[i].want);
	}
	ck_assert_int_eq(vms_addr_is_loopback("::1:7000", 0), VMS_EINVAL);
	ck_assert_str_eq(vms_last_error(), "'::1:7000': write IPv6 addresses in brackets, [::1]:PORT");
}
END_TEST

/* ---- lanes --------------------------------------------------------------------- */

/* Another session's connection arrives between lane 0 and lane 1 of a
 * session: it is refused with the reason, and the session it interrupted
 * goes through with the keys its lanes negotiated (the refusal's exporter
 * keys once overwrote lane 0's). */
START_TEST(test_stray_between_lanes)
{
	struct vms_tls_conf conf = { .psk = psk, .psk_len = VMS_KEY_LEN };
	struct vms_writer_opts wo = VMS_WRITER_OPTS_INIT;
	struct vms_device_desc d = VMS_DEVICE_DESC_INIT;
	struct vms_tls_creds *creds;
	struct vms_transport t;
	struct vms_writer *w;
	struct vms_hello h;
	struct receiver rx;
	uint8_t junk[2][VMS_KEY_LEN], buf[100000];
	char text[VMS_SESSION_MSG_MAX];
	uint32_t dev;
	int port = receiver_start(&rx), stray;

	ck_assert_int_eq(vms_tls_creds_new(&creds, &conf, 0), 0);
	vms_transport_init_fd(&t, -1);
	t.nlanes = 2;
	t.own_fds = t.session = t.keyed = true;
	t.idle_timeout_ms = TIMEOUT_MS;

	hello_init(&h, 0xa1, 2);
	t.fds[0] = tcp_connect(port);
	ck_assert_int_eq(lane_handshake(creds, t.fds[0], &h, t.ikm_c2s[0], t.ikm_s2c[0], text,
					sizeof(text)), 0);

	hello_init(&h, 0xb2, 1);
	stray = tcp_connect(port);
	ck_assert_int_eq(lane_handshake(creds, stray, &h, junk[0], junk[1], text, sizeof(text)),
			 VMS_EPROTO);
	ck_assert_str_eq(text, "another session is being received");
	close(stray);

	hello_init(&h, 0xa1, 2);
	h.lane = 1;
	t.fds[1] = tcp_connect(port);
	ck_assert_int_eq(lane_handshake(creds, t.fds[1], &h, t.ikm_c2s[1], t.ikm_s2c[1], text,
					sizeof(text)), 0);
	vms_tls_creds_free(creds);

	wo.cipher = VMS_CIPHER_AES_256_GCM;
	wo.chunk_size = 16384; /* records on both lanes */
	tu_fill(buf, sizeof(buf), 7);
	ck_assert_int_eq(vms_writer_open_transport(&w, &t, &wo), 0);
	d.name = "dev";
	ck_assert_int_eq(vms_writer_begin_device(w, &d, &dev), 0);
	ck_assert_int_eq(vms_writer_write(w, dev, buf, sizeof(buf)), 0);
	ck_assert_int_eq(vms_writer_end_device(w, dev), 0);
	ck_assert_msg(vms_writer_finish(w) == 0, "writer: %s", vms_last_error());
	vms_writer_free(w);
	receiver_end(&rx);
	ck_assert_msg(rx.err == 0, "receiver: %s", rx.msg);
	ck_assert_uint_eq(rx.data.n, sizeof(buf));
	ck_assert_mem_eq(rx.data.p, buf, sizeof(buf));
	tu_bytes_free(&rx.data);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("session");
	TCase *tc = tcase_create("addresses");

	tcase_add_test(tc, test_addr_parse_valid);
	tcase_add_test(tc, test_addr_parse_rejects);
	tcase_add_test(tc, test_addr_session_calls);
	tcase_add_test(tc, test_addr_is_loopback);
	suite_add_tcase(s, tc);
	tc = tcase_create("lanes");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_stray_between_lanes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
