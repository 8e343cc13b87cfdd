/*
 * cmd_hookd.c: "pipelinectl hookd": options and the event loop; what hookd
 * does is described in hookd/hookd.h.
 *
 * Locking: none.
 */
#define _GNU_SOURCE
#include "commands.h"
#include "hookd/hookd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ loop */

static void
reap_done(hookd *h)
{
	for (delivery **pp = &h->list; *pp;)
	{
		delivery *d = *pp;

		if (d->state == D_DONE)
		{
			*pp = d->next;
			delivery_free(d);
		}
		else
			pp = &d->next;
	}
}

static void
abandon_sending(hookd *h)
{
	for (delivery *d = h->list; d; d = d->next)
	{
		if (d->state == D_SENDING && d->easy)
		{
			curl_multi_remove_handle(h->multi, d->easy);
			curl_easy_cleanup(d->easy);
			d->easy = NULL;
			d->state = D_DONE;
			h->sending--;
			log_warn("delivery %s: send abandoned; it is retried once its lease ends", d->idstr);
		}
	}
}

static int
hookd_loop(hookd *h)
{
	for (;;)
	{
		double now = mono_now();
		struct curl_waitfd extra[2];
		unsigned nextra = 0;
		int running = 0, msgs = 0, timeout;
		CURLMsg *m;
		CURLMcode mc;
		double wake;

		signals_drain();
		if (g_sig.term_count != h->handled_terms)
		{
			h->handled_terms = g_sig.term_count;
			h->stopping = true;
			if (h->handled_terms == 1)
				log_info("signal received: claiming nothing more; finishing %d send%s in flight",
						 h->sending, h->sending == 1 ? "" : "s");
			else
			{
				log_warn("second signal: abandoning the sends in flight");
				abandon_sending(h);
			}
		}

		if (db_ensure(&h->db, now) && !h->setup_checked)
		{
			static const char *const needs[] = {
				"pipeline.claim_hook_deliveries(text,int,interval)",
				"pipeline.complete_hook_delivery(bigint,boolean,int,text,int)", NULL
			};
			char msg[1024];
			setup_result sr = db_check_setup(&h->db, needs, msg, sizeof(msg));

			if (sr == SETUP_BAD)
			{
				log_error("%s", msg);
				return EXIT_USAGE;
			}
			h->setup_checked = (sr == SETUP_OK);
		}
		if (h->db.fatal)
		{
			log_error("%s", h->db.fatal_msg);
			return EXIT_USAGE;
		}
		if (db_connected(&h->db) && h->db.notifications != h->seen_notifications)
		{
			double soon = h->last_claim + 0.2;

			h->seen_notifications = h->db.notifications;
			if (soon < h->next_claim)
				h->next_claim = soon < now ? now : soon;
		}

		/* record finished sends */
		for (delivery *d = h->list; d; d = d->next)
			if (d->state == D_COMPLETING)
				complete(h, d, now);
		reap_done(h);

		now = mono_now();
		if (!h->stopping && db_connected(&h->db) && h->setup_checked && now >= h->next_claim &&
			h->sending < h->concurrency)
			claim_deliveries(h, now);

		mc = curl_multi_perform(h->multi, &running);
		if (mc != CURLM_OK)
			log_error("curl_multi_perform: %s", curl_multi_strerror(mc));
		while ((m = curl_multi_info_read(h->multi, &msgs)) != NULL)
			if (m->msg == CURLMSG_DONE)
				transfer_done(h, m->easy_handle, m->data.result);

		/* completions of what just finished: right away, not after the next wait */
		now = mono_now();
		for (delivery *d = h->list; d; d = d->next)
			if (d->state == D_COMPLETING && d->retry.next_try <= now)
				complete(h, d, now);
		reap_done(h);

		if (h->stopping && !anything_pending(h))
		{
			if (!db_connected(&h->db))
			{
				/* not "healthy": a supervisor must see that it never got to work */
				log_error("stopped without a database connection");
				return EXIT_USAGE;
			}
			log_info("stopped");
			return 0;
		}
		if (h->exit_when_idle && db_down_for(&h->db, now) >= h->retry_for && h->sending == 0)
		{
			log_error("no database connection for %.0f s; giving up (--exit-when-idle, --retry-for %.0f)",
					  db_down_for(&h->db, now), h->retry_for);
			return EXIT_USAGE;
		}
		if (h->exit_when_idle && h->idle_after_claim && !anything_pending(h))
		{
			log_info("nothing to send; exiting (--exit-when-idle)");
			return 0;
		}

		/* wait */
		wake = now + 1.0;
		if (db_connected(&h->db))
		{
			if (!h->stopping && h->sending < h->concurrency && h->next_claim < wake)
				wake = h->next_claim;
			for (delivery *d = h->list; d; d = d->next)
				if (d->state == D_COMPLETING && d->retry.next_try < wake)
					wake = d->retry.next_try;
		}
		else if (h->db.next_attempt < wake)
			wake = h->db.next_attempt;
		timeout = ms_until(wake, mono_now());
		extra[nextra].fd = signals_fd();
		extra[nextra].events = CURL_WAIT_POLLIN;
		extra[nextra].revents = 0;
		nextra++;
		if (db_socket(&h->db) >= 0)
		{
			extra[nextra].fd = db_socket(&h->db);
			extra[nextra].events = CURL_WAIT_POLLIN;
			extra[nextra].revents = 0;
			nextra++;
		}
		mc = curl_multi_poll(h->multi, extra, nextra, timeout, NULL);
		if (mc != CURLM_OK)
		{
			log_error("curl_multi_poll: %s", curl_multi_strerror(mc));
			usleep(100000);
		}
		if (db_socket(&h->db) >= 0)
			db_consume(&h->db);
	}
}

/* ------------------------------------------------------------------ main */

static void
hookd_usage(FILE *f)
{
	fprintf(f,
			"Usage: pipelinectl hookd [OPTION]...\n"
			"Send hook deliveries: webhooks (JSON, signed when the hook has a secret) and\n"
			"Feishu, DingTalk and WeCom robots (in their own formats).\n"
			"\n"
			"  -n, --name NAME           sender name recorded on claimed deliveries (default: HOST-PID)\n"
			"  -c, --concurrency N       send up to N deliveries at once (default: 4)\n"
			"      --poll-interval S     claim at least every S seconds (default: 2)\n"
			"      --lease S             a claimed delivery is ours for S seconds; if we die, it is\n"
			"                            claimed again after that (default: 60, at least 20)\n"
			"      --exit-when-idle      exit once nothing is due and nothing is in flight\n"
			"      --retry-for S         with --exit-when-idle: give up (exit 2) after S seconds\n"
			"                            without a database connection (default: 30)\n"
			"  -d, --dbname CONNINFO     database connection string (default: PG* environment)\n"
			"  -v, --verbose             debug logging\n"
			"  -h, --help                show this help\n"
			"\n"
			"Each POST carries X-Pipeline-Event (<kind>.<stage>), X-Pipeline-Delivery (<id>)\n"
			"and, with a secret, X-Pipeline-Signature: sha256=<hex HMAC-SHA256 of the body>\n"
			"(check one with: pipelinectl sign SECRET < body).  A target's \"robot\" key\n"
			"(feishu, dingtalk, wecom, generic) overrides the format chosen from its URL.\n"
			"SIGTERM/SIGINT: finish the sends in flight, record them and exit.\n"
			"\n"
			"Exit status: 0 stopped or idle; 2 usage or setup error (the extension missing, a\n"
			"grant missing, the role or password refused), or stopped or given up without a\n"
			"database connection.\n");
}


int
cmd_hookd(int argc, char **argv, const char *conninfo)
{
	hookd h;
	const char *name = NULL;
	bool verbose = false;
	opt_cmd cmd = {"hookd", hookd_usage, conninfo, 0};
	int rc;

	memset(&h, 0, sizeof(h));
	h.concurrency = 4;
	h.poll_interval = 2.0;
	h.retry_for = 30.0;
	h.lease = 60;
	{
		/* the lease: longer than a send can take (15 s), or a slow send could go out twice */
		const opt_spec specs[] = {
			{"name", 'n', OPT_STRING, &name, 0, 0, NULL},
			{"concurrency", 'c', OPT_INT, &h.concurrency, 1, 1000, NULL},
			{"poll-interval", 0, OPT_SECONDS, &h.poll_interval, 0.05, 86400, NULL},
			{"lease", 0, OPT_INT, &h.lease, 20, 86400, "an integer number of seconds from 20 to 86400"},
			{"exit-when-idle", 0, OPT_FLAG, &h.exit_when_idle, 0, 0, NULL},
			{"retry-for", 0, OPT_SECONDS, &h.retry_for, 1, 86400, NULL},
			{"verbose", 'v', OPT_FLAG, &verbose, 0, 0, NULL},
			{NULL, 0, 0, NULL, 0, 0, NULL}
		};

		if ((rc = opts_parse(&cmd, argc, argv, specs)) >= 0)
			return rc;
	}
	if (cmd.first_arg < argc)
		return usage_error(&cmd, "unexpected argument \"%s\"", argv[cmd.first_arg]);
	if (name && !*name)
		return usage_error(&cmd, "--name must not be empty");
	log_set_verbose(verbose);
	if (name)
		h.name = xstrdup(name);
	else
	{
		char host[256];

		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "hookd");
		host[sizeof(host) - 1] = '\0';
		h.name = xasprintf("%s-%ld", host, (long) getpid());
	}

	log_init("hookd");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
	{
		log_error("cannot initialise libcurl");
		free(h.name);
		return 1;
	}
	h.multi = curl_multi_init();
	if (!h.multi || signals_install(false, false, true) != 0)
	{
		log_error("cannot initialise the event loop");
		if (h.multi)
			curl_multi_cleanup(h.multi);
		curl_global_cleanup();
		free(h.name);
		return 1;
	}
	db_init(&h.db, cmd.conninfo, "pipeline_events");
	log_info("hookd \"%s\" starting: concurrency %d, poll every %.1f s", h.name, h.concurrency,
			 h.poll_interval);

	rc = hookd_loop(&h);

	abandon_sending(&h);
	while (h.list)
	{
		delivery *d = h.list;

		h.list = d->next;
		delivery_free(d);
	}
	curl_multi_cleanup(h.multi);
	curl_global_cleanup();
	db_close(&h.db);
	free(h.name);
	return rc;
}
