EXTRA_DIST += %reldir%/README.md
