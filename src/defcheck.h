/*
 * defcheck.h: what definition.c and defhooks.c share to validate a definition
 * and write its normalized form: the limits, the context naming the document,
 * the refusal (def_error: 22023 with the JSON path) and the typed getters.
 * No locking here: validation reads only its argument.
 *
 * Layer: storage
 */
#ifndef DEFCHECK_H
#define DEFCHECK_H

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

/* Definition-time limits (README "Definitions"); each refusal is 22023 with the path. */
#define PL_MAX_DOCUMENT (1024 * 1024)	/* a definition, as jsonb */
#define PL_MAX_COMMAND (64 * 1024)	/* a job's command */
#define PL_MAX_VALUE (64 * 1024)	/* a param default, a run_params value */
#define PL_MAX_STRING (16 * 1024)	/* any other string (descriptions, urls, labels, ...) */
#define PL_MAX_HEADER 8192		/* a hook header's value (what hookd sends) */
#define PL_MAX_NAME 128			/* names: jobs, pipelines, stages, tasks, params, label and header names */
#define PL_MAX_STAGES 1000		/* stages of a pipeline */
#define PL_MAX_STAGE_TASKS 1000	/* tasks of one stage */
#define PL_MAX_TASKS 2000		/* tasks of a pipeline, all stages together */

typedef struct DefCtx
{
	const char *kind;			/* "job" or "pipeline" */
	const char *name;			/* known name or NULL */
} DefCtx;

extern void def_error(DefCtx *ctx, const char *path, const char *fmt,...) pg_attribute_printf(3, 4) pg_attribute_noreturn();
extern char *def_path_key(const char *base, const char *key);
extern char *def_path_idx(const char *base, const char *key, int i);
extern void def_check_size(DefCtx *ctx, const char *path, const char *s, size_t len, size_t max,
						   const char *max_text);
extern const char *def_type_name(JsonbValue *v);
extern bool def_is_object(JsonbValue *v);
extern bool def_is_array(JsonbValue *v);
extern void def_check_keys(DefCtx *ctx, const char *path, JsonbContainer *obj,
						   const char *const *allowed);
extern char *def_get_string(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
							bool required, const char *dflt);
extern bool def_get_bool(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
						 bool dflt);
extern int	def_get_int(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
						int dflt, int maxval);
extern void def_emit_string_map(DefCtx *ctx, const char *path, JsonbContainer *obj, const char *key,
								StringInfo out, bool *first, bool names_are_params);
extern JsonbContainer *def_emit_array_start(DefCtx *ctx, const char *path, JsonbContainer *obj,
											const char *key, StringInfo out, bool *first);
extern void def_emit_string_array(DefCtx *ctx, const char *path, JsonbContainer *obj,
								  const char *key, StringInfo out, bool *first, bool stage_names);

/* defhooks.c */

/* ---- names and quoting (defcheck.c), also used by the API files ---- */
extern bool pl_valid_name(const char *s, bool allow_dot);
extern bool pl_valid_param_name(const char *s);
#define PL_CLIP_BYTES 64		/* user values quoted in messages: at most this many bytes */
extern char *pl_vformat(const char *fmt, va_list args) pg_attribute_printf(1, 0);
extern char *pl_clip(const char *s);	/* cut at a character boundary, "..." added */
extern char *pl_clip_n(const char *s, int max);

/* is some version of pipeline `name` defined? (a reference check; inside SPI) */
extern bool pl_pipeline_exists(const char *name);

#endif							/* DEFCHECK_H */
