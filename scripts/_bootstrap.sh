# Sourced by scripts/run and scripts/test: make .venv and install the project with the given extras.
# Re-installs only when pyproject.toml changed, so a second run starts at once.
ensure_venv() {
  local extras="$1"
  local py="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $($py --version)"
    "$py" -m venv .venv
  fi
  local stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)-${extras//,/-}"
  if [ ! -f "$stamp" ]; then
    echo "installing the project and its dependencies ($extras); this takes a minute the first time"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]" 2>&1 | grep -v '^WARNING: Location' || true
    .venv/bin/python -c "import delivery, litestar, ortools, sqlalchemy" || { echo "install failed" >&2; return 1; }
    rm -f .venv/.installed-*
    touch "$stamp"
  fi
}
