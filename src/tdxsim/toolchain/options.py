"""Preprocessor options of a build, and their command-line form (shared by
`tdxsim run`, `check` and `fuzz`)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuildOptions:
    """For `.S` and C sources: -I DIR, -D NAME[=VALUE], --include FILE (read
    before the source, cpp's -include)."""
    include_dirs: tuple[str, ...] = ()
    defines: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()

    def cpp_args(self) -> list[str]:
        return ([f"-I{d}" for d in self.include_dirs] + [f"-D{d}" for d in self.defines]
                + [a for f in self.includes for a in ("-include", f)])

    def argv(self) -> list[str]:
        """The same options on a tdxsim command line."""
        return ([w for d in self.include_dirs for w in ("-I", d)]
                + [w for d in self.defines for w in ("-D", d)]
                + [w for f in self.includes for w in ("--include", f)])

    @classmethod
    def from_args(cls, args) -> "BuildOptions":
        return cls(tuple(args.include_dir), tuple(args.define), tuple(args.include))


def add_arguments(p) -> None:
    p.add_argument("-I", dest="include_dir", action="append", default=[], metavar="DIR",
                   help="add DIR to the preprocessor's include path (.S and .c sources)")
    p.add_argument("-D", dest="define", action="append", default=[], metavar="NAME[=VALUE]",
                   help="define a preprocessor macro (.S and .c sources)")
    p.add_argument("--include", action="append", default=[], metavar="FILE",
                   help="read FILE before each .S/.c source (cpp -include)")
