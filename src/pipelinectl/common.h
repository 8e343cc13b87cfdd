/*
 * common.h: shared declarations of pipelinectl, the command-line program of
 * the pipeline extension (runner, hookd, watch, logs, graph).
 *
 * Modules:
 *   util.c     logging, growable strings, clocks, backoff, signals,
 *              number/option parsing, UTF-8 repair, directory removal
 *   json.c     a small recursive-descent JSON parser and JSON writing helpers
 *   db.c       one libpq connection with reconnect/backoff, LISTEN, queries
 *   runner.c   "runner": claims job tasks and runs their commands
 *   hookd.c    "hookd": sends hook deliveries (webhooks, IM robots)
 *   sign.c     HMAC-SHA256, hex and base64 (OpenSSL libcrypto)
 *   watch.c    "watch": live view of a pipeline task
 *   logs.c     "logs" and "graph"
 *   selftest.c "selftest": checks of the pure parts, no database needed
 *   main.c     subcommand dispatch, --help, --version
 *
 * The program is single-threaded: every long-running subcommand is one event
 * loop around poll() (or curl_multi_poll()), woken by a self-pipe written from
 * the signal handlers.
 */
#ifndef PIPELINECTL_COMMON_H
#define PIPELINECTL_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <libpq-fe.h>

#define PCTL_VERSION "0.1"
#define PCTL_NAME "pipelinectl"

/* exit codes shared by the subcommands */
#define EXIT_USAGE 2

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define PCTL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define PCTL_NORETURN __attribute__((noreturn))
#else
#define PCTL_PRINTF(f, a)
#define PCTL_NORETURN
#endif

/* ------------------------------------------------------------------ util.c */

/* memory: abort with a message on exhaustion (there is no sane recovery) */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) PCTL_PRINTF(1, 2);

/* logging: one line per event on stderr, "2024-05-01 12:00:00.123 +0200 runner[123] LEVEL: msg" */
typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;
void log_init(const char *component);
void log_set_verbose(bool v);
void log_set_min_level(log_level l);	/* interactive commands: warnings only */
void log_msg(log_level level, const char *fmt, ...) PCTL_PRINTF(2, 3);
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* growable string; always NUL-terminated once anything was added */
typedef struct strbuf
{
	char *data;
	size_t len;
	size_t cap;
} strbuf;

void sb_init(strbuf *sb);
void sb_free(strbuf *sb);
void sb_reset(strbuf *sb);
void sb_reserve(strbuf *sb, size_t extra);
void sb_append(strbuf *sb, const char *s, size_t n);
void sb_puts(strbuf *sb, const char *s);
void sb_putc(strbuf *sb, char c);
void sb_printf(strbuf *sb, const char *fmt, ...) PCTL_PRINTF(2, 3);
void sb_consume(strbuf *sb, size_t n);	/* drop the first n bytes */
const char *sb_str(strbuf *sb);			/* "" when empty */
char *sb_steal(strbuf *sb);				/* caller frees; buffer is reset */

/* clocks */
double mono_now(void);		/* seconds, CLOCK_MONOTONIC */
double wall_now(void);		/* seconds since the epoch */
int ms_until(double deadline, double now);	/* clamp to [0, INT_MAX/2] */

/* exponential backoff with jitter: 0.5 s doubling up to max_delay */
typedef struct backoff
{
	double delay;
	double min_delay;
	double max_delay;
} backoff;

void backoff_init(backoff *b, double min_delay, double max_delay);
double backoff_next(backoff *b);	/* returns the delay to wait now */
void backoff_reset(backoff *b);

/* signals: SIGTERM/SIGINT/SIGCHLD/SIGWINCH set flags and write to a self-pipe */
typedef struct sigstate
{
	volatile int term_count;	/* SIGTERM + SIGINT received */
	volatile int chld;
	volatile int winch;
	volatile int last_signal;
} sigstate;

extern sigstate g_sig;
int signals_install(bool want_chld, bool want_winch, bool ignore_pipe);
int signals_fd(void);			/* read end of the self-pipe */
void signals_drain(void);		/* empty the self-pipe */
void signals_close(void);		/* at exit */
void signals_restore_child(void);	/* in a forked child, before exec */

/* parsing */
bool parse_int64(const char *s, int64_t *out);
bool parse_positive_id(const char *s, int64_t *out);
bool parse_int_range(const char *s, int lo, int hi, int *out);
bool parse_seconds(const char *s, double lo, double hi, double *out);

/*
 * UTF-8 repair: append to out the valid UTF-8 text of in[0..len), replacing
 * every invalid byte and every NUL by U+FFFD.  When final is false, an
 * incomplete sequence at the end is not consumed; the number of bytes
 * consumed is returned.
 */
size_t utf8_repair(strbuf *out, const char *in, size_t len, bool final);
/* largest n <= len such that s[0..n) does not end inside a UTF-8 sequence */
size_t utf8_cut(const char *s, size_t len);
/* index of the first byte that starts a character at or after pos */
size_t utf8_next_boundary(const char *s, size_t len, size_t pos);

/* one-line version of a message: newlines and tabs become spaces, trimmed */
void oneline(char *s);

/* remove a directory tree without following symbolic links; 0 or -1 */
int rmtree(const char *path);

/* read a whole file, at most max bytes; NULL with errno on failure */
char *read_file_capped(const char *path, size_t max, size_t *len_out, bool *truncated);

/* time formatting */
void fmt_clock(char *buf, size_t n, double wall);	/* HH:MM:SS local time */
void fmt_duration(char *buf, size_t n, double secs);	/* 5s, 1m05s, 2h03m */

/* json.c (files that use jansson define PCTL_USE_JANSSON and do not see these names) */
#ifndef PCTL_USE_JANSSON
/* ------------------------------------------------------------------ json.c */

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value json_value;

typedef struct json_member
{
	char *key;
	size_t key_len;
	json_value *value;
} json_member;

struct json_value
{
	json_type type;
	union
	{
		bool boolean;
		struct
		{
			double value;
			char *text;		/* as written */
		} number;
		struct
		{
			char *str;		/* decoded, NUL-terminated (may hold NULs from \u0000) */
			size_t len;
		} string;
		struct
		{
			json_value **items;
			size_t count;
		} array;
		struct
		{
			json_member *members;
			size_t count;
		} object;
	} u;
};

/* parse a complete JSON text; NULL on error with a message in err */
json_value *json_parse(const char *text, size_t len, char *err, size_t errlen);
void json_free(json_value *v);

/* lookups: NULL when absent or of another type */
const json_value *json_get(const json_value *obj, const char *key);	/* last member wins */
const char *json_get_str(const json_value *obj, const char *key);
bool json_get_number(const json_value *obj, const char *key, double *out);
bool json_get_bool(const json_value *obj, const char *key, bool *out);
bool json_is_true(const json_value *v);
/* scalar as a string for the environment: strings as is, numbers as written,
 * booleans true/false; NULL for null, arrays and objects (then use json_write) */
const char *json_scalar_text(const json_value *v);

/* writing */
void json_write_string(strbuf *sb, const char *s, size_t len);	/* quotes + escapes, repairs UTF-8 */
void json_write_cstr(strbuf *sb, const char *s);	/* NULL -> null */
void json_write(strbuf *sb, const json_value *v);	/* re-serialize */

#endif							/* PCTL_USE_JANSSON */

/* -------------------------------------------------------------------- db.c */

typedef struct db_error
{
	char sqlstate[6];			/* "" when unknown */
	char message[1024];			/* one line */
	bool conn_lost;				/* the connection is gone (it has been closed) */
} db_error;

typedef struct db_conn
{
	char *conninfo;				/* -d value or NULL for libpq defaults */
	PGconn *conn;
	const char *listen_channel; /* LISTEN on (re)connect, or NULL */
	backoff backoff;
	double next_attempt;		/* monotonic time of the next connect attempt */
	unsigned long notifications;	/* NOTIFYs received so far */
	bool ever_connected;
	bool lost_logged;
	int failures;				/* consecutive failed connect attempts */
} db_conn;

void db_init(db_conn *db, const char *conninfo, const char *listen_channel);
void db_close(db_conn *db);
bool db_connected(const db_conn *db);
/* connect now (one attempt); logs; false with err filled on failure */
bool db_connect(db_conn *db, db_error *err);
/* connect if not connected and a retry is due; true when connected */
bool db_ensure(db_conn *db, double now);
/* the socket to poll for NOTIFY, or -1 */
int db_socket(const db_conn *db);
/* read what arrived on the socket: collects notifications */
void db_consume(db_conn *db);
/* run a parameterized query (all parameters as text, NULL = SQL NULL) */
PGresult *db_query(db_conn *db, const char *sql, int nparams,
				   const char *const *params, db_error *err);
/* whether an error is worth retrying later (connection, lock, serialization ...) */
bool db_error_transient(const db_error *err);
/* the column number of name, or -1 */
int db_col(const PGresult *res, const char *name);
/* value or NULL for SQL NULL / missing column */
const char *db_value(const PGresult *res, int row, int col);

/* ---------------------------------------------------------------- sign.c */

/* HMAC-SHA256(key, msg) as lowercase hex in out (65 bytes) */
void hmac_sha256_hex(const char *key, size_t keylen, const char *msg, size_t msglen,
					 char out[65]);
/* HMAC-SHA256(key, msg) in base64 (45 bytes) */
void hmac_sha256_base64(const char *key, size_t keylen, const char *msg, size_t msglen,
						char out[45]);

/* ------------------------------------------------------------- subcommands */

int cmd_runner(int argc, char **argv, const char *conninfo);
int cmd_hookd(int argc, char **argv, const char *conninfo);
int cmd_watch(int argc, char **argv, const char *conninfo);
int cmd_logs(int argc, char **argv, const char *conninfo);
int cmd_graph(int argc, char **argv, const char *conninfo);
int cmd_apply(int argc, char **argv, const char *conninfo);
int cmd_lint(int argc, char **argv, const char *conninfo);
int cmd_run(int argc, char **argv, const char *conninfo);
int cmd_ls(int argc, char **argv, const char *conninfo);
int cmd_status(int argc, char **argv, const char *conninfo);
int cmd_cancel(int argc, char **argv, const char *conninfo);
int cmd_retry(int argc, char **argv, const char *conninfo);
int cmd_approve(int argc, char **argv, const char *conninfo);
int cmd_deny(int argc, char **argv, const char *conninfo);
int cmd_play(int argc, char **argv, const char *conninfo);
/* logs --run RUN, or logs JOB_TASK --json (cmd_runlogs.c) */
int logs_run(const char *run, const char *task, bool json, const char *conninfo);
int cmd_selftest(int argc, char **argv);
int cmd_sign(int argc, char **argv);

/* shared by hookd and selftest */
typedef enum { ROBOT_NONE, ROBOT_FEISHU, ROBOT_DINGTALK, ROBOT_WECOM } robot_kind;
robot_kind robot_from_url(const char *url);
robot_kind robot_from_name(const char *name);
/* shared by runner and selftest: parse $PIPELINE_OUTPUT text into a jsonb object text
 * ("" pieces skipped); returns the number of variables, the JSON in out */
int parse_output_envs(const char *text, size_t len, strbuf *out);
/* shared by runner and selftest: "--labels a=b,c=d" as a JSON object; false on error */
bool labels_to_json(const char *spec, strbuf *out, char *err, size_t errlen);
/* "canceled", "failed", "succeeded", "skipped" */
bool stage_is_complete(const char *stage);

#endif
