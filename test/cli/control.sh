#!/usr/bin/env bash
# control: the control plane of pipelinectl (SPEC §12) against a real cluster and a real runner:
#   run (-p, --label, --dry-run, --queue, --priority, --watch), ls, status, cancel, retry, approve, deny, play,
#   logs --run (task headers, attempt markers), the --json of ls, status and logs (parsed), and
#   the exit status 0 / 1 / 2 of each command in each situation.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

P=$T_ID
M=$(marker_digits)
track_marker "sleep 30.$M"
# pctl ARGS...: runs pipelinectl; sets RC, OUT (stdout) and ERR (stderr)
pctl() {
	RC=0
	"$PIPELINECTL" "$@" >"$T_DIR/out" 2>"$T_DIR/err" || RC=$?
	OUT=$(cat "$T_DIR/out")
	ERR=$(cat "$T_DIR/err")
}
# jq_py JSON EXPR: EXPR over d = the parsed JSON (fails if JSON does not parse)
jq_py() { jget "$1" "$2"; }
valid_json() { python3 -m json.tool >/dev/null 2>&1 <<<"$1"; }

cat >"$T_DIR/defs.yaml" <<EOF
kind: pipeline
name: ${P}_ok
stages:
  - name: s1
    tasks:
      - name: hello
        job:
          labels: {cli: "$T_ID"}
          params: [{name: WHO, default: nobody}]
          command: echo "hello \$WHO"
  - name: s2
    tasks:
      - name: after
        job: {labels: {cli: "$T_ID"}, command: echo after}
---
kind: pipeline
name: ${P}_flaky
stages:
  - name: s
    tasks:
      - name: flaky
        job:
          labels: {cli: "$T_ID"}
          retries: 1
          command: |
            if [ -e "$T_DIR/flaky.done" ]; then echo "second try"; exit 0; fi
            touch "$T_DIR/flaky.done"
            echo "first try"
            exit 4
---
kind: pipeline
name: ${P}_fix
stages:
  - name: build
    tasks:
      - name: compile
        job:
          labels: {cli: "$T_ID"}
          command: |
            test -e "$T_DIR/fixed" || { echo "broken build"; exit 3; }
            echo "fixed build"
  - name: ship
    tasks:
      - name: upload
        job: {labels: {cli: "$T_ID"}, command: echo uploaded}
---
kind: pipeline
name: ${P}_gates
stages:
  - name: deploy
    tasks:
      - name: prod
        audit: {enable: true, auditors: [postgres, alice]}
        job: {labels: {cli: "$T_ID"}, command: echo deploying}
  - name: check
    tasks:
      - name: verify
        confirm: {enable: true, checkers: [postgres, bob]}
        job: {labels: {cli: "$T_ID"}, command: echo verified}
---
kind: pipeline
name: ${P}_long
stages:
  - name: s
    tasks:
      - name: sleep
        job: {labels: {cli: "$T_ID"}, command: "echo sleeping; sleep 30.$M"}
---
kind: pipeline
name: ${P}_seq
is_parallel: false
sequence_label: env
stages:
  - name: s
    tasks:
      - name: gated
        audit: {enable: true, auditors: [postgres]}
        job: {labels: {cli: "$T_ID"}, command: echo seq}
EOF
pctl apply -f "$T_DIR/defs.yaml"
is "the definitions apply" "$RC" 0
runner_bg --concurrency 2

# ---------------------------------------------------------------- run, --watch, -p, --label
pctl run "${P}_ok" -p WHO=world --label team=core --label env=test --watch
is "run --watch of a run that succeeds: exit 0" "$RC" 0
ok_run=$(head -n 1 <<<"$OUT")
like "run prints the run id first" "$ok_run" '^[0-9]+$'
like "--watch follows it to its summary" "$(tail -n 1 <<<"$OUT")" "${P}_ok #$ok_run succeeded in .* \\(2/2 tasks done\\)"
is "-p reaches the job" "$("$PIPELINECTL" logs "$(task_id "$ok_run" s1 hello)")" "hello world"
is "--label is stored on the run" "$(run_field "$ok_run" "labels->>'team' || ',' || (labels->>'env')")" "core,test"
is "the run is by the connecting role" "$(run_field "$ok_run" run_by)" "$(q "SELECT current_user")"

pctl run "${P}_ok" --dry-run
is "run --dry-run: exit 0" "$RC" 0
dry=$OUT
is "the dry run is marked" "$(run_field "$dry" dry_run)" t
ok "the dry run succeeds without running anything" wait_run_stage "$dry" succeeded 30
is "a dry-run task has no output" "$("$PIPELINECTL" logs "$(task_id "$dry" s1 hello)")" ""

pctl run "${P}_fix" --watch
is "run --watch of a run that fails: exit 1" "$RC" 1
fix_run=$(head -n 1 <<<"$OUT")
compile=$(task_id "$fix_run" build compile)
like "--watch's summary names the failing task" "$(tail -n 1 <<<"$OUT")" \
	"${P}_fix #$fix_run failed in .*: build\\.compile \\(job task $compile\\) failed: exit code 3$"

pctl run "${P}_missing"
is "run of a pipeline that does not exist: exit 1" "$RC" 1
like "... says so" "$ERR" "pipeline \"${P}_missing\" does not exist"
pctl run "${P}_ok" -p NOEQUALS
is "run -p without NAME=VALUE: exit 2" "$RC" 2
pctl run
is "run without a pipeline: exit 2" "$RC" 2

# ---------------------------------------------------------------- status
pctl status "$fix_run"
is "status of a failed run: exit 1" "$RC" 1
like "status lists the tasks with their ids" "$OUT" "$compile +build\\.compile +failed +1 "
like "status names the failing task" "$OUT" "failed by build\\.compile \\(job task $compile\\): pipelinectl logs $compile"
pctl status "$fix_run" --json
is "status --json: exit 1 as without" "$RC" 1
ok "status --json is one JSON document" valid_json "$OUT"
is "status --json: keys of the document" "$(jq_py "$OUT" 'list(d)')" '["run", "failed_task", "tasks"]'
is "status --json: run keys" "$(jq_py "$OUT" 'list(d["run"])')" \
	'["id", "pipeline", "version", "stage", "message", "params", "labels", "dry_run", "run_by", "created_at", "start_at", "end_at", "duration_s", "tasks_done", "tasks_total"]'
is "status --json: task keys" "$(jq_py "$OUT" 'list(d["tasks"][0])')" \
	'["id", "stage_index", "stage_name", "task_index", "task_name", "job_name", "stage", "attempt", "message", "runner", "gate", "waiting_for", "ignore_failed", "dry_run", "created_at", "start_at", "end_at", "duration_s"]'
is "status --json: the failed task" "$(jq_py "$OUT" '[d["failed_task"]["id"], d["failed_task"]["stage_name"], d["failed_task"]["task_name"]]')" \
	"[$compile, \"build\", \"compile\"]"
is "status --json: stages" "$(jq_py "$OUT" '[t["stage"] for t in d["tasks"]]')" '["failed", "skipped"]'
pctl status "$ok_run"
is "status of a succeeded run: exit 0" "$RC" 0
pctl status 999999999
is "status of a run that does not exist: exit 1" "$RC/$ERR" "1/pipelinectl status: run 999999999 does not exist"
pctl status abc
is "status of a non-id: exit 2" "$RC" 2

# ---------------------------------------------------------------- retry
pctl retry "$(task_id "$fix_run" ship upload)"
is "retry of a skipped task: exit 1 (the engine refuses)" "$RC" 1
like "... with the engine's reason" "$ERR" "only a failed or canceled task can be retried"
touch "$T_DIR/fixed"
pctl retry "$compile"
is "retry of the failed task: exit 0" "$RC/$OUT" "0/job task $compile: scheduling (attempt 2)"
ok "the retried run succeeds" wait_run_stage "$fix_run" succeeded 30
pctl status "$fix_run"
is "status after the retry: exit 0" "$RC" 0

# ---------------------------------------------------------------- logs --run: headers and attempt markers
pctl logs --run "$fix_run"
is "logs --run: exit 0" "$RC" 0
is "logs --run: a header per task, a marker before each attempt" "$OUT" \
	"== build.compile (job task $compile, attempt 2) ==
-- attempt 1 --
broken build
-- attempt 2 --
fixed build
== ship.upload (job task $(task_id "$fix_run" ship upload), attempt 1) ==
uploaded"
flaky_run=$(q "SELECT pipeline.run_pipeline(:'p')" "p=${P}_flaky")
ok "the flaky run succeeds on its second attempt (retries: 1)" wait_run_stage "$flaky_run" succeeded 60
flaky=$(task_id "$flaky_run" s flaky)
pctl logs --run "$flaky_run"
is "logs --run of an automatic retry" "$OUT" \
	"== s.flaky (job task $flaky, attempt 2) ==
-- attempt 1 --
first try
-- attempt 2 --
second try"
pctl logs --run "$flaky_run" --json
ok "logs --run --json is one JSON document" valid_json "$OUT"
is "logs --run --json: the attempts of a task" "$(jq_py "$OUT" '[d["run"], d["tasks"][0]["id"], [(a["attempt"], a["output"]) for a in d["tasks"][0]["attempts"]]]')" \
	"[$flaky_run, $flaky, [[1, \"first try\\n\"], [2, \"second try\\n\"]]]"
pctl logs "$flaky" --json
is "logs JOB_TASK --json: the same for one task" "$(jq_py "$OUT" '[len(d["tasks"]), d["tasks"][0]["task_name"], d["tasks"][0]["attempt"]]')" \
	'[1, "flaky", 2]'
# a role with the README's operator read grants (no SELECT on the table pipeline.event)
q "DROP ROLE IF EXISTS ${P}_op; CREATE ROLE ${P}_op LOGIN;
   GRANT USAGE ON SCHEMA pipeline TO ${P}_op;
   GRANT EXECUTE ON FUNCTION pipeline.mask_params(jsonb, text[]), pipeline.job_task_log(bigint) TO ${P}_op;
   GRANT SELECT ON pipeline.job_tasks, pipeline.pipeline_tasks TO ${P}_op" >/dev/null 2>&1
on_exit "q 'DROP OWNED BY ${P}_op; DROP ROLE IF EXISTS ${P}_op' >/dev/null 2>&1"
PGUSER=${P}_op pctl logs --run "$fix_run"
is "logs --run by an operator role: exit 0" "$RC" 0
is "... the output without attempt markers" "$OUT" \
	"== build.compile (job task $compile, attempt 2) ==
broken build
fixed build
== ship.upload (job task $(task_id "$fix_run" ship upload), attempt 1) ==
uploaded"
like "... and a note saying why" "$ERR" "may not read pipeline.event: the attempts of a retried task are not told apart"
PGUSER=${P}_op pctl status "$fix_run" --json
is "status --json by an operator role: exit 0" "$RC" 0
PGUSER=${P}_op pctl ls --limit 1
is "ls by an operator role: exit 0" "$RC" 0
pctl logs --run 999999999
is "logs --run of a run that does not exist: exit 1" "$RC" 1
pctl logs --run "$flaky_run" --follow
is "logs --run --follow: exit 2" "$RC" 2

# ---------------------------------------------------------------- gates: approve, deny
pctl run "${P}_gates"
gates=$OUT
prod=$(task_id "$gates" deploy prod)
verify=$(task_id "$gates" check verify)
_gate_is() { [[ $(task_field "$1" "coalesce(gate, '-')") == "$2" ]]; }
ok "the audit gate waits" wait_until 20 _gate_is "$prod" audit
pctl status "$gates"
like "status shows who must act on the audit gate" "$OUT" "$prod +deploy\\.prod +pending +1 +waiting for approval \\(audit gate\\) by: postgres, alice"
pctl status "$gates" --json
is "status --json: waiting_for" "$(jq_py "$OUT" '[(t["gate"], t["waiting_for"]) for t in d["tasks"]]')" \
	'[["audit", ["postgres", "alice"]], [null, null]]'
pctl approve "$verify"
is "approve of a task that waits at no gate: exit 1" "$RC/$ERR" "1/pipelinectl approve: job task $verify is not waiting at a gate (it is pending)"
q "DROP ROLE IF EXISTS ${P}_eve; CREATE ROLE ${P}_eve LOGIN" >/dev/null 2>&1
on_exit "q 'DROP ROLE IF EXISTS ${P}_eve' >/dev/null 2>&1"
PGUSER=${P}_eve pctl approve "$prod"
is "approve by a role without the grants: exit 2" "$RC" 2
pctl approve "$prod" --comment "go"
is "approve at the audit gate: exit 0" "$RC/$OUT" "0/job task $prod: approved (audit gate); now scheduling"
is "the comment is stored with the gate's result" "$(task_field "$prod" "gate_result->'audit'->>'comment'")" go
ok "the confirm gate waits after verify ran" wait_until 30 _gate_is "$verify" confirm
pctl status "$gates"
like "status shows who must confirm" "$OUT" "waiting for confirmation \\(confirm gate\\) by: postgres, bob"
pctl deny "$verify"
is "deny without a comment: exit 2" "$RC" 2
pctl deny "$verify" --comment "numbers look wrong"
is "deny at the confirm gate: exit 0" "$RC/$OUT" "0/job task $verify: denied (confirm gate); now failed"
ok "the denied run fails" wait_run_stage "$gates" failed 20
pctl status "$gates"
is "status of the denied run: exit 1" "$RC" 1
pctl approve 999999999
is "approve of a task that does not exist: exit 1" "$RC" 1

# ---------------------------------------------------------------- cancel
pctl run "${P}_long"
long_run=$OUT
ok "the long task runs" wait_until 30 has_process "sleep 30.$M"
pctl cancel "$long_run" --reason "not today"
is "cancel: exit 0" "$RC" 0
like "cancel says what happened" "$OUT" "^run $long_run: (canceled|canceling)$"
ok "the canceled run ends canceled" wait_run_stage "$long_run" canceled 30
ok "its command was stopped" wait_until 10 no_process "sleep 30.$M"
is "the reason is the run's message" "$(run_field "$long_run" message)" "not today"
pctl status "$long_run"
is "status of a canceled run: exit 1" "$RC" 1
pctl cancel "$long_run"
is "cancel of a finished run: exit 1" "$RC" 1
pctl cancel 999999999
is "cancel of a run that does not exist: exit 1" "$RC" 1

# ---------------------------------------------------------------- --queue
s1=$(q "SELECT pipeline.run_pipeline(:'p', labels => '{\"env\": \"t\"}')" "p=${P}_seq")
pctl run "${P}_seq" --label env=t
is "a second run of a busy sequence: exit 1" "$RC" 1
like "... the engine says why" "$ERR" "is still unfinished"
pctl run "${P}_seq" --label env=t --queue
is "run --queue of a busy sequence: exit 0" "$RC" 0
s2=$OUT
is "the queued run waits pending" "$(run_stage "$s2")" pending
pctl cancel "$s1"
ok "the queued run starts once the first ends" wait_run_stage "$s2" active 20
pctl cancel "$s2"

# ---------------------------------------------------------------- --priority
pctl run "${P}_seq" --label env=prio --priority 7
is "run --priority: exit 0" "$RC" 0
is "the run's tasks carry the priority" \
	"$(q "SELECT string_agg(DISTINCT priority::text, ',') FROM pipeline.job_task WHERE pipeline_task_id = $OUT")" 7
pctl cancel "$OUT"
pctl run "${P}_seq" --label env=prio
is "run without --priority: priority 0" \
	"$(q "SELECT string_agg(DISTINCT priority::text, ',') FROM pipeline.job_task WHERE pipeline_task_id = $OUT")" 0
pctl cancel "$OUT"
pctl run "${P}_seq" --label env=prio --priority high
is "run --priority high: exit 2" "$RC" 2
like "... naming the option" "$ERR" "--priority must be an integer from -1000000 to 1000000"

# ---------------------------------------------------------------- ls
pctl ls --pipeline "${P}_ok"
is "ls: exit 0" "$RC" 0
like "ls lists the runs of a pipeline, newest first" "$OUT" "^RUN +PIPELINE +STAGE +TASKS +CREATED +DURATION +BY +MESSAGE"$'\n'"$dry +${P}_ok v1 +succeeded +2/2 "
is "ls --pipeline lists only that pipeline's runs" "$(tail -n +2 <<<"$OUT" | wc -l)" 2
pctl ls --pipeline "${P}_ok" --limit 1 --json
ok "ls --json is one JSON document" valid_json "$OUT"
is "ls --json: --limit 1 gives the newest" "$(jq_py "$OUT" '[r["id"] for r in d["runs"]]')" "[$dry]"
is "ls --json: run keys" "$(jq_py "$OUT" 'list(d["runs"][0])')" \
	'["id", "pipeline", "version", "stage", "message", "params", "labels", "dry_run", "run_by", "created_at", "start_at", "end_at", "duration_s", "tasks_done", "tasks_total"]'
pctl ls --pipeline "${P}_gates" --stage failed --json
is "ls --stage failed" "$(jq_py "$OUT" '[r["id"] for r in d["runs"]]')" "[$gates]"
pctl ls --pipeline "${P}_nothing" --json
is "ls of nothing: an empty list" "$RC/$OUT" '0/{"runs" : []}'
pctl ls --stage bogus
is "ls --stage of a stage that does not exist: exit 2" "$RC" 2
pctl ls --limit 0
is "ls --limit 0: exit 2" "$RC" 2

# ---------------------------------------------------------------- play
if [[ $(q "SELECT to_regprocedure('pipeline.play_job_task(bigint)') IS NULL") == t ]]; then
	pctl play "$prod"
	is "play without pipeline.play_job_task in the engine: exit 2" "$RC" 2
	like "... says what is missing and what to do" "$ERR" "has no pipeline.play_job_task\\(bigint\\).*ALTER EXTENSION pipeline UPDATE"
else
	pctl play "$prod"
	is "play of a task that is not manual: exit 1 (the engine refuses)" "$RC" 1
fi

# ---------------------------------------------------------------- exit 2: set-up and connection
for c in "ls" "status $ok_run" "run ${P}_ok" "cancel $ok_run" "retry $compile" "approve $prod" \
	"deny $prod --comment x" "play $prod" "logs --run $ok_run"; do
	# shellcheck disable=SC2086
	pctl -d dbname=postgres $c
	is "$c on a database without the extension: exit 2" "$RC" 2
	like "$c on a database without the extension: says what to do" "$ERR" "run CREATE EXTENSION pipeline"
	# shellcheck disable=SC2086
	pctl -d "host=/nonexistent port=1" $c
	is "$c without a server: exit 2" "$RC" 2
done

t_done
