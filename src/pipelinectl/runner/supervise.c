/*
 * runner/supervise.c: the supervisor of one command.
 *
 * The runner forks a supervisor per command (no exec: this code runs in the
 * fork); the supervisor forks the command, /bin/sh -c COMMAND, in a process
 * group of its own, and stays its parent:
 *   - it is a child subreaper (PR_SET_CHILD_SUBREAPER), so every process the
 *     command starts and orphans, also one that left the group or the session
 *     (setsid, a daemon's double fork), becomes its child instead of init's;
 *   - when the command's shell exits, it kills what is left: the shell's
 *     group and every process that was reparented to it (SIGKILL, until it has
 *     no child left), then exits with the shell's status (or dies of the
 *     shell's signal), which is what the runner reports;
 *   - SIGTERM (from the runner: cancel, timeout, shutdown) is passed to the
 *     command's group; SIGUSR1 (the runner's SIGKILL escalation) kills
 *     everything at once;
 *   - it dies with the runner: PR_SET_PDEATHSIG delivers SIGUSR1 when the
 *     runner goes away (even by SIGKILL), and it then kills everything.
 * The command's shell gets PR_SET_PDEATHSIG SIGKILL too, so that it does not
 * outlive a supervisor that was killed.
 *
 * Locking: none.  Single-threaded, so malloc and stdio are safe after fork;
 * the supervisor never touches the runner's database connection and leaves
 * with _exit().
 */
#define _GNU_SOURCE
#include "runner.h"
#include "../lib/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LEFT 4096				/* processes killed per sweep */

static void
say(int fd, const char *a, const char *b)
{
	ssize_t w = write(fd, a, strlen(a));

	if (b)
		w = write(fd, b, strlen(b));
	w = write(fd, "\n", 1);
	(void) w;
}

void
close_from(int lowfd, int keep)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
	if (keep < lowfd && close_range((unsigned) lowfd, ~0U, 0) == 0)
		return;
	if (keep >= lowfd && (keep == lowfd || close_range((unsigned) lowfd, (unsigned) keep - 1, 0) == 0) &&
		close_range((unsigned) keep + 1, ~0U, 0) == 0)
		return;
#endif
	long max = sysconf(_SC_OPEN_MAX);

	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = lowfd; fd < max; fd++)
		if (fd != keep)
			close(fd);
}

/* the command's shell: never returns */
static PCTL_NORETURN void
exec_command(const spawn_args *a, pid_t supervisor)
{
	char *argv[4];
	int devnull;

	setpgid(0, 0);
	signals_restore_child();
	if (dup2(a->out_fd, 1) < 0 || dup2(a->out_fd, 2) < 0)
		_exit(127);
	devnull = open("/dev/null", O_RDONLY);
	if (devnull >= 0 && devnull != 0)
	{
		dup2(devnull, 0);
		close(devnull);
	}
	close_from(3, -1);
	if (a->ju->set &&
		(setgroups((size_t) a->ju->ngroups, a->ju->groups) != 0 || setgid(a->ju->gid) != 0 ||
		 setuid(a->ju->uid) != 0))
	{
		say(2, "pipelinectl: cannot switch to the job user: ", strerror(errno));
		_exit(127);
	}
	/* after setuid: a change of credentials clears it */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (getppid() != supervisor)
		_exit(127);
	if (chdir(a->workdir) != 0)
	{
		say(2, "pipelinectl: cannot enter the work directory: ", strerror(errno));
		_exit(127);
	}
	argv[0] = "sh";
	argv[1] = "-c";
	argv[2] = (char *) a->command;
	argv[3] = NULL;
	execve("/bin/sh", argv, a->envp);
	say(2, "pipelinectl: cannot execute /bin/sh: ", strerror(errno));
	_exit(127);
}

/* SIGKILL the command's group and every process that was reparented to us */
static void
kill_left(pid_t shell)
{
	pid_t left[MAX_LEFT];
	int n;

	kill(-shell, SIGKILL);
	n = proc_children(getpid(), left, MAX_LEFT);
	for (int i = 0; i < n; i++)
	{
		proc_stat st;

		/* a group it leads (setsid) goes with it; never a group it merely joined */
		if (proc_read_stat(left[i], &st) && st.pgid == left[i])
			kill(-st.pgid, SIGKILL);
		kill(left[i], SIGKILL);
	}
}

void
supervise_command(const spawn_args *a)
{
	sigset_t set;
	pid_t shell, me = getpid();
	int status = 0;
	bool shell_done = false, killing = false;

	setpgid(0, 0);
	signals_restore_child();
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	prctl(PR_SET_PDEATHSIG, SIGUSR1, 0, 0, 0);
	if (getppid() != a->runner_pid)
		_exit(127);				/* the runner is gone already */
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	close_from(3, a->out_fd);

	shell = fork();
	if (shell < 0)
	{
		say(a->out_fd, "pipelinectl: cannot fork: ", strerror(errno));
		_exit(127);
	}
	if (shell == 0)
		exec_command(a, me);
	setpgid(shell, shell);		/* whichever runs first */
	close(a->out_fd);			/* EOF comes when the command's processes are gone */

	for (;;)
	{
		struct timespec ts = {0, 200 * 1000 * 1000};
		siginfo_t si;
		pid_t p;
		int st, sig;

		while ((p = waitpid(-1, &st, WNOHANG)) > 0)
			if (p == shell)
			{
				shell_done = true;
				status = st;
			}
		if (p < 0 && errno == ECHILD && shell_done)
			break;				/* nothing left */
		if (getppid() != a->runner_pid)
			killing = true;		/* the runner died (PR_SET_PDEATHSIG is the fast path) */
		if (shell_done || killing)
			kill_left(shell);
		sig = sigtimedwait(&set, &si, &ts);
		if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
		{
			if (!shell_done && kill(-shell, SIGTERM) != 0)
				kill(shell, SIGTERM);
		}
		else if (sig == SIGUSR1)
			killing = true;
	}

	/* the shell's status as ours */
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	if (WIFSIGNALED(status))
	{
		sigset_t none;

		signal(WTERMSIG(status), SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		kill(me, WTERMSIG(status));
		_exit(128 + WTERMSIG(status));
	}
	_exit(255);
}
