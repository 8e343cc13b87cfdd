#!/usr/bin/env bash
# watch_graph: "pipelinectl watch" and "pipelinectl graph" on real runs (SPEC §11):
#   - watch RUN, started before the runner, with stdout not a terminal: plain lines
#     ("HH:MM:SS PIPELINE #RUN  STAGE", "HH:MM:SS STAGE/TASK [JOB_TASK_ID]  OLD -> NEW[: message]",
#     a summary "HH:MM:SS PIPELINE #RUN STAGE in DURATION (N/M tasks done)[: message]", which for a
#     failed run names the failing task: ": STAGE.TASK (job task ID) failed: MESSAGE"), no escape codes;
#     it follows the run live and exits 0 when it succeeded, 1 when it failed;
#   - watch of a finished run exits at once with the same status; an unknown run: exit 2;
#   - graph --format dot is valid Graphviz (dot -Tpng renders it, without warnings, to a PNG);
#     graph (default) and --format mermaid print a Mermaid flowchart; an unknown format: exit 2.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

L='{"cli": "'$T_ID'"}'
HMS='[0-9]{2}:[0-9]{2}:[0-9]{2}'
define_pipeline '{"name": "'$T_ID'_ok", "stages": [
    {"name": "s1", "is_parallel": true, "tasks": [
        {"name": "a", "job": {"command": "echo a; sleep 0.3", "labels": '"$L"'}},
        {"name": "b", "job": {"command": "echo b; sleep 0.3", "labels": '"$L"'}}]},
    {"name": "s2", "tasks": [{"name": "c", "job": {"command": "echo c", "labels": '"$L"'}}]}]}'
define_pipeline '{"name": "'$T_ID'_bad", "stages": [
    {"name": "s1", "tasks": [{"name": "x", "job": {"command": "echo x; exit 1", "labels": '"$L"'}}]},
    {"name": "s2", "tasks": [{"name": "y", "job": {"command": "echo y", "labels": '"$L"'}}]}]}'

# watch_live NAME RUN: starts watch in the background (stdout NAME.out, stderr NAME.err), waits
# for its first line, runs the runner, waits for watch to end; sets WATCH_RC and WATCH_OUT
watch_live() {
	local name=$1 run=$2 pid
	"$PIPELINECTL" watch "$run" </dev/null >"$T_DIR/$name.out" 2>"$T_DIR/$name.err" &
	pid=$!
	T_BG_PIDS+=("$pid")
	wait_until 10 test -s "$T_DIR/$name.out" || true
	runner_once --concurrency 2 || note "runner exited $?"
	bg_wait "$pid" 15
	WATCH_RC=$BG_RC
	WATCH_OUT=$(cat "$T_DIR/$name.out")
	note "watch $run printed:"
	sed 's/^/#   /' "$T_DIR/$name.out"
}

# ---------------------------------------------------------------- watch: success
run=$(run_pipeline "${T_ID}_ok")
watch_live watch_ok "$run"
is "watch exits 0 when the run succeeded" "$WATCH_RC" 0
first=$(head -n 1 <<<"$WATCH_OUT")
last=$(tail -n 1 <<<"$WATCH_OUT")
like "first line: time, pipeline, run, stage" "$first" "^$HMS ${T_ID}_ok #$run  active$"
like "a line per task at the start, with its job task id (s1/a waits for a runner)" "$WATCH_OUT" \
	$'\n'"$HMS s1/a \\[$(task_id "$run" s1 a)\\]  scheduling"$'\n'
like "a line per task at the start (s2/c pending)" "$WATCH_OUT" $'\n'"$HMS s2/c \\[[0-9]+\\]  pending"$'\n'
like "live change lines: s1/b  OLD -> succeeded" "$WATCH_OUT" $'\n'"$HMS s1/b \\[[0-9]+\\]  [a-z]+ -> succeeded"$'\n'
like "live change lines: s2/c  OLD -> succeeded" "$WATCH_OUT" $'\n'"$HMS s2/c \\[[0-9]+\\]  [a-z]+ -> succeeded"$'\n'
like "the run's change: active -> succeeded" "$WATCH_OUT" $'\n'"$HMS ${T_ID}_ok #$run  active -> succeeded"$'\n'
like "summary line" "$last" "^$HMS ${T_ID}_ok #$run succeeded in [0-9][0-9hms]* \(3/3 tasks done\)$"
unlike "no escape codes when stdout is not a terminal" "$WATCH_OUT" $'\033'
is "nothing on stderr" "$(cat "$T_DIR/watch_ok.err")" ""
rc=0
out=$("$PIPELINECTL" watch "$run" </dev/null) || rc=$?
is "watch of the finished run exits 0 at once" "$rc" 0
like "... and prints its summary" "$(tail -n 1 <<<"$out")" "${T_ID}_ok #$run succeeded in .* \(3/3 tasks done\)$"
ok_run=$run

# ---------------------------------------------------------------- watch: failure
run=$(run_pipeline "${T_ID}_bad")
watch_live watch_bad "$run"
is "watch exits 1 when the run failed" "$WATCH_RC" 1
like "the failed task's line has its message" "$WATCH_OUT" $'\n'"$HMS s1/x \\[[0-9]+\\]  [a-z]+ -> failed: exit code 1"$'\n'
like "the skipped task's line" "$WATCH_OUT" $'\n'"$HMS s2/y \\[[0-9]+\\]  pending -> skipped"$'\n'
like "summary line of a failed run names the task that failed it, its id and message" "$(tail -n 1 <<<"$WATCH_OUT")" \
	"^$HMS ${T_ID}_bad #$run failed in [0-9][0-9hms]* \(2/2 tasks done\): s1\\.x \\(job task $(task_id "$run" s1 x)\\) failed: exit code 1$"
rc=0
"$PIPELINECTL" watch "$run" </dev/null >/dev/null || rc=$?
is "watch of the finished failed run exits 1 at once" "$rc" 1
rc=0
"$PIPELINECTL" watch 999999999 </dev/null >/dev/null 2>&1 || rc=$?
is "watch of a run that does not exist exits 2" "$rc" 2
bad_run=$run

# ---------------------------------------------------------------- graph
for r in "$ok_run" "$bad_run"; do
	rc=0
	"$PIPELINECTL" graph "$r" --format dot >"$T_DIR/g$r.dot" || rc=$?
	is "graph $r --format dot exits 0" "$rc" 0
	like "graph $r --format dot is a digraph" "$(head -n 1 "$T_DIR/g$r.dot")" "^digraph "
	rc=0
	dot -Tpng "$T_DIR/g$r.dot" -o "$T_DIR/g$r.png" 2>"$T_DIR/dot$r.err" || rc=$?
	is "dot -Tpng renders the graph of run $r" "$rc" 0
	is "dot printed no warning for run $r" "$(cat "$T_DIR/dot$r.err")" ""
	is "the picture of run $r is a PNG" "$(head -c 8 "$T_DIR/g$r.png" | od -An -tx1 | tr -d ' \n')" 89504e470d0a1a0a
done
dot_ok=$(cat "$T_DIR/g$ok_run.dot")
for t in a b c; do like "the dot graph names task $t" "$dot_ok" "label=\"$t"; done
like "the dot graph names the stages" "$dot_ok" 'label="s1[" ].*label="s2"'
like "the failed task is drawn in another colour than the succeeded ones" \
	"$(grep -c 'fillcolor' "$T_DIR/g$bad_run.dot")/$(grep -o 'fillcolor="[^"]*"' "$T_DIR/g$bad_run.dot" | sort -u | wc -l)" '^2/2$'

mer=$("$PIPELINECTL" graph "$ok_run")
like "graph (default format) is a Mermaid flowchart" "$(head -n 1 <<<"$mer")" "^flowchart"
is "graph --format mermaid is the same" "$("$PIPELINECTL" graph "$ok_run" --format mermaid)" "$mer"
for t in a b c; do like "the Mermaid graph names task $t" "$mer" "\[\"$t(<br/>|\")"; done
rc=0
"$PIPELINECTL" graph "$ok_run" --format svg >/dev/null 2>&1 || rc=$?
is "graph --format svg is a usage error (exit 2)" "$rc" 2

t_done
