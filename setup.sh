#!/usr/bin/env bash
# Installs everything tempered-gan needs into ./.venv, and Debian's
# Fashion-MNIST (used by the demo and by two tests, which skip without it) where apt-get is available.
set -euo pipefail
cd "$(dirname "$0")"

FASHION=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -e "$FASHION" ] && command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null; } \
        || echo "setup: could not install Debian's dataset-fashion-mnist; the Fashion-MNIST tests will be skipped" >&2
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
pip_install() {  # quiet, less a local package index's "Location ... is ignored" notices
    .venv/bin/pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v "^WARNING: Location" || true; } >&2
    return "${PIPESTATUS[0]}"
}
# The PyTorch builds this project is tested with (pip finds them on this machine's disk or on PyPI).
pip_install torch==2.14.1 torchvision==0.29.1
pip_install -e '.[dev]'
