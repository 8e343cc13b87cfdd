/*
 * serve/actions.c: what the dashboard's buttons do (POST only; http.c has
 * checked the CSRF token and the Origin before any of this runs).
 *
 *   approve / deny   pipeline.audit_job_task or confirm_job_task, whichever
 *                    gate the task waits at (deny needs a comment)
 *   play             pipeline.play_job_task (when the engine has it)
 *   cancel           pipeline.cancel_pipeline_task
 *   retry            pipeline.retry_job_task
 *
 * Each runs as the request's role, so PostgreSQL's grants and the gates'
 * auditors/checkers lists decide; a refusal (permission denied, wrong
 * state, ...) is shown on the run page as an escaped message with 403
 * (42501) or 409, never a 500.  Login opens a libpq connection with the
 * role and password from the form (never a password file) and insists that
 * the server really checked a password; logout closes it.
 *
 * Locking: whatever the API functions take (see src/gates.c, src/run.c).
 */
#define _GNU_SOURCE
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

static const char *
who(request *r)
{
	return r->role ? r->role : g_serve.read_only_role ? g_serve.read_only_role : "?";
}

/* run the action's SQL; NULL when done, else the message (caller frees) */
static char *
do_action(req_db *db, const char *action, const char *id, const char *comment,
		  char sqlstate[6])
{
	const char *params[3];
	char *err = NULL;
	PGresult *res = NULL;

	params[0] = id;
	sqlstate[0] = '\0';
	if (strcmp(action, "approve") == 0 || strcmp(action, "deny") == 0)
	{
		PGresult *g = q(db, "SELECT gate FROM pipeline.job_tasks WHERE id = $1::bigint", 1, params,
						&err, sqlstate);
		char *gate = NULL;

		if (!g)
			return err;
		if (PQntuples(g) > 0 && !PQgetisnull(g, 0, 0))
			gate = xstrdup(PQgetvalue(g, 0, 0));
		PQclear(g);
		if (!gate)
		{
			snprintf(sqlstate, 6, "55000");
			return xasprintf("job task %s is not waiting at a gate", id);
		}
		params[1] = strcmp(action, "approve") == 0 ? "true" : "false";
		params[2] = comment && *comment ? comment : NULL;
		res = q(db, strcmp(gate, "audit") == 0
				? "SELECT 1 FROM pipeline.audit_job_task($1::bigint, $2::boolean, $3)"
				: "SELECT 1 FROM pipeline.confirm_job_task($1::bigint, $2::boolean, $3)",
				3, params, &err, sqlstate);
		free(gate);
	}
	else if (strcmp(action, "play") == 0)
		res = q(db, "SELECT 1 FROM pipeline.play_job_task($1::bigint)", 1, params, &err, sqlstate);
	else if (strcmp(action, "cancel") == 0)
	{
		params[1] = comment && *comment ? comment : NULL;
		res = q(db, "SELECT 1 FROM pipeline.cancel_pipeline_task($1::bigint, $2)", 2, params, &err,
				sqlstate);
	}
	else if (strcmp(action, "retry") == 0)
		res = q(db, "SELECT 1 FROM pipeline.retry_job_task($1::bigint)", 1, params, &err, sqlstate);
	else
	{
		snprintf(sqlstate, 6, "22023");
		return xstrdup("unknown action");
	}
	if (!res)
		return err;
	PQclear(res);
	return NULL;
}

void
action_post(request *r, req_db *db)
{
	char *action = req_form(r, "action");
	char *id = req_form(r, "id");
	char *run = req_form(r, "run");
	char *comment = req_form(r, "comment");
	int64_t idv = 0, runv = 0;
	char sqlstate[6];
	char *err;

	if (!action || !id || !parse_positive_id(id, &idv) || (run && *run && !parse_positive_id(run, &runv)))
	{
		r->status = 400;
		page_begin(r, "Bad request");
		page_message(r, "error", "The form is incomplete.");
		page_end(r);
		goto done;
	}
	err = do_action(db, action, id, comment, sqlstate);
	if (!err)
	{
		char *loc = runv > 0 ? xasprintf("/run/%lld", (long long) runv)
			: xasprintf("/task/%lld", (long long) idv);

		log_info("action: %s %s by %s: done", action, id, who(r));
		req_redirect(r, loc);
		free(loc);
		goto done;
	}
	{
		char *msg = xasprintf("%s %s was refused: %s", action, id, err);

		log_info("action: %s %s by %s: refused (%s)", action, id, who(r), sqlstate);
		if (runv > 0)
			page_run(r, db, runv, false, msg);
		else
			page_task(r, db, idv, msg);
		r->status = strcmp(sqlstate, "42501") == 0 ? 403 : 409;
		free(msg);
		free(err);
	}
done:
	free(action);
	free(id);
	free(run);
	free(comment);
}

void
action_login(request *r)
{
	char *role = req_form(r, "role");
	char *password = req_form(r, "password");
	const char *keys[] = {"dbname", "user", "password", "passfile", "application_name", NULL};
	const char *vals[6];
	PGconn *c;

	if (!g_serve.login)
	{
		r->status = 404;
		page_login(r, NULL);
		goto done;
	}
	if (!role || !*role || !password || !*password)
	{
		r->status = 401;
		page_login(r, "Give a role and its password.");
		goto done;
	}
	vals[0] = g_serve.conninfo;
	vals[1] = role;
	vals[2] = password;
	vals[3] = "/dev/null";		/* only the password typed counts */
	vals[4] = "pipelinectl serve";
	vals[5] = NULL;
	c = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(c) != CONNECTION_OK || !PQconnectionUsedPassword(c))
	{
		bool no_password = PQstatus(c) == CONNECTION_OK;
		char *m = xstrdup(PQerrorMessage(c));

		oneline(m);
		PQfinish(c);
		log_warn("session: sign-in as \"%s\" refused: %s", role,
				 no_password ? "the server did not check a password" : m);
		free(m);
		r->status = 401;
		page_login(r, no_password
				   ? "Sign-in refused: the database did not check a password for this role "
				   "(serve --login needs password authentication in pg_hba.conf)."
				   : "Sign-in failed: wrong role or password.");
		goto done;
	}
	session_create(r, role, c);
	req_redirect(r, "/");
done:
	if (password)
		OPENSSL_cleanse(password, strlen(password));
	free(role);
	free(password);
}

void
action_logout(request *r)
{
	session_destroy(r);
	req_redirect(r, g_serve.login ? "/login" : "/");
}
