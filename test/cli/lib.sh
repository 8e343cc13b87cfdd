# shellcheck shell=bash
#
# test/cli/lib.sh: helpers of the pipelinectl end-to-end tests (test/cli/*.sh).
#
# A test sources it and calls t_init first:
#
#   #!/usr/bin/env bash
#   set -euo pipefail
#   source "$(dirname "$0")/lib.sh"
#   t_init
#   ...
#   t_done          # optional: the EXIT trap prints the summary anyway
#
# The tests run against the cluster of scripts/test (PGHOST, PGPORT, PGUSER, PGDATABASE;
# PIPELINECTL names the binary), with real shell commands and a real HTTP receiver
# (test/cli/receiver.py) on 127.0.0.1.  Run one by hand against a kept cluster:
#   bash scripts/test --no-deps --keep      # prints PGHOST/PGPORT of the kept cluster
#   PGHOST=... PGPORT=... PGUSER=postgres PGDATABASE=pipeline_test test/cli/hookd.sh
#
# Isolation: every name a test makes starts with $T_ID (cli_<test>_<pid>_<random>), its jobs carry the
# label cli=$T_ID and its runners offer only that label, so a test never runs another test's
# tasks.  At exit the trap stops the background processes the test started (by pid), cancels
# the test's unfinished runs and drops their unsent hook deliveries, so that no later hookd
# sends them.
#
# Output: "PASS: ..." / "FAIL: ..." per assertion, "# ..." for notes, and at the end
# "N passed, M failed"; the exit status is non-zero when anything failed or the script died.
# PL_CLI_KEEP=1 keeps the test's temporary directory ($T_DIR).

PL_ROOT=${PL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
if [[ -n ${PL_PGBIN:-} && -d ${PL_PGBIN:-} ]]; then PATH="$PL_PGBIN:$PATH"; fi
PIPELINECTL=${PIPELINECTL:-$PL_ROOT/pipelinectl}
export PL_ROOT PATH PIPELINECTL

T_PASSED=0
T_FAILED=0
T_BG_PIDS=()
T_CLEANUP=()
T_DONE=0

# ---------------------------------------------------------------- output and assertions
note() { printf '# %s\n' "$*"; }
pass() { T_PASSED=$((T_PASSED + 1)); printf 'PASS: %s\n' "$1"; }
fail() {
	T_FAILED=$((T_FAILED + 1))
	printf 'FAIL: %s\n' "$1"
	shift
	local l
	for l in "$@"; do printf '      %s\n' "$l"; done
}

# ok DESC CMD...: passes when CMD succeeds
ok() {
	local desc=$1
	shift
	if "$@"; then pass "$desc"; else fail "$desc" "command failed: $*"; fi
}
# not_ok DESC CMD...: passes when CMD fails
not_ok() {
	local desc=$1
	shift
	if "$@"; then fail "$desc" "command succeeded: $*"; else pass "$desc"; fi
}
# is DESC GOT WANT
is() {
	if [[ $2 == "$3" ]]; then pass "$1"; else fail "$1" "got:  $2" "want: $3"; fi
}
# isnt DESC GOT UNWANTED
isnt() {
	if [[ $2 != "$3" ]]; then pass "$1"; else fail "$1" "got (unwanted): $2"; fi
}
# like DESC GOT ERE
like() {
	if [[ $2 =~ $3 ]]; then pass "$1"; else fail "$1" "got:  $2" "want: match of /$3/"; fi
}
# unlike DESC GOT ERE
unlike() {
	if [[ $2 =~ $3 ]]; then fail "$1" "got:  $2" "want: no match of /$3/"; else pass "$1"; fi
}
# cmp_num DESC A OP B (OP: -lt -le -gt -ge -eq -ne; numbers may have decimals)
cmp_num() {
	local desc=$1 a=$2 op=$3 b=$4
	if awk -v a="$a" -v b="$b" -v op="$op" 'BEGIN {
		a += 0; b += 0; r = 0
		if (op == "-lt") r = a < b; else if (op == "-le") r = a <= b
		else if (op == "-gt") r = a > b; else if (op == "-ge") r = a >= b
		else if (op == "-eq") r = a == b; else if (op == "-ne") r = a != b
		exit !r }'; then
		pass "$desc"
	else
		fail "$desc" "got: $a $op $b is false"
	fi
}

# now: seconds since the epoch with microseconds
now() { printf '%s\n' "${EPOCHREALTIME/,/.}"; }
# elapsed START: seconds since START (from now), 3 decimals
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f\n", b - a }'; }

# ---------------------------------------------------------------- SQL
# q SQL [NAME=VALUE]...: runs SQL (psql variables from the pairs, e.g. :'def'), unaligned,
# tuples only, stops at the first error.  psql reads the SQL from stdin: -c would not
# interpolate variables.
q() {
	local sql=$1 a
	shift
	local vars=()
	for a in "$@"; do vars+=(-v "$a"); done
	psql -X -q -A -t -v ON_ERROR_STOP=1 "${vars[@]}" <<<"$sql"
}

define_job() { q "SELECT pipeline.define_job(:'def')" "def=$1" >/dev/null; }
define_pipeline() { q "SELECT pipeline.define_pipeline(:'def')" "def=$1" >/dev/null; }

# run_pipeline NAME [PARAMS_JSON [DRY_RUN]] -> prints the run id
run_pipeline() {
	local params=${2:-}
	[[ -n $params ]] || params='{}'
	q "SELECT pipeline.run_pipeline(:'name', :'params'::jsonb, dry_run => :'dry'::boolean)" \
		"name=$1" "params=$params" "dry=${3:-false}"
}

run_stage() { q "SELECT stage FROM pipeline.pipeline_tasks WHERE id = :'id'" "id=$1"; }
run_field() { q "SELECT $2 FROM pipeline.pipeline_tasks WHERE id = :'id'" "id=$1"; }
# task_id RUN STAGE_NAME TASK_NAME -> job task id
task_id() {
	q "SELECT id FROM pipeline.job_tasks WHERE pipeline_task_id = :'run' AND stage_name = :'s' AND task_name = :'t'" \
		"run=$1" "s=$2" "t=$3"
}
task_stage() { q "SELECT stage FROM pipeline.job_tasks WHERE id = :'id'" "id=$1"; }
# task_field ID SQL_EXPRESSION (over the columns of pipeline.job_tasks)
task_field() { q "SELECT $2 FROM pipeline.job_tasks WHERE id = :'id'" "id=$1"; }

# json_str TEXT: TEXT as a JSON string literal (for commands inside definitions)
json_str() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$1"; }

# ---------------------------------------------------------------- waiting
# wait_until TIMEOUT_S CMD...: polls CMD every 0.1 s; 0 as soon as it succeeds, 1 at the timeout
wait_until() {
	local limit=$1 start
	shift
	start=$(now)
	while :; do
		if "$@"; then return 0; fi
		if awk -v s="$start" -v n="$(now)" -v l="$limit" 'BEGIN { exit !(n - s >= l) }'; then
			note "timed out after ${limit}s waiting for: $*"
			return 1
		fi
		sleep 0.1
	done
}
_stage_is() { [[ $("$1" "$2") == "$3" ]]; }
# wait_run_stage RUN STAGE TIMEOUT_S
wait_run_stage() { wait_until "$3" _stage_is run_stage "$1" "$2"; }
# wait_task_stage JOB_TASK STAGE TIMEOUT_S
wait_task_stage() { wait_until "$3" _stage_is task_stage "$1" "$2"; }

# ---------------------------------------------------------------- processes
# bg_start LOGNAME CMD...: starts CMD in the background (stdout+stderr to $T_DIR/LOGNAME.log,
# stdin /dev/null); sets BG_PID; the EXIT trap stops it if it still runs
bg_start() {
	local name=$1
	shift
	"$@" </dev/null >>"$T_DIR/$name.log" 2>&1 &
	BG_PID=$!
	T_BG_PIDS+=("$BG_PID")
}
# alive PID
alive() { kill -0 "$1" 2>/dev/null; }
# bg_wait PID TIMEOUT_S: waits for a background process; sets BG_RC (124 on timeout, then
# the process is left running)
bg_wait() {
	local pid=$1 limit=$2
	if wait_until "$limit" _not_alive "$pid"; then
		BG_RC=0
		wait "$pid" 2>/dev/null || BG_RC=$?
	else
		BG_RC=124
	fi
}
_not_alive() { ! alive "$1"; }
# bg_stop PID: SIGTERM, then SIGKILL after 5 s
bg_stop() {
	local pid=$1
	alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_until 5 _not_alive "$pid" >/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}
# pids_matching MARKER: pids of processes whose command line contains MARKER (a string unique
# to this test, e.g. "sleep 60.4711"; never a broad name)
# (reads /proc/PID/cmdline with builtins only: no pgrep, no fork per process)
pids_matching() {
	local f pid args
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		[[ $pid != "$$" && $pid != "$BASHPID" ]] || continue
		{ mapfile -d '' -t args <"$f"; } 2>/dev/null || continue
		[[ ${args[*]:-} == *"$1"* ]] && printf '%s\n' "$pid"
	done
	return 0
}
# no_process MARKER: true when no process has MARKER in its command line
no_process() { [[ -z $(pids_matching "$1") ]]; }
# has_process MARKER: true when a process has MARKER in its command line
has_process() { [[ -n $(pids_matching "$1") ]]; }
# a unique number for markers: "sleep 60.$(marker_digits)" is a sleep no other test runs
marker_digits() { printf '%d%05d' "$$" "$((RANDOM * 3 % 100000))"; }
# kill_marked MARKER: SIGKILL, by pid, the processes this test left with MARKER (cleanup)
T_MARKERS=()
track_marker() { T_MARKERS+=("$1"); }

# ---------------------------------------------------------------- pipelinectl
# runner_once [ARGS]...: a runner for this test's tasks with --exit-when-idle (at most 60 s);
# its log is appended to $T_DIR/runner.log; returns its exit status
runner_once() {
	local rc=0
	TMPDIR=$T_DIR/tmp timeout -k 5 60 "$PIPELINECTL" runner --exit-when-idle --labels "cli=$T_ID" \
		--poll-interval 0.2 --name "$T_ID-runner" "$@" </dev/null >>"$T_DIR/runner.log" 2>&1 || rc=$?
	return $rc
}
# runner_bg [ARGS]...: a runner for this test's tasks in the background (log runner.log); BG_PID
runner_bg() {
	bg_start runner env TMPDIR="$T_DIR/tmp" "$PIPELINECTL" runner --labels "cli=$T_ID" \
		--poll-interval 0.2 --name "$T_ID-runner" "$@"
}
# hookd_once [ARGS]...: hookd with --exit-when-idle (at most 60 s), log hookd.log
hookd_once() {
	local rc=0
	timeout -k 5 60 "$PIPELINECTL" hookd --exit-when-idle --poll-interval 0.2 \
		--name "$T_ID-hookd" "$@" </dev/null >>"$T_DIR/hookd.log" 2>&1 || rc=$?
	return $rc
}

# ---------------------------------------------------------------- triggerd
# triggerd_url TIMEOUT_S WHAT: waits until the triggerd started with "bg_start triggerd ..."
# (--listen 127.0.0.1:0) logs its port in $T_DIR/triggerd.log; sets URL (http://127.0.0.1:PORT).
# If it does not within TIMEOUT_S, fails WHAT with the log and ends the test (exit 1).
triggerd_url() {
	if ! wait_until "$1" _triggerd_listening; then
		fail "$2" "$(cat "$T_DIR/triggerd.log")"
		exit 1
	fi
	URL=http://127.0.0.1:$(grep -o 'listening on 127.0.0.1:[0-9]*' "$T_DIR/triggerd.log" | head -n 1 | sed 's/.*://')
}
_triggerd_listening() { grep -q 'listening on 127.0.0.1:[0-9]' "$T_DIR/triggerd.log"; }
# hmac FILE SECRET: hex HMAC-SHA256 of the file's bytes (a webhook signature)
hmac() { openssl dgst -sha256 -hmac "$2" <"$1" | sed 's/^.*= //'; }
# post PATH FILE [HEADER]...: POST the file's bytes as JSON to $URL$PATH; sets CODE and BODY
post() {
	local path=$1 file=$2
	shift 2
	local hdr=() h
	for h in "$@"; do hdr+=(-H "$h"); done
	BODY=$(curl -sS -o - -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' "${hdr[@]}" \
		--data-binary "@$file" "$URL$path")
	CODE=${BODY##*$'\n'}
	BODY=${BODY%$'\n'*}
	BODY=${BODY%$'\n'}
}

# ---------------------------------------------------------------- the HTTP receiver
# receiver_start [MAX_SECONDS]: starts test/cli/receiver.py; sets RECV_URL (http://127.0.0.1:PORT),
# RECV_LOG (its JSON lines), RECV_PID
receiver_start() {
	RECV_LOG=$T_DIR/requests.jsonl
	: >"$RECV_LOG"
	rm -f "$T_DIR/receiver.port"
	bg_start receiver python3 "$PL_ROOT/test/cli/receiver.py" --log "$RECV_LOG" \
		--port-file "$T_DIR/receiver.port" --max-seconds "${1:-120}" --quiet
	RECV_PID=$BG_PID
	if ! wait_until 15 test -s "$T_DIR/receiver.port"; then
		fail "receiver started" "$(cat "$T_DIR/receiver.log" 2>/dev/null)"
		exit 1
	fi
	RECV_URL=http://127.0.0.1:$(cat "$T_DIR/receiver.port")
	note "receiver on $RECV_URL"
}
# recv_count PATH_PREFIX: requests received whose path starts with PATH_PREFIX
recv_count() {
	python3 - "$RECV_LOG" "$1" <<-'EOF'
		import json, sys
		n = 0
		for line in open(sys.argv[1], encoding="utf-8"):
		    if line.strip() and json.loads(line)["path"].startswith(sys.argv[2]):
		        n += 1
		print(n)
	EOF
}
_recv_count_ge() { (($(recv_count "$1") >= $2)); }
# wait_requests PATH_PREFIX N TIMEOUT_S
wait_requests() { wait_until "$3" _recv_count_ge "$1" "$2"; }
# recv_request PATH_PREFIX [INDEX]: the INDEX-th (0-based, default 0; -1 = last) request
# whose path starts with PATH_PREFIX, as its JSON line
recv_request() {
	python3 - "$RECV_LOG" "$1" "${2:-0}" <<-'EOF'
		import json, sys
		rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
		rows = [r for r in rows if r["path"].startswith(sys.argv[2])]
		try:
		    print(json.dumps(rows[int(sys.argv[3])]))
		except IndexError:
		    sys.exit(1)
	EOF
}
# jget JSON PYEXPR: evaluates PYEXPR with d = the parsed JSON; strings print as they are,
# None as "null", anything else as JSON.  e.g. jget "$req" 'd["headers"]["X-Pipeline-Event"]'
jget() {
	python3 - "$1" "$2" <<-'EOF'
		import json, sys
		d = json.loads(sys.argv[1])
		try:
		    v = eval(sys.argv[2], {"json": json}, {"d": d})
		except (KeyError, IndexError, TypeError) as e:
		    v = "<missing: %r>" % (e,)
		print(v if isinstance(v, str) else json.dumps(v))
	EOF
}
# header JSON NAME: a request's header, case-insensitive ("" when absent)
header() {
	python3 - "$1" "$2" <<-'EOF'
		import json, sys
		h = json.loads(sys.argv[1])["headers"]
		print(next((v for k, v in h.items() if k.lower() == sys.argv[2].lower()), ""))
	EOF
}
# body_to_file JSON FILE: the exact body bytes of a recorded request
body_to_file() {
	python3 - "$1" "$2" <<-'EOF'
		import base64, json, sys
		open(sys.argv[2], "wb").write(base64.b64decode(json.loads(sys.argv[1])["body_b64"]))
	EOF
}

# ---------------------------------------------------------------- set-up and clean-up
# t_init [NAME]: names ($T_NAME, $T_ID, $T_LABEL), the temporary directory $T_DIR, the traps
t_init() {
	T_NAME=${1:-$(basename "$0" .sh)}
	T_NAME=${T_NAME//[^A-Za-z0-9_]/_}
	T_ID=cli_${T_NAME}_$$_$RANDOM
	T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/pl-cli-$T_NAME.XXXXXX")
	mkdir -p "$T_DIR/tmp"
	trap _t_exit EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
	if ! q "SELECT 1" >/dev/null; then
		echo "FAIL: cannot reach the database (PGHOST=${PGHOST:-} PGPORT=${PGPORT:-} PGDATABASE=${PGDATABASE:-})"
		exit 1
	fi
	note "$T_NAME: id $T_ID, pipelinectl $PIPELINECTL, directory $T_DIR"
}

# on_exit CMD: run CMD (eval) at exit, before the standard clean-up
on_exit() { T_CLEANUP+=("$1"); }

_t_exit() {
	local rc=$? i pid m
	trap - EXIT TERM INT
	set +e
	for ((i = ${#T_CLEANUP[@]} - 1; i >= 0; i--)); do eval "${T_CLEANUP[i]}"; done
	for pid in "${T_BG_PIDS[@]}"; do bg_stop "$pid"; done
	for m in "${T_MARKERS[@]}"; do
		for pid in $(pids_matching "$m"); do kill -KILL "$pid" 2>/dev/null; done
	done
	# the test's unfinished runs, and hook deliveries nobody will send now
	# (pipelines of this test: named $T_ID or ${T_ID}_...)
	q "SELECT count(pipeline.cancel_pipeline_task(id, 'test clean-up'))
	     FROM pipeline.pipeline_task
	    WHERE (pipeline_name = :'p' OR starts_with(pipeline_name, :'p' || '_')) AND stage < 'canceled'" \
		"p=$T_ID" >/dev/null 2>&1
	q "DELETE FROM pipeline.hook_delivery WHERE status IN ('pending', 'sending')
	     AND pipeline_task_id IN (SELECT id FROM pipeline.pipeline_task
	                               WHERE pipeline_name = :'p' OR starts_with(pipeline_name, :'p' || '_'))" \
		"p=$T_ID" >/dev/null 2>&1
	if ((rc != 0 && T_DONE == 0)); then
		fail "$T_NAME: the script stopped early (exit $rc)"
	fi
	if ((T_FAILED > 0)); then
		local f
		for f in "$T_DIR"/*.log; do
			[[ -s $f ]] || continue
			echo "----- $(basename "$f") (last 60 lines) -----"
			tail -n 60 "$f"
		done
	fi
	if [[ ${PL_CLI_KEEP:-0} == 1 ]]; then note "kept $T_DIR"; else rm -rf "$T_DIR"; fi
	echo "$T_PASSED passed, $T_FAILED failed"
	if ((T_FAILED > 0)); then exit 1; fi
	exit "$rc"
}

# t_done: the script reached its end
t_done() { T_DONE=1; }
