//! A configuration error that points at the file, line and column at fault.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

/// A problem in an input file, located as precisely as the file allows.
#[derive(Debug, Clone)]
pub struct ConfigError(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    path: PathBuf,
    /// Line and column (1-based) of the offending text, when known.
    line_col: Option<(usize, usize)>,
    message: String,
    help: Option<String>,
    source: Option<NamedSource<Arc<str>>>,
    span: Option<Range<usize>>,
    /// The words under the offending text; "here" when not given.
    label: Option<String>,
}

impl ConfigError {
    /// An error about a whole file (missing, unreadable).
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        ConfigError(Box::new(Inner {
            path: path.to_path_buf(),
            line_col: None,
            message: message.into(),
            help: None,
            source: None,
            span: None,
            label: None,
        }))
    }

    /// An error at `span` (byte range) in `text`, the contents of `path`.
    pub fn at(
        path: &Path,
        text: &Arc<str>,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        let span = span.start.min(text.len())..span.end.min(text.len());
        ConfigError(Box::new(Inner {
            path: path.to_path_buf(),
            line_col: Some(line_col(text, span.start)),
            message: message.into(),
            help: None,
            source: Some(NamedSource::new(path.display().to_string(), text.clone())),
            span: Some(span),
            label: None,
        }))
    }

    /// The same error with a help line under it.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }

    /// The same error with `label` under the offending text instead of "here".
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.0.label = Some(label.into());
        self
    }

    /// The file at fault.
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// 1-based line and column, when the error points into the file.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        self.0.line_col
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
pub(crate) fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..floor_char_boundary(text, at)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.0;
        match e.line_col {
            Some((l, c)) => write!(f, "{}:{l}:{c}: {}", e.path.display(), e.message),
            None => write!(f, "{}: {}", e.path.display(), e.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Diagnostic for ConfigError {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.0.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.0.span.clone()?;
        let text = self.0.label.clone().unwrap_or_else(|| "here".into());
        let label = LabeledSpan::new_with_span(Some(text), span);
        Some(Box::new(std::iter::once(label)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 11), (2, 6));
    }
}
