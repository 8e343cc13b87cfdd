/*
 * runner/spawn.c: running a command.
 *
 * Each command runs as /bin/sh -c COMMAND in a fresh directory
 * $TMPDIR/pipelinectl-ID-XXXXXX/work (PIPELINE_OUTPUT is the file "output"
 * beside it), in its own process group, stdin from /dev/null, stdout and
 * stderr into one pipe.  Stopping a command signals its whole group:
 * SIGTERM, then SIGKILL KILL_GRACE seconds later; when the shell exits, what
 * it left in its group is killed too.
 *
 * Locking: none.  In the forked child only async-signal-safe calls are made.
 */
#define _GNU_SOURCE
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

static void
close_from(int lowfd)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
	if (close_range((unsigned) lowfd, ~0U, 0) == 0)
		return;
#endif
	long max = sysconf(_SC_OPEN_MAX);

	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = lowfd; fd < max; fd++)
		close(fd);
}

/* starts the command; false with a message on failure */
bool
spawn(runner *r, task *t, char *errbuf, size_t errlen)
{
	const char *tmp = r->work_root;
	const job_user *ju = &r->ju;
	char *tmpl;
	int fds[2];
	char **envp;
	pid_t pid;
	int fd;

	tmpl = xasprintf("%s/pipelinectl-%s-XXXXXX", tmp, t->idstr);
	if (!mkdtemp(tmpl))
	{
		snprintf(errbuf, errlen, "cannot create a work directory in %s: %s", tmp, strerror(errno));
		free(tmpl);
		return false;
	}
	t->basedir = tmpl;
	t->workdir = xasprintf("%s/work", t->basedir);
	t->outfile = xasprintf("%s/output", t->basedir);
	if (mkdir(t->workdir, 0700) != 0)
	{
		snprintf(errbuf, errlen, "cannot create %s: %s", t->workdir, strerror(errno));
		return false;
	}
	fd = open(t->outfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
	{
		snprintf(errbuf, errlen, "cannot create %s: %s", t->outfile, strerror(errno));
		return false;
	}
	close(fd);
	if (ju->set)
	{
		/* the base stays the runner's (traversable only); work and output are the job user's */
		if (chmod(t->basedir, 0711) != 0 || chown(t->workdir, ju->uid, ju->gid) != 0 ||
			chown(t->outfile, ju->uid, ju->gid) != 0)
		{
			snprintf(errbuf, errlen, "cannot give %s to user %s: %s", t->basedir, ju->name, strerror(errno));
			return false;
		}
	}
	if (pipe2(fds, O_CLOEXEC) != 0)
	{
		snprintf(errbuf, errlen, "cannot create a pipe: %s", strerror(errno));
		return false;
	}
	envp = build_env(t, ju);

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
		/* the child: only async-signal-safe calls from here on */
		char *argv[4];
		int devnull;
		static const char msg1[] = "pipelinectl: cannot execute /bin/sh: ";
		static const char msg2[] = "pipelinectl: cannot enter the work directory\n";

		setpgid(0, 0);
		signals_restore_child();
		if (dup2(fds[1], 1) < 0 || dup2(fds[1], 2) < 0)
			_exit(127);
		devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0 && devnull != 0)
		{
			dup2(devnull, 0);
			close(devnull);
		}
		close_from(3);
		if (ju->set &&
			(setgroups((size_t) ju->ngroups, ju->groups) != 0 || setgid(ju->gid) != 0 || setuid(ju->uid) != 0))
		{
			static const char msg3[] = "pipelinectl: cannot switch to the job user\n";
			ssize_t w = write(2, msg3, sizeof(msg3) - 1);

			(void) w;
			_exit(127);
		}
		if (chdir(t->workdir) != 0)
		{
			ssize_t w = write(2, msg2, sizeof(msg2) - 1);

			(void) w;
			_exit(127);
		}
		argv[0] = "sh";
		argv[1] = "-c";
		argv[2] = t->command;
		argv[3] = NULL;
		execve("/bin/sh", argv, envp);
		{
			const char *e = strerror(errno);
			ssize_t w = write(2, msg1, sizeof(msg1) - 1);

			w = write(2, e, strlen(e));
			w = write(2, "\n", 1);
			(void) w;
		}
		_exit(127);
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
	(void) r;
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
		if (kill(-t->pid, SIGTERM) != 0)
			kill(t->pid, SIGTERM);
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
			t->child_exited = true;
			t->wstatus = (p == t->pid) ? st : (255 << 8);
			t->exit_time = now;
			/* what the shell left behind in its group goes with it */
			kill(-t->pid, SIGKILL);
		}
	}
}

void
kill_hard(task *t)
{
	log_warn("job task %s: command still running %.0f s after SIGTERM; sending SIGKILL",
			 t->idstr, KILL_GRACE);
	kill(-t->pid, SIGKILL);
	kill(t->pid, SIGKILL);
	t->killed_hard = true;
}

void
kill_all_now(runner *r)
{
	for (task *t = r->tasks; t; t = t->next)
		if (t->state == TS_RUNNING && t->pid > 0 && !t->child_exited)
			kill(-t->pid, SIGKILL);
}
