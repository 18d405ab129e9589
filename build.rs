//! Gives every binary, test, bench and example of this crate an rpath to libtorch, so they run
//! without `LD_LIBRARY_PATH`. torch-sys (`links = "tch"`) hands us its library folder as
//! `DEP_TCH_LIBTORCH_LIB`. It passes the folder on as `DEP_HEADSTART_LIBTORCH_LIB` to crates that
//! depend on headstart (`links = "headstart"`), whose own build scripts give their binaries the
//! same rpath (`headstart new env` writes one).

fn main() {
    // With the Gymnasium bridge, an rpath to libpython too.
    #[cfg(feature = "python")]
    pyo3_build_config::add_libpython_rpath_link_args();
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        let dir = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.into());
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
        println!("cargo:libtorch_lib={}", dir.display());
    }
}
