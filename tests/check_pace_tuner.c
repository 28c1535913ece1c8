/* SPDX-License-Identifier: MIT */
/* The writer's pure helpers: the rate limiter (io/pace.c) and the auto
 * level rule (stage/tuner.c), on numbers, without a clock. */
#include <check.h>
#include <stdint.h>
#include "io/pace.h"
#include "stage/tuner.h"

START_TEST(test_pace)
{
	struct vms_pace p = { .rate = 1000000, .burst = 1000 };

	/* unlimited never waits */
	struct vms_pace none = { 0 };
	ck_assert_uint_eq(vms_pace_delay(&none, 5, UINT64_MAX / 2), 0);
	/* one burst goes at once; the bytes past it are due at rate */
	ck_assert_uint_eq(vms_pace_delay(&p, 1000, 1000), 0);
	vms_pace_sent(&p, 1000);
	ck_assert_uint_eq(vms_pace_delay(&p, 1000, 1), 1000);      /* 1 byte at 1 MB/s */
	ck_assert_uint_eq(vms_pace_delay(&p, 1000, 1000), 1000000); /* 1 ms */
	ck_assert_uint_eq(vms_pace_delay(&p, 1001000, 1000), 0);    /* due now */
	vms_pace_sent(&p, 1000);
	ck_assert_uint_eq(vms_pace_delay(&p, 1001000, 500), 500000);
}
END_TEST

START_TEST(test_tuner)
{
	const uint64_t span = VMS_TUNER_WINDOW_NS;

	/* balanced: unchanged */
	ck_assert_int_eq(vms_tuner_next(3, span, span / 2, span / 10, span / 10), 3);
	/* compressors the bottleneck: one step down, three when far off */
	ck_assert_int_eq(vms_tuner_next(3, span, 0, span / 3, span / 3), 2);
	ck_assert_int_eq(vms_tuner_next(5, span, 0, span * 3 / 4, span / 3), 2);
	/* no level 0 step; below the fastest level: store raw */
	ck_assert_int_eq(vms_tuner_next(1, span, 0, span / 3, span / 3), -1);
	ck_assert_int_eq(vms_tuner_next(-6, span, 0, span * 3 / 4, span / 3), VMS_TUNER_LEVEL_MIN);
	ck_assert_int_eq(vms_tuner_next(VMS_TUNER_LEVEL_MIN, span, 0, span / 3, span / 3),
			 VMS_TUNER_LEVEL_OFF);
	ck_assert_int_eq(vms_tuner_next(VMS_TUNER_LEVEL_OFF, span, 0, span / 3, span / 3),
			 VMS_TUNER_LEVEL_OFF);
	/* output the bottleneck: climb, from raw back to the fastest level */
	ck_assert_int_eq(vms_tuner_next(VMS_TUNER_LEVEL_OFF, span, span, 0, 0), VMS_TUNER_LEVEL_MIN);
	ck_assert_int_eq(vms_tuner_next(-1, span, span, 0, 0), 1);
	ck_assert_int_eq(vms_tuner_next(VMS_TUNER_LEVEL_MAX, span, span, 0, 0), VMS_TUNER_LEVEL_MAX);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pace_tuner");
	TCase *tc = tcase_create("pure");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_pace);
	tcase_add_test(tc, test_tuner);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
