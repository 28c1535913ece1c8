/* SPDX-License-Identifier: MIT */
#include <string.h>
#include <sys/mman.h>
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
