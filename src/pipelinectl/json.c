/*
 * json.c: a small recursive-descent JSON parser (RFC 8259) and JSON writing
 * helpers.
 *
 * The parser is strict (no comments, no trailing commas), bounds nesting at
 * JSON_MAX_DEPTH so that hostile input cannot exhaust the stack, decodes
 * \u escapes including surrogate pairs (a lone surrogate becomes U+FFFD) and
 * never reads past len.  Every value is heap-allocated; json_free releases a
 * whole tree, also a partially built one after an error.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 200

typedef struct parser
{
	const char *s;
	size_t len;
	size_t pos;
	int depth;
	char *err;
	size_t errlen;
	bool failed;
} parser;

static json_value *parse_value(parser *p);

static void
fail(parser *p, const char *what)
{
	if (p->failed)
		return;
	p->failed = true;
	if (p->err && p->errlen)
		snprintf(p->err, p->errlen, "%s at offset %zu", what, p->pos);
}

static void
skip_ws(parser *p)
{
	while (p->pos < p->len)
	{
		char c = p->s[p->pos];

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			p->pos++;
		else
			break;
	}
}

static json_value *
new_value(json_type t)
{
	json_value *v = xcalloc(1, sizeof(json_value));

	v->type = t;
	return v;
}

static bool
match_word(parser *p, const char *w)
{
	size_t n = strlen(w);

	if (p->len - p->pos >= n && memcmp(p->s + p->pos, w, n) == 0)
	{
		p->pos += n;
		return true;
	}
	return false;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool
read_hex4(parser *p, unsigned *out)
{
	unsigned v = 0;

	if (p->len - p->pos < 4)
		return false;
	for (int i = 0; i < 4; i++)
	{
		int h = hexval(p->s[p->pos + i]);

		if (h < 0)
			return false;
		v = v * 16 + (unsigned) h;
	}
	p->pos += 4;
	*out = v;
	return true;
}

static void
put_utf8(strbuf *sb, unsigned cp)
{
	char b[4];

	if (cp < 0x80)
	{
		b[0] = (char) cp;
		sb_append(sb, b, 1);
	}
	else if (cp < 0x800)
	{
		b[0] = (char) (0xC0 | (cp >> 6));
		b[1] = (char) (0x80 | (cp & 0x3F));
		sb_append(sb, b, 2);
	}
	else if (cp < 0x10000)
	{
		b[0] = (char) (0xE0 | (cp >> 12));
		b[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		b[2] = (char) (0x80 | (cp & 0x3F));
		sb_append(sb, b, 3);
	}
	else
	{
		b[0] = (char) (0xF0 | (cp >> 18));
		b[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
		b[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
		b[3] = (char) (0x80 | (cp & 0x3F));
		sb_append(sb, b, 4);
	}
}

/* parses a string starting at the opening quote into sb */
static bool
parse_string_into(parser *p, strbuf *sb)
{
	size_t run;

	p->pos++;					/* opening quote */
	sb_reserve(sb, 0);
	run = p->pos;
	while (p->pos < p->len)
	{
		unsigned char c = (unsigned char) p->s[p->pos];

		if (c == '"')
		{
			sb_append(sb, p->s + run, p->pos - run);
			p->pos++;
			return true;
		}
		if (c < 0x20)
		{
			fail(p, "control character in string");
			return false;
		}
		if (c != '\\')
		{
			p->pos++;
			continue;
		}
		sb_append(sb, p->s + run, p->pos - run);
		p->pos++;
		if (p->pos >= p->len)
			break;
		c = (unsigned char) p->s[p->pos++];
		switch (c)
		{
			case '"':
				sb_putc(sb, '"');
				break;
			case '\\':
				sb_putc(sb, '\\');
				break;
			case '/':
				sb_putc(sb, '/');
				break;
			case 'b':
				sb_putc(sb, '\b');
				break;
			case 'f':
				sb_putc(sb, '\f');
				break;
			case 'n':
				sb_putc(sb, '\n');
				break;
			case 'r':
				sb_putc(sb, '\r');
				break;
			case 't':
				sb_putc(sb, '\t');
				break;
			case 'u':
				{
					unsigned cp, lo;

					if (!read_hex4(p, &cp))
					{
						fail(p, "bad \\u escape");
						return false;
					}
					if (cp >= 0xD800 && cp <= 0xDBFF)
					{
						size_t save = p->pos;

						if (p->len - p->pos >= 6 && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u')
						{
							p->pos += 2;
							if (read_hex4(p, &lo) && lo >= 0xDC00 && lo <= 0xDFFF)
								cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
							else
							{
								p->pos = save;
								cp = 0xFFFD;
							}
						}
						else
							cp = 0xFFFD;
					}
					else if (cp >= 0xDC00 && cp <= 0xDFFF)
						cp = 0xFFFD;
					put_utf8(sb, cp);
					break;
				}
			default:
				p->pos--;
				fail(p, "bad escape in string");
				return false;
		}
		run = p->pos;
	}
	fail(p, "unterminated string");
	return false;
}

static json_value *
parse_string(parser *p)
{
	strbuf sb;
	json_value *v;

	sb_init(&sb);
	if (!parse_string_into(p, &sb))
	{
		sb_free(&sb);
		return NULL;
	}
	v = new_value(JSON_STRING);
	v->u.string.len = sb.len;
	v->u.string.str = sb_steal(&sb);
	return v;
}

static json_value *
parse_number(parser *p)
{
	size_t start = p->pos;
	json_value *v;

	if (p->pos < p->len && p->s[p->pos] == '-')
		p->pos++;
	if (p->pos >= p->len)
		goto bad;
	if (p->s[p->pos] == '0')
		p->pos++;
	else if (p->s[p->pos] >= '1' && p->s[p->pos] <= '9')
		while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
			p->pos++;
	else
		goto bad;
	if (p->pos < p->len && p->s[p->pos] == '.')
	{
		p->pos++;
		if (p->pos >= p->len || !(p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
			goto bad;
		while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
			p->pos++;
	}
	if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E'))
	{
		p->pos++;
		if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			p->pos++;
		if (p->pos >= p->len || !(p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
			goto bad;
		while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
			p->pos++;
	}
	v = new_value(JSON_NUMBER);
	v->u.number.text = xstrndup(p->s + start, p->pos - start);
	errno = 0;
	v->u.number.value = strtod(v->u.number.text, NULL);	/* overflow gives +-HUGE_VAL */
	return v;
bad:
	fail(p, "bad number");
	return NULL;
}

static json_value *
parse_array(parser *p)
{
	json_value *v = new_value(JSON_ARRAY);
	size_t cap = 0;

	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == ']')
	{
		p->pos++;
		return v;
	}
	for (;;)
	{
		json_value *item = parse_value(p);

		if (!item)
			goto bad;
		if (v->u.array.count == cap)
		{
			cap = cap ? cap * 2 : 4;
			v->u.array.items = xrealloc(v->u.array.items, cap * sizeof(json_value *));
		}
		v->u.array.items[v->u.array.count++] = item;
		skip_ws(p);
		if (p->pos >= p->len)
		{
			fail(p, "unterminated array");
			goto bad;
		}
		if (p->s[p->pos] == ',')
		{
			p->pos++;
			continue;
		}
		if (p->s[p->pos] == ']')
		{
			p->pos++;
			return v;
		}
		fail(p, "expected ',' or ']'");
		goto bad;
	}
bad:
	json_free(v);
	return NULL;
}

static json_value *
parse_object(parser *p)
{
	json_value *v = new_value(JSON_OBJECT);
	size_t cap = 0;

	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == '}')
	{
		p->pos++;
		return v;
	}
	for (;;)
	{
		strbuf key;
		json_value *val;

		skip_ws(p);
		if (p->pos >= p->len || p->s[p->pos] != '"')
		{
			fail(p, "expected a string key");
			goto bad;
		}
		sb_init(&key);
		if (!parse_string_into(p, &key))
		{
			sb_free(&key);
			goto bad;
		}
		skip_ws(p);
		if (p->pos >= p->len || p->s[p->pos] != ':')
		{
			sb_free(&key);
			fail(p, "expected ':'");
			goto bad;
		}
		p->pos++;
		val = parse_value(p);
		if (!val)
		{
			sb_free(&key);
			goto bad;
		}
		if (v->u.object.count == cap)
		{
			cap = cap ? cap * 2 : 4;
			v->u.object.members = xrealloc(v->u.object.members, cap * sizeof(json_member));
		}
		json_member *m = &v->u.object.members[v->u.object.count++];

		m->key_len = key.len;
		m->key = sb_steal(&key);
		m->value = val;
		skip_ws(p);
		if (p->pos >= p->len)
		{
			fail(p, "unterminated object");
			goto bad;
		}
		if (p->s[p->pos] == ',')
		{
			p->pos++;
			continue;
		}
		if (p->s[p->pos] == '}')
		{
			p->pos++;
			return v;
		}
		fail(p, "expected ',' or '}'");
		goto bad;
	}
bad:
	json_free(v);
	return NULL;
}

static json_value *
parse_value(parser *p)
{
	json_value *v = NULL;

	skip_ws(p);
	if (p->pos >= p->len)
	{
		fail(p, "unexpected end of input");
		return NULL;
	}
	if (++p->depth > JSON_MAX_DEPTH)
	{
		fail(p, "nesting too deep");
		p->depth--;
		return NULL;
	}
	switch (p->s[p->pos])
	{
		case '{':
			v = parse_object(p);
			break;
		case '[':
			v = parse_array(p);
			break;
		case '"':
			v = parse_string(p);
			break;
		case 't':
			if (match_word(p, "true"))
			{
				v = new_value(JSON_BOOL);
				v->u.boolean = true;
			}
			else
				fail(p, "unexpected token");
			break;
		case 'f':
			if (match_word(p, "false"))
				v = new_value(JSON_BOOL);
			else
				fail(p, "unexpected token");
			break;
		case 'n':
			if (match_word(p, "null"))
				v = new_value(JSON_NULL);
			else
				fail(p, "unexpected token");
			break;
		default:
			if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
				v = parse_number(p);
			else
				fail(p, "unexpected character");
			break;
	}
	p->depth--;
	return v;
}

json_value *
json_parse(const char *text, size_t len, char *err, size_t errlen)
{
	parser p = {text, len, 0, 0, err, errlen, false};
	json_value *v;

	if (err && errlen)
		err[0] = '\0';
	if (!text)
	{
		fail(&p, "no input");
		return NULL;
	}
	v = parse_value(&p);
	if (!v)
		return NULL;
	skip_ws(&p);
	if (p.pos != p.len)
	{
		fail(&p, "trailing characters");
		json_free(v);
		return NULL;
	}
	return v;
}

void
json_free(json_value *v)
{
	if (!v)
		return;
	switch (v->type)
	{
		case JSON_NUMBER:
			free(v->u.number.text);
			break;
		case JSON_STRING:
			free(v->u.string.str);
			break;
		case JSON_ARRAY:
			for (size_t i = 0; i < v->u.array.count; i++)
				json_free(v->u.array.items[i]);
			free(v->u.array.items);
			break;
		case JSON_OBJECT:
			for (size_t i = 0; i < v->u.object.count; i++)
			{
				free(v->u.object.members[i].key);
				json_free(v->u.object.members[i].value);
			}
			free(v->u.object.members);
			break;
		default:
			break;
	}
	free(v);
}

/* ---------------------------------------------------------------- lookups */

const json_value *
json_get(const json_value *obj, const char *key)
{
	size_t klen;

	if (!obj || obj->type != JSON_OBJECT || !key)
		return NULL;
	klen = strlen(key);
	/* like jsonb: when a key repeats, the last one wins */
	for (size_t i = obj->u.object.count; i-- > 0;)
	{
		const json_member *m = &obj->u.object.members[i];

		if (m->key_len == klen && memcmp(m->key, key, klen) == 0)
			return m->value;
	}
	return NULL;
}

const char *
json_get_str(const json_value *obj, const char *key)
{
	const json_value *v = json_get(obj, key);

	return (v && v->type == JSON_STRING) ? v->u.string.str : NULL;
}

bool
json_get_number(const json_value *obj, const char *key, double *out)
{
	const json_value *v = json_get(obj, key);

	if (v && v->type == JSON_NUMBER && isfinite(v->u.number.value))
	{
		*out = v->u.number.value;
		return true;
	}
	/* "600" as a string is accepted too: documents written by hand do that */
	if (v && v->type == JSON_STRING && v->u.string.len > 0)
	{
		char *end;
		double d;

		errno = 0;
		d = strtod(v->u.string.str, &end);
		if (errno == 0 && *end == '\0' && isfinite(d))
		{
			*out = d;
			return true;
		}
	}
	return false;
}

bool
json_get_bool(const json_value *obj, const char *key, bool *out)
{
	const json_value *v = json_get(obj, key);

	if (v && v->type == JSON_BOOL)
	{
		*out = v->u.boolean;
		return true;
	}
	return false;
}

bool
json_is_true(const json_value *v)
{
	return v && v->type == JSON_BOOL && v->u.boolean;
}

const char *
json_scalar_text(const json_value *v)
{
	if (!v)
		return NULL;
	switch (v->type)
	{
		case JSON_STRING:
			return v->u.string.str;
		case JSON_NUMBER:
			return v->u.number.text;
		case JSON_BOOL:
			return v->u.boolean ? "true" : "false";
		default:
			return NULL;
	}
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

void
json_write(strbuf *sb, const json_value *v)
{
	if (!v)
	{
		sb_puts(sb, "null");
		return;
	}
	switch (v->type)
	{
		case JSON_NULL:
			sb_puts(sb, "null");
			break;
		case JSON_BOOL:
			sb_puts(sb, v->u.boolean ? "true" : "false");
			break;
		case JSON_NUMBER:
			sb_puts(sb, v->u.number.text);
			break;
		case JSON_STRING:
			json_write_string(sb, v->u.string.str, v->u.string.len);
			break;
		case JSON_ARRAY:
			sb_putc(sb, '[');
			for (size_t i = 0; i < v->u.array.count; i++)
			{
				if (i)
					sb_putc(sb, ',');
				json_write(sb, v->u.array.items[i]);
			}
			sb_putc(sb, ']');
			break;
		case JSON_OBJECT:
			sb_putc(sb, '{');
			for (size_t i = 0; i < v->u.object.count; i++)
			{
				if (i)
					sb_putc(sb, ',');
				json_write_string(sb, v->u.object.members[i].key, v->u.object.members[i].key_len);
				sb_putc(sb, ':');
				json_write(sb, v->u.object.members[i].value);
			}
			sb_putc(sb, '}');
			break;
	}
}
