/*
 * lib/table.h: aligned text tables for the read commands (ls, status).
 * Locking: none.
 */
#ifndef PIPELINECTL_TABLE_H
#define PIPELINECTL_TABLE_H

#include <stdio.h>

typedef struct out_table out_table;

out_table *out_table_new(int ncols, const char *const *headers);
/* one row of ncols cells (NULL prints as empty); cells are copied as one line */
void out_table_add(out_table *t, const char *const *cells);
void out_table_print(const out_table *t, FILE *f);
void out_table_free(out_table *t);

#endif
