#!/usr/bin/env bash
# cancel: pipeline.cancel_pipeline_task() while the runner runs a long command (SPEC §9, §11:
# the runner "stops a command whose task turns canceling and reports canceled"):
#   - the running task turns canceling at once, and the runner stops the command within a few
#     seconds (woken by NOTIFY, not by its 10 s heartbeat) and reports it canceled;
#   - the run is canceled with the reason as its message; the task of the next stage is canceled
#     and its command never runs;
#   - no process of the command is left (foreground and background sleeps, one process group);
#   - the output written before the cancel is stored; the runner, idle, exits 0.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

M=$(marker_digits)
L='{"cli": "'$T_ID'"}'
track_marker "sleep 60.$M"
track_marker "sleep 61.$M"

long=$(json_str "echo 'started $M'; sleep 61.$M & sleep 60.$M; echo never")
later=$(json_str "touch '$T_DIR/later-ran'")
define_pipeline '{"name": "'$T_ID'", "stages": [
    {"name": "s1", "tasks": [{"name": "long",  "job": {"command": '"$long"', "labels": '"$L"'}}]},
    {"name": "s2", "tasks": [{"name": "later", "job": {"command": '"$later"', "labels": '"$L"'}}]}]}'

run=$(run_pipeline "$T_ID")
long_id=$(task_id "$run" s1 long)
later_id=$(task_id "$run" s2 later)
runner_bg --exit-when-idle
runner=$BG_PID

ok "the task becomes active" wait_task_stage "$long_id" active 10
ok "its command runs (the sleep exists)" wait_until 10 has_process "sleep 60.$M"
sleep 0.7 # let the first output reach the log (flushed every 0.5 s)

t0=$(now)
q "SELECT stage FROM pipeline.cancel_pipeline_task(:'run', :'why')" "run=$run" "why=stopped by the test $M" >/dev/null
stage_now=$(task_stage "$long_id")
like "right after the cancel the running task is canceling (or already canceled)" "$stage_now" "^cancel(ing|ed)$"
ok "the runner reports the task canceled within 6 s" wait_task_stage "$long_id" canceled 6
cmp_num "the cancel took effect in under 5 s (no wait for the 10 s heartbeat)" "$(elapsed "$t0")" -lt 5
ok "no sleep of the command is left (foreground)" no_process "sleep 60.$M"
ok "no sleep of the command is left (background, same group)" no_process "sleep 61.$M"
is "the run is canceled" "$(run_stage "$run")" canceled
is "the run's message is the reason" "$(run_field "$run" "coalesce(message, '')")" "stopped by the test $M"
is "the next stage's task is canceled" "$(task_stage "$later_id")" canceled
ok "the next stage's command never ran" test ! -e "$T_DIR/later-ran"
log=$("$PIPELINECTL" logs "$long_id")
like "the output written before the cancel is stored" "$log" "started $M"
unlike "the command did not go on after its sleep" "$log" "never"

bg_wait "$runner" 10
is "the runner exits 0 once idle" "$BG_RC" 0
like "the runner logged the cancel request" "$(cat "$T_DIR/runner.log")" "cancel requested"

t_done
