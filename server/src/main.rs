//! The `switchyard` binary: everything lives in the library; see `cli.rs`.

fn main() -> std::process::ExitCode {
    match switchyard::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
