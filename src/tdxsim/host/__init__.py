from .constant import ConstantHost
from .vmm import Host, PERSONALITIES

__all__ = ["ConstantHost", "Host", "PERSONALITIES"]
