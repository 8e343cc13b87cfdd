/*
 * lib/conn.h: one libpq connection that comes back by itself.
 *
 * A long-running command calls db_ensure() once per turn of its event loop:
 * when the connection is gone it tries again after an exponential backoff
 * (0.5 s doubling to 30 s, with jitter) and re-issues LISTEN after every
 * (re)connect.  db_query() only runs parameterized statements (every
 * parameter sent as text), turns a failure into a db_error (SQLSTATE plus one
 * line of message) and closes the connection when it broke, so that the next
 * db_ensure() reconnects.  Notifications are only wake-ups: counted, never
 * interpreted.  While the database is away, the first failed attempt is
 * logged, then one line a minute at most.
 *
 * Setup errors (SPEC §12: exit 2 with a message that says what to do): a
 * first connection refused for its role, password or database (db->fatal),
 * and db_check_setup(): the extension is missing, the role may not use the
 * schema or execute the functions a command needs.
 *
 * Locking: none on the client side; what the queries lock is said where
 * they are written.
 */
#ifndef PCTL_CONN_H
#define PCTL_CONN_H

#include "base.h"

#include <libpq-fe.h>

typedef struct db_error
{
	char sqlstate[6];			/* "" when unknown */
	char message[1024];			/* one line */
	bool conn_lost;				/* the connection is gone (it has been closed) */
} db_error;

typedef struct db_conn
{
	char *conninfo;				/* -d value or NULL for libpq defaults */
	PGconn *conn;
	const char *listen_channel; /* LISTEN on (re)connect, or NULL */
	backoff backoff;
	double next_attempt;		/* monotonic time of the next connect attempt */
	unsigned long notifications;	/* NOTIFYs received so far */
	bool ever_connected;
	bool lost_logged;
	int failures;				/* consecutive failed connect attempts */
	double down_since;			/* monotonic time it went away; 0 while connected */
	double last_fail_log;		/* when a failed attempt was last logged */
	bool fatal;					/* the first connection was refused for good */
	char fatal_msg[1536];		/* then: why, and what to do */
} db_conn;

typedef enum
{
	SETUP_OK,
	SETUP_RETRY,				/* the connection went away meanwhile */
	SETUP_BAD,					/* msg says what is wrong and what to do */
} setup_result;

void db_init(db_conn *db, const char *conninfo, const char *listen_channel);
void db_close(db_conn *db);
bool db_connected(const db_conn *db);
/* connect now (one attempt); false with err filled on failure */
bool db_connect(db_conn *db, db_error *err);
/* connect if not connected and a retry is due; true when connected */
bool db_ensure(db_conn *db, double now);
/* the socket to poll for NOTIFY, or -1 */
int db_socket(const db_conn *db);
/* read what arrived on the socket: collects notifications */
void db_consume(db_conn *db);
/* run a parameterized query (all parameters as text, NULL = SQL NULL) */
PGresult *db_query(db_conn *db, const char *sql, int nparams,
				   const char *const *params, db_error *err);
/* whether an error is worth retrying later (connection, lock, serialization ...) */
bool db_error_transient(const db_error *err);
/* seconds the database has been unreachable (0 while connected) */
double db_down_for(const db_conn *db, double now);
/*
 * Checks that the extension is installed, the role may use the schema and
 * execute each function (signatures as to_regprocedure() reads them, e.g.
 * "pipeline.claim_job_tasks(text,int,jsonb)"); functions may be NULL.
 */
setup_result db_check_setup(db_conn *db, const char *const *functions, char *msg, size_t msglen);
/* exit code for a failed query: 2 for privilege, missing object and connection errors, else 1 */
int db_error_exit_code(const db_error *err);
/* a hint for such an error ("" when none) */
const char *db_error_hint(const db_error *err);
/*
 * One-shot commands: connect once and check the setup; -1 when fine, else
 * EXIT_USAGE after "pipelinectl CMD: <why and what to do>" on stderr.
 */
int db_connect_checked(db_conn *db, const char *cmd);
/* db_init() (no LISTEN) and db_connect_checked(); on failure the connection is closed */
int db_open_checked(db_conn *db, const char *conninfo, const char *cmd);
/* prints "pipelinectl CMD: <message>[: <hint>]" and returns db_error_exit_code() */
int db_fail(const char *cmd, const db_error *err);
/* the column number of name, or -1 */
int db_col(const PGresult *res, const char *name);
/* value or NULL for SQL NULL / missing column */
const char *db_value(const PGresult *res, int row, int col);

#endif
