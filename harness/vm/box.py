"""The offline boxes netconform/RELEASE: Debian built here, for libvirt's qemu under TCG.

One box per Debian release of the kernel matrix (``RELEASES``): bullseye (5.10), bookworm
(6.1; also named netconform/debian12), trixie (6.12) and forky (7.2). Each carries its
release's kernel and its release's builds of the implementations (containernetworking-plugins,
netavark), installed where Debian installs them, so the suites' default (the installed builds)
is that release's.

No bootloader, no installer, no network in the VM: ``debootstrap --variant=minbase`` from the
Debian archive this machine's apt already uses (``harness.impl.fetch.machine_archive``), with
the packages the harness needs (those ``make setup`` installs, plus a kernel, systemd, ssh,
sudo, DHCP), configured in a chroot as Vagrant expects (user ``vagrant`` with Vagrant's
well-known insecure key and passwordless sudo), with the harness installed there as ``make
setup`` does (``python3 -m venv /netconform/.venv`` and ``pip install -e /netconform``, the
wheels for the box's own Python fetched on this machine, not under TCG); ``mkfs.ext4 -d``
makes the disk, ``qemu-img`` the qcow2, and the box boots its kernel and initrd directly (the
box's Vagrantfile points libvirt at them). ``vagrant box add`` adds it.

A release whose userland cannot carry the harness (bullseye's Python is 3.9; the harness
needs 3.11) gets the next release's userland, and its own kernel and builds are installed
into it from its own archive with apt against a private state directory resolving against
the rootfs's dpkg status (``harness.impl.fetch.apt_options``): nothing on this machine is
installed or changed. Such a box says so in its ``about``.

Each box is cached under the cache directory, keyed on its inputs (this file, the release,
the project's pyproject.toml and Vagrant's key): a second run reuses it.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from dataclasses import dataclass

from harness import paths
from harness.errors import NetconformError, VmError
from harness.impl import fetch

CACHE = paths.cache_dir()  # $NETCONFORM_CACHE, else /var/cache/netconform (the box builder runs as root)
DISK_SIZE = "6G"  # sparse: the qcow2 holds what is used
BUILD_SPACE = 4 * 2**30  # rootfs, raw image and qcow2 at once
DEBOOTSTRAP_SCRIPTS = "/usr/share/debootstrap/scripts"
# Boot and login, then what `make setup` installs (APT_PACKAGES in the Makefile; graphviz
# only draws reports on the host), then the kernel whose modules the sandbox lacks.
BASE_PACKAGES = ("systemd-sysv", "udev", "dbus", "openssh-server", "sudo", "ifupdown", "kmod",
                 "rsync", "procps", "make", "python3", "python3-venv",
                 "iproute2", "iptables", "nftables", "tcpdump", "iputils-ping", "ethtool", "conntrack", "zstd")
KERNEL_PACKAGES = ("linux-image-amd64",)
IMPLEMENTATIONS = ("containernetworking-plugins", "netavark")
# The wheels pip fetches for a box's Python (the harness's dependencies have compiled wheels).
WHEEL_PLATFORMS = ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_28_x86_64", "linux_x86_64")


@dataclass(frozen=True)
class Release:
    """A box of the kernel matrix: which Debian release gives its userland, its kernel, its builds."""
    name: str  # the box is netconform/NAME
    kernel: str  # the kernel's major.minor, as the catalogue names it
    userland: str  # the release debootstrap installs (the harness's Python runs there)
    dhcp: str  # the DHCP client ifupdown uses (isc-dhcp-client left forky)
    implementations: tuple[str, ...]  # the packages of the implementations this release serves
    about: str

    @property
    def box(self) -> str:
        return f"netconform/{self.name}"

    @property
    def foreign(self) -> tuple[str, ...]:
        """What comes from the release's own archive into another release's userland."""
        return () if self.userland == self.name else (*KERNEL_PACKAGES, *self.implementations)

    @property
    def packages(self) -> tuple[str, ...]:
        own = () if self.foreign else (*KERNEL_PACKAGES, *self.implementations)
        # A kernel installed afterwards needs its initramfs tools from the userland.
        tools = ("initramfs-tools", "linux-base") if self.foreign else ()
        return (*BASE_PACKAGES, self.dhcp, *tools, *own)


RELEASES = {
    "bullseye": Release("bullseye", "5.10", "bookworm", "isc-dhcp-client", ("containernetworking-plugins",),
                        "Debian 11's kernel 5.10 and its containernetworking-plugins 0.9.0 (static Go, with "
                        "flannel; no netavark in bullseye) on Debian 12's userland, as bullseye's Python 3.9 is "
                        "older than the harness's 3.11: the cell is bullseye's kernel and builds, not its "
                        "iproute2, iptables or Python"),
    "bookworm": Release("bookworm", "6.1", "bookworm", "isc-dhcp-client", IMPLEMENTATIONS,
                        "Debian 12: kernel 6.1, containernetworking-plugins 1.1.1, netavark 1.4.0"),
    "trixie": Release("trixie", "6.12", "trixie", "dhcpcd-base", IMPLEMENTATIONS,
                      "Debian 13: kernel 6.12, containernetworking-plugins 1.1.1, netavark 1.14.0"),
    "forky": Release("forky", "7.2", "forky", "dhcpcd-base", IMPLEMENTATIONS,
                     "Debian testing (forky): kernel 7.2, containernetworking-plugins 1.9.1, netavark 1.17.2"),
}
ALIASES = {"debian12": "bookworm"}  # the box's first name, kept working


def release(name: str) -> Release:
    name = ALIASES.get(name, name)
    if name not in RELEASES:
        raise VmError(f"no offline box for release {name!r} (known: {', '.join([*RELEASES, *ALIASES])})")
    return RELEASES[name]


VAGRANT_KEY_GLOB = "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub"
PROJECT_FILES = ("pyproject.toml", "setup.py", "README.md", "harness", "fixtures", "suites")
KERNEL_CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0 biosdevname=0 quiet"
BOX_VAGRANTFILE = """\
# %s: direct kernel boot of Debian's kernel under qemu (TCG works, no KVM needed).
Vagrant.configure("2") do |config|
  here = File.dirname(__FILE__)
  config.vm.provider :libvirt do |libvirt|
    libvirt.driver = "qemu"
    libvirt.cpu_mode = "custom"
    libvirt.cpu_model = "qemu64"
    libvirt.kernel = File.join(here, "vmlinuz")
    libvirt.initrd = File.join(here, "initrd.img")
    libvirt.cmd_line = "%s"
    libvirt.disk_bus = "virtio"
    libvirt.graphics_type = "none"  # the console is the serial port; no VNC, no video to emulate
    libvirt.video_type = "none"
  end
end
"""
FILES = {
    "etc/hostname": "netconform\n",
    "etc/hosts": "127.0.0.1 localhost\n127.0.1.1 netconform\n",
    "etc/fstab": "/dev/vda / ext4 defaults,errors=remount-ro 0 1\n",
    "etc/network/interfaces": "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n",
    "etc/sudoers.d/vagrant": "vagrant ALL=(ALL) NOPASSWD:ALL\nDefaults:vagrant !requiretty\n",
    "etc/ssh/sshd_config.d/netconform.conf": "UseDNS no\nGSSAPIAuthentication no\n",
    # The VM has no network beyond the host's libvirt bridge: don't wait for what never comes.
    "etc/systemd/system/networking.service.d/netconform.conf": "[Service]\nTimeoutStartSec=60\n",
}


def vagrant_public_key() -> str:
    keys = sorted(glob.glob(VAGRANT_KEY_GLOB))
    if not keys:
        raise VmError("vagrant is not installed: no insecure key at " + VAGRANT_KEY_GLOB + " (apt-get install vagrant)")
    with open(keys[-1]) as handle:
        return handle.read()


def box_key(project: str, spec: Release) -> str:
    """A digest of everything the box is made from."""
    digest = hashlib.sha256(repr(spec).encode())
    for path in (__file__, os.path.join(project, "pyproject.toml"), os.path.join(project, "setup.py")):
        with open(path, "rb") as handle:
            digest.update(handle.read())
    digest.update(vagrant_public_key().encode())
    return digest.hexdigest()[:12]


def _build_root() -> str:
    """Where the rootfs and images are made: RAM (/dev/shm) when it has room, as dpkg's fsyncs and
    the copies cost most of a build on a disk; else the cache directory."""
    try:
        stats = os.statvfs("/dev/shm")
    except OSError:
        return CACHE
    return "/dev/shm" if stats.f_bavail * stats.f_frsize >= BUILD_SPACE else CACHE


def _step(log: str, what: str, started: float) -> float:
    now = time.monotonic()
    with open(log, "a") as out:
        out.write(f"netconform: box build: {what} took {now - started:.1f} s\n")
    return now


def _run(argv: list[str], what: str, log: str, **kwargs) -> None:
    with open(log, "a") as out:
        out.write(f"+ {' '.join(argv)}\n")
        out.flush()
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs)
    if done.returncode != 0:
        with open(log, errors="replace") as handle:
            tail = [line.strip() for line in handle if line.strip()][-1:]
        raise VmError(f"box build: {what} failed (exit {done.returncode}): {tail[0] if tail else ''} (log: {log})")


def _need(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise VmError(f"box build needs {', '.join(missing)} (make check installs them; or apt-get install "
                      "debootstrap e2fsprogs qemu-utils)")


def debootstrap(rootfs: str, spec: Release, log: str) -> None:
    """The userland, from the archive this machine's apt uses. A release this debootstrap has no
    script for (bookworm's has none for forky) is made with the sid script: testing and unstable
    share their layout, and the packages are forky's own (debootstrap fetches the suite named)."""
    try:
        mirror, keyring = fetch.machine_archive()
    except NetconformError as exc:
        raise VmError(f"box build: {exc}") from None
    debs = os.path.join(CACHE, "debs")
    os.makedirs(debs, exist_ok=True)
    script = [] if os.path.exists(os.path.join(DEBOOTSTRAP_SCRIPTS, spec.userland)) else [
        os.path.join(DEBOOTSTRAP_SCRIPTS, "sid")]
    _run(["debootstrap", "--variant=minbase", f"--cache-dir={debs}", f"--keyring={keyring}",
          f"--include={','.join(spec.packages)}", spec.userland, rootfs, mirror, *script],
         f"debootstrap {spec.userland}{' (sid script)' if script else ''}", log)


def install_foreign(rootfs: str, spec: Release, log: str) -> None:
    """The release's own kernel and builds into another release's userland: apt (the release's
    private state, resolving against the rootfs's dpkg status) downloads what they need that the
    rootfs lacks, and dpkg installs it in the chroot. Nothing on this machine changes."""
    if not spec.foreign:
        return
    who = f"box {spec.box}"
    try:
        fetch.update_release(spec.name, who)
        archives = os.path.join(rootfs, "tmp", "foreign")
        os.makedirs(os.path.join(archives, "partial"), exist_ok=True)
        fetch.run_apt(["apt-get", *fetch.apt_options(spec.name, os.path.join(rootfs, "var/lib/dpkg/status")),
                       "-o", f"Dir::Cache::archives={archives}", "-y", "--no-install-recommends",
                       "install", "--download-only", *spec.foreign],
                      f"apt-get install --download-only ({spec.name}: {', '.join(spec.foreign)})", who)
    except NetconformError as exc:
        raise VmError(f"box build: {exc}") from None
    debs = sorted(os.path.basename(path) for path in glob.glob(os.path.join(archives, "*.deb")))
    with open(log, "a") as out:
        out.write(f"netconform: from {spec.name}: {' '.join(debs)}\n")
    _run(["chroot", rootfs, "dpkg", "-i", *(f"/tmp/foreign/{deb}" for deb in debs)],
         f"dpkg -i ({spec.name}'s kernel and builds)", log,
         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
              "DEBIAN_FRONTEND": "noninteractive"})
    shutil.rmtree(archives)


def python_version(rootfs: str) -> str:
    """The rootfs's python3 (major.minor): the wheels pip fetches are for it."""
    done = subprocess.run(["chroot", rootfs, "python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise VmError(f"box build: the rootfs's python3 does not run: {done.stderr.strip()[-200:]}")
    return done.stdout.strip()


def requirements(project: str) -> list[str]:
    """The project's dependencies and its build backend (for the editable install), from pyproject.toml."""
    with open(os.path.join(project, "pyproject.toml"), "rb") as handle:
        meta = tomllib.load(handle)
    return [*meta["build-system"]["requires"], "wheel", *meta["project"]["dependencies"]]


def configure(rootfs: str, project: str, log: str) -> None:
    """Vagrant's conventions, then the harness installed the way `make setup` does."""
    for relative, text in FILES.items():
        path = os.path.join(rootfs, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)
    os.chmod(os.path.join(rootfs, "etc/sudoers.d/vagrant"), 0o440)
    _run(["chroot", rootfs, "useradd", "--create-home", "--shell", "/bin/bash", "vagrant"], "useradd", log)
    ssh = os.path.join(rootfs, "home/vagrant/.ssh")
    os.makedirs(ssh, mode=0o700, exist_ok=True)
    with open(os.path.join(ssh, "authorized_keys"), "w") as handle:
        handle.write(vagrant_public_key())
    _run(["chroot", rootfs, "chown", "-R", "vagrant:vagrant", "/home/vagrant/.ssh"], "chown", log)
    _run(["chroot", rootfs, "chmod", "600", "/home/vagrant/.ssh/authorized_keys"], "chmod", log)
    # pip on this machine, in the chroot: the VM itself has no network and TCG is slow.
    target = os.path.join(rootfs, "netconform")
    os.makedirs(target, exist_ok=True)
    for name in PROJECT_FILES:
        source = os.path.join(project, name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(target, name), ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    wheelhouse = os.path.join(rootfs, "tmp", "wheelhouse")
    # This machine's pip (its index, proxy and CA settings) fetches; the chroot installs from the files.
    version = python_version(rootfs)
    platforms = [option for platform in WHEEL_PLATFORMS for option in ("--platform", platform)]
    _run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:",
          "--python-version", version, "--implementation", "cp", *platforms,
          "-d", wheelhouse, *requirements(project)], f"pip download (the harness's dependencies, Python {version})",
         log)
    _run(["chroot", rootfs, "python3", "-m", "venv", "/netconform/.venv"], "python3 -m venv", log)
    _run(["chroot", rootfs, "/netconform/.venv/bin/pip", "install", "-q", "--disable-pip-version-check",
          "--no-index", "--find-links", "/tmp/wheelhouse", "-e", "/netconform"],
         "pip install -e /netconform (in the chroot)", log,
         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"})
    shutil.rmtree(wheelhouse)
    for junk in ("var/cache/apt/archives", "usr/share/doc", "usr/share/man", "var/lib/apt/lists"):
        shutil.rmtree(os.path.join(rootfs, junk), ignore_errors=True)
        os.makedirs(os.path.join(rootfs, junk), exist_ok=True)


def disk(rootfs: str, workdir: str, log: str) -> tuple[str, int]:
    raw = os.path.join(workdir, "root.ext4")
    qcow2 = os.path.join(workdir, "box.img")
    _run(["mkfs.ext4", "-q", "-F", "-L", "netconform", "-d", rootfs, raw, DISK_SIZE], "mkfs.ext4 -d", log)
    _run(["qemu-img", "convert", "-O", "qcow2", raw, qcow2], "qemu-img convert", log)
    size = os.path.getsize(raw)
    os.unlink(raw)
    return qcow2, size


def package(rootfs: str, workdir: str, qcow2: str, size: int, key: str, spec: Release, out: str) -> None:
    kernel = sorted(glob.glob(os.path.join(rootfs, "boot/vmlinuz-*")))[-1]
    initrd = sorted(glob.glob(os.path.join(rootfs, "boot/initrd.img-*")))[-1]
    metadata = {"provider": "libvirt", "format": "qcow2", "virtual_size": -(-size // 2**30)}
    files = {"metadata.json": json.dumps(metadata), "Vagrantfile": BOX_VAGRANTFILE % (spec.box, KERNEL_CMDLINE),
             "netconform-box-key": key, "netconform-box-about": spec.about + "\n"}
    for name, text in files.items():
        with open(os.path.join(workdir, name), "w") as handle:
            handle.write(text)
    partial = out + ".partial"
    with tarfile.open(partial, "w") as tar:  # uncompressed: the qcow2 is the bulk, and time matters more
        for name in files:
            tar.add(os.path.join(workdir, name), arcname=name)
        tar.add(kernel, arcname="vmlinuz")
        tar.add(initrd, arcname="initrd.img")
        tar.add(qcow2, arcname="box.img")
    os.replace(partial, out)


def box_file(project: str, spec: Release) -> str:
    return os.path.join(CACHE, "boxes", f"netconform-{spec.name}-{box_key(project, spec)}.box")


def build(project: str, name: str = "bookworm", log_dir: str | None = None) -> str:
    """The box file of release ``name`` for this project's inputs: the cached one, or a new one."""
    spec = release(name)
    key = box_key(project, spec)
    boxes = os.path.join(CACHE, "boxes")
    out = box_file(project, spec)
    if os.path.exists(out):
        return out
    _need("debootstrap", "mkfs.ext4", "qemu-img", "chroot")
    if os.geteuid() != 0:
        raise VmError("building the box needs root (debootstrap, chroot)")
    os.makedirs(boxes, exist_ok=True)
    workdir = os.path.join(_build_root(), f"netconform-box-build-{key}")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    log = os.path.join(log_dir or CACHE, f"box-build-{spec.name}-{key}.log")
    open(log, "w").close()
    rootfs = os.path.join(workdir, "rootfs")
    try:
        started = time.monotonic()
        debootstrap(rootfs, spec, log)
        started = _step(log, "debootstrap", started)
        if spec.foreign:
            install_foreign(rootfs, spec, log)
            started = _step(log, f"{spec.name}'s kernel and builds", started)
        configure(rootfs, project, log)
        started = _step(log, "configure (chroot, pip)", started)
        qcow2, size = disk(rootfs, workdir, log)
        started = _step(log, "mkfs.ext4 -d, qemu-img convert", started)
        package(rootfs, workdir, qcow2, size, key, spec, out)
        _step(log, "box file", started)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for old in glob.glob(os.path.join(boxes, f"netconform-{spec.name}-*.box")):
        if old != out:
            os.unlink(old)
    return out


def added_key(vagrant_home: str, spec: Release) -> str | None:
    """The key of the release's box Vagrant has, if any."""
    for path in glob.glob(os.path.join(vagrant_home, "boxes", spec.box.replace("/", "-VAGRANTSLASH-"), "*",
                                       "libvirt", "netconform-box-key")):
        with open(path) as handle:
            return handle.read().strip()
    return None
