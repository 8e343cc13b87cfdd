/*
 * cmd_sign.c: "pipelinectl sign SECRET < body.json" prints sha256=<hex>, the
 * X-Pipeline-Signature hookd would send with that body, so that a hook
 * receiver can check a signature by hand.
 *
 * Locking: none.
 */
#define _GNU_SOURCE
#include "commands.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
cmd_sign(int argc, char **argv, const char *conninfo)
{
	strbuf body;
	char buf[8192];
	char hex[65];

	(void) conninfo;
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
