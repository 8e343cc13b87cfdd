/*
 * cmd_triggerd.c: "pipelinectl triggerd": receives git webhooks over HTTP and
 * starts the pipelines of the matching triggers (SPEC §15, README "Triggers").
 *
 *   POST /hooks/github    X-Hub-Signature-256: sha256=<hex>   X-GitHub-Event
 *   POST /hooks/gitlab    X-Gitlab-Token: <token>             X-Gitlab-Event
 *   POST /hooks/gitea     X-Gitea-Signature: <hex>            X-Gitea-Event
 *   POST /hooks/generic   X-Pipeline-Signature: sha256=<hex>  X-Pipeline-Event
 *   GET  /healthz         200 while the database is reachable, else 503
 *
 * The HTTP server is libmicrohttpd, driven from our own select() loop (no
 * threads).  A body is read up to --max-body bytes (413 beyond, also when
 * Content-Length says so up front) and handed as it arrived, with the
 * signature header, to pipeline.fire_signed_trigger(): the secrets never
 * leave the database, which checks the HMAC (or GitLab's token) in constant
 * time.  Answers: 202 {"runs": [ids]}; 401 bad or missing signature (nothing
 * started, nothing recorded); 400 body not a JSON object; 404, 405, 413, 415;
 * 503 while the database is away; 500 otherwise.  Signatures, tokens and
 * bodies are never logged.
 *
 * Locking: none on the client side; fire_signed_trigger's is described in
 * src/trigger_fire.c.  Single-threaded: requests are answered one at a time.
 */
#define _GNU_SOURCE
#include "commands.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>

#define DEFAULT_LISTEN "127.0.0.1:8090"
#define DEFAULT_MAX_BODY (1024 * 1024)

typedef struct provider_headers
{
	const char *name;			/* path after /hooks/ */
	const char *signature;		/* header carrying the signature or token */
	const char *event;			/* header carrying the event type */
} provider_headers;

static const provider_headers providers[] = {
	{"github", "X-Hub-Signature-256", "X-GitHub-Event"},
	{"gitlab", "X-Gitlab-Token", "X-Gitlab-Event"},
	{"gitea", "X-Gitea-Signature", "X-Gitea-Event"},
	{"generic", "X-Pipeline-Signature", "X-Pipeline-Event"},
};

typedef struct triggerd
{
	db_conn db;
	size_t max_body;
	bool setup_checked;
	unsigned long requests;
} triggerd;

/* one request being read */
typedef struct request
{
	strbuf body;
	bool too_big;
} request;

/* ------------------------------------------------------------------ answers */

static enum MHD_Result
answer(struct MHD_Connection *c, unsigned status, const char *json)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(json), (void *) json,
															 MHD_RESPMEM_MUST_COPY);
	enum MHD_Result rc;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result
answer_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	strbuf sb;
	enum MHD_Result rc;

	sb_init(&sb);
	sb_puts(&sb, "{\"error\": ");
	json_write_cstr(&sb, msg);
	sb_puts(&sb, "}\n");
	rc = answer(c, status, sb_str(&sb));
	sb_free(&sb);
	return rc;
}

/* ------------------------------------------------------------------ the database */

static void
ensure_db(triggerd *t)
{
	static const char *const needs[] = {"pipeline.fire_signed_trigger(text,bytea,text,text)", NULL};
	char msg[1024];

	if (!db_ensure(&t->db, mono_now()) || t->setup_checked)
		return;
	if (db_check_setup(&t->db, needs, msg, sizeof(msg)) == SETUP_BAD)
		log_error("%s", msg);	/* answered with 500 until fixed; keep serving /healthz */
	else
		t->setup_checked = true;
}

static unsigned
status_for(const db_error *err)
{
	if (strcmp(err->sqlstate, "28000") == 0)
		return MHD_HTTP_UNAUTHORIZED;
	if (strncmp(err->sqlstate, "22", 2) == 0 || strncmp(err->sqlstate, "54", 2) == 0)
		return MHD_HTTP_BAD_REQUEST;
	if (err->conn_lost || db_error_transient(err))
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

static enum MHD_Result
fire(triggerd *t, struct MHD_Connection *c, const provider_headers *p, request *rq)
{
	static const char hex[] = "0123456789abcdef";
	const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, p->signature);
	const char *event = MHD_lookup_connection_value(c, MHD_HEADER_KIND, p->event);
	const char *params[4];
	strbuf body, out;
	db_error err;
	PGresult *res;
	enum MHD_Result rc;

	if (sig == NULL || sig[0] == '\0')
	{
		log_info("POST /hooks/%s: 401 (no %s header)", p->name, p->signature);
		return answer_error(c, MHD_HTTP_UNAUTHORIZED, "missing signature header");
	}
	ensure_db(t);
	if (!db_connected(&t->db))
	{
		log_warn("POST /hooks/%s: 503 (no database connection)", p->name);
		return answer_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "the database is not reachable");
	}

	/* the body as bytea input text: \x and two hex digits a byte */
	sb_init(&body);
	sb_reserve(&body, 2 + 2 * rq->body.len);
	sb_puts(&body, "\\x");
	for (size_t i = 0; i < rq->body.len; i++)
	{
		unsigned char b = (unsigned char) rq->body.data[i];

		sb_putc(&body, hex[b >> 4]);
		sb_putc(&body, hex[b & 15]);
	}
	params[0] = p->name;
	params[1] = sb_str(&body);
	params[2] = sig;
	params[3] = (event && event[0]) ? event : NULL;
	res = db_query(&t->db, "SELECT r FROM pipeline.fire_signed_trigger($1, $2::bytea, $3, $4) r",
				   4, params, &err);
	sb_free(&body);
	if (res == NULL)
	{
		unsigned status = status_for(&err);

		if (status == MHD_HTTP_INTERNAL_SERVER_ERROR || status == MHD_HTTP_SERVICE_UNAVAILABLE)
			log_error("POST /hooks/%s: %u: %s", p->name, status, err.message);
		else
			log_info("POST /hooks/%s: %u: %s", p->name, status, err.message);
		return answer_error(c, status, status == MHD_HTTP_INTERNAL_SERVER_ERROR
							? "internal error (see the triggerd log)" : err.message);
	}
	sb_init(&out);
	sb_puts(&out, "{\"runs\": [");
	for (int i = 0; i < PQntuples(res); i++)
		sb_printf(&out, "%s%s", i ? ", " : "", PQgetvalue(res, i, 0));
	sb_puts(&out, "]}\n");
	log_info("POST /hooks/%s (%s): 202, %d run%s started", p->name, params[3] ? params[3] : "-",
			 PQntuples(res), PQntuples(res) == 1 ? "" : "s");
	PQclear(res);
	rc = answer(c, MHD_HTTP_ACCEPTED, sb_str(&out));
	sb_free(&out);
	return rc;
}

/* ------------------------------------------------------------------ requests */

static bool
json_content_type(struct MHD_Connection *c)
{
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	size_t n = strlen("application/json");

	return ct == NULL || (strncasecmp(ct, "application/json", n) == 0 &&
						  (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' '));
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
		   const char *version, const char *upload, size_t *upload_size, void **state)
{
	triggerd *t = cls;
	request *rq = *state;
	const provider_headers *p = NULL;

	if (strcmp(url, "/healthz") == 0)
	{
		if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
			return answer_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
		ensure_db(t);
		return db_connected(&t->db) ? answer(c, MHD_HTTP_OK, "{\"ok\": true}\n")
			: answer(c, MHD_HTTP_SERVICE_UNAVAILABLE, "{\"ok\": false}\n");
	}
	if (strncmp(url, "/hooks/", 7) == 0)
		for (size_t i = 0; i < ARRAY_LEN(providers); i++)
			if (strcmp(url + 7, providers[i].name) == 0)
				p = &providers[i];
	if (p == NULL)
		return answer_error(c, MHD_HTTP_NOT_FOUND,
							"no such hook (POST /hooks/github, gitlab, gitea or generic)");
	if (strcmp(method, "POST") != 0)
		return answer_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST");

	if (rq == NULL)
	{
		/* first call: headers only */
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		int64_t len;

		t->requests++;
		if (!json_content_type(c))
		{
			log_info("POST /hooks/%s: 415", p->name);
			return answer_error(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
								"the body must be application/json (set the webhook's content type)");
		}
		if (cl && parse_int64(cl, &len) && (uint64_t) len > t->max_body)
		{
			log_info("POST /hooks/%s: 413 (Content-Length %s)", p->name, cl);
			return answer_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "the body is too large");
		}
		rq = xcalloc(1, sizeof(*rq));
		sb_init(&rq->body);
		*state = rq;
		return MHD_YES;
	}
	if (*upload_size > 0)
	{
		if (!rq->too_big && rq->body.len + *upload_size <= t->max_body)
			sb_append(&rq->body, upload, *upload_size);
		else
		{
			rq->too_big = true;
			sb_free(&rq->body);
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (rq->too_big)
	{
		log_info("POST /hooks/%s: 413 (more than %zu bytes)", p->name, t->max_body);
		return answer_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "the body is too large");
	}
	return fire(t, c, p, rq);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode toe)
{
	request *rq = *state;

	if (rq)
	{
		sb_free(&rq->body);
		free(rq);
		*state = NULL;
	}
}

/* ------------------------------------------------------------------ main */

/* "ADDR:PORT" or "[ADDR6]:PORT" into addr; false when it is not that */
static bool
parse_listen(const char *s, struct sockaddr_storage *addr, bool *v6)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	struct addrinfo hints, *ai = NULL;
	size_t hl;
	int port;

	if (colon == NULL || !parse_int_range(colon + 1, 0, 65535, &port))
		return false;
	hl = (size_t) (colon - s);
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']')
	{
		s++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return false;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, NULL, &hints, &ai) != 0 || ai == NULL)
		return false;
	memset(addr, 0, sizeof(*addr));
	memcpy(addr, ai->ai_addr, ai->ai_addrlen);
	*v6 = ai->ai_family == AF_INET6;
	if (*v6)
		((struct sockaddr_in6 *) addr)->sin6_port = htons((uint16_t) port);
	else
		((struct sockaddr_in *) addr)->sin_port = htons((uint16_t) port);
	freeaddrinfo(ai);
	return true;
}

static void
triggerd_usage(FILE *f)
{
	fprintf(f,
			"Usage: pipelinectl triggerd [OPTION]...\n"
			"Receive git webhooks and start the pipelines of the matching triggers.\n"
			"\n"
			"  -l, --listen ADDR:PORT    address to listen on (default: " DEFAULT_LISTEN "; port 0:\n"
			"                            any free port, logged at start)\n"
			"      --max-body BYTES      largest body accepted, 1024 to 4194304 (default: 1048576);\n"
			"                            larger ones get 413\n"
			"  -d, --dbname CONNINFO     database connection string (default: PG* environment)\n"
			"  -v, --verbose             debug logging\n"
			"  -h, --help                show this help\n"
			"\n"
			"POST /hooks/github (X-Hub-Signature-256), /hooks/gitlab (X-Gitlab-Token),\n"
			"/hooks/gitea (X-Gitea-Signature), /hooks/generic (X-Pipeline-Signature:\n"
			"sha256=<hex HMAC-SHA256>), with Content-Type application/json.  The signature\n"
			"is checked in the database against the triggers' secrets (pipeline.fire_signed_trigger).\n"
			"Answers 202 {\"runs\": [ids]}, 401 bad signature, 400 bad JSON, 413 too large.\n"
			"SIGTERM/SIGINT: stop.\n"
			"\n"
			"Exit status: 0 stopped; 2 usage error or the address cannot be listened on.\n");
}

static int
serve(triggerd *t, struct MHD_Daemon *d)
{
	for (;;)
	{
		fd_set rs, ws, es;
		MHD_socket max = 0;
		MHD_UNSIGNED_LONG_LONG ms;
		struct timeval tv = {1, 0};
		int sfd = signals_fd();

		signals_drain();
		if (g_sig.term_count > 0)
		{
			log_info("signal received: stopping after %lu request%s", t->requests,
					 t->requests == 1 ? "" : "s");
			return 0;
		}
		FD_ZERO(&rs);
		FD_ZERO(&ws);
		FD_ZERO(&es);
		if (MHD_get_fdset(d, &rs, &ws, &es, &max) != MHD_YES)
		{
			log_error("MHD_get_fdset failed");
			return 1;
		}
		FD_SET(sfd, &rs);
		if (sfd > max)
			max = sfd;
		if (MHD_get_timeout(d, &ms) == MHD_YES && ms < 1000)
		{
			tv.tv_sec = 0;
			tv.tv_usec = (suseconds_t) ms * 1000;
		}
		if (select(max + 1, &rs, &ws, &es, &tv) < 0 && errno != EINTR)
		{
			log_error("select: %s", strerror(errno));
			return 1;
		}
		MHD_run_from_select(d, &rs, &ws, &es);
	}
}

int
cmd_triggerd(int argc, char **argv, const char *conninfo)
{
	triggerd t;
	const char *listen = DEFAULT_LISTEN;
	int max_body = DEFAULT_MAX_BODY;
	bool verbose = false, v6 = false;
	opt_cmd cmd = {"triggerd", triggerd_usage, conninfo, 0};
	struct sockaddr_storage addr;
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;
	int rc;
	const opt_spec specs[] = {
		{"listen", 'l', OPT_STRING, &listen, 0, 0, NULL},
		{"max-body", 0, OPT_INT, &max_body, 1024, 4 * 1024 * 1024, NULL},
		{"verbose", 'v', OPT_FLAG, &verbose, 0, 0, NULL},
		{NULL, 0, 0, NULL, 0, 0, NULL}
	};

	if ((rc = opts_parse(&cmd, argc, argv, specs)) >= 0)
		return rc;
	if (cmd.first_arg < argc)
		return usage_error(&cmd, "unexpected argument \"%s\"", argv[cmd.first_arg]);
	if (!parse_listen(listen, &addr, &v6))
		return usage_error(&cmd, "--listen must be ADDR:PORT with a numeric address, e.g. "
						   DEFAULT_LISTEN " or [::1]:8090, not \"%s\"", listen);
	log_set_verbose(verbose);
	log_init("triggerd");
	memset(&t, 0, sizeof(t));
	t.max_body = (size_t) max_body;
	if (signals_install(false, false, true) != 0)
	{
		log_error("cannot install the signal handlers");
		return 1;
	}
	d = MHD_start_daemon(v6 ? MHD_USE_IPv6 : MHD_NO_FLAG, 0, NULL, NULL, on_request, &t,
						 MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &addr,
						 MHD_OPTION_NOTIFY_COMPLETED, on_completed, &t,
						 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) 30,
						 MHD_OPTION_CONNECTION_LIMIT, (unsigned int) 64,
						 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) 64 * 1024,
						 MHD_OPTION_END);
	if (d == NULL)
	{
		log_error("cannot listen on %s: %s", listen, errno ? strerror(errno) : "unknown error");
		signals_close();
		return EXIT_USAGE;
	}
	db_init(&t.db, cmd.conninfo, NULL);
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	{
		char host[INET6_ADDRSTRLEN] = "?";

		if (v6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *) &addr)->sin6_addr, host, sizeof(host));
		else
			inet_ntop(AF_INET, &((struct sockaddr_in *) &addr)->sin_addr, host, sizeof(host));
		log_info("listening on %s%s%s:%u, bodies up to %d bytes", v6 ? "[" : "", host, v6 ? "]" : "",
				 info ? (unsigned) info->port : 0, max_body);
	}
	ensure_db(&t);
	if (t.db.fatal)
	{
		log_error("%s", t.db.fatal_msg);
		rc = EXIT_USAGE;
	}
	else
		rc = serve(&t, d);
	MHD_stop_daemon(d);
	db_close(&t.db);
	signals_close();
	return rc;
}
