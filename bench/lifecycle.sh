# bench/lifecycle.sh: the lifecycle sections of bench/run (sourced by it; uses its helpers:
# q, pgb, fresh_db, settle, figure, failed, calc, fmt, holds, log; and GW_RATE / GW_WAL /
# wal_breakdown, waits_start/stop from bench/diag.sh).
#
#   lifecycle_*_tasks_per_s   bench/lifecycle.sql (claim 1 -> active -> succeeded, three
#                             autocommit transactions) with 8 pgbench clients, ratio to
#                             baseline/3; on 100-wide parallel runs and on 20-stage serial runs
#   wal_bytes_per_task        WAL bytes per task of the coalesced parallel lifecycle
#                             (pg_current_wal_lsn() around the pgbench run / tasks finished),
#                             ratio to graphile-worker's bytes per job (--peers); then its
#                             breakdown wal_bytes_per_task_{event,job_task_heap,index,other}
#                             (bench/diag.sh wal_categories, pg_walinspect) and the HOT share
#                             of the job_task updates (stderr)
#   lifecycle_*vs_graphile_worker   our lifecycle's tasks/s over graphile-worker's jobs/s
#   lifecycle_batched_tasks_per_s   n/a until SPEC §16 (see the TODO below)
#   long_reader_lifecycle_ratio     the coalesced parallel lifecycle with a REPEATABLE READ
#                             transaction open the whole time (its snapshot pins the vacuum
#                             horizon: no dead tuple can be pruned) over the same without it,
#                             LONG_SECS each
#
# No locking of its own: the engine's, exercised by the clients.

# ---- lifecycle: claim -> active -> succeeded (+ advance), 8 clients
# lifecycle_measure NAME PIPELINE TASKS_PER_RUN MIN_RUNS [MODE [SECONDS]]: sets LC_RATE
# (tasks/s) and LC_WAL (WAL bytes per task: pg_current_wal_lsn() around the pgbench run over
# the tasks it finished), LC_L0/LC_L1/LC_DONE for wal_breakdown (LC_WALDUMP=1: keep the WAL
# for it), or reports NAME failed and returns 1.  Wait events are sampled meanwhile.
lifecycle_measure() {
	local name=$1 pipe=$2 per_run=$3 min_runs=$4 mode=${5:-coalesced} secs=${6:-$T} need runs done0 done1 left l0 l1 upd0 upd1
	LC_RATE= LC_WAL= LC_L0= LC_L1=
	# enough claimable work that the clients never run dry even at ratio 1.2
	need=$(awk -v b="$BASELINE" -v t="$secs" 'BEGIN { printf "%d", b / 3 * 1.2 * t + 1000 }')
	runs=$(((need + per_run - 1) / per_run))
	((runs >= min_runs)) || runs=$min_runs
	log "$name: creating $runs runs of $pipe ($((runs * per_run)) tasks)"
	q "SELECT count(pipeline.run_pipeline('$pipe')) FROM generate_series(1, $runs)" >/dev/null ||
		{ failed "$name" "creating runs failed"; return 1; }
	settle
	done0=$(q "SELECT count(*) FROM pipeline.job_task WHERE stage = 'succeeded'")
	((${LC_WALDUMP:-0})) && wal_keep   # for the caller's wal_categories / wal_breakdown
	upd0=$(q "SELECT n_tup_upd || ' ' || n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'pipeline.job_task'::regclass")
	l0=$(q "SELECT pg_current_wal_lsn()")
	waits_start "$name-$mode" "$DB"
	if ! PGOPTIONS="-c pipeline.notify=$mode" pgb "$name" -c "$CLIENTS" -j "$THREADS" -T "$secs" \
		-f "$BENCH_DIR/lifecycle.sql"; then
		waits_stop
		failed "$name" "pgbench of bench/lifecycle.sql failed"
		return 1
	fi
	waits_stop
	l1=$(q "SELECT pg_current_wal_lsn()")
	done1=$(q "SELECT count(*) FROM pipeline.job_task WHERE stage = 'succeeded'")
	left=$(q "SELECT count(*) FROM pipeline.job_task WHERE stage = 'scheduling'")
	if ((left < CLIENTS)); then
		failed "$name" "only $left claimable tasks left at the end: the clients ran dry"
		return 1
	fi
	LC_RATE=$(calc "($done1 - $done0) / $PGB_SECS")
	LC_WAL=$(q "SELECT pg_wal_lsn_diff('$l1', '$l0') / $((done1 - done0))")
	LC_L0=$l0 LC_L1=$l1 LC_DONE=$((done1 - done0))
	# HOT share of the job_task updates (statistics of the clients, flushed when they ended)
	sleep 0.6
	upd1=$(q "SELECT n_tup_upd || ' ' || n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'pipeline.job_task'::regclass")
	LC_UPD=$((${upd1% *} - ${upd0% *})) LC_HOT="$((${upd1#* } - ${upd0#* })) ($(fmt "$(calc "(${upd1#* } - ${upd0#* }) * 100 / (${upd1% *} - ${upd0% *} + 0.000001)")" 0) %)"
}
# lifecycle_one NAME PIPELINE TASKS_PER_RUN MIN_RUNS [MODE]
lifecycle_one() {
	local name=$1 mode=${5:-coalesced} ratio
	lifecycle_measure "$@" || return 1
	ratio=$(calc "$LC_RATE / ($BASELINE / 3)")
	if [[ $mode == coalesced ]]; then
		figure "$name" "$(fmt "$LC_RATE" 0)" tasks/s "$(fmt "$ratio" 2)" "≥ 0.5 × baseline/3" "$(holds "$ratio" '>=' 0.5)"
	else
		figure "$name" "$(fmt "$LC_RATE" 0)" tasks/s "$(fmt "$ratio" 2)"
	fi
}
# versus_gw NAME RATE: our rate over graphile-worker's (target >= 1.0 for the default lifecycle)
versus_gw() {
	local r
	if [[ -z $GW_RATE ]]; then
		figure "$1" n/a ratio - "${3:-}" -
		return
	fi
	r=$(calc "$2 / $GW_RATE")
	if [[ -n ${3:-} ]]; then
		figure "$1" "$(fmt "$r" 2)" ratio "$(fmt "$r" 2)" "$3" "$(holds "$r" '>=' 1.0)"
	else
		figure "$1" "$(fmt "$r" 2)" ratio "$(fmt "$r" 2)"
	fi
}
section_lifecycle() {
	need_baseline || { failed lifecycle_tasks_per_s "no baseline"; return; }
	if want lifecycle_parallel lifecycle; then
		if fresh_db && q "SELECT bench_define('par100', ARRAY[100], true)" >/dev/null &&
			LC_WALDUMP=1 lifecycle_one lifecycle_parallel_tasks_per_s par100 100 $((CLIENTS * 2)); then
			# a task's whole life through the SQL API (claim, active, succeeded + advance)
			if [[ -n $GW_WAL ]]; then
				figure wal_bytes_per_task "$(fmt "$LC_WAL" 0)" B "$(fmt "$(calc "$LC_WAL / $GW_WAL")" 2)" \
					"≤ graphile-worker's per job" "$(holds "$LC_WAL" '<=' "$GW_WAL")"
			else
				figure wal_bytes_per_task "$(fmt "$LC_WAL" 0)" B - "≤ graphile-worker's per job (--peers)" -
			fi
			wal_categories wal_bytes_per_task "$LC_L0" "$LC_L1" "$LC_DONE"
			log "lifecycle: job_task updates during the run: $LC_UPD, HOT: $LC_HOT"
			wal_breakdown lifecycle "$LC_L0" "$LC_L1" "$LC_DONE"
			versus_gw lifecycle_vs_graphile_worker "$LC_RATE" "≥ 1.0 × graphile-worker"
			((opt_quick)) || { fresh_db && q "SELECT bench_define('par100', ARRAY[100], true)" >/dev/null &&
				lifecycle_one lifecycle_parallel_immediate_tasks_per_s par100 100 $((CLIENTS * 2)) immediate &&
				versus_gw lifecycle_immediate_vs_graphile_worker "$LC_RATE"; }
		else
			failed lifecycle_parallel_tasks_per_s "setup failed"
		fi
	fi
	if want lifecycle_serial lifecycle; then
		if fresh_db && q "SELECT bench_define('ser20', array_fill(1, ARRAY[20]), false)" >/dev/null; then
			lifecycle_one lifecycle_serial_tasks_per_s ser20 20 $((CLIENTS * 8))
			((opt_quick)) || { fresh_db && q "SELECT bench_define('ser20', array_fill(1, ARRAY[20]), false)" >/dev/null &&
				lifecycle_one lifecycle_serial_immediate_tasks_per_s ser20 20 $((CLIENTS * 8)) immediate; }
		else
			failed lifecycle_serial_tasks_per_s "setup failed"
		fi
	fi
}

# ---- lifecycle_batched: start-on-claim, claims of 50, reports in batches of 50, 8 clients
# TODO(SPEC §16): once the engine has claim_job_tasks(..., start => true) and
# update_job_task_statuses(reports jsonb), write bench/lifecycle_batched.sql (claim 50 with
# start => true, then one update_job_task_statuses call with the 50 'succeeded' reports) and
# measure it here like lifecycle_measure does (tasks finished / s over 8 clients on par100
# runs), ratio to BEST_PEER, target >= 2.0.  Until then the figure is "n/a".
section_lifecycle_batched() {
	local have
	have=$(q "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
	    WHERE n.nspname = 'pipeline' AND (p.proname = 'update_job_task_statuses'
	       OR (p.proname = 'claim_job_tasks' AND 'start' = ANY (p.proargnames)))" 2>/dev/null)
	if [[ $have == 2 ]]; then
		log "lifecycle_batched: the engine has SPEC §16 now: write the TODO in bench/run"
		printf 'lifecycle_batched_tasks_per_s n/a (TODO in bench/run)\n'
		FIGS+=("lifecycle_batched_tasks_per_s|n/a (TODO in bench/run)||-|≥ 2 × best peer|-")
	else
		printf 'lifecycle_batched_tasks_per_s n/a (needs SPEC §16)\n'
		FIGS+=("lifecycle_batched_tasks_per_s|n/a (needs SPEC §16)||-|≥ 2 × best peer|-")
	fi
}

# ---- long_reader: the lifecycle with a REPEATABLE READ snapshot held open (vacuum horizon
# pinned) over the same without it, LONG_SECS each, each in a fresh database
section_long_reader() {
	local free held holder i xmin
	need_baseline || { failed long_reader_lifecycle_ratio "no baseline"; return; }
	fresh_db && q "SELECT bench_define('par100', ARRAY[100], true)" >/dev/null &&
		lifecycle_measure long_reader_lifecycle_ratio par100 100 $((CLIENTS * 2)) coalesced "$LONG_SECS" || return
	free=$LC_RATE
	fresh_db && q "SELECT bench_define('par100', ARRAY[100], true)" >/dev/null ||
		{ failed long_reader_lifecycle_ratio "setup failed"; return; }
	# the holder takes its snapshot at its first query and then sleeps inside the transaction
	{
		echo 'BEGIN ISOLATION LEVEL REPEATABLE READ;'
		echo 'SELECT count(*) FROM pipeline.job_task;'
		echo "SELECT pg_sleep($((LONG_SECS * 3 + 120)));"
	} | PGAPPNAME=pl_bench_long_reader "$PSQL" -X -q -d "$DB" >"$WORK/long_reader.out" 2>&1 &
	holder=$!
	BG_PIDS+=("$holder")
	for ((i = 0; i < 100; i++)); do
		xmin=$(q "SELECT backend_xmin FROM pg_stat_activity WHERE application_name = 'pl_bench_long_reader'
		    AND backend_xmin IS NOT NULL")
		[[ -n $xmin ]] && break
		sleep 0.1
	done
	if [[ -z $xmin ]]; then
		kill "$holder" 2>/dev/null
		failed long_reader_lifecycle_ratio "the REPEATABLE READ holder did not take its snapshot"
		return
	fi
	log "long_reader: snapshot held by xmin $xmin; ${LONG_SECS} s of lifecycle without it: $(fmt "$free" 0) tasks/s"
	lifecycle_measure long_reader_lifecycle_ratio par100 100 $((CLIENTS * 2)) coalesced "$LONG_SECS"
	held=$LC_RATE
	xmin=$(q "SELECT backend_xmin FROM pg_stat_activity WHERE application_name = 'pl_bench_long_reader'")
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	[[ -n $held ]] || return
	[[ -n $xmin ]] || { failed long_reader_lifecycle_ratio "the holder's snapshot was gone before the end"; return; }
	log "long_reader: with the snapshot held: $(fmt "$held" 0) tasks/s; dead job_task tuples at the end: $(q "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'pipeline.job_task'::regclass")"
	figure long_reader_lifecycle_ratio "$(fmt "$(calc "$held / $free")" 2)" ratio "$(fmt "$(calc "$held / $free")" 2)" \
		"≥ 0.8" "$(holds "$(calc "$held / $free")" '>=' 0.8)"
}

