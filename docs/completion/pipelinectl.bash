# docs/completion/pipelinectl.bash: bash completion of pipelinectl, installed by "make install" to
# $(DESTDIR)/usr/share/bash-completion/completions/pipelinectl (bash-completion loads it on demand).
#
# Completes commands, each command's options, stage names for ls --stage, formats for graph
# --format, files and directories for apply/lint, and pipeline names for run and ls --pipeline
# (read with psql from the view pipeline.pipelines when psql is on PATH and the PG* environment
# reaches a database; nothing otherwise).
# shellcheck shell=bash disable=SC2207
# (COMPREPLY=($(compgen ...)) is the usual idiom: compgen prints one candidate a line, none has spaces)

_pipelinectl_pipelines() {
	command -v psql >/dev/null 2>&1 || return 0
	PGCONNECT_TIMEOUT=2 psql -X -A -t -q -c "SELECT name FROM pipeline.pipelines ORDER BY 1" 2>/dev/null
}

_pipelinectl() {
	local cur prev cmd i
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}

	local commands="apply lint run ls status cancel retry approve deny play runner hookd triggerd serve watch logs graph sign selftest help version"
	# the command: the first word that is not an option (or the value of -d)
	cmd=
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-d | --dbname) ((i++)) ;;
		-*) ;;
		*)
			cmd=${COMP_WORDS[i]}
			break
			;;
		esac
	done

	case $prev in
	-d | --dbname | -p | --param | -l | --label | --labels | -n | --name | --limit | --reason | --comment | \
		-c | --concurrency | --poll-interval | --heartbeat | --lease | -r | --run)
		return 0
		;;
	-f | --filename)
		COMPREPLY=($(compgen -f -- "$cur"))
		compopt -o filenames 2>/dev/null
		return 0
		;;
	-s | --stage)
		COMPREPLY=($(compgen -W "pending scheduling creating active canceling canceled failed succeeded skipped" -- "$cur"))
		return 0
		;;
	--format)
		COMPREPLY=($(compgen -W "mermaid dot" -- "$cur"))
		return 0
		;;
	--pipeline)
		COMPREPLY=($(compgen -W "$(_pipelinectl_pipelines)" -- "$cur"))
		return 0
		;;
	esac

	if [[ -z $cmd ]]; then
		COMPREPLY=($(compgen -W "$commands -d --dbname -h --help -V --version" -- "$cur"))
		return 0
	fi

	local opts="-d --dbname -h --help"
	case $cmd in
	apply) opts+=" -f --filename" ;;
	lint) opts+=" -f --filename --offline" ;;
	run) opts+=" -p --param -l --label --dry-run --queue --priority -w --watch" ;;
	ls) opts+=" -p --pipeline -s --stage -n --limit --json" ;;
	status) opts+=" --json" ;;
	cancel) opts+=" -r --reason" ;;
	approve) opts+=" -c --comment" ;;
	deny) opts+=" -c --comment" ;;
	logs) opts+=" -f --follow -r --run --json" ;;
	graph) opts+=" --format" ;;
	watch) opts+=" --no-color" ;;
	runner) opts+=" -n --name -l --labels -c --concurrency --poll-interval --heartbeat --exit-when-idle -v --verbose" ;;
	hookd) opts+=" -n --name -c --concurrency --poll-interval --lease --exit-when-idle -v --verbose" ;;
	triggerd) opts+=" -l --listen --max-body -v --verbose" ;;
	serve) opts+=" --listen --read-only-role --login --tls-cert --tls-key --session-secret-file --session-ttl --pool -v --verbose" ;;
	help)
		COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		return 0
		;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		return 0
	fi
	case $cmd in
	lint)
		COMPREPLY=($(compgen -f -- "$cur"))
		compopt -o filenames 2>/dev/null
		;;
	run)
		COMPREPLY=($(compgen -W "$(_pipelinectl_pipelines)" -- "$cur"))
		;;
	esac
	return 0
}
complete -F _pipelinectl pipelinectl
