from .vmm import Host, PERSONALITIES

__all__ = ["Host", "PERSONALITIES"]
