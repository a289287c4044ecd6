/* escprobe COMMAND [ARG...]: container escape attempts for test_escapes.py. Built
 * static at test time and bind-mounted read-only into containers. Each attempt
 * prints NAME=ok or NAME=ERRNONAME (EPERM, ENOENT...), one per line. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void report(const char *name, long r)
{
	if (r < 0)
		printf("%s=%s\n", name, strerrorname_np(errno));
	else
		printf("%s=ok\n", name);
}

/* Every fd of this process with its target, read while the directory is open:
 * the directory's own fd shows as /proc/<pid>/fd. */
static int list_fds(void)
{
	char cwd[4096];
	printf("pid=%d\n", getpid());
	printf("cwd=%s\n", getcwd(cwd, sizeof(cwd)) ? cwd : strerrorname_np(errno));
	DIR *d = opendir("/proc/self/fd");
	if (!d) {
		printf("opendir=%s\n", strerrorname_np(errno));
		return 1;
	}
	printf("dirfd=%d\n", dirfd(d));
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[300], target[4096];
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		printf("fd %s %s\n", e->d_name, n > 0 ? target : strerrorname_np(errno));
	}
	closedir(d);
	return 0;
}

/* For every pid in /proc: can its exe be opened for reading, for writing? Prints
 * "exe PID DEV:INO|ERRNO" and, with write, "write PID ok|ERRNO" (it appends one
 * byte when it can: a write to a runtime's binary is the CVE-2019-5736 escape). */
static int scan_exes(int do_write)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t self = getpid();
	while (d && (e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0 || pid == self)
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0)
			printf("exe %ld %lu:%lu\n", pid, (unsigned long)st.st_dev,
			       (unsigned long)st.st_ino);
		else
			printf("exe %ld %s\n", pid, strerrorname_np(errno));
		if (fd >= 0)
			close(fd);
		if (do_write) {
			int w = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
			if (w >= 0 && write(w, "x", 1) == 1)
				printf("write %ld ok\n", pid);
			else
				printf("write %ld %s\n", pid, strerrorname_np(errno));
			if (w >= 0)
				close(w);
		}
	}
	if (d)
		closedir(d);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: escprobe COMMAND [ARG...]\n");
		return 2;
	}
	const char *cmd = argv[1];
	const char *arg = argc > 2 ? argv[2] : NULL;
	errno = 0;
	if (!strcmp(cmd, "fds"))
		return list_fds();
	if (!strcmp(cmd, "exescan"))
		return scan_exes(arg && !strcmp(arg, "write"));
	if (!strcmp(cmd, "mount")) {
		report("mount", mount("none", arg, "tmpfs", 0, NULL));
		report("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
		return 0;
	}
	if (!strcmp(cmd, "modules")) {
		/* any file will do: the permission check comes before the ELF check */
		int fd = open(arg, O_RDONLY | O_CLOEXEC);
		report("finit_module", syscall(SYS_finit_module, fd, "", 0));
		static char image[4096];
		ssize_t n = fd >= 0 ? pread(fd, image, sizeof(image), 0) : 0;
		report("init_module", syscall(SYS_init_module, image, n > 0 ? n : 0, ""));
		report("delete_module", syscall(SYS_delete_module, "loop", O_NONBLOCK));
		return 0;
	}
	if (!strcmp(cmd, "bpf")) {
		union bpf_attr attr;
		memset(&attr, 0, sizeof(attr));
		attr.map_type = BPF_MAP_TYPE_ARRAY;
		attr.key_size = 4;
		attr.value_size = 4;
		attr.max_entries = 1;
		report("bpf", syscall(321, BPF_MAP_CREATE, &attr, sizeof(attr)));
		return 0;
	}
	if (!strcmp(cmd, "keyctl")) {
		report("keyctl", syscall(250, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
		report("keyctl_join", syscall(250, KEYCTL_JOIN_SESSION_KEYRING, "hutch-probe"));
		report("add_key", syscall(SYS_add_key, "user", "hutch-probe", "x", 1,
					  KEY_SPEC_PROCESS_KEYRING));
		report("request_key", syscall(SYS_request_key, "user", "hutch-probe", NULL, 0));
		return 0;
	}
	if (!strcmp(cmd, "ptrace")) {
		pid_t pid = (pid_t)atoi(arg);
		long r = ptrace(PTRACE_ATTACH, pid, NULL, NULL);
		int e = errno;
		if (r == 0) {
			waitpid(pid, NULL, __WALL);
			ptrace(PTRACE_DETACH, pid, NULL, NULL);
		}
		errno = e;
		report("ptrace", r);
		return 0;
	}
	if (!strcmp(cmd, "settime")) {
		/* set the clock to what it is: harmless if it were allowed */
		struct timeval tv;
		struct timespec ts;
		gettimeofday(&tv, NULL);
		report("settimeofday", settimeofday(&tv, NULL));
		clock_gettime(CLOCK_REALTIME, &ts);
		report("clock_settime", clock_settime(CLOCK_REALTIME, &ts));
		struct timex tx;
		memset(&tx, 0, sizeof(tx));
		tx.modes = ADJ_OFFSET_SINGLESHOT;
		report("adjtimex", syscall(SYS_adjtimex, &tx));
		return 0;
	}
	if (!strcmp(cmd, "bind")) {
		/* bind a TCP port on 127.0.0.1 (nothing is sent anywhere) */
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(arg))};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		int one = 1;
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		report("bind", s < 0 ? -1 : bind(s, (struct sockaddr *)&a, sizeof(a)));
		return 0;
	}
	if (!strcmp(cmd, "sethostname")) {
		report("sethostname", sethostname(arg, strlen(arg)));
		return 0;
	}
	fprintf(stderr, "escprobe: unknown command '%s'\n", cmd);
	return 2;
}
