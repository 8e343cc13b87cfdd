#!/usr/bin/env bash
# triggerd_valgrind: a short "pipelinectl triggerd" session under valgrind --leak-check=full
# (--errors-for-leak-kinds=definite,indirect --error-exitcode=99), going through every answer:
# GET /healthz, a signed GitHub push (202 with a run), a push that matches nothing (202, no run),
# a bad and a missing signature (401), a malformed body (400), bodies over --max-body by
# Content-Length and chunked (413), 404, 405, 415, and a client that hangs up mid-body; then
# SIGTERM.  It must exit 0 with an empty valgrind report (kept apart from valgrind.sh, which
# other commands' tests edit).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

command -v valgrind >/dev/null || { fail "valgrind is installed (scripts/lib.sh installs it)"; exit 1; }
FX=$PL_ROOT/test/fixtures/webhooks
M=$(marker_digits)
SECRET="vg-$M-secret"
define_pipeline '{"name": "'$T_ID'", "stages": [{"name": "s", "tasks": [
  {"name": "t", "job": {"command": "true", "labels": {"cli": "'$T_ID'"}}}]}]}'
q "SELECT pipeline.define_trigger(:'def')" "def={\"name\": \"${T_ID}_gh\", \"pipeline\": \"$T_ID\",
  \"provider\": \"github\", \"refs\": \"^refs/heads/main\$\", \"secret\": \"$SECRET\"}" >/dev/null
on_exit "q \"SELECT pipeline.define_trigger(definition || jsonb_build_object('enabled', false, 'secret', 'disabled-' || name))
            FROM pipeline.triggers WHERE starts_with(name, :'p')\" \"p=${T_ID}_\" >/dev/null"

bg_start triggerd timeout -k 5 180 valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
	--error-exitcode=99 --show-leak-kinds=definite,indirect --track-fds=no --log-file="$T_DIR/vg.log" \
	"$PIPELINECTL" triggerd --listen 127.0.0.1:0 --max-body 8192
TD=$BG_PID
triggerd_url 60 "triggerd starts under valgrind"

# code ARGS...: the HTTP status curl gets
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 60 "$@"; }
J=(-H 'Content-Type: application/json')

is "healthz" "$(code "$URL/healthz")" 200
is "signed push: 202" "$(code -X POST "${J[@]}" -H 'X-GitHub-Event: push' \
	-H "X-Hub-Signature-256: sha256=$(hmac "$FX/github_push.json" "$SECRET")" \
	--data-binary "@$FX/github_push.json" "$URL/hooks/github")" 202
is "the push started a run" "$(q "SELECT count(*) FROM pipeline.pipeline_task WHERE pipeline_name = :'p'" "p=$T_ID")" 1
is "signed tag (no match): 202" "$(code -X POST "${J[@]}" -H 'X-GitHub-Event: push' \
	-H "X-Hub-Signature-256: sha256=$(hmac "$FX/github_tag.json" "$SECRET")" \
	--data-binary "@$FX/github_tag.json" "$URL/hooks/github")" 202
is "bad signature: 401" "$(code -X POST "${J[@]}" -H "X-Hub-Signature-256: sha256=$(hmac "$FX/github_push.json" x)" \
	--data-binary "@$FX/github_push.json" "$URL/hooks/github")" 401
is "no signature: 401" "$(code -X POST "${J[@]}" --data-binary "@$FX/github_push.json" "$URL/hooks/gitea")" 401
printf '{"ref": ' >"$T_DIR/bad.json"
is "malformed: 400" "$(code -X POST "${J[@]}" -H "X-Hub-Signature-256: sha256=$(hmac "$T_DIR/bad.json" "$SECRET")" \
	--data-binary "@$T_DIR/bad.json" "$URL/hooks/github")" 400
head -c 20000 /dev/zero | tr '\0' ' ' >"$T_DIR/big.json"
is "too large: 413" "$(code -X POST "${J[@]}" -H 'X-Hub-Signature-256: sha256=00' \
	--data-binary "@$T_DIR/big.json" "$URL/hooks/github")" 413
is "too large, chunked: 413" "$(code -X POST "${J[@]}" -H 'Transfer-Encoding: chunked' -H 'X-Hub-Signature-256: sha256=00' \
	--data-binary "@$T_DIR/big.json" "$URL/hooks/github")" 413
is "404" "$(code -X POST --data-binary '{}' "$URL/nowhere")" 404
is "405" "$(code "$URL/hooks/gitlab")" 405
is "415" "$(code -X POST -H 'Content-Type: text/plain' --data-binary '{}' "$URL/hooks/generic")" 415
# a client that promises 5000 bytes, sends 10 and hangs up
python3 - "$URL" <<'EOF'
import socket, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
s = socket.create_connection((u.hostname, u.port))
s.sendall(b"POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"X-Hub-Signature-256: sha256=00\r\nContent-Length: 5000\r\n\r\n{\"ref\": \"r")
s.close()
EOF
is "still answering after the hang-up" "$(code "$URL/healthz")" 200

kill -TERM "$TD"
bg_wait "$TD" 60
is "SIGTERM: exit 0 under valgrind" "$BG_RC" 0
is "valgrind reports nothing" "$(grep -v '^==[0-9]*== *$' "$T_DIR/vg.log" 2>/dev/null | head -n 40)" ""
t_done
