#!/usr/bin/env bash
#
# test/cli/runner_batch.sh: the runner's batched protocol (SPEC §16, issue 12 item 3).
#
# The runner claims up to its free slots at once with start => true (the tasks are active
# from the claim: no 'creating' event, no 'active' report) and sends its final reports in
# batches through update_job_task_statuses.  Asserted from the server side: the runner's
# backend runs with track_functions = all, so pg_stat_user_functions counts its calls of
# update_job_task_status(es) and claim_job_tasks; and the tasks a batch finished share one
# end_at (one transaction's now()).
#   1. six dry-run tasks of a parallel stage are claimed together and reported in ONE call
#      of update_job_task_statuses; the next stage's task in a second; no single report;
#   2. eight real commands (one fails, one reports a runtime env, two print output): the
#      results, the runtime env and the output arrive, through the batched function only
#      (how many calls depends on when the commands end: between 1 and 8, not asserted
#      further, as that is timing).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

L='{"cli": "'$T_ID'"}'
# the runner's own backend counts its function calls (superuser: -c is allowed)
RUNNER_DB="options='-c track_functions=all' application_name=$T_ID-runner"

calls() {
	q "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions
	    WHERE schemaname = 'pipeline' AND funcname = :'f'" "f=$1"
}

define_pipeline '{"name": "'$T_ID'", "stages": [
  {"name": "par", "is_parallel": true, "tasks": [
    {"name": "t1", "job": {"command": "true", "labels": '"$L"'}}, {"name": "t2", "job": {"command": "true", "labels": '"$L"'}},
    {"name": "t3", "job": {"command": "true", "labels": '"$L"'}}, {"name": "t4", "job": {"command": "true", "labels": '"$L"'}},
    {"name": "t5", "job": {"command": "true", "labels": '"$L"'}}, {"name": "t6", "job": {"command": "true", "labels": '"$L"'}}]},
  {"name": "after", "tasks": [{"name": "u", "job": {"command": "true", "labels": '"$L"'}}]}]}'

# ---------------------------------------------------------------- 1. dry runs: one batch
single0=$(calls update_job_task_status)
batch0=$(calls update_job_task_statuses)
claim0=$(calls claim_job_tasks)
run=$(run_pipeline "$T_ID" '{}' true)
rc=0
runner_once --concurrency 8 -d "$RUNNER_DB" || rc=$?
is "the runner did the dry run and exited 0" "$rc" 0
is "the run succeeded" "$(run_stage "$run")" succeeded
# the backend's counters reach the shared statistics when it exits; wait for them
_batch_calls_ge() { (($(calls update_job_task_statuses) - batch0 >= $1)); }
wait_until 10 _batch_calls_ge 2 || true
is "two calls of update_job_task_statuses: the six parallel tasks in one, the next stage in one" \
	"$(($(calls update_job_task_statuses) - batch0))" 2
is "no call of the single update_job_task_status (no 'active' report either)" \
	"$(($(calls update_job_task_status) - single0))" 0
cmp_num "the six were claimed in one call (one for them, one for 'after', at most a few empty polls)" \
	"$(($(calls claim_job_tasks) - claim0))" -ge 2
is "the six parallel tasks have one end_at: one transaction" \
	"$(q "SELECT count(DISTINCT end_at) FROM pipeline.job_task WHERE pipeline_task_id = :'r' AND stage_name = 'par'" "r=$run")" 1
is "each task: scheduling -> active (the claim) -> succeeded, nothing else" \
	"$(q "SELECT string_agg(DISTINCT ev, ' ') FROM (
	        SELECT string_agg(e.old_stage || '>' || e.new_stage, ',' ORDER BY e.id) AS ev
	          FROM pipeline.event e WHERE e.kind = 'job_task' AND e.pipeline_task_id = :'r'
	         GROUP BY e.object_id) x" "r=$run")" "pending>scheduling,scheduling>active,active>succeeded"
like "the runner logged the dry runs" "$(cat "$T_DIR/runner.log")" "dry run, reporting success"

# ---------------------------------------------------------------- 2. real commands
define_pipeline '{"name": "'$T_ID'_real", "stages": [
  {"name": "par", "is_parallel": true, "tasks": [
    {"name": "a1", "job": {"command": "echo one", "labels": '"$L"'}}, {"name": "a2", "job": {"command": "echo two", "labels": '"$L"'}},
    {"name": "a3", "job": {"command": "true", "labels": '"$L"'}}, {"name": "a4", "job": {"command": "true", "labels": '"$L"'}},
    {"name": "a5", "job": {"command": "exit 3", "labels": '"$L"'}}, {"name": "a6", "job": {"command": "true", "labels": '"$L"'}},
    {"name": "a7", "job": {"command": "echo VERSION=7 >> \"$PIPELINE_OUTPUT\"", "labels": '"$L"'}},
    {"name": "a8", "job": {"command": "true", "labels": '"$L"'}}]}]}'
single0=$(calls update_job_task_status)
batch0=$(calls update_job_task_statuses)
run2=$(run_pipeline "${T_ID}_real")
rc=0
runner_once --concurrency 8 -d "$RUNNER_DB" || rc=$?
is "the runner ran the eight commands and exited 0" "$rc" 0
is "the run failed (a5 exits 3)" "$(run_stage "$run2")" failed
is "a5 failed with its exit code, the others succeeded" \
	"$(q "SELECT string_agg(task_name || '=' || stage || coalesce(':' || message, ''), ' ' ORDER BY task_index)
	        FROM pipeline.job_tasks WHERE pipeline_task_id = :'r'" "r=$run2")" \
	"a1=succeeded a2=succeeded a3=succeeded a4=succeeded a5=failed:exit code 3 a6=succeeded a7=succeeded a8=succeeded"
is "a7's runtime env reached the run through the batch" "$(run_field "$run2" "runtime_envs->>'VERSION'")" 7
is "a1's output was shipped before its report" \
	"$(q "SELECT string_agg(chunk, '') FROM pipeline.job_task_log(:'t')" "t=$(task_id "$run2" par a1)")" "one"
wait_until 10 _batch_calls_ge 1 || true
n=$(($(calls update_job_task_statuses) - batch0))
cmp_num "the final reports went through update_job_task_statuses ($n calls for 8 tasks)" "$n" -ge 1
cmp_num "... at most one call per task" "$n" -le 8
is "no call of the single update_job_task_status" "$(($(calls update_job_task_status) - single0))" 0
t_done
