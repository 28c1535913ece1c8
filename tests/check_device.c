/* SPDX-License-Identifier: MIT */
/*
 * The device layer: the migration state machine against an independently
 * derived table; the generic wrapper's walks, data rules and sticky errors;
 * VFIO v2 marshalling byte for byte and the backend's real code paths against
 * an emulated kernel; the v1 migration region against a file-backed
 * emulation; the simulated device's data_fd semantics and image validation;
 * mem and fd devices. Exact error codes everywhere.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "device/device.h"
#include "device/sim.h"
#include "base/error.h"
#include "device/vfio.h"

#define S_E VMS_DEV_ERROR
#define S_S VMS_DEV_STOP
#define S_R VMS_DEV_RUNNING
#define S_SC VMS_DEV_STOP_COPY
#define S_RS VMS_DEV_RESUMING
#define S_RP VMS_DEV_RUNNING_P2P
#define S_PC VMS_DEV_PRE_COPY
#define S_PP VMS_DEV_PRE_COPY_P2P

#define C_SC VMS_DEVCAP_STOP_COPY
#define C_P2P VMS_DEVCAP_P2P
#define C_PRE VMS_DEVCAP_PRE_COPY

static bool contains(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

#define ck_assert_msg_has(needle)                                                      \
	ck_assert_msg(contains(vms_last_error(), needle), "message '%s' lacks '%s'",   \
		      vms_last_error(), needle)

/* ===========================================================================
 * 1. vms_mig_next_state()
 *
 * Expected values for every (caps, from, to). Derived from Linux
 * drivers/vfio/vfio_main.c vfio_mig_get_next_state() (PRE_COPY arcs since
 * Linux 6.2; table as in mainline, torvalds/linux 037dd1308c6d): its
 * 8x8 table with the rule that a step into a state the device does not
 * support is skipped over; cross-checked offline against a breadth-first
 * search over the arcs that the kernel's comment requires a driver to
 * implement (test_next_state_bfs below repeats that check here): the two
 * derivations agree on all 512 triples and no pair has two shortest paths.
 * ======================================================================== */

static const uint8_t expect_sc[8][8] = {
	/* to:            E     S     R     SC    RS    RP    PC    PP */
	/* ERROR     */ { S_E, S_E, S_E, S_E, S_E, S_E, S_E, S_E },
	/* STOP      */ { S_E, S_S, S_R, S_SC, S_RS, S_E, S_E, S_E },
	/* RUNNING   */ { S_E, S_S, S_R, S_S, S_S, S_E, S_E, S_E },
	/* STOP_COPY */ { S_E, S_S, S_S, S_SC, S_S, S_E, S_E, S_E },
	/* RESUMING  */ { S_E, S_S, S_S, S_S, S_RS, S_E, S_E, S_E },
	/* RUN_P2P   */ { S_E, S_E, S_E, S_E, S_E, S_E, S_E, S_E },
	/* PRE_COPY  */ { S_E, S_E, S_E, S_E, S_E, S_E, S_E, S_E },
	/* PRE_P2P   */ { S_E, S_E, S_E, S_E, S_E, S_E, S_E, S_E },
};

static const uint8_t expect_sc_p2p[8][8] = {
	{ S_E, S_E, S_E, S_E, S_E, S_E, S_E, S_E },
	{ S_E, S_S, S_RP, S_SC, S_RS, S_RP, S_E, S_E },
	{ S_E, S_RP, S_R, S_RP, S_RP, S_RP, S_E, S_E },
	{ S_E, S_S, S_S, S_SC, S_S, S_S, S_E, S_E },
	{ S_E, S_S, S_S, S_S, S_RS, S_S, S_E, S_E },
	{ S_E, S_S, S_R, S_S, S_S, S_RP, S_E, S_E },
	{ S_E, S_E, S_E, S_E, S_E, S_E, S_E, S_E },
	{ S_E, S_E, S_E, S_E, S_E, S_E, S_E, S_E },
};

static const uint8_t expect_sc_pre[8][8] = {
	{ S_E, S_E, S_E, S_E, S_E, S_E, S_E, S_E },
	{ S_E, S_S, S_R, S_SC, S_RS, S_E, S_R, S_E },
	{ S_E, S_S, S_R, S_S, S_S, S_E, S_PC, S_E },
	{ S_E, S_S, S_S, S_SC, S_S, S_E, S_E, S_E },
	{ S_E, S_S, S_S, S_S, S_RS, S_E, S_S, S_E },
	{ S_E, S_E, S_E, S_E, S_E, S_E, S_E, S_E },
	{ S_E, S_R, S_R, S_SC, S_R, S_E, S_PC, S_E },
	{ S_E, S_E, S_E, S_E, S_E, S_E, S_E, S_E },
};

static const uint8_t expect_all[8][8] = {
	{ S_E, S_E, S_E, S_E, S_E, S_E, S_E, S_E },
	{ S_E, S_S, S_RP, S_SC, S_RS, S_RP, S_RP, S_RP },
	{ S_E, S_RP, S_R, S_RP, S_RP, S_RP, S_PC, S_RP },
	{ S_E, S_S, S_S, S_SC, S_S, S_S, S_E, S_E },
	{ S_E, S_S, S_S, S_S, S_RS, S_S, S_S, S_S },
	{ S_E, S_S, S_R, S_S, S_S, S_RP, S_R, S_PP },
	{ S_E, S_R, S_R, S_PP, S_R, S_R, S_PC, S_PP },
	{ S_E, S_RP, S_RP, S_SC, S_RP, S_RP, S_PC, S_PP },
};

static const uint8_t (*expect_for(uint32_t caps))[8]
{
	if (!(caps & C_SC))
		return NULL;
	switch (caps & (C_P2P | C_PRE)) {
	case 0: return expect_sc;
	case C_P2P: return expect_sc_p2p;
	case C_PRE: return expect_sc_pre;
	default: return expect_all;
	}
}

START_TEST(test_next_state_table)
{
	/* Every caps value 0..7, plus unknown high bits, which must not matter. */
	static const uint32_t extra[] = { 0, 0x8, 0x100, 0x80000000u };

	for (unsigned x = 0; x < sizeof(extra) / sizeof(extra[0]); x++) {
		for (uint32_t caps = 0; caps < 8; caps++) {
			const uint8_t(*e)[8] = expect_for(caps);

			for (uint32_t from = 0; from < 8; from++) {
				for (uint32_t to = 0; to < 8; to++) {
					uint32_t want = e ? e[from][to] : S_E;
					uint32_t got = vms_mig_next_state(caps | extra[x], from, to);

					ck_assert_msg(got == want,
						      "caps 0x%x: %s -> %s: got %s, want %s",
						      caps | extra[x], vms_dev_state_name(from),
						      vms_dev_state_name(to), vms_dev_state_name(got),
						      vms_dev_state_name(want));
				}
			}
		}
	}
	/* Out-of-range states have no path. */
	ck_assert_uint_eq(vms_mig_next_state(7, 8, S_R), S_E);
	ck_assert_uint_eq(vms_mig_next_state(7, S_R, 8), S_E);
	ck_assert_uint_eq(vms_mig_next_state(7, 0xffffffffu, 0xffffffffu), S_E);
	/* Even with every capability bit set, ERROR is never a step. */
	ck_assert_uint_eq(vms_mig_next_state(~0u, S_SC, S_PC), S_E);
	ck_assert_uint_eq(vms_mig_next_state(~0u, S_R, S_E), S_E);
	ck_assert_uint_eq(vms_mig_next_state(~0u, S_E, S_R), S_E);
}
END_TEST

/* The arcs drivers implement, from the comment above vfio_from_fsm_table. */
static bool arc_legal(uint32_t caps, uint32_t a, uint32_t b)
{
	bool p2p = caps & C_P2P, pre = caps & C_PRE;

#define ARC(x, y) (a == (x) && b == (y))
	if (!(caps & C_SC))
		return false;
	if (ARC(S_RS, S_S) || ARC(S_S, S_RS) || ARC(S_S, S_SC) || ARC(S_SC, S_S))
		return true;
	if (p2p && (ARC(S_R, S_RP) || ARC(S_RP, S_R) || ARC(S_RP, S_S) || ARC(S_S, S_RP)))
		return true;
	if (!p2p && (ARC(S_R, S_S) || ARC(S_S, S_R)))
		return true;
	if (pre && !p2p && (ARC(S_R, S_PC) || ARC(S_PC, S_R) || ARC(S_PC, S_SC)))
		return true;
	if (pre && p2p &&
	    (ARC(S_PC, S_R) || ARC(S_PC, S_PP) || ARC(S_PP, S_PC) || ARC(S_PP, S_RP) ||
	     ARC(S_PP, S_SC) || ARC(S_R, S_PC) || ARC(S_RP, S_PP)))
		return true;
#undef ARC
	return false;
}

static bool state_supported(uint32_t caps, uint32_t s)
{
	if (!(caps & C_SC) || s == S_E || s > 7)
		return false;
	if (s == S_RP)
		return caps & C_P2P;
	if (s == S_PC)
		return caps & C_PRE;
	if (s == S_PP)
		return (caps & C_P2P) && (caps & C_PRE);
	return true;
}

static bool saving(uint32_t s)
{
	return s == S_PC || s == S_PP || s == S_SC;
}

/* uAPI rule: shortest path; saving-group states are never interior, except
 * on a path that stays inside the group (which never re-enters it). */
static bool path_ok(const uint32_t *p, int n)
{
	if (saving(p[0]) && saving(p[n - 1])) {
		for (int i = 0; i < n; i++) {
			if (!saving(p[i]))
				return false;
		}
		return true;
	}
	for (int i = 1; i < n - 1; i++) {
		if (saving(p[i]))
			return false;
	}
	return true;
}

struct bfs {
	uint32_t caps, target;
	int best;          /* arcs on the shortest valid path, -1 = none */
	unsigned firsts;   /* bit mask of first steps of the shortest paths */
};

static void dfs(struct bfs *b, uint32_t *path, int n)
{
	if (path[n - 1] == b->target) {
		if (path_ok(path, n)) {
			if (b->best < 0 || n - 1 < b->best) {
				b->best = n - 1;
				b->firsts = 0;
			}
			if (n - 1 == b->best)
				b->firsts |= 1u << path[1];
		}
		return;
	}
	if (n >= 8) /* a simple path visits each of the 7 states once */
		return;
	for (uint32_t s = 1; s < 8; s++) {
		bool seen = false;

		for (int i = 0; i < n; i++)
			seen |= path[i] == s;
		if (!seen && arc_legal(b->caps, path[n - 1], s)) {
			path[n] = s;
			dfs(b, path, n + 1);
		}
	}
}

START_TEST(test_next_state_bfs)
{
	int ties = 0;

	for (uint32_t caps = 0; caps < 8; caps++) {
		for (uint32_t from = 0; from < 8; from++) {
			for (uint32_t to = 0; to < 8; to++) {
				struct bfs b = { .caps = caps, .target = to, .best = -1 };
				uint32_t path[9] = { from }, got, cur;
				int steps = 0;

				got = vms_mig_next_state(caps, from, to);
				if (!state_supported(caps, from) || !state_supported(caps, to)) {
					ck_assert_uint_eq(got, S_E);
					continue;
				}
				if (from == to) {
					ck_assert_uint_eq(got, from);
					continue;
				}
				dfs(&b, path, 1);
				if (b.best < 0) {
					ck_assert_msg(got == S_E, "caps %u %s -> %s: no path, got %s",
						      caps, vms_dev_state_name(from),
						      vms_dev_state_name(to), vms_dev_state_name(got));
					continue;
				}
				ties += __builtin_popcount(b.firsts) > 1;
				ck_assert_msg(b.firsts & (1u << got), "caps %u %s -> %s: %s is not "
					      "the first step of a shortest path", caps,
					      vms_dev_state_name(from), vms_dev_state_name(to),
					      vms_dev_state_name(got));
				/* Following the function reaches the target along legal arcs in
				 * the shortest number of steps. */
				for (cur = from; cur != to && steps <= 8; steps++) {
					uint32_t next = vms_mig_next_state(caps, cur, to);

					ck_assert_msg(arc_legal(caps, cur, next), "caps %u: %s -> %s "
						      "is not an arc", caps, vms_dev_state_name(cur),
						      vms_dev_state_name(next));
					cur = next;
				}
				ck_assert_int_eq(steps, b.best);
			}
		}
	}
	ck_assert_int_eq(ties, 0);
}
END_TEST

START_TEST(test_stop_copy_to_precopy_illegal)
{
	for (uint32_t caps = 0; caps < 8; caps++) {
		ck_assert_uint_eq(vms_mig_next_state(caps, S_SC, S_PC), S_E);
		ck_assert_uint_eq(vms_mig_next_state(caps, S_SC, S_PP), S_E);
	}
	/* ... while the reverse is the normal switchover. */
	ck_assert_uint_eq(vms_mig_next_state(C_SC | C_PRE, S_PC, S_SC), S_SC);
	ck_assert_uint_eq(vms_mig_next_state(C_SC | C_P2P | C_PRE, S_PC, S_SC), S_PP);
}
END_TEST

START_TEST(test_state_names)
{
	static const char *const names[] = { "ERROR", "STOP", "RUNNING", "STOP_COPY",
					     "RESUMING", "RUNNING_P2P", "PRE_COPY",
					     "PRE_COPY_P2P" };

	for (uint32_t s = 0; s < 8; s++)
		ck_assert_str_eq(vms_dev_state_name(s), names[s]);
	ck_assert_ptr_null(vms_dev_state_name(8));
	ck_assert_ptr_null(vms_dev_state_name(0xffffffffu));
}
END_TEST

/* ===========================================================================
 * 2. The generic wrapper, through a recording custom backend.
 * ======================================================================== */

struct rec {
	uint32_t caps;
	uint32_t arcs[32];
	int narcs;
	int fail_arc_at;        /* 1-based arc number that fails, 0 = none */
	int read_calls, write_calls;
	long read_ret;          /* 0 = serve data */
	int read_fail_at;       /* read call number that fails */
	size_t write_max;       /* max bytes per write call */
	uint8_t data[256];
	size_t data_len, data_pos;
	uint8_t got[3500];
	size_t got_len;
	int closed;
	int resets;
	int precopy_ret;        /* what precopy_info returns (flags or error) */
};

static int rec_caps(void *impl, uint32_t *caps)
{
	*caps = ((struct rec *)impl)->caps;
	return 0;
}

static int rec_set_state(void *impl, uint32_t state)
{
	struct rec *r = impl;

	if (r->narcs < 32)
		r->arcs[r->narcs] = state;
	r->narcs++;
	if (r->fail_arc_at && r->narcs == r->fail_arc_at)
		return VMS_EDEVIO;
	return 0;
}

static int rec_precopy_info(void *impl, uint64_t *initial, uint64_t *dirty)
{
	*initial = 11;
	*dirty = 22;
	return ((struct rec *)impl)->precopy_ret;
}

static long rec_read(void *impl, void *buf, size_t len)
{
	struct rec *r = impl;
	size_t n;

	r->read_calls++;
	if (r->read_fail_at && r->read_calls == r->read_fail_at)
		return VMS_EDEVIO;
	if (r->read_ret)
		return r->read_ret;
	n = r->data_len - r->data_pos;
	if (n > len)
		n = len;
	memcpy(buf, r->data + r->data_pos, n);
	r->data_pos += n;
	return (long)n;
}

static long rec_write(void *impl, const void *buf, size_t len)
{
	struct rec *r = impl;
	size_t n = len < r->write_max ? len : r->write_max;

	r->write_calls++;
	if (n > sizeof(r->got) - r->got_len)
		return VMS_EDEVIO;
	memcpy(r->got + r->got_len, buf, n);
	r->got_len += n;
	return (long)n;
}

static int rec_reset(void *impl)
{
	((struct rec *)impl)->resets++;
	return 0;
}

static void rec_close(void *impl)
{
	((struct rec *)impl)->closed++;
}

static const struct vms_device_ops rec_ops = {
	.size = sizeof(struct vms_device_ops),
	.caps = rec_caps,
	.set_state = rec_set_state,
	.precopy_info = rec_precopy_info,
	.read = rec_read,
	.write = rec_write,
	.reset = rec_reset,
	.close = rec_close,
};

static struct vms_device *rec_dev(struct rec *r, uint32_t caps)
{
	struct vms_device *d;

	memset(r, 0, sizeof(*r));
	r->caps = caps;
	r->write_max = 1u << 20;
	ck_assert_int_eq(vms_device_new(&d, "rec0", VMS_DEVKIND_VMM, &rec_ops, r), 0);
	return d;
}

static uint32_t dstate(const struct vms_device *d)
{
	uint32_t s = 99;

	ck_assert_int_eq(vms_device_state(d, &s), 0);
	return s;
}

static void expect_arcs(const struct rec *r, const uint32_t *want, int n)
{
	ck_assert_int_eq(r->narcs, n);
	for (int i = 0; i < n; i++)
		ck_assert_msg(r->arcs[i] == want[i], "arc %d: %s, want %s", i,
			      vms_dev_state_name(r->arcs[i]), vms_dev_state_name(want[i]));
}

START_TEST(test_walks)
{
	struct rec r;
	struct vms_device *d;

	/* Without P2P, RUNNING -> STOP_COPY goes through STOP. */
	d = rec_dev(&r, C_SC);
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	expect_arcs(&r, (const uint32_t[]){ S_S, S_SC }, 2);
	ck_assert_uint_eq(dstate(d), S_SC);
	/* STOP_COPY -> RESUMING: STOP, RESUMING. RESUMING -> RUNNING: STOP, RUNNING. */
	r.narcs = 0;
	ck_assert_int_eq(vms_device_set_state(d, S_RS), 0);
	expect_arcs(&r, (const uint32_t[]){ S_S, S_RS }, 2);
	r.narcs = 0;
	ck_assert_int_eq(vms_device_set_state(d, S_R), 0);
	expect_arcs(&r, (const uint32_t[]){ S_S, S_R }, 2);
	/* Already there: no arc. */
	r.narcs = 0;
	ck_assert_int_eq(vms_device_set_state(d, S_R), 0);
	ck_assert_int_eq(r.narcs, 0);
	/* Unsupported optional states are unreachable, with no arc issued. */
	ck_assert_int_eq(vms_device_set_state(d, S_PC), VMS_ESTATE);
	ck_assert_int_eq(vms_device_set_state(d, S_RP), VMS_ESTATE);
	ck_assert_int_eq(r.narcs, 0);
	ck_assert_msg_has("rec0");
	vms_device_free(d);
	ck_assert_int_eq(r.closed, 1);

	/* With P2P and PRE_COPY: RUNNING -> STOP_COPY is RUNNING_P2P, STOP, STOP_COPY. */
	d = rec_dev(&r, C_SC | C_P2P | C_PRE);
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	expect_arcs(&r, (const uint32_t[]){ S_RP, S_S, S_SC }, 3);
	/* STOP_COPY -> PRE_COPY is refused before any arc. */
	r.narcs = 0;
	ck_assert_int_eq(vms_device_set_state(d, S_PC), VMS_ESTATE);
	ck_assert_int_eq(vms_device_set_state(d, S_PP), VMS_ESTATE);
	ck_assert_int_eq(r.narcs, 0);
	ck_assert_msg_has("STOP_COPY -> PRE_COPY_P2P");
	ck_assert_uint_eq(dstate(d), S_SC);
	/* Back to RUNNING, then the precopy switchover path. */
	ck_assert_int_eq(vms_device_set_state(d, S_R), 0);
	r.narcs = 0;
	ck_assert_int_eq(vms_device_set_state(d, S_PC), 0);
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	expect_arcs(&r, (const uint32_t[]){ S_PC, S_PP, S_SC }, 3);
	/* RESUMING -> PRE_COPY: STOP, RUNNING_P2P, RUNNING, PRE_COPY. */
	ck_assert_int_eq(vms_device_set_state(d, S_RS), 0);
	r.narcs = 0;
	ck_assert_int_eq(vms_device_set_state(d, S_PC), 0);
	expect_arcs(&r, (const uint32_t[]){ S_S, S_RP, S_R, S_PC }, 4);
	/* ERROR and out-of-range targets are arguments errors. */
	ck_assert_int_eq(vms_device_set_state(d, S_E), VMS_EINVAL);
	ck_assert_int_eq(vms_device_set_state(d, 8), VMS_EINVAL);
	vms_device_free(d);
}
END_TEST

START_TEST(test_failed_arc)
{
	struct rec r;
	struct vms_device *d = rec_dev(&r, C_SC);
	uint8_t b[8];

	/* The second arc of RUNNING -> STOP -> STOP_COPY fails; a backend that
	 * cannot tell its state leaves the device in ERROR. */
	r.fail_arc_at = 2;
	ck_assert_int_eq(vms_device_set_state(d, S_SC), VMS_EDEVIO);
	ck_assert_msg_has("rec0");
	ck_assert_msg_has("STOP -> STOP_COPY");
	ck_assert_uint_eq(dstate(d), S_E);
	ck_assert_int_eq(vms_device_set_state(d, S_R), VMS_EDEVIO);
	ck_assert_msg_has("ERROR");
	ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), VMS_EDEVIO);
	ck_assert_int_eq(vms_device_write(d, b, sizeof(b)), VMS_EDEVIO);
	ck_assert_int_eq(r.narcs, 2);
	/* Reset recovers: RUNNING. */
	ck_assert_int_eq(vms_device_reset(d), 0);
	ck_assert_int_eq(r.resets, 1);
	ck_assert_uint_eq(dstate(d), S_R);
	r.fail_arc_at = 0;
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	vms_device_free(d);
}
END_TEST

START_TEST(test_data_rules)
{
	struct rec r;
	struct vms_device *d = rec_dev(&r, C_SC | C_PRE);
	uint8_t b[64];
	uint64_t i = 0, y = 0;

	memcpy(r.data, "0123456789", 10);
	r.data_len = 10;
	/* No data outside the data states. */
	ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), VMS_ESTATE);
	ck_assert_int_eq(vms_device_write(d, b, sizeof(b)), VMS_ESTATE);
	ck_assert_int_eq(vms_device_precopy_info(d, &i, &y), VMS_ESTATE);
	ck_assert_int_eq(vms_device_read(d, b, 0), VMS_EINVAL);
	ck_assert_int_eq(vms_device_read(d, NULL, 1), VMS_EINVAL);
	ck_assert_int_eq(r.read_calls, 0);

	/* PRE_COPY: data, then "nothing now" (a backend's 0 is that too). */
	ck_assert_int_eq(vms_device_set_state(d, S_PC), 0);
	ck_assert_int_eq(vms_device_precopy_info(d, &i, &y), 0);
	ck_assert_uint_eq(i, 11);
	ck_assert_uint_eq(y, 22);
	/* A custom backend's precopy_info reports flags by returning them:
	 * known bits only; the flag-less call drops them. */
	{
		struct vms_precopy_info pi = VMS_PRECOPY_INFO_INIT;

		ck_assert_int_eq(vms_device_precopy_info2(d, &pi), 0);
		ck_assert_uint_eq(pi.flags, 0);
		ck_assert_uint_eq(pi.initial_bytes, 11);
		ck_assert_uint_eq(pi.dirty_bytes, 22);
		r.precopy_ret = (int)(VMS_PRECOPY_REINIT | 0x100);
		ck_assert_int_eq(vms_device_precopy_info2(d, &pi), 0);
		ck_assert_uint_eq(pi.flags, VMS_PRECOPY_REINIT);
		r.precopy_ret = 0x100;
		ck_assert_int_eq(vms_device_precopy_info2(d, &pi), 0);
		ck_assert_uint_eq(pi.flags, 0);
		r.precopy_ret = (int)VMS_PRECOPY_REINIT;
		ck_assert_int_eq(vms_device_precopy_info(d, &i, &y), 0);
		ck_assert_int_eq(vms_device_precopy_info2(NULL, &pi), VMS_EINVAL);
		ck_assert_int_eq(vms_device_precopy_info2(d, NULL), VMS_EINVAL);
		pi.size = sizeof(pi) - 1;
		ck_assert_int_eq(vms_device_precopy_info2(d, &pi), VMS_EINVAL);
		ck_assert_msg_has("size field 23 below 24");
		r.precopy_ret = 0;
	}
	ck_assert_int_eq(vms_device_read(d, b, 4), 4);
	ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), 6);
	ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), VMS_EAGAIN_DEV);
	r.read_ret = VMS_EAGAIN_DEV;
	ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), VMS_EAGAIN_DEV);
	ck_assert_int_eq(vms_device_write(d, b, 1), VMS_ESTATE);
	/* STOP_COPY: 0 is the end and stays the end without asking again. */
	r.read_ret = 0;
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	ck_assert_int_eq(vms_device_precopy_info(d, &i, &y), VMS_ESTATE);
	ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), 0);
	{
		int calls = r.read_calls;

		ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), 0);
		ck_assert_int_eq(r.read_calls, calls);
	}
	/* A backend that says "nothing now" in STOP_COPY is broken: sticky. */
	ck_assert_int_eq(vms_device_set_state(d, S_R), 0);
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	r.read_ret = VMS_EAGAIN_DEV;
	ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), VMS_EDEVIO);
	ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), VMS_EDEVIO);
	/* A backend that returns more than asked for: sticky device error. */
	ck_assert_int_eq(vms_device_set_state(d, S_R), 0);
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	r.read_ret = 100;
	ck_assert_int_eq(vms_device_read(d, b, 10), VMS_EDEVIO);
	ck_assert_msg_has("100 bytes for a 10-byte read");
	vms_device_free(d);
}
END_TEST

START_TEST(test_sticky_read)
{
	struct rec r;
	struct vms_device *d = rec_dev(&r, C_SC | C_PRE);
	uint8_t b[8];
	char msg[512];
	int calls;

	memset(r.data, 'x', 100);
	r.data_len = 100;
	r.read_fail_at = 2;
	ck_assert_int_eq(vms_device_set_state(d, S_PC), 0);
	ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), 8);
	ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), VMS_EDEVIO);
	snprintf(msg, sizeof(msg), "%s", vms_last_error());
	ck_assert_msg(contains(msg, "rec0"), "%s", msg);
	calls = r.read_calls;
	/* Every data call of the session repeats the error without the backend. */
	for (int k = 0; k < 3; k++) {
		ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), VMS_EDEVIO);
		ck_assert_str_eq(vms_last_error(), msg);
	}
	{
		uint64_t i, y;

		ck_assert_int_eq(vms_device_precopy_info(d, &i, &y), VMS_EDEVIO);
	}
	ck_assert_int_eq(r.read_calls, calls);
	/* The session cannot continue into STOP_COPY... */
	r.narcs = 0;
	ck_assert_int_eq(vms_device_set_state(d, S_SC), VMS_EDEVIO);
	ck_assert_int_eq(r.narcs, 0);
	ck_assert_uint_eq(dstate(d), S_PC);
	/* ... but may be left (the VMM's abort path), which clears it. */
	ck_assert_int_eq(vms_device_set_state(d, S_R), 0);
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	ck_assert_int_gt(vms_device_read(d, b, sizeof(b)), 0);
	vms_device_free(d);
}
END_TEST

START_TEST(test_write_rules)
{
	struct rec r;
	struct vms_device *d = rec_dev(&r, C_SC);
	uint8_t src[1000];

	for (size_t k = 0; k < sizeof(src); k++)
		src[k] = (uint8_t)(k * 7 + 3);
	ck_assert_int_eq(vms_device_set_state(d, S_RS), 0);
	/* Short writes are finished. */
	r.write_max = 3;
	ck_assert_int_eq(vms_device_write(d, src, sizeof(src)), (long)sizeof(src));
	ck_assert_int_eq(r.write_calls, (int)((sizeof(src) + 2) / 3));
	ck_assert_int_eq(r.got_len, sizeof(src));
	ck_assert_mem_eq(r.got, src, sizeof(src));
	ck_assert_int_eq(vms_device_write(d, src, 0), 0);
	/* A failing write is sticky, and in RESUMING only reset helps. */
	r.write_max = 1u << 20;
	ck_assert_int_eq(vms_device_write(d, src, sizeof(src)), (long)sizeof(src));
	ck_assert_int_eq(vms_device_write(d, src, sizeof(src)), (long)sizeof(src));
	ck_assert_int_eq(vms_device_write(d, src, sizeof(src)), VMS_EDEVIO); /* full */
	ck_assert_int_eq(vms_device_write(d, src, 1), VMS_EDEVIO);
	r.narcs = 0;
	ck_assert_int_eq(vms_device_set_state(d, S_S), VMS_EDEVIO);
	ck_assert_int_eq(vms_device_set_state(d, S_R), VMS_EDEVIO);
	ck_assert_int_eq(r.narcs, 0);
	ck_assert_uint_eq(dstate(d), S_RS);
	ck_assert_int_eq(vms_device_reset(d), 0);
	ck_assert_uint_eq(dstate(d), S_R);
	vms_device_free(d);
}
END_TEST

static int null_set_state(void *impl, uint32_t s)
{
	(void)impl;
	(void)s;
	return 0;
}

START_TEST(test_new_args)
{
	struct vms_device_ops ops = { .size = sizeof(ops), .set_state = null_set_state };
	struct vms_device *d = (struct vms_device *)&ops;
	char name[300];
	uint32_t caps = 0;
	uint64_t n;
	uint8_t b[4];

	ck_assert_int_eq(vms_device_new(&d, NULL, 0, &ops, NULL), VMS_EINVAL);
	ck_assert_ptr_null(d);
	ck_assert_int_eq(vms_device_new(&d, "", 0, &ops, NULL), VMS_EINVAL);
	memset(name, 'n', sizeof(name));
	name[256] = '\0';
	ck_assert_int_eq(vms_device_new(&d, name, 0, &ops, NULL), VMS_EINVAL);
	name[255] = '\0';
	ck_assert_int_eq(vms_device_new(&d, name, 0, &ops, NULL), 0);
	ck_assert_str_eq(vms_device_name(d), name);
	vms_device_free(d);
	ck_assert_int_eq(vms_device_new(&d, "x", 0, NULL, NULL), VMS_EINVAL);
	ck_assert_int_eq(vms_device_new(&d, "x", 7, &ops, NULL), VMS_EINVAL);
	/* ops->size: exactly this header's struct (bounds and one past) */
	ops.size = 8;
	ck_assert_int_eq(vms_device_new(&d, "x", 0, &ops, NULL), VMS_EINVAL);
	ops.size = 0;
	ck_assert_int_eq(vms_device_new(&d, "x", 0, &ops, NULL), VMS_EINVAL);
	ops.size = sizeof(ops) - 1;
	ck_assert_int_eq(vms_device_new(&d, "x", 0, &ops, NULL), VMS_EINVAL);
	ck_assert_msg_has("device 'x': ops: size field");
	ops.size = sizeof(ops) + 1;
	ck_assert_int_eq(vms_device_new(&d, "x", 0, &ops, NULL), VMS_EINVAL);
	ck_assert_ptr_null(d);
	ops.size = sizeof(ops);
	/* kind: 0 .. VMS_DEVKIND_VMM */
	ck_assert_int_eq(vms_device_new(&d, "x", VMS_DEVKIND_VMM, &ops, NULL), 0);
	vms_device_free(d);
	ck_assert_int_eq(vms_device_new(&d, "x", VMS_DEVKIND_VMM + 1, &ops, NULL), VMS_EINVAL);
	ck_assert_msg_has("unknown kind 3");
	ops.set_state = NULL;
	ck_assert_int_eq(vms_device_new(&d, "x", 0, &ops, NULL), VMS_EINVAL);
	ops.set_state = null_set_state;
	ck_assert_int_eq(vms_device_new(NULL, "x", 0, &ops, NULL), VMS_EINVAL);

	/* Optional ops: caps defaults to STOP_COPY, the rest are unsupported. */
	ck_assert_int_eq(vms_device_new(&d, "minimal", VMS_DEVKIND_BLOB, &ops, NULL), 0);
	ck_assert_int_eq(vms_device_caps(d, &caps), 0);
	ck_assert_uint_eq(caps, C_SC);
	ck_assert_int_eq(vms_device_stop_copy_size(d, &n), VMS_EUNSUPPORTED);
	ck_assert_int_eq(vms_device_reset(d), VMS_EUNSUPPORTED);
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), VMS_EUNSUPPORTED);
	ck_assert_msg_has("minimal");
	vms_device_free(d);
	vms_device_free(NULL);
	ck_assert_ptr_null(vms_device_name(NULL));
	ck_assert_int_eq(vms_device_set_state(NULL, S_R), VMS_EINVAL);
	ck_assert_int_eq(vms_device_read(NULL, b, 1), VMS_EINVAL);
	ck_assert_ptr_null(vms_device_mem(NULL, NULL));
}
END_TEST

/* ===========================================================================
 * 3. VFIO v2 marshalling and constants.
 * ======================================================================== */

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

START_TEST(test_vfio_marshal)
{
	struct vms_vfio_feature f;
	uint8_t want[24];
	uint32_t st;
	int32_t fd;

	/* x86/arm64 are little-endian: the kernel reads native byte order. */
	ck_assert_int_eq(__BYTE_ORDER__, __ORDER_LITTLE_ENDIAN__);

	/* GET MIGRATION: argsz 16, flags 1 | GET, __u64 flags. */
	ck_assert_uint_eq(vms_vfio_build_migration_get(&f), 16);
	memset(want, 0, sizeof(want));
	le32(want, 16);
	le32(want + 4, 0x00010001);
	ck_assert_mem_eq(f.words, want, 16);

	/* SET MIG_DEVICE_STATE STOP_COPY: flags 2 | SET, {3, -1}. */
	ck_assert_uint_eq(vms_vfio_build_mig_state(&f, 1, S_SC), 16);
	memset(want, 0, sizeof(want));
	le32(want, 16);
	le32(want + 4, 0x00020002);
	le32(want + 8, 3);
	le32(want + 12, 0xffffffffu);
	ck_assert_mem_eq(f.words, want, 16);
	vms_vfio_parse_mig_state(&f, &st, &fd);
	ck_assert_uint_eq(st, 3);
	ck_assert_int_eq(fd, -1);

	/* GET MIG_DEVICE_STATE: flags 2 | GET, {0, -1}. */
	ck_assert_uint_eq(vms_vfio_build_mig_state(&f, 0, S_SC), 16);
	le32(want + 4, 0x00010002);
	le32(want + 8, 0);
	ck_assert_mem_eq(f.words, want, 16);

	/* SET PRE_COPY_P2P = 7. */
	vms_vfio_build_mig_state(&f, 1, S_PP);
	ck_assert_uint_eq(((const uint8_t *)f.words)[8], 7);

	/* GET MIG_DATA_SIZE: flags 9 | GET. */
	ck_assert_uint_eq(vms_vfio_build_data_size_get(&f), 16);
	memset(want, 0, sizeof(want));
	le32(want, 16);
	le32(want + 4, 0x00010009);
	ck_assert_mem_eq(f.words, want, 16);
	((uint8_t *)f.words)[8] = 0x39;
	((uint8_t *)f.words)[9] = 0x30;
	ck_assert_uint_eq(vms_vfio_feature_u64(&f), 12345);

	/* PROBE: argsz 8, feature | PROBE | GET/SET, nothing else. */
	ck_assert_uint_eq(vms_vfio_build_probe(&f, 2, VFIO_DEVICE_FEATURE_GET |
					      VFIO_DEVICE_FEATURE_SET | 0x1234), 8);
	memset(want, 0, sizeof(want));
	le32(want, 8);
	le32(want + 4, 0x00070002);
	ck_assert_mem_eq(f.words, want, 24);
	vms_vfio_build_probe(&f, 9, 0);
	le32(want + 4, 0x00040009);
	ck_assert_mem_eq(f.words, want, 24);

	/* The numbers VFIO.md lists. */
	ck_assert_uint_eq(VFIO_DEVICE_FEATURE, 0x3B75);
	ck_assert_uint_eq(VFIO_DEVICE_RESET, 0x3B6F);
	ck_assert_uint_eq(VFIO_MIG_GET_PRECOPY_INFO, 0x3B79);
	ck_assert_uint_eq(VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, 9);
	ck_assert_uint_eq(VFIO_MIGRATION_PRE_COPY, 4);
}
END_TEST

START_TEST(test_vfio_structs)
{
	struct vms_vfio_precopy_info info;

	ck_assert_uint_eq(sizeof(struct vms_vfio_precopy_info), 24);
	vms_vfio_precopy_info_init(&info);
	ck_assert_uint_eq(info.argsz, 24);
	ck_assert_uint_eq(info.flags, 0);
	ck_assert_uint_eq(info.initial_bytes, 0);
	ck_assert_uint_eq(info.dirty_bytes, 0);
	ck_assert_uint_eq(sizeof(struct vfio_device_feature), 8);
	ck_assert_uint_eq(sizeof(struct vfio_device_feature_mig_state), 8);
	ck_assert_uint_eq(sizeof(struct vfio_device_feature_migration), 8);
#ifdef VFIO_DEVICE_STATE_V1_RUNNING
	ck_assert_uint_eq(sizeof(struct vfio_device_migration_info), 32);
#endif
	/* caps: known bits only. */
	ck_assert_uint_eq(vms_vfio_caps_from_flags(0xfffffffffull), 7);
	ck_assert_uint_eq(vms_vfio_caps_from_flags(1), C_SC);
	ck_assert_uint_eq(vms_vfio_caps_from_flags(5), C_SC | C_PRE);
}
END_TEST

START_TEST(test_vfio_read_errno)
{
	ck_assert_int_eq(vms_vfio_read_errno_class(EINTR, S_PC), VMS_VFIO_R_RETRY);
	ck_assert_int_eq(vms_vfio_read_errno_class(EINTR, S_SC), VMS_VFIO_R_RETRY);
	ck_assert_int_eq(vms_vfio_read_errno_class(ENOMSG, S_PC), VMS_VFIO_R_NODATA);
	ck_assert_int_eq(vms_vfio_read_errno_class(ENOMSG, S_PP), VMS_VFIO_R_NODATA);
	ck_assert_int_eq(vms_vfio_read_errno_class(EAGAIN, S_PC), VMS_VFIO_R_NODATA);
	ck_assert_int_eq(vms_vfio_read_errno_class(ENOMSG, S_SC), VMS_VFIO_R_ERROR);
	ck_assert_int_eq(vms_vfio_read_errno_class(EAGAIN, S_SC), VMS_VFIO_R_WAIT);
	ck_assert_int_eq(vms_vfio_read_errno_class(ENODEV, S_PC), VMS_VFIO_R_ERROR);
	ck_assert_int_eq(vms_vfio_read_errno_class(EIO, S_SC), VMS_VFIO_R_ERROR);
	ck_assert_str_eq(vms_errno_name(ENOTTY), "ENOTTY");
	ck_assert_str_eq(vms_errno_name(ENOMSG), "ENOMSG");
	ck_assert_ptr_null(vms_errno_name(100000));
}
END_TEST

START_TEST(test_v1_bits)
{
	static const struct { uint32_t state, bits; } map[] = {
		{ S_S, 0 }, { S_R, 1 }, { S_PC, 3 }, { S_SC, 2 }, { S_RS, 4 },
	};
	uint32_t bits;

	for (unsigned i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		ck_assert_int_eq(vms_v1_bits_from_state(map[i].state, &bits), 0);
		ck_assert_uint_eq(bits, map[i].bits);
		ck_assert_uint_eq(vms_v1_state_from_bits(map[i].bits), map[i].state);
		/* reserved bits do not change the meaning */
		ck_assert_uint_eq(vms_v1_state_from_bits(map[i].bits | 0xfff0), map[i].state);
	}
	ck_assert_uint_eq(vms_v1_state_from_bits(6), S_E); /* SAVING|RESUMING = error */
	ck_assert_uint_eq(vms_v1_state_from_bits(5), S_E);
	ck_assert_uint_eq(vms_v1_state_from_bits(7), S_E);
	ck_assert_int_eq(vms_v1_bits_from_state(S_RP, &bits), VMS_EINVAL);
	ck_assert_int_eq(vms_v1_bits_from_state(S_PP, &bits), VMS_EINVAL);
	ck_assert_int_eq(vms_v1_bits_from_state(S_E, &bits), VMS_EINVAL);
}
END_TEST

/* ===========================================================================
 * 4. VFIO v2 backend on real non-VFIO fds: the kernel says ENOTTY.
 * ======================================================================== */

START_TEST(test_vfio_fake_fds)
{
	struct vms_device *d = (struct vms_device *)1;
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC), sp[2];

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(vms_device_open_vfio(&d, "gpu0", fd), VMS_EDEVIO);
	ck_assert_ptr_null(d);
	ck_assert_msg_has("gpu0");
	ck_assert_msg_has("ENOTTY");
	ck_assert_msg_has("VFIO_DEVICE_FEATURE");
	close(fd);

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	ck_assert_int_eq(vms_device_open_vfio(&d, "vf1", sp[0]), VMS_EDEVIO);
	ck_assert_msg_has("ENOTTY");
	close(sp[0]);
	close(sp[1]);

	/* A closed fd: EBADF. */
	ck_assert_int_eq(vms_device_open_vfio(&d, "gone", sp[0]), VMS_EDEVIO);
	ck_assert_msg_has("EBADF");
	ck_assert_int_eq(vms_device_open_vfio(&d, "neg", -1), VMS_EINVAL);
	ck_assert_int_eq(vms_device_open_vfio(&d, "", 0), VMS_EINVAL);
	ck_assert_int_eq(vms_device_open_vfio(NULL, "x", 0), VMS_EINVAL);

	/* v1 on /dev/null: reads return 0 bytes, a short read of the region. */
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	ck_assert_int_eq(vms_device_open_vfio_v1(&d, "old0", fd, 0, 4096), VMS_EDEVIO);
	ck_assert_msg_has("short read");
	ck_assert_int_eq(vms_device_open_vfio_v1(&d, "old0", fd, 0, 32), VMS_EINVAL);
	ck_assert_int_eq(vms_device_open_vfio_v1(&d, "old0", fd, INT64_MAX, 4096), VMS_EINVAL);
	close(fd);
}
END_TEST

/* ===========================================================================
 * 5. VFIO v2 backend against an emulated kernel (struct vms_devsys).
 * ======================================================================== */

struct fakek {
	uint64_t mig_flags;
	uint32_t state;
	int kfd;              /* the kernel's end of the session pipe, -1 */
	int ufd;              /* the data_fd handed out (user's end) */
	uint8_t image[16384]; /* what STOP_COPY emits */
	size_t image_len;
	uint8_t pre[4096];    /* what PRE_COPY emits first */
	size_t pre_len, pre_left;
	uint8_t loaded[65536];
	size_t loaded_len;
	uint32_t arcs[32];
	int narcs;
	int resume_errno;     /* RESUMING -> STOP fails with it */
	uint32_t resume_fail_state;
	bool out_of_sync;     /* PRE_COPY -> STOP_COPY returns a new fd */
	bool old_kernel;      /* no MIG_DATA_SIZE */
	bool v2_kernel;       /* Linux >= 7.1: MIG_PRECOPY_INFOv2 */
	int v2_set_errno;     /* the SET of MIG_PRECOPY_INFOv2 fails with it */
	bool v2_on;           /* opted in */
	bool reinit_next;     /* the next precopy info (v2) stages pre[] again */
	uint32_t v1_flags;    /* what a v1 driver leaves in flags (junk) */
	uint32_t precopy_flags_in; /* flags the caller passed in */
	int v2_probes, v2_sets;
	int eintr_reads;      /* this many reads fail with EINTR first */
	uint32_t precopy_argsz;
	int resets, reads, enomsg, probes;
};

static void fk_close_k(struct fakek *k)
{
	if (k->kfd >= 0)
		close(k->kfd);
	k->kfd = -1;
}

static int fk_set(struct fakek *k, uint32_t next, int32_t *out_fd)
{
	uint32_t prev = k->state;
	int p[2];

	*out_fd = -1;
	if (!arc_legal((uint32_t)k->mig_flags, prev, next) || k->narcs >= 32) {
		errno = EINVAL;
		return -1;
	}
	k->arcs[k->narcs++] = next;
	if (prev == S_RS) { /* -> STOP: drain and judge */
		ssize_t n;

		while ((n = read(k->kfd, k->loaded + k->loaded_len,
				 sizeof(k->loaded) - k->loaded_len)) > 0)
			k->loaded_len += (size_t)n;
		if (k->resume_errno) {
			k->state = k->resume_fail_state;
			if (k->state != S_RS)
				fk_close_k(k);
			errno = k->resume_errno;
			return -1;
		}
		fk_close_k(k);
	}
	if (saving(next) && !saving(prev)) {
		if (pipe2(p, O_CLOEXEC) < 0)
			return -1;
		if (next == S_SC) {
			ck_assert_int_eq(write(p[1], k->image, k->image_len), (long)k->image_len);
			close(p[1]);
			k->kfd = -1;
		} else {
			ck_assert_int_eq(write(p[1], k->pre, k->pre_len), (long)k->pre_len);
			k->pre_left = k->pre_len;
			k->kfd = p[1];
		}
		*out_fd = k->ufd = p[0];
	} else if (saving(prev) && next == S_SC) {
		ck_assert_int_eq(write(k->kfd, k->image, k->image_len), (long)k->image_len);
		fk_close_k(k);
		if (k->out_of_sync) {
			ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
			close(p[1]);
			*out_fd = p[0];
		}
	} else if (saving(prev) && !saving(next)) {
		fk_close_k(k);
	} else if (next == S_RS) {
		if (pipe2(p, O_CLOEXEC) < 0)
			return -1;
		k->kfd = p[0];
		fcntl(p[0], F_SETFL, O_NONBLOCK);
		*out_fd = k->ufd = p[1];
		k->loaded_len = 0;
	}
	k->state = next;
	return 0;
}

/* The kernel's vfio_ioctl_device_feature() checks, then the features. */
static int fk_ioctl(void *ctx, int fd, unsigned long req, void *arg)
{
	struct fakek *k = ctx;

	if (req == VFIO_DEVICE_FEATURE) {
		uint8_t *p = arg;
		uint32_t argsz, flags, feat, st;
		int32_t dfd;

		memcpy(&argsz, p, 4);
		memcpy(&flags, p + 4, 4);
		feat = flags & 0xffff;
		if (argsz < 8 || (flags & ~0x7ffffu) ||
		    (!(flags & 0x40000) && (flags & 0x10000) && (flags & 0x20000))) {
			errno = EINVAL;
			return -1;
		}
		if (feat == VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2) {
			/* before 7.1 the driver's device_feature: ENOTTY; since,
			 * vfio_check_feature(flags, argsz, SET, 0) after the
			 * PRE_COPY check */
			if (flags & 0x40000)
				k->v2_probes++;
			else
				k->v2_sets++;
			if (!k->v2_kernel) {
				errno = ENOTTY;
				return -1;
			}
			if (!(k->mig_flags & C_PRE) || (flags & 0x10000) ||
			    (!(flags & 0x40000) && !(flags & 0x20000))) {
				errno = EINVAL;
				return -1;
			}
			if (flags & 0x40000)
				return 0;
			if (k->v2_set_errno) {
				errno = k->v2_set_errno;
				return -1;
			}
			k->v2_on = true;
			return 0;
		}
		if (flags & 0x40000) { /* pre-6.2 kernels do not know feature 9 */
			k->probes++;
			if (feat == VFIO_DEVICE_FEATURE_MIG_DATA_SIZE && k->old_kernel) {
				errno = EINVAL;
				return -1;
			}
			return 0;
		}
		switch (feat) {
		case VFIO_DEVICE_FEATURE_MIGRATION:
			if ((flags & 0x30000) != 0x10000 || argsz - 8 < 8) {
				errno = EINVAL;
				return -1;
			}
			memcpy(p + 8, &k->mig_flags, 8);
			return 0;
		case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
			if (argsz - 8 < 8) {
				errno = EINVAL;
				return -1;
			}
			if (flags & 0x10000) {
				st = k->state;
				dfd = -1;
			} else {
				memcpy(&st, p + 8, 4);
				if (fk_set(k, st, &dfd) < 0)
					return -1;
			}
			memcpy(p + 8, &st, 4);
			memcpy(p + 12, &dfd, 4);
			return 0;
		case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE:
			if (k->old_kernel || (flags & 0x30000) != 0x10000 || argsz - 8 < 8) {
				errno = EINVAL;
				return -1;
			}
			{
				uint64_t n = k->image_len;

				memcpy(p + 8, &n, 8);
			}
			return 0;
		default:
			errno = EINVAL;
			return -1;
		}
	}
	if (req == VFIO_DEVICE_RESET) {
		fk_close_k(k);
		k->state = S_R;
		k->resets++;
		return 0;
	}
	if (req == VFIO_MIG_GET_PRECOPY_INFO) {
		struct vms_vfio_precopy_info *info = arg;

		k->precopy_argsz = info->argsz;
		k->precopy_flags_in = info->flags;
		if (fd != k->ufd || (k->state != S_PC && k->state != S_PP) || info->argsz < 24) {
			errno = EINVAL;
			return -1;
		}
		if (!k->v2_on) {
			/* v1: flags are not assigned, the caller's come back */
			info->flags |= k->v1_flags;
		} else if (k->reinit_next) {
			/* new initial data: pre[] once more; what was unread
			 * counts as initial too */
			ck_assert_int_eq(write(k->kfd, k->pre, k->pre_len), (long)k->pre_len);
			k->pre_left += k->pre_len;
			k->reinit_next = false;
			info->flags = VFIO_PRECOPY_INFO_REINIT;
		} else {
			info->flags = 0;
		}
		info->initial_bytes = k->pre_left;
		info->dirty_bytes = 0;
		return 0;
	}
	errno = ENOTTY;
	return -1;
}

static ssize_t fk_read(void *ctx, int fd, void *buf, size_t len)
{
	struct fakek *k = ctx;
	ssize_t n;

	k->reads++;
	if (k->eintr_reads > 0) {
		k->eintr_reads--;
		errno = EINTR;
		return -1;
	}
	if ((k->state == S_PC || k->state == S_PP) && k->pre_left == 0) {
		k->enomsg++;
		errno = ENOMSG;
		return -1;
	}
	n = read(fd, buf, len);
	if (n > 0 && (k->state == S_PC || k->state == S_PP))
		k->pre_left -= (size_t)n;
	return n;
}

static ssize_t fk_write(void *ctx, int fd, const void *buf, size_t len)
{
	(void)ctx;
	/* At most 1000 bytes per call: the backend must finish short writes. */
	return write(fd, buf, len < 1000 ? len : 1000);
}

static ssize_t no_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
	(void)ctx, (void)fd, (void)buf, (void)len, (void)off;
	errno = ENOSYS;
	return -1;
}

static ssize_t no_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
	(void)ctx, (void)fd, (void)buf, (void)len, (void)off;
	errno = ENOSYS;
	return -1;
}

static struct fakek *fk_new(uint64_t flags, struct vms_devsys *sys)
{
	struct fakek *k = tu_xmalloc(sizeof(*k));

	memset(k, 0, sizeof(*k));
	k->mig_flags = flags;
	k->state = S_R;
	k->kfd = k->ufd = -1;
	k->image_len = 10000;
	tu_fill(k->image, k->image_len, 42);
	k->pre_len = 3000;
	tu_fill(k->pre, k->pre_len, 43);
	*sys = (struct vms_devsys){ .ctx = k, .ioctl = fk_ioctl, .pread = no_pread,
				    .pwrite = no_pwrite, .read = fk_read, .write = fk_write };
	return k;
}

static void fk_free(struct fakek *k)
{
	fk_close_k(k);
	free(k);
}

/* Read until 0 (or EAGAIN_DEV when stop_at_eagain) into out. */
static size_t drain(struct vms_device *d, uint8_t *out, size_t cap, size_t chunk,
		    bool stop_at_eagain)
{
	size_t got = 0;

	for (;;) {
		long n = vms_device_read(d, out + got, cap - got < chunk ? cap - got : chunk);

		if (n == VMS_EAGAIN_DEV && stop_at_eagain)
			break;
		ck_assert_msg(n >= 0, "read: %ld %s", n, vms_last_error());
		if (n == 0)
			break;
		got += (size_t)n;
		ck_assert_uint_le(got, cap);
	}
	return got;
}

START_TEST(test_vfio_emulated_save)
{
	struct vms_devsys sys;
	struct fakek *k = fk_new(C_SC | C_P2P | C_PRE, &sys);
	struct vms_device *d;
	uint8_t buf[32768];
	uint64_t i, y, sz;
	uint32_t caps;
	int dfd;

	ck_assert_int_eq(vms_device_open_vfio_sys(&d, "vf0", 100, &sys), 0);
	ck_assert_int_eq(vms_device_caps(d, &caps), 0);
	ck_assert_uint_eq(caps, C_SC | C_P2P | C_PRE);
	ck_assert_uint_eq(dstate(d), S_R);
	ck_assert_int_eq(vms_device_data_fd(d), -1);
	ck_assert_int_eq(k->probes, 1); /* MIG_DATA_SIZE, probed once at open */
	ck_assert_int_eq(vms_device_stop_copy_size(d, &sz), 0);
	ck_assert_uint_eq(sz, 10000);

	/* PRE_COPY: initial bytes, then ENOMSG -> VMS_EAGAIN_DEV; EINTR retried. */
	ck_assert_int_eq(vms_device_set_state(d, S_PC), 0);
	dfd = vms_device_data_fd(d);
	ck_assert_int_ge(dfd, 0);
	ck_assert_int_eq(vms_device_precopy_info(d, &i, &y), 0);
	ck_assert_uint_eq(k->precopy_argsz, 24);
	ck_assert_uint_eq(i, 3000);
	ck_assert_uint_eq(y, 0);
	k->eintr_reads = 2;
	ck_assert_uint_eq(drain(d, buf, sizeof(buf), 1024, true), 3000);
	ck_assert_mem_eq(buf, k->pre, 3000);
	ck_assert_int_eq(k->enomsg, 1);
	ck_assert_int_eq(vms_device_precopy_info(d, &i, &y), 0);
	ck_assert_uint_eq(i, 0);

	/* PRE_COPY -> STOP_COPY (via PRE_COPY_P2P): the same data_fd continues. */
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	ck_assert_int_eq(k->narcs, 3);
	ck_assert_uint_eq(k->arcs[1], S_PP);
	ck_assert_uint_eq(k->arcs[2], S_SC);
	ck_assert_int_eq(vms_device_data_fd(d), dfd);
	ck_assert_uint_eq(drain(d, buf, sizeof(buf), 4096, false), 10000);
	ck_assert_mem_eq(buf, k->image, 10000);
	ck_assert_int_eq(vms_device_read(d, buf, 1), 0);

	/* Leaving the saving group closes the data_fd. */
	ck_assert_int_eq(vms_device_set_state(d, S_S), 0);
	ck_assert_int_eq(vms_device_data_fd(d), -1);
	ck_assert_int_eq(fcntl(dfd, F_GETFD), -1);
	ck_assert_int_eq(errno, EBADF);

	/* STOP -> STOP_COPY gets a fresh session. */
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	ck_assert_uint_eq(drain(d, buf, sizeof(buf), 333, false), 10000);
	ck_assert_mem_eq(buf, k->image, 10000);
	vms_device_free(d);
	fk_free(k);

	/* Without PRE_COPY (older kernels): RUNNING -> STOP -> STOP_COPY. */
	k = fk_new(C_SC, &sys);
	k->old_kernel = true;
	ck_assert_int_eq(vms_device_open_vfio_sys(&d, "vf1", 100, &sys), 0);
	ck_assert_int_eq(vms_device_set_state(d, S_PC), VMS_ESTATE);
	ck_assert_int_eq(vms_device_stop_copy_size(d, &sz), VMS_EUNSUPPORTED);
	ck_assert_msg_has("MIG_DATA_SIZE");
	ck_assert_msg_has("EINVAL");
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	ck_assert_int_eq(k->narcs, 2);
	ck_assert_uint_eq(k->arcs[0], S_S);
	ck_assert_uint_eq(drain(d, buf, sizeof(buf), 65536, false), 10000);
	vms_device_free(d);
	fk_free(k);
}
END_TEST

START_TEST(test_vfio_emulated_resume)
{
	struct vms_devsys sys;
	struct fakek *k = fk_new(C_SC | C_P2P, &sys);
	struct vms_device *d;
	uint8_t img[5000];
	int dfd;

	tu_fill(img, sizeof(img), 7);
	ck_assert_int_eq(vms_device_open_vfio_sys(&d, "vf2", 100, &sys), 0);
	ck_assert_int_eq(vms_device_set_state(d, S_RS), 0);
	ck_assert_int_eq(k->narcs, 3); /* RUNNING_P2P, STOP, RESUMING */
	ck_assert_int_eq(vms_device_write(d, img, sizeof(img)), (long)sizeof(img));
	ck_assert_int_eq(vms_device_set_state(d, S_R), 0);
	ck_assert_uint_eq(k->loaded_len, sizeof(img));
	ck_assert_mem_eq(k->loaded, img, sizeof(img));
	ck_assert_int_eq(vms_device_data_fd(d), -1);

	/* The driver rejects the image at RESUMING -> STOP and goes to ERROR. */
	k->narcs = 0;
	k->resume_errno = EIO;
	k->resume_fail_state = S_E;
	ck_assert_int_eq(vms_device_set_state(d, S_RS), 0);
	dfd = vms_device_data_fd(d);
	ck_assert_int_eq(vms_device_write(d, img, 100), 100);
	ck_assert_int_eq(vms_device_set_state(d, S_R), VMS_EDEVIO);
	ck_assert_msg_has("vf2");
	ck_assert_msg_has("RESUMING -> STOP");
	ck_assert_msg_has("EIO");
	ck_assert_msg_has("vms_device_reset");
	ck_assert_uint_eq(dstate(d), S_E);
	ck_assert_int_eq(vms_device_data_fd(d), -1);
	ck_assert_int_eq(fcntl(dfd, F_GETFD), -1);
	ck_assert_int_eq(vms_device_set_state(d, S_R), VMS_EDEVIO);
	ck_assert_int_eq(vms_device_reset(d), 0);
	ck_assert_int_eq(k->resets, 1);
	ck_assert_uint_eq(dstate(d), S_R);

	/* A driver that stays in RESUMING after the failure: the state says so. */
	k->resume_fail_state = S_RS;
	ck_assert_int_eq(vms_device_set_state(d, S_RS), 0);
	ck_assert_int_eq(vms_device_write(d, img, 10), 10);
	ck_assert_int_eq(vms_device_set_state(d, S_S), VMS_EDEVIO);
	ck_assert_msg_has("device now in RESUMING");
	ck_assert_uint_eq(dstate(d), S_RS);
	ck_assert_int_ge(vms_device_data_fd(d), 0);
	ck_assert_int_eq(vms_device_reset(d), 0);
	ck_assert_uint_eq(dstate(d), S_R);
	ck_assert_int_eq(vms_device_data_fd(d), -1);
	vms_device_free(d);
	fk_free(k);
}
END_TEST

START_TEST(test_vfio_emulated_errors)
{
	struct vms_devsys sys;
	struct fakek *k = fk_new(C_SC | C_PRE, &sys);
	struct vms_device *d;
	uint8_t buf[20000];

	/* A new data_fd while ours is open: out of sync, both closed. */
	k->out_of_sync = true;
	ck_assert_int_eq(vms_device_open_vfio_sys(&d, "vf3", 100, &sys), 0);
	ck_assert_int_eq(vms_device_set_state(d, S_PC), 0);
	ck_assert_int_eq(vms_device_set_state(d, S_SC), VMS_EDEVIO);
	ck_assert_msg_has("out of sync");
	ck_assert_uint_eq(dstate(d), S_SC);
	ck_assert_int_eq(vms_device_data_fd(d), -1);
	ck_assert_int_eq(vms_device_read(d, buf, sizeof(buf)), VMS_EDEVIO);
	ck_assert_msg_has("no data session");
	ck_assert_int_eq(vms_device_set_state(d, S_R), 0);
	vms_device_free(d);
	fk_free(k);

	/* Capabilities without STOP_COPY are not migratable. */
	k = fk_new(C_P2P, &sys);
	ck_assert_int_eq(vms_device_open_vfio_sys(&d, "vf4", 100, &sys), VMS_EUNSUPPORTED);
	ck_assert_ptr_null(d);
	fk_free(k);

	/* The real ioctl path on an fd that is not a VFIO device. */
	{
		int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

		ck_assert_int_eq(vms_device_open_vfio_sys(&d, "null", fd, &vms_devsys_os),
				 VMS_EDEVIO);
		ck_assert_msg_has("ENOTTY");
		close(fd);
	}
}
END_TEST

/* The v2 precopy info (Linux 7.1, torvalds/linux d7140b5dde45 and
 * 50ff3f404617): numbers, layout, the opt-in's bytes, flag decoding and the
 * fallback choice, all pure. */
START_TEST(test_vfio_precopy_v2_uapi)
{
	struct vms_vfio_precopy_info info;
	struct vms_vfio_feature f;
	uint8_t want[24];

	ck_assert_uint_eq(VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2, 12);
	ck_assert_uint_eq(VFIO_PRECOPY_INFO_REINIT, 1);
	ck_assert_uint_eq(VMS_PRECOPY_REINIT, 1);
	/* the same ioctl on the data_fd as v1: v2 changes what flags mean */
	ck_assert_uint_eq(VFIO_MIG_GET_PRECOPY_INFO, 0x3B79);
	_Static_assert(sizeof(struct vms_vfio_precopy_info) == 24 &&
		       offsetof(struct vms_vfio_precopy_info, argsz) == 0 &&
		       offsetof(struct vms_vfio_precopy_info, flags) == 4 &&
		       offsetof(struct vms_vfio_precopy_info, initial_bytes) == 8 &&
		       offsetof(struct vms_vfio_precopy_info, dirty_bytes) == 16,
		       "struct vfio_precopy_info: unchanged by v2");
	_Static_assert(sizeof(struct vms_precopy_info) == 24 &&
		       offsetof(struct vms_precopy_info, flags) == 4 &&
		       offsetof(struct vms_precopy_info, initial_bytes) == 8 &&
		       offsetof(struct vms_precopy_info, dirty_bytes) == 16,
		       "struct vms_precopy_info");

	/* SET: argsz 8 (no payload), flags 12 | SET */
	ck_assert_uint_eq(vms_vfio_build_precopy_v2_set(&f), 8);
	memset(want, 0, sizeof(want));
	le32(want, 8);
	le32(want + 4, 0x0002000c);
	ck_assert_mem_eq(f.words, want, 24);
	/* its PROBE: flags 12 | PROBE | SET */
	ck_assert_uint_eq(vms_vfio_build_probe(&f, VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2,
					       VFIO_DEVICE_FEATURE_SET), 8);
	le32(want + 4, 0x0006000c);
	ck_assert_mem_eq(f.words, want, 24);

	/* flags: never under v1 (an echo of the input), REINIT only under v2 */
	vms_vfio_precopy_info_init(&info);
	ck_assert_uint_eq(info.flags, 0);
	info.flags = 0xffffffffu;
	ck_assert_uint_eq(vms_vfio_precopy_flags(&info, VMS_VFIO_PRECOPY_V1), 0);
	ck_assert_uint_eq(vms_vfio_precopy_flags(&info, VMS_VFIO_PRECOPY_V2), VMS_PRECOPY_REINIT);
	info.flags = 0xfffffffeu;
	ck_assert_uint_eq(vms_vfio_precopy_flags(&info, VMS_VFIO_PRECOPY_V2), 0);
	info.flags = VFIO_PRECOPY_INFO_REINIT;
	ck_assert_uint_eq(vms_vfio_precopy_flags(&info, VMS_VFIO_PRECOPY_V1), 0);
	ck_assert_uint_eq(vms_vfio_precopy_flags(&info, VMS_VFIO_PRECOPY_V2), VMS_PRECOPY_REINIT);

	/* fallback: v2 only with PRE_COPY and both steps of the opt-in */
	ck_assert_int_eq(vms_vfio_precopy_abi(C_SC | C_PRE, 0, 0), VMS_VFIO_PRECOPY_V2);
	ck_assert_int_eq(vms_vfio_precopy_abi(C_SC | C_P2P | C_PRE, 0, 0), VMS_VFIO_PRECOPY_V2);
	ck_assert_int_eq(vms_vfio_precopy_abi(C_SC | C_P2P, 0, 0), VMS_VFIO_PRECOPY_V1);
	ck_assert_int_eq(vms_vfio_precopy_abi(C_SC | C_PRE, ENOTTY, 0), VMS_VFIO_PRECOPY_V1);
	ck_assert_int_eq(vms_vfio_precopy_abi(C_SC | C_PRE, EINVAL, 0), VMS_VFIO_PRECOPY_V1);
	ck_assert_int_eq(vms_vfio_precopy_abi(C_SC | C_PRE, 0, EBUSY), VMS_VFIO_PRECOPY_V1);
}
END_TEST

/* PRE_COPY through the emulated kernel, drained; returns the info after. */
static struct vms_precopy_info fk_precopy_round(struct vms_device *d, uint8_t *buf, size_t cap,
						size_t want)
{
	struct vms_precopy_info pi = VMS_PRECOPY_INFO_INIT;

	ck_assert_uint_eq(drain(d, buf, cap, 1000, true), want);
	ck_assert_int_eq(vms_device_precopy_info2(d, &pi), 0);
	return pi;
}

START_TEST(test_vfio_emulated_precopy_v2)
{
	struct vms_devsys sys;
	struct fakek *k = fk_new(C_SC | C_P2P | C_PRE, &sys);
	struct vms_device *d;
	struct vms_precopy_info pi = VMS_PRECOPY_INFO_INIT;
	uint8_t buf[16384];
	uint64_t i, y;

	/* Linux >= 7.1: probed, then opted in, once, at open */
	k->v2_kernel = true;
	ck_assert_int_eq(vms_device_open_vfio_sys(&d, "vf5", 100, &sys), 0);
	ck_assert_int_eq(k->v2_probes, 1);
	ck_assert_int_eq(k->v2_sets, 1);
	ck_assert(k->v2_on);
	ck_assert_int_eq(vms_device_set_state(d, S_PC), 0);
	ck_assert_int_eq(vms_device_precopy_info2(d, &pi), 0);
	ck_assert_uint_eq(k->precopy_flags_in, 0);
	ck_assert_uint_eq(pi.size, sizeof(pi));
	ck_assert_uint_eq(pi.flags, 0);
	ck_assert_uint_eq(pi.initial_bytes, 3000);
	pi = fk_precopy_round(d, buf, sizeof(buf), 3000);
	ck_assert_uint_eq(pi.flags, 0);
	ck_assert_uint_eq(pi.initial_bytes, 0);
	/* the driver has new initial data: REINIT, reported once */
	k->reinit_next = true;
	pi.size = 0; /* a caller's bad size: refused before the device is asked */
	ck_assert_int_eq(vms_device_precopy_info2(d, &pi), VMS_EINVAL);
	ck_assert(k->reinit_next);
	pi.size = sizeof(pi);
	ck_assert_int_eq(vms_device_precopy_info2(d, &pi), 0);
	ck_assert_uint_eq(pi.flags, VMS_PRECOPY_REINIT);
	ck_assert_uint_eq(pi.initial_bytes, 3000);
	ck_assert_uint_eq(pi.dirty_bytes, 0);
	pi = fk_precopy_round(d, buf, sizeof(buf), 3000);
	ck_assert_mem_eq(buf, k->pre, 3000);
	ck_assert_uint_eq(pi.flags, 0);
	ck_assert_uint_eq(pi.initial_bytes, 0);
	/* vms_device_precopy_info() takes the same answer, without flags */
	k->reinit_next = true;
	ck_assert_int_eq(vms_device_precopy_info(d, &i, &y), 0);
	ck_assert_uint_eq(i, 3000);
	ck_assert(!k->reinit_next);
	/* a caller built against a bigger struct gets the rest zeroed */
	{
		struct { struct vms_precopy_info pi; uint64_t more; } big;

		memset(&big, 0xff, sizeof(big));
		big.pi.size = sizeof(big);
		ck_assert_int_eq(vms_device_precopy_info2(d, &big.pi), 0);
		ck_assert_uint_eq(big.pi.size, sizeof(big));
		ck_assert_uint_eq(big.pi.flags, 0);
		ck_assert_uint_eq(big.pi.initial_bytes, 3000);
		ck_assert_uint_eq(big.more, 0);
	}
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	ck_assert_int_eq(vms_device_precopy_info2(d, &pi), VMS_ESTATE);
	vms_device_free(d);
	fk_free(k);

	/* Before 7.1 the feature is unknown (ENOTTY): v1, no SET tried, and
	 * what the driver leaves in flags is not read as REINIT. */
	k = fk_new(C_SC | C_PRE, &sys);
	k->v1_flags = VFIO_PRECOPY_INFO_REINIT | 0x80;
	ck_assert_int_eq(vms_device_open_vfio_sys(&d, "vf6", 100, &sys), 0);
	ck_assert_int_eq(k->v2_probes, 1);
	ck_assert_int_eq(k->v2_sets, 0);
	ck_assert_int_eq(vms_device_set_state(d, S_PC), 0);
	ck_assert_int_eq(vms_device_precopy_info2(d, &pi), 0);
	ck_assert_uint_eq(pi.flags, 0);
	ck_assert_uint_eq(pi.initial_bytes, 3000);
	vms_device_free(d);
	fk_free(k);

	/* A 7.1 kernel whose SET fails after the probe: v1 too. */
	k = fk_new(C_SC | C_PRE, &sys);
	k->v2_kernel = true;
	k->v2_set_errno = EBUSY;
	k->v1_flags = VFIO_PRECOPY_INFO_REINIT;
	ck_assert_int_eq(vms_device_open_vfio_sys(&d, "vf7", 100, &sys), 0);
	ck_assert_int_eq(k->v2_probes, 1);
	ck_assert_int_eq(k->v2_sets, 1);
	ck_assert(!k->v2_on);
	ck_assert_int_eq(vms_device_set_state(d, S_PC), 0);
	ck_assert_int_eq(vms_device_precopy_info2(d, &pi), 0);
	ck_assert_uint_eq(pi.flags, 0);
	vms_device_free(d);
	fk_free(k);

	/* Without PRE_COPY there is nothing to opt in to: not even probed. */
	k = fk_new(C_SC | C_P2P, &sys);
	k->v2_kernel = true;
	ck_assert_int_eq(vms_device_open_vfio_sys(&d, "vf8", 100, &sys), 0);
	ck_assert_int_eq(k->v2_probes, 0);
	ck_assert_int_eq(k->v2_sets, 0);
	vms_device_free(d);
	fk_free(k);
}
END_TEST

/* ===========================================================================
 * 6. v1 migration region: a file-backed emulation.
 *
 * The region lives in a regular file at REG_OFF. The backend's real
 * pread/pwrite calls reach the file; the emulator adds what a driver does on
 * those accesses: a read of pending_bytes ends the previous chunk and
 * publishes what is left, a read of data_offset stages the next chunk in the
 * file (data_offset, data_size, bytes), a write of data_size consumes the
 * chunk written at data_offset.
 * ======================================================================== */

#define REG_OFF 8192u
#define REG_SIZE 4096u
#define V1_DOFF 512u

struct v1emu {
	int fd;
	const uint8_t *src;
	size_t src_len, pre_limit, sent, staged, chunk;
	uint8_t sink[1 << 17];
	size_t sink_len;
	int stages, state_writes;
};

static uint32_t emu_bits(struct v1emu *e)
{
	uint32_t b;

	ck_assert_int_eq(pread(e->fd, &b, 4, REG_OFF), 4);
	return b;
}

static void emu_put64(struct v1emu *e, uint32_t field, uint64_t v)
{
	ck_assert_int_eq(pwrite(e->fd, &v, 8, REG_OFF + field), 8);
}

static ssize_t emu_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
	struct v1emu *e = ctx;
	uint64_t rel = (uint64_t)off - REG_OFF;
	uint32_t bits = emu_bits(e);

	if (rel == VMS_V1_OFF_PENDING && (bits & VMS_V1_SAVING)) {
		size_t limit = (bits & VMS_V1_RUNNING) ? e->pre_limit : e->src_len;

		e->sent += e->staged;
		e->staged = 0;
		emu_put64(e, VMS_V1_OFF_PENDING, limit > e->sent ? limit - e->sent : 0);
	} else if (rel == VMS_V1_OFF_DATA_OFFSET && (bits & VMS_V1_SAVING)) {
		size_t limit = (bits & VMS_V1_RUNNING) ? e->pre_limit : e->src_len;
		size_t n = limit - e->sent < e->chunk ? limit - e->sent : e->chunk;

		ck_assert_int_eq(pwrite(e->fd, e->src + e->sent, n, REG_OFF + V1_DOFF), (long)n);
		emu_put64(e, VMS_V1_OFF_DATA_OFFSET, V1_DOFF);
		emu_put64(e, VMS_V1_OFF_DATA_SIZE, n);
		e->staged = n;
		e->stages++;
	} else if (rel == VMS_V1_OFF_DATA_OFFSET && (bits & VMS_V1_RESUMING)) {
		emu_put64(e, VMS_V1_OFF_DATA_OFFSET, V1_DOFF);
	}
	return pread(fd, buf, len, off);
}

static ssize_t emu_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
	struct v1emu *e = ctx;
	uint64_t rel = (uint64_t)off - REG_OFF;
	/* Data writes come up one byte short: the backend must finish them. */
	ssize_t n = pwrite(fd, buf, rel >= V1_DOFF && len > 1 ? len - 1 : len, off);

	if (rel == VMS_V1_OFF_STATE) {
		e->state_writes++;
	} else if (rel == VMS_V1_OFF_DATA_SIZE && (emu_bits(e) & VMS_V1_RESUMING)) {
		uint64_t sz;

		ck_assert_int_eq(pread(fd, &sz, 8, REG_OFF + VMS_V1_OFF_DATA_SIZE), 8);
		ck_assert_uint_le(e->sink_len + sz, sizeof(e->sink));
		ck_assert_int_eq(pread(fd, e->sink + e->sink_len, sz, REG_OFF + V1_DOFF), (long)sz);
		e->sink_len += sz;
	}
	return n;
}

static int emu_ioctl(void *ctx, int fd, unsigned long req, void *arg)
{
	struct v1emu *e = ctx;
	uint32_t run = VMS_V1_RUNNING;

	(void)fd;
	(void)arg;
	if (req != VFIO_DEVICE_RESET) {
		errno = ENOTTY;
		return -1;
	}
	ck_assert_int_eq(pwrite(e->fd, &run, 4, REG_OFF), 4);
	return 0;
}

static int v1_file(uint32_t bits)
{
	char path[] = "/tmp/vms-v1-XXXXXX";
	int fd = mkstemp(path);
	uint8_t zero[REG_OFF + REG_SIZE];

	ck_assert_int_ge(fd, 0);
	unlink(path);
	memset(zero, 0, sizeof(zero));
	ck_assert_int_eq(write(fd, zero, sizeof(zero)), (long)sizeof(zero));
	ck_assert_int_eq(pwrite(fd, &bits, 4, REG_OFF), 4);
	return fd;
}

START_TEST(test_v1_emulated_round_trip)
{
	static uint8_t src[50000], got[60000];
	struct v1emu *se = tu_xmalloc(sizeof(*se)), *de = tu_xmalloc(sizeof(*de));
	struct vms_devsys ssys = { 0 }, dsys;
	struct vms_device *s, *d;
	uint64_t pending, sz;
	uint32_t caps, reserved = 0xa5a50000u | VMS_V1_RUNNING;
	size_t n = 0;

	tu_fill(src, sizeof(src), 99);
	memset(se, 0, sizeof(*se));
	memset(de, 0, sizeof(*de));
	se->fd = v1_file(reserved);
	se->src = src;
	se->src_len = sizeof(src);
	se->pre_limit = 9000;
	se->chunk = REG_SIZE - V1_DOFF; /* the data window */
	ssys = (struct vms_devsys){ .ctx = se, .ioctl = emu_ioctl, .pread = emu_pread,
				    .pwrite = emu_pwrite };
	ck_assert_int_eq(vms_device_open_vfio_v1_sys(&s, "v1src", se->fd, REG_OFF, REG_SIZE,
						     &ssys), 0);
	ck_assert_uint_eq(dstate(s), S_R);
	ck_assert_int_eq(vms_device_caps(s, &caps), 0);
	ck_assert_uint_eq(caps, C_SC | C_PRE);

	/* PRE_COPY = SAVING|RUNNING, reserved bits preserved. */
	ck_assert_int_eq(vms_device_set_state(s, S_PC), 0);
	ck_assert_uint_eq(emu_bits(se), 0xa5a50000u | 3);
	ck_assert_int_eq(vms_device_precopy_info(s, &pending, &sz), 0);
	ck_assert_uint_eq(pending, 9000);
	n = drain(s, got, sizeof(got), 1000, true);
	ck_assert_uint_eq(n, 9000);
	ck_assert_int_eq(vms_device_precopy_info(s, &pending, &sz), 0);
	ck_assert_uint_eq(pending, 0);
	/* STOP_COPY = SAVING: the rest, then pending_bytes 0 = end. */
	ck_assert_int_eq(vms_device_set_state(s, S_SC), 0);
	ck_assert_uint_eq(emu_bits(se), 0xa5a50000u | 2);
	ck_assert_int_eq(vms_device_stop_copy_size(s, &sz), 0);
	ck_assert_uint_eq(sz, sizeof(src) - 9000);
	n += drain(s, got + n, sizeof(got) - n, 777, false);
	ck_assert_uint_eq(n, sizeof(src));
	ck_assert_mem_eq(got, src, sizeof(src));
	ck_assert_int_ge(se->stages, (int)(sizeof(src) / se->chunk));
	ck_assert_int_eq(vms_device_set_state(s, S_S), 0);
	ck_assert_uint_eq(emu_bits(se), 0xa5a50000u);
	ck_assert_int_eq(vms_device_stop_copy_size(s, &sz), VMS_EUNSUPPORTED);

	/* Destination: RUNNING -> STOP -> RESUMING, chunks at data_offset. */
	de->fd = v1_file(VMS_V1_RUNNING);
	dsys = (struct vms_devsys){ .ctx = de, .ioctl = emu_ioctl, .pread = emu_pread,
				    .pwrite = emu_pwrite };
	ck_assert_int_eq(vms_device_open_vfio_v1_sys(&d, "v1dst", de->fd, REG_OFF, REG_SIZE,
						     &dsys), 0);
	ck_assert_int_eq(vms_device_set_state(d, S_RS), 0);
	ck_assert_uint_eq(emu_bits(de), VMS_V1_RESUMING);
	ck_assert_int_eq(vms_device_write(d, got, 12345), 12345);
	ck_assert_int_eq(vms_device_write(d, got + 12345, n - 12345), (long)(n - 12345));
	ck_assert_int_eq(vms_device_set_state(d, S_R), 0);
	ck_assert_uint_eq(emu_bits(de), VMS_V1_RUNNING);
	ck_assert_uint_eq(de->sink_len, sizeof(src));
	ck_assert_mem_eq(de->sink, src, sizeof(src));

	/* The error encoding reads back as ERROR; reset returns RUNNING. */
	{
		uint32_t err = VMS_V1_SAVING | VMS_V1_RESUMING;

		ck_assert_int_eq(pwrite(de->fd, &err, 4, REG_OFF), 4);
		ck_assert_int_eq(vms_device_reset(d), 0);
		ck_assert_uint_eq(dstate(d), S_R);
	}
	vms_device_free(s);
	vms_device_free(d);
	close(se->fd);
	close(de->fd);
	free(se);
	free(de);
}
END_TEST

START_TEST(test_v1_plain_file)
{
	/* The real system calls on a regular file: a resume writes the data at
	 * data_offset and then data_size, all positional. */
	int fd = v1_file(VMS_V1_RUNNING);
	struct vms_device *d;
	uint64_t doff = 1024, v;
	uint8_t data[3000], back[3000];
	uint32_t bits;

	tu_fill(data, sizeof(data), 5);
	ck_assert_int_eq(pwrite(fd, &doff, 8, REG_OFF + VMS_V1_OFF_DATA_OFFSET), 8);
	ck_assert_int_eq(vms_device_open_vfio_v1(&d, "v1file", fd, REG_OFF, REG_SIZE), 0);
	ck_assert_int_eq(vms_device_set_state(d, S_RS), 0);
	ck_assert_int_eq(pread(fd, &bits, 4, REG_OFF), 4);
	ck_assert_uint_eq(bits, VMS_V1_RESUMING);
	ck_assert_int_eq(vms_device_write(d, data, sizeof(data)), (long)sizeof(data));
	ck_assert_int_eq(pread(fd, &v, 8, REG_OFF + VMS_V1_OFF_DATA_SIZE), 8);
	ck_assert_uint_eq(v, sizeof(data)); /* one chunk: the window holds 3072 */
	ck_assert_int_eq(pread(fd, back, sizeof(back), REG_OFF + 1024), (long)sizeof(back));
	ck_assert_mem_eq(back, data, sizeof(data));
	/* more than the window: chunks are cut at the region's end */
	{
		uint8_t big[5000];

		tu_fill(big, sizeof(big), 6);
		ck_assert_int_eq(vms_device_write(d, big, sizeof(big)), (long)sizeof(big));
		ck_assert_int_eq(pread(fd, &v, 8, REG_OFF + VMS_V1_OFF_DATA_SIZE), 8);
		ck_assert_uint_eq(v, sizeof(big) - (REG_SIZE - 1024));
		ck_assert_int_eq(pread(fd, back, v, REG_OFF + 1024), (long)v);
		ck_assert_mem_eq(back, big + (REG_SIZE - 1024), v);
	}
	/* reset is an ioctl: a regular file says ENOTTY */
	ck_assert_int_eq(vms_device_reset(d), VMS_EDEVIO);
	ck_assert_msg_has("VFIO_DEVICE_RESET");
	ck_assert_msg_has("ENOTTY");
	/* a data_offset inside the header is refused */
	{
		struct vms_device *d2;

		doff = 8;
		ck_assert_int_eq(pwrite(fd, &doff, 8, REG_OFF + VMS_V1_OFF_DATA_OFFSET), 8);
		bits = VMS_V1_RESUMING;
		ck_assert_int_eq(pwrite(fd, &bits, 4, REG_OFF), 4);
		ck_assert_int_eq(vms_device_open_vfio_v1(&d2, "v1bad", fd, REG_OFF, REG_SIZE), 0);
		ck_assert_uint_eq(dstate(d2), S_RS);
		ck_assert_int_eq(vms_device_write(d2, data, 10), VMS_EDEVIO);
		ck_assert_msg_has("data_offset 8");
		vms_device_free(d2);
	}
	vms_device_free(d);
	close(fd);
}
END_TEST

/* ===========================================================================
 * 7. The simulated device.
 * ======================================================================== */

static struct vms_device *sim(const char *name, const char *spec)
{
	struct vms_device *d;
	int r = vms_device_open_sim(&d, name, spec);

	ck_assert_msg(r == 0, "open_sim(%s): %d %s", spec, r, vms_last_error());
	return d;
}

START_TEST(test_sim_spec)
{
	static const char *const bad[] = {
		"size", "size=", "=1", "bogus=1", "size=1X", "size=-5", "size=71", "size=65G",
		"size=1M,size=2M", "profile=noise", "precopy=2", "p2p=yes", "fault=sometimes",
		"fault_at=3", "fault=read,fault_at=0", "seed=abc", "seed=0x", "slow=0",
		"size=1M,", ",size=1M", "size=1M,,dirty=1K", "size=4K,dirty=8K",
		"size=99999999999999999999", "size=20000000000000000K", "dirty=1K ",
	};
	struct vms_sim_conf c;
	struct vms_device *d;
	uint64_t v;

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		d = (struct vms_device *)1;
		ck_assert_msg(vms_device_open_sim(&d, "s", bad[i]) == VMS_EINVAL, "'%s'", bad[i]);
		ck_assert_ptr_null(d);
		ck_assert_msg(contains(vms_last_error(), "sim spec"), "'%s': %s", bad[i],
			      vms_last_error());
	}
	ck_assert_int_eq(vms_device_open_sim(&d, "s", "bogus=1"), VMS_EINVAL);
	ck_assert_msg_has("unknown key 'bogus'");

	ck_assert_int_eq(vms_sim_parse(NULL, &c), 0);
	ck_assert_uint_eq(c.size, 1u << 20);
	ck_assert_uint_eq(c.profile, VMS_SIM_MIXED);
	ck_assert(c.precopy && c.p2p);
	ck_assert_int_eq(vms_sim_parse("size=176", &c), 0);
	ck_assert_uint_eq(c.size, 176);
	ck_assert_int_eq(vms_sim_parse("size=72", &c), 0);
	ck_assert_int_eq(vms_sim_parse("size=64M,profile=zeros,dirty=8M,seed=0x10,precopy=0,"
				       "p2p=0,fault=read,fault_at=7", &c), 0);
	ck_assert_uint_eq(c.size, 64u << 20);
	ck_assert_uint_eq(c.dirty, 8u << 20);
	ck_assert_uint_eq(c.seed, 16);
	ck_assert_uint_eq(c.profile, VMS_SIM_ZEROS);
	ck_assert(!c.precopy && !c.p2p);
	ck_assert_uint_eq(c.fault, VMS_SIM_FAULT_READ);
	ck_assert_uint_eq(c.fault_at, 7);
	ck_assert_int_eq(vms_sim_parse("fault=slow", &c), 0);
	ck_assert_uint_eq(c.slow, 100u << 20);
	ck_assert_int_eq(vms_sim_parse("slow=5M", &c), 0);
	ck_assert_uint_eq(c.slow, 5u << 20);
	ck_assert_int_eq(vms_sim_parse("fault=read", &c), 0);
	ck_assert_uint_eq(c.fault_at, 1);
	ck_assert_int_eq(vms_sim_parse("fault=reinit", &c), 0);
	ck_assert_uint_eq(c.fault, VMS_SIM_FAULT_REINIT);
	ck_assert_uint_eq(c.fault_at, 1);
	ck_assert_int_eq(vms_sim_parse("fault=reinit,fault_at=3", &c), 0);
	ck_assert_uint_eq(c.fault_at, 3);
	ck_assert_int_eq(vms_sim_parse("fault=reinit,precopy=0", &c), VMS_EINVAL);
	ck_assert_msg_has("fault=reinit needs precopy=1");
	ck_assert_int_eq(vms_sim_parse("fault=slow,fault_at=2", &c), VMS_EINVAL);
	ck_assert_msg_has("fault_at needs fault=read or fault=reinit");
	ck_assert_int_eq(vms_sim_parse_size("4k", &v), 0);
	ck_assert_uint_eq(v, 4096);
	ck_assert_int_eq(vms_sim_parse_size("1G", &v), 0);
	ck_assert_uint_eq(v, 1u << 30);
	ck_assert_int_eq(vms_sim_parse_size("16777215T", &v), 0);
	ck_assert_int_eq(vms_sim_parse_size("16777216T", &v), VMS_EINVAL);

	/* caps follow the spec */
	{
		uint32_t caps;

		d = sim("c", "precopy=0,p2p=0");
		ck_assert_int_eq(vms_device_caps(d, &caps), 0);
		ck_assert_uint_eq(caps, C_SC);
		ck_assert_int_eq(vms_device_set_state(d, S_PC), VMS_ESTATE);
		vms_device_free(d);
		d = sim("c", "");
		ck_assert_int_eq(vms_device_caps(d, &caps), 0);
		ck_assert_uint_eq(caps, C_SC | C_P2P | C_PRE);
		vms_device_free(d);
	}
}
END_TEST

struct img {
	uint8_t *p;
	size_t n, cap;
};

static void img_add(struct img *m, const void *p, size_t n)
{
	if (m->n + n > m->cap) {
		m->cap = (m->n + n) * 2;
		m->p = tu_xrealloc(m->p, m->cap);
	}
	memcpy(m->p + m->n, p, n);
	m->n += n;
}

/* Read into m until 0, or until VMS_EAGAIN_DEV if precopy. */
static void sim_drain(struct vms_device *d, struct img *m, size_t chunk, bool precopy)
{
	uint8_t *buf = tu_xmalloc(chunk);

	for (;;) {
		long n = vms_device_read(d, buf, chunk);

		if (precopy && n == VMS_EAGAIN_DEV)
			break;
		ck_assert_msg(n >= 0, "read: %ld %s", n, vms_last_error());
		if (n == 0)
			break;
		img_add(m, buf, (size_t)n);
	}
	free(buf);
}

/* Feed a sink in uneven pieces, then RESUMING -> target. */
static int sim_load(struct vms_device *d, const uint8_t *p, size_t n, uint32_t target)
{
	size_t off = 0, k = 1;

	ck_assert_int_eq(vms_device_set_state(d, S_RS), 0);
	while (off < n) {
		size_t m = n - off < k ? n - off : k;

		ck_assert_int_eq(vms_device_write(d, p + off, m), (long)m);
		off += m;
		k = k * 3 + 1;
	}
	return vms_device_set_state(d, target);
}

START_TEST(test_sim_precopy)
{
	/* 64 KiB of content: 16 whole blocks, so a round of 8 KiB is 2 blocks */
	struct vms_device *s = sim("src", "size=65608,dirty=8K,seed=5,profile=random");
	struct vms_device *d;
	struct img all = { 0 }, again = { 0 };
	uint64_t i, y, sz;
	size_t at;

	ck_assert_int_eq(vms_device_stop_copy_size(s, &sz), 0);
	ck_assert_uint_eq(sz, 65608); /* no session: the full image */
	ck_assert_int_eq(vms_device_set_state(s, S_PC), 0);
	ck_assert_int_eq(vms_device_precopy_info(s, &i, &y), 0);
	ck_assert_uint_eq(i, 65608);
	ck_assert_uint_eq(y, 0);
	/* stop-copy would read the unread initial image, then the full one */
	ck_assert_int_eq(vms_device_stop_copy_size(s, &sz), 0);
	ck_assert_uint_eq(sz, 2 * 65608);
	sim_drain(s, &all, 5000, true);
	ck_assert_uint_eq(all.n, 65608);
	ck_assert_mem_eq(all.p, VMS_SIM_MAGIC, 8);
	ck_assert_int_eq(vms_device_read(s, all.p, 1), VMS_EAGAIN_DEV);
	/* Nothing refills until precopy_info is asked. */
	ck_assert_int_eq(vms_device_read(s, all.p, 1), VMS_EAGAIN_DEV);
	ck_assert_int_eq(vms_device_precopy_info(s, &i, &y), 0);
	ck_assert_uint_eq(i, 0);
	ck_assert_uint_eq(y, VMS_SIM_OVERHEAD + 2 * (8 + 4096)); /* 8 KiB = 2 blocks */
	/* A second ask before reading does not stage another round. */
	ck_assert_int_eq(vms_device_precopy_info(s, &i, &y), 0);
	ck_assert_uint_eq(y, VMS_SIM_OVERHEAD + 2 * (8 + 4096));
	at = all.n;
	sim_drain(s, &all, 100, true);
	ck_assert_uint_eq(all.n - at, VMS_SIM_OVERHEAD + 2 * (8 + 4096));
	ck_assert_int_eq(vms_device_precopy_info(s, &i, &y), 0); /* round 2 */
	sim_drain(s, &all, 65536, true);
	ck_assert_int_eq(vms_device_precopy_info(s, &i, &y), 0); /* round 3, staged */
	ck_assert_uint_eq(y, VMS_SIM_OVERHEAD + 2 * (8 + 4096));
	/* The estimate counts the staged delta nobody read yet. */
	ck_assert_int_eq(vms_device_stop_copy_size(s, &sz), 0);
	ck_assert_uint_eq(sz, 65608 + y);
	/* PRE_COPY -> STOP_COPY (via PRE_COPY_P2P): the rest of the staged
	 * delta, the whole image, then EOF: exactly the estimate. */
	ck_assert_int_eq(vms_device_set_state(s, S_SC), 0);
	ck_assert_int_eq(vms_device_stop_copy_size(s, &sz), 0);
	ck_assert_uint_eq(sz, 65608 + y);
	at = all.n;
	sim_drain(s, &all, 4096, false);
	ck_assert_uint_eq(all.n - at, sz);
	ck_assert_int_eq(vms_device_stop_copy_size(s, &sz), 0);
	ck_assert_uint_eq(sz, 0); /* nothing left */
	at = all.n - 65608;
	ck_assert_int_eq(vms_device_read(s, all.p, 1), 0);
	ck_assert_int_eq(vms_device_set_state(s, S_R), 0);

	/* The whole stream (precopy + stop-copy) loads into a matching sink. */
	d = sim("dst", "size=65608,seed=5,profile=random");
	ck_assert_int_eq(sim_load(d, all.p, all.n, S_S), 0);
	ck_assert_uint_eq(dstate(d), S_S);
	/* The loaded device emits the same final image as the source. */
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	sim_drain(d, &again, 65536, false);
	ck_assert_uint_eq(again.n, 65608);
	ck_assert_mem_eq(again.p, all.p + at, 65608);
	vms_device_free(d);
	vms_device_free(s);
	free(all.p);
	free(again.p);
}
END_TEST

START_TEST(test_sim_precopy_no_dirty)
{
	struct vms_device *s = sim("src", "size=4K,precopy=1,p2p=0");
	struct img m = { 0 };
	uint64_t i, y;

	ck_assert_int_eq(vms_device_set_state(s, S_PC), 0);
	sim_drain(s, &m, 1000, true);
	ck_assert_uint_eq(m.n, 4096);
	for (int k = 0; k < 3; k++) {
		ck_assert_int_eq(vms_device_precopy_info(s, &i, &y), 0);
		ck_assert_uint_eq(i, 0);
		ck_assert_uint_eq(y, 0);
		ck_assert_int_eq(vms_device_read(s, m.p, 16), VMS_EAGAIN_DEV);
	}
	/* Abort the pre-copy: back to RUNNING, and a new session starts fresh. */
	ck_assert_int_eq(vms_device_set_state(s, S_R), 0);
	ck_assert_int_eq(vms_device_set_state(s, S_PC), 0);
	ck_assert_int_eq(vms_device_precopy_info(s, &i, &y), 0);
	ck_assert_uint_eq(i, 4096);
	vms_device_free(s);
	free(m.p);
}
END_TEST

/* fault=reinit: the fault_at-th precopy info stages the full image again
 * and says so (REINIT, once); everything unread counts as initial, dirty
 * restarts at 0; the stream with both images loads. */
START_TEST(test_sim_reinit)
{
	struct vms_device *s = sim("src", "size=16456,dirty=4K,seed=7,fault=reinit,fault_at=2");
	struct vms_device *d;
	struct vms_precopy_info pi = VMS_PRECOPY_INFO_INIT;
	struct img all = { 0 };
	const uint64_t delta = VMS_SIM_OVERHEAD + 8 + 4096; /* 4 whole blocks: any is 4 KiB */
	size_t at;

	ck_assert_int_eq(vms_device_set_state(s, S_PC), 0);
	sim_drain(s, &all, 3000, true);
	ck_assert_uint_eq(all.n, 16456);
	/* call 1: an ordinary refill (a delta) */
	ck_assert_int_eq(vms_device_precopy_info2(s, &pi), 0);
	ck_assert_uint_eq(pi.flags, 0);
	ck_assert_uint_eq(pi.initial_bytes, 0);
	ck_assert_uint_eq(pi.dirty_bytes, delta);
	/* call 2, the delta unread: new initial data, the delta with it */
	ck_assert_int_eq(vms_device_precopy_info2(s, &pi), 0);
	ck_assert_uint_eq(pi.flags, VMS_PRECOPY_REINIT);
	ck_assert_uint_eq(pi.initial_bytes, delta + 16456);
	ck_assert_uint_eq(pi.dirty_bytes, 0);
	at = all.n;
	sim_drain(s, &all, 3000, true);
	ck_assert_uint_eq(all.n - at, delta + 16456);
	ck_assert_mem_eq(all.p + at + delta, VMS_SIM_MAGIC, 8);
	/* reported once: call 3 refills as usual */
	ck_assert_int_eq(vms_device_precopy_info2(s, &pi), 0);
	ck_assert_uint_eq(pi.flags, 0);
	ck_assert_uint_eq(pi.initial_bytes, 0);
	ck_assert_uint_eq(pi.dirty_bytes, delta);
	ck_assert_int_eq(vms_device_set_state(s, S_SC), 0);
	sim_drain(s, &all, 3000, false);
	ck_assert_int_eq(vms_device_set_state(s, S_R), 0);
	/* full, delta, full again, delta, full: validated byte for byte */
	ck_assert_uint_eq(all.n, 3 * 16456 + 2 * delta);
	d = sim("dst", "size=16456,seed=7");
	ck_assert_int_eq(sim_load(d, all.p, all.n, S_S), 0);
	vms_device_free(d);
	vms_device_free(s);
	free(all.p);
}
END_TEST

/* "No data now" must never look like a byte count: a device whose state is
 * read one byte at a time (176-byte HiSilicon state, say) would otherwise
 * lose bytes or stop early. */
START_TEST(test_eagain_distinct)
{
	struct vms_device *s = sim("src", "size=176,dirty=0");
	uint8_t b;
	long n;
	size_t got = 0;

	ck_assert_msg(VMS_EAGAIN_DEV < 0, "VMS_EAGAIN_DEV (%d) collides with a 1-byte read",
		      (int)VMS_EAGAIN_DEV);
	ck_assert_int_eq(vms_device_set_state(s, S_PC), 0);
	while ((n = vms_device_read(s, &b, 1)) == 1)
		got++;
	ck_assert_int_eq(n, VMS_EAGAIN_DEV);
	ck_assert_uint_eq(got, 176);
	ck_assert_int_eq(vms_device_set_state(s, S_SC), 0);
	got = 0;
	while ((n = vms_device_read(s, &b, 1)) == 1)
		got++;
	ck_assert_int_eq(n, 0);
	ck_assert_uint_eq(got, 176);
	vms_device_free(s);
}
END_TEST

/* Source stop-copy image of a sim spec. */
static struct img sim_image(const char *spec, size_t chunk)
{
	struct vms_device *s = sim("src", spec);
	struct img m = { 0 };

	ck_assert_int_eq(vms_device_set_state(s, S_SC), 0);
	sim_drain(s, &m, chunk, false);
	ck_assert_int_eq(vms_device_read(s, &chunk, 1), 0);
	vms_device_free(s);
	return m;
}

START_TEST(test_sim_round_trip)
{
	static const struct { const char *spec; size_t size, chunk; } cases[] = {
		{ "size=176,profile=random,seed=3", 176, 1 },
		{ "size=176,profile=text", 176, 176 },
		{ "size=72,profile=zeros", 72, 7 },
		{ "size=4K,profile=mixed,seed=9", 4096, 4096 },
		{ "size=4K,profile=sparse", 4096, 100 },
		{ "size=5000,profile=zeros", 5000, 999 },
		{ "size=300K,profile=text,seed=77", 300 << 10, 65536 },
		{ "size=1M,profile=mixed,seed=2", 1 << 20, 1 << 20 },
	};
	unsigned i = (unsigned)_i;
	struct img m = sim_image(cases[i].spec, cases[i].chunk);
	struct vms_device *d;

	ck_assert_uint_eq(m.n, cases[i].size);
	d = sim("dst", cases[i].spec);
	ck_assert_msg(sim_load(d, m.p, m.n, S_R) == 0, "%s: %s", cases[i].spec,
		      vms_last_error());
	ck_assert_uint_eq(dstate(d), S_R);
	vms_device_free(d);
	free(m.p);
}
END_TEST

START_TEST(test_sim_profiles_differ)
{
	const char *const profs[] = { "random", "zeros", "sparse", "text", "mixed" };
	struct img m[5];
	char spec[64];

	for (int i = 0; i < 5; i++) {
		snprintf(spec, sizeof(spec), "size=256K,profile=%s", profs[i]);
		m[i] = sim_image(spec, 65536);
	}
	/* zeros: content all zero; text: printable; all pairwise different */
	for (size_t k = VMS_SIM_HDR; k < (256u << 10) - 8; k++)
		ck_assert_uint_eq(m[1].p[k], 0);
	for (size_t k = VMS_SIM_HDR; k < (256u << 10) - 8; k++)
		ck_assert(m[3].p[k] == ' ' || m[3].p[k] == '\n' ||
			  (m[3].p[k] >= 'a' && m[3].p[k] <= 'z'));
	for (int a = 0; a < 5; a++) {
		for (int b = a + 1; b < 5; b++)
			ck_assert(memcmp(m[a].p + VMS_SIM_HDR, m[b].p + VMS_SIM_HDR, 60000) != 0);
	}
	/* deterministic for a seed, different for another */
	{
		struct img x = sim_image("size=256K,profile=mixed", 1000);
		struct img y = sim_image("size=256K,profile=mixed,seed=2", 1000);

		ck_assert_mem_eq(x.p, m[4].p, 256u << 10);
		ck_assert(memcmp(x.p + VMS_SIM_HDR, y.p + VMS_SIM_HDR, 60000) != 0);
		free(x.p);
		free(y.p);
	}
	for (int i = 0; i < 5; i++)
		free(m[i].p);
}
END_TEST

static void expect_rejected(struct vms_device *d, const uint8_t *p, size_t n,
			    const char *why)
{
	uint8_t b[16];
	uint64_t v;

	ck_assert_int_eq(sim_load(d, p, n, S_S), VMS_EDEVIO);
	ck_assert_msg(contains(vms_last_error(), why), "'%s' lacks '%s'", vms_last_error(),
		      why);
	ck_assert_msg_has("RESUMING -> STOP");
	/* ERROR until reset. */
	ck_assert_uint_eq(dstate(d), S_E);
	ck_assert_int_eq(vms_device_set_state(d, S_R), VMS_EDEVIO);
	ck_assert_int_eq(vms_device_set_state(d, S_RS), VMS_EDEVIO);
	ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), VMS_EDEVIO);
	ck_assert_int_eq(vms_device_write(d, b, sizeof(b)), VMS_EDEVIO);
	ck_assert_int_eq(vms_device_stop_copy_size(d, &v), VMS_EDEVIO);
	ck_assert_int_eq(vms_device_reset(d), 0);
	ck_assert_uint_eq(dstate(d), S_R);
}

START_TEST(test_sim_rejects)
{
	const char *spec = "size=20000,profile=mixed,seed=11";
	struct img m = sim_image(spec, 3000);
	struct vms_device *d = sim("dst", spec), *other;
	uint8_t *bad = tu_memdup(m.p, m.n);
	/* one flipped byte: header, first content byte, last content byte, trailer */
	static const struct { size_t at; const char *why; } flips[] = {
		{ 0, "bad magic" },
		{ 20, "checksum" },
		{ VMS_SIM_HDR, "content differs" },
		{ 20000 - 9, "content differs" },
		{ 20000 - 1, "payload checksum" },
	};

	for (unsigned k = 0; k < sizeof(flips) / sizeof(flips[0]); k++) {
		memcpy(bad, m.p, m.n);
		bad[flips[k].at] ^= 0x01;
		expect_rejected(d, bad, m.n, flips[k].why);
	}
	/* truncated by one byte, by a whole segment's tail, or nothing at all */
	expect_rejected(d, m.p, m.n - 1, "truncated");
	expect_rejected(d, m.p, 100, "truncated");
	expect_rejected(d, m.p, 0, "no state");
	/* trailing garbage after a complete image */
	memcpy(bad, m.p, m.n);
	{
		uint8_t *longer = tu_xmalloc(m.n + 10);

		memcpy(longer, m.p, m.n);
		memset(longer + m.n, 0, 10);
		expect_rejected(d, longer, m.n + 10, "truncated");
		free(longer);
	}
	/* a forged header (valid checksum) claiming 2^40 pre-copy rounds */
	memcpy(bad, m.p, m.n);
	bad[32 + 5] = 1;
	{
		uint64_t h = tu_xxh3(bad, 56);

		memcpy(bad + 56, &h, 8);
	}
	expect_rejected(d, bad, m.n, "generation");
	/* a device of another seed refuses the image */
	other = sim("other", "size=20000,profile=mixed,seed=12");
	expect_rejected(other, m.p, m.n, "incompatible");
	vms_device_free(other);
	/* after all that, the good image still loads */
	ck_assert_int_eq(sim_load(d, m.p, m.n, S_S), 0);
	ck_assert_uint_eq(dstate(d), S_S);
	vms_device_free(d);

	/* fault=resume rejects even a good image */
	d = sim("dst", "size=20000,profile=mixed,seed=11,fault=resume");
	expect_rejected(d, m.p, m.n, "fault=resume");
	vms_device_free(d);
	free(bad);
	free(m.p);
}
END_TEST

START_TEST(test_sim_delta_rejects)
{
	/* Streams with precopy deltas: a delta without its final full image,
	 * and a flipped delta byte. */
	/* 16 KiB of content: 4 whole blocks; a round dirties one */
	struct vms_device *s = sim("src", "size=16456,dirty=4K,seed=8");
	struct vms_device *d = sim("dst", "size=16456,seed=8");
	struct img m = { 0 };
	uint64_t i, y;
	size_t full_end, delta_end;

	ck_assert_int_eq(vms_device_set_state(s, S_PC), 0);
	sim_drain(s, &m, 16384, true);
	full_end = m.n;
	ck_assert_int_eq(vms_device_precopy_info(s, &i, &y), 0);
	sim_drain(s, &m, 16384, true);
	delta_end = m.n;
	ck_assert_uint_eq(delta_end - full_end, VMS_SIM_OVERHEAD + 8 + 4096);
	ck_assert_int_eq(vms_device_set_state(s, S_SC), 0);
	sim_drain(s, &m, 16384, false);
	vms_device_free(s);

	expect_rejected(d, m.p, delta_end, "does not end with a full device image");
	m.p[full_end + VMS_SIM_HDR + 3] ^= 0x80; /* inside the delta's block index */
	expect_rejected(d, m.p, m.n, "delta entry");
	m.p[full_end + VMS_SIM_HDR + 3] ^= 0x80;
	m.p[full_end + VMS_SIM_HDR + 8 + 100] ^= 0x80; /* inside the delta's block */
	expect_rejected(d, m.p, m.n, "content differs");
	m.p[full_end + VMS_SIM_HDR + 8 + 100] ^= 0x80;
	/* the full image alone (no delta) is of an older generation than... it
	 * still loads: it is a complete device state. */
	ck_assert_int_eq(sim_load(d, m.p, full_end, S_S), 0);
	ck_assert_int_eq(vms_device_reset(d), 0);
	ck_assert_int_eq(sim_load(d, m.p, m.n, S_S), 0);
	vms_device_free(d);
	free(m.p);
}
END_TEST

START_TEST(test_sim_fault_read)
{
	struct vms_device *s = sim("src", "size=64K,fault=read,fault_at=3");
	uint8_t b[1000];
	char msg[512];

	ck_assert_int_eq(vms_device_set_state(s, S_PC), 0);
	ck_assert_int_eq(vms_device_read(s, b, sizeof(b)), 1000);
	ck_assert_int_eq(vms_device_read(s, b, sizeof(b)), 1000);
	ck_assert_int_eq(vms_device_read(s, b, sizeof(b)), VMS_EDEVIO);
	ck_assert_msg_has("fault=read");
	ck_assert_msg_has("src");
	snprintf(msg, sizeof(msg), "%s", vms_last_error());
	for (int k = 0; k < 3; k++) {
		ck_assert_int_eq(vms_device_read(s, b, sizeof(b)), VMS_EDEVIO);
		ck_assert_str_eq(vms_last_error(), msg);
	}
	ck_assert_int_eq(vms_device_set_state(s, S_SC), VMS_EDEVIO);
	ck_assert_uint_eq(dstate(s), S_PC);
	/* Leaving the session clears it; the next session works. */
	ck_assert_int_eq(vms_device_set_state(s, S_R), 0);
	ck_assert_int_eq(vms_device_set_state(s, S_SC), 0);
	{
		struct img m = { 0 };

		sim_drain(s, &m, 7000, false);
		ck_assert_uint_eq(m.n, 65536);
		free(m.p);
	}
	/* The same fault in STOP_COPY, cleared by reset. */
	vms_device_free(s);
	s = sim("src", "size=64K,fault=read,fault_at=2");
	ck_assert_int_eq(vms_device_set_state(s, S_SC), 0);
	ck_assert_int_eq(vms_device_read(s, b, sizeof(b)), 1000);
	ck_assert_int_eq(vms_device_read(s, b, sizeof(b)), VMS_EDEVIO);
	ck_assert_int_eq(vms_device_read(s, b, sizeof(b)), VMS_EDEVIO);
	ck_assert_int_eq(vms_device_reset(s), 0);
	ck_assert_uint_eq(dstate(s), S_R);
	vms_device_free(s);
}
END_TEST

START_TEST(test_sim_slow)
{
	struct vms_device *s = sim("src", "size=256K,slow=1M");
	struct timespec a, b;
	struct img m = { 0 };
	double secs;

	ck_assert_int_eq(vms_device_set_state(s, S_SC), 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	sim_drain(s, &m, 32768, false);
	clock_gettime(CLOCK_MONOTONIC, &b);
	secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
	ck_assert_uint_eq(m.n, 256u << 10);
	/* The rate is what is under test: 256 KiB at 1 MiB/s, paced on the
	 * device's CLOCK_MONOTONIC from its first read, cannot hand out the last
	 * 32 KiB before 224 KiB / 1 MiB/s = 0.22 s. The upper bound only tells
	 * a pace from a hang: a loaded machine may make it arbitrarily late. */
	ck_assert_msg(secs >= 0.2 && secs < 10.0, "took %.3f s", secs);
	vms_device_free(s);
	free(m.p);
}
END_TEST

START_TEST(test_sim_data_fd)
{
	struct vms_device *s = sim("src", "size=8M,profile=random");
	uint8_t b[100];
	int fd;

	ck_assert_int_eq(vms_device_data_fd(s), -1);
	ck_assert_int_eq(vms_device_set_state(s, S_SC), 0);
	fd = vms_device_data_fd(s);
	ck_assert_int_ge(fd, 0);
	/* A stream, not a file. */
	ck_assert_int_eq(pread(fd, b, sizeof(b), 0), -1);
	ck_assert_int_eq(errno, ESPIPE);
	ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), -1);
	ck_assert_int_eq(errno, ESPIPE);
	ck_assert_int_eq(vms_device_read(s, b, sizeof(b)), 100);
	ck_assert_int_eq(vms_device_stop_copy_size(s, &(uint64_t){ 0 }), 0);
	/* Leaving mid-stream (the producer blocked on a full pipe) and freeing
	 * mid-stream neither hang nor leak. */
	ck_assert_int_eq(vms_device_set_state(s, S_S), 0);
	ck_assert_int_eq(vms_device_data_fd(s), -1);
	ck_assert_int_eq(vms_device_set_state(s, S_SC), 0);
	ck_assert_int_eq(vms_device_read(s, b, sizeof(b)), 100);
	vms_device_free(s);

	s = sim("src", "size=8M");
	ck_assert_int_eq(vms_device_set_state(s, S_PC), 0);
	vms_device_free(s);

	/* A sink freed or reset in the middle of loading. */
	s = sim("dst", "size=8M");
	ck_assert_int_eq(vms_device_set_state(s, S_RS), 0);
	ck_assert_int_ge(vms_device_data_fd(s), 0);
	ck_assert_int_eq(vms_device_write(s, b, sizeof(b)), 100);
	ck_assert_int_eq(vms_device_reset(s), 0);
	ck_assert_int_eq(vms_device_set_state(s, S_RS), 0);
	ck_assert_int_eq(vms_device_write(s, b, sizeof(b)), 100);
	vms_device_free(s);
}
END_TEST

START_TEST(test_sim_walks)
{
	/* p2p=0: RUNNING -> STOP_COPY goes through STOP; RESUMING -> RUNNING
	 * through STOP, where the image is judged. */
	struct img m = sim_image("size=4K,p2p=0,precopy=0", 4096);
	struct vms_device *d = sim("dst", "size=4K,p2p=0,precopy=0");
	uint8_t b[4];

	ck_assert_int_eq(sim_load(d, m.p, m.n, S_R), 0);
	ck_assert_uint_eq(dstate(d), S_R);
	ck_assert_int_eq(vms_device_set_state(d, S_RP), VMS_ESTATE);
	ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), VMS_ESTATE);
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	ck_assert_int_eq(vms_device_write(d, b, sizeof(b)), VMS_ESTATE);
	ck_assert_int_eq(vms_device_set_state(d, S_RS), 0); /* STOP_COPY -> STOP -> RESUMING */
	ck_assert_int_eq(vms_device_write(d, m.p, 10), 10);
	ck_assert_int_eq(vms_device_set_state(d, S_R), VMS_EDEVIO); /* judged at STOP */
	ck_assert_uint_eq(dstate(d), S_E);
	vms_device_free(d);
	free(m.p);
}
END_TEST

/* A custom backend that forwards to a sim device and records the arcs the
 * wrapper asks for: the walk a sim sees, arc by arc. */
struct spy {
	struct vms_device *inner;
	uint32_t arcs[16];
	int narcs;
};

static int spy_caps(void *impl, uint32_t *caps)
{
	return vms_device_caps(((struct spy *)impl)->inner, caps);
}

static int spy_set_state(void *impl, uint32_t state)
{
	struct spy *sp = impl;

	if (sp->narcs < 16)
		sp->arcs[sp->narcs++] = state;
	return vms_device_set_state(sp->inner, state);
}

static long spy_read(void *impl, void *buf, size_t len)
{
	return vms_device_read(((struct spy *)impl)->inner, buf, len);
}

static long spy_write(void *impl, const void *buf, size_t len)
{
	return vms_device_write(((struct spy *)impl)->inner, buf, len);
}

static const struct vms_device_ops spy_ops = {
	.size = sizeof(struct vms_device_ops),
	.caps = spy_caps,
	.set_state = spy_set_state,
	.read = spy_read,
	.write = spy_write,
};

START_TEST(test_sim_arcs)
{
	struct spy a = { .inner = sim("in", "size=4K,p2p=0,precopy=0") };
	struct spy b = { .inner = sim("in2", "size=4K,p2p=0,precopy=0") };
	struct vms_device *src, *dst;
	struct img m = { 0 };
	uint32_t st;

	ck_assert_int_eq(vms_device_new(&src, "spy", VMS_DEVKIND_VFIO, &spy_ops, &a), 0);
	ck_assert_int_eq(vms_device_new(&dst, "spy2", VMS_DEVKIND_VFIO, &spy_ops, &b), 0);
	/* RUNNING -> STOP_COPY is RUNNING -> STOP -> STOP_COPY for the sim. */
	ck_assert_int_eq(vms_device_set_state(src, S_SC), 0);
	ck_assert_int_eq(a.narcs, 2);
	ck_assert_uint_eq(a.arcs[0], S_S);
	ck_assert_uint_eq(a.arcs[1], S_SC);
	ck_assert_int_eq(vms_device_state(a.inner, &st), 0);
	ck_assert_uint_eq(st, S_SC);
	sim_drain(src, &m, 1000, false);
	ck_assert_uint_eq(m.n, 4096);
	/* RUNNING -> RESUMING -> RUNNING: STOP, RESUMING, STOP, RUNNING. */
	ck_assert_int_eq(sim_load(dst, m.p, m.n, S_R), 0);
	ck_assert_int_eq(b.narcs, 4);
	ck_assert_uint_eq(b.arcs[0], S_S);
	ck_assert_uint_eq(b.arcs[1], S_RS);
	ck_assert_uint_eq(b.arcs[2], S_S);
	ck_assert_uint_eq(b.arcs[3], S_R);
	vms_device_free(src);
	vms_device_free(dst);
	vms_device_free(a.inner);
	vms_device_free(b.inner);
	free(m.p);
}
END_TEST

static void *nothing(void *arg)
{
	return arg;
}

/* Threads of this process (check runs each test in its own process). The
 * first call starts and joins a thread, so that a runtime's own helper
 * (ThreadSanitizer's) already exists when the counting starts. */
static int nthreads(void)
{
	static bool warm;
	char line[256];
	int n = -1;
	FILE *f;

	if (!warm) {
		pthread_t t;

		ck_assert_int_eq(pthread_create(&t, NULL, nothing, NULL), 0);
		pthread_join(t, NULL);
		warm = true;
	}
	f = fopen("/proc/self/status", "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* A data session costs a pipe, not a thread: small devices (all their
 * segments fit the pipe) never start one; a big device starts one thread
 * for its first session and every later session, saving or loading,
 * reuses it. */
START_TEST(test_sim_session_threads)
{
	int base = nthreads();
	struct vms_device *s = sim("small", "size=32K,dirty=4K");
	struct vms_device *b = sim("big", "size=33K,dirty=4K,profile=random");
	struct img m = { 0 };
	uint64_t i, y;

	for (int k = 0; k < 3; k++) {
		ck_assert_int_eq(vms_device_set_state(s, S_PC), 0);
		ck_assert_int_ge(vms_device_data_fd(s), 0);
		sim_drain(s, &m, 7000, true);
		ck_assert_int_eq(vms_device_precopy_info(s, &i, &y), 0);
		ck_assert_uint_eq(y, VMS_SIM_OVERHEAD + 8 + 4096);
		ck_assert_int_eq(vms_device_set_state(s, S_SC), 0);
		sim_drain(s, &m, 7000, false);
		ck_assert_int_eq(vms_device_set_state(s, S_R), 0);
		ck_assert_int_eq(nthreads(), base);
	}
	ck_assert_int_eq(vms_device_set_state(b, S_SC), 0);
	ck_assert_int_eq(nthreads(), base + 1);
	m.n = 0;
	sim_drain(b, &m, 5000, false);
	ck_assert_uint_eq(m.n, 33u << 10);
	ck_assert_int_eq(vms_device_set_state(b, S_R), 0);
	for (int k = 0; k < 3; k++) {
		struct img again = { 0 };

		ck_assert_int_eq(vms_device_set_state(b, S_SC), 0);
		sim_drain(b, &again, 3000, false);
		ck_assert_uint_eq(again.n, m.n);
		ck_assert_mem_eq(again.p, m.p, m.n);
		ck_assert_int_eq(vms_device_set_state(b, S_R), 0);
		free(again.p);
		/* and loading it back, validated by the same thread */
		ck_assert_int_eq(sim_load(b, m.p, m.n, S_R), 0);
		ck_assert_int_eq(nthreads(), base + 1);
	}
	vms_device_free(b);
	ck_assert_int_eq(nthreads(), base);
	vms_device_free(s);
	free(m.p);
}
END_TEST

/* The producer hands full buffers to the pipe by reference (vmsplice) and
 * refills a buffer only once the pipe has given all its bytes away: a slow
 * reader of odd-sized pieces, across many turns of the buffer ring, gets an
 * image that validates byte for byte. */
START_TEST(test_sim_big_image)
{
	const char *spec = "size=24M,profile=mixed,seed=21";
	struct vms_device *s = sim("src", spec), *d;
	uint8_t *buf = tu_xmalloc(1 << 20);
	size_t got = 0;
	long n;
	uint64_t sz;

	ck_assert_int_eq(vms_device_set_state(s, S_SC), 0);
	d = sim("dst", spec);
	ck_assert_int_eq(vms_device_set_state(d, S_RS), 0);
	for (unsigned k = 0; (n = vms_device_read(s, buf, 1 + (k * 7919u) % (1u << 20))) > 0;
	     k++) {
		ck_assert_int_eq(vms_device_write(d, buf, (size_t)n), n);
		got += (size_t)n;
		/* Now and then the pipe runs full: the device's thread has done
		 * all it can and waits for this reader. */
		if (k % 64 == 0)
			ck_assert(tu_wait_quiescent(TU_WAIT_MS));
	}
	ck_assert_int_eq(n, 0);
	ck_assert_uint_eq(got, 24u << 20);
	ck_assert_int_eq(vms_device_stop_copy_size(s, &sz), 0);
	ck_assert_uint_eq(sz, 0);
	ck_assert_int_eq(vms_device_set_state(d, S_S), 0);
	vms_device_free(d);
	vms_device_free(s);
	free(buf);
}
END_TEST

/* A small device's load waits in the pipe and is validated at STOP; a load
 * that outgrows the pipe (precopy rounds) is handed to the device's thread
 * on the way, and both verdicts are the same as before. */
START_TEST(test_sim_load_handover)
{
	const char *spec = "size=32K,profile=random,dirty=32K,seed=4";
	struct vms_device *s = sim("src", spec), *d = sim("dst", spec);
	struct img m = { 0 };
	uint64_t i, y;
	int base;

	ck_assert_int_eq(vms_device_set_state(s, S_PC), 0);
	for (int r = 0; r < 4; r++) {
		sim_drain(s, &m, 10000, true);
		ck_assert_int_eq(vms_device_precopy_info(s, &i, &y), 0);
	}
	ck_assert_int_eq(vms_device_set_state(s, S_SC), 0);
	sim_drain(s, &m, 10000, false);
	ck_assert_uint_gt(m.n, 4 * (32u << 10));
	vms_device_free(s); /* (its last delta and image did not fit the pipe at once) */
	base = nthreads();
	/* the last image alone fits the pipe: no thread */
	ck_assert_int_eq(sim_load(d, m.p + m.n - (32u << 10), 32u << 10, S_S), 0);
	ck_assert_int_eq(nthreads(), base);
	ck_assert_int_eq(vms_device_reset(d), 0);
	/* the whole stream does not: the thread takes over */
	ck_assert_int_eq(sim_load(d, m.p, m.n, S_S), 0);
	ck_assert_int_eq(nthreads(), base + 1);
	ck_assert_int_eq(vms_device_reset(d), 0);
	m.p[m.n - 100] ^= 1;
	expect_rejected(d, m.p, m.n, "content differs");
	m.p[m.n - 100] ^= 1;
	m.p[100] ^= 1;
	expect_rejected(d, m.p, m.n, "content differs");
	vms_device_free(d);
	free(m.p);
}
END_TEST

/* Version 2 images (random blocks from the pool) are not version 1's. */
START_TEST(test_sim_version)
{
	struct img m = sim_image("size=4K,profile=random", 4096);
	struct vms_device *d = sim("dst", "size=4K,profile=random");
	uint64_t h;

	ck_assert_uint_eq(m.p[8], 2);
	m.p[8] = 1;
	h = tu_xxh3(m.p, 56);
	memcpy(m.p + 56, &h, 8);
	expect_rejected(d, m.p, m.n, "unsupported sim image version 1");
	vms_device_free(d);
	free(m.p);
}
END_TEST

/* ===========================================================================
 * 8. mem and fd devices.
 * ======================================================================== */

START_TEST(test_mem)
{
	static uint8_t src[100000];
	struct vms_device *s, *d;
	struct img m = { 0 };
	const uint8_t *p;
	size_t n;
	uint64_t sz;
	uint32_t caps;

	tu_fill(src, sizeof(src), 3);
	ck_assert_int_eq(vms_device_open_mem(&s, "blob", src, sizeof(src), 0), 0);
	ck_assert_int_eq(vms_device_caps(s, &caps), 0);
	ck_assert_uint_eq(caps, C_SC);
	ck_assert_int_eq(vms_device_set_state(s, S_PC), VMS_ESTATE);
	ck_assert_int_eq(vms_device_stop_copy_size(s, &sz), 0);
	ck_assert_uint_eq(sz, sizeof(src));
	ck_assert_int_eq(vms_device_set_state(s, S_SC), 0);
	sim_drain(s, &m, 30000, false);
	ck_assert_uint_eq(m.n, sizeof(src));
	ck_assert_mem_eq(m.p, src, sizeof(src));
	p = vms_device_mem(s, &n);
	ck_assert_ptr_eq(p, src);
	ck_assert_uint_eq(n, sizeof(src));

	ck_assert_int_eq(vms_device_open_mem(&d, "sink", NULL, 0, sizeof(src)), 0);
	p = vms_device_mem(d, &n);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(vms_device_set_state(d, S_RS), 0);
	ck_assert_int_eq(vms_device_write(d, m.p, 1), 1);
	ck_assert_int_eq(vms_device_write(d, m.p + 1, m.n - 1), (long)m.n - 1);
	ck_assert_int_eq(vms_device_set_state(d, S_S), 0);
	p = vms_device_mem(d, &n);
	ck_assert_uint_eq(n, sizeof(src));
	ck_assert_mem_eq(p, src, sizeof(src));
	/* Over capacity: a device error, sticky until reset. */
	ck_assert_int_eq(vms_device_set_state(d, S_RS), 0);
	ck_assert_int_eq(vms_device_write(d, src, sizeof(src) - 10), (long)sizeof(src) - 10);
	ck_assert_int_eq(vms_device_write(d, src, 11), VMS_EDEVIO);
	ck_assert_msg_has("capacity");
	ck_assert_int_eq(vms_device_write(d, src, 1), VMS_EDEVIO);
	ck_assert_int_eq(vms_device_set_state(d, S_S), VMS_EDEVIO);
	ck_assert_int_eq(vms_device_reset(d), 0);
	ck_assert_uint_eq(dstate(d), S_R);
	/* A sink holds what it was loaded with and can be read back. */
	ck_assert_int_eq(vms_device_set_state(d, S_RS), 0);
	ck_assert_int_eq(vms_device_write(d, "abc", 3), 3);
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	{
		char b[8];

		ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), 3);
		ck_assert_mem_eq(b, "abc", 3);
		ck_assert_int_eq(vms_device_read(d, b, sizeof(b)), 0);
	}
	vms_device_free(d);
	vms_device_free(s);

	ck_assert_int_eq(vms_device_open_mem(&d, "x", NULL, 5, 10), VMS_EINVAL);
	ck_assert_int_eq(vms_device_open_mem(&d, "x", NULL, 0, 0), VMS_EINVAL);
	ck_assert_int_eq(vms_device_open_mem(&d, "", src, 1, 0), VMS_EINVAL);
	/* An empty source is a device with no state. */
	ck_assert_int_eq(vms_device_open_mem(&d, "empty", src, 0, 0), 0);
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	ck_assert_int_eq(vms_device_read(d, m.p, 10), 0);
	vms_device_free(d);
	/* Not a mem device. */
	d = sim("s", "size=4K");
	ck_assert_ptr_null(vms_device_mem(d, &n));
	ck_assert_uint_eq(n, 0);
	vms_device_free(d);
	free(m.p);
}
END_TEST

START_TEST(test_fd)
{
	char path[] = "/tmp/vms-fd-XXXXXX";
	uint8_t data[70000], back[70000];
	struct vms_device *s, *d;
	struct img m = { 0 };
	uint64_t sz;
	int fd = mkstemp(path), p[2];

	ck_assert_int_ge(fd, 0);
	unlink(path);
	tu_fill(data, sizeof(data), 4);
	ck_assert_int_eq(write(fd, data, sizeof(data)), (long)sizeof(data));
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	ck_assert_int_eq(vms_device_open_fd(&s, "file", fd), 0);
	ck_assert_int_eq(vms_device_stop_copy_size(s, &sz), 0);
	ck_assert_uint_eq(sz, sizeof(data));
	ck_assert_int_eq(vms_device_set_state(s, S_SC), 0);
	sim_drain(s, &m, 8192, false);
	ck_assert_uint_eq(m.n, sizeof(data));
	ck_assert_mem_eq(m.p, data, sizeof(data));
	vms_device_free(s);
	ck_assert_int_ge(fcntl(fd, F_GETFD), 0); /* not closed */

	/* Sink into a pipe, read back by us. */
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(vms_device_open_fd(&d, "pipe", p[1]), 0);
	ck_assert_int_eq(vms_device_stop_copy_size(d, &sz), VMS_EUNSUPPORTED);
	ck_assert_int_eq(vms_device_set_state(d, S_RS), 0);
	ck_assert_int_eq(vms_device_write(d, data, 5000), 5000);
	ck_assert_int_eq(read(p[0], back, sizeof(back)), 5000);
	ck_assert_mem_eq(back, data, 5000);
	/* The reader is gone: EPIPE is a device error. */
	close(p[0]);
	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(vms_device_write(d, data, 10), VMS_EDEVIO);
	ck_assert_msg_has("EPIPE");
	vms_device_free(d);
	close(p[1]);
	ck_assert_int_eq(vms_device_open_fd(&d, "neg", -1), VMS_EINVAL);

	/* Read errors: an fd closed behind the device's back. */
	ck_assert_int_eq(vms_device_open_fd(&d, "closed", fd), 0);
	close(fd);
	ck_assert_int_eq(vms_device_set_state(d, S_SC), 0);
	ck_assert_int_eq(vms_device_read(d, back, 10), VMS_EDEVIO);
	ck_assert_msg_has("EBADF");
	vms_device_free(d);
	free(m.p);
}
END_TEST

static Suite *device_suite(void)
{
	Suite *s = suite_create("device");
	TCase *tc;

	tc = tcase_create("states");
	tcase_add_test(tc, test_next_state_table);
	tcase_add_test(tc, test_next_state_bfs);
	tcase_add_test(tc, test_stop_copy_to_precopy_illegal);
	tcase_add_test(tc, test_state_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("wrapper");
	tcase_add_test(tc, test_walks);
	tcase_add_test(tc, test_failed_arc);
	tcase_add_test(tc, test_data_rules);
	tcase_add_test(tc, test_sticky_read);
	tcase_add_test(tc, test_write_rules);
	tcase_add_test(tc, test_new_args);
	suite_add_tcase(s, tc);

	tc = tcase_create("vfio");
	tcase_add_test(tc, test_vfio_marshal);
	tcase_add_test(tc, test_vfio_structs);
	tcase_add_test(tc, test_vfio_read_errno);
	tcase_add_test(tc, test_v1_bits);
	tcase_add_test(tc, test_vfio_fake_fds);
	tcase_add_test(tc, test_vfio_emulated_save);
	tcase_add_test(tc, test_vfio_emulated_resume);
	tcase_add_test(tc, test_vfio_emulated_errors);
	tcase_add_test(tc, test_vfio_precopy_v2_uapi);
	tcase_add_test(tc, test_vfio_emulated_precopy_v2);
	tcase_add_test(tc, test_v1_emulated_round_trip);
	tcase_add_test(tc, test_v1_plain_file);
	suite_add_tcase(s, tc);

	tc = tcase_create("sim");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_sim_spec);
	tcase_add_test(tc, test_sim_precopy);
	tcase_add_test(tc, test_sim_precopy_no_dirty);
	tcase_add_test(tc, test_sim_reinit);
	tcase_add_test(tc, test_eagain_distinct);
	tcase_add_loop_test(tc, test_sim_round_trip, 0, 8);
	tcase_add_test(tc, test_sim_profiles_differ);
	tcase_add_test(tc, test_sim_rejects);
	tcase_add_test(tc, test_sim_delta_rejects);
	tcase_add_test(tc, test_sim_fault_read);
	tcase_add_test(tc, test_sim_slow);
	tcase_add_test(tc, test_sim_data_fd);
	tcase_add_test(tc, test_sim_walks);
	tcase_add_test(tc, test_sim_arcs);
	tcase_add_test(tc, test_sim_session_threads);
	tcase_add_test(tc, test_sim_big_image);
	tcase_add_test(tc, test_sim_load_handover);
	tcase_add_test(tc, test_sim_version);
	suite_add_tcase(s, tc);

	tc = tcase_create("blob");
	tcase_add_test(tc, test_mem);
	tcase_add_test(tc, test_fd);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(device_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
