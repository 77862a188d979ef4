#!/usr/bin/env bash
# The build's network namespace: private, with lo up, one per build, owned
# by the build's user namespace (a uid-range build configures it), nothing
# but the builder in the build's PID namespace; a clear error when it cannot
# be made; fixed-output builds keep the host's.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sandbox-lib.sh"

require_sandbox
plan 23

SLOT=106
ENOSYS="$abs_top_builddir/tests/helpers/enosys"
HOST_NET=$(readlink /proc/self/ns/net)
# esb CALLS SLOT [SANDBOX-RUN OPTIONS] -- BUILDER ARGS: sb with the system
# calls CALLS failing with ENOSYS.
esb() {
	local calls=$1; shift
	"$ENOSYS" "$calls" bash -c '. "$0"; TEST_ROOT=$1; shift; sb "$@"' \
		"$(dirname "$0")/sandbox-lib.sh" "$TEST_ROOT" "$@"
}

# A server on the host's loopback, which no sandboxed build may reach.
PORT=$((20000 + ($$ + 7) % 20000))
"$BUSYBOX" nc -ll -p $PORT -e "$BUSYBOX" echo hello-from-host &
SERVER=$!
at_exit "kill $SERVER"
for _ in $(seq 50); do "$PROBE" connect 127.0.0.1 $PORT >/dev/null && break; sleep 0.1; done

# The process view first: a command the shell forks would reap a zombie.
VIEW='set -- /proc/[0-9]*; echo procs $#; test -e /proc/2 || echo no-pid-2; readlink /proc/self/ns/net; ip -o link | cut -d" " -f1-3; /bin/probe fds -'
run_ok "an ordinary build" sb $SLOT -- /bin/sh -c "$VIEW"
NET=$(echo "$OUT" | sed -n 3p)
like "has a network namespace" "$NET" '^net:\[[0-9]+\]$'
if [ "$NET" != "$HOST_NET" ]; then ok "which is not the host's"; else not_ok "which is not the host's ($NET)"; fi
is "the builder alone (no other process, no zombie); only lo, up; no stray descriptor" \
	"$(echo "$OUT" | sed 3d)" "$(printf 'procs 1\nno-pid-2\n1: lo: <LOOPBACK,UP,LOWER_UP>\n0 1 2')"
run_fails "the host's loopback is out of reach" 1 sb $SLOT -- /bin/probe connect 127.0.0.1 $PORT
is "its own loopback answers (refused, not unreachable)" "$OUT" "ECONNREFUSED"

# Two builds at once get two namespaces.
sb $SLOT -- /bin/sh -c 'readlink /proc/self/ns/net; sleep 0.3' >"$TEST_ROOT/n1" 2>&1 &
A=$!
sb 107 -- /bin/sh -c 'readlink /proc/self/ns/net; sleep 0.3' >"$TEST_ROOT/n2" 2>&1 &
B=$!
wait $A; RA=$?
wait $B; RB=$?
is "two concurrent builds succeed" "$RA $RB" "0 0"
N1=$(cat "$TEST_ROOT/n1") N2=$(cat "$TEST_ROOT/n2")
if [ "$N1" != "$N2" ] && [ "$N1" != "$HOST_NET" ] && [ "$N2" != "$HOST_NET" ]; then
	ok "each in its own network namespace"
else
	not_ok "each in its own network namespace ($N1 $N2 $HOST_NET)"
fi

# uid-range: root of the build's user namespace, which owns the network
# namespace: it may configure it (a namespace made outside would refuse).
run_ok "a uid-range build configures its network" sb $SLOT --uid-range -- /bin/sh -c \
	'set -- /proc/[0-9]*; echo procs $#; ip link set lo mtu 9000 && ip link add v0 type veth && ip -o link | grep -c veth; ip -o link show lo | grep -o "mtu [0-9]*"; echo 1 >/proc/sys/net/ipv4/ip_forward && cat /proc/sys/net/ipv4/ip_forward; ls /sys/class/net'
is "the builder alone; a veth pair, lo's MTU, a net sysctl; /sys shows the build's interfaces" \
	"$(echo $OUT)" "procs 1 2 mtu 9000 1 lo v0 veth0"
run_ok "a uid-range build: a nested network namespace" sb $SLOT --uid-range -- /bin/sh -c \
	'unshare -n /bin/sh -c "ip -o link | cut -d\" \" -f2-3"; ip link set lo down && ip -o link show lo | cut -d" " -f2-3'
is "with its own lo, down as made; the build's lo can be taken down" "$(echo $OUT)" "lo: <LOOPBACK> lo: <LOOPBACK>"
run_ok "an ordinary build" sb $SLOT -- /bin/sh -c 'ip link set lo mtu 9000 2>&1 || echo refused'
is "cannot configure its network" "$(echo $OUT)" "ip: SIOCSIFMTU: Operation not permitted refused"

# Fixed-output builds keep the host's network namespace.
run_ok "a fixed-output build" sb $SLOT --network -- /bin/sh -c "readlink /proc/self/ns/net; /bin/probe connect 127.0.0.1 $PORT"
is "is in the host's network namespace and reaches the server" "$(echo $OUT)" "$HOST_NET ok"

# Failures are build errors naming the step, never a build on the host's network.
run_fails "unshare fails" 125 esb unshare $SLOT -- /bin/sh -c "echo ran"
like "the step and errno are named" "$ERR" "sandbox setup failed at 'creating the network namespace': Function not implemented"
is "the builder never ran" "$OUT" ""
run_fails "uid-range: unshare fails" 125 esb unshare $SLOT --uid-range -- /bin/sh -c "echo ran"
like "the step and errno are named" "$ERR" "sandbox setup failed at 'creating the network namespace': Function not implemented"
run_ok "a fixed-output build needs no new network namespace" esb unshare $SLOT --network -- /bin/sh -c 'readlink /proc/self/ns/net'
is "and runs in the host's" "$OUT" "$HOST_NET"

done_testing
