#!/usr/bin/env bash
# TräumerAI for Blender: the two commands of this project.
#   ./run.sh demo   the main job: music in, frames and a Blender scene out
#   ./run.sh test   set up everything on a fresh machine, lint (ruff), then run all tests (bpy 5.0.1),
#                   and the Blender tests on bpy 4.5.x and 5.2.x
#   ./run.sh lint   ruff only
set -euo pipefail
cd "$(dirname "$0")"

BPY_MAIN=5.0.1
BPY_LTS=4.5.15
BPY_NEXT=5.2.3   # Blender 5.2 LTS: Python 3.13
COMMON_PKGS=("torch==2.13.0" "numpy>=1.26,<2" "scipy" "soundfile" "pytest" "pytest-timeout" "ruff==0.17.6")
# .venv52 holds Blender's side only: no torch wheel for Python 3.13 is at hand (PyPI's Linux one is
# a CUDA build of several GB), so its tests run the worker on .venv's Python (Worker Python)
NEXT_PKGS=("numpy>=2.2,<3" "pytest" "pytest-timeout")
# libraries the bpy wheel links against (present on this image, absent on a bare Debian)
DEBIAN_LIBS=(libx11-6 libxext6 libxrender1 libxfixes3 libxi6 libxkbcommon0 libsm6 libgl1)

log() { printf '[run.sh] %s\n' "$*" >&2; }

ensure_debian_libs() {
    local missing=()
    for lib in "${DEBIAN_LIBS[@]}"; do
        dpkg -s "$lib" >/dev/null 2>&1 || missing+=("$lib")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian libraries for bpy: ${missing[*]}"
        local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq "${missing[@]}"
    fi
}

find_python311() {
    for p in python3.11 python3; do
        if command -v "$p" >/dev/null && "$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            echo "$p"; return
        fi
    done
    log "Python 3.11 is required (Blender 4.2-5.0 use it)"; exit 2
}

# Python 3.13 (Blender 5.1+): python3.13 when it runs (a pyenv shim fails unless that version is
# active), else the newest 3.13 under pyenv's root
find_python313() {
    local roots=() candidates=()
    if command -v python3.13 >/dev/null && python3.13 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
        echo python3.13; return
    fi
    if command -v pyenv >/dev/null; then roots+=("$(pyenv root 2>/dev/null || true)"); fi
    roots+=("$HOME/.pyenv")
    for root in "${roots[@]}"; do
        [ -n "$root" ] || continue
        for p in "$root"/versions/3.13*/bin/python3.13; do
            if [ -x "$p" ]; then candidates+=("$p"); fi
        done
    done
    if [ ${#candidates[@]} -gt 0 ]; then
        while read -r p; do
            if "$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then echo "$p"; return; fi
        done < <(printf '%s\n' "${candidates[@]}" | sort -u -V -r)
    fi
    log "Python 3.13 is required for the Blender $BPY_NEXT tests (Blender 5.1+ use it): none runs as"
    log "python3.13 or under \$(pyenv root)/versions/3.13*; install it, e.g. 'pyenv install 3.13'"
    exit 2
}

# ensure_venv DIR BPY_VERSION: create/update a venv; a stamp file makes a second run instant
ensure_venv() {
    local dir=$1 bpy_version=$2 python
    local want="bpy==$bpy_version ${COMMON_PKGS[*]} musicnn==0.1.0"
    if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$want" ]; then return; fi
    log "setting up $dir ($want)"
    if [ ! -x "$dir/bin/python" ]; then python=$(find_python311); "$python" -m venv "$dir"; fi
    "$dir/bin/python" -m pip install -q --upgrade pip
    "$dir/bin/python" -m pip install -q "bpy==$bpy_version" "${COMMON_PKGS[@]}"
    # musicnn's declared dependencies (TensorFlow 1.x) are not needed: we only read its weights
    "$dir/bin/python" -m pip install -q --no-deps musicnn==0.1.0
    echo "$want" > "$dir/.stamp"
}

# .venv52: bpy 5.2 on Python 3.13 with what the Blender tests need, no torch
ensure_venv52() {
    local dir=.venv52 python
    local want="bpy==$BPY_NEXT ${NEXT_PKGS[*]}"
    if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$want" ]; then return; fi
    log "setting up $dir ($want)"
    if [ ! -x "$dir/bin/python" ]; then python=$(find_python313); "$python" -m venv "$dir"; fi
    "$dir/bin/python" -m pip install -q --upgrade pip
    "$dir/bin/python" -m pip install -q "bpy==$BPY_NEXT" "${NEXT_PKGS[@]}"
    echo "$want" > "$dir/.stamp"
}

setup() {
    ensure_debian_libs
    ensure_venv .venv "$BPY_MAIN"
    ensure_venv .venv45 "$BPY_LTS"
}

cmd=${1:-}
shift || true
case "$cmd" in
    setup)
        setup; ensure_venv52 ;;
    test)
        setup; ensure_venv52
        # the tests folder (its pytest.ini) unless the arguments name test files themselves
        paths=(tests)
        for arg in "$@"; do
            case "$arg" in tests/*|*.py|*::*) paths=() ;; esac
        done
        log "lint (ruff, settings in pyproject.toml)"
        .venv/bin/ruff check --no-cache .
        log "tests on bpy $BPY_MAIN"
        .venv/bin/python -m pytest "${paths[@]}" "$@"
        log "Blender tests on bpy $BPY_LTS"
        .venv45/bin/python -m pytest -m blender "${paths[@]}" "$@"
        log "Blender tests on bpy $BPY_NEXT (the worker on .venv's Python, through Worker Python)"
        TRAEUMER_TEST_WORKER_PYTHON="$PWD/.venv/bin/python" .venv52/bin/python -m pytest -m blender "${paths[@]}" "$@"
        ;;
    lint)
        setup
        .venv/bin/ruff check --no-cache . ;;
    demo)
        setup
        # headless Blender (the bpy module) builds a scene with the bundled example as a sound
        # strip, runs Generate from audio, saves demo.blend and renders demo.mp4 with the music
        demo_user=$(mktemp -d)
        BLENDER_USER_RESOURCES="$demo_user" .venv/bin/python traeumer_run.py -- \
            --audio examples/hr-savino-ocean.ogg --duration 20 \
            --out demo_out/frames --blend demo_out/demo.blend --render demo_out/demo.mp4 "$@"
        rm -rf "$demo_user" ;;
    *)
        echo "usage: ./run.sh demo|test|lint [args]" >&2; exit 2 ;;
esac
