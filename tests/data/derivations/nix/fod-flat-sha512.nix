# Fixed-output derivation: outputHashMode = flat, algorithm sha512.
derivation {
  name = "fod-flat-sha512";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "touch $out" ];
  outputHashMode = "flat";
  outputHashAlgo = "sha512";
  outputHash = "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==";
}
