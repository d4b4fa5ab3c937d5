"""One line of advice under an assembler or linker error, where the common
cause is known.  The tool's own text always comes first and stays whole."""
from __future__ import annotations

import re
from pathlib import Path

# A general-purpose register written without AT&T's % prefix.
_BARE_REGISTER = re.compile(
    r"(?<![%\w.$])(r[abcd]x|r[sd]i|r[sb]p|r(?:[89]|1[0-5])[dwb]?|e[abcd]x|e[sd]i|e[sb]p)\b")
_ERROR_LINE = re.compile(r"^(.*?):(\d+): Error:", re.M)
_UNDEFINED = re.compile(r"undefined reference to [`'](\S+?)'")
_MULTIPLE = re.compile(r"multiple definition of [`'](\S+?)'")


def intel_syntax(source: Path, errors: str) -> str | None:
    """Intel-syntax lines given to GNU as, which reads AT&T unless told."""
    try:
        text = source.read_text(errors="replace")
    except OSError:
        return None
    if ".intel_syntax" in text:
        return None
    lines = text.splitlines()
    for match in _ERROR_LINE.finditer(errors):
        number = int(match.group(2))
        code = lines[number - 1].split("#", 1)[0] if 0 < number <= len(lines) else ""
        if "%" not in code and _BARE_REGISTER.search(code):
            return ("this looks like Intel syntax; GNU as reads AT&T syntax unless the file "
                    "starts with `.intel_syntax noprefix` (or write it for nasm as .asm)")
    return None


def link(errors: str, library: set[str], with_library: bool) -> str | None:
    """Undefined externals and doubly defined names, as ld reports them."""
    missing = sorted(set(_UNDEFINED.findall(errors)))
    if missing:
        names = ", ".join(missing)
        in_library = [name for name in missing if name in library]
        if in_library and not with_library:
            return (f"{', '.join(in_library)} is in tdxsim's guest library, which "
                    "--no-library left out")
        return (f"{names} is defined in none of the inputs: pass an object (.o) or "
                "source that defines it")
    doubled = sorted(set(_MULTIPLE.findall(errors)))
    if doubled:
        return f"{', '.join(doubled)} is defined by more than one input: keep one definition"
    return None
