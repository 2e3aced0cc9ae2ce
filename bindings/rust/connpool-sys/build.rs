//! Finds libconnpool and tells rustc to link it (dynamically), in this order:
//!
//! 1. `CONNPOOL_LIB_DIR`: a directory holding libconnpool.so (e.g. the repository's `build/`).
//! 2. `pkg-config --libs connpool` (the `pkg-config` command, honouring `PKG_CONFIG` and
//!    `PKG_CONFIG_PATH`), for an installed library (`make install`).
//! 3. `../../../build` relative to this crate, i.e. the repository's own build directory, if it
//!    exists.
//! 4. Otherwise only `-lconnpool`, hoping the library is in the linker's default path.
//!
//! No rpath is set: at run time the dynamic loader must find libconnpool.so.1 (an installed
//! library, or LD_LIBRARY_PATH).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for var in [
        "CONNPOOL_LIB_DIR",
        "PKG_CONFIG",
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "PKG_CONFIG_SYSROOT_DIR",
    ] {
        println!("cargo:rerun-if-env-changed={}", var);
    }

    if let Some(dir) = env::var_os("CONNPOOL_LIB_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if !dir.join("libconnpool.so").exists() && !dir.join("libconnpool.a").exists() {
            println!(
                "cargo:warning=CONNPOOL_LIB_DIR={}: no libconnpool.so there",
                dir.display()
            );
        }
        link_dir(&dir);
        return;
    }

    if let Some(flags) = pkg_config_libs() {
        let mut linked = false;
        for flag in flags.split_whitespace() {
            if let Some(dir) = flag.strip_prefix("-L") {
                println!("cargo:rustc-link-search=native={}", dir);
                println!("cargo:root={}", dir);
            } else if let Some(lib) = flag.strip_prefix("-l") {
                println!("cargo:rustc-link-lib={}", lib);
                linked |= lib == "connpool";
            }
        }
        if !linked {
            println!("cargo:rustc-link-lib=connpool");
        }
        return;
    }

    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let in_tree = manifest.join("../../../build");
    if in_tree.is_dir() {
        let dir = in_tree.canonicalize().unwrap_or(in_tree);
        link_dir(&dir);
        return;
    }

    println!(
        "cargo:warning=libconnpool not found: set CONNPOOL_LIB_DIR, or install it so that \
         `pkg-config connpool` finds it; trying -lconnpool in the default paths"
    );
    println!("cargo:rustc-link-lib=connpool");
}

fn link_dir(dir: &Path) {
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=connpool");
    println!("cargo:root={}", dir.display());
}

/// The output of `pkg-config --libs connpool`, or None if pkg-config is missing or does not
/// know the package.
fn pkg_config_libs() -> Option<String> {
    let program = env::var_os("PKG_CONFIG")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "pkg-config".into());
    let out = Command::new(program)
        .args(["--libs", "connpool"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()
}
