/*
 * hookd/render.c: what a delivery says: the generic webhook body, and the
 * messages of Feishu / Lark, DingTalk and WeCom robots (a title and
 * "**Key:** value" lines summarising the event), with the robots' own
 * signing; and whether a robot's answer means it accepted the message.
 *
 * Locking: none.
 */
#define _GNU_SOURCE
#include "hookd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

const char *
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
field_text(const json_t *obj, const char *key)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
	strbuf sb;
	char *r = NULL;

	sb_init(&sb);
	if (pj_scalar_text(v, &sb) && sb.len > 0)
		r = short_text(sb_str(&sb), TEXT_FIELD_MAX);
	sb_free(&sb);
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
summarize(const json_t *event, const char *user, summary *s)
{
	const json_t *payload = json_object_get(event, "payload");
	const char *kind = pj_get_str(event, "kind");
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
	s->new_stage = pj_get_str(event, "new_stage");
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
void
render_body(strbuf *body, robot_kind robot, const char *kind, const json_t *target,
			const char *event_json, const json_t *event, const char *delivery_id,
			const char *secret, const char *url, char **url_out)
{
	summary s;
	const char *user = pj_get_str(target, "user");
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
bool
robot_accepted(robot_kind robot, const char *resp, size_t len)
{
	json_t *v;
	double code = -1;
	bool ok = false;

	if (robot == ROBOT_NONE)
		return true;
	v = pj_parse(resp, len, NULL, 0);
	if (!v)
		return false;
	if (robot == ROBOT_FEISHU)
		ok = (pj_get_number(v, "code", &code) && code == 0) ||
			(pj_get_number(v, "StatusCode", &code) && code == 0);
	else
		ok = pj_get_number(v, "errcode", &code) && code == 0;
	json_decref(v);
	return ok;
}
