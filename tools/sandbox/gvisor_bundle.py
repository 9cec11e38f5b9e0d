"""The OCI bundle of a gVisor run: its `config.json` and the skeleton root filesystem.

Everything about what the container may see and do is decided here, as data: the process (uid
65534, no capabilities, rlimits, a fixed environment), the mounts (read-only `/usr`, the run's
tmpfs workspace and scratch), namespaces, cgroup limits and a seccomp filter applied inside the
Sentry. `gvisor.py` only runs `runsc` on it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.sandbox.base import SandboxLimits
from tools.sandbox.layout import MIB, ROOT_LINKS, SANDBOX_ENV, SANDBOX_UID, WORKSPACE
from tools.sandbox.markers import GVISOR_CGROUP_PREFIX, RUNSC_ROOTFS_KIND, name_prefix

__all__ = ["SECCOMP", "make_skeleton", "oci_spec"]

# gVisor's own processes (Sentry, Gofer and their Go threads) are host tasks in the same cgroup.
_MIN_PIDS = 256
_PIDS_HEADROOM = 192
_EPERM = 1
# Namespace flags of clone(2): CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
_CLONE_NS_FLAGS = (0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000)
# Inside the Sentry these calls cannot reach the host kernel, but code that needs none of them
# gets no second kernel surface either: no namespaces, mounts, tracing, BPF, keyrings.
SECCOMP: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64"],
    "syscalls": [
        {
            "names": [
                "unshare",
                "setns",
                "mount",
                "umount2",
                "chroot",
                "pivot_root",
                "ptrace",
                "process_vm_readv",
                "process_vm_writev",
                "bpf",
                "perf_event_open",
                "keyctl",
                "add_key",
                "request_key",
                "userfaultfd",
                "open_by_handle_at",
                "name_to_handle_at",
                "kexec_load",
                "init_module",
                "finit_module",
                "delete_module",
                "reboot",
                "swapon",
                "swapoff",
                "acct",
            ],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": _EPERM,
        },
        # clone3 passes its flags in memory, which seccomp cannot inspect; this runsc answers it
        # with ENOSYS itself (libc falls back to clone, filtered below), and a filter rule for it
        # would make the Sentry return EPERM instead, which breaks thread creation.
        *(
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": _EPERM,
                "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
            }
            for flag in _CLONE_NS_FLAGS
        ),
    ],
}


def oci_spec(
    container_id: str,
    command: Sequence[str],
    limits: SandboxLimits,
    *,
    rootfs: Path,
    workspace: Path,
    tmp: Path,
    memory_overhead_mb: int,
) -> dict[str, Any]:
    """The OCI runtime spec (config.json) for one run; `tmp` is the host dir bound at /tmp."""
    return {
        "ociVersion": "1.0.0",
        "process": _process(command, limits),
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "sandbox",
        "mounts": _mounts(workspace, tmp),
        "linux": {
            "namespaces": [{"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount")],
            # Relative: runsc nests it under this process's own cgroup in each hierarchy.
            "cgroupsPath": f"{GVISOR_CGROUP_PREFIX}-{container_id}",
            "resources": _resources(limits, memory_overhead_mb),
            "seccomp": SECCOMP,
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def _process(command: Sequence[str], limits: SandboxLimits) -> dict[str, Any]:
    """The container's process: the command as uid 65534, no capabilities, rlimits set."""
    rlimits = [
        ("RLIMIT_CPU", limits.cpu_s),
        ("RLIMIT_AS", limits.memory_mb * MIB),
        ("RLIMIT_FSIZE", limits.file_size_mb * MIB),
        ("RLIMIT_NOFILE", limits.open_files),
        ("RLIMIT_NPROC", limits.max_processes),
        ("RLIMIT_CORE", 0),
    ]
    no_caps: dict[str, list[str]] = {
        key: [] for key in ("bounding", "effective", "inheritable", "permitted", "ambient")
    }
    return {
        "terminal": False,
        "user": {"uid": SANDBOX_UID, "gid": SANDBOX_UID, "additionalGids": []},
        "args": list(command),
        "env": [f"{name}={value}" for name, value in SANDBOX_ENV.items()],
        "cwd": WORKSPACE,
        "capabilities": no_caps,
        "noNewPrivileges": True,
        "rlimits": [{"type": name, "hard": v, "soft": v} for name, v in rlimits],
    }


def _mounts(workspace: Path, tmp: Path) -> list[dict[str, Any]]:
    """/proc, /dev, read-only /usr, and the run's own /tmp and /workspace (read-write)."""
    rw = ["rbind", "rw", "nosuid", "nodev"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
        {
            "destination": "/usr",
            "type": "bind",
            "source": "/usr",
            "options": ["rbind", "ro", "nosuid", "nodev"],
        },
        {"destination": "/tmp", "type": "bind", "source": str(tmp), "options": [*rw]},
        {"destination": WORKSPACE, "type": "bind", "source": str(workspace), "options": [*rw]},
    ]


def _resources(limits: SandboxLimits, memory_overhead_mb: int) -> dict[str, Any]:
    """The cgroup's limits; the Sentry's own threads and memory are charged there too."""
    memory = (limits.memory_mb + memory_overhead_mb) * MIB
    return {
        "pids": {"limit": max(_MIN_PIDS, limits.max_processes + _PIDS_HEADROOM)},
        "memory": {"limit": memory, "swap": memory},
    }


def make_skeleton() -> Path:
    """A root filesystem of empty mount points and the host's merged-/usr links.

    Returns the `rootfs` directory; its parent carries the owner marker and is what to remove.
    """
    base = Path(tempfile.mkdtemp(prefix=name_prefix(RUNSC_ROOTFS_KIND)))
    os.chmod(base, 0o755)
    root = base / "rootfs"
    root.mkdir(mode=0o755)
    for name in ("usr", "tmp", "proc", "dev", "workspace", "etc"):
        (root / name).mkdir(mode=0o755)
    for name in ROOT_LINKS:
        host = Path("/") / name
        if host.is_symlink():
            (root / name).symlink_to(os.readlink(host))
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/workspace:/usr/sbin/nologin\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (root / "etc" / "hostname").write_text("sandbox\n")
    return root
