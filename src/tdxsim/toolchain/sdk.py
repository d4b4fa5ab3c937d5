"""What building a guest needs besides the user's files, prepared once per
content in a cache directory: the guest library and C runtime assembled and
weakened, the linker script, and tdx.h generated from abi.py.

`tdxsim cflags` / `ldflags` / `include` print paths into this directory, so
a guest built by hand links the very objects `tdxsim run guest.c` links.
The directory's name is a digest of everything in it: a changed library or
ABI gets a new directory, never a stale one.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .. import abi
from ..errors import BuildError
from ..layout import SHARED_WINDOW
from ..module.ve import VE_VECTOR
from . import header, tools

IMAGE_BASE = 0x10_0000  # 1 MiB, where the linker script places .text

LINKER_SCRIPT = f"""\
SECTIONS {{
  . = {IMAGE_BASE:#x};
  .text : {{ *(.text.entry) *(.text .text.*) }}
  . = ALIGN(4096);
  .rodata : {{ *(.rodata .rodata.*) }}
  . = ALIGN(4096);
  .data : {{ *(.data .data.*) }}
  .bss : {{ __bss_start = .; *(.bss .bss.*) *(COMMON) __bss_end = .; }}
  /DISCARD/ : {{ *(.note .note.*) *(.comment) *(.eh_frame*) }}
}}
"""

# Freestanding x86-64 TD code: no libc, no red zone (interrupts and #VE
# push onto the interrupted stack), no SSE (the kernel's rule; it also lets
# __attribute__((interrupt)) handlers compile), static and not PIC.
CFLAGS = ("-ffreestanding", "-fno-pic", "-fno-pie", "-mno-red-zone", "-mgeneral-regs-only",
          "-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-fcf-protection=none",
          "-m64")
LDFLAGS = ("-nostdlib", "-static", "-no-pie", "-Wl,--build-id=none", "-Wl,-z,noexecstack",
           "-Wl,-e,_start")

# Link order is layout: the bundled guests' addresses (and traces) follow it.
LIBRARY = ("tdcall.S", "ghci.S", "memory.S", "services.S", "halt.S", "report.S",
           "ve_handler.S", "ve_mmio.S", "irq.S", "mp.S")
RUNTIME = "crt0.S"
INCLUDES = ("tdcall.inc", "ve.inc")  # `.include`d by library files: found with `as -I`


def guest_file(name: str) -> Path:
    return Path(str(resources.files("tdxsim.guest") / name))


def library_sources() -> list[Path]:
    return [guest_file(name) for name in LIBRARY]


def render_header() -> str:
    return header.render({**vars(abi), "SHARED_WINDOW": SHARED_WINDOW, "VE_VECTOR": VE_VECTOR},
                         library_sources())


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tdxsim"


@lru_cache(maxsize=1)
def _content() -> tuple[str, str]:
    """tdx.h's text and the digest naming the directory (once per process:
    tdxsim's own files do not change under a running tdxsim)."""
    text = render_header()
    digest = hashlib.sha256(LINKER_SCRIPT.encode() + text.encode() + b"".join(
        s.read_bytes() for s in _sources())).hexdigest()[:16]
    return text, digest


def _sources() -> list[Path]:
    return [*library_sources(), guest_file(RUNTIME), *map(guest_file, INCLUDES)]


def sdk_dir() -> Path:
    """The prepared directory (made on first use): include/tdx.h, td.ld,
    an object per LIBRARY file, crt0.o."""
    text, digest = _content()
    for root in (_cache_root(), Path(tempfile.gettempdir()) / f"tdxsim-{os.getuid()}"):
        target = root / f"sdk-{digest}"
        if (target / "done").is_file():
            return target
        try:
            root.mkdir(parents=True, exist_ok=True)
            return _prepare(root, target, _sources(), text)
        except OSError:  # not writable: the next place
            continue
    raise BuildError(f"cannot write tdxsim's build cache under {_cache_root()} or "
                     f"{tempfile.gettempdir()}")


def _prepare(root: Path, target: Path, sources: list[Path], text: str) -> Path:
    work = Path(tempfile.mkdtemp(prefix="sdk-", dir=root))
    (work / "include").mkdir()
    (work / "include" / "tdx.h").write_text(text)
    (work / "td.ld").write_text(LINKER_SCRIPT)
    for source in (s for s in sources if s.suffix == ".S"):
        obj = work / f"{source.stem}.o"
        tools.run([tools.tool("as"), "--64", f"-I{source.parent}", "-o", str(obj), str(source)],
                  f"assembling tdxsim's {source.name}")
        # weak: a name the user's code defines too is the user's
        tools.run([tools.tool("objcopy"), "--weaken", str(obj)], f"weakening {obj.name}")
    (work / "done").write_text("")
    try:
        work.rename(target)
    except OSError:  # another process prepared it first
        shutil.rmtree(work, ignore_errors=True)
    return target


def library_objects(with_runtime: bool) -> list[Path]:
    root = sdk_dir()
    names = [*LIBRARY, RUNTIME] if with_runtime else list(LIBRARY)
    return [root / f"{Path(n).stem}.o" for n in names]


def include_dir() -> Path:
    return sdk_dir() / "include"


def cflags() -> list[str]:
    return [*CFLAGS, f"-I{include_dir()}"]


def ldflags() -> list[str]:
    return [*LDFLAGS, f"-Wl,-T,{sdk_dir() / 'td.ld'}",
            *(str(p) for p in library_objects(with_runtime=True))]
