/*
 * hookd/hookd.h: "pipelinectl hookd" sends hook deliveries.
 *
 * One event loop around curl_multi_poll(), which also watches the database
 * socket (LISTEN pipeline_events) and the self-pipe of the signal handlers.
 * Each turn: complete finished sends with pipeline.complete_hook_delivery(),
 * claim due deliveries with pipeline.claim_hook_deliveries() while there is
 * room (on a NOTIFY, or every --poll-interval), build each body and start
 * its POST, let libcurl make progress.
 *
 * Bodies (render.c):
 *   webhook (and any URL not recognised as a robot):
 *       {"event": <the pipeline.event row as JSON, payload included>, "delivery_id": N}
 *   Feishu / Lark (open.feishu.cn, open.larksuite.com): an interactive card
 *   DingTalk (oapi.dingtalk.com): markdown message
 *   WeCom (qyapi.weixin.qq.com): markdown message
 * A target's "robot" key ("feishu", "dingtalk", "wecom", "generic") chooses
 * the format explicitly (a receiver on 127.0.0.1 can then test each format).
 *
 * Headers (deliver.c): Content-Type, X-Pipeline-Event: <event kind>.<new
 * stage>, X-Pipeline-Delivery: <id>, X-Pipeline-Signature: sha256=<hex
 * HMAC-SHA256 of the body with target.secret> when the target has a secret,
 * and the target's own headers.  Feishu and DingTalk robots with a secret are
 * also signed the way those services check (timestamp + sign).
 *
 * A result the database cannot take now (it is away) is kept and completed
 * after the reconnect (lib/retry.h).  SIGTERM/SIGINT: claim nothing more,
 * finish the sends in flight, record them, exit; a second signal abandons the
 * sends in flight (their lease runs out and another sender retries them).
 *
 * Locking: none on the client side; claim_hook_deliveries locks with SKIP
 * LOCKED and leases each delivery.
 */
#ifndef PCTL_HOOKD_H
#define PCTL_HOOKD_H

#include "../lib/pctl.h"

#include <curl/curl.h>

#define RESPONSE_MAX 4096
#define CONNECT_TIMEOUT_MS 5000L
#define TOTAL_TIMEOUT_MS 15000L
#define TEXT_FIELD_MAX 600			/* a message shown in a robot card */
#define COMPLETE_MAX_TRIES 3		/* non-transient errors recording a result */

typedef enum { ROBOT_NONE, ROBOT_FEISHU, ROBOT_DINGTALK, ROBOT_WECOM } robot_kind;

typedef enum { D_SENDING, D_COMPLETING, D_DONE } dstate;

typedef struct delivery
{
	struct delivery *next;
	int64_t id;
	char idstr[24];
	char *kind;					/* webhook, im_robot, mention */
	char *event_label;			/* X-Pipeline-Event */
	char *where;				/* scheme://host for the logs (no path: it may hold a token) */
	dstate state;

	CURL *easy;
	struct curl_slist *headers;
	char *url;
	strbuf body;
	strbuf resp;
	char errbuf[CURL_ERROR_SIZE];
	double started;

	robot_kind robot;
	bool success;
	long http_code;
	char *response;
	long cost_ms;
	retry_state retry;
} delivery;

typedef struct hookd
{
	char *name;
	int concurrency;
	bool exit_when_idle;
	double retry_for;			/* --exit-when-idle: give up after this long without the database */
	bool setup_checked;			/* the extension and the grants were checked */
	double poll_interval;
	int lease;					/* seconds a claimed delivery is ours */
	db_conn db;
	CURLM *multi;
	delivery *list;
	int sending;
	int handled_terms;
	bool stopping;
	double next_claim;
	double last_claim;
	unsigned long seen_notifications;
	bool idle_after_claim;
	char last_claim_error[256];
	double last_claim_error_at;
} hookd;

/* render.c */
robot_kind robot_from_url(const char *url);
robot_kind robot_from_name(const char *name);
const char *robot_name(robot_kind r);
/*
 * The body of a delivery.  event_json is the event row as JSON text (valid:
 * it comes from the server), event its parse.  secret may be NULL.  For a
 * signed DingTalk robot the URL gets timestamp and sign: *url_out is then a
 * new string (else NULL).
 */
void render_body(strbuf *body, robot_kind robot, const char *kind, const json_t *target,
				 const char *event_json, const json_t *event, const char *delivery_id,
				 const char *secret, const char *url, char **url_out);
/* whether a robot accepted the message: it answers 200 with an error code in JSON */
bool robot_accepted(robot_kind robot, const char *resp, size_t len);

/* deliver.c */
void claim_deliveries(hookd *h, double now);
void transfer_done(hookd *h, CURL *easy, CURLcode code);
void complete(hookd *h, delivery *d, double now);
bool anything_pending(hookd *h);
void delivery_free(delivery *d);

#endif
