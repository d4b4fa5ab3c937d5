"""tdxsim for a guest project's own tests (the pytest plugin's public API).

    from tdxsim.testing import td_from, assert_conforms

    def test_boots(td_from):                     # the plugin's fixture
        result = td_from("guest/main.c").run()
        assert result.ok, result.describe()

    def test_stub():
        assert_conforms("src/hypercall.S", "__tdx_hypercall", "linux-6.7")

Both build sources exactly as `tdxsim run`/`check` do (tdxsim.toolchain).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .host import Host
from .image import Image
from .module import TdConfig
from .td import TD
from .toolchain import load_guest
from .toolchain.options import BuildOptions

Sources = str | Path | Iterable[str | Path]


def _paths(sources: Sources) -> list[str | Path]:
    return [sources] if isinstance(sources, (str, Path)) else list(sources)


def td_from(source_or_elf: Sources, host: str | Host = "kvm",
            config: TdConfig | dict | None = None, entry: str = "_start",
            library: bool = True, include_dirs: Iterable[str] = (),
            defines: Iterable[str] = (), **td_options) -> TD:
    """A TD from sources (.S .s .asm .nasm .c .o, one path or several) or one
    ELF executable.  host: a personality name or a Host; config: a TdConfig or
    its fields as a dict; td_options: TD's own (memory=, ns_per_insn=, ...)."""
    if isinstance(config, dict):
        config = TdConfig(**config)
    image = load_guest(_paths(source_or_elf), entry, library,
                       BuildOptions(tuple(map(str, include_dirs)), tuple(defines)))
    return TD(image, host=host, config=config, **td_options)


def assert_conforms(stub: Sources | Image, symbol: str, abi: str,
                    library: bool = False) -> None:
    """Check `symbol` in `stub` against the contract `abi` (a built-in name or
    a .toml contract file); raise AssertionError carrying the checker's text
    report when any property fails."""
    from .check import check, load
    from .check.report import RENDERERS

    contract = load(str(abi))
    image = stub if isinstance(stub, Image) else load_guest(_paths(stub), symbol, library)
    if symbol not in image.symbols:
        raise AssertionError(f"{image.path} has no symbol '{symbol}'")
    report = check(image, symbol, contract)
    if report.failed:
        raise AssertionError("\n" + RENDERERS["text"](report))
