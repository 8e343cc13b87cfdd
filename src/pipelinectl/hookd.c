/*
 * hookd.c: "pipelinectl hookd" sends hook deliveries.
 *
 * One event loop around curl_multi_poll(), which also watches the database
 * socket (LISTEN pipeline_events) and the self-pipe of the signal handlers.
 * Each turn: complete finished sends with pipeline.complete_hook_delivery(),
 * claim due deliveries with pipeline.claim_hook_deliveries() while there is
 * room (on a NOTIFY, or every --poll-interval), build each body and start
 * its POST, let libcurl make progress.
 *
 * Bodies:
 *   webhook (and any URL not recognised as a robot):
 *       {"event": <the pipeline.event row as JSON, payload included>, "delivery_id": N}
 *   Feishu / Lark (open.feishu.cn, open.larksuite.com): an interactive card
 *   DingTalk (oapi.dingtalk.com): markdown message
 *   WeCom (qyapi.weixin.qq.com): markdown message
 * A target's "robot" key ("feishu", "dingtalk", "wecom", "generic") chooses
 * the format explicitly (a receiver on 127.0.0.1 can then test each format).
 *
 * Headers: Content-Type, X-Pipeline-Event: <event kind>.<new stage>,
 * X-Pipeline-Delivery: <id>, X-Pipeline-Signature: sha256=<hex HMAC-SHA256
 * of the body with target.secret> when the target has a secret, and the
 * target's own headers.  Feishu and DingTalk robots with a secret are also
 * signed the way those services check (timestamp + sign).
 *
 * A result the database cannot take now (it is away) is kept and completed
 * after the reconnect.  SIGTERM/SIGINT: claim nothing more, finish the sends
 * in flight, record them, exit; a second signal abandons the sends in flight
 * (their lease runs out and another sender retries them).
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#define RESPONSE_MAX 4096
#define CONNECT_TIMEOUT_MS 5000L
#define TOTAL_TIMEOUT_MS 15000L
#define TEXT_FIELD_MAX 600			/* a message shown in a robot card */

typedef enum { D_SENDING, D_COMPLETING, D_DONE } dstate;

typedef struct delivery
{
	struct delivery *next;
	int64_t id;
	char idstr[24];
	char *kind;					/* webhook, im_robot, mention */
	char *event_label;			/* X-Pipeline-Event */
	char *where;				/* scheme://host for the logs (no path: it may hold a token) */
	dstate state;

	CURL *easy;
	struct curl_slist *headers;
	char *url;
	strbuf body;
	strbuf resp;
	char errbuf[CURL_ERROR_SIZE];
	double started;

	robot_kind robot;
	bool success;
	long http_code;
	char *response;
	long cost_ms;
	double next_try;
	backoff bo;
	int tries;
} delivery;

typedef struct hookd
{
	char *name;
	int concurrency;
	bool exit_when_idle;
	double poll_interval;
	int lease;					/* seconds a claimed delivery is ours */
	db_conn db;
	CURLM *multi;
	delivery *list;
	int sending;
	int handled_terms;
	bool stopping;
	double next_claim;
	double last_claim;
	unsigned long seen_notifications;
	bool idle_after_claim;
	char last_claim_error[256];
	double last_claim_error_at;
} hookd;

/* --------------------------------------------------------------- robots */

static bool
host_is(const char *host, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(host, want, n) == 0;
}

robot_kind
robot_from_url(const char *url)
{
	const char *p, *h, *end;

	if (!url)
		return ROBOT_NONE;
	p = strstr(url, "://");
	if (!p)
		return ROBOT_NONE;
	h = p + 3;
	end = h + strcspn(h, "/?#");
	/* strip user info and port */
	for (const char *q = h; q < end; q++)
		if (*q == '@')
			h = q + 1;
	const char *colon = memchr(h, ':', (size_t) (end - h));

	if (colon)
		end = colon;
	size_t n = (size_t) (end - h);

	if (host_is(h, n, "open.feishu.cn") || host_is(h, n, "open.larksuite.com"))
		return ROBOT_FEISHU;
	if (host_is(h, n, "oapi.dingtalk.com"))
		return ROBOT_DINGTALK;
	if (host_is(h, n, "qyapi.weixin.qq.com"))
		return ROBOT_WECOM;
	return ROBOT_NONE;
}

robot_kind
robot_from_name(const char *name)
{
	if (!name)
		return ROBOT_NONE;
	if (strcasecmp(name, "feishu") == 0 || strcasecmp(name, "lark") == 0)
		return ROBOT_FEISHU;
	if (strcasecmp(name, "dingtalk") == 0)
		return ROBOT_DINGTALK;
	if (strcasecmp(name, "wecom") == 0 || strcasecmp(name, "wechat") == 0 ||
		strcasecmp(name, "wxwork") == 0)
		return ROBOT_WECOM;
	return ROBOT_NONE;
}

static const char *
robot_name(robot_kind r)
{
	switch (r)
	{
		case ROBOT_FEISHU:
			return "feishu";
		case ROBOT_DINGTALK:
			return "dingtalk";
		case ROBOT_WECOM:
			return "wecom";
		default:
			return "generic";
	}
}

/* the text of a field, one line, at most TEXT_FIELD_MAX bytes; NULL if absent */
static char *
field_text(const json_value *obj, const char *key)
{
	const json_value *v = json_get(obj, key);
	const char *s = json_scalar_text(v);
	strbuf sb;
	size_t n;

	if (!s || !*s)
		return NULL;
	n = strlen(s);
	sb_init(&sb);
	if (n > TEXT_FIELD_MAX)
	{
		utf8_repair(&sb, s, utf8_cut(s, TEXT_FIELD_MAX), true);
		sb_puts(&sb, "...");
	}
	else
		utf8_repair(&sb, s, n, true);
	char *r = sb_steal(&sb);

	oneline(r);
	return r;
}

/* a human summary of an event: title and markdown lines */
typedef struct summary
{
	char *title;
	strbuf lines;				/* "**Key:** value" lines separated by \n */
	const char *new_stage;
} summary;

static void
add_line(summary *s, const char *key, const char *value)
{
	if (!value || !*value)
		return;
	if (s->lines.len)
		sb_putc(&s->lines, '\n');
	sb_printf(&s->lines, "**%s:** %s", key, value);
}

static void
summarize(const json_value *event, const char *user, summary *s)
{
	const json_value *payload = json_get(event, "payload");
	const char *kind = json_get_str(event, "kind");
	char *pipeline = field_text(payload, "pipeline_name");
	char *stage_name = field_text(payload, "stage_name");
	char *task_name = field_text(payload, "task_name");
	char *job = field_text(payload, "job_name");
	char *message = field_text(payload, "message");
	char *run_by = field_text(payload, "run_by");
	char *old_stage = field_text(event, "old_stage");
	char *new_stage = field_text(event, "new_stage");
	char *at = field_text(event, "at");
	char *ptid = field_text(event, "pipeline_task_id");
	char *objid = field_text(event, "object_id");
	char *buf;
	bool job_task = kind && strcmp(kind, "job_task") == 0;

	if (!ptid && !job_task)
		ptid = objid ? xstrdup(objid) : NULL;
	sb_init(&s->lines);
	s->new_stage = json_get_str(event, "new_stage");
	if (job_task)
		s->title = xasprintf("%s / %s (%s #%s): %s", stage_name ? stage_name : "?",
							 task_name ? task_name : "?", pipeline ? pipeline : "pipeline",
							 ptid ? ptid : "?", new_stage ? new_stage : "?");
	else
		s->title = xasprintf("%s #%s: %s", pipeline ? pipeline : "pipeline", ptid ? ptid : "?",
							 new_stage ? new_stage : "?");

	if (user)
		add_line(s, "For", user);
	buf = pipeline ? xasprintf("%s #%s", pipeline, ptid ? ptid : "?") : NULL;
	add_line(s, "Pipeline", buf);
	free(buf);
	if (job_task)
	{
		buf = xasprintf("%s / %s%s%s%s", stage_name ? stage_name : "?", task_name ? task_name : "?",
						job ? " (job " : "", job ? job : "", job ? ")" : "");
		add_line(s, "Task", buf);
		free(buf);
	}
	buf = xasprintf("%s → %s", old_stage ? old_stage : "none", new_stage ? new_stage : "?");
	add_line(s, "Stage", buf);
	free(buf);
	add_line(s, "Message", message);
	add_line(s, "Run by", run_by);
	add_line(s, "At", at);

	free(pipeline);
	free(stage_name);
	free(task_name);
	free(job);
	free(message);
	free(run_by);
	free(old_stage);
	free(new_stage);
	free(at);
	free(ptid);
	free(objid);
}

static void
summary_free(summary *s)
{
	free(s->title);
	sb_free(&s->lines);
}

static const char *
feishu_colour(const char *stage)
{
	if (!stage)
		return "blue";
	if (strcmp(stage, "succeeded") == 0)
		return "green";
	if (strcmp(stage, "failed") == 0)
		return "red";
	if (strcmp(stage, "canceled") == 0 || strcmp(stage, "skipped") == 0)
		return "grey";
	return "blue";
}

static const char *
wecom_colour(const char *stage)
{
	if (!stage)
		return "comment";
	if (strcmp(stage, "succeeded") == 0)
		return "info";
	if (strcmp(stage, "failed") == 0)
		return "warning";
	return "comment";
}

/*
 * The body of a delivery.  event_json is the event row as JSON text (valid:
 * it comes from the server), event its parse.  secret may be NULL.  For a
 * signed DingTalk robot the URL gets timestamp and sign: *url_out is then a
 * new string (else NULL).
 */
static void
render_body(strbuf *body, robot_kind robot, const char *kind, const json_value *target,
			const char *event_json, const json_value *event, const char *delivery_id,
			const char *secret, const char *url, char **url_out)
{
	summary s;
	const char *user = json_get_str(target, "user");
	strbuf text;

	*url_out = NULL;
	sb_reset(body);
	if (robot == ROBOT_NONE)
	{
		sb_puts(body, "{\"event\":");
		sb_puts(body, event_json);
		sb_printf(body, ",\"delivery_id\":%s", delivery_id);
		if (kind && strcmp(kind, "mention") == 0 && user)
		{
			sb_puts(body, ",\"mention\":");
			json_write_cstr(body, user);
		}
		sb_putc(body, '}');
		return;
	}

	summarize(event, (kind && strcmp(kind, "mention") == 0) ? user : NULL, &s);
	sb_init(&text);
	if (robot == ROBOT_FEISHU)
	{
		sb_puts(&text, sb_str(&s.lines));
		if (kind && strcmp(kind, "mention") == 0 && user)
		{
			sb_puts(&text, "\n<at id=");
			sb_puts(&text, user);
			sb_puts(&text, "></at>");
		}
		sb_puts(body, "{\"msg_type\":\"interactive\"");
		if (secret && *secret)
		{
			/* Feishu: sign = base64(HMAC-SHA256(key = timestamp "\n" secret, "")) */
			char ts[32], sig[45];
			char *key;

			snprintf(ts, sizeof(ts), "%lld", (long long) wall_now());
			key = xasprintf("%s\n%s", ts, secret);
			hmac_sha256_base64(key, strlen(key), "", 0, sig);
			free(key);
			sb_printf(body, ",\"timestamp\":\"%s\",\"sign\":", ts);
			json_write_cstr(body, sig);
		}
		sb_puts(body, ",\"card\":{\"config\":{\"wide_screen_mode\":true},\"header\":{\"template\":");
		json_write_cstr(body, feishu_colour(s.new_stage));
		sb_puts(body, ",\"title\":{\"tag\":\"plain_text\",\"content\":");
		json_write_cstr(body, s.title);
		sb_puts(body, "}},\"elements\":[{\"tag\":\"div\",\"text\":{\"tag\":\"lark_md\",\"content\":");
		json_write_cstr(body, sb_str(&text));
		sb_puts(body, "}}]}}");
	}
	else if (robot == ROBOT_DINGTALK)
	{
		sb_printf(&text, "#### %s\n\n", s.title);
		/* DingTalk markdown needs a blank line or two spaces for a line break */
		for (const char *p = sb_str(&s.lines); *p; p++)
		{
			if (*p == '\n')
				sb_puts(&text, "  \n");
			else
				sb_putc(&text, *p);
		}
		if (kind && strcmp(kind, "mention") == 0 && user)
		{
			sb_puts(&text, "  \n@");
			sb_puts(&text, user);
		}
		sb_puts(body, "{\"msgtype\":\"markdown\",\"markdown\":{\"title\":");
		json_write_cstr(body, s.title);
		sb_puts(body, ",\"text\":");
		json_write_cstr(body, sb_str(&text));
		sb_puts(body, "}");
		if (kind && strcmp(kind, "mention") == 0 && user)
		{
			sb_puts(body, ",\"at\":{\"atUserIds\":[");
			json_write_cstr(body, user);
			sb_puts(body, "],\"isAtAll\":false}");
		}
		sb_puts(body, "}");
		if (secret && *secret && url)
		{
			/* DingTalk: &timestamp=<ms>&sign=urlencode(base64(HMAC-SHA256(secret, ts "\n" secret))) */
			char ts[32], sig[45];
			char *msg, *esc;

			snprintf(ts, sizeof(ts), "%lld", (long long) (wall_now() * 1000.0));
			msg = xasprintf("%s\n%s", ts, secret);
			hmac_sha256_base64(secret, strlen(secret), msg, strlen(msg), sig);
			free(msg);
			esc = curl_easy_escape(NULL, sig, 0);
			*url_out = xasprintf("%s%ctimestamp=%s&sign=%s", url, strchr(url, '?') ? '&' : '?', ts,
								 esc ? esc : "");
			curl_free(esc);
		}
	}
	else						/* ROBOT_WECOM */
	{
		sb_printf(&text, "**%s**\n", s.title);
		sb_printf(&text, "<font color=\"%s\">%s</font>\n", wecom_colour(s.new_stage),
				  s.new_stage ? s.new_stage : "?");
		for (const char *p = sb_str(&s.lines); *p;)
		{
			const char *nl = strchr(p, '\n');
			size_t n = nl ? (size_t) (nl - p) : strlen(p);

			sb_puts(&text, "> ");
			sb_append(&text, p, n);
			sb_putc(&text, '\n');
			p += n + (nl ? 1 : 0);
		}
		if (kind && strcmp(kind, "mention") == 0 && user)
		{
			sb_puts(&text, "<@");
			sb_puts(&text, user);
			sb_puts(&text, ">");
		}
		sb_puts(body, "{\"msgtype\":\"markdown\",\"markdown\":{\"content\":");
		json_write_cstr(body, sb_str(&text));
		sb_puts(body, "}}");
	}
	sb_free(&text);
	summary_free(&s);
}

/* whether a robot accepted the message: it answers 200 with an error code in JSON */
static bool
robot_accepted(robot_kind robot, const char *resp, size_t len)
{
	json_value *v;
	double code = -1;
	bool ok = false;

	if (robot == ROBOT_NONE)
		return true;
	v = json_parse(resp, len, NULL, 0);
	if (!v)
		return false;
	if (robot == ROBOT_FEISHU)
		ok = (json_get_number(v, "code", &code) && code == 0) ||
			(json_get_number(v, "StatusCode", &code) && code == 0);
	else
		ok = json_get_number(v, "errcode", &code) && code == 0;
	json_free(v);
	return ok;
}

/* ------------------------------------------------------- the event to send */

/*
 * The event of a delivery as JSON text (the pipeline.event row with its
 * payload), or NULL with err filled.  This is the one place that knows where
 * a delivery's content comes from:
 *   1. a column "event" (jsonb) of the claimed row, if the server returns it;
 *   2. else the row of pipeline.event, read by event_id;
 * and a column "body" (jsonb), if present and not null, replaces the payload
 * (the server may render a snapshot meant for hooks there).
 */
static char *
delivery_event_json(hookd *h, PGresult *res, int row, db_error *err)
{
	const char *event = db_value(res, row, db_col(res, "event"));
	const char *event_id = db_value(res, row, db_col(res, "event_id"));
	char *text = NULL;

	if (event)
		text = xstrdup(event);
	else if (event_id)
	{
		const char *params[1] = {event_id};
		PGresult *r = db_query(&h->db, "SELECT to_jsonb(e) FROM pipeline.event e WHERE e.id = $1::bigint",
							   1, params, err);

		if (!r)
			return NULL;
		if (PQntuples(r) == 0 || !db_value(r, 0, 0))
		{
			snprintf(err->sqlstate, sizeof(err->sqlstate), "P0002");
			snprintf(err->message, sizeof(err->message), "event %s not found", event_id);
			err->conn_lost = false;
			PQclear(r);
			return NULL;
		}
		text = xstrdup(db_value(r, 0, 0));
		PQclear(r);
	}
	else
	{
		snprintf(err->sqlstate, sizeof(err->sqlstate), "P0002");
		snprintf(err->message, sizeof(err->message), "delivery has no event");
		err->conn_lost = false;
		return NULL;
	}

	return text;
}

/* ---------------------------------------------------------------- sending */

static size_t
on_response(char *data, size_t size, size_t nmemb, void *arg)
{
	delivery *d = arg;
	size_t n = size * nmemb;

	if (d->resp.len < RESPONSE_MAX)
		sb_append(&d->resp, data, n > RESPONSE_MAX - d->resp.len ? RESPONSE_MAX - d->resp.len : n);
	return n;					/* the rest is read and dropped */
}

static void
delivery_free(delivery *d)
{
	free(d->kind);
	free(d->event_label);
	free(d->where);
	if (d->easy)
		curl_easy_cleanup(d->easy);
	curl_slist_free_all(d->headers);
	free(d->url);
	sb_free(&d->body);
	sb_free(&d->resp);
	free(d->response);
	free(d);
}

static bool
header_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c <= 32 || c >= 127 || c == ':')
			return false;
	}
	return true;
}

static bool
header_value_ok(const char *s)
{
	for (; *s; s++)
		if (*s == '\r' || *s == '\n')
			return false;
	return true;
}

static bool
reserved_header(const char *name)
{
	return strncasecmp(name, "X-Pipeline-", 11) == 0 || strcasecmp(name, "Content-Length") == 0 ||
		strcasecmp(name, "Host") == 0 || strcasecmp(name, "Transfer-Encoding") == 0;
}

static struct curl_slist *
add_header(struct curl_slist *list, const char *name, const char *value)
{
	char *line = *value ? xasprintf("%s: %s", name, value) : xasprintf("%s:", name);
	struct curl_slist *n = curl_slist_append(list, line);

	free(line);
	if (!n)
	{
		log_error("out of memory building headers");
		return list;
	}
	return n;
}

/* the target's own headers: {"Name": "value"} or ["Name: value", ...] */
static struct curl_slist *
add_target_headers(delivery *d, struct curl_slist *list, const json_value *headers,
				   bool *has_ct, bool *has_ua)
{
	if (!headers)
		return list;
	if (headers->type == JSON_OBJECT)
	{
		for (size_t i = 0; i < headers->u.object.count; i++)
		{
			const json_member *m = &headers->u.object.members[i];
			const char *v = json_scalar_text(m->value);

			if (!v || strlen(m->key) != m->key_len || !header_name_ok(m->key) || !header_value_ok(v) ||
				strlen(v) > 8192)
			{
				log_warn("delivery %s: header \"%.60s\" skipped (bad name or value)", d->idstr, m->key);
				continue;
			}
			if (reserved_header(m->key))
				continue;
			if (strcasecmp(m->key, "Content-Type") == 0)
				*has_ct = true;
			if (strcasecmp(m->key, "User-Agent") == 0)
				*has_ua = true;
			list = add_header(list, m->key, v);
		}
	}
	else if (headers->type == JSON_ARRAY)
	{
		for (size_t i = 0; i < headers->u.array.count; i++)
		{
			const json_value *it = headers->u.array.items[i];
			const char *line = it->type == JSON_STRING ? it->u.string.str : NULL;
			const char *colon = line ? strchr(line, ':') : NULL;
			char *name;

			if (!colon || strlen(line) != it->u.string.len || !header_value_ok(line) || strlen(line) > 8192)
				continue;
			name = xstrndup(line, (size_t) (colon - line));
			if (header_name_ok(name) && !reserved_header(name))
			{
				const char *v = colon + 1;

				while (*v == ' ')
					v++;
				if (strcasecmp(name, "Content-Type") == 0)
					*has_ct = true;
				if (strcasecmp(name, "User-Agent") == 0)
					*has_ua = true;
				list = add_header(list, name, v);
			}
			free(name);
		}
	}
	return list;
}

static char *
url_origin(const char *url)
{
	const char *p = strstr(url, "://");
	size_t n;

	if (!p)
		return xstrdup("?");
	n = (size_t) (p + 3 - url) + strcspn(p + 3, "/?#");
	/* drop user info */
	char *o = xstrndup(url, n);
	char *at = strrchr(o, '@');

	if (at)
	{
		char *r = xasprintf("%.*s%s", (int) (p + 3 - url), url, at + 1);

		free(o);
		return r;
	}
	return o;
}

static void
finish_now(hookd *h, delivery *d, bool success, long http_code, const char *response)
{
	d->success = success;
	d->http_code = http_code;
	free(d->response);
	d->response = xstrdup(response ? response : "");
	d->cost_ms = (long) ((mono_now() - d->started) * 1000.0 + 0.5);
	d->state = D_COMPLETING;
	d->next_try = 0;
	(void) h;
}

/* builds and starts one delivery from a claimed row */
static void
start_delivery(hookd *h, PGresult *res, int row)
{
	const char *id = db_value(res, row, db_col(res, "id"));
	const char *kind = db_value(res, row, db_col(res, "kind"));
	const char *target_text = db_value(res, row, db_col(res, "target"));
	json_value *target = NULL, *event = NULL;
	char *event_json = NULL;
	const char *url, *secret, *robot_opt;
	const char *ekind, *estage;
	char *signed_url = NULL;
	bool has_ct = false, has_ua = false;
	struct curl_slist *hl = NULL;
	db_error err;
	delivery *d;
	int64_t idv;
	char hex[65];

	if (!id || !parse_positive_id(id, &idv))
	{
		log_error("claimed a delivery without a valid id; ignored");
		return;
	}
	d = xcalloc(1, sizeof(delivery));
	d->id = idv;
	snprintf(d->idstr, sizeof(d->idstr), "%lld", (long long) idv);
	d->kind = xstrdup(kind ? kind : "webhook");
	d->started = mono_now();
	backoff_init(&d->bo, 0.5, 30.0);
	sb_init(&d->body);
	sb_init(&d->resp);
	d->next = h->list;
	h->list = d;

	target = target_text ? json_parse(target_text, strlen(target_text), NULL, 0) : NULL;
	if (!target || target->type != JSON_OBJECT)
	{
		log_warn("delivery %s: target is not a JSON object", d->idstr);
		finish_now(h, d, false, 0, "invalid target");
		goto out;
	}
	url = json_get_str(target, "url");
	secret = json_get_str(target, "secret");
	robot_opt = json_get_str(target, "robot");

	if (strcmp(d->kind, "mention") == 0 && (!url || !*url))
	{
		log_info("delivery %s (mention of %s): no transport configured; marked done", d->idstr,
				 json_get_str(target, "user") ? json_get_str(target, "user") : "?");
		finish_now(h, d, true, 0, "no transport");
		goto out;
	}
	if (!url || !(strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0))
	{
		log_warn("delivery %s: target has no http(s) url", d->idstr);
		finish_now(h, d, false, 0, "target has no http or https url");
		goto out;
	}
	d->where = url_origin(url);

	event_json = delivery_event_json(h, res, row, &err);
	if (!event_json)
	{
		if (db_error_transient(&err))
		{
			/* cannot build it now: leave it; the lease runs out and it is claimed again */
			log_warn("delivery %s: cannot read its event (%s); left for a later claim", d->idstr, err.message);
			d->state = D_DONE;
			goto out;
		}
		log_warn("delivery %s: %s", d->idstr, err.message);
		finish_now(h, d, false, 0, err.message);
		goto out;
	}
	event = json_parse(event_json, strlen(event_json), NULL, 0);
	if (!event || event->type != JSON_OBJECT)
	{
		log_warn("delivery %s: its event is not a JSON object", d->idstr);
		finish_now(h, d, false, 0, "invalid event");
		goto out;
	}
	ekind = json_get_str(event, "kind");
	estage = json_get_str(event, "new_stage");
	d->event_label = xasprintf("%s.%s", ekind ? ekind : "event", estage ? estage : "unknown");

	/* the format */
	if (robot_opt && *robot_opt)
		d->robot = robot_from_name(robot_opt);	/* "generic" or unknown -> generic JSON */
	else if (strcmp(d->kind, "webhook") != 0)
		d->robot = robot_from_url(url);
	else
		d->robot = ROBOT_NONE;

	render_body(&d->body, d->robot, d->kind, target, event_json, event, d->idstr, secret, url, &signed_url);
	d->url = signed_url ? signed_url : xstrdup(url);

	/* headers */
	hl = add_target_headers(d, hl, json_get(target, "headers"), &has_ct, &has_ua);
	if (!has_ct)
		hl = add_header(hl, "Content-Type", "application/json; charset=utf-8");
	if (!has_ua)
		hl = add_header(hl, "User-Agent", PCTL_NAME "/" PCTL_VERSION);
	hl = add_header(hl, "X-Pipeline-Event", d->event_label);
	hl = add_header(hl, "X-Pipeline-Delivery", d->idstr);
	if (secret && *secret)
	{
		char *v;

		hmac_sha256_hex(secret, strlen(secret), sb_str(&d->body), d->body.len, hex);
		v = xasprintf("sha256=%s", hex);
		hl = add_header(hl, "X-Pipeline-Signature", v);
		free(v);
	}
	hl = add_header(hl, "Expect", "");	/* "Expect:" - no 100-continue round trip */
	d->headers = hl;

	d->easy = curl_easy_init();
	if (!d->easy)
	{
		finish_now(h, d, false, 0, "cannot create an HTTP handle");
		goto out;
	}
	curl_easy_setopt(d->easy, CURLOPT_URL, d->url);
	curl_easy_setopt(d->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(d->easy, CURLOPT_POSTFIELDS, sb_str(&d->body));
	curl_easy_setopt(d->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) d->body.len);
	curl_easy_setopt(d->easy, CURLOPT_HTTPHEADER, d->headers);
	curl_easy_setopt(d->easy, CURLOPT_WRITEFUNCTION, on_response);
	curl_easy_setopt(d->easy, CURLOPT_WRITEDATA, d);
	curl_easy_setopt(d->easy, CURLOPT_ERRORBUFFER, d->errbuf);
	curl_easy_setopt(d->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(d->easy, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(d->easy, CURLOPT_TIMEOUT_MS, TOTAL_TIMEOUT_MS);
	curl_easy_setopt(d->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(d->easy, CURLOPT_PRIVATE, d);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(d->easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(d->easy, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	if (curl_multi_add_handle(h->multi, d->easy) != CURLM_OK)
	{
		finish_now(h, d, false, 0, "cannot start the HTTP request");
		goto out;
	}
	d->state = D_SENDING;
	h->sending++;
	log_info("delivery %s (%s, %s, %s): sending to %s", d->idstr, d->kind, robot_name(d->robot),
			 d->event_label, d->where);
out:
	free(event_json);
	json_free(event);
	json_free(target);
}

/* a transfer ended: decide the result */
static void
transfer_done(hookd *h, CURL *easy, CURLcode code)
{
	delivery *d = NULL;
	long status = 0;
	strbuf resp;
	bool ok;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &d);
	curl_multi_remove_handle(h->multi, easy);
	if (!d)
	{
		curl_easy_cleanup(easy);
		return;
	}
	h->sending--;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	sb_init(&resp);
	if (code != CURLE_OK)
	{
		sb_printf(&resp, "%s", d->errbuf[0] ? d->errbuf : curl_easy_strerror(code));
		ok = false;
	}
	else
	{
		/* the response as text: cut at a character, invalid bytes repaired */
		size_t n = utf8_cut(sb_str(&d->resp), d->resp.len);

		utf8_repair(&resp, sb_str(&d->resp), n, true);
		ok = status >= 200 && status < 300 && robot_accepted(d->robot, sb_str(&d->resp), d->resp.len);
	}
	finish_now(h, d, ok, code == CURLE_OK ? status : 0, sb_str(&resp));
	sb_free(&resp);
	curl_easy_cleanup(d->easy);
	d->easy = NULL;
	if (ok)
		log_info("delivery %s: delivered to %s (HTTP %ld, %ld ms)", d->idstr, d->where, status, d->cost_ms);
	else if (code != CURLE_OK)
		log_warn("delivery %s: failed to reach %s after %ld ms: %s", d->idstr, d->where, d->cost_ms,
				 d->response);
	else
	{
		char *r = xstrndup(d->response, 200);

		oneline(r);
		log_warn("delivery %s: %s refused it (HTTP %ld, %ld ms): %s", d->idstr, d->where, status,
				 d->cost_ms, r);
		free(r);
	}
}

static void
complete(hookd *h, delivery *d, double now)
{
	const char *params[5];
	char code[16], cost[24];
	db_error err;
	PGresult *res;

	if (!db_connected(&h->db))
	{
		if (h->handled_terms >= 2)
		{
			log_warn("delivery %s: result not recorded (stopping, database unreachable)", d->idstr);
			d->state = D_DONE;
		}
		return;
	}
	if (now < d->next_try)
		return;
	snprintf(code, sizeof(code), "%ld", d->http_code);
	snprintf(cost, sizeof(cost), "%ld", d->cost_ms < 0 ? 0 : (d->cost_ms > 2000000000L ? 2000000000L : d->cost_ms));
	params[0] = d->idstr;
	params[1] = d->success ? "true" : "false";
	params[2] = d->http_code > 0 ? code : NULL;
	params[3] = d->response;
	params[4] = cost;
	res = db_query(&h->db,
				   "SELECT pipeline.complete_hook_delivery($1::bigint, $2::boolean, $3::int, $4::text, $5::int)",
				   5, params, &err);
	if (res)
	{
		PQclear(res);
		d->state = D_DONE;
		h->next_claim = now;	/* room for the next one */
		return;
	}
	if (db_error_transient(&err))
	{
		if (h->stopping && h->handled_terms >= 2)
		{
			log_warn("delivery %s: result not recorded (stopping): %s", d->idstr, err.message);
			d->state = D_DONE;
			return;
		}
		d->next_try = now + backoff_next(&d->bo);
		return;
	}
	if (++d->tries >= 3)
	{
		log_error("delivery %s: cannot record the result (%s: %s); giving up", d->idstr, err.sqlstate,
				  err.message);
		d->state = D_DONE;
		return;
	}
	log_warn("delivery %s: cannot record the result (%s: %s); will retry", d->idstr, err.sqlstate, err.message);
	d->next_try = now + backoff_next(&d->bo);
}

static bool
anything_pending(hookd *h)
{
	for (delivery *d = h->list; d; d = d->next)
		if (d->state != D_DONE)
			return true;
	return false;
}

static void
claim(hookd *h, double now)
{
	int room = h->concurrency - h->sending;
	char maxbuf[16];
	char leasebuf[16];
	const char *params[3];
	db_error err;
	PGresult *res;
	int n;

	h->last_claim = now;
	h->next_claim = now + h->poll_interval;
	if (room <= 0)
		return;
	snprintf(maxbuf, sizeof(maxbuf), "%d", room);
	snprintf(leasebuf, sizeof(leasebuf), "%d", h->lease);
	params[0] = h->name;
	params[1] = maxbuf;
	params[2] = leasebuf;
	res = db_query(&h->db,
				   "SELECT * FROM pipeline.claim_hook_deliveries($1::text, $2::int,"
				   " make_interval(secs => $3::int))",
				   3, params, &err);
	if (!res)
	{
		if (!db_error_transient(&err) &&
			(strncmp(err.message, h->last_claim_error, 200) != 0 || now - h->last_claim_error_at > 300))
		{
			log_error("cannot claim hook deliveries (%s: %s)", err.sqlstate, err.message);
			snprintf(h->last_claim_error, sizeof(h->last_claim_error), "%.200s", err.message);
			h->last_claim_error_at = now;
		}
		return;
	}
	h->last_claim_error[0] = '\0';
	n = PQntuples(res);
	for (int i = 0; i < n; i++)
		start_delivery(h, res, i);
	PQclear(res);
	h->idle_after_claim = (n == 0 && !anything_pending(h));
	if (n == room)
		h->next_claim = now;	/* there may be more */
}

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

		if (db_ensure(&h->db, now) && h->db.notifications != h->seen_notifications)
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
		if (!h->stopping && db_connected(&h->db) && now >= h->next_claim && h->sending < h->concurrency)
			claim(h, now);

		mc = curl_multi_perform(h->multi, &running);
		if (mc != CURLM_OK)
			log_error("curl_multi_perform: %s", curl_multi_strerror(mc));
		while ((m = curl_multi_info_read(h->multi, &msgs)) != NULL)
			if (m->msg == CURLMSG_DONE)
				transfer_done(h, m->easy_handle, m->data.result);

		/* completions of what just finished: right away, not after the next wait */
		now = mono_now();
		for (delivery *d = h->list; d; d = d->next)
			if (d->state == D_COMPLETING && d->next_try <= now)
				complete(h, d, now);
		reap_done(h);

		if (h->stopping && !anything_pending(h))
		{
			log_info("stopped");
			return 0;
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
				if (d->state == D_COMPLETING && d->next_try < wake)
					wake = d->next_try;
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
			"  -d, --dbname CONNINFO     database connection string (default: PG* environment)\n"
			"  -v, --verbose             debug logging\n"
			"  -h, --help                show this help\n"
			"\n"
			"Each POST carries X-Pipeline-Event (<kind>.<stage>), X-Pipeline-Delivery (<id>)\n"
			"and, with a secret, X-Pipeline-Signature: sha256=<hex HMAC-SHA256 of the body>\n"
			"(check one with: pipelinectl sign SECRET < body).  A target's \"robot\" key\n"
			"(feishu, dingtalk, wecom, generic) overrides the format chosen from its URL.\n"
			"SIGTERM/SIGINT: finish the sends in flight, record them and exit.\n");
}

int
cmd_hookd(int argc, char **argv, const char *conninfo)
{
	static const struct option opts[] = {
		{"name", required_argument, NULL, 'n'},
		{"concurrency", required_argument, NULL, 'c'},
		{"poll-interval", required_argument, NULL, 'p'},
		{"lease", required_argument, NULL, 'L'},
		{"exit-when-idle", no_argument, NULL, 'x'},
		{"dbname", required_argument, NULL, 'd'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	hookd h;
	const char *name = NULL;
	int c, rc;

	memset(&h, 0, sizeof(h));
	h.concurrency = 4;
	h.poll_interval = 2.0;
	h.lease = 60;
	optind = 1;
	opterr = 1;
	while ((c = getopt_long(argc, argv, "n:c:d:vh", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'n':
				name = optarg;
				break;
			case 'c':
				if (!parse_int_range(optarg, 1, 1000, &h.concurrency))
				{
					fprintf(stderr, "pipelinectl hookd: --concurrency must be an integer from 1 to 1000\n");
					return EXIT_USAGE;
				}
				break;
			case 'p':
				if (!parse_seconds(optarg, 0.05, 86400, &h.poll_interval))
				{
					fprintf(stderr, "pipelinectl hookd: --poll-interval must be a number of seconds from 0.05 to 86400\n");
					return EXIT_USAGE;
				}
				break;
			case 'L':
				/* longer than a send can take (15 s), or a slow send could go out twice */
				if (!parse_int_range(optarg, 20, 86400, &h.lease))
				{
					fprintf(stderr, "pipelinectl hookd: --lease must be an integer number of seconds from 20 to 86400\n");
					return EXIT_USAGE;
				}
				break;
			case 'x':
				h.exit_when_idle = true;
				break;
			case 'd':
				conninfo = optarg;
				break;
			case 'v':
				log_set_verbose(true);
				break;
			case 'h':
				hookd_usage(stdout);
				return 0;
			default:
				hookd_usage(stderr);
				return EXIT_USAGE;
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "pipelinectl hookd: unexpected argument \"%s\"\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (name && !*name)
	{
		fprintf(stderr, "pipelinectl hookd: --name must not be empty\n");
		return EXIT_USAGE;
	}
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
	db_init(&h.db, conninfo, "pipeline_events");
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
