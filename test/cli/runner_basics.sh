#!/usr/bin/env bash
# runner_basics: "pipelinectl runner --exit-when-idle" runs real shell commands (SPEC §11):
#   - exit 0 -> succeeded; exit 3 -> failed with message "exit code 3" and the output's tail in
#     detail; the run fails and the later stage is skipped (its command never runs);
#   - params reach the command as environment variables (a declared default, a run param, the
#     system params), in a fresh, empty work directory under $TMPDIR that is removed afterwards;
#   - NAME=value lines written to $PIPELINE_OUTPUT become runtime envs: VERSION reaches the next
#     stage's command as $VERSION; a lower-case name stays on the job task only;
#   - stdout and stderr are stored and "pipelinectl logs ID" prints them;
#   - a dry run succeeds without running anything (the command would have created a file; a
#     real run of the same pipeline does create it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

M=$(marker_digits)
L='{"cli": "'$T_ID'"}'

# ---------------------------------------------------------------- success, params, runtime envs
build_cmd=$(json_str 'echo "greeting=$GREETING target=$TARGET"
echo "pwd=$(pwd) files=$(ls -A | wc -l)"
echo "ids=$PIPELINE_TASK_ID/$JOB_TASK_ID"
echo "on stderr" >&2
echo VERSION=1.2.3 >> "$PIPELINE_OUTPUT"
echo build_note=internal >> "$PIPELINE_OUTPUT"')
use_cmd=$(json_str 'echo "version=[$VERSION] note=[${build_note:-}]"; test "$VERSION" = 1.2.3')

define_job '{"name": "'$T_ID'_build", "command": '"$build_cmd"', "labels": '"$L"',
             "params": [{"name": "GREETING", "default": "hello"}, {"name": "TARGET", "default": "linux"}]}'
define_pipeline '{"name": "'$T_ID'_ok", "stages": [
    {"name": "build", "tasks": [{"name": "compile", "job": "'$T_ID'_build"}]},
    {"name": "use",   "tasks": [{"name": "consume", "job": {"command": '"$use_cmd"', "labels": '"$L"'}}]}]}'

run=$(run_pipeline "${T_ID}_ok" '{"TARGET": "arm64"}')
note "run $run"
ok "runner --exit-when-idle exits 0" runner_once
is "the run succeeded" "$(run_stage "$run")" succeeded
compile=$(task_id "$run" build compile)
consume=$(task_id "$run" use consume)
is "build.compile succeeded" "$(task_stage "$compile")" succeeded
is "build.compile: detail.exit_code is 0" "$(task_field "$compile" "detail->>'exit_code'")" 0
is "build.compile: no message" "$(task_field "$compile" "coalesce(message, '<null>')")" "<null>"
is "build.compile: ran by this runner" "$(task_field "$compile" runner)" "$T_ID-runner"

rc=0
log=$("$PIPELINECTL" logs "$compile") || rc=$?
is "pipelinectl logs exits 0" "$rc" 0
like "logs: the declared default and the run param are in the environment" "$log" "greeting=hello target=arm64"
like "logs: the system params are in the environment" "$log" "ids=$run/$compile"
like "logs: stderr is stored too" "$log" "on stderr"
workdir=$(sed -n 's/^pwd=\(.*\) files=.*/\1/p' <<<"$log")
like "the work directory is fresh and under \$TMPDIR" "$log" "pwd=$T_DIR/tmp/pipelinectl-$compile-[^/]+/work files=0"
ok "the work directory is removed afterwards" test ! -e "$workdir"
ok "nothing is left under \$TMPDIR" test -z "$(ls -A "$T_DIR/tmp")"

is "build.compile: runtime envs stored on the task (both names)" \
	"$(task_field "$compile" "runtime_envs = '{\"VERSION\": \"1.2.3\", \"build_note\": \"internal\"}'::jsonb")" t
is "the run's runtime envs have VERSION" "$(run_field "$run" "runtime_envs->>'VERSION'")" 1.2.3
is "the lower-case name stays on the job task" "$(run_field "$run" "runtime_envs ? 'build_note'")" f
is "use.consume succeeded" "$(task_stage "$consume")" succeeded
like "use.consume saw \$VERSION and not build_note" "$("$PIPELINECTL" logs "$consume")" 'version=\[1\.2\.3\] note=\[\]'

# ---------------------------------------------------------------- failure
fail_cmd=$(json_str "echo 'first line'; echo 'before the failure $M'; exit 3")
after_cmd=$(json_str "touch '$T_DIR/after-ran'")
define_pipeline '{"name": "'$T_ID'_fail", "stages": [
    {"name": "s1", "tasks": [{"name": "boom",  "job": {"command": '"$fail_cmd"', "labels": '"$L"'}}]},
    {"name": "s2", "tasks": [{"name": "after", "job": {"command": '"$after_cmd"', "labels": '"$L"'}}]}]}'
run=$(run_pipeline "${T_ID}_fail")
ok "runner exits 0 after a failing command" runner_once
boom=$(task_id "$run" s1 boom)
is "exit 3 -> the task failed" "$(task_stage "$boom")" failed
is "its message is 'exit code 3'" "$(task_field "$boom" message)" "exit code 3"
is "detail.exit_code is 3" "$(task_field "$boom" "detail->>'exit_code'")" 3
like "detail.output_tail has the output" "$(task_field "$boom" "detail->>'output_tail'")" "first line"$'\n'"before the failure $M"
is "the run failed" "$(run_stage "$run")" failed
like "the run's message is the task's" "$(run_field "$run" "coalesce(message, '')")" "exit code 3"
is "the next stage is skipped" "$(task_stage "$(task_id "$run" s2 after)")" skipped
ok "the skipped task's command did not run" test ! -e "$T_DIR/after-ran"
like "pipelinectl logs prints a failed task's output" "$("$PIPELINECTL" logs "$boom")" "before the failure $M"

# ---------------------------------------------------------------- dry run
dry_cmd=$(json_str "touch '$T_DIR/dry-marker'; echo ran")
define_pipeline '{"name": "'$T_ID'_dry", "stages": [
    {"name": "s", "tasks": [{"name": "touch", "job": {"command": '"$dry_cmd"', "labels": '"$L"'}}]}]}'
run=$(run_pipeline "${T_ID}_dry" '{}' true)
ok "runner exits 0 on a dry run" runner_once
t=$(task_id "$run" s touch)
is "the dry-run task is a dry run" "$(task_field "$t" dry_run)" t
is "the dry-run task succeeded" "$(task_stage "$t")" succeeded
is "the dry run succeeded" "$(run_stage "$run")" succeeded
ok "the dry run did not run the command (no file)" test ! -e "$T_DIR/dry-marker"
is "the dry run stored no output" "$("$PIPELINECTL" logs "$t")" ""
run=$(run_pipeline "${T_ID}_dry")
ok "runner exits 0 on the real run" runner_once
is "the real run succeeded" "$(run_stage "$run")" succeeded
ok "the real run did run the command (file made)" test -e "$T_DIR/dry-marker"

# ---------------------------------------------------------------- logs of nothing
rc=0
"$PIPELINECTL" logs 999999999 >/dev/null 2>&1 || rc=$?
is "pipelinectl logs of a job task that does not exist exits 1" "$rc" 1

t_done
