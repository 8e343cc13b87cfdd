#!/usr/bin/env bash
# receiver: test/cli/receiver.py itself (the HTTP receiver the hook tests and scripts/demo use)
# does what its header says: answers by path (/ok, /status/N, /fail-then-ok/N counted per full
# path, /slow/S, /robot/*), records every request as a JSON line (path, query, headers, body and
# its exact bytes), writes its port file, and exits by itself: at once on SIGTERM even with a
# slow request in flight, and after --max-seconds.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

receiver_start 60
# hit PATH [CURL_ARGS]: prints "STATUS BODY"
hit() {
	local p=$1
	shift
	curl -sS -m 10 -o "$T_DIR/resp" -w '%{http_code}' "$@" "$RECV_URL$p"
	printf ' %s\n' "$(cat "$T_DIR/resp")"
}

is "/ok" "$(hit /ok -d x)" '200 {"ok": true}'
is "any other path: 200" "$(hit /some/where -d x)" '200 {"ok": true}'
is "/status/503" "$(hit /status/503/x -d x)" '503 {"status": 503}'
is "/fail-then-ok/2: 1st" "$(hit /fail-then-ok/2/a -d x | cut -c1-3)" 500
is "/fail-then-ok/2: 2nd" "$(hit /fail-then-ok/2/a -d x | cut -c1-3)" 500
is "/fail-then-ok/2: another path has its own count" "$(hit /fail-then-ok/2/b -d x | cut -c1-3)" 500
is "/fail-then-ok/2: 3rd" "$(hit /fail-then-ok/2/a -d x)" '200 {"ok": true}'
is "/robot/feishu" "$(hit /robot/feishu/x -d x)" '200 {"code": 0, "msg": "success"}'
is "/robot/dingtalk" "$(hit /robot/dingtalk -d x)" '200 {"errcode": 0, "errmsg": "ok"}'
is "/robot/wecom" "$(hit /robot/wecom -d x)" '200 {"errcode": 0, "errmsg": "ok"}'
like "/robot/error: HTTP 200 with an error code" "$(hit /robot/error -d x)" '^200 \{"errcode": 310000, '
like "/robot/feishu-error: HTTP 200 with an error code" "$(hit /robot/feishu-error -d x)" '^200 \{"code": 19021, '
t0=$(now)
is "/slow/1" "$(hit /slow/1/x)" '200 {"ok": true, "slept": 1.0}'
cmp_num "/slow/1 took about a second" "$(elapsed "$t0")" -ge 0.9

printf '{"k": "v\xc3\xa9"}\xff' >"$T_DIR/body.bin"
hit "/ok/record?a=b" -H 'X-Test: yes' --data-binary @"$T_DIR/body.bin" >/dev/null
r=$(recv_request /ok/record)
is "recorded: method, path, query" "$(jget "$r" 'd["method"] + " " + d["path"] + " " + d["query"]')" "POST /ok/record a=b"
is "recorded: headers as sent" "$(header "$r" X-Test)" yes
is "recorded: status and answer" "$(jget "$r" '[d["status"], d["response"]]')" '[200, "{\"ok\": true}"]'
body_to_file "$r" "$T_DIR/body.back"
ok "recorded: the exact body bytes (body_b64)" cmp "$T_DIR/body.bin" "$T_DIR/body.back"
is "recorded: the body as text, invalid bytes replaced" "$(jget "$r" 'd["body"]')" $'{"k": "v\xc3\xa9"}\xef\xbf\xbd'	# bytes: \u escapes need a UTF-8 locale
is "one line per request, numbered" "$(wc -l <"$RECV_LOG") $(jget "$(recv_request / -1)" 'd["seq"]')" "14 14"

# a slow request in flight does not hold up SIGTERM
curl -s -m 20 -o /dev/null "$RECV_URL/slow/15" &
T_BG_PIDS+=("$!")
ok "the slow request is recorded on arrival" wait_requests /slow/15 1 5
t0=$(now)
kill -TERM "$RECV_PID"
bg_wait "$RECV_PID" 5
is "SIGTERM: exits 0" "$BG_RC" 0
cmp_num "... at once, with a slow request in flight" "$(elapsed "$t0")" -lt 2

rm -f "$T_DIR/p2"
t0=$(now)
rc=0
timeout 10 python3 "$PL_ROOT/test/cli/receiver.py" --log "$T_DIR/r2.jsonl" --port-file "$T_DIR/p2" \
	--max-seconds 1 >"$T_DIR/r2.out" 2>&1 || rc=$?
is "--max-seconds 1: exits 0 by itself" "$rc" 0
cmp_num "... after about a second" "$(elapsed "$t0")" -lt 5
like "it printed where it listened" "$(cat "$T_DIR/r2.out")" "^listening on http://127\.0\.0\.1:[0-9]+$"
like "its port file holds the port" "$(cat "$T_DIR/p2")" "^[0-9]+$"

t_done
