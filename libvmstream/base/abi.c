/* SPDX-License-Identifier: MIT */
#include <string.h>
#include "base/abi.h"
#include "base/error.h"

int vms_opts_take(void *dst, size_t dst_size, const void *src, size_t min_size,
		  const char *what)
{
	uint32_t size;

	if (!src)
		return 0;
	memcpy(&size, src, sizeof(size));
	if (size < min_size || size > dst_size)
		return vms_fail(VMS_EINVAL, "%s: size field %u outside [%zu, %zu] (initialise it with its _INIT macro)",
				what, size, min_size, dst_size);
	memcpy(dst, src, size);
	memcpy(dst, &(uint32_t){ (uint32_t)dst_size }, sizeof(uint32_t));
	return 0;
}

int vms_struct_out(void *dst, const void *src, size_t src_size, size_t min_size,
		   const char *what)
{
	uint32_t size;
	size_t n;

	if (!dst)
		return vms_fail(VMS_EINVAL, "%s: NULL output struct", what);
	memcpy(&size, dst, sizeof(size));
	if (size < min_size || size < sizeof(uint32_t))
		return vms_fail(VMS_EINVAL, "%s: size field %u below %zu (initialise it with sizeof)",
				what, size, min_size);
	n = size < src_size ? size : src_size;
	memcpy((char *)dst + sizeof(uint32_t), (const char *)src + sizeof(uint32_t),
	       n - sizeof(uint32_t));
	if (size > n)
		memset((char *)dst + n, 0, size - n);
	return 0;
}
