"""Guest images: loading a static ELF executable by its PT_LOAD segments.

Building images from sources is tdxsim.toolchain's (`build` here forwards to
it).  Every failure is an `ImageError` carrying a one-paragraph message.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from elftools.elf.constants import P_FLAGS, SH_FLAGS
from elftools.elf.elffile import ELFFile

from .dwarf import line_table
from .errors import ImageError


@dataclass(frozen=True)
class Segment:
    vaddr: int
    data: bytes
    memsz: int
    executable: bool


@dataclass
class Image:
    path: str
    entry: int
    segments: list[Segment]
    symbols: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    missing_entry: str | None = None  # built without its entry symbol (ld only warns)
    entry_error: str | None = None  # why the entry symbol cannot start a run
    functions: frozenset[str] = frozenset()  # global symbols a run may start at
    lines: dict[int, tuple[str, int]] = field(default_factory=dict)  # address -> (file, line)

    def entry_problem(self) -> str | None:
        """Why a run cannot start at the entry point, or None."""
        if self.missing_entry is not None:
            return (f"{self.path}: no entry symbol '{self.missing_entry}' (define it, or "
                    "choose another with --entry / entry=)")
        if self.entry_error is not None:
            return self.entry_error
        if not any(s.executable and s.vaddr <= self.entry < s.vaddr + s.memsz
                   for s in self.segments):
            return (f"{self.path}: the entry point {self.entry:#x} is not inside an "
                    "executable segment")
        return None

    def symbol_at(self, addr: int) -> tuple[str, int] | None:
        """The function containing addr, as (name, offset); remembered per
        address (crash reports and messages ask thousands of times in a
        fuzz campaign) while the symbol table keeps its size."""
        size, found = self.__dict__.get("_symbol_at", (None, None))
        if size != len(self.symbols):
            size, found = self.__dict__["_symbol_at"] = (len(self.symbols), {})
        if addr not in found:
            found[addr] = self._find_symbol(addr)
        return found[addr]

    def _find_symbol(self, addr: int) -> tuple[str, int] | None:
        best = None
        for name, start in self.symbols.items():
            size = self.sizes.get(name, 0)
            # an unsized label covers at most a page after it
            if start <= addr < start + (size or 0x1000):
                if best is None or start > best[1]:
                    best = (name, start)
        return None if best is None else (best[0], addr - best[1])

    def describe(self, addr: int) -> str:
        hit = self.symbol_at(addr)
        return f"{addr:#x}" if hit is None else f"{addr:#x} <{hit[0]}+{hit[1]:#x}>"


def bundled_guest(name: str) -> Path:
    return Path(str(resources.files("tdxsim.guest") / f"{name}.S"))


def load_elf(path: str | Path) -> Image:
    """Load a static x86-64 ELF executable (ET_EXEC) by its PT_LOAD segments.
    Every header field is checked against the file before anything is read."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"guest image {path} does not exist")
    try:
        with path.open("rb") as f:
            size = path.stat().st_size
            elf = ELFFile(f)
            _check_header(elf, path)
            headers = [seg.header for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
            segments = [_segment(f, path, i, h, size) for i, h in enumerate(headers)]
            symbols, sizes, functions = _symbols(elf)
            entry = elf.header["e_entry"]
            lines = line_table(elf)
    except ImageError:
        raise
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt file makes pyelftools raise
        # ELFError, struct.error, ValueError, KeyError, ...: all mean the same to the user
        raise ImageError(f"{path} is not a valid ELF file: {exc or type(exc).__name__}") \
            from None
    if not segments:
        raise ImageError(f"{path} has no loadable (PT_LOAD) segment")
    _check_overlaps(path, segments)
    return Image(str(path), entry, segments, symbols, sizes, functions=functions, lines=lines)


def _segment(f, path: Path, index: int, h, file_size: int) -> Segment:
    """One PT_LOAD segment, its data read only once it is known to be in the file."""
    offset, filesz, memsz, vaddr = h["p_offset"], h["p_filesz"], h["p_memsz"], h["p_vaddr"]
    where = f"{path}: PT_LOAD segment {index} (vaddr {vaddr:#x})"
    if offset + filesz > file_size:
        raise ImageError(f"{where} has {filesz:#x} bytes of data at file offset {offset:#x}, "
                         f"past the end of the {file_size:#x}-byte file: the file is truncated "
                         "or its program header is corrupt")
    if memsz < filesz:
        raise ImageError(f"{where} has p_memsz {memsz:#x} smaller than p_filesz {filesz:#x}; "
                         "the ELF is malformed")
    if vaddr + memsz > 1 << 64:
        raise ImageError(f"{where} of {memsz:#x} bytes wraps around the address space")
    f.seek(offset)
    return Segment(vaddr, f.read(filesz), memsz, bool(h["p_flags"] & P_FLAGS.PF_X))


def _check_overlaps(path: Path, segments: list[Segment]) -> None:
    ordered = sorted(segments, key=lambda s: s.vaddr)
    for low, high in zip(ordered, ordered[1:]):
        if low.vaddr + low.memsz > high.vaddr:
            raise ImageError(f"{path}: PT_LOAD segments at {low.vaddr:#x} ({low.memsz:#x} bytes) "
                             f"and {high.vaddr:#x} overlap")


def _check_header(elf: ELFFile, path: Path) -> None:
    if elf.elfclass != 64 or elf["e_machine"] != "EM_X86_64":
        raise ImageError(f"{path} is a {elf.elfclass}-bit {elf['e_machine']} ELF; "
                         "tdxsim runs x86-64 (EM_X86_64) guests only")
    if elf["e_type"] != "ET_EXEC":
        raise ImageError(f"{path} is an ELF of type {elf['e_type']}; tdxsim loads "
                         "static executables (ET_EXEC). Link relocatable objects by "
                         "passing them to TD.from_source.")


def _symbols(elf: ELFFile) -> tuple[dict[str, int], dict[str, int], frozenset[str]]:
    """Addresses and sizes of the defined symbols, and which of them are
    global code symbols (what ld accepts as an entry point)."""
    symbols: dict[str, int] = {}
    sizes: dict[str, int] = {}
    functions: set[str] = set()
    table = elf.get_section_by_name(".symtab")
    if table is None:
        return symbols, sizes, frozenset()
    code = {i for i, sec in enumerate(elf.iter_sections()) if sec["sh_flags"] & SH_FLAGS.SHF_EXECINSTR}
    for sym in table.iter_symbols():
        kind, shndx = sym["st_info"]["type"], sym["st_shndx"]
        if sym.name and kind in ("STT_FUNC", "STT_NOTYPE", "STT_OBJECT") \
                and shndx not in ("SHN_UNDEF", "SHN_ABS"):
            symbols[sym.name] = sym["st_value"]
            sizes[sym.name] = sym["st_size"]
            if kind != "STT_OBJECT" and shndx in code \
                    and sym["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK"):
                functions.add(sym.name)
    return symbols, sizes, frozenset(functions)


def is_elf(path: str | Path) -> bool:
    try:
        with Path(path).open("rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False
