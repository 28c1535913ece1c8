/* SPDX-License-Identifier: MIT */
/*
 * Network addresses: "HOST:PORT", "[V6]:PORT" or "PORT", and whether an
 * address is loopback.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include "base/error.h"
#include "session/internal.h"

/* "HOST:PORT", "[V6]:PORT" or "PORT" (listen only: any address). */
int vms_split_addr(const char *addr, char *host, size_t hcap, char *port, size_t pcap,
		   bool allow_no_host)
{
	const char *colon;
	size_t hl;

	if (!addr || !*addr)
		return vms_fail(VMS_EINVAL, "empty address");
	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');

		if (!end || end[1] != ':')
			return vms_fail(VMS_EINVAL, "address \"%s\": expected [IPV6]:PORT", addr);
		hl = (size_t)(end - addr - 1);
		colon = end + 1;
		if (hl >= hcap)
			return vms_fail(VMS_EINVAL, "address \"%s\": host too long", addr);
		memcpy(host, addr + 1, hl);
		host[hl] = '\0';
	} else {
		colon = strrchr(addr, ':');
		if (!colon) {
			if (!allow_no_host)
				return vms_fail(VMS_EINVAL, "address \"%s\": expected HOST:PORT", addr);
			host[0] = '\0';
			colon = addr - 1;
		} else {
			hl = (size_t)(colon - addr);
			if (hl >= hcap || memchr(addr, ':', hl))
				return vms_fail(VMS_EINVAL, "address \"%s\": IPv6 literals need brackets", addr);
			memcpy(host, addr, hl);
			host[hl] = '\0';
		}
	}
	{
		const char *p = colon + 1;
		char *end;
		long v;

		errno = 0;
		v = strtol(p, &end, 10);
		if (!*p || *end || errno || v < 0 || v > 65535 || strlen(p) >= pcap)
			return vms_fail(VMS_EINVAL, "address \"%s\": port must be 0..65535", addr);
		snprintf(port, pcap, "%ld", v);
	}
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
