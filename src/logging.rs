//! Where the process's own log lines go: stderr, through `tracing`, as plain lines
//! (`phonevault serve: listening on ...`, the default) or as JSON lines
//! (`serve --log-format json`: `{"timestamp":...,"level":"INFO","message":...}`), for a log
//! collector. Either way a line names what happened, never a phone number, a secret or a
//! request body (the tests grep the server's log for every number they use).

/// The format of the log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One plain line per event.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `message` and the event's fields.
    Json,
}

/// Installs the process's log subscriber; a second call keeps the first.
pub fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.without_time().with_level(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

/// The current time as RFC 3339 UTC, for lines written without `tracing` (the buffered
/// access log).
pub(crate) fn timestamp() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
