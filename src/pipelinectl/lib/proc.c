/*
 * lib/proc.c: see proc.h.
 */
#define _GNU_SOURCE
#include "proc.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool
proc_read_stat(pid_t pid, proc_stat *out)
{
	char path[64], buf[1024];
	const char *p;
	ssize_t n;
	int fd, ppid, pgid;
	unsigned long long start;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long) pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
	 *  utime stime cutime cstime priority nice threads itrealvalue starttime ..."; comm may
	 * hold anything, so parse after its last ')' */
	p = strrchr(buf, ')');
	if (!p)
		return false;
	if (sscanf(p + 1, " %*c %d %d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
			   &ppid, &pgid, &start) != 3)
		return false;
	out->pid = pid;
	out->ppid = ppid;
	out->pgid = pgid;
	out->starttime = start;
	return true;
}

/* calls fn for every process; stops when fn returns false */
static void
for_each_pid(bool (*fn) (pid_t pid, void *arg), void *arg)
{
	DIR *d = opendir("/proc");
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)) != NULL)
	{
		char *end;
		long v;

		if (!isdigit((unsigned char) de->d_name[0]))
			continue;
		v = strtol(de->d_name, &end, 10);
		if (*end || v <= 0)
			continue;
		if (!fn((pid_t) v, arg))
			break;
	}
	closedir(d);
}

typedef struct collect
{
	pid_t ppid;
	const char *entry;
	size_t entry_len;
	pid_t *out;
	int max;
	int n;
} collect;

static bool
child_of(pid_t pid, void *arg)
{
	collect *c = arg;
	proc_stat st;

	if (proc_read_stat(pid, &st) && st.ppid == c->ppid)
	{
		if (c->n < c->max)
			c->out[c->n] = pid;
		c->n++;
	}
	return true;
}

int
proc_children(pid_t ppid, pid_t *out, int max)
{
	collect c = {ppid, NULL, 0, out, max, 0};

	for_each_pid(child_of, &c);
	return c.n < max ? c.n : max;
}

static bool
has_env(pid_t pid, void *arg)
{
	collect *c = arg;
	char path[64];
	char *text;
	size_t len;

	if (pid == getpid())
		return true;
	snprintf(path, sizeof(path), "/proc/%ld/environ", (long) pid);
	text = read_file_capped(path, 1024 * 1024, &len, NULL);
	if (!text)
		return true;
	for (size_t i = 0; i < len;)
	{
		size_t l = strnlen(text + i, len - i);

		if (l == c->entry_len && memcmp(text + i, c->entry, l) == 0)
		{
			if (c->n < c->max)
				c->out[c->n] = pid;
			c->n++;
			break;
		}
		i += l + 1;
	}
	free(text);
	return true;
}

int
proc_with_env(const char *entry, pid_t *out, int max)
{
	collect c = {0, entry, strlen(entry), out, max, 0};

	for_each_pid(has_env, &c);
	return c.n < max ? c.n : max;
}
