# bench/diag.sh: diagnostics bench/run logs beside its figures (stderr, "-- ..." lines): what
# limits a figure.  Sourced by bench/run; uses its helpers (log, PSQL, PGBIN, WORK, BG_PIDS).
# Nothing here changes a figure.
#
#   wal_keep   before a measured WAL range: a physical replication slot (pl_bench_wal,
#       reserving WAL at once) keeps its segments from being recycled by a checkpoint
#       until wal_breakdown has read them; only where PL_PGDATA is known (a cluster of
#       scripts/lib.sh), and dropped again by wal_breakdown and by bench/run's cleanup.
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
	wal_diag_possible || return 0
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
