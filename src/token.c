/*
 * token.c: update tokens.
 *
 * Layer: storage
 *
 * A token is 48 hex digits, shown once by claim_job_tasks(): the id of the
 * run it belongs to (16 digits, so a report can take the run's lock before
 * touching any row) and 16 random bytes from pg_strong_random() (32 digits).  Only its SHA-256 digest is stored; an update
 * hashes the presented token and compares digests in constant time, so
 * neither the table nor the timing of a refusal tells anything about a token.
 */
#include "postgres.h"

#include "common/cryptohash.h"
#include "fmgr.h"

#include "token.h"

char *
pl_token_new(int64 pipeline_task_id)
{
	uint8		raw[PL_TOKEN_RANDOM_BYTES];
	static const char hex[] = "0123456789abcdef";
	char	   *out = palloc(PL_TOKEN_LEN + 1);
	uint64		run = (uint64) pipeline_task_id;

	if (!pg_strong_random(raw, sizeof(raw)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random update token")));
	for (int i = 0; i < 16; i++)
		out[i] = hex[(run >> (60 - 4 * i)) & 15];
	for (int i = 0; i < PL_TOKEN_RANDOM_BYTES; i++)
	{
		out[16 + 2 * i] = hex[raw[i] >> 4];
		out[16 + 2 * i + 1] = hex[raw[i] & 15];
	}
	out[PL_TOKEN_LEN] = '\0';
	return out;
}

/*
 * The run a token was issued for (its first 16 hex digits), or 0 if the
 * string is not shaped like a token.  Only a hint for taking the run lock
 * early: the digest check decides whether the token is genuine.
 */
int64
pl_token_run(const char *token)
{
	uint64		run = 0;

	if (token == NULL || strlen(token) != PL_TOKEN_LEN)
		return 0;
	for (int i = 0; i < 16; i++)
	{
		char		c = token[i];
		int			d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return 0;
		run = (run << 4) | (uint64) d;
	}
	return (int64) run;
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

/*
 * Constant-time comparison of two SHA-256 digests; false if either is
 * missing or not a digest.
 */
static bool
digests_equal(bytea *a, bytea *b)
{
	const uint8 *pa;
	const uint8 *pb;
	uint8		diff = 0;

	if (a == NULL || b == NULL ||
		VARSIZE_ANY_EXHDR(a) != PL_DIGEST_BYTES || VARSIZE_ANY_EXHDR(b) != PL_DIGEST_BYTES)
		return false;
	pa = (const uint8 *) VARDATA_ANY(a);
	pb = (const uint8 *) VARDATA_ANY(b);
	for (int i = 0; i < PL_DIGEST_BYTES; i++)
		diff |= pa[i] ^ pb[i];
	return diff == 0;
}

/* Does the presented token hash to the stored digest? */
bool
pl_token_matches(const char *token, bytea *digest)
{
	bytea	   *mine;
	bool		ok;

	if (token == NULL)
		return false;
	mine = pl_token_digest(token);
	ok = digests_equal(mine, digest);
	pfree(mine);
	return ok;
}

/*
 * digest_ok(stored bytea, presented bytea) RETURNS boolean: constant-time
 * comparison of two SHA-256 digests, false when either is NULL.  Used inside
 * the status update statement.
 */
PG_FUNCTION_INFO_V1(pl_digest_ok);
Datum
pl_digest_ok(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(digests_equal(PG_GETARG_BYTEA_PP(0), PG_GETARG_BYTEA_PP(1)));
}
