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
# as "# recover: N.N s".  FAILOVER_PROMOTE_DELAY=S (environment) waits S seconds between the stop
# and the promotion: a slower failover, the programs' reconnects going through several backoff
# steps (with 6: recover 7.7 s, nothing lost).
#
# What an operator does about in-flight work is done here the same way: a claim committed on
# the old primary (so replicated, synchronously) whose answer the runner lost leaves a task
# 'active' (claimed with start => true) with nobody running it; pipeline.reap() (pg_cron's job in production; called here
# every second with a short pipeline.heartbeat_timeout) fails it after the timeout and the job's
# retries put it back in the queue.  A delivery claimed just before the stop waits for its lease.
# Here those cases come only by chance (the answers must be lost in a window of milliseconds);
# 014_lost_answers makes each of them happen every time.
#
# The workload and the checks are InFlight.pm's (shared with 012_crash_restart).
#
# Locking notes: none of its own; the engine's locks are what is under test.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use PipelineNode;
use InFlight;

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

# ---------------------------------------------------------------- workload, receiver
my $recv = PipelineNode::start_receiver("$tmp/recv.jsonl", 600);
my $w = InFlight::define($primary, $recv, "$tmp/done.txt", runs => 5);

# ---------------------------------------------------------------- runner, hookd, runs
my $rlog = "$tmp/runner.log";
my $hlog = "$tmp/hookd.log";
my $runner = PipelineNode::spawn_ctl($conninfo, $rlog, 'runner', '--name', 'fo-runner',
	'--concurrency', '4', '--heartbeat', '1', '--poll-interval', '0.5');
my $hookd = PipelineNode::spawn_ctl($conninfo, $hlog, 'hookd', '--name', 'fo-hookd',
	'--concurrency', '4', '--poll-interval', '0.5', '--lease', $LEASE);
$primary->safe_psql('postgres', InFlight::run_sql($w));
my $before = InFlight::wait_done($w, 0.3);
ok($before >= $w->{ntasks} * 0.3 && $before < $w->{ntasks}, "mid-run: $before of $w->{ntasks} commands ended");

# ---------------------------------------------------------------- failover
my $t0 = time();
$primary->stop('immediate');
my $t_dead = time();
sleep($ENV{FAILOVER_PROMOTE_DELAY} // 0);
$standby->promote;
my $t_promoted = time();
note(sprintf('primary stopped in %.2f s, standby promoted %.2f s after the stop',
	$t_dead - $t0, $t_promoted - $t0));

my ($reaped, $open_runs, $open_dels) = InFlight::reap_until_finished($standby, $w, $HEARTBEAT_TIMEOUT, 150);
is("$open_runs $open_dels", '0 0', 'every run and every delivery finished after the failover');
note(sprintf('all finished %.1f s after the stop; reap() failed %d silent task(s)', time() - $t0, $reaped));

is(PipelineNode::stop_ctl($runner), 0, 'runner stops cleanly on SIGTERM');
is(PipelineNode::stop_ctl($hookd), 0, 'hookd stops cleanly on SIGTERM');
like(slurp_file($rlog), qr/reconnected to the database/, 'runner reconnected by itself');
like(slurp_file($hlog), qr/reconnected to the database/, 'hookd reconnected by itself');

my %fig = InFlight::check($standby, $w, $rlog);

my $first = InFlight::first_report_after($standby, $t_dead);
ok($first ne '', 'the runner reported to the new primary');
note(sprintf('recover: %.1f s', $first - $t0)) if $first ne '';
note("tasks checked: $w->{ntasks}, acknowledged reports checked: $fig{acks}, "
	  . "commands run twice: $fig{reruns}, tasks reaped after the failover: $reaped");
note("deliveries checked: $fig{deliveries}, sent twice: $fig{resent}");

kill 'TERM', $recv->{pid};
waitpid($recv->{pid}, 0);
$standby->stop;
done_testing();
