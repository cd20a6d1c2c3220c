//! The rows a bulk import reads: numbers with the position they came from, whatever
//! carried them (a CSV file, a batch request's items), and the CSV adapter.

use zeroize::Zeroizing;

use super::VaultError;

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

impl Reject {
    /// The reject of a row the CSV reader could not read (`line`: where it started).
    pub fn malformed(e: &csv::Error, line: u64) -> Reject {
        Reject {
            line: e.position().map(|p| p.line()).unwrap_or(line),
            code: "csv",
            reason: "malformed CSV row".into(),
        }
    }
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

/// A CSV reader of import files: a header line, rows of any width.
pub fn import_reader<R: std::io::Read>(input: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(input)
}

/// Reads the header line of an import file and finds the column holding the numbers.
///
/// # Errors
/// [`VaultError::Csv`] when the header cannot be read or has no such column.
pub fn import_column<R: std::io::Read>(
    rdr: &mut csv::Reader<R>,
    column: &str,
) -> Result<usize, VaultError> {
    let headers = rdr.headers().map_err(|e| VaultError::Csv(e.to_string()))?;
    headers
        .iter()
        .position(|h| h.trim() == column)
        .ok_or_else(|| {
            // The name is not repeated: it may be anything typed in its place.
            VaultError::Csv(
                "no column of the name given in the header line (use --column NAME)".into(),
            )
        })
}

/// The rows of a CSV import file: the numbers of column `column`, streamed.
pub struct CsvRows<R> {
    rdr: csv::Reader<R>,
    col: usize,
    record: csv::StringRecord,
}

impl<R: std::io::Read> CsvRows<R> {
    /// Reads the header line of `input` and finds `column` in it.
    ///
    /// # Errors
    /// [`VaultError::Csv`] when the header cannot be read or has no such column.
    pub fn new(input: R, column: &str) -> Result<Self, VaultError> {
        let mut rdr = import_reader(input);
        let col = import_column(&mut rdr, column)?;
        Ok(CsvRows {
            rdr,
            col,
            record: csv::StringRecord::new(),
        })
    }
}

impl<R: std::io::Read> Iterator for CsvRows<R> {
    type Item = ImportRow;

    fn next(&mut self) -> Option<ImportRow> {
        next_csv_row(&mut self.rdr, self.col, &mut self.record)
    }
}

/// The next row of `rdr`: column `col` of its next record, read into `record`.
pub(crate) fn next_csv_row<R: std::io::Read>(
    rdr: &mut csv::Reader<R>,
    col: usize,
    record: &mut csv::StringRecord,
) -> Option<ImportRow> {
    let line = rdr.position().line();
    Some(match rdr.read_record(record) {
        Ok(false) => return None,
        Ok(true) => ImportRow::Number {
            phone: Zeroizing::new(record.get(col).unwrap_or("").to_owned()),
            line,
        },
        Err(e) => ImportRow::Unreadable(Reject::malformed(&e, line)),
    })
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
