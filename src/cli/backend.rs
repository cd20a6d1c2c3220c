//! Where a record command is carried out, and the one place it is dispatched and
//! printed. [`Local`] runs it on the vault in this process; the socket client
//! (`client::Remote`) sends it to the server that holds the vault. Both answer with
//! the API's own types (`crate::api::response`), so a command prints the same either
//! way, and a command added here is added to both.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::server_cmds::{
    no_such_token, print_created, print_revoked, print_tokens, token_role, TokenCommand,
    TokenCreateArgs,
};
use super::{
    create_private, fail, import_bar, not_found, print_added, print_import, print_stats,
    report_change, say, show_found, show_records, AddArgs, Cli, Command, ConsentCommand,
    DeleteArgs, Failure, FindArgs, GetArgs, ImportArgs, StatsArgs, TargetArgs,
};
use crate::api::response::{Added, BatchSummary, ChangedAnswer, Erased, Record, WriteAnswer};
use crate::api::Shown;
use crate::policy::Source;
use crate::record::RecordId;
use crate::stats::{Stats, StatsQuery};
use crate::vault::{
    self, Changed, ImportOptions, ListCount, Reject, TokenInfo, TokenSpec, Vault, VaultError,
};

/// A record command's executor: the vault in process, or a server's socket.
pub(crate) trait Backend {
    /// `add`: the record's id, what the add did, and the purposes a suppression list
    /// holds the number for.
    fn add(&mut self, a: &AddArgs) -> Result<WriteAnswer<Added>, Failure>;
    /// `find --phone`.
    fn find(&mut self, a: &FindArgs) -> Result<Option<Record>, Failure>;
    /// `find --last4 --country-code`.
    fn find_last4(
        &mut self,
        a: &FindArgs,
        country_code: u16,
        last4: &str,
    ) -> Result<Vec<Record>, Failure>;
    /// `get`.
    fn get(&mut self, a: &GetArgs) -> Result<Option<Record>, Failure>;
    /// `delete`: whether there was such a record.
    fn delete(&mut self, a: &DeleteArgs) -> Result<bool, Failure>;
    /// `consent grant`, with the receipt file when `receipt`.
    fn grant(
        &mut self,
        target: &TargetArgs,
        purposes: &[String],
        source: &Source,
        receipt: bool,
    ) -> Result<WriteAnswer<ChangedAnswer>, Failure>;
    /// `consent withdraw`.
    fn withdraw(
        &mut self,
        target: &TargetArgs,
        purpose: &str,
    ) -> Result<WriteAnswer<ChangedAnswer>, Failure>;
    /// `opt-out` of one purpose, or of everything.
    fn opt_out(
        &mut self,
        target: &TargetArgs,
        purpose: Option<&str>,
    ) -> Result<WriteAnswer<ChangedAnswer>, Failure>;
    /// `erase`.
    fn erase(&mut self, target: &TargetArgs) -> Result<WriteAnswer<Erased>, Failure>;
    /// `verify`.
    fn verify(&mut self, target: &TargetArgs) -> Result<WriteAnswer<ChangedAnswer>, Failure>;
    /// `import`: the CSV rows of `input`, each rejected row written to `rejects` in the
    /// in-process import's order (chunk by chunk: the invalid rows, then the suppressed).
    fn import(
        &mut self,
        a: &ImportArgs,
        input: Box<dyn Read + Send + '_>,
        rejects: &mut RejectsFile,
    ) -> Result<BatchSummary, Failure>;
    /// `stats`: the statistics, and the live records each suppression list holds back
    /// where the backend counts them (the socket's stats route does not).
    fn stats(&mut self, a: &StatsArgs, q: &StatsQuery) -> Result<(Stats, Vec<ListCount>), Failure>;
    /// `token create`: the new token and its secret (shown once).
    fn create_token(&mut self, a: &TokenCreateArgs) -> Result<(TokenInfo, Shown), Failure>;
    /// `token list`.
    fn tokens(&mut self) -> Result<Vec<TokenInfo>, Failure>;
    /// `token revoke ID`: whether there was such a token.
    fn revoke_token(&mut self, id: &str) -> Result<bool, Failure>;
    /// `token revoke --all`: how many were revoked.
    fn revoke_all_tokens(&mut self) -> Result<u64, Failure>;
}

/// Runs `cli`'s command on `b` and prints its answer, when it is a record command;
/// `None` for every other command.
pub(crate) fn dispatch(cli: &Cli, b: &mut dyn Backend) -> Option<Result<(), Failure>> {
    Some(match &cli.command {
        Command::Add(a) => b.add(a).map(|r| {
            if let Some(r) = detailed(cli, r) {
                print_added(cli, &r.id, r.status.as_str(), &r.suppressed_for);
            }
        }),
        Command::Find(a) => match (&a.last4, a.country_code) {
            (Some(l4), Some(cc)) => b.find_last4(a, cc, l4).and_then(|r| show_records(cli, &r)),
            _ => b.find(a).and_then(|f| show_found(cli, f)),
        },
        Command::Get(a) => b.get(a).and_then(|f| show_found(cli, f)),
        Command::Delete(a) => match b.delete(a) {
            Ok(true) => {
                say(
                    cli,
                    serde_json::json!({"deleted": a.id.to_string()}),
                    &format!("deleted {}", a.id),
                );
                Ok(())
            }
            Ok(false) => Err(not_found("no such record")),
            Err(e) => Err(e),
        },
        Command::Consent(ConsentCommand::Grant {
            target,
            purpose,
            source,
            receipt,
            receipt_out,
        }) => granted(
            cli,
            b.grant(target, purpose, source, *receipt),
            purpose,
            *receipt,
            receipt_out.as_deref(),
        ),
        Command::Consent(ConsentCommand::Withdraw { target, purpose }) => changed(
            cli,
            b.withdraw(target, purpose),
            &format!("consent for {purpose} withdrawn"),
            &format!("no live consent for {purpose}; nothing changed"),
        ),
        Command::OptOut(a) => {
            let what = a.purpose.as_deref().unwrap_or("everything");
            changed(
                cli,
                b.opt_out(&a.target, a.purpose.as_deref()),
                &format!("opted out of {what}"),
                &format!("already opted out of {what}; nothing changed"),
            )
        }
        Command::Erase(t) => b.erase(t).and_then(|r| {
            let Some(r) = detailed(cli, r) else {
                return Ok(());
            };
            let id = record_id(&r.id)?;
            say(
                cli,
                serde_json::json!({"erased": id.to_string()}),
                &format!("erased {id}"),
            );
            Ok(())
        }),
        Command::Verify(t) => changed(cli, b.verify(t), "verified now", "verified now"),
        Command::Import(a) => import(cli, b, a),
        Command::Stats(a) => b
            .stats(a, &stats_query(a))
            .and_then(|(s, lists)| print_stats(cli, a, &s, &lists)),
        Command::Token(c) => token(cli, b, c),
        _ => return None,
    })
}

/// `import`: the file read here behind the progress bar, its rows carried out by `b`,
/// the rejects file written beside it.
fn import(cli: &Cli, b: &mut dyn Backend, a: &ImportArgs) -> Result<(), Failure> {
    let file = std::fs::File::open(&a.file)
        .map_err(|e| fail(format!("cannot open {}: {e}", a.file.display())))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let rejects_path = rejects_path(&a.file, a.rejects.as_deref());
    let mut rejects = RejectsFile::new(rejects_path.clone());
    let bar = import_bar(cli, len);
    let reader = bar.wrap_read(std::io::BufReader::with_capacity(1 << 20, file));
    let summary = b.import(a, Box::new(reader), &mut rejects)?;
    bar.finish_and_clear();
    rejects.finish()?;
    print_import(cli, &summary, &rejects_path);
    Ok(())
}

/// Where an import's rejected rows go: `rejects` when given, else FILE.rejects.csv.
pub(crate) fn rejects_path(file: &Path, rejects: Option<&Path>) -> PathBuf {
    rejects.map(Path::to_owned).unwrap_or_else(|| {
        let mut p = file.to_owned().into_os_string();
        p.push(".rejects.csv");
        PathBuf::from(p)
    })
}

/// The query of `stats`.
fn stats_query(a: &StatsArgs) -> StatsQuery {
    StatsQuery {
        by_country: a.by.iter().any(|b| b == "country"),
        by_type: a.by.iter().any(|b| b == "type"),
        min_group: a.min_group,
        epsilon: a.epsilon,
    }
}

fn token(cli: &Cli, b: &mut dyn Backend, c: &TokenCommand) -> Result<(), Failure> {
    match c {
        TokenCommand::Create(a) => {
            let (info, secret) = b.create_token(a)?;
            print_created(cli, &info, secret.expose_secret());
        }
        TokenCommand::List => print_tokens(cli, &b.tokens()?),
        TokenCommand::Revoke { all: true, .. } => print_revoked(cli, b.revoke_all_tokens()?),
        TokenCommand::Revoke { id, all: false } => {
            if !b.revoke_token(id.as_deref().unwrap_or_default())? {
                return Err(no_such_token());
            }
            print_revoked(cli, 1);
        }
    }
    Ok(())
}

/// A rejected row as the rejects file lists it.
pub(crate) struct RowReject {
    pub(crate) line: u64,
    pub(crate) code: std::borrow::Cow<'static, str>,
    pub(crate) reason: String,
}

impl From<Reject> for RowReject {
    fn from(r: Reject) -> Self {
        RowReject {
            line: r.line,
            code: r.code.into(),
            reason: r.reason,
        }
    }
}

/// The rejects file, created (mode 0600) at the first rejected row.
pub(crate) struct RejectsFile {
    path: PathBuf,
    w: Option<csv::Writer<std::fs::File>>,
}

impl RejectsFile {
    pub(crate) fn new(path: PathBuf) -> RejectsFile {
        RejectsFile { path, w: None }
    }

    pub(crate) fn write(&mut self, r: &RowReject) -> Result<(), Failure> {
        let csv_err = |e: csv::Error| Failure::from(VaultError::Csv(e.to_string()));
        let w = match &mut self.w {
            Some(w) => w,
            None => {
                let f = create_private(&self.path)
                    .map_err(|f| Failure::from(VaultError::Csv(f.message)))?;
                let mut w = csv::Writer::from_writer(f);
                w.write_record(["line", "code", "reason"])
                    .map_err(csv_err)?;
                self.w.insert(w)
            }
        };
        w.write_record([r.line.to_string().as_str(), &r.code, r.reason.as_str()])
            .map_err(csv_err)
    }

    /// Writes a vault reject (for a vault callback).
    pub(crate) fn write_reject(&mut self, r: Reject) -> Result<(), VaultError> {
        self.write(&RowReject::from(r))
            .map_err(|f| VaultError::Csv(f.message))
    }

    pub(crate) fn finish(self) -> Result<(), Failure> {
        match self.w {
            Some(mut w) => w
                .flush()
                .map_err(|e| fail(format!("cannot write {}: {e}", self.path.display()))),
            None => Ok(()),
        }
    }
}

/// The detailed answer; `None` once an answer without detail (a writer token's,
/// through the socket) is printed.
fn detailed<T>(cli: &Cli, r: WriteAnswer<T>) -> Option<T> {
    match r {
        WriteAnswer::Detailed(r) => Some(r),
        WriteAnswer::Accepted(_) => {
            say(
                cli,
                serde_json::json!({"accepted": true}),
                "accepted (the server tells a token that cannot read every purpose of its tenant nothing more)",
            );
            None
        }
    }
}

fn changed(
    cli: &Cli,
    r: Result<WriteAnswer<ChangedAnswer>, Failure>,
    yes: &str,
    no: &str,
) -> Result<(), Failure> {
    if let Some(r) = detailed(cli, r?) {
        let id = record_id(&r.id)?;
        let c = if r.changed {
            Changed::Yes(id)
        } else {
            Changed::No(id)
        };
        report_change(cli, c, yes, no);
    }
    Ok(())
}

fn granted(
    cli: &Cli,
    r: Result<WriteAnswer<ChangedAnswer>, Failure>,
    purposes: &[String],
    receipt: bool,
    receipt_out: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let Some(r) = detailed(cli, r?) else {
        return Ok(());
    };
    let id = record_id(&r.id)?;
    if receipt {
        let file = r
            .receipt
            .ok_or_else(|| fail("the server sent no receipt: is it older than the CLI?"))?;
        return super::emit_receipt(cli, id, purposes, file.as_bytes(), receipt_out);
    }
    say(
        cli,
        serde_json::json!({"id": id.to_string(), "granted": purposes}),
        &format!("{id}: consent granted for {}", purposes.join(",")),
    );
    Ok(())
}

/// A record id as an answer gives it (checked: a server's answer is input too).
pub(crate) fn record_id(id: &str) -> Result<RecordId, Failure> {
    RecordId::parse(id).ok_or_else(|| {
        fail(format!(
            "the server sent a malformed record id `{}`",
            id.chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect::<String>()
        ))
    })
}

/// The vault in this process, opened by the first command that needs it.
pub(crate) struct Local<'c> {
    cli: &'c Cli,
    vault: Option<Vault>,
}

impl<'c> Local<'c> {
    pub(crate) fn new(cli: &'c Cli) -> Local<'c> {
        Local { cli, vault: None }
    }

    fn vault(&mut self) -> Result<&Vault, Failure> {
        match &mut self.vault {
            Some(v) => Ok(v),
            slot @ None => Ok(slot.insert(super::open(self.cli)?)),
        }
    }
}

fn done<T>(t: impl Into<T>) -> Result<WriteAnswer<T>, Failure> {
    Ok(WriteAnswer::Detailed(t.into()))
}

impl Backend for Local<'_> {
    fn add(&mut self, a: &AddArgs) -> Result<WriteAnswer<Added>, Failure> {
        let v = self.vault()?;
        let outcome = v.add(
            &a.tenant,
            &a.phone,
            a.region.as_deref(),
            &a.consent,
            &a.source,
        )?;
        let mut added = Added::from(outcome);
        added.suppressed_for =
            v.suppressed_purposes(&a.tenant, &a.phone, a.region.as_deref(), &a.consent)?;
        done(added)
    }

    fn find(&mut self, a: &FindArgs) -> Result<Option<Record>, Failure> {
        let v = self.vault()?.clone().revealing(a.reveal);
        let phone = a.phone.as_deref().unwrap_or("");
        let found = v.find(&a.tenant, phone, a.region.as_deref(), &a.purpose)?;
        Ok(found.map(|f| Record::of(&f, a.reveal)))
    }

    fn find_last4(
        &mut self,
        a: &FindArgs,
        country_code: u16,
        last4: &str,
    ) -> Result<Vec<Record>, Failure> {
        use crate::policy::{decide, Access, Caller, Decision, Operation};
        let access = Access::new(a.tenant.as_str(), Operation::ReadLast4, &[]).reveal(a.reveal);
        if let Decision::Deny(r) = decide(&Caller::Operator, &access) {
            return Err(fail(r.to_string()));
        }
        let v = self.vault()?.clone().revealing(a.reveal);
        let found = v.find_last4(&a.tenant, country_code, last4, &a.purpose)?;
        Ok(found.iter().map(|f| Record::of(f, a.reveal)).collect())
    }

    fn get(&mut self, a: &GetArgs) -> Result<Option<Record>, Failure> {
        let v = self.vault()?.clone().revealing(a.reveal);
        let found = v.get(&a.tenant, a.id, &a.purpose)?;
        Ok(found.map(|f| Record::of(&f, a.reveal)))
    }

    fn delete(&mut self, a: &DeleteArgs) -> Result<bool, Failure> {
        Ok(self.vault()?.delete(&a.tenant, a.id)?)
    }

    fn grant(
        &mut self,
        target: &TargetArgs,
        purposes: &[String],
        source: &Source,
        receipt: bool,
    ) -> Result<WriteAnswer<ChangedAnswer>, Failure> {
        let v = self.vault()?;
        if receipt {
            let (c, file) =
                v.grant_with_receipt(&target.tenant, target.target(), purposes, source, "cli")?;
            let mut answer = ChangedAnswer::from(c);
            answer.receipt =
                Some(String::from_utf8(file).map_err(|_| fail("the receipt is not UTF-8 JSON"))?);
            return done(answer);
        }
        // Granting is an explicit add of the same number: it merges consents and lifts
        // opt-outs of those purposes.
        let c = match target.target() {
            vault::Target::Phone { input, region } => {
                match v.add(&target.tenant, input, region, purposes, source)? {
                    vault::AddOutcome::Unchanged(id) => Changed::No(id),
                    o => Changed::Yes(o.id()),
                }
            }
            vault::Target::Id(id) => v.grant_by_id(&target.tenant, id, purposes, source)?,
        };
        done(c)
    }

    fn withdraw(
        &mut self,
        target: &TargetArgs,
        purpose: &str,
    ) -> Result<WriteAnswer<ChangedAnswer>, Failure> {
        done(
            self.vault()?
                .withdraw(&target.tenant, target.target(), purpose)?,
        )
    }

    fn opt_out(
        &mut self,
        target: &TargetArgs,
        purpose: Option<&str>,
    ) -> Result<WriteAnswer<ChangedAnswer>, Failure> {
        done(
            self.vault()?
                .opt_out(&target.tenant, target.target(), purpose)?,
        )
    }

    fn erase(&mut self, target: &TargetArgs) -> Result<WriteAnswer<Erased>, Failure> {
        let id = self.vault()?.erase(&target.tenant, target.target())?;
        done(Erased {
            id: id.to_string(),
            erased: true,
        })
    }

    fn verify(&mut self, target: &TargetArgs) -> Result<WriteAnswer<ChangedAnswer>, Failure> {
        done(self.vault()?.verify(&target.tenant, target.target())?)
    }

    fn import(
        &mut self,
        a: &ImportArgs,
        input: Box<dyn Read + Send + '_>,
        rejects: &mut RejectsFile,
    ) -> Result<BatchSummary, Failure> {
        let opts = ImportOptions {
            tenant: a.tenant.clone(),
            purposes: a.consent.clone(),
            source: a.source.clone(),
            region: a.region.clone(),
        };
        let rows = super::CsvRows::new(input, &a.column)?;
        let summary = self
            .vault()?
            .import(&opts, rows, |r| rejects.write_reject(r), |_| {})?;
        Ok(BatchSummary::Detailed(summary))
    }

    fn stats(&mut self, a: &StatsArgs, q: &StatsQuery) -> Result<(Stats, Vec<ListCount>), Failure> {
        let v = self.vault()?;
        Ok((v.stats(&a.tenant, q)?, v.suppression_stats(&a.tenant, q)?))
    }

    fn create_token(&mut self, a: &TokenCreateArgs) -> Result<(TokenInfo, Shown), Failure> {
        let role = token_role(a)?;
        let ttl_secs = a.ttl.as_deref().map(vault::parse_ttl).transpose()?;
        let (info, secret) = self.vault()?.create_token(&TokenSpec {
            tenant: a.tenant.clone(),
            role,
            purposes: a.purposes.clone(),
            reveal: a.reveal,
            ttl_secs,
        })?;
        Ok((info, Shown::new(secret.expose_secret().to_owned())))
    }

    fn tokens(&mut self) -> Result<Vec<TokenInfo>, Failure> {
        Ok(self.vault()?.tokens()?)
    }

    fn revoke_token(&mut self, id: &str) -> Result<bool, Failure> {
        Ok(self.vault()?.revoke_token(id)?)
    }

    fn revoke_all_tokens(&mut self) -> Result<u64, Failure> {
        Ok(self.vault()?.revoke_all_tokens()?)
    }
}
