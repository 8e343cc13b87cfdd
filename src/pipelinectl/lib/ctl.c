/*
 * lib/ctl.c: connecting for a one-shot command and mapping database errors to
 * exit statuses (see ctl.h).  No locking.
 */
#define _GNU_SOURCE
#include "ctl.h"

#include <stdio.h>
#include <string.h>

void
ctl_quiet_logs(const char *cmd)
{
	log_init(cmd);
	log_set_min_level(LOG_WARN);
}

bool
ctl_error_is_setup(const db_error *err)
{
	const char *s = err->sqlstate;

	return err->conn_lost || s[0] == '\0' ||
		strncmp(s, "08", 2) == 0 ||		/* connection */
		strncmp(s, "57P", 3) == 0 ||	/* shutdown, cannot connect now */
		strncmp(s, "28", 2) == 0 ||		/* authorization */
		strcmp(s, "42501") == 0 ||		/* insufficient privilege */
		strcmp(s, "3F000") == 0 ||		/* schema missing */
		strcmp(s, "42883") == 0 ||		/* function missing (older extension) */
		strcmp(s, "42P01") == 0 ||		/* relation missing */
		strcmp(s, "25006") == 0 ||		/* read-only transaction (a standby) */
		strcmp(s, "0A000") == 0;		/* feature not supported (pg_cron missing) */
}

int
ctl_report_error(const db_error *err, const char *cmd)
{
	const char *s = err->sqlstate;
	const char *hint = "";

	if (strcmp(s, "42501") == 0)
		hint = " (this role lacks a grant: see \"Privileges\" in the README)";
	else if (strcmp(s, "3F000") == 0 || strcmp(s, "42P01") == 0)
		hint = " (is the pipeline extension installed? CREATE EXTENSION pipeline)";
	else if (strcmp(s, "42883") == 0)
		hint = " (the installed pipeline extension lacks this function: ALTER EXTENSION pipeline UPDATE)";
	else if (err->conn_lost || strncmp(s, "08", 2) == 0)
		hint = " (check -d CONNINFO or PGHOST, PGPORT, PGDATABASE)";
	fprintf(stderr, "pipelinectl %s: %s%s\n", cmd, err->message, hint);
	return ctl_error_is_setup(err) ? EXIT_USAGE : 1;
}

bool
ctl_connect(db_conn *db, const char *conninfo)
{
	db_error	err;
	PGresult   *res;

	db_init(db, conninfo, NULL);
	if (!db_connect(db, &err))
	{
		fprintf(stderr, "pipelinectl: cannot connect to the database: %s "
				"(check -d CONNINFO or PGHOST, PGPORT, PGUSER, PGDATABASE)\n", err.message);
		db_close(db);
		return false;
	}
	res = db_query(db, "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pipeline'",
				   0, NULL, &err);
	if (!res)
	{
		fprintf(stderr, "pipelinectl: %s\n", err.message);
		db_close(db);
		return false;
	}
	if (PQntuples(res) == 0)
	{
		fprintf(stderr, "pipelinectl: the pipeline extension is not installed in database \"%s\": "
				"run CREATE EXTENSION pipeline there, or connect to another database with -d\n",
				PQdb(db->conn));
		PQclear(res);
		db_close(db);
		return false;
	}
	PQclear(res);
	return true;
}
