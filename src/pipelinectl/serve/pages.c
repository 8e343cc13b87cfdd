/*
 * serve/pages.c: the dashboard's pages, rendered on the server.
 *
 *   /                runs (filter by pipeline and run stage)
 *   /run/ID          a run: graph (SVG), tasks with durations and attempts,
 *                    gates and who must act, buttons; live through
 *                    /run/ID/events (SSE), which makes the page re-read
 *                    /run/ID/part (the same body, rendered again)
 *   /task/ID         a task and its log, tailed live through /task/ID/stream
 *   /task/ID/log     the whole log as text/plain
 *   /login           the sign-in form
 *
 * Reads only the masking views (pipeline.pipeline_tasks, pipeline.job_tasks)
 * and pipeline.job_task_log(), as the request's role: its grants decide
 * what it sees.  Every value goes through html_esc(); the inline scripts
 * carry the response's CSP nonce and insert log text with textContent.
 *
 * Locking: none (reads only).
 */
#define _GNU_SOURCE
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const run_stages[] = {
	"pending", "scheduling", "creating", "active", "canceling",
	"canceled", "failed", "succeeded", "skipped"
};

static void
badge(strbuf *sb, const char *stage)
{
	sb_puts(sb, "<span class=\"badge\" style=\"background:");
	sb_puts(sb, stage_colour(stage));	/* one of our constants */
	sb_puts(sb, "\">");
	html_esc(sb, stage);
	sb_puts(sb, "</span>");
}

static void
duration_cell(strbuf *sb, const char *secs)
{
	char buf[32];
	double d;

	if (!secs || !parse_seconds(secs, 0, 1e12, &d))
	{
		sb_puts(sb, "<td></td>");
		return;
	}
	fmt_duration(buf, sizeof(buf), d);
	sb_puts(sb, "<td>");
	html_esc(sb, buf);
	sb_puts(sb, "</td>");
}

static void
cell(strbuf *sb, const char *v)
{
	sb_puts(sb, "<td>");
	html_esc(sb, v);
	sb_puts(sb, "</td>");
}

static void
query_failed(request *r, const char *what, const char *err, const char *sqlstate)
{
	char *m = xasprintf("%s: %s", what, err ? err : "query failed");

	r->status = sqlstate && strcmp(sqlstate, "42501") == 0 ? 403 : 500;
	page_message(r, "error", m);
	free(m);
}

void
page_runs(request *r, req_db *db)
{
	const char *pipeline = req_arg(r, "pipeline");
	const char *stage = req_arg(r, "stage");
	const char *params[2];
	char *err = NULL, st[6];
	PGresult *res, *names;
	strbuf *sb = &r->out;

	if (pipeline && !*pipeline)
		pipeline = NULL;
	if (stage && !*stage)
		stage = NULL;
	params[0] = pipeline;
	params[1] = stage;
	page_begin(r, "Runs");
	names = q(db, "SELECT DISTINCT pipeline_name FROM pipeline.pipeline_tasks ORDER BY 1", 0,
			  NULL, NULL, NULL);
	sb_puts(sb, "<form method=\"get\" action=\"/\" id=\"filter\">Pipeline <select name=\"pipeline\">"
			"<option value=\"\">(all)</option>");
	for (int i = 0; names && i < PQntuples(names); i++)
	{
		const char *n = PQgetvalue(names, i, 0);

		sb_puts(sb, "<option value=\"");
		html_esc(sb, n);
		sb_puts(sb, pipeline && strcmp(pipeline, n) == 0 ? "\" selected>" : "\">");
		html_esc(sb, n);
		sb_puts(sb, "</option>");
	}
	if (names)
		PQclear(names);
	sb_puts(sb, "</select> Stage <select name=\"stage\"><option value=\"\">(all)</option>");
	for (size_t i = 0; i < ARRAY_LEN(run_stages); i++)
	{
		sb_printf(sb, "<option%s>%s</option>",
				  stage && strcmp(stage, run_stages[i]) == 0 ? " selected" : "", run_stages[i]);
	}
	sb_puts(sb, "</select> <button type=\"submit\">Filter</button></form>\n");

	res = q(db,
			"SELECT id, pipeline_name, pipeline_version, stage, run_by,"
			"       to_char(created_at, 'YYYY-MM-DD HH24:MI:SS'),"
			"       extract(epoch FROM coalesce(end_at, now()) - start_at),"
			"       tasks_done, tasks_total, message"
			"  FROM pipeline.pipeline_tasks"
			" WHERE ($1::text IS NULL OR pipeline_name = $1)"
			"   AND ($2::text IS NULL OR stage::text = $2)"
			" ORDER BY id DESC LIMIT 200", 2, params, &err, st);
	if (!res)
	{
		query_failed(r, "cannot read the runs", err, st);
		free(err);
		page_end(r);
		return;
	}
	sb_puts(sb, "<table id=\"runs\"><tr><th>Run</th><th>Pipeline</th><th>Stage</th><th>Run by</th>"
			"<th>Created</th><th>Duration</th><th>Tasks done</th><th>Message</th></tr>\n");
	for (int i = 0; i < PQntuples(res); i++)
	{
		const char *id = PQgetvalue(res, i, 0);

		sb_puts(sb, "<tr class=\"run\" data-id=\"");
		html_esc(sb, id);
		sb_puts(sb, "\"><td><a href=\"/run/");
		html_esc(sb, id);
		sb_puts(sb, "\">#");
		html_esc(sb, id);
		sb_puts(sb, "</a></td><td>");
		html_esc(sb, PQgetvalue(res, i, 1));
		sb_puts(sb, " v");
		html_esc(sb, PQgetvalue(res, i, 2));
		sb_puts(sb, "</td><td class=\"stage\">");
		badge(sb, PQgetvalue(res, i, 3));
		sb_puts(sb, "</td>");
		cell(sb, PQgetvalue(res, i, 4));
		cell(sb, PQgetvalue(res, i, 5));
		duration_cell(sb, PQgetisnull(res, i, 6) ? NULL : PQgetvalue(res, i, 6));
		sb_puts(sb, "<td>");
		html_esc(sb, PQgetvalue(res, i, 7));
		sb_puts(sb, " / ");
		html_esc(sb, PQgetvalue(res, i, 8));
		sb_puts(sb, "</td>");
		cell(sb, PQgetvalue(res, i, 9));
		sb_puts(sb, "</tr>\n");
	}
	if (PQntuples(res) == 0)
		sb_puts(sb, "<tr><td colspan=\"8\">No runs.</td></tr>");
	sb_puts(sb, "</table>\n");
	PQclear(res);
	page_end(r);
}

/* a button form posting action on id, back to the run */
static void
button(request *r, const char *action, const char *id, const char *run, const char *label,
	   bool comment)
{
	strbuf *sb = &r->out;

	sb_puts(sb, "<form class=\"inline\" method=\"post\" action=\"/action\">");
	csrf_field(r);
	sb_printf(sb, "<input type=\"hidden\" name=\"action\" value=\"%s\">", action);
	sb_puts(sb, "<input type=\"hidden\" name=\"id\" value=\"");
	html_esc(sb, id);
	sb_puts(sb, "\"><input type=\"hidden\" name=\"run\" value=\"");
	html_esc(sb, run);
	sb_puts(sb, "\">");
	if (comment)
		sb_puts(sb, "<input name=\"comment\" placeholder=\"comment\" size=\"14\">");
	sb_printf(sb, "<button type=\"submit\" class=\"act-%s\" data-id=\"", action);
	html_esc(sb, id);
	sb_printf(sb, "\">%s</button></form> ", label);
}

/* who must act at a gate: the auditors or checkers listed in the task */
static void
gate_people(strbuf *sb, const char *people_json)
{
	json_t *v;
	char err[128];
	size_t i;
	json_t *e;

	if (!people_json || !(v = pj_parse(people_json, strlen(people_json), err, sizeof(err))))
		return;
	if (json_is_array(v))
		json_array_foreach(v, i, e)
		{
			if (!json_is_string(e))
				continue;
			if (i > 0)
				sb_puts(sb, ", ");
			html_esc(sb, json_string_value(e));
		}
	json_decref(v);
}

static void
run_body(request *r, req_db *db, int64_t id)
{
	char idstr[24], *err = NULL, st[6];
	const char *params[1] = {idstr};
	PGresult *run, *tasks, *play;
	strbuf *sb = &r->out;
	bool can_play = false;

	snprintf(idstr, sizeof(idstr), "%lld", (long long) id);
	run = q(db,
			"SELECT id, pipeline_name, pipeline_version, stage, run_by,"
			"       to_char(created_at, 'YYYY-MM-DD HH24:MI:SS'),"
			"       extract(epoch FROM coalesce(end_at, now()) - start_at), message,"
			"       stage >= 'canceled'"
			"  FROM pipeline.pipeline_tasks WHERE id = $1::bigint", 1, params, &err, st);
	if (!run)
	{
		query_failed(r, "cannot read the run", err, st);
		free(err);
		return;
	}
	if (PQntuples(run) == 0)
	{
		r->status = 404;
		page_message(r, "error", "There is no such run (or this role may not see it).");
		PQclear(run);
		return;
	}
	sb_puts(sb, "<p>Pipeline <b>");
	html_esc(sb, PQgetvalue(run, 0, 1));
	sb_puts(sb, "</b> v");
	html_esc(sb, PQgetvalue(run, 0, 2));
	sb_puts(sb, " · <span id=\"run-stage\">");
	badge(sb, PQgetvalue(run, 0, 3));
	sb_puts(sb, "</span> · run by <span id=\"run-by\">");
	html_esc(sb, PQgetvalue(run, 0, 4));
	sb_puts(sb, "</span> · created ");
	html_esc(sb, PQgetvalue(run, 0, 5));
	if (!PQgetisnull(run, 0, 6))
	{
		char buf[32];
		double d;

		if (parse_seconds(PQgetvalue(run, 0, 6), 0, 1e12, &d))
		{
			fmt_duration(buf, sizeof(buf), d);
			sb_puts(sb, " · ");
			html_esc(sb, buf);
		}
	}
	if (!PQgetisnull(run, 0, 7))
	{
		sb_puts(sb, " · ");
		html_esc(sb, PQgetvalue(run, 0, 7));
	}
	sb_puts(sb, " ");
	if (strcmp(PQgetvalue(run, 0, 8), "f") == 0)
		button(r, "cancel", idstr, idstr, "Cancel run", false);
	sb_puts(sb, "</p>\n");
	PQclear(run);

	play = q(db, "SELECT to_regprocedure('pipeline.play_job_task(bigint)') IS NOT NULL", 0, NULL,
			 NULL, NULL);
	if (play)
	{
		can_play = strcmp(PQgetvalue(play, 0, 0), "t") == 0;
		PQclear(play);
	}

	tasks = q(db,
			  "SELECT id, stage_index, stage_name, task_index, task_name, stage, attempt, runner,"
			  "       extract(epoch FROM coalesce(end_at, now()) - start_at), message, gate,"
			  "       CASE gate WHEN 'audit' THEN audit->'auditors'"
			  "                 WHEN 'confirm' THEN confirm->'checkers' END"
			  "  FROM pipeline.job_tasks WHERE pipeline_task_id = $1::bigint"
			  " ORDER BY stage_index, task_index, id", 1, params, &err, st);
	if (!tasks)
	{
		query_failed(r, "cannot read the run's tasks", err, st);
		free(err);
		return;
	}
	sb_puts(sb, "<h2>Graph</h2>\n");
	svg_graph(sb, tasks);

	sb_puts(sb, "<h2>Gates</h2>\n<table id=\"gates\"><tr><th>Task</th><th>Gate</th>"
			"<th>Who must act</th><th></th></tr>\n");
	{
		int n = 0;

		for (int i = 0; i < PQntuples(tasks); i++)
		{
			const char *tid = PQgetvalue(tasks, i, 0);

			if (PQgetisnull(tasks, i, 10))
				continue;
			n++;
			sb_puts(sb, "<tr class=\"gate\" data-id=\"");
			html_esc(sb, tid);
			sb_puts(sb, "\"><td><a href=\"/task/");
			html_esc(sb, tid);
			sb_puts(sb, "\">");
			html_esc(sb, PQgetvalue(tasks, i, 2));
			sb_puts(sb, " / ");
			html_esc(sb, PQgetvalue(tasks, i, 4));
			sb_puts(sb, "</a></td>");
			cell(sb, PQgetvalue(tasks, i, 10));
			sb_puts(sb, "<td class=\"people\">");
			gate_people(sb, PQgetisnull(tasks, i, 11) ? NULL : PQgetvalue(tasks, i, 11));
			sb_puts(sb, "</td><td>");
			button(r, "approve", tid, idstr, "Approve", false);
			button(r, "deny", tid, idstr, "Deny", true);
			sb_puts(sb, "</td></tr>\n");
		}
		if (n == 0)
			sb_puts(sb, "<tr><td colspan=\"4\">No task waits at a gate.</td></tr>\n");
	}
	sb_puts(sb, "</table>\n<h2>Tasks</h2>\n<table id=\"tasks\"><tr><th>Task</th><th>Stage</th>"
			"<th>Name</th><th>State</th><th>Attempt</th><th>Runner</th><th>Duration</th>"
			"<th>Message</th><th></th></tr>\n");
	for (int i = 0; i < PQntuples(tasks); i++)
	{
		const char *tid = PQgetvalue(tasks, i, 0);
		const char *stage = PQgetvalue(tasks, i, 5);

		sb_puts(sb, "<tr class=\"task\" data-id=\"");
		html_esc(sb, tid);
		sb_puts(sb, "\" data-stage=\"");
		html_esc(sb, stage);
		sb_puts(sb, "\"><td><a href=\"/task/");
		html_esc(sb, tid);
		sb_puts(sb, "\">#");
		html_esc(sb, tid);
		sb_puts(sb, "</a></td>");
		cell(sb, PQgetvalue(tasks, i, 2));
		sb_puts(sb, "<td class=\"name\">");
		html_esc(sb, PQgetvalue(tasks, i, 4));
		sb_puts(sb, "</td><td class=\"state\">");
		badge(sb, stage);
		sb_puts(sb, "</td>");
		cell(sb, PQgetvalue(tasks, i, 6));
		cell(sb, PQgetvalue(tasks, i, 7));
		duration_cell(sb, PQgetisnull(tasks, i, 8) ? NULL : PQgetvalue(tasks, i, 8));
		cell(sb, PQgetvalue(tasks, i, 9));
		sb_puts(sb, "<td>");
		if ((strcmp(stage, "failed") == 0 || strcmp(stage, "canceled") == 0) &&
			PQgetisnull(tasks, i, 10))
			button(r, "retry", tid, idstr, "Retry", false);
		if (can_play && strcmp(stage, "pending") == 0)
			button(r, "play", tid, idstr, "Play", false);
		sb_puts(sb, "</td></tr>\n");
	}
	sb_puts(sb, "</table>\n");
	PQclear(tasks);
}

void
page_run(request *r, req_db *db, int64_t id, bool fragment, const char *error)
{
	char title[48];
	strbuf *sb = &r->out;

	if (fragment)
	{
		run_body(r, db, id);
		return;
	}
	snprintf(title, sizeof(title), "Run #%lld", (long long) id);
	page_begin(r, title);
	if (error)
		page_message(r, "error", error);
	sb_puts(sb, "<p class=\"live\">live: <span id=\"live-state\">connecting</span> · "
			"updates <span id=\"live-count\">0</span></p>\n<div id=\"live\">\n");
	run_body(r, db, id);
	sb_puts(sb, "</div>\n");
	sb_printf(sb,
			  "<script nonce=\"%s\">(function(){"
			  "var n=0,busy=false,again=false,st=document.getElementById('live-state');"
			  "function load(){if(busy){again=true;return;}busy=true;"
			  "fetch('/run/%lld/part',{credentials:'same-origin'}).then(function(r){return r.text();})"
			  ".then(function(t){document.getElementById('live').innerHTML=t;n++;"
			  "document.getElementById('live-count').textContent=String(n);})"
			  ".finally(function(){busy=false;if(again){again=false;load();}});}"
			  "var es=new EventSource('/run/%lld/events');"
			  "es.onopen=function(){st.textContent='connected';};"
			  "es.onerror=function(){st.textContent='reconnecting';};"
			  "es.addEventListener('change',load);"
			  "})();</script>\n", r->nonce, (long long) id, (long long) id);
	page_end(r);
}

void
page_task(request *r, req_db *db, int64_t id, const char *error)
{
	char idstr[24], title[48], *err = NULL, st[6];
	const char *params[1] = {idstr};
	PGresult *t, *log;
	strbuf *sb = &r->out;
	int64_t last = 0;

	snprintf(idstr, sizeof(idstr), "%lld", (long long) id);
	snprintf(title, sizeof(title), "Task #%lld", (long long) id);
	page_begin(r, title);
	if (error)
		page_message(r, "error", error);
	t = q(db,
		  "SELECT pipeline_task_id, stage_name, task_name, stage, attempt, runner,"
		  "       to_char(start_at, 'YYYY-MM-DD HH24:MI:SS'),"
		  "       extract(epoch FROM coalesce(end_at, now()) - start_at), message, gate"
		  "  FROM pipeline.job_tasks WHERE id = $1::bigint", 1, params, &err, st);
	if (!t || PQntuples(t) == 0)
	{
		if (t)
		{
			r->status = 404;
			page_message(r, "error", "There is no such task (or this role may not see it).");
			PQclear(t);
		}
		else
			query_failed(r, "cannot read the task", err, st);
		free(err);
		page_end(r);
		return;
	}
	sb_puts(sb, "<table id=\"task\"><tr><th>Run</th><td><a href=\"/run/");
	html_esc(sb, PQgetvalue(t, 0, 0));
	sb_puts(sb, "\">#");
	html_esc(sb, PQgetvalue(t, 0, 0));
	sb_puts(sb, "</a></td></tr><tr><th>Task</th><td class=\"name\">");
	html_esc(sb, PQgetvalue(t, 0, 1));
	sb_puts(sb, " / ");
	html_esc(sb, PQgetvalue(t, 0, 2));
	sb_puts(sb, "</td></tr><tr><th>State</th><td id=\"task-stage\">");
	badge(sb, PQgetvalue(t, 0, 3));
	sb_puts(sb, "</td></tr><tr><th>Attempt</th>");
	cell(sb, PQgetvalue(t, 0, 4));
	sb_puts(sb, "</tr><tr><th>Runner</th>");
	cell(sb, PQgetvalue(t, 0, 5));
	sb_puts(sb, "</tr><tr><th>Started</th>");
	cell(sb, PQgetvalue(t, 0, 6));
	sb_puts(sb, "</tr><tr><th>Duration</th>");
	duration_cell(sb, PQgetisnull(t, 0, 7) ? NULL : PQgetvalue(t, 0, 7));
	sb_puts(sb, "</tr><tr><th>Message</th>");
	cell(sb, PQgetvalue(t, 0, 8));
	sb_puts(sb, "</tr><tr><th>Gate</th>");
	cell(sb, PQgetvalue(t, 0, 9));
	sb_puts(sb, "</tr></table>\n<h2>Log</h2>\n<pre class=\"log\" id=\"log\">");
	PQclear(t);

	log = q(db, "SELECT seq, chunk FROM pipeline.job_task_log($1::bigint) ORDER BY seq", 1,
			params, &err, st);
	if (!log)
	{
		sb_puts(sb, "</pre>");
		query_failed(r, "cannot read the log", err, st);
		free(err);
		page_end(r);
		return;
	}
	for (int i = 0; i < PQntuples(log); i++)
	{
		int64_t seq;

		html_esc(sb, PQgetvalue(log, i, 1));
		if (parse_int64(PQgetvalue(log, i, 0), &seq) && seq > last)
			last = seq;
	}
	PQclear(log);
	sb_puts(sb, "</pre>\n<p class=\"live\">live tail: <span id=\"tail-state\">connecting</span></p>\n");
	sb_printf(sb,
			  "<script nonce=\"%s\">(function(){"
			  "var pre=document.getElementById('log'),st=document.getElementById('tail-state');"
			  "var es=new EventSource('/task/%lld/stream?after=%lld');"
			  "es.onopen=function(){st.textContent='following';};"
			  "es.addEventListener('chunk',function(e){var d=JSON.parse(e.data);"
			  "pre.appendChild(document.createTextNode(d.text));pre.scrollTop=pre.scrollHeight;});"
			  "es.addEventListener('stage',function(e){var b=document.querySelector('#task-stage .badge');"
			  "if(b)b.textContent=JSON.parse(e.data).stage;});"
			  "es.addEventListener('end',function(){st.textContent='task complete';es.close();});"
			  "})();</script>\n", r->nonce, (long long) id, (long long) last);
	page_end(r);
}

void
page_task_log(request *r, req_db *db, int64_t id)
{
	char idstr[24], *err = NULL, st[6];
	const char *params[1] = {idstr};
	PGresult *log;

	snprintf(idstr, sizeof(idstr), "%lld", (long long) id);
	r->content_type = "text/plain; charset=utf-8";
	log = q(db, "SELECT chunk FROM pipeline.job_task_log($1::bigint) ORDER BY seq", 1, params,
			&err, st);
	if (!log)
	{
		r->status = strcmp(st, "42501") == 0 ? 403 : strcmp(st, "P0002") == 0 ? 404 : 500;
		sb_printf(&r->out, "%s\n", err);
		free(err);
		return;
	}
	for (int i = 0; i < PQntuples(log); i++)
		sb_append(&r->out, PQgetvalue(log, i, 0), (size_t) PQgetlength(log, i, 0));
	PQclear(log);
}

void
page_login(request *r, const char *error)
{
	strbuf *sb = &r->out;

	page_begin(r, "Sign in");
	if (error)
		page_message(r, "error", error);
	if (!g_serve.login)
	{
		page_message(r, "info", "Sign-in is not enabled on this server, and anonymous visitors "
					 "see nothing (start it with --login or --read-only-role ROLE).");
		page_end(r);
		return;
	}
	sb_puts(sb, "<form method=\"post\" action=\"/login\" id=\"login\">");
	csrf_field(r);
	sb_puts(sb, "<p><label>Database role <input name=\"role\" autocomplete=\"username\" required></label></p>"
			"<p><label>Password <input name=\"password\" type=\"password\" "
			"autocomplete=\"current-password\" required></label></p>"
			"<p><button type=\"submit\">Sign in</button></p></form>\n");
	page_end(r);
}
