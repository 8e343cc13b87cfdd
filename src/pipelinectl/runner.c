/*
 * runner.c: "pipelinectl runner" claims job tasks and runs their commands.
 *
 * One event loop, no threads.  Each claimed task is a small state machine:
 *
 *   ACTIVATE  report 'active' (retried while the database is away); a dry
 *             run or an unsupported job goes straight to FINISH
 *   RUNNING   /bin/sh -c <command> in its own process group, in a fresh
 *             work directory; stdout+stderr (one pipe) are read without
 *             blocking, repaired to UTF-8, kept as a 4 KiB tail and streamed
 *             to pipeline.append_job_task_log() in batches (0.5 s or 8 KiB);
 *             heartbeats; a task turned 'canceling', a timeout or a lost
 *             token stops the group (SIGTERM, SIGKILL 5 s later)
 *   FINISH    flush the rest of the output, then report the final stage with
 *             detail and runtime envs (retried while the database is away)
 *   DONE      freed
 *
 * poll() waits on the children's pipes, the database socket (NOTIFY
 * pipeline_events wakes up a claim and a cancel check) and the self-pipe of
 * the signal handlers (SIGCHLD, SIGTERM, SIGINT).  Every wait is bounded by
 * the next timer (claim poll, heartbeat, flush, timeout, kill escalation).
 *
 * Shutdown: the first SIGTERM/SIGINT stops claiming and lets running
 * commands finish and be reported; a second one stops the commands (reported
 * 'failed', "runner stopped") and gives up reports the database does not
 * take; a third one kills everything and exits at once.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define TAIL_MAX (4 * 1024)			/* output tail kept for detail */
#define LOG_FLUSH_BYTES (8 * 1024)	/* flush when this much is pending */
#define LOG_FLUSH_SECS 0.5			/* or when the oldest byte is this old */
#define LOG_PIECE_MAX (256 * 1024)	/* largest chunk sent in one call */
#define LOG_BUF_MAX (4 * 1024 * 1024)	/* pending output kept while the db is away */
#define LOG_TOTAL_MAX ((size_t) 64 * 1024 * 1024)	/* output stored per task */
#define READ_PER_TURN (256 * 1024)	/* fairness between children */
#define KILL_GRACE 5.0				/* SIGTERM -> SIGKILL */
#define DRAIN_GRACE 2.0				/* after the shell exits, wait this long for EOF */
#define OUTPUT_FILE_MAX (1024 * 1024)
#define MAX_TRIES 5					/* non-transient report errors before giving up */

typedef enum { TS_ACTIVATE, TS_RUNNING, TS_FINISH, TS_DONE } task_state;
typedef enum { STOP_NONE, STOP_CANCEL, STOP_TIMEOUT, STOP_LOST, STOP_SHUTDOWN } stop_reason;

typedef struct task
{
	struct task *next;
	int64_t id;
	char idstr[24];
	char *token;
	int64_t pipeline_task_id;
	bool dry_run;
	char *kind;					/* job.runner */
	char *command;				/* job.command */
	long timeout_s;				/* job.timeout, 0 = none */
	json_value *params;			/* effective params (object) */

	task_state state;
	double next_try;
	backoff bo;
	int tries;

	/* the child */
	pid_t pid;
	bool child_exited;
	int wstatus;
	int out_fd;
	char carry[4];
	size_t carry_len;
	char *basedir;
	char *workdir;
	char *outfile;
	double started;
	double exit_time;
	stop_reason stop;
	double kill_at;				/* when to send SIGKILL, 0 = not yet signaled */
	bool killed_hard;

	/* output */
	strbuf logbuf;				/* not yet sent */
	double log_first;			/* when logbuf became non-empty */
	size_t log_dropped;			/* bytes dropped while the database was away */
	size_t log_sent;			/* bytes stored so far */
	bool log_truncated;
	bool log_error_logged;
	bool heartbeat_error_logged;
	strbuf tail;

	/* the final report */
	char *final_stage;
	char *final_message;
	char *final_detail;
	char *final_envs;
	bool minimal_report;		/* retrying without detail and runtime envs */
} task;

typedef struct runner
{
	char *name;
	char *labels_json;
	int concurrency;
	bool exit_when_idle;
	double poll_interval;
	double heartbeat;
	db_conn db;
	task *tasks;
	int ntasks;
	int handled_terms;
	bool stopping;
	bool force_stop;
	double next_claim;
	double last_claim;
	unsigned long seen_notifications;
	double next_heartbeat;
	double next_stage_check;
	bool stage_check_wanted;
	bool idle_after_claim;		/* the last claim returned nothing while nothing ran */
	char last_claim_error[256];
	double last_claim_error_at;
	double last_check_error_at;
} runner;

/* ------------------------------------------------------------ small parts */

bool
labels_to_json(const char *spec, strbuf *out, char *err, size_t errlen)
{
	const char *p = spec ? spec : "";
	bool first = true;

	sb_reset(out);
	sb_putc(out, '{');
	while (*p)
	{
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t) (end - p) : strlen(p);
		char *item = xstrndup(p, n);
		char *k = item, *eq, *v;

		while (*k == ' ' || *k == '\t')
			k++;
		size_t kl = strlen(k);

		while (kl > 0 && (k[kl - 1] == ' ' || k[kl - 1] == '\t'))
			k[--kl] = '\0';
		if (*k)
		{
			eq = strchr(k, '=');
			if (!eq || eq == k)
			{
				snprintf(err, errlen, "bad label \"%s\": expected key=value", k);
				free(item);
				return false;
			}
			*eq = '\0';
			v = eq + 1;
			/* trim around the '=' */
			for (char *q = eq - 1; q >= k && (*q == ' ' || *q == '\t'); q--)
				*q = '\0';
			while (*v == ' ' || *v == '\t')
				v++;
			if (!first)
				sb_putc(out, ',');
			json_write_cstr(out, k);
			sb_putc(out, ':');
			json_write_cstr(out, v);
			first = false;
		}
		free(item);
		p += n;
		if (*p == ',')
			p++;
	}
	sb_putc(out, '}');
	return true;
}

static bool
env_name_ok(const char *s, size_t n)
{
	if (n == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
	{
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

int
parse_output_envs(const char *text, size_t len, strbuf *out)
{
	typedef struct { const char *name; size_t nlen; const char *val; size_t vlen; } kv;
	kv *items = NULL;
	size_t count = 0, cap = 0;
	size_t pos = 0;
	int written = 0;

	while (pos < len)
	{
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t ll = nl ? (size_t) (nl - line) : len - pos;

		pos += ll + (nl ? 1 : 0);
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;
		while (ll > 0 && (*line == ' ' || *line == '\t'))
		{
			line++;
			ll--;
		}
		if (ll == 0 || line[0] == '#')
			continue;
		const char *eq = memchr(line, '=', ll);

		if (!eq || !env_name_ok(line, (size_t) (eq - line)))
			continue;			/* malformed: ignored */
		size_t nlen = (size_t) (eq - line);
		size_t i;

		/* a name given twice: the last value wins */
		for (i = 0; i < count; i++)
			if (items[i].nlen == nlen && memcmp(items[i].name, line, nlen) == 0)
				break;
		if (i == count)
		{
			if (count == cap)
			{
				cap = cap ? cap * 2 : 16;
				items = xrealloc(items, cap * sizeof(kv));
			}
			count++;
		}
		items[i].name = line;
		items[i].nlen = nlen;
		items[i].val = eq + 1;
		items[i].vlen = ll - nlen - 1;
	}
	sb_reset(out);
	sb_putc(out, '{');
	for (size_t i = 0; i < count; i++)
	{
		if (i)
			sb_putc(out, ',');
		json_write_string(out, items[i].name, items[i].nlen);
		sb_putc(out, ':');
		json_write_string(out, items[i].val, items[i].vlen);
		written++;
	}
	sb_putc(out, '}');
	free(items);
	return written;
}

static bool
is_permanent_rejection(const db_error *e)
{
	/* token rejected (reaped or retried), task complete, task gone */
	return strcmp(e->sqlstate, "28000") == 0 || strcmp(e->sqlstate, "55000") == 0 ||
		strcmp(e->sqlstate, "P0002") == 0;
}

static const char *
stop_name(stop_reason s)
{
	switch (s)
	{
		case STOP_CANCEL:
			return "canceled";
		case STOP_TIMEOUT:
			return "timeout";
		case STOP_LOST:
			return "task lost";
		case STOP_SHUTDOWN:
			return "runner stopping";
		default:
			return "none";
	}
}

static char *
short_text(const char *s, size_t max)
{
	strbuf sb;
	size_t n = strlen(s);

	sb_init(&sb);
	if (n > max)
	{
		n = utf8_cut(s, max);
		utf8_repair(&sb, s, n, true);
		sb_puts(&sb, "...");
	}
	else
		utf8_repair(&sb, s, n, true);
	char *r = sb_steal(&sb);

	oneline(r);
	return r;
}

/* ------------------------------------------------------------ task memory */

static void
task_free(task *t)
{
	if (t->out_fd >= 0)
		close(t->out_fd);
	if (t->pid > 0 && !t->child_exited)
	{
		kill(-t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
	}
	if (t->basedir)
		rmtree(t->basedir);
	free(t->token);
	free(t->kind);
	free(t->command);
	json_free(t->params);
	free(t->basedir);
	free(t->workdir);
	free(t->outfile);
	sb_free(&t->logbuf);
	sb_free(&t->tail);
	free(t->final_stage);
	free(t->final_message);
	free(t->final_detail);
	free(t->final_envs);
	free(t);
}

static void
set_final(task *t, const char *stage, const char *message, char *detail_owned, char *envs_owned)
{
	free(t->final_stage);
	free(t->final_message);
	free(t->final_detail);
	free(t->final_envs);
	t->final_stage = xstrdup(stage);
	t->final_message = message ? xstrdup(message) : NULL;
	t->final_detail = detail_owned;
	t->final_envs = envs_owned;
	t->state = TS_FINISH;
	t->next_try = 0;
	t->tries = 0;
	backoff_reset(&t->bo);
}

/* ---------------------------------------------------------------- output */

static void
output_append_clean(task *t, const char *s, size_t n)
{
	if (n == 0)
		return;
	/* tail: keep the last TAIL_MAX bytes (trimmed lazily) */
	sb_append(&t->tail, s, n);
	if (t->tail.len > 4 * TAIL_MAX)
		sb_consume(&t->tail, t->tail.len - TAIL_MAX);

	if (t->stop == STOP_LOST || t->log_truncated)
		return;
	if (t->log_sent + t->logbuf.len + n > LOG_TOTAL_MAX)
	{
		static const char note[] = "\n[pipelinectl: output limit reached; the rest is not stored]\n";
		size_t room = LOG_TOTAL_MAX - t->log_sent - t->logbuf.len;

		if (room > 0)
			sb_append(&t->logbuf, s, utf8_cut(s, room < n ? room : n));
		sb_append(&t->logbuf, note, sizeof(note) - 1);
		t->log_truncated = true;
		log_warn("job task %s: output exceeds %zu MiB; the rest is not stored", t->idstr,
				 LOG_TOTAL_MAX >> 20);
	}
	else
	{
		if (t->logbuf.len == 0)
			t->log_first = mono_now();
		sb_append(&t->logbuf, s, n);
	}
	if (t->logbuf.len > LOG_BUF_MAX)
	{
		/* the database is away for long: drop the oldest pending output */
		size_t cut = utf8_next_boundary(t->logbuf.data, t->logbuf.len, t->logbuf.len - LOG_BUF_MAX / 2);

		t->log_dropped += cut;
		sb_consume(&t->logbuf, cut);
	}
}

static void
output_feed(task *t, const char *data, size_t n, bool final)
{
	strbuf clean;
	strbuf joined;
	const char *src = data;
	size_t len = n;
	size_t used;

	sb_init(&clean);
	sb_init(&joined);
	if (t->carry_len)
	{
		sb_append(&joined, t->carry, t->carry_len);
		sb_append(&joined, data, n);
		src = joined.data;
		len = joined.len;
		t->carry_len = 0;
	}
	used = utf8_repair(&clean, src, len, final);
	if (used < len)
	{
		/* at most 3 bytes of an incomplete character */
		size_t rest = len - used;

		if (rest > sizeof(t->carry))
			rest = sizeof(t->carry);
		memcpy(t->carry, src + used, rest);
		t->carry_len = rest;
	}
	output_append_clean(t, sb_str(&clean), clean.len);
	sb_free(&clean);
	sb_free(&joined);
}

typedef enum { FLUSH_OK, FLUSH_LATER, FLUSH_LOST } flush_result;

/*
 * Sends pending output: one piece, or everything when all is set.  FLUSH_LATER
 * when something is left for a later try (database away), FLUSH_LOST when the
 * server says the task is no longer ours.
 */
static flush_result
flush_log(runner *r, task *t, bool all)
{
	while (t->logbuf.len > 0 || t->log_dropped > 0)
	{
		strbuf piece;
		db_error err;
		const char *params[3];
		PGresult *res;
		size_t n;

		if (!db_connected(&r->db))
			return FLUSH_LATER;
		sb_init(&piece);
		if (t->log_dropped)
			sb_printf(&piece, "\n[pipelinectl: %zu bytes of output dropped while the database was unreachable]\n",
					  t->log_dropped);
		n = t->logbuf.len;
		if (n > LOG_PIECE_MAX)
			n = utf8_cut(t->logbuf.data, LOG_PIECE_MAX);
		if (n == 0 && t->logbuf.len > 0)
			n = t->logbuf.len;	/* cannot happen with repaired text; be safe */
		if (n)
			sb_append(&piece, t->logbuf.data, n);
		params[0] = t->idstr;
		params[1] = t->token;
		params[2] = sb_str(&piece);
		res = db_query(&r->db, "SELECT pipeline.append_job_task_log($1::bigint, $2::text, $3::text)",
					   3, params, &err);
		sb_free(&piece);
		if (res)
		{
			PQclear(res);
			sb_consume(&t->logbuf, n);
			t->log_sent += n;
			t->log_dropped = 0;
			if (t->logbuf.len)
				t->log_first = mono_now();
			if (!all)
				break;
			continue;
		}
		if (db_error_transient(&err))
		{
			t->log_first = mono_now();	/* kept; tried again later */
			return FLUSH_LATER;
		}
		if (is_permanent_rejection(&err))
		{
			log_warn("job task %s: output rejected (%s: %s); the task is no longer ours",
					 t->idstr, err.sqlstate, err.message);
			return FLUSH_LOST;
		}
		/* anything else (missing function, bad text): drop this output */
		if (!t->log_error_logged)
			log_error("job task %s: cannot store output (%s: %s); output of this task is dropped",
					  t->idstr, err.sqlstate, err.message);
		t->log_error_logged = true;
		sb_consume(&t->logbuf, n);
		t->log_dropped = 0;
	}
	return FLUSH_OK;
}

/* ----------------------------------------------------------- the children */

static char **
build_env(task *t)
{
	size_t n = 0, cap;
	char **envp;
	const json_value *params = t->params;
	size_t nparams = (params && params->type == JSON_OBJECT) ? params->u.object.count : 0;

	for (char **e = environ; e && *e; e++)
		n++;
	cap = n + nparams + 2;
	envp = xcalloc(cap, sizeof(char *));
	n = 0;

	/* the runner's environment, less what the params and PIPELINE_OUTPUT override */
	for (char **e = environ; e && *e; e++)
	{
		const char *eq = strchr(*e, '=');
		size_t kl = eq ? (size_t) (eq - *e) : strlen(*e);
		bool overridden = (kl == strlen("PIPELINE_OUTPUT") && memcmp(*e, "PIPELINE_OUTPUT", kl) == 0);

		for (size_t i = 0; !overridden && i < nparams; i++)
		{
			const json_member *m = &params->u.object.members[i];

			if (m->key_len == kl && memcmp(m->key, *e, kl) == 0)
				overridden = true;
		}
		if (!overridden)
			envp[n++] = xstrdup(*e);
	}
	for (size_t i = 0; i < nparams; i++)
	{
		const json_member *m = &params->u.object.members[i];
		const char *text;
		strbuf val;
		bool dup = false;

		if (m->key_len == 0 || strlen(m->key) != m->key_len || strchr(m->key, '='))
			continue;			/* not a possible variable name */
		/* a key given twice: the last one wins */
		for (size_t j = i + 1; j < nparams && !dup; j++)
			if (params->u.object.members[j].key_len == m->key_len &&
				memcmp(params->u.object.members[j].key, m->key, m->key_len) == 0)
				dup = true;
		if (dup || m->value->type == JSON_NULL)
			continue;
		sb_init(&val);
		text = json_scalar_text(m->value);
		if (text)
			sb_puts(&val, text);	/* a string with \u0000 is cut there */
		else
			json_write(&val, m->value);
		envp[n++] = xasprintf("%s=%s", m->key, sb_str(&val));
		sb_free(&val);
	}
	envp[n++] = xasprintf("PIPELINE_OUTPUT=%s", t->outfile);
	envp[n] = NULL;
	return envp;
}

static void
free_env(char **envp)
{
	for (char **e = envp; e && *e; e++)
		free(*e);
	free(envp);
}

static void
close_from(int lowfd)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
	if (close_range((unsigned) lowfd, ~0U, 0) == 0)
		return;
#endif
	long max = sysconf(_SC_OPEN_MAX);

	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = lowfd; fd < max; fd++)
		close(fd);
}

/* starts the command; false with a message on failure */
static bool
spawn(runner *r, task *t, char *errbuf, size_t errlen)
{
	const char *tmp = getenv("TMPDIR");
	char *tmpl;
	int fds[2];
	char **envp;
	pid_t pid;
	int fd;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	tmpl = xasprintf("%s/pipelinectl-%s-XXXXXX", tmp, t->idstr);
	if (!mkdtemp(tmpl))
	{
		snprintf(errbuf, errlen, "cannot create a work directory in %s: %s", tmp, strerror(errno));
		free(tmpl);
		return false;
	}
	t->basedir = tmpl;
	t->workdir = xasprintf("%s/work", t->basedir);
	t->outfile = xasprintf("%s/output", t->basedir);
	if (mkdir(t->workdir, 0700) != 0)
	{
		snprintf(errbuf, errlen, "cannot create %s: %s", t->workdir, strerror(errno));
		return false;
	}
	fd = open(t->outfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
	{
		snprintf(errbuf, errlen, "cannot create %s: %s", t->outfile, strerror(errno));
		return false;
	}
	close(fd);
	if (pipe2(fds, O_CLOEXEC) != 0)
	{
		snprintf(errbuf, errlen, "cannot create a pipe: %s", strerror(errno));
		return false;
	}
	envp = build_env(t);

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
	{
		snprintf(errbuf, errlen, "cannot fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		free_env(envp);
		return false;
	}
	if (pid == 0)
	{
		/* the child: only async-signal-safe calls from here on */
		char *argv[4];
		int devnull;
		static const char msg1[] = "pipelinectl: cannot execute /bin/sh: ";
		static const char msg2[] = "pipelinectl: cannot enter the work directory\n";

		setpgid(0, 0);
		signals_restore_child();
		if (dup2(fds[1], 1) < 0 || dup2(fds[1], 2) < 0)
			_exit(127);
		devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0 && devnull != 0)
		{
			dup2(devnull, 0);
			close(devnull);
		}
		close_from(3);
		if (chdir(t->workdir) != 0)
		{
			ssize_t w = write(2, msg2, sizeof(msg2) - 1);

			(void) w;
			_exit(127);
		}
		argv[0] = "sh";
		argv[1] = "-c";
		argv[2] = t->command;
		argv[3] = NULL;
		execve("/bin/sh", argv, envp);
		{
			const char *e = strerror(errno);
			ssize_t w = write(2, msg1, sizeof(msg1) - 1);

			w = write(2, e, strlen(e));
			w = write(2, "\n", 1);
			(void) w;
		}
		_exit(127);
	}
	/* the parent: set the group here too, whichever runs first */
	if (setpgid(pid, pid) != 0 && errno != EACCES && errno != ESRCH)
		log_debug("setpgid(%ld): %s", (long) pid, strerror(errno));
	close(fds[1]);
	free_env(envp);
	fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
	t->out_fd = fds[0];
	t->pid = pid;
	t->started = mono_now();
	t->state = TS_RUNNING;
	(void) r;
	return true;
}

static void
stop_task(task *t, stop_reason why, double now)
{
	if (t->state != TS_RUNNING)
		return;
	if (t->stop == STOP_NONE || why == STOP_LOST)
		t->stop = why;
	if (t->child_exited || t->kill_at > 0)
		return;
	if (t->pid > 0)
	{
		log_info("job task %s: stopping its command (pid %ld): %s", t->idstr, (long) t->pid,
				 stop_name(why));
		if (kill(-t->pid, SIGTERM) != 0)
			kill(t->pid, SIGTERM);
		t->kill_at = now + KILL_GRACE;
	}
}

static void
reap_children(runner *r, double now)
{
	for (task *t = r->tasks; t; t = t->next)
	{
		int st;
		pid_t p;

		if (t->state != TS_RUNNING || t->pid <= 0 || t->child_exited)
			continue;
		p = waitpid(t->pid, &st, WNOHANG);
		if (p == t->pid || (p < 0 && errno == ECHILD))
		{
			t->child_exited = true;
			t->wstatus = (p == t->pid) ? st : (255 << 8);
			t->exit_time = now;
			/* what the shell left behind in its group goes with it */
			kill(-t->pid, SIGKILL);
		}
	}
}

static void
read_output(task *t)
{
	char buf[65536];
	size_t total = 0;

	while (t->out_fd >= 0 && total < READ_PER_TURN)
	{
		ssize_t n = read(t->out_fd, buf, sizeof(buf));

		if (n > 0)
		{
			output_feed(t, buf, (size_t) n, false);
			total += (size_t) n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		/* EOF or error */
		close(t->out_fd);
		t->out_fd = -1;
	}
}

static char *
build_detail(task *t)
{
	strbuf sb;
	size_t start = 0;
	const char *tail = sb_str(&t->tail);
	size_t tl = t->tail.len;

	if (tl > TAIL_MAX)
		start = utf8_next_boundary(tail, tl, tl - TAIL_MAX);
	sb_init(&sb);
	sb_puts(&sb, "{\"exit_code\":");
	if (WIFEXITED(t->wstatus))
		sb_printf(&sb, "%d", WEXITSTATUS(t->wstatus));
	else
		sb_puts(&sb, "null");
	if (WIFSIGNALED(t->wstatus))
		sb_printf(&sb, ",\"signal\":%d", WTERMSIG(t->wstatus));
	sb_printf(&sb, ",\"duration_s\":%.3f", t->exit_time - t->started);
	sb_puts(&sb, ",\"output_tail\":");
	json_write_string(&sb, tail + start, tl - start);
	sb_putc(&sb, '}');
	return sb_steal(&sb);
}

/* the command is over: collect its results, clean up, decide the report */
static void
finalize(task *t)
{
	char msg[128];
	char *envs = NULL;
	const char *stage;
	size_t len;
	bool truncated;
	char *text;

	if (t->out_fd >= 0)
	{
		read_output(t);
		if (t->out_fd >= 0)
		{
			log_warn("job task %s: output still open %.0f s after the command ended (a process left its group?); closing it",
					 t->idstr, DRAIN_GRACE);
			close(t->out_fd);
			t->out_fd = -1;
		}
	}
	output_feed(t, "", 0, true);	/* a cut character at the very end */

	text = read_file_capped(t->outfile, OUTPUT_FILE_MAX, &len, &truncated);
	if (text)
	{
		strbuf sb;

		sb_init(&sb);
		if (truncated)
			log_warn("job task %s: PIPELINE_OUTPUT larger than %d bytes; the rest is ignored",
					 t->idstr, OUTPUT_FILE_MAX);
		if (parse_output_envs(text, len, &sb) > 0)
			envs = sb_steal(&sb);
		sb_free(&sb);
		free(text);
	}
	else if (errno != ENOENT)
		log_warn("job task %s: cannot read PIPELINE_OUTPUT: %s", t->idstr, strerror(errno));

	if (t->basedir)
	{
		if (rmtree(t->basedir) != 0)
			log_warn("job task %s: cannot remove work directory %s completely: %s", t->idstr,
					 t->basedir, strerror(errno));
		free(t->basedir);
		t->basedir = NULL;
	}

	if (t->stop == STOP_LOST)
	{
		free(envs);
		log_info("job task %s: command stopped; nothing reported (the task is no longer ours)", t->idstr);
		t->state = TS_DONE;
		return;
	}
	if (t->stop == STOP_CANCEL)
	{
		/* no message: the one given with the cancel request stays */
		stage = "canceled";
		msg[0] = '\0';
	}
	else if (t->stop == STOP_TIMEOUT)
	{
		stage = "failed";
		snprintf(msg, sizeof(msg), "timeout after %ld s", t->timeout_s);
	}
	else if (t->stop == STOP_SHUTDOWN)
	{
		stage = "failed";
		snprintf(msg, sizeof(msg), "runner stopped");
	}
	else if (WIFEXITED(t->wstatus) && WEXITSTATUS(t->wstatus) == 0)
	{
		stage = "succeeded";
		msg[0] = '\0';
	}
	else if (WIFEXITED(t->wstatus))
	{
		stage = "failed";
		snprintf(msg, sizeof(msg), "exit code %d", WEXITSTATUS(t->wstatus));
	}
	else if (WIFSIGNALED(t->wstatus))
	{
		stage = "failed";
		snprintf(msg, sizeof(msg), "killed by signal %d", WTERMSIG(t->wstatus));
	}
	else
	{
		stage = "failed";
		snprintf(msg, sizeof(msg), "ended abnormally");
	}
	log_info("job task %s: command ended after %.1f s: %s%s%s%s", t->idstr, t->exit_time - t->started,
			 stage, msg[0] ? " (" : "", msg, msg[0] ? ")" : "");
	set_final(t, stage, msg[0] ? msg : NULL, build_detail(t), envs);
}

/* ------------------------------------------------------------ the reports */

static void
schedule_retry(task *t, double now)
{
	t->next_try = now + backoff_next(&t->bo);
}

static void
activate(runner *r, task *t, double now)
{
	const char *params[2];
	db_error err;
	PGresult *res;
	char errbuf[512];
	const char *stage;

	if (r->force_stop)
	{
		log_info("job task %s: not started (runner stopping)", t->idstr);
		t->state = TS_DONE;
		return;
	}
	if (now < t->next_try || !db_connected(&r->db))
		return;
	params[0] = t->idstr;
	params[1] = t->token;
	res = db_query(&r->db,
				   "SELECT stage FROM pipeline.update_job_task_status($1::bigint, 'active'::pipeline.task_stage, $2::text)",
				   2, params, &err);
	if (!res)
	{
		if (is_permanent_rejection(&err))
		{
			log_warn("job task %s: 'active' rejected (%s: %s); dropping it", t->idstr, err.sqlstate, err.message);
			t->state = TS_DONE;
		}
		else if (db_error_transient(&err))
			schedule_retry(t, now);
		else if (++t->tries >= MAX_TRIES)
		{
			log_error("job task %s: cannot report 'active' (%s: %s); giving up", t->idstr, err.sqlstate, err.message);
			t->state = TS_DONE;
		}
		else
		{
			log_warn("job task %s: cannot report 'active' (%s: %s); will retry", t->idstr, err.sqlstate, err.message);
			schedule_retry(t, now);
		}
		return;
	}
	stage = PQntuples(res) > 0 ? db_value(res, 0, 0) : NULL;
	if (stage && strcmp(stage, "active") == 0)
	{
		PQclear(res);
		if (!spawn(r, t, errbuf, sizeof(errbuf)))
		{
			log_error("job task %s: %s", t->idstr, errbuf);
			set_final(t, "failed", errbuf, NULL, NULL);
			return;
		}
		log_info("job task %s: started (pid %ld, work directory %s)", t->idstr, (long) t->pid, t->workdir);
		return;
	}
	if (stage && strcmp(stage, "canceling") == 0)
	{
		PQclear(res);
		log_info("job task %s: canceled before it started", t->idstr);
		set_final(t, "canceled", "canceled before start", NULL, NULL);
		return;
	}
	log_warn("job task %s: is %s after reporting 'active'; not running it", t->idstr, stage ? stage : "(nothing)");
	PQclear(res);
	t->state = TS_DONE;
}

static void
report_final(runner *r, task *t, double now)
{
	const char *params[6];
	db_error err;
	PGresult *res;

	if (!db_connected(&r->db))
	{
		if (r->force_stop)
		{
			log_warn("job task %s: report '%s' abandoned (runner stopping, database unreachable)",
					 t->idstr, t->final_stage);
			t->state = TS_DONE;
		}
		return;
	}
	if (now < t->next_try)
		return;
	switch (flush_log(r, t, true))
	{
		case FLUSH_OK:
			break;
		case FLUSH_LOST:
			t->state = TS_DONE;
			return;
		case FLUSH_LATER:
			if (r->force_stop)
			{
				log_warn("job task %s: output and report '%s' abandoned (runner stopping)",
						 t->idstr, t->final_stage);
				t->state = TS_DONE;
				return;
			}
			schedule_retry(t, now);
			return;
	}
	params[0] = t->idstr;
	params[1] = t->final_stage;
	params[2] = t->token;
	params[3] = t->final_message;
	params[4] = t->minimal_report ? NULL : t->final_detail;
	params[5] = t->minimal_report ? NULL : t->final_envs;
	res = db_query(&r->db,
				   "SELECT stage FROM pipeline.update_job_task_status($1::bigint, $2::pipeline.task_stage, $3::text, $4::text, $5::jsonb, $6::jsonb)",
				   6, params, &err);
	if (res)
	{
		log_info("job task %s: reported %s%s%s", t->idstr, t->final_stage,
				 t->final_message ? ": " : "", t->final_message ? t->final_message : "");
		PQclear(res);
		t->state = TS_DONE;
		r->next_claim = now;	/* the next task may be waiting */
		return;
	}
	if (is_permanent_rejection(&err))
	{
		log_warn("job task %s: report '%s' rejected (%s: %s); dropping it", t->idstr, t->final_stage,
				 err.sqlstate, err.message);
		t->state = TS_DONE;
		return;
	}
	if (db_error_transient(&err))
	{
		if (r->force_stop)
		{
			log_warn("job task %s: report '%s' abandoned (runner stopping): %s", t->idstr, t->final_stage, err.message);
			t->state = TS_DONE;
			return;
		}
		schedule_retry(t, now);
		return;
	}
	if (++t->tries >= MAX_TRIES)
	{
		log_error("job task %s: cannot report '%s' (%s: %s); giving up", t->idstr, t->final_stage,
				  err.sqlstate, err.message);
		t->state = TS_DONE;
		return;
	}
	log_warn("job task %s: cannot report '%s' (%s: %s); retrying%s", t->idstr, t->final_stage,
			 err.sqlstate, err.message, t->minimal_report ? "" : " without detail and runtime envs");
	/* a detail or runtime envs the server refuses must not keep the task hanging */
	t->minimal_report = true;
	schedule_retry(t, now);
}

/* -------------------------------------------------- heartbeats and checks */

static void
heartbeat_all(runner *r)
{
	for (task *t = r->tasks; t; t = t->next)
	{
		const char *params[2];
		db_error err;
		PGresult *res;

		if (t->state != TS_RUNNING || t->child_exited || t->stop == STOP_LOST)
			continue;
		if (!db_connected(&r->db))
			return;
		params[0] = t->idstr;
		params[1] = t->token;
		res = db_query(&r->db, "SELECT pipeline.heartbeat($1::bigint, $2::text)", 2, params, &err);
		if (res)
		{
			PQclear(res);
			continue;
		}
		if (is_permanent_rejection(&err))
		{
			log_warn("job task %s: heartbeat rejected (%s: %s); the task is no longer ours",
					 t->idstr, err.sqlstate, err.message);
			stop_task(t, STOP_LOST, mono_now());
		}
		else if (!db_error_transient(&err) && !t->heartbeat_error_logged)
		{
			/* said once per task: a missing grant would repeat it every heartbeat */
			log_warn("job task %s: heartbeat failed (%s: %s)", t->idstr, err.sqlstate, err.message);
			t->heartbeat_error_logged = true;
		}
	}
}

/* one query for all running tasks: which are now 'canceling' or gone */
static void
check_stages(runner *r, double now)
{
	strbuf ids;
	int n = 0;
	const char *params[1];
	db_error err;
	PGresult *res;

	sb_init(&ids);
	sb_putc(&ids, '{');
	for (task *t = r->tasks; t; t = t->next)
	{
		if (t->state != TS_RUNNING || t->child_exited || t->stop != STOP_NONE)
			continue;
		sb_printf(&ids, "%s%s", n ? "," : "", t->idstr);
		n++;
	}
	sb_putc(&ids, '}');
	if (n == 0 || !db_connected(&r->db))
	{
		sb_free(&ids);
		return;
	}
	params[0] = sb_str(&ids);
	res = db_query(&r->db,
				   "SELECT id, stage FROM pipeline.job_tasks WHERE id = ANY($1::bigint[])",
				   1, params, &err);
	sb_free(&ids);
	if (!res)
	{
		if (!db_error_transient(&err) &&
			(r->last_check_error_at == 0 || now - r->last_check_error_at > 300))
		{
			log_warn("cannot read the stage of running tasks, so cancel requests are not seen (%s: %s)",
					 err.sqlstate, err.message);
			r->last_check_error_at = now;
		}
		return;
	}
	for (task *t = r->tasks; t; t = t->next)
	{
		const char *stage = NULL;
		bool found = false;

		if (t->state != TS_RUNNING || t->child_exited || t->stop != STOP_NONE)
			continue;
		for (int i = 0; i < PQntuples(res); i++)
		{
			const char *id = db_value(res, i, 0);

			if (id && strcmp(id, t->idstr) == 0)
			{
				stage = db_value(res, i, 1);
				found = true;
				break;
			}
		}
		if (!found)
		{
			log_warn("job task %s: no longer exists; stopping its command", t->idstr);
			stop_task(t, STOP_LOST, now);
		}
		else if (stage && strcmp(stage, "canceling") == 0)
		{
			log_info("job task %s: cancel requested", t->idstr);
			stop_task(t, STOP_CANCEL, now);
		}
		else if (stage && strcmp(stage, "active") != 0 && strcmp(stage, "creating") != 0)
		{
			log_warn("job task %s: is now %s elsewhere; stopping its command", t->idstr, stage);
			stop_task(t, STOP_LOST, now);
		}
	}
	PQclear(res);
}

/* -------------------------------------------------------------- claiming */

static task *
task_from_row(runner *r, PGresult *res, int row)
{
	int c_id = db_col(res, "id"), c_tok = db_col(res, "update_token"),
		c_pt = db_col(res, "pipeline_task_id"), c_job = db_col(res, "job"),
		c_par = db_col(res, "params"), c_dry = db_col(res, "dry_run");
	const char *id = db_value(res, row, c_id);
	const char *tok = db_value(res, row, c_tok);
	const char *pt = db_value(res, row, c_pt);
	const char *job = db_value(res, row, c_job);
	const char *par = db_value(res, row, c_par);
	const char *dry = db_value(res, row, c_dry);
	json_value *jobv;
	char err[128];
	task *t;
	int64_t idv;

	if (!id || !parse_positive_id(id, &idv))
	{
		log_error("claimed a row without a valid id; ignored");
		return NULL;
	}
	if (!tok || !*tok)
	{
		log_error("job task %s: claimed without an update token; ignored", id);
		return NULL;
	}
	t = xcalloc(1, sizeof(task));
	t->id = idv;
	snprintf(t->idstr, sizeof(t->idstr), "%lld", (long long) idv);
	t->token = xstrdup(tok);
	t->pipeline_task_id = 0;
	if (pt)
		parse_int64(pt, &t->pipeline_task_id);
	t->dry_run = dry && (dry[0] == 't' || dry[0] == 'T');
	t->out_fd = -1;
	t->pid = -1;
	t->state = TS_ACTIVATE;
	backoff_init(&t->bo, 0.5, 30.0);
	sb_init(&t->logbuf);
	sb_init(&t->tail);

	t->params = par ? json_parse(par, strlen(par), err, sizeof(err)) : NULL;
	if (par && !t->params)
		log_warn("job task %s: params are not valid JSON (%s); running without them", t->idstr, err);
	if (t->params && t->params->type != JSON_OBJECT)
	{
		json_free(t->params);
		t->params = NULL;
	}

	jobv = job ? json_parse(job, strlen(job), err, sizeof(err)) : NULL;
	if (jobv && jobv->type == JSON_OBJECT)
	{
		const char *kind = json_get_str(jobv, "runner");
		const char *cmd = json_get_str(jobv, "command");
		double to = 0;

		t->kind = xstrdup(kind && *kind ? kind : "shell");
		t->command = cmd ? xstrdup(cmd) : NULL;
		if (json_get_number(jobv, "timeout", &to) && to > 0)
			t->timeout_s = to > 10 * 365 * 86400.0 ? 10L * 365 * 86400 : (long) to;
	}
	json_free(jobv);

	if (t->dry_run)
	{
		log_info("job task %s (pipeline task %lld): dry run, reporting success", t->idstr,
				 (long long) t->pipeline_task_id);
		set_final(t, "succeeded", "dry run", NULL, NULL);
	}
	else if (!t->kind)
	{
		log_warn("job task %s: job definition missing or not a JSON object", t->idstr);
		set_final(t, "failed", "invalid job definition", NULL, NULL);
	}
	else if (strcmp(t->kind, "shell") != 0)
	{
		char *k = short_text(t->kind, 64);
		char *m = xasprintf("unsupported runner kind \"%s\"", k);

		log_warn("job task %s: %s", t->idstr, m);
		set_final(t, "failed", m, NULL, NULL);
		free(m);
		free(k);
	}
	else if (!t->command || !*t->command)
	{
		log_warn("job task %s: job has no command", t->idstr);
		set_final(t, "failed", "job has no command", NULL, NULL);
	}
	else
	{
		char *c = short_text(t->command, 120);

		if (t->timeout_s > 0)
			log_info("job task %s (pipeline task %lld): claimed (timeout %ld s): %s", t->idstr,
					 (long long) t->pipeline_task_id, t->timeout_s, c);
		else
			log_info("job task %s (pipeline task %lld): claimed: %s", t->idstr,
					 (long long) t->pipeline_task_id, c);
		free(c);
	}
	(void) r;
	return t;
}

static void
claim(runner *r, double now)
{
	int free_slots = r->concurrency - r->ntasks;
	char maxbuf[16];
	const char *params[3];
	db_error err;
	PGresult *res;
	int n;

	r->last_claim = now;
	r->next_claim = now + r->poll_interval;
	if (free_slots <= 0)
		return;
	snprintf(maxbuf, sizeof(maxbuf), "%d", free_slots);
	params[0] = r->name;
	params[1] = maxbuf;
	params[2] = r->labels_json;
	res = db_query(&r->db, "SELECT * FROM pipeline.claim_job_tasks($1::text, $2::int, $3::jsonb)",
				   3, params, &err);
	if (!res)
	{
		if (!db_error_transient(&err))
		{
			/* a broken installation or missing grant: say it, but not every 2 s */
			if (strncmp(err.message, r->last_claim_error, 200) != 0 || now - r->last_claim_error_at > 300)
			{
				log_error("cannot claim job tasks (%s: %s)", err.sqlstate, err.message);
				snprintf(r->last_claim_error, sizeof(r->last_claim_error), "%.200s", err.message);
				r->last_claim_error_at = now;
			}
		}
		return;
	}
	r->last_claim_error[0] = '\0';
	n = PQntuples(res);
	for (int i = 0; i < n; i++)
	{
		task *t = task_from_row(r, res, i);

		if (!t)
			continue;
		t->next = r->tasks;
		r->tasks = t;
		r->ntasks++;
	}
	PQclear(res);
	r->idle_after_claim = (n == 0 && r->ntasks == 0);
}

/* ------------------------------------------------------------------ loop */

static void
step_tasks(runner *r, double now)
{
	for (task *t = r->tasks; t; t = t->next)
	{
		switch (t->state)
		{
			case TS_ACTIVATE:
				activate(r, t, now);
				break;
			case TS_RUNNING:
				if (!t->child_exited && t->stop == STOP_NONE && t->timeout_s > 0 &&
					now - t->started >= (double) t->timeout_s)
				{
					log_warn("job task %s: timeout after %ld s", t->idstr, t->timeout_s);
					stop_task(t, STOP_TIMEOUT, now);
				}
				if (!t->child_exited && t->kill_at > 0 && now >= t->kill_at && !t->killed_hard)
				{
					log_warn("job task %s: command still running %.0f s after SIGTERM; sending SIGKILL",
							 t->idstr, KILL_GRACE);
					kill(-t->pid, SIGKILL);
					kill(t->pid, SIGKILL);
					t->killed_hard = true;
				}
				if (t->stop == STOP_LOST)
					sb_reset(&t->logbuf);
				else if (t->logbuf.len > 0 || t->log_dropped > 0)
				{
					if ((t->logbuf.len >= LOG_FLUSH_BYTES || now - t->log_first >= LOG_FLUSH_SECS) &&
						db_connected(&r->db) && flush_log(r, t, false) == FLUSH_LOST)
						stop_task(t, STOP_LOST, now);
				}
				if (t->child_exited && (t->out_fd < 0 || now - t->exit_time >= DRAIN_GRACE))
					finalize(t);
				break;
			case TS_FINISH:
				report_final(r, t, now);
				break;
			case TS_DONE:
				break;
		}
	}
	/* unlink the finished ones */
	for (task **pp = &r->tasks; *pp;)
	{
		task *t = *pp;

		if (t->state == TS_DONE)
		{
			*pp = t->next;
			r->ntasks--;
			task_free(t);
			r->next_claim = now;
			if (r->ntasks == 0)
				r->idle_after_claim = false;
		}
		else
			pp = &t->next;
	}
}

static double
next_deadline(runner *r, double now)
{
	double d = now + 1.0;		/* at least once a second */

	bool up = db_connected(&r->db);

	/*
	 * Only timers that can fire now: what needs the database waits for the
	 * reconnect (db.next_attempt), or the loop would spin.
	 */
#define EARLIER(x) do { if ((x) < d) d = (x); } while (0)
	if (!up)
		EARLIER(r->db.next_attempt);
	if (up && !r->stopping && r->ntasks < r->concurrency)
		EARLIER(r->next_claim);
	if (up && r->stage_check_wanted)
		EARLIER(r->next_stage_check);
	if (up && r->ntasks > 0)
		EARLIER(r->next_heartbeat);
	for (task *t = r->tasks; t; t = t->next)
	{
		if (t->state == TS_ACTIVATE || t->state == TS_FINISH)
		{
			if (up)
				EARLIER(t->next_try);
		}
		else if (t->state == TS_RUNNING)
		{
			if (up && t->logbuf.len > 0)
				EARLIER(t->log_first + LOG_FLUSH_SECS);
			if (t->timeout_s > 0 && !t->child_exited && t->stop == STOP_NONE)
				EARLIER(t->started + (double) t->timeout_s);
			if (t->kill_at > 0 && !t->child_exited && !t->killed_hard)
				EARLIER(t->kill_at);
			if (t->child_exited)
				EARLIER(t->exit_time + DRAIN_GRACE);
		}
	}
#undef EARLIER
	return d;
}

static void
handle_signals(runner *r, double now)
{
	int terms = g_sig.term_count;

	if (terms == r->handled_terms)
		return;
	r->handled_terms = terms;
	if (terms == 1)
	{
		r->stopping = true;
		log_info("signal received: claiming nothing more; waiting for %d task%s (send it again to stop them)",
				 r->ntasks, r->ntasks == 1 ? "" : "s");
	}
	else if (terms == 2)
	{
		r->stopping = true;
		r->force_stop = true;
		log_warn("second signal: stopping the running commands (a third one kills them at once)");
		for (task *t = r->tasks; t; t = t->next)
			stop_task(t, STOP_SHUTDOWN, now);
	}
}

static void
kill_all_now(runner *r)
{
	for (task *t = r->tasks; t; t = t->next)
		if (t->state == TS_RUNNING && t->pid > 0 && !t->child_exited)
			kill(-t->pid, SIGKILL);
}

static int
run_loop(runner *r)
{
	struct pollfd *fds = NULL;
	size_t fds_cap = 0;
	int rc = 0;

	r->next_claim = 0;
	r->next_heartbeat = mono_now() + r->heartbeat;
	for (;;)
	{
		double now = mono_now();
		int nfds = 0;
		int timeout;

		signals_drain();
		g_sig.chld = 0;
		if (g_sig.term_count >= 3)
		{
			log_warn("third signal: killing %d running command%s and exiting", r->ntasks,
					 r->ntasks == 1 ? "" : "s");
			kill_all_now(r);
			rc = 1;
			break;
		}
		handle_signals(r, now);
		reap_children(r, now);

		if (db_ensure(&r->db, now))
		{
			if (r->db.notifications != r->seen_notifications)
			{
				r->seen_notifications = r->db.notifications;
				/* coalesce bursts of events */
				double soon = r->last_claim + 0.2;

				if (soon < r->next_claim)
					r->next_claim = soon < now ? now : soon;
				r->stage_check_wanted = true;
			}
			if (r->stage_check_wanted && now >= r->next_stage_check)
			{
				r->stage_check_wanted = false;
				r->next_stage_check = now + 1.0;
				check_stages(r, now);
			}
			if (now >= r->next_heartbeat)
			{
				r->next_heartbeat = now + r->heartbeat;
				heartbeat_all(r);
				check_stages(r, now);
			}
		}
		step_tasks(r, now);

		now = mono_now();
		if (!r->stopping && db_connected(&r->db) && now >= r->next_claim && r->ntasks < r->concurrency)
		{
			claim(r, now);
			step_tasks(r, now);	/* start what was claimed at once */
		}

		if (r->stopping && r->ntasks == 0)
		{
			log_info("stopped");
			break;
		}
		if (r->exit_when_idle && r->ntasks == 0 && r->idle_after_claim)
		{
			log_info("nothing to run; exiting (--exit-when-idle)");
			break;
		}

		/* wait */
		if (fds_cap < (size_t) r->ntasks + 2)
		{
			fds_cap = (size_t) r->ntasks + 2;
			fds = xrealloc(fds, fds_cap * sizeof(struct pollfd));
		}
		fds[nfds].fd = signals_fd();
		fds[nfds].events = POLLIN;
		nfds++;
		if (db_socket(&r->db) >= 0)
		{
			fds[nfds].fd = db_socket(&r->db);
			fds[nfds].events = POLLIN;
			nfds++;
		}
		for (task *t = r->tasks; t; t = t->next)
		{
			if (t->state == TS_RUNNING && t->out_fd >= 0)
			{
				fds[nfds].fd = t->out_fd;
				fds[nfds].events = POLLIN;
				nfds++;
			}
		}
		now = mono_now();
		timeout = ms_until(next_deadline(r, now), now);
		if (poll(fds, (nfds_t) nfds, timeout) < 0 && errno != EINTR)
		{
			log_error("poll: %s", strerror(errno));
			usleep(100000);
		}
		if (db_socket(&r->db) >= 0)
			db_consume(&r->db);
		for (task *t = r->tasks; t; t = t->next)
			if (t->state == TS_RUNNING && t->out_fd >= 0)
				read_output(t);
	}
	free(fds);
	return rc;
}

/* ------------------------------------------------------------------ main */

static void
runner_usage(FILE *f)
{
	fprintf(f,
			"Usage: pipelinectl runner [OPTION]...\n"
			"Claim job tasks and run their shell commands.\n"
			"\n"
			"  -n, --name NAME           runner name recorded on claimed tasks (default: HOST-PID)\n"
			"  -l, --labels K=V,...      labels offered to jobs (default: none)\n"
			"  -c, --concurrency N       run up to N tasks at once (default: 1)\n"
			"      --poll-interval S     claim at least every S seconds (default: 2)\n"
			"      --heartbeat S         heartbeat every S seconds (default: 10)\n"
			"      --exit-when-idle      exit once nothing runs and nothing can be claimed\n"
			"  -d, --dbname CONNINFO     database connection string (default: PG* environment)\n"
			"  -v, --verbose             debug logging\n"
			"  -h, --help                show this help\n"
			"\n"
			"Each command runs as /bin/sh -c in a fresh directory under $TMPDIR (removed\n"
			"afterwards), with the task's params in the environment and PIPELINE_OUTPUT\n"
			"naming a file where NAME=value lines become the task's runtime envs.\n"
			"SIGTERM/SIGINT: claim nothing more and let running commands finish; a second\n"
			"signal stops them (reported failed), a third kills them and exits.\n");
}

int
cmd_runner(int argc, char **argv, const char *conninfo)
{
	static const struct option opts[] = {
		{"name", required_argument, NULL, 'n'},
		{"labels", required_argument, NULL, 'l'},
		{"concurrency", required_argument, NULL, 'c'},
		{"poll-interval", required_argument, NULL, 'p'},
		{"heartbeat", required_argument, NULL, 'H'},
		{"exit-when-idle", no_argument, NULL, 'x'},
		{"dbname", required_argument, NULL, 'd'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	runner r;
	strbuf labels;
	char err[256];
	const char *labels_spec = "";
	const char *name = NULL;
	int c, rc;

	memset(&r, 0, sizeof(r));
	r.concurrency = 1;
	r.poll_interval = 2.0;
	r.heartbeat = 10.0;
	optind = 1;
	opterr = 1;
	while ((c = getopt_long(argc, argv, "n:l:c:d:vh", opts, NULL)) != -1)
	{
		switch (c)
		{
			case 'n':
				name = optarg;
				break;
			case 'l':
				labels_spec = optarg;
				break;
			case 'c':
				if (!parse_int_range(optarg, 1, 1024, &r.concurrency))
				{
					fprintf(stderr, "pipelinectl runner: --concurrency must be an integer from 1 to 1024\n");
					return EXIT_USAGE;
				}
				break;
			case 'p':
				if (!parse_seconds(optarg, 0.05, 86400, &r.poll_interval))
				{
					fprintf(stderr, "pipelinectl runner: --poll-interval must be a number of seconds from 0.05 to 86400\n");
					return EXIT_USAGE;
				}
				break;
			case 'H':
				if (!parse_seconds(optarg, 0.1, 86400, &r.heartbeat))
				{
					fprintf(stderr, "pipelinectl runner: --heartbeat must be a number of seconds from 0.1 to 86400\n");
					return EXIT_USAGE;
				}
				break;
			case 'x':
				r.exit_when_idle = true;
				break;
			case 'd':
				conninfo = optarg;
				break;
			case 'v':
				log_set_verbose(true);
				break;
			case 'h':
				runner_usage(stdout);
				return 0;
			default:
				runner_usage(stderr);
				return EXIT_USAGE;
		}
	}
	if (optind < argc)
	{
		fprintf(stderr, "pipelinectl runner: unexpected argument \"%s\"\n", argv[optind]);
		return EXIT_USAGE;
	}
	sb_init(&labels);
	if (!labels_to_json(labels_spec, &labels, err, sizeof(err)))
	{
		fprintf(stderr, "pipelinectl runner: --labels: %s\n", err);
		sb_free(&labels);
		return EXIT_USAGE;
	}
	if (name && !*name)
	{
		fprintf(stderr, "pipelinectl runner: --name must not be empty\n");
		sb_free(&labels);
		return EXIT_USAGE;
	}
	if (name)
		r.name = xstrdup(name);
	else
	{
		char host[256];

		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "runner");
		host[sizeof(host) - 1] = '\0';
		r.name = xasprintf("%s-%ld", host, (long) getpid());
	}
	r.labels_json = sb_steal(&labels);

	log_init("runner");
	if (signals_install(true, false, true) != 0)
	{
		log_error("cannot set up signal handling: %s", strerror(errno));
		free(r.name);
		free(r.labels_json);
		return 1;
	}
	db_init(&r.db, conninfo, "pipeline_events");
	log_info("runner \"%s\" starting: labels %s, concurrency %d, poll every %.1f s, heartbeat every %.1f s",
			 r.name, r.labels_json, r.concurrency, r.poll_interval, r.heartbeat);

	rc = run_loop(&r);

	while (r.tasks)
	{
		task *t = r.tasks;

		r.tasks = t->next;
		task_free(t);
	}
	db_close(&r.db);
	free(r.name);
	free(r.labels_json);
	return rc;
}
