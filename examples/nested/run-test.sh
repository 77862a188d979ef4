# A distributed integration test inside one build.
#
# This derivation requires the uid-range feature, so the builder is root of a
# user namespace holding the slot's 262144 IDs, with its own network
# namespace and a delegated cgroup.  It starts three containers with
# nib-container: a server and two clients, each with its own user, PID, mount
# and network namespace and its own 65536-ID sub-range, connected through a
# bridge inside the build's network namespace.  The clients send a message
# over TCP, the server answers; each node's view goes into the output, and
# the build fails if any node fails.

C=/bin/nib-container
[ -x $C ] || { echo "no $C: build with --option extra-sandbox-paths /bin/nib-container=PATH"; exit 1; }
mkdir -p $out/server

# The server writes its record itself, as root of its container: the file
# belongs to ID 65536 of the build (accepted, and canonicalised to root).
chown 65536:65536 $out/server
$C --name server --map 0:65536:65536 --net br0 --bridge-addr 10.0.0.254/24 \
	--addr 10.0.0.1/24 --proc -- /bin/sh -c '
	echo "server: uid $(id -u), uid_map $(echo $(cat /proc/self/uid_map)), pid $$"
	for i in 1 2; do
		nc -l -p 7000 -e /bin/sh -c "read line; echo \"\$line\" >> '"$out"'/server/received; echo ack:\$line"
	done
	echo "server: done"' > /build/server.log 2>&1 &
server=$!

for n in 1 2; do
	$C --name client$n --map 0:$((65536 * (n + 1))):65536 --net br0 --addr 10.0.0.$((n + 1))/24 -- \
		/bin/sh -c '
		echo "$(hostname): uid $(id -u), uid_map $(echo $(cat /proc/self/uid_map)), address $(ip -o -4 addr show eth0 | grep -o "inet [0-9./]*")"
		# The server may not listen yet: retry until it answers.
		i=0
		while :; do
			reply=$(echo "'"$message"' from $(hostname)" | nc -w 2 10.0.0.1 7000 2>/dev/null) || true
			case $reply in ack:*) echo "$(hostname) got: $reply"; exit 0 ;; esac
			i=$((i + 1)); [ $i -lt 100 ] || { echo "$(hostname): no answer"; exit 1; }
			sleep 0.1
		done' > /build/client$n.log 2>&1 &
	eval client$n=\$!
done

status=0
for p in $client1 $client2 $server; do wait $p || status=1; done
for node in server client1 client2; do
	sed "s/^/$node| /" /build/$node.log
	cp /build/$node.log $out/$node.log
done
sort $out/server/received > $out/received
grep -q "from client1" $out/received && grep -q "from client2" $out/received || status=1
if [ $status = 0 ]; then echo PASS > $out/result; else echo FAIL; exit 1; fi
echo "the server received:"
cat $out/received
