#!/usr/bin/env bash
# sigterm: stopping a runner (SPEC §11: "SIGTERM: claim nothing more, finish cleanly"):
#   - a runner (concurrency 1) runs one task of a parallel stage while the other waits;
#     SIGTERM: the running command is not stopped, it finishes and is reported succeeded, the
#     runner exits 0, and the waiting task stays scheduling, unclaimed (its command never runs);
#   - a second SIGTERM stops the running command (reported failed, "runner stopped"), leaves no
#     process behind, and the runner exits.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

M=$(marker_digits)
L='{"cli": "'$T_ID'"}'
track_marker "sleep 3.$M"
track_marker "sleep 60.$M"

# ---------------------------------------------------------------- one SIGTERM
first=$(json_str "echo 'first started'; sleep 3.$M; echo 'first done'")
second=$(json_str "touch '$T_DIR/second-ran'")
define_pipeline '{"name": "'$T_ID'_one", "stages": [{"name": "s", "is_parallel": true, "tasks": [
    {"name": "first",  "job": {"command": '"$first"',  "labels": '"$L"'}},
    {"name": "second", "job": {"command": '"$second"', "labels": '"$L"'}}]}]}'
run=$(run_pipeline "${T_ID}_one")
a=$(task_id "$run" s first)
b=$(task_id "$run" s second)
is "both tasks wait for a runner" "$(task_stage "$a") $(task_stage "$b")" "scheduling scheduling"

runner_bg --concurrency 1
runner=$BG_PID
ok "the runner starts the first task" wait_task_stage "$a" active 10
ok "its command runs" wait_until 10 has_process "sleep 3.$M"
is "the second task still waits (concurrency 1)" "$(task_stage "$b")" scheduling

t0=$(now)
kill -TERM "$runner"
sleep 0.5
ok "the runner does not exit while its task runs" alive "$runner"
ok "the command is not stopped by the first SIGTERM" has_process "sleep 3.$M"
bg_wait "$runner" 15
is "the runner exits 0 once the task is done" "$BG_RC" 0
cmp_num "it waited for the command (about 3 s)" "$(elapsed "$t0")" -ge 2
is "the running task finished and was reported succeeded" "$(task_stage "$a")" succeeded
like "its whole output is stored" "$("$PIPELINECTL" logs "$a")" "first started"$'\n'"first done"
is "the second task stays scheduling" "$(task_stage "$b")" scheduling
is "the second task was never claimed" "$(task_field "$b" "coalesce(runner, '<none>')")" "<none>"
sleep 1
is "the second task is still scheduling a second later" "$(task_stage "$b")" scheduling
ok "the second task's command never ran" test ! -e "$T_DIR/second-ran"
like "the runner logged the signal" "$(cat "$T_DIR/runner.log")" "signal received"
q "SELECT pipeline.cancel_pipeline_task(:'run', 'sigterm test: part 1 done')" "run=$run" >/dev/null

# ---------------------------------------------------------------- two SIGTERMs
long=$(json_str "echo 'long started'; sleep 60.$M; echo never")
define_pipeline '{"name": "'$T_ID'_two", "stages": [{"name": "s", "tasks": [
    {"name": "long", "job": {"command": '"$long"', "labels": '"$L"'}}]}]}'
run=$(run_pipeline "${T_ID}_two")
c=$(task_id "$run" s long)
runner_bg
runner=$BG_PID
ok "the runner starts the long task" wait_task_stage "$c" active 10
ok "its command runs" wait_until 10 has_process "sleep 60.$M"
kill -TERM "$runner"
sleep 0.3
kill -TERM "$runner"
bg_wait "$runner" 10
isnt "a second SIGTERM: the runner exits within 10 s" "$BG_RC" 124
is "the task is reported failed" "$(task_stage "$c")" failed
is "with the message 'runner stopped'" "$(task_field "$c" "coalesce(message, '')")" "runner stopped"
ok "no process of the command is left" no_process "sleep 60.$M"

t_done
