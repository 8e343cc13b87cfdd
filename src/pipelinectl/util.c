/*
 * util.c: logging, growable strings, clocks, backoff, signals, parsing,
 * UTF-8 repair and directory removal.
 */
#define _GNU_SOURCE
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ memory */

static void
out_of_memory(size_t n)
{
	/* no malloc here: write(2) only */
	static const char msg[] = "pipelinectl: out of memory\n";
	ssize_t r = write(2, msg, sizeof(msg) - 1);

	(void) r;
	(void) n;
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		out_of_memory(n);
	return p;
}

void *
xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);

	if (!p)
		out_of_memory(n * m);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		out_of_memory(n);
	return q;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

/* Like strndup: at most n bytes, stopping early at a NUL. */
char *
xstrndup(const char *s, size_t n)
{
	char *p;

	n = strnlen(s, n);
	p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static void sb_vprintf(strbuf *sb, const char *fmt, va_list ap);

char *
xasprintf(const char *fmt, ...)
{
	strbuf sb;
	va_list ap;

	sb_init(&sb);
	va_start(ap, fmt);
	sb_vprintf(&sb, fmt, ap);
	va_end(ap);
	return sb_steal(&sb);
}

/* ----------------------------------------------------------------- strbuf */

void
sb_init(strbuf *sb)
{
	sb->data = NULL;
	sb->len = 0;
	sb->cap = 0;
}

void
sb_free(strbuf *sb)
{
	free(sb->data);
	sb_init(sb);
}

void
sb_reset(strbuf *sb)
{
	sb->len = 0;
	if (sb->data)
		sb->data[0] = '\0';
}

void
sb_reserve(strbuf *sb, size_t extra)
{
	size_t need;

	if (extra > SIZE_MAX / 2 - sb->len)
		out_of_memory(extra);
	need = sb->len + extra + 1;
	if (need <= sb->cap)
		return;
	size_t cap = sb->cap ? sb->cap : 64;

	while (cap < need)
		cap *= 2;
	sb->data = xrealloc(sb->data, cap);
	sb->cap = cap;
}

void
sb_append(strbuf *sb, const char *s, size_t n)
{
	sb_reserve(sb, n);
	if (n)
		memcpy(sb->data + sb->len, s, n);
	sb->len += n;
	sb->data[sb->len] = '\0';
}

void
sb_puts(strbuf *sb, const char *s)
{
	sb_append(sb, s, strlen(s));
}

void
sb_putc(strbuf *sb, char c)
{
	sb_append(sb, &c, 1);
}

static void
sb_vprintf(strbuf *sb, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	/* format into the free space; grow and format again when it was too small */
	sb_reserve(sb, 128);
	va_copy(ap2, ap);
	n = vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, ap2);
	va_end(ap2);
	if (n < 0)
	{
		sb->data[sb->len] = '\0';
		return;
	}
	if ((size_t) n >= sb->cap - sb->len)
	{
		sb_reserve(sb, (size_t) n);
		va_copy(ap2, ap);
		vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, ap2);
		va_end(ap2);
	}
	sb->len += (size_t) n;
}

void
sb_printf(strbuf *sb, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sb_vprintf(sb, fmt, ap);
	va_end(ap);
}

void
sb_consume(strbuf *sb, size_t n)
{
	if (n >= sb->len)
	{
		sb_reset(sb);
		return;
	}
	memmove(sb->data, sb->data + n, sb->len - n);
	sb->len -= n;
	sb->data[sb->len] = '\0';
}

const char *
sb_str(strbuf *sb)
{
	return sb->data ? sb->data : "";
}

char *
sb_steal(strbuf *sb)
{
	char *p = sb->data ? sb->data : xstrdup("");

	sb_init(sb);
	return p;
}

/* ------------------------------------------------------------------ clocks */

double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

double
wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int
ms_until(double deadline, double now)
{
	double ms = (deadline - now) * 1000.0;

	if (!(ms > 0))
		return 0;
	if (ms > INT_MAX / 2)
		return INT_MAX / 2;
	return (int) ceil(ms);
}

/* ---------------------------------------------------------------- backoff */

void
backoff_init(backoff *b, double min_delay, double max_delay)
{
	b->min_delay = min_delay;
	b->max_delay = max_delay;
	b->delay = 0;
}

double
backoff_next(backoff *b)
{
	double d;

	if (b->delay <= 0)
		b->delay = b->min_delay;
	else
	{
		b->delay *= 2;
		if (b->delay > b->max_delay)
			b->delay = b->max_delay;
	}
	/* +-20 % jitter so that many clients do not reconnect in lockstep */
	d = b->delay * (0.8 + 0.4 * ((double) (random() % 1000) / 1000.0));
	return d;
}

void
backoff_reset(backoff *b)
{
	b->delay = 0;
}

/* ---------------------------------------------------------------- logging */

static const char *log_component = PCTL_NAME;
static bool log_verbose = false;
static log_level log_min = LOG_INFO;

void
log_init(const char *component)
{
	log_component = component;
	srandom((unsigned) (time(NULL) ^ (getpid() << 16)));
}

void
log_set_verbose(bool v)
{
	log_verbose = v;
}

void
log_set_min_level(log_level l)
{
	log_min = l;
}

void
oneline(char *s)
{
	char *p;
	size_t n;

	for (p = s; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	n = strlen(s);
	while (n > 0 && s[n - 1] == ' ')
		s[--n] = '\0';
}

void
log_msg(log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
	char msg[2048];
	char stamp[64];
	char zone[8];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int saved = errno;

	if ((level == LOG_DEBUG && !log_verbose) || (level < log_min && !(level == LOG_DEBUG && log_verbose)))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	oneline(msg);

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	/* one fprintf per line: lines of concurrent processes do not interleave */
	fprintf(stderr, "%s.%03ld %s %s[%ld] %s: %s\n", stamp, ts.tv_nsec / 1000000L, zone,
			log_component, (long) getpid(), names[level], msg);
	fflush(stderr);
	errno = saved;
}

/* ---------------------------------------------------------------- signals */

sigstate g_sig;
static int sig_pipe[2] = {-1, -1};

static void
sig_handler(int signo)
{
	int saved = errno;
	char c = (char) signo;
	ssize_t r;

	if (signo == SIGTERM || signo == SIGINT || signo == SIGHUP)
		g_sig.term_count++;
	else if (signo == SIGCHLD)
		g_sig.chld = 1;
	else if (signo == SIGWINCH)
		g_sig.winch = 1;
	g_sig.last_signal = signo;
	if (sig_pipe[1] >= 0)
		r = write(sig_pipe[1], &c, 1);	/* full pipe: a wakeup is already pending */
	(void) r;
	errno = saved;
}

int
signals_install(bool want_chld, bool want_winch, bool ignore_pipe)
{
	struct sigaction sa;

	if (sig_pipe[0] < 0)
	{
		if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
			return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sig_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (want_chld)
	{
		sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
		sigaction(SIGCHLD, &sa, NULL);
		sa.sa_flags = SA_RESTART;
	}
	if (want_winch)
		sigaction(SIGWINCH, &sa, NULL);
	if (ignore_pipe)
		signal(SIGPIPE, SIG_IGN);
	return 0;
}

int
signals_fd(void)
{
	return sig_pipe[0];
}

void
signals_drain(void)
{
	char buf[64];

	if (sig_pipe[0] < 0)
		return;
	while (read(sig_pipe[0], buf, sizeof(buf)) > 0)
		;
}

void
signals_close(void)
{
	for (int i = 0; i < 2; i++)
		if (sig_pipe[i] >= 0)
		{
			close(sig_pipe[i]);
			sig_pipe[i] = -1;
		}
}

void
signals_restore_child(void)
{
	sigset_t none;

	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGWINCH, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);	/* an ignored signal would stay ignored across exec */
	signal(SIGQUIT, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* ---------------------------------------------------------------- parsing */

bool
parse_int64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s)
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s)
		return false;
	*out = (int64_t) v;
	return true;
}

bool
parse_positive_id(const char *s, int64_t *out)
{
	int64_t v;

	if (!s || !(*s >= '0' && *s <= '9'))
		return false;
	if (!parse_int64(s, &v) || v <= 0)
		return false;
	*out = v;
	return true;
}

bool
parse_int_range(const char *s, int lo, int hi, int *out)
{
	int64_t v;

	if (!parse_int64(s, &v) || v < lo || v > hi)
		return false;
	*out = (int) v;
	return true;
}

bool
parse_seconds(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	if (!s || !*s)
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || end == s || !(v >= lo && v <= hi))
		return false;
	*out = v;
	return true;
}

/* ------------------------------------------------------------------ UTF-8 */

/* length of the valid sequence at s (1..4), 0 when invalid, -1 when it may be
 * valid but is cut by the end of the buffer */
static int
utf8_seq(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];
	int n;
	unsigned lo = 0x80, hi = 0xBF;

	if (c < 0x80)
		return c == 0 ? 0 : 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
	{
		n = 3;
		if (c == 0xE0)
			lo = 0xA0;			/* overlong */
		else if (c == 0xED)
			hi = 0x9F;			/* surrogates */
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		n = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	}
	else
		return 0;
	for (int i = 1; i < n; i++)
	{
		if ((size_t) i >= avail)
			return -1;
		unsigned b = s[i];

		if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
			return 0;
	}
	return n;
}

size_t
utf8_repair(strbuf *out, const char *in, size_t len, bool final)
{
	const unsigned char *s = (const unsigned char *) in;
	size_t i = 0, run = 0;

	sb_reserve(out, len);
	while (i < len)
	{
		int n = utf8_seq(s + i, len - i);

		if (n > 0)
		{
			i += (size_t) n;
			continue;
		}
		/* flush the valid run before i */
		if (i > run)
			sb_append(out, in + run, i - run);
		if (n < 0 && !final)
			return i;			/* incomplete sequence at the end: keep it */
		sb_append(out, "\xEF\xBF\xBD", 3);
		i++;
		run = i;
	}
	if (i > run)
		sb_append(out, in + run, i - run);
	return len;
}

size_t
utf8_cut(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *) s;
	size_t i = len;
	int back = 0;

	/* walk back over at most 3 continuation bytes to the lead byte */
	while (i > 0 && back < 4 && (u[i - 1] & 0xC0) == 0x80)
	{
		i--;
		back++;
	}
	if (i == 0)
		return len;
	unsigned char lead = u[i - 1];
	size_t need;

	if (lead < 0x80)
		return len;
	else if ((lead & 0xE0) == 0xC0)
		need = 2;
	else if ((lead & 0xF0) == 0xE0)
		need = 3;
	else if ((lead & 0xF8) == 0xF0)
		need = 4;
	else
		return len;
	if ((size_t) back + 1 < need)
		return i - 1;			/* cut before the incomplete character */
	return len;
}

size_t
utf8_next_boundary(const char *s, size_t len, size_t pos)
{
	while (pos < len && (((unsigned char) s[pos]) & 0xC0) == 0x80)
		pos++;
	return pos;
}

/* ---------------------------------------------------------------- rmtree */

static int
rmtree_at(int dirfd, const char *name, int depth)
{
	int fd;
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (depth > 512)
	{
		errno = ELOOP;
		return -1;
	}
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == EACCES)
	{
		/* a directory the job made unreadable: make it ours again */
		fchmodat(dirfd, name, 0700, 0);
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return -1;
	/* we need write and search permission to delete entries */
	fchmod(fd, 0700);
	d = fdopendir(fd);
	if (!d)
	{
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL)
	{
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0)
			continue;
		if (errno == EISDIR || errno == EPERM)
		{
			struct stat st;

			if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
			{
				if (rmtree_at(fd, de->d_name, depth + 1) != 0)
					rc = -1;
				continue;
			}
		}
		rc = -1;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) != 0)
		rc = -1;
	return rc;
}

int
rmtree(const char *path)
{
	return rmtree_at(AT_FDCWD, path, 0);
}

char *
read_file_capped(const char *path, size_t max, size_t *len_out, bool *truncated)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	strbuf sb;
	char buf[8192];

	*len_out = 0;
	if (truncated)
		*truncated = false;
	if (fd < 0)
		return NULL;
	sb_init(&sb);
	sb_reserve(&sb, 0);
	for (;;)
	{
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			int e = errno;

			close(fd);
			sb_free(&sb);
			errno = e;
			return NULL;
		}
		if (n == 0)
			break;
		if (sb.len + (size_t) n > max)
		{
			sb_append(&sb, buf, max - sb.len);
			if (truncated)
				*truncated = true;
			break;
		}
		sb_append(&sb, buf, (size_t) n);
	}
	close(fd);
	*len_out = sb.len;
	return sb_steal(&sb);
}

/* ------------------------------------------------------------- formatting */

void
fmt_clock(char *buf, size_t n, double wall)
{
	time_t t = (time_t) wall;
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(buf, n, "%H:%M:%S", &tm);
}

void
fmt_duration(char *buf, size_t n, double secs)
{
	long s;

	if (!(secs >= 0))
		secs = 0;
	if (secs > 1e9)
		secs = 1e9;
	s = (long) (secs + 0.5);
	if (s < 60)
		snprintf(buf, n, "%lds", s);
	else if (s < 3600)
		snprintf(buf, n, "%ldm%02lds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, n, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
	else
		snprintf(buf, n, "%ldd%02ldh", s / 86400, (s % 86400) / 3600);
}
