# 013_crash_hookd: SIGKILL of hookd in the middle of a send; the delivery still arrives.
#
# A run's hook points at the receiver's /slow/3 path (it answers after 3 s).  A real
# "pipelinectl hookd --lease 20" claims the deliveries and sends them; once the receiver has
# recorded the first request (it records on arrival, before answering) hookd is killed with
# SIGKILL, so no result is recorded: the delivery stays 'sending' under its lease.  A second
# hookd, started at once, does not take it before the lease ends (the first sender might still
# be sending), then sends it again: the delivery arrives at least once (here twice: the killed
# send had reached the receiver), is recorded succeeded by the second sender with attempts = 2,
# and every other delivery of the run too.  Prints how long the redelivery took.
#
# Locking notes: none of its own.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use PipelineNode;

my $LEASE = 20;
my $tmp = $PostgreSQL::Test::Utils::tmp_check;
my $node = PipelineNode::new_node('hookd_crash');
my $db = 'postgres';
$node->safe_psql($db, 'CREATE EXTENSION pipeline');
my $recv = PipelineNode::start_receiver("$tmp/recv.jsonl", 300);
$node->safe_psql($db, qq{SELECT pipeline.define_pipeline('{"name": "hk",
	"webhooks": [{"url": "$recv->{url}/slow/3/hk", "events": ["active"]}],
	"stages": [{"name": "s", "tasks": [{"name": "a", "job": {"command": "true"},
	  "webhooks": [{"url": "$recv->{url}/ok/hk-task"}]}]}]}')});
my $run = $node->safe_psql($db, q{SELECT pipeline.run_pipeline('hk')});
my $slow = $node->safe_psql($db, "SELECT id FROM pipeline.hook_delivery WHERE target->>'url' LIKE '%/slow/3/hk'");
ok($slow, "the run's 'active' change made delivery $slow to the slow path");

my $log1 = "$tmp/hookd1.log";
my $h1 = PipelineNode::spawn_ctl($node->connstr($db), $log1, 'hookd', '--name', 'h1',
	'--poll-interval', '0.5', '--lease', $LEASE);
my $deadline = time() + 30;
my $arrived;
until ($arrived || time() > $deadline)
{
	($arrived) = grep { ($_->{path} // '') eq '/slow/3/hk' } PipelineNode::receiver_requests($recv);
	usleep(50_000) unless $arrived;
}
ok($arrived, 'the first send reached the receiver (it answers in 3 s)');
my $t0 = time();
kill 'KILL', $h1;
waitpid($h1, 0);
is($node->safe_psql($db, "SELECT status || ' ' || attempts || ' ' || sender || ' ' || "
	  . "(lease_until > now()) || ' ' || jsonb_array_length(results) FROM pipeline.hook_delivery WHERE id = $slow"),
	'sending 1 h1 true 0', 'killed mid-send: the delivery is still sending under h1\'s lease, no result recorded');

# a second sender: nothing before the lease ends, then the redelivery
my $log2 = "$tmp/hookd2.log";
my $h2 = PipelineNode::spawn_ctl($node->connstr($db), $log2, 'hookd', '--name', 'h2',
	'--poll-interval', '0.5', '--lease', $LEASE);
sleep 3;
is($node->safe_psql($db, "SELECT sender FROM pipeline.hook_delivery WHERE id = $slow"), 'h1',
	'the second sender leaves it alone while the lease holds');
PipelineNode::wait_for($node, $db, "SELECT status FROM pipeline.hook_delivery WHERE id = $slow",
	'succeeded', $LEASE + 30);
my $redelivered = time() - $t0;
is($node->safe_psql($db, "SELECT status || ' ' || attempts || ' ' || sender || ' ' || http_code || ' ' || "
	  . "jsonb_array_length(results) FROM pipeline.hook_delivery WHERE id = $slow"),
	'succeeded 2 h2 200 1', 'recorded succeeded by the second sender, on the second attempt');
my @got = grep { (PipelineNode::header($_, 'X-Pipeline-Delivery') // '') eq $slow }
  PipelineNode::receiver_requests($recv);
is(scalar(@got), 2, 'the receiver got it twice (the killed send had arrived): at least once');
cmp_ok($redelivered, '>=', $LEASE - 3, 'not redelivered before the lease ended');

# the rest of the run's deliveries too
$node->safe_psql($db, q{
	SELECT pipeline.update_job_task_status(id, 'succeeded', update_token)
	  FROM pipeline.claim_job_tasks('t', 1)});
PipelineNode::wait_for($node, $db,
	"SELECT count(*) FILTER (WHERE status <> 'succeeded') FROM pipeline.hook_delivery", '0', 30);
my @db = split /\n/, $node->safe_psql($db, 'SELECT id FROM pipeline.hook_delivery ORDER BY id');
my %seen = map { (PipelineNode::header($_, 'X-Pipeline-Delivery') // '') => 1 } PipelineNode::receiver_requests($recv);
is(scalar(grep { !$seen{$_} } @db), 0, scalar(@db) . ' deliveries, every one arrived and was recorded succeeded');
is(PipelineNode::stop_ctl($h2), 0, 'the second hookd stops cleanly');

note(sprintf('deliveries checked: %d; redelivered %.1f s after the SIGKILL (lease %d s)',
	scalar(@db), $redelivered, $LEASE));
kill 'TERM', $recv->{pid};
waitpid($recv->{pid}, 0);
$node->stop;
done_testing();
