#!/usr/bin/env bash
# Structured attributes (.attrs.json, .attrs.sh, NIX_ATTRS_*_FILE),
# exportReferencesGraph, impureEnvVars and the output checks
# (allowed/disallowed references and requisites, outputChecks): derivations
# made by Nix 2.8 (tests/data/attrs, whose expected/ holds what Nix's own
# builds produced) and JSON derivations.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/build-lib.sh"

build_setup 43
V="$NIB_TEST_DATA/attrs"
export NIB_NO_PROGRESS=1
unset NIB_TEST_IMPURE
# The vectors are for x86_64-linux; their builder is the sandbox's busybox.
nibv() { "$NIB" --option system x86_64-linux "$@"; }
vdrv() { awk -v a="$1" '$1 == a { print $2 }' "$V/top.txt"; }

plan 87

# ---- Nix 2.8's derivations ----
mkdir "$TEST_ROOT/v"
install -m 644 "$V/copy-attrs.sh" "$V/hello.txt" "$TEST_ROOT/v/"
run_ok "add the builder script" "$NIB" add "$TEST_ROOT/v/copy-attrs.sh"
is "at Nix's path" "$OUT" "$(grep copy-attrs.sh "$V/sources.txt")"
run_ok "add hello.txt" "$NIB" add "$TEST_ROOT/v/hello.txt"
is "at Nix's path" "$OUT" "$(grep hello.txt "$V/sources.txt")"
added=0
for pass in 1 2; do
	for f in "$V"/drv/*.drv; do
		"$NIB" path-info "/nib/store/$(basename "$f")" >/dev/null 2>&1 && continue
		"$NIB" derivation add "$f" >/dev/null 2>&1 && added=$((added + 1))
	done
done
is "every .drv added at Nix's path" "$added" "$(ls "$V/drv" | wc -l)"

drv=$(vdrv types)
run_ok "structured attributes of every type" nibv build "$drv"
out=$(grep -v -- '-dev$' <<<"$OUT")
is ".attrs.json is Nix's" "$(cat "$TEST_ROOT/root$out/.attrs.json")" "$(cat "$V/expected/types/.attrs.json")"
is ".attrs.sh is Nix's" "$(cat "$TEST_ROOT/root$out/.attrs.sh")" "$(cat "$V/expected/types/.attrs.sh")"
cmp -s "$TEST_ROOT/root$out/.attrs.sh" "$V/expected/types/.attrs.sh" &&
	ok ".attrs.sh is Nix's byte for byte" || not_ok ".attrs.sh is Nix's byte for byte"
is "NIX_ATTRS_JSON_FILE and NIX_ATTRS_SH_FILE name them in /build" \
	"$(cat "$TEST_ROOT/root$out/vars")" "/build/.attrs.json /build/.attrs.sh"
like "out refers to dev through the outputs map" "$("$NIB" path-info --json "$out")" \
	"\"references\":\[[^]]*-attrs-types-dev\""
if command -v bash >/dev/null; then
	# (false in a list is an empty word, so it vanishes: 6 elements, as with Nix)
	got=$(bash -c '. "$1"; echo "${outputs[dev]}|${attrs[we ird]}|${#list[@]}|${list[5]}|$t|$f|$str"' _ \
		"$TEST_ROOT/root$out/.attrs.sh")
	is "bash reads .attrs.sh back" "$got" "$(grep -- '-dev$' <<<"$OUT")|x'y|6|'|1||it's a \"test\" \$x \\ \` 
 newline	tab"
else
	ok "bash reads .attrs.sh back # SKIP no bash"
fi

drv=$(vdrv graph)
run_ok "exportReferencesGraph with structured attributes" nibv build "$drv"
is ".attrs.json is Nix 2.8's, with newer Nix's \"valid\": true" \
	"$(sed 's/,"valid":true//g' "$TEST_ROOT/root$OUT/.attrs.json")" \
	"$(cat "$V/expected/graph/.attrs.json")"
like "each path says it is valid" "$(cat "$TEST_ROOT/root$OUT/.attrs.json")" \
	'"references":\[\],"valid":true\}'
is ".attrs.sh leaves the lists of objects out" "$(cat "$TEST_ROOT/root$OUT/.attrs.sh")" \
	"$(cat "$V/expected/graph/.attrs.sh")"

drv=$(vdrv graph-classic)
run_ok "exportReferencesGraph without structured attributes" nibv build "$drv"
is "file 'deps' is Nix's" "$(cat "$TEST_ROOT/root$OUT/deps")" "$(cat "$V/expected/graph-classic/deps")"
is "file 'src' is Nix's" "$(cat "$TEST_ROOT/root$OUT/src")" "$(cat "$V/expected/graph-classic/src")"

dep=$(grep -o '/nib/store/[a-z0-9]*-attrs-dep' "$V/expected/checks-refs/error")
run_fails "outputChecks.out.disallowedReferences" 1 nibv build "$(vdrv checks-refs)"
like "names the output and the attribute" "$ERR" \
	"output '/nib/store/[a-z0-9]{32}-attrs-checks-refs' is not allowed to refer to the following paths \(disallowedReferences\):"
like "names the forbidden path (as Nix does)" "$ERR" "^ +$dep\$"
is "nothing is registered" "$("$NIB" path-info "$(sed -n "s/.*output '\([^']*\)'.*/\1/p" <<<"$ERR" | head -1)" 2>/dev/null)" ""
run_fails "outputChecks.out.maxSize" 1 nibv build "$(vdrv checks-size)"
like "says the size and the limit" "$ERR" "path '/nib/store/[a-z0-9]{32}-attrs-checks-size' is too large at [0-9]+ bytes; limit is 64 bytes"

run_fails "a fixed-output derivation whose impureEnvVars are not set" 1 nibv build "$(vdrv impure)"
like "its builder failed" "$ERR" "failed"
run_ok "the same with NIB_TEST_IMPURE=yes in nib's environment" env NIB_TEST_IMPURE=yes "$NIB" \
	--option system x86_64-linux build "$(vdrv impure)"
is "it made Nix's output" "$(cat "$TEST_ROOT/root$OUT")" "$(cat "$V/expected/impure/out")"
run_fails "structured impureEnvVars, not set" 1 nibv build "$(vdrv impure-structured)"
run_ok "from the setting impure-env" nibv --option impure-env "OTHER=1 NIB_TEST_IMPURE=yes" \
	build "$(vdrv impure-structured)"
is "it made Nix's output too" "$(cat "$TEST_ROOT/root$OUT")" "$(cat "$V/expected/impure-structured/out")"
run_fails "impure-env needs NAME=VALUE" 1 "$NIB" --option impure-env "=x" show-config impure-env
like "says so" "$ERR" "setting 'impure-env': entry '=x' must be NAME=VALUE"

# ---- JSON derivations ----
J="$TEST_ROOT/j"
mkdir "$J"
cp "$TEST_ROOT/v/copy-attrs.sh" "$J/"
# mksdrv FILE NAME ATTRS [INPUTDRVS] [OUTPUTS]: a derivation with structured
# attributes ATTRS (JSON members) whose builder is copy-attrs.sh.
mksdrv() {
	local file=$1 name=$2 attrs=$3 inputs=${4:-} outputs=${5:-'"out": {}'}
	cat >"$file" <<JSON
{"name": "$name", "system": "$SYSTEM", "builder": "/bin/sh", "args": ["./copy-attrs.sh"],
 "inputSrcs": ["./copy-attrs.sh"], "inputDrvs": {$inputs}, "outputs": {$outputs},
 "env": {"envOnly": "from env"},
 "structuredAttrs": {"name": "$name", "system": "$SYSTEM", "builder": "/bin/sh"${attrs:+, $attrs}}}
JSON
}
mkdrv "$J/dep1.json" dep1 'echo one > $out'
mkdrv "$J/dep2.json" dep2 'echo $in0 > $out' --input ./dep1.json
run_ok "build two dependencies" "$NIB" build "$J/dep2.json"
DEP2=$OUT
DEP1=$(cat "$TEST_ROOT/root$DEP2")

cat >"$J/env.sh" <<'EOF'
p=$(sed 's/.*"out":"\([^"]*\)".*/\1/' .attrs.json)
mkdir "$p"
env | sort >"$p/env"
ls -A >"$p/files"
EOF
cat >"$J/env.json" <<JSON
{"name": "sa-env", "system": "$SYSTEM", "builder": "/bin/sh", "args": ["./env.sh"],
 "inputSrcs": ["./env.sh"], "inputDrvs": {}, "outputs": {"out": {}},
 "env": {"envOnly": "from env", "passAsFile": "big", "big": "x"},
 "structuredAttrs": {"name": "sa-env", "passAsFile": ["big"], "big": "x", "impureEnvVars": ["HOME_X"]}}
JSON
HOME_X=leak run_ok "a JSON derivation with structuredAttrs" "$NIB" build "$J/env.json"
env=$(cat "$TEST_ROOT/root$OUT/env")
like "the builder gets NIX_ATTRS_JSON_FILE" "$env" "^NIX_ATTRS_JSON_FILE=/build/.attrs.json$"
like "and NIX_ATTRS_SH_FILE" "$env" "^NIX_ATTRS_SH_FILE=/build/.attrs.sh$"
is "but none of the env entries, passAsFile or impureEnvVars" \
	"$(grep -E '^(envOnly|big|bigPath|passAsFile|name|out|HOME_X)=' <<<"$env")" ""
is "the build directory holds the two files" "$(cat "$TEST_ROOT/root$OUT/files")" ".attrs.json
.attrs.sh"

mksdrv "$J/nested.json" sa-nested "\"exportReferencesGraph\": {\"g\": [[\"$DEP2\"], \"$DEP1/sub/path\"]}" \
	"\"./dep2.json\": [\"out\"]"
run_ok "exportReferencesGraph: nested lists and subpaths" "$NIB" build "$J/nested.json"
g=$(sed 's/.*"g":\[\(.*\)\],"name".*/\1/' "$TEST_ROOT/root$OUT/.attrs.json")
like "both paths, with their information" "$g" \
	"^\{\"closureSize\":[0-9]+,\"narHash\":\"sha256:[0-9a-z]{52}\",\"narSize\":[0-9]+,\"path\":\"$DEP1\",\"references\":\[\],\"valid\":true\},\{\"closureSize\":[0-9]+,[^}]*\"path\":\"$DEP2\",\"references\":\[\"$DEP1\"\],\"valid\":true\}$"
s1=$(sed 's/.*"narSize":\([0-9]*\),"path":"'"${DEP1//\//\\/}"'".*/\1/' <<<"$g")
c2=$(sed 's/.*{"closureSize":\([0-9]*\),[^}]*"path":"'"${DEP2//\//\\/}"'".*/\1/' <<<"$g")
s2=$(sed 's/.*"narSize":\([0-9]*\),"path":"'"${DEP2//\//\\/}"'".*/\1/' <<<"$g")
is "closureSize sums the closure's NAR sizes" "$c2" "$((s1 + s2))"

mksdrv "$J/outside.json" sa-outside "\"exportReferencesGraph\": {\"g\": \"$DEP1\"}"
run_fails "exportReferencesGraph outside the input closure" 1 "$NIB" build "$J/outside.json"
like "is refused" "$ERR" "cannot export references of path '$DEP1' because it is not in the input closure of the derivation"
mkdrv "$J/odd.json" odd 'true' --env "exportReferencesGraph=a"
run_fails "an odd exportReferencesGraph" 1 "$NIB" build "$J/odd.json"
like "says so" "$ERR" "odd number of tokens in 'exportReferencesGraph': 'a'"
mkdrv "$J/badname.json" badname 'true' --env "exportReferencesGraph=../x $DEP1"
run_fails "an exportReferencesGraph file name with a slash" 1 "$NIB" build "$J/badname.json"
like "says so" "$ERR" "invalid file name '../x' in 'exportReferencesGraph'"

# ---- reference checks without structured attributes ----
refs() { mkdrv "$J/$1.json" "$1" 'echo $in0 > $out' --input ./dep2.json "${@:2}"; }
refs r-allow-none --env allowedReferences=
run_fails "allowedReferences empty" 1 "$NIB" build "$J/r-allow-none.json"
like "names the output and the reference" "$ERR" \
	"output '/nib/store/[a-z0-9]{32}-r-allow-none' is not allowed to refer to the following paths \(allowedReferences\):"
like "names the forbidden path" "$ERR" "^  $DEP2\$"
refs r-allow --env "allowedReferences=out $DEP2"
run_ok "allowedReferences listing it" "$NIB" build "$J/r-allow.json"
refs r-disallow --env "disallowedReferences=$DEP1 $DEP2"
run_fails "disallowedReferences" 1 "$NIB" build "$J/r-disallow.json"
like "names the forbidden path" "$ERR" "\(disallowedReferences\):
  $DEP2\$"
refs r-reqs --env "allowedRequisites=$DEP2"
run_fails "allowedRequisites: an indirect reference" 1 "$NIB" build "$J/r-reqs.json"
like "names it, not the output itself" "$ERR" "\(allowedRequisites\):
  $DEP1\$"
refs r-reqs-ok --env "allowedRequisites=$DEP2 $DEP1"
run_ok "allowedRequisites with the whole closure" "$NIB" build "$J/r-reqs-ok.json"
refs r-disreqs --env "disallowedRequisites=$DEP1"
run_fails "disallowedRequisites" 1 "$NIB" build "$J/r-disreqs.json"
like "names the indirect reference" "$ERR" "\(disallowedRequisites\):
  $DEP1\$"
refs r-bad --env "allowedReferences=nonsense"
run_fails "an illegal reference specifier" 1 "$NIB" build "$J/r-bad.json"
like "says what it expects" "$ERR" "output check for 'out' contains an illegal reference specifier 'nonsense', expected store path or output name \(one of \[out\]\)"

mkdrv "$J/cycle.json" cycle 'mkdir $out $dev; echo $dev > $out/d; echo $out > $dev/o' --out out --out dev
run_fails "outputs that refer to each other in a cycle" 1 "$NIB" build "$J/cycle.json"
like "are refused as Nix refuses them" "$ERR" "cycle detected in build of '/nib/store/[a-z0-9]{32}-cycle.drv' in the references of output 'dev' from output 'out'"

# ---- outputChecks with structured attributes ----
mksdrv "$J/oc-top.json" oc-top "\"disallowedReferences\": [\"$DEP2\"], \"dep\": \"$DEP2\"" \
	"\"./dep2.json\": [\"out\"]"
run_ok "top-level disallowedReferences has no effect with structured attributes" "$NIB" build "$J/oc-top.json"
like "(the output does refer to it)" "$("$NIB" path-info --json "$OUT")" "$DEP2"
mksdrv "$J/oc-self.json" oc-self "\"outputChecks\": {\"out\": {\"allowedRequisites\": [\"$DEP2\", \"$DEP1\"]}}" \
	"\"./dep2.json\": [\"out\"]"
run_fails "structured allowedRequisites count the output itself" 1 "$NIB" build "$J/oc-self.json"
like "names it" "$ERR" "\(allowedRequisites\):
  /nib/store/[a-z0-9]{32}-oc-self\$"
mksdrv "$J/oc-ok.json" oc-ok "\"outputChecks\": {\"out\": {\"allowedRequisites\": [\"out\", \"dev\", \"$DEP2\", \"$DEP1\"], \"allowedReferences\": [\"out\", \"dev\", \"$DEP2\", \"$DEP1\"], \"maxSize\": 100000, \"maxClosureSize\": 100000}, \"dev\": {\"allowedReferences\": []}}" \
	"\"./dep2.json\": [\"out\"]" '"out": {}, "dev": {}'
run_ok "outputChecks per output, all passing" "$NIB" build "$J/oc-ok.json"
mksdrv "$J/oc-closure.json" oc-closure "\"outputChecks\": {\"out\": {\"maxClosureSize\": 10}}"
run_fails "outputChecks maxClosureSize" 1 "$NIB" build "$J/oc-closure.json"
like "says the size and the limit" "$ERR" "closure of path '/nib/store/[a-z0-9]{32}-oc-closure' is too large at [0-9]+ bytes; limit is 10 bytes"
mksdrv "$J/oc-bad.json" oc-bad "\"outputChecks\": {\"out\": {\"maxSize\": \"big\"}}"
run_fails "a malformed outputChecks" 1 "$NIB" build "$J/oc-bad.json"
like "is refused before anything runs" "$ERR" "outputChecks.out.maxSize of derivation 'oc-bad' must be a non-negative integer"
is "and nothing ran" "$(grep -c 'oc-bad>' <<<"$ERR")" 0

# ---- impureEnvVars ----
mkdrv "$J/ie-normal.json" ie-normal 'echo "${NIB_TEST_IMPURE-unset}" > $out' --env impureEnvVars=NIB_TEST_IMPURE
NIB_TEST_IMPURE=yes run_ok "impureEnvVars of a derivation that is not fixed-output" "$NIB" build "$J/ie-normal.json"
is "are ignored" "$(cat "$TEST_ROOT/root$OUT")" "unset"
h=$(printf 'ok\n' | sha256sum | cut -d' ' -f1)
mkdrv "$J/ie-fod.json" ie-fod 'echo "NIB_TEST_IMPURE=[$NIB_TEST_IMPURE] UNSET_X=[${UNSET_X-absent}]"; echo ok > $out' \
	--env "impureEnvVars=NIB_TEST_IMPURE UNSET_X" --fixed "sha256:$h"
NIB_TEST_IMPURE='a b' run_ok "impureEnvVars of a fixed-output derivation" "$NIB" build "$J/ie-fod.json"
like "are copied from nib's environment; unset ones are empty" "$ERR" "NIB_TEST_IMPURE=\[a b\] UNSET_X=\[\]"

# Through the daemon: its own environment counts, not the client's.
export NIB_DAEMON_SOCKET="$TEST_ROOT/sock/socket"
NIB_TEST_IMPURE=daemon start_daemon && ok "daemon started" || not_ok "daemon started"
mkdrv "$J/ie-daemon.json" ie-daemon 'echo "NIB_TEST_IMPURE=[$NIB_TEST_IMPURE]"; echo ok > $out' \
	--env "impureEnvVars=NIB_TEST_IMPURE" --fixed "sha256:$h"
NIB_TEST_IMPURE=client run_ok "a fixed-output build through the daemon" "$NIB" --store daemon build "$J/ie-daemon.json"
like "gets the daemon's value" "$ERR" "NIB_TEST_IMPURE=\[daemon\]"
stop_daemon

check_no_leftovers "after the attribute builds"
done_testing
