/*
 * lib/sig.h: signals of the long-running commands.  SIGTERM, SIGINT and
 * SIGHUP count as stop requests; SIGCHLD and SIGWINCH set flags; every
 * handler writes a byte to a self-pipe so that an event loop blocked in
 * poll() wakes up.  signals_restore_child() undoes all of it in a forked
 * child before exec.
 *
 * Locking: the handlers only touch volatile ints and write(2).
 */
#ifndef PCTL_SIG_H
#define PCTL_SIG_H

#include "base.h"

typedef struct sigstate
{
	volatile int term_count;	/* SIGTERM + SIGINT + SIGHUP received */
	volatile int chld;
	volatile int winch;
	volatile int last_signal;
} sigstate;

extern sigstate g_sig;

int signals_install(bool want_chld, bool want_winch, bool ignore_pipe);
int signals_fd(void);			/* read end of the self-pipe */
void signals_drain(void);		/* empty the self-pipe */
void signals_close(void);		/* at exit */
void signals_restore_child(void);	/* in a forked child, before exec */

#endif
