/*
 * cmd_selftest.c: "pipelinectl selftest" checks the parts that need no
 * database: the JSON helpers and writer, UTF-8 repair, --labels,
 * PIPELINE_OUTPUT parsing, HMAC-SHA256 (RFC 4231 vectors), robot detection
 * and the option parser.  Prints one line per failure and "N passed, N failed".
 *
 * Locking: none.
 */
#define _GNU_SOURCE
#include "commands.h"
#include "hookd/hookd.h"
#include "runner/runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond, ...) \
	do { \
		if (cond) \
			passed++; \
		else \
		{ \
			failed++; \
			printf("FAIL %s:%d: ", __FILE__, __LINE__); \
			printf(__VA_ARGS__); \
			printf("\n"); \
		} \
	} while (0)

static void
check_scalar(const char *text, const char *expect)
{
	char err[128];
	json_t *v = pj_parse(text, strlen(text), err, sizeof(err));
	strbuf sb;
	bool ok;

	sb_init(&sb);
	ok = v && pj_scalar_text(v, &sb);
	CHECK(expect ? (ok && strcmp(sb_str(&sb), expect) == 0) : (v && !ok),
		  "scalar text of %s: got %s, want %s", text, ok ? sb_str(&sb) : "(none)",
		  expect ? expect : "(none)");
	sb_free(&sb);
	json_decref(v);
}

static void
test_json(void)
{
	char err[128];
	json_t *v;

	check_scalar("\"shell\"", "shell");
	check_scalar("600", "600");
	check_scalar("-2.5", "-2.5");
	check_scalar("0.1", "0.1");
	check_scalar("true", "true");
	check_scalar("null", NULL);
	check_scalar("[1]", NULL);
	check_scalar("\"\\u00e9 \\ud83d\\ude00\"", "\xc3\xa9 \xf0\x9f\x98\x80");
	/* an integer beyond 64 bits is read (as a real), not refused */
	{
		const char *huge = "{\"n\": 123456789012345678901234567890}";

		v = pj_parse(huge, strlen(huge), err, sizeof(err));
	}
	CHECK(v != NULL, "huge integer: %s", err);
	json_decref(v);
	v = pj_parse("{\"a\":", 5, err, sizeof(err));
	CHECK(v == NULL && err[0], "truncated JSON is refused");
	json_decref(v);
	v = pj_parse("", 0, err, sizeof(err));
	CHECK(v == NULL, "empty text is refused");
	json_decref(v);

	{
		const char *obj = "{\"runner\":\"shell\",\"command\":\"make\",\"timeout\":600,\"t2\":\"30\","
			"\"a\":1,\"a\":2,\"x\":null,\"b\":true}";

		v = pj_parse(obj, strlen(obj), err, sizeof(err));
	}
	CHECK(v != NULL, "object parse: %s", err);
	if (v)
	{
		double d = 0;
		bool b = false;
		strbuf sb;

		CHECK(pj_get_str(v, "runner") && strcmp(pj_get_str(v, "runner"), "shell") == 0, "runner");
		CHECK(pj_get_number(v, "timeout", &d) && d == 600, "timeout");
		CHECK(pj_get_number(v, "t2", &d) && d == 30, "numeric string");
		CHECK(pj_get_number(v, "a", &d) && d == 2, "last duplicate wins");
		CHECK(!pj_get_number(v, "command", &d), "string is not a number");
		CHECK(pj_get_str(v, "missing") == NULL, "missing key");
		CHECK(json_is_null(json_object_get(v, "x")), "null member");
		CHECK(pj_get_bool(v, "b", &b) && b, "bool member");
		sb_init(&sb);
		pj_write(&sb, json_object_get(v, "a"));
		CHECK(strcmp(sb_str(&sb), "2") == 0, "write: %s", sb_str(&sb));
		sb_free(&sb);
		json_decref(v);
	}
	CHECK(pj_get_str(NULL, "a") == NULL, "pj_get_str(NULL)");

	/* writer escapes and repairs */
	{
		strbuf sb;

		sb_init(&sb);
		json_write_string(&sb, "a\"b\\c\n\x01\x7f\xff", 9);
		CHECK(strcmp(sb_str(&sb), "\"a\\\"b\\\\c\\n\\u0001\\u007f\xef\xbf\xbd\"") == 0, "escape: %s",
			  sb_str(&sb));
		sb_reset(&sb);
		json_write_cstr(&sb, NULL);
		CHECK(strcmp(sb_str(&sb), "null") == 0, "null cstr");
		sb_free(&sb);
	}
}

static void
test_utf8(void)
{
	strbuf sb;
	size_t used;

	sb_init(&sb);
	used = utf8_repair(&sb, "ok \xc3\xa9", 5, false);
	CHECK(used == 5 && strcmp(sb_str(&sb), "ok \xc3\xa9") == 0, "valid text");
	sb_reset(&sb);
	used = utf8_repair(&sb, "ab\xe4\xb8", 4, false);
	CHECK(used == 2 && strcmp(sb_str(&sb), "ab") == 0, "incomplete tail kept: used %zu", used);
	sb_reset(&sb);
	used = utf8_repair(&sb, "ab\xe4\xb8", 4, true);
	CHECK(used == 4 && strcmp(sb_str(&sb), "ab\xef\xbf\xbd\xef\xbf\xbd") == 0, "incomplete tail final");
	sb_reset(&sb);
	utf8_repair(&sb, "a\0b", 3, true);
	CHECK(sb.len == 5 && memcmp(sb.data, "a\xef\xbf\xbd" "b", 5) == 0, "NUL replaced");
	sb_reset(&sb);
	utf8_repair(&sb, "\xc0\xaf\xed\xa0\x80", 5, true);	/* overlong '/', surrogate */
	CHECK(strstr(sb_str(&sb), "/") == NULL && sb.len == 15, "overlong and surrogate: %zu", sb.len);
	sb_free(&sb);

	/* an empty repair into a fresh buffer is "" (issue 9.1: it was unterminated) */
	sb_init(&sb);
	utf8_repair(&sb, "", 0, true);
	CHECK(sb.data != NULL && sb.len == 0 && sb.data[0] == '\0', "empty repair is terminated");
	sb_free(&sb);

	CHECK(utf8_cut("ab\xe4\xb8\xad", 5) == 5, "complete char kept");
	CHECK(utf8_cut("ab\xe4\xb8\xad", 4) == 2, "cut before partial char");
	CHECK(utf8_cut("ab\xe4", 3) == 2, "cut lead byte");
	CHECK(utf8_cut("abc", 3) == 3, "ascii");
	CHECK(utf8_next_boundary("\xb8\xad" "a", 3, 0) == 2, "boundary");
}

static void
test_labels_and_output(void)
{
	strbuf sb;
	char err[128];

	sb_init(&sb);
	CHECK(labels_to_json("", &sb, err, sizeof(err)) && strcmp(sb_str(&sb), "{}") == 0, "empty labels");
	CHECK(labels_to_json("arch=amd64, os = linux,,", &sb, err, sizeof(err)) &&
		  strcmp(sb_str(&sb), "{\"arch\":\"amd64\",\"os\":\"linux\"}") == 0, "labels: %s", sb_str(&sb));
	CHECK(labels_to_json("gpu=", &sb, err, sizeof(err)) && strcmp(sb_str(&sb), "{\"gpu\":\"\"}") == 0,
		  "empty value");
	CHECK(labels_to_json("q=\"x\"", &sb, err, sizeof(err)) && strcmp(sb_str(&sb), "{\"q\":\"\\\"x\\\"\"}") == 0,
		  "quoted value: %s", sb_str(&sb));
	CHECK(!labels_to_json("arch", &sb, err, sizeof(err)), "label without =");
	CHECK(!labels_to_json("=x", &sb, err, sizeof(err)), "label without key");

	{
		const char *text = "# comment\n\nA=1\r\n  B = 2\nbad line\n1X=3\nC=with=equals\nA=again\n"
			"D=\nE_2=\xff\n=novalue\nlast=no newline";
		int n = parse_output_envs(text, strlen(text), &sb);

		CHECK(n == 5 && strcmp(sb_str(&sb),
							   "{\"A\":\"again\",\"C\":\"with=equals\",\"D\":\"\",\"E_2\":\"\xef\xbf\xbd\","
							   "\"last\":\"no newline\"}") == 0,
			  "output envs (%d): %s", n, sb_str(&sb));
		CHECK(runtime_env_reserved("PATH") && runtime_env_reserved("LD_PRELOAD") &&
			  runtime_env_reserved("PGPASSWORD") && runtime_env_reserved("PIPELINE_OUTPUT") &&
			  runtime_env_reserved("JOB_TASK_UPDATE_TOKEN") && runtime_env_reserved("BASH_FUNC_x%%") &&
			  runtime_env_reserved("NODE_OPTIONS"), "reserved runtime env names");
		CHECK(!runtime_env_reserved("VERSION") && !runtime_env_reserved("path") &&
			  !runtime_env_reserved("PATHS") && !runtime_env_reserved("_LD_X"), "allowed runtime env names");
		n = parse_output_envs("", 0, &sb);
		CHECK(n == 0 && strcmp(sb_str(&sb), "{}") == 0, "empty output file");
	}
	sb_free(&sb);
}

static void
test_mask(void)
{
	secrets sc;
	strbuf out;
	char *m;

	secrets_init(&sc);
	sb_init(&out);
	secrets_add(&sc, "hunter2");
	secrets_add(&sc, "hunter2-long");
	secrets_add(&sc, "");
	secrets_mask_stream(&sc, "pw=hunt", 7, false, &out);
	CHECK(strcmp(sb_str(&out), "pw=") == 0, "a possible secret start is held back: %s", sb_str(&out));
	secrets_mask_stream(&sc, "er2 and hunter2-long!\nhun", 25, false, &out);
	CHECK(strcmp(sb_str(&out), "pw=****** and ******!\n") == 0, "split and longest match: %s", sb_str(&out));
	secrets_mask_stream(&sc, "", 0, true, &out);
	CHECK(strcmp(sb_str(&out), "pw=****** and ******!\nhun") == 0, "the end releases what was held: %s",
		  sb_str(&out));
	m = secrets_mask_string(&sc, "hunter2hunter2 hunter");
	CHECK(strcmp(m, "************ hunter") == 0, "mask a string: %s", m);
	free(m);
	sb_free(&out);
	secrets_free(&sc);
}

static void
test_hmac(void)
{
	char hex[65], b64[45];

	/* RFC 4231 test case 2 */
	hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28, hex);
	CHECK(strcmp(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843") == 0,
		  "rfc4231 #2: %s", hex);
	/* RFC 4231 test case 1: key = 20 x 0x0b, "Hi There" */
	hmac_sha256_hex("\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b\x0b", 20,
					"Hi There", 8, hex);
	CHECK(strcmp(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7") == 0,
		  "rfc4231 #1: %s", hex);
	hmac_sha256_base64("Jefe", 4, "what do ya want for nothing?", 28, b64);
	CHECK(strcmp(b64, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=") == 0, "base64: %s", b64);
	hmac_sha256_hex("", 0, "", 0, hex);
	CHECK(strcmp(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad") == 0,
		  "empty key and message: %s", hex);
}

static void
test_robots(void)
{
	CHECK(robot_from_url("https://open.feishu.cn/open-apis/bot/v2/hook/x") == ROBOT_FEISHU, "feishu");
	CHECK(robot_from_url("https://OPEN.LARKSUITE.COM/open-apis/bot/v2/hook/x") == ROBOT_FEISHU, "lark");
	CHECK(robot_from_url("https://oapi.dingtalk.com/robot/send?access_token=1") == ROBOT_DINGTALK, "dingtalk");
	CHECK(robot_from_url("https://qyapi.weixin.qq.com:443/cgi-bin/webhook/send?key=1") == ROBOT_WECOM, "wecom");
	CHECK(robot_from_url("https://evil.example/open.feishu.cn") == ROBOT_NONE, "path is not host");
	CHECK(robot_from_url("https://open.feishu.cn.evil.example/") == ROBOT_NONE, "suffix is not host");
	CHECK(robot_from_url("https://user@oapi.dingtalk.com/") == ROBOT_DINGTALK, "user info");
	CHECK(robot_from_url("not a url") == ROBOT_NONE, "not a url");
	CHECK(robot_from_url(NULL) == ROBOT_NONE, "NULL url");
	CHECK(robot_from_name("DingTalk") == ROBOT_DINGTALK && robot_from_name("generic") == ROBOT_NONE,
		  "robot names");
}

static void
test_misc(void)
{
	int64_t id;
	int n;
	double d;
	char buf[32];

	CHECK(parse_positive_id("42", &id) && id == 42, "id");
	CHECK(!parse_positive_id("0", &id) && !parse_positive_id("-1", &id) && !parse_positive_id("4x", &id) &&
		  !parse_positive_id("", &id) && !parse_positive_id(" 1", &id) &&
		  !parse_positive_id("99999999999999999999", &id), "bad ids");
	CHECK(parse_int_range("8", 1, 10, &n) && n == 8 && !parse_int_range("11", 1, 10, &n), "int range");
	CHECK(parse_seconds("0.5", 0.05, 10, &d) && d == 0.5 && !parse_seconds("nan", 0, 10, &d) &&
		  !parse_seconds("1s", 0, 10, &d), "seconds");
	fmt_duration(buf, sizeof(buf), 65);
	CHECK(strcmp(buf, "1m05s") == 0, "duration %s", buf);
	fmt_duration(buf, sizeof(buf), 3 * 3600 + 120);
	CHECK(strcmp(buf, "3h02m") == 0, "duration %s", buf);
	fmt_duration(buf, sizeof(buf), -5);
	CHECK(strcmp(buf, "0s") == 0, "negative duration %s", buf);
	CHECK(stage_is_complete("skipped") && !stage_is_complete("canceling") && !stage_is_complete(NULL),
		  "complete stages");
	{
		strbuf sb;

		sb_init(&sb);
		sb_printf(&sb, "%d-%s", 7, "x");
		sb_consume(&sb, 2);
		CHECK(strcmp(sb_str(&sb), "x") == 0, "strbuf");
		sb_free(&sb);
	}
}

int
cmd_selftest(int argc, char **argv, const char *conninfo)
{
	(void) conninfo;
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
	{
		printf("Usage: pipelinectl selftest\n\n"
			   "Checks the built-in JSON parser, UTF-8 repair, HMAC signatures and robot\n"
			   "message formats; needs no database.  Prints \"N passed, M failed\".\n");
		return 0;
	}
	test_json();
	test_utf8();
	test_labels_and_output();
	test_mask();
	test_hmac();
	test_robots();
	test_misc();
	printf("selftest: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
