/*
 * trigger.h: git triggers (SPEC §15): what trigger.c (define_trigger, the
 * signature checks), trigger_payload.c (reading a provider's payload) and
 * trigger_fire.c (fire_trigger, fire_signed_trigger) share.
 *
 * Locking: none here; see the two files.
 *
 * Layer: api (engine layers: README "Design notes")
 */
#ifndef PL_TRIGGER_H
#define PL_TRIGGER_H

#include "postgres.h"

#include "utils/jsonb.h"

/* limits (README "Triggers") */
#define PL_TRIGGER_MAX_SECRET 1024		/* bytes of a trigger's secret */
#define PL_TRIGGER_MIN_SECRET 8
#define PL_TRIGGER_MAX_REFS 1024		/* bytes of the refs regex */
#define PL_TRIGGER_MAX_EVENT (4 * 1024 * 1024)	/* an event payload (raw body or jsonb) */
#define PL_TRIGGER_MAX_DEPTH 64			/* nesting of an event payload */
#define PL_TRIGGER_MAX_REF 1024			/* bytes of GIT_REF */
#define PL_TRIGGER_MAX_FIELD 512		/* bytes of GIT_REPO, GIT_SHA, GIT_AUTHOR, the event header */

/* the providers, as spelled in definitions, URLs and fire_trigger's first argument */
extern bool pl_trigger_provider_known(const char *provider);
extern const char *const pl_trigger_providers_text;	/* "github, gitlab, gitea or generic" */

/*
 * Does a webhook's signature header, as the provider sends it, prove that the
 * sender knows secret?  github: "sha256=<hex HMAC-SHA256 of the body>";
 * gitea: "<hex HMAC-SHA256>"; generic: "sha256=<hex>"; gitlab: the secret
 * itself (X-Gitlab-Token).  Constant time in the secret and the signature.
 */
extern bool pl_trigger_signature_ok(const char *provider, const char *secret,
									const char *body, size_t body_len, const char *signature);

/* lower-case hex SHA-256 of data (palloc'd) */
extern char *pl_trigger_sha256_hex(const char *data, size_t len);

/* what arrived, as read from the payload */
typedef struct PlGitEvent
{
	const char *provider;
	char	   *header;			/* the provider's event header, or NULL */
	char	   *type;			/* push, tag, merge_request, another word, or NULL */
	char	   *repo;
	char	   *ref;
	char	   *sha;
	char	   *author;
	char	   *reason;			/* why no trigger can start, or NULL */
	char	   *digest;			/* SHA-256 of the payload, hex */
	int64		bytes;
} PlGitEvent;

/* trigger_payload.c */
extern bool pl_trigger_plausible(const char *s, size_t max);	/* short enough, no control chars */
extern void pl_trigger_read_event(PlGitEvent *ev, JsonbContainer *root);
extern Jsonb *pl_trigger_parse_body(const char *provider, bytea *body);	/* 22023 if unusable */

#endif							/* PL_TRIGGER_H */
