/*
 * token.h: update tokens (token.c): new tokens, the run id they carry, their
 * digests and the constant-time comparison.  No SPI, no locks.
 *
 * Layer: storage
 */
#ifndef PL_TOKEN_H
#define PL_TOKEN_H

#include "postgres.h"

#define PL_TOKEN_RANDOM_BYTES 16
#define PL_TOKEN_LEN (16 + 2 * PL_TOKEN_RANDOM_BYTES)	/* 48 hex digits */
#define PL_DIGEST_BYTES 32
extern char *pl_token_new(int64 pipeline_task_id);	/* palloc'd hex string */
extern int64 pl_token_run(const char *token);
extern bytea *pl_token_digest(const char *token);
extern bool pl_token_matches(const char *token, bytea *digest);

#endif							/* PL_TOKEN_H */
