//! `kinfold`: run the demo, the gateway or one agency's adapter.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kinfold::demo::{self, DemoOptions};
use kinfold_adapter::AdapterConfig;
use kinfold_fhir::Agency;
use kinfold_gateway::GatewayConfig;
use kinfold_store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "kinfold",
    version,
    about = "Kinfold: an inter-agency record exchange for child health"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The gateway and all five adapters on this machine, seeded with synthetic families.
    Demo {
        /// Where the SQLite databases, the token secret and demo.json live.
        #[arg(long, default_value = "kinfold-data")]
        data_dir: PathBuf,
        /// The gateway's port; the adapters take the next five.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// How many synthetic families to create (first run only).
        #[arg(long, default_value_t = 200)]
        families: usize,
        /// Stop creating families once this many children exist (for benchmark data sets).
        #[arg(long)]
        children: Option<usize>,
        /// Give every child exactly this many weight measurements (benchmark data set).
        #[arg(long)]
        weights_per_child: Option<usize>,
        /// How long the gateway waits for each agency, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        adapter_timeout_ms: u64,
    },
    /// The gateway alone (the production shape).
    Gateway {
        /// TOML configuration file; KINFOLD_GATEWAY_* or KINFOLD_ADAPTER_* variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// One agency's adapter alone (the production shape).
    Adapter {
        /// midwifery, ae, gp, health-visiting or school-nursing.
        #[arg(long)]
        agency: Agency,
        /// TOML configuration file; KINFOLD_GATEWAY_* or KINFOLD_ADAPTER_* variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Issue a bearer token signed with the gateway's first configured key.
    Token {
        /// The gateway's TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Who the token is for.
        #[arg(long)]
        subject: String,
        /// The caller's organisation (ODS code).
        #[arg(long)]
        org: Option<String>,
        /// The caller's role.
        #[arg(long)]
        role: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Command::Demo { .. } => "info,kinfold_http=warn",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KINFOLD_LOG")
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kinfold: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kinfold: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Demo {
            data_dir,
            port,
            families,
            children,
            weights_per_child,
            adapter_timeout_ms,
        } => {
            let mut options = DemoOptions::new(data_dir.clone(), port);
            options.population.families = families;
            options.population.max_children = children;
            options.population.weights_per_child = weights_per_child;
            options.adapter_timeout = Duration::from_millis(adapter_timeout_ms);
            eprintln!(
                "Starting Kinfold (first run seeds synthetic families; this takes a few seconds)…"
            );
            let running = demo::start(options).await.map_err(|e| e.to_string())?;
            print_welcome(&running, &data_dir);
            tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
            eprintln!("Stopping…");
            running.shutdown().await;
            Ok(())
        }
        Command::Gateway { config } => {
            let config: GatewayConfig =
                kinfold::config::load(config.as_deref(), kinfold::config::GATEWAY_ENV)
                    .map_err(|e| e.to_string())?;
            let store = open_store(config.database_url.as_deref(), "gateway").await?;
            let app =
                kinfold_gateway::Application::build(&config, store).map_err(|e| e.to_string())?;
            tracing::info!(
                port = app.port(),
                adapters = config.adapters.len(),
                "gateway listening"
            );
            serve(app.handle(), app.run_until_stopped()).await
        }
        Command::Adapter { agency, config } => {
            let config: AdapterConfig =
                kinfold::config::load(config.as_deref(), kinfold::config::ADAPTER_ENV)
                    .map_err(|e| e.to_string())?;
            let store = open_store(config.database_url.as_deref(), agency.as_str()).await?;
            let app = kinfold_adapter::Application::build(agency, store, &config)
                .map_err(|e| e.to_string())?;
            tracing::info!(port = app.port(), %agency, "adapter listening");
            serve(app.handle(), app.run_until_stopped()).await
        }
        Command::Token {
            config,
            subject,
            org,
            role,
            ttl,
        } => {
            let config: GatewayConfig =
                kinfold::config::load(config.as_deref(), kinfold::config::GATEWAY_ENV)
                    .map_err(|e| e.to_string())?;
            let token = kinfold_gateway::issue_token(
                &config.auth,
                &subject,
                org.as_deref(),
                role.as_deref(),
                ttl,
            )
            .map_err(|e| e.to_string())?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn open_store(url: Option<&str>, name: &str) -> Result<Store, String> {
    match url {
        Some(url) => Store::open(url).await.map_err(|e| format!("database: {e}")),
        None => {
            std::fs::create_dir_all("kinfold-data").map_err(|e| e.to_string())?;
            Store::open_sqlite(&PathBuf::from("kinfold-data").join(format!("{name}.db")))
                .await
                .map_err(|e| format!("database: {e}"))
        }
    }
}

async fn serve(
    handle: actix_web::dev::ServerHandle,
    server: impl Future<Output = std::io::Result<()>>,
) -> Result<(), String> {
    tokio::select! {
        result = server => result.map_err(|e| e.to_string()),
        _ = tokio::signal::ctrl_c() => {
            handle.stop(true).await;
            Ok(())
        }
    }
}

fn print_welcome(running: &demo::RunningDemo, data_dir: &std::path::Path) {
    let info = &running.info;
    let gateway = &info.gateway;
    let id = &info.example_patient.id;
    let nhs = &info.example_patient.nhs_number;
    println!("Kinfold demo is running. Press Ctrl-C to stop.\n");
    println!("  gateway          {gateway}   (API docs: {gateway}/docs/)");
    for (agency, url) in &info.adapters {
        println!("  {agency:<16} {url}");
    }
    if running.seeded > 0 {
        println!(
            "\nLoaded {} synthetic records over the adapters' FHIR ingest API.",
            running.seeded
        );
    } else {
        println!("\nReusing the data already in {}.", data_dir.display());
    }
    println!("\nBearer token (valid 12 hours):\n  {}\n", info.token);
    println!("Try:");
    println!("  curl -s {gateway}/metadata");
    println!(
        "  curl -s -H \"Authorization: Bearer $TOKEN\" '{gateway}/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}'"
    );
    println!("  curl -s -H \"Authorization: Bearer $TOKEN\" {gateway}/Patient/{id}/\\$everything");
    println!(
        "\n(with TOKEN=$(jq -r .token {}/demo.json))",
        data_dir.display()
    );
    println!("The same details are in {}/demo.json.", data_dir.display());
}
