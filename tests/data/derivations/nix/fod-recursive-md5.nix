# Fixed-output derivation: outputHashMode = recursive, algorithm md5.
derivation {
  name = "fod-recursive-md5";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "touch $out" ];
  outputHashMode = "recursive";
  outputHashAlgo = "md5";
  outputHash = "441365ea0058332d3527921913dc8bf2";
}
