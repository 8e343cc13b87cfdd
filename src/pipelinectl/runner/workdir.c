/*
 * runner/workdir.c: work directories, and what a dead runner left behind.
 *
 * Each command gets WORK_ROOT/pipelinectl-<job task id>-XXXXXX/ (WORK_ROOT:
 * --work-dir, $TMPDIR or /tmp) holding:
 *   lock    the runner holds an exclusive flock on it while the task is
 *           its own; it says "<supervisor pid> <its start time>"
 *   work/   the command's working directory (the job user's with --job-user)
 *   output  $PIPELINE_OUTPUT (the job user's with --job-user)
 * The directory itself stays the runner's (mode 0700, 0711 with
 * --job-user), so a job cannot remove or replace the lock.
 *
 * At start-up the runner looks at every pipelinectl-* directory of its work
 * root that it owns: one whose lock nobody holds belongs to a runner that
 * died.  Its supervisor (if still the same process) and every process whose
 * environment holds its PIPELINE_OUTPUT (the command and all it started,
 * also those that left its session) are killed, then the directory is
 * removed.  Directories without a lock file are left alone (another
 * program's, or a runner of an older version).
 *
 * Locking: flock(LOCK_EX) on each task's lock file, held by the runner for
 * the task's life (the descriptor is close-on-exec and the supervisor closes
 * it), tried with LOCK_NB at start-up.
 */
#define _GNU_SOURCE
#include "runner.h"
#include "../lib/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FOUND 4096

bool
workdir_create(runner *r, task *t, char *errbuf, size_t errlen)
{
	const job_user *ju = &r->ju;
	char *lockpath;
	int fd;

	t->basedir = xasprintf("%s/pipelinectl-%s-XXXXXX", r->work_root, t->idstr);
	if (!mkdtemp(t->basedir))
	{
		snprintf(errbuf, errlen, "cannot create a work directory in %s: %s", r->work_root, strerror(errno));
		free(t->basedir);
		t->basedir = NULL;
		return false;
	}
	lockpath = xasprintf("%s/lock", t->basedir);
	t->lock_fd = open(lockpath, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	free(lockpath);
	if (t->lock_fd < 0 || flock(t->lock_fd, LOCK_EX | LOCK_NB) != 0)
	{
		snprintf(errbuf, errlen, "cannot lock %s: %s", t->basedir, strerror(errno));
		return false;
	}
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
	return true;
}

void
workdir_record(task *t, pid_t supervisor)
{
	proc_stat st;
	char line[64];
	int n;

	if (t->lock_fd < 0)
		return;
	if (!proc_read_stat(supervisor, &st))
		st.starttime = 0;
	n = snprintf(line, sizeof(line), "%ld %llu\n", (long) supervisor, st.starttime);
	if (pwrite(t->lock_fd, line, (size_t) n, 0) != n)
		log_warn("job task %s: cannot record its supervisor in %s/lock: %s", t->idstr, t->basedir,
				 strerror(errno));
}

void
workdir_remove(task *t)
{
	if (t->basedir)
	{
		if (rmtree(t->basedir) != 0)
			log_warn("job task %s: cannot remove work directory %s completely: %s", t->idstr,
					 t->basedir, strerror(errno));
		free(t->basedir);
		t->basedir = NULL;
	}
	if (t->lock_fd >= 0)
	{
		close(t->lock_fd);		/* after the removal: a new runner must not take it meanwhile */
		t->lock_fd = -1;
	}
}

/* kills what the dead runner's task left; returns how many processes */
static int
kill_leftovers(const char *dir, int lock_fd)
{
	char line[64] = "";
	char *entry = xasprintf("PIPELINE_OUTPUT=%s/output", dir);
	pid_t *found = xmalloc(MAX_FOUND * sizeof(pid_t));
	long pid = 0;
	unsigned long long start = 0;
	ssize_t n = pread(lock_fd, line, sizeof(line) - 1, 0);
	int killed = 0;
	proc_stat st;

	if (n > 0)
	{
		line[n] = '\0';
		if (sscanf(line, "%ld %llu", &pid, &start) != 2)
			pid = 0;
	}
	/* the supervisor, if that pid is still the same process */
	if (pid > 1 && proc_read_stat((pid_t) pid, &st) && st.starttime == start && kill((pid_t) pid, SIGKILL) == 0)
		killed++;
	/* the command and all it started: they carry its PIPELINE_OUTPUT */
	for (int round = 0; round < 50; round++)
	{
		int k = proc_with_env(entry, found, MAX_FOUND);

		if (k == 0)
			break;
		for (int i = 0; i < k; i++)
		{
			/* a group it leads goes with it; never a group it merely joined */
			if (proc_read_stat(found[i], &st) && st.pgid == found[i])
				kill(-st.pgid, SIGKILL);
			if (kill(found[i], SIGKILL) == 0)
				killed++;
		}
		usleep(20000);
	}
	free(found);
	free(entry);
	return killed;
}

void
workdir_cleanup_dead(runner *r)
{
	DIR *d = opendir(r->work_root);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)) != NULL)
	{
		char *dir, *lockpath;
		struct stat st;
		int fd, killed;

		if (strncmp(de->d_name, "pipelinectl-", 12) != 0)
			continue;
		dir = xasprintf("%s/%s", r->work_root, de->d_name);
		if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		{
			free(dir);
			continue;
		}
		lockpath = xasprintf("%s/lock", dir);
		fd = open(lockpath, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		free(lockpath);
		if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0)
		{
			/* no lock file: not ours to judge; locked: a live runner's */
			if (fd >= 0)
				close(fd);
			free(dir);
			continue;
		}
		killed = kill_leftovers(dir, fd);
		if (rmtree(dir) != 0)
			log_warn("cannot remove %s, left by a runner that died: %s", dir, strerror(errno));
		else
			log_warn("removed %s, left by a runner that died (%d process%s of its command killed)", dir,
					 killed, killed == 1 ? "" : "es");
		close(fd);
		free(dir);
	}
	closedir(d);
}
