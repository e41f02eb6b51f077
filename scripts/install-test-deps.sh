#!/bin/sh
# Install the system packages the integration tests need, on Debian/Ubuntu.
#
#   docker-registry   the CNCF distribution registry (OCI distribution v2) that
#                     tests/integration/registry_fixtures.py starts on loopback
#   mesa-vulkan-drivers, libvulkan-dev, glslc, spirv-headers
#                     Mesa's lavapipe (a Vulkan device that runs on the CPU) and what
#                     scripts/build_wheel.py --backend vulkan compiles against: the
#                     Vulkan wheel's offload tests (tests/gpu) run on it
#
# Idempotent: a package that is already installed is left alone. Runs apt-get
# non-interactively, as root directly or through sudo when run as another user.
set -eu

PACKAGES="docker-registry mesa-vulkan-drivers libvulkan-dev glslc spirv-headers"

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-test-deps: must run as root (or with sudo available) to install: $PACKAGES" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: apt-get not found; install these packages by hand: $PACKAGES" >&2
    exit 1
fi

missing=""
for package in $PACKAGES; do
    if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        echo "install-test-deps: $package is already installed"
    else
        missing="$missing $package"
    fi
done

if [ -z "$missing" ]; then
    echo "install-test-deps: nothing to do"
    exit 0
fi

echo "install-test-deps: apt-get update"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
echo "install-test-deps: apt-get install -y --no-install-recommends$missing"
# shellcheck disable=SC2086  # the package list is meant to split into words
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $missing

for package in $missing; do
    echo "install-test-deps: installed $package $(dpkg-query -W -f='${Version}' "$package")"
done

# The package also ships a service; where systemd started it, it listens on port 5000.
# The tests start their own registry on a free loopback port and do not use it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
    echo "install-test-deps: note: the docker-registry service is running; the tests do not need it"
fi
