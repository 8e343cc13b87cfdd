# 014_lost_answers: commits whose answer never reached the program, made on purpose.
#
# A failover or a crash can lose the answer to a commit that did happen.  010 and 012 meet
# that case only by chance; this test makes it happen every time: with
# synchronous_standby_names naming a standby that does not exist, a commit is written (and
# flushed) locally and then waits for that standby forever, so its client never hears back;
# the server is then restarted in immediate mode (the setting reset first, in
# postgresql.auto.conf only), and crash recovery keeps the commit.  The test's own sessions
# use synchronous_commit = local or only read.
#   1. A lost claim (runner) and a lost delivery claim (hookd): the job task stays 'active' (the
#      runner claims with start => true)
#      with nobody running it and the delivery 'sending'.  What the operator's pg_cron job does,
#      pipeline.reap() with a short pipeline.heartbeat_timeout, fails the task and its retry
#      puts it back in the queue: the runner runs it once (attempt 2), the run succeeds.  The
#      delivery is sent when its lease ends, once, recorded succeeded.
#   2. A lost report: the runner's 'succeeded' report commits but its answer is lost; after
#      the restart the runner sends it again, the engine refuses it (55000: already
#      succeeded), the runner drops it.  The task is complete, its command ran once, the run
#      advanced once.
# Locking notes: none of its own.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use PipelineNode;

my $tmp = $PostgreSQL::Test::Utils::tmp_check;
my $node = PipelineNode::new_node('lost', allows_streaming => 1);    # max_wal_senders > 0: commits wait
my $db = 'postgres';
my $LOCAL = 'SET synchronous_commit = local; ';
$node->safe_psql($db, 'CREATE EXTENSION pipeline');
my $recv = PipelineNode::start_receiver("$tmp/recv.jsonl", 300);
my $done = "$tmp/done.txt";
my $go = "$tmp/go";
$node->safe_psql($db, qq{SELECT pipeline.define_pipeline('{"name": "lost",
	"stages": [{"name": "s", "tasks": [{"name": "a",
	  "webhooks": [{"url": "$recv->{url}/ok/lost", "events": ["scheduling"]}],
	  "job": {"retries": 1, "command": "while [ ! -f $go ]; do sleep 0.1; done; echo \\"\$JOB_TASK_ID\\" >> $done"}}]}]}')});

sub ghost_standby
{
	$node->safe_psql($db, q{ALTER SYSTEM SET synchronous_standby_names = 'ghost'});
	$node->reload;
}

# the backends of APP (application_name) waiting for the ghost standby
sub wait_syncrep
{
	my ($pattern) = @_;
	return PipelineNode::wait_for_value($node, $db, qq{
		SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND query LIKE '$pattern'
		HAVING count(*) > 0}, 30);
}

sub restart_immediate
{
	$node->safe_psql($db, q{ALTER SYSTEM RESET synchronous_standby_names});    # file only
	PostgreSQL::Test::Utils::system_or_bail('pg_ctl', '-w', '-D', $node->data_dir, '-l',
		$node->logfile, '-m', 'immediate', 'restart');
	$node->_update_pid(1);
}

sub task { $node->safe_psql($db, "SELECT stage || ' ' || attempt || ' ' || coalesce(runner, '-') FROM pipeline.job_task WHERE id = $_[0]") }
sub executions { my $id = shift; scalar grep { $_ eq $id } PipelineNode::log_lines($done, qr/^(\d+)$/) }

# ---------------------------------------------------------------- 1. lost claims
ghost_standby();
my $rlog = "$tmp/runner.log";
my $hlog = "$tmp/hookd.log";
my $runner = PipelineNode::spawn_ctl($node->connstr($db), $rlog, 'runner', '--name', 'lost-runner',
	'--heartbeat', '60', '--poll-interval', '0.5');
my $hookd = PipelineNode::spawn_ctl($node->connstr($db), $hlog, 'hookd', '--name', 'lost-hookd',
	'--poll-interval', '0.5', '--lease', '20');
my $run1 = $node->safe_psql($db, $LOCAL . q{SELECT pipeline.run_pipeline('lost')});
my $t1 = $node->safe_psql($db, "SELECT id FROM pipeline.job_task WHERE pipeline_task_id = $run1");
ok(wait_syncrep('%claim_job_tasks%'), "the runner's claim of task $t1 committed locally, waits for the standby");
ok(wait_syncrep('%claim_hook_deliveries%'), "hookd's claim of the 'scheduling' delivery too");
restart_immediate();
is(task($t1), 'active 1 lost-runner', 'after the restart: the claim is there (active: the runner claims with start => true), the runner never got it');
my $del = $node->safe_psql($db, "SELECT id FROM pipeline.hook_delivery WHERE job_task_id = $t1");
is($node->safe_psql($db, "SELECT status || ' ' || attempts || ' ' || sender FROM pipeline.hook_delivery WHERE id = $del"),
	'sending 1 lost-hookd', 'and the delivery is leased to hookd, which never got it');
sleep 3;
is(task($t1), 'active 1 lost-runner', 'nobody runs the task');

# the operator's reap: a short heartbeat timeout, retries
my $t0 = time();
my $reaped = $node->safe_psql($db, $LOCAL
	  . 'SET pipeline.heartbeat_timeout = 2; SET pipeline.retry_backoff = 0; SELECT pipeline.reap()');
is($reaped, '1', 'reap() fails the silent task');
like($node->safe_psql($db, "SELECT payload->>'message' FROM pipeline.event WHERE kind = 'job_task' AND object_id = $t1 AND new_stage = 'failed'"),
	qr/no heartbeat for 2 s/, '... as silent');
PipelineNode::wait_for($node, $db, "SELECT stage || ' ' || attempt FROM pipeline.job_task WHERE id = $t1",
	'active 2', 30);
pass('its retry is claimed and started by the runner (attempt 2)');
open(my $fh, '>', $go) or die;
close $fh;
PipelineNode::wait_for($node, $db, "SELECT stage FROM pipeline.pipeline_task WHERE id = $run1", 'succeeded', 30);
is(executions($t1), 1, 'the run succeeded; the command ran once');
note(sprintf('lost claim recovered %.1f s after the first reap', time() - $t0));
PipelineNode::wait_for($node, $db, "SELECT status FROM pipeline.hook_delivery WHERE id = $del", 'succeeded', 40);
is($node->safe_psql($db, "SELECT attempts FROM pipeline.hook_delivery WHERE id = $del"), '2',
	'the delivery is sent after its lease, on its second claim');
my $arrived = grep { (PipelineNode::header($_, 'X-Pipeline-Delivery') // '') eq $del }
  PipelineNode::receiver_requests($recv);
is($arrived, 1, 'and arrives once (the lost claim sent nothing)');

# ---------------------------------------------------------------- 2. a lost report
unlink $go;
my $run2 = $node->safe_psql($db, $LOCAL . q{SELECT pipeline.run_pipeline('lost')});
my $t2 = $node->safe_psql($db, "SELECT id FROM pipeline.job_task WHERE pipeline_task_id = $run2");
PipelineNode::wait_for($node, $db, "SELECT stage FROM pipeline.job_task WHERE id = $t2", 'active', 30);
ghost_standby();
open($fh, '>', $go) or die;
close $fh;
ok(wait_syncrep('%update_job_task_status%'), "the runner's 'succeeded' report committed locally, waits for the standby");
restart_immediate();
PipelineNode::wait_for($node, $db, "SELECT stage FROM pipeline.pipeline_task WHERE id = $run2", 'succeeded', 30);
my $deadline = time() + 30;
usleep(100_000) until slurp_file($rlog) =~ /job task $t2: report 'succeeded' rejected \(55000/ || time() > $deadline;
like(slurp_file($rlog), qr/job task $t2: report 'succeeded' rejected \(55000/,
	'the runner sends the report again, it is refused as complete (55000) and dropped');
is(task($t2), 'succeeded 1 lost-runner', 'the task is succeeded, on its first attempt');
is(executions($t2), 1, 'its command ran once');
is($node->safe_psql($db, "SELECT count(*) FROM pipeline.event WHERE kind = 'job_task' AND object_id = $t2 AND new_stage = 'succeeded'")
	  . ' ' . $node->safe_psql($db, "SELECT count(*) FROM pipeline.event WHERE kind = 'pipeline_task' AND object_id = $run2 AND new_stage = 'succeeded'"),
	'1 1', 'one success of the task, the run advanced once');

is(PipelineNode::stop_ctl($runner), 0, 'runner stops cleanly');
is(PipelineNode::stop_ctl($hookd), 0, 'hookd stops cleanly');
note('tasks checked: 2 (a lost claim, a lost report), deliveries checked: 1 (a lost claim)');
kill 'TERM', $recv->{pid};
waitpid($recv->{pid}, 0);
$node->stop;
done_testing();
