# build-lib.sh - helpers for the `nib build` tests; source after lib.sh.
#
# The store is /nib/store physically under $TEST_ROOT/root (store-root), so
# store paths are the default ones while nothing outside TEST_ROOT is
# touched.  build_setup gives each test run its own range of 4 UID slots,
# one of 700 blocks above 2^31 (clear of the default pool, the sandbox and
# UID-pool tests): UID ranges and the build cgroups named after them are
# host-wide, and concurrent test files (or two checkouts testing on one
# machine) must not share them.  A random pick alone did not ensure that
# (with three suites of `make -j2 check` in CI, two of some 90 concurrent
# pairs sharing a block is not rare, and then each daemon's reclaim kills
# the other's builders), so the block is also locked (id_range_lock).
# /bin/sh in the sandbox is Debian's busybox-static.

: "${abs_top_builddir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${abs_top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
PROBE="$abs_top_builddir/tests/helpers/syscall-probe"
NIB_CONTAINER="$abs_top_builddir/libexec/nib-container"
BUSYBOX=/bin/busybox
EXAMPLES="$abs_top_srcdir/examples"
IDS_PER_SLOT=262144

# id_range_lock N: take one of the 700 blocks of 4 UID slots for this test
# run and set FIRST_ID to its first ID.  The block is locked host-wide
# (flock on a file under /tmp/nib-test-id-blocks, held by a descriptor of
# this shell, and so by its children, until they all exit): starting at a
# random block, the first one no other test run holds.
ID_BLOCK_DIR=/tmp/nib-test-id-blocks
id_range_lock() {
	local start=$(((RANDOM + $1 * 97) % 700)) k b
	mkdir -p "$ID_BLOCK_DIR"
	for k in $(seq 0 699); do
		b=$(((start + k) % 700))
		exec {ID_BLOCK_FD}>>"$ID_BLOCK_DIR/$b"
		if flock -n "$ID_BLOCK_FD"; then
			FIRST_ID=$((2147483648 + b * 4 * IDS_PER_SLOT))
			return 0
		fi
		exec {ID_BLOCK_FD}>&-
	done
	echo "no free block of UID slots under $ID_BLOCK_DIR" >&2
	exit 1
}

# id_range_conf N: pick this run's 4 UID slots (id_range_lock) and print
# the settings for them.  Every test that starts a daemon or builds needs
# its own: a daemon reclaims (kills the processes of) every slot of its
# range that its own state directory does not show as taken.
id_range_conf() {
	id_range_lock "$1"
	cat <<CONF
start-id = $FIRST_ID
id-count = $((4 * IDS_PER_SLOT))
ids-per-build = $IDS_PER_SLOT
CONF
}

# build_setup N: settings for test file N, then check that builds work here.
build_setup() {
	local n=$1
	require_root
	[ -x "$BUSYBOX" ] || skip_all "needs $BUSYBOX (busybox-static)"
	export NIB_STORE_DIR=/nib/store
	export NIB_STORE_ROOT="$TEST_ROOT/root"
	id_range_conf "$n" >"$NIB_CONF_DIR/nib.conf"
	cat >>"$NIB_CONF_DIR/nib.conf" <<CONF
sandbox-paths = /bin/sh=$BUSYBOX
fsync-metadata = false
CONF
	chmod 644 "$NIB_CONF_DIR/nib.conf"
	SYSTEM=$("$NIB" show-config system)
	STORE="$TEST_ROOT/root/nib/store"
	mkdrv "$TEST_ROOT/probe.json" probe 'echo ok > $out'
	if ! "$NIB" build "$TEST_ROOT/probe.json" >/dev/null 2>"$TEST_ROOT/.probe"; then
		if grep -q "cannot build in a sandbox" "$TEST_ROOT/.probe"; then
			skip_all "no sandbox here: $(cat "$TEST_ROOT/.probe")"
		fi
		echo "Bail out! a trivial build fails: $(cat "$TEST_ROOT/.probe")"
		exit 1
	fi
}

json_str() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\n'/\\n}
	s=${s//$'\t'/\\t}
	printf '"%s"' "$s"
}

# mkdrv FILE NAME SCRIPT [OPTION...]: write a JSON derivation whose builder
# runs SCRIPT with /bin/sh -c.  Options:
#   --out NAME         an output (repeatable; default: out)
#   --env KEY=VALUE    an environment variable (repeatable)
#   --input REF[:OUT]  an input derivation file, relative to FILE's directory
#                      ("./a.json"; output OUT, default out), available in env
#                      as $in0, $in1, ... in order
#   --src REF          an input source file, relative to FILE's directory
#   --feature F        a requiredSystemFeatures entry (repeatable)
#   --fixed ALGO:HEX   a fixed output "out" (flat); --fixed-r for recursive
#   --builder PATH     another builder (SCRIPT becomes its only argument)
#   --system S         another system
mkdrv() {
	local file=$1 name=$2 script=$3
	shift 3
	local outs=() envs=() inputs=() srcs=() features=() fixed="" fixed_mode="" builder=/bin/sh
	local system=$SYSTEM
	while [ $# -gt 0 ]; do
		case $1 in
		--out) outs+=("$2"); shift 2 ;;
		--env) envs+=("$2"); shift 2 ;;
		--input) inputs+=("$2"); shift 2 ;;
		--src) srcs+=("$2"); shift 2 ;;
		--feature) features+=("$2"); shift 2 ;;
		--fixed) fixed=$2; fixed_mode=""; shift 2 ;;
		--fixed-r) fixed=$2; fixed_mode="r:"; shift 2 ;;
		--builder) builder=$2; shift 2 ;;
		--system) system=$2; shift 2 ;;
		*) echo "mkdrv: unknown option $1" >&2; return 2 ;;
		esac
	done
	[ ${#outs[@]} -gt 0 ] || outs=(out)
	local j="{\"name\": $(json_str "$name"), \"system\": $(json_str "$system"), \"builder\": $(json_str "$builder"), "
	if [ "$builder" = /bin/sh ]; then
		j+="\"args\": [\"-c\", $(json_str "$script")], "
	else
		j+="\"args\": [$(json_str "$script")], "
	fi
	j+="\"outputs\": {"
	local sep="" o
	for o in "${outs[@]}"; do
		if [ -n "$fixed" ]; then
			j+="$sep\"$o\": {\"hashAlgo\": \"$fixed_mode${fixed%%:*}\", \"hash\": \"${fixed#*:}\"}"
		else
			j+="$sep\"$o\": {}"
		fi
		sep=", "
	done
	j+="}, \"inputDrvs\": {"
	sep=""
	local i ref out k=0 env_extra=()
	for i in "${inputs[@]}"; do
		ref=${i%%:*}
		out=out
		[ "$ref" != "$i" ] && out=${i#*:}
		j+="$sep$(json_str "$ref"): [\"$out\"]"
		env_extra+=("in$k=$ref!$out")
		k=$((k + 1))
		sep=", "
	done
	j+="}, \"inputSrcs\": ["
	sep=""
	for i in "${srcs[@]}"; do
		j+="$sep$(json_str "$i")"
		sep=", "
	done
	j+="], \"env\": {"
	sep=""
	for i in "${envs[@]}" "${env_extra[@]}"; do
		j+="$sep$(json_str "${i%%=*}"): $(json_str "${i#*=}")"
		sep=", "
	done
	if [ ${#features[@]} -gt 0 ]; then
		j+="$sep\"requiredSystemFeatures\": $(json_str "${features[*]}")"
	fi
	j+="}}"
	printf '%s\n' "$j" >"$file"
}

# Processes whose real, effective, saved or filesystem UID lies in [FIRST, FIRST+COUNT).
range_processes() {
	local first=$1 count=$2 f pid
	for f in /proc/[0-9]*/status; do
		pid=${f#/proc/}
		pid=${pid%/status}
		awk -v lo="$first" -v hi=$((first + count)) -v pid="$pid" '
			/^Uid:/ { for (i = 2; i <= 5; i++) if ($i >= lo && $i < hi) { print pid; exit } }' \
			"$f" 2>/dev/null
	done
}

# The v2 cgroup directory nib's build cgroups are created in (this process's own).
build_cgroup_parent() {
	local mnt path
	mnt=$(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } break } }' \
		/proc/self/mountinfo)
	path=$(sed -n 's/^0:://p' /proc/self/cgroup)
	[ -n "$mnt" ] && echo "$mnt${path%/}"
}

# Nothing of the test's slots is left: no process, no cgroup, no build or output directory.
check_no_leftovers() {
	local desc=$1 procs cg parent
	procs=$(range_processes "$FIRST_ID" $((4 * IDS_PER_SLOT)))
	is "$desc: no process of the test's UID range is left" "$procs" ""
	parent=$(build_cgroup_parent)
	cg=""
	if [ -n "$parent" ]; then
		cg=$(find "$parent" -maxdepth 1 -name "nib-build-*" 2>/dev/null | while read -r d; do
			id=${d##*/nib-build-}
			if [ "$id" -ge "$FIRST_ID" ] 2>/dev/null && [ "$id" -lt $((FIRST_ID + 4 * IDS_PER_SLOT)) ]; then
				echo "$d"
			fi
		done)
	fi
	is "$desc: no build cgroup is left" "$cg" ""
	# A slot keeps its (empty) workspace and staging directory between builds.
	is "$desc: no build directory is left" \
		"$(find "$NIB_STATE_DIR/builds" -mindepth 1 -maxdepth 1 ! -name '.*' ! -name 'nib-failed-*' \
			! \( -type d -name 'nib-build-slot-*' \) 2>/dev/null)" ""
	is "$desc: the slots' workspaces are empty" \
		"$(find "$NIB_STATE_DIR/builds" -mindepth 2 -path '*/nib-build-slot-*/*' 2>/dev/null)" ""
	is "$desc: no output is left in the staging directories" \
		"$(find "$STORE/.nib-builds" -mindepth 1 -maxdepth 1 ! \( -type d -name 'slot-*' \) 2>/dev/null
		find "$STORE/.nib-builds" -mindepth 2 2>/dev/null)" ""
	like "$desc: no slot is busy or held" "$("$NIB" slots 2>&1)" "0 busy, 0 held"
}
