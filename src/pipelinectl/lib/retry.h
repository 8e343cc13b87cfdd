/*
 * lib/retry.h: the one retry policy of every report to the database (the
 * runner's 'active', final stage and output; hookd's delivery results).
 *
 * A rejection of the token (28000), of a complete task (55000) or of a row
 * that is gone (P0002) is final; a transient error (connection, lock,
 * serialization, read-only standby) is retried with backoff for as long as it
 * takes, unless the program is stopping; anything else is retried with backoff
 * max_tries times, then given up.
 *
 * Locking: none.
 */
#ifndef PCTL_RETRY_H
#define PCTL_RETRY_H

#include "base.h"
#include "conn.h"

typedef enum
{
	ERR_TRANSIENT,				/* try again later */
	ERR_REJECTED,				/* the row is no longer ours */
	ERR_OTHER,					/* a broken installation, a refused value ... */
} err_kind;

typedef enum
{
	RETRY_LATER,				/* next_try is set */
	RETRY_REJECTED,				/* final: the server refused the token */
	RETRY_GIVE_UP,				/* final: tried enough, or stopping */
} retry_verdict;

typedef struct retry_state
{
	backoff bo;
	double next_try;
	int tries;
	int max_tries;
} retry_state;

err_kind report_error_kind(const db_error *err);
void retry_init(retry_state *rs, int max_tries);
void retry_reset(retry_state *rs);
/* after a failed attempt: what to do, and when (next_try) if again */
retry_verdict retry_after(retry_state *rs, const db_error *err, bool stopping, double now);

#endif
