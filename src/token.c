/*
 * token.c: update tokens.
 *
 * A token is 24 random bytes from pg_strong_random(), shown once as 48 hex
 * digits by claim_job_tasks().  Only its SHA-256 digest is stored; an update
 * hashes the presented token and compares digests in constant time, so
 * neither the table nor the timing of a refusal tells anything about a token.
 */
#include "postgres.h"

#include "common/cryptohash.h"

#include "pipeline.h"

char *
pl_token_new(void)
{
	uint8		raw[PL_TOKEN_BYTES];
	static const char hex[] = "0123456789abcdef";
	char	   *out = palloc(PL_TOKEN_BYTES * 2 + 1);

	if (!pg_strong_random(raw, sizeof(raw)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random update token")));
	for (int i = 0; i < PL_TOKEN_BYTES; i++)
	{
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[PL_TOKEN_BYTES * 2] = '\0';
	return out;
}

bytea *
pl_token_digest(const char *token)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	bytea	   *out = palloc(VARHDRSZ + PL_DIGEST_BYTES);

	SET_VARSIZE(out, VARHDRSZ + PL_DIGEST_BYTES);
	if (ctx == NULL ||
		pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) token, strlen(token)) < 0 ||
		pg_cryptohash_final(ctx, (uint8 *) VARDATA(out), PL_DIGEST_BYTES) < 0)
		elog(ERROR, "could not compute SHA-256 digest: %s",
			 ctx ? pg_cryptohash_error(ctx) : "out of memory");
	pg_cryptohash_free(ctx);
	return out;
}

/* Constant-time comparison of the presented token's digest with the stored one. */
bool
pl_token_matches(const char *token, bytea *digest)
{
	bytea	   *mine;
	const uint8 *a;
	const uint8 *b;
	uint8		diff = 0;

	if (token == NULL)
		return false;
	mine = pl_token_digest(token);
	if (digest == NULL || VARSIZE_ANY_EXHDR(digest) != PL_DIGEST_BYTES)
	{
		/* same work as a real comparison, then refuse */
		a = (const uint8 *) VARDATA(mine);
		for (int i = 0; i < PL_DIGEST_BYTES; i++)
			diff |= a[i] ^ a[i];
		pfree(mine);
		return false;
	}
	a = (const uint8 *) VARDATA(mine);
	b = (const uint8 *) VARDATA_ANY(digest);
	for (int i = 0; i < PL_DIGEST_BYTES; i++)
		diff |= a[i] ^ b[i];
	pfree(mine);
	return diff == 0;
}
