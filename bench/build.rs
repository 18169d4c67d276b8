//! Compiles TTHRESH (vendored with two fixes, see vendor/tthresh/README.md)
//! and its C shim against the system's Eigen 3 headers.

use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=cpp/tthresh_shim.cpp");
    println!("cargo::rerun-if-changed=vendor/tthresh/src");
    println!("cargo::rerun-if-env-changed=EIGEN3_INCLUDE_DIR");
    let eigen = std::env::var_os("EIGEN3_INCLUDE_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/include/eigen3", "/usr/local/include/eigen3"].map(PathBuf::from))
        .find(|p| p.join("Eigen/Dense").is_file())
        .unwrap_or_else(|| {
            panic!(
                "TTHRESH needs the Eigen 3 headers: install libeigen3-dev, \
                 or set EIGEN3_INCLUDE_DIR to the folder holding Eigen/Dense"
            )
        });
    cc::Build::new()
        .cpp(true)
        .std("c++14")
        .include("vendor/tthresh/src")
        .include(eigen)
        .file("cpp/tthresh_shim.cpp")
        // TTHRESH's own warnings (sign comparisons, unused values) are not ours to fix.
        .warnings(false)
        .flag_if_supported("-w")
        .compile("bench_tthresh");
}
