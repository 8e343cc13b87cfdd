/*
 * cmd_run.c: "pipelinectl run": start a run of a pipeline.
 *
 *   pipelinectl run PIPELINE [-p NAME=VALUE]... [--label K=V]... [--dry-run]
 *                   [--queue] [--priority N] [--watch]
 *
 * Calls pipeline.run_pipeline(pipeline, params, dry_run, labels => ...,
 * on_busy => 'queue' with --queue, priority => N with --priority) and prints
 * the new run's id on stdout.
 * Param and label values are strings.  With --watch it then follows the run
 * as "pipelinectl watch" does and exits as watch does.
 *
 * Exit status: 0 started (with --watch: the run succeeded); 1 the engine
 * refused the run (unknown pipeline, a required param without a value, a busy
 * sequence without --queue) or, with --watch, the run did not succeed;
 * 2 usage, connection, privilege or set-up error.
 *
 * Locks: those of run_pipeline (the sequence label's advisory lock).
 */
#define _GNU_SOURCE
#include "commands.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
run_usage(FILE *f)
{
	fprintf(f,
			"Usage: pipelinectl run PIPELINE [OPTION]...\n"
			"Start a run of PIPELINE and print its id.\n"
			"\n"
			"  -p, --param NAME=VALUE    a run param (repeatable; \"stage.task.NAME\" scopes it to a task)\n"
			"  -l, --label KEY=VALUE     a run label (repeatable; sequence_label values go here)\n"
			"      --dry-run             create the run, but runners report its tasks without running them\n"
			"      --queue               if the pipeline's sequence is busy, wait (pending) instead of failing\n"
			"      --priority N          runners claim the run's tasks before those of lower priority\n"
			"                            (an integer, default 0; higher first)\n"
			"  -w, --watch               follow the run until it ends (exit as \"watch\" does)\n"
			"  -d, --dbname CONNINFO     database connection string (default: PG* environment)\n"
			"  -h, --help                show this help\n"
			"\n"
			"Exit status: 0 started (--watch: succeeded); 1 refused by the engine (--watch: the run\n"
			"did not succeed); 2 usage, connection, privilege or set-up error.\n");
}

/* "NAME=VALUE" into obj; false (message printed) when malformed */
static bool
add_pair(json_t *obj, const char *arg, const char *opt)
{
	const char *eq = strchr(arg, '=');
	char	   *name;

	if (!eq || eq == arg)
	{
		fprintf(stderr, "pipelinectl run: %s needs NAME=VALUE, not \"%s\"\n", opt, arg);
		return false;
	}
	name = xstrndup(arg, (size_t) (eq - arg));
	json_object_set_new(obj, name, json_string(eq + 1));
	free(name);
	return true;
}

int
cmd_run(int argc, char **argv, const char *conninfo)
{
	opt_list	pairs = {0},
				label_pairs = {0};
	bool		dry_run = false,
				queue = false,
				watch = false,
				ok = true;
	int			priority = 0;
	const opt_spec specs[] = {
		{"param", 'p', OPT_LIST, &pairs, 0, 0, NULL},
		{"label", 'l', OPT_LIST, &label_pairs, 0, 0, NULL},
		{"dry-run", 0, OPT_FLAG, &dry_run, 0, 0, NULL},
		{"queue", 0, OPT_FLAG, &queue, 0, 0, NULL},
		{"priority", 0, OPT_INT, &priority, -1000000, 1000000, "an integer from -1000000 to 1000000"},
		{"watch", 'w', OPT_FLAG, &watch, 0, 0, NULL},
		{NULL, 0, 0, NULL, 0, 0, NULL}
	};
	opt_cmd		cmd = {"run", run_usage, conninfo, 0};
	json_t	   *params,
			   *labels;
	int			rc;
	char	   *ptext,
			   *ltext,
			   *id = NULL;
	const char *qp[6];
	char		prio[16];
	db_conn		db;
	db_error	err;
	PGresult   *res;

	if ((rc = opts_parse(&cmd, argc, argv, specs)) >= 0)
	{
		opt_list_free(&pairs);
		opt_list_free(&label_pairs);
		return rc;
	}
	rc = 0;
	params = json_object();
	labels = json_object();
	for (size_t i = 0; ok && i < pairs.count; i++)
		ok = add_pair(params, pairs.items[i], "-p");
	for (size_t i = 0; ok && i < label_pairs.count; i++)
		ok = add_pair(labels, label_pairs.items[i], "--label");
	opt_list_free(&pairs);
	opt_list_free(&label_pairs);
	if (ok && cmd.first_arg != argc - 1)
	{
		if (cmd.first_arg >= argc)
			usage_error(&cmd, "missing PIPELINE");
		else
			usage_error(&cmd, "unexpected argument \"%s\"", argv[cmd.first_arg + 1]);
		ok = false;
	}
	if (!ok)
	{
		json_decref(params);
		json_decref(labels);
		return EXIT_USAGE;
	}
	conninfo = cmd.conninfo;

	log_init("run");
	log_set_min_level(LOG_WARN);
	if ((rc = db_open_checked(&db, conninfo, "run")) >= 0)
	{
		json_decref(params);
		json_decref(labels);
		return rc;
	}
	rc = 0;
	ptext = json_dumps(params, JSON_COMPACT);
	ltext = json_dumps(labels, JSON_COMPACT);
	qp[0] = argv[cmd.first_arg];
	qp[1] = ptext;
	qp[2] = dry_run ? "true" : "false";
	qp[3] = ltext;
	qp[4] = queue ? "queue" : "error";
	snprintf(prio, sizeof(prio), "%d", priority);
	qp[5] = prio;
	/* without --priority the call names no priority (an engine before 0.3 has none) */
	if (priority != 0)
		res = db_query(&db,
					   "SELECT pipeline.run_pipeline($1, $2::jsonb, dry_run => $3::boolean,"
					   " labels => $4::jsonb, on_busy => $5, priority => $6::int)", 6, qp, &err);
	else
		res = db_query(&db,
					   "SELECT pipeline.run_pipeline($1, $2::jsonb, dry_run => $3::boolean,"
					   " labels => $4::jsonb, on_busy => $5)", 5, qp, &err);
	free(ptext);
	free(ltext);
	json_decref(params);
	json_decref(labels);
	if (!res)
		rc = db_fail("run", &err);
	else
	{
		id = xstrdup(db_value(res, 0, 0));
		PQclear(res);
		printf("%s\n", id);
		fflush(stdout);
	}
	db_close(&db);
	if (rc == 0 && watch)
	{
		char	   *wargv[3] = {"watch", id, NULL};

		rc = cmd_watch(2, wargv, conninfo);
	}
	free(id);
	return rc;
}
