# InFlight.pm: a pipeline workload kept in flight across a failure, and the checks that
# nothing was lost (shared by 010_failover and 012_crash_restart).
#
#   my $w = InFlight::define($node, $recv, "$tmp/done.txt", runs => 5);   # sleep => S: each command's
#   $node->safe_psql('postgres', InFlight::run_sql($w));          # start the runs
#   InFlight::wait_done($w, 0.3);                                 # 30 % of the commands ended
#   ... the failure ...
#   InFlight::reap_until_finished($node, $w, 8, 150);             # what pg_cron's reap() does
#   my %fig = InFlight::check($node, $w, $runner_log);            # the TAP assertions
#
# The workload: job "inf-work" (retries 2) runs `sleep 0.3; echo "$JOB_TASK_ID" >> DONE` (the
# sleep is define's option sleep => S), so
# the file DONE, outside the database, counts the executions of each job task.  Pipeline "inf":
# stages build (serial, 2 tasks), test (parallel, 8, each with a webhook on success), pack
# (serial, 2), deploy (parallel, 4), and a pipeline-level webhook on every change: 16 job tasks
# and 10 deliveries per run.
#
# The checks (check()):
#   - every run and job task succeeded;
#   - no acknowledged report lost: for each "job task N: reported succeeded" line of the
#     runner's log (written once the report's commit returned), the task is succeeded and no
#     event of it is later than that moment (a lost report would show as a reap, a retry and
#     a second success after it);
#   - every job task's command ran, and none ran more often than its task's attempts (the
#     at-least-once bound: one execution per claim; a second claim only after a reap);
#   - every delivery is succeeded and reached the receiver at least once (X-Pipeline-Delivery),
#     and the receiver got none the database does not know.
#
# Locking notes: none of its own.
package InFlight;

use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use PipelineNode;

our @STAGES = ([ 'build', 0, 2 ], [ 'test', 1, 8 ], [ 'pack', 0, 2 ], [ 'deploy', 1, 4 ]);
our $TASKS_PER_RUN = 16;
our $DELIVERIES_PER_RUN = 2 + 8;    # the run's hook on 2 changes, 8 test tasks' on success

sub define
{
	my ($node, $recv, $done, %o) = @_;
	my $sleep = $o{sleep} // 0.3;
	my $cmd = qq{sleep $sleep; echo "\$JOB_TASK_ID" >> '$done'};
	my @sj;
	for my $s (@STAGES)
	{
		my ($name, $par, $n) = @$s;
		my @tasks = map {
			my $t = { name => "$name$_", job => 'inf-work' };
			$t->{webhooks} = [ { url => "$recv->{url}/ok/inf-task", events => ['succeeded'] } ]
			  if $name eq 'test';
			$t
		} 1 .. $n;
		push @sj, { name => $name, is_parallel => ($par ? JSON::PP::true() : JSON::PP::false()),
			tasks => \@tasks };
	}
	my $job = JSON::PP->new->canonical->encode(
		{ name => 'inf-work', command => $cmd, retries => 2, timeout => 120 });
	my $pipe = JSON::PP->new->canonical->encode(
		{ name => 'inf', webhooks => [ { url => "$recv->{url}/ok/inf-run" } ], stages => \@sj });
	s/'/''/g for ($job, $pipe);
	$node->safe_psql('postgres', "SELECT pipeline.define_job('$job')");
	$node->safe_psql('postgres', "SELECT pipeline.define_pipeline('$pipe')");
	my $runs = $o{runs} // 5;
	return { recv => $recv, done => $done, runs => $runs, ntasks => $runs * $TASKS_PER_RUN };
}

sub run_sql
{
	my ($w) = @_;
	return "SELECT pipeline.run_pipeline('inf') FROM generate_series(1, $w->{runs})";
}

# the task ids in DONE, one per ended command
sub done_lines
{
	my ($w) = @_;
	return PipelineNode::log_lines($w->{done}, qr/^(\d+)$/);
}

# wait until FRACTION of the job tasks' commands ended; returns how many did
sub wait_done
{
	my ($w, $fraction, $timeout) = @_;
	my $deadline = time() + ($timeout // 60);
	usleep(100_000) while scalar(done_lines($w)) < $w->{ntasks} * $fraction && time() < $deadline;
	return scalar(done_lines($w));
}

# What an operator's pg_cron job does: pipeline.reap() every second (with a short
# pipeline.heartbeat_timeout and no retry backoff) until every run and delivery is finished.
# Returns (tasks reaped, runs still open, deliveries still open).
sub reap_until_finished
{
	my ($node, $w, $hb_timeout, $timeout) = @_;
	my $sql = "SET pipeline.heartbeat_timeout = $hb_timeout; SET pipeline.retry_backoff = 0; "
	  . "SELECT pipeline.reap()";
	my ($reaped, $runs, $dels) = (0, -1, -1);
	my $deadline = time() + $timeout;
	while (time() < $deadline)
	{
		my ($rc, $out) = $node->psql('postgres', $sql);
		$reaped += $out if $rc == 0 && $out =~ /^\d+$/;
		($rc, $out) = $node->psql('postgres',
			q{SELECT (SELECT count(*) FROM pipeline.pipeline_task WHERE stage < 'canceled') || ' ' ||
			         (SELECT count(*) FROM pipeline.hook_delivery WHERE status IN ('pending', 'sending'))});
		($runs, $dels) = split / /, $out if $rc == 0;
		last if $rc == 0 && $runs == 0 && $dels == 0;
		sleep 1;
	}
	return ($reaped, $runs, $dels);
}

# Epoch of the first report (active or succeeded) a runner committed after epoch T.
sub first_report_after
{
	my ($node, $t) = @_;
	return $node->safe_psql('postgres', sprintf(q{
		SELECT extract(epoch FROM min(at)) FROM pipeline.event
		 WHERE kind = 'job_task' AND new_stage IN ('active', 'succeeded') AND at > to_timestamp(%.6f)},
		$t));
}

# The TAP assertions listed at the top; returns figures for the notes.
sub check
{
	my ($node, $w, $runner_log) = @_;
	my ($nruns, $ntasks) = ($w->{runs}, $w->{ntasks});
	my %fig;

	is($node->safe_psql('postgres',
		q{SELECT string_agg(DISTINCT stage::text, ',') FROM pipeline.pipeline_task}),
		'succeeded', "all $nruns runs succeeded");
	is($node->safe_psql('postgres',
		q{SELECT count(*) FILTER (WHERE stage = 'succeeded') || '/' || count(*) FROM pipeline.job_task}),
		"$ntasks/$ntasks", "all $ntasks job tasks succeeded");

	# acknowledged reports, with the moment the runner logged them
	my @acks;
	for my $line (split /\n/, slurp_file($runner_log))
	{
		push @acks, [ $2, $1 ]
		  if $line =~ /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ [+-]\d{4}) .*job task (\d+): reported succeeded/;
	}
	my $values = join(',', map { "($_->[0], '$_->[1]'::timestamptz)" } @acks) || '(0, now())';
	my $lost = $node->safe_psql('postgres', qq{
		SELECT coalesce(string_agg(a.id::text, ', '), '') FROM (VALUES $values) AS a(id, acked)
		 WHERE a.id > 0 AND (
		       NOT EXISTS (SELECT FROM pipeline.job_task j WHERE j.id = a.id AND j.stage = 'succeeded')
		    OR EXISTS (SELECT FROM pipeline.event e WHERE e.kind = 'job_task' AND e.object_id = a.id
		                 AND e.at > a.acked + interval '2 ms'))});
	is($lost, '', scalar(@acks) . ' acknowledged reports: each task complete, nothing after its acknowledgement');
	$fig{acks} = scalar(@acks);

	# executions, counted outside the database
	my %runs_of;
	$runs_of{$_}++ for done_lines($w);
	my ($missing, $over, $dups) = (0, 0, 0);
	for (split / /, $node->safe_psql('postgres',
		q{SELECT string_agg(id || ':' || attempt, ' ') FROM pipeline.job_task}))
	{
		my ($id, $att) = split /:/;
		my $n = $runs_of{$id} // 0;
		$missing++ if $n == 0;
		$over++ if $n > $att;
		$dups += $n - 1 if $n > 1;
	}
	is($missing, 0, 'every job task\'s command ran');
	is($over, 0, 'no command ran more often than its task\'s attempts (one execution per claim)');
	$fig{executions} = scalar(done_lines($w));
	$fig{reruns} = $dups;

	# deliveries
	my %got;
	for my $r (PipelineNode::receiver_requests($w->{recv}))
	{
		my $d = PipelineNode::header($r, 'X-Pipeline-Delivery');
		$got{$d}++ if defined $d;
	}
	my @db = split /\n/, $node->safe_psql('postgres',
		q{SELECT id || ' ' || status FROM pipeline.hook_delivery ORDER BY id});
	my @not_ok = grep { !/ succeeded$/ } @db;
	my @never = grep { my ($id) = split / /; !$got{$id} } @db;
	my %known = map { (split / /)[0] => 1 } @db;
	my @unknown = grep { !$known{$_} } sort keys %got;
	is(scalar(@db), $nruns * $DELIVERIES_PER_RUN, 'one delivery per matching hook and event');
	is(scalar(@not_ok), 0, 'every delivery recorded succeeded') or diag("@not_ok");
	is(scalar(@never), 0, 'every delivery arrived at the receiver at least once') or diag("@never");
	is(scalar(@unknown), 0, 'the receiver got no delivery the database does not know') or diag("@unknown");
	my $dup_del = 0;
	$dup_del += $_ - 1 for values %got;
	$fig{deliveries} = scalar(@db);
	$fig{resent} = $dup_del;
	return %fig;
}

1;
