/* SPDX-License-Identifier: MIT */
/*
 * Network addresses (vmstream.h, vms_addr_parse): "HOST:PORT", "[V6]:PORT"
 * or, for a listener, "PORT"; and whether an address is loopback. The one
 * parser of addresses: the session's public calls and the tools use it.
 */
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "base/error.h"
#include "session/internal.h"

#define PORT_MAX 65535u

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* p: the port part of addr. Decimal digits only, min..PORT_MAX. */
static int port_parse(const char *addr, const char *p, unsigned min, uint16_t *port)
{
	const char *q = p;
	uint64_t v = 0;

	if (!is_digit(*q))
		return vms_fail(VMS_EINVAL, "'%s': port '%s' is not a number", addr, p);
	for (; is_digit(*q); q++) {
		unsigned d = (unsigned)(*q - '0');

		if (v > (UINT64_MAX - d) / 10)
			return vms_fail(VMS_EINVAL, "'%s': port '%s' is too large", addr, p);
		v = v * 10 + d;
	}
	if (*q)
		return vms_fail(VMS_EINVAL, "'%s': port '%s' is not a number", addr, p);
	if (v < min || v > PORT_MAX)
		return vms_fail(VMS_EINVAL, "'%s': port '%s' is out of range (%u to %u)", addr, p, min,
				PORT_MAX);
	*port = (uint16_t)v;
	return 0;
}

/* The host part of addr: [start, start + n) into host. */
static int host_take(const char *addr, const char *start, size_t n, bool v6, char *host)
{
	if (n == 0 || n > VMS_ADDR_HOST_MAX)
		return vms_fail(VMS_EINVAL, v6 ? "'%s': bad IPv6 address" : "'%s': bad host name", addr);
	memcpy(host, start, n);
	host[n] = '\0';
	return 0;
}

int vms_addr_parse(const char *addr, uint32_t flags, char *host, size_t host_cap, uint16_t *port)
{
	char h[VMS_ADDR_HOST_MAX + 1] = "";
	const char *p = addr, *colon;
	bool listen = flags & VMS_ADDR_LISTEN;
	uint16_t pv = 0;
	int err = 0;

	if (!addr)
		return vms_fail(VMS_EINVAL, "no address");
	if (flags & ~VMS_ADDR_LISTEN)
		return vms_fail(VMS_EINVAL, "address flags 0x%x unknown", flags & ~VMS_ADDR_LISTEN);
	if (host && host_cap <= VMS_ADDR_HOST_MAX)
		return vms_fail(VMS_EINVAL, "address host buffer of %zu bytes: it needs %d",
				host_cap, VMS_ADDR_HOST_MAX + 1);
	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');

		if (!close || close[1] != ':')
			return vms_fail(VMS_EINVAL, "'%s': expected [IPV6]:PORT", addr);
		err = host_take(addr, addr + 1, (size_t)(close - addr - 1), true, h);
		p = close + 2;
	} else if ((colon = strrchr(addr, ':')) != NULL) {
		if (memchr(addr, ':', (size_t)(colon - addr)))
			return vms_fail(VMS_EINVAL, "'%s': write IPv6 addresses in brackets, [%.*s]:PORT",
					addr, (int)(colon - addr), addr);
		err = host_take(addr, addr, (size_t)(colon - addr), false, h);
		p = colon + 1;
	} else if (!listen) {
		return vms_fail(VMS_EINVAL, "'%s': expected HOST:PORT", addr);
	}
	if (!err)
		err = port_parse(addr, p, listen ? 0 : 1, &pv);
	if (err)
		return err;
	if (host)
		memcpy(host, h, sizeof(h));
	if (port)
		*port = pv;
	return 0;
}

int vms_addr_split(const char *addr, uint32_t flags, char host[VMS_ADDR_HOST_MAX + 1],
		   char port[8])
{
	uint16_t pv;
	int err = vms_addr_parse(addr, flags, host, VMS_ADDR_HOST_MAX + 1, &pv);

	if (err) {
		char m[VMS_MSG_MAX];

		snprintf(m, sizeof(m), "%s", vms_last_error());
		return vms_fail(err, "address %s", m);
	}
	snprintf(port, 8, "%u", pv);
	return 0;
}

bool vms_sockaddr_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

int vms_addr_is_loopback(const char *addr, uint32_t flags)
{
	struct addrinfo hints = { 0 }, *res = NULL;
	char host[VMS_ADDR_HOST_MAX + 1];
	int all = 1, err = vms_addr_parse(addr, flags, host, sizeof(host), NULL);

	if (err)
		return err;
	if (!host[0])
		return 0; /* "PORT": every address */
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
		return 0;
	for (const struct addrinfo *a = res; a; a = a->ai_next)
		if (!vms_sockaddr_loopback(a->ai_addr))
			all = 0;
	freeaddrinfo(res);
	return all;
}
