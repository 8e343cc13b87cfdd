/*
 * sign.c: HMAC-SHA256 (OpenSSL libcrypto), hex and base64, and the "sign"
 * subcommand that lets a hook receiver check a signature by hand:
 *
 *   pipelinectl sign SECRET < body.json     ->  sha256=<hex>
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
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

int
cmd_sign(int argc, char **argv)
{
	strbuf body;
	char buf[8192];
	char hex[65];

	if (argc != 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
	{
		fprintf(argc == 2 ? stdout : stderr,
				"Usage: pipelinectl sign SECRET < BODY\n"
				"Prints the X-Pipeline-Signature value (sha256=<hex HMAC-SHA256>) of the\n"
				"body read from standard input, as hookd computes it.\n");
		return argc == 2 ? 0 : EXIT_USAGE;
	}
	sb_init(&body);
	for (;;)
	{
		ssize_t n = read(0, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
		{
			fprintf(stderr, "pipelinectl sign: cannot read standard input: %s\n", strerror(errno));
			sb_free(&body);
			return 1;
		}
		if (n == 0)
			break;
		sb_append(&body, buf, (size_t) n);
	}
	hmac_sha256_hex(argv[1], strlen(argv[1]), sb_str(&body), body.len, hex);
	printf("sha256=%s\n", hex);
	sb_free(&body);
	return 0;
}
