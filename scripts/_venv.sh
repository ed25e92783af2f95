# Sourced by the other scripts: make .venv with the pinned dependencies, once.
# Re-installs when pyproject.toml or constraints.txt changed since the last install.
# Sets no shell options: the scripts that source it set their own.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${OPENGROUP_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.installed"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" || return 1
fi
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ] || [ "$ROOT/constraints.txt" -nt "$STAMP" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip || return 1
  "$VENV/bin/python" -m pip install --quiet -c "$ROOT/constraints.txt" -e "$ROOT[test]" || return 1
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
