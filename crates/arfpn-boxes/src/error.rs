//! The error type of this crate.

/// Bad input to a box operation: the message names the argument at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BoxError {
    /// An argument is outside its documented range (`name` is the argument or field).
    #[error("invalid `{name}`: {reason}")]
    InvalidArgument {
        /// The argument or struct field at fault, e.g. `"low_threshold"`.
        name: &'static str,
        /// What is wrong with it, including the offending value.
        reason: String,
    },
    /// Two slices that must be parallel have different lengths.
    #[error("length mismatch: `{left}` has {left_len} elements but `{right}` has {right_len}")]
    LengthMismatch {
        /// The name of the first slice (the reference length).
        left: &'static str,
        /// The number of elements in `left`.
        left_len: usize,
        /// The name of the slice whose length disagrees with `left`.
        right: &'static str,
        /// The number of elements in `right`.
        right_len: usize,
    },
}

impl BoxError {
    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        BoxError::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }

    /// `Err` unless `left_len == right_len`.
    pub(crate) fn check_len(
        left: &'static str,
        left_len: usize,
        right: &'static str,
        right_len: usize,
    ) -> Result<(), BoxError> {
        if left_len == right_len {
            Ok(())
        } else {
            Err(BoxError::LengthMismatch {
                left,
                left_len,
                right,
                right_len,
            })
        }
    }
}
