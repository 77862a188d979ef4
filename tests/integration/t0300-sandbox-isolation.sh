#!/usr/bin/env bash
# The ordinary build sandbox: identity, namespaces, filesystem view, network,
# syscall filter, read-only inputs, outputs, and clear setup errors.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sandbox-lib.sh"

require_sandbox
plan 42

SLOT=100
FIRST=$(slot_first_id $SLOT)

run_ok "id inside" sb $SLOT -- /bin/sh -c 'id -u; id -g; id -un; id -gn'
is "builder is nixbld 1000/100" "$OUT" "$(printf '1000\n100\nnixbld\nnixbld')"
run_ok "ID maps" sb $SLOT -- /bin/sh -c 'cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups'
is "one ID mapped, setgroups denied" "$(echo $OUT | tr -s ' ')" "1000 $FIRST 1 100 $FIRST 1 deny"
run_ok "process view" sb $SLOT -- /bin/sh -c 'echo $$; set -- /proc/[0-9]*; echo $#'
is "builder is PID 1 and sees only its own processes" "$(echo $OUT)" "1 1"
run_ok "hostname and working directory" sb $SLOT -- /bin/sh -c 'hostname; pwd; echo $HOME $NIX_BUILD_TOP $TMPDIR'
is "localhost, /build, Nix's environment" "$OUT" "$(printf 'localhost\n/build\n/homeless-shelter /build /build')"

# The filesystem: only what was given.
mkdir -p "$TEST_ROOT/store/aaa-input/sub" "$TEST_ROOT/out"
echo data >"$TEST_ROOT/store/aaa-input/file"
ln -s aaa-input "$TEST_ROOT/store/bbb-link"
echo secret >"$TEST_ROOT/host-secret"
INPUTS=(--bind /nib/store/aaa-input="$TEST_ROOT/store/aaa-input" --bind /nib/store/bbb-link="$TEST_ROOT/store/bbb-link")
run_ok "root listing" sb $SLOT "${INPUTS[@]}" -- /bin/sh -c 'ls /; echo; ls /nib/store; echo; ls /dev'
is "root holds only the skeleton" "$(echo $OUT | cut -d' ' -f1-7)" "bin build dev etc nib proc tmp"
like "store holds only the inputs" "$(echo $OUT)" "proc tmp aaa-input bbb-link fd"
like "minimal /dev" "$(echo $OUT)" "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero"
run_ok "host files are invisible" sb $SLOT -- /bin/sh -c "test ! -e /etc/shadow && test ! -e '$TEST_ROOT' && test ! -e /usr && test ! -e /home && echo invisible"
is "no /etc/shadow, no test root, no /usr" "$OUT" "invisible"
with_umask_077() { (umask 077 && "$@"); }
run_ok "generated /etc, whatever the caller's umask" with_umask_077 sb $SLOT -- /bin/sh -c 'stat -c %a /etc/passwd /tmp; cat /etc/passwd /etc/group /etc/hosts'
like "modes are Nix's" "$(echo $OUT)" "^644 1777 "
like "passwd has nixbld" "$OUT" "^nixbld:x:1000:100:Nix build user:/build:/noshell$"
like "hosts has localhost" "$OUT" "^127.0.0.1 localhost$"
run_ok "inputs readable" sb $SLOT "${INPUTS[@]}" -- /bin/sh -c 'cat /nib/store/aaa-input/file; readlink /nib/store/bbb-link'
is "input content and symlink input" "$OUT" "$(printf 'data\naaa-input')"
run_fails "inputs are read-only" 1 sb $SLOT "${INPUTS[@]}" -- /bin/sh -c 'echo x >/nib/store/aaa-input/file'
like "write to an input fails" "$ERR" "Read-only file system"
run_ok "inputs cannot be remounted" sb $SLOT "${INPUTS[@]}" -- /bin/sh -c 'mount -o remount,bind,rw /nib/store/aaa-input 2>/dev/null; echo $?; unshare -U -r -m /bin/sh -c "mount -o remount,bind,rw /nib/store/aaa-input 2>/dev/null; echo \$?"'
is "neither directly nor from a nested user namespace (locked)" "$(echo $OUT)" "1 1"
run_fails "the root is read-only" 1 sb $SLOT -- /bin/sh -c 'echo x >>/etc/passwd'
run_ok "/build and /tmp are writable" sb $SLOT -- /bin/sh -c 'echo a >/build/a && echo b >/tmp/b && stat -c "%a %U" /build /tmp'
is "/build 700 nixbld, /tmp 1777" "$OUT" "$(printf '700 nixbld\n1777 nixbld')"
run_ok "outputs land in the output directory" sb $SLOT --output-dir "$TEST_ROOT/out" -- /bin/sh -c 'echo built >/nib/store/ccc-out'
is "output owned by the slot's first ID" "$(stat -c '%u %s' "$TEST_ROOT/out/ccc-out")" "$FIRST 6"

# The syscall filter.
run_fails "chmod u+s fails" 1 sb $SLOT -- /bin/sh -c 'touch f && chmod u+s f'
like "with EPERM" "$ERR" "Operation not permitted"
run_ok "setid modes and xattrs" sb $SLOT -- /bin/sh -c 'touch f; for c in "chmod f 2755" "fchmodat2 f 4755" "chmod f 755" "setxattr f" "getxattr f" "listxattr f" "removexattr f" "setxattrat f" "getxattrat f" "listxattrat f" "removexattrat f"; do /bin/probe $c; done; true'
is "EPERM for setid, ENOTSUP (EOPNOTSUPP) for every xattr call" "$(echo $OUT)" \
	"EPERM EPERM ok EOPNOTSUPP EOPNOTSUPP EOPNOTSUPP EOPNOTSUPP EOPNOTSUPP EOPNOTSUPP EOPNOTSUPP EOPNOTSUPP"

# The network: a server on the host's loopback.
PORT=$((20000 + $$ % 20000))
"$BUSYBOX" nc -ll -p $PORT -e "$BUSYBOX" echo hello-from-host &
SERVER=$!
at_exit "kill $SERVER"
for _ in $(seq 50); do "$PROBE" connect 127.0.0.1 $PORT >/dev/null && break; sleep 0.1; done
run_fails "no network in an ordinary build" 1 sb $SLOT -- /bin/probe connect 127.0.0.1 $PORT
is "connection refused on the build's own loopback" "$OUT" "ECONNREFUSED"
run_ok "a fixed-output build reaches the host" sb $SLOT --network -- /bin/sh -c "/bin/probe connect 127.0.0.1 $PORT; ls /etc"
like "connected, with the host's resolver files" "$(echo $OUT)" "^ok .*nsswitch.conf.*resolv.conf"

# Errors are clear and nothing runs unsandboxed.
run_fails "a missing builder" 125 sb $SLOT -- /no/such/builder
like "is named" "$ERR" "cannot execute builder '/no/such/builder': No such file or directory"
run_fails "a setup failure" 125 "$SANDBOX_RUN" --uid "$FIRST" --root-dir /nonexistent-nib-root --bind /bin/sh=$BUSYBOX -- /bin/sh -c true
like "names the step" "$ERR" "sandbox setup failed at 'mounting the root tmpfs on /nonexistent-nib-root': No such file or directory"
run_fails "the builder's exit status passes through" 3 sb $SLOT -- /bin/sh -c 'exit 3'

done_testing
