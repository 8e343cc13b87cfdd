#!/usr/bin/env bash
# runner_crash: issue 9 item 8 - a killed runner's commands do not keep running, do not run
# again beside their re-run, and leave no work directory behind.  The command writes a marker
# line every 0.2 s and starts a setsid'ed grandchild (its own session: out of the command's
# process group) that does the same.
#   A. SIGKILL of the runner alone: its command's supervisor (PR_SET_PDEATHSIG, child
#      subreaper) kills the whole tree at once - neither marker grows any more; the work
#      directory stays until the next runner starts, which removes it (its lock is free);
#      after pipeline.reap() the task's retry runs under the new runner, alone (one command,
#      one grandchild).
#   B. SIGKILL of the runner and of its supervisors together: the setsid'ed grandchild
#      survives that; the next runner's start-up clean-up finds it (its environment names the
#      dead task's PIPELINE_OUTPUT), kills it and removes the directory.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

M=$(marker_digits)
G="G$M"
track_marker "$G"
MK=$T_DIR/marks
mkdir -p "$MK"
L='{"cli": "'$T_ID'"}'
# shellcheck disable=SC2016
cmd=$(json_str 'setsid sh -c '"'"'while :; do echo g >> "$MK/g.$TAG"; sleep 0.2; done # '"$G"''"'"' </dev/null >/dev/null 2>&1 &
while :; do echo c >> "$MK/c.$TAG"; sleep 0.2; done')
for p in a b; do
	define_pipeline '{"name": "'${T_ID}_$p'", "stages": [{"name": "s", "tasks": [{"name": "t",
	  "job": {"command": '"$cmd"', "labels": '"$L"', "retries": 1,
	          "params": [{"name": "MK", "default": "'$MK'"}, {"name": "TAG", "default": "'$p'"}]}}]}]}'
done

lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }
_has_lines() { (($(lines "$1") >= $2)); }
marker_procs() { pids_matching "$G" | wc -l; }
workdirs() { find "$T_DIR/tmp" -maxdepth 1 -name 'pipelinectl-*' | sort; }
# still_grows FILE: the file grows within 1.2 s
still_grows() {
	local a
	a=$(lines "$1")
	sleep 1.2
	(($(lines "$1") > a))
}
# children PID: the processes whose parent is PID
children() {
	local f st
	for f in /proc/[0-9]*/stat; do
		st=$(cat "$f" 2>/dev/null) || continue
		st=${st##*) }
		read -r _ ppid _ <<<"$st"
		[[ $ppid == "$1" ]] && { f=${f#/proc/}; echo "${f%/stat}"; }
	done
	return 0
}

# ------------------------------------------------------------------ A
run=$(run_pipeline "${T_ID}_a")
runner_bg
r1=$BG_PID
ok "A: the command and its setsid'ed grandchild write markers" \
	wait_until 20 eval '_has_lines "$MK/c.a" 3 && _has_lines "$MK/g.a" 3'
dirs=$(workdirs)
is "A: the task has one work directory" "$(wc -l <<<"$dirs")" 1
kill -KILL "$r1"
sleep 0.6
not_ok "A: after SIGKILL of the runner, the command's marker no longer grows" still_grows "$MK/c.a"
not_ok "A: ... nor the setsid'ed grandchild's" still_grows "$MK/g.a"
is "A: no process of the command is left" "$(marker_procs)" 0
is "A: the dead runner's work directory is still there" "$(workdirs)" "$dirs"

t=$(task_id "$run" s t)
sleep 1
q "SET pipeline.heartbeat_timeout = 1; SET pipeline.retry_backoff = 0; SELECT pipeline.reap()" >/dev/null
is "A: reap() takes the silent task back for its retry" "$(task_field "$t" "stage || ' ' || attempt")" "scheduling 2"
c_before=$(lines "$MK/c.a")
runner_bg
r2=$BG_PID
_dir_gone() { [[ ! -e $1 ]]; }
ok "A: the next runner removes the dead runner's work directory at start" wait_until 10 _dir_gone "$dirs"
like "A: ... and says so" "$(cat "$T_DIR/runner.log")" "removed .*pipelinectl-$t-.*, left by a runner that died"
ok "A: the retry runs under the new runner" wait_until 20 _has_lines "$MK/c.a" $((c_before + 3))
is "A: the task is at attempt 2" "$(task_field "$t" attempt)" 2
is "A: the retry runs alone: one command shell and one grandchild" "$(marker_procs)" 2
q "SELECT pipeline.cancel_pipeline_task(:'run', 'test done')" "run=$run" >/dev/null
ok "A: canceled, the retry ends" wait_task_stage "$t" canceled 20
sleep 0.5
is "A: nothing of it is left running" "$(marker_procs)" 0
ok "A: its work directory is removed" eval '[[ -z $(workdirs) ]]'
bg_stop "$r2"

# ------------------------------------------------------------------ B
run=$(run_pipeline "${T_ID}_b")
runner_bg
r3=$BG_PID
ok "B: the command and its grandchild write markers" \
	wait_until 20 eval '_has_lines "$MK/c.b" 3 && _has_lines "$MK/g.b" 3'
dirs=$(workdirs)
sups=$(children "$r3")
isnt "B: the runner has a child process per command (its supervisor)" "$sups" ""
# shellcheck disable=SC2086
kill -KILL "$r3" $sups
sleep 0.6
ok "B: with the supervisor killed too, the setsid'ed grandchild survives" still_grows "$MK/g.b"
rc=0
runner_once --concurrency 1 || rc=$?
is "B: a new runner starts, cleans up and exits 0 (nothing to claim)" "$rc" 0
not_ok "B: the survivor was killed by its start-up clean-up: the marker no longer grows" still_grows "$MK/g.b"
is "B: no process of the command is left" "$(marker_procs)" 0
ok "B: the dead runner's work directory is removed" eval '[[ -z $(workdirs) ]]'
like "B: the clean-up says it killed the survivor" "$(cat "$T_DIR/runner.log")" \
	"left by a runner that died \([1-9][0-9]* process(es)? of its command killed\)"
t_done
