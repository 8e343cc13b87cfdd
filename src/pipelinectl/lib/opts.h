/*
 * lib/opts.h: the one option parser of every command.
 *
 * A command lists its options in a table; opts_parse() runs getopt_long over
 * it, stores each value where the table says, checks ranges, and handles the
 * options every command has: -d/--dbname CONNINFO and -h/--help.  Error
 * messages name the command and the option ("pipelinectl runner:
 * --concurrency must be an integer from 1 to 1024").
 *
 *   static bool once;
 *   static int n = 1;
 *   const opt_spec specs[] = {
 *       {"concurrency", 'c', OPT_INT, &n, 1, 1024, NULL},
 *       {"once", 0, OPT_FLAG, &once, 0, 0, NULL},
 *       {NULL}
 *   };
 *   int rc = opts_parse(&cmd, argc, argv, specs);
 *   if (rc >= 0) return rc;            // --help (0) or a usage error (2)
 *   // positional arguments: argv[cmd.first_arg .. argc)
 *
 * Locking: none (getopt's globals are reset on each call).
 */
#ifndef PCTL_OPTS_H
#define PCTL_OPTS_H

#include "base.h"

#include <stdio.h>

typedef enum
{
	OPT_FLAG,					/* bool *: set to true */
	OPT_STRING,					/* const char **: the argument */
	OPT_INT,					/* int *: an integer in [lo, hi] */
	OPT_SECONDS,				/* double *: a number of seconds in [lo, hi] */
	OPT_LIST,					/* opt_list *: every occurrence, in order (repeatable) */
} opt_kind;

/* the values of a repeatable option (pointers into argv); opt_list_free() after */
typedef struct opt_list
{
	const char **items;
	size_t count;
} opt_list;

void opt_list_free(opt_list *l);

typedef struct opt_spec
{
	const char *name;			/* long name without "--"; NULL ends the table */
	int short_name;				/* a letter, or 0 */
	opt_kind kind;
	void *target;
	double lo, hi;				/* range of OPT_INT and OPT_SECONDS */
	const char *must;			/* "must be ..." text replacing the generated one */
} opt_spec;

typedef struct opt_cmd
{
	const char *name;			/* "runner": used in messages */
	void (*usage) (FILE *f);	/* --help text (stdout) and after errors (stderr) */
	const char *conninfo;		/* in: from before the command; out: -d wins */
	int first_arg;				/* out: index of the first positional argument */
} opt_cmd;

/* -1 when the command should go on; else the exit code (0 after --help, 2) */
int opts_parse(opt_cmd *cmd, int argc, char **argv, const opt_spec *specs);

/*
 * Exactly one positional argument, a positive id ("PIPELINE_TASK_ID" names
 * it in messages): -1 when fine (*id set), else 2 after a message.
 */
int opts_one_id(opt_cmd *cmd, int argc, char **argv, const char *what, const char *noun,
				int64_t *id);

/* prints "pipelinectl CMD: MESSAGE" on stderr and returns EXIT_USAGE */
int usage_error(const opt_cmd *cmd, const char *fmt, ...) PCTL_PRINTF(2, 3);

#endif
