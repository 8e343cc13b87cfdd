/*
 * lib/opts.c: see opts.h.
 */
#define _GNU_SOURCE
#include "opts.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define LONG_ONLY_BASE 256

int
usage_error(const opt_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s %s: ", PCTL_NAME, cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

static int
bad_value(const opt_cmd *cmd, const opt_spec *s)
{
	if (s->must)
		return usage_error(cmd, "--%s must be %s", s->name, s->must);
	if (s->kind == OPT_INT)
		return usage_error(cmd, "--%s must be an integer from %g to %g", s->name, s->lo, s->hi);
	return usage_error(cmd, "--%s must be a number of seconds from %g to %g", s->name, s->lo, s->hi);
}

int
opts_parse(opt_cmd *cmd, int argc, char **argv, const opt_spec *specs)
{
	size_t n = 0;
	struct option *longs;
	strbuf shorts;
	int c, rc = -1;

	while (specs[n].name)
		n++;
	longs = xcalloc(n + 3, sizeof(struct option));
	sb_init(&shorts);
	for (size_t i = 0; i < n; i++)
	{
		const opt_spec *s = &specs[i];

		longs[i].name = s->name;
		longs[i].has_arg = s->kind == OPT_FLAG ? no_argument : required_argument;
		longs[i].val = s->short_name ? s->short_name : LONG_ONLY_BASE + (int) i;
		if (s->short_name)
		{
			sb_putc(&shorts, (char) s->short_name);
			if (s->kind != OPT_FLAG)
				sb_putc(&shorts, ':');
		}
	}
	longs[n].name = "dbname";
	longs[n].has_arg = required_argument;
	longs[n].val = 'd';
	longs[n + 1].name = "help";
	longs[n + 1].has_arg = no_argument;
	longs[n + 1].val = 'h';
	sb_puts(&shorts, "d:h");

	optind = 1;
	opterr = 1;
	while (rc < 0 && (c = getopt_long(argc, argv, sb_str(&shorts), longs, NULL)) != -1)
	{
		const opt_spec *s = NULL;

		if (c == 'd')
		{
			cmd->conninfo = optarg;
			continue;
		}
		if (c == 'h')
		{
			cmd->usage(stdout);
			rc = EXIT_OK;
			break;
		}
		if (c >= LONG_ONLY_BASE && (size_t) (c - LONG_ONLY_BASE) < n)
			s = &specs[c - LONG_ONLY_BASE];
		else
			for (size_t i = 0; i < n && !s; i++)
				if (specs[i].short_name == c)
					s = &specs[i];
		if (!s)
		{
			/* getopt said what was wrong */
			cmd->usage(stderr);
			rc = EXIT_USAGE;
			break;
		}
		switch (s->kind)
		{
			case OPT_FLAG:
				*(bool *) s->target = true;
				break;
			case OPT_STRING:
				*(const char **) s->target = optarg;
				break;
			case OPT_LIST:
				{
					opt_list *l = (opt_list *) s->target;

					l->items = xrealloc(l->items, (l->count + 1) * sizeof(char *));
					l->items[l->count++] = optarg;
				}
				break;
			case OPT_INT:
				if (!parse_int_range(optarg, (int) s->lo, (int) s->hi, (int *) s->target))
					rc = bad_value(cmd, s);
				break;
			case OPT_SECONDS:
				if (!parse_seconds(optarg, s->lo, s->hi, (double *) s->target))
					rc = bad_value(cmd, s);
				break;
		}
	}
	cmd->first_arg = optind;
	free(longs);
	sb_free(&shorts);
	return rc;
}

int
opts_one_id(opt_cmd *cmd, int argc, char **argv, const char *what, const char *noun, int64_t *id)
{
	int i = cmd->first_arg;

	if (i == argc - 1 && parse_positive_id(argv[i], id))
		return -1;
	if (i >= argc)
		usage_error(cmd, "missing %s", what);
	else if (i < argc - 1)
		usage_error(cmd, "unexpected argument \"%s\"", argv[i + 1]);
	else
		usage_error(cmd, "\"%s\" is not a %s id", argv[i], noun);
	cmd->usage(stderr);
	return EXIT_USAGE;
}

void
opt_list_free(opt_list *l)
{
	free(l->items);
	l->items = NULL;
	l->count = 0;
}
