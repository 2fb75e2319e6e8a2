//! Gives `libtruetime.so` the SONAME `libtruetime.so.0`, so programs linked against it (through
//! the package's `libtruetime.so` symlink) ask for the ABI version, as Debian's shared
//! libraries do. Bump it with any incompatible change to `include/truetime.h`.

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libtruetime.so.0");
}
