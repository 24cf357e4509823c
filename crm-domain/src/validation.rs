//! Validation errors: every failing field at once, each named by its JSON path.

use std::fmt;

use serde::Serialize;

/// One field that failed validation.
///
/// `field` is the JSON path of the field as the client spelled it (`firstName`, `address.country`),
/// `message` says what is wrong in words a client can act on. Neither ever holds the rejected value:
/// errors are logged, and customer data must never reach a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The JSON path of the field (`email`, `address.postalCode`); `$` for the document itself.
    pub field: String,
    /// What is wrong, without repeating the rejected value.
    pub message: String,
}

impl FieldError {
    /// A field error for `field` with `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Prefixes the field path with `parent.` (used when a nested object is validated).
    #[must_use]
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A non-empty list of [`FieldError`]s: the result of validating a whole input at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct ValidationErrors(Vec<FieldError>);

impl ValidationErrors {
    /// A list holding one error.
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![FieldError::new(field, message)])
    }

    /// The errors, in the order the fields were checked.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// Consumes the list into its errors.
    pub fn into_errors(self) -> Vec<FieldError> {
        self.0
    }

    /// True when some error concerns `field`.
    pub fn has_field(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Collects field errors while an input is checked field by field.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    errors: Vec<FieldError>,
}

impl Collector {
    pub(crate) fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// Records the error of `result`, if any, and returns its value.
    pub(crate) fn take<T, E: Into<FieldError>>(&mut self, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.errors.push(error.into());
                None
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok(())` when nothing failed, else every error collected.
    pub(crate) fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.errors))
        }
    }
}
