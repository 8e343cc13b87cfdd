/*
 * hookd/deliver.c: one delivery from claim to record: read its event, build
 * its body and headers, start the POST on the curl multi handle, judge the
 * answer, and record the result with pipeline.complete_hook_delivery()
 * under the one retry policy (lib/retry.h).  Logs name a delivery's origin
 * (scheme://host), never its path or query: they may hold a token.
 *
 * Locking: none on the client side; the server leases each claimed delivery.
 */
#define _GNU_SOURCE
#include "hookd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------- the event to send */

/*
 * The event of a delivery as JSON text (the pipeline.event row with its
 * payload), or NULL with err filled.  This is the one place that knows where
 * a delivery's content comes from:
 *   1. a column "event" (jsonb) of the claimed row, if the server returns it;
 *   2. else the row of pipeline.event, read by event_id;
 * and a column "body" (jsonb), if present and not null, replaces the payload
 * (the server may render a snapshot meant for hooks there).
 */
static char *
delivery_event_json(hookd *h, PGresult *res, int row, db_error *err)
{
	const char *event = db_value(res, row, db_col(res, "event"));
	const char *event_id = db_value(res, row, db_col(res, "event_id"));
	char *text = NULL;

	if (event)
		text = xstrdup(event);
	else if (event_id)
	{
		const char *params[1] = {event_id};
		PGresult *r = db_query(&h->db, "SELECT to_jsonb(e) FROM pipeline.event e WHERE e.id = $1::bigint",
							   1, params, err);

		if (!r)
			return NULL;
		if (PQntuples(r) == 0 || !db_value(r, 0, 0))
		{
			snprintf(err->sqlstate, sizeof(err->sqlstate), "P0002");
			snprintf(err->message, sizeof(err->message), "event %s not found", event_id);
			err->conn_lost = false;
			PQclear(r);
			return NULL;
		}
		text = xstrdup(db_value(r, 0, 0));
		PQclear(r);
	}
	else
	{
		snprintf(err->sqlstate, sizeof(err->sqlstate), "P0002");
		snprintf(err->message, sizeof(err->message), "delivery has no event");
		err->conn_lost = false;
		return NULL;
	}

	return text;
}

/* ---------------------------------------------------------------- sending */

static size_t
on_response(char *data, size_t size, size_t nmemb, void *arg)
{
	delivery *d = arg;
	size_t n = size * nmemb;

	if (d->resp.len < RESPONSE_MAX)
		sb_append(&d->resp, data, n > RESPONSE_MAX - d->resp.len ? RESPONSE_MAX - d->resp.len : n);
	return n;					/* the rest is read and dropped */
}

void
delivery_free(delivery *d)
{
	free(d->kind);
	free(d->event_label);
	free(d->where);
	if (d->easy)
		curl_easy_cleanup(d->easy);
	curl_slist_free_all(d->headers);
	free(d->url);
	sb_free(&d->body);
	sb_free(&d->resp);
	free(d->response);
	free(d);
}

static bool
header_name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c <= 32 || c >= 127 || c == ':')
			return false;
	}
	return true;
}

static bool
header_value_ok(const char *s)
{
	for (; *s; s++)
		if (*s == '\r' || *s == '\n')
			return false;
	return true;
}

static bool
reserved_header(const char *name)
{
	return strncasecmp(name, "X-Pipeline-", 11) == 0 || strcasecmp(name, "Content-Length") == 0 ||
		strcasecmp(name, "Host") == 0 || strcasecmp(name, "Transfer-Encoding") == 0;
}

static struct curl_slist *
add_header(struct curl_slist *list, const char *name, const char *value)
{
	char *line = *value ? xasprintf("%s: %s", name, value) : xasprintf("%s:", name);
	struct curl_slist *n = curl_slist_append(list, line);

	free(line);
	if (!n)
	{
		log_error("out of memory building headers");
		return list;
	}
	return n;
}

/* one header of the target, unless hookd sets it itself */
static struct curl_slist *
add_one_header(delivery *d, struct curl_slist *list, const char *name, const char *v,
			   bool *has_ct, bool *has_ua)
{
	if (reserved_header(name))
		return list;
	if (strcasecmp(name, "Content-Type") == 0)
		*has_ct = true;
	if (strcasecmp(name, "User-Agent") == 0)
		*has_ua = true;
	return add_header(list, name, v);
}

/* the target's own headers: {"Name": "value"} or ["Name: value", ...] */
static struct curl_slist *
add_target_headers(delivery *d, struct curl_slist *list, const json_t *headers,
				   bool *has_ct, bool *has_ua)
{
	if (json_is_object(headers))
	{
		const char *key;
		json_t *value;

		json_object_foreach((json_t *) headers, key, value)
		{
			strbuf v;

			sb_init(&v);
			if (!pj_scalar_text(value, &v) || strlen(sb_str(&v)) != v.len || !header_name_ok(key) ||
				!header_value_ok(sb_str(&v)) || v.len > 8192)
				log_warn("delivery %s: header \"%.60s\" skipped (bad name or value)", d->idstr, key);
			else
				list = add_one_header(d, list, key, sb_str(&v), has_ct, has_ua);
			sb_free(&v);
		}
	}
	else if (json_is_array(headers))
	{
		size_t i;
		json_t *it;

		json_array_foreach((json_t *) headers, i, it)
		{
			const char *line = json_is_string(it) ? json_string_value(it) : NULL;
			const char *colon = line ? strchr(line, ':') : NULL;
			char *name;

			if (!colon || strlen(line) != json_string_length(it) || !header_value_ok(line) ||
				strlen(line) > 8192)
				continue;
			name = xstrndup(line, (size_t) (colon - line));
			if (header_name_ok(name))
			{
				const char *v = colon + 1;

				while (*v == ' ')
					v++;
				list = add_one_header(d, list, name, v, has_ct, has_ua);
			}
			free(name);
		}
	}
	return list;
}

static char *
url_origin(const char *url)
{
	const char *p = strstr(url, "://");
	size_t n;

	if (!p)
		return xstrdup("?");
	n = (size_t) (p + 3 - url) + strcspn(p + 3, "/?#");
	/* drop user info */
	char *o = xstrndup(url, n);
	char *at = strrchr(o, '@');

	if (at)
	{
		char *r = xasprintf("%.*s%s", (int) (p + 3 - url), url, at + 1);

		free(o);
		return r;
	}
	return o;
}

static void
finish_now(hookd *h, delivery *d, bool success, long http_code, const char *response)
{
	d->success = success;
	d->http_code = http_code;
	free(d->response);
	d->response = xstrdup(response ? response : "");
	d->cost_ms = (long) ((mono_now() - d->started) * 1000.0 + 0.5);
	d->state = D_COMPLETING;
	retry_reset(&d->retry);
	(void) h;
}

/* builds and starts one delivery from a claimed row */
static void
start_delivery(hookd *h, PGresult *res, int row)
{
	const char *id = db_value(res, row, db_col(res, "id"));
	const char *kind = db_value(res, row, db_col(res, "kind"));
	const char *target_text = db_value(res, row, db_col(res, "target"));
	json_t *target = NULL, *event = NULL;
	char *event_json = NULL;
	const char *url, *secret, *robot_opt;
	const char *ekind, *estage;
	char *signed_url = NULL;
	bool has_ct = false, has_ua = false;
	struct curl_slist *hl = NULL;
	db_error err;
	delivery *d;
	int64_t idv;
	char hex[65];

	if (!id || !parse_positive_id(id, &idv))
	{
		log_error("claimed a delivery without a valid id; ignored");
		return;
	}
	d = xcalloc(1, sizeof(delivery));
	d->id = idv;
	snprintf(d->idstr, sizeof(d->idstr), "%lld", (long long) idv);
	d->kind = xstrdup(kind ? kind : "webhook");
	d->started = mono_now();
	retry_init(&d->retry, COMPLETE_MAX_TRIES);
	sb_init(&d->body);
	sb_init(&d->resp);
	d->next = h->list;
	h->list = d;

	target = target_text ? pj_parse(target_text, strlen(target_text), NULL, 0) : NULL;
	if (!json_is_object(target))
	{
		log_warn("delivery %s: target is not a JSON object", d->idstr);
		finish_now(h, d, false, 0, "invalid target");
		goto out;
	}
	url = pj_get_str(target, "url");
	secret = pj_get_str(target, "secret");
	robot_opt = pj_get_str(target, "robot");

	if (strcmp(d->kind, "mention") == 0 && (!url || !*url))
	{
		log_info("delivery %s (mention of %s): no transport configured; marked done", d->idstr,
				 pj_get_str(target, "user") ? pj_get_str(target, "user") : "?");
		finish_now(h, d, true, 0, "no transport");
		goto out;
	}
	if (!url || !(strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0))
	{
		log_warn("delivery %s: target has no http(s) url", d->idstr);
		finish_now(h, d, false, 0, "target has no http or https url");
		goto out;
	}
	d->where = url_origin(url);

	event_json = delivery_event_json(h, res, row, &err);
	if (!event_json)
	{
		if (db_error_transient(&err))
		{
			/* cannot build it now: leave it; the lease runs out and it is claimed again */
			log_warn("delivery %s: cannot read its event (%s); left for a later claim", d->idstr, err.message);
			d->state = D_DONE;
			goto out;
		}
		log_warn("delivery %s: %s", d->idstr, err.message);
		finish_now(h, d, false, 0, err.message);
		goto out;
	}
	event = pj_parse(event_json, strlen(event_json), NULL, 0);
	if (!json_is_object(event))
	{
		log_warn("delivery %s: its event is not a JSON object", d->idstr);
		finish_now(h, d, false, 0, "invalid event");
		goto out;
	}
	ekind = pj_get_str(event, "kind");
	estage = pj_get_str(event, "new_stage");
	d->event_label = xasprintf("%s.%s", ekind ? ekind : "event", estage ? estage : "unknown");

	/* the format */
	if (robot_opt && *robot_opt)
		d->robot = robot_from_name(robot_opt);	/* "generic" or unknown -> generic JSON */
	else if (strcmp(d->kind, "webhook") != 0)
		d->robot = robot_from_url(url);
	else
		d->robot = ROBOT_NONE;

	render_body(&d->body, d->robot, d->kind, target, event_json, event, d->idstr, secret, url, &signed_url);
	d->url = signed_url ? signed_url : xstrdup(url);

	/* headers */
	hl = add_target_headers(d, hl, json_object_get(target, "headers"), &has_ct, &has_ua);
	if (!has_ct)
		hl = add_header(hl, "Content-Type", "application/json; charset=utf-8");
	if (!has_ua)
		hl = add_header(hl, "User-Agent", PCTL_NAME "/" PCTL_VERSION);
	hl = add_header(hl, "X-Pipeline-Event", d->event_label);
	hl = add_header(hl, "X-Pipeline-Delivery", d->idstr);
	if (secret && *secret)
	{
		char *v;

		hmac_sha256_hex(secret, strlen(secret), sb_str(&d->body), d->body.len, hex);
		v = xasprintf("sha256=%s", hex);
		hl = add_header(hl, "X-Pipeline-Signature", v);
		free(v);
	}
	hl = add_header(hl, "Expect", "");	/* "Expect:" - no 100-continue round trip */
	d->headers = hl;

	d->easy = curl_easy_init();
	if (!d->easy)
	{
		finish_now(h, d, false, 0, "cannot create an HTTP handle");
		goto out;
	}
	curl_easy_setopt(d->easy, CURLOPT_URL, d->url);
	curl_easy_setopt(d->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(d->easy, CURLOPT_POSTFIELDS, sb_str(&d->body));
	curl_easy_setopt(d->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) d->body.len);
	curl_easy_setopt(d->easy, CURLOPT_HTTPHEADER, d->headers);
	curl_easy_setopt(d->easy, CURLOPT_WRITEFUNCTION, on_response);
	curl_easy_setopt(d->easy, CURLOPT_WRITEDATA, d);
	curl_easy_setopt(d->easy, CURLOPT_ERRORBUFFER, d->errbuf);
	curl_easy_setopt(d->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(d->easy, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(d->easy, CURLOPT_TIMEOUT_MS, TOTAL_TIMEOUT_MS);
	curl_easy_setopt(d->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(d->easy, CURLOPT_PRIVATE, d);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(d->easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(d->easy, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	if (curl_multi_add_handle(h->multi, d->easy) != CURLM_OK)
	{
		finish_now(h, d, false, 0, "cannot start the HTTP request");
		goto out;
	}
	d->state = D_SENDING;
	h->sending++;
	log_info("delivery %s (%s, %s, %s): sending to %s", d->idstr, d->kind, robot_name(d->robot),
			 d->event_label, d->where);
out:
	free(event_json);
	json_decref(event);
	json_decref(target);
}

/* a transfer ended: decide the result */
void
transfer_done(hookd *h, CURL *easy, CURLcode code)
{
	delivery *d = NULL;
	long status = 0;
	strbuf resp;
	bool ok;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &d);
	curl_multi_remove_handle(h->multi, easy);
	if (!d)
	{
		curl_easy_cleanup(easy);
		return;
	}
	h->sending--;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	sb_init(&resp);
	if (code != CURLE_OK)
	{
		sb_printf(&resp, "%s", d->errbuf[0] ? d->errbuf : curl_easy_strerror(code));
		ok = false;
	}
	else
	{
		/* the response as text: cut at a character, invalid bytes repaired */
		size_t n = utf8_cut(sb_str(&d->resp), d->resp.len);

		utf8_repair(&resp, sb_str(&d->resp), n, true);
		ok = status >= 200 && status < 300 && robot_accepted(d->robot, sb_str(&d->resp), d->resp.len);
	}
	finish_now(h, d, ok, code == CURLE_OK ? status : 0, sb_str(&resp));
	sb_free(&resp);
	curl_easy_cleanup(d->easy);
	d->easy = NULL;
	if (ok)
		log_info("delivery %s: delivered to %s (HTTP %ld, %ld ms)", d->idstr, d->where, status, d->cost_ms);
	else if (code != CURLE_OK)
		log_warn("delivery %s: failed to reach %s after %ld ms: %s", d->idstr, d->where, d->cost_ms,
				 d->response);
	else
	{
		char *r = xstrndup(d->response, 200);

		oneline(r);
		log_warn("delivery %s: %s refused it (HTTP %ld, %ld ms): %s", d->idstr, d->where, status,
				 d->cost_ms, r);
		free(r);
	}
}

void
complete(hookd *h, delivery *d, double now)
{
	const char *params[5];
	char code[16], cost[24];
	db_error err;
	PGresult *res;

	if (!db_connected(&h->db))
	{
		if (h->handled_terms >= 2)
		{
			log_warn("delivery %s: result not recorded (stopping, database unreachable)", d->idstr);
			d->state = D_DONE;
		}
		return;
	}
	if (now < d->retry.next_try)
		return;
	snprintf(code, sizeof(code), "%ld", d->http_code);
	snprintf(cost, sizeof(cost), "%ld", d->cost_ms < 0 ? 0 : (d->cost_ms > 2000000000L ? 2000000000L : d->cost_ms));
	params[0] = d->idstr;
	params[1] = d->success ? "true" : "false";
	params[2] = d->http_code > 0 ? code : NULL;
	params[3] = d->response;
	params[4] = cost;
	res = db_query(&h->db,
				   "SELECT pipeline.complete_hook_delivery($1::bigint, $2::boolean, $3::int, $4::text, $5::int)",
				   5, params, &err);
	if (res)
	{
		PQclear(res);
		d->state = D_DONE;
		h->next_claim = now;	/* room for the next one */
		return;
	}
	switch (retry_after(&d->retry, &err, h->stopping && h->handled_terms >= 2, now))
	{
		case RETRY_LATER:
			if (report_error_kind(&err) == ERR_OTHER)
				log_warn("delivery %s: cannot record the result (%s: %s); will retry", d->idstr,
						 err.sqlstate, err.message);
			break;
		case RETRY_REJECTED:
		case RETRY_GIVE_UP:
			if (report_error_kind(&err) == ERR_TRANSIENT)
				log_warn("delivery %s: result not recorded (stopping): %s", d->idstr, err.message);
			else
				log_error("delivery %s: cannot record the result (%s: %s); giving up", d->idstr,
						  err.sqlstate, err.message);
			d->state = D_DONE;
			break;
	}
}

bool
anything_pending(hookd *h)
{
	for (delivery *d = h->list; d; d = d->next)
		if (d->state != D_DONE)
			return true;
	return false;
}

void
claim_deliveries(hookd *h, double now)
{
	int room = h->concurrency - h->sending;
	char maxbuf[16];
	char leasebuf[16];
	const char *params[3];
	db_error err;
	PGresult *res;
	int n;

	h->last_claim = now;
	h->next_claim = now + h->poll_interval;
	if (room <= 0)
		return;
	snprintf(maxbuf, sizeof(maxbuf), "%d", room);
	snprintf(leasebuf, sizeof(leasebuf), "%d", h->lease);
	params[0] = h->name;
	params[1] = maxbuf;
	params[2] = leasebuf;
	res = db_query(&h->db,
				   "SELECT * FROM pipeline.claim_hook_deliveries($1::text, $2::int,"
				   " make_interval(secs => $3::int))",
				   3, params, &err);
	if (!res)
	{
		if (!db_error_transient(&err) &&
			(strncmp(err.message, h->last_claim_error, 200) != 0 || now - h->last_claim_error_at > 300))
		{
			log_error("cannot claim hook deliveries (%s: %s)", err.sqlstate, err.message);
			snprintf(h->last_claim_error, sizeof(h->last_claim_error), "%.200s", err.message);
			h->last_claim_error_at = now;
		}
		return;
	}
	h->last_claim_error[0] = '\0';
	n = PQntuples(res);
	for (int i = 0; i < n; i++)
		start_delivery(h, res, i);
	PQclear(res);
	h->idle_after_claim = (n == 0 && !anything_pending(h));
	if (n == room)
		h->next_claim = now;	/* there may be more */
}
