# One link of the chain: read the previous number, write the next one, and
# keep a link to the previous link (a reference nib finds by scanning).
n=$(cat "$prev/value")
echo "step: $prev holds $n"
mkdir "$out"
echo $((n + 1)) > "$out/value"
ln -s "$prev" "$out/prev"
