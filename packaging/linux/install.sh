#!/bin/sh
# Installs Montage AI for this user from the unpacked bundle: the app into
# PREFIX/lib/montage-ai, a menu entry that also opens .montage job files, the icons,
# and the `montage-ai` command line in PREFIX/bin; then compiles the music analysis
# once (about 20 s). PREFIX is ~/.local unless --prefix says otherwise. Uninstalling
# also removes the cache (analyses and upscaled frames, made again on need).
#   sh install.sh [--prefix DIR] [--no-warm-up]
#   sh install.sh --uninstall [--prefix DIR]
set -eu

usage() {
  echo "usage: sh install.sh [--prefix DIR] [--no-warm-up] [--uninstall]" >&2
  exit 2
}

here=$(cd "$(dirname "$0")" && pwd)
prefix="$HOME/.local"
warm_up=1
action=install
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
    --no-warm-up) warm_up=0; shift ;;
    --uninstall) action=uninstall; shift ;;
    *) usage ;;
  esac
done
case "$prefix" in /*) ;; *) prefix="$(pwd)/$prefix" ;; esac

app_dir="$prefix/lib/montage-ai"
share="$prefix/share"
desktop_file="$share/applications/montage-ai.desktop"
mime_file="$share/mime/packages/montage-ai.xml"
command_file="$prefix/bin/montage-ai"

refresh_caches() {
  # Each is optional: a desktop without them reads the files on its next login.
  if command -v update-mime-database >/dev/null 2>&1; then
    update-mime-database "$share/mime" >/dev/null 2>&1 || true
  fi
  if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database "$share/applications" >/dev/null 2>&1 || true
  fi
  if command -v gtk-update-icon-cache >/dev/null 2>&1 &&
    [ -f "$share/icons/hicolor/index.theme" ]; then
    gtk-update-icon-cache -q -t "$share/icons/hicolor" >/dev/null 2>&1 || true
  fi
}

uninstall() {
  rm -f "$desktop_file" "$mime_file" "$command_file"
  find "$share/icons/hicolor" \( -name montage-ai.png -o -name montage-ai.svg \
    -o -name application-x-montage-ai-job.png \) -delete 2>/dev/null || true
  rm -rf "$app_dir"
  refresh_caches
  # platformdirs' user cache folder, the app's own; never a folder of another
  # name, such as one MONTAGE_AI_CACHE_DIR names.
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/montage-ai"
  rm -rf "$cache"
  echo "Montage AI removed from $prefix, and its cache $cache (your montages, jobs and settings stay)."
}

copy_app() {
  if [ "$here" = "$app_dir" ]; then
    return
  fi
  mkdir -p "$prefix/lib"
  rm -rf "$app_dir.new"
  cp -R "$here" "$app_dir.new"
  rm -rf "$app_dir"
  mv "$app_dir.new" "$app_dir"
}

install_desktop_files() {
  mkdir -p "$share/applications" "$share/mime/packages" "$share/icons" "$prefix/bin"
  cp -R "$app_dir/share/icons/hicolor" "$share/icons/"
  cp "$app_dir/share/mime/packages/montage-ai.xml" "$mime_file"
  # The entry names the app by its absolute path; a '|' in it would end the sed.
  sed "s|@APP_DIR@|$app_dir|g" "$app_dir/share/applications/montage-ai.desktop.in" \
    > "$desktop_file"
  cat > "$command_file" <<EOF
#!/bin/sh
# Montage AI's command line (montage-ai render ..., styles, analyze, export).
MONTAGE_AI_ENGINE=1 exec "$app_dir/montage-ai" cli "\$@"
EOF
  chmod +x "$command_file"
}

if [ "$action" = uninstall ]; then
  uninstall
  exit 0
fi
copy_app
install_desktop_files
refresh_caches
if [ "$warm_up" = 1 ]; then
  echo "Compiling the music analysis once (about 20 s)..."
  "$command_file" warm-up
fi
case ":${XDG_DATA_DIRS:-/usr/local/share:/usr/share}:$HOME/.local/share:" in
  *":$share:"*) where="find it in your applications menu" ;;
  *) where="its menu entry is in $share/applications, which your desktop reads only if that folder's parent is in XDG_DATA_DIRS" ;;
esac
echo "Montage AI is installed: $where, or run $app_dir/montage-ai."
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) echo "Add $prefix/bin to your PATH to use the montage-ai command line." ;;
esac
