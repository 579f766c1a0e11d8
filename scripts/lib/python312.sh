# shellcheck shell=bash
# find_python312: prints a Python 3.12 interpreter ($PYTHON312, python3.12 on PATH, then pyenv's
# newest 3.12), or returns 1. Sourced by the scripts that build the Axolotl 0.21 venvs.
find_python312() {
    local candidate
    for candidate in "${PYTHON312:-}" "$(command -v python3.12 || true)" \
            $(ls -d "$HOME"/.pyenv/versions/3.12*/bin/python 2>/dev/null | sort -V -r); do
        if [ -n "$candidate" ] && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# require_python312: find_python312, or say what to do and exit 1.
require_python312() {
    find_python312 || {
        echo "error: Axolotl 0.21 needs Python 3.12 and none was found." >&2
        echo "fix: install it (e.g. \`pyenv install 3.12\`) or run with PYTHON312=/path/to/python3.12" >&2
        exit 1
    }
}

# new_venv312 VENV: a fresh venv at VENV (whatever was there is removed) made with
# require_python312's interpreter, which it prints.
new_venv312() {
    local python
    python=$(require_python312) || exit 1
    rm -rf "$1"
    mkdir -p "$(dirname "$1")"
    "$python" -m venv "$1"
    echo "$python"
}
