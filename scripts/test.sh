#!/usr/bin/env bash
# Every test: formatting, lints, Rust unit tests, the header drift check,
# dependency policy, the pytest suite against loopback SMTP servers, and
# the C, C++, C# and Python examples and binding tests.
source "$(dirname "$0")/env.sh"

missing=()
for tool in cc c++ mcs mono; do command -v "$tool" >/dev/null || missing+=("$tool"); done
command -v cargo-deny >/dev/null || missing+=("cargo-deny")
if [ ${#missing[@]} -gt 0 ]; then
    echo "error: missing tools: ${missing[*]}" >&2
    echo "  apt-get install gcc g++ mono-mcs mono-runtime; cargo install cargo-deny --locked  (or run .ci/run)" >&2
    exit 1
fi

step() { echo; echo "== $*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --release --workspace --all-targets --quiet -- -D warnings

step "cargo test (unit tests)"
cargo test --release --workspace --quiet

step "build the library and the command line, and check the committed header"
build_library
if ! git diff --exit-code -- include/; then
    echo "error: include/smtpbridge.h differs from a fresh generation: commit the regenerated header" >&2
    exit 1
fi

step "cargo deny (licences, sources, banned versions)"
cargo deny --workspace --log-level error check bans licenses sources

step "mypy --strict: the Python binding's type hints"
python -m mypy --strict --cache-dir=/dev/null bindings/python/smtpbridge examples/python/send_mail.py

step "pytest: the library against loopback SMTP servers"
python -m pytest -q -p no:cacheprovider tests bindings/python/tests

step "examples and the C, C++, C# binding tests"
examples/run_all.sh
