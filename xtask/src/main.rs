//! The `cargo xtask` binary: everything happens in [`xtask::main`].

fn main() -> std::process::ExitCode {
    xtask::main()
}
