#!/usr/bin/env bash
# apply / lint: YAML (and JSON) definitions as code (SPEC §12).
#   - a directory of files defined in one transaction, jobs first (a pipeline may use a job of a
#     later file), block scalars kept byte for byte, plain scalars typed (core schema);
#   - refusals as FILE:LINE:COLUMN: path: reason, the line AND column checked for: a YAML syntax
#     error, an engine refusal deep in stages[1].tasks[0].job, a missing key (its object's
#     position), a duplicate key, a missing kind, an unknown kind;
#   - all or nothing across files; lint stores nothing; lint --offline needs no database;
#   - exit status 0 / 1 (a document refused) / 2 (usage, unreadable file, connection, set-up);
#   - kind: schedule (pipeline.schedule, with pg_cron);
#   - next_pipelines: a pipeline goes after the pipelines of the same apply it chains; a bad
#     "on" refused at its line and column; two documents chaining each other refused, nothing
#     stored (sql/chain.sql has the cycle refusals with their paths).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

P=$T_ID
D=$T_DIR/defs
mkdir -p "$D/ok" "$D/mixed" "$D/empty"
# pctl ARGS...: runs pipelinectl; sets RC, OUT (stdout) and ERR (stderr)
pctl() {
	RC=0
	"$PIPELINECTL" "$@" >"$T_DIR/out" 2>"$T_DIR/err" || RC=$?
	OUT=$(cat "$T_DIR/out")
	ERR=$(cat "$T_DIR/err")
}
versions() { q "SELECT count(*) FROM pipeline.job WHERE name LIKE :'p' || '%'" "p=$P"; }

# ---------------------------------------------------------------- a good directory
# 10-pipeline.yaml uses the job of 20-jobs.yaml: jobs go first whatever the file order
cat >"$D/ok/10-pipeline.yaml" <<EOF
# the pipeline
kind: pipeline
name: ${P}_ci
stages:
  - name: build
    tasks:
      - name: compile
        job: ${P}_build
  - name: check
    is_parallel: true
    tasks:
      - name: inline
        job:
          command: |
            echo "it's \$NAME"
            printf '%s\n' "a  b"
          timeout: 30
EOF
cat >"$D/ok/20-jobs.yaml" <<EOF
kind: job
name: ${P}_build
timeout: 60
retries: 0
labels: {cli: "$T_ID", flag: "yes", n: "1"}
params:
  - {name: TARGET, default: linux, required: false}
command: >-
  echo one
  two
---
# an empty document is skipped
---
kind: job
name: ${P}_other
command: "true"
EOF
printf '{"kind": "job", "name": "%s_json", "command": "echo json"}\n' "$P" >"$D/ok/30-json.json"
echo 'not a definition' >"$D/ok/notes.txt"

pctl apply -f "$D/ok"
is "apply of a good directory: exit 0" "$RC" 0
is "apply prints each stored version, jobs first" "$OUT" \
	"job ${P}_build: version 1
job ${P}_other: version 1
job ${P}_json: version 1
pipeline ${P}_ci: version 1"
is "nothing on stderr" "$ERR" ""
is "the block scalar command is stored byte for byte" \
	"$(q "SELECT definition->'stages'->1->'tasks'->0->'job'->>'command' FROM pipeline.pipelines WHERE name = :'n'" "n=${P}_ci")" \
	"echo \"it's \$NAME\"
printf '%s\n' \"a  b\""
is "a folded scalar (>-) is folded" "$(q "SELECT definition->>'command' FROM pipeline.job WHERE name = :'n'" "n=${P}_build")" "echo one two"
is "plain scalars typed: 60 is a number, \"yes\" stays a string" \
	"$(q "SELECT jsonb_typeof(definition->'timeout') || ' ' || (definition->'labels'->>'flag') FROM pipeline.job WHERE name = :'n'" "n=${P}_build")" \
	"number yes"
is "kind is not sent to the engine" "$(q "SELECT count(*) FROM pipeline.job WHERE name LIKE :'p' || '%' AND definition ? 'kind'" "p=$P")" 0

pctl apply -f "$D/ok/20-jobs.yaml"
is "apply again: new versions" "$OUT" "job ${P}_build: version 2
job ${P}_other: version 2"

# anchors and aliases: an alias is a copy of the anchored value
cat >"$D/anchors.yaml" <<EOF
kind: pipeline
name: ${P}_anchors
stages:
  - name: s
    is_parallel: true
    tasks:
      - name: a
        job: &shared {command: "echo shared", timeout: 30, labels: {cli: "$T_ID"}}
      - name: b
        job: *shared
EOF
pctl apply -f "$D/anchors.yaml"
is "anchors and aliases: exit 0" "$RC" 0
is "the alias is a copy of the anchored mapping" \
	"$(q "SELECT (definition->'stages'->0->'tasks'->1->'job') = (definition->'stages'->0->'tasks'->0->'job')
	          AND definition->'stages'->0->'tasks'->1->'job'->>'command' = 'echo shared'
	     FROM pipeline.pipelines WHERE name = :'n'" "n=${P}_anchors")" t
printf 'kind: job\nname: x\n<<: {command: echo}\n' >"$D/merge.yaml"
pctl lint --offline "$D/merge.yaml"
like "a merge key is refused with its position" "$RC/$ERR" "^1/$D/merge.yaml:3:1: merge keys \\(<<\\) are not supported"

# stdin
pctl apply -f - <<EOF
kind: job
name: ${P}_stdin
command: echo stdin
EOF
is "apply -f - reads stdin" "$RC/$OUT" "0/job ${P}_stdin: version 1"

# ---------------------------------------------------------------- refusals, with line and column
# a YAML syntax error: an unclosed flow sequence (libyaml reports where it gave up: 6:2)
printf 'kind: job\nname: %s_syn\ncommand: echo\nlabels: [a, b\n\nx: 1\n' "$P" >"$D/syntax.yaml"
pctl apply -f "$D/syntax.yaml"
is "YAML syntax error: exit 1" "$RC" 1
like "YAML syntax error: FILE:LINE:COLUMN" "$ERR" "^$D/syntax.yaml:6:2: YAML syntax: did not find expected ',' or ']' while parsing a flow sequence \\(started at line 4, column 9\\)"
# a bad indentation
printf 'kind: job\nname: x\n  command: echo\n' >"$D/indent.yaml"
pctl lint "$D/indent.yaml"
like "bad indentation: line 3, column 10" "$ERR" "^$D/indent.yaml:3:10: YAML syntax: mapping values are not allowed in this context"

# the engine's refusal deep in the document: stages[1].tasks[0].job (line 13, column 9)
cat >"$D/deep.yaml" <<EOF
kind: pipeline
name: ${P}_deep
stages:
  - name: a
    tasks:
      - name: t
        job: ${P}_build
  - name: b
    tasks:
      - name: u
        run_params:
          X: "1"
        job: ${P}_missing
EOF
pctl apply -f "$D/deep.yaml"
is "engine refusal: exit 1" "$RC" 1
like "engine refusal mapped to FILE:13:9 with the engine's path and reason" "$ERR" \
	"^$D/deep.yaml:13:9: stages\\[1\\]\\.tasks\\[0\\]\\.job: job \"${P}_missing\" does not exist"
like "engine refusal: summary line" "$ERR" "1 document refused; nothing stored"
is "nothing stored" "$(q "SELECT count(*) FROM pipeline.pipeline WHERE name = :'n'" "n=${P}_deep")" 0

# a missing key: the position of the object that lacks it (the task at 6:9)
printf 'kind: pipeline\nname: %s_nojob\nstages:\n  - name: a\n    tasks:\n      - name: t\n        run_params: {}\n' "$P" >"$D/nojob.yaml"
pctl lint "$D/nojob.yaml"
like "missing key: its object's line and column" "$ERR" "^$D/nojob.yaml:6:9: stages\\[0\\]\\.tasks\\[0\\]\\.job: is required"

# a bad value in flow style: column of the key inside the flow mapping
printf 'kind: job\nname: %s_t\ncommand: echo\nparams: [{name: A}, {name: B, required: "no"}]\n' "$P" >"$D/flow.yaml"
pctl lint "$D/flow.yaml"
like "flow mapping: line 4, column 31" "$ERR" "^$D/flow.yaml:4:31: params\\[1\\]\\.required: must be a boolean"

# a duplicate key
printf 'kind: job\nname: %s_dup\ncommand: echo a\ntimeout: 5\ncommand: echo b\n' "$P" >"$D/dup.yaml"
pctl apply -f "$D/dup.yaml"
is "duplicate key: exit 1" "$RC" 1
like "duplicate key: its line and column, and the first one's" "$ERR" \
	"^$D/dup.yaml:5:1: duplicate key \"command\" \\(first at line 3, column 1\\)"

# a missing kind (in the second document, which starts at line 5)
printf 'kind: job\nname: %s_k1\ncommand: echo\n---\nname: %s_k2\ncommand: echo\n' "$P" "$P" >"$D/nokind.yaml"
pctl apply -f "$D/nokind.yaml"
is "missing kind: exit 1" "$RC" 1
like "missing kind: the document's line and column" "$ERR" "^$D/nokind.yaml:5:1: kind: is required"
printf 'kind: task\nname: x\n' >"$D/badkind.yaml"
pctl lint --offline "$D/badkind.yaml"
like "unknown kind: at the kind's value line" "$RC/$ERR" "^1/$D/badkind.yaml:1:1: kind: must be job, pipeline, schedule or trigger"
printf -- '- a\n- b\n' >"$D/list.yaml"
pctl lint --offline "$D/list.yaml"
like "a document that is not a mapping" "$RC/$ERR" "^1/$D/list.yaml:1:1: a document must be a mapping"
is "refused documents stored nothing (6 job versions from the good applies)" "$(versions)" 6

# ---------------------------------------------------------------- all or nothing across files
cat >"$D/mixed/a-job.yaml" <<EOF
kind: job
name: ${P}_mixed
command: echo mixed
EOF
cat >"$D/mixed/b-pipeline.yaml" <<EOF
kind: pipeline
name: ${P}_mixed
stages:
  - name: s
    tasks:
      - name: t
        job: ${P}_mixed
        audit: {enable: yes}
EOF
pctl apply -f "$D/mixed"
is "a refused file in a directory: exit 1" "$RC" 1
like "the refusal names the file and position" "$ERR" "^$D/mixed/b-pipeline.yaml:8:17: stages\\[0\\]\\.tasks\\[0\\]\\.audit\\.enable: must be a boolean, not a string"
is "all or nothing: the valid job of the other file is not stored" \
	"$(q "SELECT count(*) FROM pipeline.job WHERE name = :'n'" "n=${P}_mixed")" 0
is "apply printed no version" "$OUT" ""
# several refusals are all reported
pctl lint "$D/deep.yaml" "$D/nojob.yaml" "$D/flow.yaml"
is "lint reports every refused document" "$(grep -c ': ' <<<"$ERR")" 4

# ---------------------------------------------------------------- lint
cat >"$D/lint.yaml" <<EOF
kind: job
name: ${P}_lint
command: echo lint
---
kind: pipeline
name: ${P}_lint
stages: [{name: s, tasks: [{name: t, job: ${P}_lint}]}]
EOF
pctl lint "$D/lint.yaml"
is "lint of valid documents: exit 0" "$RC" 0
is "lint says what would be stored" "$OUT" "job ${P}_lint: valid, would be version 1
pipeline ${P}_lint: valid, would be version 1
2 definitions valid; nothing stored (lint)"
is "lint stored nothing" "$(q "SELECT count(*) FROM pipeline.job WHERE name = :'n'" "n=${P}_lint")" 0
pctl lint --offline "$D/lint.yaml" -d "host=/nonexistent port=1"
is "lint --offline needs no database" "$RC/$OUT" "0/2 definitions: YAML and kind valid (offline: the engine did not check them)"
pctl lint --offline "$D/dup.yaml" -d "host=/nonexistent port=1"
is "lint --offline still refuses bad YAML: exit 1" "$RC" 1

# ---------------------------------------------------------------- next_pipelines (SPEC §15)
# a pipeline goes after the pipelines of the same apply that it chains, whatever the file order
cat >"$D/chain.yaml" <<EOF
kind: pipeline
name: ${P}_build2
next_pipelines:
  - pipeline: ${P}_deploy2
    on: [succeeded]
    params: {TARGET_ENV: staging}
  - pipeline: ${P}_notify2
    on: [failed, canceled]
stages:
  - name: build
    tasks: [{name: make, job: {command: "true"}}]
---
kind: pipeline
name: ${P}_deploy2
next_pipelines: [{pipeline: ${P}_notify2}]
stages:
  - name: deploy
    tasks: [{name: ship, job: {command: "true"}}]
---
kind: pipeline
name: ${P}_notify2
stages:
  - name: notify
    tasks: [{name: mail, job: {command: "true"}}]
EOF
pctl apply -f "$D/chain.yaml"
is "next_pipelines: exit 0, the chained pipelines defined first" "$RC/$OUT" \
	"0/pipeline ${P}_notify2: version 1"$'\n'"pipeline ${P}_deploy2: version 1"$'\n'"pipeline ${P}_build2: version 1"
is "next_pipelines stored as written, defaults filled in" \
	"$(q "SELECT definition->'next_pipelines' FROM pipeline.pipelines WHERE name = :'n'" "n=${P}_build2")" \
	"[{\"on\": [\"succeeded\"], \"labels\": {}, \"params\": {\"TARGET_ENV\": \"staging\"}, \"on_busy\": \"queue\", \"pipeline\": \"${P}_deploy2\"}, {\"on\": [\"failed\", \"canceled\"], \"labels\": {}, \"params\": {}, \"on_busy\": \"queue\", \"pipeline\": \"${P}_notify2\"}]"
printf 'kind: pipeline\nname: %s_chainbad\nnext_pipelines:\n  - pipeline: %s_notify2\n    on: [succeeded, done]\nstages: [{name: s, tasks: [{name: t, job: {command: "true"}}]}]\n' "$P" "$P" >"$D/chainbad.yaml"
pctl lint "$D/chainbad.yaml"
like "a bad \"on\": its line and column" "$RC/$ERR" \
	"^1/$D/chainbad.yaml:5:21: next_pipelines\\[0\\]\\.on\\[1\\]: \"done\" is not a stage a run ends in"
# two documents chaining each other: a cycle, so neither can go first; both refused, nothing stored
cat >"$D/cycle.yaml" <<EOF
kind: pipeline
name: ${P}_ping
next_pipelines: [{pipeline: ${P}_pong}]
stages: [{name: s, tasks: [{name: t, job: {command: "true"}}]}]
---
kind: pipeline
name: ${P}_pong
next_pipelines: [{pipeline: ${P}_ping}]
stages: [{name: s, tasks: [{name: t, job: {command: "true"}}]}]
EOF
pctl apply -f "$D/cycle.yaml"
like "a cycle across documents: exit 1, each refused at its next_pipelines entry" "$RC/$ERR" \
	"^1/$D/cycle.yaml:3:19: next_pipelines\\[0\\]\\.pipeline: pipeline \"${P}_pong\" does not exist.*
$D/cycle.yaml:8:19: next_pipelines\\[0\\]\\.pipeline: pipeline \"${P}_ping\" does not exist"
is "nothing of it stored" "$(q "SELECT count(*) FROM pipeline.pipeline WHERE name IN (:'a', :'b')" "a=${P}_ping" "b=${P}_pong")" 0

# ---------------------------------------------------------------- exit 2
pctl apply
is "no input: exit 2" "$RC" 2
like "no input: says what to give" "$ERR" "no input: give -f FILE"
pctl apply -f "$D/nope.yaml"
is "missing file: exit 2" "$RC" 2
like "missing file: named" "$ERR" "$D/nope.yaml: No such file or directory"
pctl apply -f "$D/empty"
is "a directory without definitions: exit 2" "$RC" 2
pctl apply --bogus -f "$D/lint.yaml"
is "unknown option: exit 2" "$RC" 2
pctl -d "host=/nonexistent port=1" apply -f "$D/lint.yaml"
is "no server: exit 2" "$RC" 2
like "no server: says so" "$ERR" "cannot connect to the database: "
pctl -d "dbname=postgres" apply -f "$D/lint.yaml"
is "a database without the extension: exit 2" "$RC" 2
like "no extension: says what to do" "$ERR" "extension \"pipeline\" is not installed in database \"postgres\": run CREATE EXTENSION pipeline"
q "DROP ROLE IF EXISTS ${P}_nobody; CREATE ROLE ${P}_nobody LOGIN" >/dev/null 2>&1
on_exit "q 'DROP ROLE IF EXISTS ${P}_nobody' >/dev/null"
PGUSER=${P}_nobody pctl apply -f "$D/lint.yaml"
is "a role without the grants: exit 2" "$RC" 2
like "no privilege: says what to grant" "$ERR" "may not use schema pipeline.*GRANT USAGE ON SCHEMA pipeline"

# ---------------------------------------------------------------- kind: schedule (pg_cron)
if q "CREATE EXTENSION IF NOT EXISTS pg_cron" >/dev/null 2>&1; then
	on_exit "q \"SELECT pipeline.unschedule(name) FROM pipeline.schedule WHERE name = '${P}_nightly'\" >/dev/null"
	printf 'kind: schedule\nname: %s_nightly\ncron: "0 3 * * *"\npipeline: %s_ci\nparams: {TARGET: arm}\n' "$P" "$P" >"$D/sched.yaml"
	pctl apply -f "$D/sched.yaml"
	is "kind: schedule: exit 0" "$RC/$OUT" "0/schedule ${P}_nightly: cron \"0 3 * * *\" runs pipeline ${P}_ci"
	is "the schedule is stored with pg_cron" \
		"$(q "SELECT cron || ' ' || pipeline || ' ' || (params->>'TARGET') FROM pipeline.schedule WHERE name = :'n'" "n=${P}_nightly")" \
		"0 3 * * * ${P}_ci arm"
	printf 'kind: schedule\nname: %s_x\ncron: "0 3 * * *"\nevery: day\n' "$P" >"$D/sched-bad.yaml"
	pctl lint --offline "$D/sched-bad.yaml"
	like "kind: schedule: unknown key refused with its position" "$RC/$ERR" "^1/$D/sched-bad.yaml:4:1: every: unknown key"
else
	note "pg_cron cannot be created here: kind: schedule not tested"
fi

t_done
