/*
 * serve/dbpool.c: the database connections of the dashboard's requests.
 *
 * A small pool of connections as serve's own role (-d) serves /metrics,
 * /healthz and anonymous requests.  An anonymous request runs
 * "SET ROLE <read-only role>" on its pooled connection before its queries
 * and "RESET ROLE" after, so what it sees is what that role may read; serve's
 * own role must be a member of the read-only role.  The queries are ours
 * (parameterized), never text from the request, so the SET ROLE cannot be
 * undone by a visitor.  A request of a signed-in person uses that session's
 * own connection (session.c), which was opened with their role and password.
 * A pooled connection that broke is replaced on its next use.
 *
 * Locking: pool_lock guards the slots; a borrowed connection belongs to one
 * thread until it is given back.  A request waits at most 10 s for a slot.
 */
#define _GNU_SOURCE
#include "serve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL_MAX 8

static struct
{
	PGconn *conn;
	bool busy;
} slots[POOL_MAX];
static int pool_size = 4;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;

void
dbpool_init(int size)
{
	pool_size = size < 1 ? 1 : size > POOL_MAX ? POOL_MAX : size;
}

static PGconn *
connect_own(void)
{
	const char *keys[] = {"dbname", "application_name", NULL};
	const char *vals[] = {g_serve.conninfo, "pipelinectl serve", NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);

	if (PQstatus(c) != CONNECTION_OK)
	{
		char *m = xstrdup(PQerrorMessage(c));

		oneline(m);
		log_warn("database: cannot connect: %s", m);
		free(m);
		PQfinish(c);
		return NULL;
	}
	return c;
}

PGconn *
dbpool_get(void)
{
	struct timespec deadline;
	int slot = -1;
	PGconn *c;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	pthread_mutex_lock(&pool_lock);
	while (slot < 0)
	{
		for (int i = 0; i < pool_size && slot < 0; i++)
			if (!slots[i].busy)
				slot = i;
		if (slot >= 0)
			break;
		if (pthread_cond_timedwait(&pool_cond, &pool_lock, &deadline) == ETIMEDOUT)
		{
			pthread_mutex_unlock(&pool_lock);
			log_warn("database: every pooled connection is busy");
			return NULL;
		}
	}
	slots[slot].busy = true;
	c = slots[slot].conn;
	slots[slot].conn = NULL;
	pthread_mutex_unlock(&pool_lock);

	if (c && PQstatus(c) != CONNECTION_OK)
	{
		PQfinish(c);
		c = NULL;
	}
	if (!c)
		c = connect_own();
	if (!c)
	{
		pthread_mutex_lock(&pool_lock);
		slots[slot].busy = false;
		pthread_cond_signal(&pool_cond);
		pthread_mutex_unlock(&pool_lock);
		return NULL;
	}
	pthread_mutex_lock(&pool_lock);
	slots[slot].conn = c;
	pthread_mutex_unlock(&pool_lock);
	return c;
}

void
dbpool_put(PGconn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&pool_lock);
	for (int i = 0; i < pool_size; i++)
		if (slots[i].conn == c && slots[i].busy)
		{
			slots[i].busy = false;
			if (PQstatus(c) != CONNECTION_OK || PQtransactionStatus(c) != PQTRANS_IDLE)
			{
				PQfinish(c);
				slots[i].conn = NULL;
			}
			break;
		}
	pthread_cond_signal(&pool_cond);
	pthread_mutex_unlock(&pool_lock);
}

void
dbpool_close(void)
{
	pthread_mutex_lock(&pool_lock);
	for (int i = 0; i < POOL_MAX; i++)
		if (slots[i].conn)
		{
			PQfinish(slots[i].conn);
			slots[i].conn = NULL;
		}
	pthread_mutex_unlock(&pool_lock);
}

PGresult *
qc(PGconn *c, const char *sql, int n, const char *const *params, char **errmsg,
   char sqlstate[6])
{
	PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	const char *m, *code;

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
	{
		if (sqlstate)
			sqlstate[0] = '\0';
		return res;
	}
	m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (sqlstate)
	{
		snprintf(sqlstate, 6, "%s", code ? code : "");
	}
	if (errmsg)
	{
		*errmsg = xstrdup(m ? m : PQerrorMessage(c));
		oneline(*errmsg);
	}
	PQclear(res);
	return NULL;
}

PGresult *
q(req_db *db, const char *sql, int n, const char *const *params, char **errmsg,
  char sqlstate[6])
{
	return qc(db->conn, sql, n, params, errmsg, sqlstate);
}

bool
req_db_acquire(request *r, req_db *db)
{
	memset(db, 0, sizeof(*db));
	if (r->role)
	{
		pl_session *s = session_lookup(r->sid);

		if (s && session_conn(s) && PQstatus(session_conn(s)) == CONNECTION_OK)
		{
			db->conn = session_conn(s);
			db->session = s;
			return true;
		}
		if (s)
			session_release(s);
		free(r->role);
		r->role = NULL;
	}
	if (g_serve.read_only_role)
	{
		PGconn *c = dbpool_get();
		char *ident, *sql, *err = NULL;
		PGresult *res;

		if (!c)
		{
			r->status = 503;
			return false;
		}
		ident = PQescapeIdentifier(c, g_serve.read_only_role, strlen(g_serve.read_only_role));
		sql = xasprintf("SET ROLE %s", ident ? ident : "\"\"");
		PQfreemem(ident);
		res = qc(c, sql, 0, NULL, &err, NULL);
		free(sql);
		if (!res)
		{
			log_warn("database: SET ROLE %s failed: %s", g_serve.read_only_role, err);
			free(err);
			dbpool_put(c);
			r->status = 503;
			return false;
		}
		PQclear(res);
		db->conn = c;
		db->pooled = true;
		return true;
	}
	return false;
}

void
req_db_release(req_db *db)
{
	if (db->pooled && db->conn)
	{
		PGresult *res = PQexec(db->conn, "RESET ROLE");

		if (PQresultStatus(res) != PGRES_COMMAND_OK)
		{
			/* never give back a connection that may still carry the role */
			PQclear(res);
			PQfinish(db->conn);
			pthread_mutex_lock(&pool_lock);
			for (int i = 0; i < pool_size; i++)
				if (slots[i].conn == db->conn)
				{
					slots[i].conn = NULL;
					slots[i].busy = false;
				}
			pthread_cond_signal(&pool_cond);
			pthread_mutex_unlock(&pool_lock);
		}
		else
		{
			PQclear(res);
			dbpool_put(db->conn);
		}
	}
	else if (db->session)
		session_release(db->session);
	memset(db, 0, sizeof(*db));
}
