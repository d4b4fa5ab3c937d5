"""Builds tdxsim's optional compiled hooks; tdxsim falls back to Python without them."""
from setuptools import Extension, setup

NATIVE = ["src/tdxsim/_native.c", "src/tdxsim/vcpu/counter.c", "src/tdxsim/vcpu/traps.c"]

setup(ext_modules=[Extension("tdxsim._native", NATIVE, optional=True,
                             extra_compile_args=["-O2", "-fvisibility=hidden"])])
