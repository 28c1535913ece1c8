/* SPDX-License-Identifier: MIT */
/*
 * Stage registry: the built-ins plus codecs registered by the application.
 * Filled before first use, read-only afterwards (STYLE.md: no hidden mutable
 * global state), so lookups need no lock once frozen.
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "base/error.h"
#include "stage/stage.h"

#define MAX_REGISTERED 32

static const struct vms_stage *const builtins[] = {
	&vms_stage_zero,
	&vms_stage_zstd,
	&vms_stage_aes_gcm,
	&vms_stage_chacha,
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct vms_stage *registered[MAX_REGISTERED];
static atomic_uint nregistered;
static atomic_bool frozen;

void vms_stage_freeze(void)
{
	atomic_store(&frozen, true);
}

static bool name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

int vms_stage_register(const struct vms_stage *st)
{
	int err = 0;

	if (!st || st->size < sizeof(struct vms_stage))
		return vms_fail(VMS_EINVAL, "stage: missing or bad size field");
	if (st->kind != VMS_STAGE_CODEC)
		return vms_fail(VMS_EINVAL, "stage %s: only codecs can be registered",
				st->name ? st->name : "?");
	if (!name_ok(st->name))
		return vms_fail(VMS_EINVAL, "stage name must be 1..32 of [a-z0-9._-]");
	if (st->id < 64 || st->id > 254)
		return vms_fail(VMS_EINVAL, "stage %s: codec id %u outside the private range 64..254",
				st->name, st->id);
	if (!st->ctx_new || !st->ctx_free || !st->bound || !st->apply || !st->invert)
		return vms_fail(VMS_EINVAL, "stage %s: a required callback is missing", st->name);
	if (st->level_min > st->level_max || st->level_default < st->level_min ||
	    st->level_default > st->level_max)
		return vms_fail(VMS_EINVAL, "stage %s: level range inconsistent", st->name);

	pthread_mutex_lock(&reg_lock);
	if (atomic_load(&frozen)) {
		err = vms_fail(VMS_ESTATE, "stage %s: the registry is frozen once a stream was opened",
			       st->name);
		goto out_unlock;
	}
	if (vms_stage_find(st->name) || vms_stage_find_id(st->kind, st->id)) {
		err = vms_fail(VMS_EINVAL, "stage %s (id %u): name or id already registered",
			       st->name, st->id);
		goto out_unlock;
	}
	if (atomic_load(&nregistered) >= MAX_REGISTERED) {
		err = vms_fail(VMS_ENOMEM, "stage registry full (%d)", MAX_REGISTERED);
		goto out_unlock;
	}
	registered[atomic_load(&nregistered)] = st;
	atomic_fetch_add(&nregistered, 1);
out_unlock:
	pthread_mutex_unlock(&reg_lock);
	return err;
}

const struct vms_stage *vms_stage_find(const char *name)
{
	unsigned n = atomic_load(&nregistered);

	if (!name)
		return NULL;
	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
		if (strcmp(builtins[i]->name, name) == 0)
			return builtins[i];
	for (unsigned i = 0; i < n; i++)
		if (strcmp(registered[i]->name, name) == 0)
			return registered[i];
	return NULL;
}

const struct vms_stage *vms_stage_find_id(uint32_t kind, uint32_t id)
{
	unsigned n = atomic_load(&nregistered);

	for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
		if (builtins[i]->kind == kind && builtins[i]->id == id)
			return builtins[i];
	for (unsigned i = 0; i < n; i++)
		if (registered[i]->kind == kind && registered[i]->id == id)
			return registered[i];
	return NULL;
}
