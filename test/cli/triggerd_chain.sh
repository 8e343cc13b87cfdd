#!/usr/bin/env bash
# triggerd_chain: a git push through "pipelinectl triggerd" starts a pipeline whose success
# starts its chained pipeline (SPEC §15, README "Chaining" and "Triggers"), end to end: a real
# triggerd on 127.0.0.1 (a free port) connected as a role with only the README's triggerd
# grants, curl posting the GitHub push sample signed with openssl, a real runner.
#   - a bad signature: 401, neither pipeline starts (triggerd.sh covers the other refusals:
#     missing signatures, malformed and oversized bodies, other providers);
#   - the signed push: 202 with the run of the build pipeline, started with the GIT_* params;
#     its job reports runtime envs (ARTIFACT, BUILT_REF and DEPLOY_TOKEN, a fresh value under
#     the name of a param its job declares sensitive) through PIPELINE_OUTPUT;
#   - the build succeeds, and in the transaction of its end the deploy pipeline starts:
#     run_by pipeline:<build run>, labels parent_run and chain_depth, the build's `chained`
#     naming it, its created_at the build's end_at (one transaction, one now());
#   - the deploy job receives the build's runtime envs and the chain's own param (it prints
#     them from its environment); DEPLOY_TOKEN stays masked in its log and params (the build's
#     sensitive names are carried: the deploy's own job declares nothing sensitive);
#   - the deploy pipeline chains nothing on success; a failed build would start the
#     notify entry instead (on: [failed]), not the deploy one.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

FX=$PL_ROOT/test/fixtures/webhooks
M=$(marker_digits)
L='{"cli": "'$T_ID'"}'
GH_SECRET="gh-$M-chain"
TOKEN="tok-$M-fresh"
ROLE=${T_ID}_td
BUILD=${T_ID}_build
DEPLOY=${T_ID}_deploy
NOTIFY=${T_ID}_notify

# the deploy job prints what it received; the build job reports runtime envs
deploy_cmd=$(json_str 'echo "DEPLOY ARTIFACT=[$ARTIFACT] BUILT_REF=[$BUILT_REF] TARGET_ENV=[$TARGET_ENV] TOKEN=[$DEPLOY_TOKEN] GIT_REF=[${GIT_REF:-unset}]"')
build_cmd=$(json_str 'echo "BUILD $GIT_REF $GIT_SHA"
printf "ARTIFACT=widget-%s.tar.gz\nBUILT_REF=%s\nDEPLOY_TOKEN=tok-%s-fresh\n" "$(printf %s "$GIT_SHA" | cut -c1-7)" "$GIT_REF" "'$M'" >"$PIPELINE_OUTPUT"')
define_pipeline '{"name": "'$DEPLOY'", "stages": [{"name": "deploy", "tasks": [
  {"name": "ship", "job": {"command": '"$deploy_cmd"', "labels": '"$L"'}}]}]}'
define_pipeline '{"name": "'$NOTIFY'", "stages": [{"name": "notify", "tasks": [
  {"name": "mail", "job": {"command": "true", "labels": '"$L"'}}]}]}'
define_pipeline '{"name": "'$BUILD'",
  "next_pipelines": [{"pipeline": "'$DEPLOY'", "params": {"TARGET_ENV": "staging"}},
                     {"pipeline": "'$NOTIFY'", "on": ["failed"]}],
  "stages": [{"name": "build", "tasks": [
  {"name": "make", "job": {"command": '"$build_cmd"', "labels": '"$L"',
                           "params": [{"name": "DEPLOY_TOKEN", "default": "none", "sensitive": true}]}}]}]}'
q "SELECT pipeline.define_trigger(:'def')" "def={\"name\": \"${T_ID}_gh\", \"pipeline\": \"$BUILD\",
  \"provider\": \"github\", \"events\": [\"push\"], \"refs\": \"^refs/heads/main\$\", \"secret\": \"$GH_SECRET\"}" >/dev/null
on_exit "q \"SELECT pipeline.define_trigger(definition || jsonb_build_object('enabled', false, 'secret', 'disabled-' || name))
            FROM pipeline.triggers WHERE starts_with(name, :'p')\" \"p=${T_ID}_\" >/dev/null"
on_exit "q 'REVOKE ALL ON FUNCTION pipeline.fire_signed_trigger(text, bytea, text, text) FROM \"$ROLE\";
            REVOKE USAGE ON SCHEMA pipeline FROM \"$ROLE\"; DROP ROLE IF EXISTS \"$ROLE\"' >/dev/null"
q "CREATE ROLE \"$ROLE\" LOGIN;
   GRANT USAGE ON SCHEMA pipeline TO \"$ROLE\";
   GRANT EXECUTE ON FUNCTION pipeline.fire_signed_trigger(text, bytea, text, text) TO \"$ROLE\";"

runs_of() { q "SELECT count(*) FROM pipeline.pipeline_task WHERE pipeline_name = :'p'" "p=$1"; }

bg_start triggerd env PGUSER="$ROLE" "$PIPELINECTL" triggerd --listen 127.0.0.1:0
TD=$BG_PID
triggerd_url 15 "triggerd starts listening"
note "triggerd on $URL"


# ---------------------------------------------------------------- a bad signature starts nothing
post /hooks/github "$FX/github_push.json" "X-GitHub-Event: push" \
	"X-Hub-Signature-256: sha256=$(hmac "$FX/github_push.json" "not-$GH_SECRET")"
is "bad signature: 401" "$CODE" 401
is "no build, no deploy" "$(runs_of "$BUILD") $(runs_of "$DEPLOY")" "0 0"

# ---------------------------------------------------------------- the signed push
post /hooks/github "$FX/github_push.json" "X-GitHub-Event: push" \
	"X-Hub-Signature-256: sha256=$(hmac "$FX/github_push.json" "$GH_SECRET")"
is "signed GitHub push: 202" "$CODE" 202
like "the answer lists one run" "$BODY" '^\{"runs": \[[0-9]+\]\}$'
build=$(sed 's/[^0-9]//g' <<<"$BODY")
is "it is a run of the build pipeline, with the GIT_* params" \
	"$(q "SELECT pipeline_name || ' ' || (params->>'GIT_PROVIDER') || ' ' || (params->>'GIT_EVENT') || ' ' || (params->>'GIT_REF') || ' ' || (params->>'GIT_SHA')
	        FROM pipeline.pipeline_tasks WHERE id = :'r'" "r=${build:-0}")" \
	"$BUILD github push refs/heads/main 0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
is "nothing chained yet" "$(runs_of "$DEPLOY")" 0

# ---------------------------------------------------------------- the build runs, the deploy follows
ok "a runner runs the build" runner_once
is "the build succeeded" "$(run_stage "${build:-0}")" succeeded
like "the build job saw the GIT_* params" "$("$PIPELINECTL" logs "$(task_id "${build:-0}" build make)")" \
	'BUILD refs/heads/main 0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c'
deploy=$(q "SELECT id FROM pipeline.pipeline_task WHERE labels->>'parent_run' = :'r'" "r=${build:-0}")
is "one deploy run was chained" "$(runs_of "$DEPLOY")" 1
is "none of notify (it is chained on failure)" "$(runs_of "$NOTIFY")" 0
is "the deploy run: run_by and labels name the build run" \
	"$(q "SELECT run_by || ' ' || (labels->>'parent_run') || ' ' || (labels->>'chain_depth') FROM pipeline.pipeline_tasks WHERE id = :'d'" "d=${deploy:-0}")" \
	"pipeline:$build $build 1"
is "the build run records it" \
	"$(q "SELECT chained FROM pipeline.pipeline_tasks WHERE id = :'r'" "r=${build:-0}")" \
	"[{\"on\": \"succeeded\", \"run\": ${deploy:-0}, \"pipeline\": \"$DEPLOY\"}]"
is "started in the transaction that ended the build (same now())" \
	"$(q "SELECT b.end_at = d.created_at FROM pipeline.pipeline_task b, pipeline.pipeline_task d WHERE b.id = :'b' AND d.id = :'d'" "b=${build:-0}" "d=${deploy:-0}")" t
is "its params: the build's runtime envs and the chain's param, the sensitive one masked" \
	"$(q "SELECT params FROM pipeline.pipeline_tasks WHERE id = :'d'" "d=${deploy:-0}")" \
	'{"ARTIFACT": "widget-0d1a26e.tar.gz", "BUILT_REF": "refs/heads/main", "TARGET_ENV": "staging", "DEPLOY_TOKEN": "******"}'
rc=0
out=$("$PIPELINECTL" status "${build:-0}" 2>&1) || rc=$?
like "pipelinectl status of the build names the chained run" "$rc/$out" \
	"^0/.*"$'\n'"chained: $DEPLOY run ${deploy:-0} \\(on succeeded\\)\$"
if [[ $(run_stage "${deploy:-0}") != succeeded ]]; then
	ok "a runner runs the deploy" runner_once
fi
is "the deploy succeeded" "$(run_stage "${deploy:-0}")" succeeded
log=$("$PIPELINECTL" logs "$(task_id "${deploy:-0}" deploy ship)")
like "the deploy job received the build's runtime envs and its own param (not the build's params)" "$log" \
	'DEPLOY ARTIFACT=\[widget-0d1a26e\.tar\.gz\] BUILT_REF=\[refs/heads/main\] TARGET_ENV=\[staging\] TOKEN=\[\*\*\*\*\*\*\] GIT_REF=\[unset\]'
unlike "the token shows nowhere in the deploy's log" "$log" "$TOKEN"
is "no event of either run carries the token" \
	"$(q "SELECT count(*) FROM pipeline.event WHERE pipeline_task_id IN (:'b', :'d') AND payload::text LIKE '%' || :'k' || '%'" \
		"b=${build:-0}" "d=${deploy:-0}" "k=$TOKEN")" 0
is "the deploy chains nothing" "$(q "SELECT chained FROM pipeline.pipeline_tasks WHERE id = :'d'" "d=${deploy:-0}")" '[]'
unlike "the runner's log shows no token" "$(cat "$T_DIR/runner.log")" "$TOKEN"
is "the build run holds the token, masked by name where people look" \
	"$(q "SELECT (t.runtime_envs->>'DEPLOY_TOKEN' = :'k') || ' ' || (v.runtime_envs->>'DEPLOY_TOKEN')
	        FROM pipeline.pipeline_task t JOIN pipeline.pipeline_tasks v USING (id) WHERE t.id = :'b'" "b=${build:-0}" "k=$TOKEN")" \
	"true ******"

kill -TERM "$TD"
bg_wait "$TD" 10
is "SIGTERM: triggerd exits 0" "$BG_RC" 0
unlike "the triggerd log shows no secret" "$(cat "$T_DIR/triggerd.log")" "$GH_SECRET"
t_done
