#!/usr/bin/env bash
# Install everything lnm-node needs on a fresh Debian machine: the DICOM peers and validators
# from Debian, then the Python package with its pinned stack. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

need_apt=0
for tool in storescu dciodvfy Orthanc java chromium chromedriver npm; do
  command -v "$tool" >/dev/null 2>&1 || need_apt=1
done
[ -f /usr/share/java/pixelmed.jar ] || need_apt=1
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need_apt=1
if [ "$need_apt" = "1" ]; then
  $SUDO apt-get update -qq
  # dcmtk: storescu/dsrdump; dicom3tools: dciodvfy; orthanc: the test PACS; pixelmed-apps: SR validator
  # chromium + chromium-driver: the status page's browser tests (headless)
  # npm: fetches the OHIF viewer below
  # npm only where no npm is on PATH: a NodeSource nodejs ships its own npm and conflicts
  # with Debian's npm package
  packages="dcmtk dicom3tools orthanc orthanc-dicomweb pixelmed-apps default-jre-headless"
  packages="$packages chromium chromium-driver"
  command -v npm >/dev/null 2>&1 || packages="$packages npm"
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    $packages >/dev/null
fi

# OHIF, the viewer our outputs are checked in (tests/integration/viewer, deploy/ohif): the
# prebuilt dist of @ohif/app at the pinned version, cached per version (a second run is quick).
OHIF_VERSION="$(cat deploy/ohif/VERSION)"
OHIF_DIR="${LNM_OHIF_DIST:-$HOME/.cache/lnm-node/ohif-$OHIF_VERSION/dist}"
if [ ! -f "$OHIF_DIR/index.html" ]; then
  ohif_tmp="$(mktemp -d)"
  (cd "$ohif_tmp" && npm pack --silent "@ohif/app@$OHIF_VERSION" >/dev/null \
    && tar xzf "ohif-app-$OHIF_VERSION.tgz" package/dist)
  mkdir -p "$(dirname "$OHIF_DIR")"
  rm -rf "$OHIF_DIR"
  mv "$ohif_tmp/package/dist" "$OHIF_DIR"
  rm -rf "$ohif_tmp"
fi

python3 -m pip install --disable-pip-version-check -q -e '.[test]'
