/* SPDX-License-Identifier: MIT */
#include <string.h>
#include <unistd.h>
#include "stream/internal.h"

void vms_transport_init_fd(struct vms_transport *t, int fd)
{
	memset(t, 0, sizeof(*t));
	t->nlanes = 1;
	t->fds[0] = fd;
	t->engine = VMS_IO_AUTO;
	t->idle_timeout_ms = -1;
}

void vms_transport_release(struct vms_transport *t)
{
	if (t->own_fds)
		for (unsigned i = 0; i < t->nlanes; i++)
			if (t->fds[i] >= 0)
				close(t->fds[i]);
	t->own_fds = false;
	vms_wipe(t->ikm_c2s, sizeof(t->ikm_c2s));
	vms_wipe(t->ikm_s2c, sizeof(t->ikm_s2c));
	t->keyed = false;
}
