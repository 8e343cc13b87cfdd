/*
 * lib/sign.c: see sign.h.
 */
#define _GNU_SOURCE
#include "sign.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <openssl/hmac.h>

static unsigned
hmac_raw(const char *key, size_t keylen, const char *msg, size_t msglen,
		 unsigned char out[EVP_MAX_MD_SIZE])
{
	unsigned outlen = 0;
	static const unsigned char empty[1] = {0};

	/* HMAC() wants a non-NULL key pointer even for an empty key */
	if (!HMAC(EVP_sha256(), keylen ? (const void *) key : (const void *) empty, (int) keylen,
			  msglen ? (const unsigned char *) msg : empty, msglen, out, &outlen))
	{
		memset(out, 0, 32);
		outlen = 32;
	}
	return outlen;
}

void
hmac_sha256_hex(const char *key, size_t keylen, const char *msg, size_t msglen, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned n = hmac_raw(key, keylen, msg, msglen, mac);

	if (n > 32)
		n = 32;
	for (unsigned i = 0; i < n; i++)
	{
		out[2 * i] = hex[mac[i] >> 4];
		out[2 * i + 1] = hex[mac[i] & 15];
	}
	out[2 * n] = '\0';
}

void
hmac_sha256_base64(const char *key, size_t keylen, const char *msg, size_t msglen, char out[45])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned n = hmac_raw(key, keylen, msg, msglen, mac);

	if (n > 32)
		n = 32;
	/* 32 bytes -> 44 characters + NUL */
	EVP_EncodeBlock((unsigned char *) out, mac, (int) n);
	out[44] = '\0';
}
