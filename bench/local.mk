EXTRA_DIST += %reldir%/README.md
EXTRA_DIST += %reldir%/nar-bench.sh
