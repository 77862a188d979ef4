# One output, plain strings.
derivation {
  name = "simple";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "echo hello > $out" ];
}
