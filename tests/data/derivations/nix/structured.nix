# __structuredAttrs: the attributes go into env.__json.
derivation {
  name = "structured";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "true" ];
  __structuredAttrs = true;
  outputs = [ "out" "dev" ];
  nested = { list = [ 1 2 "three" ]; str = "q\"uote\\"; flag = true; };
}
