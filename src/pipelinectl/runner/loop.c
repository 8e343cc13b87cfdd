/*
 * runner/loop.c: the runner's event loop.
 *
 * poll() waits on the children's pipes, the database socket (NOTIFY
 * pipeline_events wakes up a claim and a cancel check) and the self-pipe of
 * the signal handlers (SIGCHLD, SIGTERM, SIGINT).  Every wait is bounded by
 * the next timer (claim poll, heartbeat, flush, timeout, kill escalation).
 *
 * Shutdown: the first SIGTERM/SIGINT stops claiming and lets running
 * commands finish and be reported; a second one stops the commands (reported
 * 'failed', "runner stopped") and gives up reports the database does not
 * take; a third one kills everything and exits at once.
 *
 * Locking: none on the client side; claim_job_tasks locks with SKIP LOCKED.
 */
#define _GNU_SOURCE
#include "runner.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------ task memory */

void
task_free(task *t)
{
	if (t->out_fd >= 0)
		close(t->out_fd);
	kill_and_wait(t);
	workdir_remove(t);
	free(t->token);
	free(t->kind);
	free(t->command);
	json_decref(t->params);
	free(t->basedir);
	free(t->workdir);
	free(t->outfile);
	sb_free(&t->logbuf);
	sb_free(&t->tail);
	secrets_free(&t->secrets);
	free(t->final_stage);
	free(t->final_message);
	free(t->final_detail);
	free(t->final_envs);
	free(t);
}

void
set_final(task *t, const char *stage, const char *message, char *detail_owned, char *envs_owned)
{
	free(t->final_stage);
	free(t->final_message);
	free(t->final_detail);
	free(t->final_envs);
	t->final_stage = xstrdup(stage);
	t->final_message = message ? xstrdup(message) : NULL;
	t->final_detail = detail_owned;
	t->final_envs = envs_owned;
	t->envs_checked = false;
	t->ready_at = 0;
	t->state = TS_FINISH;
	retry_reset(&t->retry);
}

/* ---------------------------------------------------------------- output */

/* one query for all running tasks: which are now 'canceling' or gone */
static void
check_stages(runner *r, double now)
{
	strbuf ids;
	int n = 0;
	const char *params[1];
	db_error err;
	PGresult *res;

	sb_init(&ids);
	sb_putc(&ids, '{');
	for (task *t = r->tasks; t; t = t->next)
	{
		if (t->state != TS_RUNNING || t->child_exited || t->stop != STOP_NONE)
			continue;
		sb_printf(&ids, "%s%s", n ? "," : "", t->idstr);
		n++;
	}
	sb_putc(&ids, '}');
	if (n == 0 || !db_connected(&r->db))
	{
		sb_free(&ids);
		return;
	}
	params[0] = sb_str(&ids);
	res = db_query(&r->db,
				   "SELECT id, stage FROM pipeline.job_tasks WHERE id = ANY($1::bigint[])",
				   1, params, &err);
	sb_free(&ids);
	if (!res)
	{
		if (!db_error_transient(&err) &&
			(r->last_check_error_at == 0 || now - r->last_check_error_at > 300))
		{
			log_warn("cannot read the stage of running tasks, so cancel requests are not seen (%s: %s)",
					 err.sqlstate, err.message);
			r->last_check_error_at = now;
		}
		return;
	}
	for (task *t = r->tasks; t; t = t->next)
	{
		const char *stage = NULL;
		bool found = false;

		if (t->state != TS_RUNNING || t->child_exited || t->stop != STOP_NONE)
			continue;
		for (int i = 0; i < PQntuples(res); i++)
		{
			const char *id = db_value(res, i, 0);

			if (id && strcmp(id, t->idstr) == 0)
			{
				stage = db_value(res, i, 1);
				found = true;
				break;
			}
		}
		if (!found)
		{
			log_warn("job task %s: no longer exists; stopping its command", t->idstr);
			stop_task(t, STOP_LOST, now);
		}
		else if (stage && strcmp(stage, "canceling") == 0)
		{
			log_info("job task %s: cancel requested", t->idstr);
			stop_task(t, STOP_CANCEL, now);
		}
		else if (stage && strcmp(stage, "active") != 0 && strcmp(stage, "creating") != 0)
		{
			log_warn("job task %s: is now %s elsewhere; stopping its command", t->idstr, stage);
			stop_task(t, STOP_LOST, now);
		}
	}
	PQclear(res);
}

/* -------------------------------------------------------------- claiming */

static task *
task_from_row(runner *r, PGresult *res, int row)
{
	int c_id = db_col(res, "id"), c_tok = db_col(res, "update_token"),
		c_pt = db_col(res, "pipeline_task_id"), c_job = db_col(res, "job"),
		c_par = db_col(res, "params_env"), c_dry = db_col(res, "dry_run");
	const char *id = db_value(res, row, c_id);
	const char *tok = db_value(res, row, c_tok);
	const char *pt = db_value(res, row, c_pt);
	const char *job = db_value(res, row, c_job);
	const char *par = db_value(res, row, c_par);
	const char *dry = db_value(res, row, c_dry);
	json_t *jobv;
	char err[128];
	task *t;
	int64_t idv;

	if (!id || !parse_positive_id(id, &idv))
	{
		log_error("claimed a row without a valid id; ignored");
		return NULL;
	}
	if (!tok || !*tok)
	{
		log_error("job task %s: claimed without an update token; ignored", id);
		return NULL;
	}
	t = xcalloc(1, sizeof(task));
	t->id = idv;
	snprintf(t->idstr, sizeof(t->idstr), "%lld", (long long) idv);
	t->token = xstrdup(tok);
	t->pipeline_task_id = 0;
	if (pt)
		parse_int64(pt, &t->pipeline_task_id);
	t->dry_run = dry && (dry[0] == 't' || dry[0] == 'T');
	t->out_fd = -1;
	t->lock_fd = -1;
	t->pid = -1;
	t->state = TS_ACTIVATE;
	retry_init(&t->retry, MAX_TRIES);
	sb_init(&t->logbuf);
	sb_init(&t->tail);
	secrets_init(&t->secrets);

	t->params = par ? pj_parse(par, strlen(par), err, sizeof(err)) : NULL;
	if (par && !t->params)
		log_warn("job task %s: params are not valid JSON (%s); running without them", t->idstr, err);
	if (t->params && !json_is_object(t->params))
	{
		json_decref(t->params);
		t->params = NULL;
	}

	jobv = job ? pj_parse(job, strlen(job), err, sizeof(err)) : NULL;
	if (json_is_object(jobv))
	{
		const char *kind = pj_get_str(jobv, "runner");
		const char *cmd = pj_get_str(jobv, "command");
		double to = 0;

		t->kind = xstrdup(kind && *kind ? kind : "shell");
		t->command = cmd ? xstrdup(cmd) : NULL;
		if (pj_get_number(jobv, "timeout", &to) && to > 0)
			t->timeout_s = to > 10 * 365 * 86400.0 ? 10L * 365 * 86400 : (long) to;
	}
	secrets_from_job(&t->secrets, jobv, t->params, t->token);
	json_decref(jobv);

	if (t->dry_run)
	{
		log_info("job task %s (pipeline task %lld): dry run, reporting success", t->idstr,
				 (long long) t->pipeline_task_id);
		set_final(t, "succeeded", "dry run", NULL, NULL);
	}
	else if (!t->kind)
	{
		log_warn("job task %s: job definition missing or not a JSON object", t->idstr);
		set_final(t, "failed", "invalid job definition", NULL, NULL);
	}
	else if (strcmp(t->kind, "shell") != 0)
	{
		char *k = short_text(t->kind, 64);
		char *m = xasprintf("unsupported runner kind \"%s\"", k);

		log_warn("job task %s: %s", t->idstr, m);
		set_final(t, "failed", m, NULL, NULL);
		free(m);
		free(k);
	}
	else if (!t->command || !*t->command)
	{
		log_warn("job task %s: job has no command", t->idstr);
		set_final(t, "failed", "job has no command", NULL, NULL);
	}
	else
	{
		char *masked = secrets_mask_string(&t->secrets, t->command);
		char *c = short_text(masked, 120);

		free(masked);

		if (t->timeout_s > 0)
			log_info("job task %s (pipeline task %lld): claimed (timeout %ld s): %s", t->idstr,
					 (long long) t->pipeline_task_id, t->timeout_s, c);
		else
			log_info("job task %s (pipeline task %lld): claimed: %s", t->idstr,
					 (long long) t->pipeline_task_id, c);
		free(c);
	}
	(void) r;
	return t;
}

static void
claim(runner *r, double now)
{
	int free_slots = r->d.concurrency - r->ntasks;
	char maxbuf[16];
	const char *params[3];
	db_error err;
	PGresult *res;
	int n;

	r->last_claim = now;
	r->next_claim = now + r->d.poll_interval;
	if (free_slots <= 0)
		return;
	snprintf(maxbuf, sizeof(maxbuf), "%d", free_slots);
	params[0] = r->d.name;
	params[1] = maxbuf;
	params[2] = r->labels_json;
	/*
	 * Up to the free slots at once, started on claim (SPEC §16: active at
	 * once, one event, no 'active' report).
	 * params_env: each param's value as the text its variable gets, made by
	 * the server (numbers exactly as jsonb writes them); objects and arrays
	 * stay JSON, nulls are left out.
	 */
	res = db_query(&r->db,
				   "SELECT c.*, (SELECT jsonb_object_agg(e.key, CASE WHEN jsonb_typeof(e.value) IN ('object', 'array')"
				   " THEN e.value ELSE to_jsonb(e.value #>> '{}') END)"
				   " FROM jsonb_each(CASE jsonb_typeof(c.params) WHEN 'object' THEN c.params END) e"
				   " WHERE jsonb_typeof(e.value) <> 'null') AS params_env"
				   " FROM pipeline.claim_job_tasks($1::text, $2::int, $3::jsonb, start => true) c",
				   3, params, &err);
	if (!res)
	{
		if (!db_error_transient(&err))
		{
			/* a broken installation or missing grant: say it, but not every 2 s */
			if (strncmp(err.message, r->last_claim_error, 200) != 0 || now - r->last_claim_error_at > 300)
			{
				log_error("cannot claim job tasks (%s: %s)", err.sqlstate, err.message);
				snprintf(r->last_claim_error, sizeof(r->last_claim_error), "%.200s", err.message);
				r->last_claim_error_at = now;
			}
		}
		return;
	}
	r->last_claim_error[0] = '\0';
	n = PQntuples(res);
	for (int i = 0; i < n; i++)
	{
		task *t = task_from_row(r, res, i);

		if (!t)
			continue;
		t->next = r->tasks;
		r->tasks = t;
		r->ntasks++;
	}
	PQclear(res);
	r->idle_after_claim = (n == 0 && r->ntasks == 0);
}

/* ------------------------------------------------------------------ loop */

static void
step_tasks(runner *r, double now)
{
	for (task *t = r->tasks; t; t = t->next)
	{
		switch (t->state)
		{
			case TS_ACTIVATE:
				activate(r, t, now);
				break;
			case TS_RUNNING:
				if (!t->child_exited && t->stop == STOP_NONE && t->timeout_s > 0 &&
					now - t->started >= (double) t->timeout_s)
				{
					log_warn("job task %s: timeout after %ld s", t->idstr, t->timeout_s);
					stop_task(t, STOP_TIMEOUT, now);
				}
				if (!t->child_exited && t->kill_at > 0 && now >= t->kill_at && !t->killed_hard)
					kill_hard(t);
				if (t->stop == STOP_LOST)
					sb_reset(&t->logbuf);
				else if (t->logbuf.len > 0 || t->log_dropped > 0)
				{
					if ((t->logbuf.len >= LOG_FLUSH_BYTES || now - t->log_first >= LOG_FLUSH_SECS) &&
						db_connected(&r->db) && flush_log(r, t, false) == FLUSH_LOST)
						stop_task(t, STOP_LOST, now);
				}
				if (t->child_exited && (t->out_fd < 0 || now - t->exit_time >= DRAIN_GRACE))
					finalize(t);
				break;
			case TS_FINISH:
				break;			/* complete_step() below */
			case TS_DONE:
				break;
		}
	}
	complete_step(r, now);		/* the final reports, in batches */
	/* unlink the finished ones */
	for (task **pp = &r->tasks; *pp;)
	{
		task *t = *pp;

		if (t->state == TS_DONE)
		{
			*pp = t->next;
			r->ntasks--;
			task_free(t);
			r->next_claim = now;
			if (r->ntasks == 0)
				r->idle_after_claim = false;
		}
		else
			pp = &t->next;
	}
}

static double
next_deadline(runner *r, double now)
{
	double d = now + 1.0;		/* at least once a second */

	bool up = db_connected(&r->db);

	/*
	 * Only timers that can fire now: what needs the database waits for the
	 * reconnect (db.next_attempt), or the loop would spin.
	 */
#define EARLIER(x) do { if ((x) < d) d = (x); } while (0)
	if (!up)
		EARLIER(r->db.next_attempt);
	if (up && !r->stopping && r->ntasks < r->d.concurrency)
		EARLIER(r->next_claim);
	if (up && r->stage_check_wanted)
		EARLIER(r->next_stage_check);
	if (up && r->ntasks > 0)
		EARLIER(r->next_heartbeat);
	for (task *t = r->tasks; t; t = t->next)
	{
		if (t->state == TS_ACTIVATE || (t->state == TS_FINISH && t->ready_at == 0))
		{
			if (up)
				EARLIER(t->retry.next_try);
		}
		else if (t->state == TS_RUNNING)
		{
			if (up && t->logbuf.len > 0)
				EARLIER(t->log_first + LOG_FLUSH_SECS);
			if (t->timeout_s > 0 && !t->child_exited && t->stop == STOP_NONE)
				EARLIER(t->started + (double) t->timeout_s);
			if (t->kill_at > 0 && !t->child_exited && !t->killed_hard)
				EARLIER(t->kill_at);
			if (t->child_exited)
				EARLIER(t->exit_time + DRAIN_GRACE);
		}
	}
	if (up && complete_deadline(r) > 0)
		EARLIER(complete_deadline(r));	/* ready reports waiting for company */
#undef EARLIER
	return d;
}

static void
handle_signals(runner *r, double now)
{
	int terms = g_sig.term_count;

	if (terms == r->handled_terms)
		return;
	r->handled_terms = terms;
	if (terms == 1)
	{
		r->stopping = true;
		log_info("signal received: claiming nothing more; waiting for %d task%s (send it again to stop them)",
				 r->ntasks, r->ntasks == 1 ? "" : "s");
	}
	else if (terms == 2)
	{
		r->stopping = true;
		r->force_stop = true;
		log_warn("second signal: stopping the running commands (a third one kills them at once)");
		for (task *t = r->tasks; t; t = t->next)
			stop_task(t, STOP_SHUTDOWN, now);
	}
}

static bool
commands_running(runner *r)
{
	for (task *t = r->tasks; t; t = t->next)
		if (t->state == TS_RUNNING)
			return true;
	return false;
}

int
runner_run(runner *r)
{
	struct pollfd *fds = NULL;
	size_t fds_cap = 0;
	int rc = 0;

	r->next_claim = 0;
	r->next_heartbeat = mono_now() + r->heartbeat;
	for (;;)
	{
		double now = mono_now();
		int nfds = 0;
		int timeout;

		signals_drain();
		g_sig.chld = 0;
		if (g_sig.term_count >= 3)
		{
			log_warn("third signal: killing %d running command%s and exiting", r->ntasks,
					 r->ntasks == 1 ? "" : "s");
			kill_all_now(r);
			rc = 1;
			break;
		}
		handle_signals(r, now);
		reap_children(r, now);

		if (db_ensure(&r->db, now) && !r->d.setup_checked)
		{
			static const char *const needs[] = {"pipeline.claim_job_tasks(text,int,jsonb,boolean)",
				"pipeline.update_job_task_statuses(jsonb)",
				"pipeline.runtime_env_name_allowed(text)", NULL};
			char msg[1024];

			switch (db_check_setup(&r->db, needs, msg, sizeof(msg)))
			{
				case SETUP_OK:
					r->d.setup_checked = true;
					break;
				case SETUP_RETRY:
					break;
				case SETUP_BAD:
					log_error("%s", msg);
					rc = EXIT_USAGE;
					break;
			}
			if (rc == EXIT_USAGE)
				break;
		}
		if (r->db.fatal)
		{
			log_error("%s", r->db.fatal_msg);
			rc = EXIT_USAGE;
			break;
		}
		if (db_connected(&r->db) && r->d.setup_checked)
		{
			if (r->db.notifications != r->seen_notifications)
			{
				r->seen_notifications = r->db.notifications;
				/* coalesce bursts of events */
				double soon = r->last_claim + 0.2;

				if (soon < r->next_claim)
					r->next_claim = soon < now ? now : soon;
				r->stage_check_wanted = true;
			}
			if (r->stage_check_wanted && now >= r->next_stage_check)
			{
				r->stage_check_wanted = false;
				r->next_stage_check = now + 1.0;
				check_stages(r, now);
			}
			if (now >= r->next_heartbeat)
			{
				r->next_heartbeat = now + r->heartbeat;
				heartbeat_all(r);
				check_stages(r, now);
			}
		}
		step_tasks(r, now);

		now = mono_now();
		if (!r->stopping && db_connected(&r->db) && r->d.setup_checked && now >= r->next_claim &&
			r->ntasks < r->d.concurrency)
		{
			claim(r, now);
			step_tasks(r, now);	/* start what was claimed at once */
		}

		if (r->stopping && r->ntasks == 0)
		{
			if (!db_connected(&r->db))
			{
				/* not "healthy": a supervisor must see that it never got to work */
				log_error("stopped without a database connection");
				rc = EXIT_USAGE;
			}
			else
				log_info("stopped");
			break;
		}
		if (r->d.exit_when_idle && db_down_for(&r->db, now) >= r->d.retry_for && !commands_running(r))
		{
			log_error("no database connection for %.0f s; giving up (--exit-when-idle, --retry-for %.0f)",
					  db_down_for(&r->db, now), r->d.retry_for);
			rc = EXIT_USAGE;
			break;
		}
		if (r->d.exit_when_idle && r->ntasks == 0 && r->idle_after_claim)
		{
			log_info("nothing to run; exiting (--exit-when-idle)");
			break;
		}

		/* wait */
		if (fds_cap < (size_t) r->ntasks + 2)
		{
			fds_cap = (size_t) r->ntasks + 2;
			fds = xrealloc(fds, fds_cap * sizeof(struct pollfd));
		}
		fds[nfds].fd = signals_fd();
		fds[nfds].events = POLLIN;
		nfds++;
		if (db_socket(&r->db) >= 0)
		{
			fds[nfds].fd = db_socket(&r->db);
			fds[nfds].events = POLLIN;
			nfds++;
		}
		for (task *t = r->tasks; t; t = t->next)
		{
			if (t->state == TS_RUNNING && t->out_fd >= 0)
			{
				fds[nfds].fd = t->out_fd;
				fds[nfds].events = POLLIN;
				nfds++;
			}
		}
		now = mono_now();
		timeout = ms_until(next_deadline(r, now), now);
		if (poll(fds, (nfds_t) nfds, timeout) < 0 && errno != EINTR)
		{
			log_error("poll: %s", strerror(errno));
			usleep(100000);
		}
		if (db_socket(&r->db) >= 0)
			db_consume(&r->db);
		for (task *t = r->tasks; t; t = t->next)
			if (t->state == TS_RUNNING && t->out_fd >= 0)
				read_output(t);
	}
	free(fds);
	return rc;
}


void
runner_free(runner *r)
{
	while (r->tasks)
	{
		task *t = r->tasks;

		r->tasks = t->next;
		task_free(t);
	}
	db_close(&r->db);
	free(r->d.name);
	free(r->labels_json);
	free(r->work_root);
	job_user_free(&r->ju);
}
