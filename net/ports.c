/* -p [IP:|[IPv6]:][HOST[-HOST2]:]CONTAINER[-CONTAINER2][/tcp|/udp], as Docker reads it. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "net/net.h"

const char *hutch_port_proto_name(enum hutch_port_proto p)
{
	return p == HUTCH_PORT_UDP ? "udp" : "tcp";
}

/* "N" or "N-M" (1-65535, N <= M). */
static int parse_range(const char *s, size_t len, uint16_t *lo, uint16_t *hi)
{
	unsigned long v[2] = {0, 0};
	int k = 0;
	size_t i = 0;
	for (;;) {
		size_t digits = 0;
		while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 6) {
			v[k] = v[k] * 10 + (unsigned long)(s[i] - '0');
			i++;
			digits++;
		}
		if (digits == 0 || digits > 5 || v[k] < 1 || v[k] > 65535)
			return -1;
		if (i == len)
			break;
		if (s[i] != '-' || k == 1)
			return -1;
		i++;
		k = 1;
	}
	*lo = (uint16_t)v[0];
	*hi = (uint16_t)(k ? v[1] : v[0]);
	return *lo <= *hi ? 0 : -1;
}

int hutch_port_parse(const char *arg, struct hutch_port_map *out, struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(arg, strlen(arg));
	_cleanup_free_ char *s = xstrdup(arg);
	*out = (struct hutch_port_map){0};
	char *proto = strrchr(s, '/');
	if (proto) {
		*proto++ = '\0';
		if (!strcmp(proto, "tcp"))
			out->proto = HUTCH_PORT_TCP;
		else if (!strcmp(proto, "udp"))
			out->proto = HUTCH_PORT_UDP;
		else
			return hutch_fail(
			    err, 0, "invalid published port '%s': protocol must be tcp or udp",
			    shown);
	}
	/* [ADDR]: an IPv6 host address, the rest split as without one */
	char *rest = s;
	if (s[0] == '[') {
		char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return hutch_fail(err, 0,
					  "invalid published port '%s': an IPv6 host address is "
					  "written in brackets and followed by ':' ([::]:8080:80)",
					  shown);
		*close = '\0';
		if (inet_pton(AF_INET6, s + 1, out->host_ip6) != 1) {
			_cleanup_free_ char *a = printable(s + 1, strlen(s + 1));
			return hutch_fail(err, 0,
					  "invalid published port '%s': '%s' is no IPv6 address",
					  shown, a);
		}
		static const uint8_t loopback[16] = {[15] = 1};
		if (!memcmp(out->host_ip6, loopback, 16))
			return hutch_fail(
			    err, 0,
			    "invalid published port '%s': the host's [::1] cannot be published: "
			    "IPv6 has no route_localnet, and the kernel drops the container's "
			    "replies to ::1 that come in by a bridge (it would take a proxy "
			    "process); publish on [::] and reach it from the host by one of its "
			    "own IPv6 addresses, or on 127.0.0.1",
			    shown);
		out->ipv6 = true;
		rest = close + 2;
		if (!strchr(rest, ':'))
			return hutch_fail(
			    err, 0,
			    "invalid published port '%s': after the host address comes "
			    "HOST:CONTAINER or :CONTAINER",
			    shown);
	}
	/* split at the last two ':' */
	char *parts[3] = {NULL, NULL, NULL};
	char *c2 = strrchr(rest, ':');
	if (c2) {
		*c2 = '\0';
		parts[2] = c2 + 1;
		char *c1 = strrchr(rest, ':');
		if (c1) {
			*c1 = '\0';
			parts[0] = rest;
			parts[1] = c1 + 1;
		} else {
			parts[1] = rest;
		}
	} else {
		parts[2] = rest;
	}
	if (parts[0]) {
		if (out->ipv6 || strchr(parts[0], ':'))
			return hutch_fail(err, 0,
					  "invalid published port '%s': an IPv6 host address is "
					  "written in brackets, [::]:8080:80",
					  shown);
		struct in_addr a;
		if (!*parts[0])
			return hutch_fail(err, 0, "invalid published port '%s': empty host address",
					  shown);
		if (inet_pton(AF_INET, parts[0], &a) != 1)
			return hutch_fail(err, 0,
					  "invalid published port '%s': '%s' is no IPv4 address",
					  shown, parts[0]);
		out->host_ip = ntohl(a.s_addr);
	}
	uint16_t clo, chi;
	if (parse_range(parts[2], strlen(parts[2]), &clo, &chi) < 0)
		return hutch_fail(err, 0,
				  "invalid published port '%s': container port '%s' must be a "
				  "port (1-65535) or a range N-M",
				  shown, parts[2]);
	out->container_port = clo;
	out->count = (uint16_t)(chi - clo + 1);
	if (parts[1] && *parts[1]) {
		uint16_t hlo, hhi;
		if (parse_range(parts[1], strlen(parts[1]), &hlo, &hhi) < 0)
			return hutch_fail(err, 0,
					  "invalid published port '%s': host port '%s' must be a "
					  "port (1-65535) or a range N-M",
					  shown, parts[1]);
		if (hhi - hlo != chi - clo)
			return hutch_fail(err, 0,
					  "invalid published port '%s': the host range %s has %u "
					  "ports, the container range %u",
					  shown, parts[1], hhi - hlo + 1u, chi - clo + 1u);
		out->host_port = hlo;
	} else if (out->count > 1) {
		return hutch_fail(
		    err, 0,
		    "invalid published port '%s': a container port range needs a host "
		    "range of the same size",
		    shown);
	}
	return 0;
}

void hutch_port_format(const struct hutch_port_map *p, char buf[HUTCH_PORT_FORMAT_LEN])
{
	size_t n = 0;
	if (p->ipv6) {
		char ip[INET6_ADDRSTRLEN];
		inet_ntop(AF_INET6, p->host_ip6, ip, sizeof(ip));
		n = (size_t)snprintf(buf, HUTCH_PORT_FORMAT_LEN, "[%s]:", ip);
	} else if (p->host_ip) {
		char ip[16];
		hutch_ipv4_format(p->host_ip, ip);
		n = (size_t)snprintf(buf, HUTCH_PORT_FORMAT_LEN, "%s:", ip);
	}
	if (p->count > 1)
		snprintf(buf + n, HUTCH_PORT_FORMAT_LEN - n, "%u-%u:%u-%u/%s", p->host_port,
			 p->host_port + p->count - 1u, p->container_port,
			 p->container_port + p->count - 1u, hutch_port_proto_name(p->proto));
	else
		snprintf(buf + n, HUTCH_PORT_FORMAT_LEN - n, "%u:%u/%s", p->host_port,
			 p->container_port, hutch_port_proto_name(p->proto));
}
