/*
 * serve/html.c: HTML output of the dashboard.
 *
 * html_esc() is the one way a value reaches a page: names, messages, log
 * lines and role names are user input.  It escapes the five characters that
 * matter in text and in quoted attributes (& < > " '), and it repairs
 * invalid UTF-8.  Markup written by the pages is literal; nothing else is
 * appended raw.  The frame has an inline stylesheet and no external asset:
 * the dashboard works without the internet.
 *
 * Locking: none.
 */
#define _GNU_SOURCE
#include "serve.h"

#include <string.h>

void
html_esc(strbuf *sb, const char *s)
{
	strbuf fixed;

	if (!s)
		return;
	sb_init(&fixed);
	utf8_repair(&fixed, s, strlen(s), true);
	for (const char *p = sb_str(&fixed); *p; p++)
	{
		switch (*p)
		{
			case '&':
				sb_puts(sb, "&amp;");
				break;
			case '<':
				sb_puts(sb, "&lt;");
				break;
			case '>':
				sb_puts(sb, "&gt;");
				break;
			case '"':
				sb_puts(sb, "&quot;");
				break;
			case '\'':
				sb_puts(sb, "&#39;");
				break;
			default:
				sb_putc(sb, *p);
		}
	}
	sb_free(&fixed);
}

void
url_esc(strbuf *sb, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *) (s ? s : ""); *p; p++)
	{
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			*p == '-' || *p == '_' || *p == '.' || *p == '~')
			sb_putc(sb, (char) *p);
		else
		{
			sb_putc(sb, '%');
			sb_putc(sb, hex[*p >> 4]);
			sb_putc(sb, hex[*p & 15]);
		}
	}
}

/* fill colour of a stage (graph boxes, badges) */
const char *
stage_colour(const char *stage)
{
	static const struct
	{
		const char *stage;
		const char *colour;
	} c[] = {
		{"pending", "#d0d4da"}, {"scheduling", "#f6d365"}, {"creating", "#9ec5fe"},
		{"active", "#5b9bf0"}, {"canceling", "#f0a35b"}, {"canceled", "#b0b0b0"},
		{"failed", "#e5534b"}, {"succeeded", "#57ab5a"}, {"skipped", "#e8e8e8"},
	};

	for (size_t i = 0; stage && i < ARRAY_LEN(c); i++)
		if (strcmp(stage, c[i].stage) == 0)
			return c[i].colour;
	return "#ffffff";
}

static const char style[] =
	"body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}"
	"header{background:#24292f;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}"
	"header a{color:#fff;text-decoration:none;font-weight:600}"
	"header .who{margin-left:auto;font-size:13px}"
	"header form{display:inline}"
	"main{padding:16px}"
	"table{border-collapse:collapse;background:#fff;margin:8px 0}"
	"th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}"
	"th{background:#eaeef2}"
	".badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;border:1px solid #8888}"
	".msg{padding:8px 12px;margin:8px 0;border-radius:6px;border:1px solid}"
	".msg.error{background:#ffebe9;border-color:#e5534b}"
	".msg.info{background:#ddf4ff;border-color:#54aeff}"
	"pre.log{background:#0d1117;color:#e6edf3;padding:12px;overflow:auto;max-height:70vh;white-space:pre-wrap}"
	"form.inline{display:inline}"
	"button{cursor:pointer}"
	"svg text{font:12px system-ui,sans-serif}"
	".live{font-size:12px;color:#57606a}";

void
page_begin(request *r, const char *title)
{
	strbuf *sb = &r->out;

	sb_puts(sb, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
			"<meta name=\"viewport\" content=\"width=device-width\"><title>");
	html_esc(sb, title);
	sb_puts(sb, " · pipeline</title><style>");
	sb_puts(sb, style);
	sb_puts(sb, "</style></head><body><header><a href=\"/\">pipeline</a><a href=\"/\">Runs</a>"
			"<span class=\"who\">");
	if (r->role)
	{
		sb_puts(sb, "signed in as <b id=\"whoami\">");
		html_esc(sb, r->role);
		sb_puts(sb, "</b> <form method=\"post\" action=\"/logout\">");
		csrf_field(r);
		sb_puts(sb, "<button type=\"submit\">Sign out</button></form>");
	}
	else if (g_serve.read_only_role)
	{
		sb_puts(sb, "read-only as <b id=\"whoami\">");
		html_esc(sb, g_serve.read_only_role);
		sb_puts(sb, "</b>");
		if (g_serve.login)
			sb_puts(sb, " · <a href=\"/login\">Sign in</a>");
	}
	sb_puts(sb, "</span></header><main>\n<h1>");
	html_esc(sb, title);
	sb_puts(sb, "</h1>\n");
}

void
page_end(request *r)
{
	sb_puts(&r->out, "</main></body></html>\n");
}

void
page_message(request *r, const char *kind, const char *text)
{
	sb_puts(&r->out, "<div class=\"msg ");
	html_esc(&r->out, kind);
	sb_puts(&r->out, "\" id=\"message\">");
	html_esc(&r->out, text);
	sb_puts(&r->out, "</div>\n");
}

void
csrf_field(request *r)
{
	sb_puts(&r->out, "<input type=\"hidden\" name=\"csrf\" value=\"");
	html_esc(&r->out, r->csrf);
	sb_puts(&r->out, "\">");
}
