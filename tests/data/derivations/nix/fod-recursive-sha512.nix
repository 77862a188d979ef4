# Fixed-output derivation: outputHashMode = recursive, algorithm sha512.
derivation {
  name = "fod-recursive-sha512";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "touch $out" ];
  outputHashMode = "recursive";
  outputHashAlgo = "sha512";
  outputHash = "1igw6jma2fig1c5x21kji2p42s4z47c4y4li0mhvlwcngg44qvc32r3i7d44gmlz2br4ifmni97z4parhgkml8mh612smj9ii2d9ax4";
}
