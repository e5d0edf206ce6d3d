# Cross build for aarch64 Linux (scripts/cross_test_aarch64.sh):
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
# Compiler: Debian's gcc-aarch64-linux-gnu (links against its libc and
# libgomp in /usr/aarch64-linux-gnu). OpenBLAS, LAPACKE and cJSON: the :arm64 multiarch
# packages (/usr/lib/aarch64-linux-gnu, /usr/include/aarch64-linux-gnu),
# found through CMAKE_LIBRARY_ARCHITECTURE; they install beside the amd64
# ones without removing them (checked on Debian 12). Tests run through
# qemu-aarch64 (CMAKE_CROSSCOMPILING_EMULATOR), so ctest needs no binfmt
# registration; qemu's default CPU ("max") has ASIMD and dotprod, so both
# NEON kernel paths run.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# Libraries and headers: the cross sysroot and the multiarch folders, never the
# amd64 ones; programs (qemu) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu /usr/include/x86_64-linux-gnu)

# The guest runs on the multiarch runtime (libc6:arm64, libgomp1:arm64 and
# the libraries above; /lib/ld-linux-aarch64.so.1 is on the host), so qemu
# needs no -L prefix. Not the cross toolchain's /usr/aarch64-linux-gnu: its
# ld.so (glibc 2.36-8cross1) with the multiarch libc.so.6 (2.36-9) spins
# forever at start-up.
find_program(SPQR_QEMU_AARCH64 qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR "${SPQR_QEMU_AARCH64}")
