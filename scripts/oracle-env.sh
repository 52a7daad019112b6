#!/usr/bin/env bash
# Creates the Python environment of the arfpn-metrics oracle test (numpy + pycocotools
# from PyPI) in .venv-oracle (gitignored) and prints its python path, e.g.
#   export ARFPN_ORACLE_PYTHON=$(scripts/oracle-env.sh)
# Progress goes to stderr, so stdout is only the path. Re-running reuses the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${ARFPN_ORACLE_VENV:-.venv-oracle}"
py="$venv/bin/python"
if ! { [ -x "$py" ] && "$py" -c "import numpy, pycocotools.cocoeval" 2>/dev/null; }; then
    python3 -m venv "$venv" >&2
    "$py" -m pip install --quiet --disable-pip-version-check "numpy>=1.24" "pycocotools>=2.0.7" >&2
    "$py" -c "import numpy, pycocotools.cocoeval" >&2
fi
echo "$(cd "$(dirname "$py")" && pwd)/$(basename "$py")"
