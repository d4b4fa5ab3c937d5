"""Building guest images from the files users have: GNU as sources (`.S`
through the C preprocessor, `.s` as they are), NASM sources (`.asm`,
`.nasm`), C (`.c`, freestanding, with tdxsim's C runtime) and relocatable
objects (`.o`), linked at IMAGE_BASE with tdxsim's guest library; or one
static ELF executable, loaded as it is.

Every failure is a `BuildError`/`ToolMissing`/`ImageError` with the tool's
own text (plus a hint line where the cause is known): exit 2, no traceback.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

from ..errors import BuildError, ImageError
from ..image import Image, load_elf
from . import hints, sdk, tools
from .options import BuildOptions
from .sdk import IMAGE_BASE, LINKER_SCRIPT, library_sources  # noqa: F401 (re-exported)

PREPROCESSED = (".S", ".sx")
PLAIN_ASM = (".s",)
NASM = (".asm", ".nasm")
C = (".c",)
OBJECT = (".o",)
SUFFIXES = PREPROCESSED + PLAIN_ASM + NASM + C + OBJECT


def elf_type(path: Path) -> str | None:
    """'exec', 'object', another ELF type name, or None for a non-ELF file."""
    try:
        with path.open("rb") as f:
            head = f.read(18)
    except OSError:
        return None
    if head[:4] != b"\x7fELF" or len(head) < 18:
        return None
    kind = int.from_bytes(head[16:18], "little" if head[5] == 1 else "big")
    return {1: "object", 2: "exec"}.get(kind, f"type {kind}")


def load_guest(paths: list[str | Path], entry: str = "_start", with_library: bool = True,
               options: BuildOptions | None = None) -> Image:
    """An image from one ELF executable, or from sources and objects."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise BuildError("no guest files given")
    for p in paths:
        if not p.exists():
            raise BuildError(f"no such file: {p}")
        if not p.is_file():
            raise ImageError(_not_a_guest(p))
    executables = [p for p in paths if elf_type(p) == "exec"]
    if executables and len(paths) > 1:
        others = [str(p) for p in paths if p != executables[0]]
        raise BuildError(
            f"{executables[0]} is a linked ELF executable, which tdxsim runs alone; it cannot "
            f"be combined with {', '.join(others)}. Give one executable, or sources and "
            "objects to link")
    if executables:
        return load_elf(executables[0])
    return build(paths, entry, with_library, options)


def build(sources: list[str | Path], entry: str = "_start", with_library: bool = True,
          options: BuildOptions | None = None) -> Image:
    """Compile or assemble each source, link with the guest library (and the
    C runtime when there is C), load the result."""
    options = options or BuildOptions()
    paths = [Path(s) for s in sources]
    tools.tool("as"), tools.tool("ld")
    with tempfile.TemporaryDirectory(prefix="tdxsim-") as tmp:
        objects = [_object(src, Path(tmp) / f"{i}-{src.stem}.o", options)
                   for i, src in enumerate(paths)]
        has_c = any(p.suffix in C for p in paths)
        # C always gets the library: the runtime calls into it
        library = sdk.library_objects(with_runtime=has_c) if with_library or has_c else []
        elf = Path(tmp) / "guest.elf"
        tools.run([tools.tool("ld"), "-m", "elf_x86_64", "-static", "-nostdlib", "-z", "noexecstack",
                   "-e", entry,
                   "-T", str(sdk.sdk_dir() / "td.ld"), "-o", str(elf),
                   *map(str, objects), *map(str, library)], "linking the guest",
                  lambda text: hints.link(text, library_symbols(), with_library))
        image = load_elf(elf)
    image.path = ", ".join(str(p) for p in sources)
    if entry not in image.symbols:
        image.missing_entry = entry
    elif entry not in image.functions:
        image.entry_error = (f"{image.path}: the entry symbol '{entry}' is a local label or "
                             "data, not a global function in code; make it one (.globl "
                             f"{entry}) or choose another with --entry / entry=")
    return image


def _object(src: Path, out: Path, options: BuildOptions) -> Path:
    suffix = src.suffix
    if suffix in OBJECT:
        if elf_type(src) != "object":
            raise BuildError(f"{src} is not a relocatable ELF object")
        return src
    if suffix in PREPROCESSED:
        expanded = out.with_suffix(".s")
        tools.run([tools.tool("cpp"), "-x", "assembler-with-cpp", *options.cpp_args(),
                   str(src), "-o", str(expanded)], f"preprocessing {src}")
        _assemble(expanded, out, src)
    elif suffix in PLAIN_ASM:
        _assemble(src, out, src)
    elif suffix in NASM:
        tools.run([tools.tool("nasm"), "-f", "elf64", "-g", "-F", "dwarf", "-o", str(out),
                   str(src)], f"assembling {src} with nasm")
    elif suffix in C:
        tools.run([tools.tool("cc"), *sdk.cflags(), *options.cpp_args(), "-O2", "-g", "-c",
                   str(src), "-o", str(out)], f"compiling {src}")
    else:
        raise ImageError(_not_a_guest(src))
    return out


def _not_a_guest(path: Path) -> str:
    return (f"{path} is not a guest file: give sources ({', '.join(SUFFIXES[:-1])}), "
            "objects (.o) or one static x86-64 ELF executable")


def _assemble(source: Path, out: Path, original: Path) -> None:
    # -I: `.include "x"` finds x next to the original file, as cpp's #include does
    tools.run([tools.tool("as"), "--64", "-g", f"-I{original.parent}", "-o", str(out),
               str(source)],
              f"assembling {original}", lambda text: hints.intel_syntax(original, text))


_DEFINED = re.compile(r"^(?:FUNC\s+|\s*\.globl\s+)([\w.]+)", re.M)


def library_symbols() -> set[str]:
    """The names tdxsim's guest library defines."""
    return {name for source in library_sources() for name in _DEFINED.findall(source.read_text())}
