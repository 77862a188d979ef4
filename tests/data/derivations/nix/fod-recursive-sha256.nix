# Fixed-output derivation: outputHashMode = recursive, algorithm sha256.
derivation {
  name = "fod-recursive-sha256";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "touch $out" ];
  outputHashMode = "recursive";
  outputHashAlgo = "sha256";
  outputHash = "sha256-LKC4zplvhl2zdhm/6RAjVZMFqtgVgEL8bdsO8dQ8W2c=";
}
