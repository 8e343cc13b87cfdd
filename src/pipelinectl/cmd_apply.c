/*
 * cmd_apply.c: "pipelinectl apply" and "pipelinectl lint": definitions as
 * code, in YAML (or JSON) files.
 *
 *   pipelinectl apply -f FILE|DIR|- [-f ...]
 *   pipelinectl lint [-f] FILE|DIR|- [...] [--offline]
 *
 * Every document carries a top-level "kind: job" or "kind: pipeline" and
 * otherwise the shape of pipeline.define_job / define_pipeline (SPEC §2); the
 * kind is removed before the document goes to the engine.  A directory means
 * its *.yaml, *.yml and *.json files in name order (not recursive).  All
 * definitions go to the engine in ONE transaction, jobs first, then
 * pipelines, each group in file and document order (but a pipeline after
 * those of the same apply its next_pipelines name); each runs under a
 * savepoint so that every refusal is reported, and any refusal rolls the
 * whole transaction back (nothing stored).  lint does the same and always
 * rolls back; lint --offline checks YAML and kinds only, without a database.
 * "kind: trigger" documents go to define_trigger after the pipelines (a
 * trigger names its pipeline; README "Triggers").
 *
 * A refusal prints "FILE:LINE:COLUMN: PATH: REASON": PATH and REASON are the
 * engine's own 22023 message, the location that of the node PATH names (the
 * nearest written ancestor when PATH names a missing key).
 *
 * Exit status: 0 every document valid (apply: all stored); 1 a document was
 * refused (YAML syntax, kind, or the engine), nothing stored; 2 usage,
 * unreadable file, connection, privilege or setup error.
 *
 * Locks: none of its own; define_job/define_pipeline take their advisory
 * locks on the names until the transaction ends.
 */
#define _GNU_SOURCE
#include "commands.h"
#include "lib/ydoc.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_DEF_INPUT (64 * 1024 * 1024)

/* one file and its documents */
typedef struct src_file
{
	char	   *name;			/* as shown in messages */
	ydocs		docs;
	char	  **kinds;			/* per document: "job", "pipeline" or NULL (skipped) */
} src_file;

typedef struct apply_state
{
	src_file   *files;
	size_t		nfiles;
	int			refused;		/* documents refused so far */
} apply_state;

static void
apply_usage(FILE *f, bool lint)
{
	if (lint)
		fprintf(f,
				"Usage: pipelinectl lint [-f] FILE|DIR|- [...] [--offline]\n"
				"Check definitions without storing them: YAML syntax, kind, and (unless\n"
				"--offline) the engine's own validation in a transaction that is rolled back.\n"
				"\n"
				"  -f, --filename PATH       a file, a directory (*.yaml, *.yml, *.json) or - (stdin)\n"
				"      --offline             no database: YAML and kind only\n"
				"  -d, --dbname CONNINFO     database connection string (default: PG* environment)\n"
				"  -h, --help                show this help\n"
				"\n"
				"Exit status: 0 valid, 1 a document was refused, 2 usage/connection/setup error.\n");
	else
		fprintf(f,
				"Usage: pipelinectl apply -f FILE|DIR|- [-f ...]\n"
				"Define the jobs and pipelines of YAML (or JSON) documents, all in one\n"
				"transaction: all are stored, or none.\n"
				"\n"
				"  -f, --filename PATH       a file, a directory (*.yaml, *.yml, *.json) or - (stdin)\n"
				"  -d, --dbname CONNINFO     database connection string (default: PG* environment)\n"
				"  -h, --help                show this help\n"
				"\n"
				"Exit status: 0 all stored, 1 a document was refused (nothing stored),\n"
				"2 usage/connection/privilege/setup error.\n");
}

/* ---------------------------------------------------------------- reading */

static bool
has_def_suffix(const char *name)
{
	size_t		n = strlen(name);

	return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
		(n > 4 && strcmp(name + n - 4, ".yml") == 0) ||
		(n > 5 && strcmp(name + n - 5, ".json") == 0);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static char *
read_stream(FILE *f, size_t *len)
{
	strbuf		sb;
	char		buf[65536];
	size_t		n;

	sb_init(&sb);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
	{
		if (sb.len + n > MAX_DEF_INPUT)
		{
			sb_free(&sb);
			errno = EFBIG;
			return NULL;
		}
		sb_append(&sb, buf, n);
	}
	if (ferror(f))
	{
		sb_free(&sb);
		return NULL;
	}
	*len = sb.len;
	if (!sb.data)
		return xstrdup("");
	return sb_steal(&sb);
}

static void
add_file(apply_state *st, const char *name)
{
	st->files = xrealloc(st->files, (st->nfiles + 1) * sizeof(src_file));
	memset(&st->files[st->nfiles], 0, sizeof(src_file));
	st->files[st->nfiles].name = xstrdup(name);
	st->nfiles++;
}

/* expands one -f argument into files; false (message printed) when unreadable */
static bool
collect(apply_state *st, const char *arg)
{
	struct stat sb;
	DIR		   *d;
	struct dirent *de;
	char	  **names = NULL;
	size_t		n = 0;

	if (strcmp(arg, "-") == 0)
	{
		add_file(st, "-");
		return true;
	}
	if (stat(arg, &sb) != 0)
	{
		fprintf(stderr, "pipelinectl: %s: %s\n", arg, strerror(errno));
		return false;
	}
	if (!S_ISDIR(sb.st_mode))
	{
		add_file(st, arg);
		return true;
	}
	if (!(d = opendir(arg)))
	{
		fprintf(stderr, "pipelinectl: %s: %s\n", arg, strerror(errno));
		return false;
	}
	while ((de = readdir(d)))
	{
		if (de->d_name[0] == '.' || !has_def_suffix(de->d_name))
			continue;
		names = xrealloc(names, (n + 1) * sizeof(char *));
		names[n++] = xasprintf("%s%s%s", arg, arg[strlen(arg) - 1] == '/' ? "" : "/", de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(char *), cmp_str);
	for (size_t i = 0; i < n; i++)
	{
		add_file(st, names[i]);
		free(names[i]);
	}
	free(names);
	if (n == 0)
		fprintf(stderr, "pipelinectl: %s: no *.yaml, *.yml or *.json file in this directory\n", arg);
	return n > 0;
}

static void
refuse(apply_state *st, const char *file, int line, int column, const char *fmt,...) PCTL_PRINTF(5, 6);

static void
refuse(apply_state *st, const char *file, int line, int column, const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "%s:%d:%d: ", file, line, column);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	st->refused++;
}

/*
 * A "kind: schedule" document (pipelinectl's own kind): name, cron and
 * pipeline (strings) and params (an object); checked here, stored by
 * pipeline.schedule().
 */
static bool
check_schedule(apply_state *st, const char *file, const ydoc *doc)
{
	static const char *const required[] = {"name", "cron", "pipeline"};
	const char *key;
	json_t	   *v;
	int			l,
				c;

	json_object_foreach(doc->value, key, v)
	{
		if (strcmp(key, "name") != 0 && strcmp(key, "cron") != 0 &&
			strcmp(key, "pipeline") != 0 && strcmp(key, "params") != 0)
		{
			ydoc_locate(doc, key, &l, &c);
			refuse(st, file, l, c, "%s: unknown key (allowed keys: kind, name, cron, pipeline, params)", key);
			return false;
		}
	}
	for (size_t i = 0; i < ARRAY_LEN(required); i++)
	{
		v = json_object_get(doc->value, required[i]);
		ydoc_locate(doc, required[i], &l, &c);
		if (!v)
		{
			refuse(st, file, l, c, "%s: is required", required[i]);
			return false;
		}
		if (!json_is_string(v))
		{
			refuse(st, file, l, c, "%s: must be a string", required[i]);
			return false;
		}
	}
	v = json_object_get(doc->value, "params");
	if (v && !json_is_object(v))
	{
		ydoc_locate(doc, "params", &l, &c);
		refuse(st, file, l, c, "params: must be an object");
		return false;
	}
	return true;
}

/*
 * Loads every file and checks each document's kind (removing it).  Empty
 * documents are skipped.  Refusals are counted in st->refused; false only
 * when a file cannot be read (exit 2).
 */
static bool
load_files(apply_state *st)
{
	for (size_t i = 0; i < st->nfiles; i++)
	{
		src_file   *f = &st->files[i];
		const char *shown = strcmp(f->name, "-") == 0 ? "<stdin>" : f->name;
		FILE	   *in = strcmp(f->name, "-") == 0 ? stdin : fopen(f->name, "r");
		char	   *text;
		size_t		len = 0;
		yerror		err;

		if (strcmp(f->name, "-") == 0)
		{
			free(f->name);
			f->name = xstrdup(shown);
		}
		if (!in)
		{
			fprintf(stderr, "pipelinectl: %s: %s\n", f->name, strerror(errno));
			return false;
		}
		text = read_stream(in, &len);
		if (in != stdin)
			fclose(in);
		if (!text)
		{
			fprintf(stderr, "pipelinectl: %s: %s\n", f->name,
					errno == EFBIG ? "file larger than 64 MB" : strerror(errno));
			return false;
		}
		if (!yaml_load(text, len, &f->docs, &err))
			refuse(st, f->name, err.line, err.column, "%s", err.message);
		free(text);
		f->kinds = xcalloc(f->docs.count + 1, sizeof(char *));
		for (size_t k = 0; k < f->docs.count; k++)
		{
			ydoc	   *doc = &f->docs.docs[k];
			json_t	   *kind;
			int			l,
						c;

			if (!doc->value || json_is_null(doc->value))
				continue;
			ydoc_locate(doc, "", &l, &c);
			if (!json_is_object(doc->value))
			{
				refuse(st, f->name, l, c, "a document must be a mapping with \"kind: job\" or \"kind: pipeline\"");
				continue;
			}
			kind = json_object_get(doc->value, "kind");
			if (!kind)
			{
				refuse(st, f->name, l, c, "kind: is required (kind: job or kind: pipeline)");
				continue;
			}
			ydoc_locate(doc, "kind", &l, &c);
			if (!json_is_string(kind) ||
				(strcmp(json_string_value(kind), "job") != 0 &&
				 strcmp(json_string_value(kind), "pipeline") != 0 &&
				 strcmp(json_string_value(kind), "schedule") != 0 &&
				 strcmp(json_string_value(kind), "trigger") != 0))
			{
				refuse(st, f->name, l, c, "kind: must be job, pipeline, schedule or trigger");
				continue;
			}
			f->kinds[k] = xstrdup(json_string_value(kind));
			json_object_del(doc->value, "kind");
			if (strcmp(f->kinds[k], "schedule") == 0 && !check_schedule(st, f->name, doc))
			{
				free(f->kinds[k]);
				f->kinds[k] = NULL;
			}
		}
	}
	return true;
}

static void
free_files(apply_state *st)
{
	for (size_t i = 0; i < st->nfiles; i++)
	{
		for (size_t k = 0; k < st->files[i].docs.count; k++)
			free(st->files[i].kinds ? st->files[i].kinds[k] : NULL);
		free(st->files[i].kinds);
		ydocs_free(&st->files[i].docs);
		free(st->files[i].name);
	}
	free(st->files);
}

/* ---------------------------------------------------------------- the engine */

/*
 * Splits an engine refusal 'job "x": PATH: REASON' or 'pipeline definition:
 * PATH: REASON' into path and reason; false when it has another shape.
 */
static bool
split_refusal(const char *msg, char **path, const char **reason)
{
	const char *p = msg;
	const char *colon;

	if (strncmp(p, "job ", 4) == 0)
		p += 4;
	else if (strncmp(p, "pipeline ", 9) == 0)
		p += 9;
	else if (strncmp(p, "trigger ", 8) == 0)
		p += 8;
	else
		return false;
	if (strncmp(p, "definition: ", 12) == 0)
		p += 12;
	else if (*p == '"')
	{
		const char *q = strstr(p, "\": ");

		if (!q)
			return false;
		p = q + 3;
	}
	else
		return false;
	colon = strstr(p, ": ");
	if (!colon || colon == p)
		return false;
	for (const char *c = p; c < colon; c++)
		if (*c == ' ' || *c == '"')
			return false;
	*path = xstrndup(p, (size_t) (colon - p));
	*reason = colon + 2;
	return true;
}

/* runs one statement; false with err filled */
static bool
exec_simple(db_conn *db, const char *sql, db_error *err)
{
	PGresult   *res = db_query(db, sql, 0, NULL, err);

	PQclear(res);
	return res != NULL;
}

static bool define_doc(apply_state *st, db_conn *db, src_file *f, size_t k, bool sched,
					   const char *sql, const char *kind, bool lint, strbuf *out, db_error *err);

/* Is a pipeline document named `name` among those not sent yet? */
static bool
pipeline_unsent(apply_state *st, bool **sent, const char *name)
{
	for (size_t i = 0; i < st->nfiles; i++)
		for (size_t k = 0; k < st->files[i].docs.count; k++)
		{
			const json_t *n = json_object_get(st->files[i].docs.docs[k].value, "name");

			if (!sent[i][k] && st->files[i].kinds[k] && strcmp(st->files[i].kinds[k], "pipeline") == 0 &&
				json_is_string(n) && strcmp(json_string_value(n), name) == 0)
				return true;
		}
	return false;
}

/*
 * May this pipeline document go now?  The engine refuses a next_pipelines
 * entry naming a pipeline that does not exist yet, so a pipeline the document
 * chains (other than itself) and that this apply defines goes first.
 */
static bool
chain_ready(apply_state *st, bool **sent, ydoc *doc)
{
	const json_t *next = json_object_get(doc->value, "next_pipelines");
	const json_t *self = json_object_get(doc->value, "name");
	size_t		i;
	const json_t *e;

	if (!json_is_array(next))
		return true;
	json_array_foreach(next, i, e)
	{
		const json_t *p = json_object_get(e, "pipeline");

		if (!json_is_string(p) ||
			(json_is_string(self) && strcmp(json_string_value(p), json_string_value(self)) == 0))
			continue;
		if (pipeline_unsent(st, sent, json_string_value(p)))
			return false;
	}
	return true;
}

/*
 * Sends the documents of one kind; prints each stored version (to out) or
 * refusal.  Returns false on a fatal error (exit 2), err filled.  Pipelines
 * go in file and document order, except that a pipeline goes after the
 * pipelines of this apply it chains (next_pipelines); when they chain each
 * other in a circle, the rest go in file order and the engine refuses them
 * (a chained pipeline must exist already).
 */
static bool
define_kind(apply_state *st, db_conn *db, const char *kind, bool lint, strbuf *out, db_error *err)
{
	bool		sched = strcmp(kind, "schedule") == 0;
	bool		chains = strcmp(kind, "pipeline") == 0;
	const char *sql = sched ? "SELECT pipeline.schedule($1, $2, $3, $4::jsonb)" :
		strcmp(kind, "job") == 0 ? "SELECT pipeline.define_job($1::jsonb)" :
		strcmp(kind, "trigger") == 0 ? "SELECT pipeline.define_trigger($1::jsonb)" :
		"SELECT pipeline.define_pipeline($1::jsonb)";
	bool	  **sent = xcalloc(st->nfiles + 1, sizeof(bool *));
	bool		ok = true;
	bool		force = false;

	for (size_t i = 0; i < st->nfiles; i++)
		sent[i] = xcalloc(st->files[i].docs.count + 1, sizeof(bool));
	for (;;)
	{
		bool		progress = false;
		bool		waiting = false;

		for (size_t i = 0; ok && i < st->nfiles; i++)
		{
			src_file   *f = &st->files[i];

			for (size_t k = 0; ok && k < f->docs.count; k++)
			{
				if (!f->kinds[k] || strcmp(f->kinds[k], kind) != 0 || sent[i][k])
					continue;
				if (chains && !force && !chain_ready(st, sent, &f->docs.docs[k]))
				{
					waiting = true;
					continue;
				}
				sent[i][k] = true;
				progress = true;
				ok = define_doc(st, db, f, k, sched, sql, kind, lint, out, err);
			}
		}
		if (!ok || !waiting)
			break;
		if (!progress)
			force = true;		/* a circle: the engine names it */
	}
	for (size_t i = 0; i < st->nfiles; i++)
		free(sent[i]);
	free(sent);
	return ok;
}

/*
 * Sends document k of file f (define_kind); false on a fatal error (exit 2).
 */
static bool
define_doc(apply_state *st, db_conn *db, src_file *f, size_t k, bool sched, const char *sql,
		   const char *kind, bool lint, strbuf *out, db_error *err)
{
	ydoc	   *doc = &f->docs.docs[k];
	char	   *text;
	const char *params[4];
	const json_t *name;
	PGresult   *res;

	if (!exec_simple(db, "SAVEPOINT pipelinectl_apply", err))
		return false;
	name = json_object_get(doc->value, "name");
	if (sched)
	{
		json_t	   *p = json_object_get(doc->value, "params");

		text = p ? json_dumps(p, JSON_COMPACT) : xstrdup("{}");
		params[0] = json_string_value(name);
		params[1] = json_string_value(json_object_get(doc->value, "cron"));
		params[2] = json_string_value(json_object_get(doc->value, "pipeline"));
		params[3] = text;
		res = db_query(db, sql, 4, params, err);
	}
	else
	{
		text = json_dumps(doc->value, JSON_COMPACT | JSON_ENCODE_ANY);
		params[0] = text;
		res = db_query(db, sql, 1, params, err);
	}
	free(text);
	if (res && sched)
		sb_printf(out, "schedule %s: %s \"%s\" runs pipeline %s\n", json_string_value(name),
				  lint ? "valid," : "cron", params[1], params[2]);
	if (res && !sched)
		sb_printf(out, "%s %s: %s %s\n", kind, json_is_string(name) ? json_string_value(name) : "?",
				  lint ? "valid, would be version" : "version", db_value(res, 0, 0));
	if (res)
	{
		PQclear(res);
		return exec_simple(db, "RELEASE SAVEPOINT pipelinectl_apply", err);
	}
	if (db_error_exit_code(err) == EXIT_USAGE || strcmp(err->sqlstate, "0A000") == 0)
		return false;	/* privilege, set-up (pg_cron missing), connection: exit 2 */
	{
		char	   *path = NULL;
		const char *reason;
		int			l,
					c;

		if (strcmp(err->sqlstate, "22023") == 0 && split_refusal(err->message, &path, &reason))
		{
			ydoc_locate(doc, path, &l, &c);
			refuse(st, f->name, l, c, "%s: %s", path, reason);
		}
		else
		{
			ydoc_locate(doc, "", &l, &c);
			refuse(st, f->name, l, c, "%s", err->message);
		}
		free(path);
	}
	if (!exec_simple(db, "ROLLBACK TO SAVEPOINT pipelinectl_apply", err))
		return false;
	return true;
}

static void
apply_help(FILE *f)
{
	apply_usage(f, false);
}

static void
lint_help(FILE *f)
{
	apply_usage(f, true);
}

static int
apply_main(int argc, char **argv, const char *conninfo, bool lint)
{
	apply_state st = {0};
	bool		offline = false;
	db_conn		db;
	db_error	err;
	int			rc = 0;
	size_t		ndefs = 0;
	strbuf		out;
	opt_list	paths = {0};
	opt_cmd		cmd = {lint ? "lint" : "apply", lint ? lint_help : apply_help, conninfo, 0};
	const opt_spec apply_specs[] = {
		{"filename", 'f', OPT_LIST, &paths, 0, 0, NULL},
		{NULL, 0, 0, NULL, 0, 0, NULL}
	};
	const opt_spec lint_specs[] = {
		{"filename", 'f', OPT_LIST, &paths, 0, 0, NULL},
		{"offline", 0, OPT_FLAG, &offline, 0, 0, NULL},
		{NULL, 0, 0, NULL, 0, 0, NULL}
	};

	log_init(cmd.name);
	log_set_min_level(LOG_WARN);
	if ((rc = opts_parse(&cmd, argc, argv, lint ? lint_specs : apply_specs)) >= 0)
	{
		opt_list_free(&paths);
		return rc;
	}
	rc = 0;
	conninfo = cmd.conninfo;
	if (!lint && cmd.first_arg < argc)
	{
		opt_list_free(&paths);
		return usage_error(&cmd, "unexpected argument \"%s\" (files are given with -f)", argv[cmd.first_arg]);
	}
	for (size_t i = 0; i < paths.count; i++)
		if (!collect(&st, paths.items[i]))
			rc = EXIT_USAGE;
	for (int i = cmd.first_arg; i < argc; i++)
		if (!collect(&st, argv[i]))
			rc = EXIT_USAGE;
	opt_list_free(&paths);
	if (rc == 0 && st.nfiles == 0)
	{
		fprintf(stderr, "pipelinectl %s: no input: give -f FILE, -f DIR or -f - (stdin)\n", cmd.name);
		rc = EXIT_USAGE;
	}
	if (rc != 0 || !load_files(&st))
	{
		free_files(&st);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < st.nfiles; i++)
		for (size_t k = 0; k < st.files[i].docs.count; k++)
			ndefs += st.files[i].kinds[k] != NULL;
	if (st.refused > 0)
	{
		fprintf(stderr, "pipelinectl %s: %d document%s refused; nothing %s\n", cmd.name, st.refused,
				st.refused == 1 ? "" : "s", lint ? "checked against the database" : "stored");
		free_files(&st);
		return 1;
	}
	if (offline)
	{
		printf("%zu definition%s: YAML and kind valid (offline: the engine did not check them)\n",
			   ndefs, ndefs == 1 ? "" : "s");
		free_files(&st);
		return 0;
	}
	if (ndefs == 0)
	{
		fprintf(stderr, "pipelinectl %s: the input holds no document\n", cmd.name);
		free_files(&st);
		return 1;
	}

	if ((rc = db_open_checked(&db, conninfo, cmd.name)) >= 0)
	{
		free_files(&st);
		return rc;
	}
	rc = 0;
	sb_init(&out);
	if (!exec_simple(&db, "BEGIN", &err) ||
		!define_kind(&st, &db, "job", lint, &out, &err) ||
		!define_kind(&st, &db, "pipeline", lint, &out, &err) ||
		!define_kind(&st, &db, "schedule", lint, &out, &err) ||
		!define_kind(&st, &db, "trigger", lint, &out, &err))
	{
		rc = db_fail(cmd.name, &err);
		if (rc == 1)
			rc = EXIT_USAGE;
	}
	else if (st.refused > 0 || lint)
	{
		if (!exec_simple(&db, "ROLLBACK", &err))
			rc = db_fail(cmd.name, &err);
		else if (st.refused > 0)
		{
			fprintf(stderr, "pipelinectl %s: %d document%s refused; nothing stored\n", cmd.name,
					st.refused, st.refused == 1 ? "" : "s");
			rc = 1;
		}
		else
		{
			fputs(sb_str(&out), stdout);
			printf("%zu definition%s valid; nothing stored (lint)\n", ndefs, ndefs == 1 ? "" : "s");
		}
	}
	else if (!exec_simple(&db, "COMMIT", &err))
	{
		rc = db_fail(cmd.name, &err);
		if (rc == 1)
			rc = EXIT_USAGE;
	}
	else
		fputs(sb_str(&out), stdout);
	sb_free(&out);
	db_close(&db);
	free_files(&st);
	return rc;
}

int
cmd_apply(int argc, char **argv, const char *conninfo)
{
	return apply_main(argc, argv, conninfo, false);
}

int
cmd_lint(int argc, char **argv, const char *conninfo)
{
	return apply_main(argc, argv, conninfo, true);
}
