# PipelineNode.pm: helpers shared by the TAP tests in test/t/ (PostgreSQL::Test::Cluster).
#
#   my $node = PipelineNode::new_node('primary');      # initdb, pipeline-friendly conf, started
#   $node->safe_psql('postgres', 'CREATE EXTENSION pipeline');
#   my $pid = PipelineNode::spawn_ctl($node->connstr('postgres'), $log, 'runner', '--name', 'r1');
#   PipelineNode::stop_ctl($pid);
#   my $standby = PipelineNode::new_standby($node, 'standby');   # streaming, from a fresh backup
#   my $recv = PipelineNode::start_receiver("$dir/recv.jsonl"); # test/cli/receiver.py: {pid, port, url, log}
#   my @reqs = PipelineNode::receiver_requests($recv);         # its recorded requests (hashes)
#   my %n = PipelineNode::log_lines($file, qr/.../);            # lines of a log file matching a regexp
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

# Processes started by spawn_ctl and start_receiver: whatever is still running when the test
# ends (a test that dies half-way included) is stopped at END, so that no runner, hookd or
# receiver outlives its test and keeps working on the next run's files.
my @spawned;
my $parent_pid = $$;

END
{
	local $?;    # the test's exit status: waitpid below would overwrite it
	if ($$ == $parent_pid)
	{
		my @live = grep { waitpid($_, WNOHANG) == 0 } @spawned;
		# twice: a runner's second signal stops its commands instead of waiting for them
		kill 'TERM', @live;
		usleep(200_000);
		kill 'TERM', @live;
		my $deadline = time() + 10;
		while (@live && time() < $deadline)
		{
			@live = grep { waitpid($_, WNOHANG) == 0 } @live;
			usleep(50_000) if @live;
		}
		kill 'KILL', @live;
		waitpid($_, 0) for @live;
	}
}

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
# appended to LOGFILE.  Returns the pid.  Stopped at the end of the test if still running.
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
		{ exec($PIPELINECTL, '-d', $conninfo, @args) };
		print STDERR "exec $PIPELINECTL: $!\n";
		POSIX::_exit(127);
	}
	push @spawned, $pid;
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

# Wait until SQL returns a non-empty value on NODE and return it; dies after TIMEOUT s.
sub wait_for_value
{
	my ($node, $db, $sql, $timeout) = @_;
	my $deadline = time() + ($timeout // 60);
	while (time() < $deadline)
	{
		my ($rc, $out) = $node->psql($db, $sql);
		return $out if $rc == 0 && defined $out && $out ne '';
		usleep(100_000);
	}
	die "timed out after ${timeout}s waiting for a value of [$sql]";
}

# A streaming standby of PRIMARY (started with allows_streaming => 1) from a fresh base backup,
# started, with the engine's settings.  Its primary_conninfo names it NAME (application_name),
# which is what synchronous_standby_names refers to.
sub new_standby
{
	my ($primary, $name) = @_;
	my $backup = "$name-base";
	$primary->backup($backup);
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init_from_backup($primary, $backup, has_streaming => 1);
	$node->start;
	return $node;
}

# Start test/cli/receiver.py (a real HTTP receiver on 127.0.0.1) logging to LOGFILE; waits for
# its port.  Returns {pid, port, url => "http://127.0.0.1:PORT", log => LOGFILE}.
sub start_receiver
{
	my ($logfile, $max_seconds) = @_;
	my $root = $ENV{PL_ROOT} or die "PL_ROOT is not set";
	my $portfile = "$logfile.port";
	unlink $portfile;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>>', "$logfile.out") or die "$logfile.out: $!";
		open(STDERR, '>&', \*STDOUT);
		{
			exec('python3', "$root/test/cli/receiver.py", '--log', $logfile, '--port-file', $portfile,
				'--max-seconds', $max_seconds // 600, '--quiet')
		};
		print STDERR "exec python3: $!\n";
		POSIX::_exit(127);
	}
	push @spawned, $pid;
	my $deadline = time() + 20;
	while (!-s $portfile)
	{
		die "receiver.py did not start (see $logfile.out)" if time() > $deadline;
		usleep(50_000);
	}
	my $port = PostgreSQL::Test::Utils::slurp_file($portfile);
	$port =~ s/\s+//g;
	return { pid => $pid, port => $port, url => "http://127.0.0.1:$port", log => $logfile };
}

# The requests RECEIVER recorded so far, in order (one hash per JSON line of its log).
sub receiver_requests
{
	my ($recv) = @_;
	require JSON::PP;
	my @out;
	open(my $fh, '<', $recv->{log}) or return ();
	while (my $line = <$fh>)
	{
		next unless $line =~ /\S/;
		push @out, JSON::PP->new->decode($line);
	}
	close $fh;
	return @out;
}

# A request's header, by name (case-insensitive), or undef.
sub header
{
	my ($req, $name) = @_;
	for my $k (keys %{ $req->{headers} // {} })
	{
		return $req->{headers}{$k} if lc($k) eq lc($name);
	}
	return undef;
}

# Lines of FILE matching RE, as a list of the first capture group (or the whole line).
sub log_lines
{
	my ($file, $re) = @_;
	my @out;
	open(my $fh, '<', $file) or return ();
	while (my $line = <$fh>)
	{
		push @out, (defined $1 ? $1 : $line) if $line =~ $re;
	}
	close $fh;
	return @out;
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
