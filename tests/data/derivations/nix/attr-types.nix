# How Nix turns attribute values into env strings: lists are joined by
# spaces, true is "1", false and null are "", numbers print in decimal.
derivation {
  name = "attr-types";
  system = "aarch64-linux";
  builder = "/bin/sh";
  args = [ ];
  list = [ "a" "b c" 3 true ];
  yes = true;
  no = false;
  nothing = null;
  int = 42;
  negative = -7;
  float = 1.5;
  passAsFile = [ "big" ];
  big = "a big value";
  requiredSystemFeatures = [ "kvm" "big-parallel" ];
  preferLocalBuild = true;
}
