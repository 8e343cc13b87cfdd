/*
 * serve/events.c: live updates.  One listener connection (serve's own role)
 * does LISTEN pipeline_events for every browser; on each NOTIFY it reads
 * what happened through pipeline.events_since(last id) (catch-up included:
 * nothing is lost between two NOTIFYs) and puts (event id, run id) into a
 * ring that the Server-Sent Event streams read.  When serve's role may not
 * call events_since, the NOTIFY payload's id goes into the ring with an
 * unknown run, and every run page refreshes.
 *
 *   /run/ID/events    "event: change" whenever an event of run ID arrives;
 *                     the page then re-reads /run/ID/part with its own role
 *                     (the stream itself carries no data a role could not see:
 *                     only event ids).  Last-Event-ID resumes from the ring.
 *   /task/ID/stream   the log tail: new chunks of pipeline.job_task_log(ID)
 *                     after ?after=SEQ (or Last-Event-ID), the task's stage
 *                     when it changes and "end" once it is complete.  Chunks
 *                     are not events, so it reads at most twice a second when
 *                     woken by an event and once a second otherwise, each time
 *                     borrowing the visitor's connection (dbpool.c) briefly.
 *
 * Data lines are JSON (jansson's writer via json_write_string), so a log
 * line cannot break the stream's framing; the page inserts it as text.
 *
 * Locking: ev_lock guards the ring, its counters and ev_cond; the listener
 * thread broadcasts ev_cond on every event and once a second (tick).  A
 * stream waits on ev_cond without holding anything else; it borrows a
 * database connection only after releasing ev_lock.
 */
#define _GNU_SOURCE
#include "serve.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RING 1024

typedef struct ev_item
{
	int64_t id;
	int64_t run;				/* -1: unknown */
} ev_item;

static ev_item ring[RING];
static uint64_t ring_count;		/* items ever appended */
static uint64_t ticks;			/* seconds the listener has been up */
static int64_t last_event_id;
static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cond = PTHREAD_COND_INITIALIZER;
static pthread_t listener;
static bool listener_started;

static void
ring_add(int64_t id, int64_t run)
{
	ring[ring_count % RING].id = id;
	ring[ring_count % RING].run = run;
	ring_count++;
	if (id > last_event_id)
		last_event_id = id;
}

/* read the events after last_event_id; false when events_since is not ours to call */
static bool
catch_up(PGconn *c)
{
	for (;;)
	{
		char after[24];
		const char *params[1] = {after};
		char *err = NULL;
		PGresult *res;
		int n;

		pthread_mutex_lock(&ev_lock);
		snprintf(after, sizeof(after), "%lld", (long long) last_event_id);
		pthread_mutex_unlock(&ev_lock);
		res = qc(c, "SELECT id, coalesce(pipeline_task_id, -1) FROM pipeline.events_since($1::bigint, 1000)",
				 1, params, &err, NULL);
		if (!res)
		{
			log_warn("events: events_since failed: %s", err);
			free(err);
			return false;
		}
		n = PQntuples(res);
		pthread_mutex_lock(&ev_lock);
		for (int i = 0; i < n; i++)
		{
			int64_t id = 0, run = -1;

			parse_int64(PQgetvalue(res, i, 0), &id);
			parse_int64(PQgetvalue(res, i, 1), &run);
			ring_add(id, run);
		}
		if (n > 0)
			pthread_cond_broadcast(&ev_cond);
		pthread_mutex_unlock(&ev_lock);
		PQclear(res);
		if (n < 1000)
			return true;
	}
}

static PGconn *
listen_connect(void)
{
	const char *keys[] = {"dbname", "application_name", NULL};
	const char *vals[] = {g_serve.conninfo, "pipelinectl serve (listener)", NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	PGresult *res;

	if (PQstatus(c) != CONNECTION_OK)
	{
		PQfinish(c);
		return NULL;
	}
	res = PQexec(c, "LISTEN pipeline_events");
	PQclear(res);
	if (last_event_id == 0)
	{
		/* start at the newest event: the pages show the present */
		res = PQexec(c, "SELECT events_written FROM pipeline.stats");
		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		{
			int64_t v = 0;

			parse_int64(PQgetvalue(res, 0, 0), &v);
			pthread_mutex_lock(&ev_lock);
			last_event_id = v;
			pthread_mutex_unlock(&ev_lock);
		}
		PQclear(res);
	}
	return c;
}

static void *
listener_main(void *arg)
{
	PGconn *c = NULL;
	double next_connect = 0, next_tick = mono_now() + 1, next_sweep = mono_now() + 30;
	bool can_catch_up = true;

	while (!g_serve.stopping)
	{
		double now = mono_now();
		struct pollfd pfd;

		if (!c && now >= next_connect)
		{
			c = listen_connect();
			if (!c)
				next_connect = now + 2;
			else
				can_catch_up = catch_up(c);
		}
		pfd.fd = c ? PQsocket(c) : -1;
		pfd.events = POLLIN;
		if (poll(&pfd, c ? 1 : 0, ms_until(next_tick, mono_now()) + 1) < 0 && errno != EINTR)
			break;
		if (c)
		{
			PGnotify *nf;
			int64_t max_id = 0;
			bool got = false;

			if (!PQconsumeInput(c))
			{
				log_warn("events: the listener connection broke; reconnecting");
				PQfinish(c);
				c = NULL;
				next_connect = mono_now() + 1;
				continue;
			}
			while ((nf = PQnotifies(c)) != NULL)
			{
				int64_t id = 0;

				if (parse_int64(nf->extra, &id) && id > max_id)
					max_id = id;
				got = true;
				PQfreemem(nf);
			}
			if (got && last_event_id == 0 && max_id > 0)
			{
				pthread_mutex_lock(&ev_lock);
				last_event_id = max_id - 1;
				pthread_mutex_unlock(&ev_lock);
			}
			if (got && !(can_catch_up && catch_up(c)))
			{
				can_catch_up = false;
				pthread_mutex_lock(&ev_lock);
				ring_add(max_id > 0 ? max_id : last_event_id + 1, -1);
				pthread_cond_broadcast(&ev_cond);
				pthread_mutex_unlock(&ev_lock);
			}
		}
		now = mono_now();
		if (now >= next_tick)
		{
			next_tick = now + 1;
			pthread_mutex_lock(&ev_lock);
			ticks++;
			pthread_cond_broadcast(&ev_cond);
			pthread_mutex_unlock(&ev_lock);
		}
		if (now >= next_sweep)
		{
			next_sweep = now + 30;
			session_sweep();
		}
	}
	if (c)
		PQfinish(c);
	return NULL;
}

int
events_start(void)
{
	if (pthread_create(&listener, NULL, listener_main, NULL) != 0)
		return -1;
	listener_started = true;
	return 0;
}

void
events_stop(void)
{
	pthread_mutex_lock(&ev_lock);
	pthread_cond_broadcast(&ev_cond);
	pthread_mutex_unlock(&ev_lock);
	if (listener_started)
		pthread_join(listener, NULL);
	listener_started = false;
}

/* wait (ev_lock held) until the ring or the tick moves, or timeout s pass */
static void
wait_change(uint64_t ring_seen, uint64_t tick_seen, double timeout)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t) timeout;
	while (!g_serve.stopping && ring_count == ring_seen && ticks == tick_seen)
		if (pthread_cond_timedwait(&ev_cond, &ev_lock, &ts) == ETIMEDOUT)
			break;
}

/* ------------------------------------------------------------ run stream */
typedef struct run_stream
{
	int64_t run;
	uint64_t cursor;			/* next ring position to read */
	bool hello_sent;
	bool missed;				/* the ring overran: refresh anyway */
	double last_write;
} run_stream;

static ssize_t
run_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	run_stream *s = cls;
	int64_t changed = 0;
	int n;

	if (!s->hello_sent)
	{
		s->hello_sent = true;
		s->last_write = mono_now();
		return snprintf(buf, max, "retry: 2000\n: run %lld\n\n", (long long) s->run);
	}
	pthread_mutex_lock(&ev_lock);
	while (!g_serve.stopping && !changed)
	{
		uint64_t tick_seen = ticks;

		if (s->cursor + RING < ring_count)
		{
			s->cursor = ring_count - RING;
			s->missed = true;
		}
		for (; s->cursor < ring_count; s->cursor++)
		{
			ev_item *e = &ring[s->cursor % RING];

			if (e->run == s->run || e->run < 0 || s->missed)
				changed = e->id > changed ? e->id : changed;
		}
		if (s->missed && !changed)
			changed = last_event_id;
		s->missed = false;
		if (changed)
			break;
		if (mono_now() - s->last_write > 15)
		{
			pthread_mutex_unlock(&ev_lock);
			s->last_write = mono_now();
			return snprintf(buf, max, ": keep-alive\n\n");
		}
		wait_change(ring_count, tick_seen, 5);
	}
	pthread_mutex_unlock(&ev_lock);
	if (g_serve.stopping)
		return MHD_CONTENT_READER_END_OF_STREAM;
	s->last_write = mono_now();
	n = snprintf(buf, max, "id: %lld\nevent: change\ndata: %lld\n\n", (long long) changed,
				 (long long) changed);
	return n;
}

void
sse_run(request *r, int64_t run_id)
{
	run_stream *s = xcalloc(1, sizeof(run_stream));
	const char *last = req_header(r, "Last-Event-ID");
	int64_t last_id = 0;

	s->run = run_id;
	pthread_mutex_lock(&ev_lock);
	s->cursor = ring_count;
	if (last && parse_int64(last, &last_id) && last_id < last_event_id)
	{
		/* resume: every ring entry after the last id the browser saw */
		uint64_t first = ring_count > RING ? ring_count - RING : 0;

		s->cursor = ring_count;
		while (s->cursor > first && ring[(s->cursor - 1) % RING].id > last_id)
			s->cursor--;
		if (s->cursor == first && first > 0)
			s->missed = true;
	}
	pthread_mutex_unlock(&ev_lock);
	r->content_type = "text/event-stream; charset=utf-8";
	r->stream = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, run_reader, s, free);
}

/* ------------------------------------------------------------ log stream */
typedef struct log_stream
{
	int64_t task;
	int64_t after;
	request who;				/* the visitor's identity (sid, role) */
	char *stage;
	strbuf pending;				/* written but not yet handed to libmicrohttpd */
	bool ended;
	bool hello_sent;
	uint64_t ring_seen, tick_seen;
	double last_read, last_write;
} log_stream;

static void
log_stream_free(void *cls)
{
	log_stream *s = cls;

	free(s->stage);
	free(s->who.role);
	sb_free(&s->pending);
	free(s);
}

/* read new chunks and the stage into pending; false when the stream must end */
static bool
log_read(log_stream *s)
{
	req_db db;
	char id[24], after[24];
	const char *params[2] = {id, after};
	PGresult *res;
	bool ok = true;

	if (!req_db_acquire(&s->who, &db))
		return false;
	snprintf(id, sizeof(id), "%lld", (long long) s->task);
	snprintf(after, sizeof(after), "%lld", (long long) s->after);
	/* the stage first: output appended before completion is then all there */
	res = q(&db, "SELECT stage, stage >= 'canceled' AND gate IS NULL FROM pipeline.job_tasks WHERE id = $1::bigint",
			1, params, NULL, NULL);
	if (!res || PQntuples(res) == 0)
		ok = false;
	else
	{
		const char *stage = PQgetvalue(res, 0, 0);

		if (!s->stage || strcmp(s->stage, stage) != 0)
		{
			free(s->stage);
			s->stage = xstrdup(stage);
			sb_puts(&s->pending, "event: stage\ndata: {\"stage\":");
			json_write_cstr(&s->pending, stage);
			sb_puts(&s->pending, "}\n\n");
		}
		s->ended = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	}
	if (res)
		PQclear(res);
	if (ok)
	{
		res = q(&db, "SELECT seq, chunk FROM pipeline.job_task_log($1::bigint) WHERE seq > $2::bigint ORDER BY seq",
				2, params, NULL, NULL);
		if (!res)
			ok = false;
		for (int i = 0; res && i < PQntuples(res); i++)
		{
			int64_t seq = 0;

			parse_int64(PQgetvalue(res, i, 0), &seq);
			sb_printf(&s->pending, "id: %lld\nevent: chunk\ndata: {\"seq\":%lld,\"text\":",
					  (long long) seq, (long long) seq);
			json_write_string(&s->pending, PQgetvalue(res, i, 1), (size_t) PQgetlength(res, i, 1));
			sb_puts(&s->pending, "}\n\n");
			if (seq > s->after)
				s->after = seq;
		}
		if (res)
			PQclear(res);
	}
	req_db_release(&db);
	if (ok && s->ended)
		sb_puts(&s->pending, "event: end\ndata: {}\n\n");
	return ok;
}

static ssize_t
log_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	log_stream *s = cls;

	if (!s->hello_sent)
	{
		s->hello_sent = true;
		sb_printf(&s->pending, "retry: 2000\n: task %lld\n\n", (long long) s->task);
	}
	while (s->pending.len == 0)
	{
		double now = mono_now();

		if (s->ended || g_serve.stopping)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (now - s->last_read >= 0.5)
		{
			s->last_read = now;
			if (!log_read(s))
				return MHD_CONTENT_READER_END_OF_STREAM;
			if (s->pending.len > 0)
				break;
		}
		if (now - s->last_write > 15)
		{
			sb_puts(&s->pending, ": keep-alive\n\n");
			break;
		}
		pthread_mutex_lock(&ev_lock);
		wait_change(s->ring_seen, s->tick_seen, 2);
		s->ring_seen = ring_count;
		s->tick_seen = ticks;
		pthread_mutex_unlock(&ev_lock);
	}
	{
		size_t n = s->pending.len < max ? s->pending.len : max;

		memcpy(buf, s->pending.data, n);
		sb_consume(&s->pending, n);
		s->last_write = mono_now();
		return (ssize_t) n;
	}
}

void
sse_log(request *r, req_db *db, int64_t task_id, int64_t after)
{
	log_stream *s = xcalloc(1, sizeof(log_stream));
	const char *last = req_header(r, "Last-Event-ID");
	int64_t last_seq;

	/* the stream borrows a connection per read, not for its whole life */
	req_db_release(db);
	s->task = task_id;
	s->after = after;
	if (last && parse_int64(last, &last_seq) && last_seq > s->after)
		s->after = last_seq;
	memcpy(s->who.sid, r->sid, sizeof(s->who.sid));
	s->who.role = r->role ? xstrdup(r->role) : NULL;
	sb_init(&s->pending);
	pthread_mutex_lock(&ev_lock);
	s->ring_seen = ring_count;
	s->tick_seen = ticks;
	pthread_mutex_unlock(&ev_lock);
	r->content_type = "text/event-stream; charset=utf-8";
	r->stream = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, log_reader, s,
												  log_stream_free);
}
