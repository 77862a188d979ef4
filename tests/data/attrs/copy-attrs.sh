# Builder of the structured-attrs vectors: copies .attrs.json and .attrs.sh
# into output "out" and creates the other outputs empty.  busybox sh has no
# arrays, so the output paths are read from .attrs.json with sed.
for o in $(sed -n 's/.*"outputs":{\([^}]*\)}.*/\1/p' .attrs.json | tr ',' '\n' | sed 's/^"\([^"]*\)":.*/\1/'); do
	p=$(sed -n "s/.*\"outputs\":{[^}]*\"$o\":\"\([^\"]*\)\".*/\1/p" .attrs.json)
	mkdir "$p"
	if [ "$o" = out ]; then
		cp .attrs.json .attrs.sh "$p/"
		echo "$NIX_ATTRS_JSON_FILE $NIX_ATTRS_SH_FILE" >"$p/vars"
	fi
done
true
