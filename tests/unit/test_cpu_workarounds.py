"""The model server is started without weight repacking on CPUs whose AMX path crashes it."""

from __future__ import annotations

from pathlib import Path

from service.llm.local_model import _cpu_workarounds

AMX = "flags\t\t: fpu vme sse avx2 avx512f amx_bf16 avx512_fp16 amx_tile amx_int8\n"
PLAIN = "flags\t\t: fpu vme sse avx2 avx512f avx512_vnni\n"


def test_an_amx_cpu_gets_no_repacking(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(AMX * 2)
    assert _cpu_workarounds(cpuinfo) == ["--no-repack"]


def test_other_cpus_keep_repacked_weights(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(PLAIN)
    assert _cpu_workarounds(cpuinfo) == []


def test_an_unreadable_cpuinfo_changes_nothing(tmp_path: Path) -> None:
    assert _cpu_workarounds(tmp_path / "missing") == []
