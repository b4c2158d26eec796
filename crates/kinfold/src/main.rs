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
        /// "Not found" answers about people one caller may have a minute before it is answered
        /// 429 (default 30; the timing benchmarks raise it to time the answers themselves).
        #[arg(long)]
        max_misses_per_caller: Option<u64>,
    },
    /// The gateway alone (the production shape).
    Gateway {
        /// TOML configuration file; KINFOLD_GATEWAY_* or KINFOLD_ADAPTER_* variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a service's configuration before starting it, as `nginx -t` does: the database
    /// (there and migrated), every certificate and key (each the other's), the token, SMART
    /// and event keys, and whether the adapters (or, for an adapter, the gateway) answer over
    /// the configured TLS. One line per finding; exits 1 if anything would fail. Changes
    /// nothing.
    Check {
        /// The service's TOML configuration file (environment variables override it, as at
        /// start).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Check an adapter's configuration (midwifery, ae, gp, health-visiting,
        /// school-nursing); without it, the gateway's.
        #[arg(long)]
        agency: Option<Agency>,
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
    /// Feed a file to an agency's running adapter through its ingest pipeline: an extract
    /// (JSON Lines) for midwifery, health visiting and school nursing, HL7 v2 messages for A&E
    /// (over MLLP), a FHIR Bundle for the GP. Prints a summary (stored, unchanged, rejected
    /// with line numbers); exits 1 if any row was rejected.
    Import {
        /// midwifery, ae, gp, health-visiting or school-nursing.
        #[arg(long)]
        agency: Agency,
        /// The file.
        file: PathBuf,
        /// The adapter's base URL. Default: from kinfold-data/demo.json.
        #[arg(long)]
        adapter: Option<String>,
        /// The A&E adapter's MLLP address (HOST:PORT). Default: from kinfold-data/demo.json.
        #[arg(long)]
        mllp: Option<String>,
        /// Where demo.json is, when the addresses come from it.
        #[arg(long, default_value = "kinfold-data")]
        data_dir: PathBuf,
        /// The feed's client certificate (PEM). Default: demo.json's client_tls.
        #[arg(long, requires_all = ["key", "ca"])]
        cert: Option<PathBuf>,
        /// Its private key (PEM).
        #[arg(long, requires_all = ["cert", "ca"])]
        key: Option<PathBuf>,
        /// HL7 v2: how many MLLP connections to keep busy at once (each patient's messages in
        /// order over one of them).
        #[arg(long, default_value_t = kinfold::import::MLLP_CONNECTIONS)]
        connections: usize,
        /// The authority the adapter's certificate chains to (PEM).
        #[arg(long, requires_all = ["cert", "key"])]
        ca: Option<PathBuf>,
    },
    /// Create a database's tables, or bring them up to this release (run before starting a new
    /// release's services). Idempotent: a database already current is left as it is.
    Migrate {
        /// The database: `sqlite://PATH` or `postgres://…`, as in the service's configuration.
        #[arg(long)]
        db: String,
    },
    /// Play a family's story through the real feeds on a simulated clock and report what
    /// Kinfold raised, who was told and who acted (docs/scenarios.md).
    Scenario {
        #[command(subcommand)]
        command: ScenarioCommand,
    },
    /// Check or checkpoint the audit ledger. Read-only: never migrates or writes, so it runs
    /// as a database role that may only SELECT.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// The person index, as an identity steward looks at it (reads only).
    Identity {
        #[command(subcommand)]
        command: IdentityCommand,
    },
    /// Score a CSV of growth measurements against UK-WHO: reads standard input, writes the
    /// rows with sds, centile and flag added to standard output, and reports bad rows (by line
    /// number) on standard error. Columns as the RCPCH growth API names them: sex,
    /// birth_date, observation_date, gestation_weeks, gestation_days, measurement_method
    /// (weight, height, bmi, ofc), observation_value. Exits 1 if any row was bad.
    Growth,
    /// Sign what a SMART system client sends, with its private key (to try the API from a
    /// shell; an EPR integration does this itself). The client is demo.json's smart_client.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
        /// Where demo.json is (when the client's details are not given below).
        #[arg(long, default_value = "kinfold-data", global = true)]
        data_dir: PathBuf,
        /// The client's private key (PEM, PKCS#8). With --client-id, --kid and --token-url
        /// (and --audience for requesters), the client is this one, not the demo's.
        #[arg(long, global = true, requires_all = ["client_id", "kid"])]
        key: Option<PathBuf>,
        /// The client id registered at the gateway.
        #[arg(long, global = true)]
        client_id: Option<String>,
        /// The key's id (`kid`) registered at the gateway.
        #[arg(long, global = true)]
        kid: Option<String>,
        /// The key's algorithm: ES384 or RS384.
        #[arg(long, global = true, default_value = "ES384")]
        alg: String,
        /// The token endpoint (the assertion's `aud`), e.g. https://kinfold.example.nhs.uk/auth/token.
        #[arg(long, global = true)]
        token_url: Option<String>,
        /// The gateway's audience (the requester's `aud`; `auth.audience`).
        #[arg(long, global = true, default_value = "kinfold-gateway")]
        audience: String,
    },
    /// Issue a bearer token signed with the gateway's first configured key. The issue is
    /// recorded first: left in the gateway database's ledger inbox, which the running gateway
    /// appends to its ledger within a few seconds (or at its next start). If it cannot be
    /// recorded, no token is printed.
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
        /// The caller's role (`gp`, `health-visitor`, `safeguarding-professional`, …).
        #[arg(long)]
        role: Option<String>,
        /// The caller's name.
        #[arg(long)]
        name: Option<String>,
        /// Purpose of use: `direct-care`, `safeguarding` or `override`.
        #[arg(long, default_value = "direct-care")]
        purpose: String,
        /// Why an override is needed (with `--purpose override`).
        #[arg(long)]
        justification: Option<String>,
        /// Lifetime in seconds (at most the gateway's `auth.max_lifetime_seconds`).
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// Who is issuing it, for the audit record. Default: the login name ($USER or
        /// $LOGNAME); with neither, this must be given.
        #[arg(long)]
        operator: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum IdentityCommand {
    /// The match weights the gateway's person index uses now (estimated from its own records
    /// once it holds 1,000): for each field and level of agreement, how often one person's
    /// two records agree so (m), how often two people's do (u), and the weight log2(m/u) in
    /// bits. An exact family or given name weighs by the name's own frequency instead.
    Weights {
        /// The gateway's database. Default: sqlite://kinfold-data/gateway.db
        #[arg(long)]
        db: Option<String>,
    },
    /// Every agency record the person index holds and the person it is filed under, as CSV
    /// (agency, reference, person): the record locator, for a steward's check or a linkage
    /// benchmark. No names or dates: only ids (an agency's record id may carry the NHS
    /// number, as `Patient/nhs-…` does).
    Links {
        /// The gateway's database. Default: sqlite://kinfold-data/gateway.db
        #[arg(long)]
        db: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ScenarioCommand {
    /// Start Kinfold (the gateway and five adapters, no data) on a clock that starts at the
    /// scenario's start, play its timeline, check its expectations, and write its report
    /// (Markdown and JSON). Exits 1 if an expectation is not met.
    Run {
        /// The scenario file (YAML).
        file: PathBuf,
        /// The gateway's database (postgres://…). Default: SQLite in a fresh folder.
        #[arg(long)]
        database: Option<String>,
        /// Where to write FILE-STEM.report.md and FILE-STEM.report.json. Default: the current
        /// folder.
        #[arg(long, default_value = ".")]
        report_dir: PathBuf,
        /// After the report, keep Kinfold running on the scenario's data (its clock stopped at
        /// the scenario's end) and print the liaison dashboard's address, until Ctrl-C.
        #[arg(long)]
        serve: bool,
    },
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Recompute the tree from the stored records, check every signature, and (with
    /// --checkpoint) that the log still extends a checkpoint saved earlier. Names the first
    /// entry that does not match; exits 1 if anything does not.
    Verify {
        /// The gateway's database. Default: sqlite://kinfold-data/gateway.db
        #[arg(long)]
        db: Option<String>,
        /// The ledger's Ed25519 public key, base64 (a running gateway serves it at
        /// `GET /ledger/v1/public-key`). Default: from --gateway, else kinfold-data/demo.json.
        #[arg(long)]
        public_key: Option<String>,
        /// A running gateway's base URL, to fetch the public key from
        /// (`GET {URL}/ledger/v1/public-key`). Better: keep the key from a trusted source and
        /// give --public-key, so that the ledger is not checked against a key it served.
        #[arg(long, conflicts_with = "public_key")]
        gateway: Option<String>,
        /// A checkpoint saved earlier with `kinfold ledger checkpoint`.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Print the latest signed tree head as JSON (keep it to hold the operator to account).
    Checkpoint {
        /// The gateway's database. Default: sqlite://kinfold-data/gateway.db
        #[arg(long)]
        db: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Growth = cli.command {
        return growth();
    }
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
        // Colour only on a terminal: a log file or collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
        Err(message) if message == REPORTED_FAILURE => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("kinfold: {message}");
            ExitCode::FAILURE
        }
    }
}

/// An adapter's file may say which agency it is for (`agency = "gp"`): a guard against
/// starting one agency's adapter with another's file and database.
fn same_agency(config: &AdapterConfig, agency: Agency) -> Result<(), String> {
    match config.agency {
        Some(written) if written != agency => Err(format!(
            "configuration: the file says agency = \"{written}\" but --agency {agency} was given: is this the right file?"
        )),
        _ => Ok(()),
    }
}

/// `kinfold growth`: standard input to standard output, no runtime needed.
fn growth() -> ExitCode {
    let output = std::io::BufWriter::new(std::io::stdout().lock());
    match kinfold::growth_csv::run(std::io::stdin().lock(), output, std::io::stderr()) {
        Ok(summary) if summary.rejected == 0 => ExitCode::SUCCESS,
        Ok(summary) => {
            eprintln!(
                "kinfold growth: {} rows scored, {} rows could not be read (listed above)",
                summary.written, summary.rejected
            );
            ExitCode::FAILURE
        }
        Err(message) => {
            eprintln!("kinfold growth: {message}");
            ExitCode::FAILURE
        }
    }
}

/// What `kinfold client` signs.
#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// A new ES384 signing key: writes the private key (PKCS#8 PEM, readable by its owner
    /// only) to --out, and prints the public JWK Set to register at the gateway
    /// (`[[smart.clients]] jwks`).
    Keygen {
        /// The key's id, as the gateway registers it and the JWT header names it.
        #[arg(long)]
        kid: String,
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
    },
    /// A client assertion for `POST /auth/token` (five minutes, a new jti).
    Assertion,
    /// A Kinfold-Requester JWT: who is asking and why (two minutes).
    Requester {
        /// The practitioner's id.
        #[arg(long)]
        subject: String,
        /// Their name.
        #[arg(long)]
        name: Option<String>,
        /// Their role (`gp`, `health-visitor`, `safeguarding-professional`, …).
        #[arg(long)]
        role: String,
        /// Their organisation (ODS code): one the client is registered for.
        #[arg(long)]
        org: String,
        /// Purpose of use: `direct-care`, `safeguarding` or `override`.
        #[arg(long, default_value = "direct-care")]
        purpose: String,
        /// Why an override is needed.
        #[arg(long)]
        justification: Option<String>,
    },
}

/// A client's details given on the command line, instead of the demo's.
struct ClientArgs {
    key: Option<PathBuf>,
    client_id: Option<String>,
    kid: Option<String>,
    alg: String,
    token_url: Option<String>,
    audience: String,
}

fn client(
    command: ClientCommand,
    data_dir: &std::path::Path,
    args: ClientArgs,
) -> Result<(), String> {
    if let ClientCommand::Keygen { kid, out } = &command {
        if out.exists() {
            return Err(format!(
                "{} exists: a key is never overwritten",
                out.display()
            ));
        }
        let (pem, jwks) = kinfold::pki::client_key(kid).map_err(|e| e.to_string())?;
        kinfold::pki::write_secret(out, &pem).map_err(|e| format!("{}: {e}", out.display()))?;
        println!(
            "{}",
            serde_json::to_string_pretty(&jwks).map_err(|e| e.to_string())?
        );
        eprintln!(
            "The private key is in {} (readable by you only; it never leaves the client). Register the JWK Set above at the gateway: [[smart.clients]] jwks.",
            out.display()
        );
        return Ok(());
    }
    let file = match (args.key, args.client_id, args.kid) {
        (Some(private_key), Some(client_id), Some(kid)) => kinfold::smart_client::ClientFile {
            token_endpoint: args.token_url.clone().unwrap_or_default(),
            client_id,
            private_key,
            alg: args.alg,
            kid,
            organisations: Vec::new(),
            audience: args.audience,
        },
        _ => {
            let path = data_dir.join("demo.json");
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "{}: {e} (run kinfold demo first, or give --key, --client-id, --kid and --token-url)",
                    path.display()
                )
            })?;
            let demo: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_value(demo["smart_client"].clone())
                .map_err(|e| format!("{}: no usable smart_client ({e})", path.display()))?
        }
    };
    if matches!(command, ClientCommand::Assertion) && file.token_endpoint.is_empty() {
        return Err("an assertion is addressed to the token endpoint: give --token-url".into());
    }
    let jwt = match command {
        ClientCommand::Keygen { .. } => return Err("keygen signs nothing".into()),
        ClientCommand::Assertion => kinfold::smart_client::assertion(&file)?,
        ClientCommand::Requester {
            subject,
            name,
            role,
            org,
            purpose,
            justification,
        } => kinfold::smart_client::requester(
            &file,
            &kinfold::smart_client::Requester {
                subject,
                name,
                role,
                org,
                purpose,
                justification,
            },
        )?,
    };
    println!("{jwt}");
    Ok(())
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Client {
            command,
            data_dir,
            key,
            client_id,
            kid,
            alg,
            token_url,
            audience,
        } => client(
            command,
            &data_dir,
            ClientArgs {
                key,
                client_id,
                kid,
                alg,
                token_url,
                audience,
            },
        ),
        Command::Import {
            agency,
            file,
            adapter,
            mllp,
            data_dir,
            cert,
            key,
            ca,
            connections,
        } => {
            let tls = match (cert, key, ca) {
                (Some(cert), Some(key), Some(ca)) => {
                    Some(kinfold_http::tls::ClientTls { ca, cert, key })
                }
                _ => None,
            };
            import(agency, &file, adapter, mllp, tls, &data_dir, connections).await
        }
        Command::Demo {
            data_dir,
            port,
            families,
            children,
            weights_per_child,
            adapter_timeout_ms,
            max_misses_per_caller,
        } => {
            let mut options = DemoOptions::new(data_dir.clone(), port);
            if let Some(most) = max_misses_per_caller {
                options.refusals.max_misses_per_caller = most;
            }
            options.population.families = families;
            options.population.max_children = children;
            options.population.weights_per_child = weights_per_child;
            options.adapter_timeout = Duration::from_millis(adapter_timeout_ms);
            eprintln!(
                "Starting Kinfold (first run seeds synthetic families; this takes a few seconds)…"
            );
            let running = demo::start(options).await.map_err(|e| e.to_string())?;
            print_welcome(&running, &data_dir);
            shutdown_signal().await?;
            eprintln!("Stopping…");
            running.shutdown().await;
            Ok(())
        }
        Command::Gateway { config } => {
            let config: GatewayConfig =
                kinfold::config::load(config.as_deref(), kinfold::config::GATEWAY_ENV)
                    .map_err(|e| e.to_string())?;
            let store = open_store(config.database_url.as_deref(), "gateway").await?;
            let ledger = kinfold_gateway::Ledger::open(store.clone(), &config.ledger)
                .await
                .map_err(|e| format!("ledger: {e}"))?;
            // Ledger::open recomputed the tree from every stored entry and checked every
            // signed head: it refuses to open a ledger that does not verify.
            tracing::info!(entries = ledger.size(), "ledger verified at start");
            let app = kinfold_gateway::build(&config, store, ledger).map_err(|e| e.to_string())?;
            tracing::info!(
                port = app.port(),
                adapters = config.adapters.len(),
                tls = config.tls.is_some(),
                "gateway listening"
            );
            let served = serve(app.handle(), app.run_until_stopped()).await;
            tracing::info!("gateway stopped");
            served
        }
        Command::Adapter { agency, config } => {
            let config: AdapterConfig =
                kinfold::config::load(config.as_deref(), kinfold::config::ADAPTER_ENV)
                    .map_err(|e| e.to_string())?;
            same_agency(&config, agency)?;
            let store = open_store(config.database_url.as_deref(), agency.as_str()).await?;
            let ledger = kinfold_gateway::Ledger::open(store.clone(), &config.ledger)
                .await
                .map_err(|e| format!("ledger: {e}"))?;
            tracing::info!(%agency, entries = ledger.size(), "ledger verified at start");
            let app = kinfold_adapter::build(agency, store, ledger, &config)
                .map_err(|e| e.to_string())?;
            tracing::info!(port = app.port(), %agency, "adapter listening");
            if let Some(port) = app.mllp_port() {
                tracing::info!(
                    port,
                    %agency,
                    tls = !config.mllp_plain,
                    "adapter taking HL7 v2 over MLLP"
                );
            }
            let served = serve(app.handle(), app.run_until_stopped()).await;
            tracing::info!(%agency, "adapter stopped");
            served
        }
        Command::Ledger { command } => ledger(command).await,
        Command::Scenario {
            command:
                ScenarioCommand::Run {
                    file,
                    database,
                    report_dir,
                    serve,
                },
        } => scenario(&file, database, &report_dir, serve).await,
        Command::Identity {
            command: IdentityCommand::Links { db },
        } => {
            let store = open_read_only(db).await?;
            let links = kinfold_gateway::record_links(&store)
                .await
                .map_err(|e| e.to_string())?;
            let mut out = csv::Writer::from_writer(std::io::stdout().lock());
            out.write_record(["agency", "reference", "person"])
                .map_err(|e| e.to_string())?;
            for (agency, reference, person) in links {
                out.write_record([agency, reference, person])
                    .map_err(|e| e.to_string())?;
            }
            out.flush().map_err(|e| e.to_string())
        }
        Command::Identity {
            command: IdentityCommand::Weights { db },
        } => {
            let store = open_read_only(db).await?;
            let (records, estimated, rows) = kinfold_gateway::match_weights(&store)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{records} records in the person index ({}).",
                if estimated {
                    "weights estimated from them"
                } else {
                    "too few to estimate from: the priors"
                }
            );
            println!(
                "{:<12} {:<8} {:>9} {:>9} {:>7}",
                "field", "level", "m", "u", "bits"
            );
            for row in rows {
                let row = serde_json::to_value(row).map_err(|e| e.to_string())?;
                println!(
                    "{:<12} {:<8} {:>9.5} {:>9.5} {:>7.2}",
                    row["field"].as_str().unwrap_or_default(),
                    row["level"].as_str().unwrap_or_default(),
                    row["m"].as_f64().unwrap_or_default(),
                    row["u"].as_f64().unwrap_or_default(),
                    row["weight"].as_f64().unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Check { config, agency } => {
            let findings = match agency {
                None => {
                    let config: GatewayConfig =
                        kinfold::config::load(config.as_deref(), kinfold::config::GATEWAY_ENV)
                            .map_err(|e| format!("configuration: {e}"))?;
                    kinfold::check::gateway(&config).await
                }
                Some(agency) => {
                    let config: AdapterConfig =
                        kinfold::config::load(config.as_deref(), kinfold::config::ADAPTER_ENV)
                            .map_err(|e| format!("configuration: {e}"))?;
                    same_agency(&config, agency)?;
                    kinfold::check::adapter(agency, &config).await
                }
            };
            for finding in &findings {
                println!("{finding}");
            }
            let failed = findings.iter().filter(|f| !f.ok).count();
            if failed > 0 {
                Err(format!("{failed} of {} checks failed", findings.len()))
            } else {
                Ok(())
            }
        }
        Command::Migrate { db } => {
            let store = Store::open(&db)
                .await
                .map_err(|e| format!("database {}: {e}", redacted(&db)))?;
            store.close().await;
            println!("{} is migrated to this release.", redacted(&db));
            Ok(())
        }
        Command::Growth => Err("kinfold growth runs without the server runtime".into()),
        Command::Token {
            config,
            subject,
            org,
            role,
            name,
            purpose,
            justification,
            ttl,
            operator,
        } => {
            // Who issued it: named on the command line, or the operating-system account.
            let operator = operator
                .or_else(|| std::env::var("USER").ok())
                .or_else(|| std::env::var("LOGNAME").ok())
                .filter(|o| !o.trim().is_empty())
                .ok_or("say who is issuing the token with --operator NAME (neither USER nor LOGNAME is set)")?;
            let config: GatewayConfig =
                kinfold::config::load(config.as_deref(), kinfold::config::GATEWAY_ENV)
                    .map_err(|e| e.to_string())?;
            let token = kinfold_gateway::issue_token_for(
                &config.auth,
                &kinfold_gateway::TokenFor {
                    subject: &subject,
                    name: name.as_deref(),
                    org: org.as_deref(),
                    role: role.as_deref(),
                    purpose: Some(&purpose),
                    justification: justification.as_deref(),
                },
                ttl,
            )
            .map_err(|e| e.to_string())?;
            let issuer = format!("kinfold-token:{operator}");
            let record = kinfold_gateway::audit::token_issued(
                &issuer,
                None,
                &subject,
                org.as_deref(),
                role.as_deref(),
            );
            let recorded = async {
                let store = open_store(config.database_url.as_deref(), "gateway").await?;
                let put = store.ledger_inbox_put(&record.canonical()).await;
                store.close().await;
                put.map_err(|e| e.to_string())
            };
            recorded.await.map_err(|e| {
                format!("the token's issue could not be recorded, so no token was issued ({e})")
            })?;
            println!("{token}");
            Ok(())
        }
    }
}

/// A failure already reported on standard error (a ledger that does not verify, rejected
/// import rows): exit 1 without another message.
const REPORTED_FAILURE: &str = "(reported above)";

/// The gateway's database opened read-only (never migrated): for the auditor's and the
/// identity steward's commands.
/// `kinfold scenario run`.
async fn scenario(
    file: &std::path::Path,
    database: Option<String>,
    report_dir: &std::path::Path,
    serve: bool,
) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let scenario =
        kinfold::scenario::load(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    let folder = tempfile::tempdir().map_err(|e| e.to_string())?;
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("scenario");
    std::fs::create_dir_all(report_dir).map_err(|e| e.to_string())?;
    let markdown = report_dir.join(format!("{stem}.report.md"));
    let json = report_dir.join(format!("{stem}.report.json"));
    let written: std::cell::RefCell<Result<(), String>> = std::cell::RefCell::new(Ok(()));
    let report = kinfold::scenario::run_then(
        scenario.clone(),
        kinfold::scenario::RunOptions {
            data_dir: folder.path().to_path_buf(),
            gateway_database: database,
        },
        |report, gateway| {
            *written.borrow_mut() = write_report(report, &scenario, &markdown, &json);
            let dashboard = format!("{gateway}/app/");
            async move {
                if serve {
                    println!(
                        "\nKinfold is running on the scenario's data, its clock stopped at the scenario's end. Press Ctrl-C to stop.\n  liaison dashboard  {dashboard}   (sign in as one of the demo users)\n"
                    );
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    written.into_inner()?;
    if report.passed {
        Ok(())
    } else {
        Err("the scenario's expectations were not all met".into())
    }
}

/// Writes a scenario's report (Markdown and JSON) and prints one line per expectation.
fn write_report(
    report: &kinfold::scenario::Report,
    scenario: &kinfold::scenario::Scenario,
    markdown: &std::path::Path,
    json: &std::path::Path,
) -> Result<(), String> {
    std::fs::write(markdown, report.markdown(scenario)).map_err(|e| e.to_string())?;
    std::fs::write(
        json,
        serde_json::to_string_pretty(report).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    for checked in &report.expectations {
        println!(
            "{} {}: {} — {}",
            if checked.met { "met   " } else { "NOT MET" },
            checked.expected.requirement,
            checked.expected.says,
            checked.happened
        );
    }
    for checked in &report.expected_findings {
        println!(
            "{} {}: {} — {}",
            if checked.met { "met   " } else { "NOT MET" },
            checked.expected.requirement,
            checked.expected.says,
            checked.found
        );
    }
    for fault in &report.control_faults {
        println!("CONTROL raised: {fault}");
    }
    println!(
        "{}: {} ({}); report in {} and {}",
        report.name,
        if report.passed { "passed" } else { "FAILED" },
        report.timing,
        markdown.display(),
        json.display()
    );
    Ok(())
}

async fn open_read_only(db: Option<String>) -> Result<Store, String> {
    let url = db.unwrap_or_else(|| "sqlite://kinfold-data/gateway.db".into());
    if let Some(path) = url.strip_prefix("sqlite://")
        && !std::path::Path::new(path).exists()
    {
        return Err(format!("{path} does not exist"));
    }
    Store::open_read_only(&url)
        .await
        .map_err(|e| format!("database {} (opened read-only): {e}", redacted(&url)))
}

async fn ledger(command: LedgerCommand) -> Result<(), String> {
    let open = open_read_only;
    match command {
        LedgerCommand::Checkpoint { db } => {
            let store = open(db).await?;
            let head = store
                .ledger_latest_head()
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no tree head has been signed yet")?;
            let signed = kinfold_gateway::SignedTreeHead {
                tree_size: u64::try_from(head.tree_size).unwrap_or(0),
                timestamp: u64::try_from(head.recorded).unwrap_or(0),
                sha256_root_hash: head.root_hash,
                tree_head_signature: head.signature,
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&signed).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        LedgerCommand::Verify {
            db,
            public_key,
            gateway,
            checkpoint,
        } => {
            let public_key = match (public_key, gateway) {
                (Some(key), _) => key,
                (None, Some(gateway)) => {
                    let url = format!("{}/ledger/v1/public-key", gateway.trim_end_matches('/'));
                    let answer: serde_json::Value = reqwest::get(&url)
                        .await
                        .and_then(reqwest::Response::error_for_status)
                        .map_err(|e| format!("{url}: {e}"))?
                        .json()
                        .await
                        .map_err(|e| format!("{url}: {e}"))?;
                    answer["public_key"]
                        .as_str()
                        .ok_or_else(|| format!("{url} gave no public_key"))?
                        .to_owned()
                }
                (None, None) => {
                    let demo = std::fs::read_to_string("kinfold-data/demo.json").map_err(
                        |_| "give --public-key (the gateway serves it at GET /ledger/v1/public-key; or give --gateway URL to fetch it) — there is no kinfold-data/demo.json to read it from",
                    )?;
                    let demo: serde_json::Value =
                        serde_json::from_str(&demo).map_err(|e| e.to_string())?;
                    demo["ledger_public_key"]
                        .as_str()
                        .ok_or("demo.json has no ledger_public_key")?
                        .to_owned()
                }
            };
            let public_key: [u8; 32] = kinfold_ledger::from_b64(&public_key)
                .and_then(|k| k.try_into().ok())
                .ok_or("--public-key must be a base64 Ed25519 public key (32 bytes)")?;
            let checkpoint = match checkpoint {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    Some(
                        serde_json::from_str::<kinfold_gateway::SignedTreeHead>(&text)
                            .map_err(|e| format!("{}: {e}", path.display()))?,
                    )
                }
                None => None,
            };
            let store = open(db).await?;
            let report =
                kinfold_gateway::ledger::verify_store(&store, &public_key, checkpoint.as_ref())
                    .await
                    .map_err(|e| e.to_string())?;
            if report.problems.is_empty() {
                println!(
                    "The ledger verifies: {} {}, {} signed tree {}{}.",
                    report.entries,
                    if report.entries == 1 {
                        "entry"
                    } else {
                        "entries"
                    },
                    report.heads,
                    if report.heads == 1 { "head" } else { "heads" },
                    if checkpoint.is_some() {
                        ", consistent with the checkpoint"
                    } else {
                        ""
                    }
                );
                Ok(())
            } else {
                println!(
                    "The ledger does NOT verify ({} entries read):",
                    report.entries
                );
                for problem in &report.problems {
                    println!("  - {problem}");
                }
                Err(REPORTED_FAILURE.into())
            }
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
        signal = shutdown_signal() => {
            signal?;
            handle.stop(true).await;
            Ok(())
        }
    }
}

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or SIGTERM (what `kill`,
/// systemd and container runtimes send), so that either lets requests in flight finish and
/// logs the stop.
async fn shutdown_signal() -> Result<(), String> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted.map_err(|e| e.to_string()),
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())
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
    for (agency, address) in &info.mllp {
        println!(
            "  {agency} HL7 v2     mllp://{address}   (ADT A01, A03, A04, A05, A08, A11, A13, A28, A31, A40)"
        );
    }
    if running.seeded > 0 {
        println!(
            "\nLoaded {} synthetic inputs through the agencies' native feeds (A&E HL7 v2 over MLLP; midwifery, health visiting and school nursing extracts; GP FHIR Bundles).",
            running.seeded
        );
    } else {
        println!("\nReusing the data already in {}.", data_dir.display());
    }
    println!("\nLiaison dashboard: {}", info.dashboard.url);
    println!("  sign in as (demo users, no password):");
    for user in &info.dashboard.users {
        println!(
            "    {:<18} {}, {} of {}",
            user.key, user.name, user.role, user.organisation
        );
    }
    println!("\nBearer token (valid 12 hours):\n  {}\n", info.token);
    println!("Try:");
    println!("  curl -s {gateway}/metadata");
    println!(
        "  curl -s -H \"Authorization: Bearer $TOKEN\" '{gateway}/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}'"
    );
    println!("  curl -s -H \"Authorization: Bearer $TOKEN\" {gateway}/Patient/{id}/\\$everything");
    if let Some(growth) = &info.growth_example {
        let child = &growth.child.id;
        println!(
            "  curl -s -H \"Authorization: Bearer $TOKEN\" {gateway}/Patient/{child}/\\$growth"
        );
        println!(
            "  curl -s -H \"Authorization: Bearer $TOKEN\" {gateway}/Patient/{child}/\\$growth-chart > chart.svg   (a child whose weight falters)"
        );
    }
    println!(
        "\n(with TOKEN=$(jq -r .token {}/demo.json))",
        data_dir.display()
    );
    println!("The same details are in {}/demo.json.", data_dir.display());
}

/// `kinfold import`.
async fn import(
    agency: Agency,
    file: &std::path::Path,
    adapter: Option<String>,
    mllp: Option<String>,
    tls: Option<kinfold_http::tls::ClientTls>,
    data_dir: &std::path::Path,
    connections: usize,
) -> Result<(), String> {
    let demo = || -> Result<serde_json::Value, String> {
        let path = data_dir.join("demo.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e} (give --adapter, or run kinfold demo)",
                path.display()
            )
        })?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    };
    // Each format needs only its own door: an A&E file goes over MLLP, the others over HTTPS.
    let adapter = match adapter {
        Some(url) => url,
        None if agency == Agency::Ae => String::new(),
        None => demo()?["adapters"][agency.as_str()]
            .as_str()
            .ok_or_else(|| format!("demo.json names no {agency} adapter"))?
            .to_owned(),
    };
    let mllp = match mllp {
        Some(address) => Some(address),
        None if agency == Agency::Ae => demo()?["mllp"]["ae"].as_str().map(str::to_owned),
        None => None,
    };
    let plain_mllp = agency == Agency::Ae
        && mllp
            .as_deref()
            .is_some_and(|address| !address.starts_with("tls://"));
    let tls = match tls {
        Some(tls) => Some(tls),
        // Plain MLLP (a loopback listener) needs no certificate.
        None if plain_mllp => None,
        None => Some(
            serde_json::from_value(demo()?["client_tls"].clone()).map_err(|e| {
                format!("demo.json has no usable client_tls ({e}): give --cert, --key and --ca")
            })?,
        ),
    };
    let target = kinfold::import::Target {
        adapter,
        mllp,
        tls,
        mllp_connections: connections,
    };
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let started = std::time::Instant::now();
    let summary = kinfold::import::import(agency, file, &target, terminal).await?;
    let seconds = started.elapsed().as_secs_f64();
    for row in &summary.rejected {
        if row.field.is_empty() {
            eprintln!("line {}: {}", row.line, row.message);
        } else {
            eprintln!("line {}, {}: {}", row.line, row.field, row.message);
        }
    }
    // An HL7 file holds messages; the other formats rows (an extract's lines, a Bundle's entries).
    let (one, many) = match agency {
        Agency::Ae => ("message", "messages"),
        _ => ("row", "rows"),
    };
    eprintln!(
        "{}: {} {} in {seconds:.1} s ({:.0} {many}/s): {} stored, {} already stored (unchanged), {} rejected",
        file.display(),
        summary.rows,
        if summary.rows == 1 { one } else { many },
        summary.rows as f64 / seconds.max(0.001),
        summary.stored,
        summary.unchanged,
        summary.rejected.len()
    );
    if summary.rejected.is_empty() {
        Ok(())
    } else {
        Err(REPORTED_FAILURE.into())
    }
}

/// A database URL fit to print: any password taken out.
fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) => {
                let user = user.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}
