#!/usr/bin/env bash
# runtime_env_reserved: issue 9 item 5 - runtime envs cannot poison later jobs.  A first job
# plants a "date" that prints the secret it finds, and writes PATH=<its directory>:$PATH to
# $PIPELINE_OUTPUT (another writes LD_PRELOAD=...; a third a harmless VERSION=7).  Both
# poisoners fail with 'runtime env "PATH" may not be set by a job (reserved name)' (resp.
# LD_PRELOAD) and report no runtime envs; the later job, holding a sensitive param, runs the
# real date: the attacker's never runs and the secret is not written anywhere; VERSION still
# reaches it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

M=$(marker_digits)
EVIL=$T_DIR/evil
SECRET="s3cr3t-$M"
L='{"cli": "'$T_ID'"}'
poison=$(json_str 'mkdir -p "$EVIL"
printf "#!/bin/sh\necho EVIL-DATE-RAN \"\$SECRET\" > \"$EVIL/leak\"; echo EVIL-DATE-RAN\n" > "$EVIL/date"
chmod +x "$EVIL/date"
echo "PATH=$EVIL:$PATH" >> "$PIPELINE_OUTPUT"')
preload=$(json_str 'echo "LD_PRELOAD=$EVIL/x.so" >> "$PIPELINE_OUTPUT"')
fine=$(json_str 'echo VERSION=7 >> "$PIPELINE_OUTPUT"')
victim=$(json_str 'echo "version=$VERSION"; date +%Y >/dev/null && echo date-ok; command -v date')
define_pipeline '{"name": "'$T_ID'", "stages": [
  {"name": "one", "is_parallel": true, "tasks": [
     {"name": "poison", "ignore_failed": true,
      "job": {"command": '"$poison"', "labels": '"$L"', "params": [{"name": "EVIL", "default": "'$EVIL'"}]}},
     {"name": "preload", "ignore_failed": true,
      "job": {"command": '"$preload"', "labels": '"$L"', "params": [{"name": "EVIL", "default": "'$EVIL'"}]}},
     {"name": "fine", "job": {"command": '"$fine"', "labels": '"$L"'}}]},
  {"name": "two", "tasks": [
     {"name": "victim", "job": {"command": '"$victim"', "labels": '"$L"',
      "params": [{"name": "SECRET", "default": "'$SECRET'", "sensitive": true}]}}]}]}'
run=$(run_pipeline "$T_ID")
ok "the runner runs the pipeline" runner_once
p=$(task_id "$run" one poison)
l=$(task_id "$run" one preload)
v=$(task_id "$run" two victim)
is "the PATH poisoner failed" "$(task_stage "$p")" failed
is "... with a message naming the reserved name" "$(task_field "$p" message)" \
	'runtime env "PATH" may not be set by a job (reserved name)'
is "... and no runtime envs reported" "$(task_field "$p" "coalesce(runtime_envs::text, '{}')")" '{}'
is "the LD_PRELOAD writer failed too" "$(task_field "$l" "stage || ': ' || message")" \
	'failed: runtime env "LD_PRELOAD" may not be set by a job (reserved name)'
is "the run's runtime envs hold no PATH or LD_PRELOAD" \
	"$(run_field "$run" "(runtime_envs ? 'PATH')::text || (runtime_envs ? 'LD_PRELOAD')::text")" falsefalse
is "the later job succeeded" "$(task_stage "$v")" succeeded
out=$("$PIPELINECTL" logs "$v")
like "it ran the real date" "$out" "date-ok"$'\n'"/(usr/)?bin/date"
unlike "the attacker's date never ran" "$out" "EVIL-DATE-RAN"
ok "... and wrote no leak file" test ! -e "$EVIL/leak"
like "a harmless runtime env (VERSION) still reached it" "$out" "version=7"
t_done
