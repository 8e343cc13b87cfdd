/*
 * lib/table.c: aligned text tables (see table.h).  Widths count UTF-8
 * characters, not bytes; the last column is not padded.  Locking: none.
 */
#define _GNU_SOURCE
#include "table.h"
#include "../common.h"

#include <stdlib.h>
#include <string.h>

struct out_table
{
	int			ncols;
	size_t		nrows;			/* including the header row */
	char	  **cells;			/* nrows * ncols, one line each */
};

static size_t
width(const char *s)
{
	size_t		n = 0;

	for (; *s; s++)
		if (((unsigned char) *s & 0xC0) != 0x80)
			n++;
	return n;
}

out_table *
out_table_new(int ncols, const char *const *headers)
{
	out_table  *t = xcalloc(1, sizeof(out_table));

	t->ncols = ncols;
	out_table_add(t, headers);
	return t;
}

void
out_table_add(out_table *t, const char *const *cells)
{
	t->cells = xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
	for (int c = 0; c < t->ncols; c++)
	{
		char	   *v = xstrdup(cells[c] ? cells[c] : "");

		oneline(v);
		t->cells[t->nrows * t->ncols + c] = v;
	}
	t->nrows++;
}

void
out_table_print(const out_table *t, FILE *f)
{
	size_t	   *w = xcalloc(t->ncols, sizeof(size_t));

	for (size_t r = 0; r < t->nrows; r++)
		for (int c = 0; c < t->ncols; c++)
		{
			size_t		n = width(t->cells[r * t->ncols + c]);

			if (n > w[c])
				w[c] = n;
		}
	for (size_t r = 0; r < t->nrows; r++)
	{
		strbuf		line;

		sb_init(&line);
		for (int c = 0; c < t->ncols; c++)
		{
			const char *v = t->cells[r * t->ncols + c];

			sb_puts(&line, v);
			if (c < t->ncols - 1)
				sb_printf(&line, "%*s", (int) (w[c] - width(v) + 2), "");
		}
		while (line.len > 0 && line.data[line.len - 1] == ' ')
			line.data[--line.len] = '\0';
		fprintf(f, "%s\n", sb_str(&line));
		sb_free(&line);
	}
	free(w);
}

void
out_table_free(out_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}
