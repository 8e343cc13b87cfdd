#!/usr/bin/env bash
# triggerd: "pipelinectl triggerd" on 127.0.0.1 (a free port) receiving real signed webhooks from
# curl (SPEC §15, README "Triggers"), connected as a role with only the README's triggerd grants:
#   - the GitHub push sample (test/fixtures/webhooks), signed with openssl dgst -hmac over the raw
#     body: 202 {"runs": [id]}; the run is of the trigger's pipeline, with the GIT_* params and the
#     trigger's params, and a real runner prints them from the job's environment;
#   - a bad, a missing and a wrong-prefix signature: 401, nothing started, nothing recorded;
#   - a signed malformed body: 400; a body over --max-body (by Content-Length, and chunked): 413;
#     none starts anything;
#   - a signed push of a branch the trigger does not match: 202 {"runs": []} and the event is
#     recorded with the reason;
#   - GitLab (X-Gitlab-Token, Tag Push Hook), Gitea (X-Gitea-Signature) and generic
#     (X-Pipeline-Signature) samples start their triggers' runs; a wrong GitLab token gets 401;
#   - 404, 405, 415, GET /healthz; the log never shows a secret or a signature; SIGTERM: exit 0.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

FX=$PL_ROOT/test/fixtures/webhooks
M=$(marker_digits)
L='{"cli": "'$T_ID'"}'
GH_SECRET="gh-$M-secret"
LAB_TOKEN="lab-$M-token"
TEA_SECRET="tea-$M-secret"
GEN_SECRET="gen-$M-secret"
ROLE=${T_ID}_td

cmd=$(json_str 'echo "GIT=[$GIT_PROVIDER|$GIT_EVENT|$GIT_REPO|$GIT_REF|$GIT_SHA|$GIT_AUTHOR] TARGET=[$TARGET]"')
define_pipeline '{"name": "'$T_ID'", "stages": [{"name": "build", "tasks": [
  {"name": "show", "job": {"command": '"$cmd"', "labels": '"$L"',
                           "params": [{"name": "TARGET", "default": "none"}]}}]}]}'
define_pipeline '{"name": "'${T_ID}_rel'", "stages": [{"name": "release", "tasks": [
  {"name": "show", "job": {"command": '"$cmd"', "labels": '"$L"'}}]}]}'

define_trigger() { q "SELECT pipeline.define_trigger(:'def')" "def=$1" >/dev/null; }
# the GitHub trigger as code: "pipelinectl apply" of a kind: trigger document
cat >"$T_DIR/trigger.yaml" <<EOF
kind: trigger
name: ${T_ID}_gh
pipeline: $T_ID
provider: github
events: [push]
refs: ^refs/heads/main\$
secret: $GH_SECRET
params:
  TARGET: linux
EOF
rc=0
out=$("$PIPELINECTL" apply -f "$T_DIR/trigger.yaml" 2>&1) || rc=$?
is "apply of a kind: trigger document" "$rc/$out" "0/trigger ${T_ID}_gh: version 1"
sed -e 's/^provider: github/provider: svn/' "$T_DIR/trigger.yaml" >"$T_DIR/badtrigger.yaml"
rc=0
out=$("$PIPELINECTL" apply -f "$T_DIR/badtrigger.yaml" 2>&1) || rc=$?
like "a refused trigger document: exit 1 at the line of the bad key" "$rc/$out" \
	"^1/$T_DIR/badtrigger.yaml:4:1: provider: \"svn\" is not a provider"
unlike "the refusal does not show the secret" "$out" "$GH_SECRET"
define_trigger '{"name": "'${T_ID}_lab'", "pipeline": "'${T_ID}_rel'", "provider": "gitlab",
  "events": ["tag"], "secret": "'$LAB_TOKEN'"}'
define_trigger '{"name": "'${T_ID}_tea'", "pipeline": "'${T_ID}_rel'", "provider": "gitea",
  "events": ["tag"], "refs": "^refs/tags/v", "secret": "'$TEA_SECRET'"}'
define_trigger '{"name": "'${T_ID}_gen'", "pipeline": "'$T_ID'", "provider": "generic",
  "secret": "'$GEN_SECRET'"}'
# at exit: the triggers disabled (later tests must not start these pipelines), the role dropped
on_exit "q \"SELECT pipeline.define_trigger(definition || jsonb_build_object('enabled', false, 'secret', 'disabled-' || name))
            FROM pipeline.triggers WHERE starts_with(name, :'p')\" \"p=${T_ID}_\" >/dev/null"
on_exit "q 'REVOKE ALL ON FUNCTION pipeline.fire_signed_trigger(text, bytea, text, text) FROM \"$ROLE\";
            REVOKE USAGE ON SCHEMA pipeline FROM \"$ROLE\"; DROP ROLE IF EXISTS \"$ROLE\"' >/dev/null"

# the receiver's role: the grants of README "Privileges" and nothing else
q "CREATE ROLE \"$ROLE\" LOGIN;
   GRANT USAGE ON SCHEMA pipeline TO \"$ROLE\";
   GRANT EXECUTE ON FUNCTION pipeline.fire_signed_trigger(text, bytea, text, text) TO \"$ROLE\";"

runs_of() {
	q "SELECT count(*) FROM pipeline.pipeline_task WHERE pipeline_name IN (:'a', :'b')" \
		"a=$T_ID" "b=${T_ID}_rel"
}
events() { q "SELECT count(*) FROM pipeline.trigger_event"; }

bg_start triggerd env PGUSER="$ROLE" "$PIPELINECTL" triggerd --listen 127.0.0.1:0 --max-body 65536
TD=$BG_PID
triggerd_url 15 "triggerd starts listening"
note "triggerd on $URL"


is "GET /healthz: 200" "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")" 200

# ---------------------------------------------------------------- a signed GitHub push
r0=$(runs_of)
e0=$(events)
post /hooks/github "$FX/github_push.json" "X-GitHub-Event: push" \
	"X-Hub-Signature-256: sha256=$(hmac "$FX/github_push.json" "$GH_SECRET")"
is "signed GitHub push: 202" "$CODE" 202
like "the answer lists one run" "$BODY" '^\{"runs": \[[0-9]+\]\}$'
run=$(sed 's/[^0-9]//g' <<<"$BODY")
is "one run started" "$(($(runs_of) - r0))" 1
is "the run is of the trigger's pipeline, started by the trigger" \
	"$(q "SELECT pipeline_name || ' ' || run_by || ' ' || (labels->>'trigger') FROM pipeline.pipeline_tasks WHERE id = :'r'" "r=$run")" \
	"$T_ID trigger:${T_ID}_gh ${T_ID}_gh"
is "its params: the GIT_* of the sample and the trigger's" \
	"$(q "SELECT params FROM pipeline.pipeline_tasks WHERE id = :'r'" "r=$run")" \
	'{"TARGET": "linux", "GIT_REF": "refs/heads/main", "GIT_SHA": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "GIT_REPO": "acme/widget", "GIT_EVENT": "push", "GIT_AUTHOR": "octo-dev", "GIT_PROVIDER": "github"}'
ok "a runner runs it" runner_once
is "the run succeeded" "$(run_stage "$run")" succeeded
like "the job saw the GIT_* params in its environment" "$("$PIPELINECTL" logs "$(task_id "$run" build show)")" \
	'GIT=\[github\|push\|acme/widget\|refs/heads/main\|0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c\|octo-dev\] TARGET=\[linux\]'
is "the event is recorded with the run" \
	"$(q "SELECT provider_event || ' ' || event_type || ' ' || (runs = ARRAY[:'r'::bigint]) || ' ' || payload_bytes
	        FROM pipeline.trigger_events ORDER BY id DESC LIMIT 1" "r=$run")" \
	"push push true $(wc -c <"$FX/github_push.json")"
is "one event recorded" "$(($(events) - e0))" 1

# ---------------------------------------------------------------- refused requests start nothing
r1=$(runs_of)
e1=$(events)
other=$(hmac "$FX/github_push.json" "not-the-secret")
post /hooks/github "$FX/github_push.json" "X-GitHub-Event: push" "X-Hub-Signature-256: sha256=$other"
is "bad signature: 401" "$CODE" 401
like "the answer says why" "$BODY" 'signature matches no enabled trigger'
post /hooks/github "$FX/github_push.json" "X-GitHub-Event: push"
is "no signature: 401" "$CODE" 401
post /hooks/github "$FX/github_push.json" "X-GitHub-Event: push" \
	"X-Hub-Signature-256: sha1=$(hmac "$FX/github_push.json" "$GH_SECRET")"
is "wrong signature prefix: 401" "$CODE" 401
post /hooks/github "$FX/github_push.json" "X-GitHub-Event: push" "X-Hub-Signature-256: $GH_SECRET"
is "the secret itself as the signature: 401" "$CODE" 401
printf '{"ref": "refs/heads/main", "after": ' >"$T_DIR/bad.json"
post /hooks/github "$T_DIR/bad.json" "X-GitHub-Event: push" \
	"X-Hub-Signature-256: sha256=$(hmac "$T_DIR/bad.json" "$GH_SECRET")"
is "signed malformed body: 400" "$CODE" 400
like "the answer says it is not JSON" "$BODY" 'not valid JSON'
printf '[1, 2, 3]' >"$T_DIR/array.json"
post /hooks/github "$T_DIR/array.json" "X-Hub-Signature-256: sha256=$(hmac "$T_DIR/array.json" "$GH_SECRET")"
is "signed JSON that is not an object: 400" "$CODE" 400
python3 -c 'import json; print(json.dumps({"ref": "refs/heads/main", "after": "ab", "commits": [], "pad": "x" * 70000}))' >"$T_DIR/big.json"
post /hooks/github "$T_DIR/big.json" "X-GitHub-Event: push" \
	"X-Hub-Signature-256: sha256=$(hmac "$T_DIR/big.json" "$GH_SECRET")"
is "signed body over --max-body: 413" "$CODE" 413
post /hooks/github "$T_DIR/big.json" "X-GitHub-Event: push" "Transfer-Encoding: chunked" \
	"X-Hub-Signature-256: sha256=$(hmac "$T_DIR/big.json" "$GH_SECRET")"
is "the same, chunked (no Content-Length): 413" "$CODE" 413
is "none of them started a run" "$(runs_of)" "$r1"
is "none of them was recorded" "$(events)" "$e1"

# ---------------------------------------------------------------- a branch the trigger does not match
sed 's#"ref": "refs/heads/main"#"ref": "refs/heads/feature/t13"#' "$FX/github_push.json" >"$T_DIR/feature.json"
post /hooks/github "$T_DIR/feature.json" "X-GitHub-Event: push" \
	"X-Hub-Signature-256: sha256=$(hmac "$T_DIR/feature.json" "$GH_SECRET")"
is "signed push of another branch: 202" "$CODE" 202
is "no run in the answer" "$BODY" '{"runs": []}'
is "no run started" "$(runs_of)" "$r1"
is "the event is recorded with the trigger's reason" \
	"$(q "SELECT ref || ' | ' || reason || ' | ' || (triggers->0->>'reason') FROM pipeline.trigger_events ORDER BY id DESC LIMIT 1")" \
	'refs/heads/feature/t13 | no trigger matched | ref refs/heads/feature/t13 does not match refs "^refs/heads/main$"'

# ---------------------------------------------------------------- GitLab, Gitea, generic
post /hooks/gitlab "$FX/gitlab_tag.json" "X-Gitlab-Event: Tag Push Hook" "X-Gitlab-Token: $LAB_TOKEN"
is "GitLab tag push with its token: 202" "$CODE" 202
lab=$(sed 's/[^0-9]//g' <<<"$BODY")
is "it started the tag pipeline with the GitLab fields" \
	"$(q "SELECT pipeline_name || ' ' || (params->>'GIT_PROVIDER') || ' ' || (params->>'GIT_EVENT') || ' ' || (params->>'GIT_REF') || ' ' || (params->>'GIT_REPO') || ' ' || (params->>'GIT_AUTHOR') || ' ' || (params->>'GIT_SHA')
	        FROM pipeline.pipeline_tasks WHERE id = :'r'" "r=${lab:-0}")" \
	"${T_ID}_rel gitlab tag refs/tags/v1.2.0 acme/widget release-bot 82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"
post /hooks/gitlab "$FX/gitlab_tag.json" "X-Gitlab-Event: Tag Push Hook" "X-Gitlab-Token: ${LAB_TOKEN}x"
is "GitLab with a wrong token: 401" "$CODE" 401
post /hooks/gitlab "$FX/gitlab_push.json" "X-Gitlab-Event: Push Hook" "X-Gitlab-Token: $LAB_TOKEN"
is "GitLab branch push (the trigger wants tags): 202, no run" "$CODE $BODY" '202 {"runs": []}'
post /hooks/gitea "$FX/gitea_tag.json" "X-Gitea-Event: push" \
	"X-Gitea-Signature: $(hmac "$FX/gitea_tag.json" "$TEA_SECRET")"
is "Gitea tag push, signed: 202" "$CODE" 202
tea=$(sed 's/[^0-9]//g' <<<"$BODY")
is "it started the tag pipeline with the Gitea fields" \
	"$(q "SELECT (params->>'GIT_PROVIDER') || ' ' || (params->>'GIT_EVENT') || ' ' || (params->>'GIT_REF') || ' ' || (params->>'GIT_AUTHOR')
	        FROM pipeline.pipeline_tasks WHERE id = :'r'" "r=${tea:-0}")" \
	"gitea tag refs/tags/v1.2.0 release-bot"
post /hooks/generic "$FX/generic_push.json" \
	"X-Pipeline-Signature: sha256=$(hmac "$FX/generic_push.json" "$GEN_SECRET")"
is "generic push, signed: 202" "$CODE" 202
gen=$(sed 's/[^0-9]//g' <<<"$BODY")
is "it started the pipeline with the generic fields" \
	"$(q "SELECT (params->>'GIT_PROVIDER') || ' ' || (params->>'GIT_EVENT') || ' ' || (params->>'GIT_REF') || ' ' || (params->>'GIT_SHA') || ' ' || (params->>'GIT_AUTHOR')
	        FROM pipeline.pipeline_tasks WHERE id = :'r'" "r=${gen:-0}")" \
	"generic push refs/heads/main 4b825dc642cb6eb9a060e54bf8d69288fbee4904 ci-bridge"
ok "a runner runs the three" runner_once
is "they succeeded" "$(run_stage "${lab:-0}") $(run_stage "${tea:-0}") $(run_stage "${gen:-0}")" "succeeded succeeded succeeded"

# ---------------------------------------------------------------- HTTP refusals
is "POST /hooks/bitbucket: 404" "$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary '{}' "$URL/hooks/bitbucket")" 404
is "GET /hooks/github: 405" "$(curl -s -o /dev/null -w '%{http_code}' "$URL/hooks/github")" 405
is "form-encoded body: 415" "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'X-Hub-Signature-256: sha256=00' \
	-H 'Content-Type: application/x-www-form-urlencoded' --data-binary 'payload=%7B%7D' "$URL/hooks/github")" 415

# ---------------------------------------------------------------- the log, and stopping
unlike "the log shows no secret or token" "$(cat "$T_DIR/triggerd.log")" "($GH_SECRET|$LAB_TOKEN|$TEA_SECRET|$GEN_SECRET)"
unlike "the log shows no signature" "$(cat "$T_DIR/triggerd.log")" "$(hmac "$FX/github_push.json" "$GH_SECRET")"
kill -TERM "$TD"
bg_wait "$TD" 10
is "SIGTERM: triggerd exits 0" "$BG_RC" 0
t_done
