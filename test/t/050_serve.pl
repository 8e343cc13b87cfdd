# 050_serve: "pipelinectl serve", the web dashboard and /metrics (SPEC §17), in a real browser.
#
# A node with password authentication on 127.0.0.1 (scram-sha-256), the README's roles plus a
# read-only viewer role and a role for serve itself; a real runner; two dashboards:
#   A  --login                         (anonymous visitors must see nothing)
#   B  --read-only-role pl_viewer      (anonymous visitors read as pl_viewer)
# test/browser/dashboard.py then drives headless Chromium over the DevTools protocol and
# checks pages, live updates, the log tail, gates clicked by an auditor and by a runner,
# escaping, CSRF and /metrics against pipeline.stats; each of its checks is one test here.
# Last, a third dashboard runs under valgrind for a short session (pages, a sign-in, an SSE
# stream, metrics) and must report nothing.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;
use Time::HiRes qw(usleep time);

my $root = $ENV{PL_ROOT} // '.';
my $tmp = $PostgreSQL::Test::Utils::tmp_check;

plan skip_all => 'chromium is not installed (scripts/lib.sh installs it)'
  unless -x '/usr/bin/chromium';

my $node = PipelineNode::new_node('serve', extra_conf => "listen_addresses = '127.0.0.1'\n");
# passwords on TCP (the first line wins over initdb's trust lines); the socket stays trust
my $hba = $node->data_dir . '/pg_hba.conf';
my $old = slurp_file($hba);
open(my $fh, '>', $hba) or die $!;
print $fh "host all all 127.0.0.1/32 scram-sha-256\n" . $old;
close $fh;
$node->reload;

$node->safe_psql('postgres', q{
CREATE EXTENSION pipeline;
CREATE ROLE ci_runner LOGIN PASSWORD 'runner-pw';
CREATE ROLE ci_auditor LOGIN PASSWORD 'auditor-pw';
CREATE ROLE pl_viewer NOLOGIN;
CREATE ROLE pl_dash LOGIN PASSWORD 'dash-pw' IN ROLE pl_viewer;
GRANT USAGE ON SCHEMA pipeline TO ci_runner, ci_auditor, pl_viewer, pl_dash;
GRANT EXECUTE ON FUNCTION pipeline.mask_params(jsonb, text[]) TO ci_runner, ci_auditor, pl_viewer, pl_dash;
GRANT EXECUTE ON FUNCTION
    pipeline.claim_job_tasks(text, int, jsonb),
    pipeline.update_job_task_status(bigint, pipeline.task_stage, text, text, jsonb, jsonb, jsonb, boolean, boolean),
    pipeline.heartbeat(bigint, text),
    pipeline.append_job_task_log(bigint, text, text)
  TO ci_runner;
-- pipeline_tasks too, so that the runner role sees the run page and its buttons: only the
-- gate function's grant refuses its approve click
GRANT SELECT ON pipeline.job_tasks, pipeline.pipeline_tasks TO ci_runner;
GRANT EXECUTE ON FUNCTION
    pipeline.audit_job_task(bigint, boolean, text),
    pipeline.confirm_job_task(bigint, boolean, text),
    pipeline.play_job_task(bigint),
    pipeline.job_task_log(bigint), pipeline.graph(bigint, text)
  TO ci_auditor;
GRANT SELECT ON pipeline.job_tasks, pipeline.pipeline_tasks TO ci_auditor;
-- the read-only viewer: the masking views and the logs, no function that changes anything
GRANT SELECT ON pipeline.job_tasks, pipeline.pipeline_tasks TO pl_viewer;
GRANT EXECUTE ON FUNCTION pipeline.job_task_log(bigint) TO pl_viewer;
-- serve's own role: the counters of /metrics and the events of the live pages
GRANT SELECT ON pipeline.stats TO pl_dash;
GRANT EXECUTE ON FUNCTION pipeline.events_since(bigint, int) TO pl_dash;
});

# a pipeline whose run_by and output need escaping, a task the test releases, an audit gate
my $ctl = "$tmp/release";
$node->safe_psql('postgres', qq{
SELECT pipeline.define_pipeline(\$j\${"name": "web", "stages": [
  {"name": "build", "tasks": [{"name": "build-it",
     "job": {"command": "echo '<script>window.xsslog=1</script>'; echo built"}}]},
  {"name": "test", "tasks": [{"name": "slow",
     "job": {"command": "echo 'tick 1'; while [ ! -e $ctl ]; do sleep 0.2; done; echo 'tick 2 after release'"}}]},
  {"name": "deploy", "tasks": [{"name": "ship", "job": {"command": "echo shipped"},
     "audit": {"enable": true, "auditors": ["ci_auditor"]}}]}]}\$j\$::jsonb)});
# task names are validated by the engine (letters, digits, _ and -); run_by is free text
my $run = $node->safe_psql('postgres',
	q{SELECT pipeline.run_pipeline('web', run_by => '<script>window.xss=1</script>')});

my $runner_log = "$tmp/runner.log";
my $runner = PipelineNode::spawn_ctl($node->connstr('postgres'), $runner_log, 'runner',
	'--name', 'r1');

# serve connects over TCP with a password, as its own role
my $port = $node->port;
my $dash = "host=127.0.0.1 port=$port dbname=postgres user=pl_dash password=dash-pw";

sub free_port
{
	require IO::Socket::INET;
	my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0)
	  or die "no free port: $!";
	my $p = $s->sockport;
	close $s;
	return $p;
}

sub wait_http
{
	my ($url) = @_;
	my $deadline = time() + 60;
	while (time() < $deadline)
	{
		my $out = `curl -s -o /dev/null -w '%{http_code}' $url/healthz 2>/dev/null`;
		return 1 if $out eq '200';
		usleep(200_000);
	}
	return 0;
}

my ($pa, $pb) = (free_port(), free_port());
my $serve_a = PipelineNode::spawn_ctl($dash, "$tmp/serve-a.log", 'serve', '--login',
	'--listen', "127.0.0.1:$pa");
my $serve_b = PipelineNode::spawn_ctl($dash, "$tmp/serve-b.log", 'serve', '--read-only-role',
	'pl_viewer', '--listen', "127.0.0.1:$pb");
ok(wait_http("http://127.0.0.1:$pa"), 'dashboard A (--login) answers /healthz');
ok(wait_http("http://127.0.0.1:$pb"), 'dashboard B (--read-only-role) answers /healthz');

# serve refuses a read-only role it is not a member of
my ($out, $err);
my $rc = system("$PipelineNode::PIPELINECTL -d '$dash' serve --read-only-role ci_auditor --listen 127.0.0.1:1 >$tmp/notmember.log 2>&1") >> 8;
is($rc, 2, 'serve --read-only-role ROLE that serve\'s role is not a member of: exit 2');
like(slurp_file("$tmp/notmember.log"), qr/not a member of it/, '... saying why');

# the browser checks
my $shot = "$tmp/dashboard-run.png";
my @env = (
	"URL_A=http://127.0.0.1:$pa", "URL_B=http://127.0.0.1:$pb", "RUN=$run",
	"PGCONN=" . $node->connstr('postgres'), "RELEASE=$ctl", "SCREENSHOT=$shot");
my $script = "$root/test/browser/dashboard.py";
my $report = `env @env python3 $script 2>$tmp/dashboard.err`;
my $checks = 0;
for my $line (split /\n/, $report)
{
	if ($line =~ /^(not )?ok - (.*)$/)
	{
		ok(!defined $1, $2);
		$checks++;
	}
	else
	{
		note($line);
	}
}
ok($checks >= 40, "dashboard.py ran all its checks ($checks)");
diag(slurp_file("$tmp/dashboard.err")) if -s "$tmp/dashboard.err";

# docs/dashboard-run.png is this screenshot (PL_UPDATE_DOCS=1 refreshes it when docs/ is writable)
if (-s $shot && $ENV{PL_UPDATE_DOCS})
{
	if (-w "$root/docs") { system('cp', $shot, "$root/docs/dashboard-run.png"); }
	else { diag("docs/ is not writable: the new screenshot is $shot"); }
}

# ---------------------------------------------------------------- Play (SPEC §13)
# a blocking manual task of a real run: its row on the run page has a Play button; the
# auditor's click (the form's POST, with the page's CSRF token) plays it and the runner runs it
{
	my $u = "http://127.0.0.1:$pa";
	my $jar = "$tmp/play.cookies";
	$node->safe_psql('postgres', q{SELECT pipeline.define_pipeline('{"name": "web_play", "stages": [
	  {"name": "release", "tasks": [{"name": "go", "when": "manual", "blocking": true,
	     "job": {"command": "echo played"}}]}]}')});
	my $prun = $node->safe_psql('postgres', q{SELECT pipeline.run_pipeline('web_play')});
	my $go = $node->safe_psql('postgres',
		"SELECT id FROM pipeline.job_task WHERE pipeline_task_id = $prun");
	is($node->safe_psql('postgres', "SELECT stage FROM pipeline.job_task WHERE id = $go"),
		'pending', 'Play: the manual task waits, pending');
	my $page = `curl -s -c $jar -b $jar $u/login`;
	my ($csrf) = $page =~ /name="csrf" value="([0-9a-f]+)"/;
	system("curl -s -c $jar -b $jar -d csrf=$csrf -d role=ci_auditor -d password=auditor-pw $u/login >/dev/null");
	$page = `curl -s -c $jar -b $jar $u/run/$prun`;
	($csrf) = $page =~ /name="csrf" value="([0-9a-f]+)"/;
	like($page, qr/<form[^>]*>(?:(?!<\/form>).)*name="action" value="play"(?:(?!<\/form>).)*name="id" value="$go"/s,
		'Play: the run page has a Play button for it');
	system("curl -s -b $jar -d csrf=$csrf -d action=play -d id=$go -d run=$prun $u/action >/dev/null");
	my $stage = '';
	for (1 .. 150)
	{
		$stage = $node->safe_psql('postgres', "SELECT stage FROM pipeline.pipeline_task WHERE id = $prun");
		last if $stage eq 'succeeded';
		usleep(200_000);
	}
	is($stage, 'succeeded', 'Play: the click played it, the runner ran it, the run succeeded');
	like($node->safe_psql('postgres',
		"SELECT string_agg(chunk, '') FROM pipeline.job_task_log WHERE job_task_id = $go"),
		qr/^played\n?$/, '... with its output');
}

is(PipelineNode::stop_ctl($serve_a), 0, 'serve A stops cleanly on SIGTERM (exit 0)');
is(PipelineNode::stop_ctl($serve_b), 0, 'serve B stops cleanly on SIGTERM (exit 0)');

# ---------------------------------------------------------------- TLS
SKIP:
{
	skip 'openssl is not installed', 3 unless -x '/usr/bin/openssl';
	system("openssl req -x509 -newkey rsa:2048 -nodes -keyout $tmp/key.pem -out $tmp/cert.pem "
		  . "-days 2 -subj /CN=127.0.0.1 >/dev/null 2>&1");
	my $pt = free_port();
	my $serve_t = PipelineNode::spawn_ctl($dash, "$tmp/serve-tls.log", 'serve', '--login',
		'--listen', "127.0.0.1:$pt", '--tls-cert', "$tmp/cert.pem", '--tls-key', "$tmp/key.pem");
	my $ok = 0;
	for (1 .. 100)
	{
		$ok = 1, last if `curl -sk https://127.0.0.1:$pt/healthz` eq "ok\n";
		usleep(200_000);
	}
	ok($ok, 'serve --tls-cert/--tls-key answers over HTTPS');
	like(`curl -sk -D - -o /dev/null https://127.0.0.1:$pt/login`, qr/^Set-Cookie: pl_session=[^\n]*; Secure/mi,
		'... and its session cookie is Secure');
	is(PipelineNode::stop_ctl($serve_t), 0, '... and stops cleanly');
}

# ---------------------------------------------------------------- valgrind: a short session
SKIP:
{
	skip 'valgrind is not installed', 4 unless -x '/usr/bin/valgrind';
	my $pv = free_port();
	my $vglog = "$tmp/vg-serve.log";
	my $vg = fork();
	if ($vg == 0)
	{
		open(STDOUT, '>>', "$tmp/serve-vg.out");
		open(STDERR, '>&', \*STDOUT);
		exec('valgrind', '-q', '--leak-check=full', '--errors-for-leak-kinds=definite,indirect',
			'--show-leak-kinds=definite,indirect', '--error-exitcode=99', "--log-file=$vglog",
			$PipelineNode::PIPELINECTL, '-d', $dash, 'serve', '--login', '--read-only-role',
			'pl_viewer', '--listen', "127.0.0.1:$pv") or die;
	}
	ok(wait_http("http://127.0.0.1:$pv"), 'serve under valgrind answers');
	my $u = "http://127.0.0.1:$pv";
	my $jar = "$tmp/vg.cookies";
	my $task = $node->safe_psql('postgres',
		"SELECT min(id) FROM pipeline.job_task WHERE pipeline_task_id = $run");
	system("curl -s -c $jar -b $jar $u/ >/dev/null");
	system("curl -s -b $jar $u/run/$run $u/run/$run/part $u/task/$task $u/task/$task/log $u/metrics $u/healthz $u/nope >/dev/null");
	system("curl -s -m 3 -b $jar $u/run/$run/events $u/task/$task/stream >/dev/null");
	my $page = `curl -s -c $jar -b $jar $u/login`;
	my ($csrf) = $page =~ /name="csrf" value="([0-9a-f]+)"/;
	system("curl -s -c $jar -b $jar -d csrf=$csrf -d role=ci_auditor -d password=auditor-pw $u/login >/dev/null");
	$page = `curl -s -c $jar -b $jar $u/run/$run`;
	($csrf) = $page =~ /name="csrf" value="([0-9a-f]+)"/;
	system("curl -s -b $jar -d csrf=$csrf -d action=retry -d id=$task -d run=$run $u/action >/dev/null");
	system("curl -s -b $jar -d action=retry -d id=$task $u/action >/dev/null");
	system("curl -s -c $jar -b $jar -d csrf=$csrf $u/logout >/dev/null");
	kill 'TERM', $vg;
	waitpid($vg, 0);
	is($? >> 8, 0, 'serve under valgrind: exit 0 after SIGTERM');
	ok(-e $vglog, 'valgrind wrote its report file');
	my $report = -e $vglog ? slurp_file($vglog) : 'no report';
	$report =~ s/^==\d+== *\n//mg;
	is($report, '', 'serve under valgrind: no memory error, no definite or indirect leak');
}

PipelineNode::stop_ctl($runner);
$node->stop;
done_testing();
