/*
 * cmd_graph.c: "pipelinectl graph PIPELINE_TASK_ID [--format mermaid|dot]"
 * prints pipeline.graph() of a run.
 *
 * Exit status: 0 on success, 1 when the run does not exist or the query
 * fails, 2 on a usage or connection error.
 *
 * Locking: none (one read).
 */
#define _GNU_SOURCE
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
graph_usage(FILE *f)
{
	fprintf(f,
			"Usage: pipelinectl graph PIPELINE_TASK_ID [OPTION]...\n"
			"Print a picture of a run: stages, tasks and their stages as colours.\n"
			"\n"
			"      --format FORMAT       mermaid (default) or dot\n"
			"  -d, --dbname CONNINFO     database connection string (default: PG* environment)\n"
			"  -h, --help                show this help\n");
}

int
cmd_graph(int argc, char **argv, const char *conninfo)
{
	const char *format = "mermaid";
	int64_t id;
	char idstr[24];
	db_conn db;
	db_error err;
	const char *params[2];
	PGresult *res;
	int rc = 0;
	opt_cmd cmd = {"graph", graph_usage, conninfo, 0};

	{
		const opt_spec specs[] = {
			{"format", 0, OPT_STRING, &format, 0, 0, NULL},
			{NULL, 0, 0, NULL, 0, 0, NULL}
		};

		if ((rc = opts_parse(&cmd, argc, argv, specs)) >= 0)
			return rc;
	}
	if (strcmp(format, "mermaid") != 0 && strcmp(format, "dot") != 0)
		return usage_error(&cmd, "--format must be mermaid or dot");
	if ((rc = opts_one_id(&cmd, argc, argv, "PIPELINE_TASK_ID", "pipeline task", &id)) >= 0)
		return rc;
	rc = 0;
	snprintf(idstr, sizeof(idstr), "%lld", (long long) id);

	log_init("graph");
	log_set_min_level(LOG_WARN);
	db_init(&db, cmd.conninfo, NULL);
	if ((rc = db_connect_checked(&db, "graph")) >= 0)
	{
		db_close(&db);
		return rc;
	}
	rc = 0;
	params[0] = idstr;
	params[1] = format;
	res = db_query(&db, "SELECT pipeline.graph($1::bigint, $2::text)", 2, params, &err);
	if (!res)
		rc = db_fail("graph", &err);
	else
	{
		const char *g = PQntuples(res) > 0 ? db_value(res, 0, 0) : NULL;

		if (!g)
		{
			fprintf(stderr, "pipelinectl graph: pipeline task %s not found\n", idstr);
			rc = 1;
		}
		else
		{
			size_t n = strlen(g);

			fwrite(g, 1, n, stdout);
			if (n == 0 || g[n - 1] != '\n')
				fputc('\n', stdout);
			if (fflush(stdout) != 0)
				rc = 1;
		}
		PQclear(res);
	}
	db_close(&db);
	return rc;
}
