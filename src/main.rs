//! The `s3rolefs` binary: everything happens in the library's `cli`.

fn main() -> std::process::ExitCode {
    s3rolefs::cli::main()
}
