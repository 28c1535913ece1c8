/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include "base/alloc.h"
#include "base/error.h"
#include "base/alloc.h"

#define HUGE_2M (2u << 20)

void *vms_alloc_prefault(size_t len)
{
	uint8_t *p, *a;
	size_t map;

	if (len == 0)
		return NULL;
	len = vms_page_round(len);
	/* Big buffers start on a 2 MiB boundary, so that transparent huge
	 * pages (where the kernel allows them) back all of it but the tail:
	 * first touch of a fresh page is the expensive part of opening a
	 * writer or reader (about 10 us per 4 KiB page in a VM, 40 times less
	 * per byte with 2 MiB pages). */
	map = len >= HUGE_2M ? len + HUGE_2M : len;
	p = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	a = p;
	if (map != len) {
		a = (uint8_t *)(((uintptr_t)p + HUGE_2M - 1) & ~(uintptr_t)(HUGE_2M - 1));
		if (a > p)
			munmap(p, (size_t)(a - p));
		if (p + map > a + len)
			munmap(a + len, (size_t)(p + map - (a + len)));
		/* a refusal is harmless */
		(void)madvise(a, len, MADV_HUGEPAGE);
	}
	memset(a, 0, len);
	return a;
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
