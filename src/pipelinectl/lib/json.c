/*
 * lib/json.c: see json.h.
 */
#define _GNU_SOURCE
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *
pj_parse(const char *text, size_t len, char *err, size_t errlen)
{
	json_error_t je;
	json_t *v;

	if (!text)
	{
		if (err && errlen)
			snprintf(err, errlen, "no text");
		return NULL;
	}
	v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	if (!v && json_error_code(&je) == json_error_numeric_overflow)
		v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &je);
	if (!v && err && errlen)
		snprintf(err, errlen, "%s (line %d, column %d)", je.text, je.line, je.column);
	return v;
}

const char *
pj_get_str(const json_t *obj, const char *key)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return json_is_string(v) ? json_string_value(v) : NULL;
}

bool
pj_get_number(const json_t *obj, const char *key, double *out)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	if (json_is_number(v) && isfinite(json_number_value(v)))
	{
		*out = json_number_value(v);
		return true;
	}
	if (json_is_string(v) && json_string_length(v) > 0)
	{
		const char *s = json_string_value(v);
		char *end;
		double d;

		errno = 0;
		d = strtod(s, &end);
		if (errno == 0 && *end == '\0' && isfinite(d))
		{
			*out = d;
			return true;
		}
	}
	return false;
}

bool
pj_get_bool(const json_t *obj, const char *key, bool *out)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	if (!json_is_boolean(v))
		return false;
	*out = json_is_true(v);
	return true;
}

/* a real as the shortest text that reads back the same */
static void
put_real(strbuf *sb, double d)
{
	char buf[64];

	for (int prec = 1; prec <= 17; prec++)
	{
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	sb_puts(sb, buf);
}

bool
pj_scalar_text(const json_t *v, strbuf *out)
{
	if (json_is_string(v))
		sb_append(out, json_string_value(v), strnlen(json_string_value(v), json_string_length(v)));
	else if (json_is_integer(v))
		sb_printf(out, "%lld", (long long) json_integer_value(v));
	else if (json_is_real(v))
		put_real(out, json_real_value(v));
	else if (json_is_boolean(v))
		sb_puts(out, json_is_true(v) ? "true" : "false");
	else
		return false;
	return true;
}

void
pj_write(strbuf *sb, const json_t *v)
{
	char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER) : NULL;

	sb_puts(sb, s ? s : "null");
	free(s);
}

/* ---------------------------------------------------------------- writing */

void
json_write_string(strbuf *sb, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	strbuf clean;
	size_t run = 0;

	/* repair invalid UTF-8 first: the result must be valid JSON text */
	sb_init(&clean);
	utf8_repair(&clean, s, len, true);
	s = sb_str(&clean);
	len = clean.len;

	sb_reserve(sb, len + 2);
	sb_putc(sb, '"');
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];
		const char *esc = NULL;
		char ubuf[7];

		if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7F)
			continue;
		sb_append(sb, s + run, i - run);
		switch (c)
		{
			case '"':
				esc = "\\\"";
				break;
			case '\\':
				esc = "\\\\";
				break;
			case '\n':
				esc = "\\n";
				break;
			case '\r':
				esc = "\\r";
				break;
			case '\t':
				esc = "\\t";
				break;
			case '\b':
				esc = "\\b";
				break;
			case '\f':
				esc = "\\f";
				break;
			default:
				ubuf[0] = '\\';
				ubuf[1] = 'u';
				ubuf[2] = '0';
				ubuf[3] = '0';
				ubuf[4] = hex[c >> 4];
				ubuf[5] = hex[c & 15];
				ubuf[6] = '\0';
				esc = ubuf;
				break;
		}
		sb_puts(sb, esc);
		run = i + 1;
	}
	sb_append(sb, s + run, len - run);
	sb_putc(sb, '"');
	sb_free(&clean);
}

void
json_write_cstr(strbuf *sb, const char *s)
{
	if (!s)
		sb_puts(sb, "null");
	else
		json_write_string(sb, s, strlen(s));
}

