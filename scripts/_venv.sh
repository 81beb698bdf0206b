# Sourced by scripts/run and scripts/test: make .venv (once) and install the project into it.
# EXTRAS selects optional dependencies ("" for the app, "[dev]" for the test tools).
set -eu
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "Clawback needs Python 3.11 or newer as '$PY' (set PYTHON=/path/to/python3.11)." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv || {
    echo "Could not create a virtual environment; on Debian: apt-get install python3-venv" >&2
    exit 1
  }
fi
stamp=".venv/.installed$EXTRAS"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$EXTRAS"
  touch "$stamp"
fi
