/*
 * serve/serve.h: the insides of "pipelinectl serve", the web dashboard.
 *
 *   http.c     libmicrohttpd glue: one thread per connection, request
 *              bodies, cookies, the route table, responses
 *   html.c     HTML output: the escaping helper used for EVERY value, the
 *              page frame (inline stylesheet, no external assets)
 *   pages.c    runs list, run page, task page with its log, login page
 *   svg.c      a run's graph as inline SVG (stages as columns)
 *   actions.c  POST: approve, deny, play, cancel, retry, login, logout
 *   session.c  signed cookies (HMAC-SHA256), the login session table, CSRF
 *   dbpool.c   database connections: a pool for anonymous (read-only role)
 *              requests, the session's own connection after a login
 *   events.c   the one LISTEN pipeline_events connection, the event ring and
 *              the Server-Sent Event streams
 *   metrics.c  /metrics (Prometheus text format) and /healthz
 *
 * Identity: every page query runs as a database role.  Anonymous requests
 * run as --read-only-role (SET ROLE on a pooled connection of serve's own
 * role, RESET ROLE after); without it they get the login page (401) and
 * nothing else.  After --login, the session's own connection (opened with
 * the person's role and password) runs its queries.  Only the masking views
 * (pipeline.pipeline_tasks, pipeline.job_tasks, pipeline.stats) and the API
 * functions are read: never the tables that hold params, tokens or hooks.
 *
 * Locking (threads): libmicrohttpd runs each HTTP connection in a thread of
 * its own.  g_serve is written before the daemon starts and read-only after.
 * The pool (dbpool.c), the session table (session.c) and the event ring
 * (events.c) each have one mutex; a session's connection is used under the
 * session's own mutex, one request at a time.  No thread holds two of these
 * mutexes at once, except a session lookup that takes the table mutex and
 * then, after releasing it, the session's.
 */
#ifndef PCTL_SERVE_H
#define PCTL_SERVE_H

#include "../lib/pctl.h"

#include <pthread.h>
#include <libpq-fe.h>
#include <microhttpd.h>

/* -------------------------------------------------------------- settings */
typedef struct serve_config
{
	const char *conninfo;		/* serve's own connection (-d) */
	const char *read_only_role; /* anonymous requests run as this role, or NULL */
	bool login;					/* --login: the login form is offered */
	bool tls;					/* --tls-cert/--tls-key given */
	double session_ttl;			/* seconds a login (or CSRF cookie) lasts */
	char secret[65];			/* HMAC key of cookies and CSRF tokens (hex) */
	volatile int stopping;		/* set at shutdown: SSE streams end */
} serve_config;

extern serve_config g_serve;

/* ------------------------------------------------------------- request */
typedef struct pl_session pl_session;

/* a connection borrowed for one request (dbpool.c) */
typedef struct req_db
{
	PGconn *conn;				/* NULL: no identity (anonymous, no read-only role) */
	pl_session *session;		/* set when it is a login session's connection */
	bool pooled;				/* from the pool: RESET ROLE and give back */
} req_db;

typedef struct request
{
	struct MHD_Connection *mhd;
	const char *method;
	const char *url;			/* path only */
	strbuf body;				/* POST body (form) */
	bool body_too_large;
	/* identity, set by http.c before a route runs */
	char sid[33];				/* cookie session id (hex), "" when none */
	bool new_cookie;			/* sid was just made: Set-Cookie it */
	char csrf[65];				/* the CSRF token of sid */
	char *role;					/* logged-in role, or NULL */
	/* the response being built */
	int status;
	strbuf out;
	const char *content_type;
	char *location;				/* redirect target */
	char *set_cookie;			/* an extra Set-Cookie (login, logout) */
	struct MHD_Response *stream;	/* a streaming response (SSE) instead of out */
	char nonce[33];				/* the CSP nonce of this page's inline script */
} request;

/* http.c */
const char *req_arg(request *r, const char *name);	/* query string argument */
const char *req_header(request *r, const char *name);
/* a field of the url-encoded POST body, decoded; caller frees; NULL when absent */
char *req_form(request *r, const char *name);
void req_redirect(request *r, const char *location);
int serve_http_start(const char *listen, const char *cert, const char *key,
					 void **daemon_out);
void serve_http_stop(void *daemon);

/* html.c */
void html_esc(strbuf *sb, const char *s);	/* & < > " ' escaped; NULL as "" */
void url_esc(strbuf *sb, const char *s);	/* for a query string value */
void page_begin(request *r, const char *title);
void page_end(request *r);
void page_message(request *r, const char *kind, const char *text);	/* escaped */
void csrf_field(request *r);
const char *stage_colour(const char *stage);

/* pages.c */
void page_runs(request *r, req_db *db);
void page_run(request *r, req_db *db, int64_t id, bool fragment, const char *error);
void page_task(request *r, req_db *db, int64_t id, const char *error);
void page_task_log(request *r, req_db *db, int64_t id);
void page_login(request *r, const char *error);

/* svg.c */
void svg_graph(strbuf *sb, const PGresult *tasks);

/* actions.c */
void action_post(request *r, req_db *db);
void action_login(request *r);
void action_logout(request *r);

/* session.c */
void random_hex(char *out, size_t bytes);	/* 2*bytes hex digits from RAND_bytes, NUL */
void session_init_secret(const char *file, char *err, size_t errlen, bool *ok);
/* reads the cookie: sets r->sid (making a new one when missing or bad), r->csrf, r->role */
void session_identify(request *r);
bool csrf_ok(request *r, const char *token);
/* a new login session for role with its connection (taken over) */
void session_create(request *r, const char *role, PGconn *conn);
void session_destroy(request *r);
pl_session *session_lookup(const char *sid);	/* locked (session_release) or NULL */
void session_release(pl_session *s);
PGconn *session_conn(pl_session *s);
void session_sweep(void);
void session_close_all(void);
char *session_cookie(const char *sid, double expiry);

/* dbpool.c */
void dbpool_init(int size);
void dbpool_close(void);
PGconn *dbpool_get(void);		/* serve's own role; NULL when the database is down */
void dbpool_put(PGconn *c);
/* the connection of this request's identity; false: none (anonymous) */
bool req_db_acquire(request *r, req_db *db);
void req_db_release(req_db *db);
/* a parameterized query; NULL with the one-line message (and SQLSTATE) on error */
PGresult *q(req_db *db, const char *sql, int n, const char *const *params,
			char **errmsg, char sqlstate[6]);
/* the same on a bare connection */
PGresult *qc(PGconn *c, const char *sql, int n, const char *const *params,
			 char **errmsg, char sqlstate[6]);

/* events.c */
int events_start(void);
void events_stop(void);
void sse_run(request *r, int64_t run_id);	/* hands a streaming response to http.c */
void sse_log(request *r, req_db *db, int64_t task_id, int64_t after);

/* metrics.c */
void page_metrics(request *r);
void page_healthz(request *r);

#endif
