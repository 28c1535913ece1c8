/* SPDX-License-Identifier: MIT */
/*
 * Writer and reader options, taken in once: the size field (base/abi.h),
 * the documented defaults, and every field against its bound (base/limits.h
 * and the public VMS_*_MAX). A caller's value that is out of range is
 * VMS_EINVAL naming the field; nothing is clamped silently.
 */
#include <string.h>
#include "base/abi.h"
#include "base/error.h"
#include "base/limits.h"
#include "stream/internal.h"

#define WRITER_FLAGS VMS_WRITER_F_NO_ZERO_ELISION
#define READER_FLAGS VMS_READER_F_HEADERS_ONLY

static int check_common(const char *what, int log_level, uint32_t threads, uint64_t memory)
{
	if (log_level < VMS_LOG_ERROR || log_level > VMS_LOG_DEBUG)
		return vms_fail(VMS_EINVAL, "%s: log_level %d outside [%d, %d]", what, log_level,
				VMS_LOG_ERROR, VMS_LOG_DEBUG);
	if (threads > VMS_THREADS_MAX && threads != VMS_THREADS_AUTO)
		return vms_fail(VMS_EINVAL, "%s: threads %u above the limit %u", what, threads,
				VMS_THREADS_MAX);
	if (memory > VMS_MEMORY_MAX)
		return vms_fail(VMS_EINVAL, "%s: memory %llu above the limit %llu", what,
				(unsigned long long)memory, (unsigned long long)VMS_MEMORY_MAX);
	return 0;
}

int vms_writer_opts_take(struct vms_writer_opts *o, const struct vms_writer_opts *in)
{
	struct vms_writer_opts def = VMS_WRITER_OPTS_INIT;
	int err = vms_opts_take(&def, sizeof(def), in, offsetof(struct vms_writer_opts, stream_id),
				"writer options");

	if (err)
		return err;
	if (def.chunk_size == 0)
		def.chunk_size = VMS_CHUNK_DEFAULT;
	if (def.chunk_size < VMS_CHUNK_MIN || def.chunk_size > VMS_CHUNK_MAX)
		return vms_fail(VMS_EINVAL, "writer options: chunk size %u outside [%u, %u]",
				def.chunk_size, VMS_CHUNK_MIN, VMS_CHUNK_MAX);
	err = check_common("writer options", def.log_level, def.threads, def.memory);
	if (err)
		return err;
	if (def.creator && strlen(def.creator) > VMS_CREATOR_MAX)
		return vms_fail(VMS_EINVAL, "writer options: creator longer than %u bytes",
				VMS_CREATOR_MAX);
	if (def.cipher > VMS_CIPHER_CHACHA20_POLY1305)
		return vms_fail(VMS_EINVAL, "writer options: unknown cipher id %u", def.cipher);
	if (def.flags & ~(uint32_t)WRITER_FLAGS)
		return vms_fail(VMS_EINVAL, "writer options: unknown flags 0x%x",
				def.flags & ~(uint32_t)WRITER_FLAGS);
	*o = def;
	return 0;
}

int vms_reader_opts_take(struct vms_reader_opts *o, const struct vms_reader_opts *in)
{
	struct vms_reader_opts def = VMS_READER_OPTS_INIT;
	int err = vms_opts_take(&def, sizeof(def), in, offsetof(struct vms_reader_opts, flags),
				"reader options");

	if (err)
		return err;
	if (def.max_chunk == 0)
		def.max_chunk = VMS_CHUNK_MAX;
	if (def.max_chunk < VMS_CHUNK_MIN || def.max_chunk > VMS_CHUNK_MAX)
		return vms_fail(VMS_EINVAL, "reader options: max_chunk %u outside [%u, %u]",
				def.max_chunk, VMS_CHUNK_MIN, VMS_CHUNK_MAX);
	err = check_common("reader options", def.log_level, def.threads, def.memory);
	if (err)
		return err;
	if (def.flags & ~(uint32_t)READER_FLAGS)
		return vms_fail(VMS_EINVAL, "reader options: unknown flags 0x%x",
				def.flags & ~(uint32_t)READER_FLAGS);
	*o = def;
	return 0;
}

int vms_budget_slots(uint64_t memory, size_t slot, unsigned min_slots, unsigned want,
		     const char *what, unsigned *nslots)
{
	uint64_t need = (uint64_t)slot * min_slots;
	uint64_t budget = memory;
	uint64_t fit;

	/* The default budget grows to what the stream's chunk cap and stages
	 * need, so whatever a writer accepts at its defaults a reader at its
	 * defaults accepts too; an explicit budget is a hard limit. */
	if (budget == 0)
		budget = need > VMS_MEMORY_DEFAULT ? need : VMS_MEMORY_DEFAULT;
	fit = budget / slot;
	if (fit > VMS_MEMORY_SLOTS_MAX)
		fit = VMS_MEMORY_SLOTS_MAX;
	if (fit < min_slots)
		return vms_fail(VMS_EINVAL,
				"memory budget %llu bytes is too small for %s: it needs at least %llu "
				"(--memory %llu, or 0 for the default, which sizes itself)",
				(unsigned long long)budget, what, (unsigned long long)need,
				(unsigned long long)need);
	*nslots = want < fit ? want : (unsigned)fit;
	return 0;
}
