# setuptools needs this hook to compile native/ through cffi at install time.
from setuptools import setup

setup(cffi_modules=["fleetd/_native_build.py:ffibuilder"])
