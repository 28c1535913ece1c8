/* SPDX-License-Identifier: MIT */
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include "core/error.h"
#include "core/internal.h"

#define HUGE_2M (2u << 20)

void *vms_alloc_prefault(size_t len)
{
	void *p;

	if (len == 0)
		return NULL;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* Transparent huge pages cut the fault and TLB cost of big buffers
	 * where the kernel allows it; a refusal is harmless. */
	if (len >= HUGE_2M)
		(void)madvise(p, len, MADV_HUGEPAGE);
	memset(p, 0, len);
	return p;
}

void vms_free_prefault(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

size_t vms_page_round(size_t n)
{
	return (n + 4095) & ~(size_t)4095;
}

unsigned vms_online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (n > 64 ? 64 : (unsigned)n);
}

int vms_stats_copy_out(struct vms_stats *dst, const struct vms_stats *src)
{
	if (!dst || dst->size < sizeof(uint32_t))
		return vms_fail(VMS_EINVAL, "stats: bad size field");
	memcpy((char *)dst + sizeof(uint32_t), (const char *)src + sizeof(uint32_t),
	       (dst->size < sizeof(*src) ? dst->size : sizeof(*src)) - sizeof(uint32_t));
	return 0;
}
