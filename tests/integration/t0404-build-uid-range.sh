#!/usr/bin/env bash
# uid-range derivations through `nib build`: root with the whole slot,
# outputs owned by IDs of the range, nested containers (the example in
# examples/nested), nothing left behind, and the settings it needs.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/build-lib.sh"

build_setup 4
[ -x "$NIB_CONTAINER" ] || skip_all "nib-container not built"
plan 41

with_container=(--option extra-sandbox-paths "/bin/nib-container=$NIB_CONTAINER")

mkdrv "$TEST_ROOT/ur.json" ur-identity '
[ "$(id -u)" = 0 ] && [ "$(id -g)" = 0 ] || exit 1
mkdir $out
echo $(cat /proc/self/uid_map) > $out/uid_map
echo $(cat /proc/self/gid_map) > $out/gid_map
cat /proc/self/setgroups > $out/setgroups
echo x > $out/owned && chown 200000:200001 $out/owned
mkdir $out/d && chown 131072:131072 $out/d && echo y > $out/d/f && chown 131072 $out/d/f' --feature uid-range
run_ok "a uid-range build" "$NIB" build --json "$TEST_ROOT/ur.json"
json=$OUT
out=$(sed -n 's/.*"outputs":{"out":"\([^"]*\)".*/\1/p' <<<"$json")
first=$(sed -n 's/.*"uidRange":{"first":\([0-9]*\).*/\1/p' <<<"$json")
is "uid_map is the whole slot" "$(cat "$TEST_ROOT/root$out/uid_map")" "0 $first 262144"
is "gid_map too" "$(cat "$TEST_ROOT/root$out/gid_map")" "0 $first 262144"
is "setgroups is allowed" "$(cat "$TEST_ROOT/root$out/setgroups")" "allow"
is "files chowned to IDs of the range are accepted and canonicalised" \
	"$(stat -c '%u:%g %a' "$TEST_ROOT/root$out/owned" "$TEST_ROOT/root$out/d" "$TEST_ROOT/root$out/d/f" | tr '\n' ' ')" \
	"0:0 444 0:0 555 0:0 444 "

mkdrv "$TEST_ROOT/plain.json" plain-chown '
touch /build/f
if chown 200000 /build/f 2>/dev/null; then echo chown worked; exit 1; fi
[ "$(id -u)" = 1000 ] || exit 1
cat /proc/self/setgroups > $out'
run_ok "an ordinary build cannot chown to other IDs" "$NIB" build "$TEST_ROOT/plain.json"
is "and has setgroups denied" "$(cat "$TEST_ROOT/root$OUT")" "deny"

mkdrv "$TEST_ROOT/sys.json" ur-sys '
echo x > /etc/extra || exit 1
[ -d /sys/kernel ] || exit 1
grep "^0::" /proc/self/cgroup > $out
if [ -d /sys/fs/cgroup ] && mkdir /sys/fs/cgroup/inner; then
	sh -c "echo \$\$ > /sys/fs/cgroup/inner/cgroup.procs && grep ^0:: /proc/self/cgroup" >> $out
fi' --feature uid-range
run_ok "writable /etc, /sys and a delegated cgroup" "$NIB" build "$TEST_ROOT/sys.json"
if [ -n "$(build_cgroup_parent)" ]; then
	is "the build's cgroup is its cgroup root, child cgroups work" "$(cat "$TEST_ROOT/root$OUT" | tr '\n' ' ')" "0::/ 0::/inner "
else
	ok "# SKIP no cgroup v2"
fi

# A build that leaves a nested container, a daemon and a process in a child cgroup running.
mkdrv "$TEST_ROOT/left.json" ur-leftovers '
/bin/nib-container --proc -- /bin/sh -c "sleep 1000" &
setsid /bin/sh -c "sleep 1000 &" &
if [ -d /sys/fs/cgroup ] && mkdir /sys/fs/cgroup/stray; then
	/bin/sh -c "echo \$\$ > /sys/fs/cgroup/stray/cgroup.procs; exec sleep 1000" &
	mkdir /sys/fs/cgroup/stray2 && mkdir /sys/fs/cgroup/stray2/deeper
fi
sleep 0.5
echo leaving things behind > $out' --feature uid-range
run_ok "a uid-range build leaving nested processes and cgroups" "$NIB" "${with_container[@]}" build "$TEST_ROOT/left.json"
check_no_leftovers "after the nested leftovers"

# The example: three nested containers talking TCP over a bridge.
run_ok "examples/nested builds" "$NIB" "${with_container[@]}" build "$EXAMPLES/nested/test.json"
nested=$TEST_ROOT/root$OUT
is "the test passed" "$(cat "$nested/result")" PASS
is "the server received both clients' messages" "$(cat "$nested/received" | tr '\n' ' ')" "hello from client1 hello from client2 "
like "the server was root of its own sub-range, PID 1" "$(cat "$nested/server.log")" "server: uid 0, uid_map 0 65536 65536, pid 1"
like "client 1 had another sub-range and address" "$(cat "$nested/client1.log")" "client1: uid 0, uid_map 0 131072 65536, address inet 10.0.0.2/24"
like "client 2 too" "$(cat "$nested/client2.log")" "client2: uid 0, uid_map 0 196608 65536, address inet 10.0.0.3/24"
like "each client got its answer" "$(cat "$nested/client1.log" "$nested/client2.log")" "client2 got: ack:hello from client2"

# Two nested tests at once (two derivations): separate ranges and networks.
cp "$EXAMPLES/nested/run-test.sh" "$TEST_ROOT/run-test.sh"
for k in a b; do
	sed -e "s/\"nested-tcp-test\"/\"nested-$k\"/" -e "s/\"message\": \"hello\"/\"message\": \"hi-$k\"/" \
		"$EXAMPLES/nested/test.json" >"$TEST_ROOT/nested-$k.json"
done
run_ok "two nested tests at once" "$NIB" "${with_container[@]}" build -j 2 --json "$TEST_ROOT/nested-a.json" "$TEST_ROOT/nested-b.json"
json=$OUT
out_of() { sed 's/},{"drvPath"/}\n{"drvPath"/g' <<<"$json" | sed -n "s/.*\"name\":\"$1\".*\"outputs\":{\"out\":\"\([^\"]*\)\".*/\1/p"; }
outs=("$(out_of nested-a)" "$(out_of nested-b)")
is "both built" "$(grep -o '"status":"built"' <<<"$json" | wc -l)" 2
is "a's server heard only a's clients" "$(cat "$TEST_ROOT/root${outs[0]}/received" | tr '\n' ' ')" "hi-a from client1 hi-a from client2 "
is "b's server heard only b's clients" "$(cat "$TEST_ROOT/root${outs[1]}/received" | tr '\n' ' ')" "hi-b from client1 hi-b from client2 "
firsts=($(grep -o '"uidRange":{"first":[0-9]*' <<<"$json" | grep -o '[0-9]*$'))
is "in two different slots" "$([ "${firsts[0]}" != "${firsts[1]}" ] && echo yes)" yes
starts=($(grep -o '"startTime":[0-9.]*' <<<"$json" | cut -d: -f2))
stops=($(grep -o '"stopTime":[0-9.]*' <<<"$json" | cut -d: -f2))
is "at the same time" "$(awk -v a="${starts[0]}" -v b="${stops[0]}" -v c="${starts[1]}" -v d="${stops[1]}" \
	'BEGIN { print (a < d && c < b) ? "yes" : "no" }')" yes
check_no_leftovers "after the nested tests"

# What uid-range needs.
mkdrv "$TEST_ROOT/ur2.json" ur-needs 'echo x > $out' --feature uid-range
run_fails "uid-range with auto-allocate-uids = false" 1 "$NIB" --option auto-allocate-uids false --option build-users-group nogroup build "$TEST_ROOT/ur2.json"
like "says it needs auto-allocate-uids" "$ERR" "feature 'uid-range' requires the setting 'auto-allocate-uids' to be enabled"
run_fails "uid-range with sandbox = false" 1 "$NIB" --option sandbox false build "$TEST_ROOT/ur2.json"
like "says it needs the sandbox" "$ERR" "feature 'uid-range' is only supported in sandboxed builds"
run_fails "uid-range without the feature offered" 1 "$NIB" --option system-features "kvm" build "$TEST_ROOT/ur2.json"
like "names the feature" "$ERR" "requires the system feature 'uid-range'"
done_testing
