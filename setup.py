"""Builds the optional C instruction counter; tdxsim falls back to Python without it."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("tdxsim.vcpu._counter", ["src/tdxsim/vcpu/_counter.c"],
                             optional=True)])
