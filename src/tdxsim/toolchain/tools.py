"""External programs of the build: finding them, running them, reading what
they print.

Every tool's output is decoded without failing on any byte (a Latin-1 byte
in a user's source must end in the tool's own message, not a traceback), and
a missing tool is one line naming the Debian package that provides it.
"""
from __future__ import annotations

import shutil
import subprocess
from typing import Callable

from ..errors import BuildError, ToolMissing

# tool -> (what needs it, Debian package)
PACKAGES = {
    "as": ("GNU binutils (as, ld) are required to build guest sources", "binutils"),
    "ld": ("GNU binutils (as, ld) are required to build guest sources", "binutils"),
    "objcopy": ("GNU binutils (objcopy) is required to build guest sources", "binutils"),
    "cpp": ("the C preprocessor is required for .S sources", "cpp"),
    "nasm": ("NASM is required for .asm/.nasm sources", "nasm"),
    "cc": ("a C compiler (gcc or clang) is required for C guests", "gcc"),
}


def tool(name: str) -> str:
    """The path of `name` on PATH; `cc` is the first of cc, gcc, clang."""
    candidates = ("cc", "gcc", "clang") if name == "cc" else (name,)
    for candidate in candidates:
        path = shutil.which(candidate)
        if path is not None:
            return path
    what, package = PACKAGES[name]
    raise ToolMissing(f"'{candidates[0]}' was not found on PATH: {what}. Install it with: "
                      f"apt-get install {package}  (Debian/Ubuntu)")


def decode(raw: bytes) -> str:
    """Tool output as text, whatever bytes it holds (invalid UTF-8 shown as \\xNN)."""
    return raw.decode("utf-8", errors="backslashreplace")


def run(cmd: list[str], what: str, hint: Callable[[str], str | None] = lambda text: None) -> None:
    """Run one build step; on failure raise BuildError with the tool's own
    text and, where a common cause is known, one line of hint."""
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode == 0:
        return
    text = (decode(proc.stderr) or decode(proc.stdout)).strip()
    advice = hint(text)
    raise BuildError(f"{what} failed:\n{text}" + (f"\nhint: {advice}" if advice else ""))
