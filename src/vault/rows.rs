//! The rows a bulk import reads: numbers with the position they came from, whatever
//! carried them (a CSV file, read by `crate::cli::CsvRows`; a batch request's items).

use zeroize::Zeroizing;

/// A rejected import row: 1-based line number and the reason (never the number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// Where the row came from: a file's line (the header is line 1), or a batch
    /// item's index ([`ImportRow`]).
    pub line: u64,
    /// Stable reason code.
    pub code: &'static str,
    /// Human-readable reason.
    pub reason: String,
}

/// One row of a bulk import.
pub enum ImportRow {
    /// A number as given, with its position for the reject report: a file's line (the
    /// header is line 1) or a batch item's index.
    Number {
        /// The number as typed (wiped when dropped).
        phone: Zeroizing<String>,
        /// Where it came from.
        line: u64,
    },
    /// A row that could not be read at all: reported as given.
    Unreadable(Reject),
}

impl std::fmt::Debug for ImportRow {
    /// Never the number.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportRow::Number { line, .. } => f
                .debug_struct("Number")
                .field("line", line)
                .finish_non_exhaustive(),
            ImportRow::Unreadable(r) => f.debug_tuple("Unreadable").field(r).finish(),
        }
    }
}

/// Sends `rows` to `tx` in chunks of `size`, each made by `row` from the number as
/// given and its position (or by `malformed` from the reject of a row that could not
/// be read). Stops early when the receiver is gone.
pub(crate) fn send_chunks<T>(
    rows: impl Iterator<Item = ImportRow>,
    size: usize,
    tx: &std::sync::mpsc::SyncSender<Vec<T>>,
    mut row: impl FnMut(&str, u64) -> T,
    malformed: impl Fn(Reject) -> T,
) {
    let mut chunk = Vec::with_capacity(size);
    for r in rows {
        chunk.push(match r {
            ImportRow::Number { phone, line } => row(&phone, line),
            ImportRow::Unreadable(reject) => malformed(reject),
        });
        if chunk.len() == size && tx.send(std::mem::take(&mut chunk)).is_err() {
            return;
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(chunk);
    }
}
