//! Where a value was written: the one place every loader reads files, parses TOML, and turns a
//! byte span into a [`ConfigError`] at file:line:col.
//!
//! A [`Source`] is a file's path and text, read from disk or, when no such file exists, from the
//! copies compiled into the binary ([`super::presets`]). A [`Located`] value carries the source
//! and span it came from, so an error found after parsing still points at the text.

use std::any::{Any, TypeId};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use toml::Spanned;

use super::error::ConfigError;
use super::presets;

/// An input file: its path and its text.
#[derive(Debug, Clone)]
pub struct Source {
    path: PathBuf,
    text: Arc<str>,
}

/// The file's bytes as text, or an error at the first byte that is not UTF-8 (its line, column
/// and offset).
pub(crate) fn text(path: &Path, bytes: Vec<u8>) -> Result<String, ConfigError> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let good = &e.as_bytes()[..at];
        let line = 1 + good.iter().filter(|&&b| b == b'\n').count();
        let col = 1 + good.iter().rev().take_while(|&&b| b != b'\n').count();
        ConfigError::file(
            path,
            format!("not UTF-8 text: line {line}, column {col} (byte {at}) is not a character"),
        )
    })
}

/// What files read from disk were parsed into, by type, path and text (a sweep's points read
/// the same arch and tech files again; parsing them was most of a single-iteration point's
/// time). The latest [`KEPT`].
#[allow(clippy::type_complexity)]
static MADE: Mutex<Vec<(TypeId, Arc<Source>, Arc<dyn Any + Send + Sync>)>> = Mutex::new(Vec::new());

/// Most files kept in [`MADE`].
const KEPT: usize = 64;

/// What `make` makes of `src`: kept from an earlier call for the same type, path and text, or
/// made now (and kept when it succeeds). `make` must depend on nothing but `src`'s text (a
/// file's parse, not what the files it names resolve to).
pub(crate) fn kept<T: Clone + Send + Sync + 'static>(
    src: &Arc<Source>,
    make: impl FnOnce(&Arc<Source>) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    let id = TypeId::of::<T>();
    let hit = MADE.lock().ok().and_then(|made| {
        let (.., t) = made
            .iter()
            .find(|(i, s, _)| *i == id && s.path == src.path && s.text == src.text)?;
        t.downcast_ref::<T>().cloned()
    });
    if let Some(t) = hit {
        return Ok(t);
    }
    let t = make(src)?;
    if let Ok(mut made) = MADE.lock() {
        if made.len() >= KEPT {
            made.remove(0);
        }
        made.push((id, src.clone(), Arc::new(t.clone())));
    }
    Ok(t)
}

impl Source {
    /// Reads `path` from disk, or from the built-in presets when no such file exists.
    pub fn read(path: &Path) -> Result<Arc<Source>, ConfigError> {
        let text = match std::fs::read(path) {
            Ok(bytes) => Arc::from(text(path, bytes)?),
            Err(e) => presets::read(path)
                .map(Arc::from)
                .ok_or_else(|| ConfigError::file(path, format!("cannot read the file: {e}")))?,
        };
        Ok(Source::new(path, text))
    }

    /// A source whose text is given (an edited copy of the file at `path`, as a sweep point
    /// makes); paths it names still resolve from `path`.
    pub fn new(path: &Path, text: Arc<str>) -> Arc<Source> {
        Arc::new(Source {
            path: path.to_path_buf(),
            text,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text.
    pub fn text(&self) -> &Arc<str> {
        &self.text
    }

    /// Parses the text as TOML into `T`, mapping TOML and serde errors to the file, line and
    /// column.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(&self.text).map_err(|e| {
            let msg = e.message().trim().to_string();
            match e.span() {
                Some(s) => self.at(s, msg),
                None => self.whole(msg),
            }
        })
    }

    /// An error at byte range `span` of this file.
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError::at(&self.path, &self.text, span, message)
    }

    /// An error at the place `v` was written.
    pub fn err<T>(&self, v: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.at(v.span(), message)
    }

    /// An error about the whole file (a missing key, a rule across several keys).
    pub fn whole(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::file(&self.path, message)
    }

    /// The path `name` names, relative to this file's folder.
    pub fn relative(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.parent().unwrap_or(Path::new("")).join(name)
    }

    /// The file `name` (an `arch` or `model` key's value) names: the file relative to this
    /// file's folder, or, where there is none, the built-in preset of `folder` (`arch`,
    /// `workloads/models`) whose bare name it is (`h100`, `mixtral-8x7b`), as `--arch` and
    /// `--model` take them; the relative path else (for its error).
    pub fn relative_or_preset(&self, name: &str, folder: &str) -> PathBuf {
        let p = self.relative(name);
        if p.is_file() {
            return p;
        }
        presets::named(name, folder).map_or(p, PathBuf::from)
    }

    /// The file the path `v` (the value of `key`) names, relative to this file: an error at `v`
    /// when it is not a file (missing, or a folder) nor a built-in preset.
    pub fn named_file(&self, v: &Spanned<String>, key: &str) -> Result<PathBuf, ConfigError> {
        let p = self.relative(v.get_ref());
        if p.is_file() || presets::file(&p).is_some() {
            Ok(p)
        } else {
            Err(self.err(v, format!("`{key}`: {} is not a file", p.display())))
        }
    }

    /// `v` with this source and its span, for errors found after parsing.
    pub fn locate<T: Clone>(self: &Arc<Self>, v: &Spanned<T>) -> Located<T> {
        Located {
            value: v.get_ref().clone(),
            src: self.clone(),
            span: v.span(),
        }
    }

    /// `v` by reference, with this source and its span.
    pub fn locate_ref<'a, T>(self: &Arc<Self>, v: &'a Spanned<T>) -> Located<&'a T> {
        Located {
            value: v.get_ref(),
            src: self.clone(),
            span: v.span(),
        }
    }
}

/// A value with the source and byte span it was written at.
#[derive(Debug, Clone)]
pub struct Located<T> {
    /// The value as parsed.
    pub value: T,
    src: Arc<Source>,
    span: Range<usize>,
}

impl<T> Located<T> {
    /// An error at the value: `message` is the sentence in the header, and the text under the
    /// value is labelled "here".
    pub fn err(&self, message: impl Into<String>) -> ConfigError {
        self.src.at(self.span.clone(), message)
    }

    /// An error at the value whose underline reads `label` (a few words: "must be positive")
    /// and whose header reads `message`.
    pub fn err_labelled(&self, label: &str, message: impl Into<String>) -> ConfigError {
        self.err(message).with_label(label)
    }

    /// The file the value was written in.
    pub fn path(&self) -> &Path {
        self.src.path()
    }

    /// The file the value was written in, with its text.
    pub fn source(&self) -> &Arc<Source> {
        &self.src
    }

    /// The same place, holding `f` of the value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Located<U> {
        Located {
            value: f(self.value),
            src: self.src,
            span: self.span,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct T {
        a: Spanned<i64>,
    }

    #[test]
    fn a_located_value_points_at_its_line_and_column() {
        let src = Source::new(Path::new("x.toml"), "# c\na = 5\n".into());
        let t: T = src.parse().unwrap();
        let e = src.locate(&t.a).err("too big");
        assert_eq!(e.to_string(), "x.toml:2:5: too big");
        let e = src
            .locate_ref(&t.a)
            .err_labelled("at most 4", "`a` is too big");
        assert_eq!(e.line_col(), Some((2, 5)));
        assert_eq!(e.message(), "`a` is too big");
    }

    #[test]
    fn parse_errors_name_the_file_line_and_column() {
        let src = Source::new(Path::new("y.toml"), "a = 1\nb = [\n".into());
        let e = src.parse::<toml::Table>().unwrap_err();
        assert_eq!(e.path(), Path::new("y.toml"));
        assert!(e.line_col().is_some());
    }

    #[test]
    fn a_missing_file_falls_back_to_the_presets_and_says_so_unless_it_names_one() {
        // A preset's own path, also relative to a built-in file (a built-in scenario naming its
        // arch), is the built-in when dyad runs away from the repository's files: no note.
        let own = ["arch/h100.toml", "./scenarios/../arch/h100.toml"];
        for p in own {
            assert!(presets::read(Path::new(p)).is_some_and(|t| t.contains("[xpu")));
        }
        // A missing path that only ends like one (a shipped scenario copied elsewhere) reads the
        // built-in too, and a note names both.
        let p = Path::new("/nowhere/study/../arch/h100.toml");
        assert!(Source::read(p).unwrap().text().contains("[xpu"));
        let notes = presets::take_notes();
        let named = |p: &str| notes.iter().any(|n| n.contains(&format!("note: {p} ")));
        assert!(named("/nowhere/study/../arch/h100.toml"), "{notes:?}");
        assert!(
            notes
                .iter()
                .any(|n| n.contains("built-in `arch/h100.toml`"))
        );
        assert!(!own.iter().any(|p| named(p)), "{notes:?}");
        let e = Source::read(Path::new("/nowhere/none.toml")).unwrap_err();
        assert!(e.message().starts_with("cannot read the file"));
    }

    #[test]
    fn a_kept_parse_follows_the_file_when_it_changes() {
        // The same path read again with other text is parsed again; the same text is not.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.toml");
        let calls = std::cell::Cell::new(0);
        let a = |p: &Path| {
            kept(&Source::read(p).unwrap(), |s| {
                calls.set(calls.get() + 1);
                Ok(*s.parse::<T>()?.a.get_ref())
            })
            .unwrap()
        };
        std::fs::write(&p, "a = 1\n").unwrap();
        assert_eq!((a(&p), a(&p), calls.get()), (1, 1, 1));
        std::fs::write(&p, "a = 2\n").unwrap();
        assert_eq!((a(&p), calls.get()), (2, 2));
    }
}
