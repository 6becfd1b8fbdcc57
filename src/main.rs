//! The `dyad` binary: parses arguments, calls the library, picks the exit code.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
