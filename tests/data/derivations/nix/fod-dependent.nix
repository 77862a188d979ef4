# Input-addressed derivations depending on fixed-output ones: the FOD is
# replaced by its fixed hash in the dependents' hash modulo.
let
  src = import ./fod-recursive-sha256.nix;
  src2 = import ./fod-flat-sha1.nix;
  unpack = derivation {
    name = "unpack";
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" "cp -r ${src} $out" ];
  };
in derivation {
  name = "fod-dependent";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "cat ${unpack} ${src2} > $out" ];
}
