# Strings that need escaping in the ATerm, and unicode (kept as UTF-8 bytes).
derivation {
  name = "escapes";
  system = "x86_64-linux";
  builder = "/bin/sh";
  args = [ "-c" "echo \"quoted\" 'single' \\back\\slash" "" "line1\nline2\r\n\ttab" ];
  quote = "\"";
  backslash = "\\";
  dollar = "\${not-interpolated}";
  newline = "a\nb";
  crlf = "a\r\nb";
  tab = "a\tb";
  unicode = "grüße — λ → 🙂 日本";
  empty = "";
  control = builtins.fromJSON "\"\\u0001\\u0008\\u000c\\u001b\\u001f\\u007f\"";
  mixed = "\\\"\n\r\t\\n";
  "key with spaces" = "v";
  "weird-key=\"x\"" = "y";
}
