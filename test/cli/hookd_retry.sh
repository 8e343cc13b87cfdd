#!/usr/bin/env bash
# hookd_retry: a receiver that answers 500 once, then 200 (SPEC §8: "a failure is retried with
# exponential backoff ... every result is stored"):
#   - hookd (running, not --exit-when-idle) records the 500 as a failed attempt, the delivery
#     goes back to pending with a backoff (pipeline.hook_backoff = 6 s for hookd's session, set
#     through PGOPTIONS so no other session is affected: long enough for the test to see the
#     pending state even on a loaded machine), and is sent again after it;
#   - the second attempt succeeds: status succeeded, attempts 2, http_code 200, results holds
#     both attempts in order (500 not a success, then 200 a success);
#   - both requests carry the same X-Pipeline-Delivery; the second came at least the backoff
#     after the first; hookd stops cleanly on SIGTERM (exit 0).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

L='{"cli": "'$T_ID'"}'
receiver_start 60
P=/fail-then-ok/1/$T_ID

define_pipeline '{"name": "'$T_ID'",
  "webhooks": [{"url": "'$RECV_URL$P'", "events": ["succeeded"], "secret": "retry-secret"}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": {"command": "true", "labels": '"$L"'}}]}]}'
run=$(run_pipeline "$T_ID")
ok "the runner runs the pipeline" runner_once
is "the run succeeded" "$(run_stage "$run")" succeeded
id=$(q "SELECT id FROM pipeline.deliveries WHERE pipeline_task_id = :'run'" "run=$run")
is "one delivery (the webhook matches only 'succeeded')" "$(wc -w <<<"$id")" 1

BACKOFF=6
delivery() { q "SELECT $1 FROM pipeline.deliveries WHERE id = :'id'" "id=$id"; }
_delivery_is() { [[ $(delivery status) == "$1" ]]; }

PGOPTIONS="-c pipeline.hook_backoff=$BACKOFF" bg_start hookd "$PIPELINECTL" hookd --poll-interval 0.2 --name "$T_ID-hookd"
hookd=$BG_PID

ok "the first attempt reaches the receiver" wait_requests "$P" 1 10
_failed_once() { [[ $(delivery "status || '|' || attempts || '|' || jsonb_array_length(results)") == "pending|1|1" ]]; }
ok "the first attempt is recorded as failed and the delivery waits for a retry" wait_until $BACKOFF _failed_once
cmp_num "the retry is scheduled after the backoff" \
	"$(delivery "extract(epoch from next_attempt_at - (results->0->>'at')::timestamptz)")" -ge $((BACKOFF - 1)).9
ok "the delivery succeeds on the retry" wait_until $((BACKOFF + 15)) _delivery_is succeeded
cmp_num "the stored attempts are the backoff apart" \
	"$(delivery "extract(epoch from (results->1->>'at')::timestamptz - (results->0->>'at')::timestamptz)")" \
	-ge $((BACKOFF - 1)).9
is "status, attempts, http_code" "$(delivery "status || '|' || attempts || '|' || http_code")" "succeeded|2|200"
is "results has both attempts: 1 failed with 500, 2 succeeded with 200" \
	"$(delivery "(SELECT string_agg((r->>'attempt') || ':' || (r->>'success') || ':' || (r->>'http_code'), ' ' ORDER BY n)
	               FROM jsonb_array_elements(results) WITH ORDINALITY AS x(r, n))")" "1:false:500 2:true:200"
like "the failed attempt's response is stored" "$(delivery "results->0->>'response'")" "scripted failure"
is "both results name the sender" "$(delivery "(results->0->>'sender') || ' ' || (results->1->>'sender')")" \
	"$T_ID-hookd $T_ID-hookd"
is "the receiver got exactly 2 requests" "$(recv_count "$P")" 2
r1=$(recv_request "$P" 0)
r2=$(recv_request "$P" 1)
is "the receiver answered 500 then 200" "$(jget "$r1" 'd["status"]') $(jget "$r2" 'd["status"]')" "500 200"
extversion=$(sed -n "s/^default_version = '\\(.*\\)'$/\\1/p" "$PL_ROOT/pipeline.control")
is "both name the sender's version (User-Agent)" "$(header "$r1" User-Agent) $(header "$r2" User-Agent)" \
	"pipelinectl/$extversion pipelinectl/$extversion"
is "both carry the same X-Pipeline-Delivery" "$(header "$r1" X-Pipeline-Delivery) $(header "$r2" X-Pipeline-Delivery)" "$id $id"
cmp_num "the retry came after the backoff (>= $((BACKOFF - 1)).9 s later)" \
	"$(awk -v a="$(jget "$r1" 'd["time"]')" -v b="$(jget "$r2" 'd["time"]')" 'BEGIN { print b - a }')" -ge $((BACKOFF - 1)).9
for r in "$r1" "$r2"; do
	body_to_file "$r" "$T_DIR/body"
	is "request $(jget "$r" 'd["seq"]') (delivery $id): the signature matches its body" \
		"$(header "$r" X-Pipeline-Signature)" "$("$PIPELINECTL" sign retry-secret <"$T_DIR/body")"
done

kill -TERM "$hookd"
bg_wait "$hookd" 10
is "hookd exits 0 on SIGTERM" "$BG_RC" 0

t_done
