/*
 * serve/metrics.c: /metrics in the Prometheus text format (0.0.4) and
 * /healthz, read with serve's own role (-d), without a login, so that a
 * scraper needs no session.  They show counts only, never names of params,
 * logs or hooks; serve listens on loopback unless told otherwise.
 *
 *   pipeline_runs{stage}                          gauge   pipeline.stats.runs_by_stage
 *   pipeline_job_tasks{stage}                     gauge   pipeline.stats.tasks_by_stage
 *   pipeline_tasks_waiting{labels}                gauge   job tasks 'scheduling' per label set
 *   pipeline_tasks_waiting_oldest_seconds{labels} gauge   the oldest of them, per label set
 *   pipeline_oldest_waiting_task_seconds          gauge   stats.oldest_waiting_task_age (0: none)
 *   pipeline_tasks_at_gates                       gauge   stats.tasks_at_gates
 *   pipeline_task_duration_seconds{pipeline}      histogram of finished job tasks' end - start
 *   pipeline_hook_deliveries{status}              gauge   stats.deliveries_by_status
 *   pipeline_rejected_tokens_total                counter stats.rejected_tokens
 *   pipeline_events_written_total                 counter stats.events_written
 *   pipeline_tasks_waiting_by_priority{priority}  gauge   stats.waiting_by_priority
 *   pipeline_tasks_waiting_by_concurrency_key{key} gauge  stats.waiting_by_concurrency_key
 *   pipeline_concurrency_slots_used{key}          gauge   stats.running_by_concurrency_key
 *
 * Every stage and delivery status is written, 0 when absent, so a series
 * does not vanish (priorities and concurrency keys: those present only).  serve's role needs SELECT on pipeline.stats,
 * pipeline.job_tasks and pipeline.pipeline_tasks (README "Dashboard").
 *
 * Locking: none (reads only).
 */
#define _GNU_SOURCE
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const stages[] = {
	"pending", "scheduling", "creating", "active", "canceling",
	"canceled", "failed", "succeeded", "skipped"
};
static const char *const statuses[] = {"pending", "sending", "succeeded", "failed"};
static const char *const buckets[] = {"1", "5", "10", "30", "60", "300", "900", "1800", "3600"};

/* a label value: backslash, double quote and newline escaped */
static void
label_esc(strbuf *sb, const char *s)
{
	for (; s && *s; s++)
	{
		if (*s == '\\')
			sb_puts(sb, "\\\\");
		else if (*s == '"')
			sb_puts(sb, "\\\"");
		else if (*s == '\n')
			sb_puts(sb, "\\n");
		else
			sb_putc(sb, *s);
	}
}

static void
help(strbuf *sb, const char *name, const char *type, const char *text)
{
	sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* one gauge per key of a JSON object of counts, every key of keys written */
static void
by_key(strbuf *sb, const char *name, const char *label, const char *json,
	   const char *const *keys, size_t nkeys)
{
	char err[128];
	json_t *o = json ? pj_parse(json, strlen(json), err, sizeof(err)) : NULL;

	for (size_t i = 0; i < nkeys; i++)
	{
		double v = 0;

		if (o)
			pj_get_number(o, keys[i], &v);
		sb_printf(sb, "%s{%s=\"%s\"} %.0f\n", name, label, keys[i], v);
	}
	json_decref(o);
}

/* one gauge per key of a JSON object of counts, the keys it has */
static void
each_key(strbuf *sb, const char *name, const char *label, const char *json)
{
	char err[128];
	json_t *o = json ? pj_parse(json, strlen(json), err, sizeof(err)) : NULL;
	const char *k;
	json_t *v;

	if (o && json_is_object(o))
		json_object_foreach(o, k, v)
		{
			double n = 0;

			pj_get_number(o, k, &n);
			sb_printf(sb, "%s{%s=\"", name, label);
			label_esc(sb, k);
			sb_printf(sb, "\"} %.0f\n", n);
		}
	json_decref(o);
}

static const char *
num_or_zero(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? "0" : PQgetvalue(res, row, col);
}

static bool write_metrics_tx(PGconn *c, strbuf *sb, char **err);

static bool
write_metrics(PGconn *c, strbuf *sb, char **err)
{
	PGresult *st;
	bool ok;

	/* one snapshot and one now() for every number */
	if (!(st = qc(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, err, NULL)))
		return false;
	PQclear(st);
	ok = write_metrics_tx(c, sb, err);
	st = PQexec(c, ok ? "COMMIT" : "ROLLBACK");
	PQclear(st);
	return ok;
}

static bool
write_metrics_tx(PGconn *c, strbuf *sb, char **err)
{
	PGresult *st, *w, *h;

	st = qc(c, "SELECT runs_by_stage, tasks_by_stage, rejected_tokens, deliveries_by_status,"
			"       extract(epoch FROM oldest_waiting_task_age), tasks_at_gates, events_written,"
			"       waiting_by_priority, waiting_by_concurrency_key, running_by_concurrency_key"
			"  FROM pipeline.stats", 0, NULL, err, NULL);
	if (!st)
		return false;
	w = qc(c, "SELECT labels::text, count(*), extract(epoch FROM now() - min(updated_at))"
		   "  FROM pipeline.job_tasks WHERE stage = 'scheduling' GROUP BY labels ORDER BY 1",
		   0, NULL, err, NULL);
	if (!w)
	{
		PQclear(st);
		return false;
	}
	h = qc(c, "SELECT p.pipeline_name,"
		   "       count(*) FILTER (WHERE s <= 1), count(*) FILTER (WHERE s <= 5),"
		   "       count(*) FILTER (WHERE s <= 10), count(*) FILTER (WHERE s <= 30),"
		   "       count(*) FILTER (WHERE s <= 60), count(*) FILTER (WHERE s <= 300),"
		   "       count(*) FILTER (WHERE s <= 900), count(*) FILTER (WHERE s <= 1800),"
		   "       count(*) FILTER (WHERE s <= 3600), count(*), coalesce(sum(s), 0)"
		   "  FROM (SELECT t.pipeline_task_id, extract(epoch FROM t.duration) AS s"
		   "          FROM pipeline.job_tasks t WHERE t.duration IS NOT NULL) d"
		   "  JOIN pipeline.pipeline_tasks p ON p.id = d.pipeline_task_id"
		   " GROUP BY p.pipeline_name ORDER BY 1", 0, NULL, err, NULL);
	if (!h)
	{
		PQclear(st);
		PQclear(w);
		return false;
	}

	help(sb, "pipeline_runs", "gauge", "Runs (pipeline tasks) by stage.");
	by_key(sb, "pipeline_runs", "stage", PQgetvalue(st, 0, 0), stages, ARRAY_LEN(stages));
	help(sb, "pipeline_job_tasks", "gauge", "Job tasks by stage.");
	by_key(sb, "pipeline_job_tasks", "stage", PQgetvalue(st, 0, 1), stages, ARRAY_LEN(stages));

	help(sb, "pipeline_tasks_waiting", "gauge",
		 "Job tasks waiting for a runner (stage scheduling), per label set.");
	for (int i = 0; i < PQntuples(w); i++)
	{
		sb_puts(sb, "pipeline_tasks_waiting{labels=\"");
		label_esc(sb, PQgetvalue(w, i, 0));
		sb_printf(sb, "\"} %s\n", PQgetvalue(w, i, 1));
	}
	help(sb, "pipeline_tasks_waiting_oldest_seconds", "gauge",
		 "Seconds the oldest waiting job task has waited, per label set.");
	for (int i = 0; i < PQntuples(w); i++)
	{
		sb_puts(sb, "pipeline_tasks_waiting_oldest_seconds{labels=\"");
		label_esc(sb, PQgetvalue(w, i, 0));
		sb_printf(sb, "\"} %s\n", num_or_zero(w, i, 2));
	}
	help(sb, "pipeline_oldest_waiting_task_seconds", "gauge",
		 "Seconds the oldest waiting job task has waited (0 when none waits).");
	sb_printf(sb, "pipeline_oldest_waiting_task_seconds %s\n", num_or_zero(st, 0, 4));
	help(sb, "pipeline_tasks_at_gates", "gauge", "Job tasks waiting at an audit or confirm gate.");
	sb_printf(sb, "pipeline_tasks_at_gates %s\n", num_or_zero(st, 0, 5));

	help(sb, "pipeline_task_duration_seconds", "histogram",
		 "Duration of finished job tasks (end_at - start_at), per pipeline.");
	for (int i = 0; i < PQntuples(h); i++)
	{
		for (size_t b = 0; b < ARRAY_LEN(buckets); b++)
		{
			sb_puts(sb, "pipeline_task_duration_seconds_bucket{pipeline=\"");
			label_esc(sb, PQgetvalue(h, i, 0));
			sb_printf(sb, "\",le=\"%s\"} %s\n", buckets[b], PQgetvalue(h, i, 1 + (int) b));
		}
		sb_puts(sb, "pipeline_task_duration_seconds_bucket{pipeline=\"");
		label_esc(sb, PQgetvalue(h, i, 0));
		sb_printf(sb, "\",le=\"+Inf\"} %s\n", PQgetvalue(h, i, 10));
		sb_puts(sb, "pipeline_task_duration_seconds_sum{pipeline=\"");
		label_esc(sb, PQgetvalue(h, i, 0));
		sb_printf(sb, "\"} %s\n", PQgetvalue(h, i, 11));
		sb_puts(sb, "pipeline_task_duration_seconds_count{pipeline=\"");
		label_esc(sb, PQgetvalue(h, i, 0));
		sb_printf(sb, "\"} %s\n", PQgetvalue(h, i, 10));
	}

	help(sb, "pipeline_hook_deliveries", "gauge", "Hook deliveries by status.");
	by_key(sb, "pipeline_hook_deliveries", "status", PQgetvalue(st, 0, 3), statuses,
		   ARRAY_LEN(statuses));
	help(sb, "pipeline_rejected_tokens_total", "counter",
		 "Status updates refused for a wrong update token.");
	sb_printf(sb, "pipeline_rejected_tokens_total %s\n", num_or_zero(st, 0, 2));
	help(sb, "pipeline_events_written_total", "counter", "Events written (event ids handed out).");
	sb_printf(sb, "pipeline_events_written_total %s\n", num_or_zero(st, 0, 6));
	help(sb, "pipeline_tasks_waiting_by_priority", "gauge",
		 "Job tasks waiting for a runner, per run priority.");
	each_key(sb, "pipeline_tasks_waiting_by_priority", "priority", PQgetvalue(st, 0, 7));
	help(sb, "pipeline_tasks_waiting_by_concurrency_key", "gauge",
		 "Job tasks waiting for a runner, per concurrency key.");
	each_key(sb, "pipeline_tasks_waiting_by_concurrency_key", "key", PQgetvalue(st, 0, 8));
	help(sb, "pipeline_concurrency_slots_used", "gauge",
		 "Job tasks holding a slot of their concurrency key (creating, active, canceling).");
	each_key(sb, "pipeline_concurrency_slots_used", "key", PQgetvalue(st, 0, 9));
	PQclear(st);
	PQclear(w);
	PQclear(h);
	return true;
}

void
page_metrics(request *r)
{
	PGconn *c = dbpool_get();
	char *err = NULL;

	r->content_type = "text/plain; version=0.0.4; charset=utf-8";
	if (!c)
	{
		r->status = 503;
		sb_puts(&r->out, "# the database is not reachable\n");
		return;
	}
	if (!write_metrics(c, &r->out, &err))
	{
		sb_reset(&r->out);
		r->status = 503;
		sb_puts(&r->out, "# cannot read the counters: ");
		label_esc(&r->out, err);
		sb_puts(&r->out, "\n");
		log_warn("metrics: %s", err);
		free(err);
	}
	dbpool_put(c);
}

void
page_healthz(request *r)
{
	PGconn *c = dbpool_get();
	PGresult *res = c ? qc(c, "SELECT 1", 0, NULL, NULL, NULL) : NULL;

	r->content_type = "text/plain; charset=utf-8";
	if (res)
	{
		sb_puts(&r->out, "ok\n");
		PQclear(res);
	}
	else
	{
		r->status = 503;
		sb_puts(&r->out, "database unreachable\n");
	}
	dbpool_put(c);
}
