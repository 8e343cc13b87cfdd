/*
 * defhooks.h: validating and normalizing the hooks and gates of a definition
 * (defhooks.c).  No locking here: validation reads only its argument.
 *
 * Layer: storage
 */
#ifndef DEFHOOKS_H
#define DEFHOOKS_H

#include "defcheck.h"

extern void def_emit_hooks(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
						   StringInfo out, bool *first, bool robot);
extern void def_emit_mentions(DefCtx *ctx, const char *path, JsonbContainer *obj, StringInfo out,
							  bool *first);
extern void def_emit_gate(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
						  const char *list_key, StringInfo out, bool *first);

#endif							/* DEFHOOKS_H */
