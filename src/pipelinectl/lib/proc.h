/*
 * lib/proc.h: what /proc says about processes (Linux): a process's parent,
 * group and start time, the children of a process, and whether a process's
 * environment holds an entry.  The runner uses them to find every process a
 * command left behind, also those that left its process group or session
 * (setsid) and, after a crash, those of a dead predecessor.
 *
 * Locking: none; /proc is read as it is (a process may go away meanwhile:
 * every function treats that as "not there").
 */
#ifndef PCTL_PROC_H
#define PCTL_PROC_H

#include "base.h"

typedef struct proc_stat
{
	pid_t pid;
	pid_t ppid;
	pid_t pgid;
	unsigned long long starttime;	/* clock ticks after boot */
} proc_stat;

/* false when the process is gone (or /proc is not there) */
bool proc_read_stat(pid_t pid, proc_stat *out);
/* the processes whose parent is ppid; returns how many, at most max in out */
int proc_children(pid_t ppid, pid_t *out, int max);
/* the processes whose environment holds the entry "NAME=value" exactly */
int proc_with_env(const char *entry, pid_t *out, int max);

#endif
