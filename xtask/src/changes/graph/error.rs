//! Why part of the build cannot be read: the error every reader of the graph returns (a
//! Tiltfile, compose file, Dockerfile or manifest, or a cargo build that cannot be followed). A
//! step whose build cannot be read runs on any change, and the plan gives this as the reason.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The line of the file at fault, when one is.
    pub line: Option<usize>,
    pub message: String,
}

impl Unreadable {
    pub fn new(message: impl Into<String>) -> Unreadable {
        Unreadable { line: None, message: message.into() }
    }

    pub fn at(line: usize, message: impl Into<String>) -> Unreadable {
        Unreadable { line: Some(line), message: message.into() }
    }
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for Unreadable {}
