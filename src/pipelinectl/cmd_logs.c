/*
 * cmd_logs.c: "pipelinectl logs JOB_TASK_ID [--follow | --json]" and
 *             "pipelinectl logs --run RUN [--json]" (cmd_runlogs.c prints those two).
 *
 * logs prints the chunks of pipeline.job_task_log(id) in seq order.  With
 * --follow it keeps reading chunks after the last seq it printed, woken by
 * NOTIFY pipeline_events and at least once a second, until the task is
 * complete (canceled, failed, succeeded, skipped); the stage is read before
 * the chunks, so the last read after completion has everything.
 *
 * Exit status: 0 on success, 1 when the task does not exist or a query
 * fails, 2 on a usage or connection error, 130 when interrupted.
 *
 * Locking: none (reads only).
 */
#define _GNU_SOURCE
#include "commands.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
logs_usage(FILE *f)
{
	fprintf(f,
			"Usage: pipelinectl logs JOB_TASK_ID [OPTION]...\n"
			"       pipelinectl logs --run RUN [--json]\n"
			"Print the output of a job task, or of every task of a run (a header per task,\n"
			"a marker before each attempt of a task that ran more than once).\n"
			"\n"
			"  -f, --follow              keep printing new output until the task is complete\n"
			"  -r, --run RUN             every task of the run RUN\n"
			"      --json                one JSON document (not with --follow)\n"
			"  -d, --dbname CONNINFO     database connection string (default: PG* environment)\n"
			"  -h, --help                show this help\n");
}

/* the task's stage; false on error (err filled), *stage NULL when it does not exist */
static bool
read_stage(db_conn *db, const char *id, char **stage, db_error *err)
{
	const char *params[1] = {id};
	PGresult *res = db_query(db, "SELECT stage FROM pipeline.job_tasks WHERE id = $1::bigint", 1,
							 params, err);

	*stage = NULL;
	if (!res)
		return false;
	if (PQntuples(res) > 0 && db_value(res, 0, 0))
		*stage = xstrdup(db_value(res, 0, 0));
	PQclear(res);
	return true;
}

/* prints chunks after *last; false on error */
static bool
print_chunks(db_conn *db, const char *id, int64_t *last, db_error *err)
{
	char after[24];
	const char *params[2];
	PGresult *res;
	int n;

	snprintf(after, sizeof(after), "%lld", (long long) *last);
	params[0] = id;
	params[1] = after;
	res = db_query(db,
				   "SELECT seq, chunk FROM pipeline.job_task_log($1::bigint) WHERE seq > $2::bigint ORDER BY seq",
				   2, params, err);
	if (!res)
		return false;
	n = PQntuples(res);
	for (int i = 0; i < n; i++)
	{
		int64_t seq;
		const char *chunk = db_value(res, i, 1);

		if (chunk)
			fwrite(chunk, 1, (size_t) PQgetlength(res, i, 1), stdout);
		if (db_value(res, i, 0) && parse_int64(db_value(res, i, 0), &seq) && seq > *last)
			*last = seq;
	}
	fflush(stdout);
	PQclear(res);
	return true;
}

int
cmd_logs(int argc, char **argv, const char *conninfo)
{
	bool follow = false, json = false;
	const char *run = NULL;
	int64_t id, last = 0;
	char idstr[24];
	db_conn db;
	db_error err;
	char *stage = NULL;
	int rc = 0;
	opt_cmd cmd = {"logs", logs_usage, conninfo, 0};

	{
		const opt_spec specs[] = {
			{"follow", 'f', OPT_FLAG, &follow, 0, 0, NULL},
			{"run", 'r', OPT_STRING, &run, 0, 0, NULL},
			{"json", 0, OPT_FLAG, &json, 0, 0, NULL},
			{NULL, 0, 0, NULL, 0, 0, NULL}
		};

		if ((rc = opts_parse(&cmd, argc, argv, specs)) >= 0)
			return rc;
		if ((run || json) && follow)
			return usage_error(&cmd, "--follow cannot be combined with --run or --json");
		if (run)
		{
			if (!parse_positive_id(run, &id))
				return usage_error(&cmd, "--run needs a RUN id (a positive integer), not \"%s\"", run);
			if (cmd.first_arg < argc)
				return usage_error(&cmd, "unexpected argument \"%s\" (--run prints every task of the run)",
								   argv[cmd.first_arg]);
			return logs_run(run, NULL, json, cmd.conninfo);
		}
		if ((rc = opts_one_id(&cmd, argc, argv, "JOB_TASK_ID", "job task", &id)) >= 0)
			return rc;
		rc = 0;
	}
	if (json)
		return logs_run(NULL, argv[cmd.first_arg], true, cmd.conninfo);
	snprintf(idstr, sizeof(idstr), "%lld", (long long) id);

	log_init("logs");
	log_set_min_level(LOG_WARN);
	db_init(&db, cmd.conninfo, follow ? "pipeline_events" : NULL);
	if ((rc = db_connect_checked(&db, "logs")) >= 0)
	{
		db_close(&db);
		return rc;
	}
	rc = 0;
	if (!read_stage(&db, idstr, &stage, &err))
	{
		rc = db_fail("logs", &err);
		db_close(&db);
		return rc;
	}
	if (!stage)
	{
		fprintf(stderr, "pipelinectl logs: job task %s not found\n", idstr);
		db_close(&db);
		return 1;
	}
	if (!follow)
	{
		if (!print_chunks(&db, idstr, &last, &err))
			rc = db_fail("logs", &err);
		free(stage);
		db_close(&db);
		return rc;
	}

	signals_install(false, false, false);
	{
		double next_fetch = 0, last_fetch = 0;
		unsigned long seen = db.notifications;

		for (;;)
		{
			double now = mono_now();
			double wake;
			struct pollfd fds[2];
			int nfds = 0;

			signals_drain();
			if (g_sig.term_count > 0)
			{
				rc = 130;
				break;
			}
			if (db_ensure(&db, now) && now >= next_fetch)
			{
				bool complete = false;

				seen = db.notifications;
				last_fetch = now;
				next_fetch = now + 1.0;
				/* the stage first: output appended before completion is then all there */
				free(stage);
				if (!read_stage(&db, idstr, &stage, &err) ||
					!print_chunks(&db, idstr, &last, &err))
				{
					if (!db_error_transient(&err))
					{
						rc = db_fail("logs", &err);
						break;
					}
				}
				else if (!stage)
				{
					fprintf(stderr, "pipelinectl logs: job task %s no longer exists\n", idstr);
					rc = 1;
					break;
				}
				else
					complete = stage_is_complete(stage);
				if (complete)
					break;
			}
			/* a NOTIFY brings the next read forward, at most 4 reads a second */
			if (db.notifications != seen)
			{
				double soon = last_fetch + 0.25;

				seen = db.notifications;
				if (soon < next_fetch)
					next_fetch = soon;
			}
			fds[nfds].fd = signals_fd();
			fds[nfds].events = POLLIN;
			nfds++;
			if (db_socket(&db) >= 0)
			{
				fds[nfds].fd = db_socket(&db);
				fds[nfds].events = POLLIN;
				nfds++;
			}
			now = mono_now();
			wake = db_connected(&db) ? next_fetch : db.next_attempt;
			if (poll(fds, (nfds_t) nfds, ms_until(wake, now)) < 0 && errno != EINTR)
				usleep(100000);
			if (db_socket(&db) >= 0)
				db_consume(&db);
		}
	}
	free(stage);
	db_close(&db);
	return rc;
}

