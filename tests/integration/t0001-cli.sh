#!/usr/bin/env bash
# The nib command line: help, version, usage errors, show-config and its sources.
. "$(dirname "$0")/lib.sh"

plan 24

run_ok "nib --help" "$NIB" --help
like "help lists show-config" "$OUT" "show-config"
run_ok "nib --version" "$NIB" --version
like "version printed" "$OUT" "^nib [0-9]+\.[0-9]+"
run_fails "no command is a usage error" 2 "$NIB"
run_fails "unknown command is a usage error" 2 "$NIB" frobnicate
like "unknown command named" "$ERR" "unknown command 'frobnicate'"
run_ok "show-config --help" "$NIB" show-config --help
like "show-config help has usage" "$OUT" "Usage: nib show-config"

run_ok "show-config with defaults" "$NIB" show-config
like "store-dir from environment" "$OUT" "^store-dir = $TEST_ROOT/store  # from environment"
like "sandbox default" "$OUT" "^sandbox = true$"
like "ids-per-build default" "$OUT" "^ids-per-build = 262144$"

cat >"$NIB_CONF_DIR/nib.conf" <<CONF
max-jobs = 3
extra-system-features = kvm-like
CONF
chmod 644 "$NIB_CONF_DIR/nib.conf"
run_ok "settings file read" "$NIB" show-config max-jobs
is "max-jobs from file" "$OUT" "3"
run_ok "--option wins over the file" "$NIB" --option max-jobs 5 show-config max-jobs
is "max-jobs from --option" "$OUT" "5"
run_ok "show-config --json" "$NIB" show-config --json
like "json has origin file" "$OUT" '"max-jobs":\{"value":3,"origin":"file","file":"[^"]*nib.conf"'

echo "max-jobs = lots" >"$NIB_CONF_DIR/nib.conf"
run_fails "bad value is an error" 1 "$NIB" show-config
like "error names file, line and setting" "$ERR" "nib.conf:1: invalid value 'lots' for setting 'max-jobs'"
run_fails "unknown setting in --option is an error" 1 "$NIB" --option nope 1 show-config

# nib-daemon's manual page documents every option its --help lists (roff
# writes --store-dir as \-\-store\-dir).
MAN="$(dirname "$0")/../../daemon/nib-daemon.8"
missing=""
for o in $("$NIB_DAEMON_BIN" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
	grep -qF -- "${o//-/\\-}" "$MAN" || missing+=" $o"
done
is "nib-daemon(8) documents every option of --help" "$missing" ""
is "and has the sections a manual page needs" \
	"$(grep -c '^\.SH \(NAME\|SYNOPSIS\|DESCRIPTION\|OPTIONS\|FILES\|EXIT STATUS\)$' "$MAN")" 6

done_testing
