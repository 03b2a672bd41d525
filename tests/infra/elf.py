"""Section names of an ELF shared library, read with the standard library only.

Enough of the ELF format to tell whether a compiled extension still carries its
debug info (`.debug_*` sections), for any architecture: the aarch64 bundle's
libraries are inspected on an x86_64 machine, where `readelf` may not read them.
"""

from __future__ import annotations

import struct
from pathlib import Path

ELF_MAGIC = b"\x7fELF"


def section_names(path: Path) -> list[str]:
    data = path.read_bytes()
    if data[:4] != ELF_MAGIC or data[4] != 2:  # EI_CLASS 2: 64-bit (aarch64, x86_64)
        raise ValueError(f"{path} is not a 64-bit ELF file")
    order = "<" if data[5] == 1 else ">"  # EI_DATA: 1 little-endian, 2 big-endian
    # e_shoff (offset 0x28); e_shentsize, e_shnum, e_shstrndx (offset 0x3A)
    (section_table,) = struct.unpack_from(f"{order}Q", data, 0x28)
    entry_size, count, names_index = struct.unpack_from(f"{order}HHH", data, 0x3A)

    def header(index: int) -> tuple[int, int, int]:
        # sh_name at +0x00; sh_offset, sh_size at +0x18
        base = section_table + index * entry_size
        (name,) = struct.unpack_from(f"{order}I", data, base)
        offset, size = struct.unpack_from(f"{order}QQ", data, base + 0x18)
        return name, offset, size

    _, names_offset, names_size = header(names_index)
    names = data[names_offset : names_offset + names_size]
    return [
        names[name : names.index(b"\0", name)].decode() for name, _, _ in map(header, range(count))
    ]


def debug_sections(path: Path) -> list[str]:
    return [name for name in section_names(path) if name.startswith((".debug_", ".zdebug_"))]
