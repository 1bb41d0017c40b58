//! stadtwache-acquire (work in progress).
