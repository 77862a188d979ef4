#!/usr/bin/env bash
# Isolation of `nib build`: each probe is a derivation whose builder fails if it
# can escape (or, for the fixed-output one, if it cannot reach the network).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/build-lib.sh"

build_setup 1
[ -x "$PROBE" ] || skip_all "syscall-probe not built"
plan 25

with_probe=(--option extra-sandbox-paths "/bin/probe=$PROBE")

mkdrv "$TEST_ROOT/id.json" id-probe '
[ "$(id -u)" = 1000 ] && [ "$(id -g)" = 100 ] || { id; exit 1; }
[ "$(whoami)" = nixbld ] || exit 1
id > $out'
run_ok "the builder is uid 1000, gid 100" "$NIB" build "$TEST_ROOT/id.json"
is "id says so" "$(cat "$TEST_ROOT/root$OUT")" "uid=1000(nixbld) gid=100(nixbld)"

mkdrv "$TEST_ROOT/proc.json" proc-probe '
sleep 0.1 &
n=0
for p in /proc/[0-9]*; do n=$((n + 1)); echo "${p#/proc/} $(cat $p/comm)"; done > /build/ps
cat /build/ps
[ "$(cat /proc/1/comm)" = sh ] || exit 1
[ $n -le 4 ] || exit 1
cp /build/ps $out'
run_ok "/proc shows only the build's processes" "$NIB" build "$TEST_ROOT/proc.json"
like "PID 1 is the builder" "$(head -1 "$TEST_ROOT/root$OUT")" "^1 sh$"

# A web server on the host's loopback: sandboxed builds must not reach it,
# fixed-output builds must.
mkdir -p "$TEST_ROOT/www"
echo "fetched over the network" >"$TEST_ROOT/www/payload"
port=""
for try in 1 2 3 4 5; do
	p=$((20000 + RANDOM % 30000))
	"$BUSYBOX" httpd -f -p "127.0.0.1:$p" -h "$TEST_ROOT/www" 2>/dev/null &
	httpd=$!
	sleep 0.3
	if kill -0 "$httpd" 2>/dev/null; then
		port=$p
		at_exit "kill $httpd"
		break
	fi
done
if [ -n "$port" ]; then
	mkdrv "$TEST_ROOT/net.json" net-probe "
if wget -q -O /build/got http://127.0.0.1:$port/payload; then echo reached the host; exit 1; fi
ip -o link | grep -v ': lo:' && exit 1
echo isolated > \$out"
	run_ok "a sandboxed build cannot reach a server on the host's loopback" "$NIB" build "$TEST_ROOT/net.json"
	want=$(sha256sum "$TEST_ROOT/www/payload" | cut -d' ' -f1)
	mkdrv "$TEST_ROOT/fetch.json" fetched.txt "wget -q -O \$out http://127.0.0.1:$port/payload" \
		--fixed "sha256:$want"
	run_ok "a fixed-output build reaches it" "$NIB" build "$TEST_ROOT/fetch.json"
	is "and gets the payload" "$(cat "$TEST_ROOT/root$OUT")" "fetched over the network"
else
	ok "# SKIP no free port for the web server"
	ok "# SKIP no free port for the web server"
	ok "# SKIP no free port for the web server"
fi

mkdrv "$TEST_ROOT/suid.json" suid-probe '
touch /build/f
if chmod u+s /build/f; then echo setuid allowed; exit 1; fi
if chmod g+s /build/f; then echo setgid allowed; exit 1; fi
chmod 755 /build/f || exit 1
r=$(/bin/probe setxattr /build/f user.x 1); case $r in ENOTSUP|EOPNOTSUPP) ;; *) echo "setxattr: $r"; exit 1;; esac
r=$(/bin/probe getxattr /build/f user.x); case $r in ENOTSUP|EOPNOTSUPP) ;; *) echo "getxattr: $r"; exit 1;; esac
echo filtered > $out'
run_ok "chmod u+s and setxattr fail" "$NIB" "${with_probe[@]}" build "$TEST_ROOT/suid.json"

mkdrv "$TEST_ROOT/dep.json" dep 'mkdir $out; echo data > $out/file'
mkdrv "$TEST_ROOT/ro.json" ro-probe '
cat $in0/file || exit 1
if touch $in0/new 2>/dev/null; then echo input writable; exit 1; fi
if rm -f $in0/file 2>/dev/null && [ ! -e $in0/file ]; then echo input removable; exit 1; fi
if chmod 777 $in0 2>/dev/null; then echo input chmod; exit 1; fi
if mkdir '"$STORE"' 2>/dev/null; then :; fi
echo ok > $out' --input ./dep.json
run_ok "inputs are read-only" "$NIB" build "$TEST_ROOT/ro.json"
is "the input is unchanged" "$(cat "$STORE"/*-dep/file)" data

secret=$("$NIB" add "$TEST_ROOT/www/payload")
mkdrv "$TEST_ROOT/hidden.json" hidden-probe "
for f in /etc/shadow /root $TEST_ROOT /work /usr /lib /var /nib/var '$secret' /nib/store/*-hello; do
	if [ -e \"\$f\" ]; then echo \"visible: \$f\"; exit 1; fi
done
ls / > \$out"
run_ok "host files outside the closure are invisible" "$NIB" build "$TEST_ROOT/hidden.json"
is "the root holds only the sandbox's directories" "$(tr '\n' ' ' <"$TEST_ROOT/root$OUT")" "bin build dev etc nib proc tmp "
run_ok "the unrelated store path does exist on the host" test -e "$TEST_ROOT/root$secret"

# Two builds at once: each in its own slot, with disjoint ID ranges.
for k in 1 2; do
	mkdrv "$TEST_ROOT/par$k.json" "par$k" 'sleep 1; cat /proc/self/uid_map > $out'
done
run_ok "two builds at once" "$NIB" build -j 2 --json "$TEST_ROOT/par1.json" "$TEST_ROOT/par2.json"
starts=($(grep -o '"startTime":[0-9.]*' <<<"$OUT" | cut -d: -f2))
stops=($(grep -o '"stopTime":[0-9.]*' <<<"$OUT" | cut -d: -f2))
overlap=$(awk -v a="${starts[0]}" -v b="${stops[0]}" -v c="${starts[1]}" -v d="${stops[1]}" \
	'BEGIN { print (a < d && c < b) ? "yes" : "no" }')
is "they ran at the same time" "$overlap" yes
firsts=($(grep -o '"uidRange":{"first":[0-9]*' <<<"$OUT" | grep -o '[0-9]*$'))
is "two UID ranges" "${#firsts[@]}" 2
diff=$((firsts[0] - firsts[1]))
[ $diff -lt 0 ] && diff=$((-diff))
is "they are disjoint" "$([ $diff -ge $IDS_PER_SLOT ] && echo yes)" yes
map1=$(awk '{print $2}' "$STORE"/*-par1)
map2=$(awk '{print $2}' "$STORE"/*-par2)
is "each builder was mapped to its own first ID" "$(printf '%s\n' "$map1" "$map2" | sort -u | wc -l)" 2
like "one ID mapped" "$(cat "$STORE"/*-par1)" "^ *1000 +[0-9]+ +1$"

check_no_leftovers "after the isolation probes"
done_testing
