//! A small progress interface the engine reports through, so that the
//! library stays free of terminal code; the CLI plugs in indicatif.

/// Receives progress of a long operation, in bytes.
pub trait Progress: Sync {
    /// A phase starts; `total` is known for files, not for pipes. A phase
    /// without a total is shown as a spinner with its elapsed time.
    fn start(&self, _what: &str, _total: Option<u64>) {}
    /// `bytes` more were processed.
    fn advance(&self, _bytes: u64) {}
    /// The phase is over.
    fn finish(&self) {}
    /// What the phase is working on now (a blob, a file), shown beside its
    /// label until the next detail or phase.
    fn detail(&self, _what: &str) {}
}

/// Reports nothing.
pub struct Quiet;

impl Progress for Quiet {}

/// Shows the phases a callee reports under a label of the caller's
/// (`what`), and with the caller's `total` when it knows one the callee
/// cannot (the callee's own total is used otherwise).
pub struct Relabel<'a> {
    inner: &'a dyn Progress,
    what: String,
    total: Option<u64>,
}

impl<'a> Relabel<'a> {
    /// Phases of a callee reported to `inner` as `what`.
    pub fn new(inner: &'a dyn Progress, what: impl Into<String>, total: Option<u64>) -> Self {
        Relabel {
            inner,
            what: what.into(),
            total,
        }
    }
}

impl Progress for Relabel<'_> {
    fn start(&self, _what: &str, total: Option<u64>) {
        self.inner.start(&self.what, self.total.or(total));
    }
    fn advance(&self, bytes: u64) {
        self.inner.advance(bytes);
    }
    fn finish(&self) {
        self.inner.finish();
    }
    fn detail(&self, what: &str) {
        self.inner.detail(what);
    }
}

/// Shows a callee's phases with the caller's prefix, "PREFIX: phase".
pub struct Prefixed<'a> {
    inner: &'a dyn Progress,
    prefix: String,
}

impl<'a> Prefixed<'a> {
    /// Phases of a callee reported to `inner` as "`prefix`: phase".
    pub fn new(inner: &'a dyn Progress, prefix: impl Into<String>) -> Self {
        Prefixed {
            inner,
            prefix: prefix.into(),
        }
    }
}

impl Progress for Prefixed<'_> {
    fn start(&self, what: &str, total: Option<u64>) {
        self.inner.start(&format!("{}: {what}", self.prefix), total);
    }
    fn advance(&self, bytes: u64) {
        self.inner.advance(bytes);
    }
    fn finish(&self) {
        self.inner.finish();
    }
    fn detail(&self, what: &str) {
        self.inner.detail(what);
    }
}
