#!/usr/bin/env bash
# dag: SPEC §13 through pipelinectl against a real cluster and a real runner:
#   - apply of YAML with needs, matrix, when, blocking and if stores them (the engine validates);
#     a YAML cycle, missing need or bad regex is refused: exit 1, the message naming the path;
#   - a run: the matrix job tasks run with their params, the task skipped by `if` is skipped,
#     `watch` shows the task waiting for its needs and the manual task waiting for a play;
#   - `pipelinectl play` plays the real manual task (blocking: the run waits for it), the runner
#     runs it and the run succeeds; play of a task that is not manual: exit 1.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

P=$T_ID
# watch_now RUN: what watch prints at first (plain lines: stdout is not a terminal), in OUT
watch_now() {
	timeout -s INT 3 "$PIPELINECTL" watch "$1" </dev/null >"$T_DIR/watch.out" 2>&1 || true
	OUT=$(cat "$T_DIR/watch.out")
	note "watch $1 printed:"
	sed 's/^/#   /' <<<"$OUT"
}
pctl() {
	RC=0
	"$PIPELINECTL" "$@" >"$T_DIR/out" 2>"$T_DIR/err" || RC=$?
	OUT=$(cat "$T_DIR/out")
	ERR=$(cat "$T_DIR/err")
}

cat >"$T_DIR/dag.yaml" <<EOF2
kind: pipeline
name: ${P}_dag
stages:
  - name: build
    is_parallel: true
    tasks:
      - name: compile
        matrix: {OS: [linux, mac]}
        job: {labels: {cli: "$T_ID"}, command: 'echo "built for \$OS"; sleep 1'}
      - name: docs
        if: {WITH_DOCS: "^yes$"}
        job: {labels: {cli: "$T_ID"}, command: echo docs}
  - name: test
    tasks:
      - name: unit
        needs: [build.compile]
        job: {labels: {cli: "$T_ID"}, command: echo unit}
  - name: release
    is_parallel: true
    tasks:
      - name: go
        when: manual
        blocking: true
        job: {labels: {cli: "$T_ID"}, command: echo released}
      - name: cleanup
        when: always
        job: {labels: {cli: "$T_ID"}, command: echo cleaned}
EOF2
pctl apply -f "$T_DIR/dag.yaml"
is "apply of a pipeline with needs/matrix/when/blocking/if: exit 0" "$RC" 0
is "the §13 fields are stored" \
	"$(q "SELECT (definition->'stages'->1->'tasks'->0->'needs') || (definition->'stages'->2->'tasks'->0->'when')
	      || (definition->'stages'->0->'tasks'->0->'matrix'->'OS')
	      FROM pipeline.pipeline WHERE name = :'n'" "n=${P}_dag")" \
	'["build.compile", "manual", "linux", "mac"]'

bad() {
	local what=$1 yaml=$2 want=$3
	printf '%s\n' "$yaml" >"$T_DIR/bad.yaml"
	pctl apply -f "$T_DIR/bad.yaml"
	is "apply of $what: exit 1" "$RC" 1
	like "... the engine's message names the path" "$ERR" "$want"
}
bad "a cycle" "kind: pipeline
name: ${P}_cycle
stages:
  - name: s
    is_parallel: true
    tasks:
      - {name: build, needs: [test], job: {command: 'true'}}
      - {name: test, needs: [build], job: {command: 'true'}}" \
	'stages\[0\]\.tasks\[0\]\.needs: cycle build -> test -> build'
bad "a missing need" "kind: pipeline
name: ${P}_missing
stages:
  - name: s
    tasks:
      - {name: a, needs: [nope], job: {command: 'true'}}" \
	'stages\[0\]\.tasks\[0\]\.needs\[0\]: "nope": there is no task "nope" in stage "s"'
bad "a bad regex" "kind: pipeline
name: ${P}_regex
stages:
  - name: s
    tasks:
      - {name: a, if: {ENV: '(prod'}, job: {command: 'true'}}" \
	'stages\[0\]\.tasks\[0\]\.if\.ENV: invalid regular expression'
is "nothing refused was stored" \
	"$(q "SELECT count(*) FROM pipeline.pipeline WHERE name LIKE :'n'" "n=${P}_%")" 1

# ---------------------------------------------------------------- a run, watched
pctl run "${P}_dag"
is "run: exit 0" "$RC" 0
run=$OUT
watch_now "$run"
like "watch shows unit waiting for its needs (both matrix job tasks)" "$OUT" \
	'test/unit .*pending .*waiting for build/compile\[OS=linux\], build/compile\[OS=mac\]'
like "watch shows docs skipped by its if" "$OUT" 'build/docs .*skipped'

runner_bg --concurrency 2
ok "the run reaches its blocking manual task" wait_task_stage "$(task_id "$run" test unit)" succeeded 30
ok "cleanup (always) ran" wait_task_stage "$(task_id "$run" release cleanup)" succeeded 30
go=$(task_id "$run" release go)
is "go waits, pending, for a play" "$(task_stage "$go")" pending
is "the run waits for it (blocking)" "$(run_stage "$run")" active
watch_now "$run"
like "watch says how to play it" "$OUT" "release/go .*pending .*manual: pipelinectl play $go"
is "the matrix job tasks ran with their params" \
	"$("$PIPELINECTL" logs "$(q "SELECT id FROM pipeline.job_tasks WHERE pipeline_task_id = :'r' AND task_name = 'compile[OS=mac]'" "r=$run")")" \
	"built for mac"

pctl play "$(task_id "$run" test unit)"
is "play of a task that is not manual: exit 1" "$RC" 1
like "... the engine says why" "$ERR" "is not a manual task"
pctl play "$go"
is "play of the manual task: exit 0" "$RC" 0
like "... says it was played" "$OUT" "job task $go: played; now scheduling"
ok "the runner runs it and the run succeeds" wait_run_stage "$run" succeeded 30
is "its output" "$("$PIPELINECTL" logs "$go")" "released"
pctl play "$go"
is "play of a task already played: exit 1" "$RC" 1

t_done
