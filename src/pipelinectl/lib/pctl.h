/*
 * lib/pctl.h: the client library of pipelinectl in one include.
 *
 *   base.h   memory, strings, clocks, backoff, parsing, UTF-8, files
 *   log.h    one line per event on stderr
 *   sig.h    signals through a self-pipe
 *   conn.h   the database connection: reconnect with backoff, LISTEN, queries
 *   json.h   JSON through jansson
 *   opts.h   the one option parser
 *   out.h    tables and --json output
 *   retry.h  the one retry policy of reports to the database
 *   sign.h   HMAC-SHA256 signatures
 *
 * Locking: none; the program is single-threaded, each long-running command
 * one event loop around poll() (or curl_multi_poll()).
 */
#ifndef PCTL_PCTL_H
#define PCTL_PCTL_H

#include "base.h"
#include "conn.h"
#include "json.h"
#include "log.h"
#include "opts.h"
#include "out.h"
#include "retry.h"
#include "sig.h"
#include "sign.h"

#endif
