"""Builds sessid's C extension: the C core (csrc/) and the CPython binding (sessid/*.c).

Environment switches, for development and CI:
    SESSID_DEBUG=1                      -O0 -g3 with assertions live (-UNDEBUG)
    SESSID_SANITIZE=address,undefined   compile and link with these sanitizers
"""

import os
import shlex
import shutil
import subprocess
import tempfile
from glob import glob

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MISSING_HELP = (
    "sessid needs the development files of OpenSSL's libcrypto and of libuuid.\n"
    "On Debian or Ubuntu: apt-get install libssl-dev uuid-dev pkg-config\n"
    "On Fedora: dnf install openssl-devel libuuid-devel pkgconf"
)

# The native libraries: pkg-config name, library name (-lNAME when pkg-config does not know it), and
# a header and a function of each that the binding uses, for the probe.
NATIVE = (
    ("libcrypto", "crypto", "openssl/evp.h", "EVP_sha256"),
    ("uuid", "uuid", "uuid/uuid.h", "uuid_generate"),
)


def pkg_config(flag, package):
    try:
        out = subprocess.run(
            ["pkg-config", flag, package], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return shlex.split(out)


def native_flags(package, library):
    """Compiler and linker flags for one native library, from pkg-config where it knows it."""
    return pkg_config("--cflags", package) or [], pkg_config("--libs", package) or [f"-l{library}"]


def failed(command):
    """Runs a probe step quietly; returns the first line the tool printed when it fails."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode == 0:
        return None
    lines = (result.stderr + result.stdout).strip().splitlines()
    return lines[0] if lines else f"exit status {result.returncode}"


class BuildExt(build_ext):
    """Probes the compiler and the native libraries before compiling, so that whatever is missing
    gets a message that names it instead of a compiler error halfway through the build."""

    def build_extensions(self):
        self.probe()
        super().build_extensions()

    def probe(self):
        # The same commands the real build runs: CC, CFLAGS, LDSHARED and LDFLAGS all apply.
        cc, ld = self.compiler.compiler_so, self.compiler.linker_so
        for program in dict.fromkeys((cc[0], ld[0])):
            if shutil.which(program) is None:
                raise SystemExit(
                    f"error: no C compiler found ({program!r} is not installed or not on PATH)\n"
                    "sessid's core is C: install gcc (apt-get install gcc on Debian or Ubuntu, "
                    "dnf install gcc on Fedora), or set CC to a C compiler."
                )
        with tempfile.TemporaryDirectory() as tmp:
            source, obj = os.path.join(tmp, "probe.c"), os.path.join(tmp, "probe.o")
            for package, library, header, function in NATIVE:
                cflags, libs = native_flags(package, library)
                with open(source, "w") as f:
                    f.write(f"#include <{header}>\n")
                    f.write(f"void (*sessid_probe)(void) = (void (*)(void)){function};\n")
                said = failed(cc + cflags + ["-c", source, "-o", obj])
                if said:
                    raise SystemExit(
                        f"error: cannot compile against lib{library}'s header <{header}>\n"
                        f"  {said}\n{MISSING_HELP}"
                    )
                said = failed(ld + [obj, "-o", os.path.join(tmp, "probe.so")] + libs)
                if said:
                    raise SystemExit(
                        f"error: cannot link against lib{library}: the headers are there, but not "
                        f"lib{library}.so ({' '.join(libs)})\n  {said}\n{MISSING_HELP}"
                    )


def extension():
    cflags, libs = [], []
    for package, library, _, _ in NATIVE:
        found_cflags, found_libs = native_flags(package, library)
        cflags += found_cflags
        libs += found_libs
    compile_args = ["-std=c11", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    link_args = list(libs)
    if os.environ.get("SESSID_DEBUG"):
        compile_args += ["-O0", "-g3", "-UNDEBUG", "-DSESSID_FAULT_INJECTION", "-DSESSID_TESTING"]
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
        depends=sorted(glob("csrc/*.h")) + sorted(glob("sessid/_*.h")),
        extra_compile_args=cflags + compile_args,
        extra_link_args=link_args,
    )


setup(ext_modules=[extension()], cmdclass={"build_ext": BuildExt})
