/*
 * concurrency.h: the `concurrency` field of jobs and tasks (SPEC §14,
 * concurrency.c): its check at definition time and the expansion of its key
 * at run creation.  No locking (the key's lock is in lock.h, the slots are
 * taken and given back by transition.c).
 *
 * Layer: storage
 */
#ifndef PL_CONCURRENCY_H
#define PL_CONCURRENCY_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

#include "defcheck.h"

#define PL_MAX_CONC_KEY 200			/* a key as written in a definition, in bytes */
#define PL_MAX_CONC_KEY_EXPANDED 512	/* a key after $NAME substitution, in bytes */
#define PL_MAX_CONC_LIMIT 100000

/*
 * Check obj's "concurrency" ({"key": string, "limit": integer >= 1, default 1}) at path
 * and, when present and not null, append it normalized ("concurrency": {...}) to out.
 * A refusal is def_error (22023 naming the path).
 */
extern void def_emit_concurrency(DefCtx *ctx, const char *path, JsonbContainer *obj,
								 StringInfo out, bool *first);

/* A parameter's value by name, or NULL if it has none. */
typedef const char *(*PlParamLookup) (void *arg, const char *name);

/*
 * Expand a key written in a definition: $NAME and ${NAME} become the value of
 * parameter NAME, $$ a single $.  Returns the key, or NULL with *missing set
 * to the first name that has no value.  *used_names (if not NULL) gets a
 * NULL-terminated array of the names used.
 */
extern char *pl_conc_expand(const char *tmpl, PlParamLookup lookup, void *arg,
							char **missing, char ***used_names);

#endif							/* PL_CONCURRENCY_H */
