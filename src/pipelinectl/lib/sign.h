/*
 * lib/sign.h: HMAC-SHA256 (OpenSSL libcrypto) as hex or base64: hook
 * signatures (X-Pipeline-Signature) and robot signing (Feishu, DingTalk).
 *
 * Locking: none.
 */
#ifndef PCTL_SIGN_H
#define PCTL_SIGN_H

#include "base.h"

/* HMAC-SHA256(key, msg) as lowercase hex in out (65 bytes) */
void hmac_sha256_hex(const char *key, size_t keylen, const char *msg, size_t msglen,
					 char out[65]);
/* HMAC-SHA256(key, msg) in base64 (45 bytes) */
void hmac_sha256_base64(const char *key, size_t keylen, const char *msg, size_t msglen,
						char out[45]);

#endif
