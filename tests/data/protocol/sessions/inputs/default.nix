let
  sys = builtins.currentSystem;
  dep = derivation {
    name = "dep";
    system = sys;
    builder = "/bin/sh";
    args = [ "-c" "echo dep-contents > $out" ];
  };
in {
  inherit dep;
  hello = derivation {
    name = "hello";
    system = sys;
    builder = "/bin/sh";
    outputs = [ "out" "doc" ];
    args = [ "-c" "echo building hello; echo to-stderr >&2; /bin/busybox mkdir $out $doc; echo hi > $out/greeting; echo ${dep} > $out/ref; echo docs > $doc/README" ];
  };
  fixed = derivation {
    name = "fixed.txt";
    system = sys;
    builder = "/bin/sh";
    args = [ "-c" "echo 'hello world' > $out" ];
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447";
  };
  fixed2 = derivation {
    name = "fixed2.txt";
    system = sys;
    builder = "/bin/sh";
    args = [ "-c" "echo 'remote built' > $out" ];
    outputHashMode = "recursive";
    outputHashAlgo = "sha256";
    outputHash = "sha256-HDiF0SXKrPEh40MEasXjEcQlFKsUJI9w9j0ktd2HbxU=";
  };
  fail = derivation {
    name = "fail";
    system = sys;
    builder = "/bin/sh";
    args = [ "-c" "echo about to fail; echo oops >&2; exit 3" ];
  };
  single = derivation {
    name = "single";
    system = sys;
    builder = "/bin/sh";
    args = [ "-c" "echo single > $out" ];
  };
}
