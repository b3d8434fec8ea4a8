# Sourced by scripts/run and scripts/test: create .venv and install the project (with extras),
# again only when pyproject.toml changed since that kind of install, so a second run starts at once.
ensure_venv() {
  local extras="$1"
  local py="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "This needs Python 3.11 or newer as '$py' (set PYTHON=/path/to/python3.11)." >&2
      return 1
    fi
    echo "Creating .venv with $("$py" --version) ..."
    if ! "$py" -m venv .venv; then
      echo "Could not create .venv: on Debian or Ubuntu, install python3-venv first." >&2
      rm -rf .venv
      return 1
    fi
  fi
  local target="." stamp=".venv/.installed"
  if [ -n "$extras" ]; then target=".[$extras]"; stamp=".venv/.installed-${extras//,/-}"; fi
  local wanted
  wanted="$(.venv/bin/python -c 'import hashlib, os; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest(), os.getcwd())')"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "Installing the project into .venv${extras:+ with [$extras]} (a few minutes the first time) ..."
    # -qq: errors only (a machine's own index settings can otherwise fill the screen with warnings).
    .venv/bin/python -m pip install -qq --disable-pip-version-check -e "$target"
    printf '%s\n' "$wanted" > "$stamp"
  fi
}
