#!/usr/bin/env bash
# Cleanup and limits: nothing of a build survives it (daemons, fork bombs),
# cgroup limits are enforced, accounting is reported, cgroups are removed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sandbox-lib.sh"

require_sandbox
plan 21

SLOT=104
FIRST=$(slot_first_id $SLOT)
CG_DIR=$(host_v2_cgroup_dir)
DAEMON='setsid /bin/sh -c "sleep 1000 & sleep 1000" & sleep 0.2; echo parent-exits'

run_ok "a double-forking setsid daemon" sb $SLOT --check-leftovers -- /bin/sh -c "$DAEMON"
is "leaves nothing behind (PID namespace teardown)" "$OUT" "parent-exits"
run_fails "a builder killed on timeout" 137 sb $SLOT --check-leftovers --timeout 1 -- /bin/sh -c 'sleep 1000 & sleep 1000'
is "takes its children with it" "$ERR" "sandbox-run: timed out after 1 s"

if [ -z "$CG_DIR" ] && ! grep -q ' - cgroup .*pids' /proc/self/mountinfo; then
	for _ in $(seq 17); do ok "# SKIP no usable cgroup hierarchy"; done
	done_testing
fi

CG=nib-t0302-$$
run_ok "the same daemon in a cgroup" sb $SLOT --cgroup $CG --check-leftovers --stats -- /bin/sh -c "$DAEMON"
like "CPU time is accounted" "$ERR" "stats: cpu-user-usec=[0-9]+ cpu-system-usec=[0-9]+"
if [ -n "$CG_DIR" ]; then
	is "the build cgroup is removed" "$(ls "$CG_DIR" | grep -c "^$CG\$")" "0"
else
	ok "# SKIP no cgroup v2"
fi

# A fork bomb under pids-max: it hits the limit, and the build still ends
# cleanly.  The timer is forked before the bomb: afterwards the builder itself
# could not fork either (wait and echo are shell builtins).
BOMB='sleep 1 & t=$!; b() { b & b & wait; }; b 2>/dev/null & wait $t; echo bombed'
run_ok "a fork bomb under build-pids-max" sb $SLOT --cgroup $CG --pids-max 64 --check-leftovers --stats -- /bin/sh -c "$BOMB"
is "the builder itself finished" "$OUT" "bombed"
like "forks were refused" "$ERR" "pids-max-hits=[1-9]"

# A memory hog under memory-max is killed by the kernel.
HOG='x=$(head -c 400000000 /dev/zero | tr "\0" a); echo survived ${#x}'
run_fails "a memory hog under build-memory-max" 137 sb $SLOT --cgroup $CG --memory-max 48M --stats -- /bin/sh -c "$HOG"
like "is killed by the OOM killer" "$ERR" "oom-kills=[1-9]"
like "its peak memory is the limit or below" "$ERR" "memory-peak=([1-9][0-9]{6}|50[0-3][0-9]{5}) "
run_ok "a build under the limit" sb $SLOT --cgroup $CG --memory-max 48M --stats -- /bin/sh -c 'x=$(head -c 1000000 /dev/zero | tr "\0" a); echo ${#x}'
is "runs normally" "$OUT" "1000000"
like "and reports its peak memory" "$ERR" "memory-peak=[1-9][0-9]+"

# Limits that cannot be enforced are errors.
run_fails "a bogus cgroup name" 125 sb $SLOT --cgroup ../escape -- /bin/sh -c true
like "is refused" "$ERR" "invalid cgroup name '../escape'"
run_ok "the slot's IDs are free again" bash -c "ps -eo uid= | awk -v f=$FIRST '\$1 >= f && \$1 < f + 262144' | wc -l"
is "no process of the range is left" "$OUT" "0"
run_ok "builds in a row reuse the cgroup name" sb $SLOT --cgroup $CG -- /bin/sh -c true

done_testing
