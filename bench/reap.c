/* bench/reap: run a command as a child subreaper, reap its whole process tree, and report
 * the peak RSS seen in that tree.
 *
 *   reap [-o FILE] [-t SECONDS] -- CMD [ARG...]
 *
 * Why a subreaper: runtimes fork helpers that outlive or detach from the command we start
 * (podman's conmon double-forks, runc and crun fork an init). Without a subreaper those
 * orphans are reparented to PID 1, which on these machines does not reap, so they would
 * pile up as zombies and their memory would be missing from the measurement. As a
 * subreaper we adopt them, reap them, and getrusage(RUSAGE_CHILDREN) then covers every
 * process of the tree.
 *
 * What ru_maxrss means here: the largest peak RSS of any single process in the tree
 * (the kernel folds each reaped child's own and children's peak into its parent by max,
 * not by sum). It includes the fork of this helper before exec (kept small by linking
 * statically), so /bin/true under reap shows the floor of the method.
 *
 * After CMD exits, remaining descendants are waited for at most SECONDS (default 10);
 * the exit status is CMD's (128+N if killed by signal N). The peak RSS in KiB is written
 * to FILE (one line), or to stderr as "reap: maxrss_kib=N" when -o is not given. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t timed_out;
static volatile pid_t main_pid;

static void on_alarm(int sig)
{
	(void)sig;
	timed_out = 1;
}

/* Ctrl-C and kill reach the command too, so the tree winds down and we still reap it. */
static void forward(int sig)
{
	if (main_pid > 0)
		kill(main_pid, sig);
}

static void usage(void)
{
	fprintf(stderr, "usage: reap [-o FILE] [-t SECONDS] -- CMD [ARG...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *out_path = NULL;
	unsigned linger = 10;
	int opt;

	while ((opt = getopt(argc, argv, "+o:t:")) != -1) {
		switch (opt) {
		case 'o':
			out_path = optarg;
			break;
		case 't':
			linger = (unsigned)strtoul(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();

	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		fprintf(stderr, "reap: prctl(PR_SET_CHILD_SUBREAPER): %s\n", strerror(errno));
		return 125;
	}

	struct sigaction sa = {0};
	sa.sa_handler = forward;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL); /* no SA_RESTART: waitpid returns EINTR */

	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "reap: fork: %s\n", strerror(errno));
		return 125;
	}
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		execvp(argv[optind], argv + optind);
		fprintf(stderr, "reap: cannot run %s: %s\n", argv[optind], strerror(errno));
		_exit(127);
	}
	main_pid = pid;

	int main_status = -1;
	for (;;) {
		int status;
		pid_t got = waitpid(-1, &status, 0);
		if (got == pid) {
			main_status = status;
			main_pid = 0;
			alarm(linger);
			continue;
		}
		if (got > 0)
			continue;
		if (errno == EINTR && !timed_out)
			continue;
		break; /* ECHILD: the whole tree is gone; or EINTR after the linger timeout */
	}
	alarm(0);
	if (timed_out)
		fprintf(stderr, "reap: descendants of %s still running after %us; not waiting\n",
			argv[optind], linger);

	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	if (out_path) {
		FILE *f = fopen(out_path, "w");
		if (!f || fprintf(f, "%ld\n", ru.ru_maxrss) < 0 || fclose(f) != 0) {
			fprintf(stderr, "reap: cannot write %s: %s\n", out_path, strerror(errno));
			return 125;
		}
	} else {
		fprintf(stderr, "reap: maxrss_kib=%ld\n", ru.ru_maxrss);
	}

	if (WIFEXITED(main_status))
		return WEXITSTATUS(main_status);
	if (WIFSIGNALED(main_status))
		return 128 + WTERMSIG(main_status);
	return 125;
}
