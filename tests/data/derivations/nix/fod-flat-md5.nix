# Fixed-output derivation: outputHashMode = flat, algorithm md5.
derivation {
  name = "fod-flat-md5";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "touch $out" ];
  outputHashMode = "flat";
  outputHashAlgo = "md5";
  outputHash = "56cxf1akjnr3sk904c4rhy9m4x";
}
