/*
 * lib/retry.c: see retry.h.
 */
#define _GNU_SOURCE
#include "retry.h"

#include <string.h>

err_kind
report_error_kind(const db_error *err)
{
	if (db_error_transient(err))
		return ERR_TRANSIENT;
	/* token rejected (reaped or retried), task complete, row gone */
	if (strcmp(err->sqlstate, "28000") == 0 || strcmp(err->sqlstate, "55000") == 0 ||
		strcmp(err->sqlstate, "P0002") == 0)
		return ERR_REJECTED;
	return ERR_OTHER;
}

void
retry_init(retry_state *rs, int max_tries)
{
	backoff_init(&rs->bo, 0.5, 30.0);
	rs->max_tries = max_tries;
	retry_reset(rs);
}

void
retry_reset(retry_state *rs)
{
	backoff_reset(&rs->bo);
	rs->next_try = 0;
	rs->tries = 0;
}

retry_verdict
retry_after(retry_state *rs, const db_error *err, bool stopping, double now)
{
	switch (report_error_kind(err))
	{
		case ERR_REJECTED:
			return RETRY_REJECTED;
		case ERR_TRANSIENT:
			if (stopping)
				return RETRY_GIVE_UP;
			break;
		case ERR_OTHER:
			if (++rs->tries >= rs->max_tries)
				return RETRY_GIVE_UP;
			break;
	}
	rs->next_try = now + backoff_next(&rs->bo);
	return RETRY_LATER;
}
