//! `utipcd`: the utipc node daemon. See [`utipc_control::daemon`].

use std::process::ExitCode;

use clap::Parser;
use utipc_control::daemon::{self, DaemonArgs};

fn main() -> ExitCode {
    let args = DaemonArgs::parse();
    match daemon::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "{} utipcd: error: {e}",
                daemon::utc_timestamp(std::time::SystemTime::now())
            );
            ExitCode::FAILURE
        }
    }
}
