# Sourced by scripts/demo and scripts/test: make .venv with everything installed.
# Needs: Python >= 3.10 as python3 (or $PYTHON), gdb (installed with apt when root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}

if ! command -v gdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing gdb (apt-get)..." >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdb >/dev/null
    else
        echo "gdb is missing: install it first (Debian/Ubuntu: sudo apt-get install gdb)" >&2
        exit 1
    fi
fi

# The tests assemble the injector's machine code (as, objcopy) and build two
# small C helpers (cc): the LD_PRELOAD ptrace that plays an AMX host, and a
# layout check of the kernel's signal frame.
if ! command -v cc >/dev/null 2>&1 || ! command -v as >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing gcc and binutils (apt-get)..." >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev binutils >/dev/null
    else
        echo "note: no C compiler/assembler: the machine-code tests will be skipped" >&2
    fi
fi

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "inspector needs Python >= 3.10 on the operator's side; set PYTHON=/path/to/python3.x" >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    if ! "$PY" -m venv .venv 2>/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            rm -rf .venv && "$PY" -m venv .venv
        else
            echo "python venv support is missing: sudo apt-get install python3-venv" >&2
            exit 1
        fi
    fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${EXTRAS:-test}]"
