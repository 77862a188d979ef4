# One block per fuzz target (see tests/local.mk).
