#!/usr/bin/env bash
# Debian packages epiatlas needs outside Python: Chromium (PDF reports, rendering checks, UI screenshots) and
# poppler-utils (PDF pages to PNG in the tests). Installs them when missing and this is root on Debian; idempotent.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v pdftoppm >/dev/null || missing+=(poppler-utils)
fc-list 2>/dev/null | grep -qi dejavu || missing+=(fonts-dejavu-core)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "epiatlas setup: missing Debian packages ${missing[*]}; install them with" \
         "'sudo apt-get install ${missing[*]}' (or set EPIATLAS_CHROMIUM to a Chromium binary) and run make again" >&2
    exit 1
fi
echo "epiatlas setup: installing Debian packages ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
