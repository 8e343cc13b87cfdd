/*
 * runner/logship.c: a command's output on its way to the database.
 *
 * Bytes read from the child's pipe are repaired to UTF-8 (a character cut
 * between two reads is carried over), sensitive values masked (mask.c), kept as a tail for the final detail
 * (TAIL_MAX bytes) and queued for pipeline.append_job_task_log(), sent in
 * pieces of at most LOG_PIECE_MAX when LOG_FLUSH_BYTES are pending or the
 * oldest byte is LOG_FLUSH_SECS old.  While the database is away at most
 * LOG_BUF_MAX bytes wait (the oldest are dropped, and the log says how many);
 * at most LOG_TOTAL_MAX bytes are stored per task.
 *
 * Locking: none on the client side; append_job_task_log locks the task row.
 */
#define _GNU_SOURCE
#include "runner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

void
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
	/* secrets out before the text goes anywhere (tail, log, database) */
	sb_reset(&joined);
	secrets_mask_stream(&t->secrets, sb_str(&clean), clean.len, final, &joined);
	output_append_clean(t, sb_str(&joined), joined.len);
	sb_free(&clean);
	sb_free(&joined);
}

/*
 * Sends pending output: one piece, or everything when all is set.  FLUSH_LATER
 * when something is left for a later try (database away), FLUSH_LOST when the
 * server says the task is no longer ours.
 */
flush_result
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
		switch (report_error_kind(&err))
		{
			case ERR_TRANSIENT:
				t->log_first = mono_now();	/* kept; tried again later */
				return FLUSH_LATER;
			case ERR_REJECTED:
				log_warn("job task %s: output rejected (%s: %s); the task is no longer ours",
						 t->idstr, err.sqlstate, err.message);
				return FLUSH_LOST;
			case ERR_OTHER:
				break;
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

void
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

char *
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
