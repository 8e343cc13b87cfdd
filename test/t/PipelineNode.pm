# PipelineNode.pm: helpers shared by the TAP tests in test/t/ (PostgreSQL::Test::Cluster).
#
#   my $node = PipelineNode::new_node('primary');      # initdb, pipeline-friendly conf, started
#   $node->safe_psql('postgres', 'CREATE EXTENSION pipeline');
#   my $pid = PipelineNode::spawn_ctl($node->connstr('postgres'), $log, 'runner', '--name', 'r1');
#   PipelineNode::stop_ctl($pid);
#
# scripts/test runs every test/t/*.pl with prove, as the "postgres" OS user when it is root,
# with PATH starting at the PostgreSQL 15 binaries (where pipelinectl is installed) and
# PIPELINECTL naming the program.
package PipelineNode;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use POSIX ':sys_wait_h';
use Time::HiRes qw(usleep time);

our $PIPELINECTL = $ENV{PIPELINECTL} || 'pipelinectl';

# A started node with the settings the engine's tests expect.  %opts: allows_streaming => 1
# for a primary with standbys; extra_conf => "..." appended to postgresql.conf.
sub new_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(
		$opts{allows_streaming} ? (allows_streaming => 1) : (),
		extra => [ '--encoding=UTF8', '--locale=C.UTF-8' ]);
	$node->append_conf('postgresql.conf', "lc_messages = 'C'\nfsync = on\n"
		  . ($opts{extra_conf} // ''));
	$node->start unless $opts{no_start};
	return $node;
}

# Start "pipelinectl ARGS..." in the background with -d CONNINFO, its stdout and stderr
# appended to LOGFILE.  Returns the pid.
sub spawn_ctl
{
	my ($conninfo, $logfile, @args) = @_;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>>', $logfile) or die "$logfile: $!";
		open(STDERR, '>&', \*STDOUT);
		exec($PIPELINECTL, '-d', $conninfo, @args) or die "exec $PIPELINECTL: $!";
	}
	return $pid;
}

# SIGTERM (or SIG) a spawned program and wait for it (at most TIMEOUT seconds, then SIGKILL).
# Returns its exit status as wait() gives it.
sub stop_ctl
{
	my ($pid, $sig, $timeout) = @_;
	$sig //= 'TERM';
	$timeout //= 30;
	kill $sig, $pid;
	my $deadline = time() + $timeout;
	while (time() < $deadline)
	{
		my $r = waitpid($pid, WNOHANG);
		return $? if $r == $pid;
		usleep(50_000);
	}
	kill 'KILL', $pid;
	waitpid($pid, 0);
	return $?;
}

# Wait until SQL (a query returning one value) returns EXPECTED on NODE; dies after TIMEOUT s.
sub wait_for
{
	my ($node, $db, $sql, $expected, $timeout) = @_;
	$timeout //= 60;
	my $deadline = time() + $timeout;
	my $got = '';
	while (time() < $deadline)
	{
		my ($rc, $out) = (0, '');
		$out = $node->safe_psql($db, $sql) if eval { $node->safe_psql($db, 'SELECT 1'); 1 };
		$got = $out // '';
		return $got if $got eq $expected;
		usleep(100_000);
	}
	die "timed out after ${timeout}s waiting for [$sql] = [$expected], last [$got]";
}

1;
