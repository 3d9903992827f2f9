# Sourced by scripts/demo and scripts/test: create or reuse the project's virtual environment and
# (re)install recpipe only when its install files changed, so a second run starts in seconds.
# Override the location with RECPIPE_VENV; choose extras with RECPIPE_EXTRAS (default cpu,dev;
# use gpu,dev on a CUDA machine).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RECPIPE_VENV:-$ROOT/.venv}"
EXTRAS="${RECPIPE_EXTRAS:-cpu,dev}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[recpipe] creating virtual environment $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.recpipe-install-stamp"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1) $EXTRAS"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[recpipe] installing recpipe[$EXTRAS] into $VENV (first run: a few minutes)" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[$EXTRAS]" >&2
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
