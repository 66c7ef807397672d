# Sourced by demo.sh and test.sh: a Python virtual environment in .venv
# with the packages of tests/requirements.txt, and the library's path.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv || { echo "error: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2; exit 1; }
fi
if ! .venv/bin/python -c "import aiosmtpd, pytest, cryptography, dkim, mypy, dotnetcore2, auditwheel" 2>/dev/null; then
    echo "== installing Python test packages into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt
fi
export PATH="$ROOT/.venv/bin:$PATH"
export SMTPBRIDGE_LIBRARY="$ROOT/target/release/libsmtpbridge.so"

# Builds the release library and the command line (target/release/smtpbridge).
# Programs linked with -lsmtpbridge look for its SONAME, libsmtpbridge.so.1,
# which cargo does not create: link it beside.
build_library() {
    cargo build --release --workspace --quiet
    ln -sf libsmtpbridge.so target/release/libsmtpbridge.so.1
}
