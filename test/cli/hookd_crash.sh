#!/usr/bin/env bash
# hookd_crash: a hook sender killed (SIGKILL) while a delivery is in flight (SPEC §8: "a sender
# that dies mid-send leaves the delivery to be claimed again once its lease ends (at least
# once)"):
#   - hookd A claims the delivery and POSTs it to a receiver path that holds the request
#     until the test has killed A (a marker file) and then answers 3 s later; killed mid-send, it
#     records nothing: the delivery stays "sending", leased to A (claim lease: 1 minute; hookd
#     has no option to shorten it);
#   - while the lease lasts, another hookd (B) does not send it again;
#   - the lease's end is simulated (lease_until and next_attempt_at moved to the past, as
#     superuser); hookd B then claims it, the receiver gets it again (same X-Pipeline-Delivery),
#     and the result is stored: succeeded, attempts 2, HTTP 200, sender B.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

L='{"cli": "'$T_ID'"}'
receiver_start 60
P=/hold/3/release/$T_ID	# answered only once $T_DIR/release exists, 3 s after that

define_pipeline '{"name": "'$T_ID'",
  "webhooks": [{"url": "'$RECV_URL$P'", "events": ["succeeded"]}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": {"command": "true", "labels": '"$L"'}}]}]}'
run=$(run_pipeline "$T_ID")
ok "the runner runs the pipeline" runner_once
id=$(q "SELECT id FROM pipeline.deliveries WHERE pipeline_task_id = :'run'" "run=$run")
is "one delivery" "$(wc -w <<<"$id")" 1
delivery() { q "SELECT $1 FROM pipeline.hook_delivery WHERE id = :'id'" "id=$id"; }

bg_start hookd_a "$PIPELINECTL" hookd --poll-interval 0.2 --name "$T_ID-hookd-a"
a=$BG_PID
ok "hookd A sends the delivery (it reaches the receiver, which holds it)" wait_requests "$P" 1 10
is "in flight: sending, leased to A, attempt 1" "$(delivery "status || '|' || sender || '|' || attempts")" \
	"sending|$T_ID-hookd-a|1"
cmp_num "the lease runs for about a minute" "$(delivery "extract(epoch from lease_until - now())")" -gt 30
kill -KILL "$a"
bg_wait "$a" 5
is "hookd A is killed (SIGKILL)" "$BG_RC" 137
is "nothing recorded: still sending, no result" \
	"$(delivery "status || '|' || jsonb_array_length(results) || '|' || coalesce(http_code::text, '-')")" "sending|0|-"

rc=0
hookd_once --name "$T_ID-hookd-b" || rc=$?
is "hookd B, while A's lease lasts: exits 0 (idle)" "$rc" 0
is "... without sending it again" "$(recv_count "$P")" 1
is "... the delivery stays A's" "$(delivery "status || '|' || sender || '|' || attempts")" "sending|$T_ID-hookd-a|1"

# the receiver may answer now (A is dead: its held request goes nowhere); the lease ends
# (simulated: as if a minute had passed)
touch "$T_DIR/release"
q "UPDATE pipeline.hook_delivery SET lease_until = now() - interval '1 second',
                                     next_attempt_at = now() - interval '1 second'
    WHERE id = :'id'" "id=$id"

t0=$(now)
rc=0
hookd_once --name "$T_ID-hookd-b" || rc=$?
is "hookd B, after the lease: exits 0 once the delivery is sent and recorded" "$rc" 0
cmp_num "it waited for the slow answer (>= 2.5 s)" "$(elapsed "$t0")" -ge 2.5
is "the receiver got the delivery again (at least once)" "$(recv_count "$P")" 2
is "both requests carry the same X-Pipeline-Delivery" \
	"$(header "$(recv_request "$P" 0)" X-Pipeline-Delivery) $(header "$(recv_request "$P" 1)" X-Pipeline-Delivery)" "$id $id"
is "the result is stored: succeeded, attempts 2, HTTP 200, sender B" \
	"$(delivery "status || '|' || attempts || '|' || http_code || '|' || sender")" "succeeded|2|200|$T_ID-hookd-b"
is "results: one result, of attempt 2, by B, a success" \
	"$(delivery "jsonb_array_length(results) || '|' || (results->0->>'attempt') || '|' || (results->0->>'sender') || '|' || (results->0->>'success')")" \
	"1|2|$T_ID-hookd-b|true"
is "the lease is released" "$(delivery "coalesce(lease_until::text, 'none')")" none
cmp_num "the stored cost is the slow answer's (>= 2500 ms)" "$(delivery cost_ms)" -ge 2500

t_done
