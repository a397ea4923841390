# Cross-compiling for arm64 on a Debian x86-64 host: Debian's aarch64 cross compiler and the
# :arm64 multiarch development packages (scripts/setup.sh installs both). Test binaries run under
# qemu-aarch64 user-mode emulation (CMAKE_CROSSCOMPILING_EMULATOR), which ctest and Catch2's test
# discovery use. They load the multiarch runtime (libc6:arm64, libstdc++6:arm64: /lib/ld-linux-aarch64.so.1),
# not the cross toolchain's copy under /usr/aarch64-linux-gnu: with that one (qemu -L), the first
# thread a program starts hangs under Debian 12's qemu 7.2 on this host's kernel.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Multiarch: the libraries are in /usr/lib/aarch64-linux-gnu, the headers in /usr/include.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
