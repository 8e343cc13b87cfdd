#!/usr/bin/env bash
# secret_mask: SPEC §12 / issue 9 item 6 / issue 10 item 4 - a sensitive param's value echoed by
# a job never reaches a log.  A job with a sensitive param (and its update token) prints the
# value on stdout and stderr, inside a line, split across two writes 0.7 s apart (so two reads,
# and an output flush, fall between the halves), and last (so it is in the output tail), then
# fails.  With a real runner and a real hookd sending every event of the run to a receiver:
# the value is nowhere in job_task_log, detail (output_tail), the task's and the run's
# message, its runtime envs (it copies the value into LEAK=...), the events' payloads, the hook deliveries (rows and the bodies received), or the
# runner's and hookd's stderr; the output shows ****** where it was.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

M=$(marker_digits)
SECRET="tok-$M-Zq9xVv-secret-value"
L='{"cli": "'$T_ID'"}'
receiver_start 60
cmd=$(json_str 'echo "the token is $SECRET, really"
echo "$SECRET" >&2
half=${SECRET%??????????????}
printf "split:%s" "$half"; sleep 0.7; printf "%s:end\n" "${SECRET#"$half"}"
echo "update token: $JOB_TASK_UPDATE_TOKEN"
echo "LEAK=copy of $SECRET" >> "$PIPELINE_OUTPUT"
echo "last: $SECRET"
exit 3')
define_pipeline '{"name": "'$T_ID'",
  "webhooks": [{"url": "'$RECV_URL'/ok/'$T_ID'"}],
  "stages": [{"name": "s", "tasks": [{"name": "t",
     "webhooks": [{"url": "'$RECV_URL'/ok/task/'$T_ID'"}],
     "job": {"command": '"$cmd"', "labels": '"$L"',
             "params": [{"name": "SECRET", "sensitive": true, "required": true}]}}]}]}'
run=$(run_pipeline "$T_ID" '{"SECRET": "'$SECRET'"}')
rc=0
runner_once -v || rc=$?
is "the runner exits 0" "$rc" 0
t=$(task_id "$run" s t)
is "the task failed (exit 3)" "$(task_field "$t" "stage || ' ' || message")" "failed exit code 3"
rc=0
hookd_once || rc=$?
is "hookd sent the run's deliveries and exits 0" "$rc" 0
cmp_num "the receiver got deliveries" "$(recv_count /ok/)" -ge 2

out=$("$PIPELINECTL" logs "$t")
unlike "job_task_log: no secret" "$out" "$SECRET"
like "... ****** where it was printed" "$out" "the token is \*\*\*\*\*\*, really"
like "... also when split across two writes" "$out" "split:\*\*\*\*\*\*:end"
like "... the update token is masked too" "$out" "update token: \*\*\*\*\*\*"$'\n'
is "... and no piece of the split value leaks before the mask" \
	"$(grep -c "split:${SECRET:0:12}" <<<"$out" || true)" 0
is "detail (output_tail): no secret" \
	"$(q "SELECT count(*) FROM pipeline.job_task WHERE id = :'t' AND strpos(detail::text, :'s') > 0" "t=$t" "s=$SECRET")" 0
like "... the tail shows the mask" "$(task_field "$t" "detail->>'output_tail'")" "last: \*\*\*\*\*\*"
is "messages (task, run): no secret" \
	"$(q "SELECT count(*) FROM pipeline.job_task WHERE pipeline_task_id = :'r' AND strpos(coalesce(message, ''), :'s') > 0" "r=$run" "s=$SECRET")$(q "SELECT count(*) FROM pipeline.pipeline_task WHERE id = :'r' AND strpos(coalesce(message, ''), :'s') > 0" "r=$run" "s=$SECRET")" 00
is "runtime envs: the value copied into one (LEAK) is masked" "$(task_field "$t" "runtime_envs->>'LEAK'")" "copy of ******"
is "events' payloads: no secret" \
	"$(q "SELECT count(*) FROM pipeline.event WHERE pipeline_task_id = :'r' AND strpos(payload::text, :'s') > 0" "r=$run" "s=$SECRET")" 0
is "hook deliveries (target, response, results): no secret" \
	"$(q "SELECT count(*) FROM pipeline.hook_delivery WHERE pipeline_task_id = :'r' AND strpos(target::text || coalesce(response, '') || results::text, :'s') > 0" "r=$run" "s=$SECRET")" 0
is "the bodies the receiver got: no secret" "$(grep -c -- "$SECRET" "$RECV_LOG" || true)" 0
is "the runner's stderr (-v): no secret" "$(grep -c -- "$SECRET" "$T_DIR/runner.log" || true)" 0
is "hookd's stderr: no secret" "$(grep -c -- "$SECRET" "$T_DIR/hookd.log" || true)" 0
t_done
