/*
 * lib/out.c: see out.h.
 */
#define _GNU_SOURCE
#include "out.h"
#include "json.h"

#include <stdlib.h>
#include <string.h>

/* type OIDs of pg_type that out_result_json prints bare */
#define BOOLOID 16
#define INT8OID 20
#define INT2OID 21
#define INT4OID 23
#define OIDOID 26
#define JSONOID 114
#define FLOAT4OID 700
#define FLOAT8OID 701
#define NUMERICOID 1700
#define JSONBOID 3802

struct out_table
{
	int ncols;
	char **headers;
	char **cells;				/* nrows * ncols */
	size_t nrows;
	size_t cap;
};

size_t
out_width(const char *s)
{
	size_t w = 0;

	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
		if ((*p & 0xC0) != 0x80)
			w++;
	return w;
}

static char *
cell_text(const char *s)
{
	strbuf sb;
	char *r;

	sb_init(&sb);
	utf8_repair(&sb, s ? s : "", s ? strlen(s) : 0, true);
	r = sb_steal(&sb);
	oneline(r);
	return r;
}

out_table *
out_table_new(int ncols, const char *const *headers)
{
	out_table *t = xcalloc(1, sizeof(out_table));

	t->ncols = ncols;
	t->headers = xcalloc((size_t) ncols, sizeof(char *));
	for (int i = 0; i < ncols; i++)
		t->headers[i] = cell_text(headers[i]);
	return t;
}

void
out_table_add(out_table *t, const char *const *cells)
{
	if (t->nrows == t->cap)
	{
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = xrealloc(t->cells, t->cap * (size_t) t->ncols * sizeof(char *));
	}
	for (int i = 0; i < t->ncols; i++)
		t->cells[t->nrows * (size_t) t->ncols + (size_t) i] = cell_text(cells[i]);
	t->nrows++;
}

static void
put_padded(FILE *f, const char *s, size_t width, bool last)
{
	fputs(s, f);
	if (!last)
		for (size_t w = out_width(s); w < width + 2; w++)
			fputc(' ', f);
}

void
out_table_print(const out_table *t, FILE *f)
{
	size_t *width = xcalloc((size_t) t->ncols, sizeof(size_t));

	for (int c = 0; c < t->ncols; c++)
	{
		width[c] = out_width(t->headers[c]);
		for (size_t r = 0; r < t->nrows; r++)
		{
			size_t w = out_width(t->cells[r * (size_t) t->ncols + (size_t) c]);

			if (w > width[c])
				width[c] = w;
		}
	}
	for (int c = 0; c < t->ncols; c++)
		put_padded(f, t->headers[c], width[c], c == t->ncols - 1);
	fputc('\n', f);
	for (size_t r = 0; r < t->nrows; r++)
	{
		for (int c = 0; c < t->ncols; c++)
			put_padded(f, t->cells[r * (size_t) t->ncols + (size_t) c], width[c], c == t->ncols - 1);
		fputc('\n', f);
	}
	free(width);
}

void
out_table_free(out_table *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->ncols; i++)
		free(t->headers[i]);
	for (size_t i = 0; i < t->nrows * (size_t) t->ncols; i++)
		free(t->cells[i]);
	free(t->headers);
	free(t->cells);
	free(t);
}

void
out_result_json(const PGresult *res, FILE *f)
{
	strbuf sb;
	int nrows = PQntuples(res), ncols = PQnfields(res);

	sb_init(&sb);
	sb_putc(&sb, '[');
	for (int r = 0; r < nrows; r++)
	{
		sb_puts(&sb, r ? ",\n {" : "{");
		for (int c = 0; c < ncols; c++)
		{
			const char *v = PQgetvalue(res, r, c);

			if (c)
				sb_putc(&sb, ',');
			json_write_cstr(&sb, PQfname(res, c));
			sb_putc(&sb, ':');
			if (PQgetisnull(res, r, c))
			{
				sb_puts(&sb, "null");
				continue;
			}
			switch (PQftype(res, c))
			{
				case BOOLOID:
					sb_puts(&sb, v[0] == 't' ? "true" : "false");
					break;
				case INT2OID:
				case INT4OID:
				case INT8OID:
				case OIDOID:
				case JSONOID:
				case JSONBOID:
					sb_puts(&sb, v);
					break;
				case FLOAT4OID:
				case FLOAT8OID:
				case NUMERICOID:
					/* NaN and Infinity are not JSON numbers */
					if (strspn(v, "-+0123456789.eE") == strlen(v))
						sb_puts(&sb, v);
					else
						json_write_cstr(&sb, v);
					break;
				default:
					json_write_cstr(&sb, v);
					break;
			}
		}
		sb_putc(&sb, '}');
	}
	sb_puts(&sb, "]\n");
	fwrite(sb_str(&sb), 1, sb.len, f);
	sb_free(&sb);
}

void
out_result_table(const PGresult *res, FILE *f)
{
	int ncols = PQnfields(res);
	const char **row = xcalloc((size_t) (ncols ? ncols : 1), sizeof(char *));
	out_table *t;

	for (int c = 0; c < ncols; c++)
		row[c] = PQfname(res, c);
	t = out_table_new(ncols, row);
	for (int r = 0; r < PQntuples(res); r++)
	{
		for (int c = 0; c < ncols; c++)
			row[c] = PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
		out_table_add(t, row);
	}
	out_table_print(t, f);
	out_table_free(t);
	free(row);
}
