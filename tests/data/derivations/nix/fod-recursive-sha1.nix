# Fixed-output derivation: outputHashMode = recursive, algorithm sha1.
derivation {
  name = "fod-recursive-sha1";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "touch $out" ];
  outputHashMode = "recursive";
  outputHashAlgo = "sha1";
  outputHash = "d6a2f655dd4f065a52d876d1c3ff61311302a5f6";
}
