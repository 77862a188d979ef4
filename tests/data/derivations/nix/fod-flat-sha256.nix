# Fixed-output derivation: outputHashMode = flat, algorithm sha256.
derivation {
  name = "fod-flat-sha256";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "touch $out" ];
  outputHashMode = "flat";
  outputHashAlgo = "sha256";
  outputHash = "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73";
}
