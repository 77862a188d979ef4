# Content-addressed (floating) derivation and a dependent (deferred output);
# needs the experimental feature ca-derivations.
let
  ca = derivation {
    name = "ca-floating";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" "echo ca > $out" ];
    __contentAddressed = true;
    outputHashMode = "recursive";
    outputHashAlgo = "sha256";
  };
in derivation {
  name = "ca-dependent";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "cat ${ca} > $out" ];
}
