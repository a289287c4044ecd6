/* The supervisor's control protocol (supervisor/proto.c): arbitrary bytes as
 * one request line from a client of the control socket. A parse either fails
 * with a message and nothing held, or gives a request that keeps its promises:
 * a known command, non-empty service names, a timeout in range. */
#include <stdlib.h>
#include <string.h>

#include "supervisor/sup_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sup_request r;
	char *msg = NULL;
	if (sup_parse_request((const char *)data, size, &r, &msg) < 0) {
		if (!msg || !*msg || r.services || r.n_services)
			abort();
		free(msg);
		return 0;
	}
	if (msg || r.cmd > SUP_CMD_UP || r.timeout_ns < -1 ||
	    r.timeout_ns > 31536000LL * 1000000000LL || r.n_services > SUP_SERVICES_MAX)
		abort();
	if ((r.cmd == SUP_CMD_START || r.cmd == SUP_CMD_STOP || r.cmd == SUP_CMD_RESTART) &&
	    !r.n_services)
		abort();
	for (size_t i = 0; i < r.n_services; i++)
		if (!r.services[i] || !*r.services[i])
			abort();
	sup_request_free(&r);
	return 0;
}
