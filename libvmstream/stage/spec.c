/* SPDX-License-Identifier: MIT */
/*
 * Compression specs ("none", "auto", NAME, NAME:LEVEL) against the registry:
 * the one parser of them, for the writer, the session's HELLO and, through
 * vms_compress_check(), the tools.
 */
#include <stdio.h>
#include <string.h>
#include "base/error.h"
#include "stage/stage.h"
#include "stage/tuner.h"

#define LEVEL_DIGITS_MAX 6 /* after the sign: every codec level fits, no overflow */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* LEVEL: an optional '-', 1..LEVEL_DIGITS_MAX digits, nothing else, within
 * the codec's range. */
static int level_parse(const char *spec, const char *p, const struct vms_stage *st, int *level)
{
	bool neg = *p == '-';
	long v = 0;

	if (neg)
		p++;
	if (is_digit(*p) && strlen(p) <= LEVEL_DIGITS_MAX) {
		for (; is_digit(*p); p++)
			v = v * 10 + (*p - '0');
		if (neg)
			v = -v;
		if (!*p && v >= st->level_min && v <= st->level_max) {
			*level = (int)v;
			return 0;
		}
	}
	return vms_fail(VMS_EINVAL, "'%s': level must be an integer in [%d, %d]", spec,
			st->level_min, st->level_max);
}

/* The spec's stage and level, with vms_compress_check()'s messages. */
static int spec_parse(const char *spec, const struct vms_stage **stage, int *level,
		      bool *adaptive)
{
	const char *colon;
	const struct vms_stage *st;
	char name[VMS_CODEC_NAME_MAX + 1];
	size_t n;

	*stage = NULL;
	*adaptive = false;
	*level = 0;
	if (!spec || strcmp(spec, "none") == 0)
		return 0;
	if (strcmp(spec, "auto") == 0) {
		*stage = &vms_stage_zstd;
		*adaptive = true;
		*level = VMS_TUNER_START;
		return 0;
	}
	colon = strchr(spec, ':');
	n = colon ? (size_t)(colon - spec) : strlen(spec);
	if (n == 0)
		return vms_fail(VMS_EINVAL, "'%s': expected none, auto, zstd or zstd:LEVEL", spec);
	if (n > VMS_CODEC_NAME_MAX)
		return vms_fail(VMS_EINVAL, "'%s': no codec named '%.*s' (none, auto, zstd, zstd:LEVEL)",
				spec, (int)n, spec);
	memcpy(name, spec, n);
	name[n] = '\0';
	st = vms_stage_find(name);
	if (!st || st->kind != VMS_STAGE_CODEC)
		return vms_fail(VMS_EINVAL, "'%s': no codec named '%s' (none, auto, zstd, zstd:LEVEL)",
				spec, name);
	*level = st->level_default;
	if (colon) {
		int err = level_parse(spec, colon + 1, st, level);

		if (err)
			return err;
	}
	*stage = st;
	return 0;
}

int vms_compress_check(const char *spec)
{
	const struct vms_stage *st;
	bool adaptive;
	int level;

	return spec_parse(spec, &st, &level, &adaptive);
}

int vms_compress_parse(const char *spec, const struct vms_stage **stage, int *level,
		       bool *adaptive)
{
	int err = spec_parse(spec, stage, level, adaptive);

	if (err) {
		char m[VMS_MSG_MAX];

		snprintf(m, sizeof(m), "%s", vms_last_error());
		return vms_fail(err, "compression %s", m);
	}
	return 0;
}
