/*
 * lib/conn.c: see conn.h.
 */
#define _GNU_SOURCE
#include "conn.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
db_init(db_conn *db, const char *conninfo, const char *listen_channel)
{
	memset(db, 0, sizeof(*db));
	db->conninfo = conninfo ? xstrdup(conninfo) : NULL;
	db->listen_channel = listen_channel;
	backoff_init(&db->backoff, 0.5, 30.0);
	db->next_attempt = 0;
}

void
db_close(db_conn *db)
{
	if (db->conn)
		PQfinish(db->conn);
	db->conn = NULL;
	free(db->conninfo);
	db->conninfo = NULL;
}

bool
db_connected(const db_conn *db)
{
	return db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK;
}

static void
set_error(db_error *err, const char *sqlstate, const char *msg, bool lost)
{
	if (!err)
		return;
	snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", sqlstate ? sqlstate : "");
	snprintf(err->message, sizeof(err->message), "%s", msg && *msg ? msg : "unknown error");
	oneline(err->message);
	err->conn_lost = lost;
}

static void
drop_connection(db_conn *db, const char *why)
{
	double delay;

	if (db->conn)
	{
		PQfinish(db->conn);
		db->conn = NULL;
	}
	delay = backoff_next(&db->backoff);
	db->next_attempt = mono_now() + delay;
	if (db->down_since == 0)
		db->down_since = mono_now();
	if (!db->lost_logged)
	{
		log_warn("database connection lost: %s; reconnecting in %.1f s", why, delay);
		db->lost_logged = true;
		db->last_fail_log = mono_now();
	}
}

/*
 * A first connection refused for its role, password or database will not
 * get better by retrying: a setup error.  (libpq gives no SQLSTATE for a
 * failed connection; these are the server's and libpq's messages.)
 */
static bool
refused_for_good(const char *msg)
{
	static const char *const pats[] = {
		"password authentication failed", "no password supplied", "does not exist",
		"pg_hba.conf rejects", "no pg_hba.conf entry", "authentication failed",
		"permission denied for database", "is not permitted to log in",
		"invalid connection option", "missing \"=\" after", "invalid URI",
	};

	for (size_t i = 0; i < ARRAY_LEN(pats); i++)
		if (strstr(msg, pats[i]))
			return true;
	return false;
}

static void
collect_notifications(db_conn *db)
{
	PGnotify *n;

	if (!db->conn)
		return;
	while ((n = PQnotifies(db->conn)) != NULL)
	{
		db->notifications++;
		PQfreemem(n);
	}
}

/* sends LISTEN; the channel name is a constant of the program, quoted */
static bool
do_listen(db_conn *db, db_error *err)
{
	char sql[128];
	PGresult *res;

	if (!db->listen_channel)
		return true;
	snprintf(sql, sizeof(sql), "LISTEN \"%s\"", db->listen_channel);
	res = PQexec(db->conn, sql);
	if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		set_error(err, res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : "",
				  PQerrorMessage(db->conn), PQstatus(db->conn) != CONNECTION_OK);
		PQclear(res);
		return false;
	}
	PQclear(res);
	/* a LISTEN in a fresh session may miss what happened meanwhile: wake up */
	db->notifications++;
	return true;
}

/* server notices (and libpq's own) as log lines instead of raw stderr text */
static void
notice_processor(void *arg, const char *message)
{
	(void) arg;
	log_info("server: %s", message);
}

bool
db_connect(db_conn *db, db_error *err)
{
	const char *keys[12];
	const char *vals[12];
	int n = 0;

	if (db->conn)
	{
		PQfinish(db->conn);
		db->conn = NULL;
	}
	/*
	 * Entries before "dbname" are defaults that the user's conninfo (expanded
	 * from dbname) overrides; those after it override the conninfo.
	 */
	if (!getenv("PGCONNECT_TIMEOUT"))
	{
		keys[n] = "connect_timeout";
		vals[n++] = "10";
	}
	keys[n] = "keepalives_idle";
	vals[n++] = "30";
	keys[n] = "keepalives_interval";
	vals[n++] = "10";
	keys[n] = "keepalives_count";
	vals[n++] = "3";
	keys[n] = "fallback_application_name";
	vals[n++] = PCTL_NAME;
	if (db->conninfo)
	{
		keys[n] = "dbname";
		vals[n++] = db->conninfo;
	}
	/* all text is exchanged as UTF-8 (output chunks, JSON) */
	keys[n] = "client_encoding";
	vals[n++] = "UTF8";
	keys[n] = NULL;
	vals[n] = NULL;

	db->conn = PQconnectdbParams(keys, vals, 1);
	if (!db->conn || PQstatus(db->conn) != CONNECTION_OK)
	{
		set_error(err, "08006", db->conn ? PQerrorMessage(db->conn) : "out of memory", true);
		if (db->conn)
			PQfinish(db->conn);
		db->conn = NULL;
		return false;
	}
	PQsetNoticeProcessor(db->conn, notice_processor, NULL);
	if (!do_listen(db, err))
	{
		PQfinish(db->conn);
		db->conn = NULL;
		return false;
	}
	return true;
}

bool
db_ensure(db_conn *db, double now)
{
	db_error err;
	double delay;

	if (db->conn)
	{
		if (PQstatus(db->conn) == CONNECTION_OK)
			return true;
		drop_connection(db, PQerrorMessage(db->conn));
	}
	if (db->fatal || now < db->next_attempt)
		return false;
	if (db_connect(db, &err))
	{
		if (db->ever_connected)
			log_info("reconnected to the database after %d failed attempt%s",
					 db->failures, db->failures == 1 ? "" : "s");
		else
			log_info("connected to database \"%s\" on %s (server %d)", PQdb(db->conn),
					 PQhost(db->conn) ? PQhost(db->conn) : "default",
					 PQserverVersion(db->conn));
		db->ever_connected = true;
		db->lost_logged = false;
		db->failures = 0;
		db->down_since = 0;
		backoff_reset(&db->backoff);
		return true;
	}
	db->failures++;
	now = mono_now();
	if (db->down_since == 0)
		db->down_since = now;
	if (!db->ever_connected && refused_for_good(err.message))
	{
		db->fatal = true;
		snprintf(db->fatal_msg, sizeof(db->fatal_msg),
				 "cannot connect to the database: %s: check the role, password and database name "
				 "given with -d or in PGUSER, PGPASSWORD, PGDATABASE, ~/.pgpass", err.message);
		return false;
	}
	delay = backoff_next(&db->backoff);
	db->next_attempt = now + delay;
	/* the first failure, then one line a minute: not one per attempt */
	if (db->failures == 1 || now - db->last_fail_log >= 60.0)
	{
		if (db->failures == 1)
			log_warn("cannot connect to the database: %s; retrying (backoff up to 30 s)", err.message);
		else
			log_warn("still cannot connect to the database after %d attempts over %.0f s: %s; retrying",
					 db->failures, now - db->down_since, err.message);
		db->last_fail_log = now;
	}
	db->lost_logged = true;
	return false;
}

double
db_down_for(const db_conn *db, double now)
{
	if (db_connected(db) || db->down_since == 0)
		return 0;
	return now - db->down_since;
}

setup_result
db_check_setup(db_conn *db, const char *const *functions, char *msg, size_t msglen)
{
	db_error err;
	PGresult *res;
	char dbname[256], role[256], extversion[64];
	bool has_ext, usage;

	res = db_query(db,
				   "SELECT pg_catalog.current_database(), current_user,"
				   " (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pipeline'),"
				   " (SELECT pg_catalog.has_schema_privilege(n.oid, 'USAGE')"
				   "    FROM pg_catalog.pg_namespace n WHERE n.nspname = 'pipeline')",
				   0, NULL, &err);
	if (!res)
	{
		if (db_error_transient(&err))
			return SETUP_RETRY;
		snprintf(msg, msglen, "cannot check the database: %s", err.message);
		return SETUP_BAD;
	}
	snprintf(dbname, sizeof(dbname), "%s", db_value(res, 0, 0) ? db_value(res, 0, 0) : "?");
	snprintf(role, sizeof(role), "%s", db_value(res, 0, 1) ? db_value(res, 0, 1) : "?");
	has_ext = db_value(res, 0, 2) != NULL;
	snprintf(extversion, sizeof(extversion), "%s", has_ext ? db_value(res, 0, 2) : "");
	usage = db_value(res, 0, 3) && db_value(res, 0, 3)[0] == 't';
	PQclear(res);
	if (!has_ext)
	{
		snprintf(msg, msglen, "the extension \"pipeline\" is not installed in database \"%s\": "
				 "run CREATE EXTENSION pipeline in it, or give -d the database that has it", dbname);
		return SETUP_BAD;
	}
	if (!usage)
	{
		snprintf(msg, msglen, "role \"%s\" may not use schema pipeline in database \"%s\": "
				 "GRANT USAGE ON SCHEMA pipeline TO \"%s\" (README, Privileges)", role, dbname, role);
		return SETUP_BAD;
	}
	for (const char *const *f = functions; f && *f; f++)
	{
		const char *params[1] = {*f};
		bool exists, may;

		res = db_query(db,
					   "SELECT pg_catalog.to_regprocedure($1) IS NOT NULL,"
					   " pg_catalog.has_function_privilege(pg_catalog.to_regprocedure($1), 'EXECUTE')",
					   1, params, &err);
		if (!res)
		{
			if (db_error_transient(&err))
				return SETUP_RETRY;
			snprintf(msg, msglen, "cannot check the database: %s", err.message);
			return SETUP_BAD;
		}
		exists = db_value(res, 0, 0) && db_value(res, 0, 0)[0] == 't';
		may = db_value(res, 0, 1) && db_value(res, 0, 1)[0] == 't';
		PQclear(res);
		if (!exists)
			snprintf(msg, msglen, "function %s does not exist in database \"%s\" (extension pipeline %s): "
					 "run ALTER EXTENSION pipeline UPDATE", *f, dbname, extversion);
		else if (!may)
			snprintf(msg, msglen, "role \"%s\" may not execute %s: GRANT EXECUTE ON FUNCTION %s TO \"%s\" "
					 "(README, Privileges)", role, *f, *f, role);
		if (!exists || !may)
			return SETUP_BAD;
	}
	return SETUP_OK;
}

int
db_error_exit_code(const db_error *err)
{
	const char *s = err->sqlstate;

	if (err->conn_lost || strncmp(s, "08", 2) == 0 || strncmp(s, "28", 2) == 0 ||
		strcmp(s, "42501") == 0 || strcmp(s, "3F000") == 0 || strcmp(s, "42P01") == 0 ||
		strcmp(s, "42883") == 0 || strcmp(s, "3D000") == 0)
		return EXIT_USAGE;
	return EXIT_FAILED;
}

const char *
db_error_hint(const db_error *err)
{
	const char *s = err->sqlstate;

	if (strcmp(s, "42501") == 0)
		return "the role lacks a grant (README, Privileges)";
	if (strcmp(s, "3F000") == 0 || strcmp(s, "42P01") == 0)
		return "is the extension installed? run CREATE EXTENSION pipeline";
	if (strcmp(s, "42883") == 0)
		return "is the extension up to date? run ALTER EXTENSION pipeline UPDATE";
	return "";
}

int
db_socket(const db_conn *db)
{
	if (!db->conn || PQstatus(db->conn) != CONNECTION_OK)
		return -1;
	return PQsocket(db->conn);
}

void
db_consume(db_conn *db)
{
	if (!db->conn)
		return;
	if (!PQconsumeInput(db->conn) || PQstatus(db->conn) != CONNECTION_OK)
	{
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(db->conn));
		oneline(msg);
		drop_connection(db, msg[0] ? msg : "connection closed");
		return;
	}
	collect_notifications(db);
}

PGresult *
db_query(db_conn *db, const char *sql, int nparams, const char *const *params,
		 db_error *err)
{
	PGresult *res;
	ExecStatusType st;

	if (err)
		memset(err, 0, sizeof(*err));
	if (!db->conn || PQstatus(db->conn) != CONNECTION_OK)
	{
		set_error(err, "08003", "not connected to the database", true);
		return NULL;
	}
	res = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
	{
		collect_notifications(db);
		return res;
	}
	{
		const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
		const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
		const char *msg = primary ? primary : PQerrorMessage(db->conn);
		bool lost = PQstatus(db->conn) != CONNECTION_OK;

		set_error(err, state ? state : (lost ? "08006" : ""), msg, lost);
		if (err && !primary)
			oneline(err->message);
		PQclear(res);
		if (lost)
			drop_connection(db, err ? err->message : "connection lost");
		else
			collect_notifications(db);
	}
	return NULL;
}

bool
db_error_transient(const db_error *err)
{
	const char *s = err->sqlstate;

	if (err->conn_lost)
		return true;
	if (strncmp(s, "08", 2) == 0 ||	/* connection exception */
		strncmp(s, "53", 2) == 0 ||	/* insufficient resources */
		strncmp(s, "57P", 3) == 0 ||	/* admin shutdown, crash shutdown, cannot connect now */
		strcmp(s, "40001") == 0 ||	/* serialization failure */
		strcmp(s, "40P01") == 0 ||	/* deadlock */
		strcmp(s, "55P03") == 0 ||	/* lock not available */
		strcmp(s, "57014") == 0 ||	/* query canceled (statement timeout) */
		strcmp(s, "25006") == 0)	/* read-only transaction: a standby after failover */
		return true;
	return false;
}

int
db_connect_checked(db_conn *db, const char *cmd)
{
	db_error err;
	char msg[1536];

	if (!db_connect(db, &err))
	{
		fprintf(stderr, "%s %s: cannot connect to the database: %s\n", PCTL_NAME, cmd, err.message);
		return EXIT_USAGE;
	}
	switch (db_check_setup(db, NULL, msg, sizeof(msg)))
	{
		case SETUP_OK:
			return -1;
		case SETUP_RETRY:
			fprintf(stderr, "%s %s: lost the database connection while checking it\n", PCTL_NAME, cmd);
			return EXIT_USAGE;
		case SETUP_BAD:
			fprintf(stderr, "%s %s: %s\n", PCTL_NAME, cmd, msg);
			return EXIT_USAGE;
	}
	return EXIT_USAGE;
}

int
db_open_checked(db_conn *db, const char *conninfo, const char *cmd)
{
	int rc;

	db_init(db, conninfo, NULL);
	if ((rc = db_connect_checked(db, cmd)) >= 0)
		db_close(db);
	return rc;
}

int
db_fail(const char *cmd, const db_error *err)
{
	const char *hint = db_error_hint(err);

	fprintf(stderr, "%s %s: %s%s%s\n", PCTL_NAME, cmd, err->message, *hint ? ": " : "", hint);
	return db_error_exit_code(err);
}

int
db_col(const PGresult *res, const char *name)
{
	return res ? PQfnumber(res, name) : -1;
}

const char *
db_value(const PGresult *res, int row, int col)
{
	if (!res || col < 0 || row < 0 || row >= PQntuples(res) || col >= PQnfields(res))
		return NULL;
	if (PQgetisnull(res, row, col))
		return NULL;
	return PQgetvalue(res, row, col);
}
