//! stadtwache-detect (work in progress).
