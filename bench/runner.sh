# bench/runner.sh: the sections of bench/run that drive the real `pipelinectl runner`
# (sourced by bench/run; uses its helpers: q, fresh_db, settle, figure, failed, calc, fmt).
#
#   fork_exec_per_s     8 parallel loops of `/bin/sh -c true` for $FORK_SECS seconds: how many
#                       processes this machine can start per second, the runner's physical
#                       limit (every task is a fork and exec of /bin/sh).
#   runner_tasks_per_s  RUNNER_TASKS no-op tasks (100-wide parallel stages) through
#                       `pipelinectl runner --concurrency 8 --exit-when-idle`; ratio to
#                       fork_exec_per_s (target >= 0.5).
#   handoff_ms_p50/p99  one run of HANDOFF_STAGES serial one-task stages through the same
#                       runner.  A handoff is claimed_at(stage k) - end_at(stage k-1): from the
#                       transaction that records the runner's final report of one task (and
#                       advances the run) to the transaction that claims the next stage's task.
#                       It holds the report's commit, the NOTIFY delivery (or poll) that wakes
#                       the runner, and its claim round trip; not the fork of the next task
#                       (the runner claims with start => true, so start_at = claimed_at; the
#                       fork is after both).  Both stamps are now() of their
#                       transactions, i.e. their starts.  With 39 samples, p99 is the maximum.
#
# No locking of its own: the runner and the engine do theirs.

PIPELINECTL_BIN=${PIPELINECTL:-$ROOT/pipelinectl}
FORK_EXEC=

no_pipelinectl() {
	local n
	for n in "$@"; do
		printf '%s n/a\n' "$n"
		FIGS+=("$n|n/a||||")
	done
	log "runner: no pipelinectl at $PIPELINECTL_BIN (set PIPELINECTL): $* skipped"
}

# ---- fork_exec: 8 parallel /bin/sh -c true loops
section_fork_exec() {
	local i end n=0 f t0 t1
	for ((i = 0; i < 8; i++)); do
		(
			c=0 end=$((SECONDS + FORK_SECS))
			while ((SECONDS < end)); do /bin/sh -c true; c=$((c + 1)); done
			echo "$c" >"$WORK/fork.$i"
		) &
	done
	t0=$(date +%s.%N)
	wait
	t1=$(date +%s.%N)
	for ((i = 0; i < 8; i++)); do
		read -r f <"$WORK/fork.$i" || { failed fork_exec_per_s "loop $i reported nothing"; return; }
		n=$((n + f))
	done
	FORK_EXEC=$(calc "$n / ($t1 - $t0)")
	figure fork_exec_per_s "$(fmt "$FORK_EXEC" 0)" procs/s 1.00
}

# ---- runner: no-op shell tasks through the real pipelinectl runner
section_runner() {
	local runs t0 t1 secs done rate ratio
	[[ -x $PIPELINECTL_BIN ]] || { no_pipelinectl runner_tasks_per_s; return; }
	[[ -n $FORK_EXEC ]] || { failed runner_tasks_per_s "no fork_exec_per_s measured: ratio unknown"; return; }
	runs=$(((RUNNER_TASKS + 99) / 100))
	fresh_db && q "SELECT bench_define('runner100', ARRAY[100], true)" >/dev/null &&
		q "SELECT count(pipeline.run_pipeline('runner100')) FROM generate_series(1, $runs)" >/dev/null ||
		{ failed runner_tasks_per_s "setup failed"; return; }
	settle
	t0=$(date +%s.%N)
	if ! PGDATABASE=$DB timeout -k 5 "$((opt_quick ? 60 : 300))" \
		"$PIPELINECTL_BIN" runner --name bench --concurrency 8 --exit-when-idle >"$WORK/runner.log" 2>&1; then
		tail -n 20 "$WORK/runner.log" >&2
		failed runner_tasks_per_s "pipelinectl runner failed or timed out"
		return
	fi
	t1=$(date +%s.%N)
	done=$(q "SELECT count(*) FROM pipeline.job_task WHERE stage = 'succeeded'")
	if [[ $done != $((runs * 100)) ]]; then
		tail -n 20 "$WORK/runner.log" >&2
		failed runner_tasks_per_s "$done of $((runs * 100)) tasks succeeded"
		return
	fi
	secs=$(calc "$t1 - $t0")
	rate=$(calc "$done / $secs")
	ratio=$(calc "$rate / $FORK_EXEC")
	[[ -z $BASELINE ]] || log "runner: $(fmt "$(calc "$rate / ($BASELINE / 3)")" 2) x baseline/3"
	figure runner_tasks_per_s "$(fmt "$rate" 0)" tasks/s "$(fmt "$ratio" 2)" "≥ 0.5 × fork_exec" "$(holds "$ratio" '>=' 0.5)"
}

# ---- handoff: serial one-task stages through the real runner
section_handoff() {
	local p stage n p50 p99 s50
	[[ -x $PIPELINECTL_BIN ]] || { no_pipelinectl handoff_ms_p50 handoff_ms_p99; return; }
	fresh_db && q "SELECT bench_define('handoff', array_fill(1, ARRAY[$HANDOFF_STAGES]), false)" >/dev/null &&
		p=$(q "SELECT pipeline.run_pipeline('handoff')") ||
		{ failed handoff_ms_p50 "setup failed"; return; }
	settle
	if ! PGDATABASE=$DB timeout -k 5 120 \
		"$PIPELINECTL_BIN" runner --name bench --concurrency 8 --exit-when-idle >"$WORK/handoff.log" 2>&1; then
		tail -n 20 "$WORK/handoff.log" >&2
		failed handoff_ms_p50 "pipelinectl runner failed or timed out"
		return
	fi
	IFS=$'\t' read -r stage n < <(q "SELECT p.stage, count(*) FILTER (WHERE j.stage = 'succeeded')
	    FROM pipeline.pipeline_task p JOIN pipeline.job_task j ON j.pipeline_task_id = p.id
	    WHERE p.id = $p GROUP BY p.stage")
	if [[ $stage != succeeded || $n != "$HANDOFF_STAGES" ]]; then
		tail -n 20 "$WORK/handoff.log" >&2
		failed handoff_ms_p50 "run $p is $stage with $n of $HANDOFF_STAGES stages succeeded"
		return
	fi
	IFS=$'\t' read -r p50 p99 s50 < <(q "WITH h AS (
	    SELECT extract(epoch FROM k.claimed_at - j.end_at) * 1000 AS ms,
	           extract(epoch FROM k.start_at - k.claimed_at) * 1000 AS start_ms
	      FROM pipeline.job_task j JOIN pipeline.job_task k
	        ON k.pipeline_task_id = j.pipeline_task_id AND k.stage_index = j.stage_index + 1
	     WHERE j.pipeline_task_id = $p)
	    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms),
	           percentile_cont(0.5) WITHIN GROUP (ORDER BY start_ms) FROM h")
	if [[ -z $p50 ]]; then
		failed handoff_ms_p50 "no handoff samples"
		return
	fi
	log "handoff: $((HANDOFF_STAGES - 1)) samples; start_at - claimed_at p50 $(fmt "$s50" 2) ms (0: the runner claims with start => true)"
	figure handoff_ms_p50 "$(fmt "$p50" 2)" ms 1.00 "≤ 10 ms" "$(holds "$p50" '<=' 10)"
	if [[ $(holds "$p50" '<=' 0) == yes ]]; then
		figure handoff_ms_p99 "$(fmt "$p99" 2)" ms -
	else
		figure handoff_ms_p99 "$(fmt "$p99" 2)" ms "$(fmt "$(calc "$p99 / $p50")" 2)"
	fi
}
