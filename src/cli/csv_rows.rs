//! The CSV adapter of bulk imports: the numbers of one column of a file, as the
//! [`ImportRow`]s `Vault::import` and `Vault::suppress_import` take. The vault reads no
//! CSV; the CLI's imports (in process and through the socket) and the fuzz target of the
//! header read it here.

use zeroize::Zeroizing;

use crate::vault::{ImportRow, Reject, VaultError};

/// The reject of a row the CSV reader could not read (`line`: where it started).
pub fn malformed(e: &csv::Error, line: u64) -> Reject {
    Reject {
        line: e.position().map(|p| p.line()).unwrap_or(line),
        code: "csv",
        reason: "malformed CSV row".into(),
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
fn next_csv_row<R: std::io::Read>(
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
        Err(e) => ImportRow::Unreadable(malformed(&e, line)),
    })
}
