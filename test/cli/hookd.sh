#!/usr/bin/env bash
# hookd: "pipelinectl hookd --exit-when-idle" sends a run's deliveries to a real HTTP receiver on
# 127.0.0.1 (SPEC §8, §11):
#   - a pipeline webhook with a secret and a custom header: one POST of the generic JSON body
#     {"event": <the event row with its snapshot>, "delivery_id": N}, headers X-Pipeline-Event
#     (pipeline_task.succeeded), X-Pipeline-Delivery (the delivery's id), X-Pipeline-Signature =
#     sha256=<hex HMAC-SHA256(secret, body)> (checked with python3, with openssl and with
#     "pipelinectl sign"), the custom header; the secret itself is not sent;
#   - im_robot_notify with "robot": feishu / dingtalk / wecom: each in its own format (Feishu
#     interactive card, DingTalk markdown, WeCom markdown);
#   - a robot answering HTTP 200 {"errcode": 310000} counts as failed (with
#     pipeline.hook_max_attempts = 1 for hookd's session: the delivery ends failed);
#   - mention_users (no url: no transport) are recorded as sent;
#   - a task-level webhook without "events" gets every stage change of its job task;
#   - every delivery is stored with its status, http_code and results (pipeline.deliveries,
#     pipeline.job_task_deliveries()), secrets masked.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

M=$(marker_digits)
L='{"cli": "'$T_ID'"}'
SECRET="s3cret-$M"
receiver_start 60
U=$RECV_URL

define_pipeline '{"name": "'$T_ID'",
  "webhooks": [{"url": "'$U'/hook/generic/'$T_ID'", "secret": "'$SECRET'", "events": ["succeeded"],
                "headers": {"X-Custom-Test": "custom-'$M'"}, "description": "generic"}],
  "im_robot_notify": [
    {"url": "'$U'/robot/feishu/'$T_ID'",   "robot": "feishu",   "events": ["succeeded"]},
    {"url": "'$U'/robot/dingtalk/'$T_ID'", "robot": "dingtalk", "events": ["succeeded"]},
    {"url": "'$U'/robot/wecom/'$T_ID'",    "robot": "wecom",    "events": ["succeeded"]},
    {"url": "'$U'/robot/error/'$T_ID'",    "robot": "dingtalk", "events": ["succeeded"]}],
  "mention_users": [{"user": "bob-'$M'", "notify_types": ["email"], "events": ["succeeded"]}],
  "stages": [{"name": "build", "tasks": [{"name": "compile",
      "job": {"command": "echo compiled", "labels": '"$L"'},
      "webhooks": [{"url": "'$U'/hook/task/'$T_ID'"}]}]}]}'

run=$(run_pipeline "$T_ID")
ok "the runner runs the pipeline" runner_once
is "the run succeeded" "$(run_stage "$run")" succeeded
compile=$(task_id "$run" build compile)

# hook_max_attempts = 1 for hookd's session only (libpq passes PGOPTIONS to the server)
PGOPTIONS="-c pipeline.hook_max_attempts=1" ok "hookd --exit-when-idle sends and exits 0" hookd_once

# delivery_of URL_PATH: the id of the run's delivery to that URL
delivery_of() {
	q "SELECT id FROM pipeline.deliveries WHERE pipeline_task_id = :'run' AND target->>'url' = :'url'" \
		"run=$run" "url=$U$1"
}

# ---------------------------------------------------------------- the generic webhook
is "the generic webhook got one request" "$(recv_count "/hook/generic/$T_ID")" 1
req=$(recv_request "/hook/generic/$T_ID")
gid=$(delivery_of "/hook/generic/$T_ID")
is "it is a POST" "$(jget "$req" 'd["method"]')" POST
like "Content-Type is JSON" "$(header "$req" Content-Type)" "^application/json"
is "X-Pipeline-Event" "$(header "$req" X-Pipeline-Event)" pipeline_task.succeeded
is "X-Pipeline-Delivery is the delivery's id" "$(header "$req" X-Pipeline-Delivery)" "$gid"
is "the hook's own header" "$(header "$req" X-Custom-Test)" "custom-$M"

body_to_file "$req" "$T_DIR/generic.body"
sig=$(header "$req" X-Pipeline-Signature)
want=$(python3 -c 'import hashlib, hmac, sys
print("sha256=" + hmac.new(sys.argv[1].encode(), open(sys.argv[2], "rb").read(), hashlib.sha256).hexdigest())' \
	"$SECRET" "$T_DIR/generic.body")
is "X-Pipeline-Signature = sha256=HMAC-SHA256(secret, body) (python3)" "$sig" "$want"
is "... the same with openssl dgst -hmac" "$sig" \
	"sha256=$(openssl dgst -sha256 -hmac "$SECRET" -r <"$T_DIR/generic.body" | cut -d' ' -f1)"
is "... the same with pipelinectl sign" "$sig" "$("$PIPELINECTL" sign "$SECRET" <"$T_DIR/generic.body")"
isnt "a signature made with another secret differs" "$sig" \
	"sha256=$(openssl dgst -sha256 -hmac "other-$SECRET" -r <"$T_DIR/generic.body" | cut -d' ' -f1)"
unlike "the secret itself is not sent" "$(cat "$T_DIR/generic.body") $(jget "$req" 'd["headers"]')" "$SECRET"

body=$(jget "$req" 'd["body"]')
is "body: delivery_id is the delivery's id" "$(jget "$body" 'd["delivery_id"]')" "$gid"
is "body: event.kind" "$(jget "$body" 'd["event"]["kind"]')" pipeline_task
is "body: event.object_id is the run" "$(jget "$body" 'd["event"]["object_id"]')" "$run"
is "body: event.old_stage -> new_stage" "$(jget "$body" 'd["event"]["old_stage"] + " -> " + d["event"]["new_stage"]')" \
	"active -> succeeded"
is "body: event.payload is the run's snapshot" "$(jget "$body" 'd["event"]["payload"]["pipeline_name"]')" "$T_ID"
is "body: the event is the stored event" "$(jget "$body" 'd["event"]["id"]')" \
	"$(q "SELECT event_id FROM pipeline.deliveries WHERE id = :'id'" "id=$gid")"
is "body: exactly the keys event and delivery_id (README, pipelinectl hookd)" "$(jget "$body" 'sorted(d)')" \
	'["delivery_id", "event"]'

# ---------------------------------------------------------------- robots
req=$(recv_request "/robot/feishu/$T_ID")
fb=$(jget "$req" 'd["body"]')
is "feishu: one request" "$(recv_count "/robot/feishu/$T_ID")" 1
is "feishu: X-Pipeline-Event" "$(header "$req" X-Pipeline-Event)" pipeline_task.succeeded
is "feishu: msg_type interactive" "$(jget "$fb" 'd["msg_type"]')" interactive
like "feishu: card header title names the run" "$(jget "$fb" 'd["card"]["header"]["title"]["content"]')" "$T_ID #$run.*succeeded"
is "feishu: card header colour for succeeded" "$(jget "$fb" 'd["card"]["header"]["template"]')" green
is "feishu: card element is lark_md" "$(jget "$fb" 'd["card"]["elements"][0]["text"]["tag"]')" lark_md
like "feishu: card text has the stage change" "$(jget "$fb" 'd["card"]["elements"][0]["text"]["content"]')" "active .* succeeded"

req=$(recv_request "/robot/dingtalk/$T_ID")
db=$(jget "$req" 'd["body"]')
is "dingtalk: one request" "$(recv_count "/robot/dingtalk/$T_ID")" 1
is "dingtalk: msgtype markdown" "$(jget "$db" 'd["msgtype"]')" markdown
like "dingtalk: markdown title names the run" "$(jget "$db" 'd["markdown"]["title"]')" "$T_ID #$run.*succeeded"
like "dingtalk: markdown text is a heading and lines" "$(jget "$db" 'd["markdown"]["text"]')" "^#### .*$T_ID.*"$'\n'

req=$(recv_request "/robot/wecom/$T_ID")
wb=$(jget "$req" 'd["body"]')
is "wecom: one request" "$(recv_count "/robot/wecom/$T_ID")" 1
is "wecom: msgtype markdown" "$(jget "$wb" 'd["msgtype"]')" markdown
like "wecom: markdown content names the run" "$(jget "$wb" 'd["markdown"]["content"]')" "$T_ID #$run"
like "wecom: markdown content colours the stage" "$(jget "$wb" 'd["markdown"]["content"]')" '<font color="info">succeeded</font>'

for r in feishu dingtalk wecom; do
	id=$(delivery_of "/robot/$r/$T_ID")
	is "$r: delivery succeeded, HTTP 200, kind im_robot, target.robot $r" \
		"$(q "SELECT status, http_code, kind, target->>'robot', attempts FROM pipeline.deliveries WHERE id = :'id'" "id=$id")" \
		"succeeded|200|im_robot|$r|1"
done

# ---------------------------------------------------------------- a robot refusing with HTTP 200
is "the refusing robot got the message" "$(recv_count "/robot/error/$T_ID")" 1
eid=$(delivery_of "/robot/error/$T_ID")
is "a robot answering HTTP 200 {\"errcode\": 310000} is a failed delivery" \
	"$(q "SELECT status, http_code, attempts FROM pipeline.deliveries WHERE id = :'id'" "id=$eid")" "failed|200|1"
is "... its result is stored: not a success, HTTP 200, the robot's answer" \
	"$(q "SELECT r->>'success', r->>'http_code', (r->>'response') LIKE '%310000%'
	        FROM pipeline.deliveries, jsonb_array_elements(results) r WHERE id = :'id'" "id=$eid")" "false|200|t"

# ---------------------------------------------------------------- mentions
is "a mention (no url: nothing to send) is recorded as sent, no HTTP code" \
	"$(q "SELECT string_agg(target->>'user' || ':' || status || ':' || coalesce(http_code::text, '-') || ':' || response, ' ')
	       FROM pipeline.deliveries WHERE pipeline_task_id = :'run' AND kind = 'mention'" "run=$run")" \
	"bob-$M:succeeded:-:no transport"

# ---------------------------------------------------------------- stored results
is "every pipeline-level delivery but the refused one succeeded with HTTP 200" \
	"$(q "SELECT count(*) FILTER (WHERE status = 'succeeded' AND http_code = 200
	                                 AND jsonb_array_length(results) = 1
	                                 AND (results->0->>'success')::boolean AND (results->0->>'http_code')::int = 200),
	            count(*)
	       FROM pipeline.deliveries WHERE pipeline_task_id = :'run' AND job_task_id IS NULL
	        AND kind <> 'mention'" "run=$run")" "4|5"
is "the secret is masked in pipeline.deliveries" \
	"$(q "SELECT target->>'secret' FROM pipeline.deliveries WHERE id = :'id'" "id=$gid")" "******"
is "the generic delivery's result names this sender" \
	"$(q "SELECT results->0->>'sender' FROM pipeline.deliveries WHERE id = :'id'" "id=$gid")" "$T_ID-hookd"

# ---------------------------------------------------------------- the task-level webhook
task_n=$(q "SELECT count(*) FROM pipeline.job_task_deliveries(:'id')" "id=$compile")
cmp_num "job_task_deliveries lists the task webhook's deliveries (one per stage change)" "$task_n" -ge 3
is "... all succeeded with HTTP 200 and a stored result" \
	"$(q "SELECT count(*) FROM pipeline.job_task_deliveries(:'id')
	       WHERE status = 'succeeded' AND http_code = 200 AND kind = 'webhook'
	         AND jsonb_array_length(results) = 1 AND target->>'url' = :'url'" "id=$compile" "url=$U/hook/task/$T_ID")" "$task_n"
is "the receiver got one request per task delivery" "$(recv_count "/hook/task/$T_ID")" "$task_n"
events=$(python3 - "$RECV_LOG" "/hook/task/$T_ID" <<-'EOF'
	import json, sys
	rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
	print(" ".join(sorted(r["headers"].get("X-Pipeline-Event", "") for r in rows if r["path"].startswith(sys.argv[2]))))
EOF
)
like "the task webhook got the task's stage changes (X-Pipeline-Event job_task.*)" "$events" "job_task\.active.*job_task\.succeeded"
is "no signature header without a secret" "$(header "$(recv_request "/hook/task/$T_ID")" X-Pipeline-Signature)" ""
is "nothing left to send for this run" \
	"$(q "SELECT count(*) FROM pipeline.hook_delivery WHERE pipeline_task_id = :'run' AND status IN ('pending', 'sending')" "run=$run")" 0

t_done
