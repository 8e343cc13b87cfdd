# bench/peers.sh: `bench/run --peers`: graphile-worker and pg-boss on the same cluster in the
# same run (issue 12, item 1), and the per-task WAL accounting shared with our lifecycle.
# Sourced by bench/run; uses its helpers (q, figure, failed, calc, fmt, log).
#
# The peers are the npm packages pinned in bench/peers/package.json (package-lock.json);
# `npm ci` in bench/peers installs them (node_modules is not committed).  bench/peers/peer.js
# runs one peer in a database of its own (pl_peer_graphile_worker / pl_peer_pg_boss, dropped
# afterwards), with its own schema, and prints jobs, seconds and WAL bytes of the timed phase
# (see its header: fetch -> complete, jobs inserted beforehand).  Figures:
#   peer_graphile_worker_jobs_per_s, peer_pg_boss_jobs_per_s   ratio to baseline_update_tps
#   peer_graphile_worker_wal_bytes_per_job, peer_pg_boss_...   ratio to graphile-worker's
# GW_RATE / GW_WAL / BEST_PEER are kept for the lifecycle section's comparisons.
#
# While a peer runs, its backends' wait events are sampled (bench/diag.sh); its WAL range is
# broken down with pg_waldump --stats.
#
# No locking of its own.

GW_RATE= GW_WAL= BEST_PEER=

# peer_one NAME JOBS: run one peer; sets PEER_RATE, PEER_WAL (bytes per job)
peer_one() {
	local name=$1 jobs=$2 db=pl_peer_${1//-/_} out
	PEER_RATE= PEER_WAL=
	"$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$ADMIN_DB" -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" \
		-c "CREATE DATABASE \"$db\"" >/dev/null || return 1
	log "peer $name: $jobs no-op jobs"
	wal_keep
	waits_start "$name" "$db"
	if ! out=$(PGDATABASE=$db timeout -k 5 600 node "$BENCH_DIR/peers/peer.js" "$name" "$jobs" 2>"$WORK/peer-$name.err"); then
		waits_stop
		tail -n 15 "$WORK/peer-$name.err" >&2
		"$PSQL" -X -q -d "$ADMIN_DB" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1
		return 1
	fi
	waits_stop
	log "peer $name: $out"
	"$PSQL" -X -q -d "$ADMIN_DB" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1
	local secs wal iwal l0 l1
	secs=$(sed -n 's/.*secs=\([0-9.]*\).*/\1/p' <<<"$out")
	wal=$(sed -n 's/.* wal_bytes=\([0-9]*\).*/\1/p' <<<"$out")
	iwal=$(sed -n 's/.*insert_wal_bytes=\([0-9]*\).*/\1/p' <<<"$out")
	l0=$(sed -n 's/.*lsn0=\([0-9A-F/]*\).*/\1/p' <<<"$out")
	l1=$(sed -n 's/.*lsn1=\([0-9A-F/]*\).*/\1/p' <<<"$out")
	[[ -n $secs && -n $wal ]] || { err "peer $name: unreadable output: $out"; return 1; }
	PEER_RATE=$(calc "$jobs / $secs")
	PEER_WAL=$(calc "$wal / $jobs")
	log "peer $name: inserting a job wrote $(fmt "$(calc "$iwal / $jobs")" 0) WAL bytes (not counted)"
	wal_breakdown "$name" "$l0" "$l1" "$jobs"
}

section_peers() {
	local p fig n
	need_baseline || { failed peer_graphile_worker_jobs_per_s "no baseline"; return; }
	if ! command -v node >/dev/null || [[ ! -d $BENCH_DIR/peers/node_modules/graphile-worker ||
		! -d $BENCH_DIR/peers/node_modules/pg-boss ]]; then
		failed peer_graphile_worker_jobs_per_s "the peers are not installed: run (cd bench/peers && npm ci) with Debian's nodejs and npm"
		return
	fi
	log "peers: node $(node --version), graphile-worker $(node -p "require('$BENCH_DIR/peers/node_modules/graphile-worker/package.json').version"), pg-boss $(node -p "require('$BENCH_DIR/peers/node_modules/pg-boss/package.json').version")"
	for p in graphile-worker pg-boss; do
		fig=peer_${p//-/_}
		if [[ $p == graphile-worker ]]; then n=$PEER_GW_JOBS; else n=$PEER_BOSS_JOBS; fi
		if ! peer_one "$p" "$n"; then
			failed "${fig}_jobs_per_s" "bench/peers/peer.js $p failed"
			continue
		fi
		if [[ $p == graphile-worker ]]; then GW_RATE=$PEER_RATE GW_WAL=$PEER_WAL; fi
		if [[ -z $BEST_PEER ]] || [[ $(holds "$PEER_RATE" '>=' "$BEST_PEER") == yes ]]; then BEST_PEER=$PEER_RATE; fi
		figure "${fig}_jobs_per_s" "$(fmt "$PEER_RATE" 0)" jobs/s "$(fmt "$(calc "$PEER_RATE / $BASELINE")" 2)"
		if [[ -n $GW_WAL ]]; then
			figure "${fig}_wal_bytes_per_job" "$(fmt "$PEER_WAL" 0)" B "$(fmt "$(calc "$PEER_WAL / $GW_WAL")" 2)"
		else
			figure "${fig}_wal_bytes_per_job" "$(fmt "$PEER_WAL" 0)" B -
		fi
	done
}
