/*
 * lib/yaml.c: YAML (and JSON) documents to jansson values through libyaml's
 * event API, remembering where every node was written.
 *
 * A stack of open containers (mappings, sequences) is kept while the events
 * arrive; each node's JSON path ("stages[1].tasks[0].job", the engine's own
 * notation) is recorded in the document's locs object with the node's line
 * and column (for a mapping member, the position of its key).  Plain scalars
 * are typed as the YAML 1.2 core schema does (null, booleans, integers,
 * floats, else strings); quoted and block scalars stay strings.
 *
 * No locking: single-threaded, no global state.
 */
#include "ydoc.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define TAG_PREFIX "tag:yaml.org,2002:"

typedef struct frame
{
	json_t	   *node;			/* the open object or array (owned) */
	char	   *path;			/* its JSON path ("" for the root) */
	char	   *anchor;			/* its anchor, registered when it closes */
	char	   *key;			/* mapping: key waiting for its value */
	int			key_line;
	int			key_column;
} frame;

typedef struct loader
{
	frame	   *stack;
	size_t		depth;
	size_t		cap;
	json_t	   *anchors;		/* anchor name -> value (this document) */
	json_t	   *root;			/* the document's value once complete */
	json_t	   *locs;
	yerror	   *err;
	bool		failed;
} loader;

static void
set_error(loader *ld, int line, int column, const char *fmt,...)
{
	va_list		ap;

	if (ld->failed)
		return;
	ld->failed = true;
	ld->err->line = line;
	ld->err->column = column;
	va_start(ap, fmt);
	vsnprintf(ld->err->message, sizeof(ld->err->message), fmt, ap);
	va_end(ap);
}

static char *
str_printf(const char *fmt,...)
{
	va_list		ap;
	int			n;
	char	   *s;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	s = malloc((size_t) n + 1);
	if (!s)
		abort();
	va_start(ap, fmt);
	vsnprintf(s, (size_t) n + 1, fmt, ap);
	va_end(ap);
	return s;
}

static void
record_loc(loader *ld, const char *path, int line, int column)
{
	json_object_set_new(ld->locs, path, json_pack("[ii]", line, column));
}

/* ---------------------------------------------------------------- scalars */

static bool
all_in(const char *s, const char *set)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!strchr(set, *s))
			return false;
	return true;
}

/* [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool
is_core_float(const char *s)
{
	bool		digits = false;

	if (*s == '-' || *s == '+')
		s++;
	while (isdigit((unsigned char) *s))
		s++, digits = true;
	if (*s == '.')
	{
		s++;
		while (isdigit((unsigned char) *s))
			s++, digits = true;
	}
	if (!digits)
		return false;
	if (*s == 'e' || *s == 'E')
	{
		s++;
		if (*s == '-' || *s == '+')
			s++;
		if (!isdigit((unsigned char) *s))
			return false;
		while (isdigit((unsigned char) *s))
			s++;
	}
	return *s == '\0';
}

static bool
is_special_float(const char *s)
{
	const char *t = (*s == '-' || *s == '+') ? s + 1 : s;

	return strcmp(t, ".inf") == 0 || strcmp(t, ".Inf") == 0 || strcmp(t, ".INF") == 0 ||
		strcmp(s, ".nan") == 0 || strcmp(s, ".NaN") == 0 || strcmp(s, ".NAN") == 0;
}

/* integer of the core schema into *out; 0 ok, 1 not an integer, 2 out of range */
static int
core_int(const char *s, long long *out)
{
	const char *digits = s;
	int			base = 10;
	char	   *end;

	if (strncmp(s, "0o", 2) == 0 && all_in(s + 2, "01234567"))
		base = 8, digits = s + 2;
	else if (strncmp(s, "0x", 2) == 0 && all_in(s + 2, "0123456789abcdefABCDEF"))
		base = 16, digits = s + 2;
	else if (!all_in((*s == '-' || *s == '+') ? s + 1 : s, "0123456789"))
		return 1;
	errno = 0;
	*out = strtoll(digits, &end, base);
	if (errno == ERANGE || *end)
		return 2;
	return 0;
}

/*
 * The JSON value of a scalar event, or NULL after set_error.
 * Plain untagged scalars follow the core schema; "!!str" and quoted or block
 * scalars are strings; "!!int" etc. must resolve to their type.
 */
static json_t *
scalar_value(loader *ld, const yaml_event_t *ev)
{
	const char *s = (const char *) ev->data.scalar.value;
	size_t		len = ev->data.scalar.length;
	const char *tag = (const char *) ev->data.scalar.tag;
	int			line = (int) ev->start_mark.line + 1;
	int			col = (int) ev->start_mark.column + 1;
	const char *want = NULL;
	long long	iv;
	int			r;
	json_t	   *v = NULL;

	if (tag && strcmp(tag, "!") != 0)
	{
		if (strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) != 0)
		{
			set_error(ld, line, col, "unsupported tag \"%s\"", tag);
			return NULL;
		}
		want = tag + strlen(TAG_PREFIX);
		if (strcmp(want, "str") == 0)
			return json_stringn(s, len);
		if (strcmp(want, "int") != 0 && strcmp(want, "float") != 0 &&
			strcmp(want, "bool") != 0 && strcmp(want, "null") != 0)
		{
			set_error(ld, line, col, "unsupported tag \"!!%s\"", want);
			return NULL;
		}
	}
	else if (!ev->data.scalar.plain_implicit || tag)
		return json_stringn(s, len);	/* quoted, block, or "!" */

	if (strlen(s) != len)
	{
		set_error(ld, line, col, "a plain scalar must not contain a NUL character");
		return NULL;
	}
	if (len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
		strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0)
		v = json_null();
	else if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
		v = json_true();
	else if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0)
		v = json_false();
	else if ((r = core_int(s, &iv)) != 1)
	{
		if (r == 2)
		{
			set_error(ld, line, col, "integer %s is out of range (quote it to keep it as a string)", s);
			return NULL;
		}
		v = json_integer(iv);
	}
	else if (is_core_float(s))
		v = json_real(strtod(s, NULL));
	else if (is_special_float(s))
	{
		set_error(ld, line, col, "%s has no JSON equivalent (quote it to keep it as a string)", s);
		return NULL;
	}

	if (want)
	{
		const char *got = !v ? "str" : json_is_null(v) ? "null" : json_is_boolean(v) ? "bool" :
			json_is_integer(v) ? "int" : "float";

		if (strcmp(want, got) != 0 && !(strcmp(want, "float") == 0 && strcmp(got, "int") == 0))
		{
			set_error(ld, line, col, "\"%s\" is not a valid !!%s", s, want);
			json_decref(v);
			return NULL;
		}
		if (strcmp(want, "float") == 0 && json_is_integer(v))
		{
			json_t	   *f = json_real((double) json_integer_value(v));

			json_decref(v);
			v = f;
		}
	}
	return v ? v : json_stringn(s, len);
}

/* ---------------------------------------------------------------- the stack */

/*
 * The path a new node gets in the current container, and records its
 * location.  For a mapping member the location is its key's.
 */
static char *
child_path(loader *ld, int line, int column)
{
	frame	   *top;
	char	   *path;

	if (ld->depth == 0)
	{
		record_loc(ld, "", line, column);
		return strdup("");
	}
	top = &ld->stack[ld->depth - 1];
	if (json_is_array(top->node))
	{
		path = str_printf("%s[%zu]", top->path, json_array_size(top->node));
		record_loc(ld, path, line, column);
	}
	else
	{
		path = top->path[0] ? str_printf("%s.%s", top->path, top->key) : strdup(top->key);
		record_loc(ld, path, top->key_line, top->key_column);
	}
	return path;
}

/* a complete value goes into the current container (or becomes the root) */
static void
add_value(loader *ld, json_t *v)
{
	frame	   *top;

	if (ld->depth == 0)
	{
		ld->root = v;
		return;
	}
	top = &ld->stack[ld->depth - 1];
	if (json_is_array(top->node))
		json_array_append_new(top->node, v);
	else
	{
		json_object_set_new(top->node, top->key, v);
		free(top->key);
		top->key = NULL;
	}
}

static void
register_anchor(loader *ld, const char *anchor, json_t *v)
{
	if (anchor)
		json_object_set(ld->anchors, anchor, v);
}

/* true when the current container is a mapping waiting for a key */
static bool
expecting_key(const loader *ld)
{
	const frame *top;

	if (ld->depth == 0)
		return false;
	top = &ld->stack[ld->depth - 1];
	return json_is_object(top->node) && top->key == NULL;
}

static void
take_key(loader *ld, const yaml_event_t *ev)
{
	frame	   *top = &ld->stack[ld->depth - 1];
	const char *k = (const char *) ev->data.scalar.value;
	int			line = (int) ev->start_mark.line + 1;
	int			col = (int) ev->start_mark.column + 1;
	char	   *path;
	json_t	   *first;

	if (strlen(k) != ev->data.scalar.length)
	{
		set_error(ld, line, col, "a key must not contain a NUL character");
		return;
	}
	if (ev->data.scalar.plain_implicit && strcmp(k, "<<") == 0)
	{
		set_error(ld, line, col, "merge keys (<<) are not supported: repeat the keys, or use an alias as a whole value");
		return;
	}
	if (json_object_get(top->node, k))
	{
		path = top->path[0] ? str_printf("%s.%s", top->path, k) : strdup(k);
		first = json_object_get(ld->locs, path);
		set_error(ld, line, col, "duplicate key \"%s\" (first at line %d, column %d)", k,
				  (int) json_integer_value(json_array_get(first, 0)),
				  (int) json_integer_value(json_array_get(first, 1)));
		free(path);
		return;
	}
	top->key = strdup(k);
	top->key_line = line;
	top->key_column = col;
}

static void
push(loader *ld, json_t *node, char *path, const yaml_char_t *anchor)
{
	frame	   *f;

	if (ld->depth == ld->cap)
	{
		ld->cap = ld->cap ? ld->cap * 2 : 16;
		ld->stack = realloc(ld->stack, ld->cap * sizeof(frame));
		if (!ld->stack)
			abort();
	}
	f = &ld->stack[ld->depth++];
	f->node = node;
	f->path = path;
	f->anchor = anchor ? strdup((const char *) anchor) : NULL;
	f->key = NULL;
}

static void
pop(loader *ld)
{
	frame		f = ld->stack[--ld->depth];

	register_anchor(ld, f.anchor, f.node);
	free(f.path);
	free(f.anchor);
	free(f.key);
	add_value(ld, f.node);
}

static void
clear_stack(loader *ld)
{
	while (ld->depth > 0)
	{
		frame	   *f = &ld->stack[--ld->depth];

		json_decref(f->node);
		free(f->path);
		free(f->anchor);
		free(f->key);
	}
}

/* ---------------------------------------------------------------- events */

static void
on_node_event(loader *ld, const yaml_event_t *ev)
{
	int			line = (int) ev->start_mark.line + 1;
	int			col = (int) ev->start_mark.column + 1;
	char	   *path;
	json_t	   *v;

	if (expecting_key(ld))
	{
		if (ev->type == YAML_SCALAR_EVENT)
			take_key(ld, ev);
		else
			set_error(ld, line, col, "a key must be a plain string, not a %s",
					  ev->type == YAML_ALIAS_EVENT ? "alias" :
					  ev->type == YAML_SEQUENCE_START_EVENT ? "sequence" : "mapping");
		return;
	}
	switch (ev->type)
	{
		case YAML_SCALAR_EVENT:
			if (!(v = scalar_value(ld, ev)))
				return;
			free(child_path(ld, line, col));
			register_anchor(ld, (const char *) ev->data.scalar.anchor, v);
			add_value(ld, v);
			break;
		case YAML_ALIAS_EVENT:
			v = json_object_get(ld->anchors, (const char *) ev->data.alias.anchor);
			if (!v)
			{
				set_error(ld, line, col, "alias *%s names no complete anchor before it",
						  (const char *) ev->data.alias.anchor);
				return;
			}
			free(child_path(ld, line, col));
			add_value(ld, json_deep_copy(v));
			break;
		case YAML_SEQUENCE_START_EVENT:
			path = child_path(ld, line, col);
			push(ld, json_array(), path, ev->data.sequence_start.anchor);
			break;
		case YAML_MAPPING_START_EVENT:
			path = child_path(ld, line, col);
			push(ld, json_object(), path, ev->data.mapping_start.anchor);
			break;
		default:
			break;
	}
}

static void
add_doc(ydocs *out, json_t *value, json_t *locs, int line, int column)
{
	out->docs = realloc(out->docs, (out->count + 1) * sizeof(ydoc));
	if (!out->docs)
		abort();
	out->docs[out->count].value = value;
	out->docs[out->count].locs = locs;
	out->docs[out->count].line = line;
	out->docs[out->count].column = column;
	out->count++;
}

bool
yaml_load(const char *text, size_t len, ydocs *out, yerror *err)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	loader		ld = {0};
	bool		done = false;
	int			doc_line = 1,
				doc_col = 1;

	out->docs = NULL;
	out->count = 0;
	memset(err, 0, sizeof(*err));
	ld.err = err;
	if (!yaml_parser_initialize(&parser))
		abort();
	yaml_parser_set_input_string(&parser, (const unsigned char *) text, len);
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);

	while (!done && !ld.failed)
	{
		if (!yaml_parser_parse(&parser, &ev))
		{
			const char *ctx = parser.context;

			char		where[64] = "";

			if (ctx)
				snprintf(where, sizeof(where), " (started at line %d, column %d)",
						 (int) parser.context_mark.line + 1, (int) parser.context_mark.column + 1);
			set_error(&ld, (int) parser.problem_mark.line + 1, (int) parser.problem_mark.column + 1,
					  "YAML syntax: %s%s%s%s", parser.problem ? parser.problem : "error",
					  ctx ? " " : "", ctx ? ctx : "", where);
			break;
		}
		switch (ev.type)
		{
			case YAML_STREAM_END_EVENT:
				done = true;
				break;
			case YAML_DOCUMENT_START_EVENT:
				doc_line = (int) ev.start_mark.line + 1;
				doc_col = (int) ev.start_mark.column + 1;
				ld.anchors = json_object();
				ld.locs = json_object();
				ld.root = NULL;
				break;
			case YAML_DOCUMENT_END_EVENT:
				add_doc(out, ld.root, ld.locs, doc_line, doc_col);
				json_decref(ld.anchors);
				ld.anchors = NULL;
				ld.locs = NULL;
				ld.root = NULL;
				break;
			case YAML_SEQUENCE_END_EVENT:
			case YAML_MAPPING_END_EVENT:
				pop(&ld);
				break;
			case YAML_SCALAR_EVENT:
			case YAML_ALIAS_EVENT:
			case YAML_SEQUENCE_START_EVENT:
			case YAML_MAPPING_START_EVENT:
				on_node_event(&ld, &ev);
				break;
			default:
				break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	clear_stack(&ld);
	free(ld.stack);
	json_decref(ld.anchors);
	if (ld.failed)
	{
		json_decref(ld.root);
		json_decref(ld.locs);
		ydocs_free(out);
		return false;
	}
	return true;
}

void
ydocs_free(ydocs *docs)
{
	for (size_t i = 0; i < docs->count; i++)
	{
		json_decref(docs->docs[i].value);
		json_decref(docs->docs[i].locs);
	}
	free(docs->docs);
	docs->docs = NULL;
	docs->count = 0;
}

void
ydoc_locate(const ydoc *doc, const char *path, int *line, int *column)
{
	char	   *p = strdup(path ? path : "");
	json_t	   *loc;

	/* drop the last component (".key" or "[i]") until a written node is found */
	while (!(loc = json_object_get(doc->locs, p)) && p[0])
	{
		char	   *dot = strrchr(p, '.');
		char	   *bracket = strrchr(p, '[');
		char	   *cut = dot > bracket ? dot : bracket;

		if (!cut)
			cut = p;
		*cut = '\0';
	}
	free(p);
	if (loc)
	{
		*line = (int) json_integer_value(json_array_get(loc, 0));
		*column = (int) json_integer_value(json_array_get(loc, 1));
	}
	else
	{
		*line = doc->line;
		*column = doc->column;
	}
}
