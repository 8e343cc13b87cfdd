# 011_crash_backend: SIGKILL of a backend in the middle of an advance leaves nothing half done.
#
# A run's first stage has one task; its second stage is parallel with 500 tasks.  The report
# that completes the first task starts the second stage: 500 tasks go pending -> scheduling,
# each with its event, in the report's transaction.  A test-only row trigger on
# pipeline.job_task (created by this test, not part of the engine) makes that transaction wait
# for an advisory lock the test holds when it reaches the stage's 251st task (and counts the
# tasks it started in a sequence, which other sessions see), so the backend is caught with
# half of the stage started; the test kills it with SIGKILL, and the postmaster
# (restart_after_crash = on, as in production) restarts every backend through crash recovery.
# Checked: the report was not acknowledged (its client got an error); the completed task is
# still active, every task of the wide stage is still pending, no event or delivery of the
# killed transaction survived; re-sending the same report (same token) completes the task and
# starts the whole stage exactly once (500 scheduling events, one per task); sending it a third
# time is refused (55000) and starts nothing more.  Prints the recovery time.
#
# Locking notes: the advisory lock 4242 is the test's own, held by a psql session it starts.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use PipelineNode;

my $WIDE = 500;
my $node = PipelineNode::new_node('crash', extra_conf => "restart_after_crash = on\n");
my $db = 'postgres';
$node->safe_psql($db, 'CREATE EXTENSION pipeline');
my $recv = PipelineNode::start_receiver("$PostgreSQL::Test::Utils::tmp_check/recv.jsonl", 300);
my $wide_tasks = join(',', map { qq{{"name": "w$_", "job": {"command": "true"}}} } 1 .. $WIDE);
$node->safe_psql($db, qq{SELECT pipeline.define_pipeline('{"name": "wide",
	"webhooks": [{"url": "$recv->{url}/ok/wide"}],
	"stages": [
	{"name": "first", "tasks": [{"name": "a", "job": {"command": "true"},
	  "webhooks": [{"url": "$recv->{url}/ok/a"}]}]},
	{"name": "wide", "is_parallel": true, "tasks": [$wide_tasks]},
	{"name": "last", "tasks": [{"name": "z", "job": {"command": "true"}}]}]}')});
my $run = $node->safe_psql($db, q{SELECT pipeline.run_pipeline('wide')});
my ($id, $token) = split / /, $node->safe_psql($db,
	q{SELECT id || ' ' || update_token FROM pipeline.claim_job_tasks('crash-test', 1)});
ok($id && $token, "claimed task a (job task $id)");
$node->safe_psql($db, "SELECT pipeline.update_job_task_status($id, 'active', '$token')");

# the test-only brake: the stage's 251st task waits for lock 4242
$node->safe_psql($db, q{
	CREATE SEQUENCE public.crash_progress;
	CREATE FUNCTION public.crash_brake() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.stage_name = 'wide' AND OLD.stage = 'pending' AND NEW.stage = 'scheduling' THEN
			IF NEW.task_index = 250 THEN
				PERFORM pg_advisory_xact_lock(4242);
			END IF;
			-- counts the tasks started; a sequence, so other sessions see it at once
			PERFORM nextval('public.crash_progress');
		END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER crash_brake BEFORE UPDATE ON pipeline.job_task
		FOR EACH ROW EXECUTE FUNCTION public.crash_brake()});

my $state_sql = qq{
	SELECT (SELECT stage FROM pipeline.job_task WHERE id = $id) || ' ' ||
	       (SELECT string_agg(stage || '=' || n, ',') FROM
	         (SELECT stage, count(*) n FROM pipeline.job_task
	           WHERE pipeline_task_id = $run AND stage_name = 'wide' GROUP BY stage) s) || ' ' ||
	       (SELECT count(*) FROM pipeline.event) || ' ' ||
	       (SELECT count(*) FROM pipeline.hook_delivery) || ' ' ||
	       (SELECT stage FROM pipeline.pipeline_task WHERE id = $run)};
my $before = $node->safe_psql($db, $state_sql);
like($before, qr/^active pending=$WIDE \d+ \d+ active$/, "before: a active, $WIDE pending ($before)");

# hold the lock, then send the completing report
my ($hout, $herr) = ('', '');
my $holder = IPC::Run::start([ 'psql', '-X', '-d', $node->connstr($db), '-c',
	'SELECT pg_advisory_lock(4242), pg_sleep(300)' ], '<', \undef, '>', \$hout, '2>', \$herr);
PipelineNode::wait_for($node, $db,
	q{SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND granted}, '1', 30);
my ($rout, $rerr) = ('', '');
my $report = IPC::Run::start([ 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr($db),
	'-c', "SELECT stage FROM pipeline.update_job_task_status($id, 'succeeded', '$token')" ],
	'<', \undef, '>', \$rout, '2>', \$rerr);
my $pid = PipelineNode::wait_for_value($node, $db, q{
	SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	 WHERE l.locktype = 'advisory' AND l.objid = 4242 AND NOT l.granted
	   AND a.query LIKE '%update_job_task_status%'}, 30);
my $started = $node->safe_psql($db, 'SELECT last_value FROM public.crash_progress');
ok($pid && $started > 0 && $started < $WIDE,
	"the report's backend (pid $pid) waits with $started of the $WIDE tasks already started");

# SIGKILL it; the postmaster restarts everything
my $t0 = time();
kill 'KILL', $pid;
my $deadline = time() + 60;
until ($node->psql($db, 'SELECT 1') == 0 || time() > $deadline) { usleep(50_000) }
my $recover = time() - $t0;
$report->finish;
my $report_rc = $report->result;
$holder->kill_kill;
isnt($report_rc, 0, 'the report was not acknowledged (its client got an error)');
note("its client said: $rerr");
like(slurp_file($node->logfile), qr/terminated by signal 9: Killed.*all server processes terminated; reinitializing/s,
	'the postmaster went through crash recovery');
note(sprintf('recover: %.1f s (SIGKILL to the first query answered)', $recover));

my $after = $node->safe_psql($db, $state_sql);
is($after, $before, 'after the crash: a still active, the wide stage all pending, '
	  . 'no event and no delivery of the killed transaction');

# re-send the same report: the next stage starts exactly once
$node->safe_psql($db, 'DROP TRIGGER crash_brake ON pipeline.job_task');
is($node->safe_psql($db, "SELECT stage FROM pipeline.update_job_task_status($id, 'succeeded', '$token')"),
	'succeeded', 're-sending the report completes the task');
my ($rc, $out, $err) = $node->psql($db,
	"SELECT stage FROM pipeline.update_job_task_status($id, 'succeeded', '$token')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/55000/, 'a third send is refused: the task is complete (55000)');
is($node->safe_psql($db, qq{
	SELECT count(*) || ' ' || count(DISTINCT object_id) FROM pipeline.event e
	  JOIN pipeline.job_task j ON j.id = e.object_id AND e.kind = 'job_task'
	 WHERE j.pipeline_task_id = $run AND j.stage_name = 'wide' AND e.new_stage = 'scheduling'}),
	"$WIDE $WIDE", "the wide stage started once: $WIDE scheduling events, one per task");
is($node->safe_psql($db, qq{
	SELECT string_agg(stage_name || ':' || stage || '=' || n, ',' ORDER BY stage_name) FROM
	  (SELECT stage_name, stage, count(*) n FROM pipeline.job_task WHERE pipeline_task_id = $run
	    GROUP BY 1, 2) s}),
	"first:succeeded=1,last:pending=1,wide:scheduling=$WIDE", 'the run: a succeeded, wide scheduling, last pending');
is($node->safe_psql($db, qq{
	SELECT (SELECT count(*) FROM pipeline.hook_delivery WHERE job_task_id = $id) || ' ' ||
	       (SELECT count(*) FROM pipeline.event WHERE kind = 'job_task' AND object_id = $id) || ' ' ||
	       (SELECT count(*) FROM pipeline.event WHERE kind = 'job_task' AND object_id = $id
	           AND new_stage = 'succeeded')}),
	'4 4 1', "task a: one event and one delivery per change (scheduling, creating, active, succeeded)");

note("tasks checked: " . ($WIDE + 2) . ", events checked: " . $node->safe_psql($db, 'SELECT count(*) FROM pipeline.event'));
kill 'TERM', $recv->{pid};
waitpid($recv->{pid}, 0);
$node->stop;
done_testing();
