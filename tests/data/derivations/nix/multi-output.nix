# Several outputs, given out of order: the ATerm sorts them, env.outputs keeps the order.
derivation {
  name = "multi-output-1.0";
  system = "x86_64-linux";
  builder = "/bin/sh";
  outputs = [ "out" "lib" "dev" "doc" ];
  args = [ "-c" "mkdir $out $lib $dev $doc" ];
}
