#!/usr/bin/env bash
# nib derivation show / paths against the Nix 2.8 vectors in tests/data/derivations.
. "$(dirname "$0")/lib.sh"

data=${NIB_TEST_DATA:-$(dirname "$0")/../data}/derivations
nix=$data/nix-store
nibset=$data/nib-store
# Read the /nix/store vectors with that logical store dir; the physical
# store lives under TEST_ROOT so nothing outside it is ever read.
root=$TEST_ROOT/root
mkdir -p "$root/nix/store"
N=("$NIB" --store-dir /nix/store --store-root "$root")

plan 33

run_ok "derivation show --help" "$NIB" derivation show --help
like "show help has usage" "$OUT" "Usage: nib derivation show"
run_ok "derivation paths --help" "$NIB" derivation paths --help
like "help lists derivation commands" "$("$NIB" --help)" "derivation paths"

# show: every .drv prints exactly what 'nix show-derivation' printed.
bad=0
for f in "$nix"/drv/*.drv; do
	b=$(basename "$f" .drv)
	if ! "${N[@]}" derivation show "$f" | cmp -s - "$nix/json/$b.json"; then
		bad=$((bad + 1)); diag "differs: $b"
	fi
done
is "show prints Nix's JSON for all 23 derivations" "$bad" 0

bad=0
for f in "$nix"/json/*.json; do
	b=$(basename "$f" .json)
	if ! "${N[@]}" derivation show --aterm --inputs "$nix/drv" "$f" | cmp -s - "$nix/drv/$b.drv"; then
		bad=$((bad + 1)); diag "differs: $b"
	fi
done
is "show --aterm of Nix's JSON gives Nix's .drv for all 23" "$bad" 0

bad=0
for f in "$data"/forms/bare/*.json; do
	b=$(basename "$f" .json)
	if ! "${N[@]}" derivation show --aterm --inputs "$nix/drv" "$f" | cmp -s - "$nix/drv/$b.drv"; then
		bad=$((bad + 1)); diag "differs: $b"
	fi
done
is "JSON without output paths is completed to Nix's .drv" "$bad" 0

simple=3ghsl9sd83mc26i81adpa2fzf3yw4f68-simple
run_ok "show two files" "${N[@]}" derivation show "$nix/drv/$simple.drv" \
	"$nix/drv/1nqxg9zw66lb8pfywbm6cxws75hzqkzv-multi-output-1.0.drv"
is "one object with two keys" "$(grep -c '^  "/nix/store/' <<<"$OUT")" 2
run_ok "show from standard input" "${N[@]}" derivation show - <"$nix/drv/$simple.drv"
is "stdin output" "$OUT" "$(cat "$nix/json/$simple.json")"

cp "$nix/drv/$simple.drv" "$root/nix/store/"
run_ok "show a store path" "${N[@]}" derivation show "/nix/store/$simple.drv"
like "keyed by the store path" "$OUT" "^  \"/nix/store/$simple.drv\": \\{"

# paths: output and .drv paths as Nix computed them.
bad=0
while read -r drv outs; do
	want=$(tr ' ' '\n' <<<"$outs" | sed 's/=/ /; s/ $/ -/'; echo "drv $drv")
	got=$("${N[@]}" derivation paths --inputs "$nix/drv" "$nix/drv/$(basename "$drv")" 2>&1)
	if [ "$got" != "$want" ]; then bad=$((bad + 1)); diag "$drv: $got"; fi
done <"$nix/expected.txt"
is "paths equal Nix's for all 23 (/nix/store)" "$bad" 0

bad=0
while read -r drv outs; do
	want=$(tr ' ' '\n' <<<"$outs" | sed 's/=/ /; s/ $/ -/'; echo "drv $drv")
	got=$(NIB_STORE_DIR=/nib/store "$NIB" --store-root "$root" derivation paths \
		--inputs "$nibset/drv" "$nibset/drv/$(basename "$drv")" 2>&1)
	if [ "$got" != "$want" ]; then bad=$((bad + 1)); diag "$drv: $got"; fi
done <"$nibset/expected.txt"
is "paths equal Nix's for all 23 (/nib/store)" "$bad" 0

chain=n1q3m0q0ps04fgavmcjbd8y01kyd68m0-chain-top
run_ok "show --aterm of complete JSON needs no inputs" "${N[@]}" derivation show --aterm "$nix/json/$chain.json"
run_fails "missing input derivation is an error" 1 "${N[@]}" derivation paths "$data/forms/v4/$chain.json"
like "names the missing input" "$ERR" "input derivation '/nix/store/[a-z0-9]+-(middle|base).drv': cannot open '.*': No such file"
run_ok "paths --json" "${N[@]}" derivation paths --json --inputs "$nix/drv" "$data/forms/v4/$chain.json"
is "json output" "$OUT" '{"/nix/store/n1q3m0q0ps04fgavmcjbd8y01kyd68m0-chain-top.drv":{"out":"/nix/store/c2m7wsw7q2sj4pxn8mdjvzfgvs8hs0d8-chain-top"}}'
run_ok "paths of a floating CA derivation" "${N[@]}" derivation paths "$nix/drv/72sxivbk47y6fydp18f55yympn8cli7c-ca-floating.drv"
is "unknown output path printed as -" "$(head -n1 <<<"$OUT")" "out -"

# Errors.
run_fails "no file is a usage error" 2 "$NIB" derivation show
run_fails "--aterm with --json is a usage error" 2 "$NIB" derivation show --aterm --json x
run_fails "paths takes no --aterm" 2 "$NIB" derivation paths --aterm x
run_fails "missing file" 1 "${N[@]}" derivation show "$TEST_ROOT/nope.drv"
like "missing file named" "$ERR" "nope.drv': No such file or directory"
printf 'Derive([("out","","","")],[],[],"s","b",[],[("b",""),("a","")])' >"$TEST_ROOT/bad.drv"
run_fails "unsorted env rejected" 1 "${N[@]}" derivation show "$TEST_ROOT/bad.drv"
like "error gives the byte" "$ERR" "invalid derivation at byte [0-9]+: environment variable 'a' is out of order"
sed 's|94f9f6i31zwzwbf0kclq1naqxxi4c7v9-simple"|94f9f6i31zwzwbf0kclq1naqxxi4c7v8-simple"|' "$nix/drv/$simple.drv" >"$TEST_ROOT/wrong.drv"
run_fails "wrong output path rejected" 1 "${N[@]}" derivation paths "$TEST_ROOT/wrong.drv"
like "names output, given and expected path" "$ERR" "output 'out' of derivation 'simple' has path '/nix/store/94f9f6i31zwzwbf0kclq1naqxxi4c7v8-simple', expected '/nix/store/94f9f6i31zwzwbf0kclq1naqxxi4c7v9-simple'"
cp "$nix/drv/1nqxg9zw66lb8pfywbm6cxws75hzqkzv-multi-output-1.0.drv" "$root/nix/store/00000000000000000000000000000000-x.drv"
run_fails "store path that does not match its contents" 1 "${N[@]}" derivation paths /nix/store/00000000000000000000000000000000-x.drv
like "says where it belongs" "$ERR" "does not match its contents, which belong at '/nix/store/1nqxg9zw66lb8pfywbm6cxws75hzqkzv-multi-output-1.0.drv'"

done_testing
