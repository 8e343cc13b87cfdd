/*
 * runner/spawn.c: starting, stopping and reaping a command.
 *
 * Each command runs as /bin/sh -c COMMAND under a supervisor of its own
 * (supervise.c), in a work directory (workdir.c), stdin from /dev/null,
 * stdout and stderr into one pipe.  The runner only talks to the supervisor:
 * SIGTERM stops the command (passed to its process group), SIGUSR1 kills
 * everything at once (the escalation KILL_GRACE seconds later, and the third
 * signal); the supervisor's exit status is the command's, and when it exits
 * nothing the command started is left (also what left its session).
 *
 * Locking: see workdir.c (the task's lock file is held while it runs).
 */
#define _GNU_SOURCE
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *
stop_name(stop_reason s)
{
	switch (s)
	{
		case STOP_CANCEL:
			return "canceled";
		case STOP_TIMEOUT:
			return "timeout";
		case STOP_LOST:
			return "task lost";
		case STOP_SHUTDOWN:
			return "runner stopping";
		default:
			return "none";
	}
}

/* starts the command; false with a message on failure */
bool
spawn(runner *r, task *t, char *errbuf, size_t errlen)
{
	int fds[2];
	char **envp;
	pid_t pid;
	pid_t me = getpid();

	if (!workdir_create(r, t, errbuf, errlen))
		return false;
	if (pipe2(fds, O_CLOEXEC) != 0)
	{
		snprintf(errbuf, errlen, "cannot create a pipe: %s", strerror(errno));
		return false;
	}
	envp = build_env(t, &r->ju);

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
	{
		snprintf(errbuf, errlen, "cannot fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		free_env(envp);
		return false;
	}
	if (pid == 0)
	{
		spawn_args a = {t->command, envp, t->workdir, fds[1], &r->ju, me};

		supervise_command(&a);
	}
	/* the parent: set the group here too, whichever runs first */
	if (setpgid(pid, pid) != 0 && errno != EACCES && errno != ESRCH)
		log_debug("setpgid(%ld): %s", (long) pid, strerror(errno));
	close(fds[1]);
	free_env(envp);
	fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
	t->out_fd = fds[0];
	t->pid = pid;
	t->started = mono_now();
	t->state = TS_RUNNING;
	workdir_record(t, pid);
	return true;
}

void
stop_task(task *t, stop_reason why, double now)
{
	if (t->state != TS_RUNNING)
		return;
	if (t->stop == STOP_NONE || why == STOP_LOST)
		t->stop = why;
	if (t->child_exited || t->kill_at > 0)
		return;
	if (t->pid > 0)
	{
		log_info("job task %s: stopping its command (pid %ld): %s", t->idstr, (long) t->pid,
				 stop_name(why));
		kill(t->pid, SIGTERM);	/* the supervisor passes it to the command's group */
		t->kill_at = now + KILL_GRACE;
	}
}

void
reap_children(runner *r, double now)
{
	for (task *t = r->tasks; t; t = t->next)
	{
		int st;
		pid_t p;

		if (t->state != TS_RUNNING || t->pid <= 0 || t->child_exited)
			continue;
		p = waitpid(t->pid, &st, WNOHANG);
		if (p == t->pid || (p < 0 && errno == ECHILD))
		{
			/* the supervisor left nothing of the command behind */
			t->child_exited = true;
			t->wstatus = (p == t->pid) ? st : (255 << 8);
			t->exit_time = now;
		}
	}
}

void
kill_hard(task *t)
{
	log_warn("job task %s: command still running %.0f s after SIGTERM; sending SIGKILL",
			 t->idstr, KILL_GRACE);
	kill(t->pid, SIGUSR1);		/* the supervisor SIGKILLs all of it */
	t->killed_hard = true;
}

void
kill_all_now(runner *r)
{
	for (task *t = r->tasks; t; t = t->next)
		if (t->state == TS_RUNNING && t->pid > 0 && !t->child_exited)
			kill(t->pid, SIGUSR1);
}

/* at exit or when a task is dropped: kill what still runs and wait for it */
void
kill_and_wait(task *t)
{
	if (t->pid > 0 && !t->child_exited)
	{
		kill(t->pid, SIGUSR1);
		waitpid(t->pid, NULL, 0);
		t->child_exited = true;
	}
}
