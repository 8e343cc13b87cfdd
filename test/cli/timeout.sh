#!/usr/bin/env bash
# timeout: a job with "timeout": 2 whose command sleeps 60 s is stopped by the runner (SPEC §11:
# "kills a command past its timeout"):
#   - the task is failed with a timeout message within a few seconds, not 60;
#   - the whole process group goes: a sleep started in the background by the command is gone
#     too (checked in /proc for a sleep duration no other process uses);
#   - a command that ignores SIGTERM (trap '' TERM, inherited by its children) is killed with
#     SIGKILL after the grace period, and its processes are gone as well.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

M=$(marker_digits)
L='{"cli": "'$T_ID'"}'
for s in 60 61 62 63; do track_marker "sleep $s.$M"; done

plain=$(json_str "echo started; sleep 61.$M & sleep 60.$M; echo never")
stubborn=$(json_str "trap '' TERM; echo started; sleep 63.$M & sleep 62.$M; echo never")
define_pipeline '{"name": "'$T_ID'", "stages": [{"name": "s", "is_parallel": true, "tasks": [
    {"name": "plain",    "job": {"command": '"$plain"',    "timeout": 2, "labels": '"$L"'}},
    {"name": "stubborn", "job": {"command": '"$stubborn"', "timeout": 2, "labels": '"$L"'}}]}]}'

run=$(run_pipeline "$T_ID")
t0=$(now)
runner_bg --concurrency 2 --exit-when-idle
runner=$BG_PID
p=$(task_id "$run" s plain)
s=$(task_id "$run" s stubborn)

ok "the commands run (their sleeps exist)" wait_until 10 has_process "sleep 60.$M"
ok "plain: failed within 6 s" wait_task_stage "$p" failed 6
cmp_num "plain: stopped after about 2 s (run time of the task)" \
	"$(task_field "$p" "extract(epoch from end_at - start_at)")" -lt 5
like "plain: the message says timeout" "$(task_field "$p" "coalesce(message, '')")" "timeout"
ok "plain: no sleep of its command is left (foreground)" no_process "sleep 60.$M"
ok "plain: no sleep of its command is left (background, same group)" no_process "sleep 61.$M"
like "plain: detail has the output tail" "$(task_field "$p" "detail->>'output_tail'")" "^started"
unlike "plain: the command did not go on after its sleep" "$(task_field "$p" "detail->>'output_tail'")" "never"

ok "stubborn (ignores SIGTERM): failed within 12 s" wait_task_stage "$s" failed 12
cmp_num "stubborn: killed soon after the SIGKILL grace (run time of the task)" \
	"$(task_field "$s" "extract(epoch from end_at - start_at)")" -lt 10
like "stubborn: the message says timeout" "$(task_field "$s" "coalesce(message, '')")" "timeout"
ok "stubborn: no sleep of its command is left (foreground)" no_process "sleep 62.$M"
ok "stubborn: no sleep of its command is left (background)" no_process "sleep 63.$M"

bg_wait "$runner" 10
is "the runner exits 0 once idle" "$BG_RC" 0
cmp_num "all of it took far less than the 60 s sleep" "$(elapsed "$t0")" -lt 20
is "the run failed" "$(run_stage "$run")" failed

t_done
