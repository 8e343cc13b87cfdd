/*
 * lib/ydoc.h: YAML (and JSON) documents to jansson values, with the source
 * location of every node, so that a JSON path the engine names in an error
 * ("stages[1].tasks[0].job") maps back to FILE:LINE:COLUMN.
 *
 * Not thread-safe (no shared state, but the values are not locked); the
 * program is single-threaded.
 */
#ifndef PIPELINECTL_YAML_H
#define PIPELINECTL_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* one document of a file */
typedef struct ydoc
{
	json_t	   *value;			/* the document (NULL for an empty one) */
	json_t	   *locs;			/* object: JSON path -> [line, column] */
	int			line;			/* where the document starts (1-based) */
	int			column;
} ydoc;

/* all documents of one file, in order */
typedef struct ydocs
{
	ydoc	   *docs;
	size_t		count;
} ydocs;

/* a load error: 1-based position (0 when unknown) and the reason */
typedef struct yerror
{
	int			line;
	int			column;
	char		message[512];
} yerror;

/*
 * Parse text (YAML 1.2 core schema for plain scalars; JSON is YAML).  On
 * success fills out and returns true; on error fills err, leaves out empty
 * and returns false.  Refused: syntax errors, duplicate keys, keys that are
 * not scalars, merge keys (<<), unknown tags, .inf/.nan, integers out of
 * range, undefined aliases.  Anchors and aliases are supported (an alias is
 * a copy of its anchor's value).
 */
bool yaml_load(const char *text, size_t len, ydocs *out, yerror *err);
void ydocs_free(ydocs *docs);

/*
 * The location of path in doc: the node itself when it was written, else the
 * nearest written ancestor (a missing key: its object), else the document.
 */
void ydoc_locate(const ydoc *doc, const char *path, int *line, int *column);

#endif
