"""Guest images: GNU as/ld build of assembly sources, and ELF loading.

Images are linked at a fixed guest-physical layout (`IMAGE_BASE`); an ELF
executable is loaded by its PT_LOAD segments.  Every failure is a
`BuildError`/`ImageError` carrying the tool's own message.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.constants import P_FLAGS
from elftools.elf.elffile import ELFFile

from .errors import BuildError, ImageError, ToolMissing

IMAGE_BASE = 0x10_0000  # 1 MiB, where the linker script places .text

INSTALL_HINT = ("GNU binutils (as, ld) are required to build guest sources. "
                "Install them with: apt-get install binutils  (Debian/Ubuntu), "
                "dnf install binutils  (Fedora), or brew install binutils  (macOS).")

LINKER_SCRIPT = f"""\
SECTIONS {{
  . = {IMAGE_BASE:#x};
  .text : {{ *(.text.entry) *(.text .text.*) }}
  . = ALIGN(4096);
  .rodata : {{ *(.rodata .rodata.*) }}
  . = ALIGN(4096);
  .data : {{ *(.data .data.*) }}
  .bss : {{ *(.bss .bss.*) *(COMMON) }}
  /DISCARD/ : {{ *(.note .note.*) *(.comment) *(.eh_frame*) }}
}}
"""


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

    def symbol_at(self, addr: int) -> tuple[str, int] | None:
        """The function containing addr, as (name, offset)."""
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


def library_sources() -> list[Path]:
    """The guest library that every built image links by default."""
    return [Path(str(resources.files("tdxsim.guest") / name)) for name in ("tdcall.S", "ve_handler.S")]


def bundled_guest(name: str) -> Path:
    return Path(str(resources.files("tdxsim.guest") / f"{name}.S"))


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"'{name}' was not found on PATH. {INSTALL_HINT}")
    return path


def check_binutils() -> None:
    _tool("as")
    _tool("ld")


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip()
        raise BuildError(f"{what} failed:\n{message}")


def _assemble(source: Path, out: Path) -> None:
    if not source.is_file():
        raise BuildError(f"guest source {source} does not exist")
    _run([_tool("as"), "--64", "-o", str(out), str(source)], f"assembling {source}")


def build(sources: list[str | Path], entry: str = "_start",
          with_library: bool = True) -> Image:
    """Assemble `.S`/`.s` files (objects `.o` are linked as given) into an image."""
    check_binutils()
    paths = [Path(s) for s in sources] + (library_sources() if with_library else [])
    with tempfile.TemporaryDirectory(prefix="tdxsim-") as tmp:
        objects = []
        for i, src in enumerate(paths):
            if src.suffix == ".o":
                if not src.is_file():
                    raise BuildError(f"object file {src} does not exist")
                objects.append(str(src))
                continue
            obj = Path(tmp) / f"{i}-{src.stem}.o"
            _assemble(src, obj)
            objects.append(str(obj))
        script = Path(tmp) / "td.ld"
        script.write_text(LINKER_SCRIPT)
        elf = Path(tmp) / "guest.elf"
        _run([_tool("ld"), "-m", "elf_x86_64", "-static", "-nostdlib",
              "-e", entry, "-T", str(script),
              "-o", str(elf), *objects], "linking the guest")
        image = load_elf(elf)
    image.path = ", ".join(str(p) for p in sources)
    if entry not in image.symbols:
        image.missing_entry = entry
    return image


def load_elf(path: str | Path) -> Image:
    """Load a static x86-64 ELF executable (ET_EXEC) by its PT_LOAD segments."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"guest image {path} does not exist")
    try:
        with path.open("rb") as f:
            elf = ELFFile(f)
            _check_header(elf, path)
            segments = [Segment(seg["p_vaddr"], seg.data(), seg["p_memsz"],
                                bool(seg["p_flags"] & P_FLAGS.PF_X))
                        for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
            symbols, sizes = _symbols(elf)
            entry = elf.header["e_entry"]
    except ELFError as exc:
        raise ImageError(f"{path} is not a valid ELF file: {exc}") from None
    if not segments:
        raise ImageError(f"{path} has no loadable (PT_LOAD) segment")
    return Image(str(path), entry, segments, symbols, sizes)


def _check_header(elf: ELFFile, path: Path) -> None:
    if elf.elfclass != 64 or elf["e_machine"] != "EM_X86_64":
        raise ImageError(f"{path} is a {elf.elfclass}-bit {elf['e_machine']} ELF; "
                         "tdxsim runs x86-64 (EM_X86_64) guests only")
    if elf["e_type"] != "ET_EXEC":
        raise ImageError(f"{path} is an ELF of type {elf['e_type']}; tdxsim loads "
                         "static executables (ET_EXEC). Link relocatable objects by "
                         "passing them to TD.from_source.")


def _symbols(elf: ELFFile) -> tuple[dict[str, int], dict[str, int]]:
    symbols: dict[str, int] = {}
    sizes: dict[str, int] = {}
    table = elf.get_section_by_name(".symtab")
    if table is None:
        return symbols, sizes
    for sym in table.iter_symbols():
        if sym.name and sym["st_info"]["type"] in ("STT_FUNC", "STT_NOTYPE", "STT_OBJECT") \
                and sym["st_shndx"] not in ("SHN_UNDEF", "SHN_ABS"):
            symbols[sym.name] = sym["st_value"]
            sizes[sym.name] = sym["st_size"]
    return symbols, sizes


def is_elf(path: str | Path) -> bool:
    try:
        with Path(path).open("rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False
