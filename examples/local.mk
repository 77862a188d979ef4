EXTRA_DIST += %reldir%/README.md \
	%reldir%/hello.json %reldir%/multi-output.json %reldir%/fixed-output.json \
	%reldir%/chain/one.json %reldir%/chain/two.json %reldir%/chain/three.json \
	%reldir%/chain/step.sh %reldir%/nested/test.json %reldir%/nested/run-test.sh
