//! stadtwache-decide (work in progress).
