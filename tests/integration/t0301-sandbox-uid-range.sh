#!/usr/bin/env bash
# uid-range builds: root of a 2^18-ID namespace, writable /etc, /sys, a
# delegated cgroup, and nested containers (user, PID, mount, network
# namespaces, veth on a bridge, proc/tmpfs/overlay mounts) that leave nothing
# behind.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sandbox-lib.sh"

require_sandbox
[ -x "$NIB_CONTAINER" ] || skip_all "nib-container not built"
plan 32

SLOT=101
FIRST=$(slot_first_id $SLOT)
UR=(--uid-range --timeout 60 --bind /bin/nib-container="$NIB_CONTAINER")
CG_DIR=$(host_v2_cgroup_dir)

run_ok "uid-range identity" sb $SLOT "${UR[@]}" -- /bin/sh -c 'id -u; id -g; id -un; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups'
is "root with the whole range, setgroups allowed" "$(echo $OUT | tr -s ' ')" "0 0 root 0 $FIRST 262144 0 $FIRST 262144 allow"

mkdir -p "$TEST_ROOT/out"
run_ok "chown to an ID of the range" sb $SLOT "${UR[@]}" --output-dir "$TEST_ROOT/out" -- /bin/sh -c 'echo x >/nib/store/ddd-out && chown 200000:200001 /nib/store/ddd-out'
is "the host sees the range's ID" "$(stat -c '%u %g' "$TEST_ROOT/out/ddd-out")" "$((FIRST + 200000)) $((FIRST + 200001))"
mkdir -p "$TEST_ROOT/store/eee-input" && echo data >"$TEST_ROOT/store/eee-input/f"
chmod 444 "$TEST_ROOT/store/eee-input/f" && chmod 555 "$TEST_ROOT/store/eee-input"
run_ok "a uid-range build may remount an input" sb $SLOT "${UR[@]}" --bind /nib/store/eee-input="$TEST_ROOT/store/eee-input" -- /bin/sh -c 'mount -o remount,bind,rw /nib/store/eee-input && echo remounted; echo x >/nib/store/eee-input/f || echo no-write; touch /nib/store/eee-input/g || echo no-create; chmod 755 /nib/store/eee-input || echo no-chmod'
is "but the store's owner and modes still protect it" "$(echo $OUT)" "remounted no-write no-create no-chmod"
is "the input is unchanged" "$(cat "$TEST_ROOT/store/eee-input/f"; ls "$TEST_ROOT/store/eee-input")" "$(printf 'data\nf')"
run_fails "an ordinary build cannot chown" 1 sb $SLOT -- /bin/sh -c 'touch f && chown 200000 f'

run_ok "root, /etc, /sys, devices" sb $SLOT "${UR[@]}" -- /bin/sh -c 'stat -c "%u %a" /; echo x >/etc/extra && echo etc-writable; stat -c %u /etc; test -d /sys/kernel && echo sys; test -c /dev/net/tun && echo tun; test -c /dev/fuse && echo fuse; true'
want_dev=""
[ -c /dev/net/tun ] && want_dev="$want_dev tun"
[ -c /dev/fuse ] && want_dev="$want_dev fuse"
is "root-owned root and /etc, sysfs, tun and fuse when the host has them" "$(echo $OUT)" "0 755 etc-writable 0 sys$want_dev"

if [ -n "$CG_DIR" ]; then
	CG=nib-t0301-$$
	run_ok "delegated cgroup" sb $SLOT "${UR[@]}" --cgroup $CG -- /bin/sh -c 'grep "^0::" /proc/self/cgroup; mkdir /sys/fs/cgroup/inner && sh -c "echo \$\$ >/sys/fs/cgroup/inner/cgroup.procs && grep ^0:: /proc/self/cgroup"'
	is "a cgroup namespace rooted at the build, children can be made and joined" "$(echo $OUT)" "0::/ 0::/inner"
	is "the build cgroup is gone afterwards" "$(ls "$CG_DIR" | grep -c "^$CG\$")" "0"
else
	ok "# SKIP no cgroup v2"; ok "# SKIP no cgroup v2"; ok "# SKIP no cgroup v2"
fi

# Three nested containers on a private bridge: a server and two clients.
cat >"$TEST_ROOT/nested.sh" <<'SCRIPT'
export PATH=/bin
C=/bin/nib-container
$C --name srv --map 0:65536:65536 --net br0 --bridge-addr 10.0.0.254/24 --addr 10.0.0.1/24 --proc --tmpfs /tmp -- \
	/bin/sh -c 'set -- /proc/[0-9]*; n=$#; echo "srv: uid $(id -u) map $(cat /proc/self/uid_map) pid $$ procs $n host $(hostname)";
		for i in 1 2; do nc -l -p 7000 -e /bin/sh -c "read l; echo srv-saw-\$l"; done' &
for n in 1 2; do
	$C --name c$n --map 0:$((65536 * (n + 1))):65536 --net br0 --addr 10.0.0.$((n + 1))/24 -- \
		/bin/sh -c 'echo "$(hostname): map $(cat /proc/self/uid_map)";
			# A connection queued on a listener that then closes is reset: retry
			# until the server has answered.
			i=0; while :; do
				r=$(echo hello-from-$(hostname) | nc -w 2 10.0.0.1 7000 2>/dev/null)
				case $r in srv-saw-*) echo "$r"; exit 0 ;; esac
				sleep 0.1; i=$((i + 1)); [ $i -lt 100 ] || exit 1
			done' &
done
fail=0
for j in 1 2 3; do wait -n || fail=1; done
echo "bridge $(ip addr show br0 | grep -o 'inet [0-9./]*')"
exit $fail
SCRIPT
NESTED=(--bind /test.sh="$TEST_ROOT/nested.sh")
run_ok "three nested containers talk over a bridge" sb $SLOT "${UR[@]}" "${NESTED[@]}" -- /bin/sh /test.sh
like "the server is root of its own sub-range, PID 1, alone" "$(echo $OUT | tr -s ' ')" "srv: uid 0 map 0 65536 65536 pid 1 procs 1 host srv"
like "client 1 has its own sub-range" "$(echo $OUT | tr -s ' ')" "c1: map 0 131072 65536"
like "client 2 has its own sub-range" "$(echo $OUT | tr -s ' ')" "c2: map 0 196608 65536"
like "the server saw client 1" "$OUT" "srv-saw-hello-from-c1"
like "the server saw client 2" "$OUT" "srv-saw-hello-from-c2"
like "the bridge lives in the build's network namespace" "$OUT" "bridge inet 10.0.0.254/24"

# Two such builds at once: same bridge name and addresses, separate networks.
sb 102 "${UR[@]}" "${NESTED[@]}" -- /bin/sh /test.sh >"$TEST_ROOT/a.out" 2>&1 &
A=$!
sb 103 "${UR[@]}" "${NESTED[@]}" -- /bin/sh /test.sh >"$TEST_ROOT/b.out" 2>&1 &
B=$!
wait $A; RA=$?
wait $B; RB=$?
is "two concurrent nested builds both succeed" "$RA $RB" "0 0"
is "each server saw its own two clients" "$(grep -c srv-saw "$TEST_ROOT/a.out") $(grep -c srv-saw "$TEST_ROOT/b.out")" "2 2"

# Nested mounts: proc, tmpfs, overlay (upper and work must belong to the container's root).
run_ok "proc, tmpfs and overlay in a nested container" sb $SLOT "${UR[@]}" -- /bin/sh -c '
	export PATH=/bin
	mkdir -p /tmp/l /tmp/u /tmp/w /tmp/m /tmp/t && echo lower >/tmp/l/f && chown 65536:65536 /tmp/u /tmp/w
	nib-container --proc --tmpfs /tmp/t --overlay /tmp/l:/tmp/u:/tmp/w:/tmp/m -- /bin/sh -c "
		set -- /proc/[0-9]*; echo procs \$#; echo t >/tmp/t/t && echo tmpfs-ok;
		cat /tmp/m/f; echo upper >/tmp/m/g"
	cat /tmp/u/g'
is "fresh proc, writable tmpfs, overlay writes go to the upper layer" "$(echo $OUT)" "procs 1 tmpfs-ok lower upper"
run_ok "nested user namespaces with plain unshare too" sb $SLOT "${UR[@]}" -- /bin/sh -c 'unshare -U -r -m -p -n -f --mount-proc /bin/sh -c "id -u; set -- /proc/[0-9]*; echo \$#"'
is "root of a nested namespace, own PID namespace" "$(echo $OUT)" "0 1"

# A build that leaves things running: nested container, daemon, stray cgroup.
LEFT='export PATH=/bin
	nib-container --proc -- /bin/sh -c "sleep 1000" &
	setsid /bin/sh -c "sleep 1000 &" &
	if [ -d /sys/fs/cgroup ] && mkdir /sys/fs/cgroup/stray 2>/dev/null; then
		/bin/sh -c "echo \$\$ >/sys/fs/cgroup/stray/cgroup.procs; exec sleep 1000" &
	fi
	sleep 0.3; echo leaving'
run_ok "a build that leaves nested processes behind" sb $SLOT "${UR[@]}" --check-leftovers -- /bin/sh -c "$LEFT"
is "nothing of the range survives (PID namespace teardown)" "$OUT" "leaving"
if [ -n "$CG_DIR" ]; then
	CG=nib-t0301-left-$$
	run_ok "the same with a cgroup" sb $SLOT "${UR[@]}" --cgroup $CG --check-leftovers -- /bin/sh -c "$LEFT"
	is "nothing survives, the stray child cgroup is removed" "$(ls "$CG_DIR" | grep -c "^$CG\$")" "0"
else
	ok "# SKIP no cgroup v2"; ok "# SKIP no cgroup v2"
fi
run_fails "a uid-range build needs a large enough range" 125 sb $SLOT --uid-range --count 1000 -- /bin/sh -c true
like "and says so" "$ERR" "needs at least 65536 IDs"

done_testing
