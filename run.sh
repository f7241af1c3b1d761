#!/usr/bin/env bash
# TräumerAI for Blender: the two commands of this project.
#   ./run.sh demo   the main job: music in, frames and a Blender scene out
#   ./run.sh test   set up everything on a fresh machine, then run all tests (bpy 5.0.1 and 4.5.x)
set -euo pipefail
cd "$(dirname "$0")"

BPY_MAIN=5.0.1
BPY_LTS=4.5.15
COMMON_PKGS=("torch==2.13.0" "numpy>=1.26,<2" "scipy" "soundfile" "pytest" "pytest-timeout")
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

# ensure_venv DIR BPY_VERSION: create/update a venv; a stamp file makes a second run instant
ensure_venv() {
    local dir=$1 bpy_version=$2
    local want="bpy==$bpy_version ${COMMON_PKGS[*]} musicnn==0.1.0"
    if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$want" ]; then return; fi
    log "setting up $dir ($want)"
    [ -x "$dir/bin/python" ] || "$(find_python311)" -m venv "$dir"
    "$dir/bin/python" -m pip install -q --upgrade pip
    "$dir/bin/python" -m pip install -q "bpy==$bpy_version" "${COMMON_PKGS[@]}"
    # musicnn's declared dependencies (TensorFlow 1.x) are not needed: we only read its weights
    "$dir/bin/python" -m pip install -q --no-deps musicnn==0.1.0
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
        setup ;;
    test)
        setup
        # the tests folder (its pytest.ini) unless the arguments name test files themselves
        paths=(tests)
        for arg in "$@"; do
            case "$arg" in tests/*|*.py|*::*) paths=() ;; esac
        done
        log "tests on bpy $BPY_MAIN"
        .venv/bin/python -m pytest "${paths[@]}" "$@"
        log "Blender tests on bpy $BPY_LTS"
        .venv45/bin/python -m pytest -m blender "${paths[@]}" "$@"
        ;;
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
        echo "usage: ./run.sh demo|test [args]" >&2; exit 2 ;;
esac
