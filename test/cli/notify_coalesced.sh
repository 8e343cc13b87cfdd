#!/usr/bin/env bash
# notify_coalesced: pipeline.notify = coalesced, the default since issue 12.  A status
# change sends no NOTIFY of its own; the on-demand background notifier announces the
# newest event id within a few milliseconds, from another backend, and leaves after two
# idle seconds.  pipeline.notify = immediate notifies from the writer.
set -euo pipefail
cd "$(dirname "$0")/../.."
pass=0 fail=0
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
q() { psql -X -v ON_ERROR_STOP=1 -qAt -c "$1"; }
id=nc$$

q "CREATE EXTENSION IF NOT EXISTS pipeline" >/dev/null
q "SELECT pipeline.define_job('{\"name\": \"${id}_job\", \"command\": \"true\", \"labels\": {\"cli\": \"$id\"}}')" >/dev/null
q "SELECT pipeline.define_pipeline('{\"name\": \"${id}_pipe\", \"stages\": [{\"name\": \"s\", \"tasks\": [{\"name\": \"t\", \"job\": \"${id}_job\"}]}]}')" >/dev/null

# coalesced, by default (nothing SET): LISTEN, start a run (two events), wait, poke the
# connection
out=$(psql -X -v ON_ERROR_STOP=1 -At <<SQL
LISTEN pipeline_events;
SELECT 'me=' || pg_backend_pid();
SELECT 'run=' || pipeline.run_pipeline('${id}_pipe');
SELECT 'max=' || max(id) FROM pipeline.event;
SELECT pg_sleep(0.5);
SELECT 'notifiers=' || count(*) FROM pg_stat_activity WHERE backend_type = 'pipeline notifier';
SQL
)
me=$(sed -n 's/^me=//p' <<<"$out")
max=$(sed -n 's/^max=//p' <<<"$out")
run=$(sed -n 's/^run=//p' <<<"$out")
line=$(grep 'Asynchronous notification "pipeline_events"' <<<"$out" | tail -n 1 || true)
payload=$(sed -n 's/.*with payload "\([0-9]*\)".*/\1/p' <<<"$line")
from=$(sed -n 's/.*server process with PID \([0-9]*\).*/\1/p' <<<"$line")
[[ -n $payload ]] && ok "coalesced: a notification arrived ($line)" || bad "coalesced: no notification; psql said: $out"
[[ -n $payload && $payload -ge $max ]] && ok "coalesced: it carries the newest event id ($payload >= $max)" ||
	bad "coalesced: payload '$payload' is older than the newest event $max"
[[ -n $from && $from != "$me" ]] && ok "coalesced: sent by the notifier (pid $from), not the writer ($me)" ||
	bad "coalesced: sent by pid '$from', the writer is $me"
n=$(grep -c 'Asynchronous notification' <<<"$out" || true)
((n <= 2)) && ok "coalesced: $n notification(s) for the run's events" || bad "coalesced: $n notifications"
grep -q '^notifiers=1$' <<<"$out" && ok "coalesced: one notifier worker runs" || bad "coalesced: notifier count: $out"
sleep 3
left=$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pipeline notifier'")
[[ $left == 0 ]] && ok "coalesced: the notifier left after idling" || bad "coalesced: $left notifier(s) still running after 3 idle seconds"

# immediate: the writer itself notifies, with the event's id
out=$(psql -X -v ON_ERROR_STOP=1 -At <<SQL
LISTEN pipeline_events;
SET pipeline.notify = immediate;
SELECT 'me=' || pg_backend_pid();
SELECT pipeline.cancel_pipeline_task($run) IS NOT NULL;
SELECT 'max=' || max(id) FROM pipeline.event;
SQL
)
me=$(sed -n 's/^me=//p' <<<"$out")
max=$(sed -n 's/^max=//p' <<<"$out")
if grep -q "with payload \"$max\" received from server process with PID $me" <<<"$out"; then
	ok "immediate: the writer notified with event id $max"
else
	bad "immediate: no notification of event $max from pid $me; psql said: $out"
fi

echo "$pass passed, $fail failed"
((fail == 0))
