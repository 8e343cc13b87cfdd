/*
 * redact.h: what people may see of definitions and hooks (redact.c).  Pure
 * functions: no SPI, no locks.
 *
 * Layer: storage
 */
#ifndef PL_REDACT_H
#define PL_REDACT_H

#include "postgres.h"

#include "utils/jsonb.h"

extern Jsonb *pl_redact_hooks(Jsonb *hooks);	/* hook targets redacted */

#endif							/* PL_REDACT_H */
