# 021_upgrade: ALTER EXTENSION pipeline UPDATE from each earlier release (built from the git
# history: 0.1 at 5015bb1, 0.3 at 215d83a) to the current version, with runs in every state, as
# a package upgrade does it.  From 0.1 the whole chain of upgrade scripts runs (0.1 -> 0.2 ->
# 0.3 -> ...); from 0.3, the newest release, the last step on data 0.3 wrote.  (0.2, at 838d148,
# was a start here until 0.4: its script is in the 0.1 chain, and the suite's time is better
# spent on the newest release.)  Each release goes through steps 1-5 on its own copy and node:
#
#   1. copy the PostgreSQL tree this suite runs on (bin, lib, share, include: relocatable)
#      into ROOT under this test's directory, without the current pipeline files;
#   2. build the old release from "git archive COMMIT" and install its pipeline.so, control
#      and scripts into ROOT; a missing history is a failure, not a skip;
#   3. a node on ROOT: CREATE EXTENSION pipeline VERSION 'OLD', runs queued, scheduling,
#      creating, active (token, log), at an audit gate, at a confirm gate, failed, succeeded,
#      canceled (one with its task still canceling), retried, with hook deliveries pending;
#   4. stop, install the current build's .so/.sql/.control into ROOT, start,
#      ALTER EXTENSION pipeline UPDATE: the current version, and a catalog description of schema
#      pipeline (columns in order, functions with signatures, SECURITY DEFINER and
#      search_path, bodies, views, indexes, constraints, sequences, config dump
#      registration, privileges, members) equal to a fresh install's;
#   5. finish every unfinished run: old tokens, gates approved, a real runner
#      (pipelinectl runner --exit-when-idle); pending deliveries claimed and completed.
#
# Building an old release takes a while (make -j2).  Locking: none of its own (one node).
use strict;
use warnings;
use File::Copy;
use File::Path qw(make_path remove_tree);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;

# the releases a database may be upgraded from: commit of the release, its version
my @OLD_RELEASES = ([ '5015bb1', '0.1' ], [ '215d83a', '0.3' ]);
my $PL_ROOT = $ENV{PL_ROOT} or BAIL_OUT('PL_ROOT is not set (scripts/test sets it)');
my $tmp = $PostgreSQL::Test::Utils::tmp_check;

sub run_or_die
{
	my ($what, $cmd) = @_;
	my $out = `$cmd 2>&1`;
	BAIL_OUT("$what failed (exit " . ($? >> 8) . "): $cmd\n$out") if $? != 0;
	return $out;
}

my $node;    # the node of the release being upgraded (q1 and the helpers use it)
sub q1 { return $node->safe_psql('postgres', $_[0]); }

# claim the one scheduling task there is (runs are made one at a time, so it is the
# intended one); returns (id, token)
sub claim_one
{
	my $r = q1(q{SELECT c.id || ' ' || c.update_token FROM pipeline.claim_job_tasks('old-runner', 1) c});
	die "nothing to claim" unless $r;
	return split / /, $r;
}
sub report
{
	my ($id, $tok, $stage) = @_;
	return q1("SELECT stage FROM pipeline.update_job_task_status($id, '$stage', '$tok')");
}

# the version this build installs (its control file, as installed in the suite's tree)
my $CURRENT = do
{
	my $sd = run_or_die('pg_config', 'pg_config --sharedir');
	chomp $sd;
	my $control = run_or_die('the installed control file', "cat '$sd/extension/pipeline.control'");
	$control =~ /default_version = '([^']+)'/ or BAIL_OUT("no default_version in $sd/extension/pipeline.control");
	$1;
};

sub upgrade_from
{
my ($OLD_COMMIT, $OLD) = @_;
# ---- 1. a private copy of the PostgreSQL tree
my $bindir = run_or_die('pg_config', 'pg_config --bindir');
chomp $bindir;
my $pkglibdir = run_or_die('pg_config', 'pg_config --pkglibdir');
chomp $pkglibdir;
my $sharedir = run_or_die('pg_config', 'pg_config --sharedir');
chomp $sharedir;
my $includedir = run_or_die('pg_config', 'pg_config --includedir');
chomp $includedir;
my $root = "$tmp/pgroot-$OLD";
my $install = "$root/usr/lib/postgresql/15";
remove_tree($root);
make_path("$root/usr/lib/postgresql", "$root/usr/share/postgresql", "$root/usr/include");
run_or_die('copy of the PostgreSQL tree',
	"cp -a '$bindir/..' '$install' && cp -a '$sharedir' '$root/usr/share/postgresql/15'"
	  . " && cp -a '$includedir' '$root/usr/include/postgresql'");
# the copy starts without any pipeline (the suite's tree has the current one installed)
run_or_die('removing the current pipeline from the copy',
	"rm -rf '$install/lib/pipeline.so' '$install/lib/bitcode/pipeline' '$install/lib/bitcode/pipeline.index.bc'"
	  . " '$root/usr/share/postgresql/15/extension/'pipeline*");
my $pg_config = "$install/bin/pg_config";
is(run_or_die('pg_config of the copy', "'$pg_config' --sharedir"), "$root/usr/share/postgresql/15\n",
	'the copied tree is relocated (its pg_config names its own directories)');

# ---- 2. build the old release from the history and install it into the copy
my $build = "$tmp/build-$OLD";
remove_tree($build);
make_path($build);
run_or_die("git archive $OLD_COMMIT (the $OLD release must be in the repository's history;"
	  . " a shallow clone needs 'git fetch --unshallow')",
	"git -c safe.directory='*' -C '$PL_ROOT' archive --format=tar $OLD_COMMIT | tar -x -C '$build'");
like(run_or_die('control', "cat '$build/pipeline.control'"), qr/default_version = '\Q$OLD\E'/,
	"$OLD_COMMIT is release $OLD");
my $t0 = time;
# only the server module: the old program is not needed, and its install rule would touch
# /usr/local/bin
run_or_die("building $OLD", "make -C '$build' -j2 PG_CONFIG='$pg_config' pipeline.so >/dev/null");
run_or_die("installing $OLD into the copy",
	"cp '$build/pipeline.so' '$install/lib/' && cp '$build/pipeline.control' '$build/'pipeline--*.sql"
	  . " '$root/usr/share/postgresql/15/extension/'");
note("$OLD built and installed in " . (time - $t0) . ' s');

# ---- 3. a node on the copy, runs in every state under the old release
$node = PostgreSQL::Test::Cluster->new("upgrade_$OLD", install_path => $install);
$node->init(extra => [ '--encoding=UTF8', '--locale=C.UTF-8' ]);
$node->append_conf('postgresql.conf', "lc_messages = 'C'\nfsync = on\n");
$node->start;
$node->safe_psql('postgres', "CREATE EXTENSION pipeline VERSION '$OLD'");
is($node->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'pipeline'"),
	$OLD, "version $OLD installed from the history");
my $me = $node->safe_psql('postgres', 'SELECT current_user');

q1(q{SELECT pipeline.define_pipeline('{"name": "two",
	"webhooks": [{"url": "http://127.0.0.1:9/hook", "secret": "s3cret", "headers": {"X-Team": "ci"}}],
	"stages": [{"name": "a", "tasks": [{"name": "t1", "job": {"command": "true"}}]},
	           {"name": "b", "tasks": [{"name": "t2", "job": {"command": "echo done"}}]}]}')});
q1(q{SELECT pipeline.define_pipeline('{"name": "ser", "is_parallel": false,
	"stages": [{"name": "a", "tasks": [{"name": "t", "job": {"command": "true"}}]}]}')});
q1(qq{SELECT pipeline.define_pipeline('{"name": "gated",
	"stages": [{"name": "a", "tasks": [{"name": "t", "job": {"command": "true"},
	                                    "audit": {"enable": true, "auditors": ["$me"]}}]},
	           {"name": "b", "tasks": [{"name": "t2", "job": {"command": "true"},
	                                    "confirm": {"enable": true, "checkers": ["$me"]}}]}]}')});

my %run;
my %tok;
# creating: claimed, no report yet
$run{creating} = q1(q{SELECT pipeline.run_pipeline('two')});
$tok{creating} = [ claim_one() ];
# active: claimed, reported active, a log chunk, a heartbeat
$run{active} = q1(q{SELECT pipeline.run_pipeline('two')});
$tok{active} = [ claim_one() ];
report(@{ $tok{active} }, 'active');
q1("SELECT pipeline.append_job_task_log($tok{active}[0], '$tok{active}[1]', 'before the upgrade\n')");
q1("SELECT pipeline.heartbeat($tok{active}[0], '$tok{active}[1]')");
# failed
$run{failed} = q1(q{SELECT pipeline.run_pipeline('two')});
my @f = claim_one();
q1("SELECT pipeline.update_job_task_status($f[0], 'failed', '$f[1]', message => 'exit code 1')");
# succeeded
$run{succeeded} = q1(q{SELECT pipeline.run_pipeline('two')});
report(claim_one(), 'succeeded');
report(claim_one(), 'succeeded');
# waiting at a confirm gate: audit passed, the task succeeded, the checker has not decided
$run{confirm} = q1(q{SELECT pipeline.run_pipeline('gated')});
q1("SELECT pipeline.audit_job_task(id, true) FROM pipeline.job_task WHERE pipeline_task_id = $run{confirm} AND stage_index = 0");
report(claim_one(), 'succeeded');
report(claim_one(), 'succeeded');
# waiting at an audit gate
$run{audit} = q1(q{SELECT pipeline.run_pipeline('gated')});
# canceling: canceled while its task runs; the runner has not reported yet
$run{canceling} = q1(q{SELECT pipeline.run_pipeline('two')});
$tok{canceling} = [ claim_one() ];
report(@{ $tok{canceling} }, 'active');
q1("SELECT pipeline.cancel_pipeline_task($run{canceling}, 'stop it')");
# canceled
$run{canceled} = q1(q{SELECT pipeline.run_pipeline('two')});
q1("SELECT pipeline.cancel_pipeline_task($run{canceled}, 'not today')");
# retried: failed, then retry_job_task (attempt 2, scheduling again)
$run{retried} = q1(q{SELECT pipeline.run_pipeline('two')});
@f = claim_one();
q1("SELECT pipeline.update_job_task_status($f[0], 'failed', '$f[1]', message => 'flaky')");
q1("SELECT pipeline.retry_job_task($f[0])");
# scheduling: nobody claimed it
$run{scheduling} = q1(q{SELECT pipeline.run_pipeline('two')});
# a serialized pipeline: one run scheduling, one queued behind it (pending)
$run{ser1} = q1(q{SELECT pipeline.run_pipeline('ser')});
$run{queued} = q1(q{SELECT pipeline.run_pipeline('ser', on_busy => 'queue')});

my %want_before = (
	creating => 'active', active => 'active', failed => 'failed', succeeded => 'succeeded',
	confirm => 'active', audit => 'active', canceled => 'canceled', retried => 'active',
	canceling => 'canceled',    # the run is canceled at once, its running task is canceling
	scheduling => 'active', ser1 => 'active', queued => 'pending');
for my $k (sort keys %want_before)
{
	is(q1("SELECT stage FROM pipeline.pipeline_task WHERE id = $run{$k}"), $want_before{$k},
		"$OLD: run '$k' is $want_before{$k}");
}
is(q1("SELECT string_agg(DISTINCT stage || '/' || coalesce(gate, '-'), ' ' ORDER BY stage || '/' || coalesce(gate, '-')) FROM pipeline.job_task"),
	'active/- canceled/- canceling/- creating/- failed/- pending/- pending/audit scheduling/- skipped/- succeeded/- succeeded/confirm',
	"$OLD: tasks in every stage, at both gates");
my $pending_deliveries = q1(q{SELECT count(*) FROM pipeline.hook_delivery WHERE status = 'pending'});
ok($pending_deliveries > 0, "$OLD: $pending_deliveries hook deliveries pending");
my $events_before = q1('SELECT max(id) FROM pipeline.event');
# every old event as readers see it (issue 12: 0.3 stores job task events slim and reads
# them through the view pipeline.event; the old rows must read exactly the same)
my $old_events_sql = q{SELECT md5(string_agg(to_jsonb(e)::text, E'\n' ORDER BY e.id)) FROM pipeline.event e};
my $old_events = q1($old_events_sql);
# a reader's grants on events_since and on pipeline.event (0.3 re-creates the one and makes
# the other a view): they must keep working
q1(q{CREATE ROLE upg_reader;
	GRANT USAGE ON SCHEMA pipeline TO upg_reader;
	GRANT EXECUTE ON FUNCTION pipeline.events_since(bigint, int) TO upg_reader;
	GRANT SELECT ON pipeline.event TO upg_reader});

# ---- 4. the package upgrade: new files into the same tree, then ALTER EXTENSION
$node->stop;
copy("$pkglibdir/pipeline.so", "$install/lib/pipeline.so") or die "copy pipeline.so: $!";
for my $f (glob("$sharedir/extension/pipeline*"))
{
	copy($f, "$root/usr/share/postgresql/15/extension/") or die "copy $f: $!";
}
if (-d "$pkglibdir/bitcode/pipeline")
{
	run_or_die('bitcode', "cp -a '$pkglibdir/bitcode/pipeline' '$pkglibdir/bitcode/pipeline.index.bc' '$install/lib/bitcode/'");
}
$node->start;
my $target = q1(q{SELECT default_version FROM pg_available_extensions WHERE name = 'pipeline'});
is($target, $CURRENT, "the current build offers $CURRENT");
$node->safe_psql('postgres', 'ALTER EXTENSION pipeline UPDATE');
is(q1(q{SELECT extversion FROM pg_extension WHERE extname = 'pipeline'}), $target,
	"ALTER EXTENSION pipeline UPDATE moved the database from $OLD to $CURRENT");
is(q1(q{SET ROLE upg_reader;
	SELECT (SELECT count(*) FROM pipeline.events_since(0, 100000)) || ' ' || (SELECT count(*) FROM pipeline.event)}),
	"$events_before $events_before", "a reader granted events_since and pipeline.event under $OLD still reads them");
# (its grants are not in a fresh install: gone before the catalogs are compared)
q1('DROP OWNED BY upg_reader; DROP ROLE upg_reader');

# A description of everything in schema pipeline, one sorted line per fact.
my $describe = <<'SQL';
WITH ns AS (SELECT 'pipeline'::regnamespace AS oid),
ext AS (SELECT oid FROM pg_extension WHERE extname = 'pipeline')
SELECT string_agg(line, E'\n' ORDER BY line) FROM (
  SELECT 'rel ' || c.relname || ' kind=' || c.relkind::text || ' owner=' || c.relowner::regrole
         || ' acl=' || coalesce(c.relacl::text, '-') || ' rls=' || c.relrowsecurity
         || ' opts=' || coalesce(c.reloptions::text, '-') AS line
    FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT 'col ' || c.relname || ' #' || lpad((row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum))::text, 3, '0')
         || ' ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
         || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
         || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
         || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END
         || ' collation=' || a.attcollation || ' acl=' || coalesce(a.attacl::text, '-')
    FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
   WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('r', 'v', 'm', 'c', 'p')
  UNION ALL
  SELECT 'view ' || c.relname || ' ' || pg_get_viewdef(c.oid)
    FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('v', 'm')
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT 'constraint ' || c.relname || ' ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
    FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid WHERE c.relnamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT 'trigger ' || pg_get_triggerdef(t.oid)
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relnamespace = (SELECT oid FROM ns) AND NOT t.tgisinternal
  UNION ALL
  SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
         || ' args=' || pg_get_function_arguments(p.oid) || ' returns=' || pg_get_function_result(p.oid)
         || ' kind=' || p.prokind::text || ' lang=' || l.lanname || ' security_definer=' || p.prosecdef
         || ' config=' || coalesce(p.proconfig::text, '-') || ' volatility=' || p.provolatile::text
         || ' strict=' || p.proisstrict || ' parallel=' || p.proparallel::text || ' owner=' || p.proowner::regrole
         || ' acl=' || coalesce(p.proacl::text, '-') || ' body=' || md5(coalesce(p.prosrc, ''))
         || ' sqlbody=' || md5(coalesce(pg_get_function_sqlbody(p.oid), ''))
         || ' bin=' || coalesce(p.probin, '-')
    FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.pronamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT 'type ' || t.typname || ' ' || t.typtype::text || coalesce(' ' || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                                                FROM pg_enum e WHERE e.enumtypid = t.oid), '')
         || ' acl=' || coalesce(t.typacl::text, '-')
    FROM pg_type t WHERE t.typnamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT 'sequence ' || s.seqrelid::regclass || ' ' || format_type(s.seqtypid, NULL) || ' start=' || s.seqstart
         || ' inc=' || s.seqincrement || ' min=' || s.seqmin || ' max=' || s.seqmax || ' cache=' || s.seqcache
         || ' cycle=' || s.seqcycle
    FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid WHERE c.relnamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT 'config_dump ' || x.cfg::regclass || ' where=' || coalesce(x.cond, '-')
    FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(cfg, cond) WHERE e.extname = 'pipeline'
  UNION ALL
  SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
    FROM pg_depend d WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = (SELECT oid FROM ext)
                       AND d.deptype = 'e'
  UNION ALL
  SELECT 'init_privs ' || pg_describe_object(i.classoid, i.objoid, i.objsubid) || ' ' || i.privtype::text
         || ' ' || i.initprivs::text
    FROM pg_init_privs i
   WHERE EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_extension'::regclass
                    AND d.refobjid = (SELECT oid FROM ext) AND d.deptype = 'e'
                    AND d.classid = i.classoid AND d.objid = i.objoid)
  UNION ALL
  SELECT 'comment ' || pg_describe_object(ds.classoid, ds.objoid, ds.objsubid) || ' ' || ds.description
    FROM pg_description ds JOIN pg_depend d ON d.classid = ds.classoid AND d.objid = ds.objoid
   WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = (SELECT oid FROM ext) AND d.deptype = 'e'
  UNION ALL
  SELECT 'schema owner=' || n.nspowner::regrole || ' acl=' || coalesce(n.nspacl::text, '-')
    FROM pg_namespace n WHERE n.oid = (SELECT oid FROM ns)
) facts
SQL
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION pipeline');
my $upgraded = $node->safe_psql('postgres', $describe);
my $fresh = $node->safe_psql('fresh', $describe);
my $nfacts = () = $fresh =~ /\n/g;
ok($nfacts > 200, 'the catalog description has ' . ($nfacts + 1) . ' facts');
my %u = map { $_ => 1 } split /\n/, $upgraded;
my %f = map { $_ => 1 } split /\n/, $fresh;
my @only_upgraded = grep { !$f{$_} } sort keys %u;
my @only_fresh = grep { !$u{$_} } sort keys %f;
is(scalar(@only_upgraded) + scalar(@only_fresh), 0,
	"the schema upgraded from $OLD equals a fresh install of $target")
  or diag("only after the upgrade:\n  " . join("\n  ", @only_upgraded)
	  . "\nonly in a fresh install:\n  " . join("\n  ", @only_fresh));

# ---- 5. every unfinished run finishes under the new version
is(q1("SELECT count(*) FROM pipeline.event WHERE id <= $events_before"), $events_before,
	"events of $OLD kept");
is(q1("$old_events_sql WHERE e.id <= $events_before"), $old_events,
	"events of $OLD read the same after the upgrade (payloads, stages, times)");
is(q1("SELECT md5(string_agg(to_jsonb(e)::text, E'\\n' ORDER BY e.id)) FROM pipeline.events_since(0, 100000) e"
	  . " WHERE e.id <= $events_before"), $old_events, "... and through events_since");
my ($cid, $ctok) = @{ $tok{creating} };
is(report($cid, $ctok, 'active'), 'active', "a task claimed under $OLD reports active with its old token");
is(report($cid, $ctok, 'succeeded'), 'succeeded', '... and succeeded');
my ($aid, $atok) = @{ $tok{active} };
q1("SELECT pipeline.append_job_task_log($aid, '$atok', 'after the upgrade\n')");
q1("SELECT pipeline.heartbeat($aid, '$atok')");
is(report($aid, $atok, 'succeeded'), 'succeeded', "an active task of $OLD finishes with its old token");
is(q1("SELECT string_agg(chunk, '' ORDER BY seq) FROM pipeline.job_task_log($aid)"),
	"before the upgrade\nafter the upgrade\n", 'its log spans the upgrade');
q1("SELECT pipeline.retry_job_task(id) FROM pipeline.job_task WHERE pipeline_task_id = $run{failed} AND stage = 'failed'");
my ($kid, $ktok) = @{ $tok{canceling} };
is(report($kid, $ktok, 'canceled'), 'canceled', "a task canceling under $OLD reports canceled with its old token");
is(q1("SELECT stage FROM pipeline.pipeline_task WHERE id = $run{failed}"), 'active',
	"a run failed under $OLD is retried under $CURRENT");

my $log = "$tmp/runner-$OLD.log";
for my $round (1 .. 6)
{
	# people decide at the gates, then a runner runs whatever is ready
	q1(q{SELECT count(pipeline.audit_job_task(id, true)) FROM pipeline.job_task WHERE gate = 'audit'});
	q1(q{SELECT count(pipeline.confirm_job_task(id, true)) FROM pipeline.job_task WHERE gate = 'confirm'});
	last if q1(q{SELECT count(*) FROM pipeline.pipeline_task WHERE stage < 'canceled'}) == 0;
	my $pid = PipelineNode::spawn_ctl($node->connstr('postgres'), $log, 'runner', '--name', "new-runner-$round",
		'--exit-when-idle', '--poll-interval', '0.2');
	my $rc = PipelineNode::stop_ctl($pid, 'ZERO', 120);
	is($rc, 0, "round $round: runner --exit-when-idle exits 0");
}
my %want_after = (%want_before, map { $_ => 'succeeded' } qw(creating active failed confirm audit retried scheduling ser1 queued));
for my $k (sort keys %want_after)
{
	is(q1("SELECT stage FROM pipeline.pipeline_task WHERE id = $run{$k}"), $want_after{$k},
		"$CURRENT: run '$k' is $want_after{$k}");
}
is(q1(q{SELECT count(*) FROM pipeline.job_task WHERE stage < 'canceled' OR gate IS NOT NULL}), '0',
	'no task left open or at a gate');
is(q1("SELECT attempt FROM pipeline.job_task WHERE pipeline_task_id = $run{retried} AND stage_index = 0"),
	'2', 'the retried task ran as attempt 2');
is(q1("SELECT count(*) = count(DISTINCT id) FROM pipeline.event"), 't', 'no duplicate event id');

# pending deliveries of the old release are claimed and completed through the new API
my $claimed = q1(q{SELECT count(pipeline.complete_hook_delivery(c.id, true, 200, 'ok', 1))
                     FROM pipeline.claim_hook_deliveries('sender', 1000) c});
ok($claimed >= $pending_deliveries, "hook deliveries of $OLD and $CURRENT sent ($claimed)");
is(q1(q{SELECT count(*) FROM pipeline.hook_delivery WHERE status <> 'succeeded'}), '0',
	'every delivery succeeded');

$node->stop;
}

for my $rel (@OLD_RELEASES)
{
	upgrade_from(@$rel);
}
done_testing();
