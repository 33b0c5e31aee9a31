//! `keepalive-lab`: serve the lab on one port until Ctrl-C.
//!
//! Usually started by `cargo xtask run`, which builds the frontend first.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use keepalive_lab_server::{Config, Lab, listener};
use tokio::net::TcpListener;

const USAGE: &str = "\
usage: keepalive-lab [--port N] [--bind ADDR] [--dist DIR]

  --port N     TCP port to listen on (default 8080; 0 picks a free one)
  --bind ADDR  address to listen on (default 127.0.0.1)
  --dist DIR   the built frontend (default ./dist, made by `cargo xtask build`)";

/// Command-line options.
#[derive(Debug)]
struct Options {
    port: u16,
    bind: IpAddr,
    dist: PathBuf,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        port: 8080,
        bind: IpAddr::from([127, 0, 0, 1]),
        dist: PathBuf::from("dist"),
    };
    while let Some(flag) = args.next() {
        let mut value = |what: &str| {
            args.next()
                .ok_or_else(|| format!("{flag} needs {what}\n\n{USAGE}"))
        };
        match flag.as_str() {
            "--port" => {
                let v = value("a port number")?;
                options.port = v
                    .parse()
                    .map_err(|_| format!("--port takes 0 to 65535, got `{v}`"))?;
            }
            "--bind" => {
                let v = value("an IP address")?;
                options.bind = v.parse().map_err(|_| {
                    format!("--bind takes an IP address such as 127.0.0.1 or ::1, got `{v}`")
                })?;
            }
            "--dist" => options.dist = PathBuf::from(value("a directory")?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown option `{other}`\n\n{USAGE}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "keepalive_lab_server=info".into()),
        )
        .init();
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if !options.dist.join("index.html").is_file() {
        eprintln!(
            "warning: {} has no index.html; build the frontend with `cargo xtask build` \
             (or start with `cargo xtask run`)",
            options.dist.display()
        );
    }
    let listener = match TcpListener::bind((options.bind, options.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "cannot listen on {}:{}: {e}\nIs another lab running? Try another --port.",
                options.bind, options.port
            );
            return ExitCode::FAILURE;
        }
    };
    let address = match listener.local_addr() {
        Ok(address) => address,
        Err(e) => {
            eprintln!("cannot read the listening address: {e}");
            return ExitCode::FAILURE;
        }
    };
    let lab = Lab::new(Config {
        dist_dir: options.dist,
        ..Config::default()
    });
    println!("keepalive-lab is running: open http://{address}/   (Ctrl-C stops it)");
    let server = tokio::spawn(listener::serve(listener, lab.clone()));
    let _ = tokio::signal::ctrl_c().await;
    println!("shutting down: closing every connection");
    lab.begin_shutdown();
    match server.await {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("server error: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("server task failed: {e}");
            ExitCode::FAILURE
        }
    }
}
