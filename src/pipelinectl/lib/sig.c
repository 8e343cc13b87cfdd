/*
 * lib/sig.c: see sig.h.
 */
#define _GNU_SOURCE
#include "sig.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

sigstate g_sig;
static int sig_pipe[2] = {-1, -1};

static void
sig_handler(int signo)
{
	int saved = errno;
	char c = (char) signo;
	ssize_t r;

	if (signo == SIGTERM || signo == SIGINT || signo == SIGHUP)
		g_sig.term_count++;
	else if (signo == SIGCHLD)
		g_sig.chld = 1;
	else if (signo == SIGWINCH)
		g_sig.winch = 1;
	g_sig.last_signal = signo;
	if (sig_pipe[1] >= 0)
		r = write(sig_pipe[1], &c, 1);	/* full pipe: a wakeup is already pending */
	(void) r;
	errno = saved;
}

int
signals_install(bool want_chld, bool want_winch, bool ignore_pipe)
{
	struct sigaction sa;

	if (sig_pipe[0] < 0)
	{
		if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
			return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sig_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (want_chld)
	{
		sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
		sigaction(SIGCHLD, &sa, NULL);
		sa.sa_flags = SA_RESTART;
	}
	if (want_winch)
		sigaction(SIGWINCH, &sa, NULL);
	if (ignore_pipe)
		signal(SIGPIPE, SIG_IGN);
	return 0;
}

int
signals_fd(void)
{
	return sig_pipe[0];
}

void
signals_drain(void)
{
	char buf[64];

	if (sig_pipe[0] < 0)
		return;
	while (read(sig_pipe[0], buf, sizeof(buf)) > 0)
		;
}

void
signals_close(void)
{
	for (int i = 0; i < 2; i++)
		if (sig_pipe[i] >= 0)
		{
			close(sig_pipe[i]);
			sig_pipe[i] = -1;
		}
}

void
signals_restore_child(void)
{
	sigset_t none;

	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGWINCH, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);	/* an ignored signal would stay ignored across exec */
	signal(SIGQUIT, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}
