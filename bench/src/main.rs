//! `bench`: side-by-side benchmarks of Strata against other compressors.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bench", about = "Strata against SZ3, ZFP, SPERR and TTHRESH")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rate–distortion: Strata, SZ3, ZFP, SPERR and TTHRESH on one volume
    /// at matched ratios; writes OUT/rd-NAME.csv and OUT/rd-NAME.png.
    Rd(bench::rd::Options),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Rd(options) => bench::rd::run(&options).map(|o| {
            println!("codec   ratio    PSNR dB  max error   encode s  decode s  config");
            for r in &o.rows {
                println!(
                    "{:<7} {:>7.1}  {:>7.2}  {:>10.3e}  {:>8.2}  {:>8.2}  {}",
                    r.codec,
                    r.ratio,
                    r.psnr,
                    r.max_abs_error,
                    r.encode_seconds,
                    r.decode_seconds,
                    r.config
                );
            }
            eprintln!("wrote {} and {}", o.csv.display(), o.png.display());
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
