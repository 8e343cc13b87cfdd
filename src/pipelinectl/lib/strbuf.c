/*
 * lib/strbuf.c: memory that aborts on exhaustion (there is no sane recovery
 * in a command-line program) and growable NUL-terminated strings.
 *
 * Locking: none (single-threaded program).
 */
#define _GNU_SOURCE
#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ memory */

static void
out_of_memory(size_t n)
{
	/* no malloc here: write(2) only */
	static const char msg[] = "pipelinectl: out of memory\n";
	ssize_t r = write(2, msg, sizeof(msg) - 1);

	(void) r;
	(void) n;
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		out_of_memory(n);
	return p;
}

void *
xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);

	if (!p)
		out_of_memory(n * m);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		out_of_memory(n);
	return q;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

/* Like strndup: at most n bytes, stopping early at a NUL. */
char *
xstrndup(const char *s, size_t n)
{
	char *p;

	n = strnlen(s, n);
	p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}


char *
xasprintf(const char *fmt, ...)
{
	strbuf sb;
	va_list ap;

	sb_init(&sb);
	va_start(ap, fmt);
	sb_vprintf(&sb, fmt, ap);
	va_end(ap);
	return sb_steal(&sb);
}

/* ----------------------------------------------------------------- strbuf */

void
sb_init(strbuf *sb)
{
	sb->data = NULL;
	sb->len = 0;
	sb->cap = 0;
}

void
sb_free(strbuf *sb)
{
	free(sb->data);
	sb_init(sb);
}

void
sb_reset(strbuf *sb)
{
	sb->len = 0;
	if (sb->data)
		sb->data[0] = '\0';
}

void
sb_reserve(strbuf *sb, size_t extra)
{
	size_t need;

	if (extra > SIZE_MAX / 2 - sb->len)
		out_of_memory(extra);
	need = sb->len + extra + 1;
	if (need <= sb->cap)
		return;
	size_t cap = sb->cap ? sb->cap : 64;

	while (cap < need)
		cap *= 2;
	sb->data = xrealloc(sb->data, cap);
	sb->cap = cap;
	/* NUL-terminated as soon as allocated: a reserve with nothing appended is "" */
	sb->data[sb->len] = '\0';
}

void
sb_append(strbuf *sb, const char *s, size_t n)
{
	sb_reserve(sb, n);
	if (n)
		memcpy(sb->data + sb->len, s, n);
	sb->len += n;
	sb->data[sb->len] = '\0';
}

void
sb_puts(strbuf *sb, const char *s)
{
	sb_append(sb, s, strlen(s));
}

void
sb_putc(strbuf *sb, char c)
{
	sb_append(sb, &c, 1);
}


void
sb_vprintf(strbuf *sb, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	/* format into the free space; grow and format again when it was too small */
	sb_reserve(sb, 128);
	va_copy(ap2, ap);
	n = vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, ap2);
	va_end(ap2);
	if (n < 0)
	{
		sb->data[sb->len] = '\0';
		return;
	}
	if ((size_t) n >= sb->cap - sb->len)
	{
		sb_reserve(sb, (size_t) n);
		va_copy(ap2, ap);
		vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, ap2);
		va_end(ap2);
	}
	sb->len += (size_t) n;
}

void
sb_printf(strbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sb_vprintf(sb, fmt, ap);
	va_end(ap);
}

void
sb_consume(strbuf *sb, size_t n)
{
	if (n >= sb->len)
	{
		sb_reset(sb);
		return;
	}
	memmove(sb->data, sb->data + n, sb->len - n);
	sb->len -= n;
	sb->data[sb->len] = '\0';
}

const char *
sb_str(strbuf *sb)
{
	return sb->data ? sb->data : "";
}

char *
sb_steal(strbuf *sb)
{
	char *p = sb->data ? sb->data : xstrdup("");

	sb_init(sb);
	return p;
}
