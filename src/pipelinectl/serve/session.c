/*
 * serve/session.c: who is asking.  Signed cookies, the login sessions and
 * CSRF tokens of the dashboard.
 *
 * Every visitor gets a cookie "pl_session=SID.EXPIRY.MAC": SID 16 random
 * bytes (hex), EXPIRY a Unix time, MAC = HMAC-SHA256(secret, "SID.EXPIRY").
 * The cookie is HttpOnly, SameSite=Strict, and Secure when serving TLS.  A
 * bad MAC or a past expiry gives a fresh SID.  The CSRF token of a SID is
 * HMAC-SHA256(secret, "csrf:SID"): stateless, different per visitor, and
 * checked on every POST (http.c).  The secret is random per process, or
 * derived from --session-secret-file so that cookies survive a restart.
 *
 * A login (actions.c) creates a NEW SID (no session fixation) and a session
 * entry that holds the role and the libpq connection opened with the
 * person's password; the password itself is not kept.  The entry ends on
 * logout, on expiry (session_sweep) or when its connection breaks.
 *
 * Locking: table_lock guards the list and each entry's refs/dead; an
 * entry's own lock serializes the requests that use its connection.
 * session_lookup() takes table_lock, then (after releasing it) the entry's
 * lock; never both at once in the other order.
 */
#define _GNU_SOURCE
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

struct pl_session
{
	char sid[33];
	char *role;
	PGconn *conn;
	double expiry;
	int refs;
	bool dead;
	pthread_mutex_t lock;
	struct pl_session *next;
};

static pl_session *sessions;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

void
random_hex(char *out, size_t bytes)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char buf[32];

	if (RAND_bytes(buf, (int) bytes) != 1)
	{
		fprintf(stderr, "pipelinectl serve: no random bytes\n");
		abort();
	}
	for (size_t i = 0; i < bytes; i++)
	{
		out[2 * i] = hex[buf[i] >> 4];
		out[2 * i + 1] = hex[buf[i] & 15];
	}
	out[2 * bytes] = '\0';
}

void
session_init_secret(const char *file, char *err, size_t errlen, bool *ok)
{
	*ok = true;
	if (!file)
	{
		random_hex(g_serve.secret, 32);
		return;
	}
	{
		size_t len = 0;
		bool trunc = false;
		char *data = read_file_capped(file, 65536, &len, &trunc);

		if (!data || len < 32)
		{
			snprintf(err, errlen, "%s: %s", file,
					 data ? "a session secret needs at least 32 bytes" : "cannot read it");
			free(data);
			*ok = false;
			return;
		}
		hmac_sha256_hex("pipelinectl serve session secret", 32, data, len, g_serve.secret);
		OPENSSL_cleanse(data, len);
		free(data);
	}
}

static void
mac_of(const char *msg, char out[65])
{
	hmac_sha256_hex(g_serve.secret, strlen(g_serve.secret), msg, strlen(msg), out);
}

char *
session_cookie(const char *sid, double expiry)
{
	char *msg = xasprintf("%s.%lld", sid, (long long) expiry);
	char mac[65];
	char *c;

	mac_of(msg, mac);
	c = xasprintf("pl_session=%s.%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s",
				  msg, mac, (long long) (expiry - wall_now()), g_serve.tls ? "; Secure" : "");
	free(msg);
	return c;
}

/* the SID of a well-signed, unexpired cookie value, into sid; false otherwise */
static bool
cookie_valid(const char *v, char sid[33])
{
	const char *dot1, *dot2;
	char *msg;
	char mac[65];
	long long expiry;
	bool ok;

	if (!v || !(dot1 = strchr(v, '.')) || dot1 - v != 32 || !(dot2 = strchr(dot1 + 1, '.')) ||
		strlen(dot2 + 1) != 64)
		return false;
	for (const char *p = v; p < dot1; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	msg = xstrndup(v, (size_t) (dot2 - v));
	mac_of(msg, mac);
	ok = CRYPTO_memcmp(mac, dot2 + 1, 64) == 0;
	free(msg);
	if (!ok)
		return false;
	expiry = strtoll(dot1 + 1, NULL, 10);
	if ((double) expiry < wall_now())
		return false;
	memcpy(sid, v, 32);
	sid[32] = '\0';
	return true;
}

static void
set_csrf(request *r)
{
	char *msg = xasprintf("csrf:%s", r->sid);

	mac_of(msg, r->csrf);
	free(msg);
}

bool
csrf_ok(request *r, const char *token)
{
	return r->csrf[0] && strlen(token) == 64 && CRYPTO_memcmp(token, r->csrf, 64) == 0;
}

void
session_identify(request *r)
{
	const char *v = MHD_lookup_connection_value(r->mhd, MHD_COOKIE_KIND, "pl_session");
	pl_session *s;

	if (!cookie_valid(v, r->sid))
	{
		random_hex(r->sid, 16);
		r->new_cookie = true;
	}
	set_csrf(r);
	if ((s = session_lookup(r->sid)) != NULL)
	{
		r->role = xstrdup(s->role);
		session_release(s);
	}
}

static void
session_free(pl_session *s)
{
	if (s->conn)
		PQfinish(s->conn);
	free(s->role);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* unlink s (table_lock held); freed now or by the last user */
static void
session_kill_locked(pl_session *s)
{
	pl_session **pp = &sessions;

	while (*pp && *pp != s)
		pp = &(*pp)->next;
	if (*pp)
		*pp = s->next;
	s->dead = true;
	if (s->refs == 0)
		session_free(s);
}

void
session_create(request *r, const char *role, PGconn *conn)
{
	pl_session *s = xcalloc(1, sizeof(pl_session));

	random_hex(s->sid, 16);
	s->role = xstrdup(role);
	s->conn = conn;
	s->expiry = wall_now() + g_serve.session_ttl;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_lock(&table_lock);
	s->next = sessions;
	sessions = s;
	pthread_mutex_unlock(&table_lock);

	memcpy(r->sid, s->sid, sizeof(r->sid));
	set_csrf(r);
	free(r->role);
	r->role = xstrdup(role);
	r->new_cookie = false;
	free(r->set_cookie);
	r->set_cookie = session_cookie(s->sid, s->expiry);
	log_info("session: %s signed in", role);
}

void
session_destroy(request *r)
{
	pthread_mutex_lock(&table_lock);
	for (pl_session *s = sessions; s; s = s->next)
		if (strcmp(s->sid, r->sid) == 0)
		{
			log_info("session: %s signed out", s->role);
			session_kill_locked(s);
			break;
		}
	pthread_mutex_unlock(&table_lock);
	free(r->role);
	r->role = NULL;
	r->new_cookie = false;
	free(r->set_cookie);
	r->set_cookie = xasprintf("pl_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0%s",
							  g_serve.tls ? "; Secure" : "");
}

pl_session *
session_lookup(const char *sid)
{
	pl_session *found = NULL;
	double now = wall_now();

	pthread_mutex_lock(&table_lock);
	for (pl_session *s = sessions; s; s = s->next)
		if (strcmp(s->sid, sid) == 0)
		{
			if (s->expiry < now)
				session_kill_locked(s);
			else
			{
				s->refs++;
				found = s;
			}
			break;
		}
	pthread_mutex_unlock(&table_lock);
	if (found)
		pthread_mutex_lock(&found->lock);
	return found;
}

void
session_release(pl_session *s)
{
	bool broken = s->conn && PQstatus(s->conn) != CONNECTION_OK;

	pthread_mutex_unlock(&s->lock);
	pthread_mutex_lock(&table_lock);
	s->refs--;
	if (broken && !s->dead)
	{
		log_warn("session: the connection of %s broke; it must sign in again", s->role);
		session_kill_locked(s);
	}
	else if (s->dead && s->refs == 0)
		session_free(s);
	pthread_mutex_unlock(&table_lock);
}

PGconn *
session_conn(pl_session *s)
{
	return s->conn;
}

void
session_sweep(void)
{
	double now = wall_now();

	pthread_mutex_lock(&table_lock);
	for (pl_session *s = sessions, *next; s; s = next)
	{
		next = s->next;
		if (s->expiry < now)
		{
			log_info("session: %s expired", s->role);
			session_kill_locked(s);
		}
	}
	pthread_mutex_unlock(&table_lock);
}

void
session_close_all(void)
{
	pthread_mutex_lock(&table_lock);
	while (sessions)
		session_kill_locked(sessions);
	pthread_mutex_unlock(&table_lock);
}
