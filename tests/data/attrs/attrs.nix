# Derivations for nib's structured-attributes, exportReferencesGraph,
# impureEnvVars and output-check tests (see gen.sh).
let
  system = "x86_64-linux";
  builder = "/bin/sh";
  copy = ./copy-attrs.sh;
  dep = derivation {
    name = "attrs-dep";
    inherit system builder;
    args = [ "-c" "echo ${./hello.txt} > $out" ];
  };
in
{
  # Every JSON type, and names bash cannot hold.
  types = derivation {
    name = "attrs-types";
    inherit system builder;
    args = [ copy ];
    __structuredAttrs = true;
    outputs = [ "out" "dev" ];
    str = "it's a \"test\" $x \\ ` \n newline\ttab";
    empty = "";
    int = 42;
    neg = -7;
    float = 1.5;
    intfloat = 2.0;
    t = true;
    f = false;
    n = null;
    list = [ "a" "b c" 3 true false null "'" ];
    emptyList = [ ];
    nestedList = [ [ 1 ] "x" ];
    attrs = { k = "v"; "we ird" = "x'y"; num = 1; b = true; z = null; };
    emptyAttrs = { };
    nestedAttrs = { a = { b = 1; }; };
    mixedAttrs = { a = 1; l = [ 1 ]; };
    "bad-name" = "skipped";
    "1digit" = "skipped";
    _under_score9 = "kept";
    "ünicode" = "skipped";
    utf8 = "grüße ✓";
    passAsFile = [ "str" ];
  };

  # exportReferencesGraph with structured attributes: a derivation output
  # and a source, in a list or alone (Nix 2.8 does not take nested lists).
  graph = derivation {
    name = "attrs-graph";
    inherit system builder;
    args = [ copy ];
    __structuredAttrs = true;
    exportReferencesGraph = {
      deps = [ dep ];
      src = ./hello.txt;
      both = [ dep ./hello.txt ];
    };
  };

  # The classic form: files in the build directory.
  graph-classic = derivation {
    name = "attrs-graph-classic";
    inherit system builder;
    args = [ "-c" "mkdir $out && cp deps src $out/" ];
    exportReferencesGraph = [ "deps" dep "src" ./hello.txt ];
  };

  # Output checks with structured attributes: out refers to dep (through
  # the copy of .attrs.json), which outputChecks forbids.
  checks-refs = derivation {
    name = "attrs-checks-refs";
    inherit system builder;
    args = [ copy ];
    __structuredAttrs = true;
    outputChecks.out.disallowedReferences = [ dep ];
  };
  checks-size = derivation {
    name = "attrs-checks-size";
    inherit system builder;
    args = [ copy ];
    __structuredAttrs = true;
    outputChecks.out.maxSize = 64;
  };

  # impureEnvVars of a fixed-output derivation (the classic form and the
  # structured one): the build succeeds only when NIB_TEST_IMPURE is "yes".
  impure = derivation {
    name = "attrs-impure";
    inherit system builder;
    args = [ "-c" ''[ "$NIB_TEST_IMPURE" = yes ] || exit 1; echo ok > $out'' ];
    impureEnvVars = [ "NIB_TEST_IMPURE" ];
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = builtins.hashString "sha256" "ok\n";
  };
  impure-structured = derivation {
    name = "attrs-impure-structured";
    inherit system builder;
    args = [ "-c" ''[ "$NIB_TEST_IMPURE" = yes ] || exit 1; p=$(sed 's/.*"out":"\([^"]*\)".*/\1/' .attrs.json); echo ok > "$p"'' ];
    __structuredAttrs = true;
    impureEnvVars = [ "NIB_TEST_IMPURE" ];
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = builtins.hashString "sha256" "ok\n";
  };
}
