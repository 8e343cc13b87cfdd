/*
 * lib/clock.c: monotonic and wall clocks, and exponential backoff with
 * jitter (reconnects, report retries).
 *
 * Locking: none (single-threaded program).
 */
#define _GNU_SOURCE
#include "base.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <time.h>

/* ------------------------------------------------------------------ clocks */

double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

double
wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int
ms_until(double deadline, double now)
{
	double ms = (deadline - now) * 1000.0;

	if (!(ms > 0))
		return 0;
	if (ms > INT_MAX / 2)
		return INT_MAX / 2;
	return (int) ceil(ms);
}

/* ---------------------------------------------------------------- backoff */

void
backoff_init(backoff *b, double min_delay, double max_delay)
{
	b->min_delay = min_delay;
	b->max_delay = max_delay;
	b->delay = 0;
}

double
backoff_next(backoff *b)
{
	double d;

	if (b->delay <= 0)
		b->delay = b->min_delay;
	else
	{
		b->delay *= 2;
		if (b->delay > b->max_delay)
			b->delay = b->max_delay;
	}
	/* +-20 % jitter so that many clients do not reconnect in lockstep */
	d = b->delay * (0.8 + 0.4 * ((double) (random() % 1000) / 1000.0));
	return d;
}

void
backoff_reset(backoff *b)
{
	b->delay = 0;
}
