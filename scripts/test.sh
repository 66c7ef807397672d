#!/usr/bin/env bash
# Every test: formatting, lints, Rust unit tests, the header drift check,
# dependency policy, the pytest suite against loopback SMTP servers (the
# Python ones and a real Postfix + Dovecot), a short run of every fuzz
# target, and the C, C++, C# and Python examples and binding tests (the C
# ones under ASan and Valgrind too, the C# ones on Mono and CoreCLR), the
# NuGet package and the Python wheels, and the Windows DLL and exe for x64
# and x86 built and tested under Wine (scripts/windows/; needs root).
source "$(dirname "$0")/env.sh"

missing=()
for tool in cc c++ mcs mono xbuild ikdasm nuget valgrind; do command -v "$tool" >/dev/null || missing+=("$tool"); done
for tool in /usr/sbin/postfix /usr/sbin/dovecot; do [ -x "$tool" ] || missing+=("$tool"); done
command -v cargo-deny >/dev/null || missing+=("cargo-deny")
command -v cargo-fuzz >/dev/null || missing+=("cargo-fuzz")
if [ ${#missing[@]} -gt 0 ]; then
    echo "error: missing tools: ${missing[*]}" >&2
    echo "  apt-get install gcc g++ mono-mcs mono-runtime mono-devel nuget valgrind postfix dovecot-core;" \
        "cargo install --locked cargo-deny cargo-fuzz  (or run .ci/run)" >&2
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

step "fuzz: a few seconds of each target (fuzz/; longer runs: scripts/fuzz.sh, docs/FUZZING.md)"
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets this stable toolchain take them.
# One build of every target (the costly part), then a short run of each.
# fuzz/lsan.supp: a glibc allocation LeakSanitizer takes for a leak.
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp"
RUSTC_BOOTSTRAP=1 cargo fuzz build
for target in $(ls fuzz/fuzz_targets | sed -n 's/\.rs$//p' | sort); do
    mkdir -p "fuzz/corpus/$target"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="${FUZZ_SECONDS:-5}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 2>&1 | tail -n 3 ||
        { echo "error: fuzz target $target failed (crash input under fuzz/artifacts/$target)" >&2; exit 1; }
done

step "examples and the C, C++, C# binding tests"
examples/run_all.sh

step "Windows: smtpbridge.dll and smtpbridge.exe for x64 and x86, tested under Wine (scripts/windows/)"
if [ "${SMTPBRIDGE_WINDOWS:-1}" = 0 ]; then
    echo "NOT RUN: SMTPBRIDGE_WINDOWS=0 (the Windows build and its tests were left out on purpose)"
    echo "NOT RUN: the NuGet package and the Python wheels with the Windows DLLs (tests/windows/packages_check.py)"
else
    scripts/windows/build.sh
    scripts/windows/test.sh
    step "Windows: the NuGet package and the wheels with both DLLs (scripts/package.py; tests/windows/packages_check.py)"
    python -m pytest -q -p no:cacheprovider tests/windows/packages_check.py
fi
