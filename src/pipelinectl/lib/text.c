/*
 * lib/text.c: number parsing, UTF-8 repair and cuts, one-line messages and
 * time formatting.  Everything that reaches the database or a log is valid
 * UTF-8 by going through utf8_repair() first.
 *
 * Locking: none (single-threaded program).
 */
#define _GNU_SOURCE
#include "base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- parsing */

bool
parse_int64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s)
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s)
		return false;
	*out = (int64_t) v;
	return true;
}

bool
parse_positive_id(const char *s, int64_t *out)
{
	int64_t v;

	if (!s || !(*s >= '0' && *s <= '9'))
		return false;
	if (!parse_int64(s, &v) || v <= 0)
		return false;
	*out = v;
	return true;
}

bool
parse_int_range(const char *s, int lo, int hi, int *out)
{
	int64_t v;

	if (!parse_int64(s, &v) || v < lo || v > hi)
		return false;
	*out = (int) v;
	return true;
}

bool
parse_seconds(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	if (!s || !*s)
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || end == s || !(v >= lo && v <= hi))
		return false;
	*out = v;
	return true;
}

/* ------------------------------------------------------------------ UTF-8 */

/* length of the valid sequence at s (1..4), 0 when invalid, -1 when it may be
 * valid but is cut by the end of the buffer */
static int
utf8_seq(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];
	int n;
	unsigned lo = 0x80, hi = 0xBF;

	if (c < 0x80)
		return c == 0 ? 0 : 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
	{
		n = 3;
		if (c == 0xE0)
			lo = 0xA0;			/* overlong */
		else if (c == 0xED)
			hi = 0x9F;			/* surrogates */
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		n = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	}
	else
		return 0;
	for (int i = 1; i < n; i++)
	{
		if ((size_t) i >= avail)
			return -1;
		unsigned b = s[i];

		if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
			return 0;
	}
	return n;
}

size_t
utf8_repair(strbuf *out, const char *in, size_t len, bool final)
{
	const unsigned char *s = (const unsigned char *) in;
	size_t i = 0, run = 0;

	sb_reserve(out, len);
	while (i < len)
	{
		int n = utf8_seq(s + i, len - i);

		if (n > 0)
		{
			i += (size_t) n;
			continue;
		}
		/* flush the valid run before i */
		if (i > run)
			sb_append(out, in + run, i - run);
		if (n < 0 && !final)
			return i;			/* incomplete sequence at the end: keep it */
		sb_append(out, "\xEF\xBF\xBD", 3);
		i++;
		run = i;
	}
	if (i > run)
		sb_append(out, in + run, i - run);
	return len;
}

size_t
utf8_cut(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *) s;
	size_t i = len;
	int back = 0;

	/* walk back over at most 3 continuation bytes to the lead byte */
	while (i > 0 && back < 4 && (u[i - 1] & 0xC0) == 0x80)
	{
		i--;
		back++;
	}
	if (i == 0)
		return len;
	unsigned char lead = u[i - 1];
	size_t need;

	if (lead < 0x80)
		return len;
	else if ((lead & 0xE0) == 0xC0)
		need = 2;
	else if ((lead & 0xF0) == 0xE0)
		need = 3;
	else if ((lead & 0xF8) == 0xF0)
		need = 4;
	else
		return len;
	if ((size_t) back + 1 < need)
		return i - 1;			/* cut before the incomplete character */
	return len;
}

size_t
utf8_next_boundary(const char *s, size_t len, size_t pos)
{
	while (pos < len && (((unsigned char) s[pos]) & 0xC0) == 0x80)
		pos++;
	return pos;
}

/* ------------------------------------------------------------ one-liners */

void
oneline(char *s)
{
	char *p;
	size_t n;

	for (p = s; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	n = strlen(s);
	while (n > 0 && s[n - 1] == ' ')
		s[--n] = '\0';
}

char *
short_text(const char *s, size_t max)
{
	strbuf sb;
	size_t n = strlen(s);
	char *r;

	sb_init(&sb);
	if (n > max)
	{
		utf8_repair(&sb, s, utf8_cut(s, max), true);
		sb_puts(&sb, "...");
	}
	else
		utf8_repair(&sb, s, n, true);
	r = sb_steal(&sb);
	oneline(r);
	return r;
}

bool
stage_is_complete(const char *stage)
{
	return stage && (strcmp(stage, "canceled") == 0 || strcmp(stage, "failed") == 0 ||
					 strcmp(stage, "succeeded") == 0 || strcmp(stage, "skipped") == 0);
}

/* ------------------------------------------------------------- formatting */

void
fmt_clock(char *buf, size_t n, double wall)
{
	time_t t = (time_t) wall;
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(buf, n, "%H:%M:%S", &tm);
}

void
fmt_duration(char *buf, size_t n, double secs)
{
	long s;

	if (!(secs >= 0))
		secs = 0;
	if (secs > 1e9)
		secs = 1e9;
	s = (long) (secs + 0.5);
	if (s < 60)
		snprintf(buf, n, "%lds", s);
	else if (s < 3600)
		snprintf(buf, n, "%ldm%02lds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, n, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
	else
		snprintf(buf, n, "%ldd%02ldh", s / 86400, (s % 86400) / 3600);
}
