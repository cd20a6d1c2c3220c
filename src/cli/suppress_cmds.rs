//! `phonevault suppress`: suppression lists (do-not-call, do-not-text), in-process only
//! (no route: a server holding the vault answers that the command needs it closed).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::backend::{rejects_path, RejectsFile};
use super::{fail, fmt_time, import_bar, open, print_json, Cli, Failure};
use crate::policy::TenantName;
use crate::vault::SuppressOptions;

/// `suppress` commands.
#[derive(Debug, Subcommand)]
pub enum SuppressCommand {
    /// Import (or refresh) a list from CSV: only blind-index entries of its numbers are
    /// stored; a refresh of the same name replaces the old version atomically.
    #[command(after_help = "Examples:
  phonevault suppress import --tenant shop --list us-dnc --purposes marketing dnc-2026-11.csv
  phonevault suppress import --tenant shop --list own-dnc --purposes marketing,support --region GB --column number optouts.csv
Rows that are not valid numbers go to FILE.rejects.csv (line number and reason).")]
    Import(SuppressImportArgs),
    /// The tenant's lists: name, version, purposes, count, imported at.
    #[command(after_help = "Example:
  phonevault suppress list --tenant shop")]
    List {
        /// Tenant.
        #[arg(long, value_parser = TenantName::parse)]
        tenant: TenantName,
    },
    /// Drop a list: reads stop consulting it at once, its entries are deleted.
    #[command(after_help = "Example:
  phonevault suppress drop --tenant shop --list us-dnc")]
    Drop {
        /// Tenant.
        #[arg(long, value_parser = TenantName::parse)]
        tenant: TenantName,
        /// List name.
        #[arg(long)]
        list: String,
    },
}

/// `suppress import` options.
#[derive(Debug, Args)]
pub struct SuppressImportArgs {
    /// Tenant.
    #[arg(long, value_parser = TenantName::parse)]
    pub tenant: TenantName,
    /// List name (1-64 of a-z, 0-9, '-', '_', '.', ':').
    #[arg(long)]
    pub list: String,
    /// Purposes the list suppresses (declared by the tenant), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub purposes: Vec<String>,
    /// Region hint for national numbers.
    #[arg(long)]
    pub region: Option<String>,
    /// CSV column holding the number.
    #[arg(long, default_value = "phone")]
    pub column: String,
    /// Where rejected rows go (default FILE.rejects.csv).
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// The CSV file.
    pub file: PathBuf,
}

pub(super) fn run(cli: &Cli, c: &SuppressCommand) -> Result<(), Failure> {
    match c {
        SuppressCommand::Import(a) => import(cli, a),
        SuppressCommand::List { tenant } => {
            let lists = open(cli)?.suppress_lists(tenant)?;
            if cli.json {
                let v: Vec<_> = lists
                    .iter()
                    .map(|l| {
                        serde_json::json!({
                            "list": l.name, "version": l.version, "purposes": l.purposes,
                            "count": l.count, "imported_at": fmt_time(l.imported_at),
                        })
                    })
                    .collect();
                print_json(&serde_json::Value::Array(v));
            } else {
                for l in &lists {
                    println!(
                        "{}  version {}  purposes: {}  {} numbers  imported {}",
                        l.name,
                        l.version,
                        l.purposes.join(","),
                        l.count,
                        fmt_time(l.imported_at)
                    );
                }
                if lists.is_empty() {
                    println!("no suppression lists");
                }
            }
            Ok(())
        }
        SuppressCommand::Drop { tenant, list } => {
            let removed = open(cli)?.suppress_drop(tenant, list)?;
            if cli.json {
                print_json(&serde_json::json!({"dropped": list, "entries_removed": removed}));
            } else {
                println!("dropped suppression list {list} ({removed} entries removed)");
            }
            Ok(())
        }
    }
}

fn import(cli: &Cli, a: &SuppressImportArgs) -> Result<(), Failure> {
    let file = std::fs::File::open(&a.file)
        .map_err(|e| fail(format!("cannot open {}: {e}", a.file.display())))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let v = open(cli)?;
    let rejects_path = rejects_path(&a.file, a.rejects.as_deref());
    let mut rejects = RejectsFile::new(rejects_path.clone());
    let bar = import_bar(cli, len);
    let reader = bar.wrap_read(std::io::BufReader::with_capacity(1 << 20, file));
    let opts = SuppressOptions {
        tenant: a.tenant.clone(),
        list: a.list.clone(),
        purposes: a.purposes.clone(),
        region: a.region.clone(),
    };
    let rows = super::CsvRows::new(reader, &a.column)?;
    let report = v.suppress_import(&opts, rows, |r| rejects.write_reject(r))?;
    bar.finish_and_clear();
    rejects.finish()?;
    if cli.json {
        let mut j = serde_json::to_value(&report).unwrap_or_default();
        if report.rejected > 0 {
            j["rejects_file"] = rejects_path.display().to_string().into();
        }
        print_json(&j);
        return Ok(());
    }
    println!(
        "suppression list {} version {}: {} rows, {} numbers, {} rejected{}",
        report.list,
        report.version,
        report.rows,
        report.count,
        report.rejected,
        report
            .replaced
            .map_or(String::new(), |p| format!("; replaced version {p}"))
    );
    if report.rejected > 0 {
        println!(
            "rejected rows (line and reason) are in {}",
            rejects_path.display()
        );
    }
    Ok(())
}
