"""Builds sessid's C extension: the C core (csrc/) and the CPython binding (sessid/*.c).

Environment switches, for development and CI:
    SESSID_DEBUG=1                      -O0 -g3 with assertions live (-UNDEBUG)
    SESSID_SANITIZE=address,undefined   compile and link with these sanitizers
    SESSID_WERROR=1                     a compiler warning is an error (CI builds this way)

A build keeps the optimisation level of the interpreter's flags and of CFLAGS (-O2 only when they
give none), and is hardened as distributions build C: -fstack-protector-strong and full RELRO
(-z relro -z now) always, -D_FORTIFY_SOURCE=2 where the code is optimised (FORTIFY needs it) and
not sanitized. An optimised build that is neither sanitized nor a debug one is also optimised at
link time (-flto) where the compiler and the linker take it: a lookup's path runs through a dozen
small functions in as many files, and -flto inlines them as it would within one file.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from glob import glob

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MISSING_HELP = (
    "sessid needs the development files of OpenSSL's libcrypto (3.0 or later) and of libuuid.\n"
    "On Debian or Ubuntu: apt-get install libssl-dev uuid-dev pkg-config\n"
    "On Fedora: dnf install openssl-devel libuuid-devel pkgconf"
)

# The native libraries: pkg-config name, library name (-lNAME when pkg-config does not know it), and
# a header and a function of each that the binding needs, for the probe (EVP_MD_fetch: OpenSSL 3).
NATIVE = (
    ("libcrypto", "crypto", "openssl/evp.h", "EVP_MD_fetch"),
    ("uuid", "uuid", "uuid/uuid.h", "uuid_generate"),
)
# What each library must be when its header is there but the function is not.
NEEDED_VERSION = {"libcrypto": "OpenSSL 3.0 or later"}


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


def version_found(package, cc, cflags, tmp):
    """The version of a native library that the build finds, as it says it, or None: pkg-config's
    word, else (for libcrypto) OPENSSL_VERSION_TEXT from the header the compiler reads."""
    said = pkg_config("--modversion", package)
    if said:
        return f"{package} {' '.join(said)}"
    if package != "libcrypto":
        return None
    source = os.path.join(tmp, "version.c")
    with open(source, "w") as f:
        f.write("#include <openssl/opensslv.h>\nsessid_version OPENSSL_VERSION_TEXT\n")
    result = subprocess.run(cc + cflags + ["-E", source], capture_output=True, text=True)
    for line in result.stdout.splitlines():
        if line.startswith("sessid_version "):
            return line.split(None, 1)[1].strip().strip('"')
    return None


def optimisation(flags):
    """The level that the last -O of a compile command sets, or None when it has none."""
    level = None
    for flag in flags:
        if flag.startswith("-O"):
            level = flag[2:] or "1"
    return level


def hardening(flags, sanitized):
    """Compile and link flags that harden a release build, given the compile command so far (the
    interpreter's flags, CFLAGS and CPPFLAGS, and the extension's own)."""
    compile_args = ["-fstack-protector-strong"]
    level = optimisation(flags)
    if level is None:
        compile_args.append("-O2")
        level = "2"
    # FORTIFY needs optimisation (glibc warns without it), and sanitizers check more than it does.
    # The compiler or the interpreter's flags may define it already: a level of 2 or more given
    # explicitly is kept, anything else is undefined first so that -Werror meets no redefinition.
    given = [re.fullmatch(r"-D_FORTIFY_SOURCE=(\d+)", flag) for flag in flags]
    fortify = [int(m.group(1)) for m in given if m]
    if level != "0" and not sanitized and not (fortify and fortify[-1] >= 2):
        compile_args += ["-U_FORTIFY_SOURCE", "-D_FORTIFY_SOURCE=2"]
    link_args = ["-Wl,-z,relro,-z,now"] if sys.platform.startswith("linux") else []
    return compile_args, link_args


class BuildExt(build_ext):
    """Probes the compiler and the native libraries before compiling, so that whatever is missing
    gets a message that names it instead of a compiler error halfway through the build; then adds
    the hardening flags, which depend on the flags the interpreter and the environment give."""

    def build_extensions(self):
        self.probe()
        sanitized = bool(os.environ.get("SESSID_SANITIZE"))
        for ext in self.extensions:
            compile_args, link_args = hardening(
                self.compiler.compiler_so + ext.extra_compile_args, sanitized
            )
            level = optimisation(self.compiler.compiler_so + ext.extra_compile_args + compile_args)
            if level != "0" and not sanitized and not os.environ.get("SESSID_DEBUG"):
                lto = self.link_time_optimisation()
                compile_args += lto
                link_args += lto
            ext.extra_compile_args = ext.extra_compile_args + compile_args
            ext.extra_link_args = ext.extra_link_args + link_args
        super().build_extensions()

    def link_time_optimisation(self):
        """["-flto=auto"] or ["-flto"] when the compiler and the linker build a shared object with
        it (clang needs a linker with its plugin), else []: the build goes on without."""
        cc, ld = self.compiler.compiler_so, self.compiler.linker_so
        with tempfile.TemporaryDirectory() as tmp:
            source, obj = os.path.join(tmp, "lto.c"), os.path.join(tmp, "lto.o")
            with open(source, "w") as f:
                f.write("int sessid_probe(int x) { return x + 1; }\n")
            for flag in ("-flto=auto", "-flto"):
                if not failed(cc + [flag, "-c", source, "-o", obj]) and not failed(
                    ld + [flag, obj, "-o", os.path.join(tmp, "lto.so")]
                ):
                    return [flag]
        return []

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
                said = failed(cc + cflags + ["-c", source, "-o", obj])
                if said:
                    raise SystemExit(
                        f"error: cannot compile against lib{library}'s header <{header}>\n"
                        f"  {said}\n{MISSING_HELP}"
                    )
                with open(source, "a") as f:
                    f.write(f"void (*sessid_probe)(void) = (void (*)(void)){function};\n")
                said = failed(cc + cflags + ["-c", source, "-o", obj])
                if said:
                    found = version_found(package, cc, cflags, tmp) or "a version that does not say"
                    needed = NEEDED_VERSION.get(package, f"a lib{library} that has it")
                    raise SystemExit(
                        f"error: lib{library}'s header <{header}> has no {function}(): sessid "
                        f"needs {needed}, and the build found {found}\n  {said}\n{MISSING_HELP}"
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
    if os.environ.get("SESSID_WERROR"):
        compile_args += ["-Werror"]
    if os.environ.get("SESSID_DEBUG"):
        compile_args += ["-O0", "-g3", "-UNDEBUG", "-DSESSID_FAULT_INJECTION", "-DSESSID_TESTING"]
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
