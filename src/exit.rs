//! The exit codes of every command (SPEC §5), in one place.
//!
//! With several inputs the most serious code wins and the others still run, so
//! a code is a value that folds with [`Code::worst`]. Serious means: a signal,
//! then a broken project or usage (2), then a rejected event (3), then a failed
//! handler (1). A 2 outranks the higher 3 because it says the project must be
//! fixed before anything can be checked; a script that saw 3 would blame the
//! events and move on.

/// A process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Code {
    /// Everything ran; pairs that had already succeeded were skipped.
    #[default]
    Success = 0,
    /// At least one handler failed and was dead-lettered, or `lint` found errors.
    Failed = 1,
    /// Usage or configuration error (nothing was attempted), or autod could
    /// not write its state, so an outcome could not be recorded: the event is
    /// not marked done or dead-lettered and runs again when dispatched again.
    Usage = 2,
    /// An event was rejected (invalid or unroutable) and nothing ran for it.
    Rejected = 3,
    /// `dispatch` got SIGINT and stopped its running handlers (128 + 2).
    Interrupted = 130,
    /// `dispatch` got SIGTERM and stopped its running handlers (128 + 15).
    Terminated = 143,
}

impl Code {
    pub fn worst(self, other: Code) -> Code {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    fn severity(self) -> u8 {
        match self {
            Code::Success => 0,
            Code::Failed => 1,
            Code::Rejected => 2,
            Code::Usage => 3,
            Code::Interrupted => 4,
            Code::Terminated => 5,
        }
    }
}

impl From<Code> for std::process::ExitCode {
    fn from(code: Code) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::Code;

    #[test]
    fn most_serious_code_wins() {
        assert_eq!(Code::Success.worst(Code::Failed), Code::Failed);
        assert_eq!(Code::Rejected.worst(Code::Failed), Code::Rejected);
        assert_eq!(Code::Usage.worst(Code::Success), Code::Usage);
        assert_eq!(Code::Rejected.worst(Code::Usage), Code::Usage);
        assert_eq!(Code::Usage.worst(Code::Rejected), Code::Usage);
        assert_eq!(Code::Failed as u8, 1);
        assert_eq!(Code::Rejected as u8, 3);
        assert_eq!(Code::Interrupted.worst(Code::Rejected), Code::Interrupted);
        assert_eq!(Code::Interrupted as u8, 130);
        assert_eq!(Code::Terminated as u8, 143);
    }
}
