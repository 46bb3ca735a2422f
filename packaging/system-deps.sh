#!/usr/bin/env bash
# Installs the Debian packages Montage AI needs at run time: Qt's system libraries
# (for the window, also offscreen), libvulkan1 and libomp5 (for the upscaler).
# With --test, also what only the tests need: melt, MLT's command-line player, which
# renders the MLT (Shotcut) export to check it frame by frame, and Mesa's Vulkan
# drivers, whose software device (llvmpipe) runs the upscaler's Vulkan path
# without a GPU. With --bench, also
# ffmpeg, the command line the render benchmark compares the engine with. With
# --package, also what building and checking the desktop bundle needs: binutils
# (PyInstaller reads libraries with objdump), desktop-file-utils and
# shared-mime-info (the install script's menu entry and job file type).
# Does nothing when they are all there; uses sudo when not root.
set -euo pipefail
PACKAGES=(
  libegl1 libgl1 libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon0
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0
  libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xinerama0 libxcb-xkb1
  libvulkan1 libomp5
)
TEST_PACKAGES=(melt mesa-vulkan-drivers)
BENCH_PACKAGES=(ffmpeg)
BUNDLE_PACKAGES=(binutils desktop-file-utils shared-mime-info)
for_tests=""
case "${1:-}" in
  "") ;;
  --test) PACKAGES+=("${TEST_PACKAGES[@]}"); for_tests=", and melt and mesa-vulkan-drivers for the tests," ;;
  --bench) PACKAGES+=("${BENCH_PACKAGES[@]}"); for_tests=", and ffmpeg for the benchmarks," ;;
  --package) PACKAGES+=("${BUNDLE_PACKAGES[@]}"); for_tests=", and binutils, desktop-file-utils and shared-mime-info for the bundle," ;;
  *) echo "usage: bash packaging/system-deps.sh [--test|--bench|--package]" >&2; exit 2 ;;
esac
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "system-deps: not a Debian-like system; install Qt 6's libraries, libvulkan1 and libomp5${for_tests} yourself." >&2
  exit 0
fi
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "system-deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
