"""The local sandbox's seccomp filter: kernel surfaces sandboxed code never needs, refused.

Most of these calls already fail without capabilities; the filter also shuts the ones that need
none (keyrings inherited from the host session, BPF, perf, io_uring, userfaultfd, ptrace), so a
kernel bug behind them is out of reach. bubblewrap installs it (`bwrap --seccomp FD`) after
setting up the namespaces, so its own mount calls are not affected.
"""

from __future__ import annotations

import errno
import os
import platform
import struct

__all__ = ["DENIED_SYSCALLS_X86_64", "seccomp_fd", "seccomp_program"]

# System calls refused with EPERM (x86_64 numbers).
DENIED_SYSCALLS_X86_64 = {
    "ptrace": 101,
    "syslog": 103,
    "pivot_root": 155,
    "acct": 163,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "init_module": 175,
    "delete_module": 176,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "open_by_handle_at": 304,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
}
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO_EPERM = 0x00050000 | errno.EPERM


def seccomp_program() -> bytes | None:
    """A classic-BPF seccomp filter (struct sock_filter[]) for `bwrap --seccomp`, or None.

    Refuses `DENIED_SYSCALLS_X86_64`, any other architecture and the x32 ABI with EPERM and
    allows everything else. Only built on x86_64 hosts (the numbers are per architecture).
    """
    if platform.machine() != "x86_64":
        return None
    ld_w_abs, jeq_k, jge_k, ret_k = 0x20, 0x15, 0x35, 0x06
    numbers = sorted(DENIED_SYSCALLS_X86_64.values())
    count = len(numbers)
    # Layout: 0 load arch, 1 arch check, 2 load nr, 3 x32 check, 4.. one jeq per number,
    # then ALLOW, then DENY. Jump offsets are relative to the next instruction.
    deny = 5 + count
    program = [
        (ld_w_abs, 0, 0, 4),
        (jeq_k, 0, deny - 2, _AUDIT_ARCH_X86_64),
        (ld_w_abs, 0, 0, 0),
        (jge_k, deny - 4, 0, _X32_SYSCALL_BIT),
    ]
    for index, number in enumerate(numbers):
        position = 4 + index
        program.append((jeq_k, deny - position - 1, 0, number))
    program += [(ret_k, 0, 0, _SECCOMP_RET_ALLOW), (ret_k, 0, 0, _SECCOMP_RET_ERRNO_EPERM)]
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)


def seccomp_fd(program: bytes) -> int:
    """A memfd holding the seccomp program for bwrap (made off the event loop)."""
    fd = os.memfd_create("strategos-seccomp", os.MFD_CLOEXEC)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
