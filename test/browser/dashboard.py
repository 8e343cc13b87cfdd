# dashboard.py: the checks of "pipelinectl serve" in headless Chromium (run by test/t/050_serve.pl,
# which sets up the cluster, the roles, a real runner and two dashboards, and passes):
#   URL_A     a dashboard started with --login (anonymous visitors must see nothing)
#   URL_B     a dashboard started with --read-only-role pl_viewer
#   RUN       the run of pipeline "web", run_by "<script>..." (task names are validated by the
#             engine; run_by is free text) (build: output with <script>, test: "slow", which
#             waits for the file RELEASE, deploy: "ship" behind an audit gate for ci_auditor)
#   PGCONN    a superuser connection string (psql) to compare with the tables
#   SCREENSHOT where to write the run page's screenshot
# Prints one "ok - ..." / "not ok - ..." line per check; anything else is a note.
import http.client
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cdp  # noqa: E402
import promtext  # noqa: E402

A, B = os.environ['URL_A'], os.environ['URL_B']
RUN = os.environ['RUN']
PGCONN = os.environ['PGCONN']
RELEASE = os.environ['RELEASE']
SHOT = os.environ['SCREENSHOT']


def ok(cond, desc, extra=None):
    print(('ok - ' if cond else 'not ok - ') + desc, flush=True)
    if not cond and extra is not None:
        print('#   got: ' + repr(extra)[:600], flush=True)
    return cond


def sql(q):
    r = subprocess.run(['psql', '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', PGCONN, '-c', q],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f'{q}: {r.stderr}')
    return r.stdout.strip()


def wait_sql(q, expected, timeout=60):
    deadline = time.time() + timeout
    got = None
    while time.time() < deadline:
        got = sql(q)
        if got == expected:
            return True
        time.sleep(0.2)
    print(f'# timed out: [{q}] = [{got}], wanted [{expected}]')
    return False


def req(method, url, form=None, cookie=None, headers=None):
    """One request, redirects not followed: (status, headers dict (lowercase), body text)."""
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    h = dict(headers or {})
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        h['Content-Type'] = 'application/x-www-form-urlencoded'
    if cookie:
        h['Cookie'] = cookie
    c.request(method, u.path + ('?' + u.query if u.query else ''), body=body, headers=h)
    r = c.getresponse()
    text = r.read().decode('utf-8', errors='replace')
    hd = {}
    for k, v in r.getheaders():
        hd.setdefault(k.lower(), []).append(v)
    c.close()
    return r.status, hd, text


def cookie_of(headers, old=None):
    for v in headers.get('set-cookie', []):
        m = re.match(r'(pl_session=[^;]*)', v)
        if m:
            return m.group(1)
    return old


def csrf_of(html):
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    return m.group(1) if m else None


def task_id(name):
    return sql(f"SELECT id FROM pipeline.job_tasks WHERE pipeline_task_id = {RUN} AND task_name = '{name}'")


BUILD = sql(f"SELECT id FROM pipeline.job_tasks WHERE pipeline_task_id = {RUN} AND stage_index = 0")
SLOW, SHIP = task_id('slow'), task_id('ship')
XSS_NAME = "<script>window.xss=1</script>"
XSS_LOG = "<script>window.xsslog=1</script>"

# ------------------------------------------------------------ anonymous without a read-only role
st, _, body = req('GET', A + '/')
ok(st == 401 and 'slow' not in body and 'data-id' not in body and 'Sign in' in body,
   'A: an anonymous visitor gets 401 and the sign-in form, no runs', (st, body[:300]))
st, _, body = req('GET', A + f'/run/{RUN}')
ok(st == 401 and 'slow' not in body and 'ship' not in body, 'A: an anonymous run page is 401 and empty',
   (st, body[:300]))
st, _, body = req('GET', A + f'/task/{SLOW}/stream')
ok(st == 401 and 'tick' not in body, 'A: an anonymous log stream is 401', (st, body[:200]))

# ------------------------------------------------------------ runs list and run page (B, read-only)
ok(wait_sql(f"SELECT stage FROM pipeline.job_tasks WHERE id = {SLOW}", 'active'), 'the slow task is running')
ok(wait_sql(f"SELECT count(*) > 0 FROM pipeline.job_task_log({SLOW}) WHERE chunk LIKE '%tick 1%'", 't'),
   'the slow task logged its first line')

b = cdp.Browser()
p = b.new_page()
p.goto(B + '/', ready=f"document.querySelector('tr.run[data-id=\"{RUN}\"]')")
rows = p.js("Array.from(document.querySelectorAll('tr.run')).map(r => [r.dataset.id, r.querySelector('.stage').textContent])")
want = [r.split('|') for r in sql("SELECT id, stage FROM pipeline.pipeline_tasks ORDER BY id DESC").splitlines()]
ok(rows == want, 'B: the runs list shows every run with its stage, newest first', (rows, want))
p.goto(B + '/?pipeline=web&stage=succeeded', ready="document.querySelector('#runs')")
ok(p.js("document.querySelectorAll('tr.run').length") == 0, 'B: the runs filter (pipeline, stage) applies')

p.goto(B + f'/run/{RUN}', ready="document.querySelector('#tasks')")
tasks = p.js("Array.from(document.querySelectorAll('tr.task')).map(r => [r.dataset.id, r.querySelector('.name').textContent, r.querySelector('.state').textContent])")
want = [r.split('|') for r in sql(f"SELECT id, task_name, stage FROM pipeline.job_tasks WHERE pipeline_task_id = {RUN} ORDER BY stage_index, task_index").splitlines()]
ok(tasks == want and [t[2] for t in tasks] == ['succeeded', 'active', 'pending'],
   'B: the run page lists the tasks with their states (succeeded, active, pending)', (tasks, want))
nodes = p.js("Array.from(document.querySelectorAll('#graph g.node')).map(g => [g.dataset.id, g.dataset.stage, g.querySelector('rect').getAttribute('fill')])")
ok(len(nodes) == 3 and [n[1] for n in nodes] == ['succeeded', 'active', 'pending'] and nodes[0][2] != nodes[1][2],
   'B: the SVG graph has one box per task, coloured by state', nodes)
ok(p.js("document.querySelectorAll('#graph .stage-name').length") == 3, 'B: the graph has one column per stage')

# ------------------------------------------------------------ escaping
ok(p.js("document.getElementById('run-by').textContent") == XSS_NAME and
   p.js("typeof window.xss") == 'undefined' and p.js("document.querySelectorAll('script').length") == 1,
   'B: a run_by with <script> is shown as text on the run page, not run')
st, hd, raw = req('GET', B + f'/run/{RUN}')
ok(st == 200 and '&lt;script&gt;window.xss=1&lt;/script&gt;' in raw and XSS_NAME not in raw,
   'B: the raw run page has it escaped', raw[:200])
st, _, raw = req('GET', B + '/')
ok(st == 200 and '&lt;script&gt;window.xss=1&lt;/script&gt;' in raw and XSS_NAME not in raw,
   'B: the raw runs list has it escaped')
ok("script-src 'nonce-" in ''.join(hd.get('content-security-policy', [])),
   'B: pages carry a Content-Security-Policy with a script nonce')
p.goto(B + f'/task/{BUILD}', ready="document.querySelector('#log')")
ok(XSS_LOG in p.js("document.querySelector('#log').textContent") and p.js("typeof window.xsslog") == 'undefined',
   'B: a log line with <script> is shown as text, not run')
st, _, raw = req('GET', B + f'/task/{BUILD}')
ok('&lt;script&gt;window.xsslog=1&lt;/script&gt;' in raw and XSS_LOG not in raw, 'B: the raw log is escaped')

# ------------------------------------------------------------ live: the run page and the log tail
run_page = b.new_page()
run_page.goto(B + f'/run/{RUN}', ready="document.getElementById('live-state').textContent === 'connected'")
run_page.js("window.__mark = 42")
log_page = b.new_page()
log_page.goto(B + f'/task/{SLOW}', ready="document.getElementById('tail-state').textContent === 'following'")
log_page.js("window.__mark = 43")
before = log_page.js("document.getElementById('log').textContent")
ok('tick 1' in before and 'tick 2' not in before, 'B: the log page shows the output so far', before)
open(RELEASE, 'w').close()
got = log_page.wait_for("document.getElementById('log').textContent.includes('tick 2 after release') && window.__mark === 43", 40)
ok(bool(got), 'B: the log tail shows new output without a reload (SSE)',
   log_page.js("document.getElementById('log').textContent"))
got = log_page.wait_for("document.getElementById('tail-state').textContent === 'task complete'", 20)
ok(bool(got) and log_page.js("document.querySelector('#task-stage .badge').textContent") == 'succeeded',
   'B: the log page sees the task complete (stage shown live)')
got = run_page.wait_for(f"(document.querySelector('tr.task[data-id=\"{SLOW}\"]') || {{}}).dataset && "
                        f"document.querySelector('tr.task[data-id=\"{SLOW}\"]').dataset.stage === 'succeeded' && window.__mark === 42", 40)
ok(bool(got) and int(run_page.js("document.getElementById('live-count').textContent")) > 0,
   'B: the run page updates when a task finishes, without a reload',
   run_page.js("document.getElementById('tasks') && document.getElementById('tasks').textContent"))
ok(wait_sql(f"SELECT gate FROM pipeline.job_tasks WHERE id = {SHIP}", 'audit'), 'ship waits at its audit gate')
got = run_page.wait_for(f"document.querySelector('tr.gate[data-id=\"{SHIP}\"] .people') && "
                        f"document.querySelector('tr.gate[data-id=\"{SHIP}\"] .people').textContent === 'ci_auditor' && window.__mark === 42", 30)
ok(bool(got), 'B: the gate appears live, saying who must act (ci_auditor)')
run_page.screenshot(SHOT, 1100, 720)
with open(SHOT, 'rb') as f:
    png = f.read()
ok(png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 10000, f'a screenshot of the run page is written ({len(png)} bytes)')
run_page.close()
log_page.close()

# ------------------------------------------------------------ gates: a runner refused, an auditor opens
def sign_in(page, role, password):
    page.goto(A + '/login', ready="document.querySelector('#login')")
    page.js(f"document.querySelector('input[name=role]').value = {json.dumps(role)};"
            f"document.querySelector('input[name=password]').value = {json.dumps(password)}")
    page.submit_and_wait("document.querySelector('#login button').click()")
    return page.js("(document.getElementById('whoami') || {}).textContent")


q = b.new_page()
ok(sign_in(q, 'ci_runner', 'wrong') is None and 'Sign-in failed' in q.js("document.body.textContent"),
   'A: a wrong password does not sign in')
ok(sign_in(q, 'ci_runner', 'runner-pw') == 'ci_runner', 'A: ci_runner signs in with its password')
q.goto(A + f'/run/{RUN}', ready=f"document.querySelector('button.act-approve[data-id=\"{SHIP}\"]')")
q.submit_and_wait(f"document.querySelector('button.act-approve[data-id=\"{SHIP}\"]').click()")
msg = q.js("(document.getElementById('message') || {}).textContent")
ok(msg is not None and 'refused' in msg and 'permission denied' in msg,
   "A: the runner's approve click is refused, the error shown on the page", msg)
ok(sql(f"SELECT gate FROM pipeline.job_tasks WHERE id = {SHIP}") == 'audit', "... and the gate stays closed")
q.submit_and_wait("document.querySelector('header form button').click()")
ok(q.js("location.pathname") == '/login' and q.js("document.getElementById('whoami')") is None,
   'A: sign out ends the session')
q.goto(A + f'/run/{RUN}')
ok('ship' not in q.js("document.body.textContent"), 'A: after sign-out the run page shows nothing')
ok(sign_in(q, 'ci_auditor', 'auditor-pw') == 'ci_auditor', 'A: ci_auditor signs in')
q.goto(A + f'/run/{RUN}', ready=f"document.querySelector('button.act-approve[data-id=\"{SHIP}\"]')")
q.submit_and_wait(f"document.querySelector('button.act-approve[data-id=\"{SHIP}\"]').click()")
ok(q.js("location.pathname") == f'/run/{RUN}' and q.js("document.getElementById('message')") is None,
   "A: the auditor's approve click goes through")
ok(sql(f"SELECT gate IS NULL AND gate_result->'audit'->>'pass' = 'true' FROM pipeline.job_task WHERE id = {SHIP}") == 't',
   '... and opens the gate (gate_result records the pass)',
   sql(f"SELECT gate, gate_result FROM pipeline.job_task WHERE id = {SHIP}"))
ok(wait_sql(f"SELECT stage FROM pipeline.pipeline_tasks WHERE id = {RUN}", 'succeeded'), 'the run then succeeds')
b.close()

# ------------------------------------------------------------ CSRF and Origin
st, hd, body = req('GET', A + '/login')
cookie, token = cookie_of(hd), csrf_of(body)
st, hd, body = req('POST', A + '/login', {'role': 'ci_auditor', 'password': 'auditor-pw'}, cookie)
ok(st == 403 and 'CSRF' in body, 'a sign-in POST without the CSRF token is refused (403)', (st, body[:200]))
st, hd, body = req('POST', A + '/login', {'role': 'ci_auditor', 'password': 'auditor-pw', 'csrf': token}, cookie)
ok(st == 303 and cookie_of(hd) and cookie_of(hd) != cookie, 'a sign-in with the token: 303 and a new session cookie', st)
setc = ' '.join(hd.get('set-cookie', []))
ok('HttpOnly' in setc and 'SameSite=Strict' in setc, 'the session cookie is HttpOnly and SameSite=Strict', setc)
cookie = cookie_of(hd)
st, hd, body = req('GET', A + f'/run/{RUN}', cookie=cookie)
token = csrf_of(body)
form = {'action': 'approve', 'id': SHIP, 'run': RUN}
st, _, body = req('POST', A + '/action', form, cookie)
ok(st == 403 and 'CSRF' in body, 'an action POST without the CSRF token is refused (403)', st)
st, _, body = req('POST', A + '/action', dict(form, csrf='0' * 64), cookie)
ok(st == 403, 'an action POST with a wrong CSRF token is refused (403)', st)
st, _, body = req('POST', A + '/action', dict(form, csrf=token), cookie, {'Origin': 'http://evil.example'})
ok(st == 403, 'an action POST from another Origin is refused (403)', st)
st, _, body = req('POST', A + '/action', dict(form, csrf=token), cookie, {'Origin': A})
ok(st == 409 and 'not waiting at a gate' in body, 'the same POST with the token reaches the engine (409: no gate now)',
   (st, body[:300]))
# deny: needs a comment; the denial's message (with markup in the comment) is shown escaped
sql("SELECT pipeline.define_pipeline('{\"name\": \"gated\", \"stages\": [{\"name\": \"s\", \"tasks\": "
    "[{\"name\": \"g\", \"job\": {\"command\": \"true\"}, \"audit\": {\"enable\": true, \"auditors\": [\"ci_auditor\"]}}]}]}')")
GRUN = sql("SELECT pipeline.run_pipeline('gated')")
GT = sql(f"SELECT id FROM pipeline.job_tasks WHERE pipeline_task_id = {GRUN}")
ok(wait_sql(f"SELECT gate FROM pipeline.job_tasks WHERE id = {GT}", 'audit'), 'a second run waits at its audit gate')
form = {'action': 'deny', 'id': GT, 'run': GRUN, 'csrf': token}
st, _, body = req('POST', A + '/action', form, cookie)
ok(st == 409 and 'refused' in body and 'comment' in body, 'deny without a comment: the engine refuses, shown (409)',
   (st, body[:300]))
st, _, body = req('POST', A + '/action', dict(form, comment='<b>not today</b>'), cookie)
ok(st == 303 and sql(f"SELECT stage FROM pipeline.job_tasks WHERE id = {GT}") == 'failed',
   "deny with a comment: the auditor's denial fails the task", st)
st, _, body = req('GET', A + f'/run/{GRUN}', cookie=cookie)
ok('&lt;b&gt;not today&lt;/b&gt;' in body and '<b>not today' not in body,
   'the denial message (with markup) is shown escaped on the run page')
st, _, body = req('POST', B + '/action', {'action': 'retry', 'id': BUILD})
ok(st == 403, 'B: an anonymous POST without the token is refused (403)', st)

# ------------------------------------------------------------ /metrics against pipeline.stats
# a task no runner can take (labels), and a refused update token
sql("SELECT pipeline.define_pipeline('{\"name\": \"waits\", \"stages\": [{\"name\": \"s\", \"tasks\": "
    "[{\"name\": \"t\", \"job\": {\"command\": \"true\", \"labels\": {\"os\": \"plan9\"}}}]}]}')")
sql("SELECT pipeline.run_pipeline('waits')")
subprocess.run(['psql', '-XAtq', '-d', PGCONN, '-c',
                f"SELECT pipeline.update_job_task_status({BUILD}, 'failed', 'not-the-token')"],
               capture_output=True)
time.sleep(1.1)
st, hd, text = req('GET', A + '/metrics')
stats = json.loads(sql("SELECT row_to_json(s) FROM (SELECT runs_by_stage, tasks_by_stage, rejected_tokens, "
                       "deliveries_by_status, tasks_at_gates, events_written FROM pipeline.stats) s"))
try:
    fams = promtext.parse(text)
    ok(True, '/metrics parses as the Prometheus text format')
except ValueError as e:
    fams = {}
    ok(False, f'/metrics parses as the Prometheus text format: {e}', text[:500])
ok(st == 200 and 'text/plain; version=0.0.4' in ''.join(hd.get('content-type', [])), '/metrics: 200, text format 0.0.4')


def val(name, **labels):
    for lab, v in fams.get(name, {}).get('samples', []):
        if lab == labels:
            return v
    return None


stages = ['pending', 'scheduling', 'creating', 'active', 'canceling', 'canceled', 'failed', 'succeeded', 'skipped']
ok(all(val('pipeline_runs', stage=s) == stats['runs_by_stage'].get(s, 0) for s in stages),
   'pipeline_runs{stage} = pipeline.stats.runs_by_stage', (fams.get('pipeline_runs'), stats['runs_by_stage']))
ok(all(val('pipeline_job_tasks', stage=s) == stats['tasks_by_stage'].get(s, 0) for s in stages),
   'pipeline_job_tasks{stage} = pipeline.stats.tasks_by_stage')
ok(val('pipeline_rejected_tokens_total') == stats['rejected_tokens'] and stats['rejected_tokens'] >= 1,
   'pipeline_rejected_tokens_total = pipeline.stats.rejected_tokens (>= 1)', (val('pipeline_rejected_tokens_total'), stats))
ok(val('pipeline_events_written_total') == stats['events_written'] and stats['events_written'] > 5,
   'pipeline_events_written_total = pipeline.stats.events_written')
ok(all(val('pipeline_hook_deliveries', status=s) == stats['deliveries_by_status'].get(s, 0)
       for s in ['pending', 'sending', 'succeeded', 'failed']),
   'pipeline_hook_deliveries{status} = pipeline.stats.deliveries_by_status')
ok(val('pipeline_tasks_at_gates') == stats['tasks_at_gates'], 'pipeline_tasks_at_gates = pipeline.stats.tasks_at_gates')
prio = json.loads(sql("SELECT waiting_by_priority FROM pipeline.stats"))
ok(prio and all(val('pipeline_tasks_waiting_by_priority', priority=p) == n for p, n in prio.items()),
   'pipeline_tasks_waiting_by_priority{priority} = pipeline.stats.waiting_by_priority', (prio, fams.get('pipeline_tasks_waiting_by_priority')))
waiting = sql("SELECT labels::text || '|' || count(*) FROM pipeline.job_tasks WHERE stage = 'scheduling' GROUP BY labels")
lab, n = waiting.rsplit('|', 1)
ok(val('pipeline_tasks_waiting', labels=lab) == int(n) and int(n) == 1,
   'pipeline_tasks_waiting{labels} counts the waiting task per label set', fams.get('pipeline_tasks_waiting'))
oldest = val('pipeline_tasks_waiting_oldest_seconds', labels=lab)
ok(oldest is not None and 1.0 <= oldest < 120 and val('pipeline_oldest_waiting_task_seconds') >= oldest,
   'the oldest wait per label set and overall are in seconds', oldest)
done = int(sql(f"SELECT count(*) FROM pipeline.job_tasks WHERE pipeline_task_id IN (SELECT id FROM pipeline.pipeline_tasks WHERE pipeline_name = 'web') AND duration IS NOT NULL"))
buckets = [(lab_['le'], v) for lab_, v in fams.get('pipeline_task_duration_seconds_bucket', {}).get('samples', [])
           if lab_.get('pipeline') == 'web' and 'le' in lab_]
ok(done == 3 and val('pipeline_task_duration_seconds_count', pipeline='web') == done and buckets[-1] == ('+Inf', done)
   and all(buckets[i][1] <= buckets[i + 1][1] for i in range(len(buckets) - 1)),
   'pipeline_task_duration_seconds{pipeline="web"}: a histogram of the 3 finished tasks', buckets)
st, _, body = req('GET', A + '/healthz')
ok(st == 200 and body == 'ok\n', '/healthz: 200 ok')
