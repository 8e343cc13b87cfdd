/*
 * lib/log.h: logging of the long-running commands: one line per event on
 * stderr, "2024-05-01 12:00:00.123 +0200 runner[123] LEVEL: msg".
 * Interactive commands raise the minimum level to warnings.
 *
 * Locking: none (single-threaded program); one fprintf per line so that the
 * lines of concurrent processes sharing a stderr do not interleave.
 */
#ifndef PCTL_LOG_H
#define PCTL_LOG_H

#include "base.h"

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

void log_init(const char *component);
void log_set_verbose(bool v);
void log_set_min_level(log_level l);
void log_msg(log_level level, const char *fmt, ...) PCTL_PRINTF(2, 3);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
