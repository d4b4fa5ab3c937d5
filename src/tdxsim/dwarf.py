"""Source lines from DWARF: which file and line each instruction address
came from, for reports that point at code (`tdxsim check --format sarif`).
tdxsim assembles with `-g`; an ELF or object built without line info gets
an empty table and reports fall back to symbol+offset."""
from __future__ import annotations

import os

from elftools.common.exceptions import DWARFError, ELFError
from elftools.elf.elffile import ELFFile


def line_table(elf: ELFFile) -> dict[int, tuple[str, int]]:
    """Address -> (source path, line) for every row of every line program."""
    table: dict[int, tuple[str, int]] = {}
    try:
        if not elf.has_dwarf_info():
            return table
        dwarf = elf.get_dwarf_info()
        for cu in dwarf.iter_CUs():
            program = dwarf.line_program_for_CU(cu)
            if program is None:
                continue
            comp_dir = cu.get_top_DIE().attributes.get("DW_AT_comp_dir")
            paths = _file_paths(program, comp_dir.value.decode() if comp_dir else "")
            for entry in program.get_entries():
                state = entry.state
                if state is not None and not state.end_sequence and state.file in paths:
                    table.setdefault(state.address, (paths[state.file], state.line))
    except (DWARFError, ELFError, KeyError, IndexError, ValueError, UnicodeDecodeError):
        return {}  # damaged debug info: no lines, never a failure
    return table


def _file_paths(program, comp_dir: str) -> dict[int, str]:
    """The line program's file numbers as paths (DWARF 5 counts from 0,
    earlier versions from 1, with directory 0 the compilation directory)."""
    v5 = program.header.version >= 5
    dirs = [d.decode() if isinstance(d, bytes) else str(d)
            for d in program.header.include_directory]
    if not v5:
        dirs = [comp_dir] + dirs
    paths = {}
    for i, entry in enumerate(program.header.file_entry):
        name = entry.name.decode() if isinstance(entry.name, bytes) else str(entry.name)
        folder = dirs[entry.dir_index] if entry.dir_index < len(dirs) else ""
        if v5 and entry.dir_index == 0:
            folder = comp_dir or folder
        path = name if os.path.isabs(name) else os.path.join(comp_dir if not os.path.isabs(
            folder) else "", folder, name)
        paths[i if v5 else i + 1] = os.path.normpath(path)
    return paths
