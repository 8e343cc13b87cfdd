/*
 * runner/mask.c: sensitive values out of a command's output (SPEC §12).
 *
 * The secrets of a task are the values of its params declared "sensitive"
 * (the claimed job's "params" declarations, the values as the command's
 * environment gets them) and its update token (JOB_TASK_UPDATE_TOKEN).
 * Every occurrence in the output, and in the values of the runtime envs the
 * command reports (which would otherwise carry a secret, under a name nobody
 * declared sensitive, to later jobs and every view), is replaced by "******" before the output is
 * kept as the tail, stored with append_job_task_log or logged - also when a
 * value is split between two reads: the end of a read that could be the start
 * of a secret is held back (at most the longest secret less one byte) until
 * the next read, or the end of the output, decides.  The longest secret that
 * matches at a place wins.  The text is valid UTF-8 already, and a secret
 * starts with a lead byte, so nothing held back or masked cuts a character.
 *
 * Locking: none.
 */
#define _GNU_SOURCE
#include "runner.h"

#include <stdlib.h>
#include <string.h>

#define MASK "******"

void
secrets_init(secrets *s)
{
	memset(s, 0, sizeof(*s));
	sb_init(&s->carry);
}

void
secrets_free(secrets *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->values[i]);
	free(s->values);
	free(s->lens);
	sb_free(&s->carry);
	memset(s, 0, sizeof(*s));
}

void
secrets_add(secrets *s, const char *v)
{
	size_t len = v ? strlen(v) : 0;
	int at;

	if (len == 0)
		return;
	for (int i = 0; i < s->n; i++)
		if (s->lens[i] == len && memcmp(s->values[i], v, len) == 0)
			return;
	/* sorted longest first: the longest match wins */
	s->values = xrealloc(s->values, (size_t) (s->n + 1) * sizeof(char *));
	s->lens = xrealloc(s->lens, (size_t) (s->n + 1) * sizeof(size_t));
	for (at = s->n; at > 0 && s->lens[at - 1] < len; at--)
	{
		s->values[at] = s->values[at - 1];
		s->lens[at] = s->lens[at - 1];
	}
	s->values[at] = xstrdup(v);
	s->lens[at] = len;
	s->n++;
	s->first[(unsigned char) v[0]] = true;
	if (len > s->max_len)
		s->max_len = len;
}

void
secrets_from_job(secrets *s, const json_t *job, const json_t *params_env, const char *token)
{
	const json_t *decls = json_is_object(job) ? json_object_get(job, "params") : NULL;
	size_t i;
	json_t *d;

	if (json_is_array(decls) && json_is_object(params_env))
	{
		json_array_foreach((json_t *) decls, i, d)
		{
			const char *name = pj_get_str(d, "name");
			bool sensitive = false;
			const json_t *v;
			strbuf text;

			if (!name || !pj_get_bool(d, "sensitive", &sensitive) || !sensitive)
				continue;
			v = json_object_get(params_env, name);
			if (!v || json_is_null(v))
				continue;
			sb_init(&text);
			if (!pj_scalar_text(v, &text))
				pj_write(&text, v);
			secrets_add(s, sb_str(&text));
			sb_free(&text);
		}
	}
	secrets_add(s, token);
}

/*
 * Masks buf[0..len) into out.  With hold, stops before a tail that could
 * still become a secret and returns where it stopped; else consumes all.
 */
static size_t
mask_into(const secrets *s, const char *buf, size_t len, bool hold, strbuf *out)
{
	size_t i = 0, run = 0;

	while (i < len)
	{
		bool matched = false, maybe = false;

		if (!s->first[(unsigned char) buf[i]])
		{
			i++;
			continue;
		}
		for (int k = 0; k < s->n; k++)
		{
			size_t sl = s->lens[k];

			if (len - i >= sl)
			{
				if (memcmp(buf + i, s->values[k], sl) == 0)
				{
					sb_append(out, buf + run, i - run);
					sb_puts(out, MASK);
					i += sl;
					run = i;
					matched = true;
					break;
				}
			}
			else if (hold && memcmp(buf + i, s->values[k], len - i) == 0)
				maybe = true;
		}
		if (matched)
			continue;
		if (maybe)
			break;				/* the rest may be the start of a secret: held back */
		i++;
	}
	sb_append(out, buf + run, i - run);
	return i;
}

void
secrets_mask_stream(secrets *s, const char *text, size_t len, bool final, strbuf *out)
{
	strbuf joined;
	const char *buf = text;
	size_t n = len, used;

	if (s->n == 0)
	{
		sb_append(out, text, len);
		return;
	}
	sb_init(&joined);
	if (s->carry.len)
	{
		sb_append(&joined, s->carry.data, s->carry.len);
		sb_append(&joined, text, len);
		buf = joined.data;
		n = joined.len;
	}
	used = mask_into(s, buf, n, !final, out);
	sb_reset(&s->carry);
	if (used < n)
		sb_append(&s->carry, buf + used, n - used);
	sb_free(&joined);
}

char *
secrets_mask_string(const secrets *s, const char *text)
{
	strbuf out;

	sb_init(&out);
	mask_into(s, text, strlen(text), false, &out);
	return sb_steal(&out);
}

char *
secrets_mask_envs(const secrets *s, const char *envs_json)
{
	json_t *envs;
	const char *key;
	json_t *value;
	strbuf out;
	bool first = true;

	if (s->n == 0)
		return xstrdup(envs_json);
	envs = pj_parse(envs_json, strlen(envs_json), NULL, 0);
	if (!json_is_object(envs))
	{
		json_decref(envs);
		return xstrdup(envs_json);
	}
	sb_init(&out);
	sb_putc(&out, '{');
	json_object_foreach(envs, key, value)
	{
		char *masked = secrets_mask_string(s, json_is_string(value) ? json_string_value(value) : "");

		if (!first)
			sb_putc(&out, ',');
		first = false;
		json_write_cstr(&out, key);
		sb_putc(&out, ':');
		json_write_cstr(&out, masked);
		free(masked);
	}
	sb_putc(&out, '}');
	json_decref(envs);
	return sb_steal(&out);
}
