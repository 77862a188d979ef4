# A chain of input derivations using several outputs of their inputs.
let
  base = derivation {
    name = "base";
    system = "x86_64-linux";
    builder = "/bin/sh";
    outputs = [ "out" "dev" ];
    args = [ "-c" "mkdir $out $dev" ];
  };
  middle = derivation {
    name = "middle";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" "echo ${base} ${base.dev} > $out" ];
  };
in derivation {
  name = "chain-top";
  system = "x86_64-linux";
  builder = "${base}/bin/sh";
  args = [ "-c" "cat ${middle} ${base.dev}/x" ];
  deps = [ middle base.dev ];
}
