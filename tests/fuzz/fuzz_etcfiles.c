/* The host's /etc/resolv.conf and /etc/hosts as hutch reads them to make a
 * container's: any bytes. What comes out must be well-formed for the
 * container's resolver: only nameserver/search/options lines, valid addresses,
 * no loopback server without the host's network, bounded lists; a hosts file
 * that keeps the host's text and adds only clean lines. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "runtime/etcfiles_internal.h"

static void check_resolv(const char *out, size_t in_size)
{
	size_t servers = 0;
	if (strlen(out) > 3 * in_size + 64)
		abort();
	for (const char *line = out; *line;) {
		const char *end = strchr(line, '\n');
		if (!end)
			abort(); /* every line ends in a newline */
		size_t len = (size_t)(end - line);
		if (len > 11 && !strncmp(line, "nameserver ", 11)) {
			char addr[80];
			if (len - 11 >= sizeof(addr))
				abort();
			memcpy(addr, line + 11, len - 11);
			addr[len - 11] = '\0';
			if (!hutch_ip_valid(addr) || !strncmp(addr, "127.", 4) ||
			    !strcmp(addr, "::1"))
				abort();
			servers++;
		} else if (!(len > 7 && !strncmp(line, "search ", 7)) &&
			   !(len > 8 && !strncmp(line, "options ", 8))) {
			abort();
		}
		for (const char *p = line; p < end; p++)
			if (*p == '\r')
				abort();
		line = end + 1;
	}
	if (servers > 64)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	size_t len = strlen(text);

	struct hutch_spec *spec = hutch_spec_new();
	spec->hostname = xstrdup("fuzzbox");
	char *out = etc_resolv_conf_content(spec, text);
	check_resolv(out, len);
	free(out);
	out = etc_hosts_content(spec, text);
	if (strstr(out, "fuzzbox") == NULL) /* the host's text is not used here */
		abort();
	free(out);

	/* the host's network: the host's files kept as they are */
	hutch_spec_share_namespace(spec, HUTCH_NS_NETWORK);
	out = etc_resolv_conf_content(spec, text);
	if (strncmp(out, text, len))
		abort();
	free(out);
	out = etc_hosts_content(spec, text);
	if (strncmp(out, text, len))
		abort();
	free(out);
	free(text);
	hutch_spec_free(spec);
	return 0;
}
