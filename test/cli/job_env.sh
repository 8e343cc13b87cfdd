#!/usr/bin/env bash
# job_env: issue 9 item 2 - jobs do not inherit the runner's database credentials.
#   - A runner started with PGHOST/PGPORT/PGUSER/PGPASSWORD/PGPASSFILE/PGDATABASE/PGAPPNAME/
#     PGSSLMODE/PGOPTIONS in its environment and a -d conninfo holding a password (a role that
#     logs in with a password over TCP, when the test may add a pg_hba.conf line for it): the
#     job's environment has no PG* variable, the password appears nowhere in its output (not in
#     env, not in the runner's /proc cmdline), and psql from the job, told the host, port, database
#     and role, cannot connect (no password) - it could with the runner's environment.
#   - --job-user nobody (the runner is root): the command runs as that uid, can write its work
#     directory and PIPELINE_OUTPUT (its runtime env is reported), HOME/USER are nobody's, and it
#     cannot read the runner's password file or environment.
#   - --job-user from a non-root runner: exit 2 with a message.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

M=$(marker_digits)
PW="pw-$T_ID-$M"
ROLE=${T_ID}_ci
L='{"cli": "'$T_ID'"}'
q "CREATE ROLE \"$ROLE\" LOGIN PASSWORD '$PW';
   GRANT USAGE ON SCHEMA pipeline TO \"$ROLE\";
   GRANT EXECUTE ON FUNCTION pipeline.mask_params(jsonb, text[]),
       pipeline.claim_job_tasks(text, int, jsonb, boolean),
       pipeline.update_job_task_statuses(jsonb),
       pipeline.update_job_task_status(bigint, pipeline.task_stage, text, text, jsonb, jsonb, jsonb, boolean, boolean),
       pipeline.heartbeat(bigint, text), pipeline.append_job_task_log(bigint, text, text),
       pipeline.runtime_env_name_allowed(text) TO \"$ROLE\";
   GRANT SELECT ON pipeline.job_tasks TO \"$ROLE\"" >/dev/null
on_exit "q 'DROP OWNED BY \"$ROLE\"; DROP ROLE IF EXISTS \"$ROLE\"' >/dev/null 2>&1"

# a password line for the role in pg_hba.conf (first match wins), so that the password matters
HBA_DONE=0
if [[ -n ${PL_PGDATA:-} && -w ${PL_PGDATA:-/nonexistent}/pg_hba.conf ]]; then
	HBA=$PL_PGDATA/pg_hba.conf
	cp "$HBA" "$T_DIR/pg_hba.orig"
	{ printf 'host all "%s" 127.0.0.1/32 scram-sha-256\n' "$ROLE"; cat "$T_DIR/pg_hba.orig"; } >"$T_DIR/pg_hba.new"
	cat "$T_DIR/pg_hba.new" >"$HBA" # in place: owner and mode stay
	on_exit "cat '$T_DIR/pg_hba.orig' >'$HBA'; q 'SELECT pg_reload_conf()' >/dev/null"
	q "SELECT pg_reload_conf()" >/dev/null
	sleep 0.5
	HBA_DONE=1
	rc=0
	PGPASSWORD= psql -X -w -h 127.0.0.1 -U "$ROLE" -c "select 1" >/dev/null 2>&1 || rc=$?
	isnt "the role needs its password over TCP (pg_hba.conf line in place)" "$rc" 0
else
	note "PL_PGDATA/pg_hba.conf not writable: the role is not password-checked (trust)"
fi

cmd=$(json_str 'env; echo "---cmdline"; tr "\0" " " </proc/$PPID/cmdline; echo; echo "---psql"
psql -X -w -A -t -h 127.0.0.1 -p "$DBPORT" -d "$DBNAME" -U "$DBROLE" -c "select '"'"'CONNECTED-'"'"' || current_user" 2>&1
echo "psql-rc=$?"')
define_pipeline '{"name": "'$T_ID'", "stages": [{"name": "s", "tasks": [{"name": "t",
  "job": {"command": '"$cmd"', "labels": '"$L"',
          "params": [{"name": "DBPORT", "default": "'$PGPORT'"}, {"name": "DBNAME", "default": "'$PGDATABASE'"},
                     {"name": "DBROLE", "default": "'$ROLE'"}]}}]}]}'
printf '*:*:*:%s:%s\n' "$ROLE" "$PW" >"$T_DIR/pgpass"
chmod 600 "$T_DIR/pgpass"
run=$(run_pipeline "$T_ID")
rc=0
PGHOST=127.0.0.1 PGPORT=$PGPORT PGUSER=$ROLE PGPASSWORD=$PW PGPASSFILE=$T_DIR/pgpass PGDATABASE=$PGDATABASE \
	PGAPPNAME=runner-$M PGSSLMODE=disable PGOPTIONS="-c application_name=runner-$M" \
	runner_once -d "host=127.0.0.1 port=$PGPORT dbname=$PGDATABASE user=$ROLE password=$PW" || rc=$?
is "the runner (connected as $ROLE with a password) ran the task and exits 0" "$rc" 0
t=$(task_id "$run" s t)
is "the task succeeded" "$(task_stage "$t")" succeeded
out=$("$PIPELINECTL" logs "$t")
env_part=${out%%---cmdline*}
is "the job's environment has no PG* variable" "$(grep -E '^PG[A-Z_]*=' <<<"$env_part" || true)" ""
unlike "the password is nowhere in the job's output (env, the runner's cmdline)" "$out" "$PW"
like "the runner's cmdline was read (and shows no conninfo)" "$out" "---cmdline"$'\n'".*runner"
unlike "psql from the job did not connect" "$out" "CONNECTED-"
like "... it failed (exit 2)" "$out" "psql-rc=2"
if ((HBA_DONE)); then
	like "... for want of a password" "$out" "password"
fi

# --job-user
if [[ $(id -u) -eq 0 ]] && id nobody >/dev/null 2>&1; then
	chmod 711 "$T_DIR" "$T_DIR/tmp"
	nuid=$(id -u nobody)
	cmd2=$(json_str 'echo "uid=$(id -u) home=$HOME user=$USER"; touch ./written && echo wrote-workdir
echo JOBUSER_OK=yes >> "$PIPELINE_OUTPUT"
cat "$PASSFILE" >/dev/null 2>&1 && echo READ-PASSFILE || echo no-passfile
cat /proc/$PPID/environ >/dev/null 2>&1 && echo READ-RUNNER-ENV || echo no-runner-env')
	define_pipeline '{"name": "'$T_ID'_ju", "stages": [{"name": "s", "tasks": [{"name": "t",
	  "job": {"command": '"$cmd2"', "labels": '"$L"', "params": [{"name": "PASSFILE", "default": "'$T_DIR/pgpass'"}]}}]}]}'
	run2=$(run_pipeline "${T_ID}_ju")
	rc=0
	PGPASSWORD=$PW runner_once --job-user nobody || rc=$?
	is "runner --job-user nobody exits 0" "$rc" 0
	t2=$(task_id "$run2" s t)
	is "the task succeeded" "$(task_stage "$t2")" succeeded
	out2=$("$PIPELINECTL" logs "$t2")
	like "the command ran as nobody's uid, with nobody's HOME and USER" "$out2" \
		"uid=$nuid home=$(getent passwd nobody | cut -d: -f6) user=nobody"
	like "it could write its work directory" "$out2" "wrote-workdir"
	is "its runtime env was reported" "$(task_field "$t2" "runtime_envs->>'JOBUSER_OK'")" yes
	like "it could not read the runner's password file" "$out2" "no-passfile"
	like "it could not read the runner's environment" "$out2" "no-runner-env"
	rc=0
	runuser -u nobody -- "$PIPELINECTL" runner --job-user nobody --exit-when-idle >"$T_DIR/nonroot.log" 2>&1 || rc=$?
	is "--job-user from a non-root runner: exit 2" "$rc" 2
	like "... saying why" "$(cat "$T_DIR/nonroot.log")" "needs the runner to run as root"
else
	note "not root or no user nobody: --job-user not tested"
fi
t_done
