/*
 * runner/complete.c: the completer.  Final reports go to the engine in
 * batches through pipeline.update_job_task_statuses(reports jsonb) (SPEC
 * §16): one transaction, one commit and one fsync for up to
 * REPORT_BATCH_MAX tasks that finished together.
 *
 * A task's report becomes ready once its output is shipped and its runtime
 * env names are vetted (report_prepare, report.c).  Ready reports wait for
 * each other at most REPORT_FLUSH_SECS (5 ms), and not at all when no other
 * task of this runner could join them (none is running or starting), so a
 * serial pipeline's next stage is never delayed by the batching.  The
 * engine answers each report on its own row: applied, or refused with its
 * SQLSTATE and message, which report_outcome() handles exactly as it
 * handles a refused single report (a refused report does not hold up the
 * others).  A failed call (the connection, a transient error) counts as
 * that error for every report in it.
 *
 * Locking: none on the client side; the engine locks the runs and the task
 * rows of a batch in one order (src/statuses.c).
 */
#define _GNU_SOURCE
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* append "key": <JSON text> if the text parses (the runner made it) */
static void
put_json(strbuf *sb, const char *key, const char *text)
{
	json_t *v;

	if (!text)
		return;
	v = pj_parse(text, strlen(text), NULL, 0);
	if (!v)
		return;					/* never send what is not JSON; the report goes without it */
	sb_printf(sb, ",\"%s\":", key);
	pj_write(sb, v);
	json_decref(v);
}

static void
put_report(strbuf *sb, const task *t, bool first)
{
	sb_printf(sb, "%s{\"id\":%s,\"stage\":", first ? "" : ",", t->idstr);
	json_write_cstr(sb, t->final_stage);
	sb_puts(sb, ",\"update_token\":");
	json_write_cstr(sb, t->token);
	if (t->final_message)
	{
		sb_puts(sb, ",\"message\":");
		json_write_cstr(sb, t->final_message);
	}
	if (!t->minimal_report)
	{
		put_json(sb, "detail", t->final_detail);
		put_json(sb, "runtime_envs", t->final_envs);
	}
	sb_putc(sb, '}');
}

/* send the ready reports (at most REPORT_BATCH_MAX, oldest first) in one call */
static void
send_batch(runner *r, double now)
{
	task *batch[REPORT_BATCH_MAX];
	int n = 0;
	strbuf json;
	const char *params[1];
	db_error err;
	PGresult *res;

	/* oldest ready first */
	while (n < REPORT_BATCH_MAX)
	{
		task *best = NULL;

		for (task *t = r->tasks; t; t = t->next)
		{
			bool taken = false;

			if (t->state != TS_FINISH || t->ready_at == 0)
				continue;
			for (int i = 0; i < n; i++)
				taken |= batch[i] == t;
			if (!taken && (!best || t->ready_at < best->ready_at))
				best = t;
		}
		if (!best)
			break;
		batch[n++] = best;
	}
	if (n == 0)
		return;

	sb_init(&json);
	sb_putc(&json, '[');
	for (int i = 0; i < n; i++)
		put_report(&json, batch[i], i == 0);
	sb_putc(&json, ']');
	params[0] = sb_str(&json);
	res = db_query(&r->db,
				   "SELECT id, sqlstate, message FROM pipeline.update_job_task_statuses($1::jsonb)",
				   1, params, &err);
	sb_free(&json);
	log_debug("reported %d final stage%s in one call%s", n, n == 1 ? "" : "s", res ? "" : " (failed)");

	for (int i = 0; i < n; i++)
	{
		task *t = batch[i];
		const db_error *verdict = res ? NULL : &err;
		db_error refused;

		t->ready_at = 0;
		if (res)
		{
			bool answered = false;

			for (int row = 0; row < PQntuples(res); row++)
			{
				const char *id = db_value(res, row, 0);
				const char *state = db_value(res, row, 1);
				const char *msg = db_value(res, row, 2);

				if (!id || strcmp(id, t->idstr) != 0)
					continue;
				answered = true;
				if (state)
				{
					memset(&refused, 0, sizeof(refused));
					snprintf(refused.sqlstate, sizeof(refused.sqlstate), "%s", state);
					snprintf(refused.message, sizeof(refused.message), "%s", msg ? msg : "refused");
					verdict = &refused;
				}
				break;
			}
			if (!answered)
			{
				memset(&refused, 0, sizeof(refused));
				snprintf(refused.message, sizeof(refused.message), "no answer to this report");
				verdict = &refused;
			}
		}
		report_outcome(r, t, verdict, now);
	}
	if (res)
		PQclear(res);
}

/* could another task of ours finish (and so join the batch) soon? */
static bool
others_may_join(const runner *r)
{
	for (const task *t = r->tasks; t; t = t->next)
		if (t->state == TS_ACTIVATE || t->state == TS_RUNNING ||
			(t->state == TS_FINISH && t->ready_at == 0))
			return true;
	return false;
}

void
complete_step(runner *r, double now)
{
	int ready = 0;
	double oldest = 0;

	for (task *t = r->tasks; t; t = t->next)
	{
		if (t->state != TS_FINISH)
			continue;
		if (t->ready_at == 0 && report_prepare(r, t, now))
			t->ready_at = now;
		if (t->state == TS_FINISH && t->ready_at > 0)
		{
			ready++;
			if (oldest == 0 || t->ready_at < oldest)
				oldest = t->ready_at;
		}
	}
	while (ready > 0 && db_connected(&r->db) &&
		   (ready >= REPORT_BATCH_MAX || now - oldest >= REPORT_FLUSH_SECS ||
			r->force_stop || !others_may_join(r)))
	{
		send_batch(r, now);
		ready -= ready < REPORT_BATCH_MAX ? ready : REPORT_BATCH_MAX;
		oldest = now - REPORT_FLUSH_SECS;	/* the rest, if any, is due as well */
	}
}

double
complete_deadline(const runner *r)
{
	double oldest = 0;

	for (const task *t = r->tasks; t; t = t->next)
		if (t->state == TS_FINISH && t->ready_at > 0 && (oldest == 0 || t->ready_at < oldest))
			oldest = t->ready_at;
	return oldest == 0 ? 0 : oldest + REPORT_FLUSH_SECS;
}
