/*
 * cmd_watch.c: "pipelinectl watch PIPELINE_TASK_ID" follows a run until it ends.
 *
 * LISTEN pipeline_events; on start, on each notification (and every second
 * or two as a fallback) it reads the run from pipeline.pipeline_tasks and its
 * tasks from pipeline.job_tasks.
 *
 * On a terminal it redraws one screen: header, progress bar, stages with
 * their tasks (coloured stage, duration, message).  Otherwise it prints one
 * line per change ("12:00:01 build/linux  scheduling -> active") and a
 * summary line at the end.
 *
 * Exit status: 0 when the run succeeded, 1 when it failed or was canceled,
 * 2 on a usage or connection error or an unknown id, 130 when interrupted.
 *
 * Locking: none (reads only).
 */
#define _GNU_SOURCE
#include "commands.h"

#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

typedef struct wtask
{
	char *id;					/* job task id */
	int stage_index;
	char *stage_name;
	int task_index;
	char *task_name;
	char *stage;
	char *message;
	char *gate;
	char *actors;				/* who must act on the waiting gate: "alice, bob" */
	char *waiting;				/* SPEC §13: "waiting for build/fast" or a manual task's play */
	bool ignore_failed;
	int attempt;
	double secs;				/* < 0 when not started */
} wtask;

typedef struct wrun
{
	bool found;
	char *stage;
	char *pipeline_name;
	char *version;
	char *message;
	char *run_by;
	bool dry_run;
	double secs;
	wtask *tasks;
	int ntasks;
} wrun;

typedef struct watcher
{
	int64_t id;
	char idstr[24];
	db_conn db;
	bool tty;
	bool colour;
	bool utf8;
	bool first_draw;
	bool printed_initial;
	wrun prev;
	bool have_prev;
} watcher;

static void
wrun_free(wrun *r)
{
	free(r->stage);
	free(r->pipeline_name);
	free(r->version);
	free(r->message);
	free(r->run_by);
	for (int i = 0; i < r->ntasks; i++)
	{
		free(r->tasks[i].stage_name);
		free(r->tasks[i].task_name);
		free(r->tasks[i].stage);
		free(r->tasks[i].message);
		free(r->tasks[i].gate);
		free(r->tasks[i].actors);
		free(r->tasks[i].waiting);
		free(r->tasks[i].id);
	}
	free(r->tasks);
	memset(r, 0, sizeof(*r));
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static char *
dup_or(const char *s, const char *dflt)
{
	return xstrdup(s ? s : dflt);
}

static double
num_or(const char *s, double dflt)
{
	double v;

	if (s && parse_seconds(s, -1e12, 1e12, &v))
		return v;
	return dflt;
}

/* false on a database error (err filled); true with r->found false when absent */
static bool
fetch(watcher *w, wrun *r, db_error *err)
{
	const char *params[1] = {w->idstr};
	PGresult *res;

	memset(r, 0, sizeof(*r));
	res = db_query(&w->db,
				   "SELECT stage, pipeline_name, pipeline_version, message, run_by, dry_run,"
				   " EXTRACT(epoch FROM (COALESCE(end_at, clock_timestamp()) - start_at))::float8"
				   " FROM pipeline.pipeline_tasks WHERE id = $1::bigint",
				   1, params, err);
	if (!res)
		return false;
	if (PQntuples(res) == 0)
	{
		PQclear(res);
		return true;
	}
	r->found = true;
	r->stage = dup_or(db_value(res, 0, 0), "?");
	r->pipeline_name = dup_or(db_value(res, 0, 1), "?");
	r->version = dup_or(db_value(res, 0, 2), "?");
	r->message = dup_or_null(db_value(res, 0, 3));
	r->run_by = dup_or_null(db_value(res, 0, 4));
	r->dry_run = db_value(res, 0, 5) && db_value(res, 0, 5)[0] == 't';
	r->secs = num_or(db_value(res, 0, 6), -1);
	PQclear(res);

	/*
	 * gate, audit, confirm and ignore_failed are not fixed columns: read
	 * through to_jsonb so that their absence is harmless
	 */
	res = db_query(&w->db,
				   "SELECT stage_index, stage_name, task_index, task_name, stage, message,"
				   " to_jsonb(t)->>'gate', attempt,"
				   " EXTRACT(epoch FROM (COALESCE(end_at, clock_timestamp()) - start_at))::float8,"
				   " id, (SELECT string_agg(x, ', ') FROM jsonb_array_elements_text("
				   "        CASE to_jsonb(t)->>'gate'"
				   "        WHEN 'audit' THEN coalesce(to_jsonb(t)->'audit'->'auditors', '[]')"
				   "        WHEN 'confirm' THEN coalesce(to_jsonb(t)->'confirm'->'checkers', '[]')"
				   "        ELSE '[]' END) x),"
				   " coalesce((to_jsonb(t)->>'ignore_failed')::boolean, false),"
				   /* SPEC §13 (dag runs): what a pending task waits for */
				   " CASE WHEN t.stage <> 'pending' OR t.gate IS NOT NULL THEN NULL"
				   "  WHEN (to_jsonb(t)->>'needs_left')::int > 0 THEN 'waiting for ' || ("
				   "   SELECT string_agg(n.stage_name || '/' || n.task_name, ', ' ORDER BY n.id)"
				   "     FROM pipeline.job_tasks n"
				   "    WHERE n.id IN (SELECT jsonb_array_elements_text(to_jsonb(t)->'needs')::bigint)"
				   "      AND (n.stage < 'canceled' OR n.gate IS NOT NULL))"
				   "  WHEN to_jsonb(t)->>'run_when' = 'manual'"
				   "  THEN 'manual: pipelinectl play ' || t.id END"
				   " FROM pipeline.job_tasks t WHERE pipeline_task_id = $1::bigint"
				   " ORDER BY stage_index, task_index, id",
				   1, params, err);
	if (!res)
	{
		wrun_free(r);
		return false;
	}
	r->ntasks = PQntuples(res);
	r->tasks = xcalloc((size_t) (r->ntasks ? r->ntasks : 1), sizeof(wtask));
	for (int i = 0; i < r->ntasks; i++)
	{
		wtask *t = &r->tasks[i];

		t->stage_index = (int) num_or(db_value(res, i, 0), 0);
		t->stage_name = dup_or(db_value(res, i, 1), "?");
		t->task_index = (int) num_or(db_value(res, i, 2), 0);
		t->task_name = dup_or(db_value(res, i, 3), "?");
		t->stage = dup_or(db_value(res, i, 4), "?");
		t->message = dup_or_null(db_value(res, i, 5));
		t->gate = dup_or_null(db_value(res, i, 6));
		t->attempt = (int) num_or(db_value(res, i, 7), 1);
		t->secs = num_or(db_value(res, i, 8), -1);
		t->id = dup_or(db_value(res, i, 9), "?");
		t->actors = dup_or_null(db_value(res, i, 10));
		t->ignore_failed = db_value(res, i, 11) && db_value(res, i, 11)[0] == 't';
		t->waiting = dup_or_null(db_value(res, i, 12));
	}
	PQclear(res);
	return true;
}

static bool
task_done(const wtask *t)
{
	return stage_is_complete(t->stage) && !t->gate;
}

/*
 * What a waiting gate needs and from whom:
 * "waiting for approval by alice, bob: pipelinectl approve 12"
 */
static void
gate_text(const wtask *t, char *buf, size_t n)
{
	bool		audit = strcmp(t->gate, "audit") == 0;

	snprintf(buf, n, "waiting for %s by %s: pipelinectl approve %s",
			 audit ? "approval" : strcmp(t->gate, "confirm") == 0 ? "confirmation" : t->gate,
			 t->actors ? t->actors : "(nobody listed)", t->id);
}

/*
 * The task that failed the run: the first (by end) failed task that does not
 * ignore failures; NULL when the run did not fail or none is found.
 */
static const wtask *
failing_task(const wrun *r)
{
	const wtask *best = NULL;

	if (strcmp(r->stage, "failed") != 0)
		return NULL;
	for (int i = 0; i < r->ntasks; i++)
	{
		const wtask *t = &r->tasks[i];

		if (strcmp(t->stage, "failed") == 0 && !t->ignore_failed && !best)
			best = t;
	}
	return best;
}

/* ---------------------------------------------------------------- colours */

static const char *
stage_colour(const char *stage)
{
	if (!stage)
		return "";
	if (strcmp(stage, "succeeded") == 0)
		return "\033[32m";		/* green */
	if (strcmp(stage, "failed") == 0)
		return "\033[31m";		/* red */
	if (strcmp(stage, "canceled") == 0 || strcmp(stage, "canceling") == 0)
		return "\033[90m";		/* grey */
	if (strcmp(stage, "skipped") == 0)
		return "\033[2m";		/* dim */
	if (strcmp(stage, "active") == 0)
		return "\033[34;1m";	/* bright blue */
	if (strcmp(stage, "scheduling") == 0 || strcmp(stage, "creating") == 0)
		return "\033[33m";		/* yellow */
	return "\033[2m";			/* pending */
}

static const char *
stage_mark(const watcher *w, const char *stage)
{
	bool u = w->utf8;

	if (strcmp(stage, "succeeded") == 0)
		return u ? "✔" : "+";
	if (strcmp(stage, "failed") == 0)
		return u ? "✘" : "x";
	if (strcmp(stage, "canceled") == 0 || strcmp(stage, "canceling") == 0)
		return u ? "⊘" : "/";
	if (strcmp(stage, "skipped") == 0)
		return u ? "↷" : "~";
	if (strcmp(stage, "active") == 0)
		return u ? "▶" : ">";
	if (strcmp(stage, "scheduling") == 0 || strcmp(stage, "creating") == 0)
		return u ? "◌" : ".";
	return u ? "○" : "o";
}

/* ------------------------------------------------------------ the screen */

/* appends s, truncated to fit *room display columns (approximated by characters) */
static void
put_fit(strbuf *sb, const char *s, int *room)
{
	for (const unsigned char *p = (const unsigned char *) s; *p && *room > 0;)
	{
		int n = 1;

		if (*p >= 0xF0)
			n = 4;
		else if (*p >= 0xE0)
			n = 3;
		else if (*p >= 0xC0)
			n = 2;
		for (int i = 1; i < n; i++)
			if (!p[i])
				return;
		if (*p == '\n' || *p == '\r' || *p == '\t' || *p == 0x1b)
			sb_putc(sb, ' ');
		else
			sb_append(sb, (const char *) p, (size_t) n);
		p += n;
		(*room)--;
	}
}

static int
term_width(void)
{
	struct winsize ws;

	if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 80;
}

static void
draw_screen(watcher *w, const wrun *r, bool reconnecting)
{
	strbuf sb;
	int width = term_width();
	int done = 0, barw, filled;
	char dur[32], line[512];
	int room;
	const char *reset = w->colour ? "\033[0m" : "";
	const char *bold = w->colour ? "\033[1m" : "";
	const char *dim = w->colour ? "\033[2m" : "";

	for (int i = 0; i < r->ntasks; i++)
		if (task_done(&r->tasks[i]))
			done++;

	sb_init(&sb);
	if (w->first_draw)
	{
		sb_puts(&sb, "\033[2J");
		w->first_draw = false;
	}
	sb_puts(&sb, "\033[H");

	/* header */
	room = width;
	sb_puts(&sb, bold);
	snprintf(line, sizeof(line), "%s #%s (v%s) ", r->pipeline_name, w->idstr, r->version);
	put_fit(&sb, line, &room);
	sb_puts(&sb, reset);
	if (w->colour)
		sb_puts(&sb, stage_colour(r->stage));
	put_fit(&sb, r->stage, &room);
	sb_puts(&sb, reset);
	if (r->secs >= 0)
	{
		fmt_duration(dur, sizeof(dur), r->secs);
		snprintf(line, sizeof(line), "  %s", dur);
		put_fit(&sb, line, &room);
	}
	if (r->dry_run)
		put_fit(&sb, "  (dry run)", &room);
	if (r->run_by)
	{
		snprintf(line, sizeof(line), "  by %s", r->run_by);
		put_fit(&sb, line, &room);
	}
	if (reconnecting)
		put_fit(&sb, "  [reconnecting]", &room);
	sb_puts(&sb, "\033[K\n");

	/* progress bar */
	barw = width - 20;
	if (barw > 50)
		barw = 50;
	if (barw < 10)
		barw = 10;
	filled = r->ntasks > 0 ? (int) ((long) barw * done / r->ntasks) : 0;
	sb_putc(&sb, '[');
	if (w->colour)
		sb_puts(&sb, "\033[32m");
	for (int i = 0; i < filled; i++)
		sb_puts(&sb, w->utf8 ? "█" : "#");
	sb_puts(&sb, reset);
	sb_puts(&sb, dim);
	for (int i = filled; i < barw; i++)
		sb_puts(&sb, w->utf8 ? "░" : "-");
	sb_puts(&sb, reset);
	sb_printf(&sb, "] %d/%d tasks\033[K\n", done, r->ntasks);
	if (r->message && *r->message)
	{
		room = width;
		put_fit(&sb, r->message, &room);
		sb_puts(&sb, "\033[K\n");
	}
	sb_puts(&sb, "\033[K\n");

	/* stages and tasks */
	int namew = 8;

	for (int i = 0; i < r->ntasks; i++)
	{
		int l = (int) strlen(r->tasks[i].task_name);

		if (l > namew)
			namew = l;
	}
	if (namew > 30)
		namew = 30;
	for (int i = 0; i < r->ntasks; i++)
	{
		const wtask *t = &r->tasks[i];

		if (i == 0 || t->stage_index != r->tasks[i - 1].stage_index)
		{
			room = width;
			sb_puts(&sb, bold);
			put_fit(&sb, t->stage_name, &room);
			sb_puts(&sb, reset);
			sb_puts(&sb, "\033[K\n");
		}
		room = width - 2;
		sb_puts(&sb, "  ");
		if (w->colour)
			sb_puts(&sb, stage_colour(t->stage));
		put_fit(&sb, stage_mark(w, t->stage), &room);
		sb_puts(&sb, reset);
		snprintf(line, sizeof(line), " %6s %-*.*s ", t->id, namew, namew, t->task_name);
		put_fit(&sb, line, &room);
		if (w->colour)
			sb_puts(&sb, stage_colour(t->stage));
		snprintf(line, sizeof(line), "%-10s", t->stage);
		put_fit(&sb, line, &room);
		sb_puts(&sb, reset);
		if (t->secs >= 0)
		{
			fmt_duration(dur, sizeof(dur), t->secs);
			snprintf(line, sizeof(line), " %7s", dur);
		}
		else
			snprintf(line, sizeof(line), " %7s", "");
		put_fit(&sb, line, &room);
		if (t->attempt > 1)
		{
			snprintf(line, sizeof(line), "  attempt %d", t->attempt);
			put_fit(&sb, line, &room);
		}
		if (t->gate)
		{
			char		gtext[400];

			gate_text(t, gtext, sizeof(gtext));
			snprintf(line, sizeof(line), "  %s", gtext);
			sb_puts(&sb, w->colour ? "\033[33m" : "");
			put_fit(&sb, line, &room);
			sb_puts(&sb, reset);
		}
		if (t->waiting)
		{
			snprintf(line, sizeof(line), "  %s", t->waiting);
			sb_puts(&sb, dim);
			put_fit(&sb, line, &room);
			sb_puts(&sb, reset);
		}
		if (t->message && *t->message)
		{
			sb_puts(&sb, dim);
			put_fit(&sb, "  ", &room);
			put_fit(&sb, t->message, &room);
			sb_puts(&sb, reset);
		}
		sb_puts(&sb, "\033[K\n");
	}
	sb_puts(&sb, "\033[J");
	fwrite(sb_str(&sb), 1, sb.len, stdout);
	fflush(stdout);
	sb_free(&sb);
}

/* ------------------------------------------------------------ plain lines */

static const wtask *
find_prev(const wrun *prev, const wtask *t)
{
	for (int i = 0; i < prev->ntasks; i++)
		if (strcmp(prev->tasks[i].id, t->id) == 0)	/* matrix job tasks share a task_index */
			return &prev->tasks[i];
	return NULL;
}

static void
print_task_line(const char *clock, const wtask *t, const char *from)
{
	char *msg = NULL;

	if (t->message && *t->message && (stage_is_complete(t->stage) || t->gate))
	{
		msg = xstrdup(t->message);
		oneline(msg);
	}
	printf("%s %s/%s [%s]  ", clock, t->stage_name, t->task_name, t->id);
	if (from)
		printf("%s -> ", from);
	printf("%s", t->stage);
	if (t->gate)
	{
		char		gtext[400];

		gate_text(t, gtext, sizeof(gtext));
		printf(" (%s)", gtext);
	}
	if (t->waiting)
		printf(" (%s)", t->waiting);
	if (t->attempt > 1)
		printf(" (attempt %d)", t->attempt);
	if (msg)
		printf(": %s", msg);
	printf("\n");
	free(msg);
}

static void
print_changes(watcher *w, const wrun *r)
{
	char clock[16];

	fmt_clock(clock, sizeof(clock), wall_now());
	if (!w->printed_initial)
	{
		printf("%s %s #%s  %s\n", clock, r->pipeline_name, w->idstr, r->stage);
		for (int i = 0; i < r->ntasks; i++)
			print_task_line(clock, &r->tasks[i], NULL);
		w->printed_initial = true;
	}
	else
	{
		for (int i = 0; i < r->ntasks; i++)
		{
			const wtask *t = &r->tasks[i];
			const wtask *p = find_prev(&w->prev, t);

			if (!p)
				print_task_line(clock, t, NULL);
			else if (strcmp(p->stage, t->stage) != 0 || p->attempt != t->attempt ||
					 (p->gate == NULL) != (t->gate == NULL))
				print_task_line(clock, t, p->stage);
		}
		if (strcmp(w->prev.stage, r->stage) != 0)
			printf("%s %s #%s  %s -> %s\n", clock, r->pipeline_name, w->idstr, w->prev.stage, r->stage);
	}
	fflush(stdout);
}

static void
print_summary(watcher *w, const wrun *r)
{
	char clock[16], dur[32];
	int done = 0;
	const wtask *bad = failing_task(r);
	char *msg;

	/* a failed run names the task that failed it, with that task's message */
	if (bad)
		msg = xasprintf("%s.%s (job task %s) failed%s%s", bad->stage_name, bad->task_name, bad->id,
						bad->message && *bad->message ? ": " : "", bad->message ? bad->message : "");
	else
		msg = r->message ? xstrdup(r->message) : NULL;

	for (int i = 0; i < r->ntasks; i++)
		if (task_done(&r->tasks[i]))
			done++;
	fmt_clock(clock, sizeof(clock), wall_now());
	fmt_duration(dur, sizeof(dur), r->secs >= 0 ? r->secs : 0);
	if (msg)
		oneline(msg);
	if (w->tty)
		printf("\n");
	printf("%s %s #%s %s in %s (%d/%d tasks done)%s%s\n", clock, r->pipeline_name, w->idstr, r->stage,
		   dur, done, r->ntasks, msg && *msg ? ": " : "", msg ? msg : "");
	fflush(stdout);
	free(msg);
}

/* ------------------------------------------------------------------ main */

static void
watch_usage(FILE *f)
{
	fprintf(f,
			"Usage: pipelinectl watch PIPELINE_TASK_ID [OPTION]...\n"
			"Follow a run live until it ends.  Exit status 0 when it succeeded, 1 when it\n"
			"failed or was canceled, 2 on a usage or connection error.\n"
			"\n"
			"  -d, --dbname CONNINFO     database connection string (default: PG* environment)\n"
			"      --no-color            no colours on a terminal (also: NO_COLOR set)\n"
			"  -h, --help                show this help\n"
			"\n"
			"On a terminal the screen is redrawn; otherwise one line is printed per change.\n");
}

int
cmd_watch(int argc, char **argv, const char *conninfo)
{
	watcher w;
	db_error err;
	int rc = 1;
	bool no_colour = false;
	double next_fetch = 0;
	unsigned long seen = 0;
	opt_cmd cmd = {"watch", watch_usage, conninfo, 0};

	memset(&w, 0, sizeof(w));
	{
		const opt_spec specs[] = {
			{"no-color", 0, OPT_FLAG, &no_colour, 0, 0, NULL},
			{"no-colour", 0, OPT_FLAG, &no_colour, 0, 0, NULL},
			{NULL, 0, 0, NULL, 0, 0, NULL}
		};

		if ((rc = opts_parse(&cmd, argc, argv, specs)) >= 0)
			return rc;
		if ((rc = opts_one_id(&cmd, argc, argv, "PIPELINE_TASK_ID", "pipeline task", &w.id)) >= 0)
			return rc;
		rc = 1;
	}
	snprintf(w.idstr, sizeof(w.idstr), "%lld", (long long) w.id);

	log_init("watch");
	log_set_min_level(LOG_WARN);
	setlocale(LC_CTYPE, "");
	w.tty = isatty(1);
	w.colour = w.tty && !no_colour && !getenv("NO_COLOR") &&
		!(getenv("TERM") && strcmp(getenv("TERM"), "dumb") == 0);
	w.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
	w.first_draw = true;

	db_init(&w.db, cmd.conninfo, "pipeline_events");
	if ((rc = db_connect_checked(&w.db, "watch")) >= 0)
	{
		db_close(&w.db);
		return rc;
	}
	rc = 1;
	signals_install(false, w.tty, false);

	for (;;)
	{
		double now = mono_now();
		struct pollfd fds[2];
		int nfds = 0;

		signals_drain();
		if (g_sig.term_count > 0)
		{
			if (w.tty)
				printf("\n");
			fflush(stdout);
			rc = 130;
			break;
		}
		if (db_ensure(&w.db, now) && (w.db.notifications != seen || now >= next_fetch || g_sig.winch))
		{
			wrun r;

			seen = w.db.notifications;
			g_sig.winch = 0;
			next_fetch = now + (w.tty ? 1.0 : 2.0);
			if (!fetch(&w, &r, &err))
			{
				if (!db_error_transient(&err))
				{
					rc = db_fail("watch", &err);
					break;
				}
			}
			else if (!r.found)
			{
				fprintf(stderr, "pipelinectl watch: pipeline task %s not found\n", w.idstr);
				wrun_free(&r);
				rc = EXIT_USAGE;
				break;
			}
			else
			{
				if (w.tty)
					draw_screen(&w, &r, false);
				else
					print_changes(&w, &r);
				if (w.have_prev)
					wrun_free(&w.prev);
				w.prev = r;
				w.have_prev = true;
				if (stage_is_complete(r.stage))
				{
					print_summary(&w, &r);
					rc = strcmp(r.stage, "succeeded") == 0 ? 0 : 1;
					break;
				}
			}
		}
		else if (!db_connected(&w.db) && w.tty && w.have_prev && g_sig.winch)
		{
			g_sig.winch = 0;
			draw_screen(&w, &w.prev, true);
		}

		fds[nfds].fd = signals_fd();
		fds[nfds].events = POLLIN;
		nfds++;
		if (db_socket(&w.db) >= 0)
		{
			fds[nfds].fd = db_socket(&w.db);
			fds[nfds].events = POLLIN;
			nfds++;
		}
		now = mono_now();
		{
			double wake = db_connected(&w.db) ? next_fetch : w.db.next_attempt;

			if (poll(fds, (nfds_t) nfds, ms_until(wake, now)) < 0 && errno != EINTR)
				usleep(100000);
		}
		if (db_socket(&w.db) >= 0)
			db_consume(&w.db);
	}
	if (w.have_prev)
		wrun_free(&w.prev);
	db_close(&w.db);
	return rc;
}
