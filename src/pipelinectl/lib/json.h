/*
 * lib/json.h: JSON through jansson, and the few helpers pipelinectl needs
 * on top of it:
 *   - pj_parse() reads any JSON text the server sends (integers beyond
 *     64 bits are read as reals instead of failing the whole document);
 *   - lookups that return NULL / false for absent members or other types;
 *     like jsonb, the last of repeated keys wins (jansson's default);
 *   - a string writer that repairs invalid UTF-8 (command output, file
 *     contents) so that what we send is always valid JSON text.
 *
 * Locking: none.
 */
#ifndef PCTL_JSON_H
#define PCTL_JSON_H

#include "base.h"

#include <jansson.h>

/* parse a complete JSON text (any value); NULL with a message in err */
json_t *pj_parse(const char *text, size_t len, char *err, size_t errlen);

/* lookups: NULL / false when absent or of another type */
const char *pj_get_str(const json_t *obj, const char *key);
/* a number, or a string holding one ("600": hand-written documents do that) */
bool pj_get_number(const json_t *obj, const char *key, double *out);
bool pj_get_bool(const json_t *obj, const char *key, bool *out);

/* a scalar as text for the environment or a message: strings as they are,
 * numbers, true / false; false for null, arrays and objects */
bool pj_scalar_text(const json_t *v, strbuf *out);
/* the value as compact JSON text (appended) */
void pj_write(strbuf *sb, const json_t *v);

/* a JSON string literal of s[0..len) (quotes, escapes, UTF-8 repaired) */
void json_write_string(strbuf *sb, const char *s, size_t len);
void json_write_cstr(strbuf *sb, const char *s);	/* NULL -> null */

#endif
