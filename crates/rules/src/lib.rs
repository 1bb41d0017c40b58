//! stadtwache-rules (work in progress).
