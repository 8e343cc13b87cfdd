#!/usr/bin/env bash
# valgrind: pipelinectl's long-running loops and one-shot commands under
# valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99:
#   - "runner --exit-when-idle" over a small pipeline that goes through the main paths (output
#     and runtime envs, a failing command, a timeout, heartbeats, a cancel mid-run);
#   - "hookd --exit-when-idle" over its deliveries (a signed webhook with a custom header, Feishu
#     and DingTalk robots with secrets, WeCom, a refusing robot, a 500, a mention, a task hook);
#   - watch (a finished run), logs, graph (dot and mermaid), sign;
#   - apply (a YAML file, and a directory with a refused document), lint --offline, run, ls
#     (table and --json), status --json, logs --run (text and --json).
# Each must exit 0: no memory error, no definitely or indirectly lost block ("still reachable"
# memory of libcurl/OpenSSL is not counted).  The runs themselves must have done their work.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

command -v valgrind >/dev/null || { fail "valgrind is installed (scripts/lib.sh installs it)"; exit 1; }
M=$(marker_digits)
L='{"cli": "'$T_ID'"}'
track_marker "sleep 30.$M"
track_marker "sleep 20.$M"
receiver_start 90
U=$RECV_URL

VG=(valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99
	--show-leak-kinds=definite,indirect --track-fds=no)
# vg NAME ARGS...: pipelinectl ARGS under valgrind, its report in $T_DIR/vg-NAME.log (stdout to
# $T_DIR/NAME.out); sets VG_RC
vg() {
	local name=$1
	shift
	VG_RC=0
	TMPDIR=$T_DIR/tmp timeout -k 5 120 "${VG[@]}" --log-file="$T_DIR/vg-$name.log" \
		"$PIPELINECTL" "$@" </dev/null >"$T_DIR/$name.out" 2>>"$T_DIR/$name.err" || VG_RC=$?
}
# vg_clean NAME DESC: the valgrind run exited 0 and its report is empty (-q: errors only)
vg_clean() {
	is "$2: exit 0 under valgrind" "$VG_RC" 0
	is "$2: valgrind reports nothing" "$(grep -v '^==[0-9]*== *$' "$T_DIR/vg-$1.log" 2>/dev/null | head -n 40)" ""
}

out_cmd=$(json_str 'echo "line one"; echo "line two" >&2; echo VERSION=9.9 >> "$PIPELINE_OUTPUT"; sleep 1.5')
define_pipeline '{"name": "'$T_ID'",
  "webhooks": [{"url": "'$U'/ok/'$T_ID'", "secret": "vg-secret", "headers": {"X-Custom": "v"}},
               {"url": "'$U'/status/500/'$T_ID'", "events": ["succeeded"]}],
  "im_robot_notify": [
    {"url": "'$U'/robot/feishu/'$T_ID'",   "robot": "feishu",   "secret": "fs", "events": ["succeeded"]},
    {"url": "'$U'/robot/dingtalk/'$T_ID'", "robot": "dingtalk", "secret": "dt", "events": ["succeeded"]},
    {"url": "'$U'/robot/wecom/'$T_ID'",    "robot": "wecom",    "events": ["succeeded"]},
    {"url": "'$U'/robot/error/'$T_ID'",    "robot": "dingtalk", "events": ["succeeded"]}],
  "mention_users": [{"user": "carol", "notify_types": ["email"], "events": ["succeeded"]}],
  "stages": [
    {"name": "s1", "is_parallel": true, "tasks": [
        {"name": "out",  "job": {"command": '"$out_cmd"', "labels": '"$L"'},
         "webhooks": [{"url": "'$U'/ok/task/'$T_ID'", "events": ["succeeded"]}]},
        {"name": "bad",  "job": {"command": "echo failing; exit 2", "labels": '"$L"'}, "ignore_failed": true}]},
    {"name": "s2", "tasks": [
        {"name": "slow", "job": {"command": "sleep 20.'$M'", "timeout": 1, "labels": '"$L"'}, "ignore_failed": true}]},
    {"name": "s3", "tasks": [
        {"name": "last", "job": {"command": "echo \"v=$VERSION\"", "labels": '"$L"'}}]}]}'
define_pipeline '{"name": "'$T_ID'_cancel", "stages": [{"name": "s", "tasks": [
    {"name": "long", "job": {"command": "echo waiting; sleep 30.'$M'", "labels": '"$L"'}}]}]}'

run=$(run_pipeline "$T_ID")
crun=$(run_pipeline "${T_ID}_cancel")
long=$(task_id "$crun" s long)

# ---------------------------------------------------------------- runner
(vg runner runner --exit-when-idle --labels "cli=$T_ID" --concurrency 3 --poll-interval 0.2 \
	--heartbeat 0.5 --name "$T_ID-runner"; echo "$VG_RC" >"$T_DIR/runner.rc") &
vgpid=$!
T_BG_PIDS+=("$vgpid")
ok "the long task runs under the valgrind runner" wait_until 60 has_process "sleep 30.$M"
q "SELECT pipeline.cancel_pipeline_task(:'run', 'canceled by the valgrind test')" "run=$crun" >/dev/null
bg_wait "$vgpid" 110
VG_RC=$(cat "$T_DIR/runner.rc" 2>/dev/null || echo "none")
vg_clean runner "runner --exit-when-idle"
is "the run's tasks: out, bad, slow, last" \
	"$(q "SELECT string_agg(task_name || '=' || stage || coalesce(':' || message, ''), ' ' ORDER BY stage_index, task_index)
	       FROM pipeline.job_tasks WHERE pipeline_task_id = :'run'" "run=$run")" \
	"out=succeeded bad=failed:exit code 2 slow=failed:timeout after 1 s last=succeeded"
is "the run succeeded (failures ignored)" "$(run_stage "$run")" succeeded
like "output stored (stdout and stderr)" "$("$PIPELINECTL" logs "$(task_id "$run" s1 out)")" "line one"$'\n'"line two"
like "the runtime env reached the last stage" "$("$PIPELINECTL" logs "$(task_id "$run" s3 last)")" "v=9.9"
is "the canceled task was stopped and reported canceled" "$(task_stage "$long")" canceled
ok "no process of the canceled command is left" no_process "sleep 30.$M"
ok "no process of the timed-out command is left" no_process "sleep 20.$M"

# ---------------------------------------------------------------- hookd
vg hookd hookd --exit-when-idle --poll-interval 0.2 --name "$T_ID-hookd"
vg_clean hookd "hookd --exit-when-idle"
is "hookd sent every due delivery (none left pending with no attempt)" \
	"$(q "SELECT count(*) FROM pipeline.hook_delivery WHERE pipeline_task_id = :'run' AND attempts = 0" "run=$run")" 0
is "deliveries by outcome: succeeded / retry pending (the 500 and the refusing robot)" \
	"$(q "SELECT count(*) FILTER (WHERE status = 'succeeded') || '/' || count(*) FILTER (WHERE status = 'pending' AND attempts = 1)
	       FROM pipeline.hook_delivery WHERE pipeline_task_id = :'run'" "run=$run")" \
	"$(q "SELECT (count(*) - 2) || '/2' FROM pipeline.hook_delivery WHERE pipeline_task_id = :'run'" "run=$run")"
is "the receiver got every delivered webhook" "$(recv_count /ok/)" \
	"$(q "SELECT count(*) FROM pipeline.hook_delivery WHERE pipeline_task_id = :'run' AND status = 'succeeded'
	       AND target->>'url' LIKE '%/ok/%'" "run=$run")"
like "the signed DingTalk robot URL carries timestamp and sign" "$(jget "$(recv_request "/robot/dingtalk/$T_ID")" 'd["query"]')" \
	'^timestamp=[0-9]+&sign=.+'
is "the signed Feishu card carries timestamp and sign" \
	"$(jget "$(jget "$(recv_request "/robot/feishu/$T_ID")" 'd["body"]')" '"timestamp" in d and "sign" in d')" true

# ---------------------------------------------------------------- one-shot commands
vg watch watch "$run"
vg_clean watch "watch (finished run)"
like "watch printed the summary" "$(tail -n 1 "$T_DIR/watch.out")" "succeeded in"
vg watch_canceled watch "$crun"
is "watch of the canceled run: exit 1 under valgrind" "$VG_RC" 1
is "watch of the canceled run: valgrind reports nothing" "$(grep -v '^==[0-9]*== *$' "$T_DIR/vg-watch_canceled.log" | head -n 40)" ""
vg logs logs "$(task_id "$run" s1 out)"
vg_clean logs "logs"
like "logs printed the output" "$(cat "$T_DIR/logs.out")" "line one"
vg graph_dot graph "$run" --format dot
vg_clean graph_dot "graph --format dot"
ok "graph --format dot renders" dot -Tpng "$T_DIR/graph_dot.out" -o "$T_DIR/graph.png"
vg graph_mermaid graph "$run"
vg_clean graph_mermaid "graph (mermaid)"
printf '{"a": 1}' >"$T_DIR/sign.in"
VG_RC=0
TMPDIR=$T_DIR/tmp "${VG[@]}" --log-file="$T_DIR/vg-sign.log" "$PIPELINECTL" sign key <"$T_DIR/sign.in" \
	>"$T_DIR/sign.out" 2>&1 || VG_RC=$?
vg_clean sign "sign"
is "sign prints the signature" "$(cat "$T_DIR/sign.out")" \
	"sha256=$(openssl dgst -sha256 -hmac key -r <"$T_DIR/sign.in" | cut -d' ' -f1)"

# ---------------------------------------------------------------- apply, run, ls and friends
mkdir -p "$T_DIR/yaml"
cat >"$T_DIR/yaml/a.yaml" <<EOF
kind: job
name: ${T_ID}_vgjob
labels: {cli: "$T_ID"}
params: [{name: WHO, default: x}]
command: |
  echo "vg \$WHO"
---
kind: pipeline
name: ${T_ID}_vg
stages: [{name: s, tasks: [{name: t, job: ${T_ID}_vgjob}]}]
EOF
printf 'kind: pipeline\nname: %s_bad\nstages:\n  - name: s\n    tasks: [{name: t, job: %s_none}]\n' "$T_ID" "$T_ID" >"$T_DIR/yaml/b.yaml"
vg apply_ok apply -f "$T_DIR/yaml/a.yaml"
vg_clean apply_ok "apply"
vg apply_bad apply -f "$T_DIR/yaml"
is "apply of a refused document: exit 1 under valgrind" "$VG_RC" 1
is "apply of a refused document: valgrind reports nothing" "$(grep -v '^==[0-9]*== *$' "$T_DIR/vg-apply_bad.log" | head -n 40)" ""
like "... and the refusal was printed" "$(cat "$T_DIR/apply_bad.err")" "b.yaml:5:"
printf 'kind: job\nname: x\nlabels: [a, b\n\nx: 1\n' >"$T_DIR/syntax.yaml"
vg lint_syntax lint --offline "$T_DIR/syntax.yaml"
is "lint --offline of a YAML syntax error: exit 1 under valgrind" "$VG_RC" 1
is "lint --offline of a YAML syntax error: valgrind reports nothing" "$(grep -v '^==[0-9]*== *$' "$T_DIR/vg-lint_syntax.log" | head -n 40)" ""
printf 'kind: job\nname: &n x\ncommand: *n\nparams: [{name: A, default: !!str 1}]\n---\nkind: job\nname: y\ncommand: *n\n' >"$T_DIR/alias.yaml"
vg lint_alias lint --offline "$T_DIR/alias.yaml"
is "lint --offline of anchors, a tag and an alias to another document's anchor: exit 1 under valgrind" "$VG_RC" 1
is "lint --offline of aliases: valgrind reports nothing" "$(grep -v '^==[0-9]*== *$' "$T_DIR/vg-lint_alias.log" | head -n 40)" ""
like "an alias to an anchor of another document is refused" "$(cat "$T_DIR/lint_alias.err")" "alias.yaml:8:10: alias \\*n names no complete anchor"
printf 'a: 1\na: 2\n' >"$T_DIR/dup.yaml"
vg lint_offline lint --offline "$T_DIR/dup.yaml"
is "lint --offline of a duplicate key: exit 1 under valgrind" "$VG_RC" 1
is "lint --offline: valgrind reports nothing" "$(grep -v '^==[0-9]*== *$' "$T_DIR/vg-lint_offline.log" | head -n 40)" ""
vg run run "${T_ID}_vg" -p WHO=valgrind --label k=v
vg_clean run "run"
vrun=$(cat "$T_DIR/run.out")
runner_once
is "the run started under valgrind succeeded" "$(run_stage "$vrun")" succeeded
vg ls ls --limit 5
vg_clean ls "ls"
like "ls lists the run" "$(cat "$T_DIR/ls.out")" "$vrun +${T_ID}_vg v1 +succeeded"
vg ls_json ls --json --pipeline "${T_ID}_vg"
vg_clean ls_json "ls --json"
vg status_json status "$vrun" --json
vg_clean status_json "status --json"
vg logs_run logs --run "$vrun"
vg_clean logs_run "logs --run"
is "logs --run printed the task" "$(cat "$T_DIR/logs_run.out")" "== s.t (job task $(task_id "$vrun" s t), attempt 1) ==
vg valgrind"
vg logs_run_json logs --run "$vrun" --json
vg_clean logs_run_json "logs --run --json"

t_done
