# Every character allowed in a store path name.
derivation {
  name = "a+b-1.0_x?y=z";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "touch $out" ];
  outputs = [ "out" "bin" ];
}
