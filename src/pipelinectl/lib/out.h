/*
 * lib/out.h: output of the read commands: aligned text tables and --json.
 *
 *   out_table *t = out_table_new(3, (const char *[]) {"ID", "STAGE", "NAME"});
 *   out_table_add(t, (const char *[]) {"12", "active", "build"});
 *   out_table_print(t, stdout);
 *   out_table_free(t);
 *
 * out_result_json() prints the rows of a query result as a JSON array of
 * objects keyed by column name, typed by the column's type (json and jsonb
 * embedded as they are, booleans and numbers bare, NULL as null, anything
 * else a string); out_result_table() prints the same rows as a table.
 *
 * Locking: none.
 */
#ifndef PCTL_OUT_H
#define PCTL_OUT_H

#include "base.h"

#include <stdio.h>
#include <libpq-fe.h>

typedef struct out_table out_table;

out_table *out_table_new(int ncols, const char *const *headers);
/* one row of ncols cells (NULL prints as empty); cells are copied as one line */
void out_table_add(out_table *t, const char *const *cells);
void out_table_print(const out_table *t, FILE *f);
void out_table_free(out_table *t);

/* display width of UTF-8 text, approximated by its number of characters */
size_t out_width(const char *s);

void out_result_json(const PGresult *res, FILE *f);
void out_result_table(const PGresult *res, FILE *f);

#endif
