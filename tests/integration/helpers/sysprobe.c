/* sysprobe SYSCALL...: try syscalls the default seccomp profile must refuse and
 * print "NAME=ok" or "NAME=ERRNONAME" for each. Built static by conftest.py and
 * bind-mounted read-only into containers. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <linux/sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef KEYCTL_GET_KEYRING_ID
#define KEYCTL_GET_KEYRING_ID 0
#endif

static long probe(const char *name)
{
	if (!strcmp(name, "keyctl"))
		return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, -3 /* session */, 0);
	if (!strcmp(name, "add_key"))
		return syscall(SYS_add_key, "user", "hutch-probe", "x", 1, -3);
	if (!strcmp(name, "bpf")) {
		union bpf_attr attr;
		memset(&attr, 0, sizeof(attr));
		attr.map_type = BPF_MAP_TYPE_ARRAY;
		attr.key_size = 4;
		attr.value_size = 4;
		attr.max_entries = 1;
		return syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
	}
	if (!strcmp(name, "clone3")) {
		struct clone_args args;
		memset(&args, 0, sizeof(args));
		args.exit_signal = SIGCHLD;
		long pid = syscall(SYS_clone3, &args, sizeof(args));
		if (pid == 0)
			_exit(0);
		if (pid > 0)
			waitpid((pid_t)pid, NULL, 0);
		return pid;
	}
	if (!strcmp(name, "unshare-user"))
		return syscall(SYS_unshare, CLONE_NEWUSER);
	if (!strcmp(name, "perf_event_open"))
		return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
	errno = EINVAL;
	return -2;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		errno = 0;
		long r = probe(argv[i]);
		if (r == -2)
			printf("%s=unknown-probe\n", argv[i]);
		else if (r < 0)
			printf("%s=%s\n", argv[i], strerrorname_np(errno));
		else
			printf("%s=ok\n", argv[i]);
	}
	return 0;
}
