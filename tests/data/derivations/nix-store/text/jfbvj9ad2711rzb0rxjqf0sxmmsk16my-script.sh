#!/bin/sh
cat /nix/store/lx3m8w2gr71fbqm8s2lilv824qz8pyk3-hello.txt
