"""Builds sessid's C extension: the C core (csrc/) and the CPython binding (sessid/*.c).

Environment switches, for development and CI:
    SESSID_DEBUG=1                      -O0 -g3 with assertions live (-UNDEBUG)
    SESSID_SANITIZE=address,undefined   compile and link with these sanitizers
"""

import os
import shlex
import subprocess
import sys
import tempfile
from glob import glob

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MISSING_HELP = (
    "sessid needs the development files of OpenSSL's libcrypto and of libuuid.\n"
    "On Debian or Ubuntu: apt-get install libssl-dev uuid-dev pkg-config\n"
    "On Fedora: dnf install openssl-devel libuuid-devel pkgconf"
)


def pkg_config(flag, package):
    try:
        out = subprocess.run(
            ["pkg-config", flag, package], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return shlex.split(out)


def native_flags():
    """Compiler and linker flags for libcrypto and libuuid, from pkg-config where it knows them."""
    cflags, libs = [], []
    for package, fallback in (("libcrypto", "-lcrypto"), ("uuid", "-luuid")):
        found_cflags = pkg_config("--cflags", package)
        found_libs = pkg_config("--libs", package)
        cflags += found_cflags or []
        libs += found_libs if found_libs else [fallback]
    return cflags, libs


class BuildExt(build_ext):
    """Checks that the native headers are there before compiling, so a missing package gets a
    message that names it instead of a compiler error."""

    def run(self):
        self.check_native_headers()
        super().run()

    def check_native_headers(self):
        cflags, _ = native_flags()
        source = "#include <openssl/evp.h>\n#include <uuid/uuid.h>\nint main(void) { return 0; }\n"
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "probe.c")
            with open(path, "w") as f:
                f.write(source)
            compiler = self.compiler
            if compiler is None or isinstance(compiler, str):
                from distutils.ccompiler import new_compiler
                from distutils.sysconfig import customize_compiler

                compiler = new_compiler()
                customize_compiler(compiler)
            try:
                compiler.compile([path], output_dir=tmp, extra_postargs=cflags)
            except Exception as exc:
                sys.stderr.write("\n" + MISSING_HELP + "\n\n")
                raise SystemExit(f"error: OpenSSL or libuuid headers not found ({exc})") from None


def extension():
    cflags, libs = native_flags()
    compile_args = ["-std=c11", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    link_args = list(libs)
    if os.environ.get("SESSID_DEBUG"):
        compile_args += ["-O0", "-g3", "-UNDEBUG"]
    else:
        compile_args += ["-O2"]
    sanitizers = os.environ.get("SESSID_SANITIZE")
    if sanitizers:
        san = [f"-fsanitize={sanitizers}", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
        compile_args += san
        link_args += san
    return Extension(
        "sessid._sessid",
        sources=sorted(glob("csrc/*.c")) + sorted(glob("sessid/_*.c")),
        depends=sorted(glob("csrc/*.h")) + ["sessid/_binding.h"],
        extra_compile_args=cflags + compile_args,
        extra_link_args=link_args,
    )


setup(ext_modules=[extension()], cmdclass={"build_ext": BuildExt})
