/*
 * cmd_serve.c: "pipelinectl serve": the web dashboard, /metrics and
 * /healthz (SPEC §17).  The insides are in serve/ (see serve/serve.h).
 *
 *   pipelinectl serve [--listen 127.0.0.1:8080] [--read-only-role ROLE] [--login]
 *                     [--tls-cert FILE --tls-key FILE] [--session-secret-file FILE]
 *                     [--session-ttl SECONDS] [--pool N]
 *
 * Checks at start: the database is reachable with -d, and serve's role is a
 * member of --read-only-role (SET ROLE must work).  Then libmicrohttpd
 * serves (a thread per connection), the event listener thread runs, and the
 * main thread waits for SIGTERM / SIGINT; on it, SSE streams end, the daemon
 * stops, sessions and connections are closed.  Exit 0 after a clean stop,
 * 2 on usage, connection or setup errors.
 *
 * Locking: see serve/serve.h (threads); nothing in the database.
 */
#define _GNU_SOURCE
#include "commands.h"
#include "serve/serve.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

serve_config g_serve;

static void
serve_usage(FILE *f)
{
	fprintf(f,
			"Usage: pipelinectl serve [OPTION]...\n"
			"Serve the web dashboard, /metrics (Prometheus) and /healthz.\n"
			"\n"
			"  --listen HOST:PORT          address to listen on (default 127.0.0.1:8080;\n"
			"                              [ADDR]:PORT for IPv6)\n"
			"  --read-only-role ROLE       anonymous visitors see what ROLE may read (serve's\n"
			"                              own role must be a member of ROLE); without it\n"
			"                              they see nothing but the sign-in page\n"
			"  --login                     people sign in with a database role and password;\n"
			"                              their requests then run as that role\n"
			"  --tls-cert FILE             serve HTTPS with this certificate (PEM) ...\n"
			"  --tls-key FILE              ... and this key (PEM)\n"
			"  --session-secret-file FILE  key of the session cookies (at least 32 bytes);\n"
			"                              default: random per process\n"
			"  --session-ttl SECONDS       how long a sign-in lasts (default 28800)\n"
			"  --pool N                    connections for anonymous requests and metrics\n"
			"                              (1-8, default 4)\n"
			"  -v, --verbose               log every action and sign-in\n"
			"  -d, --dbname CONNINFO       database connection string (default: PG* environment)\n"
			"  -h, --help                  show this help\n");
}

/*
 * serve's own connection works, the extension is there and the role may use
 * its schema (lib/conn.c's one check), and it may SET ROLE to the read-only
 * role.
 */
static int
check_database(void)
{
	db_conn db;
	int rc;

	db_init(&db, g_serve.conninfo, NULL);
	if ((rc = db_connect_checked(&db, "serve")) >= 0)
	{
		db_close(&db);
		return rc;
	}
	rc = 0;
	if (g_serve.read_only_role)
	{
		const char *params[1] = {g_serve.read_only_role};
		char *err = NULL;
		PGresult *res = qc(db.conn, "SELECT pg_has_role(current_user, $1::text::name, 'MEMBER')", 1,
						   params, &err, NULL);

		if (!res)
		{
			fprintf(stderr, "pipelinectl serve: --read-only-role %s: %s\n", g_serve.read_only_role, err);
			free(err);
			rc = EXIT_USAGE;
		}
		else
		{
			if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
			{
				fprintf(stderr, "pipelinectl serve: --read-only-role %s: role \"%s\" is not a member "
						"of it (GRANT %s TO %s)\n", g_serve.read_only_role, PQuser(db.conn),
						g_serve.read_only_role, PQuser(db.conn));
				rc = EXIT_USAGE;
			}
			PQclear(res);
		}
	}
	db_close(&db);
	return rc;
}

int
cmd_serve(int argc, char **argv, const char *conninfo)
{
	const char *listen = "127.0.0.1:8080", *cert = NULL, *key = NULL, *secret_file = NULL;
	const char *ro = NULL;
	bool login = false, verbose = false;
	double ttl = 28800;
	int pool = 4, rc;
	void *daemon = NULL;
	opt_cmd cmd = {"serve", serve_usage, conninfo, 0};
	char err[256];
	bool ok;

	{
		const opt_spec specs[] = {
			{"listen", 0, OPT_STRING, &listen, 0, 0, NULL},
			{"read-only-role", 0, OPT_STRING, &ro, 0, 0, NULL},
			{"login", 0, OPT_FLAG, &login, 0, 0, NULL},
			{"tls-cert", 0, OPT_STRING, &cert, 0, 0, NULL},
			{"tls-key", 0, OPT_STRING, &key, 0, 0, NULL},
			{"session-secret-file", 0, OPT_STRING, &secret_file, 0, 0, NULL},
			{"session-ttl", 0, OPT_SECONDS, &ttl, 60, 30 * 86400, NULL},
			{"pool", 0, OPT_INT, &pool, 1, 8, NULL},
			{"verbose", 'v', OPT_FLAG, &verbose, 0, 0, NULL},
			{NULL, 0, 0, NULL, 0, 0, NULL}
		};

		if ((rc = opts_parse(&cmd, argc, argv, specs)) >= 0)
			return rc;
		if (cmd.first_arg < argc)
		{
			usage_error(&cmd, "unexpected argument \"%s\"", argv[cmd.first_arg]);
			serve_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (ro && !*ro)
		return usage_error(&cmd, "--read-only-role needs a role name");

	log_init("serve");
	log_set_verbose(verbose);
	memset(&g_serve, 0, sizeof(g_serve));
	g_serve.conninfo = cmd.conninfo;
	g_serve.read_only_role = ro;
	g_serve.login = login;
	g_serve.tls = cert != NULL;
	g_serve.session_ttl = ttl;
	session_init_secret(secret_file, err, sizeof(err), &ok);
	if (!ok)
		return usage_error(&cmd, "--session-secret-file %s", err);
	if ((rc = check_database()) != 0)
		return rc;
	dbpool_init(pool);

	if (signals_install(false, false, true) != 0)
	{
		fprintf(stderr, "pipelinectl serve: cannot install signal handlers\n");
		return EXIT_USAGE;
	}
	if ((rc = serve_http_start(listen, cert, key, &daemon)) != 0)
		return rc;
	if (events_start() != 0)
	{
		serve_http_stop(daemon);
		fprintf(stderr, "pipelinectl serve: cannot start the event listener\n");
		return EXIT_USAGE;
	}
	if (!g_serve.tls && login && strncmp(listen, "127.", 4) != 0 && strncmp(listen, "[::1]", 5) != 0)
		log_warn("serving sign-ins without TLS on %s: passwords cross the network in clear "
				 "(give --tls-cert/--tls-key or put a TLS proxy in front)", listen);
	log_info("listening on %s://%s (%s%s)", g_serve.tls ? "https" : "http", listen,
			 ro ? "anonymous visitors read as " : "anonymous visitors see nothing",
			 ro ? ro : "");

	while (g_sig.term_count == 0)
	{
		struct pollfd pfd = {signals_fd(), POLLIN, 0};

		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
			break;
		signals_drain();
	}
	log_info("stopping");
	g_serve.stopping = 1;
	events_stop();
	serve_http_stop(daemon);
	session_close_all();
	dbpool_close();
	return EXIT_OK;
}
