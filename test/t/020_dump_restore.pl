# 020_dump_restore: SPEC §18.  A database dumped with "pg_dump -Fc" in the middle of runs and
# restored with pg_restore into a fresh database keeps definitions, runs, tasks, events, hook
# deliveries, logs and counters, and its runs finish there with the tokens claimed before the
# dump.  Checks: every table's rows equal after the restore; events, runs, tasks, deliveries
# and log chunks go on numbering after the dumped ones (no duplicate id); a claimed task
# finishes with its old token, a gate waiting at dump time is approved, the runs succeed.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;

my $node = PipelineNode::new_node('dump');
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', 'CREATE EXTENSION pipeline');
my $me = $node->safe_psql('src', 'SELECT current_user');

# Definitions: a job, a build pipeline with a webhook (no sender runs: its deliveries stay
# pending), a deploy pipeline whose first task waits at an audit gate.
$node->safe_psql('src', q{SELECT pipeline.define_job('{"name": "compile", "command": "make", "timeout": 600}')});
$node->safe_psql('src', q{SELECT pipeline.define_pipeline('{"name": "build",
	"webhooks": [{"url": "http://127.0.0.1:9/hook", "secret": "s3cret"}],
	"stages": [{"name": "build", "is_parallel": true, "tasks": [
	               {"name": "compile", "job": "compile"},
	               {"name": "lint", "job": {"command": "true"}}]},
	           {"name": "package", "tasks": [{"name": "tar", "job": {"command": "tar c ."}}]}]}')});
$node->safe_psql('src', qq{SELECT pipeline.define_pipeline('{"name": "deploy",
	"stages": [{"name": "prod", "tasks": [{"name": "ship", "job": {"command": "true"},
	            "audit": {"enable": true, "auditors": ["$me"]}}]}]}')});

# Run A: compile claimed and active with a log and a heartbeat, lint succeeded; run B waits at
# the audit gate.  One forged token is counted in rejected_token_seq.
my $run_a = $node->safe_psql('src', q{SELECT pipeline.run_pipeline('build')});
my $run_b = $node->safe_psql('src', q{SELECT pipeline.run_pipeline('deploy')});
my %tok;
for my $row (split /\n/, $node->safe_psql('src',
		q{SELECT t.task_name || '=' || c.id || '=' || c.update_token
		    FROM pipeline.claim_job_tasks('r1', 10) c JOIN pipeline.job_task t ON t.id = c.id}))
{
	my ($name, $id, $token) = split /=/, $row;
	$tok{$name} = [ $id, $token ];
}
ok($tok{compile} && $tok{lint}, 'compile and lint claimed before the dump');
my ($compile, $ctoken) = @{ $tok{compile} };
my ($lint, $ltoken) = @{ $tok{lint} };
$node->safe_psql('src', "SELECT pipeline.update_job_task_status($compile, 'active', '$ctoken')");
$node->safe_psql('src', "SELECT pipeline.append_job_task_log($compile, '$ctoken', 'line one\n')");
$node->safe_psql('src', "SELECT pipeline.heartbeat($compile, '$ctoken')");
$node->safe_psql('src', "SELECT pipeline.update_job_task_status($lint, 'succeeded', '$ltoken')");
my ($rc) = $node->psql('src',
	"SELECT pipeline.update_job_task_status($compile, 'active', repeat('0', 48))");
isnt($rc, 0, 'a forged token is refused (and counted)');
is($node->safe_psql('src', "SELECT gate FROM pipeline.job_task WHERE pipeline_task_id = $run_b"),
	'audit', 'run B waits at its audit gate');

# What every table holds, as one text per table (rows in key order)
my @tables = (
	[ 'job', 'name, version' ], [ 'pipeline', 'name, version' ], [ 'pipeline_task', 'id' ],
	[ 'job_task', 'id' ], [ 'job_task_spec', 'job_task_id' ], [ 'event', 'id' ],
	[ 'hook_delivery', 'id' ], [ 'job_task_log', 'job_task_id, seq' ], [ 'schedule', 'name' ]);
sub contents
{
	my ($db) = @_;
	my %c;
	for my $t (@tables)
	{
		my ($name, $order) = @$t;
		$c{$name} = $node->safe_psql($db,
			"SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, '|' ORDER BY $order)), '')"
			  . " FROM pipeline.$name x");
	}
	return \%c;
}
my $before = contents('src');
my $max = sub {
	my ($db, $sql) = @_;
	return $node->safe_psql($db, $sql);
};
my $max_event = $max->('src', 'SELECT max(id) FROM pipeline.event');
my $max_delivery = $max->('src', 'SELECT max(id) FROM pipeline.hook_delivery');
my $max_task = $max->('src', 'SELECT max(id) FROM pipeline.job_task');
my $max_seq = $max->('src', 'SELECT max(seq) FROM pipeline.job_task_log');
ok($max_delivery > 0, "hook deliveries are pending at dump time ($max_delivery)");
like($before->{job_task_log}, qr/^1 /, 'one log chunk at dump time');

# ---- dump mid-run, restore into a fresh database
my $dump = "$PostgreSQL::Test::Utils::tmp_check/src.dump";
$node->command_ok([ 'pg_dump', '-Fc', '-d', 'src', '-f', $dump ], 'pg_dump -Fc of the database mid-run');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', 'dst', $dump ],
	'pg_restore into a fresh database (foreign keys satisfied in load order)');

my $after = contents('dst');
for my $t (@tables)
{
	is($after->{ $t->[0] }, $before->{ $t->[0] }, "pipeline.$t->[0]: same rows after the restore");
}
is($node->safe_psql('dst', 'SELECT rejected_tokens FROM pipeline.stats'), '1',
	'rejected_token_seq restored');

# ---- finish the runs in the restored database with the old tokens
$node->safe_psql('dst', "SELECT pipeline.append_job_task_log($compile, '$ctoken', 'line two\n')");
$node->safe_psql('dst', "SELECT pipeline.heartbeat($compile, '$ctoken')");
is($node->safe_psql('dst',
		"SELECT stage FROM pipeline.update_job_task_status($compile, 'succeeded', '$ctoken', 'built')"),
	'succeeded', 'compile succeeds with the token claimed before the dump');
is($node->safe_psql('dst', "SELECT string_agg(chunk, '' ORDER BY seq) FROM pipeline.job_task_log($compile)"),
	"line one\nline two\n", 'the log goes on after the restored chunk');
ok($node->safe_psql('dst', "SELECT min(seq) FROM pipeline.job_task_log WHERE seq > $max_seq") > $max_seq,
	'log chunks number on from the dumped ones');
my $tar = $node->safe_psql('dst', q{SELECT c.id || '=' || c.update_token FROM pipeline.claim_job_tasks('r2', 10) c});
my ($tar_id, $tar_tok) = split /=/, $tar;
ok($tar_id, 'the next stage was started and claimed in the restored database');
$node->safe_psql('dst', "SELECT pipeline.update_job_task_status($tar_id, 'succeeded', '$tar_tok')");
is($node->safe_psql('dst', "SELECT stage FROM pipeline.pipeline_task WHERE id = $run_a"),
	'succeeded', 'run A finished in the restored database');

my $ship = $node->safe_psql('dst', "SELECT id FROM pipeline.job_task WHERE pipeline_task_id = $run_b");
is($node->safe_psql('dst', "SELECT stage FROM pipeline.audit_job_task($ship, true)"),
	'scheduling', 'the gate waiting at dump time is approved');
my ($ship_id, $ship_tok) = split /=/,
  $node->safe_psql('dst', q{SELECT c.id || '=' || c.update_token FROM pipeline.claim_job_tasks('r2', 10) c});
is($ship_id, $ship, 'the approved task is claimed');
$node->safe_psql('dst', "SELECT pipeline.update_job_task_status($ship_id, 'succeeded', '$ship_tok')");
is($node->safe_psql('dst', "SELECT stage FROM pipeline.pipeline_task WHERE id = $run_b"),
	'succeeded', 'run B finished in the restored database');

# ---- numbering goes on from the dumped rows
is($node->safe_psql('dst', 'SELECT count(*) = count(DISTINCT id) FROM pipeline.event'), 't',
	'no duplicate event id');
ok($node->safe_psql('dst', "SELECT min(id) FROM pipeline.event WHERE id > $max_event") == $max_event + 1,
	'events continue from the dumped ones (next id = last dumped + 1)');
ok($node->safe_psql('dst', "SELECT count(*) FROM pipeline.events_since($max_event)") > 0,
	'events_since(last dumped id) returns the new events');
ok($node->safe_psql('dst', "SELECT count(*) FROM pipeline.hook_delivery WHERE id > $max_delivery") > 0,
	'new events got new deliveries, numbered after the dumped ones');
is($node->safe_psql('dst', "SELECT count(*) FROM pipeline.hook_delivery WHERE id <= $max_delivery AND status = 'pending'"),
	$node->safe_psql('src', "SELECT count(*) FROM pipeline.hook_delivery WHERE status = 'pending'"),
	'deliveries pending at dump time are still pending (a sender will send them)');
my $new_run = $node->safe_psql('dst', q{SELECT pipeline.run_pipeline('build')});
ok($new_run > $run_b, "a new run gets a fresh id ($new_run > $run_b)");
ok($node->safe_psql('dst', "SELECT min(id) FROM pipeline.job_task WHERE pipeline_task_id = $new_run") > $max_task,
	'its tasks get fresh ids');

# the source database is untouched by all this: its compile task is still active
is($node->safe_psql('src', "SELECT stage FROM pipeline.job_task WHERE id = $compile"), 'active',
	'the source database is independent of the restored one');

$node->stop;
done_testing();
