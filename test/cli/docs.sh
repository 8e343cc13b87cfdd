#!/usr/bin/env bash
# docs: the manual page and the bash completion of pipelinectl.
#   - "make install-pipelinectl-docs DESTDIR=..." (part of "make install") installs both;
#   - the manual page renders without a groff warning and documents every command of
#     "pipelinectl --help" and the exit statuses;
#   - the completion completes commands, options, stage names, and pipeline names from the
#     database.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
t_init

commands=$("$PIPELINECTL" --help | awk '/^Commands:/ {on = 1; next} on && /^  [a-z]/ {print $1} on && /^$/ {if (n++) exit}')
isnt "pipelinectl --help lists commands" "$commands" ""

# ---------------------------------------------------------------- make install
pg_config=${PL_PGBIN:+$PL_PGBIN/}pg_config
ok "make install-pipelinectl-docs installs into DESTDIR" \
	make -s -C "$PL_ROOT" install-pipelinectl-docs DESTDIR="$T_DIR/dest" PG_CONFIG="$pg_config"
man_page=$T_DIR/dest/usr/local/share/man/man1/pipelinectl.1
completion=$T_DIR/dest/usr/local/share/bash-completion/completions/pipelinectl
ok "the manual page is installed to man1" test -s "$man_page"
ok "the completion is installed" test -s "$completion"

# ---------------------------------------------------------------- the manual page
if command -v groff >/dev/null; then
	is "the manual page renders without warnings" "$(groff -man -Tutf8 -ww -z "$man_page" 2>&1)" ""
	text=$(groff -man -Tutf8 -P -c -P -b -P -u "$man_page" 2>/dev/null)
	for c in $commands; do
		like "the manual page documents \"$c\"" "$text" $'\n'"       (pipelinectl )?$c( |"$'\n'")"
	done
	like "the manual page has the exit statuses" "$text" "EXIT STATUS"$'\n'"       0 +Done"
	like "the manual page shows the JSON documents" "$text" '\{"run": RUN, "failed_task": +\{"id", +"stage_name"'
else
	note "groff is not installed: rendering not checked"
fi

# ---------------------------------------------------------------- the completion
# shellcheck disable=SC1090
source "$completion"
# comp WORDS...: the completions of the last word
comp() {
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_pipelinectl 2>/dev/null
	printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}
is "commands" "$(comp pipelinectl ap)" "apply approve"
for c in $commands; do
	like "\"$c\" is completed" " $(comp pipelinectl "") " " $c "
done
is "options of a command" "$(comp pipelinectl ls --st)" "--stage"
is "stage names" "$(comp pipelinectl ls --stage f)" "failed"
is "graph formats" "$(comp pipelinectl graph 1 --format "")" "dot mermaid"
like "run's options" "$(comp pipelinectl run --)" "--dry-run.*--queue.*--watch"
is "after -d CONNINFO the command still counts" "$(comp pipelinectl -d db status --j)" "--json"
define_pipeline '{"name": "'"$T_ID"'_compl", "stages": [{"name": "s", "tasks": [{"name": "t", "job": {"command": "true"}}]}]}'
is "pipeline names from the database" "$(comp pipelinectl run "${T_ID}_co")" "${T_ID}_compl"

t_done
