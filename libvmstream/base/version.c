/* SPDX-License-Identifier: MIT */
#include "vmstream.h"

#define VMS_STR2(x) #x
#define VMS_STR(x) VMS_STR2(x)

const char *vms_version_string(void)
{
	return VMS_STR(VMS_VERSION_MAJOR) "." VMS_STR(VMS_VERSION_MINOR) "." VMS_STR(VMS_VERSION_PATCH);
}
