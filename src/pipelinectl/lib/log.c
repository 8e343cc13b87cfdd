/*
 * lib/log.c: see log.h.
 */
#define _GNU_SOURCE
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


static const char *log_component = PCTL_NAME;
static bool log_verbose = false;
static log_level log_min = LOG_INFO;

void
log_init(const char *component)
{
	log_component = component;
	srandom((unsigned) (time(NULL) ^ (getpid() << 16)));
}

void
log_set_verbose(bool v)
{
	log_verbose = v;
}

void
log_set_min_level(log_level l)
{
	log_min = l;
}

void
log_msg(log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
	char msg[2048];
	char stamp[64];
	char zone[8];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int saved = errno;

	if ((level == LOG_DEBUG && !log_verbose) || (level < log_min && !(level == LOG_DEBUG && log_verbose)))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	oneline(msg);

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	/* one fprintf per line: lines of concurrent processes do not interleave */
	fprintf(stderr, "%s.%03ld %s %s[%ld] %s: %s\n", stamp, ts.tv_nsec / 1000000L, zone,
			log_component, (long) getpid(), names[level], msg);
	fflush(stderr);
	errno = saved;
}
