# Fixed-output derivation: outputHashMode = flat, algorithm sha1.
derivation {
  name = "fod-flat-sha1";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "touch $out" ];
  outputHashMode = "flat";
  outputHashAlgo = "sha1";
  outputHash = "sha1:f8h5qy03cm8knz7xmamq8a9aqn7avxhi";
}
