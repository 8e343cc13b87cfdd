/*
 * lib/base.h: the basics every part of pipelinectl uses: memory that aborts
 * on exhaustion, growable strings, clocks and backoff, number parsing, UTF-8
 * repair, time formatting and file-system helpers.
 *
 *   strbuf.c  memory, strbuf
 *   text.c    number parsing, UTF-8 repair and cuts, one-line text, formatting
 *   clock.c   monotonic and wall clocks, exponential backoff with jitter
 *   fs.c      rmtree (no symlink following), read_file_capped
 *
 * Locking: none; the program is single-threaded.
 */
#ifndef PCTL_BASE_H
#define PCTL_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PCTL_VERSION "0.1"
#define PCTL_NAME "pipelinectl"

/* exit codes of every command (SPEC §12) */
#define EXIT_OK 0
#define EXIT_FAILED 1			/* the thing asked about failed (a run, a query) */
#define EXIT_USAGE 2			/* usage, connection, privilege or setup error */

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define PCTL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define PCTL_NORETURN __attribute__((noreturn))
#else
#define PCTL_PRINTF(f, a)
#define PCTL_NORETURN
#endif

/* ---------------------------------------------------------------- strbuf.c */

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);	/* at most n bytes, stops at a NUL */
char *xasprintf(const char *fmt, ...) PCTL_PRINTF(1, 2);

/* growable string; data is NUL-terminated as soon as it is allocated */
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
void sb_vprintf(strbuf *sb, const char *fmt, va_list ap);
void sb_consume(strbuf *sb, size_t n);	/* drop the first n bytes */
const char *sb_str(strbuf *sb);			/* "" when empty */
char *sb_steal(strbuf *sb);				/* caller frees; buffer is reset */

/* ------------------------------------------------------------------ text.c */

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
/* s as one line of valid UTF-8, at most max bytes (then "..." added); caller frees */
char *short_text(const char *s, size_t max);

void fmt_clock(char *buf, size_t n, double wall);	/* HH:MM:SS local time */
void fmt_duration(char *buf, size_t n, double secs);	/* 5s, 1m05s, 2h03m */

/* "canceled", "failed", "succeeded", "skipped" */
bool stage_is_complete(const char *stage);

/* ----------------------------------------------------------------- clock.c */

double mono_now(void);			/* seconds, CLOCK_MONOTONIC */
double wall_now(void);			/* seconds since the epoch */
int ms_until(double deadline, double now);	/* clamp to [0, INT_MAX/2] */

/* exponential backoff with jitter: min_delay doubling up to max_delay */
typedef struct backoff
{
	double delay;
	double min_delay;
	double max_delay;
} backoff;

void backoff_init(backoff *b, double min_delay, double max_delay);
double backoff_next(backoff *b);	/* returns the delay to wait now */
void backoff_reset(backoff *b);

/* -------------------------------------------------------------------- fs.c */

/* remove a directory tree without following symbolic links; 0 or -1 */
int rmtree(const char *path);
/* read a whole file, at most max bytes; NULL with errno on failure */
char *read_file_capped(const char *path, size_t max, size_t *len_out, bool *truncated);

#endif
