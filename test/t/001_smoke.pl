# 001_smoke: the TAP harness itself: a throwaway node from PostgreSQL::Test::Cluster, the
# installed extension, and a real "pipelinectl runner" that runs a two-stage pipeline to the end.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;

my $node = PipelineNode::new_node('smoke');
$node->safe_psql('postgres', 'CREATE EXTENSION pipeline');
$node->safe_psql('postgres', q{
	SELECT pipeline.define_pipeline('{"name": "smoke", "stages": [
		{"name": "one", "tasks": [{"name": "a", "job": {"command": "echo A=1 >> \"$PIPELINE_OUTPUT\""}}]},
		{"name": "two", "tasks": [{"name": "b", "job": {"command": "test \"$A\" = 1"}}]}]}')});
my $run = $node->safe_psql('postgres', q{SELECT pipeline.run_pipeline('smoke')});

my $log = "$PostgreSQL::Test::Utils::tmp_check/runner.log";
my $pid = PipelineNode::spawn_ctl($node->connstr('postgres'), $log, 'runner', '--exit-when-idle');
my $rc = PipelineNode::stop_ctl($pid, 'ZERO', 60);
is($rc, 0, 'runner --exit-when-idle exits 0');
is($node->safe_psql('postgres', "SELECT stage FROM pipeline.pipeline_task WHERE id = $run"),
	'succeeded', 'the run succeeded, the runtime env reached the second stage');

$node->stop;
done_testing();
