"""Honeypot: recognise dangerous requests in tool arguments so the gateway never runs them.

A caught call is not executed. The gateway answers the agent with a plausible simulated success
(the tool's `simulate`), appends a `HoneypotTriggered` event and flags the task for a human.
This is a tripwire, not the containment: the sandbox still isolates whatever is not caught
(obfuscated code, `exec` of decoded strings …).

Detection is explicit and rule-based; every rule has an id in `RULES`:

Python code (parsed with `ast`, so words inside ordinary strings, comments and docstrings do
not count):
- `py-delete-outside`: `shutil.rmtree`, `os.remove/unlink/rmdir/removedirs`, `Path(...).unlink`
  / `.rmdir` on a literal absolute path outside `/workspace` and `/tmp`, a `~` or `..` path, or
  the home directory (`Path.home()`, `expanduser`).
- `py-env-dump`: the whole `os.environ` (or a secret-named variable such as `OPENAI_API_KEY`,
  also through an assignment or a loop over the environment) reaching an output: `print`,
  `json.dumps`, a `write`/`send`/log call, directly or inside an f-string or `str(...)`.
- `py-fork-bomb`: `os.fork`/`os.forkpty` in a `while` loop; any process spawn
  (`multiprocessing.Process`, `subprocess.Popen`, `os.spawn*`) in a `while True` loop that has
  no `break`.
- `py-kill-host`: `os.kill`/`os.killpg` of pid 1 or -1.
- every string literal that is not a docstring is checked against the always-dangerous shell
  rules (`rm -rf /`, fork bomb, `mkfs`, `dd of=/dev/…`) and, when it has no whitespace (a
  path, not a sentence), against the credential paths below;
- every command given to `os.system`, `os.popen`, `os.exec*`, `os.spawn*`, `subprocess.*`,
  `pty.spawn`, `asyncio.create_subprocess_*` is checked against all shell rules.

Shell commands:
- `sh-rm-outside`: `rm` of `/`, `/*`, `~`, `$HOME`, `..` or an absolute path outside
  `/workspace` and `/tmp`; `sh-rm-root`: `rm -r…` of `/`, `/*` or `~` (checked everywhere).
- `sh-find-delete`: `find <outside path> … -delete`.
- `sh-shutdown`: shutdown, reboot, halt, poweroff, `init 0|6`, `systemctl poweroff|reboot|halt`.
- `sh-kill-all`: `kill … -1` or `kill … 1`, `killall`, `pkill -9`.
- `sh-env-dump`: `env` or `printenv` or `set` on its own, `export -p`.
- `sh-fork-bomb`: `:(){ :|:& };:` and renamed variants.
- `sh-disk-wipe`: `mkfs*`, `dd … of=/dev/…`, `shred … /dev/…`, `> /dev/sd…`.

Paths (file tool arguments, literals in code, commands):
- `path-credentials`: `/etc/shadow`, `/etc/gshadow`, `/etc/sudoers`, `/etc/passwd`,
  `/etc/master.passwd`, `.ssh`, `id_rsa` and other key names, `.aws/credentials`, `.aws`,
  `.gnupg`, `.netrc`, `.pgpass`, `.git-credentials`, `.docker/config.json`, `.kube/config`,
  `/proc/<pid>/environ`, `/run/secrets`, `/var/run/secrets`.
"""

from __future__ import annotations

import ast

from pydantic import BaseModel

from tools.checks import parse_quietly
from tools.honeypot_python import scan_module
from tools.honeypot_shell import (
    RULES,
    Category,
    HoneypotHit,
    always_dangerous,
    dedupe,
    scan_command,
    scan_path,
)
from tools.registry import CODE_FORMAT, PATH_FORMAT, AnyToolSpec

__all__ = [
    "Category",
    "HoneypotHit",
    "RULES",
    "scan_call",
    "scan_code",
    "scan_command",
    "scan_path",
]


def scan_code(code: str, where: str = "code") -> list[HoneypotHit]:
    """Python rules over parsed code; unparsable code only gets the always-dangerous rules."""
    try:
        tree = parse_quietly(code)
    except (SyntaxError, ValueError):
        return dedupe(always_dangerous(code, where) + scan_path(code, where))
    assert isinstance(tree, ast.Module)
    return dedupe(scan_module(tree, where))


def scan_call(spec: AnyToolSpec, args: BaseModel) -> list[HoneypotHit]:
    """Scan a validated call: code arguments as Python, path arguments as paths."""
    hits: list[HoneypotHit] = []
    for code in spec.values_with_format(args, CODE_FORMAT):
        hits += scan_code(code, where=f"{spec.name} code")
    for path in spec.values_with_format(args, PATH_FORMAT):
        hits += scan_path(path, where=f"{spec.name} path")
    return dedupe(hits)
