# shellcheck shell=bash
#
# scripts/lib.sh: shared functions of the test harness (scripts/test, bench/run, .ci/run).
# Source it from bash; it sets no shell options of its own.
#
#   pl_install_deps     apt-get the build and test dependencies (Debian 12, as root); a no-op
#                       when every package is already installed
#   pl_build_install    make + make install from the repo top against PostgreSQL 15
#   pl_cluster_start    initdb + start a throwaway cluster and export PGHOST/PGPORT/PGUSER/PGDATABASE
#   pl_cluster_stop     stop it and remove its directory (registered on EXIT by pl_cluster_start)
#   pl_psql             psql against the throwaway cluster, quiet, stopping on the first error
#
# Knobs (environment):
#   PL_PGBIN          PostgreSQL binaries            (default /usr/lib/postgresql/15/bin)
#   PL_TEST_DB        database created for the tests (default pipeline_test; cron.database_name too)
#   PL_PORT           first port tried               (default 54329; the next free one is used)
#   PL_LISTEN         listen_addresses               (default 127.0.0.1; '' for the socket only)
#   PL_FSYNC          fsync/synchronous_commit       (default on; "off" for quick local runs)
#   PL_EXTRA_CONF     extra postgresql.conf lines appended as is
#   PL_KEEP_CLUSTER   1 = do not stop/remove the cluster on exit (prints where it is)
#   PL_TMPDIR         where the cluster directory is made (default /tmp; keep it short: the
#                     unix socket path must stay under 107 bytes)

# One locale whatever the caller's: CI runs `env -i PATH=$PATH bash .ci/run`, i.e. the POSIX
# locale, where bash's $'\u00e9' stays a literal backslash escape, psql's client_encoding
# becomes SQL_ASCII and ${#s} counts bytes.  C.UTF-8 is built into Debian 12's glibc; the
# tests themselves do not rely on it (bytes, not \u escapes), this only makes every run alike.
export LC_ALL=C.UTF-8
unset LANGUAGE

PL_PGBIN=${PL_PGBIN:-/usr/lib/postgresql/15/bin}
PL_PG_CONFIG=${PL_PG_CONFIG:-$PL_PGBIN/pg_config}
PL_TEST_DB=${PL_TEST_DB:-pipeline_test}
PL_ROOT=${PL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}

# Debian 12 packages the build and the tests need.  pg_prove comes from
# libtap-parser-sourcehandler-pgtap-perl, only a Recommends of postgresql-15-pgtap, so it
# is listed explicitly (--no-install-recommends would leave it out).
PL_DEB_PACKAGES=(
	postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap postgresql-15-cron
	libtap-parser-sourcehandler-pgtap-perl
	libpq-dev libcurl4-openssl-dev libssl-dev libjansson-dev libyaml-dev make gcc
	libipc-run-perl libtest-simple-perl valgrind graphviz curl python3 procps git
	libmicrohttpd-dev chromium
)

pl_log() { printf '==> %s\n' "$*"; }
pl_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- exit hooks
# Several parts may want cleanup on exit; keep one EXIT trap that runs them all, last first.
PL_EXIT_HOOKS=()
pl_on_exit() {
	PL_EXIT_HOOKS+=("$1")
	trap _pl_run_exit_hooks EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}
_pl_run_exit_hooks() {
	local rc=$? i
	trap - EXIT
	for ((i = ${#PL_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do
		eval "${PL_EXIT_HOOKS[i]}" || true
	done
	return $rc
}

# ---------------------------------------------------------------- dependencies
pl_missing_packages() {
	local p status
	for p in "${PL_DEB_PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		[[ $status == installed ]] || printf '%s\n' "$p"
	done
}

pl_install_deps() {
	local missing
	if ! command -v dpkg-query >/dev/null 2>&1; then
		pl_log "not a Debian system: skipping package installation"
		return 0
	fi
	missing=$(pl_missing_packages | tr '\n' ' ')
	if [[ -z ${missing// /} ]]; then
		pl_log "dependencies: all installed"
		return 0
	fi
	pl_log "dependencies: installing $missing"
	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 || pl_die "missing packages ($missing) and not root"
		sudo=(sudo -n)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -q </dev/null
	# shellcheck disable=SC2086
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		$missing </dev/null
}

# ---------------------------------------------------------------- build
pl_build_install() {
	local make_args=(PG_CONFIG="$PL_PG_CONFIG")
	pl_log "build"
	make -C "$PL_ROOT" -j2 "${make_args[@]}" "$@"
	pl_log "install"
	local sudo=()
	[[ $(id -u) -eq 0 ]] || sudo=(sudo -n)
	"${sudo[@]}" make -C "$PL_ROOT" "${make_args[@]}" "$@" install
}

# ---------------------------------------------------------------- throwaway cluster
# Runs a command as the cluster's OS user: "postgres" when we are root (postgres refuses
# to run as root), ourselves otherwise.  Runs from the cluster directory so the
# unprivileged user never has to read the caller's working directory.
_pl_as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		(cd "$PL_CLUSTER_DIR" && runuser -u postgres -- "$@")
	else
		(cd "$PL_CLUSTER_DIR" && "$@")
	fi
}

# Is something listening on 127.0.0.1:$1?
_pl_port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pl_cluster_start() {
	local port=${PL_PORT:-54329} listen=${PL_LISTEN-127.0.0.1} fsync=${PL_FSYNC:-on}
	local tries=0

	[[ -x $PL_PGBIN/initdb ]] || pl_die "$PL_PGBIN/initdb not found (is postgresql-15 installed?)"
	if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
		pl_die "running as root but there is no 'postgres' OS user to run the server"
	fi

	PL_CLUSTER_DIR=$(mktemp -d "${PL_TMPDIR:-/tmp}/pl-test.XXXXXX")
	export PL_CLUSTER_DIR
	pl_on_exit pl_cluster_stop
	chmod 755 "$PL_CLUSTER_DIR"
	mkdir -p "$PL_CLUSTER_DIR/sock"
	[[ $(id -u) -ne 0 ]] || chown -R postgres: "$PL_CLUSTER_DIR"
	PL_SOCKET_DIR=$PL_CLUSTER_DIR/sock
	PL_PGDATA=$PL_CLUSTER_DIR/data
	PL_SERVER_LOG=$PL_CLUSTER_DIR/server.log
	export PL_SOCKET_DIR PL_PGDATA PL_SERVER_LOG

	pl_log "cluster: initdb in $PL_PGDATA"
	_pl_as_pg "$PL_PGBIN/initdb" -D "$PL_PGDATA" -U postgres --auth=trust \
		--encoding=UTF8 --locale=C.UTF-8 --no-instructions >"$PL_CLUSTER_DIR/initdb.log" 2>&1 ||
		{ cat "$PL_CLUSTER_DIR/initdb.log"; pl_die "initdb failed"; }

	# The test database is made now, in single-user mode, so that pg_cron's launcher finds
	# cron.database_name at the first start (no FATAL/restart noise in the log).
	printf 'CREATE DATABASE "%s"\n' "$PL_TEST_DB" |
		_pl_as_pg "$PL_PGBIN/postgres" --single -D "$PL_PGDATA" -j template1 >>"$PL_CLUSTER_DIR/initdb.log" 2>&1 ||
		{ cat "$PL_CLUSTER_DIR/initdb.log"; pl_die "creating database $PL_TEST_DB failed"; }

	local fsync_conf
	if [[ $fsync == off ]]; then
		fsync_conf=$'fsync = off\nsynchronous_commit = off\nfull_page_writes = off'
	else
		fsync_conf='fsync = on'
	fi
	cat >>"$PL_PGDATA/postgresql.conf" <<-EOF

		# ---- throwaway test cluster (scripts/lib.sh)
		listen_addresses = '$listen'
		unix_socket_directories = '$PL_SOCKET_DIR'
		max_connections = 100
		shared_preload_libraries = 'pg_cron'
		cron.database_name = '$PL_TEST_DB'
		cron.host = '$PL_SOCKET_DIR'
		$fsync_conf
		log_line_prefix = '%m [%p] %q%u@%d '
		log_min_messages = warning
		lc_messages = 'C'
		${PL_EXTRA_CONF:-}
	EOF
	[[ $(id -u) -ne 0 ]] || chown postgres: "$PL_PGDATA/postgresql.conf"

	while :; do
		while [[ -n $listen ]] && _pl_port_busy "$port"; do port=$((port + 1)); done
		# in the conf (the last "port" line wins) so a plain "pg_ctl restart" keeps it
		printf "port = %s\n" "$port" >>"$PL_PGDATA/postgresql.conf"
		if _pl_as_pg "$PL_PGBIN/pg_ctl" -D "$PL_PGDATA" -l "$PL_SERVER_LOG" -w -t 60 \
			start >/dev/null; then
			break
		fi
		tries=$((tries + 1))
		if ((tries < 10)) && grep -q 'could not bind\|could not create any TCP/IP sockets\|Address already in use' "$PL_SERVER_LOG"; then
			port=$((port + 1))
			continue
		fi
		tail -n 50 "$PL_SERVER_LOG" >&2 || true
		pl_die "pg_ctl start failed"
	done

	export PGHOST=$PL_SOCKET_DIR PGPORT=$port PGUSER=postgres PGDATABASE=$PL_TEST_DB
	unset PGPASSWORD PGSERVICE PGOPTIONS PGHOSTADDR PGSSLMODE 2>/dev/null || true
	pl_log "cluster: up on port $PGPORT, socket $PGHOST, database $PGDATABASE, log $PL_SERVER_LOG"
}

pl_cluster_stop() {
	[[ -n ${PL_CLUSTER_DIR:-} && -d ${PL_CLUSTER_DIR:-} ]] || return 0
	if [[ ${PL_KEEP_CLUSTER:-0} == 1 ]]; then
		pl_log "cluster kept: PGHOST=$PGHOST PGPORT=$PGPORT data $PL_PGDATA (stop: pg_ctl -D $PL_PGDATA stop)"
		return 0
	fi
	if [[ -f $PL_PGDATA/postmaster.pid ]]; then
		_pl_as_pg "$PL_PGBIN/pg_ctl" -D "$PL_PGDATA" -m fast -w -t 30 stop >/dev/null 2>&1 ||
			_pl_as_pg "$PL_PGBIN/pg_ctl" -D "$PL_PGDATA" -m immediate -w -t 30 stop >/dev/null 2>&1 ||
			true
	fi
	rm -rf "$PL_CLUSTER_DIR"
	PL_CLUSTER_DIR=
}

pl_psql() {
	"$PL_PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"
}
