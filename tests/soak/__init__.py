"""Slow fault tests, run by `make soak` (NETALERT_SOAK=1); `make test` skips collecting them."""
