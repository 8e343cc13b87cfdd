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
#   lifecycle_batched_tasks_per_s   bench/lifecycle_batched.sql (claim 50 with start => true,
#                             one update_job_task_statuses call with their 50 reports), 8
#                             clients on 100-wide parallel runs, ratio to baseline/3;
#                             lifecycle_batched_vs_best_peer: over the faster peer (--peers)
#   claims_keys100_ratio      SPEC §14: the same lifecycle on 100-wide parallel runs whose
#                             tasks carry 100 concurrency keys (limit 1, one key per task of a
#                             run, shared across runs), over the same runs without keys
#                             (claims_nokeys_tasks_per_s, claims_keys100_tasks_per_s); target
#                             >= 0.8.  Measured alternately, CLAIM_ROUNDS rounds each.
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
# LC_SCRIPT (default lifecycle.sql) is the pgbench script, LC_CLAIM the tasks one of its
# claims takes (default 1); LC_TX: run LC_TX scripts per client (pgbench -t) instead of
# SECONDS, on enough tasks for all of them.
lifecycle_measure() {
	local name=$1 pipe=$2 per_run=$3 min_runs=$4 mode=${5:-coalesced} secs=${6:-$T} need runs done0 done1 left l0 l1 upd0 upd1
	LC_RATE= LC_WAL= LC_L0= LC_L1=
	# enough claimable work that the clients never run dry even at ratio 1.2
	need=$(awk -v b="$BASELINE" -v t="$secs" 'BEGIN { printf "%d", b / 3 * 1.2 * t + 1000 }')
	local dur=(-T "$secs")
	if [[ -n ${LC_TX:-} ]]; then
		# a fixed amount of work (LC_TX scripts per client): it cannot run dry
		need=$((CLIENTS * LC_TX * ${LC_CLAIM:-1} * 11 / 10 + CLIENTS * ${LC_CLAIM:-1}))
		dur=(-t "$LC_TX")
	fi
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
	if ! PGOPTIONS="-c pipeline.notify=$mode" pgb "$name" -c "$CLIENTS" -j "$THREADS" "${dur[@]}" \
		-f "$BENCH_DIR/${LC_SCRIPT:-lifecycle.sql}"; then
		waits_stop
		failed "$name" "pgbench of bench/lifecycle.sql failed"
		return 1
	fi
	waits_stop
	l1=$(q "SELECT pg_current_wal_lsn()")
	done1=$(q "SELECT count(*) FROM pipeline.job_task WHERE stage = 'succeeded'")
	left=$(q "SELECT count(*) FROM pipeline.job_task WHERE stage = 'scheduling'")
	if ((left < CLIENTS * ${LC_CLAIM:-1})); then
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

# ---- claims with 100 concurrency keys in play, over claims without keys (SPEC §14)
section_claim_keys() {
	local r nokeys=0 keys=0 ratio
	need_baseline || { failed claims_keys100_ratio "no baseline"; return; }
	for ((r = 1; r <= CLAIM_ROUNDS; r++)); do
		fresh_db && q "SELECT bench_define('par100', ARRAY[100], true)" >/dev/null &&
			lifecycle_measure claims_nokeys_tasks_per_s par100 100 $((CLIENTS * 2)) ||
			{ failed claims_keys100_ratio "the lifecycle without keys failed"; return; }
		nokeys=$(calc "$nokeys + $LC_RATE")
		fresh_db && q "SELECT bench_define_keyed('par100k', 100, 100, 1)" >/dev/null &&
			lifecycle_measure claims_keys100_tasks_per_s par100k 100 $((CLIENTS * 2)) ||
			{ failed claims_keys100_ratio "the lifecycle with keys failed"; return; }
		keys=$(calc "$keys + $LC_RATE")
		# the limit held: no key ever had two tasks running (every slot row is one task's)
		if [[ $(q "SELECT count(*) FROM (SELECT key FROM pipeline.concurrency_slot GROUP BY key HAVING count(*) > 1) k") != 0 ]]; then
			failed claims_keys100_ratio "a key had more slots in use than its limit"
			return
		fi
	done
	nokeys=$(calc "$nokeys / $CLAIM_ROUNDS")
	keys=$(calc "$keys / $CLAIM_ROUNDS")
	ratio=$(calc "$keys / $nokeys")
	figure claims_nokeys_tasks_per_s "$(fmt "$nokeys" 0)" tasks/s "$(fmt "$(calc "$nokeys / ($BASELINE / 3)")" 2)"
	figure claims_keys100_tasks_per_s "$(fmt "$keys" 0)" tasks/s "$(fmt "$(calc "$keys / ($BASELINE / 3)")" 2)"
	figure claims_keys100_ratio "$(fmt "$ratio" 2)" ratio "$(fmt "$ratio" 2)" "≥ 0.8 × without keys" \
		"$(holds "$ratio" '>=' 0.8)"
}

# ---- lifecycle_batched: start-on-claim, claims of 50, reports in batches of 50, 8 clients
# bench/lifecycle_batched.sql on 100-wide parallel runs (coalesced NOTIFY, as the other
# lifecycle figures), ratio to baseline/3; lifecycle_batched_vs_best_peer is its tasks/s over
# the faster peer's jobs/s (--peers), target >= 2.0.
section_lifecycle_batched() {
	local ratio
	need_baseline || { failed lifecycle_batched_tasks_per_s "no baseline"; return; }
	if ! q "SELECT bench_define('par100', ARRAY[100], true)" >/dev/null; then
		failed lifecycle_batched_tasks_per_s "setup failed"
		return
	fi
	# 8 clients x LC_TX scripts x 50 tasks, a fixed amount of work: at these rates a timed
	# run would need more prepared runs than it is worth creating
	LC_SCRIPT=lifecycle_batched.sql LC_CLAIM=50 LC_TX=$((opt_quick ? 8 : 60)) LC_WALDUMP=1 \
		lifecycle_measure lifecycle_batched_tasks_per_s par100 100 $((CLIENTS * 2)) || return
	if [[ $(q "SELECT count(*) FROM pipeline.job_task WHERE stage = 'active'") -gt $((CLIENTS * 50)) ]]; then
		failed lifecycle_batched_tasks_per_s "tasks left active: reports were refused"
		return
	fi
	ratio=$(calc "$LC_RATE / ($BASELINE / 3)")
	figure lifecycle_batched_tasks_per_s "$(fmt "$LC_RATE" 0)" tasks/s "$(fmt "$ratio" 2)"
	figure lifecycle_batched_wal_bytes_per_task "$(fmt "$LC_WAL" 0)" B -
	wal_breakdown lifecycle_batched "$LC_L0" "$LC_L1" "$LC_DONE"
	if [[ -n $BEST_PEER ]]; then
		ratio=$(calc "$LC_RATE / $BEST_PEER")
		figure lifecycle_batched_vs_best_peer "$(fmt "$ratio" 2)" ratio "$(fmt "$ratio" 2)" \
			"≥ 2 × best peer" "$(holds "$ratio" '>=' 2.0)"
	else
		figure lifecycle_batched_vs_best_peer n/a ratio - "≥ 2 × best peer (--peers)" -
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

