/*
 * runner/report.c: what the runner tells the database about a task:
 * 'active' before the command starts, heartbeats while it runs, and the
 * final stage with its detail and runtime envs.  Every report goes through
 * the one retry policy of lib/retry.h; a final report the server refuses
 * for another reason than the token is retried once more without detail and
 * runtime envs, so that a value the server will not take cannot keep the
 * task hanging.
 *
 * Locking: none on the client side; update_job_task_status and heartbeat
 * lock the task row.
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
	char *reserved = NULL;
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
	if (envs && (reserved = reserved_env_in(envs)) != NULL)
	{
		/* not reported: a later job (maybe holding secrets) would run with it */
		free(envs);
		envs = NULL;
	}
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
		free(reserved);
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
	else if (reserved)
	{
		char *name = short_text(reserved, 64);

		stage = "failed";
		snprintf(msg, sizeof(msg), "runtime env \"%s\" may not be set by a job (reserved name)", name);
		free(name);
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
	free(reserved);
	set_final(t, stage, msg[0] ? msg : NULL, build_detail(t), envs);
}

/* ------------------------------------------------------------ the reports */


void
activate(runner *r, task *t, double now)
{
	const char *params[2];
	db_error err;
	PGresult *res;
	char errbuf[512];
	const char *stage;

	if (r->force_stop)
	{
		log_info("job task %s: not started (runner stopping)", t->idstr);
		t->state = TS_DONE;
		return;
	}
	if (now < t->retry.next_try || !db_connected(&r->db))
		return;
	params[0] = t->idstr;
	params[1] = t->token;
	res = db_query(&r->db,
				   "SELECT stage FROM pipeline.update_job_task_status($1::bigint, 'active'::pipeline.task_stage, $2::text)",
				   2, params, &err);
	if (!res)
	{
		switch (retry_after(&t->retry, &err, false, now))
		{
			case RETRY_REJECTED:
				log_warn("job task %s: 'active' rejected (%s: %s); dropping it", t->idstr, err.sqlstate, err.message);
				t->state = TS_DONE;
				break;
			case RETRY_GIVE_UP:
				log_error("job task %s: cannot report 'active' (%s: %s); giving up", t->idstr, err.sqlstate, err.message);
				t->state = TS_DONE;
				break;
			case RETRY_LATER:
				if (report_error_kind(&err) == ERR_OTHER)
					log_warn("job task %s: cannot report 'active' (%s: %s); will retry", t->idstr, err.sqlstate, err.message);
				break;
		}
		return;
	}
	stage = PQntuples(res) > 0 ? db_value(res, 0, 0) : NULL;
	if (stage && strcmp(stage, "active") == 0)
	{
		PQclear(res);
		if (!spawn(r, t, errbuf, sizeof(errbuf)))
		{
			log_error("job task %s: %s", t->idstr, errbuf);
			set_final(t, "failed", errbuf, NULL, NULL);
			return;
		}
		log_info("job task %s: started (pid %ld, work directory %s)", t->idstr, (long) t->pid, t->workdir);
		return;
	}
	if (stage && strcmp(stage, "canceling") == 0)
	{
		PQclear(res);
		log_info("job task %s: canceled before it started", t->idstr);
		set_final(t, "canceled", "canceled before start", NULL, NULL);
		return;
	}
	log_warn("job task %s: is %s after reporting 'active'; not running it", t->idstr, stage ? stage : "(nothing)");
	PQclear(res);
	t->state = TS_DONE;
}

void
report_final(runner *r, task *t, double now)
{
	const char *params[6];
	db_error err;
	PGresult *res;

	if (!db_connected(&r->db))
	{
		if (r->force_stop)
		{
			log_warn("job task %s: report '%s' abandoned (runner stopping, database unreachable)",
					 t->idstr, t->final_stage);
			t->state = TS_DONE;
		}
		return;
	}
	if (now < t->retry.next_try)
		return;
	switch (flush_log(r, t, true))
	{
		case FLUSH_OK:
			break;
		case FLUSH_LOST:
			t->state = TS_DONE;
			return;
		case FLUSH_LATER:
			if (r->force_stop)
			{
				log_warn("job task %s: output and report '%s' abandoned (runner stopping)",
						 t->idstr, t->final_stage);
				t->state = TS_DONE;
				return;
			}
			t->retry.next_try = now + backoff_next(&t->retry.bo);
			return;
	}
	params[0] = t->idstr;
	params[1] = t->final_stage;
	params[2] = t->token;
	params[3] = t->final_message;
	params[4] = t->minimal_report ? NULL : t->final_detail;
	params[5] = t->minimal_report ? NULL : t->final_envs;
	res = db_query(&r->db,
				   "SELECT stage FROM pipeline.update_job_task_status($1::bigint, $2::pipeline.task_stage, $3::text, $4::text, $5::jsonb, $6::jsonb)",
				   6, params, &err);
	if (res)
	{
		log_info("job task %s: reported %s%s%s", t->idstr, t->final_stage,
				 t->final_message ? ": " : "", t->final_message ? t->final_message : "");
		PQclear(res);
		t->state = TS_DONE;
		r->next_claim = now;	/* the next task may be waiting */
		return;
	}
	switch (retry_after(&t->retry, &err, r->force_stop, now))
	{
		case RETRY_REJECTED:
			log_warn("job task %s: report '%s' rejected (%s: %s); dropping it", t->idstr, t->final_stage,
					 err.sqlstate, err.message);
			t->state = TS_DONE;
			break;
		case RETRY_GIVE_UP:
			if (report_error_kind(&err) == ERR_TRANSIENT)
				log_warn("job task %s: report '%s' abandoned (runner stopping): %s", t->idstr,
						 t->final_stage, err.message);
			else
				log_error("job task %s: cannot report '%s' (%s: %s); giving up", t->idstr,
						  t->final_stage, err.sqlstate, err.message);
			t->state = TS_DONE;
			break;
		case RETRY_LATER:
			if (report_error_kind(&err) == ERR_OTHER)
			{
				log_warn("job task %s: cannot report '%s' (%s: %s); retrying%s", t->idstr,
						 t->final_stage, err.sqlstate, err.message,
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
