"""tdxsim: run and check Intel TDX guest code without TDX hardware."""
from .errors import TdxsimError
from .exits import FatalError, GuestExit, Halt, VmExit, VmResume
from .host import Host
from .module import TdConfig
from .result import GuestStopped, RunResult
from .td import TD

__all__ = ["TD", "TdConfig", "Host", "RunResult", "GuestStopped", "TdxsimError",
           "VmExit", "VmResume", "Halt", "GuestExit", "FatalError"]
__version__ = "0.1.0"
