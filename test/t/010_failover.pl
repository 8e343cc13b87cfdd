# 010_failover: failover on PostgreSQL's own streaming replication loses nothing.
#
# A primary and a SYNCHRONOUS streaming standby (synchronous_standby_names names it,
# synchronous_commit on).  A real "pipelinectl runner" and "pipelinectl hookd" connect with a
# multi-host conninfo (host=DIR,DIR port=P1,P2 target_session_attrs=read-write), five runs of a
# pipeline with serial and parallel stages and webhooks to a real HTTP receiver are in flight,
# and the primary is stopped in immediate mode and the standby promoted.  Checked afterwards:
#   - runner and hookd reconnect by themselves (to the promoted standby) and every run succeeds;
#   - no acknowledged report is lost: for every "job task N: reported succeeded" line in the
#     runner's log (the report's commit returned to the runner), the task is succeeded in the
#     new primary and nothing happened to it after that moment (no later event: a lost report
#     would show as a reap, a retry and a second success later);
#   - each command appends its task id to a file outside the database when it ends: every task
#     ran, and no task ran more often than its attempts (at-least-once, one run per claim);
#   - every hook delivery is recorded succeeded and arrived at the receiver at least once
#     (X-Pipeline-Delivery), and the receiver got nothing the new primary does not know.
# The time to recover (immediate stop -> first report committed on the new primary) is printed
# as "# recover: N.N s".
#
# What an operator does about in-flight work is done here the same way: a claim committed on
# the old primary (so replicated, synchronously) whose answer the runner lost leaves a task
# 'creating' with nobody running it; pipeline.reap() (pg_cron's job in production; called here
# every second with a short pipeline.heartbeat_timeout) fails it after the timeout and the job's
# retries put it back in the queue.  A delivery claimed just before the stop waits for its lease.
#
# Locking notes: none of its own; the engine's locks are what is under test.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use JSON::PP;
use PipelineNode;

my $tmp = $PostgreSQL::Test::Utils::tmp_check;
my $HEARTBEAT_TIMEOUT = 8;    # seconds of silence before reap() fails a task (test setting)
my $LEASE = 20;               # hookd's lease (its minimum)

# ---------------------------------------------------------------- primary + sync standby
my $primary = PipelineNode::new_node('primary', allows_streaming => 1);
$primary->safe_psql('postgres', 'CREATE EXTENSION pipeline');
my $standby = PipelineNode::new_standby($primary, 'standby');
# Set after the base backup, so the standby (once promoted, alone) does not wait for a standby
# of its own: a promoted primary with synchronous_standby_names set and no standby hangs commits.
$primary->safe_psql('postgres', q{ALTER SYSTEM SET synchronous_standby_names = 'standby'});
$primary->safe_psql('postgres', q{ALTER SYSTEM SET synchronous_commit = on});
$primary->reload;
PipelineNode::wait_for($primary, 'postgres',
	q{SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'}, 'sync', 60);
pass('standby streams synchronously');

my $host = $primary->host;
my $conninfo = sprintf('host=%s,%s port=%d,%d target_session_attrs=read-write dbname=postgres',
	$host, $standby->host, $primary->port, $standby->port);

# ---------------------------------------------------------------- pipeline, receiver
my $recv = PipelineNode::start_receiver("$tmp/recv.jsonl", 600);
my $done = "$tmp/done.txt";
my $NRUNS = 5;
{
	my $cmd = qq{sleep 0.3; echo "\$JOB_TASK_ID" >> '$done'};
	my @stages = (
		[ 'build', 0, 2 ], [ 'test', 1, 8 ], [ 'pack', 0, 2 ], [ 'deploy', 1, 4 ]);
	my @sj;
	for my $s (@stages)
	{
		my ($name, $par, $n) = @$s;
		my @tasks = map {
			my $t = { name => "$name$_", job => 'fo-work' };
			$t->{webhooks} = [ { url => "$recv->{url}/ok/fo-task", events => ['succeeded'] } ]
			  if $name eq 'test';
			$t
		} 1 .. $n;
		push @sj, { name => $name, is_parallel => ($par ? JSON::PP::true() : JSON::PP::false()),
			tasks => \@tasks };
	}
	my $job = JSON::PP->new->canonical->encode(
		{ name => 'fo-work', command => $cmd, retries => 2, timeout => 120 });
	my $pipe = JSON::PP->new->canonical->encode(
		{ name => 'fo', webhooks => [ { url => "$recv->{url}/ok/fo-run" } ], stages => \@sj });
	s/'/''/g for ($job, $pipe);
	$primary->safe_psql('postgres', "SELECT pipeline.define_job('$job')");
	$primary->safe_psql('postgres', "SELECT pipeline.define_pipeline('$pipe')");
}
my $ntasks = $NRUNS * 16;

# ---------------------------------------------------------------- runner, hookd, runs
my $rlog = "$tmp/runner.log";
my $hlog = "$tmp/hookd.log";
my $runner = PipelineNode::spawn_ctl($conninfo, $rlog, 'runner', '--name', 'fo-runner',
	'--concurrency', '4', '--heartbeat', '1', '--poll-interval', '0.5');
my $hookd = PipelineNode::spawn_ctl($conninfo, $hlog, 'hookd', '--name', 'fo-hookd',
	'--concurrency', '4', '--poll-interval', '0.5', '--lease', $LEASE);
$primary->safe_psql('postgres', "SELECT pipeline.run_pipeline('fo') FROM generate_series(1, $NRUNS)");

sub done_lines { my @l = PipelineNode::log_lines($done, qr/^(\d+)$/); return @l }

my $deadline = time() + 60;
usleep(100_000) while scalar(done_lines()) < $ntasks * 0.3 && time() < $deadline;
my $before = scalar(done_lines());
ok($before >= $ntasks * 0.3 && $before < $ntasks, "mid-run: $before of $ntasks commands ended");

# ---------------------------------------------------------------- failover
my $t0 = time();
$primary->stop('immediate');
my $t_dead = time();
$standby->promote;
my $t_promoted = time();
note(sprintf('primary stopped in %.2f s, standby promoted %.2f s after the stop',
	$t_dead - $t0, $t_promoted - $t0));

# what pg_cron would do on the new primary: reap() now and then
my $reap_sql = "SET pipeline.heartbeat_timeout = $HEARTBEAT_TIMEOUT; SET pipeline.retry_backoff = 0; "
  . "SELECT pipeline.reap()";
my $reaped = 0;
my ($open_runs, $open_dels) = (-1, -1);
$deadline = time() + 150;
while (time() < $deadline)
{
	$reaped += $standby->safe_psql('postgres', $reap_sql);
	($open_runs, $open_dels) = split /\|/, $standby->safe_psql('postgres',
		q{SELECT (SELECT count(*) FROM pipeline.pipeline_task WHERE stage < 'canceled'),
		         (SELECT count(*) FROM pipeline.hook_delivery WHERE status IN ('pending', 'sending'))});
	last if $open_runs == 0 && $open_dels == 0;
	sleep 1;
}
my $t_end = time();
is("$open_runs $open_dels", '0 0', 'every run and every delivery finished after the failover');
note(sprintf('all finished %.1f s after the stop; reap() failed %d silent task(s)', $t_end - $t0, $reaped));

is(PipelineNode::stop_ctl($runner), 0, 'runner stops cleanly on SIGTERM');
is(PipelineNode::stop_ctl($hookd), 0, 'hookd stops cleanly on SIGTERM');

my $rlog_text = slurp_file($rlog);
my $hlog_text = slurp_file($hlog);
like($rlog_text, qr/reconnected to the database/, 'runner reconnected by itself');
like($hlog_text, qr/reconnected to the database/, 'hookd reconnected by itself');

# ---------------------------------------------------------------- runs and acknowledged reports
is($standby->safe_psql('postgres',
	q{SELECT string_agg(DISTINCT stage::text, ',') FROM pipeline.pipeline_task}),
	'succeeded', "all $NRUNS runs succeeded on the new primary");
is($standby->safe_psql('postgres',
	q{SELECT count(*) FILTER (WHERE stage = 'succeeded') || '/' || count(*) FROM pipeline.job_task}),
	"$ntasks/$ntasks", "all $ntasks job tasks succeeded");

# "job task N: reported succeeded" with the moment the runner logged it (after the commit returned)
my @acks;
for my $line (split /\n/, $rlog_text)
{
	push @acks, [ $2, $1 ]
	  if $line =~ /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ [+-]\d{4}) .*job task (\d+): reported succeeded/;
}
my $values = join(',', map { "($_->[0], '$_->[1]'::timestamptz)" } @acks);
my $lost = $standby->safe_psql('postgres', qq{
	SELECT coalesce(string_agg(a.id::text, ', '), '') FROM (VALUES $values) AS a(id, acked)
	 WHERE NOT EXISTS (SELECT FROM pipeline.job_task j WHERE j.id = a.id AND j.stage = 'succeeded')
	    OR EXISTS (SELECT FROM pipeline.event e WHERE e.kind = 'job_task' AND e.object_id = a.id
	                 AND e.at > a.acked + interval '2 ms')});
is($lost, '', scalar(@acks) . ' acknowledged reports: each task complete, nothing after its acknowledgement');

# ---------------------------------------------------------------- executions (outside the DB)
my %runs_of;
$runs_of{$_}++ for done_lines();
my $attempts = $standby->safe_psql('postgres', q{SELECT string_agg(id || ':' || attempt, ' ') FROM pipeline.job_task});
my ($missing, $over, $dups) = (0, 0, 0);
for (split / /, $attempts)
{
	my ($id, $att) = split /:/;
	my $n = $runs_of{$id} // 0;
	$missing++ if $n == 0;
	$over++ if $n > $att;
	$dups += $n - 1 if $n > 1;
}
is($missing, 0, 'every job task\'s command ran');
is($over, 0, 'no command ran more often than its task\'s attempts (one run per claim)');
note("tasks checked: $ntasks, acknowledged reports checked: " . scalar(@acks)
	  . ", commands run twice: $dups, tasks reaped after the failover: $reaped");

# ---------------------------------------------------------------- deliveries
my %got;
for my $r (PipelineNode::receiver_requests($recv))
{
	my $d = PipelineNode::header($r, 'X-Pipeline-Delivery');
	$got{$d}++ if defined $d;
}
my @db = split /\n/, $standby->safe_psql('postgres', q{SELECT id || ' ' || status FROM pipeline.hook_delivery ORDER BY id});
my @not_ok = grep { !/ succeeded$/ } @db;
my @never = grep { my ($id) = split / /; !$got{$id} } @db;
my %known = map { (split / /)[0] => 1 } @db;
my @unknown = grep { !$known{$_} } keys %got;
is(scalar(@not_ok), 0, 'every delivery recorded succeeded') or diag("@not_ok");
is(scalar(@never), 0, 'every delivery arrived at the receiver at least once') or diag("@never");
is(scalar(@unknown), 0, 'the receiver got no delivery the new primary does not know') or diag("@unknown");
my $dup_del = 0;
$dup_del += $_ - 1 for values %got;
# per run: the run's hook on its 2 changes (created active, succeeded), 8 test tasks' on success
is(scalar(@db), $NRUNS * (2 + 8), 'one delivery per matching hook and event');

# ---------------------------------------------------------------- time to recover
my $first = $standby->safe_psql('postgres', sprintf(q{
	SELECT extract(epoch FROM min(at)) FROM pipeline.event
	 WHERE kind = 'job_task' AND new_stage IN ('active', 'succeeded') AND at > to_timestamp(%.6f)},
	$t_dead));
ok($first ne '', 'the runner reported to the new primary');
my $recover = $first - $t0;
note(sprintf('recover: %.1f s', $recover));
note("deliveries checked: " . scalar(@db) . ", sent twice: $dup_del");

kill 'TERM', $recv->{pid};
waitpid($recv->{pid}, 0);
$standby->stop;
done_testing();
