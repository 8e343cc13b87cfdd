# 030_fuzz: fuzzed definitions never crash the server, are refused with 22023 and a valid
# UTF-8 message, and a refusal stores nothing.
#
# 030_fuzz.sql generates the documents in the server (seeded random mutations of a valid job
# and a valid pipeline: wrong types, missing and unknown keys, huge strings, deep nesting,
# emoji and invalid names, numbers out of range, duplicate names, hooks of every shape, gates,
# params) and calls define_job / define_pipeline on each in its own subtransaction.  Checked:
# the backend survives (no "terminated by signal" in the server log, the session answers);
# every refusal is SQLSTATE 22023 and its message is valid UTF-8 (each other one is printed
# with its document); pipeline.job and pipeline.pipeline hold exactly the (name, version) rows
# define_* returned for the accepted documents, and no run, event or delivery exists.
# FUZZ_DOCS (default 100000) and FUZZ_SEED (default 0.4242) in the environment change the run.
# Prints "# fuzzed: N documents, A accepted, R refused" and the time taken.
#
# Locking notes: none; one session.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use PipelineNode;

my $n_docs = $ENV{FUZZ_DOCS} // 100000;
my $seed = $ENV{FUZZ_SEED} // 0.4242;
my $node = PipelineNode::new_node('fuzz');
my $db = 'postgres';
$node->safe_psql($db, 'CREATE EXTENSION pipeline');

my $sql = slurp_file("$ENV{PL_ROOT}/test/t/030_fuzz.sql");
my $t0 = time();
my ($rc, $out, $err) = $node->psql($db, "SET fz.n_docs = $n_docs; SET fz.seed = $seed;\n$sql",
	on_error_stop => 1, timeout => 600);
my $took = time() - $t0;
is($rc, 0, 'the generator ran to the end') or diag($err);
unlike(slurp_file($node->logfile), qr/terminated by signal|server process .* was terminated/,
	'no backend crashed');
is($node->safe_psql($db, 'SELECT 1'), '1', 'the server answers');

my ($skipped, $docs) = split /\|/, $node->safe_psql($db, 'SELECT n, docs FROM fz_skipped');
my $accepted = $node->safe_psql($db, 'SELECT count(*) FROM fz_ok');
my %by_state = map { split /\|/ } split /\n/, $node->safe_psql($db, 'SELECT sqlstate, n FROM fz_count');
my $bad_utf8 = delete $by_state{'bad-utf8'} // 0;
my $refused = 0;
$refused += $_ for values %by_state;
is($accepted + $refused, $docs, "every document accounted for ($docs)");
cmp_ok($docs, '>=', $n_docs, "at least $n_docs documents");

my $bad = $node->safe_psql($db, q{SELECT count(*) FROM fz_bad});
is(join(' ', map { "$_=$by_state{$_}" } sort keys %by_state), "22023=$refused",
	'every refusal is 22023');
is($bad_utf8, 0, 'every refusal message is valid UTF-8');
if ($bad > 0)
{
	# one example per (sqlstate, start of message): the document and the message as sent
	diag($node->safe_psql($db, q{
		SELECT DISTINCT ON (sqlstate, left(encode(msg, 'escape'), 40))
		       sqlstate || ' utf8=' || utf8_ok || ' message: ' || left(encode(msg, 'escape'), 300)
		       || E'\n    document: ' || left(doc, 300)
		  FROM fz_bad ORDER BY sqlstate, left(encode(msg, 'escape'), 40) LIMIT 20}));
}

is($node->safe_psql($db, q{
	SELECT (SELECT count(*) FROM (SELECT name, version FROM pipeline.job WHERE name <> 'fz-job'
	          EXCEPT SELECT name, version FROM fz_ok WHERE kind = 'job') a) || ' ' ||
	       (SELECT count(*) FROM (SELECT name, version FROM fz_ok WHERE kind = 'job'
	          EXCEPT SELECT name, version FROM pipeline.job) b) || ' ' ||
	       (SELECT count(*) FROM (SELECT name, version FROM pipeline.pipeline
	          EXCEPT SELECT name, version FROM fz_ok WHERE kind = 'pipeline') c) || ' ' ||
	       (SELECT count(*) FROM (SELECT name, version FROM fz_ok WHERE kind = 'pipeline'
	          EXCEPT SELECT name, version FROM pipeline.pipeline) d) || ' ' ||
	       (SELECT count(*) FROM pipeline.job) + (SELECT count(*) FROM pipeline.pipeline)}),
	'0 0 0 0 ' . ($accepted + 1),
	'pipeline.job and pipeline.pipeline hold exactly the accepted definitions');
is($node->safe_psql($db, q{
	SELECT (SELECT count(*) FROM pipeline.pipeline_task) + (SELECT count(*) FROM pipeline.job_task)
	     + (SELECT count(*) FROM pipeline.event) + (SELECT count(*) FROM pipeline.hook_delivery)}),
	'0', 'no run, task, event or delivery');

note(sprintf('fuzzed: %d documents, %d accepted, %d refused (%.1f s; %d mutations skipped)',
	$docs, $accepted, $refused, $took, $skipped));
$node->stop;
done_testing();
