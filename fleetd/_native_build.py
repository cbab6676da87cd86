"""cffi build script (API mode): compiles native/ into ``fleetd._native`` at install time."""

from pathlib import Path

from cffi import FFI

NATIVE = Path("native")  # relative: setuptools builds from the project root
HEADER = "fleetd_native.h"
SOURCES = ["share.c", "sha256_portable.c", "sha256_shani.c"]

ffibuilder = FFI()
ffibuilder.cdef((Path(__file__).resolve().parent.parent / NATIVE / HEADER).read_text())
ffibuilder.set_source(
    "fleetd._native",
    f'#include <stddef.h>\n#include <stdint.h>\n#include "{HEADER}"\n',
    sources=[str(NATIVE / name) for name in SOURCES],
    include_dirs=[str(NATIVE)],
    # Never -march=native: SHA-NI code carries its own target attributes.
    extra_compile_args=["-O3", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
