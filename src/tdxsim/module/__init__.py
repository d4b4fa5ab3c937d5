from .dispatcher import NotModelled, TdConfig, TdxModule

__all__ = ["TdxModule", "TdConfig", "NotModelled"]
