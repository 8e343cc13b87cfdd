# bench/diag.sh: diagnostics bench/run logs beside its figures (stderr, "-- ..." lines): what
# limits a figure.  Sourced by bench/run; uses its helpers (log, PSQL, PGBIN, WORK, BG_PIDS).
# Nothing here changes a figure.
#
#   wal_keep   before a measured WAL range: a physical replication slot (pl_bench_wal,
#       reserving WAL at once) keeps its segments from being recycled by a checkpoint
#       until wal_categories / wal_breakdown have read them; dropped again by
#       wal_breakdown and by bench/run's cleanup.
#   wal_categories PREFIX LSN0 LSN1 PER   (issue 12) the WAL range read with pg_walinspect
#       (PostgreSQL 15 contrib, created in the bench database) and split, in bytes per task
#       (PER tasks), into event (records on pipeline.event_store, its indexes and its id
#       sequence), job_task heap (Heap/Heap2 records on pipeline.job_task: updates, HOT
#       updates, row locks, pruning), index (B-tree/BRIN records on every other index) and
#       other (commits, MultiXact, other tables, full-page images elsewhere...): figures
#       PREFIX_event, PREFIX_job_task_heap, PREFIX_index, PREFIX_other (ratio: share of the
#       range), and the biggest record types of each on stderr.  Record lengths include
#       full-page images; the WAL between records (page headers, alignment) is in none of
#       them, so the four add up to a little less than the LSN difference.
#   wal_breakdown LABEL LSN0 LSN1 PER   when bench/run knows the cluster's directory (PL_PGDATA),
#       `pg_waldump --stats=record` over that WAL range goes to $WORK/waldump-LABEL.txt
#       and the five biggest record types (bytes and records per job/task, PER of them) to
#       stderr.  Best effort: missing segments make it say so and go on.
#   waits_start LABEL DB / waits_stop   sample the wait events of DB's active client backends
#       every 0.1 s into $WORK/waits-LABEL.txt ("CPU" when a backend waits on nothing), then
#       log the five most frequent with their share of the samples.
#
# No locking: read-only views and files.

wal_diag_possible() { [[ -n ${PL_PGDATA:-} && -d ${PL_PGDATA:-}/pg_wal && -x $PGBIN/pg_waldump ]]; }
wal_keep() {
	wal_unkeep
	"$PSQL" -X -q -d "$ADMIN_DB" -c "SELECT pg_create_physical_replication_slot('pl_bench_wal', true)" >/dev/null 2>&1 || true
}
wal_unkeep() {
	"$PSQL" -X -q -d "$ADMIN_DB" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
	    WHERE slot_name = 'pl_bench_wal'" >/dev/null 2>&1 || true
}
wal_breakdown() {
	local label=$1 l0=$2 l1=$3 per=$4 out=$WORK/waldump-$1.txt rc=0
	wal_diag_possible || return 0
	"$PGBIN/pg_waldump" -p "$PL_PGDATA/pg_wal" -s "$l0" -e "$l1" --stats=record >"$out" 2>&1 || rc=1
	wal_unkeep
	if ((rc)); then
		log "waldump $label: not available ($(head -c 200 "$out"))"
		return 0
	fi
	log "waldump $label: biggest record types, bytes per job/task (record + full-page images; all in $out):"
	awk -v per="$per" '{ line = $0; gsub(/\([^)]*\)/, "", line); n = split(line, f, " ")
		if (n >= 5 && f[1] ~ /\// && f[5] > 0) printf "%d %s %.2f\n", f[5], f[1], f[2] / per }' "$out" |
		sort -rn | head -n 5 |
		awk -v per="$per" '{ printf "--   %-32s %7.0f B  (%s records)\n", $2, $1 / per, $3 }' >&2
}

# The categories of wal_categories, per record of the range; the relation is found by the
# filenode of the record's first block reference in this database.
WAL_CATEGORIES_SQL="
WITH r AS (
    SELECT w.resource_manager AS rm, w.record_type AS rt, w.record_length AS len,
           substring(w.block_ref FROM 'rel [0-9]+/([0-9]+)/[0-9]+')::oid AS dbid,
           substring(w.block_ref FROM 'rel [0-9]+/[0-9]+/([0-9]+)')::oid AS fnode
      FROM pg_get_wal_records_info(:'l0', :'l1') w),
ev AS (SELECT coalesce(to_regclass('pipeline.event_store'), to_regclass('pipeline.event')) AS t),
c AS (
    SELECT r.rm, r.rt, r.len, cl.relname,
           CASE WHEN cl.oid IS NULL THEN 'other'
                WHEN cl.oid = (SELECT t FROM ev) OR i.indrelid = (SELECT t FROM ev)
                  OR cl.oid = to_regclass('pipeline.event_id_seq') THEN 'event'
                WHEN cl.oid = 'pipeline.job_task'::regclass AND r.rm IN ('Heap', 'Heap2') THEN 'job_task_heap'
                WHEN cl.relkind = 'i' THEN 'index'
                ELSE 'other' END AS cat
      FROM r
      LEFT JOIN pg_class cl ON r.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                           AND cl.relfilenode = r.fnode AND cl.relfilenode <> 0
      LEFT JOIN pg_index i ON i.indexrelid = cl.oid),
k AS (SELECT cat, rm || '/' || rt || coalesce(' ' || relname, '') AS what, count(*) AS n, sum(len) AS b
        FROM c GROUP BY 1, 2),
t AS (SELECT cat, sum(b) AS b FROM k GROUP BY cat)
SELECT 'cat', cat, b, NULL::bigint, (SELECT sum(b) FROM t)::text FROM t
UNION ALL
SELECT 'top', cat, b, n, what FROM (SELECT k.*, row_number() OVER (PARTITION BY cat ORDER BY b DESC) AS rn FROM k) x
 WHERE rn <= 3
ORDER BY 1, 2, 3 DESC"
wal_categories() {
	local prefix=$1 l0=$2 l1=$3 per=$4 out=$WORK/walinspect-$1.txt cat total b c
	local sql=${WAL_CATEGORIES_SQL//:\'l0\'/\'$l0\'}
	sql=${sql//:\'l1\'/\'$l1\'}
	if ! "$PSQL" -X -q -v ON_ERROR_STOP=1 -At -F $'\t' -d "$DB" \
		-c "CREATE EXTENSION IF NOT EXISTS pg_walinspect" -c "$sql" >"$out" 2>&1; then
		log "wal_categories $prefix: pg_walinspect not available ($(head -c 300 "$out"))"
		for c in event job_task_heap index other; do figure "${prefix}_$c" n/a B -; done
		return 0
	fi
	total=$(awk -F'\t' '$1 == "cat" { print $5; exit }' "$out")
	for c in event job_task_heap index other; do
		b=$(awk -F'\t' -v c="$c" '$1 == "cat" && $2 == c { print $3 }' "$out")
		figure "${prefix}_$c" "$(fmt "$(calc "${b:-0} / $per")" 0)" B "$(fmt "$(calc "${b:-0} / ${total:-1}")" 2)"
	done
	log "wal_categories $prefix: biggest record types of each, bytes per task (all in $out):"
	awk -F'\t' -v per="$per" '$1 == "top" { printf "--   %-14s %-52s %6.0f B  (%.2f records)\n", $2, $5, $3 / per, $4 / per }' "$out" >&2
}

WAITS_PID= WAITS_LABEL=
waits_start() {
	WAITS_LABEL=$1
	local db=$2 out=$WORK/waits-$1.txt
	: >"$out"
	while sleep 0.1; do
		"$PSQL" -X -At -d "$db" -c "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU')
		    FROM pg_stat_activity WHERE datname = current_database() AND state = 'active'
		     AND backend_type = 'client backend' AND pid <> pg_backend_pid()
		     AND application_name NOT LIKE 'pl\\_bench\\_%'" >>"$out" 2>/dev/null || true
	done &
	WAITS_PID=$!
	BG_PIDS+=("$WAITS_PID")
}
waits_stop() {
	[[ -n $WAITS_PID ]] || return 0
	kill "$WAITS_PID" 2>/dev/null
	wait "$WAITS_PID" 2>/dev/null
	WAITS_PID=
	local out=$WORK/waits-$WAITS_LABEL.txt total
	total=$(grep -c . "$out")
	((total > 0)) || { log "waits $WAITS_LABEL: no samples"; return 0; }
	log "waits $WAITS_LABEL: $total samples of active backends; most frequent:"
	sort "$out" | uniq -c | sort -rn | head -n 5 |
		awk -v t="$total" '{ printf "--   %-28s %5.1f %%\n", $2, 100 * $1 / t }' >&2
}
