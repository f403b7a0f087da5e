#!/usr/bin/env bash
# Installs what the real-daemon tests need on Debian 12 (libvirtd + QEMU with a
# guest kernel and a busybox initramfs; containerd + runc, with a busybox image
# the tests build themselves). Idempotent: when every package is
# present it does nothing, not even `apt-get update`.
#
#   scripts/deps-real.sh          install (needs root or sudo)
#   scripts/deps-real.sh --check  exit 1 and name what is missing, install nothing
#
# Notes for containers without an init system:
#   - No package starts a daemon here; the tests start their own virtlogd and
#     libvirtd (drivers/libvirt/libvirttest).
#   - linux-image-amd64 needs an initramfs tool, so initramfs-tools comes
#     along and its postinst hook builds /boot/initrd.img-* once.
#     It works without an init system; the tests do not use that initrd
#     (they pack their own busybox one, in Go, so cpio is not needed).
#   - The kernel lands in /boot/vmlinuz-*, its modules in /lib/modules/*;
#     the test guest loads virtio and ACPI-button modules from there.
#   - qemu-system-common's postinst makes /dev/kvm root:kvm 0660. The test
#     harness adds libvirt-qemu to that group (see libvirttest), even where
#     KVM guests cannot run, or libvirtd re-probes QEMU on every call.
#   - Recommends are skipped: they would pull dnsmasq, firmware blobs,
#     apparmor and the like.
set -euo pipefail

check_only=false
if [ "${1:-}" = --check ]; then
  check_only=true
fi

pkgs=(
  libvirt-daemon             # libvirtd
  libvirt-daemon-driver-qemu # its QEMU driver
  libvirt-clients            # virsh, virt-xml-validate (handy when debugging)
  qemu-system-x86            # qemu-system-x86_64
  qemu-utils                 # qemu-img, for test disk images
  linux-image-amd64          # a guest kernel in /boot
  busybox-static             # the guest's userland, in the test's initramfs; the containerd tests' image
  iproute2                   # bridges for the NIC tests
  containerd                 # the containerd driver's tests (drivers/containerd/containerdtest)
  runc                       # containerd's OCI runtime
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps-real: all present"
  exit 0
fi
if $check_only; then
  echo "deps-real: missing: ${missing[*]}" >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "deps-real: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "deps-real: installing ${missing[*]}"
$sudo apt-get update -qq
# policy-rc.d-less containers: invoke-rc.d finds no init system and skips
# service starts, so no daemon is started by the install.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}" >/dev/null

# Verify what the tests rely on, so that a half-done install fails here and
# not as a confusing test skip.
for bin in libvirtd virtlogd qemu-system-x86_64 qemu-img ip containerd containerd-shim-runc-v2 runc; do
  command -v "$bin" >/dev/null || { echo "deps-real: $bin is missing after install" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "deps-real: /bin/busybox is missing after install" >&2; exit 1; }
compgen -G '/boot/vmlinuz-*' >/dev/null || { echo "deps-real: no kernel in /boot after installing linux-image-amd64" >&2; exit 1; }
echo "deps-real: done"
