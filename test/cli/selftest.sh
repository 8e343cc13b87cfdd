#!/usr/bin/env bash
# pipelinectl's own checks of its JSON parser, HMAC signatures and helpers
# (no database needed).  Prints "N passed, M failed".
set -euo pipefail
exec "${PIPELINECTL:-./pipelinectl}" selftest
