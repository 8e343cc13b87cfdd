#!/usr/bin/env python3
"""receiver.py: a small HTTP receiver for webhooks and IM robot messages (tests, demo).

Python 3 standard library only.  Binds 127.0.0.1 on a free port (or --port), records
every request and answers according to the request's path.

Usage:
    python3 test/cli/receiver.py --log FILE [--port-file FILE] [--port N]
                                 [--max-seconds S] [--quiet]

    --log FILE         append one JSON line per request to FILE (created; "-" = stdout)
    --port-file FILE   write the chosen port there (atomically) once listening
    --port N           port to bind (default 0: a free one)
    --max-seconds S    exit by itself after S seconds (default 120)
    --quiet            no access lines on stderr

On start it prints "listening on http://127.0.0.1:PORT" on stdout.  It exits (0) on
SIGTERM/SIGINT or after --max-seconds.

Each request is recorded when it arrives, before the answer (so a slow one shows up
at once), as one JSON line:
    {"seq": 1, "time": 1700000000.123, "method": "POST", "path": "/robot/feishu",
     "query": "a=b", "headers": {"Content-Type": "...", ...},   (names as sent)
     "body": "<the body as UTF-8 text, invalid bytes replaced>",
     "body_b64": "<the exact body bytes, base64>",
     "status": 200, "response": "<the answer's body>"}

Answers, by path (any method; a path may go on with /anything, which is ignored by
the behaviour but makes the path unique, e.g. /fail-then-ok/2/test7-run42; counters
are kept per full path):
    /ok[/...]                 200 {"ok": true}                 (also any other path)
    /status/<code>[/...]      <code> {"status": <code>}   (204 and 304: no body at all)
    /empty[/...]              200 with an empty body (Content-Length: 0)
    /fail-then-ok/<n>[/...]   500 for the first n requests to this path, then 200
    /slow/<sec>[/...]         wait <sec> seconds (at most 60), then 200
    /robot/feishu[/...]       200 {"code": 0, "msg": "success"}       (Feishu / Lark)
    /robot/dingtalk[/...]     200 {"errcode": 0, "errmsg": "ok"}      (DingTalk)
    /robot/wecom[/...]        200 {"errcode": 0, "errmsg": "ok"}      (WeCom)
    /robot/error[/...]        200 {"errcode": 310000, "errmsg": "..."} (a robot refusing)
    /robot/feishu-error[/...] 200 {"code": 19021, "msg": "..."}       (Feishu refusing)

Reading the log from a shell, e.g. the bodies sent to one path:
    python3 -c 'import json,sys; [print(r["body"]) for r in map(json.loads, open(sys.argv[1]))
                if r["path"].startswith("/robot/")]' requests.jsonl
"""

import argparse
import base64
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

MAX_BODY = 8 * 1024 * 1024


class State:
    def __init__(self, log_path, quiet):
        self.lock = threading.Lock()
        self.seq = 0
        self.counts = {}
        self.quiet = quiet
        if log_path == "-":
            self.log = sys.stdout
        else:
            self.log = open(log_path, "a", encoding="utf-8")

    def next(self, path):
        with self.lock:
            self.seq += 1
            self.counts[path] = self.counts.get(path, 0) + 1
            return self.seq, self.counts[path]

    def record(self, entry):
        line = json.dumps(entry, ensure_ascii=False, sort_keys=True)
        with self.lock:
            self.log.write(line + "\n")
            self.log.flush()


def behaviour(path, count):
    """(status, response object, delay seconds) for the count-th request to path."""
    parts = [p for p in path.split("/") if p]
    head = parts[0] if parts else ""
    arg = parts[1] if len(parts) > 1 else ""
    if head == "empty":
        return 200, None, 0
    if head == "status":
        try:
            code = int(arg)
            if code in (204, 304):
                return code, None, 0
            if 100 <= code <= 599:
                return code, {"status": code}, 0
        except ValueError:
            pass
        return 400, {"error": "bad status code"}, 0
    if head == "fail-then-ok":
        try:
            n = int(arg)
        except ValueError:
            return 400, {"error": "bad count"}, 0
        if count <= n:
            return 500, {"error": "scripted failure %d of %d" % (count, n)}, 0
        return 200, {"ok": True}, 0
    if head == "slow":
        try:
            sec = min(60.0, max(0.0, float(arg)))
        except ValueError:
            return 400, {"error": "bad delay"}, 0
        return 200, {"ok": True, "slept": sec}, sec
    if head == "robot":
        if arg == "feishu":
            return 200, {"code": 0, "msg": "success"}, 0
        if arg in ("dingtalk", "wecom"):
            return 200, {"errcode": 0, "errmsg": "ok"}, 0
        if arg == "error":
            return 200, {"errcode": 310000, "errmsg": "keywords not in content"}, 0
        if arg == "feishu-error":
            return 200, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"}, 0
    return 200, {"ok": True}, 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pipeline-test-receiver/1"

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            chunks = []
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                if not size_line:
                    break
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = self.rfile.read(size)
                self.rfile.readline(1024)
                total += len(data)
                if total <= MAX_BODY:
                    chunks.append(data)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(min(n, MAX_BODY)) if n > 0 else b""
        if n > MAX_BODY:
            self.rfile.read(n - MAX_BODY)
        return data

    def _handle(self):
        st = self.server.state
        body = self._read_body()
        url = urlsplit(self.path)
        seq, count = st.next(url.path)
        status, resp, delay = behaviour(url.path, count)
        resp_bytes = b"" if resp is None else json.dumps(resp).encode()
        st.record({
            "seq": seq,
            "time": round(time.time(), 6),
            "method": self.command,
            "path": url.path,
            "query": url.query,
            "headers": {k: v for k, v in self.headers.items()},
            "body": body.decode("utf-8", errors="replace"),
            "body_b64": base64.b64encode(body).decode("ascii"),
            "status": status,
            "response": resp_bytes.decode(),
        })
        if delay:
            time.sleep(delay)
        try:
            self.send_response(status)
            if status not in (204, 304):
                if resp is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(resp_bytes)))
            self.end_headers()
            if self.command != "HEAD" and resp_bytes:
                self.wfile.write(resp_bytes)
        except (BrokenPipeError, ConnectionResetError):
            pass    # the client went away (e.g. a killed sender)

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def log_message(self, fmt, *args):
        if not self.server.state.quiet:
            sys.stderr.write("receiver: %s %s\n" % (self.address_string(), fmt % args))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description="HTTP receiver for webhook tests (see the top of this file)")
    ap.add_argument("--log", required=True)
    ap.add_argument("--port-file")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    srv = Server(("127.0.0.1", args.port), Handler)
    srv.state = State(args.log, args.quiet)
    port = srv.server_address[1]

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    print("listening on http://127.0.0.1:%d" % port, flush=True)

    stop.wait(args.max_seconds)
    srv.shutdown()
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
