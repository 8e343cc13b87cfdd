#!/usr/bin/env bash
# hookd_empty: a receiver answering 204 No Content, or 200 with an empty body (issue 9 item 1).
# Both are successes: each delivery is recorded at once (complete_hook_delivery accepts it),
# status succeeded, attempts 1, http_code 204 / 200, the stored response is the empty string
# (not heap bytes), the receiver gets exactly one request each,
# and hookd is valgrind-clean on that path (no use of uninitialised memory).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

L='{"cli": "'$T_ID'"}'
receiver_start 60
P204=/status/204/$T_ID
PEMPTY=/empty/$T_ID

define_pipeline '{"name": "'$T_ID'",
  "webhooks": [{"url": "'$RECV_URL$P204'", "events": ["succeeded"]},
               {"url": "'$RECV_URL$PEMPTY'", "events": ["succeeded"], "secret": "empty-secret"}],
  "stages": [{"name": "s", "tasks": [{"name": "t", "job": {"command": "true", "labels": '"$L"'}}]}]}'
run=$(run_pipeline "$T_ID")
ok "the runner runs the pipeline" runner_once
is "the run succeeded" "$(run_stage "$run")" succeeded
is "two deliveries" "$(q "SELECT count(*) FROM pipeline.deliveries WHERE pipeline_task_id = :'run'" "run=$run")" 2

VG=()
if command -v valgrind >/dev/null; then
	VG=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
		--show-leak-kinds=definite,indirect --log-file="$T_DIR/vg-hookd.log")
fi
rc=0
timeout -k 5 90 "${VG[@]}" "$PIPELINECTL" hookd --exit-when-idle --poll-interval 0.2 --lease 20 \
	--name "$T_ID-hookd" </dev/null >>"$T_DIR/hookd.log" 2>&1 || rc=$?
is "hookd --exit-when-idle exits 0 (under valgrind when installed)" "$rc" 0
if ((${#VG[@]})); then
	is "valgrind reports nothing" "$(grep -v '^==[0-9]*== *$' "$T_DIR/vg-hookd.log" 2>/dev/null | head -n 40)" ""
fi

d_of() { q "SELECT status || '|' || attempts || '|' || coalesce(http_code::text, '-') || '|' || coalesce(response, '<null>')
              FROM pipeline.deliveries WHERE pipeline_task_id = :'run' AND target->>'url' LIKE '%' || :'p'" "run=$run" "p=$1"; }
is "204: succeeded at the first attempt, empty response" "$(d_of "$P204")" "succeeded|1|204|"
is "200 with an empty body: succeeded at the first attempt, empty response" "$(d_of "$PEMPTY")" "succeeded|1|200|"
is "nothing is left sending or pending" \
	"$(q "SELECT count(*) FROM pipeline.hook_delivery WHERE pipeline_task_id = :'run' AND status IN ('pending', 'sending')" "run=$run")" 0
unlike "hookd logged no failure to record a result" "$(cat "$T_DIR/hookd.log")" "cannot record the result|22021"
is "the receiver got one request on each path" "$(recv_count "$P204") $(recv_count "$PEMPTY")" "1 1"
t_done
