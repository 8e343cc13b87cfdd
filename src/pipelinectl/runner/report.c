/*
 * runner/report.c: what the runner tells the database about a task:
 * 'active' before the command starts, heartbeats while it runs, and the
 * final stage with its detail and runtime envs.  Every report goes through
 * the one retry policy of lib/retry.h; a final report the server refuses
 * for another reason than the token is retried once more without detail and
 * runtime envs, so that a value the server will not take cannot keep the
 * task hanging.  Final reports go out in batches (complete.c); this file
 * readies each one (report_prepare) and handles what the server said to it
 * (report_outcome).  Tasks are claimed with start => true, active already:
 * activate() only starts the command.  Before a final report carrying runtime envs, the runner
 * asks the engine which names it would refuse (runtime_env_name_allowed: the
 * one deny-list, in the engine) and fails the task with a clear message
 * instead of sending them.
 *
 * Locking: none on the client side; update_job_task_status(es) and
 * heartbeat lock the task row.
 */
#define _GNU_SOURCE
#include "runner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* the command is over: collect its results, clean up, decide the report */
void
finalize(task *t)
{
	char msg[256];
	char *envs;
	const char *stage;

	if (t->out_fd >= 0)
	{
		read_output(t);
		if (t->out_fd >= 0)
		{
			log_warn("job task %s: output still open %.0f s after the command ended (a process left its group?); closing it",
					 t->idstr, DRAIN_GRACE);
			close(t->out_fd);
			t->out_fd = -1;
		}
	}
	output_feed(t, "", 0, true);	/* a cut character at the very end */
	envs = read_output_envs(t);
	if (envs)
	{
		char *masked = secrets_mask_envs(&t->secrets, envs);

		free(envs);
		envs = masked;
	}

	workdir_remove(t);

	if (t->stop == STOP_LOST)
	{
		free(envs);
		log_info("job task %s: command stopped; nothing reported (the task is no longer ours)", t->idstr);
		t->state = TS_DONE;
		return;
	}
	if (t->stop == STOP_CANCEL)
	{
		/* no message: the one given with the cancel request stays */
		stage = "canceled";
		msg[0] = '\0';
	}
	else if (t->stop == STOP_TIMEOUT)
	{
		stage = "failed";
		snprintf(msg, sizeof(msg), "timeout after %ld s", t->timeout_s);
	}
	else if (t->stop == STOP_SHUTDOWN)
	{
		stage = "failed";
		snprintf(msg, sizeof(msg), "runner stopped");
	}
	else if (WIFEXITED(t->wstatus) && WEXITSTATUS(t->wstatus) == 0)
	{
		stage = "succeeded";
		msg[0] = '\0';
	}
	else if (WIFEXITED(t->wstatus))
	{
		stage = "failed";
		snprintf(msg, sizeof(msg), "exit code %d", WEXITSTATUS(t->wstatus));
	}
	else if (WIFSIGNALED(t->wstatus))
	{
		stage = "failed";
		snprintf(msg, sizeof(msg), "killed by signal %d", WTERMSIG(t->wstatus));
	}
	else
	{
		stage = "failed";
		snprintf(msg, sizeof(msg), "ended abnormally");
	}
	log_info("job task %s: command ended after %.1f s: %s%s%s%s", t->idstr, t->exit_time - t->started,
			 stage, msg[0] ? " (" : "", msg, msg[0] ? ")" : "");
	set_final(t, stage, msg[0] ? msg : NULL, build_detail(t), envs);
}

/* ------------------------------------------------------------ the reports */


/*
 * Start the command of a claimed task.  claim_job_tasks(..., start => true)
 * made it active already (SPEC §16): there is no 'active' report.  A cancel
 * that comes before the command starts is seen by the next stage check
 * (check_stages, loop.c), which stops the command.
 */
void
activate(runner *r, task *t, double now)
{
	char errbuf[512];

	(void) now;
	if (r->force_stop)
	{
		log_info("job task %s: not started (runner stopping)", t->idstr);
		set_final(t, "failed", "runner stopped", NULL, NULL);	/* it is active: say so */
		return;
	}
	if (!spawn(r, t, errbuf, sizeof(errbuf)))
	{
		log_error("job task %s: %s", t->idstr, errbuf);
		set_final(t, "failed", errbuf, NULL, NULL);
		return;
	}
	log_info("job task %s: started (pid %ld, work directory %s)", t->idstr, (long) t->pid, t->workdir);
}

/* the names of a runtime envs object as a JSON array, or NULL when it has none */
static char *
env_names(const char *envs_json)
{
	json_t *envs = pj_parse(envs_json, strlen(envs_json), NULL, 0);
	json_t *names = json_array();
	const char *key;
	json_t *value;
	char *out = NULL;

	if (json_is_object(envs))
		json_object_foreach(envs, key, value)
			json_array_append_new(names, json_string(key));
	if (json_array_size(names) > 0)
		out = json_dumps(names, JSON_COMPACT);
	json_decref(names);
	json_decref(envs);
	return out;
}

/*
 * Ask the engine which of the runtime env names it would refuse (one query).
 * A reserved name is not reported: a later job (maybe holding secrets) would
 * run with it; the task fails with a message naming it, unless it was stopped
 * for another reason.  True when the final report may go now.
 */
static bool
check_env_names(runner *r, task *t, double now)
{
	const char *params[1];
	db_error err;
	PGresult *res;
	char *names = t->final_envs ? env_names(t->final_envs) : NULL;

	if (!names)
	{
		t->envs_checked = true;
		return true;
	}
	params[0] = names;
	res = db_query(&r->db,
				   "SELECT n FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS e(n, i)"
				   " WHERE NOT pipeline.runtime_env_name_allowed(n) ORDER BY i LIMIT 1",
				   1, params, &err);
	free(names);
	if (!res)
	{
		if (retry_after(&t->retry, &err, r->force_stop, now) == RETRY_LATER &&
			report_error_kind(&err) == ERR_TRANSIENT)
			return false;
		/* cannot be vetted (no grant, an older engine, stopping): never send them unvetted */
		log_warn("job task %s: cannot check runtime env names (%s: %s); reporting without runtime envs",
				 t->idstr, err.sqlstate, err.message);
		free(t->final_envs);
		t->final_envs = NULL;
		t->envs_checked = true;
		return true;
	}
	if (PQntuples(res) > 0)
	{
		char *name = short_text(db_value(res, 0, 0), 64);
		char msg[256];

		snprintf(msg, sizeof(msg), "runtime env \"%s\" may not be set by a job (reserved name)", name);
		free(name);
		log_info("job task %s: %s", t->idstr, msg);
		free(t->final_envs);
		t->final_envs = NULL;
		if (t->stop == STOP_NONE)
		{
			free(t->final_stage);
			free(t->final_message);
			t->final_stage = xstrdup("failed");
			t->final_message = xstrdup(msg);
		}
	}
	PQclear(res);
	t->envs_checked = true;
	return true;
}

/*
 * Is the final report of t ready to go (the completer, complete.c, sends it
 * in the next batch)?  Its output is shipped first, then its runtime env
 * names are vetted; false while either still waits (or t is given up: DONE).
 */
bool
report_prepare(runner *r, task *t, double now)
{
	if (!db_connected(&r->db))
	{
		if (r->force_stop)
		{
			log_warn("job task %s: report '%s' abandoned (runner stopping, database unreachable)",
					 t->idstr, t->final_stage);
			t->state = TS_DONE;
		}
		return false;
	}
	if (now < t->retry.next_try)
		return false;
	switch (flush_log(r, t, true))
	{
		case FLUSH_OK:
			break;
		case FLUSH_LOST:
			t->state = TS_DONE;
			return false;
		case FLUSH_LATER:
			if (r->force_stop)
			{
				log_warn("job task %s: output and report '%s' abandoned (runner stopping)",
						 t->idstr, t->final_stage);
				t->state = TS_DONE;
				return false;
			}
			t->retry.next_try = now + backoff_next(&t->retry.bo);
			return false;
	}
	if (!t->envs_checked && !check_env_names(r, t, now))
		return false;
	return true;
}

/*
 * What the server said to t's final report: err NULL when it was applied.
 * A refusal is handled as it always was for a single report: the token, a
 * complete task or a row gone drop it; a transient error retries it; another
 * refusal retries it without detail and runtime envs, then gives up.
 */
void
report_outcome(runner *r, task *t, const db_error *err, double now)
{
	if (err == NULL)
	{
		log_info("job task %s: reported %s%s%s", t->idstr, t->final_stage,
				 t->final_message ? ": " : "", t->final_message ? t->final_message : "");
		t->state = TS_DONE;
		r->next_claim = now;	/* the next task may be waiting */
		return;
	}
	switch (retry_after(&t->retry, err, r->force_stop, now))
	{
		case RETRY_REJECTED:
			log_warn("job task %s: report '%s' rejected (%s: %s); dropping it", t->idstr, t->final_stage,
					 err->sqlstate, err->message);
			t->state = TS_DONE;
			break;
		case RETRY_GIVE_UP:
			if (report_error_kind(err) == ERR_TRANSIENT)
				log_warn("job task %s: report '%s' abandoned (runner stopping): %s", t->idstr,
						 t->final_stage, err->message);
			else
				log_error("job task %s: cannot report '%s' (%s: %s); giving up", t->idstr,
						  t->final_stage, err->sqlstate, err->message);
			t->state = TS_DONE;
			break;
		case RETRY_LATER:
			if (report_error_kind(err) == ERR_OTHER)
			{
				log_warn("job task %s: cannot report '%s' (%s: %s); retrying%s", t->idstr,
						 t->final_stage, err->sqlstate, err->message,
						 t->minimal_report ? "" : " without detail and runtime envs");
				/* a detail or runtime envs the server refuses must not keep the task hanging */
				t->minimal_report = true;
			}
			break;
	}
}

/* -------------------------------------------------- heartbeats and checks */

void
heartbeat_all(runner *r)
{
	for (task *t = r->tasks; t; t = t->next)
	{
		const char *params[2];
		db_error err;
		PGresult *res;

		if (t->state != TS_RUNNING || t->child_exited || t->stop == STOP_LOST)
			continue;
		if (!db_connected(&r->db))
			return;
		params[0] = t->idstr;
		params[1] = t->token;
		res = db_query(&r->db, "SELECT pipeline.heartbeat($1::bigint, $2::text)", 2, params, &err);
		if (res)
		{
			PQclear(res);
			continue;
		}
		if (report_error_kind(&err) == ERR_REJECTED)
		{
			log_warn("job task %s: heartbeat rejected (%s: %s); the task is no longer ours",
					 t->idstr, err.sqlstate, err.message);
			stop_task(t, STOP_LOST, mono_now());
		}
		else if (!db_error_transient(&err) && !t->heartbeat_error_logged)
		{
			/* said once per task: a missing grant would repeat it every heartbeat */
			log_warn("job task %s: heartbeat failed (%s: %s)", t->idstr, err.sqlstate, err.message);
			t->heartbeat_error_logged = true;
		}
	}
}
