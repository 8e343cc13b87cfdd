# 012_crash_restart: an immediate restart (pg_ctl restart -m immediate: no shutdown checkpoint,
# crash recovery at start) under a live runner and hook sender loses nothing.
#
# Five runs of InFlight.pm's pipeline (serial and parallel stages, webhooks to a real
# receiver) are in flight with "pipelinectl runner" and "pipelinectl hookd" running; the
# server is restarted in immediate mode, twice (once early, once later in the runs).  Both
# programs reconnect by themselves; then InFlight::check: every run succeeds, no acknowledged
# report is lost, every delivery arrives at least once and is recorded succeeded, and no job
# task's command ran more often than its attempts.  That is the at-least-once bound: a command
# runs once per claim; it runs again only if its task was reaped (a claim whose answer the
# runner lost, or a runner silent longer than pipeline.heartbeat_timeout) and retried.  Lost
# answers are covered the way an operator's pg_cron job covers them: pipeline.reap() every
# second with a short pipeline.heartbeat_timeout.  Prints the recovery times and figures.
#
# Locking notes: none of its own.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use PipelineNode;
use InFlight;

my $HEARTBEAT_TIMEOUT = 8;
my $tmp = $PostgreSQL::Test::Utils::tmp_check;
my $node = PipelineNode::new_node('restart');
my $db = 'postgres';
$node->safe_psql($db, 'CREATE EXTENSION pipeline');
my $recv = PipelineNode::start_receiver("$tmp/recv.jsonl", 600);
my $w = InFlight::define($node, $recv, "$tmp/done.txt", runs => 5);

my $rlog = "$tmp/runner.log";
my $hlog = "$tmp/hookd.log";
my $conninfo = $node->connstr($db);
my $runner = PipelineNode::spawn_ctl($conninfo, $rlog, 'runner', '--name', 'rs-runner',
	'--concurrency', '4', '--heartbeat', '1', '--poll-interval', '0.5');
my $hookd = PipelineNode::spawn_ctl($conninfo, $hlog, 'hookd', '--name', 'rs-hookd',
	'--concurrency', '4', '--poll-interval', '0.5', '--lease', '20');
$node->safe_psql($db, InFlight::run_sql($w));

# pg_ctl restart -m immediate; returns (epoch before, epoch when the server was back)
sub restart_immediate
{
	my $t0 = time();
	PostgreSQL::Test::Utils::system_or_bail('pg_ctl', '-w', '-D', $node->data_dir, '-l', $node->logfile,
		'-m', 'immediate', 'restart');
	$node->_update_pid(1);
	return ($t0, time());
}

my @recover;
for my $fraction (0.2, 0.6)
{
	my $n = InFlight::wait_done($w, $fraction);
	ok($n >= $w->{ntasks} * $fraction && $n < $w->{ntasks}, "mid-run: $n of $w->{ntasks} commands ended");
	my ($t0, $t_up) = restart_immediate();
	# the first report the runner committed after the restart
	my $first = '';
	my $deadline = time() + 60;
	until ($first ne '' || time() > $deadline)
	{
		$first = InFlight::first_report_after($node, $t_up);
		usleep(100_000) if $first eq '';
	}
	ok($first ne '', 'the runner reported again after the restart');
	push @recover, $first - $t0 if $first ne '';
}
like(slurp_file($node->logfile), qr/database system was interrupted.*redo starts/s,
	'the server started with crash recovery');

my ($reaped, $open_runs, $open_dels) = InFlight::reap_until_finished($node, $w, $HEARTBEAT_TIMEOUT, 150);
is("$open_runs $open_dels", '0 0', 'every run and every delivery finished');
is(PipelineNode::stop_ctl($runner), 0, 'runner stops cleanly on SIGTERM');
is(PipelineNode::stop_ctl($hookd), 0, 'hookd stops cleanly on SIGTERM');
like(slurp_file($rlog), qr/reconnected to the database/, 'runner reconnected by itself');
like(slurp_file($hlog), qr/reconnected to the database/, 'hookd reconnected by itself');

my %fig = InFlight::check($node, $w, $rlog);
note(sprintf('recover: %s s (restart to the first report committed after it)',
	join(', ', map { sprintf('%.1f', $_) } @recover)));
note("tasks checked: $w->{ntasks}, acknowledged reports checked: $fig{acks}, executions: "
	  . "$fig{executions}, commands run twice: $fig{reruns}, tasks reaped: $reaped");
note("deliveries checked: $fig{deliveries}, sent twice: $fig{resent}");

kill 'TERM', $recv->{pid};
waitpid($recv->{pid}, 0);
$node->stop;
done_testing();
