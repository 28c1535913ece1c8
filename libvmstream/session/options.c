/* SPDX-License-Identifier: MIT */
/*
 * Network options (struct vms_net_opts) taken in once, at the public call,
 * and the TLS credentials they describe.
 */
#include "base/abi.h"
#include "base/error.h"
#include "session/internal.h"
#include "session/tls.h"

#define NET_FLAGS (VMS_NET_F_INSECURE | VMS_NET_F_ALLOW_PLAINTEXT)

bool vms_net_authenticated(const struct vms_net_opts *n)
{
	return n->psk || n->cert_file || n->key_file || n->ca_file;
}

static int timeout_take(const char *name, int *ms, int def)
{
	if (*ms < 0 || *ms > VMS_TIMEOUT_MAX_MS)
		return vms_fail(VMS_EINVAL, "network options: %s %d ms outside [0, %d] (0 = %d)", name,
				*ms, VMS_TIMEOUT_MAX_MS, def);
	if (*ms == 0)
		*ms = def;
	return 0;
}

int vms_net_opts_take(struct vms_net_opts *dst, const struct vms_net_opts *src)
{
	struct vms_net_opts def = VMS_NET_OPTS_INIT;
	int err = vms_opts_take(&def, sizeof(def), src, sizeof(def), "network options");

	if (err)
		return err;
	if (def.lanes == 0)
		def.lanes = 1;
	if (def.lanes > VMS_LANES_MAX)
		return vms_fail(VMS_EINVAL, "network options: lanes %u outside [1, %u]", def.lanes,
				VMS_LANES_MAX);
	err = timeout_take("connect_timeout_ms", &def.connect_timeout_ms, VMS_CONNECT_MS_DEFAULT);
	if (!err)
		err = timeout_take("idle_timeout_ms", &def.idle_timeout_ms, VMS_IDLE_MS_DEFAULT);
	if (err)
		return err;
	if (def.io > VMS_IO_POSIX)
		return vms_fail(VMS_EINVAL, "network options: unknown I/O engine %u", def.io);
	if (def.rate_limit > VMS_RATE_MAX)
		return vms_fail(VMS_EINVAL, "network options: rate_limit %llu above %llu bytes/s",
				(unsigned long long)def.rate_limit, (unsigned long long)VMS_RATE_MAX);
	if (def.flags & ~(uint32_t)NET_FLAGS)
		return vms_fail(VMS_EINVAL, "network options: unknown flags 0x%x",
				def.flags & ~(uint32_t)NET_FLAGS);
	/* the PSK identity is checked where the credentials are made (tls.c) */
	if (def.psk && (def.cert_file || def.key_file || def.ca_file))
		return vms_fail(VMS_EINVAL, "choose either a PSK or certificates, not both");
	if (!def.psk && (def.cert_file || def.key_file || def.ca_file) &&
	    !(def.cert_file && def.key_file && def.ca_file))
		return vms_fail(VMS_EINVAL, "certificate mode needs a certificate, a key and a CA file");
	*dst = def;
	return 0;
}

int vms_net_creds(const struct vms_net_opts *n, int is_server, struct vms_tls_creds **out)
{
	struct vms_tls_conf conf = { 0 };

	*out = NULL;
	if (!vms_net_authenticated(n))
		return 0;
	conf.psk = n->psk;
	conf.psk_len = n->psk ? VMS_KEY_LEN : 0;
	conf.psk_identity = n->psk_identity;
	conf.cert_file = n->cert_file;
	conf.key_file = n->key_file;
	conf.ca_file = n->ca_file;
	return vms_tls_creds_new(out, &conf, is_server);
}
