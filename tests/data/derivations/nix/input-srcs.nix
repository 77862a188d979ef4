# Local sources become input sources: a file, a directory, a builtins.toFile
# text (with a reference to another source) and a builtins.path with a name.
let
  script = builtins.toFile "script.sh" ''
    #!/bin/sh
    cat ${../src/hello.txt}
  '';
in derivation {
  name = "input-srcs";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ script ];
  dir = ../src/srcdir;
  file = ../src/hello.txt;
  named = builtins.path { path = ../src/srcdir; name = "named-src"; };
}
