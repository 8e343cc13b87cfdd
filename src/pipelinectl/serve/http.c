/*
 * serve/http.c: the HTTP side of "pipelinectl serve" on libmicrohttpd.
 *
 * One thread per HTTP connection (MHD_USE_THREAD_PER_CONNECTION): a route
 * may block on the database, and a Server-Sent Event stream blocks in its
 * content reader waiting for the next event.  A request collects its body
 * (at most 16 kB: forms only), then dispatch() identifies the visitor
 * (session.c), checks CSRF and Origin on every POST, borrows the identity's
 * database connection (dbpool.c) for the route and gives it back.
 *
 * Every response carries a Content-Security-Policy that allows no external
 * resource and only the inline script holding this response's nonce, so an
 * escaping mistake in a page still cannot run injected script.
 *
 * Locking: no shared state here besides g_serve (read-only once started).
 */
#define _GNU_SOURCE
#include "serve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#define MAX_BODY 16384

/* the certificate and key, kept while the daemon runs */
static char *tls_pem[2];

const char *
req_arg(request *r, const char *name)
{
	return MHD_lookup_connection_value(r->mhd, MHD_GET_ARGUMENT_KIND, name);
}

const char *
req_header(request *r, const char *name)
{
	return MHD_lookup_connection_value(r->mhd, MHD_HEADER_KIND, name);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* x-www-form-urlencoded value decoding */
static char *
form_decode(const char *s, size_t n)
{
	strbuf sb;

	sb_init(&sb);
	sb_reserve(&sb, n + 1);
	for (size_t i = 0; i < n; i++)
	{
		if (s[i] == '+')
			sb_putc(&sb, ' ');
		else if (s[i] == '%' && i + 2 < n && hexval((unsigned char) s[i + 1]) >= 0 &&
				 hexval((unsigned char) s[i + 2]) >= 0)
		{
			sb_putc(&sb, (char) (hexval((unsigned char) s[i + 1]) * 16 +
								 hexval((unsigned char) s[i + 2])));
			i += 2;
		}
		else
			sb_putc(&sb, s[i]);
	}
	return sb_steal(&sb);
}

char *
req_form(request *r, const char *name)
{
	const char *p = sb_str(&r->body);
	size_t nlen = strlen(name);

	while (*p)
	{
		const char *amp = strchr(p, '&');
		const char *end = amp ? amp : p + strlen(p);
		const char *eq = memchr(p, '=', (size_t) (end - p));

		if (eq && (size_t) (eq - p) == nlen && strncmp(p, name, nlen) == 0)
		{
			return form_decode(eq + 1, (size_t) (end - eq - 1));
		}
		if (!amp)
			break;
		p = amp + 1;
	}
	return NULL;
}

void
req_redirect(request *r, const char *location)
{
	free(r->location);
	r->location = xstrdup(location);
	r->status = 303;
}

/* Origin, when the browser sends one, must be this server */
static bool
origin_ok(request *r)
{
	const char *origin = req_header(r, "Origin");
	const char *host = req_header(r, "Host");
	char *expect;
	bool ok;

	if (!origin)
		return true;
	if (!host)
		return false;
	expect = xasprintf("%s://%s", g_serve.tls ? "https" : "http", host);
	ok = strcmp(origin, expect) == 0;
	free(expect);
	return ok;
}

static bool
parse_id_after(const char *url, const char *prefix, int64_t *id, const char **rest)
{
	size_t n = strlen(prefix);
	const char *p;
	char *end;
	long long v;

	if (strncmp(url, prefix, n) != 0)
		return false;
	p = url + n;
	if (*p < '1' || *p > '9')
		return false;
	v = strtoll(p, &end, 10);
	if (v <= 0)
		return false;
	*id = v;
	*rest = end;
	return true;
}

static void
not_found(request *r)
{
	r->status = 404;
	page_begin(r, "Not found");
	page_message(r, "error", "There is no such page.");
	page_end(r);
}

static void
dispatch(request *r)
{
	bool post = strcmp(r->method, "POST") == 0;
	const char *url = r->url;
	int64_t id;
	const char *rest;
	req_db db;

	if (!post && strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
	{
		r->status = 405;
		sb_puts(&r->out, "method not allowed\n");
		r->content_type = "text/plain; charset=utf-8";
		return;
	}
	/* no identity needed: serve's own role reads the counters */
	if (!post && strcmp(url, "/healthz") == 0)
		return page_healthz(r);
	if (!post && strcmp(url, "/metrics") == 0)
		return page_metrics(r);

	session_identify(r);
	if (post)
	{
		char *token = req_form(r, "csrf");
		bool ok = !r->body_too_large && origin_ok(r) && token && csrf_ok(r, token);

		free(token);
		if (!ok)
		{
			r->status = 403;
			page_begin(r, "Refused");
			page_message(r, "error", "Refused: the form's CSRF token or its origin is missing or wrong. Reload the page and try again.");
			page_end(r);
			return;
		}
		if (strcmp(url, "/login") == 0)
			return action_login(r);
		if (strcmp(url, "/logout") == 0)
			return action_logout(r);
	}
	else if (strcmp(url, "/login") == 0)
		return page_login(r, NULL);

	if (!req_db_acquire(r, &db))
	{
		if (db.conn == NULL && (r->role || g_serve.read_only_role) && r->status == 503)
		{
			page_begin(r, "Unavailable");
			page_message(r, "error", "The database is not reachable.");
			page_end(r);
			return;
		}
		r->status = 401;
		page_login(r, NULL);
		return;
	}
	if (post && strcmp(url, "/action") == 0)
		action_post(r, &db);
	else if (post)
		not_found(r);
	else if (strcmp(url, "/") == 0 || strcmp(url, "/runs") == 0)
		page_runs(r, &db);
	else if (parse_id_after(url, "/run/", &id, &rest))
	{
		if (*rest == '\0')
			page_run(r, &db, id, false, NULL);
		else if (strcmp(rest, "/part") == 0)
			page_run(r, &db, id, true, NULL);
		else if (strcmp(rest, "/events") == 0)
		{
			/* the stream only wakes the page up; the page reads with its role */
			req_db_release(&db);
			sse_run(r, id);
			return;
		}
		else
			not_found(r);
	}
	else if (parse_id_after(url, "/task/", &id, &rest))
	{
		if (*rest == '\0')
			page_task(r, &db, id, NULL);
		else if (strcmp(rest, "/log") == 0)
			page_task_log(r, &db, id);
		else if (strcmp(rest, "/stream") == 0)
		{
			int64_t after = 0;
			const char *a = req_arg(r, "after");

			if (a)
				parse_int64(a, &after);
			sse_log(r, &db, id, after);	/* takes db over */
			return;
		}
		else
			not_found(r);
	}
	else
		not_found(r);
	req_db_release(&db);
}

static void
add_common_headers(request *r, struct MHD_Response *resp)
{
	char *csp = xasprintf("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
						  "script-src 'nonce-%s'; connect-src 'self'; form-action 'self'; "
						  "frame-ancestors 'none'; base-uri 'none'", r->nonce);

	MHD_add_response_header(resp, "Content-Security-Policy", csp);
	free(csp);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Referrer-Policy", "same-origin");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (r->new_cookie && r->sid[0])
	{
		char *c = session_cookie(r->sid, wall_now() + g_serve.session_ttl);

		MHD_add_response_header(resp, "Set-Cookie", c);
		free(c);
	}
	if (r->set_cookie)
		MHD_add_response_header(resp, "Set-Cookie", r->set_cookie);
	if (r->location)
		MHD_add_response_header(resp, "Location", r->location);
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
		const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	request *r = *con_cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (!r)
	{
		r = xcalloc(1, sizeof(request));
		r->mhd = connection;
		r->method = method;
		r->url = url;
		r->status = 200;
		r->content_type = "text/html; charset=utf-8";
		sb_init(&r->body);
		sb_init(&r->out);
		random_hex(r->nonce, 16);
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_data_size > 0)
	{
		if (r->body.len + *upload_data_size > MAX_BODY)
			r->body_too_large = true;
		else
			sb_append(&r->body, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	dispatch(r);
	if (r->stream)
	{
		resp = r->stream;
		r->stream = NULL;
	}
	else
		resp = MHD_create_response_from_buffer(r->out.len, r->out.data ? r->out.data : "",
											   MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", r->content_type);
	add_common_headers(r, resp);
	ret = MHD_queue_response(connection, (unsigned) r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void
completed(void *cls, struct MHD_Connection *connection, void **con_cls,
		  enum MHD_RequestTerminationCode toe)
{
	request *r = *con_cls;

	if (!r)
		return;
	if (r->body.data)
		OPENSSL_cleanse(r->body.data, r->body.len);	/* a sign-in form's password */
	sb_free(&r->body);
	sb_free(&r->out);
	free(r->role);
	free(r->location);
	free(r->set_cookie);
	if (r->stream)
		MHD_destroy_response(r->stream);
	free(r);
	*con_cls = NULL;
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	oneline(buf);
	log_warn("http: %s", buf);
}

/*
 * Start the daemon on listen ("HOST:PORT", "[V6]:PORT").  Returns 0, or 2
 * after a message.
 */
int
serve_http_start(const char *listen, const char *cert, const char *key, void **daemon_out)
{
	struct sockaddr_storage ss;
	char host[256];
	const char *colon = strrchr(listen, ':');
	int port;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
		MHD_USE_ERROR_LOG;
	struct MHD_Daemon *d;
	char *certpem = NULL, *keypem = NULL;

	memset(&ss, 0, sizeof(ss));
	if (!colon || colon == listen || (size_t) (colon - listen) >= sizeof(host) ||
		!parse_int_range(colon + 1, 1, 65535, &port))
	{
		fprintf(stderr, "pipelinectl serve: --listen must be HOST:PORT (for example 127.0.0.1:8080)\n");
		return EXIT_USAGE;
	}
	memcpy(host, listen, (size_t) (colon - listen));
	host[colon - listen] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']')
	{
		struct sockaddr_in6 *a = (struct sockaddr_in6 *) &ss;

		host[strlen(host) - 1] = '\0';
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t) port);
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
		{
			fprintf(stderr, "pipelinectl serve: --listen: \"%s\" is not an IPv6 address\n", host + 1);
			return EXIT_USAGE;
		}
		flags |= MHD_USE_IPv6;
	}
	else
	{
		struct sockaddr_in *a = (struct sockaddr_in *) &ss;

		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t) port);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		{
			fprintf(stderr, "pipelinectl serve: --listen: \"%s\" is not an IPv4 address "
					"(use [ADDR]:PORT for IPv6)\n", host);
			return EXIT_USAGE;
		}
	}
	if (cert || key)
	{
		size_t len;
		bool trunc;

		if (!cert || !key)
		{
			fprintf(stderr, "pipelinectl serve: --tls-cert and --tls-key go together\n");
			return EXIT_USAGE;
		}
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		{
			fprintf(stderr, "pipelinectl serve: this libmicrohttpd was built without TLS; "
					"serve on 127.0.0.1 behind a reverse proxy that terminates TLS instead\n");
			return EXIT_USAGE;
		}
		certpem = read_file_capped(cert, 1 << 20, &len, &trunc);
		keypem = read_file_capped(key, 1 << 20, &len, &trunc);
		if (!certpem || !keypem)
		{
			fprintf(stderr, "pipelinectl serve: cannot read %s\n", certpem ? key : cert);
			free(certpem);
			free(keypem);
			return EXIT_USAGE;
		}
		flags |= MHD_USE_TLS;
	}
	if (certpem)
		d = MHD_start_daemon(flags, 0, NULL, NULL, handler, NULL,
							 MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
							 MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &ss,
							 MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
							 MHD_OPTION_CONNECTION_LIMIT, (unsigned) 128,
							 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 120,
							 MHD_OPTION_HTTPS_MEM_CERT, certpem,
							 MHD_OPTION_HTTPS_MEM_KEY, keypem,
							 MHD_OPTION_END);
	else
		d = MHD_start_daemon(flags, 0, NULL, NULL, handler, NULL,
							 MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
							 MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &ss,
							 MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
							 MHD_OPTION_CONNECTION_LIMIT, (unsigned) 128,
							 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 120,
							 MHD_OPTION_END);
	/* libmicrohttpd copies neither: they must live as long as the daemon */
	if (!d)
	{
		free(certpem);
		free(keypem);
		fprintf(stderr, "pipelinectl serve: cannot listen on %s (in use, or a bad certificate)\n", listen);
		return EXIT_USAGE;
	}
	tls_pem[0] = certpem;
	tls_pem[1] = keypem;
	*daemon_out = d;
	return 0;
}

void
serve_http_stop(void *daemon)
{
	if (daemon)
		MHD_stop_daemon((struct MHD_Daemon *) daemon);
	free(tls_pem[0]);
	free(tls_pem[1]);
	tls_pem[0] = tls_pem[1] = NULL;
}
