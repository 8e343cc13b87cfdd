#!/usr/bin/env bash
# exit_codes: SPEC §12 / issue 10 item 3 - exit status 2, with a message that says what to do,
# for setup, privilege and connection errors, and failing fast:
#   - a database without the extension: runner (with and without --exit-when-idle) and hookd
#     exit 2 within 10 s ("run CREATE EXTENSION pipeline"); watch, logs and graph exit 2;
#   - a role that may not use the schema, or may not execute the claim function: runner and
#     hookd exit 2 naming the grant;
#   - a role that does not exist: exit 2 at once (no retrying for ever);
#   - no server at all: runner/hookd --exit-when-idle --retry-for 2 give up with 2 after about
#     2 s, saying so once (not once per attempt); without --exit-when-idle, SIGTERM during the
#     retrying exits 2, not 0.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

DB=${T_ID}_noext
q "CREATE DATABASE \"$DB\"" >/dev/null
on_exit "q 'DROP DATABASE IF EXISTS \"$DB\"' >/dev/null 2>&1"
R1=${T_ID}_nousage
R2=${T_ID}_nogrant
q "CREATE ROLE \"$R1\" LOGIN; CREATE ROLE \"$R2\" LOGIN; GRANT USAGE ON SCHEMA pipeline TO \"$R2\"" >/dev/null
on_exit "q 'DROP OWNED BY \"$R1\", \"$R2\"; DROP ROLE IF EXISTS \"$R1\", \"$R2\"' >/dev/null 2>&1"

# ctl NAME LIMIT ARGS...: pipelinectl ARGS with a time limit; sets RC, SECS; output in $T_DIR/NAME.log
ctl() {
	local name=$1 limit=$2 start
	shift 2
	start=$(now)
	RC=0
	TMPDIR=$T_DIR/tmp timeout -k 2 "$limit" "$PIPELINECTL" "$@" </dev/null >"$T_DIR/$name.log" 2>&1 || RC=$?
	SECS=$(elapsed "$start")
}

for cmd in "runner --exit-when-idle" "runner" "hookd --exit-when-idle" "hookd"; do
	n=${cmd// /_}
	# shellcheck disable=SC2086
	ctl "noext_$n" 20 -d "$DB" $cmd --name "$T_ID-$n"
	is "$cmd on a database without the extension: exit 2" "$RC" 2
	cmp_num "... within 10 s" "$SECS" -lt 10
	like "... saying what to do" "$(cat "$T_DIR/noext_$n.log")" \
		"the extension \"pipeline\" is not installed in database \"$DB\": run CREATE EXTENSION pipeline"
done
for cmd in "watch 1" "logs 1" "graph 1"; do
	n=${cmd// /_}
	# shellcheck disable=SC2086
	ctl "noext_$n" 20 -d "$DB" $cmd
	is "$cmd on a database without the extension: exit 2" "$RC" 2
	like "... saying what to do" "$(cat "$T_DIR/noext_$n.log")" "run CREATE EXTENSION pipeline"
done

ctl nousage 20 -d "user=$R1" runner --exit-when-idle
is "runner as a role without USAGE on the schema: exit 2" "$RC" 2
like "... naming the grant" "$(cat "$T_DIR/nousage.log")" "GRANT USAGE ON SCHEMA pipeline TO \"$R1\""
ctl nogrant 20 -d "user=$R2" runner --exit-when-idle
is "runner as a role that may not claim: exit 2" "$RC" 2
like "... naming the function and the grant" "$(cat "$T_DIR/nogrant.log")" \
	"may not execute pipeline.claim_job_tasks\(text,int,jsonb,boolean\): GRANT EXECUTE"
ctl nogrant_hookd 20 -d "user=$R2" hookd --exit-when-idle
is "hookd as a role that may not claim: exit 2" "$RC" 2
like "... naming the function" "$(cat "$T_DIR/nogrant_hookd.log")" "may not execute pipeline.claim_hook_deliveries"

ctl norole 20 -d "user=${T_ID}_nosuchrole" runner
is "runner as a role that does not exist (no --exit-when-idle): exit 2" "$RC" 2
cmp_num "... at once (< 5 s)" "$SECS" -lt 5
like "... saying what to check" "$(cat "$T_DIR/norole.log")" "does not exist: check the role"

# no server: a socket directory where nothing listens
mkdir -p "$T_DIR/nosock"
NOSRV="host=$T_DIR/nosock port=5999 dbname=x"
for c in runner hookd; do
	ctl "nosrv_$c" 30 -d "$NOSRV" $c --exit-when-idle --retry-for 2
	is "$c --exit-when-idle --retry-for 2 without a server: exit 2" "$RC" 2
	cmp_num "... after about 2 s (>= 1.9)" "$SECS" -ge 1.9
	cmp_num "... not much later (< 6 s)" "$SECS" -lt 6
	is "... says it cannot connect once, not once per attempt" \
		"$(grep -c 'cannot connect to the database' "$T_DIR/nosrv_$c.log")" 1
	like "... and that it gives up" "$(cat "$T_DIR/nosrv_$c.log")" "no database connection for [0-9]+ s; giving up"

	bg_start "nosrv_bg_$c" "$PIPELINECTL" -d "$NOSRV" $c --name "$T_ID-bg"
	pid=$BG_PID
	sleep 1.5
	kill -TERM "$pid"
	bg_wait "$pid" 10
	is "$c without a server, SIGTERM while retrying: exit 2 (not 0)" "$BG_RC" 2
done
t_done
