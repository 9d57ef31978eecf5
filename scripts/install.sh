#!/usr/bin/env bash
# Install everything lnm-node needs on a fresh Debian machine: the DICOM peers and validators
# from Debian, then the Python package with its pinned stack. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

need_apt=0
for tool in storescu dciodvfy Orthanc java chromium chromedriver; do
  command -v "$tool" >/dev/null 2>&1 || need_apt=1
done
[ -f /usr/share/java/pixelmed.jar ] || need_apt=1
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need_apt=1
if [ "$need_apt" = "1" ]; then
  $SUDO apt-get update -qq
  # dcmtk: storescu/dsrdump; dicom3tools: dciodvfy; orthanc: the test PACS; pixelmed-apps: SR validator
  # chromium + chromium-driver: the status page's browser tests (headless)
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    dcmtk dicom3tools orthanc orthanc-dicomweb pixelmed-apps default-jre-headless \
    chromium chromium-driver >/dev/null
fi

python3 -m pip install --disable-pip-version-check -q -e '.[test]'
